//! POST (create), PUT (update) and PATCH (merge, JSON, server-side apply):
//! building the new object from the client's body and the stored one.

use axum::http::StatusCode;
use axum::response::Response;
use bytes::Bytes;
use serde_json::{Value, json};

use super::ownership;
use super::scale::write_scale;
use super::{
    Cluster, Written, bump_generation, check_subresource, check_type, key, meta, meta_mut, name_of,
    now, render_one, rv_of, store_error, update_loop, validate, with_warnings,
};
use crate::cluster::apiserver::request::{Format, Params, PatchType, Target};
use crate::cluster::apiserver::resources::ResourceDef;
use crate::cluster::apiserver::status::{ApiError, FieldError};
use crate::cluster::apiserver::validation;
use crate::cluster::store::Op;

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
    let object = prepare_create(target, body)?;
    store_new(cluster, target, object, false, params, format).await
}

/// The end of every create (POST, or an apply of a missing object, whose
/// `managedFields` the apply already set): validates the prepared `object`,
/// records a plain create's field manager, and stores it, or only renders it
/// in a dry run.
async fn store_new(
    cluster: &Cluster,
    target: &Target,
    mut object: Value,
    applied: bool,
    params: &Params,
    format: Format,
) -> Result<Response, ApiError> {
    let warnings = validate(target.def, &mut object, params.field_validation)?;
    if !applied && let Some(manager) = &params.field_manager {
        ownership::record_update(target.def, &json!({}), &mut object, (manager, None));
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

/// An updated object as a 200 response, with its warnings.
fn updated(target: &Target, format: Format, written: Written) -> Response {
    with_warnings(
        render_one(target.def, format, StatusCode::OK, written.body),
        &written.warnings,
    )
}

/// PUT: replace the object, its status, or its scale.
pub async fn update(
    cluster: &Cluster,
    target: &Target,
    params: &Params,
    mut body: Value,
    format: Format,
) -> Result<Response, ApiError> {
    let name = name_of(target)?.to_owned();
    let def = target.def;
    let sub = target.subresource.as_deref();
    check_subresource(def, sub)?;
    if sub == Some("scale") {
        return write_scale(cluster, target, &name, params, |_| Ok(body.clone())).await;
    }
    check_type(def, &mut body)?;
    if let Some(body_name) = body.pointer("/metadata/name").and_then(Value::as_str)
        && body_name != name
    {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({body_name}) does not match the name on the URL ({name})"
        )));
    }
    let wanted_rv = rv_of(&body)?;
    let written = update_loop(cluster, target, &name, params, |current| {
        if wanted_rv.is_some_and(|rv| rv != current.rv) {
            return Err(ApiError::conflict(&def.qualified(), &name));
        }
        let mut next = merge_update(def, &current.value, body.clone(), sub);
        if let Some(manager) = &params.field_manager {
            ownership::record_update(def, &current.value, &mut next, (manager, sub));
        }
        Ok((next, wanted_rv.is_some()))
    })
    .await?;
    Ok(updated(target, format, written))
}

