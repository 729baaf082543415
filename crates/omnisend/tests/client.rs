//! `OmnisendClient` against the local Omnisend emulator.

mod common;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{KEY, category, client_for, client_with_rate, product, setup};
use emulators::{Faults, OmnisendEmulatorConfig};
use omnisend::models::{BatchEndpoint, BatchMethod, BatchRequest};
use omnisend::{Deleted, OmnisendError, Upserted};

#[tokio::test]
async fn upsert_product_creates_then_replaces() {
    let (emu, client) = setup(OmnisendEmulatorConfig::default()).await;
    assert_eq!(
        client
            .upsert_product(&product("p1", "First"))
            .await
            .unwrap(),
        Upserted::Created
    );
    assert_eq!(emu.product(KEY, "p1").unwrap()["title"], "First");
    assert_eq!(
        client
            .upsert_product(&product("p1", "Second"))
            .await
            .unwrap(),
        Upserted::Updated
    );
    assert_eq!(emu.product(KEY, "p1").unwrap()["title"], "Second");
    assert_eq!(emu.products(KEY).len(), 1);
    let calls: Vec<(String, String, u16)> = emu
        .requests()
        .into_iter()
        .map(|r| (r.method, r.path, r.status))
        .collect();
    let expected = [
        ("PUT", "/products/p1", 404),
        ("POST", "/products", 201),
        ("PUT", "/products/p1", 200),
    ];
    let expected: Vec<(String, String, u16)> = expected
        .iter()
        .map(|(m, p, s)| (m.to_string(), p.to_string(), *s))
        .collect();
    assert_eq!(calls, expected);
    assert_eq!(client.requests_sent(), 3);
}

#[tokio::test]
async fn upsert_product_with_awkward_id_is_path_encoded() {
    let (emu, client) = setup(OmnisendEmulatorConfig::default()).await;
    let id = "a/b c?d";
    assert_eq!(
        client.upsert_product(&product(id, "Odd")).await.unwrap(),
        Upserted::Created
    );
    assert_eq!(
        client.upsert_product(&product(id, "Odd 2")).await.unwrap(),
        Upserted::Updated
    );
    assert_eq!(emu.product(KEY, id).unwrap()["title"], "Odd 2");
    assert_eq!(client.delete_product(id).await.unwrap(), Deleted::Deleted);
}

#[tokio::test]
async fn upsert_category_patches_on_conflict() {
    let (emu, client) = setup(OmnisendEmulatorConfig::default()).await;
    assert_eq!(
        client
            .upsert_category(&category("c1", "Shoes"))
            .await
            .unwrap(),
        Upserted::Created
    );
    assert_eq!(
        client
            .upsert_category(&category("c1", "Footwear"))
            .await
            .unwrap(),
        Upserted::Updated
    );
    let cats = emu.categories(KEY);
    assert_eq!(cats.len(), 1);
    assert_eq!(cats[0]["title"], "Footwear");
    let log = emu.requests();
    let patch = log
        .iter()
        .find(|r| r.method == "PATCH")
        .expect("a PATCH was sent");
    assert_eq!(patch.path, "/product-categories/c1");
    assert_eq!(patch.body, Some(serde_json::json!({"title": "Footwear"})));
    assert_eq!(log.iter().filter(|r| r.status == 409).count(), 1);
}

#[tokio::test]
async fn delete_of_missing_product_is_not_found_not_an_error() {
    let (emu, client) = setup(OmnisendEmulatorConfig::default()).await;
    assert_eq!(
        client.delete_product("missing").await.unwrap(),
        Deleted::NotFound
    );
    assert_eq!(
        client.delete_category("missing").await.unwrap(),
        Deleted::NotFound
    );
    client.upsert_product(&product("p1", "One")).await.unwrap();
    client
        .upsert_category(&category("c1", "Cat"))
        .await
        .unwrap();
    assert_eq!(client.delete_product("p1").await.unwrap(), Deleted::Deleted);
    assert_eq!(
        client.delete_category("c1").await.unwrap(),
        Deleted::Deleted
    );
    assert!(emu.products(KEY).is_empty());
    assert!(emu.categories(KEY).is_empty());
}

