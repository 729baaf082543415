//! Contact state (members, retired contacts, erasure) integration tests.
//!
//! Every test body in `backend_tests!` runs twice: `sqlite::NAME` against a temp
//! file and `postgres::NAME` against the server in `CT_OMNISEND_TEST_POSTGRES`
//! (an isolated schema per test). Without that variable the Postgres variants
//! print one "skipped" line and pass; with it set, connection errors fail.

use connector::store::testing::TestStore;
use connector::store::{KeyChange, MemberRow, NewRejected, RejectedFilter, RetiredRow};
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

/// A member of brand "b1" created at `at(created)`.
fn member(member_id: &str, contact_key: &str, created: i64) -> MemberRow {
    MemberRow {
        brand: "b1".into(),
        member_id: member_id.into(),
        contact_key: contact_key.into(),
        secondary: None,
        created_at: at(created),
        modified_at: at(created + 10),
        facts: json!({ "email": contact_key, "member": member_id }),
        seen_run: None,
    }
}

fn member_ids(rows: &[MemberRow]) -> Vec<&str> {
    rows.iter().map(|r| r.member_id.as_str()).collect()
}

fn retired(brand: &str, contact_key: &str, reason: &str) -> RetiredRow {
    RetiredRow {
        brand: brand.into(),
        contact_key: contact_key.into(),
        reason: reason.into(),
        body: json!({ "email": contact_key, "tags": ["a", "b"] }),
        created_at: at(3),
    }
}

connector::backend_tests!(
    upserted_members_read_back_with_all_fields,
    changing_a_members_key_reports_the_previous_key_and_facts,
    an_upsert_without_a_run_keeps_the_members_seen_run,
    members_by_keys_returns_only_those_keys_in_key_then_creation_order,
    members_by_keys_handles_more_keys_than_one_chunk,
    member_keys_are_distinct_and_sorted_per_brand,
    unseen_members_skip_guests_and_members_seen_by_the_run,
    members_by_secondary_lists_holders_earliest_first_with_ties_to_the_smaller_id,
    retired_contacts_are_put_replaced_read_and_deleted,
    delete_members_returns_the_rows_that_existed,
    scrub_rejected_removes_payloads_and_resolves_open_rejections,
);

async fn upserted_members_read_back_with_all_fields(t: &TestStore) {
    let s = t.store();
    let full = MemberRow {
        secondary: Some("+37060000001".into()),
        seen_run: Some(4),
        facts: json!({
            "email": "ann@example.com",
            "firstName": "Ann",
            "consent": { "email": true, "sms": false },
            "n": 1.5,
        }),
        ..member("c-1", "ann@example.com", 0)
    };
    let sparse = member("guest:o-1", "bob@example.com", 1);
    // Same member id under another brand is a different row.
    let other_brand = MemberRow {
        brand: "b2".into(),
        ..member("c-1", "other@example.com", 2)
    };
    let changes = s
        .upsert_members(&[full.clone(), sparse.clone(), other_brand.clone()])
        .await
        .unwrap();
    assert_eq!(
        changes,
        Vec::<KeyChange>::new(),
        "new members change no key"
    );

    assert_eq!(s.member("b1", "c-1").await.unwrap(), Some(full));
    assert_eq!(s.member("b1", "guest:o-1").await.unwrap(), Some(sparse));
    assert_eq!(s.member("b2", "c-1").await.unwrap(), Some(other_brand));
    assert_eq!(s.member("b1", "missing").await.unwrap(), None);
    assert_eq!(s.member("b3", "c-1").await.unwrap(), None);
    assert_eq!(s.count_members("b1").await.unwrap(), 2);
    assert_eq!(s.count_members("b2").await.unwrap(), 1);
    assert_eq!(s.count_members("b3").await.unwrap(), 0);

    assert!(s.upsert_members(&[]).await.unwrap().is_empty());
}

