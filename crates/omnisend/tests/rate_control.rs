//! Rate controller behaviour under simulated (paused) time.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use omnisend::RateController;
use tokio::time::Instant;

const MINUTE: Duration = Duration::from_secs(60);

/// The largest number of instants within any half-open window `[t, t + len)`.
fn max_in_any_window(times: &[Instant], len: Duration) -> usize {
    let mut sorted = times.to_vec();
    sorted.sort();
    let mut best = 0;
    let mut start = 0;
    for end in 0..sorted.len() {
        while sorted[end].duration_since(sorted[start]) >= len {
            start += 1;
        }
        best = best.max(end - start + 1);
    }
    best
}

/// Runs `tasks` concurrent senders, each acquiring `per_task` permits (calling `on_success`
/// after each), and returns every permit instant.
async fn acquire_concurrently(rc: &RateController, tasks: usize, per_task: usize) -> Vec<Instant> {
    let times = Arc::new(Mutex::new(Vec::new()));
    let handles: Vec<_> = (0..tasks)
        .map(|_| {
            let rc = rc.clone();
            let times = times.clone();
            tokio::spawn(async move {
                for _ in 0..per_task {
                    rc.acquire().await;
                    times.lock().unwrap().push(Instant::now());
                    rc.on_success();
                }
            })
        })
        .collect();
    for h in handles {
        h.await.unwrap();
    }
    Arc::try_unwrap(times).unwrap().into_inner().unwrap()
}

#[tokio::test(start_paused = true)]
async fn never_exceeds_limit_in_any_sliding_window() {
    let rc = RateController::new(120, 5);
    let times = acquire_concurrently(&rc, 4, 250).await;
    assert_eq!(times.len(), 1_000);
    let max = max_in_any_window(&times, MINUTE);
    assert!(max <= 120, "{max} permits in one 60 s window");
    // The check is not vacuous: the limiter runs close to the limit.
    assert!(max >= 110, "only {max} permits in the busiest window");
}

#[tokio::test(start_paused = true)]
async fn never_exceeds_limit_in_any_sliding_window_across_throttling_and_recovery() {
    let rc = RateController::new(120, 5);
    let times = Arc::new(Mutex::new(Vec::new()));
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let (rc, times) = (rc.clone(), times.clone());
            tokio::spawn(async move {
                for _ in 0..300 {
                    rc.acquire().await;
                    times.lock().unwrap().push(Instant::now());
                    rc.on_success();
                }
            })
        })
        .collect();
    // A 429 every 45 s for a while, some with a server-given delay.
    for i in 0..6u64 {
        tokio::time::sleep(Duration::from_secs(45)).await;
        rc.on_throttled((i % 2 == 0).then(|| Duration::from_secs(i + 1)));
    }
    for w in workers {
        w.await.unwrap();
    }
    let times = times.lock().unwrap().clone();
    assert_eq!(times.len(), 1_200);
    let max = max_in_any_window(&times, MINUTE);
    assert!(max <= 120, "{max} permits in one 60 s window");
}

#[tokio::test(start_paused = true)]
async fn no_start_up_burst_beyond_configured_burst() {
    let rc = RateController::new(400, 5);
    let start = Instant::now();
    let times = acquire_concurrently(&rc, 20, 5).await;
    let immediate = times.iter().filter(|t| **t == start).count();
    assert_eq!(immediate, 5, "permits granted at start-up");
    // Within the first second: the burst plus pacing at 400/min (one per 150 ms).
    let first_second = times
        .iter()
        .filter(|t| t.duration_since(start) < Duration::from_secs(1))
        .count();
    assert!(
        first_second <= 5 + 7,
        "{first_second} permits in the first second"
    );
    assert!(
        first_second >= 5 + 6,
        "{first_second} permits in the first second (too slow)"
    );
}

