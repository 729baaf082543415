//! Contract tests of the local Omnisend.

use std::time::Duration;

use emulators::{Faults, OmnisendEmulator, OmnisendEmulatorConfig};
use serde_json::{Value, json};

const KEY: &str = "brand-a";

async fn started(cfg: OmnisendEmulatorConfig) -> (OmnisendEmulator, reqwest::Client) {
    (
        OmnisendEmulator::start(cfg).await.unwrap(),
        reqwest::Client::new(),
    )
}

async fn call(
    os: &OmnisendEmulator,
    http: &reqwest::Client,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let mut req = http
        .request(method, format!("{}{path}", os.base_url()))
        .header("Authorization", format!("Omnisend-API-Key {KEY}"))
        .header("Omnisend-Version", "2026-03-15");
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    (status, headers, resp.json().await.unwrap_or(Value::Null))
}

fn product(id: &str) -> Value {
    json!({
        "id": id, "title": "Shoe", "url": "https://shop.example.com/p/shoe", "currency": "USD",
        "status": "inStock",
        "variants": [{"id": "v1", "title": "Shoe 42", "url": "https://shop.example.com/p/shoe?v=1", "price": 19.99}],
    })
}

#[tokio::test]
async fn post_then_put_product_round_trips() {
    let (os, http) = started(OmnisendEmulatorConfig::default()).await;
    let (status, headers, body) = call(
        &os,
        &http,
        reqwest::Method::POST,
        "/products",
        Some(product("p1")),
    )
    .await;
    assert_eq!(status, 201);
    assert_eq!(body, json!({"id": "p1"}));
    assert_eq!(headers["x-rate-limit-limit"], "400");
    assert_eq!(headers["x-rate-limit-remaining"], "399");
    assert_eq!(
        call(
            &os,
            &http,
            reqwest::Method::POST,
            "/products",
            Some(product("p1"))
        )
        .await
        .0,
        409
    );
    let mut changed = product("p1");
    changed["title"] = json!("Boot");
    let (status, _, body) = call(
        &os,
        &http,
        reqwest::Method::PUT,
        "/products/p1",
        Some(changed),
    )
    .await;
    assert_eq!((status, body), (200, json!({"id": "p1"})));
    assert_eq!(os.product(KEY, "p1").unwrap()["title"], "Boot");
    assert!(os.product(KEY, "p1").unwrap()["createdAt"].is_string());
    assert!(os.products("another-brand").is_empty());
    let (status, _, list) = call(&os, &http, reqwest::Method::GET, "/products?limit=1", None).await;
    assert_eq!(status, 200);
    assert_eq!(list["products"][0]["id"], "p1");
    assert_eq!(
        call(&os, &http, reqwest::Method::DELETE, "/products/p1", None)
            .await
            .0,
        204
    );
    assert_eq!(
        call(&os, &http, reqwest::Method::DELETE, "/products/p1", None)
            .await
            .0,
        404
    );
}

#[tokio::test]
async fn put_of_unknown_product_answers_404() {
    let (os, http) = started(OmnisendEmulatorConfig::default()).await;
    let (status, headers, body) = call(
        &os,
        &http,
        reqwest::Method::PUT,
        "/products/p9",
        Some(product("p9")),
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(headers["content-type"], "application/problem+json");
    assert_eq!(body["status"], 404);
    assert_eq!(body["type"], "https://problems.omnisend.com/problem");
    assert!(
        body["instance"]
            .as_str()
            .unwrap()
            .starts_with("urn:omnisend:request:")
    );
    let (status, _, body) = call(
        &os,
        &http,
        reqwest::Method::PUT,
        "/products/other",
        Some(product("p9")),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(body["errors"][0]["field"], "id");
}

#[tokio::test]
async fn product_with_unknown_category_is_rejected_with_field_error() {
    let (os, http) = started(OmnisendEmulatorConfig::default()).await;
    let mut p = product("p1");
    p["categoryIDs"] = json!(["c1"]);
    let (status, _, body) = call(
        &os,
        &http,
        reqwest::Method::POST,
        "/products",
        Some(p.clone()),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(body["errors"][0]["field"], "categoryIDs.0");
    assert_eq!(body["errors"][0]["code"], "invalid_value");
    let cat = json!({"categoryID": "c1", "title": "Shoes"});
    assert_eq!(
        call(
            &os,
            &http,
            reqwest::Method::POST,
            "/product-categories",
            Some(cat.clone())
        )
        .await
        .0,
        201
    );
    assert_eq!(
        call(
            &os,
            &http,
            reqwest::Method::POST,
            "/product-categories",
            Some(cat)
        )
        .await
        .0,
        409
    );
    assert_eq!(
        call(&os, &http, reqwest::Method::POST, "/products", Some(p))
            .await
            .0,
        201
    );
}

#[tokio::test]
async fn invalid_product_lists_every_failed_field() {
    let (os, http) = started(OmnisendEmulatorConfig::default()).await;
    let body = json!({"id": "x".repeat(101), "url": "u", "currency": "USD", "status": "soldOut",
        "variants": [{"id": "v", "title": "t", "url": "u", "price": -1}]});
    let (status, _, problem) =
        call(&os, &http, reqwest::Method::POST, "/products", Some(body)).await;
    assert_eq!(status, 400);
    let errors: Vec<(String, String)> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["field"].as_str().unwrap().into(),
                e["code"].as_str().unwrap().into(),
            )
        })
        .collect();
    for expected in [
        ("id", "too_long"),
        ("title", "required"),
        ("status", "invalid_value"),
        ("variants.0.price", "invalid_value"),
    ] {
        assert!(
            errors.contains(&(expected.0.into(), expected.1.into())),
            "{expected:?} in {errors:?}"
        );
    }
}

