//! Benchmark of the executor plugin's ops (issue #4).
//!
//! Starts `gameops serve` in-process (`serve::start` + `Running::serve`) on
//! loopback port 0 with an in-memory store, controller and simulator OFF (the
//! bench owns the fleet), creates a GameServerSet and N GameServers over the
//! API (Ready, running the old image), then:
//!
//! 1. p50/p99 of each op over HTTP (`POST /api/v1/template.execute`, as
//!    Argo's agent calls it), sequential calls from one workflow, each with
//!    a fresh template name so idempotency records do not short-circuit
//!    (plus one replayed call row), at N = 1,000;
//! 2. one `setOpsState` over 1,000 and 10,000 GameServers versus the seed's
//!    way: one `kubectl patch` per server in a bash loop, against the same
//!    server (all 1,000 at N = 1,000; a sample of 1,000 extrapolated
//!    linearly at N = 10,000).
//!
//! Run with `cargo bench --bench plugin`. With
//! `GAMEOPS_BENCH_KUBECONFIG=FILE` the same ops run against that server
//! instead (kube-apiserver from `scripts/real-stack up`, with OKG's CRDs),
//! through `gameops plugin` (the sidecar) started in-process with it as its
//! cluster.
#![allow(
    clippy::too_many_lines,
    reason = "a scenario or a table reads best top to bottom"
)]

mod common;

use common::{Lat, ms};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use gameops::cli::serve::{DEFAULT_CLUSTER, Running, ServeOptions, start};
use serde_json::{Value, json};

const NS: &str = "default";
/// Every call comes from this workflow (the set is leased to it).
const WORKFLOW_UID: &str = "bench-workflow";
const SET: &str = "bench";
const CONTAINER: &str = "game";
const OLD: &str = "registry.example.com/game/server:1.0.0";
const NEW: &str = "registry.example.com/game/server:1.1.0";
const N_OPS: usize = 1000;
const N_BIG: usize = 10_000;
const CALLS: usize = 200;
const KUBECTL_SAMPLE: usize = 1000;
const CONCURRENCY: usize = 16;
const MERGE_PATCH: &str = "application/merge-patch+json";

/// Targets (issue #4).
const TARGET_P99_MS: f64 = 5.0;
const TARGET_RATIO: f64 = 100.0;

fn verdict(ok: bool) -> &'static str {
    if ok { "PASS" } else { "MISS" }
}

fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".into())
}

/// The server under test, an HTTP client for its API and for its plugin.
struct Bench {
    http: reqwest::Client,
    api: String,
    plugin_url: String,
    token: String,
    kubeconfig: PathBuf,
    seq: AtomicUsize,
}

impl Bench {
    async fn start(dir: &Path) -> Self {
        let loopback: SocketAddr = "127.0.0.1:0".parse().expect("address");
        let kubeconfig = dir.join("kubeconfig");
        let options = ServeOptions {
            api_listen: loopback,
            listen: loopback,
            data_dir: dir.join("data"),
            in_memory: true,
            kubeconfig_out: Some(kubeconfig.clone()),
            clusters: vec![DEFAULT_CLUSTER.to_owned()],
            api_token_file: None,
            // The bench owns the fleet: nothing else changes it.
            controller: false,
            simulator: None,
            config: Default::default(),
            write_plugin_token: false,
            event_ttl: gameops::cluster::apiserver::event_ttl::DEFAULT_TTL,
        };
        let running: Running = start(&options).await.expect("server starts");
        let token = running.plugin_token().to_owned();
        let api = format!("http://{}", running.api_addr);
        let plugin_url = format!("http://{}/api/v1/template.execute", running.service_addr);
        tokio::spawn(async move {
            if let Err(e) = running.serve().await {
                eprintln!("server stopped: {e}");
            }
        });
        Self {
            http: reqwest::Client::new(),
            api,
            plugin_url,
            token,
            kubeconfig,
            seq: AtomicUsize::new(0),
        }
    }

