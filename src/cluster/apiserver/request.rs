//! What a resource request asks for: the path parsed into group, version,
//! namespace, resource, name and subresource; the query parameters; the
//! response format the client accepts; and the decoded body.

use std::collections::HashMap;

use axum::http::{HeaderMap, header};
use serde_json::Value;

use super::resources::{self, ResourceDef};
use super::status::ApiError;

/// The largest request body accepted, as the Kubernetes API server.
pub const MAX_BODY: usize = 3 * 1024 * 1024;

/// A resource path: `/api/v1/...` or `/apis/GROUP/VERSION/...`.
#[derive(Debug, Clone)]
pub struct Target {
    /// The resource.
    pub def: &'static ResourceDef,
    /// The namespace in the path, if any.
    pub namespace: Option<String>,
    /// The object name, if any.
    pub name: Option<String>,
    /// `status` or `scale`, if addressed.
    pub subresource: Option<String>,
}

/// Parses a resource path; `None` when it names no served resource.
pub fn parse_path(path: &str) -> Option<Target> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, rest) = match segs.as_slice() {
        ["api", version, rest @ ..] => ("", *version, rest),
        ["apis", group, version, rest @ ..] => (*group, *version, rest),
        _ => return None,
    };
    let (namespace, rest) = match rest {
        ["namespaces", ns, rest @ ..] if !rest.is_empty() => (Some((*ns).to_owned()), rest),
        _ => (None, rest),
    };
    let (plural, name, sub) = match rest {
        [plural] => (*plural, None, None),
        [plural, name] => (*plural, Some((*name).to_owned()), None),
        [plural, name, sub] => (*plural, Some((*name).to_owned()), Some((*sub).to_owned())),
        _ => return None,
    };
    let def = resources::find(group, version, plural)?;
    if def.namespaced != namespace.is_some() && (name.is_some() || !def.namespaced) {
        return None;
    }
    Some(Target {
        def,
        namespace,
        name,
        subresource: sub,
    })
}

/// How unknown fields in a write are treated (`fieldValidation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldValidation {
    /// Reject the request naming each unknown field.
    Strict,
    /// Drop them and warn (the default).
    Warn,
    /// Drop them silently.
    Ignore,
}

/// The query parameters the server understands.
#[derive(Debug, Clone)]
pub struct Params {
    /// `watch=true`.
    pub watch: bool,
    /// `labelSelector`.
    pub label_selector: Option<String>,
    /// `fieldSelector`.
    pub field_selector: Option<String>,
    /// `limit`.
    pub limit: Option<usize>,
    /// `continue`.
    pub continue_token: Option<String>,
    /// `resourceVersion`.
    pub resource_version: Option<String>,
    /// `timeoutSeconds`.
    pub timeout_seconds: Option<u64>,
    /// `allowWatchBookmarks=true`.
    pub allow_bookmarks: bool,
    /// `sendInitialEvents=true`.
    pub send_initial_events: bool,
    /// `fieldValidation`.
    pub field_validation: FieldValidation,
    /// `fieldManager`.
    pub field_manager: Option<String>,
    /// `force=true` (server-side apply).
    pub force: bool,
    /// `dryRun=All`.
    pub dry_run: bool,
    /// `propagationPolicy`.
    pub propagation_policy: Option<String>,
}

fn truthy(v: Option<&String>) -> bool {
    matches!(v.map(String::as_str), Some("true" | "1"))
}

impl Params {
    /// Parses a query string (kube-rs sends a leading `&`).
    pub fn parse(query: Option<&str>) -> Result<Self, ApiError> {
        let map: HashMap<String, String> = form_urlencoded::parse(query.unwrap_or("").as_bytes())
            .filter(|(k, _)| !k.is_empty())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        let number = |key: &str| -> Result<Option<u64>, ApiError> {
            map.get(key)
                .filter(|v| !v.is_empty())
                .map(|v| {
                    v.parse::<u64>().map_err(|_| {
                        ApiError::bad_request(format!(
                            "{key}: invalid value \"{v}\": must be a non-negative integer"
                        ))
                    })
                })
                .transpose()
        };
        let field_validation = match map.get("fieldValidation").map(String::as_str) {
            None | Some("") | Some("Warn") => FieldValidation::Warn,
            Some("Strict") => FieldValidation::Strict,
            Some("Ignore") => FieldValidation::Ignore,
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "fieldValidation: invalid value \"{other}\": must be one of Ignore, Warn or Strict"
                )));
            }
        };
        let dry_run = match map.get("dryRun").map(String::as_str) {
            None | Some("") => false,
            Some("All") => true,
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "dryRun: invalid value \"{other}\": the only supported value is All"
                )));
            }
        };
        let non_empty = |k: &str| map.get(k).filter(|v| !v.is_empty()).cloned();
        Ok(Self {
            watch: truthy(map.get("watch")),
            label_selector: non_empty("labelSelector"),
            field_selector: non_empty("fieldSelector"),
            limit: number("limit")?.map(|n| n as usize).filter(|n| *n > 0),
            continue_token: non_empty("continue"),
            resource_version: non_empty("resourceVersion"),
            timeout_seconds: number("timeoutSeconds")?,
            allow_bookmarks: truthy(map.get("allowWatchBookmarks")),
            send_initial_events: truthy(map.get("sendInitialEvents")),
            field_validation,
            field_manager: non_empty("fieldManager"),
            force: truthy(map.get("force")),
            dry_run,
            propagation_policy: non_empty("propagationPolicy"),
        })
    }
}

/// The representation a client asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// The objects themselves.
    Json,
    /// `meta.k8s.io/v1` Table.
    Table,
    /// `PartialObjectMetadata` / `PartialObjectMetadataList`.
    Metadata,
}

