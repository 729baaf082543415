//! Replaying rejected records: `ct-omnisend rejected replay` and the admin page's **Replay**
//! buttons. Each record goes back to the part of the connector it came from:
//!
//! * `event` records: queued again in the outbox ([`crate::events::deliver::replay`]);
//! * contact records (`customer`, `guest`, `contact`, `contacts`): re-read and merged again
//!   ([`ContactSync::replay`]);
//! * everything else (`categories`, `products`, and records that cannot be replayed, which
//!   stay open): [`CatalogSync::replay`].

use std::collections::HashMap;

use commercetools::CtClient;

use crate::config::Settings;
use crate::events::deliver::{self, EVENT};
use crate::store::{RejectedFilter, StateStore, StoreError};
use crate::sync::SyncError;
use crate::sync::catalog::{CatalogSync, ReplayOutcome};
use crate::sync::contacts::ContactSync;
use crate::sync::sink::Sink;

/// Which rejected records to replay.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// The open record with this id.
    One(i64),
    /// Every open record.
    All,
}

/// Why a replay did not run.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// No rejected record has this id.
    #[error("no rejected record with id {0}")]
    NotFound(i64),
    /// The record is resolved already.
    #[error("rejected record {0} is already resolved")]
    AlreadyResolved(i64),
    /// Reading commercetools, writing Omnisend or the state store failed.
    #[error(transparent)]
    Sync(#[from] SyncError),
}

impl From<StoreError> for ReplayError {
    fn from(e: StoreError) -> Self {
        ReplayError::Sync(SyncError::Store(e))
    }
}

/// Replays `target` through `sinks` (one per store route, as for a sync) and returns what
/// happened to each record. A record that goes through is resolved; one that fails again stays
/// open with the new reason (`resolved: false`).
pub async fn replay(
    settings: &Settings,
    store: &StateStore,
    ct: &CtClient,
    sinks: &HashMap<String, Sink>,
    target: Target,
) -> Result<Vec<ReplayOutcome>, ReplayError> {
    let contacts = ContactSync::new(ct.clone(), store.clone(), settings.clone(), sinks.clone());
    let catalog = CatalogSync::new(ct.clone(), store.clone(), settings.clone(), sinks.clone());
    match target {
        Target::One(id) => {
            let r = store.rejected(id).await?.ok_or(ReplayError::NotFound(id))?;
            if r.resolved_at.is_some() {
                return Err(ReplayError::AlreadyResolved(id));
            }
            if r.entity == EVENT {
                Ok(deliver::replay(store, &[r]).await?)
            } else if ContactSync::handles(&r.entity) {
                Ok(contacts.replay(&[r]).await?)
            } else {
                Ok(catalog.replay(Some(id)).await?)
            }
        }
        Target::All => {
            let mut outcomes = catalog.replay(None).await?;
            let open = store
                .list_rejected(&RejectedFilter {
                    entity: None,
                    route: None,
                    open_only: true,
                    limit: i64::MAX,
                })
                .await?;
            let mine: Vec<_> = open
                .iter()
                .filter(|r| ContactSync::handles(&r.entity))
                .cloned()
                .collect();
            outcomes.extend(contacts.replay(&mine).await?);
            outcomes.extend(deliver::replay(store, &open).await?);
            Ok(outcomes)
        }
    }
}
