//! Request-body validation following the Omnisend OpenAPI specs (version 2026-03-15).
//!
//! Error codes: `required` (missing or empty), `invalid_format` (wrong JSON type or malformed
//! value), `too_long` (string longer than `maxLength`, array longer than `maxItems`),
//! `invalid_value` (not in an enum, out of range, or referencing something that does not exist).

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::problem::FieldError;
use crate::util::parse_rfc3339;

/// Collects field errors for one request body.
#[derive(Debug, Default)]
pub(crate) struct Checker {
    pub errors: Vec<FieldError>,
}

fn join(prefix: &str, field: &str) -> String {
    if prefix.is_empty() {
        field.to_owned()
    } else {
        format!("{prefix}.{field}")
    }
}

impl Checker {
    fn push(&mut self, code: &'static str, field: String, message: String) {
        self.errors.push(FieldError::new(code, field, message));
    }

    /// A string field: `required`, at most `max` characters (and at least one if required).
    pub(crate) fn string<'a>(
        &mut self,
        obj: &'a Map<String, Value>,
        prefix: &str,
        name: &str,
        required: bool,
        max: usize,
    ) -> Option<&'a str> {
        let field = join(prefix, name);
        match obj.get(name) {
            None | Some(Value::Null) => {
                if required {
                    self.push("required", field, format!("{name} is required"));
                }
                None
            }
            Some(Value::String(s)) => {
                if required && s.is_empty() {
                    self.push("required", field, format!("{name} must not be empty"));
                    None
                } else if s.chars().count() > max {
                    self.push(
                        "too_long",
                        field,
                        format!("{name} must be at most {max} characters long"),
                    );
                    None
                } else {
                    Some(s)
                }
            }
            Some(_) => {
                self.push("invalid_format", field, format!("{name} must be a string"));
                None
            }
        }
    }

    /// A string field restricted to `allowed` values.
    pub(crate) fn one_of<'a>(
        &mut self,
        obj: &'a Map<String, Value>,
        prefix: &str,
        name: &str,
        required: bool,
        allowed: &[&str],
    ) -> Option<&'a str> {
        let s = self.string(obj, prefix, name, required, 1000)?;
        if allowed.contains(&s) {
            Some(s)
        } else {
            self.push(
                "invalid_value",
                join(prefix, name),
                format!("{name} must be one of: {}", allowed.join(", ")),
            );
            None
        }
    }

    /// A number field; `min` is an inclusive lower bound.
    pub(crate) fn number(
        &mut self,
        obj: &Map<String, Value>,
        prefix: &str,
        name: &str,
        required: bool,
        min: Option<f64>,
    ) -> Option<f64> {
        let field = join(prefix, name);
        match obj.get(name) {
            None | Some(Value::Null) => {
                if required {
                    self.push("required", field, format!("{name} is required"));
                }
                None
            }
            Some(Value::Number(n)) => {
                let v = n.as_f64()?;
                if min.is_some_and(|m| v < m) {
                    self.push(
                        "invalid_value",
                        field,
                        format!("{name} must not be negative"),
                    );
                    None
                } else {
                    Some(v)
                }
            }
            Some(_) => {
                self.push("invalid_format", field, format!("{name} must be a number"));
                None
            }
        }
    }

    /// A boolean field.
    pub(crate) fn boolean(&mut self, obj: &Map<String, Value>, prefix: &str, name: &str) {
        if let Some(v) = obj.get(name)
            && !v.is_boolean()
            && !v.is_null()
        {
            self.push(
                "invalid_format",
                join(prefix, name),
                format!("{name} must be a boolean"),
            );
        }
    }

    /// An array of strings with at most `max_items` items of at most `max_len` characters.
    pub(crate) fn string_array<'a>(
        &mut self,
        obj: &'a Map<String, Value>,
        prefix: &str,
        name: &str,
        max_items: usize,
        max_len: usize,
    ) -> Vec<&'a str> {
        let field = join(prefix, name);
        match obj.get(name) {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => {
                if items.len() > max_items {
                    self.push(
                        "too_long",
                        field,
                        format!("{name} must have at most {max_items} items"),
                    );
                    return Vec::new();
                }
                let mut out = Vec::new();
                for (i, item) in items.iter().enumerate() {
                    match item.as_str() {
                        Some(s) if s.chars().count() <= max_len => out.push(s),
                        Some(_) => self.push(
                            "too_long",
                            format!("{field}.{i}"),
                            format!("{name} items must be at most {max_len} characters long"),
                        ),
                        None => self.push(
                            "invalid_format",
                            format!("{field}.{i}"),
                            format!("{name} items must be strings"),
                        ),
                    }
                }
                out
            }
            Some(_) => {
                self.push(
                    "invalid_format",
                    field,
                    format!("{name} must be an array of strings"),
                );
                Vec::new()
            }
        }
    }

    /// An optional RFC 3339 timestamp string.
    pub(crate) fn timestamp(&mut self, obj: &Map<String, Value>, prefix: &str, name: &str) {
        if let Some(s) = self.string(obj, prefix, name, false, 100)
            && parse_rfc3339(s).is_none()
        {
            self.push(
                "invalid_format",
                join(prefix, name),
                format!("{name} must be an RFC 3339 timestamp"),
            );
        }
    }

    /// An optional object field.
    pub(crate) fn object<'a>(
        &mut self,
        obj: &'a Map<String, Value>,
        prefix: &str,
        name: &str,
        required: bool,
    ) -> Option<&'a Map<String, Value>> {
        let field = join(prefix, name);
        match obj.get(name) {
            None | Some(Value::Null) => {
                if required {
                    self.push("required", field, format!("{name} is required"));
                }
                None
            }
            Some(Value::Object(o)) => Some(o),
            Some(_) => {
                self.push("invalid_format", field, format!("{name} must be an object"));
                None
            }
        }
    }

    /// Records an arbitrary error.
    pub(crate) fn fail(
        &mut self,
        code: &'static str,
        field: impl Into<String>,
        message: impl Into<String>,
    ) {
        self.errors.push(FieldError::new(code, field, message));
    }

    /// `Ok(())` when nothing failed.
    pub(crate) fn finish(self) -> Result<(), Vec<FieldError>> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(self.errors)
        }
    }
}

