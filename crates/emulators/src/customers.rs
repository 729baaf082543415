//! Deterministic generator of commercetools customers, guest orders and carts for the contact
//! sync: a custom `Type` carrying marketing consent, two customer groups, `customers` registered
//! customers with deliberately messy identities, and guest orders and carts.
//!
//! The same [`CustomerSpec`] always produces identical JSON. Every rule is a pure function of
//! the 0-based index `n` (customers), `i` (guest orders) or `j` (carts), public so that tests
//! can name the expected outcome without re-implementing the generator.
//!
//! # Reference data
//!
//! * One `Type` ([`marketing_type`]), key [`MARKETING_TYPE_KEY`], `resourceTypeIds:
//!   ["customer"]`, declaring the custom fields [`EMAIL_CONSENT`] (Boolean),
//!   [`EMAIL_CONSENT_AT`] (DateTime), [`EMAIL_CONSENT_SOURCE`] (String), [`EMAIL_DOUBLE_OPT_IN`]
//!   (Boolean), [`SMS_CONSENT`] (Enum `opted-in`/`opted-out`), [`SMS_CONSENT_AT`] (DateTime),
//!   [`MOBILE_PHONE`] (String), [`GENDER`] (Enum `male`/`female`/`other`), [`LOYALTY_TIER`]
//!   (String) and [`INTERNAL_NOTE`] (String). Every customer's `custom.type` references it by id.
//! * Customer groups `vip` ("VIP") and `wholesale` ("Wholesale") ([`customer_group_id`]).
//!
//! # Customers (`n` = 0-based index)
//!
//! * `id` = [`customer_id`], `key = "customer-<n>"`, `customerNumber = "C<n:05>"`,
//!   `version = 1`, `createdAt = 2025-06-01T00:00:00.000Z + n s`,
//!   `lastModifiedAt = 2026-01-01T00:00:00.000Z + n s` (so a [`duplicate_of`] customer is always
//!   more recent than the customer it duplicates).
//! * `email` = [`raw_email`], expected after normalisation: [`normalised_email`].
//! * Two addresses, shipping `s<n>` (default shipping) and billing `b<n>` (default billing), both
//!   in [`country`] with the same street, postal code and city; the phone of [`phone_kind`] goes
//!   to the shipping address' `mobile` when `n` is even, else to the billing address' `phone`
//!   ([`phone_on_shipping_mobile`]).
//! * `stores` = [`customer_stores`]; `locale` by country (`de-DE`, `en-GB`, `en-US`, `fr-FR`).
//! * `firstName = "First<n>"`, `lastName = "Last<n>"` unless [`has_no_name`]; `dateOfBirth`
//!   = [`date_of_birth`]; `customerGroup` = [`customer_group_key`]; `isEmailVerified` =
//!   [`is_email_verified`].
//! * Custom fields: [`email_consent`], [`sms_consent`], [`gender`], [`MOBILE_PHONE`] when
//!   [`has_custom_mobile`], [`LOYALTY_TIER`] = [`loyalty_tier`], [`INTERNAL_NOTE`] =
//!   `"do not export"` on all.
//!
//! # Guest orders (`i` = 0-based index) and carts (`j` = 0-based index)
//!
//! See [`guest_order_email`], [`guest_order_store`] and [`guest_cart_is_registered`]; the
//! generated JSON is documented on [`generate_customers`].
//!
//! Phones are written from `n % 10 000`, so they are unique (apart from [`PhoneKind::SharedWith`])
//! only among the first 10 000 customers.

use serde_json::{Map, Value, json};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

use crate::seed::deterministic_id;
use crate::util::format_ms;

/// Custom field (Boolean): the customer agreed to email marketing (`true`) or revoked it
/// (`false`).
pub const EMAIL_CONSENT: &str = "emailMarketingConsent";
/// Custom field (DateTime, RFC 3339 UTC): when [`EMAIL_CONSENT`] was given or revoked.
pub const EMAIL_CONSENT_AT: &str = "emailMarketingConsentAt";
/// Custom field (String): where the email consent was collected (`checkout`,
/// `newsletter-form`).
pub const EMAIL_CONSENT_SOURCE: &str = "emailMarketingConsentSource";
/// Custom field (Boolean): the email consent was confirmed by double opt-in.
pub const EMAIL_DOUBLE_OPT_IN: &str = "emailDoubleOptIn";
/// Custom field (Enum, value = key `opted-in` or `opted-out`): SMS marketing consent.
pub const SMS_CONSENT: &str = "smsMarketingConsent";
/// Custom field (DateTime, RFC 3339 UTC): when [`SMS_CONSENT`] was given or revoked.
pub const SMS_CONSENT_AT: &str = "smsMarketingConsentAt";
/// Custom field (String): a mobile phone number kept outside the addresses.
pub const MOBILE_PHONE: &str = "mobilePhone";
/// Custom field (Enum, value = key `male`, `female` or `other`).
pub const GENDER: &str = "gender";
/// Custom field (String): loyalty tier (`gold`, `silver`).
pub const LOYALTY_TIER: &str = "loyaltyTier";
/// Custom field (String): an internal note that must never be exported.
pub const INTERNAL_NOTE: &str = "internalNote";
/// Key of the customer custom `Type` declaring the fields above.
pub const MARKETING_TYPE_KEY: &str = "customer-marketing";
/// Keys of the two generated customer groups.
pub const CUSTOMER_GROUP_KEYS: [&str; 2] = ["vip", "wholesale"];

