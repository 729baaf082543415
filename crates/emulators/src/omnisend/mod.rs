//! A local Omnisend API, version `2026-03-15` (base path `/api`).
//!
//! Every request needs `Authorization: Omnisend-API-Key <key>` (any non-empty key is a brand;
//! data is partitioned per key) and `Omnisend-Version: 2026-03-15`. The request pipeline, in
//! order:
//!
//! 1. body larger than 1 MB → 413;
//! 2. missing/malformed `Authorization` → 401;
//! 3. missing `Omnisend-Version` → 400, another version → 410 ("API version has been retired");
//! 4. sliding-window rate limit per key (60 s) → 429 with `retryAfter` (not counted);
//! 5. the request is now *admitted* (counted in the window); injected faults → 429/500/503;
//! 6. the handler.
//!
//! Every request is logged ([`LoggedRequest`]), whatever its outcome; [`Faults::latency`] delays
//! every response. `X-Rate-Limit-Limit/Remaining/Reset` are set on every response of a key while a
//! limit is configured (without a limit they are omitted).

mod batches;
mod problem;
mod rate;
mod resources;
mod validate;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::Value;
use tokio::task::JoinHandle;

use crate::faults::{FaultInjector, Faults, Injected};
use batches::Batch;
use problem::Outcome;
use rate::{RateDecision, RateInfo, RateLimiter};

/// The only supported `Omnisend-Version`.
pub const API_VERSION: &str = "2026-03-15";

/// Largest accepted request body.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Configuration of an [`OmnisendEmulator`].
#[derive(Clone, Debug)]
pub struct OmnisendEmulatorConfig {
    /// Requests per sliding 60 s window per API key; `None` disables the limit. Default 400.
    pub rate_limit_per_minute: Option<u32>,
    /// Faults injected from the start.
    pub faults: Faults,
    /// How long a batch stays `pending` (first half) and `inProgress` (second half) before its
    /// items are applied. Default 0.
    pub batch_delay: Duration,
}

impl Default for OmnisendEmulatorConfig {
    fn default() -> Self {
        Self {
            rate_limit_per_minute: Some(400),
            faults: Faults::default(),
            batch_delay: Duration::ZERO,
        }
    }
}

/// One request as received, with the status it was answered with.
#[derive(Clone, Debug)]
pub struct LoggedRequest {
    /// Arrival time.
    pub at: tokio::time::Instant,
    /// The API key (empty when missing or malformed).
    pub api_key: String,
    /// HTTP method, e.g. `PUT`.
    pub method: String,
    /// Path without the base URL, e.g. `/products/p1`.
    pub path: String,
    /// Raw query string.
    pub query: Option<String>,
    /// Response status.
    pub status: u16,
    /// The JSON request body (`None` when empty or not JSON).
    pub body: Option<Value>,
}

/// One brand's data.
#[derive(Debug, Default)]
pub(crate) struct Brand {
    pub products: BTreeMap<String, Value>,
    pub categories: BTreeMap<String, Value>,
    pub contacts: Vec<Value>,
    /// `(identifier type, id)` → index in `contacts` (identifiers are unique per brand).
    pub contact_index: HashMap<(String, String), usize>,
    pub events: Vec<Value>,
    pub batches: Vec<Batch>,
}

/// Emulator state, behind one mutex.
#[derive(Debug)]
pub(crate) struct OsState {
    pub base_url: String,
    pub batch_delay: Duration,
    rate: RateLimiter,
    faults: FaultInjector,
    log: Vec<LoggedRequest>,
    brands: HashMap<String, Brand>,
}

impl OsState {
    /// The brand of `key`, created on first use.
    pub(crate) fn brand(&mut self, key: &str) -> &mut Brand {
        self.brands.entry(key.to_owned()).or_default()
    }
}

pub(crate) type Shared = Arc<Mutex<OsState>>;

pub(crate) fn lock(s: &Shared) -> MutexGuard<'_, OsState> {
    s.lock().unwrap_or_else(|e| e.into_inner())
}

/// The authenticated API key, put into request extensions by the gate middleware.
#[derive(Clone, Debug)]
pub(crate) struct ApiKey(pub String);

/// A running local Omnisend. Shuts down when dropped.
#[derive(Debug)]
pub struct OmnisendEmulator {
    shared: Shared,
    addr: SocketAddr,
    task: JoinHandle<()>,
}

