//! gameops's manifests against a real control plane: etcd, kube-apiserver
//! and kube-controller-manager built from their pinned published Go modules
//! (`conformance/`) and started on loopback by `scripts/real-stack up`, with
//! RBAC authorization, ServiceAccount token issuing and the CRDs of
//! OpenKruiseGame, Argo Workflows and the Flux Operator.
//!
//! Ignored by a plain `cargo test`: the first build of the Go components
//! takes minutes (cached afterwards, see the README). `scripts/test` runs
//! them: `cargo test --test real_control_plane -- --ignored`.
//!
//! One control plane per test binary, started on first use; a watchdog of
//! `scripts/real-stack` stops it and removes its directory when this process
//! exits (set GAMEOPS_REAL_STACK_KEEP=1 to keep the directory and its logs).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{LazyLock, OnceLock};

use serde_json::{Value, json};

#[path = "real_control_plane/argo.rs"]
mod argo;
mod common;
#[path = "real_control_plane/differential.rs"]
mod differential;
#[path = "real_control_plane/flux.rs"]
mod flux;
#[path = "real_control_plane/node.rs"]
mod node;

const REPO: &str = env!("CARGO_MANIFEST_DIR");
/// The plugin sidecar's account: `<plugin>-executor-plugin` in the
/// workflow's namespace (manifests/rbac-executor-plugin.yaml).
const PLUGIN_SA: &str = "system:serviceaccount:argo:gameops-executor-plugin";
/// The gameops Deployment's account (manifests/gameops/rbac.yaml).
const GAMEOPS_SA: &str = "system:serviceaccount:gameops-system:gameops";
/// Where the game servers live in manifests/.
const GAME_NS: &str = "default";
/// Where release workflows run in manifests/.
const ARGO_NS: &str = "argo";

/// The running control plane of this test binary.
struct Stack {
    dir: PathBuf,
    kubeconfig: PathBuf,
}

static STACK: LazyLock<Stack> = LazyLock::new(|| start_stack(true));

/// A second cluster (kube-apiserver, etcd, kube-controller-manager, no
/// Argo), for the multi-region release: its region `us-east`.
static SECOND_STACK: LazyLock<Stack> = LazyLock::new(|| start_stack(false));

/// `scripts/real-stack up` in a temporary folder, with Argo's workflow
/// controller when `argo`; taken down when this test binary exits. The
/// script picks free ports before the components bind them, so another
/// process can take one in between: that failure is tried again, on new
/// ports.
fn start_stack(argo: bool) -> Stack {
    for _ in 0..2 {
        match try_start_stack(argo) {
            Ok(stack) => return stack,
            Err(why) if why.contains("address already in use") => {
                eprintln!("real-stack: a port was taken meanwhile; starting again on new ports");
            }
            Err(why) => panic!("{why}"),
        }
    }
    try_start_stack(argo).unwrap_or_else(|why| panic!("{why}"))
}

