//! The contacts test shop: both emulators with 500 generated customers, guests and carts routed
//! to two brands, and the oracle deriving the expected contacts from the generator's documented
//! rules (independently of the mapping code).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use connector::config::Settings;
use connector::store::testing::TestStore;
use connector::store::{Backend, StateStore};
use connector::sync::RunSummary;
use connector::sync::contacts::{ContactOptions, ContactSync};
use connector::sync::sink::Sink;
use emulators::customers::{self as shopgen, CustomerData, CustomerSpec, EmailConsent, SmsConsent};
use emulators::{CtEmulator, CtEmulatorConfig, OmnisendEmulator, OmnisendEmulatorConfig};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::{CLIENT_ID, CLIENT_SECRET, EU_KEY, PROJECT, US_KEY, env, load_settings};

pub const CUSTOMERS: usize = 500;
pub const GUEST_ORDERS: usize = 40;
pub const GUEST_CARTS: usize = 20;
pub const SEED: u64 = 11;
/// The state store names a brand by its API key variable.
pub const EU_BRAND: &str = "KEY_EU";

pub fn spec() -> CustomerSpec {
    CustomerSpec {
        customers: CUSTOMERS,
        seed: SEED,
        stores: vec!["us".into(), "eu".into()],
        guest_orders: GUEST_ORDERS,
        guest_carts: GUEST_CARTS,
    }
}

/// Brand `KEY_US` = route `us` (country US); brand `KEY_EU` = routes `eu` (DE) and `default`
/// (GB, the project-wide route of global customers): two stores' customers in one brand.
pub fn config(ct: &CtEmulator, omnisend: &OmnisendEmulator, rpm: u32) -> String {
    format!(
        r#"
[commercetools]
project_key = "{PROJECT}"
api_url = "{api}"
auth_url = "{auth}"
client_id = "{CLIENT_ID}"
client_secret = "{CLIENT_SECRET}"
timeout_secs = 10

[omnisend]
api_url = "{omnisend}"
requests_per_minute = {rpm}
batch_poll_interval_ms = 20
max_attempts = 8

[contacts]
gender_field = "gender"

[contacts.email_consent]
field = "emailMarketingConsent"
date_field = "emailMarketingConsentAt"
source_field = "emailMarketingConsentSource"
double_opt_in_field = "emailDoubleOptIn"

[contacts.sms_consent]
field = "smsMarketingConsent"
date_field = "smsMarketingConsentAt"

[contacts.custom_fields]
include = ["*"]
exclude = ["internalNote", "mobilePhone"]

[contacts.custom_fields.rename]
loyaltyTier = "loyalty_tier"

[[stores]]
key = "us"
locales = ["en-US", "en"]
currency = "USD"
country = "US"
product_url = "https://shop.example.com/p/{{slug}}"
omnisend_api_key_env = "KEY_US"

[[stores]]
key = "eu"
locales = ["de-DE", "de"]
currency = "EUR"
country = "DE"
product_url = "https://shop.example.eu/p/{{slug}}"
omnisend_api_key_env = "KEY_EU"

[[stores]]
key = "default"
locales = ["en-GB", "en"]
currency = "GBP"
country = "GB"
product_url = "https://shop.example.co.uk/p/{{slug}}"
omnisend_api_key_env = "KEY_EU"
"#,
        api = ct.api_url(),
        auth = ct.auth_url(),
        omnisend = omnisend.base_url(),
    )
}

pub struct Shop {
    pub ct: CtEmulator,
    pub omnisend: OmnisendEmulator,
    pub data: CustomerData,
    pub store: TestStore,
    pub settings: Settings,
    pub _dir: tempfile::TempDir,
}

impl Shop {
    pub async fn start() -> Shop {
        Self::start_on(Backend::Sqlite).await.expect("sqlite")
    }

