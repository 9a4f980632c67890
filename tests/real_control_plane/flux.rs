//! The Flux Operator (v0.59.0, built from its published module by
//! scripts/real-stack) reconciling `manifests/flux/` as `kubectl apply -k
//! manifests/` installed them, against gameops serving its input provider
//! endpoint where the manifests expect it
//! (`gameops.gameops-system.svc.cluster.local:4355`, which the operator's
//! /etc/hosts names 127.0.0.1 on the real stack).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{ARGO_NS, Running, STACK, fleet_exclusive, manifests_applied};

const FLUX_NS: &str = "flux-system";

/// The Workflows the ResourceSet of `env` rendered.
fn rendered(env: &str) -> Vec<Value> {
    let list = STACK.json(
        &[
            "get",
            "workflows",
            "-n",
            ARGO_NS,
            "-l",
            &format!("gameops.io/env={env}"),
            "-o",
            "json",
        ],
        None,
    );
    list["items"].as_array().cloned().unwrap_or_default()
}

/// Asks the operator to reconcile every input provider now (Flux's
/// `reconcile.fluxcd.io/requestedAt` annotation, as `flux reconcile` sets it).
fn reconcile_now() {
    let now = jiff::Timestamp::now().to_string();
    STACK.ok(
        &[
            "annotate",
            "resourcesetinputproviders",
            "--all",
            "-n",
            FLUX_NS,
            "--overwrite",
            &format!("reconcile.fluxcd.io/requestedAt={now}"),
        ],
        None,
    );
}

/// The image parameter of a rendered Workflow.
fn image_of(workflow: &Value) -> String {
    workflow["spec"]["arguments"]["parameters"]
        .as_array()
        .and_then(|p| p.iter().find(|p| p["name"] == "image"))
        .and_then(|p| p["value"].as_str())
        .unwrap_or_default()
        .to_owned()
}

/// What the operator logged, for a failure message.
fn flux_log() -> String {
    let log = std::fs::read_to_string(STACK.dir.join("logs/flux-operator.log")).unwrap_or_default();
    let tail: Vec<&str> = log.lines().rev().take(20).collect();
    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
}

