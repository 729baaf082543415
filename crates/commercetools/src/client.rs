//! The commercetools HTTP client: one `reqwest::Client`, a shared token cache, retries
//! (reads and, for Subscriptions, writes).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::auth::{AccessToken, TokenCache};
use crate::config::{CONNECT_TIMEOUT, CtConfig};
use crate::error::{CtError, ErrorBody};
use crate::models::PagedQueryResponse;
use crate::paging::{Keyed, PageMode, Pager};
use crate::retry::{
    AttemptError, BackoffPolicy, classify_status, classify_transport, classify_write_status,
    classify_write_transport, transport_failure, with_retries,
};

/// Page size used by [`CtClient::all`].
pub const ALL_PAGE_SIZE: u32 = 500;

struct Inner {
    http: reqwest::Client,
    project_key: String,
    api_url: String,
    /// `{api_url}/{project_key}`.
    project_base: String,
    backoff: BackoffPolicy,
    requests: Arc<AtomicU64>,
    tokens: TokenCache,
}

/// commercetools API client. Holds one `reqwest::Client` and a token cache shared by all
/// clones, so cloning is cheap and every clone reuses connections and the token.
#[derive(Clone)]
pub struct CtClient {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for CtClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CtClient")
            .field("project_key", &self.inner.project_key)
            .field("api_url", &self.inner.api_url)
            .finish_non_exhaustive()
    }
}

fn check_url(name: &str, value: &str) -> Result<String, CtError> {
    let trimmed = value.trim().trim_end_matches('/');
    let parsed = url::Url::parse(trimmed)
        .map_err(|e| CtError::Config(format!("{name} '{trimmed}' is not a valid URL: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(CtError::Config(format!(
            "{name} '{trimmed}' must be an http(s) URL"
        )));
    }
    if parsed.query().is_some() {
        return Err(CtError::Config(format!(
            "{name} '{trimmed}' must not contain a query string"
        )));
    }
    Ok(trimmed.to_string())
}

impl CtClient {
    /// A client for `config` with the default backoff (500 ms doubling up to 30 s, full
    /// jitter, `config.max_retries` retries). Validates the settings; does no I/O.
    pub fn new(config: CtConfig) -> Result<Self, CtError> {
        Self::new_with_backoff(config, Duration::from_millis(500), Duration::from_secs(30))
    }

