//! Catalog mapping: commercetools categories and product projections to Omnisend bodies.
//!
//! Pure: everything a mapping needs arrives in [`CatalogContext`]; no I/O, no clock, no global
//! configuration. A record that cannot be mapped comes back as a [`Rejection`] naming the
//! entity, its id, the field and the reason.

use std::collections::{HashMap, HashSet};

use commercetools::models::{Category, ProductProjection, ProductVariant};
use commercetools::price::{PriceSelector, select_price};
use omnisend::models::{self as os, ProductStatus, limits};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::Rejection;
use super::text::{html_to_text, truncate_chars};
use crate::config::{CatalogSettings, UnpublishedPolicy, UrlTemplate};

/// Everything the catalog mapping of one store needs.
#[derive(Clone, Debug)]
pub struct CatalogContext<'a> {
    /// Store key (for messages).
    pub store_key: &'a str,
    /// Locale fallback chain.
    pub locales: &'a [String],
    /// Upper-case currency.
    pub currency: &'a str,
    /// Country for price selection.
    pub country: Option<&'a str>,
    /// Distribution channel id for price selection.
    pub price_channel_id: Option<&'a str>,
    /// Supply channel id for availability.
    pub supply_channel_id: Option<&'a str>,
    /// Product URL template.
    pub product_url: &'a UrlTemplate,
    /// Mapping options.
    pub catalog: &'a CatalogSettings,
    /// Product type id → name.
    pub product_types: &'a HashMap<String, String>,
    /// Category ids that exist in Omnisend for this brand (others are left out of `categoryIDs`).
    pub known_categories: &'a HashSet<String>,
    /// The instant price validity is evaluated at.
    pub now: OffsetDateTime,
}

/// Maps a category to `{categoryID, title}`; the title comes from the store's locale chain.
pub fn map_category(
    category: &Category,
    ctx: &CatalogContext<'_>,
) -> Result<os::Category, Rejection> {
    let title = category.name.get(ctx.locales).ok_or_else(|| {
        Rejection::new(
            "category",
            &category.id,
            "name",
            format!("no name in any of the locales {:?}", ctx.locales),
        )
    })?;
    if category.id.chars().count() > limits::ID {
        return Err(Rejection::new(
            "category",
            &category.id,
            "id",
            format!("longer than {} characters", limits::ID),
        ));
    }
    Ok(os::Category {
        category_id: category.id.clone(),
        title: truncate_chars(title.trim(), limits::TITLE),
    })
}

/// The Omnisend variant id of a commercetools variant: stable across SKU changes.
pub fn variant_id(product_id: &str, variant_id: i64) -> String {
    format!("{product_id}-{variant_id}")
}

/// Maps a product projection. `published == false` (or `Some(false)` on the projection) yields
/// `status: notAvailable` — callers that delete unpublished products never call this for them.
pub fn map_product(
    p: &ProductProjection,
    ctx: &CatalogContext<'_>,
) -> Result<os::Product, Rejection> {
    let reject = |field: &str, reason: String| Rejection::new("product", &p.id, field, reason);
    if p.id.chars().count() > limits::ID {
        return Err(reject(
            "id",
            format!("longer than {} characters", limits::ID),
        ));
    }
    let title = p.name.get(ctx.locales).map(str::trim).ok_or_else(|| {
        reject(
            "name",
            format!("no name in any of the locales {:?}", ctx.locales),
        )
    })?;
    let title = truncate_chars(title, limits::TITLE);

    let slug = p.slug.get(ctx.locales);
    if ctx.product_url.uses("slug") && slug.is_none() {
        return Err(reject(
            "slug",
            format!(
                "no slug in any of the locales {:?} for the product URL",
                ctx.locales
            ),
        ));
    }
    let locale = ctx.locales.first().map(String::as_str).unwrap_or("");
    let url_for = |sku: &str| {
        ctx.product_url.render(&[
            ("slug", slug.unwrap_or("")),
            ("locale", locale),
            ("key", p.key.as_deref().unwrap_or(&p.id)),
            ("id", &p.id),
            ("sku", sku),
        ])
    };
    let master_sku = p.master_variant.sku.as_deref().unwrap_or("");
    let url = url_for(master_sku);
    if url.chars().count() > limits::URL {
        return Err(reject(
            "url",
            format!("product URL longer than {} characters", limits::URL),
        ));
    }

    let selector = PriceSelector {
        currency: ctx.currency,
        country: ctx.country,
        channel_id: ctx.price_channel_id,
        customer_group_id: None,
    };
    let multi = !p.variants.is_empty();
    let mut variants = Vec::new();
    for v in p.all_variants().take(limits::VARIANTS) {
        let Some(price) = select_price(&v.prices, &selector, ctx.now) else {
            continue;
        };
        let (amount, strike) = match &price.discounted {
            Some(d) if d.value.amount() < price.value.amount() => {
                (d.value.amount(), Some(price.value.amount()))
            }
            _ => (price.value.amount(), None),
        };
        let images = image_urls(v);
        let sku = v
            .sku
            .clone()
            .filter(|s| !s.is_empty())
            .map(|s| truncate_chars(&s, limits::SKU));
        let variant_url = if ctx.product_url.uses("sku") {
            url_for(v.sku.as_deref().unwrap_or(""))
        } else {
            url.clone()
        };
        variants.push(os::Variant {
            id: variant_id(&p.id, v.id),
            title: variant_title(&title, v, multi, ctx),
            url: variant_url,
            price: amount,
            strike_through_price: strike,
            sku,
            status: Some(variant_status(v, ctx)),
            description: None,
            default_image_url: images.first().cloned(),
            images,
        });
    }
    if variants.is_empty() {
        let scope = [
            ctx.country.map(|c| format!("country {c}")),
            ctx.price_channel_id.map(|c| format!("channel {c}")),
        ]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>();
        let scope = if scope.is_empty() {
            String::new()
        } else {
            format!(" ({})", scope.join(", "))
        };
        return Err(reject(
            "masterVariant.prices",
            format!(
                "no valid price in {} for store {}{scope}",
                ctx.currency, ctx.store_key
            ),
        ));
    }

    let published = p.published.unwrap_or(true);
    let status = if !published {
        ProductStatus::NotAvailable
    } else if variants
        .iter()
        .any(|v| v.status == Some(ProductStatus::InStock))
    {
        ProductStatus::InStock
    } else {
        ProductStatus::OutOfStock
    };
    if !published && ctx.catalog.unpublished == UnpublishedPolicy::NotAvailable {
        for v in &mut variants {
            v.status = Some(ProductStatus::NotAvailable);
        }
    }

    let mut images: Vec<String> = Vec::new();
    let mut seen = HashSet::new();
    for url in p.all_variants().flat_map(image_urls) {
        if images.len() < limits::IMAGES && seen.insert(url.clone()) {
            images.push(url);
        }
    }

    let description = p
        .description
        .as_ref()
        .and_then(|d| d.get(ctx.locales))
        .map(html_to_text)
        .filter(|d| !d.is_empty())
        .map(|d| truncate_chars(&d, limits::DESCRIPTION));

    let vendor = ctx
        .catalog
        .vendor_attribute
        .as_deref()
        .and_then(|name| p.master_variant.attribute(name))
        .and_then(|v| attribute_texts(v, ctx.locales).into_iter().next())
        .map(|v| truncate_chars(&v, limits::VENDOR));

    let mut tags = Vec::new();
    let mut tag_seen = HashSet::new();
    for name in &ctx.catalog.tag_attributes {
        for v in p.all_variants().filter_map(|v| v.attribute(name)) {
            for t in attribute_texts(v, ctx.locales) {
                if tags.len() < limits::TAGS && tag_seen.insert(t.clone()) {
                    tags.push(t);
                }
            }
        }
    }

    let category_ids = p
        .categories
        .iter()
        .filter(|c| ctx.known_categories.contains(&c.id))
        .map(|c| c.id.clone())
        .take(limits::CATEGORY_IDS)
        .collect();

    Ok(os::Product {
        id: p.id.clone(),
        title,
        description,
        url,
        currency: ctx.currency.to_ascii_uppercase(),
        status,
        default_image_url: images.first().cloned(),
        images,
        vendor,
        product_type: ctx
            .product_types
            .get(&p.product_type.id)
            .map(|t| truncate_chars(t, limits::TYPE)),
        tags,
        category_ids,
        variants,
        created_at: p.created_at.format(&Rfc3339).ok(),
        updated_at: p.last_modified_at.format(&Rfc3339).ok(),
    })
}

