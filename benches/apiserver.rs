//! End-to-end benchmark of the embedded API server (issue #2).
//!
//! Starts `gameops serve` in-process (`serve::start` + `Running::serve`) on
//! loopback port 0 with a durable store in a temporary directory (the
//! production default) and drives it over real HTTP with one shared
//! `reqwest::Client`:
//!
//! 1. create throughput (POST, concurrency 16), durable and in-memory;
//! 2. LIST latency of every object as JSON and as a Table;
//! 3. merge-patch throughput and latency (concurrency 16);
//! 4. watch event delivery latency (PATCH sent -> MODIFIED line received);
//! 5. cold-restart recovery (store reopen, and until the API answers a LIST).
//!
//! Run with `cargo bench --bench apiserver`; `GAMEOPS_BENCH_N` changes the
//! object count (default 10000). With `GAMEOPS_BENCH_KUBECONFIG=FILE` it
//! measures 1-4 against that server instead (kube-apiserver from
//! `scripts/real-stack up`, for the side-by-side in BENCHMARKS.md).
#![allow(
    clippy::too_many_lines,
    reason = "a scenario or a table reads best top to bottom"
)]

mod common;

use common::{Lat, ms};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use axum::serve::ListenerExt;
use gameops::cli::serve::{DEFAULT_CLUSTER, Running, ServeOptions, start};
use gameops::cluster::apiserver::resources::plurals;
use gameops::cluster::apiserver::{Cluster, router};
use gameops::cluster::store::Store;
use serde_json::Value;
use tokio::task::JoinHandle;

const NS: &str = "bench";
const CONCURRENCY: usize = 16;
const LIST_RUNS: usize = 30;
const WATCH_PATCHES: usize = 1000;
const HEALTH_REQUESTS: usize = 20_000;
const TABLE_ACCEPT: &str = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json";
const MERGE_PATCH: &str = "application/merge-patch+json";

/// Targets (issue #2).
const TARGET_PATCHES_PER_S: f64 = 5000.0;
const TARGET_LIST_MS: f64 = 100.0;
const TARGET_RECOVERY_MS: f64 = 1000.0;
/// Kubernetes API call latency SLOs (sig-scalability): mutating calls p99
/// <= 1 s; namespaced LIST p99 <= 5 s.
const SLO_MUTATING_MS: f64 = 1000.0;
const SLO_LIST_MS: f64 = 5000.0;

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn now_ns() -> u64 {
    epoch().elapsed().as_nanos() as u64
}

/// One row of the results table.
struct Row {
    what: String,
    result: String,
    target: String,
    slo: String,
    verdict: &'static str,
}

fn row(what: &str, result: String, target: &str, slo: &str, verdict: &'static str) -> Row {
    Row {
        what: what.to_owned(),
        result,
        target: target.to_owned(),
        slo: slo.to_owned(),
        verdict,
    }
}

fn verdict(ok: bool) -> &'static str {
    if ok { "PASS" } else { "MISS" }
}

/// The server under test: in-process (with its cluster and serving task),
/// or external (kube-apiserver, `GAMEOPS_BENCH_KUBECONFIG`).
struct Server {
    cluster: Option<Cluster>,
    base: String,
    task: Option<JoinHandle<()>>,
}

impl Server {
    async fn start(data_dir: &Path, in_memory: bool) -> Self {
        let loopback: SocketAddr = "127.0.0.1:0".parse().expect("address");
        let options = ServeOptions {
            api_listen: loopback,
            listen: loopback,
            data_dir: data_dir.to_owned(),
            in_memory,
            kubeconfig_out: None,
            clusters: vec![DEFAULT_CLUSTER.to_owned()],
            api_token_file: None,
            // The API server alone: no controller reacting to the bench's objects.
            controller: false,
            simulator: None,
            config: Default::default(),
            write_plugin_token: true,
            event_ttl: gameops::cluster::apiserver::event_ttl::DEFAULT_TTL,
        };
        let running: Running = start(&options).await.expect("server starts");
        let cluster = running.clusters[0].clone();
        let base = format!("http://{}", running.api_addr);
        let task = tokio::spawn(async move {
            if let Err(e) = running.serve().await {
                eprintln!("server stopped: {e}");
            }
        });
        Self {
            cluster: Some(cluster),
            base,
            task: Some(task),
        }
    }

