//! Outbox delivery: claims due events under a lease, sends them through the brand's Omnisend
//! client (and so its rate controller), and records the outcome.
//!
//! * **Single requests** (`POST /events`) while the due backlog is small: the lowest latency.
//! * **`/batches`** (≤100 events per request) once more than `events.batch_threshold` are due:
//!   one request carries a hundred events, so a rush drains at up to 100× the single-request
//!   rate instead of turning into hours of lag. A batch's 2xx marks its events sent; its
//!   per-item results are then read back, and an item Omnisend refused becomes a rejected
//!   record while an item it could not take (408/429/5xx) is queued again.
//! * **Outcomes** ([`classify`]): 2xx → sent (the ledger); 401/403 → retried (a key problem
//!   the operator fixes; the events must not be thrown away meanwhile); any other 4xx →
//!   rejected record with Omnisend's field errors; 408/429/5xx/transport → retried with
//!   exponential backoff and full jitter ([`backoff`]) until `events.max_age_hours`, then a
//!   rejected record with the last error.
//!
//! Omnisend does not deduplicate real-time events: the one window this design cannot close is
//! a crash after Omnisend's 2xx and before the ledger write (milliseconds), which resends that
//! event once. Everything else — redeliveries, replays, restarts — finds the ledger row.

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
use crate::store::{NewRejected, OutboxEvent, StateStore, StoreError};

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

impl std::ops::AddAssign for RoundStats {
    fn add_assign(&mut self, o: Self) {
        self.claimed += o.claimed;
        self.sent += o.sent;
        self.retried += o.retried;
        self.rejected += o.rejected;
        self.batches += o.batches;
    }
}

