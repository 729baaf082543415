//! The scheduler of `ct-omnisend serve` (issue 5): delta syncs per entity and store at
//! `[schedule]` intervals, the full refresh on its cron schedule, and the delta runs that change
//! notifications ask for — each job on **one instance at a time**, however many instances share
//! the database.
//!
//! * **Jobs** ([`plan_jobs`]): `catalog:<store>` per store route and `contacts:<store>` per brand
//!   (named after the brand's first store). Both the delta and the full run of an entity and
//!   store are the same job, so they never overlap.
//! * **When** ([`decide`], a pure function): a run that started but never finished (its
//!   instance died or stopped) is redone at once; else a full run when the cron schedule fired
//!   since the last full run (or since the job was first seen); else a delta run when one was
//!   requested or the interval passed since the last start (or since the job was first seen: a
//!   new instance does not sync at start-up; `sync` does the first run).
//! * **Who**: every instance looks once per [`TICK`]; the one whose
//!   [`StateStore::try_start_job`] succeeds runs the job and renews its lease every third of
//!   `schedule.lease_secs`. If it dies, the lease runs out and the job is due again elsewhere.
//!   A lost lease stops the run.
//! * **Shutdown**: running jobs are stopped (a sync is resumable: it only moves its cursor at the
//!   end) and their leases released, so another instance may take them at once.
//!
//! Time comes from a [`Clock`]: the system clock in production, or a clock anchored to
//! `tokio::time` in tests, which then run under `tokio::time::pause()`.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use commercetools::CtClient;
use time::OffsetDateTime;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::config::{CronSchedule, Settings};
use crate::store::{JobState, StateStore};
use crate::sync::catalog::{CatalogOptions, CatalogSync};
use crate::sync::contacts::{ContactOptions, ContactSync};
use crate::sync::sink::Sink;

/// How often each instance looks for due jobs.
pub const TICK: Duration = Duration::from_secs(1);

/// Where the scheduler reads the time.
#[derive(Clone, Debug)]
pub enum Clock {
    /// `OffsetDateTime::now_utc()`.
    System,
    /// `at` plus the `tokio::time` elapsed since `since` (follows paused test time).
    Anchored {
        /// Wall time at `since`.
        at: OffsetDateTime,
        /// The tokio instant `at` corresponds to.
        since: tokio::time::Instant,
    },
    /// A time that moves only when told ([`Clock::advance`]); clones share it.
    Manual(Arc<Mutex<OffsetDateTime>>),
}

impl Clock {
    /// A clock reading `at` now and following `tokio::time` from here.
    pub fn anchored(at: OffsetDateTime) -> Self {
        Clock::Anchored {
            at,
            since: tokio::time::Instant::now(),
        }
    }

    /// A manual clock reading `at` until advanced.
    pub fn manual(at: OffsetDateTime) -> Self {
        Clock::Manual(Arc::new(Mutex::new(at)))
    }

    /// Moves a manual clock forward by `by` (other clocks ignore it).
    pub fn advance(&self, by: Duration) {
        if let Clock::Manual(t) = self {
            *lock(t) += by;
        }
    }

    /// The current time.
    pub fn now(&self) -> OffsetDateTime {
        match self {
            Clock::System => OffsetDateTime::now_utc(),
            Clock::Anchored { at, since } => *at + since.elapsed(),
            Clock::Manual(t) => *lock(t),
        }
    }
}

/// What a job syncs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum JobKind {
    /// Products and categories of one store route.
    Catalog,
    /// Contacts of one brand.
    Contacts,
}

impl JobKind {
    /// Label used in job names and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::Catalog => "catalog",
            JobKind::Contacts => "contacts",
        }
    }
}

/// How a job runs this time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RunMode {
    /// Changes since the cursor.
    Delta,
    /// Everything (the full refresh).
    Full,
}

impl RunMode {
    /// Label used in logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            RunMode::Delta => "delta",
            RunMode::Full => "full",
        }
    }
}

/// One scheduled job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobSpec {
    /// Unique name, e.g. `catalog:default`.
    pub name: String,
    /// What it syncs.
    pub kind: JobKind,
    /// The store route it runs for (for contacts: the brand's first store).
    pub store: String,
    /// Delta interval (`None` = only on request).
    pub delta: Option<Duration>,
    /// Full refresh schedule.
    pub full: Option<CronSchedule>,
}

/// The name of the `kind` job of `store`.
pub fn job_name(kind: JobKind, store: &str) -> String {
    format!("{}:{store}", kind.as_str())
}

