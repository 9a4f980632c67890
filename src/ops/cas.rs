//! The one compare-and-swap on a GameServerSet, and the one reading of a
//! failed write that every op shares.
//!
//! [`update`] reads the set, asks a pure change what to write, and writes
//! it as a merge patch carrying the resourceVersion it was read at; on a
//! `409 Conflict` (someone wrote the set meanwhile) it reads again and asks
//! again, at most [`ATTEMPTS`] times. [`classify`] sorts a failed write into
//! a conflict, a missing object, a refusal (the request itself is wrong:
//! trying again cannot help) or a transient failure (trying later may).

use kube::api::{Api, Patch, PatchParams};
use serde_json::{Value, json};

use super::{Call, Outcome};
use crate::api::GameServerSet;

/// Patch parameters of every write the plugin makes: attributed to
/// `gameops-plugin` in managedFields.
pub fn plugin_params() -> PatchParams {
    PatchParams {
        field_manager: Some("gameops-plugin".into()),
        ..Default::default()
    }
}

/// Compare-and-swap attempts before giving up on a busy object.
pub const ATTEMPTS: usize = 16;

/// What a failed write means for the caller.
#[derive(Debug)]
pub enum WriteError {
    /// `409`: the object changed since it was read; read it again.
    Conflict,
    /// `404`: the object is gone.
    Gone,
    /// `400`, `403`, `422`: the API server refuses this change (its
    /// message); the same request will fail again.
    Refused(String),
    /// Anything else (the network, a timeout, a `5xx`): try again later.
    Transient(kube::Error),
}

/// Sorts a failed write (see [`WriteError`]).
pub fn classify(error: kube::Error) -> WriteError {
    match error {
        kube::Error::Api(e) if e.code == 409 => WriteError::Conflict,
        kube::Error::Api(e) if e.code == 404 => WriteError::Gone,
        kube::Error::Api(e) if matches!(e.code, 400 | 403 | 422) => WriteError::Refused(e.message),
        other => WriteError::Transient(other),
    }
}

/// Writes what `change` asks of the call's GameServerSet, starting from
/// `read` (or a fresh GET) and reading again on a conflict. `change` gives
/// a merge patch, `None` to write nothing, or `Err` with the answer to give
/// instead. Returns the set as written (or as read, when nothing was).
pub async fn update<F>(
    call: &Call<'_>,
    read: Option<GameServerSet>,
    mut change: F,
) -> Result<GameServerSet, Outcome>
where
    F: FnMut(&GameServerSet) -> Result<Option<Value>, Outcome>,
{
    let api: Api<GameServerSet> = Api::namespaced(call.client.clone(), &call.namespace);
    let set = format!("GameServerSet {}/{}", call.namespace, call.game_server_set);
    let mut read = read;
    for _ in 0..ATTEMPTS {
        let gss = match read.take() {
            Some(gss) => gss,
            None => super::get_set(call).await?,
        };
        let Some(mut patch) = change(&gss)? else {
            return Ok(gss);
        };
        json_patch::merge(
            &mut patch,
            &json!({"metadata": {"resourceVersion": gss.metadata.resource_version}}),
        );
        let written = api
            .patch(
                &call.game_server_set,
                &plugin_params(),
                &Patch::Merge(&patch),
            )
            .await;
        match written.map_err(classify) {
            Ok(written) => return Ok(written),
            Err(WriteError::Conflict) => {}
            Err(WriteError::Refused(message)) => {
                return Err(Outcome::Failed(format!(
                    "the API server refused the change to {set}: {message}"
                )));
            }
            Err(WriteError::Gone) => {
                return Err(Outcome::Retry(format!(
                    "could not write {set}: it was deleted meanwhile"
                )));
            }
            Err(WriteError::Transient(e)) => {
                return Err(Outcome::Retry(format!("could not write {set}: {e}")));
            }
        }
    }
    Err(Outcome::Retry(format!(
        "{set} kept changing under this call; trying again"
    )))
}
