//! The `scale` subresource: the `autoscaling/v1` Scale view of an object
//! and writes through it.
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

use super::{
    Cluster, bump_generation, json_response, meta, no_subresource, ownership, rv_of, update_loop,
};
use crate::cluster::apiserver::request::{Params, Target};
use crate::cluster::apiserver::resources::ResourceDef;
use crate::cluster::apiserver::status::{ApiError, FieldError};

/// The `autoscaling/v1` Scale of an object.
pub(super) fn scale_of(def: &ResourceDef, v: &Value) -> Result<Value, ApiError> {
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
pub(super) async fn write_scale(
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
    let written = update_loop(cluster, target, name, params, |current| {
        let wanted = change(&scale_of(def, &current.value)?)?;
        let wanted_rv = rv_of(&wanted)?;
        if wanted_rv.is_some_and(|rv| rv != current.rv) {
            return Err(ApiError::conflict(&def.qualified(), name));
        }
        let replicas = replicas_of(&wanted, name)?;
        let mut next = current.value.clone();
        let Some(slot) = next.pointer_mut(&paths.spec_replicas) else {
            return Err(ApiError::internal(
                "the object has no replicas field to scale",
            ));
        };
        *slot = replicas;
        bump_generation(&mut next, &current.value);
        if let Some(manager) = &params.field_manager {
            ownership::record_update(def, &current.value, &mut next, (manager, Some("scale")));
        }
        Ok((next, wanted_rv.is_some()))
    })
    .await?;
    let stored: Value = serde_json::from_slice(&written.body).unwrap_or(Value::Null);
    Ok(json_response(
        StatusCode::OK,
        scale_of(def, &stored)?.to_string(),
    ))
}

/// The wanted Scale's `spec.replicas`, checked as kube-apiserver does.
fn replicas_of(wanted: &Value, name: &str) -> Result<Value, ApiError> {
    let replicas = wanted
        .pointer("/spec/replicas")
        .cloned()
        .unwrap_or(json!(0));
    if replicas
        .as_i64()
        .is_some_and(|r| (0..=i64::from(i32::MAX)).contains(&r))
    {
        return Ok(replicas);
    }
    Err(ApiError::invalid(
        "Scale.autoscaling",
        name,
        vec![FieldError::invalid(
            "spec.replicas",
            &replicas,
            "must be greater than or equal to 0",
        )],
    ))
}
