//! The allocator on the service port: `POST /v1/allocate` hands a Ready
//! GameServer to a match, `POST /v1/release` ends the match.
//!
//! Semantics follow Agones's `GameServerAllocation`: the request carries an
//! ordered list of selectors (GameServerSet, labels, running image) and the
//! first selector with an allocatable match wins; when nothing matches the
//! answer is still `200` with `state: UnAllocated`. A server is allocatable
//! when its `status.currentState` is `Ready`, its `spec.opsState` is absent or
//! `None`, it is not being deleted, it is not Draining (label
//! [`DRAINING_LABEL`] is not `"true"`) and, if it reports `status.maxPlayers`,
//! the requested players fit.
//!
//! The allocator reaches every cluster only through [`kube::Api`], as it
//! would in a real cluster. Candidates come from a kube-runtime reflector
//! cache of GameServers per cluster (listing thousands of servers per request
//! would be far too slow); correctness never depends on that cache: a
//! server is set `Allocated` by a merge patch carrying the `resourceVersion`
//! the candidate was read at, so the API server applies it only if nobody
//! changed the server since (compare-and-swap). A `409 Conflict` means the
//! cache was stale or another allocator won: the server is fetched again and
//! the search goes on. No server is ever allocated twice.
//!
//! Choice of candidate: the lowest ordinal (then name) first, which packs
//! matches onto the same servers every time and keeps the answer
//! deterministic. Concurrent requests in one process do not fight over that
//! first server: each request claims its candidate in an in-process
//! in-flight set, and the others skip claimed servers (a request whose only
//! matches are claimed by others waits for those claims to settle before it
//! falls back to a later selector or answers `UnAllocated`, so a preferred
//! server is never given up for a claim that then fails). Results of the
//! allocator's own writes are remembered until the watch catches up, so a
//! release is allocatable again at once, and an allocated server is never
//! retried from a stale cache.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use futures::StreamExt;
use kube::Api;
use kube::api::{Patch, PatchParams};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use tokio::sync::Notify;
use tokio::task::AbortHandle;

use crate::api::{
    DRAINING_LABEL, GameServer, GameServerState, ImageRef, MATCH_STARTED_ANNOTATION,
    OWNER_GSS_LABEL, OpsState, normalise_image,
};
use crate::metrics::{AllocationLabels, Metrics};

/// The field manager of the allocator's writes.
pub const FIELD_MANAGER: &str = "gameops-allocator";

/// How long a request waits for a cluster's cache to be filled.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a request waits, at most, for other requests' claims to settle.
const CLAIM_WAIT: Duration = Duration::from_secs(5);
/// Conflicts one request tolerates before it gives up.
const MAX_CONFLICTS: usize = 64;
/// Attempts of a release against concurrent writers.
const RELEASE_ATTEMPTS: usize = 16;

/// Why an allocation or release failed.
#[derive(Debug, thiserror::Error)]
pub enum AllocatorError {
    /// The request is malformed; the message says how.
    #[error("{0}")]
    BadRequest(String),
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
    /// The running image (`status.podStatus.containerStatuses[0].image`),
    /// compared as Docker references (`nginx` = `docker.io/library/nginx:latest`).
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

// ---------------------------------------------------------------------------
// Which servers match

fn label<'a>(gs: &'a GameServer, key: &str) -> Option<&'a str> {
    gs.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(key))
        .map(String::as_str)
}

/// Whether `gs` may be allocated for `players` players: Ready, opsState
/// absent or `None`, not being deleted, not Draining, and with room for the
/// players if it reports `maxPlayers`.
pub fn is_allocatable(gs: &GameServer, players: i32) -> bool {
    let status = gs.status.as_ref();
    let ready =
        status.and_then(|s| s.current_state.as_deref()) == Some(GameServerState::Ready.as_str());
    let idle = gs
        .spec
        .ops_state
        .as_deref()
        .is_none_or(|s| s.is_empty() || s == OpsState::None.as_str());
    let draining = label(gs, DRAINING_LABEL) == Some("true");
    let fits = status
        .and_then(|s| s.max_players)
        .is_none_or(|max| players <= max);
    ready && idle && !draining && fits && gs.metadata.deletion_timestamp.is_none()
}