fn router(shared: Shared) -> Router {
    use resources as r;
    let api = Router::new()
        .route("/products", post(r::post_product).get(r::list_products))
        .route(
            "/products/{id}",
            get(r::get_product)
                .put(r::put_product)
                .delete(r::delete_product),
        )
        .route(
            "/product-categories",
            post(r::post_category).get(r::list_categories),
        )
        .route(
            "/product-categories/{id}",
            get(r::get_category)
                .patch(r::patch_category)
                .delete(r::delete_category),
        )
        .route("/contacts", post(r::post_contact).get(r::list_contacts))
        .route("/contacts/{id}", get(r::get_contact))
        .route("/events", post(r::post_event))
        .route("/batches", post(batches::create).get(batches::list))
        .route("/batches/{id}", get(batches::get))
        .route("/batches/{id}/items", get(batches::items));
    Router::new()
        .nest("/api", api)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(shared.clone(), gate))
        .with_state(shared)
}

async fn not_found() -> Response {
    Outcome::problem(404, "Not Found", "The requested resource does not exist").into_response()
}

async fn method_not_allowed() -> Response {
    Outcome::problem(
        405,
        "Method Not Allowed",
        "The method is not allowed for this resource",
    )
    .into_response()
}

fn set_rate_headers(resp: &mut Response, info: Option<RateInfo>) {
    let Some(info) = info else { return };
    let h = resp.headers_mut();
    for (name, v) in [
        ("x-rate-limit-limit", u64::from(info.limit)),
        ("x-rate-limit-remaining", u64::from(info.remaining)),
        ("x-rate-limit-reset", info.reset),
    ] {
        h.insert(name, HeaderValue::from(v));
    }
}

/// The request pipeline described in the module documentation.
async fn gate(State(shared): State<Shared>, req: Request, next: Next) -> Response {
    let at = tokio::time::Instant::now();
    let (parts, body) = req.into_parts();
    let method = parts.method.to_string();
    let full_path = parts.uri.path().to_owned();
    let path = full_path
        .strip_prefix("/api")
        .unwrap_or(&full_path)
        .to_owned();
    let query = parts.uri.query().map(str::to_owned);
    let api_key = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Omnisend-API-Key "))
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .map(str::to_owned);
    let version = parts
        .headers
        .get("omnisend-version")
        .map(|v| v.to_str().unwrap_or("").trim().to_owned());

    let bytes = axum::body::to_bytes(body, MAX_BODY_BYTES).await;
    let logged_body = bytes
        .as_ref()
        .ok()
        .filter(|b| !b.is_empty())
        .and_then(|b| serde_json::from_slice::<Value>(b).ok());

    let (early, rate_info, latency) = {
        let mut st = lock(&shared);
        let latency = st.faults.latency();
        let mut rate_info = None;
        let early: Option<Outcome> = if bytes.is_err() {
            Some(Outcome::problem(
                413,
                "Payload Too Large",
                "The request body exceeds the 1 MB limit",
            ))
        } else if api_key.is_none() {
            Some(Outcome::problem(
                401,
                "Unauthorized",
                "Missing or malformed Authorization header; expected 'Omnisend-API-Key <key>'",
            ))
        } else if version.is_none() {
            Some(Outcome::problem(
                400,
                "Bad Request",
                "The Omnisend-Version header is required",
            ))
        } else if version.as_deref() != Some(API_VERSION) {
            Some(Outcome::problem(
                410,
                "Gone",
                "API version has been retired",
            ))
        } else {
            let key = api_key.as_deref().unwrap_or_default();
            match st.rate.check(key, at) {
                RateDecision::Limited { info, retry_after } => {
                    rate_info = Some(info);
                    Some(Outcome::ok(429, problem::rate_limited(retry_after)))
                }
                RateDecision::Admitted(info) => {
                    rate_info = info;
                    match st.faults.decide(&[500, 503]) {
                        Some(Injected::Status(429)) => {
                            Some(Outcome::ok(429, problem::rate_limited(1)))
                        }
                        Some(Injected::Status(503)) => Some(Outcome::problem(
                            503,
                            "Service Unavailable",
                            "The service is temporarily unavailable",
                        )),
                        Some(Injected::Status(code)) => Some(Outcome::problem(
                            code,
                            "Internal Server Error",
                            "An unexpected error occurred",
                        )),
                        None => None,
                    }
                }
            }
        };
        (early, rate_info, latency)
    };

    let mut resp = match (early, bytes) {
        (Some(outcome), _) => outcome.into_response(),
        (None, Ok(bytes)) => {
            let mut req = Request::from_parts(parts, Body::from(bytes));
            req.extensions_mut()
                .insert(ApiKey(api_key.clone().unwrap_or_default()));
            next.run(req).await
        }
        (None, Err(_)) => Outcome::problem(400, "Bad Request", "Unreadable body").into_response(),
    };
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    set_rate_headers(&mut resp, rate_info);
    lock(&shared).log.push(LoggedRequest {
        at,
        api_key: api_key.unwrap_or_default(),
        method,
        path,
        query,
        status: resp.status().as_u16(),
        body: logged_body,
    });
    resp
}

