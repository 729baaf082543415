//! Catalog sync: categories, then products, per store route.
//!
//! Full run: every category and every product (`/products`, so unpublished ones are seen too)
//! is mapped and planned; what the state store knows but the run did not see is removed from
//! Omnisend. Delta run: only products modified since the cursor (minus an overlap window);
//! unpublished products are detected from `masterData.published`. The cursor moves only after
//! every write of the run is confirmed. A changed mapping fingerprint turns the next run into a
//! full refresh, with the reason reported.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use commercetools::CtClient;
use commercetools::models::{Category, Channel, Product, ProductType};
use commercetools::paging::{DeltaPosition, PageMode, quote_literal};
use omnisend::Deleted;
use omnisend::models::BatchEndpoint;
use time::OffsetDateTime;

use super::pages::ReadAhead;
use super::sink::Sink;
use super::writer::{BatchWriter, ItemKey, Planned, Target, refusal};
use super::{Mode, RunSummary, SyncError};
use crate::config::{Settings, StoreSettings, UnpublishedPolicy};
use crate::mapping::catalog::{CatalogContext, map_category, map_product, next_price_change};
use crate::mapping::{Rejection, payload_hash};
use crate::store::{
    Cursor, NewRejected, RecordStatus, Rejected, RejectedFilter, RunStats, StateStore, SyncRecord,
};
use serde::Serialize;

/// Products fetched by id per request when mapping again those with a price change due.
const REFRESH_CHUNK: usize = 100;

/// Entity names used in the state store and run reports.
pub const CATEGORIES: &str = "categories";
/// Entity name of products.
pub const PRODUCTS: &str = "products";

/// Whether `entity` (of a cursor, run or record) belongs to the catalog sync.
pub fn is_catalog_entity(entity: &str) -> bool {
    entity == PRODUCTS || entity == CATEGORIES
}

/// What the caller asked for.
#[derive(Clone, Debug, Default)]
pub struct CatalogOptions {
    /// Force a full run.
    pub full: bool,
    /// Only this store route.
    pub store: Option<String>,
}

/// Progress notification for terminals.
#[derive(Clone, Debug)]
pub struct Progress<'a> {
    /// Store route.
    pub store: &'a str,
    /// Entity.
    pub entity: &'a str,
    /// Records seen so far in this run.
    pub seen: u64,
}

/// The catalog sync of all configured stores.
pub struct CatalogSync {
    ct: CtClient,
    store: StateStore,
    settings: Settings,
    sinks: HashMap<String, Sink>,
    clock: Clock,
}

/// Where a run's notion of "now" comes from (price validity, the full run's watermark).
pub type Clock = Arc<dyn Fn() -> OffsetDateTime + Send + Sync>;

/// commercetools lookups shared by every route of one run.
struct Lookups {
    product_types: HashMap<String, String>,
    channels: HashMap<String, String>,
}

impl CatalogSync {
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

    /// Replaces the wall clock (tests move time forward without waiting).
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Runs categories then products for each selected store.
    pub async fn run(
        &self,
        opts: &CatalogOptions,
        progress: &(dyn Fn(Progress<'_>) + Sync),
    ) -> Result<Vec<RunSummary>, SyncError> {
        let stores = self
            .settings
            .select_stores(opts.store.as_deref())
            .map_err(|e| SyncError::Config(e.to_string()))?;
        let lookups = self.lookups().await?;
        let mut summaries = Vec::new();
        for store_settings in stores {
            summaries.extend(
                self.run_route(store_settings, &lookups, opts, progress)
                    .await?,
            );
        }
        Ok(summaries)
    }

    async fn lookups(&self) -> Result<Lookups, SyncError> {
        let product_types: Vec<ProductType> = self.ct.all("product-types").await?;
        let channels: Vec<Channel> = self.ct.all("channels").await?;
        Ok(Lookups {
            product_types: product_types.into_iter().map(|t| (t.id, t.name)).collect(),
            channels: channels.into_iter().map(|c| (c.key, c.id)).collect(),
        })
    }

    /// The resolved route of a store: channel keys turned into ids, its sink, the clock.
    fn route<'a>(
        &'a self,
        ss: &'a StoreSettings,
        lookups: &'a Lookups,
    ) -> Result<Route<'a>, SyncError> {
        let sink = self.sinks.get(&ss.key).ok_or_else(|| {
            SyncError::Config(format!(
                "no Omnisend brand configured for store {:?}",
                ss.key
            ))
        })?;
        let channel_id = |key: &Option<String>, what: &str| -> Result<Option<String>, SyncError> {
            key.as_ref()
                .map(|k| {
                    lookups.channels.get(k).cloned().ok_or_else(|| {
                        SyncError::Config(format!(
                            "stores[{}].{what}: channel {k:?} does not exist in commercetools",
                            ss.key
                        ))
                    })
                })
                .transpose()
        };
        Ok(Route {
            settings: ss,
            locales: ss.locales.iter().map(|l| l.as_str().to_owned()).collect(),
            price_channel_id: channel_id(&ss.price_channel, "price_channel")?,
            supply_channel_id: channel_id(&ss.supply_channel, "supply_channel")?,
            product_types: &lookups.product_types,
            sink,
            now: (self.clock)(),
            force: false,
        })
    }

