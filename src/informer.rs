//! The one view of a cluster's GameServers, shared by the ops and the
//! allocator: a kube-runtime reflector per namespace, started on the first
//! call that needs it (the ops), or one over all namespaces started at once
//! ([`ServerCache::cluster_wide`], the allocator), so that reading servers
//! costs a walk over memory instead of a LIST over HTTP.
//!
//! Freshness: the cache follows a watch, as the Kubernetes API server's own
//! watch cache does, and it always holds the plugin's own writes before it
//! answers: every write an op makes is recorded with its resourceVersion, and
//! a read waits until the watch has delivered it. Someone else's change may
//! arrive a moment later than a LIST would see it, which is safe because
//! every change an op makes to a server is a patch conditioned on the
//! resourceVersion it read (a stale read ends in a conflict and a fresh
//! read). When the cache cannot answer (the watch is refused or slow, or the
//! cluster's resourceVersions are not numbers), the readers LIST instead.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use kube::api::Api;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use tokio::sync::watch;
use tokio::task::AbortHandle;

use crate::api::{GameServer, OWNER_GSS_LABEL};

/// How long the first call in a namespace waits for the initial LIST.
const FIRST_SYNC: Duration = Duration::from_secs(5);
/// How long a read waits for the watch to deliver the plugin's own writes.
const OWN_WRITES: Duration = Duration::from_secs(2);

/// One reflector (of a namespace, or of all of them).
struct Watch {
    store: Store<GameServer>,
    /// The highest resourceVersion the store holds (0 until synced).
    seen: watch::Receiver<u64>,
    /// The highest resourceVersion the plugin wrote here.
    wrote: u64,
    /// The plugin wrote an object whose resourceVersion is not a number,
    /// so the cache cannot tell when it holds it: LIST instead.
    opaque: bool,
    task: AbortHandle,
}

impl Watch {
    /// Starts watching `api`'s GameServers in a spawned task.
    fn start(api: Api<GameServer>, scope: String) -> Self {
        let (store, writer) = reflector::store();
        let (seen_tx, seen) = watch::channel(0u64);
        let stream = reflector::reflector(
            writer,
            watcher(api, watcher::Config::default())
                .default_backoff()
                // Nobody reads them; they are most of an object's size.
                .modify(|gs| gs.managed_fields_mut().clear()),
        );
        let task = tokio::spawn(async move {
            let mut stream = std::pin::pin!(stream);
            // The highest resourceVersion of a relist, published when the
            // store swaps to it.
            let mut listing = 0u64;
            while let Some(event) = stream.next().await {
                let newest = match event {
                    Ok(watcher::Event::Apply(gs) | watcher::Event::Delete(gs)) => {
                        resource_version(&gs)
                    }
                    Ok(watcher::Event::Init) => {
                        listing = 0;
                        None
                    }
                    Ok(watcher::Event::InitApply(gs)) => {
                        listing = listing.max(resource_version(&gs).unwrap_or(0));
                        None
                    }
                    Ok(watcher::Event::InitDone) => Some(listing.max(1)),
                    Err(error) => {
                        tracing::warn!(namespace = %scope, %error, "GameServer watch failed; retrying");
                        None
                    }
                };
                if let Some(rv) = newest {
                    seen_tx.send_if_modified(|v| {
                        let grew = rv > *v;
                        *v = (*v).max(rv);
                        grew
                    });
                }
            }
        })
        .abort_handle();
        Self {
            store,
            seen,
            wrote: 0,
            opaque: false,
            task,
        }
    }
}

/// The GameServer cache of one cluster.
pub struct ServerCache {
    client: Client,
    /// By namespace, or one under `""` when cluster-wide.
    watches: Mutex<HashMap<String, Watch>>,
    cluster_wide: bool,
}

impl std::fmt::Debug for ServerCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerCache").finish_non_exhaustive()
    }
}

impl Drop for ServerCache {
    fn drop(&mut self) {
        let watches = self
            .watches
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for watch in watches.values() {
            watch.task.abort();
        }
    }
}

fn resource_version(gs: &GameServer) -> Option<u64> {
    gs.metadata.resource_version.as_deref()?.parse().ok()
}

impl ServerCache {
    /// A cache over `client`'s cluster that watches a namespace from the
    /// first read of it.
    pub fn new(client: Client) -> Self {
        Self {
            client,
            watches: Mutex::default(),
            cluster_wide: false,
        }
    }