    /// Diagnostic only: serves `cluster` with the same router as `serve`,
    /// but with TCP_NODELAY set on every accepted socket.
    async fn nodelay(cluster: Cluster) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("address"));
        let app = router(std::slice::from_ref(&cluster), None);
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            cluster: Some(cluster),
            base,
            task: Some(task),
        }
    }

    fn collection(&self) -> String {
        format!(
            "{}/apis/game.kruise.io/v1alpha1/namespaces/{NS}/gameservers",
            self.base
        )
    }

    /// A server this process does not run, at `base`.
    fn external(base: String) -> Self {
        Self {
            cluster: None,
            base,
            task: None,
        }
    }

    /// The in-process cluster (the embedded server's own figures).
    fn cluster(&self) -> &Cluster {
        self.cluster.as_ref().expect("an in-process server")
    }

    /// The newest resourceVersion: the store's, or an external server's
    /// from a LIST (etcd's revision, counting every write in the cluster).
    async fn current_rv(&self, client: &reqwest::Client) -> u64 {
        if let Some(cluster) = &self.cluster {
            return cluster.store.current_rv();
        }
        let list: Value = client
            .get(format!("{}?limit=1", self.collection()))
            .send()
            .await
            .expect("list")
            .json()
            .await
            .expect("list JSON");
        list["metadata"]["resourceVersion"]
            .as_str()
            .and_then(|v| v.parse().ok())
            .expect("a resourceVersion")
    }

    /// Stops serving and closes the store (finishing queued writes).
    async fn stop(self) {
        if let Some(task) = self.task {
            task.abort();
            let _ = task.await;
        }
        if let Some(cluster) = self.cluster {
            let store = cluster.store.clone();
            tokio::task::spawn_blocking(move || store.close())
                .await
                .expect("close");
        }
    }
}

fn gameserver(i: usize) -> String {
    format!(
        r#"{{"apiVersion":"game.kruise.io/v1alpha1","kind":"GameServer","metadata":{{"name":"gs-{i}","namespace":"{NS}","labels":{{"game.kruise.io/owner-gss":"bench"}}}},"spec":{{"opsState":"None","containers":[{{"name":"game","image":"example/game:v1"}}]}}}}"#
    )
}

/// Runs `op(i)` for i in 0..total on `CONCURRENCY` tasks; returns the wall
/// time and every call's latency. `op` returns whether the call succeeded.
async fn run_concurrent<F, Fut>(total: usize, op: F) -> (Duration, Vec<Duration>, usize)
where
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..CONCURRENCY)
        .map(|_| {
            let next = next.clone();
            let op = op.clone();
            tokio::spawn(async move {
                let mut lat = Vec::with_capacity(total / CONCURRENCY + 1);
                let mut failed = 0;
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= total {
                        break;
                    }
                    let t = Instant::now();
                    if !op(i).await {
                        failed += 1;
                    }
                    lat.push(t.elapsed());
                }
                (lat, failed)
            })
        })
        .collect();
    let mut all = Vec::with_capacity(total);
    let mut failed = 0;
    for w in workers {
        let (lat, f) = w.await.expect("worker");
        all.extend(lat);
        failed += f;
    }
    (started.elapsed(), all, failed)
}

async fn create_all(client: &reqwest::Client, server: &Server, n: usize) -> (f64, Lat) {
    let url = Arc::new(server.collection());
    let client = client.clone();
    let (wall, lat, failed) = run_concurrent(n, move |i| {
        let client = client.clone();
        let url = url.clone();
        async move {
            let r = client
                .post(url.as_str())
                .header("content-type", "application/json")
                .body(gameserver(i))
                .send()
                .await;
            match r {
                Ok(r) if r.status() == reqwest::StatusCode::CREATED => r.bytes().await.is_ok(),
                Ok(r) => {
                    let status = r.status();
                    let body = r.text().await.unwrap_or_default();
                    eprintln!("create gs-{i}: {status} {body}");
                    false
                }
                Err(e) => {
                    eprintln!("create gs-{i}: {e}");
                    false
                }
            }
        }
    })
    .await;
    assert_eq!(failed, 0, "every create must succeed");
    (n as f64 / wall.as_secs_f64(), Lat::new(lat))
}

