//! Contacts sync: commercetools customers (and identified guests) to Omnisend contacts, per
//! brand.
//!
//! A run has three phases:
//!
//! 1. **Read.** Customers modified since the brand's cursor (all of them in a full run) are
//!    mapped into [`MemberFacts`] and stored as *members* of a contact key (the hash of the
//!    normalised primary identifier). A member whose key changed (an email change) leaves its
//!    old key behind with a note of where it went. Guests (orders and carts without an account)
//!    become members too, keyed by their email.
//! 2. **Deletions.** A full run treats customers it did not see as deleted; a delta run reads
//!    `CustomerDeleted` messages. A deleted customer's member row — its personal data — is
//!    removed from the local store once Omnisend has been told.
//! 3. **Write.** Every touched key is merged (`mapping::contacts::merge`), hashed and compared
//!    with what was last confirmed; changed contacts go out through `/batches` (full runs and
//!    large deltas) or `POST /contacts` (small deltas). A key left without members is retired:
//!    marked as moved to the new address, or unsubscribed on both channels after an erasure.
//!
//! The cursor moves only when every write was confirmed. Logs carry contact keys and
//! commercetools ids, never an email or phone.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use commercetools::CtClient;
use commercetools::models::{Address, Cart, Customer, CustomerGroup, Message, Order};
use commercetools::paging::{DeltaPosition, Keyed, PageMode};
use omnisend::OmnisendError;
use omnisend::models::BatchEndpoint;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use super::catalog::ReplayOutcome;
use super::pages::ReadAhead;
use super::sink::Sink;
use super::writer::{BatchWriter, ItemKey, Planned, Target, problem_summary};
use super::{Mode, RunSummary, SyncError};
use crate::config::{Brand, DEFAULT_ROUTE, PrimaryIdentifier, ReadFrom, Settings};
use crate::identity::mask_text;
use crate::mapping::contacts::{
    self as map, ContactContext, GuestRecord, MemberFacts, Ownership, Retirement,
};
use crate::mapping::{Rejection, payload_hash};
use crate::store::{
    Cursor, MemberRow, NewRejected, RecordStatus, Rejected, RetiredRow, RunStats, StateStore,
    StoreOptions, SyncRecord,
};

/// Run and cursor entity of customers.
pub const CUSTOMERS: &str = "customers";
/// State-store entity of merged contacts (records, Omnisend refusals).
pub const CONTACTS: &str = "contacts";
/// Cursor entity of guest orders.
const GUEST_ORDERS: &str = "guest-orders";
/// Cursor entity of guest carts.
const GUEST_CARTS: &str = "guest-carts";
/// Cursor entity of `CustomerDeleted` messages.
const DELETIONS: &str = "customer-deletions";
/// Bump when the contact mapping code changes what it sends: the next run is then full.
pub const CONTACTS_MAPPING_VERSION: u32 = 1;
/// Keys merged per state-store round trip.
const KEY_CHUNK: usize = 500;

/// What the caller asked for.
#[derive(Clone, Debug, Default)]
pub struct ContactOptions {
    /// Force a full run (and re-send unchanged contacts).
    pub full: bool,
    /// Only the brand holding this store route.
    pub store: Option<String>,
}

/// The contacts sync of all configured brands.
pub struct ContactSync {
    ct: CtClient,
    store: StateStore,
    settings: Settings,
    sinks: HashMap<String, Sink>,
    clock: Arc<dyn Fn() -> OffsetDateTime + Send + Sync>,
}

/// Why a key is being written although its members may be gone.
#[derive(Default)]
struct Touched {
    /// Keys whose contact must be merged again.
    keys: BTreeSet<String>,
}

/// Counters of one brand run.
#[derive(Default)]
struct Tally {
    stats: RunStats,
    position: Option<DeltaPosition>,
}

impl ContactSync {
    /// `sinks` maps each store key to its brand's sink.
    pub fn new(
        ct: CtClient,
        store: StateStore,
        settings: Settings,
        sinks: HashMap<String, Sink>,
    ) -> Self {
        Self {
            ct,
            store,
            settings,
            sinks,
            clock: Arc::new(OffsetDateTime::now_utc),
        }
    }

    /// Replaces the wall clock.
    pub fn with_clock(mut self, clock: Arc<dyn Fn() -> OffsetDateTime + Send + Sync>) -> Self {
        self.clock = clock;
        self
    }

    /// Runs every selected brand.
    pub async fn run(&self, opts: &ContactOptions) -> Result<Vec<RunSummary>, SyncError> {
        let brands = self
            .settings
            .brands(opts.store.as_deref())
            .map_err(|e| SyncError::Config(e.to_string()))?;
        let groups = self.customer_group_keys().await?;
        let mut out = Vec::new();
        for brand in &brands {
            out.push(self.run_brand(brand, &groups, opts).await?);
        }
        Ok(out)
    }

    fn fingerprint(&self, brand: &Brand<'_>) -> String {
        let routes: Vec<String> = brand
            .stores
            .iter()
            .map(|s| {
                format!(
                    "{}:{:?}:{}",
                    s.key,
                    s.country.as_ref().map(|c| c.as_str()),
                    s.primary_identifier.as_str()
                )
            })
            .collect();
        let text = format!(
            "v{CONTACTS_MAPPING_VERSION}|{routes:?}|{}",
            self.settings.contacts.fingerprint_text()
        );
        hex::encode(&Sha256::digest(text.as_bytes())[..8])
    }

