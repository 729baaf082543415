//! Webhook bodies from commercetools, parsed into one normalised [`Notification`].
//!
//! Pure: bytes in, a [`Notification`] or an [`IngestError`] out; no I/O, no clock, no
//! configuration. The HTTP handler authenticates, calls [`parse`], stores the result (or a
//! rejected record) and answers; this module decides only what the body *is*.
//!
//! # Accepted bodies
//!
//! Three wire formats, recognised by their top-level fields (see
//! `../shared/research/commercetools-api.md` §4.2–4.3 and the example payloads in
//! `../shared/examples/commercetools/`):
//!
//! | body has | format | [`Envelope`] |
//! | --- | --- | --- |
//! | `notificationType` | commercetools Platform payload (`Message`, `ResourceCreated`, `ResourceUpdated`, `ResourceDeleted`) | [`Envelope::Platform`] |
//! | `specversion` | CloudEvents 1.0 structured mode; `data` holds a Platform payload | [`Envelope::CloudEvents`] |
//! | `message` | Google Pub/Sub push envelope; `message.data` is base64 of a Platform payload or a CloudEvent | [`Envelope::PubSubPush`] |
//!
//! The checks run in that order, so a Platform message whose own payload happens to have a
//! `message` field is still a Platform payload. A Pub/Sub envelope inside a Pub/Sub envelope is
//! refused.
//!
//! # Delivery id
//!
//! [`Notification::delivery_id`] identifies one *delivery* for the inbox's dedup: the same
//! bytes redelivered give the same id.
//!
//! 1. Pub/Sub push: `message.messageId`, else `message.message_id` (Pub/Sub sets both to the
//!    same value; older documentation shows only the snake-case one). Required.
//! 2. CloudEvents: the event's `id` (for a message subscription commercetools uses the Message
//!    id). Required.
//! 3. Platform `Message`: the Message's `id`.
//! 4. Platform change (`ResourceCreated`/`Updated`/`Deleted`, and the subscription test) carries
//!    no id, so one is derived: `{notificationType}/{projectKey}/{typeId}/{resourceId}/{version}`
//!    (`-` for an absent project key), e.g. `ResourceUpdated/shop/product/7c1…/3`. A resource's
//!    version identifies one change, and the notification type tells a deletion apart from the
//!    update that reached the same version.
//!
//! Pub/Sub may carry one commercetools notification under two message ids (commercetools
//! delivers at least once), so the service must also dedup on (`resource.id`, `sequenceNumber`)
//! for messages and (`resource.id`, `version`) for changes: see
//! [`NotificationKind::sequence_number`] and [`NotificationKind::resource_version`].
//!
//! # The subscription test message
//!
//! When a Subscription is created, commercetools sends one test notification to its
//! destination (research note §4.2: "a **test notification** is sent to the destination on
//! creation \[docs\] (the Connect template skips it by checking `notificationType ==
//! "ResourceCreated"` on typeId `subscription`)"). It is a change payload about the
//! Subscription itself (shape as quoted in a public commercetools how-to guide, values
//! replaced):
//!
//! ```json
//! {"notificationType":"ResourceCreated","projectKey":"<project-key>",
//!  "resource":{"typeId":"subscription","id":"<subscription-id>"},
//!  "resourceUserProvidedIdentifiers":{"key":"<subscription-key>"},
//!  "version":1,"modifiedAt":"2025-04-01T16:07:22.335Z"}
//! ```
//!
//! Every `ResourceCreated` whose `resource.typeId` is `subscription` becomes
//! [`NotificationKind::SubscriptionTest`], in any envelope. The connector never subscribes to
//! changes of Subscriptions, so a genuine "subscription created" change cannot be mistaken for
//! it.
//!
//! # Limits
//!
//! Bodies over [`MAX_BODY`] bytes are refused before any parsing. JSON nesting is bounded by
//! `serde_json`'s recursion limit, so no input can exhaust the stack; no input panics.

mod error;
mod fields;
pub mod oidc;
pub mod webhook;

use std::borrow::Cow;
use std::collections::BTreeMap;

use base64::Engine as _;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use serde_json::{Map, Value};
use time::OffsetDateTime;

pub use error::IngestError;
use fields::{Obj, join};

/// Largest body accepted, in bytes (1 MiB). Longer bodies fail with [`IngestError::TooLarge`].
pub const MAX_BODY: usize = 1 << 20;