    /// The sidecar in-process against the server of `kubeconfig` (its own
    /// client, as in a cluster), and a client for that server's API.
    async fn external(kubeconfig: &Path, dir: &Path) -> Self {
        let (api, http) = common::tls_client(kubeconfig, CONCURRENCY * 2);
        let token = "bench-token".to_owned();
        let token_file = dir.join("token");
        std::fs::write(&token_file, &token).expect("token file");
        let listen: SocketAddr = format!("127.0.0.1:{}", common::free_port())
            .parse()
            .expect("address");
        let options = gameops::cli::plugin::SidecarOptions {
            listen,
            clusters: vec![format!("default={}", kubeconfig.display())],
            token_file,
            ..Default::default()
        };
        tokio::spawn(async move {
            if let Err(e) = gameops::cli::plugin::run(&options).await {
                eprintln!("sidecar stopped: {e}");
            }
        });
        let health = format!("http://{listen}/healthz");
        let deadline = Instant::now() + Duration::from_secs(30);
        while reqwest::get(&health)
            .await
            .map(|r| r.status().is_success())
            .ok()
            != Some(true)
        {
            assert!(
                Instant::now() < deadline,
                "the sidecar never became healthy"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Self {
            http,
            api,
            plugin_url: format!("http://{listen}/api/v1/template.execute"),
            token,
            kubeconfig: kubeconfig.to_owned(),
            seq: AtomicUsize::new(0),
        }
    }

    fn gameservers(&self) -> String {
        format!(
            "{}/apis/game.kruise.io/v1alpha1/namespaces/{NS}/gameservers",
            self.api
        )
    }

    async fn create_set(&self) {
        let body = json!({
            "apiVersion": "game.kruise.io/v1alpha1", "kind": "GameServerSet",
            "metadata": {"name": SET, "namespace": NS},
            "spec": {"replicas": N_OPS, "updateStrategy": {"type": "OnDelete"},
                "gameServerTemplate": {"spec": {"containers": [{"name": CONTAINER, "image": OLD}]}}},
        });
        let r = self
            .http
            .post(format!(
                "{}/apis/game.kruise.io/v1alpha1/namespaces/{NS}/gameserversets",
                self.api
            ))
            .header("Content-Type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .expect("create set");
        assert!(r.status().is_success(), "create set: {}", r.status());
    }

    /// Creates servers `range` (Ready, running OLD) at concurrency 16.
    async fn create_servers(self: &Arc<Self>, range: std::ops::Range<usize>) -> Duration {
        let next = Arc::new(AtomicUsize::new(range.start));
        let end = range.end;
        let started = Instant::now();
        let workers: Vec<_> = (0..CONCURRENCY)
            .map(|_| {
                let next = next.clone();
                let me = self.clone();
                tokio::spawn(async move {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= end {
                            break;
                        }
                        me.create_server(i).await;
                    }
                })
            })
            .collect();
        for w in workers {
            w.await.expect("worker");
        }
        started.elapsed()
    }

    async fn create_server(&self, i: usize) {
        let name = format!("{SET}-{i}");
        let body = json!({
            "apiVersion": "game.kruise.io/v1alpha1", "kind": "GameServer",
            "metadata": {"name": name, "namespace": NS,
                "labels": {"game.kruise.io/owner-gss": SET}},
            "spec": {"opsState": "None", "containers": [{"name": CONTAINER, "image": OLD}]},
        });
        let r = self
            .http
            .post(self.gameservers())
            .header("Content-Type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .expect("create server");
        assert!(r.status().is_success(), "create {name}: {}", r.status());
        let status = json!({"status": {
            "currentState": "Ready", "desiredState": "Ready",
            "podStatus": {"phase": "Running", "containerStatuses": [{
                "name": CONTAINER, "image": OLD, "imageID": "", "ready": true,
                "restartCount": 0, "started": true}]},
        }});
        let r = self
            .http
            .patch(format!("{}/{name}/status", self.gameservers()))
            .header("Content-Type", MERGE_PATCH)
            .body(status.to_string())
            .send()
            .await
            .expect("status");
        assert!(r.status().is_success(), "status {name}: {}", r.status());
    }

    /// One plugin call as Argo's agent sends it; returns the reply and its
    /// latency.
    async fn call_as(
        &self,
        uid: &str,
        template: &str,
        op: &str,
        args: &Value,
    ) -> (Value, Duration) {
        let mut args = args.clone();
        args["gameServerSet"] = json!(SET);
        let body = json!({
            "workflow": {"metadata": {"name": format!("wf-{uid}"), "namespace": NS, "uid": uid}},
            "template": {"name": template, "inputs": {},
                "outputs": {"parameters": [{"name": "count", "value": ""}, {"name": "names", "value": ""}]},
                "metadata": {}, "plugin": {"gameops": {op: args}}},
        })
        .to_string();
        let t = Instant::now();
        let r = self
            .http
            .post(&self.plugin_url)
            .header("Content-Type", "application/json")
            .bearer_auth(&self.token)
            .body(body)
            .send()
            .await
            .expect("plugin answers");
        assert_eq!(r.status().as_u16(), 200, "plugin status");
        let reply: Value = r.json().await.expect("JSON reply");
        (reply, t.elapsed())
    }

    /// A call with a fresh template name (a new call, not a retry), from one
    /// workflow: mutating ops lease the set to their workflow, so calls from
    /// other workflows would be refused.
    async fn call(&self, op: &str, args: &Value) -> (Value, Duration) {
        let n = self.seq.fetch_add(1, Ordering::Relaxed);
        self.call_as(WORKFLOW_UID, &format!("t-{n}"), op, args)
            .await
    }

    /// Runs `kubectl patch` on servers `ids` in one bash loop (one process
    /// per server, as the seed's scripts do); returns the wall time.
    async fn kubectl_loop(&self, ids: std::ops::Range<usize>, cache: &Path) -> Duration {
        let script = format!(
            "for i in $(seq {} {}); do kubectl -n {NS} patch gs {SET}-$i --type=merge -p '{{\"spec\":{{\"opsState\":\"WaitToBeDeleted\"}}}}' >/dev/null || exit 1; done",
            ids.start,
            ids.end - 1
        );
        let kubeconfig = self.kubeconfig.clone();
        let cache = cache.to_owned();
        tokio::task::spawn_blocking(move || {
            let t = Instant::now();
            let status = std::process::Command::new("bash")
                .arg("-c")
                .arg(&script)
                .env("KUBECONFIG", &kubeconfig)
                .env("KUBECACHEDIR", &cache)
                .status()
                .expect("bash runs");
            assert!(status.success(), "kubectl loop failed: {status}");
            t.elapsed()
        })
        .await
        .expect("kubectl loop")
    }

    /// How many servers are in `state`.
    async fn count_ops_state(&self, state: &str) -> usize {
        let list: Value = self
            .http
            .get(self.gameservers())
            .header("Accept", "application/json")
            .send()
            .await
            .expect("list")
            .json()
            .await
            .expect("list JSON");
        list["items"].as_array().map_or(0, |items| {
            items
                .iter()
                .filter(|g| g["spec"]["opsState"].as_str().unwrap_or("None") == state)
                .count()
        })
    }
}

fn phase(reply: &Value) -> &str {
    reply["node"]["phase"].as_str().unwrap_or("")
}

fn output<'a>(reply: &'a Value, name: &str) -> &'a str {
    reply["node"]["outputs"]["parameters"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["name"] == name))
        .and_then(|p| p["value"].as_str())
        .unwrap_or("")
}

