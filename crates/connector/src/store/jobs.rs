//! Scheduled jobs and the shared request budget (issue 5, migration 0006).
//!
//! * **Job leases.** Each scheduled job (a delta sync of one entity and store, the full
//!   refresh, …) has a row in `jobs`. An instance runs a job only after
//!   [`StateStore::try_start_job`] moved the row to itself: a compare-and-set on the last start
//!   time plus a lease that must be free or expired. So on any number of instances sharing a
//!   database a due job starts once, and a job whose instance died is taken over when its lease
//!   runs out. Times are passed in by the caller (the scheduler's clock), so the logic runs
//!   under `tokio::time::pause()`.
//! * **Run requests.** A change notification asks for a delta run with
//!   [`StateStore::request_job`]; the request is durable and any instance's scheduler serves
//!   it.
//! * **Shared request budget** ([`StateStore::take_request_budget`], PostgreSQL): every
//!   Omnisend request of every instance takes one unit of its brand's budget for the current
//!   second of the **database's** clock, under a per-brand transaction advisory lock, and only
//!   while the last [`BUDGET_WINDOW_SECS`] seconds hold fewer than the limit. Counting 63 whole
//!   seconds makes any 60 s window hold at most `limit` grants, whatever the instances' own
//!   clocks say, with 2 s to spare for the way from the grant to Omnisend.

use std::time::Duration;

use time::OffsetDateTime;

use super::rows::{StoreRow, from_ms, to_ms};
use super::{Pool, StateStore, StoreError};

/// Seconds (whole buckets) the shared budget counts: Omnisend's 60 s window plus 3 s. One second
/// covers the rounding to whole buckets; two more cover the time between a grant and the
/// request's arrival at Omnisend (lease renewal, connection, a loaded host): measured with
/// three instances on a loaded 2-core machine, a 61 s window let 401 of 400 requests land in one
/// 60 s window.
pub const BUDGET_WINDOW_SECS: i64 = 63;

/// One scheduled job's shared state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobState {
    /// Job name, e.g. `catalog.delta.default`.
    pub name: String,
    /// Instance running it now.
    pub lease_owner: Option<String>,
    /// When that lease runs out unless renewed.
    pub lease_until: Option<OffsetDateTime>,
    /// Start of the last run on any instance.
    pub last_started: Option<OffsetDateTime>,
    /// Start of the last full run.
    pub last_full: Option<OffsetDateTime>,
    /// End of the last finished run.
    pub last_finished: Option<OffsetDateTime>,
    /// `ok` or `failed: …` of the last finished run.
    pub last_outcome: Option<String>,
    /// A change notification asked for a run at this time (cleared when a run starts).
    pub requested_at: Option<OffsetDateTime>,
    /// Runs started so far.
    pub runs: i64,
    /// When the row was created (the schedule's anchor before the first run).
    pub created_at: OffsetDateTime,
}

impl JobState {
    fn from_row(row: &impl StoreRow) -> Result<Self, StoreError> {
        let opt = |column: &'static str| -> Result<Option<OffsetDateTime>, StoreError> {
            row.opt_int(column)?
                .map(|ms| from_ms(column, ms))
                .transpose()
        };
        Ok(JobState {
            name: row.text("name")?,
            lease_owner: row.opt_text("lease_owner")?,
            lease_until: opt("lease_until")?,
            last_started: opt("last_started")?,
            last_full: opt("last_full")?,
            last_finished: opt("last_finished")?,
            last_outcome: row.opt_text("last_outcome")?,
            requested_at: opt("requested_at")?,
            runs: row.int("runs")?,
            created_at: from_ms("created_at", row.int("created_at")?)?,
        })
    }
}

/// Columns read by [`JobState::from_row`], for `concat!` into SQL.
macro_rules! job_columns {
    () => {
        "name, lease_owner, lease_until, last_started, last_full, last_finished, last_outcome, \
         requested_at, runs, created_at"
    };
}

impl StateStore {
    /// Creates the row of job `name` if it does not exist yet (anchored at `now`).
    pub async fn ensure_job(&self, name: &str, now: OffsetDateTime) -> Result<(), StoreError> {
        on_backend!(
            self,
            sql =
                "INSERT INTO jobs (name, created_at) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
            |sql, pool| {
                sqlx::query(sql)
                    .bind(name)
                    .bind(to_ms(now))
                    .execute(pool)
                    .await?;
            }
        );
        Ok(())
    }

