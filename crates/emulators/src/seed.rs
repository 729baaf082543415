//! Deterministic generator of a commercetools shop: project-level reference data (channels,
//! stores, product types), a category tree and any number of products.
//!
//! The same [`CatalogSpec`] always produces byte-identical JSON. Products are generated
//! independently of each other (each from its own RNG seeded by `(seed, n)`), so a catalog can be
//! streamed with [`CatalogGenerator::product`] / [`CatalogGenerator::products`] without holding it
//! in memory; 100 000 products take well under a second or two.
//!
//! # Reference data (independent of the RNG)
//!
//! * Channels (`key`, roles): `us-warehouse` (`InventorySupply`), `eu-warehouse`
//!   (`InventorySupply`), `web-prices` (`ProductDistribution`).
//! * Stores: `us` — languages `["en-US", "en"]`, countries `[US]`, distribution channel
//!   `web-prices`, supply channel `us-warehouse`; `eu` — languages `["de-DE", "de", "en"]`,
//!   countries `[DE]`, supply channel `eu-warehouse`, no distribution channel.
//! * Product types: `apparel` ("Apparel") and `gear` ("Gear").
//! * Project ([`project_json`]): currencies `USD`, `EUR`; languages `en`, `en-US`, `de`, `de-DE`;
//!   countries `US`, `DE`.
//!
//! # Categories (`n` = 0-based index, key `category-<n>`)
//!
//! * The first `max(1, categories / 5)` categories are roots; every other category has a parent
//!   chosen (by RNG) among the categories before it; `ancestors` lists root → parent.
//! * `name`/`slug`: `en` always (`slug.en = "category-<n>"`); `en-US` when `n % 3 == 0`; `de` when
//!   `n % 5 != 0` (`slug.de = "kategorie-<n>"`).
//! * `createdAt = 2025-12-01T00:00:00.000Z + n minutes`, `lastModifiedAt = createdAt + 1 h`,
//!   `version = 1`.
//!
//! # Products (`n` = 1-based index, key `product-<n>`)
//!
//! * `masterData.published = true`, `hasStagedChanges = false`, `staged` equals `current`.
//! * `createdAt = 2026-01-01T00:00:00.000Z + n s`;
//!   `lastModifiedAt = 2026-02-01T00:00:00.000Z + (n / 2) s + ((n / 2) % 1000) ms` — products
//!   `2k` and `2k + 1` share the same `lastModifiedAt` on purpose (tie-breaking by id matters).
//!   `version` is 1..=20.
//! * `productType`: `apparel` with probability 0.6, else `gear`.
//! * `name`: `en` always; `en-US` with p = 0.5; `de` with p = 0.7 (so ~30 % must fall back to `en`).
//! * `description`: present with p = 0.9 (`en` always, `de` with p = 0.5); ~30 % of them contain
//!   simple HTML (`<p>…<b>…</b>…</p>`).
//! * `slug`: `en = "product-<n>"` always, `de = "produkt-<n>"` with p = 0.7 — except the
//!   **problem products** with `n % 100 == 83`, whose slug is only `{"fr": "produit-<n>"}`
//!   (no locale of the `us` or `eu` chain: unmappable for both stores).
//! * `categories`: 1–3 distinct category references (none when there are no categories).
//! * Variants: `masterVariant` (id 1) plus 0–2 `variants` (ids 2, 3); `sku = "SKU-<n>-<v>"`,
//!   `key = "product-<n>-<v>"`; 0–3 images
//!   `{"url": "https://images.example.com/p<n>-<v>-<i>.jpg", "dimensions": {"w": 800, "h": 800}}`.
//! * Attributes: `brand` (text, always), `color` (lenum `{key, label: {en, de}}`, always), `tags`
//!   (set of text, p = 0.5).
//! * Prices of every variant, in this order (amounts in cents, `fractionDigits` 2):
//!   1. base USD `B` = `k * 100 - 1` (k in 5..=200), with `country: "US"` with p = 0.5;
//!      carries `discounted` (value `B * 80 / 100`) with p = 0.2;
//!   2. EUR `E = B * 92 / 100`, `country: "DE"` — **absent on problem products with
//!      `n % 100 == 41`** (unmappable for store `eu`); discounted (`E * 80 / 100`) with p = 0.2;
//!   3. with p = 0.3: USD `max(99, B - 100)` with `channel = web-prices` (no country) — the one to
//!      select for store `us`;
//!   4. with p = 0.1: an **expired** USD price (`1` cent, `country: "US"`, valid 2020-01-01 to
//!      2020-12-31) that must never be selected;
//!   5. with p = 0.1: a **future** USD price (`2` cents, `country: "US"`, valid from 2099-01-01 to
//!      2099-12-31) that must never be selected.
//! * `availability`: per supply channel (`us-warehouse`, `eu-warehouse`) out of stock with
//!   p = 0.15 (`isOnStock: false, availableQuantity: 0`), else quantity 1..=100; the top level has
//!   `isOnStock = any channel on stock` and `availableQuantity = sum`.
//!
//! Probabilities are per product (or per variant for images, attributes, prices and
//! availability) and drawn from the product's own RNG, so the exact outcome must be read from the
//! generated JSON.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Map, Value, json};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

