//! `gameops plugin build [DIR]`: turns `DIR/plugin.yaml` (an Argo
//! `ExecutorPlugin`) into `DIR/<name>-executor-plugin-configmap.yaml` and
//! `DIR/README.md`, byte for byte what `argo executor-plugin build DIR` writes
//! (argo-workflows `cmd/argo/commands/executorplugin` and
//! `workflow/util/plugins/configmap.go`, v3.3 to v4.1).
//!
//! Argo reads the manifest strictly into Kubernetes' Go types, marshals the
//! sidecar container with `sigs.k8s.io/yaml` (JSON field rules, then go-yaml
//! v2: sorted keys, its own quoting and line folding at 80 columns) and puts
//! it in a ConfigMap marshalled the same way. This module does the same
//! steps: [`load`] checks the manifest against the container fields it knows
//! (with Go's `omitempty` rules and Kubernetes' canonical quantities),
//! [`configmap_yaml`] renders with [`goyaml`], a port of go-yaml v2's
//! emitter for the JSON data model.
//!
//! Since Kubernetes 1.33's client libraries (an `argo` binary of v4), a
//! ConfigMap built this way carries no `metadata.creationTimestamp: null`;
//! older `argo` binaries add that line. Argo's `README.md` template is
//! reproduced too, since `argo executor-plugin build` writes it as well.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

/// The first line of the generated ConfigMap.
pub const CONFIGMAP_HEADER: &str = "# This is an auto-generated file. DO NOT EDIT";
/// The label that makes Argo's controller load a ConfigMap as a plugin.
pub const CONFIGMAP_TYPE_LABEL: &str = "workflows.argoproj.io/configmap-type";
/// The annotation the generated README shows as the Argo version needed.
pub const VERSION_ANNOTATION: &str = "workflows.argoproj.io/version";
/// The annotation the generated README shows as the description.
pub const DESCRIPTION_ANNOTATION: &str = "workflows.argoproj.io/description";

/// Why a plugin could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// `plugin.yaml` is not YAML.
    #[error("{path} is not valid YAML: {source}")]
    Yaml {
        /// The file.
        path: String,
        /// Why.
        source: serde_yaml_ng::Error,
    },
    /// `plugin.yaml` is YAML but not a valid ExecutorPlugin.
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// A file could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
}

/// An `ExecutorPlugin` manifest, as Argo holds it after reading it.
#[derive(Debug, Clone, PartialEq)]
pub struct ExecutorPlugin {
    /// `kind` (`ExecutorPlugin`): becomes the ConfigMap type label's value.
    pub kind: String,
    /// `metadata.name`.
    pub name: String,
    /// `metadata.namespace`, if given.
    pub namespace: Option<String>,
    /// `metadata.labels`.
    pub labels: BTreeMap<String, String>,
    /// `metadata.annotations`.
    pub annotations: BTreeMap<String, String>,
    /// `spec.sidecar.automountServiceAccountToken`.
    pub automount_service_account_token: bool,
    /// `spec.sidecar.container`, as Go would marshal it to JSON.
    pub container: Value,
}

impl ExecutorPlugin {
    /// The ConfigMap's name: `<name>-executor-plugin`.
    pub fn configmap_name(&self) -> String {
        format!("{}-executor-plugin", self.name)
    }

    /// The ConfigMap's file name: `<name>-executor-plugin-configmap.yaml`.
    pub fn configmap_file_name(&self) -> String {
        format!("{}-configmap.yaml", self.configmap_name())
    }

    /// The sidecar container's image.
    pub fn image(&self) -> &str {
        self.container["image"].as_str().unwrap_or("")
    }
}

/// What [`build`] wrote.
#[derive(Debug, Clone)]
pub struct Built {
    /// The ConfigMap.
    pub configmap: PathBuf,
    /// The README.
    pub readme: PathBuf,
}

/// `argo executor-plugin build DIR`: reads `DIR/plugin.yaml` (and a
/// `DIR/server.*` script, which becomes the container's only argument),
/// writes the ConfigMap and `DIR/README.md`.
pub fn build(dir: &Path) -> Result<Built, BuildError> {
    let plugin = load(dir)?;
    let configmap = dir.join(plugin.configmap_file_name());
    write(&configmap, &configmap_yaml(&plugin))?;
    let readme_path = dir.join("README.md");
    write(&readme_path, &readme(&plugin))?;
    Ok(Built {
        configmap,
        readme: readme_path,
    })
}

fn write(path: &Path, text: &str) -> Result<(), BuildError> {
    std::fs::write(path, text).map_err(|source| BuildError::Write {
        path: path.display().to_string(),
        source,
    })
}

/// Reads and checks `DIR/plugin.yaml` as Argo does.
pub fn load(dir: &Path) -> Result<ExecutorPlugin, BuildError> {
    let path = dir.join("plugin.yaml");
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(&path).map_err(|source| BuildError::Read {
        path: shown.clone(),
        source,
    })?;
    let manifest: Value = serde_yaml_ng::from_str(&text).map_err(|source| BuildError::Yaml {
        path: shown.clone(),
        source,
    })?;
    let invalid = |message: String| BuildError::Invalid {
        path: shown.clone(),
        message,
    };
    let mut plugin = parse(&manifest).map_err(invalid)?;
    if let Some(code) = server_script(dir)?
        && let Some(c) = plugin.container.as_object_mut()
    {
        c.insert("args".into(), Value::Array(vec![Value::String(code)]));
    }
    Ok(plugin)
}

/// The contents of `DIR/server.*`, if there is exactly one such file.
fn server_script(dir: &Path) -> Result<Option<String>, BuildError> {
    let read_dir = |source| BuildError::Read {
        path: dir.display().to_string(),
        source,
    };
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(read_dir)? {
        let entry = entry.map_err(read_dir)?;
        if entry.file_name().to_string_lossy().starts_with("server.") {
            found.push(entry.path());
        }
    }
    match found.as_slice() {
        [] => Ok(None),
        [one] => std::fs::read_to_string(one)
            .map(Some)
            .map_err(|source| BuildError::Read {
                path: one.display().to_string(),
                source,
            }),
        _ => Err(BuildError::Invalid {
            path: dir.display().to_string(),
            message: "there is more than one server.* file; keep one (it becomes the container's only argument)".into(),
        }),
    }
}