    /// The state of job `name`.
    pub async fn job(&self, name: &str) -> Result<Option<JobState>, StoreError> {
        on_backend!(
            self,
            sql = concat!("SELECT ", job_columns!(), " FROM jobs WHERE name = $1"),
            |sql, pool| {
                let row = sqlx::query(sql).bind(name).fetch_optional(pool).await?;
                row.as_ref().map(JobState::from_row).transpose()
            }
        )
    }

    /// Every job's state, by name.
    pub async fn jobs(&self) -> Result<Vec<JobState>, StoreError> {
        on_backend!(
            self,
            sql = concat!("SELECT ", job_columns!(), " FROM jobs ORDER BY name"),
            |sql, pool| {
                let rows = sqlx::query(sql).fetch_all(pool).await?;
                rows.iter().map(JobState::from_row).collect()
            }
        )
    }

    /// Starts job `name` for `owner` at `now` with a lease of `lease`, if its last start is
    /// still `seen_last_started` (nobody started it since the caller decided it was due) and no
    /// live lease holds it. Clears a run request made at or before `now`; a `full` run also
    /// moves `last_full`. Returns whether this caller now runs the job.
    pub async fn try_start_job(
        &self,
        name: &str,
        owner: &str,
        now: OffsetDateTime,
        lease: Duration,
        seen_last_started: Option<OffsetDateTime>,
        full: bool,
    ) -> Result<bool, StoreError> {
        let now_ms = to_ms(now);
        let until = to_ms(now + lease);
        let done = on_backend!(
            self,
            sqlite = "UPDATE jobs SET lease_owner = $1, lease_until = $2, last_started = $3, \
                      runs = runs + 1, last_full = CASE WHEN $6 THEN $3 ELSE last_full END, \
                      requested_at = CASE WHEN requested_at <= $3 THEN NULL ELSE requested_at END \
                      WHERE name = $4 AND (lease_owner IS NULL OR lease_until < $3) \
                      AND last_started IS $5",
            postgres = "UPDATE jobs SET lease_owner = $1, lease_until = $2, last_started = $3, \
                        runs = runs + 1, last_full = CASE WHEN $6 THEN $3 ELSE last_full END, \
                        requested_at = CASE WHEN requested_at <= $3 THEN NULL ELSE requested_at END \
                        WHERE name = $4 AND (lease_owner IS NULL OR lease_until < $3) \
                        AND last_started IS NOT DISTINCT FROM $5",
            |sql, pool| {
                sqlx::query(sql)
                    .bind(owner)
                    .bind(until)
                    .bind(now_ms)
                    .bind(name)
                    .bind(seen_last_started.map(to_ms))
                    .bind(full)
                    .execute(pool)
                    .await?
                    .rows_affected()
            }
        );
        Ok(done == 1)
    }

    /// Starts job `name` for `owner` whatever its schedule (a manual `sync`), if no live lease
    /// holds it; creates the row if needed. Returns whether `owner` now holds it.
    pub async fn claim_job(
        &self,
        name: &str,
        owner: &str,
        now: OffsetDateTime,
        lease: Duration,
        full: bool,
    ) -> Result<bool, StoreError> {
        self.ensure_job(name, now).await?;
        let done = on_backend!(
            self,
            sql = "UPDATE jobs SET lease_owner = $1, lease_until = $2, last_started = $3, \
                   runs = runs + 1, last_full = CASE WHEN $5 THEN $3 ELSE last_full END \
                   WHERE name = $4 AND (lease_owner IS NULL OR lease_until < $3)",
            |sql, pool| {
                sqlx::query(sql)
                    .bind(owner)
                    .bind(to_ms(now + lease))
                    .bind(to_ms(now))
                    .bind(name)
                    .bind(full)
                    .execute(pool)
                    .await?
                    .rows_affected()
            }
        );
        Ok(done == 1)
    }

