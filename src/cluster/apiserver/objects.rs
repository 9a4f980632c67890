//! The verbs on objects: get, list, create, update, patch (merge, JSON,
//! apply), delete and deletecollection, for the main resource and its
//! `status` and `scale` subresources. Every write builds the complete new
//! object, validates it, and commits it with compare-and-swap on the version
//! it was built from, so a failed request never leaves a partial write.

use std::sync::Arc;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use bytes::Bytes;
use serde_json::{Map, Value, json};

use super::Cluster;
use super::request::{FieldValidation, Format, Params, PatchType, Target};
use super::resources::ResourceDef;
use super::selector::Selection;
use super::status::{ApiError, FieldError};
use super::table;
use super::validation;
use crate::cluster::store::{ObjectKey, Op, StoreError, StoredObject};

/// How often a write retries after losing a compare-and-swap race to a
/// concurrent writer (only for writes that did not name a resourceVersion).
const MAX_RETRIES: usize = 64;

/// The current time as Kubernetes writes timestamps.
pub fn now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// A JSON response.
pub fn json_response(code: StatusCode, body: impl Into<axum::body::Body>) -> Response {
    let mut r = (code, body.into()).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

fn with_warnings(mut response: Response, warnings: &[String]) -> Response {
    for w in warnings {
        let text = format!("299 - \"{}\"", w.replace('"', "'"));
        if let Ok(v) = HeaderValue::from_str(&text) {
            response.headers_mut().append("Warning", v);
        }
    }
    response
}

fn key(target: &Target, name: &str) -> ObjectKey {
    ObjectKey::new(
        target.def.plural,
        target.namespace.as_deref().unwrap_or(""),
        name,
    )
}

fn name_of(target: &Target) -> Result<&str, ApiError> {
    target
        .name
        .as_deref()
        .ok_or_else(|| ApiError::method_not_allowed("this verb needs an object name in the path"))
}

fn store_error(def: &ResourceDef, name: &str, e: StoreError) -> ApiError {
    match e {
        StoreError::AlreadyExists => ApiError::already_exists(&def.qualified(), name),
        StoreError::NotFound => ApiError::not_found(&def.qualified(), name),
        StoreError::Conflict { .. } => ApiError::conflict(&def.qualified(), name),
        StoreError::Durable(e) => {
            ApiError::internal(format!("storage failure, nothing was written: {e}"))
        }
        StoreError::Closed => ApiError::unavailable("the server is shutting down; retry"),
    }
}

fn meta(v: &Value) -> Option<&Map<String, Value>> {
    v.get("metadata").and_then(Value::as_object)
}

fn meta_mut(v: &mut Value) -> &mut Map<String, Value> {
    if !v.get("metadata").is_some_and(Value::is_object) {
        v["metadata"] = json!({});
    }
    // Just ensured to be an object.
    match v.get_mut("metadata") {
        Some(Value::Object(m)) => m,
        _ => unreachable!("metadata was set to an object above"),
    }
}

/// The parts of an object that count as its spec for `generation`.
fn spec_part(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| {
                    !matches!(k.as_str(), "metadata" | "status" | "apiVersion" | "kind")
                })
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Checks `apiVersion`/`kind` of a body against the resource.
fn check_type(def: &ResourceDef, body: &Value) -> Result<(), ApiError> {
    let kind = body.get("kind").and_then(Value::as_str).unwrap_or("");
    let api_version = body.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    if kind.is_empty() {
        return Err(ApiError::bad_request(
            "Object 'Kind' is missing in the request body",
        ));
    }
    if kind != def.kind || api_version != def.api_version() {
        return Err(ApiError::bad_request(format!(
            "the body is a {api_version}, Kind={kind} but this endpoint serves {}, Kind={}",
            def.api_version(),
            def.kind
        )));
    }
    Ok(())
}

/// Validates a complete object about to be stored: unknown fields per
/// `fieldValidation`, schema, name. Returns the warnings to send.
fn validate(
    def: &ResourceDef,
    object: &mut Value,
    validation_mode: FieldValidation,
) -> Result<Vec<String>, ApiError> {
    let name = meta(object)
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let mut findings = match &def.schema {
        Some(schema) => validation::check(schema, object),
        None => validation::Findings::default(),
    };
    if let Some(why) = validation::dns_subdomain_error(&name) {
        findings
            .invalid
            .insert(0, FieldError::invalid("metadata.name", &json!(name), &why));
    }
    let mut warnings = Vec::new();
    if !findings.unknown.is_empty() {
        let listed: Vec<String> = findings
            .unknown
            .iter()
            .map(|f| format!("unknown field \"{f}\""))
            .collect();
        match validation_mode {
            FieldValidation::Strict => {
                return Err(ApiError::bad_request(format!(
                    "strict decoding error: {}",
                    listed.join(", ")
                )));
            }
            FieldValidation::Warn => warnings = listed,
            FieldValidation::Ignore => {}
        }
    }
    if !findings.invalid.is_empty() {
        return Err(ApiError::invalid(
            &def.kind_group(),
            &name,
            findings.invalid,
        ));
    }
    Ok(warnings)
}

/// The `managedFields` set of an object: `f:` entries for every field
/// (lists are atomic), without server-owned metadata.
fn fields_v1(v: &Value, top: bool) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| !(top && matches!(k.as_str(), "apiVersion" | "kind" | "status")))
                .filter_map(|(k, child)| {
                    if top && k == "metadata" {
                        let kept: Map<String, Value> = child
                            .as_object()?
                            .iter()
                            .filter(|(k, _)| matches!(k.as_str(), "labels" | "annotations"))
                            .map(|(k, v)| (format!("f:{k}"), fields_v1(v, false)))
                            .collect();
                        return (!kept.is_empty())
                            .then(|| ("f:metadata".to_owned(), Value::Object(kept)));
                    }
                    Some((format!("f:{k}"), fields_v1(child, false)))
                })
                .collect(),
        ),
        _ => json!({}),
    }
}

