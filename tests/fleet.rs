//! The embedded fleet end to end: `gameops serve` with its controller and
//! simulator, driven by kubectl and kube-rs as a live-ops engineer would.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::{MINECRAFT_GSS, Server};
use gameops::api::{DRAINING_LABEL, GameServer, GameServerSet};
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde_json::json;

const FAST: &[&str] = &[
    "--in-memory",
    "--sim-startup-ms",
    "150",
    "--sim-jitter-ms",
    "100",
];
const OLD: &str = "registry.cn-hangzhou.aliyuncs.com/acs/minecraft-demo:1.12.2";
const NEW: &str = "registry.cn-hangzhou.aliyuncs.com/acs/minecraft-demo:1.12.2-new";

/// Polls `check` until it returns `Some`, failing with `what` after 60 s.
async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// What a test needs to know of one server.
#[derive(Clone, Debug, PartialEq)]
struct View {
    state: String,
    ops: String,
    image: String,
    uid: String,
    draining: bool,
}

fn view(gs: &GameServer) -> View {
    let status = gs.status.as_ref();
    View {
        state: status
            .and_then(|s| s.current_state.clone())
            .unwrap_or_default(),
        ops: gs.spec.ops_state.clone().unwrap_or_default(),
        image: status
            .and_then(|s| s.pod_status.as_ref())
            .and_then(|p| p.container_statuses.as_ref())
            .and_then(|c| c.first())
            .map(|c| c.image.clone())
            .unwrap_or_default(),
        uid: gs.metadata.uid.clone().unwrap_or_default(),
        draining: gs
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(DRAINING_LABEL))
            .is_some_and(|v| v == "true"),
    }
}

async fn fleet(api: &Api<GameServer>, set: &str) -> BTreeMap<String, View> {
    let list = api
        .list(&ListParams::default().labels(&format!("game.kruise.io/owner-gss={set}")))
        .await
        .expect("list");
    list.items
        .iter()
        .map(|g| (g.metadata.name.clone().unwrap_or_default(), view(g)))
        .collect()
}

async fn all_ready(
    api: &Api<GameServer>,
    set: &str,
    n: usize,
    image: &str,
) -> BTreeMap<String, View> {
    eventually(
        &format!("{n} Ready servers of {set} running {image}"),
        || async {
            let f = fleet(api, set).await;
            let ok = f.len() == n && f.values().all(|v| v.state == "Ready" && v.image == image);
            ok.then_some(f)
        },
    )
    .await
}

async fn set_ops(api: &Api<GameServer>, name: &str, ops: &str) {
    let patch = json!({"spec": {"opsState": ops}});
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("patch opsState");
}

fn gss_yaml(name: &str, replicas: u32, strategy: &str, image: &str) -> String {
    format!(
        "apiVersion: game.kruise.io/v1alpha1
kind: GameServerSet
metadata: {{name: {name}, namespace: default}}
spec:
  replicas: {replicas}
  updateStrategy: {strategy}
  gameServerTemplate:
    spec:
      containers: [{{name: game, image: '{image}'}}]
"
    )
}

async fn set_image(sets: &Api<GameServerSet>, name: &str, image: &str) {
    let patch = json!([{"op": "replace", "path": "/spec/gameServerTemplate/spec/containers/0/image", "value": image}]);
    let patch: json_patch::Patch = serde_json::from_value(patch).expect("patch");
    sets.patch(name, &PatchParams::default(), &Patch::Json::<()>(patch))
        .await
        .expect("set image");
}

