//! Mapping + hashing throughput (BENCHMARKS.md, target 1: ≥ 50 000 products/s on one core).
//!
//! `cargo bench -p connector --bench mapping`
//!
//! * `map_hash/<store>`: `map_product(&p.current_projection(), &ctx)` + `payload_hash(&body)` for
//!   1 000 generated products already deserialized into `commercetools::models::Product`.
//! * `page_pipeline/<store>`: what the sync engine does per page of 500 products: deserialize the
//!   `PagedQueryResponse<Product>` bytes, then map, hash and turn the body into the
//!   `serde_json::Value` the batch writer keeps (`to_value`).
//! * `page_deserialize/products`: the deserialization share of `page_pipeline` alone.
//!
//! `<store>` is `us` (USD, country US, price channel `web-prices`) or `eu` (EUR, DE, locale chain
//! `de-DE, de, en`), configured as in the integration tests.

use std::collections::{HashMap, HashSet};
use std::hint::black_box;

use commercetools::models::{PagedQueryResponse, Product};
use connector::config::Settings;
use connector::mapping::catalog::{CatalogContext, map_product};
use connector::mapping::payload_hash;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use emulators::seed::{CatalogGenerator, CatalogSpec};
use serde_json::{Value, json};
use time::OffsetDateTime;

const PRODUCTS: usize = 1_000;
const PAGE: usize = 500;

const CONFIG: &str = r#"
[commercetools]
project_key = "bench-shop"
client_id = "bench"
client_secret = "bench-secret"

"#;

/// Everything a `CatalogContext` borrows, resolved the way `CatalogSync` resolves a route.
struct Fixture {
    settings: Settings,
    product_types: HashMap<String, String>,
    channels: HashMap<String, String>,
    known_categories: HashSet<String>,
    locales: Vec<Vec<String>>,
    products: Vec<Product>,
    page: Vec<u8>,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("config.toml");
        std::fs::write(
            &path,
            format!(
                "{CONFIG}{}",
                emulators::seed::store_routes_toml("KEY_US", "KEY_EU")
            ),
        )
        .expect("write config");
        let settings = Settings::load(Some(&path), &|_| None).expect("bench config is valid");
        let spec = CatalogSpec {
            products: PRODUCTS,
            categories: 30,
            seed: 7,
        };
        let g = CatalogGenerator::new(&spec);
        let str_of = |v: &Value, k: &str| v[k].as_str().unwrap_or_default().to_owned();
        let product_types = g
            .product_types()
            .iter()
            .map(|t| (str_of(t, "id"), str_of(t, "name")))
            .collect();
        let channels = g
            .channels()
            .iter()
            .map(|c| (str_of(c, "key"), str_of(c, "id")))
            .collect();
        let known_categories = g.categories().iter().map(|c| str_of(c, "id")).collect();
        let raw: Vec<Value> = g.products().collect();
        let products: Vec<Product> = raw
            .iter()
            .map(|p| serde_json::from_value(p.clone()).expect("generated product deserializes"))
            .collect();
        let page = serde_json::to_vec(&json!({
            "limit": PAGE, "offset": 0, "count": PAGE, "results": &raw[..PAGE],
        }))
        .expect("page serializes");
        let locales = settings
            .stores
            .iter()
            .map(|s| s.locales.iter().map(|l| l.as_str().to_owned()).collect())
            .collect();
        Fixture {
            settings,
            product_types,
            channels,
            known_categories,
            locales,
            products,
            page,
        }
    }

    /// The context of store number `i`, built like `CatalogSync::context`.
    fn context(&self, i: usize, now: OffsetDateTime) -> CatalogContext<'_> {
        let ss = &self.settings.stores[i];
        let channel = |key: &Option<String>| {
            key.as_ref()
                .map(|k| self.channels[k].as_str())
                .filter(|id| !id.is_empty())
        };
        CatalogContext {
            store_key: &ss.key,
            locales: &self.locales[i],
            currency: ss.currency.as_str(),
            country: ss.country.as_ref().map(|c| c.as_str()),
            price_channel_id: channel(&ss.price_channel),
            supply_channel_id: channel(&ss.supply_channel),
            product_url: &ss.product_url,
            catalog: &self.settings.catalog,
            product_types: &self.product_types,
            known_categories: &self.known_categories,
            now,
        }
    }
}

/// Maps and hashes one product; returns whether it mapped (rejections are part of the work).
fn map_and_hash(p: &Product, ctx: &CatalogContext<'_>) -> Option<String> {
    match map_product(&p.current_projection(), ctx) {
        Ok(body) => Some(payload_hash(&body)),
        Err(rejection) => {
            black_box(rejection);
            None
        }
    }
}

fn benches(c: &mut Criterion) {
    let fx = Fixture::new();
    let now = OffsetDateTime::now_utc();

    let mut group = c.benchmark_group("map_hash");
    group.throughput(Throughput::Elements(fx.products.len() as u64));
    for (i, ss) in fx.settings.stores.iter().enumerate() {
        let ctx = fx.context(i, now);
        let mapped = fx
            .products
            .iter()
            .filter(|p| map_and_hash(p, &ctx).is_some())
            .count();
        assert!(mapped > fx.products.len() * 9 / 10, "most products map");
        group.bench_with_input(BenchmarkId::from_parameter(&ss.key), &ctx, |b, ctx| {
            b.iter(|| {
                for p in &fx.products {
                    black_box(map_and_hash(black_box(p), ctx));
                }
            })
        });
    }
    group.finish();

    // The deserialization share of `page_pipeline`, alone.
    let mut group = c.benchmark_group("page_deserialize");
    group.throughput(Throughput::Elements(PAGE as u64));
    group.bench_function("products", |b| {
        b.iter(|| {
            let page: PagedQueryResponse<Product> =
                serde_json::from_slice(black_box(&fx.page)).expect("page deserializes");
            black_box(page)
        })
    });
    group.finish();

    let mut group = c.benchmark_group("page_pipeline");
    group.throughput(Throughput::Elements(PAGE as u64));
    for (i, ss) in fx.settings.stores.iter().enumerate() {
        let ctx = fx.context(i, now);
        group.bench_with_input(BenchmarkId::from_parameter(&ss.key), &ctx, |b, ctx| {
            b.iter(|| {
                let page: PagedQueryResponse<Product> =
                    serde_json::from_slice(black_box(&fx.page)).expect("page deserializes");
                for p in &page.results {
                    if let Ok(body) = map_product(&p.current_projection(), ctx) {
                        let hash = payload_hash(&body);
                        let value = serde_json::to_value(&body).expect("body serializes");
                        black_box((hash, value));
                    }
                }
            })
        });
    }
    group.finish();
}

criterion_group!(mapping, benches);
criterion_main!(mapping);
