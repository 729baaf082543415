//! The commercetools query-predicate language (`where=`), as far as the connector needs it.
//!
//! Grammar (keywords are case-insensitive):
//!
//! ```text
//! expr       := and ("or" and)*
//! and        := unary ("and" unary)*
//! unary      := "not" "(" expr ")" | "(" expr ")" | path
//! path       := IDENT "(" expr ")"                       -- nested field, e.g. masterData(published = true)
//!             | IDENT op literal                         -- op: = != <> > >= < <=
//!             | IDENT ["not"] "in" "(" literal ("," literal)* ")"
//!             | IDENT "is" ["not"] "defined"
//! literal    := "string" | number | true | false
//! ```
//!
//! Fields are checked against the queried resource's [`FieldDef`] table (unknown fields and
//! literals of the wrong type are `InvalidInput` errors). Datetime fields compare as datetimes.

use std::cmp::Ordering;

use serde_json::Value;
use time::OffsetDateTime;

use crate::util::parse_rfc3339;

/// The JSON type of a queryable field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FieldType {
    Str,
    Num,
    Bool,
    DateTime,
}

/// A queryable (and sortable) field of a resource: its predicate name and where it lives in JSON.
#[derive(Debug)]
pub(crate) struct FieldDef {
    pub name: &'static str,
    pub path: &'static [&'static str],
    pub ty: FieldType,
}

