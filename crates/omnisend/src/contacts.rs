//! Contact request bodies (`ContactRequest`, API version 2026-03-15) and the documented limits
//! the connector applies before sending (the events spec's `contactDto` gives the lengths; the
//! contacts spec gives none, so the stricter ones are used for both).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Field limits applied to contact bodies.
pub mod limits {
    /// `firstName`, `lastName`.
    pub const NAME: usize = 50;
    /// `address`.
    pub const ADDRESS: usize = 500;
    /// `city`, `state`.
    pub const CITY: usize = 100;
    /// `postalCode`.
    pub const POSTAL_CODE: usize = 20;
    /// Items of `tags`.
    pub const TAGS: usize = 100;
    /// Consent `source`.
    pub const CONSENT_SOURCE: usize = 100;
    /// Consent `userAgent`.
    pub const USER_AGENT: usize = 200;
}

/// Identifier type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IdentifierType {
    /// An email address (channel `email`).
    Email,
    /// An E.164 phone number (channel `sms`).
    Phone,
}

/// A channel status as Omnisend names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ChannelStatus {
    /// `subscribed`.
    Subscribed,
    /// `nonSubscribed`.
    NonSubscribed,
    /// `unsubscribed`.
    Unsubscribed,
}

/// `ContactChannelRequest`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChannelRequest {
    /// Status.
    pub status: ChannelStatus,
    /// When the status last changed (RFC 3339); an older time than Omnisend holds is ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_changed_at: Option<String>,
}

/// `ContactConsentRequest`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsentRequest {
    /// When consent was collected (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    /// IP address at the time of consent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    /// Where consent was collected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// User agent at the time of consent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
}

/// `ContactIdentifierRequest`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IdentifierRequest {
    /// `email` or `phone`.
    #[serde(rename = "type")]
    pub kind: IdentifierType,
    /// The email address or E.164 number.
    pub id: String,
    /// Channel statuses keyed by channel (`email` or `sms`); empty = keep what Omnisend holds.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub channels: BTreeMap<String, ChannelRequest>,
    /// Consent evidence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consent: Option<ConsentRequest>,
    /// Whether Omnisend's welcome workflow may run for this identifier (it defaults to true, so
    /// the connector always sends it explicitly).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub send_welcome_message: Option<bool>,
    /// Source label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

/// `ContactRequest`: the body of `POST /contacts` and of a contacts batch item.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContactRequest {
    /// Email and/or phone identifiers.
    pub identifiers: Vec<IdentifierRequest>,
    /// First name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    /// Last name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
    /// Street, house number, apartment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// City.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
    /// State or region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// Postal code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postal_code: Option<String>,
    /// ISO 3166-1 alpha-2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country_code: Option<String>,
    /// `YYYY-MM-DD`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub birthdate: Option<String>,
    /// `m` or `f`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gender: Option<String>,
    /// Tags.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Custom properties.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub custom_properties: BTreeMap<String, serde_json::Value>,
    /// When the contact was created at the source (stored as `externalCreated`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
}

impl ContactRequest {
    /// The identifier of a type, when present.
    pub fn identifier(&self, kind: IdentifierType) -> Option<&IdentifierRequest> {
        self.identifiers.iter().find(|i| i.kind == kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_contact_serializes_with_the_documented_field_names_and_omits_empty_ones() {
        let mut channels = BTreeMap::new();
        channels.insert(
            "email".to_owned(),
            ChannelRequest {
                status: ChannelStatus::NonSubscribed,
                status_changed_at: Some("2026-01-01T00:00:00Z".into()),
            },
        );
        let c = ContactRequest {
            identifiers: vec![IdentifierRequest {
                kind: IdentifierType::Email,
                id: "jane@example.com".into(),
                channels,
                consent: None,
                send_welcome_message: Some(false),
                source: None,
            }],
            postal_code: Some("10115".into()),
            ..Default::default()
        };
        let v = serde_json::to_value(&c).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "identifiers": [{
                    "type": "email", "id": "jane@example.com",
                    "channels": {"email": {"status": "nonSubscribed",
                                           "statusChangedAt": "2026-01-01T00:00:00Z"}},
                    "sendWelcomeMessage": false
                }],
                "postalCode": "10115"
            })
        );
        assert_eq!(
            c.identifier(IdentifierType::Email).map(|i| i.id.as_str()),
            Some("jane@example.com")
        );
        assert!(c.identifier(IdentifierType::Phone).is_none());
    }
}