    async fn run_route(
        &self,
        ss: &StoreSettings,
        lookups: &Lookups,
        opts: &CatalogOptions,
        progress: &(dyn Fn(Progress<'_>) + Sync),
    ) -> Result<Vec<RunSummary>, SyncError> {
        let mut route = self.route(ss, lookups)?;
        route.force = opts.full;
        let sink = route.sink;
        let started = route.now;
        let fingerprint = ss.catalog_fingerprint(&self.settings.catalog);
        let cursor = self.store.cursor(PRODUCTS, &ss.key).await?;
        let (mode, reason) =
            super::choose_mode(cursor.as_ref(), &fingerprint, opts.full, "store", "catalog");
        if let Some(reason) = &reason {
            tracing::info!(store = %ss.key, %reason, "running a full catalog refresh");
        }
        let (categories, known_categories) = self.sync_categories(&route, progress).await?;
        // Products sent while a category is missing lack its id; keeping the cursor back makes
        // the next run look at them again (an explicit `--full` re-links all of them).
        let failed = categories.failed;
        let products = self
            .sync_products(&route, mode, cursor.as_ref(), &known_categories, progress)
            .await?;

        let mut out = vec![
            RunSummary {
                entity: CATEGORIES.into(),
                store: ss.key.clone(),
                mode: Mode::Full,
                reason: None,
                stats: categories,
            },
            RunSummary {
                entity: PRODUCTS.into(),
                store: ss.key.clone(),
                mode,
                reason,
                stats: products.stats.clone(),
            },
        ];
        let failed = failed + products.stats.failed;
        if !sink.is_dry_run() && failed == 0 {
            let watermark = match mode {
                // Anything modified while the full run read the catalog is picked up by the
                // next delta: start it from the moment this run began.
                Mode::Full => Some(started),
                Mode::Delta => match (
                    cursor.as_ref().and_then(|c| c.last_modified_at),
                    products.position,
                ) {
                    (Some(old), Some(p)) => Some(old.max(p.last_modified_at)),
                    (old, p) => old.or(p.map(|p| p.last_modified_at)),
                },
            };
            self.store
                .set_cursor(&Cursor {
                    entity: PRODUCTS.into(),
                    route: ss.key.clone(),
                    last_modified_at: watermark,
                    last_id: None,
                    mapping_fingerprint: Some(fingerprint),
                    updated_at: OffsetDateTime::now_utc(),
                })
                .await?;
        } else if failed > 0 {
            tracing::warn!(store = %ss.key, failed, "cursor left in place: some records could not be written");
            out[1]
                .reason
                .get_or_insert_with(|| "cursor not advanced: some writes failed".into());
        }
        Ok(out)
    }

    fn context<'a>(
        &'a self,
        route: &'a Route<'a>,
        known_categories: &'a HashSet<String>,
    ) -> CatalogContext<'a> {
        CatalogContext {
            store_key: &route.settings.key,
            locales: &route.locales,
            currency: route.settings.currency.as_str(),
            country: route.settings.country.as_ref().map(|c| c.as_str()),
            price_channel_id: route.price_channel_id.as_deref(),
            supply_channel_id: route.supply_channel_id.as_deref(),
            product_url: &route.settings.product_url,
            catalog: &self.settings.catalog,
            product_types: route.product_types,
            known_categories,
            now: route.now,
        }
    }

