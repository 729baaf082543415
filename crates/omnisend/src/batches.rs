//! Waiting for asynchronous batches economically.
//!
//! Omnisend has no batch callback; status must be polled, and every poll spends rate-limit
//! budget shared with the actual sync. [`OmnisendClient::wait_batches`] therefore checks many
//! batches with one list request per round (`GET /batches?endpoint=E&limit=N`, newest first,
//! `N` sized to the batches awaited), pages only while some of them are still unseen, and falls
//! back to `GET /batches/{id}` only for batches the list did not show.
//!
//! List entries can carry every item's request and response; only their status and counters
//! are read (the page is sized to what is awaited, so the body stays small), and the item
//! details are fetched only for batches that report failures or stopped early.

use std::collections::{HashMap, HashSet};

use reqwest::Method;
use serde::Deserialize;

use crate::client::{Call, OmnisendClient};
use crate::error::OmnisendError;
use crate::models::{Batch, BatchEndpoint, BatchItem};

/// Page size of the batch list (the documented maximum).
pub const LIST_PAGE_SIZE: usize = 250;
/// Most list pages read in one poll round; batches still unseen after that are fetched singly.
pub const MAX_LIST_PAGES: usize = 4;

/// `ListBatchesResponse`, keeping only each batch's status and counters.
#[derive(Debug, Default, Deserialize)]
struct ListBatches {
    #[serde(default)]
    batches: Vec<BatchSummary>,
    #[serde(default)]
    paging: Option<Paging>,
}

/// A list entry without its items (serde skips `errors`/`responses` without allocating them).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct BatchSummary {
    #[serde(rename = "batchID")]
    batch_id: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    endpoint: Option<String>,
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    total_count: u64,
    #[serde(default)]
    finished_count: u64,
    #[serde(default)]
    errors_count: u64,
}

impl From<BatchSummary> for Batch {
    fn from(b: BatchSummary) -> Self {
        Batch {
            batch_id: b.batch_id,
            status: b.status,
            endpoint: b.endpoint,
            method: b.method,
            total_count: b.total_count,
            finished_count: b.finished_count,
            errors_count: b.errors_count,
            errors: Vec::new(),
            responses: Vec::new(),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
struct Paging {
    #[serde(default)]
    next: Option<String>,
}

impl OmnisendClient {
    /// Waits until every batch in `batch_ids` is `finished` or `stopped` and returns them in the
    /// order given (duplicates collapsed), each with `errors[]` filled: when a terminal batch
    /// reports `errorsCount > 0` but carries fewer errors, its `/items` are fetched and the failed
    /// items (response code ≥ 400, or a failure status) become `errors`.
    ///
    /// Each poll round costs one list request (plus further pages only while some awaited batch
    /// is unseen, and single `GET /batches/{id}` for batches the list did not show); rounds are
    /// [`crate::OmnisendConfig::batch_poll_interval`] apart. The category endpoint is not listable
    /// (the list's `endpoint` filter only takes products, contacts, events), so category batches
    /// are polled singly. There is no overall deadline: wrap the call in `tokio::time::timeout`
    /// if one is needed.
    pub async fn wait_batches(
        &self,
        endpoint: BatchEndpoint,
        batch_ids: &[String],
    ) -> Result<Vec<Batch>, OmnisendError> {
        let mut order: Vec<&str> = Vec::with_capacity(batch_ids.len());
        let mut seen_ids = HashSet::new();
        for id in batch_ids {
            if seen_ids.insert(id.as_str()) {
                order.push(id.as_str());
            }
        }
        let mut done: HashMap<String, Batch> = HashMap::new();
        let mut listable = endpoint != BatchEndpoint::Categories;
        loop {
            let pending: Vec<&str> = order
                .iter()
                .copied()
                .filter(|id| !done.contains_key(*id))
                .collect();
            if pending.is_empty() {
                break;
            }
            let mut unseen: HashSet<&str> = pending.iter().copied().collect();
            if listable {
                match self.list_round(endpoint, &mut unseen, &mut done).await {
                    Ok(()) => {}
                    // A server that refuses to list this endpoint: poll singly from now on.
                    Err(OmnisendError::Rejected {
                        status: 400 | 404 | 422,
                        ..
                    }) => listable = false,
                    Err(e) => return Err(e),
                }
            }
            for id in pending.iter().filter(|id| unseen.contains(*id)) {
                let batch = self.get_batch(id).await?;
                if batch.is_terminal() {
                    done.insert((*id).to_owned(), batch);
                }
            }
            if order.iter().all(|id| done.contains_key(*id)) {
                break;
            }
            tokio::time::sleep(self.config().batch_poll_interval).await;
        }
        let mut out = Vec::with_capacity(order.len());
        for id in order {
            let mut batch = done.remove(id).unwrap_or_default();
            // A list entry carries no items: read the details only where they matter.
            let incomplete = batch.errors_count > batch.errors.len() as u64
                || (batch.status == "stopped" && batch.responses.is_empty());
            if incomplete {
                batch = self.get_batch(id).await?;
            }
            if batch.errors_count > batch.errors.len() as u64 {
                batch.errors = self.failed_items(id).await?;
            }
            out.push(batch);
        }
        Ok(out)
    }

    /// One list round: pages through `GET /batches?endpoint=E` while some of `unseen` are still
    /// missing, moving terminal batches into `done` and removing every listed id from `unseen`.
    async fn list_round(
        &self,
        endpoint: BatchEndpoint,
        unseen: &mut HashSet<&str>,
        done: &mut HashMap<String, Batch>,
    ) -> Result<(), OmnisendError> {
        // The awaited batches are the newest ones unless other senders interleave: a page the
        // size of what is awaited (with some slack) usually covers them in one request.
        let page_size = (unseen.len() + 10).min(LIST_PAGE_SIZE);
        for page in 0..MAX_LIST_PAGES {
            let call = Call::new(Method::GET, &["batches"])
                .query("endpoint", endpoint.as_str())
                .query("limit", page_size)
                .query("offset", page * page_size);
            let resp = self.execute(&call).await?;
            let list: ListBatches = self.decode_success(&call, resp)?;
            let count = list.batches.len();
            for summary in list.batches {
                let batch = Batch::from(summary);
                if unseen.remove(batch.batch_id.as_str()) && batch.is_terminal() {
                    done.insert(batch.batch_id.clone(), batch);
                }
            }
            let more = count >= page_size
                || list
                    .paging
                    .and_then(|p| p.next)
                    .is_some_and(|n| !n.is_empty());
            if unseen.is_empty() || !more || count == 0 {
                break;
            }
        }
        Ok(())
    }

    /// The failed items of a batch, from `GET /batches/{id}/items`.
    async fn failed_items(&self, batch_id: &str) -> Result<Vec<BatchItem>, OmnisendError> {
        let items = self.batch_items(batch_id).await?;
        if !items.errors.is_empty() {
            return Ok(items.errors);
        }
        Ok(items.responses.into_iter().filter(is_failed_item).collect())
    }
}

/// Whether a batch item failed: a response code of 400 or more, or a failure status.
pub fn is_failed_item(item: &BatchItem) -> bool {
    item.response_code.is_some_and(|c| c >= 400)
        || item
            .status
            .as_deref()
            .is_some_and(|s| matches!(s, "failed" | "error" | "errored"))
}
