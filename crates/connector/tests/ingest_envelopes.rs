//! Webhook body parsing (`connector::ingest`): the official commercetools example payloads,
//! bare and inside a Google Pub/Sub push envelope, hand-built edge cases, every refusal with
//! its status, and a property test that no input panics.
//!
//! The official examples live in `../shared/examples/commercetools/`; without them the tests
//! that need them print one `skipped:` line and pass.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use connector::ingest::{
    Envelope, IngestError, MAX_BODY, Notification, NotificationKind, PayloadFormat, ResourceRef,
    parse,
};
use proptest::prelude::*;
use serde_json::{Value, json};
use time::macros::datetime;

/// `<workspace>/../shared/examples/commercetools`, or `None` (after printing one line) when absent.
fn examples_dir() -> Option<PathBuf> {
    let dir =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/examples/commercetools");
    if dir.is_dir() {
        Some(dir)
    } else {
        println!("skipped: ../shared/examples not found");
        None
    }
}

fn read(dir: &Path, file: &str) -> Vec<u8> {
    std::fs::read(dir.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"))
}

fn read_json(dir: &Path, file: &str) -> Value {
    serde_json::from_slice(&read(dir, file)).unwrap_or_else(|e| panic!("{file}: {e}"))
}

fn ok(body: &[u8]) -> Notification {
    parse(body).unwrap_or_else(|e| panic!("{e}"))
}

fn ok_json(body: &Value) -> Notification {
    ok(body.to_string().as_bytes())
}

fn err_json(body: &Value) -> IngestError {
    parse(body.to_string().as_bytes()).expect_err("should be refused")
}

/// A Pub/Sub push envelope around `inner`, with `messageId` and `message_id` as Pub/Sub sends.
fn pubsub(inner: &[u8], message_id: &str) -> Value {
    json!({
        "message": {
            "attributes": {"content-type": "application/json"},
            "data": STANDARD.encode(inner),
            "messageId": message_id,
            "message_id": message_id,
            "publishTime": "2026-11-27T10:00:00.123Z",
            "publish_time": "2026-11-27T10:00:00.123Z"
        },
        "subscription": "projects/gcp-project/subscriptions/ct-omnisend"
    })
}

fn resource(type_id: &str, id: &str, key: Option<&str>) -> ResourceRef {
    ResourceRef {
        type_id: type_id.to_owned(),
        id: id.to_owned(),
        key: key.map(str::to_owned),
    }
}

/// A hand-built `OrderCreated` Message in the Platform format, with an in-store order.
fn order_created() -> Value {
    json!({
        "notificationType": "Message",
        "projectKey": "shop",
        "id": "6be1d202-898c-4888-a1b2-000000000001",
        "version": 1,
        "sequenceNumber": 1,
        "resource": {"typeId": "order", "id": "ord-1"},
        "resourceVersion": 1,
        "resourceUserProvidedIdentifiers": {"orderNumber": "10001"},
        "type": "OrderCreated",
        "order": {
            "id": "ord-1",
            "version": 1,
            "store": {"typeId": "store", "key": "de-store"},
            "totalPrice": {"type": "centPrecision", "currencyCode": "EUR", "centAmount": 4200, "fractionDigits": 2}
        },
        "createdAt": "2026-11-27T09:59:59.001Z",
        "lastModifiedAt": "2026-11-27T09:59:59.001Z"
    })
}

/// The subscription test notification, as quoted in the module documentation.
fn subscription_test() -> Value {
    json!({
        "notificationType": "ResourceCreated",
        "projectKey": "shop",
        "resource": {"typeId": "subscription", "id": "a7c1fb22-b164-4b4b-0000-000000000000"},
        "resourceUserProvidedIdentifiers": {"key": "ct-omnisend"},
        "version": 1,
        "modifiedAt": "2025-04-01T16:07:22.335Z"
    })
}

fn remove_path(v: &mut Value, path: &str) {
    let mut parts: Vec<&str> = path.split('.').collect();
    let last = parts.pop().unwrap();
    let mut cur = v;
    for p in parts {
        cur = cur.get_mut(p).unwrap();
    }
    cur.as_object_mut().unwrap().remove(last).unwrap();
}

// ---------------------------------------------------------------------------------------------
// Official examples

#[test]
fn the_official_message_payload_parses_with_its_ids_sequence_number_and_version() {
    let Some(dir) = examples_dir() else {
        return;
    };
    let n = ok(&read(
        &dir,
        "subscription-message-payload.api-reference.json",
    ));
    assert_eq!(n.envelope, Envelope::Platform);
    assert_eq!(n.format, PayloadFormat::Platform);
    assert_eq!(n.delivery_id, "<message_id>");
    assert_eq!(n.resource, resource("customer", "<customer_id>", None));
    assert_eq!(n.project_key.as_deref(), Some("<project_key>"));
    assert_eq!(n.created_at, Some(datetime!(2022-10-25 13:30:09.760 UTC)));
    assert_eq!(n.store_key, None);
    assert_eq!(n.pubsub, None);
    let NotificationKind::Message {
        message_type,
        sequence_number,
        resource_version,
        message_id,
        payload,
        payload_included,
    } = &n.kind
    else {
        panic!("not a message: {:?}", n.kind);
    };
    assert_eq!(message_type, "CustomerLastNameSet");
    assert_eq!((*sequence_number, *resource_version), (2, 2));
    assert_eq!(message_id, "<message_id>");
    assert!(*payload_included);
    assert_eq!(payload["lastName"], "Doe", "type-specific fields are kept");
    assert_eq!(
        payload,
        &read_json(&dir, "subscription-message-payload.api-reference.json"),
        "the payload is the whole message"
    );
    assert_eq!(n.kind.name(), "CustomerLastNameSet");
    assert_eq!(n.kind.sequence_number(), Some(2));
    assert_eq!(n.kind.resource_version(), Some(2));
}

#[test]
fn the_official_change_payloads_parse_with_their_versions_and_a_derived_delivery_id() {
    let Some(dir) = examples_dir() else {
        return;
    };
    let created = ok(&read(
        &dir,
        "subscription-resource-created.api-reference.json",
    ));
    assert_eq!(created.envelope, Envelope::Platform);
    assert_eq!(
        created.kind,
        NotificationKind::ResourceCreated {
            version: 1,
            modified_at: Some(datetime!(2022-10-25 13:23:05.384 UTC)),
        }
    );
    assert_eq!(
        created.resource,
        resource("product", "<product_id>", Some("example-product-key"))
    );
    assert_eq!(created.project_key.as_deref(), Some("<project_key>"));
    assert_eq!(
        created.delivery_id,
        "ResourceCreated/<project_key>/product/<product_id>/1"
    );
    assert_eq!(
        created.created_at,
        Some(datetime!(2022-10-25 13:23:05.384 UTC))
    );

    let updated = ok(&read(
        &dir,
        "subscription-resource-updated.api-reference.json",
    ));
    assert_eq!(
        updated.kind,
        NotificationKind::ResourceUpdated {
            version: 3,
            old_version: Some(1),
            modified_at: Some(datetime!(2022-10-25 13:23:40.577 UTC)),
        }
    );
    assert_eq!(
        updated.resource,
        resource("product", "<product-id>", Some("example-product-key"))
    );
    assert_eq!(
        updated.delivery_id,
        "ResourceUpdated/<project-key>/product/<product-id>/3"
    );

    let deleted = ok(&read(
        &dir,
        "subscription-resource-deleted.api-reference.json",
    ));
    assert_eq!(
        deleted.kind,
        NotificationKind::ResourceDeleted {
            version: 3,
            modified_at: Some(datetime!(2022-10-25 13:23:50.113 UTC)),
            data_erasure: false,
        }
    );
    assert_eq!(
        deleted.delivery_id, "ResourceDeleted/<project-key>/product/<product-id>/3",
        "a deletion at the version of the last update gets its own delivery id"
    );
    assert_ne!(deleted.delivery_id, updated.delivery_id);
    assert_eq!(deleted.kind.resource_version(), Some(3));
    assert_eq!(deleted.kind.sequence_number(), None);
}

#[test]
fn the_official_cloudevents_payload_parses_as_the_same_message() {
    let Some(dir) = examples_dir() else {
        return;
    };
    let n = ok(&read(
        &dir,
        "subscription-cloudevents-payload.api-reference.json",
    ));
    assert_eq!(n.envelope, Envelope::CloudEvents);
    assert_eq!(n.format, PayloadFormat::CloudEvents);
    assert_eq!(n.delivery_id, "81ee6da8-5bc2-471b-9159-89bac735a45d");
    assert_eq!(
        n.resource,
        resource(
            "product",
            "b32d1013-cd25-4cb4-95ab-99c494531d73",
            Some("product-key-1")
        )
    );
    assert_eq!(n.project_key.as_deref(), Some("<project-key>"));
    assert_eq!(n.created_at, Some(datetime!(2022-06-17 08:41:58.066 UTC)));
    let NotificationKind::Message {
        message_type,
        sequence_number,
        resource_version,
        message_id,
        payload,
        payload_included,
    } = &n.kind
    else {
        panic!("not a message: {:?}", n.kind);
    };
    assert_eq!(message_type, "ProductPublished");
    assert_eq!((*sequence_number, *resource_version), (2, 2));
    assert_eq!(message_id, "81ee6da8-5bc2-471b-9159-89bac735a45d");
    assert!(*payload_included);
    assert_eq!(payload["productProjection"]["published"], true);
    assert_eq!(payload["notificationType"], "Message", "payload is `data`");
}

#[test]
fn a_message_with_the_official_payload_not_included_block_asks_for_a_fetch_by_id() {
    let Some(dir) = examples_dir() else {
        return;
    };
    // The official example is the `payloadNotIncluded` object; MessageDeliveryPayload then has
    // no `type` and no type-specific fields.
    let block = read_json(&dir, "subscription-payload-not-included.api-reference.json");
    let body = json!({
        "notificationType": "Message",
        "projectKey": "shop",
        "id": "msg-big-1",
        "version": 1,
        "sequenceNumber": 7,
        "resource": {"typeId": "product", "id": "prod-big"},
        "resourceVersion": 12,
        "payloadNotIncluded": block,
        "createdAt": "2026-11-27T10:00:00.000Z",
        "lastModifiedAt": "2026-11-27T10:00:00.000Z"
    });
    let n = ok_json(&body);
    let NotificationKind::Message {
        message_type,
        payload_included,
        sequence_number,
        resource_version,
        ..
    } = &n.kind
    else {
        panic!("not a message: {:?}", n.kind);
    };
    assert_eq!(message_type, "ProductPublished", "from payloadType");
    assert!(!payload_included);
    assert_eq!((*sequence_number, *resource_version), (7, 12));
    assert_eq!(n.resource.id, "prod-big");
    assert_eq!(n.delivery_id, "msg-big-1");

    // And through Pub/Sub.
    let n = ok_json(&pubsub(body.to_string().as_bytes(), "ps-big"));
    assert!(matches!(
        n.kind,
        NotificationKind::Message {
            payload_included: false,
            ..
        }
    ));
}

#[test]
fn every_official_example_parses_the_same_inside_a_pubsub_envelope() {
    let Some(dir) = examples_dir() else {
        return;
    };
    for (i, file) in [
        "subscription-message-payload.api-reference.json",
        "subscription-resource-created.api-reference.json",
        "subscription-resource-updated.api-reference.json",
        "subscription-resource-deleted.api-reference.json",
        "subscription-cloudevents-payload.api-reference.json",
    ]
    .into_iter()
    .enumerate()
    {
        let raw = read(&dir, file);
        let bare = ok(&raw);
        let message_id = format!("1369693469{i}");
        let wrapped = ok_json(&pubsub(&raw, &message_id));
        assert_eq!(wrapped.envelope, Envelope::PubSubPush, "{file}");
        assert_eq!(wrapped.delivery_id, message_id, "{file}");
        assert_eq!(wrapped.format, bare.format, "{file}");
        assert_eq!(wrapped.kind, bare.kind, "{file}");
        assert_eq!(wrapped.resource, bare.resource, "{file}");
        assert_eq!(wrapped.project_key, bare.project_key, "{file}");
        assert_eq!(wrapped.created_at, bare.created_at, "{file}");
        assert_eq!(wrapped.store_key, bare.store_key, "{file}");
        let ps = wrapped.pubsub.expect("pubsub info");
        assert_eq!(ps.message_id, message_id);
        assert_eq!(
            ps.subscription.as_deref(),
            Some("projects/gcp-project/subscriptions/ct-omnisend")
        );
        assert_eq!(
            ps.publish_time,
            Some(datetime!(2026-11-27 10:00:00.123 UTC))
        );
        assert_eq!(
            ps.attributes.get("content-type").map(String::as_str),
            Some("application/json")
        );
    }
}

#[test]
fn the_official_google_envelope_is_read_but_its_hello_world_data_is_not_json() {
    let Some(dir) = examples_dir() else {
        return;
    };
    // Its data decodes to "Hello Cloud Pub/Sub! Here is my message!": valid base64, not JSON.
    let err = parse(&read(&dir, "pubsub-push-envelope.google-docs.json")).unwrap_err();
    assert!(
        matches!(
            err,
            IngestError::NotJson {
                location: "message.data",
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(err.status(), 400);
    assert!(err.is_malformed() && !err.is_permanent());
    assert_eq!(err.field(), Some("message.data"));

    // The same envelope (snake-case `message_id` only) with a commercetools payload parses.
    let mut env = read_json(&dir, "pubsub-push-envelope.google-docs.json");
    env["message"]["data"] = STANDARD.encode(order_created().to_string()).into();
    let n = ok_json(&env);
    assert_eq!(n.delivery_id, "136969346945");
    assert_eq!(n.pubsub.as_ref().unwrap().publish_time, None);
    assert_eq!(
        n.pubsub
            .as_ref()
            .unwrap()
            .attributes
            .get("key")
            .map(String::as_str),
        Some("value")
    );
}

// ---------------------------------------------------------------------------------------------
// Pub/Sub envelope details

#[test]
fn message_id_is_preferred_to_message_id_in_snake_case_and_either_alone_is_enough() {
    let inner = order_created().to_string();
    let mut env = pubsub(inner.as_bytes(), "camel");
    env["message"]["message_id"] = "snake".into();
    assert_eq!(ok_json(&env).delivery_id, "camel", "messageId wins");

    env["message"].as_object_mut().unwrap().remove("messageId");
    assert_eq!(ok_json(&env).delivery_id, "snake");

    let mut camel_only = pubsub(inner.as_bytes(), "camel");
    camel_only["message"]
        .as_object_mut()
        .unwrap()
        .remove("message_id");
    assert_eq!(ok_json(&camel_only).delivery_id, "camel");

    env["message"].as_object_mut().unwrap().remove("message_id");
    let err = err_json(&env);
    assert_eq!(err.field(), Some("message.messageId"), "{err}");
    assert_eq!(err.status(), 400);
}

#[test]
fn the_pubsub_message_id_is_the_delivery_id_even_for_a_message_with_its_own_id() {
    let inner = order_created().to_string();
    let n = ok_json(&pubsub(inner.as_bytes(), "ps-1"));
    assert_eq!(n.delivery_id, "ps-1");
    let NotificationKind::Message { message_id, .. } = &n.kind else {
        panic!()
    };
    assert_eq!(message_id, "6be1d202-898c-4888-a1b2-000000000001");
    assert_eq!(n.store_key.as_deref(), Some("de-store"));
}

#[test]
fn url_safe_unpadded_and_line_wrapped_base64_are_tolerated() {
    let mut order = order_created();
    // `???>>>` makes standard base64 emit `/` and `+`, so URL-safe really differs.
    order["order"]["note"] = "???>>>???>>>".into();
    let inner = order.to_string();
    let standard = STANDARD.encode(&inner);
    assert!(
        standard.contains(['+', '/']),
        "test data must exercise the alphabet"
    );
    let expected = ok_json(&pubsub(inner.as_bytes(), "x"));

    let mut env = pubsub(inner.as_bytes(), "x");
    env["message"]["data"] = URL_SAFE_NO_PAD.encode(&inner).into();
    assert_eq!(ok_json(&env), expected, "url-safe, no padding");

    env["message"]["data"] = standard.trim_end_matches('=').into();
    assert_eq!(ok_json(&env), expected, "standard, no padding");

    let wrapped: Vec<String> = standard
        .as_bytes()
        .chunks(76)
        .map(|c| String::from_utf8(c.to_vec()).unwrap())
        .collect();
    env["message"]["data"] = wrapped.join("\r\n").into();
    assert_eq!(ok_json(&env), expected, "MIME line breaks");
}

#[test]
fn a_cloud_event_inside_pubsub_keeps_the_pubsub_delivery_id_and_the_cloudevents_format() {
    let ce = json!({
        "specversion": "1.0",
        "id": "ce-1",
        "type": "com.commercetools.order.message.OrderCreated",
        "source": "/shop/orders",
        "subject": "ord-1",
        "time": "2026-11-27T09:59:59.001Z",
        "sequence": "1",
        "sequencetype": "Integer",
        "data": order_created()
    });
    let n = ok_json(&pubsub(ce.to_string().as_bytes(), "ps-ce"));
    assert_eq!(n.envelope, Envelope::PubSubPush);
    assert_eq!(n.format, PayloadFormat::CloudEvents);
    assert_eq!(n.delivery_id, "ps-ce");
    assert_eq!(n.kind.name(), "OrderCreated");
    assert_eq!(n.store_key.as_deref(), Some("de-store"));

    let bare = ok_json(&ce);
    assert_eq!(bare.delivery_id, "ce-1");
    assert_eq!(bare.kind, n.kind);
}

// ---------------------------------------------------------------------------------------------
// CloudEvents details

#[test]
fn a_change_cloud_event_takes_its_project_key_from_source_when_data_has_none() {
    let mut data = subscription_test();
    data["resource"] = json!({"typeId": "cart", "id": "cart-9"});
    data["notificationType"] = "ResourceUpdated".into();
    data["version"] = 5.into();
    data["oldVersion"] = 4.into();
    data.as_object_mut().unwrap().remove("projectKey");
    data.as_object_mut().unwrap().remove("modifiedAt");
    let ce = json!({
        "specversion": "1.0",
        "id": "ce-cart-9-5",
        "type": "com.commercetools.cart.change.ResourceUpdated",
        "source": "/shop-eu/carts",
        "subject": "cart-9",
        "time": "2026-11-27T11:00:00Z",
        "data": data
    });
    let n = ok_json(&ce);
    assert_eq!(n.project_key.as_deref(), Some("shop-eu"));
    assert_eq!(n.delivery_id, "ce-cart-9-5");
    assert_eq!(
        n.created_at,
        Some(datetime!(2026-11-27 11:00:00 UTC)),
        "CloudEvents `time` when the change has no modifiedAt"
    );
    assert_eq!(
        n.kind,
        NotificationKind::ResourceUpdated {
            version: 5,
            old_version: Some(4),
            modified_at: None
        }
    );
}

#[test]
fn a_cloud_event_whose_subject_is_not_the_resource_is_malformed() {
    let ce = json!({
        "specversion": "1.0",
        "id": "ce-1",
        "type": "com.commercetools.order.message.OrderCreated",
        "source": "/shop/orders",
        "subject": "some-other-order",
        "data": order_created()
    });
    let err = err_json(&ce);
    assert_eq!(err.field(), Some("subject"), "{err}");
    assert_eq!(err.status(), 400);
}

#[test]
fn a_cloud_event_of_another_spec_version_or_without_data_is_malformed() {
    let mut ce = json!({
        "specversion": "0.3",
        "id": "ce-1",
        "type": "com.commercetools.order.message.OrderCreated",
        "source": "/shop/orders",
        "data": order_created()
    });
    let err = err_json(&ce);
    assert_eq!(err.field(), Some("specversion"), "{err}");
    assert_eq!(err.status(), 400);

    ce["specversion"] = "1.0".into();
    ce.as_object_mut().unwrap().remove("data");
    let err = err_json(&ce);
    assert_eq!(err.field(), Some("data"), "{err}");

    ce["data"] = "not an object".into();
    let err = err_json(&ce);
    assert_eq!(err.field(), Some("data"), "{err}");
    assert!(err.to_string().contains("expected an object"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// The subscription test message

#[test]
fn the_subscription_test_message_is_recognised_bare_in_pubsub_and_as_a_cloud_event() {
    let test = subscription_test();
    let bare = ok_json(&test);
    assert_eq!(bare.kind, NotificationKind::SubscriptionTest);
    assert_eq!(
        bare.resource,
        resource(
            "subscription",
            "a7c1fb22-b164-4b4b-0000-000000000000",
            Some("ct-omnisend")
        )
    );
    assert_eq!(
        bare.delivery_id,
        "ResourceCreated/shop/subscription/a7c1fb22-b164-4b4b-0000-000000000000/1"
    );
    assert_eq!(bare.kind.name(), "SubscriptionTest");
    assert_eq!(bare.kind.resource_version(), None);

    let wrapped = ok_json(&pubsub(test.to_string().as_bytes(), "ps-test"));
    assert_eq!(wrapped.kind, NotificationKind::SubscriptionTest);

    let ce = json!({
        "specversion": "1.0",
        "id": "ce-test",
        "type": "com.commercetools.subscription.change.ResourceCreated",
        "source": "/shop/subscriptions",
        "subject": "a7c1fb22-b164-4b4b-0000-000000000000",
        "data": test
    });
    assert_eq!(ok_json(&ce).kind, NotificationKind::SubscriptionTest);

    // Only creation of a subscription is the test; a product creation is a real change.
    let mut product = subscription_test();
    product["resource"]["typeId"] = "product".into();
    assert!(matches!(
        ok_json(&product).kind,
        NotificationKind::ResourceCreated { version: 1, .. }
    ));
}

// ---------------------------------------------------------------------------------------------
// Refusals

#[test]
fn bodies_that_are_not_json_are_malformed_with_status_400() {
    for body in [
        &b"not json"[..],
        b"",
        b"{\"notificationType\":",
        b"\xff\xfe{}",
    ] {
        let err = parse(body).unwrap_err();
        assert!(
            matches!(
                err,
                IngestError::NotJson {
                    location: "body",
                    ..
                }
            ),
            "{err:?}"
        );
        assert_eq!(err.status(), 400);
        assert!(!err.is_permanent());
        assert!(err.to_string().contains("body is not JSON"), "{err}");
    }
    for body in ["[]", "\"x\"", "42", "null"] {
        let err = parse(body.as_bytes()).unwrap_err();
        assert_eq!(err.field(), Some("body"), "{err}");
        assert_eq!(err.status(), 400);
    }
    let err = err_json(&json!({"hello": "world"}));
    assert_eq!(err.field(), Some("notificationType"), "{err}");
    assert_eq!(err.status(), 400);
}

#[test]
fn bad_base64_is_malformed_with_status_400_and_nothing_else_is_read() {
    let mut env = pubsub(b"{}", "ps-bad");
    for data in ["!!!not base64!!!", "SGVsbG8+/_-", "A"] {
        env["message"]["data"] = data.into();
        let err = err_json(&env);
        assert!(
            matches!(err, IngestError::BadBase64 { .. }),
            "{data}: {err:?}"
        );
        assert_eq!(err.status(), 400);
        assert!(err.is_malformed());
        assert_eq!(err.field(), Some("message.data"));
    }
}

#[test]
fn decoded_data_that_is_not_a_notification_is_malformed() {
    let err = err_json(&pubsub(b"[1,2,3]", "ps"));
    assert_eq!(err.field(), Some("message.data"), "{err}");

    let err = err_json(&pubsub(br#"{"hello":"world"}"#, "ps"));
    assert_eq!(err.field(), Some("message.data.notificationType"), "{err}");

    let nested = pubsub(order_created().to_string().as_bytes(), "inner");
    let err = err_json(&pubsub(nested.to_string().as_bytes(), "outer"));
    assert_eq!(
        err.status(),
        400,
        "a Pub/Sub envelope inside one is refused"
    );

    let mut env = pubsub(b"{}", "ps");
    env["message"].as_object_mut().unwrap().remove("data");
    let err = err_json(&env);
    assert_eq!(err.field(), Some("message.data"), "{err}");
    assert!(err.to_string().contains("missing"), "{err}");

    let mut env = pubsub(order_created().to_string().as_bytes(), "ps");
    env["message"]["attributes"]["n"] = 1.into();
    let err = err_json(&env);
    assert_eq!(err.field(), Some("message.attributes.n"), "{err}");
}

#[test]
fn each_missing_required_field_is_named_in_every_envelope() {
    let message = order_created();
    let change = json!({
        "notificationType": "ResourceUpdated",
        "projectKey": "shop",
        "resource": {"typeId": "cart", "id": "cart-1"},
        "version": 3,
        "oldVersion": 2,
        "modifiedAt": "2026-11-27T10:00:00Z"
    });
    let cases: [(&Value, &[&str]); 2] = [
        (
            &message,
            &[
                "resource",
                "resource.typeId",
                "resource.id",
                "id",
                "sequenceNumber",
                "resourceVersion",
                "type",
            ],
        ),
        (&change, &["resource", "resource.id", "version"]),
    ];
    for (payload, fields) in cases {
        for field in fields {
            let mut body = payload.clone();
            remove_path(&mut body, field);

            let err = err_json(&body);
            assert!(matches!(err, IngestError::BadEnvelope { .. }), "{err:?}");
            assert_eq!(err.field(), Some(*field), "{err}");
            assert!(
                err.to_string().contains(field),
                "message names the field: {err}"
            );
            assert_eq!(err.status(), 400);
            assert!(!err.is_permanent());

            let err = err_json(&pubsub(body.to_string().as_bytes(), "ps"));
            assert_eq!(
                err.field().map(str::to_owned),
                Some(format!("message.data.{field}"))
            );

            let ce = json!({
                "specversion": "1.0",
                "id": "ce-1",
                "type": "com.commercetools.x.message.Y",
                "source": "/shop/x",
                "data": body
            });
            let err = err_json(&ce);
            assert_eq!(
                err.field().map(str::to_owned),
                Some(format!("data.{field}"))
            );
        }
    }
}

#[test]
fn fields_of_the_wrong_type_are_refused_with_what_was_expected() {
    let cases = [
        (
            "sequenceNumber",
            json!("2"),
            "expected an integer, got a string",
        ),
        (
            "resourceVersion",
            json!(1.5),
            "expected an integer, got a number",
        ),
        (
            "createdAt",
            json!("yesterday"),
            "expected an RFC 3339 date-time",
        ),
        ("id", json!(""), "is empty"),
        (
            "resource",
            json!(["order"]),
            "expected an object, got an array",
        ),
        ("projectKey", json!(7), "expected a string, got a number"),
    ];
    for (field, value, reason) in cases {
        let mut body = order_created();
        body[field] = value;
        let err = err_json(&body);
        assert_eq!(err.field(), Some(field), "{err}");
        assert!(err.to_string().contains(reason), "{field}: {err}");
        assert_eq!(err.status(), 400);
    }
    let mut body = pubsub(b"{}", "ps");
    body["message"]["publishTime"] = "not a time".into();
    assert_eq!(err_json(&body).field(), Some("message.publishTime"));
}

#[test]
fn an_unknown_notification_type_is_well_formed_but_unprocessable() {
    let mut event = order_created();
    event["notificationType"] = "Event".into();
    let err = err_json(&event);
    assert_eq!(
        err,
        IngestError::UnknownNotificationType {
            notification_type: "Event".to_owned(),
            delivery_id: Some("6be1d202-898c-4888-a1b2-000000000001".to_owned()),
        }
    );
    assert!(err.is_permanent() && !err.is_malformed());
    assert_eq!(
        err.status(),
        202,
        "acknowledged so Pub/Sub stops redelivering"
    );
    assert!(
        err.to_string().contains("well-formed but unprocessable"),
        "{err}"
    );
    assert!(err.to_string().contains("Event"), "{err}");

    let err = err_json(&pubsub(event.to_string().as_bytes(), "ps-event"));
    assert!(err.is_permanent());
    assert_eq!(
        err.delivery_id(),
        Some("ps-event"),
        "dedup key for the rejected record"
    );

    let ce = json!({
        "specversion": "1.0",
        "id": "other-1",
        "type": "com.example.something.happened",
        "source": "/elsewhere",
        "data": {}
    });
    let err = err_json(&ce);
    assert!(err.is_permanent(), "{err:?}");
    assert_eq!(err.delivery_id(), Some("other-1"));

    let mut no_id = json!({"notificationType": "Surprise", "resource": {"typeId": "x", "id": "y"}});
    let err = err_json(&no_id);
    assert_eq!(err.delivery_id(), None);
    assert_eq!(err.status(), 202);
    no_id["notificationType"] = 3.into();
    assert_eq!(
        err_json(&no_id).status(),
        400,
        "a non-string type is malformed"
    );
}

#[test]
fn bodies_over_one_mebibyte_are_refused_before_parsing() {
    let err = parse(&vec![b'x'; MAX_BODY + 1]).unwrap_err();
    assert_eq!(err, IngestError::TooLarge { len: MAX_BODY + 1 });
    assert_eq!(err.status(), 413);
    assert!(err.is_malformed());

    // Exactly the limit is fine: a valid payload padded with whitespace.
    let mut body = order_created().to_string().into_bytes();
    body.resize(MAX_BODY, b' ');
    assert_eq!(ok(&body).kind.name(), "OrderCreated");
}

#[test]
fn deletion_with_data_erasure_is_reported() {
    let body = json!({
        "notificationType": "ResourceDeleted",
        "projectKey": "shop",
        "resource": {"typeId": "customer", "id": "cust-1"},
        "version": 9,
        "modifiedAt": "2026-11-27T10:00:00Z",
        "dataErasure": true
    });
    assert!(matches!(
        ok_json(&body).kind,
        NotificationKind::ResourceDeleted {
            version: 9,
            data_erasure: true,
            ..
        }
    ));
}

#[test]
fn the_store_key_is_read_from_a_top_level_store_reference_first() {
    let mut body = order_created();
    body["type"] = "OrderStoreSet".into();
    body["store"] = json!({"typeId": "store", "key": "fr-store"});
    assert_eq!(ok_json(&body).store_key.as_deref(), Some("fr-store"));

    let mut body = order_created();
    body["order"].as_object_mut().unwrap().remove("store");
    assert_eq!(ok_json(&body).store_key, None);
}

// ---------------------------------------------------------------------------------------------
// Properties

fn status_is_known(r: &Result<Notification, IngestError>) -> bool {
    match r {
        Ok(_) => true,
        Err(e) => matches!(e.status(), 400 | 413 | 202) && e.is_permanent() == (e.status() == 202),
    }
}

/// Small JSON values, nested a little.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        ".{0,12}".prop_map(Value::from),
        Just(Value::from("Message")),
        Just(Value::from("ResourceCreated")),
        Just(Value::from("subscription")),
        Just(Value::from("2026-11-27T10:00:00Z")),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(".{0,8}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

const FIELDS: &[&str] = &[
    "notificationType",
    "projectKey",
    "id",
    "sequenceNumber",
    "resource",
    "resourceVersion",
    "resourceUserProvidedIdentifiers",
    "type",
    "order",
    "createdAt",
    "payloadNotIncluded",
    "version",
    "modifiedAt",
    "store",
];

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..2048)) {
        let r = parse(&body);
        prop_assert!(status_is_known(&r));
    }

    #[test]
    fn arbitrary_bytes_as_pubsub_data_never_panic(data in prop::collection::vec(any::<u8>(), 0..512)) {
        let r = parse(pubsub(&data, "ps").to_string().as_bytes());
        prop_assert!(status_is_known(&r));
    }

    #[test]
    fn arbitrary_text_as_pubsub_data_never_panics(data in ".{0,200}") {
        let mut env = pubsub(b"", "ps");
        env["message"]["data"] = data.into();
        prop_assert!(status_is_known(&parse(env.to_string().as_bytes())));
    }

    #[test]
    fn any_field_replaced_by_any_value_never_panics(
        field in prop::sample::select(FIELDS),
        value in json_value(),
        wrap in 0..3u8,
    ) {
        let mut body = order_created();
        body[field] = value;
        let body = match wrap {
            0 => body,
            1 => pubsub(body.to_string().as_bytes(), "ps"),
            _ => json!({
                "specversion": "1.0", "id": "ce", "type": "com.commercetools.order.message.X",
                "data": body
            }),
        };
        let r = parse(body.to_string().as_bytes());
        prop_assert!(status_is_known(&r));
    }
}
