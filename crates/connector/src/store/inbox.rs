//! The inbox: change notifications stored durably before their webhook is acknowledged
//! (issue 4, "ingest is durable before it answers"), once per delivery and once per
//! (resource, message type, sequence number).
//!
//! `ct-omnisend serve` stores every accepted notification here in one statement and answers 2xx
//! only when that succeeded; the processor (`events::process`) takes due entries in arrival
//! order and marks them processed, or due again after a backoff. Dedup lives in the unique indexes, so two instances
//! storing the same notification at once cannot both insert it.

use std::time::Duration;

use serde::Serialize;
use sqlx::types::Json;

use time::OffsetDateTime;

use super::rows::{StoreRow, from_ms, to_ms};
use super::{Pool, StateStore, StoreError};

/// A notification to store.
#[derive(Debug, Clone, PartialEq)]
pub struct NewInboxEntry {
    /// Delivery id (Pub/Sub `messageId`, CloudEvents `id`, or derived by `ingest`).
    pub delivery_id: String,
    /// `commercetools` or `storefront`.
    pub source: String,
    /// commercetools `typeId`, e.g. `order`.
    pub resource_type: String,
    /// commercetools id.
    pub resource_id: String,
    /// Message type or notification type, e.g. `OrderCreated`, `ResourceUpdated`.
    pub kind: String,
    /// The message's per-resource sequence number, when it has one.
    pub sequence_number: Option<i64>,
    /// The resource version the notification describes.
    pub resource_version: Option<i64>,
    /// The notification as received.
    pub payload: serde_json::Value,
    /// When it arrived.
    pub received_at: OffsetDateTime,
}

/// What storing a notification did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Stored {
    /// Stored as a new entry with this id.
    New(i64),
    /// Already stored (same delivery id, or the same change under another id): nothing done.
    Duplicate,
}

/// A stored notification.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InboxEntry {
    /// Entry id (arrival order).
    pub id: i64,
    /// Delivery id.
    pub delivery_id: String,
    /// Source.
    pub source: String,
    /// Resource type.
    pub resource_type: String,
    /// Resource id.
    pub resource_id: String,
    /// Kind.
    pub kind: String,
    /// Sequence number.
    pub sequence_number: Option<i64>,
    /// Resource version.
    pub resource_version: Option<i64>,
    /// Payload.
    pub payload: serde_json::Value,
    /// Arrival.
    #[serde(with = "time::serde::rfc3339")]
    pub received_at: OffsetDateTime,
    /// Processing attempts so far.
    pub attempts: i64,
    /// Last processing error.
    pub last_error: Option<String>,
}

fn entry_from_row<R: StoreRow>(row: &R) -> Result<InboxEntry, StoreError> {
    Ok(InboxEntry {
        id: row.int("id")?,
        delivery_id: row.text("delivery_id")?,
        source: row.text("source")?,
        resource_type: row.text("resource_type")?,
        resource_id: row.text("resource_id")?,
        kind: row.text("kind")?,
        sequence_number: row.opt_int("sequence_number")?,
        resource_version: row.opt_int("resource_version")?,
        payload: row.opt_json("payload")?.unwrap_or(serde_json::Value::Null),
        received_at: from_ms("received_at", row.int("received_at")?)?,
        attempts: row.int("attempts")?,
        last_error: row.opt_text("last_error")?,
    })
}

/// The ids [`StateStore::claim_notifications`] may take ($1 limit, $2 now, $3 owner).
macro_rules! claimable_inbox {
    () => {
        "SELECT i.id FROM inbox i WHERE i.processed_at IS NULL \
         AND (i.next_attempt_at IS NULL OR i.next_attempt_at <= $2) \
         AND (i.lease_owner IS NULL OR i.lease_owner = $3 OR i.lease_until < $2) \
         AND NOT EXISTS (SELECT 1 FROM inbox o WHERE o.resource_type = i.resource_type \
         AND o.resource_id = i.resource_id AND o.processed_at IS NULL \
         AND o.lease_owner IS NOT NULL AND o.lease_owner <> $3 AND o.lease_until >= $2) \
         ORDER BY i.id LIMIT $1"
    };
}

impl StateStore {
    /// Stores a notification unless it is already there (one statement: durable when it
    /// returns).
    pub async fn store_notification(&self, e: &NewInboxEntry) -> Result<Stored, StoreError> {
        let id: Option<i64> = on_backend!(
            self,
            sql = "INSERT INTO inbox (delivery_id, source, resource_type, resource_id, kind, \
                   sequence_number, resource_version, payload, received_at) \
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
                   ON CONFLICT DO NOTHING RETURNING id",
            |sql, pool| {
                sqlx::query_scalar::<_, i64>(sql)
                    .bind(&e.delivery_id)
                    .bind(&e.source)
                    .bind(&e.resource_type)
                    .bind(&e.resource_id)
                    .bind(&e.kind)
                    .bind(e.sequence_number)
                    .bind(e.resource_version)
                    .bind(Json(&e.payload))
                    .bind(to_ms(e.received_at))
                    .fetch_optional(pool)
                    .await?
            }
        );
        Ok(id.map_or(Stored::Duplicate, Stored::New))
    }

