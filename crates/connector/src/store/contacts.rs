//! Contact state: which commercetools members make up which Omnisend contact.
//!
//! The contact sync merges several commercetools *members* — customers, and
//! guests (member ids starting with `guest:`) known only from their orders —
//! into one Omnisend contact per brand, identified by a *contact key*. Two
//! tables (migration `0003_contacts`) hold that state:
//!
//! * `contact_members` — one [`MemberRow`] per (brand, member id): the contact
//!   key the member is merged into, an optional *secondary* identifier (a
//!   value, e.g. a phone number, that only one contact may hold: the member
//!   with the smallest `(created_at, member_id)` owns it, see
//!   [`StateStore::members_by_secondary`]), the member's commercetools timestamps,
//!   the id of the last full run that saw it upstream (`seen_run`, for
//!   deletion detection as with [`StateStore::unseen_records`]) and `facts`:
//!   what the member contributes to the merged contact, as JSON.
//! * `contact_retired` — one [`RetiredRow`] per (brand, contact key) of a
//!   contact that was retired, with a reason and a JSON body.
//!
//! # Personal data
//!
//! `facts` contain personal data such as e-mail addresses, phone numbers and
//! names (a retired row's `body` may too, and so may the contact key and
//! `secondary` themselves). Erasing a person deletes their member rows
//! ([`StateStore::delete_members`]) — that is what removes the facts — and
//! blanks the payloads of their rejected records
//! ([`StateStore::scrub_rejected`]); retired rows are removed with
//! [`StateStore::delete_retired`].
//!
//! Key columns compare bytewise on both backends (Postgres columns are
//! `COLLATE "C"`), so orderings by member id or contact key match Rust's
//! `str` ordering.

use std::collections::HashMap;

use serde::Serialize;
use sqlx::types::Json;
use time::OffsetDateTime;

use super::rows::{StoreRow, from_ms, to_ms};
use super::{Backend, ID_CHUNK, Pool, StateStore, StoreError};

/// State of one member (customer or guest) of a contact, per brand.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MemberRow {
    /// Brand (Omnisend account) the member is synced to.
    pub brand: String,
    /// commercetools customer id, or `guest:…` for a guest.
    pub member_id: String,
    /// Key of the Omnisend contact the member is merged into.
    pub contact_key: String,
    /// Secondary identifier (e.g. a phone number) that only one contact may
    /// hold; see [`StateStore::members_by_secondary`].
    pub secondary: Option<String>,
    /// When the member was created (millisecond precision).
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When the member was last modified (millisecond precision).
    #[serde(with = "time::serde::rfc3339")]
    pub modified_at: OffsetDateTime,
    /// What the member contributes to the merged contact. **Personal data**:
    /// erasure deletes the row.
    pub facts: serde_json::Value,
    /// Id of the last full run that saw the member upstream.
    pub seen_run: Option<i64>,
}

/// A retired contact key of a brand.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RetiredRow {
    /// Brand (Omnisend account) of the contact.
    pub brand: String,
    /// Key of the retired contact.
    pub contact_key: String,
    /// Why the contact was retired.
    pub reason: String,
    /// JSON detail recorded with the retirement (may hold personal data).
    pub body: serde_json::Value,
    /// When the contact was retired (millisecond precision).
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// A member that [`StateStore::upsert_members`] moved to another contact key.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KeyChange {
    /// The member (of the upserted row's brand).
    pub member_id: String,
    /// The contact key the member had before the upsert.
    pub previous_key: String,
    /// The member's facts before the upsert.
    pub previous_facts: serde_json::Value,
}

/// Columns read by [`member_from_row`], for `concat!` into SQL.
macro_rules! member_columns {
    () => {
        "brand, member_id, contact_key, secondary, created_at, modified_at, facts, seen_run"
    };
}

/// Columns read by [`retired_from_row`].
macro_rules! retired_columns {
    () => {
        "brand, contact_key, reason, body, created_at"
    };
}

