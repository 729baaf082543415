//! Products, product categories, contacts and events: the operations (shared by the HTTP
//! handlers and batch processing) and their HTTP handlers.

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::problem::{FieldError, Outcome};
use super::{ApiKey, Brand, Shared, lock, validate};
use crate::util::{format_ms, now_ms, query_pairs};

/// Parses a JSON request body or answers 400.
pub(crate) fn parse_body(body: &Bytes) -> Result<Value, Outcome> {
    serde_json::from_slice(body).map_err(|e| {
        Outcome::problem(
            400,
            "Bad Request",
            &format!("Request body is not valid JSON: {e}"),
        )
    })
}

fn now() -> String {
    format_ms(now_ms())
}

// ---------------------------------------------------------------- products

/// `POST /products`: create only.
pub(crate) fn create_product(brand: &mut Brand, body: &Value) -> Outcome {
    if let Err(errors) = validate::product(body, &brand.categories) {
        return Outcome::invalid(&errors);
    }
    let id = body["id"].as_str().unwrap_or_default().to_owned();
    if brand.products.contains_key(&id) {
        return Outcome::problem(409, "Conflict", "Product already exists");
    }
    let mut stored = body.clone();
    let stamp = now();
    if stored.get("createdAt").is_none() {
        stored["createdAt"] = json!(stamp);
    }
    if stored.get("updatedAt").is_none() {
        stored["updatedAt"] = json!(stamp);
    }
    brand.products.insert(id.clone(), stored);
    Outcome::ok(201, json!({"id": id}))
}

/// `PUT /products/{productID}`: replace an existing product.
pub(crate) fn replace_product(brand: &mut Brand, path_id: Option<&str>, body: &Value) -> Outcome {
    if let Err(errors) = validate::product(body, &brand.categories) {
        return Outcome::invalid(&errors);
    }
    let id = body["id"].as_str().unwrap_or_default().to_owned();
    if let Some(path_id) = path_id
        && path_id != id
    {
        return Outcome::invalid(&[FieldError::new(
            "invalid_value",
            "id",
            "id must match the productID in the path",
        )]);
    }
    let Some(existing) = brand.products.get(&id) else {
        return Outcome::problem(404, "Not Found", "Product not found");
    };
    let mut stored = body.clone();
    if stored.get("createdAt").is_none() {
        stored["createdAt"] = existing.get("createdAt").cloned().unwrap_or(json!(now()));
    }
    if stored.get("updatedAt").is_none() {
        stored["updatedAt"] = json!(now());
    }
    brand.products.insert(id.clone(), stored);
    Outcome::ok(200, json!({"id": id}))
}

/// Parses `offset`/`limit` (limit 1–250, default 100).
fn paging_params(pairs: &[(String, String)]) -> Result<(usize, usize), Outcome> {
    let mut offset = 0usize;
    let mut limit = 100usize;
    for (k, v) in pairs {
        match k.as_str() {
            "offset" => {
                offset = v.parse().map_err(|_| {
                    Outcome::invalid(&[FieldError::new(
                        "invalid_value",
                        "offset",
                        "offset must be a non-negative integer",
                    )])
                })?
            }
            "limit" => {
                limit = v
                    .parse()
                    .ok()
                    .filter(|l| (1..=250).contains(l))
                    .ok_or_else(|| {
                        Outcome::invalid(&[FieldError::new(
                            "invalid_value",
                            "limit",
                            "limit must be between 1 and 250",
                        )])
                    })?
            }
            _ => {}
        }
    }
    Ok((offset, limit))
}

/// Builds `{limit, offset, next?, previous?}` with absolute URLs.
pub(crate) fn paging(
    base: &str,
    path: &str,
    extra: &str,
    offset: usize,
    limit: usize,
    total: usize,
) -> Value {
    let mut p = json!({"limit": limit, "offset": offset});
    if offset + limit < total {
        p["next"] = json!(format!(
            "{base}{path}?{extra}limit={limit}&offset={}",
            offset + limit
        ));
    }
    if offset > 0 {
        p["previous"] = json!(format!(
            "{base}{path}?{extra}limit={limit}&offset={}",
            offset.saturating_sub(limit)
        ));
    }
    p
}

