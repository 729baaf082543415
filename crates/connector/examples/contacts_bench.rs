//! Contacts backfill against the local emulators under Omnisend's request quota (BENCHMARKS.md,
//! "Contacts backfill").
//!
//! ```text
//! cargo run --release -p connector --example contacts_bench -- --customers 50000 --rpm 400
//! ```
//!
//! Every generated customer is routed to one brand (routes `us` and `default` share its key), so
//! the backfill is one brand's `ceil(contacts / 100)` batch requests plus the status polls, all
//! under one per-minute ceiling. The Omnisend emulator enforces the same limit (a request over it
//! would be answered 429). The bound is the time those requests need at the ceiling:
//! `(requests - burst) / rpm` minutes; the run should stay within 10 % of it.
//!
//! Options: `--customers N` (default 50000), `--rpm R` (default 400: the connector's
//! `requests_per_minute` and the emulator's limit), `--poll-ms MS` (default 2000).
//!
//! The emulators run in a child process (this binary with `--serve`), so their work (holding
//! and serving 50,000 customers, logging every request) does not share the engine's core. The
//! child prints `READY {json}`, serves until its stdin closes, then prints `REPORT {json}` with
//! the Omnisend emulator's request counts.
//!
//! Output: a summary on stderr and one `RESULT {json}` line on stdout.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use connector::config::Settings;
use connector::store::StateStore;
use connector::sync::contacts::{ContactOptions, ContactSync};
use connector::sync::sink::Sink;
use emulators::customers::{CustomerSpec, generate_customers};
use emulators::{CtEmulator, CtEmulatorConfig, OmnisendEmulator, OmnisendEmulatorConfig};
use serde_json::json;

const PROJECT: &str = "bench-shop";
const CLIENT_ID: &str = "bench-client";
const CLIENT_SECRET: &str = "bench-secret-value";
const KEY: &str = "brand-bench-api-key";
const BURST: u32 = 5;

struct Args {
    serve: bool,
    customers: usize,
    rpm: u32,
    poll_ms: u64,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        serve: false,
        customers: 50_000,
        rpm: 400,
        poll_ms: 2000,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--serve" {
            a.serve = true;
            continue;
        }
        let value = it
            .next()
            .ok_or_else(|| format!("{flag} needs a value"))?
            .replace('_', "");
        let n: u64 = value.parse().map_err(|e| format!("{flag}: {e}"))?;
        match flag.as_str() {
            "--customers" => a.customers = n as usize,
            "--rpm" => a.rpm = n as u32,
            "--poll-ms" => a.poll_ms = n,
            other => return Err(format!("unknown option {other}")),
        }
    }
    Ok(a)
}