const fn f(name: &'static str, path: &'static [&'static str], ty: FieldType) -> FieldDef {
    FieldDef { name, path, ty }
}

/// Fields every resource has.
pub(crate) const COMMON_FIELDS: &[FieldDef] = &[
    f("id", &["id"], FieldType::Str),
    f("key", &["key"], FieldType::Str),
    f("version", &["version"], FieldType::Num),
    f("createdAt", &["createdAt"], FieldType::DateTime),
    f("lastModifiedAt", &["lastModifiedAt"], FieldType::DateTime),
];

/// Fields of products and product projections (evaluated on the stored `Product`).
pub(crate) const PRODUCT_FIELDS: &[FieldDef] = &[
    f("id", &["id"], FieldType::Str),
    f("key", &["key"], FieldType::Str),
    f("version", &["version"], FieldType::Num),
    f("createdAt", &["createdAt"], FieldType::DateTime),
    f("lastModifiedAt", &["lastModifiedAt"], FieldType::DateTime),
    f("published", &["masterData", "published"], FieldType::Bool),
    f(
        "hasStagedChanges",
        &["masterData", "hasStagedChanges"],
        FieldType::Bool,
    ),
    f(
        "masterData.published",
        &["masterData", "published"],
        FieldType::Bool,
    ),
    f(
        "masterData.hasStagedChanges",
        &["masterData", "hasStagedChanges"],
        FieldType::Bool,
    ),
    // Variant SKUs of the current data (what product projections show): `masterVariant(sku =
    // "…")`, `variants(sku = "…")` (any variant).
    f(
        "masterVariant.sku",
        &["masterData", "current", "masterVariant", "sku"],
        FieldType::Str,
    ),
    f(
        "variants.sku",
        &["masterData", "current", "variants", "*", "sku"],
        FieldType::Str,
    ),
];

/// Fields of messages. `resource(id = "…")` and `resource(typeId = "…")` reach the nested
/// fields (the parser joins nested names with dots).
pub(crate) const MESSAGE_FIELDS: &[FieldDef] = &[
    f("id", &["id"], FieldType::Str),
    f("version", &["version"], FieldType::Num),
    f("createdAt", &["createdAt"], FieldType::DateTime),
    f("lastModifiedAt", &["lastModifiedAt"], FieldType::DateTime),
    f("type", &["type"], FieldType::Str),
    f("sequenceNumber", &["sequenceNumber"], FieldType::Num),
    f("resourceVersion", &["resourceVersion"], FieldType::Num),
    f("resource.id", &["resource", "id"], FieldType::Str),
    f("resource.typeId", &["resource", "typeId"], FieldType::Str),
];

/// Fields of discount codes: the common ones plus `code` and `isActive`.
pub(crate) const DISCOUNT_CODE_FIELDS: &[FieldDef] = &[
    f("id", &["id"], FieldType::Str),
    f("key", &["key"], FieldType::Str),
    f("version", &["version"], FieldType::Num),
    f("createdAt", &["createdAt"], FieldType::DateTime),
    f("lastModifiedAt", &["lastModifiedAt"], FieldType::DateTime),
    f("code", &["code"], FieldType::Str),
    f("isActive", &["isActive"], FieldType::Bool),
];

/// Fields of customers: the common ones plus `email` and `customerNumber`.
pub(crate) const CUSTOMER_FIELDS: &[FieldDef] = &[
    f("id", &["id"], FieldType::Str),
    f("key", &["key"], FieldType::Str),
    f("version", &["version"], FieldType::Num),
    f("createdAt", &["createdAt"], FieldType::DateTime),
    f("lastModifiedAt", &["lastModifiedAt"], FieldType::DateTime),
    f("email", &["email"], FieldType::Str),
    f("customerNumber", &["customerNumber"], FieldType::Str),
];

/// Fields of carts: the common ones plus the buyer's identity, `cartState` and `store(key)`.
pub(crate) const CART_FIELDS: &[FieldDef] = &[
    f("id", &["id"], FieldType::Str),
    f("key", &["key"], FieldType::Str),
    f("version", &["version"], FieldType::Num),
    f("createdAt", &["createdAt"], FieldType::DateTime),
    f("lastModifiedAt", &["lastModifiedAt"], FieldType::DateTime),
    f("customerId", &["customerId"], FieldType::Str),
    f("customerEmail", &["customerEmail"], FieldType::Str),
    f("anonymousId", &["anonymousId"], FieldType::Str),
    f("cartState", &["cartState"], FieldType::Str),
    f("store.key", &["store", "key"], FieldType::Str),
];

/// Fields of orders: the common ones plus the buyer's identity, `orderNumber`, `orderState` and
/// `store(key)`.
pub(crate) const ORDER_FIELDS: &[FieldDef] = &[
    f("id", &["id"], FieldType::Str),
    f("key", &["key"], FieldType::Str),
    f("version", &["version"], FieldType::Num),
    f("createdAt", &["createdAt"], FieldType::DateTime),
    f("lastModifiedAt", &["lastModifiedAt"], FieldType::DateTime),
    f("customerId", &["customerId"], FieldType::Str),
    f("customerEmail", &["customerEmail"], FieldType::Str),
    f("anonymousId", &["anonymousId"], FieldType::Str),
    f("orderNumber", &["orderNumber"], FieldType::Str),
    f("orderState", &["orderState"], FieldType::Str),
    f("store.key", &["store", "key"], FieldType::Str),
];

/// Looks a field up by its (dotted) predicate name.
pub(crate) fn find_field(fields: &'static [FieldDef], name: &str) -> Option<&'static FieldDef> {
    fields.iter().find(|f| f.name == name)
}

/// Resolves a field's value inside a resource.
/// Every value of a field; a `*` path segment stands for each element of an array.
pub(crate) fn field_values<'a>(resource: &'a Value, field: &FieldDef) -> Vec<&'a Value> {
    let mut current = vec![resource];
    for p in field.path {
        let mut next = Vec::new();
        for v in current {
            if *p == "*" {
                next.extend(v.as_array().into_iter().flatten());
            } else if let Some(x) = v.get(p) {
                next.push(x);
            }
        }
        current = next;
    }
    current.retain(|v| !v.is_null());
    current
}

pub(crate) fn field_value<'a>(resource: &'a Value, field: &FieldDef) -> Option<&'a Value> {
    let mut v = resource;
    for p in field.path {
        v = v.get(p)?;
    }
    if v.is_null() { None } else { Some(v) }
}

