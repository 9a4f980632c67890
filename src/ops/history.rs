//! The image history of a GameServerSet, kept on the set itself
//! (annotation `gameops.io/image-history`: a JSON list, newest last, the
//! last [`KEEP_HISTORY`] kept), so it survives a plugin restart and is
//! visible with kubectl.
//!
//! Each image change (`patchImage`, `rollback`) appends one entry: the
//! image the container had (what `rollback` restores), the image it got,
//! and the workflow that made the change. The workflow's outcome is written
//! into its entries when it is known: `rollback` marks the same workflow's
//! earlier changes `RolledBack`, and `unlock` (every shipped template's
//! exit handler, given `outcome: "{{workflow.status}}"`) writes the
//! workflow's final status and when it ended. `gameops history` reads it.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::Caller;
use crate::api::GameServerSet;

/// Annotation holding the image history.
pub const HISTORY_ANNOTATION: &str = "gameops.io/image-history";
/// Entries kept in the history.
pub const KEEP_HISTORY: usize = 20;
/// The outcome `rollback` gives the changes its own workflow made before.
pub const ROLLED_BACK: &str = "RolledBack";

/// One image change of one container.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct HistoryEntry {
    /// The container.
    pub container: String,
    /// The image it had before the change (what `rollback` restores).
    pub image: String,
    /// When the change was made.
    pub at: Timestamp,
    /// The image it got.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// The op that made it: `patchImage` (a release) or `rollback`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub op: Option<String>,
    /// `namespace/name` of the workflow that made it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow: Option<String>,
    /// That workflow's uid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    /// When its workflow ended (or rolled it back).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended: Option<Timestamp>,
    /// How it ended: the workflow's status (`Succeeded`, `Failed`,
    /// `Error`), or [`ROLLED_BACK`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
}

impl HistoryEntry {
    /// The entry of a change of `container` from `image` to `to`, made by
    /// `op` at `at` for workflow `by`.
    pub fn change(
        container: &str,
        image: &str,
        to: &str,
        op: &str,
        by: &Caller,
        at: Timestamp,
    ) -> Self {
        Self {
            container: container.to_owned(),
            image: image.to_owned(),
            at,
            to: Some(to.to_owned()),
            op: Some(op.to_owned()),
            workflow: Some(format!("{}/{}", by.namespace, by.name)),
            uid: Some(by.uid.clone()),
            ended: None,
            outcome: None,
        }
    }
}

/// The history on `gss`, oldest first (an unreadable one counts as empty;
/// [`super::readable`] names it when an op reads the set).
pub fn history(gss: &GameServerSet) -> Vec<HistoryEntry> {
    super::annotation_json(gss, HISTORY_ANNOTATION).unwrap_or_default()
}

/// `history` with `entry` appended, keeping the newest [`KEEP_HISTORY`].
pub fn appended(mut history: Vec<HistoryEntry>, entry: HistoryEntry) -> Vec<HistoryEntry> {
    history.push(entry);
    let excess = history.len().saturating_sub(KEEP_HISTORY);
    history.drain(..excess);
    history
}

/// `history` with the entries of workflow `uid` that have no outcome yet
/// given `outcome` at `now`; `None` when there is none.
pub fn concluded(
    mut history: Vec<HistoryEntry>,
    uid: &str,
    outcome: &str,
    now: Timestamp,
) -> Option<Vec<HistoryEntry>> {
    let mut changed = false;
    for entry in history
        .iter_mut()
        .filter(|e| e.uid.as_deref() == Some(uid) && e.outcome.is_none())
    {
        entry.outcome = Some(outcome.to_owned());
        entry.ended = Some(now);
        changed = true;
    }
    changed.then_some(history)
}

/// The merge patch writing `history` to the set.
pub fn patch(history: &[HistoryEntry]) -> Result<Value, String> {
    let text = serde_json::to_string(history).map_err(|e| e.to_string())?;
    Ok(json!({"metadata": {"annotations": {HISTORY_ANNOTATION: text}}}))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(i: usize) -> HistoryEntry {
        HistoryEntry {
            container: "c".into(),
            image: format!("img:{i}"),
            at: Timestamp::UNIX_EPOCH,
            ..HistoryEntry::default()
        }
    }

    #[test]
    fn history_keeps_the_newest_twenty() {
        let mut h = Vec::new();
        for i in 0..25 {
            h = appended(h, entry(i));
        }
        assert_eq!(h.len(), KEEP_HISTORY);
        assert_eq!(h[0].image, "img:5");
        assert_eq!(h[19].image, "img:24", "newest last");
    }

    #[test]
    fn only_the_workflows_open_entries_are_concluded() {
        let by = |uid: &str| Caller {
            name: format!("wf-{uid}"),
            namespace: "default".into(),
            uid: uid.into(),
        };
        let t = Timestamp::UNIX_EPOCH;
        let h = vec![
            HistoryEntry::change("c", "a", "b", "patchImage", &by("1"), t),
            HistoryEntry::change("c", "b", "c", "patchImage", &by("2"), t),
            HistoryEntry::change("c", "c", "b", "rollback", &by("2"), t),
        ];
        let later = t + jiff::SignedDuration::from_secs(90);
        let h = concluded(h, "2", ROLLED_BACK, later).unwrap();
        assert_eq!(h[0].outcome, None, "another workflow's entry");
        assert_eq!(h[1].outcome.as_deref(), Some(ROLLED_BACK));
        assert_eq!(h[2].ended, Some(later));
        // Concluded entries keep their first outcome.
        assert!(concluded(h.clone(), "2", "Failed", later).is_none());
        assert!(concluded(h, "3", "Failed", later).is_none());
    }

    #[test]
    fn entries_written_before_the_workflow_fields_still_read() {
        let old = r#"[{"container":"c","image":"mc:1","at":"2026-01-01T00:00:00Z"}]"#;
        let h: Vec<HistoryEntry> = serde_json::from_str(old).unwrap();
        assert_eq!(h[0].image, "mc:1");
        assert_eq!(h[0].workflow, None);
    }
}
