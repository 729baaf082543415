//! What the tests of the `ct-omnisend` binary share: the binary, a child environment without
//! the contract's variables, `serve`'s start-up handshake and output helpers. Each test binary
//! uses a part of it.
#![allow(dead_code)]

use std::process::{Output, Stdio};
use std::time::Duration;

use emulators::{CtEmulator, CtEmulatorConfig};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_ct-omnisend");

/// Variables of the contract that must not leak from the environment of whoever runs the tests
/// into a child (a test sets the ones it means).
pub const SCRUBBED: &[&str] = &[
    "CTP_PROJECT_KEY",
    "CTP_CLIENT_ID",
    "CTP_CLIENT_SECRET",
    "CTP_API_URL",
    "CTP_AUTH_URL",
    "CTP_SCOPES",
    "OMNISEND_API_KEY",
    "OMNISEND_API_URL",
    "CT_OMNISEND_CONFIG",
    "CT_OMNISEND_STATE",
    "CT_OMNISEND_ADMIN_PASSWORD",
    "CT_OMNISEND_WEBHOOK_TOKEN",
    "CT_OMNISEND_STOREFRONT_TOKEN",
    "CT_OMNISEND_RECOVERY_SECRET",
    "PORT",
    "RUST_LOG",
];

/// `ct-omnisend` without [`SCRUBBED`] in its environment, killed when dropped.
pub fn command() -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(BIN);
    for var in SCRUBBED {
        cmd.env_remove(var);
    }
    cmd.kill_on_drop(true);
    cmd
}

/// Runs `cmd` to the end (at most 120 s).
pub async fn run(cmd: &mut tokio::process::Command) -> Output {
    tokio::time::timeout(Duration::from_secs(120), cmd.output())
        .await
        .expect("ct-omnisend finished within 120 s")
        .expect("ct-omnisend starts")
}

/// Starts `serve` from `cmd` (which has its arguments, `--listen 127.0.0.1:0` among them) with
/// stdout piped, and waits for its first line, `listening on <base URL>`. Returns the child and
/// the base URL; the rest of stdout is drained in the background so the child never blocks on
/// a full pipe.
pub async fn serve(cmd: &mut tokio::process::Command) -> (tokio::process::Child, String) {
    let mut child = cmd.stdout(Stdio::piped()).spawn().expect("serve starts");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout is piped")).lines();
    let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
        .await
        .expect("serve prints its address within 60 s")
        .expect("serve's stdout is readable")
        .expect("serve prints a first line");
    let base = line
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, base)
}

/// Polls `check` every 100 ms for up to 60 s; panics naming `what` if it never holds.
pub async fn wait_for(what: &str, mut check: impl AsyncFnMut() -> bool) {
    for _ in 0..600 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

/// Lossy UTF-8.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Exit code, stdout and stderr of a finished command, for assertion messages.
pub fn describe(out: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status.code(),
        text(&out.stdout),
        text(&out.stderr)
    )
}

/// Stdout as exactly one JSON document.
pub fn json_doc(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is not one JSON document ({e}):\n{}", describe(out)))
}

/// The commercetools emulator for project `project`, with one API client.
pub async fn ct_emulator(project: &str, client_id: &str, client_secret: &str) -> CtEmulator {
    CtEmulator::start(CtEmulatorConfig {
        project_key: project.into(),
        client_id: client_id.into(),
        client_secret: client_secret.into(),
        ..CtEmulatorConfig::default()
    })
    .await
    .expect("commercetools emulator starts")
}