use crate::util::format_ms;

/// What to generate.
#[derive(Clone, Debug)]
pub struct CatalogSpec {
    /// Number of products (keys `product-1` ..= `product-<products>`).
    pub products: usize,
    /// Number of categories (default 30).
    pub categories: usize,
    /// Seed: same seed, same JSON.
    pub seed: u64,
}

impl Default for CatalogSpec {
    fn default() -> Self {
        Self {
            products: 100,
            categories: 30,
            seed: 1,
        }
    }
}

/// A generated shop, as commercetools resources (JSON as the API returns them).
#[derive(Clone, Debug, Default)]
pub struct CatalogData {
    /// Stores `us` and `eu`.
    pub stores: Vec<Value>,
    /// Channels `us-warehouse`, `eu-warehouse`, `web-prices`.
    pub channels: Vec<Value>,
    /// Product types `apparel` and `gear`.
    pub product_types: Vec<Value>,
    /// The category tree.
    pub categories: Vec<Value>,
    /// Full `Product` resources (with `masterData`).
    pub products: Vec<Value>,
}

/// Generates the whole catalog in memory. See the [module documentation](self) for the rules.
pub fn generate_catalog(spec: &CatalogSpec) -> CatalogData {
    let g = CatalogGenerator::new(spec);
    CatalogData {
        stores: g.stores(),
        channels: g.channels(),
        product_types: g.product_types(),
        categories: g.categories().to_vec(),
        products: g.products().collect(),
    }
}

/// The ct-omnisend `[[stores]]` route of one generated store (`"us"` or `"eu"`), with its brand
/// key read from the environment variable `key_env`: the one place the demo, the tests and the
/// benchmarks take the routing of the generated shop from.
///
/// `us`: locales `en-US → en`, USD, country US, price channel `web-prices`, supply channel
/// `us-warehouse`, URLs `https://shop.example.com/{locale}/p/{slug}`. `eu`: locales
/// `de-DE → de → en`, EUR, country DE, supply channel `eu-warehouse`, URLs
/// `https://shop.example.eu/{locale}/produkt/{slug}`.
pub fn store_route_toml(store: &str, key_env: &str) -> String {
    let body = match store {
        "us" => {
            r#"key = "us"
locales = ["en-US", "en"]
currency = "USD"
country = "US"
price_channel = "web-prices"
supply_channel = "us-warehouse"
product_url = "https://shop.example.com/{locale}/p/{slug}"
cart_recovery_url = "https://shop.example.com/cart/recover?token={token}"
"#
        }
        "eu" => {
            r#"key = "eu"
locales = ["de-DE", "de", "en"]
currency = "EUR"
country = "DE"
supply_channel = "eu-warehouse"
product_url = "https://shop.example.eu/{locale}/produkt/{slug}"
"#
        }
        other => panic!("the generated shop has no store {other:?} (only \"us\" and \"eu\")"),
    };
    format!("\n[[stores]]\n{body}omnisend_api_key_env = \"{key_env}\"\n")
}