/// Checks a parsed manifest: Argo's strict decoding and `Validate`.
pub fn parse(manifest: &Value) -> Result<ExecutorPlugin, String> {
    let top = object(manifest, "the manifest")?;
    only_keys(top, "", &["apiVersion", "kind", "metadata", "spec"])?;
    let api_version = string_field(top, "apiVersion", "apiVersion")?;
    let kind = string_field(top, "kind", "kind")?;
    if kind != "ExecutorPlugin" || api_version != "argoproj.io/v1alpha1" {
        return Err(format!(
            "this is {api_version:?} {kind:?}; a plugin manifest is apiVersion: argoproj.io/v1alpha1, kind: ExecutorPlugin"
        ));
    }
    let metadata = object(top.get("metadata").unwrap_or(&Value::Null), "metadata")?;
    only_keys(
        metadata,
        "metadata.",
        &["name", "namespace", "labels", "annotations"],
    )?;
    let name = string_field(metadata, "name", "metadata.name")?;
    if name.is_empty() {
        return Err(
            "metadata.name is empty: name the plugin (the key templates use under `plugin:`)"
                .into(),
        );
    }
    let namespace = match metadata.get("namespace") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.is_empty() => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err("metadata.namespace must be a string".into()),
    };
    let labels = string_map(metadata.get("labels"), "metadata.labels")?;
    let annotations = string_map(metadata.get("annotations"), "metadata.annotations")?;
    let spec = object(top.get("spec").unwrap_or(&Value::Null), "spec")?;
    only_keys(spec, "spec.", &["sidecar"])?;
    let sidecar = object(spec.get("sidecar").unwrap_or(&Value::Null), "spec.sidecar")?;
    only_keys(
        sidecar,
        "spec.sidecar.",
        &["automountServiceAccountToken", "container"],
    )?;
    let automount = match sidecar.get("automountServiceAccountToken") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            return Err("spec.sidecar.automountServiceAccountToken must be true or false".into());
        }
    };
    let raw = sidecar.get("container").unwrap_or(&Value::Null);
    let container = normalize(CONTAINER, raw, "spec.sidecar.container")?;
    validate(raw, &container)?;
    Ok(ExecutorPlugin {
        kind,
        name,
        namespace,
        labels,
        annotations,
        automount_service_account_token: automount,
        container: Value::Object(container),
    })
}

/// Argo's `Sidecar.Validate`, on the manifest's container (`raw`: a map
/// given empty counts as given) and on what Go decoded from it.
fn validate(raw: &Value, container: &Map<String, Value>) -> Result<(), String> {
    let has = |k: &str| container.get(k).is_some_and(|v| !v.is_null());
    let given = |k: &str| raw["resources"].get(k).is_some_and(|v| !v.is_null());
    if container
        .get("ports")
        .and_then(Value::as_array)
        .is_none_or(Vec::is_empty)
    {
        return Err("sidecar is invalid: at least one port is mandatory (spec.sidecar.container.ports: [{containerPort: N}]; the agent calls the first)".into());
    }
    if !given("requests") {
        return Err("sidecar is invalid: resources requests are mandatory (spec.sidecar.container.resources.requests: {cpu: ..., memory: ...})".into());
    }
    if !given("limits") {
        return Err("sidecar is invalid: resources limits are mandatory (spec.sidecar.container.resources.limits: {cpu: ..., memory: ...})".into());
    }
    if !has("securityContext") {
        return Err("sidecar is invalid: security context is mandatory (spec.sidecar.container.securityContext: {runAsNonRoot: true, runAsUser: N})".into());
    }
    Ok(())
}

fn object<'a>(v: &'a Value, what: &str) -> Result<&'a Map<String, Value>, String> {
    v.as_object()
        .ok_or_else(|| format!("{what} must be a mapping"))
}

fn only_keys(map: &Map<String, Value>, prefix: &str, known: &[&str]) -> Result<(), String> {
    match map.keys().find(|k| !known.contains(&k.as_str())) {
        Some(k) => Err(format!(
            "unknown field {prefix}{k}: Argo reads the manifest strictly; the fields here are {}",
            known.join(", ")
        )),
        None => Ok(()),
    }
}

fn string_field(map: &Map<String, Value>, key: &str, path: &str) -> Result<String, String> {
    match map.get(key) {
        Some(Value::String(s)) => Ok(s.clone()),
        None | Some(Value::Null) => Err(format!("{path} is missing")),
        Some(_) => Err(format!("{path} must be a string")),
    }
}

fn string_map(v: Option<&Value>, path: &str) -> Result<BTreeMap<String, String>, String> {
    let Some(v) = v.filter(|v| !v.is_null()) else {
        return Ok(BTreeMap::new());
    };
    let map = object(v, path)?;
    map.iter()
        .map(|(k, v)| match v {
            Value::String(s) => Ok((k.clone(), s.clone())),
            _ => Err(format!(
                "{path}.{k} must be a string (quote it, e.g. \"true\" or \"1\")"
            )),
        })
        .collect()
}

/// The ConfigMap Argo builds (`ToConfigMap`), as JSON.
pub fn configmap(plugin: &ExecutorPlugin) -> Value {
    let mut labels = Map::new();
    labels.insert(
        CONFIGMAP_TYPE_LABEL.into(),
        Value::String(plugin.kind.clone()),
    );
    for (k, v) in &plugin.labels {
        labels.insert(k.clone(), Value::String(v.clone()));
    }
    let mut metadata = Map::new();
    metadata.insert("name".into(), Value::String(plugin.configmap_name()));
    if let Some(ns) = &plugin.namespace {
        metadata.insert("namespace".into(), Value::String(ns.clone()));
    }
    metadata.insert("labels".into(), Value::Object(labels));
    if !plugin.annotations.is_empty() {
        let annotations = plugin
            .annotations
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        metadata.insert("annotations".into(), Value::Object(annotations));
    }
    let mut data = Map::new();
    data.insert(
        "sidecar.automountServiceAccountToken".into(),
        Value::String(plugin.automount_service_account_token.to_string()),
    );
    data.insert(
        "sidecar.container".into(),
        Value::String(goyaml::to_string(&plugin.container)),
    );
    let mut cm = Map::new();
    cm.insert("kind".into(), Value::String("ConfigMap".into()));
    cm.insert("apiVersion".into(), Value::String("v1".into()));
    cm.insert("metadata".into(), Value::Object(metadata));
    cm.insert("data".into(), Value::Object(data));
    Value::Object(cm)
}

/// The ConfigMap file's text: the header line, then the YAML.
pub fn configmap_yaml(plugin: &ExecutorPlugin) -> String {
    format!(
        "{CONFIGMAP_HEADER}\n{}",
        goyaml::to_string(&configmap(plugin))
    )
}

/// The README Argo writes beside the ConfigMap (its Go template, verbatim).
pub fn readme(plugin: &ExecutorPlugin) -> String {
    let annotation = |k: &str| plugin.annotations.get(k).map_or("", String::as_str);
    let name = &plugin.name;
    format!(
        "<!-- This is an auto-generated file. DO NOT EDIT -->\n# {name}\n\n* Needs: {}\n* Image: {}\n\n{}\n\nInstall:\n\n    kubectl apply -f {name}-executor-plugin-configmap.yaml\n\nUninstall:\n\t\n    kubectl delete cm {name}-executor-plugin \n",
        annotation(VERSION_ANNOTATION),
        plugin.image(),
        annotation(DESCRIPTION_ANNOTATION),
    )
}

// ---------------------------------------------------------------------------
// The container, as Go's encoding/json reads and writes `core/v1.Container`.

