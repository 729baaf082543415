//! Marketing consent: the policy as data, the decision as a pure function.
//!
//! The product rule this module enforces (`docs/PRODUCT.md`, "Rules that no shortcut may
//! break"): a channel is `subscribed` only with explicit evidence; an explicit opt-out is
//! `unsubscribed`; no evidence means no status is sent at all (Omnisend keeps what it has);
//! bulk and backfill never upgrade anyone; country rules can only make a status stricter.
//!
//! [`decide`] is the only place a channel status is chosen. It has three outcomes:
//!
//! | evidence                                   | outcome                      |
//! |--------------------------------------------|------------------------------|
//! | [`ConsentValue::Revoked`]                  | `Some(Unsubscribed)`, always |
//! | [`ConsentValue::Unknown`]                  | `None` (send no status)      |
//! | [`ConsentValue::Granted`], every check met | `Some(Subscribed)`           |
//! | [`ConsentValue::Granted`], any check unmet | `None` (send no status)      |
//!
//! A withheld grant becomes `None`, not `Unsubscribed`: the customer did say yes, we only lack
//! the proof a rule asks for, and writing `unsubscribed` would overwrite a valid subscription
//! Omnisend may already hold (for example from its own double-opt-in form).
//!
//! Pure: no I/O, no clock, no global configuration.

use std::fmt;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::config::CountryCode;

/// The status sent for one channel. Omnisend's third status, `nonSubscribed`, is never sent by
/// the connector: "no evidence" is expressed by sending no status at all.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChannelStatus {
    /// `subscribed`.
    Subscribed,
    /// `unsubscribed`.
    Unsubscribed,
}

/// A marketing channel; `email` belongs to the email identifier, `sms` to the phone identifier.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    /// `email`.
    Email,
    /// `sms`.
    Sms,
}

impl Channel {
    /// `email` or `sms`, as Omnisend names the channel.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Email => "email",
            Self::Sms => "sms",
        }
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the source data says about one channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConsentValue {
    /// An explicit yes (e.g. a consent field set to `true`).
    Granted,
    /// An explicit no (e.g. a consent field set to `false`, an opt-out value).
    Revoked,
    /// No statement: the field is absent, empty or holds a value the mapping does not know.
    Unknown,
}

/// One channel's consent as read from the source record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsentEvidence {
    /// The statement.
    pub value: ConsentValue,
    /// When the statement was made (the configured date field), if known. Becomes
    /// `statusChangedAt`.
    pub at: Option<OffsetDateTime>,
    /// Where it was made (the configured source field), if known.
    pub source: Option<String>,
    /// The double-opt-in confirmation field: `Some(true)` confirmed, `Some(false)` explicitly not
    /// (yet) confirmed, `None` no such field or no value.
    pub double_opt_in_confirmed: Option<bool>,
}

impl ConsentEvidence {
    /// No statement at all.
    pub fn unknown() -> Self {
        Self {
            value: ConsentValue::Unknown,
            at: None,
            source: None,
            double_opt_in_confirmed: None,
        }
    }
}

/// Which countries a [`CountryRule`] covers.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum CountryScope {
    /// Every country, and contacts whose country is unknown (`*` in configuration).
    Any,
    /// One country.
    Only(CountryCode),
}

impl CountryScope {
    /// `*` or an ISO 3166-1 alpha-2 code (any case).
    pub fn parse(s: &str) -> Option<Self> {
        if s == "*" {
            Some(Self::Any)
        } else {
            CountryCode::parse(s).map(Self::Only)
        }
    }

    /// Whether a contact in `country` falls under this scope.
    ///
    /// A contact whose country is unknown falls under **every** scope: it may live in the
    /// strictest country of the table, and guessing otherwise could subscribe a German customer
    /// without double opt-in. Callers pass the address country, else the store country, so this
    /// applies only when neither is known.
    pub fn covers(&self, country: Option<&CountryCode>) -> bool {
        match (self, country) {
            (Self::Any, _) | (Self::Only(_), None) => true,
            (Self::Only(c), Some(country)) => c == country,
        }
    }
}

