//! The Subscriptions endpoint of the commercetools emulator (`/{projectKey}/subscriptions`).
//!
//! * `POST /subscriptions` creates: `destination` is required and must be of a known type with
//!   its required fields (`GoogleCloudPubSub`, `SQS`, `SNS`, `EventBridge`, `AzureServiceBus`,
//!   `EventGrid`); at least one of `messages`/`changes` must be non-empty; `key` must match
//!   `^[A-Za-z0-9_-]+$` (2–256 characters) and be unused (else 400 `DuplicateField`); `format`
//!   defaults to `Platform`, `CloudEvents` needs `cloudEventsVersion: "1.0"`, and Event Grid
//!   accepts only CloudEvents. Answers 201 with the Subscription (`version` 1, `status`
//!   `Healthy`).
//! * `GET /subscriptions` (the shared query machinery: `where`, `sort`, `limit`, `offset`) and
//!   `GET /subscriptions/{id}`, `/key={key}`.
//! * `POST /subscriptions/{id}` or `/key={key}` with `{version, actions}`: a different current
//!   version answers 409 `ConcurrentModification` (with `currentVersion`); the actions
//!   `changeDestination`, `setMessages`, `setChanges` and `setKey` apply in order, and the
//!   result must still subscribe to something. Any other action (there is none for the format)
//!   is a 400 `InvalidInput`. The version grows by one per request.
//! * `DELETE /subscriptions/{id}` or `/key={key}` with `?version=`: 400 without it, 409 on a
//!   mismatch, 404 for an unknown Subscription; answers the deleted Subscription.
//!
//! Every endpoint needs the scope `manage_subscriptions:{projectKey}` (or
//! `manage_project:{projectKey}`) in the token; otherwise 403 `insufficient_scope`.
//!
//! Like commercetools, responses hide secrets partly: `accessSecret` (SQS, SNS), Event Grid's
//! `accessKey` and the `SharedAccessKey` of a Service Bus connection string show their first two
//! characters followed by `****`. [`crate::CtEmulator::subscriptions`] gives tests what was
//! stored, unmasked. The test notification commercetools sends to a new destination is not
//! emulated (there is no destination to send it to).

use serde_json::{Map, Value, json};

use super::CtState;

/// Why a request was refused: status, error code, message and extra fields of the error
/// object.
#[derive(Debug)]
pub(crate) struct Refusal {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
    pub extra: Map<String, Value>,
}

impl Refusal {
    fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            extra: Map::new(),
        }
    }

    /// 400 `InvalidJsonInput` with a `detailedErrorMessage`, as commercetools answers a body
    /// that does not have the draft's shape.
    fn json_input(detail: impl Into<String>) -> Self {
        let mut r = Self::new(
            400,
            "InvalidJsonInput",
            "Request body does not contain valid JSON.",
        );
        r.extra
            .insert("detailedErrorMessage".into(), json!(detail.into()));
        r
    }

    fn invalid(message: impl Into<String>) -> Self {
        Self::new(400, "InvalidInput", message)
    }

    fn not_found(what: &str) -> Self {
        Self::new(
            404,
            "ResourceNotFound",
            format!("The Resource with {what} was not found."),
        )
    }
}

fn str_field<'a>(obj: &'a Map<String, Value>, path: &str, name: &str) -> Result<&'a str, Refusal> {
    match obj.get(name) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s),
        Some(Value::String(_)) => Err(Refusal::json_input(format!(
            "{path}.{name}: Value must not be empty"
        ))),
        Some(_) => Err(Refusal::json_input(format!(
            "{path}.{name}: JSON string expected"
        ))),
        None => Err(Refusal::json_input(format!(
            "{path}.{name}: Missing required value"
        ))),
    }
}

fn check_aws_auth(d: &Map<String, Value>) -> Result<(), Refusal> {
    let mode = match d.get("authenticationMode") {
        None | Some(Value::Null) => "Credentials",
        Some(Value::String(m)) if m == "IAM" || m == "Credentials" => m.as_str(),
        Some(other) => {
            return Err(Refusal::json_input(format!(
                "destination.authenticationMode: Unknown value {other}, expected IAM or Credentials"
            )));
        }
    };
    if mode == "Credentials" {
        str_field(d, "destination", "accessKey")?;
        str_field(d, "destination", "accessSecret")?;
    }
    Ok(())
}

