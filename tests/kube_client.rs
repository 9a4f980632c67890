//! kube-rs against the real `gameops serve`: typed CRUD, every patch type,
//! the status and scale subresources, paging, watchers and reflectors (also
//! across a SIGKILL restart), streaming lists, discovery, garbage collection
//! and core/v1 events.
#![allow(
    clippy::too_many_lines,
    reason = "a scenario or a table reads best top to bottom"
)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::Server;
use futures::StreamExt;
use gameops::api::{GameServer, GameServerSet, GameServerSetSpec, GameServerSpec};
use k8s_openapi::api::core::v1::{Event, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::core::{GroupVersionKind, PartialObjectMeta};
use kube::discovery::{Discovery, Scope, verbs};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Resource, ResourceExt};
use serde_json::{Value, json};

const NS: &str = "default";
const OWNER: &str = "game.kruise.io/owner-gss";
const DEADLINE: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------- helpers

fn gs(name: &str, owner: Option<&str>, ops: Option<&str>) -> GameServer {
    let mut g = GameServer::new(
        name,
        GameServerSpec {
            ops_state: ops.map(str::to_owned),
            ..Default::default()
        },
    );
    if let Some(owner) = owner {
        g.labels_mut().insert(OWNER.into(), owner.into());
    }
    g
}

fn gss(name: &str, replicas: i32) -> GameServerSet {
    GameServerSet::new(
        name,
        GameServerSetSpec {
            replicas,
            ..Default::default()
        },
    )
}

/// The (code, reason) of an API error; panics on any other outcome.
fn api_err<T: std::fmt::Debug>(r: Result<T, kube::Error>) -> (u16, String) {
    match r {
        Err(kube::Error::Api(s)) => (s.code, s.reason.clone()),
        other => panic!("expected an API error, got {other:?}"),
    }
}

fn rv_num<K: Resource>(o: &K) -> u64 {
    o.resource_version()
        .expect("resourceVersion")
        .parse()
        .expect("numeric resourceVersion")
}

fn generation<K: Resource>(o: &K) -> i64 {
    o.meta().generation.expect("generation")
}