#[tokio::test]
async fn missing_auth_or_version_is_rejected_and_logged() {
    let (os, http) = started(OmnisendEmulatorConfig::default()).await;
    let resp = http
        .get(format!("{}/products", os.base_url()))
        .header("Omnisend-Version", "2026-03-15")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let resp = http
        .get(format!("{}/products", os.base_url()))
        .header("Authorization", "Omnisend-API-Key k")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let resp = http
        .get(format!("{}/products", os.base_url()))
        .header("Authorization", "Omnisend-API-Key k")
        .header("Omnisend-Version", "2024-01-01")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 410);
    assert_eq!(
        call(&os, &http, reqwest::Method::GET, "/nothing-here", None)
            .await
            .0,
        404
    );
    let log = os.requests();
    assert_eq!(
        log.iter().map(|r| r.status).collect::<Vec<_>>(),
        [401, 400, 410, 404]
    );
    assert_eq!(log[3].path, "/nothing-here");
    os.clear_requests();
    assert!(os.requests().is_empty());
}

#[tokio::test]
async fn oversized_body_answers_413() {
    let (os, http) = started(OmnisendEmulatorConfig::default()).await;
    let mut p = product("p1");
    p["description"] = json!("x".repeat(1_100_000));
    assert_eq!(
        call(&os, &http, reqwest::Method::POST, "/products", Some(p))
            .await
            .0,
        413
    );
}

#[tokio::test(start_paused = true)]
async fn sliding_window_answers_429_with_retry_after_when_limit_reached() {
    let (os, http) = started(OmnisendEmulatorConfig {
        rate_limit_per_minute: Some(5),
        ..OmnisendEmulatorConfig::default()
    })
    .await;
    for i in 0..5 {
        let (status, headers, _) = call(&os, &http, reqwest::Method::GET, "/products", None).await;
        assert_eq!(status, 200);
        assert_eq!(
            headers["x-rate-limit-remaining"],
            (4 - i).to_string().as_str()
        );
        tokio::time::advance(Duration::from_secs(10)).await;
    }
    // 50 s after the first request: the window is full until it is 60 s old.
    let (status, headers, body) = call(&os, &http, reqwest::Method::GET, "/products", None).await;
    assert_eq!(status, 429);
    assert_eq!(body["retryAfter"], 10);
    assert_eq!(headers["x-rate-limit-remaining"], "0");
    assert_eq!(headers["content-type"], "application/problem+json");
    tokio::time::advance(Duration::from_secs(10)).await;
    assert_eq!(
        call(&os, &http, reqwest::Method::GET, "/products", None)
            .await
            .0,
        200
    );
    assert_eq!(os.requests().iter().filter(|r| r.status == 429).count(), 1);
    assert_eq!(os.max_requests_in_window(KEY, Duration::from_secs(60)), 6);
}