/// What to generate.
#[derive(Clone, Debug)]
pub struct CustomerSpec {
    /// Number of registered customers (`n` in `0..customers`).
    pub customers: usize,
    /// Seed of the ids: same seed, same JSON.
    pub seed: u64,
    /// Store keys customers, guest orders and carts are assigned to (the catalog seed creates
    /// `us` and `eu`). May be empty: then everything is global / store-less.
    pub stores: Vec<String>,
    /// Number of guest orders (`i` in `0..guest_orders`).
    pub guest_orders: usize,
    /// Number of carts (`j` in `0..guest_carts`); every fourth belongs to a registered customer.
    pub guest_carts: usize,
}

impl Default for CustomerSpec {
    /// 100 customers, seed 1, stores `us` and `eu`, 20 guest orders, 20 carts.
    fn default() -> Self {
        Self {
            customers: 100,
            seed: 1,
            stores: vec!["us".into(), "eu".into()],
            guest_orders: 20,
            guest_carts: 20,
        }
    }
}

/// Generated customer data, as commercetools resources (JSON as the API returns them).
#[derive(Clone, Debug, Default)]
pub struct CustomerData {
    /// Customer groups `vip` and `wholesale`.
    pub customer_groups: Vec<Value>,
    /// The `customer-marketing` custom type.
    pub types: Vec<Value>,
    /// Registered customers, in index order.
    pub customers: Vec<Value>,
    /// Guest orders, in index order.
    pub orders: Vec<Value>,
    /// Carts, in index order.
    pub carts: Vec<Value>,
}

const CUSTOMER_CREATED: OffsetDateTime = datetime!(2025-06-01 00:00:00 UTC);
const CUSTOMER_MODIFIED: OffsetDateTime = datetime!(2026-01-01 00:00:00 UTC);
const EMAIL_CONSENT_BASE: OffsetDateTime = datetime!(2026-01-01 00:00:00 UTC);
const SMS_CONSENT_BASE: OffsetDateTime = datetime!(2026-01-02 00:00:00 UTC);
const ORDER_BASE: OffsetDateTime = datetime!(2026-02-01 00:00:00 UTC);
const CART_BASE: OffsetDateTime = datetime!(2026-02-15 00:00:00 UTC);
const REF_CREATED: &str = "2025-05-01T00:00:00.000Z";
const COUNTRIES: [&str; 4] = ["DE", "GB", "US", "FR"];

/// Id of registered customer `n`.
pub fn customer_id(seed: u64, n: usize) -> String {
    deterministic_id(seed, "customer", n as u64)
}

/// Id of the customer group with key `key` (any key; the generator uses `vip` and
/// `wholesale`).
pub fn customer_group_id(seed: u64, key: &str) -> String {
    deterministic_id(seed, &format!("customer-group:{key}"), 0)
}

/// Id of the [`MARKETING_TYPE_KEY`] custom type.
pub fn marketing_type_id(seed: u64) -> String {
    deterministic_id(seed, "type", 0)
}

/// Id of guest order `i`.
pub fn order_id(seed: u64, i: usize) -> String {
    deterministic_id(seed, "order", i as u64)
}

/// Id of cart `j`.
pub fn cart_id(seed: u64, j: usize) -> String {
    deterministic_id(seed, "cart", j as u64)
}

/// Country of customer `n` (and of guest order / cart `n`): `["DE", "GB", "US", "FR"][n % 4]`.
pub fn country(n: usize) -> &'static str {
    COUNTRIES[n % 4]
}

/// Stores of customer `n`, checked in this order: `n % 6 == 5` → all `stores`; `n % 3 == 0` →
/// none (a global customer); `n % 3 == 1` → `[stores[0]]`; `n % 3 == 2` →
/// `[stores[1 % stores.len()]]`. Always empty when `stores` is empty.
pub fn customer_stores(n: usize, stores: &[String]) -> Vec<String> {
    if stores.is_empty() {
        return Vec::new();
    }
    if n % 6 == 5 {
        return stores.to_vec();
    }
    match n % 3 {
        0 => Vec::new(),
        1 => vec![stores[0].clone()],
        _ => vec![stores[1 % stores.len()].clone()],
    }
}

/// `true` when customer `n`'s email is not an email address at all (`n % 50 == 17`):
/// `customer<n>-at-example.com`. Takes precedence over every other email rule.
pub fn is_invalid_email(n: usize) -> bool {
    n % 50 == 17
}

/// `Some(n - 1)` when customer `n`'s email is a case variant of customer `n - 1`'s
/// (`n % 25 == 3`, and the email is not [invalid](is_invalid_email)): `CUSTOMER<n-1>@Example.com`.
/// Customer `n - 1` itself is never invalid nor a duplicate.
pub fn duplicate_of(n: usize) -> Option<usize> {
    (n % 25 == 3 && !is_invalid_email(n)).then(|| n - 1)
}

/// `true` when customer `n`'s own email is written in mixed case with surrounding spaces
/// (`n % 7 == 0`, and neither [invalid](is_invalid_email) nor a [duplicate](duplicate_of)):
/// `"  Customer<n>@Example.COM "`.
pub fn is_mixed_case(n: usize) -> bool {
    n.is_multiple_of(7) && !is_invalid_email(n) && duplicate_of(n).is_none()
}

/// The `email` of customer `n`, as stored. Rules in order of precedence: [`is_invalid_email`]
/// → `customer<n>-at-example.com`; [`duplicate_of`] → `CUSTOMER<n-1>@Example.com`;
/// [`is_mixed_case`] → `"  Customer<n>@Example.COM "`; else `customer<n>@example.com`.
pub fn raw_email(n: usize) -> String {
    if is_invalid_email(n) {
        format!("customer{n}-at-example.com")
    } else if let Some(m) = duplicate_of(n) {
        format!("CUSTOMER{m}@Example.com")
    } else if is_mixed_case(n) {
        format!("  Customer{n}@Example.COM ")
    } else {
        format!("customer{n}@example.com")
    }
}

