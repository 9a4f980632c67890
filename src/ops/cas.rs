//! The one compare-and-swap on a GameServerSet, and the one reading of a
//! failed API call that every op shares.
//!
//! [`update`] reads the set, asks a pure change what to write, and writes
//! it as a merge patch carrying the resourceVersion it was read at; on a
//! `409 Conflict` (someone wrote the set meanwhile) it reads again and asks
//! again, at most [`ATTEMPTS`] times. [`classify`] sorts any failed call to
//! the API server into a conflict, a missing object, a refusal (trying
//! again cannot help: the step fails, saying what to fix) or a transient
//! failure (trying later may: the plugin retries it a bounded number of
//! times, see `argo::plugin`).

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

/// Where the plugin's permissions are declared, for messages.
pub const RBAC_FILE: &str = "manifests/rbac-executor-plugin.yaml";

/// What a failed call to the API server means for the caller.
#[derive(Debug)]
pub enum WriteError {
    /// `409`: the object changed since it was read; read it again.
    Conflict,
    /// `404`: the object is gone.
    Gone,
    /// The API server refuses this request for good (`400`, `401`, `403`,
    /// `422`, ...), or answered what cannot be read: the same request
    /// will fail again. The cause and the fix, in a sentence.
    Refused(String),
    /// The network, a timeout, `429`, `500`, `502`, `503`, `504`: trying
    /// again later may help. What happened.
    Transient(String),
}

/// A `403` of kube-apiserver's RBAC authorizer, read from its Status
/// message (k8s.io/apiserver `pkg/endpoints/handlers/responsewriters/
/// errors.go` `forbiddenMessage`): `User "u" cannot patch resource
/// "gameserversets" in API group "game.kruise.io" in the namespace
/// "default"` (or `at the cluster scope`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forbidden {
    /// Who asked (`system:serviceaccount:argo:gameops-executor-plugin`).
    pub user: String,
    /// The verb it lacks (`patch`).
    pub verb: String,
    /// The resource, with its subresource (`gameserversets/scale`).
    pub resource: String,
    /// The API group (`""` for the core group).
    pub group: String,
    /// The namespace, `None` at the cluster scope.
    pub namespace: Option<String>,
}

/// The quoted text that follows `after` in `text`, and the rest.
fn quoted_after<'a>(text: &'a str, after: &str) -> Option<(&'a str, &'a str)> {
    let start = text.find(after)? + after.len();
    let rest = text.get(start..)?.strip_prefix('"')?;
    let end = rest.find('"')?;
    Some((&rest[..end], &rest[end + 1..]))
}

/// Reads an RBAC refusal (see [`Forbidden`]); `None` for any other text.
pub fn forbidden(message: &str) -> Option<Forbidden> {
    let (user, rest) = quoted_after(message, "User ")?;
    let rest = rest.strip_prefix(" cannot ")?;
    let (verb, rest) = rest.split_once(' ')?;
    let (resource, rest) = quoted_after(rest, "resource ")?;
    let (group, rest) = quoted_after(rest, " in API group ")?;
    let namespace = quoted_after(rest, " in the namespace ").map(|(ns, _)| ns.to_owned());
    Some(Forbidden {
        user: user.to_owned(),
        verb: verb.to_owned(),
        resource: resource.to_owned(),
        group: group.to_owned(),
        namespace,
    })
}

/// The sentence for a `403`: the verb and resource missing, and where to
/// grant them.
fn forbidden_sentence(message: &str) -> String {
    match forbidden(message) {
        Some(f) => {
            let group = if f.group.is_empty() {
                "the core API group".to_owned()
            } else {
                format!("API group {}", f.group)
            };
            let scope = f.namespace.as_deref().map_or_else(
                || "cluster-wide".to_owned(),
                |ns| format!("in namespace {ns}"),
            );
            format!(
                "the plugin's credentials ({user}) may not {verb} {resource} ({group}) {scope}: add verb \"{verb}\" on resource \"{resource}\" (apiGroups [\"{g}\"]) to the Role in {RBAC_FILE}, apply it to that namespace and check its RoleBinding names this ServiceAccount (kubectl auth can-i {verb} {resource} --as={user}{ns_flag}). The API server said: {message}",
                user = f.user,
                verb = f.verb,
                resource = f.resource,
                g = f.group,
                ns_flag = f
                    .namespace
                    .as_deref()
                    .map(|ns| format!(" -n {ns}"))
                    .unwrap_or_default(),
            )
        }
        None => format!(
            "the API server forbids it (403): {message}; grant the plugin's ServiceAccount what it lacks in {RBAC_FILE}"
        ),
    }
}

/// The sentence for a `422`/`400`: what the API server said, and for the
/// limits kube-apiserver enforces on every object, what to do.
fn invalid_sentence(code: u16, reason: &str, message: &str) -> String {
    let fix = if message.contains("metadata.annotations: Too long") {
        "; the object's annotations together exceed kube-apiserver's 256 KiB limit: remove large annotations someone else put there (kubectl annotate ... KEY-)"
    } else {
        ""
    };
    format!("the API server refused it ({code} {reason}): {message}{fix}")
}

