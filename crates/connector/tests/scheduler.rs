//! The scheduler: delta runs at their interval, the full refresh at its cron schedule, each run
//! on one instance only, dead instances' jobs taken over, requests served — on both backends,
//! with two instances sharing one database. Time is a manual clock stepped by the test
//! (accelerated time: an hour of schedule in a second, exact to the second). `tokio::time::pause()`
//! does not work here: paused time jumps ahead whenever every task waits for the database.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use connector::config::CronSchedule;
use connector::schedule::{Clock, JobKind, JobRunner, JobSpec, RunMode, Scheduler};
use connector::store::StateStore;
use connector::store::testing::TestStore;
use time::OffsetDateTime;
use time::macros::datetime;
use tokio_util::sync::CancellationToken;

const T0: OffsetDateTime = datetime!(2026-11-27 00:00 UTC);

#[derive(Debug, Clone)]
struct Run {
    instance: String,
    job: String,
    mode: RunMode,
    start: OffsetDateTime,
    end: OffsetDateTime,
}

/// Records each run; a run takes `takes` of tokio time.
struct Recorder {
    instance: String,
    clock: Clock,
    takes: Duration,
    log: Arc<Mutex<Vec<Run>>>,
}

impl JobRunner for Recorder {
    fn run<'a>(
        &'a self,
        job: &'a JobSpec,
        mode: RunMode,
    ) -> Pin<Box<dyn Future<Output = Result<String, String>> + Send + 'a>> {
        Box::pin(async move {
            let start = self.clock.now();
            if !self.takes.is_zero() {
                tokio::time::sleep(self.takes).await;
            }
            self.log.lock().unwrap().push(Run {
                instance: self.instance.clone(),
                job: job.name.clone(),
                mode,
                start,
                end: self.clock.now(),
            });
            Ok("ok".into())
        })
    }
}

fn job(kind: JobKind, delta_secs: Option<u64>, cron: Option<&str>) -> JobSpec {
    JobSpec {
        name: connector::schedule::job_name(kind, "default"),
        kind,
        store: "default".into(),
        delta: delta_secs.map(Duration::from_secs),
        full: cron.map(|c| CronSchedule::parse(c).unwrap()),
    }
}

fn scheduler(
    store: StateStore,
    jobs: &[JobSpec],
    instance: &str,
    clock: &Clock,
    takes: Duration,
    lease: Duration,
    log: &Arc<Mutex<Vec<Run>>>,
) -> Scheduler {
    let runner = Recorder {
        instance: instance.into(),
        clock: clock.clone(),
        takes,
        log: log.clone(),
    };
    Scheduler::new(store, jobs.to_vec(), Arc::new(runner), instance, lease)
        .with_clock(clock.clone())
}

/// A second handle on the test database: another instance.
async fn second_instance(t: &TestStore) -> StateStore {
    StateStore::connect(t.url()).await.unwrap()
}

fn minutes(runs: &[Run], job: &str, mode: RunMode) -> Vec<i64> {
    runs.iter()
        .filter(|r| r.job == job && r.mode == mode)
        .map(|r| (r.start - T0).whole_seconds())
        .map(|s| {
            assert_eq!(s % 60, 0, "run at {s} s is not on a whole minute");
            s / 60
        })
        .collect()
}

connector::backend_tests!(
    delta_runs_follow_their_interval_and_the_full_refresh_its_cron_each_on_one_instance,
    a_job_held_by_a_dead_instance_is_taken_over_once_its_lease_runs_out,
    a_requested_run_starts_at_the_next_look_even_without_an_interval,
    the_scheduler_loop_renews_its_lease_so_a_long_run_never_overlaps_another_instance,
);

async fn delta_runs_follow_their_interval_and_the_full_refresh_its_cron_each_on_one_instance(
    t: &TestStore,
) {
    let clock = Clock::manual(T0);
    let log = Arc::default();
    let jobs = [
        job(JobKind::Catalog, Some(300), Some("*/20 * * * *")),
        job(JobKind::Contacts, Some(600), None),
    ];
    let lease = Duration::from_secs(60);
    let a = scheduler(
        t.store().clone(),
        &jobs,
        "a",
        &clock,
        Duration::ZERO,
        lease,
        &log,
    );
    let b = scheduler(
        second_instance(t).await,
        &jobs,
        "b",
        &clock,
        Duration::ZERO,
        lease,
        &log,
    );
    a.register().await.unwrap();
    b.register().await.unwrap();

    // One virtual hour in 2 s steps; the instances take turns looking first.
    for step in 0..=1800 {
        let (first, second) = if (step / 7) % 2 == 0 {
            (&a, &b)
        } else {
            (&b, &a)
        };
        first.step().await.unwrap();
        second.step().await.unwrap();
        clock.advance(Duration::from_secs(2));
    }

    let runs = log.lock().unwrap().clone();
    assert_eq!(
        minutes(&runs, "catalog:default", RunMode::Delta),
        [5, 10, 15, 25, 30, 35, 45, 50, 55],
        "catalog deltas every 5 minutes, a full run taking the place of the delta at :20/:40/:00"
    );
    assert_eq!(
        minutes(&runs, "catalog:default", RunMode::Full),
        [20, 40, 60]
    );
    assert_eq!(
        minutes(&runs, "contacts:default", RunMode::Delta),
        [10, 20, 30, 40, 50, 60]
    );
    assert!(minutes(&runs, "contacts:default", RunMode::Full).is_empty());
    // Each run happened on one instance only: the shared table counted exactly these runs.
    let states = t.store().jobs().await.unwrap();
    let total: i64 = states.iter().map(|s| s.runs).sum();
    assert_eq!(total as usize, runs.len());
    assert!(states.iter().all(|s| s.lease_owner.is_none()), "{states:?}");
    assert!(
        states
            .iter()
            .all(|s| s.last_outcome.as_deref() == Some("ok"))
    );
    // Both instances did work (the one that looks first wins the claim).
    assert!(runs.iter().any(|r| r.instance == "a") && runs.iter().any(|r| r.instance == "b"));
}

