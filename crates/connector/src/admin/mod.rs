//! `GET /admin`: the admin page of `ct-omnisend serve`, server-rendered HTML without
//! JavaScript or external assets.
//!
//! It shows, from the state store: per entity and store route the latest run, the last
//! successful one and the cursor lag; the most recent runs with their counts; the scheduled jobs
//! (which instance runs each); inbox and outbox depth and age; the newest open rejected records;
//! and the effective configuration with every secret masked. Each rejected record has a
//! **Replay** button, and there is **Replay all**: `POST /admin/rejected/{id}/replay` and
//! `POST /admin/rejected/replay-all` do what `ct-omnisend rejected replay` does
//! ([`crate::replay`]) and answer 303 to `/admin` with the result in the query string.
//!
//! Access ([`auth`]): HTTP Basic (`server.admin.username` and the password from the variable
//! `server.admin.password_env`) or `Authorization: Bearer <password>`; anything else is
//! answered 401 with a Basic challenge. Without a password every admin route answers 404.
//! POSTs also need the page's CSRF token and must not come from another site (403).

mod auth;
mod page;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use commercetools::CtClient;
use secrecy::SecretString;
use tokio::sync::Mutex;

use auth::Credentials;
pub use auth::{CHALLENGE, CSRF_FIELD};
use page::{Context, Flash, FlashError, Snapshot};

use crate::config::{Settings, env};
use crate::identity::mask_text;
use crate::replay::{self, ReplayError, Target};
use crate::serve::Service;
use crate::store::{RejectedFilter, StateStore, StoreError};
use crate::sync::sink::Sink;

/// Runs read for the page (the status table finds each entity's latest run among them).
const RUNS_READ: i64 = 200;

/// Everything the admin routes need.
#[derive(Clone)]
pub struct AdminState {
    settings: Arc<Settings>,
    store: StateStore,
    ct: CtClient,
    sinks: Arc<HashMap<String, Sink>>,
    instance: Arc<str>,
    credentials: Option<Arc<Credentials>>,
    secrets: Arc<[(String, bool)]>,
    /// Held while a replay runs: one at a time per instance.
    replaying: Arc<Mutex<()>>,
}

impl AdminState {
    /// The admin page over `store`, replaying through `ct` and `sinks` (one per store route),
    /// answering as `instance`; off until [`AdminState::with_password`].
    pub fn new(
        settings: Arc<Settings>,
        store: StateStore,
        ct: CtClient,
        sinks: HashMap<String, Sink>,
        instance: &str,
    ) -> Self {
        Self {
            settings,
            store,
            ct,
            sinks: Arc::new(sinks),
            instance: instance.into(),
            credentials: None,
            secrets: Arc::new([]),
            replaying: Arc::new(Mutex::new(())),
        }
    }

    /// Turns the page on with this password (`None`: off, every route answers 404); the user
    /// name is `server.admin.username`.
    pub fn with_password(mut self, password: Option<SecretString>) -> Self {
        self.credentials =
            password.map(|p| Arc::new(Credentials::new(&self.settings.server.admin.username, p)));
        self
    }

    /// The secret environment variables the configuration section lists, by name, with whether
    /// each is set (their values are never shown).
    pub fn with_secrets(mut self, secrets: Vec<(String, bool)>) -> Self {
        self.secrets = secrets.into();
        self
    }

    /// The admin page of a `serve` instance: its store, clients, secrets and password.
    pub fn from_service(service: &Service) -> Self {
        let settings = &service.settings;
        let mut secrets: Vec<(String, bool)> = vec![
            (
                env::CT_OMNISEND_WEBHOOK_TOKEN.to_owned(),
                service.webhook_token.is_some(),
            ),
            (
                env::CT_OMNISEND_STOREFRONT_TOKEN.to_owned(),
                service.storefront_token.is_some(),
            ),
            (
                settings.events.recovery_secret_env.clone(),
                service.recovery_secret.is_some(),
            ),
            (
                settings.server.admin.password_env.clone(),
                service.admin_password.is_some(),
            ),
        ];
        for store in &settings.stores {
            let name = &store.omnisend_api_key_env;
            if !secrets.iter().any(|(n, _)| n == name) {
                secrets.push((name.clone(), service.clients.contains_key(name)));
            }
        }
        AdminState::new(
            settings.clone(),
            service.store.clone(),
            service.ct.clone(),
            crate::app::live_sinks(settings, &service.clients),
            &service.instance,
        )
        .with_password(service.admin_password.clone())
        .with_secrets(secrets)
    }

    /// The credentials, or why the request is refused.
    fn authorize(&self, headers: &HeaderMap) -> Result<&Credentials, Refusal> {
        let c = self.credentials.as_deref().ok_or(Refusal::Off)?;
        if !c.authenticates(headers) {
            return Err(Refusal::Unauthenticated);
        }
        Ok(c)
    }

    /// [`AdminState::authorize`], then the CSRF checks of a POST.
    fn authorize_post(&self, headers: &HeaderMap, body: &[u8]) -> Result<(), Refusal> {
        let c = self.authorize(headers)?;
        if auth::cross_site(headers) {
            return Err(Refusal::CrossSite);
        }
        if !c.csrf_ok(body) {
            return Err(Refusal::FormToken);
        }
        Ok(())
    }

    async fn snapshot(&self) -> Result<Snapshot, StoreError> {
        let store = &self.store;
        Ok(Snapshot {
            now: time::OffsetDateTime::now_utc(),
            runs: store.recent_runs(RUNS_READ).await?,
            cursors: store.cursors().await?,
            last_ok: store.last_successful_runs().await?,
            jobs: store.jobs().await?,
            queues: store.queue_gauges().await?,
            rejected: store
                .list_rejected(&RejectedFilter {
                    entity: None,
                    route: None,
                    open_only: true,
                    limit: page::REJECTED_SHOWN,
                })
                .await?,
            rejected_open: store.count_rejected_open().await?,
        })
    }

