//! Terminal output: logging set-up, progress bars, summary tables, JSON documents.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::Duration;

use clap::ValueEnum;
use connector::store::{Rejected, StateStore};
use connector::subscriptions::{
    InstallAction, InstallReport, RemoveOutcome, RemoveReport, State, StatusReport,
};
use connector::sync::RunSummary;
use connector::sync::catalog::ReplayOutcome;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Log format on stderr.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Pretty on a terminal, JSON otherwise.
    Auto,
    /// Human-readable.
    Pretty,
    /// One JSON object per line.
    Json,
}

/// Installs the tracing subscriber (level from `RUST_LOG`, default `warn`).
pub fn init_logging(format: LogFormat) {
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into());
    let json = match format {
        LogFormat::Json => true,
        LogFormat::Pretty => false,
        LogFormat::Auto => !std::io::stderr().is_terminal(),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.compact().init();
    }
}

/// One spinner per (store, entity) while a run reads pages; only on a terminal.
pub struct Bars {
    multi: Option<MultiProgress>,
    bars: Mutex<Vec<(String, ProgressBar)>>,
}

impl Bars {
    /// Enabled only when `wanted` and stderr is a terminal.
    pub fn new(wanted: bool) -> Self {
        let multi = (wanted && std::io::stderr().is_terminal())
            .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
        Self {
            multi,
            bars: Mutex::new(Vec::new()),
        }
    }

    /// Reports `seen` records of `entity` for `store`.
    pub fn update(&self, store: &str, entity: &str, seen: u64) {
        let Some(multi) = &self.multi else { return };
        let label = format!("{store}/{entity}");
        let mut bars = self.bars.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, bar)) = bars.iter().find(|(l, _)| *l == label) {
            bar.set_position(seen);
            return;
        }
        let bar = multi.add(ProgressBar::new_spinner());
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} {prefix:>18} {pos:>8} records  {per_sec:>12}  {elapsed}",
            )
            .expect("valid template"),
        );
        bar.set_prefix(label.clone());
        bar.enable_steady_tick(Duration::from_millis(120));
        bar.set_position(seen);
        bars.push((label, bar));
    }

    /// Stops the spinners.
    pub fn finish(&self) {
        for (_, bar) in self.bars.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            bar.finish();
        }
    }
}

/// The human summary table of a sync.
pub fn print_summary_to(out: &mut dyn Write, runs: &[RunSummary]) -> std::io::Result<()> {
    writeln!(
        out,
        "{:<8} {:<11} {:<6} {:>7} {:>7} {:>7} {:>9} {:>7} {:>8} {:>6} {:>8} {:>9}",
        "store",
        "entity",
        "mode",
        "seen",
        "created",
        "updated",
        "unchanged",
        "deleted",
        "rejected",
        "failed",
        "requests",
        "time"
    )?;
    for r in runs {
        let s = &r.stats;
        writeln!(
            out,
            "{:<8} {:<11} {:<6} {:>7} {:>7} {:>7} {:>9} {:>7} {:>8} {:>6} {:>8} {:>8.1}s",
            r.store,
            r.entity,
            r.mode.as_str(),
            s.seen,
            s.created,
            s.updated,
            s.unchanged,
            s.deleted,
            s.rejected,
            s.failed,
            s.requests,
            s.duration_ms as f64 / 1000.0
        )?;
    }
    for r in runs.iter().filter(|r| r.reason.is_some()) {
        writeln!(
            out,
            "note: {}/{} ran {}: {}",
            r.store,
            r.entity,
            r.mode.as_str(),
            r.reason.as_deref().unwrap_or_default()
        )?;
    }
    if runs.iter().any(|r| r.stats.rejected > 0) {
        writeln!(out, "rejected records: see `ct-omnisend rejected list`")?;
    }
    Ok(())
}