async fn changing_a_members_key_reports_the_previous_key_and_facts(t: &TestStore) {
    let s = t.store();
    let first = member("c-1", "old@example.com", 0);
    let stays = member("c-2", "same@example.com", 0);
    s.upsert_members(&[first.clone(), stays.clone()])
        .await
        .unwrap();

    let moved = MemberRow {
        modified_at: at(100),
        ..member("c-1", "new@example.com", 0)
    };
    let same_key = MemberRow {
        facts: json!({ "email": "same@example.com", "firstName": "Changed" }),
        ..stays.clone()
    };
    let fresh = member("c-3", "fresh@example.com", 5);
    let changes = s
        .upsert_members(&[same_key.clone(), moved.clone(), fresh])
        .await
        .unwrap();
    assert_eq!(
        changes,
        vec![KeyChange {
            member_id: "c-1".into(),
            previous_key: "old@example.com".into(),
            previous_facts: first.facts.clone(),
        }],
        "only the member whose key changed is reported; new ones and same-key updates are not"
    );
    assert_eq!(s.member("b1", "c-1").await.unwrap(), Some(moved));
    assert_eq!(s.member("b1", "c-2").await.unwrap(), Some(same_key));

    // Writing the same key again reports nothing.
    let again = s
        .upsert_members(&[member("c-1", "new@example.com", 0)])
        .await
        .unwrap();
    assert!(again.is_empty());
}

async fn an_upsert_without_a_run_keeps_the_members_seen_run(t: &TestStore) {
    // A delta run writing a member while a full run is under way must not erase the full
    // run's mark, or the full run would retire a live member at its end.
    let s = t.store();
    s.upsert_members(&[MemberRow {
        seen_run: Some(3),
        ..member("c-1", "a@example.com", 0)
    }])
    .await
    .unwrap();
    s.upsert_members(&[member("c-1", "b@example.com", 0)])
        .await
        .unwrap();
    let got = s.member("b1", "c-1").await.unwrap().unwrap();
    assert_eq!(got.seen_run, Some(3));
    assert_eq!(got.contact_key, "b@example.com");

    s.upsert_members(&[MemberRow {
        seen_run: Some(9),
        ..member("c-1", "b@example.com", 0)
    }])
    .await
    .unwrap();
    assert_eq!(
        s.member("b1", "c-1").await.unwrap().unwrap().seen_run,
        Some(9),
        "a run given explicitly replaces the stored one"
    );
}

async fn members_by_keys_returns_only_those_keys_in_key_then_creation_order(t: &TestStore) {
    let s = t.store();
    s.upsert_members(&[
        member("c-9", "k-b", 5),
        member("c-1", "k-b", 7),
        // Same creation time as c-9: the smaller member id comes first.
        member("c-0", "k-b", 5),
        member("c-5", "k-a", 9),
        member("c-6", "k-c", 0),
        MemberRow {
            brand: "b2".into(),
            ..member("c-7", "k-a", 0)
        },
    ])
    .await
    .unwrap();

    let got = s
        .members_by_keys("b1", &ids(&["k-b", "k-a", "k-missing", "k-a"]))
        .await
        .unwrap();
    assert_eq!(member_ids(&got), ["c-5", "c-0", "c-9", "c-1"]);
    assert!(got.iter().all(|m| m.brand == "b1"));
    assert!(s.members_by_keys("b1", &[]).await.unwrap().is_empty());
}

async fn members_by_keys_handles_more_keys_than_one_chunk(t: &TestStore) {
    let s = t.store();
    let all: Vec<MemberRow> = (0..1203)
        .map(|i| member(&format!("c-{i:05}"), &format!("k-{:05}", 1202 - i), 0))
        .collect();
    s.upsert_members(&all).await.unwrap();
    let keys: Vec<String> = all.iter().map(|m| m.contact_key.clone()).collect();
    let got = s.members_by_keys("b1", &keys).await.unwrap();
    assert_eq!(got.len(), 1203);
    assert_eq!(got[0], all[1202], "ordered by key across chunks");
    assert_eq!(got[1202], all[0]);
    assert_eq!(s.member_keys("b1").await.unwrap().len(), 1203);
}

