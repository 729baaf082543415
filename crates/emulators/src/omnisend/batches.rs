//! `/batches`: asynchronous bulk operations. Each item is applied exactly like the single
//! endpoint would apply it; processing happens in a spawned task after the configured delay
//! and does not count against the rate limit.

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::problem::{FieldError, Outcome};
use super::resources::{self, paging, parse_body};
use super::validate::Checker;
use super::{ApiKey, Brand, Shared, lock};
use crate::util::{format_ms, now_ms, query_pairs};

/// Status of a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BatchStatus {
    Pending,
    InProgress,
    Finished,
}

impl BatchStatus {
    fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::InProgress => "inProgress",
            Self::Finished => "finished",
        }
    }
}

/// One processed item.
#[derive(Clone, Debug)]
pub(crate) struct BatchItem {
    pub item_id: String,
    pub request: Value,
    pub outcome: Outcome,
}

impl BatchItem {
    fn to_json(&self) -> Value {
        json!({
            "itemID": self.item_id,
            "status": if self.outcome.is_success() { "finished" } else { "failed" },
            "request": self.request,
            "response": self.outcome.body.clone().unwrap_or(Value::Null),
            "responseCode": self.outcome.status,
        })
    }
}

/// A stored batch.
#[derive(Clone, Debug)]
pub(crate) struct Batch {
    pub id: String,
    pub status: BatchStatus,
    pub endpoint: String,
    pub method: String,
    pub origin: Option<String>,
    pub created_at: String,
    pub started_at: Option<String>,
    pub ended_at: Option<String>,
    pub items: Vec<Value>,
    pub results: Vec<BatchItem>,
}

impl Batch {
    /// The `Batch` JSON: successes in `responses`, failures in `errors`.
    pub(crate) fn to_json(&self) -> Value {
        let (ok, failed): (Vec<&BatchItem>, Vec<&BatchItem>) =
            self.results.iter().partition(|r| r.outcome.is_success());
        json!({
            "batchID": self.id,
            "status": self.status.as_str(),
            "endpoint": self.endpoint,
            "method": self.method,
            "origin": self.origin,
            "createdAt": self.created_at,
            "startedAt": self.started_at,
            "endedAt": self.ended_at,
            "totalCount": self.items.len(),
            "finishedCount": self.results.len(),
            "errorsCount": failed.len(),
            "errors": failed.iter().map(|r| r.to_json()).collect::<Vec<_>>(),
            "responses": ok.iter().map(|r| r.to_json()).collect::<Vec<_>>(),
        })
    }
}

fn hex24() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..24].to_owned()
}

/// Applies one batch item to a brand.
fn apply(brand: &mut Brand, endpoint: &str, method: &str, item: &Value) -> Outcome {
    match (endpoint, method) {
        ("products", "POST") => resources::create_product(brand, item),
        ("products", _) => resources::replace_product(brand, None, item),
        ("categories", "POST") => resources::create_category(brand, item),
        ("categories", _) => resources::update_category(brand, None, item),
        ("contacts", _) => resources::upsert_contact(brand, item),
        _ => resources::accept_event(brand, item),
    }
}

/// A validated `CreateBatchRequest`.
struct NewBatch {
    endpoint: String,
    method: String,
    origin: Option<String>,
    items: Vec<Value>,
}

fn validate_create(body: &Value) -> Result<NewBatch, Vec<FieldError>> {
    let obj = super::validate::as_object(body)?;
    let mut c = Checker::default();
    let endpoint = c.one_of(
        obj,
        "",
        "endpoint",
        true,
        &["products", "contacts", "events", "categories"],
    );
    let method = c.one_of(obj, "", "method", true, &["POST", "PUT"]);
    let origin = c.string(obj, "", "origin", false, 255).map(str::to_owned);
    if let (Some(e @ ("contacts" | "events")), Some("PUT")) = (endpoint, method) {
        c.fail(
            "invalid_value",
            "method",
            format!("method PUT is not supported for endpoint {e}"),
        );
    }
    let items = match obj.get("items") {
        Some(Value::Array(items)) if items.is_empty() => {
            c.fail("invalid_value", "items", "items must have at least 1 item");
            Vec::new()
        }
        Some(Value::Array(items)) if items.len() > 100 => {
            c.fail("too_long", "items", "items must have at most 100 items");
            Vec::new()
        }
        Some(Value::Array(items)) => items.clone(),
        None | Some(Value::Null) => {
            c.fail("required", "items", "items is required");
            Vec::new()
        }
        Some(_) => {
            c.fail("invalid_format", "items", "items must be an array");
            Vec::new()
        }
    };
    c.finish()?;
    Ok(NewBatch {
        endpoint: endpoint.unwrap_or_default().to_owned(),
        method: method.unwrap_or_default().to_owned(),
        origin,
        items,
    })
}

fn with_batch(s: &Shared, key: &str, id: &str, f: impl FnOnce(&mut Batch)) {
    let mut st = lock(s);
    if let Some(b) = st.brand(key).batches.iter_mut().find(|b| b.id == id) {
        f(b);
    }
}

