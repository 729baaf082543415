//! The commercetools emulator's order and cart lifecycle (issue 4, real-time events): recorded
//! messages, versions, the discount-code resource, lookups by id, and the notify builders fed
//! with recorded messages.

use emulators::customers::{CustomerSpec, generate_customers};
use emulators::notify;
use emulators::orders::{self, CartSpec, LineSpec, OrderSpec};
use emulators::seed::{CatalogSpec, generate_catalog};
use emulators::{CtEmulator, CtEmulatorConfig};
use serde_json::{Value, json};

async fn emulator() -> CtEmulator {
    let ct = CtEmulator::start(CtEmulatorConfig::default())
        .await
        .unwrap();
    ct.seed(&generate_catalog(&CatalogSpec {
        products: 3,
        categories: 3,
        seed: 7,
    }));
    ct
}

async fn token(ct: &CtEmulator, http: &reqwest::Client) -> String {
    let body: Value = http
        .post(format!("{}/oauth/token", ct.auth_url()))
        .basic_auth("demo-client", Some("demo-secret"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["access_token"].as_str().unwrap().to_owned()
}

async fn get(ct: &CtEmulator, path: &str, query: &[(&str, &str)]) -> (u16, Value) {
    let http = reqwest::Client::new();
    let token = token(ct, &http).await;
    let resp = http
        .get(format!("{}/demo-project{path}", ct.api_url()))
        .bearer_auth(token)
        .query(query)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

fn eu_order(n: usize) -> OrderSpec {
    OrderSpec {
        store_key: Some("eu".into()),
        ..OrderSpec::sample(n, "EUR")
    }
}

fn messages_of(ct: &CtEmulator, order_id: &str) -> Vec<Value> {
    ct.messages()
        .into_iter()
        .filter(|m| m["resource"]["id"] == order_id)
        .collect()
}

#[tokio::test]
async fn create_order_records_order_created_with_sequence_number_one() {
    let ct = emulator().await;
    let order = orders::order(&eu_order(1));
    let m = ct.create_order(order.clone());
    assert_eq!(m["type"], "OrderCreated");
    assert_eq!(m["sequenceNumber"], 1);
    assert_eq!(m["resourceVersion"], 1);
    assert_eq!(m["version"], 1);
    assert_eq!(m["resource"], json!({"typeId": "order", "id": order["id"]}));
    assert_eq!(
        m["resourceUserProvidedIdentifiers"],
        json!({"orderNumber": "ORD-00001"})
    );
    assert_eq!(m["order"]["id"], order["id"]);
    assert_eq!(m["order"]["totalPrice"], order["totalPrice"]);
    assert_eq!(m["createdAt"], order["lastModifiedAt"]);
    assert!(uuid::Uuid::parse_str(m["id"].as_str().unwrap()).is_ok());
    let stored = ct.order(order["id"].as_str().unwrap()).unwrap();
    assert_eq!(stored["version"], 1);
    assert_eq!(stored["lastMessageSequenceNumber"], 1);
    assert_eq!(ct.messages(), vec![m]);
}

#[tokio::test]
async fn import_order_records_order_imported() {
    let ct = emulator().await;
    let m = ct.import_order(orders::order(&eu_order(2)));
    assert_eq!(m["type"], "OrderImported");
    assert_eq!(m["sequenceNumber"], 1);
    assert!(m["order"].is_object());
}

#[tokio::test]
async fn payment_state_change_records_the_next_sequence_number() {
    let ct = emulator().await;
    let order = orders::order(&eu_order(1));
    let id = order["id"].as_str().unwrap().to_owned();
    ct.create_order(order);
    let m = ct.change_payment_state(&id, "Paid");
    assert_eq!(m["type"], "OrderPaymentStateChanged");
    assert_eq!(m["sequenceNumber"], 2);
    assert_eq!(m["resourceVersion"], 2);
    assert_eq!(m["paymentState"], "Paid");
    assert_eq!(m["oldPaymentState"], "Pending");
    let stored = ct.order(&id).unwrap();
    assert_eq!(stored["paymentState"], "Paid");
    assert_eq!(stored["version"], 2);
    assert_eq!(stored["lastModifiedAt"], m["createdAt"]);
    assert!(
        stored["lastModifiedAt"].as_str().unwrap() > "2026-03-01T10:00:00.000Z",
        "lastModifiedAt moves forward"
    );
}

#[tokio::test]
async fn sequence_numbers_are_consecutive_per_order_and_versions_bump() {
    let ct = emulator().await;
    let a = orders::order(&eu_order(1));
    let b = orders::order(&eu_order(2));
    let (ia, ib) = (
        a["id"].as_str().unwrap().to_owned(),
        b["id"].as_str().unwrap().to_owned(),
    );
    ct.create_order(a);
    ct.create_order(b);
    ct.change_payment_state(&ia, "Paid");
    ct.change_order_state(&ib, "Confirmed");
    ct.change_shipment_state(&ia, "Shipped", &[("TRACK-1", "DHL"), ("TRACK-2", "UPS")]);
    ct.change_order_state(&ia, "Complete");

    let seqs = |id: &str| -> Vec<(i64, String, i64)> {
        messages_of(&ct, id)
            .iter()
            .map(|m| {
                (
                    m["sequenceNumber"].as_i64().unwrap(),
                    m["type"].as_str().unwrap().to_owned(),
                    m["resourceVersion"].as_i64().unwrap(),
                )
            })
            .collect()
    };
    assert_eq!(
        seqs(&ia),
        [
            (1, "OrderCreated".into(), 1),
            (2, "OrderPaymentStateChanged".into(), 2),
            (3, "DeliveryAdded".into(), 3),
            (4, "ParcelAddedToDelivery".into(), 3),
            (5, "ParcelAddedToDelivery".into(), 3),
            (6, "OrderShipmentStateChanged".into(), 3),
            (7, "OrderStateChanged".into(), 4),
        ]
    );
    assert_eq!(
        seqs(&ib),
        [
            (1, "OrderCreated".into(), 1),
            (2, "OrderStateChanged".into(), 2)
        ]
    );
    let stored = ct.order(&ia).unwrap();
    assert_eq!(stored["version"], 4);
    assert_eq!(stored["lastMessageSequenceNumber"], 7);
    assert_eq!(stored["orderState"], "Complete");
    // Message ids increase in recording order, so GET /messages (id order) is recording order.
    let ids: Vec<String> = ct
        .messages()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect();
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(ids, sorted);
    assert_eq!(ids.len(), 9);
}

#[tokio::test]
async fn shipment_state_change_adds_a_delivery_with_tracking_data() {
    let ct = emulator().await;
    let order = orders::order(&eu_order(1));
    let id = order["id"].as_str().unwrap().to_owned();
    ct.create_order(order);
    let m = ct.change_shipment_state(&id, "Shipped", &[("TRACK-1", "DHL")]);
    assert_eq!(m["type"], "OrderShipmentStateChanged");
    assert_eq!(m["shipmentState"], "Shipped");
    assert_eq!(m["oldShipmentState"], "Pending");
    let stored = ct.order(&id).unwrap();
    assert_eq!(stored["shipmentState"], "Shipped");
    let deliveries = stored["shippingInfo"]["deliveries"].as_array().unwrap();
    assert_eq!(deliveries.len(), 1);
    let parcel = &deliveries[0]["parcels"][0];
    assert_eq!(parcel["trackingData"]["trackingId"], "TRACK-1");
    assert_eq!(parcel["trackingData"]["carrier"], "DHL");
    assert_eq!(
        deliveries[0]["items"].as_array().unwrap().len(),
        stored["lineItems"].as_array().unwrap().len()
    );
    let all = messages_of(&ct, &id);
    let added = all.iter().find(|m| m["type"] == "DeliveryAdded").unwrap();
    assert_eq!(added["delivery"]["id"], deliveries[0]["id"]);
    assert_eq!(added["delivery"]["parcels"], json!([]));
    let parcel_msg = all
        .iter()
        .find(|m| m["type"] == "ParcelAddedToDelivery")
        .unwrap();
    assert_eq!(parcel_msg["parcel"], *parcel);

    // Without parcels only the state changes.
    let m = ct.change_shipment_state(&id, "Delivered", &[]);
    assert_eq!(m["oldShipmentState"], "Shipped");
    assert_eq!(m["sequenceNumber"], 5);
    assert_eq!(
        ct.order(&id).unwrap()["shippingInfo"]["deliveries"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn order_state_change_records_old_and_new_state() {
    let ct = emulator().await;
    let order = orders::order(&eu_order(1));
    let id = order["id"].as_str().unwrap().to_owned();
    ct.create_order(order);
    let m = ct.change_order_state(&id, "Cancelled");
    assert_eq!(m["type"], "OrderStateChanged");
    assert_eq!(m["orderState"], "Cancelled");
    assert_eq!(m["oldOrderState"], "Open");
    assert_eq!(ct.order(&id).unwrap()["orderState"], "Cancelled");
}

#[tokio::test]
async fn return_info_and_refund_record_return_info_added_then_return_info_set() {
    let ct = emulator().await;
    let spec = eu_order(1);
    let order = orders::order(&spec);
    let id = order["id"].as_str().unwrap().to_owned();
    ct.create_order(order);
    let line = spec.lines[0].line_id.clone();
    let added = ct.add_return_info(&id, &[(&line, 1)]);
    assert_eq!(added["type"], "ReturnInfoAdded");
    assert_eq!(added["sequenceNumber"], 2);
    let item = &added["returnInfo"]["items"][0];
    assert_eq!(item["type"], "LineItemReturnItem");
    assert_eq!(item["lineItemId"], line);
    assert_eq!(item["quantity"], 1);
    assert_eq!(item["shipmentState"], "Returned");
    assert_eq!(item["paymentState"], "Initial");
    assert_eq!(added["returnInfo"]["returnDate"], item["createdAt"]);
    let return_item_id = item["id"].as_str().unwrap().to_owned();

    let set = ct.set_return_payment_state(&id, &return_item_id, "Refunded");
    assert_eq!(set["type"], "ReturnInfoSet");
    assert_eq!(set["sequenceNumber"], 3);
    assert_eq!(set["resourceVersion"], 3);
    assert_eq!(set["returnInfo"][0]["items"][0]["paymentState"], "Refunded");
    let stored = ct.order(&id).unwrap();
    assert_eq!(stored["returnInfo"], set["returnInfo"]);
    assert_eq!(stored["version"], 3);
}

#[tokio::test]
#[should_panic(expected = "no return item")]
async fn refund_of_an_unknown_return_item_panics_and_keeps_the_order() {
    let ct = emulator().await;
    let order = orders::order(&eu_order(1));
    let id = order["id"].as_str().unwrap().to_owned();
    ct.create_order(order);
    ct.set_return_payment_state(&id, "nope", "Refunded");
}

#[tokio::test]
async fn cart_operations_bump_versions_recompute_totals_and_record_no_messages() {
    let ct = emulator().await;
    let spec = CartSpec {
        store_key: Some("eu".into()),
        ..CartSpec::sample(1, "EUR")
    };
    let cart = orders::cart(&spec);
    let id = spec.id.clone();
    assert_eq!(ct.create_cart(cart), 1);

    let extra = LineSpec {
        quantity: 2,
        ..LineSpec::sample(3)
    };
    assert_eq!(ct.add_line_item(&id, orders::line_item(&extra, "EUR")), 2);
    let c = ct.cart(&id).unwrap();
    assert_eq!(c["lineItems"].as_array().unwrap().len(), 2);
    assert_eq!(c["lineItems"][1]["addedAt"], c["lastModifiedAt"]);
    assert_eq!(
        c["totalPrice"]["centAmount"],
        spec.lines[0].total_cents() + extra.total_cents()
    );
    assert_eq!(c["totalLineItemQuantity"], 3);
    assert_eq!(c["lineItems"][1]["taxRate"], c["lineItems"][0]["taxRate"]);

    // The same variant again merges into the existing line.
    assert_eq!(ct.add_line_item(&id, orders::line_item(&extra, "EUR")), 3);
    let c = ct.cart(&id).unwrap();
    assert_eq!(c["lineItems"].as_array().unwrap().len(), 2);
    assert_eq!(c["lineItems"][1]["quantity"], 4);

    assert_eq!(ct.change_line_item_quantity(&id, &extra.line_id, 1), 4);
    let c = ct.cart(&id).unwrap();
    assert_eq!(
        c["totalPrice"]["centAmount"],
        spec.lines[0].total_cents() + extra.unit_cents
    );
    let gross = c["taxedPrice"]["totalGross"]["centAmount"]
        .as_i64()
        .unwrap();
    let net = c["taxedPrice"]["totalNet"]["centAmount"].as_i64().unwrap();
    assert_eq!(gross, c["totalPrice"]["centAmount"].as_i64().unwrap());
    assert_eq!(net, orders::net_of_gross(gross, 1900));
    assert_eq!(
        c["taxedPrice"]["totalTax"]["centAmount"].as_i64().unwrap(),
        gross - net
    );

    assert_eq!(ct.change_line_item_quantity(&id, &extra.line_id, 0), 5);
    assert_eq!(
        ct.cart(&id).unwrap()["lineItems"].as_array().unwrap().len(),
        1
    );

    let address = json!({"country": "AT", "city": "Wien"});
    assert_eq!(ct.set_cart_shipping_address(&id, address.clone()), 6);
    assert_eq!(ct.set_cart_customer_email(&id, "new@example.com"), 7);
    let c = ct.cart(&id).unwrap();
    assert_eq!(c["shippingAddress"], address);
    assert_eq!(c["customerEmail"], "new@example.com");
    assert_eq!(c["version"], 7);
    assert!(ct.messages().is_empty());
}

#[tokio::test]
async fn orders_carts_discount_codes_customers_and_projections_are_found_by_id() {
    let ct = emulator().await;
    let spec = OrderSpec {
        order_discount: Some(("dc-1".into(), 300)),
        ..eu_order(1)
    };
    let order = orders::order(&spec);
    ct.create_order(order.clone());
    let cart = orders::cart(&CartSpec {
        store_key: Some("eu".into()),
        ..CartSpec::sample(1, "EUR")
    });
    ct.create_cart(cart.clone());
    ct.put_discount_code(orders::discount_code("dc-1", "SUMMER", &[("en", "Summer")]));
    let customer = generate_customers(&CustomerSpec {
        customers: 1,
        ..CustomerSpec::default()
    })
    .customers[0]
        .clone();
    ct.put_customer(customer.clone());
    let line = LineSpec {
        category_ids: vec!["cat-1".into()],
        ..spec.lines[0].clone()
    };
    ct.put_product(orders::product(&line, "EUR"));

    for (path, want) in [
        (format!("/orders/{}", spec.id), &order["id"]),
        (
            format!("/carts/{}", cart["id"].as_str().unwrap()),
            &cart["id"],
        ),
        ("/discount-codes/dc-1".to_owned(), &json!("dc-1")),
        (
            format!("/customers/{}", customer["id"].as_str().unwrap()),
            &customer["id"],
        ),
        (
            format!("/product-projections/{}", line.product_id),
            &json!(line.product_id),
        ),
        ("/orders/order-number=ORD-00001".to_owned(), &order["id"]),
        (format!("/in-store/key=eu/orders/{}", spec.id), &order["id"]),
        (
            format!("/in-store/key=eu/carts/{}", cart["id"].as_str().unwrap()),
            &cart["id"],
        ),
    ] {
        let (status, body) = get(&ct, &path, &[]).await;
        assert_eq!(status, 200, "{path}: {body}");
        assert_eq!(body["id"], *want, "{path}");
    }
    let (_, projection) = get(
        &ct,
        &format!("/product-projections/{}", line.product_id),
        &[],
    )
    .await;
    assert_eq!(projection["categories"][0]["id"], "cat-1");

    for path in [
        format!("/in-store/key=us/orders/{}", spec.id),
        format!("/in-store/key=us/carts/{}", cart["id"].as_str().unwrap()),
        "/orders/unknown-id".to_owned(),
        "/carts/unknown-id".to_owned(),
        "/discount-codes/unknown-id".to_owned(),
        "/customers/unknown-id".to_owned(),
        "/product-projections/unknown-id".to_owned(),
        "/orders/order-number=nope".to_owned(),
    ] {
        let (status, body) = get(&ct, &path, &[]).await;
        assert_eq!(status, 404, "{path}");
        assert_eq!(body["statusCode"], 404, "{path}");
        assert_eq!(body["errors"][0]["code"], "ResourceNotFound", "{path}");
        assert!(body["message"].as_str().unwrap().contains("was not found"));
    }

    let (status, page) = get(&ct, "/discount-codes", &[("where", "code = \"SUMMER\"")]).await;
    assert_eq!(status, 200);
    assert_eq!(page["results"][0]["id"], "dc-1");
    assert_eq!(page["count"], 1);
}

#[tokio::test]
async fn recorded_order_messages_are_queryable_over_http() {
    let ct = emulator().await;
    let order = orders::order(&eu_order(1));
    let id = order["id"].as_str().unwrap().to_owned();
    ct.create_order(order);
    ct.change_payment_state(&id, "Paid");
    let (status, page) = get(
        &ct,
        "/messages",
        &[
            (
                "where",
                &format!("resource(typeId = \"order\" and id = \"{id}\") and sequenceNumber > 1"),
            ),
            ("sort", "sequenceNumber asc"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["count"], 1);
    assert_eq!(page["results"][0]["type"], "OrderPaymentStateChanged");
    let (status, page) = get(
        &ct,
        "/messages",
        &[(
            "where",
            "type in (\"OrderCreated\", \"OrderPaymentStateChanged\")",
        )],
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(page["count"], 2);
}

#[tokio::test]
async fn recorded_messages_feed_the_subscription_builders() {
    let ct = emulator().await;
    let order = orders::order(&eu_order(1));
    let id = order["id"].as_str().unwrap().to_owned();
    ct.create_order(order);
    let m = ct.change_payment_state(&id, "Paid");
    let payload = notify::message_payload(&m, &ct.project_key());
    assert_eq!(payload["notificationType"], "Message");
    assert_eq!(payload["projectKey"], "demo-project");
    assert_eq!(payload["sequenceNumber"], 2);
    let ce = notify::cloud_event(&payload);
    assert_eq!(ce["sequence"], "2");
    assert_eq!(ce["source"], "/demo-project/orders");
    let push = notify::pubsub_push(&ce, "42");
    assert_eq!(push["message"]["messageId"], "42");
    let stored = ct.order(&id).unwrap();
    let updated = notify::with_identifiers(
        notify::resource_updated(
            "demo-project",
            "order",
            &id,
            2,
            1,
            stored["lastModifiedAt"].as_str().unwrap(),
        ),
        notify::user_provided_identifiers(&stored),
    );
    assert_eq!(
        updated["resourceUserProvidedIdentifiers"],
        json!({"orderNumber": "ORD-00001"})
    );
}