/// Both routes of the generated shop: [`store_route_toml`] for `us` and `eu`.
pub fn store_routes_toml(us_key_env: &str, eu_key_env: &str) -> String {
    store_route_toml("us", us_key_env) + &store_route_toml("eu", eu_key_env)
}

/// The project resource (`GET /{projectKey}`) matching the generated catalog.
pub fn project_json(project_key: &str) -> Value {
    json!({
        "key": project_key,
        "name": project_key,
        "currencies": ["USD", "EUR"],
        "languages": ["en", "en-US", "de", "de-DE"],
        "countries": ["US", "DE"],
        "createdAt": "2025-11-01T00:00:00.000Z",
        "version": 1,
    })
}

/// Key of a generated product: `product-<n>`.
pub fn product_key(n: usize) -> String {
    format!("product-{n}")
}

/// `true` for the deliberately unmappable products without any EUR price (`n % 100 == 41`).
pub fn is_missing_eur_price(n: usize) -> bool {
    n % 100 == 41
}

/// `true` for the deliberately unmappable products whose slug only has `fr` (`n % 100 == 83`).
pub fn is_french_slug_only(n: usize) -> bool {
    n % 100 == 83
}

/// Streaming generator: reference data and categories are computed once, products on demand.
#[derive(Clone, Debug)]
pub struct CatalogGenerator {
    seed: u64,
    products: usize,
    us_warehouse: String,
    eu_warehouse: String,
    web_prices: String,
    apparel: String,
    gear: String,
    categories: Vec<Value>,
    category_ids: Vec<String>,
}

const BASE_CREATED: OffsetDateTime = datetime!(2026-01-01 00:00:00 UTC);
const BASE_MODIFIED: OffsetDateTime = datetime!(2026-02-01 00:00:00 UTC);
const BASE_CATEGORY: OffsetDateTime = datetime!(2025-12-01 00:00:00 UTC);
const REF_CREATED: &str = "2025-11-15T00:00:00.000Z";

const ADJECTIVES: &[&str] = &[
    "Classic", "Urban", "Alpine", "Coastal", "Rugged", "Light", "Cozy", "Trail", "Studio",
    "Vintage",
];
const NOUNS: &[&str] = &[
    "Jacket", "Backpack", "Shirt", "Boots", "Tent", "Hoodie", "Cap", "Bottle", "Scarf", "Lantern",
];
const NOUNS_DE: &[&str] = &[
    "Jacke",
    "Rucksack",
    "Hemd",
    "Stiefel",
    "Zelt",
    "Kapuzenpulli",
    "Mütze",
    "Flasche",
    "Schal",
    "Laterne",
];
const BRANDS: &[&str] = &["Acme", "Northwind", "Globex", "Initech", "Umbrella"];
const COLORS: &[(&str, &str, &str)] = &[
    ("red", "Red", "Rot"),
    ("blue", "Blue", "Blau"),
    ("green", "Green", "Grün"),
    ("black", "Black", "Schwarz"),
    ("white", "White", "Weiß"),
];
const TAGS: &[&str] = &["new", "sale", "eco", "bestseller", "limited"];
const CATEGORY_WORDS: &[(&str, &str)] = &[
    ("Men", "Herren"),
    ("Women", "Damen"),
    ("Kids", "Kinder"),
    ("Outdoor", "Outdoor"),
    ("Shoes", "Schuhe"),
    ("Accessories", "Zubehör"),
    ("Sale", "Angebote"),
    ("Camping", "Camping"),
];

