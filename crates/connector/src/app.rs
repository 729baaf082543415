//! Wiring: builds the API clients and per-brand sinks from the checked settings.

use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, Mutex};

use commercetools::{CtClient, CtConfig};
use omnisend::{OmnisendClient, OmnisendConfig, RateController};
use secrecy::SecretString;

use crate::config::Settings;
use crate::sync::sink::{DryRun, Sink};

/// Why the clients could not be built.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// A credential is missing.
    #[error("{0}")]
    MissingCredential(String),
    /// Client construction failed.
    #[error("{0}")]
    Client(String),
}

/// The commercetools client for these settings.
pub fn commercetools_client(settings: &Settings) -> Result<CtClient, AppError> {
    let ct = &settings.commercetools;
    let client_id = ct.client_id.clone().ok_or_else(|| {
        AppError::MissingCredential(
            "commercetools client id is not set (CTP_CLIENT_ID or commercetools.client_id)".into(),
        )
    })?;
    let client_secret = ct.client_secret.clone().ok_or_else(|| {
        AppError::MissingCredential(
            "commercetools client secret is not set (CTP_CLIENT_SECRET)".into(),
        )
    })?;
    CtClient::new(CtConfig {
        project_key: ct.project_key.clone(),
        api_url: ct.api_url.clone(),
        auth_url: ct.auth_url.clone(),
        client_id,
        client_secret,
        scopes: ct.scopes.clone(),
        timeout: ct.timeout,
        max_retries: 5,
    })
    .map_err(|e| AppError::Client(e.to_string()))
}

/// Output of `--dry-run`.
pub type DryRunOutput = Arc<Mutex<Box<dyn Write + Send>>>;

/// One sink per store route. Stores sharing an API key (one brand) share one rate controller,
/// so together they stay under `requests_per_minute`. With `dry_run`, nothing is sent and no
/// API key is needed.
pub fn sinks(
    settings: &Settings,
    env: &dyn Fn(&str) -> Option<String>,
    dry_run: Option<DryRunOutput>,
) -> Result<HashMap<String, Sink>, AppError> {
    let mut by_key: HashMap<String, OmnisendClient> = HashMap::new();
    let mut out = HashMap::new();
    for store in &settings.stores {
        let sink = match &dry_run {
            Some(w) => Sink::DryRun(DryRun::new(w.clone(), &store.key)),
            None => {
                let key = env(&store.omnisend_api_key_env)
                    .filter(|k| !k.is_empty())
                    .ok_or_else(|| {
                        AppError::MissingCredential(format!(
                            "stores[{}]: the Omnisend API key variable {} is not set",
                            store.key, store.omnisend_api_key_env
                        ))
                    })?;
                let client = match by_key.get(&key) {
                    Some(c) => c.clone(),
                    None => {
                        let client = omnisend_client(settings, key.clone())?;
                        by_key.insert(key, client.clone());
                        client
                    }
                };
                Sink::Live(client)
            }
        };
        out.insert(store.key.clone(), sink);
    }
    Ok(out)
}

/// One live sink per store route from the per-brand clients of [`brand_clients`] (keyed by the
/// brand id, the route's API key variable): what `serve`'s scheduled syncs and the admin page's
/// replays write through. Routes whose brand has no client are left out.
pub fn live_sinks(
    settings: &Settings,
    clients: &HashMap<String, OmnisendClient>,
) -> HashMap<String, Sink> {
    settings
        .stores
        .iter()
        .filter_map(|s| {
            let client = clients.get(&s.omnisend_api_key_env)?;
            Some((s.key.clone(), Sink::Live(client.clone())))
        })
        .collect()
}

/// One Omnisend client per brand, keyed by the brand id (its API key variable), each with its
/// own rate controller: what `serve` and `sync orders` deliver events with.
pub fn brand_clients(
    settings: &Settings,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<HashMap<String, OmnisendClient>, AppError> {
    let brands = settings
        .brands(None)
        .map_err(|e| AppError::Client(e.to_string()))?;
    let mut out = HashMap::new();
    for brand in brands {
        let key = env(&brand.id).filter(|k| !k.is_empty()).ok_or_else(|| {
            AppError::MissingCredential(format!(
                "the Omnisend API key variable {} is not set",
                brand.id
            ))
        })?;
        out.insert(brand.id.clone(), omnisend_client(settings, key)?);
    }
    Ok(out)
}

/// An Omnisend client for one brand's API key, with its own rate controller.
pub fn omnisend_client(settings: &Settings, api_key: String) -> Result<OmnisendClient, AppError> {
    let o = &settings.omnisend;
    OmnisendClient::new(
        OmnisendConfig {
            api_url: o.api_url.clone(),
            api_key: SecretString::from(api_key),
            timeout: o.timeout,
            max_attempts: o.max_attempts,
            batch_poll_interval: o.batch_poll_interval,
            origin: "ct-omnisend".into(),
            priority: false,
        },
        RateController::new(o.requests_per_minute, o.burst),
    )
    .map_err(|e| AppError::Client(e.to_string()))
}
