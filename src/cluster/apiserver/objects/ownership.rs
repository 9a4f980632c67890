//! Field ownership in `metadata.managedFields`, as kube-apiserver keeps it
//! (structured-merge-diff `merge/update.go`, `Updater.Apply` and
//! `Updater.Update`):
//! - a server-side apply owns exactly the fields it sends; a field another
//!   manager owns and the apply would change is a conflict (409) unless the
//!   apply is forced, which takes the field over; a field the manager applied
//!   before, no longer applies and nobody else owns is removed;
//! - any other write (create, PUT, merge or JSON patch) takes the fields it
//!   changes from every other manager, and owns them under `Update`.
//!
//! Lists are atomic (a list is one field), as structured-merge-diff treats
//! every list a schema does not declare `x-kubernetes-list-type: map` or
//! `set`; the README's known differences say so.

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

use super::{meta_mut, now};
use crate::cluster::apiserver::resources::ResourceDef;
use crate::cluster::apiserver::status::ApiError;

/// A field: the names from the object's root.
type Path = Vec<String>;

/// A set of fields, each a leaf: a scalar, a list, or an empty map.
type FieldSet = BTreeSet<Path>;

/// The metadata fields an owner can hold; the rest are the server's.
const OWNED_METADATA: [&str; 4] = ["labels", "annotations", "finalizers", "ownerReferences"];

/// One `managedFields` entry.
struct Entry {
    manager: String,
    operation: String,
    subresource: Option<String>,
    /// The entry as stored: apiVersion and time stay as they were.
    raw: Value,
    fields: FieldSet,
}

impl Entry {
    fn is(&self, manager: &str, operation: &str, subresource: Option<&str>) -> bool {
        self.manager == manager
            && self.operation == operation
            && self.subresource.as_deref() == subresource
    }

    /// How kube-apiserver names the manager in a conflict
    /// (apimachinery `pkg/util/managedfields/internal/conflict.go` `printManager`).
    fn describe(&self) -> String {
        let mut out = format!("{:?}", self.manager);
        if let Some(sub) = &self.subresource {
            out.push_str(&format!(" with subresource {sub:?}"));
        }
        if self.operation == "Update" {
            out.push_str(&format!(
                " using {}",
                self.raw["apiVersion"].as_str().unwrap_or("")
            ));
            if let Some(time) = self.raw["time"].as_str() {
                out.push_str(&format!(" at {time}"));
            }
        }
        out
    }
}

/// The fields a value sets under `prefix`: one per leaf (nulls set nothing).
fn leaves(value: &Value, prefix: &mut Path, out: &mut FieldSet) {
    match value {
        Value::Null => {}
        Value::Object(m) if !m.is_empty() => {
            for (k, v) in m {
                prefix.push(k.clone());
                leaves(v, prefix, out);
                prefix.pop();
            }
        }
        _ => {
            out.insert(prefix.clone());
        }
    }
}

/// The fields of an object a write to `sub` can own: on the object,
/// everything but apiVersion, kind, status and the server's metadata; on
/// `status`, only status (kube-apiserver's reset fields of each).
fn owned_fields(object: &Value, sub: Option<&str>) -> FieldSet {
    let mut out = FieldSet::new();
    let Some(m) = object.as_object() else {
        return out;
    };
    if sub == Some("status") {
        if let Some(v) = m.get("status") {
            leaves(v, &mut vec!["status".into()], &mut out);
        }
        return out;
    }
    for (k, v) in m {
        match k.as_str() {
            "apiVersion" | "kind" | "status" => {}
            "metadata" => {
                for field in OWNED_METADATA {
                    if let Some(v) = v.get(field) {
                        leaves(v, &mut vec!["metadata".into(), field.into()], &mut out);
                    }
                }
            }
            _ => leaves(v, &mut vec![k.clone()], &mut out),
        }
    }
    out
}

/// The value at a field, if the object has it.
fn get<'a>(object: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(object, |v, k| v.get(k.as_str()))
}

/// Removes a field, and then every map it leaves empty (structured-merge-diff
/// leaves them null, which a structural schema prunes).
fn remove_field(object: &mut Value, path: &[String]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    if let Some(Value::Object(m)) = parents
        .iter()
        .try_fold(&mut *object, |v, k| v.get_mut(k.as_str()))
    {
        m.remove(last);
        if m.is_empty() {
            remove_field(object, parents);
        }
    }
}

/// The fields `new` sets differently from `old` (modified or added), and the
/// fields `old` sets that `new` no longer has (structured-merge-diff
/// `Compare`).
fn compare(old: &Value, new: &Value, sub: Option<&str>) -> (FieldSet, FieldSet) {
    let before = owned_fields(old, sub);
    let after = owned_fields(new, sub);
    let changed = after
        .iter()
        .filter(|p| get(old, p) != get(new, p))
        .cloned()
        .collect();
    let removed = before.difference(&after).cloned().collect();
    (changed, removed)
}

