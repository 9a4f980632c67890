//! The Argo CD health checks of `manifests/argocd/`: the Lua that argocd-cm's
//! `resource.customizations.health.game.kruise.io_GameServerSet` and
//! `..._GameServer` keys hold, run by a real Lua 5.1 interpreter (mlua's
//! vendored PUC Lua; Argo CD runs gopher-lua, a Lua 5.1) the way Argo CD runs
//! it, on every version of the GameServerSets and GameServers that the
//! embedded fleet writes during a fresh start, a release, a drain and a
//! crash, seen through a watch.
//!
//! Followed upstream:
//! - argoproj/argo-cd `util/lua/lua.go` (`runLua`, `ExecuteHealthLua`,
//!   `decodeValue`): a new state per evaluation with only the base, table,
//!   package and safe os (`util/lua/oslib_safe.go`: time, date) libraries;
//!   the object in the global `obj`, JSON numbers as Lua numbers and null as
//!   nil; the chunk's returned table must hold a valid status.
//! - argoproj/argo-cd `docs/operator-manual/health.md`: the key format
//!   `resource.customizations.health.<group>_<kind>` and the statuses.
//! - argoproj/argo-cd `resource_customizations/game.kruise.io/GameServer*/`:
//!   the bundled checks these replace (their cases are among the hand-written
//!   ones below).
//! - argoproj/gitops-engine `pkg/health/health_statefulset.go` and
//!   `health_pod.go`: Argo CD's own checks of what a GameServerSet and a
//!   GameServer stand on (an Advanced StatefulSet, a pod that always
//!   restarts).
//! - openkruise/kruise-game `apis/v1alpha1/gameserverset_types.go`,
//!   `gameserver_types.go`: the status fields read.
//!
//! A crash-looping release is Degraded on its GameServers; the set stays
//! Progressing, as a StatefulSet does in Argo CD: its status counts servers
//! that are not Ready but cannot tell a starting one from a crashing one.
#![allow(clippy::too_many_lines, reason = "a scenario reads best top to bottom")]

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{MINECRAFT_GSS, Server};
use futures::{StreamExt, TryStreamExt};
use gameops::api::{GameServer, GameServerSet};
use kube::api::{Api, ApiResource, DynamicObject};
use kube::runtime::{WatchStreamExt, watcher};
use mlua::{Lua, LuaOptions, StdLib, Value as LuaValue};
use serde_json::{Value, json};

const GSS_LUA: &str = include_str!("../manifests/argocd/gameserverset-health.lua");
const GS_LUA: &str = include_str!("../manifests/argocd/gameserver-health.lua");
const PATCH_YAML: &str = include_str!("../manifests/argocd/argocd-cm-health-patch.yaml");
const PATCH_PATH: &str = "manifests/argocd/argocd-cm-health-patch.yaml";
const GSS_KEY: &str = "resource.customizations.health.game.kruise.io_GameServerSet";
const GS_KEY: &str = "resource.customizations.health.game.kruise.io_GameServer";
/// gitops-engine's `HealthStatusCode`s that `isValidHealthStatusCode` accepts.
const VALID: [&str; 6] = [
    "Healthy",
    "Progressing",
    "Degraded",
    "Suspended",
    "Missing",
    "Unknown",
];

const NEW: &str = "registry.cn-hangzhou.aliyuncs.com/acs/minecraft-demo:1.12.2-new";

// ---------------------------------------------------------------- the Lua VM

/// A Lua state as Argo CD's `runLua` makes it: base, table and package, and
/// an os holding only `time` and `date` (`OpenSafeOs`); no string, math or
/// io library.
fn argo_lua() -> Lua {
    let lua = Lua::new_with(
        StdLib::TABLE | StdLib::PACKAGE | StdLib::OS,
        LuaOptions::default(),
    )
    .expect("a Lua 5.1 state");
    let globals = lua.globals();
    let os: mlua::Table = globals.get("os").expect("os");
    let safe = lua.create_table().expect("table");
    for name in ["time", "date"] {
        let f: mlua::Function = os.get(name).expect("os function");
        safe.set(name, f).expect("set");
    }
    globals.set("os", safe).expect("set os");
    lua
}

/// Argo CD's `decodeValue`: objects and arrays become tables (arrays from
/// 1), numbers Lua numbers, null nil.
fn to_lua(lua: &Lua, v: &Value) -> mlua::Result<LuaValue> {
    Ok(match v {
        Value::Null => LuaValue::Nil,
        Value::Bool(b) => LuaValue::Boolean(*b),
        Value::Number(n) => LuaValue::Number(n.as_f64().unwrap_or(f64::NAN)),
        Value::String(s) => LuaValue::String(lua.create_string(s)?),
        Value::Array(items) => {
            let t = lua.create_table()?;
            for (i, item) in items.iter().enumerate() {
                t.raw_set(i + 1, to_lua(lua, item)?)?;
            }
            LuaValue::Table(t)
        }
        Value::Object(map) => {
            let t = lua.create_table()?;
            for (k, item) in map {
                t.raw_set(k.as_str(), to_lua(lua, item)?)?;
            }
            LuaValue::Table(t)
        }
    })
}

