//! Persistent sync state: per-record status, cursors, run statistics, rejected
//! records (dead letters) and a small key/value table.
//!
//! # Backends
//!
//! [`StateStore`] is a cheap-to-clone handle over either SQLite (`sqlite://PATH`,
//! the default; the file and its directory are created if missing, WAL mode) or
//! PostgreSQL (`postgres://…` / `postgresql://…`). Both expose the same API.
//!
//! # Why an enum of pools with static SQL
//!
//! Internally the handle is an enum of `SqlitePool` / `PgPool`, and every method
//! runs a `&'static str` statement (sqlx 0.9 only accepts static or explicitly
//! asserted SQL). `sqlx::Any` was not used: it needs an extra feature, loses
//! type information (JSONB, BIGINT) and still cannot paper over dialect
//! differences. To keep duplication low:
//!
//! * statements use `$1, $2, …` placeholders, which sqlx's SQLite driver maps to
//!   bind positions exactly like Postgres does, so most statements are a single
//!   string shared by both backends (`ON CONFLICT … DO UPDATE`, `RETURNING` and
//!   partial unique indexes are common to both dialects);
//! * the body of each method (binds, row decoding) is written once inside the
//!   internal `on_backend!` macro, which type-checks it against each pool;
//! * id lists are bound as one JSON array string and expanded with
//!   `json_each` (SQLite) or `jsonb_array_elements_text` (Postgres) — the only
//!   statements that differ per backend — in chunks of 500 ids.
//!
//! Runtime queries (not `query!`) are used, so no `DATABASE_URL` is needed at
//! compile time; the integration tests run the same bodies against both
//! backends instead.
//!
//! # Storage conventions
//!
//! * Timestamps are stored as unix epoch **milliseconds** (`INTEGER`/`BIGINT`)
//!   and returned as UTC [`OffsetDateTime`]; sub-millisecond precision is
//!   dropped.
//! * [`RecordStatus`] is stored as lowercase text.
//! * Migrations (`migrations/{sqlite,postgres}/NNNN_name.sql`) are embedded and
//!   run by [`StateStore::connect`]; later features add their own numbered files.

mod migrations;
mod rows;
#[doc(hidden)]
pub mod testing;
mod types;

use std::collections::HashMap;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::types::Json;
use time::OffsetDateTime;

pub use contacts::{KeyChange, MemberRow, RetiredRow};
pub use events::{Application, Applied, Lane, NewEvent, OutboxDepth, OutboxEvent, ResourceVersion};
pub use inbox::{InboxEntry, NewInboxEntry, Stored};
use rows::{
    count_to_db, cursor_columns, cursor_from_row, record_columns, record_from_row,
    rejected_columns, rejected_from_row, run_columns, run_from_row, to_ms,
};
pub use types::{
    Backend, Cursor, NewRejected, ParseRecordStatusError, RecordStatus, Rejected, RejectedFilter,
    RunRecord, RunStats, SyncRecord,
};

/// Maximum number of ids bound into one statement.
const ID_CHUNK: usize = 500;

/// Errors of the state store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The state URL has an unknown scheme (password, if any, is redacted).
    #[error("unsupported state URL {0:?}: use sqlite://PATH or postgres://…")]
    UnsupportedUrl(String),
    /// Database or connection error.
    #[error("state store: {0}")]
    Db(#[from] sqlx::Error),
    /// Applying the embedded migrations failed.
    #[error("state store migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The directory of the SQLite file could not be created.
    #[error("state store: cannot create directory {path}: {source}")]
    CreateDir {
        /// Directory that could not be created.
        path: PathBuf,
        /// Underlying I/O error.
        source: std::io::Error,
    },
    /// A stored value could not be decoded (unknown status, out-of-range time…).
    #[error("state store: invalid value {value:?} in column {column}")]
    Corrupt {
        /// Column holding the value.
        column: &'static str,
        /// The offending value.
        value: String,
    },
    /// [`StateStore::finish_run`] was called with an id `start_run` never returned.
    #[error("state store: unknown run id {0}")]
    UnknownRun(i64),
    /// JSON encoding of bound parameters failed.
    #[error("state store: JSON encoding: {0}")]
    Json(#[from] serde_json::Error),
}

/// Connection-pool settings for [`StateStore::connect_with`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreOptions {
    /// Maximum pool size; `None` = 4 for SQLite, 10 for Postgres.
    pub max_connections: Option<u32>,
    /// How long to wait for a connection (including the first one, so this is
    /// also how long `connect` keeps retrying an unreachable server).
    pub acquire_timeout: Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            max_connections: None,
            acquire_timeout: Duration::from_secs(10),
        }
    }
}

