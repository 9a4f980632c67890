//! Reading `plugin.yaml` as Argo does: strict decoding of the
//! `ExecutorPlugin` (unknown fields are errors) and Argo's
//! `Sidecar.Validate`.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::ExecutorPlugin;
use super::container::{self, object};

/// Checks a parsed manifest: Argo's strict decoding and `Validate`.
pub fn parse(manifest: &Value) -> Result<ExecutorPlugin, String> {
    let top = object(manifest, "the manifest")?;
    only_keys(top, "", &["apiVersion", "kind", "metadata", "spec"])?;
    let api_version = string_field(top, "apiVersion", "apiVersion")?;
    let kind = string_field(top, "kind", "kind")?;
    if kind != "ExecutorPlugin" || api_version != "argoproj.io/v1alpha1" {
        return Err(format!(
            "this is {api_version:?} {kind:?}; a plugin manifest is apiVersion: argoproj.io/v1alpha1, kind: ExecutorPlugin"
        ));
    }
    let metadata = object(top.get("metadata").unwrap_or(&Value::Null), "metadata")?;
    only_keys(
        metadata,
        "metadata.",
        &["name", "namespace", "labels", "annotations"],
    )?;
    let name = string_field(metadata, "name", "metadata.name")?;
    if name.is_empty() {
        return Err(
            "metadata.name is empty: name the plugin (the key templates use under `plugin:`)"
                .into(),
        );
    }
    let namespace = match metadata.get("namespace") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.is_empty() => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err("metadata.namespace must be a string".into()),
    };
    let labels = string_map(metadata.get("labels"), "metadata.labels")?;
    let annotations = string_map(metadata.get("annotations"), "metadata.annotations")?;
    let spec = object(top.get("spec").unwrap_or(&Value::Null), "spec")?;
    only_keys(spec, "spec.", &["sidecar"])?;
    let sidecar = object(spec.get("sidecar").unwrap_or(&Value::Null), "spec.sidecar")?;
    only_keys(
        sidecar,
        "spec.sidecar.",
        &["automountServiceAccountToken", "container"],
    )?;
    let automount = match sidecar.get("automountServiceAccountToken") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            return Err("spec.sidecar.automountServiceAccountToken must be true or false".into());
        }
    };
    let raw = sidecar.get("container").unwrap_or(&Value::Null);
    let container = container::read(raw)?;
    validate(raw, &container)?;
    Ok(ExecutorPlugin {
        kind,
        name,
        namespace,
        labels,
        annotations,
        automount_service_account_token: automount,
        container: Value::Object(container),
    })
}

/// Argo's `Sidecar.Validate`, on the manifest's container (`raw`: a map
/// given empty counts as given) and on what Go decoded from it.
fn validate(raw: &Value, container: &Map<String, Value>) -> Result<(), String> {
    let has = |k: &str| container.get(k).is_some_and(|v| !v.is_null());
    let given = |k: &str| raw["resources"].get(k).is_some_and(|v| !v.is_null());
    if container
        .get("ports")
        .and_then(Value::as_array)
        .is_none_or(Vec::is_empty)
    {
        return Err("sidecar is invalid: at least one port is mandatory (spec.sidecar.container.ports: [{containerPort: N}]; the agent calls the first)".into());
    }
    if !given("requests") {
        return Err("sidecar is invalid: resources requests are mandatory (spec.sidecar.container.resources.requests: {cpu: ..., memory: ...})".into());
    }
    if !given("limits") {
        return Err("sidecar is invalid: resources limits are mandatory (spec.sidecar.container.resources.limits: {cpu: ..., memory: ...})".into());
    }
    if !has("securityContext") {
        return Err("sidecar is invalid: security context is mandatory (spec.sidecar.container.securityContext: {runAsNonRoot: true, runAsUser: N})".into());
    }
    Ok(())
}

fn only_keys(map: &Map<String, Value>, prefix: &str, known: &[&str]) -> Result<(), String> {
    match map.keys().find(|k| !known.contains(&k.as_str())) {
        Some(k) => Err(format!(
            "unknown field {prefix}{k}: Argo reads the manifest strictly; the fields here are {}",
            known.join(", ")
        )),
        None => Ok(()),
    }
}

fn string_field(map: &Map<String, Value>, key: &str, path: &str) -> Result<String, String> {
    match map.get(key) {
        Some(Value::String(s)) => Ok(s.clone()),
        None | Some(Value::Null) => Err(format!("{path} is missing")),
        Some(_) => Err(format!("{path} must be a string")),
    }
}

fn string_map(v: Option<&Value>, path: &str) -> Result<BTreeMap<String, String>, String> {
    let Some(v) = v.filter(|v| !v.is_null()) else {
        return Ok(BTreeMap::new());
    };
    let map = object(v, path)?;
    map.iter()
        .map(|(k, v)| match v {
            Value::String(s) => Ok((k.clone(), s.clone())),
            _ => Err(format!(
                "{path}.{k} must be a string (quote it, e.g. \"true\" or \"1\")"
            )),
        })
        .collect()
}
