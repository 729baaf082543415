//! Inbox processing: turns stored notifications into queued Omnisend events.
//!
//! For each pending inbox entry, oldest first (entries of one resource strictly in order,
//! different resources concurrently):
//!
//! 1. **Stale?** If the resource's applied version is already at or past the notification's
//!    version, the entry is marked processed and nothing else happens: its change was seen
//!    when a newer notification re-read the resource.
//! 2. **Re-read** the resource by id from commercetools ("newest wins"; payloads may be stale,
//!    cut off by `payloadNotIncluded`, or arrive out of order). Gone (404) → a rejected record
//!    ("message for an unknown resource") for orders; nothing for carts (deleted carts have
//!    nothing to say).
//! 3. **Map** the current state with [`crate::mapping::events`], minus the facts the ledger
//!    already holds: an order's events come out in causal order (placed → paid →
//!    fulfilled/canceled → refunded) however the messages were shuffled; a cart's line
//!    additions are the diff against the snapshot stored with its last applied version.
//! 4. **Apply** in one transaction ([`StateStore::apply`]): queue the events, record their
//!    facts, move the applied version (and cart snapshot) forward, mark the entry processed.
//!
//! A processing error that may pass (commercetools unreachable, a read older than the
//! notification) leaves the entry pending and due again after a backoff (exponential, full
//! jitter, `events.retry_*`); once the entry is older than `events.max_age_hours` it becomes a
//! rejected record, so a poisoned entry cannot stay forever while an outage of commercetools
//! loses nothing.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use commercetools::models::{Cart, Customer, DiscountCode, Order, ProductProjection};
use commercetools::price::PriceSelector;
use commercetools::{CtClient, CtError};
use futures::StreamExt;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use time::OffsetDateTime;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::config::{DEFAULT_ROUTE, Settings, StoreSettings};
use crate::events::storefront::{self, StorefrontEvent};
use crate::identity::Email;
use crate::mapping::Rejection;
use crate::mapping::events::{
    CartSnapshot, EventContact, EventContext, EventName, PlannedEvent, ProductView, cart_events,
    order_events, started_checkout, viewed_product,
};
use crate::recovery::{RecoveryToken, recovery_url};
use crate::store::{
    Application, InboxEntry, Lane, NewEvent, NewRejected, ResourceVersion, StateStore, StoreError,
};

/// Entity name of unprocessable notifications in rejected records.
pub const NOTIFICATION: &str = "notification";

/// Counts of processing rounds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProcessStats {
    /// Entries handled (processed or rejected).
    pub processed: usize,
    /// Events queued.
    pub queued: usize,
    /// Events the ledger already held.
    pub duplicates: usize,
    /// Entries older than the applied version.
    pub stale: usize,
    /// Carts without any identity (no email, no customer): nothing sent.
    pub anonymous_carts: usize,
    /// Entries turned into rejected records.
    pub rejected: usize,
    /// Entries left pending after an error.
    pub failed: usize,
    /// Entries of resources this connector does not turn into events.
    pub ignored: usize,
    /// Entries that requested a contacts or catalog delta sync.
    pub resyncs: usize,
}

impl std::ops::AddAssign for ProcessStats {
    fn add_assign(&mut self, o: Self) {
        self.processed += o.processed;
        self.queued += o.queued;
        self.duplicates += o.duplicates;
        self.stale += o.stale;
        self.anonymous_carts += o.anonymous_carts;
        self.rejected += o.rejected;
        self.failed += o.failed;
        self.ignored += o.ignored;
        self.resyncs += o.resyncs;
    }
}

/// Counts of [`Processor::queue_historical`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct HistoryStats {
    /// Orders read.
    pub seen: usize,
    /// `placed order` events queued.
    pub queued: usize,
    /// Orders whose `placed order` the ledger already holds.
    pub already_sent: usize,
    /// Orders of stores no route covers.
    pub skipped: usize,
    /// Orders that could not be mapped (rejected records).
    pub rejected: usize,
}

/// Why an entry could not be processed this time (it stays pending).
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// commercetools failed.
    #[error("commercetools: {0}")]
    Commercetools(#[from] CtError),
    /// The state store failed.
    #[error("{0}")]
    Store(#[from] StoreError),
    /// commercetools returned an older version than the notification describes (eventual
    /// consistency): try again shortly.
    #[error("commercetools returned version {got} of {resource}, older than the notified {want}")]
    NotYetVisible {
        /// `type/id`.
        resource: String,
        /// Version read.
        got: i64,
        /// Version notified.
        want: i64,
    },
}

/// Which delta sync a notification asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resync {
    /// Contacts (customer messages).
    Customers,
    /// Catalog (product and category messages).
    Catalog,
}

/// Requests for delta syncs from notifications, taken by the sync worker of `serve`.
#[derive(Debug, Default)]
pub struct ResyncRequests {
    customers: std::sync::atomic::AtomicBool,
    catalog: std::sync::atomic::AtomicBool,
    /// Notified when a request arrives.
    pub wake: Notify,
}

impl ResyncRequests {
    /// Asks for a run.
    pub fn request(&self, what: Resync) {
        let flag = match what {
            Resync::Customers => &self.customers,
            Resync::Catalog => &self.catalog,
        };
        flag.store(true, std::sync::atomic::Ordering::SeqCst);
        self.wake.notify_one();
    }