    /// Up to `limit` entries still to process whose next attempt is due at `now`, oldest
    /// first (entries that failed wait for their backoff; see
    /// [`StateStore::retry_notification`]).
    pub async fn due_notifications(
        &self,
        now: OffsetDateTime,
        limit: i64,
    ) -> Result<Vec<InboxEntry>, StoreError> {
        let rows = on_backend!(
            self,
            sql = "SELECT id, delivery_id, source, resource_type, resource_id, kind, \
                   sequence_number, resource_version, payload, received_at, attempts, \
                   last_error FROM inbox WHERE processed_at IS NULL \
                   AND (next_attempt_at IS NULL OR next_attempt_at <= $2) ORDER BY id LIMIT $1",
            |sql, pool| {
                sqlx::query(sql)
                    .bind(limit)
                    .bind(to_ms(now))
                    .fetch_all(pool)
                    .await?
                    .iter()
                    .map(entry_from_row)
                    .collect::<Result<Vec<_>, _>>()?
            }
        );
        Ok(rows)
    }

    /// Claims up to `limit` due entries (as [`StateStore::due_notifications`]) for `owner`
    /// until `now + lease`, oldest first: entries another owner holds under a live lease are
    /// skipped, and so are the other entries of their resource, so that one resource's
    /// notifications stay with one instance and in order. On PostgreSQL concurrent claims skip
    /// each other's rows (`FOR UPDATE SKIP LOCKED`). Two claims racing for different entries of
    /// one resource may both succeed: processing stays correct (the ledger keeps events once),
    /// only the work is done twice.
    pub async fn claim_notifications(
        &self,
        now: OffsetDateTime,
        limit: i64,
        owner: &str,
        lease: Duration,
    ) -> Result<Vec<InboxEntry>, StoreError> {
        let mut rows = on_backend!(
            self,
            sqlite = concat!(
                "UPDATE inbox SET lease_owner = $3, lease_until = $4 WHERE id IN (",
                claimable_inbox!(),
                ") RETURNING id, delivery_id, source, resource_type, resource_id, kind, \
                 sequence_number, resource_version, payload, received_at, attempts, last_error"
            ),
            postgres = concat!(
                "UPDATE inbox SET lease_owner = $3, lease_until = $4 WHERE id IN (",
                claimable_inbox!(),
                " FOR UPDATE SKIP LOCKED) RETURNING id, delivery_id, source, resource_type, \
                 resource_id, kind, sequence_number, resource_version, payload, received_at, \
                 attempts, last_error"
            ),
            |sql, pool| {
                sqlx::query(sql)
                    .bind(limit)
                    .bind(to_ms(now))
                    .bind(owner)
                    .bind(to_ms(now + lease))
                    .fetch_all(pool)
                    .await?
                    .iter()
                    .map(entry_from_row)
                    .collect::<Result<Vec<_>, _>>()?
            }
        );
        rows.sort_by_key(|e| e.id);
        Ok(rows)
    }

    /// Frees every inbox claim of `owner` (graceful shutdown); returns how many.
    pub async fn release_notifications(&self, owner: &str) -> Result<u64, StoreError> {
        let n = on_backend!(
            self,
            sql = "UPDATE inbox SET lease_owner = NULL, lease_until = NULL \
                   WHERE lease_owner = $1 AND processed_at IS NULL",
            |sql, pool| {
                sqlx::query(sql)
                    .bind(owner)
                    .execute(pool)
                    .await?
                    .rows_affected()
            }
        );
        Ok(n)
    }

    /// Records a failed processing attempt; the entry stays pending and is due again at
    /// `next_attempt_at` (for any instance: its claim is freed).
    pub async fn retry_notification(
        &self,
        id: i64,
        error: &str,
        next_attempt_at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        on_backend!(
            self,
            sql = "UPDATE inbox SET attempts = attempts + 1, last_error = $2, \
                   next_attempt_at = $3, lease_owner = NULL, lease_until = NULL WHERE id = $1",
            |sql, pool| {
                sqlx::query(sql)
                    .bind(id)
                    .bind(error)
                    .bind(to_ms(next_attempt_at))
                    .execute(pool)
                    .await?;
            }
        );
        Ok(())
    }

    /// Marks an entry processed.
    pub async fn mark_notification_processed(
        &self,
        id: i64,
        at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        on_backend!(
            self,
            sql = "UPDATE inbox SET processed_at = $2, attempts = attempts + 1, last_error = NULL \
                   WHERE id = $1",
            |sql, pool| {
                sqlx::query(sql)
                    .bind(id)
                    .bind(to_ms(at))
                    .execute(pool)
                    .await?;
            }
        );
        Ok(())
    }

    /// Entries still to process (the queue depth `status` reports).
    pub async fn count_pending_notifications(&self) -> Result<i64, StoreError> {
        on_backend!(
            self,
            sql = "SELECT COUNT(*) FROM inbox WHERE processed_at IS NULL",
            |sql, pool| Ok(sqlx::query_scalar::<_, i64>(sql).fetch_one(pool).await?)
        )
    }
}
