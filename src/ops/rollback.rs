//! `rollback`: restore an image from the set's image history (see
//! `patchImage`): `steps` back (default 1: the image before the last
//! change), or the newest entry matching `toImage`, of `container` (default:
//! the template's first). It goes the same way as `patchImage` (one
//! idempotent, leased patch) and so records the image it replaces: a
//! second `rollback` returns to where the first started. Outputs `image`,
//! `previousImage` and `revision`.

use jiff::Timestamp;

use super::history::{self, HistoryEntry};
use super::ledger::{self, Change};
use super::patch_image;
use super::{Call, Caller, Outcome};
use crate::api::{GameServerSet, images_match};

use super::table::RollbackArgs as Args;

fn listing(entries: &[&HistoryEntry]) -> String {
    entries
        .iter()
        .rev()
        .map(|e| e.image.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Arguments wrong whatever the history holds.
fn check(args: &Args) -> Result<(), String> {
    match (args.to_image.as_deref().map(str::trim), args.steps) {
        (Some(_), Some(_)) => Err(
            "plugin.gameops.rollback takes toImage (an image from the history) or steps (how many changes back), not both".into(),
        ),
        (None, Some(0)) => Err(
            "plugin.gameops.rollback.steps must be at least 1 (1: the image before the last change)".into(),
        ),
        _ => Ok(()),
    }
}

/// The image `args` restores from `gss`'s history, for container `name`.
fn target(gss: &GameServerSet, name: &str, args: &Args) -> Result<String, String> {
    let history = history::history(gss);
    let entries: Vec<&HistoryEntry> = history.iter().filter(|e| e.container == name).collect();
    let set = gss.metadata.name.as_deref().unwrap_or("");
    check(args)?;
    if entries.is_empty() {
        return Err(format!(
            "GameServerSet {set} has no image history for container {name} (annotation {}; patchImage records it): there is nothing to roll back to",
            history::HISTORY_ANNOTATION
        ));
    }
    match (args.to_image.as_deref().map(str::trim), args.steps) {
        (Some(to), _) => entries
            .iter()
            .rev()
            .find(|e| images_match(to, &e.image))
            .map(|e| e.image.clone())
            .ok_or_else(|| {
                format!(
                    "plugin.gameops.rollback.toImage {to} is not in the image history of {set}/{name}; the history, newest first: {}",
                    listing(&entries)
                )
            }),
        (None, steps) => {
            let steps = steps.unwrap_or(super::table::ROLLBACK_STEPS);
            let index = usize::try_from(steps)
                .ok()
                .filter(|s| *s >= 1)
                .and_then(|s| entries.len().checked_sub(s));
            match index {
                Some(i) => Ok(entries[i].image.clone()),
                None => Err(format!(
                    "plugin.gameops.rollback.steps {steps} goes back further than the image history of {set}/{name} holds ({} entries, newest first: {})",
                    entries.len(),
                    listing(&entries)
                )),
            }
        }
    }
}

/// The change rolling `gss` back as `args` asks, at `now`.
fn change(gss: &GameServerSet, args: &Args, by: &Caller, now: Timestamp) -> Result<Change, String> {
    let (_, name, _) = patch_image::container(gss, args.container.as_deref(), "rollback")?;
    let image = target(gss, &name, args)?;
    let mut change = patch_image::set_image(gss, Some(&name), &image, ("rollback", by), now)?;
    change.message = format!("rollback: {}", change.message);
    change.outputs.insert("image".to_owned(), image);
    Ok(change)
}

/// Runs the op.
pub async fn run(call: &Call<'_>, args: Args) -> Outcome {
    if let Err(e) = check(&args) {
        return Outcome::Failed(e);
    }
    ledger::mutate(call, |gss| {
        change(gss, &args, call.workflow, Timestamp::now())
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::patch_image::tests::{caller, gss};

    fn with_history(images: &[&str]) -> GameServerSet {
        let mut set = gss(&[("minecraft", "mc:4"), ("sidecar", "envoy:1")]);
        let mut history: Vec<HistoryEntry> = images
            .iter()
            .map(|i| HistoryEntry {
                container: "minecraft".into(),
                image: (*i).into(),
                at: Timestamp::UNIX_EPOCH,
                ..HistoryEntry::default()
            })
            .collect();
        history.insert(
            1,
            HistoryEntry {
                container: "sidecar".into(),
                image: "envoy:0".into(),
                at: Timestamp::UNIX_EPOCH,
                ..HistoryEntry::default()
            },
        );
        set.metadata.annotations = Some(
            [(
                history::HISTORY_ANNOTATION.to_owned(),
                serde_json::to_string(&history).unwrap(),
            )]
            .into(),
        );
        set
    }

    fn args(to_image: Option<&str>, steps: Option<u64>) -> Args {
        Args {
            to_image: to_image.map(str::to_owned),
            steps,
            container: None,
        }
    }

    #[test]
    fn restores_by_steps_or_by_image() {
        let set = with_history(&["mc:1", "mc:2", "mc:3"]);
        let now = Timestamp::UNIX_EPOCH;
        let c = change(&set, &args(None, None), &caller(), now).unwrap();
        assert_eq!(c.outputs["image"], "mc:3");
        assert_eq!(c.outputs["previousImage"], "mc:4");
        assert_eq!(
            change(&set, &args(None, Some(3)), &caller(), now)
                .unwrap()
                .outputs["image"],
            "mc:1"
        );
        assert_eq!(
            change(&set, &args(Some("mc:2"), None), &caller(), now)
                .unwrap()
                .outputs["image"],
            "mc:2"
        );
        let sidecar = Args {
            container: Some("sidecar".into()),
            ..Args::default()
        };
        assert_eq!(
            change(&set, &sidecar, &caller(), now).unwrap().outputs["image"],
            "envoy:0"
        );
        // The replaced image joins the history: rolling back again returns.
        let h: Vec<HistoryEntry> = serde_json::from_str(
            c.patch["metadata"]["annotations"][history::HISTORY_ANNOTATION]
                .as_str()
                .unwrap(),
        )
        .unwrap();
        assert_eq!(h.last().map(|e| e.image.as_str()), Some("mc:4"));
    }

    #[test]
    fn a_rollback_marks_its_own_workflows_release_rolled_back() {
        let mut set = with_history(&["mc:1"]);
        let now = Timestamp::UNIX_EPOCH;
        let release =
            crate::ops::patch_image::set_image(&set, None, "mc:5", ("patchImage", &caller()), now)
                .unwrap();
        let mut annotations = set.metadata.annotations.take().unwrap_or_default();
        annotations.insert(
            history::HISTORY_ANNOTATION.to_owned(),
            release.patch["metadata"]["annotations"][history::HISTORY_ANNOTATION]
                .as_str()
                .unwrap()
                .to_owned(),
        );
        set.metadata.annotations = Some(annotations);
        if let Some(s) = set
            .spec
            .game_server_template
            .as_mut()
            .and_then(|t| t.pod_template.spec.as_mut())
        {
            s.containers[0].image = Some("mc:5".into());
        }
        let later = now + jiff::SignedDuration::from_secs(30);
        let c = change(&set, &args(None, None), &caller(), later).unwrap();
        let h: Vec<HistoryEntry> = serde_json::from_str(
            c.patch["metadata"]["annotations"][history::HISTORY_ANNOTATION]
                .as_str()
                .unwrap(),
        )
        .unwrap();
        let n = h.len();
        assert_eq!(h[n - 2].to.as_deref(), Some("mc:5"));
        assert_eq!(h[n - 2].outcome.as_deref(), Some(history::ROLLED_BACK));
        assert_eq!(h[n - 2].ended, Some(later));
        assert_eq!(h[n - 1].op.as_deref(), Some("rollback"));
        assert_eq!(
            h[n - 1].outcome,
            None,
            "the rollback's own outcome comes later"
        );
        assert_eq!(h[0].outcome, None, "entries of no workflow are left alone");
    }

    #[test]
    fn says_clearly_when_it_cannot() {
        let now = Timestamp::UNIX_EPOCH;
        let e = change(
            &gss(&[("minecraft", "mc:1")]),
            &args(None, None),
            &caller(),
            now,
        )
        .unwrap_err();
        assert!(
            e.contains("no image history for container minecraft"),
            "{e}"
        );
        let set = with_history(&["mc:1", "mc:2"]);
        let e = change(&set, &args(None, Some(3)), &caller(), now).unwrap_err();
        assert!(e.contains("2 entries, newest first: mc:2, mc:1"), "{e}");
        let e = change(&set, &args(Some("mc:9"), None), &caller(), now).unwrap_err();
        assert!(e.contains("mc:9 is not in the image history"), "{e}");
        assert!(change(&set, &args(Some("mc:1"), Some(1)), &caller(), now).is_err());
        assert!(
            change(&set, &args(None, Some(0)), &caller(), now)
                .unwrap_err()
                .contains("at least 1")
        );
    }
}
