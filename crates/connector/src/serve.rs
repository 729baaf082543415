//! `ct-omnisend serve`: the HTTP server and the workers behind it, sharing one shutdown.
//!
//! * Routes: `POST /webhooks/commercetools` ([`crate::ingest::webhook`]), `POST
//!   /events/storefront` ([`crate::events::storefront`]), `GET /healthz` (process up),
//!   `GET /readyz` (state store answers, workers running, no sync cursor older than
//!   `server.ready_max_cursor_age_secs` while deltas are scheduled), `GET /metrics`
//!   (Prometheus text, [`crate::telemetry`], `docs/metrics.md`), `GET /admin` (the admin page,
//!   [`crate::admin`]).
//! * Every response carries an `x-request-id` (the caller's, or a new UUID); requests time out
//!   after `server.request_timeout_secs` (408); bodies are limited to 1 MiB. URIs are not
//!   logged (the webhook token may travel as `?token=`).
//! * Workers: the inbox processor ([`crate::events::process`]) and outbox delivery
//!   ([`crate::events::deliver`]), woken as soon as something is stored or queued; the
//!   [`Scheduler`] (delta syncs per entity and store, the full refresh; each job on one instance
//!   at a time); and a forwarder turning customer and product/category notifications into
//!   durable delta-run requests, debounced by [`RESYNC_DEBOUNCE`] so a burst of messages costs
//!   one run.
//! * On PostgreSQL each brand's rate controller also takes from the request budget shared by
//!   every instance on the database ([`crate::budget`]).
//! * Shutdown (SIGTERM/SIGINT or the [`CancellationToken`]): stop accepting, let in-flight
//!   requests finish, stop the workers after their current round (a delivery worker releases
//!   its leases, the scheduler stops its runs and releases their job leases), then return —
//!   within `server.shutdown_grace_secs`.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderName, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use commercetools::CtClient;
use metrics_exporter_prometheus::PrometheusHandle;
use omnisend::OmnisendClient;
use secrecy::SecretString;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::admin;
use crate::config::Settings;
use crate::events::deliver::Delivery;
use crate::events::process::{Processor, ResyncRequests};
use crate::events::storefront::{self, StorefrontState};
use crate::ingest::oidc::OidcVerifier;
use crate::ingest::webhook::{self, WebhookState};
use crate::schedule::{self, JobKind, JobSpec, Scheduler, SyncRunner};
use crate::store::StateStore;
use crate::telemetry;

/// How long the change-sync worker gathers notifications before it runs.
pub const RESYNC_DEBOUNCE: Duration = Duration::from_secs(1);

/// Everything `serve` runs with.
pub struct Service {
    /// Checked settings.
    pub settings: Arc<Settings>,
    /// State store.
    pub store: StateStore,
    /// commercetools client (re-reads resources).
    pub ct: CtClient,
    /// One Omnisend client per brand id.
    pub clients: HashMap<String, OmnisendClient>,
    /// `CT_OMNISEND_WEBHOOK_TOKEN`.
    pub webhook_token: Option<SecretString>,
    /// `CT_OMNISEND_STOREFRONT_TOKEN`.
    pub storefront_token: Option<SecretString>,
    /// Cart-recovery signing secret.
    pub recovery_secret: Option<SecretString>,
    /// Pub/Sub OIDC verification.
    pub oidc: Option<OidcVerifier>,
    /// How often idle workers look for due work (retries, other instances' rows).
    pub idle_poll: Duration,
    /// Lease owner name of this instance.
    pub instance: String,
    /// The admin page password (env var named by `server.admin.password_env`); `None` turns
    /// `/admin` off (404).
    pub admin_password: Option<SecretString>,
}

#[derive(Clone)]
struct Health {
    store: StateStore,
    workers_up: Arc<AtomicBool>,
    /// Cursors older than this make the instance unready (`None` = not checked).
    max_cursor_age: Option<Duration>,
    /// The cursors that count: (catalog entity?, route) of the jobs with a delta interval.
    watched: Arc<Vec<(bool, String)>>,
}

async fn healthz() -> impl IntoResponse {
    (StatusCode::OK, axum::Json(json!({"status": "ok"})))
}