    /// Extends `owner`'s lease on job `name` to `now + lease`; `false` if the lease was lost.
    pub async fn renew_job(
        &self,
        name: &str,
        owner: &str,
        now: OffsetDateTime,
        lease: Duration,
    ) -> Result<bool, StoreError> {
        let done = on_backend!(
            self,
            sql = "UPDATE jobs SET lease_until = $1 WHERE name = $2 AND lease_owner = $3",
            |sql, pool| {
                sqlx::query(sql)
                    .bind(to_ms(now + lease))
                    .bind(name)
                    .bind(owner)
                    .execute(pool)
                    .await?
                    .rows_affected()
            }
        );
        Ok(done == 1)
    }

    /// Ends `owner`'s run of job `name` with `outcome` and frees the lease; `false` if the
    /// lease had been lost (the outcome is then not recorded).
    pub async fn finish_job(
        &self,
        name: &str,
        owner: &str,
        now: OffsetDateTime,
        outcome: &str,
    ) -> Result<bool, StoreError> {
        let done = on_backend!(
            self,
            sql = "UPDATE jobs SET lease_owner = NULL, lease_until = NULL, last_finished = $1, \
                   last_outcome = $2 WHERE name = $3 AND lease_owner = $4",
            |sql, pool| {
                sqlx::query(sql)
                    .bind(to_ms(now))
                    .bind(outcome)
                    .bind(name)
                    .bind(owner)
                    .execute(pool)
                    .await?
                    .rows_affected()
            }
        );
        Ok(done == 1)
    }

    /// Frees every lease `owner` holds (graceful shutdown); returns how many.
    pub async fn release_jobs(&self, owner: &str) -> Result<u64, StoreError> {
        let done = on_backend!(
            self,
            sql = "UPDATE jobs SET lease_owner = NULL, lease_until = NULL WHERE lease_owner = $1",
            |sql, pool| {
                sqlx::query(sql)
                    .bind(owner)
                    .execute(pool)
                    .await?
                    .rows_affected()
            }
        );
        Ok(done)
    }

    /// Asks for a run of job `name` (durably: whichever instance's scheduler looks next runs
    /// it). An earlier pending request is kept.
    pub async fn request_job(&self, name: &str, now: OffsetDateTime) -> Result<(), StoreError> {
        on_backend!(
            self,
            sql = "INSERT INTO jobs (name, created_at, requested_at) VALUES ($1, $2, $2) \
                   ON CONFLICT (name) DO UPDATE SET \
                   requested_at = COALESCE(jobs.requested_at, excluded.requested_at)",
            |sql, pool| {
                sqlx::query(sql)
                    .bind(name)
                    .bind(to_ms(now))
                    .execute(pool)
                    .await?;
            }
        );
        Ok(())
    }

    /// Takes up to `wanted` units from `brand`'s shared budget of `limit` requests per 60 s
    /// (see the module docs): how many were granted (0 when the budget is used up) and, when
    /// none, how long to wait. The units count in the current second, so they must be used at
    /// once. On SQLite — one instance by definition — it grants everything: the process's own
    /// rate controller is the only sender.
    pub async fn take_request_budget(
        &self,
        brand: &str,
        limit: u32,
        wanted: u32,
    ) -> Result<(u32, Duration), StoreError> {
        let Pool::Postgres(pool) = &self.pool else {
            return Ok((wanted, Duration::ZERO));
        };
        let mut tx = pool.begin().await?;
        sqlx::query(
            "SELECT pg_advisory_xact_lock(hashtextextended('ct-omnisend budget ' || $1, 0))",
        )
        .bind(brand)
        .execute(&mut *tx)
        .await?;
        // One statement reads the database clock, counts the window and (if there is room)
        // takes a unit, so every instance measures against the same clock.
        let row: (i64, i64, Option<i64>, i64) = sqlx::query_as(
            "WITH clock AS (SELECT (extract(epoch FROM clock_timestamp()) * 1000)::BIGINT AS ms), \
             win AS (SELECT COALESCE(SUM(used), 0)::BIGINT AS used, MIN(second) AS oldest \
                     FROM rate_budget, clock \
                     WHERE brand = $1 AND second > clock.ms / 1000 - $3), \
             granted AS (SELECT LEAST($4, $2 - win.used) AS n FROM win WHERE win.used < $2), \
             took AS (INSERT INTO rate_budget (brand, second, used) \
                      SELECT $1, clock.ms / 1000, granted.n FROM clock, granted \
                      ON CONFLICT (brand, second) DO UPDATE \
                      SET used = rate_budget.used + excluded.used \
                      RETURNING 1) \
             SELECT clock.ms, win.used, win.oldest, \
             COALESCE((SELECT n FROM granted), 0)::BIGINT * (SELECT COUNT(*) FROM took)::BIGINT \
             FROM clock, win",
        )
        .bind(brand)
        .bind(i64::from(limit))
        .bind(BUDGET_WINDOW_SECS)
        .bind(i64::from(wanted.max(1)))
        .fetch_one(&mut *tx)
        .await?;
        let (now_ms, _used, oldest, took) = row;
        // Buckets that can no longer count are dropped as we go.
        sqlx::query("DELETE FROM rate_budget WHERE brand = $1 AND second <= $2")
            .bind(brand)
            .bind(now_ms / 1000 - 2 * BUDGET_WINDOW_SECS)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        if took > 0 {
            return Ok((u32::try_from(took).unwrap_or(1), Duration::ZERO));
        }
        // The oldest counted second leaves the window at (oldest + window) s.
        let free_at_ms = oldest.map_or(now_ms + 1000, |s| (s + BUDGET_WINDOW_SECS) * 1000);
        let wait = u64::try_from((free_at_ms - now_ms).max(10)).unwrap_or(1000);
        Ok((0, Duration::from_millis(wait)))
    }
}

