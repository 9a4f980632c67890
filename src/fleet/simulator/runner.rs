//! The simulator's runner: a kube-runtime [`Controller`] over GameServers
//! that feeds [`transition`] and writes its result back as merge patches,
//! waking each server up again when its next timed transition is due.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::controller::{self, Action, Controller};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use serde_json::{Map, Value, json};

use crate::api::{GameServer, GameServerSet, MATCH_STARTED_ANNOTATION, OWNER_GSS_LABEL, OpsState};

use super::pod;
use super::transition::*;
use super::*;

/// A JSON merge patch (RFC 7386) turning `old` into `new`; `None` if equal.
pub(super) fn merge_diff(old: &Value, new: &Value) -> Option<Value> {
    match (old, new) {
        (Value::Object(o), Value::Object(n)) => {
            let mut out = Map::new();
            for (k, nv) in n {
                match o.get(k) {
                    Some(ov) => {
                        if let Some(d) = merge_diff(ov, nv) {
                            out.insert(k.clone(), d);
                        }
                    }
                    None => {
                        out.insert(k.clone(), nv.clone());
                    }
                }
            }
            for k in o.keys() {
                if !n.contains_key(k) {
                    out.insert(k.clone(), Value::Null);
                }
            }
            (!out.is_empty()).then_some(Value::Object(out))
        }
        _ => (old != new).then(|| new.clone()),
    }
}

pub(super) struct Context {
    client: Client,
    config: SimulatorConfig,
    sets: Store<GameServerSet>,
}

impl Context {
    fn set_of(&self, gs: &GameServer) -> Option<SetInfo> {
        let namespace = gs.metadata.namespace.as_deref()?;
        let name = gs.labels().get(OWNER_GSS_LABEL).cloned().or_else(|| {
            gs.owner_references()
                .iter()
                .find(|o| o.kind == "GameServerSet")
                .map(|o| o.name.clone())
        })?;
        let set = self.sets.get(&ObjectRef::new(&name).within(namespace))?;
        Some(SetInfo::of(&set))
    }
}

pub(super) fn status_code(e: &kube::Error) -> Option<u16> {
    match e {
        kube::Error::Api(s) => Some(s.code),
        _ => None,
    }
}

/// What a failed write means for the reconciliation.
pub(super) fn on_write_error(e: kube::Error) -> Result<Action, SimulatorError> {
    match status_code(&e) {
        Some(404) => Ok(Action::await_change()),
        Some(409) => Ok(Action::requeue(CONFLICT_REQUEUE)),
        _ => Err(e.into()),
    }
}

/// Applies transitions until one asks to wait (at most
/// `MAX_CHAINED_TRANSITIONS`); the last one, if any.
fn chain(
    work: &mut GameServer,
    set: Option<&SetInfo>,
    config: &SimulatorConfig,
) -> Option<Transition> {
    let mut outcome = None;
    for _ in 0..MAX_CHAINED_TRANSITIONS {
        let before = work.status.as_ref().and_then(|s| s.current_state.clone());
        let t = transition(work, set, Timestamp::now(), config);
        if t.status.current_state != before {
            tracing::debug!(
                gameserver = %work.name_any(),
                from = before.as_deref().unwrap_or("-"),
                to = t.status.current_state.as_deref().unwrap_or("-"),
                "simulated state transition"
            );
        }
        let again = !t.end_match && t.wake_after == Some(Duration::ZERO);
        work.status = Some(t.status.clone());
        outcome = Some(t);
        if !again {
            break;
        }
    }
    outcome
}

async fn reconcile(gs: Arc<GameServer>, ctx: Arc<Context>) -> Result<Action, SimulatorError> {
    let (Some(namespace), Some(name)) = (
        gs.metadata.namespace.as_deref(),
        gs.metadata.name.as_deref(),
    ) else {
        return Ok(Action::await_change());
    };
    let api: Api<GameServer> = Api::namespaced(ctx.client.clone(), namespace);
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), namespace);
    let deleting = gs.metadata.deletion_timestamp.is_some();
    let mut pod = if deleting {
        None
    } else {
        pods.get_opt(name).await?
    };
    let set = ctx.set_of(&gs);
    let mut work = (*gs).clone();
    if !deleting && pod.is_none() && work.status.as_ref().is_some_and(|s| s.pod_status.is_some()) {
        // Its Pod is gone: the server starts over in a new one, as when
        // OKG recreates a deleted Pod.
        work.status = None;
    }
    let outcome = chain(&mut work, set.as_ref(), &ctx.config);
    let Some(outcome) = outcome else {
        return Ok(Action::await_change());
    };

    let old = serde_json::to_value(gs.status.clone().unwrap_or_default())?;
    let new = serde_json::to_value(&outcome.status)?;
    let mut resource_version = gs.metadata.resource_version.clone();
    if let Some(diff) = merge_diff(&old, &new) {
        // Players belong to whoever changed them last: only write them over
        // the version they were decided on.
        let pin = diff.get("players").is_some();
        let mut body = json!({ "status": diff });
        if pin {
            body["metadata"] = json!({ "resourceVersion": resource_version });
        }
        match api
            .patch_status(name, &PatchParams::default(), &Patch::Merge(&body))
            .await
        {
            Ok(updated) => resource_version = updated.metadata.resource_version,
            Err(e) => return on_write_error(e),
        }
    }
    if !deleting {
        sync_pod(&pods, &gs, &mut pod).await?;
        if let Some(pod) = &pod
            && let Err(e) = write_pod_status(&pods, pod, outcome.status.pod_status.as_ref()).await
        {
            return on_write_error(e);
        }
    }
    if outcome.end_match {
        let body = json!({
            "metadata": {
                "resourceVersion": resource_version,
                "annotations": { MATCH_STARTED_ANNOTATION: null },
            },
            "spec": { "opsState": OpsState::None.as_str() },
        });
        if let Err(e) = api
            .patch(name, &PatchParams::default(), &Patch::Merge(&body))
            .await
        {
            return on_write_error(e);
        }
        tracing::debug!(gameserver = %format!("{namespace}/{name}"), "simulated match ended");
        return Ok(Action::await_change());
    }
    Ok(match outcome.wake_after {
        Some(d) => Action::requeue(d.max(MIN_REQUEUE)),
        None => Action::await_change(),
    })
}