async fn readyz(State(h): State<Health>) -> impl IntoResponse {
    let db = h.store.ping().await.is_ok();
    let workers = h.workers_up.load(Ordering::Relaxed);
    let mut stale: Vec<String> = Vec::new();
    if let (true, Some(max)) = (db, h.max_cursor_age) {
        let now = time::OffsetDateTime::now_utc();
        if let Ok(cursors) = h.store.cursors().await {
            stale = cursors
                .into_iter()
                .filter(|c| {
                    h.watched.iter().any(|(catalog, route)| {
                        *route == c.route
                            && *catalog == crate::sync::catalog::is_catalog_entity(&c.entity)
                    })
                })
                .filter(|c| now - c.updated_at > max)
                .map(|c| format!("{}:{}", c.entity, c.route))
                .collect();
        }
    }
    let status = if db && workers && stale.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        axum::Json(json!({"database": db, "workers": workers, "stale_cursors": stale})),
    )
}

#[derive(Clone)]
struct MetricsState {
    handle: PrometheusHandle,
    store: StateStore,
    clients: Arc<HashMap<String, OmnisendClient>>,
}

async fn metrics(State(m): State<MetricsState>) -> axum::response::Response {
    let text = telemetry::render(&m.handle, &m.store, &m.clients).await;
    (
        StatusCode::OK,
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

/// The HTTP routes with their layers.
pub fn router(service: &Service, inbox_wake: Arc<Notify>, workers_up: Arc<AtomicBool>) -> Router {
    let mut hook = WebhookState::new(service.store.clone(), service.webhook_token.clone())
        .with_wake(inbox_wake.clone());
    if let Some(oidc) = &service.oidc {
        hook = hook.with_oidc(oidc.clone());
    }
    let front = StorefrontState::new(
        service.store.clone(),
        service.storefront_token.clone(),
        Some(inbox_wake),
    );
    let schedule = &service.settings.schedule;
    // Catalog cursors are per store route, contacts cursors per brand (its id).
    let mut watched: Vec<(bool, String)> = Vec::new();
    for job in schedule::plan_jobs(&service.settings)
        .iter()
        .filter(|j| j.delta.is_some())
    {
        match job.kind {
            JobKind::Catalog => watched.push((true, job.store.clone())),
            JobKind::Contacts => watched.extend(
                service
                    .settings
                    .stores
                    .iter()
                    .filter(|s| s.key == job.store)
                    .map(|s| (false, s.omnisend_api_key_env.clone())),
            ),
        }
    }
    let health = Health {
        store: service.store.clone(),
        watched: Arc::new(watched),
        workers_up,
        max_cursor_age: service.settings.server.ready_max_cursor_age.filter(|_| {
            schedule.enabled
                && (schedule.catalog_delta.is_some() || schedule.contacts_delta.is_some())
        }),
    };
    let metrics_state = MetricsState {
        handle: telemetry::install(),
        store: service.store.clone(),
        clients: Arc::new(service.clients.clone()),
    };
    let request_id = HeaderName::from_static("x-request-id");
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz).with_state(health))
        .route("/metrics", get(metrics).with_state(metrics_state))
        .merge(webhook::router(hook))
        .merge(storefront::router(front))
        .merge(admin::router(admin::AdminState::from_service(service)))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            service.settings.server.request_timeout,
        ))
        // Every log line of a request carries its id. The path only: the query may hold the
        // webhook token, and headers are never logged.
        .layer(
            TraceLayer::new_for_http().make_span_with(|req: &axum::http::Request<_>| {
                let id = req
                    .headers()
                    .get("x-request-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                tracing::info_span!("request", request_id = %id, method = %req.method(), path = %req.uri().path())
            }),
        )
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
}