impl fmt::Display for CountryScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Any => f.write_str("*"),
            Self::Only(c) => f.write_str(c.as_str()),
        }
    }
}

/// One row of the per-country table. A rule only ever adds requirements a grant must meet to
/// become `subscribed`; it cannot grant, cannot block an opt-out and cannot turn "no evidence"
/// into a status. That is why rules can only make an outcome stricter.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CountryRule {
    /// Countries covered (see [`CountryScope::covers`]).
    pub country: CountryScope,
    /// Channel covered.
    pub channel: Channel,
    /// A grant counts only when the double-opt-in confirmation is present and true
    /// (`double_opt_in_confirmed == Some(true)`).
    ///
    /// Why: in Germany, Austria and Switzerland courts treat a single opt-in as unproven
    /// consent (the burden of proof is on the sender, and the confirmation click is the accepted
    /// proof); a merchant selling there needs the confirmation before any campaign.
    pub requires_double_opt_in: bool,
    /// A grant counts only as a dated opt-in *record*: the evidence must carry the moment of
    /// consent (`at` is `Some`). A bare flag with no date is treated as "no evidence".
    ///
    /// Why: for SMS (TCPA in the US, PECR in the UK, national rules across the EU) consent must
    /// be an affirmative act the sender can point to; a boolean with no date may have been
    /// defaulted, imported or pre-ticked, and without the date the status would also be sent
    /// as changed "now" and could overwrite a later opt-out Omnisend holds.
    pub opt_in_only: bool,
}

impl CountryRule {
    /// Whether this rule applies to `channel` for a contact in `country`.
    pub fn applies(&self, channel: Channel, country: Option<&CountryCode>) -> bool {
        self.channel == channel && self.country.covers(country)
    }

    /// Whether a grant backed by `evidence` meets this rule.
    pub fn is_met_by(&self, evidence: &ConsentEvidence) -> bool {
        (!self.requires_double_opt_in || evidence.double_opt_in_confirmed == Some(true))
            && (!self.opt_in_only || evidence.at.is_some())
    }
}

/// The per-country rule table. Every rule that applies must be met (rules combine with AND),
/// so the order of the rules does not matter and adding a rule never loosens anything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConsentPolicy {
    /// The rules.
    pub rules: Vec<CountryRule>,
}

impl ConsentPolicy {
    /// No country rules: only the base checks of [`decide`] apply.
    pub fn none() -> Self {
        Self::default()
    }

    /// The table that ships when configuration names none:
    ///
    /// | country | channel | double opt-in | opt-in only | reason                              |
    /// |---------|---------|---------------|-------------|-------------------------------------|
    /// | `DE`    | email   | yes           | no          | single opt-in is not proof in court |
    /// | `AT`    | email   | yes           | no          | same practice as Germany            |
    /// | `CH`    | email   | yes           | no          | same practice as Germany            |
    /// | `*`     | sms     | no            | yes         | SMS needs a dated, explicit opt-in  |
    ///
    /// With an unknown country every row applies (see [`CountryScope::covers`]).
    pub fn conservative_default() -> Self {
        let doi_email = |c: &str| CountryRule {
            country: CountryScope::parse(c).expect("a valid country code"),
            channel: Channel::Email,
            requires_double_opt_in: true,
            opt_in_only: false,
        };
        Self {
            rules: vec![
                doi_email("DE"),
                doi_email("AT"),
                doi_email("CH"),
                CountryRule {
                    country: CountryScope::Any,
                    channel: Channel::Sms,
                    requires_double_opt_in: false,
                    opt_in_only: true,
                },
            ],
        }
    }

