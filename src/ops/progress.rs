//! What waiting ops (`waitReady`, `drain`) remember between calls, kept on
//! the GameServerSet in the annotation `gameops.io/waits` (a JSON object by
//! call fingerprint), so that a timeout counts from the FIRST call however
//! often Argo sends the template again, and survives a plugin restart.
//!
//! Argo's requests carry no node id; a call is identified by its
//! fingerprint (workflow uid + template + op + arguments, see
//! [`super::Call::fingerprint`]). The first call writes `{started}`; later
//! calls read it. `drain` also keeps the servers it moved and those it has
//! already taken off `spec.replicas`, so that each is taken off once.
//! Entries older than a day and beyond the newest 50 are pruned on
//! every write; a finished `drain` removes its own (its answer then lives in
//! the ledger). Every write is a merge patch of the set carrying the
//! resourceVersion it was computed from, retried on conflict.
//!
//! A consequence worth knowing: Argo's `retryStrategy` re-sends a failed
//! node with the same template and arguments, so a retried `waitReady` that
//! timed out finds its old start and times out again at once. Give a retry
//! a new window by changing the template (name or arguments).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{Call, Outcome};
use crate::api::GameServerSet;

/// Annotation holding the progress of waiting calls.
pub const WAITS_ANNOTATION: &str = "gameops.io/waits";
const KEEP: usize = 50;
const TTL: Duration = Duration::from_secs(24 * 3600);
/// The most the annotation may take, in bytes (oldest entries go first):
/// with the ledger's, far below kube-apiserver's 256 KiB for all
/// annotations of an object.
pub const BUDGET: usize = 48 * 1024;
/// The longest `timeoutSeconds` a waiting op accepts (its entry must
/// outlive it).
pub const MAX_TIMEOUT_SECONDS: u64 = 24 * 3600 - 60;

/// One waiting call's progress.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Progress {
    /// The template that made the call.
    pub template: String,
    /// When the first call came.
    pub started: Timestamp,
    /// `drain`: the servers it moved.
    #[serde(
        default,
        skip_serializing_if = "BTreeSet::is_empty",
        with = "super::name_list::set"
    )]
    pub moved: BTreeSet<String>,
    /// `drain`: those of them already taken off `spec.replicas`.
    #[serde(
        default,
        skip_serializing_if = "BTreeSet::is_empty",
        with = "super::name_list::set"
    )]
    pub off: BTreeSet<String>,
    /// The failure a waiting op answered (`waitReady`'s crash or timeout):
    /// a repeat of the call answers it again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed: Option<String>,
    /// The op waiting (`drain`, `waitReady`, `removeRetired`), for
    /// `gameops status`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub op: Option<String>,
    /// When it gives up (the first call plus `timeoutSeconds`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline: Option<Timestamp>,
}

impl Progress {
    /// A call first seen at `now`.
    pub fn new(call: &Call<'_>, now: Timestamp) -> Self {
        Self {
            template: call.template.to_owned(),
            started: now,
            moved: BTreeSet::new(),
            off: BTreeSet::new(),
            failed: None,
            op: None,
            deadline: None,
        }
    }

    /// This progress, of op `op` giving up `timeout` after it started.
    #[must_use]
    pub fn of_op(mut self, op: &str, timeout: Duration) -> Self {
        self.op = Some(op.to_owned());
        self.deadline = jiff::SignedDuration::try_from(timeout)
            .ok()
            .and_then(|t| self.started.checked_add(t).ok());
        self
    }

    /// Time since the first call.
    pub fn elapsed(&self, now: Timestamp) -> Duration {
        Duration::try_from(now.duration_since(self.started)).unwrap_or_default()
    }
}

/// Every entry on `gss` (an unreadable annotation counts as none).
pub fn all(gss: &GameServerSet) -> BTreeMap<String, Progress> {
    super::annotation_json(gss, WAITS_ANNOTATION).unwrap_or_default()
}

/// `call`'s entry on `gss`.
pub fn of(gss: &GameServerSet, call: &Call<'_>) -> Option<Progress> {
    all(gss).remove(&call.fingerprint)
}

/// `entries` without those older than a day and beyond the newest [`KEEP`].
pub fn pruned(entries: BTreeMap<String, Progress>, now: Timestamp) -> BTreeMap<String, Progress> {
    let entries = super::prune_by_age(entries, now, TTL, KEEP, |p| p.started);
    super::prune_to_size(entries, BUDGET, |p| p.started)
}