    /// Takes the pending requests: (customers, catalog).
    pub fn take(&self) -> (bool, bool) {
        use std::sync::atomic::Ordering::SeqCst;
        (
            self.customers.swap(false, SeqCst),
            self.catalog.swap(false, SeqCst),
        )
    }
}

impl ProcessError {
    /// commercetools refused the request itself (400: e.g. a predicate it cannot evaluate):
    /// retrying cannot help.
    pub fn is_permanent(&self) -> bool {
        matches!(self, ProcessError::Commercetools(e) if e.status() == Some(400))
    }
}

/// What one entry came to. (Short-lived, one per entry: the size difference between the
/// variants does not matter.)
#[allow(clippy::large_enum_variant)]
enum Outcome {
    Apply(Application, Counted),
    Stale,
    Ignored,
    Resync,
}

#[derive(Default, Clone, Copy)]
struct Counted {
    anonymous_cart: bool,
    rejected: bool,
}

/// Turns the inbox into outbox events.
#[derive(Clone)]
pub struct Processor {
    store: StateStore,
    ct: CtClient,
    settings: Arc<Settings>,
    recovery_secret: Option<Arc<SecretString>>,
    delivery: Arc<Notify>,
    discount_codes: Arc<Mutex<HashMap<String, DiscountCode>>>,
    resync: Option<Arc<ResyncRequests>>,
    totals: Arc<Mutex<ProcessStats>>,
    /// Claims inbox entries under this name.
    owner: String,
}

impl Processor {
    /// `delivery` is notified whenever events were queued.
    pub fn new(
        store: StateStore,
        ct: CtClient,
        settings: Arc<Settings>,
        recovery_secret: Option<SecretString>,
        delivery: Arc<Notify>,
    ) -> Self {
        Self {
            store,
            ct,
            settings,
            recovery_secret: recovery_secret.map(Arc::new),
            delivery,
            discount_codes: Arc::default(),
            resync: None,
            totals: Arc::default(),
            owner: format!("processor-{}", uuid::Uuid::new_v4()),
        }
    }

    /// Claims inbox entries as `owner` (the instance name; default a random one).
    pub fn with_owner(mut self, owner: impl Into<String>) -> Self {
        self.owner = owner.into();
        self
    }

