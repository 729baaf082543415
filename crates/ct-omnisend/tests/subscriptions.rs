//! `ct-omnisend subscriptions …` as a user runs it: the real binary, a real config file, real
//! exit codes and output, against the in-process commercetools emulator.

mod support;

use std::path::PathBuf;
use std::process::Output;

use emulators::CtEmulator;
use support::{command, describe, json_doc, text};

const PROJECT: &str = "subs-cli-shop";
const CLIENT_ID: &str = "subs-cli-client";
const CLIENT_SECRET: &str = "subs-cli-secret";
const AWS_SECRET: &str = "aws-secret-never-printed";

/// The emulator and a config whose destination is an SQS queue with credentials from the
/// environment.
struct Project {
    ct: CtEmulator,
    dir: tempfile::TempDir,
    config: PathBuf,
}

impl Project {
    async fn start() -> Project {
        let ct = support::ct_emulator(PROJECT, CLIENT_ID, CLIENT_SECRET).await;
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("ct-omnisend.toml");
        let project = Project { ct, dir, config };
        project.write_config("eu-west-1");
        project
    }

    fn write_config(&self, region: &str) {
        let toml = format!(
            r#"
[commercetools]
project_key = "{PROJECT}"
api_url = "{api}"
auth_url = "{auth}"
client_id = "{CLIENT_ID}"
timeout_secs = 10

[[stores]]
key = "default"
locales = ["en"]
currency = "EUR"
product_url = "https://shop.example.com/p/{{slug}}"

[subscriptions]
key_prefix = "shop"

[subscriptions.destination]
type = "SQS"
queue_url = "https://sqs.{region}.amazonaws.com/123456789012/ct-omnisend"
region = "{region}"
authentication_mode = "Credentials"
access_key_env = "SUBS_CLI_AWS_KEY"
access_secret_env = "SUBS_CLI_AWS_SECRET"
"#,
            api = self.ct.api_url(),
            auth = self.ct.auth_url(),
        );
        std::fs::write(&self.config, toml).unwrap();
    }

    async fn run(&self, args: &[&str]) -> Output {
        support::run(
            command()
                .arg("--config")
                .arg(&self.config)
                .arg("--state")
                .arg(format!(
                    "sqlite://{}",
                    self.dir.path().join("state.db").display()
                ))
                .args(args)
                .env("CTP_CLIENT_SECRET", CLIENT_SECRET)
                .env("SUBS_CLI_AWS_KEY", "AKIA-CLI-KEY")
                .env("SUBS_CLI_AWS_SECRET", AWS_SECRET),
        )
        .await
    }

