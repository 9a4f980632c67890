//! Versioned object storage for the embedded API server.
//!
//! One [`Store`] holds every object of one embedded cluster as JSON. Each
//! write gets the next cluster-wide `resourceVersion`, is checked against the
//! caller's expectation (compare-and-swap), is made durable (see
//! `durable`) and only then becomes visible to readers and watchers, so no
//! reader ever sees a write that a crash could take back.
//!
//! Writes go through one writer thread that commits whatever is queued in a
//! single transaction (group commit): concurrent writers share one fsync.

mod durable;
mod writer;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::Path;
use std::sync::{Arc, RwLock, RwLockReadGuard};

use bytes::Bytes;
use serde_json::Value;
use tokio::sync::{broadcast, oneshot};

pub use durable::DurableError;

/// How many past events a watch can resume from.
const HISTORY_CAPACITY: usize = 50_000;
/// How many events a slow watcher may fall behind before it is told to relist.
const BROADCAST_CAPACITY: usize = 16_384;

/// What went wrong with a store operation.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A create found an object of that name.
    #[error("object already exists")]
    AlreadyExists,
    /// An update or delete found no object of that name.
    #[error("object not found")]
    NotFound,
    /// The object changed since the caller read it.
    #[error("object was modified (now at resourceVersion {current})")]
    Conflict {
        /// The object's current resourceVersion.
        current: u64,
    },
    /// The durable log could not be written; nothing of the batch was applied.
    #[error("storage failure: {0}")]
    Durable(#[from] DurableError),
    /// The writer thread is gone (the store is shutting down).
    #[error("the store is shutting down")]
    Closed,
}

/// Where one object lives: resource (plural, e.g. `gameservers`), namespace
/// (empty for cluster-scoped objects) and name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey {
    /// The resource's plural name.
    pub resource: &'static str,
    /// The object's namespace, empty when cluster-scoped.
    pub namespace: String,
    /// The object's name.
    pub name: String,
}

impl ObjectKey {
    /// Builds a key.
    pub fn new(resource: &'static str, namespace: &str, name: &str) -> Self {
        Self {
            resource,
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        }
    }
}

/// One stored version of an object: its parsed JSON and the exact bytes
/// served to clients (serialised once, at write time).
#[derive(Debug)]
pub struct StoredObject {
    /// The resourceVersion this version was written at.
    pub rv: u64,
    /// The object, with `metadata.resourceVersion` set.
    pub value: Value,
    /// `value` serialised as JSON.
    pub json: Bytes,
}

impl StoredObject {
    /// `value` as written at `rv` (its `metadata.resourceVersion` set).
    pub fn new(rv: u64, mut value: Value) -> Self {
        if let Some(meta) = value.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.insert("resourceVersion".into(), Value::String(rv.to_string()));
        }
        let json = Bytes::from(serde_json::to_vec(&value).unwrap_or_default());
        Self { rv, value, json }
    }

    fn from_parts(rv: u64, value: Value, json: &[u8]) -> Self {
        Self {
            rv,
            value,
            json: Bytes::copy_from_slice(json),
        }
    }

    /// The object's UID, if it has one.
    pub fn uid(&self) -> Option<&str> {
        self.value.pointer("/metadata/uid").and_then(Value::as_str)
    }

    /// `metadata.name` (empty when missing).
    pub fn name(&self) -> &str {
        self.value
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("")
    }

    /// `metadata.namespace` (empty for a cluster-scoped object).
    pub fn namespace(&self) -> &str {
        self.value
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or("")
    }
}

/// The kind of change a watch event reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    /// The object was created.
    Added,
    /// The object was changed.
    Modified,
    /// The object was deleted; the event carries its last state.
    Deleted,
}

impl EventType {
    /// The Kubernetes watch event type.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Added => "ADDED",
            Self::Modified => "MODIFIED",
            Self::Deleted => "DELETED",
        }
    }
}

/// One change, as watchers see it.
#[derive(Clone, Debug)]
pub struct WatchEvent {
    /// What happened.
    pub kind: EventType,
    /// Which object.
    pub key: ObjectKey,
    /// The object after the change (before it, for a delete, with the
    /// delete's resourceVersion).
    pub object: Arc<StoredObject>,
    /// The object before the change (`None` for a create).
    pub previous: Option<Arc<StoredObject>>,
}

