//! Errors of the commercetools client. Messages carry context (URL, path, status, error
//! codes) but never credentials or tokens.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// One entry of the `errors` array of a commercetools error response
/// (`{"code": "InvalidInput", "message": "…", …extra fields}`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ErrorObject {
    /// Error code, e.g. `InvalidInput`, `ConcurrentModification`, `insufficient_scope`.
    #[serde(default)]
    pub code: String,
    /// Human readable message.
    #[serde(default)]
    pub message: String,
    /// Any further fields (`currentVersion`, `field`, `invalidValue`, …).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The body of a commercetools error response.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ErrorBody {
    #[serde(default)]
    pub status_code: Option<u16>,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub errors: Vec<ErrorObject>,
    /// OAuth error code (`invalid_client`, `invalid_token`, `invalid_scope`, …).
    #[serde(default)]
    pub error: Option<String>,
    /// OAuth error description.
    #[serde(default, rename = "error_description")]
    pub error_description: Option<String>,
}

impl ErrorBody {
    /// Parses a response body; anything unparsable becomes a message with the (truncated) text.
    pub(crate) fn parse(status: u16, body: &[u8]) -> Self {
        match serde_json::from_slice::<ErrorBody>(body) {
            Ok(mut b) => {
                if b.message.is_none() {
                    b.message = b
                        .error_description
                        .clone()
                        .or_else(|| b.error.clone())
                        .or_else(|| b.errors.first().map(|e| e.message.clone()));
                }
                b.status_code.get_or_insert(status);
                b
            }
            Err(_) => {
                let text = String::from_utf8_lossy(body);
                let text = text.trim();
                let message = if text.is_empty() {
                    None
                } else {
                    Some(truncate(text, 300))
                };
                ErrorBody {
                    status_code: Some(status),
                    message,
                    ..Default::default()
                }
            }
        }
    }

    /// The message, or a generic one naming the status.
    pub(crate) fn message_or_status(&self, status: u16) -> String {
        self.message
            .clone()
            .filter(|m| !m.is_empty())
            .unwrap_or_else(|| format!("HTTP {status}"))
    }

    /// Whether any error code (or the OAuth `error`) equals `code`.
    pub(crate) fn has_code(&self, code: &str) -> bool {
        self.error.as_deref() == Some(code) || self.errors.iter().any(|e| e.code == code)
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(max).collect();
        t.push('…');
        t
    }
}

/// Errors returned by [`crate::client::CtClient`].
#[derive(Debug, thiserror::Error)]
pub enum CtError {
    /// 401: the token endpoint rejected the client credentials, or the API rejected the
    /// token even after one refresh.
    #[error("unauthorized: {message}")]
    Unauthorized {
        /// What was rejected and where.
        message: String,
    },
    /// 403 (`insufficient_scope`): the API client lacks a scope.
    #[error("forbidden: {message}")]
    Forbidden {
        /// What was denied and where.
        message: String,
    },
    /// Any other final HTTP error, parsed from the commercetools error body.
    #[error(
        "commercetools API error {status} on {path}: {message}{}",
        codes(errors)
    )]
    Api {
        /// HTTP status.
        status: u16,
        /// Top-level `message` of the error body.
        message: String,
        /// The `errors` array of the body.
        errors: Vec<ErrorObject>,
        /// The request path (relative to the project, or `oauth/token`).
        path: String,
    },
    /// Connection failure or timeout, after all retries.
    #[error("commercetools unreachable at {url}: {message}")]
    Unreachable {
        /// The URL (without query string) that could not be reached.
        url: String,
        /// What went wrong (connection refused, timed out, …).
        message: String,
    },
    /// The response body could not be decoded into the expected type.
    #[error("could not decode the commercetools response of {path}: {message}")]
    Decode {
        /// The request path.
        path: String,
        /// The decoder's message.
        message: String,
    },
    /// A request body could not be encoded as JSON.
    #[error("could not encode the request body of {path}: {message}")]
    Encode {
        /// The request path.
        path: String,
        /// The encoder's message.
        message: String,
    },
    /// Invalid configuration (bad URL, unknown project, …).
    #[error("invalid commercetools configuration: {0}")]
    Config(String),
}

