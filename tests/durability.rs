//! Durability of the embedded API server's store: every acknowledged write
//! survives a SIGKILL in the middle of a burst of concurrent writes, and a
//! restart (SIGKILL while idle, or SIGTERM) gives back exactly the objects
//! and resourceVersions that were there.
#![allow(
    clippy::too_many_lines,
    reason = "a scenario or a table reads best top to bottom"
)]

mod common;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Server, free_port};
use gameops::api::{GameServer, GameServerSet, GameServerSetSpec, GameServerSpec};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

const NS: &str = "default";
const SEQ: &str = "durability.test/seq";
const WORKERS: usize = 8;
const PATCHES_PER_OBJECT: u64 = 3;
/// The server is killed once this many writes were acknowledged.
const KILL_AFTER: usize = 400;

fn gs(name: &str) -> GameServer {
    GameServer::new(
        name,
        GameServerSpec {
            ops_state: Some("None".into()),
            ..Default::default()
        },
    )
}

fn rv_num<K: kube::Resource>(o: &K) -> u64 {
    o.resource_version()
        .expect("resourceVersion")
        .parse()
        .expect("numeric resourceVersion")
}

/// One write the server acknowledged with a 2xx.
#[derive(Debug, Clone)]
enum Ack {
    Created { name: String, uid: String, rv: u64 },
    Patched { name: String, seq: u64, rv: u64 },
}

#[derive(Default)]
struct Record {
    acks: Mutex<Vec<Ack>>,
    /// name -> highest `seq` ever sent (acknowledged or not).
    attempted: Mutex<HashMap<String, u64>>,
    acked: AtomicUsize,
    in_flight: AtomicUsize,
    killed: AtomicBool,
}

impl Record {
    fn ack(&self, ack: Ack) {
        self.acks.lock().unwrap().push(ack);
        self.acked.fetch_add(1, Ordering::SeqCst);
    }
}

/// Runs `request`, counting it as in flight meanwhile; `None` on any failure.
async fn tracked<T>(
    record: &Record,
    request: impl std::future::Future<Output = Result<T, kube::Error>>,
) -> Option<T> {
    record.in_flight.fetch_add(1, Ordering::SeqCst);
    let out = tokio::time::timeout(Duration::from_secs(20), request).await;
    record.in_flight.fetch_sub(1, Ordering::SeqCst);
    match out {
        Ok(Ok(v)) => Some(v),
        Ok(Err(e)) => {
            assert!(
                record.killed.load(Ordering::SeqCst),
                "a write failed before the kill: {e}"
            );
            None
        }
        Err(_) => panic!("a write hung for 20s"),
    }
}

/// Creates objects and patches each a few times until the server goes away.
async fn worker(id: usize, api: Api<GameServer>, record: Arc<Record>) {
    for i in 0.. {
        let name = format!("w{id}-{i:05}");
        record.attempted.lock().unwrap().insert(name.clone(), 0);
        let Some(created) = tracked(&record, api.create(&PostParams::default(), &gs(&name))).await
        else {
            return;
        };
        record.ack(Ack::Created {
            name: name.clone(),
            uid: created.uid().expect("uid"),
            rv: rv_num(&created),
        });
        for seq in 1..=PATCHES_PER_OBJECT {
            record.attempted.lock().unwrap().insert(name.clone(), seq);
            let patch = Patch::Merge(json!({
                "metadata": {"annotations": {SEQ: seq.to_string()}},
                "spec": {"deletionPriority": seq},
            }));
            let Some(patched) =
                tracked(&record, api.patch(&name, &PatchParams::default(), &patch)).await
            else {
                return;
            };
            assert_eq!(
                patched.annotations().get(SEQ).map(String::as_str),
                Some(seq.to_string().as_str())
            );
            record.ack(Ack::Patched {
                name: name.clone(),
                seq,
                rv: rv_num(&patched),
            });
        }
    }
}