impl OmnisendEmulator {
    /// Starts the server on `127.0.0.1:0`.
    pub async fn start(cfg: OmnisendEmulatorConfig) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let shared: Shared = Arc::new(Mutex::new(OsState {
            base_url: format!("http://{addr}/api"),
            batch_delay: cfg.batch_delay,
            rate: RateLimiter::new(cfg.rate_limit_per_minute),
            faults: FaultInjector::new(cfg.faults),
            log: Vec::new(),
            brands: HashMap::new(),
        }));
        let app = router(shared.clone());
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "omnisend emulator stopped");
            }
        });
        Ok(Self { shared, addr, task })
    }

    /// The API base URL, e.g. `http://127.0.0.1:PORT/api`.
    pub fn base_url(&self) -> String {
        format!("http://{}/api", self.addr)
    }

    /// The brand's products, sorted by id.
    pub fn products(&self, api_key: &str) -> Vec<Value> {
        lock(&self.shared)
            .brand(api_key)
            .products
            .values()
            .cloned()
            .collect()
    }

    /// One product of a brand.
    pub fn product(&self, api_key: &str, id: &str) -> Option<Value> {
        lock(&self.shared).brand(api_key).products.get(id).cloned()
    }

    /// The brand's categories, sorted by `categoryID`.
    pub fn categories(&self, api_key: &str) -> Vec<Value> {
        lock(&self.shared)
            .brand(api_key)
            .categories
            .values()
            .cloned()
            .collect()
    }

    /// The brand's contacts, in creation order.
    pub fn contacts(&self, api_key: &str) -> Vec<Value> {
        lock(&self.shared).brand(api_key).contacts.clone()
    }

    /// The brand's accepted events (each with `receivedAt`), in arrival order.
    pub fn events(&self, api_key: &str) -> Vec<Value> {
        lock(&self.shared).brand(api_key).events.clone()
    }

    /// The brand's batches as `Batch` JSON (with items), in creation order.
    pub fn batches(&self, api_key: &str) -> Vec<Value> {
        lock(&self.shared)
            .brand(api_key)
            .batches
            .iter()
            .map(Batch::to_json)
            .collect()
    }

    /// Every request received so far (including rejected and faulted ones), in completion order.
    pub fn requests(&self) -> Vec<LoggedRequest> {
        lock(&self.shared).log.clone()
    }

    /// Empties the request log (rate windows are not affected).
    pub fn clear_requests(&self) {
        lock(&self.shared).log.clear();
    }

    /// The largest number of logged requests of `api_key` (any status) within any sliding
    /// window of length `window`, over the whole log.
    pub fn max_requests_in_window(&self, api_key: &str, window: Duration) -> usize {
        let mut times: Vec<tokio::time::Instant> = lock(&self.shared)
            .log
            .iter()
            .filter(|r| r.api_key == api_key)
            .map(|r| r.at)
            .collect();
        times.sort();
        rate::max_in_window(&times, window)
    }

    /// Replaces the fault configuration (restarting its RNG and request counter).
    pub fn set_faults(&self, f: Faults) {
        lock(&self.shared).faults = FaultInjector::new(f);
    }

    /// Changes the per-key limit (`None` = unlimited); already counted requests stay counted.
    pub fn set_rate_limit(&self, per_minute: Option<u32>) {
        lock(&self.shared).rate.limit = per_minute;
    }

    /// Changes the batch processing delay for batches created from now on.
    pub fn set_batch_delay(&self, delay: Duration) {
        lock(&self.shared).batch_delay = delay;
    }

    /// Stops accepting connections.
    pub fn shutdown(&self) {
        self.task.abort();
    }
}

impl Drop for OmnisendEmulator {
    fn drop(&mut self) {
        self.task.abort();
    }
}
