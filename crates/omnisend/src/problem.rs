//! RFC 9457 problem details, as returned by every failing Omnisend 2026-03-15 endpoint.
//!
//! Omnisend sends `Problem` (`type`, `title`, `status`, `detail`, `instance`), `ValidationProblem`
//! (adds `errors[]` of [`FieldError`]) and `RateLimitProblem` (adds `retryAfter` seconds). Parsing is
//! tolerant: a body that is not problem JSON (an HTML error page from a proxy, an empty body) still
//! yields a [`Problem`] carrying the HTTP status and a truncated copy of the text.

use serde::{Deserialize, Serialize};

/// How many characters of a non-JSON error body are kept in [`Problem::detail`].
pub const MAX_TEXT_DETAIL_CHARS: usize = 500;

/// An RFC 9457 problem document (the union of Omnisend's `Problem`, `ValidationProblem` and
/// `RateLimitProblem` schemas).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Problem {
    /// URI identifying the problem type, e.g. `https://problems.omnisend.com/problem`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub r#type: Option<String>,
    /// Short summary of the problem type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// HTTP status code as reported in the body (falls back to the response status).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Human-readable explanation of this occurrence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Request trace identifier (`urn:omnisend:request:<uuid>`), useful for Omnisend support.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// Field validation failures (`ValidationProblem.errors`); empty for other problems.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub errors: Vec<FieldError>,
    /// Seconds to wait before retrying (`RateLimitProblem.retryAfter`, sent with 429).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
}

/// One failed field of a `ValidationProblem`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldError {
    /// Machine-readable failure code, e.g. `invalid_format`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// Dot-separated path of the offending field, e.g. `variants.0.price`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Human-readable explanation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

fn null_as_empty<'de, D>(de: D) -> Result<Vec<FieldError>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    Ok(Option::<Vec<FieldError>>::deserialize(de)?.unwrap_or_default())
}

impl Problem {
    /// Parses an error response body. Never fails: JSON that is not a problem object, or a non-JSON
    /// body, becomes a problem with `status` set to `http_status` and `detail` holding the first
    /// [`MAX_TEXT_DETAIL_CHARS`] characters of the body (if any).
    pub fn parse(http_status: u16, body: &[u8]) -> Problem {
        match serde_json::from_slice::<Problem>(body) {
            Ok(mut p) if p.looks_like_problem() => {
                if p.status.is_none() {
                    p.status = Some(http_status);
                }
                p
            }
            _ => Problem::from_text(http_status, &String::from_utf8_lossy(body)),
        }
    }

    /// A problem built from a status code and free text (truncated).
    pub fn from_text(http_status: u16, text: &str) -> Problem {
        let text = text.trim();
        Problem {
            status: Some(http_status),
            detail: (!text.is_empty()).then(|| truncate(text, MAX_TEXT_DETAIL_CHARS)),
            ..Problem::default()
        }
    }

    fn looks_like_problem(&self) -> bool {
        self.r#type.is_some()
            || self.title.is_some()
            || self.detail.is_some()
            || self.status.is_some()
            || !self.errors.is_empty()
            || self.retry_after.is_some()
    }

    /// A one-line summary: `title: detail` (whichever are present), then the field errors.
    pub fn summary(&self) -> String {
        let mut out = match (&self.title, &self.detail) {
            (Some(t), Some(d)) if t != d => format!("{t}: {d}"),
            (Some(t), _) => t.clone(),
            (None, Some(d)) => d.clone(),
            (None, None) => String::from("no problem details"),
        };
        if !self.errors.is_empty() {
            let fields: Vec<String> = self.errors.iter().map(FieldError::to_string).collect();
            out.push_str(" [");
            out.push_str(&fields.join("; "));
            out.push(']');
        }
        out
    }
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.field.as_deref().unwrap_or("<body>"))?;
        if let Some(code) = &self.code {
            write!(f, " ({code})")?;
        }
        if let Some(message) = &self.message {
            write!(f, ": {message}")?;
        }
        Ok(())
    }
}

fn truncate(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_problem_is_parsed_with_field_errors() {
        let body = br#"{"type":"https://problems.omnisend.com/problem","title":"Validation failed","status":400,
            "detail":"bad","instance":"urn:omnisend:request:1",
            "errors":[{"code":"invalid_format","field":"url","message":"must be a URL"}]}"#;
        let p = Problem::parse(400, body);
        assert_eq!(p.title.as_deref(), Some("Validation failed"));
        assert_eq!(p.errors.len(), 1);
        assert_eq!(p.errors[0].field.as_deref(), Some("url"));
        assert!(p.summary().contains("url (invalid_format): must be a URL"));
    }

    #[test]
    fn rate_limit_problem_carries_retry_after() {
        let p = Problem::parse(
            429,
            br#"{"title":"Too Many Requests","status":429,"retryAfter":12}"#,
        );
        assert_eq!(p.retry_after, Some(12));
    }

    #[test]
    fn non_json_body_falls_back_to_status_and_truncated_text() {
        let body = "<html>".to_owned() + &"x".repeat(2_000);
        let p = Problem::parse(502, body.as_bytes());
        assert_eq!(p.status, Some(502));
        let detail = p.detail.unwrap();
        assert!(detail.starts_with("<html>"));
        assert!(detail.chars().count() <= MAX_TEXT_DETAIL_CHARS + 1);
    }

    #[test]
    fn empty_body_and_unrelated_json_give_status_only() {
        assert_eq!(Problem::parse(500, b"").status, Some(500));
        assert_eq!(Problem::parse(500, b"").detail, None);
        let p = Problem::parse(500, br#"{"foo":1}"#);
        assert_eq!(p.status, Some(500));
        assert_eq!(p.detail.as_deref(), Some(r#"{"foo":1}"#));
    }

    #[test]
    fn null_errors_are_accepted() {
        let p = Problem::parse(400, br#"{"title":"x","errors":null}"#);
        assert!(p.errors.is_empty());
    }
}
