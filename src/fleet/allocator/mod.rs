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
//! would be far too slow): the one [`crate::informer::ServerCache`], over
//! all namespaces, which holds the allocator's own writes before it answers.
//! Correctness never depends on that cache: a
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
//! server is never given up for a claim that then fails). The allocator's
//! own writes are recorded with the cache, whose reads wait for them, so a
//! release is allocatable again at once, and an allocated server is never
//! retried from a stale cache.
//!
//! Files: [`wire`] (the JSON, errors, validation), [`pick`] (the pure
//! choice), `handlers` (HTTP); this file holds the allocator and its writes.

mod handlers;
pub mod pick;
pub mod wire;

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::routing::post;
use kube::Api;
use kube::api::{ListParams, Patch, PatchParams};
use kube::runtime::reflector::Store;
use serde_json::{Map, Value, json};
use tokio::sync::Notify;

use crate::api::{GameServer, MATCH_STARTED_ANNOTATION, OWNER_GSS_LABEL, OpsState};
use crate::informer::ServerCache;
use crate::metrics::{AllocationLabels, Metrics};
pub use pick::is_allocatable;
use pick::{Choice, Local, label};
pub use wire::{
    AllocationMetadata, AllocationRequest, AllocationResponse, AllocatorError, GameServerSelector,
    ReleaseRequest,
};
use wire::{Wanted, check_namespace, validate};

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

struct ClusterCache {
    name: String,
    client: kube::Client,
    servers: Arc<ServerCache>,
    /// Per namespace.
    local: Mutex<HashMap<String, Local>>,
    /// Woken whenever an in-flight claim settles.
    settled: Notify,
}

impl ClusterCache {
    fn locals(&self) -> MutexGuard<'_, HashMap<String, Local>> {
        self.local.lock().unwrap_or_else(|e| e.into_inner())
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

    /// The servers of `namespace`: from the cache, holding this process's
    /// writes, or by a LIST when it cannot answer.
    async fn servers(&self, namespace: &str) -> Result<Vec<Arc<GameServer>>, AllocatorError> {
        if let Some(servers) = self.servers.namespace(namespace).await {
            return Ok(servers);
        }
        let list = self.api(namespace).list(&ListParams::default()).await;
        let list = list.map_err(|e| self.api_error(e))?;
        Ok(list.items.into_iter().map(Arc::new).collect())
    }
}

