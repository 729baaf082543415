//! Contact mapping + identity resolution throughput (BENCHMARKS.md, "Contacts mapping": target
//! ≥ 50 000 customers/s on one core).
//!
//! `cargo bench -p connector --bench contacts`
//!
//! 1 000 generated customers, already deserialized into `commercetools::models::Customer`: mixed
//! email case and whitespace, a shipping and a billing address in DE, GB, US, FR, AT or CH, the
//! mobile written nationally, internationally, with `00`, as bare E.164 or (2 %) as garbage, and
//! consent custom fields (email: value, date, double opt-in, source; SMS: value, date) plus
//! ordinary custom fields sent as properties. Settings as in `tests/contacts_properties.rs`.
//!
//! * `contacts/single`: per customer `customer_facts` + `merge` of its one member +
//!   `payload_hash(&body)`: the work of a contact with no duplicate.
//! * `contacts/group_of_3`: the same 1 000 customers as 333 contacts of three accounts sharing one
//!   email (case variants), each group mapped (3 × `customer_facts`), merged and hashed.
//!   Throughput counts customers.
//! * `contacts/facts_only`: `customer_facts` alone.
//! * `contacts/phone_parse`: `PhoneE164::parse` of each customer's raw mobile with its address
//!   country then the store country, as `customer_facts` calls it: the phone share of the above.
//! * `contacts/*_regex_cache_1000`: the same after raising the capacity of `phonenumber`'s global
//!   regex cache from 100 to 1 000 (see BENCHMARKS.md: the fix these numbers argue for). Run
//!   last, since the cache is process-global. `phone_reparse_e164_regex_cache_1000` parses the
//!   E.164 outputs again: the cost of `parse_in`'s read-back check per national number.

use std::hint::black_box;

use commercetools::models::Customer;
use connector::config::{
    ContactsSettings, CountryCode, PrimaryIdentifier, RawChannelConsent, RawContacts,
    RawCustomFields,
};
use connector::identity::PhoneE164;
use connector::mapping::contacts::{ContactContext, MemberFacts, Ownership, customer_facts, merge};
use connector::mapping::payload_hash;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde_json::{Value, json};

const CUSTOMERS: usize = 1_000;
const ROUTES: &[&str] = &["web"];
/// Regex cache size of the `*_regex_cache_1000` variants.
const REGEX_CACHE: usize = 1_000;

fn settings() -> ContactsSettings {
    ContactsSettings::from_raw(RawContacts {
        phone_sources: Some(
            [
                "shipping.mobile",
                "shipping.phone",
                "billing.mobile",
                "billing.phone",
            ]
            .map(str::to_owned)
            .to_vec(),
        ),
        gender_field: Some("gender".into()),
        email_consent: Some(RawChannelConsent {
            field: Some("emailOptIn".into()),
            date_field: Some("emailOptInDate".into()),
            double_opt_in_field: Some("emailDoubleOptIn".into()),
            source_field: Some("emailOptInSource".into()),
            ..Default::default()
        }),
        sms_consent: Some(RawChannelConsent {
            field: Some("smsOptIn".into()),
            date_field: Some("smsOptInDate".into()),
            ..Default::default()
        }),
        custom_fields: Some(RawCustomFields {
            include: Some(vec!["*".into()]),
            exclude: Some(vec!["internalNote".into()]),
            rename: None,
        }),
        ..Default::default()
    })
    .expect("bench settings are valid")
}

/// A deterministic stream of pseudo-random numbers (SplitMix64).
struct Mix(u64);