/// The email of customer `n` after trimming and lower-casing; `None` when
/// [invalid](is_invalid_email). A duplicate normalises to the address of the customer it
/// duplicates.
pub fn normalised_email(n: usize) -> Option<String> {
    if is_invalid_email(n) {
        None
    } else {
        Some(format!(
            "customer{}@example.com",
            duplicate_of(n).unwrap_or(n)
        ))
    }
}

/// Which phone number customer `n` has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PhoneKind {
    /// No phone anywhere (`n % 10 == 9`).
    None,
    /// The unparseable number `12345` (`n % 20 == 7`).
    Invalid,
    /// The same number as customer `m = n - 5`, written internationally (`n % 30 == 5`);
    /// customer `m` always has a [`PhoneKind::Valid`] phone.
    SharedWith(usize),
    /// A valid number in national format for [`country`] (see [`raw_phone`]).
    Valid,
}

/// The phone kind of customer `n`, checked in this order: `None` (`n % 10 == 9`) > `Invalid`
/// (`n % 20 == 7`) > `SharedWith(n - 5)` (`n % 30 == 5`) > `Valid`. (The residues never
/// actually overlap; the order is documented for safety.) The email rules are independent: an
/// invalid email still gets a phone.
pub fn phone_kind(n: usize) -> PhoneKind {
    if n % 10 == 9 {
        PhoneKind::None
    } else if n % 20 == 7 {
        PhoneKind::Invalid
    } else if n % 30 == 5 {
        PhoneKind::SharedWith(n - 5)
    } else {
        PhoneKind::Valid
    }
}

/// The national-format phone of customer `n` in its [`country`], from `k = n % 10 000`:
/// DE `030 1234<k:04>`, GB `020 7946 <k:04>`, US `(415) 723-<k:04>`, FR `01 23 45 <a> <b>`
/// (`a`, `b` = the two-digit halves of `k`).
fn national_phone(n: usize) -> String {
    let k = n % 10_000;
    match country(n) {
        "DE" => format!("030 1234{k:04}"),
        "GB" => format!("020 7946 {k:04}"),
        "US" => format!("(415) 723-{k:04}"),
        _ => format!("01 23 45 {:02} {:02}", k / 100, k % 100),
    }
}

/// The phone of customer `n` as stored, `None` for [`PhoneKind::None`]: `12345` when invalid;
/// for `SharedWith(m)` customer `m`'s [`expected_e164`] written as `+<cc> <rest>`; else the
/// national format of [`country`]: DE `030 1234<k:04>`, GB `020 7946 <k:04>`,
/// US `(415) 723-<k:04>`, FR `01 23 45 <a> <b>`, with `k = n % 10 000` and `a`, `b` the
/// two-digit halves of `k`.
pub fn raw_phone(n: usize) -> Option<String> {
    match phone_kind(n) {
        PhoneKind::None => None,
        PhoneKind::Invalid => Some("12345".into()),
        PhoneKind::SharedWith(m) => {
            let e164 = valid_e164(m);
            let cc_len = match country(m) {
                "US" => 1,
                _ => 2,
            };
            Some(format!("{} {}", &e164[..=cc_len], &e164[cc_len + 1..]))
        }
        PhoneKind::Valid => Some(national_phone(n)),
    }
}

/// E.164 of the national phone of `n` (as if it were [`PhoneKind::Valid`]).
fn valid_e164(n: usize) -> String {
    let k = n % 10_000;
    match country(n) {
        "DE" => format!("+49301234{k:04}"),
        "GB" => format!("+44207946{k:04}"),
        "US" => format!("+1415723{k:04}"),
        _ => format!("+3312345{:02}{:02}", k / 100, k % 100),
    }
}

/// The E.164 form of customer `n`'s [`raw_phone`]; `None` when there is no phone or it is
/// invalid. `expected_e164(n) == expected_e164(m)` for `SharedWith(m)`.
pub fn expected_e164(n: usize) -> Option<String> {
    match phone_kind(n) {
        PhoneKind::None | PhoneKind::Invalid => None,
        PhoneKind::SharedWith(m) => Some(valid_e164(m)),
        PhoneKind::Valid => Some(valid_e164(n)),
    }
}

/// `true` when customer `n`'s phone is the `mobile` of the default shipping address (`n` even);
/// otherwise it is the `phone` of the default billing address.
pub fn phone_on_shipping_mobile(n: usize) -> bool {
    n.is_multiple_of(2)
}

/// `true` when customer `n` also has the custom field [`MOBILE_PHONE`] (`n % 13 == 0`).
pub fn has_custom_mobile(n: usize) -> bool {
    n.is_multiple_of(13)
}

/// The [`MOBILE_PHONE`] custom field of customer `n`: `+44 7400 123<n % 1000:03>` when
/// [`has_custom_mobile`], a valid GB mobile different from every address phone.
pub fn custom_mobile(n: usize) -> Option<String> {
    has_custom_mobile(n).then(|| format!("+44 7400 123{:03}", n % 1000))
}

/// E.164 of [`custom_mobile`]: `+447400123<n % 1000:03>`.
pub fn expected_custom_mobile_e164(n: usize) -> Option<String> {
    has_custom_mobile(n).then(|| format!("+447400123{:03}", n % 1000))
}

