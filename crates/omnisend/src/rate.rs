//! Per-brand request rate control for Omnisend.
//!
//! Omnisend allows about 400 requests per minute per brand, counted over a **sliding** 60 s
//! window and shared with every other integration of the brand. [`RateController`] combines:
//!
//! 1. **Pacing** (GCRA, i.e. a token bucket with a tiny bucket) at the current effective rate, so
//!    requests are spread evenly and at most `burst` leave back to back. A fresh controller starts
//!    with `burst` tokens, not with a whole minute's worth (the pitfall of `governor`'s default
//!    quota).
//! 2. **A hard sliding-window ceiling**: the instants of the last `requests_per_minute` permits are
//!    kept in a ring; a new permit is issued only once the oldest of them is more than 60 s (plus a
//!    small safety margin) in the past. Whatever the pacing does, no 60 s window ever holds more
//!    than `requests_per_minute` permits.
//! 3. **AIMD** on the effective rate, Vector-ARC style but controlling the rate instead of the
//!    concurrency: a 429 halves the rate (floor 10 % of the ceiling) and pauses every sender; every
//!    10 s without throttling during which senders actually had to wait for a permit adds 5 % of
//!    the ceiling back, up to the ceiling.
//!
//! 4. **Optionally, a budget shared with other processes** ([`SharedBudget`]): after its own
//!    permit, a sender also takes a unit from the shared budget (e.g. a PostgreSQL row per brand
//!    and second, used by every instance of a multi-instance deployment) and waits while that
//!    is exhausted. The local pacing keeps each process smooth; the shared budget keeps the
//!    instances together under the brand's limit.
//!
//! It is hand-written because `governor` cannot change its quota in place and a rebuilt limiter
//! starts with a full bucket. All timing uses `tokio::time`, so it runs under
//! `tokio::time::pause()`.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::{Instant, sleep_until};

/// Length of the window Omnisend counts requests in.
pub const WINDOW: Duration = Duration::from_secs(60);
/// Extra spacing added to [`WINDOW`] for the hard ceiling, to absorb clock and network jitter
/// between the client and Omnisend's counter.
pub const WINDOW_MARGIN: Duration = Duration::from_millis(250);
/// Pause after a 429 that carried no delay.
pub const DEFAULT_THROTTLE_PAUSE: Duration = Duration::from_secs(5);
/// Longest pause a single 429 can impose (guards against absurd server values).
pub const MAX_THROTTLE_PAUSE: Duration = Duration::from_secs(300);
/// Factor applied to the effective rate on a 429.
pub const DECREASE_FACTOR: f64 = 0.5;
/// Lowest effective rate, as a fraction of the ceiling.
pub const FLOOR_FRACTION: f64 = 0.1;
/// Additive increase per [`INCREASE_INTERVAL`], as a fraction of the ceiling.
pub const INCREASE_FRACTION: f64 = 0.05;
/// Length of an additive-increase interval.
pub const INCREASE_INTERVAL: Duration = Duration::from_secs(10);
/// Two 429s closer than this count as one throttling episode (one decrease).
pub const DECREASE_GUARD: Duration = Duration::from_secs(1);

/// The answer of a [`SharedBudget`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BudgetDecision {
    /// One request may leave now.
    Granted,
    /// The budget is used up; ask again after this long.
    RetryAfter(Duration),
}

/// A request budget shared with other processes (see the module docs, point 4). Implementations
/// decide what happens when their store is unreachable (e.g. answer `RetryAfter`, so that no
/// request leaves uncounted).
pub trait SharedBudget: Send + Sync + 'static {
    /// Takes one unit, or says how long to wait before asking again.
    fn take(&self) -> Pin<Box<dyn Future<Output = BudgetDecision> + Send + '_>>;
}

/// Per-brand rate controller shared by every clone (an `Arc` inside).
///
/// Guarantees at most `requests_per_minute` permits in any sliding 60 s window, and at most
/// `burst` permits at once.
#[derive(Clone)]
pub struct RateController {
    inner: Arc<Inner>,
}

struct Inner {
    max_per_minute: u32,
    burst: u32,
    state: Mutex<State>,
    /// Priority senders waiting for a permit ([`RateController::acquire_priority`]).
    priority_waiting: AtomicUsize,
    /// Notified when the last priority sender got its permit.
    priority_done: Notify,
    /// Budget shared with other processes, if any.
    shared: OnceLock<Arc<dyn SharedBudget>>,
}