/// Delivers the outbox of one instance.
#[derive(Clone)]
pub struct Delivery {
    store: StateStore,
    clients: Arc<HashMap<String, OmnisendClient>>,
    settings: EventsSettings,
    owner: String,
    wake: Arc<Notify>,
    /// Tasks reading batch results back.
    pending_results: Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl Delivery {
    /// `clients`: one per brand id (the API key variable), sharing the brand's rate controller
    /// with every other user of that brand in this process. `owner` names this worker in
    /// leases (unique per process).
    pub fn new(
        store: StateStore,
        clients: HashMap<String, OmnisendClient>,
        settings: EventsSettings,
        owner: String,
        wake: Arc<Notify>,
    ) -> Self {
        Self {
            store,
            clients: Arc::new(clients),
            settings,
            owner,
            wake,
            pending_results: Arc::default(),
        }
    }

    /// Waits until the per-item results of every batch sent so far are recorded.
    pub async fn wait_batch_results(&self) {
        let handles: Vec<_> = std::mem::take(
            &mut *self
                .pending_results
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
        );
        for h in handles {
            let _ = h.await;
        }
    }

    /// Delivers until `stop` is cancelled, then releases the leases it holds. Wakes on
    /// [`Notify`] (new events) or every `idle_poll` (retries falling due, other instances).
    pub async fn run(self, stop: CancellationToken, idle_poll: Duration) {
        loop {
            if stop.is_cancelled() {
                break;
            }
            let claimed = match self.round(OffsetDateTime::now_utc()).await {
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

    /// One round: claim what is due and send it (batches when the backlog is large).
    pub async fn round(&self, now: OffsetDateTime) -> Result<RoundStats, StoreError> {
        let due = self.store.outbox_depth(now).await?.due;
        let backlog = usize::try_from(due).unwrap_or(0) > self.settings.batch_threshold;
        let limit = if backlog {
            (BATCH_ITEMS * self.clients.len().max(1)) as i64
        } else {
            (self.settings.concurrency * 4) as i64
        };
        let claimed = self
            .store
            .claim_events(&self.owner, now, self.settings.lease, limit)
            .await?;
        let mut stats = RoundStats {
            claimed: claimed.len(),
            ..RoundStats::default()
        };
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

    async fn send_singles(
        &self,
        client: &OmnisendClient,
        events: Vec<OutboxEvent>,
    ) -> Result<RoundStats, StoreError> {
        let results: Vec<(OutboxEvent, Verdict)> = futures::stream::iter(events)
            .map(|e| async move {
                let verdict = classify(&client.post_event(&e.body).await);
                (e, verdict)
            })
            .buffer_unordered(self.settings.concurrency)
            .collect()
            .await;
        let mut stats = RoundStats::default();
        let mut sent = Vec::new();
        for (e, verdict) in results {
            match verdict {
                Verdict::Sent => sent.push(e.id),
                Verdict::Retry(reason) => {
                    stats.retried += 1;
                    self.retry(&e, &reason).await?;
                }
                Verdict::Reject { field, reason } => {
                    stats.rejected += 1;
                    self.reject(&e, field, &reason).await?;
                }
            }
        }
        stats.sent = sent.len();
        self.store
            .mark_events_sent(&sent, &self.owner, OffsetDateTime::now_utc())
            .await?;
        Ok(stats)
    }

    async fn send_batch(
        &self,
        client: &OmnisendClient,
        events: &[OutboxEvent],
    ) -> Result<RoundStats, StoreError> {
        let request = BatchRequest {
            endpoint: BatchEndpoint::Events,
            method: BatchMethod::Post,
            items: events.iter().map(|e| e.body.clone()).collect(),
            origin: None,
        };
        let mut stats = RoundStats {
            batches: 1,
            ..RoundStats::default()
        };
        let created = match client.submit_batch(&request).await {
            Ok(c) => c,
            Err(e) => {
                // A refused batch is retried item by item, so one bad event cannot hold back
                // a hundred good ones; a transient failure retries the whole set later.
                return match classify(&Err(e)) {
                    Verdict::Reject { .. } => {
                        let mut s = self.send_singles(client, events.to_vec()).await?;
                        s.batches = 1;
                        Ok(s)
                    }
                    Verdict::Retry(reason) => {
                        for e in events {
                            stats.retried += 1;
                            self.retry(e, &reason).await?;
                        }
                        Ok(stats)
                    }
                    Verdict::Sent => Ok(stats),
                };
            }
        };
        let ids: Vec<i64> = events.iter().map(|e| e.id).collect();
        self.store
            .mark_events_sent(&ids, &self.owner, OffsetDateTime::now_utc())
            .await?;
        stats.sent = ids.len();
        // Per-item results arrive later: read them without holding up the next round.
        let store = self.store.clone();
        let client = client.clone();
        let settings = self.settings.clone();
        let by_event_id: HashMap<String, OutboxEvent> = events
            .iter()
            .map(|e| (e.event_id.clone(), e.clone()))
            .collect();
        let handle = tokio::spawn(async move {
            let batch_id = created.batch_id;
            match client
                .wait_batches(BatchEndpoint::Events, std::slice::from_ref(&batch_id))
                .await
            {
                Ok(batches) => {
                    for batch in batches {
                        for item in &batch.errors {
                            let Some(e) = item
                                .request
                                .as_ref()
                                .and_then(|r| r.get("eventID"))
                                .and_then(|v| v.as_str())
                                .and_then(|id| by_event_id.get(id))
                            else {
                                continue;
                            };
                            let detail = item
                                .response
                                .as_ref()
                                .map(|r| r.to_string())
                                .unwrap_or_default();
                            let outcome = match classify_item(item.response_code, &detail) {
                                Verdict::Sent => Ok(()),
                                Verdict::Retry(reason) => {
                                    let due = OffsetDateTime::now_utc()
                                        + backoff(
                                            e.attempts,
                                            settings.retry_base,
                                            settings.retry_max,
                                            &mut rand::rng(),
                                        );
                                    store.reopen_event(e.id, due, &reason).await
                                }
                                Verdict::Reject { field, reason } => {
                                    store
                                        .reject_sent_event(
                                            e.id,
                                            &reason,
                                            &rejection(e, field, &reason),
                                        )
                                        .await
                                }
                            };
                            if let Err(err) = outcome {
                                tracing::warn!(error = %err, "could not record a batch item result");
                            }
                        }
                    }
                }
                Err(err) => {
                    tracing::warn!(batch = %batch_id, error = %err, "could not read event batch results")
                }
            }
        });
        let mut pending = self
            .pending_results
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        pending.retain(|h| !h.is_finished());
        pending.push(handle);
        drop(pending);
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
