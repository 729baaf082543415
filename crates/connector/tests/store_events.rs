//! The event outbox on both backends: queued once per event id, claimed in causal order under
//! a lease, the ledger kept after a send, retries and rejections, resource versions moving
//! only forward, and the inbox entry marked in the same transaction.

use std::time::Duration;

use connector::store::testing::TestStore;
use connector::store::{
    Application, Lane, NewEvent, NewInboxEntry, NewRejected, ResourceVersion, Stored,
};
use serde_json::json;
use time::OffsetDateTime;
use time::macros::datetime;

const T0: OffsetDateTime = datetime!(2026-11-27 10:00 UTC);
const LEASE: Duration = Duration::from_secs(30);

fn event(id: &str, key: &str, facts: &[&str]) -> NewEvent {
    NewEvent {
        brand: "OMNISEND_API_KEY".into(),
        event_id: id.into(),
        event_name: "placed order".into(),
        ordering_key: key.into(),
        lane: Lane::Realtime,
        body: json!({"eventName": "placed order", "eventID": id}),
        facts: facts.iter().map(|f| (*f).to_owned()).collect(),
    }
}

fn queue(events: Vec<NewEvent>) -> Application {
    Application {
        events,
        ..Application::default()
    }
}

connector::backend_tests!(
    an_event_is_queued_once_per_brand_and_event_id,
    one_key_is_claimed_in_queue_order_and_only_after_the_earlier_row_is_sent,
    a_leased_row_is_not_claimed_again_until_its_lease_runs_out,
    a_retried_row_waits_for_its_due_time_and_holds_back_its_key,
    a_rejected_row_gets_a_rejected_record_and_releases_its_key,
    realtime_rows_are_claimed_before_backfill_rows,
    applying_marks_the_inbox_entry_and_moves_the_resource_version_only_forward,
    facts_are_found_by_prefix_and_only_for_their_brand,
    a_rejected_event_can_be_requeued_for_replay,
    retention_removes_old_notifications_and_sent_bodies_but_keeps_the_ledger,
);

async fn retention_removes_old_notifications_and_sent_bodies_but_keeps_the_ledger(t: &TestStore) {
    let s = t.store();
    let Stored::New(inbox_id) = s
        .store_notification(&NewInboxEntry {
            delivery_id: "d-old".into(),
            source: "commercetools".into(),
            resource_type: "order".into(),
            resource_id: "o-1".into(),
            kind: "OrderCreated".into(),
            sequence_number: Some(1),
            resource_version: Some(1),
            payload: json!({"customerEmail": "ann@example.com"}),
            received_at: T0,
        })
        .await
        .unwrap()
    else {
        panic!("new entry expected");
    };
    s.apply(
        &Application {
            inbox_id: Some(inbox_id),
            events: vec![
                event("sent", "order:1", &["order:1:placed"]),
                event("pending", "order:2", &[]),
            ],
            ..Application::default()
        },
        T0,
    )
    .await
    .unwrap();
    let c = s.claim_events("w", T0, LEASE, 1).await.unwrap();
    s.mark_events_sent(&[c[0].id], "w", T0).await.unwrap();
    let later = T0 + Duration::from_secs(86_400);
    assert_eq!(s.prune_events(later).await.unwrap(), (1, 1));
    assert_eq!(s.prune_events(later).await.unwrap(), (0, 0), "idempotent");
    let sent = s
        .outbox_event("OMNISEND_API_KEY", "sent")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(sent.status, "sent");
    assert_eq!(sent.body, json!({}));
    let pending = s
        .outbox_event("OMNISEND_API_KEY", "pending")
        .await
        .unwrap()
        .unwrap();
    assert_ne!(pending.body, json!({}), "unsent events keep their body");
    assert!(
        s.facts_with_prefix("OMNISEND_API_KEY", "order:1:")
            .await
            .unwrap()
            .contains("order:1:placed")
    );
    // The ledger still refuses the same event.
    let again = s
        .apply(&queue(vec![event("sent", "order:1", &[])]), later)
        .await
        .unwrap();
    assert_eq!(again.duplicates, 1);
}

async fn an_event_is_queued_once_per_brand_and_event_id(t: &TestStore) {
    let s = t.store();
    let first = s
        .apply(
            &queue(vec![event("e-1", "order:1", &["order:1:placed"])]),
            T0,
        )
        .await
        .unwrap();
    assert_eq!((first.queued, first.duplicates), (1, 0));
    let again = s
        .apply(
            &queue(vec![event("e-1", "order:1", &["order:1:placed"])]),
            T0,
        )
        .await
        .unwrap();
    assert_eq!((again.queued, again.duplicates), (0, 1));
    let mut other_brand = event("e-1", "order:1", &[]);
    other_brand.brand = "OMNISEND_API_KEY_EU".into();
    assert_eq!(
        s.apply(&queue(vec![other_brand]), T0).await.unwrap().queued,
        1
    );
    assert_eq!(s.outbox_events(None).await.unwrap().len(), 2);
    assert_eq!(
        s.outbox_events(Some("OMNISEND_API_KEY"))
            .await
            .unwrap()
            .len(),
        1
    );
}

