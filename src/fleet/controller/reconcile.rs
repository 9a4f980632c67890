//! One reconciliation of a GameServerSet, as named steps: observe the
//! set's servers, plan (the pure [`super::plan::plan`]), then lower the
//! replicas for Kill, mark draining, delete, create, label the overflow,
//! and write the status; [`next_action`] decides when to look again.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::controller::Action;
use kube::{Client, ResourceExt};
use serde_json::json;

use super::events::{self, Kind};
use super::fleet::{self, Server};
use super::plan::{self, Desired, Plan, Why};
use super::{BUSY_REQUEUE, Context, Error, api_err, desired, new_server, status_of};
use crate::api::{
    DRAINING_LABEL, DRAINING_SINCE_ANNOTATION, GameServer, GameServerSet, OWNER_GSS_LABEL,
};
use crate::metrics::SetLabels;

/// One set being reconciled, and what every step needs.
struct Step<'a> {
    gss: &'a GameServerSet,
    ctx: &'a Context,
    name: String,
    ns: String,
    gs_api: Api<GameServer>,
    now: jiff::Timestamp,
}

/// The set's servers as listed.
struct Observed {
    items: Vec<GameServer>,
    /// resourceVersion by server name.
    rvs: BTreeMap<String, String>,
    servers: Vec<Server>,
    /// Ordinals in use (by any server named `<set>-<n>`).
    ordinals: Vec<u32>,
}

impl Observed {
    /// What the controller reads of `items`, the servers of set `name`.
    fn of(name: &str, items: Vec<GameServer>) -> Self {
        let rvs = items
            .iter()
            .filter_map(|g| {
                Some((
                    g.metadata.name.clone()?,
                    g.metadata.resource_version.clone()?,
                ))
            })
            .collect();
        let servers = items
            .iter()
            .filter_map(|g| Server::from_gameserver(name, g))
            .collect();
        let ordinals = items
            .iter()
            .filter_map(|g| fleet::ordinal_of(name, g.metadata.name.as_deref()?))
            .collect();
        Self {
            items,
            rvs,
            servers,
            ordinals,
        }
    }
}

pub(super) async fn reconcile_set(gss: &GameServerSet, ctx: &Context) -> Result<Action, Error> {
    if gss.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let (name, ns) = (gss.name_any(), gss.namespace().ok_or(Error::Unnamed)?);
    let step = Step {
        gs_api: Api::namespaced(ctx.client.clone(), &ns),
        gss,
        ctx,
        name,
        ns,
        now: jiff::Timestamp::now(),
    };
    let desired = match desired(gss) {
        Ok(d) => d,
        Err(problem) => return step.invalid(problem).await,
    };
    let observed = step.observe().await?;
    let plan = match plan::plan(&desired, &observed.servers, step.now) {
        Ok(p) => p,
        Err(problem) => return step.invalid(problem).await,
    };
    if let Some(replicas) = plan.replicas_after_kill
        && !step.lower_replicas(desired.replicas, replicas).await?
    {
        return Ok(Action::requeue(BUSY_REQUEUE));
    }
    if !step.backfill_reserved(&plan).await? {
        return Ok(Action::requeue(BUSY_REQUEUE));
    }
    step.mark_draining(&plan.drain).await?;
    step.delete(&plan.delete, &observed).await?;
    step.create(&desired, &observed, plan.create).await?;
    if let Some(overflow) = &gss.spec.allocation_overflow {
        apply_overflow(&step.gs_api, &observed.items, &plan.overflow, overflow).await?;
    }
    step.write_status(&desired, &observed.servers).await?;
    Ok(next_action(&plan, &observed.servers))
}

/// When to look again: soon while anything is moving, else in 5 minutes.
fn next_action(plan: &Plan, servers: &[Server]) -> Action {
    let settled = plan.create == 0
        && plan.delete.is_empty()
        && plan.drain.is_empty()
        && servers
            .iter()
            .all(|s| s.ready && s.draining_since.is_none());
    if settled {
        Action::requeue(Duration::from_secs(300))
    } else {
        Action::requeue(BUSY_REQUEUE)
    }
}