fn config(ct: &str, omnisend: &str, args: &Args, state: &str) -> String {
    let route = |key: &str| {
        format!(
            r#"
[[stores]]
key = "{key}"
locales = ["en"]
currency = "USD"
country = "US"
product_url = "https://shop.example.com/p/{{slug}}"
omnisend_api_key_env = "BENCH_KEY"
"#
        )
    };
    format!(
        r#"
[commercetools]
project_key = "{PROJECT}"
api_url = "{api}"
auth_url = "{auth}"
client_id = "{CLIENT_ID}"
client_secret = "{CLIENT_SECRET}"

[omnisend]
api_url = "{os}"
requests_per_minute = {rpm}
burst = {BURST}
batch_poll_interval_ms = {poll}

[state]
url = "{state}"

[contacts]
guests = false
[contacts.email_consent]
field = "emailMarketingConsent"
date_field = "emailMarketingConsentAt"
double_opt_in_field = "emailDoubleOptIn"
[contacts.sms_consent]
field = "smsMarketingConsent"
date_field = "smsMarketingConsentAt"
{us}{default}"#,
        api = ct,
        auth = ct,
        os = omnisend,
        rpm = args.rpm,
        poll = args.poll_ms,
        us = route("us"),
        default = route("default"),
    )
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = parse_args()?;
    if args.serve {
        return serve(&args).await;
    }
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let mut child = Command::new(std::env::current_exe()?)
        .args([
            "--serve",
            "--customers",
            &args.customers.to_string(),
            "--rpm",
            &args.rpm.to_string(),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    let mut lines = BufReader::new(child.stdout.take().ok_or("child stdout")?).lines();
    let ready = read_tagged(&mut lines, "READY ")?;
    let (ct, os) = (
        ready["ct"].as_str().unwrap_or_default().to_owned(),
        ready["omnisend"].as_str().unwrap_or_default().to_owned(),
    );

    let dir = tempfile::tempdir()?;
    let state = format!("sqlite://{}", dir.path().join("state.db").display());
    let path = dir.path().join("bench.toml");
    std::fs::write(&path, config(&ct, &os, &args, &state))?;
    let settings = Settings::load(Some(&path), &|_| None)?;
    let store = StateStore::connect(&settings.state_url).await?;
    let env = |name: &str| (name == "BENCH_KEY").then(|| KEY.to_owned());
    let sinks: HashMap<String, Sink> = connector::app::sinks(&settings, &env, None)?;
    let ct_client = connector::app::commercetools_client(&settings)?;
    let engine = ContactSync::new(ct_client, store, settings, sinks);

    eprintln!(
        "contacts backfill: {} customers, one brand, {} requests/minute…",
        args.customers, args.rpm
    );
    let started = Instant::now();
    let runs = engine.run(&ContactOptions::default()).await?;
    let elapsed = started.elapsed();
    drop(child.stdin.take());
    let report = read_tagged(&mut lines, "REPORT ")?;
    child.wait()?;

    let n = |k: &str| report[k].as_u64().unwrap_or(0);
    let first_to_last = Duration::from_millis(n("first_to_last_ms"));
    let (requests, batches, polls, throttled, contacts, busiest) = (
        n("requests"),
        n("batches"),
        n("polls"),
        n("throttled"),
        n("contacts"),
        n("busiest_window"),
    );
    let bound = Duration::from_secs_f64(
        (requests as f64 - f64::from(BURST)).max(0.0) * 60.0 / f64::from(args.rpm),
    );
    let ratio = elapsed.as_secs_f64() / bound.as_secs_f64().max(1e-9);
    let stats = &runs[0].stats;
    eprintln!(
        "  contacts in Omnisend: {contacts} (created {}, rejected {}, failed {})",
        stats.created, stats.rejected, stats.failed
    );
    eprintln!(
        "  requests: {requests} = {batches} batches (ceil({contacts}/100) = {}) + {polls} polls; 429s: {throttled}",
        contacts.div_ceil(100)
    );
    eprintln!(
        "  elapsed {:.1} s against a bound of {:.1} s at {} rpm: {ratio:.3}×; busiest 60 s window {busiest}",
        elapsed.as_secs_f64(),
        bound.as_secs_f64(),
        args.rpm
    );
    eprintln!(
        "  first to last Omnisend request: {:.1} s ({:.3}× the bound)",
        first_to_last.as_secs_f64(),
        first_to_last.as_secs_f64() / bound.as_secs_f64().max(1e-9)
    );
    let out = json!({
        "customers": args.customers,
        "contacts": contacts,
        "rpm": args.rpm,
        "requests": requests,
        "batches": batches,
        "polls": polls,
        "throttled": throttled,
        "elapsed_s": elapsed.as_secs_f64(),
        "bound_s": bound.as_secs_f64(),
        "ratio": ratio,
        "busiest_window": busiest,
        "first_to_last_s": first_to_last.as_secs_f64(),
        "gaps_ms": report["gaps_ms"],
    });
    println!("RESULT {out}");
    Ok(())
}

fn read_tagged(
    lines: &mut std::io::Lines<BufReader<std::process::ChildStdout>>,
    tag: &str,
) -> Result<serde_json::Value, Box<dyn std::error::Error>> {
    for line in lines.by_ref() {
        if let Some(rest) = line?.strip_prefix(tag) {
            return Ok(serde_json::from_str(rest)?);
        }
    }
    Err(format!("the emulator process ended without a {tag}line").into())
}

/// Child: both emulators with the generated customers, until stdin closes.
async fn serve(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    let ct = CtEmulator::start(CtEmulatorConfig {
        project_key: PROJECT.into(),
        client_id: CLIENT_ID.into(),
        client_secret: CLIENT_SECRET.into(),
        ..CtEmulatorConfig::default()
    })
    .await?;
    ct.seed(&emulators::seed::generate_catalog(
        &emulators::seed::CatalogSpec {
            products: 1,
            categories: 1,
            seed: 1,
        },
    ));
    ct.seed_customers(&generate_customers(&CustomerSpec {
        customers: args.customers,
        seed: 5,
        stores: vec!["us".into()],
        guest_orders: 0,
        guest_carts: 0,
    }));
    let omnisend = OmnisendEmulator::start(OmnisendEmulatorConfig {
        rate_limit_per_minute: Some(args.rpm),
        ..OmnisendEmulatorConfig::default()
    })
    .await?;
    println!(
        "READY {}",
        json!({"ct": ct.api_url(), "omnisend": omnisend.base_url()})
    );
    std::io::stdout().flush()?;
    tokio::task::spawn_blocking(|| {
        let mut sink = Vec::new();
        std::io::stdin().read_to_end(&mut sink).ok();
    })
    .await?;
    let log = omnisend.requests();
    let report = json!({
        "requests": log.len(),
        "batches": log.iter().filter(|r| r.method == "POST" && r.path == "/batches").count(),
        "polls": log.iter().filter(|r| r.method == "GET").count(),
        "throttled": log.iter().filter(|r| r.status == 429).count(),
        "contacts": omnisend.contacts(KEY).len(),
        "busiest_window": omnisend.max_requests_in_window(KEY, Duration::from_secs(60)),
        // Pauses longer than two intervals at the ceiling: where the quota went unused.
        "gaps_ms": log
            .windows(2)
            .map(|w| w[1].at.duration_since(w[0].at).as_millis() as u64)
            .filter(|g| *g as f64 > 2.0 * 60_000.0 / f64::from(args.rpm))
            .collect::<Vec<_>>(),
        "first_to_last_ms": match (log.first(), log.last()) {
            (Some(a), Some(b)) => b.at.duration_since(a.at).as_millis() as u64,
            _ => 0,
        },
    });
    println!("REPORT {report}");
    std::io::stdout().flush()?;
    Ok(())
}
