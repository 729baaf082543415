//! Property tests of the contact mapping (`connector::mapping::contacts`): arbitrary commercetools
//! customers → `customer_facts` → `merge` → the Omnisend `ContactRequest`.
//!
//! Customers are generated as commercetools JSON (random email case and whitespace, sometimes
//! invalid; phones in national, international, `00`, garbage and blank forms; address countries
//! DE, GB, US, FR, AT, CH or none; consent fields holding booleans, enum keys, opt-in words or
//! garbage, with optional RFC 3339 dates and double-opt-in flags) and deserialized into
//! `commercetools::models::Customer`. Every generated consent value carries the generator's own
//! label (granted / revoked / nothing), so the consent properties are checked against what the
//! *input* said, not against what the mapping made of it.
//!
//! A group is 1–3 customers sharing one email address (each spelled with its own case and
//! whitespace), i.e. the members of one email-keyed contact.

use std::collections::BTreeMap;

use commercetools::models::Customer;
use connector::config::{
    ContactsSettings, CountryCode, PrimaryIdentifier, RawChannelConsent, RawContacts,
    RawCustomFields,
};
use connector::consent::{
    Channel, ChannelStatus, ConsentEvidence, ConsentPolicy, ConsentValue, CountryRule,
    CountryScope, decide,
};
use connector::identity::{Email, PhoneE164};
use connector::mapping::contacts::{
    ContactContext, MemberFacts, Merged, Ownership, Retirement, contact_key, customer_facts, merge,
    retired_body,
};
use connector::mapping::payload_hash;
use omnisend::contacts::{ChannelStatus as WireStatus, ContactRequest, IdentifierType};
use proptest::prelude::*;
use proptest::test_runner::Config;
use serde_json::{Map, Value, json};
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime, UtcOffset};

/// 2026-01-01T00:00:00Z.
const T0: i64 = 1_767_225_600;
const ROUTES: &[&str] = &["web"];
const CASES: u32 = 256;

/// 256 cases (`PROPTEST_CASES` overrides, for a deeper run); no regression files (a failure
/// prints its minimal input instead).
fn config() -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(CASES);
    Config {
        failure_persistence: None,
        ..Config::with_cases(cases)
    }
}

// ---------------------------------------------------------------------------------------------
// Settings

