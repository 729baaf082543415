//! commercetools Subscriptions (`/{projectKey}/subscriptions`, scope `manage_subscriptions`):
//! the draft and resource models, the update actions, and the client methods that read,
//! create, update and delete them by key.
//!
//! Shapes follow the API reference (`SubscriptionDraft`, `Subscription`, `Destination`,
//! `DeliveryFormat`, `SubscriptionUpdateAction`). The update actions are `changeDestination`,
//! `setMessages`, `setChanges`, `setKey` (and `setEvents`, which ct-omnisend does not use);
//! there is **no action that changes the format**: a Subscription with the wrong format has to
//! be replaced by a new one.
//!
//! Secrets of a destination (`accessKey`/`accessSecret` of SQS and SNS, the `accessKey` of Event
//! Grid, the `connectionString` of Service Bus) are [`SecretString`]s: they are sent as they
//! are, but never shown by `Debug`, and [`Destination::masked`] replaces them for display.
//! commercetools itself hides them (partly) when it returns a Subscription, so they cannot be
//! compared with what is configured.

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value;
use time::OffsetDateTime;

use crate::client::CtClient;
use crate::error::CtError;
use crate::paging::Keyed;

/// What [`Destination::masked`] puts in place of a secret.
pub const MASK: &str = "****";

/// Subscription to Messages of one resource type (`MessageSubscription`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageSubscription {
    /// Resource type, e.g. `order`, `customer`, `product`.
    pub resource_type_id: String,
    /// Message types, e.g. `OrderCreated`; empty = every message of the resource type.
    #[serde(default)]
    pub types: Vec<String>,
}

/// Subscription to changes (`ResourceCreated`/`Updated`/`Deleted`) of one resource type
/// (`ChangeSubscription`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChangeSubscription {
    /// Resource type, e.g. `cart`, `category`.
    pub resource_type_id: String,
}

/// The format notifications are delivered in (`DeliveryFormat`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum DeliveryFormat {
    /// `{"type":"Platform"}`, commercetools' default.
    #[default]
    Platform,
    /// `{"type":"CloudEvents","cloudEventsVersion":"1.0"}`.
    #[serde(rename_all = "camelCase")]
    CloudEvents {
        /// Only `"1.0"` exists.
        cloud_events_version: String,
    },
    /// A format this client does not know (read only).
    #[serde(other)]
    Unknown,
}

impl DeliveryFormat {
    /// CloudEvents 1.0.
    pub fn cloud_events() -> Self {
        DeliveryFormat::CloudEvents {
            cloud_events_version: "1.0".into(),
        }
    }

    /// `Platform`, `CloudEvents 1.0` or `unknown`: for messages and tables.
    pub fn label(&self) -> String {
        match self {
            DeliveryFormat::Platform => "Platform".into(),
            DeliveryFormat::CloudEvents {
                cloud_events_version,
            } => format!("CloudEvents {cloud_events_version}"),
            DeliveryFormat::Unknown => "unknown".into(),
        }
    }
}

/// How commercetools authenticates to AWS (`AwsAuthenticationMode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AwsAuthenticationMode {
    /// commercetools' own IAM user publishes (grant it the permission on the queue/topic).
    #[serde(rename = "IAM")]
    Iam,
    /// An access key pair of your IAM user (the API's default when the mode is omitted).
    Credentials,
}

/// Where commercetools sends the notifications (`Destination`).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum Destination {
    /// Google Cloud Pub/Sub topic.
    #[serde(rename_all = "camelCase")]
    GoogleCloudPubSub {
        /// GCP project id.
        project_id: String,
        /// Topic name.
        topic: String,
    },
    /// AWS SQS queue.
    #[serde(rename = "SQS", rename_all = "camelCase")]
    Sqs {
        /// Queue URL.
        queue_url: String,
        /// AWS region of the queue.
        region: String,
        /// Authentication; commercetools defaults to `Credentials` when omitted.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        authentication_mode: Option<AwsAuthenticationMode>,
        /// Access key id (`Credentials` only).
        #[serde(
            default,
            skip_serializing_if = "Option::is_none",
            serialize_with = "expose_opt"
        )]
        access_key: Option<SecretString>,
        /// Secret access key (`Credentials` only).
        #[serde(
            default,
            skip_serializing_if = "Option::is_none",
            serialize_with = "expose_opt"
        )]
        access_secret: Option<SecretString>,
    },
    /// AWS SNS topic.
    #[serde(rename = "SNS", rename_all = "camelCase")]
    Sns {
        /// Topic ARN.
        topic_arn: String,
        /// Authentication; commercetools defaults to `Credentials` when omitted.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        authentication_mode: Option<AwsAuthenticationMode>,
        /// Access key id (`Credentials` only).
        #[serde(
            default,
            skip_serializing_if = "Option::is_none",
            serialize_with = "expose_opt"
        )]
        access_key: Option<SecretString>,
        /// Secret access key (`Credentials` only).
        #[serde(
            default,
            skip_serializing_if = "Option::is_none",
            serialize_with = "expose_opt"
        )]
        access_secret: Option<SecretString>,
    },
    /// AWS EventBridge (a partner event source in that account and region).
    #[serde(rename_all = "camelCase")]
    EventBridge {
        /// AWS region.
        region: String,
        /// AWS account id.
        account_id: String,
    },
    /// Azure Service Bus queue or topic.
    #[serde(rename_all = "camelCase")]
    AzureServiceBus {
        /// Connection string of a Shared Access Policy with `Send` (its key is a secret).
        #[serde(serialize_with = "expose")]
        connection_string: SecretString,
    },
    /// Azure Event Grid topic (CloudEvents format only).
    #[serde(rename = "EventGrid", rename_all = "camelCase")]
    EventGrid {
        /// Topic URI.
        uri: String,
        /// Access key of the topic.
        #[serde(serialize_with = "expose")]
        access_key: SecretString,
    },
    /// A destination type this client does not model (Confluent Cloud, IronMQ, …; read only).
    #[serde(other)]
    Other,
}