impl GameServerSelector {
    /// Whether `gs` matches every field of the selector.
    pub fn matches(&self, gs: &GameServer) -> bool {
        if let Some(set) = &self.game_server_set
            && label(gs, OWNER_GSS_LABEL) != Some(set.as_str())
        {
            return false;
        }
        if let Some(labels) = &self.labels
            && !labels.iter().all(|(k, v)| label(gs, k) == Some(v.as_str()))
        {
            return false;
        }
        if let Some(image) = &self.image {
            return gs.runs_image(&ImageRef::parse(image));
        }
        true
    }
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

/// Order of preference among candidates: lowest ordinal (`<set>-<n>`), then name.
fn preference(gs: &GameServer) -> (u64, &str) {
    let name = gs.metadata.name.as_deref().unwrap_or_default();
    let ordinal = name
        .rsplit_once('-')
        .and_then(|(_, n)| n.parse().ok())
        .unwrap_or(u64::MAX);
    (ordinal, name)
}

fn rv_number(gs: &GameServer) -> Option<u64> {
    gs.metadata.resource_version.as_deref()?.parse().ok()
}

// ---------------------------------------------------------------------------
// Per-cluster state

fn name_of(gs: &GameServer) -> &str {
    gs.metadata.name.as_deref().unwrap_or_default()
}

/// What the allocator learnt from its own writes, ahead of the watch.
#[derive(Clone, Debug)]
enum Known {
    /// A version newer than the cache's (what a write returned).
    Newer(Arc<GameServer>),
    /// The cached version with this resourceVersion is out of date (or the
    /// server is gone): skip it until the cache moves on.
    Stale(String),
}

/// What the allocator knows beyond its cache about one namespace's servers,
/// by name.
#[derive(Debug, Default)]
struct Local {
    /// Servers a request of this process is trying to allocate right now.
    in_flight: HashSet<String>,
    known: HashMap<String, Known>,
}

impl Local {
    fn learn(&mut self, name: &str, news: Known) {
        let keep_existing = match (self.known.get(name), &news) {
            (Some(Known::Newer(old)), Known::Newer(new)) => rv_number(old) >= rv_number(new),
            (Some(Known::Newer(old)), Known::Stale(rv)) => rv_number(old) > rv.parse::<u64>().ok(),
            _ => false,
        };
        if !keep_existing {
            self.known.insert(name.to_owned(), news);
        }
    }

    /// The freshest view of `cached`, dropping what the cache has caught up with.
    fn view(&mut self, name: &str, cached: &Arc<GameServer>) -> Option<Arc<GameServer>> {
        let (view, outdated) = match self.known.get(name) {
            None => return Some(cached.clone()),
            Some(Known::Newer(ours)) => match (rv_number(ours), rv_number(cached)) {
                (Some(o), Some(c)) if o > c => (Some(ours.clone()), false),
                _ => (Some(cached.clone()), true),
            },
            Some(Known::Stale(rv)) => {
                if cached.metadata.resource_version.as_deref() == Some(rv.as_str()) {
                    (None, false)
                } else {
                    (Some(cached.clone()), true)
                }
            }
        };
        if outdated {
            self.known.remove(name);
        }
        view
    }
}

struct ClusterCache {
    name: String,
    client: kube::Client,
    store: Store<GameServer>,
    /// Per namespace.
    local: Mutex<HashMap<String, Local>>,
    /// Woken whenever an in-flight claim settles.
    settled: Notify,
}

impl ClusterCache {
    fn locals(&self) -> MutexGuard<'_, HashMap<String, Local>> {
        self.local.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records what a write of this process learnt about a server.
    fn learn(&self, namespace: &str, name: &str, news: Known) {
        self.locals()
            .entry(namespace.to_owned())
            .or_default()
            .learn(name, news);
    }

    fn api(&self, namespace: &str) -> Api<GameServer> {
        Api::namespaced(self.client.clone(), namespace)
    }

    fn api_error(&self, source: kube::Error) -> AllocatorError {
        AllocatorError::Api {
            cluster: self.name.clone(),
            source,
        }
    }
}

/// A candidate claimed by one request; settles (and wakes waiters) when dropped.
struct Claim<'a> {
    cache: &'a ClusterCache,
    namespace: String,
    name: String,
    news: Option<Known>,
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        {
            let mut locals = self.cache.locals();
            let local = locals.entry(self.namespace.clone()).or_default();
            local.in_flight.remove(&self.name);
            if let Some(news) = self.news.take() {
                local.learn(&self.name, news);
            }
        }
        self.cache.settled.notify_waiters();
    }
}