#[tokio::test]
async fn seed_scenario_by_hand_reaches_the_expected_table() {
    let server = Server::start_fleet(FAST);
    let client = server.client().await;
    let servers: Api<GameServer> = Api::namespaced(client.clone(), "default");
    server.kubectl_ok(&["apply", "-f", "-"], Some(MINECRAFT_GSS));
    let before = all_ready(&servers, "minecraft", 3, OLD).await;
    server.kubectl_ok(
        &[
            "patch",
            "gs",
            "minecraft-0",
            "--type=merge",
            "-p",
            r#"{"spec":{"opsState":"Allocated"}}"#,
        ],
        None,
    );
    // Release by hand: patch the image (OnDelete), scale to 6, wait, retire idle old servers.
    server.kubectl_ok(
        &["patch", "gss", "minecraft", "--type=merge", "-p",
          &json!({"spec": {"gameServerTemplate": {"spec": {"containers": [{"name": "minecraft", "image": NEW}]}}}}).to_string()],
        None,
    );
    server.kubectl_ok(&["scale", "gss", "minecraft", "--replicas=6"], None);
    let after = eventually("3 new servers Ready on the new image", || async {
        let f = fleet(&servers, "minecraft").await;
        let new_ready = f
            .values()
            .filter(|v| v.state == "Ready" && v.image == NEW)
            .count();
        (f.len() == 6 && new_ready == 3).then_some(f)
    })
    .await;
    for (name, old) in &before {
        assert_eq!(
            after[name].uid, old.uid,
            "OnDelete: {name} was not replaced"
        );
        assert_eq!(after[name].image, OLD, "OnDelete: {name} keeps its image");
    }
    for name in ["minecraft-1", "minecraft-2"] {
        server.kubectl_ok(
            &[
                "patch",
                "gs",
                name,
                "--type=merge",
                "-p",
                r#"{"spec":{"opsState":"WaitToBeDeleted"}}"#,
            ],
            None,
        );
    }
    let table = server.kubectl_ok(&["get", "gs"], None);
    let rows: Vec<Vec<&str>> = table
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    let expected = [
        ["NAME", "STATE", "OPSSTATE", "DP", "UP"],
        ["minecraft-0", "Ready", "Allocated", "0", "0"],
        ["minecraft-1", "Ready", "WaitToBeDeleted", "0", "0"],
        ["minecraft-2", "Ready", "WaitToBeDeleted", "0", "0"],
        ["minecraft-3", "Ready", "None", "0", "0"],
        ["minecraft-4", "Ready", "None", "0", "0"],
        ["minecraft-5", "Ready", "None", "0", "0"],
    ];
    assert_eq!(rows.len(), expected.len(), "{table}");
    for (row, want) in rows.iter().zip(expected) {
        assert_eq!(row[..5], want, "{table}");
    }
    let gss = server.kubectl_ok(&["get", "gss", "minecraft", "-o", "jsonpath={.status.replicas} {.status.readyReplicas} {.status.updatedReplicas} {.status.waitToBeDeletedReplicas}"], None);
    assert_eq!(gss, "6 6 3 2");
    let describe = server.kubectl_ok(&["describe", "gss", "minecraft"], None);
    assert!(
        describe.contains("SuccessfulCreate")
            && describe.contains("minecraft-3, minecraft-4, minecraft-5"),
        "{describe}"
    );
}

