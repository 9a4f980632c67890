//! What the plugin remembers, kept on the GameServerSet itself (so it
//! survives a plugin restart and is visible with kubectl):
//!
//! - `gameops.io/lease`: which workflow is releasing the set, until when.
//!   Another workflow's mutating op fails naming the holder; the holder's
//!   own calls renew it.
//! - `gameops.io/ops`: the result of every mutating call, by fingerprint
//!   (workflow uid + template + arguments), so that Argo's retries and
//!   re-sent calls get the same answer and apply nothing twice. Records
//!   older than a day, and beyond the newest 50, are pruned.
//!
//! A mutation and its record are written in one patch that carries the
//! set's resourceVersion: either both land or neither does. Ops whose
//! changes are on GameServers (`setOpsState`, `drain`) first [`acquire`]
//! the set (replay, holder check, lease), then change the servers, then
//! record their answer with [`mutate`].

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{Call, Outcome};
use crate::api::GameServerSet;

/// Annotation holding the lease.
pub const LEASE_ANNOTATION: &str = "gameops.io/lease";
/// Annotation holding the records of applied calls.
pub const OPS_ANNOTATION: &str = "gameops.io/ops";
/// How long a lease lasts without a call from its holder.
pub const LEASE_DURATION: Duration = Duration::from_secs(15 * 60);
const KEEP_RECORDS: usize = 50;
const RECORD_TTL: Duration = Duration::from_secs(24 * 3600);

/// One workflow's hold on a set.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Lease {
    /// The holding workflow's uid.
    pub holder: String,
    /// `namespace/name` of the workflow, for messages.
    pub workflow: String,
    /// When it lapses.
    pub until: Timestamp,
}

/// The answer given to one call, replayed to its retries.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Record {
    /// The template that made the call.
    pub template: String,
    /// When it was applied.
    pub at: Timestamp,
    /// The message given.
    pub message: String,
    /// The outputs given.
    #[serde(default)]
    pub outputs: BTreeMap<String, String>,
}

fn annotation<'a>(gss: &'a GameServerSet, key: &str) -> Option<&'a str> {
    gss.metadata
        .annotations
        .as_ref()?
        .get(key)
        .map(String::as_str)
}

/// The lease on `gss`, if any (an unreadable one counts as none).
pub fn lease(gss: &GameServerSet) -> Option<Lease> {
    serde_json::from_str(annotation(gss, LEASE_ANNOTATION)?).ok()
}

/// The records on `gss`.
pub fn records(gss: &GameServerSet) -> BTreeMap<String, Record> {
    annotation(gss, OPS_ANNOTATION)
        .and_then(|a| serde_json::from_str(a).ok())
        .unwrap_or_default()
}

/// Why `call` may not change `gss` now, if it may not.
pub fn held_by_other(gss: &GameServerSet, call: &Call<'_>, now: Timestamp) -> Option<String> {
    let lease = lease(gss)?;
    (lease.holder != call.workflow.uid && lease.until > now).then(|| {
        format!(
            "GameServerSet {}/{} is being released by workflow {} (uid {}) until {}; wait for it to finish, or remove the annotation {LEASE_ANNOTATION} if that workflow is gone",
            call.namespace,
            call.game_server_set,
            lease.workflow,
            lease.holder,
            lease.until.strftime("%Y-%m-%dT%H:%M:%SZ"),
        )
    })
}

/// What a mutating op wants done: a merge patch of the set and the answer.
#[derive(Debug)]
pub struct Change {
    /// Merge patch of the set (spec, annotations); `Value::Null` for none.
    pub patch: Value,
    /// The message for the Argo UI.
    pub message: String,
    /// The outputs.
    pub outputs: BTreeMap<String, String>,
}

fn pruned(records: BTreeMap<String, Record>, now: Timestamp) -> BTreeMap<String, Record> {
    super::prune_by_age(records, now, RECORD_TTL, KEEP_RECORDS, |r| r.at)
}

/// The answer recorded for a call, given again to a repeat of it.
pub fn replay(done: &Record) -> Outcome {
    Outcome::Done {
        message: format!(
            "{} (already applied at {}; not applied again)",
            done.message,
            done.at.strftime("%H:%M:%SZ")
        ),
        outputs: done.outputs.clone(),
    }
}