struct State {
    /// Current effective rate, requests per minute.
    rate: f64,
    /// GCRA theoretical arrival time.
    tat: Instant,
    /// Instants of the last `max_per_minute` permits, oldest first (non-decreasing).
    recent: VecDeque<Instant>,
    /// Senders may not start before this instant (set by a 429).
    paused_until: Option<Instant>,
    /// When the rate was last decreased.
    last_decrease: Option<Instant>,
    /// Start of the current additive-increase interval.
    interval_start: Instant,
    /// Whether some sender had to wait for a permit during the current interval.
    saturated: bool,
    /// Counters for observability.
    throttles: u64,
}

impl std::fmt::Debug for RateController {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateController")
            .field("requests_per_minute", &self.inner.max_per_minute)
            .field("burst", &self.inner.burst)
            .field("current_rate_per_minute", &self.current_rate_per_minute())
            .finish()
    }
}

impl RateController {
    /// A controller allowing at most `requests_per_minute` (at least 1) permits in any 60 s window,
    /// with bursts of at most `burst` (clamped to `1..=requests_per_minute`; keep it small, e.g. 5).
    /// Starts at the full rate with `burst` permits available.
    pub fn new(requests_per_minute: u32, burst: u32) -> Self {
        let max = requests_per_minute.max(1);
        let now = Instant::now();
        RateController {
            inner: Arc::new(Inner {
                max_per_minute: max,
                burst: burst.clamp(1, max),
                state: Mutex::new(State {
                    rate: f64::from(max),
                    tat: now,
                    // Grows with actual traffic, not the ceiling (a lifted limit of 10^6/min must
                    // not preallocate megabytes).
                    recent: VecDeque::new(),
                    paused_until: None,
                    last_decrease: None,
                    interval_start: now,
                    saturated: false,
                    throttles: 0,
                }),
                priority_waiting: AtomicUsize::new(0),
                priority_done: Notify::new(),
                shared: OnceLock::new(),
            }),
        }
    }

    /// Makes every permit also take a unit of `budget` (once per controller; a second call is
    /// ignored and returns `false`).
    pub fn share_budget(&self, budget: Arc<dyn SharedBudget>) -> bool {
        self.inner.shared.set(budget).is_ok()
    }

    /// Whether a [`SharedBudget`] is attached.
    pub fn has_shared_budget(&self) -> bool {
        self.inner.shared.get().is_some()
    }

    /// The configured ceiling (requests per minute).
    pub fn requests_per_minute(&self) -> u32 {
        self.inner.max_per_minute
    }

    /// The configured burst.
    pub fn burst(&self) -> u32 {
        self.inner.burst
    }

    /// The current effective rate in requests per minute (between 10 % of the ceiling and the
    /// ceiling).
    pub fn current_rate_per_minute(&self) -> f64 {
        self.state().rate
    }

    /// How many times [`RateController::on_throttled`] was called.
    pub fn throttled_count(&self) -> u64 {
        self.state().throttles
    }

    /// Waits until one request may be sent, and consumes that permit. Call it before every HTTP
    /// attempt, retries included. Permits are handed out in call order. Cancelling the future
    /// while it waits forfeits the reserved slot (the ceiling stays respected).
    pub async fn acquire(&self) {
        // Priority senders go first: wait until none is waiting before taking a slot.
        loop {
            let done = self.inner.priority_done.notified();
            tokio::pin!(done);
            done.as_mut().enable();
            if self.inner.priority_waiting.load(AtomicOrdering::SeqCst) == 0 {
                break;
            }
            done.await;
        }
        self.acquire_slot().await;
    }

