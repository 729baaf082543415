//! `subscriptions install | status | remove` over HTTP against the commercetools emulator, with
//! settings loaded from TOML like a user's file.

use commercetools::subscription::{ChangeSubscription, SubscriptionUpdateAction};
use commercetools::{CtClient, CtConfig};
use connector::config::{Settings, SubscriptionsSettings};
use connector::subscriptions::{
    self, Concern, InstallAction, RemoveOutcome, State, SubscriptionError,
};
use emulators::{CtEmulator, CtEmulatorConfig};
use serde_json::json;

const PROJECT: &str = "subs-shop";
const CLIENT_ID: &str = "subs-client";
const CLIENT_SECRET: &str = "subs-secret";

async fn emulator() -> CtEmulator {
    CtEmulator::start(CtEmulatorConfig {
        project_key: PROJECT.into(),
        client_id: CLIENT_ID.into(),
        client_secret: CLIENT_SECRET.into(),
        ..CtEmulatorConfig::default()
    })
    .await
    .expect("commercetools emulator starts")
}

fn client(ct: &CtEmulator, scopes: Option<&str>) -> CtClient {
    let mut cfg = CtConfig::new(
        PROJECT,
        ct.api_url(),
        ct.auth_url(),
        CLIENT_ID,
        CLIENT_SECRET,
    );
    cfg.scopes = scopes.map(str::to_owned);
    cfg.max_retries = 0;
    CtClient::new(cfg).unwrap()
}