    /// Counts since this processor started (anonymous carts skipped, stale notifications
    /// dropped, …), for status and metrics.
    pub fn totals(&self) -> ProcessStats {
        *self.totals.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Customer and catalog notifications request delta syncs here (without it they are
    /// acknowledged and left to the scheduled syncs).
    pub fn with_resync(mut self, resync: Arc<ResyncRequests>) -> Self {
        self.resync = Some(resync);
        self
    }

    fn resync(&self, what: Resync) -> Outcome {
        match &self.resync {
            Some(r) => {
                r.request(what);
                Outcome::Resync
            }
            None => Outcome::Ignored,
        }
    }

    /// Processes until `stop` is cancelled; wakes on `wake` (new entries) or every
    /// `idle_poll`.
    pub async fn run(self, stop: CancellationToken, wake: Arc<Notify>, idle_poll: Duration) {
        loop {
            if stop.is_cancelled() {
                break;
            }
            let busy = match self.round(200).await {
                Ok(s) => s.processed > 0,
                Err(e) => {
                    tracing::warn!(error = %e, "inbox processing round failed; retrying");
                    false
                }
            };
            if busy {
                continue;
            }
            tokio::select! {
                () = stop.cancelled() => break,
                () = wake.notified() => {}
                () = tokio::time::sleep(idle_poll) => {}
            }
        }
        // Entries claimed but not reached are free for the other instances at once.
        if let Err(e) = self.store.release_notifications(&self.owner).await {
            tracing::warn!(error = %e, "cannot release inbox claims");
        }
    }

    /// One round over up to `limit` pending entries.
    pub async fn round(&self, limit: i64) -> Result<ProcessStats, StoreError> {
        let entries = self
            .store
            .claim_notifications(
                OffsetDateTime::now_utc(),
                limit,
                &self.owner,
                self.settings.events.lease,
            )
            .await?;
        // Entries of one resource in arrival order; resources side by side.
        let mut groups: BTreeMap<(String, String), Vec<InboxEntry>> = BTreeMap::new();
        let mut first_seen: Vec<(String, String)> = Vec::new();
        for e in entries {
            let key = (e.resource_type.clone(), e.resource_id.clone());
            if !groups.contains_key(&key) {
                first_seen.push(key.clone());
            }
            groups.entry(key).or_default().push(e);
        }
        let results: Vec<Result<ProcessStats, StoreError>> = futures::stream::iter(first_seen)
            .map(|key| {
                let group = groups.remove(&key).unwrap_or_default();
                async move {
                    let mut stats = ProcessStats::default();
                    for entry in group {
                        let s = self.handle(&entry).await?;
                        let stop = s.failed > 0;
                        stats += s;
                        if stop {
                            // Later entries of this resource wait for this one.
                            break;
                        }
                    }
                    Ok(stats)
                }
            })
            .buffer_unordered(8)
            .collect()
            .await;
        let mut total = ProcessStats::default();
        for r in results {
            total += r?;
        }
        if total.queued > 0 {
            self.delivery.notify_one();
        }
        crate::telemetry::notifications_processed(
            "applied",
            (total.processed
                - total.stale.min(total.processed)
                - total.rejected.min(total.processed)) as u64,
        );
        crate::telemetry::notifications_processed("stale", total.stale as u64);
        crate::telemetry::notifications_processed("rejected", total.rejected as u64);
        crate::telemetry::notifications_processed("retried", total.failed as u64);
        crate::telemetry::events_queued(total.queued as u64, total.duplicates as u64);
        if total.processed > 0 {
            *self.totals.lock().unwrap_or_else(|e| e.into_inner()) += total;
            tracing::info!(
                processed = total.processed,
                queued = total.queued,
                duplicates = total.duplicates,
                stale = total.stale,
                anonymous_carts = total.anonymous_carts,
                rejected = total.rejected,
                failed = total.failed,
                resyncs = total.resyncs,
                "notifications processed"
            );
        }
        Ok(total)
    }

    async fn handle(&self, entry: &InboxEntry) -> Result<ProcessStats, StoreError> {
        let now = OffsetDateTime::now_utc();
        let mut stats = ProcessStats::default();
        match self.process(entry).await {
            Ok(Outcome::Apply(app, counted)) => {
                let applied = self.store.apply(&app, now).await?;
                stats.processed = 1;
                stats.queued = applied.queued;
                stats.duplicates = applied.duplicates;
                stats.anonymous_carts = usize::from(counted.anonymous_cart);
                stats.rejected = usize::from(counted.rejected);
            }
            Ok(done @ (Outcome::Stale | Outcome::Resync | Outcome::Ignored)) => {
                self.store
                    .mark_notification_processed(entry.id, now)
                    .await?;
                stats.processed = 1;
                match done {
                    Outcome::Stale => stats.stale = 1,
                    Outcome::Resync => stats.resyncs = 1,
                    _ => stats.ignored = 1,
                }
            }
            Err(ProcessError::Store(e)) => return Err(e),
            Err(e)
                if e.is_permanent() || now - entry.received_at >= self.settings.events.max_age =>
            {
                let app = Application {
                    inbox_id: Some(entry.id),
                    rejected: vec![entry_rejection(
                        entry,
                        None,
                        &format!(
                            "gave up after {} attempt(s) over {}h: {e}",
                            entry.attempts + 1,
                            (now - entry.received_at).whole_hours()
                        ),
                    )],
                    ..Application::default()
                };
                self.store.apply(&app, now).await?;
                stats.processed = 1;
                stats.rejected = 1;
            }
            Err(e) => {
                let delay = crate::events::deliver::backoff(
                    entry.attempts + 1,
                    self.settings.events.retry_base,
                    self.settings.events.retry_max,
                    &mut rand::rng(),
                );
                tracing::debug!(error = %e, kind = %entry.kind, delay_ms = delay.as_millis() as u64, "notification not processed yet");
                self.store
                    .retry_notification(entry.id, &e.to_string(), now + delay)
                    .await?;
                stats.failed = 1;
            }
        }
        Ok(stats)
    }

    async fn process(&self, entry: &InboxEntry) -> Result<Outcome, ProcessError> {
        if entry.source == storefront::SOURCE {
            return self.storefront(entry).await;
        }
        match entry.resource_type.as_str() {
            "order" => self.order(entry).await,
            "cart" => self.cart(entry, None, None).await,
            // Customers and the catalog change through the same delta syncs as the batch
            // runs; the notification only says "run one now". Their cursors have not moved
            // past the change, so marking the entry processed loses nothing.
            "customer" => Ok(self.resync(Resync::Customers)),
            "product" | "category" => Ok(self.resync(Resync::Catalog)),
            "inventory-entry" | "store" => Ok(Outcome::Ignored),
            other => Ok(Outcome::Apply(
                Application {
                    inbox_id: Some(entry.id),
                    rejected: vec![entry_rejection(
                        entry,
                        Some("resource.typeId"),
                        &format!(
                            "notifications about {other:?} resources are not turned into events"
                        ),
                    )],
                    ..Application::default()
                },
                Counted {
                    rejected: true,
                    ..Counted::default()
                },
            )),
        }
    }

    async fn is_stale(&self, entry: &InboxEntry) -> Result<Option<Option<Value>>, StoreError> {
        let state = self
            .store
            .resource_state(&entry.resource_type, &entry.resource_id)
            .await?;
        match (state, entry.resource_version) {
            (Some((applied, _)), Some(v)) if applied >= v => Ok(None),
            (Some((_, snapshot)), _) => Ok(Some(snapshot)),
            (None, _) => Ok(Some(None)),
        }
    }

    fn check_visible(entry: &InboxEntry, got: i64) -> Result<(), ProcessError> {
        match entry.resource_version {
            Some(want) if got < want => Err(ProcessError::NotYetVisible {
                resource: format!("{}/{}", entry.resource_type, entry.resource_id),
                got,
                want,
            }),
            _ => Ok(()),
        }
    }

    async fn order(&self, entry: &InboxEntry) -> Result<Outcome, ProcessError> {
        if self.is_stale(entry).await?.is_none() {
            return Ok(Outcome::Stale);
        }
        let path = format!("orders/{}", entry.resource_id);
        // Payments give `paymentMethod`; expanded codes spare a lookup per code.
        let expand = [
            ("expand".to_owned(), "paymentInfo.payments[*]".to_owned()),
            (
                "expand".to_owned(),
                "discountCodes[*].discountCode".to_owned(),
            ),
        ];
        let Some(order) = self.ct.get::<Order>(&path, &expand).await? else {
            return Ok(rejected_outcome(
                entry,
                Some("resource.id"),
                "message for an unknown resource: the order does not exist in commercetools",
            ));
        };
        Self::check_visible(entry, order.version)?;
        let version = ResourceVersion {
            resource_type: "order".into(),
            resource_id: order.id.clone(),
            version: order.version,
            snapshot: None,
        };
        let store_key = order.store.as_ref().map(|s| s.key.as_str());
        let Some((brand, route)) = self.route(store_key) else {
            return Ok(Outcome::Apply(
                Application {
                    inbox_id: Some(entry.id),
                    resource: Some(version),
                    ..Application::default()
                },
                Counted::default(),
            ));
        };
        let contact = match self
            .contact(
                order.customer_email.as_deref(),
                order.customer_id.as_deref(),
            )
            .await?
        {
            Some(c) => c,
            None => {
                return Ok(Outcome::Apply(
                    Application {
                        inbox_id: Some(entry.id),
                        resource: Some(version),
                        rejected: vec![entry_rejection(
                            entry,
                            Some("customerEmail"),
                            "the order has no valid email (nor a customer with one) to identify the contact",
                        )],
                        ..Application::default()
                    },
                    Counted {
                        rejected: true,
                        ..Counted::default()
                    },
                ));
            }
        };
        let discount_ids: Vec<String> = order
            .discount_codes
            .iter()
            .filter(|d| d.discount_code.obj.is_none())
            .map(|d| d.discount_code.id.clone())
            .collect();
        let discount_codes = self.discount_codes(&discount_ids).await?;
        let facts = self
            .store
            .facts_with_prefix(&brand, &format!("order:{}:", order.id))
            .await?;
        let locales = locales_of(route);
        let ctx = self.context(route, &locales, &discount_codes, None);
        let planned = order_events(&order, &contact, &ctx, &|f| facts.contains(f));
        // An order this connector has never seen, created long before: its history happened
        // before go-live (or before the subscription). Only the change that was notified is
        // sent; the rest is recorded as done, so a return on a months-old order does not send
        // `placed order` and `paid for order` again and fire post-purchase flows.
        let old = OffsetDateTime::now_utc() - order.created_at > ADOPT_ORDERS_OLDER_THAN;
        let (planned, adopted) = match planned {
            Ok(events) if facts.is_empty() && old => {
                let (send, adopt): (Vec<_>, Vec<_>) = events
                    .into_iter()
                    .partition(|p| notified_by(&entry.kind, p.name));
                (Ok(send), adopt)
            }
            other => (other, Vec::new()),
        };
        let mut outcome = self.planned_outcome(
            entry,
            &brand,
            &format!("order:{}", order.id),
            version,
            planned,
        );
        if let Outcome::Apply(app, _) = &mut outcome {
            app.adopted = adopted_facts(&brand, adopted);
        }
        Ok(outcome)
    }

    /// Queues `placed order` (with its original `eventTime`) for each order on the backfill
    /// lane, unless the ledger already holds it (a real-time send counts: the fact is the
    /// same). Orders without an identity or that cannot be mapped become rejected records.
    pub async fn queue_historical(&self, orders: &[Order]) -> Result<HistoryStats, ProcessError> {
        let mut stats = HistoryStats::default();
        let now = OffsetDateTime::now_utc();
        for order in orders {
            stats.seen += 1;
            let Some((brand, route)) = self.route(order.store.as_ref().map(|s| s.key.as_str()))
            else {
                stats.skipped += 1;
                continue;
            };
            let contact = self
                .contact(
                    order.customer_email.as_deref(),
                    order.customer_id.as_deref(),
                )
                .await?
                .unwrap_or_default();
            let ids: Vec<String> = order
                .discount_codes
                .iter()
                .map(|d| d.discount_code.id.clone())
                .collect();
            let codes = self.discount_codes(&ids).await?;
            let locales = locales_of(route);
            let ctx = self.context(route, &locales, &codes, None);
            let placed = crate::mapping::events::facts::order_placed(&order.id);
            let facts = self
                .store
                .facts_with_prefix(&brand, &format!("order:{}:", order.id))
                .await?;
            if facts.contains(&placed) {
                stats.already_sent += 1;
                continue;
            }
            // History imports the purchase; its later life (paid, fulfilled, refunded…) is
            // recorded as done without sending, so it never fires post-purchase flows — not now
            // and not when a later notification about the order arrives.
            let planned = order_events(order, &contact, &ctx, &|f| facts.contains(f));
            let app = match planned {
                Ok(events) => {
                    let (send, adopt): (Vec<_>, Vec<_>) = events
                        .into_iter()
                        .partition(|p| p.name == EventName::PlacedOrder);
                    Application {
                        events: send
                            .into_iter()
                            .map(|p| {
                                new_event(&brand, &format!("order:{}", order.id), Lane::Backfill, p)
                            })
                            .collect(),
                        adopted: adopted_facts(&brand, adopt),
                        ..Application::default()
                    }
                }
                Err(r) => {
                    stats.rejected += 1;
                    Application {
                        rejected: vec![NewRejected {
                            route: brand.clone(),
                            entity: r.entity.to_owned(),
                            ct_id: r.id.clone(),
                            field: Some(r.field.clone()),
                            reason: r.reason.clone(),
                            payload: None,
                            at: now,
                        }],
                        ..Application::default()
                    }
                }
            };
            let applied = self.store.apply(&app, now).await?;
            stats.queued += applied.queued;
            stats.already_sent += applied.duplicates;
        }
        Ok(stats)
    }

    /// A cart change: `inline` is the cart a storefront request carried (else it is read),
    /// `shopper` the identity the storefront gave when the cart has none.
    async fn cart(
        &self,
        entry: &InboxEntry,
        inline: Option<Cart>,
        shopper: Option<EventContact>,
    ) -> Result<Outcome, ProcessError> {
        let Some(snapshot) = self.is_stale(entry).await? else {
            return Ok(Outcome::Stale);
        };
        let previous: Option<CartSnapshot> = snapshot.and_then(|s| serde_json::from_value(s).ok());
        let cart = match inline {
            Some(c) => c,
            None => {
                let path = format!("carts/{}", entry.resource_id);
                let Some(cart) = self.ct.get::<Cart>(&path, &[]).await? else {
                    // A deleted cart has nothing to say; a storefront naming a cart that does
                    // not exist is told so in a rejected record.
                    if entry.source == storefront::SOURCE {
                        return Ok(rejected_outcome(
                            entry,
                            Some("cartId"),
                            "added product to cart for an unknown cart",
                        ));
                    }
                    return Ok(Outcome::Ignored);
                };
                cart
            }
        };
        Self::check_visible(entry, cart.version)?;
        let store_key = cart.store.as_ref().map(|s| s.key.as_str());
        let version = |snapshot: Option<&CartSnapshot>| ResourceVersion {
            resource_type: "cart".into(),
            resource_id: cart.id.clone(),
            version: cart.version,
            snapshot: snapshot.and_then(|s| serde_json::to_value(s).ok()),
        };
        let Some((brand, route)) = self.route(store_key) else {
            return Ok(Outcome::Apply(
                Application {
                    inbox_id: Some(entry.id),
                    resource: Some(version(previous.as_ref())),
                    ..Application::default()
                },
                Counted::default(),
            ));
        };
        let active = cart.cart_state.as_deref().is_none_or(|s| s == "Active");
        let contact = if active {
            match self
                .contact(cart.customer_email.as_deref(), cart.customer_id.as_deref())
                .await?
            {
                Some(c) => Some(c),
                None => shopper,
            }
        } else {
            None
        };
        let Some(contact) = contact else {
            // Nothing to say (ordered/merged cart) or nobody to say it to (anonymous): keep
            // the last identified snapshot, so lines added while anonymous are reported once
            // the shopper is known.
            return Ok(Outcome::Apply(
                Application {
                    inbox_id: Some(entry.id),
                    resource: Some(version(previous.as_ref())),
                    ..Application::default()
                },
                Counted {
                    anonymous_cart: active,
                    ..Counted::default()
                },
            ));
        };
        let facts = self
            .store
            .facts_with_prefix(&brand, &format!("cart:{}:", cart.id))
            .await?;
        let recovery = self.recovery_link(route, &cart);
        let no_discounts = HashMap::new();
        let locales = locales_of(route);
        let ctx = self.context(route, &locales, &no_discounts, recovery.as_deref());
        match cart_events(&cart, previous.as_ref(), &contact, &ctx, &|f| {
            facts.contains(f)
        }) {
            Ok((planned, next)) => Ok(self.planned_outcome(
                entry,
                &brand,
                &format!("cart:{}", cart.id),
                version(Some(&next)),
                Ok(planned),
            )),
            Err(r) => Ok(self.planned_outcome(
                entry,
                &brand,
                &format!("cart:{}", cart.id),
                version(previous.as_ref()),
                Err(r),
            )),
        }
    }

    async fn storefront(&self, entry: &InboxEntry) -> Result<Outcome, ProcessError> {
        let ev: StorefrontEvent = match serde_json::from_value(entry.payload.clone()) {
            Ok(ev) => ev,
            Err(e) => {
                return Ok(rejected_outcome(
                    entry,
                    Some("payload"),
                    &format!("stored storefront event is unreadable: {e}"),
                ));
            }
        };
        let shopper = self
            .contact(
                ev.shopper.email.as_deref(),
                ev.shopper.customer_id.as_deref(),
            )
            .await?;
        let inline = match &ev.cart {
            Some(c) => match serde_json::from_value::<Cart>(c.clone()) {
                Ok(cart) => Some(cart),
                Err(e) => {
                    return Ok(rejected_outcome(entry, Some("cart"), &e.to_string()));
                }
            },
            None => None,
        };
        let outcome = match entry.kind.as_str() {
            storefront::kind::ADDED_TO_CART => self.cart(entry, inline, shopper).await?,
            storefront::kind::STARTED_CHECKOUT => {
                self.storefront_checkout(entry, inline, shopper).await?
            }
            storefront::kind::VIEWED_PRODUCT => self.viewed(entry, &ev, shopper).await?,
            other => rejected_outcome(
                entry,
                Some("event"),
                &format!("unknown storefront event kind {other:?}"),
            ),
        };
        Ok(self.with_consent(outcome, &ev, entry))
    }

    /// Adds the shopper's consent evidence to the events' contact block, under the same
    /// rules as contacts ([`crate::consent::decide`] with the configured country rules and the
    /// route's country): a grant becomes a consent and opt-in statement only when every rule
    /// is met (e.g. not where double opt-in is required: a storefront checkbox is single
    /// opt-in); a refusal always becomes an opt-out.
    fn with_consent(&self, outcome: Outcome, ev: &StorefrontEvent, entry: &InboxEntry) -> Outcome {
        use crate::consent::{Channel, ChannelStatus, ConsentEvidence, ConsentValue, decide};
        let Outcome::Apply(mut app, counted) = outcome else {
            return outcome;
        };
        let Some(c) = &ev.consent else {
            return Outcome::Apply(app, counted);
        };
        let value = match c.email {
            Some(true) => ConsentValue::Granted,
            Some(false) => ConsentValue::Revoked,
            None => return Outcome::Apply(app, counted),
        };
        let rfc3339 = &time::format_description::well_known::Rfc3339;
        let at = c
            .created_at
            .as_deref()
            .and_then(|t| OffsetDateTime::parse(t, rfc3339).ok())
            .unwrap_or(entry.received_at);
        let source =
            crate::mapping::text::truncate_chars(c.source.as_deref().unwrap_or("storefront"), 100);
        let evidence = ConsentEvidence {
            value,
            at: Some(at),
            source: Some(source.clone()),
            double_opt_in_confirmed: None,
        };
        let country = self
            .route(ev.store_key.as_deref())
            .and_then(|(_, r)| r.country.clone());
        let status = decide(
            &evidence,
            Channel::Email,
            country.as_ref(),
            &self.settings.contacts.policy,
            false,
        );
        let created_at = at.format(rfc3339).unwrap_or_default();
        let statements: Vec<(&str, Value)> = match status {
            Some(ChannelStatus::Subscribed) => {
                let mut consent = serde_json::json!({
                    "channel": "email", "createdAt": created_at, "source": source,
                });
                if let Some(ip) = &c.ip {
                    consent["ip"] = Value::from(ip.as_str());
                }
                if let Some(ua) = &c.user_agent {
                    consent["userAgent"] =
                        Value::from(crate::mapping::text::truncate_chars(ua, 200));
                }
                vec![
                    ("consents", Value::Array(vec![consent])),
                    (
                        "optIns",
                        serde_json::json!([{"channel": "email", "createdAt": created_at, "source": source}]),
                    ),
                ]
            }
            Some(ChannelStatus::Unsubscribed) => vec![(
                "optOuts",
                serde_json::json!([{"channel": "email", "createdAt": created_at, "source": source}]),
            )],
            _ => Vec::new(),
        };
        for e in &mut app.events {
            if let Some(contact) = e.body.get_mut("contact").and_then(Value::as_object_mut) {
                for (k, v) in &statements {
                    contact.insert((*k).to_owned(), v.clone());
                }
            }
        }
        Outcome::Apply(app, counted)
    }

    async fn storefront_checkout(
        &self,
        entry: &InboxEntry,
        inline: Option<Cart>,
        shopper: Option<EventContact>,
    ) -> Result<Outcome, ProcessError> {
        let cart = match inline {
            Some(c) => c,
            None => {
                let path = format!("carts/{}", entry.resource_id);
                let Some(cart) = self.ct.get::<Cart>(&path, &[]).await? else {
                    return Ok(rejected_outcome(
                        entry,
                        Some("cartId"),
                        "started checkout for an unknown cart",
                    ));
                };
                cart
            }
        };
        let Some((brand, route)) = self.route(cart.store.as_ref().map(|s| s.key.as_str())) else {
            return Ok(Outcome::Ignored);
        };
        if cart.cart_state.as_deref().is_some_and(|s| s != "Active") {
            // Ordered or merged: the checkout is over.
            return Ok(Outcome::Ignored);
        }
        let contact = match self
            .contact(cart.customer_email.as_deref(), cart.customer_id.as_deref())
            .await?
            .or(shopper)
        {
            Some(c) => c,
            None => {
                return Ok(Outcome::Apply(
                    Application {
                        inbox_id: Some(entry.id),
                        ..Application::default()
                    },
                    Counted {
                        anonymous_cart: true,
                        ..Counted::default()
                    },
                ));
            }
        };
        let facts = self
            .store
            .facts_with_prefix(&brand, &format!("cart:{}:", cart.id))
            .await?;
        if facts.contains(&crate::mapping::events::facts::cart_checkout(&cart.id)) {
            return Ok(Outcome::Apply(
                Application {
                    inbox_id: Some(entry.id),
                    ..Application::default()
                },
                Counted::default(),
            ));
        }
        let recovery = self.recovery_link(route, &cart);
        let no_discounts = HashMap::new();
        let locales = locales_of(route);
        let ctx = self.context(route, &locales, &no_discounts, recovery.as_deref());
        let planned = started_checkout(&cart, &contact, &ctx).map(|p| vec![p]);
        Ok(self.planned_outcome(entry, &brand, &format!("cart:{}", cart.id), None, planned))
    }

    async fn viewed(
        &self,
        entry: &InboxEntry,
        ev: &StorefrontEvent,
        shopper: Option<EventContact>,
    ) -> Result<Outcome, ProcessError> {
        let Some((brand, route)) = self.route(ev.store_key.as_deref()) else {
            return Ok(Outcome::Ignored);
        };
        let Some(contact) = shopper else {
            return Ok(rejected_outcome(
                entry,
                Some("shopper"),
                "no valid email (nor a customer with one) identifies the viewer",
            ));
        };
        let product_ref = ev.product.clone().unwrap_or_default();
        let product = match (&product_ref.id, &product_ref.sku) {
            (Some(id), _) => {
                self.ct
                    .get::<ProductProjection>(&format!("product-projections/{id}"), &[])
                    .await?
            }
            (None, Some(sku)) => {
                let escaped = sku.replace('\\', "\\\\").replace('"', "\\\"");
                let q = vec![(
                    "where".to_owned(),
                    format!("masterVariant(sku=\"{escaped}\") or variants(sku=\"{escaped}\")"),
                )];
                self.ct
                    .query::<ProductProjection>("product-projections", &q)
                    .await?
                    .results
                    .into_iter()
                    .next()
            }
            (None, None) => None,
        };
        let Some(product) = product else {
            return Ok(rejected_outcome(
                entry,
                Some("product"),
                "viewed product: no such published product",
            ));
        };
        let no_discounts = HashMap::new();
        let locales = locales_of(route);
        let ctx = self.context(route, &locales, &no_discounts, None);
        let view = ProductView {
            product: &product,
            variant_sku: product_ref.sku.as_deref(),
            price: PriceSelector {
                currency: route.currency.as_str(),
                country: route.country.as_ref().map(|c| c.as_str()),
                channel_id: None,
                customer_group_id: None,
            },
            at: entry.received_at,
            discriminator: &entry.delivery_id,
        };
        let planned = viewed_product(&view, &contact, &ctx).map(|p| vec![p]);
        Ok(self.planned_outcome(
            entry,
            &brand,
            &format!("view:{}", entry.delivery_id),
            None,
            planned,
        ))
    }

    fn planned_outcome(
        &self,
        entry: &InboxEntry,
        brand: &str,
        ordering_key: &str,
        version: impl Into<Option<ResourceVersion>>,
        planned: Result<Vec<PlannedEvent>, Rejection>,
    ) -> Outcome {
        let version = version.into();
        match planned {
            Ok(planned) => Outcome::Apply(
                Application {
                    inbox_id: Some(entry.id),
                    resource: version,
                    events: planned
                        .into_iter()
                        .map(|p| new_event(brand, ordering_key, Lane::Realtime, p))
                        .collect(),
                    ..Application::default()
                },
                Counted::default(),
            ),
            Err(r) => Outcome::Apply(
                Application {
                    inbox_id: Some(entry.id),
                    resource: version,
                    rejected: vec![NewRejected {
                        route: brand.to_owned(),
                        entity: r.entity.to_owned(),
                        ct_id: r.id.clone(),
                        field: Some(r.field.clone()),
                        reason: r.reason.clone(),
                        payload: Some(entry.payload.clone()),
                        at: OffsetDateTime::now_utc(),
                    }],
                    ..Application::default()
                },
                Counted {
                    rejected: true,
                    ..Counted::default()
                },
            ),
        }
    }

    /// The mapping context of a route (flags from `[events]`).
    fn context<'a>(
        &'a self,
        route: &'a StoreSettings,
        locales: &'a [String],
        discount_codes: &'a HashMap<String, DiscountCode>,
        recovery_url: Option<&'a str>,
    ) -> EventContext<'a> {
        EventContext {
            project_key: self.ct.project_key(),
            locales,
            product_url: &route.product_url,
            order_status_url: None,
            discount_codes,
            ordered_product_events: self.settings.events.ordered_product_events,
            checkout_on_shipping_address: self.settings.events.checkout_on_shipping_address,
            recovery_url,
        }
    }