/// One op's latency row.
struct OpRow {
    what: String,
    lat: Lat,
    not_ok: usize,
    waiting: bool,
}

/// `CALLS` sequential calls of `op` with the arguments `args(i)`; counts
/// replies not in phase `Succeeded`.
async fn measure(b: &Bench, what: &str, op: &str, args: impl Fn(usize) -> Value) -> OpRow {
    // One unmeasured warm-up call.
    let _ = b.call(op, &args(0)).await;
    let mut samples = Vec::with_capacity(CALLS);
    let mut not_ok = 0;
    let mut first_bad = None;
    for i in 1..=CALLS {
        let (reply, d) = b.call(op, &args(i)).await;
        if phase(&reply) != "Succeeded" {
            not_ok += 1;
            first_bad.get_or_insert(reply);
        }
        samples.push(d);
    }
    if let Some(reply) = first_bad {
        eprintln!("{what}: {not_ok} replies not Succeeded, e.g. {reply}");
    }
    let row = OpRow {
        what: what.to_owned(),
        lat: Lat::new(samples),
        not_ok,
        waiting: op == "waitReady" || op == "drain",
    };
    eprintln!(
        "  {:<44} p50 {:>7.3} ms  p99 {:>7.3} ms  max {:>7.3} ms",
        row.what,
        row.lat.p50(),
        row.lat.p99(),
        row.lat.max()
    );
    row
}

