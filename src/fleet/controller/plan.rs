//! What one reconcile of a GameServerSet should do, as pure functions of the
//! set's desired state and its servers (as Agones keeps its rollout
//! arithmetic): how many servers to create, which to delete and why, which
//! to start draining, which Allocated servers overflow `replicas`.
//!
//! OKG's `RollingUpdate` recreates old servers as OKG's Advanced
//! StatefulSet does, Allocated ones included. Invariants every other
//! strategy keeps: an Allocated or Maintaining server is never deleted or
//! replaced (only an explicit `Kill`, or a `NoDisruption` drain timeout,
//! ends a server with a match); a scale-down takes OKG's order among the
//! others.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::fleet::{Server, deletion_order};
use crate::api::OpsState;

/// The update strategies gameops offers (OKG's two; the extensions
/// Agones's rolling update, Agones's Recreate and NoDisruption).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Strategy {
    /// Template changes leave running servers alone.
    OnDelete,
    /// OKG: recreate old servers, Allocated ones included, highest
    /// updatePriority first, within `maxUnavailable` of `replicas`.
    RollingUpdate,
    /// Agones: replace old servers that are not Allocated or Maintaining,
    /// within surge and unavailability budgets.
    AgonesRollingUpdate,
    /// Replace every non-Allocated old server at once.
    Recreate,
    /// Drain old servers; replace them without interrupting a match.
    NoDisruption,
}

impl Strategy {
    /// Parses `spec.updateStrategy.type` (default `RollingUpdate`, as OKG).
    pub fn parse(value: Option<&str>) -> Result<Self, String> {
        match value.unwrap_or("RollingUpdate") {
            "RollingUpdate" | "" => Ok(Self::RollingUpdate),
            "AgonesRollingUpdate" => Ok(Self::AgonesRollingUpdate),
            "OnDelete" => Ok(Self::OnDelete),
            "Recreate" => Ok(Self::Recreate),
            "NoDisruption" => Ok(Self::NoDisruption),
            other => Err(format!(
                "spec.updateStrategy.type {other:?} is not one of RollingUpdate, OnDelete (OpenKruiseGame's), AgonesRollingUpdate, Recreate, NoDisruption (gameops's extensions)"
            )),
        }
    }
}

/// A number or a percentage of `total`, rounded up or down.
pub fn scaled(value: &IntOrString, total: u32, round_up: bool) -> Result<u32, String> {
    match value {
        IntOrString::Int(i) => u32::try_from(*i).map_err(|_| format!("{i} must not be negative")),
        IntOrString::String(s) => {
            let pct: u64 = s
                .strip_suffix('%')
                .and_then(|p| p.trim().parse().ok())
                .ok_or_else(|| {
                    format!("{s:?} is neither a number nor a percentage like \"25%\"")
                })?;
            let scaled = u64::from(total) * pct;
            let v = if round_up {
                scaled.div_ceil(100)
            } else {
                scaled / 100
            };
            Ok(u32::try_from(v).unwrap_or(u32::MAX))
        }
    }
}

/// Servers created above `replicas` during an update: rounds up from the
/// desired replicas (Agones); default 0 (OKG has no surge).
pub fn surge(max_surge: Option<&IntOrString>, replicas: u32) -> Result<u32, String> {
    max_surge.map_or(Ok(0), |v| scaled(v, replicas, true))
}

/// Servers that may be unavailable during an update: rounds down from the
/// Ready count, and is at least 1 (Agones); default 1 (OKG).
pub fn unavailable(max_unavailable: Option<&IntOrString>, ready: u32) -> Result<u32, String> {
    Ok(max_unavailable
        .map_or(Ok(1), |v| scaled(v, ready, false))?
        .max(1))
}

/// What a reconcile should achieve.
#[derive(Clone, Debug)]
pub struct Desired {
    /// `spec.replicas`.
    pub replicas: u32,
    /// The revision of the current template and parameters.
    pub revision: String,
    /// The update strategy.
    pub strategy: Strategy,
    /// `maxSurge` as given.
    pub max_surge: Option<IntOrString>,
    /// `maxUnavailable` as given.
    pub max_unavailable: Option<IntOrString>,
    /// `partition`: old servers kept on their revision.
    pub partition: u32,
    /// `paused`: no replacement.
    pub paused: bool,
    /// How long a draining server may keep players.
    pub drain_timeout: Duration,
    /// `reserveGameServerIds`: ordinals the set must not run.
    pub reserved: Vec<u32>,
}