async fn member_keys_are_distinct_and_sorted_per_brand(t: &TestStore) {
    let s = t.store();
    s.upsert_members(&[
        member("c-1", "k-b", 0),
        member("c-2", "k-a", 0),
        member("c-3", "k-b", 0),
        // Bytewise order on both backends: upper case sorts before lower case.
        member("c-4", "K-z", 0),
        MemberRow {
            brand: "b2".into(),
            ..member("c-5", "k-other", 0)
        },
    ])
    .await
    .unwrap();
    assert_eq!(
        s.member_keys("b1").await.unwrap(),
        ids(&["K-z", "k-a", "k-b"])
    );
    assert_eq!(s.member_keys("b2").await.unwrap(), ids(&["k-other"]));
    assert!(s.member_keys("b3").await.unwrap().is_empty());
}

async fn unseen_members_skip_guests_and_members_seen_by_the_run(t: &TestStore) {
    let s = t.store();
    let run = 12;
    s.upsert_members(&[
        MemberRow {
            seen_run: Some(run - 1),
            ..member("c-b", "k-1", 0)
        },
        member("c-a", "k-1", 0), // never seen by any run
        MemberRow {
            seen_run: Some(run),
            ..member("c-c", "k-2", 0)
        },
        MemberRow {
            seen_run: Some(run),
            ..member("guest:o-1", "k-1", 0)
        },
        member("guest:o-2", "k-1", 0), // a guest: never swept, seen or not
        member("GUEST-like", "k-3", 0), // not a guest: the prefix is case-sensitive
        MemberRow {
            brand: "b2".into(),
            ..member("c-z", "k-9", 0)
        },
    ])
    .await
    .unwrap();

    let unseen = s.unseen_members("b1", run).await.unwrap();
    assert_eq!(member_ids(&unseen), ["GUEST-like", "c-a", "c-b"]);
    assert_eq!(
        member_ids(&s.unseen_members("b2", run).await.unwrap()),
        ["c-z"]
    );
}

async fn members_by_secondary_lists_holders_earliest_first_with_ties_to_the_smaller_id(
    t: &TestStore,
) {
    let s = t.store();
    let with = |id: &str, key: &str, created: i64, secondary: &str| MemberRow {
        secondary: Some(secondary.into()),
        ..member(id, key, created)
    };
    s.upsert_members(&[
        with("c-3", "k-late", 9, "+1"),
        with("c-2", "k-early", 1, "+1"),
        with("c-4", "k-other", 4, "+1"),
        // "+2": two members created at the same instant; the smaller id comes first.
        with("c-8", "k-b", 5, "+2"),
        with("c-7", "k-a", 5, "+2"),
        member("c-9", "k-none", 0),
        // Another brand's holder is not listed.
        MemberRow {
            brand: "b2".into(),
            ..with("c-0", "k-elsewhere", 0, "+1")
        },
    ])
    .await
    .unwrap();

    // The first holder of each value is its owner (the sync relies on this order).
    let holders = s
        .members_by_secondary("b1", &ids(&["+1", "+2", "+3", "+1"]))
        .await
        .unwrap();
    assert_eq!(member_ids(&holders), ["c-2", "c-4", "c-3", "c-7", "c-8"]);
    assert!(s.members_by_secondary("b1", &[]).await.unwrap().is_empty());
}

async fn retired_contacts_are_put_replaced_read_and_deleted(t: &TestStore) {
    let s = t.store();
    let a = retired("b1", "k-a", "deleted");
    let b = retired("b1", "k-b", "erased");
    let other_brand = retired("b2", "k-a", "merged");
    s.put_retired(&[a.clone(), b.clone(), other_brand.clone()])
        .await
        .unwrap();

    let got = s
        .retired("b1", &ids(&["k-a", "k-b", "k-missing"]))
        .await
        .unwrap();
    assert_eq!(got.len(), 2);
    assert_eq!(got["k-a"], a);
    assert_eq!(got["k-b"], b);

    // Putting the same key again replaces the row.
    let a2 = RetiredRow {
        reason: "merged".into(),
        body: json!({ "into": "k-b" }),
        created_at: at(50),
        ..a.clone()
    };
    s.put_retired(std::slice::from_ref(&a2)).await.unwrap();
    assert_eq!(s.retired("b1", &ids(&["k-a"])).await.unwrap()["k-a"], a2);

    s.delete_retired("b1", &ids(&["k-a", "k-missing"]))
        .await
        .unwrap();
    let left = s.retired("b1", &ids(&["k-a", "k-b"])).await.unwrap();
    assert_eq!(left.keys().collect::<Vec<_>>(), ["k-b"]);
    assert_eq!(
        s.retired("b2", &ids(&["k-a"])).await.unwrap()["k-a"],
        other_brand,
        "other brands are untouched"
    );
    s.put_retired(&[]).await.unwrap();
    s.delete_retired("b1", &[]).await.unwrap();
    assert!(s.retired("b1", &[]).await.unwrap().is_empty());
}

