//! The allocator's HTTP handlers: parse the body, call the [`Allocator`],
//! answer JSON.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};

use super::Allocator;
use super::wire::{AllocationRequest, ReleaseRequest, parse_body};

/// `POST /v1/allocate`.
pub(super) async fn allocate_handler(
    State(allocator): State<Arc<Allocator>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request = match parse_body::<AllocationRequest>("/v1/allocate", &headers, &body) {
        Ok(r) => r,
        Err(e) => {
            let cluster = allocator
                .clusters
                .first()
                .map(|c| c.name.clone())
                .unwrap_or_default();
            allocator.count(&cluster, "Error");
            return e.into_response();
        }
    };
    match allocator.allocate(request).await {
        Ok(r) => axum::Json(r).into_response(),
        Err(e) => e.into_response(),
    }
}

/// `POST /v1/release`.
pub(super) async fn release_handler(
    State(allocator): State<Arc<Allocator>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let result = match parse_body::<ReleaseRequest>("/v1/release", &headers, &body) {
        Ok(request) => allocator.release(request).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(r) => axum::Json(r).into_response(),
        Err(e) => e.into_response(),
    }
}
