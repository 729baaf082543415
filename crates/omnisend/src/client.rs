//! [`OmnisendClient`]: the HTTP side — request building, the retry loop and the catalog,
//! batch, contact and event operations. Batch polling lives in [`crate::batches`].

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use reqwest::Method;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue};
use secrecy::ExposeSecret;
use serde::Serialize;
use serde::de::DeserializeOwned;
use url::Url;

use crate::config::OmnisendConfig;
use crate::error::OmnisendError;
use crate::models::{self, BatchCreated};
use crate::problem::Problem;
use crate::rate::RateController;
use crate::retry::{
    BACKOFF_BASE, BACKOFF_CAP, RetryAction, backoff_delay, classify_status, classify_transport,
};

/// Longest server-requested delay honoured between two attempts of one call.
pub const MAX_SERVER_DELAY: Duration = Duration::from_secs(120);

/// A check run after the rate permit and before a request leaves (see
/// [`OmnisendClient::post_event_guarded`]).
pub type SendGuard =
    dyn Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = bool> + Send>> + Send + Sync;

/// Outcome of an upsert.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Upserted {
    /// The record did not exist and was created.
    Created,
    /// The record existed and was replaced (products) or updated (categories).
    Updated,
}

/// Outcome of a delete.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Deleted {
    /// The record existed and was deleted.
    Deleted,
    /// The record did not exist (404); nothing to do.
    NotFound,
}

/// Omnisend API client. Cheap to clone (an `Arc` inside); clones share the HTTP connection
/// pool, the [`RateController`] and the request counter.
#[derive(Clone)]
pub struct OmnisendClient {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    base: Url,
    auth: HeaderValue,
    config: OmnisendConfig,
    rate: RateController,
    sent: AtomicU64,
}

impl std::fmt::Debug for OmnisendClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OmnisendClient")
            .field("api_url", &self.inner.base.as_str())
            .field("rate", &self.inner.rate)
            .field("requests_sent", &self.requests_sent())
            .finish_non_exhaustive()
    }
}

/// A response that the retry loop did not turn into an error: 2xx, or a non-retryable status the
/// caller may want to interpret (404, 409, ...).
#[derive(Debug)]
pub(crate) struct Response {
    pub(crate) status: u16,
    pub(crate) body: Vec<u8>,
    pub(crate) problem: Option<Problem>,
}

impl Response {
    pub(crate) fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// A request about to be sent: method, path segments below the base URL, query, JSON body.
pub(crate) struct Call {
    pub(crate) method: Method,
    pub(crate) segments: Vec<String>,
    pub(crate) query: Vec<(&'static str, String)>,
    pub(crate) body: Option<Vec<u8>>,
}

impl Call {
    pub(crate) fn new(method: Method, segments: &[&str]) -> Self {
        let segments = segments.iter().map(|s| (*s).to_owned()).collect();
        Call {
            method,
            segments,
            query: Vec::new(),
            body: None,
        }
    }

    pub(crate) fn json<T: Serialize + ?Sized>(mut self, body: &T) -> Result<Self, OmnisendError> {
        let bytes = serde_json::to_vec(body).map_err(|e| {
            OmnisendError::Invalid(format!("cannot serialize the request body: {e}"))
        })?;
        self.body = Some(bytes);
        Ok(self)
    }

    pub(crate) fn query(mut self, key: &'static str, value: impl ToString) -> Self {
        self.query.push((key, value.to_string()));
        self
    }

