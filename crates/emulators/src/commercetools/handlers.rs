//! HTTP layer of the commercetools emulator: router, auth/fault middleware and handlers.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use super::subscriptions::{self, Refusal};
use base64::Engine;
use serde_json::{Map, Value, json};

use super::predicate::{
    CART_FIELDS, COMMON_FIELDS, CUSTOMER_FIELDS, DISCOUNT_CODE_FIELDS, FieldDef, MESSAGE_FIELDS,
    ORDER_FIELDS, PRODUCT_FIELDS,
};
use super::query::parse_params;
use super::{CtState, Shared, Token, lock};
use crate::faults::Injected;
use crate::util::query_pairs;

/// Builds the router.
pub(crate) fn router(shared: Shared) -> Router {
    Router::new()
        .route("/oauth/token", post(token))
        .route("/{pk}", get(project))
        .route("/{pk}/{resource}", get(query).post(create))
        .route(
            "/{pk}/{resource}/{id}",
            get(by_id).post(update).delete(delete),
        )
        .route("/{pk}/in-store/{store}/{resource}", get(in_store_query))
        .route(
            "/{pk}/in-store/{store}/{resource}/{id}",
            get(in_store_by_id),
        )
        .fallback(not_found_route)
        .layer(middleware::from_fn_with_state(shared.clone(), guard))
        .with_state(shared)
}

/// A commercetools error response: `{statusCode, message, errors: [{code, message}]}`.
pub(crate) fn ct_error(status: u16, code: &str, message: &str) -> Response {
    let body = json!({
        "statusCode": status,
        "message": message,
        "errors": [{"code": code, "message": message}],
    });
    json_response(status, body)
}

fn json_response(status: u16, body: Value) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, axum::Json(body)).into_response()
}

fn invalid_token() -> Response {
    json_response(
        401,
        json!({
            "statusCode": 401,
            "message": "invalid_token",
            "errors": [{"code": "invalid_token", "message": "invalid_token"}],
            "error": "invalid_token",
            "error_description": "invalid_token",
        }),
    )
}

/// Counts requests, adds latency, authenticates API calls and injects faults.
async fn guard(State(shared): State<Shared>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_owned();
    let is_auth = path.starts_with("/oauth/");
    let bearer = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "))
        .map(|t| t.trim().to_owned());
    let (latency, rejection) = {
        let mut s = lock(&shared);
        s.request_count += 1;
        let latency = s.faults.latency();
        let rejection = if is_auth {
            None
        } else {
            authorize(&mut s, bearer.as_deref(), &path).or_else(|| {
                s.faults
                    .decide(&[500, 502, 503])
                    .map(|Injected::Status(code)| fault_response(code))
            })
        };
        (latency, rejection)
    };
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    match rejection {
        None => next.run(req).await,
        Some(resp) => resp,
    }
}

/// `Some(rejection)` unless the bearer token is valid for this project.
fn authorize(s: &mut CtState, bearer: Option<&str>, path: &str) -> Option<Response> {
    let now = tokio::time::Instant::now();
    let Some(token) = bearer
        .and_then(|t| s.tokens.get(t))
        .filter(|t| t.expires > now)
    else {
        return Some(invalid_token());
    };
    let mut segments = path.trim_start_matches('/').split('/');
    let pk = segments.next().unwrap_or_default();
    if pk != s.project_key {
        return Some(insufficient_scope(&format!("manage_project:{pk}")));
    }
    // Only the Subscriptions endpoint checks the token's scopes (it is the only one with a
    // scope of its own that a read-only API client lacks).
    if segments.next() == Some("subscriptions") {
        let granted = token.scope.split_whitespace().any(|g| {
            g == format!("manage_subscriptions:{pk}") || g == format!("manage_project:{pk}")
        });
        if !granted {
            return Some(insufficient_scope(&format!("manage_subscriptions:{pk}")));
        }
    }
    None
}