/// How one field of a Kubernetes Go type reads and writes.
#[derive(Debug, Clone, Copy)]
enum Ty {
    /// `string` without omitempty: always written, `""` when absent.
    Str,
    /// `string,omitempty`.
    OptStr,
    /// `int32`/`int64` without omitempty: always written, 0 when absent.
    Int,
    /// `int32,omitempty`.
    OptInt,
    /// `bool,omitempty`.
    OptBool,
    /// `*string`: written when given, even empty.
    PtrStr,
    /// `*int64`: written when given, even 0.
    PtrInt,
    /// `*bool`: written when given, even false.
    PtrBool,
    /// `[]string,omitempty`.
    Strings,
    /// `ResourceList,omitempty`: quantities, canonicalised.
    Quantities,
    /// `intstr.IntOrString` without omitempty.
    IntOrStr,
    /// `[]T,omitempty` of a struct.
    List(&'static [Field]),
    /// `*T,omitempty` of a struct.
    Ptr(&'static [Field]),
    /// `T,omitempty` of a struct: Go always writes it.
    Struct(&'static [Field]),
}

type Field = (&'static str, Ty);

const CONTAINER: &[Field] = &[
    ("name", Ty::Str),
    ("image", Ty::OptStr),
    ("command", Ty::Strings),
    ("args", Ty::Strings),
    ("workingDir", Ty::OptStr),
    ("ports", Ty::List(CONTAINER_PORT)),
    ("envFrom", Ty::List(ENV_FROM)),
    ("env", Ty::List(ENV_VAR)),
    ("resources", Ty::Struct(RESOURCES)),
    ("restartPolicy", Ty::PtrStr),
    ("volumeMounts", Ty::List(VOLUME_MOUNT)),
    ("livenessProbe", Ty::Ptr(PROBE)),
    ("readinessProbe", Ty::Ptr(PROBE)),
    ("startupProbe", Ty::Ptr(PROBE)),
    ("terminationMessagePath", Ty::OptStr),
    ("terminationMessagePolicy", Ty::OptStr),
    ("imagePullPolicy", Ty::OptStr),
    ("securityContext", Ty::Ptr(SECURITY_CONTEXT)),
    ("stdin", Ty::OptBool),
    ("stdinOnce", Ty::OptBool),
    ("tty", Ty::OptBool),
];
const CONTAINER_PORT: &[Field] = &[
    ("name", Ty::OptStr),
    ("hostPort", Ty::OptInt),
    ("containerPort", Ty::Int),
    ("protocol", Ty::OptStr),
    ("hostIP", Ty::OptStr),
];
const LOCAL_REF: &[Field] = &[("name", Ty::OptStr), ("optional", Ty::PtrBool)];
const ENV_FROM: &[Field] = &[
    ("prefix", Ty::OptStr),
    ("configMapRef", Ty::Ptr(LOCAL_REF)),
    ("secretRef", Ty::Ptr(LOCAL_REF)),
];
const KEY_REF: &[Field] = &[
    ("name", Ty::OptStr),
    ("key", Ty::Str),
    ("optional", Ty::PtrBool),
];
const FIELD_REF: &[Field] = &[("apiVersion", Ty::OptStr), ("fieldPath", Ty::Str)];
const ENV_SOURCE: &[Field] = &[
    ("fieldRef", Ty::Ptr(FIELD_REF)),
    ("configMapKeyRef", Ty::Ptr(KEY_REF)),
    ("secretKeyRef", Ty::Ptr(KEY_REF)),
];
const ENV_VAR: &[Field] = &[
    ("name", Ty::Str),
    ("value", Ty::OptStr),
    ("valueFrom", Ty::Ptr(ENV_SOURCE)),
];
const RESOURCES: &[Field] = &[("limits", Ty::Quantities), ("requests", Ty::Quantities)];
const VOLUME_MOUNT: &[Field] = &[
    ("name", Ty::Str),
    ("readOnly", Ty::OptBool),
    ("mountPath", Ty::Str),
    ("subPath", Ty::OptStr),
    ("subPathExpr", Ty::OptStr),
];
const HTTP_HEADER: &[Field] = &[("name", Ty::Str), ("value", Ty::Str)];
const HTTP_GET: &[Field] = &[
    ("path", Ty::OptStr),
    ("port", Ty::IntOrStr),
    ("host", Ty::OptStr),
    ("scheme", Ty::OptStr),
    ("httpHeaders", Ty::List(HTTP_HEADER)),
];
const TCP_SOCKET: &[Field] = &[("port", Ty::IntOrStr), ("host", Ty::OptStr)];
const EXEC: &[Field] = &[("command", Ty::Strings)];
const GRPC: &[Field] = &[("port", Ty::Int), ("service", Ty::PtrStr)];
const PROBE: &[Field] = &[
    ("exec", Ty::Ptr(EXEC)),
    ("httpGet", Ty::Ptr(HTTP_GET)),
    ("tcpSocket", Ty::Ptr(TCP_SOCKET)),
    ("grpc", Ty::Ptr(GRPC)),
    ("initialDelaySeconds", Ty::OptInt),
    ("timeoutSeconds", Ty::OptInt),
    ("periodSeconds", Ty::OptInt),
    ("successThreshold", Ty::OptInt),
    ("failureThreshold", Ty::OptInt),
    ("terminationGracePeriodSeconds", Ty::PtrInt),
];
const CAPABILITIES: &[Field] = &[("add", Ty::Strings), ("drop", Ty::Strings)];
const PROFILE: &[Field] = &[("type", Ty::Str), ("localhostProfile", Ty::PtrStr)];
const SECURITY_CONTEXT: &[Field] = &[
    ("capabilities", Ty::Ptr(CAPABILITIES)),
    ("privileged", Ty::PtrBool),
    ("runAsUser", Ty::PtrInt),
    ("runAsGroup", Ty::PtrInt),
    ("runAsNonRoot", Ty::PtrBool),
    ("readOnlyRootFilesystem", Ty::PtrBool),
    ("allowPrivilegeEscalation", Ty::PtrBool),
    ("procMount", Ty::PtrStr),
    ("seccompProfile", Ty::Ptr(PROFILE)),
    ("appArmorProfile", Ty::Ptr(PROFILE)),
];

/// Reads `value` as the Go struct `fields` describes and writes it back as
/// Go's encoding/json would.
fn normalize(fields: &[Field], value: &Value, path: &str) -> Result<Map<String, Value>, String> {
    let empty = Map::new();
    let input = match value {
        Value::Null => &empty,
        Value::Object(m) => m,
        _ => return Err(format!("{path} must be a mapping")),
    };
    if let Some(unknown) = input
        .keys()
        .find(|k| !fields.iter().any(|(name, _)| name == k))
    {
        let known: Vec<&str> = fields.iter().map(|(n, _)| *n).collect();
        return Err(format!(
            "unknown field {path}.{unknown}: `gameops plugin build` knows {} here (Argo rejects unknown fields; for other Kubernetes fields use `argo executor-plugin build`)",
            known.join(", ")
        ));
    }
    let mut out = Map::new();
    for (name, ty) in fields {
        let given = input.get(*name).filter(|v| !v.is_null());
        let here = format!("{path}.{name}");
        if let Some(v) = field(*ty, given, &here)? {
            out.insert((*name).to_owned(), v);
        }
    }
    Ok(out)
}

fn int(v: &Value, path: &str) -> Result<i64, String> {
    v.as_i64()
        .ok_or_else(|| format!("{path} must be a whole number"))
}

fn string(v: &Value, path: &str) -> Result<String, String> {
    v.as_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("{path} must be a string (quote it)"))
}

fn field(ty: Ty, given: Option<&Value>, path: &str) -> Result<Option<Value>, String> {
    let out = match (ty, given) {
        (Ty::Str, None) => Some(Value::String(String::new())),
        (Ty::Str | Ty::PtrStr, Some(v)) => Some(Value::String(string(v, path)?)),
        (Ty::OptStr, Some(v)) => Some(Value::String(string(v, path)?)).filter(|s| s != ""),
        (Ty::Int, None) => Some(Value::from(0)),
        (Ty::Int | Ty::PtrInt, Some(v)) => Some(Value::from(int(v, path)?)),
        (Ty::OptInt, Some(v)) => Some(Value::from(int(v, path)?)).filter(|n| n != 0),
        (Ty::OptBool | Ty::PtrBool, Some(v)) => {
            let b = v
                .as_bool()
                .ok_or_else(|| format!("{path} must be true or false"))?;
            Some(Value::Bool(b)).filter(|b| matches!(ty, Ty::PtrBool) || *b == Value::Bool(true))
        }
        (Ty::Strings, Some(v)) => {
            let items = v
                .as_array()
                .ok_or_else(|| format!("{path} must be a list of strings"))?;
            let items = items
                .iter()
                .enumerate()
                .map(|(i, s)| string(s, &format!("{path}[{i}]")).map(Value::String))
                .collect::<Result<Vec<_>, _>>()?;
            Some(Value::Array(items)).filter(|a| a.as_array().is_some_and(|a| !a.is_empty()))
        }
        (Ty::Quantities, Some(v)) => {
            let map = object(v, path)?;
            let mut out = Map::new();
            for (k, q) in map {
                let text = match q {
                    Value::String(s) => s.clone(),
                    Value::Number(n) => n.to_string(),
                    _ => {
                        return Err(format!(
                            "{path}.{k} must be a quantity such as 100m or 64Mi"
                        ));
                    }
                };
                let canonical =
                    quantity::canonical(&text).map_err(|e| format!("{path}.{k}: {e}"))?;
                out.insert(k.clone(), Value::String(canonical));
            }
            // Go omits an empty map (Argo's check saw it as given: `validate`
            // looks at the manifest itself).
            Some(Value::Object(out)).filter(|m| m.as_object().is_some_and(|m| !m.is_empty()))
        }
        (Ty::IntOrStr, None) => Some(Value::from(0)),
        (Ty::IntOrStr, Some(v)) => match v {
            Value::String(_) => Some(v.clone()),
            Value::Number(_) => Some(Value::from(int(v, path)?)),
            _ => return Err(format!("{path} must be a port number or name")),
        },
        (Ty::List(fields), Some(v)) => {
            let items = v
                .as_array()
                .ok_or_else(|| format!("{path} must be a list"))?;
            let items = items
                .iter()
                .enumerate()
                .map(|(i, item)| {
                    normalize(fields, item, &format!("{path}[{i}]")).map(Value::Object)
                })
                .collect::<Result<Vec<_>, _>>()?;
            Some(Value::Array(items)).filter(|a| a.as_array().is_some_and(|a| !a.is_empty()))
        }
        (Ty::Ptr(fields), Some(v)) => Some(Value::Object(normalize(fields, v, path)?)),
        (Ty::Struct(fields), v) => Some(Value::Object(normalize(
            fields,
            v.unwrap_or(&Value::Null),
            path,
        )?)),
        (_, None) => None,
    };
    Ok(out)
}

/// Kubernetes resource quantities (`k8s.io/apimachinery/pkg/api/resource`):
/// Go parses `100m`, `0.5`, `1024Mi` and writes them back in canonical form
/// (`100m`, `500m`, `1Gi`), keeping a string it deems canonical verbatim.
pub mod quantity {
    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Format {
        DecimalSi,
        BinarySi,
        DecimalExponent,
    }

    struct Parsed<'a> {
        positive: bool,
        num: &'a str,
        denom: &'a str,
        suffix: &'a str,
    }

    const HINT: &str = "write a quantity such as 250m, 1, 64Mi or 1G";

    /// `parseQuantityString`.
    fn split(s: &str) -> Result<Parsed<'_>, String> {
        let b = s.as_bytes();
        let end = b.len();
        let mut pos = 0;
        let mut positive = true;
        match b.first() {
            Some(b'-') => {
                positive = false;
                pos += 1;
            }
            Some(b'+') => pos += 1,
            _ => {}
        }
        while pos < end && b[pos] == b'0' {
            pos += 1;
        }
        if pos >= end {
            return Ok(Parsed {
                positive,
                num: "0",
                denom: "",
                suffix: "",
            });
        }
        let start = pos;
        while pos < end && b[pos].is_ascii_digit() {
            pos += 1;
        }
        let num = if pos == start { "0" } else { &s[start..pos] };
        let mut denom = "";
        if pos < end && b[pos] == b'.' {
            pos += 1;
            let start = pos;
            while pos < end && b[pos].is_ascii_digit() {
                pos += 1;
            }
            denom = &s[start..pos];
        }
        let suffix_start = pos;
        while pos < end && b"eEinumkKMGTP".contains(&b[pos]) {
            pos += 1;
        }
        if pos < end && (b[pos] == b'-' || b[pos] == b'+') {
            pos += 1;
        }
        while pos < end && b[pos].is_ascii_digit() {
            pos += 1;
        }
        if pos < end {
            return Err(format!("{s:?} is not a quantity: {HINT}"));
        }
        Ok(Parsed {
            positive,
            num,
            denom,
            suffix: &s[suffix_start..],
        })
    }

    /// The suffix's base, exponent and format.
    fn interpret(suffix: &str) -> Option<(u32, i32, Format)> {
        let decimal = [
            ("n", -9),
            ("u", -6),
            ("m", -3),
            ("", 0),
            ("k", 3),
            ("M", 6),
            ("G", 9),
            ("T", 12),
            ("P", 15),
            ("E", 18),
        ];
        if let Some((_, e)) = decimal.iter().find(|(s, _)| *s == suffix) {
            return Some((10, *e, Format::DecimalSi));
        }
        let binary = [
            ("Ki", 10),
            ("Mi", 20),
            ("Gi", 30),
            ("Ti", 40),
            ("Pi", 50),
            ("Ei", 60),
        ];
        if let Some((_, e)) = binary.iter().find(|(s, _)| *s == suffix) {
            return Some((2, *e, Format::BinarySi));
        }
        let rest = suffix.strip_prefix(['e', 'E'])?;
        rest.parse::<i32>()
            .ok()
            .map(|e| (10, e, Format::DecimalExponent))
    }

    fn pow10(n: i32) -> Option<i128> {
        10i128.checked_pow(u32::try_from(n).ok()?)
    }

    /// `CanonicalizeBytes` of `m * 10^scale`.
    fn render(mut m: i128, mut scale: i32, mut format: Format) -> Result<String, String> {
        let too_big = || "is too large".to_string();
        if m == 0 {
            return Ok("0".into());
        }
        if format == Format::BinarySi {
            let whole = if scale >= 0 {
                pow10(scale).and_then(|p| m.checked_mul(p))
            } else {
                pow10(-scale).filter(|p| m % p == 0).map(|p| m / p)
            };
            match whole {
                Some(mut v) if v.abs() >= 1024 => {
                    let mut e = 0;
                    while v.abs() >= 1024 && v % 1024 == 0 {
                        v /= 1024;
                        e += 1;
                    }
                    let suffix = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"]
                        .get(e)
                        .ok_or_else(too_big)?;
                    return Ok(format!("{v}{suffix}"));
                }
                _ => format = Format::DecimalSi,
            }
        }
        while m.abs() >= 10 && m % 10 == 0 {
            m /= 10;
            scale += 1;
        }
        while scale % 3 != 0 {
            m = m.checked_mul(10).ok_or_else(too_big)?;
            scale -= 1;
        }
        let suffix = match format {
            Format::DecimalExponent if scale == 0 => String::new(),
            Format::DecimalExponent => format!("e{scale}"),
            _ => match scale {
                -9 => "n",
                -6 => "u",
                -3 => "m",
                0 => "",
                3 => "k",
                6 => "M",
                9 => "G",
                12 => "T",
                15 => "P",
                18 => "E",
                _ => return Err(too_big()),
            }
            .to_string(),
        };
        Ok(format!("{m}{suffix}"))
    }

    /// The quantity as Go's `resource.Quantity` writes it after reading `s`.
    pub fn canonical(s: &str) -> Result<String, String> {
        let s = s.trim();
        if s.is_empty() {
            return Err(format!("the quantity is empty: {HINT}"));
        }
        if s == "0" {
            return Ok(s.into());
        }
        let p = split(s)?;
        let (base, exponent, format) =
            interpret(p.suffix).ok_or_else(|| format!("{s:?} has an unknown suffix: {HINT}"))?;
        let digits = p.num.len() + p.denom.len();
        let digits = i32::try_from(digits).map_err(|_| format!("{s:?} is too long"))?;
        let shifted = format!("{}{}", p.num, p.denom);
        // Go's fast path, which keeps a canonical-looking string verbatim.
        let (precision, scale, mantissa) = match format {
            Format::BinarySi if p.denom.is_empty() => (
                15 - digits - (exponent as f32 * 3.0 / 10.0) as i32 - 1,
                0,
                1i64 << exponent,
            ),
            Format::BinarySi => (-1, 0, 1),
            _ => (18 - digits, exponent, 1),
        };
        let scale = scale - (p.denom.len() as i32);
        if precision >= 0 && scale >= -9 {
            let value: i64 = shifted
                .parse()
                .map_err(|_| format!("{s:?} is not a number: {HINT}"))?;
            if let Some(result) = value.checked_mul(mantissa) {
                let result = if p.positive { result } else { -result };
                let keep = match format {
                    Format::BinarySi => exponent % 10 == 0 && value & 0x07 != 0,
                    _ => scale % 3 == 0 && !shifted.ends_with("000") && !shifted.starts_with('0'),
                };
                if keep {
                    return Ok(s.into());
                }
                return render(i128::from(result), scale, format).map_err(|e| format!("{s:?} {e}"));
            }
        }
        // Go's exact path, rounding up to a whole nano.
        let too_big = || format!("{s:?} is too large or too precise");
        let mut m: i128 = shifted.parse().map_err(|_| too_big())?;
        if !p.positive {
            m = -m;
        }
        let mut scale = -(p.denom.len() as i32);
        if base == 10 {
            scale += exponent;
        } else {
            let factor = 1i128
                .checked_shl(u32::try_from(exponent).map_err(|_| too_big())?)
                .ok_or_else(too_big)?;
            m = m.checked_mul(factor).ok_or_else(too_big)?;
        }
        if m != 0 && scale < -9 {
            let d = pow10(-9 - scale).ok_or_else(too_big)?;
            let q = m / d;
            m = if m % d == 0 { q } else { q + m.signum() };
            scale = -9;
        }
        render(m, scale, format).map_err(|e| format!("{s:?} {e}"))
    }

    #[cfg(test)]
    mod tests {
        use super::canonical;

        #[test]
        fn as_kubernetes_writes_them() {
            for (given, written) in [
                ("100m", "100m"),
                ("0.5", "500m"),
                ("1000m", "1"),
                ("1500m", "1500m"),
                ("1", "1"),
                ("1000", "1k"),
                ("64Mi", "64Mi"),
                ("1024Mi", "1Gi"),
                ("1Ki", "1Ki"),
                ("100Ki", "100Ki"),
                ("0.5Gi", "512Mi"),
                ("1e3", "1e3"),
                ("1.5e3", "1500"),
                ("0m", "0"),
                ("0", "0"),
                ("128M", "128M"),
                ("1G", "1G"),
                ("0.0000000001", "1n"),
                ("-1", "-1"),
            ] {
                assert_eq!(canonical(given).as_deref(), Ok(written), "{given}");
            }
            for bad in ["", "1x", "abc", "1Kb", "1e"] {
                assert!(canonical(bad).is_err(), "{bad}");
            }
        }
    }
}

/// YAML as `sigs.k8s.io/yaml.Marshal` writes JSON data: go-yaml v2 (a port
/// of libyaml's emitter) with its defaults: keys sorted its way, block
/// style, sequences not indented under their key, strings that would read
/// back as another type double-quoted, multi-line strings as literal
/// blocks, long plain and quoted strings folded past column 80.
pub mod goyaml {
    use serde_json::Value;

