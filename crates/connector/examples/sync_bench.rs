//! Full catalog sync benchmark against the local emulators (BENCHMARKS.md, targets 2 and 3).
//!
//! ```text
//! cargo run --release -p connector --example sync_bench -- --products 100000
//! cargo run --release -p connector --example sync_bench -- --products 20000 --rpm 400 --emulator-limit 400
//! ```
//!
//! The emulators hold the whole catalog (and every request body) in memory, so they run in a
//! child process (this binary with `--serve-emulators`): the peak RSS reported is the sync
//! engine's alone. The child prints one `READY {json}` line with the URLs, serves until its stdin
//! closes, then prints one `REPORT {json}` line summarising the Omnisend emulator's request log.
//!
//! Options (main mode):
//!
//! * `--products N` (default 10000): catalog size (30 categories, generator seed 7).
//! * `--stores us|eu|us,eu` (default `us`): store routes synced, each to its own Omnisend brand.
//! * `--rpm R` (default 1000000): `omnisend.requests_per_minute` of the connector.
//! * `--emulator-limit none|N` (default `none`): the Omnisend emulator's per-minute limit.
//! * `--poll-ms MS` (default 2000, the production default): `omnisend.batch_poll_interval_ms`.
//! * `--page-size N` (default 500): `commercetools.page_size`.
//! * `--dry-run`: map and write NDJSON to nowhere instead of calling Omnisend (isolates
//!   commercetools paging + mapping).
//!
//! Output: a human-readable summary on stderr and one `RESULT {json}` line on stdout.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use connector::config::Settings;
use connector::store::StateStore;
use connector::sync::catalog::{CatalogOptions, CatalogSync, PRODUCTS};
use connector::sync::sink::Sink;
use emulators::seed::{CatalogData, CatalogGenerator, CatalogSpec};
use emulators::{CtEmulator, CtEmulatorConfig, OmnisendEmulator, OmnisendEmulatorConfig};
use serde_json::{Value, json};

const PROJECT: &str = "bench-shop";
const CLIENT_ID: &str = "bench-client";
const CLIENT_SECRET: &str = "bench-secret-value";
const KEYS: [(&str, &str); 2] = [("us", "brand-us-api-key"), ("eu", "brand-eu-api-key")];

#[derive(Debug)]
struct Args {
    serve: bool,
    products: usize,
    stores: Vec<String>,
    rpm: u32,
    emulator_limit: Option<u32>,
    poll_ms: u64,
    page_size: u32,
    dry_run: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        serve: false,
        products: 10_000,
        stores: vec!["us".into()],
        rpm: 1_000_000,
        emulator_limit: None,
        poll_ms: 2000,
        page_size: 500,
        dry_run: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        let num = |v: String| {
            v.replace('_', "")
                .parse::<u64>()
                .map_err(|e| format!("{flag}: {e}"))
        };
        match flag.as_str() {
            "--serve-emulators" => a.serve = true,
            "--dry-run" => a.dry_run = true,
            "--products" => a.products = num(value()?)? as usize,
            "--rpm" => a.rpm = num(value()?)? as u32,
            "--poll-ms" => a.poll_ms = num(value()?)?,
            "--page-size" => a.page_size = num(value()?)? as u32,
            "--emulator-limit" => {
                a.emulator_limit = match value()?.as_str() {
                    "none" | "off" => None,
                    v => Some(num(v.to_owned())? as u32),
                }
            }
            "--stores" => {
                a.stores = value()?.split(',').map(str::to_owned).collect();
                if let Some(bad) = a.stores.iter().find(|s| !KEYS.iter().any(|(k, _)| k == s)) {
                    return Err(format!("--stores: unknown store {bad:?} (us, eu)"));
                }
            }
            "-h" | "--help" => {
                return Err("see the module documentation of examples/sync_bench.rs".into());
            }
            other if other.starts_with("--") => return Err(format!("unknown option {other}")),
            _ => {}
        }
    }
    Ok(a)
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("sync_bench: {e}");
            std::process::exit(2);
        }
    };
    let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
    if args.serve {
        rt.block_on(serve_emulators(&args));
    } else {
        rt.block_on(bench(&args));
    }
}

/// `VmHWM` (peak RSS) and `VmRSS` of this process, in KiB.
fn memory_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

/// CPU time (user + system) this process has used so far, in seconds (`/proc/self/stat`,
/// assuming the usual 100 clock ticks per second).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<u64> = rest
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    let ticks = fields.get(11).copied().unwrap_or(0) + fields.get(12).copied().unwrap_or(0);
    ticks as f64 / 100.0
}

// ---------------------------------------------------------------------------------------------
// Child: the emulators.
// ---------------------------------------------------------------------------------------------

