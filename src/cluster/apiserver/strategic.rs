//! Strategic merge patch, for the built-in types the server keeps (Pods and
//! Events), as apimachinery's `strategicpatch.StrategicMergePatch` applies
//! it: maps merge field by field and `null` removes one; a list with a
//! patch merge key (the `patchMergeKey` tags of k8s.io/api core/v1, e.g.
//! containers by `name`) merges item by item, an item with `$patch:
//! delete` removes its match; `finalizers` merges as a set; any other list
//! is replaced. Directives: `$patch: replace|delete` on a map,
//! `$retainKeys`, `$deleteFromPrimitiveList/LIST` and
//! `$setElementOrder/LIST` (the order is taken from it). Custom resources
//! have no strategic merge: kube-apiserver answers 415, and so does this
//! server.

use serde_json::{Map, Value};

/// The merge key of each keyed list of core/v1 (field name, key).
const MERGE_KEYS: [(&str, &str); 14] = [
    ("containers", "name"),
    ("initContainers", "name"),
    ("ephemeralContainers", "name"),
    ("volumes", "name"),
    ("env", "name"),
    ("ports", "containerPort"),
    ("volumeMounts", "mountPath"),
    ("volumeDevices", "devicePath"),
    ("imagePullSecrets", "name"),
    ("hostAliases", "ip"),
    ("conditions", "type"),
    ("ownerReferences", "uid"),
    ("podIPs", "ip"),
    ("resourceClaims", "name"),
];

/// Lists of scalars merged as sets (`patchStrategy:"merge"` on a list of
/// strings).
const SET_LISTS: [&str; 1] = ["finalizers"];

/// Applies `patch` to `doc`; `Err` names what is malformed.
pub fn merge(doc: &Value, patch: &Value) -> Result<Value, String> {
    let Value::Object(p) = patch else {
        return Err("a strategic merge patch must be a JSON object".into());
    };
    let mut out = doc.clone();
    merge_map(&mut out, p)?;
    Ok(out)
}

fn merge_key(field: &str) -> Option<&'static str> {
    MERGE_KEYS
        .iter()
        .find(|(f, _)| *f == field)
        .map(|(_, k)| *k)
}

/// A patch value without its directives, for where it replaces.
fn clean(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| !k.starts_with('$'))
                .map(|(k, v)| (k.clone(), clean(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(clean).collect()),
        other => other.clone(),
    }
}

fn merge_map(target: &mut Value, patch: &Map<String, Value>) -> Result<(), String> {
    match patch.get("$patch").and_then(Value::as_str) {
        Some("replace") => {
            *target = clean(&Value::Object(patch.clone()));
            return Ok(());
        }
        Some("delete") => {
            *target = Value::Object(Map::new());
            return Ok(());
        }
        Some("merge") | None => {}
        Some(other) => return Err(format!("unknown patch type: {other}")),
    }
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Value::Object(t) = target else {
        return Ok(());
    };
    if let Some(keep) = patch.get("$retainKeys").and_then(Value::as_array) {
        t.retain(|k, _| keep.iter().any(|r| r == k) || patch.contains_key(k));
    }
    for (k, v) in patch {
        if let Some(list) = k.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(Value::Array(items)), Value::Array(gone)) = (t.get_mut(list), v) {
                items.retain(|i| !gone.contains(i));
            }
            continue;
        }
        if k.starts_with('$') {
            continue;
        }
        match v {
            Value::Null => {
                t.remove(k);
            }
            Value::Object(p) => merge_map(t.entry(k.clone()).or_insert(Value::Null), p)?,
            Value::Array(items) => {
                let merged = merge_list(k, t.get(k), items)?;
                t.insert(k.clone(), merged);
            }
            other => {
                t.insert(k.clone(), other.clone());
            }
        }
    }
    for (k, order) in patch {
        if let (Some(list), Value::Array(order)) = (k.strip_prefix("$setElementOrder/"), order)
            && let Some(Value::Array(items)) = t.get_mut(list)
        {
            reorder(items, order, merge_key(list));
        }
    }
    Ok(())
}

