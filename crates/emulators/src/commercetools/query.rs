//! Query-endpoint parameters (`where`, `sort`, `limit`, `offset`, `withTotal`, `expand`,
//! `staged`) and their evaluation over a set of stored resources.

use std::cmp::Ordering;

use serde_json::{Value, json};

use super::predicate::{self, FieldDef, Predicate, compare_values, field_value, find_field};

/// Default page size.
pub(crate) const DEFAULT_LIMIT: u64 = 20;
/// Largest accepted `limit`.
pub(crate) const MAX_LIMIT: u64 = 500;
/// Largest accepted `offset`.
pub(crate) const MAX_OFFSET: u64 = 10_000;

/// Parsed query parameters of a query endpoint.
#[derive(Debug)]
pub(crate) struct QueryParams {
    pub predicates: Vec<Predicate>,
    pub sort: Vec<(&'static FieldDef, bool)>,
    pub limit: u64,
    pub offset: u64,
    pub with_total: bool,
    pub staged: bool,
}

/// Parses the query-string pairs. Errors are human-readable `InvalidInput` messages.
pub(crate) fn parse_params(
    pairs: &[(String, String)],
    fields: &'static [FieldDef],
) -> Result<QueryParams, String> {
    let mut q = QueryParams {
        predicates: Vec::new(),
        sort: Vec::new(),
        limit: DEFAULT_LIMIT,
        offset: 0,
        with_total: true,
        staged: false,
    };
    for (k, v) in pairs {
        match k.as_str() {
            "where" => q.predicates.push(predicate::parse(v, fields).map_err(|e| {
                format!("Malformed parameter: where: Syntax error while parsing 'where'. {e}")
            })?),
            "sort" => {
                let mut parts = v.split_whitespace();
                let name = parts.next().unwrap_or_default();
                let dir = parts.next().unwrap_or("asc");
                let field = find_field(fields, name).ok_or_else(|| {
                    format!("Malformed parameter: sort: Unknown sort field '{name}'.")
                })?;
                let asc = match dir.to_ascii_lowercase().as_str() {
                    "asc" => true,
                    "desc" => false,
                    _ => {
                        return Err(format!(
                            "Malformed parameter: sort: Invalid sort direction '{dir}', expected 'asc' or 'desc'."
                        ));
                    }
                };
                if parts.next().is_some() {
                    return Err(format!(
                        "Malformed parameter: sort: Invalid sort expression '{v}'."
                    ));
                }
                q.sort.push((field, asc));
            }
            "limit" => {
                q.limit = v
                    .parse::<u64>()
                    .ok()
                    .filter(|l| *l <= MAX_LIMIT)
                    .ok_or_else(|| {
                        format!("Malformed parameter: limit: The limit must be between 0 and {MAX_LIMIT}, got '{v}'.")
                    })?;
            }
            "offset" => {
                q.offset = v
                    .parse::<u64>()
                    .ok()
                    .filter(|o| *o <= MAX_OFFSET)
                    .ok_or_else(|| {
                        format!("Malformed parameter: offset: The offset must be between 0 and {MAX_OFFSET}, got '{v}'.")
                    })?;
            }
            "withTotal" => q.with_total = parse_bool(k, v)?,
            "staged" => q.staged = parse_bool(k, v)?,
            _ => {} // expand, price selection, localeProjection, ...: accepted and ignored
        }
    }
    Ok(q)
}

fn parse_bool(k: &str, v: &str) -> Result<bool, String> {
    match v {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(format!(
            "Malformed parameter: {k}: Invalid boolean '{v}', expected 'true' or 'false'."
        )),
    }
}

impl QueryParams {
    /// Filters, sorts and pages `items` (which must already be in ascending `id` order, the
    /// implicit final tie-breaker). Returns the page and the total number of matches.
    pub(crate) fn run<'a>(
        &self,
        items: impl Iterator<Item = &'a Value>,
    ) -> (Vec<&'a Value>, usize) {
        let mut matching: Vec<&Value> = items
            .filter(|r| self.predicates.iter().all(|p| p.matches(r)))
            .collect();
        let id_asc_only = self.sort.is_empty()
            || (self.sort.len() == 1 && self.sort[0].0.name == "id" && self.sort[0].1);
        if !id_asc_only {
            matching.sort_by(|a, b| {
                for (field, asc) in &self.sort {
                    let ord = match (field_value(a, field), field_value(b, field)) {
                        (Some(x), Some(y)) => compare_values(field.ty, x, y),
                        (None, Some(_)) => Ordering::Greater, // missing values sort last
                        (Some(_), None) => Ordering::Less,
                        (None, None) => Ordering::Equal,
                    };
                    let ord = if *asc { ord } else { ord.reverse() };
                    if ord.is_ne() {
                        return ord;
                    }
                }
                Ordering::Equal
            });
        }
        let total = matching.len();
        let page = matching
            .into_iter()
            .skip(self.offset as usize)
            .take(self.limit as usize)
            .collect();
        (page, total)
    }

    /// Builds the `PagedQueryResponse`.
    pub(crate) fn response(&self, results: Vec<Value>, total: usize) -> Value {
        let mut body = json!({
            "limit": self.limit,
            "offset": self.offset,
            "count": results.len(),
        });
        if self.with_total {
            body["total"] = json!(total);
        }
        body["results"] = Value::Array(results);
        body
    }
}