/// Records a write by `manager` in `metadata.managedFields`.
fn record_manager(
    def: &ResourceDef,
    object: &mut Value,
    applied: &Value,
    manager: &str,
    operation: &str,
    sub: Option<&str>,
) {
    let mut entry = json!({
        "manager": manager,
        "operation": operation,
        "apiVersion": def.api_version(),
        "time": now(),
        "fieldsType": "FieldsV1",
        "fieldsV1": fields_v1(applied, true),
    });
    if let Some(sub) = sub {
        entry["subresource"] = json!(sub);
    }
    let m = meta_mut(object);
    let mut list: Vec<Value> = m
        .get("managedFields")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    list.retain(|e| {
        !(e["manager"] == manager
            && e["operation"] == operation
            && e.get("subresource").and_then(Value::as_str) == sub)
    });
    list.push(entry);
    m.insert("managedFields".into(), Value::Array(list));
}

/// Builds a new object for creation from a client's body.
fn prepare_create(target: &Target, mut body: Value) -> Result<Value, ApiError> {
    let def = target.def;
    check_type(def, &body)?;
    let ns = target.namespace.clone().unwrap_or_default();
    let m = meta_mut(&mut body);
    if let Some(body_ns) = m.get("namespace").and_then(Value::as_str)
        && !body_ns.is_empty()
        && body_ns != ns
    {
        return Err(ApiError::bad_request(format!(
            "the namespace of the provided object ({body_ns}) does not match the namespace sent on the request ({ns})"
        )));
    }
    if def.namespaced {
        if let Some(why) = validation::dns_label_error(&ns) {
            return Err(ApiError::invalid(
                &def.kind_group(),
                "",
                vec![FieldError::invalid("metadata.namespace", &json!(ns), &why)],
            ));
        }
        m.insert("namespace".into(), json!(ns));
    }
    let name = m
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    if name.is_empty() {
        let prefix = m.get("generateName").and_then(Value::as_str).unwrap_or("");
        if prefix.is_empty() {
            return Err(ApiError::invalid(
                &def.kind_group(),
                "",
                vec![FieldError::required(
                    "metadata.name",
                    "name or generateName is required",
                )],
            ));
        }
        m.insert("name".into(), json!(generate_name(prefix)));
    }
    for server_owned in [
        "resourceVersion",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "selfLink",
    ] {
        m.remove(server_owned);
    }
    m.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
    m.insert("creationTimestamp".into(), json!(now()));
    m.insert("generation".into(), json!(1));
    if def.status_subresource
        && let Some(o) = body.as_object_mut()
    {
        o.remove("status");
    }
    Ok(body)
}

/// `generateName` plus five random characters, as the API server does.
fn generate_name(prefix: &str) -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::rng();
    let suffix: String = (0..5)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect();
    let cut: String = prefix.chars().take(63 - 5).collect();
    format!("{cut}{suffix}")
}

