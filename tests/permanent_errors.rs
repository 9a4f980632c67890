//! Errors that won't go away fail the step (issue 11 item 12). Argo never
//! times out a plugin node left `Running`, so a refusal answered "Running,
//! retry in 5 s" hangs the workflow for ever. Against the embedded server
//! (and `gameops plugin` pointed at it through a front that plays RBAC,
//! or at an API server that is down or hangs): a missing verb, a missing
//! set, an unreadable field or annotation and a write the API server
//! refuses are answered `Failed` at once, naming the cause and the fix; an
//! unreachable API server is retried a few times, then fails; every answer
//! arrives well within Argo's 30 s; slow registry work goes on across
//! requeues and a repeat collects it.
#![allow(clippy::too_many_lines, reason = "a scenario reads best top to bottom")]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::agent::{Agent, message, output, phase};
use common::registry::{Front, Registry};
use common::sidecar::Sidecar;
use common::{MINECRAFT_GSS, Server, apifront, free_port};
use gameops::api::GameServerSet;
use kube::api::{Api, Patch, PatchParams};
use serde_json::{Value, json};

/// Argo's agent gives up after 30 s; every answer must come within 20 s.
const PROMISE: Duration = Duration::from_secs(20);

/// Calls `op` and checks the answer came within [`PROMISE`].
async fn timed(agent: &Agent, uid: &str, template: &str, op: &str, args: Value) -> Value {
    timed_with(agent, uid, template, op, args, &[]).await
}

/// [`timed`], declaring `outputs`.
async fn timed_with(
    agent: &Agent,
    uid: &str,
    template: &str,
    op: &str,
    args: Value,
    outputs: &[&str],
) -> Value {
    let started = Instant::now();
    let reply = agent.op(uid, template, op, args, outputs).await;
    let took = started.elapsed();
    assert!(
        took < PROMISE,
        "{op} answered after {took:?}, beyond the 20 s promise: {reply}"
    );
    reply
}

fn no_requeue(reply: &Value) -> bool {
    reply.get("requeue").is_none_or(Value::is_null)
}

/// The server's kubeconfig, pointed at `host` instead of the server.
fn kubeconfig_via(server: &Server, host: &str) -> String {
    std::fs::read_to_string(server.kubeconfig())
        .expect("kubeconfig")
        .replace(&format!("127.0.0.1:{}", server.api_port), host)
}

#[tokio::test]
async fn a_missing_verb_fails_naming_the_verb_resource_and_rbac_file() {
    let server = Server::start_fleet(&["--in-memory"]);
    server.kubectl_ok(&["apply", "-f", "-"], Some(MINECRAFT_GSS));
    // The plugin's ServiceAccount may read sets but not patch them.
    let front = apifront::start(server.url(), &[("patch", "gameserversets")]).await;
    let sidecar = Sidecar::start(&kubeconfig_via(&server, &front), &[]);
    let agent = sidecar.agent();

    let reply = timed(
        &agent,
        "uid-rbac",
        "scale-up",
        "scale",
        json!({"gameServerSet": "minecraft", "delta": "2"}),
    )
    .await;
    assert_eq!(phase(&reply), "Failed", "{reply}\n{}", sidecar.log());
    assert!(no_requeue(&reply), "a refusal is not retried: {reply}");
    let m = message(&reply);
    for needed in [
        "may not patch gameserversets",
        "game.kruise.io",
        "namespace default",
        "manifests/rbac-executor-plugin.yaml",
        apifront::USER,
    ] {
        assert!(m.contains(needed), "{needed:?} missing from: {m}");
    }
    // Nothing changed.
    let replicas = server.kubectl_ok(
        &["get", "gss", "minecraft", "-o", "jsonpath={.spec.replicas}"],
        None,
    );
    assert_eq!(replicas, "3");

    // Credentials the API server does not accept at all: 401, also final.
    // (With a token the embedded server speaks TLS; the sidecar talks to it
    // directly, trusting its CA from the kubeconfig.)
    let secrets = tempfile::tempdir().expect("dir");
    let token_file = secrets.path().join("api-token");
    let token = "api-token-for-tests-0123456789";
    std::fs::write(&token_file, token).expect("token");
    let server = Server::start_fleet(&[
        "--in-memory",
        "--api-token-file",
        &token_file.display().to_string(),
    ]);
    let kubeconfig = std::fs::read_to_string(server.kubeconfig()).expect("kubeconfig");
    assert!(kubeconfig.contains(token), "{kubeconfig}");
    let wrong = Sidecar::start(&kubeconfig.replace(token, "not-the-token"), &[]);
    let reply = timed(
        &wrong.agent(),
        "uid-401",
        "scale-up",
        "scale",
        json!({"gameServerSet": "minecraft", "delta": "2"}),
    )
    .await;
    assert_eq!(phase(&reply), "Failed", "{reply}");
    assert!(no_requeue(&reply));
    assert!(message(&reply).contains("credentials"), "{reply}");
}