/// Email marketing consent of a customer, as written to the custom fields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EmailConsent {
    /// [`EMAIL_CONSENT`] = `true`, with [`EMAIL_CONSENT_AT`] when `at` is set,
    /// [`EMAIL_CONSENT_SOURCE`] when `source` is set and [`EMAIL_DOUBLE_OPT_IN`] = `true` when
    /// `double_opt_in`.
    Granted {
        /// When consent was given (RFC 3339 UTC, ms).
        at: Option<String>,
        /// Where consent was collected.
        source: Option<&'static str>,
        /// Confirmed by double opt-in.
        double_opt_in: bool,
    },
    /// [`EMAIL_CONSENT`] = `false` and [`EMAIL_CONSENT_AT`].
    Revoked {
        /// When consent was revoked (RFC 3339 UTC, ms).
        at: String,
    },
    /// No email consent field is set.
    Absent,
}

/// The email consent timestamp of customer `n`: `2026-01-01T00:00:00.000Z + n minutes`.
pub fn email_consent_at(n: usize) -> String {
    format_ms(EMAIL_CONSENT_BASE + Duration::minutes(n as i64))
}

/// Email consent of customer `n` by `n % 5`: 0 → granted at [`email_consent_at`] from
/// `checkout`; 1 → revoked at [`email_consent_at`]; 2 → absent; 3 → granted without date or
/// source; 4 → granted at [`email_consent_at`] from `newsletter-form` with double opt-in.
pub fn email_consent(n: usize) -> EmailConsent {
    match n % 5 {
        0 => EmailConsent::Granted {
            at: Some(email_consent_at(n)),
            source: Some("checkout"),
            double_opt_in: false,
        },
        1 => EmailConsent::Revoked {
            at: email_consent_at(n),
        },
        2 => EmailConsent::Absent,
        3 => EmailConsent::Granted {
            at: None,
            source: None,
            double_opt_in: false,
        },
        _ => EmailConsent::Granted {
            at: Some(email_consent_at(n)),
            source: Some("newsletter-form"),
            double_opt_in: true,
        },
    }
}

/// SMS marketing consent of a customer, as written to the custom fields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SmsConsent {
    /// [`SMS_CONSENT`] = `opted-in`, with [`SMS_CONSENT_AT`] when `at` is set.
    OptedIn {
        /// When consent was given (RFC 3339 UTC, ms).
        at: Option<String>,
    },
    /// [`SMS_CONSENT`] = `opted-out` and [`SMS_CONSENT_AT`].
    OptedOut {
        /// When consent was revoked (RFC 3339 UTC, ms).
        at: String,
    },
    /// No SMS consent field is set.
    Absent,
}

/// The SMS consent timestamp of customer `n`: `2026-01-02T00:00:00.000Z + n minutes`.
pub fn sms_consent_at(n: usize) -> String {
    format_ms(SMS_CONSENT_BASE + Duration::minutes(n as i64))
}

/// SMS consent of customer `n` by `n % 4`: 0 → opted in at [`sms_consent_at`]; 1 → opted out
/// at [`sms_consent_at`]; 2 → absent; 3 → opted in without date.
pub fn sms_consent(n: usize) -> SmsConsent {
    match n % 4 {
        0 => SmsConsent::OptedIn {
            at: Some(sms_consent_at(n)),
        },
        1 => SmsConsent::OptedOut {
            at: sms_consent_at(n),
        },
        2 => SmsConsent::Absent,
        _ => SmsConsent::OptedIn { at: None },
    }
}

/// The [`GENDER`] enum key of customer `n` by `n % 3`: 0 → `male`, 1 → `female`, 2 → absent.
pub fn gender(n: usize) -> Option<&'static str> {
    match n % 3 {
        0 => Some("male"),
        1 => Some("female"),
        _ => None,
    }
}

/// `dateOfBirth` of customer `n` when `n` is even:
/// `19<70 + n % 30>-<1 + n % 12>-<1 + n % 28>` (zero-padded).
pub fn date_of_birth(n: usize) -> Option<String> {
    n.is_multiple_of(2)
        .then(|| format!("19{:02}-{:02}-{:02}", 70 + n % 30, 1 + n % 12, 1 + n % 28))
}

/// `true` when customer `n` has neither `firstName` nor `lastName` (`n % 17 == 0`).
pub fn has_no_name(n: usize) -> bool {
    n.is_multiple_of(17)
}

/// The customer group key of customer `n`: `n % 4 == 1` → `vip`, `n % 4 == 3` → `wholesale`,
/// else none.
pub fn customer_group_key(n: usize) -> Option<&'static str> {
    match n % 4 {
        1 => Some("vip"),
        3 => Some("wholesale"),
        _ => None,
    }
}

/// `isEmailVerified` of customer `n`: `false` when `n % 3 == 1`, else `true`.
pub fn is_email_verified(n: usize) -> bool {
    n % 3 != 1
}

/// [`LOYALTY_TIER`] of customer `n`: `gold` when `n` is even, else `silver`.
pub fn loyalty_tier(n: usize) -> &'static str {
    if n.is_multiple_of(2) {
        "gold"
    } else {
        "silver"
    }
}

/// The raw `customerEmail` of guest order `i` (for `customers` registered customers):
/// `i % 3 == 0` (and `customers > 0`) → the upper-cased [`raw_email`] of customer
/// `(i * 7) % customers` (a guest order placed with a registered customer's address);
/// otherwise `Guest<i>@Example.org` when `i` is even, else `guest<i>@example.org`.
pub fn guest_order_email(i: usize, customers: usize) -> String {
    if i.is_multiple_of(3) && customers > 0 {
        raw_email((i * 7) % customers).to_uppercase()
    } else if i.is_multiple_of(2) {
        format!("Guest{i}@Example.org")
    } else {
        format!("guest{i}@example.org")
    }
}

