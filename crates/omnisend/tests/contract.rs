//! Contract tests: the bodies this crate sends validate against Omnisend's official OpenAPI
//! schemas (`shared/specs/omnisend`), strictly (unknown properties are errors).

mod common;

use common::{KEY, category, product, setup};
use emulators::OmnisendEmulatorConfig;
use omnisend::contract::{self, errors, validator_for};
use omnisend::models::{BatchEndpoint, BatchMethod, BatchRequest};
use serde_json::{Value, json};

const PRODUCTS: &str = "omnisend-products-api-openapi.yml";
const CATEGORIES: &str = "omnisend-product-categories-api-openapi.yml";
const BATCHES: &str = "omnisend-batches-api-openapi.yml";

fn specs_present() -> bool {
    if contract::spec_dir().is_none() {
        println!("skipped: ../shared/specs/omnisend not found");
        return false;
    }
    true
}

/// The schema of a request body, by method and path (as logged by the emulator).
fn schema_of(method: &str, path: &str) -> Option<(&'static str, &'static str)> {
    match (method, path) {
        ("POST", "/products") => Some((PRODUCTS, "Product")),
        ("PUT", p) if p.starts_with("/products/") => Some((PRODUCTS, "Product")),
        ("POST", "/product-categories") => Some((CATEGORIES, "CreateCategoryRequest")),
        ("PATCH", p) if p.starts_with("/product-categories/") => {
            Some((CATEGORIES, "UpdateCategoryRequest"))
        }
        ("POST", "/batches") => Some((BATCHES, "CreateBatchRequest")),
        _ => None,
    }
}

fn assert_valid(spec: &str, schema: &str, body: &Value) {
    let v = validator_for(spec, schema)
        .unwrap_or_else(|| panic!("schema {schema} missing from {spec}"));
    let errs = errors(&v, body);
    assert!(
        errs.is_empty(),
        "{schema} body {body} is invalid: {errs:#?}"
    );
}

#[tokio::test]
async fn every_request_body_validates_against_the_official_schema() {
    if !specs_present() {
        return;
    }
    let (emu, client) = setup(OmnisendEmulatorConfig::default()).await;
    client
        .upsert_category(&category("c1", "Shoes"))
        .await
        .unwrap();
    client
        .upsert_category(&category("c1", "Footwear"))
        .await
        .unwrap();
    let mut full = product("p1", "Full");
    full.category_ids = vec!["c1".into()];
    client.upsert_product(&full).await.unwrap();
    client.upsert_product(&full).await.unwrap();
    let mut minimal = product("p2", "Minimal");
    minimal.description = None;
    minimal.default_image_url = None;
    minimal.images.clear();
    minimal.vendor = None;
    minimal.product_type = None;
    minimal.tags.clear();
    minimal.variants.clear();
    minimal.created_at = None;
    minimal.updated_at = None;
    client.upsert_product(&minimal).await.unwrap();
    let batch = BatchRequest {
        endpoint: BatchEndpoint::Products,
        method: BatchMethod::Put,
        items: vec![
            serde_json::to_value(&full).unwrap(),
            serde_json::to_value(&minimal).unwrap(),
        ],
        origin: None,
    };
    let created = client.submit_batch(&batch).await.unwrap();
    client
        .wait_batches(BatchEndpoint::Products, &[created.batch_id])
        .await
        .unwrap();

    let mut checked = 0;
    for r in emu.requests() {
        let Some((spec, schema)) = schema_of(&r.method, &r.path) else {
            continue;
        };
        let body = r
            .body
            .unwrap_or_else(|| panic!("{} {} had no JSON body", r.method, r.path));
        assert_valid(spec, schema, &body);
        if r.path == "/batches" {
            for item in body["items"].as_array().unwrap() {
                assert_valid(PRODUCTS, "Product", item);
            }
        }
        checked += 1;
    }
    // POST+PATCH categories, PUT+POST+PUT+PUT+POST products... and one batch.
    assert!(checked >= 8, "only {checked} bodies checked");
    assert_eq!(emu.products(KEY).len(), 2);
}

#[test]
fn the_contract_check_rejects_wrong_bodies() {
    if !specs_present() {
        return;
    }
    let mut body = serde_json::to_value(product("p1", "T")).unwrap();
    assert_valid(PRODUCTS, "Product", &body);
    let v = validator_for(PRODUCTS, "Product").unwrap();
    // A misspelt field is caught in strict mode ...
    body["categoryIds"] = json!(["c1"]);
    assert!(!errors(&v, &body).is_empty());
    // ... while the lenient validator follows the spec's open objects.
    let lenient = contract::lenient_validator_for(PRODUCTS, "Product").unwrap();
    assert!(lenient.is_valid(&body));
    // Missing required field, wrong enum, wrong type in a referenced schema.
    let mut body = serde_json::to_value(product("p1", "T")).unwrap();
    body.as_object_mut().unwrap().remove("currency");
    assert!(!v.is_valid(&body));
    let mut body = serde_json::to_value(product("p1", "T")).unwrap();
    body["status"] = json!("available");
    assert!(!v.is_valid(&body));
    let mut body = serde_json::to_value(product("p1", "T")).unwrap();
    body["variants"][0]["price"] = json!("19.99");
    assert!(!v.is_valid(&body));
    // A batch of 101 items violates the schema too.
    let batch = json!({"endpoint": "products", "method": "POST", "items": vec![json!({}); 101]});
    assert!(
        !validator_for(BATCHES, "CreateBatchRequest")
            .unwrap()
            .is_valid(&batch)
    );
    // Unknown files and schemas give None.
    assert!(validator_for("nope.yml", "Product").is_none());
    assert!(validator_for(PRODUCTS, "Nope").is_none());
}

#[test]
fn model_bodies_validate_against_the_official_schema() {
    if !specs_present() {
        return;
    }
    assert_valid(
        PRODUCTS,
        "Product",
        &serde_json::to_value(product("p1", "T")).unwrap(),
    );
    assert_valid(
        CATEGORIES,
        "CreateCategoryRequest",
        &serde_json::to_value(category("c1", "T")).unwrap(),
    );
    let batch = BatchRequest {
        endpoint: BatchEndpoint::Categories,
        method: BatchMethod::Post,
        items: vec![serde_json::to_value(category("c1", "T")).unwrap()],
        origin: Some("ct-omnisend".into()),
    };
    assert_valid(
        BATCHES,
        "CreateBatchRequest",
        &serde_json::to_value(&batch).unwrap(),
    );
}
