//! The HTML of the admin page (maud: every interpolated value is escaped).
//!
//! Free text from the state store (rejection reasons, run errors, job outcomes, contact keys)
//! goes through [`mask_text`] first: it may quote an email address or a phone number.

use std::collections::BTreeMap;
use std::time::Duration;

use maud::{DOCTYPE, Markup, PreEscaped, html};
use time::OffsetDateTime;
use time::macros::format_description;

use super::auth::CSRF_FIELD;
use crate::config::Settings;
use crate::identity::mask_text;
use crate::store::{Backend, Cursor, JobState, QueueGauges, Rejected, RunRecord};

/// Runs listed under "Recent runs".
pub const RECENT_RUNS: usize = 25;
/// Open rejected records listed.
pub const REJECTED_SHOWN: i64 = 50;

/// What the page shows, read from the state store in one go.
pub struct Snapshot {
    /// When it was read.
    pub now: OffsetDateTime,
    /// Most recent runs, newest first (more than [`RECENT_RUNS`]: the status table looks for
    /// each entity's and route's latest run among them).
    pub runs: Vec<RunRecord>,
    /// Sync cursors.
    pub cursors: Vec<Cursor>,
    /// Last successful run per (entity, route).
    pub last_ok: Vec<(String, String, OffsetDateTime)>,
    /// Scheduled jobs.
    pub jobs: Vec<JobState>,
    /// Inbox and outbox.
    pub queues: QueueGauges,
    /// The newest open rejected records.
    pub rejected: Vec<Rejected>,
    /// Open rejected records per entity.
    pub rejected_open: Vec<(String, i64)>,
}

/// The result of a replay, carried to the page in the redirect's query string. Only numbers
/// and fixed codes: nothing a link could use to put words on the page.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Flash {
    /// Records replayed.
    pub replayed: Option<u64>,
    /// Of those, resolved.
    pub resolved: Option<u64>,
    /// The replay goes on in the background.
    pub running: bool,
    /// What went wrong.
    pub error: Option<FlashError>,
    /// The record it was about.
    pub id: Option<i64>,
}

/// Replay failures the page can report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlashError {
    /// No such record.
    NotFound,
    /// Resolved already.
    Resolved,
    /// Another replay is running.
    Busy,
    /// commercetools, Omnisend or the state store failed (details in the log).
    Failed,
}

impl FlashError {
    /// The query-string code.
    pub fn code(self) -> &'static str {
        match self {
            FlashError::NotFound => "not-found",
            FlashError::Resolved => "resolved",
            FlashError::Busy => "busy",
            FlashError::Failed => "failed",
        }
    }

    fn parse(code: &str) -> Option<Self> {
        [
            FlashError::NotFound,
            FlashError::Resolved,
            FlashError::Busy,
            FlashError::Failed,
        ]
        .into_iter()
        .find(|e| e.code() == code)
    }
}

impl Flash {
    /// Reads the page's query string; values that do not parse are ignored.
    pub fn from_query(query: Option<&str>) -> Self {
        let mut f = Flash::default();
        for (k, v) in url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            match &*k {
                "replayed" => f.replayed = v.parse().ok(),
                "resolved" => f.resolved = v.parse().ok(),
                "running" => f.running = v == "1",
                "error" => f.error = FlashError::parse(&v),
                "id" => f.id = v.parse().ok(),
                _ => {}
            }
        }
        f
    }

    /// The query string of a redirect to the page (with the leading `?`, empty when none).
    pub fn to_query(&self) -> String {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        if let Some(n) = self.replayed {
            q.append_pair("replayed", &n.to_string());
        }
        if let Some(n) = self.resolved {
            q.append_pair("resolved", &n.to_string());
        }
        if self.running {
            q.append_pair("running", "1");
        }
        if let Some(e) = self.error {
            q.append_pair("error", e.code());
        }
        if let Some(id) = self.id {
            q.append_pair("id", &id.to_string());
        }
        let q = q.finish();
        if q.is_empty() { q } else { format!("?{q}") }
    }
}

/// What the page needs besides the [`Snapshot`].
pub struct Context<'a> {
    /// Effective settings.
    pub settings: &'a Settings,
    /// This instance's name.
    pub instance: &'a str,
    /// State store engine.
    pub backend: Backend,
    /// Secret environment variables by name, and whether each is set.
    pub secrets: &'a [(String, bool)],
    /// The CSRF token for the forms.
    pub csrf: &'a str,
    /// The result of the last replay.
    pub flash: &'a Flash,
}