/// What a health check returned.
#[derive(Clone, Debug, PartialEq)]
struct Health {
    status: String,
    message: String,
}

/// Runs `script` on `object` as Argo CD's `ExecuteHealthLua` does.
fn health(script: &str, object: &Value) -> Health {
    let lua = argo_lua();
    let obj = to_lua(&lua, object).expect("obj as Lua");
    lua.globals().set("obj", obj).expect("set obj");
    let returned: LuaValue = lua
        .load(script)
        .set_name("health.lua")
        .call(())
        .unwrap_or_else(|e| panic!("the health script failed on {object}: {e}"));
    let LuaValue::Table(table) = returned else {
        panic!("expect table output from Lua script, not {returned:?}");
    };
    let status: String = table.get("status").expect("status is a string");
    let message: Option<String> = table.get("message").expect("message is a string");
    assert!(
        VALID.contains(&status.as_str()),
        "Lua returned an invalid health status {status:?} for {object}"
    );
    Health {
        status,
        message: message.unwrap_or_default(),
    }
}

fn gss_health(object: &Value) -> Health {
    health(GSS_LUA, object)
}

fn gs_health(object: &Value) -> Health {
    health(GS_LUA, object)
}

// ------------------------------------------------------- watching the fleet

/// One version of an object as a watch delivered it, with its health.
#[derive(Clone, Debug)]
struct Seen {
    kind: &'static str,
    name: String,
    health: Health,
    object: Value,
}

impl Seen {
    fn is(&self, kind: &str, name: &str) -> bool {
        self.kind == kind && self.name == name
    }

    fn status(&self) -> &str {
        &self.health.status
    }

    fn message(&self) -> &str {
        &self.health.message
    }

    /// What a failed assertion shows of it.
    fn line(&self) -> String {
        format!(
            "{} {} {}: {} | status {}",
            self.kind,
            self.name,
            self.status(),
            self.message(),
            self.object.get("status").unwrap_or(&Value::Null)
        )
    }
}