/// Why a server is deleted (becomes the event's reason and message).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Why {
    /// Its opsState is Kill.
    Kill,
    /// The set has more servers than replicas.
    ScaleDown,
    /// Replaced by a server of the current revision.
    Replace,
    /// Drained: its players left.
    Drained,
    /// Drained too long: terminated with this many players.
    DrainTimeout(i32),
    /// Its id is in `reserveGameServerIds`.
    Reserved,
}

/// The outcome of planning.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    /// New `spec.replicas` after Kill servers are removed.
    pub replicas_after_kill: Option<u32>,
    /// How many servers of the current revision to create.
    pub create: u32,
    /// Servers to delete, with why.
    pub delete: Vec<(String, Why)>,
    /// Servers to mark draining.
    pub drain: Vec<String>,
    /// Allocated servers beyond `replicas` (allocationOverflow).
    pub overflow: Vec<String>,
}

fn names(servers: &[&Server]) -> Vec<String> {
    servers.iter().map(|s| s.name.clone()).collect()
}

/// Creates or deletes (OKG order, never protected servers) to reach `replicas`.
fn scale(live: &[&Server], replicas: u32, plan: &mut Plan) {
    let total = live.len() as u32;
    if total < replicas {
        plan.create += replicas - total;
    } else {
        trim(live, total - replicas, plan);
    }
}

/// Deletes `excess` of `servers` for a scale-down, in OKG order: never a
/// protected server, nor one the plan already deletes.
fn trim(servers: &[&Server], excess: u32, plan: &mut Plan) {
    let mut rest: Vec<Server> = servers
        .iter()
        .filter(|s| !s.protected() && !plan.delete.iter().any(|(n, _)| n == &s.name))
        .map(|s| (*s).clone())
        .collect();
    deletion_order(&mut rest);
    plan.delete.extend(
        rest.into_iter()
            .take(excess as usize)
            .map(|s| (s.name, Why::ScaleDown)),
    );
}

/// Plans one reconcile.
pub fn plan(desired: &Desired, servers: &[Server], now: Timestamp) -> Result<Plan, String> {
    let mut plan = Plan::default();
    let kills: Vec<&Server> = servers.iter().filter(|s| s.is(OpsState::Kill)).collect();
    let mut replicas = desired.replicas;
    if !kills.is_empty() {
        replicas = replicas.saturating_sub(kills.len() as u32);
        plan.replicas_after_kill = Some(replicas);
        plan.delete
            .extend(names(&kills).into_iter().map(|n| (n, Why::Kill)));
    }
    // OKG (gameserverset_manager.go `computeToScaleGs`): a server whose id
    // becomes reserved is deleted, whatever its state, and replaced at a
    // free id.
    let (reserved, live): (Vec<&Server>, Vec<&Server>) = servers
        .iter()
        .filter(|s| !s.is(OpsState::Kill))
        .partition(|s| desired.reserved.contains(&s.ordinal));
    plan.delete
        .extend(names(&reserved).into_iter().map(|n| (n, Why::Reserved)));
    let (new, old): (Vec<&Server>, Vec<&Server>) =
        live.iter().partition(|s| s.revision == desired.revision);

    match desired.strategy {
        Strategy::OnDelete => scale(&live, replicas, &mut plan),
        Strategy::Recreate => {
            let (replaced, kept): (Vec<&Server>, Vec<&Server>) = live
                .iter()
                .partition(|s| s.revision != desired.revision && !s.protected());
            plan.delete
                .extend(names(&replaced).into_iter().map(|n| (n, Why::Replace)));
            scale(&kept, replicas, &mut plan);
        }
        Strategy::RollingUpdate => okg_rolling(desired, replicas, &live, &old, &mut plan)?,
        Strategy::AgonesRollingUpdate => rolling(desired, replicas, &live, &new, &old, &mut plan)?,
        Strategy::NoDisruption => no_disruption(desired, replicas, &new, &old, now, &mut plan)?,
    }

    let mut allocated: Vec<&Server> = live
        .iter()
        .filter(|s| s.is(OpsState::Allocated))
        .copied()
        .collect();
    // Old revisions overflow first, then the highest ordinals.
    allocated.sort_by_key(|s| (s.revision == desired.revision, std::cmp::Reverse(s.ordinal)));
    // Agones (pkg/gameserversets/allocation_overflow.go, run by the Fleet
    // on every GameServerSet): Allocated servers beyond their set's
    // replicas. A strategy that replaces old servers keeps them in an
    // outdated set, which a finished rollout scales to 0: all of them
    // overflow then.
    let replacing = matches!(
        desired.strategy,
        Strategy::AgonesRollingUpdate | Strategy::Recreate | Strategy::NoDisruption
    );
    let outdated = if replacing {
        allocated
            .iter()
            .filter(|s| s.revision != desired.revision)
            .count()
    } else {
        0
    };
    let excess = (allocated.len().saturating_sub(replicas as usize)).max(outdated);
    plan.overflow = names(&allocated[..excess]);
    Ok(plan)
}