/// A typed literal.
#[derive(Clone, Debug)]
pub(crate) enum Lit {
    Str(String),
    Num(f64),
    Bool(bool),
    /// A datetime with its canonical `YYYY-MM-DDTHH:MM:SS.mmmZ` form when exactly representable.
    Time(OffsetDateTime, Option<String>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Op {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
}

/// A parsed, type-checked predicate.
#[derive(Debug)]
pub(crate) enum Predicate {
    And(Vec<Predicate>),
    Or(Vec<Predicate>),
    Not(Box<Predicate>),
    Cmp(&'static FieldDef, Op, Lit),
    In(&'static FieldDef, Vec<Lit>, bool),
    Defined(&'static FieldDef, bool),
}

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    Num(f64),
    Op(Op),
    LParen,
    RParen,
    Comma,
}

fn describe(t: Option<&Tok>) -> String {
    match t {
        None => "end of input".into(),
        Some(Tok::Ident(s)) => format!("'{s}'"),
        Some(Tok::Str(s)) => format!("'\"{s}\"'"),
        Some(Tok::Num(n)) => format!("'{n}'"),
        Some(Tok::Op(o)) => format!("'{o:?}'"),
        Some(Tok::LParen) => "'('".into(),
        Some(Tok::RParen) => "')'".into(),
        Some(Tok::Comma) => "','".into(),
    }
}

fn tokenize(input: &str) -> Result<Vec<Tok>, String> {
    let chars: Vec<char> = input.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            c if c.is_whitespace() => i += 1,
            '(' => {
                out.push(Tok::LParen);
                i += 1;
            }
            ')' => {
                out.push(Tok::RParen);
                i += 1;
            }
            ',' => {
                out.push(Tok::Comma);
                i += 1;
            }
            '=' => {
                out.push(Tok::Op(Op::Eq));
                i += 1;
            }
            '!' if chars.get(i + 1) == Some(&'=') => {
                out.push(Tok::Op(Op::Ne));
                i += 2;
            }
            '<' if chars.get(i + 1) == Some(&'>') => {
                out.push(Tok::Op(Op::Ne));
                i += 2;
            }
            '<' | '>' => {
                let eq = chars.get(i + 1) == Some(&'=');
                out.push(Tok::Op(match (c, eq) {
                    ('<', true) => Op::Le,
                    ('<', false) => Op::Lt,
                    ('>', true) => Op::Ge,
                    _ => Op::Gt,
                }));
                i += if eq { 2 } else { 1 };
            }
            '"' => {
                let mut s = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err("unterminated string literal".into()),
                        Some('"') => {
                            i += 1;
                            break;
                        }
                        Some('\\') => {
                            match chars.get(i + 1) {
                                Some(e @ ('"' | '\\')) => s.push(*e),
                                Some('n') => s.push('\n'),
                                Some(other) => {
                                    s.push('\\');
                                    s.push(*other);
                                }
                                None => return Err("unterminated string literal".into()),
                            }
                            i += 2;
                        }
                        Some(ch) => {
                            s.push(*ch);
                            i += 1;
                        }
                    }
                }
                out.push(Tok::Str(s));
            }
            c if c.is_ascii_digit() || c == '-' => {
                let start = i;
                i += 1;
                while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                    i += 1;
                }
                let text: String = chars[start..i].iter().collect();
                let n = text
                    .parse::<f64>()
                    .map_err(|_| format!("invalid number '{text}'"))?;
                out.push(Tok::Num(n));
            }
            c if c.is_alphabetic() || c == '_' => {
                let start = i;
                while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                    i += 1;
                }
                out.push(Tok::Ident(chars[start..i].iter().collect()));
            }
            other => return Err(format!("Invalid input '{other}'")),
        }
    }
    Ok(out)
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
    fields: &'static [FieldDef],
    prefix: Vec<String>,
}

