//! `unlock`: frees the set from the calling workflow's lease
//! (`gameops.io/lease`), so that the next workflow (a rollback right after a
//! release) is not refused. Every shipped template calls it from its exit
//! handler. Idempotent: a set with no lease, or another workflow's lease,
//! is left as it is (another workflow's lease is that workflow's to free).
//! Outputs `freed` (`true` when this call removed the lease).

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::json;

use super::ledger::{LEASE_ANNOTATION, lease};
use super::{Call, Outcome};

/// `plugin.gameops.unlock` takes only the common arguments.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Args {}

/// Runs the op.
pub async fn run(call: &Call<'_>, _args: Args) -> Outcome {
    let set = format!("{}/{}", call.namespace, call.game_server_set);
    let mut other = None;
    let mut freed = false;
    let written = super::cas::update(call, None, |gss| {
        other = None;
        freed = false;
        match lease(gss) {
            Some(l) if l.holder == call.workflow.uid => {
                freed = true;
                Ok(Some(
                    json!({"metadata": {"annotations": {LEASE_ANNOTATION: null}}}),
                ))
            }
            Some(l) => {
                other = Some(l.workflow);
                Ok(None)
            }
            None => Ok(None),
        }
    })
    .await;
    if let Err(outcome) = written {
        return outcome;
    }
    let message = match (freed, other) {
        (true, _) => format!("freed {set} from this workflow's lease"),
        (false, Some(holder)) => {
            format!("{set} is held by workflow {holder}, not this one: left as it is")
        }
        (false, None) => format!("{set} holds no lease: nothing to free"),
    };
    Outcome::Done {
        message,
        outputs: BTreeMap::from([("freed".to_owned(), freed.to_string())]),
    }
}
