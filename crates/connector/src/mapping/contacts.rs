//! Contacts: commercetools customers and guests → Omnisend contacts. Pure: no I/O, no clock.
//!
//! Two steps, both pure:
//!
//! 1. [`customer_facts`] / [`guest_facts`] read one source record into [`MemberFacts`]: the
//!    normalised identifiers, the profile, every *explicit* consent statement and the tags and
//!    properties, for one brand. Invalid emails reject the record (when email is the primary
//!    identifier); invalid phones are dropped with a warning, never blocking the email.
//! 2. [`merge`] turns every member sharing one contact key into one `ContactRequest`, by the
//!    rules written in `docs/identity.md`: profile from the most recently modified registered
//!    customer (guests only when no customer shares the key), consent per channel from the most
//!    recent explicit statement passed through [`crate::consent::decide`], tags unioned, the
//!    secondary identifier sent only when this contact owns it.
//!
//! [`retired_body`] builds the body for a contact whose members are all gone: an email change
//! (the old contact is tagged and points to the new address) or a data erasure (both channels
//! `unsubscribed`, tagged).

use std::collections::{BTreeMap, BTreeSet};

use commercetools::models::{Address, Customer};
use omnisend::contacts::{
    ChannelRequest, ChannelStatus as WireStatus, ConsentRequest, ContactRequest, IdentifierRequest,
    IdentifierType, limits,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::Rejection;
use super::text::truncate_chars;
use crate::config::{
    AddressKind, ChannelConsentSettings, ContactsSettings, CountryCode, PhoneSource,
    PrimaryIdentifier,
};
use crate::consent::{
    Channel, ChannelStatus, ConsentEvidence, ConsentPolicy, ConsentValue, decide,
};
use crate::identity::{Email, PhoneE164};

/// Entity name of customers in rejected records.
pub const CUSTOMER: &str = "customer";
/// Entity name of guests (orders/carts without an account) in rejected records.
pub const GUEST: &str = "guest";
/// Entity name of merged contacts (conflicts, Omnisend refusals).
pub const CONTACT: &str = "contact";

/// The tag every contact carries.
pub const SOURCE_TAG: &str = "source: commercetools";
/// Tag of contacts known only from guest orders or carts.
pub const GUEST_TAG: &str = "ct: guest";
/// Tag of a contact whose customer changed email address.
pub const EMAIL_CHANGED_TAG: &str = "ct: email changed";
/// Tag of a contact whose customer was deleted (data erasure).
pub const ERASED_TAG: &str = "ct: erased";

/// Whether the record is a registered customer or a guest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MemberKind {
    /// A commercetools customer account.
    Customer,
    /// An email on an order or cart without an account.
    Guest,
}

/// An explicit consent statement of one channel.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Statement {
    /// Yes (`true`) or no (`false`).
    pub granted: bool,
    /// When it was made, if the record says.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub at: Option<OffsetDateTime>,
    /// Where it was made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Double opt-in confirmation, if the record says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub double_opt_in: Option<bool>,
    /// IP address at consent time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    /// User agent at consent time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
}

/// Profile fields as sent.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Profile {
    /// First name.
    pub first_name: Option<String>,
    /// Last name.
    pub last_name: Option<String>,
    /// Street and number.
    pub address: Option<String>,
    /// City.
    pub city: Option<String>,
    /// State or region.
    pub state: Option<String>,
    /// Postal code.
    pub postal_code: Option<String>,
    /// ISO country.
    pub country_code: Option<String>,
    /// `YYYY-MM-DD`.
    pub birthdate: Option<String>,
    /// `m` / `f`.
    pub gender: Option<String>,
}