fn codes(errors: &[ErrorObject]) -> String {
    let codes: Vec<&str> = errors
        .iter()
        .map(|e| e.code.as_str())
        .filter(|c| !c.is_empty())
        .collect();
    if codes.is_empty() {
        String::new()
    } else {
        format!(" [{}]", codes.join(", "))
    }
}

impl CtError {
    /// Whether retrying the same request later may succeed: connection problems, timeouts,
    /// 429, 502, 503 and 504 (the statuses the client itself retries).
    pub fn is_transient(&self) -> bool {
        match self {
            CtError::Unreachable { .. } => true,
            CtError::Api { status, .. } => matches!(status, 429 | 500 | 502 | 503 | 504),
            _ => false,
        }
    }

    /// The HTTP status behind this error, when there was one.
    pub fn status(&self) -> Option<u16> {
        match self {
            CtError::Unauthorized { .. } => Some(401),
            CtError::Forbidden { .. } => Some(403),
            CtError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// An [`CtError::Unreachable`] for a transport failure; the URL is given without its
    /// query string and the message is the error's cause chain.
    pub(crate) fn unreachable(url: &str, e: &reqwest::Error) -> Self {
        let kind = if e.is_timeout() {
            "timed out"
        } else if e.is_connect() {
            "connection failed"
        } else {
            "request failed"
        };
        let mut causes = Vec::new();
        let mut source = std::error::Error::source(e);
        while let Some(s) = source {
            let text = s.to_string();
            if !causes.contains(&text) {
                causes.push(text);
            }
            source = s.source();
        }
        let message = if causes.is_empty() {
            kind.to_string()
        } else {
            format!("{kind}: {}", causes.join(": "))
        };
        let url = url.split('?').next().unwrap_or(url).to_string();
        CtError::Unreachable { url, message }
    }

    /// Whether any error object carries `code` (e.g. `ConcurrentModification`).
    pub fn has_code(&self, code: &str) -> bool {
        match self {
            CtError::Api { errors, .. } => errors.iter().any(|e| e.code == code),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_body_with_errors_array_parses_codes_and_extra_fields() {
        let body = br#"{"statusCode":409,"message":"Version mismatch. Concurrent modification.",
            "errors":[{"code":"ConcurrentModification","message":"Version mismatch.","currentVersion":3}]}"#;
        let b = ErrorBody::parse(409, body);
        assert_eq!(
            b.message.as_deref(),
            Some("Version mismatch. Concurrent modification.")
        );
        assert_eq!(b.errors[0].code, "ConcurrentModification");
        assert_eq!(b.errors[0].extra["currentVersion"], 3);
        assert!(b.has_code("ConcurrentModification"));
    }

    #[test]
    fn oauth_error_body_uses_error_description_as_message() {
        let b = ErrorBody::parse(
            401,
            br#"{"error":"invalid_client","error_description":"Bad credentials"}"#,
        );
        assert_eq!(b.message.as_deref(), Some("Bad credentials"));
        assert!(b.has_code("invalid_client"));
    }

    #[test]
    fn non_json_error_body_becomes_the_message() {
        let b = ErrorBody::parse(502, b"<html>Bad Gateway</html>");
        assert_eq!(b.message.as_deref(), Some("<html>Bad Gateway</html>"));
        assert_eq!(
            ErrorBody::parse(502, b"").message_or_status(502),
            "HTTP 502"
        );
    }

    #[test]
    fn api_error_display_lists_codes() {
        let e = CtError::Api {
            status: 400,
            message: "First error message.".into(),
            errors: vec![
                ErrorObject {
                    code: "SyntaxError".into(),
                    message: "x".into(),
                    extra: Map::new(),
                },
                ErrorObject {
                    code: "SemanticError".into(),
                    message: "y".into(),
                    extra: Map::new(),
                },
            ],
            path: "product-projections".into(),
        };
        assert_eq!(
            e.to_string(),
            "commercetools API error 400 on product-projections: First error message. [SyntaxError, SemanticError]"
        );
        assert!(!e.is_transient());
        assert!(e.has_code("SemanticError"));
    }
}