/// Handle to the state database; clones share one connection pool.
#[derive(Debug, Clone)]
pub struct StateStore {
    pool: Pool,
}

#[derive(Debug, Clone)]
enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs `$body` against whichever pool the store holds, with `$sql` bound to
/// the backend's statement text. The body is type-checked once per backend.
macro_rules! on_backend {
    ($store:expr, sql = $both:expr, |$sql:ident, $pool:ident| $body:expr) => {
        on_backend!($store, sqlite = $both, postgres = $both, |$sql, $pool| {
            $body
        })
    };
    ($store:expr, sqlite = $s:expr, postgres = $p:expr, |$sql:ident, $pool:ident| $body:expr) => {
        match &$store.pool {
            Pool::Sqlite($pool) => {
                let $sql: &'static str = $s;
                $body
            }
            Pool::Postgres($pool) => {
                let $sql: &'static str = $p;
                $body
            }
        }
    };
}

// Declared after `on_backend!` so the macro is in (textual) scope there.
mod contacts;
mod events;
mod inbox;
mod jobs;

pub use jobs::{BUDGET_WINDOW_SECS, JobState, QueueGauges};

impl StateStore {
    /// Opens (creating if needed) the state database at `url` and runs the
    /// embedded migrations. `url` is `sqlite://PATH` (or `sqlite::memory:`),
    /// `postgres://…` or `postgresql://…`.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::connect_with(url, StoreOptions::default()).await
    }

    /// [`connect`](Self::connect) with explicit pool settings.
    pub async fn connect_with(url: &str, options: StoreOptions) -> Result<Self, StoreError> {
        let pool = if url.starts_with("sqlite:") {
            let connect = SqliteConnectOptions::from_str(url)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(5))
                .foreign_keys(true);
            if let Some(dir) = connect.get_filename().parent()
                && !dir.as_os_str().is_empty()
                && !dir.exists()
            {
                std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
                    path: dir.to_owned(),
                    source,
                })?;
            }
            let pool = SqlitePoolOptions::new()
                .max_connections(options.max_connections.unwrap_or(4))
                .acquire_timeout(options.acquire_timeout)
                .connect_with(connect)
                .await?;
            migrations::migrator(Backend::Sqlite).run(&pool).await?;
            Pool::Sqlite(pool)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let connect = PgConnectOptions::from_str(url)?;
            let pool = PgPoolOptions::new()
                .max_connections(options.max_connections.unwrap_or(10))
                .acquire_timeout(options.acquire_timeout)
                .connect_with(connect)
                .await?;
            migrations::migrator(Backend::Postgres).run(&pool).await?;
            Pool::Postgres(pool)
        } else {
            return Err(StoreError::UnsupportedUrl(crate::config::redact_password(
                url,
            )));
        };
        Ok(StateStore { pool })
    }

    /// Which backend this store uses.
    pub fn backend(&self) -> Backend {
        match self.pool {
            Pool::Sqlite(_) => Backend::Sqlite,
            Pool::Postgres(_) => Backend::Postgres,
        }
    }

    /// Checks that the database answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        on_backend!(self, sql = "SELECT 1", |sql, pool| {
            sqlx::query(sql).execute(pool).await?;
        });
        Ok(())
    }

    /// Closes the pool, waiting for checked-out connections to be returned.
    /// Further calls on any clone fail.
    pub async fn close(&self) {
        match &self.pool {
            Pool::Sqlite(pool) => pool.close().await,
            Pool::Postgres(pool) => pool.close().await,
        }
    }

    // ---- per-record sync state -------------------------------------------------

    /// Looks up the records of `ct_ids` for (`route`, `entity`), keyed by ct id.
    /// Ids without a record are absent from the map.
    pub async fn records(
        &self,
        route: &str,
        entity: &str,
        ct_ids: &[String],
    ) -> Result<HashMap<String, SyncRecord>, StoreError> {
        let mut out = HashMap::with_capacity(ct_ids.len());
        for chunk in ct_ids.chunks(ID_CHUNK) {
            let ids = serde_json::to_string(chunk)?;
            on_backend!(
                self,
                sqlite = concat!(
                    "SELECT ",
                    record_columns!(),
                    " FROM sync_records \
                     WHERE route = $1 AND entity = $2 \
                     AND ct_id IN (SELECT value FROM json_each($3))"
                ),
                postgres = concat!(
                    "SELECT ",
                    record_columns!(),
                    " FROM sync_records \
                     WHERE route = $1 AND entity = $2 \
                     AND ct_id IN (SELECT jsonb_array_elements_text($3::jsonb))"
                ),
                |sql, pool| {
                    let rows = sqlx::query(sql)
                        .bind(route)
                        .bind(entity)
                        .bind(ids.as_str())
                        .fetch_all(pool)
                        .await?;
                    for row in &rows {
                        let record = record_from_row(row)?;
                        out.insert(record.ct_id.clone(), record);
                    }
                }
            );
        }
        Ok(out)
    }

    /// Inserts or fully replaces `records` (keyed by route, entity, ct_id) in
    /// one transaction.
    pub async fn upsert_records(&self, records: &[SyncRecord]) -> Result<(), StoreError> {
        if records.is_empty() {
            return Ok(());
        }
        // One statement per chunk (the rows travel as one JSON array): a statement per row
        // costs a round trip to SQLite's worker thread each, and the batch writer waits for
        // this between submissions. The last row per key wins, as a loop of upserts would.
        let mut last: HashMap<(&str, &str, &str), usize> = HashMap::with_capacity(records.len());
        for (i, r) in records.iter().enumerate() {
            last.insert((r.route.as_str(), r.entity.as_str(), r.ct_id.as_str()), i);
        }
        let mut order: Vec<usize> = last.into_values().collect();
        order.sort_unstable();
        on_backend!(
            self,
            sqlite = "INSERT INTO sync_records (route, entity, ct_id, ct_version, payload_hash, \
                      omnisend_id, status, batch_id, last_error, synced_at, seen_run, refresh_at) \
                      SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'), \
                      json_extract(value, '$[2]'), json_extract(value, '$[3]'), \
                      json_extract(value, '$[4]'), json_extract(value, '$[5]'), \
                      json_extract(value, '$[6]'), json_extract(value, '$[7]'), \
                      json_extract(value, '$[8]'), json_extract(value, '$[9]'), \
                      json_extract(value, '$[10]'), json_extract(value, '$[11]') \
                      FROM json_each($1) WHERE true \
                      ON CONFLICT (route, entity, ct_id) DO UPDATE SET \
                      ct_version = excluded.ct_version, payload_hash = excluded.payload_hash, \
                      omnisend_id = excluded.omnisend_id, status = excluded.status, \
                      batch_id = excluded.batch_id, last_error = excluded.last_error, \
                      synced_at = excluded.synced_at, \
                      seen_run = COALESCE(excluded.seen_run, sync_records.seen_run), \
                      refresh_at = excluded.refresh_at",
            postgres = "INSERT INTO sync_records (route, entity, ct_id, ct_version, payload_hash, \
                        omnisend_id, status, batch_id, last_error, synced_at, seen_run, refresh_at) \
                        SELECT v->>0, v->>1, v->>2, (v->>3)::bigint, v->>4, v->>5, v->>6, v->>7, \
                        v->>8, (v->>9)::bigint, (v->>10)::bigint, (v->>11)::bigint \
                        FROM jsonb_array_elements($1::jsonb) AS t(v) \
                        ON CONFLICT (route, entity, ct_id) DO UPDATE SET \
                        ct_version = excluded.ct_version, payload_hash = excluded.payload_hash, \
                        omnisend_id = excluded.omnisend_id, status = excluded.status, \
                        batch_id = excluded.batch_id, last_error = excluded.last_error, \
                        synced_at = excluded.synced_at, \
                        seen_run = COALESCE(excluded.seen_run, sync_records.seen_run), \
                        refresh_at = excluded.refresh_at",
            |sql, pool| {
                let mut tx = pool.begin().await?;
                for chunk in order.chunks(ID_CHUNK) {
                    let rows: Vec<serde_json::Value> = chunk
                        .iter()
                        .map(|&i| {
                            let r = &records[i];
                            serde_json::json!([
                                r.route,
                                r.entity,
                                r.ct_id,
                                r.ct_version,
                                r.payload_hash,
                                r.omnisend_id,
                                r.status.as_str(),
                                r.batch_id,
                                r.last_error,
                                r.synced_at.map(to_ms),
                                r.seen_run,
                                r.refresh_at.map(to_ms),
                            ])
                        })
                        .collect();
                    let rows = serde_json::to_string(&rows)?;
                    sqlx::query(sql)
                        .bind(rows.as_str())
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
            }
        );
        Ok(())
    }

    /// Removes the records of `ct_ids` for (`route`, `entity`) (one transaction).
    pub async fn delete_records(
        &self,
        route: &str,
        entity: &str,
        ct_ids: &[String],
    ) -> Result<(), StoreError> {
        if ct_ids.is_empty() {
            return Ok(());
        }
        on_backend!(
            self,
            sqlite = "DELETE FROM sync_records WHERE route = $1 AND entity = $2 \
                      AND ct_id IN (SELECT value FROM json_each($3))",
            postgres = "DELETE FROM sync_records WHERE route = $1 AND entity = $2 \
                        AND ct_id IN (SELECT jsonb_array_elements_text($3::jsonb))",
            |sql, pool| {
                let mut tx = pool.begin().await?;
                for chunk in ct_ids.chunks(ID_CHUNK) {
                    sqlx::query(sql)
                        .bind(route)
                        .bind(entity)
                        .bind(serde_json::to_string(chunk)?)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
            }
        );
        Ok(())
    }

    /// Records of (`route`, `entity`) that full run `run_id` did not see:
    /// `seen_run` is not `run_id` and status is not `Deleted`. Ordered by ct id;
    /// pass the last id of a page as `after_id` to get the next page of at
    /// most `limit` rows.
    pub async fn unseen_records(
        &self,
        route: &str,
        entity: &str,
        run_id: i64,
        after_id: Option<&str>,
        limit: i64,
    ) -> Result<Vec<SyncRecord>, StoreError> {
        on_backend!(
            self,
            sql = concat!(
                "SELECT ",
                record_columns!(),
                " FROM sync_records \
                 WHERE route = $1 AND entity = $2 \
                 AND (seen_run IS NULL OR seen_run <> $3) AND status <> 'deleted' \
                 AND ($4 IS NULL OR ct_id > $4) \
                 ORDER BY ct_id LIMIT $5"
            ),
            |sql, pool| {
                sqlx::query(sql)
                    .bind(route)
                    .bind(entity)
                    .bind(run_id)
                    .bind(after_id)
                    .bind(limit.max(0))
                    .fetch_all(pool)
                    .await?
                    .iter()
                    .map(record_from_row)
                    .collect()
            }
        )
    }

    /// Ids of records of (`route`, `entity`) whose `refresh_at` has come (`<= now`), not
    /// deleted, ordered by ct id after `after_id`, at most `limit`.
    pub async fn due_for_refresh(
        &self,
        route: &str,
        entity: &str,
        now: OffsetDateTime,
        after_id: Option<&str>,
        limit: i64,
    ) -> Result<Vec<String>, StoreError> {
        let ids = on_backend!(
            self,
            sql = "SELECT ct_id FROM sync_records WHERE route = $1 AND entity = $2 \
                   AND refresh_at IS NOT NULL AND refresh_at <= $3 AND status <> 'deleted' \
                   AND ct_id > $4 ORDER BY ct_id LIMIT $5",
            |sql, pool| {
                sqlx::query_scalar::<_, String>(sql)
                    .bind(route)
                    .bind(entity)
                    .bind(to_ms(now))
                    .bind(after_id.unwrap_or(""))
                    .bind(limit)
                    .fetch_all(pool)
                    .await?
            }
        );
        Ok(ids)
    }

    /// Sets `seen_run = run_id` on the existing records of `ct_ids` (one
    /// transaction). Ids without a record are ignored.
    pub async fn mark_seen(
        &self,
        route: &str,
        entity: &str,
        ct_ids: &[String],
        run_id: i64,
    ) -> Result<(), StoreError> {
        if ct_ids.is_empty() {
            return Ok(());
        }
        on_backend!(
            self,
            sqlite = "UPDATE sync_records SET seen_run = $3 WHERE route = $1 AND entity = $2 \
                      AND ct_id IN (SELECT value FROM json_each($4))",
            postgres = "UPDATE sync_records SET seen_run = $3 WHERE route = $1 AND entity = $2 \
                        AND ct_id IN (SELECT jsonb_array_elements_text($4::jsonb))",
            |sql, pool| {
                let mut tx = pool.begin().await?;
                for chunk in ct_ids.chunks(ID_CHUNK) {
                    sqlx::query(sql)
                        .bind(route)
                        .bind(entity)
                        .bind(run_id)
                        .bind(serde_json::to_string(chunk)?)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
            }
        );
        Ok(())
    }

    /// Number of records of (`route`, `entity`), optionally only with `status`.
    pub async fn count_records(
        &self,
        route: &str,
        entity: &str,
        status: Option<RecordStatus>,
    ) -> Result<i64, StoreError> {
        let status = status.map(RecordStatus::as_str);
        let n = on_backend!(
            self,
            sql = "SELECT COUNT(*) FROM sync_records \
                   WHERE route = $1 AND entity = $2 AND ($3 IS NULL OR status = $3)",
            |sql, pool| {
                sqlx::query_scalar::<_, i64>(sql)
                    .bind(route)
                    .bind(entity)
                    .bind(status)
                    .fetch_one(pool)
                    .await?
            }
        );
        Ok(n)
    }

    // ---- cursors -----------------------------------------------------------------

    /// The cursor of (`entity`, `route`), if one was saved.
    pub async fn cursor(&self, entity: &str, route: &str) -> Result<Option<Cursor>, StoreError> {
        on_backend!(
            self,
            sql = concat!(
                "SELECT ",
                cursor_columns!(),
                " FROM sync_cursors WHERE entity = $1 AND route = $2"
            ),
            |sql, pool| {
                sqlx::query(sql)
                    .bind(entity)
                    .bind(route)
                    .fetch_optional(pool)
                    .await?
                    .as_ref()
                    .map(cursor_from_row)
                    .transpose()
            }
        )
    }

    /// Saves (inserts or replaces) the cursor of (`cursor.entity`, `cursor.route`).
    pub async fn set_cursor(&self, cursor: &Cursor) -> Result<(), StoreError> {
        on_backend!(
            self,
            sql = "INSERT INTO sync_cursors (entity, route, last_modified_at, last_id, \
                   mapping_fingerprint, updated_at) VALUES ($1, $2, $3, $4, $5, $6) \
                   ON CONFLICT (entity, route) DO UPDATE SET \
                   last_modified_at = excluded.last_modified_at, last_id = excluded.last_id, \
                   mapping_fingerprint = excluded.mapping_fingerprint, \
                   updated_at = excluded.updated_at",
            |sql, pool| {
                sqlx::query(sql)
                    .bind(&cursor.entity)
                    .bind(&cursor.route)
                    .bind(cursor.last_modified_at.map(to_ms))
                    .bind(cursor.last_id.as_deref())
                    .bind(cursor.mapping_fingerprint.as_deref())
                    .bind(to_ms(cursor.updated_at))
                    .execute(pool)
                    .await?;
            }
        );
        Ok(())
    }

    /// All cursors, ordered by entity then route.
    pub async fn cursors(&self) -> Result<Vec<Cursor>, StoreError> {
        on_backend!(
            self,
            sql = concat!(
                "SELECT ",
                cursor_columns!(),
                " FROM sync_cursors ORDER BY entity, route"
            ),
            |sql, pool| {
                sqlx::query(sql)
                    .fetch_all(pool)
                    .await?
                    .iter()
                    .map(cursor_from_row)
                    .collect()
            }
        )
    }

    // ---- run statistics ----------------------------------------------------------

    /// Records the start of a run (`mode` is `"full"` or `"delta"`) and returns
    /// its id. Ids increase monotonically.
    pub async fn start_run(
        &self,
        entity: &str,
        route: &str,
        mode: &str,
        started_at: OffsetDateTime,
    ) -> Result<i64, StoreError> {
        let id = on_backend!(
            self,
            sql = "INSERT INTO sync_runs (entity, route, mode, started_at) \
                   VALUES ($1, $2, $3, $4) RETURNING id",
            |sql, pool| {
                sqlx::query_scalar::<_, i64>(sql)
                    .bind(entity)
                    .bind(route)
                    .bind(mode)
                    .bind(to_ms(started_at))
                    .fetch_one(pool)
                    .await?
            }
        );
        Ok(id)
    }

    /// Records the end of run `run_id` with its statistics; `outcome` is
    /// `"ok"`, `"failed"` or `"dry-run"`. Fails with
    /// [`StoreError::UnknownRun`] if the run does not exist.
    pub async fn finish_run(
        &self,
        run_id: i64,
        stats: &RunStats,
        outcome: &str,
        error: Option<&str>,
        finished_at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let changed = on_backend!(
            self,
            sql = "UPDATE sync_runs SET finished_at = $2, outcome = $3, error = $4, \
                   seen = $5, created = $6, updated = $7, unchanged = $8, deleted = $9, \
                   rejected = $10, failed = $11, requests = $12, duration_ms = $13 \
                   WHERE id = $1",
            |sql, pool| {
                sqlx::query(sql)
                    .bind(run_id)
                    .bind(to_ms(finished_at))
                    .bind(outcome)
                    .bind(error)
                    .bind(count_to_db(stats.seen))
                    .bind(count_to_db(stats.created))
                    .bind(count_to_db(stats.updated))
                    .bind(count_to_db(stats.unchanged))
                    .bind(count_to_db(stats.deleted))
                    .bind(count_to_db(stats.rejected))
                    .bind(count_to_db(stats.failed))
                    .bind(count_to_db(stats.requests))
                    .bind(count_to_db(stats.duration_ms))
                    .execute(pool)
                    .await?
                    .rows_affected()
            }
        );
        if changed == 0 {
            return Err(StoreError::UnknownRun(run_id));
        }
        Ok(())
    }

    /// The `limit` most recent runs, newest (latest start) first.
    pub async fn recent_runs(&self, limit: i64) -> Result<Vec<RunRecord>, StoreError> {
        on_backend!(
            self,
            sql = concat!(
                "SELECT ",
                run_columns!(),
                " FROM sync_runs \
                 ORDER BY started_at DESC, id DESC LIMIT $1"
            ),
            |sql, pool| {
                sqlx::query(sql)
                    .bind(limit.max(0))
                    .fetch_all(pool)
                    .await?
                    .iter()
                    .map(run_from_row)
                    .collect()
            }
        )
    }

    // ---- rejected records ------------------------------------------------------

    /// Records a rejection and returns its id. A record has at most one open
    /// rejection: if one exists it is updated in place (same id; field, reason
    /// and payload replaced, `attempts` incremented, `updated_at = r.at`).
    pub async fn add_rejected(&self, r: &NewRejected) -> Result<i64, StoreError> {
        let id = on_backend!(
            self,
            sql = "INSERT INTO rejected_records (route, entity, ct_id, field, reason, payload, \
                   attempts, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, 1, $7, $7) \
                   ON CONFLICT (route, entity, ct_id) WHERE resolved_at IS NULL DO UPDATE SET \
                   field = excluded.field, reason = excluded.reason, payload = excluded.payload, \
                   attempts = rejected_records.attempts + 1, updated_at = excluded.updated_at \
                   RETURNING id",
            |sql, pool| {
                sqlx::query_scalar::<_, i64>(sql)
                    .bind(&r.route)
                    .bind(&r.entity)
                    .bind(&r.ct_id)
                    .bind(r.field.as_deref())
                    .bind(&r.reason)
                    .bind(r.payload.as_ref().map(Json))
                    .bind(to_ms(r.at))
                    .fetch_one(pool)
                    .await?
            }
        );
        Ok(id)
    }

    /// [`add_rejected`](Self::add_rejected) for many records, in one transaction.
    pub async fn add_rejected_many(&self, records: &[NewRejected]) -> Result<(), StoreError> {
        if records.is_empty() {
            return Ok(());
        }
        on_backend!(
            self,
            sql = "INSERT INTO rejected_records (route, entity, ct_id, field, reason, payload, \
                   attempts, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, 1, $7, $7) \
                   ON CONFLICT (route, entity, ct_id) WHERE resolved_at IS NULL DO UPDATE SET \
                   field = excluded.field, reason = excluded.reason, payload = excluded.payload, \
                   attempts = rejected_records.attempts + 1, updated_at = excluded.updated_at",
            |sql, pool| {
                let mut tx = pool.begin().await?;
                for r in records {
                    sqlx::query(sql)
                        .bind(&r.route)
                        .bind(&r.entity)
                        .bind(&r.ct_id)
                        .bind(r.field.as_deref())
                        .bind(&r.reason)
                        .bind(r.payload.as_ref().map(Json))
                        .bind(to_ms(r.at))
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
            }
        );
        Ok(())
    }

    /// The rejection with `id`, open or resolved.
    pub async fn rejected(&self, id: i64) -> Result<Option<Rejected>, StoreError> {
        on_backend!(
            self,
            sql = concat!(
                "SELECT ",
                rejected_columns!(),
                " FROM rejected_records WHERE id = $1"
            ),
            |sql, pool| {
                sqlx::query(sql)
                    .bind(id)
                    .fetch_optional(pool)
                    .await?
                    .as_ref()
                    .map(rejected_from_row)
                    .transpose()
            }
        )
    }

    /// Rejections matching `filter`, most recently updated first.
    pub async fn list_rejected(
        &self,
        filter: &RejectedFilter,
    ) -> Result<Vec<Rejected>, StoreError> {
        on_backend!(
            self,
            sql = concat!(
                "SELECT ",
                rejected_columns!(),
                " FROM rejected_records \
                 WHERE ($1 IS NULL OR entity = $1) AND ($2 IS NULL OR route = $2) \
                 AND (NOT $3 OR resolved_at IS NULL) \
                 ORDER BY updated_at DESC, id DESC LIMIT $4"
            ),
            |sql, pool| {
                sqlx::query(sql)
                    .bind(filter.entity.as_deref())
                    .bind(filter.route.as_deref())
                    .bind(filter.open_only)
                    .bind(filter.limit.max(0))
                    .fetch_all(pool)
                    .await?
                    .iter()
                    .map(rejected_from_row)
                    .collect()
            }
        )
    }

    /// Marks the open rejection of (`route`, `entity`, `ct_id`) resolved, e.g.
    /// when the record later synced fine. Returns the number of rows changed
    /// (0 or 1).
    pub async fn resolve_rejected(
        &self,
        route: &str,
        entity: &str,
        ct_id: &str,
        resolved_at: OffsetDateTime,
    ) -> Result<u64, StoreError> {
        self.resolve_rejected_many(route, entity, &[ct_id.to_owned()], resolved_at)
            .await
    }

    /// [`StateStore::resolve_rejected`] for many records at once (one statement per 500 ids, one
    /// transaction): what a confirmed batch does.
    pub async fn resolve_rejected_many(
        &self,
        route: &str,
        entity: &str,
        ct_ids: &[String],
        resolved_at: OffsetDateTime,
    ) -> Result<u64, StoreError> {
        if ct_ids.is_empty() {
            return Ok(0);
        }
        let changed = on_backend!(
            self,
            sqlite = "UPDATE rejected_records SET resolved_at = $3 \
                      WHERE route = $1 AND entity = $2 AND resolved_at IS NULL \
                      AND ct_id IN (SELECT value FROM json_each($4))",
            postgres = "UPDATE rejected_records SET resolved_at = $3 \
                        WHERE route = $1 AND entity = $2 AND resolved_at IS NULL \
                        AND ct_id IN (SELECT jsonb_array_elements_text($4::jsonb))",
            |sql, pool| {
                let mut tx = pool.begin().await?;
                let mut changed = 0;
                for chunk in ct_ids.chunks(ID_CHUNK) {
                    changed += sqlx::query(sql)
                        .bind(route)
                        .bind(entity)
                        .bind(to_ms(resolved_at))
                        .bind(serde_json::to_string(chunk)?)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                }
                tx.commit().await?;
                changed
            }
        );
        Ok(changed)
    }

    /// Number of open rejections per entity, ordered by entity; entities
    /// without open rejections are absent.
    pub async fn count_rejected_open(&self) -> Result<Vec<(String, i64)>, StoreError> {
        let counts = on_backend!(
            self,
            sql = "SELECT entity, COUNT(*) FROM rejected_records WHERE resolved_at IS NULL \
                   GROUP BY entity ORDER BY entity",
            |sql, pool| {
                sqlx::query_as::<_, (String, i64)>(sql)
                    .fetch_all(pool)
                    .await?
            }
        );
        Ok(counts)
    }

    // ---- key/value meta ----------------------------------------------------------

    /// The value stored under `key`.
    pub async fn meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        let value = on_backend!(
            self,
            sql = "SELECT value FROM store_meta WHERE key = $1",
            |sql, pool| {
                sqlx::query_scalar::<_, String>(sql)
                    .bind(key)
                    .fetch_optional(pool)
                    .await?
            }
        );
        Ok(value)
    }

    /// Stores `value` under `key`, replacing any previous value.
    pub async fn set_meta(&self, key: &str, value: &str) -> Result<(), StoreError> {
        on_backend!(
            self,
            sql = "INSERT INTO store_meta (key, value) VALUES ($1, $2) \
                   ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            |sql, pool| {
                sqlx::query(sql).bind(key).bind(value).execute(pool).await?;
            }
        );
        Ok(())
    }
}
