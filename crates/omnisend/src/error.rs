//! The error type of every [`crate::OmnisendClient`] operation.

use crate::problem::{FieldError, Problem};

/// Why an Omnisend call failed.
#[derive(Debug, thiserror::Error)]
pub enum OmnisendError {
    /// Omnisend answered with a non-retryable status (4xx other than 408/429). Field-level
    /// validation failures are in `problem.errors`.
    #[error("Omnisend rejected {method} {path} with {status}: {}", problem.summary())]
    Rejected {
        /// HTTP status code.
        status: u16,
        /// HTTP method of the request.
        method: String,
        /// Request path relative to the API base, e.g. `/products/abc`.
        path: String,
        /// Parsed RFC 9457 body (boxed: it is large and errors are the rare path).
        problem: Box<Problem>,
    },
    /// Every attempt failed with a retryable outcome (429, 408, 5xx, timeout, connection error).
    #[error("{method} {path} failed after {attempts} attempt(s); last: {last}")]
    RetriesExhausted {
        /// HTTP method of the request.
        method: String,
        /// Request path relative to the API base.
        path: String,
        /// Number of HTTP attempts made.
        attempts: u32,
        /// Description of the last failure.
        last: String,
    },
    /// A non-retryable transport failure (request could not be built, redirect loop, body error).
    #[error("{method} {path} failed: {message}")]
    Transport {
        /// HTTP method of the request.
        method: String,
        /// Request path relative to the API base.
        path: String,
        /// Description of the failure (never contains the API key).
        message: String,
    },
    /// A local precondition was violated before anything was sent (e.g. a batch with 0 or more
    /// than 100 items, an unparsable base URL).
    #[error("invalid Omnisend request: {0}")]
    Invalid(String),
    /// The caller's guard withdrew the request before it was sent (nothing reached Omnisend).
    #[error("{method} {path} withdrawn before sending")]
    Withdrawn {
        /// HTTP method of the request.
        method: String,
        /// Request path relative to the API base.
        path: String,
    },
    /// A 2xx response body could not be decoded.
    #[error("cannot decode the Omnisend response of {path}: {message}")]
    Decode {
        /// Request path relative to the API base.
        path: String,
        /// Decoder message.
        message: String,
    },
}

impl OmnisendError {
    /// Field validation failures reported by Omnisend (empty unless [`OmnisendError::Rejected`]
    /// with a `ValidationProblem` body).
    pub fn field_errors(&self) -> &[FieldError] {
        match self {
            OmnisendError::Rejected { problem, .. } => &problem.errors,
            _ => &[],
        }
    }

    /// HTTP status of a rejection, if this error is one.
    pub fn status(&self) -> Option<u16> {
        match self {
            OmnisendError::Rejected { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The parsed problem body of a rejection.
    pub fn problem(&self) -> Option<&Problem> {
        match self {
            OmnisendError::Rejected { problem, .. } => Some(problem),
            _ => None,
        }
    }

    /// `true` when retrying later might succeed (retries exhausted, transient transport
    /// failure); `false` for rejections, local precondition and decode errors.
    pub fn is_transient(&self) -> bool {
        matches!(self, OmnisendError::RetriesExhausted { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejected_display_lists_status_path_title_and_field_errors() {
        let err = OmnisendError::Rejected {
            status: 400,
            method: "PUT".into(),
            path: "/products/p1".into(),
            problem: Box::new(Problem {
                title: Some("Validation failed".into()),
                detail: Some("Request body is invalid".into()),
                errors: vec![FieldError {
                    code: Some("max_length".into()),
                    field: Some("title".into()),
                    message: Some("too long".into()),
                }],
                ..Problem::default()
            }),
        };
        let text = err.to_string();
        for needle in [
            "400",
            "/products/p1",
            "Validation failed",
            "Request body is invalid",
            "title (max_length): too long",
        ] {
            assert!(text.contains(needle), "{text:?} lacks {needle:?}");
        }
        assert_eq!(err.status(), Some(400));
        assert_eq!(err.field_errors().len(), 1);
    }

    #[test]
    fn non_rejections_have_no_status_or_field_errors() {
        let err = OmnisendError::Invalid("x".into());
        assert_eq!(err.status(), None);
        assert!(err.field_errors().is_empty());
    }
}
