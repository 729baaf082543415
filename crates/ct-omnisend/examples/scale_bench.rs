//! Scale-out benchmark (BENCHMARKS.md, "Several instances (issue 5)"): delivery throughput of
//! 1 vs N `ct-omnisend serve` processes on one PostgreSQL database.
//!
//! ```text
//! cargo build --release -p ct-omnisend --bins --example scale_bench
//! target/release/examples/scale_bench --instances 1 --orders 3000
//! target/release/examples/scale_bench --instances 3 --orders 3000
//! ```
//!
//! This process runs the commercetools and Omnisend emulators (Omnisend with its rate limit
//! lifted and `--latency-ms` (default 50) added to every response, so delivery is bound by
//! waiting, not by this machine's 2 cores), creates `--orders` orders and their `OrderCreated`
//! Pub/Sub envelopes, makes a fresh schema on `CT_OMNISEND_TEST_POSTGRES` (default
//! `postgres://postgres@127.0.0.1:5432/test`), starts `--instances` real `ct-omnisend serve`
//! processes (the release binary next to this example's directory) on it, and posts every
//! envelope (32 connections, round robin over the instances).
//!
//! Each instance has the same per-instance settings: `events.concurrency` (`--concurrency`,
//! default 4) single requests in flight, `events.batch_threshold` lifted so every event goes
//! as a single request (the quantity under test is how claiming and the shared budget scale,
//! not how batching packs), `requests_per_minute` lifted (1,000,000) — the shared budget is
//! still taken per request through PostgreSQL.
//!
//! Reported: events/s = events / (last `receivedAt` − first `receivedAt`) at the Omnisend
//! emulator; the steady-state rate = events received after the last webhook was acknowledged /
//! (last `receivedAt` − that moment), when ingest no longer competes for the cores; distinct
//! `eventID`s (must equal the events), the ingest time and the total time.
//! A summary on stderr and one `RESULT {json}` line on stdout.

use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use connector::store::testing::TestStore;
use emulators::orders::{self, OrderSpec};
use emulators::{CtEmulator, CtEmulatorConfig, Faults, OmnisendEmulator, OmnisendEmulatorConfig};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};

const PROJECT: &str = "scale-shop";
const KEY: &str = "scale-brand-key";
const TOKEN: &str = "scale-webhook-token";

type Error = Box<dyn std::error::Error + Send + Sync>;

struct Args {
    instances: usize,
    orders: usize,
    latency_ms: u64,
    concurrency: usize,
}

