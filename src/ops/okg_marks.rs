//! Which of a set's servers OpenKruiseGame will remove first when
//! `spec.replicas` is lowered: those marked `WaitToBeDeleted` whose Pod
//! carries the mark. OKG's GameServerSet controller picks what to delete
//! from Pod labels (`game.kruise.io/gs-opsState`, kruise-game
//! apis/v1alpha1/gameserver_types.go `GameServerOpsStateKey`; read by
//! pkg/controllers/gameserverset/gameserverset_manager.go
//! `computeToScaleGs`), which its GameServer controller copies from the
//! GameServer some time after the GameServer changes. Lowering replicas
//! before that copy lands can delete new servers instead of the marked
//! ones, so ops lower replicas only by servers found here.
//!
//! A set none of whose servers has a Pod (a fleet run without its
//! simulator, which plays kubelet and OKG's Pod labels) answers from the
//! GameServers' own `spec.opsState`, as does a cluster that serves no Pods.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::{Api, ListParams};

use super::select::{self, deleting, ops_state};
use super::{Call, Outcome};
use crate::api::{OWNER_GSS_LABEL, POD_OPS_STATE_LABEL};

/// The mark OKG removes first on a scale-down.
pub const MARK: &str = "WaitToBeDeleted";

/// The servers of the set OKG will remove first: marked [`MARK`], not
/// being deleted, and (where the cluster serves Pods) with the mark on
/// their Pod.
pub async fn marked(call: &Call<'_>) -> Result<BTreeSet<String>, Outcome> {
    let servers = select::list_servers(call).await?;
    let on_servers: BTreeSet<String> = servers
        .iter()
        .filter(|g| !deleting(g) && ops_state(g) == MARK)
        .map(|g| select::name(g).to_owned())
        .collect();
    let pods: Api<Pod> = Api::namespaced(call.client.clone(), &call.namespace);
    let selector = format!("{OWNER_GSS_LABEL}={}", call.game_server_set);
    match pods.list(&ListParams::default().labels(&selector)).await {
        Ok(list) if list.items.is_empty() => Ok(on_servers),
        Ok(list) => Ok(list
            .items
            .into_iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .filter(|p| p.labels().get(POD_OPS_STATE_LABEL).map(String::as_str) == Some(MARK))
            .filter_map(|p| p.metadata.name)
            .filter(|n| on_servers.contains(n))
            .collect()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(on_servers),
        Err(e) => Err(super::cas::failure(
            &format!(
                "list the Pods of {}/{} to see which servers OpenKruiseGame will remove",
                call.namespace, call.game_server_set
            ),
            e,
        )),
    }
}