    /// [`RateController::acquire`] ahead of every ordinary sender still waiting: real-time
    /// events overtake sync traffic of the same brand. (Ordinary senders that already hold a
    /// slot keep it; the ceiling is the same for everyone.)
    pub async fn acquire_priority(&self) {
        struct Waiting<'a>(&'a Inner);
        impl Drop for Waiting<'_> {
            fn drop(&mut self) {
                if self.0.priority_waiting.fetch_sub(1, AtomicOrdering::SeqCst) == 1 {
                    self.0.priority_done.notify_waiters();
                }
            }
        }
        self.inner
            .priority_waiting
            .fetch_add(1, AtomicOrdering::SeqCst);
        let _waiting = Waiting(&self.inner);
        self.acquire_slot().await;
    }

    async fn acquire_slot(&self) {
        loop {
            let at = self.reserve();
            if at > Instant::now() {
                sleep_until(at).await;
            }
            // A 429 reported while we slept pauses everyone, us included: take a new slot.
            let paused_until = self.state().paused_until;
            if paused_until.is_none_or(|p| p <= at) {
                break;
            }
        }
        if let Some(shared) = self.inner.shared.get() {
            while let BudgetDecision::RetryAfter(wait) = shared.take().await {
                self.state().saturated = true;
                tokio::time::sleep(wait).await;
            }
            // A 429 reported while we waited for the shared budget pauses us too (the unit
            // taken stays counted: that only errs on the safe side).
            let paused_until = self.state().paused_until;
            if let Some(p) = paused_until.filter(|p| *p > Instant::now()) {
                sleep_until(p).await;
            }
        }
    }

    /// Reports a 429. Halves the effective rate (once per throttling episode; floor 10 % of the
    /// ceiling) and pauses all senders for `retry_after` (default
    /// [`DEFAULT_THROTTLE_PAUSE`], at most [`MAX_THROTTLE_PAUSE`]). After the pause, requests
    /// resume one at a time at the reduced rate, without a burst.
    pub fn on_throttled(&self, retry_after: Option<Duration>) {
        let floor = (f64::from(self.inner.max_per_minute) * FLOOR_FRACTION).max(1.0);
        let burst = self.inner.burst;
        let mut s = self.state();
        let now = Instant::now();
        s.throttles += 1;
        let still_paused = s.paused_until.is_some_and(|p| p > now);
        let recently_decreased = s
            .last_decrease
            .is_some_and(|t| now.duration_since(t) < DECREASE_GUARD);
        if !still_paused && !recently_decreased {
            s.rate = (s.rate * DECREASE_FACTOR).max(floor);
            s.last_decrease = Some(now);
        }
        let pause = retry_after
            .unwrap_or(DEFAULT_THROTTLE_PAUSE)
            .min(MAX_THROTTLE_PAUSE);
        let until = now + pause;
        let until = s.paused_until.map_or(until, |p| p.max(until));
        s.paused_until = Some(until);
        // No burst when the pause ends: the first permit at `until`, then paced.
        let interval = s.interval();
        s.tat = s.tat.max(until + interval * (burst - 1));
        s.interval_start = now;
        s.saturated = false;
        tracing::debug!(
            rate_per_minute = s.rate,
            pause_ms = pause.as_millis() as u64,
            "omnisend throttled; rate decreased"
        );
    }

    /// Reports a successful response. Once per [`INCREASE_INTERVAL`] without throttling, if
    /// senders had to wait for permits in that interval (the limiter was the bottleneck), adds
    /// [`INCREASE_FRACTION`] of the ceiling to the effective rate, up to the ceiling.
    pub fn on_success(&self) {
        let max = f64::from(self.inner.max_per_minute);
        let mut s = self.state();
        let now = Instant::now();
        if now.duration_since(s.interval_start) < INCREASE_INTERVAL {
            return;
        }
        if s.saturated && s.rate < max {
            s.rate = (s.rate + max * INCREASE_FRACTION).min(max);
            tracing::debug!(rate_per_minute = s.rate, "omnisend rate increased");
        }
        s.interval_start = now;
        s.saturated = false;
    }

    /// Books the earliest slot allowed by the pause, the pacing and the window ceiling.
    fn reserve(&self) -> Instant {
        let max = self.inner.max_per_minute as usize;
        let burst = self.inner.burst;
        let mut s = self.state();
        let now = Instant::now();
        let interval = s.interval();
        let mut at = now;
        // GCRA: allowed once the theoretical arrival time is at most `burst - 1` intervals ahead.
        if let Some(paced) = s.tat.checked_sub(interval * (burst - 1)) {
            at = at.max(paced);
        }
        if let Some(p) = s.paused_until {
            at = at.max(p);
        }
        if s.recent.len() >= max {
            at = at.max(s.recent[s.recent.len() - max] + WINDOW + WINDOW_MARGIN);
        }
        if let Some(last) = s.recent.back() {
            at = at.max(*last);
        }
        if at > now {
            s.saturated = true;
        }
        s.tat = s.tat.max(at) + interval;
        s.recent.push_back(at);
        // Keep only what can still matter: the last `max` permits, and none that has already
        // left the window (so memory follows the traffic of one minute, not the ceiling).
        let horizon = at.checked_sub(WINDOW + WINDOW_MARGIN);
        while s.recent.len() > max || s.recent.front().zip(horizon).is_some_and(|(f, h)| *f < h) {
            s.recent.pop_front();
        }
        at
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl State {
    /// Emission interval at the current rate.
    fn interval(&self) -> Duration {
        Duration::from_secs_f64(60.0 / self.rate)
    }
}