    /// The brand and route of a resource's store: its own route, else the project-wide
    /// `default` route when configured.
    fn route(&self, store_key: Option<&str>) -> Option<(String, &StoreSettings)> {
        let find = |key: &str| self.settings.stores.iter().find(|s| s.key == key);
        let route = store_key.and_then(find).or_else(|| find(DEFAULT_ROUTE))?;
        Some((route.omnisend_api_key_env.clone(), route))
    }

    /// The contact block: the resource's email, else its customer's (identity rules: trimmed,
    /// lower-cased, valid). `None` when neither gives a valid address.
    async fn contact(
        &self,
        email: Option<&str>,
        customer_id: Option<&str>,
    ) -> Result<Option<EventContact>, ProcessError> {
        let from_resource = email.and_then(|e| Email::parse(e).ok());
        let email = match (from_resource, customer_id) {
            (Some(e), _) => Some(e),
            (None, Some(id)) => self
                .ct
                .get::<Customer>(&format!("customers/{id}"), &[])
                .await?
                .and_then(|c| Email::parse(&c.email).ok()),
            (None, None) => None,
        };
        Ok(email.map(|e| EventContact {
            email: Some(e.as_str().to_owned()),
            ..EventContact::default()
        }))
    }

    /// The discount codes of `ids`, cached for the life of the process (codes are rarely
    /// edited, and a stale name only affects a label).
    async fn discount_codes(
        &self,
        ids: &[String],
    ) -> Result<HashMap<String, DiscountCode>, ProcessError> {
        let mut out = HashMap::new();
        for id in ids {
            let cached = self
                .discount_codes
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(id)
                .cloned();
            let code = match cached {
                Some(c) => c,
                None => {
                    let fetched = self
                        .ct
                        .get::<DiscountCode>(&format!("discount-codes/{id}"), &[])
                        .await;
                    let code = match fetched {
                        Ok(Some(code)) => code,
                        Ok(None) => continue,
                        // Without the `view_discount_codes` scope the code stays unnamed; the
                        // order's events must not wait for a permission.
                        Err(e) if matches!(e.status(), Some(401 | 403)) => {
                            tracing::warn!(error = %e, "cannot read a discount code; sending its id");
                            continue;
                        }
                        Err(e) => return Err(e.into()),
                    };
                    self.discount_codes
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(id.clone(), code.clone());
                    code
                }
            };
            out.insert(id.clone(), code);
        }
        Ok(out)
    }

