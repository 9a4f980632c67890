//! The garbage collector, as kube's (`pkg/controller/garbagecollector`):
//! - when an object is deleted, every object whose `ownerReferences` all
//!   point at deleted objects is deleted too (and so is an object created
//!   or updated with only such owners);
//! - an object deleted in the foreground (`propagationPolicy: Foreground`:
//!   a `deletionTimestamp` and the `foregroundDeletion` finalizer) has its
//!   dependents deleted first (in the foreground themselves when they block
//!   it and have dependents of their own; a dependent with another live
//!   owner only loses its reference), and goes once none that blocks it
//!   (`blockOwnerDeletion`) is left.
//!
//! Deletions honour finalizers as a client's DELETE does. It keeps an index
//! of owners from the store's watch, so each deletion costs only the
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

/// The finalizer of a deletion in the foreground.
pub const FOREGROUND: &str = "foregroundDeletion";

fn finalizers(object: &Value) -> Vec<&str> {
    object
        .pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .map(|f| f.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

fn terminating(object: &Value) -> bool {
    object
        .pointer("/metadata/deletionTimestamp")
        .is_some_and(|t| !t.is_null())
}

/// Whether an object is being deleted in the foreground.
fn waits_for_dependents(object: &Value) -> bool {
    terminating(object) && finalizers(object).contains(&FOREGROUND)
}

/// What a DELETE of `object` writes (kube-apiserver `store.go`
/// `updateForGracefulDeletionAndFinalizers`): `None` when it goes at once;
/// else the object marked terminating, with `foregroundDeletion` added for
/// a deletion in the foreground, kept until its finalizers are removed.
fn mark_deleting(object: &Value, foreground: bool) -> Option<Value> {
    let present = finalizers(object);
    if present.is_empty() && !foreground {
        return None;
    }
    let mut next = object.clone();
    let m = super::objects::meta_mut(&mut next);
    if foreground && !present.contains(&FOREGROUND) {
        let mut list: Vec<Value> = present.iter().map(|f| Value::from(*f)).collect();
        list.push(Value::from(FOREGROUND));
        m.insert("finalizers".into(), Value::Array(list));
    }
    if m.get("deletionTimestamp").is_none_or(Value::is_null) {
        m.insert(
            "deletionTimestamp".into(),
            Value::from(super::objects::now()),
        );
        m.insert("deletionGracePeriodSeconds".into(), Value::from(0));
    }
    Some(next)
}

/// The write a DELETE of `current` makes (see [`mark_deleting`]): `None`
/// when it is already terminating as asked and there is nothing to write.
pub fn deletion_op(current: &StoredObject, foreground: bool) -> Option<Op> {
    match mark_deleting(&current.value, foreground) {
        Some(value) if value == current.value => None,
        Some(value) => Some(Op::Update {
            value,
            expect_rv: current.rv,
        }),
        None => Some(Op::Delete {
            expect_rv: Some(current.rv),
        }),
    }
}

fn object_key(object: &StoredObject, resource: &'static str) -> ObjectKey {
    ObjectKey::new(resource, object.namespace(), object.name())
}

/// Who owns what, as far as the collector has seen.
#[derive(Default)]
struct Index {
    live: HashSet<String>,
    /// Each live object's key, by uid.
    keys: HashMap<String, ObjectKey>,
    /// Objects being deleted in the foreground, by uid.
    waiting: HashSet<String>,
    owners: HashMap<ObjectKey, Vec<String>>,
    dependents: HashMap<String, HashSet<ObjectKey>>,
}

impl Index {
    fn put(&mut self, key: ObjectKey, object: &StoredObject) {
        self.remove(&key, None);
        if let Some(uid) = object.uid() {
            self.live.insert(uid.to_owned());
            self.keys.insert(uid.to_owned(), key.clone());
            if waits_for_dependents(&object.value) {
                self.waiting.insert(uid.to_owned());
            } else {
                self.waiting.remove(uid);
            }
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
            self.keys.remove(uid);
            self.waiting.remove(uid);
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

/// Deletes `key` as a client's DELETE would (see [`deletion_op`]).
async fn delete_object(
    cluster: &Cluster,
    key: &ObjectKey,
    foreground: bool,
) -> Result<(), StoreError> {
    let Some(current) = cluster.store.get(key) else {
        return Err(StoreError::NotFound);
    };
    let Some(op) = deletion_op(&current, foreground) else {
        return Ok(());
    };
    cluster.store.write(key.clone(), op).await.map(|_| ())
}

async fn collect(cluster: &Cluster, keys: Vec<ObjectKey>) {
    for key in keys {
        match delete_object(cluster, &key, false).await {
            Ok(()) => {
                tracing::debug!(cluster = %cluster.name, object = %key.name, "garbage-collected a dependent")
            }
            Err(StoreError::NotFound) => {}
            Err(e) => {
                tracing::warn!(cluster = %cluster.name, object = %key.name, error = %e, "garbage collection failed; retried on the next sweep")
            }
        }
    }
}

/// Whether `dependent`'s reference to `owner` blocks the owner's deletion.
fn blocks(dependent: &Value, owner: &str) -> bool {
    dependent
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|r| r["uid"] == owner && r["blockOwnerDeletion"] == true)
}

/// One step of the foreground deletion of `uid` (`attemptToDeleteItem` and
/// `processDeletingDependentsItem`): deletes its dependents, and once none
/// that blocks it is left, removes its `foregroundDeletion` finalizer.
async fn advance_foreground(cluster: &Cluster, index: &Index, uid: &str) {
    let mut blocked = false;
    let dependents: Vec<ObjectKey> = index
        .dependents
        .get(uid)
        .into_iter()
        .flatten()
        .cloned()
        .collect();
    for key in dependents {
        let Some(dependent) = cluster.store.get(&key) else {
            continue;
        };
        let other_owner = owner_uids(&dependent.value)
            .iter()
            .any(|o| o != uid && index.live.contains(o) && !index.waiting.contains(o));
        if other_owner {
            if let Err(e) = release(cluster, key.clone(), &dependent, uid).await {
                tracing::debug!(object = %key.name, error = %e, "could not release a dependent yet");
            }
            continue;
        }
        let blocking = blocks(&dependent.value, uid);
        blocked |= blocking;
        if terminating(&dependent.value) {
            continue;
        }
        let has_dependents = dependent
            .uid()
            .is_some_and(|d| index.dependents.contains_key(d));
        if let Err(e) = delete_object(cluster, &key, blocking && has_dependents).await {
            tracing::debug!(object = %key.name, error = %e, "a dependent could not be deleted yet; retried on its next change");
        }
    }
    if blocked {
        return;
    }
    let Some(key) = index.keys.get(uid) else {
        return;
    };
    let Some(owner) = cluster.store.get(key) else {
        return;
    };
    let mut next = owner.value.clone();
    let left: Vec<Value> = finalizers(&owner.value)
        .into_iter()
        .filter(|f| *f != FOREGROUND)
        .map(Value::from)
        .collect();
    let op = if left.is_empty() {
        Op::Delete {
            expect_rv: Some(owner.rv),
        }
    } else {
        super::objects::meta_mut(&mut next).insert("finalizers".into(), Value::Array(left));
        Op::Update {
            value: next,
            expect_rv: owner.rv,
        }
    };
    if let Err(e) = cluster.store.write(key.clone(), op).await {
        tracing::debug!(object = %key.name, error = %e, "the foreground deletion is finished on the object's next change");
    }
}

/// Removes `dependent`'s reference to `owner`.
async fn release(
    cluster: &Cluster,
    key: ObjectKey,
    dependent: &StoredObject,
    owner: &str,
) -> Result<(), StoreError> {
    let mut next = dependent.value.clone();
    if let Some(refs) = next
        .pointer_mut("/metadata/ownerReferences")
        .and_then(Value::as_array_mut)
    {
        refs.retain(|r| r.get("uid").and_then(Value::as_str) != Some(owner));
    }
    let op = Op::Update {
        value: next,
        expect_rv: dependent.rv,
    };
    cluster.store.write(key, op).await.map(drop)
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
        for uid in index.waiting.clone() {
            advance_foreground(&cluster, &index, &uid).await;
        }
        loop {
            match live.recv().await {
                Ok(event) => match event.kind {
                    EventType::Deleted => {
                        let uid = event.object.uid().map(str::to_owned);
                        index.remove(&event.key, uid.as_deref());
                        if let Some(uid) = uid {
                            collect(&cluster, index.orphaned_by(&uid)).await;
                        }
                        for owner in owner_uids(&event.object.value) {
                            if index.waiting.contains(&owner) {
                                advance_foreground(&cluster, &index, &owner).await;
                            }
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
                        if let Some(uid) = event.object.uid()
                            && index.waiting.contains(uid)
                        {
                            advance_foreground(&cluster, &index, uid).await;
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
        let key = object_key(&object, resource);
        if let Err(e) = release(cluster, key, &object, uid).await {
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