fn is_kw(t: Option<&Tok>, kw: &str) -> bool {
    matches!(t, Some(Tok::Ident(s)) if s.eq_ignore_ascii_case(kw))
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }
    fn peek2(&self) -> Option<&Tok> {
        self.toks.get(self.pos + 1)
    }
    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }
    fn expect(&mut self, want: Tok) -> Result<(), String> {
        match self.next() {
            Some(t) if t == want => Ok(()),
            t => Err(format!(
                "Invalid input {}, expected {}",
                describe(t.as_ref()),
                describe(Some(&want))
            )),
        }
    }

    fn expr(&mut self) -> Result<Predicate, String> {
        let mut parts = vec![self.and()?];
        while is_kw(self.peek(), "or") {
            self.pos += 1;
            parts.push(self.and()?);
        }
        Ok(if parts.len() == 1 {
            parts.remove(0)
        } else {
            Predicate::Or(parts)
        })
    }

    fn and(&mut self) -> Result<Predicate, String> {
        let mut parts = vec![self.unary()?];
        while is_kw(self.peek(), "and") {
            self.pos += 1;
            parts.push(self.unary()?);
        }
        Ok(if parts.len() == 1 {
            parts.remove(0)
        } else {
            Predicate::And(parts)
        })
    }

    fn unary(&mut self) -> Result<Predicate, String> {
        if is_kw(self.peek(), "not") && self.peek2() == Some(&Tok::LParen) {
            self.pos += 2;
            let inner = self.expr()?;
            self.expect(Tok::RParen)?;
            return Ok(Predicate::Not(Box::new(inner)));
        }
        if self.peek() == Some(&Tok::LParen) {
            self.pos += 1;
            let inner = self.expr()?;
            self.expect(Tok::RParen)?;
            return Ok(inner);
        }
        self.path()
    }

    fn path(&mut self) -> Result<Predicate, String> {
        let name = match self.next() {
            Some(Tok::Ident(s)) => s,
            t => {
                return Err(format!(
                    "Invalid input {}, expected a field name, 'not' or '('",
                    describe(t.as_ref())
                ));
            }
        };
        if self.peek() == Some(&Tok::LParen) {
            self.pos += 1;
            self.prefix.push(name);
            let inner = self.expr();
            self.prefix.pop();
            let inner = inner?;
            self.expect(Tok::RParen)?;
            return Ok(inner);
        }
        let full = if self.prefix.is_empty() {
            name.clone()
        } else {
            format!("{}.{name}", self.prefix.join("."))
        };
        let field =
            find_field(self.fields, &full).ok_or_else(|| format!("Unknown field '{full}'."))?;
        match self.next() {
            Some(Tok::Op(op)) => {
                let lit = self.literal(field)?;
                Ok(Predicate::Cmp(field, op, lit))
            }
            Some(Tok::Ident(kw)) if kw.eq_ignore_ascii_case("in") => {
                Ok(Predicate::In(field, self.list(field)?, false))
            }
            Some(Tok::Ident(kw)) if kw.eq_ignore_ascii_case("not") && is_kw(self.peek(), "in") => {
                self.pos += 1;
                Ok(Predicate::In(field, self.list(field)?, true))
            }
            Some(Tok::Ident(kw)) if kw.eq_ignore_ascii_case("is") => {
                let negated = is_kw(self.peek(), "not");
                if negated {
                    self.pos += 1;
                }
                match self.next() {
                    Some(Tok::Ident(d)) if d.eq_ignore_ascii_case("defined") => {
                        Ok(Predicate::Defined(field, negated))
                    }
                    t => Err(format!(
                        "Invalid input {}, expected 'defined'",
                        describe(t.as_ref())
                    )),
                }
            }
            t => Err(format!(
                "Invalid input {}, expected an operator (=, !=, <>, >, >=, <, <=, in, not in, is defined)",
                describe(t.as_ref())
            )),
        }
    }

    fn list(&mut self, field: &FieldDef) -> Result<Vec<Lit>, String> {
        self.expect(Tok::LParen)?;
        let mut lits = vec![self.literal(field)?];
        while self.peek() == Some(&Tok::Comma) {
            self.pos += 1;
            lits.push(self.literal(field)?);
        }
        self.expect(Tok::RParen)?;
        Ok(lits)
    }

    fn literal(&mut self, field: &FieldDef) -> Result<Lit, String> {
        let tok = self.next();
        let mismatch = |t: Option<&Tok>| {
            format!(
                "Invalid input {} for field '{}': expected a {} literal.",
                describe(t),
                field.name,
                match field.ty {
                    FieldType::Str => "string",
                    FieldType::Num => "number",
                    FieldType::Bool => "boolean",
                    FieldType::DateTime => "datetime string",
                }
            )
        };
        match (field.ty, &tok) {
            (FieldType::Str, Some(Tok::Str(s))) => Ok(Lit::Str(s.clone())),
            (FieldType::Num, Some(Tok::Num(n))) => Ok(Lit::Num(*n)),
            (FieldType::Bool, Some(Tok::Ident(b))) if b == "true" || b == "false" => {
                Ok(Lit::Bool(b == "true"))
            }
            (FieldType::DateTime, Some(Tok::Str(s))) => {
                let t = parse_rfc3339(s).ok_or_else(|| {
                    format!(
                        "Invalid datetime '{s}' for field '{}': expected an RFC 3339 datetime.",
                        field.name
                    )
                })?;
                let canonical =
                    (t.nanosecond() % 1_000_000 == 0).then(|| crate::util::format_ms(t));
                Ok(Lit::Time(t, canonical))
            }
            _ => Err(mismatch(tok.as_ref())),
        }
    }
}

