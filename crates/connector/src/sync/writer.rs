//! Bulk writer: turns planned creates and replaces into `/batches` requests of up to 100 items,
//! waits for their outcome, and maps every item's result back to its record.
//!
//! Records are written to the state store only after Omnisend reports the item done, so a crash
//! at any point means the next run re-plans (and, by hash, re-sends) what was not confirmed.
//! Per-item failures are routed: 404 on a replace → create; 409 on a create → replace;
//! 408/429/5xx → retried in a later batch (bounded); any other 4xx → a rejected record with the
//! field errors Omnisend gave.

use omnisend::OmnisendError;
use omnisend::models::{Batch, BatchEndpoint, BatchItem, BatchMethod, BatchRequest};
use serde_json::Value;
use time::OffsetDateTime;
use tokio::task::JoinSet;

use super::SyncError;
use super::sink::Sink;
use crate::store::{NewRejected, RecordStatus, RunStats, StateStore, SyncRecord};

/// How many times one item is retried across batches after transient failures.
const MAX_ITEM_ATTEMPTS: u32 = 4;
/// Batches in flight before the writer waits for their results (bounds memory and lets
/// failures surface early without spending a poll per batch).
const PENDING_WINDOW: usize = 25;
/// Batch submissions in flight at once (a small cap: the rate controller sets the pace).
const MAX_IN_FLIGHT: usize = 4;

/// One planned write.
#[derive(Clone, Debug)]
pub struct Planned {
    /// commercetools id (also the Omnisend id).
    pub ct_id: String,
    /// commercetools version.
    pub ct_version: i64,
    /// Hash of `body`.
    pub hash: String,
    /// The request body.
    pub body: Value,
    attempts: u32,
    /// Whether Omnisend is believed to hold the record (it was replaced, or a create met 409).
    in_omnisend: bool,
    /// When the record must be mapped again regardless of changes (a price validity boundary).
    refresh_at: Option<OffsetDateTime>,
    /// The id Omnisend echoes for this item (see [`ItemKey`]); `ct_id` unless set.
    match_id: Option<String>,
}

impl Planned {
    /// A new planned write.
    pub fn new(ct_id: String, ct_version: i64, hash: String, body: Value) -> Self {
        Self {
            ct_id,
            ct_version,
            hash,
            body,
            attempts: 0,
            in_omnisend: false,
            refresh_at: None,
            match_id: None,
        }
    }

    /// Sets the id Omnisend echoes for this item when it differs from `ct_id` (a contact is
    /// stored under a hash of its email but echoed with the email itself).
    pub fn match_id(mut self, id: String) -> Self {
        self.match_id = Some(id);
        self
    }

    /// Marks the record as held by Omnisend already (kept on the record if this write fails).
    pub fn held(mut self, held: bool) -> Self {
        self.in_omnisend = held;
        self
    }

    fn echo_id(&self) -> &str {
        self.match_id.as_deref().unwrap_or(&self.ct_id)
    }

    /// Sets when the record must be mapped again although it did not change.
    pub fn refresh_at(mut self, at: Option<OffsetDateTime>) -> Self {
        self.refresh_at = at;
        self
    }
}

struct PendingBatch {
    id: String,
    method: BatchMethod,
    items: Vec<Planned>,
}

/// What a writer writes: one entity of one store route to one Omnisend endpoint.
#[derive(Clone, Copy, Debug)]
pub struct Target<'a> {
    /// Store route.
    pub route: &'a str,
    /// Entity name in the state store.
    pub entity: &'static str,
    /// Batch endpoint.
    pub endpoint: BatchEndpoint,
    /// Where an echoed item body holds its id.
    pub id_field: ItemKey,
}

/// Where a batch item's echoed request holds the id that matches it to its planned write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ItemKey {
    /// A top-level string field (`id`, `categoryID`).
    Field(&'static str),
    /// `identifiers[0].id` (contacts).
    FirstIdentifier,
}

