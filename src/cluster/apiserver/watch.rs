//! Watch streams: chunked, newline-delimited JSON events (`ADDED`,
//! `MODIFIED`, `DELETED`, `BOOKMARK`, `ERROR`) exactly as kubectl and
//! kube-rs read them. A watch from a version older than the kept history
//! gets an in-stream `ERROR` with a 410 `Expired` Status, never an HTTP 410,
//! so that clients relist by themselves.

use std::convert::Infallible;

use std::time::Duration;

use axum::body::Body;
use axum::http::StatusCode;
use axum::response::Response;
use bytes::Bytes;
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;

use super::Cluster;
use super::objects::json_response;
use super::request::{Format, Params, Target};
use super::resources::ResourceDef;
use super::selector::Selection;
use super::status::ApiError;
use super::table;
use crate::cluster::store::{EventType, StoredObject, WatchEvent};

/// A watch without `timeoutSeconds` ends after this long.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1800);
/// How often a bookmark is sent to clients that allow them.
const BOOKMARK_EVERY: Duration = Duration::from_secs(30);

struct Filter {
    def: &'static ResourceDef,
    namespace: Option<String>,
    selection: Selection,
    format: Format,
}

impl Filter {
    fn matches(&self, object: &Value) -> bool {
        self.selection.matches(object)
    }

    fn in_scope(&self, event: &WatchEvent) -> bool {
        event.key.resource == self.def.plural
            && self
                .namespace
                .as_ref()
                .is_none_or(|ns| *ns == event.key.namespace)
    }

    /// The event this watcher sees, if any: objects moving into or out of
    /// the selection are reported as added or deleted.
    fn translate(&self, event: &WatchEvent) -> Option<EventType> {
        if !self.in_scope(event) {
            return None;
        }
        let now = self.matches(&event.object.value);
        let before = event
            .previous
            .as_ref()
            .is_some_and(|p| self.matches(&p.value));
        match event.kind {
            EventType::Added => now.then_some(EventType::Added),
            EventType::Deleted => (now || before).then_some(EventType::Deleted),
            EventType::Modified => match (before, now) {
                (true, true) => Some(EventType::Modified),
                (false, true) => Some(EventType::Added),
                (true, false) => Some(EventType::Deleted),
                (false, false) => None,
            },
        }
    }

    /// The line for `event` seen as `kind`: an object that stops matching
    /// the selection is sent DELETED with its previous (last matching)
    /// content at the event's resourceVersion, as kube-apiserver's cacher
    /// does (apiserver pkg/storage/cacher/cache_watcher.go
    /// `convertToWatchEvent`).
    fn event_line(&self, kind: EventType, event: &WatchEvent) -> Bytes {
        match (&event.kind, &kind, &event.previous) {
            (EventType::Modified, EventType::Deleted, Some(previous)) => {
                let last = StoredObject::new(event.object.rv, previous.value.clone());
                self.line(kind.as_str(), &last)
            }
            _ => self.line(kind.as_str(), &event.object),
        }
    }

    fn line(&self, kind: &str, object: &StoredObject) -> Bytes {
        let mut out = Vec::with_capacity(object.json.len() + 32);
        out.extend_from_slice(b"{\"type\":\"");
        out.extend_from_slice(kind.as_bytes());
        out.extend_from_slice(b"\",\"object\":");
        match self.format {
            Format::Json => out.extend_from_slice(&object.json),
            Format::Table => {
                let meta = json!({"resourceVersion": object.rv.to_string()});
                out.extend_from_slice(&table::table(
                    self.def,
                    std::iter::once(&object.value),
                    &meta,
                ));
            }
            Format::Metadata => {
                out.extend_from_slice(&table::partial_metadata(&object.value));
            }
        }
        out.extend_from_slice(b"}\n");
        Bytes::from(out)
    }