fn merge_list(field: &str, current: Option<&Value>, patch: &[Value]) -> Result<Value, String> {
    let mut items = current
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if SET_LISTS.contains(&field) {
        for p in patch {
            if !items.contains(p) {
                items.push(p.clone());
            }
        }
        return Ok(Value::Array(items));
    }
    let Some(key) = merge_key(field).filter(|_| patch.iter().all(Value::is_object)) else {
        return Ok(clean(&Value::Array(patch.to_vec())));
    };
    for p in patch {
        let Some(id) = p.get(key) else {
            return Err(format!(
                "map: {p} does not contain declared merge key: {key}"
            ));
        };
        let at = items.iter().position(|i| i.get(key) == Some(id));
        match (p.get("$patch").and_then(Value::as_str), at) {
            (Some("delete"), Some(i)) => {
                items.remove(i);
            }
            (Some("delete"), None) => {}
            (_, Some(i)) => {
                if let Value::Object(pm) = p {
                    merge_map(&mut items[i], pm)?;
                }
            }
            (_, None) => items.push(clean(p)),
        }
    }
    Ok(Value::Array(items))
}

/// Orders `items` as `order` lists them (by merge key, or by value);
/// items it does not name keep their place after those it does.
fn reorder(items: &mut [Value], order: &[Value], key: Option<&str>) {
    let rank = |item: &Value| {
        order
            .iter()
            .position(|o| match key {
                Some(k) => o.get(k).is_some() && o.get(k) == item.get(k),
                None => o == item,
            })
            .unwrap_or(usize::MAX)
    };
    items.sort_by_key(rank);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod() -> Value {
        json!({"metadata": {"labels": {"a": "1"}, "finalizers": ["x"]},
            "spec": {"containers": [
                {"name": "game", "image": "mc:1", "env": [{"name": "A", "value": "1"}]},
                {"name": "sidecar", "image": "log:1"}]}})
    }

    /// What `kubectl set image`, `kubectl patch` and client-side apply send.
    #[test]
    fn keyed_lists_merge_by_key_and_directives_apply() {
        let set_image = merge(
            &pod(),
            &json!({"spec": {"containers": [{"name": "game", "image": "mc:2"}]}}),
        )
        .expect("merge");
        assert_eq!(set_image["spec"]["containers"][0]["image"], "mc:2");
        assert_eq!(set_image["spec"]["containers"][0]["env"][0]["value"], "1");
        assert_eq!(set_image["spec"]["containers"][1]["image"], "log:1");
        let removed = merge(
            &pod(),
            &json!({"spec": {"containers": [{"name": "sidecar", "$patch": "delete"}]}}),
        )
        .expect("merge");
        assert_eq!(
            removed["spec"]["containers"].as_array().map(Vec::len),
            Some(1)
        );
        let labels = merge(
            &pod(),
            &json!({"metadata": {"labels": {"a": null, "b": "2"}, "finalizers": ["y"]}}),
        )
        .expect("merge");
        assert_eq!(labels["metadata"]["labels"], json!({"b": "2"}));
        assert_eq!(labels["metadata"]["finalizers"], json!(["x", "y"]));
        let dropped = merge(
            &pod(),
            &json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["x"]}}),
        )
        .expect("merge");
        assert_eq!(dropped["metadata"]["finalizers"], json!([]));
        let ordered = merge(&pod(), &json!({"spec": {"$setElementOrder/containers": [{"name": "sidecar"}, {"name": "game"}]}}))
            .expect("merge");
        assert_eq!(ordered["spec"]["containers"][0]["name"], "sidecar");
        let replaced = merge(
            &pod(),
            &json!({"spec": {"$patch": "replace", "containers": []}}),
        )
        .expect("merge");
        assert_eq!(replaced["spec"], json!({"containers": []}));
        assert!(merge(&pod(), &json!({"spec": {"containers": [{"image": "x"}]}})).is_err());
    }
}