    /// The signed `abandonedCheckoutURL` of a cart, when the route has a recovery URL and the
    /// secret is set.
    fn recovery_link(&self, route: &StoreSettings, cart: &Cart) -> Option<String> {
        let cart_id = cart.id.as_str();
        // The cart's own store (the storefront reads the cart in that store), not the route
        // key: the project-wide route is called `default`, which is no commercetools store.
        let store_key = cart.store.as_ref().map(|s| s.key.as_str());
        let template = route.cart_recovery_url.as_ref()?;
        let secret = self.recovery_secret.as_ref()?;
        let expires = OffsetDateTime::now_utc() + self.settings.events.recovery_ttl;
        match RecoveryToken::sign(
            secret.expose_secret().as_bytes(),
            cart_id,
            store_key,
            expires,
        ) {
            Ok(token) => Some(recovery_url(template, cart_id, store_key, &token)),
            Err(e) => {
                tracing::warn!(error = %e, "cannot sign a cart recovery link; sending without");
                None
            }
        }
    }
}

/// Orders created longer ago than this, seen for the first time, adopt their history (see
/// `Processor::order`).
pub const ADOPT_ORDERS_OLDER_THAN: time::Duration = time::Duration::hours(24);

/// The order Message types that report the change event `name` stands for (empty for the
/// events that are not about orders). An order notification of any type makes the processor
/// re-read the order; these types decide which of an adopted old order's events is sent, and
/// they are the order messages `ct-omnisend subscriptions install` subscribes to.
pub fn order_messages_for(name: EventName) -> &'static [&'static str] {
    match name {
        EventName::PlacedOrder | EventName::OrderedProduct => &["OrderCreated", "OrderImported"],
        EventName::PaidForOrder => &["OrderPaymentStateChanged"],
        EventName::OrderFulfilled => &[
            "OrderShipmentStateChanged",
            "DeliveryAdded",
            "ParcelAddedToDelivery",
        ],
        EventName::OrderCanceled => &["OrderStateChanged"],
        EventName::OrderRefunded => &[
            "ReturnInfoAdded",
            "ReturnInfoSet",
            "OrderReturnShipmentStateChanged",
        ],
        EventName::AddedProductToCart | EventName::StartedCheckout | EventName::ViewedProduct => {
            &[]
        }
    }
}

