//! Contract check: every body the connector sent to the Omnisend emulator must validate against
//! Omnisend's official schemas (`../shared/specs/omnisend/`). Skips with one printed line when
//! the specs are absent.

use emulators::LoggedRequest;
use omnisend::contract::{errors, validator_for};
use serde_json::Value;

const PRODUCTS: &str = "omnisend-products-api-openapi.yml";
const CATEGORIES: &str = "omnisend-product-categories-api-openapi.yml";
const BATCHES: &str = "omnisend-batches-api-openapi.yml";
const CONTACTS: &str = "omnisend-contacts-api-openapi.yml";

/// Validates each logged request body by its endpoint; returns how many bodies were checked,
/// or `None` when the specs are not available.
pub fn assert_bodies_match_official_schemas(requests: &[LoggedRequest]) -> Option<usize> {
    let Some(product) = validator_for(PRODUCTS, "Product") else {
        println!("skipped: ../shared/specs/omnisend not found (contract check)");
        return None;
    };
    let category = validator_for(CATEGORIES, "CreateCategoryRequest").expect("categories spec");
    let category_update =
        validator_for(CATEGORIES, "UpdateCategoryRequest").expect("categories spec");
    let batch = validator_for(BATCHES, "CreateBatchRequest").expect("batches spec");
    let contact = validator_for(CONTACTS, "ContactRequest").expect("contacts spec");
    let mut checked = 0;
    let check = |v: &jsonschema::Validator, body: &Value, what: &str| {
        let errs = errors(v, body);
        assert!(
            errs.is_empty(),
            "{what} violates the official schema: {errs:?}\nbody: {body}"
        );
    };
    for r in requests
        .iter()
        .filter(|r| r.method == "POST" || r.method == "PUT" || r.method == "PATCH")
    {
        let Some(body) = &r.body else { continue };
        let path = r.path.as_str();
        if path == "/batches" {
            check(&batch, body, "batch request");
            let item_validator = match body["endpoint"].as_str() {
                Some("products") => &product,
                // Batch items are full category bodies for both methods (Omnisend's batch items
                // are "the body the single endpoint takes"; PUT carries the id in the body).
                Some("categories") => &category,
                Some("contacts") => &contact,
                other => panic!("unexpected batch endpoint {other:?}"),
            };
            for item in body["items"].as_array().expect("items") {
                check(item_validator, item, "batch item");
            }
        } else if path == "/contacts" {
            check(&contact, body, "contact body");
        } else if path.starts_with("/products") {
            check(&product, body, "product body");
        } else if path == "/product-categories" {
            check(&category, body, "category body");
        } else if path.starts_with("/product-categories/") {
            check(&category_update, body, "category update body");
        } else {
            panic!("unexpected write to {path}");
        }
        checked += 1;
    }
    Some(checked)
}