/// Polls `check` until it returns `Ok`, panicking with its last complaint
/// after the deadline.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), String>>,
{
    let deadline = Instant::now() + DEADLINE;
    loop {
        match check().await {
            Ok(()) => return,
            Err(why) if Instant::now() > deadline => panic!("{what}: still not true: {why}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// name -> resourceVersion as the server lists it.
async fn server_state(api: &Api<GameServer>) -> BTreeMap<String, String> {
    api.list(&ListParams::default())
        .await
        .expect("list")
        .items
        .iter()
        .map(|o| (o.name_any(), o.resource_version().unwrap_or_default()))
        .collect()
}

/// name -> resourceVersion as a reflector's store holds it.
fn store_state(store: &reflector::Store<GameServer>) -> BTreeMap<String, String> {
    store
        .state()
        .iter()
        .map(|o| (o.name_any(), o.resource_version().unwrap_or_default()))
        .collect()
}

/// A running watcher + reflector; counts `Init` events (one per (re)list).
struct Reflector {
    store: reflector::Store<GameServer>,
    inits: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Reflector {
    fn start(api: Api<GameServer>, config: watcher::Config) -> Self {
        let (store, writer) = reflector::store();
        let inits = Arc::new(AtomicUsize::new(0));
        let counter = inits.clone();
        let stream =
            reflector(writer, watcher(api, config).default_backoff()).for_each(move |event| {
                if matches!(event, Ok(watcher::Event::Init)) {
                    counter.fetch_add(1, Ordering::SeqCst);
                }
                futures::future::ready(())
            });
        Self {
            store,
            inits,
            task: tokio::spawn(stream),
        }
    }

    async fn converges_to(&self, api: &Api<GameServer>, what: &str) {
        eventually(what, || async {
            let want = server_state(api).await;
            let have = store_state(&self.store);
            if want == have {
                Ok(())
            } else {
                Err(format!("server {want:?} vs reflector {have:?}"))
            }
        })
        .await;
    }
}

impl Drop for Reflector {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Newline-delimited JSON events of a raw watch response.
struct WatchLines {
    response: reqwest::Response,
    buf: Vec<u8>,
}

impl WatchLines {
    /// The next event; `None` when the server ended the stream. Panics if
    /// nothing arrives within the deadline.
    async fn next(&mut self) -> Option<Value> {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(pos) = self.buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=pos).collect();
                return Some(serde_json::from_slice(&line[..pos]).unwrap_or_else(|e| {
                    panic!(
                        "watch line is not JSON ({e}): {}",
                        String::from_utf8_lossy(&line)
                    )
                }));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.response.chunk()).await {
                Ok(Ok(Some(chunk))) => self.buf.extend_from_slice(&chunk),
                Ok(Ok(None)) => {
                    assert!(self.buf.is_empty(), "stream ended mid-line: {:?}", self.buf);
                    return None;
                }
                Ok(Err(e)) => panic!("reading the watch failed: {e}"),
                Err(_) => panic!("no watch event within 15s"),
            }
        }
    }
}

async fn raw_watch(url: &str) -> (reqwest::StatusCode, WatchLines) {
    let response = reqwest::Client::new()
        .get(url)
        .send()
        .await
        .expect("watch request");
    (
        response.status(),
        WatchLines {
            response,
            buf: Vec::new(),
        },
    )
}

fn gs_url(server: &Server) -> String {
    format!(
        "{}/apis/game.kruise.io/v1alpha1/namespaces/{NS}/gameservers",
        server.url()
    )
}

// ------------------------------------------------------------------ CRUD

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn gameserverset_crud() {
    let server = Server::start(&[]);
    let api: Api<GameServerSet> = Api::namespaced(server.client().await, NS);

    let created = api
        .create(&PostParams::default(), &gss("minecraft", 3))
        .await
        .expect("create");
    let uid = created.uid().expect("uid");
    assert!(!uid.is_empty());
    assert!(created.creation_timestamp().is_some(), "creationTimestamp");
    assert_eq!(generation(&created), 1);
    assert!(rv_num(&created) > 0);
    assert_eq!(created.namespace().as_deref(), Some(NS));
    assert_eq!(created.spec.replicas, 3);

    let again = api
        .create(&PostParams::default(), &gss("minecraft", 3))
        .await;
    assert_eq!(api_err(again), (409, "AlreadyExists".into()));

    let got = api.get("minecraft").await.expect("get");
    assert_eq!(got.uid().as_deref(), Some(uid.as_str()));
    assert_eq!(got.resource_version(), created.resource_version());

    let list = api.list(&ListParams::default()).await.expect("list");
    assert!(
        !list
            .metadata
            .resource_version
            .as_deref()
            .unwrap_or("")
            .is_empty(),
        "a list carries a resourceVersion"
    );
    let names: Vec<String> = list.items.iter().map(|o| o.name_any()).collect();
    assert_eq!(names, ["minecraft"]);

    let mut changed = got.clone();
    changed.spec.replicas = 4;
    let replaced = api
        .replace("minecraft", &PostParams::default(), &changed)
        .await
        .expect("replace");
    assert_eq!(replaced.spec.replicas, 4);
    assert_eq!(generation(&replaced), 2, "a spec change bumps generation");
    assert!(rv_num(&replaced) > rv_num(&created));
    assert_eq!(replaced.uid().as_deref(), Some(uid.as_str()));

    // `got` still carries the old resourceVersion.
    let mut stale = got.clone();
    stale.spec.replicas = 7;
    let conflict = api
        .replace("minecraft", &PostParams::default(), &stale)
        .await;
    assert_eq!(api_err(conflict), (409, "Conflict".into()));
    assert_eq!(api.get("minecraft").await.unwrap().spec.replicas, 4);

    api.delete("minecraft", &DeleteParams::default())
        .await
        .expect("delete");
    assert_eq!(
        api_err(api.get("minecraft").await),
        (404, "NotFound".into())
    );
    assert_eq!(
        api_err(api.delete("minecraft", &DeleteParams::default()).await).0,
        404
    );
    assert!(
        api.list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn gameserver_crud_and_selectors() {
    let server = Server::start(&[]);
    let api: Api<GameServer> = Api::namespaced(server.client().await, NS);

    let a = api
        .create(
            &PostParams::default(),
            &gs("minecraft-0", Some("minecraft"), Some("Allocated")),
        )
        .await
        .expect("create");
    assert!(a.uid().is_some_and(|u| !u.is_empty()));
    assert!(a.creation_timestamp().is_some());
    assert_eq!(generation(&a), 1);
    assert!(rv_num(&a) > 0);
    api.create(
        &PostParams::default(),
        &gs("minecraft-1", Some("minecraft"), Some("None")),
    )
    .await
    .expect("create");
    api.create(
        &PostParams::default(),
        &gs("terraria-0", Some("terraria"), Some("Allocated")),
    )
    .await
    .expect("create");

    let names = |items: Vec<GameServer>| -> BTreeSet<String> {
        items.iter().map(|o| o.name_any()).collect()
    };
    let by_label = api
        .list(&ListParams::default().labels(&format!("{OWNER}=minecraft")))
        .await
        .expect("list by label");
    assert_eq!(
        names(by_label.items),
        BTreeSet::from(["minecraft-0".into(), "minecraft-1".into()])
    );
    let by_field = api
        .list(&ListParams::default().fields("spec.opsState=Allocated"))
        .await
        .expect("list by field");
    assert_eq!(
        names(by_field.items),
        BTreeSet::from(["minecraft-0".into(), "terraria-0".into()])
    );
    let both = api
        .list(
            &ListParams::default()
                .labels(&format!("{OWNER}=minecraft"))
                .fields("spec.opsState=Allocated"),
        )
        .await
        .expect("list by both");
    assert_eq!(names(both.items), BTreeSet::from(["minecraft-0".into()]));
    let unsupported = api
        .list(&ListParams::default().fields("spec.bogus=1"))
        .await;
    assert_eq!(api_err(unsupported).0, 400);

    let got = api.get("minecraft-0").await.expect("get");
    assert_eq!(got.spec.ops_state.as_deref(), Some("Allocated"));
    let mut next = got.clone();
    next.spec.ops_state = Some("Maintaining".into());
    let replaced = api
        .replace("minecraft-0", &PostParams::default(), &next)
        .await
        .expect("replace");
    assert_eq!(replaced.spec.ops_state.as_deref(), Some("Maintaining"));
    assert_eq!(generation(&replaced), 2);
    let mut stale = got;
    stale.spec.ops_state = Some("Kill".into());
    assert_eq!(
        api_err(
            api.replace("minecraft-0", &PostParams::default(), &stale)
                .await
        ),
        (409, "Conflict".into())
    );
    // The selection follows the change.
    let allocated = api
        .list(&ListParams::default().fields("spec.opsState=Allocated"))
        .await
        .unwrap();
    assert_eq!(
        names(allocated.items),
        BTreeSet::from(["terraria-0".into()])
    );

    api.delete("minecraft-0", &DeleteParams::default())
        .await
        .expect("delete");
    assert_eq!(
        api_err(api.get("minecraft-0").await),
        (404, "NotFound".into())
    );
    let left = api.list(&ListParams::default()).await.unwrap();
    assert_eq!(
        names(left.items),
        BTreeSet::from(["minecraft-1".into(), "terraria-0".into()])
    );
}

// --------------------------------------------------------------- patches

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn patch_merge_json_apply_and_status() {
    let server = Server::start(&[]);
    let api: Api<GameServer> = Api::namespaced(server.client().await, NS);

    // Merge on a missing object is a 404, not a create.
    let missing = api
        .patch(
            "nobody",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"opsState": "Allocated"}})),
        )
        .await;
    assert_eq!(api_err(missing), (404, "NotFound".into()));

    // Server-side apply creates a missing object...
    let ssa = PatchParams::apply("test-manager");
    let applied = api
        .patch(
            "applied",
            &ssa,
            &Patch::Apply(json!({
                "apiVersion": "game.kruise.io/v1alpha1",
                "kind": "GameServer",
                "metadata": {"name": "applied", "labels": {"tier": "gold"}},
                "spec": {"opsState": "None"},
            })),
        )
        .await
        .expect("apply creates");
    assert!(applied.uid().is_some_and(|u| !u.is_empty()));
    assert_eq!(generation(&applied), 1);
    assert_eq!(applied.spec.ops_state.as_deref(), Some("None"));
    assert_eq!(
        applied.labels().get("tier").map(String::as_str),
        Some("gold")
    );
    let managers = |o: &GameServer| -> Vec<(String, String)> {
        o.managed_fields()
            .iter()
            .map(|m| {
                (
                    m.manager.clone().unwrap_or_default(),
                    m.operation.clone().unwrap_or_default(),
                )
            })
            .collect()
    };
    assert!(
        managers(&applied).contains(&("test-manager".into(), "Apply".into())),
        "managedFields names the manager: {:?}",
        applied.managed_fields()
    );

    // ... and changes it the second time.
    let reapplied = api
        .patch(
            "applied",
            &ssa,
            &Patch::Apply(json!({
                "apiVersion": "game.kruise.io/v1alpha1",
                "kind": "GameServer",
                "metadata": {"name": "applied", "labels": {"tier": "gold"}},
                "spec": {"opsState": "Allocated"},
            })),
        )
        .await
        .expect("apply changes");
    assert_eq!(reapplied.uid(), applied.uid());
    assert_eq!(reapplied.spec.ops_state.as_deref(), Some("Allocated"));
    assert_eq!(generation(&reapplied), 2);
    assert!(rv_num(&reapplied) > rv_num(&applied));
    assert!(managers(&reapplied).contains(&("test-manager".into(), "Apply".into())));
    let mf = serde_json::to_value(reapplied.managed_fields()).unwrap();
    let entry = mf
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["manager"] == "test-manager")
        .unwrap();
    assert!(
        entry.pointer("/fieldsV1/f:spec/f:opsState").is_some(),
        "the manager owns spec.opsState: {entry}"
    );

    // Merge patch: metadata only (no generation bump), then spec.
    let labelled = api
        .patch(
            "applied",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {"note": "hello"}}})),
        )
        .await
        .expect("merge metadata");
    assert_eq!(
        labelled.annotations().get("note").map(String::as_str),
        Some("hello")
    );
    assert_eq!(
        generation(&labelled),
        2,
        "metadata does not bump generation"
    );
    let merged = api
        .patch(
            "applied",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"spec": {"opsState": "WaitToBeDeleted", "networkDisabled": true}}),
            ),
        )
        .await
        .expect("merge spec");
    assert_eq!(merged.spec.ops_state.as_deref(), Some("WaitToBeDeleted"));
    assert_eq!(merged.spec.network_disabled, Some(true));
    assert_eq!(generation(&merged), 3);
    assert_eq!(
        merged.annotations().get("note").map(String::as_str),
        Some("hello")
    );

    // JSON patch.
    let ops = serde_json::from_value(json!([
        {"op": "replace", "path": "/spec/opsState", "value": "Maintaining"},
        {"op": "add", "path": "/metadata/labels/zone", "value": "eu"},
        {"op": "remove", "path": "/spec/networkDisabled"},
    ]))
    .expect("json patch");
    let jsoned = api
        .patch("applied", &PatchParams::default(), &Patch::Json::<()>(ops))
        .await
        .expect("json patch");
    assert_eq!(jsoned.spec.ops_state.as_deref(), Some("Maintaining"));
    assert_eq!(jsoned.spec.network_disabled, None);
    assert_eq!(jsoned.labels().get("zone").map(String::as_str), Some("eu"));
    assert_eq!(generation(&jsoned), 4);
    // A failing `test` op changes nothing.
    let failing = serde_json::from_value(json!([
        {"op": "test", "path": "/spec/opsState", "value": "Allocated"},
        {"op": "replace", "path": "/spec/opsState", "value": "Kill"},
    ]))
    .unwrap();
    let refused = api
        .patch(
            "applied",
            &PatchParams::default(),
            &Patch::Json::<()>(failing),
        )
        .await;
    let (code, _) = api_err(refused);
    assert!((400..500).contains(&code), "failed test op: {code}");
    let after = api.get("applied").await.unwrap();
    assert_eq!(after.resource_version(), jsoned.resource_version());

    // Status subresource: changes status, not spec, not generation.
    let status = api
        .patch_status(
            "applied",
            &PatchParams::default(),
            &Patch::Merge(json!({
                "spec": {"opsState": "Kill"},
                "status": {"currentState": "Ready", "desiredState": "Ready"},
            })),
        )
        .await
        .expect("patch status");
    let st = status.status.as_ref().expect("status");
    assert_eq!(st.current_state.as_deref(), Some("Ready"));
    assert_eq!(
        status.spec.ops_state.as_deref(),
        Some("Maintaining"),
        "a status write never changes spec"
    );
    assert_eq!(generation(&status), 4, "status does not bump generation");
    assert!(rv_num(&status) > rv_num(&jsoned));

    // The main resource ignores status.
    let main = api
        .patch(
            "applied",
            &PatchParams::default(),
            &Patch::Merge(json!({
                "spec": {"opsState": "Allocated"},
                "status": {"currentState": "Crash"},
            })),
        )
        .await
        .expect("main patch with status");
    assert_eq!(main.spec.ops_state.as_deref(), Some("Allocated"));
    assert_eq!(
        main.status
            .as_ref()
            .and_then(|s| s.current_state.as_deref()),
        Some("Ready"),
        "a main-resource write never changes status"
    );
    assert_eq!(generation(&main), 5);
    let stored = api.get_status("applied").await.expect("get status");
    assert_eq!(
        stored
            .status
            .as_ref()
            .and_then(|s| s.current_state.as_deref()),
        Some("Ready")
    );
    assert_eq!(stored.spec.ops_state.as_deref(), Some("Allocated"));

    // A status-only change does not bump generation on the GameServerSet either.
    let sets: Api<GameServerSet> = Api::namespaced(server.client().await, NS);
    let created = sets
        .create(&PostParams::default(), &gss("gen", 1))
        .await
        .unwrap();
    let set = sets
        .patch_status(
            "gen",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {
                "replicas": 1, "readyReplicas": 1, "availableReplicas": 1,
                "currentReplicas": 1, "updatedReplicas": 1, "observedGeneration": 1,
            }})),
        )
        .await
        .expect("gss status");
    assert_eq!(generation(&set), 1);
    assert!(rv_num(&set) > rv_num(&created));
    assert_eq!(set.status.as_ref().map(|s| s.ready_replicas), Some(1));
}