    pub(crate) fn path(&self) -> String {
        format!("/{}", self.segments.join("/"))
    }
}

impl OmnisendClient {
    /// Builds a client. Fails with [`OmnisendError::Invalid`] if `api_url` is not an absolute
    /// http(s) URL or the API key contains characters not allowed in a header.
    pub fn new(config: OmnisendConfig, rate: RateController) -> Result<Self, OmnisendError> {
        let base = Url::parse(config.api_url.trim_end_matches('/'))
            .map_err(|e| OmnisendError::Invalid(format!("api_url {:?}: {e}", config.api_url)))?;
        if base.cannot_be_a_base() || !matches!(base.scheme(), "http" | "https") {
            return Err(OmnisendError::Invalid(format!(
                "api_url {:?} is not an http(s) base URL",
                config.api_url
            )));
        }
        let mut auth = HeaderValue::from_str(&format!(
            "Omnisend-API-Key {}",
            config.api_key.expose_secret()
        ))
        .map_err(|_| {
            OmnisendError::Invalid("the API key contains characters not allowed in a header".into())
        })?;
        auth.set_sensitive(true);
        let mut headers = HeaderMap::new();
        headers.insert(
            "Omnisend-Version",
            HeaderValue::from_static(crate::API_VERSION),
        );
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(
            reqwest::header::ACCEPT,
            HeaderValue::from_static("application/json"),
        );
        let http = reqwest::Client::builder()
            .user_agent(crate::USER_AGENT)
            .default_headers(headers)
            .timeout(config.timeout)
            .connect_timeout(config.timeout.min(Duration::from_secs(10)))
            .pool_idle_timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| OmnisendError::Invalid(format!("cannot build the HTTP client: {e}")))?;
        Ok(OmnisendClient {
            inner: Arc::new(Inner {
                http,
                base,
                auth,
                config,
                rate,
                sent: AtomicU64::new(0),
            }),
        })
    }

    /// Number of HTTP attempts made so far by this client and its clones (retries and batch
    /// polls included).
    pub fn requests_sent(&self) -> u64 {
        self.inner.sent.load(Ordering::Relaxed)
    }

    /// The shared rate controller.
    pub fn rate(&self) -> &RateController {
        &self.inner.rate
    }

    /// The configuration this client was built with.
    pub fn config(&self) -> &OmnisendConfig {
        &self.inner.config
    }

    /// Creates or updates a product category: `POST /product-categories`; on 409 (already
    /// exists) `PATCH /product-categories/{categoryID}` with the title.
    pub async fn upsert_category(
        &self,
        category: &models::Category,
    ) -> Result<Upserted, OmnisendError> {
        let create = Call::new(Method::POST, &["product-categories"]).json(category)?;
        let path = create.path();
        let resp = self.execute(&create).await?;
        if resp.is_success() {
            return Ok(Upserted::Created);
        }
        if resp.status != 409 {
            return Err(rejected(&create.method, path, resp));
        }
        let id = category.category_id.as_str();
        let segments = ["product-categories", id];
        let patch = Call::new(Method::PATCH, &segments)
            .json(&serde_json::json!({ "title": category.title }))?;
        let resp = self.execute(&patch).await?;
        if resp.is_success() {
            Ok(Upserted::Updated)
        } else {
            Err(rejected(&patch.method, patch.path(), resp))
        }
    }

    /// Deletes a product category: 2xx → [`Deleted::Deleted`], 404 → [`Deleted::NotFound`].
    pub async fn delete_category(&self, id: &str) -> Result<Deleted, OmnisendError> {
        self.delete(&["product-categories", id]).await
    }

    /// Creates or replaces a product: `PUT /products/{id}` (full replace); on 404
    /// `POST /products`; if that POST meets 409 (created concurrently, or an earlier attempt did
    /// succeed), one more `PUT`.
    pub async fn upsert_product(
        &self,
        product: &models::Product,
    ) -> Result<Upserted, OmnisendError> {
        let segments = ["products", product.id.as_str()];
        let put = Call::new(Method::PUT, &segments).json(product)?;
        let resp = self.execute(&put).await?;
        if resp.is_success() {
            return Ok(Upserted::Updated);
        }
        if resp.status != 404 {
            return Err(rejected(&put.method, put.path(), resp));
        }
        let post = Call::new(Method::POST, &["products"]).json(product)?;
        let resp = self.execute(&post).await?;
        if resp.is_success() {
            return Ok(Upserted::Created);
        }
        if resp.status != 409 {
            return Err(rejected(&post.method, post.path(), resp));
        }
        let resp = self.execute(&put).await?;
        if resp.is_success() {
            Ok(Upserted::Updated)
        } else {
            Err(rejected(&put.method, put.path(), resp))
        }
    }

