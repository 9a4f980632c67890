//! Checks the kustomize base in `manifests/`: builds it with the real
//! `kubectl kustomize` (offline) and checks what it installs, that every
//! reference inside it (RoleBinding role and subjects, ServiceAccount,
//! ConfigMap, Service selector, the Flux providers' URL) names an object the
//! build really contains, and that the example `gameops.yaml` is one gameops
//! accepts, with every file it names mounted in the pod.
//!
//! The checks are functions returning the problems they find, so
//! `the_checks_catch_a_broken_build` can prove each one fails on a damaged
//! copy of the build rather than passing vacuously.
#![allow(
    clippy::too_many_lines,
    reason = "a scenario or a table reads best top to bottom"
)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use gameops::registry::config::{Config, ConfigFile};
use serde::Deserialize;
use serde_json::{Value, json};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const KUBECTL: &str = "/usr/bin/kubectl";

/// Where the gameops service runs.
const GAMEOPS_NS: &str = "gameops-system";
/// Where workflows run: Argo's plugin ConfigMap and the WorkflowTemplates.
const ARGO_NS: &str = "argo";
/// Where the game servers live.
const GAME_NS: &str = "default";
const FLUX_NS: &str = "flux-system";
/// Namespaces the base uses but does not create: installed by Argo, Flux
/// and Kubernetes itself.
const PREREQUISITE_NAMESPACES: [&str; 3] = [ARGO_NS, GAME_NS, FLUX_NS];
const PORT: i64 = 4355;
const CONFIG_PATH: &str = "/etc/gameops/gameops.yaml";
const TOKEN_PATH: &str = "/var/run/gameops/token";
/// The image every manifest names: the crate version (Dockerfile, tests/image.rs).
const IMAGE: &str = concat!("ghcr.io/gameops/gameops:", env!("CARGO_PKG_VERSION"));
const WORKFLOW_TEMPLATES: [&str; 4] = [
    "multi-region-release",
    "promote",
    "rollback",
    "seamless-release",
];
const ENVS: [&str; 3] = ["develop", "production", "staging"];
/// Kinds that have no namespace.
const CLUSTER_SCOPED: [&str; 3] = ["Namespace", "ClusterRole", "ClusterRoleBinding"];

// ---------------------------------------------------------------------------
// Building

/// Every document of a multi-document YAML text, empty ones skipped.
fn documents(text: &str) -> Vec<Value> {
    serde_yaml_ng::Deserializer::from_str(text)
        .map(|doc| Value::deserialize(doc).unwrap_or_else(|e| panic!("not YAML: {e}")))
        .filter(|v| !v.is_null())
        .collect()
}

/// `kubectl kustomize DIR`, parsed.
fn kustomize(dir: &Path) -> Vec<Value> {
    let out = Command::new(KUBECTL)
        .arg("kustomize")
        .arg(dir)
        .output()
        .unwrap_or_else(|e| panic!("{KUBECTL}: {e} (scripts/test installs kubectl)"));
    assert!(
        out.status.success(),
        "kubectl kustomize {} failed:\n{}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    documents(&String::from_utf8(out.stdout).unwrap())
}

/// The build of `manifests/`, once per test binary.
fn build() -> &'static [Value] {
    static BUILD: OnceLock<Vec<Value>> = OnceLock::new();
    BUILD.get_or_init(|| kustomize(&Path::new(ROOT).join("manifests")))
}

fn read(path: &str) -> String {
    std::fs::read_to_string(Path::new(ROOT).join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

// ---------------------------------------------------------------------------
// Looking things up

fn str_at<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

fn kind(v: &Value) -> &str {
    str_at(v, "/kind")
}

fn name(v: &Value) -> &str {
    str_at(v, "/metadata/name")
}

fn namespace(v: &Value) -> &str {
    str_at(v, "/metadata/namespace")
}

/// `Kind ns/name`, for messages.
fn id(v: &Value) -> String {
    format!("{} {}/{}", kind(v), namespace(v), name(v))
}

fn find<'a>(docs: &'a [Value], kind_: &str, ns: &str, name_: &str) -> Option<&'a Value> {
    docs.iter()
        .find(|d| kind(d) == kind_ && namespace(d) == ns && name(d) == name_)
}

fn get<'a>(docs: &'a [Value], kind_: &str, ns: &str, name_: &str) -> &'a Value {
    find(docs, kind_, ns, name_).unwrap_or_else(|| panic!("the build has no {kind_} {ns}/{name_}"))
}

