//! Omnisend request and response bodies (API version 2026-03-15) for catalog and batches,
//! with the documented field limits.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// Documented field limits (products and categories specs, 2026-03-15).
pub mod limits {
    /// `Product.id`, `Variant.id`, `categoryID`.
    pub const ID: usize = 100;
    /// `Product.title`, `Variant.title`, category `title`.
    pub const TITLE: usize = 255;
    /// `description`.
    pub const DESCRIPTION: usize = 1000;
    /// `url`, `defaultImageUrl`.
    pub const URL: usize = 1000;
    /// Items of `images`.
    pub const IMAGES: usize = 300;
    /// `vendor`.
    pub const VENDOR: usize = 100;
    /// `type`.
    pub const TYPE: usize = 100;
    /// Items of `tags`.
    pub const TAGS: usize = 100;
    /// Items of `categoryIDs`.
    pub const CATEGORY_IDS: usize = 100;
    /// `Variant.sku`.
    pub const SKU: usize = 255;
    /// Items of `variants`.
    pub const VARIANTS: usize = 500;
    /// Items of one batch.
    pub const BATCH_ITEMS: usize = 100;
}

/// Product availability.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ProductStatus {
    /// Can be bought.
    InStock,
    /// Out of stock.
    OutOfStock,
    /// Not sold (e.g. unpublished).
    NotAvailable,
}

/// `Product` (required: id, title, url, currency, status).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Product {
    /// Our product id (the commercetools product id).
    pub id: String,
    /// Title.
    pub title: String,
    /// Plain-text description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Product page URL.
    pub url: String,
    /// Upper-case ISO 4217 currency.
    pub currency: String,
    /// Availability.
    pub status: ProductStatus,
    /// Main image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_image_url: Option<String>,
    /// All image URLs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<String>,
    /// Brand or manufacturer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vendor: Option<String>,
    /// Product type.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub product_type: Option<String>,
    /// Tags.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Category ids (created through the categories API first).
    #[serde(rename = "categoryIDs", default, skip_serializing_if = "Vec::is_empty")]
    pub category_ids: Vec<String>,
    /// Variants (at least one when present).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub variants: Vec<Variant>,
    /// Creation time, RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    /// Last update, RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<String>,
}

/// `Variant` (required: id, title, url, price).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Variant {
    /// Variant id.
    pub id: String,
    /// Title.
    pub title: String,
    /// Variant page URL.
    pub url: String,
    /// Price in major units, sent as a JSON number.
    #[serde(with = "rust_decimal::serde::float")]
    pub price: Decimal,
    /// Price before the discount.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "rust_decimal::serde::float_option"
    )]
    pub strike_through_price: Option<Decimal>,
    /// SKU.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sku: Option<String>,
    /// Availability.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<ProductStatus>,
    /// Plain-text description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Main image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_image_url: Option<String>,
    /// Images.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<String>,
}

/// A product category (`POST /product-categories` body).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Category {
    /// Our category id (the commercetools category id).
    #[serde(rename = "categoryID")]
    pub category_id: String,
    /// Title.
    pub title: String,
}

/// Batch target endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum BatchEndpoint {
    /// `/products`.
    Products,
    /// `/contacts`.
    Contacts,
    /// `/events`.
    Events,
    /// `/product-categories`.
    Categories,
}

impl BatchEndpoint {
    /// Wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Products => "products",
            Self::Contacts => "contacts",
            Self::Events => "events",
            Self::Categories => "categories",
        }
    }
}

/// Batch method.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum BatchMethod {
    /// Create.
    Post,
    /// Replace.
    Put,
}

/// `CreateBatchRequest`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BatchRequest {
    /// Target endpoint.
    pub endpoint: BatchEndpoint,
    /// Method applied to every item.
    pub method: BatchMethod,
    /// 1..=100 bodies, each what the single endpoint would take.
    pub items: Vec<serde_json::Value>,
    /// Origin label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
}

/// `CreateBatchResponse`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchCreated {
    /// Batch id.
    #[serde(rename = "batchID")]
    pub batch_id: String,
    /// Items accepted.
    #[serde(default)]
    pub total_count: u64,
}

/// `Batch` as returned by `GET /batches/{id}`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Batch {
    /// Batch id.
    #[serde(rename = "batchID")]
    pub batch_id: String,
    /// `pending`, `inProgress`, `finished` or `stopped`.
    #[serde(default)]
    pub status: String,
    /// Endpoint.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Method.
    #[serde(default)]
    pub method: Option<String>,
    /// Items in the batch.
    #[serde(default)]
    pub total_count: u64,
    /// Items processed.
    #[serde(default)]
    pub finished_count: u64,
    /// Items failed.
    #[serde(default)]
    pub errors_count: u64,
    /// Failed items.
    #[serde(default)]
    pub errors: Vec<BatchItem>,
    /// Successful items.
    #[serde(default)]
    pub responses: Vec<BatchItem>,
}

impl Batch {
    /// `finished` or `stopped`.
    pub fn is_terminal(&self) -> bool {
        matches!(self.status.as_str(), "finished" | "stopped")
    }
}

/// `BatchItem`: one item's outcome.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchItem {
    /// Item id.
    #[serde(rename = "itemID", default)]
    pub item_id: Option<String>,
    /// Item status.
    #[serde(default)]
    pub status: Option<String>,
    /// The item as sent.
    #[serde(default)]
    pub request: Option<serde_json::Value>,
    /// The single-endpoint response body.
    #[serde(default)]
    pub response: Option<serde_json::Value>,
    /// The single-endpoint status code.
    #[serde(default)]
    pub response_code: Option<u16>,
}
