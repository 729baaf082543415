//! `ct-omnisend serve` as a process: killed with SIGKILL between acknowledging webhooks and
//! delivering their events, then restarted — every acknowledged event arrives exactly once.
//! Also: SIGTERM stops it cleanly.

mod support;

use std::process::Stdio;
use std::time::Duration;

use connector::store::StateStore;
use emulators::orders::{self, OrderSpec};
use emulators::{CtEmulator, Faults, OmnisendEmulator, OmnisendEmulatorConfig};
use serde_json::Value;
use support::{command, describe, run, wait_for};

const PROJECT: &str = "serve-shop";
const KEY: &str = "serve-brand-key";
const TOKEN: &str = "serve-webhook-token";

struct Env {
    ct: CtEmulator,
    omnisend: OmnisendEmulator,
    dir: tempfile::TempDir,
}

impl Env {
    async fn start() -> Env {
        let ct = support::ct_emulator(PROJECT, "serve-client", "serve-secret").await;
        let omnisend = OmnisendEmulator::start(OmnisendEmulatorConfig::default())
            .await
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let config = format!(
            r#"
[commercetools]
project_key = "{PROJECT}"
api_url = "{api}"
auth_url = "{auth}"
client_id = "serve-client"
client_secret = "serve-secret"

[omnisend]
api_url = "{os}"
requests_per_minute = 6000
max_attempts = 1

[events]
ordered_product_events = false
lease_secs = 2
retry_base_ms = 50
retry_max_secs = 1

[[stores]]
key = "default"
locales = ["en"]
currency = "EUR"
product_url = "https://shop.example.com/p/{{slug}}"
omnisend_api_key_env = "SERVE_KEY"
"#,
            api = ct.api_url(),
            auth = ct.auth_url(),
            os = omnisend.base_url(),
        );
        std::fs::write(dir.path().join("config.toml"), config).unwrap();
        Env { ct, omnisend, dir }
    }

    fn state_url(&self) -> String {
        format!("sqlite://{}", self.dir.path().join("state.db").display())
    }

    /// Starts `serve` on a free port; returns the child and its base URL.
    async fn serve(&self) -> (tokio::process::Child, String) {
        support::serve(
            command()
                .args(["serve", "--listen", "127.0.0.1:0", "--config"])
                .arg(self.dir.path().join("config.toml"))
                .arg("--state")
                .arg(self.state_url())
                .env("SERVE_KEY", KEY)
                .env("CT_OMNISEND_WEBHOOK_TOKEN", TOKEN)
                .stderr(Stdio::null()),
        )
        .await
    }
}