#[tokio::test(start_paused = true)]
async fn throttle_halves_the_rate_and_pauses() {
    let rc = RateController::new(120, 5);
    for _ in 0..10 {
        rc.acquire().await;
    }
    assert_eq!(rc.current_rate_per_minute(), 120.0);
    let throttled_at = Instant::now();
    rc.on_throttled(Some(Duration::from_secs(10)));
    assert_eq!(rc.current_rate_per_minute(), 60.0);
    // More 429s of the same episode (requests that were already in flight) do not halve again.
    rc.on_throttled(Some(Duration::from_secs(10)));
    rc.on_throttled(None);
    assert_eq!(rc.current_rate_per_minute(), 60.0);
    assert_eq!(rc.throttled_count(), 3);

    rc.acquire().await;
    let first = Instant::now();
    assert!(
        first.duration_since(throttled_at) >= Duration::from_secs(10),
        "acquired during the pause"
    );
    // After the pause: no burst, one permit per second (60/min).
    for _ in 0..10 {
        rc.acquire().await;
    }
    let elapsed = Instant::now().duration_since(first);
    assert!(
        elapsed >= Duration::from_secs(10),
        "10 permits at 60/min took only {elapsed:?}"
    );
    assert!(
        elapsed <= Duration::from_millis(10_100),
        "10 permits at 60/min took {elapsed:?}"
    );

    // A new episode (after the pause) halves again, down to the 10 % floor at most.
    for _ in 0..10 {
        rc.on_throttled(Some(Duration::ZERO));
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    assert_eq!(rc.current_rate_per_minute(), 12.0);
}

#[tokio::test(start_paused = true)]
async fn throttle_pauses_senders_that_were_already_waiting() {
    let rc = RateController::new(60, 1);
    rc.acquire().await; // next slot: +1 s
    let waiter = {
        let rc = rc.clone();
        tokio::spawn(async move {
            rc.acquire().await;
            Instant::now()
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let throttled_at = Instant::now();
    rc.on_throttled(Some(Duration::from_secs(5)));
    let got = waiter.await.unwrap();
    assert!(
        got.duration_since(throttled_at) >= Duration::from_secs(5),
        "a waiter slipped through the pause"
    );
}

#[tokio::test(start_paused = true)]
async fn rate_recovers_additively_after_throttling_stops() {
    let rc = RateController::new(120, 5);
    rc.on_throttled(Some(Duration::from_secs(1)));
    assert_eq!(rc.current_rate_per_minute(), 60.0);
    let start = Instant::now();
    let mut samples = Vec::new();
    let mut last_sample = start;
    while Instant::now().duration_since(start) < Duration::from_secs(180) {
        rc.acquire().await;
        rc.on_success();
        if Instant::now().duration_since(last_sample) >= Duration::from_secs(10) {
            last_sample = Instant::now();
            samples.push(rc.current_rate_per_minute());
        }
    }
    // Each step adds 5 % of the ceiling (6/min), never more, never beyond the ceiling.
    let mut previous = 60.0;
    for rate in &samples {
        let step = rate - previous;
        assert!(
            (0.0..=6.0 + 1e-9).contains(&step),
            "step {step} in {samples:?}"
        );
        assert!(*rate <= 120.0);
        previous = *rate;
    }
    assert!(samples[0] < 120.0, "recovered at once: {samples:?}");
    assert_eq!(
        rc.current_rate_per_minute(),
        120.0,
        "did not recover: {samples:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn rate_does_not_grow_while_not_saturated() {
    let rc = RateController::new(120, 5);
    rc.on_throttled(Some(Duration::from_secs(1)));
    tokio::time::sleep(Duration::from_secs(2)).await;
    // A sender far below the reduced rate never waits, so there is no evidence for more capacity.
    for _ in 0..30 {
        rc.acquire().await;
        rc.on_success();
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
    assert_eq!(rc.current_rate_per_minute(), 60.0);
}

#[tokio::test(start_paused = true)]
async fn sustained_rate_is_close_to_the_limit() {
    let rc = RateController::new(120, 5);
    let start = Instant::now();
    let deadline = start + 10 * MINUTE;
    let count = Arc::new(Mutex::new(Vec::new()));
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let (rc, count) = (rc.clone(), count.clone());
            tokio::spawn(async move {
                loop {
                    rc.acquire().await;
                    let now = Instant::now();
                    if now >= deadline {
                        break;
                    }
                    count.lock().unwrap().push(now);
                    rc.on_success();
                }
            })
        })
        .collect();
    for w in workers {
        w.await.unwrap();
    }
    let times = count.lock().unwrap().clone();
    let n = times.len();
    assert!(
        n >= 1_140,
        "only {n} permits in 10 minutes at 120/min (< 95 %)"
    );
    assert!(n <= 1_200, "{n} permits in 10 minutes at 120/min");
    assert!(max_in_any_window(&times, MINUTE) <= 120);
}

#[tokio::test(start_paused = true)]
async fn priority_senders_overtake_ordinary_senders_still_waiting() {
    // One permit a second, shared by a sync (four requests in flight, endlessly) and a burst of
    // twenty real-time events.
    let rc = RateController::new(60, 1);
    let order = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let syncs: Vec<_> = (0..4)
        .map(|_| {
            let (rc, order, stop) = (rc.clone(), order.clone(), stop.clone());
            tokio::spawn(async move {
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    rc.acquire().await;
                    order.lock().unwrap().push("sync");
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(10)).await;
    let start = Instant::now();
    for _ in 0..20 {
        rc.acquire_priority().await;
        order.lock().unwrap().push("event");
    }
    let took = start.elapsed();
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    for s in syncs {
        s.await.unwrap();
    }
    let order = order.lock().unwrap().clone();
    let first = order.iter().position(|o| *o == "event").unwrap();
    let last = order.iter().rposition(|o| *o == "event").unwrap();
    let syncs_between = order[first..=last].iter().filter(|o| **o == "sync").count();
    // Only the slots the sync had already reserved when the events arrived go first; after
    // that the events leave back to back (without priority: four sync requests per event).
    assert!(
        syncs_between <= 4,
        "{syncs_between} sync permits among the events: {order:?}"
    );
    assert!(
        took <= Duration::from_secs(25),
        "twenty events took {took:?}"
    );
    // The ceiling holds for everyone together: one permit a second.
    assert!(took >= Duration::from_secs(19));
}
