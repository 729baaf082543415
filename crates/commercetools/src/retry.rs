//! Retry classification (pure) and the backoff policy used by the client.
//!
//! The classification decides *whether* a response or transport failure is retried; the
//! backoff loop in [`crate::client`] decides *when* (full-jitter exponential backoff via
//! `backon`, overridden by `Retry-After` when the server sends one).

use std::time::Duration;

use rand::Rng;

use crate::error::CtError;

/// Upper bound applied to a server-provided `Retry-After`.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

/// What to do with the outcome of one attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetryDecision {
    /// Retry; `after` is the server-requested delay (`Retry-After`), if any.
    Retry {
        /// Delay requested by the server, overriding the computed backoff.
        after: Option<Duration>,
    },
    /// Final outcome: do not retry.
    DontRetry,
}

/// Classifies an HTTP status: 429, 500, 502, 503 and 504 are retried (429 honouring
/// `Retry-After` seconds); every other status, including all other 4xx, is final.
///
/// This is the classification of reads (`GET`); writes use [`classify_write_status`].
/// 500 (`General`) is retried because repeating a read cannot change anything, and the
/// research notes call a 500 "report, maybe retry". A persistent 500 still ends the call after
/// the bounded retries, with its error.
pub fn classify_status(status: u16, retry_after: Option<&str>) -> RetryDecision {
    match status {
        429 => RetryDecision::Retry {
            after: retry_after.and_then(parse_retry_after),
        },
        500 | 502..=504 => RetryDecision::Retry {
            after: retry_after.and_then(parse_retry_after),
        },
        _ => RetryDecision::DontRetry,
    }
}

/// Classifies the HTTP status of a write (`POST`, `DELETE`): only 429 and 503 are retried
/// (honouring `Retry-After`). Both say the request was not processed (too many requests;
/// `OverCapacity`/`PendingOperation`), so repeating it cannot apply a change twice. A 500, 502
/// or 504 may come after the change was applied, so it is final for a write: the caller reads
/// the resource again and decides.
pub fn classify_write_status(status: u16, retry_after: Option<&str>) -> RetryDecision {
    match status {
        429 | 503 => RetryDecision::Retry {
            after: retry_after.and_then(parse_retry_after),
        },
        _ => RetryDecision::DontRetry,
    }
}

/// Kind of transport failure (no HTTP response received).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransportFailure {
    /// Could not connect (refused, DNS, TLS handshake).
    Connect,
    /// The request or connect timed out.
    Timeout,
    /// The connection broke while sending the request or reading the body.
    Interrupted,
    /// Anything else (e.g. a request that could not be built): not retried.
    Other,
}

/// Classifies a transport failure: connection errors, timeouts and interrupted
/// connections are retried (reads are idempotent; writes use [`classify_write_transport`]).
pub fn classify_transport(failure: TransportFailure) -> RetryDecision {
    match failure {
        TransportFailure::Connect | TransportFailure::Timeout | TransportFailure::Interrupted => {
            RetryDecision::Retry { after: None }
        }
        TransportFailure::Other => RetryDecision::DontRetry,
    }
}

/// Classifies a transport failure of a write: only a failed connect (nothing was sent) is
/// retried. A timeout or a broken connection may come after the server applied the change.
pub fn classify_write_transport(failure: TransportFailure) -> RetryDecision {
    match failure {
        TransportFailure::Connect => RetryDecision::Retry { after: None },
        TransportFailure::Timeout | TransportFailure::Interrupted | TransportFailure::Other => {
            RetryDecision::DontRetry
        }
    }
}

/// Maps a reqwest error to a [`TransportFailure`].
pub(crate) fn transport_failure(e: &reqwest::Error) -> TransportFailure {
    if e.is_timeout() {
        TransportFailure::Timeout
    } else if e.is_connect() {
        TransportFailure::Connect
    } else if e.is_request() || e.is_body() {
        TransportFailure::Interrupted
    } else {
        TransportFailure::Other
    }
}

