//! Real-time events benchmark: `serve` (webhook ingest, inbox processing, outbox delivery)
//! against the local emulators (BENCHMARKS.md, "Real-time events (issue 4)").
//!
//! ```text
//! cargo build --release -p connector --example events_bench
//! cargo run --release -p connector --example events_bench -- --mode ingest --messages 20000 --concurrency 32
//! cargo run --release -p connector --example events_bench -- --mode e2e --orders 300 --rate 3
//! cargo run --release -p connector --example events_bench -- --mode peak --rate 50 --seconds 600
//! ```
//!
//! Three processes, so the measured one is only the engine:
//!
//! * **this process** runs [`connector::serve::run`] on `127.0.0.1:0` with the production wiring
//!   (SQLite state in a temp dir via `StateStore::connect("sqlite://…")`, i.e. WAL with
//!   `synchronous = NORMAL`, one Omnisend client and rate controller for the brand, idle poll
//!   500 ms);
//! * **an emulator process** (this binary with `--role emulators`): the commercetools and
//!   Omnisend emulators. Before it reports `READY {json}` it creates the orders
//!   (`emulators::orders::OrderSpec::sample(n, "EUR")`, n = 1…N, each with its recorded
//!   `OrderCreated` message) and writes one Pub/Sub push envelope per order
//!   (`notify::pubsub_push(notify::message_payload(..))`, delivery id `bench-<n>`) to a file.
//!   When its stdin closes it prints `REPORT {json}`: the Omnisend request log (by kind,
//!   statuses, 429s, busiest 60 s window, per-minute counts, events per batch) and the events
//!   received (total, distinct `eventID`s, each order's `receivedAt`);
//! * **a load process** (`--role load`): reads the envelope file and posts the envelopes to
//!   `POST /webhooks/commercetools` with the bearer token, either closed loop from
//!   `--concurrency` workers, each with its own keep-alive connection (ingest), or open loop at
//!   `--rate` per second (e2e, peak). It prints `RESULT {json}` with every request's status and
//!   latency (and, open loop, each order's send time as Unix ms).
//!
//! Modes:
//!
//! * `--mode ingest --messages N --concurrency C [--processing on|off]`: throughput and
//!   acknowledgement latency of the webhook; afterwards the inbox must hold exactly N rows.
//!   `on` (default) runs the whole `serve` (the workers process and deliver while the load
//!   runs, against the real emulators); `off` serves only the HTTP routes
//!   ([`connector::serve::router`]), the pure ingest path. With `on`, the time the processor
//!   needs to empty the inbox is reported too.
//! * `--mode e2e --orders N --rate R`: one `placed order` event per order
//!   (`ordered_product_events = false`); per order, webhook send time → Omnisend emulator's
//!   `receivedAt` (both wall clock of this machine, ms).
//! * `--mode peak --rate R --seconds S`: R orders per second for S seconds; the outbox and inbox
//!   are sampled every second (`outbox_depth`, `count_pending_notifications`); the run waits for
//!   the backlog to drain (up to `--drain-timeout` seconds, default 600).
//!
//! Common options: `--rpm R` (connector `omnisend.requests_per_minute`, default 360, the
//! production default), `--emulator-limit none|N` (Omnisend emulator's per-key limit per sliding
//! 60 s, default 400), `--batch-delay-ms MS` (emulator batch processing delay, default 0),
//! `--omnisend-latency-ms MS` (latency added to every Omnisend response, default 0),
//! `--poll-ms MS` (`omnisend.batch_poll_interval_ms`, default 2000), `--ordered-products`
//! (turn `ordered_product_events` on; default off: one event per order), `--dump-log PATH`
//! (the emulator writes its Omnisend request log there as TSV: arrival Unix ms, method, path,
//! status, batch items).
//!
//! Output: a summary on stderr and one `RESULT {json}` line on stdout.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use connector::config::Settings;
use connector::serve::{Service, router, run};
use connector::store::StateStore;
use emulators::orders::{self, OrderSpec};
use emulators::{
    CtEmulator, CtEmulatorConfig, Faults, OmnisendEmulator, OmnisendEmulatorConfig, notify,
};
use secrecy::SecretString;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdout, Command};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

type Error = Box<dyn std::error::Error + Send + Sync>;

const PROJECT: &str = "bench-shop";
const CLIENT_ID: &str = "bench-client";
const CLIENT_SECRET: &str = "bench-secret-value";
const KEY: &str = "brand-bench-api-key";
const TOKEN: &str = "bench-webhook-token-0123456789";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Ingest,
    E2e,
    Peak,
}