/// The store key of guest order `i`: `stores[i % len]`, except none when `i % 5 == 4` or
/// `stores` is empty.
pub fn guest_order_store(i: usize, stores: &[String]) -> Option<String> {
    if stores.is_empty() || i % 5 == 4 {
        None
    } else {
        Some(stores[i % stores.len()].clone())
    }
}

/// `true` when cart `j` belongs to registered customer `j % customers` (`j % 4 == 0`, given at
/// least one customer); otherwise it is a guest cart with `cart-guest<j>@example.org`.
pub fn guest_cart_is_registered(j: usize) -> bool {
    j.is_multiple_of(4)
}

fn locale(country: &str) -> &'static str {
    match country {
        "DE" => "de-DE",
        "GB" => "en-GB",
        "US" => "en-US",
        _ => "fr-FR",
    }
}

fn city(country: &str) -> (&'static str, &'static str) {
    match country {
        "DE" => ("Berlin", "10115"),
        "GB" => ("London", "SW1A 1AA"),
        "US" => ("San Francisco", "94105"),
        _ => ("Paris", "75001"),
    }
}

fn key_reference(type_id: &str, key: &str) -> Value {
    json!({"typeId": type_id, "key": key})
}

fn reference(type_id: &str, id: &str) -> Value {
    json!({"typeId": type_id, "id": id})
}

/// The [`MARKETING_TYPE_KEY`] custom type (`resourceTypeIds: ["customer"]`).
pub fn marketing_type(seed: u64) -> Value {
    let def = |name: &str, label: &str, ty: Value| {
        json!({"name": name, "label": {"en": label}, "required": false, "type": ty,
               "inputHint": "SingleLine"})
    };
    let enumeration = |values: &[(&str, &str)]| {
        json!({"name": "Enum", "values": values.iter()
            .map(|(k, l)| json!({"key": k, "label": l})).collect::<Vec<_>>()})
    };
    json!({
        "id": marketing_type_id(seed),
        "version": 1,
        "key": MARKETING_TYPE_KEY,
        "name": {"en": "Customer marketing"},
        "description": {"en": "Marketing consent and profile fields of customers"},
        "resourceTypeIds": ["customer"],
        "fieldDefinitions": [
            def(EMAIL_CONSENT, "Email marketing consent", json!({"name": "Boolean"})),
            def(EMAIL_CONSENT_AT, "Email consent given/revoked at", json!({"name": "DateTime"})),
            def(EMAIL_CONSENT_SOURCE, "Email consent source", json!({"name": "String"})),
            def(EMAIL_DOUBLE_OPT_IN, "Email double opt-in", json!({"name": "Boolean"})),
            def(SMS_CONSENT, "SMS marketing consent",
                enumeration(&[("opted-in", "Opted in"), ("opted-out", "Opted out")])),
            def(SMS_CONSENT_AT, "SMS consent given/revoked at", json!({"name": "DateTime"})),
            def(MOBILE_PHONE, "Mobile phone", json!({"name": "String"})),
            def(GENDER, "Gender",
                enumeration(&[("male", "Male"), ("female", "Female"), ("other", "Other")])),
            def(LOYALTY_TIER, "Loyalty tier", json!({"name": "String"})),
            def(INTERNAL_NOTE, "Internal note", json!({"name": "String"})),
        ],
        "createdAt": REF_CREATED,
        "lastModifiedAt": REF_CREATED,
    })
}

/// Customer groups `vip` and `wholesale`.
pub fn customer_groups(seed: u64) -> Vec<Value> {
    [("vip", "VIP"), ("wholesale", "Wholesale")]
        .iter()
        .map(|(key, name)| {
            json!({
                "id": customer_group_id(seed, key), "version": 1, "key": key, "name": name,
                "createdAt": REF_CREATED, "lastModifiedAt": REF_CREATED,
            })
        })
        .collect()
}

/// The custom fields of customer `n`.
fn customer_fields(n: usize) -> Map<String, Value> {
    let mut f = Map::new();
    match email_consent(n) {
        EmailConsent::Granted {
            at,
            source,
            double_opt_in,
        } => {
            f.insert(EMAIL_CONSENT.into(), json!(true));
            if let Some(at) = at {
                f.insert(EMAIL_CONSENT_AT.into(), json!(at));
            }
            if let Some(source) = source {
                f.insert(EMAIL_CONSENT_SOURCE.into(), json!(source));
            }
            if double_opt_in {
                f.insert(EMAIL_DOUBLE_OPT_IN.into(), json!(true));
            }
        }
        EmailConsent::Revoked { at } => {
            f.insert(EMAIL_CONSENT.into(), json!(false));
            f.insert(EMAIL_CONSENT_AT.into(), json!(at));
        }
        EmailConsent::Absent => {}
    }
    match sms_consent(n) {
        SmsConsent::OptedIn { at } => {
            f.insert(SMS_CONSENT.into(), json!("opted-in"));
            if let Some(at) = at {
                f.insert(SMS_CONSENT_AT.into(), json!(at));
            }
        }
        SmsConsent::OptedOut { at } => {
            f.insert(SMS_CONSENT.into(), json!("opted-out"));
            f.insert(SMS_CONSENT_AT.into(), json!(at));
        }
        SmsConsent::Absent => {}
    }
    if let Some(m) = custom_mobile(n) {
        f.insert(MOBILE_PHONE.into(), json!(m));
    }
    if let Some(g) = gender(n) {
        f.insert(GENDER.into(), json!(g));
    }
    f.insert(LOYALTY_TIER.into(), json!(loyalty_tier(n)));
    f.insert(INTERNAL_NOTE.into(), json!("do not export"));
    f
}

