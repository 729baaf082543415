//! The `ct-omnisend` binary as a user runs it: real processes, real config files, real exit
//! codes and output, against the in-process emulators of both APIs.

mod support;

use std::path::PathBuf;
use std::process::Output;
use std::time::{Duration, Instant};

use emulators::seed::{CatalogSpec, generate_catalog};
use emulators::{CtEmulator, OmnisendEmulator, OmnisendEmulatorConfig};
use serde_json::Value;
use support::{describe, json_doc, run, text};

const PROJECT: &str = "cli-shop";
const CLIENT_ID: &str = "cli-client";
const CLIENT_SECRET: &str = "cli-secret-value";
const US_KEY: &str = "cli-brand-us-key";
const EU_KEY: &str = "cli-brand-eu-key";

/// `ct-omnisend` without the contract's variables, nor this test's brand variables, from the
/// environment of whoever runs the tests.
fn command() -> tokio::process::Command {
    let mut cmd = support::command();
    cmd.env_remove("CLI_KEY_US").env_remove("CLI_KEY_EU");
    cmd
}

/// A config routing the generated `us` and `eu` stores to two brands. The client secret and the
/// brand keys are left to the environment, as the docs recommend.
fn config_toml(ct_api: &str, ct_auth: &str, omnisend: &str) -> String {
    format!(
        r#"
[commercetools]
project_key = "{PROJECT}"
api_url = "{ct_api}"
auth_url = "{ct_auth}"
client_id = "{CLIENT_ID}"
timeout_secs = 10

[omnisend]
api_url = "{omnisend}"
requests_per_minute = 360
batch_poll_interval_ms = 50
{stores}"#,
        stores = emulators::seed::store_routes_toml("CLI_KEY_US", "CLI_KEY_EU"),
    )
}

/// Both emulators serving a generated shop, a temp dir with a config file and a state URL.
struct Shop {
    /// Kept alive: the child process reads from it.
    _ct: CtEmulator,
    omnisend: OmnisendEmulator,
    dir: tempfile::TempDir,
    config: PathBuf,
    state: String,
}

impl Shop {
    /// A shop of 200 products: enough for the generator's problem products (`n % 100 == 83`
    /// has no usable slug, `n % 100 == 41` no EUR price), so runs have rejections.
    async fn start() -> Shop {
        let ct = support::ct_emulator(PROJECT, CLIENT_ID, CLIENT_SECRET).await;
        let omnisend = OmnisendEmulator::start(OmnisendEmulatorConfig::default())
            .await
            .expect("Omnisend emulator starts");
        ct.seed(&generate_catalog(&CatalogSpec {
            products: 200,
            categories: 12,
            seed: 11,
        }));
        ct.seed_customers(&emulators::customers::generate_customers(
            &emulators::customers::CustomerSpec::default(),
        ));
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("ct-omnisend.toml");
        std::fs::write(
            &config,
            config_toml(&ct.api_url(), &ct.auth_url(), &omnisend.base_url()),
        )
        .unwrap();
        let state = format!("sqlite://{}", dir.path().join("state.db").display());
        Shop {
            _ct: ct,
            omnisend,
            dir,
            config,
            state,
        }
    }

    /// `ct-omnisend --config F --state URL ARGS…` with the secrets in the environment.
    fn cmd(&self, args: &[&str]) -> tokio::process::Command {
        let mut cmd = command();
        cmd.arg("--config")
            .arg(&self.config)
            .arg("--state")
            .arg(&self.state)
            .args(args)
            .env("CTP_CLIENT_SECRET", CLIENT_SECRET)
            .env("CLI_KEY_US", US_KEY)
            .env("CLI_KEY_EU", EU_KEY);
        cmd
    }

