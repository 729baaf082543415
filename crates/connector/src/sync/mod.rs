//! The sync engine: full and delta runs per store route, planned by payload hash, written
//! through `/batches`, with run statistics and rejected records in the state store.

pub mod catalog;
pub mod contacts;
pub mod pages;
pub mod sink;
pub mod writer;

use serde::Serialize;

use crate::store::{RunStats, StoreError};

/// Full or delta.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Everything, with removal of what disappeared.
    Full,
    /// Only what changed since the cursor.
    Delta,
}

impl Mode {
    /// `full` / `delta`.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Full => "full",
            Mode::Delta => "delta",
        }
    }
}

/// Chooses full or delta for a run, with the reason when a full run was not asked for: no cursor
/// yet, a changed mapping fingerprint (`what` names the mapping, e.g. `catalog`), or a cursor
/// without a watermark. `subject` names what the cursor belongs to (`store`, `brand`).
pub fn choose_mode(
    cursor: Option<&crate::store::Cursor>,
    fingerprint: &str,
    forced_full: bool,
    subject: &str,
    what: &str,
) -> (Mode, Option<String>) {
    match cursor {
        _ if forced_full => (Mode::Full, None),
        None => (
            Mode::Full,
            Some(format!("first run for this {subject} (no cursor yet)")),
        ),
        Some(c) if c.mapping_fingerprint.as_deref() != Some(fingerprint) => (
            Mode::Full,
            Some(format!(
                "the {what} mapping configuration changed (fingerprint {} → {fingerprint})",
                c.mapping_fingerprint.as_deref().unwrap_or("none")
            )),
        ),
        Some(c) if c.last_modified_at.is_none() => {
            (Mode::Full, Some("cursor has no watermark".to_owned()))
        }
        Some(_) => (Mode::Delta, None),
    }
}

/// The outcome of one entity run for one route; serialises as one element of the `--json`
/// document's `runs` array.
#[derive(Clone, Debug, Serialize)]
pub struct RunSummary {
    /// `categories`, `products`, …
    pub entity: String,
    /// Store route key (not part of the contract's keys, but useful and additive).
    pub store: String,
    /// Full or delta.
    pub mode: Mode,
    /// Why a full refresh happened, when it was not requested.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Counters.
    #[serde(flatten)]
    pub stats: RunStats,
}

/// A run-level failure (record-level problems are rejections, not errors).
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    // The causes are part of the message and deliberately not `#[source]`: `anyhow`'s `{:#}`
    // would otherwise print them twice.
    /// commercetools failed (auth, unreachable, …); cursors are left untouched.
    #[error("commercetools: {0}")]
    Commercetools(commercetools::CtError),
    /// Omnisend failed for a whole request after retries.
    #[error("Omnisend (store {route}): {error}")]
    Omnisend {
        /// Store route.
        route: String,
        /// Cause.
        error: Box<omnisend::OmnisendError>,
    },
    /// State store failure.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Configuration that only fails against the live project (unknown channel key, …).
    #[error("config: {0}")]
    Config(String),
}

impl SyncError {
    /// An Omnisend failure of store route `route`.
    pub fn omnisend(route: &str, e: omnisend::OmnisendError) -> Self {
        SyncError::Omnisend {
            route: route.to_owned(),
            error: Box::new(e),
        }
    }
}

impl From<commercetools::CtError> for SyncError {
    fn from(e: commercetools::CtError) -> Self {
        SyncError::Commercetools(e)
    }
}
