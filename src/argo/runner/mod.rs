//! The local runner: executes a Workflow or WorkflowTemplate the way Argo's
//! controller and agent would, without a cluster: `steps` and `dag`,
//! `templateRef` / `workflowTemplateRef` across a directory of
//! WorkflowTemplates, parameters and outputs, `withItems` / `withParam`,
//! `when`, `suspend` (a prompt, or `--approve`), `retryStrategy` (`retry.rs`),
//! `continueOn` and `onExit`. Plugin templates go over HTTP to the plugin
//! with exactly the request Argo's agent sends (CONTRACTS section 1), the
//! token included, and their `requeue` is honoured. Before it starts, it
//! refuses templates that need pods (container, script, resource, http…)
//! and gameops plugin calls the op table rejects (`precheck.rs`); once the
//! parameters are known, a value outside its `enum`, a required one
//! missing, and every plugin argument or `withParam` the parameters decide
//! that is of the wrong form (`known.rs`), before the first step runs.

mod call;
mod flow;
mod known;
mod precheck;
mod retry;
mod workflow_run;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub use workflow_run::Runner;

use crate::argo::workflow::Document;

/// How long Argo's agent waits for one plugin call.
const CALL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Why a run could not start, or stopped.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A file that cannot be read or parsed.
    #[error("{path}: {message}")]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// Something the runner refuses before it starts.
    #[error("{0}")]
    Invalid(String),
}

/// The WorkflowTemplates built into the binary, so `gameops demo` and
/// `gameops run` need no checkout; `--templates DIR` uses a directory instead.
pub const BUILTIN_TEMPLATES: &[(&str, &str)] = &[
    (
        "seamless-release.yaml",
        include_str!("../../../workflow-templates/seamless-release.yaml"),
    ),
    (
        "rollback.yaml",
        include_str!("../../../workflow-templates/rollback.yaml"),
    ),
    (
        "promote.yaml",
        include_str!("../../../workflow-templates/promote.yaml"),
    ),
    (
        "multi-region-release.yaml",
        include_str!("../../../workflow-templates/multi-region-release.yaml"),
    ),
];

/// WorkflowTemplates by name: what `templateRef` and
/// `workflowTemplateRef` can name.
#[derive(Debug, Default, Clone)]
pub struct Library {
    templates: BTreeMap<String, Arc<Document>>,
}

/// Reads one YAML document.
pub fn load_file(path: &Path) -> Result<Document, RunError> {
    let fail = |message: String| RunError::File {
        path: path.to_owned(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))?;
    let doc: Document = serde_yaml_ng::from_str(&text).map_err(|e| fail(e.to_string()))?;
    if doc.kind != "Workflow" && doc.kind != "WorkflowTemplate" {
        return Err(fail(format!(
            "kind {} is not a Workflow or WorkflowTemplate",
            doc.kind
        )));
    }
    Ok(doc)
}

impl Library {
    /// The WorkflowTemplates built into the binary ([`BUILTIN_TEMPLATES`]).
    pub fn builtin() -> Result<Self, RunError> {
        let staging = |e: std::io::Error| {
            RunError::Invalid(format!("cannot stage the built-in templates: {e}"))
        };
        let dir = tempfile::tempdir().map_err(staging)?;
        for (name, text) in BUILTIN_TEMPLATES {
            std::fs::write(dir.path().join(name), text).map_err(staging)?;
        }
        Self::load_dir(dir.path())
    }

    /// The WorkflowTemplates in `dir` (`*.yaml`, `*.yml`; not recursive).
    pub fn load_dir(dir: &Path) -> Result<Self, RunError> {
        let mut library = Self::default();
        let entries = std::fs::read_dir(dir).map_err(|e| RunError::File {
            path: dir.to_owned(),
            message: format!("cannot read the templates directory: {e}"),
        })?;
        let mut paths: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
            .collect();
        paths.sort();
        for path in paths {
            let doc = load_file(&path)?;
            if doc.kind == "WorkflowTemplate"
                && let Some(name) = doc.metadata.name.clone()
            {
                library.templates.insert(name, Arc::new(doc));
            }
        }
        Ok(library)
    }