/// Batching writer for one (route, entity).
pub struct BatchWriter<'a> {
    route: &'a str,
    entity: &'static str,
    endpoint: BatchEndpoint,
    id_field: ItemKey,
    sink: &'a Sink,
    store: &'a StateStore,
    batch_size: usize,
    creates: Vec<Planned>,
    replaces: Vec<Planned>,
    pending: Vec<PendingBatch>,
    /// Batch submissions under way.
    in_flight: JoinSet<(Result<String, OmnisendError>, BatchMethod, Vec<Planned>)>,
    /// Full-run id stamped on every record written (see `StateStore::unseen_records`).
    seen_run: Option<i64>,
    /// Ids confirmed written in this run, when tracked (see [`BatchWriter::track_confirmed`]);
    /// not tracked by default so memory does not grow with the catalog.
    confirmed: Option<Vec<String>>,
    /// Counters.
    pub stats: RunStats,
}

impl<'a> BatchWriter<'a> {
    /// A writer for `entity` of `route`, sending to `endpoint`.
    pub fn new(
        target: Target<'a>,
        sink: &'a Sink,
        store: &'a StateStore,
        batch_size: usize,
        seen_run: Option<i64>,
    ) -> Self {
        Self {
            route: target.route,
            entity: target.entity,
            endpoint: target.endpoint,
            id_field: target.id_field,
            sink,
            store,
            batch_size: batch_size.clamp(1, omnisend::models::limits::BATCH_ITEMS),
            creates: Vec::new(),
            replaces: Vec::new(),
            pending: Vec::new(),
            in_flight: JoinSet::new(),
            seen_run,
            confirmed: None,
            stats: RunStats::default(),
        }
    }

    /// Keeps the ids of confirmed writes (for small entities whose ids later writes reference).
    pub fn track_confirmed(mut self) -> Self {
        self.confirmed = Some(Vec::new());
        self
    }

    /// Ids confirmed written so far (empty unless tracked).
    pub fn confirmed(&self) -> &[String] {
        self.confirmed.as_deref().unwrap_or_default()
    }

    /// Queues a write to an endpoint whose create also updates (contacts: `POST` upserts by
    /// identifier). Sent like a create; whether Omnisend holds the record is kept as planned.
    pub async fn upsert(&mut self, p: Planned) -> Result<(), SyncError> {
        self.creates.push(p);
        self.flush_full().await
    }

    /// Queues a create (record unknown to Omnisend).
    pub async fn create(&mut self, mut p: Planned) -> Result<(), SyncError> {
        p.in_omnisend = false;
        self.creates.push(p);
        self.flush_full().await
    }

    /// Queues a replace (record known to Omnisend).
    pub async fn replace(&mut self, mut p: Planned) -> Result<(), SyncError> {
        p.in_omnisend = true;
        self.replaces.push(p);
        self.flush_full().await
    }

    async fn flush_full(&mut self) -> Result<(), SyncError> {
        if self.creates.len() >= self.batch_size {
            self.submit(BatchMethod::Post).await?;
        }
        if self.replaces.len() >= self.batch_size {
            self.submit(BatchMethod::Put).await?;
        }
        if self.pending.len() + self.in_flight.len() >= PENDING_WINDOW {
            self.land_all().await?;
            self.settle().await?;
        }
        Ok(())
    }

    /// Starts one batch from the buffer of `method` (at most `batch_size` items). A few batch
    /// submissions run concurrently: one at a time would leave the quota unused whenever a
    /// request takes longer than the rate controller's interval (a 100-item body often does).
    async fn submit(&mut self, method: BatchMethod) -> Result<(), SyncError> {
        let buf = match method {
            BatchMethod::Post => &mut self.creates,
            BatchMethod::Put => &mut self.replaces,
        };
        let n = buf.len().min(self.batch_size);
        if n == 0 {
            return Ok(());
        }
        let items: Vec<Planned> = buf.drain(..n).collect();
        self.launch(method, items).await
    }