/// A candidate claimed by one request; settles (and wakes waiters) when
/// dropped, marking the version it was read at stale if it was not taken.
struct Claim<'a> {
    cache: &'a ClusterCache,
    namespace: String,
    name: String,
    stale: Option<String>,
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        {
            let mut locals = self.cache.locals();
            let local = locals.entry(self.namespace.clone()).or_default();
            local.in_flight.remove(&self.name);
            if let Some(rv) = self.stale.take() {
                local.stale.insert(self.name.clone(), rv);
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

enum Outcome {
    Allocated(Box<GameServer>),
    Conflict,
    Gone,
}

/// Allocates and releases GameServers of one or more clusters.
pub struct Allocator {
    clusters: Vec<ClusterCache>,
    metrics: Arc<Metrics>,
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

impl Allocator {
    /// Starts a cluster-wide GameServer cache per cluster, in spawned
    /// tasks, and returns at once; requests wait (up to 10 s) for their
    /// cluster's cache, and [`Allocator::wait_ready`] waits for all of
    /// them. The first cluster is the default one. Must be called within a
    /// Tokio runtime.
    pub fn start(clusters: Vec<(String, kube::Client)>, metrics: Arc<Metrics>) -> Arc<Self> {
        let caches = clusters
            .into_iter()
            .map(|(name, client)| {
                let servers = Arc::new(ServerCache::cluster_wide(client.clone()));
                (name, client, servers)
            })
            .collect();
        Self::with_caches(caches, metrics)
    }

    /// An allocator over caches made elsewhere (e.g. shared with the
    /// plugin's ops); each should be [`ServerCache::cluster_wide`].
    pub fn with_caches(
        clusters: Vec<(String, kube::Client, Arc<ServerCache>)>,
        metrics: Arc<Metrics>,
    ) -> Arc<Self> {
        let clusters = clusters
            .into_iter()
            .map(|(name, client, servers)| ClusterCache {
                name,
                client,
                servers,
                local: Mutex::default(),
                settled: Notify::new(),
            })
            .collect();
        Arc::new(Self { clusters, metrics })
    }

    /// Waits until every cluster's cache holds its GameServers.
    pub async fn wait_ready(&self, timeout: Duration) -> Result<(), AllocatorError> {
        for cluster in &self.clusters {
            self.ready(cluster, timeout).await?;
        }
        Ok(())
    }

    /// The allocator's cache of `cluster`'s GameServers (e.g. to wait until
    /// it has seen a change, or to count servers for metrics).
    pub fn store(&self, cluster: &str) -> Option<Store<GameServer>> {
        self.clusters
            .iter()
            .find(|c| c.name == cluster)
            .and_then(|c| c.servers.store())
    }

    /// The served clusters, the default first.
    pub fn cluster_names(&self) -> Vec<String> {
        self.clusters.iter().map(|c| c.name.clone()).collect()
    }

    /// `POST /v1/allocate` and `POST /v1/release`.
    pub fn router(self: Arc<Self>) -> Router {
        Router::new()
            .route("/v1/allocate", post(handlers::allocate_handler))
            .route("/v1/release", post(handlers::release_handler))
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

    async fn ready(&self, cache: &ClusterCache, timeout: Duration) -> Result<(), AllocatorError> {
        if cache.servers.wait_ready(timeout).await {
            Ok(())
        } else {
            Err(AllocatorError::NotReady(cache.name.clone()))
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
        self.ready(cache, READY_TIMEOUT).await?;
        let mut conflicts = 0;
        let mut wait_for_claims = true;
        let waiting_since = tokio::time::Instant::now();
        loop {
            match pick(cache, &wanted, wait_for_claims).await? {
                Pick::Nothing => return Ok(unallocated(cache, wanted)),
                Pick::Wait(settled) => {
                    let left = CLAIM_WAIT.saturating_sub(waiting_since.elapsed());
                    if left.is_zero() || tokio::time::timeout(left, settled).await.is_err() {
                        wait_for_claims = false;
                    }
                }
                Pick::Candidate {
                    server,
                    selector,
                    claim,
                } => {
                    if let Some(allocated) = try_allocate(cache, &wanted, &server, claim).await? {
                        tracing::info!(cluster = %cache.name, namespace = %wanted.namespace, server = %allocated.metadata.name.as_deref().unwrap_or_default(), selector = selector + 1, players = wanted.players, "allocated");
                        return Ok(AllocationResponse {
                            state: OpsState::Allocated.as_str().to_owned(),
                            game_server_name: server.metadata.name.clone(),
                            namespace: wanted.namespace,
                            cluster: cache.name.clone(),
                            game_server_set: label(&server, OWNER_GSS_LABEL).map(str::to_owned),
                            image: server.running_image().map(str::to_owned),
                            ..Default::default()
                        });
                    }
                    conflicts += 1;
                    if conflicts >= MAX_CONFLICTS {
                        return Err(AllocatorError::Contention(cache.name.clone()));
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
            match api
                .patch(
                    &name,
                    &patch_params(),
                    &Patch::Merge(&release_patch(&current)),
                )
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
        cache.servers.wrote(&namespace, &released);
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

/// The answer when nothing matched, saying what was tried.
fn unallocated(cache: &ClusterCache, wanted: Wanted) -> AllocationResponse {
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
    AllocationResponse {
        state: "UnAllocated".to_owned(),
        namespace: wanted.namespace,
        cluster: cache.name.clone(),
        message: Some(message),
        ..Default::default()
    }
}

/// Tries to allocate the claimed `server`: the server as written, or
/// `None` when it changed or went meanwhile (the cache is told either way).
async fn try_allocate(
    cache: &ClusterCache,
    wanted: &Wanted,
    server: &GameServer,
    mut claim: Claim<'_>,
) -> Result<Option<GameServer>, AllocatorError> {
    let api = cache.api(&wanted.namespace);
    let name = claim.name.clone();
    let rv = server.metadata.resource_version.clone().unwrap_or_default();
    // Without a resourceVersion the patch would not be conditional.
    let outcome = if rv.is_empty() {
        Ok(Outcome::Conflict)
    } else {
        set_allocated(&api, &name, &rv, wanted).await
    };
    match outcome.map_err(|e| classify(cache, e))? {
        Outcome::Allocated(allocated) => {
            let allocated = set_players(&api, &name, wanted.players)
                .await
                .unwrap_or_else(|error| {
                    tracing::warn!(cluster = %cache.name, namespace = %wanted.namespace, %name, %error, "allocated, but status.players could not be set");
                    *allocated
                });
            cache.servers.wrote(&wanted.namespace, &allocated);
            Ok(Some(allocated))
        }
        Outcome::Conflict => {
            tracing::debug!(cluster = %cache.name, server = %name, %rv, "allocation conflict; trying the next candidate");
            match api.get_opt(&name).await {
                Ok(Some(fresh)) => cache.servers.wrote(&wanted.namespace, &fresh),
                _ => claim.stale = Some(rv),
            }
            Ok(None)
        }
        Outcome::Gone => {
            claim.stale = Some(rv);
            Ok(None)
        }
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
async fn pick<'a>(
    cache: &'a ClusterCache,
    wanted: &Wanted,
    wait_for_claims: bool,
) -> Result<Pick<'a>, AllocatorError> {
    let servers = cache.servers(&wanted.namespace).await?;
    let mut locals = cache.locals();
    let local = locals.entry(wanted.namespace.clone()).or_default();
    Ok(
        match pick::choose(&servers, local, wanted, wait_for_claims) {
            Choice::Candidate(server, selector) => {
                let name = pick::name_of(&server).to_owned();
                local.in_flight.insert(name.clone());
                Pick::Candidate {
                    server,
                    selector,
                    claim: Claim {
                        cache,
                        namespace: wanted.namespace.clone(),
                        name,
                        stale: None,
                    },
                }
            }
            // Registered before the lock is released: no wake-up is lost.
            Choice::Wait => Pick::Wait(cache.settled.notified()),
            Choice::Nothing => Pick::Nothing,
        },
    )
}

/// The merge patch ending the match on `current` (at its resourceVersion).
fn release_patch(current: &GameServer) -> Value {
    let mut spec = Map::new();
    if current.spec.ops_state.as_deref() == Some(OpsState::Allocated.as_str()) {
        spec.insert("opsState".into(), json!(OpsState::None.as_str()));
    }
    json!({
        "metadata": {
            "resourceVersion": current.metadata.resource_version,
            "annotations": {MATCH_STARTED_ANNOTATION: null},
        },
        "spec": spec,
    })
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
    annotations.insert(
        MATCH_STARTED_ANNOTATION.into(),
        json!(crate::api::kube_time(jiff::Timestamp::now())),
    );
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