/// SplitMix64 finaliser, used to derive independent seeds and ids.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A deterministic UUID-v4-shaped id for `(seed, kind, n)`.
pub fn deterministic_id(seed: u64, kind: &str, n: u64) -> String {
    let k = kind.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    let hi = mix(seed ^ mix(k ^ mix(n)));
    let lo = mix(hi ^ 0x5DEE_CE66_D1CE_4E5B);
    let bytes = ((u128::from(hi)) << 64 | u128::from(lo)).to_be_bytes();
    uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .hyphenated()
        .to_string()
}

fn money(currency: &str, cents: i64) -> Value {
    json!({"type": "centPrecision", "currencyCode": currency, "centAmount": cents, "fractionDigits": 2})
}

fn reference(type_id: &str, id: &str) -> Value {
    json!({"typeId": type_id, "id": id})
}

impl CatalogGenerator {
    /// Prepares reference data and categories for `spec`.
    pub fn new(spec: &CatalogSpec) -> Self {
        let seed = spec.seed;
        let mut g = Self {
            seed,
            products: spec.products,
            us_warehouse: deterministic_id(seed, "channel", 0),
            eu_warehouse: deterministic_id(seed, "channel", 1),
            web_prices: deterministic_id(seed, "channel", 2),
            apparel: deterministic_id(seed, "product-type", 0),
            gear: deterministic_id(seed, "product-type", 1),
            categories: Vec::new(),
            category_ids: (0..spec.categories)
                .map(|i| deterministic_id(seed, "category", i as u64))
                .collect(),
        };
        g.categories = g.build_categories();
        g
    }

    /// Id of the `us-warehouse` supply channel.
    pub fn us_warehouse_id(&self) -> &str {
        &self.us_warehouse
    }

    /// Id of the `eu-warehouse` supply channel.
    pub fn eu_warehouse_id(&self) -> &str {
        &self.eu_warehouse
    }

    /// Id of the `web-prices` distribution channel.
    pub fn web_prices_id(&self) -> &str {
        &self.web_prices
    }

    /// The three channels.
    pub fn channels(&self) -> Vec<Value> {
        let ch = |id: &str, key: &str, role: &str, name: &str| {
            json!({
                "id": id, "version": 1, "key": key, "roles": [role], "name": {"en": name},
                "createdAt": REF_CREATED, "lastModifiedAt": REF_CREATED,
            })
        };
        vec![
            ch(
                &self.us_warehouse,
                "us-warehouse",
                "InventorySupply",
                "US warehouse",
            ),
            ch(
                &self.eu_warehouse,
                "eu-warehouse",
                "InventorySupply",
                "EU warehouse",
            ),
            ch(
                &self.web_prices,
                "web-prices",
                "ProductDistribution",
                "Web prices",
            ),
        ]
    }

    /// Stores `us` and `eu`.
    pub fn stores(&self) -> Vec<Value> {
        vec![
            json!({
                "id": deterministic_id(self.seed, "store", 0), "version": 1, "key": "us",
                "name": {"en": "US Store"}, "languages": ["en-US", "en"],
                "countries": [{"code": "US"}],
                "distributionChannels": [reference("channel", &self.web_prices)],
                "supplyChannels": [reference("channel", &self.us_warehouse)],
                "productSelections": [],
                "createdAt": REF_CREATED, "lastModifiedAt": REF_CREATED,
            }),
            json!({
                "id": deterministic_id(self.seed, "store", 1), "version": 1, "key": "eu",
                "name": {"en": "EU Store", "de": "EU-Shop"}, "languages": ["de-DE", "de", "en"],
                "countries": [{"code": "DE"}],
                "distributionChannels": [],
                "supplyChannels": [reference("channel", &self.eu_warehouse)],
                "productSelections": [],
                "createdAt": REF_CREATED, "lastModifiedAt": REF_CREATED,
            }),
        ]
    }