/// Which wire format a webhook body arrived in (the outermost one).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Envelope {
    /// A Google Pub/Sub push envelope; see [`Notification::format`] for what it carried.
    PubSubPush,
    /// A bare commercetools Platform payload.
    Platform,
    /// A bare CloudEvents 1.0 structured-mode event.
    CloudEvents,
}

impl Envelope {
    /// `pubsub-push`, `platform` or `cloudevents`: stable, for records and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PubSubPush => "pubsub-push",
            Self::Platform => "platform",
            Self::CloudEvents => "cloudevents",
        }
    }
}

/// The commercetools subscription format the notification itself is in (what was inside a
/// Pub/Sub envelope, or the body itself).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PayloadFormat {
    /// `{"type":"Platform"}`, the default.
    Platform,
    /// `{"type":"CloudEvents","cloudEventsVersion":"1.0"}`.
    CloudEvents,
}

/// The resource a notification is about.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ResourceRef {
    /// `resource.typeId`, e.g. `order`, `cart`, `product`, `customer`.
    pub type_id: String,
    /// `resource.id`.
    pub id: String,
    /// `resourceUserProvidedIdentifiers.key`, when the resource has a key.
    pub key: Option<String>,
}

/// What the push envelope said, beyond its payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PubSubInfo {
    /// `message.messageId` (or `message.message_id`).
    pub message_id: String,
    /// `subscription`, e.g. `projects/<gcp>/subscriptions/<sub>`.
    pub subscription: Option<String>,
    /// `message.publishTime` (or `message.publish_time`).
    pub publish_time: Option<OffsetDateTime>,
    /// `message.attributes`.
    pub attributes: BTreeMap<String, String>,
}

/// What happened.
#[derive(Clone, Debug, PartialEq)]
pub enum NotificationKind {
    /// A Message (`notificationType: "Message"`) from a message subscription.
    Message {
        /// The Message type, e.g. `OrderCreated`; for a payload that was not included, its
        /// `payloadNotIncluded.payloadType`.
        message_type: String,
        /// `sequenceNumber`: per resource, consecutive; orders the messages of one resource.
        sequence_number: i64,
        /// `resourceVersion`: the resource's version after the change.
        resource_version: i64,
        /// The Message's `id` (also its CloudEvents `id`).
        message_id: String,
        /// The whole Message as received, type-specific fields included (e.g. `order` of
        /// `OrderCreated`). For CloudEvents, the event's `data`.
        payload: Value,
        /// `false` when commercetools left the payload out (`payloadNotIncluded`, e.g. too
        /// large for the queue): fetch the resource by [`ResourceRef::id`] instead.
        payload_included: bool,
    },
    /// A change subscription saw the resource created.
    ResourceCreated {
        /// `version` of the new resource.
        version: i64,
        /// `modifiedAt`.
        modified_at: Option<OffsetDateTime>,
    },
    /// A change subscription saw the resource updated.
    ResourceUpdated {
        /// `version` after the update.
        version: i64,
        /// `oldVersion`, the version before it.
        old_version: Option<i64>,
        /// `modifiedAt`.
        modified_at: Option<OffsetDateTime>,
    },
    /// A change subscription saw the resource deleted.
    ResourceDeleted {
        /// `version`, the last version seen.
        version: i64,
        /// `modifiedAt`.
        modified_at: Option<OffsetDateTime>,
        /// `dataErasure`: the deletion asked for personal data to be erased.
        data_erasure: bool,
    },
    /// The test notification commercetools sends when a Subscription is created (see the
    /// [module documentation](self#the-subscription-test-message)). Acknowledge and ignore.
    SubscriptionTest,
}

impl NotificationKind {
    /// The Message type (`OrderCreated`…), `ResourceCreated`/`ResourceUpdated`/
    /// `ResourceDeleted`, or `SubscriptionTest`.
    pub fn name(&self) -> &str {
        match self {
            Self::Message { message_type, .. } => message_type,
            Self::ResourceCreated { .. } => "ResourceCreated",
            Self::ResourceUpdated { .. } => "ResourceUpdated",
            Self::ResourceDeleted { .. } => "ResourceDeleted",
            Self::SubscriptionTest => "SubscriptionTest",
        }
    }

