//! Outbox delivery: claims due events under a lease, sends them through the brand's Omnisend
//! client (and so its rate controller), and records the outcome.
//!
//! * **Single requests** (`POST /events`) while the due backlog is small: the lowest latency.
//! * **`/batches`** (≤100 events per request) once more than `events.batch_threshold` are due:
//!   one request carries a hundred events, so a rush drains at up to 100× the single-request
//!   rate instead of turning into hours of lag. A batch's 2xx makes its events `submitted`
//!   (they still hold back later events of their order); once the batch has finished, its
//!   per-item results are read back from the database's list of submitted batches (so a
//!   restart resumes it): an item Omnisend took becomes the ledger, one it refused a rejected
//!   record, one it could not take (408/429/5xx, or never processed in a stopped batch) is
//!   queued again.
//! * **Outcomes** ([`classify`]): 2xx → sent (the ledger); 401/403 → retried (a key problem
//!   the operator fixes; the events must not be thrown away meanwhile); any other 4xx →
//!   rejected record with Omnisend's field errors; 408/429/5xx/transport → retried with
//!   exponential backoff and full jitter ([`backoff`]) until `events.max_age_hours`, then a
//!   rejected record with the last error.
//!
//! Omnisend does not deduplicate real-time events. Two windows remain that no design without
//! an idempotency key on Omnisend's side can close: a crash between Omnisend's 2xx and the
//! ledger write of that one event (each outcome is written as soon as it is known), and a
//! request whose answer is lost (timeout, reset) after Omnisend took it, which is retried.
//! Everything else — redeliveries, replays, restarts, a second worker — finds the ledger row
//! or the lease: a lease is renewed right before each send, and a send (one attempt, at most
//! [`SEND_TIMEOUT`] plus the rate controller's wait) is far shorter than the lease.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use omnisend::models::{BatchEndpoint, BatchMethod, BatchRequest};
use omnisend::{OmnisendClient, OmnisendError};
use rand::Rng;
use time::OffsetDateTime;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::config::EventsSettings;
use crate::store::{Lane, NewRejected, OutboxEvent, StateStore, StoreError};
use crate::telemetry;

/// Entity name of events in rejected records.
pub const EVENT: &str = "event";

/// Most events in one `/batches` request.
const BATCH_ITEMS: usize = 100;

/// What to do with a send's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Omnisend took it.
    Sent,
    /// Try again later (the reason is kept as `last_error`).
    Retry(String),
    /// Omnisend refused it for good.
    Reject {
        /// The first field Omnisend named, if any.
        field: Option<String>,
        /// Why.
        reason: String,
    },
}

/// Classifies the result of sending one event (see the module docs).
pub fn classify(result: &Result<(), OmnisendError>) -> Verdict {
    match result {
        Ok(()) => Verdict::Sent,
        Err(e @ OmnisendError::Rejected { status, .. }) => match status {
            401 | 403 | 408 | 429 => Verdict::Retry(e.to_string()),
            s if *s >= 500 => Verdict::Retry(e.to_string()),
            _ => Verdict::Reject {
                field: e.field_errors().first().and_then(|f| f.field.clone()),
                reason: e.to_string(),
            },
        },
        Err(e @ OmnisendError::Invalid(_)) => Verdict::Reject {
            field: None,
            reason: e.to_string(),
        },
        Err(e) => Verdict::Retry(e.to_string()),
    }
}

/// Classifies one batch item by its response code (`None` = no failure reported).
pub fn classify_item(code: Option<u16>, detail: &str) -> Verdict {
    match code {
        None => Verdict::Sent,
        Some(c) if c < 400 => Verdict::Sent,
        Some(c @ (401 | 403 | 408 | 429)) => Verdict::Retry(format!("batch item {c}: {detail}")),
        Some(c) if c >= 500 => Verdict::Retry(format!("batch item {c}: {detail}")),
        Some(c) => Verdict::Reject {
            field: None,
            reason: format!("Omnisend refused the event in a batch with {c}: {detail}"),
        },
    }
}

/// The delay before attempt `attempts + 1`: uniform in `[0, min(max, base · 2^(attempts-1))]`
/// ("full jitter"), so retries of many events spread out instead of arriving together.
pub fn backoff(attempts: i64, base: Duration, max: Duration, rng: &mut impl Rng) -> Duration {
    let exp = u32::try_from(attempts.saturating_sub(1).clamp(0, 30)).unwrap_or(30);
    let ceiling = base.saturating_mul(1u32 << exp).min(max);
    let ms = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
    Duration::from_millis(rng.random_range(0..=ms))
}

