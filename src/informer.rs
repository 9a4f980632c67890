//! The ops' view of a cluster's GameServers: a kube-runtime reflector per
//! namespace, started on the first call that needs it, so that reading a
//! set's servers costs a walk over memory instead of a LIST over HTTP.
//!
//! Freshness: the cache follows a watch, as the Kubernetes API server's own
//! watch cache does, and it always holds the plugin's own writes before it
//! answers: every write an op makes is recorded with its resourceVersion, and
//! a read waits until the watch has delivered it. Someone else's change may
//! arrive a moment later than a LIST would see it, which is safe because
//! every change an op makes to a server is a patch conditioned on the
//! resourceVersion it read (a stale read ends in a conflict and a fresh
//! read). When the cache cannot answer (the watch is refused or slow, or the
//! cluster's resourceVersions are not numbers), the ops LIST as before.

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

/// One namespace's reflector.
struct Namespace {
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

/// The GameServer cache of one cluster.
pub struct ServerCache {
    client: Client,
    namespaces: Mutex<HashMap<String, Namespace>>,
}

impl std::fmt::Debug for ServerCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerCache").finish_non_exhaustive()
    }
}

impl Drop for ServerCache {
    fn drop(&mut self) {
        let namespaces = self
            .namespaces
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for ns in namespaces.values() {
            ns.task.abort();
        }
    }
}

fn resource_version(gs: &GameServer) -> Option<u64> {
    gs.metadata.resource_version.as_deref()?.parse().ok()
}

impl ServerCache {
    /// A cache over `client`'s cluster; it watches nothing until asked.
    pub fn new(client: Client) -> Self {
        Self {
            client,
            namespaces: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Namespace>> {
        self.namespaces
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Starts watching `namespace` (once) and returns its store, its
    /// progress, the resourceVersion the store must reach, and whether the
    /// watch was started just now.
    fn namespace(
        &self,
        namespace: &str,
    ) -> Option<(Store<GameServer>, watch::Receiver<u64>, u64, bool)> {
        let mut namespaces = self.lock();
        if let Some(ns) = namespaces.get(namespace) {
            if ns.opaque {
                return None;
            }
            return Some((ns.store.clone(), ns.seen.clone(), ns.wrote, false));
        }
        let (store, writer) = reflector::store();
        let (seen_tx, seen) = watch::channel(0u64);
        let api: Api<GameServer> = Api::namespaced(self.client.clone(), namespace);
        let stream = reflector::reflector(
            writer,
            watcher(api, watcher::Config::default())
                .default_backoff()
                // The ops never read them; they are most of an object's size.
                .modify(|gs| gs.managed_fields_mut().clear()),
        );
        let name = namespace.to_owned();
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
                        tracing::warn!(namespace = %name, %error, "plugin: GameServer watch failed; retrying");
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
        namespaces.insert(
            namespace.to_owned(),
            Namespace {
                store: store.clone(),
                seen: seen.clone(),
                wrote: 0,
                opaque: false,
                task,
            },
        );
        Some((store, seen, 0, true))
    }

    /// Records a write the plugin made in `namespace` (the object as the
    /// API server returned it), so that later reads include it.
    pub fn wrote(&self, namespace: &str, gs: &GameServer) {
        if let Some(ns) = self.lock().get_mut(namespace) {
            match resource_version(gs) {
                Some(rv) => ns.wrote = ns.wrote.max(rv),
                None => ns.opaque = true,
            }
        }
    }

    /// The servers of `set` in `namespace`, or `None` when the cache cannot
    /// answer (the caller then LISTs).
    pub async fn servers(&self, namespace: &str, set: &str) -> Option<Vec<Arc<GameServer>>> {
        let (store, mut seen, wrote, started) = self.namespace(namespace)?;
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
            tracing::debug!(namespace, set, "plugin: the GameServer cache lags; listing");
            return None;
        }
        let mut servers: Vec<Arc<GameServer>> = store
            .state_filter(|gs| gs.labels().get(OWNER_GSS_LABEL).map(String::as_str) == Some(set));
        servers.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
        Some(servers)
    }
}
