//! The executor plugin over HTTP, as Argo's agent calls it: protocol rules
//! of CONTRACTS section 1, idempotency under retries, the release lease and
//! concurrent calls, against `gameops serve`'s embedded fleet.
#![allow(
    clippy::too_many_lines,
    reason = "a scenario or a table reads best top to bottom"
)]

mod common;

use common::agent::{Agent, message, output, phase, request};
use common::{MINECRAFT_GSS, Server};
use serde_json::{Value, json};

const FAST: &[&str] = &[
    "--in-memory",
    "--sim-startup-ms",
    "100",
    "--sim-jitter-ms",
    "50",
];

fn replicas(server: &Server) -> String {
    server.kubectl_ok(
        &["get", "gss", "minecraft", "-o", "jsonpath={.spec.replicas}"],
        None,
    )
}

#[tokio::test]
async fn protocol_rules_as_argo_reads_them() {
    let server = Server::start_fleet(FAST);
    server.kubectl_ok(&["apply", "-f", "-"], Some(MINECRAFT_GSS));
    let agent = Agent::new(&server);
    let scale = json!({"gameops": {"scale": {"gameServerSet": "minecraft", "delta": 1}}});

    // 403 without the agent's token, or with another.
    let body = request("u1", "t", scale.clone(), &[]).to_string();
    assert_eq!(agent.raw(None, body.clone()).await.status().as_u16(), 403);
    assert_eq!(
        agent
            .raw(Some("not-the-token"), body)
            .await
            .status()
            .as_u16(),
        403
    );
    assert_eq!(replicas(&server), "3", "a refused call changes nothing");

    // Another plugin's template, or none: 200 {}.
    let other = agent
        .call("u1", "t", json!({"slack": {"text": "hi"}}), &[])
        .await;
    assert_eq!(other, json!({}));
    let r = agent
        .raw(
            Some(&agent.token),
            json!({"workflow": {}, "template": {"name": "c"}}).to_string(),
        )
        .await;
    assert_eq!(
        (r.status().as_u16(), r.json::<Value>().await.unwrap()),
        (200, json!({}))
    );

    // Malformed JSON: 400.
    assert_eq!(
        agent
            .raw(Some(&agent.token), "{\"workflow\":".into())
            .await
            .status()
            .as_u16(),
        400
    );

    // Bad arguments: 200, Failed, a message naming the field and the fix, no requeue.
    let cases = [
        (
            json!({"gameops": {"rollout": {"gameServerSet": "minecraft"}}}),
            "the ops are patchImage, scale, waitReady, setOpsState, drain, rollback, status",
        ),
        (
            json!({"gameops": {"scale": {"gameServerSet": "minecraft"}, "status": {}}}),
            "exactly one op",
        ),
        (
            json!({"gameops": {"scale": {"delta": 1}}}),
            "plugin.gameops.scale.gameServerSet is missing",
        ),
        (
            json!({"gameops": {"scale": {"gameServerSet": "nope", "delta": 1}}}),
            "GameServerSet default/nope does not exist",
        ),
        (
            json!({"gameops": {"scale": {"gameServerSet": "minecraft", "delta": "three"}}}),
            "plugin.gameops.scale: expected a whole number",
        ),
        (
            json!({"gameops": {"scale": {"gameServerSet": "minecraft", "replica": 3}}}),
            "unknown field `replica`",
        ),
        (
            json!({"gameops": {"scale": {"gameServerSet": "minecraft", "delta": -9}}}),
            "cannot be negative",
        ),
        (
            json!({"gameops": {"scale": {"gameServerSet": "minecraft", "cluster": "mars", "delta": 1}}}),
            "known: gameops",
        ),
        (
            json!({"gameops": {"status": "minecraft"}}),
            "must be an object",
        ),
    ];
    for (plugin, needle) in cases {
        let reply = agent.call("u1", "bad", plugin.clone(), &[]).await;
        assert_eq!(phase(&reply), "Failed", "{plugin}: {reply}");
        assert!(message(&reply).contains(needle), "{plugin}: {reply}");
        assert!(
            reply.get("requeue").is_none(),
            "no requeue on a terminal failure: {reply}"
        );
    }
    assert_eq!(replicas(&server), "3", "no bad call changed anything");

    // Outputs: only declared ones, as strings.
    let reply = agent.call("u1", "scale-up", scale, &["replicas"]).await;
    assert_eq!(phase(&reply), "Succeeded", "{reply}");
    assert_eq!(
        reply["node"]["outputs"],
        json!({"parameters": [{"name": "replicas", "value": "4"}]})
    );
}

