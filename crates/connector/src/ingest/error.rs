//! Why a webhook body was refused, and what the HTTP handler answers for it.

use super::MAX_BODY;

/// Why [`parse`](super::parse) refused a body.
///
/// Two classes, told apart by [`IngestError::is_permanent`]:
///
/// * **Malformed** ([`TooLarge`](Self::TooLarge), [`NotJson`](Self::NotJson),
///   [`BadBase64`](Self::BadBase64), [`BadEnvelope`](Self::BadEnvelope)): the body is not a
///   notification at all. The handler answers [`status`](Self::status) (413 or 400) and stores
///   nothing; the sender is at fault.
/// * **Well-formed but unprocessable** ([`UnknownNotificationType`](Self::UnknownNotificationType)):
///   a valid envelope carrying something this connector can never process. Redelivery cannot
///   help, and Pub/Sub redelivers every non-2xx answer for 7 days, so the handler stores a
///   rejected record (with [`delivery_id`](Self::delivery_id) for dedup) and answers 202.
///
/// Every message names the field at fault by its JSON path in the received body, e.g.
/// `message.data.resource.id` for a Platform payload inside a Pub/Sub envelope. Messages quote
/// no field value except an unrecognised notification type, so they are safe to log and store.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IngestError {
    /// The body is longer than [`MAX_BODY`]; it was not looked at.
    #[error("malformed: body is {len} bytes, over the {MAX_BODY}-byte limit")]
    TooLarge {
        /// Length of the refused body in bytes.
        len: usize,
    },
    /// The body, or the decoded `message.data` of a Pub/Sub envelope, is not JSON.
    #[error("malformed: {location} is not JSON: {detail}")]
    NotJson {
        /// `body` or `message.data`.
        location: &'static str,
        /// The JSON parser's reason, with line and column.
        detail: String,
    },
    /// `message.data` of a Pub/Sub envelope is not base64 (standard or URL-safe).
    #[error("malformed: message.data is not base64: {detail}")]
    BadBase64 {
        /// The decoder's reason.
        detail: String,
    },
    /// JSON, but a field is missing, has the wrong type or an impossible value.
    #[error("malformed envelope: {field}: {reason}")]
    BadEnvelope {
        /// JSON path of the field at fault (`body` for the document itself).
        field: String,
        /// What is wrong with it, e.g. `missing`, `expected an integer`.
        reason: String,
    },
    /// A well-formed envelope whose `notificationType` (Platform) or `type` (CloudEvents) is not
    /// one this connector processes (e.g. the beta `Event` payloads, or a CloudEvent from another
    /// producer). Permanent: answer 2xx and store a rejected record.
    #[error(
        "well-formed but unprocessable: unknown notification type `{notification_type}` \
         (expected Message, ResourceCreated, ResourceUpdated or ResourceDeleted)"
    )]
    UnknownNotificationType {
        /// The type as received.
        notification_type: String,
        /// The delivery id when the envelope had one (Pub/Sub message id, CloudEvents id, or
        /// the payload's `id`), so a redelivery maps to the same rejected record.
        delivery_id: Option<String>,
    },
}

impl IngestError {
    /// The HTTP status the webhook answers with.
    ///
    /// * 413 Payload Too Large: [`TooLarge`](Self::TooLarge).
    /// * 400 Bad Request: every other malformed body (not JSON, bad base64, missing or
    ///   mistyped field). 422 is not used: "well-formed JSON with a bad field" is still a
    ///   malformed envelope here, and one status for all malformed input keeps the contract
    ///   simple.
    /// * 202 Accepted: well-formed but unprocessable ([`is_permanent`](Self::is_permanent)),
    ///   because the handler records the rejection durably and must stop Pub/Sub redelivering.
    ///   If storing the rejected record fails, the handler answers 503 instead (its business,
    ///   not this parser's).
    pub fn status(&self) -> u16 {
        match self {
            Self::TooLarge { .. } => 413,
            Self::NotJson { .. } | Self::BadBase64 { .. } | Self::BadEnvelope { .. } => 400,
            Self::UnknownNotificationType { .. } => 202,
        }
    }

    /// `true` for a well-formed notification that can never be processed (answer 2xx and store
    /// a rejected record); `false` for a malformed body (answer 4xx, store nothing).
    pub fn is_permanent(&self) -> bool {
        matches!(self, Self::UnknownNotificationType { .. })
    }

    /// `true` when the body is not a notification at all: the opposite of
    /// [`is_permanent`](Self::is_permanent).
    pub fn is_malformed(&self) -> bool {
        !self.is_permanent()
    }

    /// JSON path of the field at fault, when one field is: `message.data` for bad base64 or an
    /// inner document that is not JSON, the field for a bad envelope.
    pub fn field(&self) -> Option<&str> {
        match self {
            Self::BadEnvelope { field, .. } => Some(field),
            Self::BadBase64 { .. } => Some("message.data"),
            Self::NotJson { location, .. } if *location != "body" => Some(location),
            _ => None,
        }
    }

    /// The delivery id of a permanent error's notification, when known.
    pub fn delivery_id(&self) -> Option<&str> {
        match self {
            Self::UnknownNotificationType { delivery_id, .. } => delivery_id.as_deref(),
            _ => None,
        }
    }

    pub(crate) fn field_error(field: String, reason: impl Into<String>) -> Self {
        Self::BadEnvelope {
            field,
            reason: reason.into(),
        }
    }
}
