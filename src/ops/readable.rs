//! Values the plugin cannot read are permanent errors: a GameServerSet
//! whose `spec.replicas` is outside int32 (kube-rs cannot decode it), a
//! GameServer with a field of the wrong type, or an annotation gameops
//! wrote (its lease, its records, its progress, its image history) that no
//! longer parses. Trying again reads the same bytes, so the step fails,
//! naming the object and the field and saying how to repair it.
//!
//! A typed read that fails to decode is read again untyped and decoded
//! field by field ([`serde_path_to_error`]) to name the field; an
//! annotation is decoded into the type its own module reads it as.

use std::collections::BTreeMap;

use kube::Resource;
use kube::api::{Api, ApiResource, DynamicObject, ListParams};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::Outcome;
use crate::api::GameServerSet;

/// The field of `value` that does not decode as a `K`, and why
/// (`spec.replicas: invalid value: integer ..., expected i32`), or `None`
/// when it decodes.
pub fn unreadable_field<K: DeserializeOwned>(value: Value) -> Option<String> {
    match serde_path_to_error::deserialize::<_, K>(value) {
        Ok(_) => None,
        Err(e) => Some(format!("{}: {}", e.path(), e.inner())),
    }
}

/// The API resource of `K`, to read it untyped.
fn untyped<K: Resource<DynamicType = ()>>() -> ApiResource {
    ApiResource::erase::<K>(&())
}

/// After a typed GET of `name` failed to decode: the object read untyped,
/// with the field that does not decode named, as the answer to give.
/// `kind` and `fix` go into the message; `None` when the untyped read
/// shows nothing wrong (the caller then reports the first error).
pub async fn name_field<K>(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    kind: &str,
) -> Option<Outcome>
where
    K: Resource<DynamicType = ()> + DeserializeOwned,
{
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &untyped::<K>());
    let object = api.get(name).await.ok()?;
    let value = serde_json::to_value(&object).ok()?;
    let field = unreadable_field::<K>(value)?;
    Some(unreadable(kind, namespace, name, &field))
}

/// After a typed LIST (`selector`) failed to decode: the first object that
/// does not decode, named with its field, as the answer to give.
pub async fn name_item<K>(
    client: &kube::Client,
    namespace: &str,
    selector: &str,
    kind: &str,
) -> Option<Outcome>
where
    K: Resource<DynamicType = ()> + DeserializeOwned,
{
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &untyped::<K>());
    let list = api
        .list(&ListParams::default().labels(selector))
        .await
        .ok()?;
    list.items.into_iter().find_map(|object| {
        let name = object.metadata.name.clone().unwrap_or_default();
        let value = serde_json::to_value(&object).ok()?;
        let field = unreadable_field::<K>(value)?;
        Some(unreadable(kind, namespace, &name, &field))
    })
}

/// The failure for a field that cannot be read.
fn unreadable(kind: &str, namespace: &str, name: &str, field: &str) -> Outcome {
    let short = match kind {
        "GameServerSet" => "gss",
        "GameServer" => "gs",
        other => other,
    };
    Outcome::Failed(format!(
        "{kind} {namespace}/{name} cannot be read: {field}; correct that field (kubectl edit {short} {name} -n {namespace}): replicas and other counts must fit in a 32-bit integer"
    ))
}

/// Decodes an annotation as the type its module reads it as.
type Check = fn(&str) -> Result<(), serde_json::Error>;

/// The annotations gameops writes on a GameServerSet, each with the type
/// its module reads it as (`ledger`, `progress`, `patch_image`).
const BOOKKEEPING: [(&str, Check); 4] = [
    (super::ledger::LEASE_ANNOTATION, |s| {
        serde_json::from_str::<super::ledger::Lease>(s).map(drop)
    }),
    (super::ledger::OPS_ANNOTATION, |s| {
        serde_json::from_str::<BTreeMap<String, super::ledger::Record>>(s).map(drop)
    }),
    (super::progress::WAITS_ANNOTATION, |s| {
        serde_json::from_str::<BTreeMap<String, super::progress::Progress>>(s).map(drop)
    }),
    (super::history::HISTORY_ANNOTATION, |s| {
        serde_json::from_str::<Vec<super::history::HistoryEntry>>(s).map(drop)
    }),
];

/// The first annotation gameops wrote on `gss` that no longer parses, as
/// the failure to answer: read as absent, it would drop a lease, replay
/// nothing, or restart a wait, so the step stops and says how to repair.
pub fn bookkeeping(gss: &GameServerSet) -> Result<(), Outcome> {
    let Some(annotations) = gss.metadata.annotations.as_ref() else {
        return Ok(());
    };
    for (key, check) in BOOKKEEPING {
        if let Some(text) = annotations.get(key)
            && let Err(e) = check(text)
        {
            let namespace = gss.metadata.namespace.as_deref().unwrap_or_default();
            let name = gss.metadata.name.as_deref().unwrap_or_default();
            return Err(Outcome::Failed(format!(
                "GameServerSet {namespace}/{name}: annotation {key}, which gameops writes, no longer parses ({e}); someone edited it: remove it (kubectl annotate gss {name} -n {namespace} {key}-) and run the step again"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_the_field_out_of_range() {
        let gss = json!({
            "apiVersion": "game.kruise.io/v1alpha1", "kind": "GameServerSet",
            "metadata": {"name": "m", "namespace": "default"},
            "spec": {"replicas": 3_000_000_000_u64, "gameServerTemplate": {}},
        });
        let field = unreadable_field::<GameServerSet>(gss).unwrap();
        assert!(field.starts_with("spec.replicas: "), "{field}");
        assert!(field.contains("3000000000"), "{field}");
    }

    #[test]
    fn a_set_without_bookkeeping_is_readable() {
        let gss = GameServerSet::new(
            "m",
            serde_json::from_value(json!({"replicas": 1, "gameServerTemplate": {}})).unwrap(),
        );
        assert!(bookkeeping(&gss).is_ok());
    }

    #[test]
    fn an_edited_lease_is_named() {
        let mut gss = GameServerSet::new(
            "m",
            serde_json::from_value(json!({"replicas": 1, "gameServerTemplate": {}})).unwrap(),
        );
        gss.metadata.namespace = Some("default".into());
        gss.metadata.annotations = Some(BTreeMap::from([(
            super::super::ledger::LEASE_ANNOTATION.to_owned(),
            "{not json".to_owned(),
        )]));
        let Err(Outcome::Failed(m)) = bookkeeping(&gss) else {
            panic!("an unreadable lease fails");
        };
        assert!(
            m.contains("gameops.io/lease")
                && m.contains("kubectl annotate gss m -n default gameops.io/lease-"),
            "{m}"
        );
    }
}