/// Checks a destination: an object of a known `type` with that type's required fields.
fn check_destination(v: Option<&Value>) -> Result<(), Refusal> {
    let Some(v) = v else {
        return Err(Refusal::json_input("destination: Missing required value"));
    };
    let Some(d) = v.as_object() else {
        return Err(Refusal::json_input("destination: JSON object expected"));
    };
    let ty = str_field(d, "destination", "type")?;
    let required: &[&str] = match ty {
        "GoogleCloudPubSub" => &["projectId", "topic"],
        "SQS" => &["queueUrl", "region"],
        "SNS" => &["topicArn"],
        "EventBridge" => &["region", "accountId"],
        "AzureServiceBus" => &["connectionString"],
        "EventGrid" => &["uri", "accessKey"],
        other => {
            return Err(Refusal::json_input(format!(
                "destination.type: Unknown destination type '{other}'"
            )));
        }
    };
    for field in required {
        str_field(d, "destination", field)?;
    }
    if matches!(ty, "SQS" | "SNS") {
        check_aws_auth(d)?;
    }
    Ok(())
}

/// `messages` or `changes` as stored: an array of objects with a string `resourceTypeId`
/// (messages: `types`, an array of strings, defaulting to `[]`).
fn normalise_list(v: Option<&Value>, name: &str, messages: bool) -> Result<Value, Refusal> {
    let items = match v {
        None | Some(Value::Null) => return Ok(json!([])),
        Some(Value::Array(items)) => items,
        Some(_) => return Err(Refusal::json_input(format!("{name}: JSON array expected"))),
    };
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let path = format!("{name}[{i}]");
        let Some(obj) = item.as_object() else {
            return Err(Refusal::json_input(format!("{path}: JSON object expected")));
        };
        let rt = str_field(obj, &path, "resourceTypeId")?;
        if messages {
            let types = match obj.get("types") {
                None | Some(Value::Null) => Vec::new(),
                Some(Value::Array(ts)) if ts.iter().all(Value::is_string) => ts.clone(),
                Some(_) => {
                    return Err(Refusal::json_input(format!(
                        "{path}.types: JSON array of strings expected"
                    )));
                }
            };
            out.push(json!({"resourceTypeId": rt, "types": types}));
        } else {
            out.push(json!({"resourceTypeId": rt}));
        }
    }
    Ok(Value::Array(out))
}

fn check_format(v: Option<&Value>) -> Result<Value, Refusal> {
    match v {
        None | Some(Value::Null) => Ok(json!({"type": "Platform"})),
        Some(f) => match f.get("type").and_then(Value::as_str) {
            Some("Platform") => Ok(json!({"type": "Platform"})),
            Some("CloudEvents") => match f.get("cloudEventsVersion").and_then(Value::as_str) {
                Some("1.0") => Ok(json!({"type": "CloudEvents", "cloudEventsVersion": "1.0"})),
                _ => Err(Refusal::json_input(
                    "format.cloudEventsVersion: Value must be \"1.0\"",
                )),
            },
            _ => Err(Refusal::json_input(format!(
                "format.type: Unknown format {}",
                f.get("type").unwrap_or(&Value::Null)
            ))),
        },
    }
}

fn check_key(v: Option<&Value>) -> Result<Option<String>, Refusal> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(k))
            if (2..=256).contains(&k.len())
                && k.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') =>
        {
            Ok(Some(k.clone()))
        }
        Some(other) => Err(Refusal::json_input(format!(
            "key: {other} does not match ^[A-Za-z0-9_-]+$ with 2 to 256 characters"
        ))),
    }
}

fn duplicate_key(key: &str) -> Refusal {
    let mut r = Refusal::new(
        400,
        "DuplicateField",
        format!("A duplicate value '\"{key}\"' exists for field 'key'."),
    );
    r.extra.insert("field".into(), json!("key"));
    r.extra.insert("duplicateValue".into(), json!(key));
    r
}

/// The whole-resource checks that hold after a create or update.
fn check_consistency(sub: &Value) -> Result<(), Refusal> {
    let empty = |k: &str| sub[k].as_array().is_none_or(Vec::is_empty);
    if empty("messages") && empty("changes") {
        return Err(Refusal::invalid(
            "Either messages or changes must be set (and not empty).",
        ));
    }
    if sub["destination"]["type"] == "EventGrid" && sub["format"]["type"] != "CloudEvents" {
        return Err(Refusal::invalid(
            "Azure Event Grid destinations only support the CloudEvents format.",
        ));
    }
    Ok(())
}

