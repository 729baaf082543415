//! Three `ct-omnisend serve` processes on one PostgreSQL database (issue 5, acceptance 1):
//! 5,000 order webhooks spread over the instances and a scheduled catalog sync of 2,000
//! products, with one instance killed (SIGKILL) midway. Afterwards every event was delivered
//! exactly once (except a request Omnisend accepted in the instant before the SIGKILL: Omnisend
//! does not deduplicate real-time events, so that one may arrive twice; nothing else may), every product is as a single clean run would write it, no outbox or inbox row
//! is left behind, and Omnisend never saw more than `requests_per_minute` requests of the brand
//! in any 60-second window. A second instance gets SIGTERM while busy (acceptance 6): it exits
//! within 10 s, and a replacement finishes its work.
//!
//! Needs `CT_OMNISEND_TEST_POSTGRES` (prints a skip line without it; fails if it is set and the
//! server cannot be used).

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use connector::store::testing::{POSTGRES_SKIP_MESSAGE, TestStore, postgres_url};
use emulators::orders::{self, OrderSpec};
use emulators::seed::{CatalogSpec, generate_catalog};
use emulators::{CtEmulator, OmnisendEmulator, OmnisendEmulatorConfig};
use serde_json::Value;
use support::command;

const PROJECT: &str = "multi-shop";
const KEY: &str = "multi-brand-key";
const TOKEN: &str = "multi-webhook-token";
const ORDERS: usize = 5_000;
const PRODUCTS: usize = 2_000;
/// The brand's budget: low enough that the work needs more than a minute of it, so the shared
/// budget (not the size of the work) keeps the three instances under it: about 220 requests at
/// 150/min. (At 600 the final delivery code needed only about 465 requests, within a minute,
/// and at 240 about 250: the budget barely bound.)
const RPM: usize = 150;

struct Shop {
    ct: CtEmulator,
    omnisend: OmnisendEmulator,
    dir: tempfile::TempDir,
}

impl Shop {
    async fn start() -> Shop {
        let ct = support::ct_emulator(PROJECT, "multi-client", "multi-secret").await;
        ct.seed(&generate_catalog(&CatalogSpec {
            products: PRODUCTS,
            categories: 30,
            seed: 11,
        }));
        // The emulator enforces the same limit, so a breach would also show up as 429s.
        let omnisend = OmnisendEmulator::start(OmnisendEmulatorConfig {
            rate_limit_per_minute: Some(RPM as u32),
            ..OmnisendEmulatorConfig::default()
        })
        .await
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let config = format!(
            r#"
[commercetools]
project_key = "{PROJECT}"
api_url = "{api}"
auth_url = "{auth}"
client_id = "multi-client"
client_secret = "multi-secret"

[omnisend]
api_url = "{os}"
requests_per_minute = {RPM}
batch_poll_interval_ms = 2000

[events]
ordered_product_events = false
lease_secs = 5
retry_base_ms = 100
retry_max_secs = 2

[schedule]
catalog_delta_secs = 2
contacts_delta_secs = 0
full_refresh = ""
lease_secs = 3
{route}"#,
            api = ct.api_url(),
            auth = ct.auth_url(),
            os = omnisend.base_url(),
            route = emulators::seed::store_route_toml("eu", "MULTI_KEY"),
        );
        std::fs::write(dir.path().join("config.toml"), config).unwrap();
        Shop { ct, omnisend, dir }
    }

    /// Starts `serve` on a free port against `state`; returns the child and its base URL.
    async fn serve(&self, state: &str) -> (tokio::process::Child, String) {
        support::serve(
            command()
                .args(["serve", "--listen", "127.0.0.1:0", "--config"])
                .arg(self.dir.path().join("config.toml"))
                .arg("--state")
                .arg(state)
                .env("RUST_LOG", "error")
                .env("MULTI_KEY", KEY)
                .env("CT_OMNISEND_WEBHOOK_TOKEN", TOKEN)
                .stderr(Stdio::inherit()),
        )
        .await
    }

    /// The products a clean single run writes: `sync catalog --full --dry-run` on a fresh state.
    async fn expected_products(&self) -> BTreeMap<String, Value> {
        let out = self.dir.path().join("expected.ndjson");
        let status = command()
            .args(["sync", "catalog", "--full", "--json", "--config"])
            .arg(self.dir.path().join("config.toml"))
            .arg("--state")
            .arg(format!(
                "sqlite://{}",
                self.dir.path().join("reference.db").display()
            ))
            .arg("--dry-run")
            .arg(&out)
            .stdout(Stdio::null())
            .status()
            .await
            .unwrap();
        assert!(status.success(), "reference dry run: {status:?}");
        let mut products = BTreeMap::new();
        for line in std::fs::read_to_string(&out).unwrap().lines() {
            let request: Value = serde_json::from_str(line).unwrap();
            let body = &request["body"];
            if request["path"] == "/batches" && body["endpoint"] == "products" {
                for item in body["items"].as_array().unwrap() {
                    products.insert(item["id"].as_str().unwrap().to_owned(), item.clone());
                }
            }
        }
        products
    }
}