/// What one source record says about one contact of one brand.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MemberFacts {
    /// Customer id, or `guest:<contact key>`.
    pub member_id: String,
    /// Customer or guest.
    pub kind: MemberKind,
    /// Normalised email.
    pub email: Option<String>,
    /// E.164 phone.
    pub phone: Option<String>,
    /// When the record was created.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When it was last modified (orders the profile rule).
    #[serde(with = "time::serde::rfc3339")]
    pub modified_at: OffsetDateTime,
    /// Profile.
    pub profile: Profile,
    /// Email consent statement.
    pub email_consent: Option<Statement>,
    /// SMS consent statement.
    pub sms_consent: Option<Statement>,
    /// Tags.
    pub tags: BTreeSet<String>,
    /// Custom properties.
    pub properties: BTreeMap<String, Value>,
}

impl MemberFacts {
    /// The value the contact is keyed by, if the record has it.
    pub fn primary(&self, primary: PrimaryIdentifier) -> Option<&str> {
        match primary {
            PrimaryIdentifier::Email => self.email.as_deref(),
            PrimaryIdentifier::Phone => self.phone.as_deref(),
        }
    }

    /// The other identifier.
    pub fn secondary(&self, primary: PrimaryIdentifier) -> Option<&str> {
        match primary {
            PrimaryIdentifier::Email => self.phone.as_deref(),
            PrimaryIdentifier::Phone => self.email.as_deref(),
        }
    }

    /// The stored contact key: a hash of the primary identifier, so state rows and logs
    /// never hold the address itself.
    pub fn contact_key(&self, primary: PrimaryIdentifier) -> Option<String> {
        self.primary(primary).map(|v| contact_key(primary, v))
    }
}

/// The contact key of an identifier value: the first 32 hex digits of SHA-256 over
/// `email:` / `phone:` and the normalised value.
pub fn contact_key(primary: PrimaryIdentifier, value: &str) -> String {
    let mut h = Sha256::new();
    h.update(primary.as_str().as_bytes());
    h.update(b":");
    h.update(value.as_bytes());
    hex::encode(&h.finalize()[..16])
}

/// Everything mapping needs besides the record.
#[derive(Clone, Copy, Debug)]
pub struct ContactContext<'a> {
    /// `[contacts]`.
    pub settings: &'a ContactsSettings,
    /// The brand's primary identifier.
    pub primary: PrimaryIdentifier,
    /// Country of the customer's first route in this brand (phone parsing fallback, country
    /// rules when no address gives one).
    pub store_country: Option<&'a CountryCode>,
    /// The customer's route keys in this brand (become `store: KEY` tags).
    pub routes: &'a [&'a str],
}

/// A mapped record plus what was dropped on the way.
#[derive(Clone, Debug, PartialEq)]
pub struct Mapped {
    /// The facts.
    pub facts: MemberFacts,
    /// Dropped parts (an invalid phone, an invalid email beside a valid phone).
    pub warnings: Vec<Rejection>,
}

