//! Discovery: `/version`, `/api`, `/apis` (aggregated `apidiscovery.k8s.io/v2`
//! for kubectl, legacy `APIVersions`/`APIGroupList` for kube-rs),
//! `/api/v1`, `/apis/GROUP` and `/apis/GROUP/VERSION`.

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use serde_json::{Value, json};

use super::objects::json_response;
use super::resources::{self, ResourceDef};

/// The Kubernetes version gameops answers to (kubectl picks its client by the minor).
pub fn version() -> Value {
    json!({
        "major": "1",
        "minor": "32",
        "gitVersion": "v1.32.0",
        "gitCommit": "gameops",
        "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z",
        "goVersion": "go1.23",
        "compiler": "gc",
        "platform": "linux/amd64",
    })
}

const AGGREGATED: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

fn wants_aggregated(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("as=APIGroupDiscoveryList") && a.contains("v=v2"))
}

fn aggregated(items: Vec<Value>) -> Response {
    let body = json!({"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2", "metadata": {}, "items": items});
    let mut r = json_response(StatusCode::OK, body.to_string());
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(AGGREGATED));
    r.headers_mut()
        .insert(header::VARY, HeaderValue::from_static("Accept"));
    r
}

fn gvk(group: &str, version: &str, kind: &str) -> Value {
    json!({"group": group, "version": version, "kind": kind})
}

fn discovery_resource(r: &ResourceDef) -> Value {
    let mut subresources = Vec::new();
    if r.status_subresource {
        subresources.push(json!({"subresource": "status", "responseKind": gvk(r.group, r.version, r.kind), "verbs": ["get", "patch", "update"]}));
    }
    if r.scale.is_some() {
        subresources.push(json!({"subresource": "scale", "responseKind": gvk("autoscaling", "v1", "Scale"), "verbs": ["get", "patch", "update"]}));
    }
    let mut out = json!({
        "resource": r.plural,
        "responseKind": gvk(r.group, r.version, r.kind),
        "scope": if r.namespaced { "Namespaced" } else { "Cluster" },
        "singularResource": r.singular,
        "verbs": r.verbs(),
        "shortNames": r.short_names,
    });
    if !r.categories.is_empty() {
        out["categories"] = json!(r.categories);
    }
    if !subresources.is_empty() {
        out["subresources"] = json!(subresources);
    }
    out
}

fn api_resources(group: &str, version: &str) -> Vec<Value> {
    let mut out = Vec::new();
    for r in resources::all()
        .iter()
        .filter(|r| r.group == group && r.version == version)
    {
        let mut main = json!({
            "name": r.plural, "singularName": r.singular, "namespaced": r.namespaced,
            "kind": r.kind, "verbs": r.verbs(), "shortNames": r.short_names,
        });
        if !r.categories.is_empty() {
            main["categories"] = json!(r.categories);
        }
        out.push(main);
        if r.status_subresource {
            out.push(json!({"name": format!("{}/status", r.plural), "singularName": "", "namespaced": r.namespaced, "kind": r.kind, "verbs": ["get", "patch", "update"]}));
        }
        if r.scale.is_some() {
            out.push(json!({"name": format!("{}/scale", r.plural), "singularName": "", "namespaced": r.namespaced, "group": "autoscaling", "version": "v1", "kind": "Scale", "verbs": ["get", "patch", "update"]}));
        }
    }
    out
}

/// `GET /api`.
pub fn api(headers: &HeaderMap) -> Response {
    if wants_aggregated(headers) {
        let resources: Vec<Value> = resources::all()
            .iter()
            .filter(|r| r.group.is_empty())
            .map(discovery_resource)
            .collect();
        return aggregated(vec![
            json!({"metadata": {"creationTimestamp": null}, "versions": [{"version": "v1", "resources": resources, "freshness": "Current"}]}),
        ]);
    }
    let body = json!({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]});
    json_response(StatusCode::OK, body.to_string())
}

fn api_group(group: &str) -> Value {
    let versions: Vec<Value> = resources::groups()
        .into_iter()
        .filter(|(g, _)| *g == group)
        .map(|(g, v)| json!({"groupVersion": format!("{g}/{v}"), "version": v}))
        .collect();
    json!({"name": group, "versions": versions, "preferredVersion": versions.first()})
}

/// `GET /apis`.
pub fn apis(headers: &HeaderMap) -> Response {
    let mut names: Vec<&str> = Vec::new();
    for (g, _) in resources::groups() {
        if !names.contains(&g) {
            names.push(g);
        }
    }
    if wants_aggregated(headers) {
        let items = names
            .iter()
            .map(|g| {
                let versions: Vec<Value> = resources::groups()
                    .into_iter()
                    .filter(|(gg, _)| gg == g)
                    .map(|(_, v)| {
                        let rs: Vec<Value> = resources::all()
                            .iter()
                            .filter(|r| r.group == *g && r.version == v)
                            .map(discovery_resource)
                            .collect();
                        json!({"version": v, "resources": rs, "freshness": "Current"})
                    })
                    .collect();
                json!({"metadata": {"name": g, "creationTimestamp": null}, "versions": versions})
            })
            .collect();
        return aggregated(items);
    }
    let groups: Vec<Value> = names.iter().map(|g| api_group(g)).collect();
    json_response(
        StatusCode::OK,
        json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}).to_string(),
    )
}

/// `GET /apis/GROUP`, if served.
pub fn group(group: &str) -> Option<Response> {
    resources::groups()
        .iter()
        .any(|(g, _)| *g == group)
        .then(|| {
            let mut body = api_group(group);
            body["kind"] = json!("APIGroup");
            body["apiVersion"] = json!("v1");
            json_response(StatusCode::OK, body.to_string())
        })
}

/// `GET /api/v1` or `GET /apis/GROUP/VERSION`, if served.
pub fn resource_list(group: &str, version: &str) -> Option<Response> {
    let list = api_resources(group, version);
    if list.is_empty() {
        return None;
    }
    let group_version = kube::core::api_version_from_group_version(group.into(), version.into());
    let body = json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": list});
    Some(json_response(StatusCode::OK, body.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_group_version_lists_subresources() {
        let list = api_resources("game.kruise.io", "v1alpha1");
        let names: Vec<&str> = list.iter().map(|r| r["name"].as_str().unwrap()).collect();
        assert_eq!(
            names,
            [
                "gameserversets",
                "gameserversets/status",
                "gameserversets/scale",
                "gameservers",
                "gameservers/status"
            ]
        );
        assert_eq!(list[2]["kind"], "Scale");
        assert!(
            !api_resources("", "v1").is_empty(),
            "/api/v1 must list real resources"
        );
    }

    #[test]
    fn aggregated_discovery_is_chosen_by_accept() {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT, HeaderValue::from_static("application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json"));
        let r = apis(&h);
        assert_eq!(r.headers()[header::CONTENT_TYPE], AGGREGATED);
        let r = apis(&HeaderMap::new());
        assert_eq!(r.headers()[header::CONTENT_TYPE], "application/json");
    }
}