    const BEST_INDENT: i32 = 2;
    const BEST_WIDTH: usize = 80;

    /// Renders `value` as one YAML document.
    pub fn to_string(value: &Value) -> String {
        let mut e = Emitter {
            out: String::new(),
            column: 0,
            indent: -1,
            indents: Vec::new(),
            whitespace: true,
            indention: true,
        };
        e.node(value, Context::Root);
        // Document end: a line break unless the last line is already ended.
        e.write_indent();
        e.out
    }

    #[derive(Clone, Copy, PartialEq)]
    enum Context {
        Root,
        MappingValue,
        SequenceItem,
        SimpleKey,
    }

    #[derive(Clone, Copy, PartialEq)]
    enum Style {
        Plain,
        Single,
        Double,
        Literal,
    }

    struct Emitter {
        out: String,
        column: usize,
        indent: i32,
        indents: Vec<i32>,
        whitespace: bool,
        indention: bool,
    }

    impl Emitter {
        fn put(&mut self, c: char) {
            self.out.push(c);
            self.column += 1;
        }

        fn put_break(&mut self) {
            self.out.push('\n');
            self.column = 0;
        }

        fn write_str(&mut self, s: &str) {
            for c in s.chars() {
                self.put(c);
            }
        }

        fn increase_indent(&mut self, flow: bool, indentless: bool) {
            self.indents.push(self.indent);
            if self.indent < 0 {
                self.indent = if flow { BEST_INDENT } else { 0 };
            } else if !indentless {
                self.indent += BEST_INDENT;
            }
        }

