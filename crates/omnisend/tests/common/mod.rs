//! Shared test helpers (included with `mod common;`).
#![allow(dead_code)]

use std::time::Duration;

use emulators::{OmnisendEmulator, OmnisendEmulatorConfig};
use omnisend::models::{Category, Product, ProductStatus, Variant};
use omnisend::{OmnisendClient, OmnisendConfig, RateController};
use rust_decimal::Decimal;

/// The API key (brand) used by the tests.
pub const KEY: &str = "test-brand-key";

/// Starts an emulator and a client pointed at it (400/min, burst 10, fast batch polling).
pub async fn setup(config: OmnisendEmulatorConfig) -> (OmnisendEmulator, OmnisendClient) {
    let emu = OmnisendEmulator::start(config)
        .await
        .expect("emulator starts");
    let client = client_for(&emu.base_url(), 6);
    (emu, client)
}

/// A client for `base_url` with the given attempt budget.
pub fn client_for(base_url: &str, max_attempts: u32) -> OmnisendClient {
    client_with_rate(base_url, max_attempts, RateController::new(400, 10))
}

/// A client for `base_url` with the given attempt budget and rate controller.
pub fn client_with_rate(base_url: &str, max_attempts: u32, rate: RateController) -> OmnisendClient {
    let mut config = OmnisendConfig::new(KEY).with_api_url(base_url);
    config.timeout = Duration::from_secs(10);
    config.max_attempts = max_attempts;
    config.batch_poll_interval = Duration::from_millis(200);
    OmnisendClient::new(config, rate).expect("client builds")
}

/// A complete, valid product with one variant.
pub fn product(id: &str, title: &str) -> Product {
    Product {
        id: id.to_owned(),
        title: title.to_owned(),
        description: Some("A product".into()),
        url: format!("https://shop.example.com/p/{id}"),
        currency: "EUR".into(),
        status: ProductStatus::InStock,
        default_image_url: Some(format!("https://img.example.com/{id}.jpg")),
        images: vec![format!("https://img.example.com/{id}.jpg")],
        vendor: Some("ACME".into()),
        product_type: Some("Shoes".into()),
        tags: vec!["new".into()],
        category_ids: Vec::new(),
        variants: vec![Variant {
            id: format!("{id}-v1"),
            title: format!("{title} / 42"),
            url: format!("https://shop.example.com/p/{id}?v=1"),
            price: Decimal::new(1999, 2),
            strike_through_price: Some(Decimal::new(2499, 2)),
            sku: Some(format!("SKU-{id}")),
            status: Some(ProductStatus::InStock),
            description: None,
            default_image_url: None,
            images: Vec::new(),
        }],
        created_at: Some("2026-01-01T00:00:00Z".into()),
        updated_at: Some("2026-01-02T00:00:00Z".into()),
    }
}

/// A category.
pub fn category(id: &str, title: &str) -> Category {
    Category {
        category_id: id.to_owned(),
        title: title.to_owned(),
    }
}
