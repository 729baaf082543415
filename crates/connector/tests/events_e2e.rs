//! Real-time events end to end, over HTTP: commercetools change notifications (official
//! Pub/Sub push / Platform shapes, built by `emulators::notify`) are posted to a running
//! `serve` ([`connector::serve::run`] on port 0) against the commercetools and Omnisend
//! emulators; what Omnisend receives is checked.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use connector::config::Settings;
use connector::serve::{Service, run};
use connector::store::Backend;
use connector::store::testing::TestStore;
use emulators::orders::{self, LineSpec, OrderSpec};
use emulators::{
    CtEmulator, CtEmulatorConfig, Faults, OmnisendEmulator, OmnisendEmulatorConfig, notify,
};
use secrecy::SecretString;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

const PROJECT: &str = "events-shop";
const KEY: &str = "key-events-brand";
const TOKEN: &str = "webhook-token-123456";
const STOREFRONT_TOKEN: &str = "storefront-token-123456";
const RECOVERY_SECRET: &str = "recovery-secret-0123456789abcdef0123456789";

struct Rig {
    ct: CtEmulator,
    omnisend: OmnisendEmulator,
    store: TestStore,
    settings: Arc<Settings>,
    base: String,
    http: reqwest::Client,
    stop: CancellationToken,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    _dir: tempfile::TempDir,
}

fn config(ct: &CtEmulator, omnisend: &OmnisendEmulator, extra: &str) -> String {
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
max_attempts = 2

[events]
retry_base_ms = 50
retry_max_secs = 1
lease_secs = 5
{extra}

[[stores]]
key = "default"
locales = ["en"]
currency = "EUR"
country = "US"
product_url = "https://shop.example.com/p/{{slug}}"
cart_recovery_url = "https://shop.example.com/cart/recover?token={{token}}"
omnisend_api_key_env = "OMNISEND_KEY"
"#,
        api = ct.api_url(),
        auth = ct.auth_url(),
        os = omnisend.base_url(),
    )
}

impl Rig {
    async fn start(extra: &str) -> Rig {
        Self::start_with(extra, None).await
    }

    async fn start_with(extra: &str, oidc: Option<connector::ingest::oidc::OidcVerifier>) -> Rig {
        let store = TestStore::new(Backend::Sqlite).await.unwrap().unwrap();
        let ct = CtEmulator::start(CtEmulatorConfig {
            project_key: PROJECT.into(),
            client_id: "id".into(),
            client_secret: "secret".into(),
            ..CtEmulatorConfig::default()
        })
        .await
        .unwrap();
        let omnisend = OmnisendEmulator::start(OmnisendEmulatorConfig::default())
            .await
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, config(&ct, &omnisend, extra)).unwrap();
        let mut settings = Settings::load(Some(&path), &|_| None).unwrap();
        settings.state_url = store.url().to_owned();
        let settings = Arc::new(settings);
        let ct_client = connector::app::commercetools_client(&settings).unwrap();
        let mut clients = HashMap::new();
        clients.insert(
            "OMNISEND_KEY".to_owned(),
            connector::app::omnisend_client(&settings, KEY.into()).unwrap(),
        );
        let service = Service {
            settings: settings.clone(),
            store: store.store().clone(),
            ct: ct_client,
            clients,
            webhook_token: Some(SecretString::from(TOKEN)),
            storefront_token: Some(SecretString::from(STOREFRONT_TOKEN)),
            recovery_secret: Some(SecretString::from(RECOVERY_SECRET)),
            oidc,
            idle_poll: Duration::from_millis(50),
            instance: "test-instance".into(),
            admin_password: None,
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let stop = CancellationToken::new();
        let server = tokio::spawn(run(service, listener, stop.clone()));
        Rig {
            ct,
            omnisend,
            store,
            settings,
            base,
            http: reqwest::Client::new(),
            stop,
            server,
            _dir: dir,
        }
    }

    async fn post_raw(&self, body: &str, token: Option<&str>) -> u16 {
        let mut req = self
            .http
            .post(format!("{}/webhooks/commercetools", self.base))
            .header("content-type", "application/json")
            .body(body.to_owned());
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send().await.unwrap().status().as_u16()
    }

    async fn deliver(&self, envelope: &Value) -> u16 {
        self.post_raw(&envelope.to_string(), Some(TOKEN)).await
    }