    async fn launch(&mut self, method: BatchMethod, items: Vec<Planned>) -> Result<(), SyncError> {
        // A dry run writes its lines in a stable order: one submission at a time.
        let limit = if self.sink.is_dry_run() {
            1
        } else {
            MAX_IN_FLIGHT
        };
        while self.in_flight.len() >= limit {
            self.land_one().await?;
        }
        let req = BatchRequest {
            endpoint: self.endpoint,
            method,
            items: items.iter().map(|p| p.body.clone()).collect(),
            origin: Some("ct-omnisend".into()),
        };
        let sink = self.sink.clone();
        self.in_flight.spawn(async move {
            let result = sink.submit_batch(&req).await;
            (result, method, items)
        });
        if limit == 1 {
            self.land_one().await?;
        }
        Ok(())
    }

    /// Waits for every submission in flight.
    async fn land_all(&mut self) -> Result<(), SyncError> {
        while !self.in_flight.is_empty() {
            self.land_one().await?;
        }
        Ok(())
    }

    /// Waits for one submission and files its outcome.
    async fn land_one(&mut self) -> Result<(), SyncError> {
        let Some(joined) = self.in_flight.join_next().await else {
            return Ok(());
        };
        let (result, method, items) = joined.map_err(|e| {
            SyncError::omnisend(
                self.route,
                OmnisendError::Invalid(format!("batch submission task failed: {e}")),
            )
        })?;
        match result {
            Ok(id) => {
                self.pending.push(PendingBatch { id, method, items });
                Ok(())
            }
            // Only a refusal of the body itself can be narrowed down to an item; any other
            // refusal (401, 403, 404, …) is about the request and ends the run below.
            Err(OmnisendError::Rejected {
                status: status @ (400 | 413 | 422),
                problem,
                ..
            }) => {
                // The whole batch was refused (e.g. one malformed item fails schema validation):
                // split it, so one bad record cannot block the others, down to the culprit.
                if items.len() == 1 {
                    let (field, reason) = refusal(status, Some(&problem));
                    self.reject(&items[0], field, reason).await
                } else {
                    let mut items = items;
                    let second = items.split_off(items.len() / 2);
                    Box::pin(self.launch(method, items)).await?;
                    Box::pin(self.launch(method, second)).await
                }
            }
            Err(e) => Err(SyncError::omnisend(self.route, e)),
        }
    }

    /// Sends what is buffered and waits until every batch has ended and every item is settled.
    pub async fn finish(&mut self) -> Result<(), SyncError> {
        loop {
            while !self.creates.is_empty() {
                self.submit(BatchMethod::Post).await?;
            }
            while !self.replaces.is_empty() {
                self.submit(BatchMethod::Put).await?;
            }
            self.land_all().await?;
            if self.pending.is_empty() && self.creates.is_empty() && self.replaces.is_empty() {
                return Ok(());
            }
            self.settle().await?;
        }
    }

    /// Waits for the pending batches and routes each item's outcome.
    async fn settle(&mut self) -> Result<(), SyncError> {
        let pending = std::mem::take(&mut self.pending);
        let ids: Vec<String> = pending.iter().map(|b| b.id.clone()).collect();
        let batches = self
            .sink
            .wait_batches(self.endpoint, &ids)
            .await
            .map_err(|e| SyncError::omnisend(self.route, e))?;
        let now = OffsetDateTime::now_utc();
        for pb in pending {
            let batch = batches.iter().find(|b| b.batch_id == pb.id);
            self.settle_batch(pb, batch, now).await?;
        }
        Ok(())
    }

