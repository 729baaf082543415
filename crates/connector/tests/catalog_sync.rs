//! Catalog sync against both emulators, end to end over HTTP.

mod support;

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use connector::store::{Backend, RejectedFilter};
use connector::sync::Mode;
use connector::sync::catalog::CatalogOptions;
use emulators::Faults;
use serde_json::json;
use support::oracle::{StoreView, actual_product, expected_product};
use support::{EU_KEY, Harness, US_KEY, run};

fn us_view(h: &Harness) -> StoreView<'_> {
    StoreView {
        locales: &["en-US", "en"],
        currency: "USD",
        country: "US",
        price_channel_id: Some(h.generator.web_prices_id()),
        supply_channel_id: h.generator.us_warehouse_id(),
        url_prefix: "https://shop.example.com/",
        url_path: "/p/",
    }
}

fn eu_view(h: &Harness) -> StoreView<'_> {
    StoreView {
        locales: &["de-DE", "de", "en"],
        currency: "EUR",
        country: "DE",
        price_channel_id: None,
        supply_channel_id: h.generator.eu_warehouse_id(),
        url_prefix: "https://shop.example.eu/",
        url_path: "/produkt/",
    }
}

/// Every brand holds exactly the expected products, field by field; returns the number of
/// products expected to be rejected per brand.
fn assert_catalog_is_exact(h: &Harness) -> BTreeMap<&'static str, usize> {
    let mut rejected = BTreeMap::new();
    for (name, key, view) in [("us", US_KEY, us_view(h)), ("eu", EU_KEY, eu_view(h))] {
        let actual: BTreeMap<String, serde_json::Value> = h
            .omnisend
            .products(key)
            .into_iter()
            .map(|p| (p["id"].as_str().unwrap().to_owned(), p))
            .collect();
        let mut expected_ids = HashSet::new();
        let mut n_rejected = 0;
        for product in &h.data.products {
            let live =
                h.ct.product(product["id"].as_str().unwrap())
                    .expect("product exists");
            if live["masterData"]["published"] != true {
                continue;
            }
            match expected_product(&live, &view) {
                None => n_rejected += 1,
                Some(expected) => {
                    let got = actual
                        .get(&expected.id)
                        .unwrap_or_else(|| panic!("{name}: product {} missing", expected.id));
                    assert_eq!(
                        actual_product(got),
                        expected,
                        "{name}: product {} differs",
                        expected.id
                    );
                    expected_ids.insert(expected.id);
                }
            }
        }
        let extra: Vec<&String> = actual
            .keys()
            .filter(|id| !expected_ids.contains(*id))
            .collect();
        assert!(
            extra.is_empty(),
            "{name}: unexpected products in Omnisend: {extra:?}"
        );
        let categories: HashSet<String> = h
            .omnisend
            .categories(key)
            .iter()
            .map(|c| c["categoryID"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(
            categories.len(),
            h.data.categories.len(),
            "{name}: every category is created"
        );
        rejected.insert(name, n_rejected);
    }
    rejected
}

#[tokio::test]
async fn full_sync_leaves_exactly_the_expected_catalog_in_each_brand() {
    let h = Harness::start(1000).await;
    let runs = h.sync(true).await;

    let rejected = assert_catalog_is_exact(&h);
    // The generator plants products without an EUR price and with only a French slug.
    assert!(
        rejected["us"] >= 10 && rejected["eu"] > rejected["us"],
        "{rejected:?}"
    );
    for (store, n) in &rejected {
        let r = run(&runs, store, "products");
        assert_eq!(r.mode, Mode::Full);
        assert_eq!(r.stats.seen, 1000);
        assert_eq!(r.stats.rejected as usize, *n, "{store}: rejected count");
        assert_eq!(r.stats.created as usize, 1000 - n, "{store}: created count");
    }
    // Spot-check the parts of the contract the oracle does not cover.
    let p = h
        .omnisend
        .products(US_KEY)
        .into_iter()
        .find(|p| p["description"].is_string())
        .expect("a described product");
    assert!(
        !p["description"].as_str().unwrap().contains('<'),
        "descriptions are plain text"
    );
    assert!(p["vendor"].is_string() && p["type"].is_string());
    if let Some(check) =
        support::contract::assert_bodies_match_official_schemas(&h.omnisend.requests())
    {
        assert!(check > 20, "the contract check saw the bodies ({check})");
    }
}

#[tokio::test]
async fn full_sync_on_postgres_matches_the_expected_catalog() {
    let Some(h) = Harness::start_on(Backend::Postgres, 300).await else {
        println!("{}", connector::store::testing::POSTGRES_SKIP_MESSAGE);
        return;
    };
    h.sync(false).await;
    assert_catalog_is_exact(&h);
    let runs = h.sync(false).await;
    assert_eq!(
        run(&runs, "us", "products").stats.created + run(&runs, "us", "products").stats.updated,
        0
    );
}

#[tokio::test]
async fn second_run_sends_no_product_writes_and_delta_sends_exactly_the_changed_ones() {
    let h = Harness::start(400).await;
    h.sync(false).await;
    h.omnisend.clear_requests();

    let runs = h.sync(false).await;
    assert_eq!(run(&runs, "us", "products").mode, Mode::Delta);
    assert!(
        h.product_writes().is_empty(),
        "unchanged catalog sends nothing: {:?}",
        h.product_writes().len()
    );
    assert_eq!(run(&runs, "us", "products").stats.requests, 0);

    // Change the price of 10 mappable products.
    let changed: Vec<String> = h
        .data
        .products
        .iter()
        .filter(|p| {
            expected_product(p, &us_view(&h)).is_some()
                && expected_product(p, &eu_view(&h)).is_some()
        })
        .take(10)
        .map(|p| p["id"].as_str().unwrap().to_owned())
        .collect();
    for id in &changed {
        h.ct.update_product(id, |p| {
            for side in ["current", "staged"] {
                p["masterData"][side]["name"]["en"] = json!(format!("Renamed {id}"));
                p["masterData"][side]["name"]["en-US"] = json!(format!("Renamed {id}"));
                p["masterData"][side]["name"]["de"] = json!(format!("Umbenannt {id}"));
            }
        });
    }
    h.omnisend.clear_requests();
    let runs = h.sync(false).await;
    for store in ["us", "eu"] {
        let r = run(&runs, store, "products");
        assert_eq!(r.mode, Mode::Delta);
        assert_eq!(
            r.stats.updated, 10,
            "{store}: exactly the 10 changed products are replaced"
        );
        assert_eq!(r.stats.created, 0);
    }
    let mut sent: Vec<String> = h
        .product_writes()
        .iter()
        .filter(|r| r.api_key == US_KEY)
        .flat_map(|r| {
            r.body.as_ref().unwrap()["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["id"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        })
        .collect();
    sent.sort();
    let mut want = changed.clone();
    want.sort();
    assert_eq!(sent, want, "the batch carried exactly the changed products");
    assert_eq!(
        h.omnisend.product(US_KEY, &changed[0]).unwrap()["title"],
        json!(format!("Renamed {}", changed[0]))
    );
    assert_eq!(
        h.omnisend.product(EU_KEY, &changed[0]).unwrap()["title"],
        json!(format!("Umbenannt {}", changed[0]))
    );
}

#[tokio::test]
async fn unpublishing_a_product_removes_it_from_omnisend() {
    let h = Harness::start(200).await;
    h.sync(false).await;
    let id = h.omnisend.products(US_KEY)[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    h.ct.unpublish_product(&id);
    let runs = h.sync(false).await;
    assert_eq!(run(&runs, "us", "products").stats.deleted, 1);
    assert!(h.omnisend.product(US_KEY, &id).is_none());
    assert!(h.omnisend.product(EU_KEY, &id).is_none());
    assert_catalog_is_exact(&h);
}

#[tokio::test]
async fn a_deleted_product_is_removed_by_the_next_full_run() {
    let h = Harness::start(150).await;
    h.sync(false).await;
    let id = h.omnisend.products(EU_KEY)[3]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    h.ct.delete_product(&id);
    let runs = h.sync(true).await;
    assert_eq!(run(&runs, "eu", "products").stats.deleted, 1);
    assert!(h.omnisend.product(EU_KEY, &id).is_none());
}

#[tokio::test]
async fn unpublished_products_can_be_kept_as_not_available() {
    let h = Harness::start(100).await;
    let settings = h.settings_with_catalog("unpublished = \"not_available\"");
    let engine = h.engine_with(&settings);
    engine
        .run(&CatalogOptions::default(), &|_| {})
        .await
        .unwrap();
    let id = h.omnisend.products(US_KEY)[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    h.ct.unpublish_product(&id);
    engine
        .run(&CatalogOptions::default(), &|_| {})
        .await
        .unwrap();
    let p = h.omnisend.product(US_KEY, &id).expect("kept");
    assert_eq!(p["status"], "notAvailable");
}

#[tokio::test]
async fn changing_the_mapping_config_triggers_a_full_refresh_with_the_reason() {
    let h = Harness::start(100).await;
    h.sync(false).await;
    let settings = h.settings_with_catalog("vendor_attribute = \"color\"");
    let runs = h
        .engine_with(&settings)
        .run(&CatalogOptions::default(), &|_| {})
        .await
        .unwrap();
    let r = run(&runs, "us", "products");
    assert_eq!(r.mode, Mode::Full);
    assert!(
        r.reason
            .as_deref()
            .unwrap()
            .contains("mapping configuration changed"),
        "{:?}",
        r.reason
    );
    assert!(
        r.stats.updated > 50,
        "every product's vendor changed: {}",
        r.stats.updated
    );
    // The next run is a delta again.
    let runs = h
        .engine_with(&settings)
        .run(&CatalogOptions::default(), &|_| {})
        .await
        .unwrap();
    assert_eq!(run(&runs, "us", "products").mode, Mode::Delta);
}

#[tokio::test]
async fn faults_lose_and_duplicate_nothing_and_the_rate_stays_under_the_ceiling() {
    let h = Harness::start(600).await;
    h.omnisend.set_faults(Faults {
        error_rate: 0.2,
        seed: 11,
        ..Faults::default()
    });
    let runs = h.sync(false).await;
    h.omnisend.set_faults(Faults::default());
    for store in ["us", "eu"] {
        assert_eq!(
            run(&runs, store, "products").stats.failed,
            0,
            "{store}: retries absorbed the faults"
        );
    }
    assert_catalog_is_exact(&h);
    let faulted = h
        .omnisend
        .requests()
        .iter()
        .filter(|r| matches!(r.status, 429 | 500 | 503))
        .count();
    assert!(faulted > 3, "faults were injected ({faulted})");
    for key in [US_KEY, EU_KEY] {
        let peak = h
            .omnisend
            .max_requests_in_window(key, Duration::from_secs(60));
        assert!(peak <= 360, "brand {key}: {peak} requests in one minute");
    }
    // A further run after the faults finds nothing to do.
    h.omnisend.clear_requests();
    h.sync(false).await;
    assert!(h.product_writes().is_empty());
}

#[tokio::test]
async fn unmappable_products_are_rejected_with_context_and_replay_sends_them_once_fixed() {
    let h = Harness::start(200).await;
    h.sync(false).await;
    let rejected = h
        .state()
        .list_rejected(&RejectedFilter {
            entity: Some("products".into()),
            route: Some("eu".into()),
            open_only: true,
            limit: 100,
        })
        .await
        .unwrap();
    let no_price = rejected
        .iter()
        .find(|r| r.field.as_deref() == Some("masterVariant.prices"))
        .expect("a product without EUR price");
    assert!(no_price.reason.contains("EUR"), "{}", no_price.reason);
    let no_slug = rejected
        .iter()
        .find(|r| r.field.as_deref() == Some("slug"))
        .expect("a product without a usable slug");
    assert!(no_slug.reason.contains("de-DE"), "{}", no_slug.reason);

    // Fix the data in commercetools, then replay just that record.
    let id = no_price.ct_id.clone();
    h.ct.update_product(&id, |p| {
        for side in ["current", "staged"] {
            let prices = p["masterData"][side]["masterVariant"]["prices"].as_array_mut().unwrap();
            prices.push(json!({"id": "fixed", "value": {"type": "centPrecision", "currencyCode": "EUR", "centAmount": 4599, "fractionDigits": 2}}));
        }
    });
    let outcomes = h.engine().replay(Some(no_price.id)).await.unwrap();
    assert_eq!(outcomes.len(), 1);
    assert!(outcomes[0].resolved, "{:?}", outcomes[0]);
    let p = h.omnisend.product(EU_KEY, &id).expect("sent after replay");
    assert_eq!(p["variants"][0]["price"], json!(45.99));
    assert!(
        h.state()
            .rejected(no_price.id)
            .await
            .unwrap()
            .unwrap()
            .resolved_at
            .is_some()
    );

    // The unfixed one stays open with its reason.
    let outcomes = h.engine().replay(Some(no_slug.id)).await.unwrap();
    assert!(!outcomes[0].resolved);
    assert!(
        h.state()
            .rejected(no_slug.id)
            .await
            .unwrap()
            .unwrap()
            .resolved_at
            .is_none()
    );
}

/// Runs a dry sync and returns its summaries and NDJSON lines.
async fn dry_run(
    h: &Harness,
    full: bool,
) -> (Vec<connector::sync::RunSummary>, Vec<serde_json::Value>) {
    let buf: std::sync::Arc<std::sync::Mutex<Vec<u8>>> = Default::default();
    struct Shared(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
    impl std::io::Write for Shared {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let out: connector::app::DryRunOutput =
        std::sync::Arc::new(std::sync::Mutex::new(Box::new(Shared(buf.clone()))));
    let sinks = connector::app::sinks(&h.settings, &support::env, Some(out)).unwrap();
    let ct = connector::app::commercetools_client(&h.settings).unwrap();
    let engine = connector::sync::catalog::CatalogSync::new(
        ct,
        h.state().clone(),
        h.settings.clone(),
        sinks,
    );
    let runs = engine
        .run(&CatalogOptions { full, store: None }, &|_| {})
        .await
        .unwrap();
    let text = String::from_utf8(buf.lock().unwrap().clone()).unwrap();
    let lines = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("NDJSON"))
        .collect();
    (runs, lines)
}

#[tokio::test]
async fn dry_run_writes_the_exact_bodies_and_sends_nothing() {
    let h = Harness::start(120).await;
    let (runs, lines) = dry_run(&h, false).await;
    assert!(h.omnisend.requests().is_empty(), "nothing reached Omnisend");
    assert!(
        h.state().cursors().await.unwrap().is_empty(),
        "no cursor moved"
    );
    let product_items: usize = lines
        .iter()
        .filter(|l| l["brand"] == "us" && l["body"]["endpoint"] == "products")
        .map(|l| l["body"]["items"].as_array().unwrap().len())
        .sum();
    assert_eq!(
        product_items as u64,
        run(&runs, "us", "products").stats.created
    );
    // The dry-run bodies are what a real run sends (a real run may submit a few batches
    // concurrently, so compare them as sorted lists).
    h.sync(false).await;
    let mut real: Vec<String> = h
        .omnisend
        .requests()
        .into_iter()
        .filter(|r| r.path == "/batches" && r.method == "POST")
        .map(|r| r.body.unwrap().to_string())
        .collect();
    let mut dry: Vec<String> = lines
        .iter()
        .filter(|l| l["path"] == "/batches")
        .map(|l| l["body"].to_string())
        .collect();
    real.sort();
    dry.sort();
    assert!(!dry.is_empty());
    assert_eq!(dry, real);
}

#[tokio::test]
async fn commercetools_auth_failure_fails_clearly_and_leaves_the_cursor_untouched() {
    let h = Harness::start(50).await;
    h.sync(false).await;
    let before = h.state().cursors().await.unwrap();
    let mut settings = h.settings.clone();
    settings.commercetools.client_secret = Some("wrong".to_owned().into());
    let err = h
        .engine_with(&settings)
        .run(&CatalogOptions::default(), &|_| {})
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("client credentials"), "{err}");
    assert!(!err.contains("wrong"), "the secret is not echoed: {err}");
    assert_eq!(h.state().cursors().await.unwrap(), before);
}

#[tokio::test]
async fn unreachable_commercetools_fails_clearly_and_leaves_the_cursor_untouched() {
    let h = Harness::start(50).await;
    h.sync(false).await;
    let before = h.state().cursors().await.unwrap();
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut settings = h.settings.clone();
    settings.commercetools.api_url = format!("http://127.0.0.1:{closed}");
    settings.commercetools.auth_url = format!("http://127.0.0.1:{closed}");
    let err = h
        .engine_with(&settings)
        .run(&CatalogOptions::default(), &|_| {})
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains(&closed.to_string()), "names the host: {err}");
    assert_eq!(h.state().cursors().await.unwrap(), before);
}

#[tokio::test]
async fn project_check_names_store_and_channel_keys_missing_in_commercetools() {
    let h = Harness::start(1).await;
    let ct = connector::app::commercetools_client(&h.settings).unwrap();
    assert!(
        connector::sync::catalog::check_project(&ct, &h.settings)
            .await
            .unwrap()
            .is_empty()
    );
    let mut settings = h.settings.clone();
    settings.stores[1].key = "mars".into();
    settings.stores[0].supply_channel = Some("moon-warehouse".into());
    let problems = connector::sync::catalog::check_project(&ct, &settings)
        .await
        .unwrap();
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with("stores[1].key") && p.contains("mars"))
    );
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with("stores[0].supply_channel") && p.contains("moon-warehouse"))
    );
}

#[tokio::test]
async fn store_option_syncs_only_that_store() {
    let h = Harness::start(60).await;
    let runs = h
        .engine()
        .run(
            &CatalogOptions {
                full: false,
                store: Some("eu".into()),
            },
            &|_| {},
        )
        .await
        .unwrap();
    assert!(runs.iter().all(|r| r.store == "eu"));
    assert!(h.omnisend.products(US_KEY).is_empty());
    assert!(!h.omnisend.products(EU_KEY).is_empty());
    let err = h
        .engine()
        .run(
            &CatalogOptions {
                full: false,
                store: Some("nope".into()),
            },
            &|_| {},
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("nope"), "{err}");
}

#[tokio::test]
async fn dry_run_of_a_full_run_shows_the_deletes_it_would_make() {
    let h = Harness::start(80).await;
    h.sync(false).await;
    let id = h.omnisend.products(US_KEY)[5]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    h.ct.delete_product(&id);
    h.omnisend.clear_requests();
    let (runs, lines) = dry_run(&h, true).await;
    assert!(h.omnisend.requests().is_empty());
    assert!(
        h.omnisend.product(US_KEY, &id).is_some(),
        "nothing was deleted for real"
    );
    let path = format!("/products/{id}");
    assert!(
        lines
            .iter()
            .any(|l| l["brand"] == "us" && l["method"] == "DELETE" && l["path"] == path.as_str()),
        "{lines:?}"
    );
    assert_eq!(run(&runs, "us", "products").stats.deleted, 1);
    // The state store still knows the product: a real full run deletes it.
    let runs = h.sync(true).await;
    assert_eq!(run(&runs, "us", "products").stats.deleted, 1);
    assert!(h.omnisend.product(US_KEY, &id).is_none());
}

#[tokio::test]
async fn explicit_full_run_resends_everything_and_repairs_manual_deletes_in_omnisend() {
    let h = Harness::start(80).await;
    let first = h.sync(false).await;
    let id = h.omnisend.products(US_KEY)[2]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let sinks = connector::app::sinks(&h.settings, &support::env, None).unwrap();
    sinks["us"].delete_product(&id).await.unwrap();
    assert!(h.omnisend.product(US_KEY, &id).is_none());

    let runs = h.sync(true).await;
    let r = run(&runs, "us", "products");
    assert_eq!(r.stats.unchanged, 0);
    assert_eq!(
        (r.stats.updated + r.stats.created, r.stats.created),
        (run(&first, "us", "products").stats.created, 1),
        "every product is sent again; the deleted one is created anew"
    );
    assert!(
        h.omnisend.product(US_KEY, &id).is_some(),
        "the manually deleted product is back"
    );
    assert_catalog_is_exact(&h);
}

#[tokio::test]
async fn omnisend_item_failures_become_rejected_records_and_a_full_run_repairs_them() {
    let h = Harness::start(60).await;
    h.sync(false).await;
    // Someone deletes a category in Omnisend by hand; a product referencing it then changes.
    let product = h
        .omnisend
        .products(US_KEY)
        .into_iter()
        .find(|p| p["categoryIDs"].as_array().is_some_and(|c| !c.is_empty()))
        .unwrap();
    let id = product["id"].as_str().unwrap().to_owned();
    let category = product["categoryIDs"][0].as_str().unwrap().to_owned();
    let sinks = connector::app::sinks(&h.settings, &support::env, None).unwrap();
    sinks["us"].delete_category(&category).await.unwrap();
    h.ct.update_product(&id, |p| {
        for side in ["current", "staged"] {
            p["masterData"][side]["name"]["en-US"] = json!("Changed");
        }
    });
    let runs = h
        .engine()
        .run(
            &CatalogOptions {
                full: false,
                store: Some("us".into()),
            },
            &|_| {},
        )
        .await
        .unwrap();
    assert_eq!(run(&runs, "us", "products").stats.rejected, 1);
    let rejected = h
        .state()
        .list_rejected(&RejectedFilter {
            entity: Some("products".into()),
            route: Some("us".into()),
            open_only: true,
            limit: 100,
        })
        .await
        .unwrap();
    let r = rejected
        .iter()
        .find(|r| r.ct_id == id)
        .expect("the refused product is listed");
    assert!(
        r.field
            .as_deref()
            .unwrap_or_default()
            .starts_with("categoryIDs"),
        "{r:?}"
    );
    assert!(r.reason.contains("400"), "{}", r.reason);
    assert!(
        r.payload.as_ref().is_some_and(|p| p["id"] == id.as_str()),
        "the refused body is kept"
    );

    // A full run re-creates the category and re-sends the product; the rejection resolves.
    h.engine()
        .run(
            &CatalogOptions {
                full: true,
                store: Some("us".into()),
            },
            &|_| {},
        )
        .await
        .unwrap();
    assert_eq!(h.omnisend.product(US_KEY, &id).unwrap()["title"], "Changed");
    assert!(
        h.omnisend
            .categories(US_KEY)
            .iter()
            .any(|c| c["categoryID"] == category.as_str())
    );
    assert!(
        h.state()
            .rejected(r.id)
            .await
            .unwrap()
            .unwrap()
            .resolved_at
            .is_some()
    );
}

#[tokio::test]
async fn a_refused_request_ends_the_run_instead_of_rejecting_every_record() {
    let h = Harness::start(40).await;
    // A base URL without `/api`: every request is answered 404, whatever the body.
    let mut settings = h.settings.clone();
    settings.omnisend.api_url = h.omnisend.base_url().trim_end_matches("/api").to_owned();
    let err = h
        .engine_with(&settings)
        .run(&CatalogOptions::default(), &|_| {})
        .await
        .unwrap_err();
    assert!(err.to_string().contains("404"), "{err}");
    let rejected = h
        .state()
        .list_rejected(&RejectedFilter {
            open_only: true,
            ..RejectedFilter::default()
        })
        .await
        .unwrap();
    assert!(
        rejected.is_empty(),
        "no record is blamed for a bad endpoint: {rejected:?}"
    );
    assert!(h.state().cursors().await.unwrap().is_empty());
    let batch_posts = h
        .omnisend
        .requests()
        .iter()
        .filter(|r| r.method == "POST")
        .count();
    assert!(
        batch_posts <= 1,
        "no splitting into single items: {batch_posts} posts"
    );
}

#[tokio::test]
async fn a_product_that_becomes_unmappable_leaves_the_brand_until_it_is_fixed() {
    let h = Harness::start(60).await;
    h.sync(false).await;
    let id = h.omnisend.products(EU_KEY)[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let saved = h.ct.product(&id).unwrap();
    // The EUR prices go away: the eu brand must stop advertising the old one.
    h.ct.update_product(&id, |p| {
        for side in ["current", "staged"] {
            let data = &mut p["masterData"][side];
            let variants = std::iter::once(data["masterVariant"].clone())
                .chain(data["variants"].as_array().unwrap().iter().cloned())
                .map(|mut v| {
                    v["prices"]
                        .as_array_mut()
                        .unwrap()
                        .retain(|pr| pr["value"]["currencyCode"] != "EUR");
                    v
                })
                .collect::<Vec<_>>();
            data["masterVariant"] = variants[0].clone();
            data["variants"] = json!(variants[1..].to_vec());
        }
    });
    let runs = h.sync(false).await;
    assert_eq!(run(&runs, "eu", "products").stats.rejected, 1);
    assert_eq!(run(&runs, "eu", "products").stats.deleted, 1);
    assert!(
        h.omnisend.product(EU_KEY, &id).is_none(),
        "stale copy removed"
    );
    assert!(
        h.omnisend.product(US_KEY, &id).is_some(),
        "the other brand is not affected"
    );

    // Restored: created again, and the rejection resolves.
    h.ct.update_product(&id, |p| p["masterData"] = saved["masterData"].clone());
    let runs = h.sync(false).await;
    assert_eq!(run(&runs, "eu", "products").stats.created, 1);
    assert!(h.omnisend.product(EU_KEY, &id).is_some());
    let open = h
        .state()
        .list_rejected(&RejectedFilter {
            route: Some("eu".into()),
            open_only: true,
            ..RejectedFilter::default()
        })
        .await
        .unwrap();
    assert!(
        open.iter().all(|r| r.ct_id != id),
        "resolved once sent again"
    );
    assert_catalog_is_exact(&h);
}

#[tokio::test]
async fn a_scheduled_price_reaches_omnisend_when_it_starts_without_any_change_in_commercetools() {
    let h = Harness::start(30).await;
    let start = time::OffsetDateTime::now_utc();
    let now = std::sync::Arc::new(std::sync::Mutex::new(start));
    let clock: connector::sync::catalog::Clock = {
        let now = now.clone();
        std::sync::Arc::new(move || *now.lock().unwrap())
    };
    // No overlap window: the product must come back through its due price change, not because a
    // delta re-reads the last minute.
    let settings = h.settings_with_catalog("delta_overlap_secs = 0");
    let engine = || h.engine_with(&settings).with_clock(clock.clone());
    engine()
        .run(&CatalogOptions::default(), &|_| {})
        .await
        .unwrap();

    // A sale on one product starts tomorrow and ends in three days.
    let id = h.omnisend.products(US_KEY)[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let fmt = |t: time::OffsetDateTime| {
        t.format(&time::format_description::well_known::Rfc3339)
            .unwrap()
    };
    let (from, until) = (
        fmt(start + time::Duration::days(1)),
        fmt(start + time::Duration::days(3)),
    );
    h.ct.update_product(&id, |p| {
        for side in ["current", "staged"] {
            p["masterData"][side]["masterVariant"]["prices"] = json!([
                {"id": "base", "value": {"type": "centPrecision", "currencyCode": "USD", "centAmount": 5000, "fractionDigits": 2}},
                {"id": "sale", "value": {"type": "centPrecision", "currencyCode": "USD", "centAmount": 3900, "fractionDigits": 2},
                 "validFrom": from, "validUntil": until}
            ]);
        }
    });
    engine()
        .run(&CatalogOptions::default(), &|_| {})
        .await
        .unwrap();
    assert_eq!(
        h.omnisend.product(US_KEY, &id).unwrap()["variants"][0]["price"],
        json!(50.0)
    );

    // Two days later nothing changed in commercetools, but the sale price is due.
    *now.lock().unwrap() = start + time::Duration::days(2);
    h.omnisend.clear_requests();
    let runs = engine()
        .run(&CatalogOptions::default(), &|_| {})
        .await
        .unwrap();
    let products = run(&runs, "us", "products");
    assert_eq!(products.mode, Mode::Delta);
    assert_eq!(
        (products.stats.seen, products.stats.updated),
        (1, 1),
        "only the due product is read and sent"
    );
    assert_eq!(
        h.omnisend.product(US_KEY, &id).unwrap()["variants"][0]["price"],
        json!(39.0)
    );

    // Nothing more is due until the sale ends; then the base price returns.
    h.omnisend.clear_requests();
    engine()
        .run(&CatalogOptions::default(), &|_| {})
        .await
        .unwrap();
    assert!(h.product_writes().is_empty());
    *now.lock().unwrap() = start + time::Duration::days(4);
    engine()
        .run(&CatalogOptions::default(), &|_| {})
        .await
        .unwrap();
    assert_eq!(
        h.omnisend.product(US_KEY, &id).unwrap()["variants"][0]["price"],
        json!(50.0)
    );
}