/// Counts of one delivery round.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RoundStats {
    /// Rows claimed.
    pub claimed: usize,
    /// Sent (single or batch).
    pub sent: usize,
    /// Given back for a retry.
    pub retried: usize,
    /// Rejected.
    pub rejected: usize,
    /// `/batches` requests made.
    pub batches: usize,
}

impl RoundStats {
    /// Counts this round's outcomes in the delivery metrics.
    fn record(&self, mode: &'static str) {
        telemetry::deliveries("sent", mode, self.sent as u64);
        telemetry::deliveries("retried", mode, self.retried as u64);
        telemetry::deliveries("rejected", mode, self.rejected as u64);
    }
}

impl std::ops::AddAssign for RoundStats {
    fn add_assign(&mut self, o: Self) {
        self.claimed += o.claimed;
        self.sent += o.sent;
        self.retried += o.retried;
        self.rejected += o.rejected;
        self.batches += o.batches;
    }
}

/// Longest time one event request may take (one attempt; the outbox retries).
pub const SEND_TIMEOUT: Duration = Duration::from_secs(15);

/// Delivers the outbox of one instance.
#[derive(Clone)]
pub struct Delivery {
    store: StateStore,
    clients: Arc<HashMap<String, OmnisendClient>>,
    settings: EventsSettings,
    owner: String,
    wake: Arc<Notify>,
    lane: Option<Lane>,
    last_reconcile: Arc<std::sync::Mutex<Option<std::time::Instant>>>,
    /// Set at shutdown: requests that get their permit from now on are withdrawn, not sent.
    stopping: Arc<std::sync::atomic::AtomicBool>,
}

/// At shutdown, how long a delivery round may go on finishing its requests in flight before it
/// is dropped (what still waits for a rate permit then was never sent; its rows come back when
/// their leases are released).
pub const STOP_DRAIN: Duration = Duration::from_secs(3);

