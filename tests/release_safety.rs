//! Releases that stay safe in everyday, repeated use (issue 11), against
//! `gameops serve`'s embedded fleet, with the plugin called as Argo's agent
//! calls it: a rollback right after a release, a failed wait sent again,
//! and one call resent concurrently.
#![allow(clippy::too_many_lines, reason = "a scenario reads best top to bottom")]

mod common;

use std::time::{Duration, Instant};

use common::agent::{Agent, drive, message, output, phase, set, succeeded};
use common::{MINECRAFT_GSS, Server};
use gameops::api::GameServer;
use kube::api::{Api, ListParams};
use serde_json::{Value, json};

const OLD: &str = "registry.cn-hangzhou.aliyuncs.com/acs/minecraft-demo:1.12.2";
const NEW: &str = "registry.cn-hangzhou.aliyuncs.com/acs/minecraft-demo:1.12.2-new";
const DEADLINE: Duration = Duration::from_secs(60);

async fn servers(server: &Server) -> Vec<GameServer> {
    let api: Api<GameServer> = Api::namespaced(server.client().await, "default");
    api.list(&ListParams::default().labels("game.kruise.io/owner-gss=minecraft"))
        .await
        .expect("list servers")
        .items
}

fn ops_state(gs: &GameServer) -> &str {
    gs.spec.ops_state.as_deref().unwrap_or("None")
}

fn ready(gs: &GameServer) -> bool {
    gs.status.as_ref().and_then(|s| s.current_state.as_deref()) == Some("Ready")
}

