//! Subscription writes: the client against the emulator (create, read, update, delete; 400
//! `DuplicateField`, 409 `ConcurrentModification`, 404) and the write retry policy against a
//! scripted server (only what cannot have been applied is retried).

mod support;

use commercetools::subscription::{
    ChangeSubscription, DeliveryFormat, Destination, MessageSubscription, SubscriptionDraft,
    SubscriptionUpdateAction,
};
use commercetools::{CtClient, CtConfig, CtError};
use emulators::{CtEmulator, CtEmulatorConfig};
use support::{MockCt, Scripted};

async fn emulator_client() -> (CtEmulator, CtClient) {
    let ct = CtEmulator::start(CtEmulatorConfig::default())
        .await
        .unwrap();
    let mut cfg = CtConfig::new(
        "demo-project",
        ct.api_url(),
        ct.auth_url(),
        "demo-client",
        "demo-secret",
    );
    cfg.max_retries = 0;
    let client = CtClient::new(cfg).unwrap();
    (ct, client)
}

fn draft(key: &str, topic: &str) -> SubscriptionDraft {
    SubscriptionDraft {
        key: Some(key.into()),
        destination: Destination::GoogleCloudPubSub {
            project_id: "gcp".into(),
            topic: topic.into(),
        },
        messages: vec![MessageSubscription {
            resource_type_id: "order".into(),
            types: vec!["OrderCreated".into()],
        }],
        changes: vec![ChangeSubscription {
            resource_type_id: "cart".into(),
        }],
        format: Some(DeliveryFormat::cloud_events()),
    }
}

#[tokio::test]
async fn a_subscription_is_created_read_updated_and_deleted_by_key() {
    let (ct, client) = emulator_client().await;
    assert!(
        client
            .subscription_by_key("orders")
            .await
            .unwrap()
            .is_none()
    );

    let created = client
        .create_subscription(&draft("orders", "a"))
        .await
        .unwrap();
    assert_eq!(created.version, 1);
    assert_eq!(created.format, DeliveryFormat::cloud_events());
    let read = client.subscription_by_key("orders").await.unwrap().unwrap();
    assert_eq!(read.id, created.id);

    let updated = client
        .update_subscription_by_key(
            "orders",
            1,
            vec![
                SubscriptionUpdateAction::ChangeDestination {
                    destination: Destination::GoogleCloudPubSub {
                        project_id: "gcp".into(),
                        topic: "b".into(),
                    },
                },
                SubscriptionUpdateAction::SetMessages {
                    messages: Vec::new(),
                },
            ],
        )
        .await
        .unwrap();
    assert_eq!(
        (updated.id.as_str(), updated.version),
        (created.id.as_str(), 2)
    );
    assert!(updated.messages.is_empty());
    assert_eq!(
        ct.subscription_by_key("orders").unwrap()["destination"]["topic"],
        "b"
    );
    assert_eq!(client.subscriptions().await.unwrap().len(), 1);

    let deleted = client
        .delete_subscription_by_key("orders", 2)
        .await
        .unwrap();
    assert_eq!(deleted.id, created.id);
    assert!(ct.subscriptions().is_empty());
}

#[tokio::test]
async fn api_refusals_come_back_as_typed_errors_with_their_codes() {
    let (_ct, client) = emulator_client().await;
    client
        .create_subscription(&draft("dup", "a"))
        .await
        .unwrap();

    let dup = client
        .create_subscription(&draft("dup", "a"))
        .await
        .unwrap_err();
    assert_eq!(dup.status(), Some(400));
    assert!(dup.has_code("DuplicateField"), "{dup}");

    let stale = client
        .update_subscription_by_key("dup", 9, vec![])
        .await
        .unwrap_err();
    assert_eq!(stale.status(), Some(409));
    assert!(stale.has_code("ConcurrentModification"), "{stale}");
    let stale_delete = client
        .delete_subscription_by_key("dup", 9)
        .await
        .unwrap_err();
    assert!(stale_delete.has_code("ConcurrentModification"));

    let missing = client
        .delete_subscription_by_key("nope", 1)
        .await
        .unwrap_err();
    assert_eq!(missing.status(), Some(404));
    assert!(
        missing.to_string().contains("subscriptions/key=nope"),
        "{missing}"
    );

    let bad_key = client.subscription_by_key("a/b").await.unwrap_err();
    assert!(matches!(bad_key, CtError::Config(_)), "{bad_key}");
}

#[tokio::test]
async fn a_write_is_retried_after_503_but_not_after_a_502_that_may_have_applied_it() {
    let body = serde_json::to_string(&serde_json::json!({
        "id": "s1", "version": 1, "key": "k",
        "destination": {"type": "GoogleCloudPubSub", "projectId": "gcp", "topic": "t"},
        "messages": [], "changes": [{"resourceTypeId": "cart"}],
        "format": {"type": "Platform"},
        "createdAt": "2026-01-01T00:00:00.000Z", "lastModifiedAt": "2026-01-01T00:00:00.000Z"
    }))
    .unwrap();

    let mock = MockCt::start().await;
    mock.push(Scripted::status(
        503,
        r#"{"statusCode":503,"message":"Over capacity","errors":[{"code":"OverCapacity","message":"Over capacity"}]}"#,
    ));
    mock.push(Scripted::status(201, &body));
    let created = mock
        .client()
        .create_subscription(&draft("k", "t"))
        .await
        .unwrap();
    assert_eq!(created.id, "s1");
    assert_eq!(mock.api_requests(), 2);

    let mock = MockCt::start().await;
    mock.push(Scripted::status(502, "<html>bad gateway</html>"));
    mock.push(Scripted::status(201, &body));
    let err = mock
        .client()
        .create_subscription(&draft("k", "t"))
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(502));
    assert_eq!(mock.api_requests(), 1, "a 502 on a write is final");

    let mock = MockCt::start().await;
    mock.push(Scripted::status(
        500,
        r#"{"statusCode":500,"message":"General","errors":[{"code":"General","message":"x"}]}"#,
    ));
    let err = mock
        .client()
        .delete_subscription_by_key("kk", 1)
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(500), "{err:?}");
    assert_eq!(mock.api_requests(), 1);
    assert!(
        mock.api_uris()[0].ends_with("/subscriptions/key=kk?version=1"),
        "{:?}",
        mock.api_uris()
    );
}