/// Builds the object an update of `current` with `incoming` leads to: on the
/// main resource everything but status and server-owned metadata; on
/// `status` only status.
fn merge_update(def: &ResourceDef, current: &Value, incoming: Value, sub: Option<&str>) -> Value {
    if sub == Some("status") {
        let mut next = current.clone();
        match incoming.get("status") {
            Some(s) => next["status"] = s.clone(),
            None => {
                if let Some(o) = next.as_object_mut() {
                    o.remove("status");
                }
            }
        }
        return next;
    }
    let mut next = incoming;
    let cur_meta = meta(current).cloned().unwrap_or_default();
    let m = meta_mut(&mut next);
    for owned in [
        "uid",
        "creationTimestamp",
        "generation",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "namespace",
        "name",
    ] {
        match cur_meta.get(owned) {
            Some(v) => m.insert(owned.into(), v.clone()),
            None => m.remove(owned),
        };
    }
    if !m.contains_key("managedFields")
        && let Some(mf) = cur_meta.get("managedFields")
    {
        m.insert("managedFields".into(), mf.clone());
    }
    m.remove("resourceVersion");
    if def.status_subresource {
        match current.get("status") {
            Some(s) => next["status"] = s.clone(),
            None => {
                if let Some(o) = next.as_object_mut() {
                    o.remove("status");
                }
            }
        }
    }
    for field in ["apiVersion", "kind"] {
        next[field] = current[field].clone();
    }
    if spec_part(&next) != spec_part(current) {
        let generation = cur_meta
            .get("generation")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        meta_mut(&mut next).insert("generation".into(), json!(generation + 1));
    }
    next
}

fn rv_of(v: &Value) -> Result<Option<u64>, ApiError> {
    match meta(v).and_then(|m| m.get("resourceVersion")) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => s.parse().map(Some).map_err(|_| {
            ApiError::bad_request(format!("metadata.resourceVersion: invalid value \"{s}\""))
        }),
        Some(other) => Err(ApiError::bad_request(format!(
            "metadata.resourceVersion: invalid value {other}: must be a string"
        ))),
    }
}

fn is_terminating_without_finalizers(v: &Value) -> bool {
    let Some(m) = meta(v) else { return false };
    m.get("deletionTimestamp").is_some_and(|t| !t.is_null())
        && m.get("finalizers")
            .and_then(Value::as_array)
            .is_none_or(|f| f.is_empty())
}

/// Whether a would-be object equals the stored one apart from what every
/// write stamps (resourceVersion, managedFields times): such a write is not
/// stored, so it bumps no version and wakes no watcher.
fn same_content(next: &Value, current: &Value) -> bool {
    fn normalised(v: &Value) -> Value {
        let mut v = v.clone();
        if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
            m.remove("resourceVersion");
            if let Some(Value::Array(entries)) = m.get_mut("managedFields") {
                for e in entries.iter_mut().filter_map(Value::as_object_mut) {
                    e.remove("time");
                }
            }
        }
        v
    }
    normalised(next) == normalised(current)
}

/// The outcome of a write: the stored object (or the would-be object in a
/// dry run) and the warnings.
struct Written {
    body: Bytes,
    warnings: Vec<String>,
}

/// Commits `next` over `current` (compare-and-swap on `current`'s version).
/// An update that changes nothing is not written, as the API server does.
async fn commit_update(
    cluster: &Cluster,
    target: &Target,
    name: &str,
    current: &Arc<StoredObject>,
    mut next: Value,
    params: &Params,
) -> Result<Result<Written, StoreError>, ApiError> {
    let warnings = validate(target.def, &mut next, params.field_validation)?;
    if params.dry_run || same_content(&next, &current.value) {
        let body = if params.dry_run {
            Bytes::from(serde_json::to_vec(&next).unwrap_or_default())
        } else {
            current.json.clone()
        };
        return Ok(Ok(Written { body, warnings }));
    }
    let op = if is_terminating_without_finalizers(&next) {
        Op::Delete {
            expect_rv: Some(current.rv),
        }
    } else {
        Op::Update {
            value: next,
            expect_rv: current.rv,
        }
    };
    Ok(cluster
        .store
        .write(key(target, name), op)
        .await
        .map(|stored| Written {
            body: stored.json.clone(),
            warnings,
        }))
}

/// Renders one object in the requested format.
fn render_one(def: &ResourceDef, format: Format, code: StatusCode, body: Bytes) -> Response {
    match format {
        Format::Json => json_response(code, body),
        Format::Table | Format::Metadata => {
            let Ok(value) = serde_json::from_slice::<Value>(&body) else {
                return json_response(code, body);
            };
            let out = if format == Format::Table {
                table::table(def, std::iter::once(&value), &json!({}))
            } else {
                table::partial_metadata(&value)
            };
            json_response(code, out)
        }
    }
}