const CSS: &str = r#"
:root{--fg:#1d2433;--muted:#667085;--line:#e4e7ec;--bg:#f3f5f8;--card:#fff;--accent:#3545d6;
--ok:#067647;--ok-bg:#dcfae6;--bad:#b42318;--bad-bg:#fee4e2;--warn:#93370d;--warn-bg:#fef0c7;
--info:#175cd3;--info-bg:#d1e9ff;--idle:#475467;--idle-bg:#eaecf0}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--fg);
font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
.wrap{max-width:1260px;margin:0 auto;padding:0 20px}
header.top{background:#141b2d;color:#fff;padding:14px 0}
header.top .wrap{display:flex;align-items:baseline;gap:18px;flex-wrap:wrap}
header.top h1{font-size:19px;margin:0;font-weight:650;letter-spacing:.01em}
header.top h1 span{color:#9aa6ff;font-weight:500}
header.top .meta{color:#c3c9d6;font-size:13px}
header.top .meta b{color:#fff;font-weight:600}
main.wrap{padding-top:18px;padding-bottom:4px}
section{background:var(--card);border:1px solid var(--line);border-radius:10px;
margin:0 0 16px;padding:14px 18px 16px}
h2{font-size:15px;margin:0 0 10px;display:flex;align-items:center;gap:10px}
h2 .hint{font-weight:400;color:var(--muted);font-size:12px}
h3{font-size:13px;margin:14px 0 6px;color:var(--muted);text-transform:uppercase;letter-spacing:.05em}
.cards{display:grid;grid-template-columns:repeat(4,1fr);gap:12px;margin:0 0 16px}
.card{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:12px 16px;
border-top:3px solid var(--line)}
.card.ok{border-top-color:#17b26a}.card.bad{border-top-color:#f04438}
.card.warn{border-top-color:#f79009}.card.info{border-top-color:#2e90fa}
.card .label{color:var(--muted);font-size:12px;text-transform:uppercase;letter-spacing:.05em}
.card .value{font-size:26px;font-weight:650;margin:2px 0 0;font-variant-numeric:tabular-nums}
.card .sub{color:var(--muted);font-size:12px}
table{width:100%;border-collapse:collapse;font-size:13px}
th{text-align:left;font-weight:600;color:var(--muted);font-size:12px;padding:6px 8px;
border-bottom:1px solid var(--line);white-space:nowrap}
td{padding:6px 8px;border-bottom:1px solid #eef0f3;vertical-align:top}
tbody tr:nth-child(even) td{background:#fafbfc}
tbody tr:last-child td{border-bottom:0}
.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.nowrap{white-space:nowrap}
.muted{color:var(--muted)}
.zero{color:#b0b7c3}
.mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12px}
.reason{min-width:240px;overflow-wrap:anywhere}
.small{font-size:12px}
.err{max-width:280px;font-size:12px;overflow-wrap:anywhere;margin-top:2px}
.badge{display:inline-block;padding:1px 8px;border-radius:999px;font-size:12px;font-weight:600;
white-space:nowrap}
.b-ok{color:var(--ok);background:var(--ok-bg)}.b-bad{color:var(--bad);background:var(--bad-bg)}
.b-warn{color:var(--warn);background:var(--warn-bg)}.b-info{color:var(--info);background:var(--info-bg)}
.b-idle{color:var(--idle);background:var(--idle-bg)}
.lag-bad{color:var(--bad);font-weight:600}
.flash{border-radius:10px;padding:10px 16px;margin:0 0 16px;border:1px solid}
.flash.ok{background:var(--ok-bg);border-color:#abefc6;color:var(--ok)}
.flash.bad{background:var(--bad-bg);border-color:#fecdca;color:var(--bad)}
.flash.info{background:var(--info-bg);border-color:#b2ddff;color:var(--info)}
form{margin:0;display:inline}
button{font:inherit;font-size:12px;font-weight:600;padding:3px 12px;border-radius:6px;
border:1px solid var(--accent);background:#fff;color:var(--accent);cursor:pointer}
button:hover{background:var(--accent);color:#fff}
button.primary{background:var(--accent);color:#fff}
.right{margin-left:auto}
.empty{color:var(--muted);padding:6px 0}
.config{display:grid;grid-template-columns:repeat(3,1fr);gap:6px 22px}
.config h3{margin-top:8px}
.config td:first-child{color:var(--muted);width:44%;white-space:nowrap}
.config td{overflow-wrap:anywhere;padding:3px 6px}
.masked{color:var(--idle);font-style:italic}
footer{color:var(--muted);font-size:12px;padding:4px 0 26px}
footer .wrap{display:flex;gap:18px;flex-wrap:wrap}
"#;

/// The whole page.
pub fn render(snap: &Snapshot, ctx: &Context<'_>, render_started: std::time::Instant) -> Markup {
    let body = html! {
        (header(snap, ctx))
        main .wrap {
            (flash(ctx.flash))
            (cards(snap))
            (sync_status(snap, ctx))
            (recent_runs(snap))
            (jobs(snap))
            (rejected(snap, ctx))
            (configuration(ctx))
        }
    };
    let elapsed = render_started.elapsed();
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="robots" content="noindex";
                title { "ct-omnisend admin · " (ctx.settings.commercetools.project_key) }
                style { (PreEscaped(CSS)) }
            }
            body {
                (body)
                footer .wrap {
                    div .wrap {
                        span { "ct-omnisend " (env!("CARGO_PKG_VERSION")) }
                        span { "instance " b { (ctx.instance) } }
                        span { "rendered " (datetime(snap.now)) " in "
                            (format!("{:.1}", elapsed.as_secs_f64() * 1000.0)) " ms" }
                    }
                }
            }
        }
    }
}

fn header(snap: &Snapshot, ctx: &Context<'_>) -> Markup {
    html! {
        header .top {
            div .wrap {
                h1 { "ct-omnisend " span { "admin" } }
                span .meta { "project " b { (ctx.settings.commercetools.project_key) } }
                span .meta { "instance " b { (ctx.instance) } }
                span .meta { "state " b { (ctx.backend.as_str()) } }
                span .meta .right { (datetime(snap.now)) }
            }
        }
    }
}

fn flash(f: &Flash) -> Markup {
    let id = f.id.map(|id| format!(" {id}")).unwrap_or_default();
    html! {
        @if let Some(e) = f.error {
            div .flash .bad role="status" {
                @match e {
                    FlashError::NotFound => { "No rejected record" (id) "." }
                    FlashError::Resolved => { "Rejected record" (id) " is already resolved." }
                    FlashError::Busy => { "Another replay is still running; try again when it has finished." }
                    FlashError::Failed => { "The replay failed; the log of this instance says why." }
                }
            }
        } @else if f.running {
            div .flash .info role="status" {
                "The replay takes longer and goes on in the background; reload this page to see the records it resolved."
            }
        } @else if let Some(n) = f.replayed {
            @let resolved = f.resolved.unwrap_or(0);
            div .flash .(if resolved == n { "ok" } else { "bad" }) role="status" {
                "Replayed " (n) " record" (plural(n)) ": " (resolved) " resolved"
                @if n > resolved { ", " (n - resolved) " still rejected" }
                "."
            }
        }
    }
}

fn cards(snap: &Snapshot) -> Markup {
    let open: i64 = snap.rejected_open.iter().map(|(_, n)| n).sum();
    let q = &snap.queues;
    let running = snap
        .jobs
        .iter()
        .filter(|j| j.lease_owner.is_some() && j.lease_until.is_some_and(|u| u > snap.now))
        .count();
    let failed_jobs = snap
        .jobs
        .iter()
        .filter(|j| {
            j.last_outcome
                .as_deref()
                .is_some_and(|o| !o.starts_with("ok"))
        })
        .count();
    let stale = |oldest: Option<OffsetDateTime>| {
        oldest.is_some_and(|t| snap.now - t > time::Duration::minutes(15))
    };
    html! {
        div .cards {
            div .card .(if open > 0 { "bad" } else { "ok" }) {
                div .label { "Open rejected" }
                div .value { (open) }
                div .sub {
                    @if snap.rejected_open.is_empty() { "nothing to replay" }
                    @else {
                        @for (i, (entity, n)) in snap.rejected_open.iter().enumerate() {
                            @if i > 0 { " · " }
                            (entity) " " (n)
                        }
                    }
                }
            }
            div .card .(if stale(q.inbox_oldest) { "warn" } else { "info" }) {
                div .label { "Inbox" }
                div .value { (q.inbox_pending) }
                div .sub { "notifications to process" (oldest(q.inbox_oldest, snap.now)) }
            }
            div .card .(if stale(q.outbox_oldest) { "warn" } else { "info" }) {
                div .label { "Outbox" }
                div .value { (q.outbox_pending + q.outbox_submitted) }
                div .sub {
                    (q.outbox_pending) " pending, " (q.outbox_submitted) " in batches"
                    (oldest(q.outbox_oldest, snap.now))
                }
            }
            div .card .(if failed_jobs > 0 { "warn" } else { "ok" }) {
                div .label { "Scheduled jobs" }
                div .value { (snap.jobs.len()) }
                div .sub { (running) " running now, " (failed_jobs) " failed last time" }
            }
        }
    }
}

fn oldest(t: Option<OffsetDateTime>, now: OffsetDateTime) -> String {
    t.map(|t| format!("; oldest {} old", human(now - t)))
        .unwrap_or_default()
}

/// Catalog, contacts or events: the part of the connector an entity belongs to.
fn group(entity: &str) -> (u8, &'static str) {
    match entity {
        "categories" | "products" => (0, "Catalog"),
        "contacts" | "contact" => (1, "Contacts"),
        e if e.starts_with("customer") || e.starts_with("guest") => (1, "Contacts"),
        _ => (2, "Events"),
    }
}

#[derive(Default)]
struct Status<'a> {
    latest: Option<&'a RunRecord>,
    last_ok: Option<OffsetDateTime>,
    cursor: Option<&'a Cursor>,
}

fn sync_status(snap: &Snapshot, ctx: &Context<'_>) -> Markup {
    let mut rows: BTreeMap<(u8, &str, &str), Status<'_>> = BTreeMap::new();
    for r in &snap.runs {
        let s = rows
            .entry((group(&r.entity).0, &r.entity, &r.route))
            .or_default();
        if s.latest.is_none() {
            s.latest = Some(r);
        }
    }
    for (entity, route, at) in &snap.last_ok {
        rows.entry((group(entity).0, entity, route))
            .or_default()
            .last_ok = Some(*at);
    }
    for c in &snap.cursors {
        rows.entry((group(&c.entity).0, &c.entity, &c.route))
            .or_default()
            .cursor = Some(c);
    }
    let max_age = ctx.settings.server.ready_max_cursor_age;
    html! {
        section #status {
            h2 { "Sync status" span .hint { "per entity and store route (brand for contacts)" } }
            @if rows.is_empty() {
                p .empty { "No sync has run yet." }
            } @else {
                table {
                    thead { tr {
                        th { "Part" } th { "Entity" } th { "Route" } th { "Last run" }
                        th { "Outcome" } th { "Last success" } th { "Cursor lag" }
                        th { "Cursor written" }
                    } }
                    tbody {
                        @for ((_, entity, route), s) in &rows {
                            tr {
                                td .muted { (group(entity).1) }
                                td { b { (entity) } }
                                td .mono { (route) }
                                td .nowrap {
                                    @if let Some(r) = s.latest {
                                        (r.mode) " · " (ago(snap.now - r.started_at))
                                    } @else { span .muted { "—" } }
                                }
                                td { @if let Some(r) = s.latest { (outcome_badge(r)) } }
                                td .nowrap { (opt_ago(s.last_ok, snap.now)) }
                                td .nowrap {
                                    @match s.cursor.and_then(|c| c.last_modified_at) {
                                        Some(t) => { span title=(datetime(t)) { (human(snap.now - t)) " behind" } }
                                        None => { span .muted { "—" } }
                                    }
                                }
                                td .nowrap {
                                    @if let Some(c) = s.cursor {
                                        @let lag = snap.now - c.updated_at;
                                        @let late = max_age.is_some_and(|m| lag > m);
                                        span .(if late { "lag-bad" } else { "" }) title=(datetime(c.updated_at)) {
                                            (ago(lag))
                                        }
                                        @if late { " " span .badge .b-bad { "stale" } }
                                    } @else { span .muted { "—" } }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn outcome_badge(r: &RunRecord) -> Markup {
    let (class, text) = match (r.outcome.as_deref(), r.finished_at) {
        (Some("ok"), _) => ("b-ok", "ok"),
        (Some("failed"), _) => ("b-bad", "failed"),
        (Some("dry-run"), _) => ("b-idle", "dry run"),
        (Some(other), _) => ("b-warn", other),
        (None, _) => ("b-info", "running"),
    };
    html! { span .badge .(class) { (text) } }
}

fn recent_runs(snap: &Snapshot) -> Markup {
    let runs: Vec<&RunRecord> = snap.runs.iter().take(RECENT_RUNS).collect();
    let count = |n: u64| -> Markup {
        html! { td .num .(if n == 0 { "zero" } else { "" }) { (n) } }
    };
    html! {
        section #runs {
            h2 { "Recent runs" span .hint { "newest first, at most " (RECENT_RUNS) } }
            @if runs.is_empty() {
                p .empty { "No runs recorded yet." }
            } @else {
                table {
                    thead { tr {
                        th .num { "#" } th { "Entity" } th { "Route" } th { "Mode" } th { "Started" }
                        th .num { "Duration" } th { "Outcome" }
                        th .num { "Seen" } th .num { "Created" } th .num { "Updated" }
                        th .num { "Unchanged" } th .num { "Deleted" } th .num { "Rejected" }
                        th .num { "Failed" } th .num { "Requests" }
                    } }
                    tbody {
                        @for r in runs {
                            tr {
                                td .num .muted { (r.id) }
                                td { (r.entity) }
                                td .mono { (r.route) }
                                td { (r.mode) }
                                td .nowrap title=(datetime(r.started_at)) { (ago(snap.now - r.started_at)) }
                                td .num {
                                    @if r.finished_at.is_some() {
                                        (human_ms(r.stats.duration_ms))
                                    } @else {
                                        span .muted { (human(snap.now - r.started_at)) " so far" }
                                    }
                                }
                                td {
                                    (outcome_badge(r))
                                    @if let Some(e) = &r.error {
                                        div .err .muted { (mask_text(e)) }
                                    }
                                }
                                (count(r.stats.seen)) (count(r.stats.created)) (count(r.stats.updated))
                                (count(r.stats.unchanged)) (count(r.stats.deleted))
                                (count(r.stats.rejected)) (count(r.stats.failed))
                                (count(r.stats.requests))
                            }
                        }
                    }
                }
            }
        }
    }
}

fn jobs(snap: &Snapshot) -> Markup {
    html! {
        section #jobs {
            h2 { "Scheduled jobs" span .hint { "each runs on one instance at a time" } }
            @if snap.jobs.is_empty() {
                p .empty { "No scheduled jobs yet (they appear once serve has planned them)." }
            } @else {
                table {
                    thead { tr {
                        th { "Job" } th { "Running on" } th { "Last started" } th { "Last finished" }
                        th { "Last outcome" } th .num { "Runs" } th { "Requested" }
                    } }
                    tbody {
                        @for j in &snap.jobs {
                            @let live = j.lease_until.is_some_and(|u| u > snap.now);
                            tr {
                                td .mono { (j.name) }
                                td {
                                    @match (&j.lease_owner, live) {
                                        (Some(owner), true) => {
                                            span .badge .b-info { "running" } " " span .mono { (owner) }
                                        }
                                        (Some(owner), false) => {
                                            span .muted { "lease of " span .mono { (owner) } " expired" }
                                        }
                                        (None, _) => { span .muted { "idle" } }
                                    }
                                }
                                td .nowrap { (opt_ago(j.last_started, snap.now)) }
                                td .nowrap { (opt_ago(j.last_finished, snap.now)) }
                                td {
                                    @match j.last_outcome.as_deref() {
                                        Some(o) if o.starts_with("ok") => {
                                            span .badge .b-ok { "ok" }
                                            @if let Some(detail) = o.strip_prefix("ok: ") {
                                                div .muted { (mask_text(detail)) }
                                            }
                                        }
                                        Some(o) => {
                                            span .badge .b-bad { "failed" }
                                            div .err .muted {
                                                (mask_text(o.strip_prefix("failed: ").unwrap_or(o)))
                                            }
                                        }
                                        None => { span .muted { "—" } }
                                    }
                                }
                                td .num { (j.runs) }
                                td .nowrap { (opt_ago(j.requested_at, snap.now)) }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn rejected(snap: &Snapshot, ctx: &Context<'_>) -> Markup {
    let open: i64 = snap.rejected_open.iter().map(|(_, n)| n).sum();
    html! {
        section #rejected {
            h2 {
                "Rejected records"
                span .hint {
                    "open, most recent first"
                    @if open > snap.rejected.len() as i64 { "; " (snap.rejected.len()) " of " (open) " shown" }
                }
                @if open > 0 {
                    form .right method="post" action="/admin/rejected/replay-all" {
                        input type="hidden" name=(CSRF_FIELD) value=(ctx.csrf);
                        button .primary type="submit" { "Replay all (" (open) ")" }
                    }
                }
            }
            @if snap.rejected.is_empty() {
                p .empty { "No open rejected records." }
            } @else {
                table {
                    thead { tr {
                        th .num { "#" } th { "Entity · route" } th { "Record" } th { "Field" }
                        th { "Reason" } th { "Last rejected" } th { "" }
                    } }
                    tbody {
                        @for r in &snap.rejected {
                            tr {
                                td .num .muted { (r.id) }
                                td {
                                    (r.entity)
                                    div .mono .muted { (r.route) }
                                }
                                td .mono .nowrap { (mask_id(&r.ct_id)) }
                                td .mono { (r.field.as_deref().map(mask_text).unwrap_or_default()) }
                                td .reason { (mask_text(&r.reason)) }
                                td .nowrap title=(format!("first {}", datetime(r.created_at))) {
                                    (ago(snap.now - r.updated_at))
                                    div .muted .small {
                                        (r.attempts) " attempt" (plural(r.attempts.unsigned_abs()))
                                    }
                                }
                                td {
                                    form method="post" action=(format!("/admin/rejected/{}/replay", r.id)) {
                                        input type="hidden" name=(CSRF_FIELD) value=(ctx.csrf);
                                        button type="submit" { "Replay" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// One configuration value as shown.
enum Shown {
    Text(String),
    /// A secret: only whether it is set.
    Secret(bool),
}

fn configuration(ctx: &Context<'_>) -> Markup {
    let sections = config_sections(ctx);
    html! {
        section #config {
            h2 { "Configuration" span .hint { "effective values; secrets are never shown, only whether they are set" } }
            div .config {
                @for (title, rows) in &sections {
                    div {
                        h3 { (title) }
                        table {
                            tbody {
                                @for (k, v) in rows {
                                    tr {
                                        td .mono { (k) }
                                        td {
                                            @match v {
                                                Shown::Text(t) => { (t) }
                                                Shown::Secret(true) => { span .masked { "•••••• (set)" } }
                                                Shown::Secret(false) => { span .muted { "not set" } }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn text(s: impl Into<String>) -> Shown {
    Shown::Text(s.into())
}

fn list<T: AsRef<str>>(items: &[T]) -> Shown {
    if items.is_empty() {
        return text("—");
    }
    text(
        items
            .iter()
            .map(AsRef::as_ref)
            .collect::<Vec<_>>()
            .join(", "),
    )
}

fn opt(v: Option<&str>) -> Shown {
    text(v.unwrap_or("—"))
}

fn secs(d: Duration) -> Shown {
    text(human(
        time::Duration::try_from(d).unwrap_or(time::Duration::MAX),
    ))
}

/// A URL without user info (a password) and with its query string hidden (`?token=…`).
fn safe_url(u: &str) -> String {
    match url::Url::parse(u) {
        Ok(mut url) => {
            let _ = url.set_username("");
            let _ = url.set_password(None);
            if url.query().is_some() {
                url.set_query(None);
                return format!("{url}?…");
            }
            url.to_string()
        }
        Err(_) => "(not shown)".into(),
    }
}

fn config_sections(ctx: &Context<'_>) -> Vec<(String, Vec<(String, Shown)>)> {
    let s = ctx.settings;
    let ct = &s.commercetools;
    let os = &s.omnisend;
    let mut out = vec![
        (
            "commercetools".to_owned(),
            vec![
                ("project_key".into(), text(&ct.project_key)),
                ("api_url".into(), text(safe_url(&ct.api_url))),
                ("auth_url".into(), text(safe_url(&ct.auth_url))),
                ("client_id".into(), Shown::Secret(ct.client_id.is_some())),
                (
                    "client_secret".into(),
                    Shown::Secret(ct.client_secret.is_some()),
                ),
                ("scopes".into(), opt(ct.scopes.as_deref())),
                ("page_size".into(), text(ct.page_size.to_string())),
                ("timeout".into(), secs(ct.timeout)),
            ],
        ),
        (
            "omnisend".to_owned(),
            vec![
                ("api_url".into(), text(safe_url(&os.api_url))),
                (
                    "requests_per_minute".into(),
                    text(os.requests_per_minute.to_string()),
                ),
                ("burst".into(), text(os.burst.to_string())),
                ("batch_size".into(), text(os.batch_size.to_string())),
                ("max_attempts".into(), text(os.max_attempts.to_string())),
                ("timeout".into(), secs(os.timeout)),
            ],
        ),
        (
            "state".to_owned(),
            vec![
                ("backend".into(), text(ctx.backend.as_str())),
                ("url".into(), Shown::Secret(true)),
            ],
        ),
        (
            "catalog".to_owned(),
            vec![
                (
                    "vendor_attribute".into(),
                    opt(s.catalog.vendor_attribute.as_deref()),
                ),
                ("tag_attributes".into(), list(&s.catalog.tag_attributes)),
                (
                    "variant_title_attributes".into(),
                    list(&s.catalog.variant_title_attributes),
                ),
                (
                    "unpublished".into(),
                    text(match s.catalog.unpublished {
                        crate::config::UnpublishedPolicy::Delete => "delete",
                        crate::config::UnpublishedPolicy::NotAvailable => "not_available",
                    }),
                ),
                ("delta_overlap".into(), secs(s.catalog.delta_overlap)),
            ],
        ),
        (
            "contacts".to_owned(),
            vec![
                (
                    "read_from".into(),
                    text(match s.contacts.read_from {
                        crate::config::ReadFrom::Project => "project",
                        crate::config::ReadFrom::Stores => "stores",
                    }),
                ),
                (
                    "phone_sources".into(),
                    list(
                        &s.contacts
                            .phone_sources
                            .iter()
                            .map(|p| p.describe())
                            .collect::<Vec<_>>(),
                    ),
                ),
                ("guests".into(), text(s.contacts.guests.to_string())),
                (
                    "email_consent.field".into(),
                    opt(s.contacts.email.field.as_deref()),
                ),
                (
                    "sms_consent.field".into(),
                    opt(s.contacts.sms.field.as_deref()),
                ),
                (
                    "deletions_from_messages".into(),
                    text(s.contacts.deletions_from_messages.to_string()),
                ),
                ("delta_overlap".into(), secs(s.contacts.delta_overlap)),
            ],
        ),
        (
            "events".to_owned(),
            vec![
                (
                    "ordered_product_events".into(),
                    text(s.events.ordered_product_events.to_string()),
                ),
                (
                    "checkout_on_shipping_address".into(),
                    text(s.events.checkout_on_shipping_address.to_string()),
                ),
                ("max_age".into(), secs(s.events.max_age)),
                (
                    "batch_threshold".into(),
                    text(s.events.batch_threshold.to_string()),
                ),
                ("concurrency".into(), text(s.events.concurrency.to_string())),
                (
                    "retention".into(),
                    s.events.retention.map_or(text("forever"), secs),
                ),
            ],
        ),
        (
            "server".to_owned(),
            vec![
                ("listen".into(), text(&s.server.listen)),
                ("request_timeout".into(), secs(s.server.request_timeout)),
                ("shutdown_grace".into(), secs(s.server.shutdown_grace)),
                (
                    "ready_max_cursor_age".into(),
                    s.server
                        .ready_max_cursor_age
                        .map_or(text("not checked"), secs),
                ),
                (
                    "oidc.audience".into(),
                    opt(s
                        .server
                        .oidc
                        .as_ref()
                        .map(|o| safe_url(&o.audience))
                        .as_deref()),
                ),
                ("admin.username".into(), text(&s.server.admin.username)),
            ],
        ),
        (
            "schedule".to_owned(),
            vec![
                ("enabled".into(), text(s.schedule.enabled.to_string())),
                (
                    "catalog_delta".into(),
                    s.schedule.catalog_delta.map_or(text("off"), secs),
                ),
                (
                    "contacts_delta".into(),
                    s.schedule.contacts_delta.map_or(text("off"), secs),
                ),
                (
                    "full_refresh".into(),
                    text(
                        s.schedule
                            .full_refresh
                            .as_ref()
                            .map_or("never".to_owned(), |c| format!("{} (UTC)", c.as_str())),
                    ),
                ),
                ("lease".into(), secs(s.schedule.lease)),
            ],
        ),
    ];
    for st in &s.stores {
        out.push((
            format!("stores · {}", st.key),
            vec![
                (
                    "locales".into(),
                    list(&st.locales.iter().map(|l| l.as_str()).collect::<Vec<_>>()),
                ),
                ("currency".into(), text(st.currency.as_str())),
                (
                    "country".into(),
                    opt(st.country.as_ref().map(|c| c.as_str())),
                ),
                ("price_channel".into(), opt(st.price_channel.as_deref())),
                ("supply_channel".into(), opt(st.supply_channel.as_deref())),
                ("product_url".into(), text(st.product_url.as_str())),
                (
                    "cart_recovery_url".into(),
                    opt(st.cart_recovery_url.as_ref().map(|u| u.as_str())),
                ),
                (
                    "omnisend_api_key_env".into(),
                    text(&st.omnisend_api_key_env),
                ),
                (
                    "primary_identifier".into(),
                    text(st.primary_identifier.as_str()),
                ),
            ],
        ));
    }
    out.push((
        "secrets (environment)".to_owned(),
        ctx.secrets
            .iter()
            .map(|(name, set)| (name.clone(), Shown::Secret(*set)))
            .collect(),
    ));
    out
}

/// A record id as shown: commercetools ids as they are, a contact key (an email address or a
/// phone number) masked.
fn mask_id(id: &str) -> String {
    let phone = id.starts_with('+') && id[1..].bytes().all(|b| b.is_ascii_digit());
    if id.contains('@') || phone {
        mask_text(id)
    } else {
        id.to_owned()
    }
}

fn plural(n: u64) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// `2026-05-01 10:00:01 UTC`.
pub fn datetime(t: OffsetDateTime) -> String {
    t.to_offset(time::UtcOffset::UTC)
        .format(format_description!(
            "[year]-[month]-[day] [hour]:[minute]:[second] UTC"
        ))
        .unwrap_or_else(|_| t.to_string())
}

/// `45 s`, `12 min`, `3 h 20 min`, `2 d 4 h` (negative: `0 s`).
pub fn human(d: time::Duration) -> String {
    let s = d.whole_seconds().max(0);
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min", s / 60),
        3600..86_400 => match (s % 3600) / 60 {
            0 => format!("{} h", s / 3600),
            m => format!("{} h {m} min", s / 3600),
        },
        _ => match (s % 86_400) / 3600 {
            0 => format!("{} d", s / 86_400),
            h => format!("{} d {h} h", s / 86_400),
        },
    }
}

fn ago(d: time::Duration) -> String {
    if d.whole_seconds() < 1 {
        "just now".into()
    } else {
        format!("{} ago", human(d))
    }
}

fn opt_ago(t: Option<OffsetDateTime>, now: OffsetDateTime) -> Markup {
    html! {
        @match t {
            Some(t) => { span title=(datetime(t)) { (ago(now - t)) } }
            None => { span .muted { "—" } }
        }
    }
}

/// A run's duration: `850 ms`, `12.4 s`, then as [`human`].
fn human_ms(ms: u64) -> String {
    match ms {
        0..1000 => format!("{ms} ms"),
        1000..60_000 => format!("{:.1} s", ms as f64 / 1000.0),
        _ => human(time::Duration::milliseconds(ms as i64)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_a_person_would_say_them() {
        assert_eq!(human(time::Duration::seconds(45)), "45 s");
        assert_eq!(human(time::Duration::seconds(12 * 60 + 5)), "12 min");
        assert_eq!(
            human(time::Duration::seconds(3 * 3600 + 20 * 60)),
            "3 h 20 min"
        );
        assert_eq!(
            human(time::Duration::seconds(2 * 86_400 + 4 * 3600)),
            "2 d 4 h"
        );
        assert_eq!(human(time::Duration::seconds(-5)), "0 s");
        assert_eq!(human_ms(850), "850 ms");
        assert_eq!(human_ms(12_400), "12.4 s");
    }

    #[test]
    fn flash_round_trips_and_ignores_what_it_does_not_know() {
        let f = Flash {
            replayed: Some(3),
            resolved: Some(2),
            ..Flash::default()
        };
        assert_eq!(Flash::from_query(Some(&f.to_query()[1..])), f);
        let hostile = Flash::from_query(Some("error=%3Cscript%3E&replayed=x&id=7"));
        assert_eq!(
            hostile,
            Flash {
                id: Some(7),
                ..Flash::default()
            }
        );
        assert_eq!(Flash::default().to_query(), "");
    }

    #[test]
    fn contact_keys_are_masked_and_commercetools_ids_are_not() {
        let uuid = "c03a5d9f-2104-48d8-a1a8-dc35276eb905";
        assert_eq!(mask_id(uuid), uuid);
        assert_eq!(mask_id("order:1234567"), "order:1234567");
        assert!(!mask_id("jane.doe@example.com").contains("jane.doe"));
        assert!(!mask_id("+4915112345678").contains("15112345678"));
    }

    #[test]
    fn urls_lose_their_password_and_query() {
        assert_eq!(
            safe_url("https://user:pw@push.example.com/hook?token=abc"),
            "https://push.example.com/hook?…"
        );
        assert_eq!(safe_url("not a url"), "(not shown)");
    }
}
