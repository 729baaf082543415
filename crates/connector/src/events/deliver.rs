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
//! or the lease: right before each send the lease is checked to outlast the request (renewed
//! unless it was taken more than a quarter of a lease ago), and a send (one attempt, at most
//! [`SEND_TIMEOUT`] after its rate permit) is at most half a lease.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use omnisend::models::{BatchEndpoint, BatchMethod, BatchRequest};
use omnisend::{OmnisendClient, OmnisendError};
use rand::Rng;
use time::OffsetDateTime;
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;
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
    /// outlast the lease checked right before it (see [`Delivery::lease_guard`]). `owner`
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
                    // A request never outlives the lease checked right before it.
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
    /// [`Notify`] (new events), when a send finishes (the next event of its order may now be
    /// due) or every `idle_poll` (retries falling due, batch results, other instances).
    ///
    /// Single sends are pipelined: the next round is claimed as soon as every event of the
    /// current one has a slot, while its last `events.concurrency` requests are still in
    /// flight, so a round's slowest request does not hold the next round back.
    pub async fn run(self, stop: CancellationToken, idle_poll: Duration) {
        let mut in_flight = InFlight::new(self.settings.concurrency);
        let mut deadline = None;
        loop {
            if stop.is_cancelled() {
                break;
            }
            let result = {
                let round = self.start_round(OffsetDateTime::now_utc(), &mut in_flight);
                tokio::pin!(round);
                tokio::select! {
                    r = &mut round => Some(r),
                    () = stop.cancelled() => {
                        // A batch request in flight finishes and is recorded; nothing new
                        // leaves (see `lease_guard`).
                        self.stopping.store(true, std::sync::atomic::Ordering::SeqCst);
                        let at = tokio::time::Instant::now() + STOP_DRAIN;
                        deadline = Some(at);
                        tokio::time::timeout_at(at, &mut round).await.ok()
                    }
                }
            };
            let claimed = match result {
                Some(Ok(stats)) => stats.claimed,
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "outbox delivery round failed; retrying");
                    0
                }
                None => break,
            };
            in_flight.reap();
            if claimed > 0 {
                continue;
            }
            tokio::select! {
                () = stop.cancelled() => break,
                () = self.wake.notified() => {}
                Some(r) = in_flight.next() => InFlight::log(r),
                () = tokio::time::sleep(idle_poll) => {}
            }
        }
        // Requests in flight finish; nothing new leaves; what still waits for a rate permit
        // when the drain ends (the brand's budget may be used up for a minute) is dropped
        // unsent, and its rows come back when their leases are released below.
        self.stopping
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let at = deadline.unwrap_or_else(|| tokio::time::Instant::now() + STOP_DRAIN);
        if tokio::time::timeout_at(at, in_flight.drain())
            .await
            .is_err()
        {
            tracing::info!("delivery stopped while sends were waiting for rate permits");
        }
        drop(in_flight);
        match self.store.release_leases(&self.owner).await {
            Ok(n) if n > 0 => tracing::info!(released = n, "outbox leases released"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "could not release outbox leases"),
        }
    }

    /// One round: read finished batches' item results, then claim what is due and send it
    /// (batches when the backlog is large); returns when every send of the round has finished.
    pub async fn round(&self, now: OffsetDateTime) -> Result<RoundStats, StoreError> {
        let mut in_flight = InFlight::new(self.settings.concurrency);
        let started = self.start_round(now, &mut in_flight).await;
        // Even when the round failed part-way, the sends it started finish and are recorded.
        let finished = in_flight.drain().await;
        let mut stats = started?;
        stats += finished?;
        Ok(stats)
    }

    /// Claims what is due and starts sending it: batches are sent (and recorded) before this
    /// returns, single sends are started in `in_flight` and this returns once each has a slot.
    /// The stats count the claim, the batches and what was settled here, not the single sends
    /// still in flight.
    async fn start_round(
        &self,
        now: OffsetDateTime,
        in_flight: &mut InFlight,
    ) -> Result<RoundStats, StoreError> {
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
        // Rows whose send is still waiting for a permit may come back once their lease has
        // run out; they are not new work (and counting them would spin the loop).
        let claimed = in_flight.not_in_flight(claimed);
        stats.claimed = claimed.len();
        if claimed.is_empty() {
            return Ok(stats);
        }
        let held_until = now + self.settings.lease;
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
                    stats += self
                        .send_batch(&client, chunk, held_until, in_flight)
                        .await?;
                }
            } else {
                self.start_singles(&client, events, held_until, in_flight)
                    .await;
            }
        }
        Ok(stats)
    }

    /// Starts sending events one request each, at most `events.concurrency` at a time across
    /// rounds (waits for a slot for each). Each outcome is recorded as soon as it is known (a
    /// crash loses at most the sends in flight).
    async fn start_singles(
        &self,
        client: &OmnisendClient,
        events: Vec<OutboxEvent>,
        held_until: OffsetDateTime,
        in_flight: &mut InFlight,
    ) {
        for e in events {
            let Ok(slot) = in_flight.slots.clone().acquire_owned().await else {
                return;
            };
            // Stopping: the rest stay unsent and their leases are released.
            if self.stopping.load(std::sync::atomic::Ordering::SeqCst) {
                return;
            }
            let this = self.clone();
            let client = client.clone();
            in_flight.spawn(e.id, slot, async move {
                this.send_single(&client, e, held_until).await
            });
        }
    }

    /// Sends one event and records the outcome. The lease is checked right before the request
    /// leaves (see [`Delivery::lease_guard`]).
    async fn send_single(
        &self,
        client: &OmnisendClient,
        e: OutboxEvent,
        held_until: OffsetDateTime,
    ) -> Result<RoundStats, StoreError> {
        let mut stats = RoundStats::default();
        let guard = self.lease_guard(vec![e.id], held_until);
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
    }

    /// Sends up to 100 events in one `/batches` request. Omnisend's 2xx makes them
    /// `submitted`: they hold back their keys until [`Delivery::reconcile`] has read the
    /// batch's item results and recorded each item as sent, retried or rejected.
    async fn send_batch(
        &self,
        client: &OmnisendClient,
        events: &[OutboxEvent],
        held_until: OffsetDateTime,
        in_flight: &mut InFlight,
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
        let guard = self.lease_guard(held.iter().map(|e| e.id).collect(), held_until);
        // A batch is a request too: it takes one of the `events.concurrency` slots (given back
        // before a refused batch's events are sent one by one, which need slots of their own).
        let Ok(slot) = in_flight.slots.clone().acquire_owned().await else {
            return Ok(stats);
        };
        let submitted = client.submit_batch_guarded(&request, &*guard).await;
        drop(slot);
        match submitted {
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
                    self.start_singles(client, held, held_until, in_flight)
                        .await;
                    Ok(stats)
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
    /// makes sure this worker's lease on every row of the request outlasts the request, and
    /// withdraws the request if a lease was lost (another worker took a row while this one
    /// waited for a permit) or delivery is stopping.
    ///
    /// A lease taken at most a quarter of a lease ago (`held_until`, set by the claim) is used
    /// as it is: it has three quarters of the lease left, more than a request may take (at most
    /// half a lease), and only an expired lease can be taken by another worker. An older one
    /// is renewed in one statement for the whole request (the permit is already granted, so
    /// the request must leave promptly). Rows sent straight after their claim — the usual
    /// case — so cost no statement here.
    fn lease_guard(&self, ids: Vec<i64>, held_until: OffsetDateTime) -> Box<omnisend::SendGuard> {
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
                let now = OffsetDateTime::now_utc();
                if lease_is_fresh(held_until, now, lease) {
                    return true;
                }
                match store.extend_leases(&ids, &owner, now + lease).await {
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

/// Whether a lease that runs until `held_until` was taken at most a quarter of a `lease` ago
/// (so it has at least three quarters left: enough for a request, which takes at most half).
fn lease_is_fresh(held_until: OffsetDateTime, now: OffsetDateTime, lease: Duration) -> bool {
    held_until - now >= lease.mul_f64(0.75)
}

/// Single sends in flight: at most `events.concurrency` at a time, across rounds.
///
/// It also knows which rows its sends hold: a send may wait for rate permits longer than its
/// lease (the brand's budget used up, a 429 pause), and the next claim of the same worker then
/// returns that row again; [`InFlight::not_in_flight`] keeps it from being sent twice (the
/// waiting send renews the lease when it gets its permit).
struct InFlight {
    slots: Arc<Semaphore>,
    tasks: JoinSet<Result<RoundStats, StoreError>>,
    rows: Arc<std::sync::Mutex<std::collections::HashSet<i64>>>,
}

/// Removes a row from [`InFlight`]'s set when its send ends, finished or aborted.
struct RowInFlight {
    id: i64,
    rows: Arc<std::sync::Mutex<std::collections::HashSet<i64>>>,
}

impl Drop for RowInFlight {
    fn drop(&mut self) {
        self.rows
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.id);
    }
}

impl InFlight {
    fn new(concurrency: usize) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(concurrency.max(1))),
            tasks: JoinSet::new(),
            rows: Arc::default(),
        }
    }

    /// Starts `send` of row `id`, holding `slot` until it ends.
    fn spawn(
        &mut self,
        id: i64,
        slot: tokio::sync::OwnedSemaphorePermit,
        send: impl std::future::Future<Output = Result<RoundStats, StoreError>> + Send + 'static,
    ) {
        self.rows
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id);
        let row = RowInFlight {
            id,
            rows: self.rows.clone(),
        };
        self.tasks.spawn(async move {
            let _slot = slot;
            let _row = row;
            send.await
        });
    }

    /// `claimed` without the rows a send of this worker still holds.
    fn not_in_flight(&self, mut claimed: Vec<OutboxEvent>) -> Vec<OutboxEvent> {
        let rows = self.rows.lock().unwrap_or_else(|e| e.into_inner());
        if !rows.is_empty() {
            claimed.retain(|e| !rows.contains(&e.id));
        }
        claimed
    }

    /// The next send to finish (`None` when none is in flight).
    async fn next(&mut self) -> Option<Result<RoundStats, StoreError>> {
        Some(Self::outcome(self.tasks.join_next().await?))
    }

    /// Logs the sends that have finished, without waiting.
    fn reap(&mut self) {
        while let Some(joined) = self.tasks.try_join_next() {
            Self::log(Self::outcome(joined));
        }
    }

    /// A finished send's result. A panicked send counts as nothing sent: its row comes back
    /// when its lease ends.
    fn outcome(
        joined: Result<Result<RoundStats, StoreError>, tokio::task::JoinError>,
    ) -> Result<RoundStats, StoreError> {
        joined.unwrap_or_else(|e| {
            tracing::error!(error = %e, "an event send panicked");
            Ok(RoundStats::default())
        })
    }

    fn log(result: Result<RoundStats, StoreError>) {
        if let Err(e) = result {
            tracing::warn!(error = %e, "recording an event send failed; its row is retried when its lease ends");
        }
    }

    /// Waits for every send in flight; the stats of all, or the first error (after all ended).
    async fn drain(&mut self) -> Result<RoundStats, StoreError> {
        let mut stats = RoundStats::default();
        let mut first_error = None;
        while let Some(r) = self.next().await {
            match r {
                Ok(s) => stats += s,
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        first_error.map_or(Ok(stats), Err)
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
    fn a_lease_is_used_as_it_is_only_within_its_first_quarter() {
        let lease = Duration::from_secs(30);
        let claimed = OffsetDateTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let until = claimed + lease;
        assert!(lease_is_fresh(until, claimed, lease));
        assert!(lease_is_fresh(
            until,
            claimed + Duration::from_millis(7_500),
            lease
        ));
        assert!(!lease_is_fresh(
            until,
            claimed + Duration::from_millis(7_501),
            lease
        ));
        assert!(!lease_is_fresh(until, until, lease));
        assert!(!lease_is_fresh(until, until + lease, lease));
    }

    /// A SQLite store holding one pending event (queued at `at`), and the default settings.
    async fn one_event_store(
        at: OffsetDateTime,
    ) -> (
        crate::store::testing::TestStore,
        crate::config::EventsSettings,
    ) {
        use crate::config::{EventsSettings, RawEvents};
        use crate::store::testing::TestStore;
        use crate::store::{Application, Backend, NewEvent};

        let t = TestStore::new(Backend::Sqlite).await.unwrap().unwrap();
        let event = NewEvent {
            brand: "KEY_ENV".into(),
            event_id: "e-1".into(),
            event_name: "placed order".into(),
            ordering_key: "order:1".into(),
            lane: Lane::Realtime,
            body: serde_json::json!({"eventName": "placed order", "eventID": "e-1"}),
            facts: Vec::new(),
        };
        let application = Application {
            events: vec![event],
            ..Application::default()
        };
        t.store().apply(&application, at).await.unwrap();
        (t, EventsSettings::from_raw(RawEvents::default()).unwrap())
    }

    /// A worker named `owner` on `t`, without Omnisend clients.
    fn worker(
        t: &crate::store::testing::TestStore,
        settings: &crate::config::EventsSettings,
        owner: &str,
    ) -> Delivery {
        Delivery::new(
            t.store().clone(),
            HashMap::new(),
            settings.clone(),
            owner.into(),
            Arc::new(Notify::new()),
        )
    }

    #[tokio::test]
    async fn an_old_lease_is_renewed_before_a_send_and_a_lost_one_withdraws_it() {
        let now = OffsetDateTime::now_utc();
        let (t, settings) = one_event_store(now - Duration::from_secs(60)).await;
        let lease = settings.lease;
        let (a, b) = (worker(&t, &settings, "a"), worker(&t, &settings, "b"));

        // Claimed a third of a lease ago: no longer fresh, so the guard renews it.
        let claimed_at = now - lease / 3;
        let held = t
            .store()
            .claim_events("a", claimed_at, lease, 10)
            .await
            .unwrap();
        assert_eq!(held.len(), 1);
        let held_until = claimed_at + lease;
        assert!(a.lease_guard(vec![held[0].id], held_until)().await);
        // Without the renewal the lease would have ended before this moment.
        let before_renewed_end = held_until + lease / 6;
        let taken = t
            .store()
            .claim_events("b", before_renewed_end, lease, 10)
            .await
            .unwrap();
        assert!(taken.is_empty(), "the renewed lease still holds the row");

        // Once the lease has run out another worker takes the row, and the old guard withdraws.
        let after = now + lease + Duration::from_secs(1);
        let taken = t.store().claim_events("b", after, lease, 10).await.unwrap();
        assert_eq!(taken.len(), 1);
        assert!(!a.lease_guard(vec![held[0].id], held_until)().await);
        // A fresh lease lets the send go without a statement: not even a row that does not
        // exist is looked up.
        assert!(b.lease_guard(vec![i64::MAX], after + lease)().await);
        assert!(!b.lease_guard(vec![i64::MAX], now)().await);
    }

    #[tokio::test]
    async fn a_row_claimed_again_while_its_send_still_waits_is_not_sent_twice() {
        let now = OffsetDateTime::now_utc();
        let (t, settings) = one_event_store(now).await;
        let lease = settings.lease;
        // No client for the brand: a row this worker starts is given back with a retry, which
        // shows in the stats.
        let delivery = worker(&t, &settings, "a");
        let claimed = t.store().claim_events("a", now, lease, 10).await.unwrap();
        assert_eq!(claimed.len(), 1);
        // Its send waits (for a rate permit, say) longer than the lease.
        let mut in_flight = InFlight::new(4);
        let release = Arc::new(Notify::new());
        let waiting = release.clone();
        let slot = in_flight.slots.clone().acquire_owned().await.unwrap();
        in_flight.spawn(claimed[0].id, slot, async move {
            waiting.notified().await;
            Ok(RoundStats::default())
        });

        let again = delivery
            .start_round(now + lease * 2, &mut in_flight)
            .await
            .unwrap();
        assert_eq!(again.claimed, 0, "the row in flight is not new work");
        assert_eq!(again.retried, 0, "and nothing else was done with it");

        release.notify_one();
        in_flight.drain().await.unwrap();
        let later = delivery
            .start_round(now + lease * 4, &mut in_flight)
            .await
            .unwrap();
        assert_eq!(
            (later.claimed, later.retried),
            (1, 1),
            "once its send ended, it is work again"
        );
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