/// Lists every object `runs` times; returns latencies and the body size.
async fn list_latency(
    client: &reqwest::Client,
    server: &Server,
    accept: &str,
    n: usize,
) -> (Lat, usize) {
    let url = server.collection();
    let mut lat = Vec::with_capacity(LIST_RUNS);
    let mut size = 0;
    // One warm-up request, not measured.
    for run in 0..=LIST_RUNS {
        let t = Instant::now();
        let r = client
            .get(&url)
            .header("accept", accept)
            .send()
            .await
            .expect("list");
        assert!(r.status().is_success(), "list: {}", r.status());
        let body = r.bytes().await.expect("list body");
        let d = t.elapsed();
        if run == 0 {
            let v: Value = serde_json::from_slice(&body).expect("list JSON");
            let count = v["items"]
                .as_array()
                .or_else(|| v["rows"].as_array())
                .map_or(0, Vec::len);
            assert_eq!(count, n, "the list holds every object");
        } else {
            lat.push(d);
        }
        size = body.len();
    }
    (Lat::new(lat), size)
}

async fn patch_all(
    client: &reqwest::Client,
    server: &Server,
    n: usize,
    total: usize,
) -> (f64, Lat, u64) {
    let base = Arc::new(server.collection());
    // Per-object flip counters so that every patch really changes the object
    // (the server skips no-op patches without writing).
    let flips: Arc<Vec<AtomicU32>> = Arc::new((0..n).map(|_| AtomicU32::new(0)).collect());
    let rv_before = server.current_rv(client).await;
    let checker = client.clone();
    let client = client.clone();
    let (wall, lat, failed) = run_concurrent(total, move |i| {
        let client = client.clone();
        let base = base.clone();
        let flips = flips.clone();
        async move {
            let obj = rand::random_range(0..n);
            let flip = flips[obj].fetch_add(1, Ordering::Relaxed);
            let state = if flip.is_multiple_of(2) {
                "Allocated"
            } else {
                "None"
            };
            let r = client
                .patch(format!("{base}/gs-{obj}"))
                .header("content-type", MERGE_PATCH)
                .body(format!(r#"{{"spec":{{"opsState":"{state}"}}}}"#))
                .send()
                .await;
            match r {
                Ok(r) if r.status().is_success() => r.bytes().await.is_ok(),
                Ok(r) => {
                    eprintln!("patch #{i} gs-{obj}: {}", r.status());
                    false
                }
                Err(e) => {
                    eprintln!("patch #{i} gs-{obj}: {e}");
                    false
                }
            }
        }
    })
    .await;
    assert_eq!(failed, 0, "every patch must succeed");
    let writes = server.current_rv(&checker).await - rv_before;
    (total as f64 / wall.as_secs_f64(), Lat::new(lat), writes)
}

/// Reads a watch stream until `want` MODIFIED events carrying the
/// `bench/sent-ns` annotation arrived; returns each event's delivery time.
async fn read_watch(mut response: reqwest::Response, want: usize) -> Vec<Duration> {
    let mut out = Vec::with_capacity(want);
    let mut buf: Vec<u8> = Vec::new();
    while out.len() < want {
        let chunk = match response.chunk().await {
            Ok(Some(c)) => c,
            Ok(None) => break,
            Err(e) => {
                eprintln!("watch stream: {e}");
                break;
            }
        };
        let arrived = now_ns();
        buf.extend_from_slice(&chunk);
        while let Some(end) = buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buf.drain(..=end).collect();
            let Ok(event) = serde_json::from_slice::<Value>(&line) else {
                continue;
            };
            if event["type"] != "MODIFIED" {
                continue;
            }
            let sent = event
                .pointer("/object/metadata/annotations/bench~1sent-ns")
                .and_then(Value::as_str)
                .and_then(|s| s.parse::<u64>().ok());
            if let Some(sent) = sent {
                out.push(Duration::from_nanos(arrived.saturating_sub(sent)));
            }
        }
    }
    out
}

/// Sequential patches, each stamped; returns (watch delivery, PATCH round trip).
async fn watch_latency(client: &reqwest::Client, server: &Server, n: usize) -> (Lat, Lat) {
    let rv = server.current_rv(client).await;
    let url = server.collection();
    let response = client
        .get(format!("{url}?watch=true&resourceVersion={rv}"))
        .header("accept", "application/json")
        .send()
        .await
        .expect("watch");
    assert!(
        response.status().is_success(),
        "watch: {}",
        response.status()
    );
    let watcher = tokio::spawn(read_watch(response, WATCH_PATCHES));
    let mut round_trips = Vec::with_capacity(WATCH_PATCHES);
    for i in 0..WATCH_PATCHES {
        let obj = (i * 7919) % n;
        let state = if i.is_multiple_of(2) {
            "Maintaining"
        } else {
            "None"
        };
        let sent = now_ns();
        let t = Instant::now();
        let body = format!(
            r#"{{"metadata":{{"annotations":{{"bench/sent-ns":"{sent}"}}}},"spec":{{"opsState":"{state}"}}}}"#
        );
        let r = client
            .patch(format!("{url}/gs-{obj}"))
            .header("content-type", MERGE_PATCH)
            .body(body)
            .send()
            .await
            .expect("patch");
        assert!(r.status().is_success(), "patch: {}", r.status());
        r.bytes().await.expect("patch body");
        round_trips.push(t.elapsed());
    }
    let delivered = tokio::time::timeout(Duration::from_secs(30), watcher)
        .await
        .expect("every watch event arrives within 30 s")
        .expect("watcher");
    assert_eq!(delivered.len(), WATCH_PATCHES, "one event per patch");
    (Lat::new(delivered), Lat::new(round_trips))
}

/// The HTTP floor: GET /readyz at concurrency 16 (client + hyper + loopback,
/// no store work).
async fn http_floor(client: &reqwest::Client, server: &Server) -> (f64, Lat) {
    let url = Arc::new(format!("{}/readyz", server.base));
    let client = client.clone();
    let (wall, lat, failed) = run_concurrent(HEALTH_REQUESTS, move |_| {
        let client = client.clone();
        let url = url.clone();
        async move {
            match client.get(url.as_str()).send().await {
                Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
                Err(_) => false,
            }
        }
    })
    .await;
    assert_eq!(failed, 0);
    (HEALTH_REQUESTS as f64 / wall.as_secs_f64(), Lat::new(lat))
}

fn dir_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => dir_size(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}

/// The 1-minute load average (Linux), to flag a busy machine.
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".into())
}

