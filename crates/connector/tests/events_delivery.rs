//! Outbox delivery against the Omnisend emulator: a backlog goes out through `/batches`, each
//! item's result is recorded (sent, rejected, retried), a batched event still holds back the
//! next event of its order, and two workers on one outbox never send an event twice.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use connector::config::{EventsSettings, RawEvents};
use connector::events::deliver::Delivery;
use connector::store::testing::TestStore;
use connector::store::{Application, Backend, Lane, NewEvent, RejectedFilter};
use emulators::{Faults, OmnisendEmulator, OmnisendEmulatorConfig};
use omnisend::{OmnisendClient, OmnisendConfig, RateController};
use serde_json::{Value, json};
use time::OffsetDateTime;
use tokio::sync::Notify;

const BRAND: &str = "KEY_ENV";
const KEY: &str = "delivery-brand-key";

fn placed(order: &str, valid: bool) -> Value {
    let mut properties = json!({"orderID": order, "currency": "EUR", "totalPrice": 10.5});
    if !valid {
        properties.as_object_mut().unwrap().remove("totalPrice");
    }
    json!({
        "eventName": "placed order", "eventVersion": "v2", "origin": "api",
        "eventID": uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, format!("{order}/placed").as_bytes()).to_string(),
        "contact": {"email": format!("{order}@example.com")},
        "properties": properties,
    })
}

fn paid(order: &str) -> Value {
    json!({
        "eventName": "paid for order", "eventVersion": "v2", "origin": "api",
        "eventID": uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, format!("{order}/paid").as_bytes()).to_string(),
        "contact": {"email": format!("{order}@example.com")},
        "properties": {"orderID": order, "currency": "EUR", "totalPrice": 10.5},
    })
}

fn row(order: &str, body: Value) -> NewEvent {
    NewEvent {
        brand: BRAND.into(),
        event_id: body["eventID"].as_str().unwrap().to_owned(),
        event_name: body["eventName"].as_str().unwrap().to_owned(),
        ordering_key: format!("order:{order}"),
        lane: Lane::Realtime,
        body,
        facts: Vec::new(),
    }
}

fn settings() -> EventsSettings {
    let mut s = EventsSettings::from_raw(RawEvents::default()).unwrap();
    s.retry_base = Duration::from_millis(20);
    s.retry_max = Duration::from_millis(200);
    s
}

fn clients(omnisend: &OmnisendEmulator) -> HashMap<String, OmnisendClient> {
    let mut config = OmnisendConfig::new(KEY).with_api_url(omnisend.base_url());
    config.batch_poll_interval = Duration::from_millis(20);
    let client = OmnisendClient::new(config, RateController::new(6000, 50)).unwrap();
    HashMap::from([(BRAND.to_owned(), client)])
}

async fn drain(delivery: &Delivery, t: &TestStore) {
    for _ in 0..500 {
        delivery.round(OffsetDateTime::now_utc()).await.unwrap();
        if t.store()
            .outbox_depth(OffsetDateTime::now_utc())
            .await
            .unwrap()
            .pending
            == 0
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the outbox did not drain");
}

#[tokio::test]
async fn a_backlog_goes_out_in_batches_and_each_item_result_is_recorded() {
    let t = TestStore::new(Backend::Sqlite).await.unwrap().unwrap();
    let omnisend = OmnisendEmulator::start(OmnisendEmulatorConfig {
        // Batches stay in progress a while: the second event of an order must wait for them.
        batch_delay: Duration::from_millis(100),
        ..OmnisendEmulatorConfig::default()
    })
    .await
    .unwrap();
    let mut events = Vec::new();
    for n in 0..130 {
        let order = format!("o-{n}");
        events.push(row(&order, placed(&order, n % 50 != 7)));
    }
    events.push(row("o-0", paid("o-0")));
    t.store()
        .apply(
            &Application {
                events,
                ..Application::default()
            },
            OffsetDateTime::now_utc(),
        )
        .await
        .unwrap();
    let delivery = Delivery::new(
        t.store().clone(),
        clients(&omnisend),
        settings(),
        "w1".into(),
        Arc::new(Notify::new()),
    );
    drain(&delivery, &t).await;

    let received = omnisend.events(KEY);
    assert_eq!(
        received.len(),
        128,
        "130 placed minus 3 invalid, plus 1 paid"
    );
    let batches = omnisend
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path == "/batches")
        .count();
    assert!(
        batches >= 2,
        "the backlog went through /batches ({batches})"
    );
    // The paid event of o-0 came after its placed order, although the placed order travelled
    // in a batch that was still in progress when the paid event was due.
    let pos = |name: &str| {
        received
            .iter()
            .position(|e| e["eventName"] == name && e["properties"]["orderID"] == "o-0")
            .unwrap()
    };
    assert!(pos("placed order") < pos("paid for order"));
    let depth = t
        .store()
        .outbox_depth(OffsetDateTime::now_utc())
        .await
        .unwrap();
    assert_eq!((depth.sent, depth.rejected, depth.pending), (128, 3, 0));
    let rejected = t
        .store()
        .list_rejected(&RejectedFilter {
            entity: Some("event".into()),
            route: None,
            open_only: true,
            limit: 10,
        })
        .await
        .unwrap();
    assert_eq!(rejected.len(), 3);
    assert!(
        rejected.iter().all(|r| r.reason.contains("400")),
        "{rejected:#?}"
    );
}

#[tokio::test]
async fn failed_sends_are_retried_and_two_workers_never_send_an_event_twice() {
    let t = TestStore::new(Backend::Sqlite).await.unwrap().unwrap();
    let omnisend = OmnisendEmulator::start(OmnisendEmulatorConfig {
        rate_limit_per_minute: None,
        faults: Faults {
            error_rate: 0.3,
            latency: Duration::from_millis(30),
            seed: 3,
            ..Faults::default()
        },
        ..OmnisendEmulatorConfig::default()
    })
    .await
    .unwrap();
    let events: Vec<NewEvent> = (0..60)
        .map(|n| {
            let order = format!("w-{n}");
            row(&order, placed(&order, true))
        })
        .collect();
    t.store()
        .apply(
            &Application {
                events,
                ..Application::default()
            },
            OffsetDateTime::now_utc(),
        )
        .await
        .unwrap();
    let mut s = settings();
    // Single requests only, and a lease far shorter than the run: leases must be renewed.
    s.batch_threshold = 1000;
    s.lease = Duration::from_secs(1);
    let worker = |name: &str| {
        Delivery::new(
            t.store().clone(),
            clients(&omnisend),
            s.clone(),
            name.into(),
            Arc::new(Notify::new()),
        )
    };
    let (a, b) = (worker("a"), worker("b"));
    let (ta, tb) = (&t, &t);
    tokio::join!(drain(&a, ta), drain(&b, tb));
    omnisend.set_faults(Faults::default());
    let received = omnisend.events(KEY);
    let mut ids: Vec<&str> = received
        .iter()
        .map(|e| e["eventID"].as_str().unwrap())
        .collect();
    ids.sort_unstable();
    let total = ids.len();
    ids.dedup();
    assert_eq!(ids.len(), 60, "every event arrived");
    assert_eq!(total, 60, "none twice");
}