/// The jobs `settings` call for: a catalog job per store and a contacts job per brand. With
/// `schedule.enabled = false` they exist (change notifications still request runs) but have no
/// interval and no full refresh.
pub fn plan_jobs(settings: &Settings) -> Vec<JobSpec> {
    let s = &settings.schedule;
    let full = s.full_refresh.clone().filter(|_| s.enabled);
    let mut jobs: Vec<JobSpec> = settings
        .stores
        .iter()
        .map(|store| JobSpec {
            name: job_name(JobKind::Catalog, &store.key),
            kind: JobKind::Catalog,
            store: store.key.clone(),
            delta: s.catalog_delta.filter(|_| s.enabled),
            full: full.clone(),
        })
        .collect();
    let mut brands = HashSet::new();
    for store in &settings.stores {
        if brands.insert(store.omnisend_api_key_env.as_str()) {
            jobs.push(JobSpec {
                name: job_name(JobKind::Contacts, &store.key),
                kind: JobKind::Contacts,
                store: store.key.clone(),
                delta: s.contacts_delta.filter(|_| s.enabled),
                full: full.clone(),
            });
        }
    }
    jobs
}

/// Whether (and how) `job` should start at `now`, given its shared `state`. Pure.
pub fn decide(job: &JobSpec, state: &JobState, now: OffsetDateTime) -> Option<RunMode> {
    if state.lease_owner.is_some() && state.lease_until.is_some_and(|until| until >= now) {
        return None;
    }
    // A run that started but never finished (its instance died or was stopped) is redone at
    // once, in its own mode.
    if let Some(started) = state.last_started
        && state.last_finished.is_none_or(|f| f < started)
    {
        let full = state.last_full == Some(started);
        return Some(if full { RunMode::Full } else { RunMode::Delta });
    }
    if let Some(cron) = &job.full {
        let anchor = state.last_full.unwrap_or(state.created_at);
        if cron.next_after(anchor).is_some_and(|at| at <= now) {
            return Some(RunMode::Full);
        }
    }
    if state.requested_at.is_some_and(|at| at <= now) {
        return Some(RunMode::Delta);
    }
    let every = job.delta?;
    let since = state.last_started.unwrap_or(state.created_at);
    (since + every <= now).then_some(RunMode::Delta)
}

/// What a job does when it runs. The result is a short outcome text (`Ok`) or the reason it
/// failed (`Err`); neither may contain PII.
pub trait JobRunner: Send + Sync + 'static {
    /// Runs `job` in `mode` to the end.
    fn run<'a>(
        &'a self,
        job: &'a JobSpec,
        mode: RunMode,
    ) -> Pin<Box<dyn Future<Output = Result<String, String>> + Send + 'a>>;
}

/// The production runner: the catalog and contacts sync engines.
pub struct SyncRunner {
    ct: CtClient,
    store: StateStore,
    settings: Arc<Settings>,
    sinks: HashMap<String, Sink>,
}

impl SyncRunner {
    /// A runner writing through `sinks` (one per store route).
    pub fn new(
        ct: CtClient,
        store: StateStore,
        settings: Arc<Settings>,
        sinks: HashMap<String, Sink>,
    ) -> Self {
        SyncRunner {
            ct,
            store,
            settings,
            sinks,
        }
    }
}

impl JobRunner for SyncRunner {
    fn run<'a>(
        &'a self,
        job: &'a JobSpec,
        mode: RunMode,
    ) -> Pin<Box<dyn Future<Output = Result<String, String>> + Send + 'a>> {
        Box::pin(async move {
            let full = mode == RunMode::Full;
            let store = Some(job.store.clone());
            let runs = match job.kind {
                JobKind::Catalog => {
                    CatalogSync::new(
                        self.ct.clone(),
                        self.store.clone(),
                        (*self.settings).clone(),
                        self.sinks.clone(),
                    )
                    .run(&CatalogOptions { full, store }, &|_| {})
                    .await
                }
                JobKind::Contacts => {
                    ContactSync::new(
                        self.ct.clone(),
                        self.store.clone(),
                        (*self.settings).clone(),
                        self.sinks.clone(),
                    )
                    .run(&ContactOptions { full, store })
                    .await
                }
            }
            .map_err(|e| e.to_string())?;
            Ok(format!("ok: {} run(s)", runs.len()))
        })
    }
}

/// One instance's scheduler; see the module docs.
pub struct Scheduler {
    store: StateStore,
    jobs: Vec<JobSpec>,
    runner: Arc<dyn JobRunner>,
    instance: String,
    lease: Duration,
    clock: Clock,
    wake: Arc<Notify>,
    tick: Duration,
}