/// The event of a deletion: its kind and reason.
fn delete_event(why: &Why) -> (Kind, &'static str) {
    match why {
        Why::DrainTimeout(_) => (Kind::Warning, "DrainTimeout"),
        Why::Kill => (Kind::Normal, "Killed"),
        _ => (Kind::Normal, "SuccessfulDelete"),
    }
}

fn why_text(why: &Why) -> String {
    match why {
        Why::Kill => "opsState Kill".into(),
        Why::ScaleDown => "scale down".into(),
        Why::Replace => "replaced by the current template".into(),
        Why::Drained => "drained: no players left".into(),
        Why::DrainTimeout(p) => format!("drain timeout passed with {p} players still connected"),
        Why::Reserved => "its id is in spec.reserveGameServerIds".into(),
    }
}

impl Step<'_> {
    fn client(&self) -> &Client {
        &self.ctx.client
    }

    fn sets(&self) -> Api<GameServerSet> {
        Api::namespaced(self.client().clone(), &self.ns)
    }

    async fn event(&self, kind: Kind, reason: &str, message: String) {
        events::record(self.client(), self.gss, kind, reason, message).await;
    }

    /// The spec cannot be acted on: say so and wait for a change.
    async fn invalid(&self, problem: String) -> Result<Action, Error> {
        self.event(Kind::Warning, "InvalidSpec", problem).await;
        Ok(Action::await_change())
    }

    async fn observe(&self) -> Result<Observed, Error> {
        let (name, ns) = (&self.name, &self.ns);
        let listed = self
            .gs_api
            .list(&ListParams::default().labels(&format!("{OWNER_GSS_LABEL}={name}")))
            .await
            .map_err(api_err(format!("listing the GameServers of {ns}/{name}")))?;
        Ok(Observed::of(name, listed.items))
    }

    /// Kill: lowers the replicas (compare-and-swap on the replicas planned
    /// with) before the Kill servers go, so a retry never lowers twice.
    /// `false` when they changed meanwhile (plan again).
    async fn lower_replicas(&self, planned: u32, replicas: u32) -> Result<bool, Error> {
        let patch: json_patch::Patch = serde_json::from_value(json!([
            {"op": "test", "path": "/spec/replicas", "value": planned},
            {"op": "replace", "path": "/spec/replicas", "value": replicas},
        ]))
        .map_err(|e| Error::Api {
            action: "building the Kill patch".into(),
            source: kube::Error::SerdeError(e),
        })?;
        let written = self
            .sets()
            .patch(
                &self.name,
                &PatchParams::default(),
                &Patch::Json::<()>(patch),
            )
            .await;
        if let Err(e) = written {
            tracing::debug!(set = %self.name, error = %e, "replicas changed meanwhile; planning again");
            return Ok(false);
        }
        Ok(true)
    }

    /// `scaleStrategy.scaleDownStrategyType: ReserveIds` (OKG
    /// gameserverset_manager.go `GameServerScale`): the ids a scale-down
    /// removes are added to `spec.reserveGameServerIds`, so they are not
    /// used again. Written before the deletions, at the set's
    /// resourceVersion; `false`: the set changed meanwhile.
    async fn backfill_reserved(&self, plan: &Plan) -> Result<bool, Error> {
        let reserve_ids = self
            .gss
            .spec
            .scale_strategy
            .as_ref()
            .and_then(|s| s.scale_down_strategy_type.as_deref())
            == Some("ReserveIds");
        let removed: Vec<u32> = plan
            .delete
            .iter()
            .filter(|(_, why)| matches!(why, Why::ScaleDown | Why::Kill))
            .filter_map(|(n, _)| fleet::ordinal_of(&self.name, n))
            .collect();
        if !reserve_ids || removed.is_empty() {
            return Ok(true);
        }
        let mut ids: Vec<IntOrString> = self
            .gss
            .spec
            .reserve_game_server_ids
            .clone()
            .unwrap_or_default();
        let known = fleet::reserved_ids(&ids).unwrap_or_default();
        for id in removed.into_iter().filter(|id| !known.contains(id)) {
            ids.push(IntOrString::Int(i32::try_from(id).unwrap_or(i32::MAX)));
        }
        let patch = json!({
            "metadata": {"resourceVersion": self.gss.metadata.resource_version},
            "spec": {"reserveGameServerIds": ids},
        });
        match self
            .sets()
            .patch(&self.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
            Err(e) => Err(api_err(format!(
                "reserving the removed ids of {}",
                self.name
            ))(e)),
        }
    }

    async fn mark_draining(&self, drain: &[String]) -> Result<(), Error> {
        let since = crate::api::kube_time(self.now);
        for server in drain {
            let patch = json!({"metadata": {
                "labels": {DRAINING_LABEL: "true"},
                "annotations": {DRAINING_SINCE_ANNOTATION: since},
            }});
            self.gs_api
                .patch(server, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .map_err(api_err(format!("marking {server} draining")))?;
        }
        if !drain.is_empty() {
            let message = format!(
                "Draining {} (no new matches; removed once their players leave)",
                drain.join(", ")
            );
            self.event(Kind::Normal, "Draining", message).await;
        }
        Ok(())
    }

    /// Deletes each server at the resourceVersion planned with.
    async fn delete(&self, delete: &[(String, Why)], observed: &Observed) -> Result<(), Error> {
        let mut deleted = Vec::new();
        for (server, why) in delete {
            let params = DeleteParams {
                preconditions: Some(Preconditions {
                    resource_version: observed.rvs.get(server).cloned(),
                    uid: None,
                }),
                ..Default::default()
            };
            match self.gs_api.delete(server, &params).await {
                Ok(_) => deleted.push((server, why)),
                // Changed since we looked (e.g. just allocated) or already gone: plan again.
                Err(kube::Error::Api(e)) if e.code == 409 || e.code == 404 => {}
                Err(e) => return Err(api_err(format!("deleting {server}"))(e)),
            }
            if matches!(why, Why::Drained | Why::DrainTimeout(_))
                && let Some(since) = observed
                    .servers
                    .iter()
                    .find(|s| &s.name == server)
                    .and_then(|s| s.draining_since)
            {
                self.ctx
                    .metrics
                    .drain_duration
                    .observe(self.now.duration_since(since).as_secs_f64().max(0.0));
            }
        }
        for (server, why) in deleted {
            let (kind, reason) = delete_event(why);
            let message = format!("Deleted GameServer {server}: {}", why_text(why));
            self.event(kind, reason, message).await;
        }
        Ok(())
    }

    /// Creates `count` servers of the current revision on free ordinals.
    async fn create(
        &self,
        desired: &Desired,
        observed: &Observed,
        count: u32,
    ) -> Result<(), Error> {
        let name = &self.name;
        let mut created = Vec::new();
        for ordinal in fleet::free_ordinals(&observed.ordinals, &desired.reserved, count as usize) {
            let server = new_server(self.gss, ordinal, &desired.revision)?;
            match self.gs_api.create(&PostParams::default(), &server).await {
                Ok(_) => created.push(format!("{name}-{ordinal}")),
                Err(kube::Error::Api(e)) if e.code == 409 => {}
                Err(e) => return Err(api_err(format!("creating {name}-{ordinal}"))(e)),
            }
        }
        if !created.is_empty() {
            let message = format!("Created GameServers {}", created.join(", "));
            self.event(Kind::Normal, "SuccessfulCreate", message).await;
        }
        Ok(())
    }

    /// Writes OKG's status when it changed, and the rollout progress metric.
    async fn write_status(&self, desired: &Desired, servers: &[Server]) -> Result<(), Error> {
        let (name, ns) = (&self.name, &self.ns);
        let status = status_of(self.gss, servers, &desired.revision);
        if self.gss.status.as_ref() != Some(&status) {
            self.sets()
                .patch_status(
                    name,
                    &PatchParams::default(),
                    &Patch::Merge(&json!({"status": status})),
                )
                .await
                .map_err(api_err(format!("writing the status of {ns}/{name}")))?;
        }
        let labels = SetLabels {
            cluster: self.ctx.cluster.clone(),
            namespace: ns.clone(),
            gameserverset: name.clone(),
        };
        let progress = if desired.replicas == 0 {
            1.0
        } else {
            f64::from(status.updated_replicas) / f64::from(desired.replicas)
        };
        self.ctx
            .metrics
            .rollout_progress
            .get_or_create(&labels)
            .set(progress);
        Ok(())
    }
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
