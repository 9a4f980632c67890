//! The allocator's wire: the JSON of `POST /v1/allocate` and
//! `POST /v1/release`, its errors and HTTP statuses, and the validation
//! turning a request into a [`Wanted`] allocation.

use std::collections::BTreeMap;
use std::fmt;

use axum::body::Bytes;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::MAX_CONFLICTS;
use crate::api::names::is_label_value;
use crate::api::normalise_image;

/// Why an allocation or release failed.
#[derive(Debug, thiserror::Error)]
pub enum AllocatorError {
    /// The request is malformed; the message says how.
    #[error("{0}")]
    BadRequest(String),
    /// The body is not declared JSON (a web page can post a form or
    /// text/plain to the loopback port without a CORS preflight).
    #[error("the body of POST {0} must be JSON with Content-Type: application/json, not {1:?}")]
    NotJson(String, String),
    /// The request names a cluster that is not served.
    #[error("cluster {name:?} is not served here: use one of {known}")]
    UnknownCluster {
        /// The requested name.
        name: String,
        /// The served clusters, comma-separated.
        known: String,
    },
    /// The GameServer to release does not exist.
    #[error("GameServer {namespace}/{name} does not exist in cluster {cluster}")]
    NotFound {
        /// The cluster.
        cluster: String,
        /// The namespace.
        namespace: String,
        /// The server.
        name: String,
    },
    /// The cluster's cache has not been filled yet.
    #[error(
        "the allocator has not finished reading the GameServers of cluster {0} yet; retry in a moment"
    )]
    NotReady(String),
    /// Too many concurrent writers changed the candidates.
    #[error(
        "GameServers in cluster {0} changed too often while allocating ({MAX_CONFLICTS} conflicts); retry"
    )]
    Contention(String),
    /// The cluster's API server failed.
    #[error("the API server of cluster {cluster} failed: {source}")]
    Api {
        /// The cluster.
        cluster: String,
        /// Why.
        source: kube::Error,
    },
}

impl AllocatorError {
    /// The HTTP status the error is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) | Self::UnknownCluster { .. } => StatusCode::BAD_REQUEST,
            Self::NotFound { .. } => StatusCode::NOT_FOUND,
            Self::NotJson(..) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::NotReady(_) | Self::Contention(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Api { .. } => StatusCode::BAD_GATEWAY,
        }
    }
}

impl IntoResponse for AllocatorError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::warn!(error = %self, "allocator request failed");
        } else {
            tracing::debug!(error = %self, "allocator request rejected");
        }
        (status, axum::Json(json!({"error": self.to_string()}))).into_response()
    }
}

fn default_namespace() -> Option<String> {
    Some("default".to_owned())
}

/// `POST /v1/allocate`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AllocationRequest {
    /// Namespace of the servers (default `default`).
    #[serde(default = "default_namespace")]
    pub namespace: Option<String>,
    /// Cluster to allocate in (default: the first served cluster).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    /// Ordered selectors: the first with a match wins; none = any server.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub selectors: Vec<GameServerSelector>,
    /// Players joining the match (default 1), written to `status.players`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub players: Option<i32>,
    /// Labels and annotations to put on the allocated server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<AllocationMetadata>,
}

/// One selector of an allocation; every given field must match.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GameServerSelector {
    /// The owning GameServerSet (label [`OWNER_GSS_LABEL`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub game_server_set: Option<String>,
    /// Labels the server must carry with exactly these values.
    #[serde(
        default,
        alias = "matchLabels",
        skip_serializing_if = "Option::is_none"
    )]
    pub labels: Option<BTreeMap<String, String>>,
    /// An image any container runs (by its status), compared as Docker
    /// references (`nginx` = `docker.io/library/nginx:latest`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
}

/// Labels and annotations applied to an allocated server.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AllocationMetadata {
    /// Labels to set.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Annotations to set.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// The answer to an allocation (and to a release).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AllocationResponse {
    /// `Allocated`, `UnAllocated` or (release) `Released`.
    pub state: String,
    /// The allocated (released) server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub game_server_name: Option<String>,
    /// Its namespace.
    pub namespace: String,
    /// Its cluster.
    pub cluster: String,
    /// Its GameServerSet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub game_server_set: Option<String>,
    /// The image it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Its `spec.opsState` after a release.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ops_state: Option<String>,
    /// Why nothing was allocated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// `POST /v1/release`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReleaseRequest {
    /// Namespace of the server (default `default`).
    #[serde(default = "default_namespace")]
    pub namespace: Option<String>,
    /// Cluster of the server (default: the first served cluster).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    /// The server whose match ends.
    pub game_server_name: String,
}

impl fmt::Display for GameServerSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if let Some(set) = &self.game_server_set {
            parts.push(format!("gameServerSet={set}"));
        }
        if let Some(labels) = &self.labels
            && !labels.is_empty()
        {
            let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
            parts.push(format!("labels {}", labels.join(",")));
        }
        if let Some(image) = &self.image {
            parts.push(format!("image={}", normalise_image(image)));
        }
        if parts.is_empty() {
            f.write_str("any server")
        } else {
            f.write_str(&parts.join(" "))
        }
    }
}