/// The merge patch setting `call`'s entry to `progress` (`None`: removing
/// it), pruning the others.
pub fn patch(
    gss: &GameServerSet,
    call: &Call<'_>,
    progress: Option<Progress>,
    now: Timestamp,
) -> Value {
    let mut entries = all(gss);
    match progress {
        Some(p) => entries.insert(call.fingerprint.clone(), p),
        None => entries.remove(&call.fingerprint),
    };
    let entries = pruned(entries, now);
    let value = if entries.is_empty() {
        Value::Null
    } else {
        Value::String(serde_json::to_string(&entries).unwrap_or_default())
    };
    json!({"metadata": {"annotations": {WAITS_ANNOTATION: value}}})
}

/// Writes what `change` asks of the set (a merge patch; `None`: nothing to
/// write), starting from `gss` and re-reading it on a conflict; returns the
/// set as written (or as read, when nothing was written).
pub async fn write<F>(
    call: &Call<'_>,
    gss: GameServerSet,
    change: F,
) -> Result<GameServerSet, Outcome>
where
    F: Fn(&GameServerSet) -> Result<Option<Value>, String>,
{
    super::cas::update(call, Some(gss), |g| change(g).map_err(Outcome::Failed)).await
}

/// `call`'s entry, written now if this is its first call.
pub async fn start(
    call: &Call<'_>,
    gss: GameServerSet,
    (op, timeout): (&str, Duration),
) -> Result<(GameServerSet, Progress), Outcome> {
    let fresh = || Progress::new(call, Timestamp::now()).of_op(op, timeout);
    let gss = write(call, gss, |g| {
        Ok(of(g, call)
            .is_none()
            .then(|| patch(g, call, Some(fresh()), Timestamp::now())))
    })
    .await?;
    match of(&gss, call) {
        Some(p) => Ok((gss, p)),
        // Someone removed it (or it is unreadable): start again from now.
        None => Ok((gss, fresh())),
    }
}

/// Remembers that the call failed with `message`, so a repeat answers the
/// same (the first verdict recorded stays).
pub async fn fail(call: &Call<'_>, gss: GameServerSet, message: &str) -> Result<(), Outcome> {
    write(call, gss, |g| {
        let now = Timestamp::now();
        let mut progress = of(g, call).unwrap_or_else(|| Progress::new(call, now));
        if progress.failed.is_some() {
            return Ok(None);
        }
        progress.failed = Some(message.to_owned());
        Ok(Some(patch(g, call, Some(progress), now)))
    })
    .await
    .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(started: Timestamp) -> Progress {
        Progress {
            template: "t".into(),
            started,
            moved: BTreeSet::new(),
            off: BTreeSet::new(),
            failed: None,
            op: None,
            deadline: None,
        }
    }

    #[test]
    fn entries_are_pruned_by_age_and_count() {
        let now = Timestamp::now();
        let mut entries = BTreeMap::new();
        entries.insert(
            "old".to_string(),
            entry(now - jiff::SignedDuration::from_hours(25)),
        );
        for i in 0..60 {
            entries.insert(
                format!("w{i:02}"),
                entry(now - jiff::SignedDuration::from_secs(60 - i)),
            );
        }
        let kept = pruned(entries, now);
        assert_eq!(kept.len(), KEEP);
        assert!(!kept.contains_key("old"));
        assert!(!kept.contains_key("w09"), "the oldest go first");
        assert!(kept.contains_key("w10") && kept.contains_key("w59"));
    }

    #[test]
    fn progress_serialises_compactly() {
        let at: Timestamp = "2024-05-01T10:00:00Z".parse().unwrap();
        let mut p = entry(at);
        assert_eq!(
            serde_json::to_value(&p).unwrap(),
            json!({"template": "t", "started": "2024-05-01T10:00:00Z"})
        );
        p.moved.insert("m-1".into());
        p.off.insert("m-1".into());
        let back: Progress = serde_json::from_value(serde_json::to_value(&p).unwrap()).unwrap();
        assert_eq!(back, p);
        assert_eq!(
            p.elapsed(at + jiff::SignedDuration::from_secs(90)),
            Duration::from_secs(90)
        );
    }
}
