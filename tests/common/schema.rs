//! CRD schemas made strict for tests: Kubernetes ignores unknown fields of
//! a structural schema, so a test that wants to catch them closes every
//! object schema that lists properties.

use serde_json::{Value, json};

/// Adds `additionalProperties: false` to every object schema under `schema`
/// that lists `properties` and does not preserve unknown fields.
pub fn close_objects(schema: &mut Value) {
    let Some(obj) = schema.as_object_mut() else {
        return;
    };
    if obj.contains_key("properties")
        && obj.get("x-kubernetes-preserve-unknown-fields") != Some(&json!(true))
        && !obj.contains_key("additionalProperties")
    {
        obj.insert("additionalProperties".into(), json!(false));
    }
    for (key, sub) in obj.iter_mut() {
        match key.as_str() {
            "properties" => sub
                .as_object_mut()
                .into_iter()
                .flat_map(|p| p.values_mut())
                .for_each(close_objects),
            "items" | "additionalProperties" => close_objects(sub),
            "anyOf" | "allOf" | "oneOf" => sub
                .as_array_mut()
                .into_iter()
                .flatten()
                .for_each(close_objects),
            _ => {}
        }
    }
}
