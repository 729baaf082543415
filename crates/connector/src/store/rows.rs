//! Row decoding shared by both backends, and the timestamp/counter encodings.
//!
//! [`StoreRow`] is implemented for `SqliteRow` and `PgRow` with the same five
//! accessors, so every `*_from_row` function below is written once and
//! monomorphised per backend.

use sqlx::Row;
use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;
use sqlx::types::Json;
use time::OffsetDateTime;

use super::StoreError;
use super::types::{Cursor, RecordStatus, Rejected, RunRecord, RunStats, SyncRecord};

/// Column accessors common to both backends.
pub(crate) trait StoreRow {
    fn int(&self, col: &str) -> Result<i64, sqlx::Error>;
    fn opt_int(&self, col: &str) -> Result<Option<i64>, sqlx::Error>;
    fn text(&self, col: &str) -> Result<String, sqlx::Error>;
    fn opt_text(&self, col: &str) -> Result<Option<String>, sqlx::Error>;
    fn opt_json(&self, col: &str) -> Result<Option<serde_json::Value>, sqlx::Error>;
}

macro_rules! impl_store_row {
    ($row:ty) => {
        impl StoreRow for $row {
            fn int(&self, col: &str) -> Result<i64, sqlx::Error> {
                self.try_get(col)
            }
            fn opt_int(&self, col: &str) -> Result<Option<i64>, sqlx::Error> {
                self.try_get(col)
            }
            fn text(&self, col: &str) -> Result<String, sqlx::Error> {
                self.try_get(col)
            }
            fn opt_text(&self, col: &str) -> Result<Option<String>, sqlx::Error> {
                self.try_get(col)
            }
            fn opt_json(&self, col: &str) -> Result<Option<serde_json::Value>, sqlx::Error> {
                Ok(self
                    .try_get::<Option<Json<serde_json::Value>>, _>(col)?
                    .map(|json| json.0))
            }
        }
    };
}

impl_store_row!(SqliteRow);
impl_store_row!(PgRow);

/// `OffsetDateTime` → unix milliseconds (sub-millisecond precision is dropped,
/// rounding towards negative infinity).
pub(crate) fn to_ms(t: OffsetDateTime) -> i64 {
    let ms = t.unix_timestamp_nanos().div_euclid(1_000_000);
    // `OffsetDateTime`'s range (±9999 years) fits comfortably in i64 milliseconds.
    i64::try_from(ms).unwrap_or(if ms < 0 { i64::MIN } else { i64::MAX })
}

/// Unix milliseconds → UTC `OffsetDateTime`.
pub(crate) fn from_ms(column: &'static str, ms: i64) -> Result<OffsetDateTime, StoreError> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).map_err(|_| {
        StoreError::Corrupt {
            column,
            value: ms.to_string(),
        }
    })
}

fn opt_time_col<R: StoreRow>(
    row: &R,
    column: &'static str,
) -> Result<Option<OffsetDateTime>, StoreError> {
    row.opt_int(column)?
        .map(|ms| from_ms(column, ms))
        .transpose()
}

fn time_col<R: StoreRow>(row: &R, column: &'static str) -> Result<OffsetDateTime, StoreError> {
    from_ms(column, row.int(column)?)
}

/// Counter → stored integer (saturating).
pub(crate) fn count_to_db(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn count<R: StoreRow>(row: &R, column: &'static str) -> Result<u64, StoreError> {
    let v = row.int(column)?;
    u64::try_from(v).map_err(|_| StoreError::Corrupt {
        column,
        value: v.to_string(),
    })
}

/// Columns read by [`record_from_row`], for `concat!` into SQL.
macro_rules! record_columns {
    () => {
        "route, entity, ct_id, ct_version, payload_hash, omnisend_id, status, batch_id, \
         last_error, synced_at, seen_run, refresh_at"
    };
}
pub(crate) use record_columns;

pub(crate) fn record_from_row<R: StoreRow>(row: &R) -> Result<SyncRecord, StoreError> {
    let status = row.text("status")?;
    Ok(SyncRecord {
        route: row.text("route")?,
        entity: row.text("entity")?,
        ct_id: row.text("ct_id")?,
        ct_version: row.int("ct_version")?,
        payload_hash: row.text("payload_hash")?,
        omnisend_id: row.opt_text("omnisend_id")?,
        status: status
            .parse::<RecordStatus>()
            .map_err(|_| StoreError::Corrupt {
                column: "status",
                value: status,
            })?,
        batch_id: row.opt_text("batch_id")?,
        last_error: row.opt_text("last_error")?,
        synced_at: opt_time_col(row, "synced_at")?,
        seen_run: row.opt_int("seen_run")?,
        refresh_at: opt_time_col(row, "refresh_at")?,
    })
}

/// Columns read by [`cursor_from_row`].
macro_rules! cursor_columns {
    () => {
        "entity, route, last_modified_at, last_id, mapping_fingerprint, updated_at"
    };
}
pub(crate) use cursor_columns;

pub(crate) fn cursor_from_row<R: StoreRow>(row: &R) -> Result<Cursor, StoreError> {
    Ok(Cursor {
        entity: row.text("entity")?,
        route: row.text("route")?,
        last_modified_at: opt_time_col(row, "last_modified_at")?,
        last_id: row.opt_text("last_id")?,
        mapping_fingerprint: row.opt_text("mapping_fingerprint")?,
        updated_at: time_col(row, "updated_at")?,
    })
}

/// Columns read by [`run_from_row`].
macro_rules! run_columns {
    () => {
        "id, entity, route, mode, started_at, finished_at, outcome, error, seen, created, \
         updated, unchanged, deleted, rejected, failed, requests, duration_ms"
    };
}
pub(crate) use run_columns;

pub(crate) fn run_from_row<R: StoreRow>(row: &R) -> Result<RunRecord, StoreError> {
    Ok(RunRecord {
        id: row.int("id")?,
        entity: row.text("entity")?,
        route: row.text("route")?,
        mode: row.text("mode")?,
        started_at: time_col(row, "started_at")?,
        finished_at: opt_time_col(row, "finished_at")?,
        outcome: row.opt_text("outcome")?,
        error: row.opt_text("error")?,
        stats: RunStats {
            seen: count(row, "seen")?,
            created: count(row, "created")?,
            updated: count(row, "updated")?,
            unchanged: count(row, "unchanged")?,
            deleted: count(row, "deleted")?,
            rejected: count(row, "rejected")?,
            failed: count(row, "failed")?,
            requests: count(row, "requests")?,
            duration_ms: count(row, "duration_ms")?,
        },
    })
}

/// Columns read by [`rejected_from_row`].
macro_rules! rejected_columns {
    () => {
        "id, route, entity, ct_id, field, reason, payload, attempts, created_at, updated_at, \
         resolved_at"
    };
}
pub(crate) use rejected_columns;

pub(crate) fn rejected_from_row<R: StoreRow>(row: &R) -> Result<Rejected, StoreError> {
    Ok(Rejected {
        id: row.int("id")?,
        route: row.text("route")?,
        entity: row.text("entity")?,
        ct_id: row.text("ct_id")?,
        field: row.opt_text("field")?,
        reason: row.text("reason")?,
        payload: row.opt_json("payload")?,
        attempts: row.int("attempts")?,
        created_at: time_col(row, "created_at")?,
        updated_at: time_col(row, "updated_at")?,
        resolved_at: opt_time_col(row, "resolved_at")?,
    })
}