    pub async fn start_on(backend: Backend) -> Option<Shop> {
        let store = TestStore::new(backend).await.expect("state store")?;
        let ct = CtEmulator::start(CtEmulatorConfig {
            project_key: PROJECT.into(),
            client_id: CLIENT_ID.into(),
            client_secret: CLIENT_SECRET.into(),
            ..CtEmulatorConfig::default()
        })
        .await
        .unwrap();
        // The catalog seed creates the stores `us` and `eu`.
        ct.seed(&emulators::seed::generate_catalog(
            &emulators::seed::CatalogSpec {
                products: 1,
                categories: 1,
                seed: 1,
            },
        ));
        let data = shopgen::generate_customers(&spec());
        ct.seed_customers(&data);
        let omnisend = OmnisendEmulator::start(OmnisendEmulatorConfig::default())
            .await
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let settings = load_settings(dir.path(), &config(&ct, &omnisend, 6000), store.url());
        Some(Shop {
            ct,
            omnisend,
            data,
            store,
            settings,
            _dir: dir,
        })
    }

    pub fn state(&self) -> &StateStore {
        self.store.store()
    }

    pub fn engine(&self) -> ContactSync {
        let ct = connector::app::commercetools_client(&self.settings).unwrap();
        let sinks: HashMap<String, Sink> =
            connector::app::sinks(&self.settings, &env, None).unwrap();
        ContactSync::new(ct, self.state().clone(), self.settings.clone(), sinks)
    }

    pub async fn sync(&self, full: bool) -> Vec<RunSummary> {
        self.engine()
            .run(&ContactOptions { full, store: None })
            .await
            .expect("contacts sync succeeds")
    }

    /// Contacts writes (POST /contacts, contacts batches) in the request log.
    pub fn contact_writes(&self) -> Vec<Value> {
        let mut out = Vec::new();
        for r in self.omnisend.requests() {
            match (r.method.as_str(), r.path.as_str(), r.body) {
                ("POST", "/contacts", Some(b)) => out.push(b),
                ("POST", "/batches", Some(b)) if b["endpoint"] == "contacts" => {
                    out.extend(b["items"].as_array().cloned().unwrap_or_default())
                }
                _ => {}
            }
        }
        out
    }
}

pub fn brand_of_route(route: &str) -> &'static str {
    match route {
        "us" => US_KEY,
        _ => EU_KEY,
    }
}

pub fn routes_of_stores(stores: &[String]) -> Vec<&'static str> {
    if stores.is_empty() {
        return vec!["default"];
    }
    stores
        .iter()
        .map(|s| if s == "us" { "us" } else { "eu" })
        .collect()
}

pub fn ts(s: &str) -> OffsetDateTime {
    OffsetDateTime::parse(s, &Rfc3339).unwrap()
}

pub fn wire(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap()
}