/// GET of one object or subresource.
pub fn get(cluster: &Cluster, target: &Target, format: Format) -> Result<Response, ApiError> {
    let name = name_of(target)?;
    let def = target.def;
    let current = cluster
        .store
        .get(&key(target, name))
        .ok_or_else(|| ApiError::not_found(&def.qualified(), name))?;
    match target.subresource.as_deref() {
        None | Some("status") => Ok(render_one(
            def,
            format,
            StatusCode::OK,
            current.json.clone(),
        )),
        Some("scale") => Ok(json_response(
            StatusCode::OK,
            scale_of(def, &current.value)?.to_string(),
        )),
        Some(other) => Err(no_subresource(def, other)),
    }
}

fn no_subresource(def: &ResourceDef, sub: &str) -> ApiError {
    ApiError::no_route(&format!("{} has no subresource \"{sub}\"", def.qualified()))
}

fn check_subresource(def: &ResourceDef, sub: Option<&str>) -> Result<(), ApiError> {
    match sub {
        None => Ok(()),
        Some("status") if def.status_subresource => Ok(()),
        Some("scale") if def.scale.is_some() => Ok(()),
        Some(other) => Err(no_subresource(def, other)),
    }
}

/// The continue token: where the next page starts and the list's version.
#[derive(serde::Serialize, serde::Deserialize)]
struct Continue {
    rv: u64,
    after: (String, String),
}

/// LIST, with selectors and paging.
pub async fn list(
    cluster: &Cluster,
    target: &Target,
    params: &Params,
    format: Format,
) -> Result<Response, ApiError> {
    let def = target.def;
    let selection = Selection::parse(def, params)?;
    let after = params
        .continue_token
        .as_deref()
        .map(|t| {
            base64::engine::general_purpose::STANDARD
                .decode(t)
                .ok()
                .and_then(|b| serde_json::from_slice::<Continue>(&b).ok())
                .ok_or_else(|| {
                    ApiError::bad_request(
                        "continue: invalid continue token; start the list again without it",
                    )
                })
        })
        .transpose()?;
    let (items, current_rv) = cluster.store.list(def.plural, target.namespace.as_deref());
    let list_rv = after.as_ref().map_or(current_rv, |c| c.rv);
    let mut selected = items.iter().filter(|o| {
        let id = (
            o.value
                .pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned(),
            o.value
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned(),
        );
        after.as_ref().is_none_or(|c| id > c.after) && selection.matches(&o.value)
    });
    let limit = params.limit.unwrap_or(usize::MAX);
    let page: Vec<&Arc<StoredObject>> = selected.by_ref().take(limit).collect();
    let rest = selected.count();
    let mut list_meta = json!({"resourceVersion": list_rv.to_string()});
    if rest > 0
        && let Some(last) = page.last()
    {
        let token = Continue {
            rv: list_rv,
            after: (
                last.value
                    .pointer("/metadata/namespace")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned(),
                last.value
                    .pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned(),
            ),
        };
        let raw = serde_json::to_vec(&token).unwrap_or_default();
        list_meta["continue"] = json!(base64::engine::general_purpose::STANDARD.encode(raw));
        list_meta["remainingItemCount"] = json!(rest);
    }
    let page: Vec<Arc<StoredObject>> = page.into_iter().cloned().collect();
    if format == Format::Json {
        return Ok(json_response(
            StatusCode::OK,
            render_list(def, format, &page, &list_meta),
        ));
    }
    // Tables and metadata are rendered per row: off the async workers.
    let body = tokio::task::spawn_blocking(move || render_list(def, format, &page, &list_meta))
        .await
        .map_err(|e| ApiError::internal(format!("rendering the list failed: {e}")))?;
    Ok(json_response(StatusCode::OK, body))
}

/// Serialises a list page: JSON by joining the stored bytes, or a Table, or
/// a `PartialObjectMetadataList`.
fn render_list(
    def: &ResourceDef,
    format: Format,
    page: &[Arc<StoredObject>],
    list_meta: &Value,
) -> Vec<u8> {
    if format == Format::Table {
        return table::table(def, page.iter().map(|o| &o.value), list_meta);
    }
    let (api_version, kind) = match format {
        Format::Metadata => ("meta.k8s.io/v1".to_owned(), "PartialObjectMetadataList"),
        _ => (def.api_version(), def.list_kind),
    };
    let head = format!(
        "{{\"apiVersion\":\"{api_version}\",\"kind\":\"{kind}\",\"metadata\":{list_meta},\"items\":["
    );
    let mut body =
        Vec::with_capacity(head.len() + page.iter().map(|o| o.json.len() + 1).sum::<usize>() + 2);
    body.extend_from_slice(head.as_bytes());
    for (i, o) in page.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        match format {
            Format::Metadata => body.extend_from_slice(&table::partial_metadata(&o.value)),
            _ => body.extend_from_slice(&o.json),
        }
    }
    body.extend_from_slice(b"]}");
    body
}