    /// The version of the resource this notification reflects: a Message's `resourceVersion`,
    /// a change's `version`. `None` for the subscription test.
    pub fn resource_version(&self) -> Option<i64> {
        match self {
            Self::Message {
                resource_version, ..
            } => Some(*resource_version),
            Self::ResourceCreated { version, .. }
            | Self::ResourceUpdated { version, .. }
            | Self::ResourceDeleted { version, .. } => Some(*version),
            Self::SubscriptionTest => None,
        }
    }

    /// A Message's `sequenceNumber`; `None` for changes.
    pub fn sequence_number(&self) -> Option<i64> {
        match self {
            Self::Message {
                sequence_number, ..
            } => Some(*sequence_number),
            _ => None,
        }
    }
}

/// A change notification, normalised across the three envelopes.
#[derive(Clone, Debug, PartialEq)]
pub struct Notification {
    /// The outermost wire format.
    pub envelope: Envelope,
    /// The commercetools format of the notification itself.
    pub format: PayloadFormat,
    /// Id of this delivery, for dedup; see the [module documentation](self#delivery-id).
    pub delivery_id: String,
    /// What happened.
    pub kind: NotificationKind,
    /// The resource it happened to.
    pub resource: ResourceRef,
    /// `projectKey`; for a CloudEvent without one, the first segment of its `source`
    /// (`/<project-key>/<resources>`).
    pub project_key: Option<String>,
    /// When it happened in commercetools: a Message's `createdAt`, a change's `modifiedAt`, else
    /// the CloudEvent's `time`. Not the Pub/Sub publish time (see [`PubSubInfo`]).
    pub created_at: Option<OffsetDateTime>,
    /// The Store of the resource, when the Message says: its top-level `store.key` (a
    /// StoreKeyReference, e.g. `OrderStoreSet`), else the `store.key` of the first embedded
    /// resource that has one (`order.store.key` of `OrderCreated`, `cart.store.key`…). Change
    /// notifications carry no store (`resourceUserProvidedIdentifiers` has none).
    pub store_key: Option<String>,
    /// The push envelope's metadata, for [`Envelope::PubSubPush`].
    pub pubsub: Option<PubSubInfo>,
}

/// Parses one webhook body; see the [module documentation](self) for what is accepted.
pub fn parse(body: &[u8]) -> Result<Notification, IngestError> {
    if body.len() > MAX_BODY {
        return Err(IngestError::TooLarge { len: body.len() });
    }
    let value: Value = serde_json::from_slice(body).map_err(|e| IngestError::NotJson {
        location: "body",
        detail: e.to_string(),
    })?;
    let Value::Object(map) = value else {
        return Err(fields::not_an_object("body", &value));
    };
    let outer = Outer {
        envelope: Envelope::Platform,
        delivery_id: None,
        pubsub: None,
    };
    if map.contains_key("notificationType") {
        platform(map, "", outer, None)
    } else if map.contains_key("specversion") {
        cloud_event(
            map,
            "",
            Outer {
                envelope: Envelope::CloudEvents,
                ..outer
            },
        )
    } else if map.contains_key("message") {
        pubsub(&map)
    } else {
        Err(IngestError::field_error(
            "notificationType".to_owned(),
            "missing: the body is neither a Pub/Sub push envelope (`message`), a CloudEvent \
             (`specversion`) nor a commercetools Platform payload (`notificationType`)",
        ))
    }
}

/// What the enclosing layers already established.
struct Outer {
    envelope: Envelope,
    delivery_id: Option<String>,
    pubsub: Option<PubSubInfo>,
}

/// What a CloudEvent adds to the Platform payload in its `data`.
struct CloudEventInfo {
    time: Option<OffsetDateTime>,
    project_key: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// Pub/Sub push envelope

/// Standard alphabet; padding optional.
const STANDARD_LENIENT: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// URL-safe alphabet; padding optional.
const URL_SAFE_LENIENT: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Standard base64, or URL-safe when the text has `-` or `_`; padding optional; ASCII
/// whitespace (line breaks of wrapped encoders) ignored.
fn decode_base64(text: &str) -> Result<Vec<u8>, IngestError> {
    let text: Cow<'_, str> = if text.bytes().any(|b| b.is_ascii_whitespace()) {
        Cow::Owned(text.chars().filter(|c| !c.is_ascii_whitespace()).collect())
    } else {
        Cow::Borrowed(text)
    };
    let engine = if text.contains(['-', '_']) {
        &URL_SAFE_LENIENT
    } else {
        &STANDARD_LENIENT
    };
    engine
        .decode(text.as_bytes())
        .map_err(|e| IngestError::BadBase64 {
            detail: e.to_string(),
        })
}

