//! Telemetry as a contract (issue 5): every metric of `docs/metrics.md` is emitted here, through
//! typed functions, so names and label sets live in one place. Counters end in `_total`;
//! labels are bounded sets (never ids, emails or phone numbers).
//!
//! Two kinds of metric:
//! * **Counters and histograms** of what this instance did (webhooks, processing, deliveries,
//!   scheduled runs; the Omnisend request histogram and 429s are recorded by the `omnisend`
//!   crate under the same `ct_omnisend_` namespace).
//! * **Gauges of shared state**, read from the database at scrape time ([`render`]): queue
//!   depths and ages, last successful sync and cursor lag per entity and store, open rejected
//!   records; plus each brand's rate controller. Every instance reports the same database
//!   values, so dashboards take `max` over instances.
//!
//! The recorder is `metrics-exporter-prometheus`, installed once per process ([`install`]) and
//! rendered by our own `/metrics` route (no extra listener).

use std::collections::{BTreeSet, HashMap};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use omnisend::OmnisendClient;
use time::OffsetDateTime;

use crate::schedule::{JobKind, RunMode};
use crate::store::StateStore;

/// Histogram buckets (seconds) for request and run durations.
pub const DURATION_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
/// The entity kinds of rejected records, reported (at 0) even before the first one.
const KNOWN_ENTITIES: [&str; 6] = [
    crate::sync::catalog::PRODUCTS,
    crate::sync::catalog::CATEGORIES,
    crate::sync::contacts::CUSTOMERS,
    crate::sync::contacts::CONTACTS,
    crate::events::deliver::EVENT,
    crate::events::process::NOTIFICATION,
];
/// Entities seen with open rejected records (a bounded set: the entity kinds).
static REJECTED_ENTITIES: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

/// Installs the process-wide Prometheus recorder (once; later calls return the same handle).
/// If another recorder was installed first, metrics are recorded there and the handle renders
/// an empty registry.
pub fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), DURATION_BUCKETS)
                .expect("static buckets are not empty");
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was already installed; /metrics may be empty");
            }
            describe();
            zero_counters();
            handle
        })
        .clone()
}

/// Registers every counter with each label set from its fixed value set at 0, so every series
/// exists from the start (`rate()` and `increase()` then see the first event).
fn zero_counters() {
    for source in ["commercetools", "storefront"] {
        counter!("ct_omnisend_webhooks_received_total", "source" => source).increment(0);
        for reason in REJECT_REASONS {
            counter!("ct_omnisend_webhooks_rejected_total", "source" => source, "reason" => reason)
                .increment(0);
        }
    }
    for outcome in ["applied", "stale", "rejected", "retried"] {
        counter!("ct_omnisend_notifications_processed_total", "outcome" => outcome).increment(0);
    }
    counter!("ct_omnisend_events_queued_total").increment(0);
    counter!("ct_omnisend_events_duplicate_total").increment(0);
    for outcome in ["sent", "submitted", "retried", "rejected", "withdrawn"] {
        for mode in ["single", "batch"] {
            counter!("ct_omnisend_deliveries_total", "outcome" => outcome, "mode" => mode)
                .increment(0);
        }
    }
    for endpoint in [
        "contacts",
        "products",
        "categories",
        "events",
        "batches",
        "other",
    ] {
        counter!("ct_omnisend_omnisend_throttled_total", "endpoint" => endpoint).increment(0);
    }
    for job in [JobKind::Catalog, JobKind::Contacts] {
        for mode in [RunMode::Delta, RunMode::Full] {
            for outcome in ["ok", "failed", "lost"] {
                counter!(
                    "ct_omnisend_scheduled_runs_total",
                    "job" => job.as_str(),
                    "mode" => mode.as_str(),
                    "outcome" => outcome,
                )
                .increment(0);
            }
        }
    }
}