fn all<'a>(docs: &'a [Value], kind_: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| kind(d) == kind_).collect()
}

fn array<'a>(v: &'a Value, pointer: &str) -> &'a [Value] {
    v.pointer(pointer)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// Whether a ServiceAccount exists once the build is applied: in the build,
/// or `default`, which Kubernetes creates in every namespace, in a
/// namespace the build creates or requires.
fn service_account_exists(docs: &[Value], ns: &str, name_: &str) -> bool {
    find(docs, "ServiceAccount", ns, name_).is_some()
        || (name_ == "default"
            && (find(docs, "Namespace", "", ns).is_some() || PREREQUISITE_NAMESPACES.contains(&ns)))
}

/// The gameops Deployment and its one container.
fn gameops(docs: &[Value]) -> (&Value, &Value) {
    let deployment = get(docs, "Deployment", GAMEOPS_NS, "gameops");
    let containers = array(deployment, "/spec/template/spec/containers");
    assert_eq!(containers.len(), 1, "one container");
    (deployment, &containers[0])
}

/// The value after `flag` in `args`.
fn flag<'a>(args: &'a [Value], flag: &str) -> Option<&'a str> {
    args.iter()
        .position(|a| a == flag)
        .and_then(|i| args.get(i + 1))
        .and_then(Value::as_str)
}

/// The volume (of the pod) mounted where `path` lies, and the path inside
/// the volume.
fn volume_for<'a>(
    deployment: &'a Value,
    container: &Value,
    path: &str,
) -> Option<(&'a Value, String)> {
    let mount = array(container, "/volumeMounts").iter().find(|m| {
        let dir = str_at(m, "/mountPath").trim_end_matches('/');
        path.strip_prefix(dir)
            .is_some_and(|rest| rest.starts_with('/'))
    })?;
    let inner = path[str_at(mount, "/mountPath").trim_end_matches('/').len() + 1..].to_owned();
    let volume = array(deployment, "/spec/template/spec/volumes")
        .iter()
        .find(|v| v["name"] == mount["name"])?;
    Some((volume, inner))
}

/// The container port a probe or Service port names (a number, or a port
/// name of the container).
fn resolve_port(container: &Value, port: &Value) -> Option<i64> {
    match port {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => array(container, "/ports")
            .iter()
            .find(|p| p["name"] == *s)
            .and_then(|p| p["containerPort"].as_i64()),
        _ => None,
    }
}

// ---------------------------------------------------------------------------
// The checks: each returns what is wrong (empty: nothing)

/// No object twice, every namespaced object in a namespace, only the
/// namespaces the install is meant to touch, no Secrets (no placeholder
/// credentials) but the empty ServiceAccount token Secrets that Argo's agent
/// pod mounts and the token controller fills.
fn check_objects(docs: &[Value]) -> Vec<String> {
    let mut problems = Vec::new();
    let mut seen = BTreeSet::new();
    for d in docs {
        if !seen.insert((kind(d), namespace(d), name(d))) {
            problems.push(format!("{} appears twice", id(d)));
        }
        let ns = namespace(d);
        if CLUSTER_SCOPED.contains(&kind(d)) {
            if !ns.is_empty() {
                problems.push(format!("{} is cluster-scoped but has a namespace", id(d)));
            }
        } else if ns.is_empty() {
            problems.push(format!(
                "{} has no namespace: it would land in the namespace of whoever applies it",
                id(d)
            ));
        } else if ns != GAMEOPS_NS && !PREREQUISITE_NAMESPACES.contains(&ns) {
            problems.push(format!("{} is in an unexpected namespace", id(d)));
        }
        if kind(d) == "Secret" && !is_token_secret(d) {
            problems.push(format!("{} is a credential in the base", id(d)));
        }
    }
    problems
}

/// A `<account>.service-account-token` Secret for the token controller to
/// fill: the type, the account's annotation, the name Argo mounts, no data.
fn is_token_secret(d: &Value) -> bool {
    let account = str_at(
        d,
        "/metadata/annotations/kubernetes.io~1service-account.name",
    );
    str_at(d, "/type") == "kubernetes.io/service-account-token"
        && !account.is_empty()
        && name(d) == format!("{account}.service-account-token")
        && d.get("data").is_none()
        && d.get("stringData").is_none()
}