/// `status`.
pub async fn print_status(store: &StateStore, json: bool) -> anyhow::Result<()> {
    let cursors = store.cursors().await?;
    let runs = store.recent_runs(20).await?;
    let rejected = store.count_rejected_open().await?;
    let inbox = store.count_pending_notifications().await?;
    let outbox = store.outbox_depth(time::OffsetDateTime::now_utc()).await?;
    if json {
        let doc = serde_json::json!({
            "cursors": cursors,
            "runs": runs,
            "rejected_open": rejected.iter().map(|(e, n)| serde_json::json!({"entity": e, "count": n})).collect::<Vec<_>>(),
            "queue_depth": inbox + outbox.pending,
            "inbox_pending": inbox,
            "outbox": outbox,
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(());
    }
    println!("cursors:");
    if cursors.is_empty() {
        println!("  (none yet: the first sync will be a full run)");
    }
    for c in &cursors {
        println!(
            "  {:<10} {:<10} watermark {}  fingerprint {}",
            c.route,
            c.entity,
            c.last_modified_at
                .map(|t| t.to_string())
                .unwrap_or_else(|| "-".into()),
            c.mapping_fingerprint.as_deref().unwrap_or("-")
        );
    }
    println!("last runs:");
    for r in runs.iter().take(10) {
        println!(
            "  #{:<4} {:<8} {:<10} {:<5} {:<7} seen {:>6} created {:>6} updated {:>6} deleted {:>5} rejected {:>5} failed {:>4} requests {:>5}{}",
            r.id,
            r.route,
            r.entity,
            r.mode,
            r.outcome.as_deref().unwrap_or("running"),
            r.stats.seen,
            r.stats.created,
            r.stats.updated,
            r.stats.deleted,
            r.stats.rejected,
            r.stats.failed,
            r.stats.requests,
            r.error
                .as_deref()
                .map(|e| format!("  error: {e}"))
                .unwrap_or_default()
        );
    }
    println!(
        "queue depth: {} (inbox {inbox} to process; outbox {} pending, {} due now, oldest {}; {} sent, {} rejected)",
        inbox + outbox.pending,
        outbox.pending,
        outbox.due,
        outbox
            .oldest_pending
            .map(|t| t.to_string())
            .unwrap_or_else(|| "-".into()),
        outbox.sent,
        outbox.rejected
    );
    println!("open rejected records:");
    if rejected.is_empty() {
        println!("  none");
    }
    for (entity, n) in rejected {
        println!("  {entity:<10} {n}");
    }
    Ok(())
}

/// `rejected list`.
pub fn print_rejected_list(list: &[Rejected], json: bool) -> anyhow::Result<()> {
    if json {
        println!(
            "{}",
            serde_json::to_string(&serde_json::json!({ "rejected": list }))?
        );
        return Ok(());
    }
    if list.is_empty() {
        println!("no rejected records");
        return Ok(());
    }
    println!(
        "{:>5}  {:<8} {:<10} {:<38} {:<22} reason",
        "id", "store", "entity", "commercetools id", "field"
    );
    for r in list {
        println!(
            "{:>5}  {:<8} {:<10} {:<38} {:<22} {}{}",
            r.id,
            r.route,
            r.entity,
            r.ct_id,
            r.field.as_deref().unwrap_or("-"),
            r.reason,
            if r.resolved_at.is_some() {
                " (resolved)"
            } else {
                ""
            }
        );
    }
    Ok(())
}

/// `rejected show`.
pub fn print_rejected_one(r: &Rejected, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(r)?);
        return Ok(());
    }
    println!("id:        {}", r.id);
    println!("store:     {}", r.route);
    println!("entity:    {}", r.entity);
    println!("ct id:     {}", r.ct_id);
    println!("field:     {}", r.field.as_deref().unwrap_or("-"));
    println!("reason:    {}", r.reason);
    println!("attempts:  {}", r.attempts);
    println!("first:     {}", r.created_at);
    println!("last:      {}", r.updated_at);
    println!(
        "resolved:  {}",
        r.resolved_at
            .map(|t| t.to_string())
            .unwrap_or_else(|| "no".into())
    );
    if let Some(p) = &r.payload {
        println!("payload:\n{}", serde_json::to_string_pretty(p)?);
    }
    Ok(())
}

/// `rejected replay`.
pub fn print_replay(outcomes: &[ReplayOutcome], json: bool) -> anyhow::Result<()> {
    if json {
        println!(
            "{}",
            serde_json::to_string(&serde_json::json!({ "replayed": outcomes }))?
        );
        return Ok(());
    }
    if outcomes.is_empty() {
        println!("nothing to replay");
    }
    for o in outcomes {
        println!(
            "{:>5}  {:<8} {:<10} {:<38} {}",
            o.id, o.store, o.entity, o.ct_id, o.detail
        );
    }
    Ok(())
}

/// `subscriptions install`: a table (and, for a dry run, the drafts with secrets masked), or
/// one JSON document. Failures go to stderr as `error: KEY: …`.
pub fn print_subscriptions_install(report: &InstallReport, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(report)?);
    } else {
        let mut out = std::io::stdout().lock();
        write_subscriptions_install(&mut out, report)?;
    }
    for item in report.subscriptions.iter().filter(|i| i.error.is_some()) {
        eprintln!(
            "error: {}: {}",
            item.key,
            item.error.as_deref().unwrap_or_default()
        );
    }
    Ok(())
}