    async fn run_brand(
        &self,
        brand: &Brand<'_>,
        groups: &HashMap<String, String>,
        opts: &ContactOptions,
    ) -> Result<RunSummary, SyncError> {
        let first = brand.stores[0];
        let sink = self.sinks.get(&first.key).ok_or_else(|| {
            SyncError::Config(format!("no Omnisend sink for store {}", first.key))
        })?;
        let dry = sink.is_dry_run();
        let started = (self.clock)();
        let fingerprint = self.fingerprint(brand);
        let cursor = self.store.cursor(CUSTOMERS, &brand.id).await?;
        let (mode, reason) = super::choose_mode(
            cursor.as_ref(),
            &fingerprint,
            opts.full,
            "brand",
            "contacts",
        );
        if let Some(reason) = &reason {
            tracing::info!(brand = %brand.id, %reason, "running a full contacts refresh");
        }
        // A dry run merges against a scratch copy of the members, so it changes nothing.
        let members = if dry {
            self.scratch_members(&brand.id).await?
        } else {
            self.store.clone()
        };
        let run_id = if dry {
            None
        } else {
            Some(
                self.store
                    .start_run(
                        CUSTOMERS,
                        &brand.id,
                        mode.as_str(),
                        OffsetDateTime::now_utc(),
                    )
                    .await?,
            )
        };
        let clock = Instant::now();
        let requests_before = sink.requests();
        let since = |c: Option<&Cursor>| match (mode, c.and_then(|c| c.last_modified_at)) {
            (Mode::Delta, Some(t)) => Some(t - self.settings.contacts.delta_overlap),
            _ => None,
        };
        let result = async {
            let mut tally = Tally::default();
            let mut touched = Touched::default();
            let run = BrandRun {
                sync: self,
                brand,
                members: &members,
                sink,
                dry,
                seen_run: run_id
                    .filter(|_| mode == Mode::Full)
                    .or(if dry && mode == Mode::Full {
                        Some(0)
                    } else {
                        None
                    }),
                full: mode == Mode::Full,
                force: opts.full,
            };
            let phase = Instant::now();
            run.read_customers(groups, since(cursor.as_ref()), &mut touched, &mut tally)
                .await?;
            tracing::debug!(brand = %brand.id, ms = phase.elapsed().as_millis() as u64, seen = tally.stats.seen, "customers read");
            let mut guest_positions = Vec::new();
            if self.settings.contacts.guests
                && brand.primary_identifier() == PrimaryIdentifier::Email
            {
                for entity in [GUEST_ORDERS, GUEST_CARTS] {
                    let c = self.store.cursor(entity, &brand.id).await?;
                    let pos = run
                        .read_guests(entity, since(c.as_ref()), &mut touched, &mut tally)
                        .await?;
                    guest_positions.push((entity, c, pos));
                }
            }
            // Reading in stores, a customer missing from a full run may only have left the
            // brand's stores: only a `CustomerDeleted` message proves a deletion, so messages
            // are read first and the sweep then only removes the rest from the brand.
            let in_stores = self.settings.contacts.read_from == ReadFrom::Stores;
            if self.settings.contacts.deletions_from_messages && (mode == Mode::Delta || in_stores) {
                let c = self.store.cursor(DELETIONS, &brand.id).await?;
                let from = c
                    .as_ref()
                    .and_then(|c| c.last_modified_at)
                    .map(|t| t - self.settings.contacts.delta_overlap);
                let pos = run.read_deletions(from, &mut touched, &mut tally).await?;
                guest_positions.push((DELETIONS, c, pos));
            }
            if mode == Mode::Full {
                run.sweep_unseen(&mut touched, &mut tally, !in_stores).await?;
                if !in_stores && self.settings.contacts.deletions_from_messages {
                    // The sweep saw every deletion up to now: later deltas read messages from
                    // the run's start (the cursor moves to it below).
                    let c = self.store.cursor(DELETIONS, &brand.id).await?;
                    guest_positions.push((DELETIONS, c, None));
                }
            }
            if mode == Mode::Full {
                touched.keys.extend(members.member_keys(&brand.id).await?);
            }
            let phase = Instant::now();
            run.write(&touched, &mut tally).await?;
            tracing::debug!(brand = %brand.id, ms = phase.elapsed().as_millis() as u64, keys = touched.keys.len(), "contacts written");
            Ok::<_, SyncError>((tally, guest_positions))
        }
        .await;

        let (tally, positions) = match result {
            Ok(r) => r,
            Err(e) => {
                if let Some(run_id) = run_id {
                    let stats = RunStats {
                        requests: sink.requests() - requests_before,
                        duration_ms: clock.elapsed().as_millis() as u64,
                        ..RunStats::default()
                    };
                    if let Err(se) = self
                        .store
                        .finish_run(
                            run_id,
                            &stats,
                            "failed",
                            Some(&e.to_string()),
                            OffsetDateTime::now_utc(),
                        )
                        .await
                    {
                        tracing::warn!(run_id, error = %se, "could not record the failed run");
                    }
                }
                return Err(e);
            }
        };
        let mut stats = tally.stats;
        stats.requests = sink.requests() - requests_before;
        stats.duration_ms = clock.elapsed().as_millis() as u64;
        let mut summary = RunSummary {
            entity: CUSTOMERS.into(),
            store: brand
                .stores
                .iter()
                .map(|s| s.key.as_str())
                .collect::<Vec<_>>()
                .join("+"),
            mode,
            reason,
            stats: stats.clone(),
        };
        if !dry && stats.failed == 0 {
            let advance = |old: Option<&Cursor>, pos: Option<DeltaPosition>| match mode {
                Mode::Full => Some(started),
                Mode::Delta => match (old.and_then(|c| c.last_modified_at), pos) {
                    (Some(o), Some(p)) => Some(o.max(p.last_modified_at)),
                    (o, p) => o.or(p.map(|p| p.last_modified_at)),
                },
            };
            let now = OffsetDateTime::now_utc();
            self.store
                .set_cursor(&Cursor {
                    entity: CUSTOMERS.into(),
                    route: brand.id.clone(),
                    last_modified_at: advance(cursor.as_ref(), tally.position),
                    last_id: None,
                    mapping_fingerprint: Some(fingerprint),
                    updated_at: now,
                })
                .await?;
            for (entity, old, pos) in positions {
                self.store
                    .set_cursor(&Cursor {
                        entity: entity.into(),
                        route: brand.id.clone(),
                        last_modified_at: advance(old.as_ref(), pos),
                        last_id: None,
                        mapping_fingerprint: None,
                        updated_at: now,
                    })
                    .await?;
            }
        } else if stats.failed > 0 {
            tracing::warn!(brand = %brand.id, failed = stats.failed, "cursor left in place: some contacts could not be written");
            summary
                .reason
                .get_or_insert_with(|| "cursor not advanced: some writes failed".into());
        }
        if let Some(run_id) = run_id {
            self.store
                .finish_run(run_id, &stats, "ok", None, OffsetDateTime::now_utc())
                .await?;
        }
        Ok(summary)
    }