/// Writes what kubelet would report on the Pod, when it shows otherwise.
async fn write_pod_status(
    pods: &Api<Pod>,
    pod: &Pod,
    status: Option<&k8s_openapi::api::core::v1::PodStatus>,
) -> Result<(), kube::Error> {
    let mut want = status.cloned();
    if let Some(w) = want.as_mut() {
        // kube-apiserver sets the QoS class at creation; kubelet keeps it.
        w.qos_class = pod.status.as_ref().and_then(|s| s.qos_class.clone());
    }
    if let Some(status) = pod::status_changed(pod, want.as_ref()) {
        let body = json!({ "status": status });
        pods.patch_status(
            &pod.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&body),
        )
        .await?;
    }
    Ok(())
}

/// Creates the server's Pod when it has none, or brings its labels and
/// images in line with the server.
async fn sync_pod(
    pods: &Api<Pod>,
    gs: &GameServer,
    pod: &mut Option<Pod>,
) -> Result<(), SimulatorError> {
    match pod {
        None => {
            let Some(new) = pod::new_pod(gs) else {
                return Ok(());
            };
            match pods.create(&PostParams::default(), &new).await {
                Ok(created) => *pod = Some(created),
                Err(e) if status_code(&e) == Some(409) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Some(current) => {
            if let Some(patch) = pod::sync_patch(current, gs) {
                let patch: json_patch::Patch = serde_json::from_value(patch)?;
                let name = current.name_any();
                match pods
                    .patch(&name, &PatchParams::default(), &Patch::<()>::Json(patch))
                    .await
                {
                    Ok(updated) => *pod = Some(updated),
                    Err(e) if matches!(status_code(&e), Some(404 | 409 | 422)) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
    }
    Ok(())
}

pub(super) fn error_policy(
    _gs: Arc<GameServer>,
    error: &SimulatorError,
    _ctx: Arc<Context>,
) -> Action {
    tracing::debug!(%error, "simulator reconciliation failed; retrying");
    Action::requeue(ERROR_REQUEUE)
}

/// Runs the simulated fleet over every GameServer the client can see, until
/// the future is dropped.
pub async fn run(client: Client, config: SimulatorConfig) {
    let (sets, writer) = reflector::store::<GameServerSet>();
    let set_cache = watcher(
        Api::<GameServerSet>::all(client.clone()),
        watcher::Config::default(),
    )
    .default_backoff()
    .reflect(writer)
    .for_each(|event| {
        if let Err(error) = event {
            tracing::warn!(%error, "simulator: watching GameServerSets failed; retrying");
        }
        futures::future::ready(())
    });
    let ctx = Arc::new(Context {
        client: client.clone(),
        config,
        sets: sets.clone(),
    });
    let servers = async move {
        if tokio::time::timeout(SET_CACHE_WAIT, sets.wait_until_ready())
            .await
            .is_err()
        {
            tracing::warn!("simulator: no GameServerSet list yet; starting without it");
        }
        Controller::new(Api::<GameServer>::all(client.clone()), watcher::Config::default())
            .owns(
                Api::<Pod>::all(client),
                watcher::Config::default().labels(OWNER_GSS_LABEL),
            )
            .with_config(controller::Config::default().concurrency(CONCURRENCY))
            .run(reconcile, error_policy, ctx)
            .for_each(|result| {
                match result {
                    Ok(_) => {}
                    Err(controller::Error::ObjectNotFound(_)) => {}
                    Err(controller::Error::ReconcilerFailed(error, object)) => {
                        tracing::warn!(%error, gameserver = %object, "simulator: reconciliation failed");
                    }
                    Err(error) => tracing::warn!(%error, "simulator: controller error"),
                }
                futures::future::ready(())
            })
            .await;
    };
    futures::future::join(set_cache, servers).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_diff_is_minimal_and_removes_fields() {
        let old = json!({"a": 1, "b": {"c": 2, "d": 3}, "e": [1, 2]});
        let new = json!({"a": 1, "b": {"c": 5}, "e": [1, 2, 3], "f": "x"});
        assert_eq!(
            merge_diff(&old, &new),
            Some(json!({"b": {"c": 5, "d": null}, "e": [1, 2, 3], "f": "x"}))
        );
        assert_eq!(merge_diff(&old, &old), None);
        let mut patched = old.clone();
        json_patch::merge(&mut patched, &merge_diff(&old, &new).unwrap());
        assert_eq!(patched, new);
    }
}
