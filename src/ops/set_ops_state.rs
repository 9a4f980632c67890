//! `setOpsState`: GameServers-Updater's job as one call. Sets
//! `spec.opsState` to `opsState` on every server of the set that `select`
//! matches (fields ANDed, images compared normalised against what runs; see
//! [`super::select`]), lowest ordinals first up to `limit`. Servers already
//! in `opsState` are left alone and not counted. Each server is changed by
//! a resourceVersion-conditioned merge patch; on a conflict it is read
//! again and changed only if it still matches.
//!
//! Idempotent: the answer (`count`, `names`) is recorded in the set's
//! ledger, and a repeat of the call replays it without selecting again.
//! Each changed server is stamped with the call's fingerprint, so a repeat
//! racing the original (or re-sent after a crash before the answer was
//! recorded) counts the servers already changed rather than picking others.
//! `dryRun` changes and records nothing and reports what would change.
//! Outputs `count` and `names` (comma-separated).

use std::borrow::Borrow;
use std::collections::BTreeMap;

use serde_json::Value;

use super::ledger::{self, Change};
use super::select::{self, Patched, Selection, deleting, ops_state};
use super::{Call, Outcome, name_list};
use crate::api::GameServer;

use super::table::SetOpsStateArgs as Args;

/// Servers the call already changed, and those it may change, by ordinal.
fn plan<'a, S: Borrow<GameServer>>(
    servers: &'a [S],
    selection: &Selection,
    target: &str,
    fingerprint: &str,
) -> (Vec<&'a GameServer>, Vec<&'a GameServer>) {
    let mut done: Vec<&GameServer> = servers
        .iter()
        .map(Borrow::borrow)
        .filter(|g| select::changed_by(g, fingerprint) && ops_state(g) == target)
        .collect();
    let mut todo: Vec<&GameServer> = servers
        .iter()
        .map(Borrow::borrow)
        .filter(|g| !deleting(g) && ops_state(g) != target && selection.matches(g))
        .collect();
    let key = |g: &&'a GameServer| {
        let n = select::name(g);
        (select::ordinal(n).is_none(), select::ordinal(n), n)
    };
    done.sort_by_cached_key(key);
    todo.sort_by_cached_key(key);
    (done, todo)
}

/// Servers named in a message, at most (the `names` output has them all).
const NAMED: usize = 10;

fn answer(
    set: &str,
    target: &str,
    selection: &Selection,
    names: &[String],
    dry_run: bool,
) -> (String, BTreeMap<String, String>) {
    let message = match (names.is_empty(), dry_run) {
        (true, _) => format!(
            "{set}: no server matches {} and is not already {target}; nothing {}",
            selection.describe(),
            if dry_run { "would change" } else { "changed" }
        ),
        (false, _) => format!(
            "{}set opsState {target} on {} servers of {set} ({}): {}",
            if dry_run { "dry run: would " } else { "" },
            names.len(),
            selection.describe(),
            name_list::shortened(names, NAMED)
        ),
    };
    let outputs = BTreeMap::from([
        ("count".to_owned(), names.len().to_string()),
        ("names".to_owned(), names.join(",")),
    ]);
    (message, outputs)
}

/// The opsState to set. One OpenKruiseGame does not define is refused
/// unless `allowCustomState`: a typo would take every selected server out
/// of allocation.
fn target(args: &Args) -> Result<&str, String> {
    let Some(target) = args
        .ops_state
        .as_deref()
        .map(str::trim)
        .filter(|o| !o.is_empty())
    else {
        return Err("plugin.gameops.setOpsState.opsState is missing: give the opsState to set, e.g. WaitToBeDeleted (known: None, Allocated, WaitToBeDeleted, Maintaining, Kill)".into());
    };
    let custom = args
        .allow_custom_state
        .unwrap_or(super::table::ALLOW_CUSTOM_STATE);
    if custom || super::table::OPS_STATES.contains(&target) {
        return Ok(target);
    }
    Err(format!(
        "plugin.gameops.setOpsState.opsState {target:?} is not an opsState OpenKruiseGame defines ({}){}: a typo would take every selected server out of allocation; pass allowCustomState: true to set it anyway",
        super::table::OPS_STATES.join(", "),
        super::check::suggest(target, super::table::OPS_STATES)
    ))
}

