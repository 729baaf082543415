//! `POST /webhooks/commercetools`: authenticates, parses ([`super::parse`]) and stores each
//! notification in the inbox *before* answering, so a 2xx always means "durably stored".
//!
//! Mounted by `ct-omnisend serve` ([`crate::serve`]). Answers:
//!
//! | case | status | stored |
//! |---|---|---|
//! | new notification | 202 `{"status":"stored"}` | inbox entry |
//! | already stored (same delivery id, or the same change under another id) | 200 `{"status":"duplicate"}` | nothing |
//! | the subscription's test message | 200 `{"status":"ignored"}` | nothing |
//! | well-formed but unprocessable (unknown notification type, …) | 202 `{"status":"rejected"}` | a rejected record (so Pub/Sub stops redelivering it) |
//! | missing or wrong token, invalid OIDC token | 401 | nothing |
//! | OIDC configured but Google's keys cannot be fetched | 503 | nothing |
//! | malformed (not JSON, bad base64, missing field) | 400, body over 1 MiB 413 | nothing |
//! | the store failed | 503 (the sender redelivers) | nothing |
//!
//! Authentication: the token (`CT_OMNISEND_WEBHOOK_TOKEN`) as `Authorization: Bearer …` or as
//! `?token=…`, compared in constant time. With `[server.oidc]`, Pub/Sub's OIDC ID token is
//! required in `Authorization: Bearer …` as well (see [`super::oidc`]), and the static token, if
//! set, is then accepted only as `?token=…`. Without a token and without OIDC every request is
//! refused.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use time::OffsetDateTime;

use tokio::sync::Notify;

use super::oidc::OidcVerifier;
use super::{MAX_BODY, Notification, NotificationKind, parse};
use crate::store::{NewInboxEntry, NewRejected, StateStore, Stored};

/// Entity name of unprocessable notifications in rejected records.
pub const NOTIFICATION: &str = "notification";

/// What the webhook handler needs.
#[derive(Clone)]
pub struct WebhookState {
    store: StateStore,
    token: Option<Arc<SecretString>>,
    oidc: Option<OidcVerifier>,
    wake: Option<Arc<Notify>>,
}

impl WebhookState {
    /// `token`: the shared secret senders must present (`None` refuses every request).
    pub fn new(store: StateStore, token: Option<SecretString>) -> Self {
        Self {
            store,
            token: token.map(Arc::new),
            oidc: None,
            wake: None,
        }
    }

    /// Also requires a valid Pub/Sub OIDC ID token.
    pub fn with_oidc(mut self, oidc: OidcVerifier) -> Self {
        self.oidc = Some(oidc);
        self
    }

    /// Notifies `wake` after each newly stored notification (the inbox processor).
    pub fn with_wake(mut self, wake: Arc<Notify>) -> Self {
        self.wake = Some(wake);
        self
    }
}

/// The webhook routes (body limit included).
pub fn router(state: WebhookState) -> Router {
    Router::new()
        .route("/webhooks/commercetools", post(commercetools))
        // One byte over the limit is enough to refuse; parse() checks the exact size too.
        .layer(DefaultBodyLimit::max(MAX_BODY + 1))
        .layer(axum::middleware::map_response(|r: Response| async move {
            crate::telemetry::count_ingest("commercetools", r.status());
            r
        }))
        .with_state(state)
}

fn answer(status: StatusCode, body: Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn problem(status: u16, title: &str, detail: &str) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    (
        status,
        [(header::CONTENT_TYPE, "application/problem+json")],
        json!({"type": "about:blank", "title": title, "status": status.as_u16(), "detail": detail})
            .to_string(),
    )
        .into_response()
}

/// Constant-time comparison (no early exit on the first differing byte), so the token cannot
/// be guessed byte by byte from response times. Hand-written: a dozen lines, not worth a crate.
pub(crate) fn same(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
}

fn token_matches(expected: &SecretString, candidates: &[Option<&str>]) -> bool {
    let expected = expected.expose_secret().as_bytes();
    candidates
        .iter()
        .flatten()
        .any(|t| same(t.as_bytes(), expected))
}

