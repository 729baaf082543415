//! `[contacts]`: how commercetools customers become Omnisend contacts (identity sources,
//! consent fields, country rules, custom properties). Raw TOML shape and checked settings.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use super::{ConfigError, invalid};
use crate::consent::{Channel, ConsentPolicy, CountryRule, CountryScope};

/// `[contacts.email_consent]` / `[contacts.sms_consent]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawChannelConsent {
    /// Customer custom field holding the consent (boolean, enum or string).
    pub field: Option<String>,
    /// Values (case-insensitive) meaning "yes"; booleans: `true`.
    pub granted_values: Option<Vec<String>>,
    /// Values (case-insensitive) meaning "no"; booleans: `false`.
    pub revoked_values: Option<Vec<String>>,
    /// Custom field with the date the statement was made.
    pub date_field: Option<String>,
    /// Custom field with where it was made.
    pub source_field: Option<String>,
    /// Custom field (boolean) confirming double opt-in.
    pub double_opt_in_field: Option<String>,
    /// Custom field with the IP address at consent time.
    pub ip_field: Option<String>,
    /// Custom field with the user agent at consent time.
    pub user_agent_field: Option<String>,
    /// Consent `source` sent when the record names none.
    pub default_source: Option<String>,
}

/// `[[contacts.consent_rules]]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConsentRule {
    /// ISO country code, or `*` for every country.
    pub country: Option<String>,
    /// `email` or `sms`.
    pub channel: Option<String>,
    /// A grant counts only with a confirmed double opt-in.
    pub requires_double_opt_in: Option<bool>,
    /// A grant counts only with a dated opt-in statement.
    pub opt_in_only: Option<bool>,
}

/// `[contacts.custom_fields]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCustomFields {
    /// Custom fields sent as custom properties; `["*"]` for all.
    pub include: Option<Vec<String>>,
    /// Custom fields never sent (applied after `include`).
    pub exclude: Option<Vec<String>>,
    /// Field name → property name, replacing the `ct_<snake_case>` convention.
    pub rename: Option<BTreeMap<String, String>>,
}

/// `[contacts]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawContacts {
    /// `project` (default): read `/customers` once; `stores`: read each route's in-store
    /// endpoint (for API clients scoped to stores).
    pub read_from: Option<String>,
    /// Where the phone comes from, first non-empty wins.
    pub phone_sources: Option<Vec<String>>,
    /// Customer custom field giving the gender.
    pub gender_field: Option<String>,
    /// Whether guest emails on orders and carts become contacts (default true).
    pub guests: Option<bool>,
    /// Seconds a delta run re-reads before its cursor (default 60).
    pub delta_overlap_secs: Option<u64>,
    /// A delta run with at most this many contact writes uses `POST /contacts`; more go through
    /// `/batches` (default 100).
    pub single_request_limit: Option<usize>,
    /// Whether delta runs read `CustomerDeleted` messages (default true).
    pub deletions_from_messages: Option<bool>,
    /// Whether real-time subscriptions (not syncs) may trigger Omnisend's welcome workflow
    /// (default false).
    pub welcome_realtime_subscribers: Option<bool>,
    /// Email consent fields.
    pub email_consent: Option<RawChannelConsent>,
    /// SMS consent fields.
    pub sms_consent: Option<RawChannelConsent>,
    /// Country rules; replaces the built-in table when given.
    pub consent_rules: Option<Vec<RawConsentRule>>,
    /// Custom fields as custom properties.
    pub custom_fields: Option<RawCustomFields>,
}

/// Which identifier a store's contacts are keyed by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PrimaryIdentifier {
    /// The normalised email (default).
    Email,
    /// The E.164 phone.
    Phone,
}

impl PrimaryIdentifier {
    /// Parses `email` / `phone`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "email" => Some(Self::Email),
            "phone" => Some(Self::Phone),
            _ => None,
        }
    }

    /// `email` / `phone`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Email => "email",
            Self::Phone => "phone",
        }
    }
}

/// Where customers are read from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReadFrom {
    /// `GET /customers`, routed by each customer's `stores`.
    Project,
    /// `GET /in-store/key={store}/customers` per route (the `default` route: `/customers`,
    /// global customers only).
    Stores,
}

