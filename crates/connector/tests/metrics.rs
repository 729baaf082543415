//! `/metrics` of a running `serve` (issue 5, acceptance 3): the output parses as Prometheus
//! text, holds every metric `docs/metrics.md` names, and the values move as work is done
//! (webhooks, processing, deliveries, a 429, a scheduled catalog run, shared gauges).

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use connector::config::Settings;
use connector::serve::{Service, run};
use connector::store::Backend;
use connector::store::testing::TestStore;
use emulators::orders::{self, OrderSpec};
use emulators::seed::{CatalogSpec, generate_catalog};
use emulators::{CtEmulator, CtEmulatorConfig, Faults, OmnisendEmulator, OmnisendEmulatorConfig};
use prometheus_parse::{Sample, Scrape, Value};
use secrecy::SecretString;
use tokio_util::sync::CancellationToken;

const PROJECT: &str = "metrics-shop";
const KEY: &str = "key-metrics-brand";
const TOKEN: &str = "metrics-webhook-token";

/// The metric names in the table of docs/metrics.md (first column, in backticks).
fn documented_metrics() -> BTreeSet<String> {
    let doc = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/metrics.md"),
    )
    .unwrap();
    doc.lines()
        .filter_map(|l| l.strip_prefix("| `ct_omnisend_"))
        .filter_map(|rest| rest.split('`').next())
        .map(|name| format!("ct_omnisend_{name}"))
        .collect()
}

async fn scrape(http: &reqwest::Client, base: &str) -> Vec<Sample> {
    let response = http.get(format!("{base}/metrics")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    let text = response.text().await.unwrap();
    // Every line is a comment, or a sample of the text format's grammar (the parser below is
    // lenient: it skips lines it cannot read).
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        assert!(valid_line(line), "not Prometheus text: {line:?}");
    }
    let parsed = Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap();
    parsed.samples
}

/// `# HELP name text`, `# TYPE name kind`, or `name{k="v",...} value`.
fn valid_line(line: &str) -> bool {
    let name_ok = |n: &str| {
        !n.is_empty()
            && n.chars().enumerate().all(|(i, c)| {
                c.is_ascii_alphabetic() || c == '_' || c == ':' || (i > 0 && c.is_ascii_digit())
            })
    };
    if let Some(rest) = line.strip_prefix("# HELP ") {
        return rest.split_once(' ').is_some_and(|(n, _)| name_ok(n));
    }
    if let Some(rest) = line.strip_prefix("# TYPE ") {
        return rest.split_once(' ').is_some_and(|(n, kind)| {
            name_ok(n) && ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind)
        });
    }
    let (series, value) = match line.rsplit_once(' ') {
        Some(parts) => parts,
        None => return false,
    };
    let value_ok = value.parse::<f64>().is_ok() || ["+Inf", "-Inf", "NaN"].contains(&value);
    let series_ok = match series.split_once('{') {
        None => name_ok(series),
        Some((name, labels)) => {
            name_ok(name)
                && labels.strip_suffix('}').is_some_and(|labels| {
                    labels.split("\",").filter(|l| !l.is_empty()).all(|pair| {
                        pair.split_once("=\"").is_some_and(|(k, v)| {
                            name_ok(k) && !v.trim_end_matches('"').contains('"')
                        })
                    })
                })
        }
    };
    value_ok && series_ok
}

/// The value of the counter or gauge `name` with exactly these `labels` (0 when absent).
fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|s| s.metric == name)
        .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match &s.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
            Value::Histogram(h) => h.last().map_or(0.0, |b| b.count),
            Value::Summary(_) => 0.0,
        })
        .sum()
}

