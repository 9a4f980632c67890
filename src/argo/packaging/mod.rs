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
//! steps: [`load`] checks the manifest (`manifest`) against the container
//! fields it knows (`container`, with Go's `omitempty` rules and
//! Kubernetes' canonical [`quantity`]s), [`configmap_yaml`] renders with
//! [`goyaml`], a port of go-yaml v2's emitter for the JSON data model.
//!
//! Since Kubernetes 1.33's client libraries (an `argo` binary of v4), a
//! ConfigMap built this way carries no `metadata.creationTimestamp: null`;
//! older `argo` binaries add that line. Argo's `README.md` template is
//! reproduced too, since `argo executor-plugin build` writes it as well.
//!
//! Why a port of go-yaml's emitter rather than `serde_yaml_ng` (the
//! decision of issue 10): the committed ConfigMap is checked byte for byte
//! against a fresh build, so `gameops plugin build` and `argo
//! executor-plugin build` must write the same bytes, or the file churns
//! with whichever tool ran last. More than bytes are at stake: Argo reads
//! the ConfigMap back with go-yaml v2, a YAML 1.1 reader, and `serde_yaml_ng`
//! (YAML 1.2) writes the strings `yes`, `no`, `on`, `off`, `y`, `n`, `1:20`
//! and `1_000` bare (checked in session 5 on serde_yaml_ng 0.10), which
//! go-yaml reads as booleans and numbers: an env value `"on"` would stop
//! Argo from loading the plugin. Re-checked in session 5, the emitter stays,
//! in its own file.

mod container;
pub mod goyaml;
mod manifest;
pub mod quantity;

pub use manifest::parse;

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
