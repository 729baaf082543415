//! The inbox stores each notification once, by delivery id and by (resource, kind, sequence
//! number), on both backends.

use connector::store::testing::TestStore;
use connector::store::{NewInboxEntry, Stored};
use serde_json::json;
use time::macros::datetime;

fn entry(delivery: &str, resource: &str, seq: Option<i64>) -> NewInboxEntry {
    NewInboxEntry {
        delivery_id: delivery.into(),
        source: "commercetools".into(),
        resource_type: "order".into(),
        resource_id: resource.into(),
        kind: "OrderCreated".into(),
        sequence_number: seq,
        resource_version: seq,
        payload: json!({"type": "OrderCreated", "resource": {"id": resource}}),
        received_at: datetime!(2026-11-27 10:00 UTC),
    }
}

connector::backend_tests!(
    a_notification_is_stored_once_per_delivery_id,
    the_same_change_under_another_delivery_id_is_a_duplicate,
    pending_entries_come_oldest_first_and_leave_once_processed,
    a_failed_entry_waits_for_its_next_attempt,
);

async fn a_failed_entry_waits_for_its_next_attempt(t: &TestStore) {
    let s = t.store();
    let Stored::New(id) = s
        .store_notification(&entry("m-1", "o-1", Some(1)))
        .await
        .unwrap()
    else {
        panic!("new entry expected");
    };
    s.store_notification(&entry("m-2", "o-2", Some(1)))
        .await
        .unwrap();
    let now = datetime!(2026-11-27 10:00 UTC);
    assert_eq!(s.due_notifications(now, 10).await.unwrap().len(), 2);
    let later = datetime!(2026-11-27 10:00:05 UTC);
    s.retry_notification(id, "commercetools: 503", later)
        .await
        .unwrap();
    let due = s.due_notifications(now, 10).await.unwrap();
    assert_eq!(due.len(), 1, "the failed entry waits");
    assert_eq!(due[0].delivery_id, "m-2");
    let again = s.due_notifications(later, 10).await.unwrap();
    assert_eq!(again.len(), 2);
    assert_eq!(again[0].attempts, 1);
    assert_eq!(again[0].last_error.as_deref(), Some("commercetools: 503"));
    assert_eq!(s.count_pending_notifications().await.unwrap(), 2);
}

async fn a_notification_is_stored_once_per_delivery_id(t: &TestStore) {
    let s = t.store();
    {
        let first = s
            .store_notification(&entry("m-1", "o-1", Some(1)))
            .await
            .unwrap();
        assert!(matches!(first, Stored::New(_)));
        let again = s
            .store_notification(&entry("m-1", "o-1", Some(1)))
            .await
            .unwrap();
        assert_eq!(again, Stored::Duplicate);
        assert_eq!(s.count_pending_notifications().await.unwrap(), 1);
    }
}

async fn the_same_change_under_another_delivery_id_is_a_duplicate(t: &TestStore) {
    let s = t.store();
    {
        s.store_notification(&entry("m-1", "o-1", Some(3)))
            .await
            .unwrap();
        let other_id = s
            .store_notification(&entry("m-2", "o-1", Some(3)))
            .await
            .unwrap();
        assert_eq!(other_id, Stored::Duplicate);
        // Another sequence number, or no sequence number at all, is a new entry.
        assert!(matches!(
            s.store_notification(&entry("m-3", "o-1", Some(4)))
                .await
                .unwrap(),
            Stored::New(_)
        ));
        assert!(matches!(
            s.store_notification(&entry("m-4", "o-1", None))
                .await
                .unwrap(),
            Stored::New(_)
        ));
        assert!(matches!(
            s.store_notification(&entry("m-5", "o-1", None))
                .await
                .unwrap(),
            Stored::New(_)
        ));
        assert_eq!(s.count_pending_notifications().await.unwrap(), 4);
    }
}

async fn pending_entries_come_oldest_first_and_leave_once_processed(t: &TestStore) {
    let s = t.store();
    {
        for (i, d) in ["a", "b", "c"].iter().enumerate() {
            s.store_notification(&entry(d, "o-9", Some(i as i64)))
                .await
                .unwrap();
        }
        let now = datetime!(2026-11-27 10:01 UTC);
        let pending = s.due_notifications(now, 10).await.unwrap();
        let ids: Vec<&str> = pending.iter().map(|e| e.delivery_id.as_str()).collect();
        assert_eq!(ids, ["a", "b", "c"]);
        assert_eq!(pending[0].payload["type"], "OrderCreated");
        s.retry_notification(pending[0].id, "Omnisend 503", now)
            .await
            .unwrap();
        s.mark_notification_processed(pending[1].id, now)
            .await
            .unwrap();
        let left = s.due_notifications(now, 10).await.unwrap();
        assert_eq!(left.len(), 2);
        assert_eq!(left[0].attempts, 1);
        assert_eq!(left[0].last_error.as_deref(), Some("Omnisend 503"));
        assert_eq!(s.due_notifications(now, 1).await.unwrap().len(), 1);
    }
}