fn sorted_page(
    items: Vec<&Value>,
    sort: Option<&str>,
    allowed: &[&str],
    offset: usize,
    limit: usize,
) -> Result<Vec<Value>, Outcome> {
    let mut items = items;
    if let Some(sort) = sort {
        if !allowed.contains(&sort) {
            return Err(Outcome::invalid(&[FieldError::new(
                "invalid_value",
                "sort",
                format!("sort must be one of: {}", allowed.join(", ")),
            )]));
        }
        let key = if sort == "date" { "createdAt" } else { sort };
        items.sort_by(|a, b| a[key].as_str().cmp(&b[key].as_str()));
    }
    Ok(items
        .into_iter()
        .skip(offset)
        .take(limit)
        .cloned()
        .collect())
}

pub(crate) async fn post_product(
    State(s): State<Shared>,
    Extension(key): Extension<ApiKey>,
    body: Bytes,
) -> Response {
    let body = match parse_body(&body) {
        Ok(b) => b,
        Err(o) => return o.into_response(),
    };
    create_product(lock(&s).brand(&key.0), &body).into_response()
}

pub(crate) async fn put_product(
    State(s): State<Shared>,
    Extension(key): Extension<ApiKey>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let body = match parse_body(&body) {
        Ok(b) => b,
        Err(o) => return o.into_response(),
    };
    replace_product(lock(&s).brand(&key.0), Some(&id), &body).into_response()
}

pub(crate) async fn get_product(
    State(s): State<Shared>,
    Extension(key): Extension<ApiKey>,
    Path(id): Path<String>,
) -> Response {
    match lock(&s).brand(&key.0).products.get(&id) {
        Some(p) => Outcome::ok(200, p.clone()),
        None => Outcome::problem(404, "Not Found", "Product not found"),
    }
    .into_response()
}

pub(crate) async fn delete_product(
    State(s): State<Shared>,
    Extension(key): Extension<ApiKey>,
    Path(id): Path<String>,
) -> Response {
    match lock(&s).brand(&key.0).products.remove(&id) {
        Some(_) => Outcome::empty(204),
        None => Outcome::problem(404, "Not Found", "Product not found"),
    }
    .into_response()
}

pub(crate) async fn list_products(
    State(s): State<Shared>,
    Extension(key): Extension<ApiKey>,
    RawQuery(q): RawQuery,
) -> Response {
    let pairs = query_pairs(q.as_deref());
    let (offset, limit) = match paging_params(&pairs) {
        Ok(p) => p,
        Err(o) => return o.into_response(),
    };
    let sort = pairs
        .iter()
        .find(|(k, _)| k == "sort")
        .map(|(_, v)| v.as_str());
    let mut st = lock(&s);
    let base = st.base_url.clone();
    let brand = st.brand(&key.0);
    let total = brand.products.len();
    match sorted_page(brand.products.values().collect(), sort, &["date", "updatedAt", "createdAt"], offset, limit) {
        Ok(page) => Outcome::ok(
            200,
            json!({"products": page, "paging": paging(&base, "/products", "", offset, limit, total)}),
        ),
        Err(o) => o,
    }
    .into_response()
}

// ---------------------------------------------------------------- categories

/// `POST /product-categories`.
pub(crate) fn create_category(brand: &mut Brand, body: &Value) -> Outcome {
    if let Err(errors) = validate::category_create(body) {
        return Outcome::invalid(&errors);
    }
    let id = body["categoryID"].as_str().unwrap_or_default().to_owned();
    if brand.categories.contains_key(&id) {
        return Outcome::problem(409, "Conflict", "Category already exists");
    }
    let stamp = now();
    brand.categories.insert(
        id.clone(),
        json!({"categoryID": id, "title": body["title"], "createdAt": stamp, "updatedAt": stamp}),
    );
    Outcome::ok(201, json!({"categoryID": id}))
}

/// `PATCH /product-categories/{categoryID}` (and batch `PUT`, which takes the id from the body).
pub(crate) fn update_category(brand: &mut Brand, id: Option<&str>, body: &Value) -> Outcome {
    if let Err(errors) = validate::category_update(body) {
        return Outcome::invalid(&errors);
    }
    let id = match id.or_else(|| body.get("categoryID").and_then(Value::as_str)) {
        Some(id) => id.to_owned(),
        None => {
            return Outcome::invalid(&[FieldError::new(
                "required",
                "categoryID",
                "categoryID is required",
            )]);
        }
    };
    let Some(cat) = brand.categories.get_mut(&id) else {
        return Outcome::problem(404, "Not Found", "Category not found");
    };
    cat["title"] = body["title"].clone();
    cat["updatedAt"] = json!(now());
    Outcome::ok(200, json!({"categoryID": id}))
}

