//! Contacts sync against both emulators: 500 generated customers (mixed-case emails, duplicates
//! across stores, shared and invalid phones, consent in DE/GB/US/FR, none at all) plus guest
//! orders and carts, routed to two brands. The expected contacts are derived from the
//! generator's documented rules by an oracle written here, independently of the mapping code.

mod support;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use connector::config::Settings;
use connector::store::testing::TestStore;
use connector::store::{Backend, RejectedFilter, StateStore};
use connector::sync::RunSummary;
use connector::sync::contacts::{ContactOptions, ContactSync};
use connector::sync::sink::Sink;
use emulators::customers::{self as shopgen, CustomerData, CustomerSpec, EmailConsent, SmsConsent};
use emulators::{CtEmulator, CtEmulatorConfig, Faults, OmnisendEmulator, OmnisendEmulatorConfig};
use serde_json::{Value, json};
use support::{CLIENT_ID, CLIENT_SECRET, EU_KEY, PROJECT, US_KEY, env, load_settings};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

const CUSTOMERS: usize = 500;
const GUEST_ORDERS: usize = 40;
const GUEST_CARTS: usize = 20;
const SEED: u64 = 11;
/// The state store names a brand by its API key variable.
const EU_BRAND: &str = "KEY_EU";

fn spec() -> CustomerSpec {
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
fn config(ct: &CtEmulator, omnisend: &OmnisendEmulator, rpm: u32) -> String {
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

struct Shop {
    ct: CtEmulator,
    omnisend: OmnisendEmulator,
    data: CustomerData,
    store: TestStore,
    settings: Settings,
    _dir: tempfile::TempDir,
}

impl Shop {
    async fn start() -> Shop {
        Self::start_on(Backend::Sqlite).await.expect("sqlite")
    }

    async fn start_on(backend: Backend) -> Option<Shop> {
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

    fn state(&self) -> &StateStore {
        self.store.store()
    }

    fn engine(&self) -> ContactSync {
        let ct = connector::app::commercetools_client(&self.settings).unwrap();
        let sinks: HashMap<String, Sink> =
            connector::app::sinks(&self.settings, &env, None).unwrap();
        ContactSync::new(ct, self.state().clone(), self.settings.clone(), sinks)
    }

    async fn sync(&self, full: bool) -> Vec<RunSummary> {
        self.engine()
            .run(&ContactOptions { full, store: None })
            .await
            .expect("contacts sync succeeds")
    }

    /// Contacts writes (POST /contacts, contacts batches) in the request log.
    fn contact_writes(&self) -> Vec<Value> {
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

fn brand_of_route(route: &str) -> &'static str {
    match route {
        "us" => US_KEY,
        _ => EU_KEY,
    }
}

fn routes_of_stores(stores: &[String]) -> Vec<&'static str> {
    if stores.is_empty() {
        return vec!["default"];
    }
    stores
        .iter()
        .map(|s| if s == "us" { "us" } else { "eu" })
        .collect()
}

fn ts(s: &str) -> OffsetDateTime {
    OffsetDateTime::parse(s, &Rfc3339).unwrap()
}

fn wire(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap()
}

/// One source record as the oracle sees it.
#[derive(Clone, Debug)]
struct Src {
    id: String,
    customer: Option<usize>,
    email: String,
    phone: Option<String>,
    created: OffsetDateTime,
    modified: OffsetDateTime,
    routes: Vec<&'static str>,
    group: Option<&'static str>,
    guest_profile: Option<(String, &'static str)>,
}

/// The expected contact of one brand, keyed by email.
#[derive(Clone, Debug, PartialEq)]
struct Expected {
    phone: Option<String>,
    email_status: Option<(String, String)>,
    email_consent_source: Option<String>,
    sms_status: Option<(String, String)>,
    tags: BTreeSet<String>,
    properties: BTreeMap<String, Value>,
    first_name: Option<String>,
    last_name: Option<String>,
    country: Option<String>,
    birthdate: Option<String>,
    gender: Option<String>,
}

fn customer_modified(n: usize) -> OffsetDateTime {
    ts("2026-01-01T00:00:00Z") + time::Duration::seconds(n as i64)
}

fn customer_created(n: usize) -> OffsetDateTime {
    ts("2025-06-01T00:00:00Z") + time::Duration::seconds(n as i64)
}

/// Every source record per brand, derived from the generator's rules.
fn sources(data: &CustomerData) -> HashMap<&'static str, Vec<Src>> {
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

fn brand_static(b: &str) -> &'static str {
    if b == US_KEY { US_KEY } else { EU_KEY }
}

/// The latest explicit statement of one channel among the members: (granted, at, dated, source,
/// double opt-in) with its effective time.
struct Said {
    granted: bool,
    at: OffsetDateTime,
    dated: bool,
    source: Option<String>,
    doi: bool,
}

fn email_said(n: usize) -> Option<Said> {
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

fn sms_said(n: usize) -> Option<Said> {
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
type Brands = HashMap<&'static str, BTreeMap<String, Expected>>;

/// The oracle: expected contacts per brand and the expected phone conflicts (loser id, owner id).
fn expected(data: &CustomerData) -> (Brands, BTreeSet<(String, String)>) {
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
            // SMS consent counts only from members whose own phone is the one sent.
            let sms_status = phone.as_ref().and_then(|p| {
                members
                    .iter()
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
fn actual(omnisend: &OmnisendEmulator, key: &str) -> BTreeMap<String, Expected> {
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

fn assert_brand_matches(
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

#[tokio::test]
async fn full_sync_leaves_exactly_the_expected_contacts_in_each_brand_with_every_conflict_listed() {
    let shop = Shop::start().await;
    let runs = shop.sync(false).await;
    assert_eq!(runs.len(), 2, "{runs:?}");
    let (want, conflicts) = expected(&shop.data);
    assert!(want[US_KEY].len() > 100 && want[EU_KEY].len() > 200);
    for brand in [US_KEY, EU_KEY] {
        assert_brand_matches(&shop.omnisend, brand, &want[brand]);
    }
    // Sanity of the oracle's coverage: every kind of outcome occurs.
    let all: Vec<&Expected> = want.values().flat_map(|b| b.values()).collect();
    for status in ["subscribed", "unsubscribed"] {
        assert!(
            all.iter()
                .any(|e| e.email_status.as_ref().is_some_and(|s| s.0 == status))
        );
        assert!(
            all.iter()
                .any(|e| e.sms_status.as_ref().is_some_and(|s| s.0 == status))
        );
    }
    assert!(all.iter().any(|e| e.email_status.is_none()));
    assert!(
        all.iter()
            .any(|e| e.properties.contains_key("ct_customer_ids"))
    );
    assert!(all.iter().any(|e| e.tags.contains("ct: guest")));
    // Every contacts body sent validates against the official contacts schema.
    if let Some(checked) =
        support::contract::assert_bodies_match_official_schemas(&shop.omnisend.requests())
    {
        assert!(
            checked >= 5,
            "the contract check saw the batches ({checked})"
        );
    }

    let rejected = shop
        .state()
        .list_rejected(&RejectedFilter {
            limit: 10_000,
            ..RejectedFilter::default()
        })
        .await
        .unwrap();
    // Every phone conflict is listed with both ids.
    assert!(!conflicts.is_empty());
    for (loser, owner) in &conflicts {
        assert!(
            rejected.iter().any(|r| r.entity == "contact"
                && &r.ct_id == loser
                && r.field.as_deref() == Some("phone")
                && r.reason.contains(owner.as_str())
                && r.reason.contains("conflict")),
            "no conflict listed for {loser} (owner {owner}): {rejected:#?}"
        );
    }
    // Invalid emails are rejected with the customer id; invalid phones are listed, email kept.
    for n in (0..CUSTOMERS).filter(|n| shopgen::is_invalid_email(*n)) {
        let id = shopgen::customer_id(SEED, n);
        assert!(
            rejected.iter().any(|r| r.entity == "customer"
                && r.ct_id == id
                && r.field.as_deref() == Some("email")),
            "customer {n} with an invalid email is not listed"
        );
    }
    for n in (0..CUSTOMERS).filter(|n| {
        shopgen::phone_kind(*n) == shopgen::PhoneKind::Invalid && !shopgen::is_invalid_email(*n)
    }) {
        let id = shopgen::customer_id(SEED, n);
        assert!(
            rejected.iter().any(|r| r.entity == "customer"
                && r.ct_id == id
                && r.field.as_deref() == Some("phone")
                && r.reason.contains("email still sent")),
            "customer {n}'s invalid phone is not listed"
        );
    }
    // No rejection reason carries an unmasked address or number.
    for r in &rejected {
        assert!(!r.reason.contains("@example.com"), "{}", r.reason);
        assert!(!r.reason.contains("+4930"), "{}", r.reason);
    }
}

#[tokio::test]
async fn rerunning_sends_nothing_and_changing_five_customers_sends_exactly_those_five() {
    let shop = Shop::start().await;
    shop.sync(false).await;
    shop.omnisend.clear_requests();
    let runs = shop.sync(false).await;
    assert!(runs.iter().all(|r| r.mode == connector::sync::Mode::Delta));
    assert!(
        shop.contact_writes().is_empty(),
        "{:?}",
        shop.contact_writes()
    );

    // Five customers, each in exactly one brand and none sharing its contact.
    let picked: Vec<usize> = (0..CUSTOMERS)
        .filter(|n| {
            n % 3 == 1
                && n % 6 != 5
                && shopgen::normalised_email(*n).is_some()
                && shopgen::duplicate_of(*n).is_none()
                && shopgen::duplicate_of(n + 1).is_none()
        })
        .take(5)
        .collect();
    for n in &picked {
        shop.ct
            .update_customer(&shopgen::customer_id(SEED, *n), |c| {
                c["firstName"] = json!("Changed")
            });
    }
    shop.omnisend.clear_requests();
    shop.sync(false).await;
    let writes = shop.contact_writes();
    let mut sent: Vec<String> = writes
        .iter()
        .map(|b| b["identifiers"][0]["id"].as_str().unwrap().to_owned())
        .collect();
    sent.sort();
    let mut want: Vec<String> = picked
        .iter()
        .map(|n| shopgen::normalised_email(*n).unwrap())
        .collect();
    want.sort();
    assert_eq!(sent, want);
    assert!(writes.iter().all(|b| b["firstName"] == "Changed"));
    support::contract::assert_bodies_match_official_schemas(&shop.omnisend.requests());
    // Small deltas go contact by contact.
    assert!(
        shop.omnisend
            .requests()
            .iter()
            .all(|r| r.path != "/batches")
    );
}

#[tokio::test]
async fn an_email_change_moves_the_contact_and_marks_the_old_one() {
    let shop = Shop::start().await;
    shop.sync(false).await;
    let n = 1; // store `us` only, valid email, not a duplicate
    let id = shopgen::customer_id(SEED, n);
    let old = shopgen::normalised_email(n).unwrap();
    shop.ct
        .update_customer(&id, |c| c["email"] = json!("  New.Address@Example.COM "));
    shop.sync(false).await;
    let contacts = shop.omnisend.contacts(US_KEY);
    let find = |email: &str| {
        contacts
            .iter()
            .find(|c| c["email"] == email)
            .unwrap_or_else(|| panic!("no contact {email}"))
            .clone()
    };
    let new = find("new.address@example.com");
    assert_eq!(new["customProperties"]["ct_customer_id"], id);
    let old_contact = find(&old);
    assert_eq!(
        old_contact["customProperties"]["ct_replaced_by"],
        "new.address@example.com"
    );
    assert!(
        old_contact["tags"]
            .as_array()
            .unwrap()
            .contains(&json!("ct: email changed"))
    );
    // Nothing more to do afterwards.
    shop.omnisend.clear_requests();
    shop.sync(false).await;
    assert!(shop.contact_writes().is_empty());
}

#[tokio::test]
async fn a_deleted_customer_is_unsubscribed_tagged_and_forgotten_locally() {
    let shop = Shop::start().await;
    shop.sync(false).await;
    let n = 14; // store `eu`, email granted with double opt-in, phone valid
    let id = shopgen::customer_id(SEED, n);
    let email = shopgen::normalised_email(n).unwrap();
    assert!(shop.state().member(EU_BRAND, &id).await.unwrap().is_some());
    shop.ct.delete_customer(&id);
    // A delta run learns of it from the CustomerDeleted message.
    let runs = shop.sync(false).await;
    assert_eq!(
        runs.iter().map(|r| r.stats.deleted).sum::<u64>(),
        1,
        "{runs:?}"
    );
    let c = shop
        .omnisend
        .contacts(EU_KEY)
        .into_iter()
        .find(|c| c["email"] == email.as_str())
        .unwrap();
    for i in c["identifiers"].as_array().unwrap() {
        let ch = if i["type"] == "email" { "email" } else { "sms" };
        assert_eq!(i["channels"][ch]["status"], "unsubscribed", "{c:#}");
    }
    assert!(c["tags"].as_array().unwrap().contains(&json!("ct: erased")));
    support::contract::assert_bodies_match_official_schemas(&shop.omnisend.requests());
    // Its personal data is gone from the local store.
    assert!(shop.state().member(EU_BRAND, &id).await.unwrap().is_none());
    let retired = shop
        .state()
        .retired(
            EU_BRAND,
            &[connector::mapping::contacts::contact_key(
                connector::config::PrimaryIdentifier::Email,
                &email,
            )],
        )
        .await
        .unwrap();
    assert!(retired.is_empty(), "{retired:?}");
}

#[tokio::test]
async fn a_full_run_treats_customers_that_disappeared_as_deleted() {
    let shop = Shop::start().await;
    shop.sync(false).await;
    let n = 2; // store `eu`
    let id = shopgen::customer_id(SEED, n);
    shop.ct.delete_customer(&id);
    let runs = shop.sync(true).await;
    assert_eq!(runs.iter().map(|r| r.stats.deleted).sum::<u64>(), 1);
    assert!(shop.state().member(EU_BRAND, &id).await.unwrap().is_none());
}

#[tokio::test]
async fn faults_on_both_apis_lose_and_duplicate_nothing() {
    let shop = Shop::start().await;
    let faults = Faults {
        error_rate: 0.2,
        seed: 3,
        ..Faults::default()
    };
    shop.omnisend.set_faults(faults.clone());
    shop.ct.set_faults(faults.clone());
    // Runs until one completes without failures (a run with failures keeps its cursor).
    let until_clean = || async {
        for _ in 0..6 {
            let runs = shop.sync(false).await;
            if runs.iter().all(|r| r.stats.failed == 0) {
                return;
            }
        }
        panic!("no clean run under 20% faults");
    };
    until_clean().await;
    // A delta under faults too: single `POST /contacts` requests fail and are retried.
    for n in [1, 2, 3, 6, 7] {
        shop.ct
            .update_customer(&shopgen::customer_id(SEED, n), |c| {
                c["lastName"] = json!("Delta")
            });
    }
    until_clean().await;
    let injected = shop
        .omnisend
        .requests()
        .iter()
        .filter(|r| r.status == 429 || r.status >= 500)
        .count();
    assert!(injected > 0, "no fault was injected");
    shop.omnisend.set_faults(Faults::default());
    shop.ct.set_faults(Faults::default());
    let (want, _) = expected(&shop.data);
    for brand in [US_KEY, EU_KEY] {
        let mut want = want[brand].clone();
        for n in [1, 2, 3, 6, 7] {
            if let Some(e) = shopgen::normalised_email(n).and_then(|e| want.get_mut(&e)) {
                e.last_name = Some("Delta".into());
            }
        }
        assert_brand_matches(&shop.omnisend, brand, &want);
        // One contact per email: nothing duplicated.
        let emails: Vec<Value> = shop
            .omnisend
            .contacts(brand)
            .iter()
            .map(|c| c["email"].clone())
            .collect();
        let unique: BTreeSet<String> = emails.iter().map(|e| e.to_string()).collect();
        assert_eq!(unique.len(), emails.len());
    }
    // Nothing left to send once the faults are gone.
    shop.omnisend.clear_requests();
    shop.sync(false).await;
    assert!(shop.contact_writes().is_empty());
}

#[tokio::test]
async fn a_dry_run_sends_nothing_and_changes_no_state() {
    let shop = Shop::start().await;
    let out: Arc<Mutex<Vec<u8>>> = Arc::new(Mutex::new(Vec::new()));
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let w: connector::app::DryRunOutput = Arc::new(Mutex::new(
        Box::new(Buf(out.clone())) as Box<dyn std::io::Write + Send>
    ));
    let ct = connector::app::commercetools_client(&shop.settings).unwrap();
    let sinks = connector::app::sinks(&shop.settings, &env, Some(w)).unwrap();
    ContactSync::new(ct, shop.state().clone(), shop.settings.clone(), sinks)
        .run(&ContactOptions::default())
        .await
        .unwrap();
    assert!(shop.omnisend.requests().is_empty());
    assert_eq!(shop.state().count_members(EU_BRAND).await.unwrap(), 0);
    assert!(shop.state().cursors().await.unwrap().is_empty());
    // The same run for real stores the members: the check above could fail.
    shop.sync(false).await;
    assert!(shop.state().count_members(EU_BRAND).await.unwrap() > 0);
    let text = String::from_utf8(out.lock().unwrap().clone()).unwrap();
    assert!(text.lines().count() >= 4, "{text}");
    assert!(text.contains("\"endpoint\":\"contacts\""));
}

#[tokio::test]
async fn the_contacts_sync_works_on_postgres_too() {
    let Some(shop) = Shop::start_on(Backend::Postgres).await else {
        return;
    };
    shop.sync(false).await;
    let (want, _) = expected(&shop.data);
    for brand in [US_KEY, EU_KEY] {
        assert_brand_matches(&shop.omnisend, brand, &want[brand]);
    }
}

/// A `MakeWriter` collecting every log line in memory.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[tokio::test]
async fn no_email_or_phone_appears_unmasked_in_any_log_line_at_any_level() {
    let logs = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(logs.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let shop = Shop::start().await;
    shop.sync(false).await;
    // A delta with an email change and a deletion logs too.
    shop.ct
        .update_customer(&shopgen::customer_id(SEED, 1), |c| {
            c["email"] = json!("Moved.Person@Example.com")
        });
    shop.ct.delete_customer(&shopgen::customer_id(SEED, 14));
    shop.sync(false).await;
    drop(_guard);
    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(
        text.lines().count() > 100,
        "the capture saw the run's logs ({} lines)",
        text.lines().count()
    );
    let mut secrets: Vec<String> = vec!["moved.person@example.com".into()];
    for n in 0..CUSTOMERS {
        secrets.push(shopgen::raw_email(n).trim().to_owned());
        secrets.extend(shopgen::normalised_email(n));
        secrets.extend(shopgen::expected_e164(n));
        secrets.extend(shopgen::raw_phone(n).filter(|p| p.len() > 6));
    }
    for i in 0..GUEST_ORDERS {
        secrets.push(shopgen::guest_order_email(i, CUSTOMERS).to_lowercase());
    }
    let lower = text.to_lowercase();
    for s in secrets {
        assert!(
            !lower.contains(&s.to_lowercase()),
            "{s:?} appears in the logs:\n{}",
            text.lines()
                .find(|l| l.to_lowercase().contains(&s.to_lowercase()))
                .unwrap_or_default()
        );
    }
}

#[tokio::test]
async fn replaying_a_rejected_customer_after_its_email_is_fixed_creates_the_contact() {
    let shop = Shop::start().await;
    shop.sync(false).await;
    let n = 17; // invalid email, store `eu`
    assert!(shopgen::is_invalid_email(n));
    let id = shopgen::customer_id(SEED, n);
    let open = shop
        .state()
        .list_rejected(&RejectedFilter {
            open_only: true,
            limit: 10_000,
            ..RejectedFilter::default()
        })
        .await
        .unwrap();
    let r = open
        .iter()
        .find(|r| r.ct_id == id && r.entity == "customer")
        .expect("the invalid email is rejected")
        .clone();
    // Still invalid: replay keeps it open with the reason.
    let outcomes = shop
        .engine()
        .replay(std::slice::from_ref(&r))
        .await
        .unwrap();
    assert!(!outcomes[0].resolved, "{outcomes:?}");
    assert!(outcomes[0].detail.contains("still rejected"));
    shop.ct
        .update_customer(&id, |c| c["email"] = json!("fixed17@example.com"));
    // The replay works on the rejection's brand.
    let brand = if r.route == "KEY_US" { US_KEY } else { EU_KEY };
    let outcomes = shop.engine().replay(&[r]).await.unwrap();
    assert!(outcomes[0].resolved, "{outcomes:?}");
    assert!(
        shop.omnisend
            .contacts(brand)
            .iter()
            .any(|c| c["email"] == "fixed17@example.com")
    );
}

#[tokio::test]
async fn reading_in_stores_gives_the_same_contacts_and_never_erases_a_customer_who_only_left() {
    let mut shop = Shop::start().await;
    let dir = tempfile::tempdir().unwrap();
    let toml = config(&shop.ct, &shop.omnisend, 6000)
        .replace("[contacts]\n", "[contacts]\nread_from = \"stores\"\n");
    shop.settings = load_settings(dir.path(), &toml, shop.store.url());
    shop.sync(false).await;
    let (want, _) = expected(&shop.data);
    for brand in [US_KEY, EU_KEY] {
        assert_brand_matches(&shop.omnisend, brand, &want[brand]);
    }
    // Customer 2 (store `eu` only) moves to store `us`: it leaves brand KEY_EU without being
    // erased there. Customer 8 (store `eu`) is deleted: erased from the CustomerDeleted message.
    let (moved, deleted) = (shopgen::customer_id(SEED, 2), shopgen::customer_id(SEED, 8));
    shop.ct.update_customer(&moved, |c| {
        c["stores"] = json!([{"typeId": "store", "key": "us"}]);
    });
    shop.ct.delete_customer(&deleted);
    let runs = shop.sync(true).await;
    assert_eq!(
        runs.iter().map(|r| r.stats.deleted).sum::<u64>(),
        1,
        "only the deleted customer is erased: {runs:?}"
    );
    let eu = shop.omnisend.contacts(EU_KEY);
    let status = |email: &str| {
        eu.iter()
            .find(|c| c["email"] == email)
            .map(|c| c["tags"].as_array().unwrap().contains(&json!("ct: erased")))
    };
    assert_eq!(status(&shopgen::normalised_email(8).unwrap()), Some(true));
    assert_eq!(status(&shopgen::normalised_email(2).unwrap()), Some(false));
    assert!(
        shop.state()
            .member(EU_BRAND, &moved)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        shop.state()
            .member("KEY_US", &moved)
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        shop.omnisend
            .contacts(US_KEY)
            .iter()
            .any(|c| c["email"] == shopgen::normalised_email(2).unwrap().as_str())
    );
}