#[derive(Debug, Clone)]
struct Args {
    role: String,
    mode: Mode,
    messages: usize,
    concurrency: usize,
    rate: Option<f64>,
    seconds: u64,
    processing: bool,
    rpm: u32,
    emulator_limit: Option<u32>,
    batch_delay_ms: u64,
    latency_ms: u64,
    poll_ms: u64,
    ordered_products: bool,
    drain_timeout: u64,
    envelopes: PathBuf,
    url: String,
    dump_log: Option<PathBuf>,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        role: "main".into(),
        mode: Mode::Ingest,
        messages: 0,
        concurrency: 32,
        rate: None,
        seconds: 600,
        processing: true,
        rpm: 360,
        emulator_limit: Some(400),
        batch_delay_ms: 0,
        latency_ms: 0,
        poll_ms: 2000,
        ordered_products: false,
        drain_timeout: 600,
        envelopes: PathBuf::new(),
        url: String::new(),
        dump_log: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--ordered-products" {
            a.ordered_products = true;
            continue;
        }
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let num = |v: &str| {
            v.replace('_', "")
                .parse::<u64>()
                .map_err(|e| format!("{flag}: {e}"))
        };
        match flag.as_str() {
            "--role" => a.role = value,
            "--mode" => {
                a.mode = match value.as_str() {
                    "ingest" => Mode::Ingest,
                    "e2e" => Mode::E2e,
                    "peak" => Mode::Peak,
                    other => return Err(format!("--mode: {other:?} (ingest, e2e, peak)")),
                }
            }
            "--messages" | "--orders" => a.messages = num(&value)? as usize,
            "--concurrency" => a.concurrency = num(&value)?.max(1) as usize,
            "--rate" => {
                a.rate = Some(
                    value
                        .parse::<f64>()
                        .ok()
                        .filter(|r| *r > 0.0)
                        .ok_or("--rate: a positive number")?,
                )
            }
            "--seconds" => a.seconds = num(&value)?,
            "--processing" => a.processing = value != "off",
            "--rpm" => a.rpm = num(&value)? as u32,
            "--emulator-limit" => {
                a.emulator_limit = match value.as_str() {
                    "none" | "off" => None,
                    v => Some(num(v)? as u32),
                }
            }
            "--batch-delay-ms" => a.batch_delay_ms = num(&value)?,
            "--omnisend-latency-ms" => a.latency_ms = num(&value)?,
            "--poll-ms" => a.poll_ms = num(&value)?,
            "--drain-timeout" => a.drain_timeout = num(&value)?,
            "--envelopes" => a.envelopes = PathBuf::from(value),
            "--url" => a.url = value,
            "--dump-log" => a.dump_log = Some(PathBuf::from(value)),
            other => return Err(format!("unknown option {other}")),
        }
    }
    if a.role == "main" {
        match a.mode {
            Mode::Ingest => {
                if a.messages == 0 {
                    a.messages = 20_000;
                }
                a.rate = None;
            }
            Mode::E2e => {
                if a.messages == 0 {
                    a.messages = 300;
                }
                a.rate.get_or_insert(3.0);
            }
            Mode::Peak => {
                let rate = *a.rate.get_or_insert(50.0);
                a.messages = (rate * a.seconds as f64).round() as usize;
            }
        }
    }
    Ok(a)
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("events_bench: {e}");
            std::process::exit(2);
        }
    };
    let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
    let result = rt.block_on(async {
        match args.role.as_str() {
            "emulators" => emulators(&args).await,
            "load" => load(&args).await,
            _ => bench(&args).await,
        }
    });
    if let Err(e) = result {
        eprintln!("events_bench ({}): {e}", args.role);
        std::process::exit(1);
    }
}

fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn summary(mut v: Vec<f64>) -> Value {
    v.sort_by(f64::total_cmp);
    let mean = if v.is_empty() {
        f64::NAN
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    };
    let r = |x: f64| (x * 100.0).round() / 100.0;
    json!({
        "n": v.len(),
        "mean": r(mean),
        "p50": r(percentile(&v, 0.50)),
        "p95": r(percentile(&v, 0.95)),
        "p99": r(percentile(&v, 0.99)),
        "max": r(v.last().copied().unwrap_or(f64::NAN)),
    })
}

/// `VmHWM` (peak RSS) of this process, in KiB.
fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// CPU time (user + system) of this process so far, in seconds (100 ticks per second).
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

