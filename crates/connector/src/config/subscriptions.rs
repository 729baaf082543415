//! `[subscriptions]`: the commercetools Subscriptions `ct-omnisend subscriptions install`
//! provisions. Raw TOML shape and checked settings.
//!
//! Secrets of a destination (AWS access keys, the Service Bus connection string, the Event Grid
//! access key) are never in the file: the file names the environment variable that holds each
//! (`access_key_env`, `access_secret_env`, `connection_string_env`), read when a Subscription is
//! created or updated.

use serde::Deserialize;

use super::{ConfigError, invalid};

/// Default key prefix of the Subscriptions.
pub const DEFAULT_KEY_PREFIX: &str = "ct-omnisend";

/// `[subscriptions]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSubscriptions {
    /// Prefix of the Subscription keys (default `ct-omnisend`): keys are `{prefix}-orders`,
    /// `-customers`, `-catalog`, `-carts`.
    pub key_prefix: Option<String>,
    /// Payload format: `platform` (default) or `cloudevents`.
    pub format: Option<String>,
    /// Subscribe to the order messages that become order events (default true).
    pub orders: Option<bool>,
    /// Also subscribe to order changes (default false): closes the gap of refunds marked on
    /// return items without a message.
    pub order_changes: Option<bool>,
    /// Subscribe to cart changes, the source of cart events (default true).
    pub carts: Option<bool>,
    /// Subscribe to the customer messages that make `serve` run the contacts delta sync
    /// (default true).
    pub customers: Option<bool>,
    /// Subscribe to product messages and category changes that make `serve` run the catalog
    /// delta sync (default true).
    pub catalog: Option<bool>,
    /// `[subscriptions.destination]`: where commercetools sends the notifications.
    #[serde(default)]
    pub destination: Option<RawDestination>,
}

/// `[subscriptions.destination]` as written: `type` and that type's fields.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDestination {
    /// `GoogleCloudPubSub`, `SQS`, `SNS`, `EventBridge`, `AzureServiceBus` or `EventGrid`
    /// (case-insensitive).
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// GoogleCloudPubSub: GCP project id.
    pub project_id: Option<String>,
    /// GoogleCloudPubSub: topic name.
    pub topic: Option<String>,
    /// SQS: queue URL.
    pub queue_url: Option<String>,
    /// SQS, EventBridge: AWS region.
    pub region: Option<String>,
    /// SQS, SNS: `IAM` (default) or `Credentials`.
    pub authentication_mode: Option<String>,
    /// SQS, SNS (`Credentials`): env var holding the access key id. EventGrid: env var holding
    /// the topic's access key.
    pub access_key_env: Option<String>,
    /// SQS, SNS (`Credentials`): env var holding the secret access key.
    pub access_secret_env: Option<String>,
    /// SNS: topic ARN.
    pub topic_arn: Option<String>,
    /// EventBridge: AWS account id.
    pub account_id: Option<String>,
    /// AzureServiceBus: env var holding the connection string.
    pub connection_string_env: Option<String>,
    /// EventGrid: topic URI.
    pub uri: Option<String>,
}

/// The payload format of the Subscriptions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SubscriptionFormat {
    /// `{"type":"Platform"}`.
    Platform,
    /// `{"type":"CloudEvents","cloudEventsVersion":"1.0"}`.
    CloudEvents,
}

/// How commercetools authenticates to AWS, with the env vars of the key pair.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AwsAuth {
    /// commercetools' IAM user (grant it the permission on the queue or topic).
    Iam,
    /// An access key pair, from the environment.
    Credentials {
        /// Env var holding the access key id.
        access_key_env: String,
        /// Env var holding the secret access key.
        access_secret_env: String,
    },
}

/// A checked destination (secrets by env var name).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DestinationSettings {
    /// Google Cloud Pub/Sub.
    GoogleCloudPubSub {
        /// GCP project id.
        project_id: String,
        /// Topic name.
        topic: String,
    },
    /// AWS SQS.
    Sqs {
        /// Queue URL.
        queue_url: String,
        /// AWS region.
        region: String,
        /// Authentication.
        auth: AwsAuth,
    },
    /// AWS SNS.
    Sns {
        /// Topic ARN.
        topic_arn: String,
        /// Authentication.
        auth: AwsAuth,
    },
    /// AWS EventBridge.
    EventBridge {
        /// AWS region.
        region: String,
        /// AWS account id.
        account_id: String,
    },
    /// Azure Service Bus.
    AzureServiceBus {
        /// Env var holding the connection string.
        connection_string_env: String,
    },
    /// Azure Event Grid (CloudEvents only).
    EventGrid {
        /// Topic URI.
        uri: String,
        /// Env var holding the access key.
        access_key_env: String,
    },
}

