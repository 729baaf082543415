//! Plain data types exchanged with the [`StateStore`](super::StateStore).

use std::fmt;
use std::str::FromStr;

use serde::Serialize;
use time::OffsetDateTime;

/// Which database engine a [`StateStore`](super::StateStore) talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// Embedded SQLite file (`sqlite://PATH`), the default for a single instance.
    Sqlite,
    /// PostgreSQL (`postgres://…` / `postgresql://…`), for several instances sharing state.
    Postgres,
}

impl Backend {
    /// Lowercase name, as used in logs (`"sqlite"` / `"postgres"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Sync status of one record; stored as lowercase text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RecordStatus {
    /// Sent to Omnisend, awaiting the batch result.
    Pending,
    /// Omnisend accepted the current payload.
    Synced,
    /// Transient failure; retried on the next run.
    Failed,
    /// Permanently rejected (see the rejected-records log).
    Rejected,
    /// Deleted upstream and propagated (or tombstoned).
    Deleted,
}

impl RecordStatus {
    /// All statuses, in declaration order.
    pub const ALL: [RecordStatus; 5] = [
        RecordStatus::Pending,
        RecordStatus::Synced,
        RecordStatus::Failed,
        RecordStatus::Rejected,
        RecordStatus::Deleted,
    ];

    /// The lowercase text stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            RecordStatus::Pending => "pending",
            RecordStatus::Synced => "synced",
            RecordStatus::Failed => "failed",
            RecordStatus::Rejected => "rejected",
            RecordStatus::Deleted => "deleted",
        }
    }
}

impl fmt::Display for RecordStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Error returned when parsing an unknown [`RecordStatus`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown record status {0:?}")]
pub struct ParseRecordStatusError(pub String);

impl FromStr for RecordStatus {
    type Err = ParseRecordStatusError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RecordStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| ParseRecordStatusError(s.to_owned()))
    }
}

/// Sync state of one commercetools record for one route (Omnisend store).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SyncRecord {
    /// Route / store key (`"us"`, `"default"`, …).
    pub route: String,
    /// Entity kind (`"customer"`, `"product"`, …).
    pub entity: String,
    /// commercetools id of the record.
    pub ct_id: String,
    /// commercetools version last processed.
    pub ct_version: i64,
    /// Hash of the mapped Omnisend payload last sent (change detection).
    pub payload_hash: String,
    /// Omnisend id, once known.
    pub omnisend_id: Option<String>,
    /// Current status.
    pub status: RecordStatus,
    /// Omnisend batch the record was last sent in.
    pub batch_id: Option<String>,
    /// Last (transient or permanent) error message.
    pub last_error: Option<String>,
    /// When Omnisend last accepted the record (millisecond precision).
    #[serde(with = "time::serde::rfc3339::option")]
    pub synced_at: Option<OffsetDateTime>,
    /// Id of the last full run that saw the record upstream.
    pub seen_run: Option<i64>,
    /// When the record must be mapped again although commercetools did not change it (a
    /// price starts or stops being valid then); `None` = only on change.
    #[serde(with = "time::serde::rfc3339::option")]
    pub refresh_at: Option<OffsetDateTime>,
}

/// Incremental-sync cursor for one (entity, route).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Cursor {
    /// Entity kind.
    pub entity: String,
    /// Route / store key.
    pub route: String,
    /// `lastModifiedAt` of the last processed record (millisecond precision).
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_modified_at: Option<OffsetDateTime>,
    /// Id of the last processed record (tie breaker for equal timestamps).
    pub last_id: Option<String>,
    /// Fingerprint of the mapping the cursor was produced with.
    pub mapping_fingerprint: Option<String>,
    /// When the cursor was written (millisecond precision).
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// Counters of one sync run. Stored as signed 64-bit integers (values above
/// `i64::MAX` saturate).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RunStats {
    /// Records read upstream.
    pub seen: u64,
    /// Records created in Omnisend.
    pub created: u64,
    /// Records updated in Omnisend.
    pub updated: u64,
    /// Records skipped because their payload hash did not change.
    pub unchanged: u64,
    /// Records deleted / tombstoned.
    pub deleted: u64,
    /// Records permanently rejected.
    pub rejected: u64,
    /// Records that failed transiently.
    pub failed: u64,
    /// HTTP requests made to Omnisend.
    pub requests: u64,
    /// Wall-clock duration of the run in milliseconds.
    pub duration_ms: u64,
}

/// One sync run as recorded by [`StateStore::start_run`](super::StateStore::start_run)
/// and [`StateStore::finish_run`](super::StateStore::finish_run).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunRecord {
    /// Run id (monotonic).
    pub id: i64,
    /// Entity kind.
    pub entity: String,
    /// Route / store key.
    pub route: String,
    /// `"full"` or `"delta"`.
    pub mode: String,
    /// Start time (millisecond precision).
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    /// End time, `None` while running (or if the process died).
    #[serde(with = "time::serde::rfc3339::option")]
    pub finished_at: Option<OffsetDateTime>,
    /// `"ok"`, `"failed"` or `"dry-run"`; `None` while running.
    pub outcome: Option<String>,
    /// Error message of a failed run.
    pub error: Option<String>,
    /// Counters (all zero until finished).
    pub stats: RunStats,
}

/// A rejection to record with [`StateStore::add_rejected`](super::StateStore::add_rejected).
#[derive(Debug, Clone, PartialEq)]
pub struct NewRejected {
    /// Route / store key.
    pub route: String,
    /// Entity kind.
    pub entity: String,
    /// commercetools id of the record.
    pub ct_id: String,
    /// Offending field, when known.
    pub field: Option<String>,
    /// Human-readable reason.
    pub reason: String,
    /// The record or request as it was.
    pub payload: Option<serde_json::Value>,
    /// When the rejection happened (millisecond precision).
    pub at: OffsetDateTime,
}

/// A rejected record (dead letter).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rejected {
    /// Row id; stays the same when a later rejection replaces an open one.
    pub id: i64,
    /// Route / store key.
    pub route: String,
    /// Entity kind.
    pub entity: String,
    /// commercetools id of the record.
    pub ct_id: String,
    /// Offending field, when known.
    pub field: Option<String>,
    /// Human-readable reason (of the latest rejection).
    pub reason: String,
    /// The record or request as it was (latest rejection).
    pub payload: Option<serde_json::Value>,
    /// How many times the record was rejected while this entry was open.
    pub attempts: i64,
    /// First rejection.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Latest rejection.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    /// When the record later synced fine; `None` while open.
    #[serde(with = "time::serde::rfc3339::option")]
    pub resolved_at: Option<OffsetDateTime>,
}

/// Filter for [`StateStore::list_rejected`](super::StateStore::list_rejected).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectedFilter {
    /// Only this entity kind.
    pub entity: Option<String>,
    /// Only this route.
    pub route: Option<String>,
    /// Only rejections that are not resolved.
    pub open_only: bool,
    /// Maximum number of rows (negative counts as 0).
    pub limit: i64,
}

impl Default for RejectedFilter {
    /// All rejections, open or resolved, at most 100.
    fn default() -> Self {
        RejectedFilter {
            entity: None,
            route: None,
            open_only: false,
            limit: 100,
        }
    }
}