/// The values of `reason` in `ct_omnisend_webhooks_rejected_total`.
const REJECT_REASONS: [&str; 5] = [
    "unauthorized",
    "malformed",
    "too_large",
    "unprocessable",
    "unavailable",
];

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_gauge!(
        "ct_omnisend_build_info",
        "Version of the running binary (value 1)."
    );
    describe_counter!(
        "ct_omnisend_webhooks_received_total",
        "Webhook and storefront requests received."
    );
    describe_counter!(
        "ct_omnisend_webhooks_rejected_total",
        "Webhook and storefront requests refused or stored as rejected, by reason."
    );
    describe_counter!(
        "ct_omnisend_notifications_processed_total",
        "Inbox notifications processed, by outcome."
    );
    describe_counter!(
        "ct_omnisend_events_queued_total",
        "Omnisend events put into the outbox."
    );
    describe_counter!(
        "ct_omnisend_events_duplicate_total",
        "Events not queued because the ledger already held them."
    );
    describe_counter!(
        "ct_omnisend_deliveries_total",
        "Outbox events by delivery outcome and request mode."
    );
    describe_histogram!(
        "ct_omnisend_omnisend_request_duration_seconds",
        "Omnisend HTTP request duration by endpoint, method and status class."
    );
    describe_counter!(
        "ct_omnisend_omnisend_throttled_total",
        "Omnisend answers 429, by endpoint."
    );
    describe_gauge!(
        "ct_omnisend_rate_current_per_minute",
        "Effective request rate of each brand's rate controller."
    );
    describe_gauge!(
        "ct_omnisend_rate_limit_per_minute",
        "Configured requests_per_minute ceiling of each brand."
    );
    describe_counter!(
        "ct_omnisend_scheduled_runs_total",
        "Scheduled job runs by job kind, mode and outcome."
    );
    describe_histogram!(
        "ct_omnisend_scheduled_run_duration_seconds",
        "Duration of scheduled job runs."
    );
    describe_gauge!(
        "ct_omnisend_inbox_depth",
        "Notifications waiting to be processed."
    );
    describe_gauge!(
        "ct_omnisend_inbox_oldest_age_seconds",
        "Age of the oldest unprocessed notification."
    );
    describe_gauge!(
        "ct_omnisend_outbox_depth",
        "Outbox events not yet sent, by status."
    );
    describe_gauge!(
        "ct_omnisend_outbox_oldest_age_seconds",
        "Age of the oldest event not yet sent."
    );
    describe_gauge!(
        "ct_omnisend_rejected_records_open",
        "Open rejected records, by entity."
    );
    describe_gauge!(
        "ct_omnisend_sync_last_success_timestamp_seconds",
        "End of the last successful sync run, by entity and store."
    );
    describe_gauge!(
        "ct_omnisend_sync_cursor_lag_seconds",
        "Time since the delta cursor last moved, by entity and store."
    );
}

/// A webhook (`source` = `commercetools`) or storefront (`storefront`) request arrived.
pub fn webhook_received(source: &'static str) {
    counter!("ct_omnisend_webhooks_received_total", "source" => source).increment(1);
}

/// Counts a webhook or storefront answer: every request as received, and refusals by the
/// reason its status stands for (401/403 `unauthorized`, 413 `too_large`, other 4xx
/// `malformed`, 5xx `unavailable`). Used as an axum `map_response` layer on those routes, so
/// refusals that never reach the handler (the body limit) are counted too.
pub fn count_ingest(source: &'static str, status: axum::http::StatusCode) {
    webhook_received(source);
    let reason = match status.as_u16() {
        401 | 403 => "unauthorized",
        413 => "too_large",
        400..=499 => "malformed",
        500..=599 => "unavailable",
        _ => return,
    };
    webhook_rejected(source, reason);
}

/// A webhook or storefront request was refused or stored as rejected. `reason` is one of a
/// fixed set: `unauthorized`, `malformed`, `too_large`, `unprocessable`, `unavailable`.
pub fn webhook_rejected(source: &'static str, reason: &'static str) {
    counter!("ct_omnisend_webhooks_rejected_total", "source" => source, "reason" => reason)
        .increment(1);
}

/// Inbox notifications processed: `outcome` is `applied`, `stale`, `retried` or `rejected`.
pub fn notifications_processed(outcome: &'static str, n: u64) {
    if n > 0 {
        counter!("ct_omnisend_notifications_processed_total", "outcome" => outcome).increment(n);
    }
}

/// Events put into the outbox by processing, and events processing found already in the
/// ledger (a redelivery, a replay).
pub fn events_queued(queued: u64, duplicates: u64) {
    if queued > 0 {
        counter!("ct_omnisend_events_queued_total").increment(queued);
    }
    if duplicates > 0 {
        counter!("ct_omnisend_events_duplicate_total").increment(duplicates);
    }
}

