//! The jobs table (leases, compare-and-set starts, run requests) and the shared request budget,
//! on both backends.

use std::time::Duration;

use connector::store::Backend;
use connector::store::testing::TestStore;
use time::macros::datetime;

connector::backend_tests!(
    a_job_starts_once_per_observed_state_and_not_under_a_live_lease,
    finishing_or_renewing_needs_the_lease_and_release_frees_all_of_an_instance,
    a_request_survives_until_a_run_starts_after_it,
    the_shared_budget_grants_the_limit_per_window_then_says_how_long_to_wait,
);

const T0: time::OffsetDateTime = datetime!(2026-11-27 00:00 UTC);
const LEASE: Duration = Duration::from_secs(30);

async fn a_job_starts_once_per_observed_state_and_not_under_a_live_lease(t: &TestStore) {
    let s = t.store();
    s.ensure_job("catalog:us", T0).await.unwrap();
    s.ensure_job("catalog:us", T0 + LEASE).await.unwrap();
    let job = s.job("catalog:us").await.unwrap().unwrap();
    assert_eq!(job.created_at, T0, "ensure_job keeps the first anchor");
    assert_eq!((job.runs, job.last_started), (0, None));

    // Two instances saw the same state; only the first compare-and-set wins.
    assert!(
        s.try_start_job("catalog:us", "a", T0, LEASE, None, false)
            .await
            .unwrap()
    );
    assert!(
        !s.try_start_job("catalog:us", "b", T0, LEASE, None, false)
            .await
            .unwrap()
    );
    // Even with the new state observed, a live lease keeps others out ...
    let seen = Some(T0);
    let later = T0 + Duration::from_secs(10);
    assert!(
        !s.try_start_job("catalog:us", "b", later, LEASE, seen, true)
            .await
            .unwrap()
    );
    // ... until it runs out.
    let expired = T0 + LEASE + Duration::from_millis(1);
    assert!(
        s.try_start_job("catalog:us", "b", expired, LEASE, seen, true)
            .await
            .unwrap()
    );
    let job = s.job("catalog:us").await.unwrap().unwrap();
    assert_eq!(job.lease_owner.as_deref(), Some("b"));
    assert_eq!(job.runs, 2);
    assert_eq!(job.last_full, Some(expired), "a full start moves last_full");
}

async fn finishing_or_renewing_needs_the_lease_and_release_frees_all_of_an_instance(t: &TestStore) {
    let s = t.store();
    for name in ["catalog:us", "contacts:us"] {
        s.ensure_job(name, T0).await.unwrap();
        assert!(
            s.try_start_job(name, "a", T0, LEASE, None, false)
                .await
                .unwrap()
        );
    }
    assert!(!s.renew_job("catalog:us", "b", T0, LEASE).await.unwrap());
    assert!(
        s.renew_job("catalog:us", "a", T0 + LEASE, LEASE)
            .await
            .unwrap()
    );
    let job = s.job("catalog:us").await.unwrap().unwrap();
    assert_eq!(job.lease_until, Some(T0 + LEASE + LEASE));
    assert!(!s.finish_job("catalog:us", "b", T0, "ok").await.unwrap());
    assert!(
        s.finish_job("catalog:us", "a", T0 + LEASE, "ok: 2 run(s)")
            .await
            .unwrap()
    );
    let job = s.job("catalog:us").await.unwrap().unwrap();
    assert_eq!(job.lease_owner, None);
    assert_eq!(job.last_outcome.as_deref(), Some("ok: 2 run(s)"));
    assert_eq!(job.last_finished, Some(T0 + LEASE));
    // Shutdown: every lease of "a" goes at once.
    assert_eq!(s.release_jobs("a").await.unwrap(), 1);
    assert!(
        s.jobs()
            .await
            .unwrap()
            .iter()
            .all(|j| j.lease_owner.is_none())
    );
}

async fn a_request_survives_until_a_run_starts_after_it(t: &TestStore) {
    let s = t.store();
    // A request creates the row if needed.
    s.request_job("contacts:us", T0).await.unwrap();
    s.request_job("contacts:us", T0 + Duration::from_secs(5))
        .await
        .unwrap();
    let job = s.job("contacts:us").await.unwrap().unwrap();
    assert_eq!(
        job.requested_at,
        Some(T0),
        "the earliest pending request is kept"
    );
    // A run that started before the request leaves it pending ...
    let before = T0 - Duration::from_secs(1);
    assert!(
        s.try_start_job("contacts:us", "a", before, LEASE, None, false)
            .await
            .unwrap()
    );
    let job = s.job("contacts:us").await.unwrap().unwrap();
    assert_eq!(job.requested_at, Some(T0));
    s.finish_job("contacts:us", "a", T0, "ok").await.unwrap();
    // ... one that starts after it consumes it.
    let after = T0 + Duration::from_secs(1);
    assert!(
        s.try_start_job("contacts:us", "a", after, LEASE, Some(before), false)
            .await
            .unwrap()
    );
    assert_eq!(
        s.job("contacts:us").await.unwrap().unwrap().requested_at,
        None
    );
}

async fn the_shared_budget_grants_the_limit_per_window_then_says_how_long_to_wait(t: &TestStore) {
    let s = t.store();
    let mut granted = 0;
    let mut wait = None;
    for _ in 0..12 {
        match s.take_request_budget("brand-a", 10, 1).await.unwrap() {
            (0, d) => wait = Some(d),
            _ => granted += 1,
        }
    }
    match t.store().backend() {
        // One instance: the process's own rate controller is the only sender.
        Backend::Sqlite => assert_eq!((granted, wait), (12, None)),
        Backend::Postgres => {
            assert_eq!(granted, 10, "exactly the limit within one window");
            let wait = wait.expect("the 11th request has to wait");
            assert!(
                wait > Duration::from_secs(55) && wait <= Duration::from_secs(64),
                "the first grant leaves the window in about a minute: {wait:?}"
            );
            // Another brand has its own budget, also taken several units at a time.
            assert_eq!(s.take_request_budget("brand-b", 10, 1).await.unwrap().0, 1);
            let (n, _) = s.take_request_budget("brand-b", 10, 7).await.unwrap();
            assert_eq!(n, 7);
            let (n, _) = s.take_request_budget("brand-b", 10, 7).await.unwrap();
            assert_eq!(n, 2, "only what is left of the window");
            let (n, wait) = s.take_request_budget("brand-b", 10, 7).await.unwrap();
            assert_eq!(n, 0);
            assert!(wait > Duration::from_secs(55));
        }
    }
}
