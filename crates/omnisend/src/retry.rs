//! Retry policy, in three separate pieces (after Vector's `RetryLogic`):
//!
//! * **classification** ([`classify_status`], [`classify_transport`]): pure functions from an
//!   outcome to a [`RetryAction`]; no sleeping, no I/O, no rate bookkeeping;
//! * **backoff** ([`backoff_delay`]): full-jitter exponential delay between attempts;
//! * **rate** lives in [`crate::rate`]; the client wires the three together.

use std::time::Duration;

use reqwest::header::HeaderMap;

use crate::problem::Problem;

/// Base of the exponential backoff (delay ceiling of the first retry).
pub const BACKOFF_BASE: Duration = Duration::from_millis(500);
/// Cap of the exponential backoff.
pub const BACKOFF_CAP: Duration = Duration::from_secs(30);

/// What to do with the outcome of one HTTP attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RetryAction {
    /// The request succeeded (2xx).
    Successful,
    /// A transient failure: try again, after the server-given delay when there is one.
    Retry {
        /// Delay requested by the server (`retryAfter`, `X-Rate-Limit-Reset`, `Retry-After`).
        after: Option<Duration>,
        /// Why, for logs and for [`crate::OmnisendError::RetriesExhausted`].
        reason: String,
    },
    /// A permanent failure: retrying the same request cannot help.
    DontRetry {
        /// Why, for logs.
        reason: String,
    },
}

/// Classifies an HTTP status (with its headers and parsed problem body, if any).
///
/// * 2xx → [`RetryAction::Successful`]
/// * 429 → `Retry`, `after` = the problem's `retryAfter`, else the `X-Rate-Limit-Reset` header
///   (seconds left in the current period), else a `Retry-After` header, else `None`
/// * 408 and 5xx → `Retry` (`after` from a `Retry-After` header if present)
/// * any other status (4xx, and unexpected 1xx/3xx) → `DontRetry`
pub fn classify_status(status: u16, headers: &HeaderMap, problem: Option<&Problem>) -> RetryAction {
    let describe = || match problem {
        Some(p) => format!("HTTP {status}: {}", p.summary()),
        None => format!("HTTP {status}"),
    };
    match status {
        200..=299 => RetryAction::Successful,
        429 => {
            let after = problem
                .and_then(|p| p.retry_after)
                .map(Duration::from_secs)
                .or_else(|| header_seconds(headers, "x-rate-limit-reset"))
                .or_else(|| retry_after_header(headers));
            RetryAction::Retry {
                after,
                reason: describe(),
            }
        }
        408 | 500..=599 => RetryAction::Retry {
            after: retry_after_header(headers),
            reason: describe(),
        },
        _ => RetryAction::DontRetry { reason: describe() },
    }
}

/// Classifies a transport-level failure: timeouts, connection failures and I/O errors while
/// sending or reading are retried; errors building the request, following redirects or decoding
/// are not.
pub fn classify_transport(err: &reqwest::Error) -> RetryAction {
    let reason = transport_reason(err);
    if err.is_builder() || err.is_redirect() || err.is_decode() {
        RetryAction::DontRetry { reason }
    } else {
        RetryAction::Retry {
            after: None,
            reason,
        }
    }
}

/// A description of a reqwest error without the URL (which is harmless, but long) and without any
/// header (the API key lives in a header and is never part of reqwest's messages).
fn transport_reason(err: &reqwest::Error) -> String {
    let kind = if err.is_timeout() {
        "timeout"
    } else if err.is_connect() {
        "connection failed"
    } else if err.is_builder() {
        "cannot build request"
    } else if err.is_redirect() {
        "redirect error"
    } else if err.is_decode() {
        "cannot decode response"
    } else if err.is_body() {
        "body error"
    } else {
        "transport error"
    };
    let mut message = kind.to_owned();
    let mut source = std::error::Error::source(err);
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
    }
    message
}

/// Full-jitter exponential backoff: a uniformly random delay in
/// `[0, min(cap, base × 2^(retry − 1))]`, where `retry` is 1 for the first retry.
pub fn backoff_delay(retry: u32, base: Duration, cap: Duration) -> Duration {
    let ceiling = backoff_ceiling(retry, base, cap);
    let millis = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
    Duration::from_millis(rand::random_range(0..=millis))
}

/// The upper bound of [`backoff_delay`] for a given retry number.
pub fn backoff_ceiling(retry: u32, base: Duration, cap: Duration) -> Duration {
    let exp = retry.saturating_sub(1).min(30);
    base.saturating_mul(1u32 << exp).min(cap)
}

fn header_seconds(headers: &HeaderMap, name: &str) -> Option<Duration> {
    let value = headers.get(name)?.to_str().ok()?.trim();
    value
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
        .or_else(|| {
            value
                .parse::<f64>()
                .ok()
                .filter(|s| s.is_finite() && *s >= 0.0)
                .map(Duration::from_secs_f64)
        })
}