/// Parses and type-checks a predicate against a field table.
pub(crate) fn parse(input: &str, fields: &'static [FieldDef]) -> Result<Predicate, String> {
    let toks = tokenize(input)?;
    if toks.is_empty() {
        return Err("Empty predicate.".into());
    }
    let mut p = Parser {
        toks,
        pos: 0,
        fields,
        prefix: Vec::new(),
    };
    let pred = p.expr()?;
    if p.pos < p.toks.len() {
        return Err(format!(
            "Invalid input {}, expected 'and', 'or' or end of input",
            describe(p.peek())
        ));
    }
    Ok(pred)
}

/// `true` for `YYYY-MM-DDTHH:MM:SS.mmmZ`, which orders lexicographically like datetimes.
fn is_canonical(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 24 && b[10] == b'T' && b[19] == b'.' && b[23] == b'Z'
}

/// Compares two stored values of a field of type `ty` (used for sorting too).
pub(crate) fn compare_values(ty: FieldType, a: &Value, b: &Value) -> Ordering {
    match ty {
        FieldType::Str => a.as_str().cmp(&b.as_str()),
        FieldType::Num => a
            .as_f64()
            .partial_cmp(&b.as_f64())
            .unwrap_or(Ordering::Equal),
        FieldType::Bool => a.as_bool().cmp(&b.as_bool()),
        FieldType::DateTime => match (a.as_str(), b.as_str()) {
            (Some(x), Some(y)) if is_canonical(x) && is_canonical(y) => x.cmp(y),
            (Some(x), Some(y)) => parse_rfc3339(x).cmp(&parse_rfc3339(y)),
            (x, y) => x.cmp(&y),
        },
    }
}

fn compare_lit(v: &Value, lit: &Lit) -> Option<Ordering> {
    match lit {
        Lit::Str(s) => v.as_str().map(|x| x.cmp(s.as_str())),
        Lit::Num(n) => v.as_f64().and_then(|x| x.partial_cmp(n)),
        Lit::Bool(b) => v.as_bool().map(|x| x.cmp(b)),
        Lit::Time(t, canonical) => {
            let s = v.as_str()?;
            match canonical {
                Some(c) if is_canonical(s) => Some(s.cmp(c.as_str())),
                _ => parse_rfc3339(s).map(|x| x.cmp(t)),
            }
        }
    }
}