    async fn ok(&self, args: &[&str]) -> Output {
        let out = run(&mut self.cmd(args)).await;
        assert!(
            out.status.success(),
            "ct-omnisend {args:?} failed:\n{}",
            describe(&out)
        );
        out
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

// ---------------------------------------------------------------------------------------------
// config check

const GOOD_CONFIG: &str = r#"
[commercetools]
project_key = "my-shop"

[[stores]]
key = "us"
locales = ["en-US", "en"]
currency = "USD"
product_url = "https://shop.example.com/{locale}/p/{slug}"
"#;

/// `config check` on `toml` must fail; returns its stderr.
async fn config_check_fails(toml: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(&path, toml).unwrap();
    let out = run(command()
        .arg("--config")
        .arg(&path)
        .arg("--state")
        .arg(format!(
            "sqlite://{}",
            dir.path().join("state.db").display()
        ))
        .args(["config", "check"]))
    .await;
    assert!(
        !out.status.success(),
        "config check accepted:\n{toml}\n{}",
        describe(&out)
    );
    text(&out.stderr)
}

#[tokio::test]
async fn config_check_accepts_the_good_config_it_is_compared_with() {
    // Guards the four refusals below: they differ from this config in one place only.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(&path, GOOD_CONFIG).unwrap();
    let out = run(command()
        .arg("--config")
        .arg(&path)
        .arg("--state")
        .arg(format!(
            "sqlite://{}",
            dir.path().join("state.db").display()
        ))
        .args(["config", "check"]))
    .await;
    assert!(out.status.success(), "{}", describe(&out));
    assert!(
        text(&out.stdout).contains("configuration: ok"),
        "{}",
        describe(&out)
    );
}

#[tokio::test]
async fn config_check_names_an_unknown_key() {
    let stderr = config_check_fails(&format!(
        "{GOOD_CONFIG}\n[omnisend]\nrequests_per_minut = 300\n"
    ))
    .await;
    assert!(
        stderr.contains("requests_per_minut") && stderr.contains("omnisend"),
        "{stderr}"
    );
    assert!(
        stderr.contains("requests_per_minute"),
        "the message lists the valid keys: {stderr}"
    );
}

#[tokio::test]
async fn config_check_names_a_missing_project_key() {
    let stderr = config_check_fails(&GOOD_CONFIG.replace("project_key = \"my-shop\"", "")).await;
    assert!(stderr.contains("commercetools.project_key"), "{stderr}");
    assert!(stderr.contains("CTP_PROJECT_KEY"), "{stderr}");
}

#[tokio::test]
async fn config_check_names_a_bad_url() {
    let stderr = config_check_fails(&GOOD_CONFIG.replace(
        "project_key = \"my-shop\"",
        "project_key = \"my-shop\"\napi_url = \"api.example.com/no-scheme\"",
    ))
    .await;
    assert!(
        stderr.contains("commercetools.api_url") && stderr.contains("api.example.com/no-scheme"),
        "{stderr}"
    );
}

#[tokio::test]
async fn config_check_names_a_bad_locale() {
    let stderr =
        config_check_fails(&GOOD_CONFIG.replace(r#"["en-US", "en"]"#, r#"["en-US", "en_GB"]"#))
            .await;
    assert!(
        stderr.contains("stores[0].locales[1]") && stderr.contains("en_GB"),
        "{stderr}"
    );
}

// ---------------------------------------------------------------------------------------------
// sync

const RUN_COUNTERS: &[&str] = &[
    "seen",
    "created",
    "updated",
    "unchanged",
    "deleted",
    "rejected",
    "failed",
    "requests",
    "duration_ms",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_catalog_json_prints_exactly_one_document_with_the_contract_keys() {
    let shop = Shop::start().await;
    let out = shop.ok(&["sync", "catalog", "--json"]).await;
    let doc = json_doc(&out);
    let runs = doc["runs"]
        .as_array()
        .unwrap_or_else(|| panic!("no runs array: {doc}"));
    // Two stores × (categories, products).
    assert_eq!(runs.len(), 4, "{doc}");
    for run in runs {
        let entity = run["entity"]
            .as_str()
            .unwrap_or_else(|| panic!("entity is a string: {run}"));
        assert!(
            ["categories", "products"].contains(&entity),
            "entity {entity}"
        );
        let mode = run["mode"]
            .as_str()
            .unwrap_or_else(|| panic!("mode is a string: {run}"));
        assert!(mode == "full" || mode == "delta", "mode {mode}");
        for key in RUN_COUNTERS {
            assert!(
                run[key].is_u64(),
                "{key} is a non-negative integer in {run}"
            );
        }
    }
    let products: Vec<&Value> = runs.iter().filter(|r| r["entity"] == "products").collect();
    assert_eq!(products.len(), 2, "{doc}");
    for p in &products {
        assert_eq!(p["mode"], "full", "a first run is full: {p}");
        assert!(p["created"].as_u64().unwrap() > 0, "{p}");
        assert!(p["requests"].as_u64().unwrap() > 0, "{p}");
    }
    // `requests` counts what Omnisend actually received.
    let sent: u64 = runs.iter().map(|r| r["requests"].as_u64().unwrap()).sum();
    assert_eq!(sent as usize, shop.omnisend.requests().len(), "{doc}");

    // A second run is a delta that finds nothing to send.
    let again = json_doc(&shop.ok(&["sync", "catalog", "--json"]).await);
    for run in again["runs"].as_array().unwrap() {
        if run["entity"] == "products" {
            assert_eq!(run["mode"], "delta", "{run}");
        }
        assert_eq!(run["created"], 0, "{run}");
        assert_eq!(run["updated"], 0, "{run}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_to_file_writes_ndjson_and_sends_nothing() {
    let shop = Shop::start().await;
    let file = shop.path("out.ndjson");
    let file_arg = file.to_str().unwrap().to_owned();
    shop.ok(&["sync", "catalog", "--dry-run", &file_arg]).await;

    let ndjson = std::fs::read_to_string(&file).expect("the dry-run file exists");
    let lines: Vec<&str> = ndjson.lines().collect();
    assert!(!lines.is_empty(), "the dry run wrote nothing");
    let mut product_items = 0;
    for line in &lines {
        let v: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
        let method = v["method"].as_str().unwrap_or_else(|| panic!("{line}"));
        let path = v["path"].as_str().unwrap_or_else(|| panic!("{line}"));
        assert!(path.starts_with('/'), "{line}");
        // A first run only creates: every line is a batch with its exact body.
        assert_eq!((method, path), ("POST", "/batches"), "{line}");
        let body = &v["body"];
        let items = body["items"].as_array().unwrap_or_else(|| panic!("{line}"));
        assert!((1..=100).contains(&items.len()), "{line}");
        if body["endpoint"] == "products" {
            product_items += items.len();
            for item in items {
                assert!(item["id"].is_string() && item["url"].is_string(), "{item}");
            }
        }
    }
    assert!(product_items > 0, "no product bodies in the dry run");

    assert!(
        shop.omnisend.requests().is_empty(),
        "the dry run sent {:?}",
        shop.omnisend
            .requests()
            .iter()
            .map(|r| format!("{} {}", r.method, r.path))
            .collect::<Vec<_>>()
    );
    // Nothing was recorded either: the next real run is still a first, full run.
    let status = json_doc(&shop.ok(&["status", "--json"]).await);
    assert_eq!(status["cursors"], serde_json::json!([]), "{status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_and_rejected_list_show_the_runs_and_rejections() {
    let shop = Shop::start().await;
    shop.ok(&["sync", "catalog"]).await;

    let status = json_doc(&shop.ok(&["status", "--json"]).await);
    let cursors = status["cursors"].as_array().expect("cursors array");
    for store in ["us", "eu"] {
        assert!(
            cursors
                .iter()
                .any(|c| c["route"] == store && c["entity"] == "products"),
            "no products cursor for {store}: {status}"
        );
    }
    let runs = status["runs"].as_array().expect("runs array");
    assert!(runs.len() >= 4, "{status}");
    assert!(
        runs.iter()
            .any(|r| r["entity"] == "products" && r["stats"]["created"].as_u64() > Some(0)),
        "{status}"
    );
    assert!(
        status["rejected_open"]
            .as_array()
            .is_some_and(|r| !r.is_empty()),
        "{status}"
    );

    let list = json_doc(&shop.ok(&["rejected", "list", "--json"]).await);
    let rejected = list["rejected"].as_array().expect("rejected array");
    assert!(!rejected.is_empty(), "{list}");
    for r in rejected {
        assert!(
            r["field"].as_str().is_some_and(|f| !f.is_empty()),
            "field: {r}"
        );
        assert!(
            r["reason"].as_str().is_some_and(|f| !f.is_empty()),
            "reason: {r}"
        );
        assert!(r["id"].is_i64() && r["ct_id"].is_string(), "{r}");
    }
    // The generator's problem products: no slug in either chain, no EUR price for `eu`.
    assert!(rejected.iter().any(|r| r["field"] == "slug"), "{list}");
    assert!(
        rejected
            .iter()
            .any(|r| r["route"] == "eu" && r["field"] == "masterVariant.prices"),
        "{list}"
    );

    // `rejected show` finds one of them by id.
    let id = rejected[0]["id"].as_i64().unwrap().to_string();
    let one = json_doc(&shop.ok(&["rejected", "show", &id, "--json"]).await);
    assert_eq!(one["id"], rejected[0]["id"], "{one}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_with_an_unknown_store_key_is_refused() {
    let shop = Shop::start().await;
    let out = run(&mut shop.cmd(&["sync", "catalog", "--store", "mars"])).await;
    assert!(!out.status.success(), "{}", describe(&out));
    assert!(text(&out.stderr).contains("mars"), "{}", describe(&out));
    assert!(shop.omnisend.requests().is_empty());
}

// ---------------------------------------------------------------------------------------------
// demo and failures

/// The `created` column of every `products` row of the summary tables.
fn created_of_product_rows(stdout: &str) -> Vec<u64> {
    created_of_rows(stdout, "products")
}

/// The `created` column of every row of `entity` in the summary tables.
fn created_of_rows(stdout: &str, entity: &str) -> Vec<u64> {
    let mut header: Option<Vec<&str>> = None;
    let mut out = Vec::new();
    for line in stdout.lines() {
        let cells: Vec<&str> = line.split_whitespace().collect();
        if cells.first() == Some(&"store") && cells.contains(&"created") {
            header = Some(cells);
            continue;
        }
        let Some(h) = &header else { continue };
        if cells.len() == h.len() && cells.get(1) == Some(&entity) {
            let col = h.iter().position(|c| *c == "created").unwrap();
            out.push(
                cells[col]
                    .parse()
                    .unwrap_or_else(|e| panic!("created cell ({e}): {line}")),
            );
        }
    }
    out
}

#[tokio::test]
async fn demo_exits_zero_with_non_zero_created_counts() {
    let out = run(command().args(["demo", "--exit"])).await;
    assert!(out.status.success(), "{}", describe(&out));
    let stdout = text(&out.stdout);
    let created = created_of_product_rows(&stdout);
    assert!(
        created.len() >= 2,
        "no products rows in the demo output:\n{stdout}"
    );
    // The first table is the initial full sync of both stores.
    assert!(created[0] > 0 && created[1] > 0, "{stdout}");
    // Customers become contacts in both brands, then a delta sends the changes.
    let contacts = created_of_rows(&stdout, "customers");
    assert!(
        contacts.len() >= 2 && contacts[0] > 0 && contacts[1] > 0,
        "no contacts created by the demo:\n{stdout}"
    );
    assert!(stdout.contains("contacts; email subscribed"), "{stdout}");
}

#[tokio::test]
async fn unreachable_commercetools_fails_with_a_clear_message() {
    // A port that was free a moment ago: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let closed = format!("http://127.0.0.1:{port}");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("c.toml");
    std::fs::write(
        &config,
        config_toml(&closed, &closed, "http://127.0.0.1:9/api"),
    )
    .unwrap();
    let started = Instant::now();
    let out = run(command()
        .arg("--config")
        .arg(&config)
        .arg("--state")
        .arg(format!(
            "sqlite://{}",
            dir.path().join("state.db").display()
        ))
        .args(["sync", "catalog", "--json"])
        .env("CTP_CLIENT_SECRET", CLIENT_SECRET)
        .env("CLI_KEY_US", US_KEY)
        .env("CLI_KEY_EU", EU_KEY))
    .await;
    let took = started.elapsed();
    assert!(!out.status.success(), "{}", describe(&out));
    let stderr = text(&out.stderr);
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("error:") && last.contains(&format!("127.0.0.1:{port}")),
        "the final error names the unreachable address:\n{}",
        describe(&out)
    );
    assert!(out.stdout.is_empty(), "{}", describe(&out));
    assert!(took < Duration::from_secs(30), "took {took:?}");
}

#[tokio::test]
async fn missing_omnisend_key_names_the_variable() {
    let shop_dir = tempfile::tempdir().unwrap();
    let config = shop_dir.path().join("c.toml");
    std::fs::write(
        &config,
        config_toml(
            "http://127.0.0.1:9",
            "http://127.0.0.1:9",
            "http://127.0.0.1:9/api",
        ),
    )
    .unwrap();
    let out = run(command()
        .arg("--config")
        .arg(&config)
        .arg("--state")
        .arg(format!(
            "sqlite://{}",
            shop_dir.path().join("state.db").display()
        ))
        .args(["sync", "catalog"])
        .env("CTP_CLIENT_SECRET", CLIENT_SECRET)
        .env("CLI_KEY_US", US_KEY))
    .await;
    assert!(!out.status.success(), "{}", describe(&out));
    assert!(
        text(&out.stderr).contains("CLI_KEY_EU"),
        "{}",
        describe(&out)
    );
    // The key that is set is never printed.
    assert!(!text(&out.stderr).contains(US_KEY), "{}", describe(&out));
}

#[tokio::test]
async fn json_with_dry_run_to_stdout_is_refused_before_anything_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("c.toml");
    let closed = "http://127.0.0.1:9";
    std::fs::write(&config, config_toml(closed, closed, closed)).unwrap();
    let started = Instant::now();
    let out = run(command()
        .arg("--config")
        .arg(&config)
        .arg("--state")
        .arg(format!(
            "sqlite://{}",
            dir.path().join("state.db").display()
        ))
        .args(["sync", "catalog", "--dry-run", "--json"])
        .env("CTP_CLIENT_SECRET", CLIENT_SECRET))
    .await;
    assert!(!out.status.success(), "{}", describe(&out));
    assert!(out.stdout.is_empty(), "{}", describe(&out));
    assert!(
        text(&out.stderr).contains("--dry-run FILE"),
        "{}",
        describe(&out)
    );
    // Refused up front, not after commercetools retries against the closed port.
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn config_check_proves_connectivity_to_both_apis_and_reports_a_refused_brand_key() {
    let shop = Shop::start().await;
    let out = shop.ok(&["config", "check"]).await;
    let stdout = text(&out.stdout);
    for line in [
        "commercetools: ok",
        "stores and channels: ok",
        "omnisend brand for store us: ok",
    ] {
        assert!(stdout.contains(line), "missing {line:?}:\n{stdout}");
    }
    assert!(
        shop.omnisend
            .requests()
            .iter()
            .any(|r| r.path == "/product-categories" && r.api_key == US_KEY)
    );

    // An unreachable Omnisend makes the check fail and say which brand.
    let mut cmd = shop.cmd(&["config", "check"]);
    let out = run(cmd.env("OMNISEND_API_URL", "http://127.0.0.1:9/api")).await;
    assert!(!out.status.success(), "{}", describe(&out));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("omnisend brand for store us: FAILED"),
        "{stdout}"
    );
    for secret in [US_KEY, EU_KEY, CLIENT_SECRET] {
        assert!(
            !stdout.contains(secret) && !text(&out.stderr).contains(secret),
            "secret printed"
        );
    }
}
