//! `ct-omnisend serve`: the HTTP server and the workers behind it, sharing one shutdown.
//!
//! * Routes: `POST /webhooks/commercetools` ([`crate::ingest::webhook`]), `POST
//!   /events/storefront` ([`crate::events::storefront`]), `GET /healthz` (process up),
//!   `GET /readyz` (state store answers, workers running).
//! * Every response carries an `x-request-id` (the caller's, or a new UUID); requests time out
//!   after `server.request_timeout_secs` (408); bodies are limited to 1 MiB. URIs are not
//!   logged (the webhook token may travel as `?token=`).
//! * Workers: the inbox processor ([`crate::events::process`]) and outbox delivery
//!   ([`crate::events::deliver`]), woken as soon as something is stored or queued; and a
//!   change-sync worker: customer and product/category notifications run the contacts or
//!   catalog **delta sync** (the same mapping, planning and writes as `sync`, sharing the
//!   brand's rate controller), debounced by [`RESYNC_DEBOUNCE`] so a burst of messages costs
//!   one run.
//! * Shutdown (SIGTERM/SIGINT or the [`CancellationToken`]): stop accepting, let in-flight
//!   requests finish, stop the workers after their current round (a delivery worker releases
//!   its leases), then return — within `server.shutdown_grace_secs`.

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
use omnisend::OmnisendClient;
use secrecy::SecretString;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;

use crate::config::Settings;
use crate::events::deliver::Delivery;
use crate::events::process::{Processor, ResyncRequests};
use crate::events::storefront::{self, StorefrontState};
use crate::ingest::oidc::OidcVerifier;
use crate::ingest::webhook::{self, WebhookState};
use crate::store::StateStore;
use crate::sync::catalog::{CatalogOptions, CatalogSync};
use crate::sync::contacts::{ContactOptions, ContactSync};
use crate::sync::sink::Sink;

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
}

#[derive(Clone)]
struct Health {
    store: StateStore,
    workers_up: Arc<AtomicBool>,
}

async fn healthz() -> impl IntoResponse {
    (StatusCode::OK, axum::Json(json!({"status": "ok"})))
}

async fn readyz(State(h): State<Health>) -> impl IntoResponse {
    let db = h.store.ping().await.is_ok();
    let workers = h.workers_up.load(Ordering::Relaxed);
    let status = if db && workers {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        axum::Json(json!({"database": db, "workers": workers})),
    )
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
    let health = Health {
        store: service.store.clone(),
        workers_up,
    };
    let request_id = HeaderName::from_static("x-request-id");
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz).with_state(health))
        .merge(webhook::router(hook))
        .merge(storefront::router(front))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            service.settings.server.request_timeout,
        ))
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
}

/// Serves on `listener` until `stop` is cancelled, with the workers; see the module docs.
pub async fn run(
    service: Service,
    listener: TcpListener,
    stop: CancellationToken,
) -> std::io::Result<()> {
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
    .with_resync(resync.clone());
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
    let sinks: HashMap<String, Sink> = service
        .settings
        .stores
        .iter()
        .filter_map(|s| {
            let client = service.clients.get(&s.omnisend_api_key_env)?;
            Some((s.key.clone(), Sink::Live(client.clone())))
        })
        .collect();
    let pruning = tokio::spawn(prune_periodically(
        service.store.clone(),
        service.settings.events.retention,
        workers_stop.clone(),
    ));
    let syncing = tokio::spawn(change_syncs(
        service.settings.clone(),
        service.store.clone(),
        service.ct.clone(),
        sinks,
        resync,
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
        let _ = syncing.await;
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

/// Runs the delta syncs notifications ask for, one at a time, until `stop`.
async fn change_syncs(
    settings: Arc<Settings>,
    store: StateStore,
    ct: CtClient,
    sinks: HashMap<String, Sink>,
    requests: Arc<ResyncRequests>,
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
        if catalog {
            let engine = CatalogSync::new(
                ct.clone(),
                store.clone(),
                (*settings).clone(),
                sinks.clone(),
            );
            let opts = CatalogOptions {
                full: false,
                store: None,
            };
            match engine.run(&opts, &|_| {}).await {
                Ok(runs) => tracing::info!(
                    runs = runs.len(),
                    "catalog delta sync after change notifications"
                ),
                Err(e) => {
                    tracing::warn!(error = %e, "catalog delta sync after change notifications failed")
                }
            }
        }
        if customers {
            let engine = ContactSync::new(
                ct.clone(),
                store.clone(),
                (*settings).clone(),
                sinks.clone(),
            );
            let opts = ContactOptions {
                full: false,
                store: None,
            };
            match engine.run(&opts).await {
                Ok(runs) => tracing::info!(
                    runs = runs.len(),
                    "contacts delta sync after change notifications"
                ),
                Err(e) => {
                    tracing::warn!(error = %e, "contacts delta sync after change notifications failed")
                }
            }
        }
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