/// Parses `Retry-After` given in (non-negative, possibly fractional) seconds; HTTP dates
/// are ignored (the computed backoff applies). Capped at [`MAX_RETRY_AFTER`].
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let secs: f64 = value.trim().parse().ok()?;
    if !secs.is_finite() || secs < 0.0 {
        return None;
    }
    Some(Duration::from_secs_f64(secs).min(MAX_RETRY_AFTER))
}

/// Backoff settings: exponential from `min_delay` (×2 per attempt) up to `max_delay`, with
/// full jitter (each sleep is uniform in `[0, computed]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BackoffPolicy {
    /// First (un-jittered) delay.
    pub min_delay: Duration,
    /// Cap of the un-jittered delay.
    pub max_delay: Duration,
    /// Number of retries after the first attempt.
    pub max_retries: u32,
}

impl BackoffPolicy {
    /// Default delays (500 ms doubling up to 30 s) with `max_retries` retries.
    pub fn new(max_retries: u32) -> Self {
        Self {
            min_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
            max_retries,
        }
    }

    /// The `backon` builder (without its own jitter: [`full_jitter`] is applied on top).
    pub(crate) fn builder(&self) -> backon::ExponentialBuilder {
        backon::ExponentialBuilder::default()
            .with_min_delay(self.min_delay)
            .with_max_delay(self.max_delay.max(self.min_delay))
            .with_factor(2.0)
            .with_max_times(self.max_retries as usize)
    }
}

/// Full jitter: a uniformly random duration in `[0, d]`.
pub fn full_jitter(d: Duration) -> Duration {
    if d.is_zero() {
        return d;
    }
    let nanos = d.as_nanos().min(u64::MAX as u128) as u64;
    Duration::from_nanos(rand::rng().random_range(0..=nanos))
}

/// The sleep before the next attempt: `None` when retries are exhausted, the server's
/// `Retry-After` when given, otherwise the fully jittered backoff step.
pub(crate) fn next_delay(
    backoff_step: Option<Duration>,
    retry_after: Option<Duration>,
) -> Option<Duration> {
    backoff_step.map(|d| retry_after.unwrap_or_else(|| full_jitter(d)))
}

/// The failure of one attempt, with its retry classification.
#[derive(Debug)]
pub(crate) struct AttemptError {
    /// Whether (and when) to retry.
    pub retry: RetryDecision,
    /// The error to report if this is the final attempt.
    pub error: CtError,
}