/// Upserts the rows of a JSON array `[{b, m, k, s, c, u, f, r}]` in one statement (SQLite; the
/// `WHERE true` resolves the parser ambiguity of `INSERT … SELECT … ON CONFLICT`).
const UPSERT_MEMBERS_SQLITE: &str = "INSERT INTO contact_members (brand, member_id, contact_key, \
     secondary, created_at, modified_at, facts, seen_run) \
     SELECT json_extract(value, '$.b'), json_extract(value, '$.m'), json_extract(value, '$.k'), \
     json_extract(value, '$.s'), json_extract(value, '$.c'), json_extract(value, '$.u'), \
     json_extract(value, '$.f'), json_extract(value, '$.r') FROM json_each($1) WHERE true \
     ON CONFLICT (brand, member_id) DO UPDATE SET \
     contact_key = excluded.contact_key, secondary = excluded.secondary, \
     created_at = excluded.created_at, modified_at = excluded.modified_at, \
     facts = excluded.facts, \
     seen_run = COALESCE(excluded.seen_run, contact_members.seen_run)";

/// [`UPSERT_MEMBERS_SQLITE`] for PostgreSQL.
const UPSERT_MEMBERS_POSTGRES: &str = "INSERT INTO contact_members (brand, member_id, \
     contact_key, secondary, created_at, modified_at, facts, seen_run) \
     SELECT x.b, x.m, x.k, x.s, x.c, x.u, x.f, x.r FROM jsonb_to_recordset($1::jsonb) \
     AS x(b text, m text, k text, s text, c bigint, u bigint, f jsonb, r bigint) \
     ON CONFLICT (brand, member_id) DO UPDATE SET \
     contact_key = excluded.contact_key, secondary = excluded.secondary, \
     created_at = excluded.created_at, modified_at = excluded.modified_at, \
     facts = excluded.facts, \
     seen_run = COALESCE(excluded.seen_run, contact_members.seen_run)";

fn time_col<R: StoreRow>(row: &R, column: &'static str) -> Result<OffsetDateTime, StoreError> {
    from_ms(column, row.int(column)?)
}

fn json_col<R: StoreRow>(row: &R, column: &'static str) -> Result<serde_json::Value, StoreError> {
    row.opt_json(column)?.ok_or_else(|| StoreError::Corrupt {
        column,
        value: "NULL".to_owned(),
    })
}

fn member_from_row<R: StoreRow>(row: &R) -> Result<MemberRow, StoreError> {
    Ok(MemberRow {
        brand: row.text("brand")?,
        member_id: row.text("member_id")?,
        contact_key: row.text("contact_key")?,
        secondary: row.opt_text("secondary")?,
        created_at: time_col(row, "created_at")?,
        modified_at: time_col(row, "modified_at")?,
        facts: json_col(row, "facts")?,
        seen_run: row.opt_int("seen_run")?,
    })
}

fn retired_from_row<R: StoreRow>(row: &R) -> Result<RetiredRow, StoreError> {
    Ok(RetiredRow {
        brand: row.text("brand")?,
        contact_key: row.text("contact_key")?,
        reason: row.text("reason")?,
        body: json_col(row, "body")?,
        created_at: time_col(row, "created_at")?,
    })
}

