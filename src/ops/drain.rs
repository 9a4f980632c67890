//! `drain`: retire old-version servers as their matches end. Selects the
//! servers running none of `notImage` (or any of `image`; `CONTAINER/IMAGE`
//! entries as `setOpsState` takes them) and moves each to `then`
//! (`WaitToBeDeleted` or `Kill`) the moment it is idle: `opsState` None and
//! no players (`status.players` 0 or absent), Ready or not. A server with
//! players (`Allocated`, or `players` > 0) or held in another opsState
//! (`Maintaining`) is never touched. Answers Running with a short requeue
//! until none is left (Succeeded) or `timeoutSeconds` after the first
//! request (Failed, naming what is left, e.g. "2 servers still in matches:
//! minecraft-0 (Allocated, 4 players), ...").
//!
//! `scaleDown: true` (with `then: WaitToBeDeleted`) lowers `spec.replicas`
//! by each server moved, so the controller deletes it (WaitToBeDeleted goes
//! first on scale-down), but never in the call that marks it, and only
//! once OpenKruiseGame will remove exactly that server: its Pod carries the
//! mark ([`super::okg_marks`]). Until then the drain keeps answering
//! Running. With `then: Kill` the controller itself lowers `spec.replicas`,
//! so `scaleDown` is refused there.
//!
//! Bookkeeping, all on the set (see [`super::progress`]): the first request
//! and the servers moved (each also stamped with the call's fingerprint in
//! the same patch that moves it), plus those already taken off
//! `spec.replicas`, written together with that change: a retried or
//! re-sent call lowers the replicas once per server. It is a mutating op: it holds the
//! set's release lease while it runs, and its final answer is recorded in
//! the ledger and replayed to repeats. Outputs `drained` and `remaining`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use jiff::Timestamp;
use serde_json::json;

use super::ledger::{self, Change};
use super::progress::{self, MAX_TIMEOUT_SECONDS, Progress};
use super::select::{self, Patched, Selection, deleting, ops_state, players};
use super::{Call, Outcome, name_list, okg_marks};
use crate::api::{GameServer, GameServerSet};

/// How soon Argo asks again.
const POLL: Duration = Duration::from_secs(2);

use super::table::DrainArgs as Args;

/// The arguments, checked.
#[derive(Debug, Clone, PartialEq)]
struct Plan {
    not: bool,
    entries: Vec<String>,
    then: &'static str,
    timeout: Duration,
    scale_down: bool,
}

fn plan(args: Args) -> Result<Plan, String> {
    let (not, entries) = match (args.not_image, args.image) {
        (Some(e), None) => (true, e),
        (None, Some(e)) => (false, e),
        _ => {
            return Err("plugin.gameops.drain takes exactly one of notImage (drain servers NOT running this CONTAINER/IMAGE: the new version) or image (drain servers running this CONTAINER/IMAGE: the old version)".into());
        }
    };
    let then = match args.then.as_deref().map(str::trim) {
        Some("WaitToBeDeleted") => "WaitToBeDeleted",
        Some("Kill") => "Kill",
        Some(other) => {
            return Err(format!(
                "plugin.gameops.drain.then is {other:?}: give WaitToBeDeleted (deleted on the next scale-down) or Kill (deleted now)"
            ));
        }
        None => {
            return Err("plugin.gameops.drain.then is missing: give WaitToBeDeleted (deleted on the next scale-down) or Kill (deleted now)".into());
        }
    };
    let timeout = match args.timeout_seconds {
        None | Some(0) => {
            return Err("plugin.gameops.drain.timeoutSeconds is missing: give how long to wait for matches to end, in seconds, e.g. 1800".into());
        }
        Some(t) if t > MAX_TIMEOUT_SECONDS => {
            return Err(format!(
                "plugin.gameops.drain.timeoutSeconds {t} is over the limit of {MAX_TIMEOUT_SECONDS} (a day)"
            ));
        }
        Some(t) => Duration::from_secs(t),
    };
    let scale_down = args.scale_down.unwrap_or(super::table::SCALE_DOWN);
    if scale_down && then == "Kill" {
        return Err("plugin.gameops.drain.scaleDown goes with then: WaitToBeDeleted; with then: Kill the controller already lowers spec.replicas for each killed server (drop scaleDown)".into());
    }
    Ok(Plan {
        not,
        entries,
        then,
        timeout,
        scale_down,
    })
}

