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

use crate::store::{Backend, StateStore};

/// How long a sender waits before asking again when the database does not answer: no request
/// leaves uncounted, so an outage of the database pauses sending rather than risking the quota.
pub const UNAVAILABLE_RETRY: Duration = Duration::from_secs(1);

/// How long units taken in advance stay usable: they count in the second they were taken,
/// and the budget's window has 2 s to spare for the way from the grant to Omnisend.
pub const RESERVOIR_TTL: Duration = Duration::from_millis(500);

/// A brand's budget in the state store.
pub struct StoreBudget {
    store: StateStore,
    /// Hash of the brand's API key: the same brand on every instance, whatever its env var is
    /// called there, and no secret in the database.
    brand: String,
    limit: u32,
    /// Units taken per database round trip: 1 at Omnisend's usual limits (so no instance holds
    /// back units others could use), up to 16 when the limit is high (≥ 9,600/min), where one
    /// transaction per request would make the advisory lock the bottleneck.
    chunk: u32,
    /// Units taken in advance and when.
    reservoir: tokio::sync::Mutex<(u32, Option<std::time::Instant>)>,
}

impl StoreBudget {
    /// The budget of the brand `api_key` with `limit` requests per 60 s.
    pub fn new(store: StateStore, api_key: &str, limit: u32) -> Self {
        let digest = Sha256::digest(api_key.as_bytes());
        StoreBudget {
            store,
            brand: hex::encode(&digest[..12]),
            limit,
            chunk: (limit / 600).clamp(1, 16),
            reservoir: tokio::sync::Mutex::new((0, None)),
        }
    }
}

impl SharedBudget for StoreBudget {
    fn take(&self) -> Pin<Box<dyn Future<Output = BudgetDecision> + Send + '_>> {
        Box::pin(async move {
            let mut reservoir = self.reservoir.lock().await;
            if reservoir.0 > 0 && reservoir.1.is_some_and(|t| t.elapsed() < RESERVOIR_TTL) {
                reservoir.0 -= 1;
                return BudgetDecision::Granted;
            }
            match self
                .store
                .take_request_budget(&self.brand, self.limit, self.chunk)
                .await
            {
                Ok((0, wait)) => BudgetDecision::RetryAfter(wait),
                Ok((n, _)) => {
                    *reservoir = (n - 1, Some(std::time::Instant::now()));
                    BudgetDecision::Granted
                }
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