/// Applies a merge or JSON patch to a document (an apply patch as a merge:
/// on the scale subresource, which keeps no field owners).
fn apply_patch(doc: &Value, patch_type: PatchType, patch: &Value) -> Result<Value, ApiError> {
    let mut out = doc.clone();
    match patch_type {
        PatchType::Merge | PatchType::Apply => {
            if !patch.is_object() {
                return Err(ApiError::bad_request("the patch must be a JSON object"));
            }
            json_patch::merge(&mut out, patch);
        }
        PatchType::Strategic => {
            out = crate::cluster::apiserver::strategic::merge(doc, patch).map_err(|e| {
                ApiError::bad_request(format!("the strategic merge patch is malformed: {e}"))
            })?;
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

/// Whether a patch sets resourceVersion, pinning the version it applies to
/// (then a lost race is a conflict, not a retry).
fn pins_version(patch_type: PatchType, body: &Value) -> Result<bool, ApiError> {
    Ok(match patch_type {
        PatchType::Merge | PatchType::Apply | PatchType::Strategic => rv_of(body)?.is_some(),
        PatchType::Json => body.as_array().is_some_and(|ops| {
            ops.iter()
                .any(|op| op["path"] == "/metadata/resourceVersion")
        }),
    })
}

/// PATCH: merge, JSON or server-side apply, on the object, status or scale.
pub async fn patch(
    cluster: &Cluster,
    target: &Target,
    params: &Params,
    patch_type: PatchType,
    mut body: Value,
    format: Format,
) -> Result<Response, ApiError> {
    let name = name_of(target)?.to_owned();
    let def = target.def;
    let sub = target.subresource.as_deref();
    check_subresource(def, sub)?;
    let manager = params.field_manager.as_deref();
    if patch_type == PatchType::Apply && manager.is_none() {
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
        check_type(def, &mut body)?;
    }
    let pinned = pins_version(patch_type, &body)?;
    let written = update_loop(cluster, target, &name, params, |current| {
        let patched = match (patch_type, manager) {
            (PatchType::Apply, Some(manager)) => {
                ownership::apply(def, &current.value, &body, (manager, sub), params.force)?
            }
            _ => apply_patch(&current.value, patch_type, &body)?,
        };
        if rv_of(&patched)?.is_some_and(|rv| rv != current.rv) {
            return Err(ApiError::conflict(&def.qualified(), &name));
        }
        let owners = patched.pointer("/metadata/managedFields").cloned();
        let mut next = merge_update(def, &current.value, patched, sub);
        match (patch_type, manager) {
            // The apply set the owners (a status write keeps no other metadata).
            (PatchType::Apply, _) => ownership::set_owners(&mut next, owners),
            (_, Some(manager)) => {
                ownership::record_update(def, &current.value, &mut next, (manager, sub));
            }
            (_, None) => {}
        }
        Ok((next, pinned))
    })
    .await;
    match written {
        Ok(w) => Ok(updated(target, format, w)),
        // Server-side apply of a missing object creates it.
        Err(e)
            if e.code == StatusCode::NOT_FOUND
                && patch_type == PatchType::Apply
                && sub.is_none() =>
        {
            apply_create(cluster, target, &name, params, body, format).await
        }
        Err(e) => Err(e),
    }
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
    let manager = params.field_manager.as_deref().unwrap_or_default();
    let object = ownership::apply(
        target.def,
        &json!({}),
        &object,
        (manager, None),
        params.force,
    )?;
    let object = prepare_create(target, object)?;
    store_new(cluster, target, object, true, params, format).await
}

/// Builds a new object for creation from a client's body.
fn prepare_create(target: &Target, mut body: Value) -> Result<Value, ApiError> {
    let def = target.def;
    check_type(def, &mut body)?;
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
    if def.group.is_empty() && def.kind == "Pod" {
        crate::cluster::apiserver::pods::prepare_create(&mut body);
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

/// Gives `next` the status of `from` (none when `from` has none).
fn copy_status(next: &mut Value, from: &Value) {
    match from.get("status") {
        Some(s) => next["status"] = s.clone(),
        None => {
            if let Some(o) = next.as_object_mut() {
                o.remove("status");
            }
        }
    }
}

/// Builds the object an update of `current` with `incoming` leads to: on the
/// main resource everything but status and server-owned metadata; on
/// `status` only status.
fn merge_update(def: &ResourceDef, current: &Value, incoming: Value, sub: Option<&str>) -> Value {
    if sub == Some("status") {
        let mut next = current.clone();
        copy_status(&mut next, &incoming);
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
    // A write without managedFields keeps the stored ones; an empty list
    // clears them.
    if !m.contains_key("managedFields")
        && let Some(mf) = cur_meta.get("managedFields")
    {
        m.insert("managedFields".into(), mf.clone());
    }
    if m.get("managedFields")
        .and_then(Value::as_array)
        .is_some_and(Vec::is_empty)
    {
        m.remove("managedFields");
    }
    m.remove("resourceVersion");
    if def.status_subresource {
        copy_status(&mut next, current);
    }
    for field in ["apiVersion", "kind"] {
        next[field] = current[field].clone();
    }
    bump_generation(&mut next, current);
    next
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
}
