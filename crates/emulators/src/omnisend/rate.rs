//! Sliding-window rate limiting per API key (Omnisend: 400 requests per minute).

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use tokio::time::Instant;

/// Length of the rate window.
pub(crate) const WINDOW: Duration = Duration::from_secs(60);

/// Values of the `X-Rate-Limit-*` headers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RateInfo {
    pub limit: u32,
    pub remaining: u32,
    /// Seconds until the oldest request in the window leaves it (rounded up).
    pub reset: u64,
}

/// Whether a request may proceed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RateDecision {
    /// Admitted and counted (`None` when there is no limit).
    Admitted(Option<RateInfo>),
    /// Over the limit; not counted.
    Limited { info: RateInfo, retry_after: u64 },
}

/// Per-key sliding windows of admitted request times.
#[derive(Debug, Default)]
pub(crate) struct RateLimiter {
    pub limit: Option<u32>,
    windows: HashMap<String, VecDeque<Instant>>,
}

fn ceil_secs(d: Duration) -> u64 {
    let secs = d.as_secs();
    if d.subsec_nanos() > 0 { secs + 1 } else { secs }
}

impl RateLimiter {
    pub(crate) fn new(limit: Option<u32>) -> Self {
        Self {
            limit,
            windows: HashMap::new(),
        }
    }

    /// Checks (and on admission records) one request of `key` at `now`.
    pub(crate) fn check(&mut self, key: &str, now: Instant) -> RateDecision {
        let window = self.windows.entry(key.to_owned()).or_default();
        while window
            .front()
            .is_some_and(|t| now.duration_since(*t) >= WINDOW)
        {
            window.pop_front();
        }
        let Some(limit) = self.limit else {
            window.push_back(now);
            return RateDecision::Admitted(None);
        };
        let reset_of = |w: &VecDeque<Instant>| {
            w.front()
                .map(|t| ceil_secs((*t + WINDOW).saturating_duration_since(now)).max(1))
                .unwrap_or(0)
        };
        if window.len() >= limit as usize {
            let retry_after = reset_of(window);
            return RateDecision::Limited {
                info: RateInfo {
                    limit,
                    remaining: 0,
                    reset: retry_after,
                },
                retry_after,
            };
        }
        window.push_back(now);
        RateDecision::Admitted(Some(RateInfo {
            limit,
            remaining: limit - window.len() as u32,
            reset: reset_of(window),
        }))
    }
}

/// The largest number of `times` (sorted ascending) inside any half-open window of length `window`.
pub(crate) fn max_in_window(times: &[Instant], window: Duration) -> usize {
    let mut best = 0;
    let mut start = 0;
    for end in 0..times.len() {
        while times[end].duration_since(times[start]) >= window {
            start += 1;
        }
        best = best.max(end - start + 1);
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn window_slides() {
        let mut r = RateLimiter::new(Some(2));
        let t0 = Instant::now();
        assert!(matches!(r.check("k", t0), RateDecision::Admitted(_)));
        assert!(matches!(
            r.check("k", t0 + Duration::from_secs(10)),
            RateDecision::Admitted(_)
        ));
        assert_eq!(
            r.check("k", t0 + Duration::from_secs(20)),
            RateDecision::Limited {
                info: RateInfo {
                    limit: 2,
                    remaining: 0,
                    reset: 40
                },
                retry_after: 40
            }
        );
        assert!(matches!(r.check("other", t0), RateDecision::Admitted(_)));
        assert!(matches!(
            r.check("k", t0 + Duration::from_secs(60)),
            RateDecision::Admitted(_)
        ));
        let times = [
            t0,
            t0 + Duration::from_secs(59),
            t0 + Duration::from_secs(60),
        ];
        assert_eq!(max_in_window(&times, WINDOW), 2);
    }
}
