//! The embedded fleet controller: a kube-runtime `Controller` over
//! GameServerSets that owns GameServers, talking to the API only through
//! `kube::Api` (so it would work against any Kubernetes API server).
//!
//! Each reconcile lists the set's servers, plans with the pure functions in
//! [`plan`] (scale, Kill, the four update strategies, allocation overflow),
//! carries the plan out with preconditions (a server is deleted only at the
//! resourceVersion it was planned on, so one that was just allocated is
//! never lost), records events, and writes the set's status as OKG does.

pub mod events;
pub mod fleet;
pub mod plan;
mod reconcile;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::Api;
use kube::runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Client, Resource, ResourceExt};

use crate::api::{
    GameServer, GameServerContainer, GameServerSet, GameServerSetStatus, GameServerSpec,
    MAX_PLAYERS_ANNOTATION, OWNER_GSS_LABEL, OpsState, REVISION_LABEL,
};
use crate::metrics::{ClusterLabels, Metrics};
use fleet::Server;
use plan::{Desired, Strategy};

/// Default `drainTimeoutSeconds`.
const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(3600);
/// How soon a set is looked at again while it is changing.
const BUSY_REQUEUE: Duration = Duration::from_millis(500);

/// Why a reconcile failed (it is retried).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The API server refused or failed a request.
    #[error("{action} failed: {source}")]
    Api {
        /// What was being done.
        action: String,
        /// The error.
        source: kube::Error,
    },
    /// The set has no namespace or name.
    #[error("the GameServerSet has no name or namespace")]
    Unnamed,
}

fn api_err(action: impl Into<String>) -> impl FnOnce(kube::Error) -> Error {
    let action = action.into();
    move |source| Error::Api { action, source }
}

/// What every reconcile shares.
pub struct Context {
    client: Client,
    cluster: String,
    metrics: Arc<Metrics>,
}

