//! The allocator over HTTP against the in-process embedded API server:
//! atomic allocation under concurrency (one allocator and two sharing a
//! cluster), Agones's ordered selectors, which servers are never picked,
//! image references, release, request metadata, clusters and bad input.
#![allow(
    clippy::too_many_lines,
    reason = "a scenario or a table reads best top to bottom"
)]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use gameops::api::{
    DRAINING_LABEL, GameServer, GameServerSpec, MATCH_STARTED_ANNOTATION, OWNER_GSS_LABEL,
};
use gameops::cli::serve::{self, ServeOptions};
use gameops::fleet::allocator::{AllocationResponse, Allocator};
use gameops::metrics::Metrics;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::{Resource, ResourceExt};
use serde_json::{Value, json};

const NS: &str = "default";
const DEADLINE: Duration = Duration::from_secs(30);

/// The embedded API server, an allocator on its own port, and a client of each.
struct Env {
    url: String,
    http: reqwest::Client,
    clients: HashMap<String, kube::Client>,
    allocator: Arc<Allocator>,
    metrics: Arc<Metrics>,
    _dir: tempfile::TempDir,
}

impl Env {
    async fn start() -> Self {
        Self::with_clusters(&["gameops"]).await
    }

    async fn with_clusters(names: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let loopback: SocketAddr = "127.0.0.1:0".parse().expect("address");
        let options = ServeOptions {
            api_listen: loopback,
            listen: loopback,
            data_dir: dir.path().join("data"),
            in_memory: true,
            kubeconfig_out: None,
            clusters: names.iter().map(|s| s.to_string()).collect(),
            api_token_file: None,
            // The tests own every GameServer and its status.
            controller: false,
            simulator: None,
            config: Default::default(),
            write_plugin_token: true,
            event_ttl: gameops::cluster::apiserver::event_ttl::DEFAULT_TTL,
        };
        let running = serve::start(&options).await.expect("start the API server");
        let mut clients = HashMap::new();
        for name in names {
            let client = running.client(name).await.expect("client");
            clients.insert(name.to_string(), client);
        }
        tokio::spawn(running.serve());
        let metrics = Arc::new(Metrics::new());
        let allocator = Self::allocator(names, &clients, &metrics).await;
        let url = serve_allocator(&allocator).await;
        Self {
            url,
            http: reqwest::Client::new(),
            clients,
            allocator,
            metrics,
            _dir: dir,
        }
    }

    async fn allocator(
        names: &[&str],
        clients: &HashMap<String, kube::Client>,
        metrics: &Arc<Metrics>,
    ) -> Arc<Allocator> {
        let clusters = names
            .iter()
            .map(|n| (n.to_string(), clients[*n].clone()))
            .collect();
        let allocator = Allocator::start(clusters, metrics.clone());
        allocator
            .wait_ready(DEADLINE)
            .await
            .expect("allocator cache ready");
        allocator
    }

    fn api(&self) -> Api<GameServer> {
        self.api_in("gameops")
    }

    fn api_in(&self, cluster: &str) -> Api<GameServer> {
        Api::namespaced(self.clients[cluster].clone(), NS)
    }

