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
/// The most the records may take, in bytes (oldest go first): with the
/// other annotations, far below kube-apiserver's 256 KiB per object.
pub const BUDGET: usize = 64 * 1024;

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
    /// The `names` output, kept compact ([`super::name_list`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub names: Option<String>,
}

impl Record {
    /// The record of an answer: a `names` output is kept compact.
    pub fn new(
        template: &str,
        at: Timestamp,
        message: &str,
        outputs: &BTreeMap<String, String>,
    ) -> Self {
        let mut outputs = outputs.clone();
        let names = outputs
            .remove("names")
            .map(|list| super::name_list::compact(list.split(',').filter(|n| !n.is_empty())));
        Self {
            template: template.to_owned(),
            at,
            message: message.to_owned(),
            outputs,
            names,
        }
    }

    /// The outputs as first answered.
    pub fn outputs(&self) -> BTreeMap<String, String> {
        let mut outputs = self.outputs.clone();
        if let Some(names) = &self.names {
            let list = super::name_list::expand(names).unwrap_or_default();
            outputs.insert("names".to_owned(), list.join(","));
        }
        outputs
    }
}

/// The lease on `gss`, if any (an unreadable one counts as none).
pub fn lease(gss: &GameServerSet) -> Option<Lease> {
    super::annotation_json(gss, LEASE_ANNOTATION)
}

/// The records on `gss`.
pub fn records(gss: &GameServerSet) -> BTreeMap<String, Record> {
    super::annotation_json(gss, OPS_ANNOTATION).unwrap_or_default()
}

/// The lease on `gss` held by another workflow and still in force at
/// `now`, unless its holder is `finished` (known to have ended).
fn held_by_other(
    gss: &GameServerSet,
    call: &Call<'_>,
    now: Timestamp,
    finished: Option<&str>,
) -> Option<Lease> {
    lease(gss).filter(|l| {
        l.holder != call.workflow.uid && l.until > now && finished != Some(l.holder.as_str())
    })
}

/// Whether the workflow holding a lease still runs, as far as the cluster
/// tells (an Argo `Workflow` object, argoproj.io/v1alpha1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Holder {
    /// It runs (its phase).
    Running(String),
    /// It has ended (its phase), or no longer exists.
    Finished(String),
    /// The cluster does not say (no Workflow resource here, or no access).
    Unknown(String),
}

/// Asks the cluster whether the workflow holding `lease` still runs.
pub async fn holder(client: &kube::Client, lease: &Lease) -> Holder {
    use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind};
    let Some((namespace, name)) = lease.workflow.split_once('/') else {
        return Holder::Unknown(format!("{:?} names no workflow", lease.workflow));
    };
    let gvk = GroupVersionKind::gvk("argoproj.io", "v1alpha1", "Workflow");
    let api: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), namespace, &ApiResource::from_gvk(&gvk));
    match api.get(name).await {
        Ok(wf) if wf.metadata.uid.as_deref() != Some(lease.holder.as_str()) => {
            Holder::Finished("gone (a newer workflow has its name)".into())
        }
        Ok(wf) => {
            let phase = wf.data["status"]["phase"].as_str().unwrap_or("Pending");
            match phase {
                "Succeeded" | "Failed" | "Error" => Holder::Finished(phase.to_owned()),
                other => Holder::Running(other.to_owned()),
            }
        }
        Err(kube::Error::Api(e))
            if e.code == 404 && e.message.contains(&format!("\"{name}\" not found")) =>
        {
            Holder::Finished("gone".into())
        }
        Err(kube::Error::Api(e)) if e.code == 404 => {
            Holder::Unknown("this cluster serves no Argo Workflows".into())
        }
        Err(e) => Holder::Unknown(e.to_string()),
    }
}

