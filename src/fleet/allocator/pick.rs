//! Which server an allocation gets: which servers are allocatable, which
//! match a selector, which is preferred, and the pure choice among a
//! namespace's servers given the claims and stale versions this process
//! knows of.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use super::wire::{GameServerSelector, Wanted};
use crate::api::{
    DRAINING_LABEL, GameServer, GameServerState, ImageRef, OWNER_GSS_LABEL, OpsState,
};

/// The value of label `key` of `gs`.
pub(super) fn label<'a>(gs: &'a GameServer, key: &str) -> Option<&'a str> {
    gs.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(key))
        .map(String::as_str)
}

/// Whether `gs` may be allocated for `players` players: Ready, opsState
/// absent or `None`, not being deleted, not Draining, and with room for the
/// players if it reports `maxPlayers`.
pub fn is_allocatable(gs: &GameServer, players: i32) -> bool {
    let status = gs.status.as_ref();
    let ready =
        status.and_then(|s| s.current_state.as_deref()) == Some(GameServerState::Ready.as_str());
    let idle = gs
        .spec
        .ops_state
        .as_deref()
        .is_none_or(|s| s.is_empty() || s == OpsState::None.as_str());
    let draining = label(gs, DRAINING_LABEL) == Some("true");
    let fits = status
        .and_then(|s| s.max_players)
        .is_none_or(|max| players <= max);
    ready && idle && !draining && fits && gs.metadata.deletion_timestamp.is_none()
}

impl GameServerSelector {
    /// Whether `gs` matches every field of the selector.
    pub fn matches(&self, gs: &GameServer) -> bool {
        if let Some(set) = &self.game_server_set
            && label(gs, OWNER_GSS_LABEL) != Some(set.as_str())
        {
            return false;
        }
        if let Some(labels) = &self.labels
            && !labels.iter().all(|(k, v)| label(gs, k) == Some(v.as_str()))
        {
            return false;
        }
        if let Some(image) = &self.image {
            return gs.runs_image(&ImageRef::parse(image));
        }
        true
    }
}

/// Order of preference among candidates: lowest ordinal (`<set>-<n>`), then name.
fn preference(gs: &GameServer) -> (u64, &str) {
    let name = gs.metadata.name.as_deref().unwrap_or_default();
    let ordinal = name
        .rsplit_once('-')
        .and_then(|(_, n)| n.parse().ok())
        .unwrap_or(u64::MAX);
    (ordinal, name)
}

/// The server's name.
pub(super) fn name_of(gs: &GameServer) -> &str {
    gs.metadata.name.as_deref().unwrap_or_default()
}

/// What this process knows about one namespace's servers beyond the cache.
#[derive(Debug, Default)]
pub(super) struct Local {
    /// Servers a request of this process is trying to allocate right now.
    pub(super) in_flight: HashSet<String>,
    /// Servers whose cached version (this resourceVersion) is known to be
    /// out of date, or gone: skipped until the cache moves on.
    pub(super) stale: HashMap<String, String>,
}

impl Local {
    /// Whether `cached` is usable, forgetting a stale mark the cache has
    /// moved past.
    fn usable(&mut self, cached: &GameServer) -> bool {
        let name = name_of(cached);
        match self.stale.get(name) {
            Some(rv) if cached.metadata.resource_version.as_deref() == Some(rv.as_str()) => false,
            Some(_) => {
                self.stale.remove(name);
                true
            }
            None => true,
        }
    }
}

/// The choice among a namespace's servers.
#[derive(Debug)]
pub(super) enum Choice {
    /// The preferred server of the first selector (its index) that has one.
    Candidate(Arc<GameServer>, usize),
    /// That selector's only matches are claimed by other requests.
    Wait,
    /// Nothing matches.
    Nothing,
}