    /// The rules that apply to `channel` for a contact in `country`.
    pub fn applicable(
        &self,
        channel: Channel,
        country: Option<&CountryCode>,
    ) -> impl Iterator<Item = &CountryRule> {
        self.rules
            .iter()
            .filter(move |r| r.applies(channel, country))
    }
}

/// Chooses the status to send for one channel, or `None` to send no status.
///
/// - [`ConsentValue::Revoked`] → `Unsubscribed`, whatever the rules and the mode: an opt-out is
///   always honoured.
/// - [`ConsentValue::Unknown`] → `None`: no evidence, so Omnisend keeps what it has (this is the
///   rule peer connectors break by subscribing everyone on first sync).
/// - [`ConsentValue::Granted`] → `Subscribed` only when every check below holds, else `None`:
///   1. the evidence does not say the double opt-in is explicitly unconfirmed
///      (`double_opt_in_confirmed != Some(false)`): the merchant's own process says consent is
///      still pending, whatever the country;
///   2. in a backfill (`backfill = true`), the evidence is dated (`at` is `Some`): a backfill
///      must not upgrade anyone, and Omnisend ignores a status whose `statusChangedAt` is older
///      than the one it holds, so a dated grant cannot override a later opt-out made in
///      Omnisend, while an undated one would be stamped "now" and would;
///   3. every rule of `policy` that applies to `channel` and `country` is met
///      ([`CountryRule::is_met_by`]).
///
/// `country` is the contact's country (address country, else store country).
pub fn decide(
    evidence: &ConsentEvidence,
    channel: Channel,
    country: Option<&CountryCode>,
    policy: &ConsentPolicy,
    backfill: bool,
) -> Option<ChannelStatus> {
    match evidence.value {
        ConsentValue::Revoked => Some(ChannelStatus::Unsubscribed),
        ConsentValue::Unknown => None,
        ConsentValue::Granted => {
            let pending = evidence.double_opt_in_confirmed == Some(false);
            let undated_backfill = backfill && evidence.at.is_none();
            let rules_met = policy
                .applicable(channel, country)
                .all(|rule| rule.is_met_by(evidence));
            (!pending && !undated_backfill && rules_met).then_some(ChannelStatus::Subscribed)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use time::macros::datetime;

    fn cc(s: &str) -> CountryCode {
        CountryCode::parse(s).unwrap()
    }

    fn granted() -> ConsentEvidence {
        ConsentEvidence {
            value: ConsentValue::Granted,
            at: Some(datetime!(2026-01-01 10:00 UTC)),
            source: Some("checkout".into()),
            double_opt_in_confirmed: None,
        }
    }

    fn decide_default(
        e: &ConsentEvidence,
        channel: Channel,
        country: Option<&str>,
        backfill: bool,
    ) -> Option<ChannelStatus> {
        let country = country.map(cc);
        decide(
            e,
            channel,
            country.as_ref(),
            &ConsentPolicy::conservative_default(),
            backfill,
        )
    }

    #[test]
    fn statuses_and_channels_serialize_lower_case() {
        assert_eq!(
            serde_json::to_string(&ChannelStatus::Subscribed).unwrap(),
            "\"subscribed\""
        );
        assert_eq!(
            serde_json::to_string(&ChannelStatus::Unsubscribed).unwrap(),
            "\"unsubscribed\""
        );
        assert_eq!(serde_json::to_string(&Channel::Sms).unwrap(), "\"sms\"");
        assert_eq!(
            serde_json::from_str::<Channel>("\"email\"").unwrap(),
            Channel::Email
        );
    }

    #[test]
    fn no_evidence_sends_no_status() {
        for channel in [Channel::Email, Channel::Sms] {
            for backfill in [false, true] {
                assert_eq!(
                    decide_default(&ConsentEvidence::unknown(), channel, Some("GB"), backfill),
                    None
                );
            }
        }
    }

    #[test]
    fn an_opt_out_is_unsubscribed_in_every_country_and_mode() {
        let revoked = ConsentEvidence {
            value: ConsentValue::Revoked,
            at: None,
            source: None,
            double_opt_in_confirmed: Some(false),
        };
        for country in [Some("DE"), Some("US"), None] {
            for channel in [Channel::Email, Channel::Sms] {
                assert_eq!(
                    decide_default(&revoked, channel, country, true),
                    Some(ChannelStatus::Unsubscribed)
                );
            }
        }
    }

    #[test]
    fn an_explicit_email_grant_subscribes_outside_double_opt_in_countries() {
        for country in ["GB", "US", "FR"] {
            assert_eq!(
                decide_default(&granted(), Channel::Email, Some(country), false),
                Some(ChannelStatus::Subscribed),
                "{country}"
            );
        }
    }

    #[test]
    fn german_austrian_and_swiss_email_needs_the_double_opt_in_confirmation() {
        let confirmed = ConsentEvidence {
            double_opt_in_confirmed: Some(true),
            ..granted()
        };
        for country in ["DE", "AT", "CH"] {
            assert_eq!(
                decide_default(&granted(), Channel::Email, Some(country), false),
                None,
                "{country}"
            );
            assert_eq!(
                decide_default(&confirmed, Channel::Email, Some(country), false),
                Some(ChannelStatus::Subscribed),
                "{country}"
            );
        }
    }

    #[test]
    fn sms_needs_a_dated_opt_in_in_every_country() {
        let undated = ConsentEvidence {
            at: None,
            ..granted()
        };
        for country in [Some("US"), Some("GB"), Some("DE"), None] {
            assert_eq!(decide_default(&undated, Channel::Sms, country, false), None);
            assert_eq!(
                decide_default(&granted(), Channel::Sms, country, false),
                Some(ChannelStatus::Subscribed)
            );
        }
    }

    #[test]
    fn an_unknown_country_gets_the_strictest_rules_of_the_table() {
        assert_eq!(
            decide_default(&granted(), Channel::Email, None, false),
            None
        );
        let confirmed = ConsentEvidence {
            double_opt_in_confirmed: Some(true),
            ..granted()
        };
        assert_eq!(
            decide_default(&confirmed, Channel::Email, None, false),
            Some(ChannelStatus::Subscribed)
        );
    }

    #[test]
    fn a_pending_double_opt_in_never_subscribes_even_without_rules() {
        let pending = ConsentEvidence {
            double_opt_in_confirmed: Some(false),
            ..granted()
        };
        assert_eq!(
            decide(
                &pending,
                Channel::Email,
                Some(&cc("US")),
                &ConsentPolicy::none(),
                false
            ),
            None
        );
    }

    #[test]
    fn a_backfill_subscribes_only_with_a_dated_grant() {
        let undated = ConsentEvidence {
            at: None,
            ..granted()
        };
        let us = cc("US");
        let none = ConsentPolicy::none();
        assert_eq!(
            decide(&undated, Channel::Email, Some(&us), &none, true),
            None
        );
        assert_eq!(
            decide(&undated, Channel::Email, Some(&us), &none, false),
            Some(ChannelStatus::Subscribed)
        );
        assert_eq!(
            decide(&granted(), Channel::Email, Some(&us), &none, true),
            Some(ChannelStatus::Subscribed)
        );
    }

    #[test]
    fn a_rule_for_another_channel_or_country_does_not_apply() {
        let rule = CountryRule {
            country: CountryScope::parse("de").unwrap(),
            channel: Channel::Email,
            requires_double_opt_in: true,
            opt_in_only: true,
        };
        assert!(rule.applies(Channel::Email, Some(&cc("DE"))));
        assert!(!rule.applies(Channel::Sms, Some(&cc("DE"))));
        assert!(!rule.applies(Channel::Email, Some(&cc("FR"))));
        assert!(rule.applies(Channel::Email, None));
    }

    #[test]
    fn country_scopes_parse_star_and_alpha_2_codes_only() {
        assert_eq!(CountryScope::parse("*"), Some(CountryScope::Any));
        assert_eq!(CountryScope::parse("de").unwrap().to_string(), "DE");
        assert_eq!(CountryScope::parse("DEU"), None);
        assert_eq!(CountryScope::parse(""), None);
    }

    fn arb_country() -> impl Strategy<Value = Option<CountryCode>> {
        proptest::option::of(
            prop::sample::select(vec!["DE", "AT", "CH", "GB", "US", "FR"]).prop_map(cc),
        )
    }

    fn arb_channel() -> impl Strategy<Value = Channel> {
        prop_oneof![Just(Channel::Email), Just(Channel::Sms)]
    }

    fn arb_evidence() -> impl Strategy<Value = ConsentEvidence> {
        (
            prop_oneof![
                Just(ConsentValue::Granted),
                Just(ConsentValue::Revoked),
                Just(ConsentValue::Unknown)
            ],
            proptest::option::of(0i64..2_000_000_000),
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
    }

    fn arb_rule() -> impl Strategy<Value = CountryRule> {
        (
            prop_oneof![
                Just(CountryScope::Any),
                arb_country().prop_filter_map("a country", |c| c.map(CountryScope::Only)),
            ],
            arb_channel(),
            any::<bool>(),
            any::<bool>(),
        )
            .prop_map(|(country, channel, requires_double_opt_in, opt_in_only)| {
                CountryRule {
                    country,
                    channel,
                    requires_double_opt_in,
                    opt_in_only,
                }
            })
    }

    fn arb_policy() -> impl Strategy<Value = ConsentPolicy> {
        prop_oneof![
            Just(ConsentPolicy::conservative_default()),
            proptest::collection::vec(arb_rule(), 0..6).prop_map(|rules| ConsentPolicy { rules }),
        ]
    }

    proptest! {
        #[test]
        fn never_subscribed_without_an_explicit_grant(
            evidence in arb_evidence(),
            channel in arb_channel(),
            country in arb_country(),
            policy in arb_policy(),
            backfill in any::<bool>(),
        ) {
            let out = decide(&evidence, channel, country.as_ref(), &policy, backfill);
            if out == Some(ChannelStatus::Subscribed) {
                prop_assert_eq!(evidence.value, ConsentValue::Granted);
            }
            match evidence.value {
                ConsentValue::Revoked => prop_assert_eq!(out, Some(ChannelStatus::Unsubscribed)),
                ConsentValue::Unknown => prop_assert_eq!(out, None),
                ConsentValue::Granted => prop_assert_ne!(out, Some(ChannelStatus::Unsubscribed)),
            }
        }

        #[test]
        fn adding_a_rule_only_makes_the_outcome_stricter(
            evidence in arb_evidence(),
            channel in arb_channel(),
            country in arb_country(),
            policy in arb_policy(),
            rule in arb_rule(),
            position in any::<prop::sample::Index>(),
            backfill in any::<bool>(),
        ) {
            let before = decide(&evidence, channel, country.as_ref(), &policy, backfill);
            let mut stricter = policy.clone();
            stricter.rules.insert(position.index(policy.rules.len() + 1), rule);
            let after = decide(&evidence, channel, country.as_ref(), &stricter, backfill);
            prop_assert!(
                after == before || (before == Some(ChannelStatus::Subscribed) && after.is_none()),
                "{:?} became {:?}", before, after
            );
        }

        #[test]
        fn a_backfill_is_never_more_permissive_than_real_time(
            evidence in arb_evidence(),
            channel in arb_channel(),
            country in arb_country(),
            policy in arb_policy(),
        ) {
            let backfill = decide(&evidence, channel, country.as_ref(), &policy, true);
            let real_time = decide(&evidence, channel, country.as_ref(), &policy, false);
            if backfill == Some(ChannelStatus::Subscribed) {
                prop_assert_eq!(real_time, Some(ChannelStatus::Subscribed));
            }
        }
    }
}