fn insufficient_scope(missing: &str) -> Response {
    let msg = format!("Insufficient scope. One of the following scopes is missing: {missing}");
    let mut resp = ct_error(403, "insufficient_scope", &msg);
    if let Ok(v) = HeaderValue::from_str("Bearer error=\"insufficient_scope\"") {
        resp.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    resp
}

fn fault_response(code: u16) -> Response {
    let mut resp = match code {
        429 => ct_error(
            429,
            "TooManyRequests",
            "Too many requests. Please retry later.",
        ),
        502 => ct_error(502, "General", "Bad Gateway"),
        503 => ct_error(
            503,
            "OverCapacity",
            "The service is currently over capacity. Please retry later.",
        ),
        _ => ct_error(500, "General", "Internal server error."),
    };
    if code == 429 {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    resp
}

fn oauth_error(status: u16, error: &str, message: &str) -> Response {
    json_response(
        status,
        json!({
            "statusCode": status,
            "message": message,
            "errors": [{"code": error, "message": message}],
            "error": error,
            "error_description": message,
        }),
    )
}

/// `POST /oauth/token` (client credentials; parameters in the form body or the query string).
async fn token(
    State(shared): State<Shared>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let credentials = headers
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Basic "))
        .and_then(|b| {
            base64::engine::general_purpose::STANDARD
                .decode(b.trim())
                .ok()
        })
        .and_then(|b| String::from_utf8(b).ok());
    let mut params = query_pairs(raw.as_deref());
    params.extend(query_pairs(std::str::from_utf8(&body).ok()));
    let param = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };

    let mut s = lock(&shared);
    let expected = format!("{}:{}", s.client_id, s.client_secret);
    if credentials.as_deref() != Some(expected.as_str()) {
        return oauth_error(
            401,
            "invalid_client",
            "Please provide valid client credentials using HTTP Basic Authentication.",
        );
    }
    match param("grant_type").as_deref() {
        Some("client_credentials") => {}
        Some(other) => {
            return oauth_error(
                400,
                "unsupported_grant_type",
                &format!("Unsupported grant type '{other}'."),
            );
        }
        None => {
            return oauth_error(
                400,
                "invalid_request",
                "Missing required parameter: grant_type.",
            );
        }
    }
    let scope = param("scope")
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| format!("manage_project:{}", s.project_key));
    let access_token = uuid::Uuid::new_v4().simple().to_string();
    let ttl = s.token_ttl_secs;
    s.tokens.insert(
        access_token.clone(),
        Token {
            expires: tokio::time::Instant::now() + std::time::Duration::from_secs(ttl),
            scope: scope.clone(),
        },
    );
    json_response(
        200,
        json!({
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": ttl,
            "scope": scope,
        }),
    )
}

/// `GET /{projectKey}`.
async fn project(State(shared): State<Shared>) -> Response {
    json_response(200, lock(&shared).project.clone())
}

/// The resource collections the emulator serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Resource {
    Products,
    ProductProjections,
    Categories,
    Stores,
    Channels,
    ProductTypes,
    Customers,
    CustomerGroups,
    Types,
    Carts,
    Orders,
    DiscountCodes,
    Messages,
    Subscriptions,
}