    /// Deletes a product: 2xx → [`Deleted::Deleted`], 404 → [`Deleted::NotFound`].
    pub async fn delete_product(&self, id: &str) -> Result<Deleted, OmnisendError> {
        self.delete(&["products", id]).await
    }

    /// Submits an asynchronous batch (`POST /batches`). The item count must be within
    /// `1..=100` ([`models::limits::BATCH_ITEMS`]), checked locally ([`OmnisendError::Invalid`]).
    /// A missing `origin` is filled with [`OmnisendConfig::origin`]. Note: Omnisend does not
    /// deduplicate batches, so a retried submission after a lost response may create a second
    /// batch with the same items.
    pub async fn submit_batch(
        &self,
        request: &models::BatchRequest,
    ) -> Result<BatchCreated, OmnisendError> {
        self.submit_batch_with(request, None).await
    }

    async fn submit_batch_with(
        &self,
        request: &models::BatchRequest,
        guard: Option<&SendGuard>,
    ) -> Result<BatchCreated, OmnisendError> {
        let n = request.items.len();
        if n == 0 || n > models::limits::BATCH_ITEMS {
            return Err(OmnisendError::Invalid(format!(
                "a batch must have 1 to {} items, got {n}",
                models::limits::BATCH_ITEMS
            )));
        }
        let call = if request.origin.is_some() {
            Call::new(Method::POST, &["batches"]).json(request)?
        } else {
            let mut with_origin = request.clone();
            with_origin.origin = Some(self.inner.config.origin.clone());
            Call::new(Method::POST, &["batches"]).json(&with_origin)?
        };
        let resp = self.execute_guarded(&call, guard).await?;
        self.decode_success(&call, resp)
    }

    /// One cheap authenticated read (`GET /product-categories?limit=1`): proves the base URL,
    /// the API key and the version header are accepted. For `config check`.
    pub async fn check_connectivity(&self) -> Result<(), OmnisendError> {
        let call = Call::new(Method::GET, &["product-categories"]).query("limit", 1);
        let resp = self.execute(&call).await?;
        self.decode_success::<serde_json::Value>(&call, resp)
            .map(|_| ())
    }

    /// `GET /batches/{batchID}`.
    pub async fn get_batch(&self, batch_id: &str) -> Result<models::Batch, OmnisendError> {
        let call = Call::new(Method::GET, &["batches", batch_id]);
        let resp = self.execute(&call).await?;
        self.decode_success(&call, resp)
    }

    /// `GET /batches/{batchID}/items`: the batch with its per-item results.
    pub async fn batch_items(&self, batch_id: &str) -> Result<models::Batch, OmnisendError> {
        let call = Call::new(Method::GET, &["batches", batch_id, "items"]);
        let resp = self.execute(&call).await?;
        self.decode_success(&call, resp)
    }

    /// `POST /contacts` (create or update by identifier); returns the response body (`null` when
    /// empty).
    pub async fn post_contact(
        &self,
        body: &serde_json::Value,
    ) -> Result<serde_json::Value, OmnisendError> {
        let call = Call::new(Method::POST, &["contacts"]).json(body)?;
        let resp = self.execute(&call).await?;
        if !resp.is_success() {
            return Err(rejected(&call.method, call.path(), resp));
        }
        if resp.body.iter().all(u8::is_ascii_whitespace) {
            return Ok(serde_json::Value::Null);
        }
        serde_json::from_slice(&resp.body).map_err(|e| OmnisendError::Decode {
            path: call.path(),
            message: e.to_string(),
        })
    }

    /// [`OmnisendClient::post_event`] with a guard that runs once the rate permit is granted,
    /// right before each attempt leaves: `false` withdraws the request
    /// ([`OmnisendError::Withdrawn`], nothing sent). An outbox uses it to re-check its lease
    /// after a possibly long wait for the permit.
    pub async fn post_event_guarded(
        &self,
        body: &serde_json::Value,
        guard: &SendGuard,
    ) -> Result<(), OmnisendError> {
        self.post_event_with(body, Some(guard)).await
    }

    /// [`OmnisendClient::submit_batch`] with a guard (see
    /// [`OmnisendClient::post_event_guarded`]).
    pub async fn submit_batch_guarded(
        &self,
        request: &models::BatchRequest,
        guard: &SendGuard,
    ) -> Result<BatchCreated, OmnisendError> {
        self.submit_batch_with(request, Some(guard)).await
    }

