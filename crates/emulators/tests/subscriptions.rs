//! Contract tests of the emulator's Subscriptions endpoint over HTTP: validation, unique keys,
//! optimistic concurrency (409), unknown Subscriptions (404), the scope check and the hidden
//! secrets.

use emulators::{CtEmulator, CtEmulatorConfig};
use serde_json::{Value, json};

struct Api {
    ct: CtEmulator,
    http: reqwest::Client,
    token: String,
}

async fn token_with_scope(ct: &CtEmulator, http: &reqwest::Client, scope: Option<&str>) -> String {
    let mut form = vec![("grant_type", "client_credentials")];
    if let Some(s) = scope {
        form.push(("scope", s));
    }
    let resp = http
        .post(format!("{}/oauth/token", ct.auth_url()))
        .basic_auth("demo-client", Some("demo-secret"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    body["access_token"].as_str().unwrap().to_owned()
}

impl Api {
    async fn start() -> Api {
        let ct = CtEmulator::start(CtEmulatorConfig::default())
            .await
            .unwrap();
        let http = reqwest::Client::new();
        let token = token_with_scope(&ct, &http, None).await;
        Api { ct, http, token }
    }

    fn url(&self, path: &str) -> String {
        format!("{}/demo-project{path}", self.ct.api_url())
    }

    async fn answer(resp: reqwest::Response) -> (u16, Value) {
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    async fn get(&self, path: &str, query: &[(&str, &str)]) -> (u16, Value) {
        let resp = self
            .http
            .get(self.url(path))
            .bearer_auth(&self.token)
            .query(query)
            .send()
            .await
            .unwrap();
        Self::answer(resp).await
    }

    async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let resp = self
            .http
            .post(self.url(path))
            .bearer_auth(&self.token)
            .json(body)
            .send()
            .await
            .unwrap();
        Self::answer(resp).await
    }

    async fn delete(&self, path: &str, query: &[(&str, &str)]) -> (u16, Value) {
        let resp = self
            .http
            .delete(self.url(path))
            .bearer_auth(&self.token)
            .query(query)
            .send()
            .await
            .unwrap();
        Self::answer(resp).await
    }
}

fn pubsub_draft(key: &str) -> Value {
    json!({
        "key": key,
        "destination": {"type": "GoogleCloudPubSub", "projectId": "gcp", "topic": "orders"},
        "messages": [{"resourceTypeId": "order", "types": ["OrderCreated"]}],
    })
}

fn first_error(body: &Value) -> (&str, &str) {
    (
        body["errors"][0]["code"].as_str().unwrap_or_default(),
        body["errors"][0]["message"].as_str().unwrap_or_default(),
    )
}

#[tokio::test]
async fn a_created_subscription_is_stored_with_defaults_and_found_by_id_key_and_query() {
    let api = Api::start().await;
    let (status, created) = api
        .post(
            "/subscriptions",
            &json!({
                "key": "orders-sub",
                "destination": {"type": "GoogleCloudPubSub", "projectId": "gcp", "topic": "orders"},
                "messages": [{"resourceTypeId": "order"}],
                "changes": [{"resourceTypeId": "cart"}],
            }),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["version"], 1);
    assert_eq!(created["format"], json!({"type": "Platform"}));
    assert_eq!(created["messages"][0]["types"], json!([]));
    assert_eq!(created["status"], "Healthy");
    let id = created["id"].as_str().unwrap();

    let (s1, by_id) = api.get(&format!("/subscriptions/{id}"), &[]).await;
    let (s2, by_key) = api.get("/subscriptions/key=orders-sub", &[]).await;
    assert_eq!((s1, s2), (200, 200));
    assert_eq!(by_id, by_key);
    let (s3, page) = api
        .get(
            "/subscriptions",
            &[("where", "key = \"orders-sub\""), ("limit", "5")],
        )
        .await;
    assert_eq!(s3, 200, "{page}");
    assert_eq!(page["count"], 1);
    assert_eq!(page["results"][0]["id"], id);
    assert_eq!(api.ct.subscriptions().len(), 1);
}

#[tokio::test]
async fn invalid_drafts_are_refused_with_commercetools_error_bodies() {
    let api = Api::start().await;
    let cases = [
        (
            json!({"key": "k1", "messages": [{"resourceTypeId": "order"}]}),
            "InvalidJsonInput",
        ),
        (
            json!({"key": "k2", "destination": {"type": "IronMQ", "uri": "x"},
                   "messages": [{"resourceTypeId": "order"}]}),
            "InvalidJsonInput",
        ),
        (
            json!({"key": "k3", "destination": {"type": "GoogleCloudPubSub", "projectId": "gcp", "topic": "t"}}),
            "InvalidInput",
        ),
        (
            json!({"key": "k4", "destination": {"type": "GoogleCloudPubSub", "projectId": "gcp", "topic": "t"},
                   "messages": [], "changes": []}),
            "InvalidInput",
        ),
        (
            json!({"key": "k5", "destination": {"type": "EventGrid", "uri": "https://t", "accessKey": "a"},
                   "changes": [{"resourceTypeId": "cart"}]}),
            "InvalidInput",
        ),
        (
            json!({"key": "bad key!", "destination": {"type": "GoogleCloudPubSub", "projectId": "gcp", "topic": "t"},
                   "changes": [{"resourceTypeId": "cart"}]}),
            "InvalidJsonInput",
        ),
    ];
    for (draft, code) in cases {
        let (status, body) = api.post("/subscriptions", &draft).await;
        assert_eq!(status, 400, "{draft} → {body}");
        assert_eq!(body["statusCode"], 400);
        assert_eq!(first_error(&body).0, code, "{draft} → {body}");
    }
    assert!(api.ct.subscriptions().is_empty());
}

#[tokio::test]
async fn a_second_subscription_with_the_same_key_is_a_duplicate_field() {
    let api = Api::start().await;
    assert_eq!(
        api.post("/subscriptions", &pubsub_draft("dup")).await.0,
        201
    );
    let (status, body) = api.post("/subscriptions", &pubsub_draft("dup")).await;
    assert_eq!(status, 400);
    assert_eq!(first_error(&body).0, "DuplicateField");
    assert_eq!(body["errors"][0]["field"], "key");
    assert_eq!(body["errors"][0]["duplicateValue"], "dup");
    assert_eq!(api.ct.subscriptions().len(), 1);
}

#[tokio::test]
async fn updates_apply_their_actions_and_bump_the_version_once_per_request() {
    let api = Api::start().await;
    let (_, created) = api.post("/subscriptions", &pubsub_draft("upd")).await;
    let (status, updated) = api
        .post(
            "/subscriptions/key=upd",
            &json!({"version": 1, "actions": [
                {"action": "changeDestination", "destination": {"type": "GoogleCloudPubSub", "projectId": "gcp", "topic": "other"}},
                {"action": "setMessages", "messages": []},
                {"action": "setChanges", "changes": [{"resourceTypeId": "cart"}]},
            ]}),
        )
        .await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["id"], created["id"]);
    assert_eq!(updated["version"], 2);
    assert_eq!(updated["destination"]["topic"], "other");
    assert_eq!(updated["messages"], json!([]));
    assert_eq!(updated["changes"], json!([{"resourceTypeId": "cart"}]));
    let stored = api.ct.subscription_by_key("upd").unwrap();
    assert_eq!(stored["version"], 2);
}

#[tokio::test]
async fn a_stale_version_is_a_concurrent_modification_on_update_and_delete() {
    let api = Api::start().await;
    api.post("/subscriptions", &pubsub_draft("cm")).await;
    let (status, body) = api
        .post(
            "/subscriptions/key=cm",
            &json!({"version": 7, "actions": [{"action": "setChanges", "changes": [{"resourceTypeId": "cart"}]}]}),
        )
        .await;
    assert_eq!(status, 409);
    assert_eq!(first_error(&body).0, "ConcurrentModification");
    assert_eq!(body["errors"][0]["currentVersion"], 1);

    let (status, body) = api
        .delete("/subscriptions/key=cm", &[("version", "2")])
        .await;
    assert_eq!(status, 409);
    assert_eq!(body["errors"][0]["currentVersion"], 1);
    assert_eq!(api.ct.subscriptions().len(), 1, "nothing was deleted");
}

#[tokio::test]
async fn an_update_that_would_leave_nothing_subscribed_or_changes_the_format_is_refused() {
    let api = Api::start().await;
    api.post("/subscriptions", &pubsub_draft("empty")).await;
    let (status, body) = api
        .post(
            "/subscriptions/key=empty",
            &json!({"version": 1, "actions": [{"action": "setMessages", "messages": []}]}),
        )
        .await;
    assert_eq!((status, first_error(&body).0), (400, "InvalidInput"));
    let (status, body) = api
        .post(
            "/subscriptions/key=empty",
            &json!({"version": 1, "actions": [{"action": "changeFormat", "format": {"type": "Platform"}}]}),
        )
        .await;
    assert_eq!(status, 400);
    assert!(first_error(&body).1.contains("changeFormat"), "{body}");
    assert_eq!(api.ct.subscription_by_key("empty").unwrap()["version"], 1);
}

#[tokio::test]
async fn delete_needs_the_current_version_and_answers_404_for_unknown_subscriptions() {
    let api = Api::start().await;
    let (_, created) = api.post("/subscriptions", &pubsub_draft("del")).await;
    let id = created["id"].as_str().unwrap();
    let (status, body) = api.delete(&format!("/subscriptions/{id}"), &[]).await;
    assert_eq!((status, first_error(&body).0), (400, "InvalidInput"));
    let (status, deleted) = api
        .delete(&format!("/subscriptions/{id}"), &[("version", "1")])
        .await;
    assert_eq!(status, 200);
    assert_eq!(deleted["key"], "del");
    assert!(api.ct.subscriptions().is_empty());

    let (status, body) = api
        .delete("/subscriptions/key=del", &[("version", "1")])
        .await;
    assert_eq!((status, first_error(&body).0), (404, "ResourceNotFound"));
    let (status, _) = api
        .post(
            "/subscriptions/key=nope",
            &json!({"version": 1, "actions": []}),
        )
        .await;
    assert_eq!(status, 404);
    assert_eq!(api.get("/subscriptions/key=del", &[]).await.0, 404);
}

#[tokio::test]
async fn secrets_are_partly_hidden_in_answers_but_stored_as_sent() {
    let api = Api::start().await;
    let (status, created) = api
        .post(
            "/subscriptions",
            &json!({
                "key": "sqs",
                "destination": {"type": "SQS", "queueUrl": "https://sqs.eu-west-1.amazonaws.com/1/q",
                                "region": "eu-west-1", "authenticationMode": "Credentials",
                                "accessKey": "AKIAEXAMPLE", "accessSecret": "wJalrXUtnFEMI"},
                "messages": [{"resourceTypeId": "order"}],
            }),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["destination"]["accessSecret"], "wJ****");
    let (_, read) = api.get("/subscriptions/key=sqs", &[]).await;
    assert_eq!(read["destination"]["accessSecret"], "wJ****");
    assert_eq!(
        api.ct.subscription_by_key("sqs").unwrap()["destination"]["accessSecret"],
        "wJalrXUtnFEMI"
    );
}

#[tokio::test]
async fn a_token_without_manage_subscriptions_is_refused_with_insufficient_scope() {
    let api = Api::start().await;
    let read_only = token_with_scope(&api.ct, &api.http, Some("view_orders:demo-project")).await;
    let resp = api
        .http
        .post(api.url("/subscriptions"))
        .bearer_auth(&read_only)
        .json(&pubsub_draft("scoped"))
        .send()
        .await
        .unwrap();
    let (status, body) = Api::answer(resp).await;
    assert_eq!(status, 403);
    assert_eq!(first_error(&body).0, "insufficient_scope");
    assert!(
        first_error(&body)
            .1
            .contains("manage_subscriptions:demo-project")
    );

    let scoped = token_with_scope(
        &api.ct,
        &api.http,
        Some("manage_subscriptions:demo-project"),
    )
    .await;
    let resp = api
        .http
        .post(api.url("/subscriptions"))
        .bearer_auth(&scoped)
        .json(&pubsub_draft("scoped"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
}

#[tokio::test]
async fn other_resources_stay_read_only() {
    let api = Api::start().await;
    let (status, body) = api.post("/orders", &json!({})).await;
    assert_eq!(status, 405);
    assert_eq!(first_error(&body).0, "InvalidOperation");
}