fn args() -> Result<Args, Error> {
    let mut a = Args {
        instances: 1,
        orders: 3000,
        latency_ms: 50,
        concurrency: 4,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--instances" => a.instances = value.parse()?,
            "--orders" => a.orders = value.parse()?,
            "--latency-ms" => a.latency_ms = value.parse()?,
            "--concurrency" => a.concurrency = value.parse()?,
            other => return Err(format!("unknown flag {other}").into()),
        }
    }
    Ok(a)
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let a = args()?;
    let bin = std::env::current_exe()?
        .parent()
        .and_then(|examples| examples.parent())
        .map(|dir| dir.join("ct-omnisend"))
        .ok_or("no binary directory")?;
    if !bin.exists() {
        return Err(format!("{} is missing: build with --bins", bin.display()).into());
    }
    let pg = std::env::var("CT_OMNISEND_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let db = TestStore::postgres(&pg).await?;

    let ct = CtEmulator::start(CtEmulatorConfig {
        project_key: PROJECT.into(),
        client_id: "scale-client".into(),
        client_secret: "scale-secret".into(),
        ..CtEmulatorConfig::default()
    })
    .await?;
    let omnisend = OmnisendEmulator::start(OmnisendEmulatorConfig {
        rate_limit_per_minute: None,
        faults: Faults {
            latency: Duration::from_millis(a.latency_ms),
            ..Faults::default()
        },
        ..OmnisendEmulatorConfig::default()
    })
    .await?;
    let mut envelopes = Vec::with_capacity(a.orders);
    for n in 0..a.orders {
        let mut spec = OrderSpec::sample(100_000 + n, "EUR");
        spec.store_key = None;
        let message = ct.create_order(orders::order(&spec));
        let payload = emulators::notify::message_payload(&message, PROJECT);
        envelopes.push(emulators::notify::pubsub_push(
            &payload,
            &format!("scale-{n}"),
        ));
    }
    let dir = tempfile::tempdir()?;
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[commercetools]
project_key = "{PROJECT}"
api_url = "{api}"
auth_url = "{auth}"
client_id = "scale-client"
client_secret = "scale-secret"

[omnisend]
api_url = "{os}"
requests_per_minute = 1000000
burst = 50

[events]
ordered_product_events = false
concurrency = {concurrency}
batch_threshold = 1000000

[schedule]
catalog_delta_secs = 0
contacts_delta_secs = 0
full_refresh = ""

[[stores]]
key = "default"
locales = ["en"]
currency = "EUR"
product_url = "https://shop.example.com/p/{{slug}}"
omnisend_api_key_env = "SCALE_KEY"
"#,
            api = ct.api_url(),
            auth = ct.auth_url(),
            os = omnisend.base_url(),
            concurrency = a.concurrency,
        ),
    )?;

    let mut children = Vec::new();
    let mut bases = Vec::new();
    for _ in 0..a.instances {
        let mut child = tokio::process::Command::new(&bin)
            .args(["serve", "--listen", "127.0.0.1:0", "--config"])
            .arg(&config)
            .arg("--state")
            .arg(db.url())
            .env_remove("PORT")
            .env("RUST_LOG", "warn")
            .env("SCALE_KEY", KEY)
            .env("CT_OMNISEND_WEBHOOK_TOKEN", TOKEN)
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        let mut lines = BufReader::new(child.stdout.take().ok_or("stdout")?).lines();
        let line = lines.next_line().await?.ok_or("serve printed nothing")?;
        bases.push(
            line.strip_prefix("listening on ")
                .ok_or_else(|| format!("unexpected line {line:?}"))?
                .to_owned(),
        );
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        children.push(child);
    }

    let started = Instant::now();
    let bases = Arc::new(bases);
    let envelopes = Arc::new(envelopes);
    let next = Arc::new(AtomicUsize::new(0));
    let client = reqwest::Client::new();
    let mut posters = Vec::new();
    for w in 0..32 {
        let (bases, envelopes, next, client) = (
            bases.clone(),
            envelopes.clone(),
            next.clone(),
            client.clone(),
        );
        posters.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(envelope) = envelopes.get(i) else {
                    return Ok::<(), reqwest::Error>(());
                };
                let base = &bases[(i + w) % bases.len()];
                client
                    .post(format!("{base}/webhooks/commercetools?token={TOKEN}"))
                    .json(envelope)
                    .send()
                    .await?
                    .error_for_status()?;
            }
        }));
    }
    for p in posters {
        p.await??;
    }
    let ingested = started.elapsed();
    let ingest_end_ms = (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64;
    let deadline = Instant::now() + Duration::from_secs(1800);
    while omnisend.events(KEY).len() < a.orders {
        if Instant::now() > deadline {
            return Err("not delivered within 30 minutes".into());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let total = started.elapsed();
    let events = omnisend.events(KEY);
    let received: Vec<i64> = events
        .iter()
        .filter_map(|e| e["receivedAt"].as_str())
        .filter_map(|t| {
            time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()
        })
        .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
        .collect();
    let first = received.iter().min().copied().unwrap_or(0);
    let last = received.iter().max().copied().unwrap_or(0);
    let span_s = ((last - first).max(1)) as f64 / 1000.0;
    // Steady state: the events delivered after the last webhook was acknowledged, over the time
    // from then to the last delivery (ingest no longer competes for the two cores).
    let after: Vec<i64> = received
        .iter()
        .copied()
        .filter(|t| *t > ingest_end_ms)
        .collect();
    let steady = if after.is_empty() {
        0.0
    } else {
        after.len() as f64 / ((last - ingest_end_ms).max(1) as f64 / 1000.0)
    };
    let distinct: std::collections::HashSet<&str> = events
        .iter()
        .filter_map(|e| e["eventID"].as_str())
        .collect();
    let result = json!({
        "instances": a.instances,
        "orders": a.orders,
        "latency_ms": a.latency_ms,
        "concurrency_per_instance": a.concurrency,
        "events": events.len(),
        "distinct_event_ids": distinct.len(),
        "delivery_span_s": span_s,
        "events_per_s": events.len() as f64 / span_s,
        "steady_events_per_s": steady,
        "steady_events": after.len(),
        "ingest_s": ingested.as_secs_f64(),
        "total_s": total.as_secs_f64(),
        "requests": omnisend.requests().len(),
    });
    eprintln!(
        "{} instance(s): {} events in {:.1} s = {:.1} events/s; after ingest {:.1} events/s \
         ({} events); {} distinct ids; ingest {:.1} s",
        a.instances,
        events.len(),
        span_s,
        events.len() as f64 / span_s,
        steady,
        after.len(),
        distinct.len(),
        ingested.as_secs_f64()
    );
    println!("RESULT {}", Value::to_string(&result));
    for mut c in children {
        let _ = c.start_kill();
        let _ = c.wait().await;
    }
    Ok(())
}
