//! Typed reads of JSON object fields that name the field's full path when they fail.

use serde_json::{Map, Value};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::IngestError;

/// A JSON object and its path from the root of the received body (`""` for the root).
pub(crate) struct Obj<'a> {
    map: &'a Map<String, Value>,
    path: String,
}

/// `path.name`, or `name` at the root.
pub(crate) fn join(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_owned()
    } else {
        format!("{path}.{name}")
    }
}

/// The JSON type of a value, for "expected X, got Y" reasons.
fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// "`path`: expected an object, got …".
pub(crate) fn not_an_object(path: &str, got: &Value) -> IngestError {
    IngestError::field_error(
        path.to_owned(),
        format!("expected an object, got {}", kind(got)),
    )
}

fn expected(path: &str, name: &str, what: &str, got: &Value) -> IngestError {
    IngestError::field_error(
        join(path, name),
        format!("expected {what}, got {}", kind(got)),
    )
}

impl<'a> Obj<'a> {
    /// `value` as an object at `path` (`""` is reported as `body`).
    pub(crate) fn new(value: &'a Value, path: String) -> Result<Self, IngestError> {
        match value {
            Value::Object(map) => Ok(Self { map, path }),
            other => Err(IngestError::field_error(
                if path.is_empty() {
                    "body".to_owned()
                } else {
                    path
                },
                format!("expected an object, got {}", kind(other)),
            )),
        }
    }

    /// An object already unwrapped from its `Value`.
    pub(crate) fn from_map(map: &'a Map<String, Value>, path: String) -> Self {
        Self { map, path }
    }

    pub(crate) fn path(&self) -> &str {
        &self.path
    }

    pub(crate) fn map(&self) -> &'a Map<String, Value> {
        self.map
    }

    /// Present and not `null`.
    pub(crate) fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    fn get(&self, name: &str) -> Option<&'a Value> {
        self.map.get(name).filter(|v| !v.is_null())
    }

    fn missing(&self, name: &str) -> IngestError {
        IngestError::field_error(join(&self.path, name), "missing")
    }

    /// A required, non-empty string.
    pub(crate) fn str(&self, name: &str) -> Result<&'a str, IngestError> {
        self.opt_str(name)?.ok_or_else(|| self.missing(name))
    }

    /// An optional string; `null` counts as absent; an empty string is refused.
    pub(crate) fn opt_str(&self, name: &str) -> Result<Option<&'a str>, IngestError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::String(s)) if s.is_empty() => {
                Err(IngestError::field_error(join(&self.path, name), "is empty"))
            }
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(expected(&self.path, name, "a string", other)),
        }
    }

    /// A required integer.
    pub(crate) fn i64(&self, name: &str) -> Result<i64, IngestError> {
        self.opt_i64(name)?.ok_or_else(|| self.missing(name))
    }

    /// An optional integer; `null` counts as absent.
    pub(crate) fn opt_i64(&self, name: &str) -> Result<Option<i64>, IngestError> {
        match self.get(name) {
            None => Ok(None),
            Some(v @ Value::Number(n)) => n
                .as_i64()
                .map(Some)
                .ok_or_else(|| expected(&self.path, name, "an integer", v)),
            Some(other) => Err(expected(&self.path, name, "an integer", other)),
        }
    }

    /// An optional boolean; `null` counts as absent.
    pub(crate) fn opt_bool(&self, name: &str) -> Result<Option<bool>, IngestError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(other) => Err(expected(&self.path, name, "a boolean", other)),
        }
    }

    /// An optional RFC 3339 date-time; `null` counts as absent.
    pub(crate) fn opt_time(&self, name: &str) -> Result<Option<OffsetDateTime>, IngestError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => OffsetDateTime::parse(s, &Rfc3339).map(Some).map_err(|_| {
                IngestError::field_error(join(&self.path, name), "expected an RFC 3339 date-time")
            }),
            Some(other) => Err(expected(
                &self.path,
                name,
                "an RFC 3339 date-time string",
                other,
            )),
        }
    }

    /// An optional object; `null` counts as absent.
    pub(crate) fn opt_obj(&self, name: &str) -> Result<Option<Obj<'a>>, IngestError> {
        match self.get(name) {
            None => Ok(None),
            Some(v @ Value::Object(_)) => Obj::new(v, join(&self.path, name)).map(Some),
            Some(other) => Err(expected(&self.path, name, "an object", other)),
        }
    }

    /// A required object.
    pub(crate) fn obj(&self, name: &str) -> Result<Obj<'a>, IngestError> {
        self.opt_obj(name)?.ok_or_else(|| self.missing(name))
    }
}
