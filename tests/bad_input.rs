//! Bad input gets a clear `Status` error with the right code and changes
//! nothing: every case checks the store before and after.
#![allow(
    clippy::too_many_lines,
    reason = "a scenario or a table reads best top to bottom"
)]

mod common;

use common::Server;
use reqwest::blocking::{Client, Response};
use serde_json::{Value, json};

const GSS: &str = "/apis/game.kruise.io/v1alpha1/namespaces/default/gameserversets";

fn gss(name: &str, replicas: Value) -> Value {
    json!({"apiVersion": "game.kruise.io/v1alpha1", "kind": "GameServerSet",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"replicas": replicas, "gameServerTemplate": {"spec": {"containers": [{"name": "c", "image": "x:v1"}]}}}})
}

struct Api {
    server: Server,
    http: Client,
}

impl Api {
    fn new() -> Self {
        Self {
            server: Server::start(&["--in-memory"]),
            http: Client::new(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.url())
    }

    fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        content_type: &str,
        body: impl Into<reqwest::blocking::Body>,
    ) -> Response {
        self.http
            .request(method, self.url(path))
            .header("Content-Type", content_type)
            .body(body)
            .send()
            .expect("request")
    }

    fn list(&self) -> Value {
        self.http
            .get(self.url(GSS))
            .send()
            .expect("list")
            .json()
            .expect("list json")
    }

    /// The names and resourceVersions of every stored set.
    fn snapshot(&self) -> Vec<(String, String)> {
        self.list()["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|i| {
                (
                    i["metadata"]["name"].as_str().unwrap_or("").to_owned(),
                    i["metadata"]["resourceVersion"]
                        .as_str()
                        .unwrap_or("")
                        .to_owned(),
                )
            })
            .collect()
    }
}

/// Asserts a Status failure with `code` and `reason` whose message contains `needle`.
fn expect_status(response: Response, code: u16, reason: &str, needle: &str) -> Value {
    assert_eq!(response.status().as_u16(), code);
    let status: Value = response.json().expect("a Status body");
    assert_eq!(status["kind"], "Status");
    assert_eq!(status["status"], "Failure");
    assert_eq!(status["code"], code);
    assert_eq!(status["reason"], reason, "{status}");
    let message = status["message"].as_str().unwrap_or("");
    assert!(
        message.contains(needle),
        "{message:?} should contain {needle:?}"
    );
    status
}