        fn pop_indent(&mut self) {
            self.indent = self.indents.pop().unwrap_or(-1);
        }

        fn write_indent(&mut self) {
            let indent = usize::try_from(self.indent.max(0)).unwrap_or(0);
            if !self.indention
                || self.column > indent
                || (self.column == indent && !self.whitespace)
            {
                self.put_break();
            }
            while self.column < indent {
                self.put(' ');
            }
            self.whitespace = true;
            self.indention = true;
        }

        fn write_indicator(
            &mut self,
            indicator: &str,
            need_whitespace: bool,
            is_whitespace: bool,
            is_indention: bool,
        ) {
            if need_whitespace && !self.whitespace {
                self.put(' ');
            }
            self.write_str(indicator);
            self.whitespace = is_whitespace;
            self.indention = self.indention && is_indention;
        }

        fn node(&mut self, value: &Value, ctx: Context) {
            match value {
                Value::Object(map) if !map.is_empty() => {
                    self.increase_indent(false, false);
                    let mut entries: Vec<(&String, &Value)> = map.iter().collect();
                    entries.sort_by(|a, b| key_order(a.0, b.0));
                    for (k, v) in entries {
                        self.write_indent();
                        let analysis = analyze(k);
                        if k.len() <= 128 && !analysis.multiline {
                            self.string(k, Context::SimpleKey);
                            self.write_indicator(":", false, false, false);
                        } else {
                            self.write_indicator("?", true, false, true);
                            self.string(k, Context::MappingValue);
                            self.write_indent();
                            self.write_indicator(":", true, false, true);
                        }
                        self.node(v, Context::MappingValue);
                    }
                    self.pop_indent();
                }
                Value::Array(items) if !items.is_empty() => {
                    let indentless = ctx == Context::MappingValue && !self.indention;
                    self.increase_indent(false, indentless);
                    for item in items {
                        self.write_indent();
                        self.write_indicator("-", true, false, true);
                        self.node(item, Context::SequenceItem);
                    }
                    self.pop_indent();
                }
                Value::Object(_) => self.empty("{", "}"),
                Value::Array(_) => self.empty("[", "]"),
                Value::String(s) => self.string(s, ctx),
                Value::Null => self.plain("null", ctx),
                Value::Bool(b) => self.plain(if *b { "true" } else { "false" }, ctx),
                Value::Number(n) => {
                    let text = match (n.as_i64(), n.as_u64(), n.as_f64()) {
                        (Some(i), _, _) => i.to_string(),
                        (_, Some(u), _) => u.to_string(),
                        (_, _, Some(f)) => go_float(f),
                        _ => n.to_string(),
                    };
                    self.plain(&text, ctx)
                }
            }
        }