/// Reads one customer for one brand. `group_key` is the key of its customer group, if any.
pub fn customer_facts(
    c: &Customer,
    group_key: Option<&str>,
    ctx: &ContactContext<'_>,
) -> Result<Mapped, Rejection> {
    let mut warnings = Vec::new();
    let fields = c.custom.as_ref().map(|f| &f.fields);
    let custom = |name: &str| fields.and_then(|f| f.get(name));

    let email = match Email::parse(&c.email) {
        Ok(e) => Some(e.as_str().to_owned()),
        Err(e) => {
            let r = Rejection::new(CUSTOMER, &c.id, "email", e.to_string());
            if ctx.primary == PrimaryIdentifier::Email {
                return Err(r);
            }
            warnings.push(r);
            None
        }
    };

    let (shipping, billing) = (c.default_shipping_address(), c.default_billing_address());
    let profile_address = shipping.or(billing).or_else(|| c.addresses.first());
    let phone = read_phone(c, (shipping, billing), ctx, &mut warnings);
    if ctx.primary == PrimaryIdentifier::Phone && phone.is_none() {
        let reason = if warnings.iter().any(|w| w.field == "phone") {
            "no valid phone, and phone is the primary identifier"
        } else {
            "no phone, and phone is the primary identifier"
        };
        return Err(Rejection::new(CUSTOMER, &c.id, "phone", reason));
    }

    let mut profile = address_profile(profile_address);
    if c.first_name.is_some() || c.last_name.is_some() {
        profile.first_name = clean(c.first_name.as_deref(), limits::NAME);
        profile.last_name = clean(c.last_name.as_deref(), limits::NAME);
    }
    if profile.country_code.is_none() {
        profile.country_code = ctx.store_country.map(|c| c.as_str().to_owned());
    }
    profile.birthdate = c
        .date_of_birth
        .as_deref()
        .filter(|d| is_iso_date(d))
        .map(str::to_owned);
    profile.gender = ctx
        .settings
        .gender_field
        .as_deref()
        .and_then(custom)
        .and_then(Value::as_str)
        .and_then(gender);

    let mut tags = BTreeSet::from([SOURCE_TAG.to_owned()]);
    tags.extend(ctx.routes.iter().map(|r| format!("store: {r}")));
    if let Some(g) = group_key {
        tags.insert(format!("customer group: {g}"));
    }

    let mut properties = BTreeMap::new();
    if let Some(n) = c.customer_number.as_deref().filter(|n| !n.is_empty()) {
        properties.insert("ct_customer_number".to_owned(), Value::from(n));
    }
    if let Some(fields) = fields {
        for (name, value) in fields {
            if ctx.settings.mapped_fields.contains(name) {
                continue;
            }
            let Some(prop) = ctx.settings.custom_fields.property_for(name) else {
                continue;
            };
            if let Some(v) = property_value(value) {
                properties.insert(prop, v);
            }
        }
    }

    Ok(Mapped {
        facts: MemberFacts {
            member_id: c.id.clone(),
            kind: MemberKind::Customer,
            email,
            phone,
            created_at: c.created_at,
            modified_at: c.last_modified_at,
            profile,
            email_consent: statement(fields, &ctx.settings.email),
            sms_consent: statement(fields, &ctx.settings.sms),
            tags,
            properties,
        },
        warnings,
    })
}

/// A guest: the email on an order or cart without a customer account. Guests carry no consent
/// statement (no status is ever sent for them).
#[derive(Clone, Copy, Debug)]
pub struct GuestRecord<'a> {
    /// `order` or `cart`.
    pub source: &'static str,
    /// Order or cart id.
    pub id: &'a str,
    /// `customerEmail` as written.
    pub email: &'a str,
    /// Billing address, else shipping address.
    pub address: Option<&'a Address>,
    /// Created.
    pub created_at: OffsetDateTime,
    /// Last modified.
    pub modified_at: OffsetDateTime,
}

/// Reads a guest for one brand (email-keyed brands only: a guest has no phone identity).
pub fn guest_facts(g: &GuestRecord<'_>, ctx: &ContactContext<'_>) -> Result<Mapped, Rejection> {
    let email = Email::parse(g.email).map_err(|e| {
        Rejection::new(
            GUEST,
            &format!("{}:{}", g.source, g.id),
            "customerEmail",
            e.to_string(),
        )
    })?;
    let email = email.as_str().to_owned();
    let mut profile = address_profile(g.address);
    if profile.country_code.is_none() {
        profile.country_code = ctx.store_country.map(|c| c.as_str().to_owned());
    }
    let mut tags = BTreeSet::from([SOURCE_TAG.to_owned(), GUEST_TAG.to_owned()]);
    tags.extend(ctx.routes.iter().map(|r| format!("store: {r}")));
    Ok(Mapped {
        facts: MemberFacts {
            member_id: format!("guest:{}", contact_key(PrimaryIdentifier::Email, &email)),
            kind: MemberKind::Guest,
            email: Some(email),
            phone: None,
            created_at: g.created_at,
            modified_at: g.modified_at,
            profile,
            email_consent: None,
            sms_consent: None,
            tags,
            properties: BTreeMap::new(),
        },
        warnings: Vec::new(),
    })
}