#[test]
fn every_bad_input_is_refused_and_stores_nothing() {
    let api = Api::new();
    use reqwest::Method;
    let ok = api.send(
        Method::POST,
        GSS,
        "application/json",
        gss("keep", json!(3)).to_string(),
    );
    assert_eq!(ok.status().as_u16(), 201);
    let before = api.snapshot();

    // Malformed JSON and YAML: 400 naming the problem.
    let r = api.send(Method::POST, GSS, "application/json", "{\"apiVersion\": ");
    expect_status(r, 400, "BadRequest", "not valid JSON");
    let r = api.send(Method::POST, GSS, "application/yaml", "kind: [unclosed");
    expect_status(r, 400, "BadRequest", "not valid YAML");

    // Unknown fields under Strict: 400 naming each field.
    let mut body = gss("strict", json!(1));
    body["spec"]["bogus"] = json!(1);
    body["spec"]["gameServerTemplate"]["spec"] = json!({"anything": "goes here"});
    body["metadata"]["colour"] = json!("red");
    let r = api.send(
        Method::POST,
        &format!("{GSS}?fieldValidation=Strict"),
        "application/json",
        body.to_string(),
    );
    expect_status(
        r,
        400,
        "BadRequest",
        r#"unknown field "metadata.colour", unknown field "spec.bogus""#,
    );

    // Without Strict the same body is accepted with a warning and pruned.
    let r = api.send(
        Method::POST,
        &format!("{GSS}?fieldValidation=Warn&dryRun=All"),
        "application/json",
        body.to_string(),
    );
    assert_eq!(r.status().as_u16(), 201);
    let warning = r
        .headers()
        .get("Warning")
        .and_then(|w| w.to_str().ok())
        .unwrap_or("")
        .to_owned();
    assert!(warning.contains("unknown field"), "{warning}");
    let pruned: Value = r.json().expect("json");
    assert!(pruned["spec"].get("bogus").is_none());
    assert_eq!(
        pruned["spec"]["gameServerTemplate"]["spec"]["anything"], "goes here",
        "the template preserves unknown fields like OKG's schema"
    );

    // Wrong types, negative replicas, invalid names: 422 naming the field.
    let r = api.send(
        Method::POST,
        GSS,
        "application/json",
        gss("typed", json!("three")).to_string(),
    );
    let status = expect_status(r, 422, "Invalid", "spec.replicas: Invalid value");
    assert_eq!(status["details"]["causes"][0]["field"], "spec.replicas");
    let r = api.send(
        Method::POST,
        GSS,
        "application/json",
        gss("negative", json!(-1)).to_string(),
    );
    expect_status(
        r,
        422,
        "Invalid",
        "spec.replicas in body should be greater than or equal to 0",
    );
    let r = api.send(
        Method::POST,
        GSS,
        "application/json",
        gss("Bad_Name", json!(1)).to_string(),
    );
    let status = expect_status(
        r,
        422,
        "Invalid",
        "metadata.name: Invalid value: \"Bad_Name\"",
    );
    assert_eq!(status["details"]["causes"][0]["field"], "metadata.name");
    let mut body = gss("nolabels", json!(1));
    body["metadata"]["labels"] = json!({"tier": 5});
    let r = api.send(Method::POST, GSS, "application/json", body.to_string());
    expect_status(r, 422, "Invalid", "metadata.labels.tier");

    // A body over 3 MiB: 413.
    let mut huge = gss("huge", json!(1));
    huge["metadata"]["annotations"] = json!({"blob": "x".repeat(3 * 1024 * 1024 + 1)});
    let r = api.send(Method::POST, GSS, "application/json", huge.to_string());
    expect_status(r, 413, "RequestEntityTooLarge", "Request entity too large");

    // A missing object: 404; an existing name: 409 AlreadyExists.
    let r = api
        .http
        .get(api.url(&format!("{GSS}/nope")))
        .send()
        .expect("get");
    expect_status(
        r,
        404,
        "NotFound",
        r#"gameserversets.game.kruise.io "nope" not found"#,
    );
    let r = api.send(
        Method::PATCH,
        &format!("{GSS}/nope"),
        "application/merge-patch+json",
        "{}",
    );
    expect_status(r, 404, "NotFound", "not found");
    let r = api.send(
        Method::POST,
        GSS,
        "application/json",
        gss("keep", json!(9)).to_string(),
    );
    expect_status(
        r,
        409,
        "AlreadyExists",
        r#"gameserversets.game.kruise.io "keep" already exists"#,
    );

    // A stale resourceVersion: 409 Conflict.
    let mut stale = gss("keep", json!(5));
    stale["metadata"]["resourceVersion"] = json!("0");
    let r = api.send(
        Method::PUT,
        &format!("{GSS}/keep"),
        "application/json",
        stale.to_string(),
    );
    expect_status(r, 409, "Conflict", "the object has been modified");
    let r = api.send(
        Method::PATCH,
        &format!("{GSS}/keep"),
        "application/merge-patch+json",
        r#"{"metadata":{"resourceVersion":"0"},"spec":{"replicas":5}}"#,
    );
    expect_status(r, 409, "Conflict", "the object has been modified");

    // A patch that would make the object invalid: 422, nothing written.
    let r = api.send(
        Method::PATCH,
        &format!("{GSS}/keep"),
        "application/merge-patch+json",
        r#"{"spec":{"replicas":-3}}"#,
    );
    expect_status(r, 422, "Invalid", "spec.replicas");
    let r = api.send(Method::PATCH, &format!("{GSS}/keep"), "application/json-patch+json", r#"[{"op":"test","path":"/spec/replicas","value":99},{"op":"replace","path":"/spec/replicas","value":1}]"#);
    expect_status(r, 422, "Invalid", "JSON patch could not be applied");
    let r = api.send(
        Method::PATCH,
        &format!("{GSS}/keep"),
        "application/strategic-merge-patch+json",
        r#"{"spec":{"replicas":1}}"#,
    );
    expect_status(
        r,
        415,
        "UnsupportedMediaType",
        "application/merge-patch+json",
    );
    let r = api.send(
        Method::PATCH,
        &format!("{GSS}/keep/scale"),
        "application/merge-patch+json",
        r#"{"spec":{"replicas":-1}}"#,
    );
    expect_status(r, 422, "Invalid", "spec.replicas");
    let r = api.send(
        Method::PUT,
        &format!("{GSS}/keep"),
        "application/json",
        gss("other", json!(1)).to_string(),
    );
    expect_status(r, 400, "BadRequest", "does not match the name on the URL");
    let wrong_kind = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}});
    let r = api.send(
        Method::POST,
        GSS,
        "application/json",
        wrong_kind.to_string(),
    );
    expect_status(r, 400, "BadRequest", "Kind=Pod");
    let r = api
        .http
        .get(api.url(&format!("{GSS}?labelSelector=a%20in%20b")))
        .send()
        .expect("get");
    expect_status(r, 400, "BadRequest", "invalid label selector");

    assert_eq!(
        api.snapshot(),
        before,
        "no failed request may leave a write behind"
    );
}