fn seq_of(o: &GameServer) -> u64 {
    o.annotations()
        .get(SEQ)
        .map_or(0, |s| s.parse().expect("numeric seq"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn acknowledged_writes_survive_kill9_mid_burst() {
    let server = Server::start(&[]);
    let client = server.client().await;
    let server = Arc::new(Mutex::new(server));
    let record = Arc::new(Record::default());

    let workers: Vec<_> = (0..WORKERS)
        .map(|id| {
            tokio::spawn(worker(
                id,
                Api::namespaced(client.clone(), NS),
                record.clone(),
            ))
        })
        .collect();

    let killer = {
        let server = server.clone();
        let record = record.clone();
        tokio::spawn(async move {
            let deadline = Instant::now() + Duration::from_secs(60);
            while record.acked.load(Ordering::SeqCst) < KILL_AFTER {
                assert!(Instant::now() < deadline, "the burst is too slow");
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            record.killed.store(true, Ordering::SeqCst);
            let in_flight = record.in_flight.load(Ordering::SeqCst);
            server.lock().unwrap().kill9();
            in_flight
        })
    };
    let in_flight_at_kill = killer.await.expect("killer");
    for w in workers {
        w.await.expect("worker");
    }
    assert!(
        in_flight_at_kill > 0,
        "the kill must hit writes in flight (none were)"
    );
    let acks = record.acks.lock().unwrap().clone();
    let attempted = record.attempted.lock().unwrap().clone();
    assert!(acks.len() >= KILL_AFTER);

    server.lock().unwrap().restart();
    let kubeconfig = server.lock().unwrap().kubeconfig();
    let api: Api<GameServer> = Api::namespaced(client_of(kubeconfig).await, NS);

    let stored: BTreeMap<String, GameServer> = api
        .list(&ListParams::default())
        .await
        .expect("list after restart")
        .items
        .into_iter()
        .map(|o| (o.name_any(), o))
        .collect();
    for name in stored.keys() {
        assert!(
            attempted.contains_key(name),
            "{name} exists but was never written"
        );
    }
    let mut max_rv_seen = 0;
    let mut checked_patches = 0;
    for ack in &acks {
        match ack {
            Ack::Created { name, uid, rv } => {
                max_rv_seen = max_rv_seen.max(*rv);
                let o = stored
                    .get(name)
                    .unwrap_or_else(|| panic!("acknowledged create of {name} was lost"));
                assert_eq!(o.uid().as_deref(), Some(uid.as_str()), "{name} uid");
                assert!(rv_num(o) >= *rv, "{name}: rv went back");
            }
            Ack::Patched { name, seq, rv } => {
                max_rv_seen = max_rv_seen.max(*rv);
                checked_patches += 1;
                let o = stored
                    .get(name)
                    .unwrap_or_else(|| panic!("patched {name} was lost"));
                let have = seq_of(o);
                assert!(
                    have >= *seq,
                    "{name}: acknowledged seq {seq} lost, stored {have}"
                );
                assert!(
                    have <= attempted[name],
                    "{name}: stored seq {have} was never sent"
                );
                if have == *seq {
                    assert_eq!(rv_num(o), *rv, "{name}: the acknowledged version itself");
                }
                assert_eq!(
                    o.spec.deletion_priority,
                    Some(
                        k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(have as i32)
                    ),
                    "{name}: annotation and spec of one patch are written together"
                );
            }
        }
    }
    assert!(checked_patches > 0);
    let max_stored = stored.values().map(rv_num).max().unwrap_or(0);
    assert!(max_stored >= max_rv_seen);

    let after = api
        .create(&PostParams::default(), &gs("after-restart"))
        .await
        .expect("create after restart");
    assert!(
        rv_num(&after) > max_rv_seen && rv_num(&after) > max_stored,
        "versions keep increasing across the crash: {} vs seen {max_rv_seen}, stored {max_stored}",
        rv_num(&after)
    );
    let patched = api
        .patch(
            "after-restart",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"opsState": "Allocated"}})),
        )
        .await
        .unwrap();
    assert!(rv_num(&patched) > rv_num(&after));
}