fn settings() -> ContactsSettings {
    ContactsSettings::from_raw(RawContacts {
        phone_sources: Some(
            [
                "shipping.mobile",
                "shipping.phone",
                "billing.mobile",
                "billing.phone",
                "custom.mobilePhone",
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
    .expect("the test settings are valid")
}

fn with_policy(policy: ConsentPolicy) -> ContactsSettings {
    ContactsSettings {
        policy,
        ..settings()
    }
}

// ---------------------------------------------------------------------------------------------
// Generated input

/// What the generator put in a consent field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Said {
    /// An explicit yes (`true`, `opted-in`, `yes`, the enum key `opted-in`), any case/spacing.
    Granted,
    /// An explicit no.
    Revoked,
    /// Absent, or a value that is neither.
    Nothing,
}

/// One channel's consent fields as generated.
#[derive(Clone, Debug)]
struct Consent {
    value: Option<Value>,
    said: Said,
    /// The date field as written.
    date: Option<Value>,
    /// The moment the date field names, when it is a full RFC 3339 timestamp.
    at: Option<OffsetDateTime>,
    /// The date field names a day (`YYYY-MM-DD`), not a timestamp.
    date_only: Option<time::Date>,
    double_opt_in: Option<Value>,
}

impl Consent {
    fn granted(&self) -> bool {
        self.said == Said::Granted
    }

    /// The grant carries a date in any form (timestamp or day).
    fn dated_grant(&self) -> bool {
        self.granted() && (self.at.is_some() || self.date_only.is_some())
    }
}

/// One generated customer and the labels of its consent fields.
#[derive(Clone, Debug)]
struct Member {
    json: Value,
    customer: Customer,
    email: Consent,
    sms: Consent,
}

impl Member {
    fn consent(&self, channel: Channel) -> &Consent {
        match channel {
            Channel::Email => &self.email,
            Channel::Sms => &self.sms,
        }
    }
}

/// A group of customers sharing one email address, and how to map and merge it.
#[derive(Clone, Debug)]
struct Scenario {
    members: Vec<Member>,
    store_country: Option<CountryCode>,
    primary: PrimaryIdentifier,
    backfill: bool,
    /// A permutation of `0..members.len()`.
    order: Vec<usize>,
    /// Another contact of the brand owns every secondary identifier.
    secondary_taken: bool,
}

fn with_case(s: &str, bits: u64) -> String {
    s.chars()
        .enumerate()
        .flat_map(|(i, c)| {
            let upper = bits >> (i % 64) & 1 == 1;
            let out: Vec<char> = if upper {
                c.to_uppercase().collect()
            } else {
                vec![c]
            };
            out
        })
        .collect()
}

fn blank() -> BoxedStrategy<&'static str> {
    prop::sample::select(vec!["", "", "", " ", "  ", "\t", "\n", " \t "]).boxed()
}

/// A word spelled in random case with random surrounding whitespace.
fn spelled(word: &'static str) -> BoxedStrategy<String> {
    (any::<u64>(), blank(), blank())
        .prop_map(move |(bits, a, b)| format!("{a}{}{b}", with_case(word, bits)))
        .boxed()
}

fn consent_value() -> BoxedStrategy<(Option<Value>, Said)> {
    let s = |said: Said| move |v: String| (Some(Value::String(v)), said);
    prop_oneof![
        3 => Just((Some(json!(true)), Said::Granted)),
        3 => Just((Some(json!(false)), Said::Revoked)),
        2 => spelled("opted-in").prop_map(s(Said::Granted)),
        2 => spelled("yes").prop_map(s(Said::Granted)),
        2 => spelled("opted-out").prop_map(s(Said::Revoked)),
        1 => Just((Some(json!({"key": "opted-in", "label": "Opted in"})), Said::Granted)),
        1 => Just((Some(json!({"key": "opted-out", "label": "Opted out"})), Said::Revoked)),
        3 => prop_oneof![
            Just(json!("maybe")),
            Just(json!("")),
            Just(json!("   ")),
            Just(json!("pending")),
            Just(json!("yes please")),
            Just(json!(1)),
            Just(json!(0)),
            Just(Value::Null),
            Just(json!(["yes"])),
            Just(json!({"label": "yes"})),
            "x-[a-z]{0,6}".prop_map(Value::String),
        ]
        .prop_map(|v| (Some(v), Said::Nothing)),
        3 => Just((None, Said::Nothing)),
    ]
    .boxed()
}

/// A date field: `(value, timestamp, day)`.
fn consent_date() -> BoxedStrategy<(Option<Value>, Option<OffsetDateTime>, Option<time::Date>)> {
    // Few distinct instants, so that statements of different members often tie.
    let instant = (
        0i64..3,
        prop::sample::select(vec![0i64, 3_600]),
        prop::sample::select(vec![0u16, 250]),
        prop::sample::select(vec![0i8, 2, -5]),
    )
        .prop_map(|(day, secs, ms, offset)| {
            let t = OffsetDateTime::from_unix_timestamp(T0 + day * 86_400 + secs).unwrap()
                + Duration::milliseconds(ms.into());
            let local = t.to_offset(UtcOffset::from_hms(offset, 0, 0).unwrap());
            (
                Some(Value::String(local.format(&Rfc3339).unwrap())),
                Some(t),
                None,
            )
        });
    prop_oneof![
        5 => instant,
        1 => Just((Some(json!("2026-01-02")), None, Some(time::macros::date!(2026 - 01 - 02)))),
        2 => prop_oneof![
            Just(json!("yesterday")),
            Just(json!("")),
            Just(json!("2026-13-45T99:00:00Z")),
            Just(json!(1_767_225_600)),
        ]
        .prop_map(|v| (Some(v), None, None)),
        4 => Just((None, None, None)),
    ]
    .boxed()
}

fn double_opt_in() -> BoxedStrategy<Option<Value>> {
    prop_oneof![
        Just(Some(json!(true))),
        Just(Some(json!(false))),
        Just(Some(json!("yes"))),
        Just(None),
        Just(None),
    ]
    .boxed()
}

fn consent(with_double_opt_in: bool) -> BoxedStrategy<Consent> {
    (consent_value(), consent_date(), double_opt_in())
        .prop_map(move |((value, said), (date, at, date_only), doi)| Consent {
            value,
            said,
            date,
            at,
            date_only,
            double_opt_in: if with_double_opt_in { doi } else { None },
        })
        .boxed()
}

fn phone() -> BoxedStrategy<String> {
    let international = prop_oneof![
        "\\+49 ?1[5-7][0-9] ?[0-9]{7,8}",
        "\\+49 ?30 ?[0-9]{7,8}",
        "\\+44 ?7[4-9][0-9]{2} ?[0-9]{6}",
        "\\+1 ?\\(?[2-9][0-9]{2}\\)? ?[2-9][0-9]{2}-[0-9]{4}",
        "\\+33 ?[67]( ?[0-9]{2}){4}",
        "\\+43 ?6[5-9][0-9] ?[0-9]{6,7}",
        "\\+41 ?7[5-9] ?[0-9]{3} ?[0-9]{2} ?[0-9]{2}",
        "\\+[1-9][0-9]{0,2} ?[0-9]{4,12}",
    ];
    let national = prop_oneof![
        "01[5-7][0-9] ?[0-9]{7,8}",
        "030 ?[0-9]{7,8}",
        "07[4-9][0-9]{2} ?[0-9]{6}",
        "\\(?[2-9][0-9]{2}\\)? ?[2-9][0-9]{2}-[0-9]{4}",
        "0[67]( ?[0-9]{2}){4}",
        "06[5-9][0-9] ?[0-9]{6,7}",
        "07[5-9] ?[0-9]{3} ?[0-9]{2} ?[0-9]{2}",
    ];
    prop_oneof![
        4 => international,
        4 => national,
        1 => "00(49|44|33|43|41|1) ?[1-9][0-9]{7,10}",
        2 => "\\+?[0-9 ()./-]{0,20}",
        1 => prop_oneof![
            "\\PC{0,15}",
            Just("call me".to_owned()),
            Just("+49 151 1234 5678 ext. 9".to_owned()),
            Just("0000000000".to_owned()),
        ],
        1 => prop_oneof![Just(String::new()), Just("   ".to_owned())],
    ]
    .boxed()
}

fn country() -> BoxedStrategy<&'static str> {
    prop::sample::select(vec!["DE", "GB", "US", "FR", "AT", "CH", "", "de"]).boxed()
}

fn address(i: usize) -> BoxedStrategy<Value> {
    (
        country(),
        proptest::option::of(phone()),
        proptest::option::of(phone()),
        proptest::option::of("[A-Z][a-z]{2,10}(stra(ss|ß)e| Road)"),
        proptest::option::of("[0-9]{1,3}[a-c]?"),
        proptest::option::of("[A-Z][a-z]{2,10}"),
        proptest::option::of("[0-9]{4,5}"),
        proptest::option::of("[A-Z][a-z]{1,8}"),
    )
        .prop_map(
            move |(country, phone, mobile, street, number, city, zip, first)| {
                json!({
                    "id": format!("addr-{i}"),
                    "country": country,
                    "phone": phone,
                    "mobile": mobile,
                    "streetName": street,
                    "streetNumber": number,
                    "city": city,
                    "postalCode": zip,
                    "firstName": first,
                })
            },
        )
        .boxed()
}

/// Addresses, default shipping address id, default billing address id.
fn addresses() -> BoxedStrategy<(Vec<Value>, Option<String>, Option<String>)> {
    let list = prop_oneof![
        1 => Just(Vec::new()),
        3 => address(0).prop_map(|a| vec![a]),
        2 => (address(0), address(1)).prop_map(|(a, b)| vec![a, b]),
    ];
    // Index 2 never exists: a dangling default id.
    let default = proptest::option::of(0usize..3);
    (list, default.clone(), default)
        .prop_map(|(list, ship, bill)| {
            let id = |i: Option<usize>| i.map(|i| format!("addr-{i}"));
            (list, id(ship), id(bill))
        })
        .boxed()
}

/// Custom fields other than consent: `(mobilePhone, gender, loyaltyTier, internalNote)`.
fn other_fields() -> BoxedStrategy<Map<String, Value>> {
    (
        proptest::option::of(phone()),
        proptest::option::of(prop::sample::select(vec!["female", "M", "x", ""])),
        proptest::option::of(prop::sample::select(vec!["gold", "silver"])),
        any::<bool>(),
        proptest::option::of(prop::sample::select(vec!["checkout", "newsletter-footer"])),
    )
        .prop_map(|(mobile, gender, tier, note, source)| {
            let mut m = Map::new();
            if let Some(p) = mobile {
                m.insert("mobilePhone".into(), json!(p));
            }
            if let Some(g) = gender {
                m.insert("gender".into(), json!(g));
            }
            if let Some(t) = tier {
                m.insert("loyaltyTier".into(), json!(t));
            }
            if note {
                m.insert("internalNote".into(), json!({"en": "call before delivery"}));
            }
            if let Some(s) = source {
                m.insert("emailOptInSource".into(), json!(s));
            }
            m
        })
        .boxed()
}

/// Everything of one member but its id and the shared address.
#[derive(Clone, Debug)]
struct MemberSpec {
    case_bits: u64,
    lead: &'static str,
    trail: &'static str,
    modified_day: i64,
    first_name: Option<String>,
    last_name: Option<String>,
    birth: Option<&'static str>,
    number: Option<String>,
    addresses: (Vec<Value>, Option<String>, Option<String>),
    /// `None`: no `custom` at all.
    custom: Option<(Consent, Consent, Map<String, Value>)>,
}

fn member_spec() -> BoxedStrategy<MemberSpec> {
    (
        (any::<u64>(), blank(), blank(), 0i64..2),
        (
            proptest::option::of("[A-Z][a-z]{1,8}"),
            proptest::option::of("[A-Z][a-z]{1,10}"),
            proptest::option::of(prop::sample::select(vec!["1990-05-17", "17.05.1990"])),
            proptest::option::of("[0-9]{3,6}"),
        ),
        addresses(),
        prop_oneof![
            1 => Just(None),
            5 => (consent(true), consent(false), other_fields()).prop_map(Some),
        ],
    )
        .prop_map(
            |(
                (case_bits, lead, trail, modified_day),
                (first_name, last_name, birth, number),
                addresses,
                custom,
            )| {
                MemberSpec {
                    case_bits,
                    lead,
                    trail,
                    modified_day,
                    first_name,
                    last_name,
                    birth,
                    number,
                    addresses,
                    custom,
                }
            },
        )
        .boxed()
}

fn email_base() -> BoxedStrategy<String> {
    prop_oneof![
        8 => "[a-z0-9]{1,8}([._+-][a-z0-9]{1,6})?@[a-z0-9]{1,8}(-[a-z0-9]{1,4})?\\.(com|de|fr|co\\.uk|ch)",
        1 => prop_oneof![
            Just("jane.example.com".to_owned()),
            Just("jane@localhost".to_owned()),
            Just("Jane <jane@example.com>".to_owned()),
            Just("jane doe@example.com".to_owned()),
            Just("jane@@example.com".to_owned()),
            Just(String::new()),
            "\\PC{0,20}",
        ],
    ]
.boxed()
}

fn rfc(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap()
}

fn build_member(i: usize, base: &str, spec: MemberSpec) -> Member {
    let none = || Consent {
        value: None,
        said: Said::Nothing,
        date: None,
        at: None,
        date_only: None,
        double_opt_in: None,
    };
    let mut custom = Value::Null;
    let (email, sms) = match spec.custom {
        None => (none(), none()),
        Some((email, sms, mut fields)) => {
            let mut put = |k: &str, v: &Option<Value>| {
                if let Some(v) = v {
                    fields.insert(k.to_owned(), v.clone());
                }
            };
            put("emailOptIn", &email.value);
            put("emailOptInDate", &email.date);
            put("emailDoubleOptIn", &email.double_opt_in);
            put("smsOptIn", &sms.value);
            put("smsOptInDate", &sms.date);
            custom = json!({
                "type": {"typeId": "type", "id": "customer-consent"},
                "fields": fields,
            });
            (email, sms)
        }
    };
    let (addresses, ship, bill) = spec.addresses;
    let modified = OffsetDateTime::from_unix_timestamp(T0 + spec.modified_day * 86_400).unwrap();
    let json = json!({
        "id": format!("cust-{i}"),
        "version": 1,
        "createdAt": "2025-12-01T08:00:00Z",
        "lastModifiedAt": rfc(modified),
        "email": format!("{}{}{}", spec.lead, with_case(base, spec.case_bits), spec.trail),
        "firstName": spec.first_name,
        "lastName": spec.last_name,
        "dateOfBirth": spec.birth,
        "customerNumber": spec.number,
        "addresses": addresses,
        "defaultShippingAddressId": ship,
        "defaultBillingAddressId": bill,
        "custom": custom,
    });
    let customer: Customer =
        serde_json::from_value(json.clone()).expect("a generated customer deserializes");
    Member {
        json,
        customer,
        email,
        sms,
    }
}

fn scenario() -> BoxedStrategy<Scenario> {
    group(1..=3)
}

/// A scenario with `members` customers.
fn group(members: std::ops::RangeInclusive<usize>) -> BoxedStrategy<Scenario> {
    (
        email_base(),
        proptest::collection::vec(member_spec(), members),
        proptest::option::of(prop::sample::select(vec![
            "DE", "GB", "US", "FR", "AT", "CH",
        ])),
        prop_oneof![
            4 => Just(PrimaryIdentifier::Email),
            1 => Just(PrimaryIdentifier::Phone),
        ],
        any::<bool>(),
        Just(vec![0usize, 1, 2]).prop_shuffle(),
        prop::bool::weighted(0.1),
    )
        .prop_map(
            |(base, specs, store_country, primary, backfill, order, secondary_taken)| {
                let members: Vec<Member> = specs
                    .into_iter()
                    .enumerate()
                    .map(|(i, s)| build_member(i, &base, s))
                    .collect();
                let n = members.len();
                Scenario {
                    members,
                    store_country: store_country.and_then(CountryCode::parse),
                    primary,
                    backfill,
                    order: order.into_iter().filter(|i| *i < n).collect(),
                    secondary_taken,
                }
            },
        )
        .boxed()
}

// ---------------------------------------------------------------------------------------------
// Running the mapping

impl Scenario {
    fn ctx<'a>(&'a self, settings: &'a ContactsSettings) -> ContactContext<'a> {
        ContactContext {
            settings,
            primary: self.primary,
            store_country: self.store_country.as_ref(),
            routes: ROUTES,
        }
    }

    /// The members that map, with their facts, in generation order.
    fn facts(&self, settings: &ContactsSettings) -> Vec<(&Member, MemberFacts)> {
        let ctx = self.ctx(settings);
        self.members
            .iter()
            .filter_map(|m| {
                customer_facts(&m.customer, None, &ctx)
                    .ok()
                    .map(|mapped| (m, mapped.facts))
            })
            .collect()
    }

    fn merge(&self, facts: &[MemberFacts], settings: &ContactsSettings) -> Option<Merged> {
        let taken = self.secondary_taken;
        merge(facts, self.primary, settings, self.backfill, |_| {
            if taken {
                Ownership::Theirs {
                    contact_key: "0123456789abcdef0123456789abcdef",
                    member_id: "cust-elsewhere",
                }
            } else {
                Ownership::Ours
            }
        })
        .map(|(merged, _conflict)| merged)
    }

    /// Maps every member and merges those that map: the members passed to `merge` and the body.
    fn run(&self, settings: &ContactsSettings) -> Option<(Vec<&Member>, ContactRequest)> {
        let mapped = self.facts(settings);
        let (members, facts): (Vec<&Member>, Vec<MemberFacts>) = mapped.into_iter().unzip();
        let body = self.merge(&facts, settings)?.body;
        Some((members, body))
    }
}

fn channel_of(name: &str) -> Channel {
    match name {
        "email" => Channel::Email,
        "sms" => Channel::Sms,
        other => panic!("unknown channel {other:?}"),
    }
}

/// `(identifier type, channel, status)` of every channel status in a body.
fn statuses(body: &ContactRequest) -> Vec<(IdentifierType, Channel, WireStatus)> {
    body.identifiers
        .iter()
        .flat_map(|i| {
            i.channels
                .iter()
                .map(move |(name, c)| (i.kind, channel_of(name), c.status))
        })
        .collect()
}

fn status_of(body: &ContactRequest, channel: Channel) -> Option<WireStatus> {
    statuses(body)
        .into_iter()
        .find(|(_, c, _)| *c == channel)
        .map(|(_, _, s)| s)
}

/// `+`, then 7–15 digits, the first not `0`. (Seven, not eight: Niue's `+683 4002` is a valid
/// E.164 number of seven digits, and libphonenumber accepts it.)
fn looks_e164(s: &str) -> bool {
    s.strip_prefix('+').is_some_and(|d| {
        (7..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()) && !d.starts_with('0')
    })
}

// ---------------------------------------------------------------------------------------------
// Consent and country-rule strategies for `decide`

fn arb_country() -> BoxedStrategy<Option<CountryCode>> {
    proptest::option::of(
        prop::sample::select(vec!["DE", "AT", "CH", "GB", "US", "FR"])
            .prop_map(|c| CountryCode::parse(c).unwrap()),
    )
    .boxed()
}

fn arb_channel() -> BoxedStrategy<Channel> {
    prop_oneof![Just(Channel::Email), Just(Channel::Sms)].boxed()
}

fn arb_evidence() -> BoxedStrategy<ConsentEvidence> {
    (
        prop_oneof![
            Just(ConsentValue::Granted),
            Just(ConsentValue::Revoked),
            Just(ConsentValue::Unknown)
        ],
        proptest::option::of(T0 - 86_400_000..T0 + 86_400_000),
        proptest::option::of("[a-z-]{0,12}"),
        proptest::option::of(any::<bool>()),
    )
        .prop_map(
            |(value, at, source, double_opt_in_confirmed)| ConsentEvidence {
                value,
                at: at.map(|s| OffsetDateTime::from_unix_timestamp(s).unwrap()),
                source,
                double_opt_in_confirmed,
            },
        )
        .boxed()
}

fn arb_rule() -> BoxedStrategy<CountryRule> {
    (
        prop_oneof![
            Just(CountryScope::Any),
            arb_country().prop_filter_map("a country", |c| c.map(CountryScope::Only)),
        ],
        arb_channel(),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(
            |(country, channel, requires_double_opt_in, opt_in_only)| CountryRule {
                country,
                channel,
                requires_double_opt_in,
                opt_in_only,
            },
        )
        .boxed()
}

fn arb_policy() -> BoxedStrategy<ConsentPolicy> {
    prop_oneof![
        Just(ConsentPolicy::conservative_default()),
        proptest::collection::vec(arb_rule(), 0..6).prop_map(|rules| ConsentPolicy { rules }),
    ]
    .boxed()
}

/// `decide` with rules is never looser than `decide` without: a subscription needs one
/// without rules, and an unsubscription stays one.
fn no_looser(without: Option<ChannelStatus>, with: Option<ChannelStatus>) -> Result<(), String> {
    if with == Some(ChannelStatus::Subscribed) && without != Some(ChannelStatus::Subscribed) {
        return Err(format!("rules turned {without:?} into subscribed"));
    }
    if without == Some(ChannelStatus::Unsubscribed) && with != Some(ChannelStatus::Unsubscribed) {
        return Err(format!("rules turned unsubscribed into {with:?}"));
    }
    Ok(())
}

fn wire(s: Option<WireStatus>) -> Option<ChannelStatus> {
    match s {
        Some(WireStatus::Subscribed) => Some(ChannelStatus::Subscribed),
        Some(WireStatus::Unsubscribed) => Some(ChannelStatus::Unsubscribed),
        Some(WireStatus::NonSubscribed) => panic!("the connector never sends nonSubscribed"),
        None => None,
    }
}

// ---------------------------------------------------------------------------------------------
// Properties

proptest! {
    #![proptest_config(config())]

    #[test]
    fn the_connector_never_subscribes_a_channel_without_an_explicit_grant_in_the_source(
        s in scenario(),
        policy in prop_oneof![Just(ConsentPolicy::none()), arb_policy()],
    ) {
        let settings = with_policy(policy);
        let Some((members, body)) = s.run(&settings) else { return Ok(()) };
        for (kind, channel, status) in statuses(&body) {
            // Each identifier carries only its own channel.
            let expected = match kind {
                IdentifierType::Email => Channel::Email,
                IdentifierType::Phone => Channel::Sms,
            };
            prop_assert_eq!(channel, expected);
            prop_assert_ne!(status, WireStatus::NonSubscribed);
            if status == WireStatus::Subscribed {
                prop_assert!(
                    members.iter().any(|m| m.consent(channel).granted()),
                    "{channel} subscribed, but no member's record grants it: {:#?}",
                    members.iter().map(|m| &m.json).collect::<Vec<_>>()
                );
            }
            if status == WireStatus::Unsubscribed {
                prop_assert!(
                    members.iter().any(|m| m.consent(channel).said == Said::Revoked),
                    "{channel} unsubscribed, but no member's record revokes it"
                );
            }
        }
    }

    #[test]
    fn a_backfill_never_subscribes_an_undated_grant(s in scenario()) {
        let s = Scenario { backfill: true, ..s };
        let settings = with_policy(ConsentPolicy::none());
        let Some((members, body)) = s.run(&settings) else { return Ok(()) };
        for i in &body.identifiers {
            for (name, c) in &i.channels {
                if c.status != WireStatus::Subscribed {
                    continue;
                }
                let channel = channel_of(name);
                prop_assert!(
                    members.iter().any(|m| m.consent(channel).dated_grant()),
                    "{channel} subscribed in a backfill without any dated grant in the source"
                );
                // The consent date sent is the date of one of the sources' grants.
                let created = i.consent.as_ref().and_then(|c| c.created_at.as_deref());
                let created = created.map(|t| OffsetDateTime::parse(t, &Rfc3339));
                let Some(Ok(created)) = created else {
                    return Err(TestCaseError::fail(format!(
                        "{channel} subscribed in a backfill without a consent date: {i:?}"
                    )));
                };
                prop_assert!(
                    members.iter().any(|m| {
                        let c = m.consent(channel);
                        c.granted()
                            && (c.at.map(OffsetDateTime::unix_timestamp) == Some(created.unix_timestamp())
                                || c.date_only == Some(created.date()))
                    }),
                    "consent date {created} is no member's grant date"
                );
            }
        }
    }

    #[test]
    fn a_single_undated_grant_is_never_subscribed_in_a_backfill(
        s in scenario(),
        policy in prop_oneof![Just(ConsentPolicy::none()), arb_policy()],
    ) {
        let s = Scenario {
            members: s.members[..1].to_vec(),
            order: vec![0],
            backfill: true,
            ..s
        };
        let settings = with_policy(policy);
        let Some((members, body)) = s.run(&settings) else { return Ok(()) };
        for channel in [Channel::Email, Channel::Sms] {
            let c = members[0].consent(channel);
            // A date-only value (a commercetools Date field) counts as dated: midnight UTC.
            if c.granted() && c.at.is_none() && c.date_only.is_none() {
                prop_assert_ne!(status_of(&body, channel), Some(WireStatus::Subscribed));
            }
        }
    }

    #[test]
    fn email_normalisation_is_idempotent(s in scenario(), raw in "\\PC{0,30}") {
        let mut inputs: Vec<String> = s.members.iter().map(|m| m.customer.email.clone()).collect();
        inputs.push(raw);
        for x in inputs {
            let once = Email::parse(&x);
            if let Ok(e) = &once {
                prop_assert_eq!(Email::parse(e.as_str()), once.clone());
            }
        }
    }

    #[test]
    fn phone_normalisation_is_idempotent(s in scenario(), raw in phone(), countries in proptest::collection::vec(country(), 0..3)) {
        let countries: Vec<CountryCode> = countries.into_iter().filter_map(CountryCode::parse).collect();
        if let Ok(p) = PhoneE164::parse(&raw, &countries) {
            prop_assert_eq!(PhoneE164::parse(p.as_str(), &[]), Ok(p.clone()));
            prop_assert_eq!(PhoneE164::parse(p.as_str(), &countries), Ok(p.clone()));
        }
        let settings = settings();
        for (_, facts) in s.facts(&settings) {
            if let Some(phone) = facts.phone {
                let again = PhoneE164::parse(&phone, &[]).map(|p| p.as_str().to_owned());
                prop_assert_eq!(again, Ok(phone.clone()));
                let de = CountryCode::parse("DE").unwrap();
                let again = PhoneE164::parse(&phone, &[de]).map(|p| p.as_str().to_owned());
                prop_assert_eq!(again, Ok(phone));
            }
        }
    }

    #[test]
    fn mapping_the_same_customer_twice_gives_identical_facts(s in scenario()) {
        let settings = settings();
        let ctx = s.ctx(&settings);
        for m in &s.members {
            let first = customer_facts(&m.customer, Some("vip"), &ctx);
            let second = customer_facts(&m.customer.clone(), Some("vip"), &ctx);
            prop_assert_eq!(&first, &second);
            // A customer read back from its own JSON maps the same.
            let reread: Customer = serde_json::from_value(serde_json::to_value(&m.customer).unwrap()).unwrap();
            prop_assert_eq!(&first, &customer_facts(&reread, Some("vip"), &ctx));
        }
    }

    #[test]
    fn merging_members_in_any_order_gives_the_same_body(s in group(2..=3)) {
        let settings = settings();
        let facts: Vec<MemberFacts> = s.facts(&settings).into_iter().map(|(_, f)| f).collect();
        let n = facts.len();
        let shuffled: Vec<MemberFacts> = s.order.iter().filter(|i| **i < n).map(|i| facts[*i].clone()).collect();
        let a = s.merge(&facts, &settings);
        let b = s.merge(&shuffled, &settings);
        prop_assert_eq!(
            a.as_ref().map(|m| payload_hash(&m.body)),
            b.as_ref().map(|m| payload_hash(&m.body)),
            "order {:?} changed the body:\n{:#?}\nvs\n{:#?}\nfacts: {:#?}",
            s.order, a.as_ref().map(|m| &m.body), b.as_ref().map(|m| &m.body), facts
        );
        prop_assert_eq!(a, b);
    }

    #[test]
    fn every_phone_identifier_sent_is_valid_e164(s in scenario()) {
        let settings = settings();
        let Some((_, body)) = s.run(&settings) else { return Ok(()) };
        for i in body.identifiers.iter().filter(|i| i.kind == IdentifierType::Phone) {
            prop_assert!(looks_e164(&i.id), "{:?} is not E.164", i.id);
            prop_assert!(PhoneE164::parse(&i.id, &[]).is_ok(), "{:?} does not parse", i.id);
        }
    }

    #[test]
    fn country_rules_never_make_a_decision_less_strict(
        evidence in arb_evidence(),
        channel in arb_channel(),
        country in arb_country(),
        policy in arb_policy(),
        backfill in any::<bool>(),
    ) {
        let without = decide(&evidence, channel, country.as_ref(), &ConsentPolicy::none(), backfill);
        let conservative = decide(&evidence, channel, country.as_ref(), &ConsentPolicy::conservative_default(), backfill);
        let with = decide(&evidence, channel, country.as_ref(), &policy, backfill);
        prop_assert_eq!(no_looser(without, conservative), Ok(()));
        prop_assert_eq!(no_looser(without, with), Ok(()));
    }

    #[test]
    fn country_rules_never_make_a_merged_contact_less_strict(
        s in scenario(),
        policy in arb_policy(),
    ) {
        let loose = with_policy(ConsentPolicy::none());
        let strict = with_policy(policy);
        let (Some((_, a)), Some((_, b))) = (s.run(&loose), s.run(&strict)) else {
            return Ok(());
        };
        for channel in [Channel::Email, Channel::Sms] {
            let without = wire(status_of(&a, channel));
            let with = wire(status_of(&b, channel));
            prop_assert_eq!(no_looser(without, with), Ok(()), "{}", channel);
        }
    }

    #[test]
    fn an_email_identifier_is_always_lower_case_and_trimmed(s in scenario()) {
        let settings = settings();
        let Some((_, body)) = s.run(&settings) else { return Ok(()) };
        for i in body.identifiers.iter().filter(|i| i.kind == IdentifierType::Email) {
            prop_assert_eq!(i.id.trim(), i.id.as_str());
            prop_assert_eq!(i.id.to_lowercase(), i.id.clone());
            prop_assert_eq!(Email::parse(&i.id).map(|e| e.as_str().to_owned()), Ok(i.id.clone()));
        }
    }

    #[test]
    fn a_bulk_merge_never_asks_for_a_welcome_message(s in scenario()) {
        let s = Scenario { backfill: true, ..s };
        let settings = settings();
        let Some((_, body)) = s.run(&settings) else { return Ok(()) };
        let json = serde_json::to_value(&body).unwrap();
        for i in json["identifiers"].as_array().unwrap() {
            prop_assert_eq!(&i["sendWelcomeMessage"], &json!(false), "{}", i);
        }
    }

    #[test]
    fn members_sharing_an_email_share_one_contact_key(s in scenario()) {
        let settings = settings();
        let s = Scenario { primary: PrimaryIdentifier::Email, ..s };
        let facts = s.facts(&settings);
        let keys: Vec<String> = facts
            .iter()
            .filter_map(|(_, f)| f.contact_key(PrimaryIdentifier::Email))
            .collect();
        // Every member maps, or none does: they differ only in case and whitespace.
        prop_assert!(facts.is_empty() || facts.len() == s.members.len());
        prop_assert!(keys.windows(2).all(|w| w[0] == w[1]), "{:?}", keys);
        if let (Some(k), Some((_, f))) = (keys.first(), facts.first()) {
            let email = f.email.as_deref().unwrap();
            prop_assert_eq!(k, &contact_key(PrimaryIdentifier::Email, email));
        }
    }

    #[test]
    fn a_secondary_identifier_owned_by_another_contact_is_never_sent(s in scenario()) {
        let s = Scenario { secondary_taken: true, ..s };
        let settings = settings();
        let Some((_, body)) = s.run(&settings) else { return Ok(()) };
        let secondary = match s.primary {
            PrimaryIdentifier::Email => IdentifierType::Phone,
            PrimaryIdentifier::Phone => IdentifierType::Email,
        };
        prop_assert_eq!(body.identifiers.len(), 1);
        prop_assert!(body.identifier(secondary).is_none());
    }

    #[test]
    fn an_erased_contact_is_unsubscribed_everywhere_and_never_welcomed(s in scenario()) {
        let settings = settings();
        let erased_at = OffsetDateTime::from_unix_timestamp(T0 + 10 * 86_400).unwrap();
        for (_, facts) in s.facts(&settings) {
            let Some(body) = retired_body(&facts, s.primary, &Retirement::Erased { at: erased_at }) else {
                continue;
            };
            prop_assert!(!body.identifiers.is_empty());
            for i in &body.identifiers {
                prop_assert_eq!(i.send_welcome_message, Some(false));
                prop_assert!(i.consent.is_none());
                prop_assert_eq!(i.channels.len(), 1);
                prop_assert!(i.channels.values().all(|c| c.status == WireStatus::Unsubscribed));
            }
            prop_assert!(body.first_name.is_none() && body.last_name.is_none());
        }
    }
}

/// The generator produces what the properties assume: groups that map, merge and carry every
/// kind of consent outcome. Guards against a generator change that would make the properties
/// above vacuous.
#[test]
fn the_generator_covers_the_interesting_cases() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;

    let settings = with_policy(ConsentPolicy::none());
    let mut runner = TestRunner::deterministic();
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    let strategy = scenario();
    for _ in 0..400 {
        let s = strategy.new_tree(&mut runner).unwrap().current();
        let facts = s.facts(&settings);
        if facts.iter().any(|(_, f)| f.phone.is_some()) {
            *seen.entry("a member with a phone").or_default() += 1;
        }
        if s.members.len() > 1 && facts.len() > 1 {
            *seen.entry("a merged group").or_default() += 1;
        }
        let Some((_, body)) = s.run(&settings) else {
            continue;
        };
        for (_, channel, status) in statuses(&body) {
            let what = match (channel, status) {
                (Channel::Email, WireStatus::Subscribed) => "email subscribed",
                (Channel::Email, _) => "email unsubscribed",
                (Channel::Sms, WireStatus::Subscribed) => "sms subscribed",
                (Channel::Sms, _) => "sms unsubscribed",
            };
            *seen.entry(what).or_default() += 1;
        }
    }
    for what in [
        "a member with a phone",
        "a merged group",
        "email subscribed",
        "email unsubscribed",
        "sms subscribed",
        "sms unsubscribed",
    ] {
        assert!(
            seen.get(what).copied().unwrap_or(0) >= 10,
            "{what}: {seen:?}"
        );
    }
}