#[test]
fn status_and_spec_are_written_only_through_their_endpoints() {
    let api = Api::new();
    use reqwest::Method;
    let mut body = gss("m", json!(3));
    body["status"] = json!({"replicas": 42, "currentReplicas": 0, "readyReplicas": 0, "availableReplicas": 0, "updatedReplicas": 0});
    let created: Value = api
        .send(Method::POST, GSS, "application/json", body.to_string())
        .json()
        .expect("json");
    assert!(
        created.get("status").is_none(),
        "status is dropped on create"
    );
    let r = api.send(
        Method::PATCH,
        &format!("{GSS}/m"),
        "application/merge-patch+json",
        r#"{"spec":{"replicas":4},"status":{"replicas":7}}"#,
    );
    let patched: Value = r.json().expect("json");
    assert_eq!(patched["spec"]["replicas"], 4);
    assert!(
        patched.get("status").is_none(),
        "a main-resource write never changes status"
    );
    assert_eq!(patched["metadata"]["generation"], 2);
    let r = api.send(Method::PATCH, &format!("{GSS}/m/status"), "application/merge-patch+json", r#"{"spec":{"replicas":9},"status":{"replicas":7,"currentReplicas":7,"readyReplicas":0,"availableReplicas":0,"updatedReplicas":0}}"#);
    let status: Value = r.json().expect("json");
    assert_eq!(status["status"]["replicas"], 7);
    assert_eq!(
        status["spec"]["replicas"], 4,
        "a status write never changes spec"
    );
    assert_eq!(
        status["metadata"]["generation"], 2,
        "status writes do not bump generation"
    );
    let scale: Value = api
        .http
        .get(api.url(&format!("{GSS}/m/scale")))
        .send()
        .expect("scale")
        .json()
        .expect("json");
    assert_eq!(scale["kind"], "Scale");
    assert_eq!(scale["spec"]["replicas"], 4);
    assert_eq!(scale["status"]["replicas"], 7);
}

#[test]
fn paging_walks_every_object_once() {
    let api = Api::new();
    use reqwest::Method;
    for i in 0..23 {
        let r = api.send(
            Method::POST,
            GSS,
            "application/json",
            gss(&format!("s-{i:02}"), json!(1)).to_string(),
        );
        assert_eq!(r.status().as_u16(), 201);
    }
    let mut names = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut url = api.url(&format!("{GSS}?limit=5"));
        if let Some(t) = &token {
            url.push_str(&format!("&continue={t}"));
        }
        let page: Value = api
            .http
            .get(url)
            .send()
            .expect("page")
            .json()
            .expect("json");
        let items = page["items"].as_array().expect("items");
        assert!(items.len() <= 5);
        names.extend(
            items
                .iter()
                .map(|i| i["metadata"]["name"].as_str().unwrap_or("").to_owned()),
        );
        match page["metadata"]["continue"].as_str() {
            Some(t) => token = Some(t.to_owned()),
            None => break,
        }
    }
    let expected: Vec<String> = (0..23).map(|i| format!("s-{i:02}")).collect();
    assert_eq!(names, expected);
}