/// Which address a phone is read from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AddressKind {
    /// The default shipping address.
    Shipping,
    /// The default billing address.
    Billing,
}

/// One place a phone number may be read from.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum PhoneSource {
    /// `shipping.mobile`, `billing.phone`, …
    Address {
        /// Which address.
        address: AddressKind,
        /// `true` for `mobile`, `false` for `phone`.
        mobile: bool,
    },
    /// `custom.<field>`: a customer custom field.
    Custom(String),
}

impl PhoneSource {
    /// Parses `shipping.mobile`, `shipping.phone`, `billing.mobile`, `billing.phone` or
    /// `custom.<field>`.
    pub fn parse(s: &str) -> Option<Self> {
        if let Some(field) = s.strip_prefix("custom.") {
            return (!field.is_empty()).then(|| Self::Custom(field.to_owned()));
        }
        let (address, field) = s.split_once('.')?;
        let address = match address {
            "shipping" => AddressKind::Shipping,
            "billing" => AddressKind::Billing,
            _ => return None,
        };
        let mobile = match field {
            "mobile" => true,
            "phone" => false,
            _ => return None,
        };
        Some(Self::Address { address, mobile })
    }

    /// The configuration spelling.
    pub fn describe(&self) -> String {
        match self {
            Self::Address { address, mobile } => format!(
                "{}.{}",
                match address {
                    AddressKind::Shipping => "shipping",
                    AddressKind::Billing => "billing",
                },
                if *mobile { "mobile" } else { "phone" }
            ),
            Self::Custom(f) => format!("custom.{f}"),
        }
    }
}

/// Checked consent fields of one channel.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ChannelConsentSettings {
    /// Consent field; `None` = no evidence is ever read (no status is sent).
    pub field: Option<String>,
    /// Lower-case values meaning "yes".
    pub granted_values: Vec<String>,
    /// Lower-case values meaning "no".
    pub revoked_values: Vec<String>,
    /// Date field.
    pub date_field: Option<String>,
    /// Source field.
    pub source_field: Option<String>,
    /// Double-opt-in confirmation field.
    pub double_opt_in_field: Option<String>,
    /// IP field.
    pub ip_field: Option<String>,
    /// User-agent field.
    pub user_agent_field: Option<String>,
    /// Source sent when the record names none.
    pub default_source: String,
}

/// Checked `[contacts.custom_fields]`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct CustomFieldSettings {
    /// `include = ["*"]`.
    pub include_all: bool,
    /// Included fields (when not all).
    pub include: Vec<String>,
    /// Excluded fields.
    pub exclude: Vec<String>,
    /// Renames.
    pub rename: BTreeMap<String, String>,
}

impl CustomFieldSettings {
    /// The custom property a custom field is sent as, or `None` when it is not sent.
    pub fn property_for(&self, field: &str) -> Option<String> {
        let included = self.include_all || self.include.iter().any(|f| f == field);
        if !included || self.exclude.iter().any(|f| f == field) {
            return None;
        }
        Some(
            self.rename
                .get(field)
                .cloned()
                .unwrap_or_else(|| property_name(field)),
        )
    }
}

/// The fixed naming convention of custom properties: `ct_` and the field name in snake case
/// (`loyaltyTier` → `ct_loyalty_tier`, `VIP-Level` → `ct_vip_level`).
pub fn property_name(field: &str) -> String {
    let mut out = String::from("ct_");
    let mut prev_lower_or_digit = false;
    for ch in field.chars() {
        if ch.is_ascii_uppercase() {
            if prev_lower_or_digit {
                out.push('_');
            }
            out.push(ch.to_ascii_lowercase());
            prev_lower_or_digit = false;
        } else if ch.is_ascii_alphanumeric() {
            out.push(ch);
            prev_lower_or_digit = true;
        } else {
            if !out.ends_with('_') {
                out.push('_');
            }
            prev_lower_or_digit = false;
        }
    }
    out.trim_end_matches('_').to_owned()
}