// ----------------------------------------------------------------- scale

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn scale_subresource() {
    let server = Server::start(&[]);
    let api: Api<GameServerSet> = Api::namespaced(server.client().await, NS);
    let created = api
        .create(&PostParams::default(), &gss("minecraft", 3))
        .await
        .unwrap();

    let scale = api.get_scale("minecraft").await.expect("get scale");
    assert_eq!(scale.spec.as_ref().and_then(|s| s.replicas), Some(3));
    assert_eq!(scale.metadata.name.as_deref(), Some("minecraft"));
    assert_eq!(scale.metadata.resource_version, created.resource_version());

    let scaled = api
        .patch_scale(
            "minecraft",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 5}})),
        )
        .await
        .expect("patch scale");
    assert_eq!(scaled.spec.as_ref().and_then(|s| s.replicas), Some(5));
    let set = api.get("minecraft").await.unwrap();
    assert_eq!(set.spec.replicas, 5);
    assert_eq!(
        generation(&set),
        2,
        "scaling changes spec: generation bumps"
    );
    assert_eq!(
        api.get_scale("minecraft")
            .await
            .unwrap()
            .spec
            .and_then(|s| s.replicas),
        Some(5)
    );

    // status.replicas and the label selector come from the status.
    api.patch_status(
        "minecraft",
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {
            "replicas": 4, "readyReplicas": 4, "availableReplicas": 4,
            "currentReplicas": 4, "updatedReplicas": 4,
            "labelSelector": "game.kruise.io/owner-gss=minecraft",
        }})),
    )
    .await
    .expect("status");
    let scale = api.get_scale("minecraft").await.unwrap();
    let status = scale.status.expect("scale status");
    assert_eq!(status.replicas, 4);
    assert_eq!(
        status.selector.as_deref(),
        Some("game.kruise.io/owner-gss=minecraft")
    );

    // Replacing the Scale with a stale resourceVersion is a conflict.
    let mut stale = api.get_scale("minecraft").await.unwrap();
    api.patch_scale(
        "minecraft",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": 6}})),
    )
    .await
    .unwrap();
    stale.spec.as_mut().unwrap().replicas = Some(1);
    assert_eq!(
        api_err(
            api.replace_scale("minecraft", &PostParams::default(), &stale)
                .await
        ),
        (409, "Conflict".into())
    );
    let negative = api
        .patch_scale(
            "minecraft",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": -1}})),
        )
        .await;
    assert_eq!(api_err(negative).0, 422);
    assert_eq!(api.get("minecraft").await.unwrap().spec.replicas, 6);
}