    /// Product types `apparel` and `gear`.
    pub fn product_types(&self) -> Vec<Value> {
        let pt = |id: &str, key: &str, name: &str| {
            json!({
                "id": id, "version": 1, "key": key, "name": name, "description": name,
                "attributes": [
                    {"name": "brand", "label": {"en": "Brand"}, "type": {"name": "text"}, "isRequired": false},
                    {"name": "color", "label": {"en": "Color"}, "type": {"name": "lenum", "values":
                        COLORS.iter().map(|(k, en, de)| json!({"key": k, "label": {"en": en, "de": de}})).collect::<Vec<_>>()},
                        "isRequired": false},
                    {"name": "tags", "label": {"en": "Tags"}, "type": {"name": "set", "elementType": {"name": "text"}}, "isRequired": false},
                ],
                "createdAt": REF_CREATED, "lastModifiedAt": REF_CREATED,
            })
        };
        vec![
            pt(&self.apparel, "apparel", "Apparel"),
            pt(&self.gear, "gear", "Gear"),
        ]
    }

    /// The category tree (parents always precede children).
    pub fn categories(&self) -> &[Value] {
        &self.categories
    }

    fn build_categories(&self) -> Vec<Value> {
        let count = self.category_ids.len();
        let roots = (count / 5).max(1);
        let mut rng = ChaCha8Rng::seed_from_u64(mix(self.seed ^ 0xCA7E_6051));
        let mut ancestors: Vec<Vec<String>> = Vec::with_capacity(count);
        let mut out = Vec::with_capacity(count);
        for i in 0..count {
            let (word, word_de) = CATEGORY_WORDS[i % CATEGORY_WORDS.len()];
            let mut name = Map::new();
            let mut slug = Map::new();
            name.insert("en".into(), json!(format!("{word} {i}")));
            slug.insert("en".into(), json!(format!("category-{i}")));
            if i % 3 == 0 {
                name.insert("en-US".into(), json!(format!("{word} {i} (US)")));
                slug.insert("en-US".into(), json!(format!("category-{i}-us")));
            }
            if i % 5 != 0 {
                name.insert("de".into(), json!(format!("{word_de} {i}")));
                slug.insert("de".into(), json!(format!("kategorie-{i}")));
            }
            let created = format_ms(BASE_CATEGORY + Duration::minutes(i as i64));
            let modified = format_ms(BASE_CATEGORY + Duration::minutes(i as i64 + 60));
            let mut cat = json!({
                "id": self.category_ids[i], "version": 1, "key": format!("category-{i}"),
                "name": name, "slug": slug, "orderHint": format!("0.{:04}", i + 1),
                "ancestors": [],
                "createdAt": created, "lastModifiedAt": modified, "assets": [],
            });
            let mut anc = Vec::new();
            if i >= roots {
                let parent = rng.random_range(0..i);
                anc = ancestors[parent].clone();
                anc.push(self.category_ids[parent].clone());
                cat["parent"] = reference("category", &self.category_ids[parent]);
                cat["ancestors"] =
                    Value::Array(anc.iter().map(|a| reference("category", a)).collect());
            }
            ancestors.push(anc);
            out.push(cat);
        }
        out
    }

