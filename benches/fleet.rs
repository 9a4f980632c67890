//! End-to-end benchmark of the fleet controller and the allocator (issue #3).
//!
//! Starts `gameops serve` in-process (`serve::start` + `Running::serve`) on
//! loopback port 0 with an in-memory store, the fleet controller on and the
//! simulated fleet with zero startup delay and jitter, and drives it over
//! real HTTP with one shared `reqwest::Client`:
//!
//! 1. create a RollingUpdate GameServerSet (maxSurge 25 %, maxUnavailable
//!    25 %) of N replicas: wall time until all N GameServers are Ready;
//! 2. change the template image: wall time until all N servers run the new
//!    image and are Ready;
//! 3. on a fresh server, a set of 2,000 Ready servers, then 32 concurrent
//!    clients calling `POST /v1/allocate` (selector `gameServerSet`) until
//!    1,900 are allocated: allocations/s and p50/p99 latency.
//!
//! Progress is sampled cheaply from the set's status (`GET gameserverset`)
//! every 250 ms; the end state is confirmed with one full LIST.
//!
//! Run with `cargo bench --bench fleet`; `GAMEOPS_BENCH_N` changes the fleet
//! size (default 10000), `GAMEOPS_BENCH_PHASE_TIMEOUT_S` the longest a
//! rollout phase may take (default 900).
#![allow(
    clippy::too_many_lines,
    reason = "a scenario or a table reads best top to bottom"
)]

mod common;

use common::Lat;
use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use gameops::cli::serve::{DEFAULT_CLUSTER, Running, ServeOptions, start};
use gameops::fleet::simulator::SimulatorConfig;
use serde_json::{Value, json};
use tokio::task::JoinHandle;

const NS: &str = "default";
const SET: &str = "bench";
const IMAGE_V1: &str = "example/game:v1";
const IMAGE_V2: &str = "example/game:v2";
const MAX_SURGE: &str = "25%";
const MAX_UNAVAILABLE: &str = "25%";
const POLL: Duration = Duration::from_millis(250);
const PROGRESS_EVERY: Duration = Duration::from_secs(10);
const MERGE_PATCH: &str = "application/merge-patch+json";

/// The allocation phase (issue #3): concurrency 32 on 2,000 Ready servers,
/// stopping before exhaustion.
const ALLOC_SERVERS: usize = 2000;
const ALLOC_TARGET: usize = 1900;
const ALLOC_CONCURRENCY: usize = 32;
/// Agones's published allocation throughput range (allocations/s).
const AGONES_ALLOC_PER_S: (f64, f64) = (80.0, 400.0);

/// One row of the results table.
struct Row {
    what: String,
    result: String,
    comparison: String,
}

fn row(what: impl Into<String>, result: String, comparison: impl Into<String>) -> Row {
    Row {
        what: what.into(),
        result,
        comparison: comparison.into(),
    }
}

/// The server under test: API server, controller, simulator and allocator.
struct Server {
    api: String,
    service: String,
    running_metrics: Arc<gameops::metrics::Metrics>,
    task: JoinHandle<()>,
    _dir: tempfile::TempDir,
}

impl Server {
    async fn start() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let loopback: SocketAddr = "127.0.0.1:0".parse().expect("address");
        let options = ServeOptions {
            api_listen: loopback,
            listen: loopback,
            data_dir: dir.path().to_owned(),
            in_memory: true,
            kubeconfig_out: None,
            clusters: vec![DEFAULT_CLUSTER.to_owned()],
            api_token_file: None,
            controller: true,
            simulator: Some(SimulatorConfig {
                startup_delay: Duration::ZERO,
                startup_jitter: Duration::ZERO,
                ..SimulatorConfig::default()
            }),
            config: Default::default(),
            write_plugin_token: true,
            event_ttl: gameops::cluster::apiserver::event_ttl::DEFAULT_TTL,
        };
        let running: Running = start(&options).await.expect("server starts");
        let api = format!("http://{}", running.api_addr);
        let service = format!("http://{}", running.service_addr);
        let running_metrics = running.metrics.clone();
        let task = tokio::spawn(async move {
            if let Err(e) = running.serve().await {
                eprintln!("server stopped: {e}");
            }
        });
        Self {
            api,
            service,
            running_metrics,
            task,
            _dir: dir,
        }
    }

    fn sets(&self) -> String {
        format!(
            "{}/apis/game.kruise.io/v1alpha1/namespaces/{NS}/gameserversets",
            self.api
        )
    }

    fn servers(&self) -> String {
        format!(
            "{}/apis/game.kruise.io/v1alpha1/namespaces/{NS}/gameservers",
            self.api
        )
    }

    /// Reconciles so far and their total time (from the controller's metrics).
    fn reconciles(&self) -> (u64, f64, u64) {
        let text = self.running_metrics.render().unwrap_or_default();
        let value = |prefix: &str| -> f64 {
            text.lines()
                .filter(|l| l.starts_with(prefix))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum()
        };
        (
            value("gameops_reconcile_duration_seconds_count") as u64,
            value("gameops_reconcile_duration_seconds_sum"),
            value("gameops_reconcile_errors_total") as u64,
        )
    }

    async fn stop(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

fn gameserverset(replicas: usize, image: &str) -> String {
    json!({
        "apiVersion": "game.kruise.io/v1alpha1",
        "kind": "GameServerSet",
        "metadata": {"name": SET, "namespace": NS},
        "spec": {
            "replicas": replicas,
            "updateStrategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": MAX_SURGE, "maxUnavailable": MAX_UNAVAILABLE},
            },
            "gameServerTemplate": {
                "spec": {"containers": [{"name": "game", "image": image}]},
            },
        },
    })
    .to_string()
}

