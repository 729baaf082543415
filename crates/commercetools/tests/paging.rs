//! Keyset paging against the commercetools emulator.

use std::collections::HashSet;
use std::time::Duration;

use commercetools::models::{Category, Channel, Product, ProductProjection, ProductType, Store};
use commercetools::{
    CtClient, CtConfig, CtError, DeltaPosition, Keyed, PageMode, Pager, format_watermark,
};
use emulators::seed::{CatalogSpec, generate_catalog};
use emulators::{CtEmulator, CtEmulatorConfig, Faults};
use time::OffsetDateTime;
use time::macros::datetime;

async fn emulator(products: usize) -> CtEmulator {
    let emu = CtEmulator::start(CtEmulatorConfig::default())
        .await
        .unwrap();
    emu.seed(&generate_catalog(&CatalogSpec {
        products,
        categories: 30,
        seed: 7,
    }));
    emu
}

fn config(emu: &CtEmulator) -> CtConfig {
    let d = CtEmulatorConfig::default();
    let mut c = CtConfig::new(
        emu.project_key(),
        emu.api_url(),
        emu.auth_url(),
        d.client_id,
        d.client_secret,
    );
    c.max_retries = 5;
    c
}

fn client(emu: &CtEmulator) -> CtClient {
    CtClient::new_with_backoff(
        config(emu),
        Duration::from_millis(1),
        Duration::from_millis(5),
    )
    .unwrap()
}

async fn drain<T: Keyed + serde::de::DeserializeOwned>(
    pager: &mut Pager<T>,
) -> Result<(Vec<T>, Vec<usize>), CtError> {
    let mut all = Vec::new();
    let mut sizes = Vec::new();
    while let Some(page) = pager.next_page().await? {
        sizes.push(page.len());
        all.extend(page);
    }
    Ok((all, sizes))
}

fn key<T: Keyed>(t: &T) -> (OffsetDateTime, String) {
    (t.last_modified_at(), t.id().to_string())
}

#[tokio::test]
async fn full_pager_visits_every_product_once_in_id_order() {
    let emu = emulator(1234).await;
    let c = client(&emu);
    let mut pager = c.pager::<Product>("products", PageMode::Full { after_id: None }, 500, vec![]);
    let (all, sizes) = drain(&mut pager).await.unwrap();
    assert_eq!(sizes, [500, 500, 234]);
    assert_eq!(pager.pages_fetched(), 3);
    assert_eq!(all.len(), emu.product_count());
    let ids: Vec<&str> = all.iter().map(|p| p.id.as_str()).collect();
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "strictly increasing ids"
    );
    assert_eq!(pager.last_id(), ids.last().copied());
    assert!(
        pager.next_page().await.unwrap().is_none(),
        "stays exhausted"
    );
}

#[tokio::test]
async fn full_pager_ends_with_an_empty_fetch_after_an_exact_multiple_of_the_page_size() {
    let emu = emulator(20).await;
    let c = client(&emu);
    let mut pager = c.pager::<Product>("products", PageMode::Full { after_id: None }, 10, vec![]);
    let (all, sizes) = drain(&mut pager).await.unwrap();
    assert_eq!(sizes, [10, 10]);
    assert_eq!(all.len(), 20);
    assert_eq!(
        pager.pages_fetched(),
        3,
        "the third (empty) fetch proves exhaustion"
    );
}

#[tokio::test]
async fn full_pager_resumes_after_a_given_id() {
    let emu = emulator(50).await;
    let c = client(&emu);
    let all: Vec<Product> = c.all("products").await.unwrap();
    let resume = all[19].id.clone();
    let mut pager = c.pager::<Product>(
        "products",
        PageMode::Full {
            after_id: Some(resume.clone()),
        },
        7,
        vec![],
    );
    assert_eq!(pager.last_id(), Some(resume.as_str()));
    let (rest, _) = drain(&mut pager).await.unwrap();
    let expected: Vec<&str> = all[20..].iter().map(|p| p.id.as_str()).collect();
    let got: Vec<&str> = rest.iter().map(|p| p.id.as_str()).collect();
    assert_eq!(got, expected);
}