/// A change to apply to one object.
#[derive(Debug)]
pub enum Op {
    /// Create; fails with [`StoreError::AlreadyExists`].
    Create(Value),
    /// Replace; fails with [`StoreError::NotFound`] or, unless the stored
    /// version is `expect_rv`, [`StoreError::Conflict`].
    Update {
        /// The new object.
        value: Value,
        /// The resourceVersion the caller based the change on.
        expect_rv: u64,
    },
    /// Delete; with `expect_rv`, only that version.
    Delete {
        /// The resourceVersion the caller expects, if any.
        expect_rv: Option<u64>,
    },
}

/// A watch that starts at a resourceVersion: the events already past it,
/// then a live feed.
pub struct WatchStart {
    /// Events after the requested version, oldest first.
    pub backlog: Vec<Arc<WatchEvent>>,
    /// Later events.
    pub live: broadcast::Receiver<Arc<WatchEvent>>,
}

/// Objects and a watch that starts exactly after them.
pub struct Snapshot {
    /// Each object with its resource (plural).
    pub items: Vec<(&'static str, Arc<StoredObject>)>,
    /// Every later change.
    pub live: broadcast::Receiver<Arc<WatchEvent>>,
    /// The resourceVersion the objects are current at.
    pub rv: u64,
}

/// A watch asked for a version the store no longer has the history for.
#[derive(Debug, thiserror::Error)]
#[error("too old resource version: {requested} ({oldest})")]
pub struct Expired {
    /// What the client asked for.
    pub requested: u64,
    /// The oldest version a watch may start from.
    pub oldest: u64,
}

type Objects = BTreeMap<(String, String), Arc<StoredObject>>;

/// The objects of one resource in `namespace` (or all), ordered by
/// namespace then name.
fn in_namespace<'a>(
    objects: &'a Objects,
    namespace: Option<&'a str>,
) -> impl Iterator<Item = &'a Arc<StoredObject>> {
    objects
        .range((namespace.unwrap_or_default().to_owned(), String::new())..)
        .take_while(move |((n, _), _)| namespace.is_none_or(|ns| n == ns))
        .map(|(_, o)| o)
}

/// The committed state, shared by readers and the writer thread.
pub(crate) struct State {
    rv: u64,
    objects: HashMap<&'static str, Objects>,
    history: VecDeque<Arc<WatchEvent>>,
    /// The oldest resourceVersion a watch may resume from.
    oldest_watchable: u64,
    events: broadcast::Sender<Arc<WatchEvent>>,
}

impl State {
    fn get(&self, key: &ObjectKey) -> Option<&Arc<StoredObject>> {
        self.objects
            .get(key.resource)?
            .get(&(key.namespace.clone(), key.name.clone()))
    }

    fn apply(&mut self, event: WatchEvent) {
        self.rv = self.rv.max(event.object.rv);
        let slot = self.objects.entry(event.key.resource).or_default();
        let id = (event.key.namespace.clone(), event.key.name.clone());
        match event.kind {
            EventType::Deleted => {
                slot.remove(&id);
            }
            _ => {
                slot.insert(id, event.object.clone());
            }
        }
        let event = Arc::new(event);
        if self.history.len() == HISTORY_CAPACITY
            && let Some(old) = self.history.pop_front()
        {
            self.oldest_watchable = old.object.rv;
        }
        self.history.push_back(event.clone());
        // No receivers is fine: nobody is watching.
        let _ = self.events.send(event);
    }
}

/// Every object of one embedded cluster.
#[derive(Clone)]
pub struct Store {
    state: Arc<RwLock<State>>,
    writer: std::sync::mpsc::Sender<writer::Message>,
}

