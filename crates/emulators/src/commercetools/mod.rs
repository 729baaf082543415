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
//! Faults ([`Faults`]) apply to the authenticated API endpoints only, never to the token
//! endpoint (latency applies to both). Injected statuses: 429, 500, 502, 503 (`OverCapacity`).

mod handlers;
mod predicate;
mod query;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::{Value, json};
use time::OffsetDateTime;
use tokio::task::JoinHandle;

use crate::customers::CustomerData;
use crate::faults::{FaultInjector, Faults};
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
    /// Messages (`GET /messages`), recorded for deletions made through the emulator.
    pub messages: BTreeMap<String, Value>,
    pub carts: BTreeMap<String, Value>,
    pub orders: BTreeMap<String, Value>,
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
        let n = s.messages.len() as u64;
        let message_id = uuid::Uuid::from_u64_pair(0x6d65_7373_6167_6500, n + 1).to_string();
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