    fn versions(&self) -> Vec<(String, i64)> {
        let mut v: Vec<(String, i64)> = self
            .ct
            .subscriptions()
            .iter()
            .map(|s| {
                (
                    s["key"].as_str().unwrap_or_default().to_owned(),
                    s["version"].as_i64().unwrap_or_default(),
                )
            })
            .collect();
        v.sort();
        v
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn install_dry_run_prints_masked_drafts_and_creates_nothing() {
    let p = Project::start().await;
    let out = p
        .run(&["subscriptions", "install", "--dry-run", "--json"])
        .await;
    assert!(out.status.success(), "{}", describe(&out));
    let doc = json_doc(&out);
    assert_eq!(doc["dry_run"], true);
    let subs = doc["subscriptions"].as_array().unwrap();
    assert_eq!(subs.len(), 4, "{doc}");
    for s in subs {
        assert_eq!(s["action"], "create", "{s}");
        assert_eq!(s["draft"]["destination"]["type"], "SQS");
        assert_eq!(s["draft"]["destination"]["accessSecret"], "****");
    }
    assert_eq!(subs[0]["key"], "shop-orders");
    assert!(p.ct.subscriptions().is_empty(), "a dry run creates nothing");
    let everything = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(
        !everything.contains(AWS_SECRET) && !everything.contains("AKIA-CLI-KEY"),
        "{everything}"
    );

    // The human form says it is a dry run and shows the drafts too.
    let human = p.run(&["subscriptions", "install", "--dry-run"]).await;
    assert!(human.status.success(), "{}", describe(&human));
    let stdout = text(&human.stdout);
    assert!(
        stdout.starts_with("dry run: nothing was changed"),
        "{stdout}"
    );
    assert!(stdout.contains("would create"), "{stdout}");
    assert!(stdout.contains("\"queueUrl\""), "{stdout}");
    assert!(!stdout.contains(AWS_SECRET), "{stdout}");
    assert!(p.ct.subscriptions().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn install_status_and_remove_run_against_the_project_with_documented_exit_codes() {
    let p = Project::start().await;

    // Nothing installed yet: status exits 3 and says what is missing.
    let status = p.run(&["subscriptions", "status"]).await;
    assert_eq!(status.status.code(), Some(3), "{}", describe(&status));
    assert!(
        text(&status.stdout).contains("missing"),
        "{}",
        describe(&status)
    );

    let install = p.run(&["subscriptions", "install"]).await;
    assert!(install.status.success(), "{}", describe(&install));
    let stdout = text(&install.stdout);
    assert_eq!(stdout.matches("created").count(), 4, "{stdout}");
    assert!(!stdout.contains(AWS_SECRET), "{stdout}");
    assert_eq!(
        p.versions(),
        [
            ("shop-carts".to_owned(), 1),
            ("shop-catalog".to_owned(), 1),
            ("shop-customers".to_owned(), 1),
            ("shop-orders".to_owned(), 1)
        ]
    );
    let stored = p.ct.subscription_by_key("shop-orders").unwrap();
    assert_eq!(stored["destination"]["accessSecret"], AWS_SECRET);

    let status = p.run(&["subscriptions", "status", "--json"]).await;
    assert!(status.status.success(), "{}", describe(&status));
    let doc = json_doc(&status);
    assert_eq!(doc["in_sync"], true, "{doc}");

    // Another region: status sees the drift (exit 3), install updates in place.
    p.write_config("eu-central-1");
    let drifted = p.run(&["subscriptions", "status", "--json"]).await;
    assert_eq!(drifted.status.code(), Some(3), "{}", describe(&drifted));
    let doc = json_doc(&drifted);
    assert!(
        doc["subscriptions"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["state"] == "drifted" && s["differences"][0]["field"] == "destination"),
        "{doc}"
    );
    let update = p.run(&["subscriptions", "install", "--json"]).await;
    assert!(update.status.success(), "{}", describe(&update));
    let doc = json_doc(&update);
    assert!(
        doc["subscriptions"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["action"] == "update" && s["version"] == 2),
        "{doc}"
    );
    assert_eq!(p.ct.subscriptions().len(), 4);

    // remove --dry-run lists, remove deletes.
    let preview = p.run(&["subscriptions", "remove", "--dry-run"]).await;
    assert!(preview.status.success(), "{}", describe(&preview));
    assert_eq!(
        text(&preview.stdout).matches("would remove").count(),
        4,
        "{}",
        describe(&preview)
    );
    assert_eq!(p.ct.subscriptions().len(), 4);
    let remove = p.run(&["subscriptions", "remove", "--json"]).await;
    assert!(remove.status.success(), "{}", describe(&remove));
    let doc = json_doc(&remove);
    assert!(
        doc["subscriptions"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["outcome"] == "removed"),
        "{doc}"
    );
    assert!(p.ct.subscriptions().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn install_without_the_secret_variable_fails_naming_it() {
    let p = Project::start().await;
    let out = support::run(
        command()
            .arg("--config")
            .arg(&p.config)
            .args(["subscriptions", "install"])
            .env("CTP_CLIENT_SECRET", CLIENT_SECRET)
            .env("SUBS_CLI_AWS_KEY", "AKIA-CLI-KEY")
            .env_remove("SUBS_CLI_AWS_SECRET"),
    )
    .await;
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("SUBS_CLI_AWS_SECRET") && stderr.contains("access_secret_env"),
        "{stderr}"
    );
    assert!(p.ct.subscriptions().is_empty());
}
