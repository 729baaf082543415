//! Keyset pagination over commercetools query endpoints.
//!
//! * Full: `sort=id asc`, then `where=id > "<last id>"` — never `offset` (capped at 10 000).
//! * Delta: compound keyset on `(lastModifiedAt, id)`:
//!   `where=(lastModifiedAt > "W" or (lastModifiedAt = "W" and id > "I"))` with
//!   `sort=lastModifiedAt asc&sort=id asc`, so items sharing a timestamp are never dropped.
//!
//! Paging stops when a page holds fewer items than the limit.

use serde::de::DeserializeOwned;
use time::OffsetDateTime;
use time::format_description::FormatItem;
use time::macros::format_description;

use crate::client::CtClient;
use crate::error::CtError;

/// Largest page commercetools serves.
pub const MAX_PAGE_SIZE: u32 = 500;

/// A resource that can be paged by keyset.
pub trait Keyed {
    /// Resource id.
    fn id(&self) -> &str;
    /// Last modification.
    fn last_modified_at(&self) -> OffsetDateTime;
}

/// A position in the `(lastModifiedAt, id)` order: the last item processed.
#[derive(Clone, Debug, PartialEq)]
pub struct DeltaPosition {
    /// `lastModifiedAt` of the item.
    pub last_modified_at: OffsetDateTime,
    /// Id of the item.
    pub id: String,
}

/// Which keyset to page by.
#[derive(Clone, Debug)]
pub enum PageMode {
    /// Everything, in id order, optionally resuming after `after_id`.
    Full {
        /// Resume after this id (exclusive).
        after_id: Option<String>,
    },
    /// Resources modified after `since` (exclusive), in `(lastModifiedAt, id)` order,
    /// optionally resuming after the position `after` (which takes precedence over `since`).
    Delta {
        /// Watermark: only `lastModifiedAt > since`.
        since: OffsetDateTime,
        /// Resume after this position (exclusive).
        after: Option<DeltaPosition>,
    },
}

/// Pages through a query endpoint by keyset; created by [`CtClient::pager`].
pub struct Pager<T> {
    client: CtClient,
    path: String,
    mode: PageMode,
    limit: u32,
    extra: Vec<(String, String)>,
    last_id: Option<String>,
    position: Option<DeltaPosition>,
    pages_fetched: u64,
    done: bool,
    _items: std::marker::PhantomData<fn() -> T>,
}

impl<T> std::fmt::Debug for Pager<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pager")
            .field("path", &self.path)
            .field("mode", &self.mode)
            .field("limit", &self.limit)
            .field("position", &self.position)
            .field("last_id", &self.last_id)
            .field("pages_fetched", &self.pages_fetched)
            .field("done", &self.done)
            .finish()
    }
}