/// setOpsState: every None server not running NEW -> WaitToBeDeleted.
fn to_wtbd() -> Value {
    json!({"select": {"opsState": "None", "notImage": format!("{CONTAINER}/{NEW}")},
        "opsState": "WaitToBeDeleted"})
}

/// setOpsState: every WaitToBeDeleted server -> None.
fn reset() -> Value {
    json!({"select": {"opsState": "WaitToBeDeleted"}, "opsState": "None"})
}

/// One call of `op` as Argo's agent makes it, to its end: a call still
/// working answers Running with a requeue, and the same call (same
/// template) again after it collects the result. The last reply and the
/// wall time from the first call.
async fn until_done(b: &Bench, op: &str, args: &Value) -> (Value, Duration) {
    let n = b.seq.fetch_add(1, Ordering::Relaxed);
    let template = format!("t-{n}");
    let started = Instant::now();
    loop {
        let (reply, _) = b.call_as(WORKFLOW_UID, &template, op, args).await;
        if phase(&reply) != "Running" {
            return (reply, started.elapsed());
        }
        let requeue = reply["requeue"].as_str().unwrap_or("1s");
        let secs: f64 = requeue.trim_end_matches('s').parse().unwrap_or(1.0);
        tokio::time::sleep(Duration::from_secs_f64(secs)).await;
    }
}

/// One timed setOpsState over the whole fleet, then a reset; returns the
/// call's wall time and the reset's.
async fn bulk(b: &Bench, n: usize) -> (Duration, Duration) {
    let (reply, d) = until_done(b, "setOpsState", &to_wtbd()).await;
    assert_eq!(phase(&reply), "Succeeded", "setOpsState: {reply}");
    assert_eq!(output(&reply, "count"), n.to_string(), "setOpsState count");
    assert_eq!(b.count_ops_state("WaitToBeDeleted").await, n);
    let (reply, r) = until_done(b, "setOpsState", &reset()).await;
    assert_eq!(phase(&reply), "Succeeded", "reset: {reply}");
    assert_eq!(b.count_ops_state("None").await, n);
    (d, r)
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(run());
}