/// The outcome of merging one contact.
#[derive(Clone, Debug, PartialEq)]
pub struct Merged {
    /// The body to send.
    pub body: ContactRequest,
    /// The member whose profile was used.
    pub profile_member: String,
}

/// Who owns the secondary identifier a contact would send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ownership<'a> {
    /// This contact (or nobody else) holds it: send it.
    Ours,
    /// Another contact of the brand holds it (its key and the member that holds it): drop it.
    Theirs {
        /// The owning contact's key.
        contact_key: &'a str,
        /// The owning member (customer id).
        member_id: &'a str,
    },
}

/// Merges the members of one contact key (at least one) into one body.
///
/// `owner` answers who owns a secondary identifier value. `backfill` is true for bulk runs
/// (undated grants are then never sent as `subscribed`).
pub fn merge<'o>(
    members: &[MemberFacts],
    primary: PrimaryIdentifier,
    settings: &ContactsSettings,
    backfill: bool,
    owner: impl Fn(&str) -> Ownership<'o>,
) -> Option<(Merged, Option<Rejection>)> {
    merge_with_holders(members, &[], primary, settings, backfill, owner)
}

/// [`merge`], where `holders` are members of *other* contacts of the brand that hold one of
/// this contact's identifiers (e.g. a phone shared by two accounts with different emails).
/// Their statements about that identifier count too: a person who opted out of SMS through one
/// account is not subscribed through another.
pub fn merge_with_holders<'o>(
    members: &[MemberFacts],
    holders: &[MemberFacts],
    primary: PrimaryIdentifier,
    settings: &ContactsSettings,
    backfill: bool,
    owner: impl Fn(&str) -> Ownership<'o>,
) -> Option<(Merged, Option<Rejection>)> {
    let winner = members.iter().max_by(|a, b| {
        (a.kind == MemberKind::Customer, a.modified_at, &a.member_id).cmp(&(
            b.kind == MemberKind::Customer,
            b.modified_at,
            &b.member_id,
        ))
    })?;
    let primary_value = winner.primary(primary)?.to_owned();
    let country = winner
        .profile
        .country_code
        .as_deref()
        .and_then(CountryCode::parse);

    // The secondary identifier: the winner's, else the most recent member's that has one.
    let mut conflict = None;
    let secondary = std::iter::once(winner)
        .chain(members.iter().filter(|m| m.member_id != winner.member_id))
        .filter(|m| m.secondary(primary).is_some())
        // The winner's first; else the most recent; on a tie the smallest id (order-free).
        .max_by_key(|m| {
            (
                m.member_id == winner.member_id,
                m.modified_at,
                std::cmp::Reverse(m.member_id.as_str()),
            )
        })
        .and_then(|m| {
            let value = m.secondary(primary)?;
            match owner(value) {
                Ownership::Ours => Some(value.to_owned()),
                Ownership::Theirs {
                    contact_key,
                    member_id,
                } => {
                    let field = match primary {
                        PrimaryIdentifier::Email => "phone",
                        PrimaryIdentifier::Phone => "email",
                    };
                    conflict = Some(Rejection::new(
                        CONTACT,
                        &m.member_id,
                        field,
                        format!(
                            "conflict: the {field} {} already belongs to customer {member_id} \
                             (contact {contact_key}); not sent for customer {}",
                            mask_secondary(primary, value),
                            m.member_id
                        ),
                    ));
                    None
                }
            }
        });
    let (email, phone) = match primary {
        PrimaryIdentifier::Email => (Some(primary_value), secondary),
        PrimaryIdentifier::Phone => (secondary, Some(primary_value)),
    };

    let mut identifiers = Vec::with_capacity(2);
    if let Some(email) = email {
        identifiers.push(identifier(
            IdentifierType::Email,
            email,
            Channel::Email,
            members,
            holders,
            country.as_ref(),
            &settings.policy,
            &settings.email,
            backfill,
            settings.welcome_realtime_subscribers,
        ));
    }
    if let Some(phone) = phone {
        identifiers.push(identifier(
            IdentifierType::Phone,
            phone,
            Channel::Sms,
            members,
            holders,
            country.as_ref(),
            &settings.policy,
            &settings.sms,
            backfill,
            settings.welcome_realtime_subscribers,
        ));
    }
    if primary == PrimaryIdentifier::Phone {
        identifiers.reverse();
    }

    let mut tags: BTreeSet<&str> = BTreeSet::new();
    for m in members {
        tags.extend(m.tags.iter().map(String::as_str));
    }
    if members.iter().any(|m| m.kind == MemberKind::Customer) {
        tags.remove(GUEST_TAG);
    }
    let tags: Vec<String> = tags
        .into_iter()
        .take(limits::TAGS)
        .map(str::to_owned)
        .collect();

    let mut custom_properties = winner.properties.clone();
    let mut customer_ids: Vec<&str> = members
        .iter()
        .filter(|m| m.kind == MemberKind::Customer)
        .map(|m| m.member_id.as_str())
        .collect();
    customer_ids.sort_unstable();
    if winner.kind == MemberKind::Customer {
        custom_properties.insert(
            "ct_customer_id".into(),
            Value::from(winner.member_id.as_str()),
        );
    }
    if customer_ids.len() > 1 {
        custom_properties.insert(
            "ct_customer_ids".into(),
            Value::from(customer_ids.join(",")),
        );
    }

    let p = &winner.profile;
    let body = ContactRequest {
        identifiers,
        first_name: p.first_name.clone(),
        last_name: p.last_name.clone(),
        address: p.address.clone(),
        city: p.city.clone(),
        state: p.state.clone(),
        postal_code: p.postal_code.clone(),
        country_code: p.country_code.clone(),
        birthdate: p.birthdate.clone(),
        gender: p.gender.clone(),
        tags,
        custom_properties,
        created_at: None,
    };
    Some((
        Merged {
            body,
            profile_member: winner.member_id.clone(),
        },
        conflict,
    ))
}