impl Scheduler {
    /// A scheduler of `jobs` for `instance`, with job leases of `lease`.
    pub fn new(
        store: StateStore,
        jobs: Vec<JobSpec>,
        runner: Arc<dyn JobRunner>,
        instance: impl Into<String>,
        lease: Duration,
    ) -> Self {
        Scheduler {
            store,
            jobs,
            runner,
            instance: instance.into(),
            lease,
            clock: Clock::System,
            wake: Arc::new(Notify::new()),
            tick: TICK,
        }
    }

    /// Looks for due jobs every `tick` instead of every [`TICK`].
    pub fn with_tick(mut self, tick: Duration) -> Self {
        self.tick = tick;
        self
    }

    /// Reads the time from `clock` instead of the system clock.
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Looks for due jobs at once when `wake` is notified (e.g. after a run was requested).
    pub fn with_wake(mut self, wake: Arc<Notify>) -> Self {
        self.wake = wake;
        self
    }

    /// Asks for a delta run of every job of `kind` (durably, for whichever instance looks
    /// first), then wakes this scheduler.
    pub async fn request(
        store: &StateStore,
        jobs: &[JobSpec],
        kind: JobKind,
        now: OffsetDateTime,
    ) -> Result<usize, crate::store::StoreError> {
        let mut n = 0;
        for job in jobs.iter().filter(|j| j.kind == kind) {
            store.request_job(&job.name, now).await?;
            n += 1;
        }
        Ok(n)
    }

    /// Runs until `stop`; see the module docs.
    pub async fn run(self, stop: CancellationToken) {
        let this = Arc::new(self);
        if let Err(e) = this.register().await {
            tracing::warn!(error = %e, "scheduler: cannot register the jobs");
        }
        let running: Arc<Mutex<HashSet<String>>> = Arc::default();
        let mut tasks = JoinSet::new();
        loop {
            tokio::select! {
                () = stop.cancelled() => break,
                () = tokio::time::sleep(this.tick) => {}
                () = this.wake.notified() => {}
            }
            while tasks.try_join_next().is_some() {}
            if let Err(e) = this.start_due(&running, &mut tasks).await {
                tracing::warn!(error = %e, "scheduler: cannot read the job table");
            }
        }
        tasks.shutdown().await;
        match this.store.release_jobs(&this.instance).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(jobs = n, "scheduler: leases released at shutdown"),
            Err(e) => tracing::warn!(error = %e, "scheduler: cannot release job leases"),
        }
    }

    /// Claims every job that is due and not already running here (`skip`): the jobs this
    /// instance must now run, with their modes.
    async fn claim_due(
        &self,
        skip: &HashSet<String>,
    ) -> Result<Vec<(JobSpec, RunMode)>, crate::store::StoreError> {
        let states: HashMap<String, JobState> = self
            .store
            .jobs()
            .await?
            .into_iter()
            .map(|s| (s.name.clone(), s))
            .collect();
        let mut claimed = Vec::new();
        for job in &self.jobs {
            if skip.contains(&job.name) {
                continue;
            }
            let Some(state) = states.get(&job.name) else {
                self.store.ensure_job(&job.name, self.clock.now()).await?;
                continue;
            };
            let now = self.clock.now();
            let Some(mode) = decide(job, state, now) else {
                continue;
            };
            let mine = self
                .store
                .try_start_job(
                    &job.name,
                    &self.instance,
                    now,
                    self.lease,
                    state.last_started,
                    mode == RunMode::Full,
                )
                .await?;
            if mine {
                claimed.push((job.clone(), mode));
            }
        }
        Ok(claimed)
    }

    async fn start_due(
        self: &Arc<Self>,
        running: &Arc<Mutex<HashSet<String>>>,
        tasks: &mut JoinSet<()>,
    ) -> Result<(), crate::store::StoreError> {
        let skip = lock(running).clone();
        for (job, mode) in self.claim_due(&skip).await? {
            lock(running).insert(job.name.clone());
            let this = self.clone();
            let running = running.clone();
            tasks.spawn(async move {
                this.run_job(&job, mode).await;
                lock(&running).remove(&job.name);
            });
        }
        Ok(())
    }

    /// One look at the job table, as [`Scheduler::run`] does each [`TICK`], but running the
    /// jobs it claims to the end before returning them: for stepping a scheduler under a
    /// [`Clock::Manual`] in tests and tools.
    pub async fn step(&self) -> Result<Vec<(String, RunMode)>, crate::store::StoreError> {
        let claimed = self.claim_due(&HashSet::new()).await?;
        for (job, mode) in &claimed {
            self.run_job(job, *mode).await;
        }
        Ok(claimed.into_iter().map(|(j, m)| (j.name, m)).collect())
    }

    /// Registers the jobs (creates their rows, anchored at the clock's now); [`Scheduler::run`]
    /// does it at start.
    pub async fn register(&self) -> Result<(), crate::store::StoreError> {
        let now = self.clock.now();
        for job in &self.jobs {
            self.store.ensure_job(&job.name, now).await?;
        }
        Ok(())
    }

    /// Runs one job under its lease, renewing it; records the outcome.
    async fn run_job(&self, job: &JobSpec, mode: RunMode) {
        tracing::info!(job = %job.name, mode = mode.as_str(), instance = %self.instance, "scheduled run started");
        let started = tokio::time::Instant::now();
        let work = self.runner.run(job, mode);
        tokio::pin!(work);
        let mut beat = tokio::time::interval(self.lease / 3);
        beat.tick().await;
        let outcome = loop {
            tokio::select! {
                out = &mut work => break Some(out),
                _ = beat.tick() => {
                    match self.store.renew_job(&job.name, &self.instance, self.clock.now(), self.lease).await {
                        Ok(true) => {}
                        Ok(false) => break None,
                        Err(e) => tracing::warn!(job = %job.name, error = %e, "scheduler: lease renewal failed"),
                    }
                }
            }
        };
        let Some(outcome) = outcome else {
            tracing::warn!(job = %job.name, "scheduler: lease lost; run stopped");
            crate::telemetry::job_finished(job.kind, mode, "lost", started.elapsed());
            return;
        };
        let (text, label) = match &outcome {
            Ok(text) => (text.clone(), "ok"),
            Err(reason) => (format!("failed: {reason}"), "failed"),
        };
        crate::telemetry::job_finished(job.kind, mode, label, started.elapsed());
        match &outcome {
            Ok(_) => {
                tracing::info!(job = %job.name, mode = mode.as_str(), elapsed_ms = started.elapsed().as_millis() as u64, "scheduled run finished")
            }
            Err(reason) => {
                tracing::warn!(job = %job.name, mode = mode.as_str(), reason = %reason, "scheduled run failed")
            }
        }
        if let Err(e) = self
            .store
            .finish_job(&job.name, &self.instance, self.clock.now(), &text)
            .await
        {
            tracing::warn!(job = %job.name, error = %e, "scheduler: cannot record the outcome");
        }
    }
}