/// The lease `call`'s workflow takes (or renews) at `now`.
pub fn lease_for(call: &Call<'_>, now: Timestamp) -> Lease {
    Lease {
        holder: call.workflow.uid.clone(),
        workflow: format!("{}/{}", call.workflow.namespace, call.workflow.name),
        until: now + jiff::SignedDuration::try_from(LEASE_DURATION).unwrap_or_default(),
    }
}

/// For mutating ops that change GameServers before [`mutate`] records
/// their answer (`setOpsState`, `drain`): reads the set and returns it once
/// `call` may change it, holding the lease for `call`'s workflow. `Err` is
/// the answer to give instead: the recorded one for a repeated call, or a
/// failure naming another workflow that holds the set. The lease is renewed
/// (one compare-and-swap patch of the annotation) only when it is not
/// already `call`'s with at least half its duration to run, so a waiting
/// op's repeated calls rarely write.
pub async fn acquire(call: &Call<'_>) -> Result<GameServerSet, Outcome> {
    let half = jiff::SignedDuration::try_from(LEASE_DURATION / 2).unwrap_or_default();
    super::cas::update(call, None, |gss| {
        let now = Timestamp::now();
        if let Some(done) = records(gss).get(&call.fingerprint) {
            return Err(replay(done));
        }
        if let Some(why) = held_by_other(gss, call, now) {
            return Err(Outcome::Failed(why));
        }
        if lease(gss).is_some_and(|l| l.holder == call.workflow.uid && l.until > now + half) {
            return Ok(None);
        }
        Ok(Some(json!({"metadata": {"annotations": {
            LEASE_ANNOTATION: serde_json::to_string(&lease_for(call, now)).unwrap_or_default(),
        }}})))
    })
    .await
}

/// Runs a mutating op exactly once per fingerprint: replays the recorded
/// answer to a repeated call, refuses while another workflow holds the set,
/// and otherwise applies `change` together with its record and the renewed
/// lease, retrying on concurrent writes.
pub async fn mutate<F>(call: &Call<'_>, change: F) -> Outcome
where
    F: Fn(&GameServerSet) -> Result<Change, String>,
{
    let mut answer = None;
    let written = super::cas::update(call, None, |gss| {
        let now = Timestamp::now();
        let mut records = records(gss);
        if let Some(done) = records.get(&call.fingerprint) {
            return Err(replay(done));
        }
        if let Some(why) = held_by_other(gss, call, now) {
            return Err(Outcome::Failed(why));
        }
        let change = change(gss).map_err(Outcome::Failed)?;
        records.insert(
            call.fingerprint.clone(),
            Record {
                template: call.template.to_owned(),
                at: now,
                message: change.message.clone(),
                outputs: change.outputs.clone(),
            },
        );
        let mut patch = if change.patch.is_null() {
            json!({})
        } else {
            change.patch
        };
        let bookkeeping = json!({"annotations": {
            LEASE_ANNOTATION: serde_json::to_string(&lease_for(call, now)).unwrap_or_default(),
            OPS_ANNOTATION: serde_json::to_string(&pruned(records, now)).unwrap_or_default(),
        }});
        json_patch::merge(&mut patch, &json!({"metadata": bookkeeping}));
        answer = Some((change.message, change.outputs));
        Ok(Some(patch))
    })
    .await;
    match (written, answer) {
        (Err(outcome), _) => outcome,
        (Ok(_), Some((message, outputs))) => Outcome::Done { message, outputs },
        // Every path that writes sets the answer first.
        (Ok(_), None) => Outcome::Retry(format!(
            "GameServerSet {}/{} was not written; trying again",
            call.namespace, call.game_server_set
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(at: Timestamp) -> Record {
        Record {
            template: "t".into(),
            at,
            message: "m".into(),
            outputs: BTreeMap::new(),
        }
    }

    #[test]
    fn records_are_pruned_by_age_and_count() {
        let now = Timestamp::now();
        let mut records = BTreeMap::new();
        records.insert(
            "old".to_string(),
            record(now - jiff::SignedDuration::from_hours(25)),
        );
        for i in 0..60 {
            records.insert(
                format!("r{i:02}"),
                record(now - jiff::SignedDuration::from_secs(60 - i)),
            );
        }
        let kept = pruned(records, now);
        assert_eq!(kept.len(), KEEP_RECORDS);
        assert!(!kept.contains_key("old"));
        assert!(!kept.contains_key("r00"), "the oldest go first");
        assert!(kept.contains_key("r59"));
    }
}