/// Each environment's ResourceSetInputProvider calls gameops with the
/// token of `gameops-flux-token`, and its ResourceSet renders one Workflow
/// running `seamless-release` for the tag gameops resolved, by digest: the
/// release is the only writer of the set. Reconciling again renders no
/// second Workflow for the same tag; a new tag renders a new one and the
/// first stays (prune disabled). Environments with no matching tag render
/// nothing.
#[test]
#[ignore = "needs the real control plane (scripts/test runs it)"]
#[allow(clippy::too_many_lines, reason = "one scenario, read top to bottom")]
fn the_flux_operator_starts_one_release_per_new_tag_from_gameops_inputs() {
    manifests_applied();
    // gameops listens on the sidecar's port 4355: no agent pod at the same time.
    let _exclusive = fleet_exclusive();
    let registry = super::common::registry::Registry::start();
    let repository = format!("{}/game/server", registry.host);
    let dir = tempfile::tempdir().expect("a temporary folder");
    let flux_token = dir.path().join("flux-token");
    std::fs::write(&flux_token, "a-flux-token").expect("the Flux token");
    let api_token = dir.path().join("token");
    std::fs::write(&api_token, "an-api-token").expect("the API token");
    let config = format!(
        "registries:\n{}environments:\n  develop: {{repository: {repository}, filter: {{includeTag: '^v\\d+\\.\\d+\\.\\d+-rc\\.[a-f0-9]+$', limit: 1}}}}\n  staging: {{repository: {repository}, filter: {{semver: '>=0.0.0', limit: 1}}}}\n  production: {{repository: {repository}, filter: {{includeTag: '^production-latest$'}}}}\nflux:\n  auth: {{bearer: {{tokenFile: {}}}}}\n",
        registry.config_entry(),
        flux_token.display()
    );
    let config_path = dir.path().join("gameops.yaml");
    std::fs::write(&config_path, &config).expect("gameops.yaml");
    let resolver = gameops::registry::Resolver::new(std::sync::Arc::new(
        gameops::registry::config::Config::parse(&config, &config_path).expect("config"),
    ))
    .expect("resolver");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let push = |tag: &str| {
        runtime
            .block_on(
                resolver
                    .client()
                    .push_image(&repository, tag, tag.as_bytes().to_vec()),
            )
            .expect("push")
    };
    let first = push("v1.4.0");
    // gameops as manifests/gameops/deployment.yaml runs it.
    let log = std::fs::File::create(STACK.dir.join("logs/gameops-flux.log")).expect("log");
    let _gameops = Running(
        Command::new(env!("CARGO_BIN_EXE_gameops"))
            .args(["plugin", "--listen", "0.0.0.0:4355", "--config"])
            .arg(&config_path)
            .arg("--token-file")
            .arg(&api_token)
            .env("KUBECONFIG", &STACK.kubeconfig)
            .stdin(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("gameops plugin starts"),
    );
    // The Secret flux/secret-example.yaml shows, with the real token.
    STACK.ok(
        &[
            "create",
            "secret",
            "generic",
            "gameops-flux-token",
            "-n",
            FLUX_NS,
            "--from-literal=token=a-flux-token",
        ],
        None,
    );
    reconcile_now();
    let until = |what: &str, done: &dyn Fn() -> bool| {
        let deadline = Instant::now() + Duration::from_secs(120);
        while !done() {
            assert!(Instant::now() < deadline, "{what}\n{}", flux_log());
            std::thread::sleep(Duration::from_secs(1));
        }
    };
    until("staging's release Workflow never appeared", &|| {
        !rendered("staging").is_empty()
    });
    let staging = rendered("staging");
    assert_eq!(staging.len(), 1, "one Workflow per tag: {staging:#?}");
    assert_eq!(
        image_of(&staging[0]),
        format!("registry.example.com/game/server:v1.4.0@{first}"),
        "the tag and digest gameops resolved"
    );
    assert_eq!(
        staging[0]["spec"]["workflowTemplateRef"]["name"],
        "seamless-release"
    );
    assert_eq!(
        staging[0]["metadata"]["annotations"]["gameops.io/release-tag"], "v1.4.0",
        "{:#}",
        staging[0]["metadata"]
    );
    let provider = STACK.json(
        &[
            "get",
            "resourcesetinputprovider",
            "game-staging",
            "-n",
            FLUX_NS,
            "-o",
            "json",
        ],
        None,
    );
    let ready = provider["status"]["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "Ready"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(ready["status"], "True", "{provider:#}");
    for env in ["develop", "production"] {
        assert!(rendered(env).is_empty(), "{env} has no matching tag");
    }

    // Reconciled again with the same tag: still one release.
    reconcile_now();
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(rendered("staging").len(), 1, "no second release of v1.4.0");

    // A new tag: a new release; the first one stays.
    let second = push("v1.5.0");
    reconcile_now();
    until("v1.5.0's release never appeared", &|| {
        rendered("staging").len() == 2
    });
    let images: Vec<String> = rendered("staging").iter().map(image_of).collect();
    assert!(
        images.contains(&format!("registry.example.com/game/server:v1.5.0@{second}")),
        "{images:?}"
    );

    // Flux stops here (as `flux suspend` would), then the releases go: the
    // ResourceSets would render them again otherwise.
    for kind in ["resourcesetinputproviders", "resourcesets"] {
        STACK.ok(
            &[
                "annotate",
                kind,
                "--all",
                "-n",
                FLUX_NS,
                "--overwrite",
                "fluxcd.controlplane.io/reconcile=disabled",
            ],
            None,
        );
    }
    STACK.ok(
        &[
            "delete",
            "workflows",
            "-n",
            ARGO_NS,
            "-l",
            "app.kubernetes.io/part-of=gameops",
            "--wait=true",
        ],
        None,
    );
    STACK.ok(
        &["delete", "secret", "gameops-flux-token", "-n", FLUX_NS],
        None,
    );
}