/// Servers named in a message, at most.
const NAMED: usize = 10;

/// What to do with one selected server.
#[derive(Debug, Clone, PartialEq)]
enum Decision {
    /// Already `then`, `Kill`ed or being deleted: nothing to do.
    Going,
    /// Idle: move it now.
    Move,
    /// In a match or held: why, for messages.
    Busy(String),
}

fn decide(gs: &GameServer, then: &str) -> Decision {
    let ops = ops_state(gs);
    if deleting(gs) || ops == then || ops == "Kill" {
        return Decision::Going;
    }
    let players = players(gs);
    let idle = ops == "None" || (then == "Kill" && ops == "WaitToBeDeleted");
    if idle && players <= 0 {
        return Decision::Move;
    }
    Decision::Busy(match players {
        p if p <= 0 => ops.to_owned(),
        1 => format!("{ops}, 1 player"),
        p => format!("{ops}, {p} players"),
    })
}

/// "2 servers still in matches: minecraft-0 (Allocated, 4 players), …".
fn left(busy: &[(String, String)]) -> String {
    let in_matches = busy
        .iter()
        .all(|(_, why)| why.starts_with("Allocated") || why.contains("player"));
    let list: Vec<String> = busy.iter().map(|(n, why)| format!("{n} ({why})")).collect();
    format!(
        "{} server{} still {}: {}",
        busy.len(),
        if busy.len() == 1 { "" } else { "s" },
        if in_matches {
            "in matches"
        } else {
            "in matches or held"
        },
        name_list::shortened(&list, NAMED)
    )
}

fn outputs(drained: usize, remaining: usize) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("drained".to_owned(), drained.to_string()),
        ("remaining".to_owned(), remaining.to_string()),
    ])
}

/// The progress after moving `moved_now`, and the replicas to set: with
/// `scaleDown` (`marked` given), lowered once by each server an earlier call moved (those
/// in `p` before `moved_now` joins them) that OKG will now remove
/// (`marked`): never by one this call marks.
fn account(
    mut p: Progress,
    moved_now: &[String],
    marked: Option<&BTreeSet<String>>,
    replicas: i32,
) -> (Progress, Option<i32>) {
    let ready: Vec<String> = p
        .moved
        .iter()
        .filter(|n| marked.is_some_and(|m| m.contains(*n)) && !p.off.contains(*n))
        .cloned()
        .collect();
    p.moved.extend(moved_now.iter().cloned());
    if ready.is_empty() {
        return (p, None);
    }
    let lower = i32::try_from(ready.len()).unwrap_or(i32::MAX);
    p.off.extend(ready);
    (p, Some(replicas.saturating_sub(lower).max(0)))
}

/// The servers moved but not yet taken off `spec.replicas`, with `scale_down`.
fn not_yet_off(plan: &Plan, progress: &Progress) -> usize {
    if plan.scale_down {
        progress.moved.difference(&progress.off).count()
    } else {
        0
    }
}

/// The selection `plan` asks for, checked against `gss`'s containers.
fn selection(plan: &Plan, gss: &GameServerSet) -> Result<Selection, String> {
    let field = if plan.not {
        "plugin.gameops.drain.notImage"
    } else {
        "plugin.gameops.drain.image"
    };
    let images = select::container_images(field, &plan.entries, &select::template_containers(gss))?;
    Ok(if plan.not {
        Selection::not_image(images)
    } else {
        Selection::image(images)
    })
}

/// The selected servers (and those this call already moved), by name,
/// after moving the idle ones to `then`.
async fn move_idle(
    call: &Call<'_>,
    selection: &Selection,
    then: &str,
) -> Result<BTreeMap<String, GameServer>, Outcome> {
    let servers = select::list_servers(call).await?;
    let mut view: BTreeMap<String, GameServer> = servers
        .into_iter()
        .filter(|g| selection.matches(g) || select::changed_by(g, &call.fingerprint))
        .map(|g| (select::name(&g).to_owned(), GameServer::clone(&g)))
        .collect();
    let qualifies = |g: &GameServer| selection.matches(g) && decide(g, then) == Decision::Move;
    let idle: Vec<GameServer> = view.values().filter(|g| qualifies(g)).cloned().collect();
    let names: Vec<String> = idle.iter().map(|g| select::name(g).to_owned()).collect();
    let results = select::set_ops_states(call, idle, then, qualifies).await;
    for (name, result) in names.into_iter().zip(results) {
        match result {
            Ok(Patched::Changed(g) | Patched::Skipped(g)) => {
                view.insert(name, g);
            }
            Ok(Patched::Gone) => {
                view.remove(&name);
            }
            Err(e) if e.transient => return Err(Outcome::Retry(e.message)),
            Err(e) => return Err(Outcome::Failed(e.message)),
        }
    }
    Ok(view)
}