impl Store {
    /// Opens (or creates) a durable store in `dir`, or an in-memory one when
    /// `dir` is `None`. A durable store comes back with every object that was
    /// acknowledged before the last stop, however that stop happened.
    /// `resources` names every resource (plural) the store may hold.
    pub fn open(dir: Option<&Path>, resources: &[&'static str]) -> Result<Self, StoreError> {
        let (log, rv, loaded) = match dir {
            Some(dir) => {
                let opened = durable::Log::open(dir, resources)?;
                (Some(opened.log), opened.rv, opened.objects)
            }
            None => (None, 0, Vec::new()),
        };
        let mut objects: HashMap<&'static str, Objects> = HashMap::new();
        for (key, object) in loaded {
            objects
                .entry(key.resource)
                .or_default()
                .insert((key.namespace, key.name), Arc::new(object));
        }
        let (events, _) = broadcast::channel(BROADCAST_CAPACITY);
        let state = Arc::new(RwLock::new(State {
            rv,
            objects,
            history: VecDeque::new(),
            oldest_watchable: rv,
            events,
        }));
        let writer = writer::spawn(state.clone(), log)?;
        Ok(Self { state, writer })
    }

    fn read(&self) -> RwLockReadGuard<'_, State> {
        // A panic while holding the lock cannot leave the maps half-updated
        // (every mutation is a single insert/remove), so poisoning is ignored.
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    /// The latest committed resourceVersion.
    pub fn current_rv(&self) -> u64 {
        self.read().rv
    }

    /// One object, if it exists.
    pub fn get(&self, key: &ObjectKey) -> Option<Arc<StoredObject>> {
        self.read().get(key).cloned()
    }

    /// Every object of a resource (in one namespace, or all), ordered by
    /// namespace then name, with the resourceVersion the list is current at.
    pub fn list(&self, resource: &str, namespace: Option<&str>) -> (Vec<Arc<StoredObject>>, u64) {
        let state = self.read();
        let Some(objects) = state.objects.get(resource) else {
            return (Vec::new(), state.rv);
        };
        (
            in_namespace(objects, namespace).cloned().collect(),
            state.rv,
        )
    }

    /// The objects [`Store::list`] gave at resourceVersion `rv`: the current
    /// ones with every later change undone from the watch history, as etcd
    /// reads a past revision (kube-apiserver lists a `continue` page at the
    /// first page's revision). Versions older than the history are
    /// [`Expired`], as a compacted revision is.
    pub fn list_at(
        &self,
        resource: &str,
        namespace: Option<&str>,
        rv: u64,
    ) -> Result<Vec<Arc<StoredObject>>, Expired> {
        let (current, now) = self.list(resource, namespace);
        let state = self.read();
        if rv < state.oldest_watchable || rv > now {
            return Err(Expired {
                requested: rv,
                oldest: state.oldest_watchable,
            });
        }
        let mut at: BTreeMap<(String, String), Option<Arc<StoredObject>>> = current
            .into_iter()
            .map(|o| ((o.namespace().to_owned(), o.name().to_owned()), Some(o)))
            .collect();
        // Undo the changes after `rv`, newest first: what remains for each
        // object is what it was before its first change after `rv`.
        let skip = state.history.partition_point(|e| e.object.rv <= rv);
        for event in state.history.iter().skip(skip).rev() {
            if event.key.resource == resource
                && namespace.is_none_or(|ns| ns == event.key.namespace)
            {
                let id = (event.key.namespace.clone(), event.key.name.clone());
                at.insert(id, event.previous.clone());
            }
        }
        Ok(at.into_values().flatten().collect())
    }

    /// Applies one change and waits until it is durable and visible.
    pub async fn write(&self, key: ObjectKey, op: Op) -> Result<Arc<StoredObject>, StoreError> {
        let (reply, rx) = oneshot::channel();
        self.writer
            .send(writer::Message::Write(writer::Request { key, op, reply }))
            .map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Every object of `resource` (or of every resource when `None`) in
    /// `namespace` (or all), and a watch that starts exactly after them.
    pub fn list_and_watch(&self, resource: Option<&str>, namespace: Option<&str>) -> Snapshot {
        let state = self.read();
        let live = state.events.subscribe();
        let mut items = Vec::new();
        for (res, objects) in &state.objects {
            if resource.is_some_and(|r| r != *res) {
                continue;
            }
            items.extend(in_namespace(objects, namespace).map(|o| (*res, o.clone())));
        }
        Snapshot {
            items,
            live,
            rv: state.rv,
        }
    }

    /// Finishes queued writes and closes the durable log, so that the data
    /// directory can be opened again. Later writes fail with
    /// [`StoreError::Closed`].
    pub fn close(&self) {
        let (done, wait) = std::sync::mpsc::channel();
        if self.writer.send(writer::Message::Close(done)).is_ok() {
            // Err means the writer already stopped: closed either way.
            let _ = wait.recv();
        }
    }

    /// Starts a watch after `from_rv`: every change with a higher version, in
    /// order. `None` starts at the current version.
    pub fn watch(&self, from_rv: Option<u64>) -> Result<(WatchStart, u64), Expired> {
        let state = self.read();
        let from = from_rv.unwrap_or(state.rv);
        if from < state.oldest_watchable {
            return Err(Expired {
                requested: from,
                oldest: state.oldest_watchable,
            });
        }
        // Subscribing while holding the read lock means no event falls
        // between the backlog and the live feed.
        let live = state.events.subscribe();
        let skip = state.history.partition_point(|e| e.object.rv <= from);
        let backlog = state.history.iter().skip(skip).cloned().collect();
        Ok((WatchStart { backlog, live }, state.rv))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(name: &str) -> Value {
        json!({"apiVersion": "v1", "kind": "Thing", "metadata": {"name": name, "namespace": "ns"}})
    }

    #[tokio::test]
    async fn create_update_delete_assign_increasing_versions() {
        let store = Store::open(None, &["things"]).unwrap();
        let key = ObjectKey::new("things", "ns", "a");
        let a = store
            .write(key.clone(), Op::Create(obj("a")))
            .await
            .unwrap();
        assert_eq!(a.rv, 1);
        assert_eq!(a.value["metadata"]["resourceVersion"], "1");
        let err = store.write(key.clone(), Op::Create(obj("a"))).await;
        assert!(matches!(err, Err(StoreError::AlreadyExists)));
        let b = store
            .write(
                key.clone(),
                Op::Update {
                    value: obj("a"),
                    expect_rv: 1,
                },
            )
            .await
            .unwrap();
        assert_eq!(b.rv, 2, "a failed write must not consume a version");
        let stale = store
            .write(
                key.clone(),
                Op::Update {
                    value: obj("a"),
                    expect_rv: 1,
                },
            )
            .await;
        assert!(matches!(stale, Err(StoreError::Conflict { current: 2 })));
        store
            .write(key.clone(), Op::Delete { expect_rv: None })
            .await
            .unwrap();
        assert!(store.get(&key).is_none());
        let missing = store.write(key, Op::Delete { expect_rv: None }).await;
        assert!(matches!(missing, Err(StoreError::NotFound)));
    }

    #[tokio::test]
    async fn list_is_per_namespace_and_ordered() {
        let store = Store::open(None, &["things"]).unwrap();
        for (ns, name) in [("b", "x"), ("a", "z"), ("a", "y")] {
            let mut v = obj(name);
            v["metadata"]["namespace"] = json!(ns);
            store
                .write(ObjectKey::new("things", ns, name), Op::Create(v))
                .await
                .unwrap();
        }
        let names = |items: Vec<Arc<StoredObject>>| -> Vec<String> {
            items
                .iter()
                .map(|o| o.value["metadata"]["name"].as_str().unwrap().to_owned())
                .collect()
        };
        assert_eq!(names(store.list("things", Some("a")).0), ["y", "z"]);
        assert_eq!(names(store.list("things", None).0), ["y", "z", "x"]);
        assert!(store.list("others", None).0.is_empty());
    }

    #[tokio::test]
    async fn watch_replays_history_then_streams() {
        let store = Store::open(None, &["things"]).unwrap();
        store
            .write(ObjectKey::new("things", "ns", "a"), Op::Create(obj("a")))
            .await
            .unwrap();
        let (mut start, _) = store.watch(Some(0)).unwrap();
        assert_eq!(start.backlog.len(), 1);
        store
            .write(ObjectKey::new("things", "ns", "b"), Op::Create(obj("b")))
            .await
            .unwrap();
        let live = start.live.recv().await.unwrap();
        assert_eq!(live.key.name, "b");
        assert_eq!(live.kind, EventType::Added);
    }

    #[tokio::test]
    async fn durable_store_survives_reopen_and_expires_old_watches() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(Some(dir.path()), &["things"]).unwrap();
            for name in ["a", "b"] {
                store
                    .write(ObjectKey::new("things", "ns", name), Op::Create(obj(name)))
                    .await
                    .unwrap();
            }
            store
                .write(
                    ObjectKey::new("things", "ns", "a"),
                    Op::Delete { expect_rv: None },
                )
                .await
                .unwrap();
            store.close();
        }
        let store = Store::open(Some(dir.path()), &["things"]).unwrap();
        assert_eq!(store.current_rv(), 3);
        assert!(store.get(&ObjectKey::new("things", "ns", "a")).is_none());
        assert_eq!(
            store.get(&ObjectKey::new("things", "ns", "b")).unwrap().rv,
            2
        );
        assert!(
            store.watch(Some(1)).is_err(),
            "history before the restart is gone"
        );
        assert!(store.watch(Some(3)).is_ok());
        let c = store
            .write(ObjectKey::new("things", "ns", "c"), Op::Create(obj("c")))
            .await
            .unwrap();
        assert_eq!(c.rv, 4, "versions keep increasing across restarts");
    }
}