/// `values` sorted and without duplicates, so chunks never overlap.
fn distinct(values: &[String]) -> Vec<&str> {
    let mut out: Vec<&str> = values.iter().map(String::as_str).collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// A column members are looked up by.
#[derive(Clone, Copy)]
enum MemberColumn {
    ContactKey,
    Secondary,
}

impl StateStore {
    // ---- contact members ---------------------------------------------------------

    /// Inserts or replaces `rows` (keyed by brand and member id) in one
    /// transaction; `seen_run: None` keeps the stored run. Returns, in input
    /// order, the members that already existed with a *different* contact
    /// key, with that key and their facts before the upsert. (A member listed
    /// twice is compared against its first row the second time.)
    pub async fn upsert_members(&self, rows: &[MemberRow]) -> Result<Vec<KeyChange>, StoreError> {
        let mut changes = Vec::new();
        if rows.is_empty() {
            return Ok(changes);
        }
        // The last row per member wins (one statement may not touch a row twice).
        let mut last: HashMap<(&str, &str), usize> = HashMap::with_capacity(rows.len());
        for (i, r) in rows.iter().enumerate() {
            last.insert((r.brand.as_str(), r.member_id.as_str()), i);
        }
        let mut order: Vec<usize> = last.into_values().collect();
        order.sort_unstable();
        // Read-then-write in one transaction that takes the write lock up front, so a
        // concurrent writer cannot change a row between our read and our write (SQLite would
        // otherwise fail the upgrade with SQLITE_BUSY; Postgres locks the rows FOR UPDATE).
        // Each chunk is one statement to find the changed keys and one to write: a statement
        // per row costs a round trip to SQLite's worker thread each, which dominated the run.
        let begin = match self.backend() {
            Backend::Sqlite => "BEGIN IMMEDIATE",
            Backend::Postgres => "BEGIN",
        };
        let insert = match self.backend() {
            Backend::Sqlite => UPSERT_MEMBERS_SQLITE,
            Backend::Postgres => UPSERT_MEMBERS_POSTGRES,
        };
        on_backend!(
            self,
            // `CROSS JOIN` fixes the loop order for SQLite's planner: over the given pairs,
            // each looked up by primary key (the other order scans the table per pair).
            sqlite = "SELECT m.member_id, m.contact_key, m.facts FROM json_each($2) j \
                      CROSS JOIN contact_members m \
                      WHERE m.brand = $1 AND m.member_id = json_extract(j.value, '$[0]') \
                      AND m.contact_key <> json_extract(j.value, '$[1]')",
            postgres = "SELECT m.member_id, m.contact_key, m.facts FROM contact_members m \
                        JOIN jsonb_array_elements($2::jsonb) j ON m.member_id = j.value->>0 \
                        WHERE m.brand = $1 AND m.contact_key <> j.value->>1 FOR UPDATE OF m",
            |sql, pool| {
                let mut tx = pool.begin_with(begin).await?;
                for chunk in order.chunks(ID_CHUNK) {
                    let mut by_brand: HashMap<&str, Vec<[&str; 2]>> = HashMap::new();
                    for &i in chunk {
                        let r = &rows[i];
                        by_brand
                            .entry(r.brand.as_str())
                            .or_default()
                            .push([r.member_id.as_str(), r.contact_key.as_str()]);
                    }
                    for (brand, pairs) in by_brand {
                        let pairs = serde_json::to_string(&pairs)?;
                        let found = sqlx::query(sql)
                            .bind(brand)
                            .bind(pairs.as_str())
                            .fetch_all(&mut *tx)
                            .await?;
                        for previous in &found {
                            changes.push(KeyChange {
                                member_id: previous.text("member_id")?,
                                previous_key: previous.text("contact_key")?,
                                previous_facts: json_col(previous, "facts")?,
                            });
                        }
                    }
                    let batch: Vec<serde_json::Value> = chunk
                        .iter()
                        .map(|&i| {
                            let r = &rows[i];
                            serde_json::json!({
                                "b": r.brand, "m": r.member_id, "k": r.contact_key,
                                "s": r.secondary, "c": to_ms(r.created_at),
                                "u": to_ms(r.modified_at), "f": r.facts, "r": r.seen_run,
                            })
                        })
                        .collect();
                    let batch = serde_json::to_string(&batch)?;
                    sqlx::query(insert)
                        .bind(batch.as_str())
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
            }
        );
        // Reported in input order.
        let position: HashMap<&str, usize> = rows
            .iter()
            .enumerate()
            .map(|(i, r)| (r.member_id.as_str(), i))
            .collect();
        changes.sort_by_key(|c| position.get(c.member_id.as_str()).copied());
        Ok(changes)
    }

    /// The distinct secondary identifier values the members `member_ids` of `brand` hold now.
    pub async fn secondaries_of(
        &self,
        brand: &str,
        member_ids: &[String],
    ) -> Result<Vec<String>, StoreError> {
        let mut out = Vec::new();
        for chunk in distinct(member_ids).chunks(ID_CHUNK) {
            let ids = serde_json::to_string(chunk)?;
            on_backend!(
                self,
                sqlite = "SELECT DISTINCT secondary FROM contact_members WHERE brand = $1 \
                          AND secondary IS NOT NULL \
                          AND member_id IN (SELECT value FROM json_each($2))",
                postgres = "SELECT DISTINCT secondary FROM contact_members WHERE brand = $1 \
                            AND secondary IS NOT NULL \
                            AND member_id IN (SELECT jsonb_array_elements_text($2::jsonb))",
                |sql, pool| {
                    for row in sqlx::query(sql)
                        .bind(brand)
                        .bind(ids.as_str())
                        .fetch_all(pool)
                        .await?
                    {
                        out.push(row.text("secondary")?);
                    }
                }
            );
        }
        out.sort_unstable();
        out.dedup();
        Ok(out)
    }

    /// The member `member_id` of `brand`.
    pub async fn member(
        &self,
        brand: &str,
        member_id: &str,
    ) -> Result<Option<MemberRow>, StoreError> {
        on_backend!(
            self,
            sql = concat!(
                "SELECT ",
                member_columns!(),
                " FROM contact_members WHERE brand = $1 AND member_id = $2"
            ),
            |sql, pool| {
                sqlx::query(sql)
                    .bind(brand)
                    .bind(member_id)
                    .fetch_optional(pool)
                    .await?
                    .as_ref()
                    .map(member_from_row)
                    .transpose()
            }
        )
    }

    /// Deletes the members `member_ids` of `brand` (one transaction) and
    /// returns the rows that existed, ordered by member id. Ids without a row
    /// are ignored.
    pub async fn delete_members(
        &self,
        brand: &str,
        member_ids: &[String],
    ) -> Result<Vec<MemberRow>, StoreError> {
        let mut deleted = Vec::new();
        if member_ids.is_empty() {
            return Ok(deleted);
        }
        let member_ids = distinct(member_ids);
        on_backend!(
            self,
            sqlite = concat!(
                "DELETE FROM contact_members WHERE brand = $1 \
                 AND member_id IN (SELECT value FROM json_each($2)) RETURNING ",
                member_columns!()
            ),
            postgres = concat!(
                "DELETE FROM contact_members WHERE brand = $1 \
                 AND member_id IN (SELECT jsonb_array_elements_text($2::jsonb)) RETURNING ",
                member_columns!()
            ),
            |sql, pool| {
                let mut tx = pool.begin().await?;
                for chunk in member_ids.chunks(ID_CHUNK) {
                    for row in sqlx::query(sql)
                        .bind(brand)
                        .bind(serde_json::to_string(chunk)?)
                        .fetch_all(&mut *tx)
                        .await?
                    {
                        deleted.push(member_from_row(&row)?);
                    }
                }
                tx.commit().await?;
            }
        );
        // RETURNING order is unspecified.
        deleted.sort_by(|a, b| a.member_id.cmp(&b.member_id));
        Ok(deleted)
    }

    /// All members of `brand` whose contact key is in `keys`, ordered by
    /// (contact key, created_at, member id).
    pub async fn members_by_keys(
        &self,
        brand: &str,
        keys: &[String],
    ) -> Result<Vec<MemberRow>, StoreError> {
        let mut out = self
            .members_in(brand, keys, MemberColumn::ContactKey)
            .await?;
        // Chunks are sorted key ranges, so `out` is already in order; this
        // only guards the invariant (and is linear on sorted input).
        out.sort_by(|a, b| {
            (&a.contact_key, a.created_at, &a.member_id).cmp(&(
                &b.contact_key,
                b.created_at,
                &b.member_id,
            ))
        });
        Ok(out)
    }

    /// The distinct contact keys of `brand`'s members, sorted.
    pub async fn member_keys(&self, brand: &str) -> Result<Vec<String>, StoreError> {
        let keys = on_backend!(
            self,
            sql = "SELECT DISTINCT contact_key FROM contact_members WHERE brand = $1 \
                   ORDER BY contact_key",
            |sql, pool| {
                sqlx::query_scalar::<_, String>(sql)
                    .bind(brand)
                    .fetch_all(pool)
                    .await?
            }
        );
        Ok(keys)
    }

    /// Customer members of `brand` that full run `run_id` did not see
    /// (`seen_run` unset or another run), ordered by member id. Guests
    /// (`guest:…`) are never listed: they are not read by full runs.
    pub async fn unseen_members(
        &self,
        brand: &str,
        run_id: i64,
    ) -> Result<Vec<MemberRow>, StoreError> {
        on_backend!(
            self,
            sql = concat!(
                "SELECT ",
                member_columns!(),
                " FROM contact_members WHERE brand = $1 \
                 AND (seen_run IS NULL OR seen_run <> $2) \
                 AND substr(member_id, 1, 6) <> 'guest:' \
                 ORDER BY member_id"
            ),
            |sql, pool| {
                sqlx::query(sql)
                    .bind(brand)
                    .bind(run_id)
                    .fetch_all(pool)
                    .await?
                    .iter()
                    .map(member_from_row)
                    .collect()
            }
        )
    }

    /// Number of members of `brand`.
    pub async fn count_members(&self, brand: &str) -> Result<u64, StoreError> {
        let n = on_backend!(
            self,
            sql = "SELECT COUNT(*) FROM contact_members WHERE brand = $1",
            |sql, pool| {
                sqlx::query_scalar::<_, i64>(sql)
                    .bind(brand)
                    .fetch_one(pool)
                    .await?
            }
        );
        u64::try_from(n).map_err(|_| StoreError::Corrupt {
            column: "COUNT(*)",
            value: n.to_string(),
        })
    }

    // ---- retired contacts --------------------------------------------------------

    /// Inserts or replaces `rows` (keyed by brand and contact key) in one
    /// transaction.
    pub async fn put_retired(&self, rows: &[RetiredRow]) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        on_backend!(
            self,
            sql = "INSERT INTO contact_retired (brand, contact_key, reason, body, created_at) \
                   VALUES ($1, $2, $3, $4, $5) \
                   ON CONFLICT (brand, contact_key) DO UPDATE SET \
                   reason = excluded.reason, body = excluded.body, \
                   created_at = excluded.created_at",
            |sql, pool| {
                let mut tx = pool.begin().await?;
                for r in rows {
                    sqlx::query(sql)
                        .bind(&r.brand)
                        .bind(&r.contact_key)
                        .bind(&r.reason)
                        .bind(Json(&r.body))
                        .bind(to_ms(r.created_at))
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
            }
        );
        Ok(())
    }

    /// The keys of every pending retirement of `brand`, sorted (retried by every run until
    /// Omnisend confirms them).
    pub async fn retired_keys(&self, brand: &str) -> Result<Vec<String>, StoreError> {
        on_backend!(
            self,
            sql = "SELECT contact_key FROM contact_retired WHERE brand = $1 ORDER BY contact_key",
            |sql, pool| {
                let rows = sqlx::query(sql).bind(brand).fetch_all(pool).await?;
                rows.iter()
                    .map(|r| r.text("contact_key").map_err(StoreError::from))
                    .collect::<Result<Vec<_>, _>>()
            }
        )
    }

    /// Every member of `brand` holding one of the secondary identifier `values` (whatever
    /// contact it belongs to), ordered by (secondary, created_at, member_id).
    pub async fn members_by_secondary(
        &self,
        brand: &str,
        values: &[String],
    ) -> Result<Vec<MemberRow>, StoreError> {
        self.members_in(brand, values, MemberColumn::Secondary)
            .await
    }

    /// The members of `brand` whose `column` is one of `values`, in chunks, each chunk ordered
    /// by (column, created_at, member_id).
    async fn members_in(
        &self,
        brand: &str,
        values: &[String],
        column: MemberColumn,
    ) -> Result<Vec<MemberRow>, StoreError> {
        macro_rules! select_in {
            ($col:literal) => {
                (
                    concat!(
                        "SELECT ",
                        member_columns!(),
                        " FROM contact_members WHERE brand = $1 AND ",
                        $col,
                        " IN (SELECT value FROM json_each($2)) ORDER BY ",
                        $col,
                        ", created_at, member_id"
                    ),
                    concat!(
                        "SELECT ",
                        member_columns!(),
                        " FROM contact_members WHERE brand = $1 AND ",
                        $col,
                        " IN (SELECT jsonb_array_elements_text($2::jsonb)) ORDER BY ",
                        $col,
                        ", created_at, member_id"
                    ),
                )
            };
        }
        let (sqlite, postgres) = match column {
            MemberColumn::ContactKey => select_in!("contact_key"),
            MemberColumn::Secondary => select_in!("secondary"),
        };
        let mut out = Vec::new();
        for chunk in distinct(values).chunks(ID_CHUNK) {
            let values = serde_json::to_string(chunk)?;
            on_backend!(self, sqlite = sqlite, postgres = postgres, |sql, pool| {
                for row in sqlx::query(sql)
                    .bind(brand)
                    .bind(values.as_str())
                    .fetch_all(pool)
                    .await?
                {
                    out.push(member_from_row(&row)?);
                }
            });
        }
        Ok(out)
    }

    /// The retired rows of `keys` for `brand`, keyed by contact key. Keys
    /// that are not retired are absent.
    pub async fn retired(
        &self,
        brand: &str,
        keys: &[String],
    ) -> Result<HashMap<String, RetiredRow>, StoreError> {
        let mut out = HashMap::with_capacity(keys.len());
        for chunk in distinct(keys).chunks(ID_CHUNK) {
            let keys = serde_json::to_string(chunk)?;
            on_backend!(
                self,
                sqlite = concat!(
                    "SELECT ",
                    retired_columns!(),
                    " FROM contact_retired WHERE brand = $1 \
                     AND contact_key IN (SELECT value FROM json_each($2))"
                ),
                postgres = concat!(
                    "SELECT ",
                    retired_columns!(),
                    " FROM contact_retired WHERE brand = $1 \
                     AND contact_key IN (SELECT jsonb_array_elements_text($2::jsonb))"
                ),
                |sql, pool| {
                    for row in sqlx::query(sql)
                        .bind(brand)
                        .bind(keys.as_str())
                        .fetch_all(pool)
                        .await?
                    {
                        let retired = retired_from_row(&row)?;
                        out.insert(retired.contact_key.clone(), retired);
                    }
                }
            );
        }
        Ok(out)
    }

    /// Removes the retired rows of `keys` for `brand` (one transaction).
    /// Keys that are not retired are ignored.
    pub async fn delete_retired(&self, brand: &str, keys: &[String]) -> Result<(), StoreError> {
        if keys.is_empty() {
            return Ok(());
        }
        on_backend!(
            self,
            sqlite = "DELETE FROM contact_retired WHERE brand = $1 \
                      AND contact_key IN (SELECT value FROM json_each($2))",
            postgres = "DELETE FROM contact_retired WHERE brand = $1 \
                        AND contact_key IN (SELECT jsonb_array_elements_text($2::jsonb))",
            |sql, pool| {
                let mut tx = pool.begin().await?;
                for chunk in keys.chunks(ID_CHUNK) {
                    sqlx::query(sql)
                        .bind(brand)
                        .bind(serde_json::to_string(chunk)?)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
            }
        );
        Ok(())
    }

    // ---- erasure -----------------------------------------------------------------

    /// Data erasure of one commercetools record in the rejected-records log:
    /// on every rejection of (`entity`, `ct_id`), under any route, open or
    /// resolved, sets the payload to NULL, and resolves the open ones at
    /// `at`. Returns the number of rows touched.
    pub async fn scrub_rejected(
        &self,
        entity: &str,
        ct_id: &str,
        at: OffsetDateTime,
    ) -> Result<u64, StoreError> {
        let touched = on_backend!(
            self,
            sql = "UPDATE rejected_records SET payload = NULL, \
                   resolved_at = COALESCE(resolved_at, $3) \
                   WHERE entity = $1 AND ct_id = $2",
            |sql, pool| {
                sqlx::query(sql)
                    .bind(entity)
                    .bind(ct_id)
                    .bind(to_ms(at))
                    .execute(pool)
                    .await?
                    .rows_affected()
            }
        );
        Ok(touched)
    }
}