/// Every version of every GameServerSet and GameServer in `default`, in
/// the order the watches delivered them, evaluated by the health checks.
/// The watches stop when it is dropped.
#[derive(Default)]
struct Log {
    seen: Arc<Mutex<Vec<Seen>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Log {
    fn drop(&mut self) {
        self.tasks.iter().for_each(|t| t.abort());
    }
}

impl Log {
    /// Starts watching GameServerSets and GameServers.
    fn start(client: &kube::Client) -> Self {
        let mut log = Self::default();
        let kinds = [
            ("GameServerSet", ApiResource::erase::<GameServerSet>(&())),
            ("GameServer", ApiResource::erase::<GameServer>(&())),
        ];
        for (kind, resource) in kinds {
            let api: Api<DynamicObject> =
                Api::namespaced_with(client.clone(), "default", &resource);
            let sink = log.seen.clone();
            let task = tokio::spawn(async move {
                let mut events = watcher(api, watcher::Config::default())
                    .applied_objects()
                    .boxed();
                while let Ok(Some(object)) = events.try_next().await {
                    let object = serde_json::to_value(object).expect("object as JSON");
                    let health = match kind {
                        "GameServerSet" => gss_health(&object),
                        _ => gs_health(&object),
                    };
                    let name = object["metadata"]["name"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned();
                    sink.lock().expect("log lock").push(Seen {
                        kind,
                        name,
                        health,
                        object,
                    });
                }
            });
            log.tasks.push(task);
        }
        log
    }

    fn all(&self) -> Vec<Seen> {
        self.seen.lock().expect("log lock").clone()
    }

    fn len(&self) -> usize {
        self.seen.lock().expect("log lock").len()
    }

    /// The versions of one object from index `from` of the log on.
    fn of(&self, kind: &str, name: &str, from: usize) -> Vec<Seen> {
        self.all()
            .into_iter()
            .skip(from)
            .filter(|s| s.is(kind, name))
            .collect()
    }

    /// The latest version of one object.
    fn latest(&self, kind: &str, name: &str) -> Option<Seen> {
        self.of(kind, name, 0).pop()
    }

    /// Waits until one object has been `status`, then gives its first
    /// version in that status from index `from` on.
    async fn first(&self, kind: &str, name: &str, from: usize, status: &str) -> Seen {
        self.until(kind, name, status, |s| s.status() == status)
            .await;
        self.of(kind, name, from)
            .into_iter()
            .find(|s| s.status() == status)
            .expect("a version in that status")
    }

    /// Everything seen, one line each, for failure messages.
    fn dump(&self) -> String {
        self.all()
            .iter()
            .map(Seen::line)
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Polls until the latest version of `kind`/`name` satisfies `want`
    /// (60 s at most; nothing here is timed, only awaited).
    async fn until(
        &self,
        kind: &str,
        name: &str,
        what: &str,
        want: impl Fn(&Seen) -> bool,
    ) -> Seen {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(seen) = self.latest(kind, name).filter(|s| want(s)) {
                return seen;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {kind} {name} to be {what}; seen:\n{}",
                self.dump()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Each object's distinct healths in order (shown with --nocapture).
    fn summary(&self) -> String {
        let all = self.all();
        let mut objects: Vec<(&str, &str)> = Vec::new();
        for s in &all {
            if !objects.contains(&(s.kind, s.name.as_str())) {
                objects.push((s.kind, s.name.as_str()));
            }
        }
        let mut out = String::new();
        for (kind, name) in objects {
            let versions: Vec<Seen> = all.iter().filter(|s| s.is(kind, name)).cloned().collect();
            out.push_str(&format!("{kind} {name}\n"));
            for (status, message) in sequence(&versions) {
                out.push_str(&format!("  {status}: {message}\n"));
            }
        }
        out
    }

    /// Fails if anything seen was Degraded (a normal release never is).
    fn never_degraded(&self) {
        let degraded: Vec<String> = self
            .all()
            .iter()
            .filter(|s| s.status() == "Degraded")
            .map(Seen::line)
            .collect();
        assert!(
            degraded.is_empty(),
            "Degraded during a normal release:\n{}",
            degraded.join("\n")
        );
    }
}

/// The distinct (status, message) pairs of `versions`, in order.
fn sequence(versions: &[Seen]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for s in versions {
        let pair = (s.status().to_owned(), s.message().to_owned());
        if out.last() != Some(&pair) {
            out.push(pair);
        }
    }
    out
}

fn gss_yaml(name: &str, replicas: u32, image: &str) -> String {
    format!(
        "apiVersion: game.kruise.io/v1alpha1
kind: GameServerSet
metadata: {{name: {name}, namespace: default}}
spec:
  replicas: {replicas}
  updateStrategy: {{type: OnDelete}}
  gameServerTemplate:
    spec:
      containers: [{{name: game, image: '{image}'}}]
"
    )
}

fn set_image(server: &Server, set: &str, container: &str, image: &str) {
    let patch = json!({"spec": {"gameServerTemplate": {"spec": {"containers": [{"name": container, "image": image}]}}}});
    server.kubectl_ok(
        &[
            "patch",
            "gss",
            set,
            "--type=merge",
            "-p",
            &patch.to_string(),
        ],
        None,
    );
}

fn set_ops(server: &Server, gs: &str, ops: &str) {
    let patch = json!({"spec": {"opsState": ops}});
    server.kubectl_ok(
        &["patch", "gs", gs, "--type=merge", "-p", &patch.to_string()],
        None,
    );
}

fn scale(server: &Server, set: &str, replicas: u32) {
    server.kubectl_ok(
        &["scale", "gss", set, &format!("--replicas={replicas}")],
        None,
    );
}

fn generation(seen: &Seen) -> i64 {
    seen.object["metadata"]["generation"].as_i64().unwrap_or(0)
}

/// The set's generation as the API server has it now.
fn current_generation(server: &Server, set: &str) -> i64 {
    server
        .kubectl_ok(
            &["get", "gss", set, "-o", "jsonpath={.metadata.generation}"],
            None,
        )
        .trim()
        .parse()
        .expect("a generation")
}

// --------------------------------------------------------------- scenarios

/// (1) A fresh set: Progressing while its servers are created and start,
/// then Healthy; each server Progressing (Creating) then Healthy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_set_progresses_then_turns_healthy() {
    let server = Server::start_fleet(&[
        "--in-memory",
        "--sim-startup-ms",
        "2000",
        "--sim-jitter-ms",
        "500",
    ]);
    let log = Log::start(&server.client().await);
    // No updateStrategy: OKG's default, RollingUpdate.
    server.kubectl_ok(
        &["apply", "-f", "-"],
        Some(
            "apiVersion: game.kruise.io/v1alpha1
kind: GameServerSet
metadata: {name: fresh, namespace: default}
spec:
  replicas: 3
  gameServerTemplate:
    spec:
      containers: [{name: game, image: 'game:v1'}]
",
        ),
    );
    let healthy = log
        .until("GameServerSet", "fresh", "Healthy", |s| {
            s.status() == "Healthy"
        })
        .await;
    assert_eq!(
        healthy.message(),
        "All 3 servers Ready, all on the current template"
    );
    let set = sequence(&log.of("GameServerSet", "fresh", 0));
    let (last, before) = set.split_last().expect("versions");
    assert_eq!(last.0, "Healthy");
    assert!(
        before.iter().all(|(status, _)| status == "Progressing"),
        "{set:#?}"
    );
    let messages: Vec<&str> = before.iter().map(|(_, m)| m.as_str()).collect();
    assert!(
        messages.iter().any(|m| m.starts_with(
            "3 of 3 servers on the current template not Ready yet (starting, or failing: a failing GameServer is Degraded and says why); 0 of 3 wanted servers Ready"
        )),
        "{set:#?}"
    );
    for gs in ["fresh-0", "fresh-1", "fresh-2"] {
        let seen = log
            .until("GameServer", gs, "Healthy", |s| s.status() == "Healthy")
            .await;
        assert_eq!(seen.message(), "Ready; 0 of 10 players");
        let versions = sequence(&log.of("GameServer", gs, 0));
        let (last, before) = versions.split_last().expect("versions");
        assert_eq!(last.0, "Healthy", "{versions:#?}");
        assert!(
            !before.is_empty() && before.iter().all(|(status, _)| status == "Progressing"),
            "{gs}: {versions:#?}"
        );
        assert!(
            before.iter().any(|(_, m)| m.starts_with("Creating")),
            "{gs}: {versions:#?}"
        );
    }
    println!("{}", log.summary());
    log.never_degraded();
}

/// (2) The seamless release (OnDelete, like OpenKruiseGame's example): the
/// template's image changes, the set scales up so servers of the new
/// version start, Progressing until they are Ready, then Healthy with the old
/// servers kept; (4) the drain: old servers marked WaitToBeDeleted, then
/// `replicas` lowered, Healthy during and after, the Allocated old server
/// kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seamless_release_and_its_drain() {
    let server = Server::start_fleet(&[
        "--in-memory",
        "--sim-startup-ms",
        "1500",
        "--sim-jitter-ms",
        "300",
    ]);
    let log = Log::start(&server.client().await);
    server.kubectl_ok(&["apply", "-f", "-"], Some(MINECRAFT_GSS));
    let set = "minecraft";
    log.until("GameServerSet", set, "Healthy", |s| {
        s.message() == "All 3 servers Ready, all on the current template"
    })
    .await;
    set_ops(&server, "minecraft-0", "Allocated");
    // The simulator gives a server allocated by hand one player.
    let allocated = log
        .until("GameServer", "minecraft-0", "Allocated", |s| {
            s.message() == "Ready, opsState Allocated; 1 of 10 players"
        })
        .await;
    assert_eq!(allocated.status(), "Healthy");

    // The new image: OnDelete replaces nothing, so the set stays Healthy
    // once the controller has seen the change.
    set_image(&server, set, "minecraft", NEW);
    let generation_2 = current_generation(&server, set);
    let seen = log
        .until("GameServerSet", set, "the new template observed", |s| {
            generation(s) == generation_2 && s.status() == "Healthy"
        })
        .await;
    assert_eq!(
        seen.message(),
        "All 3 servers Ready: 0 on the current template, 3 on older templates (OnDelete keeps them until they are deleted)"
    );

    // Scale up: three servers of the new version start.
    let from = log.len();
    scale(&server, set, 6);
    let healthy = log
        .until("GameServerSet", set, "Healthy with 6", |s| {
            s.status() == "Healthy" && s.message().starts_with("All 6 servers Ready")
        })
        .await;
    assert_eq!(
        healthy.message(),
        "All 6 servers Ready: 3 on the current template, 3 on older templates (OnDelete keeps them until they are deleted)"
    );
    let release = sequence(&log.of("GameServerSet", set, from));
    let (last, before) = release.split_last().expect("versions");
    assert_eq!(last.0, "Healthy");
    assert!(
        before.iter().all(|(status, _)| status == "Progressing"),
        "{release:#?}"
    );
    assert!(
        before.iter().any(|(_, m)| m.starts_with(
            "3 of 3 servers on the current template not Ready yet (starting, or failing: a failing GameServer is Degraded and says why); 3 of 6 wanted servers Ready"
        )),
        "{release:#?}"
    );
    for gs in ["minecraft-3", "minecraft-4", "minecraft-5"] {
        let versions = sequence(&log.of("GameServer", gs, from));
        let (last, before) = versions.split_last().expect("versions");
        assert_eq!(
            last,
            &("Healthy".to_owned(), "Ready; 0 of 10 players".to_owned()),
            "{versions:#?}"
        );
        assert!(
            !before.is_empty() && before.iter().all(|(status, _)| status == "Progressing"),
            "{gs}: {versions:#?}"
        );
    }

    // The drain: idle old servers WaitToBeDeleted.
    set_ops(&server, "minecraft-1", "WaitToBeDeleted");
    set_ops(&server, "minecraft-2", "WaitToBeDeleted");
    let marked = log
        .until("GameServerSet", set, "counting WaitToBeDeleted", |s| {
            s.message().contains("2 WaitToBeDeleted")
        })
        .await;
    assert_eq!(marked.status(), "Healthy");
    assert_eq!(
        marked.message(),
        "All 6 servers Ready: 3 on the current template, 3 on older templates (OnDelete keeps them until they are deleted); 2 WaitToBeDeleted (deleted first when spec.replicas is lowered)"
    );
    for gs in ["minecraft-1", "minecraft-2"] {
        let seen = log
            .until("GameServer", gs, "WaitToBeDeleted", |s| {
                s.message().contains("WaitToBeDeleted")
            })
            .await;
        assert_eq!(seen.status(), "Healthy");
        assert_eq!(
            seen.message(),
            "Ready, opsState WaitToBeDeleted (deleted first when its set scales down); 0 of 10 players"
        );
    }

    // ... then replicas lowered: they go, the Allocated one stays.
    let from = log.len();
    scale(&server, set, 4);
    let done = log
        .until("GameServerSet", set, "Healthy with 4", |s| {
            s.status() == "Healthy" && s.message().starts_with("All 4 servers Ready")
        })
        .await;
    assert_eq!(
        done.message(),
        "All 4 servers Ready: 3 on the current template, 1 on an older template (OnDelete keeps them until they are deleted)"
    );
    let drain = sequence(&log.of("GameServerSet", set, from));
    assert!(
        drain
            .iter()
            .all(|(status, _)| status == "Healthy" || status == "Progressing"),
        "{drain:#?}"
    );
    let names: BTreeSet<String> = server
        .kubectl_ok(&["get", "gs", "-o", "name"], None)
        .lines()
        .map(|l| {
            l.trim_start_matches("gameserver.game.kruise.io/")
                .to_owned()
        })
        .collect();
    let want: BTreeSet<String> = ["minecraft-0", "minecraft-3", "minecraft-4", "minecraft-5"]
        .map(str::to_owned)
        .into();
    assert_eq!(names, want);
    println!("{}", log.summary());
    log.never_degraded();
}

/// (3) A release whose image crash-loops: its servers are Degraded, naming
/// CrashLoopBackOff and the restarts; the set stays Progressing, counting
/// the servers on the new template that are not Ready and sending the
/// reader to them. An image that cannot be pulled likewise.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_looping_release_is_degraded_on_its_servers() {
    let server = Server::start_fleet(&[
        "--in-memory",
        "--sim-startup-ms",
        "1000",
        "--sim-jitter-ms",
        "200",
        "--sim-crash-image",
        ":crash$",
        "--sim-pull-fail-image",
        ":missing$",
    ]);
    let log = Log::start(&server.client().await);
    server.kubectl_ok(
        &["apply", "-f", "-"],
        Some(&gss_yaml("arena", 2, "game:v1")),
    );
    log.until("GameServerSet", "arena", "Healthy", |s| {
        s.message() == "All 2 servers Ready, all on the current template"
    })
    .await;

    set_image(&server, "arena", "game", "game:crash");
    let generation_2 = current_generation(&server, "arena");
    log.until("GameServerSet", "arena", "the new template observed", |s| {
        generation(s) == generation_2 && s.status() == "Healthy"
    })
    .await;
    let from = log.len();
    scale(&server, "arena", 4);
    for gs in ["arena-2", "arena-3"] {
        let first = log.first("GameServer", gs, from, "Degraded").await;
        assert!(
            first
                .message()
                .starts_with("NotReady: container game CrashLoopBackOff, restarted 1 time (back-off 5s restarting failed container=game pod="),
            "{}",
            first.line()
        );
        // Restarted after its back-off, it crashes again: still Degraded.
        let again = log
            .until("GameServer", gs, "crashed twice", |s| {
                s.object["status"]["podStatus"]["containerStatuses"][0]["restartCount"] == 2
            })
            .await;
        assert_eq!(again.status(), "Degraded", "{}", again.line());
        let versions = sequence(&log.of("GameServer", gs, from));
        let after_first = versions
            .iter()
            .skip_while(|(status, _)| status != "Degraded")
            .collect::<Vec<_>>();
        assert!(
            after_first.iter().all(|(status, _)| status == "Degraded"),
            "a crash-looping server never looks healthy or starting again: {versions:#?}"
        );
        assert!(
            after_first.iter().any(|(_, m)| m.starts_with(
                "NotReady: container game exited with code 1 (Error), restarted 2 times"
            )),
            "the restarted, not yet Ready container: {versions:#?}"
        );
    }
    let set = log.latest("GameServerSet", "arena").expect("the set");
    assert_eq!(set.status(), "Progressing", "{}", set.line());
    assert_eq!(
        set.message(),
        "2 of 2 servers on the current template not Ready yet (starting, or failing: a failing GameServer is Degraded and says why); 2 of 4 wanted servers Ready"
    );
    let versions = sequence(&log.of("GameServerSet", "arena", from));
    assert!(
        versions.iter().all(|(status, _)| status == "Progressing"),
        "never Healthy while its new servers crash: {versions:#?}"
    );
    // The old servers are untouched (OnDelete) and Healthy.
    for gs in ["arena-0", "arena-1"] {
        let seen = log.latest("GameServer", gs).expect("an old server");
        assert_eq!(seen.status(), "Healthy", "{}", seen.line());
    }

    // An image that cannot be pulled.
    server.kubectl_ok(
        &["apply", "-f", "-"],
        Some(&gss_yaml("pull", 1, "game:missing")),
    );
    let pulling = log.first("GameServer", "pull-0", 0, "Degraded").await;
    assert!(
        pulling.message().starts_with(
            "Creating: container game ErrImagePull (rpc error: code = NotFound desc = failed to pull and unpack image \"game:missing\""
        ),
        "{}",
        pulling.line()
    );
    let backoff = log
        .until("GameServer", "pull-0", "in ImagePullBackOff", |s| {
            s.message().contains("ImagePullBackOff")
        })
        .await;
    assert_eq!(backoff.status(), "Degraded");
    assert_eq!(
        backoff.message(),
        "Creating: container game ImagePullBackOff (Back-off pulling image \"game:missing\")"
    );
    let set = log
        .until("GameServerSet", "pull", "counting its server", |s| {
            s.message().starts_with("1 of 1 server")
        })
        .await;
    assert_eq!(set.status(), "Progressing");
    assert_eq!(
        set.message(),
        "1 of 1 server on the current template not Ready yet (starting, or failing: a failing GameServer is Degraded and says why); 0 of 1 wanted servers Ready"
    );
    println!("{}", log.summary());
}

// ------------------------------------------- what the fleet does not write

fn gss(spec: Value, status: Value, generation: i64) -> Value {
    json!({
        "apiVersion": "game.kruise.io/v1alpha1",
        "kind": "GameServerSet",
        "metadata": {"name": "s", "namespace": "default", "generation": generation},
        "spec": spec,
        "status": status,
    })
}

fn counts(replicas: i64, ready: i64, updated: i64, updated_ready: i64, wtd: i64) -> Value {
    json!({
        "observedGeneration": 1, "replicas": replicas, "currentReplicas": replicas,
        "readyReplicas": ready, "availableReplicas": ready, "updatedReplicas": updated,
        "updatedReadyReplicas": updated_ready, "waitToBeDeletedReplicas": wtd,
        "maintainingReplicas": 0,
    })
}

fn check(got: &Health, status: &str, message: &str) {
    assert_eq!(
        got,
        &Health {
            status: status.to_owned(),
            message: message.to_owned()
        }
    );
}

#[test]
fn gameserverset_statuses_the_fleet_does_not_write() {
    let rolling = |extra: Value| {
        let mut strategy = json!({"type": "RollingUpdate", "rollingUpdate": {}});
        strategy["rollingUpdate"] = extra;
        json!({"replicas": 3, "updateStrategy": strategy})
    };
    // Paused (upstream suspended-paused.yaml).
    check(
        &gss_health(&gss(
            rolling(json!({"paused": true})),
            counts(3, 3, 1, 1, 0),
            1,
        )),
        "Suspended",
        "Updates are paused (updateStrategy.rollingUpdate.paused): 1 of 3 servers run the current template",
    );
    // A partition holding two servers back (upstream suspended-partition.yaml).
    check(
        &gss_health(&gss(
            rolling(json!({"partition": 2})),
            counts(3, 3, 1, 1, 0),
            1,
        )),
        "Suspended",
        "Partition 2 holds 2 on older templates: 1 of 3 servers run the current template; lower updateStrategy.rollingUpdate.partition to go on",
    );
    // A rolling update under way.
    check(
        &gss_health(&gss(rolling(json!({})), counts(3, 3, 2, 2, 0), 1)),
        "Progressing",
        "Rolling update (RollingUpdate): 2 of 3 servers run the current template; 1 on an older template to replace",
    );
    // The spec changed and the controller has not looked yet (upstream
    // progressing.yaml).
    check(
        &gss_health(&gss(
            json!({"replicas": 3}),
            json!({"observedGeneration": 1, "replicas": 3}),
            2,
        )),
        "Progressing",
        "Waiting for the controller to observe generation 2 (the status is of generation 1)",
    );
    // No status yet (upstream's initialization case).
    let mut fresh = gss(json!({"replicas": 3}), Value::Null, 1);
    fresh.as_object_mut().expect("object").remove("status");
    check(
        &gss_health(&fresh),
        "Progressing",
        "Waiting for the GameServerSet controller to report a status",
    );
    // Being deleted, held by a finalizer (upstream terminating.yaml).
    let mut deleting = gss(json!({"replicas": 3}), counts(3, 3, 3, 3, 0), 1);
    deleting["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
    deleting["metadata"]["finalizers"] = json!(["example.com/finalizer"]);
    check(
        &gss_health(&deleting),
        "Progressing",
        "Pending deletion; blocked by finalizers: example.com/finalizer",
    );
    // replicas lowered, WaitToBeDeleted servers not gone yet.
    check(
        &gss_health(&gss(
            json!({"replicas": 4, "updateStrategy": {"type": "OnDelete"}}),
            counts(6, 6, 3, 3, 2),
            1,
        )),
        "Progressing",
        "Scaling down to 4: 6 servers, 2 WaitToBeDeleted go first",
    );
    // An old server that stopped being Ready under OnDelete.
    check(
        &gss_health(&gss(
            json!({"replicas": 3, "updateStrategy": {"type": "OnDelete"}}),
            counts(3, 2, 1, 1, 0),
            1,
        )),
        "Progressing",
        "Waiting for 1 server to be Ready: 2 of 3 wanted servers Ready; 1 on an older template not Ready",
    );
    // Scaled to zero; upstream's healthy.yaml shape.
    check(
        &gss_health(&gss(json!({"replicas": 0}), counts(0, 0, 0, 0, 0), 1)),
        "Healthy",
        "Scaled to zero: no servers",
    );
    // updatedReadyReplicas is omitempty in OKG: absent means 0.
    let mut omitted = counts(2, 0, 2, 0, 0);
    omitted
        .as_object_mut()
        .expect("object")
        .remove("updatedReadyReplicas");
    check(
        &gss_health(&gss(json!({"replicas": 2}), omitted, 1)),
        "Progressing",
        "2 of 2 servers on the current template not Ready yet (starting, or failing: a failing GameServer is Degraded and says why); 0 of 2 wanted servers Ready",
    );
}

fn gs(state: &str, pod: Value) -> Value {
    json!({
        "apiVersion": "game.kruise.io/v1alpha1",
        "kind": "GameServer",
        "metadata": {"name": "g", "namespace": "default"},
        "spec": {"opsState": "None"},
        "status": {"currentState": state, "desiredState": "Ready", "podStatus": pod},
    })
}

#[test]
fn gameserver_statuses_the_fleet_does_not_write() {
    // Upstream degraded.yaml: Ready, but KruisePodReady False.
    check(
        &gs_health(&gs(
            "Ready",
            json!({"conditions": [{"type": "Ready", "status": "True"}, {"type": "KruisePodReady", "status": "False"}]}),
        )),
        "Degraded",
        "Ready, but pod condition KruisePodReady is not True",
    );
    // A failed pod (OKG's Crash).
    check(
        &gs_health(&gs(
            "Crash",
            json!({"phase": "Failed", "message": "Pod was terminated in response to imminent node shutdown."}),
        )),
        "Degraded",
        "Crash: the pod failed: Pod was terminated in response to imminent node shutdown.",
    );
    // NotReady while starting (a readiness probe not passed yet).
    check(
        &gs_health(&gs(
            "NotReady",
            json!({"phase": "Running", "containerStatuses": [{"name": "game", "ready": false, "restartCount": 0, "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}}}]}),
        )),
        "Progressing",
        "NotReady: containers started, waiting for them to be Ready",
    );
    // A bad config reference: CreateContainerConfigError.
    check(
        &gs_health(&gs(
            "Creating",
            json!({"phase": "Pending", "containerStatuses": [{"name": "game", "ready": false, "restartCount": 0, "state": {"waiting": {"reason": "CreateContainerConfigError", "message": "secret \"game-env\" not found"}}}]}),
        )),
        "Degraded",
        "Creating: container game CreateContainerConfigError (secret \"game-env\" not found)",
    );
    // Still being created: no reason to worry (upstream progressing.yaml).
    check(
        &gs_health(&gs(
            "Creating",
            json!({"phase": "Pending", "containerStatuses": [{"name": "game", "ready": false, "restartCount": 0, "state": {"waiting": {"reason": "ContainerCreating"}}}]}),
        )),
        "Progressing",
        "Creating (pod Pending)",
    );
    check(
        &gs_health(&gs("Unknown", json!({}))),
        "Unknown",
        "currentState Unknown: the node or pod cannot be observed",
    );
    // No status yet (upstream unknown.yaml is Unknown; a new server is
    // being created, so Progressing here).
    let mut new = gs("Ready", json!({}));
    new.as_object_mut().expect("object").remove("status");
    check(
        &gs_health(&new),
        "Progressing",
        "Waiting for the first status: the pod is being created",
    );
    let mut deleting = gs("Ready", json!({}));
    deleting["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
    check(&gs_health(&deleting), "Progressing", "Pending deletion");
}

// --------------------------------------------------- the shipped ConfigMap

#[test]
fn the_configmap_holds_the_lua_files_verbatim() {
    let cm: Value = serde_yaml_ng::from_str(PATCH_YAML).expect("the patch is YAML");
    assert_eq!(cm["apiVersion"], "v1");
    assert_eq!(cm["kind"], "ConfigMap");
    assert_eq!(
        cm["metadata"],
        json!({"name": "argocd-cm", "namespace": "argocd"})
    );
    let data = cm["data"].as_object().expect("data");
    let keys: BTreeSet<&str> = data.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        BTreeSet::from([GSS_KEY, GS_KEY]),
        "Argo CD's key format is resource.customizations.health.<group>_<kind>"
    );
    assert!(
        data[GSS_KEY] == GSS_LUA,
        "{GSS_KEY} differs from manifests/argocd/gameserverset-health.lua: copy the file into the YAML"
    );
    assert!(
        data[GS_KEY] == GS_LUA,
        "{GS_KEY} differs from manifests/argocd/gameserver-health.lua: copy the file into the YAML"
    );
}

/// `kubectl patch --patch-file` (the README's install step) merges the two
/// keys into an existing argocd-cm and keeps what it had; so does a
/// kustomize strategic-merge patch.
#[test]
fn the_patch_merges_into_an_existing_argocd_cm() {
    let dir = tempfile::tempdir().expect("temp dir");
    let existing = "apiVersion: v1
kind: ConfigMap
metadata:
  name: argocd-cm
  namespace: argocd
  labels: {app.kubernetes.io/name: argocd-cm, app.kubernetes.io/part-of: argocd}
data:
  url: https://argocd.example.com
  resource.customizations.health.cert-manager.io_Certificate: |
    hs = {status = \"Healthy\"}
    return hs
";
    std::fs::write(dir.path().join("argocd-cm.yaml"), existing).expect("write");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, "apiVersion: v1\nkind: Config\n").expect("write");
    let patched = common::kubectl_with(
        &kubeconfig,
        dir.path(),
        &[
            "patch",
            "--local",
            "-f",
            &dir.path().join("argocd-cm.yaml").to_string_lossy(),
            "--patch-file",
            &root.join(PATCH_PATH).to_string_lossy(),
            "-o",
            "json",
        ],
        None,
    );
    assert!(
        patched.status.success(),
        "{}",
        String::from_utf8_lossy(&patched.stderr)
    );
    let patched: Value = serde_json::from_slice(&patched.stdout).expect("JSON");
    std::fs::copy(root.join(PATCH_PATH), dir.path().join("health-patch.yaml")).expect("copy");
    std::fs::write(
        dir.path().join("kustomization.yaml"),
        "resources: [argocd-cm.yaml]\npatches:\n  - path: health-patch.yaml\n",
    )
    .expect("write");
    let built = common::kubectl_with(
        &kubeconfig,
        dir.path(),
        &["kustomize", &dir.path().to_string_lossy()],
        None,
    );
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );
    let built: Value = serde_yaml_ng::from_slice(&built.stdout).expect("YAML");
    for cm in [patched, built] {
        let data = &cm["data"];
        assert_eq!(data["url"], "https://argocd.example.com", "{cm}");
        assert_eq!(
            data["resource.customizations.health.cert-manager.io_Certificate"],
            "hs = {status = \"Healthy\"}\nreturn hs\n"
        );
        assert_eq!(data[GSS_KEY], GSS_LUA);
        assert_eq!(data[GS_KEY], GS_LUA);
        assert_eq!(
            cm["metadata"]["labels"]["app.kubernetes.io/part-of"],
            "argocd"
        );
    }
}

/// Argo CD leaves the string, math and io libraries out (and os is only
/// `time` and `date`): the scripts must not need them on any path, not only
/// the paths the scenarios take.
#[test]
fn the_scripts_need_no_library_argo_cd_leaves_out() {
    let lua = argo_lua();
    for lib in ["string", "math", "io", "debug"] {
        let v: LuaValue = lua.globals().get(lib).expect("global");
        assert!(v.is_nil(), "{lib} is loaded, unlike in Argo CD");
    }
    let forbidden =
        regex::Regex::new(r"\b(string|math|io|os|debug|coroutine)\s*\.|\brequire\b|:\s*(sub|format|find|match|gmatch|gsub|len|lower|upper|rep|byte|char|reverse)\s*\(")
            .expect("regex");
    for (name, script) in [
        ("gameserverset-health.lua", GSS_LUA),
        ("gameserver-health.lua", GS_LUA),
    ] {
        let code: String = script
            .lines()
            .map(|l| l.split("--").next().unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n");
        assert!(
            !forbidden.is_match(&code),
            "{name} uses a library Argo CD does not load: {:?}",
            forbidden.find(&code)
        );
    }
    // Every JSON number arrives as a Lua number: counts print as integers.
    let h = gss_health(&gss(json!({"replicas": 2}), counts(2, 2, 2, 2, 0), 1));
    assert_eq!(
        h.message,
        "All 2 servers Ready, all on the current template"
    );
}

/// The install notes name the patch and both keys.
#[test]
fn the_readme_says_how_to_install_it() {
    let readme = include_str!("../manifests/README.md");
    let section = readme
        .split("\n## Argo CD health checks\n")
        .nth(1)
        .expect("manifests/README.md has a section \"Argo CD health checks\"");
    assert!(
        !section.contains("\n## "),
        "\"Argo CD health checks\" is the README's last section"
    );
    for needle in [
        "kubectl -n argocd patch configmap argocd-cm --patch-file manifests/argocd/argocd-cm-health-patch.yaml",
        GSS_KEY,
        GS_KEY,
        "Progressing",
        "Healthy",
        "Degraded",
        "Suspended",
    ] {
        assert!(
            section.contains(needle),
            "the section does not mention {needle}"
        );
    }
    let kustomization = include_str!("../manifests/kustomization.yaml");
    assert!(
        !kustomization.contains("argocd"),
        "manifests/argocd is not part of the base"
    );
}
