//! `sync orders --since DATE --historical --confirm-historical`: past orders as `placed order`
//! events with their original `eventTime`, through `/batches`.
//!
//! Guarded twice because Omnisend warns that imported events can trigger automations: the
//! command refuses to run without `--historical` and the explicit confirmation flag. Events
//! go through the outbox's backfill lane (real-time events overtake them) and the same
//! ledger, so an order already sent in real time is not sent again, and running the import
//! twice sends nothing new.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use commercetools::PageMode;
use commercetools::models::Order;
use connector::app;
use connector::config::Settings;
use connector::events::deliver::Delivery;
use connector::events::process::Processor;
use connector::store::{Lane, RunStats, StateStore};
use connector::sync::{Mode, RunSummary};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::sync::Notify;

/// `--since`: `YYYY-MM-DD` (midnight UTC) or an RFC 3339 instant.
pub fn parse_since(s: &str) -> anyhow::Result<OffsetDateTime> {
    if let Ok(t) = OffsetDateTime::parse(s, &Rfc3339) {
        return Ok(t);
    }
    let date = time::Date::parse(s, time::macros::format_description!("[year]-[month]-[day]"))
        .with_context(|| format!("--since {s:?}: expected YYYY-MM-DD or an RFC 3339 time"))?;
    Ok(date.midnight().assume_utc())
}

/// Checks the guard flags; returns the start instant.
pub fn check_guard(
    since: Option<&str>,
    historical: bool,
    confirmed: bool,
) -> anyhow::Result<OffsetDateTime> {
    if !historical {
        bail!(
            "sync orders sends past orders as `placed order` events, which can trigger Omnisend \
             automations: run it with --historical --since DATE --confirm-historical (real-time \
             order events come from `serve`)"
        );
    }
    let Some(since) = since else {
        bail!("sync orders --historical needs --since DATE (YYYY-MM-DD or RFC 3339)");
    };
    if !confirmed {
        bail!(
            "Omnisend warns that imported events can trigger automations (post-purchase flows): \
             add --confirm-historical to send them"
        );
    }
    parse_since(since)
}

/// Reads the orders created since `since`, queues their `placed order` events and delivers
/// them through `/batches`.
pub async fn run(
    settings: &Settings,
    since: OffsetDateTime,
    env: &dyn Fn(&str) -> Option<String>,
) -> anyhow::Result<RunSummary> {
    let started = Instant::now();
    let store = StateStore::connect(&settings.state_url).await?;
    let ct = app::commercetools_client(settings)?;
    let clients = app::brand_clients(settings, env)?;
    connector::budget::share(&store, clients.values());
    let processor = Processor::new(
        store.clone(),
        ct.clone(),
        Arc::new(settings.clone()),
        None,
        Arc::new(Notify::new()),
    );
    let since_text = since.format(&Rfc3339).context("formatting --since")?;
    let mut pager = ct.pager::<Order>(
        "orders",
        PageMode::Full { after_id: None },
        settings.commercetools.page_size,
        vec![("where".into(), format!("createdAt >= \"{since_text}\""))],
    );
    let mut queued = 0u64;
    let mut seen = 0u64;
    let mut rejected = 0u64;
    while let Some(page) = pager.next_page().await? {
        let stats = processor
            .queue_historical(&page)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        seen += stats.seen as u64;
        queued += stats.queued as u64;
        rejected += stats.rejected as u64;
    }
    // Deliver the backfill lane only (real-time events stay with `serve`), always through
    // /batches (threshold 0), as a one-off worker of this process.
    let mut events = settings.events.clone();
    events.batch_threshold = 0;
    let requests_before: u64 = clients.values().map(|c| c.requests_sent()).sum();
    let delivery = Delivery::new(
        store.clone(),
        clients.clone(),
        events,
        format!("sync-orders-{}", std::process::id()),
        Arc::new(Notify::new()),
    )
    .only_lane(Lane::Backfill);
    let deadline = Instant::now() + settings.events.max_age.min(Duration::from_secs(3600));
    let mut left = store.count_unsent_in(Lane::Backfill).await?;
    while left > 0 {
        if Instant::now() > deadline {
            tracing::warn!(
                pending = left,
                "historical events still pending; `serve` delivers them"
            );
            break;
        }
        let round = delivery.round(OffsetDateTime::now_utc()).await?;
        if round.claimed == 0 {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        left = store.count_unsent_in(Lane::Backfill).await?;
    }
    let depth_failed = u64::try_from(left).unwrap_or(0);
    let requests: u64 = clients.values().map(|c| c.requests_sent()).sum::<u64>() - requests_before;
    Ok(RunSummary {
        entity: "orders".into(),
        store: "all".into(),
        mode: Mode::Full,
        reason: Some(format!("historical orders created since {since_text}")),
        stats: RunStats {
            seen,
            created: queued,
            updated: 0,
            unchanged: seen.saturating_sub(queued + rejected),
            deleted: 0,
            rejected,
            failed: depth_failed,
            requests,
            duration_ms: started.elapsed().as_millis() as u64,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_import_needs_both_flags_and_a_start_date() {
        assert!(check_guard(Some("2026-01-01"), false, true).is_err());
        assert!(check_guard(None, true, true).is_err());
        let e = check_guard(Some("2026-01-01"), true, false).unwrap_err();
        assert!(e.to_string().contains("--confirm-historical"));
        let t = check_guard(Some("2026-01-01"), true, true).unwrap();
        assert_eq!(t, time::macros::datetime!(2026-01-01 00:00 UTC));
        assert!(parse_since("yesterday").is_err());
        assert_eq!(
            parse_since("2026-02-03T04:05:06Z").unwrap(),
            time::macros::datetime!(2026-02-03 04:05:06 UTC)
        );
    }
}