// ------------------------------------------------------- clean restarts

/// Every object the server holds, as raw JSON lists, plus each list's
/// resourceVersion.
async fn snapshot(base: &str) -> Vec<(String, Value)> {
    let http = reqwest::Client::new();
    let mut out = Vec::new();
    for path in [
        "/apis/game.kruise.io/v1alpha1/gameserversets",
        "/apis/game.kruise.io/v1alpha1/gameservers",
        "/api/v1/events",
        "/api/v1/pods",
    ] {
        let list: Value = http
            .get(format!("{base}{path}"))
            .send()
            .await
            .expect("list")
            .error_for_status()
            .expect("list ok")
            .json()
            .await
            .expect("list json");
        out.push((path.to_owned(), list));
    }
    out
}

/// A snapshot once the fleet has settled: the controller creates the
/// servers of `minecraft` and the simulator starts them a few seconds later
/// (`SimulatorConfig::default`'s start-up delay), so the lists must keep
/// their versions for longer than that before they are compared.
async fn settled_snapshot(base: &str) -> Vec<(String, Value)> {
    let versions = |s: &[(String, Value)]| -> Vec<Value> {
        s.iter()
            .map(|(_, l)| l["metadata"]["resourceVersion"].clone())
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut last = snapshot(base).await;
    let mut quiet_since = Instant::now();
    while quiet_since.elapsed() < Duration::from_secs(5) {
        assert!(Instant::now() < deadline, "the fleet never settled");
        tokio::time::sleep(Duration::from_millis(500)).await;
        let next = snapshot(base).await;
        if versions(&next) != versions(&last) {
            quiet_since = Instant::now();
        }
        last = next;
    }
    last
}

/// Fills a server with a bit of everything: objects in two namespaces,
/// patched, with status, some deleted.
async fn populate(client: kube::Client) {
    let sets: Api<GameServerSet> = Api::namespaced(client.clone(), NS);
    sets.create(
        &PostParams::default(),
        &GameServerSet::new(
            "minecraft",
            GameServerSetSpec {
                replicas: 3,
                ..Default::default()
            },
        ),
    )
    .await
    .unwrap();
    sets.patch_status(
        "minecraft",
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {
            "replicas": 3, "readyReplicas": 2, "availableReplicas": 2,
            "currentReplicas": 3, "updatedReplicas": 3,
        }})),
    )
    .await
    .unwrap();
    // Forced, as Flux applies: the creator owns spec.replicas, so an
    // unforced apply of another value is a conflict on kube-apiserver.
    sets.patch(
        "minecraft",
        &PatchParams::apply("durability").force(),
        &Patch::Apply(json!({
            "apiVersion": "game.kruise.io/v1alpha1", "kind": "GameServerSet",
            "metadata": {"name": "minecraft"}, "spec": {"replicas": 4},
        })),
    )
    .await
    .unwrap();
    for ns in [NS, "team-a"] {
        let api: Api<GameServer> = Api::namespaced(client.clone(), ns);
        for i in 0..6 {
            api.create(&PostParams::default(), &gs(&format!("gs-{i}")))
                .await
                .unwrap();
        }
        api.patch(
            "gs-1",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"opsState": "Allocated"}})),
        )
        .await
        .unwrap();
        api.patch_status(
            "gs-2",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"currentState": "Ready"}})),
        )
        .await
        .unwrap();
        api.delete("gs-3", &DeleteParams::default()).await.unwrap();
    }
    let events: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(client, NS);
    events
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "apiVersion": "v1", "kind": "Event",
                "metadata": {"name": "minecraft.1"},
                "involvedObject": {"kind": "GameServerSet", "name": "minecraft", "namespace": NS},
                "reason": "Scaled", "message": "scaled to 4", "type": "Normal",
            }))
            .unwrap(),
        )
        .await
        .unwrap();
}

