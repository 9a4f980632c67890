//! DELETE of one object (finalizers, preconditions, propagation policy)
//! and of a collection.

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

use super::{Cluster, json_response, key, name_of, store_error};
use crate::cluster::apiserver::gc;
use crate::cluster::apiserver::request::{Params, Target};
use crate::cluster::apiserver::selector::Selection;
use crate::cluster::apiserver::status::ApiError;

/// `DeleteOptions` from a DELETE body.
struct DeleteOptions {
    uid: Option<String>,
    rv: Option<u64>,
    orphan: bool,
    foreground: bool,
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
        foreground: policy.as_deref() == Some("Foreground"),
    })
}

/// DELETE of one object. Objects with finalizers are marked with a
/// `deletionTimestamp` and go once their finalizers are removed; dependents
/// (ownerReferences) are removed by the garbage collector, in the
/// background, or first when the policy is Foreground (the object waits
/// with the `foregroundDeletion` finalizer), or released when it is Orphan.
pub async fn delete(
    cluster: &Cluster,
    target: &Target,
    params: &Params,
    body: Option<Value>,
) -> Result<Response, ApiError> {
    let name = name_of(target)?.to_owned();
    if target.subresource.is_some() {
        return Err(ApiError::method_not_allowed(
            "DELETE is not supported on a subresource",
        ));
    }
    let options = delete_options(body.as_ref(), params)?;
    // Another client's write between the read and the delete is no reason
    // to fail one without preconditions: read again and delete the newer
    // object, as kube-apiserver's store does (apiserver
    // pkg/registry/generic/registry/store.go `Delete`, whose
    // `GuaranteedUpdate` retries on conflict). Only the client's own
    // preconditions give 409.
    let mut attempts = 0;
    loop {
        attempts += 1;
        match delete_once(cluster, target, &name, params, &options).await {
            Err(e)
                if e.code == StatusCode::CONFLICT
                    && options.rv.is_none()
                    && options.uid.is_none()
                    && attempts < RETRIES => {}
            other => return other,
        }
    }
}

/// Attempts at a DELETE that other writers keep racing.
const RETRIES: usize = 64;

async fn delete_once(
    cluster: &Cluster,
    target: &Target,
    name: &str,
    params: &Params,
    options: &DeleteOptions,
) -> Result<Response, ApiError> {
    let def = target.def;
    let current = cluster
        .store
        .get(&key(target, name))
        .ok_or_else(|| ApiError::not_found(&def.qualified(), name))?;
    if options
        .uid
        .as_deref()
        .is_some_and(|u| Some(u) != current.uid())
        || options.rv.is_some_and(|rv| rv != current.rv)
    {
        return Err(ApiError::conflict(&def.qualified(), name));
    }
    if params.dry_run {
        return Ok(json_response(StatusCode::OK, current.json.clone()));
    }
    if options.orphan
        && let Some(uid) = current.uid()
    {
        crate::cluster::apiserver::gc::orphan_dependents(cluster, uid).await;
    }
    let foreground = options.foreground && !options.orphan;
    let Some(op) = gc::deletion_op(&current, foreground) else {
        // Already terminating as asked: nothing to write.
        return Ok(json_response(StatusCode::OK, current.json.clone()));
    };
    let written = cluster
        .store
        .write(key(target, name), op)
        .await
        .map_err(|e| store_error(def, name, e))?;
    Ok(json_response(StatusCode::OK, written.json.clone()))
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
    let mut first_error = None;
    for item in items.iter().filter(|o| selection.matches(&o.value)) {
        let one = Target {
            namespace: Some(item.namespace().to_owned()),
            name: Some(item.name().to_owned()),
            ..target.clone()
        };
        match delete(cluster, &one, params, body.clone()).await {
            Ok(_) => deleted.push(item.value.clone()),
            // Someone else deleted it meanwhile: fine for a collection delete.
            Err(e) if e.code == StatusCode::NOT_FOUND => {}
            // Every other object is still tried; the first error is the
            // answer (store.go `DeleteCollection` collects errors and
            // returns after the whole list).
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    let out = json!({
        "apiVersion": def.api_version(),
        "kind": def.list_kind,
        "metadata": {"resourceVersion": cluster.store.current_rv().to_string()},
        "items": deleted,
    });
    Ok(json_response(StatusCode::OK, out.to_string()))
}