pub(crate) async fn post_category(
    State(s): State<Shared>,
    Extension(key): Extension<ApiKey>,
    body: Bytes,
) -> Response {
    let body = match parse_body(&body) {
        Ok(b) => b,
        Err(o) => return o.into_response(),
    };
    create_category(lock(&s).brand(&key.0), &body).into_response()
}

pub(crate) async fn patch_category(
    State(s): State<Shared>,
    Extension(key): Extension<ApiKey>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let body = match parse_body(&body) {
        Ok(b) => b,
        Err(o) => return o.into_response(),
    };
    update_category(lock(&s).brand(&key.0), Some(&id), &body).into_response()
}

pub(crate) async fn get_category(
    State(s): State<Shared>,
    Extension(key): Extension<ApiKey>,
    Path(id): Path<String>,
) -> Response {
    match lock(&s).brand(&key.0).categories.get(&id) {
        Some(c) => Outcome::ok(200, c.clone()),
        None => Outcome::problem(404, "Not Found", "Category not found"),
    }
    .into_response()
}

pub(crate) async fn delete_category(
    State(s): State<Shared>,
    Extension(key): Extension<ApiKey>,
    Path(id): Path<String>,
) -> Response {
    match lock(&s).brand(&key.0).categories.remove(&id) {
        Some(_) => Outcome::empty(204),
        None => Outcome::problem(404, "Not Found", "Category not found"),
    }
    .into_response()
}

pub(crate) async fn list_categories(
    State(s): State<Shared>,
    Extension(key): Extension<ApiKey>,
    RawQuery(q): RawQuery,
) -> Response {
    let pairs = query_pairs(q.as_deref());
    let (offset, limit) = match paging_params(&pairs) {
        Ok(p) => p,
        Err(o) => return o.into_response(),
    };
    let sort = pairs
        .iter()
        .find(|(k, _)| k == "sort")
        .map(|(_, v)| v.as_str());
    let mut st = lock(&s);
    let base = st.base_url.clone();
    let brand = st.brand(&key.0);
    let total = brand.categories.len();
    match sorted_page(brand.categories.values().collect(), sort, &["title", "updatedAt", "createdAt"], offset, limit) {
        Ok(page) => Outcome::ok(
            200,
            json!({"categories": page, "paging": paging(&base, "/product-categories", "", offset, limit, total)}),
        ),
        Err(o) => o,
    }
    .into_response()
}

// ---------------------------------------------------------------- contacts

fn identifiers(body: &Value) -> Vec<Value> {
    body["identifiers"].as_array().cloned().unwrap_or_default()
}

fn owner_of(brand: &Brand, ty: &str, id: &str) -> Option<usize> {
    brand
        .contact_index
        .get(&(ty.to_owned(), id.to_owned()))
        .copied()
}

fn index_identifier(brand: &mut Brand, ty: &str, id: &str, idx: usize) {
    brand
        .contact_index
        .insert((ty.to_owned(), id.to_owned()), idx);
}

/// Merges a request identifier's channels into a stored identifier; an older `statusChangedAt`
/// than the stored one leaves the status unchanged.
fn merge_channels(stored: &mut Value, req: &Value) {
    let Some(channels) = req.get("channels").and_then(Value::as_object) else {
        return;
    };
    for (name, ch) in channels {
        let old = &stored["channels"][name];
        let newer = match (
            old["statusChangedAt"].as_str(),
            ch["statusChangedAt"].as_str(),
        ) {
            (Some(o), Some(n)) => crate::util::parse_rfc3339(n) >= crate::util::parse_rfc3339(o),
            _ => true,
        };
        if newer {
            let mut c = ch.clone();
            if c.get("statusChangedAt").is_none() {
                c["statusChangedAt"] = json!(now());
            }
            stored["channels"][name] = c;
        }
    }
}

fn stored_identifier(req: &Value) -> Value {
    let mut out = json!({"id": req["id"], "type": req["type"], "channels": {}});
    merge_channels(&mut out, req);
    if let Some(consent) = req.get("consent") {
        out["consent"] = consent.clone();
    }
    out
}

