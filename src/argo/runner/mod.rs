//! The local runner: executes a Workflow or WorkflowTemplate the way Argo's
//! controller and agent would, without a cluster: `steps` and `dag`,
//! `templateRef` / `workflowTemplateRef` across a directory of
//! WorkflowTemplates, parameters and outputs, `withItems` / `withParam`,
//! `when`, `suspend` (a prompt, or `--approve`), `retryStrategy.limit`,
//! `continueOn` and `onExit`. Plugin templates go over HTTP to the plugin
//! with exactly the request Argo's agent sends (CONTRACTS section 1), the
//! token included, and their `requeue` is honoured. Templates that need
//! pods (container, script, resource, http…) stop the run before it starts.

pub mod expr;
pub mod model;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use serde_json::{Value, json};

use model::{Document, Template, value_string};

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
    /// `Succeeded`, `Failed`, `Skipped`, `Error`.
    pub phase: String,
    /// What it said.
    pub message: String,
    /// From start to end.
    pub duration: Duration,
}

/// How the run ended.
#[derive(Debug, Clone)]
pub struct RunResult {
    /// The workflow's name.
    pub name: String,
    /// `Succeeded` or `Failed`.
    pub phase: String,
    /// The entrypoint's message.
    pub message: String,
    /// The entrypoint's outputs.
    pub outputs: BTreeMap<String, String>,
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
}

impl Node {
    fn failed(message: impl Into<String>) -> Self {
        Self {
            phase: "Failed".into(),
            message: message.into(),
            outputs: BTreeMap::new(),
        }
    }
    fn ok(&self) -> bool {
        self.phase == "Succeeded"
    }
}

/// The runner for one workflow.
pub struct Runner {
    library: Library,
    options: RunOptions,
    http: reqwest::Client,
    name: String,
    uid: String,
    started: Instant,
    globals: Mutex<BTreeMap<String, String>>,
    nodes: Mutex<Vec<NodeRecord>>,
    /// Serialises approval prompts.
    prompt: tokio::sync::Mutex<()>,
}

/// Parses a Go duration as the plugin writes `requeue` (`5s`, `1m30s`,
/// `500ms`).
pub fn parse_go_duration(text: &str) -> Option<Duration> {
    let mut total = 0f64;
    let mut rest = text.trim();
    if rest == "0" {
        return Some(Duration::ZERO);
    }
    while !rest.is_empty() {
        let split = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number: f64 = rest[..split].parse().ok()?;
        rest = &rest[split..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_end] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" => 1e-6,
            "ns" => 1e-9,
            _ => return None,
        };
        total += number * scale;
        rest = &rest[unit_end..];
    }
    Some(Duration::from_secs_f64(total))
}

/// The templates reachable from `entry` in `owner`, with their owners.
fn reachable(
    library: &Library,
    owner: &Arc<Document>,
    entry: &str,
    seen: &mut BTreeSet<(String, String)>,
) -> Result<(), RunError> {
    let owner_name = owner.metadata.name.clone().unwrap_or_default();
    if !seen.insert((owner_name.clone(), entry.to_owned())) {
        return Ok(());
    }
    let template = find(owner, entry).ok_or_else(|| {
        RunError::Invalid(format!(
            "template {entry:?} does not exist in {}",
            display_name(owner)
        ))
    })?;
    if let Some(kind) = template.unsupported_kind() {
        return Err(RunError::Invalid(format!(
            "template {entry:?} of {} is a {kind} template, which needs pods; the local runner runs steps, dag, suspend and executor-plugin templates only",
            display_name(owner)
        )));
    }
    let children = template
        .steps
        .iter()
        .flatten()
        .flatten()
        .chain(template.dag.iter().flat_map(|d| d.tasks.iter()));
    for step in children {
        match (&step.template, &step.template_ref) {
            (Some(t), None) => reachable(library, owner, t, seen)?,
            (None, Some(r)) => {
                let doc = library.get(&r.name).ok_or_else(|| {
                    RunError::Invalid(format!(
                        "step {:?} of template {entry:?} refers to WorkflowTemplate {:?}, which is not in the templates directory (it has: {})",
                        step.name,
                        r.name,
                        library.names().join(", ")
                    ))
                })?;
                reachable(library, &doc, &r.template, seen)?;
            }
            _ => {
                return Err(RunError::Invalid(format!(
                    "step {:?} of template {entry:?} needs exactly one of template or templateRef",
                    step.name
                )));
            }
        }
    }
    Ok(())
}