fn pubsub(root: &Map<String, Value>) -> Result<Notification, IngestError> {
    let root = Obj::from_map(root, String::new());
    let subscription = root.opt_str("subscription")?.map(str::to_owned);
    let message = root.obj("message")?;
    let message_id = match message.opt_str("messageId")? {
        Some(id) => id,
        None => message.opt_str("message_id")?.ok_or_else(|| {
            IngestError::field_error(
                "message.messageId".to_owned(),
                "missing (neither messageId nor message_id is set)",
            )
        })?,
    };
    let publish_time = match message.opt_time("publishTime")? {
        Some(t) => Some(t),
        None => message.opt_time("publish_time")?,
    };
    let mut attributes = BTreeMap::new();
    if let Some(attrs) = message.opt_obj("attributes")? {
        for (name, value) in attrs.map() {
            match value {
                Value::String(s) => {
                    attributes.insert(name.clone(), s.clone());
                }
                _ => {
                    return Err(IngestError::field_error(
                        join(attrs.path(), name),
                        "expected a string",
                    ));
                }
            }
        }
    }
    let bytes = decode_base64(message.str("data")?)?;
    let inner: Value = serde_json::from_slice(&bytes).map_err(|e| IngestError::NotJson {
        location: "message.data",
        detail: e.to_string(),
    })?;
    let Value::Object(inner) = inner else {
        return Err(fields::not_an_object("message.data", &inner));
    };
    let outer = Outer {
        envelope: Envelope::PubSubPush,
        delivery_id: Some(message_id.to_owned()),
        pubsub: Some(PubSubInfo {
            message_id: message_id.to_owned(),
            subscription,
            publish_time,
            attributes,
        }),
    };
    if inner.contains_key("notificationType") {
        platform(inner, "message.data", outer, None)
    } else if inner.contains_key("specversion") {
        cloud_event(inner, "message.data", outer)
    } else {
        Err(IngestError::field_error(
            "message.data.notificationType".to_owned(),
            "missing: the decoded data is neither a CloudEvent (`specversion`) nor a \
             commercetools Platform payload (`notificationType`)",
        ))
    }
}

// ---------------------------------------------------------------------------------------------
// CloudEvents

fn cloud_event(
    mut map: Map<String, Value>,
    path: &str,
    outer: Outer,
) -> Result<Notification, IngestError> {
    let (delivery_id, subject, info) = {
        let ce = Obj::from_map(&map, path.to_owned());
        let version = ce.str("specversion")?;
        if version != "1.0" {
            return Err(IngestError::field_error(
                join(path, "specversion"),
                "unsupported CloudEvents version (expected 1.0)",
            ));
        }
        let id = ce.str("id")?;
        let delivery_id = outer.delivery_id.clone().unwrap_or_else(|| id.to_owned());
        let event_type = ce.str("type")?;
        if !event_type.starts_with("com.commercetools.") {
            return Err(IngestError::UnknownNotificationType {
                notification_type: event_type.to_owned(),
                delivery_id: Some(delivery_id),
            });
        }
        let subject = ce.opt_str("subject")?.map(str::to_owned);
        let time = ce.opt_time("time")?;
        let project_key = ce
            .opt_str("source")?
            .and_then(|s| s.trim_start_matches('/').split('/').next())
            .filter(|s| !s.is_empty())
            .map(str::to_owned);
        if !ce.has("data") {
            return Err(IngestError::field_error(
                join(path, "data"),
                "missing (only structured mode with JSON `data` is supported)",
            ));
        }
        (delivery_id, subject, CloudEventInfo { time, project_key })
    };
    let data = match map.remove("data") {
        Some(Value::Object(data)) => data,
        _ => {
            return Err(IngestError::field_error(
                join(path, "data"),
                "expected an object",
            ));
        }
    };
    let data_path = join(path, "data");
    let outer = Outer {
        delivery_id: Some(delivery_id),
        ..outer
    };
    let mut n = platform(data, &data_path, outer, Some(info))?;
    n.format = PayloadFormat::CloudEvents;
    if let Some(subject) = subject
        && subject != n.resource.id
    {
        return Err(IngestError::field_error(
            join(path, "subject"),
            format!("does not match {data_path}.resource.id"),
        ));
    }
    Ok(n)
}

// ---------------------------------------------------------------------------------------------
// Platform payloads