/// POST: create.
pub async fn create(
    cluster: &Cluster,
    target: &Target,
    params: &Params,
    body: Value,
    format: Format,
) -> Result<Response, ApiError> {
    if target.name.is_some() {
        return Err(ApiError::method_not_allowed(
            "POST is not supported on a named object; use PUT or PATCH",
        ));
    }
    if target.namespace.is_none() && target.def.namespaced {
        return Err(ApiError::method_not_allowed(format!(
            "create {} in a namespace: POST to .../namespaces/NAMESPACE/{}",
            target.def.plural, target.def.plural
        )));
    }
    let mut object = prepare_create(target, body)?;
    let warnings = validate(target.def, &mut object, params.field_validation)?;
    if let Some(manager) = &params.field_manager {
        let applied = object.clone();
        record_manager(target.def, &mut object, &applied, manager, "Update", None);
    }
    let name = object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let body = if params.dry_run {
        Bytes::from(serde_json::to_vec(&object).unwrap_or_default())
    } else {
        cluster
            .store
            .write(key(target, &name), Op::Create(object))
            .await
            .map_err(|e| store_error(target.def, &name, e))?
            .json
            .clone()
    };
    Ok(with_warnings(
        render_one(target.def, format, StatusCode::CREATED, body),
        &warnings,
    ))
}

/// PUT: replace the object, its status, or its scale.
pub async fn update(
    cluster: &Cluster,
    target: &Target,
    params: &Params,
    body: Value,
    format: Format,
) -> Result<Response, ApiError> {
    let name = name_of(target)?.to_owned();
    let def = target.def;
    let sub = target.subresource.as_deref();
    check_subresource(def, sub)?;
    if sub == Some("scale") {
        return write_scale(cluster, target, &name, params, |_| Ok(body.clone())).await;
    }
    check_type(def, &body)?;
    if let Some(body_name) = body.pointer("/metadata/name").and_then(Value::as_str)
        && body_name != name
    {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({body_name}) does not match the name on the URL ({name})"
        )));
    }
    let wanted_rv = rv_of(&body)?;
    for _ in 0..MAX_RETRIES {
        let current = cluster
            .store
            .get(&key(target, &name))
            .ok_or_else(|| ApiError::not_found(&def.qualified(), &name))?;
        if wanted_rv.is_some_and(|rv| rv != current.rv) {
            return Err(ApiError::conflict(&def.qualified(), &name));
        }
        let mut next = merge_update(def, &current.value, body.clone(), sub);
        if let Some(manager) = &params.field_manager {
            record_manager(def, &mut next, &body, manager, "Update", sub);
        }
        match commit_update(cluster, target, &name, &current, next, params).await? {
            Ok(w) => {
                return Ok(with_warnings(
                    render_one(def, format, StatusCode::OK, w.body),
                    &w.warnings,
                ));
            }
            Err(StoreError::Conflict { .. }) if wanted_rv.is_none() => continue,
            Err(e) => return Err(store_error(def, &name, e)),
        }
    }
    Err(ApiError::conflict(&def.qualified(), &name))
}

/// Applies a merge or JSON patch to a document.
fn apply_patch(doc: &Value, patch_type: PatchType, patch: &Value) -> Result<Value, ApiError> {
    let mut out = doc.clone();
    match patch_type {
        PatchType::Merge | PatchType::Apply => {
            if !patch.is_object() {
                return Err(ApiError::bad_request("the patch must be a JSON object"));
            }
            json_patch::merge(&mut out, patch);
        }
        PatchType::Json => {
            let ops: json_patch::Patch = serde_json::from_value(patch.clone())
                .map_err(|e| ApiError::bad_request(format!("the JSON patch is malformed: {e}")))?;
            json_patch::patch(&mut out, &ops).map_err(|e| ApiError {
                code: StatusCode::UNPROCESSABLE_ENTITY,
                reason: "Invalid",
                message: format!("the JSON patch could not be applied: {e}"),
                details: None,
            })?;
        }
    }
    Ok(out)
}