    async fn settle_batch(
        &mut self,
        pb: PendingBatch,
        batch: Option<&Batch>,
        now: OffsetDateTime,
    ) -> Result<(), SyncError> {
        let failures: Vec<&BatchItem> =
            batch.map(|b| b.errors.iter().collect()).unwrap_or_default();
        let id_field = self.id_field;
        let failure_of = |id: &str| {
            failures
                .iter()
                .copied()
                .find(|f| item_id(f, id_field) == Some(id))
        };
        // Every reported failure must be matched to an item (by the id in its echoed request);
        // otherwise, as when a batch stopped early, only items Omnisend positively answered
        // count as done and the others are sent again.
        let matched = pb
            .items
            .iter()
            .filter(|i| failure_of(i.echo_id()).is_some())
            .count();
        let reported = batch.map_or(0, |b| (b.errors_count as usize).max(b.errors.len()));
        let uncertain = batch.is_none_or(|b| b.status == "stopped") || reported > matched;
        let mut done = Vec::new();
        for item in pb.items {
            match failure_of(item.echo_id()) {
                None if !uncertain || self.item_answered(batch, item.echo_id()) => done.push(item),
                None => {
                    self.retry_later(
                        item,
                        pb.method,
                        "the batch result does not account for the item".into(),
                    )
                    .await?
                }
                Some(f) => self.route_failure(item, pb.method, f).await?,
            }
        }
        if done.is_empty() {
            return Ok(());
        }
        let records: Vec<SyncRecord> = done
            .iter()
            .map(|p| SyncRecord {
                route: self.route.to_owned(),
                entity: self.entity.to_owned(),
                ct_id: p.ct_id.clone(),
                ct_version: p.ct_version,
                payload_hash: p.hash.clone(),
                omnisend_id: Some(p.ct_id.clone()),
                status: RecordStatus::Synced,
                batch_id: Some(pb.id.clone()),
                last_error: None,
                synced_at: Some(now),
                seen_run: self.seen_run,
                refresh_at: p.refresh_at,
            })
            .collect();
        if !self.sink.is_dry_run() {
            self.store.upsert_records(&records).await?;
            let ids: Vec<String> = done.iter().map(|p| p.ct_id.clone()).collect();
            self.store
                .resolve_rejected_many(self.route, self.entity, &ids, now)
                .await?;
        }
        match pb.method {
            BatchMethod::Post => self.stats.created += done.len() as u64,
            BatchMethod::Put => self.stats.updated += done.len() as u64,
        }
        if let Some(confirmed) = &mut self.confirmed {
            confirmed.extend(done.into_iter().map(|p| p.ct_id));
        }
        Ok(())
    }

    fn item_answered(&self, batch: Option<&Batch>, id: &str) -> bool {
        batch.is_some_and(|b| {
            b.responses
                .iter()
                .any(|r| item_id(r, self.id_field) == Some(id))
        })
    }

    async fn route_failure(
        &mut self,
        mut item: Planned,
        method: BatchMethod,
        f: &BatchItem,
    ) -> Result<(), SyncError> {
        let code = f.response_code.unwrap_or(0);
        let problem = f
            .response
            .as_ref()
            .and_then(|r| serde_json::from_value::<omnisend::problem::Problem>(r.clone()).ok());
        match (code, method) {
            (404, BatchMethod::Put) => {
                item.attempts += 1;
                item.in_omnisend = false;
                self.requeue(item, BatchMethod::Post, "not found on replace".into())
                    .await
            }
            (409, BatchMethod::Post) => {
                item.attempts += 1;
                item.in_omnisend = true;
                self.requeue(item, BatchMethod::Put, "already exists on create".into())
                    .await
            }
            (408 | 429, _) | (500..=599, _) | (0, _) => {
                self.retry_later(item, method, refusal(code, problem.as_ref()).1)
                    .await
            }
            _ => {
                let (field, reason) = refusal(code, problem.as_ref());
                self.reject(&item, field, reason).await
            }
        }
    }

    async fn retry_later(
        &mut self,
        mut item: Planned,
        method: BatchMethod,
        reason: String,
    ) -> Result<(), SyncError> {
        item.attempts += 1;
        self.requeue(item, method, reason).await
    }

