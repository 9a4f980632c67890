//! The embedded Kubernetes-compatible API server: the HTTP surface that
//! kubectl and kube-rs use unchanged, over one [`Store`] per named cluster.
//!
//! The first cluster is served at the root; every cluster is also served
//! under `/clusters/NAME`, so one listener serves several independent
//! clusters (one kubeconfig context each).

pub mod access_review;
pub mod age;
pub mod discovery;
pub mod event_ttl;
pub mod gc;
pub mod objectmeta;
pub mod objects;
pub mod openapi;
pub mod pods;
pub mod request;
pub mod resources;
pub mod selector;
pub mod status;
pub mod strategic;
pub mod table;
pub mod validation;
pub mod watch;

use std::path::Path;

use axum::Router;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;

use crate::cluster::store::{Store, StoreError};
use request::Params;
use status::ApiError;

/// One embedded cluster: a name and its store.
#[derive(Clone)]
pub struct Cluster {
    /// The cluster's name (its kubeconfig context).
    pub name: String,
    /// Its objects.
    pub store: Store,
}

impl Cluster {
    /// Opens a cluster's store: durable under `data_dir/NAME`, or in memory.
    pub fn open(name: &str, data_dir: Option<&Path>) -> Result<Self, StoreError> {
        let dir = data_dir.map(|d| d.join(name));
        Ok(Self {
            name: name.to_owned(),
            store: Store::open(dir.as_deref(), &resources::plurals())?,
        })
    }
}

/// Answers every resource path (`/api/v1/...`, `/apis/G/V/...`). The body
/// is read within [`request::MAX_BODY`] (the [`crate::http::body_limit`]
/// layer on the routes); over it, the answer is kube-apiserver's 413 Status.
async fn resource(
    State(cluster): State<Cluster>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let answer = match body {
        Ok(body) => handle(&cluster, &method, &uri, &headers, body).await,
        Err(_) => Err(ApiError::too_large(request::MAX_BODY)),
    };
    answer.unwrap_or_else(IntoResponse::into_response)
}

async fn handle(
    cluster: &Cluster,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let path = uri.path();
    let target = match request::parse_path(path) {
        Some(t) => t,
        None => return discovery_path(path, headers),
    };
    let mut params = Params::parse(uri.query())?;
    let applying = headers
        .get(axum::http::header::CONTENT_TYPE)
        .is_some_and(|t| t.as_bytes().starts_with(b"application/apply-patch"));
    if matches!(*method, Method::POST | Method::PUT | Method::PATCH) && !applying {
        params.field_manager = params
            .field_manager
            .or_else(|| Some(manager_from_user_agent(headers)));
    }
    let format = request::format(headers);
    let decoded = || request::decode(&body, headers);
    match (method, target.name.is_some()) {
        (&Method::GET, false) if params.watch => watch::watch(cluster, &target, &params, format),
        (&Method::GET, false) => objects::list(cluster, &target, &params, format).await,
        (&Method::GET, true) => objects::get(cluster, &target, format),
        (&Method::POST, _) => objects::create(cluster, &target, &params, decoded()?, format).await,
        (&Method::PUT, true) => {
            objects::update(cluster, &target, &params, decoded()?, format).await
        }
        (&Method::PATCH, true) => {
            let patch_type = request::patch_type(headers, target.def.group.is_empty())?;
            objects::patch(cluster, &target, &params, patch_type, decoded()?, format).await
        }
        (&Method::DELETE, named) => {
            let options = if body.is_empty() {
                None
            } else {
                Some(decoded()?)
            };
            if named {
                objects::delete(cluster, &target, &params, options).await
            } else {
                objects::delete_collection(cluster, &target, &params, options).await
            }
        }
        (method, _) => Err(ApiError::method_not_allowed(format!(
            "{method} is not supported on {path}"
        ))),
    }
}

/// The field manager of a write that names none: the User-Agent up to its
/// first `/`, printable characters only, at most 128 bytes
/// (apiserver `pkg/endpoints/handlers/create.go` `prefixFromUserAgent`).
fn manager_from_user_agent(headers: &HeaderMap) -> String {
    let agent = headers
        .get(axum::http::header::USER_AGENT)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .unwrap_or_default();
    let mut out = String::new();
    for c in agent.split('/').next().unwrap_or("").chars() {
        if c.is_control() {
            continue;
        }
        if out.len() + c.len_utf8() > 128 {
            break;
        }
        out.push(c);
    }
    out
}

/// Discovery paths that are not resource paths.
fn discovery_path(path: &str, headers: &HeaderMap) -> Result<Response, ApiError> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let found = match segs.as_slice() {
        ["api"] => Some(discovery::api(headers)),
        ["apis"] => Some(discovery::apis(headers)),
        ["api", version] => discovery::resource_list("", version),
        ["apis", group] => discovery::group(group),
        ["apis", group, version] => discovery::resource_list(group, version),
        ["openapi", "v3"] => Some(objects::json_response(
            StatusCode::OK,
            openapi::index().to_string(),
        )),
        ["openapi", "v3", rest @ ..] => {
            openapi::get(&rest.join("/")).map(|d| objects::json_response(StatusCode::OK, d))
        }
        _ => None,
    };
    found.ok_or_else(|| ApiError::no_route(path))
}

fn cluster_routes(cluster: Cluster) -> Router {
    crate::http::health_routes()
        .route(
            "/version",
            get(|| async { axum::Json(discovery::version()) }),
        )
        .route(
            "/version/",
            get(|| async { axum::Json(discovery::version()) }),
        )
        .route(
            "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
            post(access_review::access),
        )
        .route(
            "/apis/authorization.k8s.io/v1/selfsubjectrulesreviews",
            post(access_review::rules),
        )
        .fallback(resource)
        .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(
            crate::http::BODY_TIMEOUT,
        ))
        .layer(crate::http::body_limit(request::MAX_BODY))
        .with_state(cluster)
}

/// The API server's router over `clusters` (the first is also served at
/// the root). With `token`, every request must carry it as a bearer token.
pub fn router(clusters: &[Cluster], token: Option<&str>) -> Router {
    let mut router = match clusters.first() {
        Some(first) => cluster_routes(first.clone()),
        None => Router::new(),
    };
    for cluster in clusters {
        router = router.nest(
            &format!("/clusters/{}", cluster.name),
            cluster_routes(cluster.clone()),
        );
    }
    let router = router.layer(tower_http::trace::TraceLayer::new_for_http());
    crate::http::require_credential(
        router,
        token.map(|t| crate::http::Credential::Bearer(t.to_owned())),
        || ApiError::unauthorized().into_response(),
    )
}
