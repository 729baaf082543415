//! `POST /events/storefront`: shopper behaviour the storefront (or its middleware) reports —
//! `viewed product`, `added product to cart`, `started checkout`. Authenticated with
//! `CT_OMNISEND_STOREFRONT_TOKEN` as `Authorization: Bearer …`; the request is checked, stored
//! in the inbox (durable before the 2xx, like webhooks) and turned into an Omnisend event by
//! the inbox processor through the same mapping, ledger and outbox. The JSON schema is in
//! `docs/storefront-events.md`.
//!
//! | case | status |
//! |---|---|
//! | stored | 202 `{"status":"stored"}` |
//! | the same `requestId` again | 200 `{"status":"duplicate"}` |
//! | missing/wrong token | 401 |
//! | not JSON, unknown field, missing product/cart/identity | 400 with the field |
//! | over 1 MiB | 413 |
//! | the store failed | 503 |

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use time::OffsetDateTime;
use tokio::sync::Notify;

use crate::ingest::MAX_BODY;
use crate::store::{NewInboxEntry, StateStore, Stored};

/// `source` of storefront inbox entries.
pub const SOURCE: &str = "storefront";

/// Inbox `kind` of each storefront event.
pub mod kind {
    /// `viewed product`.
    pub const VIEWED_PRODUCT: &str = "ViewedProduct";
    /// `added product to cart`.
    pub const ADDED_TO_CART: &str = "AddedProductToCart";
    /// `started checkout`.
    pub const STARTED_CHECKOUT: &str = "StartedCheckout";
}

/// Who the shopper is (at least one of the three).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ShopperRef {
    /// Email address as entered.
    #[serde(default)]
    pub email: Option<String>,
    /// commercetools customer id.
    #[serde(default)]
    pub customer_id: Option<String>,
    /// commercetools anonymous session id (identifies nobody by itself).
    #[serde(default)]
    pub anonymous_id: Option<String>,
}

/// The product viewed.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProductRef {
    /// commercetools product id.
    #[serde(default)]
    pub id: Option<String>,
    /// Variant SKU.
    #[serde(default)]
    pub sku: Option<String>,
}

/// Consent the shopper gave on the storefront (forwarded only when `email` is true).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConsentEvidence {
    /// Email marketing consent given.
    #[serde(default)]
    pub email: Option<bool>,
    /// Where (form name, page).
    #[serde(default)]
    pub source: Option<String>,
    /// When (RFC 3339).
    #[serde(default)]
    pub created_at: Option<String>,
    /// Shopper IP.
    #[serde(default)]
    pub ip: Option<String>,
    /// Shopper user agent.
    #[serde(default)]
    pub user_agent: Option<String>,
}

/// One storefront event request.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StorefrontEvent {
    /// `viewed product`, `added product to cart` or `started checkout`.
    pub event: String,
    /// Idempotency key: a second request with the same id is stored once.
    #[serde(default)]
    pub request_id: Option<String>,
    /// The commercetools store (route) the shopper is in.
    #[serde(default)]
    pub store_key: Option<String>,
    /// The shopper.
    #[serde(default)]
    pub shopper: ShopperRef,
    /// `viewed product`: the product.
    #[serde(default)]
    pub product: Option<ProductRef>,
    /// Cart events: the commercetools cart id …
    #[serde(default)]
    pub cart_id: Option<String>,
    /// … or the cart itself (commercetools Cart JSON).
    #[serde(default)]
    pub cart: Option<Value>,
    /// Optional consent evidence.
    #[serde(default)]
    pub consent: Option<ConsentEvidence>,
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct StorefrontError {
    /// JSON path of the offending field.
    pub field: String,
    /// What is wrong.
    pub reason: String,
}

fn bad(field: &str, reason: &str) -> StorefrontError {
    StorefrontError {
        field: field.into(),
        reason: reason.into(),
    }
}

fn non_empty(v: Option<&str>) -> Option<&str> {
    v.map(str::trim).filter(|s| !s.is_empty())
}