/// Posts each envelope to the instances in turn; a refused connection (the killed instance)
/// or a 5xx moves on to the next instance, as Pub/Sub's redelivery would.
async fn post_all(bases: Arc<Vec<String>>, envelopes: Vec<Value>, concurrency: usize) -> usize {
    let client = reqwest::Client::new();
    let next = Arc::new(AtomicUsize::new(0));
    let envelopes = Arc::new(envelopes);
    let acked = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for w in 0..concurrency {
        let (client, next, envelopes, bases, acked) = (
            client.clone(),
            next.clone(),
            envelopes.clone(),
            bases.clone(),
            acked.clone(),
        );
        workers.push(tokio::spawn(async move {
            let mut target = w;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(envelope) = envelopes.get(i) else {
                    return;
                };
                for attempt in 0..30 {
                    let base = &bases[(target + attempt) % bases.len()];
                    let sent = client
                        .post(format!("{base}/webhooks/commercetools?token={TOKEN}"))
                        .json(envelope)
                        .timeout(Duration::from_secs(10))
                        .send()
                        .await;
                    match sent {
                        Ok(r) if r.status().is_success() => {
                            acked.fetch_add(1, Ordering::Relaxed);
                            break;
                        }
                        Ok(r) if r.status().is_client_error() => {
                            panic!("envelope {i} refused: {}", r.status())
                        }
                        _ => {}
                    }
                    assert!(attempt < 29, "envelope {i} never acknowledged");
                }
                target += 1;
            }
        }));
    }
    for w in workers {
        w.await.unwrap();
    }
    acked.load(Ordering::Relaxed)
}