    /// `POST /events` (accepted asynchronously with 202). Note: real-time events are not
    /// deduplicated by Omnisend, so a retry after a lost response can deliver an event twice.
    pub async fn post_event(&self, body: &serde_json::Value) -> Result<(), OmnisendError> {
        self.post_event_with(body, None).await
    }

    async fn post_event_with(
        &self,
        body: &serde_json::Value,
        guard: Option<&SendGuard>,
    ) -> Result<(), OmnisendError> {
        let call = Call::new(Method::POST, &["events"]).json(body)?;
        let resp = self.execute_guarded(&call, guard).await?;
        if resp.is_success() {
            Ok(())
        } else {
            Err(rejected(&call.method, call.path(), resp))
        }
    }

    async fn delete(&self, segments: &[&str]) -> Result<Deleted, OmnisendError> {
        let call = Call::new(Method::DELETE, segments);
        let resp = self.execute(&call).await?;
        match resp.status {
            200..=299 => Ok(Deleted::Deleted),
            404 => Ok(Deleted::NotFound),
            _ => Err(rejected(&call.method, call.path(), resp)),
        }
    }

    /// Decodes a 2xx JSON body; any other status becomes [`OmnisendError::Rejected`].
    pub(crate) fn decode_success<T: DeserializeOwned>(
        &self,
        call: &Call,
        resp: Response,
    ) -> Result<T, OmnisendError> {
        if !resp.is_success() {
            return Err(rejected(&call.method, call.path(), resp));
        }
        serde_json::from_slice(&resp.body).map_err(|e| OmnisendError::Decode {
            path: call.path(),
            message: e.to_string(),
        })
    }

    fn url(&self, call: &Call) -> Url {
        let mut url = self.inner.base.clone();
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.pop_if_empty();
            segments.extend(&call.segments);
        }
        url
    }

    /// Sends `call` until it succeeds, fails permanently or runs out of attempts. Each attempt
    /// first takes a permit from the rate controller and is counted. Returns the response for
    /// 2xx and for non-retryable statuses (the caller interprets 404/409); retryable outcomes are
    /// retried with full-jitter backoff (a server-given delay overrides it), 429 also throttles
    /// the shared rate controller.
    pub(crate) async fn execute(&self, call: &Call) -> Result<Response, OmnisendError> {
        self.execute_guarded(call, None).await
    }