impl StorefrontEvent {
    /// Parses and checks a request body.
    pub fn parse(body: &[u8]) -> Result<Self, StorefrontError> {
        let value: Value = serde_json::from_slice(body).map_err(|e| bad("body", &e.to_string()))?;
        if !value.is_object() {
            return Err(bad("body", "must be a JSON object"));
        }
        let ev: StorefrontEvent =
            serde_json::from_value(value).map_err(|e| bad("body", &e.to_string()))?;
        ev.check()?;
        Ok(ev)
    }

    /// The inbox `kind` and (`resource_type`, `resource_id`) of the request.
    pub fn target(&self) -> (&'static str, &'static str, String) {
        match self.event.as_str() {
            "viewed product" => {
                let p = self.product.clone().unwrap_or_default();
                let id = match (non_empty(p.id.as_deref()), non_empty(p.sku.as_deref())) {
                    (Some(id), _) => id.to_owned(),
                    (None, Some(sku)) => format!("sku={sku}"),
                    (None, None) => String::new(),
                };
                (kind::VIEWED_PRODUCT, "product", id)
            }
            other => {
                let kind = if other == "started checkout" {
                    kind::STARTED_CHECKOUT
                } else {
                    kind::ADDED_TO_CART
                };
                let id = non_empty(self.cart_id.as_deref())
                    .map(str::to_owned)
                    .or_else(|| {
                        self.cart
                            .as_ref()
                            .and_then(|c| c.get("id"))
                            .and_then(Value::as_str)
                            .map(str::to_owned)
                    })
                    .unwrap_or_default();
                (kind, "cart", id)
            }
        }
    }

    fn check(&self) -> Result<(), StorefrontError> {
        match self.event.as_str() {
            "viewed product" => {
                let p = self
                    .product
                    .as_ref()
                    .ok_or_else(|| bad("product", "required for viewed product"))?;
                if non_empty(p.id.as_deref()).is_none() && non_empty(p.sku.as_deref()).is_none() {
                    return Err(bad("product", "give the product id or a variant sku"));
                }
                let s = &self.shopper;
                if non_empty(s.email.as_deref()).is_none()
                    && non_empty(s.customer_id.as_deref()).is_none()
                {
                    return Err(bad(
                        "shopper",
                        "viewed product needs the shopper's email or customer id",
                    ));
                }
            }
            "added product to cart" | "started checkout" => match (&self.cart_id, &self.cart) {
                (Some(id), None) if !id.trim().is_empty() => {}
                (None, Some(cart)) => {
                    if cart.get("id").and_then(Value::as_str).is_none() {
                        return Err(bad("cart.id", "the cart JSON must have its id"));
                    }
                    serde_json::from_value::<commercetools::models::Cart>(cart.clone())
                        .map_err(|e| bad("cart", &format!("not a commercetools cart: {e}")))?;
                }
                (Some(_), Some(_)) => {
                    return Err(bad("cartId", "give cartId or cart, not both"));
                }
                _ => return Err(bad("cartId", "required (or the cart JSON as cart)")),
            },
            other => {
                return Err(bad(
                    "event",
                    &format!(
                        "{other:?} is not one of \"viewed product\", \"added product to cart\", \
                         \"started checkout\""
                    ),
                ));
            }
        }
        if let Some(email) = non_empty(self.shopper.email.as_deref())
            && crate::identity::Email::parse(email).is_err()
        {
            return Err(bad("shopper.email", "not a valid email address"));
        }
        if let Some(c) = &self.consent
            && let Some(at) = &c.created_at
            && OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339).is_err()
        {
            return Err(bad("consent.createdAt", "must be an RFC 3339 timestamp"));
        }
        Ok(())
    }
}

/// What the storefront handler needs.
#[derive(Clone)]
pub struct StorefrontState {
    store: StateStore,
    token: Option<Arc<SecretString>>,
    wake: Option<Arc<Notify>>,
}

impl StorefrontState {
    /// `token`: `CT_OMNISEND_STOREFRONT_TOKEN` (`None` refuses every request).
    pub fn new(store: StateStore, token: Option<SecretString>, wake: Option<Arc<Notify>>) -> Self {
        Self {
            store,
            token: token.map(Arc::new),
            wake,
        }
    }
}

