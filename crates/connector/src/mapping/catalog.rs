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
    // Priced variants first, then the cap: unpriced ones must not use up Omnisend's limit.
    let priced = p
        .all_variants()
        .filter_map(|v| select_price(&v.prices, &selector, ctx.now).map(|price| (v, price)))
        .take(limits::VARIANTS);
    for (v, price) in priced {
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
        // Left out on purpose: it changes with every edit (staged-only ones too) and would make
        // otherwise identical payloads hash differently and be sent again.
        updated_at: None,
    })
}

/// The next instant after `ctx.now` at which a price in the store's currency starts or stops
/// being valid: the product must be mapped again then, although commercetools will not report
/// a change (`lastModifiedAt` does not move when a validity window opens or closes).
pub fn next_price_change(
    p: &ProductProjection,
    ctx: &CatalogContext<'_>,
) -> Option<OffsetDateTime> {
    p.all_variants()
        .flat_map(|v| v.prices.iter())
        .filter(|price| price.value.currency_code.eq_ignore_ascii_case(ctx.currency))
        .flat_map(|price| [price.valid_from, price.valid_until])
        .flatten()
        .filter(|t| *t > ctx.now)
        .min()
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{URL_PLACEHOLDERS, UnpublishedPolicy};
    use proptest::prelude::*;
    use rust_decimal::Decimal;
    use serde_json::{Value, json};
    use std::time::Duration;
    use time::macros::datetime;

    fn settings() -> CatalogSettings {
        CatalogSettings {
            vendor_attribute: Some("brand".into()),
            tag_attributes: vec!["tags".into()],
            variant_title_attributes: vec!["color".into()],
            unpublished: UnpublishedPolicy::Delete,
            delta_overlap: Duration::from_secs(60),
        }
    }

    struct Fixture {
        locales: Vec<String>,
        url: UrlTemplate,
        catalog: CatalogSettings,
        types: HashMap<String, String>,
        known: HashSet<String>,
    }

    impl Fixture {
        fn new(locales: &[&str]) -> Self {
            Self {
                locales: locales.iter().map(|s| s.to_string()).collect(),
                url: UrlTemplate::parse(
                    "https://shop.example.com/{locale}/p/{slug}",
                    URL_PLACEHOLDERS,
                )
                .unwrap(),
                catalog: settings(),
                types: HashMap::from([("pt-1".to_string(), "Apparel".to_string())]),
                known: HashSet::from(["cat-1".to_string()]),
            }
        }
        fn ctx(&self) -> CatalogContext<'_> {
            CatalogContext {
                store_key: "us",
                locales: &self.locales,
                currency: "USD",
                country: Some("US"),
                price_channel_id: Some("web"),
                supply_channel_id: Some("wh-us"),
                product_url: &self.url,
                catalog: &self.catalog,
                product_types: &self.types,
                known_categories: &self.known,
                now: datetime!(2026-06-01 0:00 UTC),
            }
        }
    }

    fn money(currency: &str, cents: i64) -> Value {
        json!({"type": "centPrecision", "currencyCode": currency, "centAmount": cents, "fractionDigits": 2})
    }

    fn product(f: impl FnOnce(&mut Value)) -> ProductProjection {
        let mut p = json!({
            "id": "p-1", "version": 3, "key": "shirt",
            "productType": {"typeId": "product-type", "id": "pt-1"},
            "name": {"en": "Shirt", "de": "Hemd"},
            "description": {"en": "<p>Soft <b>cotton</b> &amp; linen</p>"},
            "slug": {"en": "shirt", "de": "hemd"},
            "categories": [{"typeId": "category", "id": "cat-1"}, {"typeId": "category", "id": "cat-unknown"}],
            "masterVariant": {
                "id": 1, "sku": "SKU-1",
                "prices": [
                    {"id": "a", "value": money("USD", 2000)},
                    {"id": "b", "value": money("USD", 1800), "country": "US"},
                    {"id": "c", "value": money("EUR", 1700)}
                ],
                "images": [{"url": "https://img.example/1.jpg"}],
                "attributes": [
                    {"name": "brand", "value": "Acme"},
                    {"name": "color", "value": {"key": "red", "label": {"en": "Red", "de": "Rot"}}},
                    {"name": "tags", "value": ["summer", "cotton"]}
                ],
                "availability": {"isOnStock": true, "channels": {"wh-us": {"isOnStock": true}, "wh-eu": {"isOnStock": false}}}
            },
            "variants": [],
            "published": true,
            "createdAt": "2026-01-01T00:00:00.000Z",
            "lastModifiedAt": "2026-01-02T00:00:00.000Z"
        });
        f(&mut p);
        serde_json::from_value(p).unwrap()
    }

    #[test]
    fn maps_title_url_price_status_and_attributes_for_the_store() {
        let fx = Fixture::new(&["en-US", "en"]);
        let out = map_product(&product(|_| {}), &fx.ctx()).unwrap();
        assert_eq!(out.id, "p-1");
        assert_eq!(out.title, "Shirt");
        assert_eq!(out.url, "https://shop.example.com/en-US/p/shirt");
        assert_eq!(out.currency, "USD");
        assert_eq!(out.status, ProductStatus::InStock);
        assert_eq!(out.description.as_deref(), Some("Soft cotton & linen"));
        assert_eq!(out.vendor.as_deref(), Some("Acme"));
        assert_eq!(out.product_type.as_deref(), Some("Apparel"));
        assert_eq!(out.tags, vec!["summer", "cotton"]);
        assert_eq!(
            out.category_ids,
            vec!["cat-1"],
            "categories unknown to Omnisend are left out"
        );
        assert_eq!(
            out.default_image_url.as_deref(),
            Some("https://img.example/1.jpg")
        );
        let v = &out.variants[0];
        assert_eq!(v.id, "p-1-1");
        assert_eq!(v.title, "Shirt / Red");
        assert_eq!(
            v.price,
            Decimal::new(1800, 2),
            "the country price beats the base price"
        );
        assert_eq!(v.strike_through_price, None);
        assert_eq!(v.sku.as_deref(), Some("SKU-1"));
    }

    #[test]
    fn localized_values_fall_back_along_the_chain() {
        let fx = Fixture::new(&["de-DE", "de", "en"]);
        let out = map_product(
            &product(|p| p["description"] = json!({"en": "Only English"})),
            &fx.ctx(),
        )
        .unwrap();
        assert_eq!(out.title, "Hemd");
        assert_eq!(out.url, "https://shop.example.com/de-DE/p/hemd");
        assert_eq!(out.description.as_deref(), Some("Only English"));
        assert_eq!(out.variants[0].title, "Hemd / Rot");
    }

    #[test]
    fn missing_name_in_every_locale_of_the_chain_is_rejected_naming_the_field() {
        let fx = Fixture::new(&["en-US", "en"]);
        let r = map_product(
            &product(|p| p["name"] = json!({"fr": "Chemise", "en": "  "})),
            &fx.ctx(),
        )
        .unwrap_err();
        assert_eq!(
            (r.entity, r.id.as_str(), r.field.as_str()),
            ("product", "p-1", "name")
        );
    }

    #[test]
    fn missing_slug_is_rejected_when_the_url_needs_it() {
        let fx = Fixture::new(&["en-US", "en"]);
        let r = map_product(
            &product(|p| p["slug"] = json!({"fr": "chemise"})),
            &fx.ctx(),
        )
        .unwrap_err();
        assert_eq!(r.field, "slug");
    }

    #[test]
    fn no_price_in_the_store_currency_is_rejected_with_the_scope() {
        let fx = Fixture::new(&["en"]);
        let r = map_product(
            &product(|p| {
                p["masterVariant"]["prices"] = json!([{"id": "c", "value": money("EUR", 1700)}])
            }),
            &fx.ctx(),
        )
        .unwrap_err();
        assert_eq!(r.field, "masterVariant.prices");
        assert!(
            r.reason.contains("USD") && r.reason.contains("country US"),
            "{}",
            r.reason
        );
    }

    #[test]
    fn a_discount_gives_the_discounted_price_and_the_original_as_strike_through() {
        let fx = Fixture::new(&["en"]);
        let out = map_product(
            &product(|p| {
                p["masterVariant"]["prices"] = json!([{"id": "a", "value": money("USD", 2000),
                    "discounted": {"value": money("USD", 1500), "discount": {"typeId": "product-discount", "id": "d"}}}])
            }),
            &fx.ctx(),
        )
        .unwrap();
        assert_eq!(out.variants[0].price, Decimal::new(15, 0));
        assert_eq!(
            out.variants[0].strike_through_price,
            Some(Decimal::new(20, 0))
        );
        let body = serde_json::to_value(&out).unwrap();
        assert_eq!(body["variants"][0]["price"], json!(15.0));
        assert_eq!(body["variants"][0]["strikeThroughPrice"], json!(20.0));
    }

    #[test]
    fn stock_is_read_from_the_store_supply_channel_only() {
        let fx = Fixture::new(&["en"]);
        let out = map_product(
            &product(|p| {
                p["masterVariant"]["availability"] =
                    json!({"isOnStock": true, "channels": {"wh-us": {"isOnStock": false}, "wh-eu": {"isOnStock": true}}})
            }),
            &fx.ctx(),
        )
        .unwrap();
        assert_eq!(out.status, ProductStatus::OutOfStock);
        assert_eq!(out.variants[0].status, Some(ProductStatus::OutOfStock));
    }

    #[test]
    fn variants_without_a_store_price_are_left_out_but_the_product_is_sent() {
        let fx = Fixture::new(&["en"]);
        let out = map_product(
            &product(|p| {
                p["variants"] = json!([
                    {"id": 2, "sku": "SKU-2", "prices": [{"id": "x", "value": money("EUR", 100)}]},
                    {"id": 3, "sku": "SKU-3", "prices": [{"id": "y", "value": money("USD", 990)}]}
                ])
            }),
            &fx.ctx(),
        )
        .unwrap();
        let ids: Vec<&str> = out.variants.iter().map(|v| v.id.as_str()).collect();
        assert_eq!(ids, ["p-1-1", "p-1-3"]);
    }

    #[test]
    fn unpublished_product_kept_as_not_available_when_configured() {
        let mut fx = Fixture::new(&["en"]);
        fx.catalog.unpublished = UnpublishedPolicy::NotAvailable;
        let out = map_product(&product(|p| p["published"] = json!(false)), &fx.ctx()).unwrap();
        assert_eq!(out.status, ProductStatus::NotAvailable);
        assert!(
            out.variants
                .iter()
                .all(|v| v.status == Some(ProductStatus::NotAvailable))
        );
    }

    #[test]
    fn next_price_change_is_the_nearest_future_boundary_in_the_store_currency() {
        let fx = Fixture::new(&["en"]);
        let p = product(|p| {
            p["masterVariant"]["prices"] = json!([
                {"id": "old", "value": money("USD", 100), "validUntil": "2026-01-01T00:00:00.000Z"},
                {"id": "sale", "value": money("USD", 90), "validFrom": "2026-07-01T00:00:00.000Z",
                 "validUntil": "2026-07-08T00:00:00.000Z"},
                {"id": "eur", "value": money("EUR", 80), "validFrom": "2026-06-15T00:00:00.000Z"},
                {"id": "base", "value": money("USD", 120)}
            ])
        });
        // Past boundaries and other currencies do not count.
        assert_eq!(
            next_price_change(&p, &fx.ctx()),
            Some(datetime!(2026-07-01 0:00 UTC))
        );
        let p = product(|p| {
            p["masterVariant"]["prices"] = json!([{"id": "b", "value": money("USD", 1)}])
        });
        assert_eq!(next_price_change(&p, &fx.ctx()), None);
    }

    #[test]
    fn category_title_comes_from_the_locale_chain() {
        let fx = Fixture::new(&["de-DE", "de", "en"]);
        let c: Category = serde_json::from_value(json!({
            "id": "cat-1", "version": 1, "name": {"en": "Shirts", "de": "Hemden"}, "slug": {"en": "shirts"},
            "createdAt": "2026-01-01T00:00:00.000Z", "lastModifiedAt": "2026-01-01T00:00:00.000Z"
        }))
        .unwrap();
        assert_eq!(
            map_category(&c, &fx.ctx()).unwrap(),
            os::Category {
                category_id: "cat-1".into(),
                title: "Hemden".into()
            }
        );
    }

    proptest! {
        #[test]
        fn any_text_respects_omnisend_limits_and_hashes_stably(
            name in "\\PC{1,400}",
            description in "\\PC{0,1500}",
            tags in proptest::collection::vec("[a-z]{1,8}", 0..150),
        ) {
            let fx = Fixture::new(&["en"]);
            let p = product(|p| {
                p["name"] = json!({"en": name.clone()});
                p["description"] = json!({"en": description.clone()});
                p["masterVariant"]["attributes"] = json!([{"name": "tags", "value": tags.clone()}]);
            });
            match map_product(&p, &fx.ctx()) {
                Ok(out) => {
                    prop_assert!(!out.title.is_empty() && out.title.chars().count() <= limits::TITLE);
                    prop_assert!(out.description.as_ref().is_none_or(|d| d.chars().count() <= limits::DESCRIPTION));
                    prop_assert!(out.tags.len() <= limits::TAGS);
                    prop_assert!(out.variants.iter().all(|v| v.title.chars().count() <= limits::TITLE));
                    prop_assert_eq!(payload_hash_of(&out), payload_hash_of(&map_product(&p, &fx.ctx()).unwrap()));
                }
                Err(r) => prop_assert_eq!(r.field, "name", "only a blank name may be rejected"),
            }
        }
    }

    fn payload_hash_of(p: &os::Product) -> String {
        crate::mapping::payload_hash(p)
    }
}
