//! A local commercetools HTTP API.
//!
//! One server answers both the auth API (`POST {auth_url}/oauth/token`) and the HTTP API
//! (`{api_url}/{projectKey}/...`). Resources are stored as JSON exactly as given; the product
//! projection endpoints derive projections from the stored `Product`s on the fly.
//!
//! Customers, carts and orders are also served under
//! `{api_url}/{projectKey}/in-store/key={storeKey}/{customers|carts|orders}[/{id}|/key={key}]`:
//! customers whose `stores` contain the store, carts and orders whose `store.key` is the store's
//! key. A store key unknown to the emulator (see [`CtEmulator::seed`]) answers 404
//! `ResourceNotFound`.
//!
//! Orders are also found by `{api_url}/{projectKey}/orders/order-number={orderNumber}`; discount
//! codes are served by `{api_url}/{projectKey}/discount-codes[/{id}]`. Unknown ids answer 404
//! `ResourceNotFound` with the commercetools error body.
//!
//! # Messages
//!
//! `GET /{projectKey}/messages` serves the messages the emulator records: `CustomerDeleted`
//! ([`CtEmulator::delete_customer`]) and the order lifecycle operations
//! ([`CtEmulator::create_order`], [`CtEmulator::change_payment_state`], …), which change the
//! stored order like the matching commercetools update action (new `version`, new
//! `lastModifiedAt`) and record the Message(s) commercetools emits: per-order consecutive
//! `sequenceNumber`s from 1 (the order's `lastMessageSequenceNumber`), `resourceVersion` = the
//! new version, `resourceUserProvidedIdentifiers {orderNumber}`. Message ids are UUID-shaped
//! and increase with every recorded message. Cart operations ([`CtEmulator::create_cart`],
//! [`CtEmulator::add_line_item`], …) record none: commercetools has no messages for them. Build
//! Subscription deliveries from recorded messages with [`crate::notify`].
//!
//! # Subscriptions
//!
//! `/{projectKey}/subscriptions` is writable: create, query, get by id or key, update by id or
//! key (`changeDestination`, `setMessages`, `setChanges`, `setKey`) with version checks, delete
//! with `?version=`; it needs the scope `manage_subscriptions` (or `manage_project`) in the
//! token. Details in the `subscriptions` module; [`CtEmulator::subscriptions`] shows what is
//! stored. Every other resource is read only over HTTP.
//!
//! Faults ([`Faults`]) apply to the authenticated API endpoints only, never to the token
//! endpoint (latency applies to both). Injected statuses: 429, 500, 502, 503 (`OverCapacity`).

mod handlers;
mod predicate;
mod query;
mod subscriptions;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::{Map, Value, json};
use time::OffsetDateTime;
use tokio::task::JoinHandle;

use crate::customers::CustomerData;
use crate::faults::{FaultInjector, Faults};
use crate::notify::user_provided_identifiers;
use crate::orders::{derived_id, recompute_totals, set_line_quantity};
use crate::seed::{self, CatalogData};
use crate::util::{format_ms, now_ms, parse_rfc3339};

/// Configuration of a [`CtEmulator`].
#[derive(Clone, Debug)]
pub struct CtEmulatorConfig {
    /// The project key (first path segment of every API call).
    pub project_key: String,
    /// The API client id accepted by the token endpoint.
    pub client_id: String,
    /// The API client secret accepted by the token endpoint.
    pub client_secret: String,
    /// Lifetime of issued tokens in seconds (`expires_in`), default 172 800 (48 h).
    pub token_ttl_secs: u64,
    /// Faults injected from the start.
    pub faults: Faults,
}

impl Default for CtEmulatorConfig {
    fn default() -> Self {
        Self {
            project_key: "demo-project".into(),
            client_id: "demo-client".into(),
            client_secret: "demo-secret".into(),
            token_ttl_secs: 172_800,
            faults: Faults::default(),
        }
    }
}

/// An issued access token.
#[derive(Debug)]
pub(crate) struct Token {
    pub expires: tokio::time::Instant,
    /// The granted scopes, space-separated (`manage_project:{projectKey}` unless the request
    /// asked for others).
    pub scope: String,
}

/// Everything the emulator stores, behind one mutex.
#[derive(Debug)]
pub(crate) struct CtState {
    pub project_key: String,
    pub client_id: String,
    pub client_secret: String,
    pub token_ttl_secs: u64,
    pub project: Value,
    pub tokens: HashMap<String, Token>,
    pub products: BTreeMap<String, Value>,
    pub categories: BTreeMap<String, Value>,
    pub stores: BTreeMap<String, Value>,
    pub channels: BTreeMap<String, Value>,
    pub product_types: BTreeMap<String, Value>,
    pub customers: BTreeMap<String, Value>,
    pub customer_groups: BTreeMap<String, Value>,
    pub types: BTreeMap<String, Value>,
    /// Messages (`GET /messages`), recorded by `delete_customer` and the order lifecycle
    /// operations.
    pub messages: BTreeMap<String, Value>,
    pub carts: BTreeMap<String, Value>,
    pub orders: BTreeMap<String, Value>,
    pub discount_codes: BTreeMap<String, Value>,
    /// Subscriptions by id, as stored (secrets unmasked).
    pub subscriptions: BTreeMap<String, Value>,
    pub faults: FaultInjector,
    pub request_count: u64,
    last_stamp: Option<OffsetDateTime>,
}