/// The servers of `view` this call has moved to `then`.
fn moved(view: &BTreeMap<String, GameServer>, fingerprint: &str, then: &str) -> Vec<String> {
    view.values()
        .filter(|g| select::changed_by(g, fingerprint) && ops_state(g) == then)
        .map(|g| select::name(g).to_owned())
        .collect()
}

/// The selected servers of `view` still to drain, with why, by ordinal.
fn busy(
    view: &BTreeMap<String, GameServer>,
    selection: &Selection,
    then: &str,
) -> Vec<(String, String)> {
    let mut busy: Vec<(String, String)> = view
        .values()
        .filter(|g| selection.matches(g))
        .filter_map(|g| match decide(g, then) {
            Decision::Busy(why) => Some((select::name(g).to_owned(), why)),
            // Could not be moved this time (it changed meanwhile): next time.
            Decision::Move => Some((select::name(g).to_owned(), "changing".into())),
            Decision::Going => None,
        })
        .collect();
    busy.sort_by_key(|(n, _)| (select::ordinal(n).is_none(), select::ordinal(n), n.clone()));
    busy
}

/// The progress patch recording `moved_now` on `g` (with the lowered
/// replicas when `scale_down`); `None` when nothing changes. `finished`
/// removes the entry.
fn progress_patch(
    g: &GameServerSet,
    call: &Call<'_>,
    before: Progress,
    moved_now: &[String],
    marked: Option<&BTreeSet<String>>,
    finished: bool,
    now: Timestamp,
) -> (Progress, Option<serde_json::Value>) {
    let (after, replicas) = account(before.clone(), moved_now, marked, g.spec.replicas);
    if after == before && !finished {
        return (after, None);
    }
    let entry = (!finished).then(|| after.clone());
    let mut patch = progress::patch(g, call, entry, now);
    if let Some(r) = replicas {
        json_patch::merge(&mut patch, &json!({"spec": {"replicas": r}}));
    }
    (after, Some(patch))
}

/// The answer while servers are left: waiting, or failed once the
/// timeout has passed since the first call.
fn waiting(
    plan: &Plan,
    set: &str,
    progress: &Progress,
    busy: &[(String, String)],
    now: Timestamp,
) -> Outcome {
    let then = plan.then;
    let drained = progress.moved.len();
    let scaled = scaled(plan, progress);
    let elapsed = progress.elapsed(now);
    let pending = match (busy.is_empty(), not_yet_off(plan, progress)) {
        (false, _) => left(busy),
        (true, n) => format!(
            "OpenKruiseGame to see the mark on {n} moved server{} (its Pod label game.kruise.io/gs-opsState) before spec.replicas is lowered for {}",
            if n == 1 { "" } else { "s" },
            if n == 1 { "it" } else { "them" }
        ),
    };
    if elapsed >= plan.timeout {
        return Outcome::Failed(format!(
            "drain of {set} timed out after {}s: {pending}; {drained} moved to {then}{scaled}",
            plan.timeout.as_secs(),
        ));
    }
    Outcome::Waiting {
        message: format!(
            "draining {set}: {drained} old-version servers moved to {then}{scaled}; waiting for {pending} ({}s of {}s)",
            elapsed.as_secs(),
            plan.timeout.as_secs()
        ),
        after: POLL
            .min(plan.timeout - elapsed)
            .max(Duration::from_millis(200)),
    }
}

/// "; spec.replicas lowered by N" with `scaleDown`.
fn scaled(plan: &Plan, progress: &Progress) -> String {
    if plan.scale_down {
        format!("; spec.replicas lowered by {}", progress.off.len())
    } else {
        String::new()
    }
}