/// PATCH: merge, JSON or server-side apply, on the object, status or scale.
pub async fn patch(
    cluster: &Cluster,
    target: &Target,
    params: &Params,
    patch_type: PatchType,
    body: Value,
    format: Format,
) -> Result<Response, ApiError> {
    let name = name_of(target)?.to_owned();
    let def = target.def;
    let sub = target.subresource.as_deref();
    check_subresource(def, sub)?;
    if patch_type == PatchType::Apply && params.field_manager.is_none() {
        return Err(ApiError::bad_request(
            "PATCH with application/apply-patch+yaml requires the fieldManager query parameter",
        ));
    }
    if sub == Some("scale") {
        return write_scale(cluster, target, &name, params, |scale| {
            apply_patch(scale, patch_type, &body)
        })
        .await;
    }
    if patch_type == PatchType::Apply {
        check_type(def, &body)?;
    }
    // A patch that sets resourceVersion pins the version it applies to.
    let explicit_rv = match patch_type {
        PatchType::Merge | PatchType::Apply => rv_of(&body)?.is_some(),
        PatchType::Json => body.as_array().is_some_and(|ops| {
            ops.iter()
                .any(|op| op["path"] == "/metadata/resourceVersion")
        }),
    };
    for _ in 0..MAX_RETRIES {
        let Some(current) = cluster.store.get(&key(target, &name)) else {
            if patch_type == PatchType::Apply && sub.is_none() {
                return apply_create(cluster, target, &name, params, body, format).await;
            }
            return Err(ApiError::not_found(&def.qualified(), &name));
        };
        let patched = apply_patch(&current.value, patch_type, &body)?;
        if rv_of(&patched)?.is_some_and(|rv| rv != current.rv) {
            return Err(ApiError::conflict(&def.qualified(), &name));
        }
        let mut next = merge_update(def, &current.value, patched, sub);
        match (patch_type, &params.field_manager) {
            (PatchType::Apply, Some(manager)) => {
                record_manager(def, &mut next, &body, manager, "Apply", sub)
            }
            (_, Some(manager)) => record_manager(def, &mut next, &body, manager, "Update", sub),
            _ => {}
        }
        match commit_update(cluster, target, &name, &current, next, params).await? {
            Ok(w) => {
                return Ok(with_warnings(
                    render_one(def, format, StatusCode::OK, w.body),
                    &w.warnings,
                ));
            }
            Err(StoreError::Conflict { .. }) if !explicit_rv => continue,
            Err(e) => return Err(store_error(def, &name, e)),
        }
    }
    Err(ApiError::conflict(&def.qualified(), &name))
}

/// Server-side apply of an object that does not exist yet: a create.
async fn apply_create(
    cluster: &Cluster,
    target: &Target,
    name: &str,
    params: &Params,
    body: Value,
    format: Format,
) -> Result<Response, ApiError> {
    let mut object = body.clone();
    let m = meta_mut(&mut object);
    match m.get("name").and_then(Value::as_str) {
        Some(n) if n != name => {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({n}) does not match the name on the URL ({name})"
            )));
        }
        _ => {
            m.insert("name".into(), json!(name));
        }
    }
    let mut object = prepare_create(target, object)?;
    let warnings = validate(target.def, &mut object, params.field_validation)?;
    if let Some(manager) = &params.field_manager {
        record_manager(target.def, &mut object, &body, manager, "Apply", None);
    }
    let stored = if params.dry_run {
        Bytes::from(serde_json::to_vec(&object).unwrap_or_default())
    } else {
        cluster
            .store
            .write(key(target, name), Op::Create(object))
            .await
            .map_err(|e| store_error(target.def, name, e))?
            .json
            .clone()
    };
    Ok(with_warnings(
        render_one(target.def, format, StatusCode::CREATED, stored),
        &warnings,
    ))
}

/// The `autoscaling/v1` Scale of an object.
fn scale_of(def: &ResourceDef, v: &Value) -> Result<Value, ApiError> {
    let paths = def
        .scale
        .as_ref()
        .ok_or_else(|| no_subresource(def, "scale"))?;
    let m = meta(v).cloned().unwrap_or_default();
    let mut status =
        json!({"replicas": v.pointer(&paths.status_replicas).cloned().unwrap_or(json!(0))});
    if let Some(sel) = paths
        .label_selector
        .as_ref()
        .and_then(|p| v.pointer(p))
        .and_then(Value::as_str)
    {
        status["selector"] = json!(sel);
    }
    Ok(json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": m.get("name"), "namespace": m.get("namespace"), "uid": m.get("uid"),
            "resourceVersion": m.get("resourceVersion"), "creationTimestamp": m.get("creationTimestamp"),
        },
        "spec": {"replicas": v.pointer(&paths.spec_replicas).cloned().unwrap_or(json!(0))},
        "status": status,
    }))
}