/// Requires the body to be a JSON object.
pub(crate) fn as_object(body: &Value) -> Result<&Map<String, Value>, Vec<FieldError>> {
    body.as_object().ok_or_else(|| {
        vec![FieldError::new(
            "invalid_format",
            "",
            "request body must be a JSON object",
        )]
    })
}

const STATUSES: &[&str] = &["inStock", "outOfStock", "notAvailable"];

/// Validates a `Product`; every `categoryIDs` entry must exist in `categories`.
pub(crate) fn product(
    body: &Value,
    categories: &BTreeMap<String, Value>,
) -> Result<(), Vec<FieldError>> {
    let obj = as_object(body)?;
    let mut c = Checker::default();
    c.string(obj, "", "id", true, 100);
    c.string(obj, "", "title", true, 255);
    c.string(obj, "", "url", true, 1000);
    if let Some(cur) = c.string(obj, "", "currency", true, 3)
        && !(cur.len() == 3 && cur.chars().all(|ch| ch.is_ascii_alphabetic()))
    {
        c.fail(
            "invalid_format",
            "currency",
            "currency must be an ISO 4217 code",
        );
    }
    c.one_of(obj, "", "status", true, STATUSES);
    c.string(obj, "", "description", false, 1000);
    c.string(obj, "", "defaultImageUrl", false, 1000);
    c.string_array(obj, "", "images", 300, 1000);
    c.string(obj, "", "vendor", false, 100);
    c.string(obj, "", "type", false, 100);
    c.string_array(obj, "", "tags", 100, 1000);
    c.string(obj, "", "createdAt", false, 100);
    c.string(obj, "", "updatedAt", false, 100);
    for (i, id) in c
        .string_array(obj, "", "categoryIDs", 100, 100)
        .into_iter()
        .enumerate()
    {
        if !categories.contains_key(id) {
            c.fail(
                "invalid_value",
                format!("categoryIDs.{i}"),
                format!("category '{id}' does not exist; create it first"),
            );
        }
    }
    match obj.get("variants") {
        None | Some(Value::Null) => {}
        Some(Value::Array(vs)) if vs.is_empty() => c.fail(
            "invalid_value",
            "variants",
            "variants must have at least 1 item",
        ),
        Some(Value::Array(vs)) if vs.len() > 500 => c.fail(
            "too_long",
            "variants",
            "variants must have at most 500 items",
        ),
        Some(Value::Array(vs)) => {
            for (i, v) in vs.iter().enumerate() {
                let prefix = format!("variants.{i}");
                let Some(v) = v.as_object() else {
                    c.fail("invalid_format", prefix, "variant must be an object");
                    continue;
                };
                c.string(v, &prefix, "id", true, 100);
                c.string(v, &prefix, "title", true, 255);
                c.string(v, &prefix, "url", true, 1000);
                c.number(v, &prefix, "price", true, Some(0.0));
                c.number(v, &prefix, "strikeThroughPrice", false, Some(0.0));
                c.string(v, &prefix, "sku", false, 255);
                c.one_of(v, &prefix, "status", false, STATUSES);
                c.string(v, &prefix, "description", false, 1000);
                c.string(v, &prefix, "defaultImageUrl", false, 1000);
                c.string_array(v, &prefix, "images", 300, 1000);
            }
        }
        Some(_) => c.fail("invalid_format", "variants", "variants must be an array"),
    }
    c.finish()
}