fn print_table(rows: &[Row]) {
    let headers = ["Measurement", "Result", "Target", "Kubernetes SLO", ""];
    let cells: Vec<[&str; 5]> = rows
        .iter()
        .map(|r| {
            [
                r.what.as_str(),
                r.result.as_str(),
                r.target.as_str(),
                r.slo.as_str(),
                r.verdict,
            ]
        })
        .collect();
    let mut widths = headers.map(str::len);
    for c in &cells {
        for (w, s) in widths.iter_mut().zip(c) {
            *w = (*w).max(s.chars().count());
        }
    }
    let line = |c: [&str; 5]| {
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

async fn bench(n: usize) {
    let client = reqwest::Client::builder()
        .no_proxy()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(CONCURRENCY * 2)
        .build()
        .expect("client");
    let mut rows = Vec::new();
    let _ = epoch();
    let load_before = loadavg();

    // In-memory create throughput, for comparison with the durable store.
    let mem_dir = tempfile::tempdir().expect("temp dir");
    let mem = Server::start(mem_dir.path(), true).await;
    let (mem_create, mem_create_lat) = create_all(&client, &mem, n).await;
    eprintln!("in-memory create: {mem_create:.0}/s");
    let (floor, floor_lat) = http_floor(&client, &mem).await;
    eprintln!("http floor: {floor:.0}/s");
    mem.stop().await;

    // The durable server (production default).
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start(dir.path(), false).await;

    let (create, create_lat) = create_all(&client, &server, n).await;
    eprintln!("durable create: {create:.0}/s");
    rows.push(row(
        &format!("Create {n} GameServers, durable (c={CONCURRENCY})"),
        format!(
            "{create:.0} obj/s (p50 {:.2} ms, p99 {:.2} ms)",
            create_lat.p50(),
            create_lat.p99()
        ),
        "-",
        "mutating p99 <= 1 s",
        verdict(create_lat.p99() <= SLO_MUTATING_MS),
    ));
    rows.push(row(
        &format!("Create {n} GameServers, in-memory (c={CONCURRENCY})"),
        format!(
            "{mem_create:.0} obj/s (p50 {:.2} ms, p99 {:.2} ms)",
            mem_create_lat.p50(),
            mem_create_lat.p99()
        ),
        "- (comparison only)",
        "mutating p99 <= 1 s",
        verdict(mem_create_lat.p99() <= SLO_MUTATING_MS),
    ));

    let (json_lat, json_size) = list_latency(&client, &server, "application/json", n).await;
    let (table_lat, table_size) = list_latency(&client, &server, TABLE_ACCEPT, n).await;
    eprintln!(
        "list json p50 {:.1} ms, table p50 {:.1} ms",
        json_lat.p50(),
        table_lat.p50()
    );
    for (what, lat, size) in [
        ("JSON", &json_lat, json_size),
        ("Table", &table_lat, table_size),
    ] {
        rows.push(row(
            &format!("LIST {n} as {what} ({LIST_RUNS} runs)"),
            format!(
                "p50 {:.1} ms, p99 {:.1} ms, {:.2} MB",
                lat.p50(),
                lat.p99(),
                size as f64 / 1e6
            ),
            "< 100 ms",
            "namespaced LIST p99 <= 5 s",
            verdict(lat.p99() < TARGET_LIST_MS && lat.p99() <= SLO_LIST_MS),
        ));
    }

    // Diagnostic: the server-side cost of rendering the Table, in-process
    // (no HTTP, no client).
    let render = {
        let store = server.cluster().store.clone();
        tokio::task::spawn_blocking(move || {
            let def = gameops::cluster::apiserver::resources::find(
                "game.kruise.io",
                "v1alpha1",
                "gameservers",
            )
            .expect("gameservers");
            let mut lat = Vec::new();
            for _ in 0..10 {
                let t = Instant::now();
                let (items, _) = store.list("gameservers", Some(NS));
                let body = gameops::cluster::apiserver::table::table(
                    def,
                    items.iter().map(|o| &o.value),
                    &serde_json::json!({}),
                );
                std::hint::black_box(body);
                lat.push(t.elapsed());
            }
            Lat::new(lat)
        })
        .await
        .expect("render")
    };
    rows.push(row(
        "  diagnostic: table::table, in-process",
        format!("p50 {:.1} ms (10 runs)", render.p50()),
        "-",
        "-",
        "-",
    ));

    let total = 2 * n;
    let (patches, patch_lat, writes) = patch_all(&client, &server, n, total).await;
    eprintln!("merge patch: {patches:.0}/s ({writes} writes)");
    rows.push(row(
        &format!("Merge-patch {total}x, random objects (c={CONCURRENCY})"),
        format!(
            "{patches:.0} patch/s (p50 {:.2} ms, p99 {:.2} ms, max {:.1} ms; {writes} writes)",
            patch_lat.p50(),
            patch_lat.p99(),
            patch_lat.max()
        ),
        ">= 5000 patch/s",
        "mutating p99 <= 1 s",
        verdict(patches >= TARGET_PATCHES_PER_S && patch_lat.p99() <= SLO_MUTATING_MS),
    ));

    let (watch_lat, rtt) = watch_latency(&client, &server, n).await;
    eprintln!("watch p50 {:.2} ms", watch_lat.p50());
    rows.push(row(
        &format!("Watch delivery, {WATCH_PATCHES} sequential patches"),
        format!(
            "p50 {:.2} ms, p99 {:.2} ms, max {:.1} ms",
            watch_lat.p50(),
            watch_lat.p99(),
            watch_lat.max()
        ),
        "-",
        "none official",
        "-",
    ));
    rows.push(row(
        "  (same patches: PATCH round trip, c=1)",
        format!("p50 {:.2} ms, p99 {:.2} ms", rtt.p50(), rtt.p99()),
        "-",
        "mutating p99 <= 1 s",
        verdict(rtt.p99() <= SLO_MUTATING_MS),
    ));

    // Diagnostic: the same measurement with TCP_NODELAY on the server's
    // sockets (axum 0.8 `serve` leaves Nagle's algorithm on).
    let diag = Server::nodelay(server.cluster().clone()).await;
    let (nodelay_lat, _) = watch_latency(&client, &diag, n).await;
    if let Some(task) = diag.task {
        task.abort();
        let _ = task.await;
    }
    eprintln!("watch (server TCP_NODELAY) p50 {:.2} ms", nodelay_lat.p50());
    rows.push(row(
        "  diagnostic: same, server sockets TCP_NODELAY",
        format!(
            "p50 {:.2} ms, p99 {:.2} ms, max {:.1} ms",
            nodelay_lat.p50(),
            nodelay_lat.p99(),
            nodelay_lat.max()
        ),
        "-",
        "none official",
        "-",
    ));

    // Cold restart: stop serving, close the store, reopen.
    let cluster_dir = dir.path().join(DEFAULT_CLUSTER);
    server.stop().await;
    let size = dir_size(&cluster_dir);
    let reopen_dir = cluster_dir.clone();
    let (reopen, count) = tokio::task::spawn_blocking(move || {
        let t = Instant::now();
        let store = Store::open(Some(&reopen_dir), &plurals()).expect("reopen");
        let d = t.elapsed();
        let count = store.list("gameservers", Some(NS)).0.len();
        store.close();
        (d, count)
    })
    .await
    .expect("reopen");
    assert_eq!(count, n, "every object comes back");
    let cluster_open = {
        let data_dir = dir.path().to_owned();
        tokio::task::spawn_blocking(move || {
            let t = Instant::now();
            let cluster = Cluster::open(DEFAULT_CLUSTER, Some(&data_dir)).expect("reopen");
            let d = t.elapsed();
            cluster.store.close();
            d
        })
        .await
        .expect("reopen")
    };
    // Until the HTTP API answers a full LIST (open + bind + serve + list).
    let t = Instant::now();
    let server = Server::start(dir.path(), false).await;
    let r = client
        .get(server.collection())
        .header("accept", "application/json")
        .send()
        .await
        .expect("list after restart");
    let body = r.bytes().await.expect("list body");
    let until_list = t.elapsed();
    let listed: Value = serde_json::from_slice(&body).expect("list JSON");
    assert_eq!(listed["items"].as_array().map_or(0, Vec::len), n);
    server.stop().await;
    eprintln!("reopen {:.0} ms", ms(reopen));
    rows.push(row(
        &format!("Cold restart: Store::open of {n} objects"),
        format!("{:.0} ms ({:.1} MB on disk)", ms(reopen), size as f64 / 1e6),
        "< 1 s",
        "-",
        verdict(ms(reopen) < TARGET_RECOVERY_MS),
    ));
    rows.push(row(
        "  Cluster::open (same data)",
        format!("{:.0} ms", ms(cluster_open)),
        "< 1 s",
        "-",
        verdict(ms(cluster_open) < TARGET_RECOVERY_MS),
    ));
    rows.push(row(
        "  start -> first full LIST answered over HTTP",
        format!("{:.0} ms", ms(until_list)),
        "< 1 s",
        "-",
        verdict(ms(until_list) < TARGET_RECOVERY_MS),
    ));
    rows.push(row(
        &format!("HTTP floor: GET /readyz (c={CONCURRENCY}, no store work)"),
        format!(
            "{floor:.0} req/s (p50 {:.2} ms, p99 {:.2} ms)",
            floor_lat.p50(),
            floor_lat.p99()
        ),
        "-",
        "-",
        "-",
    ));

    println!();
    println!(
        "gameops API server benchmark: N = {n}, {} CPUs, server in-process on 127.0.0.1:0, durable store in {}",
        std::thread::available_parallelism().map_or(0, |p| p.get()),
        dir.path().display()
    );
    println!(
        "1-min load average: {load_before} before, {} after (other processes share these CPUs)",
        loadavg()
    );
    println!();
    print_table(&rows);
    println!();
    println!(
        "Kubernetes SLOs: API call latency (sig-scalability) - mutating calls p99 <= 1 s, namespaced LIST p99 <= 5 s; watch latency has no official SLO."
    );
}

/// The same create, LIST, merge-patch and watch figures against the server
/// of `kubeconfig` (kube-apiserver + etcd from scripts/real-stack, with
/// OpenKruiseGame's CRDs), for the side-by-side in BENCHMARKS.md.
async fn bench_external(kubeconfig: &Path, n: usize) {
    let (base, client) = common::tls_client(kubeconfig, CONCURRENCY * 2);
    let namespace =
        serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}});
    let created = client
        .post(format!("{base}/api/v1/namespaces"))
        .json(&namespace)
        .send()
        .await
        .expect("create the namespace");
    assert!(
        created.status().is_success() || created.status() == reqwest::StatusCode::CONFLICT,
        "namespace {NS}: {}",
        created.status()
    );
    let load_before = loadavg();
    let server = Server::external(base.clone());
    let mut rows = Vec::new();
    let (create, create_lat) = create_all(&client, &server, n).await;
    rows.push(row(
        &format!("Create {n} GameServers (c={CONCURRENCY})"),
        format!(
            "{create:.0} obj/s (p50 {:.2} ms, p99 {:.2} ms)",
            create_lat.p50(),
            create_lat.p99()
        ),
        "-",
        "mutating p99 <= 1 s",
        verdict(create_lat.p99() <= SLO_MUTATING_MS),
    ));
    for (what, accept) in [("JSON", "application/json"), ("Table", TABLE_ACCEPT)] {
        let (lat, size) = list_latency(&client, &server, accept, n).await;
        rows.push(row(
            &format!("LIST {n} as {what} ({LIST_RUNS} runs)"),
            format!(
                "p50 {:.1} ms, p99 {:.1} ms, {:.2} MB",
                lat.p50(),
                lat.p99(),
                size as f64 / 1e6
            ),
            "-",
            "namespaced LIST p99 <= 5 s",
            verdict(lat.p99() <= SLO_LIST_MS),
        ));
    }
    let total = 2 * n;
    let (patches, patch_lat, _) = patch_all(&client, &server, n, total).await;
    rows.push(row(
        &format!("Merge-patch {total}x, random objects (c={CONCURRENCY})"),
        format!(
            "{patches:.0} patch/s (p50 {:.2} ms, p99 {:.2} ms, max {:.1} ms)",
            patch_lat.p50(),
            patch_lat.p99(),
            patch_lat.max()
        ),
        "-",
        "mutating p99 <= 1 s",
        verdict(patch_lat.p99() <= SLO_MUTATING_MS),
    ));
    let (watch_lat, rtt) = watch_latency(&client, &server, n).await;
    rows.push(row(
        &format!("Watch delivery, {WATCH_PATCHES} sequential patches"),
        format!(
            "p50 {:.2} ms, p99 {:.2} ms, max {:.1} ms",
            watch_lat.p50(),
            watch_lat.p99(),
            watch_lat.max()
        ),
        "-",
        "none official",
        "-",
    ));
    rows.push(row(
        "  (same patches: PATCH round trip, c=1)",
        format!("p50 {:.2} ms, p99 {:.2} ms", rtt.p50(), rtt.p99()),
        "-",
        "mutating p99 <= 1 s",
        verdict(rtt.p99() <= SLO_MUTATING_MS),
    ));
    println!();
    println!(
        "kube-apiserver benchmark: N = {n}, {} CPUs, server {base} ({})",
        std::thread::available_parallelism().map_or(0, |p| p.get()),
        kubeconfig.display()
    );
    println!(
        "1-min load average: {load_before} before, {} after",
        loadavg()
    );
    println!();
    print_table(&rows);
}

fn main() {
    // `cargo bench` passes `--bench`; there are no options besides the env vars.
    let n = std::env::var("GAMEOPS_BENCH_N")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|n| *n > 0)
        .unwrap_or(10_000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    match std::env::var_os("GAMEOPS_BENCH_KUBECONFIG") {
        Some(kubeconfig) => runtime.block_on(bench_external(Path::new(&kubeconfig), n)),
        None => runtime.block_on(bench(n)),
    }
}
