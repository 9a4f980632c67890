//! Packaging: `gameops plugin build` regenerates exactly the committed
//! ConfigMap (so this fails when `plugin/plugin.yaml` changed and the
//! ConfigMap was not rebuilt), the ConfigMap is what Argo's controller
//! loads, and the RBAC manifests grant exactly the verbs the plugin and the
//! agent need.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use k8s_openapi::api::core::v1::{ConfigMap, Container};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use serde_json::Value;

const CONFIGMAP: &str = "gameops-executor-plugin-configmap.yaml";

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn gameops(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gameops"))
        .args(args)
        .output()
        .expect("run gameops")
}

/// A temporary plugin directory holding only a copy of `plugin/plugin.yaml`
/// (edited by `edit`), and what `gameops plugin build DIR` printed.
fn build_copy(edit: impl Fn(String) -> String) -> (tempfile::TempDir, Output) {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        dir.path().join("plugin.yaml"),
        edit(read("plugin/plugin.yaml")),
    )
    .expect("write plugin.yaml");
    let path = dir.path().to_string_lossy().into_owned();
    let out = gameops(&["plugin", "build", &path]);
    (dir, out)
}

fn documents(text: &str) -> Vec<Value> {
    use serde::Deserialize;
    serde_yaml_ng::Deserializer::from_str(text)
        .map(|d| Value::deserialize(d).expect("a YAML document"))
        .collect()
}

#[test]
fn build_reproduces_the_committed_configmap_byte_for_byte() {
    let (dir, out) = build_copy(|s| s);
    assert!(
        out.status.success(),
        "gameops plugin build failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        printed.contains(&format!("{CONFIGMAP} created")) && printed.contains("README.md created"),
        "prints what it wrote, as argo does: {printed}"
    );
    let built = std::fs::read_to_string(dir.path().join(CONFIGMAP)).expect("ConfigMap written");
    assert_eq!(
        built,
        read(&format!("plugin/{CONFIGMAP}")),
        "plugin/{CONFIGMAP} is stale: run `cargo run -- plugin build plugin/` and commit the result"
    );
    let readme = std::fs::read_to_string(dir.path().join("README.md")).expect("README written");
    assert_eq!(
        readme,
        read("plugin/README.md"),
        "plugin/README.md is stale: run `cargo run -- plugin build plugin/` and commit the result"
    );
}

#[test]
fn a_changed_manifest_no_longer_matches_the_committed_configmap() {
    let (dir, out) = build_copy(|s| s.replace("memory: 128Mi", "memory: 256Mi"));
    assert!(out.status.success());
    let built = std::fs::read_to_string(dir.path().join(CONFIGMAP)).expect("ConfigMap written");
    assert_ne!(built, read(&format!("plugin/{CONFIGMAP}")));
    assert!(built.contains("memory: 256Mi"));
}

#[test]
fn the_configmap_is_what_argo_loads_as_the_gameops_plugin() {
    let text = read(&format!("plugin/{CONFIGMAP}"));
    assert!(text.starts_with("# This is an auto-generated file. DO NOT EDIT\n"));
    let cm: ConfigMap = serde_yaml_ng::from_str(&text).expect("a ConfigMap");
    assert_eq!(cm.metadata.name.as_deref(), Some("gameops-executor-plugin"));
    let labels = cm.metadata.labels.clone().unwrap_or_default();
    assert_eq!(
        labels
            .get("workflows.argoproj.io/configmap-type")
            .map(String::as_str),
        Some("ExecutorPlugin")
    );
    let annotations = cm.metadata.annotations.clone().unwrap_or_default();
    assert!(annotations.contains_key("workflows.argoproj.io/description"));
    assert!(annotations.contains_key("workflows.argoproj.io/version"));
    let data = cm.data.clone().unwrap_or_default();
    assert_eq!(
        data.keys().map(String::as_str).collect::<Vec<_>>(),
        ["sidecar.automountServiceAccountToken", "sidecar.container"]
    );
    assert_eq!(data["sidecar.automountServiceAccountToken"], "true");

    let c: Container = serde_yaml_ng::from_str(&data["sidecar.container"]).expect("a Container");
    assert_eq!(c.name, "gameops-executor-plugin");
    let ports = c.ports.clone().unwrap_or_default();
    assert_eq!(ports.first().map(|p| p.container_port), Some(4355));
    let args = c.args.clone().unwrap_or_default();
    assert_eq!(args.first().map(String::as_str), Some("plugin"));
    let listen = args.iter().position(|a| a == "--listen").expect("--listen");
    assert_eq!(
        args.get(listen + 1).map(String::as_str),
        Some("0.0.0.0:4355"),
        "listens where the agent reaches it, on the declared port"
    );
    let resources = c.resources.clone().expect("resources");
    for (kind, list) in [
        ("requests", &resources.requests),
        ("limits", &resources.limits),
    ] {
        let list = list.clone().unwrap_or_default();
        assert!(
            list.contains_key("cpu") && list.contains_key("memory"),
            "{kind} has cpu and memory"
        );
    }
    let sc = c.security_context.clone().expect("securityContext");
    assert_eq!(sc.run_as_non_root, Some(true));
    assert_eq!(
        sc.run_as_user,
        Some(8737),
        "the uid that can read the agent's token"
    );
    assert_eq!(sc.allow_privilege_escalation, Some(false));
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    let drop = sc.capabilities.and_then(|c| c.drop).unwrap_or_default();
    assert_eq!(drop, ["ALL"]);
}