/// One source record as the oracle sees it.
#[derive(Clone, Debug)]
pub struct Src {
    pub id: String,
    pub customer: Option<usize>,
    pub email: String,
    pub phone: Option<String>,
    pub created: OffsetDateTime,
    pub modified: OffsetDateTime,
    pub routes: Vec<&'static str>,
    pub group: Option<&'static str>,
    pub guest_profile: Option<(String, &'static str)>,
}

/// The expected contact of one brand, keyed by email.
#[derive(Clone, Debug, PartialEq)]
pub struct Expected {
    pub phone: Option<String>,
    pub email_status: Option<(String, String)>,
    pub email_consent_source: Option<String>,
    pub sms_status: Option<(String, String)>,
    pub tags: BTreeSet<String>,
    pub properties: BTreeMap<String, Value>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub country: Option<String>,
    pub birthdate: Option<String>,
    pub gender: Option<String>,
}

pub fn customer_modified(n: usize) -> OffsetDateTime {
    ts("2026-01-01T00:00:00Z") + time::Duration::seconds(n as i64)
}

pub fn customer_created(n: usize) -> OffsetDateTime {
    ts("2025-06-01T00:00:00Z") + time::Duration::seconds(n as i64)
}

/// Every source record per brand, derived from the generator's rules.
pub fn sources(data: &CustomerData) -> HashMap<&'static str, Vec<Src>> {
    let mut out: HashMap<&'static str, Vec<Src>> = HashMap::new();
    let stores = spec().stores;
    for n in 0..CUSTOMERS {
        let Some(email) = shopgen::normalised_email(n) else {
            continue;
        };
        let routes = routes_of_stores(&shopgen::customer_stores(n, &stores));
        let mut by_brand: BTreeMap<&str, Vec<&'static str>> = BTreeMap::new();
        for r in routes {
            by_brand.entry(brand_of_route(r)).or_default().push(r);
        }
        for (brand, routes) in by_brand {
            out.entry(brand_static(brand)).or_default().push(Src {
                id: shopgen::customer_id(SEED, n),
                customer: Some(n),
                email: email.clone(),
                phone: shopgen::expected_e164(n),
                created: customer_created(n),
                modified: customer_modified(n),
                routes,
                group: shopgen::customer_group_key(n),
                guest_profile: None,
            });
        }
    }
    // Guests: orders without an account, carts without an account (the latest record wins).
    let mut guests: BTreeMap<(&'static str, String), Src> = BTreeMap::new();
    for (i, o) in data.orders.iter().enumerate() {
        let raw = shopgen::guest_order_email(i, CUSTOMERS);
        let email = raw.trim().to_lowercase();
        if email.contains("-at-") {
            continue; // the invalid address of a customer: rejected
        }
        let route = match shopgen::guest_order_store(i, &stores) {
            Some(s) if s == "us" => "us",
            Some(_) => "eu",
            None => "default",
        };
        let modified = ts(o["lastModifiedAt"].as_str().unwrap());
        let src = Src {
            id: "guest".into(),
            customer: None,
            email: email.clone(),
            phone: None,
            created: ts(o["createdAt"].as_str().unwrap()),
            modified,
            routes: vec![route],
            group: None,
            guest_profile: Some((format!("Guest{i}"), shopgen::country(i))),
        };
        let key = (brand_static(brand_of_route(route)), email);
        if guests.get(&key).is_none_or(|g| g.modified < modified) {
            guests.insert(key, src);
        }
    }
    for (j, c) in data.carts.iter().enumerate() {
        if shopgen::guest_cart_is_registered(j) {
            continue;
        }
        let email = format!("cart-guest{j}@example.org");
        let route = match c["store"]["key"].as_str() {
            Some("us") => "us",
            Some(_) => "eu",
            None => "default",
        };
        let modified = ts(c["lastModifiedAt"].as_str().unwrap());
        guests.insert(
            (brand_static(brand_of_route(route)), email.clone()),
            Src {
                id: "guest".into(),
                customer: None,
                email,
                phone: None,
                created: ts(c["createdAt"].as_str().unwrap()),
                modified,
                routes: vec![route],
                group: None,
                guest_profile: Some((String::new(), shopgen::country(j))),
            },
        );
    }
    for ((brand, _), g) in guests {
        out.entry(brand).or_default().push(g);
    }
    out
}

pub fn brand_static(b: &str) -> &'static str {
    if b == US_KEY { US_KEY } else { EU_KEY }
}

/// The latest explicit statement of one channel among the members: (granted, at, dated, source,
/// double opt-in) with its effective time.
pub struct Said {
    pub granted: bool,
    pub at: OffsetDateTime,
    pub dated: bool,
    pub source: Option<String>,
    pub doi: bool,
}

pub fn email_said(n: usize) -> Option<Said> {
    match shopgen::email_consent(n) {
        EmailConsent::Granted {
            at,
            source,
            double_opt_in,
        } => Some(Said {
            granted: true,
            dated: at.is_some(),
            at: at.map(|a| ts(&a)).unwrap_or(customer_modified(n)),
            source: source.map(str::to_owned),
            doi: double_opt_in,
        }),
        EmailConsent::Revoked { at } => Some(Said {
            granted: false,
            at: ts(&at),
            dated: true,
            source: None,
            doi: false,
        }),
        EmailConsent::Absent => None,
    }
}