    async fn requeue(
        &mut self,
        item: Planned,
        method: BatchMethod,
        reason: String,
    ) -> Result<(), SyncError> {
        if item.attempts >= MAX_ITEM_ATTEMPTS {
            tracing::warn!(route = self.route, entity = self.entity, id = %item.ct_id, reason = %crate::identity::mask_text(&reason), "giving up on item for this run");
            self.stats.failed += 1;
            if !self.sink.is_dry_run() {
                let record = self.unsent_record(&item, RecordStatus::Failed, reason);
                self.store.upsert_records(&[record]).await?;
            }
            return Ok(());
        }
        match method {
            BatchMethod::Post => self.creates.push(item),
            BatchMethod::Put => self.replaces.push(item),
        }
        Ok(())
    }

    /// The state of a record this run could not write (`Failed` or `Rejected`).
    fn unsent_record(&self, item: &Planned, status: RecordStatus, reason: String) -> SyncRecord {
        SyncRecord {
            route: self.route.to_owned(),
            entity: self.entity.to_owned(),
            ct_id: item.ct_id.clone(),
            ct_version: item.ct_version,
            // An empty hash never matches, so the next run sends the record again.
            payload_hash: String::new(),
            // Kept when Omnisend still holds the record, so a later delete reaches it.
            omnisend_id: item.in_omnisend.then(|| item.ct_id.clone()),
            status,
            batch_id: None,
            last_error: Some(reason),
            synced_at: None,
            seen_run: self.seen_run,
            refresh_at: None,
        }
    }

    async fn reject(
        &mut self,
        item: &Planned,
        field: Option<String>,
        reason: String,
    ) -> Result<(), SyncError> {
        self.stats.rejected += 1;
        if self.sink.is_dry_run() {
            return Ok(());
        }
        let now = OffsetDateTime::now_utc();
        self.store
            .add_rejected(&NewRejected {
                route: self.route.to_owned(),
                entity: self.entity.to_owned(),
                ct_id: item.ct_id.clone(),
                field,
                reason: reason.clone(),
                payload: Some(item.body.clone()),
                at: now,
            })
            .await?;
        let record = self.unsent_record(item, RecordStatus::Rejected, reason);
        self.store.upsert_records(&[record]).await?;
        Ok(())
    }
}

/// What Omnisend's refusal of one item says: the first field at fault (Omnisend's dotted path)
/// and a one-line reason with the status.
pub fn refusal(
    status: u16,
    problem: Option<&omnisend::problem::Problem>,
) -> (Option<String>, String) {
    let field = problem
        .and_then(|p| p.errors.first())
        .and_then(|e| e.field.clone());
    let summary = problem
        .map(problem_summary)
        .unwrap_or_else(|| format!("status {status}"));
    (
        field,
        format!("Omnisend refused the item ({status}): {summary}"),
    )
}

/// One line from an RFC 9457 problem: title, detail and field errors.
pub fn problem_summary(p: &omnisend::problem::Problem) -> String {
    let mut parts: Vec<String> = Vec::new();
    if let Some(t) = &p.title {
        parts.push(t.clone());
    }
    if let Some(d) = p.detail.as_ref().filter(|d| Some(*d) != p.title.as_ref()) {
        parts.push(d.clone());
    }
    for e in &p.errors {
        parts.push(format!(
            "{}: {}",
            e.field.as_deref().unwrap_or("?"),
            e.message
                .as_deref()
                .or(e.code.as_deref())
                .unwrap_or("invalid")
        ));
    }
    if parts.is_empty() {
        "no details".to_owned()
    } else {
        parts.join("; ")
    }
}

/// The id a batch item's echoed request carries.
fn item_id(item: &BatchItem, key: ItemKey) -> Option<&str> {
    let request = item.request.as_ref()?;
    match key {
        ItemKey::Field(f) => request.get(f)?.as_str(),
        ItemKey::FirstIdentifier => request.get("identifiers")?.get(0)?.get("id")?.as_str(),
    }
}
