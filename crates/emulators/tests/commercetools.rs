//! Contract tests of the local commercetools.

use emulators::customers::{
    CustomerSpec, cart_id, customer_id, customer_stores, generate_customers, order_id,
};
use emulators::seed::{CatalogSpec, generate_catalog};
use emulators::{CtEmulator, CtEmulatorConfig, Faults};
use serde_json::{Value, json};

async fn started(products: usize) -> (CtEmulator, reqwest::Client, String) {
    let ct = CtEmulator::start(CtEmulatorConfig::default())
        .await
        .unwrap();
    ct.seed(&generate_catalog(&CatalogSpec {
        products,
        categories: 30,
        seed: 7,
    }));
    let http = reqwest::Client::new();
    let token = token(&ct, &http).await;
    (ct, http, token)
}

async fn token(ct: &CtEmulator, http: &reqwest::Client) -> String {
    let resp = http
        .post(format!("{}/oauth/token", ct.auth_url()))
        .basic_auth("demo-client", Some("demo-secret"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 172_800);
    body["access_token"].as_str().unwrap().to_owned()
}

async fn get(
    ct: &CtEmulator,
    http: &reqwest::Client,
    token: &str,
    path: &str,
    query: &[(&str, &str)],
) -> (u16, Value) {
    let resp = http
        .get(format!("{}/demo-project{path}", ct.api_url()))
        .bearer_auth(token)
        .query(query)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn token_endpoint_rejects_wrong_client_secret() {
    let ct = CtEmulator::start(CtEmulatorConfig::default())
        .await
        .unwrap();
    let resp = reqwest::Client::new()
        .post(format!("{}/oauth/token", ct.auth_url()))
        .basic_auth("demo-client", Some("wrong"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "invalid_client");
    assert_eq!(body["errors"][0]["code"], "invalid_client");
}

#[tokio::test]
async fn token_endpoint_rejects_unknown_grant_type() {
    let ct = CtEmulator::start(CtEmulatorConfig::default())
        .await
        .unwrap();
    let resp = reqwest::Client::new()
        .post(format!("{}/oauth/token", ct.auth_url()))
        .basic_auth("demo-client", Some("demo-secret"))
        .form(&[("grant_type", "password")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
}

#[tokio::test]
async fn api_calls_without_valid_token_answer_401_invalid_token() {
    let (ct, http, token) = started(3).await;
    let (status, body) = get(&ct, &http, "nope", "/product-projections", &[]).await;
    assert_eq!(status, 401);
    assert_eq!(body["error"], "invalid_token");
    assert_eq!(get(&ct, &http, &token, "", &[]).await.0, 200);
    ct.revoke_tokens();
    assert_eq!(get(&ct, &http, &token, "", &[]).await.0, 401);
}

#[tokio::test]
async fn where_predicate_compound_keyset_pages_without_gaps() {
    let (ct, http, token) = started(57).await;
    let mut seen = Vec::new();
    let mut cursor: Option<(String, String)> = None;
    loop {
        let predicate = cursor.as_ref().map(|(t, id)| {
            format!(r#"lastModifiedAt > "{t}" or (lastModifiedAt = "{t}" and id > "{id}")"#)
        });
        let mut q = vec![
            ("sort", "lastModifiedAt asc"),
            ("sort", "id asc"),
            ("limit", "10"),
            ("withTotal", "false"),
        ];
        if let Some(p) = predicate.as_deref() {
            q.push(("where", p));
        }
        let (status, body) = get(&ct, &http, &token, "/product-projections", &q).await;
        assert_eq!(status, 200, "{body}");
        assert!(body.get("total").is_none());
        let results = body["results"].as_array().unwrap();
        for r in results {
            seen.push(r["id"].as_str().unwrap().to_owned());
            cursor = Some((
                r["lastModifiedAt"].as_str().unwrap().to_owned(),
                r["id"].as_str().unwrap().to_owned(),
            ));
        }
        if results.len() < 10 {
            break;
        }
    }
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(seen.len(), 57);
    assert_eq!(unique.len(), 57);
}

#[tokio::test]
async fn id_keyset_and_offset_paging_agree() {
    let (ct, http, token) = started(25).await;
    let (_, all) = get(
        &ct,
        &http,
        &token,
        "/products",
        &[("limit", "500"), ("sort", "id asc")],
    )
    .await;
    assert_eq!(all["total"], 25);
    let ids: Vec<&str> = all["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    let w = format!(r#"id > "{}""#, ids[9]);
    let (_, page) = get(
        &ct,
        &http,
        &token,
        "/products",
        &[("where", &w), ("sort", "id asc"), ("limit", "5")],
    )
    .await;
    let got: Vec<&str> = page["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert_eq!(got, ids[10..15]);
    assert_eq!(page["count"], 5);
    assert_eq!(page["total"], 15);
}

#[tokio::test]
async fn invalid_predicates_and_paging_answer_400_invalid_input() {
    let (ct, http, token) = started(1).await;
    for q in [
        vec![("where", "color = \"red\"")],
        vec![("where", "id = ")],
        vec![("where", "lastModifiedAt > \"soon\"")],
        vec![("limit", "501")],
        vec![("offset", "10001")],
        vec![("sort", "name asc")],
    ] {
        let (status, body) = get(&ct, &http, &token, "/product-projections", &q).await;
        assert_eq!(status, 400, "{q:?}");
        assert_eq!(body["statusCode"], 400);
        assert_eq!(body["errors"][0]["code"], "InvalidInput");
    }
}

#[tokio::test]
async fn unpublished_products_vanish_from_projections_but_not_products() {
    let (ct, http, token) = started(5).await;
    let (_, all) = get(&ct, &http, &token, "/product-projections", &[]).await;
    let id = all["results"][0]["id"].as_str().unwrap().to_owned();
    let before = ct.product(&id).unwrap();
    ct.unpublish_product(&id);
    let after = ct.product(&id).unwrap();
    assert_eq!(after["version"], before["version"].as_u64().unwrap() + 1);
    assert!(after["lastModifiedAt"].as_str() > before["lastModifiedAt"].as_str());

    let (status, body) = get(
        &ct,
        &http,
        &token,
        &format!("/product-projections/{id}"),
        &[],
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(body["errors"][0]["code"], "ResourceNotFound");
    assert_eq!(
        get(&ct, &http, &token, "/product-projections", &[]).await.1["total"],
        4
    );
    assert_eq!(
        get(
            &ct,
            &http,
            &token,
            "/product-projections",
            &[("staged", "true")]
        )
        .await
        .1["total"],
        5
    );
    let (status, p) = get(&ct, &http, &token, &format!("/products/{id}"), &[]).await;
    assert_eq!(status, 200);
    assert_eq!(p["masterData"]["published"], false);
    let (_, q) = get(
        &ct,
        &http,
        &token,
        "/products",
        &[("where", "published = false")],
    )
    .await;
    assert_eq!(q["total"], 1);
}

#[tokio::test]
async fn update_product_changes_projection_and_bumps_last_modified() {
    let (ct, http, token) = started(3).await;
    let (_, all) = get(&ct, &http, &token, "/product-projections", &[]).await;
    let id = all["results"][1]["id"].as_str().unwrap().to_owned();
    let old = all["results"][1]["lastModifiedAt"]
        .as_str()
        .unwrap()
        .to_owned();
    ct.update_product(&id, |p| {
        p["masterData"]["current"]["name"]["en"] = json!("Renamed");
    });
    let (_, p) = get(
        &ct,
        &http,
        &token,
        &format!("/product-projections/{id}"),
        &[],
    )
    .await;
    assert_eq!(p["name"]["en"], "Renamed");
    assert_eq!(
        ct.product(&id).unwrap()["masterData"]["staged"]["name"]["en"],
        "Renamed"
    );
    let w = format!(r#"lastModifiedAt > "{old}""#);
    let (_, changed) = get(&ct, &http, &token, "/product-projections", &[("where", &w)]).await;
    assert!(
        changed["results"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["id"] == id.as_str())
    );
}

#[tokio::test]
async fn stores_channels_categories_and_types_are_served() {
    let (ct, http, token) = started(1).await;
    let (status, us) = get(&ct, &http, &token, "/stores/key=us", &[]).await;
    assert_eq!(status, 200);
    assert_eq!(us["languages"], json!(["en-US", "en"]));
    assert_eq!(
        get(&ct, &http, &token, "/channels", &[]).await.1["total"],
        3
    );
    assert_eq!(
        get(&ct, &http, &token, "/categories", &[("limit", "500")])
            .await
            .1["count"],
        30
    );
    assert_eq!(
        get(&ct, &http, &token, "/product-types", &[]).await.1["total"],
        2
    );
    assert_eq!(
        get(&ct, &http, &token, "/stores/key=nowhere", &[]).await.0,
        404
    );
    assert_eq!(get(&ct, &http, &token, "/carts-of-mars", &[]).await.0, 404);
}

#[tokio::test]
async fn injected_faults_answer_server_errors_without_touching_auth() {
    let (ct, http, token) = started(1).await;
    ct.set_faults(Faults {
        burst_429: Some((1, 2)),
        ..Faults::default()
    });
    let statuses = [
        get(&ct, &http, &token, "", &[]).await.0,
        get(&ct, &http, &token, "", &[]).await.0,
        get(&ct, &http, &token, "", &[]).await.0,
        get(&ct, &http, &token, "", &[]).await.0,
    ];
    assert_eq!(statuses, [200, 429, 429, 200]);
    ct.set_faults(Faults {
        error_rate: 1.0,
        seed: 3,
        ..Faults::default()
    });
    crate::token(&ct, &http).await; // the token endpoint is never faulted
    for _ in 0..10 {
        let (status, body) = get(&ct, &http, &token, "/products", &[]).await;
        assert!([429, 500, 502, 503].contains(&status));
        assert_eq!(body["statusCode"], status);
    }
}

async fn started_with_customers(customers: usize) -> (CtEmulator, reqwest::Client, String) {
    let (ct, http, token) = started(1).await;
    ct.seed_customers(&generate_customers(&CustomerSpec {
        customers,
        seed: 7,
        stores: vec!["us".into(), "eu".into()],
        guest_orders: 10,
        guest_carts: 8,
    }));
    (ct, http, token)
}

fn ids(page: &Value) -> Vec<String> {
    page["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn customers_groups_types_carts_and_orders_are_queryable() {
    let (ct, http, token) = started_with_customers(30).await;
    assert_eq!(ct.customer_count(), 30);
    for (path, total) in [
        ("/customers", 30),
        ("/customer-groups", 2),
        ("/types", 1),
        ("/carts", 8),
        ("/orders", 10),
    ] {
        let (status, body) = get(&ct, &http, &token, path, &[("limit", "500")]).await;
        assert_eq!(status, 200, "{path}: {body}");
        assert_eq!(body["total"], total, "{path}");
    }
    let id = customer_id(7, 4);
    let (status, c) = get(&ct, &http, &token, &format!("/customers/{id}"), &[]).await;
    assert_eq!(status, 200);
    assert_eq!(c["customerNumber"], "C00004");
    assert_eq!(
        get(&ct, &http, &token, "/customers/key=customer-4", &[])
            .await
            .1["id"],
        id.as_str()
    );
    assert_eq!(
        get(&ct, &http, &token, "/customer-groups/key=vip", &[])
            .await
            .1["name"],
        "VIP"
    );
    assert_eq!(
        get(&ct, &http, &token, "/types/key=customer-marketing", &[])
            .await
            .0,
        200
    );
    let (_, by_email) = get(
        &ct,
        &http,
        &token,
        "/customers",
        &[("where", r#"email = "customer4@example.com""#)],
    )
    .await;
    assert_eq!(ids(&by_email), vec![id.clone()]);
    let (_, carts) = get(
        &ct,
        &http,
        &token,
        "/carts",
        &[("where", &format!(r#"customerId = "{id}""#))],
    )
    .await;
    assert_eq!(carts["total"], 1);
    let (_, guests) = get(
        &ct,
        &http,
        &token,
        "/orders",
        &[(
            "where",
            "customerId is not defined and customerEmail = \"guest1@example.org\"",
        )],
    )
    .await;
    assert_eq!(guests["total"], 1);
    assert_eq!(guests["results"][0]["orderNumber"], "G00001");
}

#[tokio::test]
async fn in_store_customer_query_returns_only_that_stores_customers() {
    let (ct, http, token) = started_with_customers(30).await;
    let (status, page) = get(
        &ct,
        &http,
        &token,
        "/in-store/key=eu/customers",
        &[("limit", "500"), ("sort", "id asc")],
    )
    .await;
    assert_eq!(status, 200, "{page}");
    let mut expected: Vec<String> = (0..30)
        .filter(|n| customer_stores(*n, &["us".into(), "eu".into()]).contains(&"eu".to_owned()))
        .map(|n| customer_id(7, n))
        .collect();
    expected.sort();
    assert!(!expected.is_empty());
    assert_eq!(ids(&page), expected);
    assert_eq!(page["total"], expected.len());
    for c in page["results"].as_array().unwrap() {
        assert!(
            c["stores"]
                .as_array()
                .unwrap()
                .contains(&json!({"typeId": "store", "key": "eu"}))
        );
    }

    // a global customer (n = 0) is not found in store eu, an eu customer is
    let global = customer_id(7, 0);
    let eu = customer_id(7, 2);
    assert_eq!(
        get(
            &ct,
            &http,
            &token,
            &format!("/in-store/key=eu/customers/{global}"),
            &[]
        )
        .await
        .0,
        404
    );
    assert_eq!(
        get(
            &ct,
            &http,
            &token,
            &format!("/in-store/key=eu/customers/{eu}"),
            &[]
        )
        .await
        .0,
        200
    );
    assert_eq!(
        get(
            &ct,
            &http,
            &token,
            "/in-store/key=eu/customers/key=customer-2",
            &[]
        )
        .await
        .0,
        200
    );

    // carts and orders by store.key
    let (_, carts) = get(
        &ct,
        &http,
        &token,
        "/in-store/key=us/carts",
        &[("limit", "500")],
    )
    .await;
    assert!(carts["total"].as_u64().unwrap() > 0);
    for c in carts["results"].as_array().unwrap() {
        assert_eq!(c["store"]["key"], "us");
    }
    let (_, orders) = get(
        &ct,
        &http,
        &token,
        "/in-store/key=eu/orders",
        &[("limit", "500")],
    )
    .await;
    let (_, all_orders) = get(&ct, &http, &token, "/orders", &[("limit", "500")]).await;
    let eu_orders = all_orders["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["store"]["key"] == "eu")
        .count();
    assert_eq!(orders["total"], eu_orders);
}

#[tokio::test]
async fn in_store_routes_answer_404_for_an_unknown_store() {
    let (ct, http, token) = started_with_customers(5).await;
    for path in [
        "/in-store/key=mars/customers",
        "/in-store/key=mars/carts",
        "/in-store/key=mars/orders",
        "/in-store/key=mars/customers/key=customer-1",
    ] {
        let (status, body) = get(&ct, &http, &token, path, &[]).await;
        assert_eq!(status, 404, "{path}");
        assert_eq!(body["errors"][0]["code"], "ResourceNotFound", "{path}");
    }
    // resources without an in-store variant, and a malformed store segment
    assert_eq!(
        get(&ct, &http, &token, "/in-store/key=eu/categories", &[])
            .await
            .0,
        404
    );
    assert_eq!(
        get(&ct, &http, &token, "/in-store/eu/customers", &[])
            .await
            .0,
        404
    );
}

#[tokio::test]
async fn where_last_modified_at_works_on_customers() {
    let (ct, http, token) = started_with_customers(20).await;
    // customer n has lastModifiedAt 2026-01-01T00:00:00.000Z + n s
    let (status, page) = get(
        &ct,
        &http,
        &token,
        "/customers",
        &[
            ("where", r#"lastModifiedAt > "2026-01-01T00:00:14.000Z""#),
            ("sort", "lastModifiedAt asc"),
            ("sort", "id asc"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{page}");
    let expected: Vec<String> = (15..20).map(|n| customer_id(7, n)).collect();
    assert_eq!(ids(&page), expected);
    let (_, in_store) = get(
        &ct,
        &http,
        &token,
        "/in-store/key=us/customers",
        &[("where", r#"lastModifiedAt > "2026-01-01T00:00:14Z""#)],
    )
    .await;
    let mut expected: Vec<String> = (15..20)
        .filter(|n| customer_stores(*n, &["us".into(), "eu".into()]).contains(&"us".to_owned()))
        .map(|n| customer_id(7, n))
        .collect();
    expected.sort();
    assert_eq!(ids(&in_store), expected);
}

#[tokio::test]
async fn update_customer_bumps_version_and_last_modified_at() {
    let (ct, http, token) = started_with_customers(3).await;
    let id = customer_id(7, 1);
    let before = ct.customer(&id).unwrap();
    ct.update_customer(&id, |c| c["firstName"] = json!("Renamed"));
    let after = ct.customer(&id).unwrap();
    assert_eq!(after["version"], before["version"].as_u64().unwrap() + 1);
    assert!(after["lastModifiedAt"].as_str() > before["lastModifiedAt"].as_str());
    assert_eq!(after["firstName"], "Renamed");
    let w = format!(
        r#"lastModifiedAt > "{}""#,
        before["lastModifiedAt"].as_str().unwrap()
    );
    let (_, changed) = get(&ct, &http, &token, "/customers", &[("where", &w)]).await;
    assert!(ids(&changed).contains(&id));

    ct.update_customer("no-such-id", |c| c["firstName"] = json!("x"));
    assert_eq!(ct.customer_count(), 3);
    ct.delete_customer(&id);
    assert!(ct.customer(&id).is_none());
    assert_eq!(ct.customer_count(), 2);
    ct.put_customer(before.clone());
    assert_eq!(ct.customer(&id), Some(before));
}

#[tokio::test]
async fn update_order_and_cart_bump_version_and_last_modified_at() {
    let (ct, _http, _token) = started_with_customers(3).await;
    let order = order_id(7, 0);
    let before = ct.order(&order).unwrap();
    ct.update_order(&order, |o| o["orderState"] = json!("Confirmed"));
    let after = ct.order(&order).unwrap();
    assert_eq!(after["version"], 2);
    assert_eq!(after["orderState"], "Confirmed");
    assert!(after["lastModifiedAt"].as_str() > before["lastModifiedAt"].as_str());

    let cart = cart_id(7, 1);
    ct.update_cart(&cart, |c| c["cartState"] = json!("Ordered"));
    assert_eq!(ct.cart(&cart).unwrap()["version"], 2);
    let mut new_cart = ct.cart(&cart).unwrap();
    new_cart["id"] = json!("cart-x");
    ct.put_cart(new_cart);
    assert!(ct.cart("cart-x").is_some());
    let mut new_order = after.clone();
    new_order["id"] = json!("order-x");
    ct.put_order(new_order);
    assert_eq!(ct.order("order-x").unwrap()["orderState"], "Confirmed");
}