/// Recomputes the read-only fields (`email`, `phone`, `status`, `statuses`).
fn derive_contact_fields(c: &mut Value) {
    let ids = c["identifiers"].as_array().cloned().unwrap_or_default();
    let email = ids.iter().find(|i| i["type"] == "email");
    c["email"] = email.map(|e| e["id"].clone()).unwrap_or(Value::Null);
    c["phone"] = Value::Array(
        ids.iter()
            .filter(|i| i["type"] == "phone")
            .map(|i| i["id"].clone())
            .collect(),
    );
    c["status"] = email
        .and_then(|e| e["channels"]["email"]["status"].as_str())
        .map_or(json!("nonSubscribed"), |s| json!(s));
    let mut statuses = Vec::new();
    for i in &ids {
        if let Some(chs) = i["channels"].as_object() {
            for (name, ch) in chs {
                statuses.push(json!({"channel": name, "status": ch["status"], "statusChangedAt": ch["statusChangedAt"]}));
            }
        }
    }
    c["statuses"] = Value::Array(statuses);
}

const CONTACT_FIELDS: &[&str] = &[
    "firstName",
    "lastName",
    "address",
    "city",
    "state",
    "postalCode",
    "country",
    "countryCode",
    "birthdate",
    "gender",
];

fn apply_contact_fields(c: &mut Value, body: &Value) {
    for f in CONTACT_FIELDS {
        if let Some(v) = body.get(*f) {
            c[*f] = v.clone();
        }
    }
    if let Some(tags) = body.get("tags").and_then(Value::as_array) {
        let mut all = c["tags"].as_array().cloned().unwrap_or_default();
        for t in tags {
            if !all.contains(t) {
                all.push(t.clone());
            }
        }
        c["tags"] = Value::Array(all);
    }
    if let Some(props) = body.get("customProperties").and_then(Value::as_object) {
        if !c["customProperties"].is_object() {
            c["customProperties"] = json!({});
        }
        for (k, v) in props {
            c["customProperties"][k] = v.clone();
        }
    }
    if let Some(created) = body.get("createdAt") {
        c["customProperties"]["externalCreated"] = created.clone();
    }
}

fn contact_response(status: u16, c: &Value) -> Outcome {
    let mut body = c.clone();
    body["contactID"] = c["id"].clone();
    Outcome::ok(status, body)
}

/// `POST /contacts`: create, or update the contact owning the (case-sensitive) email identifier.
/// Identifiers owned by another contact are ignored; when nothing is left to create, the owner
/// is returned unchanged (200).
pub(crate) fn upsert_contact(brand: &mut Brand, body: &Value) -> Outcome {
    if let Err(errors) = validate::contact(body) {
        return Outcome::invalid(&errors);
    }
    let req_ids = identifiers(body);
    let email_owner = req_ids
        .iter()
        .filter(|i| i["type"] == "email")
        .find_map(|i| owner_of(brand, "email", i["id"].as_str().unwrap_or_default()));
    let stamp = now();
    if let Some(idx) = email_owner {
        for ri in &req_ids {
            let (ty, id) = (
                ri["type"].as_str().unwrap_or_default(),
                ri["id"].as_str().unwrap_or_default(),
            );
            match owner_of(brand, ty, id) {
                Some(o) if o == idx => {
                    let ids = brand.contacts[idx]["identifiers"].as_array_mut();
                    if let Some(stored) = ids
                        .and_then(|ids| ids.iter_mut().find(|i| i["type"] == ty && i["id"] == id))
                    {
                        merge_channels(stored, ri);
                    }
                }
                Some(_) => {} // owned by another contact: ignored
                None => {
                    if let Some(ids) = brand.contacts[idx]["identifiers"].as_array_mut() {
                        ids.push(stored_identifier(ri));
                    }
                    index_identifier(brand, ty, id, idx);
                }
            }
        }
        let c = &mut brand.contacts[idx];
        apply_contact_fields(c, body);
        c["updatedAt"] = json!(stamp);
        derive_contact_fields(c);
        return contact_response(200, c);
    }
    let mut kept = Vec::new();
    let mut first_owner = None;
    for ri in &req_ids {
        let (ty, id) = (
            ri["type"].as_str().unwrap_or_default(),
            ri["id"].as_str().unwrap_or_default(),
        );
        match owner_of(brand, ty, id) {
            Some(o) => first_owner = first_owner.or(Some(o)),
            None => kept.push(stored_identifier(ri)),
        }
    }
    if kept.is_empty() {
        let owner = first_owner.unwrap_or_default();
        return contact_response(200, &brand.contacts[owner]);
    }
    let id = uuid::Uuid::new_v4().simple().to_string()[..24].to_owned();
    let mut c = json!({
        "id": id, "identifiers": kept, "tags": [], "customProperties": {},
        "createdAt": stamp, "updatedAt": stamp,
    });
    apply_contact_fields(&mut c, body);
    derive_contact_fields(&mut c);
    let idx = brand.contacts.len();
    for i in c["identifiers"].as_array().cloned().unwrap_or_default() {
        index_identifier(
            brand,
            i["type"].as_str().unwrap_or_default(),
            i["id"].as_str().unwrap_or_default(),
            idx,
        );
    }
    brand.contacts.push(c);
    let c = brand.contacts.last().cloned().unwrap_or_default();
    contact_response(201, &c)
}