// ---------------------------------------------------------------- paging

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn list_pages_with_continue_tokens() {
    let server = Server::start(&[]);
    let api: Api<GameServer> = Api::namespaced(server.client().await, NS);
    let mut want = BTreeSet::new();
    for i in 0..25 {
        let name = format!("page-{i:02}");
        api.create(&PostParams::default(), &gs(&name, None, None))
            .await
            .unwrap();
        want.insert(name);
    }

    let mut seen = Vec::new();
    let mut pages = 0;
    let mut token: Option<String> = None;
    loop {
        let mut lp = ListParams::default().limit(10);
        if let Some(t) = &token {
            lp = lp.continue_token(t);
        }
        let page = api.list(&lp).await.expect("page");
        pages += 1;
        assert!(page.items.len() <= 10, "page of {}", page.items.len());
        assert!(
            page.metadata
                .resource_version
                .as_deref()
                .is_some_and(|rv| !rv.is_empty())
        );
        for item in &page.items {
            assert!(item.resource_version().is_some(), "every item has its rv");
        }
        seen.extend(page.items.iter().map(|o| o.name_any()));
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(next) => {
                assert!(page.metadata.remaining_item_count.is_some_and(|n| n > 0));
                token = Some(next);
            }
            None => break,
        }
        assert!(pages < 10, "paging does not end");
    }
    assert_eq!(pages, 3);
    assert_eq!(seen.len(), 25, "no duplicates: {seen:?}");
    assert_eq!(seen.iter().cloned().collect::<BTreeSet<_>>(), want);
}

/// Later pages show the objects as they were when the first page was
/// listed (kube-apiserver reads the continue token's etcd revision); a
/// token older than the server's history is a 410 `Expired`, as a
/// compacted revision is, and kube-rs's callers start the list again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn later_pages_show_the_first_pages_snapshot() {
    let mut server = Server::start(&[]);
    let api: Api<GameServer> = Api::namespaced(server.client().await, NS);
    for i in 0..6 {
        api.create(
            &PostParams::default(),
            &gs(&format!("snap-{i}"), None, None),
        )
        .await
        .unwrap();
    }
    let first = api.list(&ListParams::default().limit(2)).await.unwrap();
    let token = first.metadata.continue_.clone().expect("a continue token");
    let list_rv = first.metadata.resource_version.clone().expect("a version");
    // Changes after the first page: a delete, a create, an update.
    api.delete("snap-3", &DeleteParams::default())
        .await
        .unwrap();
    api.create(&PostParams::default(), &gs("snap-9", None, None))
        .await
        .unwrap();
    api.patch(
        "snap-4",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"late": "yes"}}})),
    )
    .await
    .unwrap();
    let rest = api
        .list(&ListParams::default().continue_token(&token))
        .await
        .unwrap();
    let names: Vec<String> = rest.items.iter().map(ResourceExt::name_any).collect();
    assert_eq!(names, ["snap-2", "snap-3", "snap-4", "snap-5"]);
    assert_eq!(
        rest.metadata.resource_version.as_deref(),
        Some(list_rv.as_str())
    );
    let snap4 = &rest.items[2];
    assert!(
        snap4.labels().get("late").is_none(),
        "snap-4 as it was at the first page"
    );
    // Now, without the token: the changes are there.
    let now: Vec<String> = api
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .map(ResourceExt::name_any)
        .collect();
    assert_eq!(
        now,
        ["snap-0", "snap-1", "snap-2", "snap-4", "snap-5", "snap-9"]
    );
    // After a restart the history starts again: the old token has expired.
    server.restart();
    let api: Api<GameServer> = Api::namespaced(server.client().await, NS);
    let expired = api
        .list(&ListParams::default().continue_token(&token))
        .await;
    assert_eq!(api_err(expired), (410, "Expired".to_owned()));
}