/// Registered customer `n` (see the [module documentation](self)).
pub fn customer(spec: &CustomerSpec, n: usize) -> Value {
    let seed = spec.seed;
    let c = country(n);
    let (city, postal_code) = city(c);
    let named = !has_no_name(n);
    let address = |id: String| {
        let mut a = json!({
            "id": id,
            "streetName": "Main Street",
            "streetNumber": (n % 200 + 1).to_string(),
            "postalCode": postal_code,
            "city": city,
            "country": c,
        });
        if named {
            a["firstName"] = json!(format!("First{n}"));
            a["lastName"] = json!(format!("Last{n}"));
        }
        if c == "US" {
            a["state"] = json!("CA");
        }
        a
    };
    let mut shipping = address(format!("s{n}"));
    let mut billing = address(format!("b{n}"));
    if let Some(phone) = raw_phone(n) {
        if phone_on_shipping_mobile(n) {
            shipping["mobile"] = json!(phone);
        } else {
            billing["phone"] = json!(phone);
        }
    }
    let stores: Vec<Value> = customer_stores(n, &spec.stores)
        .iter()
        .map(|k| key_reference("store", k))
        .collect();
    let mut v = json!({
        "id": customer_id(seed, n),
        "version": 1,
        "key": format!("customer-{n}"),
        "customerNumber": format!("C{n:05}"),
        "email": raw_email(n),
        "addresses": [shipping, billing],
        "defaultShippingAddressId": format!("s{n}"),
        "defaultBillingAddressId": format!("b{n}"),
        "shippingAddressIds": [format!("s{n}")],
        "billingAddressIds": [format!("b{n}")],
        "isEmailVerified": is_email_verified(n),
        "customerGroupAssignments": [],
        "custom": {
            "type": reference("type", &marketing_type_id(seed)),
            "fields": customer_fields(n),
        },
        "locale": locale(c),
        "stores": stores,
        "authenticationMode": "Password",
        "createdAt": format_ms(CUSTOMER_CREATED + Duration::seconds(n as i64)),
        "lastModifiedAt": format_ms(CUSTOMER_MODIFIED + Duration::seconds(n as i64)),
    });
    if named {
        v["firstName"] = json!(format!("First{n}"));
        v["lastName"] = json!(format!("Last{n}"));
    }
    if let Some(dob) = date_of_birth(n) {
        v["dateOfBirth"] = json!(dob);
    }
    if let Some(group) = customer_group_key(n) {
        v["customerGroup"] = reference("customer-group", &customer_group_id(seed, group));
    }
    v
}

fn money(currency: &str, cents: i64) -> Value {
    json!({"type": "centPrecision", "currencyCode": currency, "centAmount": cents,
           "fractionDigits": 2})
}

fn currency(store: Option<&str>) -> &'static str {
    if store == Some("us") { "USD" } else { "EUR" }
}

/// Guest order `i`: no `customerId`, `customerEmail` = [`guest_order_email`], `store` =
/// [`guest_order_store`], `billingAddress {firstName "Guest<i>", lastName "Buyer", city
/// "Guesttown", country: country(i)}`, `orderNumber "G<i:05>"`, `orderState "Open"`, no line
/// items, `totalPrice` `(i % 50 + 1) * 1000` cents (USD in store `us`, else EUR),
/// `createdAt = lastModifiedAt = 2026-02-01T00:00:00.000Z + i s`.
pub fn guest_order(spec: &CustomerSpec, i: usize) -> Value {
    let store = guest_order_store(i, &spec.stores);
    let stamp = format_ms(ORDER_BASE + Duration::seconds(i as i64));
    let mut v = json!({
        "id": order_id(spec.seed, i),
        "version": 1,
        "orderNumber": format!("G{i:05}"),
        "customerEmail": guest_order_email(i, spec.customers),
        "billingAddress": {
            "firstName": format!("Guest{i}"),
            "lastName": "Buyer",
            "city": "Guesttown",
            "country": country(i),
        },
        "country": country(i),
        "orderState": "Open",
        "totalPrice": money(currency(store.as_deref()), (i as i64 % 50 + 1) * 1000),
        "lineItems": [],
        "customLineItems": [],
        "taxMode": "Platform",
        "inventoryMode": "None",
        "origin": "Customer",
        "shipping": [],
        "shippingMode": "Single",
        "syncInfo": [],
        "returnInfo": [],
        "refusedGifts": [],
        "discountCodes": [],
        "createdAt": stamp,
        "lastModifiedAt": stamp,
    });
    if let Some(key) = store {
        v["store"] = key_reference("store", &key);
    }
    v
}