    /// Iterates over all products `1..=products`, generating each on demand.
    pub fn products(&self) -> impl Iterator<Item = Value> + '_ {
        (1..=self.products).map(|n| self.product(n))
    }

    /// Id of product `n` (without generating it).
    pub fn product_id(&self, n: usize) -> String {
        deterministic_id(self.seed, "product", n as u64)
    }

    /// Generates product `n` (1-based) as a full `Product` with `masterData`.
    pub fn product(&self, n: usize) -> Value {
        let mut rng = ChaCha8Rng::seed_from_u64(mix(self.seed ^ mix(n as u64 ^ 0x9D0D)));
        let id = self.product_id(n);
        let noun = rng.random_range(0..NOUNS.len());
        let adjective = ADJECTIVES[rng.random_range(0..ADJECTIVES.len())];
        let product_type = if rng.random_bool(0.6) {
            &self.apparel
        } else {
            &self.gear
        };

        let mut name = Map::new();
        name.insert(
            "en".into(),
            json!(format!("{adjective} {} {n}", NOUNS[noun])),
        );
        if rng.random_bool(0.5) {
            name.insert(
                "en-US".into(),
                json!(format!("{adjective} {} {n} (US)", NOUNS[noun])),
            );
        }
        if rng.random_bool(0.7) {
            name.insert(
                "de".into(),
                json!(format!("{} {n} {adjective}", NOUNS_DE[noun])),
            );
        }

        let description = if rng.random_bool(0.9) {
            let mut d = Map::new();
            if rng.random_bool(0.3) {
                d.insert(
                    "en".into(),
                    json!(format!(
                        "<p>The <b>{adjective}</b> {} for every day.</p>",
                        NOUNS[noun]
                    )),
                );
            } else {
                d.insert(
                    "en".into(),
                    json!(format!("A {} for every day.", NOUNS[noun])),
                );
            }
            if rng.random_bool(0.5) {
                d.insert(
                    "de".into(),
                    json!(format!("Ein Produkt für jeden Tag: {}.", NOUNS_DE[noun])),
                );
            }
            Some(Value::Object(d))
        } else {
            None
        };

        let mut slug = Map::new();
        let slug_de = rng.random_bool(0.7);
        if is_french_slug_only(n) {
            slug.insert("fr".into(), json!(format!("produit-{n}")));
        } else {
            slug.insert("en".into(), json!(format!("product-{n}")));
            if slug_de {
                slug.insert("de".into(), json!(format!("produkt-{n}")));
            }
        }

        let mut categories = Vec::new();
        if !self.category_ids.is_empty() {
            let wanted = rng.random_range(1..=3usize).min(self.category_ids.len());
            while categories.len() < wanted {
                let c = &self.category_ids[rng.random_range(0..self.category_ids.len())];
                if !categories.contains(c) {
                    categories.push(c.clone());
                }
            }
        }

        let variant_count = 1 + rng.random_range(0..=2usize);
        let mut variants: Vec<Value> = (1..=variant_count)
            .map(|v| self.variant(&mut rng, n, v))
            .collect();
        let master = variants.remove(0);

        let mut data = Map::new();
        data.insert("name".into(), Value::Object(name));
        if let Some(d) = description {
            data.insert("description".into(), d);
        }
        data.insert(
            "categories".into(),
            Value::Array(
                categories
                    .iter()
                    .map(|c| reference("category", c))
                    .collect(),
            ),
        );
        data.insert("categoryOrderHints".into(), json!({}));
        data.insert("slug".into(), Value::Object(slug));
        data.insert("metaTitle".into(), json!({}));
        data.insert("metaDescription".into(), json!({}));
        data.insert("masterVariant".into(), master);
        data.insert("variants".into(), Value::Array(variants));
        data.insert("searchKeywords".into(), json!({}));
        data.insert("attributes".into(), json!([]));
        let data = Value::Object(data);

        let created = BASE_CREATED + Duration::seconds(n as i64);
        let half = (n / 2) as i64;
        let modified =
            BASE_MODIFIED + Duration::seconds(half) + Duration::milliseconds(half % 1000);
        let version = rng.random_range(1..=20u64);
        json!({
            "id": id,
            "version": version,
            "key": product_key(n),
            "productType": reference("product-type", product_type),
            "masterData": {
                "published": true,
                "hasStagedChanges": false,
                "current": data.clone(),
                "staged": data,
            },
            "priceMode": "Embedded",
            "createdAt": format_ms(created),
            "lastModifiedAt": format_ms(modified),
        })
    }

    fn variant(&self, rng: &mut ChaCha8Rng, n: usize, v: usize) -> Value {
        let images: Vec<Value> = (1..=rng.random_range(0..=3usize))
            .map(|i| {
                json!({"url": format!("https://images.example.com/p{n}-{v}-{i}.jpg"),
                       "dimensions": {"w": 800, "h": 800}})
            })
            .collect();
        let (ckey, cen, cde) = COLORS[rng.random_range(0..COLORS.len())];
        let mut attributes = vec![
            json!({"name": "brand", "value": BRANDS[rng.random_range(0..BRANDS.len())]}),
            json!({"name": "color", "value": {"key": ckey, "label": {"en": cen, "de": cde}}}),
        ];
        if rng.random_bool(0.5) {
            let a = TAGS[rng.random_range(0..TAGS.len())];
            let b = TAGS[rng.random_range(0..TAGS.len())];
            let tags: Vec<&str> = if a == b { vec![a] } else { vec![a, b] };
            attributes.push(json!({"name": "tags", "value": tags}));
        }

        let price_id =
            |i: u64| deterministic_id(self.seed, "price", (n as u64) << 8 | (v as u64) << 4 | i);
        let discount_id = deterministic_id(self.seed, "product-discount", (n % 7) as u64);
        let base = rng.random_range(5..=200i64) * 100 - 1;
        let mut prices = Vec::new();
        let mut usd = json!({"id": price_id(0), "value": money("USD", base)});
        if rng.random_bool(0.5) {
            usd["country"] = json!("US");
        }
        if rng.random_bool(0.2) {
            usd["discounted"] = json!({"value": money("USD", base * 80 / 100),
                "discount": reference("product-discount", &discount_id)});
        }
        prices.push(usd);
        let eur = base * 92 / 100;
        let eur_discounted = rng.random_bool(0.2);
        if !is_missing_eur_price(n) {
            let mut p = json!({"id": price_id(1), "value": money("EUR", eur), "country": "DE"});
            if eur_discounted {
                p["discounted"] = json!({"value": money("EUR", eur * 80 / 100),
                    "discount": reference("product-discount", &discount_id)});
            }
            prices.push(p);
        }
        if rng.random_bool(0.3) {
            prices.push(
                json!({"id": price_id(2), "value": money("USD", (base - 100).max(99)),
                "channel": reference("channel", &self.web_prices)}),
            );
        }
        if rng.random_bool(0.1) {
            prices.push(
                json!({"id": price_id(3), "value": money("USD", 1), "country": "US",
                "validFrom": "2020-01-01T00:00:00.000Z", "validUntil": "2020-12-31T23:59:59.000Z"}),
            );
        }
        if rng.random_bool(0.1) {
            prices.push(
                json!({"id": price_id(4), "value": money("USD", 2), "country": "US",
                "validFrom": "2099-01-01T00:00:00.000Z", "validUntil": "2099-12-31T23:59:59.000Z"}),
            );
        }

        let stock = |rng: &mut ChaCha8Rng| {
            if rng.random_bool(0.15) {
                (false, 0i64)
            } else {
                (true, rng.random_range(1..=100i64))
            }
        };
        let (us_ok, us_qty) = stock(rng);
        let (eu_ok, eu_qty) = stock(rng);
        let mut channels = Map::new();
        channels.insert(
            self.us_warehouse.clone(),
            json!({"isOnStock": us_ok, "availableQuantity": us_qty, "version": 1}),
        );
        channels.insert(
            self.eu_warehouse.clone(),
            json!({"isOnStock": eu_ok, "availableQuantity": eu_qty, "version": 1}),
        );

        json!({
            "id": v,
            "sku": format!("SKU-{n}-{v}"),
            "key": format!("product-{n}-{v}"),
            "prices": prices,
            "images": images,
            "attributes": attributes,
            "assets": [],
            "availability": {
                "isOnStock": us_ok || eu_ok,
                "availableQuantity": us_qty + eu_qty,
                "channels": channels,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_uuid_shaped_and_stable() {
        let a = deterministic_id(1, "product", 5);
        assert_eq!(a, deterministic_id(1, "product", 5));
        assert_ne!(a, deterministic_id(2, "product", 5));
        assert!(uuid::Uuid::parse_str(&a).is_ok());
    }
}