async fn create_set(client: &reqwest::Client, server: &Server, replicas: usize) {
    let r = client
        .post(server.sets())
        .header("content-type", "application/json")
        .body(gameserverset(replicas, IMAGE_V1))
        .send()
        .await
        .expect("create the GameServerSet");
    let status = r.status();
    let body = r.text().await.unwrap_or_default();
    assert!(status.is_success(), "create the set: {status} {body}");
}

/// Changes the template image; returns the set's new generation.
async fn set_image(client: &reqwest::Client, server: &Server, image: &str) -> i64 {
    let patch = json!({"spec": {"gameServerTemplate": {"spec": {"containers": [{"name": "game", "image": image}]}}}});
    let r = client
        .patch(format!("{}/{SET}", server.sets()))
        .header("content-type", MERGE_PATCH)
        .body(patch.to_string())
        .send()
        .await
        .expect("patch the image");
    let status = r.status();
    let body: Value = r.json().await.expect("patch answer");
    assert!(status.is_success(), "patch the image: {status} {body}");
    body["metadata"]["generation"].as_i64().unwrap_or(0)
}

/// The set's status as sampled while polling.
#[derive(Clone, Copy, Debug, Default)]
struct SetStatus {
    observed_generation: i64,
    replicas: i64,
    ready: i64,
    updated: i64,
    updated_ready: i64,
}

async fn set_status(client: &reqwest::Client, server: &Server) -> Option<SetStatus> {
    let r = client
        .get(format!("{}/{SET}", server.sets()))
        .header("accept", "application/json")
        .send()
        .await
        .ok()?;
    if !r.status().is_success() {
        return None;
    }
    let v: Value = r.json().await.ok()?;
    let s = &v["status"];
    let int = |k: &str| s[k].as_i64().unwrap_or(0);
    Some(SetStatus {
        observed_generation: int("observedGeneration"),
        replicas: int("replicas"),
        ready: int("readyReplicas"),
        updated: int("updatedReplicas"),
        updated_ready: int("updatedReadyReplicas"),
    })
}

/// What one rollout phase observed.
struct Phase {
    /// Until the set's status said done (`None`: timed out).
    done: Option<Duration>,
    /// Until `updatedReadyReplicas` first reached 50 % of N.
    half: Option<Duration>,
    /// The last sampled status.
    last: SetStatus,
    polls: usize,
}