fn try_start_stack(argo: bool) -> Result<Stack, String> {
    let dir = tempfile::Builder::new()
        .prefix("gameops-real-stack-")
        .tempdir()
        .expect("a temporary directory")
        .keep();
    let keep = std::env::var_os("GAMEOPS_REAL_STACK_KEEP").is_some();
    let out = Command::new(format!("{REPO}/scripts/real-stack"))
        .arg("up")
        .arg(&dir)
        .env(
            "GAMEOPS_REAL_STACK_OWNER_PID",
            std::process::id().to_string(),
        )
        .env(
            "GAMEOPS_REAL_STACK_REMOVE_ON_EXIT",
            if keep { "0" } else { "1" },
        )
        .env("GAMEOPS_REAL_STACK_ARGO", if argo { "1" } else { "0" })
        .stdin(Stdio::null())
        .output()
        .expect("scripts/real-stack runs");
    if !out.status.success() {
        // The script printed the failing component's log; the directory
        // goes unless asked to keep it.
        if !keep {
            let _ = std::fs::remove_dir_all(&dir);
        }
        return Err(format!(
            "scripts/real-stack up {} failed:\n{}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let printed = String::from_utf8_lossy(&out.stdout);
    let kubeconfig = PathBuf::from(printed.trim());
    assert_eq!(
        kubeconfig,
        dir.join("kubeconfig"),
        "up prints the path of DIR/kubeconfig"
    );
    assert!(kubeconfig.is_file(), "the admin kubeconfig is written");
    Ok(Stack { dir, kubeconfig })
}

impl Stack {
    /// kubectl as the cluster's admin, with `args` and optional stdin.
    fn kubectl(&self, args: &[&str], input: Option<&str>) -> Output {
        kubectl_at(&self.kubeconfig, &self.dir, args, input)
    }

    /// kubectl that must succeed; its stdout.
    fn ok(&self, args: &[&str], input: Option<&str>) -> String {
        let out = self.kubectl(args, input);
        assert!(
            out.status.success(),
            "kubectl {args:?} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// kubectl's JSON output.
    fn json(&self, args: &[&str], input: Option<&str>) -> Value {
        let out = self.ok(args, input);
        serde_json::from_str(&out).expect("kubectl printed JSON")
    }
}

fn kubectl_at(kubeconfig: &Path, dir: &Path, args: &[&str], input: Option<&str>) -> Output {
    use std::io::Write;
    let mut child = Command::new("kubectl")
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .env("KUBECACHEDIR", dir.join(".kube-cache"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl is installed");
    if let Some(mut stdin) = child.stdin.take()
        && let Some(input) = input
    {
        stdin.write_all(input.as_bytes()).expect("kubectl stdin");
    }
    child.wait_with_output().expect("kubectl output")
}

/// `manifests/` applied once per test binary, as the README installs it:
/// the namespaces Argo's and Flux's installs create, then
/// `kubectl apply -k manifests/` server-side with strict field validation.
/// Returns apply's output.
fn manifests_applied() -> &'static Output {
    static APPLIED: OnceLock<Output> = OnceLock::new();
    APPLIED.get_or_init(|| {
        // `argo` and `flux-system` come with Argo's workflow controller and
        // the Flux Operator (scripts/real-stack), as their installs create them.
        STACK.kubectl(
            &[
                "apply",
                "-k",
                &format!("{REPO}/manifests"),
                "--server-side",
                "--validate=strict",
            ],
            None,
        )
    })
}

/// The version of `module` that a conformance component's go.mod requires.
fn pinned(component: &str, module: &str) -> String {
    let path = format!("{REPO}/conformance/{component}/go.mod");
    let gomod = std::fs::read_to_string(&path).expect("conformance go.mod");
    gomod
        .lines()
        .map(|l| l.trim().trim_start_matches("require ").trim())
        .find_map(|l| {
            let mut words = l.split_whitespace();
            (words.next() == Some(module))
                .then(|| words.next().map(str::to_owned))
                .flatten()
        })
        .unwrap_or_else(|| panic!("{path} requires {module}"))
}

#[test]
#[ignore = "needs the real control plane (scripts/test runs it)"]
fn the_control_plane_is_ready_and_runs_the_pinned_release() {
    assert_eq!(STACK.ok(&["get", "--raw", "/readyz"], None), "ok");
    let version = STACK.json(&["version", "-o", "json"], None);
    assert_eq!(
        version["serverVersion"]["gitVersion"],
        pinned("kube-apiserver", "k8s.io/kubernetes"),
        "kube-apiserver reports the release its go.mod pins"
    );
    let apis = STACK.ok(&["api-versions"], None);
    assert!(
        apis.lines().any(|l| l == "rbac.authorization.k8s.io/v1"),
        "{apis}"
    );
}

#[test]
#[ignore = "needs the real control plane (scripts/test runs it)"]
fn service_account_tokens_are_issued_and_accepted() {
    // TokenRequest (kube-apiserver signs with --service-account-signing-key-file)
    // and the ServiceAccount controller (kube-controller-manager) together:
    // a fresh namespace gets its `default` account, whose token then
    // authenticates as that account.
    STACK.ok(&["create", "namespace", "token-check"], None);
    let mut token = String::new();
    for _ in 0..120 {
        let out = STACK.kubectl(&["-n", "token-check", "create", "token", "default"], None);
        if out.status.success() {
            token = String::from_utf8_lossy(&out.stdout).trim().to_owned();
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    assert_eq!(
        token.split('.').count(),
        3,
        "a JWT for token-check/default (the ServiceAccount controller creates the account)"
    );
    let whoami = as_token(&token, &["auth", "whoami", "-o", "json"]);
    let whoami: Value = serde_json::from_str(&whoami).expect("whoami JSON");
    assert_eq!(
        whoami["status"]["userInfo"]["username"],
        "system:serviceaccount:token-check:default"
    );
}

/// kubectl with only `token` as credential (no client certificate).
fn as_token(token: &str, args: &[&str]) -> String {
    let admin: Value =
        serde_json::from_str(&STACK.ok(&["config", "view", "--raw", "-o", "json"], None))
            .expect("kubeconfig JSON");
    let cluster = &admin["clusters"][0]["cluster"];
    let config = json!({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "c", "cluster": cluster}],
        "users": [{"name": "u", "user": {"token": token}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "c",
    });
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("kubeconfig");
    std::fs::write(&path, config.to_string()).expect("write kubeconfig");
    let out = kubectl_at(&path, dir.path(), args, None);
    assert!(
        out.status.success(),
        "kubectl {args:?} with the token failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
#[ignore = "needs the real control plane (scripts/test runs it)"]
fn the_okg_argo_and_flux_crds_are_established_and_enforced() {
    for crd in [
        "gameservers.game.kruise.io",
        "gameserversets.game.kruise.io",
        "workflows.argoproj.io",
        "workflowtemplates.argoproj.io",
        "workflowtasksets.argoproj.io",
        "resourcesets.fluxcd.controlplane.io",
        "resourcesetinputproviders.fluxcd.controlplane.io",
    ] {
        let status = STACK.ok(
            &[
                "get",
                "crd",
                crd,
                "-o",
                "jsonpath={.status.conditions[?(@.type==\"Established\")].status}",
            ],
            None,
        );
        assert_eq!(status, "True", "{crd} is established");
    }
    // OKG's schema is the one enforced: seed 001's set is accepted, an
    // unknown field is refused by server-side strict validation.
    let set = "apiVersion: game.kruise.io/v1alpha1
kind: GameServerSet
metadata: {name: schema-check, namespace: default}
spec:
  replicas: 3
  updateStrategy: {type: OnDelete}
  gameServerTemplate:
    spec:
      containers:
        - {name: minecraft, image: registry.cn-hangzhou.aliyuncs.com/acs/minecraft-demo:1.12.2}
";
    let dry = [
        "apply",
        "--server-side",
        "--dry-run=server",
        "--validate=strict",
        "-f",
        "-",
    ];
    STACK.ok(&dry, Some(set));
    let bad = set.replace("replicas: 3", "replicas: 3\n  replicaz: 3");
    let out = STACK.kubectl(&dry, Some(&bad));
    assert!(!out.status.success(), "an unknown field is refused");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(".spec.replicaz: field not declared in schema"),
        "{err}"
    );
}

/// The objects `kubectl kustomize manifests/` renders, as `kind/name` in
/// kubectl's lower-case form, with their namespaces.
fn rendered_manifests() -> Vec<Value> {
    let out = Command::new("kubectl")
        .args(["kustomize", &format!("{REPO}/manifests")])
        .output()
        .expect("kubectl kustomize");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|doc| {
            let v: Value = serde::Deserialize::deserialize(doc).expect("YAML document");
            v
        })
        .filter(|v| !v.is_null())
        .collect()
}

#[test]
#[ignore = "needs the real control plane (scripts/test runs it)"]
fn the_manifests_apply_verbatim_with_strict_server_side_validation() {
    let applied = manifests_applied();
    let stderr = String::from_utf8_lossy(&applied.stderr);
    assert!(
        applied.status.success(),
        "kubectl apply -k manifests/ --server-side --validate=strict refused:\n{stderr}"
    );
    assert!(
        !stderr.to_lowercase().contains("warning"),
        "no warnings (unknown or duplicate fields are warned about): {stderr}"
    );
    let stdout = String::from_utf8_lossy(&applied.stdout);
    let objects = rendered_manifests();
    assert!(
        objects.len() > 20,
        "the whole base is rendered: {}",
        objects.len()
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), objects.len(), "one line per object:\n{stdout}");
    assert!(
        lines.iter().all(|l| l.ends_with(" serverside-applied")),
        "{stdout}"
    );
    // Every object is stored as sent: a server-side diff finds nothing
    // (a field the server dropped, defaulted over or rewrote would show).
    let diff = STACK.kubectl(
        &["diff", "--server-side", "-k", &format!("{REPO}/manifests")],
        None,
    );
    assert_eq!(
        diff.status.code(),
        Some(0),
        "kubectl diff after apply:\n{}{}",
        String::from_utf8_lossy(&diff.stdout),
        String::from_utf8_lossy(&diff.stderr)
    );
    // Each object is there, in its namespace.
    for o in &objects {
        let kind = o["kind"].as_str().expect("kind");
        let name = o["metadata"]["name"].as_str().expect("name");
        let group = o["apiVersion"]
            .as_str()
            .and_then(|a| a.split_once('/'))
            .map(|(g, _)| g)
            .unwrap_or("");
        let resource = if group.is_empty() {
            kind.to_lowercase()
        } else {
            format!("{}.{group}", kind.to_lowercase())
        };
        let mut args = vec!["get", resource.as_str(), name, "-o", "name"];
        if let Some(ns) = o["metadata"]["namespace"].as_str() {
            args.extend(["-n", ns]);
        }
        STACK.ok(&args, None);
    }
}

#[test]
#[ignore = "needs the real control plane (scripts/test runs it)"]
fn strict_validation_would_refuse_an_unknown_field_in_a_workflow_template() {
    // The control for the test above: Argo's full CRD schema is enforced,
    // so "accepted" means every field of the templates is one Argo knows.
    assert!(manifests_applied().status.success());
    let path = format!("{REPO}/workflow-templates/rollback.yaml");
    let template = std::fs::read_to_string(&path).expect("rollback.yaml");
    let mut doc: Value = serde_yaml_ng::from_str(&template).expect("YAML");
    doc["metadata"]["namespace"] = json!(ARGO_NS);
    doc["metadata"]["name"] = json!("rollback-with-a-typo");
    doc["spec"]["templates"][0]["retryStrateg"] = json!({"limit": 1});
    let out = STACK.kubectl(
        &[
            "apply",
            "--server-side",
            "--dry-run=server",
            "--validate=strict",
            "-f",
            "-",
        ],
        Some(&doc.to_string()),
    );
    assert!(!out.status.success(), "a misspelt field is refused");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(".spec.templates[0].retryStrateg: field not declared in schema"),
        "{err}"
    );
}

/// What `user` may do in `namespace` beyond what every authenticated
/// account may (discovery, self reviews): `(apiGroup, resource, verb)`, as
/// kube-apiserver's RBAC authorizer reports it (SelfSubjectRulesReview,
/// impersonated).
fn granted(user: &str, namespace: &str) -> BTreeSet<(String, String, String)> {
    let rules = |as_user: &str| -> BTreeSet<(String, String, String)> {
        let review = json!({
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectRulesReview",
            "spec": {"namespace": namespace},
        });
        let v = STACK.json(
            &[
                "create",
                "-f",
                "-",
                "-o",
                "json",
                // kubectl's own check would list CRDs as `as_user`.
                "--validate=false",
                &format!("--as={as_user}"),
            ],
            Some(&review.to_string()),
        );
        let mut set = BTreeSet::new();
        for rule in v["status"]["resourceRules"]
            .as_array()
            .expect("resourceRules")
        {
            let list = |k: &str| -> Vec<String> {
                rule[k]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|s| s.as_str().map(str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default()
            };
            assert!(
                list("resourceNames").is_empty(),
                "no per-name rules expected: {rule}"
            );
            for g in list("apiGroups") {
                for r in list("resources") {
                    for verb in list("verbs") {
                        set.insert((g.clone(), r.clone(), verb));
                    }
                }
            }
        }
        set
    };
    let baseline = rules("system:serviceaccount:argo:no-roles-at-all");
    rules(user).difference(&baseline).cloned().collect()
}

fn rules(list: &[(&str, &str, &[&str])]) -> BTreeSet<(String, String, String)> {
    list.iter()
        .flat_map(|(g, r, verbs)| {
            verbs
                .iter()
                .map(move |v| (g.to_string(), r.to_string(), v.to_string()))
        })
        .collect()
}

/// What the release ops use (src/ops/): GameServerSets read and merge
/// patched, GameServers listed, watched (one informer per namespace) and
/// patched, Pods listed for OKG's deletion marks; nothing else in the game
/// servers' namespace.
fn what_the_ops_use_on_game_servers() -> BTreeSet<(String, String, String)> {
    const RW: &[&str] = &["get", "list", "watch", "patch"];
    rules(&[
        ("game.kruise.io", "gameservers", RW),
        ("game.kruise.io", "gameserversets", RW),
        ("", "pods", &["list"]),
    ])
}

#[test]
#[ignore = "needs the real control plane (scripts/test runs it)"]
fn the_plugin_account_may_do_exactly_what_its_ops_use() {
    assert!(manifests_applied().status.success());
    for sa in [PLUGIN_SA, GAMEOPS_SA] {
        assert_eq!(
            granted(sa, GAME_NS),
            what_the_ops_use_on_game_servers(),
            "{sa} in {GAME_NS}"
        );
        // Whether a lease's holder still runs: its Workflow, read only.
        assert_eq!(
            granted(sa, ARGO_NS),
            rules(&[("argoproj.io", "workflows", &["get"])]),
            "{sa} in {ARGO_NS}"
        );
        assert_eq!(
            granted(sa, "kube-system"),
            BTreeSet::new(),
            "{sa} elsewhere"
        );
    }
    // The same, asked as `kubectl auth can-i` asks it (exit 0 = yes).
    let can = |args: &[&str]| -> bool {
        let mut all = vec!["auth", "can-i"];
        all.extend_from_slice(args);
        let as_plugin = format!("--as={PLUGIN_SA}");
        all.push(&as_plugin);
        let out = STACK.kubectl(&all, None);
        match out.status.code() {
            Some(0) => true,
            Some(1) => false,
            _ => panic!("kubectl {all:?}: {}", String::from_utf8_lossy(&out.stderr)),
        }
    };
    for yes in [
        &["patch", "gameserversets.game.kruise.io", "-n", GAME_NS][..],
        &["watch", "gameservers.game.kruise.io", "-n", GAME_NS],
        &["list", "pods", "-n", GAME_NS],
        &["get", "workflows.argoproj.io", "-n", ARGO_NS],
    ] {
        assert!(can(yes), "the plugin may {yes:?}");
    }
    for no in [
        &["delete", "gameservers.game.kruise.io", "-n", GAME_NS][..],
        &["create", "gameserversets.game.kruise.io", "-n", GAME_NS],
        &["update", "gameserversets.game.kruise.io", "-n", GAME_NS],
        &[
            "patch",
            "gameserversets.game.kruise.io",
            "--subresource=scale",
            "-n",
            GAME_NS,
        ],
        &[
            "patch",
            "gameservers.game.kruise.io",
            "--subresource=status",
            "-n",
            GAME_NS,
        ],
        &["create", "pods", "-n", GAME_NS],
        &["get", "pods", "-n", GAME_NS],
        &["create", "events", "-n", GAME_NS],
        &["get", "secrets", "-n", GAME_NS],
        &["list", "gameservers.game.kruise.io", "--all-namespaces"],
        &["patch", "workflows.argoproj.io", "-n", ARGO_NS],
        &["list", "workflows.argoproj.io", "-n", ARGO_NS],
    ] {
        assert!(!can(no), "the plugin may not {no:?}");
    }
}

#[test]
#[ignore = "needs the real control plane (scripts/test runs it)"]
fn the_token_secrets_argo_mounts_are_filled_and_authenticate() {
    // manifests/ creates `<account>.service-account-token` for the agent's
    // account and the plugin's; kube-controller-manager's token controller
    // fills them, and kube-apiserver accepts the token as that account.
    assert!(manifests_applied().status.success());
    for account in ["default", "gameops-executor-plugin"] {
        let secret = format!("{account}.service-account-token");
        let mut token = String::new();
        for _ in 0..120 {
            token = STACK.ok(
                &[
                    "-n",
                    ARGO_NS,
                    "get",
                    "secret",
                    &secret,
                    "-o",
                    "go-template={{if .data.token}}{{.data.token | base64decode}}{{end}}",
                ],
                None,
            );
            if !token.is_empty() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(250));
        }
        assert_eq!(token.split('.').count(), 3, "{secret} holds a JWT");
        let whoami: Value =
            serde_json::from_str(&as_token(&token, &["auth", "whoami", "-o", "json"]))
                .expect("whoami JSON");
        assert_eq!(
            whoami["status"]["userInfo"]["username"],
            format!("system:serviceaccount:{ARGO_NS}:{account}")
        );
    }
}

/// Issue 11: a lease whose workflow has finished is free. The plugin asks
/// the cluster for the holder's Argo `Workflow` (argoproj.io/v1alpha1, as
/// Argo's controller leaves it: `status.phase`), here on the real
/// kube-apiserver with Argo's own CRD.
#[test]
#[ignore = "needs the real control plane (scripts/test runs it)"]
fn a_lease_held_by_a_finished_workflow_is_free() {
    use gameops::ops::ledger::{Holder, Lease, holder};
    manifests_applied();
    let workflow = |name: &str, phase: &str| {
        json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow",
            "metadata": {"name": name, "namespace": ARGO_NS},
            "spec": {"entrypoint": "main", "templates": [{"name": "main", "suspend": {}}]},
            "status": {"phase": phase}})
        .to_string()
    };
    let mut uids = std::collections::BTreeMap::new();
    for (name, phase) in [
        ("wf-done", "Succeeded"),
        ("wf-busy", "Running"),
        ("wf-failed", "Failed"),
    ] {
        STACK.ok(&["apply", "-f", "-"], Some(&workflow(name, phase)));
        let uid = STACK.ok(
            &[
                "get",
                "workflow",
                name,
                "-n",
                ARGO_NS,
                "-o",
                "jsonpath={.metadata.uid}",
            ],
            None,
        );
        uids.insert(name, uid);
    }
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let states = runtime.block_on(async {
        let kubeconfig =
            kube::config::Kubeconfig::read_from(&STACK.kubeconfig).expect("kubeconfig");
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
            .await
            .expect("config");
        let client = kube::Client::try_from(config).expect("client");
        let lease = |name: &str, uid: &str| Lease {
            holder: uid.to_owned(),
            workflow: format!("{ARGO_NS}/{name}"),
            until: jiff::Timestamp::now(),
        };
        let mut states = Vec::new();
        for (name, uid) in [
            ("wf-done", uids["wf-done"].as_str()),
            ("wf-busy", uids["wf-busy"].as_str()),
            ("wf-failed", uids["wf-failed"].as_str()),
            ("wf-gone", "no-such-uid"),
            // The name now belongs to a newer workflow: the holder is gone.
            ("wf-busy", "an-older-uid"),
        ] {
            states.push(holder(&client, &lease(name, uid)).await);
        }
        states
    });
    assert_eq!(
        states,
        [
            Holder::Finished("Succeeded".into()),
            Holder::Running("Running".into()),
            Holder::Finished("Failed".into()),
            Holder::Finished("gone".into()),
            Holder::Finished("gone (a newer workflow has its name)".into()),
        ]
    );
}

/// Held by tests during which no `gameops fleet` may act on the cluster
/// but their own: the fleet watches every namespace, and would reconcile
/// the differential test's sets as OKG would.
static FLEET_EXCLUSIVE: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn fleet_exclusive() -> std::sync::MutexGuard<'static, ()> {
    FLEET_EXCLUSIVE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A process of ours that stops with the test.
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `gameops run FILE` as a user runs it, with the admin kubeconfig.
fn gameops_run(file: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gameops"))
        .args(["run", file])
        .current_dir(REPO)
        .env("KUBECONFIG", &STACK.kubeconfig)
        .env("HOME", &STACK.dir)
        .stdin(Stdio::null())
        .output()
        .expect("gameops run starts")
}

/// `name image opsState uid` of each GameServer and `name image` of each
/// pod of `minecraft`, sorted.
fn fleet_table(stack: &Stack) -> (Vec<String>, Vec<String>) {
    let lines = |kind: &str, columns: &str| -> Vec<String> {
        let out = stack.ok(
            &[
                "get",
                kind,
                "-n",
                GAME_NS,
                "-l",
                "game.kruise.io/owner-gss=minecraft",
                "--sort-by=.metadata.name",
                "--no-headers",
                "-o",
                &format!("custom-columns={columns}"),
            ],
            None,
        );
        out.lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect()
    };
    (
        lines(
            "gs",
            "N:.metadata.name,I:.spec.containers[0].image,O:.spec.opsState,U:.metadata.uid",
        ),
        lines("pods", "N:.metadata.name,I:.spec.containers[0].image"),
    )
}

/// Whether each server has its pod and each pod its server.
fn same_names(servers: &[String], pods: &[String]) -> bool {
    let first = |l: &String| l.split(' ').next().unwrap_or("").to_owned();
    servers.iter().map(first).collect::<Vec<_>>() == pods.iter().map(first).collect::<Vec<_>>()
}

/// The fleet table once `done` holds for it (at most 60 s).
fn settled(
    stack: &Stack,
    done: impl Fn(&[String], &[String]) -> bool,
) -> (Vec<String>, Vec<String>) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let (servers, pods) = fleet_table(stack);
        if done(&servers, &pods) || std::time::Instant::now() > deadline {
            return (servers, pods);
        }
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
}

/// `gameops fleet` attached to the stack (the stand-in for OpenKruiseGame
/// and kubelet) with `extra` arguments, logging to DIR/logs/fleet.log.
fn fleet_attached(extra: &[&str]) -> Running {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(STACK.dir.join("logs/fleet.log"))
        .expect("fleet log");
    Running(
        Command::new(env!("CARGO_BIN_EXE_gameops"))
            .args(["fleet", "--sim-startup-ms", "300", "--sim-jitter-ms", "200"])
            .args(extra)
            .env("KUBECONFIG", &STACK.kubeconfig)
            .stdin(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("gameops fleet starts"),
    )
}

/// OpenKruiseGame's example set `minecraft` (three servers) with all three
/// pods Ready, then `minecraft-0` Allocated, as the example starts.
fn minecraft_with_an_allocated_server(stack: &Stack) {
    stack.ok(&["apply", "-f", "-"], Some(common::MINECRAFT_GSS));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let ready = stack.ok(
            &["get", "pods", "-n", GAME_NS, "-l", "game.kruise.io/owner-gss=minecraft", "-o",
              "jsonpath={range .items[*]}{.status.conditions[?(@.type==\"Ready\")].status}{\" \"}{end}"],
            None,
        );
        if ready.split_whitespace().filter(|s| *s == "True").count() == 3 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "three pods never became Ready: {ready}"
        );
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
    stack.ok(
        &[
            "patch",
            "gs",
            "minecraft-0",
            "-n",
            GAME_NS,
            "--type=merge",
            "-p",
            r#"{"spec":{"opsState":"Allocated"}}"#,
        ],
        None,
    );
}

/// The seamless-release example's end table, on `minecraft`: servers 0, 3,
/// 4 and 5, the Allocated old one untouched (`allocated_uid`), three new
/// Ready ones (the example's own `check-pods-ready` says so), one pod per
/// server and replicas 4.
fn the_examples_end_table(stack: &Stack, allocated_uid: &str) {
    use common::seed::{NEW_IMAGE, OLD_IMAGE, check_pods_ready};
    // The controller removes the retired servers (and the garbage collector
    // their pods) right after the release lowers replicas.
    let (servers, pods) = settled(stack, |s, p| s.len() == 4 && same_names(s, p));
    let names: Vec<&str> = servers
        .iter()
        .map(|l| l.split(' ').next().unwrap_or(""))
        .collect();
    assert_eq!(
        names,
        ["minecraft-0", "minecraft-3", "minecraft-4", "minecraft-5"],
        "{servers:?}"
    );
    assert_eq!(
        servers[0],
        format!("minecraft-0 {OLD_IMAGE} Allocated {allocated_uid}")
    );
    for line in &servers[1..] {
        assert!(line.contains(&format!(" {NEW_IMAGE} None ")), "{line}");
    }
    let pod_names: Vec<&str> = pods
        .iter()
        .map(|l| l.split(' ').next().unwrap_or(""))
        .collect();
    assert_eq!(
        pod_names, names,
        "one pod per server, the retired ones gone"
    );
    let (ok, out) = check_pods_ready(&stack.kubeconfig, &stack.dir);
    assert!(
        ok && out.contains(&format!("Ready Pods with image {NEW_IMAGE}: 3")),
        "{out}"
    );
    let replicas = stack.ok(
        &[
            "get",
            "gss",
            "minecraft",
            "-n",
            GAME_NS,
            "-o",
            "jsonpath={.spec.replicas}",
        ],
        None,
    );
    assert_eq!(
        replicas, "4",
        "the set is back at its size plus the Allocated old server"
    );
}

/// Seed 001 end to end on kube-apiserver, with `gameops fleet` attached as
/// the stand-in for OpenKruiseGame and kubelet (Pods with OKG's labels,
/// kube-controller-manager's garbage collector removing what is deleted):
/// the seamless-release example, the seed's own `check-pods-ready`
/// script, then the rollback example right after on the same set. The
/// Allocated server is never touched (same uid throughout).
#[test]
#[ignore = "needs the real control plane (scripts/test runs it)"]
#[allow(
    clippy::too_many_lines,
    reason = "one scenario, read top to bottom as a user runs it"
)]
fn a_release_then_a_rollback_run_on_kube_apiserver_with_the_fleet_attached() {
    use common::seed::{NEW_IMAGE, OLD_IMAGE, check_pods_ready};
    manifests_applied();
    let _exclusive = fleet_exclusive();
    let _fleet = fleet_attached(&[]);
    minecraft_with_an_allocated_server(&STACK);
    let (before, _) = fleet_table(&STACK);
    let allocated_uid = before[0].rsplit(' ').next().expect("a uid").to_owned();
    let (ok, out) = check_pods_ready(&STACK.kubeconfig, &STACK.dir);
    assert!(!ok && out.contains(": 0"), "before the release: {out}");

    let release = gameops_run("workflow-templates/examples/seamless-release.yaml");
    let printed = String::from_utf8_lossy(&release.stdout);
    assert!(
        release.status.success(),
        "release failed:\n{printed}\n{}",
        String::from_utf8_lossy(&release.stderr)
    );
    the_examples_end_table(&STACK, &allocated_uid);

    let rollback = gameops_run("workflow-templates/examples/rollback.yaml");
    assert!(
        rollback.status.success(),
        "rollback failed:\n{}",
        String::from_utf8_lossy(&rollback.stdout)
    );
    let (servers, pods) = settled(&STACK, |s, p| {
        same_names(s, p) && s.iter().all(|l| !l.contains(NEW_IMAGE))
    });
    assert_eq!(
        servers[0],
        format!("minecraft-0 {OLD_IMAGE} Allocated {allocated_uid}")
    );
    assert!(servers.iter().all(|l| l.contains(OLD_IMAGE)), "{servers:?}");
    assert_eq!(servers.len(), pods.len(), "{servers:?} {pods:?}");
    STACK.ok(
        &["delete", "gss", "minecraft", "-n", GAME_NS, "--wait=true"],
        None,
    );
}

/// What each ResourceSet of `manifests/flux/` renders for a release (its
/// `<< inputs.* >>` filled as the Flux Operator fills them) is a Workflow
/// kube-apiserver accepts under Argo's CRD with strict field validation,
/// naming a WorkflowTemplate that exists.
#[test]
#[ignore = "needs the real control plane (scripts/test runs it)"]
fn the_release_workflows_flux_renders_are_accepted_by_argos_crd() {
    manifests_applied();
    let text = std::fs::read_to_string(format!("{REPO}/manifests/flux/resourceset.yaml"))
        .expect("resourceset.yaml");
    let rendered = text
        .replace("<< inputs.id >>", "48955639")
        .replace("<< inputs.tag | quote >>", "\"6.0.4\"")
        .replace("<< inputs.tag >>", "6.0.4")
        .replace(
            "<< inputs.digest >>",
            "sha256:0d7bb7e5a0d1d6a8e6f1a1f5b9d2b5c2b0f2a9c1e3d4f5a6b7c8d9e0f1a2b3c4",
        );
    assert!(
        !rendered.contains("<<"),
        "every input is filled: {rendered}"
    );
    let mut checked = 0;
    for doc in serde_yaml_ng::Deserializer::from_str(&rendered) {
        let rset: Value = serde::Deserialize::deserialize(doc).expect("YAML");
        for workflow in rset["spec"]["resources"].as_array().expect("resources") {
            let body = workflow.to_string();
            STACK.ok(
                &["create", "--dry-run=server", "--validate=strict", "-f", "-"],
                Some(&body),
            );
            let template = workflow["spec"]["workflowTemplateRef"]["name"]
                .as_str()
                .expect("a template");
            STACK.ok(&["get", "workflowtemplate", template, "-n", ARGO_NS], None);
            checked += 1;
        }
    }
    assert_eq!(checked, 3, "one release Workflow per environment");
}

/// The same requests to kube-apiserver and to the embedded server (see
/// `differential.rs`): every difference in codes and body shapes is one
/// the README lists, and every listed one still occurs.
#[test]
#[ignore = "needs the real control plane (scripts/test runs it)"]
fn the_embedded_server_answers_as_kube_apiserver() {
    manifests_applied();
    let _exclusive = fleet_exclusive();
    let _ = STACK.kubectl(&["create", "namespace", "differential"], None);
    let embedded = common::Server::start(&["--in-memory"]);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let (found, real) = runtime.block_on(differential::differences(
        &STACK.kubeconfig,
        &embedded.kubeconfig(),
    ));
    let report: Vec<String> = found
        .iter()
        .map(|(name, real, ours, rv, ev)| {
            format!("{name}: kube-apiserver {real:?} {rv}\n  embedded {ours:?} {ev}")
        })
        .collect();
    let names: Vec<&str> = found.iter().map(|(n, ..)| n.as_str()).collect();
    assert_eq!(names, differential::known(), "{}", report.join("\n"));
    // The comparison has substance: kube-apiserver's own answers.
    let answer = |case: &str| {
        real.iter()
            .find(|(name, _)| *name == case)
            .map(|(_, a)| a.clone())
            .expect("the case ran")
    };
    assert_eq!(answer("create again").code, 409);
    assert_eq!(answer("replicas beyond int32").code, 422);
    let conflict = answer("apply patch by another manager");
    assert_eq!(
        (conflict.code, conflict.fields),
        (409, vec![".spec.replicas".to_owned()])
    );
    assert_eq!(answer("apply patch by another manager, forced").code, 200);
    let spec = answer("pod spec patch");
    assert_eq!((spec.code, spec.fields), (422, vec!["spec".to_owned()]));
    assert_eq!(answer("pod image patch").code, 200);
    assert_eq!(answer("pod strategic merge patch").code, 200);
    assert_eq!(answer("strategic merge patch").code, 415);
    let foreground = answer("delete b in the foreground");
    assert_eq!(
        (foreground.code, foreground.what.as_str()),
        (200, "GameServerSet")
    );
    let watch = answer("watch from the first version").what;
    assert!(watch.starts_with("watch MODIFIED"), "{watch}");
    let pods = answer("table of pods");
    assert_eq!(
        pods.fields[..5],
        ["Name", "Ready", "Status", "Restarts", "Age"]
    );
}