/// kube-apiserver's answers to what a browser or another client sends
/// (issue 13): media types it cannot decode get 415, a built-in object
/// without apiVersion/kind takes them from the URL, a custom resource does
/// not, and `/version/` answers as `/version`.
#[test]
fn answers_as_kube_apiserver_gives_them() {
    let api = Api::new();
    use reqwest::Method;
    let before = api.snapshot();
    // A page on any site can POST these without a CORS preflight.
    for content_type in ["text/plain", "application/x-www-form-urlencoded"] {
        let r = api.send(
            Method::POST,
            GSS,
            content_type,
            gss("sneaky", json!(1)).to_string(),
        );
        expect_status(r, 415, "UnsupportedMediaType", "unknown format");
        let r = api.send(
            Method::PUT,
            &format!("{GSS}/sneaky"),
            content_type,
            gss("sneaky", json!(1)).to_string(),
        );
        expect_status(r, 415, "UnsupportedMediaType", "unknown format");
    }
    assert_eq!(api.snapshot(), before, "nothing was stored");
    // Python's kubernetes client posts core/v1 objects without them
    // (create_namespaced_event).
    let event = json!({"metadata": {"name": "e1"}, "reason": "Test", "message": "m",
        "involvedObject": {"kind": "GameServerSet", "name": "x", "namespace": "default"}});
    let r = api.send(
        Method::POST,
        "/api/v1/namespaces/default/events",
        "application/json",
        event.to_string(),
    );
    assert_eq!(r.status().as_u16(), 201);
    let created: Value = r.json().expect("json");
    assert_eq!(
        (created["apiVersion"].as_str(), created["kind"].as_str()),
        (Some("v1"), Some("Event"))
    );
    let mut bare = gss("bare", json!(1));
    bare.as_object_mut().expect("object").remove("kind");
    bare.as_object_mut().expect("object").remove("apiVersion");
    let r = api.send(Method::POST, GSS, "application/json", bare.to_string());
    expect_status(r, 400, "BadRequest", "Kind");
    let version: Value = api
        .http
        .get(api.url("/version/"))
        .send()
        .expect("version")
        .json()
        .expect("json");
    assert!(
        version["gitVersion"]
            .as_str()
            .is_some_and(|v| v.starts_with("v1.")),
        "{version}"
    );
}

/// `kubectl auth can-i` (SelfSubjectAccessReview, sent as protobuf) and an
/// independent client's JSON review answer as kube-apiserver answers an
/// administrator (kubernetes pkg/registry/authorization): 201, the spec
/// echoed, allowed.
#[test]
fn access_reviews_answer_as_for_an_administrator() {
    let api = Api::new();
    use reqwest::Method;
    let review = json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
        "spec": {"resourceAttributes": {"namespace": "default", "verb": "delete",
            "group": "game.kruise.io", "resource": "gameservers"}}});
    let r = api.send(
        Method::POST,
        "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
        "application/json",
        review.to_string(),
    );
    assert_eq!(r.status().as_u16(), 201);
    let answer: Value = r.json().expect("json");
    assert_eq!(answer["status"]["allowed"], true);
    assert_eq!(answer["spec"], review["spec"]);
    let r = api.send(
        Method::POST,
        "/apis/authorization.k8s.io/v1/selfsubjectrulesreviews",
        "application/json",
        json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectRulesReview",
            "spec": {"namespace": "default"}})
        .to_string(),
    );
    assert_eq!(r.status().as_u16(), 201);
    let rules: Value = r.json().expect("json");
    assert!(
        rules["status"]["resourceRules"]
            .as_array()
            .expect("rules")
            .iter()
            .any(|r| r["verbs"] == json!(["*"]) && r["resources"] == json!(["*"])),
        "{rules}"
    );
}
