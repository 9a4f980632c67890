//! Which GameServers of a set an op acts on, and how it changes one.
//!
//! Images are compared normalised ([`ImageRef`]) against what a server's
//! container RUNS: `status.podStatus.containerStatuses[name].image` (with
//! the registry digest of its `imageID`, so a digest matches its tag when
//! both are known). A server no status reports an image for yet (Pending,
//! Creating: real OKG leaves `spec.containers` empty) matches neither
//! `image` nor `notImage`: it is never taken for an old server.
//!
//! `image` and `notImage` take `CONTAINER/IMAGE` entries (the text before
//! the first `/` is the container name, the rest the full image, as
//! GameServers-Updater's `--select-not-container-image`), one or many:
//! `image` matches a server running ANY of the entries, `notImage` one
//! running NONE of them (every entry counts; the updater only honours the
//! last one). All given fields of a selection must match (AND).
//!
//! Servers are changed by a merge patch carrying the resourceVersion they
//! were read at; on a conflict the server is read again and changed only if
//! it still qualifies. The patch also stamps the server with the call's
//! fingerprint ([`CHANGED_BY_ANNOTATION`]), so a repeat of the call (a retry
//! racing the original, or a re-send after a crash before the answer was
//! recorded) recognises the servers it already changed instead of
//! selecting others.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use futures::StreamExt;
use kube::api::{Api, ListParams, Patch};
use serde_json::json;

use super::args::{Entries, Flag, Kind, Labels, OpsState, Ordinals, Text, Ty, op_args, plain};
use super::cas::plugin_params;
use super::cas::{WriteError, classify};
use super::{Call, Outcome};
use crate::api::{GameServer, GameServerSet, ImageRef, OWNER_GSS_LABEL};

/// Annotation on a GameServer: the fingerprint of the call that last
/// changed its `opsState`.
pub const CHANGED_BY_ANNOTATION: &str = "gameops.io/changed-by";
/// GameServer patches in flight at once.
const CONCURRENCY: usize = 32;
/// Compare-and-swap attempts on one busy GameServer.
const ATTEMPTS: usize = 8;

/// One `CONTAINER/IMAGE` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerImage {
    /// The container's name.
    pub container: String,
    /// The image, normalised.
    pub image: ImageRef,
}

impl std::fmt::Display for ContainerImage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.container, self.image)
    }
}

/// The container names of a set's template, in order.
pub fn template_containers(gss: &GameServerSet) -> Vec<String> {
    gss.template_containers()
        .iter()
        .map(|c| c.name.clone())
        .collect()
}

/// Parses `CONTAINER/IMAGE` entries of `field`, checking each container
/// against the set's `containers` (when it has any).
pub fn container_images(
    field: &str,
    entries: &[String],
    containers: &[String],
) -> Result<Vec<ContainerImage>, String> {
    if entries.is_empty() {
        return Err(format!(
            "{field} is empty: give CONTAINER/IMAGE, e.g. {}/registry.example.com/game:v2",
            containers.first().map_or("main", String::as_str)
        ));
    }
    entries
        .iter()
        .map(|entry| {
            let example = format!(
                "{}/{entry}",
                containers.first().map_or("CONTAINER", String::as_str)
            );
            let Some((container, image)) = entry
                .split_once('/')
                .filter(|(c, i)| !c.is_empty() && !i.is_empty())
            else {
                return Err(format!(
                    "{field} entry {entry:?} is not CONTAINER/IMAGE (the text before the first / names the container), e.g. {example}"
                ));
            };
            if !containers.is_empty() && !containers.iter().any(|c| c == container) {
                return Err(format!(
                    "{field} entry {entry:?} names container {container:?}, which the set's template does not have (its containers: {}); write CONTAINER/IMAGE, e.g. {example}",
                    containers.join(", ")
                ));
            }
            Ok(ContainerImage {
                container: container.to_owned(),
                image: ImageRef::parse(image),
            })
        })
        .collect()
}

/// What `gs` runs in each container named by `images`, compared with the
/// entry for that container: `Some(true)` where it runs the entry's image,
/// `Some(false)` where it runs another, `None` where that is not known
/// (no container status yet, as while Pending or Creating, or a runtime
/// that reports only an image id).
fn compared(gs: &GameServer, images: &[ContainerImage]) -> Vec<Option<bool>> {
    let running = gs.running_images();
    images
        .iter()
        .map(|want| {
            running
                .iter()
                .find(|(name, _)| *name == want.container)
                .and_then(|(_, image)| want.image.compare(image))
        })
        .collect()
}