#[tokio::test]
async fn extra_where_parameters_are_anded_with_the_keyset() {
    let emu = emulator(30).await;
    let c = client(&emu);
    let keys = r#"key in ("product-3", "product-5", "product-8", "product-13", "product-21")"#;
    let mut pager = c.pager::<Product>(
        "products",
        PageMode::Full { after_id: None },
        2,
        vec![("where".into(), keys.into())],
    );
    let (got, sizes) = drain(&mut pager).await.unwrap();
    assert_eq!(sizes, [2, 2, 1]);
    let mut got: Vec<String> = got.into_iter().filter_map(|p| p.key).collect();
    got.sort();
    assert_eq!(
        got,
        [
            "product-13",
            "product-21",
            "product-3",
            "product-5",
            "product-8"
        ]
    );
}

#[tokio::test]
async fn delta_pager_returns_only_changed_products_after_watermark() {
    let emu = emulator(300).await;
    let c = client(&emu);
    let before: Vec<Product> = c.all("products").await.unwrap();
    let watermark = before.iter().map(|p| p.last_modified_at).max().unwrap();

    let changed: Vec<String> = [250, 3, 117, 42, 199]
        .iter()
        .map(|i| before[*i].id.clone())
        .collect();
    for id in &changed {
        emu.update_product(id, |p| {
            p["masterData"]["current"]["name"]["en"] = serde_json::json!("Renamed");
        });
    }

    let mut pager = c.pager::<Product>(
        "products",
        PageMode::Delta {
            since: watermark,
            after: None,
        },
        2,
        vec![],
    );
    let (got, sizes) = drain(&mut pager).await.unwrap();
    assert_eq!(sizes, [2, 2, 1]);
    let got_ids: Vec<&str> = got.iter().map(|p| p.id.as_str()).collect();
    assert_eq!(got_ids, changed, "in modification order, nothing else");
    assert!(got.iter().all(|p| p.last_modified_at > watermark));
    assert_eq!(
        pager.position(),
        Some(DeltaPosition {
            last_modified_at: got[4].last_modified_at,
            id: got[4].id.clone()
        })
    );

    // Resuming from the saved position finds nothing new.
    let mut again = c.pager::<Product>(
        "products",
        PageMode::Delta {
            since: watermark,
            after: pager.position(),
        },
        2,
        vec![],
    );
    assert!(again.next_page().await.unwrap().is_none());
    assert_eq!(again.position(), pager.position(), "position is kept");
}

#[tokio::test]
async fn delta_pager_does_not_drop_items_sharing_a_timestamp() {
    let emu = emulator(101).await;
    let c = client(&emu);
    let all: Vec<Product> = c.all("products").await.unwrap();
    let distinct: HashSet<OffsetDateTime> = all.iter().map(|p| p.last_modified_at).collect();
    assert!(
        distinct.len() < all.len(),
        "the seed must contain products sharing a lastModifiedAt for this test to mean anything"
    );
    let since = all.iter().map(|p| p.last_modified_at).min().unwrap() - time::Duration::seconds(1);

    // An odd page size splits pairs sharing a timestamp across pages.
    for page_size in [1, 3, 7] {
        let mut pager = c.pager::<Product>(
            "products",
            PageMode::Delta { since, after: None },
            page_size,
            vec![],
        );
        let (got, _) = drain(&mut pager).await.unwrap();
        assert_eq!(got.len(), all.len(), "page size {page_size}");
        let keys: Vec<_> = got.iter().map(key).collect();
        assert!(
            keys.windows(2).all(|w| w[0] < w[1]),
            "strictly increasing (lastModifiedAt, id), page size {page_size}"
        );
    }
}

#[tokio::test]
async fn delta_pager_resumes_from_a_saved_position_without_gaps_or_duplicates() {
    let emu = emulator(120).await;
    let c = client(&emu);
    let since = datetime!(2000-01-01 0:00 UTC);
    let mut first = c.pager::<ProductProjection>(
        "product-projections",
        PageMode::Delta { since, after: None },
        9,
        vec![],
    );
    let mut seen = Vec::new();
    for _ in 0..3 {
        seen.extend(first.next_page().await.unwrap().unwrap());
    }
    let saved = first.position().unwrap();
    drop(first);
    let mut second = c.pager::<ProductProjection>(
        "product-projections",
        PageMode::Delta {
            since,
            after: Some(saved),
        },
        9,
        vec![],
    );
    let (rest, _) = drain(&mut second).await.unwrap();
    seen.extend(rest);

    let mut full = c.pager::<ProductProjection>(
        "product-projections",
        PageMode::Delta { since, after: None },
        500,
        vec![],
    );
    let (expected, _) = drain(&mut full).await.unwrap();
    let seen_keys: Vec<_> = seen.iter().map(key).collect();
    let expected_keys: Vec<_> = expected.iter().map(key).collect();
    assert!(!expected_keys.is_empty());
    assert_eq!(seen_keys, expected_keys);
}