pub fn sms_said(n: usize) -> Option<Said> {
    match shopgen::sms_consent(n) {
        SmsConsent::OptedIn { at } => Some(Said {
            granted: true,
            dated: at.is_some(),
            at: at.map(|a| ts(&a)).unwrap_or(customer_modified(n)),
            source: None,
            doi: false,
        }),
        SmsConsent::OptedOut { at } => Some(Said {
            granted: false,
            at: ts(&at),
            dated: true,
            source: None,
            doi: false,
        }),
        SmsConsent::Absent => None,
    }
}

/// Expected contacts per brand, keyed by email.
pub type Brands = HashMap<&'static str, BTreeMap<String, Expected>>;

/// The oracle: expected contacts per brand and the expected phone conflicts (loser id, owner id).
pub fn expected(data: &CustomerData) -> (Brands, BTreeSet<(String, String)>) {
    let mut out = HashMap::new();
    let mut conflicts = BTreeSet::new();
    for (brand, srcs) in sources(data) {
        // Phone owners: the earliest created record carrying the number.
        let mut owner: HashMap<&str, &Src> = HashMap::new();
        for s in &srcs {
            if let Some(p) = &s.phone {
                let e = owner.entry(p.as_str()).or_insert(s);
                if (s.created, &s.id) < (e.created, &e.id) {
                    *e = s;
                }
            }
        }
        let mut groups: BTreeMap<&str, Vec<&Src>> = BTreeMap::new();
        for s in &srcs {
            groups.entry(s.email.as_str()).or_default().push(s);
        }
        let mut contacts = BTreeMap::new();
        for (email, members) in groups {
            let winner = *members
                .iter()
                .max_by_key(|m| (m.customer.is_some(), m.modified, m.id.clone()))
                .unwrap();
            let phone_src = members
                .iter()
                .filter(|m| m.phone.is_some())
                .max_by_key(|m| (m.id == winner.id, m.modified));
            let phone = phone_src.and_then(|m| {
                let p = m.phone.clone().unwrap();
                let o = owner[p.as_str()];
                if o.email == email {
                    Some(p)
                } else {
                    conflicts.insert((m.id.clone(), o.id.clone()));
                    None
                }
            });
            let country = match (winner.customer, &winner.guest_profile) {
                (Some(n), _) => Some(shopgen::country(n).to_owned()),
                (None, Some((_, c))) => Some((*c).to_owned()),
                _ => None,
            };
            let latest = |f: fn(usize) -> Option<Said>| {
                members
                    .iter()
                    .filter_map(|m| m.customer.and_then(f))
                    .max_by_key(|s| (s.at, !s.granted))
            };
            let email_status = latest(email_said).and_then(|s| {
                let subscribed = s.granted
                    && s.dated
                    && (!matches!(country.as_deref(), Some("DE" | "AT" | "CH")) || s.doi);
                match (s.granted, subscribed) {
                    (false, _) => Some(("unsubscribed".to_owned(), wire(s.at), None)),
                    (true, true) => Some((
                        "subscribed".to_owned(),
                        wire(s.at),
                        Some(s.source.unwrap_or_else(|| "commercetools".into())),
                    )),
                    (true, false) => None,
                }
            });
            // SMS consent counts only from accounts holding the phone sent (any contact's).
            let sms_status = phone.as_ref().and_then(|p| {
                srcs.iter()
                    .filter(|m| m.phone.as_ref() == Some(p))
                    .filter_map(|m| m.customer.and_then(sms_said))
                    .max_by_key(|s| (s.at, !s.granted))
                    .and_then(|s| match (s.granted, s.dated) {
                        (false, _) => Some(("unsubscribed".to_owned(), wire(s.at))),
                        (true, true) => Some(("subscribed".to_owned(), wire(s.at))),
                        (true, false) => None,
                    })
            });
            let mut tags: BTreeSet<String> = BTreeSet::from(["source: commercetools".to_owned()]);
            for m in &members {
                tags.extend(m.routes.iter().map(|r| format!("store: {r}")));
                if let Some(g) = m.group {
                    tags.insert(format!("customer group: {g}"));
                }
            }
            if members.iter().all(|m| m.customer.is_none()) {
                tags.insert("ct: guest".into());
            }
            let mut properties = BTreeMap::new();
            if let Some(n) = winner.customer {
                properties.insert("ct_customer_id".into(), json!(winner.id));
                properties.insert("ct_customer_number".into(), json!(format!("C{n:05}")));
                properties.insert("loyalty_tier".into(), json!(shopgen::loyalty_tier(n)));
            }
            let mut ids: Vec<&str> = members
                .iter()
                .filter(|m| m.customer.is_some())
                .map(|m| m.id.as_str())
                .collect();
            ids.sort_unstable();
            if ids.len() > 1 {
                properties.insert("ct_customer_ids".into(), json!(ids.join(",")));
            }
            let last_name = match (winner.customer, &winner.guest_profile) {
                (Some(n), _) => (!shopgen::has_no_name(n)).then(|| format!("Last{n}")),
                (None, Some((name, _))) if !name.is_empty() => Some("Buyer".to_owned()),
                _ => None,
            };
            let (first_name, birthdate, gender) = match (winner.customer, &winner.guest_profile) {
                (Some(n), _) => (
                    (!shopgen::has_no_name(n)).then(|| format!("First{n}")),
                    shopgen::date_of_birth(n),
                    shopgen::gender(n).map(|g| if g == "male" { "m" } else { "f" }.to_owned()),
                ),
                (None, Some((name, _))) => ((!name.is_empty()).then(|| name.clone()), None, None),
                _ => (None, None, None),
            };
            contacts.insert(
                email.to_owned(),
                Expected {
                    phone,
                    email_consent_source: email_status.as_ref().and_then(|s| s.2.clone()),
                    email_status: email_status.map(|(s, at, _)| (s, at)),
                    sms_status,
                    tags,
                    properties,
                    first_name,
                    last_name,
                    country,
                    birthdate,
                    gender,
                },
            );
        }
        out.insert(brand, contacts);
    }
    (out, conflicts)
}

