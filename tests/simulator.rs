//! The simulated fleet against the real embedded API server, in-process:
//! an in-memory cluster served over HTTP on a free loopback port, a kube-rs
//! client of it, and `simulator::run` as the only thing acting on
//! GameServers (no GameServerSet controller), so each test sees exactly what
//! the simulator does.

mod common;

use common::schema::close_objects;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use gameops::api::{
    GameServer, GameServerContainer, GameServerSet, GameServerSetSpec, GameServerSpec,
    GameServerTemplate, MATCH_STARTED_ANNOTATION, OWNER_GSS_LABEL, Parameters,
};
use gameops::cluster::apiserver::Cluster;
use gameops::cluster::kubeconfig::{self, Credentials};
use gameops::fleet::simulator::{self, SimulatorConfig};
use jiff::Timestamp;
use kube::api::{
    ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams,
};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use regex::Regex;
use serde_json::{Value, json};

const IMAGE: &str = "registry.example/game:1.0";
const IMAGE2: &str = "registry.example/game:2.0";
const BROKEN: &str = "registry.example/game:2.0-broken";
const NS: &str = "default";

/// A running API server and simulator; both stop when dropped.
struct Fleet {
    client: Client,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Fleet {
    fn drop(&mut self) {
        self.tasks.iter().for_each(|t| t.abort());
    }
}

impl Fleet {
    /// The API server alone.
    async fn serve() -> Self {
        let cluster = Cluster::open("gameops", None).expect("in-memory store");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a loopback port");
        let addr = listener.local_addr().expect("bound address");
        let router = gameops::cluster::apiserver::router(&[cluster], None);
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        let client_config = kubeconfig::client_config(addr, "gameops", Credentials::default())
            .await
            .expect("client config");
        let client = Client::try_from(client_config).expect("client");
        Self {
            client,
            tasks: vec![server],
        }
    }

    /// Starts the simulator.
    fn simulate(&mut self, config: SimulatorConfig) {
        let sim = tokio::spawn(simulator::run(self.client.clone(), config));
        self.tasks.push(sim);
    }

    /// The API server and the simulator.
    async fn start(config: SimulatorConfig) -> Self {
        let mut fleet = Self::serve().await;
        fleet.simulate(config);
        fleet
    }

    fn servers(&self) -> Api<GameServer> {
        Api::namespaced(self.client.clone(), NS)
    }

    async fn create(&self, gs: GameServer) -> GameServer {
        self.servers()
            .create(&PostParams::default(), &gs)
            .await
            .expect("create GameServer")
    }

    async fn get(&self, name: &str) -> GameServer {
        self.servers().get(name).await.expect("get GameServer")
    }

    /// The stored object exactly as the API server returns it.
    async fn raw(&self, name: &str) -> Value {
        let api: Api<DynamicObject> = Api::namespaced_with(
            self.client.clone(),
            NS,
            &ApiResource::erase::<GameServer>(&()),
        );
        serde_json::to_value(api.get(name).await.expect("get GameServer")).expect("JSON")
    }

    async fn patch(&self, name: &str, body: Value) -> GameServer {
        self.servers()
            .patch(name, &PatchParams::default(), &Patch::Merge(&body))
            .await
            .expect("patch GameServer")
    }