/// Cart `j`: when [`guest_cart_is_registered`] (and there are customers), `customerId` of
/// customer `k = j % customers` and its [`raw_email`] as `customerEmail`; otherwise
/// `customerEmail "cart-guest<j>@example.org"` and an `anonymousId`. Always `store =
/// stores[j % len]` (none when `stores` is empty), `cartState "Active"`, `shippingAddress
/// {country: country(j)}`, no line items, `createdAt = lastModifiedAt =
/// 2026-02-15T00:00:00.000Z + j s`.
pub fn cart(spec: &CustomerSpec, j: usize) -> Value {
    let store = (!spec.stores.is_empty()).then(|| spec.stores[j % spec.stores.len()].clone());
    let stamp = format_ms(CART_BASE + Duration::seconds(j as i64));
    let mut v = json!({
        "id": cart_id(spec.seed, j),
        "version": 1,
        "cartState": "Active",
        "shippingAddress": {"country": country(j)},
        "country": country(j),
        "totalPrice": money(currency(store.as_deref()), 0),
        "lineItems": [],
        "customLineItems": [],
        "taxMode": "Platform",
        "inventoryMode": "None",
        "origin": "Customer",
        "shipping": [],
        "shippingMode": "Single",
        "refusedGifts": [],
        "discountCodes": [],
        "directDiscounts": [],
        "itemShippingAddresses": [],
        "createdAt": stamp,
        "lastModifiedAt": stamp,
    });
    if guest_cart_is_registered(j) && spec.customers > 0 {
        let k = j % spec.customers;
        v["customerId"] = json!(customer_id(spec.seed, k));
        v["customerEmail"] = json!(raw_email(k));
    } else {
        v["customerEmail"] = json!(format!("cart-guest{j}@example.org"));
        v["anonymousId"] = json!(deterministic_id(spec.seed, "anonymous", j as u64));
    }
    if let Some(key) = store {
        v["store"] = key_reference("store", &key);
    }
    v
}

