//! The garbage collector: when an object is deleted, every object whose
//! `ownerReferences` all point at deleted objects is deleted too (and so is
//! an object created or updated with only such owners), in the
//! background (as Kubernetes's `propagationPolicy: Background`). It keeps an
//! index of owners from the store's watch, so each deletion costs only the
//! dependents it has.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use serde_json::Value;
use tokio::sync::broadcast::error::RecvError;

use super::Cluster;
use crate::cluster::store::{EventType, ObjectKey, Op, StoreError, StoredObject};

fn owner_uids(object: &Value) -> Vec<String> {
    object
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .map(|refs| {
            refs.iter()
                .filter_map(|r| r.get("uid").and_then(Value::as_str).map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn object_key(object: &StoredObject, resource: &'static str) -> ObjectKey {
    ObjectKey::new(resource, object.namespace(), object.name())
}

/// Who owns what, as far as the collector has seen.
#[derive(Default)]
struct Index {
    live: HashSet<String>,
    owners: HashMap<ObjectKey, Vec<String>>,
    dependents: HashMap<String, HashSet<ObjectKey>>,
}

impl Index {
    fn put(&mut self, key: ObjectKey, object: &StoredObject) {
        self.remove(&key, None);
        if let Some(uid) = object.uid() {
            self.live.insert(uid.to_owned());
        }
        let owners = owner_uids(&object.value);
        for o in &owners {
            self.dependents
                .entry(o.clone())
                .or_default()
                .insert(key.clone());
        }
        if !owners.is_empty() {
            self.owners.insert(key, owners);
        }
    }

    fn remove(&mut self, key: &ObjectKey, uid: Option<&str>) {
        if let Some(uid) = uid {
            self.live.remove(uid);
        }
        if let Some(owners) = self.owners.remove(key) {
            for o in owners {
                if let Some(d) = self.dependents.get_mut(&o) {
                    d.remove(key);
                    if d.is_empty() {
                        self.dependents.remove(&o);
                    }
                }
            }
        }
    }

    /// Dependents of `uid` none of whose owners are alive.
    fn orphaned_by(&self, uid: &str) -> Vec<ObjectKey> {
        self.dependents
            .get(uid)
            .into_iter()
            .flatten()
            .filter(|k| self.is_orphan(k))
            .cloned()
            .collect()
    }

    /// Whether `key` has owners and none of them is alive.
    fn is_orphan(&self, key: &ObjectKey) -> bool {
        self.owners
            .get(key)
            .is_some_and(|os| os.iter().all(|o| !self.live.contains(o)))
    }

    /// Every object none of whose owners are alive.
    fn all_orphans(&self) -> Vec<ObjectKey> {
        self.owners
            .keys()
            .filter(|k| self.is_orphan(k))
            .cloned()
            .collect()
    }
}

async fn collect(cluster: &Cluster, keys: Vec<ObjectKey>) {
    for key in keys {
        match cluster
            .store
            .write(key.clone(), Op::Delete { expect_rv: None })
            .await
        {
            Ok(_) => {
                tracing::debug!(cluster = %cluster.name, object = %key.name, "garbage-collected a dependent")
            }
            Err(StoreError::NotFound) => {}
            Err(e) => {
                tracing::warn!(cluster = %cluster.name, object = %key.name, error = %e, "garbage collection failed; retried on the next sweep")
            }
        }
    }
}

/// Runs the collector for `cluster` until its store closes.
pub async fn run(cluster: Cluster) {
    loop {
        let crate::cluster::store::Snapshot {
            items, mut live, ..
        } = cluster.store.list_and_watch(None, None);
        let mut index = Index::default();
        for (resource, object) in &items {
            index.put(object_key(object, resource), object);
        }
        collect(&cluster, index.all_orphans()).await;
        loop {
            match live.recv().await {
                Ok(event) => match event.kind {
                    EventType::Deleted => {
                        let uid = event.object.uid().map(str::to_owned);
                        index.remove(&event.key, uid.as_deref());
                        if let Some(uid) = uid {
                            collect(&cluster, index.orphaned_by(&uid)).await;
                        }
                    }
                    // An object whose owners are all gone already (a
                    // controller created it from a stale view of its owner)
                    // goes at once, as kube's collector deletes a dependent
                    // of an absent owner (`garbagecollector.go`
                    // `attemptToDeleteItem`, dangling references).
                    _ => {
                        index.put(event.key.clone(), &event.object);
                        if index.is_orphan(&event.key) {
                            collect(&cluster, vec![event.key.clone()]).await;
                        }
                    }
                },
                // Fell behind: rebuild the index from a fresh snapshot.
                Err(RecvError::Lagged(_)) => break,
                Err(RecvError::Closed) => return,
            }
        }
    }
}

/// Removes the owner reference to `uid` from every object that has one
/// (`propagationPolicy: Orphan`).
pub async fn orphan_dependents(cluster: &Cluster, uid: &str) {
    let items = cluster.store.list_and_watch(None, None).items;
    let dependents: Vec<(&'static str, Arc<StoredObject>)> = items
        .into_iter()
        .filter(|(_, o)| owner_uids(&o.value).iter().any(|u| u == uid))
        .collect();
    for (resource, object) in dependents {
        let mut next = object.value.clone();
        if let Some(refs) = next
            .pointer_mut("/metadata/ownerReferences")
            .and_then(Value::as_array_mut)
        {
            refs.retain(|r| r.get("uid").and_then(Value::as_str) != Some(uid));
        }
        let key = object_key(&object, resource);
        if let Err(e) = cluster
            .store
            .write(
                key,
                Op::Update {
                    value: next,
                    expect_rv: object.rv,
                },
            )
            .await
        {
            tracing::warn!(error = %e, "could not orphan a dependent; it may be garbage-collected");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(uid: &str, owners: &[&str]) -> StoredObject {
        let refs: Vec<Value> = owners.iter().map(|o| json!({"uid": o})).collect();
        let value = json!({"metadata": {"name": uid, "namespace": "ns", "uid": uid, "ownerReferences": refs}});
        StoredObject {
            rv: 1,
            json: bytes::Bytes::from(value.to_string()),
            value,
        }
    }

    #[test]
    fn a_dependent_goes_only_when_all_owners_are_gone() {
        let mut index = Index::default();
        for (uid, owners) in [
            ("a", vec![]),
            ("b", vec![]),
            ("c", vec!["a"]),
            ("d", vec!["a", "b"]),
        ] {
            index.put(ObjectKey::new("x", "ns", uid), &obj(uid, &owners));
        }
        index.remove(&ObjectKey::new("x", "ns", "a"), Some("a"));
        let gone: Vec<String> = index.orphaned_by("a").into_iter().map(|k| k.name).collect();
        assert_eq!(gone, ["c"]);
        index.remove(&ObjectKey::new("x", "ns", "b"), Some("b"));
        assert_eq!(index.orphaned_by("b").len(), 1);
        assert_eq!(index.all_orphans().len(), 2);
        // A dependent of an owner that is already gone is an orphan at once.
        index.put(ObjectKey::new("x", "ns", "e"), &obj("e", &["a"]));
        assert!(index.is_orphan(&ObjectKey::new("x", "ns", "e")));
    }
}
