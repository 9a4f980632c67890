//! The WorkflowTemplates run by `gameops run` against the embedded fleet,
//! as Argo would run them: the demo's table, a release around live matches
//! (untouched while they last, retired after), a rollback after a crashing
//! image, a promotion with its approval, a two-region release whose second
//! wave waits for the first, and the runner refusing what it cannot run.

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::registry::Registry;
use common::{MINECRAFT_GSS, Server};
use gameops::api::{GameServer, GameServerSet};
use kube::api::{Api, ListParams};
use serde_json::json;

const OLD: &str = "registry.cn-hangzhou.aliyuncs.com/acs/minecraft-demo:1.12.2";
const NEW: &str = "registry.cn-hangzhou.aliyuncs.com/acs/minecraft-demo:1.12.2-new";
const TEMPLATES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/workflow-templates");
const FAST: &[&str] = &[
    "--in-memory",
    "--sim-startup-ms",
    "300",
    "--sim-jitter-ms",
    "100",
];

fn gameops() -> Command {
    Command::new(env!("CARGO_BIN_EXE_gameops"))
}

/// `gameops run` against `srv`'s plugin.
fn run(srv: &Server, target: &str, extra: &[&str]) -> Output {
    gameops()
        .args(["run", target, "--templates", TEMPLATES, "--plugin"])
        .arg(format!("http://127.0.0.1:{}", srv.service_port))
        .arg("--plugin-token-file")
        .arg(srv.data_dir().join("plugin-token"))
        .args(extra)
        .env("RUST_LOG", "warn")
        .output()
        .expect("gameops run starts")
}