/// Whether the notification `kind` (a Message type) is the change that event `name` reports.
fn notified_by(kind: &str, name: EventName) -> bool {
    order_messages_for(name).contains(&kind)
}

/// The facts of events recorded as done without sending them.
fn adopted_facts(brand: &str, events: Vec<PlannedEvent>) -> Vec<(String, String, String)> {
    events
        .into_iter()
        .flat_map(|p| {
            let id = p.event_id.to_string();
            p.facts
                .into_iter()
                .map(move |f| (brand.to_owned(), f, id.clone()))
        })
        .collect()
}

/// A route's locale chain as strings.
fn locales_of(route: &StoreSettings) -> Vec<String> {
    route
        .locales
        .iter()
        .map(|l| l.as_str().to_owned())
        .collect()
}

/// The outbox row of a planned event.
pub fn new_event(brand: &str, ordering_key: &str, lane: Lane, p: PlannedEvent) -> NewEvent {
    NewEvent {
        brand: brand.to_owned(),
        event_id: p.event_id.to_string(),
        event_name: p.name.as_str().to_owned(),
        ordering_key: ordering_key.to_owned(),
        lane,
        body: p.body,
        facts: p.facts,
    }
}

fn entry_rejection(entry: &InboxEntry, field: Option<&str>, reason: &str) -> NewRejected {
    NewRejected {
        route: "webhooks".into(),
        entity: NOTIFICATION.into(),
        ct_id: format!("{}/{}", entry.resource_type, entry.resource_id),
        field: field.map(str::to_owned),
        reason: format!("{} ({}): {reason}", entry.kind, entry.delivery_id),
        payload: Some(entry.payload.clone()),
        at: OffsetDateTime::now_utc(),
    }
}

fn rejected_outcome(entry: &InboxEntry, field: Option<&str>, reason: &str) -> Outcome {
    Outcome::Apply(
        Application {
            inbox_id: Some(entry.id),
            rejected: vec![entry_rejection(entry, field, reason)],
            ..Application::default()
        },
        Counted {
            rejected: true,
            ..Counted::default()
        },
    )
}