/// Checked `[contacts]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContactsSettings {
    /// Where customers are read from.
    pub read_from: ReadFrom,
    /// Phone sources in order.
    pub phone_sources: Vec<PhoneSource>,
    /// Gender custom field.
    pub gender_field: Option<String>,
    /// Guests from orders and carts.
    pub guests: bool,
    /// Delta re-read window.
    pub delta_overlap: Duration,
    /// Largest delta sent contact by contact.
    pub single_request_limit: usize,
    /// Read `CustomerDeleted` messages in delta runs.
    pub deletions_from_messages: bool,
    /// Let real-time subscriptions trigger the welcome workflow (syncs never do).
    pub welcome_realtime_subscribers: bool,
    /// Email consent.
    pub email: ChannelConsentSettings,
    /// SMS consent.
    pub sms: ChannelConsentSettings,
    /// Country rules.
    pub policy: ConsentPolicy,
    /// Custom properties.
    pub custom_fields: CustomFieldSettings,
    /// Custom fields the mapping reads itself (consent, gender, phone): never sent as
    /// properties.
    pub mapped_fields: Vec<String>,
}

impl Default for ContactsSettings {
    fn default() -> Self {
        ContactsSettings::from_raw(RawContacts::default()).expect("the defaults are valid")
    }
}

/// Values meaning "yes" when none are configured.
pub const DEFAULT_GRANTED: &[&str] = &[
    "true",
    "yes",
    "y",
    "1",
    "opted-in",
    "opt-in",
    "subscribed",
    "granted",
];
/// Values meaning "no" when none are configured.
pub const DEFAULT_REVOKED: &[&str] = &[
    "false",
    "no",
    "n",
    "0",
    "opted-out",
    "opt-out",
    "unsubscribed",
    "revoked",
];

fn field_name(key: &str, v: Option<String>) -> Result<Option<String>, ConfigError> {
    match v {
        None => Ok(None),
        Some(s) if s.trim().is_empty() => Err(invalid(key, "must not be empty")),
        Some(s) => Ok(Some(s)),
    }
}

fn channel_from_raw(
    section: &str,
    raw: Option<RawChannelConsent>,
) -> Result<ChannelConsentSettings, ConfigError> {
    let raw = raw.unwrap_or_default();
    let k = |f: &str| format!("contacts.{section}.{f}");
    let values =
        |f: &str, v: Option<Vec<String>>, d: &[&str]| -> Result<Vec<String>, ConfigError> {
            let v: Vec<String> = match v {
                Some(v) => v.into_iter().map(|s| s.trim().to_lowercase()).collect(),
                None => d.iter().map(|s| (*s).to_owned()).collect(),
            };
            if v.iter().any(String::is_empty) {
                return Err(invalid(k(f), "values must not be empty"));
            }
            Ok(v)
        };
    let granted = values("granted_values", raw.granted_values, DEFAULT_GRANTED)?;
    let revoked = values("revoked_values", raw.revoked_values, DEFAULT_REVOKED)?;
    if let Some(both) = granted.iter().find(|g| revoked.contains(g)) {
        return Err(invalid(
            k("granted_values"),
            format!("{both:?} is also listed in revoked_values"),
        ));
    }
    Ok(ChannelConsentSettings {
        field: field_name(&k("field"), raw.field)?,
        granted_values: granted,
        revoked_values: revoked,
        date_field: field_name(&k("date_field"), raw.date_field)?,
        source_field: field_name(&k("source_field"), raw.source_field)?,
        double_opt_in_field: field_name(&k("double_opt_in_field"), raw.double_opt_in_field)?,
        ip_field: field_name(&k("ip_field"), raw.ip_field)?,
        user_agent_field: field_name(&k("user_agent_field"), raw.user_agent_field)?,
        default_source: raw
            .default_source
            .filter(|s| !s.trim().is_empty())
            .unwrap_or_else(|| "commercetools".to_owned()),
    })
}