async fn a_job_held_by_a_dead_instance_is_taken_over_once_its_lease_runs_out(t: &TestStore) {
    let clock = Clock::manual(T0);
    let log = Arc::default();
    let jobs = [job(JobKind::Catalog, Some(60), None)];
    let lease = Duration::from_secs(30);
    let b = scheduler(
        t.store().clone(),
        &jobs,
        "b",
        &clock,
        Duration::ZERO,
        lease,
        &log,
    );
    b.register().await.unwrap();
    // Instance "a" starts the run at 60 s and dies without finishing or releasing it.
    clock.advance(Duration::from_secs(60));
    let state = t.store().job("catalog:default").await.unwrap().unwrap();
    assert!(
        t.store()
            .try_start_job(
                "catalog:default",
                "a",
                clock.now(),
                lease,
                state.last_started,
                false
            )
            .await
            .unwrap()
    );
    // While a's lease lives, b leaves the job alone, even once the interval has passed again.
    for _ in 0..30 {
        clock.advance(Duration::from_secs(1));
        assert!(b.step().await.unwrap().is_empty());
    }
    // 31 s after a's start its lease has run out: b redoes the interrupted run at once,
    // without waiting for the interval.
    clock.advance(Duration::from_secs(1));
    assert_eq!(
        b.step().await.unwrap(),
        [("catalog:default".to_string(), RunMode::Delta)]
    );
    let runs = log.lock().unwrap().clone();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].instance, "b");
    assert_eq!((runs[0].start - T0).whole_seconds(), 91);
    // a's late completion cannot overwrite b's outcome: its lease is gone.
    assert!(
        !t.store()
            .finish_job("catalog:default", "a", clock.now(), "ok (late)")
            .await
            .unwrap()
    );
}

async fn a_requested_run_starts_at_the_next_look_even_without_an_interval(t: &TestStore) {
    let clock = Clock::manual(T0);
    let log = Arc::default();
    let jobs = [
        job(JobKind::Catalog, None, None),
        job(JobKind::Contacts, None, None),
    ];
    let lease = Duration::from_secs(30);
    let a = scheduler(
        t.store().clone(),
        &jobs,
        "a",
        &clock,
        Duration::ZERO,
        lease,
        &log,
    );
    a.register().await.unwrap();
    clock.advance(Duration::from_secs(86_400));
    assert!(
        a.step().await.unwrap().is_empty(),
        "no interval: nothing due"
    );

    let n = Scheduler::request(t.store(), &jobs, JobKind::Contacts, clock.now())
        .await
        .unwrap();
    assert_eq!(n, 1);
    clock.advance(Duration::from_secs(1));
    assert_eq!(
        a.step().await.unwrap(),
        [("contacts:default".to_string(), RunMode::Delta)]
    );
    // The request was consumed: the next look starts nothing.
    clock.advance(Duration::from_secs(1));
    assert!(a.step().await.unwrap().is_empty());
    let state = t.store().job("contacts:default").await.unwrap().unwrap();
    assert_eq!(state.requested_at, None);
    assert_eq!(state.runs, 1);
}

async fn the_scheduler_loop_renews_its_lease_so_a_long_run_never_overlaps_another_instance(
    t: &TestStore,
) {
    // The real loop in real time, kept short: runs take 2.5 s against a 1.2 s lease (renewed
    // every 0.4 s), so only the renewals keep the other instance out, and the next run is due
    // as soon as one ends.
    let clock = Clock::System;
    let log: Arc<Mutex<Vec<Run>>> = Arc::default();
    let jobs = [job(JobKind::Catalog, Some(0), None)];
    let lease = Duration::from_millis(1200);
    let takes = Duration::from_millis(2500);
    let tick = Duration::from_millis(20);
    let stop = CancellationToken::new();
    let a = scheduler(t.store().clone(), &jobs, "a", &clock, takes, lease, &log).with_tick(tick);
    let b = scheduler(
        second_instance(t).await,
        &jobs,
        "b",
        &clock,
        takes,
        lease,
        &log,
    )
    .with_tick(tick);
    let ha = tokio::spawn(a.run(stop.clone()));
    let hb = tokio::spawn(b.run(stop.clone()));
    // Wait (event-driven, with a generous deadline) for three finished runs.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while log.lock().unwrap().len() < 3 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no three runs within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.cancel();
    ha.await.unwrap();
    hb.await.unwrap();

    let mut runs = log.lock().unwrap().clone();
    runs.sort_by_key(|r| r.start);
    for pair in runs.windows(2) {
        assert!(
            pair[1].start >= pair[0].end,
            "runs overlapped: {:?} and {:?}",
            pair[0],
            pair[1]
        );
    }
    let state = t.store().job("catalog:default").await.unwrap().unwrap();
    // The run cut short by the stop is counted as started but never recorded by the runner.
    assert!(
        state.runs as usize == runs.len() || state.runs as usize == runs.len() + 1,
        "{} started, {} finished",
        state.runs,
        runs.len()
    );
    assert_eq!(state.lease_owner, None, "stopping released the lease");
}
