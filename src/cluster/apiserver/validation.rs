//! Checks an object against its resource's structural schema the way the
//! Kubernetes API server does for custom resources: unknown fields are found
//! (and pruned), values are type-checked, `minimum`/`maximum`/`enum`/
//! `required` are enforced, and object names are DNS-1123 subdomains.

use serde_json::{Map, Value, json};

use super::status::FieldError;
pub use crate::api::names::{dns_label_error, dns_subdomain_error};

/// What a schema walk found.
#[derive(Debug, Default)]
pub struct Findings {
    /// Paths of fields the schema does not declare (already pruned).
    pub unknown: Vec<String>,
    /// Invalid values.
    pub invalid: Vec<FieldError>,
}

/// The fields of `metadata` (ObjectMeta).
const OBJECT_META: &[&str] = &[
    "name",
    "generateName",
    "namespace",
    "selfLink",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "labels",
    "annotations",
    "ownerReferences",
    "finalizers",
    "managedFields",
];

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// Walks `value` against `schema` (an `openAPIV3Schema`), pruning unknown
/// fields and recording problems. `metadata` is checked as ObjectMeta.
pub fn check(schema: &Value, value: &mut Value) -> Findings {
    let mut findings = Findings::default();
    if let Some(meta) = value.get_mut("metadata") {
        check_metadata(meta, &mut findings);
    }
    walk(schema, value, "", &mut findings);
    findings
}