    /// Records every version of every GameServer the watch delivers.
    fn record(&mut self) -> History {
        let history = History::default();
        let api: Api<DynamicObject> = Api::namespaced_with(
            self.client.clone(),
            NS,
            &ApiResource::erase::<GameServer>(&()),
        );
        let sink = history.clone();
        self.tasks.push(tokio::spawn(async move {
            let mut events = watcher(api, watcher::Config::default())
                .applied_objects()
                .boxed();
            while let Ok(Some(object)) = events.try_next().await {
                if let Ok(v) = serde_json::to_value(object) {
                    sink.0.lock().expect("history lock").push(v);
                }
            }
        }));
        history
    }
}

/// Every version of the GameServers seen by a watch, in order.
#[derive(Clone, Default)]
struct History(Arc<Mutex<Vec<Value>>>);

impl History {
    /// Waits until the watch has delivered `name` in `state` running
    /// `image` (a GET can see it before the watch event arrives).
    async fn caught_up(&self, name: &str, state: &str, image: &str) {
        let want = (state.to_owned(), image.to_owned());
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while self.states(name).last() != Some(&want) {
            assert!(
                std::time::Instant::now() < deadline,
                "the watch never delivered {name} {state} {image}: {:?}",
                self.states(name)
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The versions of `name`, raw.
    fn of(&self, name: &str) -> Vec<Value> {
        self.0
            .lock()
            .expect("history lock")
            .iter()
            .filter(|v| v["metadata"]["name"] == name)
            .cloned()
            .collect()
    }

    /// The successive `(currentState, running image)` of `name`, without repeats.
    fn states(&self, name: &str) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = Vec::new();
        for v in self.of(name) {
            if v["status"]["currentState"].is_null() {
                continue;
            }
            let entry = (
                v["status"]["currentState"]
                    .as_str()
                    .unwrap_or("-")
                    .to_owned(),
                v["status"]["podStatus"]["containerStatuses"][0]["image"]
                    .as_str()
                    .unwrap_or("-")
                    .to_owned(),
            );
            if out.last() != Some(&entry) {
                out.push(entry);
            }
        }
        out
    }

    /// The first recorded version of `name` in `state`.
    fn first_in(&self, name: &str, state: &str) -> Option<Value> {
        self.of(name)
            .into_iter()
            .find(|v| v["status"]["currentState"] == state)
    }
}

fn game_server(name: &str, image: &str) -> GameServer {
    GameServer::new(
        name,
        GameServerSpec {
            containers: Some(vec![GameServerContainer {
                name: "game".into(),
                image: Some(image.into()),
                resources: None,
            }]),
            ..Default::default()
        },
    )
}

fn config() -> SimulatorConfig {
    SimulatorConfig {
        startup_delay: Duration::ZERO,
        startup_jitter: Duration::ZERO,
        crash_image: Some(Regex::new("broken").expect("regex")),
        pull_fail_image: Some(Regex::new("unpullable").expect("regex")),
        crash_backoff: Duration::from_secs(1),
        match_duration: Duration::from_secs(300),
        default_max_players: 10,
    }
}

/// Polls `probe` until it gives a value; fails with its last complaint
/// after `limit`.
async fn eventually<T>(
    what: &str,
    limit: Duration,
    mut probe: impl AsyncFnMut() -> Result<T, String>,
) -> T {
    let deadline = Instant::now() + limit;
    loop {
        match probe().await {
            Ok(v) => return v,
            Err(last) => assert!(
                Instant::now() < deadline,
                "timed out after {limit:?} waiting for {what}; last seen: {last}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn state(gs: &GameServer) -> &str {
    gs.status
        .as_ref()
        .and_then(|s| s.current_state.as_deref())
        .unwrap_or("-")
}

fn running(gs: &GameServer) -> Option<k8s_openapi::api::core::v1::ContainerStatus> {
    gs.status
        .as_ref()?
        .pod_status
        .as_ref()?
        .container_statuses
        .as_ref()?
        .first()
        .cloned()
}

/// Waits until `name` is Ready running `image`.
async fn ready(fleet: &Fleet, name: &str, image: &str) -> GameServer {
    eventually(
        &format!("{name} Ready with {image}"),
        Duration::from_secs(20),
        async || {
            let gs = fleet.get(name).await;
            let img = running(&gs).map(|c| c.image).unwrap_or_default();
            if state(&gs) == "Ready" && img == image {
                Ok(gs)
            } else {
                Err(format!("{} running {img:?}", state(&gs)))
            }
        },
    )
    .await
}

// ---- OKG schema -----------------------------------------------------------

const OKG_GAMESERVER_CRD: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/reference/kruise-game/game.kruise.io_gameservers.yaml"
);

/// Fails if `object` (minus the gameops extensions) does not validate
/// against OKG's strict GameServer schema.
fn assert_okg_valid(object: &Value) {
    let text = std::fs::read_to_string(OKG_GAMESERVER_CRD).expect("OKG GameServer CRD");
    let crd: Value = serde_yaml_ng::from_str(&text).expect("CRD YAML");
    let mut schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone();
    let props = schema["properties"].as_object_mut().expect("properties");
    props.insert("metadata".into(), json!({"type": "object"}));
    close_objects(&mut schema);
    let mut instance = object.clone();
    for ext in gameops::api::GAMESERVER_EXTENSIONS {
        let (parent, field) = ext.rsplit_once('.').expect("a JSON path");
        if let Some(p) = instance
            .pointer_mut(&parent.replace('.', "/"))
            .and_then(Value::as_object_mut)
        {
            p.remove(field);
        }
    }
    let validator = jsonschema::validator_for(&schema).expect("schema");
    let errors: Vec<String> = validator
        .iter_errors(&instance)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "not valid for OKG: {errors:#?}\n{instance:#}"
    );
}

// ---- tests -------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_server_is_creating_then_ready_with_its_image() {
    let mut fleet = Fleet::start(SimulatorConfig {
        startup_delay: Duration::from_secs(1),
        ..config()
    })
    .await;
    let history = fleet.record();
    fleet.create(game_server("gs-a", IMAGE)).await;
    let gs = ready(&fleet, "gs-a", IMAGE).await;
    history.caught_up("gs-a", "Ready", IMAGE).await;

    let states = history.states("gs-a");
    let creating = history.first_in("gs-a", "Creating").unwrap_or_else(|| {
        panic!("never seen Creating: {states:?}");
    });
    assert_eq!(creating["status"]["podStatus"]["phase"], "Pending");
    assert_eq!(creating["status"]["desiredState"], "Ready");
    assert_eq!(creating["status"]["deletionPriority"], 0);
    assert_eq!(creating["status"]["updatePriority"], 0);
    assert_okg_valid(&creating);
    let creating_since: Timestamp =
        serde_json::from_value(creating["status"]["lastTransitionTime"].clone())
            .expect("Creating has a lastTransitionTime");

    let status = gs.status.clone().expect("status");
    let ready_since = status
        .last_transition_time
        .clone()
        .expect("lastTransitionTime")
        .0;
    assert!(
        ready_since.duration_since(creating_since) >= jiff::SignedDuration::from_secs(1),
        "Ready at {ready_since}, before the 1 s startup delay since {creating_since}"
    );
    let pod = status.pod_status.clone().expect("podStatus");
    assert_eq!(pod.phase.as_deref(), Some("Running"));
    let ready_condition = pod
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "Ready")
        .expect("a Ready pod condition");
    assert_eq!(ready_condition.status, "True");
    let c = running(&gs).expect("a container status");
    assert_eq!((c.name.as_str(), c.image.as_str()), ("game", IMAGE));
    assert!(c.ready && c.started == Some(true));
    assert!(!c.image_id.is_empty());
    assert!(c.state.and_then(|s| s.running).is_some());
    assert_eq!((status.players, status.max_players), (Some(0), Some(10)));
    let conditions = status.conditions.clone().unwrap_or_default();
    for t in ["PodNormal", "NodeNormal", "PersistentVolumeNormal"] {
        let c = conditions
            .iter()
            .find(|c| c.r#type == t)
            .unwrap_or_else(|| panic!("no {t} condition: {conditions:?}"));
        assert_eq!(c.status, "True", "{t}");
    }
    assert_eq!(
        states,
        [
            ("Creating".to_owned(), IMAGE.to_owned()),
            ("Ready".to_owned(), IMAGE.to_owned())
        ]
    );
    assert_okg_valid(&fleet.raw("gs-a").await);
}

/// Every recorded version of a crash-looping server: Creating once, then
/// NotReady with the pod Running and Ready false; its first CrashLoopBackOff
/// with restartCount 1 and the last termination.
fn assert_crash_loop_versions(versions: &[Value]) {
    let states: Vec<&str> = versions
        .iter()
        .filter_map(|v| v["status"]["currentState"].as_str())
        .collect();
    assert!(
        states.iter().all(|s| ["Creating", "NotReady"].contains(s)),
        "a crashing image is Creating once, then NotReady for good (never Crash, never Ready): {states:?}"
    );
    assert_eq!(
        states.iter().filter(|s| **s == "Creating").count(),
        states.iter().take_while(|s| **s == "Creating").count(),
        "never back to Creating once started: {states:?}"
    );
    for v in versions
        .iter()
        .filter(|v| v["status"]["currentState"] == "NotReady")
    {
        let pod = &v["status"]["podStatus"];
        assert_eq!(pod["phase"], "Running", "{pod}");
        let ready = pod["conditions"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"))
            .cloned()
            .expect("a Ready condition");
        assert_eq!(ready["status"], "False");
        assert_eq!(pod["containerStatuses"][0]["ready"], false);
    }
    let crash = versions
        .iter()
        .find(|v| {
            v["status"]["podStatus"]["containerStatuses"][0]["state"]["waiting"]["reason"]
                == "CrashLoopBackOff"
        })
        .cloned()
        .expect("a CrashLoopBackOff version");
    let container = &crash["status"]["podStatus"]["containerStatuses"][0];
    assert_eq!(container["restartCount"], 1);
    assert_eq!(container["lastState"]["terminated"]["exitCode"], 1);
    assert_eq!(container["lastState"]["terminated"]["reason"], "Error");
    let normal = crash["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "PodNormal"))
        .cloned()
        .expect("PodNormal");
    assert_eq!(normal["status"], "False");
    assert_okg_valid(&crash);
}

/// A crashing image is reported as kubelet reports a crash loop under
/// `restartPolicy: Always` (kubernetes pkg/kubelet/kubelet_pods.go
/// `getPhase`: the pod stays `Running`) and as OKG derives the state from
/// it (kruise-game pkg/controllers/gameserver/gameserver_manager.go: pod
/// `Running` with Ready false is `NotReady`; `Crash` is only pod `Failed`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_image_crash_loops_as_kubelet_reports_it_and_okg_shows_not_ready() {
    let mut fleet = Fleet::start(SimulatorConfig {
        startup_delay: Duration::from_millis(500),
        ..config()
    })
    .await;
    let history = fleet.record();
    fleet.create(game_server("gs-good", IMAGE)).await;
    fleet.create(game_server("gs-bad", BROKEN)).await;
    ready(&fleet, "gs-good", IMAGE).await;

    eventually(
        "3 restarts of gs-bad",
        Duration::from_secs(30),
        async || {
            let gs = fleet.get("gs-bad").await;
            let c = running(&gs).unwrap_or_default();
            if c.restart_count >= 3 {
                Ok(())
            } else {
                Err(format!("{} restartCount {}", state(&gs), c.restart_count))
            }
        },
    )
    .await;
    // Every version the watch saw (a poll can miss a back-off that a
    // whole-second `finishedAt` makes short).
    let mut counts: Vec<i64> = Vec::new();
    for v in history.of("gs-bad") {
        let c = &v["status"]["podStatus"]["containerStatuses"][0];
        if c["state"]["waiting"]["reason"] == "CrashLoopBackOff" {
            assert_eq!(v["status"]["currentState"], "NotReady");
            assert_eq!(c["ready"], false);
            assert_eq!(c["image"], BROKEN);
            let n = c["restartCount"].as_i64().unwrap_or(-1);
            if counts.last() != Some(&n) {
                counts.push(n);
            }
        }
    }
    assert!(
        counts.windows(2).all(|w| w[0] < w[1]) && counts.len() >= 2,
        "restartCount should grow while crashing: {counts:?}"
    );

    assert_crash_loop_versions(&history.of("gs-bad"));
}

/// An image that cannot be pulled never starts: kubelet's `ErrImagePull`,
/// then `ImagePullBackOff`, the pod `Pending` (no container ever ran), so
/// OKG shows `Creating`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unpullable_image_waits_in_image_pull_backoff() {
    let mut fleet = Fleet::start(config()).await;
    let history = fleet.record();
    let image = "registry.example/game:2.0-unpullable";
    fleet.create(game_server("gs-pull", image)).await;
    let gs = eventually("ImagePullBackOff", Duration::from_secs(20), async || {
        let gs = fleet.get("gs-pull").await;
        let c = running(&gs).unwrap_or_default();
        let reason = c.state.and_then(|s| s.waiting).and_then(|w| w.reason);
        if reason.as_deref() == Some("ImagePullBackOff") {
            Ok(gs)
        } else {
            Err(format!("{} {reason:?}", state(&gs)))
        }
    })
    .await;
    assert_eq!(state(&gs), "Creating");
    let pod = gs
        .status
        .as_ref()
        .and_then(|s| s.pod_status.clone())
        .expect("pod status");
    assert_eq!(pod.phase.as_deref(), Some("Pending"));
    let c = running(&gs).expect("container status");
    assert_eq!(
        (c.ready, c.restart_count, c.image.as_str()),
        (false, 0, image)
    );
    let reasons: Vec<String> = history
        .of("gs-pull")
        .iter()
        .filter_map(|v| {
            v["status"]["podStatus"]["containerStatuses"][0]["state"]["waiting"]["reason"]
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    assert!(
        reasons.iter().any(|r| r == "ErrImagePull"),
        "ErrImagePull before the back-off: {reasons:?}"
    );
    assert_okg_valid(&fleet.raw("gs-pull").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_change_updates_in_place_then_runs_the_new_image() {
    // Transition times have whole-second precision (Kubernetes `Time`): a
    // 1 s delay could already be due when the change is seen, skipping the
    // Updating write this test looks for.
    let mut fleet = Fleet::start(SimulatorConfig {
        startup_delay: Duration::from_secs(2),
        ..config()
    })
    .await;
    let history = fleet.record();
    let created = fleet.create(game_server("gs-u", IMAGE)).await;
    ready(&fleet, "gs-u", IMAGE).await;

    fleet
        .patch(
            "gs-u",
            json!({"spec": {"containers": [{"name": "game", "image": IMAGE2}]}}),
        )
        .await;
    let gs = ready(&fleet, "gs-u", IMAGE2).await;
    history.caught_up("gs-u", "Ready", IMAGE2).await;
    assert_eq!(gs.metadata.uid, created.metadata.uid, "updated in place");
    let c = running(&gs).expect("container status");
    assert_eq!(c.restart_count, 1, "the container restarted once");

    let states = history.states("gs-u");
    let updating = states
        .iter()
        .position(|s| s == &("Updating".to_owned(), IMAGE.to_owned()))
        .unwrap_or_else(|| panic!("no Updating (still running the old image): {states:?}"));
    assert_eq!(
        &states[updating - 1..],
        [
            ("Ready".to_owned(), IMAGE.to_owned()),
            ("Updating".to_owned(), IMAGE.to_owned()),
            ("Ready".to_owned(), IMAGE2.to_owned()),
        ],
        "{states:?}"
    );
    let snapshot = history.first_in("gs-u", "Updating").expect("Updating");
    assert_eq!(
        snapshot["status"]["podStatus"]["containerStatuses"][0]["ready"],
        false
    );
    assert_okg_valid(&snapshot);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allocated_match_ends_and_the_server_is_idle_again() {
    let match_duration = Duration::from_secs(2);
    let fleet = Fleet::start(SimulatorConfig {
        match_duration,
        ..config()
    })
    .await;
    fleet.create(game_server("gs-m", IMAGE)).await;
    ready(&fleet, "gs-m", IMAGE).await;

    // What the allocator does: Allocated with the match start, then players.
    let started = Instant::now();
    fleet
        .patch(
            "gs-m",
            json!({
                "metadata": {"annotations": {MATCH_STARTED_ANNOTATION: Timestamp::now().to_string()}},
                "spec": {"opsState": "Allocated"},
            }),
        )
        .await;
    fleet
        .servers()
        .patch_status(
            "gs-m",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"players": 3}})),
        )
        .await
        .expect("set players");

    let gs = eventually("the match to end", Duration::from_secs(20), async || {
        let gs = fleet.get("gs-m").await;
        let players = gs.status.as_ref().and_then(|s| s.players);
        match gs.spec.ops_state.as_deref() {
            Some("Allocated") => {
                // The allocator's players stay for the whole match (at its
                // end they leave first, then the server is released).
                assert!(
                    players == Some(3)
                        || started.elapsed() >= match_duration - Duration::from_millis(100),
                    "players {players:?} after {:?}, during the match",
                    started.elapsed()
                );
                Err(format!("still Allocated with players {players:?}"))
            }
            other => Ok((gs.clone(), other.map(str::to_owned))),
        }
    })
    .await;
    let (gs, ops) = gs;
    assert!(
        started.elapsed() >= match_duration - Duration::from_millis(100),
        "the match ended after {:?}, before its {match_duration:?}",
        started.elapsed()
    );
    assert_eq!(ops.as_deref(), Some("None"));
    assert!(
        !gs.metadata
            .annotations
            .unwrap_or_default()
            .contains_key(MATCH_STARTED_ANNOTATION),
        "the match annotation is removed"
    );
    let gs = eventually("players back to 0", Duration::from_secs(5), async || {
        let gs = fleet.get("gs-m").await;
        match gs.status.as_ref().and_then(|s| s.players) {
            Some(0) => Ok(gs),
            p => Err(format!("players {p:?}")),
        }
    })
    .await;
    assert_eq!(state(&gs), "Ready", "idle again");
    assert_okg_valid(&fleet.raw("gs-m").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allocated_by_hand_keeps_its_ops_state() {
    let match_duration = Duration::from_millis(500);
    let fleet = Fleet::start(SimulatorConfig {
        match_duration,
        ..config()
    })
    .await;
    fleet.create(game_server("gs-hand", IMAGE)).await;
    fleet.create(game_server("gs-matched", IMAGE)).await;
    ready(&fleet, "gs-hand", IMAGE).await;
    ready(&fleet, "gs-matched", IMAGE).await;

    // `kubectl patch gs gs-hand --type merge -p '{"spec":{"opsState":"Allocated"}}'`
    fleet
        .patch("gs-hand", json!({"spec": {"opsState": "Allocated"}}))
        .await;
    // A control server allocated with a match start at the same moment.
    fleet
        .patch(
            "gs-matched",
            json!({
                "metadata": {"annotations": {MATCH_STARTED_ANNOTATION: Timestamp::now().to_string()}},
                "spec": {"opsState": "Allocated"},
            }),
        )
        .await;
    eventually("a player on gs-hand", Duration::from_secs(10), async || {
        let gs = fleet.get("gs-hand").await;
        match gs.status.as_ref().and_then(|s| s.players) {
            Some(1) => Ok(()),
            p => Err(format!("players {p:?}")),
        }
    })
    .await;
    // Once the control's match is over, a match on gs-hand would be too.
    eventually(
        "the control match to end",
        Duration::from_secs(10),
        async || {
            let gs = fleet.get("gs-matched").await;
            match gs.spec.ops_state.as_deref() {
                Some("None") => Ok(()),
                s => Err(format!("opsState {s:?}")),
            }
        },
    )
    .await;
    tokio::time::sleep(match_duration).await;
    let gs = fleet.get("gs-hand").await;
    assert_eq!(gs.spec.ops_state.as_deref(), Some("Allocated"));
    assert_eq!(gs.status.as_ref().and_then(|s| s.players), Some(1));
    assert_eq!(state(&gs), "Ready");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_players_comes_from_the_owning_set() {
    let mut fleet = Fleet::serve().await;
    let sets: Api<GameServerSet> = Api::namespaced(fleet.client.clone(), NS);
    let template: GameServerTemplate = serde_json::from_value(json!({
        "spec": {"containers": [{"name": "game", "image": IMAGE}]},
    }))
    .expect("template");
    sets.create(
        &PostParams::default(),
        &GameServerSet::new(
            "arena",
            GameServerSetSpec {
                replicas: 0,
                game_server_template: Some(template),
                parameters: Some(Parameters {
                    max_players: Some(25),
                }),
                ..Default::default()
            },
        ),
    )
    .await
    .expect("create GameServerSet");
    let mut gs = game_server("arena-0", IMAGE);
    gs.metadata.labels = Some(BTreeMap::from([(
        OWNER_GSS_LABEL.to_owned(),
        "arena".to_owned(),
    )]));
    fleet.create(gs.clone()).await;
    // What the fleet controller writes on the servers it creates.
    gs.metadata.name = Some("arena-1".into());
    gs.metadata.annotations = Some(BTreeMap::from([(
        gameops::api::MAX_PLAYERS_ANNOTATION.to_owned(),
        "16".to_owned(),
    )]));
    fleet.create(gs).await;
    fleet.create(game_server("loner", IMAGE)).await;
    // The simulator lists the sets before it starts any server.
    fleet.simulate(config());
    let gs = ready(&fleet, "arena-0", IMAGE).await;
    assert_eq!(gs.status.and_then(|s| s.max_players), Some(25));
    let gs = ready(&fleet, "arena-1", IMAGE).await;
    assert_eq!(gs.status.and_then(|s| s.max_players), Some(16));
    let gs = ready(&fleet, "loner", IMAGE).await;
    assert_eq!(gs.status.and_then(|s| s.max_players), Some(10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_server_reports_deleting() {
    let fleet = Fleet::start(config()).await;
    let mut gs = game_server("gs-d", IMAGE);
    gs.metadata.finalizers = Some(vec!["test.gameops.io/hold".into()]);
    fleet.create(gs).await;
    ready(&fleet, "gs-d", IMAGE).await;
    fleet
        .servers()
        .delete("gs-d", &DeleteParams::default())
        .await
        .expect("delete");
    eventually("gs-d Deleting", Duration::from_secs(10), async || {
        let gs = fleet.get("gs-d").await;
        if state(&gs) == "Deleting" {
            Ok(())
        } else {
            Err(state(&gs).to_owned())
        }
    })
    .await;
    assert_okg_valid(&fleet.raw("gs-d").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_servers_become_ready_with_zero_delay() {
    const N: usize = 200;
    let fleet = Fleet::start(config()).await;
    let began = Instant::now();
    futures::stream::iter(0..N)
        .map(|i| fleet.create(game_server(&format!("fleet-{i}"), IMAGE)))
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
    eventually(
        "all 200 servers Ready",
        Duration::from_secs(60),
        async || {
            let list = fleet
                .servers()
                .list(&ListParams::default())
                .await
                .map_err(|e| e.to_string())?;
            let ready = list
                .items
                .iter()
                .filter(|gs| state(gs) == "Ready" && running(gs).is_some_and(|c| c.image == IMAGE))
                .count();
            if list.items.len() == N && ready == N {
                Ok(())
            } else {
                Err(format!("{ready} of {} Ready", list.items.len()))
            }
        },
    )
    .await;
    eprintln!(
        "{N} servers Ready {:?} after the first create",
        began.elapsed()
    );
}