/// Writes the scale subresource: `change` turns the current Scale into the
/// wanted one; its `spec.replicas` becomes the object's.
async fn write_scale(
    cluster: &Cluster,
    target: &Target,
    name: &str,
    params: &Params,
    change: impl Fn(&Value) -> Result<Value, ApiError>,
) -> Result<Response, ApiError> {
    let def = target.def;
    let paths = def
        .scale
        .as_ref()
        .ok_or_else(|| no_subresource(def, "scale"))?;
    for _ in 0..MAX_RETRIES {
        let current = cluster
            .store
            .get(&key(target, name))
            .ok_or_else(|| ApiError::not_found(&def.qualified(), name))?;
        let wanted = change(&scale_of(def, &current.value)?)?;
        let wanted_rv = rv_of(&wanted)?;
        if wanted_rv.is_some_and(|rv| rv != current.rv) {
            return Err(ApiError::conflict(&def.qualified(), name));
        }
        let replicas = wanted
            .pointer("/spec/replicas")
            .cloned()
            .unwrap_or(json!(0));
        if !replicas
            .as_i64()
            .is_some_and(|r| (0..=i64::from(i32::MAX)).contains(&r))
        {
            return Err(ApiError::invalid(
                "Scale.autoscaling",
                name,
                vec![FieldError::invalid(
                    "spec.replicas",
                    &replicas,
                    "must be greater than or equal to 0",
                )],
            ));
        }
        let mut next = current.value.clone();
        if let Some(slot) = next.pointer_mut(&paths.spec_replicas) {
            *slot = replicas;
        } else {
            return Err(ApiError::internal(
                "the object has no replicas field to scale",
            ));
        }
        let generation = next
            .pointer("/metadata/generation")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        if spec_part(&next) != spec_part(&current.value) {
            meta_mut(&mut next).insert("generation".into(), json!(generation + 1));
        }
        let scale_target = Target {
            subresource: None,
            ..target.clone()
        };
        match commit_update(cluster, &scale_target, name, &current, next, params).await? {
            Ok(w) => {
                let stored: Value = serde_json::from_slice(&w.body).unwrap_or(Value::Null);
                return Ok(json_response(
                    StatusCode::OK,
                    scale_of(def, &stored)?.to_string(),
                ));
            }
            Err(StoreError::Conflict { .. }) if wanted_rv.is_none() => continue,
            Err(e) => return Err(store_error(def, name, e)),
        }
    }
    Err(ApiError::conflict(&def.qualified(), name))
}

/// `DeleteOptions` from a DELETE body.
struct DeleteOptions {
    uid: Option<String>,
    rv: Option<u64>,
    orphan: bool,
}

fn delete_options(body: Option<&Value>, params: &Params) -> Result<DeleteOptions, ApiError> {
    let pre = body.and_then(|b| b.get("preconditions"));
    let policy = body
        .and_then(|b| b.get("propagationPolicy"))
        .and_then(Value::as_str)
        .map(str::to_owned)
        .or_else(|| params.propagation_policy.clone());
    let orphan = match policy.as_deref() {
        None | Some("Background" | "Foreground") => false,
        Some("Orphan") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "propagationPolicy: unsupported value \"{other}\": use Background, Foreground or Orphan"
            )));
        }
    };
    let orphan = orphan
        || body
            .and_then(|b| b.get("orphanDependents"))
            .and_then(Value::as_bool)
            .unwrap_or(false);
    Ok(DeleteOptions {
        uid: pre
            .and_then(|p| p.get("uid"))
            .and_then(Value::as_str)
            .map(str::to_owned),
        rv: pre
            .and_then(|p| p.get("resourceVersion"))
            .and_then(Value::as_str)
            .and_then(|s| s.parse().ok()),
        orphan,
    })
}