impl Delivery {
    /// `clients`: one per brand id (the API key variable). Delivery sends through a copy of
    /// each that shares its rate controller (so the brand's quota is shared with every other
    /// user of that client in this process) but makes one attempt per request with a
    /// [`SEND_TIMEOUT`] (at most half the lease): the outbox retries, and a send can never
    /// outlast the lease renewed right before it (see [`Delivery::lease_guard`]). `owner`
    /// names this worker in leases (unique per process).
    pub fn new(
        store: StateStore,
        clients: HashMap<String, OmnisendClient>,
        settings: EventsSettings,
        owner: String,
        wake: Arc<Notify>,
    ) -> Self {
        let clients = clients
            .into_iter()
            .filter_map(|(brand, c)| {
                let config = omnisend::OmnisendConfig {
                    max_attempts: 1,
                    // Real-time events overtake the syncs sharing the brand's controller.
                    priority: true,
                    // A request never outlives the lease renewed right before it.
                    timeout: c.config().timeout.min(SEND_TIMEOUT).min(settings.lease / 2),
                    ..c.config().clone()
                };
                match OmnisendClient::new(config, c.rate().clone()) {
                    Ok(client) => Some((brand, client)),
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot build the event client of a brand");
                        None
                    }
                }
            })
            .collect();
        Self {
            store,
            clients: Arc::new(clients),
            settings,
            owner,
            wake,
            lane: None,
            last_reconcile: Arc::default(),
            stopping: Arc::default(),
        }
    }

    /// Only this lane (e.g. `sync orders --historical` delivers its backfill and leaves
    /// real-time events to `serve`).
    pub fn only_lane(mut self, lane: Lane) -> Self {
        self.lane = Some(lane);
        self
    }

    /// Delivers until `stop` is cancelled, then releases the leases it holds. Wakes on
    /// [`Notify`] (new events) or every `idle_poll` (retries falling due, batch results, other
    /// instances).
    pub async fn run(self, stop: CancellationToken, idle_poll: Duration) {
        loop {
            if stop.is_cancelled() {
                break;
            }
            let round = self.round(OffsetDateTime::now_utc());
            tokio::pin!(round);
            let result = tokio::select! {
                r = &mut round => r,
                () = stop.cancelled() => {
                    // Requests in flight finish; nothing new leaves (see `lease_guard`); what
                    // still waits for a rate permit (the brand's budget may be used up for
                    // a minute) is dropped unsent.
                    self.stopping.store(true, std::sync::atomic::Ordering::SeqCst);
                    match tokio::time::timeout(STOP_DRAIN, &mut round).await {
                        Ok(r) => r,
                        Err(_) => {
                            tracing::info!("delivery stopped while waiting for rate permits");
                            break;
                        }
                    }
                }
            };
            let claimed = match result {
                Ok(stats) => stats.claimed,
                Err(e) => {
                    tracing::warn!(error = %e, "outbox delivery round failed; retrying");
                    0
                }
            };
            if claimed > 0 {
                continue;
            }
            tokio::select! {
                () = stop.cancelled() => break,
                () = self.wake.notified() => {}
                () = tokio::time::sleep(idle_poll) => {}
            }
        }
        match self.store.release_leases(&self.owner).await {
            Ok(n) if n > 0 => tracing::info!(released = n, "outbox leases released"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "could not release outbox leases"),
        }
    }

    /// One round: read finished batches' item results, then claim what is due and send it
    /// (batches when the backlog is large).
    pub async fn round(&self, now: OffsetDateTime) -> Result<RoundStats, StoreError> {
        let mut stats = self.reconcile_if_due().await?;
        let threshold = self.settings.batch_threshold;
        let due = self
            .store
            .count_due(now, i64::try_from(threshold).unwrap_or(i64::MAX - 1) + 1)
            .await?;
        let backlog = usize::try_from(due).unwrap_or(0) > threshold;
        let limit = if backlog {
            (BATCH_ITEMS * self.clients.len().max(1)) as i64
        } else {
            (self.settings.concurrency * 4) as i64
        };
        let claimed = self
            .store
            .claim_events_in(self.lane, &self.owner, now, self.settings.lease, limit)
            .await?;
        stats.claimed = claimed.len();
        if claimed.is_empty() {
            return Ok(stats);
        }
        let mut by_brand: HashMap<String, Vec<OutboxEvent>> = HashMap::new();
        for e in claimed {
            by_brand.entry(e.brand.clone()).or_default().push(e);
        }
        for (brand, events) in by_brand {
            let Some(client) = self.clients.get(&brand).cloned() else {
                for e in events {
                    let reason = format!("no Omnisend client for brand {brand}");
                    stats.retried += 1;
                    self.retry(&e, &reason).await?;
                }
                continue;
            };
            if backlog && events.len() > 1 {
                for chunk in events.chunks(BATCH_ITEMS) {
                    stats += self.send_batch(&client, chunk).await?;
                }
            } else {
                stats += self.send_singles(&client, events).await?;
            }
        }
        Ok(stats)
    }

    /// Sends events one request each, `concurrency` at a time. Each outcome is recorded as
    /// soon as it is known (a crash loses at most the sends in flight), and the lease is
    /// renewed right before each send so no other worker can hold the row meanwhile.
    async fn send_singles(
        &self,
        client: &OmnisendClient,
        events: Vec<OutboxEvent>,
    ) -> Result<RoundStats, StoreError> {
        let results: Vec<Result<RoundStats, StoreError>> = futures::stream::iter(events)
            .map(|e| async move {
                let mut stats = RoundStats::default();
                let guard = self.lease_guard(vec![e.id]);
                let result = client.post_event_guarded(&e.body, &*guard).await;
                if let Err(OmnisendError::Withdrawn { .. }) = result {
                    tracing::info!(event_id = %e.event_id, "lease lost before sending; another worker has the event");
                    telemetry::deliveries("withdrawn", "single", 1);
                    return Ok(stats);
                }
                match classify(&result) {
                    Verdict::Sent => {
                        let n = self
                            .store
                            .mark_events_sent(&[e.id], &self.owner, OffsetDateTime::now_utc())
                            .await?;
                        if n == 0 {
                            tracing::warn!(event_id = %e.event_id, "event sent after its lease was lost");
                        }
                        stats.sent = 1;
                    }
                    Verdict::Retry(reason) => {
                        stats.retried = 1;
                        self.retry(&e, &reason).await?;
                    }
                    Verdict::Reject { field, reason } => {
                        stats.rejected = 1;
                        self.reject(&e, field, &reason).await?;
                    }
                }
                stats.record("single");
                Ok(stats)
            })
            .buffer_unordered(self.settings.concurrency)
            .collect()
            .await;
        let mut stats = RoundStats::default();
        for r in results {
            stats += r?;
        }
        Ok(stats)
    }

    /// Sends up to 100 events in one `/batches` request. Omnisend's 2xx makes them
    /// `submitted`: they hold back their keys until [`Delivery::reconcile`] has read the
    /// batch's item results and recorded each item as sent, retried or rejected.
    async fn send_batch(
        &self,
        client: &OmnisendClient,
        events: &[OutboxEvent],
    ) -> Result<RoundStats, StoreError> {
        let mut stats = RoundStats {
            batches: 1,
            ..RoundStats::default()
        };
        let held = events.to_vec();
        let request = BatchRequest {
            endpoint: BatchEndpoint::Events,
            method: BatchMethod::Post,
            items: held.iter().map(|e| e.body.clone()).collect(),
            origin: None,
        };
        let guard = self.lease_guard(held.iter().map(|e| e.id).collect());
        match client.submit_batch_guarded(&request, &*guard).await {
            Err(OmnisendError::Withdrawn { .. }) => {
                tracing::info!("lease lost before sending a batch; another worker has its events");
                telemetry::deliveries("withdrawn", "batch", held.len() as u64);
                Ok(stats)
            }
            Ok(created) => {
                let ids: Vec<i64> = held.iter().map(|e| e.id).collect();
                let n = self
                    .store
                    .mark_events_submitted(&ids, &self.owner, &created.batch_id)
                    .await?;
                stats.sent = usize::try_from(n).unwrap_or(0);
                telemetry::deliveries("submitted", "batch", n);
                Ok(stats)
            }
            // A refused batch is retried item by item, so one bad event cannot hold back a
            // hundred good ones; a transient failure retries the whole set later.
            Err(e) => match classify(&Err(e)) {
                Verdict::Reject { .. } => {
                    let mut s = self.send_singles(client, held).await?;
                    s.batches = 1;
                    Ok(s)
                }
                Verdict::Retry(reason) => {
                    for e in &held {
                        stats.retried += 1;
                        self.retry(e, &reason).await?;
                    }
                    telemetry::deliveries("retried", "batch", held.len() as u64);
                    Ok(stats)
                }
                Verdict::Sent => Ok(stats),
            },
        }
    }

    /// The check that runs once the rate permit is granted, right before a request leaves:
    /// renews this worker's lease on every row of the request, and withdraws the request if
    /// any lease was lost (another worker took the row while this one waited for a permit).
    fn lease_guard(&self, ids: Vec<i64>) -> Box<omnisend::SendGuard> {
        let store = self.store.clone();
        let owner = self.owner.clone();
        let lease = self.settings.lease;
        let stopping = self.stopping.clone();
        Box::new(move || {
            let store = store.clone();
            let owner = owner.clone();
            let ids = ids.clone();
            let stopping = stopping.clone();
            Box::pin(async move {
                if stopping.load(std::sync::atomic::Ordering::SeqCst) {
                    return false;
                }
                let until = OffsetDateTime::now_utc() + lease;
                // One statement for the whole request: the permit is already granted, so the
                // request must leave promptly.
                match store.extend_leases(&ids, &owner, until).await {
                    Ok(n) => n == ids.len() as u64,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot renew outbox leases; not sending");
                        false
                    }
                }
            })
        })
    }

    /// [`Delivery::reconcile`] at most once per batch poll interval.
    async fn reconcile_if_due(&self) -> Result<RoundStats, StoreError> {
        let interval = self
            .clients
            .values()
            .next()
            .map_or(Duration::from_secs(2), |c| c.config().batch_poll_interval);
        {
            let mut last = self
                .last_reconcile
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if last.is_some_and(|t| t.elapsed() < interval) {
                return Ok(RoundStats::default());
            }
            *last = Some(std::time::Instant::now());
        }
        self.reconcile().await
    }

    /// Reads the item results of submitted batches that have finished (from the database, so
    /// a restart picks up where a crash left): each item is recorded as sent, queued again
    /// (408/429/5xx, or never processed in a stopped batch) or rejected (other 4xx). Returns
    /// the counts; `claimed` stays 0.
    pub async fn reconcile(&self) -> Result<RoundStats, StoreError> {
        let mut stats = RoundStats::default();
        for (brand, batch_id) in self.store.submitted_batches(20).await? {
            let Some(client) = self.clients.get(&brand) else {
                continue;
            };
            let batch = match client.get_batch(&batch_id).await {
                Ok(b) if b.is_terminal() => b,
                Ok(_) => continue,
                Err(e) => {
                    tracing::warn!(batch = %batch_id, error = %e, "cannot read an event batch; will retry");
                    continue;
                }
            };
            // Item details only when something did not go through.
            let stopped = batch.status == "stopped";
            let detailed = if batch.errors_count > 0 || stopped {
                match client.batch_items(&batch_id).await {
                    Ok(b) => Some(b),
                    Err(e) => {
                        tracing::warn!(batch = %batch_id, error = %e, "cannot read event batch items; will retry");
                        continue;
                    }
                }
            } else {
                None
            };
            let event_id = |item: &omnisend::models::BatchItem| {
                item.request
                    .as_ref()
                    .and_then(|r| r.get("eventID"))
                    .and_then(|v| v.as_str())
                    .map(str::to_owned)
            };
            let mut failed: HashMap<String, (Option<u16>, String)> = HashMap::new();
            let mut succeeded: std::collections::HashSet<String> = std::collections::HashSet::new();
            if let Some(d) = &detailed {
                for item in d.errors.iter().chain(
                    d.responses
                        .iter()
                        .filter(|i| omnisend::batches::is_failed_item(i)),
                ) {
                    if let Some(id) = event_id(item) {
                        let detail = item
                            .response
                            .as_ref()
                            .map(|r| r.to_string())
                            .unwrap_or_default();
                        // A failure status without a code is a failure all the same.
                        let code = item.response_code.or(Some(500));
                        failed.insert(id, (code, detail));
                    }
                }
                for item in d
                    .responses
                    .iter()
                    .filter(|i| !omnisend::batches::is_failed_item(i))
                {
                    if let Some(id) = event_id(item) {
                        succeeded.insert(id);
                    }
                }
            }
            let mut sent = Vec::new();
            for e in self.store.submitted_events(&batch_id).await? {
                let verdict = match failed.get(&e.event_id) {
                    Some((code, detail)) => classify_item(*code, detail),
                    None if stopped && !succeeded.contains(&e.event_id) => Verdict::Retry(format!(
                        "batch {batch_id} stopped before processing the event"
                    )),
                    None => Verdict::Sent,
                };
                match verdict {
                    Verdict::Sent => sent.push(e.id),
                    Verdict::Retry(reason) => {
                        stats.retried += 1;
                        telemetry::deliveries("retried", "batch", 1);
                        let due = OffsetDateTime::now_utc()
                            + backoff(
                                e.attempts,
                                self.settings.retry_base,
                                self.settings.retry_max,
                                &mut rand::rng(),
                            );
                        self.store.reopen_event(e.id, due, &reason).await?;
                    }
                    Verdict::Reject { field, reason } => {
                        stats.rejected += 1;
                        telemetry::deliveries("rejected", "batch", 1);
                        tracing::warn!(event = %e.event_name, event_id = %e.event_id, "event rejected in a batch");
                        self.store
                            .reject_submitted_event(e.id, &reason, &rejection(&e, field, &reason))
                            .await?;
                    }
                }
            }
            // Counted by rows changed: another instance reconciling the same batch at the
            // same time finds them settled and counts nothing.
            let settled = self
                .store
                .settle_submitted_sent(&sent, OffsetDateTime::now_utc())
                .await?;
            telemetry::deliveries("sent", "batch", settled);
        }
        Ok(stats)
    }

    async fn retry(&self, e: &OutboxEvent, reason: &str) -> Result<(), StoreError> {
        let now = OffsetDateTime::now_utc();
        let age = now - e.created_at;
        if age >= self.settings.max_age {
            let reason = format!(
                "gave up after {} attempts over {}h; last error: {reason}",
                e.attempts,
                age.whole_hours()
            );
            return self.reject(e, None, &reason).await;
        }
        let delay = backoff(
            e.attempts,
            self.settings.retry_base,
            self.settings.retry_max,
            &mut rand::rng(),
        );
        tracing::debug!(event = %e.event_name, attempts = e.attempts, delay_ms = delay.as_millis() as u64, "event send failed; retrying later");
        self.store
            .retry_event(e.id, &self.owner, now + delay, reason)
            .await
    }

    async fn reject(
        &self,
        e: &OutboxEvent,
        field: Option<String>,
        reason: &str,
    ) -> Result<(), StoreError> {
        tracing::warn!(event = %e.event_name, event_id = %e.event_id, "event rejected");
        self.store
            .reject_event(e.id, &self.owner, reason, &rejection(e, field, reason))
            .await
    }
}