#[test]
fn plugin_yaml_is_an_executor_plugin() {
    let docs = documents(&read("plugin/plugin.yaml"));
    assert_eq!(docs.len(), 1);
    let p = &docs[0];
    assert_eq!(p["apiVersion"], "argoproj.io/v1alpha1");
    assert_eq!(p["kind"], "ExecutorPlugin");
    assert_eq!(p["metadata"]["name"], "gameops");
    assert_eq!(p["spec"]["sidecar"]["automountServiceAccountToken"], true);
}

#[test]
fn build_refuses_what_argo_refuses_with_the_field_named() {
    let cases: [(&str, &str, &str); 4] = [
        ("limits:", "limitz:", "limitz"),
        (
            "      ports:\n        - containerPort: 4355\n",
            "",
            "at least one port",
        ),
        (
            "runAsUser: 8737",
            "runAsUser: 8737\n        runAsUsr: 1",
            "runAsUsr",
        ),
        ("cpu: 50m", "cpu: fifty", "cpu"),
    ];
    for (from, to, named) in cases {
        let (_dir, out) = build_copy(|s| {
            assert!(s.contains(from), "{from}");
            s.replacen(from, to, 1)
        });
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{from} -> {to} must fail");
        assert!(stderr.contains(named), "{named} in: {stderr}");
    }
}

fn rules(role: &Role) -> BTreeSet<(String, String, String)> {
    let mut out = BTreeSet::new();
    for rule in role.rules.clone().unwrap_or_default() {
        for group in rule.api_groups.clone().unwrap_or_default() {
            for resource in rule.resources.clone().unwrap_or_default() {
                for verb in &rule.verbs {
                    out.insert((group.clone(), resource.clone(), verb.clone()));
                }
            }
        }
        assert!(rule.resource_names.is_none() && rule.non_resource_urls.is_none());
    }
    out
}

fn expected(grants: &[(&str, &str, &[&str])]) -> BTreeSet<(String, String, String)> {
    grants
        .iter()
        .flat_map(|(g, r, verbs)| {
            verbs
                .iter()
                .map(|v| (g.to_string(), r.to_string(), v.to_string()))
        })
        .collect()
}

/// The documents of a manifest file, by kind.
fn by_kind(path: &str) -> Vec<(String, Value)> {
    let text = read(path);
    assert!(
        text.starts_with('#'),
        "{path} says at the top what it is for"
    );
    documents(&text)
        .into_iter()
        .map(|d| (d["kind"].as_str().unwrap_or("").to_owned(), d))
        .collect()
}

fn one<T: serde::de::DeserializeOwned>(docs: &[(String, Value)], kind: &str) -> T {
    let found: Vec<&Value> = docs
        .iter()
        .filter(|(k, _)| k == kind)
        .map(|(_, d)| d)
        .collect();
    assert_eq!(found.len(), 1, "one {kind}");
    serde_json::from_value(found[0].clone()).unwrap_or_else(|e| panic!("{kind}: {e}"))
}

#[test]
fn the_plugin_service_account_has_exactly_the_verbs_it_needs() {
    let docs = by_kind("manifests/rbac-executor-plugin.yaml");
    assert_eq!(
        docs.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
        ["ServiceAccount", "Role", "RoleBinding", "Secret"]
    );
    let sa: k8s_openapi::api::core::v1::ServiceAccount = one(&docs, "ServiceAccount");
    // Argo runs the sidecar as <plugin name>-executor-plugin.
    assert_eq!(sa.metadata.name.as_deref(), Some("gameops-executor-plugin"));
    assert!(sa.metadata.namespace.is_some(), "namespaced");
    let role: Role = one(&docs, "Role");
    assert!(
        role.metadata.namespace.is_some(),
        "a namespaced Role, not a ClusterRole"
    );
    let granted = rules(&role);
    assert!(
        granted
            .iter()
            .all(|(g, r, v)| g != "*" && r != "*" && v != "*"),
        "no wildcards"
    );
    assert_eq!(
        granted,
        expected(&[
            (
                "game.kruise.io",
                "gameservers",
                &["get", "list", "watch", "patch"]
            ),
            (
                "game.kruise.io",
                "gameserversets",
                &["get", "list", "watch", "patch"]
            ),
            ("", "pods", &["list"]),
        ])
    );
    let binding: RoleBinding = one(&docs, "RoleBinding");
    assert_eq!(binding.role_ref.kind, "Role");
    assert_eq!(Some(binding.role_ref.name), role.metadata.name);
    assert_eq!(binding.metadata.namespace, role.metadata.namespace);
    let subjects = binding.subjects.unwrap_or_default();
    assert_eq!(subjects.len(), 1);
    assert_eq!(subjects[0].kind, "ServiceAccount");
    assert_eq!(Some(&subjects[0].name), sa.metadata.name.as_ref());
    assert_eq!(subjects[0].namespace, sa.metadata.namespace);
}

#[test]
fn the_agent_role_grants_exactly_the_task_set_verbs() {
    let docs = by_kind("manifests/rbac-agent.yaml");
    assert_eq!(
        docs.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
        ["Role", "RoleBinding", "Secret"]
    );
    let role: Role = one(&docs, "Role");
    assert!(role.metadata.namespace.is_some());
    assert_eq!(
        rules(&role),
        expected(&[
            ("argoproj.io", "workflowtasksets", &["list", "watch"]),
            ("argoproj.io", "workflowtasksets/status", &["patch"]),
        ])
    );
    let binding: RoleBinding = one(&docs, "RoleBinding");
    assert_eq!(Some(binding.role_ref.name), role.metadata.name);
    let subjects = binding.subjects.unwrap_or_default();
    assert_eq!(subjects.len(), 1);
    assert_eq!(subjects[0].kind, "ServiceAccount");
    assert_eq!(binding.metadata.namespace, role.metadata.namespace);
}