impl Mix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn digits(&mut self, n: usize) -> String {
        (0..n)
            .map(|_| char::from(b'0' + self.below(10) as u8))
            .collect()
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

/// A mobile number of `country`, written the way shoppers write it (2 % garbage).
fn mobile(r: &mut Mix, country: &str) -> String {
    // (calling code, national prefix + mobile range, subscriber digits)
    let (cc, national, rest) = match country {
        "DE" => ("49", format!("015{}", r.below(10)), 8),
        "GB" => ("44", format!("07{}", 400 + r.below(600)), 6),
        "US" => ("1", r.pick(&["212", "415", "646", "312"]).to_owned(), 7),
        "FR" => ("33", format!("0{}", r.pick(&["6", "7"])), 8),
        "AT" => ("43", format!("066{}", r.pick(&["0", "4", "6", "9"])), 7),
        _ => ("41", format!("07{}", r.pick(&["6", "7", "8", "9"])), 7),
    };
    let mut sub = r.digits(rest);
    if country == "US" {
        // Exchange codes start with 2–9.
        sub.replace_range(0..1, &(2 + r.below(8)).to_string());
    }
    let trunk = national.strip_prefix('0').unwrap_or(&national).to_owned();
    match r.below(50) {
        0 => "call me after 6".to_owned(),
        1 => r.digits(4),
        n if n < 18 => format!("{national} {sub}"),
        n if n < 30 => format!("+{cc} {trunk} {}", sub),
        n if n < 38 => format!("+{cc}{trunk}{sub}"),
        n if n < 44 => format!("00{cc} {trunk} {sub}"),
        _ => format!(
            "({national}) {}-{}",
            &sub[..sub.len() / 2],
            &sub[sub.len() / 2..]
        ),
    }
}

fn address(r: &mut Mix, id: &str, country: &str, first: &str, last: &str) -> Value {
    let mobile = mobile(r, country);
    let (mobile, phone) = if r.below(4) == 0 {
        (Value::Null, Value::String(mobile))
    } else {
        (Value::String(mobile), Value::Null)
    };
    json!({
        "id": id,
        "firstName": first,
        "lastName": last,
        "streetName": r.pick(&["Hauptstraße", "High Street", "Main St", "Rue de la Paix", "Bahnhofstrasse"]),
        "streetNumber": format!("{}", 1 + r.below(200)),
        "additionalStreetInfo": if r.below(5) == 0 { json!("2nd floor") } else { Value::Null },
        "postalCode": r.digits(5),
        "city": r.pick(&["Berlin", "London", "New York", "Paris", "Wien", "Zürich"]),
        "country": country,
        "mobile": mobile,
        "phone": phone,
    })
}

fn date(r: &mut Mix) -> String {
    format!(
        "2025-{:02}-{:02}T{:02}:{:02}:00.{:03}+01:00",
        1 + r.below(12),
        1 + r.below(28),
        r.below(24),
        r.below(60),
        r.below(1000)
    )
}

/// Customer `i`; `email` is the address before case mangling.
fn customer(r: &mut Mix, i: usize, email: &str) -> Customer {
    let countries = ["DE", "GB", "US", "FR", "AT", "CH"];
    let country = r.pick(&countries);
    let other = r.pick(&countries);
    let first = r.pick(&["Jane", "Jörg", "Amélie", "Oliver", "Sofia", "Luca"]);
    let last = r.pick(&["Doe", "Müller", "Dubois", "Smith", "Rossi", "Huber"]);
    let email: String = email
        .chars()
        .enumerate()
        .map(|(k, c)| {
            if (i + k).is_multiple_of(5) {
                c.to_ascii_uppercase()
            } else {
                c
            }
        })
        .collect();
    let email = if i.is_multiple_of(7) {
        format!(" {email} ")
    } else {
        email
    };
    let consent = |r: &mut Mix| match r.below(6) {
        0 => json!(true),
        1 => json!(false),
        2 => json!("opted-in"),
        3 => json!({"key": "opted-out", "label": "Opted out"}),
        4 => json!(" Yes "),
        _ => Value::Null,
    };
    let fields = json!({
        "emailOptIn": consent(r),
        "emailOptInDate": date(r),
        "emailDoubleOptIn": r.below(3) != 0,
        "emailOptInSource": r.pick(&["checkout", "newsletter-footer", "account"]),
        "smsOptIn": consent(r),
        "smsOptInDate": if r.below(3) == 0 { Value::Null } else { Value::String(date(r)) },
        "gender": r.pick(&["female", "male", "F", "m", "diverse"]),
        "loyaltyTier": r.pick(&["bronze", "silver", "gold"]),
        "loyaltyPoints": r.below(10_000),
        "favouriteCategories": ["shoes", "bags"],
        "internalNote": "VIP, call before delivery",
        "preferredStore": {"typeId": "channel", "id": "5f1c0f9e"},
    });
    let fields: serde_json::Map<String, Value> = match fields {
        Value::Object(m) => m.into_iter().filter(|(_, v)| !v.is_null()).collect(),
        _ => unreachable!(),
    };
    let json = json!({
        "id": format!("c0ffee00-0000-4000-8000-{i:012}"),
        "version": 1 + r.below(20),
        "createdAt": "2024-06-01T10:00:00.000Z",
        "lastModifiedAt": format!("2026-{:02}-{:02}T12:00:00.000Z", 1 + r.below(10), 1 + r.below(28)),
        "email": email,
        "firstName": first,
        "lastName": last,
        "dateOfBirth": format!("19{}-0{}-1{}", 60 + r.below(40), 1 + r.below(9), r.below(10)),
        "customerNumber": format!("K-{}", 100_000 + i),
        "addresses": [
            address(r, "ship", country, first, last),
            address(r, "bill", other, first, last),
        ],
        "defaultShippingAddressId": "ship",
        "defaultBillingAddressId": "bill",
        "shippingAddressIds": ["ship"],
        "billingAddressIds": ["bill"],
        "isEmailVerified": true,
        "customerGroup": {"typeId": "customer-group", "id": "9e0a"},
        "custom": {"type": {"typeId": "type", "id": "customer-consent"}, "fields": fields},
        "locale": "de-DE",
        "stores": [{"typeId": "store", "key": "web"}],
    });
    serde_json::from_value(json).expect("generated customer deserializes")
}

fn customers() -> Vec<Customer> {
    let mut r = Mix(7);
    (0..CUSTOMERS)
        .map(|i| {
            // Three consecutive customers share one address (each spelled in its own case), the
            // members of one contact in `group_of_3`.
            let g = i / 3;
            customer(&mut r, i, &format!("shopper.{g}@example-{}.com", g % 11))
        })
        .collect()
}

fn merge_and_hash(facts: &[MemberFacts], settings: &ContactsSettings) -> Option<String> {
    merge(facts, PrimaryIdentifier::Email, settings, true, |_| {
        Ownership::Ours
    })
    .map(|(merged, conflict)| {
        black_box(conflict);
        payload_hash(&merged.body)
    })
}

fn benches(c: &mut Criterion) {
    let settings = settings();
    let store_country = CountryCode::parse("DE").expect("valid country");
    let ctx = ContactContext {
        settings: &settings,
        primary: PrimaryIdentifier::Email,
        store_country: Some(&store_country),
        routes: ROUTES,
    };
    let customers = customers();

    // The fixture is what it claims to be.
    let mapped: Vec<MemberFacts> = customers
        .iter()
        .filter_map(|c| customer_facts(c, Some("vip"), &ctx).ok())
        .map(|m| m.facts)
        .collect();
    assert_eq!(mapped.len(), CUSTOMERS, "every customer maps");
    let with_phone = mapped.iter().filter(|f| f.phone.is_some()).count();
    assert!(
        with_phone > CUSTOMERS * 85 / 100 && with_phone < CUSTOMERS,
        "most customers, not all, have a valid phone: {with_phone}"
    );
    let keys: std::collections::BTreeSet<_> = mapped
        .iter()
        .filter_map(|f| f.contact_key(PrimaryIdentifier::Email))
        .collect();
    assert_eq!(
        keys.len(),
        CUSTOMERS.div_ceil(3),
        "groups of three share a key"
    );

    let mut group = c.benchmark_group("contacts");
    group.throughput(Throughput::Elements(CUSTOMERS as u64));

    group.bench_function("single", |b| {
        b.iter(|| {
            for cu in &customers {
                if let Ok(m) = customer_facts(black_box(cu), Some("vip"), &ctx) {
                    black_box(merge_and_hash(std::slice::from_ref(&m.facts), &settings));
                }
            }
        })
    });

    group.bench_function("group_of_3", |b| {
        b.iter(|| {
            for chunk in customers.chunks(3) {
                let facts: Vec<MemberFacts> = chunk
                    .iter()
                    .filter_map(|cu| customer_facts(black_box(cu), Some("vip"), &ctx).ok())
                    .map(|m| m.facts)
                    .collect();
                black_box(merge_and_hash(&facts, &settings));
            }
        })
    });

    group.bench_function("facts_only", |b| {
        b.iter(|| {
            for cu in &customers {
                black_box(customer_facts(black_box(cu), Some("vip"), &ctx).ok());
            }
        })
    });

    // The phone share: the raw text and the countries `customer_facts` parses it with.
    let raw: Vec<(String, Vec<CountryCode>)> = customers
        .iter()
        .filter_map(|cu| {
            let a = cu.default_shipping_address()?;
            let text = a.mobile.clone().or_else(|| a.phone.clone())?;
            let mut countries: Vec<CountryCode> =
                CountryCode::parse(&a.country).into_iter().collect();
            if !countries.contains(&store_country) {
                countries.push(store_country.clone());
            }
            Some((text, countries))
        })
        .collect();
    assert_eq!(raw.len(), CUSTOMERS);
    let parse_all = || {
        for (text, countries) in &raw {
            black_box(PhoneE164::parse(black_box(text), countries).ok());
        }
    };
    group.bench_function("phone_parse", |b| b.iter(parse_all));

    // The suggested fix, measured: `phonenumber` compiles its metadata regexes lazily into one
    // global LRU cache of 100 entries, which these six countries (and the 25 regions sharing
    // `+1`) overflow, so nearly every parse recompiles regexes. A larger cache keeps them.
    let regex_cache = phonenumber::metadata::DATABASE.cache();
    regex_cache
        .lock()
        .expect("regex cache lock")
        .set_capacity(REGEX_CACHE);
    parse_all();
    let used = regex_cache.lock().expect("regex cache lock").len();
    println!("phonenumber regexes used by the fixture: {used}");
    group.bench_function("single_regex_cache_1000", |b| {
        b.iter(|| {
            for cu in &customers {
                if let Ok(m) = customer_facts(black_box(cu), Some("vip"), &ctx) {
                    black_box(merge_and_hash(std::slice::from_ref(&m.facts), &settings));
                }
            }
        })
    });
    group.bench_function("phone_parse_regex_cache_1000", |b| b.iter(parse_all));
    // What `parse_in`'s read-back check (re-parsing the E.164 text of a national reading) costs
    // per number: parsing the E.164 outputs once more.
    let e164: Vec<String> = raw
        .iter()
        .filter_map(|(text, countries)| PhoneE164::parse(text, countries).ok())
        .map(|p| p.as_str().to_owned())
        .collect();
    group.bench_function("phone_reparse_e164_regex_cache_1000", |b| {
        b.iter(|| {
            for text in &e164 {
                black_box(PhoneE164::parse(black_box(text), &[]).ok());
            }
        })
    });
    group.finish();
}

criterion_group!(contacts, benches);
criterion_main!(contacts);