/// Why a contact key lost all its members.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Retirement {
    /// The customer now uses another address (the new primary identifier value).
    Moved {
        /// The new identifier value.
        to: String,
    },
    /// The customer was deleted (data erasure) at this time.
    Erased {
        /// When the connector learned of it.
        at: OffsetDateTime,
    },
}

/// The body sent for a contact whose members are all gone, built from the last facts known.
/// Omnisend cannot re-key an email, so a moved contact is marked (tag + `ct_replaced_by`);
/// an erased one has both channels set to `unsubscribed` and is tagged.
pub fn retired_body(
    last: &MemberFacts,
    primary: PrimaryIdentifier,
    why: &Retirement,
) -> Option<ContactRequest> {
    let primary_value = last.primary(primary)?;
    let kind = match primary {
        PrimaryIdentifier::Email => IdentifierType::Email,
        PrimaryIdentifier::Phone => IdentifierType::Phone,
    };
    let bare = |kind, id: &str| IdentifierRequest {
        kind,
        id: id.to_owned(),
        channels: BTreeMap::new(),
        consent: None,
        send_welcome_message: Some(false),
        source: None,
    };
    match why {
        Retirement::Moved { to } => Some(ContactRequest {
            identifiers: vec![bare(kind, primary_value)],
            tags: vec![SOURCE_TAG.to_owned(), EMAIL_CHANGED_TAG.to_owned()],
            custom_properties: BTreeMap::from([(
                "ct_replaced_by".to_owned(),
                Value::from(to.as_str()),
            )]),
            ..Default::default()
        }),
        Retirement::Erased { at } => {
            let at = rfc3339(*at);
            let unsubscribed = |kind, id: &str, channel: Channel| {
                let mut i = bare(kind, id);
                i.channels.insert(
                    channel.as_str().to_owned(),
                    ChannelRequest {
                        status: WireStatus::Unsubscribed,
                        status_changed_at: Some(at.clone()),
                    },
                );
                i
            };
            let mut identifiers = Vec::new();
            if let Some(e) = &last.email {
                identifiers.push(unsubscribed(IdentifierType::Email, e, Channel::Email));
            }
            if let Some(p) = &last.phone {
                identifiers.push(unsubscribed(IdentifierType::Phone, p, Channel::Sms));
            }
            Some(ContactRequest {
                identifiers,
                tags: vec![SOURCE_TAG.to_owned(), ERASED_TAG.to_owned()],
                custom_properties: BTreeMap::from([(
                    "ct_erased_at".to_owned(),
                    Value::from(at.as_str()),
                )]),
                ..Default::default()
            })
        }
    }
}