/// Serves on `listener` until `stop` is cancelled, with the workers; see the module docs.
pub async fn run(
    service: Service,
    listener: TcpListener,
    stop: CancellationToken,
) -> std::io::Result<()> {
    let shared = crate::budget::share(&service.store, service.clients.values());
    if shared > 0 {
        tracing::info!(
            brands = shared,
            "request budget shared with the other instances on this database"
        );
    }
    let inbox_wake = Arc::new(Notify::new());
    let delivery_wake = Arc::new(Notify::new());
    let workers_up = Arc::new(AtomicBool::new(true));
    let app = router(&service, inbox_wake.clone(), workers_up.clone());

    let resync = Arc::new(ResyncRequests::default());
    let processor = Processor::new(
        service.store.clone(),
        service.ct.clone(),
        service.settings.clone(),
        service.recovery_secret.clone(),
        delivery_wake.clone(),
    )
    .with_resync(resync.clone())
    .with_owner(service.instance.clone());
    let delivery = Delivery::new(
        service.store.clone(),
        service.clients.clone(),
        service.settings.events.clone(),
        service.instance.clone(),
        delivery_wake.clone(),
    );
    let workers_stop = CancellationToken::new();
    let processing =
        tokio::spawn(processor.run(workers_stop.clone(), inbox_wake.clone(), service.idle_poll));
    let delivering = tokio::spawn(delivery.run(workers_stop.clone(), service.idle_poll));
    let sinks = crate::app::live_sinks(&service.settings, &service.clients);
    let pruning = tokio::spawn(prune_periodically(
        service.store.clone(),
        service.settings.events.retention,
        workers_stop.clone(),
    ));
    let jobs = schedule::plan_jobs(&service.settings);
    let scheduler_wake = Arc::new(Notify::new());
    let scheduler = Scheduler::new(
        service.store.clone(),
        jobs.clone(),
        Arc::new(SyncRunner::new(
            service.ct.clone(),
            service.store.clone(),
            service.settings.clone(),
            sinks,
        )),
        service.instance.clone(),
        service.settings.schedule.lease,
    )
    .with_wake(scheduler_wake.clone());
    // The scheduler stops with the listener: no new job starts while requests drain.
    let scheduling = tokio::spawn(scheduler.run(stop.clone()));
    let forwarding = tokio::spawn(forward_resync_requests(
        service.store.clone(),
        jobs,
        resync,
        scheduler_wake,
        workers_stop.clone(),
    ));
    // Anything left from a previous run (a crash between acknowledgement and delivery) is
    // picked up at once.
    inbox_wake.notify_one();
    delivery_wake.notify_one();

    let grace = service.settings.server.shutdown_grace;
    let server_stop = stop.clone();
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(async move { server_stop.cancelled().await })
        .await;
    workers_up.store(false, Ordering::Relaxed);
    workers_stop.cancel();
    let joined = tokio::time::timeout(grace, async {
        let _ = processing.await;
        let _ = delivering.await;
        let _ = scheduling.await;
        let _ = forwarding.await;
        let _ = pruning.await;
    })
    .await;
    if joined.is_err() {
        tracing::warn!(
            grace_secs = grace.as_secs(),
            "workers did not stop within the grace period"
        );
    }
    served
}

/// Applies the retention period (`events.retention_days`) at start and then hourly.
async fn prune_periodically(
    store: StateStore,
    retention: Option<Duration>,
    stop: CancellationToken,
) {
    let Some(retention) = retention else {
        return;
    };
    let mut tick = tokio::time::interval(Duration::from_secs(3600));
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let before = time::OffsetDateTime::now_utc() - retention;
        match store.prune_events(before).await {
            Ok((0, 0)) => {}
            Ok((inbox, bodies)) => {
                tracing::info!(
                    inbox,
                    bodies,
                    "retention: old notifications and event bodies removed"
                )
            }
            Err(e) => tracing::warn!(error = %e, "retention pruning failed"),
        }
    }
}

/// Turns the delta syncs change notifications ask for into durable job requests (debounced by
/// [`RESYNC_DEBOUNCE`]), which the scheduler of whichever instance looks first runs.
async fn forward_resync_requests(
    store: StateStore,
    jobs: Vec<JobSpec>,
    requests: Arc<ResyncRequests>,
    scheduler_wake: Arc<Notify>,
    stop: CancellationToken,
) {
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = requests.wake.notified() => {}
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(RESYNC_DEBOUNCE) => {}
        }
        let (customers, catalog) = requests.take();
        let now = time::OffsetDateTime::now_utc();
        for (wanted, kind) in [(catalog, JobKind::Catalog), (customers, JobKind::Contacts)] {
            if !wanted {
                continue;
            }
            match Scheduler::request(&store, &jobs, kind, now).await {
                Ok(n) => tracing::info!(
                    jobs = n,
                    kind = kind.as_str(),
                    "delta runs requested after change notifications"
                ),
                Err(e) => {
                    // Left to the next scheduled delta run, which reads the same changes.
                    tracing::warn!(error = %e, kind = kind.as_str(), "cannot request delta runs")
                }
            }
        }
        scheduler_wake.notify_one();
    }
}

/// A token cancelled on SIGTERM or SIGINT (Ctrl-C).
pub fn shutdown_on_signals() -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term =
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot listen for SIGTERM");
                        let _ = ctrl_c.await;
                        t.cancel();
                        return;
                    }
                };
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
        }
        #[cfg(not(unix))]
        {
            let _ = ctrl_c.await;
        }
        tracing::info!("shutting down");
        t.cancel();
    });
    token
}