// --------------------------------------------------------------- watches

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reflector_converges_to_server_state() {
    let server = Server::start(&[]);
    let client = server.client().await;
    let api: Api<GameServer> = Api::namespaced(client.clone(), NS);
    // Some objects exist before the watchers start (initial list).
    for i in 0..5 {
        api.create(
            &PostParams::default(),
            &gs(&format!("early-{i}"), None, None),
        )
        .await
        .unwrap();
    }
    let listwatch = Reflector::start(api.clone(), watcher::Config::default());
    let streaming = Reflector::start(api.clone(), watcher::Config::default().streaming_lists());
    listwatch
        .converges_to(&api, "list-watch reflector sees the initial objects")
        .await;
    streaming
        .converges_to(&api, "streaming-list reflector sees the initial objects")
        .await;

    for i in 0..20 {
        api.create(
            &PostParams::default(),
            &gs(&format!("gs-{i:02}"), Some("minecraft"), None),
        )
        .await
        .unwrap();
    }
    for i in (0..20).step_by(3) {
        api.patch(
            &format!("gs-{i:02}"),
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"opsState": "Allocated"}})),
        )
        .await
        .unwrap();
    }
    for i in (1..20).step_by(4) {
        api.delete(&format!("gs-{i:02}"), &DeleteParams::default())
            .await
            .unwrap();
    }
    api.delete("early-0", &DeleteParams::default())
        .await
        .unwrap();
    api.patch_status(
        "early-1",
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"currentState": "Ready"}})),
    )
    .await
    .unwrap();

    listwatch
        .converges_to(&api, "list-watch reflector follows every change")
        .await;
    streaming
        .converges_to(&api, "streaming-list reflector follows every change")
        .await;
    let state = server_state(&api).await;
    assert_eq!(state.len(), 5 - 1 + 20 - 5);
    let allocated = listwatch
        .store
        .get(&reflector::ObjectRef::new("gs-03").within(NS))
        .expect("gs-03 in the store");
    assert_eq!(allocated.spec.ops_state.as_deref(), Some("Allocated"));
    let ready = streaming
        .store
        .get(&reflector::ObjectRef::new("early-1").within(NS))
        .expect("early-1 in the store");
    assert_eq!(
        ready
            .status
            .as_ref()
            .and_then(|s| s.current_state.as_deref()),
        Some("Ready")
    );
    assert_eq!(
        listwatch.inits.load(Ordering::SeqCst),
        1,
        "no relist needed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reflector_converges_across_a_restart() {
    let mut server = Server::start(&[]);
    let client = server.client().await;
    let api: Api<GameServer> = Api::namespaced(client.clone(), NS);
    for i in 0..10 {
        api.create(&PostParams::default(), &gs(&format!("gs-{i}"), None, None))
            .await
            .unwrap();
    }
    let reflector = Reflector::start(api.clone(), watcher::Config::default());
    reflector.converges_to(&api, "initial state").await;
    for i in 0..3 {
        api.patch(
            &format!("gs-{i}"),
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"opsState": "Allocated"}})),
        )
        .await
        .unwrap();
    }
    api.delete("gs-9", &DeleteParams::default()).await.unwrap();
    reflector.converges_to(&api, "before the restart").await;
    // A write the GameServer watch does not see moves the cluster's version
    // past the watcher's, so its resume after the restart is too old.
    let sets: Api<GameServerSet> = Api::namespaced(client.clone(), NS);
    sets.create(&PostParams::default(), &gss("bump", 1))
        .await
        .unwrap();

    server.restart();

    let api: Api<GameServer> = Api::namespaced(server.client().await, NS);
    for i in 10..15 {
        api.create(&PostParams::default(), &gs(&format!("gs-{i}"), None, None))
            .await
            .unwrap();
    }
    for i in [3, 4, 10] {
        api.delete(&format!("gs-{i}"), &DeleteParams::default())
            .await
            .unwrap();
    }
    for i in [5, 11] {
        api.patch(
            &format!("gs-{i}"),
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"opsState": "Maintaining"}})),
        )
        .await
        .unwrap();
    }
    reflector
        .converges_to(&api, "after the restart the reflector relists and follows")
        .await;
    let state = server_state(&api).await;
    let names: BTreeSet<&str> = state.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        BTreeSet::from([
            "gs-0", "gs-1", "gs-2", "gs-5", "gs-6", "gs-7", "gs-8", "gs-11", "gs-12", "gs-13",
            "gs-14"
        ])
    );
    assert!(
        reflector.inits.load(Ordering::SeqCst) >= 2,
        "the too-old resume was answered with 410 and the watcher relisted"
    );
    // Still live after the relist.
    api.create(&PostParams::default(), &gs("late", None, None))
        .await
        .unwrap();
    reflector.converges_to(&api, "live after the relist").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn raw_watch_from_before_a_restart_is_expired_in_stream() {
    let mut server = Server::start(&[]);
    let api: Api<GameServer> = Api::namespaced(server.client().await, NS);
    let first = api
        .create(&PostParams::default(), &gs("a", None, None))
        .await
        .unwrap();
    for name in ["b", "c"] {
        api.create(&PostParams::default(), &gs(name, None, None))
            .await
            .unwrap();
    }
    let old_rv = rv_num(&first);

    server.restart();

    let api: Api<GameServer> = Api::namespaced(server.client().await, NS);
    let current: u64 = api
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap()
        .parse()
        .unwrap();
    assert!(old_rv < current, "{old_rv} < {current}");

    let (code, mut lines) = raw_watch(&format!(
        "{}?watch=true&resourceVersion={old_rv}&allowWatchBookmarks=true",
        gs_url(&server)
    ))
    .await;
    assert_eq!(code, 200, "a too-old watch is answered inside a 200 stream");
    let event = lines.next().await.expect("an ERROR event");
    assert_eq!(event["type"], "ERROR", "{event}");
    assert_eq!(event["object"]["kind"], "Status", "{event}");
    assert_eq!(event["object"]["reason"], "Expired", "{event}");
    assert_eq!(event["object"]["code"], 410, "{event}");
    assert!(
        lines.next().await.is_none(),
        "the stream ends after the error"
    );

    // Resuming from the current version works and streams new changes.
    let (code, mut lines) = raw_watch(&format!(
        "{}?watch=true&resourceVersion={current}",
        gs_url(&server)
    ))
    .await;
    assert_eq!(code, 200);
    api.create(&PostParams::default(), &gs("d", None, None))
        .await
        .unwrap();
    let event = lines.next().await.expect("an event");
    assert_eq!(event["type"], "ADDED", "{event}");
    assert_eq!(event["object"]["metadata"]["name"], "d");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn streaming_list_sends_initial_events_then_a_bookmark() {
    let server = Server::start(&[]);
    let api: Api<GameServer> = Api::namespaced(server.client().await, NS);
    let mut want = BTreeSet::new();
    let mut max_rv = 0;
    for i in 0..4 {
        let name = format!("init-{i}");
        let o = api
            .create(&PostParams::default(), &gs(&name, None, None))
            .await
            .unwrap();
        max_rv = max_rv.max(rv_num(&o));
        want.insert(name);
    }
    let (code, mut lines) = raw_watch(&format!(
        "{}?watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true",
        gs_url(&server)
    ))
    .await;
    assert_eq!(code, 200);
    let mut added = BTreeSet::new();
    let bookmark = loop {
        let event = lines.next().await.expect("initial events then a bookmark");
        match event["type"].as_str() {
            Some("ADDED") => {
                assert!(event["object"]["metadata"]["resourceVersion"].is_string());
                added.insert(
                    event["object"]["metadata"]["name"]
                        .as_str()
                        .unwrap()
                        .to_owned(),
                );
            }
            Some("BOOKMARK") => break event,
            _ => panic!("unexpected event before the bookmark: {event}"),
        }
    };
    assert_eq!(added, want);
    assert_eq!(
        bookmark["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"], "true",
        "{bookmark}"
    );
    let bookmark_rv: u64 = bookmark["object"]["metadata"]["resourceVersion"]
        .as_str()
        .expect("bookmark rv")
        .parse()
        .unwrap();
    assert!(bookmark_rv >= max_rv);
    // Then the watch goes on with live changes.
    api.patch(
        "init-2",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"opsState": "Allocated"}})),
    )
    .await
    .unwrap();
    let event = lines.next().await.expect("a live event");
    assert_eq!(event["type"], "MODIFIED", "{event}");
    assert_eq!(event["object"]["metadata"]["name"], "init-2");
    assert_eq!(event["object"]["spec"]["opsState"], "Allocated");
}