/// Reads the child's stdout until a line starts with `tag`; returns the JSON after it.
async fn read_tagged(
    lines: &mut tokio::io::Lines<BufReader<ChildStdout>>,
    tag: &str,
) -> Result<Value, Error> {
    while let Some(line) = lines.next_line().await? {
        if let Some(rest) = line.strip_prefix(tag) {
            return Ok(serde_json::from_str(rest.trim())?);
        }
    }
    Err(format!("the child process ended without a {tag}line").into())
}

fn spawn_child(
    args: &[String],
) -> Result<(Child, tokio::io::Lines<BufReader<ChildStdout>>), Error> {
    let mut child = Command::new(std::env::current_exe()?)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()?;
    let stdout = child.stdout.take().ok_or("child stdout")?;
    Ok((child, BufReader::new(stdout).lines()))
}

// ---------------------------------------------------------------------------------------------
// Child: the emulators.
// ---------------------------------------------------------------------------------------------

async fn emulators(a: &Args) -> Result<(), Error> {
    let started = Instant::now();
    let ct = CtEmulator::start(CtEmulatorConfig {
        project_key: PROJECT.into(),
        client_id: CLIENT_ID.into(),
        client_secret: CLIENT_SECRET.into(),
        ..CtEmulatorConfig::default()
    })
    .await?;
    let omnisend = OmnisendEmulator::start(OmnisendEmulatorConfig {
        rate_limit_per_minute: a.emulator_limit,
        faults: Faults {
            latency: Duration::from_millis(a.latency_ms),
            ..Faults::default()
        },
        batch_delay: Duration::from_millis(a.batch_delay_ms),
    })
    .await?;
    {
        use std::io::Write;
        let mut out = std::io::BufWriter::new(std::fs::File::create(&a.envelopes)?);
        for n in 1..=a.messages {
            let spec = OrderSpec::sample(n, "EUR");
            let message = ct.create_order(orders::order(&spec));
            let payload = notify::message_payload(&message, PROJECT);
            let envelope = notify::pubsub_push(&payload, &format!("bench-{n}"));
            writeln!(out, "{}\t{envelope}", spec.id)?;
        }
        out.flush()?;
    }
    let ready = json!({
        "ct": ct.api_url(),
        "omnisend": omnisend.base_url(),
        "seed_ms": started.elapsed().as_millis() as u64,
    });
    // Instant → Unix ms for the request log.
    let (t0, t0_ms) = (tokio::time::Instant::now(), unix_ms());
    let mut stdout = tokio::io::stdout();
    stdout
        .write_all(format!("READY {ready}\n").as_bytes())
        .await?;
    stdout.flush().await?;

    // Serve until the parent closes our stdin.
    let mut stdin = tokio::io::stdin();
    let mut sink = Vec::new();
    tokio::io::AsyncReadExt::read_to_end(&mut stdin, &mut sink)
        .await
        .ok();

    let report = omnisend_report(&omnisend, t0, t0_ms);
    if let Some(path) = &a.dump_log {
        dump_log(&omnisend, t0, t0_ms, path)?;
    }
    stdout
        .write_all(format!("REPORT {report}\n").as_bytes())
        .await?;
    stdout.flush().await?;
    Ok(())
}

/// The Omnisend request log as TSV: arrival (Unix ms), method, path, status, batch items.
fn dump_log(
    omnisend: &OmnisendEmulator,
    t0: tokio::time::Instant,
    t0_ms: i64,
    path: &std::path::Path,
) -> std::io::Result<()> {
    use std::io::Write;
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    for r in omnisend.requests() {
        let ms = if r.at >= t0 {
            t0_ms + r.at.duration_since(t0).as_millis() as i64
        } else {
            t0_ms - t0.duration_since(r.at).as_millis() as i64
        };
        let items = r
            .body
            .as_ref()
            .and_then(|b| b["items"].as_array())
            .map_or(0, Vec::len);
        writeln!(out, "{ms}\t{}\t{}\t{}\t{items}", r.method, r.path, r.status)?;
    }
    out.flush()
}