/// A `fieldsV1` document: `f:NAME` per level, `{}` at each leaf.
fn to_fields_v1(fields: &FieldSet) -> Value {
    let mut root = Map::new();
    for path in fields {
        let mut node = &mut root;
        for k in path {
            let child = node
                .entry(format!("f:{k}"))
                .or_insert_with(|| Value::Object(Map::new()));
            let Value::Object(m) = child else { break };
            node = m;
        }
    }
    Value::Object(root)
}

/// The fields a `fieldsV1` document names. A list item (`k:`, `v:`, `i:`),
/// which other writers may have recorded, counts as its whole list.
fn from_fields_v1(doc: &Value, prefix: &mut Path, out: &mut FieldSet) {
    let Some(m) = doc.as_object() else { return };
    let mut leaf = m.is_empty() || m.contains_key(".");
    for (k, v) in m {
        if let Some(name) = k.strip_prefix("f:") {
            prefix.push(name.to_owned());
            from_fields_v1(v, prefix, out);
            prefix.pop();
        } else if k != "." {
            leaf = true;
        }
    }
    if leaf && !prefix.is_empty() {
        out.insert(prefix.clone());
    }
}

fn entries(object: &Value) -> Vec<Entry> {
    object
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|raw| {
            let text = |k: &str| raw[k].as_str().unwrap_or("").to_owned();
            let mut fields = FieldSet::new();
            from_fields_v1(&raw["fieldsV1"], &mut Vec::new(), &mut fields);
            Entry {
                manager: text("manager"),
                operation: text("operation"),
                subresource: raw["subresource"].as_str().map(str::to_owned),
                raw: raw.clone(),
                fields,
            }
        })
        .collect()
}

/// Stores `entries` in the object, dropping those that own nothing (an
/// empty list clears them, as a client's empty `managedFields` does).
fn store_entries(object: &mut Value, entries: Vec<Entry>) {
    let list: Vec<Value> = entries
        .into_iter()
        .filter(|e| !e.fields.is_empty())
        .map(|mut e| {
            e.raw["fieldsType"] = json!("FieldsV1");
            e.raw["fieldsV1"] = to_fields_v1(&e.fields);
            e.raw
        })
        .collect();
    meta_mut(object).insert("managedFields".into(), Value::Array(list));
}

/// Sets an object's `managedFields` (none when `owners` is none or empty).
pub(super) fn set_owners(object: &mut Value, owners: Option<Value>) {
    let m = meta_mut(object);
    match owners {
        Some(list) if list.as_array().is_some_and(|l| !l.is_empty()) => {
            m.insert("managedFields".into(), list);
        }
        _ => {
            m.remove("managedFields");
        }
    }
}

/// A fresh entry for a write by `manager` now.
fn new_entry(def: &ResourceDef, manager: &str, operation: &str, sub: Option<&str>) -> Entry {
    let mut raw = json!({
        "manager": manager,
        "operation": operation,
        "apiVersion": def.api_version(),
        "time": now(),
    });
    if let Some(sub) = sub {
        raw["subresource"] = json!(sub);
    }
    Entry {
        manager: manager.to_owned(),
        operation: operation.to_owned(),
        subresource: sub.map(str::to_owned),
        raw,
        fields: FieldSet::new(),
    }
}

/// The entry of `manager` for `operation`, taken out of `list` (a new one
/// when it has none); its time becomes now.
fn take_entry(
    list: &mut Vec<Entry>,
    def: &ResourceDef,
    (manager, operation, sub): (&str, &str, Option<&str>),
) -> Entry {
    match list.iter().position(|e| e.is(manager, operation, sub)) {
        Some(i) => {
            let mut e = list.remove(i);
            e.raw["time"] = json!(now());
            e.raw["apiVersion"] = json!(def.api_version());
            e
        }
        None => new_entry(def, manager, operation, sub),
    }
}

/// Merges an applied configuration into an object: maps field by field,
/// everything else (lists included) replaced; a null removes the field.
fn merge_config(object: &mut Value, config: &Value) {
    match (object, config) {
        (Value::Object(o), Value::Object(c)) => {
            for (k, v) in c {
                if v.is_null() {
                    o.remove(k);
                } else if v.is_object()
                    && let Some(existing) = o.get_mut(k).filter(|e| e.is_object())
                {
                    merge_config(existing, v);
                } else {
                    o.insert(k.clone(), v.clone());
                }
            }
        }
        (object, config) => *object = config.clone(),
    }
}

