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

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Client, Resource, ResourceExt};
use serde_json::json;

use crate::api::{
    DRAINING_LABEL, DRAINING_SINCE_ANNOTATION, GameServer, GameServerContainer, GameServerSet,
    GameServerSetStatus, GameServerSpec, MAX_PLAYERS_ANNOTATION, OWNER_GSS_LABEL, OpsState,
    REVISION_LABEL,
};
use crate::metrics::{ClusterLabels, Metrics, SetLabels};
use events::Kind;
use fleet::Server;
use plan::{Desired, Strategy, Why};

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
        api_version: GameServerSet::api_version(&()).into_owned(),
        kind: GameServerSet::kind(&()).into_owned(),
        name: set.clone(),
        uid: gss.uid().ok_or(Error::Unnamed)?,
        controller: Some(true),
        block_owner_deletion: Some(true),
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

fn why_text(why: &Why) -> String {
    match why {
        Why::Kill => "opsState Kill".into(),
        Why::ScaleDown => "scale down".into(),
        Why::Replace => "replaced by the current template".into(),
        Why::Drained => "drained: no players left".into(),
        Why::DrainTimeout(p) => format!("drain timeout passed with {p} players still connected"),
    }
}

async fn reconcile(gss: Arc<GameServerSet>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    let result = reconcile_set(&gss, &ctx).await;
    ctx.metrics
        .reconcile_duration
        .observe(started.elapsed().as_secs_f64());
    result
}

async fn reconcile_set(gss: &GameServerSet, ctx: &Context) -> Result<Action, Error> {
    if gss.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let (name, ns) = (gss.name_any(), gss.namespace().ok_or(Error::Unnamed)?);
    let client = &ctx.client;
    let desired = match desired(gss) {
        Ok(d) => d,
        Err(problem) => {
            events::record(client, gss, Kind::Warning, "InvalidSpec", problem).await;
            return Ok(Action::await_change());
        }
    };
    let reserved = fleet::reserved_ids(gss.spec.reserve_game_server_ids.as_deref().unwrap_or(&[]))
        .unwrap_or_else(|_| Vec::new());
    let gs_api: Api<GameServer> = Api::namespaced(client.clone(), &ns);
    let listed = gs_api
        .list(&ListParams::default().labels(&format!("{OWNER_GSS_LABEL}={name}")))
        .await
        .map_err(api_err(format!("listing the GameServers of {ns}/{name}")))?;
    let rvs: BTreeMap<String, String> = listed
        .items
        .iter()
        .filter_map(|g| {
            Some((
                g.metadata.name.clone()?,
                g.metadata.resource_version.clone()?,
            ))
        })
        .collect();
    let servers: Vec<Server> = listed
        .items
        .iter()
        .filter_map(|g| Server::from_gameserver(&name, g))
        .collect();
    let all_ordinals: Vec<u32> = listed
        .items
        .iter()
        .filter_map(|g| fleet::ordinal_of(&name, g.metadata.name.as_deref()?))
        .collect();
    let now = jiff::Timestamp::now();
    let plan = match plan::plan(&desired, &servers, now) {
        Ok(p) => p,
        Err(problem) => {
            events::record(client, gss, Kind::Warning, "InvalidSpec", problem).await;
            return Ok(Action::await_change());
        }
    };
    let gss_api: Api<GameServerSet> = Api::namespaced(client.clone(), &ns);

    // Kill: lower replicas (compare-and-swap on the replicas we planned
    // with) before the Kill servers go, so a retry never lowers twice.
    if let Some(replicas) = plan.replicas_after_kill {
        let patch: json_patch::Patch = serde_json::from_value(json!([
            {"op": "test", "path": "/spec/replicas", "value": desired.replicas},
            {"op": "replace", "path": "/spec/replicas", "value": replicas},
        ]))
        .map_err(|e| Error::Api {
            action: "building the Kill patch".into(),
            source: kube::Error::SerdeError(e),
        })?;
        if let Err(e) = gss_api
            .patch(&name, &PatchParams::default(), &Patch::Json::<()>(patch))
            .await
        {
            tracing::debug!(set = %name, error = %e, "replicas changed meanwhile; planning again");
            return Ok(Action::requeue(BUSY_REQUEUE));
        }
    }

    for server in &plan.drain {
        let patch = json!({"metadata": {
            "labels": {DRAINING_LABEL: "true"},
            "annotations": {DRAINING_SINCE_ANNOTATION: now.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()},
        }});
        gs_api
            .patch(server, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(api_err(format!("marking {server} draining")))?;
    }
    if !plan.drain.is_empty() {
        let message = format!(
            "Draining {} (no new matches; removed once their players leave)",
            plan.drain.join(", ")
        );
        events::record(client, gss, Kind::Normal, "Draining", message).await;
    }

    let mut deleted = Vec::new();
    for (server, why) in &plan.delete {
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                resource_version: rvs.get(server).cloned(),
                uid: None,
            }),
            ..Default::default()
        };
        match gs_api.delete(server, &params).await {
            Ok(_) => deleted.push((server.clone(), why.clone())),
            // Changed since we looked (e.g. just allocated) or already gone: plan again.
            Err(kube::Error::Api(e)) if e.code == 409 || e.code == 404 => {}
            Err(e) => return Err(api_err(format!("deleting {server}"))(e)),
        }
        if matches!(why, Why::Drained | Why::DrainTimeout(_))
            && let Some(since) = servers
                .iter()
                .find(|s| &s.name == server)
                .and_then(|s| s.draining_since)
        {
            ctx.metrics
                .drain_duration
                .observe(now.duration_since(since).as_secs_f64().max(0.0));
        }
    }
    for (server, why) in &deleted {
        let (kind, reason) = match why {
            Why::DrainTimeout(_) => (Kind::Warning, "DrainTimeout"),
            Why::Kill => (Kind::Normal, "Killed"),
            _ => (Kind::Normal, "SuccessfulDelete"),
        };
        events::record(
            client,
            gss,
            kind,
            reason,
            format!("Deleted GameServer {server}: {}", why_text(why)),
        )
        .await;
    }

    let mut created = Vec::new();
    for ordinal in fleet::free_ordinals(&all_ordinals, &reserved, plan.create as usize) {
        let server = new_server(gss, ordinal, &desired.revision)?;
        match gs_api.create(&PostParams::default(), &server).await {
            Ok(_) => created.push(format!("{name}-{ordinal}")),
            Err(kube::Error::Api(e)) if e.code == 409 => {}
            Err(e) => return Err(api_err(format!("creating {name}-{ordinal}"))(e)),
        }
    }
    if !created.is_empty() {
        events::record(
            client,
            gss,
            Kind::Normal,
            "SuccessfulCreate",
            format!("Created GameServers {}", created.join(", ")),
        )
        .await;
    }

    if let Some(overflow) = &gss.spec.allocation_overflow {
        apply_overflow(&gs_api, &listed.items, &plan.overflow, overflow).await?;
    }

    let status = status_of(gss, &servers, &desired.revision);
    if gss.status.as_ref() != Some(&status) {
        gss_api
            .patch_status(
                &name,
                &PatchParams::default(),
                &Patch::Merge(&json!({"status": status})),
            )
            .await
            .map_err(api_err(format!("writing the status of {ns}/{name}")))?;
    }
    let labels = SetLabels {
        cluster: ctx.cluster.clone(),
        namespace: ns.clone(),
        gameserverset: name.clone(),
    };
    let progress = if desired.replicas == 0 {
        1.0
    } else {
        f64::from(status.updated_replicas) / f64::from(desired.replicas)
    };
    ctx.metrics
        .rollout_progress
        .get_or_create(&labels)
        .set(progress);

    let settled = plan.create == 0
        && plan.delete.is_empty()
        && plan.drain.is_empty()
        && servers
            .iter()
            .all(|s| s.ready && s.draining_since.is_none());
    Ok(if settled {
        Action::requeue(Duration::from_secs(300))
    } else {
        Action::requeue(BUSY_REQUEUE)
    })
}