fn omnisend_report(omnisend: &OmnisendEmulator, t0: tokio::time::Instant, t0_ms: i64) -> Value {
    let at_ms = |at: tokio::time::Instant| {
        if at >= t0 {
            t0_ms + at.duration_since(t0).as_millis() as i64
        } else {
            t0_ms - t0.duration_since(at).as_millis() as i64
        }
    };
    let log = omnisend.requests();
    let mut kinds: BTreeMap<&str, u64> = BTreeMap::new();
    let mut statuses: BTreeMap<u16, u64> = BTreeMap::new();
    let mut batch_sizes: Vec<f64> = Vec::new();
    for r in log.iter().filter(|r| r.api_key == KEY) {
        let kind = match (r.method.as_str(), r.path.as_str()) {
            ("POST", "/events") => "event_singles",
            ("POST", "/batches") => {
                if r.status / 100 == 2 {
                    let items = r
                        .body
                        .as_ref()
                        .and_then(|b| b["items"].as_array())
                        .map_or(0, Vec::len);
                    batch_sizes.push(items as f64);
                }
                "event_batches"
            }
            ("GET", "/batches") => "polls_list",
            ("GET", p) if p.starts_with("/batches/") && p.ends_with("/items") => "item_reads",
            ("GET", p) if p.starts_with("/batches/") => "polls_single",
            _ => "other",
        };
        *kinds.entry(kind).or_default() += 1;
        *statuses.entry(r.status).or_default() += 1;
    }
    let keyed: Vec<i64> = log
        .iter()
        .filter(|r| r.api_key == KEY)
        .map(|r| at_ms(r.at))
        .collect();
    let (first, last) = (
        keyed.iter().min().copied().unwrap_or(0),
        keyed.iter().max().copied().unwrap_or(0),
    );
    // Requests per 60 s bucket from the first request.
    let mut per_minute: Vec<u64> = Vec::new();
    for t in &keyed {
        let bucket = ((t - first) / 60_000) as usize;
        if per_minute.len() <= bucket {
            per_minute.resize(bucket + 1, 0);
        }
        per_minute[bucket] += 1;
    }
    let events = omnisend.events(KEY);
    let distinct: HashSet<&str> = events
        .iter()
        .filter_map(|e| e["eventID"].as_str())
        .collect();
    let mut by_name: BTreeMap<&str, u64> = BTreeMap::new();
    let mut received: Vec<(String, i64)> = Vec::new();
    for e in &events {
        let name = e["eventName"].as_str().unwrap_or("?");
        *by_name.entry(name).or_default() += 1;
        if name == "placed order"
            && let (Some(order), Some(at)) = (
                e["properties"]["orderID"].as_str(),
                e["receivedAt"].as_str().and_then(|s| {
                    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
                        .ok()
                }),
            )
        {
            received.push((
                order.to_owned(),
                (at.unix_timestamp_nanos() / 1_000_000) as i64,
            ));
        }
    }
    json!({
        "requests": keyed.len(),
        "kinds": kinds,
        "statuses": statuses,
        "throttled_429": statuses.get(&429).copied().unwrap_or(0),
        "max_in_60s": omnisend.max_requests_in_window(KEY, Duration::from_secs(60)),
        "per_minute": per_minute,
        "first_request_ms": first,
        "last_request_ms": last,
        "events_per_batch": summary(batch_sizes),
        "events_total": events.len(),
        "events_distinct": distinct.len(),
        "events_by_name": by_name,
        "received": received,
    })
}

// ---------------------------------------------------------------------------------------------
// Child: the load generator.
// ---------------------------------------------------------------------------------------------

struct Sent {
    order: usize,
    at_ms: i64,
    latency_ms: f64,
    status: u16,
}

/// Posts envelope `i` and times the answer (status 0 = transport error).
async fn send_one(
    client: reqwest::Client,
    url: Arc<str>,
    envelopes: Arc<Vec<(String, String)>>,
    i: usize,
) -> Sent {
    let at_ms = unix_ms();
    let t = Instant::now();
    let status = match client
        .post(&*url)
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body(envelopes[i].1.clone())
        .send()
        .await
    {
        Ok(r) => {
            let s = r.status().as_u16();
            let _ = r.bytes().await;
            s
        }
        Err(_) => 0,
    };
    Sent {
        order: i,
        at_ms,
        latency_ms: t.elapsed().as_secs_f64() * 1000.0,
        status,
    }
}