impl Predicate {
    /// Evaluates the predicate on a resource. Comparisons on a missing field are `false`.
    pub(crate) fn matches(&self, r: &Value) -> bool {
        match self {
            Predicate::And(ps) => ps.iter().all(|p| p.matches(r)),
            Predicate::Or(ps) => ps.iter().any(|p| p.matches(r)),
            Predicate::Not(p) => !p.matches(r),
            Predicate::Defined(f, negated) => field_values(r, f).is_empty() == *negated,
            Predicate::Cmp(f, op, lit) => field_values(r, f).into_iter().any(|v| {
                let Some(ord) = compare_lit(v, lit) else {
                    return false;
                };
                match op {
                    Op::Eq => ord.is_eq(),
                    Op::Ne => ord.is_ne(),
                    Op::Gt => ord.is_gt(),
                    Op::Ge => ord.is_ge(),
                    Op::Lt => ord.is_lt(),
                    Op::Le => ord.is_le(),
                }
            }),
            Predicate::In(f, lits, negated) => {
                let values = field_values(r, f);
                let found = values.iter().any(|v| {
                    lits.iter()
                        .any(|l| compare_lit(v, l).is_some_and(Ordering::is_eq))
                });
                !values.is_empty() && found != *negated
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn p(s: &str) -> Result<Predicate, String> {
        parse(s, PRODUCT_FIELDS)
    }

    #[test]
    fn sku_predicates_reach_the_master_variant_and_every_variant() {
        let product = json!({"masterData": {"current": {
            "masterVariant": {"sku": "M-1"},
            "variants": [{"sku": "V-1"}, {"sku": "V-2"}]}}});
        let q = |s: &str| p(s).unwrap().matches(&product);
        assert!(q(r#"masterVariant(sku = "M-1")"#));
        assert!(!q(r#"masterVariant(sku = "V-2")"#));
        assert!(q(r#"variants(sku = "V-2")"#));
        assert!(q(r#"masterVariant(sku = "X") or variants(sku = "V-1")"#));
        assert!(!q(r#"variants(sku = "X")"#));
    }

    #[test]
    fn compound_keyset_predicate() {
        let pr = p(r#"lastModifiedAt > "2026-01-01T00:00:00.000Z" or (lastModifiedAt = "2026-01-01T00:00:00Z" and id > "b")"#).unwrap();
        let r = |t: &str, id: &str| json!({"id": id, "lastModifiedAt": t});
        assert!(pr.matches(&r("2026-01-01T00:00:00.001Z", "a")));
        assert!(pr.matches(&r("2026-01-01T00:00:00.000Z", "c")));
        assert!(!pr.matches(&r("2026-01-01T00:00:00.000Z", "b")));
        assert!(!pr.matches(&r("2025-12-31T23:59:59.999Z", "z")));
    }

    #[test]
    fn nested_in_not_and_defined() {
        let pr = p(r#"masterData(published = true) and id in ("a", "b") and not(key is defined)"#)
            .unwrap();
        assert!(pr.matches(&json!({"id": "a", "masterData": {"published": true}})));
        assert!(!pr.matches(&json!({"id": "a", "key": "k", "masterData": {"published": true}})));
        assert!(!pr.matches(&json!({"id": "c", "masterData": {"published": true}})));
        assert!(p("version >= 2").unwrap().matches(&json!({"version": 3})));
    }

    #[test]
    fn cart_fields_include_buyer_identity_and_nested_store_key() {
        let pr = parse(
            r#"customerEmail = "a@example.org" and store(key = "eu") and customerId is not defined"#,
            CART_FIELDS,
        )
        .unwrap();
        assert!(pr.matches(
            &json!({"customerEmail": "a@example.org", "store": {"typeId": "store", "key": "eu"}})
        ));
        assert!(!pr.matches(&json!({"customerEmail": "a@example.org", "store": {"key": "us"}})));
        assert!(parse(r#"email = "x""#, CART_FIELDS).is_err());
        assert!(parse(r#"email = "x""#, CUSTOMER_FIELDS).is_ok());
    }

    #[test]
    fn rejects_unknown_fields_bad_types_and_garbage() {
        assert!(p("foo = \"x\"").is_err());
        assert!(p("id = 3").is_err());
        assert!(p("lastModifiedAt > \"yesterday\"").is_err());
        assert!(p("id = \"x\" and").is_err());
        assert!(p("(id = \"x\"").is_err());
        assert!(p("id == \"x\"").is_err());
        assert!(p("").is_err());
    }
}
