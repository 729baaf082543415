//! OAuth2 client-credentials token cache for the commercetools API.
//!
//! One cache per [`crate::client::CtClient`] (shared by all its clones): tokens are fetched
//! with single-flight refresh (a mutex around refresh, re-checked after acquiring it),
//! refreshed proactively once 80 % of `expires_in` has elapsed, and invalidated on a 401 so
//! that exactly one refresh happens even with many concurrent callers.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use tokio::time::Instant;

use crate::error::{CtError, ErrorBody};
use crate::retry::{
    AttemptError, BackoffPolicy, RetryDecision, classify_status, classify_transport,
    transport_failure, with_retries,
};

/// Fraction of `expires_in` after which a token is refreshed proactively.
pub const REFRESH_AFTER_FRACTION: f64 = 0.8;
/// `expires_in` assumed when the token response omits it.
const DEFAULT_EXPIRES_IN: u64 = 3600;

/// A cached access token.
pub(crate) struct AccessToken {
    /// The bearer token.
    pub(crate) secret: SecretString,
    /// Identity of this token within its cache (for [`TokenCache::invalidate`]).
    generation: u64,
    /// When to refresh proactively.
    refresh_at: Instant,
    /// When the token expires.
    expires_at: Instant,
}

/// The token endpoint's success response.
#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
    #[serde(default)]
    #[allow(dead_code)]
    scope: Option<String>,
    #[serde(default)]
    #[allow(dead_code)]
    token_type: Option<String>,
}

/// Shared token cache (see the module docs).
pub(crate) struct TokenCache {
    http: reqwest::Client,
    auth_url: String,
    token_url: String,
    client_id: String,
    client_secret: SecretString,
    scopes: Option<String>,
    backoff: BackoffPolicy,
    requests: Arc<AtomicU64>,
    current: RwLock<Option<Arc<AccessToken>>>,
    refresh_lock: tokio::sync::Mutex<()>,
    generation: AtomicU64,
    fetched: AtomicU64,
}