/// Checked `[subscriptions]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubscriptionsSettings {
    /// Key prefix.
    pub key_prefix: String,
    /// Payload format.
    pub format: SubscriptionFormat,
    /// Order messages.
    pub orders: bool,
    /// Order changes as well.
    pub order_changes: bool,
    /// Cart changes.
    pub carts: bool,
    /// Customer messages.
    pub customers: bool,
    /// Product messages and category changes.
    pub catalog: bool,
    /// Where notifications go; required by `subscriptions install` and `status`.
    pub destination: Option<DestinationSettings>,
}

const KEY: &str = "subscriptions";

fn k(field: &str) -> String {
    format!("{KEY}.destination.{field}")
}

/// Case-insensitive match of `value` against `options`, returning the canonical spelling.
fn one_of(key: &str, value: &str, options: &[&'static str]) -> Result<&'static str, ConfigError> {
    options
        .iter()
        .find(|o| o.eq_ignore_ascii_case(value.trim()))
        .copied()
        .ok_or_else(|| {
            invalid(
                key,
                format!("{value:?}: expected one of {}", options.join(", ")),
            )
        })
}

fn env_name(key: &str, value: String) -> Result<String, ConfigError> {
    if value.is_empty()
        || !value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        return Err(invalid(
            key,
            format!("{value:?} is not an environment variable name (letters, digits, _)"),
        ));
    }
    Ok(value)
}

/// The fields a destination type uses; the others must be absent.
struct Fields {
    raw: RawDestination,
    kind: &'static str,
}

impl Fields {
    fn present(&self) -> [(&'static str, bool); 11] {
        let r = &self.raw;
        [
            ("project_id", r.project_id.is_some()),
            ("topic", r.topic.is_some()),
            ("queue_url", r.queue_url.is_some()),
            ("region", r.region.is_some()),
            ("authentication_mode", r.authentication_mode.is_some()),
            ("access_key_env", r.access_key_env.is_some()),
            ("access_secret_env", r.access_secret_env.is_some()),
            ("topic_arn", r.topic_arn.is_some()),
            ("account_id", r.account_id.is_some()),
            ("connection_string_env", r.connection_string_env.is_some()),
            ("uri", r.uri.is_some()),
        ]
    }

    /// Refuses fields this type does not use.
    fn only(&self, used: &[&str]) -> Result<(), ConfigError> {
        match self
            .present()
            .into_iter()
            .find(|(name, set)| *set && !used.contains(name))
        {
            Some((name, _)) => Err(invalid(
                k(name),
                format!(
                    "is not a field of a {} destination (its fields: type, {})",
                    self.kind,
                    used.join(", ")
                ),
            )),
            None => Ok(()),
        }
    }
}

fn required(field: &str, value: Option<String>, kind: &str) -> Result<String, ConfigError> {
    value
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
        .ok_or_else(|| invalid(k(field), format!("is required for a {kind} destination")))
}

fn http_url(field: &str, value: String) -> Result<String, ConfigError> {
    match url::Url::parse(&value) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => Ok(value),
        _ => Err(invalid(
            k(field),
            format!("{value:?} is not an http(s) URL"),
        )),
    }
}

fn aws_auth(
    mode: Option<String>,
    key: Option<String>,
    secret: Option<String>,
) -> Result<AwsAuth, ConfigError> {
    let mode = match mode {
        None => "IAM",
        Some(m) => one_of(&k("authentication_mode"), &m, &["IAM", "Credentials"])?,
    };
    match (mode, key, secret) {
        ("IAM", None, None) => Ok(AwsAuth::Iam),
        ("IAM", _, _) => Err(invalid(
            k("authentication_mode"),
            "is IAM (the default), which takes no access_key_env/access_secret_env; \
             set authentication_mode = \"Credentials\" to use a key pair",
        )),
        (_, Some(key), Some(secret)) => Ok(AwsAuth::Credentials {
            access_key_env: env_name(&k("access_key_env"), key)?,
            access_secret_env: env_name(&k("access_secret_env"), secret)?,
        }),
        (_, None, _) => Err(invalid(
            k("access_key_env"),
            "is required with authentication_mode = \"Credentials\"",
        )),
        (_, _, None) => Err(invalid(
            k("access_secret_env"),
            "is required with authentication_mode = \"Credentials\"",
        )),
    }
}

impl DestinationSettings {
    /// Checks `[subscriptions.destination]`.
    pub fn from_raw(mut raw: RawDestination) -> Result<Self, ConfigError> {
        let kind_raw = raw
            .kind
            .take()
            .ok_or_else(|| invalid(k("type"), "is required"))?;
        let kind = one_of(
            &k("type"),
            &kind_raw,
            &[
                "GoogleCloudPubSub",
                "SQS",
                "SNS",
                "EventBridge",
                "AzureServiceBus",
                "EventGrid",
            ],
        )?;
        let fields = Fields { raw, kind };
        let d = match kind {
            "GoogleCloudPubSub" => {
                fields.only(&["project_id", "topic"])?;
                let r = fields.raw;
                DestinationSettings::GoogleCloudPubSub {
                    project_id: required("project_id", r.project_id, kind)?,
                    topic: required("topic", r.topic, kind)?,
                }
            }
            "SQS" => {
                fields.only(&[
                    "queue_url",
                    "region",
                    "authentication_mode",
                    "access_key_env",
                    "access_secret_env",
                ])?;
                let r = fields.raw;
                DestinationSettings::Sqs {
                    queue_url: http_url("queue_url", required("queue_url", r.queue_url, kind)?)?,
                    region: required("region", r.region, kind)?,
                    auth: aws_auth(r.authentication_mode, r.access_key_env, r.access_secret_env)?,
                }
            }
            "SNS" => {
                fields.only(&[
                    "topic_arn",
                    "authentication_mode",
                    "access_key_env",
                    "access_secret_env",
                ])?;
                let r = fields.raw;
                DestinationSettings::Sns {
                    topic_arn: required("topic_arn", r.topic_arn, kind)?,
                    auth: aws_auth(r.authentication_mode, r.access_key_env, r.access_secret_env)?,
                }
            }
            "EventBridge" => {
                fields.only(&["region", "account_id"])?;
                let r = fields.raw;
                DestinationSettings::EventBridge {
                    region: required("region", r.region, kind)?,
                    account_id: required("account_id", r.account_id, kind)?,
                }
            }
            "AzureServiceBus" => {
                fields.only(&["connection_string_env"])?;
                let r = fields.raw;
                DestinationSettings::AzureServiceBus {
                    connection_string_env: env_name(
                        &k("connection_string_env"),
                        required("connection_string_env", r.connection_string_env, kind)?,
                    )?,
                }
            }
            _ => {
                fields.only(&["uri", "access_key_env"])?;
                let r = fields.raw;
                DestinationSettings::EventGrid {
                    uri: http_url("uri", required("uri", r.uri, kind)?)?,
                    access_key_env: env_name(
                        &k("access_key_env"),
                        required("access_key_env", r.access_key_env, kind)?,
                    )?,
                }
            }
        };
        Ok(d)
    }

    /// The commercetools `type` of this destination.
    pub fn type_name(&self) -> &'static str {
        match self {
            DestinationSettings::GoogleCloudPubSub { .. } => "GoogleCloudPubSub",
            DestinationSettings::Sqs { .. } => "SQS",
            DestinationSettings::Sns { .. } => "SNS",
            DestinationSettings::EventBridge { .. } => "EventBridge",
            DestinationSettings::AzureServiceBus { .. } => "AzureServiceBus",
            DestinationSettings::EventGrid { .. } => "EventGrid",
        }
    }
}

