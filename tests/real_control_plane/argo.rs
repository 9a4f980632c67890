//! Workflows through Argo's own workflow controller (v4, built from its
//! published module by scripts/real-stack) and its agent pod, run by
//! `node.rs` as kubelet would run it: `argoexec agent init`, `argoexec agent
//! main` and the gameops sidecar exactly as `plugin/`'s ConfigMap declares it.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{
    ARGO_NS, REPO, SECOND_STACK, STACK, fleet_attached, fleet_exclusive, fleet_table,
    manifests_applied, minecraft_with_an_allocated_server, node, pinned, the_examples_end_table,
};

/// The image `plugin/` and `manifests/` name for the sidecar.
const GAMEOPS_IMAGE: &str = concat!("ghcr.io/gameops/gameops:", env!("CARGO_PKG_VERSION"));

/// The node, with the two images an agent pod needs: Argo's executor (as
/// the controller names it) and gameops.
fn node_for_agents() -> node::Node {
    let out = std::process::Command::new(format!("{REPO}/scripts/real-stack"))
        .args(["path", "argoexec"])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("scripts/real-stack path runs");
    assert!(
        out.status.success(),
        "scripts/real-stack path argoexec: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let argoexec = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let version = pinned("argo", "github.com/argoproj/argo-workflows/v4");
    let executor = format!("quay.io/argoproj/argoexec:{version}");
    node::Node::start(
        &STACK.kubeconfig,
        &STACK.dir.join("node"),
        &[
            (executor.as_str(), Path::new(&argoexec)),
            (GAMEOPS_IMAGE, Path::new(env!("CARGO_BIN_EXE_gameops"))),
        ],
    )
}

/// `kubectl create -n argo -f -` of `workflow`; the Workflow's name.
fn create_workflow(workflow: &str) -> String {
    let created = STACK.ok(
        &[
            "create",
            "-n",
            ARGO_NS,
            "-f",
            "-",
            "-o",
            "jsonpath={.metadata.name}",
        ],
        Some(workflow),
    );
    created.trim().to_owned()
}

fn workflow(name: &str) -> Value {
    STACK.json(
        &["get", "workflow", name, "-n", ARGO_NS, "-o", "json"],
        None,
    )
}

/// The Workflow once it has a phase that `done` accepts (at most `limit`).
fn workflow_when(name: &str, limit: Duration, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + limit;
    loop {
        let wf = workflow(name);
        if done(&wf) || Instant::now() > deadline {
            return wf;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Each node of a Workflow's status as `templateName phase message`.
fn nodes(wf: &Value) -> Vec<String> {
    let mut lines: Vec<String> = wf["status"]["nodes"]
        .as_object()
        .map(|nodes| {
            nodes
                .values()
                .map(|n| {
                    format!(
                        "{} {} {}",
                        n["templateName"].as_str().unwrap_or("-"),
                        n["phase"].as_str().unwrap_or("-"),
                        n["message"].as_str().unwrap_or("")
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    lines.sort();
    lines
}

/// The Running Suspend nodes of workflow `name` (it waits for approval).
fn suspended(name: &str) -> Vec<String> {
    let wf = workflow(name);
    wf["status"]["nodes"]
        .as_object()
        .map(|nodes| {
            nodes
                .iter()
                .filter(|(_, n)| n["type"] == "Suspend" && n["phase"] == "Running")
                .map(|(id, _)| id.clone())
                .collect()
        })
        .unwrap_or_default()
}

/// Resumes workflow `name` as `argo resume` does (workflow/util/util.go
/// `ResumeWorkflow`): every Running Suspend node becomes Succeeded;
/// whether there was one.
fn resume(name: &str) -> bool {
    let now = jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let mut patch = serde_json::Map::new();
    for id in suspended(name) {
        patch.insert(
            id,
            serde_json::json!({ "phase": "Succeeded", "finishedAt": now, "message": "Resumed by: test" }),
        );
    }
    if patch.is_empty() {
        return false;
    }
    let body = serde_json::json!({ "status": { "nodes": patch } }).to_string();
    STACK.ok(
        &[
            "patch",
            "workflow",
            name,
            "-n",
            ARGO_NS,
            "--type=merge",
            "-p",
            &body,
        ],
        None,
    );
    true
}

/// Waits until workflow `name` waits for approval, then resumes it.
fn approve(name: &str) {
    awaiting_approval(name);
    assert!(resume(name), "{name} waits for approval");
}

/// Waits until workflow `name` waits for approval.
fn awaiting_approval(name: &str) {
    let deadline = Instant::now() + Duration::from_secs(300);
    while suspended(name).is_empty() {
        let wf = workflow(name);
        assert!(
            Instant::now() < deadline
                && !matches!(
                    wf["status"]["phase"].as_str(),
                    Some("Succeeded" | "Failed" | "Error")
                ),
            "{name} never waited for approval: {}\n{:#?}\n{}",
            wf["status"]["phase"],
            nodes(&wf),
            logs()
        );
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// Prints how long the workflow took and its plugin steps (for
/// BENCHMARKS.md: `--nocapture` shows it).
fn report_timing(wf: &Value) {
    let at = |v: &Value| v.as_str().and_then(|t| t.parse::<jiff::Timestamp>().ok());
    let (Some(start), Some(end)) = (
        at(&wf["status"]["startedAt"]),
        at(&wf["status"]["finishedAt"]),
    ) else {
        return;
    };
    let mut steps: Vec<(String, i64)> = wf["status"]["nodes"]
        .as_object()
        .into_iter()
        .flat_map(|n| n.values())
        .filter(|n| n["type"] == "Plugin")
        .filter_map(|n| {
            let took = at(&n["finishedAt"])?.as_second() - at(&n["startedAt"])?.as_second();
            Some((n["templateName"].as_str().unwrap_or("-").to_owned(), took))
        })
        .collect();
    steps.sort_by_key(|(_, took)| *took);
    eprintln!(
        "timing: {} took {} s wall, {} plugin steps: {steps:?}",
        wf["metadata"]["name"],
        end.as_second() - start.as_second(),
        steps.len()
    );
}

/// What the node and the controller logged, for a failure message.
fn logs() -> String {
    let mut text = String::new();
    for dir in [STACK.dir.join("node/logs"), STACK.dir.join("logs")] {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            if name.contains("agent") || name == "workflow-controller.log" {
                let body = std::fs::read_to_string(&path).unwrap_or_default();
                let tail: Vec<&str> = body.lines().rev().take(15).collect();
                text.push_str(&format!("--- {name}\n"));
                for line in tail.into_iter().rev() {
                    text.push_str(line);
                    text.push('\n');
                }
            }
        }
    }
    text
}

/// Waits (at most 60 s) until workflow `name` has no pod left: the
/// controller or the garbage collector deleted it and the node stopped its
/// containers and removed it.
fn agent_pods_gone(name: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let left = STACK.ok(
            &[
                "get",
                "pods",
                "-n",
                ARGO_NS,
                "-l",
                &format!("workflows.argoproj.io/workflow={name}"),
                "-o",
                "name",
            ],
            None,
        );
        if left.trim().is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the agent pod stays: {left}\n{}",
            logs()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// OpenKruiseGame's seamless-release example, created with `kubectl create
/// -f` as users start it, runs through Argo's workflow controller and
/// agent: every step a call from `argoexec agent` to the gameops sidecar,
/// which acts with its own ServiceAccount token. The Workflow Succeeds
/// with the example's end table; the rollback example right after on the
/// same set Succeeds too. The Allocated server is never touched.
#[test]
#[ignore = "needs the real control plane (scripts/test runs it)"]
#[allow(clippy::too_many_lines, reason = "one scenario, read top to bottom")]
fn the_seamless_release_then_the_rollback_example_run_through_argos_controller_and_agent() {
    use super::common::seed::{NEW_IMAGE, OLD_IMAGE};
    manifests_applied();
    let _exclusive = fleet_exclusive();
    let _fleet = fleet_attached(&[]);
    let _node = node_for_agents();
    minecraft_with_an_allocated_server(&STACK);
    let (before, _) = fleet_table(&STACK);
    let allocated_uid = before[0].rsplit(' ').next().expect("a uid").to_owned();

    let example = std::fs::read_to_string(format!(
        "{REPO}/workflow-templates/examples/seamless-release.yaml"
    ))
    .expect("the example");
    let name = create_workflow(&example);
    let wf = workflow_when(&name, Duration::from_secs(240), |wf| {
        matches!(
            wf["status"]["phase"].as_str(),
            Some("Succeeded" | "Failed" | "Error")
        )
    });
    assert_eq!(
        wf["status"]["phase"],
        "Succeeded",
        "{name}: {}\n{:#?}\n{}",
        wf["status"]["message"],
        nodes(&wf),
        logs()
    );
    report_timing(&wf);
    let steps = nodes(&wf);
    for template in ["patch-image", "scale-up", "wait-ready"] {
        assert!(
            steps
                .iter()
                .any(|n| n.starts_with(&format!("{template} Succeeded"))),
            "{template} ran through the agent: {steps:#?}"
        );
    }
    the_examples_end_table(&STACK, &allocated_uid);
    // Argo's exit handler gave unlock {{workflow.status}}: the history says
    // how the release ended, and the set is free.
    let history = look(&["history", "minecraft", "-o", "json"]);
    assert_eq!(history[0]["kind"], "release", "{history:#}");
    assert_eq!(history[0]["from"], OLD_IMAGE, "{history:#}");
    assert_eq!(history[0]["to"], NEW_IMAGE, "{history:#}");
    assert_eq!(
        history[0]["workflow"],
        format!("{}/{name}", ARGO_NS),
        "{history:#}"
    );
    assert_eq!(history[0]["outcome"], "Succeeded", "{history:#}");
    let status = look(&["status", "minecraft", "-o", "json"]);
    assert!(status["lease"].is_null(), "{status:#}");
    assert_eq!(status["in_match"], 1, "{status:#}");
    // The controller deletes the agent pod of a finished workflow, and the
    // node removes it once its containers have stopped.
    agent_pods_gone(&name);

    // The rollback example right after, on the same set, as users run it.
    let rollback =
        std::fs::read_to_string(format!("{REPO}/workflow-templates/examples/rollback.yaml"))
            .expect("the rollback example");
    let back = create_workflow(&rollback);
    let wf = workflow_when(&back, Duration::from_secs(240), |wf| {
        matches!(
            wf["status"]["phase"].as_str(),
            Some("Succeeded" | "Failed" | "Error")
        )
    });
    assert_eq!(
        wf["status"]["phase"],
        "Succeeded",
        "{back}: {}\n{:#?}\n{}",
        wf["status"]["message"],
        nodes(&wf),
        logs()
    );
    let (servers, _) = super::settled(&STACK, |s, p| {
        super::same_names(s, p) && s.iter().all(|l| !l.contains(NEW_IMAGE))
    });
    assert!(
        servers
            .iter()
            .all(|l| l.contains(&format!(" {OLD_IMAGE} "))),
        "{servers:?}"
    );
    assert_eq!(
        servers[0],
        format!("minecraft-0 {OLD_IMAGE} Allocated {allocated_uid}"),
        "the Allocated server is never touched"
    );
    let history = look(&["history", "minecraft", "-o", "json"]);
    assert_eq!(history[0]["kind"], "rollback", "{history:#}");
    assert_eq!(history[0]["to"], OLD_IMAGE, "{history:#}");
    assert_eq!(history[0]["outcome"], "Succeeded", "{history:#}");
    assert_eq!(
        history[1]["outcome"], "Succeeded",
        "the release stays as it ended: {history:#}"
    );
    agent_pods_gone(&back);
    STACK.ok(
        &[
            "delete",
            "gss",
            "minecraft",
            "-n",
            super::GAME_NS,
            "--wait=true",
        ],
        None,
    );
}

/// `gameops ARGS -o json` against the real stack, as an operator runs it.
fn look(args: &[&str]) -> Value {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gameops"))
        .args(args)
        .arg("--kubeconfig")
        .arg(&STACK.kubeconfig)
        .args(["-n", super::GAME_NS])
        .output()
        .expect("gameops starts");
    assert!(
        out.status.success(),
        "gameops {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON")
}

/// A release of an image that crash-loops, through Argo: waitReady fails
/// fast, the template's exit handler rolls the set back, and the Workflow
/// ends Failed. Every server runs the old image again, the Allocated one
/// untouched.
#[test]
#[ignore = "needs the real control plane (scripts/test runs it)"]
fn a_crashing_release_through_argo_is_rolled_back_and_fails() {
    use super::common::seed::{NEW_IMAGE, OLD_IMAGE};
    manifests_applied();
    let _exclusive = fleet_exclusive();
    let _fleet = fleet_attached(&["--sim-crash-image=-bad$"]);
    let _node = node_for_agents();
    minecraft_with_an_allocated_server(&STACK);
    let (before, _) = fleet_table(&STACK);
    let allocated_uid = before[0].rsplit(' ').next().expect("a uid").to_owned();
    let bad = OLD_IMAGE.replace("1.12.2", "1.12.2-bad");
    let example = std::fs::read_to_string(format!(
        "{REPO}/workflow-templates/examples/seamless-release.yaml"
    ))
    .expect("the example");
    let crashing = example.replace(NEW_IMAGE, &bad);
    assert_ne!(crashing, example);
    let name = create_workflow(&crashing);
    let wf = workflow_when(&name, Duration::from_secs(300), |wf| {
        matches!(
            wf["status"]["phase"].as_str(),
            Some("Succeeded" | "Failed" | "Error")
        )
    });
    assert_eq!(
        wf["status"]["phase"],
        "Failed",
        "{name}: {}\n{:#?}\n{}",
        wf["status"]["message"],
        nodes(&wf),
        logs()
    );
    let (servers, _) = super::settled(&STACK, |s, p| {
        super::same_names(s, p) && s.iter().all(|l| l.contains(OLD_IMAGE) && !l.contains(&bad))
    });
    assert!(
        servers
            .iter()
            .all(|l| l.contains(&format!(" {OLD_IMAGE} "))),
        "rolled back: {servers:?}"
    );
    assert_eq!(
        servers[0],
        format!("minecraft-0 {OLD_IMAGE} Allocated {allocated_uid}")
    );
    agent_pods_gone(&name);
    STACK.ok(
        &[
            "delete",
            "gss",
            "minecraft",
            "-n",
            super::GAME_NS,
            "--wait=true",
        ],
        None,
    );
}

/// The first bug of issue 12, as it shows on a real cluster: a workflow
/// whose ServiceAccount has no `<name>.service-account-token` Secret gets
/// an agent pod that never starts (kubelet: FailedMount, the Secret named),
/// so its plugin steps hang. Creating the Secret, as manifests/ does for
/// its accounts, lets the token controller fill it and the pod start.
#[test]
#[ignore = "needs the real control plane (scripts/test runs it)"]
#[allow(clippy::too_many_lines, reason = "one scenario, read top to bottom")]
fn an_agent_pod_without_its_token_secret_never_starts() {
    manifests_applied();
    let _exclusive = fleet_exclusive();
    let _node = node_for_agents();
    STACK.ok(
        &["create", "serviceaccount", "release-bot", "-n", ARGO_NS],
        None,
    );
    let example = std::fs::read_to_string(format!(
        "{REPO}/workflow-templates/examples/seamless-release.yaml"
    ))
    .expect("the example");
    let with_account = example.replacen("spec:\n", "spec:\n  serviceAccountName: release-bot\n", 1);
    assert_ne!(with_account, example);
    let name = create_workflow(&with_account);
    let pod = |name: &str| -> Option<Value> {
        let list = STACK.json(
            &[
                "get",
                "pods",
                "-n",
                ARGO_NS,
                "-l",
                &format!("workflows.argoproj.io/workflow={name}"),
                "-o",
                "json",
            ],
            None,
        );
        list["items"]
            .as_array()
            .and_then(|items| items.first().cloned())
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let message = loop {
        let events = STACK.ok(
            &[
                "get",
                "events",
                "-n",
                ARGO_NS,
                "--field-selector",
                "reason=FailedMount",
                "-o",
                "jsonpath={range .items[*]}{.involvedObject.name}: {.message}{\"\\n\"}{end}",
            ],
            None,
        );
        if let Some(line) = events
            .lines()
            .find(|l| l.contains("release-bot.service-account-token"))
        {
            break line.to_owned();
        }
        assert!(
            Instant::now() < deadline,
            "no FailedMount event: {events}\n{}",
            logs()
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    assert!(
        message.contains("secret \"release-bot.service-account-token\" not found"),
        "{message}"
    );
    let agent = pod(&name).expect("the agent pod exists");
    assert_eq!(agent["status"]["phase"], "Pending", "{agent:#}");
    assert_eq!(agent["spec"]["nodeName"], node::NODE_NAME);
    let wf = workflow(&name);
    assert!(
        !matches!(wf["status"]["phase"].as_str(), Some("Succeeded")),
        "nothing ran: {:#?}",
        nodes(&wf)
    );
    // The Secret manifests/ would have created: the pod starts.
    STACK.ok(
        &["apply", "-f", "-"],
        Some(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: release-bot.service-account-token\n  namespace: argo\n  annotations:\n    kubernetes.io/service-account.name: release-bot\ntype: kubernetes.io/service-account-token\n",
        ),
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let phase = pod(&name).map(|p| p["status"]["phase"].clone());
        if phase == Some(Value::from("Running")) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the agent pod never ran: {phase:?}\n{}",
            logs()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    STACK.ok(
        &["delete", "workflow", &name, "-n", ARGO_NS, "--wait=true"],
        None,
    );
    agent_pods_gone(&name);
    STACK.ok(
        &[
            "delete",
            "secret",
            "release-bot.service-account-token",
            "-n",
            ARGO_NS,
        ],
        None,
    );
    STACK.ok(
        &["delete", "serviceaccount", "release-bot", "-n", ARGO_NS],
        None,
    );
}

/// The multi-region example through Argo across two clusters (two
/// kube-apiservers): the sidecar, as packaged, gets their kubeconfigs from
/// the Secret `gameops-plugin-clusters` (`envFrom`, the only way the agent
/// pod lets it), releases `eu-west`, waits for approval (resumed as `argo
/// resume` does), then releases `us-east`. Both end with the example's end
/// table, each Allocated server untouched.
#[test]
#[ignore = "needs the real control plane (scripts/test runs it)"]
fn the_multi_region_example_runs_through_argo_across_two_clusters() {
    manifests_applied();
    let _exclusive = fleet_exclusive();
    let second = &*SECOND_STACK;
    let eu = format!("eu-west={}", STACK.kubeconfig.display());
    let us = format!("us-east={}", second.kubeconfig.display());
    let _fleet = fleet_attached(&["--cluster", &eu, "--cluster", &us]);
    let _node = node_for_agents();
    let mut allocated = Vec::new();
    for stack in [&*STACK, second] {
        minecraft_with_an_allocated_server(stack);
        let (before, _) = fleet_table(stack);
        allocated.push(before[0].rsplit(' ').next().expect("a uid").to_owned());
    }
    STACK.ok(
        &[
            "create",
            "secret",
            "generic",
            "gameops-plugin-clusters",
            "-n",
            ARGO_NS,
            &format!(
                "--from-file=GAMEOPS_CLUSTER_EU_WEST={}",
                STACK.kubeconfig.display()
            ),
            &format!(
                "--from-file=GAMEOPS_CLUSTER_US_EAST={}",
                second.kubeconfig.display()
            ),
        ],
        None,
    );
    let example = std::fs::read_to_string(format!(
        "{REPO}/workflow-templates/examples/multi-region-release.yaml"
    ))
    .expect("the example");
    let two = example.replace(r#"'["us-east","ap-south"]'"#, r#"'["us-east"]'"#);
    assert_ne!(two, example, "the example names its other regions");
    let name = create_workflow(&two);
    approve(&name);
    let wf = workflow_when(&name, Duration::from_secs(400), |wf| {
        matches!(
            wf["status"]["phase"].as_str(),
            Some("Succeeded" | "Failed" | "Error")
        )
    });
    assert_eq!(
        wf["status"]["phase"],
        "Succeeded",
        "{name}: {}\n{:#?}\n{}",
        wf["status"]["message"],
        nodes(&wf),
        logs()
    );
    for (stack, uid) in [&*STACK, second].into_iter().zip(&allocated) {
        the_examples_end_table(stack, uid);
        stack.ok(
            &[
                "delete",
                "gss",
                "minecraft",
                "-n",
                super::GAME_NS,
                "--wait=true",
            ],
            None,
        );
    }
    agent_pods_gone(&name);
    STACK.ok(
        &["delete", "secret", "gameops-plugin-clusters", "-n", ARGO_NS],
        None,
    );
}

/// The promote example through Argo: the sidecar, as packaged, reads
/// gameops.yaml from the ConfigMap `gameops-plugin-config` (`valueFrom`),
/// resolves staging's tag in Debian's docker-registry, waits for approval
/// (nothing promoted before it), then promotes the tag to
/// `production-latest` and releases it by digest.
#[test]
#[ignore = "needs the real control plane (scripts/test runs it)"]
#[allow(clippy::too_many_lines, reason = "one scenario, read top to bottom")]
fn the_promote_example_runs_through_argo_with_the_packaged_configuration() {
    manifests_applied();
    let _exclusive = fleet_exclusive();
    let registry = super::common::registry::Registry::start();
    let repository = format!("{}/game/server", registry.host);
    let config = format!(
        "registries:\n{}environments:\n  staging: {{repository: {repository}, filter: {{semver: '>=0.0.0', limit: 1}}}}\n",
        registry.config_entry()
    );
    let resolver = gameops::registry::Resolver::new(std::sync::Arc::new(
        gameops::registry::config::Config::parse(&config, Path::new("gameops.yaml"))
            .expect("config"),
    ))
    .expect("resolver");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let digest = runtime
        .block_on(
            resolver
                .client()
                .push_image(&repository, "v1.4.0", b"v1.4.0".to_vec()),
        )
        .expect("push");
    let promoted = || {
        runtime
            .block_on(
                resolver
                    .client()
                    .digest_if_exists(&repository, "production-latest"),
            )
            .expect("the registry answers")
    };
    let _fleet = fleet_attached(&[]);
    let _node = node_for_agents();
    minecraft_with_an_allocated_server(&STACK);
    STACK.ok(
        &[
            "create",
            "configmap",
            "gameops-plugin-config",
            "-n",
            ARGO_NS,
            "--from-file=gameops.yaml=/dev/stdin",
        ],
        Some(&config),
    );
    let example =
        std::fs::read_to_string(format!("{REPO}/workflow-templates/examples/promote.yaml"))
            .expect("the example");
    let ours = example.replace("registry.example.com/game/server", &repository);
    assert_ne!(ours, example, "the example names its repository");
    let name = create_workflow(&ours);
    awaiting_approval(&name);
    assert_eq!(promoted(), None, "nothing is promoted before the approval");
    assert!(resume(&name));
    let wf = workflow_when(&name, Duration::from_secs(300), |wf| {
        matches!(
            wf["status"]["phase"].as_str(),
            Some("Succeeded" | "Failed" | "Error")
        )
    });
    assert_eq!(
        wf["status"]["phase"],
        "Succeeded",
        "{name}: {}\n{:#?}\n{}",
        wf["status"]["message"],
        nodes(&wf),
        logs()
    );
    assert_eq!(
        promoted(),
        Some(digest.clone()),
        "production-latest is staging's v1.4.0"
    );
    let image = format!("{repository}:v1.4.0@{digest}");
    let (servers, _) = super::settled(&STACK, |s, p| {
        super::same_names(s, p) && s.iter().filter(|l| l.contains(&image)).count() == 3
    });
    assert_eq!(
        servers
            .iter()
            .filter(|l| l.contains(&format!(" {image} None ")))
            .count(),
        3,
        "three new servers run the promoted image by digest: {servers:?}"
    );
    agent_pods_gone(&name);
    STACK.ok(
        &[
            "delete",
            "configmap",
            "gameops-plugin-config",
            "-n",
            ARGO_NS,
        ],
        None,
    );
    STACK.ok(
        &[
            "delete",
            "gss",
            "minecraft",
            "-n",
            super::GAME_NS,
            "--wait=true",
        ],
        None,
    );
}