pub(crate) type Shared = Arc<Mutex<CtState>>;

/// The collections whose resources can be edited through [`CtEmulator`].
#[derive(Clone, Copy, Debug)]
enum Editable {
    Products,
    Customers,
    Carts,
    Orders,
}

pub(crate) fn lock(shared: &Shared) -> MutexGuard<'_, CtState> {
    shared.lock().unwrap_or_else(|e| e.into_inner())
}

impl CtState {
    /// A fresh `lastModifiedAt`: now (ms precision), but strictly after every stamp handed out
    /// before and after `not_before`.
    fn next_stamp(&mut self, not_before: Option<&Value>) -> String {
        let mut t = now_ms();
        let floor = [
            self.last_stamp,
            not_before.and_then(Value::as_str).and_then(parse_rfc3339),
        ];
        for f in floor.into_iter().flatten() {
            if t <= f {
                t = f + time::Duration::milliseconds(1);
            }
        }
        self.last_stamp = Some(t);
        format_ms(t)
    }

    fn editable(&mut self, which: Editable) -> &mut BTreeMap<String, Value> {
        match which {
            Editable::Products => &mut self.products,
            Editable::Customers => &mut self.customers,
            Editable::Carts => &mut self.carts,
            Editable::Orders => &mut self.orders,
        }
    }

    /// Applies `f` to a stored resource and bumps `version` and `lastModifiedAt`. Unknown ids
    /// are ignored.
    fn touch(&mut self, which: Editable, id: &str, f: impl FnOnce(&mut Value)) {
        let Some(mut v) = self.editable(which).remove(id) else {
            return;
        };
        f(&mut v);
        let version = v["version"].as_u64().unwrap_or(0) + 1;
        v["version"] = json!(version);
        let stamp = self.next_stamp(v.get("lastModifiedAt"));
        v["lastModifiedAt"] = json!(stamp);
        self.editable(which).insert(id.to_owned(), v);
    }

    /// Applies `f` to a stored product and bumps `version` and `lastModifiedAt`.
    fn touch_product(&mut self, id: &str, f: impl FnOnce(&mut Value)) {
        self.touch(Editable::Products, id, f);
    }

    /// The id of the next recorded message: UUID-shaped and increasing with every message, so
    /// the id order of `messages` is the recording order.
    fn next_message_id(&self) -> String {
        let n = self.messages.len() as u64;
        uuid::Uuid::from_u64_pair(0x6d65_7373_6167_6500, n + 1).to_string()
    }

    /// Records a `Message` with sequence number `seq` about `order`, which already has its new
    /// `version` and `lastModifiedAt` (they become `resourceVersion` and `createdAt`).
    fn push_order_message(
        &mut self,
        order: &Value,
        seq: i64,
        kind: &str,
        payload: Map<String, Value>,
    ) -> Value {
        let id = self.next_message_id();
        let by = json!({"clientId": self.client_id, "isPlatformClient": false});
        let stamp = order["lastModifiedAt"].clone();
        let mut m = Map::new();
        m.insert("id".into(), json!(id));
        m.insert("version".into(), json!(1));
        m.insert("sequenceNumber".into(), json!(seq));
        m.insert(
            "resource".into(),
            json!({"typeId": "order", "id": order["id"]}),
        );
        m.insert("resourceVersion".into(), order["version"].clone());
        m.insert(
            "resourceUserProvidedIdentifiers".into(),
            user_provided_identifiers(order),
        );
        m.insert("type".into(), json!(kind));
        m.extend(payload);
        m.insert("createdAt".into(), stamp.clone());
        m.insert("lastModifiedAt".into(), stamp);
        m.insert("lastModifiedBy".into(), by.clone());
        m.insert("createdBy".into(), by);
        let m = Value::Object(m);
        self.messages.insert(id, m.clone());
        m
    }

    /// Inserts `v` into `which` under its `id` (ignored without a string `id`).
    fn put(&mut self, which: Editable, v: Value) {
        if let Some(id) = v.get("id").and_then(Value::as_str) {
            let id = id.to_owned();
            self.editable(which).insert(id, v);
        }
    }
}

/// A running local commercetools. Shuts down when dropped.
#[derive(Debug)]
pub struct CtEmulator {
    shared: Shared,
    addr: SocketAddr,
    task: JoinHandle<()>,
}

fn by_id(items: &[Value]) -> BTreeMap<String, Value> {
    items
        .iter()
        .filter_map(|v| Some((v.get("id")?.as_str()?.to_owned(), v.clone())))
        .collect()
}