impl ContactsSettings {
    /// Checks `[contacts]`.
    pub fn from_raw(raw: RawContacts) -> Result<Self, ConfigError> {
        let phone_sources = match raw.phone_sources {
            None => [
                "shipping.mobile",
                "shipping.phone",
                "billing.mobile",
                "billing.phone",
            ]
            .iter()
            .map(|s| PhoneSource::parse(s).expect("valid default"))
            .collect(),
            Some(list) => list
                .iter()
                .map(|s| {
                    PhoneSource::parse(s).ok_or_else(|| {
                        invalid(
                            "contacts.phone_sources",
                            format!(
                                "{s:?}: expected shipping.mobile, shipping.phone, billing.mobile, \
                                 billing.phone or custom.<field>"
                            ),
                        )
                    })
                })
                .collect::<Result<Vec<_>, _>>()?,
        };
        let policy = match raw.consent_rules {
            None => ConsentPolicy::conservative_default(),
            Some(rules) => ConsentPolicy {
                rules: rules
                    .into_iter()
                    .enumerate()
                    .map(|(i, r)| rule_from_raw(i, r))
                    .collect::<Result<Vec<_>, _>>()?,
            },
        };
        let cf = raw.custom_fields.unwrap_or_default();
        let include = cf.include.unwrap_or_default();
        let include_all = include.iter().any(|f| f == "*");
        let rename = cf.rename.unwrap_or_default();
        for (field, prop) in &rename {
            if prop.trim().is_empty() {
                return Err(invalid(
                    format!("contacts.custom_fields.rename.{field}"),
                    "the property name must not be empty",
                ));
            }
            if RESERVED_PROPERTIES.contains(&prop.as_str()) {
                return Err(invalid(
                    format!("contacts.custom_fields.rename.{field}"),
                    format!("{prop:?} is reserved for the connector's own properties"),
                ));
            }
        }
        let single_request_limit = raw.single_request_limit.unwrap_or(100);
        let read_from = match raw.read_from.as_deref().unwrap_or("project") {
            "project" => ReadFrom::Project,
            "stores" => ReadFrom::Stores,
            other => {
                return Err(invalid(
                    "contacts.read_from",
                    format!("{other:?}: expected \"project\" or \"stores\""),
                ));
            }
        };
        let mut settings = ContactsSettings {
            read_from,
            phone_sources,
            gender_field: field_name("contacts.gender_field", raw.gender_field)?,
            guests: raw.guests.unwrap_or(true),
            delta_overlap: Duration::from_secs(raw.delta_overlap_secs.unwrap_or(60)),
            single_request_limit,
            deletions_from_messages: raw.deletions_from_messages.unwrap_or(true),
            welcome_realtime_subscribers: raw.welcome_realtime_subscribers.unwrap_or(false),
            email: channel_from_raw("email_consent", raw.email_consent)?,
            sms: channel_from_raw("sms_consent", raw.sms_consent)?,
            policy,
            custom_fields: CustomFieldSettings {
                include_all,
                include: include.into_iter().filter(|f| f != "*").collect(),
                exclude: cf.exclude.unwrap_or_default(),
                rename,
            },
            mapped_fields: Vec::new(),
        };
        settings.mapped_fields = settings.read_fields();
        Ok(settings)
    }

    fn read_fields(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for ch in [&self.email, &self.sms] {
            out.extend(
                [
                    &ch.field,
                    &ch.date_field,
                    &ch.source_field,
                    &ch.double_opt_in_field,
                    &ch.ip_field,
                    &ch.user_agent_field,
                ]
                .into_iter()
                .flatten()
                .cloned(),
            );
        }
        out.extend(self.gender_field.clone());
        for src in &self.phone_sources {
            if let PhoneSource::Custom(f) = src {
                out.push(f.clone());
            }
        }
        out
    }

    /// The consent fields of a channel.
    pub fn channel(&self, channel: Channel) -> &ChannelConsentSettings {
        match channel {
            Channel::Email => &self.email,
            Channel::Sms => &self.sms,
        }
    }

    /// Text that changes whenever something that shapes contact payloads changes.
    pub fn fingerprint_text(&self) -> String {
        format!("{self:?}")
    }
}

/// Custom properties the connector writes itself; a rename may not take them.
pub const RESERVED_PROPERTIES: &[&str] = &[
    "ct_customer_id",
    "ct_customer_ids",
    "ct_customer_number",
    "ct_replaced_by",
    "ct_erased_at",
];