/// Reads what the set asks for; `Err` is a sentence for a Warning event.
fn desired(gss: &GameServerSet) -> Result<Desired, String> {
    let strategy = gss.spec.update_strategy.as_ref();
    let rolling = strategy.and_then(|s| s.rolling_update.as_ref());
    let replicas = u32::try_from(gss.spec.replicas)
        .map_err(|_| format!("spec.replicas {} must not be negative", gss.spec.replicas))?;
    let drain = strategy
        .and_then(|s| s.drain_timeout_seconds)
        .map(|s| Duration::from_secs(s.max(0) as u64))
        .unwrap_or(DEFAULT_DRAIN_TIMEOUT);
    let desired = Desired {
        replicas,
        revision: gss.revision(),
        strategy: Strategy::parse(strategy.and_then(|s| s.r#type.as_deref()))?,
        max_surge: rolling.and_then(|r| r.max_surge.clone()),
        max_unavailable: rolling.and_then(|r| r.max_unavailable.clone()),
        partition: rolling.and_then(|r| r.partition).unwrap_or(0).max(0) as u32,
        paused: rolling.and_then(|r| r.paused).unwrap_or(false),
        drain_timeout: drain,
        reserved: fleet::reserved_ids(gss.spec.reserve_game_server_ids.as_deref().unwrap_or(&[]))
            .map_err(|e| format!("spec.reserveGameServerIds: {e}"))?,
    };
    // Check the budgets now, so a typo is reported once rather than at every step.
    plan::surge(desired.max_surge.as_ref(), replicas)
        .map_err(|e| format!("spec.updateStrategy.rollingUpdate.maxSurge: {e}"))?;
    plan::unavailable(desired.max_unavailable.as_ref(), replicas)
        .map_err(|e| format!("spec.updateStrategy.rollingUpdate.maxUnavailable: {e}"))?;
    Ok(desired)
}

/// The GameServer the set creates at `ordinal`.
fn new_server(gss: &GameServerSet, ordinal: u32, revision: &str) -> Result<GameServer, Error> {
    let set = gss.name_any();
    let template = gss.spec.game_server_template.as_ref();
    let pod = template.map(|t| &t.pod_template);
    let mut labels: BTreeMap<String, String> = pod
        .and_then(|p| p.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    labels.insert(OWNER_GSS_LABEL.into(), set.clone());
    labels.insert(REVISION_LABEL.into(), revision.into());
    let mut annotations: BTreeMap<String, String> = pod
        .and_then(|p| p.metadata.as_ref())
        .and_then(|m| m.annotations.clone())
        .unwrap_or_default();
    if let Some(max) = gss.spec.parameters.as_ref().and_then(|p| p.max_players) {
        annotations.insert(MAX_PLAYERS_ANNOTATION.into(), max.to_string());
    }
    let containers: Vec<GameServerContainer> = pod
        .and_then(|p| p.spec.as_ref())
        .map(|s| {
            s.containers
                .iter()
                .map(|c| GameServerContainer {
                    name: c.name.clone(),
                    image: c.image.clone(),
                    resources: c.resources.clone(),
                })
                .collect()
        })
        .unwrap_or_default();
    let owner = OwnerReference {
        block_owner_deletion: Some(true),
        ..gss.controller_owner_ref(&()).ok_or(Error::Unnamed)?
    };
    Ok(GameServer {
        metadata: ObjectMeta {
            name: Some(format!("{set}-{ordinal}")),
            namespace: gss.namespace(),
            labels: Some(labels),
            annotations: (!annotations.is_empty()).then_some(annotations),
            owner_references: Some(vec![owner]),
            ..Default::default()
        },
        spec: GameServerSpec {
            ops_state: Some(OpsState::None.as_str().into()),
            containers: (!containers.is_empty()).then_some(containers),
            ..Default::default()
        },
        status: None,
    })
}

/// OKG's status of a set, from its servers.
fn status_of(gss: &GameServerSet, servers: &[Server], revision: &str) -> GameServerSetStatus {
    let count = |f: &dyn Fn(&Server) -> bool| servers.iter().filter(|s| f(s)).count() as i32;
    let ready = count(&|s| s.ready);
    GameServerSetStatus {
        observed_generation: gss.metadata.generation,
        replicas: servers.len() as i32,
        current_replicas: servers.len() as i32,
        ready_replicas: ready,
        available_replicas: ready,
        updated_replicas: count(&|s| s.revision == revision),
        updated_ready_replicas: Some(count(&|s| s.revision == revision && s.ready)),
        maintaining_replicas: Some(count(&|s| s.is(OpsState::Maintaining))),
        wait_to_be_deleted_replicas: Some(count(&|s| s.is(OpsState::WaitToBeDeleted))),
        pre_delete_replicas: Some(0),
        label_selector: Some(format!("{OWNER_GSS_LABEL}={}", gss.name_any())),
    }
}

async fn reconcile(gss: Arc<GameServerSet>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    let result = reconcile::reconcile_set(&gss, &ctx).await;
    ctx.metrics
        .reconcile_duration
        .observe(started.elapsed().as_secs_f64());
    result
}

fn error_policy(gss: Arc<GameServerSet>, error: &Error, ctx: Arc<Context>) -> Action {
    tracing::warn!(cluster = %ctx.cluster, set = %gss.name_any(), error = %error, "reconcile failed; retrying");
    ctx.metrics
        .reconcile_errors
        .get_or_create(&ClusterLabels {
            cluster: ctx.cluster.clone(),
        })
        .inc();
    Action::requeue(Duration::from_secs(1))
}

/// Runs the controller for one cluster until the task is dropped.
pub async fn run(client: Client, cluster: String, metrics: Arc<Metrics>) {
    let sets: Api<GameServerSet> = Api::all(client.clone());
    let servers: Api<GameServer> = Api::all(client.clone());
    // A cache of every set-owned server, for the metrics.
    let (cache, writer) = reflector::store();
    metrics.watch_fleet(&cluster, cache);
    let cache_feed = reflector(
        writer,
        watcher(
            servers.clone(),
            watcher::Config::default().labels(OWNER_GSS_LABEL),
        ),
    )
    .default_backoff()
    .touched_objects()
    .for_each(|_| futures::future::ready(()));
    let ctx = Arc::new(Context {
        client,
        cluster,
        metrics,
    });
    let controller = Controller::new(sets, watcher::Config::default())
        .owns(servers, watcher::Config::default())
        .with_config(ControllerConfig::default().debounce(Duration::from_millis(20)))
        .run(reconcile, error_policy, ctx)
        .for_each(|_| futures::future::ready(()));
    // One task: when it is stopped, the metrics cache's watch stops with it.
    futures::future::join(cache_feed, controller).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gss(yaml: &str) -> GameServerSet {
        serde_yaml_ng::from_str(yaml).unwrap()
    }

    const SEED: &str = "apiVersion: game.kruise.io/v1alpha1
kind: GameServerSet
metadata: {name: minecraft, namespace: default, uid: u1}
spec:
  replicas: 3
  updateStrategy: {type: OnDelete}
  gameServerTemplate:
    metadata: {labels: {app: mc}}
    spec:
      containers: [{name: minecraft, image: 'mc:1.12.2'}]
";

    #[test]
    fn revision_changes_with_template_or_parameters_only() {
        let a = gss(SEED);
        let mut b = a.clone();
        b.spec.replicas = 6;
        assert_eq!(a.revision(), b.revision(), "replicas alone do not roll");
        let c = gss(&SEED.replace("1.12.2", "1.12.2-new"));
        assert_ne!(a.revision(), c.revision());
        let mut d = a.clone();
        d.spec.parameters = Some(crate::api::Parameters {
            max_players: Some(32),
        });
        assert_ne!(
            a.revision(),
            d.revision(),
            "a parameter change rolls like an image change"
        );
    }

    #[test]
    fn new_servers_carry_owner_labels_and_template() {
        let set = gss(SEED);
        let gs = new_server(&set, 4, "abc").unwrap();
        assert_eq!(gs.metadata.name.as_deref(), Some("minecraft-4"));
        let labels = gs.metadata.labels.unwrap();
        assert_eq!(labels[OWNER_GSS_LABEL], "minecraft");
        assert_eq!(labels[REVISION_LABEL], "abc");
        assert_eq!(labels["app"], "mc");
        assert_eq!(
            gs.spec.containers.unwrap()[0].image.as_deref(),
            Some("mc:1.12.2")
        );
        assert_eq!(gs.metadata.owner_references.unwrap()[0].uid, "u1");
    }

    #[test]
    fn invalid_specs_are_sentences() {
        let bad = gss(&SEED.replace("type: OnDelete", "type: Sideways"));
        assert!(desired(&bad).unwrap_err().contains("Sideways"));
        let bad = gss(&SEED.replace(
            "updateStrategy: {type: OnDelete}",
            "updateStrategy: {type: RollingUpdate, rollingUpdate: {maxSurge: 'lots'}}",
        ));
        assert!(desired(&bad).unwrap_err().contains("maxSurge"));
    }
}