/// Every RoleBinding's Role and ServiceAccounts exist.
fn check_bindings(docs: &[Value]) -> Vec<String> {
    let mut problems = Vec::new();
    for b in all(docs, "RoleBinding") {
        let role_kind = str_at(b, "/roleRef/kind");
        let role_ns = if role_kind == "Role" {
            namespace(b)
        } else {
            ""
        };
        if find(docs, role_kind, role_ns, str_at(b, "/roleRef/name")).is_none() {
            problems.push(format!(
                "{} binds {role_kind} {:?}, which is not in the build",
                id(b),
                str_at(b, "/roleRef/name")
            ));
        }
        let subjects = array(b, "/subjects");
        if subjects.is_empty() {
            problems.push(format!("{} has no subjects", id(b)));
        }
        for s in subjects {
            let (sk, sns, sn) = (
                str_at(s, "/kind"),
                str_at(s, "/namespace"),
                str_at(s, "/name"),
            );
            if sk != "ServiceAccount" || !service_account_exists(docs, sns, sn) {
                problems.push(format!(
                    "{} binds {sk} {sns}/{sn}, which does not exist",
                    id(b)
                ));
            }
        }
    }
    problems
}

/// The gameops Deployment runs the service as asked, on what the build
/// provides.
fn check_deployment(docs: &[Value]) -> Vec<String> {
    let mut problems = Vec::new();
    let (deployment, container) = gameops(docs);
    let pod = &deployment["spec"]["template"]["spec"];
    let args = array(container, "/args");
    let expected_args = [
        "plugin",
        "--listen",
        "0.0.0.0:4355",
        "--config",
        CONFIG_PATH,
        "--token-file",
        TOKEN_PATH,
    ];
    if args
        .iter()
        .take(expected_args.len())
        .ne(expected_args.iter())
    {
        problems.push(format!("args are {args:?}, not {expected_args:?} ..."));
    }
    let listen_port = flag(args, "--listen")
        .and_then(|l| l.rsplit_once(':'))
        .and_then(|(_, p)| p.parse::<i64>().ok());
    if listen_port.is_none()
        || array(container, "/ports")
            .iter()
            .all(|p| p["containerPort"].as_i64() != listen_port)
    {
        problems.push(format!(
            "--listen {:?} is not a containerPort",
            flag(args, "--listen")
        ));
    }
    // --config: a file of the gameops-config ConfigMap the build contains.
    match flag(args, "--config").and_then(|p| volume_for(deployment, container, p)) {
        Some((volume, key)) => {
            let cm = str_at(volume, "/configMap/name");
            match find(docs, "ConfigMap", GAMEOPS_NS, cm) {
                Some(c) if cm.starts_with("gameops-config") && c["data"].get(&key).is_some() => {}
                _ => problems.push(format!(
                    "--config is key {key:?} of ConfigMap {cm:?}, which the build does not hold"
                )),
            }
        }
        None => problems.push("--config is not in a mounted volume".into()),
    }
    // --token-file: a key of a Secret (created by the user, README).
    match flag(args, "--token-file").and_then(|p| volume_for(deployment, container, p)) {
        Some((volume, key)) if !str_at(volume, "/secret/secretName").is_empty() => {
            if key != "token" {
                problems.push(format!(
                    "the token is key {key:?} of the Secret, not `token`"
                ));
            }
        }
        _ => problems.push("--token-file is not in a mounted Secret".into()),
    }
    for (probe, path) in [("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")] {
        let p = &container[probe]["httpGet"];
        if p["path"] != path || resolve_port(container, &p["port"]) != Some(PORT) {
            problems.push(format!("{probe} is not GET {path} on port {PORT}: {p}"));
        }
    }
    let non_root = pod["securityContext"]["runAsNonRoot"] == true
        || container["securityContext"]["runAsNonRoot"] == true;
    if !non_root {
        problems.push("runAsNonRoot is not set".into());
    }
    if container["securityContext"]["allowPrivilegeEscalation"] != false {
        problems.push("allowPrivilegeEscalation is not false".into());
    }
    for which in ["requests", "limits"] {
        for r in ["cpu", "memory"] {
            if container["resources"][which][r].as_str().is_none() {
                problems.push(format!("no resources.{which}.{r}"));
            }
        }
    }
    let sa = pod["serviceAccountName"].as_str().unwrap_or("default");
    if sa == "default" || find(docs, "ServiceAccount", GAMEOPS_NS, sa).is_none() {
        problems.push(format!(
            "runs as ServiceAccount {sa:?}, not its own from the build"
        ));
    }
    problems
}