async fn load(a: &Args) -> Result<(), Error> {
    let text = tokio::fs::read_to_string(&a.envelopes).await?;
    let envelopes: Arc<Vec<(String, String)>> = Arc::new(
        text.lines()
            .take(a.messages)
            .filter_map(|l| l.split_once('\t'))
            .map(|(id, body)| (id.to_owned(), body.to_owned()))
            .collect(),
    );
    drop(text);
    let url: Arc<str> = format!("{}/webhooks/commercetools", a.url).into();
    let health = format!("{}/healthz", a.url);
    let client = || {
        reqwest::Client::builder()
            .tcp_nodelay(true)
            .timeout(Duration::from_secs(30))
            .build()
    };
    let started;
    let mut sent: Vec<Sent> = Vec::with_capacity(envelopes.len());
    if let Some(rate) = a.rate {
        // Open loop: request k leaves at start + k / rate, whatever the answers take.
        let c = client()?;
        c.get(&health).send().await?;
        started = Instant::now();
        let start = tokio::time::Instant::now();
        let mut tasks = Vec::with_capacity(envelopes.len());
        for k in 0..envelopes.len() {
            tokio::time::sleep_until(start + Duration::from_secs_f64(k as f64 / rate)).await;
            tasks.push(tokio::spawn(send_one(
                c.clone(),
                url.clone(),
                envelopes.clone(),
                k,
            )));
        }
        for t in tasks {
            sent.push(t.await?);
        }
    } else {
        // Closed loop: C workers, each with its own keep-alive connection, take the next
        // envelope as soon as their previous request was answered.
        let next = Arc::new(AtomicUsize::new(0));
        let go = Arc::new(Notify::new());
        let mut workers = Vec::new();
        let ready = Arc::new(AtomicUsize::new(0));
        for _ in 0..a.concurrency {
            let c = client()?;
            c.get(&health).send().await?; // opens the connection before the clock starts
            let (url, envelopes) = (url.clone(), envelopes.clone());
            let (next, go, ready) = (next.clone(), go.clone(), ready.clone());
            let n = envelopes.len();
            workers.push(tokio::spawn(async move {
                let wait = go.notified();
                ready.fetch_add(1, Ordering::SeqCst);
                wait.await;
                let mut mine = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        break;
                    }
                    mine.push(send_one(c.clone(), url.clone(), envelopes.clone(), i).await);
                }
                mine
            }));
        }
        while ready.load(Ordering::SeqCst) < a.concurrency {
            tokio::task::yield_now().await;
        }
        started = Instant::now();
        go.notify_waiters();
        for w in workers {
            sent.extend(w.await?);
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    sent.sort_by_key(|s| s.order);
    let mut statuses: BTreeMap<u16, u64> = BTreeMap::new();
    for s in &sent {
        *statuses.entry(s.status).or_default() += 1;
    }
    let ok: Vec<f64> = sent
        .iter()
        .filter(|s| s.status / 100 == 2)
        .map(|s| s.latency_ms)
        .collect();
    let posted: Vec<Value> = sent
        .iter()
        .map(|s| json!([envelopes[s.order].0, s.at_ms]))
        .collect();
    let out = json!({
        "requests": sent.len(),
        "ok": ok.len(),
        "statuses": statuses,
        "elapsed_s": elapsed,
        "throughput": ok.len() as f64 / elapsed,
        "latency_ms": summary(ok),
        "first_ms": sent.iter().map(|s| s.at_ms).min(),
        "last_ms": sent.iter().map(|s| s.at_ms).max(),
        "posted": if a.rate.is_some() { Value::Array(posted) } else { Value::Null },
    });
    let mut stdout = tokio::io::stdout();
    stdout
        .write_all(format!("RESULT {out}\n").as_bytes())
        .await?;
    stdout.flush().await?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Parent: `serve`.
// ---------------------------------------------------------------------------------------------

fn config_toml(a: &Args, ct: &str, omnisend: &str, state_url: &str) -> String {
    format!(
        r#"
[commercetools]
project_key = "{PROJECT}"
api_url = "{ct}"
auth_url = "{ct}"
client_id = "{CLIENT_ID}"
client_secret = "{CLIENT_SECRET}"

[omnisend]
api_url = "{omnisend}"
requests_per_minute = {rpm}
batch_poll_interval_ms = {poll}

[state]
url = "{state_url}"

[events]
ordered_product_events = {ordered}

[[stores]]
key = "default"
locales = ["en"]
currency = "EUR"
product_url = "https://shop.example.com/p/{{slug}}"
omnisend_api_key_env = "BENCH_KEY"
"#,
        rpm = a.rpm,
        poll = a.poll_ms,
        ordered = a.ordered_products,
    )
}

/// One sample of the queues (peak mode).
#[derive(Default, Clone, Copy)]
struct Sample {
    t_s: f64,
    inbox: i64,
    outbox: i64,
    sent: i64,
    lag_s: f64,
    query_ms: f64,
}

fn child_args(a: &Args, role: &str) -> Vec<String> {
    let mut v = vec![
        "--role".to_owned(),
        role.to_owned(),
        "--messages".to_owned(),
        a.messages.to_string(),
        "--envelopes".to_owned(),
        a.envelopes.display().to_string(),
    ];
    if role == "emulators" {
        v.extend([
            "--emulator-limit".to_owned(),
            a.emulator_limit.map_or("none".into(), |l| l.to_string()),
            "--batch-delay-ms".to_owned(),
            a.batch_delay_ms.to_string(),
            "--omnisend-latency-ms".to_owned(),
            a.latency_ms.to_string(),
        ]);
        if let Some(p) = &a.dump_log {
            v.extend(["--dump-log".to_owned(), p.display().to_string()]);
        }
    } else {
        v.extend([
            "--url".to_owned(),
            a.url.clone(),
            "--concurrency".to_owned(),
            a.concurrency.to_string(),
        ]);
        if let Some(r) = a.rate {
            v.extend(["--rate".to_owned(), r.to_string()]);
        }
    }
    v
}

async fn bench(args: &Args) -> Result<(), Error> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let dir = tempfile::tempdir()?;
    let mut a = args.clone();
    a.envelopes = dir.path().join("envelopes.tsv");

    eprintln!(
        "events_bench {:?}: creating {} orders in the emulator process…",
        a.mode, a.messages
    );
    let (mut emu, mut emu_lines) = spawn_child(&child_args(&a, "emulators"))?;
    let ready = read_tagged(&mut emu_lines, "READY ").await?;
    let ct_url = ready["ct"].as_str().ok_or("ct url")?.to_owned();
    let os_url = ready["omnisend"].as_str().ok_or("omnisend url")?.to_owned();
    eprintln!(
        "emulators ready (pid {:?}) in {} ms",
        emu.id(),
        ready["seed_ms"]
    );

    let state_url = format!("sqlite://{}", dir.path().join("state.db").display());
    let config = dir.path().join("config.toml");
    std::fs::write(&config, config_toml(&a, &ct_url, &os_url, &state_url))?;
    let settings = Arc::new(Settings::load(Some(&config), &|_| None)?);
    let store = StateStore::connect(&settings.state_url).await?;
    let mut clients = HashMap::new();
    clients.insert(
        "BENCH_KEY".to_owned(),
        connector::app::omnisend_client(&settings, KEY.into())?,
    );
    let service = Service {
        settings: settings.clone(),
        store: store.clone(),
        ct: connector::app::commercetools_client(&settings)?,
        clients,
        webhook_token: Some(SecretString::from(TOKEN)),
        storefront_token: None,
        recovery_secret: None,
        oidc: None,
        idle_poll: Duration::from_millis(500),
        instance: format!("bench-{}", std::process::id()),
        admin_password: None,
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    a.url = format!("http://{}", listener.local_addr()?);
    let stop = CancellationToken::new();
    let workers = a.mode != Mode::Ingest || a.processing;
    let server = if workers {
        tokio::spawn(run(service, listener, stop.clone()))
    } else {
        let app = router(
            &service,
            Arc::new(Notify::new()),
            Arc::new(AtomicBool::new(true)),
        );
        let s = stop.clone();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move { s.cancelled().await })
                .await
        })
    };

    // Queue sampler (every second).
    let samples: Arc<std::sync::Mutex<Vec<Sample>>> = Arc::default();
    let clock = Instant::now();
    let sampler = {
        let (store, samples, stop) = (store.clone(), samples.clone(), stop.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            while !stop.is_cancelled() {
                tick.tick().await;
                let now = time::OffsetDateTime::now_utc();
                let q = Instant::now();
                let (Ok(depth), Ok(inbox)) = (
                    store.outbox_depth(now).await,
                    store.count_pending_notifications().await,
                ) else {
                    continue;
                };
                let query_ms = q.elapsed().as_secs_f64() * 1000.0;
                let lag_s = depth
                    .oldest_pending
                    .map_or(0.0, |o| (now - o).as_seconds_f64());
                samples.lock().expect("samples").push(Sample {
                    t_s: clock.elapsed().as_secs_f64(),
                    inbox,
                    outbox: depth.pending,
                    sent: depth.sent,
                    lag_s,
                    query_ms,
                });
            }
        })
    };

    eprintln!(
        "serve on {} ({}); posting {} envelopes{}…",
        a.url,
        if workers {
            "with workers"
        } else {
            "HTTP routes only"
        },
        a.messages,
        match a.rate {
            Some(r) => format!(" at {r}/s"),
            None => format!(" from {} connections", a.concurrency),
        }
    );
    let cpu0 = cpu_seconds();
    let (mut load_child, mut load_lines) = spawn_child(&child_args(&a, "load"))?;
    let loaded = read_tagged(&mut load_lines, "RESULT ").await?;
    load_child.wait().await?;
    let load_cpu = cpu_seconds() - cpu0;
    let burst_end = loaded["last_ms"].as_i64().unwrap_or(0);
    let ok = loaded["ok"].as_u64().unwrap_or(0) as usize;

    let mut out = json!({
        "mode": format!("{:?}", a.mode).to_lowercase(),
        "messages": a.messages,
        "concurrency": a.concurrency,
        "rate": a.rate,
        "processing": workers,
        "rpm": a.rpm,
        "emulator_limit": a.emulator_limit,
        "batch_delay_ms": a.batch_delay_ms,
        "omnisend_latency_ms": a.latency_ms,
        "poll_ms": a.poll_ms,
        "ordered_product_events": a.ordered_products,
        "load": {
            "requests": loaded["requests"],
            "ok": loaded["ok"],
            "statuses": loaded["statuses"],
            "elapsed_s": loaded["elapsed_s"],
            "throughput": loaded["throughput"],
            "latency_ms": loaded["latency_ms"],
        },
        "engine_cpu_s_during_load": load_cpu,
    });

    match a.mode {
        Mode::Ingest => {
            let pool = sqlx::SqlitePool::connect(&state_url).await?;
            let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM inbox")
                .fetch_one(&pool)
                .await?;
            let pending_at_end = store.count_pending_notifications().await?;
            out["inbox_rows"] = json!(rows);
            out["inbox_pending_at_load_end"] = json!(pending_at_end);
            eprintln!(
                "ingest: {} of {} requests 2xx in {:.2} s = {:.0} msg/s; statuses {}; latency ms {}",
                ok,
                loaded["requests"],
                loaded["elapsed_s"].as_f64().unwrap_or(0.0),
                loaded["throughput"].as_f64().unwrap_or(0.0),
                loaded["statuses"],
                loaded["latency_ms"]
            );
            eprintln!(
                "  inbox rows after the load: {rows} (expected {}: {}); still unprocessed: {pending_at_end}; engine CPU during the load {load_cpu:.1} s",
                a.messages,
                if rows == a.messages as i64 {
                    "ok"
                } else {
                    "MISMATCH"
                }
            );
            if workers {
                let t = Instant::now();
                let deadline = Duration::from_secs(a.drain_timeout);
                while store.count_pending_notifications().await? > 0 && t.elapsed() < deadline {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                let left = store.count_pending_notifications().await?;
                let after_load = t.elapsed().as_secs_f64();
                let total = loaded["elapsed_s"].as_f64().unwrap_or(0.0) + after_load;
                out["inbox_drained_after_load_s"] = json!(after_load);
                out["inbox_left"] = json!(left);
                out["processed_per_s"] = json!(a.messages as f64 / total);
                eprintln!(
                    "  inbox processed {:.1} s after the load ended ({left} left): {:.0} notifications/s overall",
                    after_load,
                    a.messages as f64 / total
                );
            }
            pool.close().await;
        }
        Mode::E2e | Mode::Peak => {
            // Wait for everything to be delivered.
            let t = Instant::now();
            let deadline = Duration::from_secs(a.drain_timeout);
            let drained = loop {
                let depth = store.outbox_depth(time::OffsetDateTime::now_utc()).await?;
                let inbox = store.count_pending_notifications().await?;
                if inbox == 0 && depth.pending == 0 && depth.sent + depth.rejected >= ok as i64 {
                    break Some(unix_ms());
                }
                if t.elapsed() > deadline {
                    break None;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            };
            out["drained_after_burst_s"] = json!(drained.map(|d| (d - burst_end) as f64 / 1000.0));
            let depth = store.outbox_depth(time::OffsetDateTime::now_utc()).await?;
            out["outbox"] = json!(depth);
        }
    }
    let cpu_total = cpu_seconds() - cpu0;
    stop.cancel();
    let _ = server.await;
    let _ = sampler.await;

    // The emulator's view.
    if let Some(mut stdin) = emu.stdin.take() {
        stdin.shutdown().await.ok();
    }
    drop(emu.stdin.take());
    let report = read_tagged(&mut emu_lines, "REPORT ").await?;
    emu.wait().await?;

    if matches!(a.mode, Mode::E2e | Mode::Peak) {
        let posted: HashMap<String, i64> = loaded["posted"]
            .as_array()
            .map(|v| {
                v.iter()
                    .filter_map(|p| Some((p[0].as_str()?.to_owned(), p[1].as_i64()?)))
                    .collect()
            })
            .unwrap_or_default();
        let mut latencies = Vec::new();
        let mut last_received = 0i64;
        let mut seen = HashSet::new();
        for r in report["received"].as_array().into_iter().flatten() {
            let (Some(order), Some(at)) = (r[0].as_str(), r[1].as_i64()) else {
                continue;
            };
            last_received = last_received.max(at);
            if seen.insert(order)
                && let Some(p) = posted.get(order)
            {
                latencies.push((at - p) as f64);
            }
        }
        let delivered = seen.len();
        out["e2e_latency_ms"] = summary(latencies);
        out["orders_delivered"] = json!(delivered);
        out["last_received_after_burst_s"] = json!((last_received - burst_end) as f64 / 1000.0);
        let samples = samples.lock().expect("samples").clone();
        let max = |f: fn(&Sample) -> f64| samples.iter().map(f).fold(0.0, f64::max);
        out["backlog"] = json!({
            "max_outbox_pending": max(|s| s.outbox as f64),
            "max_inbox_pending": max(|s| s.inbox as f64),
            "max_total": max(|s| (s.inbox + s.outbox) as f64),
            "max_lag_s": max(|s| s.lag_s),
            "max_depth_query_ms": max(|s| s.query_ms),
            // [seconds since start, inbox pending, outbox pending, sent, oldest pending age s,
            //  outbox_depth query ms]
            "samples": samples.iter().map(|s| json!([
                (s.t_s * 10.0).round() / 10.0, s.inbox, s.outbox, s.sent,
                (s.lag_s * 10.0).round() / 10.0, (s.query_ms * 10.0).round() / 10.0
            ])).collect::<Vec<_>>(),
        });
        eprintln!(
            "{:?}: posted {} ({} 2xx, statuses {}) over {:.1} s; webhook latency ms {}",
            a.mode,
            loaded["requests"],
            ok,
            loaded["statuses"],
            loaded["elapsed_s"].as_f64().unwrap_or(0.0),
            loaded["latency_ms"]
        );
        eprintln!(
            "  delivered: {delivered} orders; Omnisend holds {} events, {} distinct eventIDs (duplicates {}); by name {}",
            report["events_total"],
            report["events_distinct"],
            report["events_total"].as_i64().unwrap_or(0)
                - report["events_distinct"].as_i64().unwrap_or(0),
            report["events_by_name"]
        );
        eprintln!(
            "  webhook → Omnisend receivedAt, ms: {}",
            out["e2e_latency_ms"]
        );
        eprintln!(
            "  drained {} s after the last post (last event received {:.1} s after it); max backlog: outbox {} / inbox {} / total {}, max lag {:.1} s; outbox_depth query max {:.1} ms",
            out["drained_after_burst_s"],
            (last_received - burst_end) as f64 / 1000.0,
            out["backlog"]["max_outbox_pending"],
            out["backlog"]["max_inbox_pending"],
            out["backlog"]["max_total"],
            out["backlog"]["max_lag_s"].as_f64().unwrap_or(0.0),
            out["backlog"]["max_depth_query_ms"].as_f64().unwrap_or(0.0),
        );
    }
    eprintln!(
        "  Omnisend requests: {} {}; statuses {}; 429s {}; busiest 60 s window {}; per minute {}; events per batch {}",
        report["requests"],
        report["kinds"],
        report["statuses"],
        report["throttled_429"],
        report["max_in_60s"],
        report["per_minute"],
        report["events_per_batch"]
    );
    eprintln!(
        "  engine CPU {cpu_total:.1} s (load phase {load_cpu:.1} s), peak RSS {:.1} MiB",
        peak_rss_kib() as f64 / 1024.0
    );
    let mut emulator = report.clone();
    if let Some(o) = emulator.as_object_mut() {
        o.remove("received");
    }
    out["emulator"] = emulator;
    out["engine_cpu_s"] = json!(cpu_total);
    out["engine_peak_rss_kib"] = json!(peak_rss_kib());
    println!("RESULT {out}");
    Ok(())
}