/// Whether `gs` is known to run any of `images` (each in its own container).
pub fn runs_any(gs: &GameServer, images: &[ContainerImage]) -> bool {
    compared(gs, images).contains(&Some(true))
}

/// Whether `gs` is known to run none of `images`: every container named
/// reports an image, and none is the entry's. A server whose image is not
/// known yet is never "old".
pub fn runs_none(gs: &GameServer, images: &[ContainerImage]) -> bool {
    compared(gs, images).iter().all(|c| *c == Some(false))
}

/// The ordinal of a server named `<set>-<ordinal>`.
pub fn ordinal(name: &str) -> Option<u64> {
    name.rsplit_once('-')?.1.parse().ok()
}

/// Sorts names by ordinal (names without one last, by name).
pub fn by_ordinal(names: &mut [String]) {
    names.sort_by(|a, b| {
        (ordinal(a).is_none(), ordinal(a), a).cmp(&(ordinal(b).is_none(), ordinal(b), b))
    });
}

/// A server's `spec.opsState`; absent or empty is `None`.
pub fn ops_state(gs: &GameServer) -> &str {
    gs.spec
        .ops_state
        .as_deref()
        .filter(|s| !s.is_empty())
        .unwrap_or("None")
}

/// A server's `status.currentState`; absent is `Unknown`.
pub fn current_state(gs: &GameServer) -> &str {
    gs.status
        .as_ref()
        .and_then(|s| s.current_state.as_deref())
        .filter(|s| !s.is_empty())
        .unwrap_or("Unknown")
}

/// A server's `status.players` (absent: 0).
pub fn players(gs: &GameServer) -> i32 {
    gs.status.as_ref().and_then(|s| s.players).unwrap_or(0)
}

/// Whether the server is being deleted.
pub fn deleting(gs: &GameServer) -> bool {
    gs.metadata.deletion_timestamp.is_some()
}

/// The server's name.
pub fn name(gs: &GameServer) -> &str {
    gs.metadata.name.as_deref().unwrap_or("")
}

/// Whether `call` changed the server (see [`CHANGED_BY_ANNOTATION`]).
pub fn changed_by(gs: &GameServer, fingerprint: &str) -> bool {
    gs.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(CHANGED_BY_ANNOTATION))
        .is_some_and(|f| f == fingerprint)
}

op_args! {
    /// `setOpsState`'s `select`, as written in the template.
    Select {
        /// Exact `spec.opsState` (absent counts as `None`).
        ops_state "opsState": OpsState,
        /// `CONTAINER/IMAGE` entries the server must run none of.
        not_image "notImage": Entries,
        /// `CONTAINER/IMAGE` entries the server must run one of.
        image "image": Entries,
        /// Ordinals.
        ids "ids": Ordinals,
        /// Exact `status.currentState` (absent counts as `Unknown`).
        current_state "currentState": Text,
        /// Labels the server must carry, with these values.
        labels "labels": Labels,
        /// `spec.networkDisabled` (absent counts as false).
        network_disabled "networkDisabled": Flag,
    }
}

/// The argument kind of a `select` ([`Select`]).
#[derive(Debug)]
pub struct Selector;

impl Kind for Selector {
    type Value = Select;
    const TY: Ty = Ty::Select;
    fn read(value: serde_json::Value) -> Result<Option<Select>, serde_json::Error> {
        plain(value)
    }
}

/// A checked selection; every given field must match.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Selection {
    ops_state: Option<String>,
    not_image: Vec<ContainerImage>,
    image: Vec<ContainerImage>,
    ids: Option<BTreeSet<u64>>,
    current_state: Option<String>,
    labels: BTreeMap<String, String>,
    network_disabled: Option<bool>,
}