async fn all_ready(server: &Server, n: usize) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let list = servers(server).await;
        if list.len() == n && list.iter().all(ready) {
            return;
        }
        assert!(Instant::now() < deadline, "{n} Ready servers: {list:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The release the seamless-release template runs, op by op.
async fn release(agent: &Agent, uid: &str) {
    succeeded(
        &agent
            .op(uid, "patch", "patchImage", set(json!({"image": NEW})), &[])
            .await,
    );
    succeeded(
        &agent
            .op(uid, "surge", "scale", set(json!({"delta": 3})), &[])
            .await,
    );
    succeeded(
        &drive(
            agent,
            uid,
            "wait",
            "waitReady",
            set(json!({"count": 3, "timeoutSeconds": 60})),
            &[],
        )
        .await
        .0,
    );
    succeeded(
        &agent
            .op(
                uid,
                "retire",
                "setOpsState",
                set(json!({"select": {"opsState": "None", "notImage": format!("minecraft/{NEW}")}, "opsState": "WaitToBeDeleted"})),
                &[],
            )
            .await,
    );
}

#[tokio::test]
async fn a_rollback_right_after_a_release_waits_for_servers_that_will_serve() {
    let server = Server::start_fleet(&[
        "--in-memory",
        "--sim-startup-ms",
        "1500",
        "--sim-jitter-ms",
        "100",
    ]);
    server.kubectl_ok(&["apply", "-f", "-"], Some(MINECRAFT_GSS));
    all_ready(&server, 3).await;
    let agent = Agent::new(&server);
    release(&agent, "release").await;
    // The old servers are Ready, run OLD and are marked WaitToBeDeleted.
    let retired = servers(&server).await;
    assert_eq!(
        retired
            .iter()
            .filter(|g| ops_state(g) == "WaitToBeDeleted" && ready(g))
            .count(),
        3,
        "{retired:?}"
    );
    // The release's lease outlives its steps until its exit handler frees
    // it: another workflow is refused, told who holds the set and how to
    // free it, and nothing changes.
    let refused = agent
        .op(
            "rollback",
            "undo",
            "rollback",
            set(json!({"toImage": OLD})),
            &[],
        )
        .await;
    assert_eq!(phase(&refused), "Failed", "{refused}");
    for needle in [
        "workflow default/wf-release (uid release)",
        "whether it still runs is not known here",
        "kubectl annotate gss minecraft -n default gameops.io/lease-",
    ] {
        assert!(message(&refused).contains(needle), "{needle}: {refused}");
    }
    assert_eq!(servers(&server).await.len(), 6, "nothing changed");
    // The exit handler's unlock frees it, once; a repeat changes nothing,
    // and another workflow's unlock never frees someone else's lease.
    let other = agent
        .op("rollback", "exit", "unlock", set(json!({})), &["freed"])
        .await;
    assert_eq!(output(&other, "freed"), "false", "{other}");
    for freed in ["true", "false"] {
        let r = agent
            .op("release", "exit", "unlock", set(json!({})), &["freed"])
            .await;
        succeeded(&r);
        assert_eq!(output(&r, "freed"), freed, "{r}");
    }
    // Rollback: back to OLD, and wait for three OLD servers. The retired
    // ones run OLD and are Ready, but will not serve: they must not count.
    succeeded(
        &agent
            .op(
                "rollback",
                "undo",
                "rollback",
                set(json!({"toImage": OLD})),
                &[],
            )
            .await,
    );
    succeeded(
        &agent
            .op("rollback", "surge", "scale", set(json!({"delta": 3})), &[])
            .await,
    );
    let first = agent
        .op(
            "rollback",
            "wait",
            "waitReady",
            set(json!({"image": OLD, "count": 3, "timeoutSeconds": 60})),
            &["ready"],
        )
        .await;
    assert_eq!(
        phase(&first),
        "Running",
        "retired servers are not servers to wait for: {first}"
    );
    assert!(message(&first).contains("0/3 Ready"), "{first}");
    let done = drive(
        &agent,
        "rollback",
        "wait",
        "waitReady",
        set(json!({"image": OLD, "count": 3, "timeoutSeconds": 60})),
        &[],
    )
    .await
    .0;
    succeeded(&done);
    let now = servers(&server).await;
    let serving_old = now
        .iter()
        .filter(|g| ops_state(g) == "None" && ready(g) && g.running_image() == Some(OLD))
        .count();
    assert!(
        serving_old >= 3,
        "three OLD servers that will serve: {now:?}"
    );
}

#[tokio::test]
async fn a_failed_wait_stays_failed_when_sent_again() {
    let server = Server::start_fleet(&[
        "--in-memory",
        "--sim-startup-ms",
        "2500",
        "--sim-jitter-ms",
        "100",
    ]);
    server.kubectl_ok(&["apply", "-f", "-"], Some(MINECRAFT_GSS));
    all_ready(&server, 3).await;
    let agent = Agent::new(&server);
    succeeded(
        &agent
            .op("wf", "patch", "patchImage", set(json!({"image": NEW})), &[])
            .await,
    );
    succeeded(
        &agent
            .op("wf", "surge", "scale", set(json!({"delta": 3})), &[])
            .await,
    );
    let args = set(json!({"count": 3, "timeoutSeconds": 1}));
    let failed = drive(&agent, "wf", "wait", "waitReady", args.clone(), &[])
        .await
        .0;
    assert_eq!(phase(&failed), "Failed", "{failed}");
    assert!(message(&failed).contains("timed out"), "{failed}");
    // The slow servers come up; the template's release-failed step sends
    // the same call again: the verdict stands.
    all_ready(&server, 6).await;
    for _ in 0..2 {
        let again = agent.op("wf", "wait", "waitReady", args.clone(), &[]).await;
        assert_eq!(phase(&again), "Failed", "{again}");
        assert_eq!(message(&again), message(&failed));
    }
    // Another workflow's wait is a new call, with its own verdict.
    succeeded(&drive(&agent, "wf2", "wait", "waitReady", args, &[]).await.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_same_call_resent_concurrently_changes_one_server_and_answers_it() {
    let server = Server::start_fleet(&["--in-memory", "--sim-startup-ms", "100"]);
    server.kubectl_ok(&["apply", "-f", "-"], Some(MINECRAFT_GSS));
    server.kubectl_ok(&["scale", "gss", "minecraft", "--replicas", "12"], None);
    all_ready(&server, 12).await;
    let agent = std::sync::Arc::new(Agent::new(&server));
    let mut taken: Vec<String> = Vec::new();
    // Several calls, each sent five times at once (Argo's agent resends).
    for round in 0..4 {
        let template = format!("maintain-{round}");
        let args =
            set(json!({"select": {"opsState": "None"}, "opsState": "Maintaining", "limit": 1}));
        let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(5));
        let copies: Vec<_> = (0..5)
            .map(|_| {
                let (agent, args, template, barrier) = (
                    agent.clone(),
                    args.clone(),
                    template.clone(),
                    barrier.clone(),
                );
                tokio::spawn(async move {
                    barrier.wait().await;
                    agent
                        .op("wf", &template, "setOpsState", args, &["count", "names"])
                        .await
                })
            })
            .collect();
        let mut answers = Vec::new();
        for copy in copies {
            answers.push(copy.await.expect("the copy ran"));
        }
        let changed: Vec<String> = servers(&server)
            .await
            .iter()
            .filter(|g| ops_state(g) == "Maintaining")
            .filter_map(|g| g.metadata.name.clone())
            .filter(|n| !taken.contains(n))
            .collect();
        assert_eq!(
            changed.len(),
            1,
            "limit 1 however often it is sent: {changed:?}"
        );
        for a in &answers {
            succeeded(a);
            assert_eq!(output(a, "count"), "1", "{a}");
            assert_eq!(output(a, "names"), changed[0], "{a}");
        }
        // And once more, after the fact: the same answer.
        let later = agent
            .op("wf", &template, "setOpsState", args, &["count", "names"])
            .await;
        assert_eq!(output(&later, "names"), changed[0], "{later}");
        taken.extend(changed);
    }
}

#[tokio::test]
async fn what_would_hurt_is_refused_before_anything_changes() {
    let server = Server::start_fleet(&["--in-memory", "--sim-startup-ms", "100"]);
    server.kubectl_ok(&["apply", "-f", "-"], Some(MINECRAFT_GSS));
    all_ready(&server, 3).await;
    let agent = Agent::new(&server);
    let before = server.kubectl_ok(&["get", "gss", "minecraft", "-o", "json"], None);
    let cases = [
        (
            "setOpsState",
            json!({"select": {}, "opsState": "WaitToBeDeleteed"}),
            "not an opsState OpenKruiseGame defines",
        ),
        (
            "patchImage",
            json!({"image": "Registry.example.com/Game Server:v2"}),
            "is not an image reference",
        ),
    ];
    for (op, args, needle) in cases {
        for _ in 0..2 {
            let r = agent.op("wf", "bad", op, set(args.clone()), &[]).await;
            assert_eq!(phase(&r), "Failed", "{r}");
            assert!(message(&r).contains(needle), "{needle}: {r}");
        }
    }
    assert!(
        servers(&server)
            .await
            .iter()
            .all(|g| ops_state(g) == "None"),
        "no server was touched"
    );
    // A custom state, asked for in so many words, is set.
    let r = agent
        .op(
            "wf",
            "custom",
            "setOpsState",
            set(
                json!({"select": {"ids": "1"}, "opsState": "Quarantine", "allowCustomState": true}),
            ),
            &["names"],
        )
        .await;
    succeeded(&r);
    assert_eq!(output(&r, "names"), "minecraft-1");
    succeeded(&agent.op("wf", "exit", "unlock", set(json!({})), &[]).await);
    // RollingUpdate recreates servers, Allocated ones included: refused
    // unless the caller opts in, saying why.
    server.kubectl_ok(
        &[
            "patch",
            "gss",
            "minecraft",
            "--type=merge",
            "-p",
            r#"{"spec":{"updateStrategy":{"type":"RollingUpdate"}}}"#,
        ],
        None,
    );
    let r = agent
        .op(
            "wf2",
            "patch",
            "patchImage",
            set(json!({"image": NEW})),
            &[],
        )
        .await;
    assert_eq!(phase(&r), "Failed", "{r}");
    assert!(
        message(&r).contains("updates with RollingUpdate")
            && message(&r).contains("Allocated ones (live matches) included")
            && message(&r).contains("allowRollingUpdate: true"),
        "{r}"
    );
    let after: Value =
        serde_json::from_str(&server.kubectl_ok(&["get", "gss", "minecraft", "-o", "json"], None))
            .expect("json");
    let before: Value = serde_json::from_str(&before).expect("json");
    assert_eq!(
        after["spec"]["gameServerTemplate"], before["spec"]["gameServerTemplate"],
        "the image is unchanged"
    );
    let r = agent
        .op(
            "wf2",
            "patch-anyway",
            "patchImage",
            set(json!({"image": NEW, "allowRollingUpdate": true})),
            &[],
        )
        .await;
    succeeded(&r);
}

/// Bytes of all annotations of the set, as kube-apiserver counts them
/// (`len(key) + len(value)`, apimachinery `ValidateAnnotationsSize`).
async fn annotation_bytes(server: &Server) -> usize {
    let api: Api<gameops::api::GameServerSet> = Api::namespaced(server.client().await, "default");
    let gss = api.get("minecraft").await.expect("gss");
    gss.metadata
        .annotations
        .unwrap_or_default()
        .iter()
        .map(|(k, v)| k.len() + v.len())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_state_on_a_set_stays_small_after_many_calls_on_hundreds_of_servers() {
    let server = Server::start_fleet(&["--in-memory", "--sim-startup-ms", "50"]);
    server.kubectl_ok(&["apply", "-f", "-"], Some(MINECRAFT_GSS));
    server.kubectl_ok(&["scale", "gss", "minecraft", "--replicas", "400"], None);
    all_ready(&server, 400).await;
    let agent = Agent::new(&server);
    // Each call moves every other server (evens, then odds), so each
    // answer names 200 servers that interleave with the rest.
    let half = |odd: u64| {
        (0..400u64)
            .filter(|o| o % 2 == odd)
            .map(|o| o.to_string())
            .collect::<Vec<_>>()
            .join(",")
    };
    for call in 0..12u64 {
        let (from, to) = if call % 2 == 0 {
            ("None", "Maintaining")
        } else {
            ("Maintaining", "None")
        };
        let r = agent
            .op(
                "wf",
                &format!("call-{call}"),
                "setOpsState",
                set(json!({"select": {"opsState": from, "ids": half((call / 2) % 2)}, "opsState": to})),
                &["count", "names"],
            )
            .await;
        succeeded(&r);
        assert_eq!(output(&r, "count"), "200", "{r}");
    }
    let bytes = annotation_bytes(&server).await;
    assert!(
        bytes < 16 * 1024,
        "{bytes} bytes of annotations: far below kube-apiserver's 262144"
    );
    // A repeat of the last call still answers with every name.
    let r = agent
        .op(
            "wf",
            "call-11",
            "setOpsState",
            set(json!({"select": {"opsState": "Maintaining", "ids": half(1)}, "opsState": "None"})),
            &["count", "names"],
        )
        .await;
    assert!(message(&r).contains("already applied"), "{r}");
    assert_eq!(
        output(&r, "names").split(',').count(),
        output(&r, "count").parse::<usize>().unwrap_or(0),
        "{r}"
    );
}