impl Resource {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "products" => Self::Products,
            "product-projections" => Self::ProductProjections,
            "categories" => Self::Categories,
            "stores" => Self::Stores,
            "channels" => Self::Channels,
            "product-types" => Self::ProductTypes,
            "customers" => Self::Customers,
            "customer-groups" => Self::CustomerGroups,
            "types" => Self::Types,
            "carts" => Self::Carts,
            "orders" => Self::Orders,
            "discount-codes" => Self::DiscountCodes,
            "messages" => Self::Messages,
            "subscriptions" => Self::Subscriptions,
            _ => return None,
        })
    }

    fn fields(self) -> &'static [FieldDef] {
        match self {
            Self::Products | Self::ProductProjections => PRODUCT_FIELDS,
            Self::Customers => CUSTOMER_FIELDS,
            Self::Carts => CART_FIELDS,
            Self::Orders => ORDER_FIELDS,
            Self::DiscountCodes => DISCOUNT_CODE_FIELDS,
            Self::Messages => MESSAGE_FIELDS,
            _ => COMMON_FIELDS,
        }
    }

    fn store(self, s: &CtState) -> &std::collections::BTreeMap<String, Value> {
        match self {
            Self::Products | Self::ProductProjections => &s.products,
            Self::Categories => &s.categories,
            Self::Stores => &s.stores,
            Self::Channels => &s.channels,
            Self::ProductTypes => &s.product_types,
            Self::Customers => &s.customers,
            Self::CustomerGroups => &s.customer_groups,
            Self::Types => &s.types,
            Self::Carts => &s.carts,
            Self::Orders => &s.orders,
            Self::DiscountCodes => &s.discount_codes,
            Self::Messages => &s.messages,
            Self::Subscriptions => &s.subscriptions,
        }
    }

    /// Whether the resource has an in-store variant (`/in-store/key={storeKey}/...`).
    fn is_store_scoped(self) -> bool {
        matches!(self, Self::Customers | Self::Carts | Self::Orders)
    }

    /// Whether `v` belongs to the store `key`: customers whose `stores` contain
    /// `{typeId: "store", key}`, carts and orders whose `store.key` is `key`.
    fn in_store(self, v: &Value, key: &str) -> bool {
        match self {
            Self::Customers => v
                .get("stores")
                .and_then(Value::as_array)
                .is_some_and(|stores| {
                    stores.iter().any(|r| {
                        r.get("key").and_then(Value::as_str) == Some(key)
                            && r.get("typeId")
                                .and_then(Value::as_str)
                                .is_none_or(|t| t == "store")
                    })
                }),
            Self::Carts | Self::Orders => {
                v.get("store")
                    .and_then(|s| s.get("key"))
                    .and_then(Value::as_str)
                    == Some(key)
            }
            _ => false,
        }
    }
}

/// Resolves the `key={storeKey}` segment of an in-store path for resource `res`: the store key,
/// or the 404 to answer (resource without in-store variant, malformed segment, unknown store).
fn in_store_key(
    s: &CtState,
    res: Resource,
    segment: &str,
    path: &str,
) -> Result<String, Box<Response>> {
    if !res.is_store_scoped() {
        return Err(Box::new(unknown_resource(path)));
    }
    let Some(key) = segment.strip_prefix("key=") else {
        return Err(Box::new(unknown_resource(path)));
    };
    let known = s
        .stores
        .values()
        .any(|st| st.get("key").and_then(Value::as_str) == Some(key));
    if known {
        Ok(key.to_owned())
    } else {
        Err(Box::new(ct_error(
            404,
            "ResourceNotFound",
            &format!("The Store with key '{key}' was not found."),
        )))
    }
}

/// The product projection of a stored `Product` (`None` when not visible in that projection:
/// unpublished products have no current projection).
pub(crate) fn projection(product: &Value, staged: bool) -> Option<Value> {
    let master = product.get("masterData")?;
    let published = master
        .get("published")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    if !staged && !published {
        return None;
    }
    let data = master
        .get(if staged { "staged" } else { "current" })?
        .as_object()?;
    let mut out = Map::new();
    for k in ["id", "version", "key", "productType"] {
        if let Some(v) = product.get(k) {
            out.insert(k.into(), v.clone());
        }
    }
    for (k, v) in data {
        out.insert(k.clone(), v.clone());
    }
    for k in [
        "taxCategory",
        "state",
        "reviewRatingStatistics",
        "priceMode",
    ] {
        if let Some(v) = product.get(k) {
            out.insert(k.into(), v.clone());
        }
    }
    out.insert("published".into(), json!(published));
    out.insert(
        "hasStagedChanges".into(),
        master
            .get("hasStagedChanges")
            .cloned()
            .unwrap_or(json!(false)),
    );
    for k in ["createdAt", "lastModifiedAt"] {
        if let Some(v) = product.get(k) {
            out.insert(k.into(), v.clone());
        }
    }
    Some(Value::Object(out))
}