/// The path as kube-apiserver prints it: `.spec.replicas`.
fn dotted(path: &[String]) -> String {
    path.iter().map(|k| format!(".{k}")).collect()
}

/// The 409 of an apply that would change fields other managers own
/// (apimachinery `pkg/util/managedfields/internal/conflict.go`
/// `NewConflictError`).
fn conflict_error(conflicts: &[(String, Path)]) -> ApiError {
    let message = match conflicts {
        [(manager, path)] => format!(
            "Apply failed with 1 conflict: conflict with {manager}: {}",
            dotted(path)
        ),
        _ => {
            let mut managers: Vec<&String> = conflicts.iter().map(|(m, _)| m).collect();
            managers.sort();
            managers.dedup();
            let mut lines = Vec::new();
            for manager in managers {
                lines.push(format!("conflicts with {manager}:"));
                for (_, path) in conflicts.iter().filter(|(m, _)| m == manager) {
                    lines.push(format!("- {}", dotted(path)));
                }
            }
            format!(
                "Apply failed with {} conflicts: {}",
                conflicts.len(),
                lines.join("\n")
            )
        }
    };
    let causes: Vec<Value> = conflicts
        .iter()
        .map(|(manager, path)| {
            json!({"type": "FieldManagerConflict", "message": format!("conflict with {manager}"), "field": dotted(path)})
        })
        .collect();
    ApiError::apply_conflict(message, causes)
}

/// Who writes: the field manager, and the subresource written (`status`).
pub(super) type Writer<'a> = (&'a str, Option<&'a str>);

/// A server-side apply of `config` by `writer` to `current` (an empty
/// object when the apply creates it): the object it leads to, with its
/// `managedFields`, or the 409 that names each conflicting field.
pub(super) fn apply(
    def: &ResourceDef,
    current: &Value,
    config: &Value,
    (manager, sub): Writer<'_>,
    force: bool,
) -> Result<Value, ApiError> {
    let mut others = entries(current);
    let mut own = take_entry(&mut others, def, (manager, "Apply", sub));
    let last = std::mem::replace(&mut own.fields, owned_fields(config, sub));
    let mut next = current.clone();
    merge_config(&mut next, config);
    // Fields this manager stopped applying, that nobody else owns, go.
    for path in last.difference(&own.fields) {
        if !others.iter().any(|e| e.fields.contains(path)) {
            remove_field(&mut next, path);
        }
    }
    let (changed, removed) = compare(current, &next, sub);
    let conflicts: Vec<(String, Path)> = others
        .iter()
        .flat_map(|e| {
            e.fields
                .intersection(&changed)
                .map(|p| (e.describe(), p.clone()))
        })
        .collect();
    if !force && !conflicts.is_empty() {
        return Err(conflict_error(&conflicts));
    }
    for e in &mut others {
        e.fields
            .retain(|p| !changed.contains(p) && !removed.contains(p));
    }
    others.push(own);
    store_entries(&mut next, others);
    Ok(next)
}