/// A loggable form of the secondary identifier of a contact keyed by `primary` (a phone for
/// email-keyed contacts, an email for phone-keyed ones).
pub fn mask_secondary(primary: PrimaryIdentifier, value: &str) -> String {
    match primary {
        PrimaryIdentifier::Email => PhoneE164::parse(value, &[])
            .map(|p| p.mask())
            .unwrap_or_else(|_| "+***".to_owned()),
        PrimaryIdentifier::Phone => Email::parse(value)
            .map(|e| e.mask())
            .unwrap_or_else(|_| "***@***".to_owned()),
    }
}

// ---------------------------------------------------------------------------------------------

#[allow(clippy::too_many_arguments)]
fn identifier(
    kind: IdentifierType,
    id: String,
    channel: Channel,
    members: &[MemberFacts],
    holders: &[MemberFacts],
    country: Option<&CountryCode>,
    policy: &ConsentPolicy,
    fields: &ChannelConsentSettings,
    backfill: bool,
    welcome: bool,
) -> IdentifierRequest {
    let mut out = IdentifierRequest {
        kind,
        id,
        channels: BTreeMap::new(),
        consent: None,
        send_welcome_message: Some(false),
        source: None,
    };
    // The most recent explicit statement of a member holding this very identifier (one
    // account's SMS consent never subscribes another account's phone): dated by itself, else
    // by its record's modification. On a tie the strictest wins — a "no", then a pending double
    // opt-in, then an undated "yes", then an unconfirmed one — then the smallest member id, so
    // the outcome never depends on the order members are listed in.
    let latest = members
        .iter()
        .chain(holders)
        .filter(|m| match channel {
            Channel::Email => m.email.as_deref() == Some(out.id.as_str()),
            Channel::Sms => m.phone.as_deref() == Some(out.id.as_str()),
        })
        .filter_map(|m| {
            let s = match channel {
                Channel::Email => m.email_consent.as_ref(),
                Channel::Sms => m.sms_consent.as_ref(),
            }?;
            let when = s.at.unwrap_or(m.modified_at);
            let strictness = (
                !s.granted,
                s.double_opt_in == Some(false),
                s.at.is_none(),
                s.double_opt_in != Some(true),
            );
            Some((when, strictness, std::cmp::Reverse(m.member_id.as_str()), s))
        })
        .max_by(|a, b| (a.0, a.1, a.2).cmp(&(b.0, b.1, b.2)))
        .map(|(when, strictness, _, s)| (when, strictness, s));
    let Some((when, _, s)) = latest else {
        return out;
    };
    let evidence = ConsentEvidence {
        value: if s.granted {
            ConsentValue::Granted
        } else {
            ConsentValue::Revoked
        },
        at: s.at,
        source: s.source.clone(),
        double_opt_in_confirmed: s.double_opt_in,
    };
    let Some(status) = decide(&evidence, channel, country, policy, backfill) else {
        return out;
    };
    out.channels.insert(
        channel.as_str().to_owned(),
        ChannelRequest {
            status: match status {
                ChannelStatus::Subscribed => WireStatus::Subscribed,
                ChannelStatus::Unsubscribed => WireStatus::Unsubscribed,
            },
            status_changed_at: Some(rfc3339(when)),
        },
    );
    if status == ChannelStatus::Subscribed {
        // Omnisend's welcome workflow: never for syncs (bulk); for a real-time subscription
        // only when configured.
        out.send_welcome_message = Some(!backfill && welcome);
        out.consent = Some(ConsentRequest {
            created_at: s.at.map(rfc3339),
            ip: s.ip.clone(),
            source: Some(truncate_chars(
                s.source.as_deref().unwrap_or(&fields.default_source),
                limits::CONSENT_SOURCE,
            )),
            user_agent: s
                .user_agent
                .as_deref()
                .map(|u| truncate_chars(u, limits::USER_AGENT)),
        });
    }
    out
}