fn text(o: &Output) -> String {
    format!(
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

async fn servers(client: &kube::Client) -> Vec<GameServer> {
    let api: Api<GameServer> = Api::namespaced(client.clone(), "default");
    let mut list = api.list(&ListParams::default()).await.expect("list").items;
    list.sort_by_key(|g| g.metadata.name.clone());
    list
}

async fn ready_with(client: &kube::Client, image: &str, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ready = servers(client)
            .await
            .iter()
            .filter(|g| g.running_image() == Some(image))
            .filter(|g| g.status.as_ref().and_then(|s| s.current_state.as_deref()) == Some("Ready"))
            .count();
        if ready >= n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{n} Ready servers of {image} never came"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn seed(srv: &Server, context: Option<&str>) -> kube::Client {
    let mut args = vec!["apply", "-f", "-"];
    if let Some(c) = context {
        args.extend(["--context", c]);
    }
    srv.kubectl_ok(&args, Some(MINECRAFT_GSS));
    let client = match context {
        None => srv.client().await,
        Some(c) => {
            let kubeconfig =
                kube::config::Kubeconfig::read_from(srv.kubeconfig()).expect("kubeconfig");
            let options = kube::config::KubeConfigOptions {
                context: Some(c.to_owned()),
                ..Default::default()
            };
            let config = kube::Config::from_custom_kubeconfig(kubeconfig, &options)
                .await
                .expect("config");
            kube::Client::try_from(config).expect("client")
        }
    };
    ready_with(&client, OLD, 3).await;
    client
}

#[test]
fn the_demo_ends_in_the_seed_table() {
    let dir = tempfile::tempdir().expect("dir");
    let out = gameops()
        .args(["demo", "--workdir"])
        .arg(dir.path())
        .output()
        .expect("demo runs");
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let table: Vec<&str> = stdout
        .lines()
        .skip_while(|l| *l != "$ kubectl get gs")
        .skip(1)
        .take(7)
        .collect();
    assert_eq!(
        table,
        [
            "NAME          STATE   OPSSTATE          DP   UP",
            "minecraft-0   Ready   Allocated         0    0",
            "minecraft-1   Ready   WaitToBeDeleted   0    0",
            "minecraft-2   Ready   WaitToBeDeleted   0    0",
            "minecraft-3   Ready   None              0    0",
            "minecraft-4   Ready   None              0    0",
            "minecraft-5   Ready   None              0    0",
        ],
        "{}",
        text(&out)
    );
    assert!(stdout.contains("seamless-release Succeeded in"), "{stdout}");
    assert!(
        stdout.contains("~108 s"),
        "the seed's time beside ours: {stdout}"
    );
}

// Two workers: the run blocks one while the watcher samples on the other.
/// `(opsState, players, being deleted)` of every version of server `busy`
/// the watch delivers, until `done` and a quiet moment.
fn follow(
    api: Api<GameServer>,
    busy: String,
    done: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<Vec<(String, i32, bool)>> {
    tokio::spawn(async move {
        use futures::StreamExt;
        let config =
            kube::runtime::watcher::Config::default().fields(&format!("metadata.name={busy}"));
        let mut events = std::pin::pin!(kube::runtime::watcher(api, config));
        let mut seen = Vec::new();
        let mut record = |gs: &GameServer| {
            let ops = gs.spec.ops_state.clone().unwrap_or_default();
            let players = gs.status.as_ref().and_then(|s| s.players).unwrap_or(0);
            seen.push((ops, players, gs.metadata.deletion_timestamp.is_some()));
        };
        // Until the run has ended and the watch has been quiet a moment.
        loop {
            match tokio::time::timeout(Duration::from_millis(300), events.next()).await {
                Ok(Some(Ok(
                    kube::runtime::watcher::Event::Apply(gs)
                    | kube::runtime::watcher::Event::InitApply(gs),
                ))) => record(&gs),
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(_) if done.load(Ordering::SeqCst) => break,
                Err(_) => {}
            }
        }
        seen
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_leaves_matches_alone_and_drain_retires_them_after() {
    let mut args = FAST.to_vec();
    args.extend(["--sim-match-secs", "4"]);
    let srv = Server::start_fleet(&args);
    let client = seed(&srv, None).await;

    // A live match on one old server, through the allocator.
    let http = reqwest::Client::new();
    let allocation: serde_json::Value = http
        .post(format!("http://127.0.0.1:{}/v1/allocate", srv.service_port))
        .json(&json!({"namespace": "default", "selectors": [{"gameServerSet": "minecraft"}]}))
        .send()
        .await
        .expect("allocate")
        .json()
        .await
        .expect("json");
    let busy = allocation["gameServerName"]
        .as_str()
        .expect("a server")
        .to_owned();

    // Watch it while the release runs: never retired while its match lasts.
    // A watch sees every version of it, also one that lasts a moment (the
    // controller deletes a retired server as soon as replicas go down).
    let api: Api<GameServer> = Api::namespaced(client.clone(), "default");
    let done = Arc::new(AtomicBool::new(false));
    let watcher = follow(api.clone(), busy.clone(), done.clone());
    let out = run(
        &srv,
        "seamless-release",
        &[
            "-p",
            &format!("image={NEW}"),
            "-p",
            "drain=true",
            "-p",
            "drainTimeoutSeconds=60",
        ],
    );
    done.store(true, Ordering::SeqCst);
    let seen = watcher.await.expect("watcher");
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        seen.iter()
            .all(|(ops, players, deleting)| !(*deleting
                || (ops == "WaitToBeDeleted" && *players > 0))),
        "the busy server was touched during its match: {seen:?}"
    );
    let in_match = seen.iter().position(|(ops, _, _)| ops == "Allocated");
    let retired = seen.iter().position(|(ops, _, _)| ops == "WaitToBeDeleted");
    assert!(
        matches!((in_match, retired), (Some(a), Some(r)) if a < r),
        "it was retired only after its match: {seen:?}\n{}",
        text(&out)
    );
    let summary = String::from_utf8_lossy(&out.stdout);
    assert!(
        summary.contains("release/drain-old") && summary.contains("Succeeded"),
        "{summary}"
    );
    // Every old server is retired, every new one serves.
    for gs in servers(&client).await {
        let ops = gs.spec.ops_state.clone().unwrap_or_default();
        if gs.running_image() == Some(NEW) {
            assert_eq!(ops, "None", "{:?}", gs.metadata.name);
        } else {
            assert_eq!(ops, "WaitToBeDeleted", "{:?}", gs.metadata.name);
        }
    }
}

#[tokio::test]
async fn a_crashing_image_is_rolled_back_without_disruption() {
    let mut args = FAST.to_vec();
    args.push("--sim-crash-image=-bad$");
    let srv = Server::start_fleet(&args);
    let client = seed(&srv, None).await;
    srv.kubectl_ok(
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
    let bad = format!("{OLD}-bad");
    let out = run(
        &srv,
        "seamless-release",
        &["-p", &format!("image={bad}"), "-p", "timeoutSeconds=60"],
    );
    assert!(
        !out.status.success(),
        "a rolled-back release fails: {}",
        text(&out)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("release/roll-back"), "{}", text(&out));
    let sets: Api<GameServerSet> = Api::namespaced(client.clone(), "default");
    let gss = sets.get("minecraft").await.expect("gss");
    let image = gss
        .spec
        .game_server_template
        .as_ref()
        .and_then(|t| t.pod_template.spec.as_ref())
        .and_then(|s| s.containers.first())
        .and_then(|c| c.image.clone());
    assert_eq!(
        image.as_deref(),
        Some(OLD),
        "the template is back on the old image"
    );
    ready_with(&client, OLD, 3).await;
    let all = servers(&client).await;
    let zero = all
        .iter()
        .find(|g| g.metadata.name.as_deref() == Some("minecraft-0"))
        .expect("minecraft-0");
    assert_eq!(
        zero.spec.ops_state.as_deref(),
        Some("Allocated"),
        "the match was never touched"
    );
    for gs in all
        .iter()
        .filter(|g| g.running_image() == Some(bad.as_str()))
    {
        assert_ne!(
            gs.spec.ops_state.as_deref(),
            Some("None"),
            "crashed servers are retired: {:?}",
            gs.metadata.name
        );
    }
}

#[tokio::test]
async fn a_promotion_waits_for_approval_then_releases() {
    let registry = Registry::start();
    let repository = format!("{}/game/server", registry.host);
    let dir = tempfile::tempdir().expect("dir");
    let config_path = dir.path().join("gameops.yaml");
    let config = format!(
        "registries:\n{}environments:\n  staging: {{repository: {repository}, filter: {{semver: '>=0.0.0', limit: 1}}}}\n",
        registry.config_entry()
    );
    std::fs::write(&config_path, &config).expect("config");
    let resolver = gameops::registry::Resolver::new(Arc::new(
        gameops::registry::config::Config::parse(&config, &config_path).expect("config"),
    ))
    .expect("resolver");
    let digest = resolver
        .client()
        .push_image(&repository, "v1.4.0", b"v1.4.0".to_vec())
        .await
        .expect("push");
    let config_arg = config_path.to_string_lossy().into_owned();
    let mut args = FAST.to_vec();
    args.extend(["--config", &config_arg]);
    let srv = Server::start_fleet(&args);
    let client = seed(&srv, None).await;

    // Without --approve and without a terminal, the approval step stops the run.
    let refused = run(
        &srv,
        "promote",
        &["-p", &format!("repository={repository}")],
    );
    assert!(!refused.status.success());
    assert!(text(&refused).contains("--approve"), "{}", text(&refused));
    assert!(
        resolver
            .client()
            .digest_if_exists(&repository, "production-latest")
            .await
            .expect("registry")
            .is_none(),
        "nothing was promoted before the approval"
    );

    let out = run(
        &srv,
        "promote",
        &["-p", &format!("repository={repository}"), "--approve"],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        resolver
            .client()
            .digest(&repository, "production-latest")
            .await
            .expect("promoted"),
        digest
    );
    let image = format!("{repository}:v1.4.0@{digest}");
    ready_with(&client, &image, 3).await;
}

#[tokio::test]
async fn a_two_region_release_goes_wave_by_wave() {
    let mut args = FAST.to_vec();
    args.extend(["--cluster", "eu-west", "--cluster", "us-east"]);
    let srv = Server::start_fleet(&args);
    let eu = seed(&srv, Some("eu-west")).await;
    let us = seed(&srv, Some("us-east")).await;
    let out = run(
        &srv,
        "multi-region-release",
        &["-p", &format!("image={NEW}"), "--approve"],
    );
    assert!(out.status.success(), "{}", text(&out));
    ready_with(&eu, NEW, 3).await;
    ready_with(&us, NEW, 3).await;
    // The live view prints each node as it ends: wave 2 starts after wave 1 and the approval.
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = |needle: &str| {
        stderr
            .lines()
            .position(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no {needle:?} in {stderr}"))
    };
    assert!(line("approved") > line("/wave-1"), "{stderr}");
    let wave_two_first_step = stderr
        .lines()
        .position(|l| l.contains("/wave-2") && l.contains("patch-image"))
        .unwrap_or_else(|| panic!("wave 2 ran no patch-image: {stderr}"));
    assert!(wave_two_first_step > line("approved"), "{stderr}");
}

/// Runs `workflow` against a plugin that does not listen, so the run must
/// stop before calling anything; returns its stderr.
fn refused_before_it_starts(workflow: &str) -> String {
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("wf.yaml");
    std::fs::write(&file, workflow).expect("write");
    let out = gameops()
        .arg("run")
        .arg(&file)
        .args([
            "--templates",
            TEMPLATES,
            "--plugin",
            "http://127.0.0.1:9",
            "--plugin-token-file",
        ])
        .arg(&file)
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !err.contains("did not answer"),
        "it called the plugin: {err}"
    );
    err
}

#[test]
fn the_runner_refuses_a_container_template_before_it_starts() {
    let err = refused_before_it_starts(
        "apiVersion: argoproj.io/v1alpha1\nkind: Workflow\nmetadata: {generateName: x-}\nspec:\n  entrypoint: main\n  templates:\n    - name: main\n      steps:\n        - - {name: hello, template: hello}\n    - name: hello\n      container: {image: alpine, command: [echo, hi]}\n",
    );
    assert!(
        err.contains("\"hello\"") && err.contains("container template"),
        "{err}"
    );
}

#[test]
fn lint_accepts_the_templates_and_rejects_broken_ones() {
    let ok = gameops().args(["lint", TEMPLATES]).output().expect("lint");
    assert!(ok.status.success(), "{}", text(&ok));
    let dir = tempfile::tempdir().expect("dir");
    let broken = std::fs::read_to_string(Path::new(TEMPLATES).join("seamless-release.yaml"))
        .expect("read")
        .replacen("patchImage:", "patchImag:", 1)
        .replacen(
            "{{inputs.parameters.surge}}",
            "{{inputs.parameters.surgee}}",
            1,
        );
    std::fs::write(dir.path().join("seamless-release.yaml"), broken).expect("write");
    let out = gameops()
        .arg("lint")
        .arg(dir.path())
        .output()
        .expect("lint");
    assert!(!out.status.success(), "{}", text(&out));
    let report = text(&out);
    assert!(
        report.contains("seamless-release.yaml") && report.contains("patchImag"),
        "{report}"
    );
    assert!(report.contains("surgee"), "{report}");
}

#[test]
fn loops_dependencies_retries_and_exit_handlers_run_as_argo_runs_them() {
    let srv = Server::start(&["--in-memory"]);
    for set in ["a", "b"] {
        srv.kubectl_ok(
            &["apply", "-f", "-"],
            Some(&MINECRAFT_GSS.replace("name: minecraft\n", &format!("name: {set}\n"))),
        );
    }
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("wf.yaml");
    std::fs::write(
        &file,
        r#"apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {generateName: checks-}
spec:
  entrypoint: main
  onExit: bye
  templates:
    - name: main
      dag:
        tasks:
          - name: each
            template: status
            withItems: [a, b]
            arguments: {parameters: [{name: set, value: "{{item}}"}]}
          - name: missing
            template: status-retried
            dependencies: [each]
            arguments: {parameters: [{name: set, value: nope}]}
    - name: status
      inputs: {parameters: [{name: set}]}
      outputs: {parameters: [{name: total, value: ""}]}
      plugin: {gameops: {status: {gameServerSet: "{{inputs.parameters.set}}"}}}
    - name: status-retried
      retryStrategy: {limit: 2}
      inputs: {parameters: [{name: set}]}
      plugin: {gameops: {status: {gameServerSet: "{{inputs.parameters.set}}"}}}
    - name: bye
      plugin: {gameops: {status: {gameServerSet: "a"}}}
"#,
    )
    .expect("write");
    let out = run(&srv, file.to_str().expect("path"), &[]);
    assert!(
        !out.status.success(),
        "the missing set fails the run: {}",
        text(&out)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    for needle in [
        "main/each(0:a)  Succeeded",
        "main/each(1:b)  Succeeded",
        "retry 1 of 2",
        "retry 2 of 2",
        "main/missing  Failed",
        "bye (onExit)  Succeeded",
    ] {
        assert!(stderr.contains(needle), "no {needle:?} in {}", text(&out));
    }
    assert!(!stderr.contains("retry 3"), "{stderr}");
    let each = stderr.find("main/each(1:b)").expect("each");
    let missing = stderr.find("main/missing").expect("missing");
    assert!(
        each < missing,
        "a dependency runs after what it depends on: {stderr}"
    );
}

#[test]
fn the_runner_refuses_a_gameops_call_the_op_table_rejects_before_it_starts() {
    let err = refused_before_it_starts(
        "apiVersion: argoproj.io/v1alpha1\nkind: Workflow\nmetadata: {generateName: x-}\nspec:\n  entrypoint: main\n  templates:\n    - name: main\n      plugin: {gameops: {scale: {gameServerSet: minecraft, replica: 3}}}\n",
    );
    assert!(
        err.contains("plugin.gameops.scale.replica") && err.contains("did you mean replicas?"),
        "{err}"
    );
}

/// The set as the bad runs must leave it: its template image, replicas and
/// annotations (the plugin's ledger, lease and history live there), and
/// every server's image and opsState.
async fn fleet_state(client: &kube::Client) -> (serde_json::Value, Vec<(String, String, String)>) {
    let sets: Api<GameServerSet> = Api::namespaced(client.clone(), "default");
    let gss = sets.get("minecraft").await.expect("gss");
    let image = gss
        .spec
        .game_server_template
        .as_ref()
        .and_then(|t| t.pod_template.spec.as_ref())
        .and_then(|s| s.containers.first())
        .and_then(|c| c.image.clone());
    let set = json!({
        "image": image,
        "replicas": gss.spec.replicas,
        "annotations": gss.metadata.annotations,
    });
    let gs = servers(client)
        .await
        .into_iter()
        .map(|g| {
            (
                g.metadata.name.clone().unwrap_or_default(),
                g.running_image().unwrap_or_default().to_owned(),
                g.spec.ops_state.clone().unwrap_or_default(),
            )
        })
        .collect();
    (set, gs)
}

/// Bad parameters: the template, the `-p`s (besides `image`, which
/// `rollback` does not take) and what the refusal must say.
const BAD_PARAMETERS: &[(&str, &[&str], &[&str])] = &[
    // Today this silently turned off the automatic rollback.
    (
        "seamless-release",
        &["-p", "rollbackOnFailure=True"],
        &[r#"rollbackOnFailure: "True" is not one of "true", "false""#],
    ),
    // Today this changed the image, then failed.
    (
        "seamless-release",
        &["-p", "surge=abc"],
        &[r#"surge: "abc" is not a whole number"#, "scale.delta"],
    ),
    // Today this changed the image, scaled up twice and rolled back.
    (
        "seamless-release",
        &["-p", "timeoutSeconds=-5"],
        &[
            r#"timeoutSeconds: "-5" is not a whole number from 1 to"#,
            "waitReady.timeoutSeconds",
        ],
    ),
    (
        "seamless-release",
        &["-p", "crashThreshold=none"],
        &[r#"crashThreshold: "none" is not a whole number of at least 1"#],
    ),
    (
        "seamless-release",
        &["-p", "drain=true", "-p", "drainTimeoutSeconds=1h"],
        &[r#"drainTimeoutSeconds: "1h" is not a whole number"#],
    ),
    (
        "rollback",
        &["-p", "toImage=not an image"],
        &[r#"toImage: "not an image" is not an image reference"#],
    ),
    // Not a JSON list: refused before the first wave runs.
    (
        "multi-region-release",
        &["-p", "otherRegions=us-east", "--approve"],
        &["otherRegions: withParam value could not be parsed as a JSON list: us-east"],
    ),
];

/// Issue 11 item 10: as Argo validates arguments at submission
/// (argo-workflows workflow/validate/validate.go `validateArgumentsValues`:
/// enum, required values) and more: every plugin argument and `withParam`
/// the parameters decide is checked with the op table before the first
/// step, so a bad `-p` changes nothing, and says so the same way each time.
#[tokio::test]
async fn bad_parameters_are_refused_before_anything_changes() {
    let srv = Server::start_fleet(FAST);
    let client = seed(&srv, None).await;
    let before = fleet_state(&client).await;
    let image = format!("image={NEW}");
    for (template, extra, needles) in BAD_PARAMETERS {
        let mut args: Vec<&str> = vec!["-p", &image];
        if *template == "rollback" {
            args.clear();
        }
        args.extend(*extra);
        let first = run(&srv, template, &args);
        let second = run(&srv, template, &args);
        assert!(
            !first.status.success(),
            "{template} {extra:?}: {}",
            text(&first)
        );
        let err = String::from_utf8_lossy(&first.stderr);
        for needle in *needles {
            assert!(
                err.contains(needle),
                "{template} {extra:?}: no {needle:?} in {err}"
            );
        }
        assert!(
            !err.contains('▶'),
            "{template} {extra:?}: the run started: {err}"
        );
        assert_eq!(
            (first.status.code(), &first.stderr, &first.stdout),
            (second.status.code(), &second.stderr, &second.stdout),
            "{template} {extra:?}: the same command answers the same"
        );
        assert_eq!(
            fleet_state(&client).await,
            before,
            "{template} {extra:?} changed the fleet"
        );
    }
    // A required parameter without a value, as Argo's submission refuses it.
    let out = run(&srv, "seamless-release", &[]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("parameter \"image\" has no value: pass -p image=VALUE"),
        "{}",
        text(&out)
    );
    assert_eq!(fleet_state(&client).await, before);
    // Good parameters still run.
    let out = run(
        &srv,
        "seamless-release",
        &[
            "-p",
            &image,
            "-p",
            "surge=1",
            "-p",
            "rollbackOnFailure=false",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    ready_with(&client, NEW, 1).await;
}

/// Issue 11 item 13: outputs declared with `globalName` become the
/// workflow's outputs where Argo exports them (argo-workflows
/// `workflow/controller/operator.go` `addOutputsToGlobalScope`: a DAG
/// task's returned outputs once its DAG succeeded, `dag.go`; a steps
/// template's own outputs, `steps.go`; a plugin step of a steps template
/// is not exported), readable as `{{workflow.outputs.parameters.NAME}}` by
/// later steps and the exit handler, and printed in the summary.
#[tokio::test]
async fn global_outputs_reach_later_steps_and_the_exit_handler() {
    let srv = Server::start_fleet(FAST);
    let client = seed(&srv, None).await;
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("wf.yaml");
    std::fs::write(
        &file,
        r#"apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {generateName: globals-}
spec:
  entrypoint: main
  onExit: bye
  templates:
    - name: main
      steps:
        - - {name: measure, template: measure}
        - - name: grow
            template: grow
            arguments:
              parameters: [{name: delta, value: "{{workflow.outputs.parameters.fleetTotal}}"}]
    - name: measure
      dag:
        tasks:
          - {name: count, template: count}
    - name: count
      outputs:
        parameters: [{name: total, value: "", globalName: fleetTotal}]
      plugin: {gameops: {status: {gameServerSet: minecraft}}}
    - name: grow
      inputs: {parameters: [{name: delta}]}
      outputs:
        parameters:
          - name: replicas
            globalName: replicas
            valueFrom: {parameter: "{{steps.scale.outputs.parameters.replicas}}"}
      steps:
        - - name: scale
            template: scale
            arguments: {parameters: [{name: delta, value: "{{inputs.parameters.delta}}"}]}
    - name: scale
      inputs: {parameters: [{name: delta}]}
      outputs:
        parameters: [{name: replicas, value: "", globalName: notExported}]
      plugin: {gameops: {scale: {gameServerSet: minecraft, delta: "{{inputs.parameters.delta}}"}}}
    - name: bye
      plugin:
        gameops:
          waitReady: {gameServerSet: minecraft, count: "{{workflow.outputs.parameters.replicas}}", timeoutSeconds: 60}
"#,
    )
    .expect("write");
    let out = run(&srv, file.to_str().expect("path"), &[]);
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    // The DAG task's output grew the set by the fleet's size...
    let sets: Api<GameServerSet> = Api::namespaced(client.clone(), "default");
    let gss = sets.get("minecraft").await.expect("gss");
    assert_eq!(gss.spec.replicas, 6, "{}", text(&out));
    // ...and the exit handler waited for the count the steps template exported.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("bye (onExit)  Succeeded") && stderr.contains("Ready (6 needed)"),
        "{}",
        text(&out)
    );
    assert!(
        stdout.contains("workflow.outputs.parameters.fleetTotal: 3")
            && stdout.contains("workflow.outputs.parameters.replicas: 6"),
        "{stdout}"
    );
    assert!(
        !stdout.contains("notExported"),
        "a plugin step of a steps template is not exported: {stdout}"
    );
    ready_with(&client, OLD, 6).await;
}

/// The set's replicas, and its live servers by running image.
async fn fleet_size(client: &kube::Client) -> (i32, Vec<String>) {
    let sets: Api<GameServerSet> = Api::namespaced(client.clone(), "default");
    let replicas = sets.get("minecraft").await.expect("gss").spec.replicas;
    let images = servers(client)
        .await
        .iter()
        .filter(|g| g.metadata.deletion_timestamp.is_none())
        .map(|g| g.running_image().unwrap_or("?").to_owned())
        .collect();
    (replicas, images)
}

/// Waits until the set has `n` replicas and `n` live servers, all running `image`.
async fn settles_at(client: &kube::Client, n: i32, image: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (replicas, images) = fleet_size(client).await;
        if replicas == n
            && images.len() == usize::try_from(n).unwrap_or(0)
            && images.iter().all(|i| i == image)
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "never {n} servers of {image}: replicas {replicas}, running {images:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Issue 11: a release, an immediate rollback and a failed release, one
/// after another on the same set, each leave it at its size (3), with no
/// lease left behind to refuse the next.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_an_immediate_rollback_and_a_failed_release_leave_the_set_at_its_size() {
    let mut args = FAST.to_vec();
    args.push("--sim-crash-image=-bad$");
    let srv = Server::start_fleet(&args);
    let client = seed(&srv, None).await;
    let out = run(&srv, "seamless-release", &["-p", &format!("image={NEW}")]);
    assert!(out.status.success(), "{}", text(&out));
    settles_at(&client, 3, NEW).await;
    let out = run(&srv, "rollback", &["-p", &format!("toImage={OLD}")]);
    assert!(
        out.status.success(),
        "the release's exit handler freed the set: {}",
        text(&out)
    );
    settles_at(&client, 3, OLD).await;
    let bad = format!("{OLD}-bad");
    let out = run(
        &srv,
        "seamless-release",
        &["-p", &format!("image={bad}"), "-p", "timeoutSeconds=60"],
    );
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("release/roll-back"),
        "{}",
        text(&out)
    );
    settles_at(&client, 3, OLD).await;
}

/// `retryStrategy` as argo-workflows v4.0.5 `processNodeRetries` applies it:
/// `OnError` leaves a Failed step alone, a backoff waits between attempts
/// (`duration × factor^(n-1)`), and what Argo refuses is refused before
/// anything runs.
#[test]
fn retry_policies_and_backoff_follow_argos_controller() {
    let srv = Server::start(&["--in-memory"]);
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("wf.yaml");
    let workflow = |strategy: &str| {
        format!(
            "apiVersion: argoproj.io/v1alpha1\nkind: Workflow\nmetadata: {{generateName: r-}}\nspec:\n  entrypoint: main\n  templates:\n    - name: main\n      retryStrategy: {strategy}\n      plugin: {{gameops: {{status: {{gameServerSet: nope}}}}}}\n"
        )
    };
    std::fs::write(&file, workflow("{limit: 3, retryPolicy: OnError}")).expect("write");
    let out = run(&srv, file.to_str().expect("path"), &[]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        !text(&out).contains("retry 1"),
        "OnError does not retry a Failed step: {}",
        text(&out)
    );

    std::fs::write(
        &file,
        workflow("{limit: 2, backoff: {duration: \"1\", factor: 2}}"),
    )
    .expect("write");
    let out = run(&srv, file.to_str().expect("path"), &[]);
    let said = text(&out);
    assert!(!out.status.success(), "{said}");
    assert!(said.contains("retry 1 of 2 in 1.0 s"), "{said}");
    assert!(said.contains("retry 2 of 2 in 2.0 s"), "{said}");
    assert!(said.contains("No more retries left"), "{said}");

    let err = refused_before_it_starts(&workflow("{retryPolicy: Sometimes}"));
    assert!(
        err.contains("retryPolicy Sometimes is not a valid RetryPolicy"),
        "{err}"
    );
    let err = refused_before_it_starts(&workflow("{backoff: {factor: 2}}"));
    assert!(err.contains("no base duration specified"), "{err}");
}

/// argo-workflows v4.0.5: a Workflow's own `entrypoint`, `onExit` and
/// templates go over its `workflowTemplateRef`'s (util/workflow
/// `JoinWorkflowSpec`), and an exit handler that fails fails a workflow
/// whose entrypoint succeeded (workflow/controller/operator.go `operate`).
#[test]
fn a_workflows_own_spec_goes_over_its_template_and_a_failed_exit_handler_fails_it() {
    let srv = Server::start(&["--in-memory"]);
    srv.kubectl_ok(&["apply", "-f", "-"], Some(MINECRAFT_GSS));
    let dir = tempfile::tempdir().expect("dir");
    std::fs::write(
        dir.path().join("base.yaml"),
        "apiVersion: argoproj.io/v1alpha1\nkind: WorkflowTemplate\nmetadata: {name: base}\nspec:\n  entrypoint: main\n  templates:\n    - name: main\n      plugin: {gameops: {status: {gameServerSet: nope}}}\n    - name: ok\n      plugin: {gameops: {status: {gameServerSet: minecraft}}}\n",
    )
    .expect("write");
    let file = dir.path().join("wf.yaml");
    std::fs::write(
        &file,
        "apiVersion: argoproj.io/v1alpha1\nkind: Workflow\nmetadata: {generateName: joined-}\nspec:\n  entrypoint: ok\n  onExit: bye\n  workflowTemplateRef: {name: base}\n  templates:\n    - name: bye\n      plugin: {gameops: {status: {gameServerSet: gone}}}\n",
    )
    .expect("write");
    let out = gameops()
        .args(["run"])
        .arg(&file)
        .arg("--templates")
        .arg(dir.path())
        .arg("--plugin")
        .arg(format!("http://127.0.0.1:{}", srv.service_port))
        .arg("--plugin-token-file")
        .arg(srv.data_dir().join("plugin-token"))
        .env("RUST_LOG", "warn")
        .output()
        .expect("run");
    let said = text(&out);
    assert!(
        said.contains("ok  ") && said.contains("Succeeded"),
        "its own entrypoint ran: {said}"
    );
    assert!(
        said.contains("bye (onExit)"),
        "its own exit handler ran: {said}"
    );
    assert!(
        !out.status.success(),
        "the failed exit handler fails the run: {said}"
    );
    assert!(said.contains("Failed: exit handler:"), "{said}");
}

/// A plugin on `listener` that answers each call at once: its HTTP status
/// and, for 200, the node phase (`Error` for template `boom`, `Succeeded`
/// otherwise); `status(n)` gives the status of the n-th request (from 0).
/// Counts the requests.
fn fake_plugin(
    listener: std::net::TcpListener,
    status: fn(usize) -> u16,
) -> Arc<std::sync::atomic::AtomicUsize> {
    use std::io::{BufRead, BufReader, Read, Write};
    let count = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = count.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let n = seen.fetch_add(1, Ordering::SeqCst);
            let mut reader = BufReader::new(stream);
            let mut length = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0u8; length];
            let _ = reader.read_exact(&mut body);
            let request: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            let phase = if request["template"]["name"] == "boom" {
                "Error"
            } else {
                "Succeeded"
            };
            let code = status(n);
            let reply = if code == 200 {
                json!({"node": {"phase": phase, "message": format!("{phase} here")}}).to_string()
            } else {
                "busy".to_owned()
            };
            let mut stream = reader.into_inner();
            let _ = write!(
                stream,
                "HTTP/1.1 {code} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{reply}",
                reply.len()
            );
        }
    });
    count
}

/// [`fake_plugin`] answering 200 always, on a free port.
fn erring_plugin() -> (String, Arc<std::sync::atomic::AtomicUsize>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    (url, fake_plugin(listener, |_| 200))
}

/// argo-workflows v4.0.5: an Error node is not a Failed one. A step group
/// fails on either unless `continueOn` names that phase
/// (workflow/controller/steps.go, `WorkflowStep.ContinuesOn`), and the
/// default `retryPolicy` (OnFailure) does not retry an Error
/// (operator.go `processNodeRetries`).
#[test]
fn an_error_is_kept_apart_from_a_failure() {
    let (url, _plugin) = erring_plugin();
    let run_with = |continue_on: &str, retry: &str| {
        let out = run_at(
            &url,
            &format!(
                "apiVersion: argoproj.io/v1alpha1\nkind: Workflow\nmetadata: {{generateName: e-}}\nspec:\n  entrypoint: main\n  templates:\n    - name: main\n      steps:\n        - - name: a\n            template: boom\n            continueOn: {continue_on}\n        - - name: b\n            template: fine\n    - name: boom\n      retryStrategy: {retry}\n      plugin: {{gameops: {{status: {{gameServerSet: x}}}}}}\n    - name: fine\n      plugin: {{gameops: {{status: {{gameServerSet: x}}}}}}\n"
            ),
        );
        (out.status.success(), text(&out))
    };
    let (ok, said) = run_with("{failed: true}", "{limit: 2}");
    assert!(!ok, "continueOn.failed does not cover an Error: {said}");
    assert!(
        said.contains("main/a  Error") || said.contains("main/a    Error"),
        "{said}"
    );
    assert!(
        !said.contains("retry 1"),
        "OnFailure does not retry an Error: {said}"
    );
    let (ok, said) = run_with("{error: true}", "{limit: 2, retryPolicy: OnError}");
    assert!(ok, "continueOn.error goes on: {said}");
    assert!(said.contains("retry 2 of 2"), "OnError retries it: {said}");
    assert!(said.contains("main/b"), "{said}");
}

/// argo-workflows v4.0.5 operator.go `processNodeRetries`: with an
/// `expression` the policy defaults to Always, and once the limit allows
/// another attempt the expression decides, over `retries` and `lastRetry.*`.
#[test]
fn a_retry_expression_decides_as_argos_controller_does() {
    let (url, plugin) = erring_plugin();
    let out = run_at(
        &url,
        "apiVersion: argoproj.io/v1alpha1\nkind: Workflow\nmetadata: {generateName: r-}\nspec:\n  entrypoint: boom\n  templates:\n    - name: boom\n      retryStrategy: {limit: 5, expression: \"lastRetry.status == 'Error' && asInt(retries) < 2\"}\n      plugin: {gameops: {status: {gameServerSet: x}}}\n",
    );
    let said = text(&out);
    assert!(!out.status.success(), "{said}");
    assert_eq!(
        plugin.load(Ordering::SeqCst),
        3,
        "two retries, then the expression is false: {said}"
    );
    assert!(
        said.contains("retryStrategy.expression evaluated to false"),
        "{said}"
    );
}

/// argo-workflows v4.0.5 DAGs: a task whose `depends` does not hold is
/// Omitted (dag.go `executeDAGTask`), an Omitted task does not satisfy a
/// bare name (ancestry.go `expandDependency`), so what depends on it is
/// Omitted too, while `T.Omitted` runs; `T.Completed` is refused at
/// submission (`ValidateTaskResults`).
#[test]
fn omitted_tasks_chain_as_in_argo_and_unknown_task_results_are_refused() {
    let srv = Server::start(&["--in-memory"]);
    srv.kubectl_ok(&["apply", "-f", "-"], Some(MINECRAFT_GSS));
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("wf.yaml");
    let dag = |depends_d: &str| {
        format!(
            "apiVersion: argoproj.io/v1alpha1\nkind: Workflow\nmetadata: {{generateName: o-}}\nspec:\n  entrypoint: main\n  templates:\n    - name: main\n      dag:\n        tasks:\n          - {{name: a, template: bad, continueOn: {{failed: true}}}}\n          - {{name: b, template: ok, depends: a.Succeeded}}\n          - {{name: c, template: ok, depends: b}}\n          - {{name: d, template: ok, depends: \"{depends_d}\"}}\n    - name: bad\n      plugin: {{gameops: {{status: {{gameServerSet: nope}}}}}}\n    - name: ok\n      plugin: {{gameops: {{status: {{gameServerSet: minecraft}}}}}}\n"
        )
    };
    std::fs::write(&file, dag("b.Omitted && c.Omitted")).expect("write");
    let out = run(&srv, file.to_str().expect("path"), &[]);
    let said = text(&out);
    for needle in ["main/b  Omitted", "main/c  Omitted", "main/d  Succeeded"] {
        assert!(said.contains(needle), "no {needle:?}: {said}");
    }
    assert!(out.status.success(), "a continues on failure: {said}");

    let err = refused_before_it_starts(&dag("a.Completed"));
    assert!(
        err.contains("task result 'Completed' for task 'a' is invalid"),
        "{err}"
    );
}

/// argo-workflows v4.0.5 `util/template/expression_template.go`: a
/// `{{= expression}}` is evaluated by expr-lang over the template's
/// variables (strings, hence `asInt`), its result written in place (here a
/// set's name and a `when`), and an expression expr-lang's checker refuses
/// fails the step with "failed to evaluate expression".
#[test]
fn expressions_are_evaluated_as_argo_evaluates_them() {
    let srv = Server::start(&["--in-memory"]);
    srv.kubectl_ok(&["apply", "-f", "-"], Some(MINECRAFT_GSS));
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("wf.yaml");
    let workflow = |when: &str| {
        format!(
            "apiVersion: argoproj.io/v1alpha1\nkind: Workflow\nmetadata: {{generateName: x-}}\nspec:\n  entrypoint: main\n  arguments: {{parameters: [{{name: n, value: '3'}}, {{name: kind, value: CRAFT}}]}}\n  templates:\n    - name: main\n      inputs: {{parameters: [{{name: n}}, {{name: kind}}]}}\n      steps:\n        - - name: look\n            template: look\n            when: \"{when}\"\n            arguments: {{parameters: [{{name: set, value: \"{{{{= 'mine' + lower(inputs.parameters.kind) }}}}\"}}]}}\n    - name: look\n      inputs: {{parameters: [{{name: set}}]}}\n      plugin: {{gameops: {{status: {{gameServerSet: '{{{{inputs.parameters.set}}}}'}}}}}}\n"
        )
    };
    std::fs::write(&file, workflow("{{= asInt(inputs.parameters.n) * 2 > 5 }}")).expect("write");
    let out = run(&srv, file.to_str().expect("path"), &[]);
    let said = text(&out);
    assert!(out.status.success(), "{said}");
    assert!(
        said.contains("main/look  Succeeded"),
        "the set resolved to minecraft: {said}"
    );

    std::fs::write(&file, workflow("{{= asInt(inputs.parameters.n) > 5 }}")).expect("write");
    let said = text(&run(&srv, file.to_str().expect("path"), &[]));
    assert!(said.contains("main/look  Skipped"), "{said}");

    std::fs::write(&file, workflow("{{= inputs.parameters.n > 5 }}")).expect("write");
    let out = run(&srv, file.to_str().expect("path"), &[]);
    let said = text(&out);
    assert!(!out.status.success(), "{said}");
    assert!(
        said.contains(
            "failed to evaluate expression: invalid operation: > (mismatched types string and int)"
        ),
        "{said}"
    );
}

/// `gameops run -p` of a one-step workflow against the plugin at `url`.
fn one_step(url: &str) -> Output {
    run_at(
        url,
        "apiVersion: argoproj.io/v1alpha1\nkind: Workflow\nmetadata: {generateName: t-}\nspec:\n  entrypoint: main\n  templates:\n    - name: main\n      plugin: {gameops: {status: {gameServerSet: x}}}\n",
    )
}

/// `gameops run` of `workflow` against the plugin at `url`, with a token.
fn run_at(url: &str, workflow: &str) -> Output {
    let dir = tempfile::tempdir().expect("dir");
    let token = dir.path().join("token");
    std::fs::write(&token, "t").expect("token");
    let file = dir.path().join("wf.yaml");
    std::fs::write(&file, workflow).expect("write");
    gameops()
        .arg("run")
        .arg(&file)
        .args([
            "--templates",
            TEMPLATES,
            "--plugin",
            url,
            "--plugin-token-file",
        ])
        .arg(&token)
        .output()
        .expect("run")
}

/// Argo's agent (argo-workflows v4.0.5 workflow/util/plugins/plugin.go
/// `Call`, with the backoff of workflow/executor/plugins/rpc/plugin.go)
/// tries a call again while the plugin refuses connections or answers
/// 503, and not after any other answer.
#[test]
fn plugin_calls_are_retried_as_argos_agent_retries_them() {
    // 503 twice, then an answer.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let count = fake_plugin(listener, |n| if n < 2 { 503 } else { 200 });
    let out = one_step(&url);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(count.load(Ordering::SeqCst), 3);

    // A plugin that starts listening a moment after the run.
    let port = common::free_port();
    let url = format!("http://127.0.0.1:{port}");
    let late = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(1500));
        let listener = std::net::TcpListener::bind(("127.0.0.1", port)).expect("bind late");
        fake_plugin(listener, |_| 200)
    });
    let out = one_step(&url);
    assert!(
        out.status.success(),
        "connection refused is retried: {}",
        text(&out)
    );
    assert_eq!(late.join().expect("late").load(Ordering::SeqCst), 1);

    // A 500 is an answer: not tried again.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let count = fake_plugin(listener, |_| 500);
    let out = one_step(&url);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("HTTP 500"), "{}", text(&out));
    assert_eq!(count.load(Ordering::SeqCst), 1);
}