/// Runs `attempt` until it succeeds, fails with a non-retryable error, or `policy`'s retries
/// are exhausted; sleeps with full-jitter exponential backoff or the server's `Retry-After`.
pub(crate) async fn with_retries<T, F, Fut>(
    policy: &BackoffPolicy,
    what: &str,
    attempt: F,
) -> Result<T, CtError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, AttemptError>>,
{
    use backon::Retryable;
    attempt
        .retry(policy.builder())
        .sleep(tokio::time::sleep)
        .when(|e: &AttemptError| matches!(e.retry, RetryDecision::Retry { .. }))
        .adjust(|e: &AttemptError, step| {
            let after = match e.retry {
                RetryDecision::Retry { after } => after,
                RetryDecision::DontRetry => None,
            };
            next_delay(step, after)
        })
        .notify(|e: &AttemptError, delay| {
            tracing::warn!(error = %e.error, delay_ms = delay.as_millis() as u64, "{what}: transient failure, retrying");
        })
        .await
        .map_err(|e| e.error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_429_500_502_503_504_are_retried() {
        for s in [429, 500, 502, 503, 504] {
            assert_eq!(
                classify_status(s, None),
                RetryDecision::Retry { after: None },
                "{s}"
            );
        }
    }

    #[test]
    fn other_statuses_are_final() {
        for s in [200, 201, 304, 400, 401, 403, 404, 409, 413, 422, 501, 505] {
            assert_eq!(classify_status(s, None), RetryDecision::DontRetry, "{s}");
        }
    }

    #[test]
    fn retry_after_seconds_are_honoured_and_capped() {
        assert_eq!(
            classify_status(429, Some("7")),
            RetryDecision::Retry {
                after: Some(Duration::from_secs(7))
            }
        );
        assert_eq!(
            classify_status(503, Some(" 1.5 ")),
            RetryDecision::Retry {
                after: Some(Duration::from_millis(1500))
            }
        );
        assert_eq!(
            classify_status(429, Some("99999")),
            RetryDecision::Retry {
                after: Some(MAX_RETRY_AFTER)
            }
        );
    }

    #[test]
    fn unparsable_retry_after_falls_back_to_backoff() {
        for v in ["Wed, 21 Oct 2015 07:28:00 GMT", "-1", "", "NaN"] {
            assert_eq!(
                classify_status(429, Some(v)),
                RetryDecision::Retry { after: None },
                "{v:?}"
            );
        }
        assert_eq!(classify_status(400, Some("5")), RetryDecision::DontRetry);
    }

    #[test]
    fn transport_failures_other_than_other_are_retried() {
        assert_eq!(
            classify_transport(TransportFailure::Connect),
            RetryDecision::Retry { after: None }
        );
        assert_eq!(
            classify_transport(TransportFailure::Timeout),
            RetryDecision::Retry { after: None }
        );
        assert_eq!(
            classify_transport(TransportFailure::Interrupted),
            RetryDecision::Retry { after: None }
        );
        assert_eq!(
            classify_transport(TransportFailure::Other),
            RetryDecision::DontRetry
        );
    }

    #[test]
    fn writes_retry_only_what_cannot_have_been_applied() {
        for s in [429, 503] {
            assert_eq!(
                classify_write_status(s, None),
                RetryDecision::Retry { after: None },
                "{s}"
            );
        }
        for s in [200, 400, 404, 409, 500, 502, 504] {
            assert_eq!(
                classify_write_status(s, None),
                RetryDecision::DontRetry,
                "{s}"
            );
        }
        assert_eq!(
            classify_write_transport(TransportFailure::Connect),
            RetryDecision::Retry { after: None }
        );
        for f in [
            TransportFailure::Timeout,
            TransportFailure::Interrupted,
            TransportFailure::Other,
        ] {
            assert_eq!(
                classify_write_transport(f),
                RetryDecision::DontRetry,
                "{f:?}"
            );
        }
    }

    #[test]
    fn full_jitter_stays_within_zero_and_the_step() {
        let d = Duration::from_millis(800);
        let samples: Vec<Duration> = (0..200).map(|_| full_jitter(d)).collect();
        assert!(samples.iter().all(|s| *s <= d));
        assert!(samples.iter().any(|s| *s < d / 2), "jitter is not full");
        assert_eq!(full_jitter(Duration::ZERO), Duration::ZERO);
    }

    #[test]
    fn next_delay_prefers_retry_after_and_stops_when_exhausted() {
        let step = Some(Duration::from_secs(1));
        assert_eq!(
            next_delay(step, Some(Duration::from_secs(9))),
            Some(Duration::from_secs(9))
        );
        assert!(next_delay(step, None).unwrap() <= Duration::from_secs(1));
        assert_eq!(next_delay(None, Some(Duration::from_secs(9))), None);
    }

    #[test]
    fn backoff_doubles_and_is_capped_and_bounded_in_count() {
        use backon::BackoffBuilder;
        let p = BackoffPolicy {
            min_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(350),
            max_retries: 4,
        };
        let steps: Vec<u128> = p
            .builder()
            .build()
            .map(|d| (d.as_micros() + 500) / 1000)
            .collect();
        assert_eq!(steps, vec![100, 200, 350, 350]);
    }
}