impl Select {
    /// Checks the selection against a set with template `containers`;
    /// `field` prefixes messages (`plugin.gameops.setOpsState.select`).
    pub fn compile(self, field: &str, containers: &[String]) -> Result<Selection, String> {
        let images = |name: &str, v: Option<Vec<String>>| match v {
            Some(entries) => container_images(&format!("{field}.{name}"), &entries, containers),
            None => Ok(Vec::new()),
        };
        let text = |name: &str, v: Option<String>| match v {
            Some(s) if s.trim().is_empty() => Err(format!(
                "{field}.{name} is empty: give a value or leave the field out"
            )),
            other => Ok(other.map(|s| s.trim().to_owned())),
        };
        Ok(Selection {
            ops_state: text("opsState", self.ops_state)?,
            not_image: images("notImage", self.not_image)?,
            image: images("image", self.image)?,
            ids: self.ids.map(|ids| ids.into_iter().collect()),
            current_state: text("currentState", self.current_state)?,
            labels: self.labels.unwrap_or_default(),
            network_disabled: self.network_disabled,
        })
    }
}

impl Selection {
    /// Servers running none of `images`.
    pub fn not_image(images: Vec<ContainerImage>) -> Self {
        Self {
            not_image: images,
            ..Self::default()
        }
    }

    /// Servers running any of `images`.
    pub fn image(images: Vec<ContainerImage>) -> Self {
        Self {
            image: images,
            ..Self::default()
        }
    }

    /// Whether `gs` matches every given field.
    pub fn matches(&self, gs: &GameServer) -> bool {
        let labels = gs.metadata.labels.as_ref();
        self.ops_state.as_deref().is_none_or(|o| ops_state(gs) == o)
            && self
                .current_state
                .as_deref()
                .is_none_or(|c| current_state(gs) == c)
            && self
                .network_disabled
                .is_none_or(|want| gs.spec.network_disabled.unwrap_or(false) == want)
            && self
                .ids
                .as_ref()
                .is_none_or(|ids| ordinal(name(gs)).is_some_and(|o| ids.contains(&o)))
            && self
                .labels
                .iter()
                .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
            && (self.image.is_empty() || runs_any(gs, &self.image))
            && (self.not_image.is_empty() || runs_none(gs, &self.not_image))
    }

    /// The selection for messages: `opsState=None notImage=minecraft/…`.
    pub fn describe(&self) -> String {
        let join = |v: &[ContainerImage]| {
            v.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(",")
        };
        let mut parts = Vec::new();
        if let Some(o) = &self.ops_state {
            parts.push(format!("opsState={o}"));
        }
        if !self.image.is_empty() {
            parts.push(format!("image={}", join(&self.image)));
        }
        if !self.not_image.is_empty() {
            parts.push(format!("notImage={}", join(&self.not_image)));
        }
        if let Some(ids) = &self.ids {
            let ranges = super::name_list::to_ranges(ids);
            let shown: Vec<&str> = ranges.split(',').take(10).collect();
            let more = if ranges.split(',').count() > shown.len() {
                format!(",… ({} ids)", ids.len())
            } else {
                String::new()
            };
            parts.push(format!("ids={}{more}", shown.join(",")));
        }
        if let Some(c) = &self.current_state {
            parts.push(format!("currentState={c}"));
        }
        for (k, v) in &self.labels {
            parts.push(format!("label {k}={v}"));
        }
        if let Some(n) = self.network_disabled {
            parts.push(format!("networkDisabled={n}"));
        }
        if parts.is_empty() {
            "every server".into()
        } else {
            parts.join(" ")
        }
    }
}

/// The servers of the call's set: from the cluster's cache when it can
/// answer, else by a LIST.
pub async fn list_servers(call: &Call<'_>) -> Result<Vec<Arc<GameServer>>, Outcome> {
    if let Some(cache) = &call.cache
        && let Some(servers) = cache.servers(&call.namespace, &call.game_server_set).await
    {
        return Ok(servers);
    }
    let api: Api<GameServer> = Api::namespaced(call.client.clone(), &call.namespace);
    let selector = format!("{OWNER_GSS_LABEL}={}", call.game_server_set);
    match api.list(&ListParams::default().labels(&selector)).await {
        Ok(list) => Ok(list.items.into_iter().map(Arc::new).collect()),
        Err(kube::Error::SerdeError(e)) => {
            let named = super::readable::name_item::<GameServer>(
                &call.client,
                &call.namespace,
                &selector,
                "GameServer",
            )
            .await;
            Err(named.unwrap_or_else(|| {
                Outcome::Failed(format!(
                    "the servers of {}/{} cannot be read: {e}",
                    call.namespace, call.game_server_set
                ))
            }))
        }
        Err(e) => Err(super::cas::failure(
            &format!(
                "list the servers (GameServers) of {}/{}",
                call.namespace, call.game_server_set
            ),
            e,
        )),
    }
}