#[tokio::test]
async fn a_missing_set_fails_at_once() {
    let server = Server::start_fleet(&["--in-memory"]);
    let agent = Agent::new(&server);
    for (op, args) in [
        ("scale", json!({"gameServerSet": "nope", "delta": "1"})),
        (
            "waitReady",
            json!({"gameServerSet": "nope", "count": "1", "timeoutSeconds": "60"}),
        ),
        (
            "setOpsState",
            json!({"gameServerSet": "nope", "opsState": "Maintaining", "select": {}}),
        ),
    ] {
        let reply = timed(&agent, "uid-missing", op, op, args).await;
        assert_eq!(phase(&reply), "Failed", "{op}: {reply}");
        assert!(no_requeue(&reply));
        assert!(
            message(&reply).contains("default/nope does not exist"),
            "{op}: {reply}"
        );
    }
}

#[tokio::test]
async fn values_that_cannot_be_read_fail_naming_the_field() {
    // The API only (no controller): nothing else trips over the set.
    let server = Server::start(&["--in-memory"]);
    let agent = Agent::new(&server);
    // A replica count outside int32 never gets stored, as on kube-apiserver
    // (422 naming the field; before, it was stored and made the set
    // unreadable for ever): nothing is created.
    let huge = MINECRAFT_GSS.replace("replicas: 3", "replicas: 3000000000");
    let out = server.kubectl_stdin(&["apply", "-f", "-"], Some(&huge));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            ".spec.replicas: Invalid value: 3000000000: should be less than or equal to 2147483647"
        ),
        "{err}"
    );
    let listed = server.kubectl_ok(&["get", "gss", "-o", "name"], None);
    assert_eq!(listed.trim(), "", "nothing was created");

    // An annotation gameops wrote that someone edited into garbage.
    let other = MINECRAFT_GSS.replace("name: minecraft\n  namespace", "name: edited\n  namespace");
    server.kubectl_ok(&["apply", "-f", "-"], Some(&other));
    server.kubectl_ok(
        &[
            "annotate",
            "gss",
            "edited",
            "gameops.io/lease={\"holder\": 7",
        ],
        None,
    );
    let reply = timed(
        &agent,
        "uid-lease",
        "scale-up",
        "scale",
        json!({"gameServerSet": "edited", "delta": "1"}),
    )
    .await;
    assert_eq!(phase(&reply), "Failed", "{reply}");
    assert!(no_requeue(&reply));
    let m = message(&reply);
    assert!(
        m.contains("gameops.io/lease")
            && m.contains("kubectl annotate gss edited -n default gameops.io/lease-"),
        "{m}"
    );
}

#[tokio::test]
async fn a_write_the_api_server_refuses_fails_naming_it() {
    let server = Server::start_fleet(&["--in-memory"]);
    server.kubectl_ok(&["apply", "-f", "-"], Some(MINECRAFT_GSS));
    // Someone else filled the set's annotations to just under
    // kube-apiserver's 256 KiB: the plugin's own bookkeeping no longer fits.
    let api: Api<GameServerSet> = Api::namespaced(server.client().await, "default");
    let gss = api.get("minecraft").await.expect("the set");
    let used: usize = gss
        .metadata
        .annotations
        .iter()
        .flatten()
        .map(|(k, v)| k.len() + v.len())
        .sum();
    let key = "example.com/blob";
    let blob = "x".repeat(262_144 - used - key.len() - 16);
    api.patch(
        "minecraft",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"annotations": {key: blob}}})),
    )
    .await
    .expect("the annotations still fit");

    let agent = Agent::new(&server);
    let reply = timed(
        &agent,
        "uid-422",
        "scale-up",
        "scale",
        json!({"gameServerSet": "minecraft", "delta": "1"}),
    )
    .await;
    assert_eq!(phase(&reply), "Failed", "{reply}");
    assert!(no_requeue(&reply));
    let m = message(&reply);
    assert!(
        m.contains("422") && m.contains("metadata.annotations") && m.contains("256 KiB"),
        "{m}"
    );
    let replicas = server.kubectl_ok(
        &["get", "gss", "minecraft", "-o", "jsonpath={.spec.replicas}"],
        None,
    );
    assert_eq!(replicas, "3", "nothing was written");
}