impl TokenCache {
    /// A cache fetching from `{auth_url}/oauth/token`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        http: reqwest::Client,
        auth_url: &str,
        client_id: String,
        client_secret: SecretString,
        scopes: Option<String>,
        backoff: BackoffPolicy,
        requests: Arc<AtomicU64>,
    ) -> Self {
        let auth_url = auth_url.trim_end_matches('/').to_string();
        Self {
            http,
            token_url: format!("{auth_url}/oauth/token"),
            auth_url,
            client_id,
            client_secret,
            scopes: scopes.filter(|s| !s.trim().is_empty()),
            backoff,
            requests,
            current: RwLock::new(None),
            refresh_lock: tokio::sync::Mutex::new(()),
            generation: AtomicU64::new(0),
            fetched: AtomicU64::new(0),
        }
    }

    /// Number of tokens fetched successfully so far.
    pub(crate) fn fetched(&self) -> u64 {
        self.fetched.load(Ordering::Relaxed)
    }

    fn cached(&self) -> Option<Arc<AccessToken>> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// A valid token: the cached one while fresh, otherwise a newly fetched one
    /// (single flight: concurrent callers wait for the one refresh in progress).
    pub(crate) async fn token(&self) -> Result<Arc<AccessToken>, CtError> {
        if let Some(t) = self.cached()
            && Instant::now() < t.refresh_at
        {
            return Ok(t);
        }
        let _guard = self.refresh_lock.lock().await;
        let stale = self.cached();
        if let Some(t) = &stale
            && Instant::now() < t.refresh_at
        {
            return Ok(t.clone());
        }
        match self.fetch().await {
            Ok(t) => {
                *self.current.write().unwrap_or_else(|p| p.into_inner()) = Some(t.clone());
                Ok(t)
            }
            Err(e) => match stale {
                // A proactive refresh failed transiently: keep using the still valid token.
                Some(t) if e.is_transient() && Instant::now() < t.expires_at => {
                    tracing::warn!(error = %e, "commercetools token refresh failed; using the current token until it expires");
                    Ok(t)
                }
                _ => Err(e),
            },
        }
    }

    /// Drops `token` from the cache if it is still the cached one (after the API rejected it
    /// with 401); a newer token is left alone, so concurrent callers cause one refresh only.
    pub(crate) fn invalidate(&self, token: &AccessToken) {
        let mut current = self.current.write().unwrap_or_else(|p| p.into_inner());
        if current
            .as_ref()
            .is_some_and(|c| c.generation == token.generation)
        {
            *current = None;
        }
    }

    async fn fetch(&self) -> Result<Arc<AccessToken>, CtError> {
        let started = Instant::now();
        let resp: TokenResponse =
            with_retries(&self.backoff, "commercetools token", || self.fetch_once()).await?;
        let expires_in = Duration::from_secs(resp.expires_in.unwrap_or(DEFAULT_EXPIRES_IN));
        let generation = self.generation.fetch_add(1, Ordering::Relaxed) + 1;
        self.fetched.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(
            expires_in_s = expires_in.as_secs(),
            "fetched a commercetools access token"
        );
        Ok(Arc::new(AccessToken {
            secret: SecretString::from(resp.access_token),
            generation,
            refresh_at: started + expires_in.mul_f64(REFRESH_AFTER_FRACTION),
            expires_at: started + expires_in,
        }))
    }

    async fn fetch_once(&self) -> Result<TokenResponse, AttemptError> {
        let mut form: Vec<(&str, &str)> = vec![("grant_type", "client_credentials")];
        if let Some(s) = &self.scopes {
            form.push(("scope", s.as_str()));
        }
        self.requests.fetch_add(1, Ordering::Relaxed);
        let result = self
            .http
            .post(&self.token_url)
            .basic_auth(&self.client_id, Some(self.client_secret.expose_secret()))
            .form(&form)
            .send()
            .await;
        let resp = match result {
            Ok(r) => r,
            Err(e) => {
                return Err(AttemptError {
                    retry: classify_transport(transport_failure(&e)),
                    error: CtError::unreachable(&self.token_url, &e),
                });
            }
        };
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = match resp.bytes().await {
            Ok(b) => b,
            Err(e) => {
                return Err(AttemptError {
                    retry: classify_transport(transport_failure(&e)),
                    error: CtError::unreachable(&self.token_url, &e),
                });
            }
        };
        if (200..300).contains(&status) {
            return serde_json::from_slice::<TokenResponse>(&body).map_err(|e| AttemptError {
                retry: RetryDecision::DontRetry,
                // Never echo the body: it contains the token.
                error: CtError::Decode {
                    path: "oauth/token".into(),
                    message: format!(
                        "unexpected token response from {} ({:?} error at line {} column {})",
                        self.auth_url,
                        e.classify(),
                        e.line(),
                        e.column()
                    ),
                },
            });
        }
        let parsed = ErrorBody::parse(status, &body);
        let detail = self.scrub(&parsed.message_or_status(status));
        let error = if status == 401 || parsed.has_code("invalid_client") {
            CtError::Unauthorized {
                message: format!(
                    "commercetools rejected the client credentials (invalid_client) at {}: {detail}",
                    self.auth_url
                ),
            }
        } else if parsed.has_code("invalid_scope") || status == 403 {
            CtError::Forbidden {
                message: format!(
                    "commercetools refused the requested scopes at {} (check the API client's scopes): {detail}",
                    self.auth_url
                ),
            }
        } else {
            CtError::Api {
                status,
                message: detail,
                errors: parsed.errors,
                path: "oauth/token".into(),
            }
        };
        Err(AttemptError {
            retry: classify_status(status, retry_after.as_deref()),
            error,
        })
    }

    /// Removes any occurrence of the client secret from a server-provided message.
    fn scrub(&self, message: &str) -> String {
        let secret = self.client_secret.expose_secret();
        if secret.is_empty() {
            message.to_string()
        } else {
            message.replace(secret, "***")
        }
    }
}