impl CtState {
    fn key_in_use(&self, key: &str, except_id: Option<&str>) -> bool {
        self.subscriptions
            .values()
            .any(|s| s["key"].as_str() == Some(key) && s["id"].as_str() != except_id)
    }

    /// The id of the Subscription `segment` names (`{id}` or `key={key}`).
    fn subscription_id(&self, segment: &str) -> Result<String, Refusal> {
        match segment.strip_prefix("key=") {
            Some(key) => self
                .subscriptions
                .values()
                .find(|s| s["key"].as_str() == Some(key))
                .and_then(|s| s["id"].as_str())
                .map(str::to_owned)
                .ok_or_else(|| Refusal::not_found(&format!("key '{key}'"))),
            None if self.subscriptions.contains_key(segment) => Ok(segment.to_owned()),
            None => Err(Refusal::not_found(&format!("ID '{segment}'"))),
        }
    }

    /// `POST /subscriptions`: the created Subscription, as stored.
    pub(crate) fn create_subscription(&mut self, body: &Value) -> Result<Value, Refusal> {
        let Some(draft) = body.as_object() else {
            return Err(Refusal::json_input(
                "SubscriptionDraft: JSON object expected",
            ));
        };
        check_destination(draft.get("destination"))?;
        let key = check_key(draft.get("key"))?;
        let messages = normalise_list(draft.get("messages"), "messages", true)?;
        let changes = normalise_list(draft.get("changes"), "changes", false)?;
        let format = check_format(draft.get("format"))?;
        if let Some(k) = &key
            && self.key_in_use(k, None)
        {
            return Err(duplicate_key(k));
        }
        let id = uuid::Uuid::new_v4().to_string();
        let stamp = self.next_stamp(None);
        let by = json!({"clientId": self.client_id, "isPlatformClient": false});
        let mut sub = json!({
            "id": id,
            "version": 1,
            "destination": draft["destination"],
            "messages": messages,
            "changes": changes,
            "events": [],
            "format": format,
            "status": "Healthy",
            "createdAt": stamp,
            "lastModifiedAt": stamp,
            "createdBy": by,
            "lastModifiedBy": by,
        });
        if let Some(k) = key {
            sub["key"] = json!(k);
        }
        check_consistency(&sub)?;
        self.subscriptions.insert(id, sub.clone());
        Ok(sub)
    }

    /// `POST /subscriptions/{id}` or `/key={key}` with `{version, actions}`: the updated
    /// Subscription, as stored.
    pub(crate) fn update_subscription(
        &mut self,
        segment: &str,
        body: &Value,
    ) -> Result<Value, Refusal> {
        let id = self.subscription_id(segment)?;
        let Some(version) = body.get("version").and_then(Value::as_i64) else {
            return Err(Refusal::json_input("version: Missing required value"));
        };
        let Some(actions) = body.get("actions").and_then(Value::as_array) else {
            return Err(Refusal::json_input("actions: Missing required value"));
        };
        let current = self.subscriptions[&id].clone();
        check_version(&current, version)?;
        let mut next = current;
        for (i, action) in actions.iter().enumerate() {
            match action.get("action").and_then(Value::as_str) {
                Some("changeDestination") => {
                    check_destination(action.get("destination"))?;
                    next["destination"] = action["destination"].clone();
                }
                Some("setMessages") => {
                    next["messages"] = normalise_list(action.get("messages"), "messages", true)?;
                }
                Some("setChanges") => {
                    next["changes"] = normalise_list(action.get("changes"), "changes", false)?;
                }
                Some("setKey") => match check_key(action.get("key"))? {
                    Some(k) if self.key_in_use(&k, Some(&id)) => return Err(duplicate_key(&k)),
                    Some(k) => next["key"] = json!(k),
                    None => {
                        if let Some(obj) = next.as_object_mut() {
                            obj.remove("key");
                        }
                    }
                },
                other => {
                    return Err(Refusal::invalid(format!(
                        "actions[{i}]: unknown update action {} for a Subscription",
                        other.map_or("(none)".to_owned(), |a| format!("'{a}'"))
                    )));
                }
            }
        }
        check_consistency(&next)?;
        next["version"] = json!(version + 1);
        let stamp = self.next_stamp(next.get("lastModifiedAt"));
        next["lastModifiedAt"] = json!(stamp);
        self.subscriptions.insert(id, next.clone());
        Ok(next)
    }