/// Why [`hold_jobs`] could not take its jobs.
#[derive(Debug, thiserror::Error)]
pub enum HoldError {
    /// Another run holds the job.
    #[error("{job} is running on {owner} (lease until {until}); try again when it has finished")]
    Busy {
        /// Job name.
        job: String,
        /// Instance holding it.
        owner: String,
        /// Its lease end (RFC 3339).
        until: String,
    },
    /// The state store failed.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

/// The leases of the jobs a manual run (`ct-omnisend sync`) covers, renewed in the background
/// until [`HeldJobs::finish`]: a manual run and a scheduled run of the same entity and store
/// never overlap, on any instance.
pub struct HeldJobs {
    store: StateStore,
    owner: String,
    names: Vec<String>,
    renewal: tokio::task::JoinHandle<()>,
}

/// Takes the leases of `names` for `owner` (all or none).
pub async fn hold_jobs(
    store: &StateStore,
    names: Vec<String>,
    owner: &str,
    lease: Duration,
    full: bool,
) -> Result<HeldJobs, HoldError> {
    let now = OffsetDateTime::now_utc();
    let mut taken = Vec::new();
    for name in &names {
        if store.claim_job(name, owner, now, lease, full).await? {
            taken.push(name.clone());
            continue;
        }
        for t in &taken {
            store
                .finish_job(t, owner, now, "failed: not started")
                .await?;
        }
        let state = store.job(name).await?;
        let (holder, until) = state
            .map(|s| (s.lease_owner.unwrap_or_default(), s.lease_until))
            .unwrap_or_default();
        return Err(HoldError::Busy {
            job: name.clone(),
            owner: holder,
            until: until
                .and_then(|u| {
                    u.format(&time::format_description::well_known::Rfc3339)
                        .ok()
                })
                .unwrap_or_default(),
        });
    }
    let (s, o, n) = (store.clone(), owner.to_owned(), names.clone());
    let renewal = tokio::spawn(async move {
        let mut beat = tokio::time::interval(lease / 3);
        beat.tick().await;
        loop {
            beat.tick().await;
            for name in &n {
                if let Err(e) = s
                    .renew_job(name, &o, OffsetDateTime::now_utc(), lease)
                    .await
                {
                    tracing::warn!(job = %name, error = %e, "cannot renew the job lease");
                }
            }
        }
    });
    Ok(HeldJobs {
        store: store.clone(),
        owner: owner.to_owned(),
        names,
        renewal,
    })
}

impl HeldJobs {
    /// Records `outcome` on every held job and frees them.
    pub async fn finish(self, outcome: &str) -> Result<(), crate::store::StoreError> {
        self.renewal.abort();
        let now = OffsetDateTime::now_utc();
        for name in &self.names {
            self.store
                .finish_job(name, &self.owner, now, outcome)
                .await?;
        }
        Ok(())
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn state(created: OffsetDateTime) -> JobState {
        JobState {
            name: "catalog:default".into(),
            lease_owner: None,
            lease_until: None,
            last_started: None,
            last_full: None,
            last_finished: None,
            last_outcome: None,
            requested_at: None,
            runs: 0,
            created_at: created,
        }
    }

    fn job(delta_secs: Option<u64>, cron: Option<&str>) -> JobSpec {
        JobSpec {
            name: "catalog:default".into(),
            kind: JobKind::Catalog,
            store: "default".into(),
            delta: delta_secs.map(Duration::from_secs),
            full: cron.map(|c| CronSchedule::parse(c).unwrap()),
        }
    }

    #[test]
    fn a_new_job_waits_one_interval_before_its_first_delta_run() {
        let t0 = datetime!(2026-11-27 00:00 UTC);
        let j = job(Some(300), None);
        let s = state(t0);
        assert_eq!(decide(&j, &s, t0 + Duration::from_secs(299)), None);
        assert_eq!(
            decide(&j, &s, t0 + Duration::from_secs(300)),
            Some(RunMode::Delta)
        );
    }

    #[test]
    fn a_live_lease_holds_a_due_job_back_and_an_expired_one_does_not() {
        let t0 = datetime!(2026-11-27 00:00 UTC);
        let j = job(Some(60), None);
        let mut s = state(t0);
        s.lease_owner = Some("a".into());
        s.lease_until = Some(t0 + Duration::from_secs(120));
        assert_eq!(decide(&j, &s, t0 + Duration::from_secs(100)), None);
        assert_eq!(
            decide(&j, &s, t0 + Duration::from_secs(121)),
            Some(RunMode::Delta)
        );
    }

    #[test]
    fn the_full_refresh_wins_when_its_schedule_fired_since_the_last_full_run() {
        let t0 = datetime!(2026-11-27 02:50 UTC);
        let j = job(Some(60), Some("0 3 * * *"));
        let mut s = state(t0);
        s.last_started = Some(datetime!(2026-11-27 02:59:30 UTC));
        s.last_finished = Some(datetime!(2026-11-27 02:59:40 UTC));
        assert_eq!(decide(&j, &s, datetime!(2026-11-27 02:59:59 UTC)), None);
        assert_eq!(
            decide(&j, &s, datetime!(2026-11-27 03:00 UTC)),
            Some(RunMode::Full)
        );
        s.last_full = Some(datetime!(2026-11-27 03:00 UTC));
        s.last_started = s.last_full;
        s.last_finished = Some(datetime!(2026-11-27 03:00:30 UTC));
        assert_eq!(
            decide(&j, &s, datetime!(2026-11-27 03:01 UTC)),
            Some(RunMode::Delta)
        );
    }

    #[test]
    fn an_interrupted_run_is_redone_in_its_mode_once_its_lease_is_gone() {
        let t0 = datetime!(2026-11-27 00:00 UTC);
        let j = job(Some(3600), Some("0 3 * * *"));
        let mut s = state(t0);
        s.last_started = Some(t0 + Duration::from_secs(10));
        s.last_full = s.last_started;
        assert_eq!(
            decide(&j, &s, t0 + Duration::from_secs(20)),
            Some(RunMode::Full)
        );
        s.last_finished = Some(t0 + Duration::from_secs(15));
        assert_eq!(decide(&j, &s, t0 + Duration::from_secs(20)), None);
    }

    #[test]
    fn a_request_runs_a_job_without_an_interval() {
        let t0 = datetime!(2026-11-27 00:00 UTC);
        let j = job(None, None);
        let mut s = state(t0);
        assert_eq!(decide(&j, &s, t0 + Duration::from_secs(86_400)), None);
        s.requested_at = Some(t0 + Duration::from_secs(5));
        assert_eq!(
            decide(&j, &s, t0 + Duration::from_secs(6)),
            Some(RunMode::Delta)
        );
    }
}