fn rule_from_raw(i: usize, r: RawConsentRule) -> Result<CountryRule, ConfigError> {
    let k = |f: &str| format!("contacts.consent_rules[{i}].{f}");
    let country = r.country.ok_or_else(|| invalid(k("country"), "required"))?;
    let country = CountryScope::parse(&country.trim().to_uppercase()).ok_or_else(|| {
        invalid(
            k("country"),
            format!("{country:?}: expected an ISO 3166-1 alpha-2 code or \"*\""),
        )
    })?;
    let channel = match r.channel.as_deref() {
        Some("email") => Channel::Email,
        Some("sms") => Channel::Sms,
        other => {
            return Err(invalid(
                k("channel"),
                format!("{other:?}: expected \"email\" or \"sms\""),
            ));
        }
    };
    let rule = CountryRule {
        country,
        channel,
        requires_double_opt_in: r.requires_double_opt_in.unwrap_or(false),
        opt_in_only: r.opt_in_only.unwrap_or(false),
    };
    if !rule.requires_double_opt_in && !rule.opt_in_only {
        return Err(invalid(
            format!("contacts.consent_rules[{i}]"),
            "a rule must require something: set requires_double_opt_in or opt_in_only",
        ));
    }
    Ok(rule)
}

/// Parses a store's `primary_identifier`.
pub(super) fn primary_from_raw(
    i: usize,
    raw: Option<String>,
) -> Result<PrimaryIdentifier, ConfigError> {
    match raw {
        None => Ok(PrimaryIdentifier::Email),
        Some(s) => PrimaryIdentifier::parse(&s).ok_or_else(|| {
            invalid(
                format!("stores[{i}].primary_identifier"),
                format!("{s:?}: expected \"email\" or \"phone\""),
            )
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn property_names_follow_the_snake_case_convention() {
        assert_eq!(property_name("loyaltyTier"), "ct_loyalty_tier");
        assert_eq!(property_name("VIP-Level"), "ct_vip_level");
        assert_eq!(property_name("tier2Code"), "ct_tier2_code");
        assert_eq!(property_name("a b"), "ct_a_b");
    }

    #[test]
    fn custom_fields_are_sent_only_when_included_and_not_excluded() {
        let cf = CustomFieldSettings {
            include_all: true,
            include: vec![],
            exclude: vec!["internalNote".into()],
            rename: [("loyaltyTier".to_owned(), "tier".to_owned())].into(),
        };
        assert_eq!(cf.property_for("loyaltyTier").as_deref(), Some("tier"));
        assert_eq!(cf.property_for("other").as_deref(), Some("ct_other"));
        assert_eq!(cf.property_for("internalNote"), None);
        assert_eq!(CustomFieldSettings::default().property_for("other"), None);
    }

    #[test]
    fn phone_sources_parse_and_describe_themselves() {
        for s in ["shipping.mobile", "billing.phone", "custom.mobilePhone"] {
            assert_eq!(PhoneSource::parse(s).unwrap().describe(), s);
        }
        assert!(PhoneSource::parse("home.phone").is_none());
        assert!(PhoneSource::parse("custom.").is_none());
    }

    #[test]
    fn a_rule_that_requires_nothing_is_refused() {
        let raw = RawContacts {
            consent_rules: Some(vec![RawConsentRule {
                country: Some("FR".into()),
                channel: Some("email".into()),
                ..Default::default()
            }]),
            ..Default::default()
        };
        let e = ContactsSettings::from_raw(raw).unwrap_err().to_string();
        assert!(e.contains("consent_rules[0]"), "{e}");
    }

    #[test]
    fn a_value_both_granted_and_revoked_is_refused() {
        let raw = RawContacts {
            email_consent: Some(RawChannelConsent {
                granted_values: Some(vec!["Yes".into()]),
                revoked_values: Some(vec!["yes".into()]),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert!(ContactsSettings::from_raw(raw).is_err());
    }

    #[test]
    fn the_defaults_use_the_conservative_country_table() {
        let s = ContactsSettings::default();
        assert_eq!(s.policy, ConsentPolicy::conservative_default());
        assert!(s.email.field.is_none());
        assert_eq!(s.phone_sources.len(), 4);
        assert!(s.guests);
    }
}
