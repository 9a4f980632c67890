//! GET of one object and LIST with selectors and paging.

use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::Response;
use base64::Engine;
use serde_json::{Value, json};

use super::scale::scale_of;
use super::{Cluster, json_response, key, name_of, no_subresource, render_one};
use crate::cluster::apiserver::request::{Format, Params, Target};
use crate::cluster::apiserver::resources::ResourceDef;
use crate::cluster::apiserver::selector::Selection;
use crate::cluster::apiserver::status::ApiError;
use crate::cluster::apiserver::table;
use crate::cluster::store::StoredObject;

/// GET of one object or subresource.
pub fn get(cluster: &Cluster, target: &Target, format: Format) -> Result<Response, ApiError> {
    let name = name_of(target)?;
    let def = target.def;
    let current = cluster
        .store
        .get(&key(target, name))
        .ok_or_else(|| ApiError::not_found(&def.qualified(), name))?;
    match target.subresource.as_deref() {
        None | Some("status") => Ok(render_one(
            def,
            format,
            StatusCode::OK,
            current.json.clone(),
        )),
        Some("scale") => Ok(json_response(
            StatusCode::OK,
            scale_of(def, &current.value)?.to_string(),
        )),
        Some(other) => Err(no_subresource(def, other)),
    }
}

/// The continue token: where the next page starts and the list's version.
#[derive(serde::Serialize, serde::Deserialize)]
struct Continue {
    rv: u64,
    after: (String, String),
}

/// kube-apiserver's 410 for a continue token older than its history
/// (apiserver `storage/etcd3/errors.go` `continueExpired`; it may also offer
/// an inconsistent continuation, which this server does not).
const CONTINUE_EXPIRED: &str = "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.";

/// LIST, with selectors and paging: each page of one list shows the
/// objects as they were when its first page was listed.
pub async fn list(
    cluster: &Cluster,
    target: &Target,
    params: &Params,
    format: Format,
) -> Result<Response, ApiError> {
    let def = target.def;
    let selection = Selection::parse(def, params)?;
    let after = params
        .continue_token
        .as_deref()
        .map(|t| {
            base64::engine::general_purpose::STANDARD
                .decode(t)
                .ok()
                .and_then(|b| serde_json::from_slice::<Continue>(&b).ok())
                .ok_or_else(|| {
                    ApiError::bad_request(
                        "continue: invalid continue token; start the list again without it",
                    )
                })
        })
        .transpose()?;
    let ns = target.namespace.as_deref();
    let (items, list_rv) = match &after {
        // A later page lists the first page's version (etcd3 store.go
        // `GetList` reads the continue token's revision).
        Some(c) => (
            cluster
                .store
                .list_at(def.plural, ns, c.rv)
                .map_err(|_| ApiError::expired(CONTINUE_EXPIRED))?,
            c.rv,
        ),
        None => cluster.store.list(def.plural, ns),
    };
    let mut selected = items.iter().filter(|o| {
        after.as_ref().is_none_or(|c| list_position(o) > c.after) && selection.matches(&o.value)
    });
    let limit = params.limit.unwrap_or(usize::MAX);
    let page: Vec<&Arc<StoredObject>> = selected.by_ref().take(limit).collect();
    let rest = selected.count();
    let mut list_meta = json!({"resourceVersion": list_rv.to_string()});
    if rest > 0
        && let Some(last) = page.last()
    {
        let token = Continue {
            rv: list_rv,
            after: list_position(last),
        };
        let raw = serde_json::to_vec(&token).unwrap_or_default();
        list_meta["continue"] = json!(base64::engine::general_purpose::STANDARD.encode(raw));
        list_meta["remainingItemCount"] = json!(rest);
    }
    let page: Vec<Arc<StoredObject>> = page.into_iter().cloned().collect();
    if format == Format::Json {
        return Ok(json_response(
            StatusCode::OK,
            render_list(def, format, &page, &list_meta),
        ));
    }
    // Tables and metadata are rendered per row: off the async workers.
    let body = tokio::task::spawn_blocking(move || render_list(def, format, &page, &list_meta))
        .await
        .map_err(|e| ApiError::internal(format!("rendering the list failed: {e}")))?;
    Ok(json_response(StatusCode::OK, body))
}

/// Where an object stands in a list: by namespace, then name.
fn list_position(o: &StoredObject) -> (String, String) {
    (o.namespace().to_owned(), o.name().to_owned())
}

/// Serialises a list page: JSON by joining the stored bytes, or a Table, or
/// a `PartialObjectMetadataList`.
fn render_list(
    def: &ResourceDef,
    format: Format,
    page: &[Arc<StoredObject>],
    list_meta: &Value,
) -> Vec<u8> {
    if format == Format::Table {
        return table::table(def, page.iter().map(|o| &o.value), list_meta);
    }
    let (api_version, kind) = match format {
        Format::Metadata => ("meta.k8s.io/v1".to_owned(), "PartialObjectMetadataList"),
        _ => (def.api_version(), def.list_kind),
    };
    let head = format!(
        "{{\"apiVersion\":\"{api_version}\",\"kind\":\"{kind}\",\"metadata\":{list_meta},\"items\":["
    );
    let mut body =
        Vec::with_capacity(head.len() + page.iter().map(|o| o.json.len() + 1).sum::<usize>() + 2);
    body.extend_from_slice(head.as_bytes());
    for (i, o) in page.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        match format {
            Format::Metadata => body.extend_from_slice(&table::partial_metadata(&o.value)),
            _ => body.extend_from_slice(&o.json),
        }
    }
    body.extend_from_slice(b"]}");
    body
}