    /// Like [`CtClient::new`] with explicit backoff bounds: the first retry waits up to
    /// `min_delay`, each further one up to twice as long, capped at `max_delay`.
    pub fn new_with_backoff(
        config: CtConfig,
        min_delay: Duration,
        max_delay: Duration,
    ) -> Result<Self, CtError> {
        let project_key = config.project_key.trim().to_string();
        if project_key.is_empty() || project_key.contains(['/', '?', '#', ' ']) {
            return Err(CtError::Config(format!(
                "project key '{project_key}' is empty or contains invalid characters"
            )));
        }
        if config.client_id.trim().is_empty() {
            return Err(CtError::Config("client id is empty".into()));
        }
        let api_url = check_url("api_url", &config.api_url)?;
        let auth_url = check_url("auth_url", &config.auth_url)?;
        let http = reqwest::Client::builder()
            .user_agent(concat!("ct-omnisend/", env!("CARGO_PKG_VERSION")))
            .timeout(config.timeout)
            .connect_timeout(CONNECT_TIMEOUT.min(config.timeout))
            .pool_idle_timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| CtError::Config(format!("cannot build the HTTP client: {e}")))?;
        let backoff = BackoffPolicy {
            min_delay,
            max_delay,
            max_retries: config.max_retries,
        };
        let requests = Arc::new(AtomicU64::new(0));
        let tokens = TokenCache::new(
            http.clone(),
            &auth_url,
            config.client_id.trim().to_string(),
            config.client_secret,
            config.scopes,
            backoff,
            requests.clone(),
        );
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                project_base: format!("{api_url}/{project_key}"),
                project_key,
                api_url,
                backoff,
                requests,
                tokens,
            }),
        })
    }

    /// The project key.
    pub fn project_key(&self) -> &str {
        &self.inner.project_key
    }

    /// HTTP requests sent so far by this client and its clones (every attempt, token
    /// requests included).
    pub fn requests_sent(&self) -> u64 {
        self.inner.requests.load(Ordering::Relaxed)
    }

    /// Access tokens fetched so far by this client and its clones.
    pub fn tokens_fetched(&self) -> u64 {
        self.inner.tokens.fetched()
    }

    fn url(&self, path: &str) -> String {
        let path = path.trim_start_matches('/');
        if path.is_empty() {
            self.inner.project_base.clone()
        } else {
            format!("{}/{path}", self.inner.project_base)
        }
    }

    /// `GET {api_url}/{project_key}/{path}` with `query` (keys may repeat), decoded as `T`;
    /// `Ok(None)` on 404. `path` is used verbatim (percent-encode keys yourself).
    ///
    /// Uses the shared bearer token; on 401 the token is refreshed once and the request
    /// repeated. 429 (honouring `Retry-After`), 502, 503, 504, timeouts and connection
    /// errors are retried with full-jitter exponential backoff up to `max_retries` times;
    /// other statuses are final.
    pub async fn get<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(String, String)],
    ) -> Result<Option<T>, CtError> {
        match self.fetch(path, query).await? {
            Some(body) => decode(path, &body).map(Some),
            None => Ok(None),
        }
    }

    /// A query endpoint (`GET {path}?…`) returning a [`PagedQueryResponse`]; a 404 is an
    /// [`CtError::Api`] error here.
    pub async fn query<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(String, String)],
    ) -> Result<PagedQueryResponse<T>, CtError> {
        match self.fetch(path, query).await? {
            Some(body) => decode(path, &body),
            None => Err(CtError::Api {
                status: 404,
                message: format!("query endpoint {} not found", self.url(path)),
                errors: Vec::new(),
                path: path.to_string(),
            }),
        }
    }

    /// A keyset pager over the query endpoint `path` (see [`Pager`]). `page_size` is clamped
    /// to 1..=500; `extra` parameters (e.g. an additional `where`, `expand`, price
    /// selection) are sent with every page.
    pub fn pager<T: Keyed + DeserializeOwned>(
        &self,
        path: &str,
        mode: PageMode,
        page_size: u32,
        extra: Vec<(String, String)>,
    ) -> Pager<T> {
        Pager::new(self.clone(), path, mode, page_size, extra)
    }

    /// Every resource of a (small) collection — stores, channels, product types,
    /// categories — via the full keyset pager, in id order.
    pub async fn all<T: Keyed + DeserializeOwned>(&self, path: &str) -> Result<Vec<T>, CtError> {
        let mut pager = self.pager::<T>(
            path,
            PageMode::Full { after_id: None },
            ALL_PAGE_SIZE,
            Vec::new(),
        );
        let mut all = Vec::new();
        while let Some(page) = pager.next_page().await? {
            all.extend(page);
        }
        Ok(all)
    }

    /// Fetches a token and reads the project (`GET /{project_key}`): for `config check`.
    /// Fails with [`CtError::Unauthorized`] for bad credentials, [`CtError::Forbidden`] when
    /// the token may not read the project, [`CtError::Config`] when the project does not
    /// exist and [`CtError::Unreachable`] when a host cannot be reached.
    pub async fn check_connectivity(&self) -> Result<(), CtError> {
        self.inner.tokens.token().await?;
        match self.fetch("", &[]).await? {
            Some(_) => Ok(()),
            None => Err(CtError::Config(format!(
                "project '{}' not found at {}",
                self.inner.project_key, self.inner.api_url
            ))),
        }
    }

    /// The body of a 2xx response, `None` on 404, an error otherwise (after retries and one
    /// token refresh on 401).
    async fn fetch(
        &self,
        path: &str,
        query: &[(String, String)],
    ) -> Result<Option<Vec<u8>>, CtError> {
        self.send(Verb::Get, path, query, None).await
    }

    /// `POST {api_url}/{project_key}/{path}` with `body` as JSON, decoded as `T` (creates and
    /// updates). Any status but 2xx is an error, 404 included ([`CtError::Api`] with status
    /// 404), 409 `ConcurrentModification` and 400 `DuplicateField` among them (see
    /// [`CtError::has_code`]).
    ///
    /// A write is retried only when it cannot have been applied: after 429 and 503 (honouring
    /// `Retry-After`) and after a failed connect. A 500, 502, 504, a timeout or a broken
    /// connection may come after commercetools applied the change, so they end the call with
    /// their error; read the resource again before deciding what to do. On 401 the token is
    /// refreshed once and the request repeated (commercetools did not process it).
    pub async fn post<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, CtError> {
        let bytes = serde_json::to_vec(body).map_err(|e| CtError::Encode {
            path: path.to_string(),
            message: e.to_string(),
        })?;
        match self.send(Verb::Post, path, &[], Some(&bytes)).await? {
            Some(body) => decode(path, &body),
            None => Err(self.not_found(path)),
        }
    }

    /// `DELETE {api_url}/{project_key}/{path}` with `query` (e.g. `version`), decoded as `T`
    /// (commercetools answers with the deleted resource). Errors and retries as for
    /// [`CtClient::post`]; 404 is a [`CtError::Api`] with status 404.
    pub async fn delete<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(String, String)],
    ) -> Result<T, CtError> {
        match self.send(Verb::Delete, path, query, None).await? {
            Some(body) => decode(path, &body),
            None => Err(self.not_found(path)),
        }
    }

    fn not_found(&self, path: &str) -> CtError {
        CtError::Api {
            status: 404,
            message: format!("{} not found", self.url(path)),
            errors: Vec::new(),
            path: path.to_string(),
        }
    }

    /// One request with retries: the body of a 2xx response, `None` on 404, an error otherwise
    /// (after retries and one token refresh on 401).
    async fn send(
        &self,
        verb: Verb,
        path: &str,
        query: &[(String, String)],
        body: Option<&[u8]>,
    ) -> Result<Option<Vec<u8>>, CtError> {
        let url = self.url(path);
        let mut refreshed = false;
        let what = match verb {
            Verb::Get => "commercetools GET",
            Verb::Post => "commercetools POST",
            Verb::Delete => "commercetools DELETE",
        };
        loop {
            let token = self.inner.tokens.token().await?;
            let (status, resp_body) = with_retries(&self.inner.backoff, what, || {
                self.send_once(verb, &url, path, query, body, &token)
            })
            .await?;
            match status {
                200..=299 => return Ok(Some(resp_body)),
                404 => return Ok(None),
                401 if !refreshed => {
                    tracing::debug!(path, "commercetools rejected the token; refreshing it once");
                    self.inner.tokens.invalidate(&token);
                    refreshed = true;
                }
                _ => return Err(final_error(status, &resp_body, path, &url)),
            }
        }
    }

    /// One attempt: `Ok((status, body))` for a final status, `Err` for a retryable one.
    async fn send_once(
        &self,
        verb: Verb,
        url: &str,
        path: &str,
        query: &[(String, String)],
        body: Option<&[u8]>,
        token: &AccessToken,
    ) -> Result<(u16, Vec<u8>), AttemptError> {
        use secrecy::ExposeSecret;
        self.inner.requests.fetch_add(1, Ordering::Relaxed);
        let write = !matches!(verb, Verb::Get);
        let transport_retry = |f| {
            if write {
                classify_write_transport(f)
            } else {
                classify_transport(f)
            }
        };
        let mut request = match verb {
            Verb::Get => self.inner.http.get(url),
            Verb::Post => self.inner.http.post(url),
            Verb::Delete => self.inner.http.delete(url),
        }
        .query(query)
        .bearer_auth(token.secret.expose_secret())
        .header(reqwest::header::ACCEPT, "application/json");
        if let Some(body) = body {
            request = request
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.to_vec());
        }
        let resp = request.send().await.map_err(|e| AttemptError {
            retry: transport_retry(transport_failure(&e)),
            error: CtError::unreachable(url, &e),
        })?;
        let status = resp.status().as_u16();
        tracing::trace!(url, status, method = ?verb, "commercetools request");
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let resp_body = resp
            .bytes()
            .await
            .map(|b| b.to_vec())
            .map_err(|e| AttemptError {
                retry: transport_retry(transport_failure(&e)),
                error: CtError::unreachable(url, &e),
            })?;
        let decision = if write {
            classify_write_status(status, retry_after.as_deref())
        } else {
            classify_status(status, retry_after.as_deref())
        };
        match decision {
            crate::retry::RetryDecision::DontRetry => Ok((status, resp_body)),
            retry => Err(AttemptError {
                retry,
                error: final_error(status, &resp_body, path, url),
            }),
        }
    }
}

/// The HTTP method of a request.
#[derive(Clone, Copy, Debug)]
enum Verb {
    Get,
    Post,
    Delete,
}

fn decode<T: DeserializeOwned>(path: &str, body: &[u8]) -> Result<T, CtError> {
    serde_json::from_slice(body).map_err(|e| CtError::Decode {
        path: path.to_string(),
        message: e.to_string(),
    })
}

/// The error for a final non-2xx, non-404 status.
fn final_error(status: u16, body: &[u8], path: &str, url: &str) -> CtError {
    let parsed = ErrorBody::parse(status, body);
    let message = parsed.message_or_status(status);
    let shown_path = if path.is_empty() { "/" } else { path };
    match status {
        401 => CtError::Unauthorized {
            message: format!(
                "commercetools rejected the access token for {url} even after fetching a new one: {message}"
            ),
        },
        403 => CtError::Forbidden {
            message: format!(
                "commercetools denied access to {url} (insufficient_scope: check the API client's scopes): {message}"
            ),
        },
        _ => CtError::Api {
            status,
            message,
            errors: parsed.errors,
            path: shown_path.to_string(),
        },
    }
}