/// Chooses among `servers` (a namespace's, as cached) for `wanted`: the
/// preferred unclaimed allocatable server of the first selector that has
/// one; or [`Choice::Wait`] when that selector's matches are all claimed
/// and `wait_for_claims`.
pub(super) fn choose(
    servers: &[Arc<GameServer>],
    local: &mut Local,
    wanted: &Wanted,
    wait_for_claims: bool,
) -> Choice {
    let mut views: Vec<(&Arc<GameServer>, bool)> = Vec::with_capacity(servers.len());
    for gs in servers {
        if local.usable(gs) && is_allocatable(gs, wanted.players) {
            views.push((gs, local.in_flight.contains(name_of(gs))));
        }
    }
    if local.stale.len() > 2 * servers.len() + 1024 {
        // Forget servers that were deleted since (bounded memory).
        let live: HashSet<&str> = servers.iter().map(|gs| name_of(gs)).collect();
        local.stale.retain(|k, _| live.contains(k.as_str()));
    }
    let any = [GameServerSelector::default()];
    let selectors = if wanted.selectors.is_empty() {
        &any[..]
    } else {
        &wanted.selectors[..]
    };
    for (i, selector) in selectors.iter().enumerate() {
        let mut best: Option<&Arc<GameServer>> = None;
        let mut claimed = false;
        for (server, in_flight) in views.iter().filter(|(gs, _)| selector.matches(gs)) {
            if *in_flight {
                claimed = true;
            } else if best.is_none_or(|b| preference(server) < preference(b)) {
                best = Some(server);
            }
        }
        if let Some(server) = best {
            return Choice::Candidate(server.clone(), i);
        }
        if claimed && wait_for_claims {
            return Choice::Wait;
        }
    }
    Choice::Nothing
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::api::core::v1::{ContainerStatus, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    use super::*;
    use crate::api::{GameServerSpec, GameServerStatus};

    fn server(name: &str, set: &str, image: &str) -> GameServer {
        let mut gs = GameServer::new(name, GameServerSpec::default());
        gs.metadata.namespace = Some("default".into());
        gs.metadata.resource_version = Some("10".into());
        gs.metadata.labels = Some(BTreeMap::from([
            (OWNER_GSS_LABEL.to_owned(), set.to_owned()),
            ("version".to_owned(), "v1".to_owned()),
        ]));
        gs.status = Some(GameServerStatus {
            current_state: Some("Ready".into()),
            pod_status: Some(PodStatus {
                container_statuses: Some(vec![ContainerStatus {
                    name: "main".into(),
                    image: image.into(),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        });
        gs
    }

    #[test]
    fn selectors_match_set_labels_and_image() {
        let gs = server("x-0", "x", "docker.io/library/nginx:1.25");
        assert!(GameServerSelector::default().matches(&gs));
        let set = |s: &str| GameServerSelector {
            game_server_set: Some(s.into()),
            ..Default::default()
        };
        assert!(set("x").matches(&gs));
        assert!(!set("y").matches(&gs));
        let labels = |pairs: &[(&str, &str)]| GameServerSelector {
            labels: Some(
                pairs
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            ..Default::default()
        };
        assert!(labels(&[("version", "v1")]).matches(&gs));
        assert!(labels(&[("version", "v1"), (OWNER_GSS_LABEL, "x")]).matches(&gs));
        assert!(!labels(&[("version", "v2")]).matches(&gs));
        assert!(!labels(&[("version", "v1"), ("tier", "gold")]).matches(&gs));
        let image = |i: &str| GameServerSelector {
            image: Some(i.into()),
            ..Default::default()
        };
        assert!(image("nginx:1.25").matches(&gs));
        assert!(!image("nginx").matches(&gs));
        let all = GameServerSelector {
            game_server_set: Some("x".into()),
            labels: Some(BTreeMap::from([("version".into(), "v1".into())])),
            image: Some("nginx:1.25".into()),
        };
        assert!(all.matches(&gs));
        assert!(
            !GameServerSelector {
                game_server_set: Some("y".into()),
                ..all.clone()
            }
            .matches(&gs)
        );
        let mut no_status = gs.clone();
        no_status.status = None;
        assert!(!image("nginx:1.25").matches(&no_status));
        assert_eq!(
            all.to_string(),
            "gameServerSet=x labels version=v1 image=docker.io/library/nginx:1.25"
        );
        assert_eq!(GameServerSelector::default().to_string(), "any server");
    }

    /// kubelet lists container statuses by name, so a sidecar may come
    /// first; the image selector matches the image any container runs (by
    /// name, with its imageID digest), as the ops' selections do.    /// kubelet lists container statuses by name, so a sidecar may come
    /// first; the image selector matches the image any container runs (by
    /// name, with its imageID digest), as the ops' selections do.
    #[test]
    fn image_selectors_see_every_container_by_name() {
        let mut gs = server("x-0", "x", "envoy:1");
        if let Some(statuses) = gs
            .status
            .as_mut()
            .and_then(|s| s.pod_status.as_mut())
            .and_then(|p| p.container_statuses.as_mut())
        {
            statuses[0].name = "a-sidecar".into();
            statuses.push(ContainerStatus {
                name: "main".into(),
                image: "game:2".into(),
                image_id: "docker.io/library/game@sha256:abc".into(),
                ..Default::default()
            });
        }
        let image = |i: &str| GameServerSelector {
            image: Some(i.into()),
            ..Default::default()
        };
        assert!(image("game:2").matches(&gs));
        assert!(image("game@sha256:abc").matches(&gs));
        assert!(image("envoy:1").matches(&gs));
        assert!(!image("game:3").matches(&gs));
    }

    #[test]
    fn only_ready_idle_servers_are_allocatable() {
        let ready = server("x-0", "x", "nginx");
        assert!(is_allocatable(&ready, 1));
        let mut none = ready.clone();
        none.spec.ops_state = Some("None".into());
        assert!(is_allocatable(&none, 1));
        for ops in [
            "Allocated",
            "Maintaining",
            "WaitToBeDeleted",
            "Kill",
            "Other",
        ] {
            let mut gs = ready.clone();
            gs.spec.ops_state = Some(ops.into());
            assert!(!is_allocatable(&gs, 1), "{ops}");
        }
        for state in ["Creating", "NotReady", "Crash", "Updating", "Deleting"] {
            let mut gs = ready.clone();
            if let Some(s) = gs.status.as_mut() {
                s.current_state = Some(state.into());
            }
            assert!(!is_allocatable(&gs, 1), "{state}");
        }
        let mut no_status = ready.clone();
        no_status.status = None;
        assert!(!is_allocatable(&no_status, 1));
        let mut draining = ready.clone();
        if let Some(l) = draining.metadata.labels.as_mut() {
            l.insert(DRAINING_LABEL.into(), "true".into());
        }
        assert!(!is_allocatable(&draining, 1));
        let mut deleting = ready.clone();
        deleting.metadata.deletion_timestamp = Some(Time(jiff::Timestamp::now()));
        assert!(!is_allocatable(&deleting, 1));
        let mut small = ready.clone();
        if let Some(s) = small.status.as_mut() {
            s.max_players = Some(4);
        }
        assert!(is_allocatable(&small, 4));
        assert!(!is_allocatable(&small, 5));
    }
    #[test]
    fn lowest_ordinal_is_preferred() {
        let mut names = ["x-10", "x-2", "y-1", "odd"];
        names.sort_by_key(|n| preference(&server(n, "x", "nginx")).0);
        assert_eq!(names, ["y-1", "x-2", "x-10", "odd"]);
    }
    fn wanted(selectors: Vec<GameServerSelector>) -> Wanted {
        Wanted {
            namespace: "default".into(),
            selectors,
            players: 1,
            labels: BTreeMap::new(),
            annotations: BTreeMap::new(),
        }
    }

    #[test]
    fn claims_and_stale_versions_are_skipped_until_the_cache_moves_on() {
        let servers: Vec<Arc<GameServer>> = ["x-1", "x-0", "y-0"]
            .iter()
            .map(|n| Arc::new(server(n, &n[..1], "nginx")))
            .collect();
        let mut local = Local::default();
        let any = wanted(vec![]);
        let pick = |local: &mut Local, w: &Wanted, wait| match choose(&servers, local, w, wait) {
            Choice::Candidate(gs, i) => format!("{}#{i}", name_of(&gs)),
            Choice::Wait => "wait".to_owned(),
            Choice::Nothing => "nothing".to_owned(),
        };
        assert_eq!(pick(&mut local, &any, true), "x-0#0");
        local.in_flight.insert("x-0".into());
        assert_eq!(pick(&mut local, &any, true), "y-0#0");
        // The first selector's only match is claimed: wait, or fall through.
        let x0_then_y = wanted(vec![
            GameServerSelector {
                labels: Some(BTreeMap::from([("version".into(), "v1".into())])),
                game_server_set: Some("x".into()),
                image: None,
            },
            GameServerSelector {
                game_server_set: Some("y".into()),
                ..Default::default()
            },
        ]);
        local.in_flight.insert("x-1".into());
        assert_eq!(pick(&mut local, &x0_then_y, true), "wait");
        assert_eq!(pick(&mut local, &x0_then_y, false), "y-0#1");
        // A stale cached version is skipped until the cache moves on.
        local.in_flight.clear();
        local.stale.insert("x-0".into(), "10".into());
        assert_eq!(pick(&mut local, &any, true), "y-0#0");
        let mut moved = server("x-0", "x", "nginx");
        moved.metadata.resource_version = Some("11".into());
        assert_eq!(pick_from(&[Arc::new(moved)], &mut local, &any), "x-0");
        assert!(local.stale.is_empty());
    }

    fn pick_from(servers: &[Arc<GameServer>], local: &mut Local, wanted: &Wanted) -> String {
        match choose(servers, local, wanted, true) {
            Choice::Candidate(gs, _) => name_of(&gs).to_owned(),
            other => format!("{other:?}"),
        }
    }
}