fn read_phone(
    c: &Customer,
    (shipping, billing): (Option<&Address>, Option<&Address>),
    ctx: &ContactContext<'_>,
    warnings: &mut Vec<Rejection>,
) -> Option<String> {
    let fields = c.custom.as_ref().map(|f| &f.fields);
    let (raw, address_country, source) = ctx.settings.phone_sources.iter().find_map(|src| {
        let (raw, country) = match src {
            PhoneSource::Custom(f) => (
                fields.and_then(|fs| fs.get(f)).and_then(Value::as_str),
                shipping.or(billing).map(|a| a.country.as_str()),
            ),
            PhoneSource::Address { address, mobile } => {
                let a = match address {
                    AddressKind::Shipping => shipping,
                    AddressKind::Billing => billing,
                }?;
                let raw = if *mobile { &a.mobile } else { &a.phone };
                (raw.as_deref(), Some(a.country.as_str()))
            }
        };
        let raw = raw.filter(|r| !r.trim().is_empty())?;
        Some((raw, country, src))
    })?;
    let mut countries: Vec<CountryCode> = Vec::with_capacity(2);
    if let Some(c) = address_country.and_then(CountryCode::parse) {
        countries.push(c);
    }
    if let Some(c) = ctx.store_country.filter(|c| !countries.contains(c)) {
        countries.push(c.clone());
    }
    match PhoneE164::parse(raw, &countries) {
        Ok(p) => Some(p.as_str().to_owned()),
        Err(e) => {
            warnings.push(Rejection::new(
                CUSTOMER,
                &c.id,
                "phone",
                format!(
                    "{} (from {}); phone dropped, email still sent",
                    e,
                    source.describe()
                ),
            ));
            None
        }
    }
}

fn address_profile(a: Option<&Address>) -> Profile {
    let Some(a) = a else {
        return Profile::default();
    };
    let street = [a.street_name.as_deref(), a.street_number.as_deref()]
        .into_iter()
        .flatten()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    let street = [Some(street.as_str()), a.additional_street_info.as_deref()]
        .into_iter()
        .flatten()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(", ");
    Profile {
        first_name: clean(a.first_name.as_deref(), limits::NAME),
        last_name: clean(a.last_name.as_deref(), limits::NAME),
        address: clean(Some(&street), limits::ADDRESS),
        city: clean(a.city.as_deref(), limits::CITY),
        state: clean(a.state.as_deref().or(a.region.as_deref()), limits::CITY),
        postal_code: clean(a.postal_code.as_deref(), limits::POSTAL_CODE),
        country_code: CountryCode::parse(&a.country).map(|c| c.as_str().to_owned()),
        birthdate: None,
        gender: None,
    }
}

fn clean(s: Option<&str>, max: usize) -> Option<String> {
    let s = s?.trim();
    (!s.is_empty()).then(|| truncate_chars(s, max))
}

fn is_iso_date(s: &str) -> bool {
    time::Date::parse(s, time::macros::format_description!("[year]-[month]-[day]")).is_ok()
}

fn gender(v: &str) -> Option<String> {
    match v.trim().to_lowercase().as_str() {
        "m" | "male" | "man" | "mr" => Some("m".into()),
        "f" | "female" | "woman" | "mrs" | "ms" => Some("f".into()),
        _ => None,
    }
}