/// What the Omnisend emulator holds, in the oracle's shape.
pub fn actual(omnisend: &OmnisendEmulator, key: &str) -> BTreeMap<String, Expected> {
    let mut out = BTreeMap::new();
    for c in omnisend.contacts(key) {
        let ids = c["identifiers"].as_array().cloned().unwrap_or_default();
        let email = ids.iter().find(|i| i["type"] == "email").unwrap();
        let phone = ids.iter().find(|i| i["type"] == "phone");
        let status = |i: &Value, ch: &str| {
            i["channels"][ch]["status"].as_str().map(|s| {
                (
                    s.to_owned(),
                    i["channels"][ch]["statusChangedAt"]
                        .as_str()
                        .unwrap()
                        .to_owned(),
                )
            })
        };
        let text = |f: &str| c[f].as_str().map(str::to_owned);
        out.insert(
            email["id"].as_str().unwrap().to_owned(),
            Expected {
                phone: phone.map(|p| p["id"].as_str().unwrap().to_owned()),
                email_status: status(email, "email"),
                email_consent_source: email["consent"]["source"].as_str().map(str::to_owned),
                sms_status: phone.and_then(|p| status(p, "sms")),
                tags: c["tags"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|t| t.as_str().unwrap().to_owned())
                    .collect(),
                properties: c["customProperties"]
                    .as_object()
                    .unwrap()
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
                first_name: text("firstName"),
                last_name: text("lastName"),
                country: text("countryCode"),
                birthdate: text("birthdate"),
                gender: text("gender"),
            },
        );
    }
    out
}

pub fn assert_brand_matches(
    omnisend: &OmnisendEmulator,
    brand: &str,
    want: &BTreeMap<String, Expected>,
) {
    let got = actual(omnisend, brand);
    let missing: Vec<&String> = want.keys().filter(|k| !got.contains_key(*k)).collect();
    let extra: Vec<&String> = got.keys().filter(|k| !want.contains_key(*k)).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "brand {brand}: missing {missing:?}, unexpected {extra:?}"
    );
    for (email, w) in want {
        assert_eq!(&got[email], w, "brand {brand}, contact {email}");
    }
}
