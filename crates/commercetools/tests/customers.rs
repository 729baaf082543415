//! Customer, cart and order models: the official example payloads parse, and the keyset pager
//! works on the (in-store) customer, cart and order endpoints of the emulator.

use std::path::PathBuf;
use std::time::Duration;

use commercetools::models::{Cart, Customer, CustomerGroup, Order};
use commercetools::{CtClient, CtConfig, PageMode, Pager};
use emulators::customers::{
    CustomerSpec, EMAIL_CONSENT, customer_id, customer_stores, generate_customers,
};
use emulators::seed::{CatalogSpec, generate_catalog};
use emulators::{CtEmulator, CtEmulatorConfig};
use serde::de::DeserializeOwned;
use time::macros::datetime;

/// `<workspace>/../shared/examples/commercetools`, or `None` (after printing one line) when absent.
fn examples_dir() -> Option<PathBuf> {
    let dir =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/examples/commercetools");
    if dir.is_dir() {
        Some(dir)
    } else {
        println!("skipped: ../shared/examples not found");
        None
    }
}

fn example<T: DeserializeOwned>(dir: &std::path::Path, file: &str) -> T {
    let text = std::fs::read_to_string(dir.join(file)).unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{file}: {e}"))
}

#[test]
fn official_customer_cart_and_order_examples_parse() {
    let Some(dir) = examples_dir() else {
        return;
    };
    let c: Customer = example(&dir, "customer.api-reference.json");
    assert_eq!(c.id, "3cdcdcc8-80c5-41bb-abb5-ac8772c9cc24");
    assert_eq!(c.email, "johndoe@example.com");
    assert_eq!(c.first_name.as_deref(), Some("John"));
    assert_eq!(c.last_modified_at, datetime!(2022-09-19 14:34:35.843 UTC));
    assert!(c.addresses.is_empty() && c.stores.is_empty() && !c.is_email_verified);
    assert!(c.default_shipping_address().is_none());
    assert!(c.custom.is_none());

    let cart: Cart = example(&dir, "cart.api-reference.json");
    assert_eq!(cart.cart_state.as_deref(), Some("Active"));
    assert!(cart.customer_email.is_none() && cart.store.is_none());
    let b2b: Cart = example(&dir, "cart-with-line-items.api-reference.json");
    assert!(!b2b.id.is_empty());

    let order: Order = example(&dir, "order.api-reference.json");
    assert_eq!(order.order_state.as_deref(), Some("Open"));
    assert_eq!(
        order.customer_id.as_deref(),
        Some("7297c742-d8b0-484b-aadc-1d0ba6769dc9")
    );
    assert!(order.order_number.is_none());
}

#[test]
fn generated_customers_parse_with_addresses_and_custom_fields() {
    let data = generate_customers(&CustomerSpec {
        customers: 50,
        ..CustomerSpec::default()
    });
    for (n, v) in data.customers.iter().enumerate() {
        let c: Customer = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(c.id, customer_id(1, n));
        let shipping = c.default_shipping_address().unwrap();
        let billing = c.default_billing_address().unwrap();
        assert_eq!(shipping.id.as_deref(), Some(format!("s{n}").as_str()));
        assert_eq!(billing.id.as_deref(), Some(format!("b{n}").as_str()));
        assert_eq!(shipping.country, billing.country);
        let custom = c.custom.as_ref().unwrap();
        assert_eq!(custom.type_.type_id, "type");
        assert_eq!(
            custom.get(EMAIL_CONSENT).is_some(),
            n % 5 != 2,
            "customer {n}"
        );
    }
    for v in &data.customer_groups {
        serde_json::from_value::<CustomerGroup>(v.clone()).unwrap();
    }
    for v in &data.carts {
        serde_json::from_value::<Cart>(v.clone()).unwrap();
    }
    for v in &data.orders {
        let o: Order = serde_json::from_value(v.clone()).unwrap();
        assert!(o.customer_id.is_none());
        assert_eq!(
            o.billing_address.unwrap().city.as_deref(),
            Some("Guesttown")
        );
    }
}

async fn emulator(customers: usize) -> CtEmulator {
    let emu = CtEmulator::start(CtEmulatorConfig::default())
        .await
        .unwrap();
    emu.seed(&generate_catalog(&CatalogSpec {
        products: 1,
        categories: 1,
        seed: 7,
    }));
    emu.seed_customers(&generate_customers(&CustomerSpec {
        customers,
        seed: 7,
        stores: vec!["us".into(), "eu".into()],
        guest_orders: 40,
        guest_carts: 40,
    }));
    emu
}

fn client(emu: &CtEmulator) -> CtClient {
    let d = CtEmulatorConfig::default();
    let config = CtConfig::new(
        emu.project_key(),
        emu.api_url(),
        emu.auth_url(),
        d.client_id,
        d.client_secret,
    );
    CtClient::new_with_backoff(config, Duration::from_millis(1), Duration::from_millis(5)).unwrap()
}

async fn drain<T: commercetools::Keyed + DeserializeOwned>(pager: &mut Pager<T>) -> Vec<T> {
    let mut all = Vec::new();
    while let Some(page) = pager.next_page().await.unwrap() {
        all.extend(page);
    }
    all
}

#[tokio::test]
async fn pager_walks_in_store_customers_in_full_and_delta_mode() {
    let emu = emulator(230).await;
    let ct = client(&emu);
    let stores = ["us".to_owned(), "eu".to_owned()];
    let mut expected: Vec<String> = (0..230)
        .filter(|n| customer_stores(*n, &stores).contains(&stores[1]))
        .map(|n| customer_id(7, n))
        .collect();
    expected.sort();

    let mut full = ct.pager::<Customer>(
        "in-store/key=eu/customers",
        PageMode::Full { after_id: None },
        20,
        Vec::new(),
    );
    let got: Vec<String> = drain(&mut full).await.into_iter().map(|c| c.id).collect();
    assert_eq!(got, expected);
    assert!(full.pages_fetched() > 1);

    // customer n was last modified at 2026-01-01T00:00:00Z + n s
    let mut delta = ct.pager::<Customer>(
        "/in-store/key=eu/customers",
        PageMode::Delta {
            since: datetime!(2026-01-01 00:03:19 UTC),
            after: None,
        },
        7,
        Vec::new(),
    );
    let got: Vec<String> = drain(&mut delta).await.into_iter().map(|c| c.id).collect();
    let newer: Vec<String> = (200..230)
        .filter(|n| customer_stores(*n, &stores).contains(&stores[1]))
        .map(|n| customer_id(7, n))
        .collect();
    assert_eq!(got, newer);
}

#[tokio::test]
async fn all_reads_customer_groups_carts_and_orders() {
    let emu = emulator(10).await;
    let ct = client(&emu);
    let groups: Vec<CustomerGroup> = ct.all("customer-groups").await.unwrap();
    assert_eq!(groups.len(), 2);
    let carts: Vec<Cart> = ct.all("in-store/key=us/carts").await.unwrap();
    assert_eq!(carts.len(), 20);
    assert!(carts.iter().all(|c| c.store.as_ref().unwrap().key == "us"));
    let orders: Vec<Order> = ct.all("orders").await.unwrap();
    assert_eq!(orders.len(), 40);
    let err = ct
        .all::<Customer>("in-store/key=mars/customers")
        .await
        .unwrap_err();
    assert!(
        matches!(err, commercetools::CtError::Api { status: 404, .. }),
        "{err:?}"
    );
}