/// The final answer, recorded in the ledger with the last replicas change
/// (a racing repeat of this call may have moved more) and the progress
/// entry removed.
async fn finish(call: &Call<'_>, plan: &Plan, set: &str, progress: Progress) -> Outcome {
    let moved_list = progress.moved.iter().cloned().collect::<Vec<_>>();
    let message = format!(
        "drained {set}: {} old-version servers moved to {}{}{}; none left",
        progress.moved.len(),
        plan.then,
        if moved_list.is_empty() {
            String::new()
        } else {
            format!(" ({})", name_list::shortened(&moved_list, NAMED))
        },
        scaled(plan, &progress),
    );
    ledger::mutate(call, |g| {
        let before = progress::of(g, call).unwrap_or_else(|| progress.clone());
        let (after, patch) = progress_patch(g, call, before, &[], None, true, Timestamp::now());
        Ok(Change {
            patch: patch.unwrap_or_default(),
            message: message.clone(),
            outputs: outputs(after.moved.len(), 0),
        })
    })
    .await
}

/// Runs the op: check, take the lease, note the first call, move the
/// idle servers, record the moves, answer.
pub async fn run(call: &Call<'_>, args: Args) -> Result<Outcome, Outcome> {
    let plan = plan(args).map_err(Outcome::Failed)?;
    let gss = ledger::acquire(call).await?;
    let selection = selection(&plan, &gss).map_err(Outcome::Failed)?;
    let (gss, started) = progress::start(call, gss, ("drain", plan.timeout)).await?;
    let view = move_idle(call, &selection, plan.then).await?;
    let moved_now = moved(&view, &call.fingerprint, plan.then);
    let busy = busy(&view, &selection, plan.then);
    let marked = if plan.scale_down {
        Some(okg_marks::marked(call).await?)
    } else {
        None
    };
    let now = Timestamp::now();
    let gss = progress::write(call, gss, |g| {
        let before = progress::of(g, call).unwrap_or_else(|| started.clone());
        let (_, patch) = progress_patch(g, call, before, &moved_now, marked.as_ref(), false, now);
        Ok(patch)
    })
    .await?;
    let progress = progress::of(&gss, call).unwrap_or(started);
    let set = format!("{}/{}", call.namespace, call.game_server_set);
    if busy.is_empty() && not_yet_off(&plan, &progress) == 0 {
        return Ok(finish(call, &plan, &set, progress).await);
    }
    Ok(waiting(&plan, &set, &progress, &busy, now))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::select::tests::{NEW, OLD, server};
    use serde_json::json;

    fn plan_of(v: serde_json::Value) -> Result<Plan, String> {
        plan(serde_json::from_value(v).map_err(|e| e.to_string())?)
    }

    fn with_players(mut gs: GameServer, n: i32) -> GameServer {
        if let Some(s) = gs.status.as_mut() {
            s.players = Some(n);
        }
        gs
    }

    #[test]
    fn only_idle_servers_move() {
        let w = "WaitToBeDeleted";
        assert_eq!(decide(&server(1, "Ready", "None", OLD), w), Decision::Move);
        assert_eq!(
            decide(&server(1, "Creating", "", OLD), w),
            Decision::Move,
            "Ready or not; absent opsState is None"
        );
        assert_eq!(
            decide(&with_players(server(1, "Ready", "None", OLD), 0), w),
            Decision::Move
        );
        assert_eq!(
            decide(&with_players(server(0, "Ready", "Allocated", OLD), 4), w),
            Decision::Busy("Allocated, 4 players".into())
        );
        assert_eq!(
            decide(&server(0, "Ready", "Allocated", OLD), w),
            Decision::Busy("Allocated".into()),
            "Allocated without a player count is still in a match"
        );
        assert_eq!(
            decide(&with_players(server(2, "Ready", "None", OLD), 1), w),
            Decision::Busy("None, 1 player".into()),
            "players count even without Allocated"
        );
        assert_eq!(
            decide(&server(3, "Ready", "Maintaining", OLD), w),
            Decision::Busy("Maintaining".into())
        );
        assert_eq!(decide(&server(4, "Ready", w, OLD), w), Decision::Going);
        assert_eq!(decide(&server(4, "Ready", "Kill", OLD), w), Decision::Going);
        // With Kill, a WaitToBeDeleted server without players goes now.
        assert_eq!(decide(&server(4, "Ready", w, OLD), "Kill"), Decision::Move);
        let mut deleting = server(5, "Ready", "None", OLD);
        deleting.metadata.deletion_timestamp = Some(
            k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(Timestamp::UNIX_EPOCH),
        );
        assert_eq!(decide(&deleting, w), Decision::Going);
    }

    #[test]
    fn what_is_left_is_named() {
        let busy = vec![
            ("minecraft-0".to_owned(), "Allocated, 4 players".to_owned()),
            ("minecraft-2".to_owned(), "Allocated".to_owned()),
        ];
        assert_eq!(
            left(&busy),
            "2 servers still in matches: minecraft-0 (Allocated, 4 players), minecraft-2 (Allocated)"
        );
        let held = vec![("minecraft-3".to_owned(), "Maintaining".to_owned())];
        assert_eq!(
            left(&held),
            "1 server still in matches or held: minecraft-3 (Maintaining)"
        );
    }

    #[test]
    fn replicas_are_lowered_once_per_server_okg_will_remove_never_in_the_call_that_marks_it() {
        let p = Progress {
            template: "t".into(),
            started: Timestamp::UNIX_EPOCH,
            moved: Default::default(),
            off: Default::default(),
            failed: None,
            op: None,
            deadline: None,
        };
        let marks = |names: &[&str]| {
            names
                .iter()
                .map(|n| (*n).to_owned())
                .collect::<BTreeSet<_>>()
        };
        // Marked in this call: nothing lowered yet, even where the mark shows.
        let (p, r) = account(
            p,
            &["m-1".into(), "m-2".into()],
            Some(&marks(&["m-1", "m-2"])),
            6,
        );
        assert_eq!((p.off.len(), r), (0, None));
        // Next call: OKG shows the mark on m-1 only; m-1 is taken off.
        let (p, r) = account(p, &[], Some(&marks(&["m-1"])), 6);
        assert_eq!((p.off.len(), r), (1, Some(5)));
        // Repeats take nothing twice; m-2 goes once its mark shows.
        let (p, r) = account(p, &[], Some(&marks(&["m-1"])), 5);
        assert_eq!(r, None);
        let (p, r) = account(p, &["m-3".into()], Some(&marks(&["m-1", "m-2", "m-3"])), 5);
        assert_eq!((p.moved.len(), p.off.len(), r), (3, 2, Some(4)));
        // Without scaleDown nothing is lowered; never below zero.
        let (_, r) = account(p.clone(), &[], None, 3);
        assert_eq!(r, None);
        let (_, r) = account(p, &[], Some(&marks(&["m-3"])), 0);
        assert_eq!(r, Some(0));
    }

    #[test]
    fn arguments_are_checked() {
        let ok = plan_of(json!({"notImage": format!("minecraft/{NEW}"), "then": "WaitToBeDeleted", "timeoutSeconds": "60", "scaleDown": "true"})).unwrap();
        assert!(ok.not && ok.scale_down && ok.then == "WaitToBeDeleted");
        assert_eq!(ok.timeout, Duration::from_secs(60));
        for (args, needle) in [
            (
                json!({"then": "Kill", "timeoutSeconds": 60}),
                "exactly one of notImage",
            ),
            (
                json!({"image": "a/b", "notImage": "a/c", "then": "Kill", "timeoutSeconds": 60}),
                "exactly one of notImage",
            ),
            (
                json!({"image": "a/b", "timeoutSeconds": 60}),
                "then is missing",
            ),
            (
                json!({"image": "a/b", "then": "Delete", "timeoutSeconds": 60}),
                "then is \"Delete\"",
            ),
            (
                json!({"image": "a/b", "then": "Kill"}),
                "timeoutSeconds is missing",
            ),
            (
                json!({"image": "a/b", "then": "Kill", "timeoutSeconds": 60, "scaleDown": true}),
                "scaleDown goes with then: WaitToBeDeleted",
            ),
            (
                json!({"image": "a/b", "then": "Kill", "timeoutSeconds": 60, "x": 1}),
                "unknown field",
            ),
        ] {
            let e = plan_of(args.clone()).unwrap_err();
            assert!(e.contains(needle), "{args}: {e}");
        }
    }
}
