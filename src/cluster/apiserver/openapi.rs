//! `/openapi/v3`: one OpenAPI 3 document per served group-version, built
//! from the resources' schemas, as kubectl needs it for `explain` and to know
//! that the server validates fields itself (the `fieldValidation` query
//! parameter on PATCH operations tagged with the resource's GVK).

use std::hash::{Hash, Hasher};
use std::sync::LazyLock;

use serde_json::{Map, Value, json};

use super::resources::{self, ResourceDef};

/// `game.kruise.io` => `io.kruise.game`, as Kubernetes names CRD schemas.
fn reversed(group: &str) -> String {
    group.split('.').rev().collect::<Vec<_>>().join(".")
}

fn schema_name(r: &ResourceDef, kind: &str) -> String {
    if r.group.is_empty() {
        format!("io.k8s.api.core.{}.{kind}", r.version)
    } else {
        format!("{}.{}.{kind}", reversed(r.group), r.version)
    }
}

fn gvk(r: &ResourceDef) -> Value {
    json!({"group": r.group, "version": r.version, "kind": r.kind})
}

fn query(name: &str, description: &str) -> Value {
    json!({"name": name, "in": "query", "description": description, "schema": {"type": "string", "uniqueItems": true}})
}

fn operation(r: &ResourceDef, action: &str, op_id: &str, writes: bool, response: &str) -> Value {
    let mut params = Vec::new();
    if writes {
        params.push(query(
            "dryRun",
            "When present, indicates that modifications should not be persisted.",
        ));
        params.push(query("fieldManager", "fieldManager is a name associated with the actor or entity that is making these changes."));
        params.push(query("fieldValidation", "Ignore, Warn (default) or Strict: how to treat unknown or duplicate fields in the request body."));
    }
    json!({
        "operationId": op_id,
        "parameters": params,
        "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{response}")}}}}},
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": gvk(r),
    })
}

fn paths_for(r: &ResourceDef, paths: &mut Map<String, Value>) {
    let prefix = if r.group.is_empty() {
        format!("/api/{}", r.version)
    } else {
        format!("/apis/{}/{}", r.group, r.version)
    };
    let ns = if r.namespaced {
        "/namespaces/{namespace}"
    } else {
        ""
    };
    let id = format!("{}{}", r.kind, if r.namespaced { "Namespaced" } else { "" });
    let one = schema_name(r, r.kind);
    let list = schema_name(r, r.list_kind);
    let collection = format!("{prefix}{ns}/{}", r.plural);
    paths.insert(
        collection.clone(),
        json!({
            "get": operation(r, "list", &format!("list{id}"), false, &list),
            "post": operation(r, "post", &format!("create{id}"), true, &one),
            "delete": operation(r, "deletecollection", &format!("deleteCollection{id}"), false, &list),
        }),
    );
    let item = json!({
        "get": operation(r, "get", &format!("read{id}"), false, &one),
        "put": operation(r, "put", &format!("replace{id}"), true, &one),
        "patch": operation(r, "patch", &format!("patch{id}"), true, &one),
        "delete": operation(r, "delete", &format!("delete{id}"), false, &one),
    });
    paths.insert(format!("{collection}/{{name}}"), item.clone());
    if r.status_subresource {
        paths.insert(format!("{collection}/{{name}}/status"), item);
    }
    if r.namespaced {
        paths.insert(
            format!("{prefix}/{}", r.plural),
            json!({"get": operation(r, "list", &format!("list{}ForAllNamespaces", r.kind), false, &list)}),
        );
    }
}

fn document(group: &str, version: &str) -> Option<Value> {
    let served: Vec<&ResourceDef> = resources::all()
        .iter()
        .filter(|r| r.group == group && r.version == version && r.schema.is_some())
        .collect();
    if served.is_empty() {
        return None;
    }
    let mut paths = Map::new();
    let mut schemas = Map::new();
    for r in served {
        paths_for(r, &mut paths);
        let mut schema = r
            .schema
            .clone()
            .unwrap_or_else(|| json!({"type": "object"}));
        schema["x-kubernetes-group-version-kind"] = json!([gvk(r)]);
        schemas.insert(schema_name(r, r.kind), schema);
        schemas.insert(
            schema_name(r, r.list_kind),
            json!({
                "type": "object",
                "description": format!("{} is a list of {}.", r.list_kind, r.kind),
                "required": ["items"],
                "properties": {
                    "apiVersion": {"type": "string"},
                    "kind": {"type": "string"},
                    "metadata": {"type": "object"},
                    "items": {"type": "array", "items": {"$ref": format!("#/components/schemas/{}", schema_name(r, r.kind))}},
                },
                "x-kubernetes-group-version-kind": [{"group": r.group, "version": r.version, "kind": r.list_kind}],
            }),
        );
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "gameops", "version": "v1.32.0"},
        "paths": paths,
        "components": {"schemas": schemas},
    }))
}

/// Every document, serialised once, with its hash.
static DOCS: LazyLock<Vec<(String, String, String)>> = LazyLock::new(|| {
    let mut gvs: Vec<(&str, &str)> = resources::groups();
    gvs.insert(0, ("", "v1"));
    gvs.into_iter()
        .filter_map(|(g, v)| {
            let doc = document(g, v)?.to_string();
            let mut hasher = std::collections::hash_map::DefaultHasher::new();
            doc.hash(&mut hasher);
            let path = if g.is_empty() {
                format!("api/{v}")
            } else {
                format!("apis/{g}/{v}")
            };
            Some((path, format!("{:016X}", hasher.finish()), doc))
        })
        .collect()
});

/// `GET /openapi/v3`: the index of documents.
pub fn index() -> Value {
    let paths: Map<String, Value> = DOCS
        .iter()
        .map(|(path, hash, _)| {
            (
                path.clone(),
                json!({"serverRelativeURL": format!("/openapi/v3/{path}?hash={hash}")}),
            )
        })
        .collect();
    json!({"paths": paths})
}

/// `GET /openapi/v3/<path>`: one document, if served.
pub fn get(path: &str) -> Option<&'static str> {
    DOCS.iter()
        .find(|(p, _, _)| p == path)
        .map(|(_, _, doc)| doc.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kruise_document_names_schemas_and_field_validation() {
        let index = index();
        let url = index["paths"]["apis/game.kruise.io/v1alpha1"]["serverRelativeURL"]
            .as_str()
            .unwrap();
        assert!(url.starts_with("/openapi/v3/apis/game.kruise.io/v1alpha1?hash="));
        let doc: Value =
            serde_json::from_str(get("apis/game.kruise.io/v1alpha1").unwrap()).unwrap();
        let gss = &doc["components"]["schemas"]["io.kruise.game.v1alpha1.GameServerSet"];
        assert_eq!(
            gss["x-kubernetes-group-version-kind"][0]["kind"],
            "GameServerSet"
        );
        assert!(
            gss.pointer("/properties/spec/properties/replicas")
                .is_some()
        );
        let patch = &doc["paths"]["/apis/game.kruise.io/v1alpha1/namespaces/{namespace}/gameserversets/{name}"]
            ["patch"];
        assert_eq!(
            patch["x-kubernetes-group-version-kind"]["kind"],
            "GameServerSet"
        );
        assert!(
            patch["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["name"] == "fieldValidation")
        );
        let core: Value = serde_json::from_str(get("api/v1").unwrap()).unwrap();
        let event = &core["components"]["schemas"]["io.k8s.api.core.v1.Event"];
        assert!(
            event
                .pointer("/properties/involvedObject/properties/uid")
                .is_some()
        );
    }
}