/// What became of one server.
#[derive(Debug)]
pub enum Patched {
    /// Changed; the server as written.
    Changed(GameServer),
    /// It no longer qualified when read again; left alone.
    Skipped(GameServer),
    /// It is gone.
    Gone,
}

/// Why a server could not be changed.
#[derive(Debug)]
pub struct PatchError {
    /// For the Argo UI.
    pub message: String,
    /// Whether trying again later may help.
    pub transient: bool,
}

/// Sets `gs`'s `spec.opsState` to `target`, stamped with `fingerprint`,
/// if it `qualifies`: a merge patch conditioned on the resourceVersion it
/// was read at; on a conflict it is read again and checked again.
pub async fn set_ops_state(
    api: &Api<GameServer>,
    mut gs: GameServer,
    target: &str,
    fingerprint: &str,
    qualifies: impl Fn(&GameServer) -> bool,
) -> Result<Patched, PatchError> {
    let server = name(&gs).to_owned();
    for _ in 0..ATTEMPTS {
        // A copy of this call (Argo's agent resends concurrently) got there
        // first: the server is this call's, and counts once.
        if changed_by(&gs, fingerprint) && ops_state(&gs) == target {
            return Ok(Patched::Changed(gs));
        }
        if !qualifies(&gs) {
            return Ok(Patched::Skipped(gs));
        }
        let patch = json!({
            "metadata": {
                "resourceVersion": gs.metadata.resource_version,
                "annotations": {CHANGED_BY_ANNOTATION: fingerprint},
            },
            "spec": {"opsState": target},
        });
        let written = api
            .patch(&server, &plugin_params(), &Patch::Merge(&patch))
            .await;
        match written.map_err(classify) {
            Ok(written) => return Ok(Patched::Changed(written)),
            Err(WriteError::Gone) => return Ok(Patched::Gone),
            Err(WriteError::Conflict) => match api.get_opt(&server).await {
                Ok(Some(fresh)) => gs = fresh,
                Ok(None) => return Ok(Patched::Gone),
                Err(e) => {
                    let (cause, transient) = match classify(e) {
                        WriteError::Transient(c) => (c, true),
                        WriteError::Conflict => ("it kept changing".to_owned(), true),
                        WriteError::Gone => return Ok(Patched::Gone),
                        WriteError::Refused(c) => (c, false),
                    };
                    return Err(PatchError {
                        message: format!("could not read GameServer {server} again: {cause}"),
                        transient,
                    });
                }
            },
            Err(WriteError::Refused(cause)) => {
                return Err(PatchError {
                    message: format!(
                        "could not set opsState {target} on GameServer {server}: {cause}"
                    ),
                    transient: false,
                });
            }
            Err(WriteError::Transient(cause)) => {
                return Err(PatchError {
                    message: format!("could not write GameServer {server}: {cause}"),
                    transient: true,
                });
            }
        }
    }
    Err(PatchError {
        message: format!("GameServer {server} kept changing under this call"),
        transient: true,
    })
}