/// `Retry-After` as delay-seconds or as an HTTP date.
fn retry_after_header(headers: &HeaderMap) -> Option<Duration> {
    if let Some(d) = header_seconds(headers, "retry-after") {
        return Some(d);
    }
    let value = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    let when =
        time::OffsetDateTime::parse(value.trim(), &time::format_description::well_known::Rfc2822)
            .ok()?;
    let delta = when - time::OffsetDateTime::now_utc();
    Some(Duration::try_from(delta).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    fn is_retry(a: &RetryAction) -> bool {
        matches!(a, RetryAction::Retry { .. })
    }

    #[test]
    fn success_statuses_are_successful() {
        for s in [200, 201, 202, 204] {
            assert_eq!(
                classify_status(s, &HeaderMap::new(), None),
                RetryAction::Successful
            );
        }
    }

    #[test]
    fn too_many_requests_uses_the_problem_retry_after_first() {
        let p = Problem {
            retry_after: Some(7),
            ..Problem::default()
        };
        let h = headers(&[("x-rate-limit-reset", "30"), ("retry-after", "60")]);
        match classify_status(429, &h, Some(&p)) {
            RetryAction::Retry { after, .. } => assert_eq!(after, Some(Duration::from_secs(7))),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn too_many_requests_falls_back_to_the_rate_limit_reset_header() {
        let h = headers(&[("X-Rate-Limit-Reset", "30"), ("retry-after", "60")]);
        match classify_status(429, &h, Some(&Problem::default())) {
            RetryAction::Retry { after, .. } => assert_eq!(after, Some(Duration::from_secs(30))),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn too_many_requests_falls_back_to_retry_after_then_to_nothing() {
        match classify_status(429, &headers(&[("retry-after", "4")]), None) {
            RetryAction::Retry { after, .. } => assert_eq!(after, Some(Duration::from_secs(4))),
            other => panic!("{other:?}"),
        }
        match classify_status(429, &HeaderMap::new(), None) {
            RetryAction::Retry { after, .. } => assert_eq!(after, None),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn request_timeout_and_server_errors_are_retried() {
        for s in [408, 500, 502, 503, 504] {
            assert!(
                is_retry(&classify_status(s, &HeaderMap::new(), None)),
                "{s}"
            );
        }
        match classify_status(503, &headers(&[("retry-after", "2")]), None) {
            RetryAction::Retry { after, .. } => assert_eq!(after, Some(Duration::from_secs(2))),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn other_client_errors_are_not_retried() {
        for s in [400, 401, 403, 404, 409, 410, 422] {
            assert!(
                matches!(
                    classify_status(s, &HeaderMap::new(), None),
                    RetryAction::DontRetry { .. }
                ),
                "{s}"
            );
        }
    }

    #[test]
    fn reason_mentions_status_and_problem_title() {
        let p = Problem {
            title: Some("Product already exists".into()),
            ..Problem::default()
        };
        match classify_status(409, &HeaderMap::new(), Some(&p)) {
            RetryAction::DontRetry { reason } => {
                assert!(
                    reason.contains("409") && reason.contains("Product already exists"),
                    "{reason}"
                )
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn backoff_is_full_jitter_and_capped() {
        assert_eq!(
            backoff_ceiling(1, BACKOFF_BASE, BACKOFF_CAP),
            Duration::from_millis(500)
        );
        assert_eq!(
            backoff_ceiling(3, BACKOFF_BASE, BACKOFF_CAP),
            Duration::from_secs(2)
        );
        assert_eq!(backoff_ceiling(20, BACKOFF_BASE, BACKOFF_CAP), BACKOFF_CAP);
        assert_eq!(
            backoff_ceiling(u32::MAX, BACKOFF_BASE, BACKOFF_CAP),
            BACKOFF_CAP
        );
        let samples: Vec<Duration> = (0..200)
            .map(|_| backoff_delay(4, BACKOFF_BASE, BACKOFF_CAP))
            .collect();
        assert!(samples.iter().all(|d| *d <= Duration::from_secs(4)));
        assert!(
            samples.iter().any(|d| *d < Duration::from_secs(1)),
            "jitter reaches low values"
        );
        assert!(
            samples.iter().any(|d| *d > Duration::from_secs(3)),
            "jitter reaches high values"
        );
    }

    #[tokio::test]
    async fn connection_refused_is_retried() {
        // Port 9 (discard) on localhost is essentially never listening.
        let err = reqwest::Client::new()
            .get("http://127.0.0.1:9/")
            .send()
            .await
            .unwrap_err();
        assert!(is_retry(&classify_transport(&err)), "{err:?}");
    }

    #[test]
    fn unbuildable_request_is_not_retried() {
        let err = reqwest::Client::new().get("not a url").build().unwrap_err();
        assert!(matches!(
            classify_transport(&err),
            RetryAction::DontRetry { .. }
        ));
    }
}
