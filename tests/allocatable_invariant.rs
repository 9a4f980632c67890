//! Issue 11's invariant, as a property over random pipelines and match
//! timings: while shipped templates run one after another on a set (a
//! release, a rollback, a release of a crashing image; keeping the surge
//! or not), the set's
//! allocatable servers (Ready, opsState None, not being deleted) never drop
//! to zero because of the pipeline. Matches take at most one server at a
//! time here, so the set of three always has allocatable servers unless a
//! pipeline takes them.

mod common;

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use common::{MINECRAFT_GSS, Server};
use gameops::api::GameServer;
use kube::api::{Api, ListParams, Patch, PatchParams};
use proptest::prelude::*;
use serde_json::json;

const OLD: &str = "registry.cn-hangzhou.aliyuncs.com/acs/minecraft-demo:1.12.2";
const NEW: &str = "registry.cn-hangzhou.aliyuncs.com/acs/minecraft-demo:1.12.2-new";
const BAD: &str = "registry.cn-hangzhou.aliyuncs.com/acs/minecraft-demo:1.12.2-bad";
const TEMPLATES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/workflow-templates");

#[derive(Debug, Clone, Copy)]
enum Pipeline {
    /// seamless-release of the image the set does not run.
    Release,
    /// rollback to the image before the last change.
    Rollback,
    /// seamless-release of an image that crashes: rolled back, Failed.
    CrashingRelease,
}

fn pipeline() -> impl Strategy<Value = Pipeline> {
    prop_oneof![
        Just(Pipeline::Release),
        Just(Pipeline::Rollback),
        Just(Pipeline::CrashingRelease),
    ]
}

fn allocatable(gs: &GameServer) -> bool {
    gs.metadata.deletion_timestamp.is_none()
        && gs.status.as_ref().and_then(|s| s.current_state.as_deref()) == Some("Ready")
        && gs.spec.ops_state.as_deref().unwrap_or("None") == "None"
}

async fn servers(api: &Api<GameServer>) -> Vec<GameServer> {
    api.list(&ListParams::default().labels("game.kruise.io/owner-gss=minecraft"))
        .await
        .map(|l| l.items)
        .unwrap_or_default()
}

/// Players: one match at a time, on an allocatable server, for each of
/// `matches` (milliseconds), until `stop`.
async fn players(api: Api<GameServer>, matches: Vec<u64>, stop: Arc<AtomicBool>) {
    let params = PatchParams::default();
    for ms in matches.iter().cycle() {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let list = servers(&api).await;
        let Some(gs) = list.iter().find(|g| allocatable(g)) else {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        let name = gs.metadata.name.clone().unwrap_or_default();
        let take = json!({"metadata": {"resourceVersion": gs.metadata.resource_version},
            "spec": {"opsState": "Allocated"}});
        if api
            .patch(&name, &params, &Patch::Merge(&take))
            .await
            .is_err()
        {
            continue;
        }
        tokio::time::sleep(Duration::from_millis(*ms)).await;
        let free = json!({"spec": {"opsState": "None"}});
        let _ = api.patch(&name, &params, &Patch::Merge(&free)).await;
    }
}

/// Watches the set until `stop`; counts the looks that found no
/// allocatable server.
async fn watch(api: Api<GameServer>, stop: Arc<AtomicBool>, empty: Arc<AtomicUsize>) {
    while !stop.load(Ordering::SeqCst) {
        let list = servers(&api).await;
        let free = list.iter().filter(|g| allocatable(g)).count();
        // One server may be in a match; the pipeline must leave another.
        let in_match = list
            .iter()
            .filter(|g| g.spec.ops_state.as_deref() == Some("Allocated"))
            .count();
        if free == 0 && in_match <= 1 {
            empty.fetch_add(1, Ordering::SeqCst);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn run(server: &Server, pipeline: Pipeline, keep_surge: bool, current: &str) -> (bool, String) {
    let (template, param) = match pipeline {
        Pipeline::Release => (
            "seamless-release",
            format!("image={}", if current == NEW { OLD } else { NEW }),
        ),
        Pipeline::Rollback => ("rollback", "surge=3".to_owned()),
        Pipeline::CrashingRelease => ("seamless-release", format!("image={BAD}")),
    };
    let out = Command::new(env!("CARGO_BIN_EXE_gameops"))
        .args(["run", template, "--templates", TEMPLATES, "--plugin"])
        .arg(format!("http://127.0.0.1:{}", server.service_port))
        .arg("--plugin-token-file")
        .arg(server.data_dir().join("plugin-token"))
        .args(["-p", &param, "-p", "timeoutSeconds=30"])
        .args(["-p", &format!("keepSurge={keep_surge}")])
        .env("RUST_LOG", "warn")
        .output()
        .expect("gameops run starts");
    (
        out.status.success(),
        format!(
            "{template} {param}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

async fn scenario(
    pipelines: Vec<(Pipeline, bool)>,
    matches: Vec<u64>,
) -> Result<(), TestCaseError> {
    let server = Server::start_fleet(&[
        "--in-memory",
        "--sim-startup-ms",
        "400",
        "--sim-jitter-ms",
        "100",
        "--sim-crash-image=-bad$",
    ]);
    server.kubectl_ok(&["apply", "-f", "-"], Some(MINECRAFT_GSS));
    let api: Api<GameServer> = Api::namespaced(server.client().await, "default");
    while servers(&api)
        .await
        .iter()
        .filter(|g| allocatable(g))
        .count()
        < 3
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let stop = Arc::new(AtomicBool::new(false));
    let empty = Arc::new(AtomicUsize::new(0));
    let players = tokio::spawn(players(api.clone(), matches, stop.clone()));
    let watcher = tokio::spawn(watch(api.clone(), stop.clone(), empty.clone()));
    let server = Arc::new(server);
    let mut current = OLD.to_owned();
    let mut log = Vec::new();
    for (p, keep_surge) in pipelines {
        let s = server.clone();
        let now = current.clone();
        let (ok, out) = tokio::task::spawn_blocking(move || run(&s, p, keep_surge, &now))
            .await
            .expect("the run ran");
        match (p, ok) {
            (Pipeline::Release, true) => {
                current = if current == NEW { OLD } else { NEW }.to_owned();
            }
            (Pipeline::Rollback, _) => current = OLD.to_owned(),
            _ => {}
        }
        log.push(out);
    }
    stop.store(true, Ordering::SeqCst);
    let _ = players.await;
    let _ = watcher.await;
    prop_assert_eq!(
        empty.load(Ordering::SeqCst),
        0,
        "the pipelines left no allocatable server:\n{}",
        log.join("\n")
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4, ..ProptestConfig::default() })]

    #[test]
    fn allocatable_servers_never_drop_to_zero_because_of_a_pipeline(
        pipelines in prop::collection::vec((pipeline(), any::<bool>()), 1..4),
        matches in prop::collection::vec(20u64..600, 1..6),
    ) {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(scenario(pipelines, matches))?;
    }
}