    async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        post_raw(&self.http, &format!("{}{path}", self.url), body.to_string()).await
    }

    async fn allocate(&self, body: Value) -> AllocationResponse {
        let (status, answer) = self.post("/v1/allocate", &body).await;
        assert_eq!(status, 200, "allocate {body} answered {answer}");
        serde_json::from_value(answer).expect("an allocation response")
    }

    /// Waits until the allocator's cache of `cluster` holds `servers` at
    /// (at least) the given resourceVersions.
    async fn synced(&self, cluster: &str, servers: &[GameServer]) {
        let store = self.allocator.store(cluster).expect("cluster cache");
        let deadline = Instant::now() + DEADLINE;
        loop {
            let behind: Vec<String> = servers
                .iter()
                .filter(|gs| {
                    let cached = store.get(&kube::runtime::reflector::ObjectRef::from_obj(*gs));
                    cached.and_then(|c| rv(&c)) < rv(gs)
                })
                .map(ResourceExt::name_any)
                .collect();
            if behind.is_empty() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the allocator cache never saw {behind:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn allocations(&self, cluster: &str, result: &str) -> u64 {
        let text = self.metrics.render().expect("metrics");
        let needle =
            format!("gameops_allocations_total{{cluster=\"{cluster}\",result=\"{result}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&needle))
            .map_or(0, |n| n.trim().parse().expect("a counter value"))
    }
}

async fn serve_allocator(allocator: &Arc<Allocator>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the allocator port");
    let addr = listener.local_addr().expect("address");
    let router = allocator.clone().router();
    tokio::spawn(async move { axum::serve(listener, router).await });
    format!("http://{addr}")
}

async fn post_raw(http: &reqwest::Client, url: &str, body: String) -> (u16, Value) {
    let response = http
        .post(url)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("the allocator answers");
    let status = response.status().as_u16();
    let text = response.text().await.expect("a body");
    let value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("status {status}: body {text:?} is not JSON: {e}"));
    (status, value)
}

fn rv(gs: &GameServer) -> Option<u64> {
    gs.resource_version()?.parse().ok()
}

/// How a test server looks.
#[derive(Clone)]
struct Spec {
    name: String,
    set: String,
    state: &'static str,
    ops_state: Option<&'static str>,
    labels: Vec<(&'static str, &'static str)>,
    image: String,
    max_players: Option<i32>,
}

fn ready(name: &str, set: &str) -> Spec {
    Spec {
        name: name.into(),
        set: set.into(),
        state: "Ready",
        ops_state: None,
        labels: Vec::new(),
        image: "registry.example.com/game:v1".into(),
        max_players: None,
    }
}

/// Creates the server and sets its status; returns it as last written.
async fn create(api: &Api<GameServer>, spec: &Spec) -> GameServer {
    let mut gs = GameServer::new(
        &spec.name,
        GameServerSpec {
            ops_state: spec.ops_state.map(str::to_owned),
            ..Default::default()
        },
    );
    gs.labels_mut()
        .insert(OWNER_GSS_LABEL.into(), spec.set.clone());
    for (k, v) in &spec.labels {
        gs.labels_mut().insert(k.to_string(), v.to_string());
    }
    api.create(&PostParams::default(), &gs)
        .await
        .expect("create GameServer");
    let status = json!({"status": {
        "currentState": spec.state,
        "maxPlayers": spec.max_players,
        "podStatus": {"containerStatuses": [{
            "name": "main", "image": spec.image, "imageID": "", "ready": true,
            "restartCount": 0,
        }]},
    }});
    api.patch_status(&spec.name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .expect("set GameServer status")
}

async fn create_all(env: &Env, cluster: &str, specs: &[Spec]) -> Vec<GameServer> {
    let api = env.api_in(cluster);
    let mut out = Vec::new();
    for spec in specs {
        out.push(create(&api, spec).await);
    }
    env.synced(cluster, &out).await;
    out
}

fn annotation(gs: &GameServer, key: &str) -> Option<String> {
    gs.annotations().get(key).cloned()
}

fn players(gs: &GameServer) -> Option<i32> {
    gs.status.as_ref().and_then(|s| s.players)
}

// ---------------------------------------------------------------- tests

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_allocations_hand_out_each_server_once() {
    let env = Env::start().await;
    let specs: Vec<Spec> = (0..50)
        .map(|i| ready(&format!("fleet-{i}"), "fleet"))
        .collect();
    create_all(&env, "gameops", &specs).await;

    let requests = (0..200).map(|i| {
        let body = json!({
            "selectors": [{"gameServerSet": "fleet"}],
            "players": 3,
            "metadata": {"labels": {"match": format!("m{i}")}, "annotations": {"example.com/request": i.to_string()}},
        });
        let env = &env;
        async move { (i, env.post("/v1/allocate", &body).await) }
    });
    let answers = futures::future::join_all(requests).await;

    let mut winners: BTreeMap<String, usize> = BTreeMap::new();
    let mut unallocated = 0;
    for (i, (status, answer)) in answers {
        assert_eq!(status, 200, "request {i}: {answer}");
        match answer["state"].as_str() {
            Some("Allocated") => {
                let name = answer["gameServerName"]
                    .as_str()
                    .expect("a name")
                    .to_owned();
                assert_eq!(answer["namespace"], NS);
                assert_eq!(answer["cluster"], "gameops");
                assert_eq!(answer["gameServerSet"], "fleet");
                assert_eq!(answer["image"], "registry.example.com/game:v1");
                if let Some(first) = winners.insert(name.clone(), i) {
                    panic!("{name} was allocated twice: requests {first} and {i}");
                }
            }
            Some("UnAllocated") => {
                unallocated += 1;
                let message = answer["message"].as_str().unwrap_or_default();
                assert!(message.contains("gameServerSet=fleet"), "{message}");
            }
            other => panic!("request {i}: unexpected state {other:?}: {answer}"),
        }
    }
    assert_eq!(winners.len(), 50, "every Ready server is allocated once");
    assert_eq!(unallocated, 150);

    for gs in env
        .api()
        .list(&Default::default())
        .await
        .expect("list")
        .items
    {
        let name = gs.name_any();
        let Some(request) = winners.get(&name) else {
            panic!("{name} was never handed out")
        };
        assert_eq!(gs.spec.ops_state.as_deref(), Some("Allocated"), "{name}");
        let started = annotation(&gs, MATCH_STARTED_ANNOTATION).expect("match-started");
        assert!(
            started.parse::<jiff::Timestamp>().is_ok(),
            "{started} is RFC 3339"
        );
        // The request's own metadata went onto the server it was given.
        assert_eq!(gs.labels().get("match"), Some(&format!("m{request}")));
        assert_eq!(
            annotation(&gs, "example.com/request"),
            Some(request.to_string())
        );
        assert_eq!(players(&gs), Some(3), "{name}");
    }
    assert_eq!(env.allocations("gameops", "Allocated"), 50);
    assert_eq!(env.allocations("gameops", "UnAllocated"), 150);
    assert_eq!(env.allocations("gameops", "Error"), 0);
}

/// Two allocators share nothing but the cluster (like two replicas): only
/// the resourceVersion compare-and-swap keeps them apart.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_allocators_never_share_a_server() {
    let env = Env::start().await;
    let specs: Vec<Spec> = (0..30)
        .map(|i| ready(&format!("pool-{i}"), "pool"))
        .collect();
    let servers = create_all(&env, "gameops", &specs).await;
    let other = Env::allocator(&["gameops"], &env.clients, &Arc::new(Metrics::new())).await;
    other.wait_ready(DEADLINE).await.expect("ready");
    let store = other.store("gameops").expect("cache");
    let deadline = Instant::now() + DEADLINE;
    while store.state().len() < servers.len()
        || store
            .state()
            .iter()
            .any(|gs| gs.status.as_ref().and_then(|s| s.current_state.as_deref()) != Some("Ready"))
    {
        assert!(Instant::now() < deadline, "second cache never synced");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let urls = [env.url.clone(), serve_allocator(&other).await];
    let requests = (0..120).map(|i| {
        let url = format!("{}/v1/allocate", urls[i % 2]);
        let http = env.http.clone();
        async move { post_raw(&http, &url, json!({"selectors": []}).to_string()).await }
    });
    let answers = futures::future::join_all(requests).await;
    let mut names = BTreeSet::new();
    let mut unallocated = 0;
    for (status, answer) in answers {
        assert_eq!(status, 200, "{answer}");
        match answer["state"].as_str() {
            Some("Allocated") => {
                let name = answer["gameServerName"].as_str().expect("name").to_owned();
                assert!(names.insert(name.clone()), "{name} allocated twice");
            }
            Some("UnAllocated") => unallocated += 1,
            other => panic!("unexpected {other:?}: {answer}"),
        }
    }
    assert_eq!(names.len(), 30);
    assert_eq!(unallocated, 90);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn selectors_are_tried_in_order() {
    let env = Env::start().await;
    // The preferred v2 servers have the highest ordinals, so only the
    // selector order can make them win.
    let mut specs = Vec::new();
    for (i, version) in ["v1", "v1", "v2", "v2"].iter().enumerate() {
        let mut s = ready(&format!("x-{i}"), "x");
        s.labels = vec![("version", version)];
        specs.push(s);
    }
    let mut elsewhere = ready("y-0", "y");
    elsewhere.labels = vec![("version", "v1")];
    specs.push(elsewhere);
    create_all(&env, "gameops", &specs).await;

    let body = json!({"selectors": [
        {"labels": {"version": "v2"}},
        {"gameServerSet": "x"},
    ]});
    let mut got = Vec::new();
    for _ in 0..4 {
        let answer = env.allocate(body.clone()).await;
        assert_eq!(answer.state, "Allocated", "{answer:?}");
        got.push(answer.game_server_name.expect("name"));
    }
    assert_eq!(got, ["x-2", "x-3", "x-0", "x-1"]);
    let answer = env.allocate(body).await;
    assert_eq!(answer.state, "UnAllocated");
    let message = answer.message.expect("a message");
    assert!(
        message.contains("1: labels version=v2") && message.contains("2: gameServerSet=x"),
        "{message}"
    );
    // y-0 was never a candidate of either selector; it still is Ready and idle.
    let y = env.api().get("y-0").await.expect("y-0");
    assert_eq!(y.spec.ops_state, None);
    // Any server: the last one left.
    let answer = env.allocate(json!({})).await;
    assert_eq!(answer.game_server_name.as_deref(), Some("y-0"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unallocatable_servers_are_never_picked() {
    let env = Env::start().await;
    let mut draining = ready("s-0", "s");
    draining.labels = vec![(DRAINING_LABEL, "true")];
    let mut not_ready = ready("s-1", "s");
    not_ready.state = "NotReady";
    let mut allocated = ready("s-2", "s");
    allocated.ops_state = Some("Allocated");
    let mut maintaining = ready("s-3", "s");
    maintaining.ops_state = Some("Maintaining");
    let mut kill = ready("s-4", "s");
    kill.ops_state = Some("Kill");
    let mut crash = ready("s-5", "s");
    crash.state = "Crash";
    let mut small = ready("s-6", "s");
    small.max_players = Some(4);
    let mut explicit_none = ready("s-8", "s");
    explicit_none.ops_state = Some("None");
    let specs = vec![
        draining,
        not_ready,
        allocated,
        maintaining,
        kill,
        crash,
        small,
        ready("s-7", "s"),
        explicit_none,
    ];
    let api = env.api();
    let mut servers = Vec::new();
    for spec in &specs {
        servers.push(create(&api, spec).await);
    }
    // A server being deleted (held by a finalizer) is not allocatable either.
    let held = create(&api, &ready("s-9", "s")).await;
    let finalizer = json!({"metadata": {"finalizers": ["example.com/hold"]}});
    api.patch("s-9", &PatchParams::default(), &Patch::Merge(&finalizer))
        .await
        .expect("add finalizer");
    api.delete("s-9", &DeleteParams::default())
        .await
        .expect("delete");
    let deleting = api.get("s-9").await.expect("still there");
    assert!(deleting.meta().deletion_timestamp.is_some());
    assert!(rv(&deleting) > rv(&held));
    servers.push(deleting);
    env.synced("gameops", &servers).await;

    // Ten players do not fit on s-6 (maxPlayers 4): s-7, then s-8.
    let big = json!({"players": 10});
    assert_eq!(
        env.allocate(big.clone()).await.game_server_name.as_deref(),
        Some("s-7")
    );
    assert_eq!(
        env.allocate(big.clone()).await.game_server_name.as_deref(),
        Some("s-8")
    );
    let answer = env.allocate(big).await;
    assert_eq!(answer.state, "UnAllocated", "{answer:?}");
    assert!(
        answer
            .message
            .as_deref()
            .is_some_and(|m| m.contains("room for 10 players")),
        "{answer:?}"
    );
    // Four fit on s-6; after it nothing else is ever handed out.
    let answer = env.allocate(json!({"players": 4})).await;
    assert_eq!(answer.game_server_name.as_deref(), Some("s-6"));
    let tries = (0..10).map(|_| env.allocate(json!({"players": 0})));
    for answer in futures::future::join_all(tries).await {
        assert_eq!(answer.state, "UnAllocated", "{answer:?}");
    }
    for (name, ops) in [
        ("s-0", None),
        ("s-1", None),
        ("s-2", Some("Allocated")),
        ("s-3", Some("Maintaining")),
        ("s-4", Some("Kill")),
        ("s-5", None),
        ("s-9", None),
    ] {
        let gs = api.get(name).await.expect("server");
        assert_eq!(gs.spec.ops_state.as_deref(), ops, "{name} was changed");
        assert_eq!(
            annotation(&gs, MATCH_STARTED_ANNOTATION),
            None,
            "{name} was allocated"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_selectors_compare_normalised_references() {
    let env = Env::start().await;
    let images = [
        "docker.io/library/nginx:1.25",
        "nginx:1.26",
        "registry.example.com/game:v1@sha256:abc",
    ];
    let specs: Vec<Spec> = images
        .iter()
        .enumerate()
        .map(|(i, image)| Spec {
            image: image.to_string(),
            ..ready(&format!("img-{i}"), "img")
        })
        .collect();
    create_all(&env, "gameops", &specs).await;

    let by_image = |image: &str| json!({"selectors": [{"image": image}]});
    // `nginx` means nginx:latest, which nothing runs.
    assert_eq!(env.allocate(by_image("nginx")).await.state, "UnAllocated");
    let answer = env.allocate(by_image("docker.io/library/nginx:1.26")).await;
    assert_eq!(answer.game_server_name.as_deref(), Some("img-1"));
    assert_eq!(answer.image.as_deref(), Some("nginx:1.26"));
    let answer = env.allocate(by_image("library/nginx:1.25")).await;
    assert_eq!(answer.game_server_name.as_deref(), Some("img-0"));
    assert_eq!(
        env.allocate(by_image("registry.example.com/game@sha256:def"))
            .await
            .state,
        "UnAllocated"
    );
    let answer = env
        .allocate(by_image("registry.example.com/game@sha256:abc"))
        .await;
    assert_eq!(answer.game_server_name.as_deref(), Some("img-2"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn release_makes_the_server_allocatable_again() {
    let env = Env::start().await;
    let mut other = ready("r-1", "r");
    other.ops_state = Some("Maintaining");
    create_all(&env, "gameops", &[ready("r-0", "r"), other]).await;

    let answer = env.allocate(json!({"players": 5})).await;
    assert_eq!(answer.game_server_name.as_deref(), Some("r-0"));
    assert_eq!(env.allocate(json!({})).await.state, "UnAllocated");

    let (status, body) = env
        .post("/v1/release", &json!({"gameServerName": "r-0"}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["state"], "Released");
    assert_eq!(body["opsState"], "None");
    let gs = env.api().get("r-0").await.expect("r-0");
    assert_eq!(gs.spec.ops_state.as_deref(), Some("None"));
    assert_eq!(annotation(&gs, MATCH_STARTED_ANNOTATION), None);
    assert_eq!(players(&gs), Some(0));

    // At once, without waiting for the watch.
    let answer = env.allocate(json!({})).await;
    assert_eq!(
        answer.game_server_name.as_deref(),
        Some("r-0"),
        "{answer:?}"
    );
    let gs = env.api().get("r-0").await.expect("r-0");
    assert_eq!(gs.spec.ops_state.as_deref(), Some("Allocated"));
    assert!(annotation(&gs, MATCH_STARTED_ANNOTATION).is_some());

    // Releasing a server an operator put into maintenance keeps that state.
    let (status, body) = env
        .post(
            "/v1/release",
            &json!({"gameServerName": "r-1", "namespace": NS, "cluster": "gameops"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["opsState"], "Maintaining");
    let gs = env.api().get("r-1").await.expect("r-1");
    assert_eq!(gs.spec.ops_state.as_deref(), Some("Maintaining"));

    let (status, body) = env
        .post("/v1/release", &json!({"gameServerName": "nope-0"}))
        .await;
    assert_eq!(status, 404, "{body}");
    let error = body["error"].as_str().expect("an error message");
    assert!(
        error.contains("nope-0") && error.contains("does not exist"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cluster_field_picks_the_cluster() {
    let env = Env::with_clusters(&["gameops", "eu"]).await;
    create_all(&env, "gameops", &[ready("home-0", "home")]).await;
    create_all(&env, "eu", &[ready("eu-0", "eu")]).await;
    let answer = env.allocate(json!({"cluster": "eu"})).await;
    assert_eq!(answer.game_server_name.as_deref(), Some("eu-0"));
    assert_eq!(answer.cluster, "eu");
    assert_eq!(
        env.allocate(json!({"cluster": "eu"})).await.state,
        "UnAllocated"
    );
    // The first cluster is the default.
    let answer = env.allocate(json!({})).await;
    assert_eq!(answer.game_server_name.as_deref(), Some("home-0"));
    assert_eq!(answer.cluster, "gameops");
    let eu = env.api_in("eu").get("eu-0").await.expect("eu-0");
    assert_eq!(eu.spec.ops_state.as_deref(), Some("Allocated"));
    assert_eq!(env.allocations("eu", "Allocated"), 1);
    assert_eq!(env.allocations("eu", "UnAllocated"), 1);
    let (status, _) = env
        .post(
            "/v1/release",
            &json!({"gameServerName": "eu-0", "cluster": "eu"}),
        )
        .await;
    assert_eq!(status, 200);
    let eu = env.api_in("eu").get("eu-0").await.expect("eu-0");
    assert_eq!(eu.spec.ops_state.as_deref(), Some("None"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_a_400_with_a_message() {
    let env = Env::start().await;
    create_all(&env, "gameops", &[ready("b-0", "b")]).await;
    let url = format!("{}/v1/allocate", env.url);
    let cases: Vec<(&str, String, &str)> = vec![
        ("/v1/allocate", "{not json".into(), "not a valid request"),
        ("/v1/allocate", "".into(), "not a valid request"),
        (
            "/v1/allocate",
            r#"{"selector": []}"#.into(),
            "unknown field `selector`",
        ),
        (
            "/v1/allocate",
            r#"{"selectors": {"gameServerSet": "b"}}"#.into(),
            "not a valid request",
        ),
        (
            "/v1/allocate",
            r#"{"players": "two"}"#.into(),
            "not a valid request",
        ),
        (
            "/v1/allocate",
            r#"{"players": -1}"#.into(),
            "players must be 0 or more",
        ),
        (
            "/v1/allocate",
            r#"{"cluster": "mars"}"#.into(),
            "cluster \"mars\" is not served here: use one of gameops",
        ),
        (
            "/v1/allocate",
            r#"{"namespace": "Bad Namespace"}"#.into(),
            "not a valid namespace",
        ),
        (
            "/v1/allocate",
            r#"{"selectors": [{"image": " "}]}"#.into(),
            "empty image",
        ),
        (
            "/v1/allocate",
            r#"{"metadata": {"labels": {"ok": "not ok!"}}}"#.into(),
            "metadata.labels value",
        ),
        ("/v1/release", "{}".into(), "missing field `gameServerName`"),
        (
            "/v1/release",
            r#"{"gameServerName": "b-0", "cluster": "mars"}"#.into(),
            "not served here",
        ),
        (
            "/v1/release",
            r#"{"gameServerName": "B_0"}"#.into(),
            "not a valid name",
        ),
    ];
    for (path, body, expected) in &cases {
        let (status, answer) =
            post_raw(&env.http, &format!("{}{path}", env.url), body.clone()).await;
        assert_eq!(status, 400, "{path} {body}: {answer}");
        let error = answer["error"].as_str().unwrap_or_default();
        assert!(
            error.contains(expected),
            "{path} {body}: {error:?} lacks {expected:?}"
        );
        assert!(!error.contains('\n'), "one sentence: {error:?}");
    }
    // A page on any site can post a form or text/plain to the loopback port
    // without a CORS preflight: only JSON declared as JSON is read.
    for content_type in ["text/plain", "application/x-www-form-urlencoded"] {
        for path in ["/v1/allocate", "/v1/release"] {
            let r = env
                .http
                .post(format!("{}{path}", env.url))
                .header("content-type", content_type)
                .body(r#"{"gameServerName": "b-0"}"#)
                .send()
                .await
                .expect("the allocator answers");
            assert_eq!(r.status().as_u16(), 415, "{path} as {content_type}");
            let answer: Value = r.json().await.expect("JSON");
            let error = answer["error"].as_str().unwrap_or_default();
            assert!(error.contains("Content-Type: application/json"), "{error}");
        }
    }
    // Nothing was allocated by any of them; a good request still works.
    let gs = env.api().get("b-0").await.expect("b-0");
    assert_eq!(gs.spec.ops_state, None);
    let (status, answer) = post_raw(&env.http, &url, "{}".into()).await;
    assert_eq!((status, &answer["state"]), (200, &json!("Allocated")));
    let bad_allocations = cases.iter().filter(|c| c.0 == "/v1/allocate").count() as u64 + 2;
    assert_eq!(env.allocations("gameops", "Error"), bad_allocations - 1);
    assert_eq!(env.allocations("unknown", "Error"), 1);
}