    fn bookmark(&self, rv: u64, initial_end: bool) -> Bytes {
        let mut metadata = json!({"resourceVersion": rv.to_string()});
        if initial_end {
            metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        let object = json!({"kind": self.def.kind, "apiVersion": self.def.api_version(), "metadata": metadata});
        Bytes::from(format!(
            "{}\n",
            json!({"type": "BOOKMARK", "object": object})
        ))
    }
}

fn expired_line(message: &str) -> Bytes {
    let status = ApiError::expired(message).to_status();
    Bytes::from(format!("{}\n", json!({"type": "ERROR", "object": status})))
}

type Tx = mpsc::Sender<Result<Bytes, Infallible>>;

/// Starts a watch and returns the streaming response.
pub fn watch(
    cluster: &Cluster,
    target: &Target,
    params: &Params,
    format: Format,
) -> Result<Response, ApiError> {
    let def = target.def;
    let filter = Filter {
        def,
        namespace: target.namespace.clone(),
        selection: Selection::parse(def, params)?,
        format,
    };
    if target.name.is_some() {
        return Err(ApiError::method_not_allowed(
            "watch a single object with a fieldSelector metadata.name=NAME on the collection",
        ));
    }
    let from = match params.resource_version.as_deref() {
        None | Some("0") => None,
        Some(rv) => Some(rv.parse::<u64>().map_err(|_| {
            ApiError::bad_request(format!(
                "resourceVersion: invalid value \"{rv}\": must be a number"
            ))
        })?),
    };
    let timeout = params
        .timeout_seconds
        .map_or(DEFAULT_TIMEOUT, Duration::from_secs);
    let (tx, rx) = mpsc::channel(256);
    let store = cluster.store.clone();
    let initial = params.send_initial_events || from.is_none();
    let bookmarks = params.allow_bookmarks;
    let initial_bookmark = params.send_initial_events;
    tokio::spawn(async move {
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        tokio::select! {
            _ = &mut deadline => {}
            _ = stream(&store, &filter, from, initial, initial_bookmark, bookmarks, &tx) => {}
        }
    });
    let mut response = json_response(StatusCode::OK, Body::from_stream(ReceiverStream::new(rx)));
    response.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-cache, private"),
    );
    Ok(response)
}

async fn send(tx: &Tx, line: Bytes) -> bool {
    tx.send(Ok(line)).await.is_ok()
}

async fn stream(
    store: &crate::cluster::store::Store,
    filter: &Filter,
    from: Option<u64>,
    initial: bool,
    initial_bookmark: bool,
    bookmarks: bool,
    tx: &Tx,
) {
    let (backlog, mut live, mut last_rv) = if initial {
        let crate::cluster::store::Snapshot { items, live, rv } =
            store.list_and_watch(Some(filter.def.plural), filter.namespace.as_deref());
        for (_, object) in items.iter().filter(|(_, o)| filter.matches(&o.value)) {
            if !send(tx, filter.line("ADDED", object)).await {
                return;
            }
        }
        if initial_bookmark && !send(tx, filter.bookmark(rv, true)).await {
            return;
        }
        (Vec::new(), live, rv)
    } else {
        match store.watch(from) {
            Ok((start, rv)) => (start.backlog, start.live, from.unwrap_or(rv)),
            Err(e) => {
                let _ = send(tx, expired_line(&e.to_string())).await;
                return;
            }
        }
    };
    for event in &backlog {
        last_rv = event.object.rv;
        if let Some(kind) = filter.translate(event)
            && !send(tx, filter.event_line(kind, event)).await
        {
            return;
        }
    }
    let mut ticker = tokio::time::interval(BOOKMARK_EVERY);
    ticker.tick().await;
    loop {
        tokio::select! {
            received = live.recv() => match received {
                Ok(event) => {
                    if event.object.rv <= last_rv {
                        continue;
                    }
                    last_rv = event.object.rv;
                    if let Some(kind) = filter.translate(&event)
                        && !send(tx, filter.event_line(kind, &event)).await
                    {
                        return;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    let _ = send(tx, expired_line(&format!(
                        "the watch fell {missed} events behind and was closed; list again and watch from the new resourceVersion"
                    ))).await;
                    return;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
            _ = ticker.tick(), if bookmarks => {
                if !send(tx, filter.bookmark(last_rv, false)).await {
                    return;
                }
            }
            _ = tx.closed() => return,
        }
    }
}