/// `[subscriptions]` settings from a TOML fragment, through the real loader.
fn settings(subscriptions_toml: &str) -> SubscriptionsSettings {
    let toml = format!(
        r#"
[commercetools]
project_key = "{PROJECT}"

[[stores]]
key = "default"
locales = ["en"]
currency = "EUR"
product_url = "https://shop.example.com/p/{{slug}}"

{subscriptions_toml}
"#
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(&path, toml).unwrap();
    Settings::load(Some(&path), &|_| None)
        .unwrap_or_else(|e| panic!("{e}"))
        .subscriptions
}

fn pubsub(topic: &str) -> String {
    format!(
        r#"
[subscriptions.destination]
type = "GoogleCloudPubSub"
project_id = "my-gcp"
topic = "{topic}"
"#
    )
}

fn no_env(_: &str) -> Option<String> {
    None
}

/// `(key, id, version)` of every stored Subscription, in key order.
fn stored(ct: &CtEmulator) -> Vec<(String, String, i64)> {
    let mut out: Vec<(String, String, i64)> = ct
        .subscriptions()
        .iter()
        .map(|s| {
            (
                s["key"].as_str().unwrap_or_default().to_owned(),
                s["id"].as_str().unwrap().to_owned(),
                s["version"].as_i64().unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}

const KEYS: [&str; 4] = [
    "ct-omnisend-carts",
    "ct-omnisend-catalog",
    "ct-omnisend-customers",
    "ct-omnisend-orders",
];

#[tokio::test]
async fn subscriptions_install_twice_creates_the_subscriptions_once_and_updates_them_the_second_time()
 {
    let ct = emulator().await;
    let api = client(&ct, None);

    // 1. First install: everything is created.
    let first = subscriptions::install(&api, &settings(&pubsub("ct-events")), &no_env, false)
        .await
        .unwrap();
    assert!(!first.failed(), "{first:?}");
    assert!(
        first
            .subscriptions
            .iter()
            .all(|i| i.action == InstallAction::Create && i.version == Some(1))
    );
    let created = stored(&ct);
    assert_eq!(
        created
            .iter()
            .map(|(k, _, _)| k.as_str())
            .collect::<Vec<_>>(),
        KEYS
    );
    assert!(created.iter().all(|(_, _, v)| *v == 1));
    let orders = ct.subscription_by_key("ct-omnisend-orders").unwrap();
    assert_eq!(
        orders["destination"],
        json!({"type": "GoogleCloudPubSub", "projectId": "my-gcp", "topic": "ct-events"})
    );
    assert_eq!(orders["format"], json!({"type": "Platform"}));
    assert!(
        orders["messages"][0]["types"]
            .as_array()
            .unwrap()
            .contains(&json!("OrderCreated"))
    );
    let carts = ct.subscription_by_key("ct-omnisend-carts").unwrap();
    assert_eq!(carts["changes"], json!([{"resourceTypeId": "cart"}]));

    // 2. Another topic: every subscription is updated in place.
    let second = subscriptions::install(&api, &settings(&pubsub("ct-events-v2")), &no_env, false)
        .await
        .unwrap();
    assert!(!second.failed(), "{second:?}");
    for item in &second.subscriptions {
        assert_eq!(item.action, InstallAction::Update, "{item:?}");
        assert_eq!(item.update_actions, ["changeDestination"]);
        assert_eq!(item.previous_version, Some(1));
        assert_eq!(item.version, Some(2));
    }
    let updated = stored(&ct);
    assert_eq!(updated.len(), 4, "no new subscriptions");
    for ((k1, id1, v1), (k2, id2, v2)) in created.iter().zip(&updated) {
        assert_eq!((k1, id1), (k2, id2), "same keys and ids");
        assert_eq!(*v2, v1 + 1, "version bumped once");
    }
    assert_eq!(
        ct.subscription_by_key("ct-omnisend-orders").unwrap()["destination"]["topic"],
        "ct-events-v2"
    );

    // 3. The same configuration again: nothing to do, no version moves.
    let third = subscriptions::install(&api, &settings(&pubsub("ct-events-v2")), &no_env, false)
        .await
        .unwrap();
    assert!(
        third
            .subscriptions
            .iter()
            .all(|i| i.action == InstallAction::Unchanged && i.update_actions.is_empty())
    );
    assert_eq!(stored(&ct), updated);
}

#[tokio::test]
async fn switching_order_changes_on_sends_only_set_changes_to_the_orders_subscription() {
    let ct = emulator().await;
    let api = client(&ct, None);
    subscriptions::install(&api, &settings(&pubsub("t")), &no_env, false)
        .await
        .unwrap();
    // Switch order changes on: only the orders subscription changes, by `setChanges`.
    let cfg = settings(&format!(
        "[subscriptions]\norder_changes = true\n{}",
        pubsub("t")
    ));
    let report = subscriptions::install(&api, &cfg, &no_env, false)
        .await
        .unwrap();
    let orders = &report.subscriptions[0];
    assert_eq!(orders.concern, Concern::Orders);
    assert_eq!(orders.action, InstallAction::Update);
    assert_eq!(orders.update_actions, ["setChanges"]);
    assert!(
        report.subscriptions[1..]
            .iter()
            .all(|i| i.action == InstallAction::Unchanged)
    );
    assert_eq!(
        ct.subscription_by_key("ct-omnisend-orders").unwrap()["changes"],
        json!([{"resourceTypeId": "order"}])
    );
}

#[tokio::test]
async fn a_format_change_replaces_each_subscription_under_the_same_key() {
    let ct = emulator().await;
    let api = client(&ct, None);
    subscriptions::install(&api, &settings(&pubsub("t")), &no_env, false)
        .await
        .unwrap();
    let before = stored(&ct);
    let cfg = settings(&format!(
        "[subscriptions]\nformat = \"cloudevents\"\n{}",
        pubsub("t")
    ));
    let report = subscriptions::install(&api, &cfg, &no_env, false)
        .await
        .unwrap();
    assert!(!report.failed(), "{report:?}");
    for item in &report.subscriptions {
        assert_eq!(item.action, InstallAction::Replace);
        assert!(item.previous_id.is_some() && item.previous_id != item.id);
    }
    let after = stored(&ct);
    assert_eq!(
        after.iter().map(|(k, _, _)| k.as_str()).collect::<Vec<_>>(),
        KEYS,
        "same keys, no leftover replacement keys"
    );
    for ((_, old_id, _), (_, new_id, _)) in before.iter().zip(&after) {
        assert_ne!(old_id, new_id);
    }
    for s in ct.subscriptions() {
        assert_eq!(
            s["format"],
            json!({"type": "CloudEvents", "cloudEventsVersion": "1.0"})
        );
    }
    // Converged: a further run changes nothing.
    let again = subscriptions::install(&api, &cfg, &no_env, false)
        .await
        .unwrap();
    assert!(
        again
            .subscriptions
            .iter()
            .all(|i| i.action == InstallAction::Unchanged)
    );
}

#[tokio::test]
async fn a_dry_run_reads_but_changes_nothing_and_shows_masked_drafts() {
    let ct = emulator().await;
    let api = client(&ct, None);
    let sqs = r#"
[subscriptions.destination]
type = "SQS"
queue_url = "https://sqs.eu-west-1.amazonaws.com/123456789012/ct-omnisend"
region = "eu-west-1"
authentication_mode = "Credentials"
access_key_env = "SUBS_AWS_KEY"
access_secret_env = "SUBS_AWS_SECRET"
"#;
    let env = |name: &str| match name {
        "SUBS_AWS_KEY" => Some("AKIA-TEST-KEY".to_owned()),
        "SUBS_AWS_SECRET" => Some("top-secret-aws-value".to_owned()),
        _ => None,
    };
    let report = subscriptions::install(&api, &settings(sqs), &env, true)
        .await
        .unwrap();
    assert!(report.dry_run);
    assert!(ct.subscriptions().is_empty(), "a dry run creates nothing");
    assert!(
        report
            .subscriptions
            .iter()
            .all(|i| i.action == InstallAction::Create)
    );
    let shown = serde_json::to_string(&report).unwrap();
    assert!(
        !shown.contains("top-secret-aws-value") && !shown.contains("AKIA-TEST-KEY"),
        "{shown}"
    );
    let draft = report.subscriptions[0].draft.as_ref().unwrap();
    assert_eq!(draft["destination"]["accessSecret"], "****");
    assert_eq!(
        draft["destination"]["queueUrl"],
        "https://sqs.eu-west-1.amazonaws.com/123456789012/ct-omnisend"
    );

    // For real: the secrets reach commercetools, which hides them when read back.
    subscriptions::install(&api, &settings(sqs), &env, false)
        .await
        .unwrap();
    let stored_orders = ct.subscription_by_key("ct-omnisend-orders").unwrap();
    assert_eq!(
        stored_orders["destination"]["accessSecret"],
        "top-secret-aws-value"
    );
    let versions = stored(&ct);
    // A dry run after a change shows the update but leaves the versions alone.
    let changed = sqs.replace("eu-west-1\"\n", "eu-central-1\"\n");
    let preview = subscriptions::install(&api, &settings(&changed), &env, true)
        .await
        .unwrap();
    assert!(
        preview
            .subscriptions
            .iter()
            .all(|i| i.action == InstallAction::Update && i.update_actions == ["changeDestination"])
    );
    assert_eq!(stored(&ct), versions);
    // And with the secret hidden on reading, an unchanged configuration is not drift.
    let again = subscriptions::install(&api, &settings(sqs), &env, false)
        .await
        .unwrap();
    assert!(
        again
            .subscriptions
            .iter()
            .all(|i| i.action == InstallAction::Unchanged),
        "{again:?}"
    );
}

#[tokio::test]
async fn a_missing_secret_fails_before_any_request() {
    let ct = emulator().await;
    let api = client(&ct, None);
    let bus = "[subscriptions.destination]\ntype = \"AzureServiceBus\"\nconnection_string_env = \"SUBS_BUS\"\n";
    let before = ct.request_count();
    let err = subscriptions::install(&api, &settings(bus), &no_env, false)
        .await
        .unwrap_err();
    assert!(matches!(err, SubscriptionError::MissingSecret { .. }));
    assert!(err.to_string().contains("SUBS_BUS"), "{err}");
    assert_eq!(ct.request_count(), before);
}

#[tokio::test]
async fn status_reports_missing_drifted_up_to_date_and_not_needed_subscriptions() {
    let ct = emulator().await;
    let api = client(&ct, None);
    let cfg = settings(&pubsub("t"));
    let report = subscriptions::status(&api, &cfg).await.unwrap();
    assert!(
        report
            .subscriptions
            .iter()
            .all(|i| i.state == State::Missing)
    );
    assert!(!report.in_sync());

    subscriptions::install(&api, &cfg, &no_env, false)
        .await
        .unwrap();
    let report = subscriptions::status(&api, &cfg).await.unwrap();
    assert!(report.in_sync(), "{report:?}");
    assert!(
        report
            .subscriptions
            .iter()
            .all(|i| i.state == State::UpToDate && i.health.as_deref() == Some("Healthy"))
    );

    // Someone edits one by hand; the configuration stops needing the catalog.
    let carts = ct.subscription_by_key("ct-omnisend-carts").unwrap();
    let change = |resource: &str| ChangeSubscription {
        resource_type_id: resource.into(),
    };
    api.update_subscription_by_key(
        "ct-omnisend-carts",
        carts["version"].as_i64().unwrap(),
        vec![SubscriptionUpdateAction::SetChanges {
            changes: vec![change("cart"), change("order")],
        }],
    )
    .await
    .unwrap();
    let fewer = settings(&format!(
        "[subscriptions]\ncatalog = false\n{}",
        pubsub("t")
    ));
    let report = subscriptions::status(&api, &fewer).await.unwrap();
    let states: Vec<(&str, State)> = report
        .subscriptions
        .iter()
        .map(|i| (i.key.as_str(), i.state))
        .collect();
    assert_eq!(
        states,
        [
            ("ct-omnisend-orders", State::UpToDate),
            ("ct-omnisend-customers", State::UpToDate),
            ("ct-omnisend-carts", State::Drifted),
            ("ct-omnisend-catalog", State::NotNeeded),
        ]
    );
    let drift = &report.subscriptions[2].differences;
    assert_eq!(drift.len(), 1);
    assert!(
        drift[0].describe().starts_with("changes: "),
        "{}",
        drift[0].describe()
    );
    assert!(!report.in_sync());
}

#[tokio::test]
async fn status_without_a_destination_is_a_config_error_naming_the_key() {
    let ct = emulator().await;
    let api = client(&ct, None);
    let err = subscriptions::status(&api, &settings(""))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("subscriptions.destination"), "{err}");
}

async fn create_foreign(api: &CtClient, key: &str) {
    use commercetools::subscription::{ChangeSubscription, Destination, SubscriptionDraft};
    api.create_subscription(&SubscriptionDraft {
        key: Some(key.into()),
        destination: Destination::GoogleCloudPubSub {
            project_id: "other".into(),
            topic: "other".into(),
        },
        messages: Vec::new(),
        changes: vec![ChangeSubscription {
            resource_type_id: "payment".into(),
        }],
        format: None,
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn remove_deletes_only_our_subscriptions_and_a_foreign_one_survives() {
    let ct = emulator().await;
    let api = client(&ct, None);
    let cfg = settings(&pubsub("t"));
    subscriptions::install(&api, &cfg, &no_env, false)
        .await
        .unwrap();
    create_foreign(&api, "payments-to-erp").await;
    create_foreign(&api, "ct-omnisendx").await;
    assert_eq!(ct.subscriptions().len(), 6);

    let preview = subscriptions::remove(&api, &cfg, true, false)
        .await
        .unwrap();
    assert_eq!(preview.subscriptions.len(), 4);
    assert!(
        preview
            .subscriptions
            .iter()
            .all(|i| i.outcome == RemoveOutcome::WouldRemove)
    );
    assert_eq!(ct.subscriptions().len(), 6, "a dry run deletes nothing");

    let report = subscriptions::remove(&api, &cfg, false, false)
        .await
        .unwrap();
    assert!(!report.failed());
    assert!(
        report
            .subscriptions
            .iter()
            .all(|i| i.outcome == RemoveOutcome::Removed && i.key.starts_with("ct-omnisend-"))
    );
    let left: Vec<String> = stored(&ct).into_iter().map(|(k, _, _)| k).collect();
    assert_eq!(left, ["ct-omnisendx", "payments-to-erp"]);
}

#[tokio::test]
async fn remove_not_needed_keeps_what_the_configuration_still_plans() {
    let ct = emulator().await;
    let api = client(&ct, None);
    subscriptions::install(&api, &settings(&pubsub("t")), &no_env, false)
        .await
        .unwrap();
    let fewer = settings(&format!(
        "[subscriptions]\ncustomers = false\ncatalog = false\n{}",
        pubsub("t")
    ));
    let report = subscriptions::remove(&api, &fewer, false, true)
        .await
        .unwrap();
    let removed: Vec<&str> = report
        .subscriptions
        .iter()
        .map(|i| i.key.as_str())
        .collect();
    assert_eq!(removed.len(), 2);
    assert!(removed.contains(&"ct-omnisend-customers") && removed.contains(&"ct-omnisend-catalog"));
    let left: Vec<String> = stored(&ct).into_iter().map(|(k, _, _)| k).collect();
    assert_eq!(left, ["ct-omnisend-carts", "ct-omnisend-orders"]);
    assert!(subscriptions::status(&api, &fewer).await.unwrap().in_sync());
}

#[tokio::test]
async fn without_manage_subscriptions_each_subscription_fails_with_the_missing_scope() {
    let ct = emulator().await;
    let api = client(&ct, Some(&format!("view_orders:{PROJECT}")));
    let report = subscriptions::install(&api, &settings(&pubsub("t")), &no_env, false)
        .await
        .unwrap();
    assert!(report.failed());
    for item in &report.subscriptions {
        let error = item.error.as_deref().unwrap_or_default();
        assert!(
            error.contains(&item.key) && error.contains("manage_subscriptions"),
            "{error}"
        );
    }
    assert!(ct.subscriptions().is_empty());
}

#[tokio::test]
async fn rotate_secrets_sends_the_destination_again_only_where_it_holds_secrets() {
    let ct = emulator().await;
    let api = client(&ct, None);
    let bus = "[subscriptions.destination]\ntype = \"AzureServiceBus\"\nconnection_string_env = \"SUBS_BUS\"\n";
    let old = |_: &str| {
        Some("Endpoint=sb://ns/;SharedAccessKeyName=send;SharedAccessKey=old-key".to_owned())
    };
    let new = |_: &str| {
        Some("Endpoint=sb://ns/;SharedAccessKeyName=send;SharedAccessKey=new-key".to_owned())
    };
    subscriptions::install(&api, &settings(bus), &old, false)
        .await
        .unwrap();
    // A rotated secret is invisible to a plain install (commercetools hides it)…
    let plain = subscriptions::install(&api, &settings(bus), &new, false)
        .await
        .unwrap();
    assert!(
        plain
            .subscriptions
            .iter()
            .all(|i| i.action == InstallAction::Unchanged)
    );
    // …so --rotate-secrets sends the destination again.
    let options = subscriptions::InstallOptions {
        dry_run: false,
        rotate_secrets: true,
    };
    let rotated = subscriptions::install_with(&api, &settings(bus), &new, &options)
        .await
        .unwrap();
    assert!(
        rotated
            .subscriptions
            .iter()
            .all(|i| i.action == InstallAction::Update && i.update_actions == ["changeDestination"])
    );
    for s in ct.subscriptions() {
        assert_eq!(s["version"], 2);
        assert!(
            s["destination"]["connectionString"]
                .as_str()
                .unwrap()
                .ends_with("SharedAccessKey=new-key")
        );
    }
    // A destination without secrets has nothing to rotate.
    let ct2 = emulator().await;
    let api2 = client(&ct2, None);
    subscriptions::install(&api2, &settings(&pubsub("t")), &no_env, false)
        .await
        .unwrap();
    let report = subscriptions::install_with(&api2, &settings(&pubsub("t")), &no_env, &options)
        .await
        .unwrap();
    assert!(
        report
            .subscriptions
            .iter()
            .all(|i| i.action == InstallAction::Unchanged)
    );
}