fn unknown_resource(path: &str) -> Response {
    ct_error(
        404,
        "ResourceNotFound",
        &format!("The resource '{path}' was not found."),
    )
}

/// `GET /{projectKey}/{resource}` — a query endpoint.
async fn query(
    State(shared): State<Shared>,
    Path((_pk, resource)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> Response {
    run_query(&shared, &resource, None, raw.as_deref())
}

/// `GET /{projectKey}/in-store/key={storeKey}/{resource}` — the in-store query endpoint of
/// customers, carts and orders.
async fn in_store_query(
    State(shared): State<Shared>,
    Path((_pk, store, resource)): Path<(String, String, String)>,
    RawQuery(raw): RawQuery,
) -> Response {
    run_query(&shared, &resource, Some(&store), raw.as_deref())
}

/// A query over `resource`, restricted to the store of the in-store path segment `store`
/// (`key={storeKey}`) when given.
fn run_query(shared: &Shared, resource: &str, store: Option<&str>, raw: Option<&str>) -> Response {
    let Some(res) = Resource::parse(resource) else {
        return unknown_resource(resource);
    };
    let pairs = query_pairs(raw);
    let params = match parse_params(&pairs, res.fields()) {
        Ok(p) => p,
        Err(msg) => return ct_error(400, "InvalidInput", &msg),
    };
    let s = lock(shared);
    let store_key = match store {
        None => None,
        Some(segment) => match in_store_key(&s, res, segment, resource) {
            Ok(k) => Some(k),
            Err(resp) => return *resp,
        },
    };
    let items = res
        .store(&s)
        .values()
        .filter(|v| store_key.as_deref().is_none_or(|k| res.in_store(v, k)));
    let body = if res == Resource::ProductProjections {
        let staged = params.staged;
        let visible =
            items.filter(|p| staged || p["masterData"]["published"].as_bool().unwrap_or(false));
        let (page, total) = params.run(visible);
        let results = page
            .into_iter()
            .filter_map(|p| projection(p, staged))
            .collect();
        params.response(results, total)
    } else if res == Resource::Subscriptions {
        let (page, total) = params.run(items);
        params.response(page.into_iter().map(subscriptions::masked).collect(), total)
    } else {
        let (page, total) = params.run(items);
        params.response(page.into_iter().cloned().collect(), total)
    };
    drop(s);
    json_response(200, body)
}

/// `GET /{projectKey}/{resource}/{id}`, `.../key={key}` and (orders) `.../order-number={n}`.
async fn by_id(
    State(shared): State<Shared>,
    Path((_pk, resource, id)): Path<(String, String, String)>,
    RawQuery(raw): RawQuery,
) -> Response {
    lookup(&shared, &resource, None, &id, raw.as_deref())
}

/// `GET /{projectKey}/in-store/key={storeKey}/{resource}/{id}` and `.../key={key}`: only
/// resources of that store are found.
async fn in_store_by_id(
    State(shared): State<Shared>,
    Path((_pk, store, resource, id)): Path<(String, String, String, String)>,
    RawQuery(raw): RawQuery,
) -> Response {
    lookup(&shared, &resource, Some(&store), &id, raw.as_deref())
}

/// One resource by id or `key={key}`, restricted to the store of the in-store path segment
/// `store` when given.
fn lookup(
    shared: &Shared,
    resource: &str,
    store: Option<&str>,
    id: &str,
    raw: Option<&str>,
) -> Response {
    let Some(res) = Resource::parse(resource) else {
        return unknown_resource(resource);
    };
    let staged = query_pairs(raw)
        .iter()
        .any(|(k, v)| k == "staged" && v == "true");
    let s = lock(shared);
    let store_key = match store {
        None => None,
        Some(segment) => match in_store_key(&s, res, segment, resource) {
            Ok(k) => Some(k),
            Err(resp) => return *resp,
        },
    };
    let collection = res.store(&s);
    let order_number = id
        .strip_prefix("order-number=")
        .filter(|_| res == Resource::Orders);
    let (found, not_found_msg) = match (order_number, id.strip_prefix("key=")) {
        (Some(n), _) => (
            collection
                .values()
                .find(|v| v.get("orderNumber").and_then(Value::as_str) == Some(n)),
            format!("The Resource with orderNumber '{n}' was not found."),
        ),
        (None, Some(key)) => (
            collection
                .values()
                .find(|v| v.get("key").and_then(Value::as_str) == Some(key)),
            format!("The Resource with key '{key}' was not found."),
        ),
        (None, None) => (
            collection.get(id),
            format!("The Resource with ID '{id}' was not found."),
        ),
    };
    let found = found.filter(|v| store_key.as_deref().is_none_or(|k| res.in_store(v, k)));
    let body = match (res, found) {
        (Resource::ProductProjections, Some(p)) => projection(p, staged),
        (Resource::Subscriptions, found) => found.map(subscriptions::masked),
        (_, found) => found.cloned(),
    };
    drop(s);
    match body {
        Some(b) => json_response(200, b),
        None => ct_error(404, "ResourceNotFound", &not_found_msg),
    }
}

fn refusal(r: Refusal) -> Response {
    let mut error = Map::new();
    error.insert("code".into(), json!(r.code));
    error.insert("message".into(), json!(r.message));
    error.extend(r.extra);
    json_response(
        r.status,
        json!({"statusCode": r.status, "message": r.message, "errors": [Value::Object(error)]}),
    )
}

/// Only Subscriptions can be written over HTTP.
fn read_only(resource: &str) -> Response {
    ct_error(
        405,
        "InvalidOperation",
        &format!("The emulator serves '{resource}' read only; only subscriptions can be written."),
    )
}

fn json_body(body: &[u8]) -> Result<Value, Refusal> {
    serde_json::from_slice(body).map_err(|e| Refusal {
        status: 400,
        code: "InvalidJsonInput",
        message: "Request body does not contain valid JSON.".into(),
        extra: [("detailedErrorMessage".to_owned(), json!(e.to_string()))]
            .into_iter()
            .collect(),
    })
}

/// `POST /{projectKey}/{resource}`: creates a Subscription (201).
async fn create(
    State(shared): State<Shared>,
    Path((_pk, resource)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    if resource != "subscriptions" {
        return read_only(&resource);
    }
    let draft = match json_body(&body) {
        Ok(v) => v,
        Err(r) => return refusal(r),
    };
    let created = lock(&shared).create_subscription(&draft);
    match created {
        Ok(sub) => json_response(201, subscriptions::masked(&sub)),
        Err(r) => refusal(r),
    }
}

/// `POST /{projectKey}/{resource}/{id}` (or `key={key}`): updates a Subscription.
async fn update(
    State(shared): State<Shared>,
    Path((_pk, resource, id)): Path<(String, String, String)>,
    body: Bytes,
) -> Response {
    if resource != "subscriptions" {
        return read_only(&resource);
    }
    let update = match json_body(&body) {
        Ok(v) => v,
        Err(r) => return refusal(r),
    };
    let updated = lock(&shared).update_subscription(&id, &update);
    match updated {
        Ok(sub) => json_response(200, subscriptions::masked(&sub)),
        Err(r) => refusal(r),
    }
}

/// `DELETE /{projectKey}/{resource}/{id}?version=` (or `key={key}`): deletes a Subscription.
async fn delete(
    State(shared): State<Shared>,
    Path((_pk, resource, id)): Path<(String, String, String)>,
    RawQuery(raw): RawQuery,
) -> Response {
    if resource != "subscriptions" {
        return read_only(&resource);
    }
    let pairs = query_pairs(raw.as_deref());
    let version = pairs
        .iter()
        .find(|(k, _)| k == "version")
        .map(|(_, v)| v.as_str());
    let deleted = lock(&shared).delete_subscription(&id, version);
    match deleted {
        Ok(sub) => json_response(200, subscriptions::masked(&sub)),
        Err(r) => refusal(r),
    }
}

async fn not_found_route(req: Request) -> Response {
    unknown_resource(req.uri().path())
}