fn expose<S: Serializer>(secret: &SecretString, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(secret.expose_secret())
}

fn expose_opt<S: Serializer>(secret: &Option<SecretString>, s: S) -> Result<S::Ok, S::Error> {
    match secret {
        Some(v) => s.serialize_str(v.expose_secret()),
        None => s.serialize_none(),
    }
}

fn mask(secret: &mut SecretString) {
    *secret = SecretString::from(MASK);
}

impl Destination {
    /// The `type` discriminator: `GoogleCloudPubSub`, `SQS`, `SNS`, `EventBridge`,
    /// `AzureServiceBus`, `EventGrid` (`other` for [`Destination::Other`]).
    pub fn type_name(&self) -> &'static str {
        match self {
            Destination::GoogleCloudPubSub { .. } => "GoogleCloudPubSub",
            Destination::Sqs { .. } => "SQS",
            Destination::Sns { .. } => "SNS",
            Destination::EventBridge { .. } => "EventBridge",
            Destination::AzureServiceBus { .. } => "AzureServiceBus",
            Destination::EventGrid { .. } => "EventGrid",
            Destination::Other => "other",
        }
    }

    /// The destination as JSON with every secret replaced by [`MASK`] and the AWS
    /// authentication mode made explicit (`Credentials` when omitted, as commercetools reads
    /// it): for display, and to compare a configured destination with one commercetools
    /// returned (whose secrets it hides itself).
    pub fn masked(&self) -> Value {
        let mut copy = self.clone();
        match &mut copy {
            Destination::Sqs {
                authentication_mode,
                access_key,
                access_secret,
                ..
            }
            | Destination::Sns {
                authentication_mode,
                access_key,
                access_secret,
                ..
            } => {
                authentication_mode.get_or_insert(AwsAuthenticationMode::Credentials);
                access_key.iter_mut().for_each(mask);
                access_secret.iter_mut().for_each(mask);
            }
            Destination::AzureServiceBus { connection_string } => mask(connection_string),
            Destination::EventGrid { access_key, .. } => mask(access_key),
            Destination::GoogleCloudPubSub { .. }
            | Destination::EventBridge { .. }
            | Destination::Other => {}
        }
        serde_json::to_value(&copy).unwrap_or(Value::Null)
    }
}

/// The body of `POST /{projectKey}/subscriptions` (`SubscriptionDraft`). At least one of
/// `messages` and `changes` must be non-empty.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionDraft {
    /// User-defined unique key (`^[A-Za-z0-9_-]+$`, 2–256 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Where notifications go.
    pub destination: Destination,
    /// Messages subscribed to.
    #[serde(default)]
    pub messages: Vec<MessageSubscription>,
    /// Changes subscribed to.
    #[serde(default)]
    pub changes: Vec<ChangeSubscription>,
    /// Payload format (commercetools defaults to `Platform`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<DeliveryFormat>,
}

/// A Subscription as commercetools returns it: the fields ct-omnisend reads.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Subscription {
    /// Id.
    pub id: String,
    /// Version (optimistic concurrency control).
    pub version: i64,
    /// Key, when set.
    #[serde(default)]
    pub key: Option<String>,
    /// Destination (secrets partly hidden by commercetools).
    pub destination: Destination,
    /// Messages subscribed to.
    #[serde(default)]
    pub messages: Vec<MessageSubscription>,
    /// Changes subscribed to.
    #[serde(default)]
    pub changes: Vec<ChangeSubscription>,
    /// Payload format.
    #[serde(default)]
    pub format: DeliveryFormat,
    /// Health: `Healthy`, `ConfigurationError`, `ConfigurationErrorDeliveryStopped`,
    /// `TemporaryError`, `ManuallySuspended`.
    #[serde(default)]
    pub status: Option<String>,
    /// Creation time.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Last modification.
    #[serde(with = "time::serde::rfc3339")]
    pub last_modified_at: OffsetDateTime,
}