/// Polls the set's status until `updatedReadyReplicas`, `readyReplicas`
/// and `replicas` are all `n` at generation `generation` or later.
async fn wait_rollout(
    client: &reqwest::Client,
    server: &Server,
    label: &str,
    n: i64,
    generation: i64,
    started: Instant,
    timeout: Duration,
) -> Phase {
    let mut phase = Phase {
        done: None,
        half: None,
        last: SetStatus::default(),
        polls: 0,
    };
    let mut next_report = PROGRESS_EVERY;
    loop {
        if let Some(s) = set_status(client, server).await {
            phase.polls += 1;
            phase.last = s;
            let current = s.observed_generation >= generation;
            if phase.half.is_none() && current && s.updated_ready * 2 >= n {
                phase.half = Some(started.elapsed());
            }
            if current && s.updated_ready == n && s.ready == n && s.replicas == n {
                phase.done = Some(started.elapsed());
                return phase;
            }
        }
        let elapsed = started.elapsed();
        if elapsed >= next_report {
            let s = phase.last;
            eprintln!(
                "  {label}: {:>6.1} s  replicas {} ready {} updated {} updatedReady {} (gen {})",
                elapsed.as_secs_f64(),
                s.replicas,
                s.ready,
                s.updated,
                s.updated_ready,
                s.observed_generation
            );
            next_report += PROGRESS_EVERY;
        }
        if elapsed >= timeout {
            eprintln!("  {label}: TIMEOUT after {:.0} s", elapsed.as_secs_f64());
            return phase;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// One full LIST of the set's servers: (servers, Ready, Ready running `image`).
async fn confirm(client: &reqwest::Client, server: &Server, image: &str) -> (usize, usize, usize) {
    let r = client
        .get(format!(
            "{}?labelSelector=game.kruise.io%2Fowner-gss%3D{SET}",
            server.servers()
        ))
        .header("accept", "application/json")
        .send()
        .await
        .expect("list the servers");
    assert!(r.status().is_success(), "list: {}", r.status());
    let v: Value = r.json().await.expect("list JSON");
    let items = v["items"].as_array().cloned().unwrap_or_default();
    let ready = |gs: &Value| gs["status"]["currentState"] == "Ready";
    let on_image = |gs: &Value| {
        gs.pointer("/status/podStatus/containerStatuses/0/image")
            .and_then(Value::as_str)
            == Some(image)
    };
    let total = items
        .iter()
        .filter(|gs| gs["metadata"]["deletionTimestamp"].is_null())
        .count();
    let r = items.iter().filter(|gs| ready(gs)).count();
    let both = items.iter().filter(|gs| ready(gs) && on_image(gs)).count();
    (total, r, both)
}

fn secs(d: Option<Duration>) -> String {
    d.map_or_else(|| "-".to_owned(), |d| format!("{:.1} s", d.as_secs_f64()))
}

/// Phases a and b on one server; returns the table rows.
async fn rollout(client: &reqwest::Client, n: usize, timeout: Duration) -> Vec<Row> {
    let mut rows = Vec::new();
    let server = Server::start().await;
    let n64 = n as i64;

    eprintln!("phase a: creating a set of {n} replicas");
    let started = Instant::now();
    create_set(client, &server, n).await;
    let a = wait_rollout(client, &server, "create", n64, 1, started, timeout).await;
    let (total, ready, on_v1) = confirm(client, &server, IMAGE_V1).await;
    let (rec_a, rec_a_s, err_a) = server.reconciles();
    eprintln!(
        "phase a: {} (list: {total} servers, {ready} Ready, {on_v1} Ready on {IMAGE_V1}); {rec_a} reconciles, {rec_a_s:.1} s in reconcile, {err_a} errors",
        secs(a.done)
    );
    rows.push(row(
        format!("a. Scale up 0 -> {n}: all Ready"),
        match a.done {
            Some(d) => format!(
                "{:.1} s ({:.0} servers/s; 50 % Ready at {}; {} polls)",
                d.as_secs_f64(),
                n as f64 / d.as_secs_f64(),
                secs(a.half),
                a.polls
            ),
            None => format!(
                "TIMEOUT after {:.0} s at {} Ready ({} servers)",
                timeout.as_secs_f64(),
                a.last.ready,
                a.last.replicas
            ),
        },
        "-",
    ));
    rows.push(row(
        "   confirmed by one full LIST",
        format!("{total} servers, {ready} Ready, {on_v1} Ready on v1"),
        format!("want {n} / {n} / {n}"),
    ));
    rows.push(row(
        "   controller reconciles (phase a)",
        format!(
            "{rec_a} reconciles, {rec_a_s:.1} s total, mean {:.0} ms, {err_a} errors",
            rec_a_s * 1e3 / rec_a.max(1) as f64
        ),
        "-",
    ));

    if a.done.is_some() {
        eprintln!("phase b: rolling {IMAGE_V1} -> {IMAGE_V2}");
        let started = Instant::now();
        let generation = set_image(client, &server, IMAGE_V2).await;
        let b = wait_rollout(client, &server, "update", n64, generation, started, timeout).await;
        let (total, ready, on_v2) = confirm(client, &server, IMAGE_V2).await;
        let (rec_b, rec_b_s, err_b) = server.reconciles();
        let (rec_b, rec_b_s, err_b) = (rec_b - rec_a, rec_b_s - rec_a_s, err_b - err_a);
        eprintln!(
            "phase b: {} (list: {total} servers, {ready} Ready, {on_v2} Ready on {IMAGE_V2}); {rec_b} reconciles, {rec_b_s:.1} s in reconcile, {err_b} errors",
            secs(b.done)
        );
        rows.push(row(
            format!("b. RollingUpdate of {n} (image v1 -> v2): all Ready on v2"),
            match b.done {
                Some(d) => format!(
                    "{:.1} s ({:.0} servers/s; 50 % at {}; {} polls)",
                    d.as_secs_f64(),
                    n as f64 / d.as_secs_f64(),
                    secs(b.half),
                    b.polls
                ),
                None => format!(
                    "TIMEOUT after {:.0} s at {} updated Ready ({} servers, {} Ready)",
                    timeout.as_secs_f64(),
                    b.last.updated_ready,
                    b.last.replicas,
                    b.last.ready
                ),
            },
            "-",
        ));
        rows.push(row(
            "   confirmed by one full LIST",
            format!("{total} servers, {ready} Ready, {on_v2} Ready on v2"),
            format!("want {n} / {n} / {n}"),
        ));
        rows.push(row(
            "   controller reconciles (phase b)",
            format!(
                "{rec_b} reconciles, {rec_b_s:.1} s total, mean {:.0} ms, {err_b} errors",
                rec_b_s * 1e3 / rec_b.max(1) as f64
            ),
            "-",
        ));
    }
    server.stop().await;
    rows
}

/// What the allocation clients saw.
struct Allocations {
    wall: Duration,
    latencies: Vec<Duration>,
    allocated: Vec<String>,
    unallocated: usize,
    errors: usize,
}

async fn allocate_concurrently(client: &reqwest::Client, server: &Server) -> Allocations {
    let url = Arc::new(format!("{}/v1/allocate", server.service));
    let body = json!({"namespace": NS, "selectors": [{"gameServerSet": SET}]}).to_string();
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..ALLOC_CONCURRENCY)
        .map(|_| {
            let (client, url, body, next) =
                (client.clone(), url.clone(), body.clone(), next.clone());
            tokio::spawn(async move {
                let mut lat = Vec::new();
                let mut names = Vec::new();
                let (mut unallocated, mut errors) = (0, 0);
                while next.fetch_add(1, Ordering::Relaxed) < ALLOC_TARGET {
                    let t = Instant::now();
                    let r = client
                        .post(url.as_str())
                        .header("content-type", "application/json")
                        .body(body.clone())
                        .send()
                        .await;
                    let answer = match r {
                        Ok(r) if r.status().is_success() => r.json::<Value>().await.ok(),
                        Ok(r) => {
                            let status = r.status();
                            eprintln!("allocate: {status} {}", r.text().await.unwrap_or_default());
                            None
                        }
                        Err(e) => {
                            eprintln!("allocate: {e}");
                            None
                        }
                    };
                    lat.push(t.elapsed());
                    match answer {
                        Some(a) if a["state"] == "Allocated" => {
                            names.push(a["gameServerName"].as_str().unwrap_or("").to_owned());
                        }
                        Some(_) => unallocated += 1,
                        None => errors += 1,
                    }
                }
                (lat, names, unallocated, errors)
            })
        })
        .collect();
    let mut out = Allocations {
        wall: Duration::ZERO,
        latencies: Vec::new(),
        allocated: Vec::new(),
        unallocated: 0,
        errors: 0,
    };
    for w in workers {
        let (lat, names, unallocated, errors) = w.await.expect("worker");
        out.latencies.extend(lat);
        out.allocated.extend(names);
        out.unallocated += unallocated;
        out.errors += errors;
    }
    out.wall = started.elapsed();
    out
}

/// Phase c: a fresh server with a set of 2,000 Ready servers, then 32
/// concurrent allocation clients.
async fn allocation(client: &reqwest::Client, timeout: Duration) -> Vec<Row> {
    let mut rows = Vec::new();
    let server = Server::start().await;
    eprintln!("phase c: a set of {ALLOC_SERVERS} replicas");
    let started = Instant::now();
    create_set(client, &server, ALLOC_SERVERS).await;
    let ready = wait_rollout(
        client,
        &server,
        "alloc set",
        ALLOC_SERVERS as i64,
        1,
        started,
        timeout,
    )
    .await;
    rows.push(row(
        format!("   (scale up 0 -> {ALLOC_SERVERS}: all Ready)"),
        secs(ready.done),
        "-",
    ));
    if ready.done.is_none() {
        server.stop().await;
        return rows;
    }
    // One unmeasured allocation: it waits for the allocator's cache.
    let warm = client
        .post(format!("{}/v1/allocate", server.service))
        .header("content-type", "application/json")
        .body(json!({"namespace": NS, "selectors": [{"gameServerSet": SET}]}).to_string())
        .send()
        .await
        .expect("warm-up allocation");
    let warm: Value = warm.json().await.expect("warm-up answer");
    assert_eq!(warm["state"], "Allocated", "warm-up allocation: {warm}");

    eprintln!("phase c: {ALLOC_TARGET} allocations at concurrency {ALLOC_CONCURRENCY}");
    let (rec_before, rec_before_s, _) = server.reconciles();
    let result = allocate_concurrently(client, &server).await;
    let (rec_after, rec_after_s, _) = server.reconciles();
    let distinct: HashSet<&String> = result.allocated.iter().collect();
    let rate = result.allocated.len() as f64 / result.wall.as_secs_f64();
    let lat = Lat::new(result.latencies);
    eprintln!(
        "phase c: {rate:.0} allocations/s, p50 {:.1} ms, p99 {:.1} ms",
        lat.p50(),
        lat.p99()
    );
    rows.push(row(
        format!(
            "c. Allocate {ALLOC_TARGET} of {ALLOC_SERVERS} Ready (c={ALLOC_CONCURRENCY}, POST /v1/allocate)"
        ),
        format!(
            "{rate:.0} allocations/s (p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; {:.2} s)",
            lat.p50(),
            lat.p99(),
            lat.max(),
            result.wall.as_secs_f64()
        ),
        format!(
            "Agones: {:.0}-{:.0} allocations/s",
            AGONES_ALLOC_PER_S.0, AGONES_ALLOC_PER_S.1
        ),
    ));
    rows.push(row(
        "   answers",
        format!(
            "{} Allocated ({} distinct), {} UnAllocated, {} errors",
            result.allocated.len(),
            distinct.len(),
            result.unallocated,
            result.errors
        ),
        format!("want {ALLOC_TARGET} distinct, 0, 0"),
    ));
    let (rec, rec_s) = (rec_after - rec_before, rec_after_s - rec_before_s);
    rows.push(row(
        "   controller reconciles meanwhile",
        format!(
            "{rec} reconciles of the set, {rec_s:.2} s total, mean {:.0} ms",
            rec_s * 1e3 / rec.max(1) as f64
        ),
        "-",
    ));
    server.stop().await;
    rows
}

/// The 1-minute load average (Linux), to flag a busy machine.
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".into())
}

fn print_table(rows: &[Row]) {
    let headers = ["Measurement", "Result", "Comparison"];
    let cells: Vec<[&str; 3]> = rows
        .iter()
        .map(|r| [r.what.as_str(), r.result.as_str(), r.comparison.as_str()])
        .collect();
    let mut widths = headers.map(str::len);
    for c in &cells {
        for (w, s) in widths.iter_mut().zip(c) {
            *w = (*w).max(s.chars().count());
        }
    }
    let line = |c: [&str; 3]| {
        let parts: Vec<String> = c
            .iter()
            .zip(widths)
            .map(|(s, w)| format!("{s:<w$}"))
            .collect();
        println!("| {} |", parts.join(" | "));
    };
    line(headers);
    let dashes: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    println!("|-{}-|", dashes.join("-|-"));
    for c in cells {
        line(c);
    }
}

async fn bench(n: usize, timeout: Duration) {
    let client = reqwest::Client::builder()
        .no_proxy()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(ALLOC_CONCURRENCY * 2)
        .build()
        .expect("client");
    let load_before = loadavg();
    let mut rows = rollout(&client, n, timeout).await;
    rows.extend(allocation(&client, timeout).await);

    println!();
    println!(
        "gameops fleet benchmark: N = {n}, {} CPUs, in-process serve on 127.0.0.1:0, in-memory store, controller + simulator (startup delay 0, jitter 0)",
        std::thread::available_parallelism().map_or(0, |p| p.get())
    );
    println!(
        "RollingUpdate maxSurge {MAX_SURGE}, maxUnavailable {MAX_UNAVAILABLE}; status polled every {} ms",
        POLL.as_millis()
    );
    println!(
        "1-min load average: {load_before} before, {} after (client, API server, controller and simulator share these CPUs)",
        loadavg()
    );
    println!();
    print_table(&rows);
}

fn main() {
    // `cargo bench` passes `--bench`; there are no options besides the env vars.
    let env = |name: &str| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
            .filter(|n| *n > 0)
    };
    let n = env("GAMEOPS_BENCH_N").unwrap_or(10_000);
    let timeout = Duration::from_secs(env("GAMEOPS_BENCH_PHASE_TIMEOUT_S").unwrap_or(900) as u64);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(bench(n, timeout));
}