/// Service `gameops` selects the Deployment's pods on port 4355, and the
/// Flux providers call exactly that Service.
fn check_service(docs: &[Value]) -> Vec<String> {
    let mut problems = Vec::new();
    let (deployment, container) = gameops(docs);
    let service = get(docs, "Service", GAMEOPS_NS, "gameops");
    let selector = service["spec"]["selector"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let labels = deployment["spec"]["template"]["metadata"]["labels"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    if selector.is_empty() || selector.iter().any(|(k, v)| labels.get(k) != Some(v)) {
        problems.push(format!(
            "the Service selects {selector:?}, the pods are labelled {labels:?}"
        ));
    }
    let match_labels = deployment["spec"]["selector"]["matchLabels"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    if match_labels.iter().any(|(k, v)| labels.get(k) != Some(v)) {
        problems.push("the Deployment's selector does not match its pods".into());
    }
    let ports = array(service, "/spec/ports");
    let served = ports.iter().find(|p| p["port"] == PORT);
    match served {
        Some(p) => {
            let target = if p["targetPort"].is_null() {
                &p["port"]
            } else {
                &p["targetPort"]
            };
            if resolve_port(container, target) != Some(PORT) {
                problems.push(format!(
                    "Service port {PORT} targets {target}, not the container's {PORT}"
                ));
            }
        }
        None => problems.push(format!("the Service has no port {PORT}: {ports:?}")),
    }
    let host = format!(
        "http://{}.{}.svc.cluster.local:{PORT}/",
        name(service),
        namespace(service)
    );
    for p in all(docs, "ResourceSetInputProvider") {
        let url = str_at(p, "/spec/url");
        if !url.starts_with(&host) {
            problems.push(format!("{} calls {url}, not the Service ({host})", id(p)));
        }
    }
    problems
}

// ---------------------------------------------------------------------------
// Tests

#[test]
fn the_build_holds_every_part_of_the_install() {
    let docs = build();
    get(docs, "Namespace", "", GAMEOPS_NS);
    let plugin = get(docs, "ConfigMap", ARGO_NS, "gameops-executor-plugin");
    assert_eq!(
        plugin["metadata"]["labels"]["workflows.argoproj.io/configmap-type"], "ExecutorPlugin",
        "Argo finds plugins by this label"
    );
    for t in WORKFLOW_TEMPLATES {
        get(docs, "WorkflowTemplate", ARGO_NS, t);
    }
    get(docs, "ServiceAccount", ARGO_NS, "gameops-executor-plugin");
    get(docs, "Role", GAME_NS, "gameops-executor-plugin");
    get(docs, "RoleBinding", GAME_NS, "gameops-executor-plugin");
    get(docs, "Role", ARGO_NS, "gameops-agent");
    get(docs, "RoleBinding", ARGO_NS, "gameops-agent");
    get(docs, "ServiceAccount", GAMEOPS_NS, "gameops");
    get(docs, "Role", GAME_NS, "gameops");
    get(docs, "RoleBinding", GAME_NS, "gameops");
    get(docs, "Deployment", GAMEOPS_NS, "gameops");
    get(docs, "Service", GAMEOPS_NS, "gameops");
    for env in ENVS {
        get(
            docs,
            "ResourceSetInputProvider",
            FLUX_NS,
            &format!("game-{env}"),
        );
        get(docs, "ResourceSet", FLUX_NS, &format!("game-{env}"));
    }
    assert!(
        find(docs, "Deployment", ARGO_NS, "workflow-controller").is_none(),
        "Argo's own Deployment is not part of the base"
    );
}

#[test]
fn the_build_has_each_object_once_in_its_namespace_and_no_secrets() {
    let problems = check_objects(build());
    assert!(problems.is_empty(), "{problems:#?}");
}

/// The build includes `plugin/` and `workflow-templates/` themselves, not
/// copies: the ConfigMap is the generated file, and every WorkflowTemplate
/// file is listed in `workflow-templates/Kustomization`.
#[test]
fn the_plugin_and_the_workflow_templates_are_the_committed_files() {
    let docs = build();
    let file = documents(&read("plugin/gameops-executor-plugin-configmap.yaml"));
    assert_eq!(file.len(), 1);
    let built = get(docs, "ConfigMap", ARGO_NS, "gameops-executor-plugin");
    assert_eq!(built["data"], file[0]["data"]);
    assert_eq!(
        built["metadata"]["annotations"],
        file[0]["metadata"]["annotations"]
    );

    let mut in_dir = BTreeMap::new();
    for entry in std::fs::read_dir(Path::new(ROOT).join("workflow-templates")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|x| x == "yaml" || x == "yml") {
            for doc in documents(&std::fs::read_to_string(&path).unwrap()) {
                assert_eq!(kind(&doc), "WorkflowTemplate", "{}", path.display());
                in_dir.insert(name(&doc).to_owned(), doc["spec"].clone());
            }
        }
    }
    let in_build: BTreeMap<String, Value> = all(docs, "WorkflowTemplate")
        .into_iter()
        .map(|d| (name(d).to_owned(), d["spec"].clone()))
        .collect();
    assert_eq!(
        in_build.keys().collect::<Vec<_>>(),
        in_dir.keys().collect::<Vec<_>>(),
        "list every workflow-templates/*.yaml in workflow-templates/Kustomization"
    );
    assert_eq!(in_build, in_dir);
    assert_eq!(in_build.keys().collect::<Vec<_>>(), WORKFLOW_TEMPLATES);
}

#[test]
fn every_role_binding_names_objects_that_exist() {
    let problems = check_bindings(build());
    assert!(problems.is_empty(), "{problems:#?}");
}

/// The plugin sidecar runs as `gameops-executor-plugin` in the workflow's
/// namespace, the agent as the workflow's ServiceAccount there: all of it
/// must be where the plugin ConfigMap and the WorkflowTemplates are.
#[test]
fn the_argo_rbac_is_in_the_workflows_namespace() {
    let docs = build();
    let plugin_binding = get(docs, "RoleBinding", GAME_NS, "gameops-executor-plugin");
    assert_eq!(
        plugin_binding["subjects"],
        json!([{"kind": "ServiceAccount", "name": "gameops-executor-plugin", "namespace": ARGO_NS}])
    );
    let agent = get(docs, "RoleBinding", ARGO_NS, "gameops-agent");
    for s in array(agent, "/subjects") {
        assert_eq!(s["namespace"], ARGO_NS, "{s}");
    }
    for t in all(docs, "WorkflowTemplate") {
        assert_eq!(namespace(t), ARGO_NS, "{}", id(t));
        // The agent runs as the workflow's ServiceAccount, which the agent
        // Role is bound to.
        let sa = t["spec"]["serviceAccountName"]
            .as_str()
            .unwrap_or("default");
        assert!(
            array(agent, "/subjects").iter().any(|s| s["name"] == sa),
            "{} runs as {sa}, which gameops-agent does not bind",
            id(t)
        );
    }
}

#[test]
fn the_plugin_and_gameops_may_only_get_workflows_where_they_run() {
    let docs = build();
    let role = get(docs, "Role", ARGO_NS, "gameops-read-workflows");
    assert_eq!(
        role["rules"],
        json!([{"apiGroups": ["argoproj.io"], "resources": ["workflows"], "verbs": ["get"]}]),
        "a lease's holder is looked up, nothing more"
    );
    let binding = get(docs, "RoleBinding", ARGO_NS, "gameops-read-workflows");
    let names: Vec<&str> = array(binding, "/subjects")
        .iter()
        .filter_map(|s| s["name"].as_str())
        .collect();
    assert_eq!(names, ["gameops-executor-plugin", "gameops"]);
}

#[test]
fn gameops_may_only_read_and_patch_game_servers() {
    let role = get(build(), "Role", GAME_NS, "gameops");
    assert_eq!(
        role["rules"],
        json!([
            {"apiGroups": ["game.kruise.io"], "resources": ["gameservers", "gameserversets"],
             "verbs": ["get", "list", "watch", "patch"]},
            {"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]},
        ])
    );
    assert!(
        all(build(), "ClusterRole").is_empty(),
        "nothing cluster-wide"
    );
}

#[test]
fn the_gameops_deployment_runs_the_service_with_its_config_token_and_probes() {
    let docs = build();
    let problems = check_deployment(docs);
    assert!(problems.is_empty(), "{problems:#?}");
    let (_, container) = gameops(docs);
    assert_eq!(container["image"], IMAGE);
}

#[test]
fn the_service_selects_the_gameops_pods_and_the_flux_providers_call_it() {
    let problems = check_service(build());
    assert!(problems.is_empty(), "{problems:#?}");
}

/// The example gameops.yaml passes gameops's own checks (strict fields,
/// regexes, semver ranges), names only files mounted in the pod, and
/// defines exactly the environments the Flux providers ask for.
#[test]
fn the_example_config_is_accepted_by_gameops_and_its_files_are_mounted() {
    let docs = build();
    let (deployment, container) = gameops(docs);
    let (volume, key) = volume_for(deployment, container, CONFIG_PATH).expect("config mounted");
    let cm = get(
        docs,
        "ConfigMap",
        GAMEOPS_NS,
        str_at(volume, "/configMap/name"),
    );
    let text = cm["data"][&key].as_str().expect("gameops.yaml");

    let file: ConfigFile =
        serde_yaml_ng::from_str(text).expect("gameops.yaml has only known fields");
    let mut files: Vec<PathBuf> = Vec::new();
    for r in &file.registries {
        if let Some(auth) = &r.auth {
            files.extend(auth.basic.iter().filter_map(|b| b.password_file.clone()));
            files.extend(auth.bearer.iter().filter_map(|t| t.token_file.clone()));
            files.extend(auth.docker_config.clone());
        }
    }
    if let Some(auth) = &file.flux.auth {
        files.extend(auth.basic.iter().filter_map(|b| b.password_file.clone()));
        files.extend(auth.bearer.iter().filter_map(|t| t.token_file.clone()));
    }
    assert!(!files.is_empty(), "the Flux endpoint is authenticated");
    // Each file is in a mounted volume; write them under a temporary
    // directory instead, so Config::parse can read them.
    let dir = tempfile::tempdir().unwrap();
    let mut local = text.to_owned();
    for f in &files {
        let f = f.to_str().unwrap();
        let (volume, _) = volume_for(deployment, container, f)
            .unwrap_or_else(|| panic!("gameops.yaml names {f}, which is not mounted"));
        assert!(volume["secret"].is_object(), "{f} is in a Secret");
        let copy = dir.path().join(f.trim_start_matches('/'));
        std::fs::create_dir_all(copy.parent().unwrap()).unwrap();
        std::fs::write(&copy, "example-token\n").unwrap();
        local = local.replace(f, copy.to_str().unwrap());
    }
    let config = Config::parse(&local, Path::new("gameops.yaml"))
        .unwrap_or_else(|e| panic!("gameops would not start: {e}"));
    assert_eq!(config.environment_names(), ENVS);
    for p in all(docs, "ResourceSetInputProvider") {
        let env = str_at(p, "/spec/url").rsplit_once("?env=").map(|(_, e)| e);
        assert!(
            env.is_some_and(|e| ENVS.contains(&e)),
            "{} asks for {env:?}",
            id(p)
        );
    }
}

/// The controller patch sets both variables, is not applied by the base,
/// and is a strategic-merge patch that applies to Argo's Deployment.
#[test]
fn the_argo_controller_patch_sets_both_variables_and_is_not_applied_by_default() {
    let patch_text = read("manifests/argo-controller-patch.yaml");
    assert!(patch_text.contains("ARGO_EXECUTOR_PLUGINS"));
    assert!(patch_text.contains("ARGO_AGENT_PATCH_RATE"));
    let kustomization = read("manifests/kustomization.yaml");
    let parsed: Value = serde_yaml_ng::from_str(&kustomization).unwrap();
    assert!(
        array(&parsed, "/patches")
            .iter()
            .all(|p| p["path"] != "argo-controller-patch.yaml"),
        "the patch must not be applied by default"
    );
    assert!(
        kustomization.contains("# - path: argo-controller-patch.yaml"),
        "listed, commented out, with instructions"
    );

    // Applied to a stand-in for Argo's Deployment (as in Argo's install).
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("argo-controller-patch.yaml"), &patch_text).unwrap();
    std::fs::write(
        dir.path().join("argo.yaml"),
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: workflow-controller, namespace: argo}\n\
         spec:\n  template:\n    spec:\n      containers:\n        - name: workflow-controller\n\
         \x20         image: quay.io/argoproj/workflow-controller:v3.6.2\n\
         \x20         env: [{name: LEADER_ELECTION_IDENTITY, value: x}]\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("kustomization.yaml"),
        "resources: [argo.yaml]\npatches: [{path: argo-controller-patch.yaml}]\n",
    )
    .unwrap();
    let patched = kustomize(dir.path());
    assert_eq!(patched.len(), 1);
    let env: BTreeMap<&str, &str> = array(&patched[0], "/spec/template/spec/containers/0/env")
        .iter()
        .map(|e| (str_at(e, "/name"), str_at(e, "/value")))
        .collect();
    assert_eq!(
        env,
        BTreeMap::from([
            ("ARGO_AGENT_PATCH_RATE", "1s"),
            ("ARGO_EXECUTOR_PLUGINS", "true"),
            ("LEADER_ELECTION_IDENTITY", "x"),
        ]),
        "added to the controller's own variables"
    );
}

/// What manifests/README.md tells users to do: an overlay sets their
/// image and replaces gameops.yaml, and the Deployment follows.
#[test]
fn an_overlay_sets_the_image_and_the_config() {
    let dir = tempfile::tempdir().unwrap();
    // kustomize takes only relative paths.
    let here = dir.path().canonicalize().unwrap();
    let base = Path::new(ROOT).join("manifests").canonicalize().unwrap();
    let up = here.components().count() - 1;
    let base = Path::new(&"../".repeat(up)).join(base.strip_prefix("/").unwrap());
    std::fs::write(
        dir.path().join("kustomization.yaml"),
        format!(
            "resources: [{}]
images:
  - name: ghcr.io/gameops/gameops
    newName: registry.example.com/gameops
    newTag: 9.9.9
configMapGenerator:
  - name: gameops-config
    namespace: {GAMEOPS_NS}
    behavior: replace
    files: [gameops.yaml]
",
            base.display()
        ),
    )
    .unwrap();
    let mine = "environments: {live: {repository: registry.example.com/mine}}\n";
    std::fs::write(dir.path().join("gameops.yaml"), mine).unwrap();
    let docs = kustomize(dir.path());
    assert_eq!(docs.len(), build().len());
    let (deployment, container) = gameops(&docs);
    assert_eq!(container["image"], "registry.example.com/gameops:9.9.9");
    let (volume, key) = volume_for(deployment, container, CONFIG_PATH).unwrap();
    let cm = get(
        &docs,
        "ConfigMap",
        GAMEOPS_NS,
        str_at(volume, "/configMap/name"),
    );
    assert_eq!(cm["data"][&key], mine);
    let (d0, c0) = gameops(build());
    let (original, _) = volume_for(d0, c0, CONFIG_PATH).unwrap();
    assert_ne!(
        volume["configMap"]["name"], original["configMap"]["name"],
        "a new configuration is a new ConfigMap name, so the pods roll"
    );
}

/// Each check finds the damage done to a copy of the real build, so none
/// of them passes vacuously.
#[test]
fn the_checks_catch_a_broken_build() {
    let good = build().to_vec();
    assert!(good.len() > 20, "the real build: {} objects", good.len());
    let damaged = |f: &dyn Fn(&mut Vec<Value>)| {
        let mut docs = good.clone();
        f(&mut docs);
        docs
    };
    let position = |docs: &[Value], k: &str, n: &str| {
        docs.iter()
            .position(|d| kind(d) == k && name(d) == n)
            .unwrap()
    };

    // A duplicate, an object without namespace, a Secret.
    let twice = damaged(&|d| {
        let i = position(d, "Service", "gameops");
        d.push(d[i].clone());
    });
    assert!(check_objects(&twice).iter().any(|p| p.contains("twice")));
    let no_ns = damaged(&|d| {
        let i = position(d, "WorkflowTemplate", "promote");
        d[i]["metadata"]
            .as_object_mut()
            .unwrap()
            .remove("namespace");
    });
    assert!(
        check_objects(&no_ns)
            .iter()
            .any(|p| p.contains("no namespace"))
    );
    let secret = damaged(&|d| {
        d.push(json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "gameops-flux-token", "namespace": FLUX_NS}}));
    });
    assert!(
        check_objects(&secret)
            .iter()
            .any(|p| p.contains("credential"))
    );

    // A binding to a ServiceAccount or Role that is not there.
    let no_sa = damaged(&|d| {
        let i = position(d, "ServiceAccount", "gameops-executor-plugin");
        d.remove(i);
    });
    assert!(
        check_bindings(&no_sa)
            .iter()
            .any(|p| p.contains("argo/gameops-executor-plugin, which does not exist"))
    );
    let no_role = damaged(&|d| {
        let i = position(d, "Role", "gameops-agent");
        d.remove(i);
    });
    assert!(
        check_bindings(&no_role)
            .iter()
            .any(|p| p.contains("gameops-agent"))
    );
    let elsewhere = damaged(&|d| {
        let i = position(d, "RoleBinding", "gameops-agent");
        d[i]["subjects"][0]["namespace"] = json!("nowhere");
    });
    assert!(!check_bindings(&elsewhere).is_empty());

    // The Deployment: config not mounted, wrong probe, wrong ConfigMap,
    // no ServiceAccount.
    let deployment = |d: &mut Vec<Value>| position(d, "Deployment", "gameops");
    let unmounted = damaged(&|d| {
        let i = deployment(d);
        d[i]["spec"]["template"]["spec"]["containers"][0]["volumeMounts"] = json!([]);
    });
    let problems = check_deployment(&unmounted);
    assert!(
        problems.iter().any(|p| p.contains("--config")),
        "{problems:?}"
    );
    assert!(
        problems.iter().any(|p| p.contains("--token-file")),
        "{problems:?}"
    );
    let bad_probe = damaged(&|d| {
        let i = deployment(d);
        d[i]["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["httpGet"]["port"] =
            json!(8080);
    });
    assert!(
        check_deployment(&bad_probe)
            .iter()
            .any(|p| p.contains("livenessProbe"))
    );
    let no_config = damaged(&|d| {
        let i = d
            .iter()
            .position(|x| kind(x) == "ConfigMap" && name(x).starts_with("gameops-config"))
            .unwrap();
        d.remove(i);
    });
    assert!(
        check_deployment(&no_config)
            .iter()
            .any(|p| p.contains("--config"))
    );
    let no_own_sa = damaged(&|d| {
        let i = position(d, "ServiceAccount", "gameops");
        d.remove(i);
    });
    assert!(
        check_deployment(&no_own_sa)
            .iter()
            .any(|p| p.contains("ServiceAccount"))
    );

    // The Service: a selector that misses the pods, the wrong target port.
    let missing = damaged(&|d| {
        let i = position(d, "Service", "gameops");
        d[i]["spec"]["selector"] = json!({"app.kubernetes.io/name": "other"});
    });
    assert!(
        check_service(&missing)
            .iter()
            .any(|p| p.contains("selects"))
    );
    let wrong_port = damaged(&|d| {
        let i = position(d, "Service", "gameops");
        d[i]["spec"]["ports"][0]["targetPort"] = json!("metrics");
    });
    assert!(
        check_service(&wrong_port)
            .iter()
            .any(|p| p.contains("targets"))
    );
    let elsewhere = damaged(&|d| {
        let i = position(d, "ResourceSetInputProvider", "game-staging");
        d[i]["spec"]["url"] =
            json!("http://gameops.default.svc.cluster.local:4355/flux/v1/inputs?env=staging");
    });
    assert!(
        check_service(&elsewhere)
            .iter()
            .any(|p| p.contains("game-staging"))
    );
}

#[test]
fn the_agent_pod_finds_the_token_secrets_it_mounts() {
    // Argo's agent pod mounts `<account>.service-account-token` for the
    // workflow's account and for gameops-executor-plugin (agent.go); the
    // install must create both, empty, for the token controller to fill.
    let docs = build();
    let agent = get(docs, "RoleBinding", ARGO_NS, "gameops-agent");
    let mut accounts: Vec<&str> = array(agent, "/subjects")
        .iter()
        .filter_map(|s| s["name"].as_str())
        .collect();
    accounts.push("gameops-executor-plugin");
    for account in accounts {
        let secret = get(
            docs,
            "Secret",
            ARGO_NS,
            &format!("{account}.service-account-token"),
        );
        assert!(is_token_secret(secret), "{secret}");
    }
    let mut filled = get(docs, "Secret", ARGO_NS, "default.service-account-token").clone();
    filled["data"] = json!({"token": "c2VjcmV0"});
    assert!(
        !is_token_secret(&filled),
        "a Secret with data is a credential"
    );
}
