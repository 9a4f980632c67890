//! `SelfSubjectAccessReview` and `SelfSubjectRulesReview`
//! (authorization.k8s.io/v1), what `kubectl auth can-i` asks. Whoever
//! passes the embedded server's token is its administrator, so every
//! review answers as kube-apiserver answers a `system:masters` user
//! (kubernetes pkg/registry/authorization/selfsubjectaccessreview and
//! selfsubjectrulesreview; the rules listed are RBAC's for that group plus
//! the bootstrap discovery and review grants every user has).
//!
//! kubectl sends these reviews as protobuf; the server does not read
//! protobuf, and does not need to: the answer is the same for any review,
//! and the spec of a JSON review is echoed back as kube-apiserver does.

use axum::body::Bytes;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

use super::objects::json_response;

/// The group and version of the reviews.
pub const API_VERSION: &str = "authorization.k8s.io/v1";

fn spec_of(body: &Bytes) -> Value {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.get("spec").cloned())
        .unwrap_or_else(|| json!({}))
}

/// POST `selfsubjectaccessreviews`: allowed.
pub async fn access(body: Bytes) -> Response {
    let review = json!({
        "kind": "SelfSubjectAccessReview",
        "apiVersion": API_VERSION,
        "metadata": {},
        "spec": spec_of(&body),
        "status": {"allowed": true},
    });
    json_response(StatusCode::CREATED, review.to_string())
}

/// POST `selfsubjectrulesreviews`: everything, as for `system:masters`.
pub async fn rules(_body: Bytes) -> Response {
    let discovery = [
        "/api",
        "/api/*",
        "/apis",
        "/apis/*",
        "/healthz",
        "/livez",
        "/openapi",
        "/openapi/*",
        "/readyz",
        "/version",
        "/version/",
    ];
    let review = json!({
        "kind": "SelfSubjectRulesReview",
        "apiVersion": API_VERSION,
        "metadata": {},
        "spec": {},
        "status": {
            "resourceRules": [
                {"verbs": ["create"], "apiGroups": ["authorization.k8s.io"],
                 "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"]},
                {"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]},
            ],
            "nonResourceRules": [
                {"verbs": ["get"], "nonResourceURLs": discovery},
                {"verbs": ["*"], "nonResourceURLs": ["*"]},
            ],
            "incomplete": false,
        },
    });
    json_response(StatusCode::CREATED, review.to_string())
}