#[tokio::test]
async fn injected_faults_do_not_apply_the_request() {
    let (os, http) = started(OmnisendEmulatorConfig {
        faults: Faults {
            error_rate: 1.0,
            seed: 11,
            ..Faults::default()
        },
        ..OmnisendEmulatorConfig::default()
    })
    .await;
    for i in 0..12 {
        let (status, _, body) = call(
            &os,
            &http,
            reqwest::Method::POST,
            "/products",
            Some(product(&format!("p{i}"))),
        )
        .await;
        assert!([429, 500, 503].contains(&status), "{status}");
        if status == 429 {
            assert_eq!(body["retryAfter"], 1);
        }
    }
    assert!(os.products(KEY).is_empty());
    os.set_faults(Faults::default());
    assert_eq!(
        call(
            &os,
            &http,
            reqwest::Method::POST,
            "/products",
            Some(product("p1"))
        )
        .await
        .0,
        201
    );
}

async fn wait_finished(os: &OmnisendEmulator, http: &reqwest::Client, id: &str) -> Value {
    for _ in 0..200 {
        let (status, _, b) = call(
            os,
            http,
            reqwest::Method::GET,
            &format!("/batches/{id}"),
            None,
        )
        .await;
        assert_eq!(status, 200);
        if b["status"] == "finished" {
            return b;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("batch {id} never finished");
}

#[tokio::test]
async fn batch_items_are_applied_and_failures_listed() {
    let (os, http) = started(OmnisendEmulatorConfig::default()).await;
    call(
        &os,
        &http,
        reqwest::Method::POST,
        "/products",
        Some(product("exists")),
    )
    .await;
    let mut bad = product("bad");
    bad["status"] = json!("maybe");
    let batch = json!({"endpoint": "products", "method": "POST", "origin": "ct-omnisend",
        "items": [product("a"), product("exists"), bad, product("b")]});
    let (status, _, created) =
        call(&os, &http, reqwest::Method::POST, "/batches", Some(batch)).await;
    assert_eq!(status, 201);
    assert_eq!(created["totalCount"], 4);
    let id = created["batchID"].as_str().unwrap().to_owned();
    assert_eq!(id.len(), 24);
    let done = wait_finished(&os, &http, &id).await;
    assert_eq!(done["finishedCount"], 4);
    assert_eq!(done["errorsCount"], 2);
    let codes: Vec<u64> = done["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["responseCode"].as_u64().unwrap())
        .collect();
    assert_eq!(codes, [409, 400]);
    assert_eq!(done["errors"][0]["status"], "failed");
    assert_eq!(done["responses"][0]["request"]["id"], "a");
    assert_eq!(os.products(KEY).len(), 3);

    let put =
        json!({"endpoint": "products", "method": "PUT", "items": [product("a"), product("ghost")]});
    let (_, _, created) = call(&os, &http, reqwest::Method::POST, "/batches", Some(put)).await;
    let done = wait_finished(&os, &http, created["batchID"].as_str().unwrap()).await;
    assert_eq!(done["errors"][0]["responseCode"], 404);

    let (status, _, list) = call(
        &os,
        &http,
        reqwest::Method::GET,
        "/batches?endpoint=products",
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(list["batches"].as_array().unwrap().len(), 2);
    assert_eq!(list["batches"][0]["method"], "PUT"); // newest first
    assert_eq!(
        call(&os, &http, reqwest::Method::GET, "/batches", None)
            .await
            .0,
        400
    );
    let (status, _, items) = call(
        &os,
        &http,
        reqwest::Method::GET,
        &format!("/batches/{id}/items"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(items["items"].as_array().unwrap().len(), 4);
}

#[tokio::test]
async fn invalid_batches_are_rejected() {
    let (os, http) = started(OmnisendEmulatorConfig::default()).await;
    let too_many: Vec<Value> = (0..101).map(|i| product(&format!("p{i}"))).collect();
    for body in [
        json!({"endpoint": "orders", "method": "POST", "items": [{}]}),
        json!({"endpoint": "products", "method": "PATCH", "items": [{}]}),
        json!({"endpoint": "products", "method": "POST", "items": []}),
        json!({"endpoint": "products", "method": "POST", "items": too_many}),
    ] {
        assert_eq!(
            call(&os, &http, reqwest::Method::POST, "/batches", Some(body))
                .await
                .0,
            400
        );
    }
    assert_eq!(
        call(
            &os,
            &http,
            reqwest::Method::GET,
            "/batches/000000000000000000000000",
            None
        )
        .await
        .0,
        404
    );
}

#[tokio::test(start_paused = true)]
async fn batch_stays_pending_for_the_configured_delay() {
    let (os, http) = started(OmnisendEmulatorConfig {
        batch_delay: Duration::from_secs(10),
        ..OmnisendEmulatorConfig::default()
    })
    .await;
    let batch = json!({"endpoint": "categories", "method": "POST", "items": [{"categoryID": "c1", "title": "Shoes"}]});
    let (_, _, created) = call(&os, &http, reqwest::Method::POST, "/batches", Some(batch)).await;
    let path = format!("/batches/{}", created["batchID"].as_str().unwrap());
    assert_eq!(
        call(&os, &http, reqwest::Method::GET, &path, None).await.2["status"],
        "pending"
    );
    assert!(os.categories(KEY).is_empty());
    tokio::time::sleep(Duration::from_secs(11)).await;
    assert_eq!(
        call(&os, &http, reqwest::Method::GET, &path, None).await.2["status"],
        "finished"
    );
    assert_eq!(os.categories(KEY).len(), 1);
}

#[tokio::test]
async fn contacts_upsert_by_email_and_events_are_accepted() {
    let (os, http) = started(OmnisendEmulatorConfig::default()).await;
    let contact = json!({"identifiers": [{"type": "email", "id": "jane@example.com",
        "channels": {"email": {"status": "subscribed", "statusChangedAt": "2026-01-01T10:00:00Z"}}}],
        "firstName": "Jane"});
    let (status, _, c) = call(
        &os,
        &http,
        reqwest::Method::POST,
        "/contacts",
        Some(contact.clone()),
    )
    .await;
    assert_eq!(status, 201);
    let id = c["contactID"].clone();
    let mut update = contact.clone();
    update["lastName"] = json!("Doe");
    let (status, _, c2) = call(&os, &http, reqwest::Method::POST, "/contacts", Some(update)).await;
    assert_eq!((status, c2["contactID"].clone()), (200, id));
    assert_eq!(os.contacts(KEY).len(), 1);
    assert_eq!(os.contacts(KEY)[0]["status"], "subscribed");
    let bad = json!({"identifiers": [{"type": "email", "id": "not-an-email"}]});
    assert_eq!(
        call(&os, &http, reqwest::Method::POST, "/contacts", Some(bad))
            .await
            .0,
        400
    );

    let event = json!({"eventName": "placed order", "eventVersion": "v2", "origin": "api",
        "contact": {"email": "jane@example.com"},
        "properties": {"orderID": "o1", "totalPrice": 49.98, "currency": "EUR"}});
    assert_eq!(
        call(&os, &http, reqwest::Method::POST, "/events", Some(event))
            .await
            .0,
        202
    );
    let (status, _, problem) = call(
        &os,
        &http,
        reqwest::Method::POST,
        "/events",
        Some(json!({"eventName": "x"})),
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        problem["errors"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["field"] == "origin")
    );
    assert_eq!(os.events(KEY).len(), 1);
    assert!(os.events(KEY)[0]["receivedAt"].is_string());
}

fn placed_order_event(n: usize) -> Value {
    json!({"eventName": "placed order", "eventVersion": "v2", "origin": "api",
        "eventID": uuid::Uuid::from_u128(n as u128 + 1).to_string(),
        "contact": {"email": format!("buyer{n}@example.com")},
        "properties": {"orderID": format!("o{n}"), "totalPrice": 10.5, "currency": "EUR"}})
}

#[tokio::test]
async fn event_batches_validate_each_item_and_record_accepted_events() {
    let (os, http) = started(OmnisendEmulatorConfig::default()).await;
    let mut no_version = placed_order_event(2);
    no_version.as_object_mut().unwrap().remove("eventVersion");
    let checkout = json!({"eventName": "started checkout", "eventVersion": "", "origin": "api",
        "contact": {"phone": "+37060000000"}, "properties": {"cartID": "c1"}});
    let batch = json!({"endpoint": "events", "method": "POST", "origin": "ct-omnisend",
        "items": [placed_order_event(1), no_version, checkout]});
    let (status, _, created) =
        call(&os, &http, reqwest::Method::POST, "/batches", Some(batch)).await;
    assert_eq!(status, 201);
    let done = wait_finished(&os, &http, created["batchID"].as_str().unwrap()).await;
    assert_eq!(done["endpoint"], "events");
    assert_eq!(done["finishedCount"], 3);
    assert_eq!(done["errorsCount"], 1);
    let failed = &done["errors"][0];
    assert_eq!(failed["responseCode"], 400);
    assert_eq!(failed["status"], "failed");
    assert_eq!(failed["request"]["properties"]["orderID"], "o2");
    assert_eq!(failed["response"]["errors"][0]["field"], "eventVersion");
    assert_eq!(done["responses"][0]["responseCode"], 202);
    let events = os.events(KEY);
    assert_eq!(events.len(), 2);
    assert_eq!(events[0]["properties"]["orderID"], "o1");
    assert_eq!(events[1]["eventName"], "started checkout");
    assert!(events.iter().all(|e| e["receivedAt"].is_string()));
}

#[tokio::test]
async fn event_batches_take_up_to_one_hundred_items() {
    let (os, http) = started(OmnisendEmulatorConfig::default()).await;
    let items: Vec<Value> = (0..101).map(placed_order_event).collect();
    let too_many = json!({"endpoint": "events", "method": "POST", "items": items});
    assert_eq!(
        call(
            &os,
            &http,
            reqwest::Method::POST,
            "/batches",
            Some(too_many)
        )
        .await
        .0,
        400
    );
    let hundred = json!({"endpoint": "events", "method": "POST", "items": items[..100]});
    let (status, _, created) =
        call(&os, &http, reqwest::Method::POST, "/batches", Some(hundred)).await;
    assert_eq!((status, created["totalCount"].clone()), (201, json!(100)));
    let done = wait_finished(&os, &http, created["batchID"].as_str().unwrap()).await;
    assert_eq!(done["errorsCount"], 0);
    assert_eq!(os.events(KEY).len(), 100);
    let put = json!({"endpoint": "events", "method": "PUT", "items": [placed_order_event(1)]});
    assert_eq!(
        call(&os, &http, reqwest::Method::POST, "/batches", Some(put))
            .await
            .0,
        400
    );
}

#[tokio::test]
async fn events_and_batches_share_the_brands_rate_limit() {
    let (os, http) = started(OmnisendEmulatorConfig {
        rate_limit_per_minute: Some(3),
        ..OmnisendEmulatorConfig::default()
    })
    .await;
    let batch = json!({"endpoint": "events", "method": "POST", "items": [placed_order_event(1)]});
    let event = placed_order_event(2);
    let post = |path: &'static str, body: Value| {
        let (os, http) = (&os, &http);
        async move { call(os, http, reqwest::Method::POST, path, Some(body)).await }
    };
    assert_eq!(post("/events", event.clone()).await.0, 202);
    assert_eq!(post("/batches", batch.clone()).await.0, 201);
    let (status, headers, _) = post("/events", event.clone()).await;
    assert_eq!(
        (status, &headers["x-rate-limit-remaining"]),
        (202, &"0".parse().unwrap())
    );
    let (status, _, body) = post("/events", event.clone()).await;
    assert_eq!(status, 429);
    assert!(body["retryAfter"].as_u64().unwrap() >= 1);
    assert_eq!(post("/batches", batch).await.0, 429);
    // Another brand has its own window.
    let other = http
        .post(format!("{}/events", os.base_url()))
        .header("Authorization", "Omnisend-API-Key brand-b")
        .header("Omnisend-Version", "2026-03-15")
        .json(&event)
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 202);
}

#[tokio::test(start_paused = true)]
async fn fault_latency_delays_every_event_response() {
    let (os, http) = started(OmnisendEmulatorConfig {
        faults: Faults {
            latency: Duration::from_secs(3),
            ..Faults::default()
        },
        ..OmnisendEmulatorConfig::default()
    })
    .await;
    let start = tokio::time::Instant::now();
    let (status, _, _) = call(
        &os,
        &http,
        reqwest::Method::POST,
        "/events",
        Some(placed_order_event(1)),
    )
    .await;
    assert_eq!(status, 202);
    assert!(start.elapsed() >= Duration::from_secs(3));
    let start = tokio::time::Instant::now();
    let (status, _, _) = call(
        &os,
        &http,
        reqwest::Method::POST,
        "/events",
        Some(json!({"eventName": "placed order"})),
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        start.elapsed() >= Duration::from_secs(3),
        "errors are delayed too"
    );
}