/// The change `notificationType`s.
#[derive(Clone, Copy)]
enum Change {
    Created,
    Updated,
    Deleted,
}

fn platform(
    map: Map<String, Value>,
    path: &str,
    outer: Outer,
    ce: Option<CloudEventInfo>,
) -> Result<Notification, IngestError> {
    let o = Obj::from_map(&map, path.to_owned());
    let notification_type = o.str("notificationType")?;
    let change = match notification_type {
        "Message" => None,
        "ResourceCreated" => Some(Change::Created),
        "ResourceUpdated" => Some(Change::Updated),
        "ResourceDeleted" => Some(Change::Deleted),
        other => {
            let own_id = o.opt_str("id").ok().flatten().map(str::to_owned);
            return Err(IngestError::UnknownNotificationType {
                notification_type: other.to_owned(),
                delivery_id: outer.delivery_id.or(own_id),
            });
        }
    };
    let project_key = o
        .opt_str("projectKey")?
        .map(str::to_owned)
        .or_else(|| ce.as_ref().and_then(|c| c.project_key.clone()));
    let reference = o.obj("resource")?;
    let identifiers = o.opt_obj("resourceUserProvidedIdentifiers")?;
    let resource = ResourceRef {
        type_id: reference.str("typeId")?.to_owned(),
        id: reference.str("id")?.to_owned(),
        key: match &identifiers {
            Some(ids) => ids.opt_str("key")?.map(str::to_owned),
            None => None,
        },
    };
    let ce_time = ce.and_then(|c| c.time);

    let Some(change) = change else {
        let message_id = o.str("id")?.to_owned();
        let sequence_number = o.i64("sequenceNumber")?;
        let resource_version = o.i64("resourceVersion")?;
        let not_included = o.opt_obj("payloadNotIncluded")?;
        let message_type = match (o.opt_str("type")?, &not_included) {
            (Some(t), _) => t.to_owned(),
            (None, Some(p)) => p.str("payloadType")?.to_owned(),
            (None, None) => {
                return Err(IngestError::field_error(join(path, "type"), "missing"));
            }
        };
        let payload_included = not_included.is_none();
        let created_at = o.opt_time("createdAt")?.or(ce_time);
        let store_key = store_key(&map);
        let delivery_id = outer.delivery_id.unwrap_or_else(|| message_id.clone());
        return Ok(Notification {
            envelope: outer.envelope,
            format: PayloadFormat::Platform,
            delivery_id,
            kind: NotificationKind::Message {
                message_type,
                sequence_number,
                resource_version,
                message_id,
                payload: Value::Object(map),
                payload_included,
            },
            resource,
            project_key,
            created_at,
            store_key,
            pubsub: outer.pubsub,
        });
    };

    let version = o.i64("version")?;
    let modified_at = o.opt_time("modifiedAt")?;
    let kind = match change {
        Change::Created if resource.type_id == "subscription" => NotificationKind::SubscriptionTest,
        Change::Created => NotificationKind::ResourceCreated {
            version,
            modified_at,
        },
        Change::Updated => NotificationKind::ResourceUpdated {
            version,
            old_version: o.opt_i64("oldVersion")?,
            modified_at,
        },
        Change::Deleted => NotificationKind::ResourceDeleted {
            version,
            modified_at,
            data_erasure: o.opt_bool("dataErasure")?.unwrap_or(false),
        },
    };
    let delivery_id = outer.delivery_id.unwrap_or_else(|| {
        format!(
            "{notification_type}/{}/{}/{}/{version}",
            project_key.as_deref().unwrap_or("-"),
            resource.type_id,
            resource.id,
        )
    });
    Ok(Notification {
        envelope: outer.envelope,
        format: PayloadFormat::Platform,
        delivery_id,
        kind,
        resource,
        project_key,
        created_at: modified_at.or(ce_time),
        store_key: None,
        pubsub: outer.pubsub,
    })
}

/// See [`Notification::store_key`].
fn store_key(message: &Map<String, Value>) -> Option<String> {
    fn key_of(v: &Value) -> Option<&str> {
        v.get("store")?
            .get("key")?
            .as_str()
            .filter(|k| !k.is_empty())
    }
    message
        .get("store")
        .and_then(|s| s.get("key"))
        .and_then(Value::as_str)
        .filter(|k| !k.is_empty())
        .or_else(|| message.values().find_map(key_of))
        .map(str::to_owned)
}
