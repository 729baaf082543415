//! What a commercetools Subscription delivers, as pure builders: the Platform-format payloads
//! (`Message`, `ResourceCreated`, `ResourceUpdated`, `ResourceDeleted`, a message whose payload
//! was not included), the CloudEvents format, and the Google Cloud Pub/Sub push envelope a
//! Connect event app (or any push endpoint) receives.
//!
//! The shapes follow the official examples (`commercetools-api-reference`
//! `api-specs/api/examples/Subscription/*.example.json` and Google's push example); the unit
//! tests compare key sets with copies of those files in `../shared/examples/commercetools/`.

use base64::Engine;
use serde_json::{Map, Value, json};

/// Fields every `Message` has; everything else is its type-specific payload.
pub const MESSAGE_BASE_FIELDS: &[&str] = &[
    "id",
    "version",
    "sequenceNumber",
    "resource",
    "resourceVersion",
    "resourceUserProvidedIdentifiers",
    "type",
    "createdAt",
    "lastModifiedAt",
    "createdBy",
    "lastModifiedBy",
];

/// The `reason` commercetools gives when a message payload is left out.
pub const PAYLOAD_TOO_LARGE: &str = "Payload too large.";

/// The Pub/Sub subscription name [`pubsub_push`] puts into the envelope.
pub const PUBSUB_SUBSCRIPTION: &str =
    "projects/ct-omnisend-test/subscriptions/commercetools-events";

/// A Platform-format message delivery: the message with `notificationType: "Message"` and
/// `projectKey` added in front.
pub fn message_payload(message: &Value, project_key: &str) -> Value {
    let mut out = Map::new();
    out.insert("notificationType".into(), json!("Message"));
    out.insert("projectKey".into(), json!(project_key));
    if let Some(m) = message.as_object() {
        for (k, v) in m {
            out.insert(k.clone(), v.clone());
        }
    }
    Value::Object(out)
}

fn change(
    kind: &str,
    project_key: &str,
    type_id: &str,
    id: &str,
    version: i64,
) -> Map<String, Value> {
    let mut out = Map::new();
    out.insert("notificationType".into(), json!(kind));
    out.insert("projectKey".into(), json!(project_key));
    out.insert("resource".into(), json!({"typeId": type_id, "id": id}));
    out.insert("resourceUserProvidedIdentifiers".into(), json!({}));
    out.insert("version".into(), json!(version));
    out
}

/// A `ResourceCreated` change notification: `{notificationType, projectKey, resource {typeId,
/// id}, resourceUserProvidedIdentifiers: {}, version, modifiedAt}` (set identifiers with
/// [`with_identifiers`]).
pub fn resource_created(
    project_key: &str,
    type_id: &str,
    id: &str,
    version: i64,
    modified_at: &str,
) -> Value {
    let mut out = change("ResourceCreated", project_key, type_id, id, version);
    out.insert("modifiedAt".into(), json!(modified_at));
    Value::Object(out)
}

/// A `ResourceUpdated` change notification: like [`resource_created`] plus `oldVersion`.
pub fn resource_updated(
    project_key: &str,
    type_id: &str,
    id: &str,
    version: i64,
    old_version: i64,
    modified_at: &str,
) -> Value {
    let mut out = change("ResourceUpdated", project_key, type_id, id, version);
    out.insert("oldVersion".into(), json!(old_version));
    out.insert("modifiedAt".into(), json!(modified_at));
    Value::Object(out)
}

/// A `ResourceDeleted` change notification: like [`resource_created`] (`version` = the last
/// version), plus `dataErasure: true` when the resource was deleted with data erasure.
pub fn resource_deleted(
    project_key: &str,
    type_id: &str,
    id: &str,
    version: i64,
    modified_at: &str,
    data_erasure: bool,
) -> Value {
    let mut out = change("ResourceDeleted", project_key, type_id, id, version);
    out.insert("modifiedAt".into(), json!(modified_at));
    if data_erasure {
        out.insert("dataErasure".into(), json!(true));
    }
    Value::Object(out)
}