        fn empty(&mut self, open: &str, close: &str) {
            self.write_indicator(open, true, true, false);
            self.write_indicator(close, false, false, false);
        }

        /// A scalar go-yaml writes plain (numbers, booleans, null).
        fn plain(&mut self, text: &str, ctx: Context) {
            self.increase_indent(true, false);
            self.write_plain(text, ctx != Context::SimpleKey);
            self.pop_indent();
        }

        /// A string: go-yaml's `stringv`, then the emitter's style choice.
        fn string(&mut self, s: &str, ctx: Context) {
            let simple_key = ctx == Context::SimpleKey;
            let requested = if s.contains('\n') {
                Style::Literal
            } else if resolves_to_string(s) {
                Style::Plain
            } else {
                Style::Double
            };
            let a = analyze(s);
            let mut style = requested;
            if simple_key && a.multiline {
                style = Style::Double;
            }
            if style == Style::Plain && (!a.block_plain_allowed || (s.is_empty() && simple_key)) {
                style = Style::Single;
            }
            if style == Style::Single && !a.single_quoted_allowed {
                style = Style::Double;
            }
            if style == Style::Literal && (!a.block_allowed || simple_key) {
                style = Style::Double;
            }
            self.increase_indent(true, false);
            let allow_breaks = !simple_key;
            match style {
                Style::Plain => self.write_plain(s, allow_breaks),
                Style::Single => self.write_single(s, allow_breaks),
                Style::Double => self.write_double(s, allow_breaks),
                Style::Literal => self.write_literal(s),
            }
            self.pop_indent();
        }

        fn write_plain(&mut self, s: &str, allow_breaks: bool) {
            if !self.whitespace {
                self.put(' ');
            }
            let chars: Vec<char> = s.chars().collect();
            let mut spaces = false;
            let mut breaks = false;
            for (i, &c) in chars.iter().enumerate() {
                if c == ' ' {
                    if allow_breaks
                        && !spaces
                        && self.column > BEST_WIDTH
                        && chars.get(i + 1) != Some(&' ')
                    {
                        self.write_indent();
                    } else {
                        self.put(c);
                    }
                    spaces = true;
                } else if is_break(c) {
                    if !breaks && c == '\n' {
                        self.put_break();
                    }
                    self.write_break(c);
                    self.indention = true;
                    breaks = true;
                } else {
                    if breaks {
                        self.write_indent();
                    }
                    self.put(c);
                    self.indention = false;
                    spaces = false;
                    breaks = false;
                }
            }
            self.whitespace = false;
            self.indention = false;
        }

        fn write_break(&mut self, c: char) {
            if c == '\n' {
                self.put_break();
            } else {
                self.out.push(c);
                self.column = 0;
            }
        }

        fn write_single(&mut self, s: &str, allow_breaks: bool) {
            self.write_indicator("'", true, false, false);
            let chars: Vec<char> = s.chars().collect();
            let last = chars.len().saturating_sub(1);
            let mut spaces = false;
            let mut breaks = false;
            for (i, &c) in chars.iter().enumerate() {
                if c == ' ' {
                    if allow_breaks
                        && !spaces
                        && self.column > BEST_WIDTH
                        && i != 0
                        && i != last
                        && chars.get(i + 1) != Some(&' ')
                    {
                        self.write_indent();
                    } else {
                        self.put(c);
                    }
                    spaces = true;
                } else if is_break(c) {
                    if !breaks && c == '\n' {
                        self.put_break();
                    }
                    self.write_break(c);
                    self.indention = true;
                    breaks = true;
                } else {
                    if breaks {
                        self.write_indent();
                    }
                    if c == '\'' {
                        self.put('\'');
                    }
                    self.put(c);
                    self.indention = false;
                    spaces = false;
                    breaks = false;
                }
            }
            self.write_indicator("'", false, false, false);
        }

        fn write_double(&mut self, s: &str, allow_breaks: bool) {
            self.write_indicator("\"", true, false, false);
            let chars: Vec<char> = s.chars().collect();
            let last = chars.len().saturating_sub(1);
            let mut spaces = false;
            for (i, &c) in chars.iter().enumerate() {
                if !is_printable(c) || c == '\u{FEFF}' || is_break(c) || c == '"' || c == '\\' {
                    self.put('\\');
                    match c {
                        '\0' => self.put('0'),
                        '\u{7}' => self.put('a'),
                        '\u{8}' => self.put('b'),
                        '\t' => self.put('t'),
                        '\n' => self.put('n'),
                        '\u{b}' => self.put('v'),
                        '\u{c}' => self.put('f'),
                        '\r' => self.put('r'),
                        '\u{1b}' => self.put('e'),
                        '"' => self.put('"'),
                        '\\' => self.put('\\'),
                        '\u{85}' => self.put('N'),
                        '\u{A0}' => self.put('_'),
                        '\u{2028}' => self.put('L'),
                        '\u{2029}' => self.put('P'),
                        _ => {
                            let v = u32::from(c);
                            let text = if v <= 0xFF {
                                format!("x{v:02X}")
                            } else if v <= 0xFFFF {
                                format!("u{v:04X}")
                            } else {
                                format!("U{v:08X}")
                            };
                            self.write_str(&text);
                        }
                    }
                    spaces = false;
                } else if c == ' ' {
                    if allow_breaks && !spaces && self.column > BEST_WIDTH && i != 0 && i != last {
                        self.write_indent();
                        if chars.get(i + 1) == Some(&' ') {
                            self.put('\\');
                        }
                    } else {
                        self.put(c);
                    }
                    spaces = true;
                } else {
                    self.put(c);
                    spaces = false;
                }
            }
            self.write_indicator("\"", false, false, false);
        }