/// The storefront route (body limit included).
pub fn router(state: StorefrontState) -> Router {
    Router::new()
        .route("/events/storefront", post(storefront))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(axum::middleware::map_response(|r: Response| async move {
            crate::telemetry::count_ingest("storefront", r.status());
            r
        }))
        .with_state(state)
}

fn problem(status: StatusCode, detail: &str, field: Option<&str>) -> Response {
    let mut body = json!({"type": "about:blank", "title": status.canonical_reason(),
        "status": status.as_u16(), "detail": detail});
    if let Some(f) = field {
        body["errors"] = json!([{"field": f, "message": detail}]);
    }
    (
        status,
        [(header::CONTENT_TYPE, "application/problem+json")],
        body.to_string(),
    )
        .into_response()
}

async fn storefront(
    State(state): State<StorefrontState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let ok = match (&state.token, presented) {
        (Some(expected), Some(p)) => {
            crate::ingest::webhook::same(expected.expose_secret().as_bytes(), p.as_bytes())
        }
        _ => false,
    };
    if !ok {
        return problem(
            StatusCode::UNAUTHORIZED,
            "a valid storefront token is required (Authorization: Bearer …)",
            None,
        );
    }
    let ev = match StorefrontEvent::parse(&body) {
        Ok(ev) => ev,
        Err(e) => return problem(StatusCode::BAD_REQUEST, &e.reason, Some(&e.field)),
    };
    let (kind, resource_type, resource_id) = ev.target();
    let delivery_id = match non_empty(ev.request_id.as_deref()) {
        Some(r) => format!("storefront:{r}"),
        None => format!("storefront:{}", uuid::Uuid::new_v4()),
    };
    let entry = NewInboxEntry {
        delivery_id,
        source: SOURCE.into(),
        resource_type: resource_type.into(),
        resource_id,
        kind: kind.into(),
        sequence_number: None,
        resource_version: None,
        payload: serde_json::to_value(&ev).unwrap_or(Value::Null),
        received_at: OffsetDateTime::now_utc(),
    };
    match state.store.store_notification(&entry).await {
        Ok(Stored::New(id)) => {
            if let Some(w) = &state.wake {
                w.notify_one();
            }
            (
                StatusCode::ACCEPTED,
                [(header::CONTENT_TYPE, "application/json")],
                json!({"status": "stored", "id": id}).to_string(),
            )
                .into_response()
        }
        Ok(Stored::Duplicate) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            json!({"status": "duplicate"}).to_string(),
        )
            .into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "could not store a storefront event; answering 503");
            problem(
                StatusCode::SERVICE_UNAVAILABLE,
                "the event could not be stored; retry",
                None,
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_event_needs_its_subject_and_a_known_name() {
        let ok =
            br#"{"event":"viewed product","product":{"sku":"S-1"},"shopper":{"email":"a@b.co"}}"#;
        let ev = StorefrontEvent::parse(ok).unwrap();
        assert_eq!(
            ev.target(),
            (kind::VIEWED_PRODUCT, "product", "sku=S-1".into())
        );
        let cases: [(&[u8], &str); 6] = [
            (b"not json", "body"),
            (br#"{"event":"bought"}"#, "event"),
            (
                br#"{"event":"viewed product","shopper":{"email":"a@b.co"}}"#,
                "product",
            ),
            (
                br#"{"event":"viewed product","product":{"id":"p"}}"#,
                "shopper",
            ),
            (br#"{"event":"started checkout"}"#, "cartId"),
            (
                br#"{"event":"started checkout","cartId":"c","shopper":{"email":"nope"}}"#,
                "shopper.email",
            ),
        ];
        for (body, field) in cases {
            let e = StorefrontEvent::parse(body).unwrap_err();
            assert_eq!(e.field, field, "{}", String::from_utf8_lossy(body));
        }
        let unknown = br#"{"event":"started checkout","cartId":"c","extra":1}"#;
        assert_eq!(StorefrontEvent::parse(unknown).unwrap_err().field, "body");
        let array = br#"["started checkout", null, null, {}, "c"]"#;
        assert_eq!(StorefrontEvent::parse(array).unwrap_err().field, "body");
    }
}
