//! Differential API tests: the same requests, in the same order, to
//! kube-apiserver (with OpenKruiseGame's CRDs from the reference) and to
//! gameops's embedded API server, through kube-rs's client with each
//! side's kubeconfig. Status codes, `reason`s, object kinds and the fields
//! a 422 names are compared; every difference must be one listed in
//! [`KNOWN`] (and in the README's known differences), and every listed one
//! must still occur, so the list stays true.

use std::path::Path;

use http::{Method, Request};
use serde_json::{Value, json};

/// What a request got: the status code, and the parts of the body compared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub code: u16,
    /// `reason` of a Status, or the object's `kind`.
    pub what: String,
    /// The distinct fields a Status's causes name, sorted.
    pub fields: Vec<String>,
}

/// Differences we keep, by case name, with why (README, known differences).
const KNOWN: &[(&str, &str)] = &[];

async fn client(kubeconfig: &Path) -> kube::Client {
    let kubeconfig = kube::config::Kubeconfig::read_from(kubeconfig).expect("kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .expect("config");
    kube::Client::try_from(config).expect("client")
}

async fn call(
    client: &kube::Client,
    method: &Method,
    path: &str,
    (ctype, accept): (&str, &str),
    body: &str,
) -> (Answer, Value) {
    let request = Request::builder()
        .method(method.clone())
        .uri(path)
        .header("Content-Type", ctype)
        .header("Accept", accept)
        .body(kube::client::Body::from(body.as_bytes().to_vec()))
        .expect("request");
    let response = client.send(request).await.expect("an answer");
    let code = response.status().as_u16();
    let bytes = response.into_body().collect_bytes().await.expect("body");
    let value: Value = serde_json::from_slice(&bytes).unwrap_or_else(|_| {
        // A watch: one event per line.
        let events: Vec<Value> = bytes
            .split(|b| *b == b'\n')
            .filter_map(|l| serde_json::from_slice(l).ok())
            .collect();
        json!({"kind": "WatchEvents", "events": events})
    });
    if value["kind"] == "WatchEvents" {
        let types: Vec<&str> = value["events"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| e["type"].as_str().unwrap_or(""))
            .collect();
        let what = format!("watch {}", types.join(","));
        return (
            Answer {
                code,
                what,
                fields: Vec::new(),
            },
            value,
        );
    }
    if value["kind"] == "Table" {
        let columns = value["columnDefinitions"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| c["name"].as_str().unwrap_or("").to_owned())
            .collect();
        return (
            Answer {
                code,
                what: "Table".into(),
                fields: columns,
            },
            value,
        );
    }
    let what = if value["kind"] == "Status" {
        value["reason"].as_str().unwrap_or("").to_owned()
    } else {
        value["kind"].as_str().unwrap_or("").to_owned()
    };
    let mut fields: Vec<String> = value["details"]["causes"]
        .as_array()
        .map(|c| {
            c.iter()
                .filter_map(|c| c["field"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    fields.sort();
    fields.dedup();
    (Answer { code, what, fields }, value)
}

const NS: &str = "differential";
const SETS: &str = "/apis/game.kruise.io/v1alpha1/namespaces/differential/gameserversets";
const PODS: &str = "/api/v1/namespaces/differential/pods";
const JSON: &str = "application/json";
const MERGE: &str = "application/merge-patch+json";

fn set(name: &str, replicas: Value) -> String {
    json!({"apiVersion": "game.kruise.io/v1alpha1", "kind": "GameServerSet",
        "metadata": {"name": name, "namespace": NS, "labels": {"diff": "yes"}},
        "spec": {"replicas": replicas, "updateStrategy": {"type": "OnDelete"},
            "gameServerTemplate": {"spec": {"containers": [{"name": "mc", "image": "mc:1"}]}}}})
    .to_string()
}

/// One request; `{rv}` in the path or body is replaced by the
/// resourceVersion of `a` as this side last saw it.
struct Case {
    name: &'static str,
    method: Method,
    path: String,
    ctype: &'static str,
    accept: &'static str,
    body: String,
}

/// What `kubectl get` asks for.
const TABLE: &str = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json";

fn case(name: &'static str, method: Method, path: &str, ctype: &'static str, body: String) -> Case {
    Case {
        name,
        method,
        path: path.to_owned(),
        ctype,
        accept: JSON,
        body,
    }
}

fn cases() -> Vec<Case> {
    let a = format!("{SETS}/a");
    let big = "x".repeat(300 * 1024);
    vec![
        case("create", Method::POST, SETS, JSON, set("a", json!(3))),
        case("create again", Method::POST, SETS, JSON, set("a", json!(3))),
        case("get", Method::GET, &a, JSON, String::new()),
        Case { accept: TABLE, ..case("table of sets", Method::GET, SETS, JSON, String::new()) },
        case("get missing", Method::GET, &format!("{SETS}/nope"), JSON, String::new()),
        case("list by label", Method::GET, &format!("{SETS}?labelSelector=diff%3Dyes"), JSON, String::new()),
        case("bad label selector", Method::GET, &format!("{SETS}?labelSelector=a%3D%3D%3Db"), JSON, String::new()),
        case("unknown field selector", Method::GET, &format!("{SETS}?fieldSelector=spec.replicas%3D3"), JSON, String::new()),
        case("list limit 1", Method::GET, &format!("{SETS}?limit=1"), JSON, String::new()),
        case("merge patch", Method::PATCH, &a, MERGE, json!({"spec": {"replicas": 4}}).to_string()),
        case("json patch", Method::PATCH, &a, "application/json-patch+json",
            json!([{"op": "replace", "path": "/spec/replicas", "value": 5}]).to_string()),
        case("json patch failed test", Method::PATCH, &a, "application/json-patch+json",
            json!([{"op": "test", "path": "/spec/replicas", "value": 99}]).to_string()),
        case("strategic merge patch", Method::PATCH, &a, "application/strategic-merge-patch+json",
            json!({"spec": {"replicas": 6}}).to_string()),
        case("apply patch", Method::PATCH, &format!("{a}?fieldManager=diff"), "application/apply-patch+yaml", set("a", json!(5))),
        // Another manager changing a field `diff` applied: a conflict.
        case("apply patch by another manager", Method::PATCH, &format!("{a}?fieldManager=other"),
            "application/apply-patch+yaml", set("a", json!(7))),
        case("apply patch by another manager, forced", Method::PATCH,
            &format!("{a}?fieldManager=other&force=true"), "application/apply-patch+yaml", set("a", json!(7))),
        case("watch from the first version", Method::GET,
            &format!("{SETS}?watch=1&resourceVersion={{rv}}&timeoutSeconds=1"), JSON, String::new()),
        case("status get", Method::GET, &format!("{a}/status"), JSON, String::new()),
        case("status merge patch", Method::PATCH, &format!("{a}/status"), MERGE,
            json!({"status": {"replicas": 2}}).to_string()),
        case("scale get", Method::GET, &format!("{a}/scale"), JSON, String::new()),
        case("scale merge patch", Method::PATCH, &format!("{a}/scale"), MERGE,
            json!({"spec": {"replicas": 7}}).to_string()),
        case("replicas beyond int32", Method::POST, SETS, JSON, set("huge", json!(3_000_000_000_u64))),
        case("negative replicas type", Method::POST, SETS, JSON, set("text", json!("three"))),
        case("annotations over 256 KiB", Method::PATCH, &a, MERGE,
            json!({"metadata": {"annotations": {"big": big}}}).to_string()),
        case("text/plain body", Method::POST, SETS, "text/plain", set("plain", json!(1))),
        case("form body", Method::POST, SETS, "application/x-www-form-urlencoded", set("form", json!(1))),
        case("stale resourceVersion", Method::PUT, &a, JSON,
            set("a", json!(3)).replace("\"labels\"", "\"resourceVersion\":\"1\",\"labels\"")),
        case("unknown field strict", Method::POST, &format!("{SETS}?fieldValidation=Strict"), JSON,
            set("strict", json!(1)).replace("\"replicas\"", "\"replicaz\":1,\"replicas\"")),
        case("delete with wrong uid", Method::DELETE, &a, JSON,
            json!({"kind": "DeleteOptions", "apiVersion": "v1", "preconditions": {"uid": "not-the-uid"}}).to_string()),
        case("create b", Method::POST, SETS, JSON, set("b", json!(1))),
        // The answer is the object, terminating with `foregroundDeletion`.
        case("delete b in the foreground", Method::DELETE, &format!("{SETS}/b"), JSON,
            json!({"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Foreground"}).to_string()),
        case("deletecollection by label", Method::DELETE, &format!("{SETS}?labelSelector=diff%3Dyes"), JSON, String::new()),
        // A client that still holds `a` writes after another one deleted it.
        case("patch after another client deleted it", Method::PATCH, &a, MERGE,
            json!({"spec": {"replicas": 8}}).to_string()),
        case("update after another client deleted it", Method::PUT, &a, JSON,
            set("a", json!(3)).replace("\"labels\"", "\"resourceVersion\":\"1\",\"labels\"")),
        case("status patch after another client deleted it", Method::PATCH, &format!("{a}/status"), MERGE,
            json!({"status": {"replicas": 1}}).to_string()),
        case("pod create", Method::POST, PODS, JSON,
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                "spec": {"containers": [{"name": "c", "image": "nginx:1"}]}}).to_string()),
        case("pod get", Method::GET, &format!("{PODS}/p"), JSON, String::new()),
        Case { accept: TABLE, ..case("table of pods", Method::GET, PODS, JSON, String::new()) },
        case("pod status patch", Method::PATCH, &format!("{PODS}/p/status"), MERGE,
            json!({"status": {"phase": "Running"}}).to_string()),
        case("pod image patch", Method::PATCH, &format!("{PODS}/p"), "application/json-patch+json",
            json!([{"op": "replace", "path": "/spec/containers/0/image", "value": "nginx:2"}]).to_string()),
        case("pod strategic merge patch", Method::PATCH, &format!("{PODS}/p"), "application/strategic-merge-patch+json",
            json!({"metadata": {"labels": {"tier": "front"}}, "spec": {"containers": [{"name": "c", "image": "nginx:3"}]}}).to_string()),
        case("pod spec patch", Method::PATCH, &format!("{PODS}/p"), "application/json-patch+json",
            json!([{"op": "replace", "path": "/spec/restartPolicy", "value": "Never"}]).to_string()),
        case("pod delete", Method::DELETE, &format!("{PODS}/p"), JSON, String::new()),
    ]
}

/// A difference: the case, both answers and both bodies.
pub type Difference = (String, Answer, Answer, Value, Value);

/// Runs every case on both sides: the differences, by case name, and what
/// kube-apiserver answered to each case.
pub async fn differences(
    real: &Path,
    embedded: &Path,
) -> (Vec<Difference>, Vec<(&'static str, Answer)>) {
    let real = client(real).await;
    let embedded = client(embedded).await;
    let mut out = Vec::new();
    let mut seen = Vec::new();
    // The resourceVersion of `a` each side first gave.
    let (mut first_real, mut first_embedded) = (None::<String>, None::<String>);
    let version = |v: &Value| {
        (v["kind"] == "GameServerSet" && v["metadata"]["name"] == "a")
            .then(|| v["metadata"]["resourceVersion"].as_str().map(str::to_owned))
            .flatten()
    };
    for c in cases() {
        let path = |rv: &Option<String>| c.path.replace("{rv}", rv.as_deref().unwrap_or("0"));
        let (r, rv) = call(
            &real,
            &c.method,
            &path(&first_real),
            (c.ctype, c.accept),
            &c.body,
        )
        .await;
        let (e, ev) = call(
            &embedded,
            &c.method,
            &path(&first_embedded),
            (c.ctype, c.accept),
            &c.body,
        )
        .await;
        first_real = first_real.or_else(|| version(&rv));
        first_embedded = first_embedded.or_else(|| version(&ev));
        seen.push((c.name, r.clone()));
        if r != e {
            out.push((c.name.to_owned(), r, e, rv, ev));
        }
    }
    (out, seen)
}

/// The cases [`KNOWN`] lists.
pub fn known() -> Vec<&'static str> {
    KNOWN.iter().map(|(name, _)| *name).collect()
}