async fn serve_emulators(args: &Args) {
    let started = Instant::now();
    let ct = CtEmulator::start(CtEmulatorConfig {
        project_key: PROJECT.into(),
        client_id: CLIENT_ID.into(),
        client_secret: CLIENT_SECRET.into(),
        ..CtEmulatorConfig::default()
    })
    .await
    .expect("commercetools emulator starts");
    let omnisend = OmnisendEmulator::start(OmnisendEmulatorConfig {
        rate_limit_per_minute: args.emulator_limit,
        ..OmnisendEmulatorConfig::default()
    })
    .await
    .expect("Omnisend emulator starts");
    let g = CatalogGenerator::new(&CatalogSpec {
        products: args.products,
        categories: 30,
        seed: 7,
    });
    ct.seed(&CatalogData {
        stores: g.stores(),
        channels: g.channels(),
        product_types: g.product_types(),
        categories: g.categories().to_vec(),
        products: Vec::new(),
    });
    // Streamed in, so the generator never holds the catalog twice.
    for p in g.products() {
        ct.put_product(p);
    }
    let ready = json!({
        "ct": ct.api_url(),
        "omnisend": omnisend.base_url(),
        "seed_ms": started.elapsed().as_millis() as u64,
    });
    println!("READY {ready}");
    std::io::stdout().flush().ok();

    // Serve until the parent closes our stdin.
    tokio::task::spawn_blocking(|| {
        let mut sink = Vec::new();
        std::io::stdin().read_to_end(&mut sink).ok();
    })
    .await
    .ok();

    println!("REPORT {}", request_report(&omnisend));
    std::io::stdout().flush().ok();
}

/// Counts of the Omnisend emulator's logged requests, per API key and kind.
fn request_report(omnisend: &OmnisendEmulator) -> Value {
    let log = omnisend.requests();
    let mut per_key: BTreeMap<String, BTreeMap<&str, u64>> = BTreeMap::new();
    for r in &log {
        let kind = match (r.method.as_str(), r.path.as_str()) {
            ("POST", "/batches") => match r.body.as_ref().and_then(|b| b["endpoint"].as_str()) {
                Some("products") => "product_batches",
                Some("categories") => "category_batches",
                _ => "other_batches",
            },
            ("GET", p) if p.starts_with("/batches") => {
                if p.ends_with("/items") {
                    "batch_item_reads"
                } else if p == "/batches" {
                    "polls_list"
                } else {
                    "polls_single"
                }
            }
            ("DELETE", _) => "deletes",
            _ => "other",
        };
        let counts = per_key.entry(r.api_key.clone()).or_default();
        *counts.entry(kind).or_default() += 1;
        *counts.entry("total").or_default() += 1;
        if r.status == 429 {
            *counts.entry("throttled_429").or_default() += 1;
        }
    }
    let brands: BTreeMap<String, Value> = per_key
        .into_iter()
        .map(|(key, counts)| {
            let max = omnisend.max_requests_in_window(&key, Duration::from_secs(60));
            let span_ms = {
                let times: Vec<_> = log
                    .iter()
                    .filter(|r| r.api_key == key)
                    .map(|r| r.at)
                    .collect();
                match (times.iter().min(), times.iter().max()) {
                    (Some(a), Some(b)) => b.duration_since(*a).as_millis() as u64,
                    _ => 0,
                }
            };
            let mut v = json!(counts);
            v["max_in_60s"] = json!(max);
            v["first_to_last_ms"] = json!(span_ms);
            (key, v)
        })
        .collect();
    let (hwm, rss) = memory_kib();
    json!({"brands": brands, "emulator_vm_hwm_kib": hwm, "emulator_vm_rss_kib": rss})
}

// ---------------------------------------------------------------------------------------------
// Parent: the sync engine.
// ---------------------------------------------------------------------------------------------

fn config_toml(args: &Args, ct: &str, omnisend: &str, state_url: &str) -> String {
    let mut toml = format!(
        r#"
[commercetools]
project_key = "{PROJECT}"
api_url = "{ct}"
auth_url = "{ct}"
client_id = "{CLIENT_ID}"
client_secret = "{CLIENT_SECRET}"
page_size = {page_size}

[omnisend]
api_url = "{omnisend}"
requests_per_minute = {rpm}
batch_poll_interval_ms = {poll}

[state]
url = "{state_url}"
"#,
        page_size = args.page_size,
        rpm = args.rpm,
        poll = args.poll_ms,
    );
    for store in &args.stores {
        let key_env = if store == "us" { "KEY_US" } else { "KEY_EU" };
        toml.push_str(&emulators::seed::store_route_toml(store, key_env));
    }
    toml
}

fn env(name: &str) -> Option<String> {
    match name {
        "KEY_US" => Some(KEYS[0].1.into()),
        "KEY_EU" => Some(KEYS[1].1.into()),
        _ => None,
    }
}

/// Reads lines from the child until one starts with `prefix`; returns the JSON after it.
fn read_tagged(lines: &mut impl Iterator<Item = std::io::Result<String>>, prefix: &str) -> Value {
    for line in lines {
        let line = line.expect("read from the emulator process");
        if let Some(rest) = line.strip_prefix(prefix) {
            return serde_json::from_str(rest.trim()).expect("emulator process prints JSON");
        }
    }
    panic!("the emulator process exited before printing {prefix}");
}