/// `Ok(())` when the request may pass, else the answer to give.
async fn authorize(
    state: &WebhookState,
    headers: &HeaderMap,
    query: &[(String, String)],
) -> Result<(), Response> {
    let from_query = query
        .iter()
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.as_str());
    let unauthorized = || {
        problem(
            401,
            "Unauthorized",
            "a valid webhook token is required (Authorization: Bearer … or ?token=…)",
        )
    };
    match (&state.oidc, &state.token) {
        (None, None) => Err(unauthorized()),
        (None, Some(token)) => {
            if token_matches(token, &[bearer(headers), from_query]) {
                Ok(())
            } else {
                Err(unauthorized())
            }
        }
        (Some(oidc), token) => {
            if let Some(token) = token
                && !token_matches(token, &[from_query])
            {
                return Err(unauthorized());
            }
            let Some(jwt) = bearer(headers) else {
                return Err(problem(
                    401,
                    "Unauthorized",
                    "a Pub/Sub OIDC token is required (Authorization: Bearer …)",
                ));
            };
            match oidc.verify(jwt).await {
                Ok(_) => Ok(()),
                Err(e) if e.is_unavailable() => {
                    tracing::warn!(error = %e, "OIDC keys unavailable; answering 503");
                    Err(problem(
                        503,
                        "Service Unavailable",
                        "the token signing keys could not be fetched; retry",
                    ))
                }
                Err(e) => {
                    tracing::info!(error = %e, "webhook OIDC token refused");
                    Err(problem(401, "Unauthorized", "the OIDC token is not valid"))
                }
            }
        }
    }
}

/// The inbox entry of a notification.
fn entry(n: &Notification, now: OffsetDateTime) -> NewInboxEntry {
    let payload = match &n.kind {
        NotificationKind::Message { payload, .. } => payload.clone(),
        other => json!({
            "notificationType": other.name(),
            "resource": {"typeId": n.resource.type_id, "id": n.resource.id},
            "version": other.resource_version(),
            "projectKey": n.project_key,
        }),
    };
    NewInboxEntry {
        delivery_id: n.delivery_id.clone(),
        source: "commercetools".into(),
        resource_type: n.resource.type_id.clone(),
        resource_id: n.resource.id.clone(),
        kind: n.kind.name().to_owned(),
        sequence_number: n.kind.sequence_number(),
        resource_version: n.kind.resource_version(),
        payload,
        received_at: now,
    }
}

async fn commercetools(
    State(state): State<WebhookState>,
    Query(query): Query<Vec<(String, String)>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(refused) = authorize(&state, &headers, &query).await {
        return refused;
    }
    let now = OffsetDateTime::now_utc();
    match parse(&body) {
        Ok(n) if n.kind == NotificationKind::SubscriptionTest => {
            tracing::info!(delivery = %n.delivery_id, "subscription test message acknowledged");
            answer(StatusCode::OK, json!({"status": "ignored"}))
        }
        Ok(n) => match state.store.store_notification(&entry(&n, now)).await {
            Ok(Stored::New(id)) => {
                if let Some(wake) = &state.wake {
                    wake.notify_one();
                }
                tracing::debug!(id, delivery = %n.delivery_id, kind = n.kind.name(), "notification stored");
                answer(StatusCode::ACCEPTED, json!({"status": "stored", "id": id}))
            }
            Ok(Stored::Duplicate) => answer(StatusCode::OK, json!({"status": "duplicate"})),
            Err(e) => {
                tracing::warn!(error = %e, "could not store a notification; answering 503");
                problem(
                    503,
                    "Service Unavailable",
                    "the notification could not be stored; retry",
                )
            }
        },
        Err(e) if e.is_permanent() => {
            let rejected = NewRejected {
                route: "webhooks".into(),
                entity: NOTIFICATION.into(),
                ct_id: e.delivery_id().unwrap_or("unknown").to_owned(),
                field: e.field().map(str::to_owned),
                reason: e.to_string(),
                payload: serde_json::from_slice(&body).ok(),
                at: now,
            };
            match state.store.add_rejected(&rejected).await {
                Ok(_) => {
                    crate::telemetry::webhook_rejected("commercetools", "unprocessable");
                    answer(StatusCode::ACCEPTED, json!({"status": "rejected"}))
                }
                Err(se) => {
                    tracing::warn!(error = %se, "could not record an unprocessable notification; answering 503");
                    problem(
                        503,
                        "Service Unavailable",
                        "the notification could not be stored; retry",
                    )
                }
            }
        }
        Err(e) => problem(e.status(), "Bad Request", &e.to_string()),
    }
}
