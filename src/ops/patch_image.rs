//! `patchImage`: set the image of one container of a GameServerSet's
//! template (`container`, default the first), once per call however often
//! Argo sends it. The change is appended to the set's image history
//! ([`super::history`]: the image replaced, the new one, the workflow),
//! which `rollback` restores from; image, history, idempotency record and lease
//! land in one patch. Patching to the image already there (compared
//! normalised) changes nothing and records no history. Outputs
//! `previousImage` and `revision` (the controller's revision hash of the
//! patched template, as its servers' `gameops.io/revision` label will show).

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde_json::{Value, json};

use super::history::{self, HistoryEntry, ROLLED_BACK};
use super::ledger::{self, Change};
use super::{Call, Caller, Outcome};
use crate::api::{GameServerSet, normalise_image};

use super::table::PatchImageArgs as Args;

/// Update strategies under which a new template image never replaces a
/// running server: `OnDelete` (OKG, seed 001) and `NoDisruption` (gameops's
/// draining extension, seed 000).
const SAFE_STRATEGIES: [&str; 2] = ["OnDelete", "NoDisruption"];

/// Why patching the image of `gss` would replace running servers, when it
/// would: OKG's default `RollingUpdate` recreates pods (kruise-game
/// pkg/controllers/gameserverset: the Advanced StatefulSet it manages rolls
/// every pod, Allocated ones included).
pub fn rolling_update(gss: &GameServerSet) -> Option<String> {
    let strategy = gss
        .spec
        .update_strategy
        .as_ref()
        .and_then(|u| u.r#type.as_deref())
        .filter(|t| !t.is_empty())
        .unwrap_or("RollingUpdate");
    (!SAFE_STRATEGIES.contains(&strategy)).then(|| {
        format!(
            "GameServerSet {} updates with {strategy}: a new image would recreate its servers, Allocated ones (live matches) included; set spec.updateStrategy.type: OnDelete for a seamless release, or pass allowRollingUpdate: true to patch it anyway",
            gss.metadata.name.as_deref().unwrap_or("")
        )
    })
}

/// The template container `wanted` (default: the first) of `gss`: its
/// index, name and image.
pub fn container(
    gss: &GameServerSet,
    wanted: Option<&str>,
    op: &str,
) -> Result<(usize, String, Option<String>), String> {
    let containers = gss.template_containers();
    if containers.is_empty() {
        return Err(format!(
            "GameServerSet {} has no containers in spec.gameServerTemplate.spec.containers: nothing to {op}",
            gss.metadata.name.as_deref().unwrap_or("")
        ));
    }
    let index = match wanted.filter(|w| !w.is_empty()) {
        None => 0,
        Some(w) => containers.iter().position(|c| c.name == w).ok_or_else(|| {
            let names: Vec<&str> = containers.iter().map(|c| c.name.as_str()).collect();
            format!(
                "plugin.gameops.{op}.container {w:?} is not in GameServerSet {}'s template; its containers are: {}",
                gss.metadata.name.as_deref().unwrap_or(""),
                names.join(", ")
            )
        })?,
    };
    let c = &containers[index];
    Ok((index, c.name.clone(), c.image.clone()))
}

/// The change setting container `wanted` of `gss` to `image` at `now`,
/// for op `op` (`patchImage`, `rollback`) of workflow `by`: the template
/// and history patch, message and outputs `previousImage` and `revision`.
/// A `rollback` also marks `by`'s earlier changes [`ROLLED_BACK`].
pub fn set_image(
    gss: &GameServerSet,
    wanted: Option<&str>,
    image: &str,
    (op, by): (&str, &Caller),
    now: Timestamp,
) -> Result<Change, String> {
    let (index, name, previous) = container(gss, wanted, op)?;
    let set = gss.metadata.name.as_deref().unwrap_or("");
    let previous_text = previous.clone().unwrap_or_default();
    if previous
        .as_deref()
        .is_some_and(|p| normalise_image(p) == normalise_image(image))
    {
        let revision = gss.revision();
        return Ok(Change {
            patch: Value::Null,
            message: format!(
                "{set}: container {name} already has image {previous_text}; nothing changed"
            ),
            outputs: BTreeMap::from([
                ("previousImage".to_owned(), previous_text),
                ("revision".to_owned(), revision),
            ]),
        });
    }
    let mut patched = gss.clone();
    let containers = patched
        .spec
        .game_server_template
        .as_mut()
        .and_then(|t| t.pod_template.spec.as_mut())
        .map(|s| &mut s.containers)
        .ok_or_else(|| format!("GameServerSet {set} has no template"))?;
    let Some(target) = containers.get_mut(index) else {
        return Err(format!("GameServerSet {set} has no container {name}"));
    };
    target.image = Some(image.to_owned());
    let containers = serde_json::to_value(&*containers).map_err(|e| e.to_string())?;
    let revision = patched.revision();
    let mut patch = json!({"spec": {"gameServerTemplate": {"spec": {"containers": containers}}}});
    if let Some(previous) = &previous {
        let mut before = history::history(gss);
        if op == "rollback" {
            before =
                history::concluded(before.clone(), &by.uid, ROLLED_BACK, now).unwrap_or(before);
        }
        let entry = HistoryEntry::change(&name, previous, image, op, by, now);
        json_patch::merge(
            &mut patch,
            &history::patch(&history::appended(before, entry))?,
        );
    }
    Ok(Change {
        patch,
        message: format!(
            "{set}: container {name} image {} -> {image} (revision {revision})",
            if previous_text.is_empty() {
                "(none)"
            } else {
                &previous_text
            }
        ),
        outputs: BTreeMap::from([
            ("previousImage".to_owned(), previous_text),
            ("revision".to_owned(), revision),
        ]),
    })
}

/// Runs the op.
pub async fn run(call: &Call<'_>, args: Args) -> Outcome {
    let Some(image) = args
        .image
        .as_deref()
        .map(str::trim)
        .filter(|i| !i.is_empty())
    else {
        return Outcome::Failed(
            "plugin.gameops.patchImage.image is missing: give the image to release, e.g. registry.example.com/game:v2".into(),
        );
    };
    if image.parse::<oci_client::Reference>().is_err() {
        return Outcome::Failed(format!(
            "plugin.gameops.patchImage.image {image:?} is not an image reference, e.g. registry.example.com/game/server:v1.2.3"
        ));
    }
    let allow_rolling_update = args
        .allow_rolling_update
        .unwrap_or(super::table::ALLOW_ROLLING_UPDATE);
    ledger::mutate(call, |gss| {
        if let Some(why) = rolling_update(gss).filter(|_| !allow_rolling_update) {
            return Err(why);
        }
        set_image(
            gss,
            args.container.as_deref(),
            image,
            ("patchImage", call.workflow),
            Timestamp::now(),
        )
    })
    .await
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::ops::history::HISTORY_ANNOTATION;

    pub fn caller() -> Caller {
        Caller {
            name: "release-1".into(),
            namespace: "default".into(),
            uid: "uid-1".into(),
        }
    }

    pub fn gss(images: &[(&str, &str)]) -> GameServerSet {
        let containers: Vec<Value> = images
            .iter()
            .map(|(n, i)| json!({"name": n, "image": i}))
            .collect();
        serde_json::from_value(json!({
            "apiVersion": "game.kruise.io/v1alpha1", "kind": "GameServerSet",
            "metadata": {"name": "minecraft", "namespace": "default"},
            "spec": {"replicas": 3, "gameServerTemplate": {"spec": {"containers": containers}}},
        }))
        .unwrap()
    }

    #[test]
    fn patches_the_named_or_first_container_and_records_history() {
        let set = gss(&[("minecraft", "mc:1"), ("sidecar", "envoy:1")]);
        let now = Timestamp::UNIX_EPOCH;
        let c = set_image(&set, None, "mc:2", ("patchImage", &caller()), now).unwrap();
        assert_eq!(c.outputs["previousImage"], "mc:1");
        assert_eq!(
            c.patch["spec"]["gameServerTemplate"]["spec"]["containers"],
            json!([{"name": "minecraft", "image": "mc:2"}, {"name": "sidecar", "image": "envoy:1"}])
        );
        let h: Vec<HistoryEntry> = serde_json::from_str(
            c.patch["metadata"]["annotations"][HISTORY_ANNOTATION]
                .as_str()
                .unwrap(),
        )
        .unwrap();
        assert_eq!(
            h,
            [HistoryEntry::change(
                "minecraft",
                "mc:1",
                "mc:2",
                "patchImage",
                &caller(),
                now
            )]
        );
        // The revision is the controller's, of the patched template.
        let mut patched = set.clone();
        if let Some(s) = patched
            .spec
            .game_server_template
            .as_mut()
            .and_then(|t| t.pod_template.spec.as_mut())
        {
            s.containers[0].image = Some("mc:2".into());
        }
        assert_eq!(c.outputs["revision"], patched.revision());
        assert_ne!(c.outputs["revision"], set.revision());

        let c = set_image(
            &set,
            Some("sidecar"),
            "envoy:2",
            ("patchImage", &caller()),
            now,
        )
        .unwrap();
        assert_eq!(c.outputs["previousImage"], "envoy:1");
        let e = set_image(&set, Some("nope"), "x", ("patchImage", &caller()), now).unwrap_err();
        assert!(e.contains("its containers are: minecraft, sidecar"), "{e}");
    }

    #[test]
    fn the_same_image_changes_nothing() {
        let set = gss(&[("minecraft", "nginx")]);
        let c = set_image(
            &set,
            None,
            "docker.io/library/nginx:latest",
            ("patchImage", &caller()),
            Timestamp::UNIX_EPOCH,
        )
        .unwrap();
        assert!(c.patch.is_null(), "no template change, no history");
        assert!(c.message.contains("nothing changed"), "{}", c.message);
        assert_eq!(c.outputs["revision"], set.revision());
    }
}
