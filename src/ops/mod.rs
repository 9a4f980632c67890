//! The release primitives behind the executor plugin: one file per op,
//! each talking to its cluster only through `kube::Api` (so the same code
//! serves the embedded fleet and a real cluster). Every op takes
//! `gameServerSet`, and optionally `namespace` (default: the workflow's) and
//! `cluster` (default: the first).

pub mod args;
pub mod cas;
pub mod check;
mod drain;
pub mod history;
pub mod ledger;
pub mod name_list;
pub mod okg_marks;
mod patch_image;
pub mod progress;
mod promote_tag;
pub mod readable;
mod remove_retired;
mod resolve_tag;
mod rollback;
mod scale;
pub mod select;
mod set_ops_state;
mod status;
pub mod table;
mod unlock;
mod values;
mod wait_ready;

use std::collections::BTreeMap;
use std::time::Duration;

use kube::Client;
use kube::api::Api;
use serde_json::Value;

use crate::api::GameServerSet;
use table::Op;

/// The JSON annotation `key` on `gss` read as a `T`: `None` when it is
/// absent or does not parse ([`readable`] names an unparsable one when an
/// op reads the set).
pub fn annotation_json<T: serde::de::DeserializeOwned>(
    gss: &GameServerSet,
    key: &str,
) -> Option<T> {
    serde_json::from_str(gss.metadata.annotations.as_ref()?.get(key)?).ok()
}

/// Who calls an op: the workflow, as Argo names it.
#[derive(Debug, Clone, Default)]
pub struct Caller {
    /// The workflow's name.
    pub name: String,
    /// Its namespace (the default namespace of every op).
    pub namespace: String,
    /// Its uid (identifies retries of the same step, and holds the lease).
    pub uid: String,
}

/// One call of an op.
pub struct Call<'a> {
    /// The calling workflow.
    pub workflow: &'a Caller,
    /// The calling template's name.
    pub template: &'a str,
    /// The target cluster's client.
    pub client: Client,
    /// The target cluster's GameServer cache, when the plugin keeps one.
    pub cache: Option<std::sync::Arc<crate::informer::ServerCache>>,
    /// The namespace of the set.
    pub namespace: String,
    /// The set.
    pub game_server_set: String,
    /// Identifies this call among retries: workflow uid, template, arguments.
    pub fingerprint: String,
}

/// How an op ended (for now).
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Done, with outputs.
    Done {
        /// For the Argo UI.
        message: String,
        /// Output parameters.
        outputs: BTreeMap<String, String>,
    },
    /// Not done yet: call again after `after`.
    Waiting {
        /// What it saw.
        message: String,
        /// When to call again.
        after: Duration,
    },
    /// A transient failure (the API server did not answer): call again soon.
    Retry(String),
    /// Failed for good, with what to fix.
    Failed(String),
}

/// An op's steps end early with `Err`: a failure, a retry or a wait is as
/// much an answer as `Ok`.
impl From<Result<Outcome, Outcome>> for Outcome {
    fn from(steps: Result<Outcome, Outcome>) -> Self {
        steps.unwrap_or_else(|outcome| outcome)
    }
}

/// FNV-1a over the parts that identify a call (and its repeats).
pub fn fingerprint(workflow_uid: &str, template: &str, op: &str, args: &Value) -> String {
    let args = args.to_string();
    let parts = [workflow_uid, template, op, &args];
    format!(
        "{:016x}",
        crate::api::hash::fnv1a_parts(parts.iter().map(|p| p.as_bytes()))
    )
}

/// Parses `value` without the keys in `skip` and without empty-string
/// arguments, naming the offending field on error. An argument that is
/// the empty string counts as not given: an Argo template cannot leave a
/// key out, so an optional parameter left empty
/// (`toImage: "{{inputs.parameters.toImage}}"`) arrives as `""`.
fn parse<T: serde::de::DeserializeOwned>(
    op: &str,
    value: &Value,
    skip: &[&str],
) -> Result<T, String> {
    let mut own = value.clone();
    if let Some(map) = own.as_object_mut() {
        map.retain(|k, v| {
            !skip.contains(&k.as_str()) && v.as_str().is_none_or(|s| !s.trim().is_empty())
        });
    }
    serde_json::from_value(own).map_err(|e| format!("plugin.gameops.{op}: {e}"))
}

/// The set a call targets. A missing set, a set the plugin may not read, a
/// field that cannot be read or an unreadable gameops annotation is a
/// failure naming what to fix; only a transient failure is retried.
async fn get_set(call: &Call<'_>) -> Result<GameServerSet, Outcome> {
    let api: Api<GameServerSet> = Api::namespaced(call.client.clone(), &call.namespace);
    let set = format!("GameServerSet {}/{}", call.namespace, call.game_server_set);
    let gss = match api.get_opt(&call.game_server_set).await {
        Ok(Some(gss)) => gss,
        Ok(None) => {
            return Err(Outcome::Failed(format!(
                "{set} does not exist: check gameServerSet and namespace in the template (kubectl get gss -n {})",
                call.namespace
            )));
        }
        Err(kube::Error::SerdeError(e)) => {
            let named = readable::name_field::<GameServerSet>(
                &call.client,
                &call.namespace,
                &call.game_server_set,
                "GameServerSet",
            )
            .await;
            return Err(
                named.unwrap_or_else(|| Outcome::Failed(format!("{set} cannot be read: {e}")))
            );
        }
        Err(e) => return Err(cas::failure(&format!("read {set}"), e)),
    };
    readable::bookkeeping(&gss)?;
    Ok(gss)
}