fn find<'a>(owner: &'a Document, name: &str) -> Option<&'a Template> {
    owner.spec.templates.iter().find(|t| t.name == name)
}

fn display_name(doc: &Document) -> String {
    format!(
        "{} {}",
        doc.kind,
        doc.metadata
            .name
            .as_deref()
            .or(doc.metadata.generate_name.as_deref())
            .unwrap_or("(unnamed)")
    )
}

impl Runner {
    /// A runner with `library` for references.
    pub fn new(library: Library, options: RunOptions) -> Self {
        let uid = uuid::Uuid::new_v4().to_string();
        Self {
            library,
            options,
            http: reqwest::Client::new(),
            name: String::new(),
            uid,
            started: Instant::now(),
            globals: Mutex::default(),
            nodes: Mutex::default(),
            prompt: tokio::sync::Mutex::new(()),
        }
    }

    fn say(&self, line: &str) {
        if self.options.live {
            let t = self.started.elapsed().as_secs_f64();
            eprintln!("[{t:7.1}s] {line}");
        }
    }

    fn record(&self, path: &str, node: &Node, started: Instant) {
        let mark = match node.phase.as_str() {
            "Succeeded" => "✔",
            "Skipped" => "○",
            _ => "✖",
        };
        self.say(&format!("{mark} {path}  {}  {}", node.phase, node.message));
        if let Ok(mut nodes) = self.nodes.lock() {
            nodes.push(NodeRecord {
                path: path.to_owned(),
                phase: node.phase.clone(),
                message: node.message.clone(),
                duration: started.elapsed(),
            });
        }
    }

    fn globals(&self) -> BTreeMap<String, String> {
        self.globals.lock().map(|g| g.clone()).unwrap_or_default()
    }