#[tokio::test]
async fn an_unreachable_api_server_is_retried_a_few_times_then_fails() {
    let server = Server::start_fleet(&["--in-memory"]);
    // Nobody listens there: connection refused, every time.
    let down = format!("127.0.0.1:{}", free_port());
    let sidecar = Sidecar::start(&kubeconfig_via(&server, &down), &[]);
    let agent = sidecar.agent();
    let args = json!({"gameServerSet": "minecraft", "delta": "1"});
    let mut phases = Vec::new();
    let mut last = Value::Null;
    for _ in 0..10 {
        last = timed(&agent, "uid-down", "scale-up", "scale", args.clone()).await;
        phases.push(phase(&last).to_owned());
        if phase(&last) != "Running" {
            break;
        }
        assert!(
            last["requeue"].is_string(),
            "a transient failure is requeued: {last}"
        );
        assert!(message(&last).contains("attempt"), "{last}");
    }
    assert!(
        phases.len() >= 3 && phases[..phases.len() - 1].iter().all(|p| p == "Running"),
        "Running a few times first: {phases:?}"
    );
    assert_eq!(phase(&last), "Failed", "then Failed: {phases:?} {last}");
    assert!(no_requeue(&last));
    let m = message(&last);
    assert!(
        m.contains("did not answer") && m.contains("gave up after"),
        "the cause is named: {m}"
    );
}

#[tokio::test]
async fn a_hanging_api_server_is_answered_in_time_and_the_work_goes_on() {
    let server = Server::start_fleet(&["--in-memory"]);
    // Accepts connections and never answers.
    let hole = apifront::black_hole().await;
    let sidecar = Sidecar::start(&kubeconfig_via(&server, &hole), &[]);
    let agent = sidecar.agent();
    let args = json!({"gameServerSet": "minecraft", "delta": "1"});
    let first = timed(&agent, "uid-hang", "scale-up", "scale", args.clone()).await;
    assert_eq!(phase(&first), "Running", "{first}");
    assert!(first["requeue"].is_string(), "{first}");
    assert!(message(&first).contains("still working"), "{first}");
    // The repeat finds the same work still going on (it did not start over).
    let second = timed(&agent, "uid-hang", "scale-up", "scale", args).await;
    assert_eq!(phase(&second), "Running", "{second}");
    let m = message(&second);
    let started: u64 = m
        .split("started ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("the answer says when the work started: {m}"));
    assert!(started >= 10, "the work began with the first call: {m}");
}

#[tokio::test]
async fn slow_registry_work_goes_on_across_requeues() {
    let registry = Registry::start();
    let repository = format!("{}/game/server", registry.host);
    let pusher = gameops::registry::Resolver::new(Arc::new(
        gameops::registry::config::Config::parse(
            &format!("registries:\n{}", registry.config_entry()),
            std::path::Path::new("gameops.yaml"),
        )
        .expect("config"),
    ))
    .expect("resolver");
    let digest = pusher
        .client()
        .push_image(&repository, "v1.0.0", b"v1.0.0".to_vec())
        .await
        .expect("push");

    // Every request through the front waits 9 s: resolving a tag takes at
    // least two (the tag list, then the digest), longer than a call may.
    let (slow, seen) = common::registry::front_with_counter(
        registry.host.clone(),
        Front {
            delay: Some(Duration::from_secs(9)),
            ..Default::default()
        },
    )
    .await;
    let dir = tempfile::tempdir().expect("dir");
    let config = dir.path().join("gameops.yaml");
    std::fs::write(
        &config,
        format!("registries:\n  - {{host: \"{slow}\", insecure: true}}\n"),
    )
    .expect("config");
    let server = Server::start(&["--in-memory", "--config", &config.display().to_string()]);
    let agent = Agent::new(&server);
    let args =
        json!({"repository": format!("{slow}/game/server"), "filter": {"semver": ">=1.0.0"}});

    let outputs = ["tag", "digest", "image"];
    let first = timed_with(
        &agent,
        "uid-slow",
        "resolve",
        "resolveTag",
        args.clone(),
        &outputs,
    )
    .await;
    assert_eq!(phase(&first), "Running", "{first}");
    assert!(first["requeue"].is_string(), "{first}");
    let mut last = first;
    let started = Instant::now();
    while phase(&last) == "Running" && started.elapsed() < Duration::from_secs(90) {
        tokio::time::sleep(Duration::from_secs(2)).await;
        last = timed_with(
            &agent,
            "uid-slow",
            "resolve",
            "resolveTag",
            args.clone(),
            &outputs,
        )
        .await;
    }
    assert_eq!(phase(&last), "Succeeded", "{last}");
    assert_eq!(output(&last, "tag"), "v1.0.0");
    assert_eq!(output(&last, "digest"), digest);
    let requests = seen.load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        requests <= 4,
        "the repeats collected the first call's work rather than starting over: {requests} registry requests"
    );
}