fn version_text(from: Option<i64>, to: Option<i64>) -> String {
    match (from, to) {
        (Some(a), Some(b)) if a != b => format!("{a} → {b}"),
        (_, Some(b)) => b.to_string(),
        _ => "-".into(),
    }
}

/// The human form of [`print_subscriptions_install`].
pub fn write_subscriptions_install(
    out: &mut dyn Write,
    report: &InstallReport,
) -> anyhow::Result<()> {
    if report.dry_run {
        writeln!(out, "dry run: nothing was changed")?;
    }
    writeln!(
        out,
        "{:<32} {:<10} {:<16} {:<9} details",
        "key", "concern", "action", "version"
    )?;
    for i in &report.subscriptions {
        let action = match (report.dry_run, i.action, i.error.is_some()) {
            (_, _, true) => format!("FAILED {}", i.action.as_str()),
            (true, InstallAction::Unchanged, _) => "unchanged".to_owned(),
            (true, a, _) => format!("would {}", a.as_str()),
            (false, InstallAction::Create, _) => "created".to_owned(),
            (false, InstallAction::Update, _) => "updated".to_owned(),
            (false, InstallAction::Replace, _) => "replaced".to_owned(),
            (false, InstallAction::Unchanged, _) => "unchanged".to_owned(),
        };
        let mut details: Vec<String> = Vec::new();
        if !i.update_actions.is_empty() {
            details.push(i.update_actions.join(", "));
        }
        details.extend(i.differences.iter().map(|d| d.describe()));
        if let Some(prev) = &i.previous_id {
            details.push(format!("replaces {prev}"));
        }
        writeln!(
            out,
            "{:<32} {:<10} {:<16} {:<9} {}",
            i.key,
            i.concern.as_str(),
            action,
            version_text(i.previous_version, i.version),
            details.join("; ")
        )?;
    }
    if report.dry_run {
        writeln!(out, "drafts (secrets masked):")?;
        for i in &report.subscriptions {
            if let Some(d) = &i.draft {
                writeln!(out, "{}", serde_json::to_string_pretty(d)?)?;
            }
        }
    }
    Ok(())
}

/// `subscriptions status`: a table or one JSON document.
pub fn print_subscriptions_status(report: &StatusReport, json: bool) -> anyhow::Result<()> {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "in_sync": report.in_sync(),
                "subscriptions": report.subscriptions,
            }))?
        );
        return Ok(());
    }
    let mut out = std::io::stdout().lock();
    write_subscriptions_status(&mut out, report)
}

/// The human form of [`print_subscriptions_status`].
pub fn write_subscriptions_status(
    out: &mut dyn Write,
    report: &StatusReport,
) -> anyhow::Result<()> {
    writeln!(
        out,
        "{:<32} {:<10} {:<11} {:<7} {:<10} details",
        "key", "concern", "state", "version", "health"
    )?;
    for i in &report.subscriptions {
        let details = match i.state {
            State::NotNeeded => "`subscriptions remove --not-needed` deletes it".to_owned(),
            State::Missing => "`subscriptions install` creates it".to_owned(),
            _ => i
                .differences
                .iter()
                .map(|d| d.describe())
                .collect::<Vec<_>>()
                .join("; "),
        };
        writeln!(
            out,
            "{:<32} {:<10} {:<11} {:<7} {:<10} {}",
            i.key,
            i.concern.map_or("-", |c| c.as_str()),
            i.state.label(),
            i.version.map_or("-".to_owned(), |v| v.to_string()),
            i.health.as_deref().unwrap_or("-"),
            details
        )?;
    }
    if !report.in_sync() {
        writeln!(
            out,
            "out of sync: `ct-omnisend subscriptions install` creates and updates them"
        )?;
    }
    Ok(())
}

/// `subscriptions remove`: a table or one JSON document. Failures go to stderr.
pub fn print_subscriptions_remove(report: &RemoveReport, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(report)?);
    } else {
        let mut out = std::io::stdout().lock();
        if report.dry_run {
            writeln!(out, "dry run: nothing was changed")?;
        }
        if report.subscriptions.is_empty() {
            writeln!(out, "no subscriptions of ours")?;
        }
        for i in &report.subscriptions {
            let outcome = match i.outcome {
                RemoveOutcome::Removed => "removed",
                RemoveOutcome::WouldRemove => "would remove",
                RemoveOutcome::AlreadyGone => "already gone",
                RemoveOutcome::Failed => "FAILED",
            };
            writeln!(out, "{:<32} {:<38} {:<13}", i.key, i.id, outcome)?;
        }
    }
    for i in report.subscriptions.iter().filter(|i| i.error.is_some()) {
        eprintln!(
            "error: {}: {}",
            i.key,
            i.error.as_deref().unwrap_or_default()
        );
    }
    Ok(())
}