/// The user-provided identifiers of a stored resource, as commercetools reports them in
/// `resourceUserProvidedIdentifiers`: whichever of `key`, `externalId`, `orderNumber`,
/// `customerNumber`, `sku` and `slug` it has.
pub fn user_provided_identifiers(resource: &Value) -> Value {
    let mut out = Map::new();
    for k in [
        "key",
        "externalId",
        "orderNumber",
        "customerNumber",
        "sku",
        "slug",
    ] {
        if let Some(v) = resource.get(k).filter(|v| !v.is_null()) {
            out.insert(k.into(), v.clone());
        }
    }
    Value::Object(out)
}

/// `payload` with `resourceUserProvidedIdentifiers` replaced by `identifiers`.
pub fn with_identifiers(mut payload: Value, identifiers: Value) -> Value {
    payload["resourceUserProvidedIdentifiers"] = identifiers;
    payload
}

/// A message delivery whose payload did not fit the destination: [`message_payload`] without
/// the type-specific fields (everything but [`MESSAGE_BASE_FIELDS`]) and with
/// `payloadNotIncluded: {reason: "Payload too large.", payloadType: <message type>}`.
pub fn payload_not_included(message: &Value, project_key: &str) -> Value {
    let full = message_payload(message, project_key);
    let mut out = Map::new();
    if let Some(m) = full.as_object() {
        for (k, v) in m {
            if k == "notificationType"
                || k == "projectKey"
                || MESSAGE_BASE_FIELDS.contains(&k.as_str())
            {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    out.insert(
        "payloadNotIncluded".into(),
        json!({"reason": PAYLOAD_TOO_LARGE, "payloadType": message["type"]}),
    );
    Value::Object(out)
}

/// The URL path segment of a resource type id (`order` → `orders`, `category` → `categories`,
/// `inventory-entry` → `inventory`).
pub fn resource_path(type_id: &str) -> String {
    match type_id {
        "inventory-entry" => "inventory".into(),
        t if t.ends_with('y') => format!("{}ies", &t[..t.len() - 1]),
        t => format!("{t}s"),
    }
}

/// The CloudEvents (structured, `specversion "1.0"`) form of a Platform payload:
///
/// * messages: `id` = message id, `type "com.commercetools.<typeId>.message.<Type>"`, `time` =
///   `createdAt`, `sequence` = `sequenceNumber` as a string, `dataref
///   "/<projectKey>/messages/<id>"`;
/// * changes: `id` = a UUID v5 of (resource id, version, notification type), `type
///   "com.commercetools.<typeId>.change.<ResourceCreated|ResourceUpdated|ResourceDeleted>"`,
///   `time` = `modifiedAt`, `sequence` = `version` as a string, `dataref
///   "/<projectKey>/<resources>/<id>"`;
///
/// always `source "/<projectKey>/<resources>"`, `subject` = resource id, `sequencetype
/// "Integer"` and `data` = the payload.
pub fn cloud_event(platform_payload: &Value) -> Value {
    let p = platform_payload;
    let pk = p["projectKey"].as_str().unwrap_or_default();
    let type_id = p["resource"]["typeId"].as_str().unwrap_or_default();
    let rid = p["resource"]["id"].as_str().unwrap_or_default();
    let kind = p["notificationType"].as_str().unwrap_or_default();
    let (id, ce_type, time, sequence, dataref) = if kind == "Message" {
        let mid = p["id"].as_str().unwrap_or_default().to_owned();
        (
            mid.clone(),
            format!(
                "com.commercetools.{type_id}.message.{}",
                p["type"].as_str().unwrap_or_default()
            ),
            p["createdAt"].clone(),
            p["sequenceNumber"].to_string(),
            format!("/{pk}/messages/{mid}"),
        )
    } else {
        let version = p["version"].to_string();
        (
            crate::orders::derived_id("cloud-event", &format!("{rid}:{version}:{kind}")),
            format!("com.commercetools.{type_id}.change.{kind}"),
            p["modifiedAt"].clone(),
            version,
            format!("/{pk}/{}/{rid}", resource_path(type_id)),
        )
    };
    json!({
        "id": id,
        "source": format!("/{pk}/{}", resource_path(type_id)),
        "specversion": "1.0",
        "type": ce_type,
        "subject": rid,
        "time": time,
        "dataref": dataref,
        "sequence": sequence,
        "sequencetype": "Integer",
        "data": p,
    })
}

/// The Google Cloud Pub/Sub push envelope delivering `payload`: `{message: {attributes, data:
/// <standard base64 of the compact JSON>, messageId, message_id, publishTime, publish_time},
/// subscription}`. `attributes` is `{"content-type": "application/cloudevents+json"}` for a
/// CloudEvent (structured mode of the Pub/Sub protocol binding) and `{}` otherwise;
/// `publishTime` is the payload's `createdAt`, `modifiedAt` or `time` (the epoch without one);
/// `subscription` is [`PUBSUB_SUBSCRIPTION`].
pub fn pubsub_push(payload: &Value, message_id: &str) -> Value {
    let data = base64::engine::general_purpose::STANDARD.encode(payload.to_string());
    let attributes = if payload.get("specversion").is_some() {
        json!({"content-type": "application/cloudevents+json"})
    } else {
        json!({})
    };
    let publish_time = ["createdAt", "modifiedAt", "time"]
        .iter()
        .find_map(|k| payload.get(*k).and_then(Value::as_str))
        .unwrap_or("1970-01-01T00:00:00.000Z");
    json!({
        "message": {
            "attributes": attributes,
            "data": data,
            "messageId": message_id,
            "message_id": message_id,
            "publishTime": publish_time,
            "publish_time": publish_time,
        },
        "subscription": PUBSUB_SUBSCRIPTION,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    fn example(name: &str) -> Option<Value> {
        let path = format!(
            "{}/../../../shared/examples/commercetools/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        match std::fs::read_to_string(path) {
            Ok(text) => Some(serde_json::from_str(&text).unwrap()),
            Err(_) => {
                println!("skipped: ../shared not present");
                None
            }
        }
    }

    fn keys(v: &Value) -> BTreeSet<String> {
        v.as_object().unwrap().keys().cloned().collect()
    }

    fn without(v: &Value, drop: &[&str]) -> BTreeSet<String> {
        keys(v)
            .into_iter()
            .filter(|k| !drop.contains(&k.as_str()))
            .collect()
    }

    /// An `OrderPaymentStateChanged` message as the emulator records it.
    fn payment_message() -> Value {
        json!({
            "id": "m-1", "version": 1, "sequenceNumber": 2,
            "resource": {"typeId": "order", "id": "o-1"}, "resourceVersion": 2,
            "resourceUserProvidedIdentifiers": {"orderNumber": "ORD-1"},
            "type": "OrderPaymentStateChanged",
            "paymentState": "Paid", "oldPaymentState": "Pending",
            "createdAt": "2026-03-01T10:00:00.000Z", "lastModifiedAt": "2026-03-01T10:00:00.000Z",
            "lastModifiedBy": {"clientId": "c", "isPlatformClient": false},
            "createdBy": {"clientId": "c", "isPlatformClient": false},
        })
    }

    #[test]
    fn message_payload_has_the_keys_of_the_official_example() {
        let Some(ex) = example("subscription-message-payload.api-reference.json") else {
            return;
        };
        let mut m = payment_message();
        let obj = m.as_object_mut().unwrap();
        obj.remove("createdBy");
        obj.remove("lastModifiedBy");
        let ours = message_payload(&m, "pk");
        assert_eq!(
            without(&ours, &["paymentState", "oldPaymentState"]),
            without(&ex, &["lastName"])
        );
        assert_eq!(ours["notificationType"], "Message");
        assert_eq!(ours["projectKey"], "pk");
        assert_eq!(ours["paymentState"], "Paid");
    }

    #[test]
    fn change_payloads_have_exactly_the_keys_of_the_official_examples() {
        let Some(created) = example("subscription-resource-created.api-reference.json") else {
            return;
        };
        let updated = example("subscription-resource-updated.api-reference.json").unwrap();
        let deleted = example("subscription-resource-deleted.api-reference.json").unwrap();
        let at = "2026-03-01T10:00:00.000Z";
        let c = resource_created("pk", "cart", "c-1", 1, at);
        let u = resource_updated("pk", "cart", "c-1", 3, 1, at);
        let d = resource_deleted("pk", "cart", "c-1", 3, at, false);
        assert_eq!(keys(&c), keys(&created));
        assert_eq!(keys(&u), keys(&updated));
        assert_eq!(keys(&d), keys(&deleted));
        assert_eq!(keys(&c["resource"]), keys(&created["resource"]));
        assert_eq!(u["notificationType"], "ResourceUpdated");
        assert_eq!(u["oldVersion"], 1);
        assert_eq!(
            resource_deleted("pk", "customer", "x", 2, at, true)["dataErasure"],
            true
        );
    }

    #[test]
    fn payload_not_included_keeps_the_base_fields_and_names_the_payload_type() {
        let Some(ex) = example("subscription-payload-not-included.api-reference.json") else {
            return;
        };
        let p = payload_not_included(&payment_message(), "pk");
        assert_eq!(keys(&p["payloadNotIncluded"]), keys(&ex));
        assert_eq!(
            p["payloadNotIncluded"]["payloadType"],
            "OrderPaymentStateChanged"
        );
        assert_eq!(p["payloadNotIncluded"]["reason"], PAYLOAD_TOO_LARGE);
        assert!(p.get("paymentState").is_none() && p.get("oldPaymentState").is_none());
        assert_eq!(p["sequenceNumber"], 2);
        assert_eq!(p["resource"]["id"], "o-1");
    }

    #[test]
    fn cloud_event_has_exactly_the_keys_of_the_official_example() {
        let Some(ex) = example("subscription-cloudevents-payload.api-reference.json") else {
            return;
        };
        let ce = cloud_event(&message_payload(&payment_message(), "pk"));
        assert_eq!(keys(&ce), keys(&ex));
        assert_eq!(
            ce["type"],
            "com.commercetools.order.message.OrderPaymentStateChanged"
        );
        assert_eq!(ce["source"], "/pk/orders");
        assert_eq!(ce["subject"], "o-1");
        assert_eq!(ce["sequence"], "2");
        assert_eq!(ce["dataref"], "/pk/messages/m-1");
        assert_eq!(ce["data"]["notificationType"], "Message");
        let change = cloud_event(&resource_updated("pk", "category", "k", 4, 3, "t"));
        assert_eq!(
            change["type"],
            "com.commercetools.category.change.ResourceUpdated"
        );
        assert_eq!(change["source"], "/pk/categories");
        assert_eq!(change["sequence"], "4");
    }

    #[test]
    fn pubsub_push_encodes_the_payload_in_the_google_envelope() {
        let Some(ex) = example("pubsub-push-envelope.google-docs.json") else {
            return;
        };
        let payload = message_payload(&payment_message(), "pk");
        let env = pubsub_push(&payload, "136969346945");
        assert_eq!(keys(&env), keys(&ex));
        let ours = keys(&env["message"]);
        let theirs = keys(&ex["message"]);
        assert!(theirs.is_subset(&ours), "{theirs:?} ⊄ {ours:?}");
        let extra: BTreeSet<String> = ours.difference(&theirs).cloned().collect();
        let want: BTreeSet<String> = ["messageId", "publishTime", "publish_time"]
            .map(String::from)
            .into();
        assert_eq!(extra, want);
        let data = base64::engine::general_purpose::STANDARD
            .decode(env["message"]["data"].as_str().unwrap())
            .unwrap();
        assert_eq!(serde_json::from_slice::<Value>(&data).unwrap(), payload);
        assert_eq!(env["message"]["messageId"], env["message"]["message_id"]);
        assert_eq!(env["message"]["publishTime"], "2026-03-01T10:00:00.000Z");
        let ce = pubsub_push(&cloud_event(&payload), "1");
        assert_eq!(
            ce["message"]["attributes"]["content-type"],
            "application/cloudevents+json"
        );
    }

    #[test]
    fn resource_paths_are_plural() {
        assert_eq!(resource_path("order"), "orders");
        assert_eq!(resource_path("category"), "categories");
        assert_eq!(resource_path("discount-code"), "discount-codes");
        assert_eq!(resource_path("inventory-entry"), "inventory");
    }

    #[test]
    fn user_provided_identifiers_pick_the_known_fields() {
        let ids = user_provided_identifiers(&json!({"id": "x", "orderNumber": "7", "key": null}));
        assert_eq!(ids, json!({"orderNumber": "7"}));
    }
}
