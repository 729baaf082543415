//! The admin page in a real browser: `ct-omnisend sync catalog` gives a state store runs and
//! rejected records (the generated shop has products Omnisend cannot take), `ct-omnisend serve`
//! serves it, and headless Chromium loads `/admin` with Basic credentials in the URL — the real
//! authentication, the real server, the real HTML. The DOM is checked and a screenshot is kept
//! as `target/admin-screenshot.png` (a CI artifact).
//!
//! Needs Debian's Chromium (`/usr/bin/chromium`): without it the test fails when `CI` is set
//! and is skipped otherwise.

mod support;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use emulators::seed::{CatalogSpec, generate_catalog};
use emulators::{OmnisendEmulator, OmnisendEmulatorConfig};
use support::{describe, run};

const CHROMIUM: &str = "/usr/bin/chromium";
const PROJECT: &str = "browser-shop";
const CLIENT_ID: &str = "browser-client";
const CLIENT_SECRET: &str = "browser-ct-secret-value";
const US_KEY: &str = "browser-brand-us-key";
const EU_KEY: &str = "browser-brand-eu-key";
const WEBHOOK_TOKEN: &str = "browser-webhook-token-value";
const PASSWORD: &str = "browser-admin-password";
const INSTANCE: &str = "admin-browser-host";

/// `ct-omnisend` on the test's config and state, with the brands' keys.
fn command(dir: &Path) -> tokio::process::Command {
    let mut cmd = support::command();
    cmd.arg("--config")
        .arg(dir.join("ct-omnisend.toml"))
        .arg("--state")
        .arg(format!("sqlite://{}", dir.join("state.db").display()))
        .env("CTP_CLIENT_SECRET", CLIENT_SECRET)
        .env("BROWSER_KEY_US", US_KEY)
        .env("BROWSER_KEY_EU", EU_KEY);
    cmd
}

/// The workspace's target directory (`CARGO_TARGET_TMPDIR` is `<target>/tmp`).
fn target_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("CARGO_TARGET_TMPDIR lies in the target directory")
        .to_path_buf()
}

/// Runs headless Chromium with `args` and a throw-away profile; returns its stdout.
async fn chromium(profile: &Path, args: &[String]) -> String {
    let out = tokio::time::timeout(
        Duration::from_secs(90),
        tokio::process::Command::new(CHROMIUM)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--hide-scrollbars",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .args(args)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("chromium finished within 90 s")
    .expect("chromium starts");
    assert!(
        out.status.success(),
        "chromium {args:?} failed: {:?}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn chromium_shows_the_admin_page_of_a_running_instance_with_its_runs_and_rejected_records() {
    if !Path::new(CHROMIUM).exists() {
        if std::env::var_os("CI").is_some() {
            panic!("{CHROMIUM} is missing (apt-get install -y chromium)");
        }
        eprintln!("skipped: {CHROMIUM} is not installed (apt-get install -y chromium)");
        return;
    }
    let ct = support::ct_emulator(PROJECT, CLIENT_ID, CLIENT_SECRET).await;
    let omnisend = OmnisendEmulator::start(OmnisendEmulatorConfig::default())
        .await
        .unwrap();
    // 100 products: the generator's problem products 41 (no EUR price) and 83 (no usable slug)
    // become rejected records.
    ct.seed(&generate_catalog(&CatalogSpec {
        products: 100,
        categories: 8,
        seed: 5,
    }));
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("ct-omnisend.toml"),
        format!(
            r#"
[commercetools]
project_key = "{PROJECT}"
api_url = "{api}"
auth_url = "{auth}"
client_id = "{CLIENT_ID}"

[omnisend]
api_url = "{os}"
requests_per_minute = 6000
batch_poll_interval_ms = 50
{stores}"#,
            api = ct.api_url(),
            auth = ct.auth_url(),
            os = omnisend.base_url(),
            stores = emulators::seed::store_routes_toml("BROWSER_KEY_US", "BROWSER_KEY_EU"),
        ),
    )
    .unwrap();

    let sync = run(command(dir.path()).args(["sync", "catalog"])).await;
    assert!(
        sync.status.success(),
        "sync catalog failed:\n{}",
        describe(&sync)
    );

    let (mut serve, base) = support::serve(
        command(dir.path())
            .args(["serve", "--listen", "127.0.0.1:0"])
            .env("CT_OMNISEND_ADMIN_PASSWORD", PASSWORD)
            .env("CT_OMNISEND_WEBHOOK_TOKEN", WEBHOOK_TOKEN)
            .env("HOSTNAME", INSTANCE)
            .stderr(Stdio::null()),
    )
    .await;
    let authority = base.strip_prefix("http://").unwrap();

    // Without credentials: 401 with the Basic challenge, from the real server.
    let resp = reqwest::get(format!("{base}/admin")).await.unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    assert_eq!(
        resp.headers().get("www-authenticate").unwrap(),
        "Basic realm=\"ct-omnisend admin\""
    );

    let profile = tempfile::tempdir().unwrap();
    // Chromium without credentials gets the refusal, not the page.
    let refused = chromium(
        profile.path(),
        &["--dump-dom".into(), format!("{base}/admin")],
    )
    .await;
    assert!(
        !refused.contains("Recent runs"),
        "the page without credentials:\n{refused}"
    );

    // With credentials in the URL Chromium answers the challenge.
    let url = format!("http://admin:{PASSWORD}@{authority}/admin");
    let dom = chromium(profile.path(), &["--dump-dom".into(), url.clone()]).await;
    for heading in [
        "Sync status",
        "Recent runs",
        "Scheduled jobs",
        "Rejected records",
        "Configuration",
    ] {
        assert!(
            dom.contains(&format!("{heading}<")),
            "heading {heading:?}:\n{dom}"
        );
    }
    assert!(dom.contains("<td>products</td>"), "a products run row");
    assert!(dom.contains(">ok</span>"), "the run's outcome");
    assert!(dom.contains("masterVariant.prices"), "the rejected product");
    assert!(dom.contains("Replay all ("), "the replay-all button");
    assert!(dom.contains(">Replay</button>"), "a replay button");
    assert!(dom.contains("BROWSER_KEY_US"), "the brand's variable name");
    assert!(dom.contains("•••••• (set)"), "masked secrets");
    assert!(dom.contains(INSTANCE), "the instance in the footer");
    for secret in [CLIENT_SECRET, US_KEY, EU_KEY, WEBHOOK_TOKEN, PASSWORD] {
        assert!(
            !dom.contains(secret),
            "the page shows the secret {secret:?}"
        );
    }

    let shot = target_dir().join("admin-screenshot.png");
    let _ = std::fs::remove_file(&shot);
    chromium(
        profile.path(),
        &[
            format!("--screenshot={}", shot.display()),
            "--window-size=1280,1400".into(),
            url,
        ],
    )
    .await;
    let png = std::fs::read(&shot).unwrap_or_else(|e| panic!("{}: {e}", shot.display()));
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "a PNG");
    let width = u32::from_be_bytes(png[16..20].try_into().unwrap());
    let height = u32::from_be_bytes(png[20..24].try_into().unwrap());
    assert_eq!((width, height), (1280, 1400), "the window size");
    assert!(
        png.len() > 30_000,
        "a screenshot of {} bytes is blank",
        png.len()
    );
    eprintln!("admin page screenshot: {}", shot.display());

    serve.kill().await.unwrap();
}