async fn deliver(base: &str, message: &Value) -> u16 {
    let payload = emulators::notify::message_payload(message, PROJECT);
    let id = format!("ps-{}", message["id"].as_str().unwrap());
    let envelope = emulators::notify::pubsub_push(&payload, &id);
    reqwest::Client::new()
        .post(format!("{base}/webhooks/commercetools?token={TOKEN}"))
        .json(&envelope)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn a_kill_between_acknowledgement_and_delivery_loses_and_duplicates_nothing() {
    let env = Env::start().await;
    // Omnisend is down: events are queued, not delivered.
    env.omnisend.set_faults(Faults {
        error_rate: 1.0,
        ..Faults::default()
    });
    let (mut first, base) = env.serve().await;
    let mut order_ids = Vec::new();
    for n in 0..6 {
        let spec = OrderSpec::sample(500 + n, "EUR");
        let message = env.ct.create_order(orders::order(&spec));
        assert_eq!(deliver(&base, &message).await, 202);
        order_ids.push(spec.id);
    }
    let state = StateStore::connect(&env.state_url()).await.unwrap();
    wait_for("the first orders to reach the outbox", async || {
        state
            .outbox_depth(time::OffsetDateTime::now_utc())
            .await
            .unwrap()
            .pending
            == 6
    })
    .await;
    // commercetools down too: the next acknowledged notifications stay in the inbox.
    env.ct.set_faults(Faults {
        error_rate: 1.0,
        ..Faults::default()
    });
    for n in 6..10 {
        let spec = OrderSpec::sample(500 + n, "EUR");
        env.ct.set_faults(Faults::default());
        let message = env.ct.create_order(orders::order(&spec));
        env.ct.set_faults(Faults {
            error_rate: 1.0,
            ..Faults::default()
        });
        assert_eq!(deliver(&base, &message).await, 202);
        order_ids.push(spec.id);
    }
    first.kill().await.unwrap();
    assert!(
        env.omnisend.events(KEY).is_empty(),
        "nothing was delivered before the kill"
    );
    assert!(state.count_pending_notifications().await.unwrap() > 0);

    env.omnisend.set_faults(Faults::default());
    env.ct.set_faults(Faults::default());
    let (mut second, _) = env.serve().await;
    wait_for("every acknowledged order's event", async || {
        env.omnisend.events(KEY).len() >= order_ids.len()
            && state
                .outbox_depth(time::OffsetDateTime::now_utc())
                .await
                .unwrap()
                .pending
                == 0
            && state.count_pending_notifications().await.unwrap() == 0
    })
    .await;
    let mut delivered: Vec<String> = env
        .omnisend
        .events(KEY)
        .iter()
        .map(|e| e["properties"]["orderID"].as_str().unwrap().to_owned())
        .collect();
    delivered.sort();
    order_ids.sort();
    assert_eq!(delivered, order_ids, "each acknowledged order exactly once");

    // SIGTERM: a clean, prompt exit.
    let pid = second.id().unwrap();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = tokio::time::timeout(Duration::from_secs(10), second.wait())
        .await
        .expect("serve exits within 10 s of SIGTERM")
        .unwrap();
    assert!(status.success(), "{status:?}");
}

async fn sync_orders(env: &Env, extra: &[&str]) -> std::process::Output {
    run(command()
        .args(["sync", "orders", "--json", "--since", "2026-01-01"])
        .args(extra)
        .arg("--config")
        .arg(env.dir.path().join("config.toml"))
        .arg("--state")
        .arg(env.state_url())
        .env("SERVE_KEY", KEY))
    .await
}

#[tokio::test]
async fn historical_orders_need_confirmation_and_go_once_through_batches_with_their_time() {
    let env = Env::start().await;
    let mut expected = Vec::new();
    for n in 0..3 {
        let mut spec = OrderSpec::sample(700 + n, "EUR");
        spec.created_at = format!("2026-0{}-15T08:30:00.000Z", n + 2);
        env.ct.create_order(orders::order(&spec));
        expected.push((spec.id.clone(), spec.created_at.clone()));
    }
    let mut old = OrderSpec::sample(799, "EUR");
    old.created_at = "2025-06-01T00:00:00.000Z".into();
    env.ct.create_order(orders::order(&old));

    let refused = sync_orders(&env, &["--historical"]).await;
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--confirm-historical"));
    assert!(
        env.omnisend.requests().is_empty(),
        "nothing sent without confirmation"
    );

    let out = sync_orders(&env, &["--historical", "--confirm-historical"]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["runs"][0]["entity"], "orders");
    assert_eq!(report["runs"][0]["created"], 3);
    let events = env.omnisend.events(KEY);
    let mut got: Vec<(String, String)> = events
        .iter()
        .map(|e| {
            assert_eq!(e["eventName"], "placed order");
            (
                e["properties"]["orderID"].as_str().unwrap().to_owned(),
                e["eventTime"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    got.sort();
    expected.sort();
    assert_eq!(got.len(), 3);
    for ((gid, gtime), (eid, etime)) in got.iter().zip(&expected) {
        assert_eq!(gid, eid);
        let g = time::OffsetDateTime::parse(gtime, &time::format_description::well_known::Rfc3339)
            .unwrap();
        let e = time::OffsetDateTime::parse(etime, &time::format_description::well_known::Rfc3339)
            .unwrap();
        assert_eq!(g, e, "the original order time");
    }
    assert!(
        env.omnisend
            .requests()
            .iter()
            .any(|r| r.path == "/batches" && r.method == "POST"),
        "sent through /batches"
    );
    assert!(
        !env.omnisend.requests().iter().any(|r| r.path == "/events"),
        "not as single real-time events"
    );

    let again = sync_orders(&env, &["--historical", "--confirm-historical"]).await;
    assert!(again.status.success());
    assert_eq!(
        env.omnisend.events(KEY).len(),
        3,
        "a second import sends nothing"
    );
}

#[tokio::test]
async fn rejected_replay_queues_a_rejected_event_again_under_the_same_event_id() {
    use connector::store::{Application, Lane, NewEvent, NewRejected};
    let env = Env::start().await;
    let state = StateStore::connect(&env.state_url()).await.unwrap();
    let now = time::OffsetDateTime::now_utc();
    state
        .apply(
            &Application {
                events: vec![NewEvent {
                    brand: "SERVE_KEY".into(),
                    event_id: "6f1c1d5e-0000-5000-8000-000000000001".into(),
                    event_name: "placed order".into(),
                    ordering_key: "order:o-1".into(),
                    lane: Lane::Realtime,
                    body: serde_json::json!({"eventName": "placed order"}),
                    facts: vec!["order:o-1:placed".into()],
                }],
                ..Application::default()
            },
            now,
        )
        .await
        .unwrap();
    let claimed = state
        .claim_events("w", now, Duration::from_secs(30), 1)
        .await
        .unwrap();
    let record = NewRejected {
        route: "SERVE_KEY".into(),
        entity: "event".into(),
        ct_id: claimed[0].event_id.clone(),
        field: None,
        reason: "gave up".into(),
        payload: None,
        at: now,
    };
    state
        .reject_event(claimed[0].id, "w", "gave up", &record)
        .await
        .unwrap();
    let out = run(command()
        .args(["rejected", "replay", "--all", "--json"])
        .arg("--config")
        .arg(env.dir.path().join("config.toml"))
        .arg("--state")
        .arg(env.state_url())
        .env("SERVE_KEY", KEY))
    .await;
    assert!(out.status.success(), "{}", describe(&out));
    let row = state
        .outbox_event("SERVE_KEY", &claimed[0].event_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.status, "pending", "queued again for serve to deliver");
    assert_eq!(state.count_rejected_open().await.unwrap().len(), 0);
}