#[tokio::test]
async fn agones_rolling_update_keeps_ready_floor_and_spares_allocated() {
    let server = Server::start_fleet(&[
        "--in-memory",
        "--sim-startup-ms",
        "1500",
        "--sim-jitter-ms",
        "200",
    ]);
    let client = server.client().await;
    let servers: Api<GameServer> = Api::namespaced(client.clone(), "default");
    let sets: Api<GameServerSet> = Api::namespaced(client.clone(), "default");
    let strategy =
        "{type: AgonesRollingUpdate, rollingUpdate: {maxSurge: '25%', maxUnavailable: '25%'}}";
    server.kubectl_ok(
        &["apply", "-f", "-"],
        Some(&gss_yaml("arena", 8, strategy, "game:v1")),
    );
    let start = all_ready(&servers, "arena", 8, "game:v1").await;
    let allocated: Vec<String> = start.keys().take(2).cloned().collect();
    for name in &allocated {
        set_ops(&servers, name, "Allocated").await;
    }
    set_image(&sets, "arena", "game:v2").await;
    // Sample continuously until the rollout is done.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut samples = 0;
    loop {
        let f = fleet(&servers, "arena").await;
        samples += 1;
        let ready = f.values().filter(|v| v.state == "Ready").count();
        assert!(
            ready >= 6,
            "Ready servers fell to {ready} (< replicas 8 - maxUnavailable 2): {f:?}"
        );
        for name in &allocated {
            let v = f
                .get(name)
                .unwrap_or_else(|| panic!("allocated {name} was deleted"));
            assert_eq!(v.uid, start[name].uid, "allocated {name} was replaced");
            assert_eq!(v.image, "game:v1", "allocated {name} was re-imaged");
        }
        let done = f.len() == 8
            && f.iter()
                .filter(|(n, _)| !allocated.contains(n))
                .all(|(_, v)| v.image == "game:v2" && v.state == "Ready");
        if done {
            break;
        }
        assert!(Instant::now() < deadline, "rollout did not finish: {f:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        samples > 5,
        "the rollout was sampled while it ran ({samples} samples)"
    );
}

/// OKG's RollingUpdate recreates every old server, the Allocated one
/// included, one unavailable at a time (kruise Advanced StatefulSet
/// `rollingUpdateStatefulsetPods`, which OKG's GameServerSet drives).
#[tokio::test]
async fn okg_rolling_update_recreates_allocated_servers_too() {
    let server = Server::start_fleet(&[
        "--in-memory",
        "--sim-startup-ms",
        "300",
        "--sim-jitter-ms",
        "100",
    ]);
    let client = server.client().await;
    let servers: Api<GameServer> = Api::namespaced(client.clone(), "default");
    let sets: Api<GameServerSet> = Api::namespaced(client.clone(), "default");
    server.kubectl_ok(
        &["apply", "-f", "-"],
        Some(&gss_yaml("okg", 3, "{type: RollingUpdate}", "game:v1")),
    );
    let start = all_ready(&servers, "okg", 3, "game:v1").await;
    let busy = start.keys().next().cloned().expect("a server");
    set_ops(&servers, &busy, "Allocated").await;
    let busy_uid = servers
        .get(&busy)
        .await
        .expect("get")
        .metadata
        .uid
        .expect("uid");
    set_image(&sets, "okg", "game:v2").await;
    let done = all_ready(&servers, "okg", 3, "game:v2").await;
    assert!(done.contains_key(&busy), "{done:?}");
    let after = servers
        .get(&busy)
        .await
        .expect("get")
        .metadata
        .uid
        .expect("uid");
    assert_ne!(
        after, busy_uid,
        "the Allocated server was recreated, as OKG does"
    );
}

/// OKG gameserverset_manager.go `computeToScaleGs` and `GameServerScale`:
/// a server whose id becomes reserved is deleted and the set keeps its
/// size at other ids; with `scaleDownStrategyType: ReserveIds` the ids a
/// scale-down removes are added to `reserveGameServerIds` and not used
/// again.
#[tokio::test]
async fn reserved_ids_are_deleted_and_scale_downs_backfill_them() {
    let server = Server::start_fleet(&[
        "--in-memory",
        "--sim-startup-ms",
        "200",
        "--sim-jitter-ms",
        "50",
    ]);
    let client = server.client().await;
    let servers: Api<GameServer> = Api::namespaced(client.clone(), "default");
    let sets: Api<GameServerSet> = Api::namespaced(client.clone(), "default");
    let yaml = gss_yaml("res", 3, "{type: OnDelete}", "game:v1").replace(
        "  replicas: 3\n",
        "  replicas: 3\n  scaleStrategy: {scaleDownStrategyType: ReserveIds}\n",
    );
    server.kubectl_ok(&["apply", "-f", "-"], Some(&yaml));
    all_ready(&servers, "res", 3, "game:v1").await;

    // Reserve id 1: res-1 goes, another id keeps the set at 3.
    let patch = json!({"spec": {"reserveGameServerIds": [1]}});
    sets.patch("res", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("reserve");
    let names = eventually("res-1 replaced at another id", || async {
        let f = fleet(&servers, "res").await;
        (f.len() == 3 && !f.contains_key("res-1")).then_some(f)
    })
    .await;
    assert!(names.contains_key("res-3"), "{names:?}");

    // Scale down by one: the id removed joins the reserved ones.
    let patch = json!({"spec": {"replicas": 2}});
    sets.patch("res", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("scale");
    let reserved = eventually("the removed id reserved", || async {
        let gss = sets.get("res").await.ok()?;
        let ids = serde_json::to_value(gss.spec.reserve_game_server_ids?).ok()?;
        (ids.as_array()?.len() == 2).then_some(ids)
    })
    .await;
    assert_eq!(reserved[0], 1, "{reserved}");
    let removed = reserved[1].as_i64().expect("an id");
    let gone = format!("res-{removed}");
    // The server at the removed id goes (its GameServer follows its pod,
    // so the set's status and the list of servers agree only later).
    let names = eventually("two servers, none at the removed id", || async {
        let f = fleet(&servers, "res").await;
        (f.len() == 2 && !f.contains_key(&gone)).then_some(f)
    })
    .await;
    assert!(!names.contains_key("res-1"), "{names:?}");
    // Back to 3: neither reserved id comes back.
    let patch = json!({"spec": {"replicas": 3}});
    sets.patch("res", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("scale up");
    let names = eventually("three servers again", || async {
        let f = fleet(&servers, "res").await;
        (f.len() == 3).then_some(f)
    })
    .await;
    assert!(!names.contains_key("res-1"), "{names:?}");
    assert!(!names.contains_key(&gone), "{names:?}");
}

#[tokio::test]
async fn recreate_replaces_all_but_allocated_at_once() {
    let server = Server::start_fleet(FAST);
    let client = server.client().await;
    let servers: Api<GameServer> = Api::namespaced(client.clone(), "default");
    let sets: Api<GameServerSet> = Api::namespaced(client.clone(), "default");
    server.kubectl_ok(
        &["apply", "-f", "-"],
        Some(&gss_yaml("lobby", 4, "{type: Recreate}", "game:v1")),
    );
    let start = all_ready(&servers, "lobby", 4, "game:v1").await;
    let keep = start.keys().next().cloned().unwrap_or_default();
    set_ops(&servers, &keep, "Allocated").await;
    set_image(&sets, "lobby", "game:v2").await;
    let end = eventually("3 replacements Ready on v2", || async {
        let f = fleet(&servers, "lobby").await;
        let fresh = f
            .values()
            .filter(|v| v.image == "game:v2" && v.state == "Ready")
            .count();
        (f.len() == 4 && fresh == 3).then_some(f)
    })
    .await;
    assert_eq!(
        end[&keep].uid, start[&keep].uid,
        "the allocated server stays"
    );
    assert_eq!(end[&keep].image, "game:v1");
    for (name, v) in &start {
        if name != &keep {
            assert!(
                end.get(name).is_none_or(|e| e.uid != v.uid),
                "{name} was replaced"
            );
        }
    }
}

#[tokio::test]
async fn no_disruption_waits_for_players_then_times_out() {
    let server = Server::start_fleet(FAST);
    let client = server.client().await;
    let servers: Api<GameServer> = Api::namespaced(client.clone(), "default");
    let sets: Api<GameServerSet> = Api::namespaced(client.clone(), "default");
    let strategy = "{type: NoDisruption, drainTimeoutSeconds: 4, rollingUpdate: {maxSurge: 2}}";
    server.kubectl_ok(
        &["apply", "-f", "-"],
        Some(&gss_yaml("duel", 3, strategy, "game:v1")),
    );
    let start = all_ready(&servers, "duel", 3, "game:v1").await;
    let mut names = start.keys().cloned();
    let (leaves, stays) = (
        names.next().unwrap_or_default(),
        names.next().unwrap_or_default(),
    );
    for (name, players) in [(&leaves, 2), (&stays, 5)] {
        set_ops(&servers, name, "Allocated").await;
        let status = json!({"status": {"players": players}});
        servers
            .patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
            .await
            .expect("players");
    }
    set_image(&sets, "duel", "game:v2").await;
    eventually("old servers marked draining", || async {
        let f = fleet(&servers, "duel").await;
        (f.get(&leaves).is_some_and(|v| v.draining) && f.get(&stays).is_some_and(|v| v.draining))
            .then_some(())
    })
    .await;
    // Players leave one match: that server goes; the other keeps its match.
    set_ops(&servers, &leaves, "None").await;
    servers
        .patch_status(
            &leaves,
            &PatchParams::default(),
            &Patch::Merge(&json!({"status": {"players": 0}})),
        )
        .await
        .expect("players leave");
    eventually("the drained server is removed", || async {
        let f = fleet(&servers, "duel").await;
        (!f.contains_key(&leaves) && f.get(&stays).is_some_and(|v| v.ops == "Allocated"))
            .then_some(())
    })
    .await;
    // The other one times out (4 s) and an event says how many players it had.
    eventually("the drain timeout terminates the busy server", || async {
        (!fleet(&servers, "duel").await.contains_key(&stays)).then_some(())
    })
    .await;
    let describe = server.kubectl_ok(&["describe", "gss", "duel"], None);
    assert!(
        describe.contains("DrainTimeout") && describe.contains("5 players"),
        "{describe}"
    );
    let end = all_ready(&servers, "duel", 3, "game:v2").await;
    assert!(end.values().all(|v| !v.draining));
}

#[tokio::test]
async fn kill_lowers_replicas_and_removes_the_server() {
    let server = Server::start_fleet(FAST);
    let client = server.client().await;
    let servers: Api<GameServer> = Api::namespaced(client.clone(), "default");
    server.kubectl_ok(
        &["apply", "-f", "-"],
        Some(&gss_yaml("kills", 4, "{type: OnDelete}", "game:v1")),
    );
    all_ready(&servers, "kills", 4, "game:v1").await;
    set_ops(&servers, "kills-1", "Kill").await;
    let remaining: BTreeSet<String> = eventually("kills-1 removed and not replaced", || async {
        let f = fleet(&servers, "kills").await;
        (f.len() == 3 && !f.contains_key("kills-1")).then(|| f.keys().cloned().collect())
    })
    .await;
    assert_eq!(
        remaining,
        ["kills-0", "kills-2", "kills-3"]
            .map(String::from)
            .into_iter()
            .collect()
    );
    let replicas = server.kubectl_ok(
        &["get", "gss", "kills", "-o", "jsonpath={.spec.replicas}"],
        None,
    );
    assert_eq!(replicas, "3");
}

#[tokio::test]
async fn crash_pattern_images_crash_and_restart() {
    let mut args = FAST.to_vec();
    args.extend(["--sim-crash-image", "broken"]);
    let server = Server::start_fleet(&args);
    let client = server.client().await;
    let servers: Api<GameServer> = Api::namespaced(client.clone(), "default");
    server.kubectl_ok(
        &["apply", "-f", "-"],
        Some(&gss_yaml("bad", 2, "{type: OnDelete}", "game:broken")),
    );
    // A crash loop as kubelet reports it: OKG shows NotReady (pod Running), not Crash.
    let restarts = eventually("both servers NotReady with restarts", || async {
        let list = servers
            .list(&ListParams::default().labels("game.kruise.io/owner-gss=bad"))
            .await
            .ok()?;
        let counts: Vec<i32> = list
            .items
            .iter()
            .filter(|g| {
                g.status.as_ref().and_then(|s| s.current_state.as_deref()) == Some("NotReady")
            })
            .filter_map(|g| {
                g.status
                    .as_ref()?
                    .pod_status
                    .as_ref()?
                    .container_statuses
                    .as_ref()?
                    .first()
                    .map(|c| c.restart_count)
            })
            .collect();
        (counts.len() == 2).then_some(counts)
    })
    .await;
    assert!(restarts.iter().all(|r| *r >= 1), "{restarts:?}");
}

#[tokio::test]
async fn parameters_reach_servers_and_metrics_count_them() {
    let server = Server::start_fleet(FAST);
    let client = server.client().await;
    let servers: Api<GameServer> = Api::namespaced(client.clone(), "default");
    let yaml = gss_yaml("params", 2, "{type: RollingUpdate}", "game:v1")
        + "  parameters: {maxPlayers: 32}\n";
    server.kubectl_ok(&["apply", "-f", "-"], Some(&yaml));
    all_ready(&servers, "params", 2, "game:v1").await;
    let max = eventually("maxPlayers mirrored into status", || async {
        let list = servers
            .list(&ListParams::default().labels("game.kruise.io/owner-gss=params"))
            .await
            .ok()?;
        let v: Vec<i32> = list
            .items
            .iter()
            .filter_map(|g| g.status.as_ref()?.max_players)
            .collect();
        (v.len() == 2).then_some(v)
    })
    .await;
    assert_eq!(max, [32, 32]);
    let metrics = reqwest::get(format!("http://127.0.0.1:{}/metrics", server.service_port))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains(r#"gameops_gameservers{cluster="gameops",namespace="default",gameserverset="params",state="Ready",ops_state="None",image="game:v1"} 2"#),
        "{metrics}"
    );
    assert!(
        metrics.contains("gameops_reconcile_duration_seconds_count"),
        "{metrics}"
    );
}

#[tokio::test]
async fn allocated_servers_beyond_replicas_stay_and_are_marked_overflow() {
    let server = Server::start_fleet(FAST);
    let client = server.client().await;
    let servers: Api<GameServer> = Api::namespaced(client.clone(), "default");
    let yaml = gss_yaml("busy", 3, "{type: OnDelete}", "game:v1")
        + "  allocationOverflow: {labels: {version: ''}, annotations: {gameops.io/overflow: 'true'}}\n";
    let yaml = yaml.replace(
        "  gameServerTemplate:\n    spec:",
        "  gameServerTemplate:\n    metadata: {labels: {version: v1}}\n    spec:",
    );
    server.kubectl_ok(&["apply", "-f", "-"], Some(&yaml));
    all_ready(&servers, "busy", 3, "game:v1").await;
    for name in ["busy-0", "busy-1", "busy-2"] {
        set_ops(&servers, name, "Allocated").await;
    }
    server.kubectl_ok(&["scale", "gss", "busy", "--replicas=1"], None);
    let marked = eventually("two servers marked as overflow", || async {
        let list = servers
            .list(&ListParams::default().labels("game.kruise.io/owner-gss=busy"))
            .await
            .ok()?;
        let marked: BTreeSet<String> = list
            .items
            .iter()
            .filter(|g| {
                let overflow = g
                    .metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get("gameops.io/overflow"))
                    .is_some();
                let unlabelled = g
                    .metadata
                    .labels
                    .as_ref()
                    .is_some_and(|l| !l.contains_key("version"));
                overflow && unlabelled
            })
            .filter_map(|g| g.metadata.name.clone())
            .collect();
        (list.items.len() == 3 && marked.len() == 2).then_some(marked)
    })
    .await;
    assert_eq!(
        marked,
        ["busy-1", "busy-2"].map(String::from).into_iter().collect(),
        "highest ordinals overflow first"
    );
    let f = fleet(&servers, "busy").await;
    assert!(
        f.values().all(|v| v.ops == "Allocated"),
        "no allocated server was deleted by the scale-down: {f:?}"
    );
}

#[tokio::test]
async fn allocator_allocates_from_the_simulated_fleet_and_matches_end() {
    let mut args = FAST.to_vec();
    args.extend(["--sim-match-secs", "2"]);
    let server = Server::start_fleet(&args);
    let client = server.client().await;
    let servers: Api<GameServer> = Api::namespaced(client.clone(), "default");
    server.kubectl_ok(
        &["apply", "-f", "-"],
        Some(&gss_yaml("pool", 2, "{type: OnDelete}", "game:v1")),
    );
    all_ready(&servers, "pool", 2, "game:v1").await;
    let http = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{}/v1/allocate", server.service_port);
    let body =
        json!({"namespace": "default", "selectors": [{"gameServerSet": "pool"}], "players": 4});
    let answer: serde_json::Value = eventually("the allocator's cache to be ready", || async {
        let r = http.post(&url).json(&body).send().await.ok()?;
        r.status().is_success().then_some(r.json().await.ok()?)
    })
    .await;
    assert_eq!(answer["state"], "Allocated", "{answer}");
    let name = answer["gameServerName"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let gs = servers.get(&name).await.expect("allocated server");
    assert_eq!(gs.spec.ops_state.as_deref(), Some("Allocated"));
    assert_eq!(gs.status.and_then(|s| s.players), Some(4));
    // The simulated match ends after 2 s: the server is idle again.
    eventually("the match to end", || async {
        let gs = servers.get(&name).await.ok()?;
        (gs.spec.ops_state.as_deref() == Some("None") && gs.status?.players == Some(0))
            .then_some(())
    })
    .await;
}