    async fn execute_guarded(
        &self,
        call: &Call,
        guard: Option<&SendGuard>,
    ) -> Result<Response, OmnisendError> {
        let inner = &*self.inner;
        let url = self.url(call);
        let max_attempts = inner.config.max_attempts.max(1);
        let mut last = String::new();
        for attempt in 1..=max_attempts {
            if inner.config.priority {
                inner.rate.acquire_priority().await;
            } else {
                inner.rate.acquire().await;
            }
            if let Some(guard) = guard
                && !guard().await
            {
                return Err(OmnisendError::Withdrawn {
                    method: call.method.to_string(),
                    path: call.path(),
                });
            }
            inner.sent.fetch_add(1, Ordering::Relaxed);
            let mut request = inner
                .http
                .request(call.method.clone(), url.clone())
                .header(AUTHORIZATION, inner.auth.clone())
                .query(&call.query);
            if let Some(body) = &call.body {
                request = request.body(body.clone());
            }
            let sent_at = tokio::time::Instant::now();
            let outcome = match request.send().await {
                Err(err) => Attempt::from_transport(&err, None),
                Ok(response) => {
                    let status = response.status().as_u16();
                    let headers = response.headers().clone();
                    match response.bytes().await {
                        Err(err) => Attempt::from_transport(&err, Some(status)),
                        Ok(body) => {
                            let problem = (!(200..300).contains(&status))
                                .then(|| Problem::parse(status, &body));
                            match classify_status(status, &headers, problem.as_ref()) {
                                RetryAction::Retry { after, reason } => Attempt::Retry {
                                    after,
                                    reason,
                                    status: Some(status),
                                },
                                // Success, or an answer the caller interprets (404, 409, 400 ...):
                                // either way the server was not pushing back.
                                RetryAction::Successful | RetryAction::DontRetry { .. } => {
                                    Attempt::Done(Response {
                                        status,
                                        body: body.to_vec(),
                                        problem,
                                    })
                                }
                            }
                        }
                    }
                }
            };
            record_request(call, &outcome, sent_at.elapsed());
            match outcome {
                Attempt::Done(response) => {
                    inner.rate.on_success();
                    return Ok(response);
                }
                Attempt::Fail(reason) => {
                    tracing::debug!(method = %call.method, path = %call.path(), %reason, "Not retriable.");
                    return Err(OmnisendError::Transport {
                        method: call.method.to_string(),
                        path: call.path(),
                        message: reason,
                    });
                }
                Attempt::Retry {
                    after,
                    reason,
                    status,
                } => {
                    if status == Some(429) {
                        inner.rate.on_throttled(after);
                    }
                    last = match status {
                        Some(_) => reason,
                        None => format!("{reason} (no response)"),
                    };
                    if attempt == max_attempts {
                        break;
                    }
                    let delay = after
                        .map(|a| a.min(MAX_SERVER_DELAY))
                        .unwrap_or_else(|| backoff_delay(attempt, BACKOFF_BASE, BACKOFF_CAP));
                    tracing::debug!(
                        method = %call.method, path = %call.path(), attempt, delay_ms = delay.as_millis() as u64,
                        reason = %last, "Retrying Omnisend request."
                    );
                    tokio::time::sleep(delay).await;
                }
            }
        }
        tracing::warn!(method = %call.method, path = %call.path(), attempts = max_attempts, last = %last, "Retries exhausted.");
        Err(OmnisendError::RetriesExhausted {
            method: call.method.to_string(),
            path: call.path(),
            attempts: max_attempts,
            last,
        })
    }
}

/// The outcome of one attempt, as the retry loop sees it.
enum Attempt {
    Done(Response),
    Retry {
        after: Option<Duration>,
        reason: String,
        status: Option<u16>,
    },
    Fail(String),
}

impl Attempt {
    fn from_transport(err: &reqwest::Error, status: Option<u16>) -> Attempt {
        match classify_transport(err) {
            RetryAction::Retry { after, reason } => Attempt::Retry {
                after,
                reason,
                status,
            },
            RetryAction::DontRetry { reason } => Attempt::Fail(reason),
            RetryAction::Successful => Attempt::Fail("unexpected transport outcome".into()),
        }
    }
}

/// Turns a non-2xx response into [`OmnisendError::Rejected`].
pub(crate) fn rejected(method: &Method, path: String, resp: Response) -> OmnisendError {
    let status = resp.status;
    OmnisendError::Rejected {
        status,
        method: method.to_string(),
        path,
        problem: Box::new(
            resp.problem
                .unwrap_or_else(|| Problem::parse(status, &resp.body)),
        ),
    }
}

/// The request metrics of docs/metrics.md: duration by endpoint (first path segment: a bounded
/// set), method and status class, and the 429s.
fn record_request(call: &Call, outcome: &Attempt, elapsed: Duration) {
    let endpoint: &'static str = match call.segments.first().map_or("", String::as_str) {
        "contacts" => "contacts",
        "products" => "products",
        "categories" => "categories",
        "events" => "events",
        "batches" => "batches",
        _ => "other",
    };
    let status = match outcome {
        Attempt::Done(r) => status_class(r.status),
        Attempt::Retry {
            status: Some(s), ..
        } => status_class(*s),
        Attempt::Retry { status: None, .. } | Attempt::Fail(_) => "error",
    };
    metrics::histogram!(
        "ct_omnisend_omnisend_request_duration_seconds",
        "endpoint" => endpoint,
        "method" => call.method.as_str().to_owned(),
        "status" => status,
    )
    .record(elapsed.as_secs_f64());
    if status == "429" {
        metrics::counter!("ct_omnisend_omnisend_throttled_total", "endpoint" => endpoint)
            .increment(1);
    }
}

fn status_class(status: u16) -> &'static str {
    match status {
        429 => "429",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}