impl SubscriptionsSettings {
    /// Checks `[subscriptions]`.
    pub fn from_raw(raw: RawSubscriptions) -> Result<Self, ConfigError> {
        let key_prefix = raw
            .key_prefix
            .unwrap_or_else(|| DEFAULT_KEY_PREFIX.to_owned());
        // The longest key is `{prefix}-customers`; commercetools allows 256 characters.
        if key_prefix.is_empty()
            || key_prefix.len() > 200
            || !key_prefix
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(invalid(
                "subscriptions.key_prefix",
                format!("{key_prefix:?}: 1–200 characters of A-Z, a-z, 0-9, - and _"),
            ));
        }
        let format = match raw.format {
            None => SubscriptionFormat::Platform,
            Some(f) => match one_of("subscriptions.format", &f, &["platform", "cloudevents"])? {
                "platform" => SubscriptionFormat::Platform,
                _ => SubscriptionFormat::CloudEvents,
            },
        };
        let destination = raw
            .destination
            .map(DestinationSettings::from_raw)
            .transpose()?;
        if matches!(destination, Some(DestinationSettings::EventGrid { .. }))
            && format != SubscriptionFormat::CloudEvents
        {
            return Err(invalid(
                "subscriptions.format",
                "an EventGrid destination only accepts the CloudEvents format: set format = \"cloudevents\"",
            ));
        }
        Ok(Self {
            key_prefix,
            format,
            orders: raw.orders.unwrap_or(true),
            order_changes: raw.order_changes.unwrap_or(false),
            carts: raw.carts.unwrap_or(true),
            customers: raw.customers.unwrap_or(true),
            catalog: raw.catalog.unwrap_or(true),
            destination,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pubsub() -> RawDestination {
        RawDestination {
            kind: Some("googlecloudpubsub".into()),
            project_id: Some("gcp".into()),
            topic: Some("ct".into()),
            ..RawDestination::default()
        }
    }

    #[test]
    fn defaults_subscribe_everything_in_the_platform_format_without_a_destination() {
        let s = SubscriptionsSettings::from_raw(RawSubscriptions::default()).unwrap();
        assert_eq!(s.key_prefix, "ct-omnisend");
        assert_eq!(s.format, SubscriptionFormat::Platform);
        assert!(s.orders && s.carts && s.customers && s.catalog && !s.order_changes);
        assert_eq!(s.destination, None);
    }

    #[test]
    fn destination_types_are_matched_case_insensitively() {
        let d = DestinationSettings::from_raw(pubsub()).unwrap();
        assert_eq!(d.type_name(), "GoogleCloudPubSub");
    }

    #[test]
    fn a_field_of_another_destination_type_is_named() {
        let err = DestinationSettings::from_raw(RawDestination {
            queue_url: Some("https://sqs".into()),
            ..pubsub()
        })
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("subscriptions.destination.queue_url")
                && err.contains("GoogleCloudPubSub"),
            "{err}"
        );
    }

    #[test]
    fn credentials_need_both_env_names_and_iam_takes_none() {
        let sqs = |mode: Option<&str>, key: Option<&str>, secret: Option<&str>| {
            DestinationSettings::from_raw(RawDestination {
                kind: Some("SQS".into()),
                queue_url: Some("https://sqs.eu-west-1.amazonaws.com/1/q".into()),
                region: Some("eu-west-1".into()),
                authentication_mode: mode.map(Into::into),
                access_key_env: key.map(Into::into),
                access_secret_env: secret.map(Into::into),
                ..RawDestination::default()
            })
        };
        assert!(matches!(
            sqs(None, None, None).unwrap(),
            DestinationSettings::Sqs {
                auth: AwsAuth::Iam,
                ..
            }
        ));
        let err = sqs(Some("Credentials"), Some("K"), None).unwrap_err();
        assert!(err.to_string().contains("access_secret_env"), "{err}");
        let err = sqs(None, Some("K"), Some("S")).unwrap_err();
        assert!(err.to_string().contains("authentication_mode"), "{err}");
        let err = sqs(Some("Credentials"), Some("K"), Some("not a name")).unwrap_err();
        assert!(err.to_string().contains("access_secret_env"), "{err}");
        assert!(sqs(Some("credentials"), Some("K"), Some("S")).is_ok());
    }

    #[test]
    fn event_grid_needs_the_cloudevents_format() {
        let raw = || RawSubscriptions {
            destination: Some(RawDestination {
                kind: Some("EventGrid".into()),
                uri: Some("https://t.westeurope-1.eventgrid.azure.net/api/events".into()),
                access_key_env: Some("EG_KEY".into()),
                ..RawDestination::default()
            }),
            ..RawSubscriptions::default()
        };
        let err = SubscriptionsSettings::from_raw(raw()).unwrap_err();
        assert!(err.to_string().contains("subscriptions.format"), "{err}");
        let ok = SubscriptionsSettings::from_raw(RawSubscriptions {
            format: Some("CloudEvents".into()),
            ..raw()
        });
        assert!(ok.is_ok());
    }

    #[test]
    fn a_key_prefix_commercetools_would_refuse_is_named() {
        let err = SubscriptionsSettings::from_raw(RawSubscriptions {
            key_prefix: Some("ct omnisend".into()),
            ..RawSubscriptions::default()
        })
        .unwrap_err();
        assert!(
            err.to_string().contains("subscriptions.key_prefix"),
            "{err}"
        );
    }
}