fn check_metadata(meta: &mut Value, findings: &mut Findings) {
    let Some(map) = meta.as_object_mut() else {
        findings.invalid.push(FieldError::invalid(
            "metadata",
            meta,
            "must be of type object",
        ));
        return;
    };
    let unknown: Vec<String> = map
        .keys()
        .filter(|k| !OBJECT_META.contains(&k.as_str()))
        .cloned()
        .collect();
    for key in unknown {
        map.remove(&key);
        findings.unknown.push(format!("metadata.{key}"));
    }
    for field in ["labels", "annotations"] {
        match map.get(field) {
            None | Some(Value::Null) => {}
            Some(Value::Object(entries)) => {
                for (k, v) in entries {
                    if !v.is_string() {
                        findings.invalid.push(FieldError::invalid(
                            &format!("metadata.{field}.{k}"),
                            v,
                            "must be of type string",
                        ));
                    }
                }
            }
            Some(other) => findings.invalid.push(FieldError::invalid(
                &format!("metadata.{field}"),
                other,
                "must be of type object",
            )),
        }
    }
    for field in ["name", "generateName", "namespace"] {
        if let Some(v) = map.get(field)
            && !v.is_string()
            && !v.is_null()
        {
            findings.invalid.push(FieldError::invalid(
                &format!("metadata.{field}"),
                v,
                "must be of type string",
            ));
        }
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// kube-openapi's type error: the value shown is its JSON type
/// (`Invalid value: "string": spec.replicas in body must be of type
/// integer: "string"`, reason `FieldValueTypeInvalid`).
fn type_error(path: &str, value: &Value, want: &str, findings: &mut Findings) {
    let got = type_name(value);
    findings.invalid.push(FieldError {
        field: path.to_owned(),
        reason: "FieldValueTypeInvalid",
        message: format!(
            "Invalid value: \"{got}\": {path} in body must be of type {want}: \"{got}\""
        ),
    });
}

/// The scale subresource's check of its replicas path
/// (apiextensions-apiserver `ValidateCustomResource` via
/// `unstructured.NestedInt64`): a value that is not an integer there is a
/// second cause, named `.path`, as kube-apiserver reports it.
pub fn scale_replicas_error(object: &Value, pointer: &str) -> Option<FieldError> {
    let value = object.pointer(pointer)?;
    if value.is_i64() || value.is_u64() {
        return None;
    }
    let go_type = match value {
        Value::String(_) => "string",
        Value::Bool(_) => "bool",
        Value::Number(_) => "float64",
        Value::Array(_) => "[]interface {}",
        Value::Object(_) => "map[string]interface {}",
        Value::Null => return None,
    };
    let shown = match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let path = pointer.replace('/', ".");
    Some(FieldError::invalid(
        &path,
        &json!(0),
        &format!("{path} accessor error: {shown} is of the type {go_type}, expected int64"),
    ))
}

fn walk(schema: &Value, value: &mut Value, path: &str, findings: &mut Findings) {
    let flag = |name: &str| schema.get(name).and_then(Value::as_bool).unwrap_or(false);
    if flag("x-kubernetes-int-or-string") {
        if !(value.is_string() || value.is_i64() || value.is_u64()) {
            type_error(path, value, "integer or string", findings);
        }
        return;
    }
    let preserve = flag("x-kubernetes-preserve-unknown-fields");
    match schema.get("type").and_then(Value::as_str) {
        Some("object") => match value.as_object_mut() {
            Some(map) => walk_object(schema, map, path, preserve, findings),
            None => type_error(path, value, "object", findings),
        },
        Some("array") => match value.as_array_mut() {
            Some(items) => {
                if let Some(item_schema) = schema.get("items") {
                    for (i, item) in items.iter_mut().enumerate() {
                        walk(item_schema, item, &format!("{path}[{i}]"), findings);
                    }
                }
            }
            None => type_error(path, value, "array", findings),
        },
        Some("string") if !value.is_string() => type_error(path, value, "string", findings),
        Some("boolean") if !value.is_boolean() => type_error(path, value, "boolean", findings),
        Some("integer") => {
            if value.is_i64() || value.is_u64() {
                check_bounds(schema, value, path, findings);
                check_format(schema, value, path, findings);
            } else {
                type_error(path, value, "integer", findings);
            }
        }
        Some("number") => {
            if value.is_number() {
                check_bounds(schema, value, path, findings);
            } else {
                type_error(path, value, "number", findings);
            }
        }
        _ => {}
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(value)
    {
        let list: Vec<String> = allowed.iter().map(Value::to_string).collect();
        findings.invalid.push(FieldError {
            field: path.to_owned(),
            reason: "FieldValueNotSupported",
            message: format!(
                "Unsupported value: {value}: supported values: {}",
                list.join(", ")
            ),
        });
    }
}

/// A bound as Kubernetes prints it (`0`, not `0.0`).
fn bound(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        v.to_string()
    }
}

fn check_bounds(schema: &Value, value: &Value, path: &str, findings: &mut Findings) {
    let Some(v) = value.as_f64() else { return };
    type Outside = fn(f64, f64) -> bool;
    let limits: [(&str, &str, Outside); 2] = [
        ("minimum", "greater", |v, min| v < min),
        ("maximum", "less", |v, max| v > max),
    ];
    for (key, word, outside) in limits {
        if let Some(limit) = schema.get(key).and_then(Value::as_f64)
            && outside(v, limit)
        {
            findings.invalid.push(FieldError::invalid(
                path,
                value,
                &format!(
                    "{path} in body should be {word} than or equal to {}",
                    bound(limit)
                ),
            ));
        }
    }
}

/// The range of an integer's `format` (`int32`, `int64`), as
/// kube-apiserver checks it for custom resources (apiextensions-apiserver
/// validation with kube-openapi's formats): 422, `should be less than or
/// equal to 2147483647`.
fn check_format(schema: &Value, value: &Value, path: &str, findings: &mut Findings) {
    let (min, max) = match schema.get("format").and_then(Value::as_str) {
        Some("int32") => (i128::from(i32::MIN), i128::from(i32::MAX)),
        Some("int64") => (i128::from(i64::MIN), i128::from(i64::MAX)),
        _ => return,
    };
    let v = value
        .as_i64()
        .map(i128::from)
        .or_else(|| value.as_u64().map(i128::from));
    let Some(v) = v else { return };
    let format = schema.get("format").and_then(Value::as_str).unwrap_or("");
    let message = if v > max {
        format!("should be less than or equal to {max}")
    } else if v < min {
        format!("should be greater than or equal to {min}")
    } else {
        return;
    };
    // kube-apiserver reports the format twice: once from kube-openapi's
    // format check (field `<nil>`), once as a bound on `.path`.
    findings.invalid.push(FieldError {
        field: "<nil>".into(),
        reason: "FieldValueInvalid",
        message: format!(
            "Invalid value: \"\": Checked value must be of type integer with format {format} in {path}"
        ),
    });
    findings
        .invalid
        .push(FieldError::invalid(&format!(".{path}"), value, &message));
}

fn walk_object(
    schema: &Value,
    map: &mut Map<String, Value>,
    path: &str,
    preserve: bool,
    findings: &mut Findings,
) {
    let properties = schema.get("properties").and_then(Value::as_object);
    let additional = schema.get("additionalProperties").filter(|a| a.is_object());
    // Nulls in non-nullable fields are dropped, as the API server does.
    map.retain(|key, v| {
        !v.is_null()
            || properties
                .and_then(|p| p.get(key))
                .and_then(|s| s.get("nullable"))
                .and_then(Value::as_bool)
                .unwrap_or(false)
    });
    let keys: Vec<String> = map.keys().cloned().collect();
    for key in keys {
        if path.is_empty() && matches!(key.as_str(), "apiVersion" | "kind" | "metadata") {
            continue;
        }
        let child = join(path, &key);
        let sub = properties.and_then(|p| p.get(&key)).or(additional);
        match sub {
            Some(sub) => {
                if let Some(v) = map.get_mut(&key) {
                    walk(sub, v, &child, findings);
                }
            }
            None if preserve => {}
            None => {
                map.remove(&key);
                findings.unknown.push(child);
            }
        }
    }
    if let Some(required) = schema.get("required").and_then(Value::as_array) {
        for field in required.iter().filter_map(Value::as_str) {
            if !map.contains_key(field) {
                findings
                    .invalid
                    .push(FieldError::required(&join(path, field), ""));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({"type": "object", "properties": {
            "spec": {"type": "object", "required": ["replicas"], "properties": {
                "replicas": {"type": "integer", "minimum": 0},
                "paused": {"type": "boolean"},
                "prio": {"x-kubernetes-int-or-string": true, "anyOf": [{"type": "integer"}, {"type": "string"}]},
                "mode": {"type": "string", "enum": ["A", "B"]},
                "tags": {"type": "array", "items": {"type": "string"}},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "template": {"type": "object", "x-kubernetes-preserve-unknown-fields": true,
                    "properties": {"reclaimPolicy": {"type": "string"}}}
            }}
        }})
    }

    #[test]
    fn valid_object_passes_and_keeps_preserved_fields() {
        let mut v = json!({"apiVersion": "x/v1", "kind": "X", "metadata": {"name": "a", "labels": {"k": "v"}},
            "spec": {"replicas": 3, "prio": "10", "mode": "A", "tags": ["a"], "labels": {"a": "b"},
                "template": {"spec": {"containers": [{"name": "c"}]}, "reclaimPolicy": "Cascade"}}});
        let f = check(&schema(), &mut v);
        assert!(f.unknown.is_empty() && f.invalid.is_empty(), "{f:?}");
        assert_eq!(v["spec"]["template"]["spec"]["containers"][0]["name"], "c");
    }

    #[test]
    fn unknown_fields_are_named_and_pruned() {
        let mut v = json!({"metadata": {"name": "a", "bogus": 1}, "spec": {"replicas": 1, "foo": 1, "bar": {"x": 1}}, "top": 1});
        let f = check(&schema(), &mut v);
        assert_eq!(f.unknown, ["metadata.bogus", "spec.bar", "spec.foo", "top"]);
        assert!(v["spec"].get("foo").is_none() && v.get("top").is_none());
    }

    #[test]
    fn wrong_types_bounds_enums_and_required() {
        let mut v = json!({"metadata": {"labels": {"k": 1}}, "spec": {"replicas": -1, "paused": "yes", "prio": 1.5, "mode": "C", "tags": [1]}});
        let f = check(&schema(), &mut v);
        let fields: Vec<&str> = f.invalid.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "metadata.labels.k",
                "spec.mode",
                "spec.paused",
                "spec.prio",
                "spec.replicas",
                "spec.tags[0]"
            ]
        );
        assert!(
            f.invalid[4]
                .message
                .contains("should be greater than or equal to 0"),
            "{}",
            f.invalid[4].message
        );
        let mut v = json!({"spec": {"replicas": "three"}});
        let f = check(&schema(), &mut v);
        assert_eq!(
            f.invalid[0].full(),
            // As kube-apiserver v1.37 words it (the value shown is its type).
            "spec.replicas: Invalid value: \"string\": spec.replicas in body must be of type integer: \"string\""
        );
        let mut v = json!({"spec": {}});
        assert_eq!(
            check(&schema(), &mut v).invalid[0].full(),
            "spec.replicas: Required value"
        );
    }

    #[test]
    fn integers_outside_their_format_are_invalid_as_kube_apiserver_says() {
        let schema = json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
            "replicas": {"type": "integer", "format": "int32"},
            "big": {"type": "integer", "format": "int64"}}}}});
        let mut v = json!({"spec": {"replicas": 3_000_000_000_u64, "big": 3_000_000_000_u64}});
        let f = check(&schema, &mut v);
        let full: Vec<String> = f.invalid.iter().map(FieldError::full).collect();
        assert_eq!(
            full,
            [
                "<nil>: Invalid value: \"\": Checked value must be of type integer with format int32 in spec.replicas",
                ".spec.replicas: Invalid value: 3000000000: should be less than or equal to 2147483647"
            ]
        );
        let mut v = json!({"spec": {"replicas": -2_147_483_649_i64}});
        assert!(
            check(&schema, &mut v).invalid[1]
                .full()
                .ends_with("should be greater than or equal to -2147483648")
        );
        let mut v = json!({"spec": {"replicas": 2_147_483_647}});
        assert!(check(&schema, &mut v).invalid.is_empty());
        let mut v = json!({"spec": {"big": u64::MAX}});
        assert!(
            check(&schema, &mut v).invalid[1]
                .full()
                .ends_with("should be less than or equal to 9223372036854775807")
        );
    }

    #[test]
    fn names() {
        assert!(dns_subdomain_error("minecraft-0").is_none());
        assert!(dns_subdomain_error("a.b-c").is_none());
        for bad in ["Minecraft", "-a", "a-", "a_b", "", "a..b"] {
            assert!(dns_subdomain_error(bad).is_some(), "{bad}");
        }
        assert!(dns_label_error("default").is_none());
        assert!(dns_label_error("a.b").is_some());
    }
}
