//! `removeRetired`: returns a set to its size after a release by lowering
//! `spec.replicas` by the servers marked `WaitToBeDeleted`, so that
//! OpenKruiseGame deletes exactly those (it removes `WaitToBeDeleted`
//! first on a scale-down). Only servers already marked count, never an
//! unmarked or Allocated one, and only once OKG will remove exactly them:
//! every marked server's Pod carries the mark ([`super::okg_marks`]); until
//! then the op answers Running, and fails at `timeoutSeconds` naming the
//! servers OKG has not marked.
//!
//! Deletions already under way count: when the set has more servers than
//! `spec.replicas`, OKG is already removing that many (marked ones first),
//! and only the marked servers beyond them lower the replicas. So the op
//! is idempotent however often it is sent, and its answer is recorded in
//! the ledger like every mutating op's. Outputs `removed` and `replicas`.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;
use serde_json::json;

use super::ledger::{self, Change};
use super::okg_marks::{self, MARK};
use super::select::{self, deleting, ops_state};
use super::{Call, Outcome, name_list, progress};

/// How soon Argo asks again while OKG has not seen every mark.
const POLL: Duration = Duration::from_secs(2);

use super::table::RemoveRetiredArgs as Args;

/// How far to lower `replicas`: the marked servers beyond the deletions
/// already under way (`servers` above `replicas`).
fn lower_by(replicas: i32, servers: usize, marked: usize) -> i32 {
    let servers = i64::try_from(servers).unwrap_or(i64::MAX);
    let under_way = (servers - i64::from(replicas)).max(0);
    let marked = i64::try_from(marked).unwrap_or(i64::MAX);
    i32::try_from((marked - under_way).clamp(0, i64::from(replicas.max(0)))).unwrap_or(0)
}

/// Runs the op.
pub async fn run(call: &Call<'_>, args: Args) -> Result<Outcome, Outcome> {
    let timeout = Duration::from_secs(
        args.timeout_seconds
            .unwrap_or(super::table::REMOVE_RETIRED_TIMEOUT),
    );
    let gss = ledger::acquire(call).await?;
    let (_, started) = progress::start(call, gss, ("removeRetired", timeout)).await?;
    let servers = select::list_servers(call).await?;
    let live: Vec<_> = servers.iter().filter(|g| !deleting(g)).collect();
    let mut unmarked: Vec<String> = Vec::new();
    let on_pods = okg_marks::marked(call).await?;
    for gs in live.iter().filter(|g| ops_state(g) == MARK) {
        let name = select::name(gs);
        if !on_pods.contains(name) {
            unmarked.push(name.to_owned());
        }
    }
    let set = format!("{}/{}", call.namespace, call.game_server_set);
    if !unmarked.is_empty() {
        select::by_ordinal(&mut unmarked);
        let elapsed = started.elapsed(Timestamp::now());
        let what = format!(
            "OpenKruiseGame has not put the mark on the Pods of {} (label {}={MARK})",
            name_list::shortened(&unmarked, 10),
            crate::api::POD_OPS_STATE_LABEL
        );
        if elapsed >= timeout {
            return Err(Outcome::Failed(format!(
                "{set}: after {}s {what}; lowering spec.replicas now could delete other servers. Check the kruise-game controller",
                timeout.as_secs()
            )));
        }
        return Ok(Outcome::Waiting {
            message: format!("{set}: waiting until {what}"),
            after: POLL,
        });
    }
    let count = live.len();
    let marked = on_pods.len();
    Ok(ledger::mutate(call, |gss| {
        let replicas = gss.spec.replicas;
        let lower = lower_by(replicas, count, marked);
        let after = replicas - lower;
        Ok(Change {
            patch: if lower > 0 {
                json!({"spec": {"replicas": after}})
            } else {
                serde_json::Value::Null
            },
            message: format!(
                "{set}: {marked} servers marked {MARK}; spec.replicas {replicas} → {after} so that OpenKruiseGame removes {lower} of them"
            ),
            outputs: BTreeMap::from([
                ("removed".to_owned(), lower.to_string()),
                ("replicas".to_owned(), after.to_string()),
            ]),
        })
    })
    .await)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_marked_servers_beyond_deletions_under_way_lower_the_replicas() {
        // 6 servers, 6 replicas, 2 marked: down to 4.
        assert_eq!(lower_by(6, 6, 2), 2);
        // Already lowered to 4, the two still being removed: nothing more.
        assert_eq!(lower_by(4, 6, 2), 0);
        // Servers still being created (replicas above the count): the
        // marked ones only, never the ones to come.
        assert_eq!(lower_by(8, 6, 2), 2);
        // Nothing marked: nothing lowered; never below zero.
        assert_eq!(lower_by(6, 6, 0), 0);
        assert_eq!(lower_by(1, 3, 2), 0);
        assert_eq!(lower_by(2, 2, 2), 2);
    }
}