/// [`set_ops_state`] on many servers of the call's set at once, stamped
/// with the call's fingerprint; results in input order. The cache is told
/// of every write, so the call's next read includes it.
pub async fn set_ops_states<F>(
    call: &Call<'_>,
    servers: Vec<GameServer>,
    target: &str,
    qualifies: F,
) -> Vec<Result<Patched, PatchError>>
where
    F: Fn(&GameServer) -> bool + Clone,
{
    let api: Api<GameServer> = Api::namespaced(call.client.clone(), &call.namespace);
    let results: Vec<Result<Patched, PatchError>> = futures::stream::iter(servers)
        .map(|gs| set_ops_state(&api, gs, target, &call.fingerprint, qualifies.clone()))
        .buffered(CONCURRENCY)
        .collect()
        .await;
    if let Some(cache) = &call.cache {
        for result in &results {
            if let Ok(Patched::Changed(gs)) = result {
                cache.wrote(&call.namespace, gs);
            }
        }
    }
    results
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::api::{GameServerContainer, GameServerSpec, GameServerStatus};
    use k8s_openapi::api::core::v1::{ContainerStatus, PodStatus};
    use serde_json::json;

    pub const OLD: &str = "registry.cn-hangzhou.aliyuncs.com/acs/minecraft-demo:1.12.2";
    pub const NEW: &str = "registry.cn-hangzhou.aliyuncs.com/acs/minecraft-demo:1.12.2-new";

    /// A server of set `minecraft` running `image` in container `minecraft`.
    pub fn server(ordinal: u32, state: &str, ops: &str, image: &str) -> GameServer {
        let mut gs = GameServer::new(
            &format!("minecraft-{ordinal}"),
            GameServerSpec {
                ops_state: Some(ops.into()),
                containers: Some(vec![GameServerContainer {
                    name: "minecraft".into(),
                    image: Some(image.into()),
                    resources: None,
                }]),
                ..Default::default()
            },
        );
        gs.metadata.labels = Some(BTreeMap::from([(
            OWNER_GSS_LABEL.to_owned(),
            "minecraft".to_owned(),
        )]));
        gs.status = Some(GameServerStatus {
            current_state: Some(state.into()),
            pod_status: Some(PodStatus {
                container_statuses: Some(vec![ContainerStatus {
                    name: "minecraft".into(),
                    image: image.into(),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        });
        gs
    }

    fn select(v: serde_json::Value) -> Result<Selection, String> {
        let s: Select = serde_json::from_value(v).map_err(|e| e.to_string())?;
        s.compile("select", &["minecraft".to_owned(), "sidecar".to_owned()])
    }

    #[test]
    fn container_image_entries_split_at_the_first_slash() {
        let containers = ["minecraft".to_owned()];
        let parsed =
            container_images("notImage", &[format!("minecraft/{NEW}")], &containers).unwrap();
        assert_eq!(parsed[0].container, "minecraft");
        assert_eq!(parsed[0].image.to_string(), NEW);
        let bare = container_images("notImage", &[NEW.to_owned()], &containers).unwrap_err();
        assert!(
            bare.contains("container \"registry.cn-hangzhou.aliyuncs.com\"")
                && bare.contains("its containers: minecraft")
                && bare.contains(&format!("minecraft/{NEW}")),
            "{bare}"
        );
        assert!(
            container_images("image", &["nginx".into()], &containers)
                .unwrap_err()
                .contains("is not CONTAINER/IMAGE")
        );
        assert!(
            container_images("image", &[], &containers)
                .unwrap_err()
                .contains("empty")
        );
        // Short forms are normalised: minecraft/nginx is docker.io/library/nginx:latest.
        let short = container_images("image", &["minecraft/nginx".into()], &containers).unwrap();
        assert_eq!(short[0].image.to_string(), "docker.io/library/nginx:latest");
    }

    #[test]
    fn every_not_image_entry_counts() {
        let old = server(1, "Ready", "None", OLD);
        let new = server(2, "Ready", "None", NEW);
        let other = server(3, "Ready", "None", "docker.io/library/nginx:1.25");
        // The updater's bug: only the last entry counted. Here both do.
        let s =
            select(json!({"notImage": format!("minecraft/{NEW},minecraft/nginx:1.25")})).unwrap();
        assert!(s.matches(&old));
        assert!(!s.matches(&new));
        assert!(!s.matches(&other), "the first entry counts too");
        let s = select(json!({"notImage": [format!("minecraft/{NEW}"), "minecraft/nginx:1.25"]}))
            .unwrap();
        assert_eq!(
            [&old, &new, &other].map(|g| s.matches(g)),
            [true, false, false]
        );
        // image: any entry.
        let s = select(json!({"image": format!("minecraft/{OLD}, minecraft/nginx:1.25")})).unwrap();
        assert_eq!(
            [&old, &new, &other].map(|g| s.matches(g)),
            [true, false, true]
        );
        // The container counts: the sidecar does not run it.
        let s = select(json!({"image": format!("sidecar/{OLD}")})).unwrap();
        assert!(!s.matches(&old));
    }

    #[test]
    fn selection_fields_and_together() {
        let mut gs = server(4, "Ready", "None", OLD);
        gs.metadata
            .labels
            .get_or_insert_default()
            .insert("zone".into(), "a".into());
        let full = json!({
            "opsState": "None",
            "notImage": format!("minecraft/{NEW}"),
            "ids": "1,3-5",
            "currentState": "Ready",
            "labels": {"zone": "a"},
            "networkDisabled": false,
        });
        assert!(select(full.clone()).unwrap().matches(&gs));
        for (field, value) in [
            ("opsState", json!("Allocated")),
            ("notImage", json!(format!("minecraft/{OLD}"))),
            ("ids", json!([1, 2])),
            ("currentState", json!("Crash")),
            ("labels", json!({"zone": "b"})),
            ("networkDisabled", json!(true)),
        ] {
            let mut one_off = full.clone();
            one_off[field] = value;
            assert!(
                !select(one_off).unwrap().matches(&gs),
                "{field} alone must exclude the server"
            );
        }
        assert!(
            select(json!({})).unwrap().matches(&gs),
            "no field: every server"
        );
        // Absent opsState counts as None; absent labels do not match.
        gs.spec.ops_state = None;
        assert!(select(json!({"opsState": "None"})).unwrap().matches(&gs));
        assert!(
            !select(json!({"labels": {"team": "x"}}))
                .unwrap()
                .matches(&gs)
        );
        assert!(
            select(json!({"opsState": " "}))
                .unwrap_err()
                .contains("empty")
        );
        assert!(
            select(json!({"opstate": "None"}))
                .unwrap_err()
                .contains("unknown field")
        );
    }

    #[test]
    fn images_compare_normalised_and_by_digest() {
        let mut gs = server(0, "Ready", "None", "nginx");
        let s = select(json!({"image": "minecraft/docker.io/library/nginx:latest"})).unwrap();
        assert!(s.matches(&gs), "nginx is docker.io/library/nginx:latest");
        // The running digest (from imageID) matches a digest reference.
        if let Some(c) = gs
            .status
            .as_mut()
            .and_then(|s| s.pod_status.as_mut())
            .and_then(|p| p.container_statuses.as_mut())
        {
            c[0].image_id = "docker.io/library/nginx@sha256:abc".into();
        }
        assert!(
            select(json!({"image": "minecraft/nginx@sha256:abc"}))
                .unwrap()
                .matches(&gs)
        );
        assert!(
            !select(json!({"image": "minecraft/nginx@sha256:def"}))
                .unwrap()
                .matches(&gs)
        );
        // The running image wins over the spec (OnDelete: the spec may be newer).
        if let Some(c) = gs.spec.containers.as_mut() {
            c[0].image = Some("nginx:2".into());
        }
        assert!(
            select(json!({"image": "minecraft/nginx"}))
                .unwrap()
                .matches(&gs)
        );
        // Without a status (Pending, Creating) the image is not known: the
        // server is neither new nor old, whatever the spec says (issue 11).
        gs.status = None;
        for sel in [
            json!({"image": "minecraft/nginx:2"}),
            json!({"notImage": "minecraft/nginx:2"}),
            json!({"notImage": "minecraft/nginx:3"}),
        ] {
            assert!(!select(sel.clone()).unwrap().matches(&gs), "{sel}");
        }
    }

    #[test]
    fn images_are_read_by_container_name_and_a_bare_id_is_not_old() {
        // kubelet lists containerStatuses by name, so a sidecar can come first.
        let mut gs = server(0, "Ready", "None", NEW);
        let bare = format!("sha256:{}", "b".repeat(64));
        if let Some(c) = gs
            .status
            .as_mut()
            .and_then(|s| s.pod_status.as_mut())
            .and_then(|p| p.container_statuses.as_mut())
        {
            c.insert(
                0,
                ContainerStatus {
                    name: "agent".into(),
                    image: OLD.into(),
                    ..Default::default()
                },
            );
        }
        let not_new = select(json!({"notImage": format!("minecraft/{NEW}")})).unwrap();
        assert!(!not_new.matches(&gs), "the minecraft container runs NEW");
        assert!(
            select(json!({"image": format!("minecraft/{NEW}")}))
                .unwrap()
                .matches(&gs)
        );
        // A runtime reporting only the image id: not known, so not old.
        if let Some(c) = gs
            .status
            .as_mut()
            .and_then(|s| s.pod_status.as_mut())
            .and_then(|p| p.container_statuses.as_mut())
        {
            c[1].image = bare;
            c[1].image_id =
                "registry.cn-hangzhou.aliyuncs.com/acs/minecraft-demo@sha256:abc".into();
        }
        assert!(!not_new.matches(&gs), "a tag cannot be told from a digest");
    }

    #[test]
    fn ordinals_sort_numerically() {
        let mut names: Vec<String> = ["m-10", "m-2", "x", "m-1"].map(String::from).to_vec();
        by_ordinal(&mut names);
        assert_eq!(names, ["m-1", "m-2", "m-10", "x"]);
    }
}
