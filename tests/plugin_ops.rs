//! The executor plugin's release ops over HTTP against `gameops serve`'s
//! embedded fleet (controller + simulator), as Argo's agent calls them:
//! the seed scenario op by op, each mutating op sent three times, waiting
//! ops driven by their `requeue`, fail-fast on a crashing image, draining
//! around a live match, and rollback.
#![allow(
    clippy::too_many_lines,
    reason = "a scenario or a table reads best top to bottom"
)]

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::agent::{Agent, drive, message, output, phase, set, succeeded};
use common::{MINECRAFT_GSS, Server};
use gameops::api::{GameServer, GameServerSet, REVISION_LABEL};
use kube::api::{Api, ListParams};
use serde_json::{Value, json};

const FAST: &[&str] = &[
    "--in-memory",
    "--sim-startup-ms",
    "100",
    "--sim-jitter-ms",
    "50",
];
const OLD: &str = "registry.cn-hangzhou.aliyuncs.com/acs/minecraft-demo:1.12.2";
const NEW: &str = "registry.cn-hangzhou.aliyuncs.com/acs/minecraft-demo:1.12.2-new";
/// How long any wait in these tests may take before it counts as broken.
const DEADLINE: Duration = Duration::from_secs(60);

/// Name => (state, opsState, running image, revision label).
async fn fleet(api: &Api<GameServer>) -> BTreeMap<String, (String, String, String, String)> {
    let list = api
        .list(&ListParams::default().labels("game.kruise.io/owner-gss=minecraft"))
        .await
        .expect("list servers");
    list.items
        .iter()
        .filter(|g| g.metadata.deletion_timestamp.is_none())
        .map(|g| {
            let state = g.status.as_ref().and_then(|s| s.current_state.clone());
            let revision = g
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(REVISION_LABEL).cloned());
            (
                g.metadata.name.clone().unwrap_or_default(),
                (
                    state.unwrap_or_default(),
                    g.spec.ops_state.clone().unwrap_or_default(),
                    g.running_image().unwrap_or_default().to_owned(),
                    revision.unwrap_or_default(),
                ),
            )
        })
        .collect()
}