#[tokio::test]
async fn all_returns_every_resource_of_small_collections() {
    let emu = emulator(5).await;
    let c = client(&emu);
    let categories: Vec<Category> = c.all("categories").await.unwrap();
    assert_eq!(categories.len(), 30);
    assert!(categories.windows(2).all(|w| w[0].id < w[1].id));
    let stores: Vec<Store> = c.all("stores").await.unwrap();
    assert_eq!(stores.len(), 2);
    let channels: Vec<Channel> = c.all("channels").await.unwrap();
    assert_eq!(channels.len(), 3);
    let types: Vec<ProductType> = c.all("product-types").await.unwrap();
    assert_eq!(types.len(), 2);
}

#[tokio::test]
async fn pager_survives_a_burst_of_429s() {
    let emu = emulator(60).await;
    let c = client(&emu);
    emu.set_faults(Faults {
        burst_429: Some((1, 4)),
        ..Faults::default()
    });
    let before = emu.request_count();
    let mut pager = c.pager::<Product>("products", PageMode::Full { after_id: None }, 25, vec![]);
    let (all, sizes) = drain(&mut pager).await.unwrap();
    assert_eq!(all.len(), 60);
    assert_eq!(sizes, [25, 25, 10]);
    // token + 3 pages + 4 retried 429s
    assert_eq!(emu.request_count() - before, 1 + 3 + 4);
    assert_eq!(c.requests_sent(), 1 + 3 + 4);
}

#[tokio::test]
async fn client_recovers_from_revoked_tokens_with_one_refresh() {
    let emu = emulator(10).await;
    let c = client(&emu);
    let _: Vec<Product> = c.all("products").await.unwrap();
    assert_eq!(c.tokens_fetched(), 1);
    emu.revoke_tokens();
    let again: Vec<Product> = c.all("products").await.unwrap();
    assert_eq!(again.len(), 10);
    assert_eq!(c.tokens_fetched(), 2);
}

#[tokio::test]
async fn get_by_id_decodes_and_returns_none_for_unknown_ids() {
    let emu = emulator(3).await;
    let c = client(&emu);
    let all: Vec<Product> = c.all("products").await.unwrap();
    let one: Option<Product> = c
        .get(&format!("products/{}", all[1].id), &[])
        .await
        .unwrap();
    assert_eq!(one.unwrap().id, all[1].id);
    let none: Option<Product> = c.get("products/does-not-exist", &[]).await.unwrap();
    assert!(none.is_none());
}

#[tokio::test]
async fn check_connectivity_succeeds_and_reports_bad_settings_clearly() {
    let emu = emulator(0).await;
    client(&emu).check_connectivity().await.unwrap();

    let mut wrong_secret = config(&emu);
    wrong_secret.client_secret = "nope-not-it".to_string().into();
    let err = CtClient::new(wrong_secret)
        .unwrap()
        .check_connectivity()
        .await
        .unwrap_err();
    assert!(matches!(err, CtError::Unauthorized { .. }), "{err:?}");
    assert!(!err.to_string().contains("nope-not-it"));

    let mut wrong_project = config(&emu);
    wrong_project.project_key = "other-project".into();
    let err = CtClient::new(wrong_project)
        .unwrap()
        .check_connectivity()
        .await
        .unwrap_err();
    assert!(matches!(err, CtError::Forbidden { .. }), "{err:?}");
}

#[test]
fn watermark_has_millisecond_utc_format() {
    assert_eq!(
        format_watermark(datetime!(2026-01-02 03:04:05.678912 UTC)),
        "2026-01-02T03:04:05.678Z"
    );
    assert_eq!(
        format_watermark(datetime!(2026-01-02 04:04:05 +01:00)),
        "2026-01-02T03:04:05.000Z"
    );
}