// ------------------------------------------------------------- discovery

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn discovery_finds_okg_resources_and_events() {
    let server = Server::start(&[]);
    let client = server.client().await;
    let legacy = Discovery::new(client.clone())
        .run()
        .await
        .expect("discovery");
    let aggregated = Discovery::new(client)
        .run_aggregated()
        .await
        .expect("aggregated discovery");
    for (how, discovery) in [("legacy", &legacy), ("aggregated", &aggregated)] {
        assert!(discovery.has_group("game.kruise.io"), "{how}");
        let gvk = |kind: &str| GroupVersionKind::gvk("game.kruise.io", "v1alpha1", kind);
        let (set, set_caps) = discovery
            .resolve_gvk(&gvk("GameServerSet"))
            .unwrap_or_else(|| panic!("{how}: GameServerSet"));
        assert_eq!(set.plural, "gameserversets", "{how}");
        assert_eq!(set_caps.scope, Scope::Namespaced, "{how}");
        for verb in [
            verbs::CREATE,
            verbs::GET,
            verbs::LIST,
            verbs::WATCH,
            verbs::PATCH,
            verbs::DELETE,
        ] {
            assert!(set_caps.supports_operation(verb), "{how}: gss {verb}");
        }
        let subs: BTreeSet<String> = set_caps
            .subresources
            .iter()
            .map(|(r, _)| r.plural.clone())
            .collect();
        assert!(
            subs.contains("scale") && subs.contains("status"),
            "{how}: {subs:?}"
        );
        let (server_res, caps) = discovery
            .resolve_gvk(&gvk("GameServer"))
            .unwrap_or_else(|| panic!("{how}: GameServer"));
        assert_eq!(server_res.plural, "gameservers", "{how}");
        assert!(caps.supports_operation(verbs::WATCH), "{how}");
        let (events, caps) = discovery
            .resolve_gvk(&GroupVersionKind::gvk("", "v1", "Event"))
            .unwrap_or_else(|| panic!("{how}: core v1 Event"));
        assert_eq!(events.plural, "events", "{how}");
        assert_eq!(caps.scope, Scope::Namespaced, "{how}");
    }
}

// ------------------------------------------------------ garbage collector