    /// A cache over `client`'s cluster that watches every namespace at
    /// once, starting now (within a Tokio runtime).
    pub fn cluster_wide(client: Client) -> Self {
        let watch = Watch::start(Api::all(client.clone()), "(all)".to_owned());
        Self {
            client,
            watches: Mutex::new(HashMap::from([(String::new(), watch)])),
            cluster_wide: true,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Watch>> {
        self.watches
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The key of `namespace`'s watch.
    fn key<'a>(&self, namespace: &'a str) -> &'a str {
        if self.cluster_wide { "" } else { namespace }
    }

    /// Starts watching `namespace` (once) and returns its store, its
    /// progress, the resourceVersion the store must reach, and whether the
    /// watch was started just now.
    fn watch(
        &self,
        namespace: &str,
    ) -> Option<(Store<GameServer>, watch::Receiver<u64>, u64, bool)> {
        let mut watches = self.lock();
        if let Some(w) = watches.get(self.key(namespace)) {
            if w.opaque {
                return None;
            }
            return Some((w.store.clone(), w.seen.clone(), w.wrote, false));
        }
        let api = Api::namespaced(self.client.clone(), namespace);
        let w = Watch::start(api, namespace.to_owned());
        let started = (w.store.clone(), w.seen.clone(), 0, true);
        watches.insert(namespace.to_owned(), w);
        Some(started)
    }

    /// Records a write made in `namespace` (the object as the API server
    /// returned it), so that later reads include it.
    pub fn wrote(&self, namespace: &str, gs: &GameServer) {
        if let Some(w) = self.lock().get_mut(self.key(namespace)) {
            match resource_version(gs) {
                Some(rv) => w.wrote = w.wrote.max(rv),
                None => w.opaque = true,
            }
        }
    }

    /// The store of a cluster-wide cache (e.g. to wait until it has seen a
    /// change, or to count servers).
    pub fn store(&self) -> Option<Store<GameServer>> {
        self.lock().get("").map(|w| w.store.clone())
    }

    /// Waits up to `timeout` until every started watch holds its servers.
    pub async fn wait_ready(&self, timeout: Duration) -> bool {
        let stores: Vec<Store<GameServer>> =
            self.lock().values().map(|w| w.store.clone()).collect();
        let all = futures::future::join_all(stores.iter().map(Store::wait_until_ready));
        matches!(tokio::time::timeout(timeout, all).await, Ok(r) if r.iter().all(Result::is_ok))
    }

    /// The servers of `set` in `namespace`, by name, or `None` when the
    /// cache cannot answer (the caller then LISTs).
    pub async fn servers(&self, namespace: &str, set: &str) -> Option<Vec<Arc<GameServer>>> {
        let mut servers = self
            .select(namespace, |gs| {
                gs.labels().get(OWNER_GSS_LABEL).map(String::as_str) == Some(set)
            })
            .await?;
        servers.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
        Some(servers)
    }

    /// Every server in `namespace`, or `None` when the cache cannot answer.
    pub async fn namespace(&self, namespace: &str) -> Option<Vec<Arc<GameServer>>> {
        self.select(namespace, |_| true).await
    }

    /// The servers of `namespace` that pass `keep`, once the cache holds
    /// every write recorded with [`ServerCache::wrote`].
    async fn select(
        &self,
        namespace: &str,
        keep: impl Fn(&GameServer) -> bool,
    ) -> Option<Vec<Arc<GameServer>>> {
        let (store, mut seen, wrote, started) = self.watch(namespace)?;
        let synced = store.wait_until_ready();
        let ready = if started {
            matches!(tokio::time::timeout(FIRST_SYNC, synced).await, Ok(Ok(())))
        } else {
            matches!(synced.now_or_never(), Some(Ok(())))
        };
        if !ready {
            return None;
        }
        let caught_up = tokio::time::timeout(OWN_WRITES, seen.wait_for(|v| *v >= wrote)).await;
        if !matches!(caught_up, Ok(Ok(_))) {
            tracing::debug!(namespace, "the GameServer cache lags; listing");
            return None;
        }
        Some(
            store
                .state_filter(|gs| gs.metadata.namespace.as_deref() == Some(namespace) && keep(gs)),
        )
    }
}