async fn one_key_is_claimed_in_queue_order_and_only_after_the_earlier_row_is_sent(t: &TestStore) {
    let s = t.store();
    s.apply(
        &queue(vec![
            event("placed", "order:1", &[]),
            event("paid", "order:1", &[]),
            event("other", "order:2", &[]),
        ]),
        T0,
    )
    .await
    .unwrap();
    let claimed = s.claim_events("w1", T0, LEASE, 10).await.unwrap();
    let ids: Vec<&str> = claimed.iter().map(|e| e.event_id.as_str()).collect();
    assert_eq!(ids, ["placed", "other"], "paid waits for placed");
    assert!(claimed.iter().all(|e| e.attempts == 1));
    s.mark_events_sent(&[claimed[0].id], "w1", T0)
        .await
        .unwrap();
    let next = s.claim_events("w1", T0, LEASE, 10).await.unwrap();
    let ids: Vec<&str> = next.iter().map(|e| e.event_id.as_str()).collect();
    assert_eq!(ids, ["paid"]);
    let depth = s.outbox_depth(T0).await.unwrap();
    assert_eq!((depth.pending, depth.sent), (2, 1));
    assert_eq!(depth.oldest_pending, Some(T0));
    let sent = s
        .outbox_event("OMNISEND_API_KEY", "placed")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(sent.status, "sent");
}

async fn a_leased_row_is_not_claimed_again_until_its_lease_runs_out(t: &TestStore) {
    let s = t.store();
    s.apply(&queue(vec![event("e-1", "order:1", &[])]), T0)
        .await
        .unwrap();
    assert_eq!(s.claim_events("w1", T0, LEASE, 10).await.unwrap().len(), 1);
    let later = T0 + Duration::from_secs(10);
    assert!(
        s.claim_events("w2", later, LEASE, 10)
            .await
            .unwrap()
            .is_empty()
    );
    // w1 died: after the lease another worker takes the row, and w1's late answer is ignored.
    let after = T0 + Duration::from_secs(31);
    let retaken = s.claim_events("w2", after, LEASE, 10).await.unwrap();
    assert_eq!(retaken.len(), 1);
    assert_eq!(retaken[0].attempts, 2);
    s.mark_events_sent(&[retaken[0].id], "w1", after)
        .await
        .unwrap();
    assert_eq!(s.outbox_depth(after).await.unwrap().sent, 0);
    s.mark_events_sent(&[retaken[0].id], "w2", after)
        .await
        .unwrap();
    assert_eq!(s.outbox_depth(after).await.unwrap().sent, 1);
    // Releasing leases on shutdown makes rows due at once.
    s.apply(&queue(vec![event("e-2", "order:2", &[])]), after)
        .await
        .unwrap();
    assert_eq!(
        s.claim_events("w3", after, LEASE, 10).await.unwrap().len(),
        1
    );
    assert_eq!(s.release_leases("w3").await.unwrap(), 1);
    assert_eq!(
        s.claim_events("w4", after, LEASE, 10).await.unwrap().len(),
        1
    );
}

async fn a_retried_row_waits_for_its_due_time_and_holds_back_its_key(t: &TestStore) {
    let s = t.store();
    s.apply(
        &queue(vec![
            event("placed", "order:1", &[]),
            event("paid", "order:1", &[]),
        ]),
        T0,
    )
    .await
    .unwrap();
    let c = s.claim_events("w1", T0, LEASE, 10).await.unwrap();
    let due = T0 + Duration::from_secs(5);
    s.retry_event(c[0].id, "w1", due, "HTTP 503").await.unwrap();
    assert!(
        s.claim_events("w1", T0, LEASE, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let again = s.claim_events("w1", due, LEASE, 10).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].event_id, "placed");
    assert_eq!(again[0].last_error.as_deref(), Some("HTTP 503"));
}