    /// The WorkflowTemplate called `name`.
    pub fn get(&self, name: &str) -> Option<Arc<Document>> {
        self.templates.get(name).cloned()
    }

    /// Their names, for messages.
    pub fn names(&self) -> Vec<String> {
        self.templates.keys().cloned().collect()
    }
}

/// Where the plugin is and how to reach it.
#[derive(Debug, Clone)]
pub struct PluginEndpoint {
    /// `http://HOST:PORT` (the runner appends `/api/v1/template.execute`).
    pub url: String,
    /// The bearer token it expects.
    pub token: String,
}

/// How a run goes.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The plugin.
    pub plugin: PluginEndpoint,
    /// Approve every `suspend` without asking.
    pub approve: bool,
    /// `-p key=value` overrides of the workflow's parameters.
    pub parameters: Vec<(String, String)>,
    /// The namespace the workflow runs in (the ops' default namespace).
    pub namespace: String,
    /// Print each node's progress to stderr.
    pub live: bool,
}

/// How a node ended.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeRecord {
    /// `template/step/...`.
    pub path: String,
    /// `Succeeded`, `Failed`, `Skipped`, `Omitted`, `Error`.
    pub phase: String,
    /// What it said.
    pub message: String,
    /// From start to end.
    pub duration: Duration,
    /// When it ended.
    pub finished_at: jiff::Timestamp,
}

/// How the run ended.
#[derive(Debug, Clone)]
pub struct RunResult {
    /// The workflow's name.
    pub name: String,
    /// `Succeeded`, `Failed` or `Error` (operator.go: a failed exit handler
    /// fails a workflow whose entrypoint succeeded).
    pub phase: String,
    /// The entrypoint's message (or the failed exit handler's).
    pub message: String,
    /// The entrypoint's outputs.
    pub outputs: BTreeMap<String, String>,
    /// The workflow's outputs (`workflow.outputs.parameters.NAME`), in the
    /// order they were first set.
    pub workflow_outputs: Vec<(String, String)>,
    /// Every node, in the order they ended.
    pub nodes: Vec<NodeRecord>,
    /// The whole run.
    pub duration: Duration,
}

/// Names and their values, for `{{name}}` substitution.
type Scope = BTreeMap<String, String>;

/// One node's result.
#[derive(Debug, Clone)]
struct Node {
    phase: String,
    message: String,
    outputs: BTreeMap<String, String>,
    /// Its outputs that carry a `globalName`, by that name: what Argo
    /// exports to `workflow.outputs` from this node where it exports
    /// (a DAG task's, a steps template's own).
    globals: BTreeMap<String, String>,
    /// A loop's node: its items' phases.
    items: Option<Vec<String>>,
}

impl Node {
    fn failed(message: impl Into<String>) -> Self {
        Self::with("Failed", message)
    }

    fn with(phase: &str, message: impl Into<String>) -> Self {
        Self {
            phase: phase.into(),
            message: message.into(),
            outputs: BTreeMap::new(),
            globals: BTreeMap::new(),
            items: None,
        }
    }

    fn ok(&self) -> bool {
        self.phase == "Succeeded"
    }
}

/// The end-of-run summary: each node's phase and duration, the workflow's
/// outputs, then how it ended.
pub fn summary(result: &RunResult) -> String {
    let width = result
        .nodes
        .iter()
        .map(|n| n.path.len())
        .max()
        .unwrap_or(4)
        .max(4);
    let mut out = format!("{:<width$}  {:<9}  {:>8}\n", "NODE", "PHASE", "DURATION");
    for n in &result.nodes {
        out.push_str(&format!(
            "{:<width$}  {:<9}  {:>7.1}s\n",
            n.path,
            n.phase,
            n.duration.as_secs_f64()
        ));
    }
    for (name, value) in &result.workflow_outputs {
        out.push_str(&format!("workflow.outputs.parameters.{name}: {value}\n"));
    }
    out.push_str(&format!(
        "{} {} in {:.1}s{}\n",
        result.name,
        result.phase,
        result.duration.as_secs_f64(),
        if result.message.is_empty() {
            String::new()
        } else {
            format!(": {}", result.message)
        }
    ));
    out
}