    /// Runs `doc` (a Workflow, possibly with `workflowTemplateRef`, or a
    /// WorkflowTemplate) to the end.
    pub async fn run(mut self, doc: Document) -> Result<RunResult, RunError> {
        // The spec that runs: a workflowTemplateRef's, with this workflow's arguments over it.
        let (owner, spec_args) = match &doc.spec.workflow_template_ref {
            Some(r) => {
                let referenced = self.library.get(&r.name).ok_or_else(|| {
                    RunError::Invalid(format!(
                        "workflowTemplateRef {:?} is not in the templates directory (it has: {})",
                        r.name,
                        self.library.names().join(", ")
                    ))
                })?;
                let mut args = referenced.spec.arguments.parameters.clone();
                for p in &doc.spec.arguments.parameters {
                    match args.iter_mut().find(|a| a.name == p.name) {
                        Some(a) => a.value = p.value.clone(),
                        None => args.push(p.clone()),
                    }
                }
                (referenced, args)
            }
            None => (Arc::new(doc.clone()), doc.spec.arguments.parameters.clone()),
        };
        let entry = owner.spec.entrypoint.clone().ok_or_else(|| {
            RunError::Invalid(format!("{} has no spec.entrypoint", display_name(&owner)))
        })?;
        let mut seen = BTreeSet::new();
        reachable(&self.library, &owner, &entry, &mut seen)?;
        if let Some(exit) = &owner.spec.on_exit {
            reachable(&self.library, &owner, exit, &mut seen)?;
        }
        // Parameters: the spec's, then -p overrides.
        let mut parameters: BTreeMap<String, String> = BTreeMap::new();
        for p in &spec_args {
            if let Some(v) = p.value.as_ref().or(p.default.as_ref()) {
                parameters.insert(p.name.clone(), value_string(v));
            }
        }
        for (k, v) in &self.options.parameters {
            if !spec_args.iter().any(|p| &p.name == k) {
                return Err(RunError::Invalid(format!(
                    "-p {k}: the workflow has no parameter {k:?} (it has: {})",
                    spec_args
                        .iter()
                        .map(|p| p.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
            parameters.insert(k.clone(), v.clone());
        }
        if let Some(missing) = spec_args.iter().find(|p| !parameters.contains_key(&p.name)) {
            return Err(RunError::Invalid(format!(
                "parameter {:?} has no value: pass -p {}=VALUE",
                missing.name, missing.name
            )));
        }
        self.name = doc
            .metadata
            .name
            .clone()
            .or_else(|| {
                doc.metadata
                    .generate_name
                    .as_ref()
                    .map(|g| format!("{g}{}", &self.uid[..5]))
            })
            .or_else(|| owner.metadata.name.clone())
            .unwrap_or_else(|| "workflow".into());
        let mut globals = BTreeMap::from([
            ("workflow.name".to_owned(), self.name.clone()),
            (
                "workflow.namespace".to_owned(),
                self.options.namespace.clone(),
            ),
            ("workflow.uid".to_owned(), self.uid.clone()),
        ]);
        for (k, v) in &parameters {
            globals.insert(format!("workflow.parameters.{k}"), v.clone());
        }
        if let Ok(mut g) = self.globals.lock() {
            *g = globals;
        }
        self.started = Instant::now();
        self.say(&format!("▶ {} ({})", self.name, display_name(&owner)));
        let runner = Arc::new(self);
        let entry_template = find(&owner, &entry).cloned().unwrap_or_default();
        let main = runner
            .clone()
            .execute(
                owner.clone(),
                entry_template,
                parameters.clone(),
                entry.clone(),
            )
            .await;
        if let Some(exit) = &owner.spec.on_exit {
            if let Ok(mut g) = runner.globals.lock() {
                g.insert("workflow.status".into(), main.phase.clone());
            }
            let exit_template = find(&owner, exit).cloned().unwrap_or_default();
            runner
                .clone()
                .execute(
                    owner.clone(),
                    exit_template,
                    BTreeMap::new(),
                    format!("{exit} (onExit)"),
                )
                .await;
        }
        let nodes = runner.nodes.lock().map(|n| n.clone()).unwrap_or_default();
        Ok(RunResult {
            name: runner.name.clone(),
            phase: if main.ok() {
                "Succeeded".into()
            } else {
                "Failed".into()
            },
            message: main.message,
            outputs: main.outputs,
            nodes,
            duration: runner.started.elapsed(),
        })
    }

    /// Runs `template` of `owner` with `inputs`, retrying per its strategy.
    fn execute(
        self: Arc<Self>,
        owner: Arc<Document>,
        template: Template,
        inputs: BTreeMap<String, String>,
        path: String,
    ) -> BoxFuture<'static, Node> {
        Box::pin(async move {
            let started = Instant::now();
            let limit = template
                .retry_strategy
                .as_ref()
                .and_then(|r| r.limit.as_ref())
                .and_then(|l| value_string(l).parse::<u32>().ok())
                .unwrap_or(0);
            let mut node = self
                .clone()
                .attempt(owner.clone(), &template, &inputs, &path)
                .await;
            for retry in 1..=limit {
                if node.ok() {
                    break;
                }
                self.say(&format!(
                    "↻ {path}: retry {retry} of {limit} after: {}",
                    node.message
                ));
                node = self
                    .clone()
                    .attempt(owner.clone(), &template, &inputs, &path)
                    .await;
            }
            self.record(&path, &node, started);
            node
        })
    }

    async fn attempt(
        self: Arc<Self>,
        owner: Arc<Document>,
        template: &Template,
        inputs: &BTreeMap<String, String>,
        path: &str,
    ) -> Node {
        let mut scope = self.globals();
        for p in &template.inputs.parameters {
            let value = inputs
                .get(&p.name)
                .cloned()
                .or_else(|| p.value.as_ref().or(p.default.as_ref()).map(value_string));
            match value {
                Some(v) => {
                    scope.insert(format!("inputs.parameters.{}", p.name), v);
                }
                None => {
                    return Node::failed(format!(
                        "input parameter {:?} of template {:?} has no value",
                        p.name, template.name
                    ));
                }
            }
        }
        if let Some(plugin) = &template.plugin {
            return self.call_plugin(template, plugin, &scope, path).await;
        }
        if template.suspend.is_some() {
            return self.suspend(path).await;
        }
        let mut node = if let Some(groups) = &template.steps {
            self.clone()
                .run_steps(owner, groups, &mut scope, path)
                .await
        } else if let Some(dag) = &template.dag {
            self.clone()
                .run_dag(owner, &dag.tasks, &mut scope, path)
                .await
        } else {
            return Node::failed(format!("template {:?} has nothing to run", template.name));
        };
        // Outputs of a steps/dag template come from its children.
        for out in &template.outputs.parameters {
            let value = match out.value_from.as_ref().and_then(|v| v.parameter.as_ref()) {
                Some(expression) => match expr::substitute(expression, &scope) {
                    Ok(v) => Some(v),
                    Err(_) => out
                        .value_from
                        .as_ref()
                        .and_then(|v| v.default.as_ref())
                        .map(value_string),
                },
                None => out.value.as_ref().map(value_string),
            };
            if let Some(v) = value {
                node.outputs.insert(out.name.clone(), v);
            } else if node.ok() {
                node = Node::failed(format!(
                    "output {:?} of template {:?} did not resolve",
                    out.name, template.name
                ));
            }
        }
        node
    }

    async fn suspend(&self, path: &str) -> Node {
        let _one_at_a_time = self.prompt.lock().await;
        if self.options.approve {
            self.say(&format!("⏸ {path}: approved (--approve)"));
            return Node {
                phase: "Succeeded".into(),
                message: "approved (--approve)".into(),
                outputs: BTreeMap::new(),
            };
        }
        if !std::io::stdin().is_terminal() {
            return Node::failed(format!(
                "{path} waits for approval, and there is no terminal to ask: pass --approve"
            ));
        }
        let path = path.to_owned();
        let answer = tokio::task::spawn_blocking(move || {
            eprint!("⏸ {path} is waiting for approval. Resume? [y/N] ");
            let _ = std::io::stderr().flush();
            let mut line = String::new();
            let _ = std::io::stdin().lock().read_line(&mut line);
            line
        })
        .await
        .unwrap_or_default();
        if matches!(answer.trim(), "y" | "Y" | "yes") {
            Node {
                phase: "Succeeded".into(),
                message: "approved".into(),
                outputs: BTreeMap::new(),
            }
        } else {
            Node::failed("not approved")
        }
    }

    async fn call_plugin(
        &self,
        template: &Template,
        plugin: &Value,
        scope: &BTreeMap<String, String>,
        path: &str,
    ) -> Node {
        let plugin = match expr::substitute_json(plugin, scope) {
            Ok(p) => p,
            Err(e) => return Node::failed(format!("{path}: {e}")),
        };
        let inputs: Vec<Value> = template
            .inputs
            .parameters
            .iter()
            .map(|p| {
                json!({"name": p.name, "value": scope.get(&format!("inputs.parameters.{}", p.name))})
            })
            .collect();
        let outputs: Vec<Value> = template
            .outputs
            .parameters
            .iter()
            .map(|p| json!({"name": p.name, "value": p.value.as_ref().map(value_string).unwrap_or_default()}))
            .collect();
        let body = json!({
            "workflow": {"metadata": {"name": self.name, "namespace": self.options.namespace, "uid": self.uid}},
            "template": {
                "name": template.name,
                "inputs": {"parameters": inputs},
                "outputs": {"parameters": outputs},
                "metadata": {},
                "plugin": plugin,
            },
        });
        let url = format!(
            "{}/api/v1/template.execute",
            self.options.plugin.url.trim_end_matches('/')
        );
        let mut last_message = String::new();
        loop {
            let reply = self
                .http
                .post(&url)
                .bearer_auth(&self.options.plugin.token)
                .json(&body)
                .send()
                .await;
            let reply = match reply {
                Ok(r) if r.status().is_success() => r.json::<Value>().await,
                Ok(r) => {
                    let status = r.status();
                    let text = r.text().await.unwrap_or_default();
                    return Node::failed(format!("the plugin answered HTTP {status}: {text}"));
                }
                Err(e) => return Node::failed(format!("the plugin at {url} did not answer: {e}")),
            };
            let reply = match reply {
                Ok(v) => v,
                Err(e) => return Node::failed(format!("the plugin's reply is not JSON: {e}")),
            };
            let node = &reply["node"];
            let phase = node["phase"].as_str().unwrap_or("").to_owned();
            let message = node["message"].as_str().unwrap_or("").to_owned();
            match phase.as_str() {
                "Succeeded" | "Failed" | "Error" => {
                    let outputs = node["outputs"]["parameters"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|p| {
                            Some((
                                p["name"].as_str()?.to_owned(),
                                p["value"].as_str().unwrap_or("").to_owned(),
                            ))
                        })
                        .collect();
                    return Node {
                        phase: if phase == "Error" {
                            "Failed".into()
                        } else {
                            phase
                        },
                        message,
                        outputs,
                    };
                }
                _ => {
                    let Some(after) = reply["requeue"].as_str().and_then(parse_go_duration) else {
                        return Node::failed(format!(
                            "the plugin answered phase {phase:?} without a requeue: {reply}"
                        ));
                    };
                    if message != last_message {
                        self.say(&format!("… {path}  {message}"));
                        last_message = message;
                    }
                    tokio::time::sleep(after).await;
                }
            }
        }
    }

    /// The children a step expands to: (name suffix, item scope).
    fn expand(
        step: &model::Step,
        scope: &BTreeMap<String, String>,
    ) -> Result<Vec<(String, Scope)>, String> {
        let items: Option<Vec<Value>> = match (&step.with_items, &step.with_param) {
            (Some(items), _) => Some(items.clone()),
            (None, Some(param)) => {
                let text = expr::substitute(param, scope).map_err(|e| e.to_string())?;
                Some(serde_json::from_str(&text).map_err(|e| {
                    format!(
                        "withParam of {:?} is not a JSON list ({text}): {e}",
                        step.name
                    )
                })?)
            }
            (None, None) => None,
        };
        Ok(match items {
            None => vec![(String::new(), BTreeMap::new())],
            Some(items) => items
                .iter()
                .enumerate()
                .map(|(i, item)| {
                    let mut s = BTreeMap::from([("item".to_owned(), value_string(item))]);
                    if let Some(map) = item.as_object() {
                        for (k, v) in map {
                            s.insert(format!("item.{k}"), value_string(v));
                        }
                    }
                    (format!("({i}:{})", value_string(item)), s)
                })
                .collect(),
        })
    }

    /// Runs one step or task (all its items, concurrently); returns its
    /// combined node.
    async fn run_step(
        self: Arc<Self>,
        owner: Arc<Document>,
        step: model::Step,
        scope: BTreeMap<String, String>,
        path: String,
    ) -> Node {
        let (owner, template) = match (&step.template, &step.template_ref) {
            (Some(t), _) => (owner.clone(), find(&owner, t).cloned()),
            (None, Some(r)) => match self.library.get(&r.name) {
                Some(doc) => {
                    let t = find(&doc, &r.template).cloned();
                    (doc, t)
                }
                None => (owner.clone(), None),
            },
            _ => (owner.clone(), None),
        };
        let Some(template) = template else {
            return Node::failed(format!("step {:?}: its template does not exist", step.name));
        };
        let children = match Self::expand(&step, &scope) {
            Ok(c) => c,
            Err(e) => return Node::failed(e),
        };
        let looped = step.with_items.is_some() || step.with_param.is_some();
        let mut runs = Vec::new();
        for (suffix, item_scope) in children {
            let mut child_scope = scope.clone();
            child_scope.extend(item_scope);
            if let Some(condition) = &step.when {
                let holds = expr::substitute(condition, &child_scope)
                    .map_err(|e| e.to_string())
                    .and_then(|w| expr::when(&w).map_err(|e| e.to_string()));
                match holds {
                    Ok(true) => {}
                    Ok(false) => {
                        let node = Node {
                            phase: "Skipped".into(),
                            message: format!("when {condition:?} is false"),
                            outputs: BTreeMap::new(),
                        };
                        self.record(
                            &format!("{path}/{}{suffix}", step.name),
                            &node,
                            Instant::now(),
                        );
                        runs.push(futures::future::ready(node).boxed_node());
                        continue;
                    }
                    Err(e) => return Node::failed(format!("step {:?}: {e}", step.name)),
                }
            }
            let mut args = BTreeMap::new();
            for a in &step.arguments.parameters {
                let raw = a.value.as_ref().map(value_string).unwrap_or_default();
                match expr::substitute(&raw, &child_scope) {
                    Ok(v) => {
                        args.insert(a.name.clone(), v);
                    }
                    Err(e) => {
                        return Node::failed(format!(
                            "step {:?}, argument {:?}: {e}",
                            step.name, a.name
                        ));
                    }
                }
            }
            runs.push(self.clone().execute(
                owner.clone(),
                template.clone(),
                args,
                format!("{path}/{}{suffix}", step.name),
            ));
        }
        let results = futures::future::join_all(runs).await;
        if !looped {
            return results
                .into_iter()
                .next()
                .unwrap_or_else(|| Node::failed("no run"));
        }
        let failed = results.iter().filter(|n| n.phase == "Failed").count();
        let all_skipped = results.iter().all(|n| n.phase == "Skipped");
        // Argo aggregates a loop's outputs: `outputs.parameters` is a JSON
        // list of each item's outputs, `outputs.parameters.P` a JSON list of
        // each item's P.
        let outputs: Vec<Value> = results.iter().map(|n| json!(n.outputs)).collect();
        let names: BTreeSet<&String> = results.iter().flat_map(|n| n.outputs.keys()).collect();
        let mut aggregated: BTreeMap<String, String> = names
            .into_iter()
            .map(|name| {
                let values: Vec<Value> = results
                    .iter()
                    .map(|n| n.outputs.get(name).map_or(Value::Null, |v| json!(v)))
                    .collect();
                (name.clone(), Value::Array(values).to_string())
            })
            .collect();
        aggregated.insert(String::new(), Value::Array(outputs).to_string());
        Node {
            phase: if failed > 0 {
                "Failed".into()
            } else if all_skipped {
                "Skipped".into()
            } else {
                "Succeeded".into()
            },
            message: format!("{} of {} items failed", failed, results.len()),
            outputs: aggregated,
        }
    }

    fn publish(scope: &mut BTreeMap<String, String>, kind: &str, name: &str, node: &Node) {
        scope.insert(format!("{kind}.{name}.status"), node.phase.clone());
        for (k, v) in &node.outputs {
            if k.is_empty() {
                scope.insert(format!("{kind}.{name}.outputs.parameters"), v.clone());
            } else {
                scope.insert(format!("{kind}.{name}.outputs.parameters.{k}"), v.clone());
            }
        }
    }

    async fn run_steps(
        self: Arc<Self>,
        owner: Arc<Document>,
        groups: &[Vec<model::Step>],
        scope: &mut BTreeMap<String, String>,
        path: &str,
    ) -> Node {
        for group in groups {
            let runs = group.iter().map(|step| {
                self.clone()
                    .run_step(owner.clone(), step.clone(), scope.clone(), path.to_owned())
            });
            let results = futures::future::join_all(runs).await;
            let mut failure = None;
            for (step, node) in group.iter().zip(&results) {
                Self::publish(scope, "steps", &step.name, node);
                let tolerated = step.continue_on.as_ref().is_some_and(|c| c.failed);
                if node.phase == "Failed" && !tolerated && failure.is_none() {
                    failure = Some(format!("step {:?} failed: {}", step.name, node.message));
                }
            }
            if let Some(message) = failure {
                return Node::failed(message);
            }
        }
        Node {
            phase: "Succeeded".into(),
            message: String::new(),
            outputs: BTreeMap::new(),
        }
    }

    async fn run_dag(
        self: Arc<Self>,
        owner: Arc<Document>,
        tasks: &[model::Step],
        scope: &mut BTreeMap<String, String>,
        path: &str,
    ) -> Node {
        let mut phases: BTreeMap<String, String> = BTreeMap::new();
        let deps = |t: &model::Step| -> Vec<String> {
            match (&t.depends, &t.dependencies) {
                (Some(d), _) => expr::depends_on(d),
                (None, Some(list)) => list.clone(),
                (None, None) => Vec::new(),
            }
        };
        while phases.len() < tasks.len() {
            let ready: Vec<&model::Step> = tasks
                .iter()
                .filter(|t| !phases.contains_key(&t.name))
                .filter(|t| deps(t).iter().all(|d| phases.contains_key(d)))
                .collect();
            if ready.is_empty() {
                return Node::failed(
                    "the DAG's dependencies form a cycle or name tasks that do not exist",
                );
            }
            let mut runnable = Vec::new();
            for task in ready {
                let go = match &task.depends {
                    Some(d) => expr::depends(d, &phases),
                    None => Ok(deps(task).iter().all(|d| {
                        phases
                            .get(d)
                            .is_some_and(|p| p == "Succeeded" || p == "Skipped")
                    })),
                };
                match go {
                    Ok(true) => runnable.push(task),
                    Ok(false) => {
                        let node = Node {
                            phase: "Skipped".into(),
                            message: "its dependencies did not allow it".into(),
                            outputs: BTreeMap::new(),
                        };
                        self.record(&format!("{path}/{}", task.name), &node, Instant::now());
                        phases.insert(task.name.clone(), node.phase.clone());
                        Self::publish(scope, "tasks", &task.name, &node);
                    }
                    Err(e) => return Node::failed(format!("task {:?}: {e}", task.name)),
                }
            }
            let runs = runnable.iter().map(|task| {
                self.clone().run_step(
                    owner.clone(),
                    (*task).clone(),
                    scope.clone(),
                    path.to_owned(),
                )
            });
            let results = futures::future::join_all(runs).await;
            for (task, node) in runnable.iter().zip(results) {
                phases.insert(task.name.clone(), node.phase.clone());
                Self::publish(scope, "tasks", &task.name, &node);
            }
        }
        let failed: Vec<&String> = phases
            .iter()
            .filter(|(name, p)| {
                *p == "Failed"
                    && !tasks.iter().any(|t| {
                        t.name == **name && t.continue_on.as_ref().is_some_and(|c| c.failed)
                    })
            })
            .map(|(n, _)| n)
            .collect();
        if failed.is_empty() {
            Node {
                phase: "Succeeded".into(),
                message: String::new(),
                outputs: BTreeMap::new(),
            }
        } else {
            Node::failed(format!(
                "tasks failed: {}",
                failed
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        }
    }
}

trait BoxNode {
    fn boxed_node(self) -> BoxFuture<'static, Node>;
}

impl<F: Future<Output = Node> + Send + 'static> BoxNode for F {
    fn boxed_node(self) -> BoxFuture<'static, Node> {
        Box::pin(self)
    }
}

/// The end-of-run summary: each node's phase and duration.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations_parse_as_the_plugin_writes_them() {
        assert_eq!(parse_go_duration("5s"), Some(Duration::from_secs(5)));
        assert_eq!(parse_go_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_go_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_go_duration("1h0m0s"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_go_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_go_duration("soon"), None);
        for d in [1u64, 999, 1000, 61_500, 3_600_000] {
            let d = Duration::from_millis(d);
            assert_eq!(
                parse_go_duration(&crate::argo::plugin::wire::go_duration(d)),
                Some(d)
            );
        }
    }
}