/// Queue sizes and ages for `/metrics` and the admin page, read with index-only queries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueGauges {
    /// Notifications stored but not processed yet.
    pub inbox_pending: i64,
    /// Receipt time of the oldest of them.
    pub inbox_oldest: Option<OffsetDateTime>,
    /// Outbox rows waiting to be sent.
    pub outbox_pending: i64,
    /// Outbox rows in a batch whose item results are not read yet.
    pub outbox_submitted: i64,
    /// Queueing time of the oldest pending or submitted row.
    pub outbox_oldest: Option<OffsetDateTime>,
}

impl StateStore {
    /// The current [`QueueGauges`].
    pub async fn queue_gauges(&self) -> Result<QueueGauges, StoreError> {
        let mut g = QueueGauges::default();
        let (inbox, oldest): (i64, Option<i64>) = on_backend!(
            self,
            sql = "SELECT COUNT(*), MIN(received_at) FROM inbox WHERE processed_at IS NULL",
            |sql, pool| sqlx::query_as(sql).fetch_one(pool).await?
        );
        g.inbox_pending = inbox;
        g.inbox_oldest = oldest.map(|ms| from_ms("received_at", ms)).transpose()?;
        let rows: Vec<(String, i64, Option<i64>)> = on_backend!(
            self,
            sql = "SELECT status, COUNT(*), MIN(created_at) FROM outbox \
                   WHERE status IN ('pending', 'submitted') GROUP BY status",
            |sql, pool| sqlx::query_as(sql).fetch_all(pool).await?
        );
        let mut oldest_ms: Option<i64> = None;
        for (status, n, min) in rows {
            if status == "pending" {
                g.outbox_pending = n;
            } else {
                g.outbox_submitted = n;
            }
            oldest_ms = match (oldest_ms, min) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        g.outbox_oldest = oldest_ms.map(|ms| from_ms("created_at", ms)).transpose()?;
        Ok(g)
    }
}

impl StateStore {
    /// Per (entity, route): when its last successful sync run finished.
    pub async fn last_successful_runs(
        &self,
    ) -> Result<Vec<(String, String, OffsetDateTime)>, StoreError> {
        let rows: Vec<(String, String, i64)> = on_backend!(
            self,
            sql = "SELECT entity, route, MAX(finished_at) FROM sync_runs \
                   WHERE outcome = 'ok' AND finished_at IS NOT NULL GROUP BY entity, route \
                   ORDER BY entity, route",
            |sql, pool| sqlx::query_as(sql).fetch_all(pool).await?
        );
        rows.into_iter()
            .map(|(e, r, ms)| Ok((e, r, from_ms("finished_at", ms)?)))
            .collect()
    }
}
