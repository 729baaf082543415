//! The client and pager futures can be spawned on a multi-threaded runtime.

use commercetools::models::ProductProjection;
use commercetools::{CtClient, CtConfig, PageMode};

fn assert_send<T: Send>(_: &T) {}
fn assert_send_sync<T: Send + Sync + Clone + 'static>() {}

#[tokio::test]
async fn client_and_pager_futures_are_send_so_they_can_be_spawned() {
    assert_send_sync::<CtClient>();
    let client = CtClient::new(CtConfig::new(
        "p",
        "http://127.0.0.1:9",
        "http://127.0.0.1:9",
        "id",
        "s",
    ))
    .unwrap();
    let get = client.get::<serde_json::Value>("x", &[]);
    assert_send(&get);
    let all = client.all::<ProductProjection>("product-projections");
    assert_send(&all);
    let check = client.check_connectivity();
    assert_send(&check);
    let mut pager = client.pager::<ProductProjection>(
        "product-projections",
        PageMode::Full { after_id: None },
        10,
        vec![],
    );
    let next = pager.next_page();
    assert_send(&next);
    drop(next);
    let handle = tokio::spawn(async move { pager.pages_fetched() });
    assert_eq!(handle.await.unwrap(), 0);
}