/// A validated allocation.
pub(super) struct Wanted {
    pub(super) namespace: String,
    pub(super) selectors: Vec<GameServerSelector>,
    pub(super) players: i32,
    pub(super) labels: BTreeMap<String, String>,
    pub(super) annotations: BTreeMap<String, String>,
}

pub(super) fn check_namespace(namespace: Option<String>) -> Result<String, AllocatorError> {
    let namespace = namespace.unwrap_or_else(|| "default".to_owned());
    match crate::api::names::dns_label_error(&namespace) {
        Some(why) => Err(AllocatorError::BadRequest(format!(
            "namespace {namespace:?} is not a valid namespace name: {why}"
        ))),
        None => Ok(namespace),
    }
}

/// Why `key` is not a valid label or annotation key, if it is not
/// (`[prefix/]name`, name up to 63 characters, prefix a DNS subdomain).
fn key_error(key: &str) -> Option<String> {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    if let Some(prefix) = prefix
        && crate::api::names::dns_subdomain_error(prefix).is_some()
    {
        return Some(format!(
            "the prefix {prefix:?} must be a DNS subdomain such as example.com"
        ));
    }
    if !is_label_value(name) || name.is_empty() {
        return Some(
            "the name part must be 1-63 characters of letters, digits, '-', '_' or '.', starting and ending with a letter or digit".to_owned(),
        );
    }
    None
}

/// The allocation `request` asks for, or why it is malformed.
pub(super) fn validate(request: AllocationRequest) -> Result<Wanted, AllocatorError> {
    let bad = |m: String| Err(AllocatorError::BadRequest(m));
    let namespace = check_namespace(request.namespace)?;
    let players = request.players.unwrap_or(1);
    if players < 0 {
        return bad(format!("players must be 0 or more, not {players}"));
    }
    for (i, selector) in request.selectors.iter().enumerate() {
        if selector
            .image
            .as_deref()
            .is_some_and(|s| s.trim().is_empty())
        {
            return bad(format!(
                "selector {} has an empty image: give an image reference such as nginx:1.25 or leave the field out",
                i + 1
            ));
        }
        if selector.game_server_set.as_deref() == Some("") {
            return bad(format!(
                "selector {} has an empty gameServerSet: name a GameServerSet or leave the field out",
                i + 1
            ));
        }
    }
    let metadata = request.metadata.unwrap_or_default();
    for (k, v) in &metadata.labels {
        if let Some(why) = key_error(k) {
            return bad(format!("metadata.labels key {k:?} is invalid: {why}"));
        }
        if !is_label_value(v) {
            return bad(format!(
                "metadata.labels value {v:?} of {k} is invalid: a label value is at most 63 characters of letters, digits, '-', '_' or '.', starting and ending with a letter or digit"
            ));
        }
    }
    for k in metadata.annotations.keys() {
        if let Some(why) = key_error(k) {
            return bad(format!("metadata.annotations key {k:?} is invalid: {why}"));
        }
    }
    Ok(Wanted {
        namespace,
        selectors: request.selectors,
        players,
        labels: metadata.labels,
        annotations: metadata.annotations,
    })
}

/// Parses the JSON body of `POST path`.
pub(super) fn parse_body<T: serde::de::DeserializeOwned>(
    path: &str,
    headers: &axum::http::HeaderMap,
    body: &Bytes,
) -> Result<T, AllocatorError> {
    let content_type = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let media = content_type.split(';').next().unwrap_or("").trim();
    if !media.eq_ignore_ascii_case("application/json") {
        return Err(AllocatorError::NotJson(
            path.to_owned(),
            content_type.to_owned(),
        ));
    }
    serde_json::from_slice(body).map_err(|e| {
        AllocatorError::BadRequest(format!(
            "the body of POST {path} is not a valid request: {e}"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_validated() {
        let ok: AllocationRequest = serde_json::from_str(
            r#"{"selectors":[{"gameServerSet":"x","matchLabels":{"a":"b"}}]}"#,
        )
        .unwrap();
        let wanted = validate(ok).unwrap();
        assert_eq!(wanted.namespace, "default");
        assert_eq!(wanted.players, 1);
        assert!(serde_json::from_str::<AllocationRequest>(r#"{"selector":[]}"#).is_err());
        for body in [
            r#"{"players":-1}"#,
            r#"{"namespace":"Not_A_Namespace"}"#,
            r#"{"selectors":[{"image":""}]}"#,
            r#"{"metadata":{"labels":{"bad key!":"v"}}}"#,
            r#"{"metadata":{"labels":{"k":"bad value!"}}}"#,
            r#"{"metadata":{"annotations":{"/x":"v"}}}"#,
        ] {
            let request: AllocationRequest = serde_json::from_str(body).unwrap();
            assert!(
                matches!(validate(request), Err(AllocatorError::BadRequest(_))),
                "{body}"
            );
        }
        assert!(key_error("example.com/team").is_none());
        assert!(key_error("team").is_none());
        assert!(is_label_value(""));
    }
}