/// The refusal of a call on a set another workflow holds: who, whether it
/// still runs, and the command that frees the set.
fn refusal(call: &Call<'_>, lease: &Lease, state: &Holder) -> String {
    let runs = match state {
        Holder::Running(phase) => format!("which still runs (phase {phase})"),
        Holder::Finished(phase) => format!("which has finished ({phase})"),
        Holder::Unknown(_) => {
            "whether it still runs is not known here (the plugin cannot read its Workflow)".into()
        }
    };
    format!(
        "GameServerSet {ns}/{set} is being released by workflow {wf} (uid {uid}), {runs}, until {until}; wait for it to finish, or free the set: kubectl annotate gss {set} -n {ns} {LEASE_ANNOTATION}-",
        ns = call.namespace,
        set = call.game_server_set,
        wf = lease.workflow,
        uid = lease.holder,
        until = crate::api::kube_time(lease.until),
    )
}

/// Runs a compare-and-swap of the set that another workflow's lease
/// refuses: when it is refused, asks the cluster whether the holder still
/// runs; a finished holder's lease is free, and the change is tried again.
async fn guarded<F>(call: &Call<'_>, mut change: F) -> Result<GameServerSet, Outcome>
where
    F: FnMut(&GameServerSet, Timestamp) -> Result<Option<Value>, Outcome>,
{
    let mut finished: Option<String> = None;
    loop {
        let mut held = None;
        let result = super::cas::update(call, None, |gss| {
            let now = Timestamp::now();
            if let Some(lease) = held_by_other(gss, call, now, finished.as_deref())
                && !records(gss).contains_key(&call.fingerprint)
            {
                held = Some(lease);
                return Err(Outcome::Failed(String::new()));
            }
            change(gss, now)
        })
        .await;
        let Some(lease) = held.filter(|_| result.is_err()) else {
            return result;
        };
        match holder(&call.client, &lease).await {
            Holder::Finished(_) if finished.as_deref() != Some(lease.holder.as_str()) => {
                finished = Some(lease.holder.clone());
            }
            state => return Err(Outcome::Failed(refusal(call, &lease, &state))),
        }
    }
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
    let records = super::prune_by_age(records, now, RECORD_TTL, KEEP_RECORDS, |r| r.at);
    super::prune_to_size(records, BUDGET, |r| r.at)
}

/// The answer recorded for a call, given again to a repeat of it.
pub fn replay(done: &Record) -> Outcome {
    Outcome::Done {
        message: format!(
            "{} (already applied at {}; not applied again)",
            done.message,
            done.at.strftime("%H:%M:%SZ")
        ),
        outputs: done.outputs(),
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
    guarded(call, |gss, now| {
        if let Some(done) = records(gss).get(&call.fingerprint) {
            return Err(replay(done));
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
    let written = guarded(call, |gss, now| {
        let mut records = records(gss);
        if let Some(done) = records.get(&call.fingerprint) {
            return Err(replay(done));
        }
        let change = change(gss).map_err(Outcome::Failed)?;
        records.insert(
            call.fingerprint.clone(),
            Record::new(call.template, now, &change.message, &change.outputs),
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
        Record::new("t", at, "m", &BTreeMap::new())
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

    #[test]
    fn hundreds_of_answers_on_ten_thousand_servers_stay_within_the_budget() {
        let now = Timestamp::now();
        let mut records = BTreeMap::new();
        let mut last = BTreeMap::new();
        for call in 0..300u64 {
            // Every other server of 10,000, shifted per call: no two alike.
            let names: Vec<String> = (0..10_000u64)
                .filter(|o| (o + call) % 2 == 0)
                .map(|o| format!("minecraft-{o}"))
                .collect();
            let outputs = BTreeMap::from([
                ("count".to_owned(), names.len().to_string()),
                ("names".to_owned(), names.join(",")),
            ]);
            let message = format!(
                "set opsState Kill on {} servers: {}",
                names.len(),
                super::super::name_list::shortened(&names, 10)
            );
            let at = now - jiff::SignedDuration::from_secs(i64::try_from(300 - call).unwrap());
            records.insert(
                format!("call-{call}"),
                Record::new("t", at, &message, &outputs),
            );
            records = pruned(records, now);
            last = outputs;
        }
        let written = serde_json::to_string(&records).unwrap();
        assert!(written.len() <= BUDGET, "{} bytes", written.len());
        assert!(
            records.len() >= 20,
            "the newest answers are kept: {}",
            records.len()
        );
        // The newest answer replays exactly, names and all.
        assert_eq!(records["call-299"].outputs(), last);
    }
}