async fn delete_members_returns_the_rows_that_existed(t: &TestStore) {
    let s = t.store();
    let a = MemberRow {
        secondary: Some("+1".into()),
        seen_run: Some(2),
        ..member("c-a", "k-1", 0)
    };
    let b = member("c-b", "k-1", 1);
    let c = member("c-c", "k-2", 2);
    let other_brand = MemberRow {
        brand: "b2".into(),
        ..member("c-a", "k-1", 0)
    };
    s.upsert_members(&[a.clone(), b.clone(), c.clone(), other_brand.clone()])
        .await
        .unwrap();

    let deleted = s
        .delete_members("b1", &ids(&["c-b", "c-a", "never-existed", "c-a"]))
        .await
        .unwrap();
    assert_eq!(deleted, vec![a, b]);
    assert_eq!(s.member("b1", "c-a").await.unwrap(), None);
    assert_eq!(s.member("b1", "c-c").await.unwrap(), Some(c));
    assert_eq!(s.member("b2", "c-a").await.unwrap(), Some(other_brand));
    assert!(
        s.delete_members("b1", &ids(&["c-a"]))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(s.delete_members("b1", &[]).await.unwrap().is_empty());
}

async fn scrub_rejected_removes_payloads_and_resolves_open_rejections(t: &TestStore) {
    let s = t.store();
    let rejection = |route: &str, entity: &str, ct_id: &str, at: OffsetDateTime| NewRejected {
        route: route.into(),
        entity: entity.into(),
        ct_id: ct_id.into(),
        field: Some("email".into()),
        reason: "bad email".into(),
        payload: Some(json!({ "email": format!("{ct_id}@example") })),
        at,
    };
    // Resolved earlier, then rejected again (open), and open under a second route.
    let old = s
        .add_rejected(&rejection("us", "customer", "c-1", at(0)))
        .await
        .unwrap();
    s.resolve_rejected("us", "customer", "c-1", at(1))
        .await
        .unwrap();
    let open_us = s
        .add_rejected(&rejection("us", "customer", "c-1", at(2)))
        .await
        .unwrap();
    let open_eu = s
        .add_rejected(&rejection("eu", "customer", "c-1", at(3)))
        .await
        .unwrap();
    // Not touched: another record, and the same id as another entity.
    let other_id = s
        .add_rejected(&rejection("us", "customer", "c-2", at(4)))
        .await
        .unwrap();
    let other_entity = s
        .add_rejected(&rejection("us", "order", "c-1", at(5)))
        .await
        .unwrap();

    let touched = s.scrub_rejected("customer", "c-1", at(60)).await.unwrap();
    assert_eq!(touched, 3);

    let old = s.rejected(old).await.unwrap().unwrap();
    assert_eq!(old.payload, None);
    assert_eq!(
        old.resolved_at,
        Some(at(1)),
        "an earlier resolution is kept"
    );
    for id in [open_us, open_eu] {
        let r = s.rejected(id).await.unwrap().unwrap();
        assert_eq!(r.payload, None);
        assert_eq!(r.resolved_at, Some(at(60)));
        assert_eq!(r.reason, "bad email", "the reason (no personal data) stays");
    }
    for id in [other_id, other_entity] {
        let r = s.rejected(id).await.unwrap().unwrap();
        assert!(r.payload.is_some());
        assert_eq!(r.resolved_at, None);
    }
    let open = s
        .list_rejected(&RejectedFilter {
            open_only: true,
            ..RejectedFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(open.len(), 2);

    assert_eq!(
        s.scrub_rejected("customer", "nobody", at(61))
            .await
            .unwrap(),
        0
    );
}
