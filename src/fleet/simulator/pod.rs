//! Each GameServer's Pod, as OpenKruiseGame and kubelet keep it: named as
//! the server, labelled as OKG labels it (`game.kruise.io/owner-gss`, and
//! the server's opsState and priorities copied by OKG's GameServer
//! controller, kruise-game pkg/controllers/gameserver/gameserver_manager.go
//! `SyncGsToPod`), its containers' images those the server runs, and its
//! status the one kubelet reports (the same `podStatus` the GameServer
//! carries).
//!
//! Deliberate difference (README, known differences): in OKG the Pod
//! belongs to an Advanced StatefulSet and the GameServer to the Pod; here
//! the Pod belongs to its GameServer, so deleting the GameServer removes
//! the Pod (garbage collection), and a deleted Pod is created again and
//! its server starts over, as after OKG recreates one.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Pod, PodSpec, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::{Resource, ResourceExt};
use serde_json::{Value, json};

use crate::api::{
    GameServer, OWNER_GSS_LABEL, POD_DELETION_PRIORITY_LABEL, POD_OPS_STATE_LABEL,
    POD_UPDATE_PRIORITY_LABEL,
};

fn priority(p: Option<&IntOrString>) -> String {
    match p {
        Some(IntOrString::Int(i)) => i.to_string(),
        Some(IntOrString::String(s)) => s.clone(),
        None => "0".into(),
    }
}

/// The labels OKG keeps on the server's Pod.
pub fn labels(gs: &GameServer) -> BTreeMap<String, String> {
    let mut labels = gs.labels().clone();
    let spec = &gs.spec;
    labels.insert(
        POD_OPS_STATE_LABEL.into(),
        spec.ops_state.clone().unwrap_or_else(|| "None".into()),
    );
    labels.insert(
        POD_DELETION_PRIORITY_LABEL.into(),
        priority(spec.deletion_priority.as_ref()),
    );
    labels.insert(
        POD_UPDATE_PRIORITY_LABEL.into(),
        priority(spec.update_priority.as_ref()),
    );
    labels
}

/// The containers the server runs: name, image and resources.
fn containers(gs: &GameServer) -> Vec<Container> {
    gs.spec
        .containers
        .iter()
        .flatten()
        .map(|c| Container {
            name: c.name.clone(),
            image: c.image.clone(),
            resources: c.resources.clone(),
            ..Default::default()
        })
        .collect()
}

/// The Pod to create for `gs`; `None` for a server without a name or uid.
pub fn new_pod(gs: &GameServer) -> Option<Pod> {
    let owner = OwnerReference {
        block_owner_deletion: Some(true),
        ..gs.controller_owner_ref(&())?
    };
    let mut labels = labels(gs);
    labels
        .entry(OWNER_GSS_LABEL.into())
        .or_insert_with(|| owner.name.rsplit_once('-').map_or("", |(s, _)| s).into());
    Some(Pod {
        metadata: ObjectMeta {
            name: gs.metadata.name.clone(),
            namespace: gs.metadata.namespace.clone(),
            labels: Some(labels),
            owner_references: Some(vec![owner]),
            ..Default::default()
        },
        spec: Some(PodSpec {
            containers: containers(gs),
            ..Default::default()
        }),
        status: None,
    })
}

/// The JSON patch (RFC 6902) that brings an existing Pod's labels and
/// images in line with its server; `None` when they already are. A JSON
/// patch changes only those fields, which kube-apiserver requires of a Pod
/// update (`spec` is immutable but for images) and which also works where
/// strategic merge is not served.
pub fn sync_patch(pod: &Pod, gs: &GameServer) -> Option<Value> {
    let have = pod.labels();
    let mut ops: Vec<Value> = Vec::new();
    if pod.metadata.labels.is_none() {
        ops.push(json!({"op": "add", "path": "/metadata/labels", "value": {}}));
    }
    for (k, v) in labels(gs) {
        if have.get(&k) != Some(&v) {
            let key = k.replace('~', "~0").replace('/', "~1");
            ops.push(json!({"op": "add", "path": format!("/metadata/labels/{key}"), "value": v}));
        }
    }
    let running = pod
        .spec
        .as_ref()
        .map(|s| s.containers.as_slice())
        .unwrap_or(&[]);
    for c in containers(gs) {
        if let Some(i) = running
            .iter()
            .position(|p| p.name == c.name && p.image != c.image)
        {
            ops.push(json!({"op": "replace", "path": format!("/spec/containers/{i}/image"), "value": c.image}));
        }
    }
    (!ops.is_empty()).then_some(Value::Array(ops))
}

/// The status the Pod should show, when it differs from what it shows.
pub fn status_changed<'a>(pod: &Pod, status: Option<&'a PodStatus>) -> Option<&'a PodStatus> {
    let status = status?;
    (pod.status.as_ref() != Some(status)).then_some(status)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{GameServerContainer, GameServerSpec};

    fn gs(ops: &str, image: &str) -> GameServer {
        let mut gs = GameServer::new(
            "mc-2",
            GameServerSpec {
                ops_state: Some(ops.into()),
                deletion_priority: Some(IntOrString::Int(5)),
                containers: Some(vec![GameServerContainer {
                    name: "mc".into(),
                    image: Some(image.into()),
                    resources: None,
                }]),
                ..Default::default()
            },
        );
        gs.metadata.namespace = Some("default".into());
        gs.metadata.uid = Some("u1".into());
        gs.metadata.labels = Some([(OWNER_GSS_LABEL.to_owned(), "mc".to_owned())].into());
        gs
    }

    #[test]
    fn the_pod_carries_okg_labels_and_belongs_to_its_server() {
        let pod = new_pod(&gs("None", "mc:1")).unwrap();
        let labels = pod.labels();
        assert_eq!(labels[OWNER_GSS_LABEL], "mc");
        assert_eq!(labels[POD_OPS_STATE_LABEL], "None");
        assert_eq!(labels[POD_DELETION_PRIORITY_LABEL], "5");
        assert_eq!(labels[POD_UPDATE_PRIORITY_LABEL], "0");
        let owner = &pod.owner_references()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str()),
            ("GameServer", "u1")
        );
        assert_eq!(
            pod.spec.unwrap().containers[0].image.as_deref(),
            Some("mc:1")
        );
    }

    #[test]
    fn a_new_ops_state_or_image_is_copied_to_the_pod_once() {
        let pod = new_pod(&gs("None", "mc:1")).unwrap();
        assert_eq!(sync_patch(&pod, &gs("None", "mc:1")), None);
        assert_eq!(
            sync_patch(&pod, &gs("WaitToBeDeleted", "mc:2")),
            Some(json!([
                {"op": "add", "path": "/metadata/labels/game.kruise.io~1gs-opsState", "value": "WaitToBeDeleted"},
                {"op": "replace", "path": "/spec/containers/0/image", "value": "mc:2"},
            ]))
        );
    }
}