/// Keeps the entries of an annotation-held map younger than `ttl`, then at
/// most `keep` of them, the newest (`at` gives an entry's time).
fn prune_by_age<T>(
    mut entries: BTreeMap<String, T>,
    now: jiff::Timestamp,
    ttl: Duration,
    keep: usize,
    at: impl Fn(&T) -> jiff::Timestamp,
) -> BTreeMap<String, T> {
    let ttl = jiff::SignedDuration::try_from(ttl).unwrap_or(jiff::SignedDuration::MAX);
    entries.retain(|_, e| now.duration_since(at(e)) < ttl);
    if entries.len() > keep {
        let mut by_age: Vec<(jiff::Timestamp, String)> =
            entries.iter().map(|(k, e)| (at(e), k.clone())).collect();
        by_age.sort();
        let surplus = entries.len() - keep;
        for (_, k) in by_age.into_iter().take(surplus) {
            entries.remove(&k);
        }
    }
    entries
}

/// `entries` without the oldest (by `at`) while their JSON is longer than
/// `budget` bytes.
fn prune_to_size<T: serde::Serialize>(
    mut entries: BTreeMap<String, T>,
    budget: usize,
    at: impl Fn(&T) -> jiff::Timestamp,
) -> BTreeMap<String, T> {
    let size = |e: &BTreeMap<String, T>| serde_json::to_string(e).map_or(0, |s| s.len());
    while entries.len() > 1 && size(&entries) > budget {
        let oldest = entries
            .iter()
            .min_by_key(|(_, e)| at(e))
            .map(|(k, _)| k.clone());
        match oldest {
            Some(k) => entries.remove(&k),
            None => break,
        };
    }
    entries
}

/// Where the plugin can reach clusters.
pub trait Clusters {
    /// The client of `name`, or of the default cluster for `None`.
    fn client(&self, name: Option<&str>) -> Option<Client>;
    /// The names of every cluster, for messages.
    fn names(&self) -> Vec<String>;
    /// The GameServer cache of `name` (the default cluster for `None`), if
    /// there is one; without it the ops LIST the servers.
    fn cache(&self, _name: Option<&str>) -> Option<std::sync::Arc<crate::informer::ServerCache>> {
        None
    }
    /// The registries and environments of gameops.yaml, if configured.
    fn resolver(&self) -> Option<std::sync::Arc<crate::registry::Resolver>> {
        None
    }
}

/// Parses an op's arguments (without `skip`) and runs it, or fails
/// naming the bad field.
macro_rules! parsed {
    ($op:expr, $value:expr, $skip:expr, |$a:ident| $run:expr) => {
        match parse($op, $value, $skip) {
            Ok($a) => Outcome::from($run.await),
            Err(e) => Outcome::Failed(e),
        }
    };
}

/// The arguments of an op on a set that are not its own.
const COMMON: &[&str] = &[
    table::COMMON[0].name,
    table::COMMON[1].name,
    table::COMMON[2].name,
];

/// Runs a registry op.
async fn run_registry_op(clusters: &impl Clusters, op: Op, name: &str, value: &Value) -> Outcome {
    let Some(resolver) = clusters.resolver() else {
        return Outcome::Failed(format!(
            "plugin.gameops.{name} needs registries and environments: start the plugin with --config gameops.yaml"
        ));
    };
    // Registry ops take no set, so every key is their own.
    match op {
        Op::ResolveTag => parsed!(name, value, &[], |a| resolve_tag::run(&resolver, a)),
        _ => parsed!(name, value, &[], |a| promote_tag::run(&resolver, a)),
    }
}