impl Keyed for Subscription {
    fn id(&self) -> &str {
        &self.id
    }
    fn last_modified_at(&self) -> OffsetDateTime {
        self.last_modified_at
    }
}

/// An update action of a Subscription (`SubscriptionUpdateAction`), the ones ct-omnisend uses.
/// There is none for the format.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "camelCase")]
pub enum SubscriptionUpdateAction {
    /// `changeDestination`: commercetools sends a test notification to the new destination and
    /// fails the update when it cannot be delivered.
    ChangeDestination {
        /// The new destination.
        destination: Destination,
    },
    /// `setMessages`: replaces the message subscriptions.
    SetMessages {
        /// The new value (empty removes all).
        messages: Vec<MessageSubscription>,
    },
    /// `setChanges`: replaces the change subscriptions.
    SetChanges {
        /// The new value (empty removes all).
        changes: Vec<ChangeSubscription>,
    },
    /// `setKey`: sets (or, with `None`, removes) the key.
    SetKey {
        /// The new key.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        key: Option<String>,
    },
}

impl SubscriptionUpdateAction {
    /// The action's name, e.g. `changeDestination`.
    pub fn name(&self) -> &'static str {
        match self {
            SubscriptionUpdateAction::ChangeDestination { .. } => "changeDestination",
            SubscriptionUpdateAction::SetMessages { .. } => "setMessages",
            SubscriptionUpdateAction::SetChanges { .. } => "setChanges",
            SubscriptionUpdateAction::SetKey { .. } => "setKey",
        }
    }
}

/// The body of `POST /{projectKey}/subscriptions/key={key}` (`SubscriptionUpdate`).
#[derive(Clone, Debug, Serialize)]
pub struct SubscriptionUpdate {
    /// The version the actions apply to; a different current version answers 409
    /// `ConcurrentModification`.
    pub version: i64,
    /// The actions, applied in order.
    pub actions: Vec<SubscriptionUpdateAction>,
}

/// `subscriptions/key={key}`, refusing keys commercetools would not accept (so that a key can
/// never change the path).
fn key_path(key: &str) -> Result<String, CtError> {
    let ok = (2..=256).contains(&key.len())
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !ok {
        return Err(CtError::Config(format!(
            "subscription key {key:?} is not 2–256 characters of A-Z, a-z, 0-9, - and _"
        )));
    }
    Ok(format!("subscriptions/key={key}"))
}

impl CtClient {
    /// `GET /{projectKey}/subscriptions/key={key}`; `Ok(None)` when there is none.
    pub async fn subscription_by_key(&self, key: &str) -> Result<Option<Subscription>, CtError> {
        self.get(&key_path(key)?, &[]).await
    }

    /// Every Subscription of the project (a project has at most a few dozen), in id order.
    pub async fn subscriptions(&self) -> Result<Vec<Subscription>, CtError> {
        self.all("subscriptions").await
    }

    /// `POST /{projectKey}/subscriptions`. commercetools sends a test notification to the
    /// destination and refuses to create the Subscription when it cannot be delivered; a key
    /// in use answers 400 `DuplicateField`.
    pub async fn create_subscription(
        &self,
        draft: &SubscriptionDraft,
    ) -> Result<Subscription, CtError> {
        self.post("subscriptions", draft).await
    }

    /// `POST /{projectKey}/subscriptions/key={key}` with `{version, actions}`. A stale
    /// `version` answers 409 `ConcurrentModification`; an unknown key 404.
    pub async fn update_subscription_by_key(
        &self,
        key: &str,
        version: i64,
        actions: Vec<SubscriptionUpdateAction>,
    ) -> Result<Subscription, CtError> {
        self.post(&key_path(key)?, &SubscriptionUpdate { version, actions })
            .await
    }