fn assert_same(before: &[(String, Value)], after: &[(String, Value)]) {
    for ((path, b), (_, a)) in before.iter().zip(after) {
        assert_eq!(
            b["metadata"]["resourceVersion"], a["metadata"]["resourceVersion"],
            "{path}: the list version survives"
        );
        assert_eq!(b["items"], a["items"], "{path}: objects are identical");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn idle_restart_keeps_objects_and_versions_identical() {
    let mut server = Server::start(&[]);
    populate(server.client().await).await;
    let before = snapshot(&server.url()).await;
    let count = |s: &[(String, Value)]| -> usize {
        s.iter()
            .map(|(_, l)| l["items"].as_array().map_or(0, Vec::len))
            .sum()
    };
    assert_eq!(count(&before), 1 + 2 * 5 + 1);

    server.restart();
    let after = snapshot(&server.url()).await;
    assert_same(&before, &after);

    // And once more, with no writes in between.
    server.restart();
    assert_same(&before, &snapshot(&server.url()).await);

    let api: Api<GameServer> = Api::namespaced(server.client().await, NS);
    let list_rv: u64 = before[1].1["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let next = api
        .create(&PostParams::default(), &gs("next"))
        .await
        .unwrap();
    assert!(rv_num(&next) > list_rv);
}

/// A `gameops serve` this test stops itself (SIGTERM), on a data directory
/// that outlives it.
struct Process {
    child: Child,
}

impl Process {
    fn start(dir: &Path, api_port: u16) -> Self {
        let kubeconfig = dir.join("kubeconfig");
        let _ = std::fs::remove_file(&kubeconfig);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("server.log"))
            .unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_gameops"))
            .args(["serve", "--api-listen"])
            .arg(format!("127.0.0.1:{api_port}"))
            .arg("--listen")
            .arg(format!("127.0.0.1:{}", free_port()))
            .arg("--data-dir")
            .arg(dir.join("data"))
            .arg("--kubeconfig-out")
            .arg(&kubeconfig)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start gameops");
        let deadline = Instant::now() + Duration::from_secs(30);
        while !(kubeconfig.exists()
            && std::net::TcpStream::connect(("127.0.0.1", api_port)).is_ok())
        {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("gameops exited with {status}: {}", log_of(dir));
            }
            assert!(Instant::now() < deadline, "not ready: {}", log_of(dir));
            std::thread::sleep(Duration::from_millis(20));
        }
        Self { child }
    }

    /// SIGTERM, then waits for a successful exit.
    fn terminate(mut self, dir: &Path) {
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill -TERM");
        assert!(sent.success());
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(
                    status.success(),
                    "SIGTERM exits cleanly, got {status}: {}",
                    log_of(dir)
                );
                return;
            }
            assert!(
                Instant::now() < deadline,
                "no exit 20s after SIGTERM: {}",
                log_of(dir)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn log_of(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("server.log")).unwrap_or_default()
}

async fn client_of(kubeconfig: PathBuf) -> kube::Client {
    let kubeconfig = kube::config::Kubeconfig::read_from(kubeconfig).expect("kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .expect("client config");
    kube::Client::try_from(config).expect("client")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_restart_keeps_objects_and_versions_identical() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let first = Process::start(dir.path(), port);
    populate(client_of(dir.path().join("kubeconfig")).await).await;
    let before = settled_snapshot(&url).await;
    // A watch left open must not hold the shutdown.
    let _open_watch = reqwest::Client::new()
        .get(format!(
            "{url}/apis/game.kruise.io/v1alpha1/gameservers?watch=true"
        ))
        .send()
        .await
        .expect("watch");
    first.terminate(dir.path());

    let second = Process::start(dir.path(), port);
    assert_same(&before, &snapshot(&url).await);
    let api: Api<GameServer> =
        Api::namespaced(client_of(dir.path().join("kubeconfig")).await, "team-a");
    let list_rv: u64 = before[1].1["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let next = api
        .create(&PostParams::default(), &gs("next"))
        .await
        .unwrap();
    assert!(rv_num(&next) > list_rv);
    second.terminate(dir.path());
}