const WATERMARK_FORMAT: &[FormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");

/// Formats a watermark for a query predicate: UTC with exactly 3 fractional digits
/// (sub-millisecond precision is truncated), e.g. `2026-01-02T03:04:05.678Z`.
pub fn format_watermark(t: OffsetDateTime) -> String {
    let utc = t.to_offset(time::UtcOffset::UTC);
    let ms = utc.replace_nanosecond(utc.nanosecond() / 1_000_000 * 1_000_000);
    let utc = ms.unwrap_or(utc);
    utc.format(WATERMARK_FORMAT)
        .unwrap_or_else(|_| utc.unix_timestamp().to_string())
}

/// A string literal for a query predicate: double quotes and backslashes escaped.
pub fn quote_literal(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// The compound keyset predicate selecting items strictly after `p`.
pub fn after_position_predicate(p: &DeltaPosition) -> String {
    let w = quote_literal(&format_watermark(p.last_modified_at));
    format!(
        "(lastModifiedAt > {w} or (lastModifiedAt = {w} and id > {}))",
        quote_literal(&p.id)
    )
}

impl<T: Keyed + DeserializeOwned> Pager<T> {
    pub(crate) fn new(
        client: CtClient,
        path: &str,
        mode: PageMode,
        page_size: u32,
        extra: Vec<(String, String)>,
    ) -> Self {
        let (last_id, position) = match &mode {
            PageMode::Full { after_id } => (after_id.clone(), None),
            PageMode::Delta { after, .. } => (after.as_ref().map(|p| p.id.clone()), after.clone()),
        };
        Self {
            client,
            path: path.to_string(),
            mode,
            limit: page_size.clamp(1, MAX_PAGE_SIZE),
            extra,
            last_id,
            position,
            pages_fetched: 0,
            done: false,
            _items: std::marker::PhantomData,
        }
    }

    /// The query parameters of the next page.
    pub fn next_query(&self) -> Vec<(String, String)> {
        let mut q: Vec<(String, String)> = Vec::with_capacity(self.extra.len() + 5);
        let mut push = |k: &str, v: String| q.push((k.to_string(), v));
        match &self.mode {
            PageMode::Full { .. } => {
                push("sort", "id asc".into());
                if let Some(id) = &self.last_id {
                    push("where", format!("id > {}", quote_literal(id)));
                }
            }
            PageMode::Delta { since, .. } => {
                push("sort", "lastModifiedAt asc".into());
                push("sort", "id asc".into());
                match &self.position {
                    Some(p) => push("where", after_position_predicate(p)),
                    None => push(
                        "where",
                        format!(
                            "lastModifiedAt > {}",
                            quote_literal(&format_watermark(*since))
                        ),
                    ),
                }
            }
        }
        push("limit", self.limit.to_string());
        push("withTotal", "false".into());
        q.extend(self.extra.iter().cloned());
        q
    }

    /// The next page, or `None` when exhausted (never an empty page). Stops after a page
    /// with fewer items than the limit.
    pub async fn next_page(&mut self) -> Result<Option<Vec<T>>, CtError> {
        if self.done {
            return Ok(None);
        }
        let query = self.next_query();
        let page = self.client.query::<T>(&self.path, &query).await?;
        self.pages_fetched += 1;
        let items = page.results;
        if (items.len() as u64) < u64::from(self.limit) {
            self.done = true;
        }
        let Some(last) = items.last() else {
            self.done = true;
            return Ok(None);
        };
        let new_position = DeltaPosition {
            last_modified_at: last.last_modified_at(),
            id: last.id().to_string(),
        };
        let progressed = match &self.mode {
            PageMode::Full { .. } => self.last_id.as_deref() != Some(last.id()),
            PageMode::Delta { .. } => self.position.as_ref() != Some(&new_position),
        };
        if !progressed {
            self.done = true;
            return Err(CtError::Decode {
                path: self.path.clone(),
                message: format!(
                    "keyset paging made no progress (last item {} repeated); the endpoint ignores the sort/where parameters",
                    new_position.id
                ),
            });
        }
        self.last_id = Some(new_position.id.clone());
        self.position = Some(new_position);
        Ok(Some(items))
    }

    /// `(lastModifiedAt, id)` of the last item returned so far (initially `after` of a
    /// delta pager), to persist as the next run's resume point.
    pub fn position(&self) -> Option<DeltaPosition> {
        self.position.clone()
    }

    /// Id of the last item returned so far (initially the resume id, if any).
    pub fn last_id(&self) -> Option<&str> {
        self.last_id.as_deref()
    }

    /// Pages fetched so far (successful requests).
    pub fn pages_fetched(&self) -> u64 {
        self.pages_fetched
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn watermark_is_utc_with_exactly_three_truncated_fraction_digits() {
        assert_eq!(
            format_watermark(datetime!(2026-01-02 03:04:05.678999 UTC)),
            "2026-01-02T03:04:05.678Z"
        );
        assert_eq!(
            format_watermark(datetime!(2026-01-02 03:04:05 UTC)),
            "2026-01-02T03:04:05.000Z"
        );
        assert_eq!(
            format_watermark(datetime!(2026-01-02 05:04:05.1 +02:00)),
            "2026-01-02T03:04:05.100Z"
        );
        assert_eq!(
            format_watermark(datetime!(2025-12-31 23:30:00.999999999 -01:00)),
            "2026-01-01T00:30:00.999Z"
        );
    }

    #[test]
    fn literals_escape_quotes_and_backslashes() {
        assert_eq!(quote_literal(r#"a"b\c"#), r#""a\"b\\c""#);
    }

    #[test]
    fn compound_predicate_has_the_documented_shape() {
        let p = DeltaPosition {
            last_modified_at: datetime!(2026-01-02 03:04:05.678 UTC),
            id: "abc".into(),
        };
        assert_eq!(
            after_position_predicate(&p),
            r#"(lastModifiedAt > "2026-01-02T03:04:05.678Z" or (lastModifiedAt = "2026-01-02T03:04:05.678Z" and id > "abc"))"#
        );
    }
}