    /// `DELETE /{projectKey}/subscriptions/key={key}?version={version}`; returns the deleted
    /// Subscription. A stale `version` answers 409 `ConcurrentModification`; an unknown key 404.
    pub async fn delete_subscription_by_key(
        &self,
        key: &str,
        version: i64,
    ) -> Result<Subscription, CtError> {
        self.delete(
            &key_path(key)?,
            &[("version".to_string(), version.to_string())],
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn destinations_serialize_with_their_type_and_camel_case_fields() {
        let d = Destination::Sqs {
            queue_url: "https://sqs.eu-west-1.amazonaws.com/1/q".into(),
            region: "eu-west-1".into(),
            authentication_mode: Some(AwsAuthenticationMode::Credentials),
            access_key: Some(SecretString::from("AKIA-ID")),
            access_secret: Some(SecretString::from("s3cr3t")),
        };
        assert_eq!(
            serde_json::to_value(&d).unwrap(),
            json!({"type": "SQS", "queueUrl": "https://sqs.eu-west-1.amazonaws.com/1/q",
                   "region": "eu-west-1", "authenticationMode": "Credentials",
                   "accessKey": "AKIA-ID", "accessSecret": "s3cr3t"})
        );
        let p = Destination::GoogleCloudPubSub {
            project_id: "gcp".into(),
            topic: "t".into(),
        };
        assert_eq!(
            serde_json::to_value(&p).unwrap(),
            json!({"type": "GoogleCloudPubSub", "projectId": "gcp", "topic": "t"})
        );
    }

    #[test]
    fn masked_destinations_and_debug_output_hide_every_secret() {
        let all = [
            Destination::Sqs {
                queue_url: "q".into(),
                region: "r".into(),
                authentication_mode: None,
                access_key: Some(SecretString::from("AKIA-ID")),
                access_secret: Some(SecretString::from("s3cr3t-1")),
            },
            Destination::AzureServiceBus {
                connection_string: SecretString::from("Endpoint=sb://x/;SharedAccessKey=s3cr3t-2"),
            },
            Destination::EventGrid {
                uri: "https://t.eventgrid.azure.net/api/events".into(),
                access_key: SecretString::from("s3cr3t-3"),
            },
        ];
        for d in &all {
            let shown = format!("{} {:?}", d.masked(), d);
            assert!(
                !shown.contains("s3cr3t") && !shown.contains("AKIA-ID"),
                "{shown}"
            );
        }
        assert_eq!(all[0].masked()["authenticationMode"], "Credentials");
        assert_eq!(all[0].masked()["accessSecret"], MASK);
    }

    #[test]
    fn the_api_reference_subscription_example_parses() {
        let s: Subscription = serde_json::from_value(json!({
            "id": "bf79c5d2-2813-4229-9a88-e7c76be50986", "version": 1,
            "destination": {"type": "SQS", "queueUrl": "https://sqs.my-region.amazonaws.com/1/q",
                            "authenticationMode": "IAM", "region": "my-region"},
            "messages": [{"resourceTypeId": "product", "types": []}],
            "changes": [], "events": [],
            "createdAt": "2017-01-25T14:14:22.417Z", "key": "test-queue",
            "format": {"type": "Platform"},
            "lastModifiedAt": "2017-01-25T14:14:22.417Z", "status": "Healthy"
        }))
        .unwrap();
        assert_eq!(s.key.as_deref(), Some("test-queue"));
        assert_eq!(s.format, DeliveryFormat::Platform);
        assert!(matches!(
            s.destination,
            Destination::Sqs {
                authentication_mode: Some(AwsAuthenticationMode::Iam),
                ..
            }
        ));
        assert_eq!(s.messages[0].resource_type_id, "product");
    }

    #[test]
    fn unknown_destination_types_and_formats_still_parse() {
        let d: Destination =
            serde_json::from_value(json!({"type": "ConfluentCloud", "bootstrapServer": "x"}))
                .unwrap();
        assert!(matches!(d, Destination::Other));
        let f: DeliveryFormat = serde_json::from_value(json!({"type": "Avro"})).unwrap();
        assert_eq!(f, DeliveryFormat::Unknown);
        let ce: DeliveryFormat =
            serde_json::from_value(json!({"type": "CloudEvents", "cloudEventsVersion": "1.0"}))
                .unwrap();
        assert_eq!(ce, DeliveryFormat::cloud_events());
    }

    #[test]
    fn update_actions_serialize_as_the_api_expects() {
        let u = SubscriptionUpdate {
            version: 3,
            actions: vec![
                SubscriptionUpdateAction::SetChanges {
                    changes: vec![ChangeSubscription {
                        resource_type_id: "cart".into(),
                    }],
                },
                SubscriptionUpdateAction::SetMessages { messages: vec![] },
            ],
        };
        assert_eq!(
            serde_json::to_value(&u).unwrap(),
            json!({"version": 3, "actions": [
                {"action": "setChanges", "changes": [{"resourceTypeId": "cart"}]},
                {"action": "setMessages", "messages": []}
            ]})
        );
    }

    #[test]
    fn keys_that_commercetools_would_refuse_never_reach_a_path() {
        assert_eq!(
            key_path("ct-omnisend_1").unwrap(),
            "subscriptions/key=ct-omnisend_1"
        );
        for bad in ["a", "a/b", "a?b", "a b", ""] {
            assert!(key_path(bad).is_err(), "{bad:?}");
        }
    }
}