enum Pick<'a> {
    Candidate {
        server: Arc<GameServer>,
        selector: usize,
        claim: Claim<'a>,
    },
    Wait(tokio::sync::futures::Notified<'a>),
    Nothing,
}

/// A validated allocation.
struct Wanted {
    namespace: String,
    selectors: Vec<GameServerSelector>,
    players: i32,
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
}

enum Outcome {
    Allocated(Box<GameServer>),
    Conflict,
    Gone,
}

// ---------------------------------------------------------------------------
// The allocator

/// Allocates and releases GameServers of one or more clusters.
pub struct Allocator {
    clusters: Vec<ClusterCache>,
    metrics: Arc<Metrics>,
    tasks: Vec<AbortHandle>,
}

impl fmt::Debug for Allocator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Allocator")
            .field(
                "clusters",
                &self.clusters.iter().map(|c| &c.name).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl Drop for Allocator {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Allocator {
    /// Starts a GameServer watch (reflector) per cluster, in spawned tasks,
    /// and returns at once; requests wait (up to 10 s) for their cluster's
    /// cache, and [`Allocator::wait_ready`] waits for all of them. The first
    /// cluster is the default one. Must be called within a Tokio runtime.
    pub fn start(clusters: Vec<(String, kube::Client)>, metrics: Arc<Metrics>) -> Arc<Self> {
        let mut caches = Vec::new();
        let mut tasks = Vec::new();
        for (name, client) in clusters {
            let (store, writer) = reflector::store();
            let stream = reflector::reflector(
                writer,
                watcher(
                    Api::<GameServer>::all(client.clone()),
                    watcher::Config::default(),
                )
                .default_backoff(),
            );
            let cluster = name.clone();
            let task = tokio::spawn(async move {
                let mut stream = std::pin::pin!(stream);
                while let Some(event) = stream.next().await {
                    if let Err(error) = event {
                        tracing::warn!(%cluster, %error, "allocator: GameServer watch failed; retrying");
                    }
                }
            });
            tasks.push(task.abort_handle());
            caches.push(ClusterCache {
                name,
                client,
                store,
                local: Mutex::default(),
                settled: Notify::new(),
            });
        }
        Arc::new(Self {
            clusters: caches,
            metrics,
            tasks,
        })
    }

    /// Waits until every cluster's cache holds its GameServers.
    pub async fn wait_ready(&self, timeout: Duration) -> Result<(), AllocatorError> {
        for cluster in &self.clusters {
            match tokio::time::timeout(timeout, cluster.store.wait_until_ready()).await {
                Ok(Ok(())) => {}
                _ => return Err(AllocatorError::NotReady(cluster.name.clone())),
            }
        }
        Ok(())
    }

    /// The allocator's cache of `cluster`'s GameServers (e.g. to wait until
    /// it has seen a change, or to count servers for metrics).
    pub fn store(&self, cluster: &str) -> Option<Store<GameServer>> {
        self.clusters
            .iter()
            .find(|c| c.name == cluster)
            .map(|c| c.store.clone())
    }

    /// The served clusters, the default first.
    pub fn cluster_names(&self) -> Vec<String> {
        self.clusters.iter().map(|c| c.name.clone()).collect()
    }

    /// `POST /v1/allocate` and `POST /v1/release`.
    pub fn router(self: Arc<Self>) -> Router {
        Router::new()
            .route("/v1/allocate", post(allocate_handler))
            .route("/v1/release", post(release_handler))
            .with_state(self)
    }

    fn cluster(&self, name: Option<&str>) -> Result<&ClusterCache, AllocatorError> {
        let found = match name {
            None => self.clusters.first(),
            Some(name) => self.clusters.iter().find(|c| c.name == name),
        };
        found.ok_or_else(|| AllocatorError::UnknownCluster {
            name: name.unwrap_or_default().to_owned(),
            known: self.cluster_names().join(", "),
        })
    }

    async fn ready(&self, cache: &ClusterCache) -> Result<(), AllocatorError> {
        match tokio::time::timeout(READY_TIMEOUT, cache.store.wait_until_ready()).await {
            Ok(Ok(())) => Ok(()),
            _ => Err(AllocatorError::NotReady(cache.name.clone())),
        }
    }

    fn count(&self, cluster: &str, result: &str) {
        self.metrics
            .allocations
            .get_or_create(&AllocationLabels {
                cluster: cluster.to_owned(),
                result: result.to_owned(),
            })
            .inc();
    }

    /// Allocates a server as the request asks, counting the outcome in
    /// `gameops_allocations_total{cluster,result}`.
    pub async fn allocate(
        &self,
        request: AllocationRequest,
    ) -> Result<AllocationResponse, AllocatorError> {
        let cluster_label = match request.cluster.as_deref() {
            Some(name) if self.clusters.iter().any(|c| c.name == name) => name.to_owned(),
            Some(_) => "unknown".to_owned(),
            None => self
                .clusters
                .first()
                .map(|c| c.name.clone())
                .unwrap_or_default(),
        };
        let result = self.allocate_uncounted(request).await;
        let outcome = match &result {
            Ok(r) => r.state.as_str(),
            Err(_) => "Error",
        };
        self.count(&cluster_label, outcome);
        result
    }

    async fn allocate_uncounted(
        &self,
        request: AllocationRequest,
    ) -> Result<AllocationResponse, AllocatorError> {
        let cache = self.cluster(request.cluster.as_deref())?;
        let wanted = validate(request)?;
        self.ready(cache).await?;
        let api = cache.api(&wanted.namespace);
        let mut conflicts = 0;
        let mut wait_for_claims = true;
        let waiting_since = tokio::time::Instant::now();
        loop {
            match pick(cache, &wanted, wait_for_claims) {
                Pick::Nothing => {
                    let tried: Vec<String> = if wanted.selectors.is_empty() {
                        vec!["any server".to_owned()]
                    } else {
                        wanted
                            .selectors
                            .iter()
                            .enumerate()
                            .map(|(i, s)| format!("{}: {s}", i + 1))
                            .collect()
                    };
                    let message = format!(
                        "no allocatable GameServer (Ready, opsState None, not Draining{}) in namespace {} of cluster {} matched the selectors tried in order ({})",
                        if wanted.players > 1 {
                            format!(", room for {} players", wanted.players)
                        } else {
                            String::new()
                        },
                        wanted.namespace,
                        cache.name,
                        tried.join("; ")
                    );
                    tracing::debug!(cluster = %cache.name, %message, "allocation found nothing");
                    return Ok(AllocationResponse {
                        state: "UnAllocated".to_owned(),
                        namespace: wanted.namespace,
                        cluster: cache.name.clone(),
                        message: Some(message),
                        ..Default::default()
                    });
                }
                Pick::Wait(settled) => {
                    let left = CLAIM_WAIT.saturating_sub(waiting_since.elapsed());
                    if left.is_zero() || tokio::time::timeout(left, settled).await.is_err() {
                        wait_for_claims = false;
                    }
                }
                Pick::Candidate {
                    server,
                    selector,
                    mut claim,
                } => {
                    let name = claim.name.clone();
                    let rv = server.metadata.resource_version.clone().unwrap_or_default();
                    // Without a resourceVersion the patch would not be conditional.
                    let outcome = if rv.is_empty() {
                        Ok(Outcome::Conflict)
                    } else {
                        set_allocated(&api, &name, &rv, &wanted).await
                    };
                    match outcome {
                        Ok(Outcome::Allocated(allocated)) => {
                            let allocated = set_players(&api, &name, wanted.players)
                                .await
                                .unwrap_or_else(|error| {
                                    tracing::warn!(cluster = %cache.name, namespace = %wanted.namespace, %name, %error, "allocated, but status.players could not be set");
                                    *allocated
                                });
                            claim.news = Some(Known::Newer(Arc::new(allocated)));
                            drop(claim);
                            tracing::info!(cluster = %cache.name, namespace = %wanted.namespace, server = %name, selector = selector + 1, players = wanted.players, "allocated");
                            return Ok(AllocationResponse {
                                state: OpsState::Allocated.as_str().to_owned(),
                                game_server_name: Some(name),
                                namespace: wanted.namespace,
                                cluster: cache.name.clone(),
                                game_server_set: label(&server, OWNER_GSS_LABEL).map(str::to_owned),
                                image: server.running_image().map(str::to_owned),
                                ..Default::default()
                            });
                        }
                        Ok(Outcome::Conflict) => {
                            conflicts += 1;
                            tracing::debug!(cluster = %cache.name, server = %name, %rv, "allocation conflict; trying the next candidate");
                            claim.news = Some(match api.get_opt(&name).await {
                                Ok(Some(fresh)) => Known::Newer(Arc::new(fresh)),
                                _ => Known::Stale(rv),
                            });
                            drop(claim);
                            if conflicts >= MAX_CONFLICTS {
                                return Err(AllocatorError::Contention(cache.name.clone()));
                            }
                        }
                        Ok(Outcome::Gone) => {
                            conflicts += 1;
                            claim.news = Some(Known::Stale(rv));
                            drop(claim);
                            if conflicts >= MAX_CONFLICTS {
                                return Err(AllocatorError::Contention(cache.name.clone()));
                            }
                        }
                        Err(e) => return Err(classify(cache, e)),
                    }
                }
            }
        }
    }

    /// Ends the match on a server: `spec.opsState` back to `None` (unless an
    /// operator set another state meanwhile, e.g. `Maintaining`), the
    /// match-started annotation removed and `status.players` 0.
    pub async fn release(
        &self,
        request: ReleaseRequest,
    ) -> Result<AllocationResponse, AllocatorError> {
        let cache = self.cluster(request.cluster.as_deref())?;
        let namespace = check_namespace(request.namespace)?;
        let name = request.game_server_name;
        if let Some(why) = crate::api::names::dns_subdomain_error(&name) {
            return Err(AllocatorError::BadRequest(format!(
                "gameServerName {name:?} is not a valid name: {why}"
            )));
        }
        let api = cache.api(&namespace);
        let not_found = || AllocatorError::NotFound {
            cluster: cache.name.clone(),
            namespace: namespace.clone(),
            name: name.clone(),
        };
        let mut released = false;
        for _ in 0..RELEASE_ATTEMPTS {
            let current = api
                .get_opt(&name)
                .await
                .map_err(|e| cache.api_error(e))?
                .ok_or_else(not_found)?;
            let mut spec = Map::new();
            if current.spec.ops_state.as_deref() == Some(OpsState::Allocated.as_str()) {
                spec.insert("opsState".into(), json!(OpsState::None.as_str()));
            }
            let patch = json!({
                "metadata": {
                    "resourceVersion": current.metadata.resource_version,
                    "annotations": {MATCH_STARTED_ANNOTATION: null},
                },
                "spec": spec,
            });
            match api
                .patch(&name, &patch_params(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => {
                    released = true;
                    break;
                }
                Err(kube::Error::Api(s)) if s.code == 409 => continue,
                Err(kube::Error::Api(s)) if s.code == 404 => return Err(not_found()),
                Err(e) => return Err(classify(cache, e)),
            }
        }
        if !released {
            return Err(AllocatorError::Contention(cache.name.clone()));
        }
        let released = match set_players(&api, &name, 0).await {
            Ok(gs) => gs,
            Err(kube::Error::Api(s)) if s.code == 404 => return Err(not_found()),
            Err(e) => return Err(classify(cache, e)),
        };
        let ops_state = released.spec.ops_state.clone();
        cache.learn(&namespace, &name, Known::Newer(Arc::new(released.clone())));
        tracing::info!(cluster = %cache.name, %namespace, server = %name, "released");
        Ok(AllocationResponse {
            state: "Released".to_owned(),
            game_server_name: Some(name),
            namespace,
            cluster: cache.name.clone(),
            game_server_set: label(&released, OWNER_GSS_LABEL).map(str::to_owned),
            image: released.running_image().map(str::to_owned),
            ops_state: Some(ops_state.unwrap_or_else(|| OpsState::None.as_str().to_owned())),
            message: None,
        })
    }
}

fn patch_params() -> PatchParams {
    PatchParams {
        field_manager: Some(FIELD_MANAGER.to_owned()),
        ..Default::default()
    }
}

/// An API error as the allocator reports it: the caller's mistakes (an
/// invalid label, say) are 400s, the rest the cluster's failure.
fn classify(cache: &ClusterCache, error: kube::Error) -> AllocatorError {
    match &error {
        kube::Error::Api(s) if s.code == 400 || s.code == 422 => {
            AllocatorError::BadRequest(format!(
                "the API server of cluster {} refused the change: {}",
                cache.name, s.message
            ))
        }
        _ => cache.api_error(error),
    }
}

/// Picks the preferred candidate of the first selector that has one and
/// claims it; or asks to wait when that selector's only matches are
/// claimed by other requests.
fn pick<'a>(cache: &'a ClusterCache, wanted: &Wanted, wait_for_claims: bool) -> Pick<'a> {
    let snapshot = cache
        .store
        .state_filter(|gs| gs.metadata.namespace.as_deref() == Some(wanted.namespace.as_str()));
    let mut locals = cache.locals();
    let local = locals.entry(wanted.namespace.clone()).or_default();
    let mut views = Vec::with_capacity(snapshot.len());
    for cached in &snapshot {
        let name = name_of(cached);
        if let Some(view) = local.view(name, cached)
            && is_allocatable(&view, wanted.players)
        {
            let in_flight = local.in_flight.contains(name);
            views.push((view, in_flight));
        }
    }
    if local.known.len() > 2 * snapshot.len() + 1024 {
        // Forget servers that were deleted since (bounded memory).
        let live: HashSet<&str> = snapshot.iter().map(|gs| name_of(gs)).collect();
        local.known.retain(|k, _| live.contains(k.as_str()));
    }
    let any = [GameServerSelector::default()];
    let selectors = if wanted.selectors.is_empty() {
        &any[..]
    } else {
        &wanted.selectors[..]
    };
    for (i, selector) in selectors.iter().enumerate() {
        let mut best: Option<&Arc<GameServer>> = None;
        let mut claimed = false;
        for (server, in_flight) in views.iter().filter(|(gs, _)| selector.matches(gs)) {
            if *in_flight {
                claimed = true;
            } else if best.is_none_or(|b| preference(server) < preference(b)) {
                best = Some(server);
            }
        }
        if let Some(server) = best {
            let name = name_of(server).to_owned();
            local.in_flight.insert(name.clone());
            return Pick::Candidate {
                server: server.clone(),
                selector: i,
                claim: Claim {
                    cache,
                    namespace: wanted.namespace.clone(),
                    name,
                    news: None,
                },
            };
        }
        if claimed && wait_for_claims {
            // Registered before the lock is released: no wake-up is lost.
            return Pick::Wait(cache.settled.notified());
        }
    }
    Pick::Nothing
}

/// Sets `name` Allocated if it is still at resourceVersion `rv`.
async fn set_allocated(
    api: &Api<GameServer>,
    name: &str,
    rv: &str,
    wanted: &Wanted,
) -> Result<Outcome, kube::Error> {
    let mut annotations: Map<String, Value> = wanted
        .annotations
        .iter()
        .map(|(k, v)| (k.clone(), json!(v)))
        .collect();
    annotations.insert(MATCH_STARTED_ANNOTATION.into(), json!(now_rfc3339()));
    let mut metadata = json!({"resourceVersion": rv, "annotations": annotations});
    if !wanted.labels.is_empty() {
        metadata["labels"] = json!(wanted.labels);
    }
    let patch = json!({
        "metadata": metadata,
        "spec": {"opsState": OpsState::Allocated.as_str()},
    });
    match api
        .patch(name, &patch_params(), &Patch::Merge(&patch))
        .await
    {
        Ok(gs) => Ok(Outcome::Allocated(Box::new(gs))),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(Outcome::Conflict),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(Outcome::Gone),
        Err(e) => Err(e),
    }
}

async fn set_players(
    api: &Api<GameServer>,
    name: &str,
    players: i32,
) -> Result<GameServer, kube::Error> {
    let patch = json!({"status": {"players": players}});
    api.patch_status(name, &patch_params(), &Patch::Merge(&patch))
        .await
}

fn now_rfc3339() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

// ---------------------------------------------------------------------------
// Validation

fn check_namespace(namespace: Option<String>) -> Result<String, AllocatorError> {
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

/// Whether `v` is a valid label value: empty, or up to 63 characters of
/// `[A-Za-z0-9-_.]` starting and ending with a letter or digit.
fn is_label_value(v: &str) -> bool {
    let alnum = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    v.is_empty()
        || (v.len() <= 63
            && alnum(v.chars().next())
            && alnum(v.chars().last())
            && v.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
}

fn validate(request: AllocationRequest) -> Result<Wanted, AllocatorError> {
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

fn parse_body<T: serde::de::DeserializeOwned>(
    path: &str,
    body: &Bytes,
) -> Result<T, AllocatorError> {
    serde_json::from_slice(body).map_err(|e| {
        AllocatorError::BadRequest(format!(
            "the body of POST {path} is not a valid request: {e}"
        ))
    })
}

async fn allocate_handler(State(allocator): State<Arc<Allocator>>, body: Bytes) -> Response {
    let request = match parse_body::<AllocationRequest>("/v1/allocate", &body) {
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

async fn release_handler(State(allocator): State<Arc<Allocator>>, body: Bytes) -> Response {
    let result = match parse_body::<ReleaseRequest>("/v1/release", &body) {
        Ok(request) => allocator.release(request).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(r) => axum::Json(r).into_response(),
        Err(e) => e.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{ContainerStatus, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    use crate::api::{GameServerSpec, GameServerStatus};

    fn server(name: &str, set: &str, image: &str) -> GameServer {
        let mut gs = GameServer::new(name, GameServerSpec::default());
        gs.metadata.namespace = Some("default".into());
        gs.metadata.resource_version = Some("10".into());
        gs.metadata.labels = Some(BTreeMap::from([
            (OWNER_GSS_LABEL.to_owned(), set.to_owned()),
            ("version".to_owned(), "v1".to_owned()),
        ]));
        gs.status = Some(GameServerStatus {
            current_state: Some("Ready".into()),
            pod_status: Some(PodStatus {
                container_statuses: Some(vec![ContainerStatus {
                    name: "main".into(),
                    image: image.into(),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        });
        gs
    }

    #[test]
    fn selectors_match_set_labels_and_image() {
        let gs = server("x-0", "x", "docker.io/library/nginx:1.25");
        assert!(GameServerSelector::default().matches(&gs));
        let set = |s: &str| GameServerSelector {
            game_server_set: Some(s.into()),
            ..Default::default()
        };
        assert!(set("x").matches(&gs));
        assert!(!set("y").matches(&gs));
        let labels = |pairs: &[(&str, &str)]| GameServerSelector {
            labels: Some(
                pairs
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            ..Default::default()
        };
        assert!(labels(&[("version", "v1")]).matches(&gs));
        assert!(labels(&[("version", "v1"), (OWNER_GSS_LABEL, "x")]).matches(&gs));
        assert!(!labels(&[("version", "v2")]).matches(&gs));
        assert!(!labels(&[("version", "v1"), ("tier", "gold")]).matches(&gs));
        let image = |i: &str| GameServerSelector {
            image: Some(i.into()),
            ..Default::default()
        };
        assert!(image("nginx:1.25").matches(&gs));
        assert!(!image("nginx").matches(&gs));
        let all = GameServerSelector {
            game_server_set: Some("x".into()),
            labels: Some(BTreeMap::from([("version".into(), "v1".into())])),
            image: Some("nginx:1.25".into()),
        };
        assert!(all.matches(&gs));
        assert!(
            !GameServerSelector {
                game_server_set: Some("y".into()),
                ..all.clone()
            }
            .matches(&gs)
        );
        let mut no_status = gs.clone();
        no_status.status = None;
        assert!(!image("nginx:1.25").matches(&no_status));
        assert_eq!(
            all.to_string(),
            "gameServerSet=x labels version=v1 image=docker.io/library/nginx:1.25"
        );
        assert_eq!(GameServerSelector::default().to_string(), "any server");
    }

    /// kubelet lists container statuses by name, so a sidecar may come
    /// first; the image selector matches the image any container runs (by
    /// name, with its imageID digest), as the ops' selections do.
    #[test]
    fn image_selectors_see_every_container_by_name() {
        let mut gs = server("x-0", "x", "envoy:1");
        if let Some(statuses) = gs
            .status
            .as_mut()
            .and_then(|s| s.pod_status.as_mut())
            .and_then(|p| p.container_statuses.as_mut())
        {
            statuses[0].name = "a-sidecar".into();
            statuses.push(ContainerStatus {
                name: "main".into(),
                image: "game:2".into(),
                image_id: "docker.io/library/game@sha256:abc".into(),
                ..Default::default()
            });
        }
        let image = |i: &str| GameServerSelector {
            image: Some(i.into()),
            ..Default::default()
        };
        assert!(image("game:2").matches(&gs));
        assert!(image("game@sha256:abc").matches(&gs));
        assert!(image("envoy:1").matches(&gs));
        assert!(!image("game:3").matches(&gs));
    }

    #[test]
    fn only_ready_idle_servers_are_allocatable() {
        let ready = server("x-0", "x", "nginx");
        assert!(is_allocatable(&ready, 1));
        let mut none = ready.clone();
        none.spec.ops_state = Some("None".into());
        assert!(is_allocatable(&none, 1));
        for ops in [
            "Allocated",
            "Maintaining",
            "WaitToBeDeleted",
            "Kill",
            "Other",
        ] {
            let mut gs = ready.clone();
            gs.spec.ops_state = Some(ops.into());
            assert!(!is_allocatable(&gs, 1), "{ops}");
        }
        for state in ["Creating", "NotReady", "Crash", "Updating", "Deleting"] {
            let mut gs = ready.clone();
            if let Some(s) = gs.status.as_mut() {
                s.current_state = Some(state.into());
            }
            assert!(!is_allocatable(&gs, 1), "{state}");
        }
        let mut no_status = ready.clone();
        no_status.status = None;
        assert!(!is_allocatable(&no_status, 1));
        let mut draining = ready.clone();
        if let Some(l) = draining.metadata.labels.as_mut() {
            l.insert(DRAINING_LABEL.into(), "true".into());
        }
        assert!(!is_allocatable(&draining, 1));
        let mut deleting = ready.clone();
        deleting.metadata.deletion_timestamp = Some(Time(jiff::Timestamp::now()));
        assert!(!is_allocatable(&deleting, 1));
        let mut small = ready.clone();
        if let Some(s) = small.status.as_mut() {
            s.max_players = Some(4);
        }
        assert!(is_allocatable(&small, 4));
        assert!(!is_allocatable(&small, 5));
    }

    #[test]
    fn lowest_ordinal_is_preferred() {
        let mut names = ["x-10", "x-2", "y-1", "odd"];
        names.sort_by_key(|n| preference(&server(n, "x", "nginx")).0);
        assert_eq!(names, ["y-1", "x-2", "x-10", "odd"]);
    }

    #[test]
    fn own_writes_win_until_the_cache_catches_up() {
        let mut local = Local::default();
        let key = "x-0";
        let cached = Arc::new(server("x-0", "x", "nginx"));
        let mut ours = server("x-0", "x", "nginx");
        ours.metadata.resource_version = Some("12".into());
        ours.spec.ops_state = Some("Allocated".into());
        local.learn(key, Known::Newer(Arc::new(ours.clone())));
        let view = local.view(key, &cached);
        assert_eq!(
            view.and_then(|v| v.spec.ops_state.clone()).as_deref(),
            Some("Allocated")
        );
        // An older write learnt later does not replace it.
        local.learn(key, Known::Stale("10".into()));
        assert!(matches!(local.known.get(key), Some(Known::Newer(_))));
        // The watch catches up: the cache is used again and the entry dropped.
        let mut caught_up = ours.clone();
        caught_up.metadata.resource_version = Some("12".into());
        let view = local.view(key, &Arc::new(caught_up));
        assert!(view.is_some());
        assert!(local.known.is_empty());
        // A stale cached version is skipped until the cache moves on.
        local.learn(key, Known::Stale("10".into()));
        assert!(local.view(key, &cached).is_none());
        let mut moved = server("x-0", "x", "nginx");
        moved.metadata.resource_version = Some("11".into());
        assert!(local.view(key, &Arc::new(moved)).is_some());
        assert!(local.known.is_empty());
    }

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
