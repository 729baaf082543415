//! State store integration tests.
//!
//! Every test body in `backend_tests!` runs twice: `sqlite::NAME` against a temp
//! file and `postgres::NAME` against the server in `CT_OMNISEND_TEST_POSTGRES`
//! (an isolated schema per test). Without that variable the Postgres variants
//! print one "skipped" line and pass; with it set, connection errors fail.

use std::time::Duration;

use connector::store::testing::{self, TestStore};
use connector::store::{
    Backend, Cursor, NewRejected, RecordStatus, RejectedFilter, RunStats, StateStore, StoreError,
    StoreOptions, SyncRecord,
};
use serde_json::json;
use time::OffsetDateTime;
use time::macros::datetime;

/// Millisecond-precise timestamps (the store keeps milliseconds).
const T0: OffsetDateTime = datetime!(2026-03-01 12:00:00.123 UTC);

fn at(seconds: i64) -> OffsetDateTime {
    T0 + time::Duration::seconds(seconds)
}

fn ids(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

fn record(route: &str, entity: &str, ct_id: &str) -> SyncRecord {
    SyncRecord {
        route: route.to_owned(),
        entity: entity.to_owned(),
        ct_id: ct_id.to_owned(),
        ct_version: 1,
        payload_hash: format!("hash-{ct_id}"),
        omnisend_id: None,
        status: RecordStatus::Synced,
        batch_id: None,
        last_error: None,
        synced_at: None,
        seen_run: None,
        refresh_at: None,
    }
}

fn rejection(ct_id: &str, reason: &str, at: OffsetDateTime) -> NewRejected {
    NewRejected {
        route: "us".into(),
        entity: "customer".into(),
        ct_id: ct_id.into(),
        field: Some("email".into()),
        reason: reason.into(),
        payload: Some(json!({ "email": format!("{ct_id}@example"), "n": 1 })),
        at,
    }
}

connector::backend_tests!(
    records_round_trip_with_all_fields,
    records_lookup_handles_more_ids_than_one_chunk,
    upsert_replaces_an_existing_record,
    upsert_without_a_run_keeps_the_seen_run,
    records_due_for_refresh_are_listed_in_id_order_once_their_time_has_come,
    delete_records_removes_only_the_given_ids,
    unseen_records_lists_records_missing_from_a_full_run,
    count_records_filters_by_status,
    cursor_is_per_entity_and_route,
    second_rejection_of_a_record_replaces_the_open_one,
    resolved_rejection_is_not_listed_as_open,
    resolving_many_rejections_touches_only_the_listed_open_ones,
    list_rejected_filters_by_entity_and_route,
    runs_are_listed_newest_first_with_stats,
    finishing_an_unknown_run_is_an_error,
    meta_values_are_replaced,
    migrations_are_idempotent_on_reconnect,
    concurrent_writers_from_spawned_tasks_all_succeed,
);

async fn records_round_trip_with_all_fields(t: &TestStore) {
    let s = t.store();
    let full = SyncRecord {
        route: "us".into(),
        entity: "customer".into(),
        ct_id: "c-1".into(),
        ct_version: 42,
        payload_hash: "abc123".into(),
        omnisend_id: Some("os-1".into()),
        status: RecordStatus::Pending,
        batch_id: Some("batch-1".into()),
        last_error: Some("HTTP 503".into()),
        synced_at: Some(at(5)),
        seen_run: Some(7),
        refresh_at: None,
    };
    let sparse = record("us", "customer", "c-2");
    // Same ct id under another route and entity must not leak into the lookup.
    let other_route = SyncRecord {
        ct_version: 99,
        ..record("eu", "customer", "c-1")
    };
    let other_entity = record("us", "product", "c-1");
    s.upsert_records(&[full.clone(), sparse.clone(), other_route, other_entity])
        .await
        .unwrap();

    let got = s
        .records("us", "customer", &ids(&["c-1", "c-2", "missing"]))
        .await
        .unwrap();
    assert_eq!(got.len(), 2);
    assert_eq!(got["c-1"], full);
    assert_eq!(got["c-2"], sparse);

    assert!(s.records("us", "customer", &[]).await.unwrap().is_empty());
}

async fn records_lookup_handles_more_ids_than_one_chunk(t: &TestStore) {
    let s = t.store();
    let all: Vec<SyncRecord> = (0..1203)
        .map(|i| record("us", "customer", &format!("c-{i:05}")))
        .collect();
    s.upsert_records(&all).await.unwrap();
    let wanted: Vec<String> = all.iter().map(|r| r.ct_id.clone()).collect();
    let got = s.records("us", "customer", &wanted).await.unwrap();
    assert_eq!(got.len(), 1203);
    assert_eq!(got["c-01202"], all[1202]);
}

async fn upsert_replaces_an_existing_record(t: &TestStore) {
    let s = t.store();
    let first = SyncRecord {
        omnisend_id: Some("os-1".into()),
        last_error: Some("boom".into()),
        seen_run: Some(1),
        refresh_at: None,
        ..record("us", "customer", "c-1")
    };
    s.upsert_records(std::slice::from_ref(&first))
        .await
        .unwrap();
    let second = SyncRecord {
        ct_version: 2,
        payload_hash: "new".into(),
        omnisend_id: Some("os-1".into()),
        status: RecordStatus::Failed,
        last_error: None,
        synced_at: Some(at(1)),
        seen_run: Some(2),
        refresh_at: None,
        ..first.clone()
    };
    s.upsert_records(std::slice::from_ref(&second))
        .await
        .unwrap();
    let got = s.records("us", "customer", &ids(&["c-1"])).await.unwrap();
    assert_eq!(got["c-1"], second);
    assert_eq!(s.count_records("us", "customer", None).await.unwrap(), 1);
}

async fn upsert_without_a_run_keeps_the_seen_run(t: &TestStore) {
    // A delta run writing a record while a full run is under way must not erase the full
    // run's mark, or the full run would remove a live record at its end.
    let s = t.store();
    s.upsert_records(&[record("us", "products", "p-1")])
        .await
        .unwrap();
    s.mark_seen("us", "products", &ids(&["p-1"]), 7)
        .await
        .unwrap();
    let mut again = record("us", "products", "p-1");
    again.payload_hash = "newer".into();
    s.upsert_records(&[again]).await.unwrap();
    let got = s.records("us", "products", &ids(&["p-1"])).await.unwrap();
    assert_eq!(got["p-1"].seen_run, Some(7));
    assert_eq!(got["p-1"].payload_hash, "newer");
    assert!(
        s.unseen_records("us", "products", 7, None, 10)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn delete_records_removes_only_the_given_ids(t: &TestStore) {
    let s = t.store();
    s.upsert_records(&[
        record("us", "customer", "a"),
        record("us", "customer", "b"),
        record("eu", "customer", "a"),
    ])
    .await
    .unwrap();
    s.delete_records("us", "customer", &ids(&["a", "never-existed"]))
        .await
        .unwrap();
    let got = s
        .records("us", "customer", &ids(&["a", "b"]))
        .await
        .unwrap();
    assert_eq!(got.keys().collect::<Vec<_>>(), vec!["b"]);
    assert_eq!(s.count_records("eu", "customer", None).await.unwrap(), 1);
}

async fn unseen_records_lists_records_missing_from_a_full_run(t: &TestStore) {
    let s = t.store();
    let run = s.start_run("customer", "us", "full", at(0)).await.unwrap();
    let mut all: Vec<SyncRecord> = ["a", "b", "c", "d", "e", "f"]
        .iter()
        .map(|id| SyncRecord {
            seen_run: Some(run - 1),
            refresh_at: None,
            ..record("us", "customer", id)
        })
        .collect();
    all[5].status = RecordStatus::Deleted; // "f": already deleted, never listed
    all[4].seen_run = None; // "e": never seen by any run
    s.upsert_records(&all).await.unwrap();
    // Another route's records are not considered.
    s.upsert_records(&[record("eu", "customer", "zz")])
        .await
        .unwrap();

    // The run saw a, c and an id that has no record.
    s.mark_seen("us", "customer", &ids(&["a", "c", "new"]), run)
        .await
        .unwrap();

    // Page through with limit 2.
    let page1 = s
        .unseen_records("us", "customer", run, None, 2)
        .await
        .unwrap();
    let page1_ids: Vec<&str> = page1.iter().map(|r| r.ct_id.as_str()).collect();
    assert_eq!(page1_ids, ["b", "d"]);
    let page2 = s
        .unseen_records("us", "customer", run, Some("d"), 2)
        .await
        .unwrap();
    let page2_ids: Vec<&str> = page2.iter().map(|r| r.ct_id.as_str()).collect();
    assert_eq!(page2_ids, ["e"]);
    assert!(
        s.unseen_records("us", "customer", run, Some("e"), 2)
            .await
            .unwrap()
            .is_empty()
    );
    // mark_seen did not create a record for the unknown id.
    assert_eq!(s.count_records("us", "customer", None).await.unwrap(), 6);
    let seen = s.records("us", "customer", &ids(&["a"])).await.unwrap();
    assert_eq!(seen["a"].seen_run, Some(run));
}

async fn count_records_filters_by_status(t: &TestStore) {
    let s = t.store();
    s.upsert_records(&[
        record("us", "customer", "a"),
        record("us", "customer", "b"),
        SyncRecord {
            status: RecordStatus::Rejected,
            ..record("us", "customer", "c")
        },
        record("us", "product", "p"),
    ])
    .await
    .unwrap();
    assert_eq!(s.count_records("us", "customer", None).await.unwrap(), 3);
    assert_eq!(
        s.count_records("us", "customer", Some(RecordStatus::Synced))
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        s.count_records("us", "customer", Some(RecordStatus::Rejected))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        s.count_records("us", "customer", Some(RecordStatus::Pending))
            .await
            .unwrap(),
        0
    );
}

async fn cursor_is_per_entity_and_route(t: &TestStore) {
    let s = t.store();
    assert_eq!(s.cursor("customer", "us").await.unwrap(), None);
    let us = Cursor {
        entity: "customer".into(),
        route: "us".into(),
        last_modified_at: Some(at(1)),
        last_id: Some("c-9".into()),
        mapping_fingerprint: Some("fp1".into()),
        updated_at: at(2),
    };
    let eu = Cursor {
        route: "eu".into(),
        last_modified_at: None,
        last_id: None,
        mapping_fingerprint: None,
        ..us.clone()
    };
    let product = Cursor {
        entity: "product".into(),
        last_modified_at: Some(at(3)),
        ..us.clone()
    };
    for c in [&us, &eu, &product] {
        s.set_cursor(c).await.unwrap();
    }
    assert_eq!(
        s.cursor("customer", "us").await.unwrap().as_ref(),
        Some(&us)
    );
    assert_eq!(
        s.cursor("customer", "eu").await.unwrap().as_ref(),
        Some(&eu)
    );
    assert_eq!(
        s.cursor("product", "us").await.unwrap().as_ref(),
        Some(&product)
    );
    assert_eq!(s.cursor("product", "eu").await.unwrap(), None);

    // Overwrite one; the others stay.
    let us2 = Cursor {
        last_modified_at: Some(at(100)),
        last_id: Some("c-10".into()),
        updated_at: at(101),
        ..us.clone()
    };
    s.set_cursor(&us2).await.unwrap();
    assert_eq!(s.cursors().await.unwrap(), vec![eu, us2, product]);
}

async fn second_rejection_of_a_record_replaces_the_open_one(t: &TestStore) {
    let s = t.store();
    let first = s
        .add_rejected(&rejection("c-1", "bad email", at(0)))
        .await
        .unwrap();
    let other = s
        .add_rejected(&rejection("c-2", "bad phone", at(1)))
        .await
        .unwrap();
    assert_ne!(first, other);

    let mut second_req = rejection("c-1", "still bad", at(60));
    second_req.field = None;
    second_req.payload = Some(json!({ "email": "x" }));
    let second = s.add_rejected(&second_req).await.unwrap();
    assert_eq!(second, first, "open rejection is updated in place");

    let r = s.rejected(first).await.unwrap().expect("rejection exists");
    assert_eq!(r.attempts, 2);
    assert_eq!(r.reason, "still bad");
    assert_eq!(r.field, None);
    assert_eq!(r.payload, Some(json!({ "email": "x" })));
    assert_eq!(r.created_at, at(0));
    assert_eq!(r.updated_at, at(60));
    assert_eq!(r.resolved_at, None);
    assert_eq!(
        (r.route.as_str(), r.entity.as_str(), r.ct_id.as_str()),
        ("us", "customer", "c-1")
    );

    let open = s
        .list_rejected(&RejectedFilter {
            open_only: true,
            ..RejectedFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(open.len(), 2);
    assert_eq!(open[0].id, first, "most recently updated first");
    assert_eq!(
        s.count_rejected_open().await.unwrap(),
        vec![("customer".to_owned(), 2)]
    );
    assert_eq!(s.rejected(first + other + 1000).await.unwrap(), None);
}

async fn resolved_rejection_is_not_listed_as_open(t: &TestStore) {
    let s = t.store();
    let id = s
        .add_rejected(&rejection("c-1", "bad", at(0)))
        .await
        .unwrap();
    s.add_rejected(&rejection("c-2", "bad", at(1)))
        .await
        .unwrap();

    let resolved = s
        .resolve_rejected("us", "customer", "c-1", at(5))
        .await
        .unwrap();
    assert_eq!(resolved, 1);
    // Nothing left to resolve.
    assert_eq!(
        s.resolve_rejected("us", "customer", "c-1", at(6))
            .await
            .unwrap(),
        0
    );

    let open = s
        .list_rejected(&RejectedFilter {
            open_only: true,
            ..RejectedFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(
        open.iter().map(|r| r.ct_id.as_str()).collect::<Vec<_>>(),
        ["c-2"]
    );
    let all = s.list_rejected(&RejectedFilter::default()).await.unwrap();
    assert_eq!(all.len(), 2);
    let old = s.rejected(id).await.unwrap().unwrap();
    assert_eq!(old.resolved_at, Some(at(5)));
    assert_eq!(
        s.count_rejected_open().await.unwrap(),
        vec![("customer".to_owned(), 1)]
    );

    // A new rejection after resolution opens a new entry.
    let again = s
        .add_rejected(&rejection("c-1", "bad again", at(9)))
        .await
        .unwrap();
    assert_ne!(again, id);
    assert_eq!(s.rejected(again).await.unwrap().unwrap().attempts, 1);
}

async fn list_rejected_filters_by_entity_and_route(t: &TestStore) {
    let s = t.store();
    let mut product = rejection("p-1", "bad sku", at(2));
    product.entity = "product".into();
    product.payload = None;
    let mut eu = rejection("c-1", "bad", at(3));
    eu.route = "eu".into();
    s.add_rejected(&rejection("c-1", "bad", at(1)))
        .await
        .unwrap();
    s.add_rejected(&product).await.unwrap();
    s.add_rejected(&eu).await.unwrap();

    let only_products = s
        .list_rejected(&RejectedFilter {
            entity: Some("product".into()),
            ..RejectedFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(only_products.len(), 1);
    assert_eq!(only_products[0].payload, None);
    let only_eu = s
        .list_rejected(&RejectedFilter {
            route: Some("eu".into()),
            ..RejectedFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(only_eu.len(), 1);
    assert_eq!(only_eu[0].route, "eu");
    let limited = s
        .list_rejected(&RejectedFilter {
            limit: 2,
            ..RejectedFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(
        limited.iter().map(|r| r.updated_at).collect::<Vec<_>>(),
        [at(3), at(2)]
    );
    assert_eq!(
        s.count_rejected_open().await.unwrap(),
        vec![("customer".to_owned(), 2), ("product".to_owned(), 1)]
    );
}

async fn runs_are_listed_newest_first_with_stats(t: &TestStore) {
    let s = t.store();
    let first = s.start_run("customer", "us", "full", at(0)).await.unwrap();
    let second = s.start_run("product", "eu", "delta", at(10)).await.unwrap();
    let third = s
        .start_run("customer", "us", "delta", at(20))
        .await
        .unwrap();
    assert!(first < second && second < third);

    let stats = RunStats {
        seen: 10,
        created: 3,
        updated: 2,
        unchanged: 4,
        deleted: 1,
        rejected: 1,
        failed: 0,
        requests: 7,
        duration_ms: 1234,
    };
    s.finish_run(first, &stats, "ok", None, at(5))
        .await
        .unwrap();
    s.finish_run(
        second,
        &RunStats::default(),
        "failed",
        Some("HTTP 500"),
        at(11),
    )
    .await
    .unwrap();

    let runs = s.recent_runs(10).await.unwrap();
    assert_eq!(
        runs.iter().map(|r| r.id).collect::<Vec<_>>(),
        [third, second, first]
    );
    let running = &runs[0];
    assert_eq!(
        (running.mode.as_str(), running.finished_at),
        ("delta", None)
    );
    assert_eq!(running.outcome, None);
    assert_eq!(running.stats, RunStats::default());
    let failed = &runs[1];
    assert_eq!(failed.outcome.as_deref(), Some("failed"));
    assert_eq!(failed.error.as_deref(), Some("HTTP 500"));
    assert_eq!(
        (failed.entity.as_str(), failed.route.as_str()),
        ("product", "eu")
    );
    let ok = &runs[2];
    assert_eq!(ok.stats, stats);
    assert_eq!(ok.started_at, at(0));
    assert_eq!(ok.finished_at, Some(at(5)));
    assert_eq!(ok.outcome.as_deref(), Some("ok"));
    assert_eq!(ok.mode, "full");

    assert_eq!(s.recent_runs(1).await.unwrap()[0].id, third);
}

async fn finishing_an_unknown_run_is_an_error(t: &TestStore) {
    let err = t
        .store()
        .finish_run(9_999, &RunStats::default(), "ok", None, at(0))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::UnknownRun(9_999)), "{err}");
}

async fn meta_values_are_replaced(t: &TestStore) {
    let s = t.store();
    assert_eq!(s.meta("mapping:us").await.unwrap(), None);
    s.set_meta("mapping:us", "fp1").await.unwrap();
    s.set_meta("mapping:eu", "fp-eu").await.unwrap();
    s.set_meta("mapping:us", "fp2").await.unwrap();
    assert_eq!(s.meta("mapping:us").await.unwrap().as_deref(), Some("fp2"));
    assert_eq!(
        s.meta("mapping:eu").await.unwrap().as_deref(),
        Some("fp-eu")
    );
}

async fn migrations_are_idempotent_on_reconnect(t: &TestStore) {
    t.store().set_meta("k", "v").await.unwrap();
    t.store().ping().await.unwrap();
    for _ in 0..2 {
        let again = StateStore::connect(t.url()).await.expect("reconnect");
        again.ping().await.unwrap();
        assert_eq!(again.meta("k").await.unwrap().as_deref(), Some("v"));
        again.close().await;
    }
}

async fn concurrent_writers_from_spawned_tasks_all_succeed(t: &TestStore) {
    // Clones share the pool; futures are `Send` (spawnable). On SQLite this
    // exercises WAL + busy_timeout with several writers at once.
    let run = t
        .store()
        .start_run("customer", "us", "full", at(0))
        .await
        .unwrap();
    let tasks: Vec<_> = (0..8)
        .map(|task| {
            let s = t.store().clone();
            tokio::spawn(async move {
                for round in 0..5 {
                    let batch: Vec<SyncRecord> = (0..20)
                        .map(|i| record("us", "customer", &format!("t{task}-r{round}-{i}")))
                        .collect();
                    s.upsert_records(&batch).await?;
                    let ids: Vec<String> = batch.iter().map(|r| r.ct_id.clone()).collect();
                    s.mark_seen("us", "customer", &ids, run).await?;
                    s.add_rejected(&rejection(&format!("t{task}"), "bad", at(round)))
                        .await?;
                }
                Ok::<_, StoreError>(())
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let s = t.store();
    assert_eq!(s.count_records("us", "customer", None).await.unwrap(), 800);
    assert!(
        s.unseen_records("us", "customer", run, None, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        s.count_rejected_open().await.unwrap(),
        vec![("customer".to_owned(), 8)]
    );
}

// ---- backend-independent tests ---------------------------------------------------

#[tokio::test]
async fn unsupported_state_url_is_a_clear_error() {
    for url in ["mysql://user:secret@db/state", "state.db", ""] {
        let err = StateStore::connect(url).await.unwrap_err();
        assert!(
            matches!(err, StoreError::UnsupportedUrl(_)),
            "{url}: {err:?}"
        );
        let msg = err.to_string();
        assert!(msg.contains("sqlite://PATH"), "{msg}");
        assert!(msg.contains("postgres://"), "{msg}");
        assert!(!msg.contains("secret"), "password must be redacted: {msg}");
    }
}

#[tokio::test]
async fn sqlite_creates_missing_file_and_directory() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/deeper/state.db");
    let store = StateStore::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    assert!(path.exists());
    let mode: String = store_journal_mode(&path).await;
    assert_eq!(mode, "wal");
    store.close().await;
}

async fn store_journal_mode(path: &std::path::Path) -> String {
    use sqlx::Connection;
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&mut conn)
        .await
        .unwrap()
}

#[tokio::test]
async fn postgres_unreachable_fails_when_configured() {
    let Some(server) = testing::postgres_url() else {
        println!("{}", testing::POSTGRES_SKIP_MESSAGE);
        return;
    };
    // Same server URL, but a port nothing listens on.
    let mut url = url::Url::parse(&server).expect("CT_OMNISEND_TEST_POSTGRES is a URL");
    url.set_port(Some(1)).unwrap();
    let started = std::time::Instant::now();
    let err = StateStore::connect_with(
        url.as_str(),
        StoreOptions {
            acquire_timeout: Duration::from_secs(2),
            ..StoreOptions::default()
        },
    )
    .await
    .expect_err("connecting to a closed port must fail");
    assert!(matches!(err, StoreError::Db(_)), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn embedded_migrations_match_the_migration_directories() {
    for (backend, dir) in [(Backend::Sqlite, "sqlite"), (Backend::Postgres, "postgres")] {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("migrations")
            .join(dir);
        let mut on_disk: Vec<String> = std::fs::read_dir(&path)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| name.ends_with(".sql"))
            .collect();
        on_disk.sort();
        let embedded: Vec<String> = testing::embedded_migrations(backend)
            .into_iter()
            .map(|(version, description)| format!("{version:04}_{description}.sql"))
            .collect();
        assert_eq!(
            embedded, on_disk,
            "{dir}: list every migration file in store/migrations.rs"
        );
    }
    assert_eq!(
        testing::embedded_migrations(Backend::Sqlite)
            .iter()
            .map(|m| m.0)
            .collect::<Vec<_>>(),
        testing::embedded_migrations(Backend::Postgres)
            .iter()
            .map(|m| m.0)
            .collect::<Vec<_>>(),
        "both backends have the same migration versions"
    );
}

#[test]
fn record_status_round_trips_as_lowercase_text() {
    for status in RecordStatus::ALL {
        assert_eq!(status.as_str().parse::<RecordStatus>(), Ok(status));
        assert_eq!(
            serde_json::to_value(status).unwrap(),
            json!(status.as_str())
        );
    }
    assert!("Synced".parse::<RecordStatus>().is_err());
}

async fn resolving_many_rejections_touches_only_the_listed_open_ones(t: &TestStore) {
    let s = t.store();
    for (i, id) in ["c-1", "c-2", "c-3"].iter().enumerate() {
        s.add_rejected(&rejection(id, "bad", at(i as i64)))
            .await
            .unwrap();
    }
    // 600 ids: more than one chunk of the IN list.
    let mut wanted: Vec<String> = (0..598).map(|i| format!("absent-{i}")).collect();
    wanted.extend(ids(&["c-1", "c-3"]));
    let resolved = s
        .resolve_rejected_many("us", "customer", &wanted, at(10))
        .await
        .unwrap();
    assert_eq!(resolved, 2);
    let open: Vec<String> = s
        .list_rejected(&RejectedFilter {
            open_only: true,
            ..RejectedFilter::default()
        })
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.ct_id)
        .collect();
    assert_eq!(open, ids(&["c-2"]));
    assert_eq!(
        s.resolve_rejected_many("us", "customer", &wanted, at(11))
            .await
            .unwrap(),
        0
    );
}

async fn records_due_for_refresh_are_listed_in_id_order_once_their_time_has_come(t: &TestStore) {
    let s = t.store();
    let mut recs = Vec::new();
    for (id, due) in [
        ("p-3", Some(at(10))),
        ("p-1", Some(at(5))),
        ("p-2", None),
        ("p-4", Some(at(50))),
    ] {
        let mut r = record("us", "products", id);
        r.refresh_at = due;
        recs.push(r);
    }
    let mut deleted = record("us", "products", "p-0");
    deleted.refresh_at = Some(at(1));
    deleted.status = RecordStatus::Deleted;
    recs.push(deleted);
    s.upsert_records(&recs).await.unwrap();

    let due = s
        .due_for_refresh("us", "products", at(20), None, 10)
        .await
        .unwrap();
    assert_eq!(due, ids(&["p-1", "p-3"]));
    let page = s
        .due_for_refresh("us", "products", at(20), Some("p-1"), 10)
        .await
        .unwrap();
    assert_eq!(page, ids(&["p-3"]));
    assert!(
        s.due_for_refresh("eu", "products", at(20), None, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let got = s.records("us", "products", &ids(&["p-4"])).await.unwrap();
    assert_eq!(
        got["p-4"].refresh_at,
        Some(at(50)),
        "round trip at millisecond precision"
    );
}
