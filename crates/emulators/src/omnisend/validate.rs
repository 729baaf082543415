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

/// Omnisend's recommended events sent with `eventVersion "v2"`.
pub(crate) const V2_EVENTS: &[&str] = &[
    "placed order",
    "paid for order",
    "order fulfilled",
    "order canceled",
    "order refunded",
    "ordered product",
];

/// Omnisend's recommended events sent with an empty (or no) `eventVersion`.
pub(crate) const UNVERSIONED_EVENTS: &[&str] = &["added product to cart", "started checkout"];

fn is_currency_code(s: &str) -> bool {
    s.len() == 3 && s.bytes().all(|b| b.is_ascii_uppercase())
}

/// Validates an `EventRequest`:
///
/// * `eventName` and `origin` are required non-empty strings;
/// * the `contact` needs at least one of `id`, `email`, `phone`;
/// * the recommended events `placed order`, `paid for order`, `order fulfilled`, `order
///   canceled`, `order refunded` and `ordered product` need `eventVersion "v2"`; `added product
///   to cart` and `started checkout` need an empty or no `eventVersion`; any other name
///   (`viewed product`, custom events) takes any;
/// * `eventID`, when present, is a UUID; `eventTime`, when present, is RFC 3339 (or the
///   documented `YYYY-MM-DD HH:MM:SS±HH:MM` form);
/// * `placed order` needs `properties.totalPrice` (a number) and `properties.currency` (three
///   upper-case letters), which Omnisend's revenue reporting requires.
pub(crate) fn event(body: &Value) -> Result<(), Vec<FieldError>> {
    let obj = as_object(body)?;
    let mut c = Checker::default();
    let name = c.string(obj, "", "eventName", true, 255);
    c.string(obj, "", "origin", true, 255);
    let version = c.string(obj, "", "eventVersion", false, 50);
    match name {
        Some(n) if V2_EVENTS.contains(&n) && version != Some("v2") => c.fail(
            "invalid_value",
            "eventVersion",
            format!("eventVersion must be \"v2\" for the recommended event '{n}'"),
        ),
        Some(n) if UNVERSIONED_EVENTS.contains(&n) && !version.unwrap_or("").is_empty() => c.fail(
            "invalid_value",
            "eventVersion",
            format!("eventVersion must be empty for the recommended event '{n}'"),
        ),
        _ => {}
    }
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
    let properties = c.object(obj, "", "properties", name == Some("placed order"));
    if name == Some("placed order")
        && let Some(props) = properties
    {
        c.number(props, "properties", "totalPrice", true, Some(0.0));
        match props.get("currency") {
            Some(Value::String(cur)) if is_currency_code(cur) => {}
            None | Some(Value::Null) => c.fail(
                "required",
                "properties.currency",
                "currency is required for 'placed order'",
            ),
            Some(_) => c.fail(
                "invalid_format",
                "properties.currency",
                "currency must be an upper-case ISO 4217 code",
            ),
        }
    }
    c.finish()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn placed_order() -> Value {
        json!({
            "eventName": "placed order", "eventVersion": "v2", "origin": "api",
            "eventID": "5d2f1a8e-8c1b-4f5e-9a57-2b0c1f3e4d5a",
            "eventTime": "2026-01-05T12:00:00Z",
            "contact": {"email": "jane@example.com"},
            "properties": {"orderID": "o1", "totalPrice": 49.98, "currency": "EUR"},
        })
    }

    /// The `(code, field)` pairs of the errors `body` gets.
    fn errors(body: &Value) -> Vec<(&'static str, String)> {
        event(body)
            .err()
            .unwrap_or_default()
            .into_iter()
            .map(|e| (e.code, e.field))
            .collect()
    }

    fn with(mut body: Value, pointer: &str, v: Value) -> Value {
        *body.pointer_mut(pointer).unwrap() = v;
        body
    }

    fn without(mut body: Value, key: &str) -> Value {
        body.as_object_mut().unwrap().remove(key);
        body
    }

    #[test]
    fn a_complete_placed_order_event_is_valid() {
        assert_eq!(errors(&placed_order()), []);
    }

    #[test]
    fn event_name_and_origin_must_be_non_empty_strings() {
        assert_eq!(
            errors(&without(placed_order(), "origin")),
            [("required", "origin".into())]
        );
        assert_eq!(
            errors(&with(placed_order(), "/origin", json!(""))),
            [("required", "origin".into())]
        );
        assert!(
            errors(&with(placed_order(), "/eventName", json!(7)))
                .contains(&("invalid_format", "eventName".into()))
        );
    }

    #[test]
    fn contact_needs_an_id_an_email_or_a_phone() {
        let body = with(placed_order(), "/contact", json!({"firstName": "Jane"}));
        assert_eq!(errors(&body), [("required", "contact".into())]);
        for contact in [
            json!({"id": "c1"}),
            json!({"phone": "+37060000000"}),
            json!({"email": "a@b.co"}),
        ] {
            assert_eq!(errors(&with(placed_order(), "/contact", contact)), []);
        }
        assert_eq!(
            errors(&without(placed_order(), "contact")),
            [("required", "contact".into())]
        );
    }

    #[test]
    fn order_events_need_event_version_v2() {
        for name in V2_EVENTS {
            let mut body = json!({"eventName": name, "origin": "api",
                "contact": {"email": "a@b.co"},
                "properties": {"totalPrice": 1, "currency": "EUR"}});
            assert_eq!(
                errors(&body),
                [("invalid_value", "eventVersion".into())],
                "{name}"
            );
            body["eventVersion"] = json!("v1");
            assert_eq!(errors(&body), [("invalid_value", "eventVersion".into())]);
            body["eventVersion"] = json!("v2");
            assert_eq!(errors(&body), [], "{name}");
        }
    }

    #[test]
    fn cart_events_need_an_empty_or_absent_event_version() {
        for name in UNVERSIONED_EVENTS {
            let mut body =
                json!({"eventName": name, "origin": "api", "contact": {"email": "a@b.co"}});
            assert_eq!(errors(&body), [], "{name}");
            body["eventVersion"] = json!("");
            assert_eq!(errors(&body), [], "{name}");
            body["eventVersion"] = json!("v2");
            assert_eq!(errors(&body), [("invalid_value", "eventVersion".into())]);
        }
    }

    #[test]
    fn viewed_product_and_custom_events_take_any_event_version() {
        for (name, version) in [
            ("viewed product", "v4"),
            ("viewed product", ""),
            ("custom thing", "v9"),
        ] {
            let body = json!({"eventName": name, "eventVersion": version, "origin": "api",
                "contact": {"email": "a@b.co"}});
            assert_eq!(errors(&body), [], "{name} {version}");
        }
    }

    #[test]
    fn event_id_must_be_a_uuid_and_event_time_rfc_3339() {
        assert_eq!(
            errors(&with(placed_order(), "/eventID", json!("order-1"))),
            [("invalid_format", "eventID".into())]
        );
        assert_eq!(
            errors(&with(placed_order(), "/eventTime", json!("yesterday"))),
            [("invalid_format", "eventTime".into())]
        );
        assert_eq!(
            errors(&with(
                placed_order(),
                "/eventTime",
                json!("2026-01-05 12:00:00+02:00")
            )),
            []
        );
    }

    #[test]
    fn placed_order_needs_a_numeric_total_price_and_an_upper_case_currency() {
        assert_eq!(
            errors(&with(
                placed_order(),
                "/properties/totalPrice",
                json!("49.98")
            )),
            [("invalid_format", "properties.totalPrice".into())]
        );
        assert_eq!(
            errors(&with(
                placed_order(),
                "/properties",
                json!({"orderID": "o1"})
            )),
            [
                ("required", "properties.totalPrice".into()),
                ("required", "properties.currency".into())
            ]
        );
        for bad in [json!("eur"), json!("EURO"), json!(978)] {
            assert_eq!(
                errors(&with(placed_order(), "/properties/currency", bad)),
                [("invalid_format", "properties.currency".into())]
            );
        }
        assert_eq!(
            errors(&without(placed_order(), "properties")),
            [("required", "properties".into())]
        );
        // Other order events do not need them.
        let paid = with(placed_order(), "/eventName", json!("paid for order"));
        assert_eq!(errors(&with(paid, "/properties", json!({}))), []);
    }
}