async fn state_is_busy(state: &connector::store::StateStore) -> bool {
    let q = state.queue_gauges().await.unwrap();
    q.inbox_pending + q.outbox_pending + q.outbox_submitted > 0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_on_one_database_deliver_everything_once_within_the_brand_budget_despite_a_kill()
 {
    if postgres_url().is_none() {
        println!("{POSTGRES_SKIP_MESSAGE}");
        return;
    }
    let db = TestStore::new(connector::store::Backend::Postgres)
        .await
        .expect("CT_OMNISEND_TEST_POSTGRES is set: the server must be usable")
        .expect("postgres configured");
    let shop = Shop::start().await;
    let expected_products = shop.expected_products().await;
    assert!(
        expected_products.len() > PRODUCTS / 2,
        "the reference run writes most products ({})",
        expected_products.len()
    );

    // 5,000 orders, each announced by its OrderCreated message in a Pub/Sub envelope.
    let mut order_ids = BTreeSet::new();
    let mut envelopes = Vec::with_capacity(ORDERS);
    for n in 0..ORDERS {
        let mut spec = OrderSpec::sample(10_000 + n, "EUR");
        spec.store_key = Some("eu".into());
        let message = shop.ct.create_order(orders::order(&spec));
        let payload = emulators::notify::message_payload(&message, PROJECT);
        let id = format!("ps-{}", message["id"].as_str().unwrap());
        envelopes.push(emulators::notify::pubsub_push(&payload, &id));
        order_ids.insert(spec.id);
    }

    let mut instances = Vec::new();
    let mut bases = Vec::new();
    for _ in 0..3 {
        let (child, base) = shop.serve(db.url()).await;
        instances.push(child);
        bases.push(base);
    }
    let bases = Arc::new(bases);

    // The first half, then SIGKILL one instance mid-way (it holds leases and perhaps the
    // catalog job), then the rest.
    let second_half = envelopes.split_off(ORDERS / 2);
    let acked = post_all(bases.clone(), envelopes, 16).await;
    let killed_at = time::OffsetDateTime::now_utc();
    instances[0].start_kill().unwrap();
    instances[0].wait().await.unwrap();
    let acked = acked + post_all(bases.clone(), second_half, 16).await;
    assert_eq!(acked, ORDERS);

    // SIGTERM to a busy instance (its outbox work is far from done: the budget binds): it
    // stops within 10 s, cleanly; a replacement takes its place.
    assert!(
        state_is_busy(db.store()).await,
        "still busy when SIGTERM is sent"
    );
    let pid = instances[1].id().unwrap();
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let stopping = tokio::time::Instant::now();
    let termed_at = time::OffsetDateTime::now_utc();
    let status = tokio::time::timeout(Duration::from_secs(10), instances[1].wait())
        .await
        .expect("a busy instance exits within 10 s of SIGTERM")
        .unwrap();
    assert!(status.success(), "{status:?}");
    println!("SIGTERM to exit: {} ms", stopping.elapsed().as_millis());
    let (replacement, _) = shop.serve(db.url()).await;
    instances.push(replacement);

    let state = db.store().clone();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(600);
    loop {
        let q = state.queue_gauges().await.unwrap();
        let events = shop.omnisend.events(KEY).len();
        let products = shop.omnisend.products(KEY).len();
        if q.inbox_pending == 0
            && q.outbox_pending == 0
            && q.outbox_submitted == 0
            && events >= ORDERS
            && products >= expected_products.len()
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not drained in 10 minutes: {q:?}, {events} events, {products} products"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // Every event exactly once.
    let events = shop.omnisend.events(KEY);
    let ids: BTreeSet<&str> = events
        .iter()
        .map(|e| e["eventID"].as_str().unwrap())
        .collect();
    // Omnisend does not deduplicate real-time events, so a request Omnisend accepted in the
    // instant before the SIGKILL, whose acceptance the killed instance could not record, is sent
    // again by another instance (docs/events.md, "once only"). Only such copies are tolerated:
    // the first copy must have arrived within a second before the kill. Everything else —
    // including everything around the SIGTERM — must arrive exactly once.
    let received = |e: &Value| {
        time::OffsetDateTime::parse(
            e["receivedAt"].as_str().unwrap(),
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap()
    };
    let mut first: BTreeMap<&str, time::OffsetDateTime> = BTreeMap::new();
    let mut duplicates = Vec::new();
    for e in &events {
        let id = e["eventID"].as_str().unwrap();
        match first.get(id) {
            None => {
                first.insert(id, received(e));
            }
            Some(at) => duplicates.push((id, *at)),
        }
    }
    let window =
        (killed_at - time::Duration::seconds(1))..=(killed_at + time::Duration::milliseconds(100));
    let unexplained: Vec<_> = duplicates
        .iter()
        .filter(|(_, at)| !window.contains(at))
        .collect();
    println!(
        "{} events, {} sent twice (all accepted in the second before the SIGKILL)",
        events.len(),
        duplicates.len()
    );
    assert!(
        unexplained.is_empty(),
        "{} duplicate events outside the SIGKILL window (kill at {killed_at}, SIGTERM at \
         {termed_at}), e.g. {:?}",
        unexplained.len(),
        unexplained.first()
    );
    assert_eq!(ids.len() + duplicates.len(), events.len());
    let delivered: BTreeSet<String> = events
        .iter()
        .map(|e| e["properties"]["orderID"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(delivered, order_ids, "each order's placed order event once");

    // Every product as a clean single run writes it.
    let written: BTreeMap<String, Value> = shop
        .omnisend
        .products(KEY)
        .into_iter()
        .map(|p| (p["id"].as_str().unwrap().to_owned(), p))
        .collect();
    assert_eq!(
        written.keys().collect::<Vec<_>>(),
        expected_products.keys().collect::<Vec<_>>()
    );
    for (id, want) in &expected_products {
        for (field, value) in want.as_object().unwrap() {
            assert_eq!(
                written[id].get(field),
                Some(value),
                "product {id} field {field}"
            );
        }
    }

    // Nothing stuck, nothing rejected among the events, the catalog job ran and is idle.
    let gauges = state.queue_gauges().await.unwrap();
    assert_eq!((gauges.outbox_pending, gauges.outbox_submitted), (0, 0));
    let rejected = state.count_rejected_open().await.unwrap();
    assert!(
        !rejected.iter().any(|(entity, _)| entity == "event"),
        "{rejected:?}"
    );
    let job = state.job("catalog:eu").await.unwrap().expect("catalog job");
    assert!(job.runs >= 1);

    // The brand's budget held across the instances.
    let busiest = shop
        .omnisend
        .max_requests_in_window(KEY, Duration::from_secs(60));
    let total = shop
        .omnisend
        .requests()
        .iter()
        .filter(|r| r.api_key == KEY)
        .count();
    let throttled = shop
        .omnisend
        .requests()
        .iter()
        .filter(|r| r.status == 429)
        .count();
    let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
    for r in shop.omnisend.requests() {
        let head = r.path.split('/').nth(1).unwrap_or("").to_owned();
        let kind = match (
            r.method.as_str(),
            head.as_str(),
            r.path.matches('/').count(),
        ) {
            ("GET", "batches", n) if n > 2 => "GET /batches/{id}/items".to_owned(),
            ("GET", "batches", _) => "GET /batches/{id}".to_owned(),
            (m, h, _) => format!("{m} /{h}"),
        };
        *kinds.entry(kind).or_default() += 1;
    }
    println!(
        "{total} Omnisend requests {kinds:?}, busiest 60 s window {busiest}, {throttled} × 429"
    );
    assert!(
        busiest <= RPM,
        "{busiest} requests in one 60 s window > {RPM}"
    );
    // The budget was what bound: the work needed more than a minute of it, and the instances
    // used nearly all of it (otherwise the first assertion would hold without any sharing).
    assert!(
        total > RPM,
        "the work needed only {total} requests, not more than a minute of the {RPM}/min budget"
    );
    assert!(
        busiest * 100 >= RPM * 85,
        "only {busiest} of {RPM} requests in the busiest 60 s window: the work did not need the \
         whole budget, so this run does not show that the instances share it"
    );
    assert_eq!(throttled, 0);

    for child in &mut instances[2..] {
        child.start_kill().unwrap();
        child.wait().await.unwrap();
    }
}