/// Any other write by `writer`, from `current` (an empty object for a
/// create) to `next`: `next`'s `managedFields` give the writer the fields it
/// changed, taken from every other manager.
pub(super) fn record_update(
    def: &ResourceDef,
    current: &Value,
    next: &mut Value,
    (manager, sub): Writer<'_>,
) {
    let (changed, removed) = compare(current, next, sub);
    let mut others = entries(next);
    let mut own = take_entry(&mut others, def, (manager, "Update", sub));
    if changed.is_empty() && removed.is_empty() {
        // Nothing changed: the entries stay as they are, time included.
        return;
    }
    for e in &mut others {
        e.fields
            .retain(|p| !changed.contains(p) && !removed.contains(p));
    }
    own.fields.retain(|p| !removed.contains(p));
    own.fields.extend(changed);
    others.push(own);
    store_entries(next, others);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def() -> &'static ResourceDef {
        crate::cluster::apiserver::resources::find("game.kruise.io", "v1alpha1", "gameserversets")
            .expect("the GameServerSet resource")
    }

    fn set(spec: Value) -> Value {
        json!({"apiVersion": "game.kruise.io/v1alpha1", "kind": "GameServerSet",
            "metadata": {"name": "a", "namespace": "default"}, "spec": spec})
    }

    /// `spec` applied over `current` by `manager`.
    fn apply_as(
        current: &Value,
        spec: Value,
        manager: &str,
        force: bool,
    ) -> Result<Value, ApiError> {
        apply(def(), current, &set(spec), (manager, None), force)
    }

    fn managers(object: &Value) -> Vec<(String, String, Value)> {
        object["metadata"]["managedFields"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| {
                (
                    e["manager"].as_str().unwrap_or("").to_owned(),
                    e["operation"].as_str().unwrap_or("").to_owned(),
                    e["fieldsV1"].clone(),
                )
            })
            .collect()
    }

    #[test]
    fn an_apply_owns_what_it_sends_and_removes_what_it_stops_sending() {
        let first =
            apply_as(&json!({}), json!({"replicas": 3, "x": 1}), "flux", false).expect("apply");
        assert_eq!(
            managers(&first),
            [(
                "flux".into(),
                "Apply".into(),
                json!({"f:spec": {"f:replicas": {}, "f:x": {}}})
            )]
        );
        let second = apply_as(&first, json!({"replicas": 3}), "flux", false).expect("apply");
        assert_eq!(
            second["spec"],
            json!({"replicas": 3}),
            "x is no longer applied"
        );
    }

    #[test]
    fn a_changed_field_of_another_manager_conflicts_unless_forced() {
        let first = apply_as(&json!({}), json!({"replicas": 3}), "flux", false).expect("apply");
        // The same value is shared, not a conflict.
        let shared = apply_as(&first, json!({"replicas": 3}), "argocd", false).expect("shared");
        assert_eq!(managers(&shared).len(), 2);
        let e = apply_as(&first, json!({"replicas": 5}), "argocd", false).expect_err("a conflict");
        assert_eq!(e.code, axum::http::StatusCode::CONFLICT);
        assert_eq!(
            e.message,
            "Apply failed with 1 conflict: conflict with \"flux\": .spec.replicas"
        );
        let causes = &e.details.as_ref().expect("details")["causes"];
        assert_eq!(causes[0]["type"], "FieldManagerConflict");
        assert_eq!(causes[0]["field"], ".spec.replicas");
        let forced = apply_as(&first, json!({"replicas": 5}), "argocd", true).expect("forced");
        assert_eq!(forced["spec"]["replicas"], 5);
        assert_eq!(
            managers(&forced),
            [(
                "argocd".into(),
                "Apply".into(),
                json!({"f:spec": {"f:replicas": {}}})
            )],
            "flux lost its only field, and its entry"
        );
    }

    #[test]
    fn a_field_another_manager_still_owns_is_not_removed() {
        let first =
            apply_as(&json!({}), json!({"replicas": 3, "x": 1}), "flux", false).expect("apply");
        let both = apply_as(&first, json!({"x": 1}), "argocd", false).expect("shared");
        let after = apply_as(&both, json!({"replicas": 3}), "flux", false).expect("apply");
        assert_eq!(after["spec"], json!({"replicas": 3, "x": 1}));
    }

    #[test]
    fn an_update_takes_the_fields_it_changes() {
        let first =
            apply_as(&json!({}), json!({"replicas": 3, "x": 1}), "flux", false).expect("apply");
        let mut next = first.clone();
        next["spec"]["replicas"] = json!(4);
        record_update(def(), &first, &mut next, ("kubectl-scale", None));
        assert_eq!(
            managers(&next),
            [
                (
                    "flux".into(),
                    "Apply".into(),
                    json!({"f:spec": {"f:x": {}}})
                ),
                (
                    "kubectl-scale".into(),
                    "Update".into(),
                    json!({"f:spec": {"f:replicas": {}}})
                ),
            ]
        );
        // Flux applying replicas again now conflicts with the scaler.
        let e =
            apply_as(&next, json!({"replicas": 3, "x": 1}), "flux", false).expect_err("conflict");
        assert!(
            e.message
                .contains("conflict with \"kubectl-scale\" using game.kruise.io/v1alpha1 at "),
            "{}",
            e.message
        );
    }

    #[test]
    fn removing_the_last_field_of_a_map_removes_the_map() {
        let mut v = json!({"metadata": {"labels": {"a": "1"}, "name": "x"}});
        remove_field(&mut v, &["metadata".into(), "labels".into(), "a".into()]);
        assert_eq!(v, json!({"metadata": {"name": "x"}}));
    }

    #[test]
    fn fields_v1_round_trips_and_reads_list_items_as_their_list() {
        let fields: FieldSet = [
            vec!["spec".into(), "replicas".into()],
            vec!["metadata".into(), "labels".into(), "a".into()],
        ]
        .into();
        let mut back = FieldSet::new();
        from_fields_v1(&to_fields_v1(&fields), &mut Vec::new(), &mut back);
        assert_eq!(back, fields);
        let mut listed = FieldSet::new();
        from_fields_v1(
            &json!({"f:spec": {"f:containers": {"k:{\"name\":\"c\"}": {".": {}, "f:image": {}}}}}),
            &mut Vec::new(),
            &mut listed,
        );
        assert_eq!(
            listed,
            [vec!["spec".to_owned(), "containers".to_owned()]].into()
        );
    }
}
