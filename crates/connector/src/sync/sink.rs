//! Where planned writes go: the Omnisend API, or — for `--dry-run` — NDJSON lines with the
//! exact request bodies and nothing sent.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use omnisend::models::{Batch, BatchEndpoint, BatchRequest};
use omnisend::{Deleted, OmnisendClient, OmnisendError};
use serde_json::json;

/// The destination of one brand's writes.
#[derive(Clone)]
pub enum Sink {
    /// Real requests.
    Live(OmnisendClient),
    /// Requests written as NDJSON, nothing sent.
    DryRun(DryRun),
}

/// NDJSON writer for `--dry-run`; one line per request that would be sent:
/// `{"brand":"us","method":"POST","path":"/batches","body":{…}}`.
#[derive(Clone)]
pub struct DryRun {
    out: Arc<Mutex<Box<dyn Write + Send>>>,
    brand: String,
    lines: Arc<AtomicU64>,
}

impl DryRun {
    /// Writes to `out`, labelling lines with the store route `brand`.
    pub fn new(out: Arc<Mutex<Box<dyn Write + Send>>>, brand: &str) -> Self {
        Self {
            out,
            brand: brand.to_owned(),
            lines: Arc::new(AtomicU64::new(0)),
        }
    }

    fn write(
        &self,
        method: &str,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<(), OmnisendError> {
        let mut line = json!({"brand": self.brand, "method": method, "path": path});
        if let Some(body) = body {
            line["body"] = body.clone();
        }
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        serde_json::to_writer(&mut *out, &line)
            .map_err(|e| OmnisendError::Invalid(format!("dry-run output: {e}")))?;
        out.write_all(b"\n")
            .map_err(|e| OmnisendError::Invalid(format!("dry-run output: {e}")))?;
        self.lines.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

impl Sink {
    /// The Omnisend client of a live sink.
    pub fn client(&self) -> Option<&OmnisendClient> {
        match self {
            Sink::Live(c) => Some(c),
            Sink::DryRun(_) => None,
        }
    }

    /// Whether this is a dry run.
    pub fn is_dry_run(&self) -> bool {
        matches!(self, Sink::DryRun(_))
    }

    /// Requests sent (or, in a dry run, written) so far.
    pub fn requests(&self) -> u64 {
        match self {
            Sink::Live(c) => c.requests_sent(),
            Sink::DryRun(d) => d.lines.load(Ordering::Relaxed),
        }
    }

    /// Submits one batch; returns its id.
    pub async fn submit_batch(&self, req: &BatchRequest) -> Result<String, OmnisendError> {
        match self {
            Sink::Live(c) => Ok(c.submit_batch(req).await?.batch_id),
            Sink::DryRun(d) => {
                let body =
                    serde_json::to_value(req).map_err(|e| OmnisendError::Invalid(e.to_string()))?;
                d.write("POST", "/batches", Some(&body))?;
                Ok(format!("dry-run-{}", d.lines.load(Ordering::Relaxed)))
            }
        }
    }

    /// Waits for batches to end. A dry run reports every item as done.
    pub async fn wait_batches(
        &self,
        endpoint: BatchEndpoint,
        ids: &[String],
    ) -> Result<Vec<Batch>, OmnisendError> {
        match self {
            Sink::Live(c) => c.wait_batches(endpoint, ids).await,
            Sink::DryRun(_) => Ok(ids
                .iter()
                .map(|id| Batch {
                    batch_id: id.clone(),
                    status: "finished".into(),
                    ..Batch::default()
                })
                .collect()),
        }
    }

    /// Deletes a product.
    pub async fn delete_product(&self, id: &str) -> Result<Deleted, OmnisendError> {
        match self {
            Sink::Live(c) => c.delete_product(id).await,
            Sink::DryRun(d) => d
                .write("DELETE", &format!("/products/{id}"), None)
                .map(|_| Deleted::Deleted),
        }
    }

    /// `POST /contacts`; returns Omnisend's contact id when it gave one.
    pub async fn post_contact(
        &self,
        body: &serde_json::Value,
    ) -> Result<Option<String>, OmnisendError> {
        match self {
            Sink::Live(c) => Ok(c
                .post_contact(body)
                .await?
                .get("contactID")
                .or_else(|| body.get("id"))
                .and_then(serde_json::Value::as_str)
                .map(str::to_owned)),
            Sink::DryRun(d) => d.write("POST", "/contacts", Some(body)).map(|_| None),
        }
    }

    /// Deletes a category.
    pub async fn delete_category(&self, id: &str) -> Result<Deleted, OmnisendError> {
        match self {
            Sink::Live(c) => c.delete_category(id).await,
            Sink::DryRun(d) => d
                .write("DELETE", &format!("/product-categories/{id}"), None)
                .map(|_| Deleted::Deleted),
        }
    }
}