async fn a_rejected_row_gets_a_rejected_record_and_releases_its_key(t: &TestStore) {
    let s = t.store();
    s.apply(
        &queue(vec![
            event("placed", "order:1", &[]),
            event("paid", "order:1", &[]),
        ]),
        T0,
    )
    .await
    .unwrap();
    let c = s.claim_events("w1", T0, LEASE, 10).await.unwrap();
    let record = NewRejected {
        route: "OMNISEND_API_KEY".into(),
        entity: "event".into(),
        ct_id: "placed".into(),
        field: Some("properties.totalPrice".into()),
        reason: "HTTP 400".into(),
        payload: Some(c[0].body.clone()),
        at: T0,
    };
    s.reject_event(c[0].id, "w1", "HTTP 400", &record)
        .await
        .unwrap();
    let next = s.claim_events("w1", T0, LEASE, 10).await.unwrap();
    assert_eq!(next[0].event_id, "paid");
    let depth = s.outbox_depth(T0).await.unwrap();
    assert_eq!(depth.rejected, 1);
    let rejected = s
        .list_rejected(&connector::store::RejectedFilter::default())
        .await
        .unwrap();
    assert_eq!(rejected.len(), 1);
    assert_eq!(rejected[0].entity, "event");
}

async fn realtime_rows_are_claimed_before_backfill_rows(t: &TestStore) {
    let s = t.store();
    let mut old = event("historical", "order:9", &[]);
    old.lane = Lane::Backfill;
    s.apply(&queue(vec![old, event("live", "order:1", &[])]), T0)
        .await
        .unwrap();
    let c = s.claim_events("w1", T0, LEASE, 1).await.unwrap();
    assert_eq!(c[0].event_id, "live");
}

async fn applying_marks_the_inbox_entry_and_moves_the_resource_version_only_forward(t: &TestStore) {
    let s = t.store();
    let Stored::New(inbox_id) = s
        .store_notification(&NewInboxEntry {
            delivery_id: "d-1".into(),
            source: "commercetools".into(),
            resource_type: "cart".into(),
            resource_id: "c-1".into(),
            kind: "ResourceUpdated".into(),
            sequence_number: None,
            resource_version: Some(5),
            payload: json!({}),
            received_at: T0,
        })
        .await
        .unwrap()
    else {
        panic!("new entry expected");
    };
    let version = |v: i64| ResourceVersion {
        resource_type: "cart".into(),
        resource_id: "c-1".into(),
        version: v,
        snapshot: Some(json!({"version": v})),
    };
    s.apply(
        &Application {
            inbox_id: Some(inbox_id),
            resource: Some(version(5)),
            ..Application::default()
        },
        T0,
    )
    .await
    .unwrap();
    assert_eq!(s.count_pending_notifications().await.unwrap(), 0);
    assert_eq!(
        s.resource_state("cart", "c-1").await.unwrap(),
        Some((5, Some(json!({"version": 5}))))
    );
    for (v, expected) in [(3, 5), (7, 7)] {
        s.apply(
            &Application {
                resource: Some(version(v)),
                ..Application::default()
            },
            T0,
        )
        .await
        .unwrap();
        assert_eq!(
            s.resource_state("cart", "c-1").await.unwrap().unwrap().0,
            expected
        );
    }
}

async fn facts_are_found_by_prefix_and_only_for_their_brand(t: &TestStore) {
    let s = t.store();
    s.apply(
        &queue(vec![
            event("e-1", "order:1", &["order:1:placed", "order:1:refund:r-1"]),
            event("e-2", "order:10", &["order:10:placed"]),
        ]),
        T0,
    )
    .await
    .unwrap();
    let facts = s
        .facts_with_prefix("OMNISEND_API_KEY", "order:1:")
        .await
        .unwrap();
    assert_eq!(facts.len(), 2);
    assert!(facts.contains("order:1:refund:r-1"));
    assert!(
        s.facts_with_prefix("OTHER", "order:1:")
            .await
            .unwrap()
            .is_empty()
    );
}

async fn a_rejected_event_can_be_requeued_for_replay(t: &TestStore) {
    let s = t.store();
    s.apply(&queue(vec![event("e-1", "order:1", &[])]), T0)
        .await
        .unwrap();
    let c = s.claim_events("w1", T0, LEASE, 10).await.unwrap();
    let record = NewRejected {
        route: "OMNISEND_API_KEY".into(),
        entity: "event".into(),
        ct_id: "e-1".into(),
        field: None,
        reason: "gave up".into(),
        payload: None,
        at: T0,
    };
    s.reject_event(c[0].id, "w1", "gave up", &record)
        .await
        .unwrap();
    assert!(
        !s.requeue_event("OMNISEND_API_KEY", "missing", T0)
            .await
            .unwrap()
    );
    assert!(
        s.requeue_event("OMNISEND_API_KEY", "e-1", T0)
            .await
            .unwrap()
    );
    assert_eq!(s.claim_events("w1", T0, LEASE, 10).await.unwrap().len(), 1);
}