/// DELETE of one object. Objects with finalizers are marked with a
/// `deletionTimestamp` and go once their finalizers are removed; dependents
/// (ownerReferences) are removed in the background by the garbage collector,
/// or released when the policy is Orphan.
pub async fn delete(
    cluster: &Cluster,
    target: &Target,
    params: &Params,
    body: Option<Value>,
) -> Result<Response, ApiError> {
    let name = name_of(target)?.to_owned();
    let def = target.def;
    if target.subresource.is_some() {
        return Err(ApiError::method_not_allowed(
            "DELETE is not supported on a subresource",
        ));
    }
    let options = delete_options(body.as_ref(), params)?;
    let current = cluster
        .store
        .get(&key(target, &name))
        .ok_or_else(|| ApiError::not_found(&def.qualified(), &name))?;
    if options
        .uid
        .as_deref()
        .is_some_and(|u| Some(u) != current.uid())
        || options.rv.is_some_and(|rv| rv != current.rv)
    {
        return Err(ApiError::conflict(&def.qualified(), &name));
    }
    if params.dry_run {
        return Ok(json_response(StatusCode::OK, current.json.clone()));
    }
    if options.orphan
        && let Some(uid) = current.uid()
    {
        super::gc::orphan_dependents(cluster, uid).await;
    }
    let has_finalizers = current
        .value
        .pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .is_some_and(|f| !f.is_empty());
    if has_finalizers {
        if current
            .value
            .pointer("/metadata/deletionTimestamp")
            .is_some()
        {
            return Ok(json_response(StatusCode::OK, current.json.clone()));
        }
        let mut next = current.value.clone();
        let m = meta_mut(&mut next);
        m.insert("deletionTimestamp".into(), json!(now()));
        m.insert("deletionGracePeriodSeconds".into(), json!(0));
        let stored = cluster
            .store
            .write(
                key(target, &name),
                Op::Update {
                    value: next,
                    expect_rv: current.rv,
                },
            )
            .await
            .map_err(|e| store_error(def, &name, e))?;
        return Ok(json_response(StatusCode::OK, stored.json.clone()));
    }
    let deleted = cluster
        .store
        .write(
            key(target, &name),
            Op::Delete {
                expect_rv: Some(current.rv),
            },
        )
        .await
        .map_err(|e| store_error(def, &name, e))?;
    Ok(json_response(StatusCode::OK, deleted.json.clone()))
}

/// DELETE of a collection: every selected object.
pub async fn delete_collection(
    cluster: &Cluster,
    target: &Target,
    params: &Params,
    body: Option<Value>,
) -> Result<Response, ApiError> {
    let def = target.def;
    let selection = Selection::parse(def, params)?;
    let (items, _) = cluster.store.list(def.plural, target.namespace.as_deref());
    let mut deleted = Vec::new();
    for item in items.iter().filter(|o| selection.matches(&o.value)) {
        let name = item
            .value
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let ns = item
            .value
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let one = Target {
            namespace: ns,
            name: Some(name),
            ..target.clone()
        };
        match delete(cluster, &one, params, body.clone()).await {
            Ok(_) => deleted.push(item.value.clone()),
            // Someone else deleted it meanwhile: fine for a collection delete.
            Err(e) if e.code == StatusCode::NOT_FOUND => {}
            Err(e) => return Err(e),
        }
    }
    let out = json!({
        "apiVersion": def.api_version(),
        "kind": def.list_kind,
        "metadata": {"resourceVersion": cluster.store.current_rv().to_string()},
        "items": deleted,
    });
    Ok(json_response(StatusCode::OK, out.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_names_keep_the_prefix() {
        let n = generate_name("workflow-demo-");
        assert!(n.starts_with("workflow-demo-") && n.len() == "workflow-demo-".len() + 5);
        assert!(validation::dns_subdomain_error(&n).is_none());
    }

    #[test]
    fn update_keeps_status_and_server_fields_and_bumps_generation() {
        let def = crate::cluster::apiserver::resources::find(
            "game.kruise.io",
            "v1alpha1",
            "gameserversets",
        )
        .unwrap();
        let current = json!({"apiVersion": "game.kruise.io/v1alpha1", "kind": "GameServerSet",
            "metadata": {"name": "m", "namespace": "default", "uid": "u1", "generation": 1, "creationTimestamp": "t", "resourceVersion": "5"},
            "spec": {"replicas": 3}, "status": {"replicas": 3}});
        let incoming = json!({"apiVersion": "game.kruise.io/v1alpha1", "kind": "GameServerSet",
            "metadata": {"name": "m", "uid": "forged", "labels": {"a": "b"}},
            "spec": {"replicas": 4}, "status": {"replicas": 99}});
        let next = merge_update(def, &current, incoming.clone(), None);
        assert_eq!(next["metadata"]["uid"], "u1");
        assert_eq!(next["metadata"]["generation"], 2);
        assert_eq!(next["metadata"]["labels"]["a"], "b");
        assert_eq!(
            next["status"]["replicas"], 3,
            "main writes never change status"
        );
        let status = merge_update(def, &current, incoming, Some("status"));
        assert_eq!(status["status"]["replicas"], 99);
        assert_eq!(
            status["spec"]["replicas"], 3,
            "status writes never change spec"
        );
        assert_eq!(status["metadata"]["generation"], 1);
    }

    #[test]
    fn managed_fields_name_the_applied_fields() {
        let applied = json!({"apiVersion": "v", "kind": "K", "metadata": {"name": "m", "labels": {"a": "b"}}, "spec": {"replicas": 3, "x": [1]}});
        assert_eq!(
            fields_v1(&applied, true),
            json!({"f:metadata": {"f:labels": {"f:a": {}}}, "f:spec": {"f:replicas": {}, "f:x": {}}})
        );
    }
}