/// OKG's `RollingUpdate`: its GameServerSet controller hands the template
/// to an Advanced StatefulSet (kruise pkg/controller/statefulset
/// `rollingUpdateStatefulsetPods`), which recreates old pods, Allocated
/// servers included: highest `game.kruise.io/gs-update-priority` first,
/// then highest ordinal; `partition` old ones kept; at most
/// `maxUnavailable` (of `replicas`, rounded down, at least 1; default 1)
/// unavailable at a time, a pod that is already unavailable costing
/// nothing. No surge.
fn okg_rolling(
    desired: &Desired,
    replicas: u32,
    live: &[&Server],
    old: &[&Server],
    plan: &mut Plan,
) -> Result<(), String> {
    let mut updatable: Vec<&Server> = old.to_vec();
    updatable.sort_by_key(|s| {
        (
            std::cmp::Reverse(s.update_priority),
            std::cmp::Reverse(s.ordinal),
        )
    });
    updatable.truncate((old.len() as u32).saturating_sub(desired.partition) as usize);
    if updatable.is_empty() || desired.paused {
        scale(live, replicas, plan);
        return Ok(());
    }
    let max_unavailable = unavailable(desired.max_unavailable.as_ref(), replicas)?;
    let mut unavailable = live.iter().filter(|s| !s.ready).count() as u32;
    let mut deleted = 0u32;
    for s in updatable {
        if s.ready {
            if unavailable >= max_unavailable {
                break;
            }
            unavailable += 1;
        }
        deleted += 1;
        plan.delete.push((s.name.clone(), Why::Replace));
    }
    // A recreated pod keeps its name (a StatefulSet's identity): the
    // replacement comes at the freed ordinal once the deletion is seen.
    let total_after = live.len() as u32 - deleted;
    plan.create = replicas.saturating_sub(live.len() as u32);
    trim(live, total_after.saturating_sub(replicas), plan);
    Ok(())
}

/// Agones's rolling update (the `AgonesRollingUpdate` extension).
fn rolling(
    desired: &Desired,
    replicas: u32,
    live: &[&Server],
    new: &[&Server],
    old: &[&Server],
    plan: &mut Plan,
) -> Result<(), String> {
    // Old servers that may be replaced: not protected, beyond the partition,
    // highest updatePriority first.
    let mut updatable: Vec<&Server> = old.iter().filter(|s| !s.protected()).copied().collect();
    updatable.sort_by_key(|s| (std::cmp::Reverse(s.update_priority), s.ordinal));
    updatable.truncate((old.len() as u32).saturating_sub(desired.partition) as usize);
    if updatable.is_empty() || desired.paused {
        scale(live, replicas, plan);
        return Ok(());
    }
    let kept_old = old.len() as u32 - updatable.len() as u32;
    let surge = surge(desired.max_surge.as_ref(), replicas)?;
    let ready = live.iter().filter(|s| s.ready).count() as u32;
    let unavailable = unavailable(desired.max_unavailable.as_ref(), ready)?;
    let min_ready = replicas.saturating_sub(unavailable);

    // Old servers that are not Ready cost no availability: replace them now.
    let (not_ready, ready_old): (Vec<&Server>, Vec<&Server>) =
        updatable.iter().partition(|s| !s.ready);
    let mut deleted = not_ready.len() as u32;
    plan.delete
        .extend(names(&not_ready).into_iter().map(|n| (n, Why::Replace)));
    // Ready ones only while the Ready count stays at or above the floor:
    // with a surge, this happens as new servers turn Ready.
    let budget = ready.saturating_sub(min_ready) as usize;
    let ready_removed: Vec<&Server> = ready_old.into_iter().take(budget).collect();
    deleted += ready_removed.len() as u32;
    plan.delete
        .extend(names(&ready_removed).into_iter().map(|n| (n, Why::Replace)));

    let total_after = live.len() as u32 - deleted;
    let needed_new = replicas
        .saturating_sub(kept_old)
        .saturating_sub(new.len() as u32);
    plan.create = needed_new.min((replicas + surge).saturating_sub(total_after));
    // Above replicas + surge (replicas lowered mid-update): trim the rest in
    // OKG order, never a protected server.
    let ceiling = replicas + surge;
    trim(live, total_after.saturating_sub(ceiling), plan);
    Ok(())
}

