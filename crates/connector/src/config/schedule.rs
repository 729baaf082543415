//! `[schedule]`: the jobs `ct-omnisend serve` runs by itself (issue 5). Raw TOML shape and
//! checked settings.

use std::str::FromStr;
use std::time::Duration;

use serde::Deserialize;

use super::{ConfigError, invalid};

/// Default seconds between delta runs of the catalog and of the contacts, per store (brand).
pub const DEFAULT_DELTA_SECS: u64 = 900;
/// Default full-refresh schedule: daily at 03:00 UTC.
pub const DEFAULT_FULL_REFRESH: &str = "0 3 * * *";
/// Default seconds a job lease lasts without renewal.
pub const DEFAULT_JOB_LEASE_SECS: u64 = 60;

/// `[schedule]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSchedule {
    /// Run scheduled jobs in `serve` (default true). Change notifications still run delta
    /// syncs when false.
    pub enabled: Option<bool>,
    /// Seconds between catalog delta runs per store (default 900; 0 = only on change
    /// notifications and the full refresh).
    pub catalog_delta_secs: Option<u64>,
    /// Seconds between contacts delta runs per brand (default 900; 0 = only on change
    /// notifications and the full refresh).
    pub contacts_delta_secs: Option<u64>,
    /// Cron expression (UTC; 5 fields, or 6 with seconds first) for the full refresh of the
    /// catalog and contacts (default `0 3 * * *`; `""` = never).
    pub full_refresh: Option<String>,
    /// Seconds a job's lease lasts without renewal; an instance that dies holding a job frees
    /// it after this long (default 60, at least 3).
    pub lease_secs: Option<u64>,
}

/// A checked cron expression.
#[derive(Clone, Debug)]
pub struct CronSchedule {
    text: String,
    cron: croner::Cron,
}

impl CronSchedule {
    /// Parses `text` (5 fields, or 6 with seconds first).
    pub fn parse(text: &str) -> Result<Self, String> {
        let cron = croner::parser::CronParser::builder()
            .seconds(croner::parser::Seconds::Optional)
            .build()
            .parse(text)
            .map_err(|e| e.to_string())?;
        Ok(CronSchedule {
            text: text.to_owned(),
            cron,
        })
    }

    /// The expression as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The first time strictly after `after` (UTC) the schedule fires.
    pub fn next_after(&self, after: time::OffsetDateTime) -> Option<time::OffsetDateTime> {
        let nanos = after.unix_timestamp_nanos();
        let secs = i64::try_from(nanos.div_euclid(1_000_000_000)).ok()?;
        let sub = u32::try_from(nanos.rem_euclid(1_000_000_000)).ok()?;
        let start = chrono::DateTime::<chrono::Utc>::from_timestamp(secs, sub)?;
        let next = self.cron.find_next_occurrence(&start, false).ok()?;
        let next_nanos = i128::from(next.timestamp()) * 1_000_000_000
            + i128::from(next.timestamp_subsec_nanos());
        time::OffsetDateTime::from_unix_timestamp_nanos(next_nanos).ok()
    }
}

impl PartialEq for CronSchedule {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl Eq for CronSchedule {}

impl FromStr for CronSchedule {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// Checked `[schedule]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScheduleSettings {
    /// Whether `serve` runs the scheduled jobs.
    pub enabled: bool,
    /// Catalog delta interval (`None` = off).
    pub catalog_delta: Option<Duration>,
    /// Contacts delta interval (`None` = off).
    pub contacts_delta: Option<Duration>,
    /// Full refresh schedule (`None` = never).
    pub full_refresh: Option<CronSchedule>,
    /// Job lease.
    pub lease: Duration,
}

impl Default for ScheduleSettings {
    fn default() -> Self {
        ScheduleSettings::from_raw(RawSchedule::default()).expect("the defaults are valid")
    }
}

impl ScheduleSettings {
    /// Checks `[schedule]`.
    pub fn from_raw(raw: RawSchedule) -> Result<Self, ConfigError> {
        let interval = |v: Option<u64>| match v.unwrap_or(DEFAULT_DELTA_SECS) {
            0 => None,
            s => Some(Duration::from_secs(s)),
        };
        let full_refresh = match raw.full_refresh.as_deref().map(str::trim) {
            Some("") => None,
            Some(text) => Some(
                CronSchedule::parse(text)
                    .map_err(|e| invalid("schedule.full_refresh", format!("{text:?}: {e}")))?,
            ),
            None => Some(CronSchedule::parse(DEFAULT_FULL_REFRESH).expect("valid default")),
        };
        let lease_secs = raw.lease_secs.unwrap_or(DEFAULT_JOB_LEASE_SECS);
        if lease_secs < 3 {
            return Err(invalid("schedule.lease_secs", "must be at least 3"));
        }
        Ok(ScheduleSettings {
            enabled: raw.enabled.unwrap_or(true),
            catalog_delta: interval(raw.catalog_delta_secs),
            contacts_delta: interval(raw.contacts_delta_secs),
            full_refresh,
            lease: Duration::from_secs(lease_secs),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn a_five_field_cron_fires_at_the_next_matching_minute_in_utc() {
        let c = CronSchedule::parse("0 3 * * *").unwrap();
        assert_eq!(
            c.next_after(datetime!(2026-11-27 02:59:59.5 UTC)),
            Some(datetime!(2026-11-27 03:00 UTC))
        );
        assert_eq!(
            c.next_after(datetime!(2026-11-27 03:00 UTC)),
            Some(datetime!(2026-11-28 03:00 UTC))
        );
    }

    #[test]
    fn a_six_field_cron_has_seconds_first() {
        let c = CronSchedule::parse("30 */20 * * * *").unwrap();
        assert_eq!(
            c.next_after(datetime!(2026-11-27 00:00 UTC)),
            Some(datetime!(2026-11-27 00:00:30 UTC))
        );
        assert_eq!(
            c.next_after(datetime!(2026-11-27 00:00:30 UTC)),
            Some(datetime!(2026-11-27 00:20:30 UTC))
        );
    }

    #[test]
    fn defaults_are_fifteen_minute_deltas_and_a_nightly_full_refresh() {
        let s = ScheduleSettings::default();
        assert!(s.enabled);
        assert_eq!(s.catalog_delta, Some(Duration::from_secs(900)));
        assert_eq!(s.contacts_delta, Some(Duration::from_secs(900)));
        assert_eq!(
            s.full_refresh.as_ref().map(|c| c.as_str()),
            Some("0 3 * * *")
        );
        assert_eq!(s.lease, Duration::from_secs(60));
    }

    #[test]
    fn a_bad_cron_expression_or_a_tiny_lease_is_refused_with_the_key() {
        let bad = ScheduleSettings::from_raw(RawSchedule {
            full_refresh: Some("61 * * * *".into()),
            ..RawSchedule::default()
        })
        .unwrap_err();
        assert!(bad.to_string().contains("schedule.full_refresh"), "{bad}");
        let tiny = ScheduleSettings::from_raw(RawSchedule {
            lease_secs: Some(1),
            ..RawSchedule::default()
        })
        .unwrap_err();
        assert!(tiny.to_string().contains("schedule.lease_secs"), "{tiny}");
    }

    #[test]
    fn zero_and_empty_turn_jobs_off() {
        let s = ScheduleSettings::from_raw(RawSchedule {
            catalog_delta_secs: Some(0),
            full_refresh: Some(String::new()),
            ..RawSchedule::default()
        })
        .unwrap();
        assert_eq!(s.catalog_delta, None);
        assert_eq!(s.full_refresh, None);
        assert!(s.contacts_delta.is_some());
    }
}