/// Validates a category create body (`categoryID` 1–100 chars, `title` ≤ 255).
pub(crate) fn category_create(body: &Value) -> Result<(), Vec<FieldError>> {
    let obj = as_object(body)?;
    let mut c = Checker::default();
    c.string(obj, "", "categoryID", true, 100);
    c.string(obj, "", "title", true, 255);
    c.finish()
}

/// Validates a category update body (`title` required, ≤ 255).
pub(crate) fn category_update(body: &Value) -> Result<(), Vec<FieldError>> {
    let obj = as_object(body)?;
    let mut c = Checker::default();
    c.string(obj, "", "title", true, 255);
    c.finish()
}

fn looks_like_email(s: &str) -> bool {
    let mut parts = s.split('@');
    matches!((parts.next(), parts.next(), parts.next()), (Some(l), Some(d), None)
        if !l.is_empty() && d.contains('.') && !d.starts_with('.') && !d.ends_with('.'))
        && !s.chars().any(char::is_whitespace)
}

fn looks_like_e164(s: &str) -> bool {
    let digits = s.strip_prefix('+').unwrap_or("");
    (7..=15).contains(&digits.len())
        && digits.chars().all(|c| c.is_ascii_digit())
        && !digits.starts_with('0')
}

const CHANNEL_STATUSES: &[&str] = &["subscribed", "nonSubscribed", "unsubscribed"];