    /// Categories are few: always a full pass. Returns the stats and the ids present in
    /// Omnisend afterwards (products reference only those).
    async fn sync_categories(
        &self,
        route: &Route<'_>,
        progress: &(dyn Fn(Progress<'_>) + Sync),
    ) -> Result<(RunStats, HashSet<String>), SyncError> {
        let key = route.settings.key.as_str();
        let dry = route.sink.is_dry_run();
        let book = self.begin_run(route, CATEGORIES, Mode::Full).await?;
        let run_id = book.run_id;
        let result = async {
            let empty = HashSet::new();
            let ctx = self.context(route, &empty);
            let target = Target {
                route: key,
                entity: CATEGORIES,
                endpoint: BatchEndpoint::Categories,
                id_field: ItemKey::Field("categoryID"),
            };
            let mut writer = BatchWriter::new(
                target,
                route.sink,
                &self.store,
                self.settings.omnisend.batch_size,
                run_id,
            )
            .track_confirmed();
            let mut seen_ids = SeenIds::new(run_id, true);
            let mut known = HashSet::new();
            let mut seen = 0u64;
            let mut unchanged = 0u64;
            let mut pager = self.ct.pager::<Category>(
                "categories",
                PageMode::Full { after_id: None },
                self.settings.commercetools.page_size,
                vec![],
            );
            while let Some(page) = pager.next_page().await? {
                seen += page.len() as u64;
                let ids: Vec<String> = page.iter().map(|c| c.id.clone()).collect();
                let records = self.store.records(key, CATEGORIES, &ids).await?;
                for c in &page {
                    match map_category(c, &ctx) {
                        Ok(body) => {
                            let hash = payload_hash(&body);
                            let body = serde_json::to_value(&body).expect("category serializes");
                            match plan(records.get(&c.id), &hash, route.force) {
                                Plan::Unchanged => {
                                    unchanged += 1;
                                    known.insert(c.id.clone());
                                }
                                Plan::Create => {
                                    writer
                                        .create(Planned::new(c.id.clone(), c.version, hash, body))
                                        .await?
                                }
                                Plan::Replace => {
                                    writer
                                        .replace(Planned::new(c.id.clone(), c.version, hash, body))
                                        .await?
                                }
                            }
                        }
                        Err(rejection) => {
                            self.reject(key, CATEGORIES, &rejection, dry, &mut writer.stats)
                                .await?
                        }
                    }
                }
                seen_ids.saw(&self.store, key, CATEGORIES, ids).await?;
                progress(Progress {
                    store: key,
                    entity: CATEGORIES,
                    seen,
                });
            }
            writer.finish().await?;
            known.extend(writer.confirmed().iter().cloned());
            let mut stats = writer.stats.clone();
            stats.seen = seen;
            stats.unchanged = unchanged;
            stats.deleted += self
                .remove_unseen(route, CATEGORIES, &seen_ids, |id| async move {
                    route.sink.delete_category(&id).await
                })
                .await?;
            Ok::<_, SyncError>((stats, known))
        }
        .await;
        let (mut stats, known) = self.end_run(book, route, result).await?;
        (stats.requests, stats.duration_ms) = (book.requests(route), book.elapsed_ms());
        Ok((stats, known))
    }

    async fn sync_products(
        &self,
        route: &Route<'_>,
        mode: Mode,
        cursor: Option<&Cursor>,
        known_categories: &HashSet<String>,
        progress: &(dyn Fn(Progress<'_>) + Sync),
    ) -> Result<ProductsOutcome, SyncError> {
        let key = route.settings.key.as_str();
        let dry = route.sink.is_dry_run();
        let book = self.begin_run(route, PRODUCTS, mode).await?;
        let run_id = book.run_id;
        let full_run_id = if mode == Mode::Full { run_id } else { None };
        let result = async {
            let ctx = self.context(route, known_categories);
            let target = Target {
                route: key,
                entity: PRODUCTS,
                endpoint: BatchEndpoint::Products,
                id_field: ItemKey::Field("id"),
            };
            let mut writer = BatchWriter::new(
                target,
                route.sink,
                &self.store,
                self.settings.omnisend.batch_size,
                full_run_id,
            );
            let mut seen_ids = SeenIds::new(run_id, mode == Mode::Full);
            let page_mode = match (mode, cursor.and_then(|c| c.last_modified_at)) {
                (Mode::Delta, Some(since)) => PageMode::Delta {
                    since: since - self.settings.catalog.delta_overlap,
                    after: None,
                },
                _ => PageMode::Full { after_id: None },
            };
            let mut pager = ReadAhead::start(self.ct.pager::<Product>(
                "products",
                page_mode,
                self.settings.commercetools.page_size,
                vec![],
            ));
            let mut seen = 0u64;
            let mut unchanged = 0u64;
            let mut to_delete: Vec<SyncRecord> = Vec::new();
            // A delta run also maps again what has a price starting or ending by now: such a
            // change does not move `lastModifiedAt`. (A full run reads everything anyway.)
            let mut due = match mode {
                Mode::Delta if !route.force => self.due_for_refresh(key, route.now).await?,
                _ => BTreeSet::new(),
            };
            let mut refreshing = false;
            loop {
                let page = if !refreshing {
                    match pager.next_page().await? {
                        Some(page) => {
                            for p in &page {
                                due.remove(&p.id);
                            }
                            page
                        }
                        None => {
                            refreshing = true;
                            continue;
                        }
                    }
                } else {
                    let ids: Vec<String> = std::iter::from_fn(|| due.pop_first())
                        .take(REFRESH_CHUNK)
                        .collect();
                    if ids.is_empty() {
                        break;
                    }
                    self.products_by_id(&ids).await?
                };
                seen += page.len() as u64;
                let ids: Vec<String> = page.iter().map(|p| p.id.clone()).collect();
                let records = self.store.records(key, PRODUCTS, &ids).await?;
                let mut unchanged_ids = Vec::new();
                let mut touched = Vec::new();
                for product in &page {
                    let record = records.get(&product.id);
                    let published = product.master_data.published;
                    if !published && self.settings.catalog.unpublished == UnpublishedPolicy::Delete
                    {
                        if let Some(r) = record.filter(|r| {
                            r.status != RecordStatus::Deleted && r.omnisend_id.is_some()
                        }) {
                            to_delete.push(r.clone());
                        }
                        continue;
                    }
                    if !published && record.is_none() {
                        // Never sent and not for sale: nothing to tell Omnisend.
                        continue;
                    }
                    let projection = product.current_projection();
                    match map_product(&projection, &ctx) {
                        Ok(body) => {
                            let hash = payload_hash(&body);
                            let refresh_at = next_price_change(&projection, &ctx);
                            match plan(record, &hash, route.force) {
                                Plan::Unchanged => {
                                    unchanged += 1;
                                    unchanged_ids.push(product.id.clone());
                                    if let Some(r) = record.filter(|r| r.refresh_at != refresh_at) {
                                        touched.push(SyncRecord {
                                            refresh_at,
                                            ..r.clone()
                                        });
                                    }
                                }
                                p => {
                                    let body =
                                        serde_json::to_value(&body).expect("product serializes");
                                    let planned = Planned::new(
                                        product.id.clone(),
                                        product.version,
                                        hash,
                                        body,
                                    )
                                    .refresh_at(refresh_at);
                                    if p == Plan::Create {
                                        writer.create(planned).await?
                                    } else {
                                        writer.replace(planned).await?
                                    }
                                }
                            }
                        }
                        Err(rejection) => {
                            self.reject(key, PRODUCTS, &rejection, dry, &mut writer.stats)
                                .await?;
                            // Its last good copy must not go on advertising an old price or a
                            // dead URL: a product that cannot be mapped is taken out of the brand
                            // until it is fixed (then it is created again).
                            if let Some(r) = record.filter(|r| {
                                r.status != RecordStatus::Deleted && r.omnisend_id.is_some()
                            }) {
                                to_delete.push(r.clone());
                            }
                        }
                    }
                }
                if !dry {
                    // Unchanged, but its next price change moved.
                    self.store.upsert_records(&touched).await?;
                }
                if !dry && !unchanged_ids.is_empty() {
                    // What Omnisend already holds unchanged cannot still be rejected (the data was
                    // restored to what was last sent).
                    self.store
                        .resolve_rejected_many(
                            key,
                            PRODUCTS,
                            &unchanged_ids,
                            OffsetDateTime::now_utc(),
                        )
                        .await?;
                }
                seen_ids.saw(&self.store, key, PRODUCTS, ids).await?;
                progress(Progress {
                    store: key,
                    entity: PRODUCTS,
                    seen,
                });
            }
            writer.finish().await?;
            let mut stats = writer.stats.clone();
            stats.seen = seen;
            stats.unchanged = unchanged;
            for r in to_delete {
                stats.deleted += self.delete_product(route, &r.ct_id).await?;
            }
            stats.deleted += self
                .remove_unseen(route, PRODUCTS, &seen_ids, |id| async move {
                    route.sink.delete_product(&id).await
                })
                .await?;
            Ok::<_, SyncError>(ProductsOutcome {
                stats,
                position: pager.position().await,
            })
        }
        .await;
        let mut outcome = self.end_run(book, route, result).await?;
        (outcome.stats.requests, outcome.stats.duration_ms) =
            (book.requests(route), book.elapsed_ms());
        Ok(outcome)
    }

    /// Re-fetches, re-maps and re-sends open rejected catalog records (one by id, or all open
    /// category and product rejections).
    /// A record that now maps and is accepted is resolved; one that fails again stays open
    /// with the new reason.
    pub async fn replay(&self, only: Option<i64>) -> Result<Vec<ReplayOutcome>, SyncError> {
        let rejected = match only {
            Some(id) => match self.store.rejected(id).await? {
                Some(r) if r.resolved_at.is_none() => vec![r],
                Some(_) => {
                    return Err(SyncError::Config(format!(
                        "rejected record {id} is already resolved"
                    )));
                }
                None => {
                    return Err(SyncError::Config(format!(
                        "no rejected record with id {id}"
                    )));
                }
            },
            None => {
                let mut all = Vec::new();
                for entity in [CATEGORIES, PRODUCTS] {
                    all.extend(
                        self.store
                            .list_rejected(&RejectedFilter {
                                entity: Some(entity.into()),
                                route: None,
                                open_only: true,
                                limit: i64::MAX,
                            })
                            .await?,
                    );
                }
                all
            }
        };
        let lookups = self.lookups().await?;
        let mut outcomes = Vec::new();
        for r in rejected {
            let Some(ss) = self.settings.stores.iter().find(|s| s.key == r.route) else {
                outcomes.push(ReplayOutcome::from(
                    &r,
                    false,
                    format!("store {:?} is no longer configured", r.route),
                ));
                continue;
            };
            let route = self.route(ss, &lookups)?;
            let outcome = self.replay_one(&route, &r).await?;
            outcomes.push(outcome);
        }
        Ok(outcomes)
    }

    /// Resolves a rejection that no longer needs sending (the record is gone or unpublished).
    async fn resolved_without_sending(
        &self,
        route: &str,
        r: &Rejected,
        detail: String,
    ) -> Result<ReplayOutcome, SyncError> {
        self.store
            .resolve_rejected(route, &r.entity, &r.ct_id, OffsetDateTime::now_utc())
            .await?;
        Ok(ReplayOutcome::from(r, true, detail))
    }

    async fn replay_one(
        &self,
        route: &Route<'_>,
        r: &Rejected,
    ) -> Result<ReplayOutcome, SyncError> {
        let key = route.settings.key.as_str();
        let now = OffsetDateTime::now_utc();
        let Sink::Live(client) = route.sink else {
            return Err(SyncError::Config(
                "replay needs a live Omnisend brand".into(),
            ));
        };
        let (version, result) = match r.entity.as_str() {
            CATEGORIES => {
                let Some(c) = self
                    .ct
                    .get::<Category>(&format!("categories/{}", r.ct_id), &[])
                    .await?
                else {
                    return self
                        .resolved_without_sending(
                            key,
                            r,
                            "category no longer exists; nothing to send".into(),
                        )
                        .await;
                };
                let empty = HashSet::new();
                match map_category(&c, &self.context(route, &empty)) {
                    Err(rej) => (c.version, Err(rej)),
                    Ok(body) => {
                        let hash = payload_hash(&body);
                        match client.upsert_category(&body).await {
                            Ok(_) => (c.version, Ok((hash, None))),
                            Err(e) => (c.version, Err(refused("category", &r.ct_id, key, e)?)),
                        }
                    }
                }
            }
            PRODUCTS => {
                let Some(p) = self
                    .ct
                    .get::<Product>(&format!("products/{}", r.ct_id), &[])
                    .await?
                else {
                    return self
                        .resolved_without_sending(
                            key,
                            r,
                            "product no longer exists; nothing to send".into(),
                        )
                        .await;
                };
                if !p.master_data.published
                    && self.settings.catalog.unpublished == UnpublishedPolicy::Delete
                {
                    return self
                        .resolved_without_sending(
                            key,
                            r,
                            "product is unpublished; nothing to send".into(),
                        )
                        .await;
                }
                let projection = p.current_projection();
                let cat_ids: Vec<String> =
                    projection.categories.iter().map(|c| c.id.clone()).collect();
                let known: HashSet<String> = self
                    .store
                    .records(key, CATEGORIES, &cat_ids)
                    .await?
                    .into_values()
                    .filter(|c| c.status == RecordStatus::Synced)
                    .map(|c| c.ct_id)
                    .collect();
                let ctx = self.context(route, &known);
                match map_product(&projection, &ctx) {
                    Err(rej) => (p.version, Err(rej)),
                    Ok(body) => {
                        let hash = payload_hash(&body);
                        match client.upsert_product(&body).await {
                            Ok(_) => (p.version, Ok((hash, next_price_change(&projection, &ctx)))),
                            Err(e) => (p.version, Err(refused("product", &r.ct_id, key, e)?)),
                        }
                    }
                }
            }
            other => {
                return Ok(ReplayOutcome::from(
                    r,
                    false,
                    format!("entity {other:?} cannot be replayed by the catalog sync"),
                ));
            }
        };
        match result {
            Ok((hash, refresh_at)) => {
                self.store
                    .upsert_records(&[SyncRecord {
                        route: key.to_owned(),
                        entity: r.entity.clone(),
                        ct_id: r.ct_id.clone(),
                        ct_version: version,
                        payload_hash: hash,
                        omnisend_id: Some(r.ct_id.clone()),
                        status: RecordStatus::Synced,
                        batch_id: None,
                        last_error: None,
                        synced_at: Some(now),
                        seen_run: None,
                        refresh_at,
                    }])
                    .await?;
                self.store
                    .resolve_rejected(key, &r.entity, &r.ct_id, now)
                    .await?;
                Ok(ReplayOutcome::from(r, true, "sent".into()))
            }
            Err(rej) => {
                let entity: &str = &r.entity;
                let mut stats = RunStats::default();
                self.reject(key, entity, &rej, false, &mut stats).await?;
                Ok(ReplayOutcome::from(
                    r,
                    false,
                    format!("still rejected: {}: {}", rej.field, rej.reason),
                ))
            }
        }
    }

    /// Ids of the route's products whose next price change has come.
    async fn due_for_refresh(
        &self,
        route: &str,
        now: OffsetDateTime,
    ) -> Result<BTreeSet<String>, SyncError> {
        let mut due = BTreeSet::new();
        loop {
            let after = due.last().cloned();
            let page = self
                .store
                .due_for_refresh(route, PRODUCTS, now, after.as_deref(), 500)
                .await?;
            if page.is_empty() {
                return Ok(due);
            }
            due.extend(page);
        }
    }

    /// The products with these ids (those that still exist).
    async fn products_by_id(&self, ids: &[String]) -> Result<Vec<Product>, SyncError> {
        let list = ids
            .iter()
            .map(|id| quote_literal(id))
            .collect::<Vec<_>>()
            .join(", ");
        let query = [
            ("where".to_owned(), format!("id in ({list})")),
            ("limit".to_owned(), ids.len().to_string()),
            ("withTotal".to_owned(), "false".to_owned()),
        ];
        Ok(self.ct.query::<Product>("products", &query).await?.results)
    }

    async fn delete_product(&self, route: &Route<'_>, id: &str) -> Result<u64, SyncError> {
        let key = route.settings.key.as_str();
        route
            .sink
            .delete_product(id)
            .await
            .map_err(|e| SyncError::omnisend(key, e))?;
        if !route.sink.is_dry_run() {
            self.store
                .delete_records(key, PRODUCTS, &[id.to_owned()])
                .await?;
        }
        Ok(1)
    }

    /// Removes from Omnisend what the state store knows but this full run did not see
    /// (nothing for a delta run).
    async fn remove_unseen<F, Fut>(
        &self,
        route: &Route<'_>,
        entity: &str,
        seen_ids: &SeenIds,
        delete: F,
    ) -> Result<u64, SyncError>
    where
        F: Fn(String) -> Fut,
        Fut: std::future::Future<Output = Result<Deleted, omnisend::OmnisendError>>,
    {
        let Some(run_id) = seen_ids.run_id() else {
            return Ok(0);
        };
        let key = route.settings.key.as_str();
        let mut deleted = 0;
        let mut after: Option<String> = None;
        loop {
            let page = self
                .store
                .unseen_records(key, entity, run_id, after.as_deref(), 500)
                .await?;
            let Some(last) = page.last() else { break };
            after = Some(last.ct_id.clone());
            let mut gone = Vec::new();
            let page: Vec<SyncRecord> = page
                .into_iter()
                .filter(|r| !seen_ids.remembers(&r.ct_id))
                .collect();
            for r in page.iter().filter(|r| r.omnisend_id.is_some()) {
                delete(r.ct_id.clone())
                    .await
                    .map_err(|e| SyncError::omnisend(key, e))?;
                gone.push(r.ct_id.clone());
                deleted += 1;
            }
            let never_sent: Vec<String> = page
                .iter()
                .filter(|r| r.omnisend_id.is_none())
                .map(|r| r.ct_id.clone())
                .collect();
            gone.extend(never_sent);
            if !route.sink.is_dry_run() {
                self.store.delete_records(key, entity, &gone).await?;
            }
        }
        Ok(deleted)
    }

    async fn reject(
        &self,
        route: &str,
        entity: &str,
        r: &Rejection,
        dry: bool,
        stats: &mut RunStats,
    ) -> Result<(), SyncError> {
        stats.rejected += 1;
        tracing::info!(store = route, entity, id = %r.id, field = %r.field, reason = %r.reason, "record rejected");
        if dry {
            return Ok(());
        }
        self.store
            .add_rejected(&NewRejected {
                route: route.to_owned(),
                entity: entity.to_owned(),
                ct_id: r.id.clone(),
                field: Some(r.field.clone()),
                reason: r.reason.clone(),
                payload: None,
                at: OffsetDateTime::now_utc(),
            })
            .await?;
        Ok(())
    }

    /// Starts the bookkeeping of one entity run (no run row for a dry run).
    async fn begin_run(
        &self,
        route: &Route<'_>,
        entity: &str,
        mode: Mode,
    ) -> Result<RunBook, SyncError> {
        let run_id = if route.sink.is_dry_run() {
            None
        } else {
            Some(
                self.store
                    .start_run(
                        entity,
                        &route.settings.key,
                        mode.as_str(),
                        OffsetDateTime::now_utc(),
                    )
                    .await?,
            )
        };
        Ok(RunBook {
            run_id,
            clock: Instant::now(),
            requests_before: route.sink.requests(),
        })
    }

    /// Records how an entity run ended and hands its result back. A failed run's own error is
    /// what the caller sees, even when recording it fails too.
    async fn end_run<T: HasStats>(
        &self,
        book: RunBook,
        route: &Route<'_>,
        result: Result<T, SyncError>,
    ) -> Result<T, SyncError> {
        let Some(run_id) = book.run_id else {
            return result;
        };
        let now = OffsetDateTime::now_utc();
        let mut stats = match &result {
            Ok(r) => r.stats().clone(),
            Err(_) => RunStats::default(),
        };
        (stats.requests, stats.duration_ms) = (book.requests(route), book.elapsed_ms());
        match &result {
            Ok(_) => {
                self.store
                    .finish_run(run_id, &stats, "ok", None, now)
                    .await?
            }
            Err(e) => {
                if let Err(store_error) = self
                    .store
                    .finish_run(run_id, &stats, "failed", Some(&e.to_string()), now)
                    .await
                {
                    tracing::warn!(run_id, error = %store_error, "could not record the failed run");
                }
            }
        }
        result
    }
}

/// Checks the configured stores against the live project: every store key (other than the
/// project-wide `default`) and every channel key must exist. Returns one line per problem.
pub async fn check_project(ct: &CtClient, settings: &Settings) -> Result<Vec<String>, SyncError> {
    let stores: Vec<commercetools::models::Store> = ct.all("stores").await?;
    let channels: Vec<Channel> = ct.all("channels").await?;
    let store_keys: HashSet<&str> = stores.iter().map(|s| s.key.as_str()).collect();
    let channel_keys: HashSet<&str> = channels.iter().map(|c| c.key.as_str()).collect();
    let mut problems = Vec::new();
    for (i, s) in settings.stores.iter().enumerate() {
        if s.key != "default" && !store_keys.contains(s.key.as_str()) {
            problems.push(format!(
                "stores[{i}].key: store {:?} does not exist in commercetools",
                s.key
            ));
        }
        for (what, key) in [
            ("price_channel", &s.price_channel),
            ("supply_channel", &s.supply_channel),
        ] {
            if let Some(k) = key.as_deref().filter(|k| !channel_keys.contains(k)) {
                problems.push(format!(
                    "stores[{i}].{what}: channel {k:?} does not exist in commercetools"
                ));
            }
        }
    }
    Ok(problems)
}

/// What `rejected replay` did with one record.
#[derive(Clone, Debug, Serialize)]
pub struct ReplayOutcome {
    /// Rejected record id.
    pub id: i64,
    /// Entity.
    pub entity: String,
    /// Store route.
    pub store: String,
    /// commercetools id.
    pub ct_id: String,
    /// Whether the rejection is now resolved.
    pub resolved: bool,
    /// What happened.
    pub detail: String,
}

impl ReplayOutcome {
    /// The outcome for rejected record `r`.
    pub fn from(r: &Rejected, resolved: bool, detail: String) -> Self {
        Self {
            id: r.id,
            entity: r.entity.clone(),
            store: r.route.clone(),
            ct_id: r.ct_id.clone(),
            resolved,
            detail,
        }
    }
}

/// A single-item write Omnisend refused becomes a rejection; any other failure ends the call.
fn refused(
    entity: &'static str,
    id: &str,
    route: &str,
    e: omnisend::OmnisendError,
) -> Result<Rejection, SyncError> {
    match e {
        omnisend::OmnisendError::Rejected {
            status, problem, ..
        } => {
            let (field, reason) = refusal(status, Some(&problem));
            Ok(Rejection::new(
                entity,
                id,
                field.as_deref().unwrap_or(""),
                reason,
            ))
        }
        other => Err(SyncError::omnisend(route, other)),
    }
}

/// How a full run learns what disappeared from commercetools: a live run stamps the records it
/// saw with its run id; a dry run, which must not write, remembers the ids instead.
enum SeenIds {
    /// Delta run: nothing is removed.
    Off,
    /// Live full run.
    Run(i64),
    /// Dry full run.
    Memory(HashSet<String>),
}

impl SeenIds {
    fn new(run_id: Option<i64>, full: bool) -> Self {
        match (full, run_id) {
            (false, _) => SeenIds::Off,
            (true, Some(id)) => SeenIds::Run(id),
            (true, None) => SeenIds::Memory(HashSet::new()),
        }
    }

    async fn saw(
        &mut self,
        store: &StateStore,
        route: &str,
        entity: &str,
        ids: Vec<String>,
    ) -> Result<(), SyncError> {
        match self {
            SeenIds::Off => {}
            SeenIds::Run(run_id) => store.mark_seen(route, entity, &ids, *run_id).await?,
            SeenIds::Memory(set) => set.extend(ids),
        }
        Ok(())
    }

    /// The run id to compare records with (0, never issued, for a dry run).
    fn run_id(&self) -> Option<i64> {
        match self {
            SeenIds::Off => None,
            SeenIds::Run(id) => Some(*id),
            SeenIds::Memory(_) => Some(0),
        }
    }

    fn remembers(&self, id: &str) -> bool {
        matches!(self, SeenIds::Memory(set) if set.contains(id))
    }
}

struct Route<'a> {
    settings: &'a StoreSettings,
    locales: Vec<String>,
    price_channel_id: Option<String>,
    supply_channel_id: Option<String>,
    product_types: &'a HashMap<String, String>,
    sink: &'a Sink,
    now: OffsetDateTime,
    /// Re-send unchanged records (explicit `--full`).
    force: bool,
}

/// Bookkeeping of one entity run: its row, its clock, the sink's request count at its start.
#[derive(Clone, Copy)]
struct RunBook {
    run_id: Option<i64>,
    clock: Instant,
    requests_before: u64,
}

impl RunBook {
    fn requests(&self, route: &Route<'_>) -> u64 {
        route.sink.requests() - self.requests_before
    }

    fn elapsed_ms(&self) -> u64 {
        self.clock.elapsed().as_millis() as u64
    }
}

/// What an entity run produced, with its counters.
trait HasStats {
    fn stats(&self) -> &RunStats;
}

impl HasStats for (RunStats, HashSet<String>) {
    fn stats(&self) -> &RunStats {
        &self.0
    }
}

impl HasStats for ProductsOutcome {
    fn stats(&self) -> &RunStats {
        &self.stats
    }
}

struct ProductsOutcome {
    stats: RunStats,
    position: Option<DeltaPosition>,
}

#[derive(Debug, PartialEq, Eq)]
enum Plan {
    Unchanged,
    Create,
    Replace,
}

/// Decides from the stored record what a freshly mapped payload needs; `force` (an explicit
/// `--full`) re-sends unchanged records too, so drift made in Omnisend by hand is repaired.
fn plan(record: Option<&SyncRecord>, hash: &str, force: bool) -> Plan {
    match record {
        Some(r) if !force && r.status == RecordStatus::Synced && r.payload_hash == hash => {
            Plan::Unchanged
        }
        Some(r) if r.omnisend_id.is_some() && r.status != RecordStatus::Deleted => Plan::Replace,
        _ => Plan::Create,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(status: RecordStatus, hash: &str, omnisend: bool) -> SyncRecord {
        SyncRecord {
            route: "us".into(),
            entity: PRODUCTS.into(),
            ct_id: "p".into(),
            ct_version: 1,
            payload_hash: hash.into(),
            omnisend_id: omnisend.then(|| "p".into()),
            status,
            batch_id: None,
            last_error: None,
            synced_at: None,
            seen_run: None,
            refresh_at: None,
        }
    }

    #[test]
    fn unknown_record_is_created() {
        assert_eq!(plan(None, "h", false), Plan::Create);
    }

    #[test]
    fn synced_record_with_the_same_hash_is_unchanged() {
        assert_eq!(
            plan(Some(&record(RecordStatus::Synced, "h", true)), "h", false),
            Plan::Unchanged
        );
    }

    #[test]
    fn synced_record_with_another_hash_is_replaced() {
        assert_eq!(
            plan(Some(&record(RecordStatus::Synced, "old", true)), "h", false),
            Plan::Replace
        );
    }

    #[test]
    fn rejected_record_never_sent_is_created_again() {
        assert_eq!(
            plan(Some(&record(RecordStatus::Rejected, "", false)), "h", false),
            Plan::Create
        );
    }
}
