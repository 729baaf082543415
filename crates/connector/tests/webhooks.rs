//! `POST /webhooks/commercetools` over HTTP (port 0): stored once before a 2xx, refused with the
//! right status when malformed or unauthenticated, and nothing stored then.

use base64::Engine;
use connector::ingest::webhook::{WebhookState, router};
use connector::store::testing::TestStore;
use connector::store::{Backend, RejectedFilter};
use secrecy::SecretString;
use serde_json::{Value, json};

const TOKEN: &str = "webhook-secret-for-tests";

struct Server {
    url: String,
    store: TestStore,
    http: reqwest::Client,
}

async fn start() -> Server {
    let store = TestStore::new(Backend::Sqlite).await.unwrap().unwrap();
    let app = router(WebhookState::new(
        store.store().clone(),
        Some(SecretString::from(TOKEN)),
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://{}/webhooks/commercetools",
        listener.local_addr().unwrap()
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    Server {
        url,
        store,
        http: reqwest::Client::new(),
    }
}

impl Server {
    async fn post(&self, body: impl Into<reqwest::Body>, token: Option<&str>) -> (u16, Value) {
        let mut req = self.http.post(&self.url).body(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let body = resp.json::<Value>().await.unwrap_or(Value::Null);
        (status, body)
    }

    async fn pending(&self) -> i64 {
        self.store
            .store()
            .count_pending_notifications()
            .await
            .unwrap()
    }
}

/// An `OrderCreated` message as commercetools sends it, in a Pub/Sub push envelope.
fn pubsub(message_id: &str, order: &str, sequence: i64) -> String {
    let message = json!({
        "notificationType": "Message",
        "projectKey": "test-shop",
        "id": format!("msg-{order}-{sequence}"),
        "version": 1,
        "sequenceNumber": sequence,
        "resource": {"typeId": "order", "id": order},
        "resourceVersion": sequence,
        "type": "OrderCreated",
        "order": {"id": order},
        "createdAt": "2026-11-27T10:00:00.000Z",
        "lastModifiedAt": "2026-11-27T10:00:00.000Z",
    });
    let data = base64::engine::general_purpose::STANDARD.encode(message.to_string());
    json!({
        "message": {"data": data, "messageId": message_id, "publishTime": "2026-11-27T10:00:01Z"},
        "subscription": "projects/p/subscriptions/ct-omnisend",
    })
    .to_string()
}

#[tokio::test]
async fn an_envelope_delivered_three_times_is_stored_once() {
    let s = start().await;
    let body = pubsub("pubsub-1", "order-1", 1);
    let statuses: Vec<u16> = [
        s.post(body.clone(), Some(TOKEN)).await.0,
        s.post(body.clone(), Some(TOKEN)).await.0,
        s.post(body, Some(TOKEN)).await.0,
    ]
    .into();
    assert_eq!(statuses, [202, 200, 200]);
    assert_eq!(s.pending().await, 1);
    // The same change redelivered under another Pub/Sub id is a duplicate too.
    let (status, body) = s.post(pubsub("pubsub-2", "order-1", 1), Some(TOKEN)).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("duplicate")));
    let entry = &s
        .store
        .store()
        .due_notifications(time::OffsetDateTime::now_utc(), 10)
        .await
        .unwrap()[0];
    assert_eq!(
        (entry.kind.as_str(), entry.resource_id.as_str()),
        ("OrderCreated", "order-1")
    );
    assert_eq!(entry.sequence_number, Some(1));
}

#[tokio::test]
async fn a_missing_or_wrong_token_is_refused_and_nothing_is_stored() {
    let s = start().await;
    assert_eq!(s.post(pubsub("a", "o", 1), None).await.0, 401);
    assert_eq!(s.post(pubsub("a", "o", 1), Some("wrong")).await.0, 401);
    assert_eq!(s.pending().await, 0);
    // The token may also come as ?token=.
    let resp = s
        .http
        .post(format!("{}?token={TOKEN}", s.url))
        .body(pubsub("a", "o", 1))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 202);
    assert_eq!(s.pending().await, 1);
}

#[tokio::test]
async fn malformed_bodies_get_a_4xx_and_nothing_is_stored() {
    let s = start().await;
    let bad_base64 = json!({"message": {"data": "%%%not-base64%%%", "messageId": "x"}}).to_string();
    let cases: Vec<(&str, String, u16)> = vec![
        ("not JSON", "{not json".into(), 400),
        ("bad base64", bad_base64, 400),
        (
            "missing resource",
            json!({"notificationType": "Message"}).to_string(),
            400,
        ),
        ("oversized", "x".repeat((1 << 20) + 10), 413),
    ];
    for (what, body, want) in cases {
        let (status, problem) = s.post(body, Some(TOKEN)).await;
        assert_eq!(status, want, "{what}: {problem}");
    }
    assert_eq!(s.pending().await, 0);
    // The server keeps serving.
    assert_eq!(s.post(pubsub("ok", "o", 1), Some(TOKEN)).await.0, 202);
}

#[tokio::test]
async fn an_unknown_notification_type_is_acknowledged_and_recorded_as_rejected() {
    let s = start().await;
    let body = json!({
        "notificationType": "SomethingNew",
        "projectKey": "test-shop",
        "resource": {"typeId": "order", "id": "o-1"},
    })
    .to_string();
    let (status, answer) = s.post(body, Some(TOKEN)).await;
    assert_eq!((status, answer["status"].as_str()), (202, Some("rejected")));
    assert_eq!(s.pending().await, 0);
    let rejected = s
        .store
        .store()
        .list_rejected(&RejectedFilter::default())
        .await
        .unwrap();
    assert_eq!(rejected.len(), 1);
    assert_eq!(rejected[0].entity, "notification");
    assert!(
        rejected[0].reason.contains("SomethingNew"),
        "{}",
        rejected[0].reason
    );
}

#[tokio::test]
async fn the_subscription_test_message_is_acknowledged_and_ignored() {
    let s = start().await;
    let body = json!({
        "notificationType": "ResourceCreated",
        "projectKey": "test-shop",
        "resource": {"typeId": "subscription", "id": "sub-1"},
        "version": 1,
        "modifiedAt": "2026-11-27T10:00:00.000Z",
    })
    .to_string();
    let (status, answer) = s.post(body, Some(TOKEN)).await;
    assert_eq!((status, answer["status"].as_str()), (200, Some("ignored")));
    assert_eq!(s.pending().await, 0);
}