/// Scalars and arrays of scalars become properties; references, money and localized values
/// (objects) are not sent.
fn property_value(v: &Value) -> Option<Value> {
    match v {
        Value::String(_) | Value::Number(_) | Value::Bool(_) => Some(v.clone()),
        Value::Array(a) if a.iter().all(|x| !x.is_object() && !x.is_array()) => Some(v.clone()),
        _ => None,
    }
}

fn statement(
    fields: Option<&serde_json::Map<String, Value>>,
    cfg: &ChannelConsentSettings,
) -> Option<Statement> {
    let fields = fields?;
    let raw = fields.get(cfg.field.as_deref()?)?;
    let granted = match raw {
        Value::Bool(b) => *b,
        Value::String(s) => {
            let s = s.trim().to_lowercase();
            if cfg.granted_values.contains(&s) {
                true
            } else if cfg.revoked_values.contains(&s) {
                false
            } else {
                return None;
            }
        }
        // An enum field holds its key; a localized enum `{key, label}`.
        Value::Object(o) => {
            let s = o.get("key")?.as_str()?.trim().to_lowercase();
            if cfg.granted_values.contains(&s) {
                true
            } else if cfg.revoked_values.contains(&s) {
                false
            } else {
                return None;
            }
        }
        _ => return None,
    };
    let text = |f: &Option<String>| {
        f.as_deref()
            .and_then(|f| fields.get(f))
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    Some(Statement {
        granted,
        at: text(&cfg.date_field).and_then(|s| consent_date(&s)),
        source: text(&cfg.source_field),
        double_opt_in: cfg
            .double_opt_in_field
            .as_deref()
            .and_then(|f| fields.get(f))
            .and_then(Value::as_bool),
        ip: text(&cfg.ip_field),
        user_agent: text(&cfg.user_agent_field),
    })
}

/// A DateTime field (RFC 3339) or a Date field (`YYYY-MM-DD`, read as midnight UTC).
fn consent_date(s: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s, &Rfc3339).ok().or_else(|| {
        time::Date::parse(s, time::macros::format_description!("[year]-[month]-[day]"))
            .ok()
            .map(|d| d.midnight().assume_utc())
    })
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.to_offset(time::UtcOffset::UTC)
        .replace_nanosecond(0)
        .unwrap_or(t)
        .format(&Rfc3339)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RawContacts;
    use time::macros::datetime;

    fn granted_member() -> MemberFacts {
        MemberFacts {
            member_id: "c1".into(),
            kind: MemberKind::Customer,
            email: Some("jane@example.com".into()),
            phone: None,
            created_at: datetime!(2025-01-01 0:00 UTC),
            modified_at: datetime!(2026-01-01 0:00 UTC),
            profile: Profile {
                country_code: Some("GB".into()),
                ..Profile::default()
            },
            email_consent: Some(Statement {
                granted: true,
                at: Some(datetime!(2026-01-01 0:00 UTC)),
                source: None,
                double_opt_in: None,
                ip: None,
                user_agent: None,
            }),
            sms_consent: None,
            tags: BTreeSet::new(),
            properties: BTreeMap::new(),
        }
    }

    fn welcome(settings: &ContactsSettings, backfill: bool) -> Option<bool> {
        let (merged, _) = merge(
            &[granted_member()],
            PrimaryIdentifier::Email,
            settings,
            backfill,
            |_| Ownership::Ours,
        )
        .unwrap();
        assert_eq!(
            merged.body.identifiers[0].channels["email"].status,
            WireStatus::Subscribed
        );
        merged.body.identifiers[0].send_welcome_message
    }

    #[test]
    fn the_welcome_workflow_runs_only_for_real_time_subscribers_when_configured() {
        let off = ContactsSettings::default();
        let on = ContactsSettings::from_raw(RawContacts {
            welcome_realtime_subscribers: Some(true),
            ..RawContacts::default()
        })
        .unwrap();
        assert_eq!(welcome(&off, true), Some(false));
        assert_eq!(welcome(&off, false), Some(false));
        assert_eq!(welcome(&on, true), Some(false), "never for a sync");
        assert_eq!(welcome(&on, false), Some(true));
    }
}