async fn bench(args: &Args) {
    let exe = std::env::current_exe().expect("path of this executable");
    let mut child_args = vec![
        "--serve-emulators".to_owned(),
        "--products".to_owned(),
        args.products.to_string(),
        "--emulator-limit".to_owned(),
    ];
    child_args.push(args.emulator_limit.map_or("none".into(), |l| l.to_string()));
    let mut child = Command::new(exe)
        .args(&child_args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the emulator process");
    let mut lines = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
    let ready = read_tagged(&mut lines, "READY ");
    let ct_url = ready["ct"].as_str().expect("ct url").to_owned();
    let os_url = ready["omnisend"].as_str().expect("omnisend url").to_owned();
    eprintln!(
        "emulators ready in a child process (pid {}), {} products seeded in {} ms",
        child.id(),
        args.products,
        ready["seed_ms"]
    );

    let dir = tempfile::tempdir().expect("temp dir");
    let state_url = format!("sqlite://{}", dir.path().join("state.db").display());
    let config = dir.path().join("config.toml");
    std::fs::write(&config, config_toml(args, &ct_url, &os_url, &state_url)).expect("write config");
    let settings = Settings::load(Some(&config), &|_| None).expect("bench config is valid");

    let (hwm_before, rss_before) = memory_kib();
    let store = StateStore::connect(&settings.state_url)
        .await
        .expect("state store opens");
    let ct = connector::app::commercetools_client(&settings).expect("commercetools client");
    let dry = args.dry_run.then(|| -> connector::app::DryRunOutput {
        Arc::new(Mutex::new(Box::new(std::io::sink())))
    });
    let sinks: HashMap<String, Sink> = connector::app::sinks(&settings, &env, dry).expect("sinks");
    let engine = CatalogSync::new(ct, store, settings.clone(), sinks);

    // Page timestamps: where the wall time goes (first page, steady state, tail after the last).
    let pages: Mutex<Vec<(String, u64, Duration)>> = Mutex::new(Vec::new());
    let cpu_before = cpu_seconds();
    let clock = Instant::now();
    let progress = |p: connector::sync::catalog::Progress<'_>| {
        if p.entity == PRODUCTS {
            pages.lock().expect("progress lock").push((
                p.store.to_owned(),
                p.seen,
                clock.elapsed(),
            ));
        }
    };
    let runs = engine
        .run(
            &CatalogOptions {
                full: true,
                store: None,
            },
            &progress,
        )
        .await
        .expect("full catalog sync succeeds");
    let wall = clock.elapsed();
    let cpu = cpu_seconds() - cpu_before;
    let (hwm, rss) = memory_kib();

    drop(child.stdin.take());
    let report = read_tagged(&mut lines, "REPORT ");
    child.wait().ok();

    let pages = pages.into_inner().expect("progress lock");
    let products_seen: u64 = runs
        .iter()
        .filter(|r| r.entity == PRODUCTS)
        .map(|r| r.stats.seen)
        .sum();
    let mut out = json!({
        "products": args.products,
        "stores": args.stores,
        "rpm": args.rpm,
        "emulator_limit": args.emulator_limit,
        "poll_ms": args.poll_ms,
        "page_size": args.page_size,
        "dry_run": args.dry_run,
        "wall_ms": wall.as_millis() as u64,
        "engine_cpu_s": cpu,
        "products_per_s": (products_seen as f64 / wall.as_secs_f64()).round(),
        "vm_hwm_kib": hwm,
        "vm_rss_kib_after": rss,
        "vm_hwm_kib_before_sync": hwm_before,
        "vm_rss_kib_before_sync": rss_before,
        "runs": runs,
        "emulator": report,
    });
    // Per store: time to the first page, last page, and the tail (settling, deletes, cursor).
    let mut timeline = serde_json::Map::new();
    for store in &args.stores {
        let mine: Vec<_> = pages.iter().filter(|(s, _, _)| s == store).collect();
        if let (Some(first), Some(last)) = (mine.first(), mine.last()) {
            timeline.insert(
                store.clone(),
                json!({"first_page_ms": first.2.as_millis() as u64,
                       "last_page_ms": last.2.as_millis() as u64,
                       "pages": mine.len()}),
            );
        }
    }
    out["page_timeline"] = Value::Object(timeline);

    eprintln!(
        "full sync of {} products ({} store(s)): {:.2} s wall ({:.2} s CPU in this process), peak RSS {:.1} MiB (before sync {:.1} MiB)",
        args.products,
        args.stores.len(),
        wall.as_secs_f64(),
        cpu,
        hwm as f64 / 1024.0,
        hwm_before as f64 / 1024.0,
    );
    for r in &runs {
        eprintln!(
            "  {}/{}: seen {} created {} updated {} unchanged {} rejected {} failed {} requests {} in {} ms",
            r.store,
            r.entity,
            r.stats.seen,
            r.stats.created,
            r.stats.updated,
            r.stats.unchanged,
            r.stats.rejected,
            r.stats.failed,
            r.stats.requests,
            r.stats.duration_ms
        );
    }
    eprintln!("  emulator request log: {}", out["emulator"]["brands"]);
    println!("RESULT {out}");
}