fn owned_by(name: &str, set: &GameServerSet) -> GameServer {
    let mut g = gs(name, set.metadata.name.as_deref(), None);
    g.metadata.owner_references = Some(vec![OwnerReference {
        api_version: "game.kruise.io/v1alpha1".into(),
        kind: "GameServerSet".into(),
        name: set.name_any(),
        uid: set.uid().expect("owner uid"),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }]);
    g
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deleting_an_owner_deletes_its_dependents() {
    let server = Server::start(&[]);
    let client = server.client().await;
    let sets: Api<GameServerSet> = Api::namespaced(client.clone(), NS);
    let servers: Api<GameServer> = Api::namespaced(client, NS);
    let doomed = sets
        .create(&PostParams::default(), &gss("doomed", 2))
        .await
        .unwrap();
    let kept = sets
        .create(&PostParams::default(), &gss("kept", 1))
        .await
        .unwrap();
    for name in ["doomed-0", "doomed-1"] {
        servers
            .create(&PostParams::default(), &owned_by(name, &doomed))
            .await
            .unwrap();
    }
    servers
        .create(&PostParams::default(), &owned_by("kept-0", &kept))
        .await
        .unwrap();
    servers
        .create(&PostParams::default(), &gs("loose", None, None))
        .await
        .unwrap();

    sets.delete("doomed", &DeleteParams::default())
        .await
        .unwrap();
    eventually("the dependents of a deleted owner go", || async {
        let names: BTreeSet<String> = server_state(&servers).await.into_keys().collect();
        if names.contains("doomed-0") || names.contains("doomed-1") {
            Err(format!("still there: {names:?}"))
        } else {
            Ok(())
        }
    })
    .await;
    let names: BTreeSet<String> = server_state(&servers).await.into_keys().collect();
    assert_eq!(
        names,
        BTreeSet::from(["kept-0".into(), "loose".into()]),
        "objects with a live owner or no owner stay"
    );

    // propagationPolicy=Orphan keeps the dependent and releases it.
    sets.delete("kept", &DeleteParams::orphan()).await.unwrap();
    assert_eq!(api_err(sets.get("kept").await).0, 404);
    let released = servers
        .get("kept-0")
        .await
        .expect("orphaned dependent stays");
    assert!(
        released
            .owner_references()
            .iter()
            .all(|r| r.uid != kept.uid().unwrap()),
        "the orphan no longer names its deleted owner: {:?}",
        released.owner_references()
    );
    // A later GC sweep must not take it either: create and delete another
    // owner and wait for its dependent to go, then check again.
    let probe = sets
        .create(&PostParams::default(), &gss("probe", 1))
        .await
        .unwrap();
    servers
        .create(&PostParams::default(), &owned_by("probe-0", &probe))
        .await
        .unwrap();
    sets.delete("probe", &DeleteParams::default())
        .await
        .unwrap();
    eventually("probe-0 is collected", || async {
        match servers.get_opt("probe-0").await {
            Ok(None) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    assert!(servers.get_opt("kept-0").await.unwrap().is_some());
}

// ---------------------------------------------------------------- events

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn events_are_selected_by_involved_object() {
    let server = Server::start(&[]);
    let client = server.client().await;
    let sets: Api<GameServerSet> = Api::namespaced(client.clone(), NS);
    let set = sets
        .create(&PostParams::default(), &gss("minecraft", 3))
        .await
        .unwrap();
    let events: Api<Event> = Api::namespaced(client, NS);
    let event = Event {
        metadata: kube::api::ObjectMeta {
            name: Some("minecraft.scaled".into()),
            ..Default::default()
        },
        involved_object: ObjectReference {
            api_version: Some("game.kruise.io/v1alpha1".into()),
            kind: Some("GameServerSet".into()),
            name: Some("minecraft".into()),
            namespace: Some(NS.into()),
            uid: set.uid(),
            ..Default::default()
        },
        reason: Some("Scaled".into()),
        message: Some("scaled to 3".into()),
        type_: Some("Normal".into()),
        ..Default::default()
    };
    let created = events
        .create(&PostParams::default(), &event)
        .await
        .expect("create event");
    assert!(created.uid().is_some());
    let other = Event {
        metadata: kube::api::ObjectMeta {
            name: Some("terraria.scaled".into()),
            ..Default::default()
        },
        involved_object: ObjectReference {
            kind: Some("GameServerSet".into()),
            name: Some("terraria".into()),
            namespace: Some(NS.into()),
            ..Default::default()
        },
        reason: Some("Scaled".into()),
        ..Default::default()
    };
    events
        .create(&PostParams::default(), &other)
        .await
        .expect("create event");

    let select = |fields: &str| {
        let events = events.clone();
        let fields = fields.to_owned();
        async move {
            events
                .list(&ListParams::default().fields(&fields))
                .await
                .expect("list events")
                .items
                .iter()
                .map(|e| e.name_any())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        select("involvedObject.name=minecraft,involvedObject.kind=GameServerSet").await,
        ["minecraft.scaled"]
    );
    assert_eq!(
        select("involvedObject.name=nothing,involvedObject.kind=GameServerSet").await,
        Vec::<String>::new()
    );
    assert_eq!(
        select("involvedObject.name=minecraft,involvedObject.kind=GameServer").await,
        Vec::<String>::new()
    );
    assert_eq!(
        select("involvedObject.kind=GameServerSet").await.len(),
        2,
        "both events are about GameServerSets"
    );
    let got = events.get("minecraft.scaled").await.unwrap();
    assert_eq!(got.reason.as_deref(), Some("Scaled"));
    assert_eq!(got.involved_object.uid, set.uid());
}

/// Waits until the wall clock enters a new second (managedFields times
/// have second resolution), so that a later write cannot accidentally
/// carry the same timestamp.
async fn next_second() {
    let second = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    };
    let start = second();
    while second() == start {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writes_that_change_nothing_keep_the_resource_version() {
    let server = Server::start(&[]);
    let api: Api<GameServer> = Api::namespaced(server.client().await, NS);
    let body = json!({
        "apiVersion": "game.kruise.io/v1alpha1",
        "kind": "GameServer",
        "metadata": {"name": "steady"},
        "spec": {"opsState": "Allocated"},
    });
    let ssa = PatchParams::apply("test-manager");
    let first = api
        .patch("steady", &ssa, &Patch::Apply(body.clone()))
        .await
        .expect("apply");

    // Without a field manager: a merge patch and a replace that change nothing.
    let merged = api
        .patch(
            "steady",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"opsState": "Allocated"}})),
        )
        .await
        .unwrap();
    assert_eq!(merged.resource_version(), first.resource_version());
    let replaced = api
        .replace("steady", &PostParams::default(), &first)
        .await
        .unwrap();
    assert_eq!(replaced.resource_version(), first.resource_version());

    // Controllers re-apply the same intent on every reconcile; as on a real
    // API server that must not write (a new version would wake every
    // watcher, including the controller itself, forever).
    next_second().await;
    let again = api
        .patch("steady", &ssa, &Patch::Apply(body.clone()))
        .await
        .expect("apply again");
    assert_eq!(
        again.resource_version(),
        first.resource_version(),
        "a no-op server-side apply must not create a new version"
    );
    next_second().await;
    let kubectl_like = PatchParams {
        field_manager: Some("kubectl-patch".into()),
        ..Default::default()
    };
    api.patch(
        "steady",
        &kubectl_like,
        &Patch::Merge(json!({"metadata": {"labels": {"a": "b"}}})),
    )
    .await
    .unwrap();
    let before = api.get("steady").await.unwrap();
    next_second().await;
    let same = api
        .patch(
            "steady",
            &kubectl_like,
            &Patch::Merge(json!({"metadata": {"labels": {"a": "b"}}})),
        )
        .await
        .unwrap();
    assert_eq!(
        same.resource_version(),
        before.resource_version(),
        "a no-op merge patch with a fieldManager must not create a new version"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn metadata_api_and_metadata_watcher() {
    let server = Server::start(&[]);
    let client = server.client().await;
    let api: Api<GameServer> = Api::namespaced(client.clone(), NS);
    for i in 0..3 {
        api.create(
            &PostParams::default(),
            &gs(&format!("meta-{i}"), Some("minecraft"), None),
        )
        .await
        .unwrap();
    }
    let one = api.get_metadata("meta-1").await.expect("get metadata");
    assert_eq!(one.metadata.name.as_deref(), Some("meta-1"));
    assert_eq!(
        one.metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(OWNER))
            .map(String::as_str),
        Some("minecraft")
    );
    let list = api
        .list_metadata(&ListParams::default())
        .await
        .expect("list metadata");
    assert!(list.metadata.resource_version.is_some());
    let names: BTreeSet<String> = list.items.iter().map(|o| o.name_any()).collect();
    assert_eq!(names.len(), 3);

    // `Api<PartialObjectMeta<_>>` makes metadata-only requests (Accept:
    // ...;as=PartialObjectMetadataList / PartialObjectMetadata).
    let meta_api: Api<PartialObjectMeta<GameServer>> = Api::namespaced(client, NS);
    let (store, writer) = reflector::store();
    let task = tokio::spawn(
        reflector(
            writer,
            watcher(meta_api, watcher::Config::default()).default_backoff(),
        )
        .for_each(|_| futures::future::ready(())),
    );
    let converged = |what: &'static str| {
        let store = store.clone();
        let api = api.clone();
        async move {
            eventually(what, || async {
                let want = server_state(&api).await;
                let have: BTreeMap<String, String> = store
                    .state()
                    .iter()
                    .map(|o| (o.name_any(), o.resource_version().unwrap_or_default()))
                    .collect();
                if want == have {
                    Ok(())
                } else {
                    Err(format!("server {want:?} vs metadata reflector {have:?}"))
                }
            })
            .await;
        }
    };
    converged("metadata reflector lists").await;
    api.delete("meta-0", &DeleteParams::default())
        .await
        .unwrap();
    api.patch(
        "meta-2",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"x": "y"}}})),
    )
    .await
    .unwrap();
    api.create(&PostParams::default(), &gs("meta-3", None, None))
        .await
        .unwrap();
    converged("metadata reflector follows").await;
    let two = store
        .get(&reflector::ObjectRef::new("meta-2").within(NS))
        .expect("meta-2");
    assert_eq!(two.labels().get("x").map(String::as_str), Some("y"));
    task.abort();
}

#[tokio::test]
async fn delete_collection_removes_only_the_selected() {
    let server = Server::start(&[]);
    let api: Api<GameServer> = Api::namespaced(server.client().await, "default");
    for (name, tier) in [("a", "gold"), ("b", "gold"), ("c", "silver"), ("d", "gold")] {
        let mut g = gs(name, None, None);
        g.metadata.labels = Some([("tier".to_string(), tier.to_string())].into());
        api.create(&PostParams::default(), &g).await.unwrap();
    }
    let deleted = api
        .delete_collection(
            &DeleteParams::default(),
            &ListParams::default().labels("tier=gold"),
        )
        .await
        .unwrap();
    let names: Vec<String> = deleted
        .left()
        .expect("the deleted objects are returned")
        .items
        .iter()
        .map(|g| g.metadata.name.clone().unwrap())
        .collect();
    assert_eq!(names, ["a", "b", "d"]);
    let left: Vec<String> = api
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .map(|g| g.metadata.name.clone().unwrap())
        .collect();
    assert_eq!(left, ["c"]);
}