impl CtEmulator {
    /// Starts the server on `127.0.0.1:0`.
    pub async fn start(cfg: CtEmulatorConfig) -> std::io::Result<CtEmulator> {
        let state = CtState {
            project: seed::project_json(&cfg.project_key),
            project_key: cfg.project_key,
            client_id: cfg.client_id,
            client_secret: cfg.client_secret,
            token_ttl_secs: cfg.token_ttl_secs,
            tokens: HashMap::new(),
            products: BTreeMap::new(),
            categories: BTreeMap::new(),
            stores: BTreeMap::new(),
            channels: BTreeMap::new(),
            product_types: BTreeMap::new(),
            customers: BTreeMap::new(),
            customer_groups: BTreeMap::new(),
            messages: BTreeMap::new(),
            types: BTreeMap::new(),
            carts: BTreeMap::new(),
            orders: BTreeMap::new(),
            discount_codes: BTreeMap::new(),
            subscriptions: BTreeMap::new(),
            faults: FaultInjector::new(cfg.faults),
            request_count: 0,
            last_stamp: None,
        };
        let shared: Shared = Arc::new(Mutex::new(state));
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let app = handlers::router(shared.clone());
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "commercetools emulator stopped");
            }
        });
        Ok(CtEmulator { shared, addr, task })
    }

    /// The server's base URL, e.g. `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The API base URL (`{api_url}/{projectKey}/...`).
    pub fn api_url(&self) -> String {
        self.base_url()
    }

    /// The auth base URL (`{auth_url}/oauth/token`).
    pub fn auth_url(&self) -> String {
        self.base_url()
    }

    /// The configured project key.
    pub fn project_key(&self) -> String {
        lock(&self.shared).project_key.clone()
    }

    /// Loads stores, channels, product types, categories and products (replacing same ids).
    pub fn seed(&self, data: &CatalogData) {
        let mut s = lock(&self.shared);
        s.stores.extend(by_id(&data.stores));
        s.channels.extend(by_id(&data.channels));
        s.product_types.extend(by_id(&data.product_types));
        s.categories.extend(by_id(&data.categories));
        s.products.extend(by_id(&data.products));
    }

    /// Inserts or replaces a full `Product` (with `masterData`) exactly as given.
    pub fn put_product(&self, product: Value) {
        if let Some(id) = product.get("id").and_then(Value::as_str) {
            let id = id.to_owned();
            lock(&self.shared).products.insert(id, product);
        }
    }

    /// Inserts or replaces a `Category` exactly as given.
    pub fn put_category(&self, category: Value) {
        if let Some(id) = category.get("id").and_then(Value::as_str) {
            let id = id.to_owned();
            lock(&self.shared).categories.insert(id, category);
        }
    }

    /// Edits a stored product (a published change: no staged changes remain).
    ///
    /// The closure receives the whole stored `Product`. If it changed only one of
    /// `masterData.current` / `masterData.staged`, that side is mirrored into the other, so edits
    /// of `current` alone become visible in both projections. Afterwards `version` is incremented
    /// and `lastModifiedAt` set to now (strictly increasing, ms precision). Unknown ids are ignored.
    pub fn update_product(&self, id: &str, f: impl FnOnce(&mut Value)) {
        lock(&self.shared).touch_product(id, |p| {
            let before_current = p["masterData"]["current"].clone();
            let before_staged = p["masterData"]["staged"].clone();
            f(p);
            let current_changed = p["masterData"]["current"] != before_current;
            let staged_changed = p["masterData"]["staged"] != before_staged;
            if current_changed && !staged_changed {
                p["masterData"]["staged"] = p["masterData"]["current"].clone();
            } else if staged_changed && !current_changed {
                p["masterData"]["current"] = p["masterData"]["staged"].clone();
            }
        });
    }

    /// Sets `masterData.published = false` (bumps version and `lastModifiedAt`).
    pub fn unpublish_product(&self, id: &str) {
        lock(&self.shared).touch_product(id, |p| {
            p["masterData"]["published"] = json!(false);
        });
    }

    /// Publishes a product: staged becomes current, `published = true`, no staged changes.
    pub fn publish_product(&self, id: &str) {
        lock(&self.shared).touch_product(id, |p| {
            let staged = p["masterData"]["staged"].clone();
            if !staged.is_null() {
                p["masterData"]["current"] = staged;
            }
            p["masterData"]["published"] = json!(true);
            p["masterData"]["hasStagedChanges"] = json!(false);
        });
    }

    /// Deletes a product.
    pub fn delete_product(&self, id: &str) {
        lock(&self.shared).products.remove(id);
    }

    /// The stored `Product`.
    pub fn product(&self, id: &str) -> Option<Value> {
        lock(&self.shared).products.get(id).cloned()
    }

    /// Number of stored products.
    pub fn product_count(&self) -> usize {
        lock(&self.shared).products.len()
    }

    /// Loads customer groups, types, customers, carts and orders (replacing same ids). Stores
    /// are not created: the in-store endpoints serve only stores loaded by [`CtEmulator::seed`]
    /// (the generated catalog has `us` and `eu`).
    pub fn seed_customers(&self, data: &CustomerData) {
        let mut s = lock(&self.shared);
        s.customer_groups.extend(by_id(&data.customer_groups));
        s.types.extend(by_id(&data.types));
        s.customers.extend(by_id(&data.customers));
        s.carts.extend(by_id(&data.carts));
        s.orders.extend(by_id(&data.orders));
    }

    /// Inserts or replaces a `Customer` exactly as given (ignored without a string `id`).
    pub fn put_customer(&self, customer: Value) {
        lock(&self.shared).put(Editable::Customers, customer);
    }

    /// Edits a stored customer: applies `f` to the stored JSON, then increments `version` and
    /// sets `lastModifiedAt` to now (strictly increasing, ms precision), like
    /// [`CtEmulator::update_product`]. Unknown ids are ignored.
    pub fn update_customer(&self, id: &str, f: impl FnOnce(&mut Value)) {
        lock(&self.shared).touch(Editable::Customers, id, f);
    }

    /// Deletes a customer and records a `CustomerDeleted` message, as a project with messages
    /// enabled does.
    pub fn delete_customer(&self, id: &str) {
        let mut s = lock(&self.shared);
        let Some(customer) = s.customers.remove(id) else {
            return;
        };
        let stamp = s.next_stamp(None);
        let message_id = s.next_message_id();
        let version = customer["version"].as_i64().unwrap_or(1) + 1;
        s.messages.insert(
            message_id.clone(),
            json!({
                "id": message_id, "version": 1, "sequenceNumber": version,
                "resource": {"typeId": "customer", "id": id},
                "resourceVersion": version, "type": "CustomerDeleted",
                "createdAt": stamp, "lastModifiedAt": stamp,
            }),
        );
    }

    /// Recorded messages.
    pub fn messages(&self) -> Vec<Value> {
        lock(&self.shared).messages.values().cloned().collect()
    }

    /// The stored `Customer`.
    pub fn customer(&self, id: &str) -> Option<Value> {
        lock(&self.shared).customers.get(id).cloned()
    }

    /// Number of stored customers.
    pub fn customer_count(&self) -> usize {
        lock(&self.shared).customers.len()
    }

    /// Inserts or replaces an `Order` exactly as given (ignored without a string `id`).
    pub fn put_order(&self, order: Value) {
        lock(&self.shared).put(Editable::Orders, order);
    }

    /// Edits a stored order like [`CtEmulator::update_customer`] (bumps `version` and
    /// `lastModifiedAt`). Unknown ids are ignored.
    pub fn update_order(&self, id: &str, f: impl FnOnce(&mut Value)) {
        lock(&self.shared).touch(Editable::Orders, id, f);
    }

    /// The stored `Order`.
    pub fn order(&self, id: &str) -> Option<Value> {
        lock(&self.shared).orders.get(id).cloned()
    }

    /// Inserts or replaces a `Cart` exactly as given (ignored without a string `id`).
    pub fn put_cart(&self, cart: Value) {
        lock(&self.shared).put(Editable::Carts, cart);
    }

    /// Edits a stored cart like [`CtEmulator::update_customer`] (bumps `version` and
    /// `lastModifiedAt`). Unknown ids are ignored.
    pub fn update_cart(&self, id: &str, f: impl FnOnce(&mut Value)) {
        lock(&self.shared).touch(Editable::Carts, id, f);
    }

    /// The stored `Cart`.
    pub fn cart(&self, id: &str) -> Option<Value> {
        lock(&self.shared).carts.get(id).cloned()
    }

    /// Inserts or replaces a `DiscountCode` exactly as given (ignored without a string `id`);
    /// served by `GET /{projectKey}/discount-codes[/{id}]`. See
    /// [`orders::discount_code`](crate::orders::discount_code).
    pub fn put_discount_code(&self, code: Value) {
        if let Some(id) = code.get("id").and_then(Value::as_str) {
            let id = id.to_owned();
            lock(&self.shared).discount_codes.insert(id, code);
        }
    }

    /// The stored `DiscountCode`.
    pub fn discount_code(&self, id: &str) -> Option<Value> {
        lock(&self.shared).discount_codes.get(id).cloned()
    }

    // ------------------------------------------------------------ order lifecycle

    /// Stores a new order and records its creation message `kind` (`OrderCreated` /
    /// `OrderImported`) with the stored order embedded as `order`.
    fn insert_order(&self, mut order: Value, kind: &str) -> Value {
        let result = {
            let mut s = lock(&self.shared);
            match order.get("id").and_then(Value::as_str).map(str::to_owned) {
                None => Err("the order has no string id".to_owned()),
                Some(id) if s.orders.contains_key(&id) => {
                    Err(format!("an order with id '{id}' already exists"))
                }
                Some(id) => {
                    if order.get("version").is_none_or(Value::is_null) {
                        order["version"] = json!(1);
                    }
                    if order.get("lastModifiedAt").is_none_or(Value::is_null) {
                        let stamp = s.next_stamp(order.get("createdAt"));
                        order["lastModifiedAt"] = json!(stamp);
                    }
                    if order.get("createdAt").is_none_or(Value::is_null) {
                        order["createdAt"] = order["lastModifiedAt"].clone();
                    }
                    order["lastMessageSequenceNumber"] = json!(1);
                    let mut payload = Map::new();
                    payload.insert("order".into(), order.clone());
                    let message = s.push_order_message(&order, 1, kind, payload);
                    s.orders.insert(id, order);
                    Ok(message)
                }
            }
        };
        result.unwrap_or_else(|e| panic!("{e}"))
    }

    /// Applies an update to a stored order like commercetools does: `f` changes the order
    /// (given the new `lastModifiedAt`) and returns the `(type, payload)` of every message the
    /// update produces; then `version` is incremented, `lastModifiedAt` set, and the messages
    /// recorded with the order's next sequence numbers (all with the new version as
    /// `resourceVersion`). An `Err` from `f` leaves the order unchanged.
    fn order_update(
        &self,
        id: &str,
        f: impl FnOnce(&mut Value, &str) -> Result<Vec<(&'static str, Map<String, Value>)>, String>,
    ) -> Vec<Value> {
        let result = {
            let mut s = lock(&self.shared);
            match s.orders.remove(id) {
                None => Err(format!("no order with id '{id}'")),
                Some(mut order) => {
                    let before = order.clone();
                    let stamp = s.next_stamp(order.get("lastModifiedAt"));
                    match f(&mut order, &stamp) {
                        Err(e) => {
                            s.orders.insert(id.to_owned(), before);
                            Err(e)
                        }
                        Ok(payloads) => {
                            let version = order["version"].as_i64().unwrap_or(0) + 1;
                            order["version"] = json!(version);
                            order["lastModifiedAt"] = json!(stamp);
                            let mut seq = order["lastMessageSequenceNumber"].as_i64().unwrap_or(0);
                            let mut messages = Vec::new();
                            for (kind, payload) in payloads {
                                seq += 1;
                                order["lastMessageSequenceNumber"] = json!(seq);
                                messages.push(s.push_order_message(&order, seq, kind, payload));
                            }
                            s.orders.insert(id.to_owned(), order);
                            Ok(messages)
                        }
                    }
                }
            }
        };
        result.unwrap_or_else(|e| panic!("{e}"))
    }

    /// Creates an order (as `POST /orders` from a cart would) and records an `OrderCreated`
    /// message (sequence number 1, `resourceVersion` = the order's version) whose `order` is the
    /// stored order. The order is stored as given, except: `version` defaults to 1,
    /// `lastModifiedAt` to now and `createdAt` to `lastModifiedAt`, and
    /// `lastMessageSequenceNumber` is set to 1. Returns the message.
    ///
    /// # Panics
    ///
    /// When the order has no string `id` or an order with that id exists.
    pub fn create_order(&self, order: Value) -> Value {
        self.insert_order(order, "OrderCreated")
    }

    /// Like [`CtEmulator::create_order`] for an imported order: records `OrderImported`.
    ///
    /// # Panics
    ///
    /// When the order has no string `id` or an order with that id exists.
    pub fn import_order(&self, order: Value) -> Value {
        self.insert_order(order, "OrderImported")
    }

    /// `changePaymentState`: sets `paymentState` and records `OrderPaymentStateChanged
    /// {paymentState, oldPaymentState}` (`oldPaymentState` omitted when the order had none).
    /// Returns the message.
    ///
    /// # Panics
    ///
    /// When there is no order `id`.
    pub fn change_payment_state(&self, id: &str, state: &str) -> Value {
        let mut messages = self.order_update(id, |o, _| {
            let mut p = Map::new();
            p.insert("paymentState".into(), json!(state));
            if let Some(old) = o.get("paymentState").filter(|v| !v.is_null()) {
                p.insert("oldPaymentState".into(), old.clone());
            }
            o["paymentState"] = json!(state);
            Ok(vec![("OrderPaymentStateChanged", p)])
        });
        messages.pop().unwrap_or_default()
    }

    /// `changeShipmentState`, preceded (when `parcels` is not empty) by `addDelivery` in the
    /// same update: one new version; sets `shipmentState`; with parcels, appends to
    /// `shippingInfo.deliveries` a delivery `{id, createdAt, items: every line item with its
    /// full quantity, parcels: [{id, createdAt, trackingData {trackingId, carrier, isReturn:
    /// false}, items: []}]}` for each `(tracking_id, carrier)`.
    ///
    /// Records what commercetools records for that update, in order: with parcels a
    /// `DeliveryAdded {delivery}` (without its parcels, as documented) and one
    /// `ParcelAddedToDelivery {delivery, parcel}` per parcel, then `OrderShipmentStateChanged
    /// {shipmentState, oldShipmentState}` — consecutive sequence numbers, one `resourceVersion`.
    /// Returns the `OrderShipmentStateChanged` message.
    ///
    /// # Panics
    ///
    /// When there is no order `id`.
    pub fn change_shipment_state(&self, id: &str, state: &str, parcels: &[(&str, &str)]) -> Value {
        let mut messages = self.order_update(id, |o, stamp| {
            let mut out = Vec::new();
            if !parcels.is_empty() {
                let n = o["shippingInfo"]["deliveries"]
                    .as_array()
                    .map_or(0, Vec::len);
                let delivery_id = derived_id("delivery", &format!("{id}:{n}"));
                let items: Vec<Value> = o["lineItems"]
                    .as_array()
                    .map(|ls| {
                        ls.iter()
                            .map(|l| json!({"id": l["id"], "quantity": l["quantity"]}))
                            .collect()
                    })
                    .unwrap_or_default();
                let parcels: Vec<Value> = parcels
                    .iter()
                    .enumerate()
                    .map(|(i, (tracking_id, carrier))| {
                        json!({
                            "id": derived_id("parcel", &format!("{delivery_id}:{i}")),
                            "createdAt": stamp,
                            "trackingData": {
                                "trackingId": tracking_id,
                                "carrier": carrier,
                                "isReturn": false,
                            },
                            "items": [],
                        })
                    })
                    .collect();
                let delivery = json!({
                    "id": delivery_id,
                    "createdAt": stamp,
                    "items": items,
                    "parcels": parcels,
                });
                match o["shippingInfo"]["deliveries"].as_array_mut() {
                    Some(ds) => ds.push(delivery.clone()),
                    None => o["shippingInfo"]["deliveries"] = json!([delivery.clone()]),
                }
                let mut bare = delivery.clone();
                bare["parcels"] = json!([]);
                let mut added = Map::new();
                added.insert("delivery".into(), bare);
                out.push(("DeliveryAdded", added));
                for parcel in parcels {
                    let mut p = Map::new();
                    p.insert("delivery".into(), delivery.clone());
                    p.insert("parcel".into(), parcel);
                    out.push(("ParcelAddedToDelivery", p));
                }
            }
            let mut p = Map::new();
            p.insert("shipmentState".into(), json!(state));
            if let Some(old) = o.get("shipmentState").filter(|v| !v.is_null()) {
                p.insert("oldShipmentState".into(), old.clone());
            }
            o["shipmentState"] = json!(state);
            out.push(("OrderShipmentStateChanged", p));
            Ok(out)
        });
        messages.pop().unwrap_or_default()
    }

    /// `changeOrderState`: sets `orderState` and records `OrderStateChanged {orderState,
    /// oldOrderState}`. Returns the message.
    ///
    /// # Panics
    ///
    /// When there is no order `id`.
    pub fn change_order_state(&self, id: &str, state: &str) -> Value {
        let mut messages = self.order_update(id, |o, _| {
            let mut p = Map::new();
            p.insert("orderState".into(), json!(state));
            p.insert("oldOrderState".into(), o["orderState"].clone());
            o["orderState"] = json!(state);
            if state == "Complete" && o.get("completedAt").is_none() {
                o["completedAt"] = o["lastModifiedAt"].clone();
            }
            Ok(vec![("OrderStateChanged", p)])
        });
        messages.pop().unwrap_or_default()
    }

    /// `addReturnInfo`: appends `{items, returnDate}` to `returnInfo`, one `LineItemReturnItem`
    /// per `(line_item_id, quantity)` (`id = derived_id("return-item", "<order id>:<return info
    /// index>:<item index>")`, `shipmentState "Returned"`, `paymentState "Initial"`,
    /// `createdAt = lastModifiedAt = returnDate` = the update's time), and records
    /// `ReturnInfoAdded {returnInfo}` with the added entry. Returns the message (the return item
    /// ids are in `message["returnInfo"]["items"][i]["id"]`).
    ///
    /// # Panics
    ///
    /// When there is no order `id` or it has no line item with one of the ids.
    pub fn add_return_info(&self, id: &str, items: &[(&str, i64)]) -> Value {
        let mut messages = self.order_update(id, |o, stamp| {
            let n = o["returnInfo"].as_array().map_or(0, Vec::len);
            let mut returned = Vec::new();
            for (i, (line_id, quantity)) in items.iter().enumerate() {
                let known = o["lineItems"]
                    .as_array()
                    .is_some_and(|ls| ls.iter().any(|l| l["id"] == *line_id));
                if !known {
                    return Err(format!("order '{id}' has no line item '{line_id}'"));
                }
                returned.push(json!({
                    "id": derived_id("return-item", &format!("{id}:{n}:{i}")),
                    "quantity": quantity,
                    "type": "LineItemReturnItem",
                    "lineItemId": line_id,
                    "shipmentState": "Returned",
                    "paymentState": "Initial",
                    "createdAt": stamp,
                    "lastModifiedAt": stamp,
                }));
            }
            let info = json!({"items": returned, "returnDate": stamp});
            match o["returnInfo"].as_array_mut() {
                Some(infos) => infos.push(info.clone()),
                None => o["returnInfo"] = json!([info.clone()]),
            }
            let mut p = Map::new();
            p.insert("returnInfo".into(), info);
            Ok(vec![("ReturnInfoAdded", p)])
        });
        messages.pop().unwrap_or_default()
    }

    /// Sets the `paymentState` (e.g. `Refunded`) and `lastModifiedAt` of one return item and
    /// records **`ReturnInfoSet {returnInfo}`** with the order's whole `returnInfo`.
    ///
    /// commercetools' own `setReturnPaymentState` update action produces no Message at all
    /// (there is no `OrderReturnPaymentStateChanged` type; only `setReturnShipmentState` has
    /// one, `OrderReturnShipmentStateChanged`), so a refund is visible to Message subscribers
    /// only when the shop writes it with `setReturnInfo`, which produces `ReturnInfoSet`. This
    /// operation models that update: the same resulting order, and the message commercetools
    /// emits for it. Returns the message.
    ///
    /// # Panics
    ///
    /// When there is no order `id` or it has no return item `return_item_id`.
    pub fn set_return_payment_state(&self, id: &str, return_item_id: &str, state: &str) -> Value {
        let mut messages = self.order_update(id, |o, stamp| {
            let item = o["returnInfo"].as_array_mut().and_then(|infos| {
                infos
                    .iter_mut()
                    .filter_map(|info| info["items"].as_array_mut())
                    .flatten()
                    .find(|item| item["id"] == return_item_id)
            });
            let Some(item) = item else {
                return Err(format!(
                    "order '{id}' has no return item '{return_item_id}'"
                ));
            };
            item["paymentState"] = json!(state);
            item["lastModifiedAt"] = json!(stamp);
            let mut p = Map::new();
            p.insert("returnInfo".into(), o["returnInfo"].clone());
            Ok(vec![("ReturnInfoSet", p)])
        });
        messages.pop().unwrap_or_default()
    }

    // ------------------------------------------------------------ cart lifecycle

    /// Applies an update to a stored cart: `f` changes the cart (given the new
    /// `lastModifiedAt`); then `totalPrice`, `taxedPrice` and `totalLineItemQuantity` are
    /// recomputed ([`orders::recompute_totals`](crate::orders::recompute_totals)), `version`
    /// incremented and `lastModifiedAt` set. No message is recorded: commercetools has no
    /// messages for these cart changes (subscribers use `changes` on `cart`). Returns the new
    /// version. An `Err` from `f` leaves the cart unchanged.
    fn cart_update(&self, id: &str, f: impl FnOnce(&mut Value, &str) -> Result<(), String>) -> i64 {
        let result = {
            let mut s = lock(&self.shared);
            match s.carts.remove(id) {
                None => Err(format!("no cart with id '{id}'")),
                Some(mut cart) => {
                    let before = cart.clone();
                    let stamp = s.next_stamp(cart.get("lastModifiedAt"));
                    match f(&mut cart, &stamp) {
                        Err(e) => {
                            s.carts.insert(id.to_owned(), before);
                            Err(e)
                        }
                        Ok(()) => {
                            recompute_totals(&mut cart);
                            let version = cart["version"].as_i64().unwrap_or(0) + 1;
                            cart["version"] = json!(version);
                            cart["lastModifiedAt"] = json!(stamp);
                            s.carts.insert(id.to_owned(), cart);
                            Ok(version)
                        }
                    }
                }
            }
        };
        result.unwrap_or_else(|e| panic!("{e}"))
    }

    /// Creates a cart: stores it as given (`version` defaulting to 1, `lastModifiedAt` to now,
    /// `createdAt` to `lastModifiedAt`) and returns its version. No message (commercetools has
    /// no `CartCreated`).
    ///
    /// # Panics
    ///
    /// When the cart has no string `id` or a cart with that id exists.
    pub fn create_cart(&self, mut cart: Value) -> i64 {
        let result = {
            let mut s = lock(&self.shared);
            match cart.get("id").and_then(Value::as_str).map(str::to_owned) {
                None => Err("the cart has no string id".to_owned()),
                Some(id) if s.carts.contains_key(&id) => {
                    Err(format!("a cart with id '{id}' already exists"))
                }
                Some(id) => {
                    if cart.get("version").is_none_or(Value::is_null) {
                        cart["version"] = json!(1);
                    }
                    if cart.get("lastModifiedAt").is_none_or(Value::is_null) {
                        let stamp = s.next_stamp(cart.get("createdAt"));
                        cart["lastModifiedAt"] = json!(stamp);
                    }
                    if cart.get("createdAt").is_none_or(Value::is_null) {
                        cart["createdAt"] = cart["lastModifiedAt"].clone();
                    }
                    let version = cart["version"].as_i64().unwrap_or(1);
                    s.carts.insert(id, cart);
                    Ok(version)
                }
            }
        };
        result.unwrap_or_else(|e| panic!("{e}"))
    }

    /// `addLineItem` with a full `LineItem` (e.g. [`orders::line_item`](crate::orders::line_item)):
    /// when the cart already has a line of the same `productId` and `variant.id`, that line's
    /// quantity grows by the new line's quantity (as commercetools merges equal lines);
    /// otherwise the line is appended with `addedAt`/`lastModifiedAt` defaulting to the update
    /// time and `taxRate` defaulting to the cart's first line's. Totals are recomputed; returns
    /// the new version.
    ///
    /// # Panics
    ///
    /// When there is no cart `cart_id`.
    pub fn add_line_item(&self, cart_id: &str, line: Value) -> i64 {
        self.cart_update(cart_id, |c, stamp| {
            let quantity = line["quantity"].as_i64().unwrap_or(1);
            if !c["lineItems"].is_array() {
                c["lineItems"] = json!([]);
            }
            let rate = c["lineItems"][0]["taxRate"].clone();
            let lines = c["lineItems"].as_array_mut().ok_or("no lineItems")?;
            if let Some(same) = lines.iter_mut().find(|l| {
                l["productId"] == line["productId"] && l["variant"]["id"] == line["variant"]["id"]
            }) {
                let q = same["quantity"].as_i64().unwrap_or(0) + quantity;
                set_line_quantity(same, q);
                same["lastModifiedAt"] = json!(stamp);
            } else {
                let mut line = line;
                for k in ["addedAt", "lastModifiedAt"] {
                    if line.get(k).is_none_or(Value::is_null) {
                        line[k] = json!(stamp);
                    }
                }
                if line.get("taxRate").is_none() && !rate.is_null() {
                    line["taxRate"] = rate;
                }
                lines.push(line);
            }
            Ok(())
        })
    }

    /// `changeLineItemQuantity`: sets the line's quantity (recomputing its `totalPrice`), or
    /// removes the line when `quantity` is 0, as commercetools does. Totals are recomputed;
    /// returns the new version.
    ///
    /// # Panics
    ///
    /// When there is no cart `cart_id` or it has no line `line_id`.
    pub fn change_line_item_quantity(&self, cart_id: &str, line_id: &str, quantity: i64) -> i64 {
        self.cart_update(cart_id, |c, stamp| {
            let lines = c["lineItems"]
                .as_array_mut()
                .ok_or_else(|| format!("cart '{cart_id}' has no line items"))?;
            let i = lines
                .iter()
                .position(|l| l["id"] == line_id)
                .ok_or_else(|| format!("cart '{cart_id}' has no line item '{line_id}'"))?;
            if quantity <= 0 {
                lines.remove(i);
            } else {
                set_line_quantity(&mut lines[i], quantity);
                lines[i]["lastModifiedAt"] = json!(stamp);
            }
            Ok(())
        })
    }

    /// `setShippingAddress`: replaces the cart's `shippingAddress`; returns the new version.
    ///
    /// # Panics
    ///
    /// When there is no cart `cart_id`.
    pub fn set_cart_shipping_address(&self, cart_id: &str, address: Value) -> i64 {
        self.cart_update(cart_id, |c, _| {
            c["shippingAddress"] = address;
            Ok(())
        })
    }

    /// `setCustomerEmail`: replaces the cart's `customerEmail`; returns the new version.
    ///
    /// # Panics
    ///
    /// When there is no cart `cart_id`.
    pub fn set_cart_customer_email(&self, cart_id: &str, email: &str) -> i64 {
        self.cart_update(cart_id, |c, _| {
            c["customerEmail"] = json!(email);
            Ok(())
        })
    }

    // ------------------------------------------------------------ subscriptions

    /// The stored Subscriptions in id order, exactly as stored: secrets unmasked, unlike the
    /// API's answers (see the `subscriptions` endpoint module).
    pub fn subscriptions(&self) -> Vec<Value> {
        lock(&self.shared).subscriptions.values().cloned().collect()
    }

    /// The stored Subscription with `key`, unmasked.
    pub fn subscription_by_key(&self, key: &str) -> Option<Value> {
        lock(&self.shared)
            .subscriptions
            .values()
            .find(|s| s["key"].as_str() == Some(key))
            .cloned()
    }

    /// Invalidates every issued token; the next API call with one gets 401 `invalid_token`.
    pub fn revoke_tokens(&self) {
        lock(&self.shared).tokens.clear();
    }

    /// Replaces the fault configuration (restarting its RNG and request counter).
    pub fn set_faults(&self, f: Faults) {
        lock(&self.shared).faults = FaultInjector::new(f);
    }

    /// Number of HTTP requests received so far (token requests included).
    pub fn request_count(&self) -> u64 {
        lock(&self.shared).request_count
    }

    /// Stops accepting connections.
    pub fn shutdown(&self) {
        self.task.abort();
    }
}

impl Drop for CtEmulator {
    fn drop(&mut self) {
        self.task.abort();
    }
}