/// Outbox events reached `outcome` (`sent`, `submitted` — in a batch whose item results are
/// not read yet —, `retried`, `rejected`, `withdrawn`) through
/// `mode` (`single` or `batch`).
pub fn deliveries(outcome: &'static str, mode: &'static str, n: u64) {
    if n > 0 {
        counter!("ct_omnisend_deliveries_total", "outcome" => outcome, "mode" => mode).increment(n);
    }
}

/// A scheduled run ended with `outcome` (`ok`, `failed`, `lost`).
pub fn job_finished(kind: JobKind, mode: RunMode, outcome: &'static str, elapsed: Duration) {
    counter!(
        "ct_omnisend_scheduled_runs_total",
        "job" => kind.as_str(),
        "mode" => mode.as_str(),
        "outcome" => outcome,
    )
    .increment(1);
    histogram!(
        "ct_omnisend_scheduled_run_duration_seconds",
        "job" => kind.as_str(),
        "mode" => mode.as_str(),
    )
    .record(elapsed.as_secs_f64());
}

fn age_secs(now: OffsetDateTime, at: Option<OffsetDateTime>) -> f64 {
    at.map_or(0.0, |at| (now - at).as_seconds_f64().max(0.0))
}

/// Reads the shared gauges from `store` and the brands' rate controllers (`clients`, keyed by
/// brand id), then renders every metric in the Prometheus text format. When the database does
/// not answer, the counters are still rendered (with the gauges as last read) and the error is
/// logged: the counters matter most exactly then.
pub async fn render(
    handle: &PrometheusHandle,
    store: &StateStore,
    clients: &HashMap<String, OmnisendClient>,
) -> String {
    gauge!("ct_omnisend_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    for (brand, client) in clients {
        let rate = client.rate();
        gauge!("ct_omnisend_rate_current_per_minute", "brand" => brand.clone())
            .set(rate.current_rate_per_minute());
        gauge!("ct_omnisend_rate_limit_per_minute", "brand" => brand.clone())
            .set(f64::from(rate.requests_per_minute()));
    }
    if let Err(e) = shared_gauges(store).await {
        tracing::warn!(error = %e, "metrics: cannot read the state store; gauges are stale");
    }
    handle.run_upkeep();
    handle.render()
}

async fn shared_gauges(store: &StateStore) -> Result<(), crate::store::StoreError> {
    let now = OffsetDateTime::now_utc();

    let q = store.queue_gauges().await?;
    gauge!("ct_omnisend_inbox_depth").set(q.inbox_pending as f64);
    gauge!("ct_omnisend_inbox_oldest_age_seconds").set(age_secs(now, q.inbox_oldest));
    gauge!("ct_omnisend_outbox_depth", "status" => "pending").set(q.outbox_pending as f64);
    gauge!("ct_omnisend_outbox_depth", "status" => "submitted").set(q.outbox_submitted as f64);
    gauge!("ct_omnisend_outbox_oldest_age_seconds").set(age_secs(now, q.outbox_oldest));

    // An entity whose last open record was resolved must read 0, not its old value.
    let open = store.count_rejected_open().await?;
    {
        let mut seen = REJECTED_ENTITIES.lock().unwrap_or_else(|e| e.into_inner());
        seen.extend(KNOWN_ENTITIES.iter().map(|e| (*e).to_owned()));
        seen.extend(open.iter().map(|(e, _)| e.clone()));
        for entity in seen.iter() {
            let n = open
                .iter()
                .find(|(e, _)| e == entity)
                .map_or(0, |(_, n)| *n);
            gauge!("ct_omnisend_rejected_records_open", "entity" => entity.clone()).set(n as f64);
        }
    }
    for (entity, route, at) in store.last_successful_runs().await? {
        gauge!(
            "ct_omnisend_sync_last_success_timestamp_seconds",
            "entity" => entity,
            "store" => route,
        )
        .set(at.unix_timestamp() as f64);
    }
    for c in store.cursors().await? {
        gauge!(
            "ct_omnisend_sync_cursor_lag_seconds",
            "entity" => c.entity,
            "store" => c.route,
        )
        .set(age_secs(now, Some(c.updated_at)));
    }
    Ok(())
}