/// Runs the op.
pub async fn run(call: &Call<'_>, args: Args) -> Result<Outcome, Outcome> {
    let target = target(&args).map_err(Outcome::Failed)?.to_owned();
    let target = target.as_str();
    let Some(select) = args.select else {
        return Err(Outcome::Failed("plugin.gameops.setOpsState.select is missing: say which servers, e.g. {\"opsState\": \"None\", \"notImage\": \"CONTAINER/NEW-IMAGE\"} ({} selects every server)".into()));
    };
    let dry_run = args.dry_run.unwrap_or(super::table::DRY_RUN);
    let limit = args.limit.map(|l| usize::try_from(l).unwrap_or(usize::MAX));
    // A dry run changes nothing: no lease, no record.
    let gss = if dry_run {
        super::get_set(call).await
    } else {
        ledger::acquire(call).await
    };
    let gss = gss?;
    let selection = select
        .compile(
            "plugin.gameops.setOpsState.select",
            &select::template_containers(&gss),
        )
        .map_err(Outcome::Failed)?;
    let servers = select::list_servers(call).await?;
    let set = format!("{}/{}", call.namespace, call.game_server_set);
    let (done, todo) = plan(&servers, &selection, target, &call.fingerprint);
    let mut names: Vec<String> = done.iter().map(|g| select::name(g).to_owned()).collect();
    if dry_run {
        let room = limit.map_or(usize::MAX, |l| l.saturating_sub(names.len()));
        names.extend(todo.iter().take(room).map(|g| select::name(g).to_owned()));
        let (message, outputs) = answer(&set, target, &selection, &names, true);
        return Ok(Outcome::Done { message, outputs });
    }
    let qualifies = |g: &GameServer| !deleting(g) && ops_state(g) != target && selection.matches(g);
    let mut todo = todo.into_iter();
    // In rounds, so that servers which stopped matching leave room for the
    // next ones under the limit.
    loop {
        let room = limit.map_or(usize::MAX, |l| l.saturating_sub(names.len()));
        let batch: Vec<GameServer> = todo.by_ref().take(room).cloned().collect();
        if batch.is_empty() {
            break;
        }
        for result in select::set_ops_states(call, batch, target, qualifies).await {
            match result {
                Ok(Patched::Changed(g)) => names.push(select::name(&g).to_owned()),
                Ok(Patched::Skipped(_) | Patched::Gone) => {}
                Err(e) if e.transient => {
                    return Err(Outcome::Retry(format!(
                        "{} ({} servers of {set} changed so far; a repeat of this call continues)",
                        e.message,
                        names.len()
                    )));
                }
                Err(e) => return Err(Outcome::Failed(e.message)),
            }
        }
    }
    select::by_ordinal(&mut names);
    let (message, outputs) = answer(&set, target, &selection, &names, false);
    Ok(ledger::mutate(call, |_| {
        Ok(Change {
            patch: Value::Null,
            message: message.clone(),
            outputs: outputs.clone(),
        })
    })
    .await)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::select::tests::{NEW, OLD, server};
    use crate::ops::select::{CHANGED_BY_ANNOTATION, Select};
    use serde_json::json;

    fn names(servers: &[&GameServer]) -> Vec<String> {
        servers.iter().map(|g| select::name(g).to_owned()).collect()
    }

    #[test]
    fn the_seed_selection() {
        let servers = vec![
            server(0, "Ready", "Allocated", OLD),
            server(2, "Ready", "None", OLD),
            server(1, "Ready", "None", OLD),
            server(10, "Ready", "None", OLD),
            server(3, "Ready", "None", NEW),
            server(4, "Ready", "WaitToBeDeleted", OLD),
        ];
        let select: Select = serde_json::from_value(
            json!({"opsState": "None", "notImage": format!("minecraft/{NEW}")}),
        )
        .unwrap();
        let selection = select.compile("select", &["minecraft".to_owned()]).unwrap();
        let (done, todo) = plan(&servers, &selection, "WaitToBeDeleted", "fp");
        assert!(done.is_empty());
        assert_eq!(
            names(&todo),
            ["minecraft-1", "minecraft-2", "minecraft-10"],
            "by ordinal, not by name"
        );
    }

    #[test]
    fn servers_this_call_changed_count_as_done() {
        let mut changed = server(1, "Ready", "WaitToBeDeleted", OLD);
        changed
            .metadata
            .annotations
            .get_or_insert_default()
            .insert(CHANGED_BY_ANNOTATION.into(), "fp".into());
        let servers = vec![changed, server(2, "Ready", "None", OLD)];
        let selection = Selection::not_image(
            select::container_images(
                "notImage",
                &[format!("minecraft/{NEW}")],
                &["minecraft".to_owned()],
            )
            .unwrap(),
        );
        let (done, todo) = plan(&servers, &selection, "WaitToBeDeleted", "fp");
        assert_eq!(names(&done), ["minecraft-1"]);
        assert_eq!(names(&todo), ["minecraft-2"]);
        let (done, _) = plan(&servers, &selection, "WaitToBeDeleted", "other");
        assert!(
            done.is_empty(),
            "another call's changes are not this call's"
        );
    }

    #[test]
    fn answers_name_what_changed() {
        let s = Selection::default();
        let names = vec!["m-1".to_owned(), "m-2".to_owned()];
        let (m, o) = answer("default/m", "Kill", &s, &names, false);
        assert_eq!(
            m,
            "set opsState Kill on 2 servers of default/m (every server): m-1, m-2"
        );
        assert_eq!((o["count"].as_str(), o["names"].as_str()), ("2", "m-1,m-2"));
        let (m, _) = answer("default/m", "Kill", &s, &names, true);
        assert!(m.starts_with("dry run: would set"), "{m}");
        let (m, o) = answer("default/m", "Kill", &s, &[], false);
        assert!(m.contains("nothing changed"), "{m}");
        assert_eq!((o["count"].as_str(), o["names"].as_str()), ("0", ""));
    }
}