/// Sorts a failed call to the API server (see [`WriteError`]). This is the
/// one place that decides what is worth retrying.
pub fn classify(error: kube::Error) -> WriteError {
    match error {
        kube::Error::Api(e) => match e.code {
            409 => WriteError::Conflict,
            404 => WriteError::Gone,
            429 | 500 | 502 | 503 | 504 => WriteError::Transient(format!(
                "the API server answered {} {}: {}",
                e.code, e.reason, e.message
            )),
            401 => WriteError::Refused(format!(
                "the API server does not accept the plugin's credentials (401 {}): {}; check the kubeconfig or --cluster given to the plugin, or that plugin.yaml sets automountServiceAccountToken: true and the ServiceAccount token Secret exists",
                e.reason, e.message
            )),
            403 => WriteError::Refused(forbidden_sentence(&e.message)),
            code => WriteError::Refused(invalid_sentence(code, &e.reason, &e.message)),
        },
        // The connection: refused, reset, timed out, TLS over a flaky link.
        kube::Error::HyperError(e) => {
            WriteError::Transient(format!("the API server did not answer: {e}"))
        }
        kube::Error::Service(e) => {
            WriteError::Transient(format!("the API server did not answer: {e}"))
        }
        kube::Error::ReadEvents(e) => {
            WriteError::Transient(format!("the API server's answer broke off: {e}"))
        }
        kube::Error::SerdeError(e) => {
            WriteError::Refused(format!("the API server's answer cannot be read: {e}"))
        }
        other => WriteError::Refused(format!("the request cannot be made: {other}")),
    }
}

/// The answer to a failed call `what` (e.g. `read GameServerSet ns/x`):
/// a transient failure is retried, anything else fails the step.
pub fn failure(what: &str, error: kube::Error) -> Outcome {
    match classify(error) {
        WriteError::Transient(cause) => Outcome::Retry(format!("could not {what}: {cause}")),
        WriteError::Conflict => Outcome::Retry(format!(
            "could not {what}: it kept changing under this call"
        )),
        WriteError::Gone => Outcome::Failed(format!("could not {what}: it does not exist")),
        WriteError::Refused(cause) => Outcome::Failed(format!("could not {what}: {cause}")),
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
            Err(WriteError::Refused(cause)) => {
                return Err(Outcome::Failed(format!("could not write {set}: {cause}")));
            }
            Err(WriteError::Gone) => {
                return Err(Outcome::Failed(format!(
                    "could not write {set}: it was deleted while this call changed it"
                )));
            }
            Err(WriteError::Transient(cause)) => {
                return Err(Outcome::Retry(format!("could not write {set}: {cause}")));
            }
        }
    }
    Err(Outcome::Retry(format!(
        "{set} kept changing under this call ({ATTEMPTS} conflicting writes in a row)"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(code: u16, reason: &str, message: &str) -> kube::Error {
        kube::Error::Api(Box::new(kube::core::Status {
            code,
            reason: reason.into(),
            message: message.into(),
            ..Default::default()
        }))
    }

    const FORBIDDEN: &str = "gameserversets.game.kruise.io \"minecraft\" is forbidden: User \"system:serviceaccount:argo:gameops-executor-plugin\" cannot patch resource \"gameserversets\" in API group \"game.kruise.io\" in the namespace \"default\"";

    #[test]
    fn reads_an_rbac_refusal() {
        assert_eq!(
            forbidden(FORBIDDEN),
            Some(Forbidden {
                user: "system:serviceaccount:argo:gameops-executor-plugin".into(),
                verb: "patch".into(),
                resource: "gameserversets".into(),
                group: "game.kruise.io".into(),
                namespace: Some("default".into()),
            })
        );
        let cluster = "nodes is forbidden: User \"u\" cannot list resource \"nodes\" in API group \"\" at the cluster scope";
        let f = forbidden(cluster).unwrap();
        assert_eq!(
            (f.verb.as_str(), f.group.as_str(), f.namespace),
            ("list", "", None)
        );
        assert_eq!(forbidden("forbidden: no"), None);
    }

    #[test]
    fn only_transient_failures_are_retried() {
        for code in [429, 500, 502, 503, 504] {
            assert!(
                matches!(classify(api(code, "x", "m")), WriteError::Transient(_)),
                "{code}"
            );
        }
        for code in [400, 401, 403, 405, 413, 415, 422] {
            assert!(
                matches!(classify(api(code, "x", "m")), WriteError::Refused(_)),
                "{code}"
            );
        }
        assert!(matches!(
            classify(api(409, "Conflict", "m")),
            WriteError::Conflict
        ));
        assert!(matches!(
            classify(api(404, "NotFound", "m")),
            WriteError::Gone
        ));
        let WriteError::Refused(m) = classify(api(403, "Forbidden", FORBIDDEN)) else {
            panic!("403 is refused");
        };
        assert!(
            m.contains("may not patch gameserversets") && m.contains(RBAC_FILE),
            "{m}"
        );
        let bad = serde_json::from_str::<i32>("3000000000").unwrap_err();
        assert!(matches!(
            classify(kube::Error::SerdeError(bad)),
            WriteError::Refused(_)
        ));
    }
}