        fn write_literal(&mut self, s: &str) {
            self.write_indicator("|", true, false, false);
            let chars: Vec<char> = s.chars().collect();
            if chars.first().is_some_and(|&c| c == ' ' || is_break(c)) {
                self.write_indicator(&BEST_INDENT.to_string(), false, false, false);
            }
            let chomp = match chars.as_slice() {
                [] => Some("-"),
                [.., last] if !is_break(*last) => Some("-"),
                [_] => Some("+"),
                [.., before, _] if is_break(*before) => Some("+"),
                _ => None,
            };
            if let Some(chomp) = chomp {
                self.write_indicator(chomp, false, false, false);
            }
            self.put_break();
            self.indention = true;
            self.whitespace = true;
            let mut breaks = true;
            for c in chars {
                if is_break(c) {
                    self.write_break(c);
                    self.indention = true;
                    breaks = true;
                } else {
                    if breaks {
                        self.write_indent();
                        breaks = false;
                    }
                    self.put(c);
                    self.indention = false;
                }
            }
        }
    }

    fn is_break(c: char) -> bool {
        matches!(c, '\r' | '\n' | '\u{85}' | '\u{2028}' | '\u{2029}')
    }

    fn is_blank_or_end(c: Option<char>) -> bool {
        c.is_none_or(|c| c == ' ' || c == '\t' || is_break(c))
    }

    fn is_printable(c: char) -> bool {
        let v = u32::from(c);
        v == 0x0A
            || (0x20..=0x7E).contains(&v)
            || (0xA0..=0xD7FF).contains(&v)
            || ((0xE000..=0xFFFD).contains(&v) && v != 0xFEFF)
    }

    /// libyaml's `yaml_emitter_analyze_scalar`, reduced to what block
    /// context needs.
    struct Analysis {
        multiline: bool,
        block_plain_allowed: bool,
        single_quoted_allowed: bool,
        block_allowed: bool,
    }

    fn analyze(s: &str) -> Analysis {
        if s.is_empty() {
            return Analysis {
                multiline: false,
                block_plain_allowed: true,
                single_quoted_allowed: true,
                block_allowed: false,
            };
        }
        let chars: Vec<char> = s.chars().collect();
        let mut block_indicators = s.starts_with("---") || s.starts_with("...");
        let (mut special, mut line_breaks) = (false, false);
        let (mut leading_space, mut leading_break) = (false, false);
        let (mut trailing_space, mut trailing_break) = (false, false);
        let (mut break_space, mut space_break) = (false, false);
        let (mut previous_space, mut previous_break) = (false, false);
        let mut preceded_by_whitespace = true;
        let last = chars.len() - 1;
        for (i, &c) in chars.iter().enumerate() {
            let followed_by_whitespace = is_blank_or_end(chars.get(i + 1).copied());
            if i == 0 {
                if "#,[]{}&*!|>'\"%@`".contains(c) {
                    block_indicators = true;
                }
                if (c == '?' || c == ':' || c == '-') && followed_by_whitespace {
                    block_indicators = true;
                }
            } else if (c == ':' && followed_by_whitespace) || (c == '#' && preceded_by_whitespace) {
                block_indicators = true;
            }
            if !is_printable(c) {
                special = true;
            }
            if is_break(c) {
                line_breaks = true;
            }
            if c == ' ' {
                leading_space |= i == 0;
                trailing_space |= i == last;
                break_space |= previous_break;
                previous_space = true;
                previous_break = false;
            } else if is_break(c) {
                leading_break |= i == 0;
                trailing_break |= i == last;
                space_break |= previous_space;
                previous_break = true;
                previous_space = false;
            } else {
                previous_space = false;
                previous_break = false;
            }
            preceded_by_whitespace = is_blank_or_end(Some(c));
        }
        let mut a = Analysis {
            multiline: line_breaks,
            block_plain_allowed: true,
            single_quoted_allowed: true,
            block_allowed: true,
        };
        if leading_space || leading_break || trailing_space || trailing_break {
            a.block_plain_allowed = false;
        }
        if trailing_space {
            a.block_allowed = false;
        }
        if break_space {
            a.block_plain_allowed = false;
            a.single_quoted_allowed = false;
        }
        if space_break || special {
            a.block_plain_allowed = false;
            a.single_quoted_allowed = false;
            a.block_allowed = false;
        }
        if line_breaks || block_indicators {
            a.block_plain_allowed = false;
        }
        a
    }

    /// Whether go-yaml v2 reads `s`, written plain, back as a string (its
    /// `resolve`, YAML 1.1 flavoured: `yes`/`off` are booleans, `1:20` a
    /// number, `2001-12-14` a timestamp).
    fn resolves_to_string(s: &str) -> bool {
        let Some(first) = s.chars().next() else {
            return false; // null
        };
        const WORDS: &[&str] = &[
            "~", "null", "Null", "NULL", "y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO",
            "true", "True", "TRUE", "false", "False", "FALSE", "on", "On", "ON", "off", "Off",
            "OFF", ".nan", ".NaN", ".NAN", ".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF",
            "-.inf", "-.Inf", "-.INF", "<<",
        ];
        if WORDS.contains(&s) {
            return false;
        }
        if !(first.is_ascii_digit() || matches!(first, '+' | '-' | '.')) {
            return true;
        }
        !(is_int(s) || is_float(s) || is_base60_float(s) || is_timestamp(s))
    }

    /// Go's `strconv.ParseInt(s, 0, 64)` after removing `_` (or ParseUint,
    /// or the `0b` form go-yaml adds).
    fn is_int(s: &str) -> bool {
        let plain = s.replace('_', "");
        let unsigned = plain
            .strip_prefix('-')
            .or_else(|| plain.strip_prefix('+'))
            .unwrap_or(&plain);
        let (digits, radix) = if let Some(h) = unsigned
            .strip_prefix("0x")
            .or_else(|| unsigned.strip_prefix("0X"))
        {
            (h, 16)
        } else if let Some(b) = unsigned
            .strip_prefix("0b")
            .or_else(|| unsigned.strip_prefix("0B"))
        {
            (b, 2)
        } else if let Some(o) = unsigned
            .strip_prefix("0o")
            .or_else(|| unsigned.strip_prefix("0O"))
        {
            (o, 8)
        } else if unsigned.len() > 1 && unsigned.starts_with('0') {
            (&unsigned[1..], 8)
        } else {
            (unsigned, 10)
        };
        !digits.is_empty() && digits.chars().all(|c| c.is_digit(radix))
    }