/// Reads `Accept`: the first entry the server can produce wins.
pub fn format(headers: &HeaderMap) -> Format {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    for entry in accept.split(',') {
        let params: Vec<&str> = entry.split(';').map(str::trim).collect();
        let media = params.first().copied().unwrap_or("");
        if media != "application/json" && media != "*/*" {
            continue;
        }
        let as_ = params.iter().find_map(|p| p.strip_prefix("as="));
        let group = params.iter().find_map(|p| p.strip_prefix("g="));
        match (as_, group) {
            (Some("Table"), Some("meta.k8s.io")) => return Format::Table,
            (Some("PartialObjectMetadata" | "PartialObjectMetadataList"), Some("meta.k8s.io")) => {
                return Format::Metadata;
            }
            (None, _) => return Format::Json,
            _ => {}
        }
    }
    Format::Json
}

fn content_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// A patch's type, from its Content-Type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    /// RFC 7386.
    Merge,
    /// RFC 6902.
    Json,
    /// Server-side apply.
    Apply,
    /// Strategic merge (built-in types only).
    Strategic,
}

/// The patch type of a PATCH request; strategic merge on a custom resource
/// (`builtin` false) and unknown types are refused with 415 as the API
/// server does.
pub fn patch_type(headers: &HeaderMap, builtin: bool) -> Result<PatchType, ApiError> {
    match content_type(headers).as_str() {
        "application/merge-patch+json" => Ok(PatchType::Merge),
        "application/json-patch+json" => Ok(PatchType::Json),
        "application/apply-patch+yaml" | "application/apply-patch+cbor" => Ok(PatchType::Apply),
        "application/strategic-merge-patch+json" if builtin => Ok(PatchType::Strategic),
        "application/strategic-merge-patch+json" => Err(ApiError::unsupported_media(
            "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml",
        )),
        other => Err(ApiError::unsupported_media(format!(
            "the body of the request was in an unknown format ({other}) - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml"
        ))),
    }
}

/// Decodes a JSON or YAML body into a value. Other media types (a form, a
/// text/plain body a web page can send without a CORS preflight) are
/// refused with 415, as kube-apiserver's
/// `negotiation.NegotiateInputSerializerForMediaType` does; a request
/// without a Content-Type is taken as JSON, its first media type.
pub fn decode(body: &[u8], headers: &HeaderMap) -> Result<Value, ApiError> {
    let ct = content_type(headers);
    if !matches!(
        ct.as_str(),
        "application/json"
            | "application/yaml"
            | "application/merge-patch+json"
            | "application/json-patch+json"
            | "application/strategic-merge-patch+json"
            | "application/apply-patch+yaml"
    ) {
        return Err(ApiError::unsupported_media(format!(
            "the body of the request was in an unknown format ({ct}) - accepted media types include: application/json, application/yaml"
        )));
    }
    if ct.contains("yaml") {
        serde_yaml_ng::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("the request body is not valid YAML: {e}")))
    } else {
        serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("the request body is not valid JSON: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn paths() {
        let t =
            parse_path("/apis/game.kruise.io/v1alpha1/namespaces/default/gameservers/m-0/status")
                .unwrap();
        assert_eq!(t.def.plural, "gameservers");
        assert_eq!(t.namespace.as_deref(), Some("default"));
        assert_eq!(t.name.as_deref(), Some("m-0"));
        assert_eq!(t.subresource.as_deref(), Some("status"));
        let all = parse_path("/apis/game.kruise.io/v1alpha1/gameserversets").unwrap();
        assert!(all.namespace.is_none() && all.name.is_none());
        assert!(parse_path("/api/v1/namespaces/default/events").is_some());
        assert!(
            parse_path("/apis/game.kruise.io/v1alpha1/gameserversets/x").is_none(),
            "namespaced object without namespace"
        );
        assert!(parse_path("/apis/other/v1/things").is_none());
    }

    #[test]
    fn accept_negotiation() {
        let mut h = HeaderMap::new();
        assert_eq!(format(&h), Format::Json);
        h.insert(header::ACCEPT, HeaderValue::from_static("application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"));
        assert_eq!(format(&h), Format::Table);
        h.insert(
            header::ACCEPT,
            HeaderValue::from_static(
                "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json",
            ),
        );
        assert_eq!(format(&h), Format::Metadata);
        h.insert(
            header::ACCEPT,
            HeaderValue::from_static("application/vnd.kubernetes.protobuf, */*"),
        );
        assert_eq!(format(&h), Format::Json);
    }

    #[test]
    fn params_from_kube_rs_query() {
        let p = Params::parse(Some("&watch=true&timeoutSeconds=290&allowWatchBookmarks=true&resourceVersion=12&labelSelector=a%3Db")).unwrap();
        assert!(p.watch && p.allow_bookmarks);
        assert_eq!(p.timeout_seconds, Some(290));
        assert_eq!(p.resource_version.as_deref(), Some("12"));
        assert_eq!(p.label_selector.as_deref(), Some("a=b"));
        assert_eq!(p.field_validation, FieldValidation::Warn);
        assert!(Params::parse(Some("limit=x")).is_err());
        assert!(Params::parse(Some("fieldValidation=Loud")).is_err());
    }

    #[test]
    fn strategic_merge_is_refused_with_415_on_custom_resources() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/strategic-merge-patch+json"),
        );
        assert_eq!(patch_type(&h, false).unwrap_err().code.as_u16(), 415);
        assert_eq!(patch_type(&h, true).unwrap(), PatchType::Strategic);
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/apply-patch+yaml; charset=utf-8"),
        );
        assert_eq!(patch_type(&h, false).unwrap(), PatchType::Apply);
    }
}