/// The call an op on a set makes: its set, cluster and namespace, from the
/// common arguments; or why there is none.
fn target<'a>(
    clusters: &impl Clusters,
    workflow: &'a Caller,
    template: &'a str,
    op: &str,
    value: &Value,
) -> Result<Call<'a>, Outcome> {
    let mut common = value.clone();
    if let Some(map) = common.as_object_mut() {
        map.retain(|k, _| COMMON.contains(&k.as_str()));
    }
    let target: table::Common = serde_json::from_value(common)
        .map_err(|e| Outcome::Failed(format!("plugin.gameops.{op}: {e}")))?;
    let Some(set) = target.game_server_set.filter(|s| !s.is_empty()) else {
        return Err(Outcome::Failed(format!(
            "plugin.gameops.{op}.gameServerSet is missing: name the GameServerSet to act on"
        )));
    };
    let Some(client) = clusters.client(target.cluster.as_deref()) else {
        return Err(Outcome::Failed(format!(
            "plugin.gameops.{op}.cluster {:?} is not a cluster this plugin knows; known: {}",
            target.cluster.unwrap_or_default(),
            clusters.names().join(", ")
        )));
    };
    let namespace = target
        .namespace
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| workflow.namespace.clone());
    Ok(Call {
        workflow,
        template,
        client,
        cache: clusters.cache(target.cluster.as_deref()),
        namespace,
        game_server_set: set,
        fingerprint: fingerprint(&workflow.uid, template, op, value),
    })
}

/// Runs `op` with `value` (`plugin.gameops.<op>`) for a workflow's template.
pub async fn run(
    clusters: &impl Clusters,
    workflow: &Caller,
    template: &str,
    op: &str,
    value: &Value,
) -> Outcome {
    if !value.is_object() {
        return Outcome::Failed(format!(
            "plugin.gameops.{op} must be an object of arguments, e.g. {{\"gameServerSet\": \"minecraft\"}}"
        ));
    }
    let spec = table::find(op);
    if let Some(spec) = spec.filter(|s| !s.on_set) {
        return run_registry_op(clusters, spec.op, op, value).await;
    }
    let call = match target(clusters, workflow, template, op, value) {
        Ok(call) => call,
        Err(outcome) => return outcome,
    };
    let Some(spec) = spec else {
        return Outcome::Failed(format!(
            "plugin.gameops.{op} is not an op; the ops are {}",
            table::listing()
        ));
    };
    let call = &call;
    match spec.op {
        Op::PatchImage => parsed!(op, value, COMMON, |a| patch_image::run(call, a)),
        Op::Scale => parsed!(op, value, COMMON, |a| scale::run(call, a)),
        Op::WaitReady => parsed!(op, value, COMMON, |a| wait_ready::run(call, a)),
        Op::SetOpsState => parsed!(op, value, COMMON, |a| set_ops_state::run(call, a)),
        Op::Drain => parsed!(op, value, COMMON, |a| drain::run(call, a)),
        Op::Rollback => parsed!(op, value, COMMON, |a| rollback::run(call, a)),
        Op::Status => parsed!(op, value, COMMON, |a| status::run(call, a)),
        Op::Unlock => parsed!(op, value, COMMON, |a| unlock::run(call, a)),
        Op::RemoveRetired => parsed!(op, value, COMMON, |a| remove_retired::run(call, a)),
        Op::ResolveTag | Op::PromoteTag => run_registry_op(clusters, spec.op, op, value).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use serde_json::json;

    #[test]
    fn fingerprints_separate_calls_and_match_retries() {
        let a = fingerprint("uid", "scale-up", "scale", &json!({"delta": 3}));
        assert_eq!(
            a,
            fingerprint("uid", "scale-up", "scale", &json!({"delta": 3}))
        );
        assert_ne!(
            a,
            fingerprint("uid2", "scale-up", "scale", &json!({"delta": 3}))
        );
        assert_ne!(
            a,
            fingerprint("uid", "scale-down", "scale", &json!({"delta": 3}))
        );
        assert_ne!(
            a,
            fingerprint("uid", "scale-up", "scale", &json!({"delta": 4}))
        );
    }

    #[test]
    fn op_arguments_name_the_bad_field() {
        #[derive(Debug, Deserialize)]
        #[serde(deny_unknown_fields)]
        struct A {
            #[allow(dead_code)]
            replicas: Option<i32>,
        }
        let e = parse::<A>(
            "scale",
            &json!({"gameServerSet": "m", "replica": 3}),
            COMMON,
        )
        .unwrap_err();
        assert!(
            e.contains("plugin.gameops.scale") && e.contains("replica"),
            "{e}"
        );
        let e = parse::<A>(
            "scale",
            &json!({"gameServerSet": "m", "replicas": "three"}),
            COMMON,
        )
        .unwrap_err();
        assert!(e.contains("invalid type"), "{e}");
    }

    #[test]
    fn empty_strings_are_arguments_not_given() {
        #[derive(Debug, Deserialize, PartialEq)]
        #[serde(deny_unknown_fields, rename_all = "camelCase")]
        struct A {
            to_image: Option<String>,
            #[serde(default, deserialize_with = "values::integer")]
            delta: Option<i64>,
        }
        let a = parse::<A>("rollback", &json!({"toImage": " ", "delta": ""}), COMMON).unwrap();
        assert_eq!(
            a,
            A {
                to_image: None,
                delta: None
            }
        );
        let a = parse::<A>("scale", &json!({"toImage": "mc:1", "delta": "-2"}), COMMON).unwrap();
        assert_eq!(
            a,
            A {
                to_image: Some("mc:1".into()),
                delta: Some(-2)
            }
        );
    }
}