    /// go-yaml v2's `yamlStyleFloat`: `^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$`.
    fn is_float(s: &str) -> bool {
        let s = s.replace('_', "");
        let b = s.as_bytes();
        let mut i = 0;
        if matches!(b.first(), Some(b'+' | b'-')) {
            i += 1;
        }
        let digits = |i: &mut usize| {
            let start = *i;
            while *i < b.len() && b[*i].is_ascii_digit() {
                *i += 1;
            }
            *i - start
        };
        if b.get(i) == Some(&b'.') {
            i += 1;
            if digits(&mut i) == 0 {
                return false;
            }
        } else {
            if digits(&mut i) == 0 {
                return false;
            }
            if b.get(i) == Some(&b'.') {
                i += 1;
                digits(&mut i);
            }
        }
        if matches!(b.get(i), Some(b'e' | b'E')) {
            i += 1;
            if matches!(b.get(i), Some(b'+' | b'-')) {
                i += 1;
            }
            if digits(&mut i) == 0 {
                return false;
            }
        }
        i == b.len()
    }

    /// `^[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?$`.
    fn is_base60_float(s: &str) -> bool {
        let s = s.strip_prefix(['+', '-']).unwrap_or(s);
        let (head, fraction) = s.split_once('.').unwrap_or((s, ""));
        if !fraction.chars().all(|c| c.is_ascii_digit() || c == '_') {
            return false;
        }
        let mut parts = head.split(':');
        let Some(first) = parts.next() else {
            return false;
        };
        let mut rest = 0;
        let first_ok = first.starts_with(|c: char| c.is_ascii_digit())
            && first.chars().all(|c| c.is_ascii_digit() || c == '_');
        for p in parts {
            rest += 1;
            let ok = match p.as_bytes() {
                [d] => d.is_ascii_digit(),
                [a, d] => (b'0'..=b'5').contains(a) && d.is_ascii_digit(),
                _ => false,
            };
            if !ok {
                return false;
            }
        }
        first_ok && rest > 0
    }

    /// The timestamp forms go-yaml v2 reads: `2006-1-2`, optionally followed
    /// by `T`, `t` or a space and a time.
    fn is_timestamp(s: &str) -> bool {
        let b = s.as_bytes();
        let digits = |from: usize| {
            b[from.min(b.len())..]
                .iter()
                .take_while(|c| c.is_ascii_digit())
                .count()
        };
        if digits(0) != 4 || b.get(4) != Some(&b'-') {
            return false;
        }
        let month = digits(5);
        if !(1..=2).contains(&month) || b.get(5 + month) != Some(&b'-') {
            return false;
        }
        let day_at = 6 + month;
        let day = digits(day_at);
        let end = day_at + day;
        (1..=2).contains(&day) && (end == b.len() || matches!(b[end], b'T' | b't' | b' '))
    }

    /// go-yaml v2 formats floats with `strconv.FormatFloat(f, 'g', -1, 64)`:
    /// shortest digits, exponent form below 1e-4 and from 1e6.
    fn go_float(f: f64) -> String {
        if f.is_nan() {
            return ".nan".into();
        }
        if f.is_infinite() {
            return if f > 0.0 { ".inf" } else { "-.inf" }.into();
        }
        let sci = format!("{f:e}");
        let Some((mantissa, exp)) = sci.split_once('e') else {
            return sci;
        };
        let exp: i32 = exp.parse().unwrap_or(0);
        if (-4..6).contains(&exp) {
            format!("{f}")
        } else {
            let sign = if exp < 0 { '-' } else { '+' };
            format!("{mantissa}e{sign}{:02}", exp.abs())
        }
    }

    /// go-yaml v2's `keyList.Less`: letters after other characters, runs of
    /// digits compared as numbers.
    pub fn key_order(a: &str, b: &str) -> std::cmp::Ordering {
        use std::cmp::Ordering;
        let ar: Vec<char> = a.chars().collect();
        let br: Vec<char> = b.chars().collect();
        let less = |x: bool| if x { Ordering::Less } else { Ordering::Greater };
        let mut i = 0;
        while i < ar.len() && i < br.len() {
            if ar[i] == br[i] {
                i += 1;
                continue;
            }
            let al = ar[i].is_alphabetic();
            let bl = br[i].is_alphabetic();
            if al && bl {
                return ar[i].cmp(&br[i]);
            }
            if al || bl {
                return less(bl);
            }
            let (mut an, mut bn): (i64, i64) = (0, 0);
            if ar[i] == '0' || br[i] == '0' {
                for j in (0..i).rev() {
                    if !ar[j].is_ascii_digit() {
                        break;
                    }
                    if ar[j] != '0' {
                        an = 1;
                        bn = 1;
                        break;
                    }
                }
            }
            let mut ai = i;
            while ai < ar.len() && ar[ai].is_ascii_digit() {
                an = an
                    .wrapping_mul(10)
                    .wrapping_add(i64::from(ar[ai] as u8 - b'0'));
                ai += 1;
            }
            let mut bi = i;
            while bi < br.len() && br[bi].is_ascii_digit() {
                bn = bn
                    .wrapping_mul(10)
                    .wrapping_add(i64::from(br[bi] as u8 - b'0'));
                bi += 1;
            }
            if an != bn {
                return an.cmp(&bn);
            }
            if ai != bi {
                return ai.cmp(&bi);
            }
            return ar[i].cmp(&br[i]);
        }
        ar.len().cmp(&br.len())
    }

    #[cfg(test)]
    mod tests {
        use super::*;
        use serde_json::json;

        #[test]
        fn writes_as_go_yaml_v2() {
            let v = json!({
                "name": "",
                "ports": [{"containerPort": 1234}],
                "resources": {},
                "securityContext": {},
            });
            // Argo's own ToConfigMap test expects exactly this.
            assert_eq!(
                to_string(&v),
                "name: \"\"\nports:\n- containerPort: 1234\nresources: {}\nsecurityContext: {}\n"
            );
            let v = json!({
                "b": "true", "a": ">= v3.3", "c": "x\ny\n", "d": "1", "e": "yes", "f": "it's: here",
                "g": [["x"], []], "h": "500m", "i": "2001-12-14", "j": "a\tb", "k": "#x", "l": "a #b",
                "m": "1:20", "n": "x\n", "o": "x", "p": "0x1F", "q": "1e3", "r": "-", "s": "- a",
            });
            assert_eq!(
                to_string(&v),
                "a: '>= v3.3'\nb: \"true\"\nc: |\n  x\n  y\nd: \"1\"\ne: \"yes\"\nf: 'it''s: here'\ng:\n- - x\n- []\nh: 500m\ni: \"2001-12-14\"\nj: \"a\\tb\"\nk: '#x'\nl: 'a #b'\nm: \"1:20\"\n\"n\": |\n  x\no: x\np: \"0x1F\"\nq: \"1e3\"\nr: '-'\ns: '- a'\n"
            );
        }

        #[test]
        fn folds_long_plain_strings_at_80_columns() {
            let words = vec!["word"; 30].join(" ");
            let text = to_string(&json!({ "key": words }));
            let lines: Vec<&str> = text.lines().collect();
            assert!(lines.len() > 1, "{text}");
            assert!(lines[1].starts_with("  word"), "{text}");
        }

        #[test]
        fn sorts_keys_as_go_yaml() {
            let mut keys = vec!["b", "a10", "a9", "a", "B", "_x", "image", "imagePullPolicy"];
            keys.sort_by(|a, b| key_order(a, b));
            assert_eq!(
                keys,
                ["_x", "B", "a", "a9", "a10", "b", "image", "imagePullPolicy"]
            );
        }
    }
}