#[tokio::test]
async fn repeated_calls_apply_once() {
    let server = Server::start_fleet(FAST);
    server.kubectl_ok(&["apply", "-f", "-"], Some(MINECRAFT_GSS));
    let agent = Agent::new(&server);
    let scale = json!({"gameops": {"scale": {"gameServerSet": "minecraft", "delta": 3}}});
    for attempt in 0..3 {
        let reply = agent
            .call("wf-1", "scale-up", scale.clone(), &["replicas"])
            .await;
        assert_eq!(phase(&reply), "Succeeded", "{reply}");
        assert_eq!(
            output(&reply, "replicas"),
            "6",
            "attempt {attempt}: {reply}"
        );
    }
    assert_eq!(
        replicas(&server),
        "6",
        "scale delta 3 sent three times scales once"
    );
    // The same arguments from another template (or workflow) are a new call.
    agent
        .call("wf-1", "scale-up-again", scale.clone(), &[])
        .await;
    assert_eq!(replicas(&server), "9");
    // The record lives on the set, so it survives a plugin restart.
    let ops = server.kubectl_ok(
        &[
            "get",
            "gss",
            "minecraft",
            "-o",
            "jsonpath={.metadata.annotations.gameops\\.io/ops}",
        ],
        None,
    );
    let records: Value = serde_json::from_str(&ops).expect("records JSON");
    assert_eq!(records.as_object().map(|o| o.len()), Some(2), "{records}");
}

#[tokio::test]
async fn one_release_at_a_time_per_set() {
    let server = Server::start_fleet(FAST);
    server.kubectl_ok(&["apply", "-f", "-"], Some(MINECRAFT_GSS));
    let agent = Agent::new(&server);
    let scale = |d: i32| json!({"gameops": {"scale": {"gameServerSet": "minecraft", "delta": d}}});
    let first = agent.call("holder-uid", "a", scale(1), &[]).await;
    assert_eq!(phase(&first), "Succeeded", "{first}");
    let other = agent.call("other-uid", "b", scale(1), &[]).await;
    assert_eq!(phase(&other), "Failed", "{other}");
    assert!(
        message(&other)
            .contains("being released by workflow default/wf-holder-uid (uid holder-uid)"),
        "{other}"
    );
    // Read-only ops are not blocked; the holder's own calls pass.
    let status = agent
        .call(
            "other-uid",
            "look",
            json!({"gameops": {"status": {"gameServerSet": "minecraft"}}}),
            &[],
        )
        .await;
    assert_eq!(phase(&status), "Succeeded", "{status}");
    let again = agent.call("holder-uid", "c", scale(1), &[]).await;
    assert_eq!(phase(&again), "Succeeded", "{again}");
    assert_eq!(replicas(&server), "5");
}

#[tokio::test]
async fn sixteen_concurrent_calls_each_apply_once() {
    let server = Server::start_fleet(FAST);
    server.kubectl_ok(&["apply", "-f", "-"], Some(MINECRAFT_GSS));
    let agent = std::sync::Arc::new(Agent::new(&server));
    let mut calls = Vec::new();
    for i in 0..16 {
        let agent = agent.clone();
        calls.push(tokio::spawn(async move {
            let scale = json!({"gameops": {"scale": {"gameServerSet": "minecraft", "delta": 1}}});
            // Each template twice at once: a retry racing its original.
            let step = format!("step-{i}");
            let (a, b) = tokio::join!(
                agent.call("wf", &step, scale.clone(), &[]),
                agent.call("wf", &step, scale.clone(), &[]),
            );
            (a, b)
        }));
    }
    for call in calls {
        let (a, b) = call.await.expect("task");
        assert_eq!(
            (phase(&a), phase(&b)),
            ("Succeeded", "Succeeded"),
            "{a} {b}"
        );
    }
    assert_eq!(
        replicas(&server),
        "19",
        "16 distinct steps, each applied once"
    );
}

#[tokio::test]
async fn status_summarises_images_and_states() {
    let server = Server::start_fleet(FAST);
    server.kubectl_ok(&["apply", "-f", "-"], Some(MINECRAFT_GSS));
    let agent = Agent::new(&server);
    let plugin = json!({"gameops": {"status": {"gameServerSet": "minecraft"}}});
    let reply = loop {
        let reply = agent
            .call(
                "wf",
                "status",
                plugin.clone(),
                &["summary", "total", "ready"],
            )
            .await;
        if output(&reply, "ready") == "3" {
            break reply;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert_eq!(output(&reply, "total"), "3");
    let summary: Value = serde_json::from_str(output(&reply, "summary")).expect("summary JSON");
    assert_eq!(
        summary["registry.cn-hangzhou.aliyuncs.com/acs/minecraft-demo:1.12.2"]["Ready"],
        3
    );
    assert!(
        message(&reply).starts_with("minecraft: 3 servers;"),
        "{reply}"
    );
}
