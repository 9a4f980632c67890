//! A front for the embedded API server that plays kube-apiserver's RBAC
//! authorizer: requests pass through unchanged (watches stream), except
//! those whose verb and resource are denied, which get the `403 Forbidden`
//! Status kube-apiserver answers, word for word
//! (k8s.io/apiserver `pkg/endpoints/handlers/responsewriters/errors.go`
//! `forbiddenMessage`, wrapped by `apierrors.NewForbidden`). The embedded
//! server has one bearer token and no RBAC; this is how the tests meet a
//! ServiceAccount whose Role lacks a verb.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde_json::json;

/// The ServiceAccount the front pretends the plugin runs as.
pub const USER: &str = "system:serviceaccount:argo:gameops-executor-plugin";

/// What a request asks for, as the RBAC authorizer sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attributes {
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`, ...
    pub verb: String,
    /// The API group (`""` for core).
    pub group: String,
    /// The resource, with `/subresource` if any.
    pub resource: String,
    /// The namespace, if namespaced.
    pub namespace: Option<String>,
    /// The object's name, if one.
    pub name: Option<String>,
}

/// Reads a resource request's attributes (`/clusters/NAME` prefix allowed);
/// `None` for discovery and other non-resource paths.
pub fn attributes(method: &str, path: &str, query: &str) -> Option<Attributes> {
    let mut segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    if segs.first() == Some(&"clusters") && segs.len() > 2 {
        segs.drain(..2);
    }
    let rest: &[&str] = match segs.as_slice() {
        ["api", _version, rest @ ..] => rest,
        ["apis", _group, _version, rest @ ..] => rest,
        _ => return None,
    };
    let group = if segs[0] == "apis" { segs[1] } else { "" };
    let (namespace, rest) = match rest {
        ["namespaces", ns, rest @ ..] if !rest.is_empty() => (Some((*ns).to_owned()), rest),
        other => (None, other),
    };
    let (resource, name, sub) = match rest {
        [r] => (*r, None, None),
        [r, n] => (*r, Some((*n).to_owned()), None),
        [r, n, s] => (*r, Some((*n).to_owned()), Some(*s)),
        _ => return None,
    };
    let watch = query
        .split('&')
        .any(|kv| kv == "watch=true" || kv == "watch=1");
    let verb = match (method, name.is_some()) {
        ("GET", _) if watch => "watch",
        ("GET", true) => "get",
        ("GET", false) => "list",
        ("POST", _) => "create",
        ("PUT", _) => "update",
        ("PATCH", _) => "patch",
        ("DELETE", true) => "delete",
        ("DELETE", false) => "deletecollection",
        _ => return None,
    };
    Some(Attributes {
        verb: verb.to_owned(),
        group: group.to_owned(),
        resource: match sub {
            Some(s) => format!("{resource}/{s}"),
            None => resource.to_owned(),
        },
        namespace,
        name,
    })
}

/// kube-apiserver's 403 for `a`.
fn forbidden(a: &Attributes) -> Response {
    let scope = match &a.namespace {
        Some(ns) => format!("in the namespace {ns:?}"),
        None => "at the cluster scope".to_owned(),
    };
    let base = a.resource.split('/').next().unwrap_or_default();
    let qualified = if a.group.is_empty() {
        base.to_owned()
    } else {
        format!("{base}.{}", a.group)
    };
    let what = match &a.name {
        Some(n) => format!("{qualified} {n:?}"),
        None => qualified.clone(),
    };
    let message = format!(
        "{what} is forbidden: User {USER:?} cannot {} resource {:?} in API group {:?} {scope}",
        a.verb, a.resource, a.group
    );
    let body = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": "Forbidden",
        "details": {"name": a.name.clone().unwrap_or_default(), "group": a.group, "kind": base},
        "code": 403,
    });
    let mut r = (StatusCode::FORBIDDEN, body.to_string()).into_response();
    r.headers_mut()
        .insert("content-type", HeaderValue::from_static("application/json"));
    r
}

#[derive(Clone)]
struct Front {
    upstream: String,
    deny: Arc<Vec<(String, String)>>,
    http: reqwest::Client,
}

async fn handle(State(f): State<Front>, request: Request) -> Response {
    let method = request.method().as_str().to_owned();
    let path = request.uri().path().to_owned();
    let query = request.uri().query().unwrap_or("").to_owned();
    if let Some(a) = attributes(&method, &path, &query)
        && f.deny.iter().any(|(v, r)| *v == a.verb && *r == a.resource)
    {
        return forbidden(&a);
    }
    let url = format!("{}{}", f.upstream, request.uri());
    let mut forward = f.http.request(
        reqwest::Method::from_bytes(method.as_bytes()).expect("method"),
        url,
    );
    for (k, v) in request.headers() {
        if k != "host" {
            forward = forward.header(k.as_str(), v.as_bytes());
        }
    }
    let body = axum::body::to_bytes(request.into_body(), usize::MAX)
        .await
        .unwrap_or_default();
    let Ok(upstream) = forward.body(body).send().await else {
        return (StatusCode::BAD_GATEWAY, "upstream did not answer").into_response();
    };
    let status = StatusCode::from_u16(upstream.status().as_u16()).expect("status");
    let headers = upstream.headers().clone();
    let mut r = Response::new(Body::from_stream(
        upstream
            .bytes_stream()
            .map(|c| c.map_err(std::io::Error::other)),
    ));
    *r.status_mut() = status;
    for (k, v) in &headers {
        if let (Ok(k), Ok(v)) = (
            axum::http::HeaderName::from_bytes(k.as_str().as_bytes()),
            HeaderValue::from_bytes(v.as_bytes()),
        ) && k != "content-length"
            && k != "transfer-encoding"
        {
            r.headers_mut().append(k, v);
        }
    }
    r
}

/// Starts a front for the API server at `upstream` (`http://127.0.0.1:P`)
/// that denies each `(verb, resource)` of `deny`. Returns `127.0.0.1:PORT`.
pub async fn start(upstream: String, deny: &[(&str, &str)]) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let host = listener.local_addr().expect("addr").to_string();
    let app = axum::Router::new().fallback(handle).with_state(Front {
        upstream,
        deny: Arc::new(
            deny.iter()
                .map(|(v, r)| ((*v).to_owned(), (*r).to_owned()))
                .collect(),
        ),
        http: reqwest::Client::new(),
    });
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    host
}

/// A port that accepts connections and never answers: an API server that
/// hangs. Returns `127.0.0.1:PORT`.
pub async fn black_hole() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let host = listener.local_addr().expect("addr").to_string();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    host
}