/// Generates everything for `spec`. See the [module documentation](self) for the rules.
pub fn generate_customers(spec: &CustomerSpec) -> CustomerData {
    CustomerData {
        customer_groups: customer_groups(spec.seed),
        types: vec![marketing_type(spec.seed)],
        customers: (0..spec.customers).map(|n| customer(spec, n)).collect(),
        orders: (0..spec.guest_orders)
            .map(|i| guest_order(spec, i))
            .collect(),
        carts: (0..spec.guest_carts).map(|j| cart(spec, j)).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{HashMap, HashSet};

    fn spec(customers: usize) -> CustomerSpec {
        CustomerSpec {
            customers,
            seed: 9,
            stores: vec!["us".into(), "eu".into()],
            guest_orders: 30,
            guest_carts: 12,
        }
    }

    #[test]
    fn generation_is_deterministic_for_a_seed() {
        let a = generate_customers(&spec(200));
        let b = generate_customers(&spec(200));
        assert_eq!(a.customers, b.customers);
        assert_eq!(a.orders, b.orders);
        assert_eq!(a.carts, b.carts);
        assert_eq!(a.types, b.types);
        assert_eq!(a.customer_groups, b.customer_groups);
        let c = generate_customers(&CustomerSpec {
            seed: 10,
            ..spec(200)
        });
        assert_ne!(a.customers[0]["id"], c.customers[0]["id"]);
    }

    #[test]
    fn five_hundred_customers_contain_every_kind_of_mess() {
        let data = generate_customers(&spec(500));
        assert_eq!(data.customers.len(), 500);
        let emails: Vec<&str> = data
            .customers
            .iter()
            .map(|c| c["email"].as_str().unwrap())
            .collect();
        // duplicates: two customers share a normalised address
        let mut by_normalised: HashMap<String, Vec<usize>> = HashMap::new();
        for (n, e) in emails.iter().enumerate() {
            if !e.contains('@') {
                assert!(is_invalid_email(n));
                assert_eq!(normalised_email(n), None);
                continue;
            }
            let norm = e.trim().to_lowercase();
            assert_eq!(normalised_email(n).as_deref(), Some(norm.as_str()), "{n}");
            by_normalised.entry(norm).or_default().push(n);
        }
        let dup_groups = by_normalised.values().filter(|v| v.len() > 1).count();
        assert_eq!(dup_groups, 20);
        assert!((0..500).filter(|n| is_invalid_email(*n)).count() == 10);
        assert!(emails.iter().any(|e| e.starts_with("  ")));

        // phones: shared, invalid, none and valid all occur; shared ones share the E.164
        let kinds: Vec<PhoneKind> = (0..500).map(phone_kind).collect();
        assert!(kinds.contains(&PhoneKind::None));
        assert!(kinds.contains(&PhoneKind::Invalid));
        assert!(kinds.contains(&PhoneKind::Valid));
        let shared: Vec<usize> = (0..500)
            .filter(|n| matches!(phone_kind(*n), PhoneKind::SharedWith(_)))
            .collect();
        assert!(!shared.is_empty());
        for n in shared {
            let PhoneKind::SharedWith(m) = phone_kind(n) else {
                unreachable!()
            };
            assert_eq!(phone_kind(m), PhoneKind::Valid);
            assert_eq!(expected_e164(n), expected_e164(m));
            assert!(raw_phone(n).unwrap().starts_with('+'));
        }
        let valid: HashSet<String> = (0..500)
            .filter(|n| phone_kind(*n) == PhoneKind::Valid)
            .filter_map(expected_e164)
            .collect();
        assert_eq!(
            valid.len(),
            (0..500)
                .filter(|n| phone_kind(*n) == PhoneKind::Valid)
                .count()
        );

        let countries: HashSet<&str> = data
            .customers
            .iter()
            .map(|c| c["addresses"][0]["country"].as_str().unwrap())
            .collect();
        assert_eq!(countries.len(), 4);

        let fields = |c: &Value| c["custom"]["fields"].clone();
        let with = |name: &str, value: Value| {
            data.customers
                .iter()
                .filter(|c| fields(c).get(name) == Some(&value))
                .count()
        };
        assert_eq!(with(EMAIL_CONSENT, json!(true)), 300);
        assert_eq!(with(EMAIL_CONSENT, json!(false)), 100);
        assert_eq!(with(EMAIL_DOUBLE_OPT_IN, json!(true)), 100);
        assert_eq!(with(SMS_CONSENT, json!("opted-in")), 250);
        assert_eq!(with(SMS_CONSENT, json!("opted-out")), 125);
        assert_eq!(with(INTERNAL_NOTE, json!("do not export")), 500);
        let no_email_consent = data
            .customers
            .iter()
            .filter(|c| fields(c).get(EMAIL_CONSENT).is_none())
            .count();
        assert_eq!(no_email_consent, 100);
    }

    #[test]
    fn phones_are_placed_by_parity_in_national_format() {
        let s = spec(70);
        let c0 = customer(&s, 0);
        assert_eq!(c0["addresses"][0]["id"], "s0");
        assert_eq!(c0["addresses"][0]["mobile"], "030 12340000");
        assert_eq!(expected_e164(0).as_deref(), Some("+493012340000"));
        let c1 = customer(&s, 1);
        assert_eq!(c1["addresses"][1]["phone"], "020 7946 0001");
        assert_eq!(expected_e164(1).as_deref(), Some("+442079460001"));
        assert_eq!(customer(&s, 2)["addresses"][0]["mobile"], "(415) 723-0002");
        assert_eq!(expected_e164(2).as_deref(), Some("+14157230002"));
        assert_eq!(customer(&s, 3)["addresses"][1]["phone"], "01 23 45 00 03");
        assert_eq!(expected_e164(3).as_deref(), Some("+33123450003"));
        // 35 shares 30's (US) number, 65 shares 60's (DE) number
        assert_eq!(phone_kind(35), PhoneKind::SharedWith(30));
        assert_eq!(customer(&s, 35)["addresses"][1]["phone"], "+1 4157230030");
        assert_eq!(customer(&s, 65)["addresses"][1]["phone"], "+49 3012340060");
        assert_eq!(customer(&s, 7)["addresses"][1]["phone"], "12345");
        let c9 = customer(&s, 9);
        assert!(c9["addresses"][0].get("mobile").is_none());
        assert!(c9["addresses"][1].get("phone").is_none());
        assert_eq!(
            customer(&s, 26)["custom"]["fields"][MOBILE_PHONE],
            "+44 7400 123026"
        );
        assert_eq!(
            expected_custom_mobile_e164(26).as_deref(),
            Some("+447400123026")
        );
    }

    #[test]
    fn email_rules_follow_their_precedence() {
        assert_eq!(raw_email(1), "customer1@example.com");
        assert_eq!(raw_email(14), "  Customer14@Example.COM ");
        assert_eq!(raw_email(3), "CUSTOMER2@Example.com");
        assert_eq!(duplicate_of(3), Some(2));
        assert_eq!(raw_email(28), "CUSTOMER27@Example.com"); // duplicate beats mixed case
        assert_eq!(raw_email(17), "customer17-at-example.com");
        assert_eq!(raw_email(217), "customer217-at-example.com"); // invalid beats mixed case
        assert_eq!(
            normalised_email(14).as_deref(),
            Some("customer14@example.com")
        );
        assert_eq!(
            normalised_email(3).as_deref(),
            Some("customer2@example.com")
        );
    }

    #[test]
    fn customers_carry_stores_groups_and_timestamps() {
        let s = spec(12);
        let stores = |n: usize| customer(&s, n)["stores"].clone();
        assert_eq!(stores(0), json!([]));
        assert_eq!(stores(1), json!([{"typeId": "store", "key": "us"}]));
        assert_eq!(stores(2), json!([{"typeId": "store", "key": "eu"}]));
        assert_eq!(
            stores(5),
            json!([{"typeId": "store", "key": "us"}, {"typeId": "store", "key": "eu"}])
        );
        let c1 = customer(&s, 1);
        assert_eq!(
            c1["customerGroup"]["id"],
            customer_group_id(9, "vip").as_str()
        );
        assert!(customer(&s, 0).get("customerGroup").is_none());
        assert!(customer(&s, 0).get("firstName").is_none());
        assert_eq!(c1["firstName"], "First1");
        assert_eq!(c1["lastModifiedAt"], "2026-01-01T00:00:01.000Z");
        assert_eq!(c1["createdAt"], "2025-06-01T00:00:01.000Z");
        assert_eq!(customer(&s, 2)["dateOfBirth"], "1972-03-03");
        assert_eq!(
            c1["custom"]["type"]["id"],
            generate_customers(&s).types[0]["id"]
        );
    }

    #[test]
    fn guest_orders_and_carts_follow_their_rules() {
        let s = spec(10);
        let data = generate_customers(&s);
        let o0 = &data.orders[0];
        assert!(o0.get("customerId").is_none());
        assert_eq!(o0["customerEmail"], "  CUSTOMER0@EXAMPLE.COM ");
        assert_eq!(data.orders[1]["customerEmail"], "guest1@example.org");
        assert_eq!(data.orders[2]["customerEmail"], "Guest2@Example.org");
        assert_eq!(data.orders[3]["customerEmail"], raw_email(1).to_uppercase());
        assert_eq!(o0["store"]["key"], "us");
        assert!(data.orders[4].get("store").is_none());
        assert_eq!(data.orders[7]["orderNumber"], "G00007");
        assert_eq!(data.orders[7]["lastModifiedAt"], "2026-02-01T00:00:07.000Z");

        let c0 = &data.carts[0];
        assert_eq!(c0["customerId"], customer_id(9, 0).as_str());
        assert_eq!(c0["customerEmail"], raw_email(0));
        let c1 = &data.carts[1];
        assert!(c1.get("customerId").is_none());
        assert_eq!(c1["customerEmail"], "cart-guest1@example.org");
        assert_eq!(c1["store"]["key"], "eu");
        assert_eq!(c1["shippingAddress"]["country"], "GB");
        assert_eq!(c1["cartState"], "Active");
    }
}