    /// `DELETE /subscriptions/{id}` or `/key={key}` with `version`: the deleted Subscription.
    pub(crate) fn delete_subscription(
        &mut self,
        segment: &str,
        version: Option<&str>,
    ) -> Result<Value, Refusal> {
        let id = self.subscription_id(segment)?;
        let Some(version) = version else {
            return Err(Refusal::invalid(
                "Missing required query parameter 'version'.",
            ));
        };
        let Ok(version) = version.parse::<i64>() else {
            return Err(Refusal::invalid(format!(
                "Query parameter 'version' must be an integer, got '{version}'."
            )));
        };
        check_version(&self.subscriptions[&id], version)?;
        Ok(self.subscriptions.remove(&id).unwrap_or_default())
    }
}

fn check_version(sub: &Value, expected: i64) -> Result<(), Refusal> {
    let current = sub["version"].as_i64().unwrap_or(0);
    if current == expected {
        return Ok(());
    }
    let mut r = Refusal::new(
        409,
        "ConcurrentModification",
        format!(
            "Object {} has a different version than expected. Expected: {expected} - Actual: {current}.",
            sub["id"].as_str().unwrap_or_default()
        ),
    );
    r.extra.insert("currentVersion".into(), json!(current));
    Err(r)
}

/// The first two characters of a secret, then `****`.
fn partly_hidden(s: &str) -> String {
    let shown: String = s.chars().take(2).collect();
    format!("{shown}****")
}

/// A Subscription as the API shows it: secrets partly hidden.
pub(crate) fn masked(sub: &Value) -> Value {
    let mut out = sub.clone();
    let d = &mut out["destination"];
    let ty = d["type"].as_str().unwrap_or_default().to_owned();
    let hide = |d: &mut Value, field: &str| {
        if let Some(s) = d.get(field).and_then(Value::as_str) {
            let hidden = partly_hidden(s);
            d[field] = json!(hidden);
        }
    };
    match ty.as_str() {
        "SQS" | "SNS" => hide(d, "accessSecret"),
        "EventGrid" => hide(d, "accessKey"),
        "AzureServiceBus" => {
            if let Some(cs) = d.get("connectionString").and_then(Value::as_str) {
                let parts: Vec<String> = cs
                    .split(';')
                    .map(|p| match p.split_once('=') {
                        Some((k, v)) if k.eq_ignore_ascii_case("SharedAccessKey") => {
                            format!("{k}={}", partly_hidden(v))
                        }
                        _ => p.to_owned(),
                    })
                    .collect();
                d["connectionString"] = json!(parts.join(";"));
            }
        }
        _ => {}
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_partly_hidden_in_responses() {
        let sub = json!({"destination": {"type": "AzureServiceBus",
            "connectionString": "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=send;SharedAccessKey=abcdef123"}});
        assert_eq!(
            masked(&sub)["destination"]["connectionString"],
            "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=send;SharedAccessKey=ab****"
        );
        let sqs = json!({"destination": {"type": "SQS", "accessKey": "AKIA1", "accessSecret": "verysecret"}});
        assert_eq!(masked(&sqs)["destination"]["accessSecret"], "ve****");
        assert_eq!(masked(&sqs)["destination"]["accessKey"], "AKIA1");
    }

    #[test]
    fn destinations_of_unknown_types_or_without_required_fields_are_refused() {
        for (d, detail) in [
            (
                json!({"type": "IronMQ", "uri": "x"}),
                "Unknown destination type",
            ),
            (
                json!({"type": "GoogleCloudPubSub", "topic": "t"}),
                "destination.projectId",
            ),
            (
                json!({"type": "SQS", "queueUrl": "q", "region": "r"}),
                "destination.accessKey",
            ),
        ] {
            let err = check_destination(Some(&d)).unwrap_err();
            assert_eq!(err.code, "InvalidJsonInput");
            let got = err.extra["detailedErrorMessage"].as_str().unwrap();
            assert!(got.contains(detail), "{got}");
        }
        assert!(
            check_destination(Some(
                &json!({"type": "SQS", "queueUrl": "q", "region": "r", "authenticationMode": "IAM"})
            ))
            .is_ok()
        );
    }
}