/// `POST /batches`.
pub(crate) async fn create(
    State(s): State<Shared>,
    Extension(key): Extension<ApiKey>,
    body: Bytes,
) -> Response {
    let body = match parse_body(&body) {
        Ok(b) => b,
        Err(o) => return o.into_response(),
    };
    let NewBatch {
        endpoint,
        method,
        origin,
        items,
    } = match validate_create(&body) {
        Ok(v) => v,
        Err(errors) => return Outcome::invalid(&errors).into_response(),
    };
    let id = hex24();
    let total = items.len();
    let delay = {
        let mut st = lock(&s);
        let delay = st.batch_delay;
        st.brand(&key.0).batches.push(Batch {
            id: id.clone(),
            status: BatchStatus::Pending,
            endpoint,
            method,
            origin,
            created_at: format_ms(now_ms()),
            started_at: None,
            ended_at: None,
            items,
            results: Vec::new(),
        });
        delay
    };
    let (shared, api_key, batch_id) = (s.clone(), key.0.clone(), id.clone());
    tokio::spawn(async move {
        let half = delay / 2;
        if !half.is_zero() {
            tokio::time::sleep(half).await;
        }
        with_batch(&shared, &api_key, &batch_id, |b| {
            b.status = BatchStatus::InProgress;
            b.started_at = Some(format_ms(now_ms()));
        });
        let rest = delay - half;
        if !rest.is_zero() {
            tokio::time::sleep(rest).await;
        }
        let mut st = lock(&shared);
        let brand = st.brand(&api_key);
        let Some(idx) = brand.batches.iter().position(|b| b.id == batch_id) else {
            return;
        };
        let (endpoint, method, items) = {
            let b = &brand.batches[idx];
            (b.endpoint.clone(), b.method.clone(), b.items.clone())
        };
        let results: Vec<BatchItem> = items
            .into_iter()
            .map(|item| {
                let outcome = apply(brand, &endpoint, &method, &item);
                BatchItem {
                    item_id: hex24(),
                    request: item,
                    outcome,
                }
            })
            .collect();
        let b = &mut brand.batches[idx];
        b.results = results;
        b.status = BatchStatus::Finished;
        b.ended_at = Some(format_ms(now_ms()));
    });
    Outcome::ok(201, json!({"batchID": id, "totalCount": total})).into_response()
}

fn find(s: &Shared, key: &str, id: &str) -> Outcome {
    let mut st = lock(s);
    match st.brand(key).batches.iter().find(|b| b.id == id) {
        Some(b) => Outcome::ok(200, b.to_json()),
        None => Outcome::problem(404, "Not Found", "Batch not found"),
    }
}

/// `GET /batches/{batchID}`.
pub(crate) async fn get(
    State(s): State<Shared>,
    Extension(key): Extension<ApiKey>,
    Path(id): Path<String>,
) -> Response {
    find(&s, &key.0, &id).into_response()
}

/// `GET /batches/{batchID}/items`: the batch with every processed item.
pub(crate) async fn items(
    State(s): State<Shared>,
    Extension(key): Extension<ApiKey>,
    Path(id): Path<String>,
) -> Response {
    let mut outcome = find(&s, &key.0, &id);
    if let Some(body) = outcome.body.as_mut()
        && outcome.status == 200
    {
        let mut all: Vec<Value> = body["responses"].as_array().cloned().unwrap_or_default();
        all.extend(body["errors"].as_array().cloned().unwrap_or_default());
        body["items"] = Value::Array(all);
    }
    outcome.into_response()
}

/// `GET /batches?endpoint=...&status=&limit=&offset=`: newest first.
pub(crate) async fn list(
    State(s): State<Shared>,
    Extension(key): Extension<ApiKey>,
    RawQuery(q): RawQuery,
) -> Response {
    let pairs = query_pairs(q.as_deref());
    let params: serde_json::Map<String, Value> =
        pairs.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
    let mut c = Checker::default();
    let endpoint = c
        .one_of(
            &params,
            "",
            "endpoint",
            true,
            &["products", "contacts", "events", "categories"],
        )
        .map(str::to_owned);
    let status = c
        .one_of(
            &params,
            "",
            "status",
            false,
            &["pending", "inProgress", "finished", "stopped"],
        )
        .map(str::to_owned);
    let limit = match params.get("limit").and_then(Value::as_str) {
        None => 100,
        Some(l) => l
            .parse()
            .ok()
            .filter(|l| (1..=250).contains(l))
            .unwrap_or_else(|| {
                c.fail("invalid_value", "limit", "limit must be between 1 and 250");
                100
            }),
    };
    let offset = match params.get("offset").and_then(Value::as_str) {
        None => 0,
        Some(o) => o.parse().unwrap_or_else(|_| {
            c.fail(
                "invalid_value",
                "offset",
                "offset must be a non-negative integer",
            );
            0
        }),
    };
    if let Err(errors) = c.finish() {
        return Outcome::invalid(&errors).into_response();
    }
    let endpoint = endpoint.unwrap_or_default();
    let mut st = lock(&s);
    let base = st.base_url.clone();
    // Page first, then render: rendering every stored batch (with its items) on each poll
    // made polls slower as a run went on.
    let matching: Vec<&Batch> = st
        .brand(&key.0)
        .batches
        .iter()
        .rev()
        .filter(|b| b.endpoint == endpoint)
        .filter(|b| status.as_deref().is_none_or(|s| b.status.as_str() == s))
        .collect();
    let total = matching.len();
    let page: Vec<Value> = matching
        .into_iter()
        .skip(offset)
        .take(limit)
        .map(Batch::to_json)
        .collect();
    let extra = format!("endpoint={endpoint}&");
    Outcome::ok(
        200,
        json!({"batches": page, "paging": paging(&base, "/batches", &extra, offset, limit, total)}),
    )
    .into_response()
}