    /// Delivers a recorded message as Pub/Sub would (message id = the message's id).
    async fn deliver_message(&self, message: &Value) -> u16 {
        let payload = notify::message_payload(message, PROJECT);
        let id = format!("ps-{}", message["id"].as_str().unwrap());
        self.deliver(&notify::pubsub_push(&payload, &id)).await
    }

    /// Waits until the inbox and the outbox are empty (or fails after 20 s).
    async fn settle(&self) {
        let s = self.store.store();
        for _ in 0..400 {
            let inbox = s.count_pending_notifications().await.unwrap();
            let outbox = s
                .outbox_depth(time::OffsetDateTime::now_utc())
                .await
                .unwrap();
            if inbox == 0 && outbox.pending == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("inbox/outbox did not drain");
    }

    fn events(&self) -> Vec<Value> {
        self.omnisend.events(KEY)
    }

    fn names(&self) -> Vec<String> {
        self.events()
            .iter()
            .map(|e| e["eventName"].as_str().unwrap().to_owned())
            .collect()
    }

    async fn stop(self) {
        self.stop.cancel();
        self.server.await.unwrap().unwrap();
    }
}

/// A sample order created just now (orders created long ago and never seen adopt their
/// history: see `old_orders_seen_first_send_only_the_notified_change`).
fn fresh_order(n: usize, currency: &str) -> OrderSpec {
    let mut spec = OrderSpec::sample(n, currency);
    spec.created_at = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    spec
}

fn order_messages(ct: &CtEmulator, order_id: &str) -> Vec<Value> {
    ct.messages()
        .into_iter()
        .filter(|m| m["resource"]["id"] == order_id)
        .collect()
}

/// A fixed shuffle (no RNG needed): reverse, then swap neighbours.
fn shuffled(mut v: Vec<Value>) -> Vec<Value> {
    v.reverse();
    for i in (0..v.len().saturating_sub(1)).step_by(2) {
        v.swap(i, i + 1);
    }
    v
}

#[tokio::test]
async fn each_pubsub_envelope_delivered_three_times_yields_exactly_one_event() {
    let rig = Rig::start("ordered_product_events = false").await;
    let spec = fresh_order(1, "EUR");
    let created = rig.ct.create_order(orders::order(&spec));
    let paid = rig.ct.change_payment_state(&spec.id, "Paid");
    for m in [&created, &paid] {
        let first = rig.deliver_message(m).await;
        assert_eq!(first, 202, "first delivery is stored");
        for _ in 0..2 {
            assert_eq!(
                rig.deliver_message(m).await,
                200,
                "redelivery is a duplicate"
            );
        }
    }
    rig.settle().await;
    // The same notifications once more after processing: still nothing new.
    rig.deliver_message(&created).await;
    rig.settle().await;
    assert_eq!(rig.names(), ["placed order", "paid for order"]);
    // Deterministic ids: the UUIDv5 of the fact, so a historical replay would match them.
    let events = rig.events();
    let placed_id = connector::mapping::events::event_id(
        PROJECT,
        "order",
        &spec.id,
        connector::mapping::events::EventName::PlacedOrder,
        "",
    );
    assert_eq!(events[0]["eventID"], placed_id.to_string());
    assert_ne!(events[0]["eventID"], events[1]["eventID"]);
    rig.stop().await;
}

#[tokio::test]
async fn shuffled_delivery_of_an_order_yields_events_in_causal_order_and_none_stale() {
    let rig = Rig::start("ordered_product_events = false").await;
    let spec = fresh_order(2, "EUR");
    let line = spec.lines[0].line_id.clone();
    rig.ct.create_order(orders::order(&spec));
    rig.ct.change_payment_state(&spec.id, "Paid");
    rig.ct
        .change_shipment_state(&spec.id, "Shipped", &[("TRACK-1", "DHL")]);
    rig.ct.add_return_info(&spec.id, &[(line.as_str(), 1)]);
    let order = rig.ct.order(&spec.id).unwrap();
    let return_item = order["returnInfo"][0]["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    rig.ct
        .set_return_payment_state(&spec.id, &return_item, "Refunded");
    let messages = shuffled(order_messages(&rig.ct, &spec.id));
    assert!(messages.len() >= 5);
    for m in &messages {
        assert!(matches!(rig.deliver_message(m).await, 200 | 202));
    }
    rig.settle().await;
    assert_eq!(
        rig.names(),
        [
            "placed order",
            "paid for order",
            "order fulfilled",
            "order refunded"
        ]
    );
    let events = rig.events();
    assert_eq!(events[2]["properties"]["tracking"]["code"], "TRACK-1");
    assert_eq!(
        events[3]["properties"]["refundedLineItems"][0]["productQuantity"],
        1
    );
    // Every later notification was older than the version already applied: counted stale,
    // nothing re-sent.
    let outbox = rig.store.store().outbox_events(None).await.unwrap();
    assert_eq!(outbox.len(), 4);
    assert!(outbox.iter().all(|e| e.status == "sent"));
    rig.stop().await;
}

#[tokio::test]
async fn a_cart_updated_five_times_with_two_additions_yields_exactly_two_added_events() {
    let rig = Rig::start("").await;
    let mut spec = orders::CartSpec::sample(1, "EUR");
    spec.lines = Vec::new();
    spec.customer_email = None;
    let cart_id = spec.id.clone();
    let mut version = rig.ct.create_cart(orders::cart(&spec));
    let notify_update = |version: i64| {
        notify::resource_updated(
            PROJECT,
            "cart",
            &cart_id,
            version,
            version - 1,
            "2026-11-27T10:00:00.000Z",
        )
    };
    let first = notify::resource_created(
        PROJECT,
        "cart",
        &cart_id,
        version,
        "2026-11-27T10:00:00.000Z",
    );
    assert_eq!(
        rig.deliver(&notify::pubsub_push(&first, "cart-0")).await,
        202
    );
    rig.settle().await;
    let a = LineSpec::sample(7);
    let b = LineSpec::sample(8);
    let updates: Vec<Update<'_>> = vec![
        Box::new(|ct| ct.set_cart_customer_email(&cart_id, "Shopper@Example.com")),
        Box::new(|ct| ct.add_line_item(&cart_id, orders::line_item(&a, "EUR"))),
        Box::new(|ct| {
            ct.set_cart_shipping_address(&cart_id, orders::default_address(&cart_id, "DE", None))
        }),
        Box::new(|ct| ct.add_line_item(&cart_id, orders::line_item(&b, "EUR"))),
        Box::new(|ct| ct.set_cart_customer_email(&cart_id, "shopper@example.com")),
    ];
    for (i, update) in updates.iter().enumerate() {
        version = update(&rig.ct);
        let envelope = notify::pubsub_push(&notify_update(version), &format!("cart-{}", i + 1));
        assert_eq!(rig.deliver(&envelope).await, 202);
        // Redelivered too, as Pub/Sub may.
        assert_eq!(rig.deliver(&envelope).await, 200);
        rig.settle().await;
    }
    let events = rig.events();
    let added: Vec<&Value> = events
        .iter()
        .filter(|e| e["eventName"] == "added product to cart")
        .collect();
    assert_eq!(added.len(), 2, "{events:#?}");
    assert_eq!(added[0]["properties"]["addedItem"]["productSKU"], a.sku);
    assert_eq!(added[1]["properties"]["addedItem"]["productSKU"], b.sku);
    assert_eq!(added[0]["properties"]["addedItem"]["productQuantity"], 1);
    assert_eq!(added[0]["contact"]["email"], "shopper@example.com");
    assert_eq!(
        added[1]["properties"]["lineItems"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let url = added[0]["properties"]["abandonedCheckoutURL"]
        .as_str()
        .unwrap();
    let token = url.split("token=").nth(1).unwrap();
    let recovered = connector::recovery::RecoveryToken::verify(
        RECOVERY_SECRET.as_bytes(),
        token,
        time::OffsetDateTime::now_utc(),
    )
    .unwrap();
    assert_eq!(recovered.cart_id, cart_id);
    assert_eq!(events.len(), 2, "no started checkout unless configured");
    rig.stop().await;
}

/// One change to the emulator's cart, returning the new version.
type Update<'a> = Box<dyn Fn(&CtEmulator) -> i64 + 'a>;

/// The oracle for the money test: minor units → the decimal string Omnisend must receive.
fn major(cents: i64, currency: &str) -> String {
    let digits = orders::fraction_digits(currency);
    let d = rust_decimal::Decimal::new(cents, digits).normalize();
    d.to_string()
}

#[tokio::test]
async fn amounts_are_exact_for_zero_two_and_three_fraction_digits_with_both_discount_levels() {
    let rig = Rig::start("ordered_product_events = false").await;
    for (n, currency) in [(11, "JPY"), (12, "EUR"), (13, "KWD")] {
        let mut spec = fresh_order(n, currency);
        // Odd amounts so rounding or float artefacts would show.
        spec.lines[0].unit_cents = 12_345;
        spec.lines[0].quantity = 3;
        spec.lines[0].line_discount_cents_per_unit = Some(1_111);
        spec.lines[1].unit_cents = 7;
        spec.shipping_cents = Some(333);
        let code_id = orders::derived_id("discount-code", &n.to_string());
        rig.ct.put_discount_code(orders::discount_code(
            &code_id,
            "SAVE",
            &[("en", "Summer sale")],
        ));
        spec.order_discount = Some((code_id, 1_001));
        let created = rig.ct.create_order(orders::order(&spec));
        assert_eq!(rig.deliver_message(&created).await, 202);
        rig.settle().await;
        let event = rig
            .events()
            .into_iter()
            .find(|e| e["properties"]["orderID"] == spec.id.as_str())
            .unwrap();
        let p = &event["properties"];
        assert_eq!(p["currency"], currency);
        let num = |v: &Value| v.as_number().unwrap().to_string();
        let same = |got: &Value, cents: i64| {
            let got: rust_decimal::Decimal = num(got).parse().unwrap();
            let want: rust_decimal::Decimal = major(cents, currency).parse().unwrap();
            assert_eq!(got, want, "{currency}: {p:#}");
        };
        same(&p["totalPrice"], spec.total_cents());
        same(&p["shippingPrice"], 333);
        let line_discounts = 1_111 * 3;
        same(&p["totalDiscount"], line_discounts + 1_001);
        same(&p["lineItems"][0]["productPrice"], 12_345);
        same(&p["lineItems"][0]["productDiscount"], line_discounts);
        same(&p["discounts"][0]["amount"], 1_001);
        // The code reference resolved to the code the shopper entered.
        assert_eq!(p["discounts"][0]["code"], "SAVE");
    }
    rig.stop().await;
}

#[tokio::test]
async fn every_event_body_validates_against_the_official_schema_with_recommended_names() {
    let rig =
        Rig::start("checkout_on_shipping_address = true\nordered_product_events = true").await;
    let spec = fresh_order(21, "EUR");
    let line = spec.lines[0].line_id.clone();
    rig.ct.create_order(orders::order(&spec));
    rig.ct.change_payment_state(&spec.id, "Paid");
    rig.ct.change_shipment_state(&spec.id, "Delivered", &[]);
    rig.ct.add_return_info(&spec.id, &[(line.as_str(), 1)]);
    let item = rig.ct.order(&spec.id).unwrap()["returnInfo"][0]["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    rig.ct.set_return_payment_state(&spec.id, &item, "Refunded");
    let other = fresh_order(22, "EUR");
    rig.ct.create_order(orders::order(&other));
    rig.ct.change_order_state(&other.id, "Cancelled");
    for m in order_messages(&rig.ct, &spec.id)
        .into_iter()
        .chain(order_messages(&rig.ct, &other.id))
    {
        rig.deliver_message(&m).await;
    }
    let cart = orders::CartSpec::sample(21, "EUR");
    let v = rig.ct.create_cart(orders::cart(&cart));
    let v2 = rig
        .ct
        .set_cart_shipping_address(&cart.id, orders::default_address(&cart.id, "DE", None));
    for (version, id) in [(v, "c-1"), (v2, "c-2")] {
        let n = notify::resource_updated(
            PROJECT,
            "cart",
            &cart.id,
            version,
            version - 1,
            "2026-11-27T10:00:00.000Z",
        );
        rig.deliver(&notify::pubsub_push(&n, id)).await;
    }
    rig.settle().await;
    let events = rig.events();
    let expected_versions: HashMap<&str, &str> = [
        ("placed order", "v2"),
        ("ordered product", "v2"),
        ("paid for order", "v2"),
        ("order fulfilled", "v2"),
        ("order canceled", "v2"),
        ("order refunded", "v2"),
        ("added product to cart", ""),
        ("started checkout", ""),
    ]
    .into_iter()
    .collect();
    let seen: std::collections::HashSet<&str> = events
        .iter()
        .map(|e| e["eventName"].as_str().unwrap())
        .collect();
    for name in expected_versions.keys() {
        assert!(seen.contains(name), "no {name:?} event in {seen:?}");
    }
    for e in &events {
        let name = e["eventName"].as_str().unwrap();
        assert_eq!(
            e["eventVersion"].as_str().unwrap_or(""),
            expected_versions[name],
            "{name}"
        );
        assert_eq!(e["origin"], "api");
        assert!(uuid::Uuid::parse_str(e["eventID"].as_str().unwrap()).is_ok());
    }
    let Some(validator) =
        omnisend::contract::validator_for("omnisend-events-api-openapi.yml", "EventRequest")
    else {
        println!("skipped: ../shared/specs/omnisend not present");
        rig.stop().await;
        return;
    };
    for e in &events {
        let mut body = e.clone();
        body.as_object_mut().unwrap().remove("receivedAt");
        let errors = omnisend::contract::errors(&validator, &body);
        assert!(errors.is_empty(), "{}: {errors:?}", e["eventName"]);
    }
    rig.stop().await;
}

#[tokio::test]
async fn bad_input_is_refused_with_the_right_status_and_changes_nothing() {
    let rig = Rig::start("").await;
    let good = {
        let spec = fresh_order(31, "EUR");
        let m = rig.ct.create_order(orders::order(&spec));
        notify::pubsub_push(&notify::message_payload(&m, PROJECT), "good-1")
    };
    let bad_base64 = json!({"message": {"data": "%%% not base64 %%%", "messageId": "b-1"},
        "subscription": "projects/p/subscriptions/s"});
    let unknown_type = notify::pubsub_push(
        &json!({"notificationType": "SomethingElse", "projectKey": PROJECT,
            "resource": {"typeId": "order", "id": "o-x"}, "version": 1}),
        "u-1",
    );
    let oversized = format!("{{\"pad\":\"{}\"}}", "x".repeat(1 << 20));
    assert_eq!(rig.post_raw("not json", Some(TOKEN)).await, 400);
    assert_eq!(
        rig.post_raw(&bad_base64.to_string(), Some(TOKEN)).await,
        400
    );
    assert_eq!(rig.post_raw(&good.to_string(), None).await, 401);
    assert_eq!(
        rig.post_raw(&good.to_string(), Some("wrong-token")).await,
        401
    );
    assert_eq!(rig.post_raw(&oversized, Some(TOKEN)).await, 413);
    // Well-formed but never processable: acknowledged (no endless redelivery), recorded.
    assert_eq!(rig.deliver(&unknown_type).await, 202);
    let missing = notify::pubsub_push(
        &json!({"notificationType": "Message", "projectKey": PROJECT, "id": "m-missing",
            "version": 1, "sequenceNumber": 1, "resourceVersion": 1, "type": "OrderCreated",
            "resource": {"typeId": "order", "id": "no-such-order"},
            "createdAt": "2026-11-27T10:00:00.000Z", "lastModifiedAt": "2026-11-27T10:00:00.000Z"}),
        "missing-1",
    );
    assert_eq!(rig.deliver(&missing).await, 202);
    rig.settle().await;
    assert!(rig.events().is_empty(), "nothing sent for bad input");
    let rejected = rig
        .store
        .store()
        .list_rejected(&connector::store::RejectedFilter {
            entity: Some("notification".into()),
            route: None,
            open_only: true,
            limit: 10,
        })
        .await
        .unwrap();
    assert_eq!(rejected.len(), 2, "{rejected:#?}");
    assert!(
        rejected
            .iter()
            .any(|r| r.reason.contains("unknown resource"))
    );
    // The server keeps serving: the good notification goes through.
    assert_eq!(rig.deliver(&good).await, 202);
    rig.settle().await;
    assert_eq!(
        rig.names().first().map(String::as_str),
        Some("placed order")
    );
    rig.stop().await;
}

#[tokio::test]
async fn omnisend_outages_are_retried_and_each_event_still_arrives_once() {
    let rig = Rig::start("ordered_product_events = false").await;
    rig.omnisend.set_faults(Faults {
        error_rate: 0.5,
        seed: 9,
        ..Faults::default()
    });
    let mut ids = Vec::new();
    for n in 0..12 {
        let spec = fresh_order(100 + n, "EUR");
        let m = rig.ct.create_order(orders::order(&spec));
        assert_eq!(rig.deliver_message(&m).await, 202);
        ids.push(spec.id);
    }
    rig.settle().await;
    rig.omnisend.set_faults(Faults::default());
    let events = rig.events();
    let mut placed: Vec<&str> = events
        .iter()
        .map(|e| e["properties"]["orderID"].as_str().unwrap())
        .collect();
    placed.sort_unstable();
    ids.sort_unstable();
    assert_eq!(placed, ids.iter().map(String::as_str).collect::<Vec<_>>());
    rig.stop().await;
}

#[tokio::test]
async fn storefront_events_are_authenticated_checked_and_sent_once_per_request_id() {
    let rig = Rig::start("").await;
    let cart = orders::CartSpec::sample(41, "EUR");
    rig.ct.create_cart(orders::cart(&cart));
    let post = |body: Value, token: Option<&'static str>| {
        let mut req = rig
            .http
            .post(format!("{}/events/storefront", rig.base))
            .json(&body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        async move { req.send().await.unwrap().status().as_u16() }
    };
    let checkout = json!({"event": "started checkout", "requestId": "r-1", "cartId": cart.id});
    assert_eq!(post(checkout.clone(), None).await, 401);
    assert_eq!(
        post(json!({"event": "started checkout"}), Some(STOREFRONT_TOKEN)).await,
        400
    );
    assert_eq!(post(checkout.clone(), Some(STOREFRONT_TOKEN)).await, 202);
    assert_eq!(post(checkout, Some(STOREFRONT_TOKEN)).await, 200);
    rig.settle().await;
    let names = rig.names();
    assert_eq!(names, ["started checkout"], "{:#?}", rig.events());
    let e = &rig.events()[0];
    assert_eq!(e["properties"]["cartID"], cart.id.as_str());
    assert_eq!(e["contact"]["email"], "shopper41@example.com");
    assert!(
        e["contact"].get("consents").is_none(),
        "no evidence, no statement"
    );

    // A product view with the shopper's consent (given, then refused in a later view).
    let line = LineSpec::sample(42);
    rig.ct.put_product(orders::product(&line, "EUR"));
    let view = |request: &str, email_consent: bool| {
        json!({"event": "viewed product", "requestId": request,
            "product": {"sku": line.sku}, "shopper": {"email": "Viewer@Example.com"},
            "consent": {"email": email_consent, "source": "newsletter-box",
                "createdAt": "2026-11-27T09:00:00Z", "ip": "203.0.113.9"}})
    };
    assert_eq!(post(view("v-1", true), Some(STOREFRONT_TOKEN)).await, 202);
    assert_eq!(post(view("v-2", false), Some(STOREFRONT_TOKEN)).await, 202);
    rig.settle().await;
    let views: Vec<Value> = rig
        .events()
        .into_iter()
        .filter(|e| e["eventName"] == "viewed product")
        .collect();
    assert_eq!(views.len(), 2, "{:#?}", rig.events());
    assert_eq!(views[0]["contact"]["email"], "viewer@example.com");
    assert_eq!(views[0]["properties"]["product"]["sku"], line.sku.as_str());
    assert_eq!(
        views[0]["contact"]["consents"][0]["source"],
        "newsletter-box"
    );
    assert_eq!(views[0]["contact"]["consents"][0]["ip"], "203.0.113.9");
    assert_eq!(views[0]["contact"]["optIns"][0]["channel"], "email");
    assert_eq!(views[1]["contact"]["optOuts"][0]["channel"], "email");
    assert!(views[1]["contact"].get("optIns").is_none());
    rig.stop().await;
}

#[tokio::test]
async fn readiness_and_request_ids_are_served() {
    let rig = Rig::start("").await;
    let r = rig
        .http
        .get(format!("{}/readyz", rig.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(r.headers().contains_key("x-request-id"));
    let h = rig
        .http
        .get(format!("{}/healthz", rig.base))
        .header("x-request-id", "abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(h.headers()["x-request-id"], "abc-123");
    assert!(!rig.settings.events.ordered_product_events);
    rig.stop().await;
}

#[tokio::test]
async fn customer_and_product_messages_run_the_delta_syncs_within_seconds() {
    let rig = Rig::start("").await;
    let spec = emulators::customers::CustomerSpec {
        customers: 3,
        seed: 5,
        stores: Vec::new(),
        guest_orders: 0,
        guest_carts: 0,
    };
    let customer = emulators::customers::customer(&spec, 1);
    let id = customer["id"].as_str().unwrap().to_owned();
    let email = customer["email"].as_str().unwrap().trim().to_lowercase();
    rig.ct.put_customer(customer.clone());
    let message = json!({
        "notificationType": "Message", "projectKey": PROJECT, "id": "msg-customer-1",
        "version": 1, "sequenceNumber": 1, "resourceVersion": customer["version"],
        "type": "CustomerCreated", "resource": {"typeId": "customer", "id": id},
        "customer": customer,
        "createdAt": "2026-11-27T10:00:00.000Z", "lastModifiedAt": "2026-11-27T10:00:00.000Z"
    });
    assert_eq!(
        rig.deliver(&notify::pubsub_push(&message, "ps-customer-1"))
            .await,
        202
    );
    let mut found = false;
    for _ in 0..200 {
        found = rig.omnisend.contacts(KEY).iter().any(|c| {
            c["identifiers"]
                .as_array()
                .is_some_and(|ids| ids.iter().any(|i| i["id"] == email.as_str()))
        });
        if found {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        found,
        "the contact reached Omnisend: {:#?}",
        rig.omnisend.contacts(KEY)
    );
    assert!(rig.events().is_empty(), "a customer message is no event");
    rig.stop().await;
}

/// Serves a JWKS document on a local port.
async fn jwks_server(jwks: &'static str) -> String {
    let app = axum::Router::new().route(
        "/certs",
        axum::routing::get(move || async move { ([("content-type", "application/json")], jwks) }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/certs", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

fn push_token(pem: &str, kid: &str, audience: &str) -> String {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let claims = json!({
        "iss": "https://accounts.google.com", "aud": audience, "sub": "1234",
        "email": "push@project.iam.gserviceaccount.com", "email_verified": true,
        "iat": now, "exp": now + 600
    });
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some(kid.into());
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap();
    jsonwebtoken::encode(&header, &claims, &key).unwrap()
}

#[tokio::test]
async fn with_oidc_a_push_needs_a_valid_google_token_as_well_as_the_webhook_token() {
    let jwks = jwks_server(include_str!("fixtures/oidc/jwks-key-1.json")).await;
    let audience = "https://connector.example.com/webhooks/commercetools";
    let settings = connector::ingest::oidc::OidcSettings {
        jwks_url: jwks,
        ..connector::ingest::oidc::OidcSettings::google(audience)
            .with_service_account("push@project.iam.gserviceaccount.com")
    };
    let verifier = connector::ingest::oidc::OidcVerifier::new(settings, reqwest::Client::new());
    let rig = Rig::start_with("ordered_product_events = true", Some(verifier)).await;
    let spec = fresh_order(51, "EUR");
    let m = rig.ct.create_order(orders::order(&spec));
    let body = notify::pubsub_push(&notify::message_payload(&m, PROJECT), "oidc-1").to_string();
    let post = |jwt: Option<String>, token: Option<&str>| {
        let mut url = format!("{}/webhooks/commercetools", rig.base);
        if let Some(t) = token {
            url.push_str(&format!("?token={t}"));
        }
        let mut req = rig.http.post(url).body(body.clone());
        if let Some(j) = jwt {
            req = req.bearer_auth(j);
        }
        async move { req.send().await.unwrap().status().as_u16() }
    };
    let key1 = include_str!("fixtures/oidc/test-key-1.pem");
    let key2 = include_str!("fixtures/oidc/test-key-2.pem");
    // Signed by a key Google did not publish, a wrong audience, garbage, or no JWT at all.
    assert_eq!(
        post(Some(push_token(key2, "test-key-1", audience)), Some(TOKEN)).await,
        401
    );
    assert_eq!(
        post(
            Some(push_token(key1, "test-key-1", "https://other")),
            Some(TOKEN)
        )
        .await,
        401
    );
    assert_eq!(post(Some("not.a.jwt".into()), Some(TOKEN)).await, 401);
    assert_eq!(post(None, Some(TOKEN)).await, 401);
    // A valid JWT without the webhook token is not enough either.
    assert_eq!(
        post(Some(push_token(key1, "test-key-1", audience)), None).await,
        401
    );
    assert_eq!(
        rig.store
            .store()
            .count_pending_notifications()
            .await
            .unwrap(),
        0,
        "nothing stored"
    );
    assert_eq!(
        post(Some(push_token(key1, "test-key-1", audience)), Some(TOKEN)).await,
        202
    );
    rig.settle().await;
    assert_eq!(
        rig.names(),
        ["placed order", "ordered product", "ordered product"]
    );
    rig.stop().await;
}

#[tokio::test]
async fn carts_without_any_identity_are_skipped_and_counted() {
    let mut rig = Rig::start("").await;
    // The processor under test runs alone: stop the server's own workers first.
    rig.stop.cancel();
    (&mut rig.server).await.unwrap().unwrap();
    let mut spec = orders::CartSpec::sample(61, "EUR");
    spec.customer_email = None;
    let version = rig.ct.create_cart(orders::cart(&spec));
    let store = rig.store.store().clone();
    store
        .store_notification(&connector::store::NewInboxEntry {
            delivery_id: "anon-1".into(),
            source: "commercetools".into(),
            resource_type: "cart".into(),
            resource_id: spec.id.clone(),
            kind: "ResourceCreated".into(),
            sequence_number: None,
            resource_version: Some(version),
            payload: json!({}),
            received_at: time::OffsetDateTime::now_utc(),
        })
        .await
        .unwrap();
    let processor = connector::events::process::Processor::new(
        store.clone(),
        connector::app::commercetools_client(&rig.settings).unwrap(),
        rig.settings.clone(),
        None,
        Arc::new(tokio::sync::Notify::new()),
    );
    let stats = processor.round(10).await.unwrap();
    assert_eq!(
        (stats.processed, stats.anonymous_carts, stats.queued),
        (1, 1, 0)
    );
    assert_eq!(processor.totals().anonymous_carts, 1);
    assert_eq!(store.count_pending_notifications().await.unwrap(), 0);
    assert!(store.outbox_events(None).await.unwrap().is_empty());
}

#[tokio::test]
async fn old_orders_seen_first_send_only_the_notified_change() {
    let rig = Rig::start("ordered_product_events = false").await;
    // Placed, paid and shipped months ago, before the connector was set up; now a refund.
    let spec = OrderSpec::sample(71, "EUR");
    let line = spec.lines[0].line_id.clone();
    rig.ct.create_order(orders::order(&spec));
    rig.ct.change_payment_state(&spec.id, "Paid");
    rig.ct.change_shipment_state(&spec.id, "Shipped", &[]);
    rig.ct.add_return_info(&spec.id, &[(line.as_str(), 1)]);
    let item = rig.ct.order(&spec.id).unwrap()["returnInfo"][0]["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let refund = rig.ct.set_return_payment_state(&spec.id, &item, "Refunded");
    assert_eq!(rig.deliver_message(&refund).await, 202);
    rig.settle().await;
    assert_eq!(
        rig.names(),
        ["order refunded"],
        "no post-purchase flow for old history"
    );
    // The older messages arriving late change nothing: their facts are recorded as done.
    for m in order_messages(&rig.ct, &spec.id) {
        rig.deliver_message(&m).await;
    }
    rig.settle().await;
    assert_eq!(rig.names(), ["order refunded"]);
    let facts = rig
        .store
        .store()
        .facts_with_prefix("OMNISEND_KEY", &format!("order:{}:", spec.id))
        .await
        .unwrap();
    assert!(facts.contains(&format!("order:{}:placed", spec.id)));
    rig.stop().await;
}

#[tokio::test]
async fn cloud_events_and_payloads_left_out_are_read_back_from_commercetools() {
    let rig = Rig::start("ordered_product_events = false").await;
    let first = fresh_order(81, "EUR");
    let m1 = rig.ct.create_order(orders::order(&first));
    // Too large for the queue: commercetools leaves the order out of the message.
    let trimmed = notify::payload_not_included(&m1, PROJECT);
    assert!(trimmed.get("order").is_none());
    assert_eq!(
        rig.deliver(&notify::pubsub_push(&trimmed, "pni-1")).await,
        202
    );
    // A subscription in CloudEvents format.
    let second = fresh_order(82, "EUR");
    let m2 = rig.ct.create_order(orders::order(&second));
    let ce = notify::cloud_event(&notify::message_payload(&m2, PROJECT));
    assert_eq!(rig.deliver(&notify::pubsub_push(&ce, "ce-1")).await, 202);
    rig.settle().await;
    let mut orders: Vec<String> = rig
        .events()
        .iter()
        .map(|e| e["properties"]["orderID"].as_str().unwrap().to_owned())
        .collect();
    orders.sort();
    let mut want = vec![first.id.clone(), second.id.clone()];
    want.sort();
    assert_eq!(orders, want);
    rig.stop().await;
}