/// Validates a `ContactRequest` (at least one identifier is required).
pub(crate) fn contact(body: &Value) -> Result<(), Vec<FieldError>> {
    let obj = as_object(body)?;
    let mut c = Checker::default();
    match obj.get("identifiers") {
        Some(Value::Array(ids)) if !ids.is_empty() => {
            for (i, ident) in ids.iter().enumerate() {
                let prefix = format!("identifiers.{i}");
                let Some(ident) = ident.as_object() else {
                    c.fail("invalid_format", prefix, "identifier must be an object");
                    continue;
                };
                let ty = c.one_of(ident, &prefix, "type", true, &["email", "phone"]);
                if let Some(id) = c.string(ident, &prefix, "id", true, 320) {
                    match ty {
                        Some("email") if !looks_like_email(id) => c.fail(
                            "invalid_format",
                            format!("{prefix}.id"),
                            "must be a valid email address",
                        ),
                        Some("phone") if !looks_like_e164(id) => c.fail(
                            "invalid_format",
                            format!("{prefix}.id"),
                            "must be a phone number in E.164 format",
                        ),
                        _ => {}
                    }
                }
                if let Some(channels) = c.object(ident, &prefix, "channels", false) {
                    for (name, ch) in channels {
                        let cp = format!("{prefix}.channels.{name}");
                        if name != "email" && name != "sms" {
                            c.fail("invalid_value", cp.clone(), "channel must be email or sms");
                        }
                        let Some(ch) = ch.as_object() else {
                            c.fail("invalid_format", cp, "channel must be an object");
                            continue;
                        };
                        c.one_of(ch, &cp, "status", true, CHANNEL_STATUSES);
                        c.timestamp(ch, &cp, "statusChangedAt");
                    }
                }
                if let Some(consent) = c.object(ident, &prefix, "consent", false) {
                    let cp = format!("{prefix}.consent");
                    c.timestamp(consent, &cp, "createdAt");
                    c.string(consent, &cp, "source", false, 100);
                    c.string(consent, &cp, "ip", false, 100);
                    c.string(consent, &cp, "userAgent", false, 1000);
                }
                c.boolean(ident, &prefix, "sendWelcomeMessage");
            }
        }
        Some(Value::Array(_)) | None | Some(Value::Null) => c.fail(
            "required",
            "identifiers",
            "at least one identifier is required",
        ),
        Some(_) => c.fail(
            "invalid_format",
            "identifiers",
            "identifiers must be an array",
        ),
    }
    c.string(obj, "", "firstName", false, 50);
    c.string(obj, "", "lastName", false, 50);
    c.string(obj, "", "address", false, 500);
    c.string(obj, "", "city", false, 100);
    c.string(obj, "", "state", false, 100);
    c.string(obj, "", "postalCode", false, 20);
    c.string(obj, "", "country", false, 100);
    c.string(obj, "", "countryCode", false, 3);
    c.one_of(obj, "", "gender", false, &["m", "f"]);
    if let Some(b) = c.string(obj, "", "birthdate", false, 10) {
        let ok = b.len() == 10
            && b.bytes().enumerate().all(|(i, ch)| match i {
                4 | 7 => ch == b'-',
                _ => ch.is_ascii_digit(),
            });
        if !ok {
            c.fail(
                "invalid_format",
                "birthdate",
                "birthdate must be YYYY-MM-DD",
            );
        }
    }
    c.string_array(obj, "", "tags", 100, 1000);
    c.object(obj, "", "customProperties", false);
    c.finish()
}

fn event_time_ok(s: &str) -> bool {
    parse_rfc3339(s).is_some() || parse_rfc3339(&s.replacen(' ', "T", 1)).is_some()
}

/// Validates an `EventRequest`: `eventName` and `origin` are required, and the `contact` needs at
/// least one of `id`, `email`, `phone`.
pub(crate) fn event(body: &Value) -> Result<(), Vec<FieldError>> {
    let obj = as_object(body)?;
    let mut c = Checker::default();
    c.string(obj, "", "eventName", true, 255);
    c.string(obj, "", "origin", true, 255);
    c.string(obj, "", "eventVersion", false, 50);
    if let Some(id) = c.string(obj, "", "eventID", false, 100)
        && uuid::Uuid::parse_str(id).is_err()
    {
        c.fail("invalid_format", "eventID", "eventID must be a UUID");
    }
    if let Some(t) = c.string(obj, "", "eventTime", false, 100)
        && !event_time_ok(t)
    {
        c.fail(
            "invalid_format",
            "eventTime",
            "eventTime must be an ISO 8601 timestamp",
        );
    }
    if let Some(contact) = c.object(obj, "", "contact", true) {
        let id = c.string(contact, "contact", "id", false, 100);
        let email = c.string(contact, "contact", "email", false, 320);
        let phone = c.string(contact, "contact", "phone", false, 15);
        if let Some(e) = email
            && !looks_like_email(e)
        {
            c.fail(
                "invalid_format",
                "contact.email",
                "must be a valid email address",
            );
        }
        if id.is_none() && email.is_none() && phone.is_none() {
            c.fail(
                "required",
                "contact",
                "contact must have at least one of id, email or phone",
            );
        }
        c.string(contact, "contact", "firstName", false, 50);
        c.string(contact, "contact", "lastName", false, 50);
        c.string_array(contact, "contact", "tags", 100, 1000);
    }
    c.object(obj, "", "properties", false);
    c.finish()
}