fn image_urls(v: &ProductVariant) -> Vec<String> {
    v.images
        .iter()
        .map(|i| i.url.trim())
        .filter(|u| !u.is_empty() && u.chars().count() <= limits::URL)
        .take(limits::IMAGES)
        .map(str::to_owned)
        .collect()
}

/// `inStock` when the variant is on stock in the store's supply channel (or project-wide when
/// the store has none). A variant without inventory tracking is sellable, hence in stock.
fn variant_status(v: &ProductVariant, ctx: &CatalogContext<'_>) -> ProductStatus {
    let on_stock = match (&v.availability, ctx.supply_channel_id) {
        (None, _) => true,
        (Some(a), Some(channel)) => a
            .channels
            .get(channel)
            .and_then(|c| c.is_on_stock)
            .unwrap_or(false),
        (Some(a), None) => a.is_on_stock.unwrap_or(true),
    };
    if on_stock {
        ProductStatus::InStock
    } else {
        ProductStatus::OutOfStock
    }
}

fn variant_title(
    product_title: &str,
    v: &ProductVariant,
    multi: bool,
    ctx: &CatalogContext<'_>,
) -> String {
    let parts: Vec<String> = ctx
        .catalog
        .variant_title_attributes
        .iter()
        .filter_map(|name| v.attribute(name))
        .filter_map(|value| attribute_texts(value, ctx.locales).into_iter().next())
        .collect();
    let title = if !parts.is_empty() {
        format!("{product_title} / {}", parts.join(" / "))
    } else if multi {
        match v.sku.as_deref().filter(|s| !s.is_empty()) {
            Some(sku) => format!("{product_title} - {sku}"),
            None => format!("{product_title} - {}", v.id),
        }
    } else {
        product_title.to_owned()
    };
    truncate_chars(&title, limits::TITLE)
}

/// Renders an attribute value as text(s): text, number and boolean as is; a LocalizedString
/// through the locale chain; enums by label; sets element by element.
pub fn attribute_texts(value: &serde_json::Value, locales: &[String]) -> Vec<String> {
    use serde_json::Value;
    match value {
        Value::String(s) if !s.trim().is_empty() => vec![s.trim().to_owned()],
        Value::Number(n) => vec![n.to_string()],
        Value::Bool(b) => vec![b.to_string()],
        Value::Array(items) => items
            .iter()
            .flat_map(|i| attribute_texts(i, locales))
            .collect(),
        Value::Object(map) => {
            if let Some(label) = map.get("label") {
                return attribute_texts(label, locales);
            }
            if map.contains_key("key") {
                return map
                    .get("key")
                    .map(|k| attribute_texts(k, locales))
                    .unwrap_or_default();
            }
            locales
                .iter()
                .find_map(|l| {
                    map.get(l)
                        .and_then(Value::as_str)
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                })
                .map(|s| vec![s.to_owned()])
                .unwrap_or_default()
        }
        _ => Vec::new(),
    }
}
