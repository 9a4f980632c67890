//! The verbs on objects: get and list (`read`), create, update and patch
//! (merge, JSON, apply) (`write`), the `scale` subresource (`scale`),
//! delete and deletecollection (`delete`), for the main resource and its
//! `status` and `scale` subresources. Every write builds the complete new
//! object, validates it, and commits it with compare-and-swap on the version
//! it was built from (`commit_update` under `update_loop`), so a failed
//! request never leaves a partial write. This file holds what the verbs share.

mod delete;
mod ownership;
mod read;
mod scale;
mod write;

pub use delete::{delete, delete_collection};
pub use read::{get, list};
pub use write::{create, patch, update};

use std::sync::Arc;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::{Map, Value, json};

use super::Cluster;
use super::request::{FieldValidation, Format, Params, Target};
use super::resources::ResourceDef;
use super::status::{ApiError, FieldError};
use super::validation;
use super::{objectmeta, table};
use crate::cluster::store::{ObjectKey, Op, StoreError, StoredObject};

/// How often a write retries after losing a compare-and-swap race to a
/// concurrent writer (only for writes that did not name a resourceVersion).
const MAX_RETRIES: usize = 64;

/// The current time as Kubernetes writes timestamps.
pub fn now() -> String {
    crate::api::kube_time(jiff::Timestamp::now())
}

/// A JSON response.
pub fn json_response(code: StatusCode, body: impl Into<axum::body::Body>) -> Response {
    (
        code,
        [(header::CONTENT_TYPE, "application/json")],
        body.into(),
    )
        .into_response()
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

pub(in crate::cluster::apiserver) fn meta_mut(v: &mut Value) -> &mut Map<String, Value> {
    if !v.get("metadata").is_some_and(Value::is_object) {
        v["metadata"] = json!({});
    }
    // Just ensured to be an object.
    match v.get_mut("metadata") {
        Some(Value::Object(m)) => m,
        _ => unreachable!("metadata was set to an object above"),
    }
}

/// Moves `metadata.generation` one past `current`'s when the write
/// changes the spec (kube-apiserver's `PrepareForUpdate` strategies).
fn bump_generation(next: &mut Value, current: &Value) {
    if spec_part(next) != spec_part(current) {
        let generation = current
            .pointer("/metadata/generation")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        meta_mut(next).insert("generation".into(), Value::from(generation + 1));
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
fn check_type(def: &ResourceDef, body: &mut Value) -> Result<(), ApiError> {
    // Built-in (core) objects are decoded with the URL's type as the
    // default, so a body without apiVersion and kind gets them (apimachinery
    // runtime/serializer/json `Decode` with the request scope's default
    // GVK); custom resources are decoded unstructured, which requires a
    // kind (runtime/serializer/unstructured `Decode`: "Object 'Kind' is
    // missing").
    if def.group.is_empty()
        && let Some(object) = body.as_object_mut()
    {
        let missing = |k: &str| {
            object
                .get(k)
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
        };
        if missing("kind") && missing("apiVersion") {
            object.insert("kind".into(), Value::from(def.kind));
            object.insert("apiVersion".into(), Value::from(def.api_version()));
        }
    }
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
    if let Some(scale) = &def.scale
        && let Some(error) = validation::scale_replicas_error(object, &scale.spec_replicas)
    {
        findings.invalid.push(error);
    }
    if let Some(why) = validation::dns_subdomain_error(&name) {
        findings
            .invalid
            .insert(0, FieldError::invalid("metadata.name", &json!(name), &why));
    }
    if let Some(m) = object.get("metadata").and_then(Value::as_object) {
        findings.invalid.extend(objectmeta::check(m));
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
    if target.def.group.is_empty() && target.def.kind == "Pod" && target.subresource.is_none() {
        let errors = crate::cluster::apiserver::pods::check_update(&current.value, &next);
        if !errors.is_empty() {
            return Err(ApiError::invalid(&target.def.kind_group(), name, errors));
        }
    }
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

/// The read-modify-write loop every update shares: `build` turns the stored
/// object into the wanted one and says whether the client pinned a
/// resourceVersion; the result is committed with compare-and-swap. A lost
/// race is retried (up to [`MAX_RETRIES`]) unless the version was pinned.
async fn update_loop(
    cluster: &Cluster,
    target: &Target,
    name: &str,
    params: &Params,
    build: impl Fn(&StoredObject) -> Result<(Value, bool), ApiError>,
) -> Result<Written, ApiError> {
    let def = target.def;
    for _ in 0..MAX_RETRIES {
        let current = cluster
            .store
            .get(&key(target, name))
            .ok_or_else(|| ApiError::not_found(&def.qualified(), name))?;
        let (next, pinned) = build(&current)?;
        match commit_update(cluster, target, name, &current, next, params).await? {
            Ok(w) => return Ok(w),
            Err(StoreError::Conflict { .. }) if !pinned => continue,
            Err(e) => return Err(store_error(def, name, e)),
        }
    }
    Err(ApiError::conflict(&def.qualified(), name))
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