#[tokio::test]
async fn metrics_named_in_docs_are_served_and_move_with_work() {
    let documented = documented_metrics();
    assert!(documented.len() >= 15, "{documented:?}");

    let store = TestStore::new(Backend::Sqlite).await.unwrap().unwrap();
    let ct = CtEmulator::start(CtEmulatorConfig {
        project_key: PROJECT.into(),
        client_id: "id".into(),
        client_secret: "secret".into(),
        ..CtEmulatorConfig::default()
    })
    .await
    .unwrap();
    ct.seed(&generate_catalog(&CatalogSpec {
        products: 20,
        categories: 5,
        seed: 3,
    }));
    let omnisend = OmnisendEmulator::start(OmnisendEmulatorConfig::default())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(
        &path,
        format!(
            r#"
[commercetools]
project_key = "{PROJECT}"
api_url = "{api}"
auth_url = "{auth}"
client_id = "id"
client_secret = "secret"

[omnisend]
api_url = "{os}"
requests_per_minute = 6000
batch_poll_interval_ms = 20
max_attempts = 3

[events]
retry_base_ms = 50
retry_max_secs = 1

[schedule]
catalog_delta_secs = 1
contacts_delta_secs = 0
full_refresh = ""
{route}"#,
            api = ct.api_url(),
            auth = ct.auth_url(),
            os = omnisend.base_url(),
            route = emulators::seed::store_route_toml("eu", "OMNISEND_KEY"),
        ),
    )
    .unwrap();
    let mut settings = Settings::load(Some(&path), &|_| None).unwrap();
    settings.state_url = store.url().to_owned();
    let settings = Arc::new(settings);
    let mut clients = HashMap::new();
    clients.insert(
        "OMNISEND_KEY".to_owned(),
        connector::app::omnisend_client(&settings, KEY.into()).unwrap(),
    );
    let service = Service {
        settings: settings.clone(),
        store: store.store().clone(),
        ct: connector::app::commercetools_client(&settings).unwrap(),
        clients,
        webhook_token: Some(SecretString::from(TOKEN)),
        storefront_token: None,
        recovery_secret: None,
        oidc: None,
        idle_poll: Duration::from_millis(50),
        instance: "metrics-instance".into(),
        admin_password: None,
    };
    // The first Omnisend answer is a 429 (retried by the client).
    omnisend.set_faults(Faults {
        burst_429: Some((0, 1)),
        ..Faults::default()
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let stop = CancellationToken::new();
    let server = tokio::spawn(run(service, listener, stop.clone()));
    let http = reqwest::Client::new();

    let before = scrape(&http, &base).await;
    let hooks = |samples: &[Sample], reason: Option<&str>| match reason {
        None => value(
            samples,
            "ct_omnisend_webhooks_received_total",
            &[("source", "commercetools")],
        ),
        Some(r) => value(
            samples,
            "ct_omnisend_webhooks_rejected_total",
            &[("source", "commercetools"), ("reason", r)],
        ),
    };

    // Work: three orders, a refused token, a malformed body.
    for n in 0..3 {
        let mut spec = OrderSpec::sample(900 + n, "EUR");
        spec.store_key = Some("eu".into());
        let message = ct.create_order(orders::order(&spec));
        let payload = emulators::notify::message_payload(&message, PROJECT);
        let envelope = emulators::notify::pubsub_push(&payload, &format!("m-{n}"));
        let status = http
            .post(format!("{base}/webhooks/commercetools?token={TOKEN}"))
            .json(&envelope)
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 202);
    }
    let refused = http
        .post(format!("{base}/webhooks/commercetools?token=wrong"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    let malformed = http
        .post(format!("{base}/webhooks/commercetools?token={TOKEN}"))
        .body("not json")
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), 400);

    // Wait for the events and one finished scheduled catalog run.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let job = store.store().job("catalog:eu").await.unwrap();
        if omnisend.events(KEY).len() >= 3 && job.is_some_and(|j| j.last_finished.is_some()) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "work not done in 60 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let after = scrape(&http, &base).await;

    // Every documented metric is served.
    let served: BTreeSet<&str> = after.iter().map(|s| s.metric.as_str()).collect();
    let missing: Vec<&String> = documented
        .iter()
        .filter(|m| !served.contains(m.as_str()))
        .collect();
    assert!(missing.is_empty(), "documented but not served: {missing:?}");
    // Counters never end otherwise, and no label carries an email or an id-like value.
    for s in &after {
        if matches!(s.value, Value::Counter(_)) {
            assert!(s.metric.ends_with("_total"), "{}", s.metric);
        }
        for (k, v) in s.labels.iter() {
            assert!(
                !v.contains('@'),
                "{} label {k}={v} looks like an email",
                s.metric
            );
        }
    }

    // Values moved with the work.
    let moved = |name: &str, labels: &[(&str, &str)]| {
        value(&after, name, labels) - value(&before, name, labels)
    };
    assert_eq!(hooks(&after, None) - hooks(&before, None), 5.0);
    assert_eq!(
        hooks(&after, Some("unauthorized")) - hooks(&before, Some("unauthorized")),
        1.0
    );
    assert_eq!(
        hooks(&after, Some("malformed")) - hooks(&before, Some("malformed")),
        1.0
    );
    assert_eq!(
        moved(
            "ct_omnisend_notifications_processed_total",
            &[("outcome", "applied")]
        ),
        3.0
    );
    assert_eq!(moved("ct_omnisend_events_queued_total", &[]), 3.0);
    assert_eq!(
        moved("ct_omnisend_deliveries_total", &[("outcome", "sent")]),
        3.0
    );
    assert!(
        moved(
            "ct_omnisend_omnisend_request_duration_seconds",
            &[("endpoint", "events"), ("status", "2xx")]
        ) >= 3.0
    );
    assert_eq!(moved("ct_omnisend_omnisend_throttled_total", &[]), 1.0);
    assert!(
        moved(
            "ct_omnisend_scheduled_runs_total",
            &[("job", "catalog"), ("mode", "delta"), ("outcome", "ok")]
        ) >= 1.0
    );
    assert!(
        value(
            &after,
            "ct_omnisend_sync_last_success_timestamp_seconds",
            &[("entity", "products"), ("store", "eu")]
        ) > 1.7e9
    );
    let lag = value(
        &after,
        "ct_omnisend_sync_cursor_lag_seconds",
        &[("entity", "products"), ("store", "eu")],
    );
    assert!((0.0..60.0).contains(&lag), "cursor lag {lag}");
    assert_eq!(
        value(
            &after,
            "ct_omnisend_rate_limit_per_minute",
            &[("brand", "OMNISEND_KEY")]
        ),
        6000.0
    );
    assert!(
        value(
            &after,
            "ct_omnisend_rate_current_per_minute",
            &[("brand", "OMNISEND_KEY")]
        ) < 6000.0,
        "the 429 halved the effective rate"
    );
    assert_eq!(
        value(&after, "ct_omnisend_outbox_depth", &[("status", "pending")]),
        0.0
    );
    assert_eq!(value(&after, "ct_omnisend_inbox_depth", &[]), 0.0);

    stop.cancel();
    server.await.unwrap().unwrap();
}
