//! Contract tests of the local commercetools.

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
