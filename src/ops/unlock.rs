//! `unlock`: frees the set from the calling workflow's lease
//! (`gameops.io/lease`), so that the next workflow (a rollback right after a
//! release) is not refused. Every shipped template calls it from its exit
//! handler. Idempotent: a set with no lease, or another workflow's lease,
//! is left as it is (another workflow's lease is that workflow's to free).
//! With `outcome` (`"{{workflow.status}}"` in an exit handler) it also
//! records how the workflow ended in its entries of the set's image
//! history ([`super::history`]), in the same patch. Outputs `freed`
//! (`true` when this call removed the lease).

use std::collections::BTreeMap;

use serde_json::json;

use super::history;
use super::ledger::{LEASE_ANNOTATION, lease};
use super::{Call, Outcome};

use super::table::UnlockArgs as Args;

/// Runs the op.
pub async fn run(call: &Call<'_>, args: Args) -> Result<Outcome, Outcome> {
    let set = format!("{}/{}", call.namespace, call.game_server_set);
    let outcome = args
        .outcome
        .as_deref()
        .map(str::trim)
        .filter(|o| !o.is_empty());
    let mut other = None;
    let mut freed = false;
    let mut recorded = false;
    super::cas::update(call, None, |gss| {
        other = None;
        freed = false;
        recorded = false;
        let mut patch = json!({});
        match lease(gss) {
            Some(l) if l.holder == call.workflow.uid => {
                freed = true;
                patch = json!({"metadata": {"annotations": {LEASE_ANNOTATION: null}}});
            }
            Some(l) => other = Some(l.workflow),
            None => {}
        }
        let now = jiff::Timestamp::now();
        if let Some(h) = outcome
            .and_then(|o| history::concluded(history::history(gss), &call.workflow.uid, o, now))
        {
            recorded = true;
            json_patch::merge(&mut patch, &history::patch(&h).map_err(Outcome::Failed)?);
        }
        Ok((freed || recorded).then_some(patch))
    })
    .await?;
    let message = match (freed, other) {
        (true, _) => format!("freed {set} from this workflow's lease"),
        (false, Some(holder)) => {
            format!("{set} is held by workflow {holder}, not this one: left as it is")
        }
        (false, None) => format!("{set} holds no lease: nothing to free"),
    };
    let message = match (recorded, outcome) {
        (true, Some(o)) => format!("{message}; recorded outcome {o} in its image history"),
        _ => message,
    };
    Ok(Outcome::Done {
        message,
        outputs: BTreeMap::from([("freed".to_owned(), freed.to_string())]),
    })
}