async fn run() {
    let dir = tempfile::tempdir().expect("temp dir");
    let load_before = load();
    let external = std::env::var_os("GAMEOPS_BENCH_KUBECONFIG");
    let b = Arc::new(match &external {
        Some(kubeconfig) => Bench::external(Path::new(kubeconfig), dir.path()).await,
        None => Bench::start(dir.path()).await,
    });
    if let Some(kubeconfig) = &external {
        eprintln!(
            "against {} (GAMEOPS_BENCH_KUBECONFIG)",
            Path::new(kubeconfig).display()
        );
    }
    b.create_set().await;
    let d = b.create_servers(0..N_OPS).await;
    eprintln!(
        "created {N_OPS} Ready GameServers in {:.2} s",
        d.as_secs_f64()
    );

    // 1. Per-op latency at N = 1,000.
    eprintln!("per-op latency, {CALLS} sequential calls each, N = {N_OPS}:");
    let mut rows = Vec::new();
    rows.push(measure(&b, "status", "status", |_| json!({})).await);
    rows.push(measure(&b, "scale (delta 1)", "scale", |_| json!({"delta": 1})).await);
    rows.push(
        measure(
            &b,
            "patchImage (alternating two images)",
            "patchImage",
            |i| json!({"image": if i % 2 == 0 { NEW } else { OLD }}),
        )
        .await,
    );
    rows.push(measure(&b, "rollback (steps 1)", "rollback", |_| json!({})).await);
    // Alternate None -> Maintaining and back, so the fleet is unchanged after
    // an even number of calls (the warm-up call is call 0).
    rows.push(
        measure(&b, "setOpsState limit 1", "setOpsState", |i| {
            let (from, to) = if i % 2 == 0 {
                ("None", "Maintaining")
            } else {
                ("Maintaining", "None")
            };
            json!({"select": {"opsState": from}, "opsState": to, "limit": 1})
        })
        .await,
    );
    // Warm-up + 200 calls = 201: one Maintaining server left; put it back.
    let (reply, _) = b
        .call(
            "setOpsState",
            &json!({"select": {"opsState": "Maintaining"}, "opsState": "None"}),
        )
        .await;
    assert_eq!(phase(&reply), "Succeeded", "{reply}");
    rows.push(
        measure(
            &b,
            "setOpsState dryRun (all 1,000 match)",
            "setOpsState",
            |_| {
                let mut a = to_wtbd();
                a["dryRun"] = json!(true);
                a
            },
        )
        .await,
    );
    rows.push(
        measure(
            &b,
            "waitReady (already satisfied)",
            "waitReady",
            |_| json!({"image": OLD, "count": N_OPS, "timeoutSeconds": 600}),
        )
        .await,
    );
    rows.push(
        measure(&b, "drain (nothing to drain)", "drain", |_| {
            json!({"notImage": format!("{CONTAINER}/{OLD}"), "then": "WaitToBeDeleted",
                "timeoutSeconds": 600})
        })
        .await,
    );
    // Replayed call: the same uid, template and arguments every time.
    {
        let args = json!({"select": {"opsState": "None"}, "opsState": "Maintaining", "limit": 1});
        let (first, _) = b
            .call_as(WORKFLOW_UID, "replay", "setOpsState", &args)
            .await;
        assert_eq!(phase(&first), "Succeeded", "{first}");
        let mut samples = Vec::with_capacity(CALLS);
        let mut not_ok = 0;
        for _ in 0..CALLS {
            let (reply, d) = b
                .call_as(WORKFLOW_UID, "replay", "setOpsState", &args)
                .await;
            if phase(&reply) != "Succeeded" || output(&reply, "names") != output(&first, "names") {
                not_ok += 1;
            }
            samples.push(d);
        }
        let row = OpRow {
            what: "setOpsState replayed call (ledger)".into(),
            lat: Lat::new(samples),
            not_ok,
            waiting: false,
        };
        eprintln!(
            "  {:<44} p50 {:>7.3} ms  p99 {:>7.3} ms  max {:>7.3} ms",
            row.what,
            row.lat.p50(),
            row.lat.p99(),
            row.lat.max()
        );
        rows.push(row);
        let (reply, _) = b
            .call(
                "setOpsState",
                &json!({"select": {"opsState": "Maintaining"}, "opsState": "None"}),
            )
            .await;
        assert_eq!(phase(&reply), "Succeeded", "{reply}");
    }

    // 2. setOpsState over the fleet versus a kubectl patch loop.
    eprintln!("setOpsState over the fleet vs one kubectl patch per server:");
    let (op_1k, reset_1k) = bulk(&b, N_OPS).await;
    eprintln!(
        "  N = {N_OPS}: setOpsState {:.1} ms (reset {:.1} ms)",
        ms(op_1k),
        ms(reset_1k)
    );
    let cache = dir.path().join("kubecache-1k");
    let kubectl_1k = b.kubectl_loop(0..N_OPS, &cache).await;
    assert_eq!(b.count_ops_state("WaitToBeDeleted").await, N_OPS);
    eprintln!(
        "  N = {N_OPS}: kubectl loop {:.1} s ({:.1} ms per server)",
        kubectl_1k.as_secs_f64(),
        ms(kubectl_1k) / N_OPS as f64
    );
    let (reply, _) = b.call("setOpsState", &reset()).await;
    assert_eq!(phase(&reply), "Succeeded", "{reply}");

    let d = b.create_servers(N_OPS..N_BIG).await;
    eprintln!(
        "created {} more Ready GameServers in {:.2} s",
        N_BIG - N_OPS,
        d.as_secs_f64()
    );
    let (op_10k, reset_10k) = bulk(&b, N_BIG).await;
    eprintln!(
        "  N = {N_BIG}: setOpsState {:.1} ms (reset {:.1} ms)",
        ms(op_10k),
        ms(reset_10k)
    );
    let cache = dir.path().join("kubecache-10k");
    // A sample spread over the fleet's upper ordinals.
    let start = N_BIG - KUBECTL_SAMPLE;
    let sample = b.kubectl_loop(start..N_BIG, &cache).await;
    let kubectl_10k = sample.mul_f64(N_BIG as f64 / KUBECTL_SAMPLE as f64);
    eprintln!(
        "  N = {N_BIG}: kubectl sample of {KUBECTL_SAMPLE}: {:.1} s -> extrapolated {:.1} s",
        sample.as_secs_f64(),
        kubectl_10k.as_secs_f64()
    );
    let load_after = load();

    // Results.
    println!();
    let against = external.as_ref().map_or_else(
        || "the embedded server".to_owned(),
        |k| format!("kube-apiserver of {}", Path::new(k).display()),
    );
    println!(
        "Executor plugin ops over HTTP, N = {N_OPS} GameServers, {CALLS} sequential calls each, against {against}"
    );
    println!(
        "| {:<44} | {:>8} | {:>8} | {:>8} | {:>6} | {:<22} |",
        "Op", "p50 ms", "p99 ms", "max ms", "not ok", "Target p99 < 5 ms"
    );
    println!("|{}|", "-".repeat(44 + 8 * 3 + 6 + 22 + 17));
    for r in &rows {
        let target = if r.waiting {
            format!("{} (waiting op)", verdict(r.lat.p99() < TARGET_P99_MS))
        } else {
            verdict(r.lat.p99() < TARGET_P99_MS).to_owned()
        };
        println!(
            "| {:<44} | {:>8.3} | {:>8.3} | {:>8.3} | {:>6} | {:<22} |",
            r.what,
            r.lat.p50(),
            r.lat.p99(),
            r.lat.max(),
            r.not_ok,
            target
        );
    }
    println!();
    println!("setOpsState (None -> WaitToBeDeleted, notImage new) vs one kubectl patch per server");
    let ratio_1k = kubectl_1k.as_secs_f64() / op_1k.as_secs_f64();
    let ratio_10k = kubectl_10k.as_secs_f64() / op_10k.as_secs_f64();
    println!(
        "| N      | setOpsState | reset     | kubectl loop                  | ratio   | target >= 100x |"
    );
    println!(
        "| {N_OPS:<6} | {:>8.1} ms | {:>6.1} ms | {:>8.1} s (measured, all)    | {:>6.0}x | {} |",
        ms(op_1k),
        ms(reset_1k),
        kubectl_1k.as_secs_f64(),
        ratio_1k,
        verdict(ratio_1k >= TARGET_RATIO)
    );
    println!(
        "| {N_BIG:<6} | {:>8.1} ms | {:>6.1} ms | {:>8.1} s (extrapolated {}) | {:>6.0}x | (n/a) |",
        ms(op_10k),
        ms(reset_10k),
        kubectl_10k.as_secs_f64(),
        KUBECTL_SAMPLE,
        ratio_10k
    );
    println!(
        "kubectl per server: {:.1} ms (N = {N_OPS}), {:.1} ms (sample at N = {N_BIG})",
        ms(kubectl_1k) / N_OPS as f64,
        ms(sample) / KUBECTL_SAMPLE as f64
    );
    println!("load average (1 min): {load_before} before, {load_after} after");
}
