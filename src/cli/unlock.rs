//! `gameops unlock SET [--force]`: frees a set's release lease
//! (`gameops.io/lease`) after saying who holds it and whether that
//! workflow still runs. A holder that has finished, or a lease that has
//! lapsed, is freed; a holder that still runs (or that the cluster cannot
//! tell about) is refused unless `--force`. The holder's open image
//! history entries get its final phase (or `Unlocked`) in the same patch.

use jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use serde_json::{Value, json};

use super::target::TargetArgs;
use crate::api::GameServerSet;
use crate::ops::history;
use crate::ops::ledger::{self, Holder, LEASE_ANNOTATION, Lease};

/// The outcome recorded for a holder freed while it may still run.
const UNLOCKED: &str = "Unlocked";
/// Compare-and-swap attempts when other writers race.
const ATTEMPTS: usize = 5;

/// `gameops unlock`.
#[derive(clap::Args)]
pub struct UnlockArgs {
    /// The GameServerSet.
    pub set: String,
    /// Free it even when its workflow still runs (or nobody can tell).
    #[arg(long)]
    pub force: bool,
    /// The cluster and namespace.
    #[command(flatten)]
    pub target: TargetArgs,
}

/// What to do with a lease.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Free it, recording this outcome for the holder's changes.
    Free(String),
    /// Leave it, for this reason.
    Refuse(String),
}

/// Whether `lease`, whose workflow is in `state`, may be freed at `now`.
pub fn verdict(lease: &Lease, state: &Holder, force: bool, now: Timestamp) -> Verdict {
    let lapsed = lease.until <= now;
    match state {
        Holder::Finished(phase) => Verdict::Free(phase.clone()),
        _ if lapsed || force => Verdict::Free(UNLOCKED.to_owned()),
        Holder::Running(phase) => {
            let (ns, name) = lease
                .workflow
                .split_once('/')
                .unwrap_or(("default", &lease.workflow));
            Verdict::Refuse(format!(
                "workflow {} still runs (phase {phase}); wait for it, stop it (argo stop {name} -n {ns}), or pass --force to free the set anyway",
                lease.workflow
            ))
        }
        Holder::Unknown(why) => Verdict::Refuse(format!(
            "whether workflow {} still runs cannot be told here ({why}); if you know it has stopped, pass --force",
            lease.workflow
        )),
    }
}

/// Says what the holder's state is, for people.
fn described(state: &Holder) -> String {
    match state {
        Holder::Running(phase) => format!("still runs (phase {phase})"),
        Holder::Finished(phase) => format!("has finished ({phase})"),
        Holder::Unknown(why) => format!("may still run (the cluster cannot tell: {why})"),
    }
}

/// The patch freeing `gss` from the lease of `uid` and recording `outcome`
/// for its open history entries, guarded by the set's resourceVersion.
fn freeing(gss: &GameServerSet, uid: &str, outcome: &str) -> Result<Value, String> {
    let mut patch = json!({"metadata": {
        "resourceVersion": gss.metadata.resource_version,
        "annotations": {LEASE_ANNOTATION: null},
    }});
    if let Some(h) = history::concluded(history::history(gss), uid, outcome, Timestamp::now()) {
        json_patch::merge(&mut patch, &history::patch(&h)?);
    }
    Ok(patch)
}

/// Runs `gameops unlock`.
pub async fn run(a: UnlockArgs) -> Result<(), String> {
    let (client, namespace) = a.target.connect().await?;
    let set = format!("{namespace}/{}", a.set);
    let api: Api<GameServerSet> = Api::namespaced(client.clone(), &namespace);
    for _ in 0..ATTEMPTS {
        let gss = super::target::get_set(&client, &namespace, &a.set).await?;
        let Some(lease) = ledger::lease(&gss) else {
            println!("GameServerSet {set} holds no lease: nothing to free.");
            return Ok(());
        };
        let state = ledger::holder(&client, &lease).await;
        println!(
            "GameServerSet {set} is held by workflow {} (uid {}) until {}; that workflow {}.",
            lease.workflow,
            lease.holder,
            super::status::clock(lease.until),
            described(&state)
        );
        let outcome = match verdict(&lease, &state, a.force, Timestamp::now()) {
            Verdict::Refuse(why) => return Err(format!("not freed: {why}")),
            Verdict::Free(outcome) => outcome,
        };
        let patch = freeing(&gss, &lease.holder, &outcome)?;
        match api
            .patch(&a.set, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => {
                println!("Freed GameServerSet {set}: the next release may start.");
                if matches!(state, Holder::Running(_) | Holder::Unknown(_)) {
                    println!(
                        "If workflow {} is still running, its next step takes the set again; stop it first if it must not.",
                        lease.workflow
                    );
                }
                return Ok(());
            }
            Err(kube::Error::Api(e)) if e.code == 409 => {}
            Err(e) => return Err(format!("cannot free GameServerSet {set}: {e}")),
        }
    }
    Err(format!(
        "GameServerSet {set} kept changing while it was being freed ({ATTEMPTS} tries); try again"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(until: &str) -> Lease {
        Lease {
            holder: "u1".into(),
            workflow: "games/release-1".into(),
            until: until.parse().unwrap(),
        }
    }

    #[test]
    fn a_live_holder_is_refused_unless_forced() {
        let now: Timestamp = "2026-12-01T10:00:00Z".parse().unwrap();
        let l = lease("2026-12-01T10:10:00Z");
        let running = Holder::Running("Running".into());
        match verdict(&l, &running, false, now) {
            Verdict::Refuse(why) => {
                assert!(why.contains("argo stop release-1 -n games"), "{why}");
                assert!(why.contains("--force"), "{why}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            verdict(&l, &running, true, now),
            Verdict::Free("Unlocked".into())
        );
        let unknown = Holder::Unknown("no Workflow resource".into());
        assert!(matches!(
            verdict(&l, &unknown, false, now),
            Verdict::Refuse(_)
        ));
        assert_eq!(
            verdict(&l, &Holder::Finished("Failed".into()), false, now),
            Verdict::Free("Failed".into())
        );
        // A lapsed lease binds nobody.
        let lapsed = lease("2026-12-01T09:59:00Z");
        assert_eq!(
            verdict(&lapsed, &unknown, false, now),
            Verdict::Free("Unlocked".into())
        );
    }
}
