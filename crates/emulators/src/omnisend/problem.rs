//! RFC 9457 problem documents, as the Omnisend API `2026-03-15` returns them.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// `Content-Type` of problem responses.
pub(crate) const PROBLEM_JSON: &str = "application/problem+json";

/// One failed field of a validation problem.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct FieldError {
    /// `required`, `invalid_format`, `too_long` or `invalid_value`.
    pub code: &'static str,
    /// Dot-separated path, e.g. `variants.0.price`.
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub(crate) fn new(
        code: &'static str,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            code,
            field: field.into(),
            message: message.into(),
        }
    }
}

/// A `Problem` body.
pub(crate) fn problem(status: u16, title: &str, detail: &str) -> Value {
    json!({
        "type": "https://problems.omnisend.com/problem",
        "title": title,
        "status": status,
        "detail": detail,
        "instance": format!("urn:omnisend:request:{}", uuid::Uuid::new_v4()),
    })
}

/// A `ValidationProblem` body (400) listing every failed field.
pub(crate) fn validation(errors: &[FieldError]) -> Value {
    let mut body = problem(
        400,
        "Bad Request",
        "The request contains invalid input. See errors for details.",
    );
    body["errors"] = Value::Array(
        errors
            .iter()
            .map(|e| json!({"code": e.code, "field": e.field, "message": e.message}))
            .collect(),
    );
    body
}

/// A `RateLimitProblem` body (429).
pub(crate) fn rate_limited(retry_after: u64) -> Value {
    let mut body = problem(
        429,
        "Too Many Requests",
        "Rate limit exceeded. Retry after the number of seconds in retryAfter.",
    );
    body["retryAfter"] = json!(retry_after);
    body
}

/// The outcome of applying one operation: a status and an optional JSON body (a problem body
/// when `status >= 400`). Shared by the HTTP handlers and batch processing.
#[derive(Clone, Debug)]
pub(crate) struct Outcome {
    pub status: u16,
    pub body: Option<Value>,
}

impl Outcome {
    pub(crate) fn ok(status: u16, body: Value) -> Self {
        Self {
            status,
            body: Some(body),
        }
    }
    pub(crate) fn empty(status: u16) -> Self {
        Self { status, body: None }
    }
    pub(crate) fn problem(status: u16, title: &str, detail: &str) -> Self {
        Self::ok(status, problem(status, title, detail))
    }
    pub(crate) fn invalid(errors: &[FieldError]) -> Self {
        Self::ok(400, validation(errors))
    }
    pub(crate) fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

impl IntoResponse for Outcome {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        match self.body {
            None => status.into_response(),
            Some(body) => {
                let mut resp = (status, axum::Json(body)).into_response();
                if self.status >= 400 {
                    resp.headers_mut()
                        .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
                }
                resp
            }
        }
    }
}
