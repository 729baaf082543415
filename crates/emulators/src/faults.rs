//! Fault injection shared by both emulators.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::time::Duration;

/// Faults an emulator injects into the responses of its API endpoints.
///
/// Faults are decided *before* a request is applied, so a faulted request never changes state.
/// The sequence of injected errors is reproducible for a given [`Faults::seed`].
#[derive(Clone, Debug, Default)]
pub struct Faults {
    /// Fraction (`0.0..=1.0`) of requests answered with an injected error (a roughly even mix of
    /// 429 and server errors; which server errors depends on the emulator).
    pub error_rate: f64,
    /// Delay added to every response.
    pub latency: Duration,
    /// `(after_n_requests, count)`: once `after_n_requests` requests have been seen (counted from
    /// the moment the faults were set), the next `count` requests are answered with 429.
    pub burst_429: Option<(u64, u64)>,
    /// Seed for the random number generator that decides which requests fail.
    pub seed: u64,
}

/// The outcome of a fault decision for one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Injected {
    /// Answer with this HTTP status without applying the request.
    Status(u16),
}

/// Stateful fault decider: the configured [`Faults`], a seeded RNG and a request counter.
#[derive(Debug)]
pub(crate) struct FaultInjector {
    faults: Faults,
    rng: ChaCha8Rng,
    seen: u64,
}

impl FaultInjector {
    pub(crate) fn new(faults: Faults) -> Self {
        let rng = ChaCha8Rng::seed_from_u64(faults.seed);
        Self {
            faults,
            rng,
            seen: 0,
        }
    }

    /// The latency to add to the current response.
    pub(crate) fn latency(&self) -> Duration {
        self.faults.latency
    }

    /// Decides whether the next request fails. `server_errors` are the 5xx statuses this
    /// emulator may inject; 429 is always part of the mix (about one third of the injected errors).
    pub(crate) fn decide(&mut self, server_errors: &[u16]) -> Option<Injected> {
        let n = self.seen;
        self.seen += 1;
        if let Some((after, count)) = self.faults.burst_429
            && n >= after
            && n < after.saturating_add(count)
        {
            return Some(Injected::Status(429));
        }
        let rate = self.faults.error_rate.clamp(0.0, 1.0);
        if rate > 0.0 && self.rng.random_bool(rate) {
            let slot = self.rng.random_range(0..3u32);
            if slot == 0 || server_errors.is_empty() {
                return Some(Injected::Status(429));
            }
            let i = self.rng.random_range(0..server_errors.len());
            return Some(Injected::Status(server_errors[i]));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_answers_exactly_count_requests_after_n() {
        let mut f = FaultInjector::new(Faults {
            burst_429: Some((2, 3)),
            ..Faults::default()
        });
        let got: Vec<_> = (0..7).map(|_| f.decide(&[500]).is_some()).collect();
        assert_eq!(got, [false, false, true, true, true, false, false]);
    }

    #[test]
    fn error_rate_sequence_is_reproducible() {
        let faults = Faults {
            error_rate: 0.5,
            seed: 7,
            ..Faults::default()
        };
        let a: Vec<_> = {
            let mut f = FaultInjector::new(faults.clone());
            (0..50).map(|_| f.decide(&[500, 503])).collect()
        };
        let mut f = FaultInjector::new(faults);
        let b: Vec<_> = (0..50).map(|_| f.decide(&[500, 503])).collect();
        assert_eq!(a, b);
        assert!(a.iter().any(Option::is_some) && a.iter().any(Option::is_none));
    }
}