/// Puts the set's allocationOverflow labels and annotations on `overflow`
/// servers that do not carry them yet (an empty label value removes it).
async fn apply_overflow(
    gs_api: &Api<GameServer>,
    listed: &[GameServer],
    overflow: &[String],
    spec: &crate::api::AllocationOverflow,
) -> Result<(), Error> {
    for gs in listed.iter().filter(|g| {
        g.metadata
            .name
            .as_ref()
            .is_some_and(|n| overflow.contains(n))
    }) {
        let labels = gs.metadata.labels.clone().unwrap_or_default();
        let annotations = gs.metadata.annotations.clone().unwrap_or_default();
        let want_labels: serde_json::Map<String, serde_json::Value> = spec
            .labels
            .iter()
            .flatten()
            .filter(|(k, v)| {
                if v.is_empty() {
                    labels.contains_key(*k)
                } else {
                    labels.get(*k) != Some(v)
                }
            })
            .map(|(k, v)| {
                (
                    k.clone(),
                    if v.is_empty() {
                        serde_json::Value::Null
                    } else {
                        json!(v)
                    },
                )
            })
            .collect();
        let want_annotations: serde_json::Map<String, serde_json::Value> = spec
            .annotations
            .iter()
            .flatten()
            .filter(|(k, v)| annotations.get(*k) != Some(v))
            .map(|(k, v)| (k.clone(), json!(v)))
            .collect();
        if want_labels.is_empty() && want_annotations.is_empty() {
            continue;
        }
        let name = gs.name_any();
        let patch = json!({"metadata": {"labels": want_labels, "annotations": want_annotations}});
        gs_api
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(api_err(format!("marking {name} as allocation overflow")))?;
    }
    Ok(())
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
