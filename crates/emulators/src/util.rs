//! Small helpers shared by both emulators: timestamps and query-string parsing.

use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, UtcOffset};

/// Formats a timestamp as RFC 3339 UTC with exactly millisecond precision:
/// `YYYY-MM-DDTHH:MM:SS.mmmZ`.
pub(crate) fn format_ms(t: OffsetDateTime) -> String {
    let t = t.to_offset(UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

/// The current wall-clock time truncated to milliseconds.
pub(crate) fn now_ms() -> OffsetDateTime {
    let now = OffsetDateTime::now_utc();
    now.replace_nanosecond(now.millisecond() as u32 * 1_000_000)
        .unwrap_or(now)
}

/// Parses an RFC 3339 timestamp.
pub(crate) fn parse_rfc3339(s: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s, &Rfc3339).ok()
}

/// Splits a raw query string into decoded `(key, value)` pairs, keeping repeated keys.
pub(crate) fn query_pairs(raw: Option<&str>) -> Vec<(String, String)> {
    raw.map(|q| {
        url::form_urlencoded::parse(q.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    })
    .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_ms_pads_and_truncates() {
        let t = parse_rfc3339("2026-01-02T03:04:05.123456Z").unwrap();
        assert_eq!(format_ms(t), "2026-01-02T03:04:05.123Z");
    }
}