    /// Runs a replay and redirects to the page with its result. The replay runs in a task of
    /// its own: if it outlasts half the request timeout, the page is told it goes on in the
    /// background (the request timeout would otherwise cancel it halfway).
    async fn replay(&self, target: Target) -> Response {
        let id = match target {
            Target::One(id) => Some(id),
            Target::All => None,
        };
        let failed = |error| Flash {
            error: Some(error),
            id,
            ..Flash::default()
        };
        let Ok(guard) = self.replaying.clone().try_lock_owned() else {
            return see_other(&failed(FlashError::Busy));
        };
        let this = self.clone();
        let task = tokio::spawn(async move {
            let _one_at_a_time = guard;
            let result =
                replay::replay(&this.settings, &this.store, &this.ct, &this.sinks, target).await;
            match &result {
                Ok(outcomes) => tracing::info!(
                    replayed = outcomes.len(),
                    resolved = outcomes.iter().filter(|o| o.resolved).count(),
                    "admin page: rejected records replayed"
                ),
                Err(e) => tracing::warn!(
                    error = %mask_text(&e.to_string()),
                    "admin page: replay failed"
                ),
            }
            result
        });
        let wait = (self.settings.server.request_timeout / 2).max(Duration::from_millis(100));
        let flash = match tokio::time::timeout(wait, task).await {
            Err(_) => Flash {
                running: true,
                id,
                ..Flash::default()
            },
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "admin page: the replay task ended abnormally");
                failed(FlashError::Failed)
            }
            Ok(Ok(Err(ReplayError::NotFound(_)))) => failed(FlashError::NotFound),
            Ok(Ok(Err(ReplayError::AlreadyResolved(_)))) => failed(FlashError::Resolved),
            Ok(Ok(Err(ReplayError::Sync(_)))) => failed(FlashError::Failed),
            Ok(Ok(Ok(outcomes))) => Flash {
                replayed: Some(outcomes.len() as u64),
                resolved: Some(outcomes.iter().filter(|o| o.resolved).count() as u64),
                id,
                ..Flash::default()
            },
        };
        see_other(&flash)
    }
}

/// Why an admin request is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    /// No password is configured: 404, as if the routes did not exist.
    Off,
    /// Missing or wrong credentials: 401 with the Basic challenge.
    Unauthenticated,
    /// A POST from another site: 403.
    CrossSite,
    /// A POST without the page's form token: 403.
    FormToken,
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let response = match self {
            Refusal::Off => return StatusCode::NOT_FOUND.into_response(),
            Refusal::Unauthenticated => (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, CHALLENGE)],
                "authentication required\n",
            )
                .into_response(),
            Refusal::CrossSite => {
                (StatusCode::FORBIDDEN, "cross-site request refused\n").into_response()
            }
            Refusal::FormToken => (
                StatusCode::FORBIDDEN,
                "missing or wrong form token: reload the admin page and try again\n",
            )
                .into_response(),
        };
        secured(response)
    }
}

/// The admin routes (`/admin`, `/admin/rejected/…`).
pub fn router(state: AdminState) -> Router {
    Router::new()
        .route("/admin", get(show))
        .route("/admin/rejected/replay-all", post(replay_all))
        .route("/admin/rejected/{id}/replay", post(replay_one))
        .with_state(state)
}

async fn show(
    State(s): State<AdminState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let started = Instant::now();
    let credentials = match s.authorize(&headers) {
        Ok(c) => c,
        Err(refusal) => return refusal.into_response(),
    };
    let snapshot = match s.snapshot().await {
        Ok(snap) => snap,
        Err(e) => {
            tracing::warn!(error = %e, "admin page: cannot read the state store");
            return secured(
                (StatusCode::SERVICE_UNAVAILABLE, "state store unavailable\n").into_response(),
            );
        }
    };
    let flash = Flash::from_query(query.as_deref());
    let ctx = Context {
        settings: &s.settings,
        instance: &s.instance,
        backend: s.store.backend(),
        secrets: &s.secrets,
        csrf: credentials.csrf_token(),
        flash: &flash,
    };
    secured(page::render(&snapshot, &ctx, started).into_response())
}

async fn replay_one(
    State(s): State<AdminState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(refusal) = s.authorize_post(&headers, &body) {
        return refusal.into_response();
    }
    match id.parse::<i64>() {
        Ok(id) => s.replay(Target::One(id)).await,
        Err(_) => see_other(&Flash {
            error: Some(FlashError::NotFound),
            ..Flash::default()
        }),
    }
}

async fn replay_all(State(s): State<AdminState>, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(refusal) = s.authorize_post(&headers, &body) {
        return refusal.into_response();
    }
    s.replay(Target::All).await
}

/// 303 to the page, with the replay's result in the query string.
fn see_other(flash: &Flash) -> Response {
    let location = format!("/admin{}", flash.to_query());
    secured((StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response())
}

/// Admin answers are never cached, framed or sent on as a referrer, and the page may load
/// nothing but its inline style.
fn secured(mut response: Response) -> Response {
    let h = response.headers_mut();
    for (name, value) in [
        (header::CACHE_CONTROL, "no-store"),
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; \
             frame-ancestors 'none'; base-uri 'none'",
        ),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    ] {
        h.insert(name, HeaderValue::from_static(value));
    }
    response
}