/// `rejected replay` for events: each rejected event is queued again (due now, same
/// `eventID`, so the ledger still guarantees once-only) and its rejected record resolved;
/// `serve` delivers it. Records of other entities are left alone.
pub async fn replay(
    store: &StateStore,
    rejected: &[crate::store::Rejected],
) -> Result<Vec<crate::sync::catalog::ReplayOutcome>, StoreError> {
    use crate::sync::catalog::ReplayOutcome;
    let now = OffsetDateTime::now_utc();
    let mut out = Vec::new();
    for r in rejected.iter().filter(|r| r.entity == EVENT) {
        let requeued = store.requeue_event(&r.route, &r.ct_id, now).await?;
        if requeued {
            store
                .resolve_rejected(&r.route, &r.entity, &r.ct_id, now)
                .await?;
            out.push(ReplayOutcome::from(
                r,
                true,
                "queued again; `serve` delivers it".into(),
            ));
        } else {
            out.push(ReplayOutcome::from(
                r,
                false,
                "no rejected outbox row for this event".into(),
            ));
        }
    }
    Ok(out)
}

/// The rejected record of an event: route = brand, id = `eventID`, payload = the body.
fn rejection(e: &OutboxEvent, field: Option<String>, reason: &str) -> NewRejected {
    NewRejected {
        route: e.brand.clone(),
        entity: EVENT.into(),
        ct_id: e.event_id.clone(),
        field,
        reason: format!("{} ({}): {reason}", e.event_name, e.ordering_key),
        payload: Some(e.body.clone()),
        at: OffsetDateTime::now_utc(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn backoff_stays_within_the_doubling_ceiling_and_the_maximum() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let base = Duration::from_secs(1);
        let max = Duration::from_secs(300);
        for attempts in 1..40 {
            let ceiling = (base * 2u32.pow(u32::try_from(attempts - 1).unwrap().min(20))).min(max);
            for _ in 0..50 {
                assert!(backoff(attempts, base, max, &mut rng) <= ceiling);
            }
        }
        // Full jitter: the delays spread over the whole range, not bunched at the ceiling.
        let spread: Vec<Duration> = (0..200).map(|_| backoff(10, base, max, &mut rng)).collect();
        assert!(spread.iter().any(|d| *d < Duration::from_secs(100)));
        assert!(spread.iter().any(|d| *d > Duration::from_secs(200)));
    }

    #[test]
    fn batch_items_are_classified_by_their_response_code() {
        assert_eq!(classify_item(None, ""), Verdict::Sent);
        assert_eq!(classify_item(Some(202), ""), Verdict::Sent);
        assert!(matches!(classify_item(Some(429), ""), Verdict::Retry(_)));
        assert!(matches!(classify_item(Some(503), ""), Verdict::Retry(_)));
        assert!(matches!(
            classify_item(Some(400), "x"),
            Verdict::Reject { .. }
        ));
    }

    #[test]
    fn sends_are_classified_so_key_problems_wait_and_bad_events_are_rejected() {
        let rejected = |status| {
            Err(OmnisendError::Rejected {
                status,
                method: "POST".into(),
                path: "/events".into(),
                problem: Box::default(),
            })
        };
        assert_eq!(classify(&Ok(())), Verdict::Sent);
        assert!(matches!(classify(&rejected(401)), Verdict::Retry(_)));
        assert!(matches!(classify(&rejected(403)), Verdict::Retry(_)));
        assert!(matches!(classify(&rejected(400)), Verdict::Reject { .. }));
        assert!(matches!(classify(&rejected(422)), Verdict::Reject { .. }));
        assert!(matches!(classify(&rejected(500)), Verdict::Retry(_)));
        let exhausted = Err(OmnisendError::RetriesExhausted {
            method: "POST".into(),
            path: "/events".into(),
            attempts: 3,
            last: "503".into(),
        });
        assert!(matches!(classify(&exhausted), Verdict::Retry(_)));
    }
}
