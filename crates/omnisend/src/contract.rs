//! Contract checking against Omnisend's official OpenAPI documents (feature `contract`).
//!
//! The specs live in `shared/specs/omnisend/` of the project (by default resolved as
//! `<this crate>/../../../shared/specs/omnisend`; override with the `OMNISEND_SPEC_DIR` environment
//! variable). A schema from `components.schemas` becomes a standalone JSON Schema document:
//!
//! * the named schema is the root and the (converted) `components` are inlined next to it, so
//!   local `#/components/schemas/X` references resolve;
//! * OpenAPI 3.0 `nullable: true` becomes `anyOf: [<schema>, {type: null}]`;
//! * in the default **strict** mode every object schema that lists `properties` and says nothing
//!   about `additionalProperties` gets `additionalProperties: false`, so a misspelt field (e.g.
//!   `categoryIds` instead of `categoryIDs`), which Omnisend would silently ignore, fails the
//!   check. [`lenient_validator_for`] skips that step.
//!
//! Every function returns `None` when the spec folder (or file, or schema) is absent, so callers
//! can skip the check with a note instead of failing on machines without the specs.

use std::path::PathBuf;

use jsonschema::Validator;
use serde_json::{Map, Value};

/// Environment variable overriding the spec folder.
pub const SPEC_DIR_ENV: &str = "OMNISEND_SPEC_DIR";

/// The folder holding the Omnisend OpenAPI files, if it exists.
pub fn spec_dir() -> Option<PathBuf> {
    let dir = std::env::var_os(SPEC_DIR_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/specs/omnisend")
        });
    dir.is_dir().then_some(dir)
}

/// Loads an OpenAPI document (YAML or JSON) from the spec folder as JSON.
pub fn load_spec(spec_file: &str) -> Option<Value> {
    let text = std::fs::read_to_string(spec_dir()?.join(spec_file)).ok()?;
    match serde_yaml::from_str::<Value>(&text) {
        Ok(doc) => Some(doc),
        Err(e) => panic!("{spec_file} is not valid YAML/JSON: {e}"),
    }
}

/// The standalone JSON Schema document for `components.schemas.<schema_name>` of `spec_file`
/// (strict or lenient, see the module docs), or `None` if the file or schema is missing.
pub fn schema_for(spec_file: &str, schema_name: &str, strict: bool) -> Option<Value> {
    let spec = load_spec(spec_file)?;
    let mut components = spec.get("components")?.clone();
    convert(&mut components, strict);
    let mut root = components.get("schemas")?.get(schema_name)?.clone();
    if let Value::Object(map) = &mut root {
        map.insert("components".into(), components);
    } else {
        return None;
    }
    Some(root)
}

/// A strict validator for `components.schemas.<schema_name>` of `spec_file` (e.g.
/// `validator_for("omnisend-products-api-openapi.yml", "Product")`); `None` when the spec
/// folder, file or schema is absent. Panics if the schema itself does not compile.
pub fn validator_for(spec_file: &str, schema_name: &str) -> Option<Validator> {
    compile(spec_file, schema_name, true)
}

/// Like [`validator_for`], but unknown properties are allowed (the spec's own semantics).
pub fn lenient_validator_for(spec_file: &str, schema_name: &str) -> Option<Validator> {
    compile(spec_file, schema_name, false)
}

/// All validation errors of `instance`, one line each (`<instance path>: <message>`); empty if
/// valid.
pub fn errors(validator: &Validator, instance: &Value) -> Vec<String> {
    validator
        .iter_errors(instance)
        .map(|e| format!("{}: {}", e.instance_path(), e))
        .collect()
}

fn compile(spec_file: &str, schema_name: &str, strict: bool) -> Option<Validator> {
    let schema = schema_for(spec_file, schema_name, strict)?;
    match jsonschema::validator_for(&schema) {
        Ok(v) => Some(v),
        Err(e) => panic!("schema {schema_name} of {spec_file} does not compile: {e}"),
    }
}

/// Rewrites OpenAPI schema dialect into JSON Schema, recursively.
fn convert(value: &mut Value, strict: bool) {
    match value {
        Value::Array(items) => items.iter_mut().for_each(|v| convert(v, strict)),
        Value::Object(map) => {
            for v in map.values_mut() {
                convert(v, strict);
            }
            if strict && map.contains_key("properties") && !map.contains_key("additionalProperties")
            {
                map.insert("additionalProperties".into(), Value::Bool(false));
            }
            if map.get("nullable") == Some(&Value::Bool(true)) {
                map.remove("nullable");
                let inner = Value::Object(std::mem::take(map));
                let mut wrapped = Map::new();
                wrapped.insert(
                    "anyOf".into(),
                    Value::Array(vec![inner, serde_json::json!({ "type": "null" })]),
                );
                *map = wrapped;
            }
        }
        _ => {}
    }
}