pub(crate) async fn post_contact(
    State(s): State<Shared>,
    Extension(key): Extension<ApiKey>,
    body: Bytes,
) -> Response {
    let body = match parse_body(&body) {
        Ok(b) => b,
        Err(o) => return o.into_response(),
    };
    upsert_contact(lock(&s).brand(&key.0), &body).into_response()
}

pub(crate) async fn get_contact(
    State(s): State<Shared>,
    Extension(key): Extension<ApiKey>,
    Path(id): Path<String>,
) -> Response {
    let mut st = lock(&s);
    match st
        .brand(&key.0)
        .contacts
        .iter()
        .find(|c| c["id"] == id.as_str())
    {
        Some(c) => Outcome::ok(200, c.clone()),
        None => Outcome::problem(404, "Not Found", "Contact not found"),
    }
    .into_response()
}

/// `GET /contacts` with the `email`, `phone` and `limit` filters (no cursors: one page).
pub(crate) async fn list_contacts(
    State(s): State<Shared>,
    Extension(key): Extension<ApiKey>,
    RawQuery(q): RawQuery,
) -> Response {
    let pairs = query_pairs(q.as_deref());
    let get = |n: &str| pairs.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
    let limit =
        match get("limit").map(|l| l.parse::<usize>().ok().filter(|l| (1..=250).contains(l))) {
            None => 100,
            Some(Some(l)) => l,
            Some(None) => {
                return Outcome::invalid(&[FieldError::new(
                    "invalid_value",
                    "limit",
                    "limit must be between 1 and 250",
                )])
                .into_response();
            }
        };
    let (email, phone) = (get("email"), get("phone"));
    let mut st = lock(&s);
    let matching: Vec<Value> = st
        .brand(&key.0)
        .contacts
        .iter()
        .filter(|c| email.as_ref().is_none_or(|e| c["email"] == e.as_str()))
        .filter(|c| {
            phone.as_ref().is_none_or(|p| {
                c["phone"]
                    .as_array()
                    .is_some_and(|ps| ps.iter().any(|x| x == p.as_str()))
            })
        })
        .cloned()
        .collect();
    let has_more = matching.len() > limit;
    let page: Vec<Value> = matching.into_iter().take(limit).collect();
    Outcome::ok(
        200,
        json!({"contacts": page, "paging": {"limit": limit, "hasMore": has_more, "cursors": {}}}),
    )
    .into_response()
}

// ---------------------------------------------------------------- events

/// `POST /events`: validate and store (with `receivedAt`); 202 without body.
pub(crate) fn accept_event(brand: &mut Brand, body: &Value) -> Outcome {
    if let Err(errors) = validate::event(body) {
        return Outcome::invalid(&errors);
    }
    let mut stored = body.clone();
    if let Some(obj) = stored.as_object_mut() {
        obj.insert("receivedAt".into(), json!(now()));
    }
    brand.events.push(stored);
    Outcome::empty(202)
}

pub(crate) async fn post_event(
    State(s): State<Shared>,
    Extension(key): Extension<ApiKey>,
    body: Bytes,
) -> Response {
    let body = match parse_body(&body) {
        Ok(b) => b,
        Err(o) => return o.into_response(),
    };
    accept_event(lock(&s).brand(&key.0), &body).into_response()
}