    /// Customer group id → key (groups without a key are left out: they give no tag).
    async fn customer_group_keys(&self) -> Result<HashMap<String, String>, SyncError> {
        Ok(self
            .ct
            .all::<CustomerGroup>("customer-groups")
            .await?
            .into_iter()
            .filter_map(|g| Some((g.id, g.key?)))
            .collect())
    }

    /// Whether a rejected record belongs to the contacts sync.
    pub fn handles(entity: &str) -> bool {
        [map::CUSTOMER, map::CONTACT, map::GUEST, CONTACTS].contains(&entity)
    }

    /// Re-reads and re-sends what open contact rejections are about: the customer (or guest
    /// order/cart) is fetched again, merged with its contact's other members and sent; a
    /// refused contact is merged and sent again. A record whose cause is gone is resolved.
    pub async fn replay(&self, rejected: &[Rejected]) -> Result<Vec<ReplayOutcome>, SyncError> {
        let brands = self
            .settings
            .brands(None)
            .map_err(|e| SyncError::Config(e.to_string()))?;
        let groups = self.customer_group_keys().await?;
        let mut outcomes = Vec::new();
        for brand in &brands {
            let mine: Vec<&Rejected> = rejected.iter().filter(|r| r.route == brand.id).collect();
            if mine.is_empty() {
                continue;
            }
            let sink = self.sinks.get(&brand.stores[0].key).ok_or_else(|| {
                SyncError::Config(format!("no Omnisend sink for brand {}", brand.id))
            })?;
            let run = BrandRun {
                sync: self,
                brand,
                members: &self.store,
                sink,
                dry: sink.is_dry_run(),
                seen_run: None,
                full: false,
                force: true,
            };
            let mut touched = Touched::default();
            let mut tally = Tally::default();
            for r in &mine {
                match r.entity.as_str() {
                    CONTACTS => {
                        touched.keys.insert(r.ct_id.clone());
                    }
                    map::GUEST => {
                        let (kind, id) = r.ct_id.split_once(':').unwrap_or(("", ""));
                        match kind {
                            "order" => {
                                if let Some(o) =
                                    self.ct.get::<Order>(&format!("orders/{id}"), &[]).await?
                                {
                                    run.take_guests(&[o], &mut touched, &mut tally).await?;
                                }
                            }
                            "cart" => {
                                if let Some(c) =
                                    self.ct.get::<Cart>(&format!("carts/{id}"), &[]).await?
                                {
                                    run.take_guests(&[c], &mut touched, &mut tally).await?;
                                }
                            }
                            _ => {}
                        }
                    }
                    _ => {
                        match self
                            .ct
                            .get::<Customer>(&format!("customers/{}", r.ct_id), &[])
                            .await?
                        {
                            Some(c) => {
                                run.take_customers(&[c], &groups, &mut touched, &mut tally)
                                    .await?
                            }
                            None => {
                                run.erase(std::slice::from_ref(&r.ct_id), &mut touched, &mut tally)
                                    .await?
                            }
                        }
                    }
                }
            }
            run.write(&touched, &mut tally).await?;
            for r in mine {
                let now = self.store.rejected(r.id).await?;
                outcomes.push(match now {
                    Some(n) if n.resolved_at.is_none() => {
                        ReplayOutcome::from(r, false, format!("still rejected: {}", n.reason))
                    }
                    _ => ReplayOutcome::from(r, true, "resolved".into()),
                });
            }
        }
        for r in rejected {
            if !brands.iter().any(|b| b.id == r.route) {
                outcomes.push(ReplayOutcome::from(
                    r,
                    false,
                    format!("brand {:?} is no longer configured", r.route),
                ));
            }
        }
        Ok(outcomes)
    }

    /// An in-memory copy of a brand's members, for dry runs.
    async fn scratch_members(&self, brand: &str) -> Result<StateStore, SyncError> {
        let scratch = StateStore::connect_with(
            "sqlite::memory:",
            StoreOptions {
                max_connections: Some(1),
                ..StoreOptions::default()
            },
        )
        .await?;
        let keys = self.store.member_keys(brand).await?;
        for chunk in keys.chunks(KEY_CHUNK) {
            let rows = self.store.members_by_keys(brand, chunk).await?;
            scratch.upsert_members(&rows).await?;
        }
        Ok(scratch)
    }
}

/// An order or a cart, as a source of guest contacts.
trait GuestSource: Keyed {
    /// `order` or `cart` (names the record in rejections).
    const SOURCE: &'static str;
    fn customer_id(&self) -> Option<&str>;
    fn customer_email(&self) -> Option<&str>;
    fn store_key(&self) -> Option<&str>;
    /// Billing address, else shipping address.
    fn address(&self) -> Option<&Address>;
    fn created_at(&self) -> OffsetDateTime;
}