fn no_disruption(
    desired: &Desired,
    replicas: u32,
    new: &[&Server],
    old: &[&Server],
    now: Timestamp,
    plan: &mut Plan,
) -> Result<(), String> {
    // Every old server drains: it keeps its match but gets no new one.
    plan.drain = old
        .iter()
        .filter(|s| s.draining_since.is_none())
        .map(|s| s.name.clone())
        .collect();
    let timeout =
        jiff::SignedDuration::try_from(desired.drain_timeout).unwrap_or(jiff::SignedDuration::MAX);
    let mut idle = Vec::new();
    for s in old {
        let since = s.draining_since.unwrap_or(now);
        let timed_out = now.duration_since(since) >= timeout;
        if s.is(OpsState::Maintaining) {
            continue;
        }
        if s.players == 0 && !s.protected() {
            idle.push(*s);
        } else if timed_out {
            plan.delete
                .push((s.name.clone(), Why::DrainTimeout(s.players)));
        }
    }
    let new_ready = new.iter().filter(|s| s.ready).count() as u32;
    let new_starting = new.len() as u32 - new_ready;
    let surge = surge(desired.max_surge.as_ref(), replicas)?;
    let unavailable = unavailable(
        desired.max_unavailable.as_ref(),
        new_ready + idle.iter().filter(|s| s.ready).count() as u32,
    )?;
    // Replacements start in waves of surge + unavailable.
    let wave = (surge + unavailable).saturating_sub(new_starting);
    plan.create = replicas.saturating_sub(new.len() as u32).min(wave);
    // Idle old servers leave as long as Ready capacity (new Ready plus idle
    // old Ready) stays at or above replicas - unavailable; not-Ready ones at once.
    idle.sort_by_key(|s| (s.ready, std::cmp::Reverse(s.ordinal)));
    let mut capacity = new_ready + idle.iter().filter(|s| s.ready).count() as u32;
    let floor = replicas.saturating_sub(unavailable);
    for s in idle {
        if s.ready {
            if capacity <= floor {
                continue;
            }
            capacity -= 1;
        }
        plan.delete.push((s.name.clone(), Why::Drained));
    }
    if new.len() as u32 > replicas {
        scale(new, replicas, plan);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::fleet::tests::server;
    use super::*;

    fn desired(replicas: u32, strategy: Strategy) -> Desired {
        Desired {
            replicas,
            revision: "r2".into(),
            strategy,
            max_surge: None,
            max_unavailable: None,
            partition: 0,
            paused: false,
            drain_timeout: Duration::from_secs(3600),
            reserved: Vec::new(),
        }
    }

    fn fleet(specs: &[(u32, &str, &str, bool)]) -> Vec<Server> {
        specs
            .iter()
            .map(|(o, rev, ops, ready)| {
                let mut s = server(*o, ops, 0);
                s.revision = (*rev).into();
                s.ready = *ready;
                s
            })
            .collect()
    }

    fn deleted(plan: &Plan) -> Vec<String> {
        plan.delete.iter().map(|(n, _)| n.clone()).collect()
    }

    #[test]
    fn budgets_round_as_agones() {
        let pct = |s: &str| IntOrString::String(s.into());
        let cases = [
            // (maxSurge, replicas, surge)
            (Some(pct("25%")), 10, 3),
            (Some(pct("25%")), 8, 2),
            (Some(IntOrString::Int(2)), 10, 2),
            (None, 10, 0),
        ];
        for (v, r, want) in cases {
            assert_eq!(surge(v.as_ref(), r).unwrap(), want, "{v:?} of {r}");
        }
        let cases = [
            // (maxUnavailable, ready, unavailable)
            (Some(pct("25%")), 10, 2),
            (Some(pct("25%")), 8, 2),
            (Some(pct("25%")), 3, 1),
            (Some(pct("10%")), 5, 1),
            (Some(IntOrString::Int(0)), 5, 1),
            (Some(IntOrString::Int(3)), 5, 3),
            (None, 10, 1),
        ];
        for (v, ready, want) in cases {
            assert_eq!(
                unavailable(v.as_ref(), ready).unwrap(),
                want,
                "{v:?} of {ready}"
            );
        }
        assert!(surge(Some(&pct("lots")), 3).is_err());
        assert!(unavailable(Some(&IntOrString::Int(-1)), 3).is_err());
        assert!(Strategy::parse(Some("Sideways")).is_err());
        assert_eq!(Strategy::parse(None).unwrap(), Strategy::RollingUpdate);
    }

    #[test]
    fn scaling_takes_okg_order_and_spares_protected_servers() {
        let servers = fleet(&[
            (0, "r2", "Allocated", true),
            (1, "r2", "None", true),
            (2, "r2", "WaitToBeDeleted", true),
            (3, "r2", "Maintaining", true),
        ]);
        let p = plan(&desired(1, Strategy::OnDelete), &servers, Timestamp::now()).unwrap();
        assert_eq!(
            deleted(&p),
            ["s-2", "s-1"],
            "WaitToBeDeleted first; Allocated and Maintaining stay"
        );
        let p = plan(&desired(6, Strategy::OnDelete), &servers, Timestamp::now()).unwrap();
        assert_eq!((p.create, p.delete.len()), (2, 0));
    }

    #[test]
    fn kill_lowers_replicas_and_goes_first() {
        let servers = fleet(&[
            (0, "r2", "None", true),
            (1, "r2", "Kill", true),
            (2, "r2", "None", true),
        ]);
        let p = plan(&desired(3, Strategy::OnDelete), &servers, Timestamp::now()).unwrap();
        assert_eq!(p.replicas_after_kill, Some(2));
        assert_eq!(p.delete, [("s-1".to_string(), Why::Kill)]);
        assert_eq!(p.create, 0);
    }

    #[test]
    fn on_delete_leaves_old_servers_running() {
        let servers = fleet(&[
            (0, "r1", "None", true),
            (1, "r1", "None", true),
            (2, "r1", "None", true),
        ]);
        let p = plan(&desired(3, Strategy::OnDelete), &servers, Timestamp::now()).unwrap();
        assert_eq!(p, Plan::default());
        let p = plan(&desired(6, Strategy::OnDelete), &servers, Timestamp::now()).unwrap();
        assert_eq!(p.create, 3);
    }

    #[test]
    fn recreate_replaces_every_unallocated_old_server() {
        let servers = fleet(&[
            (0, "r1", "Allocated", true),
            (1, "r1", "None", true),
            (2, "r1", "None", false),
            (3, "r2", "None", true),
        ]);
        let p = plan(&desired(4, Strategy::Recreate), &servers, Timestamp::now()).unwrap();
        assert_eq!(deleted(&p), ["s-1", "s-2"]);
        assert_eq!(p.create, 2);
    }

    #[test]
    #[allow(clippy::too_many_lines, reason = "a table of cases")]
    fn rolling_update_table() {
        let pct = |s: &str| Some(IntOrString::String(s.into()));
        struct Case {
            name: &'static str,
            servers: Vec<(u32, &'static str, &'static str, bool)>,
            replicas: u32,
            surge: Option<IntOrString>,
            unavailable: Option<IntOrString>,
            partition: u32,
            want_delete: Vec<&'static str>,
            want_create: u32,
        }
        let eight_old: Vec<(u32, &str, &str, bool)> = (0..8)
            .map(|o| (o, "r1", if o < 2 { "Allocated" } else { "None" }, true))
            .collect();
        let cases = vec![
            Case {
                name: "25%/25% on 8 with 2 allocated: surge 2 first, delete 2 (8 ready - floor 6)",
                servers: eight_old.clone(),
                replicas: 8,
                surge: pct("25%"),
                unavailable: pct("25%"),
                partition: 0,
                want_delete: vec!["s-2", "s-3"],
                want_create: 4,
            },
            Case {
                name: "OKG defaults (no surge, 1 unavailable): one at a time",
                servers: vec![
                    (0, "r1", "None", true),
                    (1, "r1", "None", true),
                    (2, "r1", "None", true),
                ],
                replicas: 3,
                surge: None,
                unavailable: None,
                partition: 0,
                want_delete: vec!["s-0"],
                want_create: 1,
            },
            Case {
                name: "old server not Ready goes without using the budget",
                servers: vec![
                    (0, "r1", "None", false),
                    (1, "r1", "None", true),
                    (2, "r2", "None", false),
                ],
                replicas: 3,
                surge: None,
                unavailable: None,
                partition: 0,
                want_delete: vec!["s-0"],
                want_create: 1,
            },
            Case {
                name: "new servers not Ready yet: nothing more goes",
                servers: vec![
                    (0, "r1", "None", true),
                    (1, "r1", "None", true),
                    (2, "r2", "None", false),
                    (3, "r2", "None", false),
                ],
                replicas: 3,
                surge: Some(IntOrString::Int(1)),
                unavailable: None,
                partition: 0,
                want_delete: vec![],
                want_create: 0,
            },
            Case {
                name: "partition keeps that many old servers",
                servers: vec![
                    (0, "r1", "None", true),
                    (1, "r1", "None", true),
                    (2, "r1", "None", true),
                ],
                replicas: 3,
                surge: None,
                unavailable: Some(IntOrString::Int(3)),
                partition: 2,
                want_delete: vec!["s-0"],
                want_create: 1,
            },
            Case {
                name: "only allocated old servers left: nothing to replace",
                servers: vec![
                    (0, "r1", "Allocated", true),
                    (1, "r2", "None", true),
                    (2, "r2", "None", true),
                ],
                replicas: 3,
                surge: None,
                unavailable: None,
                partition: 0,
                want_delete: vec![],
                want_create: 0,
            },
        ];
        for c in cases {
            let mut d = desired(c.replicas, Strategy::AgonesRollingUpdate);
            d.max_surge = c.surge;
            d.max_unavailable = c.unavailable;
            d.partition = c.partition;
            let p = plan(&d, &fleet(&c.servers), Timestamp::now()).unwrap();
            assert_eq!(deleted(&p), c.want_delete, "{}", c.name);
            assert_eq!(p.create, c.want_create, "{}", c.name);
        }
    }

    /// kruise Advanced StatefulSet `rollingUpdateStatefulsetPods`, as OKG
    /// drives it: Allocated servers are recreated too, highest
    /// updatePriority then highest ordinal first, `maxUnavailable` of
    /// `replicas` (rounded down, at least 1), an unavailable old server
    /// costing nothing, `partition` old ones kept.
    #[test]
    fn okg_rolling_update_recreates_allocated_servers_in_priority_order() {
        let servers = fleet(&[
            (0, "r1", "Allocated", true),
            (1, "r1", "None", true),
            (2, "r1", "Maintaining", true),
            (3, "r1", "None", false),
        ]);
        let d = desired(4, Strategy::RollingUpdate);
        let p = plan(&d, &servers, Timestamp::now()).unwrap();
        // s-3 is not Ready: replaced at no cost, and it already uses the
        // one unavailability allowed.
        assert_eq!(deleted(&p), ["s-3"]);
        assert_eq!(p.create, 0, "recreated at its ordinal once it is gone");
        let servers: Vec<Server> = servers
            .into_iter()
            .map(|mut s| {
                s.ready = true;
                s
            })
            .collect();
        let p = plan(&d, &servers, Timestamp::now()).unwrap();
        assert_eq!(
            deleted(&p),
            ["s-3"],
            "then the highest ordinal, Allocated or not"
        );
        let mut servers = fleet(&[
            (0, "r1", "Allocated", true),
            (1, "r1", "None", true),
            (2, "r1", "None", true),
            (3, "r1", "None", true),
        ]);
        servers[0].update_priority = 5;
        let mut d = desired(4, Strategy::RollingUpdate);
        d.max_unavailable = Some(IntOrString::String("50%".into()));
        let p = plan(&d, &servers, Timestamp::now()).unwrap();
        assert_eq!(
            deleted(&p),
            ["s-0", "s-3"],
            "the Allocated one first, by priority"
        );
        d.partition = 3;
        let p = plan(&d, &servers, Timestamp::now()).unwrap();
        assert_eq!(deleted(&p), ["s-0"], "partition keeps three old ones");
        assert_eq!(
            Strategy::parse(Some("AgonesRollingUpdate")).unwrap(),
            Strategy::AgonesRollingUpdate
        );
    }

    /// gameserverset_manager.go `computeToScaleGs`: a server whose id is
    /// reserved is deleted, Allocated or not, and the set keeps its size at
    /// other ids.
    #[test]
    fn a_reserved_id_is_deleted_and_replaced_elsewhere() {
        let servers = fleet(&[
            (0, "r2", "None", true),
            (1, "r2", "Allocated", true),
            (2, "r2", "None", true),
        ]);
        let mut d = desired(3, Strategy::OnDelete);
        d.reserved = vec![1];
        let p = plan(&d, &servers, Timestamp::now()).unwrap();
        assert_eq!(p.delete, [("s-1".to_owned(), Why::Reserved)]);
        assert_eq!(p.create, 1);
    }

    #[test]
    fn update_priority_orders_replacement() {
        let mut servers = fleet(&[
            (0, "r1", "None", true),
            (1, "r1", "None", true),
            (2, "r1", "None", true),
        ]);
        servers[2].update_priority = 10;
        let p = plan(
            &desired(3, Strategy::RollingUpdate),
            &servers,
            Timestamp::now(),
        )
        .unwrap();
        assert_eq!(deleted(&p), ["s-2"]);
    }

    #[test]
    fn no_disruption_drains_then_retires() {
        let now = Timestamp::now();
        let servers = fleet(&[
            (0, "r1", "Allocated", true),
            (1, "r1", "None", true),
            (2, "r1", "None", true),
        ]);
        let mut d = desired(3, Strategy::NoDisruption);
        d.max_surge = Some(IntOrString::Int(1));
        let p = plan(&d, &servers, now).unwrap();
        assert_eq!(p.drain, ["s-0", "s-1", "s-2"], "every old server drains");
        assert_eq!(p.create, 2, "a wave of surge + unavailable");
        assert!(
            p.delete.is_empty(),
            "Ready capacity (2 idle) is at the floor (3 - 1): nobody leaves yet"
        );

        // Later: new servers Ready, old ones draining; the allocated one keeps its match.
        let mut servers = fleet(&[
            (0, "r1", "Allocated", true),
            (1, "r1", "None", true),
            (3, "r2", "None", true),
            (4, "r2", "None", true),
            (5, "r2", "None", true),
        ]);
        servers[0].players = 4;
        for s in &mut servers[..2] {
            s.draining_since = Some(now);
        }
        let p = plan(&d, &servers, now).unwrap();
        assert!(p.drain.is_empty());
        assert_eq!(deleted(&p), ["s-1"]);
        assert_eq!(p.create, 0);

        // Drain timeout: terminated with its players counted.
        servers[0].draining_since = Some(now - jiff::SignedDuration::from_secs(3601));
        let p = plan(&d, &servers, now).unwrap();
        assert!(
            p.delete
                .contains(&("s-0".to_string(), Why::DrainTimeout(4)))
        );
    }

    #[test]
    fn allocation_overflow_marks_the_excess_old_first() {
        let servers = fleet(&[
            (0, "r2", "Allocated", true),
            (1, "r1", "Allocated", true),
            (2, "r1", "Allocated", true),
        ]);
        let p = plan(&desired(1, Strategy::OnDelete), &servers, Timestamp::now()).unwrap();
        assert_eq!(p.overflow, ["s-2", "s-1"]);
        assert!(
            p.delete.is_empty(),
            "allocated servers are never scaled away"
        );
    }

    /// Agones labels the Allocated servers of an outdated GameServerSet
    /// after a rollout: those of old revisions, under a strategy that
    /// replaces them; OnDelete keeps old servers in the set.
    #[test]
    fn allocation_overflow_marks_allocated_servers_of_old_revisions_after_a_rollout() {
        let servers = fleet(&[
            (0, "r1", "Allocated", true),
            (1, "r2", "Allocated", true),
            (2, "r2", "None", true),
        ]);
        let p = plan(
            &desired(3, Strategy::AgonesRollingUpdate),
            &servers,
            Timestamp::now(),
        )
        .unwrap();
        assert_eq!(p.overflow, ["s-0"]);
        let p = plan(&desired(3, Strategy::OnDelete), &servers, Timestamp::now()).unwrap();
        assert!(p.overflow.is_empty());
    }
}

#[cfg(test)]
mod properties {
    use super::super::fleet::tests::server;
    use super::{Desired, Server, Why, plan};
    use crate::api::OpsState;
    use jiff::Timestamp;
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
    use proptest::prelude::*;
    use std::time::Duration;

    /// One thing that can happen to a set between reconciles.
    #[derive(Clone, Debug)]
    enum Step {
        /// The template changes (a new revision).
        NewTemplate,
        /// `replicas` becomes this.
        Scale(u32),
        /// The n-th idle Ready server (mod count) is allocated.
        Allocate(usize),
        /// The n-th allocated server's match ends (mod count).
        EndMatch(usize),
        /// The n-th server (mod count) goes into maintenance.
        Maintain(usize),
        /// Every server turns Ready.
        AllReady,
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            Just(Step::NewTemplate),
            (0u32..12).prop_map(Step::Scale),
            any::<usize>().prop_map(Step::Allocate),
            any::<usize>().prop_map(Step::EndMatch),
            any::<usize>().prop_map(Step::Maintain),
            Just(Step::AllReady),
        ]
    }

    fn strategy() -> impl Strategy<Value = super::Strategy> {
        prop_oneof![
            Just(super::Strategy::OnDelete),
            Just(super::Strategy::AgonesRollingUpdate),
            Just(super::Strategy::Recreate),
            Just(super::Strategy::NoDisruption),
        ]
    }

    fn budget() -> impl Strategy<Value = Option<IntOrString>> {
        prop_oneof![
            Just(None),
            (0i32..4).prop_map(|i| Some(IntOrString::Int(i))),
            (0u32..101).prop_map(|p| Some(IntOrString::String(format!("{p}%")))),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]

        /// Whatever happens, the controller never deletes or re-images an
        /// Allocated or Maintaining server (re-imaging = replacing it).
        #[test]
        fn protected_servers_are_never_touched(
            strategy in strategy(),
            surge in budget(),
            unavailable in budget(),
            steps in proptest::collection::vec(step(), 1..40),
        ) {
            let now = Timestamp::now();
            let mut desired = Desired {
                replicas: 4,
                revision: "r0".into(),
                strategy,
                max_surge: surge,
                max_unavailable: unavailable,
                partition: 0,
                paused: false,
                drain_timeout: Duration::from_secs(3600),
                reserved: Vec::new(),
            };
            let mut servers: Vec<Server> = Vec::new();
            let mut next_ordinal = 0;
            let mut revisions = 0;
            for step in steps {
                match step {
                    Step::NewTemplate => {
                        revisions += 1;
                        desired.revision = format!("r{revisions}");
                    }
                    Step::Scale(r) => desired.replicas = r,
                    Step::Allocate(n) => {
                        let idle: Vec<usize> = (0..servers.len())
                            .filter(|i| servers[*i].ready && servers[*i].is(OpsState::None) && servers[*i].draining_since.is_none())
                            .collect();
                        if !idle.is_empty() {
                            let s = &mut servers[idle[n % idle.len()]];
                            s.ops_state = "Allocated".into();
                            s.players = 3;
                        }
                    }
                    Step::EndMatch(n) => {
                        let busy: Vec<usize> = (0..servers.len()).filter(|i| servers[*i].is(OpsState::Allocated)).collect();
                        if !busy.is_empty() {
                            let s = &mut servers[busy[n % busy.len()]];
                            s.ops_state = "None".into();
                            s.players = 0;
                        }
                    }
                    Step::Maintain(n) => {
                        if !servers.is_empty() {
                            let len = servers.len();
                            servers[n % len].ops_state = "Maintaining".into();
                        }
                    }
                    Step::AllReady => servers.iter_mut().for_each(|s| s.ready = true),
                }
                let plan = plan(&desired, &servers, now).expect("valid budgets");
                for (name, why) in &plan.delete {
                    let s = servers.iter().find(|s| &s.name == name).expect("planned servers exist");
                    prop_assert!(
                        !s.protected() || matches!(why, Why::Kill | Why::DrainTimeout(_)),
                        "{strategy:?} deleted protected {s:?} because {why:?}"
                    );
                    prop_assert!(!matches!(why, Why::DrainTimeout(_)), "no drain is an hour old here");
                }
                // Carry the plan out on the model.
                servers.retain(|s| !plan.delete.iter().any(|(n, _)| n == &s.name));
                for name in &plan.drain {
                    if let Some(s) = servers.iter_mut().find(|s| &s.name == name) {
                        s.draining_since = Some(now);
                    }
                }
                for _ in 0..plan.create {
                    let mut s = server(next_ordinal, "None", 0);
                    s.name = format!("s-{next_ordinal}");
                    s.revision = desired.revision.clone();
                    s.ready = false;
                    servers.push(s);
                    next_ordinal += 1;
                }
                let total = servers.len() as u32;
                let surge = super::surge(desired.max_surge.as_ref(), desired.replicas).unwrap_or(0);
                let protected = servers.iter().filter(|s| s.protected()).count() as u32;
                let draining = servers.iter().filter(|s| s.draining_since.is_some()).count() as u32;
                prop_assert!(
                    total <= (desired.replicas + surge).max(desired.replicas + protected) + draining + protected + 1,
                    "{strategy:?}: {total} servers for {} replicas", desired.replicas
                );
            }
        }
    }
}