/// Polls the fleet until `check` holds, failing with `what` after [`DEADLINE`].
async fn eventually<F>(
    api: &Api<GameServer>,
    what: &str,
    check: F,
) -> BTreeMap<String, (String, String, String, String)>
where
    F: Fn(&BTreeMap<String, (String, String, String, String)>) -> bool,
{
    let deadline = Instant::now() + DEADLINE;
    loop {
        let f = fleet(api).await;
        if check(&f) {
            return f;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {f:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn all_ready_on(
    f: &BTreeMap<String, (String, String, String, String)>,
    n: usize,
    image: &str,
) -> bool {
    f.len() == n && f.values().all(|(s, _, i, _)| s == "Ready" && i == image)
}

async fn gss(server: &Server) -> GameServerSet {
    let api: Api<GameServerSet> = Api::namespaced(server.client().await, "default");
    api.get("minecraft").await.expect("gss")
}

fn template_image(gss: &GameServerSet) -> String {
    gss.spec
        .game_server_template
        .as_ref()
        .and_then(|t| t.pod_template.spec.as_ref())
        .and_then(|s| s.containers.first())
        .and_then(|c| c.image.clone())
        .unwrap_or_default()
}

fn history(gss: &GameServerSet) -> Vec<Value> {
    gss.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get("gameops.io/image-history"))
        .map(|h| serde_json::from_str(h).expect("history JSON"))
        .unwrap_or_default()
}

/// The seed's starting point: 3 Ready servers on the old image, minecraft-0 Allocated.
async fn seed_start(server: &Server) -> Api<GameServer> {
    server.kubectl_ok(&["apply", "-f", "-"], Some(MINECRAFT_GSS));
    let api: Api<GameServer> = Api::namespaced(server.client().await, "default");
    eventually(&api, "3 Ready old servers", |f| all_ready_on(f, 3, OLD)).await;
    server.kubectl_ok(
        &[
            "patch",
            "gs",
            "minecraft-0",
            "--type=merge",
            "-p",
            r#"{"spec":{"opsState":"Allocated"}}"#,
        ],
        None,
    );
    // A server Allocated by hand gets a player from the simulator.
    let deadline = Instant::now() + DEADLINE;
    while api
        .get("minecraft-0")
        .await
        .ok()
        .and_then(|g| g.status?.players)
        != Some(1)
    {
        assert!(
            Instant::now() < deadline,
            "minecraft-0 never got its player"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    api
}

#[tokio::test]
async fn seed_scenario_op_by_op_reaches_the_contract_table() {
    // Start-up long enough (transition times have whole seconds) that the
    // new servers are still starting when waitReady is first called.
    let server = Server::start_fleet(&[
        "--in-memory",
        "--sim-startup-ms",
        "1500",
        "--sim-jitter-ms",
        "200",
    ]);
    let api = seed_start(&server).await;
    let agent = Agent::new(&server);
    let uid = "seed-wf";

    // 1. patchImage, sent three times: applied once.
    let mut revision = String::new();
    for attempt in 0..3 {
        let r = agent
            .op(
                uid,
                "patch-image",
                "patchImage",
                set(json!({"image": NEW})),
                &["previousImage", "revision"],
            )
            .await;
        succeeded(&r);
        assert_eq!(output(&r, "previousImage"), OLD, "attempt {attempt}: {r}");
        revision = output(&r, "revision").to_owned();
        assert!(!revision.is_empty(), "{r}");
    }
    let g = gss(&server).await;
    assert_eq!(template_image(&g), NEW);
    assert_eq!(
        history(&g).len(),
        1,
        "one change, one history entry: {:?}",
        history(&g)
    );
    assert_eq!(history(&g)[0]["image"], OLD);
    assert_eq!(history(&g)[0]["container"], "minecraft");

    // 2. scale to 6, three times.
    for _ in 0..3 {
        let r = agent
            .op(
                uid,
                "scale-replicas",
                "scale",
                set(json!({"replicas": 6})),
                &["replicas"],
            )
            .await;
        succeeded(&r);
        assert_eq!(output(&r, "replicas"), "6");
    }
    assert_eq!(gss(&server).await.spec.replicas, 6);

    // 3. waitReady: Running with a requeue until 3 new servers are Ready.
    let (r, calls) = drive(
        &agent,
        uid,
        "check-pods-ready",
        "waitReady",
        set(json!({"image": NEW, "count": 3, "timeoutSeconds": 60})),
        &["ready"],
    )
    .await;
    succeeded(&r);
    assert_eq!(output(&r, "ready"), "3", "{r}");
    assert!(
        calls > 1,
        "the new servers take time to start: it must have waited ({calls} calls)"
    );
    let f = fleet(&api).await;
    for name in ["minecraft-3", "minecraft-4", "minecraft-5"] {
        assert_eq!(
            (f[name].0.as_str(), f[name].2.as_str()),
            ("Ready", NEW),
            "{f:?}"
        );
        assert_eq!(
            f[name].3, revision,
            "the revision output is the new servers' revision label"
        );
    }
    for name in ["minecraft-0", "minecraft-1", "minecraft-2"] {
        assert_eq!(f[name].2, OLD, "OnDelete keeps {name} on the old image");
    }

    // 4. setOpsState as GameServers-Updater, three times: the same answer.
    for attempt in 0..3 {
        let r = agent
            .op(
                uid,
                "gs-update",
                "setOpsState",
                set(
                    json!({"select": {"opsState": "None", "notImage": format!("minecraft/{NEW}")},
                    "opsState": "WaitToBeDeleted"}),
                ),
                &["count", "names"],
            )
            .await;
        succeeded(&r);
        assert_eq!(
            (output(&r, "count"), output(&r, "names")),
            ("2", "minecraft-1,minecraft-2"),
            "attempt {attempt}: {r}"
        );
    }

    // The end state is exactly CONTRACTS section 6.
    let table = server.kubectl_ok(&["get", "gs"], None);
    let rows: Vec<Vec<&str>> = table
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    let expected = [
        ["NAME", "STATE", "OPSSTATE", "DP", "UP"],
        ["minecraft-0", "Ready", "Allocated", "0", "0"],
        ["minecraft-1", "Ready", "WaitToBeDeleted", "0", "0"],
        ["minecraft-2", "Ready", "WaitToBeDeleted", "0", "0"],
        ["minecraft-3", "Ready", "None", "0", "0"],
        ["minecraft-4", "Ready", "None", "0", "0"],
        ["minecraft-5", "Ready", "None", "0", "0"],
    ];
    assert_eq!(rows.len(), expected.len(), "{table}");
    for (row, want) in rows.iter().zip(expected) {
        assert_eq!(row.get(..5), Some(&want[..]), "{table}");
    }
}

#[tokio::test]
async fn set_ops_state_replays_its_answer_and_honours_limit_and_dry_run() {
    let server = Server::start_fleet(FAST);
    server.kubectl_ok(
        &["apply", "-f", "-"],
        Some(&MINECRAFT_GSS.replace("replicas: 3", "replicas: 5")),
    );
    let api: Api<GameServer> = Api::namespaced(server.client().await, "default");
    eventually(&api, "5 Ready servers", |f| all_ready_on(f, 5, OLD)).await;
    let agent = Agent::new(&server);
    let select = json!({"opsState": "None", "image": format!("minecraft/{OLD}"), "ids": "1-4"});

    // Dry run: reports, changes nothing.
    let r = agent
        .op(
            "wf",
            "look",
            "setOpsState",
            set(json!({"select": select, "opsState": "Maintaining", "dryRun": true, "limit": "2"})),
            &["count", "names"],
        )
        .await;
    succeeded(&r);
    assert_eq!(
        (output(&r, "count"), output(&r, "names")),
        ("2", "minecraft-1,minecraft-2"),
        "{r}"
    );
    assert!(message(&r).starts_with("dry run"), "{r}");
    let f = fleet(&api).await;
    assert!(
        f.values().all(|v| v.1 == "None"),
        "a dry run changes nothing: {f:?}"
    );

    // limit 2: the lowest matching ordinals.
    let args = set(json!({"select": select, "opsState": "Maintaining", "limit": 2}));
    let r = agent
        .op(
            "wf",
            "maintain",
            "setOpsState",
            args.clone(),
            &["count", "names"],
        )
        .await;
    succeeded(&r);
    assert_eq!(output(&r, "names"), "minecraft-1,minecraft-2", "{r}");
    // Someone puts minecraft-1 back; a repeat of the call replays the
    // recorded answer: it neither re-selects (minecraft-3) nor re-applies.
    server.kubectl_ok(
        &[
            "patch",
            "gs",
            "minecraft-1",
            "--type=merge",
            "-p",
            r#"{"spec":{"opsState":"None"}}"#,
        ],
        None,
    );
    for _ in 0..2 {
        let again = agent
            .op(
                "wf",
                "maintain",
                "setOpsState",
                args.clone(),
                &["count", "names"],
            )
            .await;
        succeeded(&again);
        assert_eq!(
            output(&again, "names"),
            "minecraft-1,minecraft-2",
            "{again}"
        );
        assert!(message(&again).contains("not applied again"), "{again}");
    }
    let ops: BTreeMap<String, String> = fleet(&api)
        .await
        .into_iter()
        .map(|(n, v)| (n, v.1))
        .collect();
    assert_eq!(
        ops.values().map(String::as_str).collect::<Vec<_>>(),
        ["None", "None", "Maintaining", "None", "None"],
        "{ops:?}"
    );
    // Another template: a new call; ids and labels AND with the rest.
    let r = agent
        .op("wf", "maintain-4", "setOpsState",
            set(json!({"select": {"ids": [0, 4], "labels": {"game.kruise.io/owner-gss": "minecraft"},
                "currentState": "Ready", "networkDisabled": false}, "opsState": "Kill", "dryRun": "true"})),
            &["names"])
        .await;
    assert_eq!(output(&r, "names"), "minecraft-0,minecraft-4", "{r}");
}

#[tokio::test]
async fn wait_ready_fails_fast_when_the_new_version_crashes() {
    let mut args = FAST.to_vec();
    args.extend(["--sim-crash-image", "broken"]);
    let server = Server::start_fleet(&args);
    server.kubectl_ok(&["apply", "-f", "-"], Some(MINECRAFT_GSS));
    let api: Api<GameServer> = Api::namespaced(server.client().await, "default");
    eventually(&api, "3 Ready old servers", |f| all_ready_on(f, 3, OLD)).await;
    let agent = Agent::new(&server);
    let broken = "registry.example.com/minecraft:broken";
    succeeded(
        &agent
            .op(
                "wf",
                "patch",
                "patchImage",
                set(json!({"image": broken})),
                &[],
            )
            .await,
    );
    succeeded(
        &agent
            .op("wf", "scale", "scale", set(json!({"delta": 3})), &[])
            .await,
    );
    let started = Instant::now();
    let (r, _) = drive(
        &agent,
        "wf",
        "wait",
        "waitReady",
        set(json!({"count": 3, "timeoutSeconds": 600})),
        &["ready"],
    )
    .await;
    assert_eq!(phase(&r), "Failed", "{r}");
    assert!(
        r.get("requeue").is_none(),
        "a terminal failure carries no requeue: {r}"
    );
    assert!(
        message(&r).contains("is crashing")
            && message(&r).contains(broken)
            && message(&r).contains("Crash"),
        "{r}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "it failed fast, not at the 600 s timeout"
    );
    // The default image is the template's: the old servers do not count.
    let (r, _) = drive(
        &agent,
        "wf",
        "wait-old",
        "waitReady",
        set(json!({"image": OLD, "percent": 50, "timeoutSeconds": 60})),
        &["ready"],
    )
    .await;
    succeeded(&r);
    assert_eq!(output(&r, "ready"), "3", "{r}");
}

#[tokio::test]
async fn wait_ready_times_out_from_the_first_call_saying_what_it_saw() {
    let server = Server::start_fleet(FAST);
    server.kubectl_ok(&["apply", "-f", "-"], Some(MINECRAFT_GSS));
    let api: Api<GameServer> = Api::namespaced(server.client().await, "default");
    eventually(&api, "3 Ready servers", |f| all_ready_on(f, 3, OLD)).await;
    let agent = Agent::new(&server);
    let args = set(json!({"count": 5, "timeoutSeconds": 2}));
    let first = agent.op("wf", "wait", "waitReady", args.clone(), &[]).await;
    assert_eq!(phase(&first), "Running", "{first}");
    assert!(message(&first).contains("3/5 Ready"), "{first}");
    let started = Instant::now();
    let (r, _) = drive(&agent, "wf", "wait", "waitReady", args.clone(), &[]).await;
    assert_eq!(phase(&r), "Failed", "{r}");
    assert!(
        message(&r).contains("timed out after 2s") && message(&r).contains("3/5 Ready"),
        "{r}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the timeout counts from the first call"
    );
    // Sent again later (an agent restart), it does not start over.
    let again = agent.op("wf", "wait", "waitReady", args, &[]).await;
    assert_eq!(phase(&again), "Failed", "{again}");
    // percent of spec.replicas, rounded up: 100% of 3.
    let (r, _) = drive(
        &agent,
        "wf",
        "wait-all",
        "waitReady",
        set(json!({"percent": "100", "timeoutSeconds": "30"})),
        &["ready"],
    )
    .await;
    succeeded(&r);
    assert_eq!(output(&r, "ready"), "3");
}

#[tokio::test]
async fn drain_waits_for_the_match_then_retires_old_servers_once() {
    let server = Server::start_fleet(FAST);
    let api = seed_start(&server).await;
    let agent = Agent::new(&server);
    let uid = "release";
    succeeded(
        &agent
            .op(uid, "patch", "patchImage", set(json!({"image": NEW})), &[])
            .await,
    );
    succeeded(
        &agent
            .op(uid, "scale", "scale", set(json!({"replicas": 6})), &[])
            .await,
    );
    eventually(&api, "3 new servers Ready", |f| {
        f.values().filter(|v| v.0 == "Ready" && v.2 == NEW).count() == 3
    })
    .await;
    let drain = set(
        json!({"notImage": format!("minecraft/{NEW}"), "then": "WaitToBeDeleted",
        "scaleDown": true, "timeoutSeconds": 120}),
    );
    // Sent three times while minecraft-0 is in its match: idle old servers
    // go at once, the match is left alone, replicas drop once by 2.
    for attempt in 0..3 {
        let r = agent
            .op(
                uid,
                "drain",
                "drain",
                drain.clone(),
                &["drained", "remaining"],
            )
            .await;
        assert_eq!(phase(&r), "Running", "attempt {attempt}: {r}");
        assert!(r["requeue"].is_string(), "{r}");
        assert!(
            message(&r).contains("1 server still in matches: minecraft-0 (Allocated, 1 player)")
                && message(&r).contains("2 old-version servers moved to WaitToBeDeleted"),
            "attempt {attempt}: {r}"
        );
    }
    assert_eq!(
        gss(&server).await.spec.replicas,
        4,
        "lowered once by the 2 moved"
    );
    let f = eventually(&api, "the 2 idle old servers deleted", |f| f.len() == 4).await;
    assert_eq!(
        f["minecraft-0"].1, "Allocated",
        "the server in a match is untouched"
    );

    // Another workflow cannot act on the set meanwhile.
    let other = agent
        .op(
            "someone-else",
            "x",
            "setOpsState",
            set(json!({"select": {}, "opsState": "Kill"})),
            &[],
        )
        .await;
    assert_eq!(phase(&other), "Failed", "{other}");
    assert!(
        message(&other).contains("being released by workflow default/wf-release"),
        "{other}"
    );

    // The match ends: opsState None, no players.
    server.kubectl_ok(
        &[
            "patch",
            "gs",
            "minecraft-0",
            "--type=merge",
            "-p",
            r#"{"spec":{"opsState":"None"}}"#,
        ],
        None,
    );
    server.kubectl_ok(
        &[
            "patch",
            "gs",
            "minecraft-0",
            "--subresource=status",
            "--type=merge",
            "-p",
            r#"{"status":{"players":0}}"#,
        ],
        None,
    );
    let (r, _) = drive(
        &agent,
        uid,
        "drain",
        "drain",
        drain.clone(),
        &["drained", "remaining"],
    )
    .await;
    succeeded(&r);
    assert_eq!(
        (output(&r, "drained"), output(&r, "remaining")),
        ("3", "0"),
        "{r}"
    );
    let g = gss(&server).await;
    assert_eq!(g.spec.replicas, 3);
    assert!(
        !g.metadata
            .annotations
            .unwrap_or_default()
            .contains_key("gameops.io/waits"),
        "a finished drain leaves no progress behind"
    );
    let f = eventually(&api, "only the new servers left", |f| f.len() == 3).await;
    assert!(f.values().all(|v| v.2 == NEW && v.1 == "None"), "{f:?}");
    // Repeats replay the answer.
    let again = agent
        .op(uid, "drain", "drain", drain, &["drained", "remaining"])
        .await;
    succeeded(&again);
    assert_eq!(output(&again, "drained"), "3", "{again}");
    assert_eq!(gss(&server).await.spec.replicas, 3, "not lowered again");
}

#[tokio::test]
async fn drain_reports_what_is_left_at_its_timeout() {
    let server = Server::start_fleet(FAST);
    let api = seed_start(&server).await;
    let agent = Agent::new(&server);
    let (r, calls) = drive(
        &agent,
        "wf",
        "drain",
        "drain",
        set(json!({"image": format!("minecraft/{OLD}"), "then": "Kill", "timeoutSeconds": 2})),
        &[],
    )
    .await;
    assert_eq!(phase(&r), "Failed", "{r}");
    assert!(calls > 1, "it waited before giving up");
    assert!(
        message(&r).contains(
            "timed out after 2s: 1 server still in matches: minecraft-0 (Allocated, 1 player)"
        ),
        "{r}"
    );
    // Kill: the controller removed the idle ones and lowered replicas itself.
    let f = eventually(&api, "only minecraft-0 left", |f| f.len() == 1).await;
    assert_eq!(f["minecraft-0"].1, "Allocated");
    assert_eq!(gss(&server).await.spec.replicas, 1);
}

#[tokio::test]
async fn rollback_restores_the_previous_image_once() {
    let server = Server::start_fleet(FAST);
    server.kubectl_ok(&["apply", "-f", "-"], Some(MINECRAFT_GSS));
    let agent = Agent::new(&server);
    let none = agent
        .op("wf", "undo-early", "rollback", set(json!({})), &["image"])
        .await;
    assert_eq!(phase(&none), "Failed", "{none}");
    assert!(
        message(&none).contains("no image history for container minecraft"),
        "{none}"
    );

    succeeded(
        &agent
            .op("wf", "v2", "patchImage", set(json!({"image": NEW})), &[])
            .await,
    );
    // Patching to the same image (written differently) changes nothing.
    let same = agent
        .op(
            "wf",
            "v2-again",
            "patchImage",
            set(json!({"container": "minecraft", "image": NEW})),
            &["previousImage"],
        )
        .await;
    succeeded(&same);
    assert!(message(&same).contains("nothing changed"), "{same}");
    assert_eq!(history(&gss(&server).await).len(), 1);
    let bad = agent
        .op(
            "wf",
            "v3",
            "patchImage",
            set(json!({"container": "mc", "image": "x:1"})),
            &[],
        )
        .await;
    assert_eq!(phase(&bad), "Failed", "{bad}");
    assert!(
        message(&bad).contains("its containers are: minecraft"),
        "{bad}"
    );

    for _ in 0..3 {
        let r = agent
            .op(
                "wf",
                "undo",
                "rollback",
                set(json!({})),
                &["image", "previousImage"],
            )
            .await;
        succeeded(&r);
        assert_eq!(
            (output(&r, "image"), output(&r, "previousImage")),
            (OLD, NEW),
            "{r}"
        );
    }
    let g = gss(&server).await;
    assert_eq!(template_image(&g), OLD);
    let h = history(&g);
    assert_eq!(h.len(), 2, "the rollback is recorded once: {h:?}");
    assert_eq!(h[1]["image"], NEW);
    // And back again by name.
    let r = agent
        .op(
            "wf",
            "redo",
            "rollback",
            set(json!({"toImage": NEW})),
            &["image"],
        )
        .await;
    succeeded(&r);
    assert_eq!(template_image(&gss(&server).await), NEW);
}

#[tokio::test]
async fn the_new_ops_answer_bad_arguments_with_a_fix() {
    let server = Server::start_fleet(FAST);
    server.kubectl_ok(&["apply", "-f", "-"], Some(MINECRAFT_GSS));
    let agent = Agent::new(&server);
    let cases = [
        ("patchImage", json!({}), "patchImage.image is missing"),
        (
            "patchImage",
            json!({"image": "x:1", "tag": "v"}),
            "unknown field `tag`",
        ),
        (
            "waitReady",
            json!({"timeoutSeconds": 9}),
            "exactly one of count",
        ),
        (
            "waitReady",
            json!({"count": "three", "timeoutSeconds": 9}),
            "whole number",
        ),
        (
            "setOpsState",
            json!({"select": {}}),
            "setOpsState.opsState is missing",
        ),
        (
            "setOpsState",
            json!({"opsState": "Kill"}),
            "setOpsState.select is missing",
        ),
        (
            "setOpsState",
            json!({"select": {"notImage": NEW}, "opsState": "Kill"}),
            "which the set's template does not have (its containers: minecraft)",
        ),
        (
            "drain",
            json!({"notImage": format!("minecraft/{NEW}"), "timeoutSeconds": 9}),
            "drain.then is missing",
        ),
        ("rollback", json!({"steps": 1, "toImage": OLD}), "not both"),
        (
            "rolout",
            json!({}),
            "the ops are patchImage, scale, waitReady, setOpsState, drain, rollback, status",
        ),
    ];
    for (op, args, needle) in cases {
        let r = agent.op("wf", "bad", op, set(args.clone()), &[]).await;
        assert_eq!(phase(&r), "Failed", "{op} {args}: {r}");
        assert!(message(&r).contains(needle), "{op} {args}: {r}");
        assert!(r.get("requeue").is_none(), "{r}");
    }
    let g = gss(&server).await;
    assert_eq!(
        (g.spec.replicas, template_image(&g)),
        (3, OLD.to_owned()),
        "nothing changed"
    );
}