#[tokio::test]
async fn sends_auth_and_version_headers() {
    use axum::http::HeaderMap;
    let seen: Arc<Mutex<Vec<HeaderMap>>> = Arc::default();
    let app = {
        let seen = seen.clone();
        axum::Router::new().fallback(move |headers: HeaderMap| {
            let seen = seen.clone();
            async move {
                seen.lock().unwrap().push(headers);
                (axum::http::StatusCode::ACCEPTED, "")
            }
        })
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let client = client_for(&format!("http://{addr}/api"), 1);
    client
        .post_event(&serde_json::json!({"eventName": "x"}))
        .await
        .unwrap();
    server.abort();

    let seen = std::mem::take(&mut *seen.lock().unwrap());
    assert_eq!(seen.len(), 1);
    let h = &seen[0];
    assert_eq!(
        h["authorization"],
        format!("Omnisend-API-Key {KEY}").as_str()
    );
    assert_eq!(h["omnisend-version"], "2026-03-15");
    assert_eq!(h["content-type"], "application/json");
    let ua = h["user-agent"].to_str().unwrap();
    assert!(ua.starts_with("ct-omnisend/"), "{ua}");

    // And the emulator (which enforces both headers) accepts the client's requests.
    let (emu, client) = setup(OmnisendEmulatorConfig::default()).await;
    client
        .upsert_category(&category("c1", "Cat"))
        .await
        .unwrap();
    assert!(
        emu.requests()
            .iter()
            .all(|r| r.api_key == KEY && r.status < 300)
    );
    // The key never shows up in the client's Debug output.
    assert!(!format!("{client:?}").contains(KEY));
}

#[tokio::test]
async fn validation_problem_is_rejected_with_field_errors() {
    let (emu, client) = setup(OmnisendEmulatorConfig::default()).await;
    let mut bad = product("p1", &"x".repeat(300));
    bad.currency = "euros".into();
    let err = client.upsert_product(&bad).await.unwrap_err();
    assert_eq!(err.status(), Some(400), "{err}");
    let fields: HashSet<&str> = err
        .field_errors()
        .iter()
        .filter_map(|f| f.field.as_deref())
        .collect();
    assert!(
        fields.contains("title") && fields.contains("currency"),
        "{fields:?}"
    );
    let text = err.to_string();
    assert!(
        text.contains("400") && text.contains("/products/p1") && text.contains("currency"),
        "{text}"
    );
    assert!(matches!(err, OmnisendError::Rejected { ref method, .. } if method == "PUT"));
    assert_eq!(client.requests_sent(), 1, "a rejection is not retried");
    assert!(emu.products(KEY).is_empty());
}

#[tokio::test]
async fn retries_429_and_5xx_then_succeeds() {
    let (emu, _) = setup(OmnisendEmulatorConfig::default()).await;
    // A high ceiling keeps the test fast: every injected 429 halves the rate (floor 10 %).
    let client = client_with_rate(
        &emu.base_url(),
        10,
        omnisend::RateController::new(3_000, 10),
    );
    emu.set_faults(Faults {
        error_rate: 0.3,
        seed: 7,
        ..Faults::default()
    });
    let ids: Vec<String> = (0..10).map(|i| format!("p{i}")).collect();
    for id in &ids {
        client
            .upsert_product(&product(id, "T"))
            .await
            .unwrap_or_else(|e| panic!("{id}: {e}"));
    }
    emu.set_faults(Faults::default());
    let stored: Vec<String> = emu
        .products(KEY)
        .iter()
        .map(|p| p["id"].as_str().unwrap().to_owned())
        .collect();
    let mut expected = ids.clone();
    expected.sort();
    assert_eq!(stored, expected, "every product present exactly once");
    let log = emu.requests();
    assert!(log.iter().any(|r| r.status == 429), "no 429 was injected");
    assert!(log.iter().any(|r| r.status >= 500), "no 5xx was injected");
    assert_eq!(
        client.requests_sent(),
        log.len() as u64,
        "every attempt is counted"
    );
    assert!(client.rate().throttled_count() > 0);
}

#[tokio::test]
async fn retries_exhausted_is_reported() {
    let (emu, _) = setup(OmnisendEmulatorConfig::default()).await;
    let client = client_for(&emu.base_url(), 2);
    emu.set_faults(Faults {
        error_rate: 1.0,
        seed: 1,
        ..Faults::default()
    });
    let err = client.delete_product("p1").await.unwrap_err();
    assert!(
        matches!(err, OmnisendError::RetriesExhausted { attempts: 2, .. }),
        "{err}"
    );
    assert!(err.is_transient());
    assert_eq!(emu.requests().len(), 2);
}

#[tokio::test]
async fn batch_of_101_items_is_refused_locally() {
    let (emu, client) = setup(OmnisendEmulatorConfig::default()).await;
    let item = serde_json::to_value(product("p", "T")).unwrap();
    for n in [0, 101] {
        let req = BatchRequest {
            endpoint: BatchEndpoint::Products,
            method: BatchMethod::Post,
            items: vec![item.clone(); n],
            origin: None,
        };
        let err = client.submit_batch(&req).await.unwrap_err();
        assert!(matches!(err, OmnisendError::Invalid(_)), "{n}: {err}");
    }
    assert_eq!(client.requests_sent(), 0);
    assert!(emu.requests().is_empty());
}

#[tokio::test]
async fn wait_batches_reports_per_item_failures() {
    let config = OmnisendEmulatorConfig {
        batch_delay: Duration::from_millis(600),
        ..Default::default()
    };
    let (emu, client) = setup(config).await;
    let mut bad = product("bad", "Bad");
    bad.currency = "euros".into();
    let items = vec![
        serde_json::to_value(product("ok1", "One")).unwrap(),
        serde_json::to_value(&bad).unwrap(),
        serde_json::to_value(product("ok2", "Two")).unwrap(),
    ];
    let req = BatchRequest {
        endpoint: BatchEndpoint::Products,
        method: BatchMethod::Post,
        items,
        origin: None,
    };
    let created = client.submit_batch(&req).await.unwrap();
    assert_eq!(created.total_count, 3);
    let batches = client
        .wait_batches(
            BatchEndpoint::Products,
            std::slice::from_ref(&created.batch_id),
        )
        .await
        .unwrap();
    assert_eq!(batches.len(), 1);
    let b = &batches[0];
    assert_eq!(b.batch_id, created.batch_id);
    assert_eq!(b.status, "finished");
    assert_eq!(b.errors_count, 1);
    assert_eq!(b.errors.len(), 1);
    assert_eq!(b.errors[0].response_code, Some(400));
    assert_eq!(b.errors[0].request.as_ref().unwrap()["id"], "bad");
    assert_eq!(emu.products(KEY).len(), 2);
    // The client filled in the configured origin.
    assert_eq!(emu.batches(KEY)[0]["origin"], "ct-omnisend");
}

#[tokio::test]
async fn wait_batches_uses_few_requests_for_many_batches() {
    let config = OmnisendEmulatorConfig {
        batch_delay: Duration::from_secs(1),
        ..Default::default()
    };
    let (emu, client) = setup(config).await;
    let mut ids = Vec::new();
    for i in 0..20 {
        let req = BatchRequest {
            endpoint: BatchEndpoint::Products,
            method: BatchMethod::Post,
            items: vec![serde_json::to_value(product(&format!("p{i}"), "T")).unwrap()],
            origin: Some("test".into()),
        };
        ids.push(client.submit_batch(&req).await.unwrap().batch_id);
    }
    emu.clear_requests();
    let before = client.requests_sent();
    let batches = client
        .wait_batches(BatchEndpoint::Products, &ids)
        .await
        .unwrap();
    let polls = client.requests_sent() - before;
    assert_eq!(
        batches
            .iter()
            .map(|b| b.batch_id.clone())
            .collect::<Vec<_>>(),
        ids,
        "results in input order"
    );
    assert!(
        batches
            .iter()
            .all(|b| b.status == "finished" && b.errors_count == 0)
    );
    assert_eq!(emu.products(KEY).len(), 20);
    assert!(polls <= 10, "{polls} poll requests for 20 batches");
    let log = emu.requests();
    assert!(
        log.iter()
            .all(|r| r.method == "GET" && r.path == "/batches"),
        "only list requests were needed"
    );
}

#[tokio::test]
async fn wait_batches_polls_category_batches_one_by_one() {
    let (emu, client) = setup(OmnisendEmulatorConfig::default()).await;
    let req = BatchRequest {
        endpoint: BatchEndpoint::Categories,
        method: BatchMethod::Post,
        items: vec![serde_json::to_value(category("c1", "Cat")).unwrap()],
        origin: None,
    };
    let id = client.submit_batch(&req).await.unwrap().batch_id;
    let batches = client
        .wait_batches(BatchEndpoint::Categories, std::slice::from_ref(&id))
        .await
        .unwrap();
    assert_eq!(batches[0].status, "finished");
    assert_eq!(emu.categories(KEY).len(), 1);
    assert!(
        emu.requests()
            .iter()
            .any(|r| r.path == format!("/batches/{id}"))
    );
}

#[tokio::test]
async fn contact_and_event_are_posted() {
    let (emu, client) = setup(OmnisendEmulatorConfig::default()).await;
    let contact = serde_json::json!({
        "identifiers": [{"type": "email", "id": "ann@example.com",
                          "channels": {"email": {"status": "nonSubscribed"}}}],
        "firstName": "Ann"
    });
    let resp = client.post_contact(&contact).await.unwrap();
    assert!(resp.is_object(), "{resp}");
    assert_eq!(emu.contacts(KEY).len(), 1);
    let event = serde_json::json!({
        "eventName": "placed order", "origin": "api", "eventVersion": "v2",
        "contact": {"email": "ann@example.com"}, "properties": {"totalPrice": 10.0, "currency": "EUR"}
    });
    client.post_event(&event).await.unwrap();
    assert_eq!(emu.events(KEY).len(), 1);
}

#[tokio::test]
async fn wait_batches_fetches_details_only_for_batches_with_failures() {
    use axum::extract::Path;
    use axum::routing::get;
    use serde_json::json;
    let app = axum::Router::new()
        .route(
            "/api/batches",
            get(|| async {
                axum::Json(json!({"batches": [{"batchID": "b1", "status": "finished",
                    "totalCount": 2, "finishedCount": 2, "errorsCount": 1}], "paging": {}}))
            }),
        )
        .route(
            "/api/batches/{id}",
            get(|Path(id): Path<String>| async move {
                axum::Json(json!({"batchID": id, "status": "finished", "totalCount": 2,
                    "finishedCount": 2, "errorsCount": 1}))
            }),
        )
        .route(
            "/api/batches/{id}/items",
            get(|Path(id): Path<String>| async move {
                axum::Json(json!({"batchID": id, "status": "finished", "errorsCount": 1, "responses": [
                    {"itemID": "i1", "status": "finished", "responseCode": 200, "request": {"id": "a"}},
                    {"itemID": "i2", "status": "failed", "responseCode": 400, "request": {"id": "b"}}
                ]}))
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let client = client_for(&format!("http://{addr}/api"), 1);
    let batches = client
        .wait_batches(BatchEndpoint::Products, &["b1".to_owned()])
        .await
        .unwrap();
    server.abort();
    assert_eq!(batches[0].errors.len(), 1);
    assert_eq!(batches[0].errors[0].item_id.as_deref(), Some("i2"));
    assert_eq!(
        client.requests_sent(),
        3,
        "one list request, then the batch and its items (the batch omitted its errors)"
    );
}