/// kube-apiserver deletes an object without preconditions however busy
/// other writers keep it (apiserver pkg/registry/generic/registry/store.go
/// `Delete` retries its `GuaranteedUpdate` on conflict); only the client's
/// own preconditions give 409, and `deletecollection` tries every object.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn delete_without_preconditions_wins_over_concurrent_writers() {
    let server = Server::start(&["--in-memory"]);
    let client = server.client().await;
    let api: Api<GameServer> = Api::namespaced(client.clone(), "default");
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    for round in 0..20 {
        let name = format!("busy-{round}");
        api.create(
            &PostParams::default(),
            &GameServer::new(&name, GameServerSpec::default()),
        )
        .await
        .expect("create");
        let writers: Vec<_> = (0..3)
            .map(|w| {
                let (api, name, stop) = (api.clone(), name.clone(), stop.clone());
                tokio::spawn(async move {
                    let mut n = 0u64;
                    while !stop.load(Ordering::SeqCst) {
                        n += 1;
                        let p =
                            json!({"metadata": {"annotations": {format!("w{w}"): n.to_string()}}});
                        if api
                            .patch(&name, &PatchParams::default(), &Patch::Merge(&p))
                            .await
                            .is_err()
                        {
                            return;
                        }
                    }
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(5)).await;
        let deleted = api.delete(&name, &DeleteParams::default()).await;
        stop.store(true, Ordering::SeqCst);
        for w in writers {
            let _ = w.await;
        }
        stop.store(false, Ordering::SeqCst);
        assert!(deleted.is_ok(), "round {round}: {deleted:?}");
    }
    // The client's own precondition still gives 409.
    let gs = api
        .create(
            &PostParams::default(),
            &GameServer::new("pinned", GameServerSpec::default()),
        )
        .await
        .expect("create");
    let stale = DeleteParams {
        preconditions: Some(kube::api::Preconditions {
            resource_version: Some("1".into()),
            uid: gs.metadata.uid.clone(),
        }),
        ..DeleteParams::default()
    };
    match api.delete("pinned", &stale).await {
        Err(kube::Error::Api(e)) => assert_eq!(e.code, 409),
        other => panic!("a stale precondition: {other:?}"),
    }
}

/// A watch with a selector sees an object that stops matching as DELETED,
/// with its last matching content at the change's resourceVersion, as
/// kube-apiserver's cacher sends it (cache_watcher.go `convertToWatchEvent`).
#[tokio::test]
async fn an_object_leaving_a_selection_is_deleted_with_its_last_matching_content() {
    use kube::api::{WatchEvent, WatchParams};
    let server = Server::start(&["--in-memory"]);
    let api: Api<GameServer> = Api::namespaced(server.client().await, "default");
    let mut gs = GameServer::new("leaving", GameServerSpec::default());
    gs.metadata.labels = Some(BTreeMap::from([("pool".to_owned(), "a".to_owned())]));
    let created = api
        .create(&PostParams::default(), &gs)
        .await
        .expect("create");
    let rv = created.metadata.resource_version.clone().expect("rv");
    let mut stream = api
        .watch(&WatchParams::default().labels("pool=a"), &rv)
        .await
        .expect("watch")
        .boxed();
    let moved = api
        .patch(
            "leaving",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"pool": "b"}}})),
        )
        .await
        .expect("patch");
    let event = tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .expect("an event in time")
        .expect("an event")
        .expect("a good event");
    let WatchEvent::Deleted(last) = event else {
        panic!("expected DELETED, got {event:?}");
    };
    assert_eq!(last.labels().get("pool").map(String::as_str), Some("a"));
    assert_eq!(
        last.metadata.resource_version,
        moved.metadata.resource_version
    );
}

/// Server-side apply resent concurrently by several managers, as Flux,
/// Argo CD and a workflow may do at once. Each apply is one
/// compare-and-swap, so none is lost: managers applying different fields
/// all keep theirs, and of managers racing for one unowned field with
/// different values exactly one wins and every other gets the 409 that
/// names the winner (apimachinery `conflict.go`).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_server_side_applies_lose_nothing() {
    let server = Server::start(&["--in-memory"]);
    let api: Api<GameServerSet> = Api::namespaced(server.client().await, NS);
    api.create(&PostParams::default(), &gss("race", 1))
        .await
        .expect("create");
    let apply = |manager: String, body: Value| {
        let api = api.clone();
        tokio::spawn(async move {
            let params = PatchParams::apply(&manager);
            let result = api.patch("race", &params, &Patch::Apply(&body)).await;
            (manager, result)
        })
    };
    let body = |labels: Value| {
        json!({"apiVersion": "game.kruise.io/v1alpha1", "kind": "GameServerSet",
            "metadata": {"name": "race", "labels": labels}})
    };
    // Different fields: every manager keeps its own.
    let own: Vec<_> = (0..8)
        .map(|i| {
            apply(
                format!("owner-{i}"),
                body(json!({format!("owner-{i}"): "x"})),
            )
        })
        .collect();
    for task in own {
        let (manager, result) = task.await.expect("task");
        result.unwrap_or_else(|e| panic!("{manager}: {e}"));
    }
    let set = api.get("race").await.expect("get");
    for i in 0..8 {
        let key = format!("owner-{i}");
        assert_eq!(
            set.labels().get(&key).map(String::as_str),
            Some("x"),
            "{key}"
        );
        let entry = set
            .managed_fields()
            .iter()
            .find(|e| e.manager.as_deref() == Some(key.as_str()))
            .unwrap_or_else(|| panic!("no managedFields entry for {key}"));
        let fields = serde_json::to_string(&entry.fields_v1).expect("fieldsV1");
        assert!(fields.contains(&format!("f:{key}")), "{key}: {fields}");
    }
    // One field, different values: exactly one wins.
    let racers: Vec<_> = (0..8)
        .map(|i| apply(format!("racer-{i}"), body(json!({"race": format!("v{i}")}))))
        .collect();
    let mut winners = Vec::new();
    let mut refused = Vec::new();
    for task in racers {
        match task.await.expect("task") {
            (manager, Ok(_)) => winners.push(manager),
            (manager, Err(e)) => refused.push((manager, api_err::<()>(Err(e)))),
        }
    }
    assert_eq!(winners.len(), 1, "winners {winners:?}, refused {refused:?}");
    let winner = &winners[0];
    let set = api.get("race").await.expect("get");
    let value = set.labels().get("race").cloned().unwrap_or_default();
    assert_eq!(format!("racer-{}", &value[1..]), *winner);
    for (manager, (code, reason)) in &refused {
        assert_eq!((*code, reason.as_str()), (409, "Conflict"), "{manager}");
    }
    // The losers' answers name the winner, and their apply took nothing.
    let again = api
        .patch(
            "race",
            &PatchParams::apply("racer-late"),
            &Patch::Apply(&body(json!({"race": "late"}))),
        )
        .await;
    match again {
        Err(kube::Error::Api(s)) => assert!(
            s.message.contains(&format!("conflict with \"{winner}\"")),
            "{}",
            s.message
        ),
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert!(
        set.managed_fields()
            .iter()
            .all(|e| !refused.iter().any(|(m, _)| e.manager.as_deref() == Some(m))),
        "a refused apply left an entry"
    );
    // Every owner's label survived the race.
    assert!((0..8).all(|i| set.labels().contains_key(&format!("owner-{i}"))));
}
