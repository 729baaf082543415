//! The per-brand Omnisend request budget shared by every instance on one PostgreSQL database
//! (issue 5): each [`omnisend::RateController`] of a brand gets a [`StoreBudget`], so a permit
//! also takes a unit from the brand's row in `rate_budget` (see
//! [`StateStore::take_request_budget`]). With SQLite (one instance) nothing is attached.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use omnisend::{BudgetDecision, OmnisendClient, SharedBudget};
use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};

use crate::store::{Backend, BudgetGrant, StateStore};

/// How long a sender waits before asking again when the database does not answer: no request
/// leaves uncounted, so an outage of the database pauses sending rather than risking the quota.
pub const UNAVAILABLE_RETRY: Duration = Duration::from_secs(1);

/// A brand's budget in the state store.
pub struct StoreBudget {
    store: StateStore,
    /// Hash of the brand's API key: the same brand on every instance, whatever its env var is
    /// called there, and no secret in the database.
    brand: String,
    limit: u32,
}

impl StoreBudget {
    /// The budget of the brand `api_key` with `limit` requests per 60 s.
    pub fn new(store: StateStore, api_key: &str, limit: u32) -> Self {
        let digest = Sha256::digest(api_key.as_bytes());
        StoreBudget {
            store,
            brand: hex::encode(&digest[..12]),
            limit,
        }
    }
}

impl SharedBudget for StoreBudget {
    fn take(&self) -> Pin<Box<dyn Future<Output = BudgetDecision> + Send + '_>> {
        Box::pin(async move {
            match self
                .store
                .take_request_budget(&self.brand, self.limit)
                .await
            {
                Ok(BudgetGrant::Granted) => BudgetDecision::Granted,
                Ok(BudgetGrant::Exhausted(wait)) => BudgetDecision::RetryAfter(wait),
                Err(e) => {
                    tracing::warn!(error = %e, "shared request budget unavailable; waiting");
                    BudgetDecision::RetryAfter(UNAVAILABLE_RETRY)
                }
            }
        })
    }
}

/// Attaches the shared budget to each client's rate controller when `store` is PostgreSQL
/// (several instances may share it); returns how many controllers got one.
pub fn share<'a>(
    store: &StateStore,
    clients: impl IntoIterator<Item = &'a OmnisendClient>,
) -> usize {
    if store.backend() != Backend::Postgres {
        return 0;
    }
    let mut attached = 0;
    for client in clients {
        let rate = client.rate();
        if rate.has_shared_budget() {
            continue;
        }
        let budget = StoreBudget::new(
            store.clone(),
            client.config().api_key.expose_secret(),
            rate.requests_per_minute(),
        );
        if rate.share_budget(Arc::new(budget)) {
            attached += 1;
        }
    }
    attached
}