macro_rules! guest_source {
    ($t:ty, $name:literal) => {
        impl GuestSource for $t {
            const SOURCE: &'static str = $name;
            fn customer_id(&self) -> Option<&str> {
                self.customer_id.as_deref()
            }
            fn customer_email(&self) -> Option<&str> {
                self.customer_email.as_deref()
            }
            fn store_key(&self) -> Option<&str> {
                self.store.as_ref().map(|s| s.key.as_str())
            }
            fn address(&self) -> Option<&Address> {
                self.billing_address
                    .as_ref()
                    .or(self.shipping_address.as_ref())
            }
            fn created_at(&self) -> OffsetDateTime {
                self.created_at
            }
        }
    };
}
guest_source!(Order, "order");
guest_source!(Cart, "cart");

/// One brand's run.
struct BrandRun<'a> {
    sync: &'a ContactSync,
    brand: &'a Brand<'a>,
    /// Where members live (the state store, or a scratch copy in a dry run).
    members: &'a StateStore,
    sink: &'a Sink,
    dry: bool,
    /// Stamped on members read by a full run (to find the deleted ones).
    seen_run: Option<i64>,
    full: bool,
    force: bool,
}

impl BrandRun<'_> {
    fn settings(&self) -> &Settings {
        &self.sync.settings
    }

    fn primary(&self) -> PrimaryIdentifier {
        self.brand.primary_identifier()
    }

    fn pager<T: Keyed + DeserializeOwned + Send + 'static>(
        &self,
        path: &str,
        since: Option<OffsetDateTime>,
        extra: Vec<(String, String)>,
    ) -> ReadAhead<T> {
        let mode = match since {
            Some(since) => PageMode::Delta { since, after: None },
            None => PageMode::Full { after_id: None },
        };
        ReadAhead::start(self.sync.ct.pager::<T>(
            path,
            mode,
            self.settings().commercetools.page_size,
            extra,
        ))
    }

    async fn read_customers(
        &self,
        groups: &HashMap<String, String>,
        since: Option<OffsetDateTime>,
        touched: &mut Touched,
        tally: &mut Tally,
    ) -> Result<(), SyncError> {
        // (path, global customers only)
        let sources: Vec<(String, bool)> = match self.settings().contacts.read_from {
            ReadFrom::Project => vec![("customers".into(), false)],
            ReadFrom::Stores => self
                .brand
                .stores
                .iter()
                .map(|s| match s.key.as_str() {
                    DEFAULT_ROUTE => ("customers".to_owned(), true),
                    key => (format!("in-store/key={key}/customers"), false),
                })
                .collect(),
        };
        let (mut waiting, mut working) = (Duration::ZERO, Duration::ZERO);
        let mut positions = Vec::new();
        let read_started = (self.sync.clock)();
        for (path, global_only) in sources {
            let mut pager = self.pager::<Customer>(&path, since, vec![]);
            loop {
                let t = Instant::now();
                let Some(mut page) = pager.next_page().await? else {
                    break;
                };
                waiting += t.elapsed();
                let t = Instant::now();
                if global_only {
                    page.retain(|c| c.stores.is_empty());
                }
                self.take_customers(&page, groups, touched, tally).await?;
                working += t.elapsed();
            }
            positions.push(pager.position().await);
        }
        tracing::debug!(
            brand = %self.brand.id,
            waiting_ms = waiting.as_millis() as u64,
            working_ms = working.as_millis() as u64,
            "customers: time waiting for commercetools pages vs mapping and storing them"
        );
        tally.position = match positions.as_slice() {
            [single] => single.clone(),
            // Several readers: each read everything modified since the cursor up to when it
            // ended, so the moment reading began is certainly covered (a reader that found
            // nothing has no position of its own). The overlap absorbs clock differences.
            _ => Some(DeltaPosition {
                last_modified_at: read_started,
                id: String::new(),
            }),
        };
        Ok(())
    }

    /// Maps customers into members of this brand (or removes them from it).
    async fn take_customers(
        &self,
        page: &[Customer],
        groups: &HashMap<String, String>,
        touched: &mut Touched,
        tally: &mut Tally,
    ) -> Result<(), SyncError> {
        tally.stats.seen += page.len() as u64;
        let mut rows = Vec::with_capacity(page.len());
        let mut gone = Vec::new();
        let mut clean = Vec::new();
        let mut rejections = Vec::new();
        for c in page {
            let routes: Vec<&str> = if c.stores.is_empty() {
                self.brand
                    .route_for(None)
                    .map(|s| s.key.as_str())
                    .into_iter()
                    .collect()
            } else {
                c.stores
                    .iter()
                    .filter_map(|s| self.brand.route_for(Some(&s.key)))
                    .map(|s| s.key.as_str())
                    .collect()
            };
            if routes.is_empty() {
                // Not (or no longer) a customer of this brand.
                gone.push(c.id.clone());
                continue;
            }
            let store_country = self
                .brand
                .stores
                .iter()
                .find(|s| s.key == routes[0])
                .and_then(|s| s.country.as_ref());
            let ctx = ContactContext {
                settings: &self.settings().contacts,
                primary: self.primary(),
                store_country,
                routes: &routes,
            };
            let group = c
                .customer_group
                .as_ref()
                .and_then(|g| groups.get(&g.id))
                .map(String::as_str);
            match map::customer_facts(c, group, &ctx) {
                Ok(mapped) => {
                    if mapped.warnings.is_empty() {
                        clean.push(c.id.clone());
                    }
                    for w in &mapped.warnings {
                        self.note(w, tally, false, &mut rejections);
                    }
                    rows.push(self.row(mapped.facts)?);
                }
                Err(r) => {
                    self.note(&r, tally, true, &mut rejections);
                    gone.push(c.id.clone());
                }
            }
        }
        self.flush_rejections(rejections).await?;
        if !self.dry && !clean.is_empty() {
            self.sync
                .store
                .resolve_rejected_many(
                    &self.brand.id,
                    map::CUSTOMER,
                    &clean,
                    OffsetDateTime::now_utc(),
                )
                .await?;
        }
        self.upsert(rows, touched).await?;
        let mut values = Vec::new();
        for m in self.members.delete_members(&self.brand.id, &gone).await? {
            values.extend(m.secondary);
            touched.keys.insert(m.contact_key);
        }
        self.touch_holders(values, touched).await?;
        Ok(())
    }

    fn row(&self, facts: MemberFacts) -> Result<MemberRow, SyncError> {
        let key = facts
            .contact_key(self.primary())
            .expect("mapped facts carry their primary identifier");
        Ok(MemberRow {
            brand: self.brand.id.clone(),
            member_id: facts.member_id.clone(),
            contact_key: key,
            secondary: facts.secondary(self.primary()).map(str::to_owned),
            created_at: facts.created_at,
            modified_at: facts.modified_at,
            facts: serde_json::to_value(&facts).map_err(|e| {
                SyncError::Config(format!("contact facts of {}: {e}", facts.member_id))
            })?,
            seen_run: self.seen_run,
        })
    }

    async fn upsert(&self, rows: Vec<MemberRow>, touched: &mut Touched) -> Result<(), SyncError> {
        if rows.is_empty() {
            return Ok(());
        }
        // A number (or address) a member gives up or takes may change who owns it: the other
        // contacts holding it are merged again too (a full run merges everything anyway).
        let mut values = if self.full {
            Vec::new()
        } else {
            let ids: Vec<String> = rows.iter().map(|r| r.member_id.clone()).collect();
            self.members.secondaries_of(&self.brand.id, &ids).await?
        };
        let changes = self.members.upsert_members(&rows).await?;
        for row in &rows {
            touched.keys.insert(row.contact_key.clone());
        }
        values.extend(rows.iter().filter_map(|r| r.secondary.clone()));
        self.touch_holders(values, touched).await?;
        let mut retired = Vec::new();
        for ch in changes {
            let Ok(previous) = serde_json::from_value::<MemberFacts>(ch.previous_facts) else {
                continue;
            };
            let new_value = rows
                .iter()
                .find(|r| r.member_id == ch.member_id)
                .and_then(|r| serde_json::from_value::<MemberFacts>(r.facts.clone()).ok())
                .and_then(|f| f.primary(self.primary()).map(str::to_owned));
            tracing::info!(brand = %self.brand.id, member = %ch.member_id, from = %ch.previous_key, "customer identifier changed");
            touched.keys.insert(ch.previous_key.clone());
            if let Some(to) = new_value {
                retired.extend(self.retired_row(
                    &ch.previous_key,
                    &previous,
                    &Retirement::Moved { to },
                ));
            }
        }
        // Stored at once: the old contact must be marked even if this run fails later on.
        self.members.put_retired(&retired).await?;
        Ok(())
    }

    /// Marks every contact holding one of `values` as touched (deltas only).
    async fn touch_holders(
        &self,
        values: Vec<String>,
        touched: &mut Touched,
    ) -> Result<(), SyncError> {
        if self.full || values.is_empty() {
            return Ok(());
        }
        for m in self
            .members
            .members_by_secondary(&self.brand.id, &values)
            .await?
        {
            touched.keys.insert(m.contact_key);
        }
        Ok(())
    }

    /// The pending retirement of `key`, built from the last facts known of a member that left.
    fn retired_row(&self, key: &str, last: &MemberFacts, why: &Retirement) -> Option<RetiredRow> {
        let body = map::retired_body(last, self.primary(), why)?;
        Some(RetiredRow {
            brand: self.brand.id.clone(),
            contact_key: key.to_owned(),
            reason: match why {
                Retirement::Moved { .. } => "moved".into(),
                Retirement::Erased { .. } => "erased".into(),
            },
            body: serde_json::to_value(&body).ok()?,
            created_at: OffsetDateTime::now_utc(),
        })
    }

    async fn read_guests(
        &self,
        entity: &'static str,
        since: Option<OffsetDateTime>,
        touched: &mut Touched,
        tally: &mut Tally,
    ) -> Result<Option<DeltaPosition>, SyncError> {
        if entity == GUEST_ORDERS {
            let mut pager = self.pager::<Order>("orders", since, vec![]);
            while let Some(page) = pager.next_page().await? {
                self.take_guests(&page, touched, tally).await?;
            }
            Ok(pager.position().await)
        } else {
            let mut pager = self.pager::<Cart>("carts", since, vec![]);
            while let Some(page) = pager.next_page().await? {
                self.take_guests(&page, touched, tally).await?;
            }
            Ok(pager.position().await)
        }
    }

    /// Maps the account-less orders or carts of a page into guest members, keeping the newest
    /// record per guest.
    async fn take_guests<G: GuestSource>(
        &self,
        page: &[G],
        touched: &mut Touched,
        tally: &mut Tally,
    ) -> Result<(), SyncError> {
        let mut latest: BTreeMap<String, MemberFacts> = BTreeMap::new();
        for o in page {
            if o.customer_id().is_some() {
                continue;
            }
            let Some(email) = o.customer_email() else {
                continue;
            };
            let Some(route) = self.brand.route_for(o.store_key()) else {
                continue;
            };
            let routes = [route.key.as_str()];
            let ctx = ContactContext {
                settings: &self.settings().contacts,
                primary: self.primary(),
                store_country: route.country.as_ref(),
                routes: &routes,
            };
            let g = GuestRecord {
                source: G::SOURCE,
                id: o.id(),
                email,
                address: o.address(),
                created_at: o.created_at(),
                modified_at: o.last_modified_at(),
            };
            match map::guest_facts(&g, &ctx) {
                Ok(m) => {
                    let f = m.facts;
                    if latest
                        .get(&f.member_id)
                        .is_none_or(|prev| prev.modified_at < f.modified_at)
                    {
                        latest.insert(f.member_id.clone(), f);
                    }
                }
                Err(r) => self.reject(&r, tally, true).await?,
            }
        }
        // Keep the newest facts per guest: compare with what is stored.
        let keys: Vec<String> = latest
            .values()
            .filter_map(|f| f.contact_key(self.primary()))
            .collect();
        let stored: HashMap<String, OffsetDateTime> = self
            .members
            .members_by_keys(&self.brand.id, &keys)
            .await?
            .into_iter()
            .map(|m| (m.member_id, m.modified_at))
            .collect();
        let rows = latest
            .into_values()
            .filter(|f| stored.get(&f.member_id).is_none_or(|t| *t < f.modified_at))
            .map(|f| {
                let mut row = self.row(f)?;
                row.seen_run = None;
                Ok(row)
            })
            .collect::<Result<Vec<_>, SyncError>>()?;
        self.upsert(rows, touched).await
    }

    /// Full run: members not seen by it.
    /// `erase`: the customers are gone from the project (project reads); otherwise they only
    /// left the brand's stores.
    async fn sweep_unseen(
        &self,
        touched: &mut Touched,
        tally: &mut Tally,
        erase: bool,
    ) -> Result<(), SyncError> {
        let Some(run) = self.seen_run else {
            return Ok(());
        };
        let unseen = self.members.unseen_members(&self.brand.id, run).await?;
        let ids: Vec<String> = unseen.iter().map(|m| m.member_id.clone()).collect();
        if erase {
            return self.erase(&ids, touched, tally).await;
        }
        for m in self.members.delete_members(&self.brand.id, &ids).await? {
            tracing::info!(brand = %self.brand.id, customer = %m.member_id, "customer no longer seen in the brand's stores: left the brand");
            touched.keys.insert(m.contact_key);
        }
        Ok(())
    }

    /// Delta run: `CustomerDeleted` messages since the cursor.
    async fn read_deletions(
        &self,
        since: Option<OffsetDateTime>,
        touched: &mut Touched,
        tally: &mut Tally,
    ) -> Result<Option<DeltaPosition>, SyncError> {
        let mut pager = self.pager::<Message>(
            "messages",
            since,
            vec![("where".into(), "type = \"CustomerDeleted\"".into())],
        );
        while let Some(page) = pager.next_page().await? {
            let ids: Vec<String> = page
                .iter()
                .filter(|m| m.kind == "CustomerDeleted")
                .map(|m| m.resource.id.clone())
                .collect();
            self.erase(&ids, touched, tally).await?;
        }
        Ok(pager.position().await)
    }

    async fn erase(
        &self,
        customer_ids: &[String],
        touched: &mut Touched,
        tally: &mut Tally,
    ) -> Result<(), SyncError> {
        if customer_ids.is_empty() {
            return Ok(());
        }
        let now = (self.sync.clock)();
        let deleted = self
            .members
            .delete_members(&self.brand.id, customer_ids)
            .await?;
        let mut retired = Vec::new();
        let mut keys = Vec::new();
        let values: Vec<String> = deleted.iter().filter_map(|m| m.secondary.clone()).collect();
        self.touch_holders(values, touched).await?;
        for m in deleted {
            tally.stats.deleted += 1;
            tracing::info!(brand = %self.brand.id, customer = %m.member_id, contact = %m.contact_key, "customer deleted in commercetools: erasing");
            if !self.dry {
                for entity in [map::CUSTOMER, map::CONTACT] {
                    self.sync
                        .store
                        .scrub_rejected(entity, &m.member_id, now)
                        .await?;
                }
            }
            touched.keys.insert(m.contact_key.clone());
            keys.push(m.contact_key.clone());
            if let Ok(facts) = serde_json::from_value::<MemberFacts>(m.facts) {
                retired.extend(self.retired_row(
                    &m.contact_key,
                    &facts,
                    &Retirement::Erased { at: now },
                ));
            }
        }
        // The same address seen on guest orders or carts is the same person: erased too. A
        // registered account left with the address keeps the contact (and its own consent).
        let remaining = self.members.members_by_keys(&self.brand.id, &keys).await?;
        let guests: Vec<String> = remaining
            .iter()
            .filter(|m| m.member_id.starts_with("guest:"))
            .filter(|g| {
                !remaining
                    .iter()
                    .any(|m| m.contact_key == g.contact_key && !m.member_id.starts_with("guest:"))
            })
            .map(|g| g.member_id.clone())
            .collect();
        self.members.delete_members(&self.brand.id, &guests).await?;
        // Stored at once: the unsubscribe must go out even if this run fails later on.
        self.members.put_retired(&retired).await?;
        Ok(())
    }

    async fn reject(
        &self,
        r: &Rejection,
        tally: &mut Tally,
        counts: bool,
    ) -> Result<(), SyncError> {
        let mut buffer = Vec::with_capacity(1);
        self.note(r, tally, counts, &mut buffer);
        self.flush_rejections(buffer).await
    }

    /// Counts and logs a rejection (or a warning, when it does not `count`) and queues it for
    /// [`BrandRun::flush_rejections`].
    fn note(&self, r: &Rejection, tally: &mut Tally, counts: bool, buffer: &mut Vec<NewRejected>) {
        if counts {
            tally.stats.rejected += 1;
        }
        tracing::info!(brand = %self.brand.id, entity = r.entity, id = %r.id, field = %r.field, reason = %r.reason, "contact record rejected or trimmed");
        buffer.push(NewRejected {
            route: self.brand.id.clone(),
            entity: r.entity.to_owned(),
            ct_id: r.id.clone(),
            field: Some(r.field.clone()),
            reason: r.reason.clone(),
            payload: None,
            at: OffsetDateTime::now_utc(),
        });
    }

    /// Stores queued rejections in one transaction (nothing in a dry run).
    async fn flush_rejections(&self, buffer: Vec<NewRejected>) -> Result<(), SyncError> {
        if !self.dry {
            self.sync.store.add_rejected_many(&buffer).await?;
        }
        Ok(())
    }

    /// Merges every touched key and sends what changed.
    async fn write(&self, touched: &Touched, tally: &mut Tally) -> Result<(), SyncError> {
        let settings = &self.settings().contacts;
        // Every pending retirement is retried until Omnisend confirms it.
        let mut keys: BTreeSet<String> = touched.keys.clone();
        keys.extend(self.members.retired_keys(&self.brand.id).await?);
        let keys: Vec<String> = keys.into_iter().collect();
        let batched = self.full || keys.len() > settings.single_request_limit;
        let mut writer = BatchWriter::new(
            Target {
                route: &self.brand.id,
                entity: CONTACTS,
                endpoint: BatchEndpoint::Contacts,
                id_field: ItemKey::FirstIdentifier,
            },
            self.sink,
            &self.sync.store,
            self.settings().omnisend.batch_size,
            None,
        )
        .track_confirmed();
        let mut known: HashSet<String> = HashSet::new();
        let mut retiring: Vec<String> = Vec::new();
        let mut erasing: Vec<String> = Vec::new();
        let mut singles: Vec<Planned> = Vec::new();
        for chunk in keys.chunks(KEY_CHUNK) {
            let rows = self.members.members_by_keys(&self.brand.id, chunk).await?;
            let secondaries: Vec<String> =
                rows.iter().filter_map(|r| r.secondary.clone()).collect();
            let mut by_key: BTreeMap<String, Vec<MemberFacts>> = BTreeMap::new();
            for row in rows {
                if let Ok(f) = serde_json::from_value::<MemberFacts>(row.facts) {
                    by_key.entry(row.contact_key).or_default().push(f);
                }
            }
            // Everyone holding one of these numbers (or addresses): the earliest created owns it,
            // and their statements about it count for whichever contact sends it.
            let holders: Vec<(String, MemberFacts)> = self
                .members
                .members_by_secondary(&self.brand.id, &secondaries)
                .await?
                .into_iter()
                .filter_map(|r| {
                    let f = serde_json::from_value::<MemberFacts>(r.facts).ok()?;
                    Some((r.contact_key, f))
                })
                .collect();
            let mut owners: HashMap<String, (String, String)> = HashMap::new();
            for (key, f) in &holders {
                if let Some(v) = f.secondary(self.primary()) {
                    // Rows come ordered by (secondary, created_at, member_id): first wins.
                    owners
                        .entry(v.to_owned())
                        .or_insert_with(|| (key.clone(), f.member_id.clone()));
                }
            }
            let records = self
                .sync
                .store
                .records(&self.brand.id, CONTACTS, chunk)
                .await?;
            let pending = self.members.retired(&self.brand.id, chunk).await?;
            let mut dropped = Vec::new();
            let mut revived = Vec::new();
            let mut clean_members = Vec::new();
            let mut conflicts = Vec::new();
            for key in chunk {
                let body = match by_key.get(key.as_str()) {
                    Some(members) => {
                        let owner = |v: &str| match owners.get(v) {
                            Some((k, m)) if k != key => Ownership::Theirs {
                                contact_key: k,
                                member_id: m,
                            },
                            _ => Ownership::Ours,
                        };
                        let others: Vec<MemberFacts> = holders
                            .iter()
                            .filter(|(k, _)| k != key)
                            .map(|(_, f)| f)
                            .filter(|f| {
                                members.iter().any(|m| {
                                    m.secondary(self.primary()).is_some()
                                        && m.secondary(self.primary())
                                            == f.secondary(self.primary())
                                })
                            })
                            .cloned()
                            .collect();
                        let Some((merged, conflict)) = map::merge_with_holders(
                            members,
                            &others,
                            self.primary(),
                            settings,
                            true,
                            owner,
                        ) else {
                            continue;
                        };
                        match &conflict {
                            Some(c) => self.note(c, tally, false, &mut conflicts),
                            None => {
                                clean_members.extend(members.iter().map(|m| m.member_id.clone()))
                            }
                        }
                        if pending.contains_key(key) {
                            revived.push(key.clone());
                        }
                        merged.body
                    }
                    None => {
                        let Some(p) = pending.get(key) else { continue };
                        // Omnisend never held this contact: nothing to mark or unsubscribe.
                        let held = records.get(key).is_some_and(|r| {
                            r.omnisend_id.is_some() && r.status != RecordStatus::Deleted
                        });
                        let body = serde_json::from_value::<omnisend::contacts::ContactRequest>(
                            p.body.clone(),
                        )
                        .ok();
                        let Some(body) = body.filter(|_| held) else {
                            dropped.push(key.clone());
                            continue;
                        };
                        if p.reason == "erased" {
                            erasing.push(key.clone());
                        }
                        retiring.push(key.clone());
                        body
                    }
                };
                let hash = payload_hash(&body);
                let record = records.get(key);
                let unchanged = record.is_some_and(|r| {
                    !self.force && r.status == RecordStatus::Synced && r.payload_hash == hash
                });
                if unchanged {
                    tally.stats.unchanged += 1;
                    continue;
                }
                if record.is_some_and(|r| r.omnisend_id.is_some()) {
                    known.insert(key.clone());
                }
                let echo = body
                    .identifiers
                    .first()
                    .map(|i| i.id.clone())
                    .unwrap_or_default();
                let value = serde_json::to_value(&body)
                    .map_err(|e| SyncError::Config(format!("contact {key}: {e}")))?;
                let planned = Planned::new(key.clone(), 0, hash, value)
                    .match_id(echo)
                    .held(known.contains(key));
                if batched {
                    writer.upsert(planned).await?;
                } else {
                    singles.push(planned);
                }
            }
            self.flush_rejections(conflicts).await?;
            if !self.dry {
                self.members
                    .delete_retired(&self.brand.id, &revived)
                    .await?;
                self.members
                    .delete_retired(&self.brand.id, &dropped)
                    .await?;
                self.sync
                    .store
                    .resolve_rejected_many(
                        &self.brand.id,
                        map::CONTACT,
                        &clean_members,
                        OffsetDateTime::now_utc(),
                    )
                    .await?;
            }
        }
        writer.finish().await?;
        let mut confirmed: Vec<String> = writer.confirmed().to_vec();
        let ws = writer.stats.clone();
        tally.stats.rejected += ws.rejected;
        tally.stats.failed += ws.failed;
        for p in singles {
            let held = known.contains(&p.ct_id);
            if let Some(key) = self.send_one(p, held, tally).await? {
                confirmed.push(key);
            }
        }
        for key in &confirmed {
            if known.contains(key) {
                tally.stats.updated += 1;
            } else {
                tally.stats.created += 1;
            }
        }
        let confirmed: HashSet<&String> = confirmed.iter().collect();
        let done: Vec<String> = retiring
            .into_iter()
            .filter(|k| confirmed.contains(k))
            .collect();
        if !self.dry {
            self.members.delete_retired(&self.brand.id, &done).await?;
            // An erased contact's refused payloads go too.
            let now = OffsetDateTime::now_utc();
            for key in erasing.iter().filter(|k| confirmed.contains(k)) {
                self.sync.store.scrub_rejected(CONTACTS, key, now).await?;
            }
        }
        Ok(())
    }

    /// `POST /contacts` for one contact; `Some(key)` when confirmed.
    /// `held`: Omnisend held the contact before (kept on failure, so a later retirement or
    /// update still knows it).
    async fn send_one(
        &self,
        p: Planned,
        held: bool,
        tally: &mut Tally,
    ) -> Result<Option<String>, SyncError> {
        let now = OffsetDateTime::now_utc();
        let result = self.sink.post_contact(&p.body).await;
        if self.dry {
            return Ok(result.is_ok().then_some(p.ct_id));
        }
        let record =
            |status, hash: &str, omnisend_id: Option<String>, error: Option<String>| SyncRecord {
                route: self.brand.id.clone(),
                entity: CONTACTS.into(),
                ct_id: p.ct_id.clone(),
                ct_version: 0,
                payload_hash: hash.to_owned(),
                omnisend_id,
                status,
                batch_id: None,
                last_error: error,
                synced_at: (status == RecordStatus::Synced).then_some(now),
                seen_run: None,
                refresh_at: None,
            };
        match result {
            Ok(id) => {
                self.sync
                    .store
                    .upsert_records(&[record(
                        RecordStatus::Synced,
                        &p.hash,
                        Some(id.unwrap_or_else(|| p.ct_id.clone())),
                        None,
                    )])
                    .await?;
                self.sync
                    .store
                    .resolve_rejected_many(
                        &self.brand.id,
                        CONTACTS,
                        std::slice::from_ref(&p.ct_id),
                        now,
                    )
                    .await?;
                Ok(Some(p.ct_id))
            }
            // Only a refusal of the body is about this contact; 401, 403, 404 … are about the
            // request and end the run (below), like a whole batch refused for them.
            Err(OmnisendError::Rejected {
                status: status @ (400 | 409 | 413 | 422),
                problem,
                ..
            }) => {
                let reason = format!(
                    "Omnisend refused the contact ({status}): {}",
                    problem_summary(&problem)
                );
                tracing::warn!(brand = %self.brand.id, contact = %p.ct_id, reason = %mask_text(&reason), "contact rejected");
                tally.stats.rejected += 1;
                self.sync
                    .store
                    .add_rejected(&NewRejected {
                        route: self.brand.id.clone(),
                        entity: CONTACTS.into(),
                        ct_id: p.ct_id.clone(),
                        field: problem.errors.first().and_then(|e| e.field.clone()),
                        reason: reason.clone(),
                        payload: Some(p.body.clone()),
                        at: now,
                    })
                    .await?;
                self.sync
                    .store
                    .upsert_records(&[record(
                        RecordStatus::Rejected,
                        "",
                        held.then(|| p.ct_id.clone()),
                        Some(reason),
                    )])
                    .await?;
                Ok(None)
            }
            Err(e @ OmnisendError::Rejected { .. }) => Err(SyncError::omnisend(&self.brand.id, e)),
            Err(e) => {
                tracing::warn!(brand = %self.brand.id, contact = %p.ct_id, error = %mask_text(&e.to_string()), "contact not written; the next run retries it");
                tally.stats.failed += 1;
                self.sync
                    .store
                    .upsert_records(&[record(
                        RecordStatus::Failed,
                        "",
                        held.then(|| p.ct_id.clone()),
                        Some(e.to_string()),
                    )])
                    .await?;
                Ok(None)
            }
        }
    }
}
