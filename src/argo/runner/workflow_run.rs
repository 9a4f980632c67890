//! The runner of one workflow: what it starts from (the spec, its
//! parameters, the workflow's name and globals), then each template run
//! with its retries, inputs and outputs; suspend prompts. Steps, DAGs and
//! loops are in [`super::flow`], plugin calls in [`super::call`].

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, IsTerminal, Write};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use futures::future::BoxFuture;

use super::known;
use super::precheck::{display_name, reachable};
use super::{Library, Node, NodeRecord, RunError, RunOptions, RunResult, Scope};
use crate::argo::expr;
use crate::argo::workflow::{Document, Parameter, Template, value_string};
use crate::ops::check;
use serde_json::Value;

/// The runner for one workflow.
pub struct Runner {
    pub(super) library: Library,
    pub(super) options: RunOptions,
    pub(super) http: reqwest::Client,
    pub(super) name: String,
    pub(super) uid: String,
    started: Instant,
    globals: Mutex<BTreeMap<String, String>>,
    /// `workflow.outputs.parameters`, in the order they were first set.
    workflow_outputs: Mutex<Vec<(String, String)>>,
    nodes: Mutex<Vec<NodeRecord>>,
    /// Serialises approval prompts.
    prompt: tokio::sync::Mutex<()>,
}

/// What a run starts from: the document whose templates run and the
/// parameters of its spec.
struct Start {
    owner: Arc<Document>,
    entry: String,
    parameters: Vec<Parameter>,
}

impl Runner {
    /// A runner with `library` for references.
    pub fn new(library: Library, options: RunOptions) -> Self {
        let uid = uuid::Uuid::new_v4().to_string();
        Self {
            library,
            options,
            // Argo's agent gives each plugin call 30 s
            // (workflow/executor/plugins/rpc/plugin.go).
            http: reqwest::Client::builder()
                .timeout(super::CALL_TIMEOUT)
                .build()
                .unwrap_or_default(),
            name: String::new(),
            uid,
            started: Instant::now(),
            globals: Mutex::default(),
            workflow_outputs: Mutex::default(),
            nodes: Mutex::default(),
            prompt: tokio::sync::Mutex::new(()),
        }
    }

    pub(super) fn say(&self, line: &str) {
        if self.options.live {
            let t = self.started.elapsed().as_secs_f64();
            eprintln!("[{t:7.1}s] {line}");
        }
    }

    pub(super) fn record(&self, path: &str, node: &Node, started: Instant) {
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
                finished_at: jiff::Timestamp::now(),
            });
        }
    }

    fn globals(&self) -> BTreeMap<String, String> {
        self.globals.lock().map(|g| g.clone()).unwrap_or_default()
    }

    /// Exports outputs to the workflow's, as Argo's
    /// `addOutputsToGlobalScope` does (argo-workflows
    /// `workflow/controller/operator.go`): `workflow.outputs.parameters.NAME`
    /// is set (or overwritten) for every template that runs after.
    pub(super) fn export(&self, exported: &BTreeMap<String, String>) {
        if exported.is_empty() {
            return;
        }
        if let Ok(mut g) = self.globals.lock() {
            for (name, value) in exported {
                g.insert(format!("workflow.outputs.parameters.{name}"), value.clone());
            }
        }
        if let Ok(mut outputs) = self.workflow_outputs.lock() {
            for (name, value) in exported {
                match outputs.iter_mut().find(|(n, _)| n == name) {
                    Some(slot) => slot.1 = value.clone(),
                    None => outputs.push((name.clone(), value.clone())),
                }
            }
        }
    }

    /// Puts the workflow's outputs exported so far in a steps or dag
    /// template's scope, as Argo does each time it looks at the template
    /// (`steps.go` `addWorkflowOutputsToLocalScope`).
    pub(super) fn refresh(&self, scope: &mut Scope) {
        for (k, v) in self.globals() {
            if k.starts_with("workflow.outputs.") {
                scope.insert(k, v);
            }
        }
    }

    /// The spec that runs: a workflowTemplateRef's, with this workflow's
    /// arguments over it; checked before anything runs.
    fn start(&self, doc: &Document) -> Result<Start, RunError> {
        let (owner, parameters) = match &doc.spec.workflow_template_ref {
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
                (Arc::new(joined(doc, &referenced)), args)
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
        Ok(Start {
            owner,
            entry,
            parameters,
        })
    }

    /// The workflow's parameters: the spec's, then the `-p` overrides;
    /// every one must have a value, and one with an `enum` a value in it,
    /// as Argo checks at submission (`workflow/validate/validate.go`,
    /// `validateArgumentsValues`). Argo checks the enum only where the
    /// submitted parameter still carries it; the runner checks it however
    /// the value came, as the Argo UI's Submit form (a dropdown) does.
    fn parameters(&self, spec: &[Parameter]) -> Result<BTreeMap<String, String>, RunError> {
        let mut parameters: BTreeMap<String, String> = BTreeMap::new();
        for p in spec {
            if let Some(v) = p.value.as_ref().or(p.default.as_ref()) {
                parameters.insert(p.name.clone(), value_string(v));
            }
        }
        for (k, v) in &self.options.parameters {
            if !spec.iter().any(|p| &p.name == k) {
                return Err(RunError::Invalid(format!(
                    "-p {k}: the workflow has no parameter {k:?} (it has: {})",
                    spec.iter()
                        .map(|p| p.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
            parameters.insert(k.clone(), v.clone());
        }
        if let Some(missing) = spec.iter().find(|p| !parameters.contains_key(&p.name)) {
            return Err(RunError::Invalid(format!(
                "parameter {:?} has no value: pass -p {}=VALUE",
                missing.name, missing.name
            )));
        }
        for p in spec {
            if let (Some(allowed), Some(value)) = (&p.enum_values, parameters.get(&p.name)) {
                in_enum(&p.name, value, allowed)?;
            }
        }
        Ok(parameters)
    }

    /// The workflow's name: its own, or its generateName with a suffix, or
    /// the template it starts.
    fn workflow_name(&self, doc: &Document, owner: &Document) -> String {
        doc.metadata
            .name
            .clone()
            .or_else(|| {
                doc.metadata
                    .generate_name
                    .as_ref()
                    .map(|g| format!("{g}{}", &self.uid[..5]))
            })
            .or_else(|| owner.metadata.name.clone())
            .unwrap_or_else(|| "workflow".into())
    }

    /// Sets the `workflow.*` variables.
    fn set_globals(&self, parameters: &BTreeMap<String, String>) {
        let mut globals = BTreeMap::from([
            ("workflow.name".to_owned(), self.name.clone()),
            (
                "workflow.namespace".to_owned(),
                self.options.namespace.clone(),
            ),
            ("workflow.uid".to_owned(), self.uid.clone()),
        ]);
        for (k, v) in parameters {
            globals.insert(format!("workflow.parameters.{k}"), v.clone());
        }
        if let Ok(mut g) = self.globals.lock() {
            *g = globals;
        }
    }

    /// Runs `doc` (a Workflow, possibly with `workflowTemplateRef`, or a
    /// WorkflowTemplate) to the end.
    pub async fn run(mut self, doc: Document) -> Result<RunResult, RunError> {
        let Start {
            owner,
            entry,
            parameters,
        } = self.start(&doc)?;
        let parameters = self.parameters(&parameters)?;
        self.name = self.workflow_name(&doc, &owner);
        self.set_globals(&parameters);
        known::check_arguments(
            &self.library,
            &owner,
            (&entry, owner.spec.on_exit.as_deref()),
            &self.globals(),
            &parameters,
        )?;
        self.started = Instant::now();
        self.say(&format!("▶ {} ({})", self.name, display_name(&owner)));
        let runner = Arc::new(self);
        let entry_template = owner.spec.template(&entry).cloned().unwrap_or_default();
        let main = runner
            .clone()
            .execute(owner.clone(), entry_template, parameters, entry.clone())
            .await;
        let exit = if let Some(exit) = &owner.spec.on_exit {
            let failures = runner
                .nodes
                .lock()
                .map(|n| failures(&n))
                .unwrap_or_default();
            if let Ok(mut g) = runner.globals.lock() {
                g.insert(
                    "workflow.status".into(),
                    workflow_status(&main.phase).into(),
                );
                g.insert("workflow.failures".into(), failures);
            }
            let exit_template = owner.spec.template(exit).cloned().unwrap_or_default();
            let path = format!("{exit} (onExit)");
            let inputs = BTreeMap::new();
            Some(
                runner
                    .clone()
                    .execute(owner.clone(), exit_template, inputs, path)
                    .await,
            )
        } else {
            None
        };
        let nodes = runner.nodes.lock().map(|n| n.clone()).unwrap_or_default();
        let workflow_outputs = runner
            .workflow_outputs
            .lock()
            .map(|o| o.clone())
            .unwrap_or_default();
        let (phase, message) = workflow_phase(&main, exit.as_ref());
        Ok(RunResult {
            name: runner.name.clone(),
            phase,
            message,
            outputs: main.outputs,
            workflow_outputs,
            nodes,
            duration: runner.started.elapsed(),
        })
    }

    /// Runs `template` of `owner` with `inputs`, retrying per its strategy.
    pub(super) fn execute(
        self: Arc<Self>,
        owner: Arc<Document>,
        template: Template,
        inputs: BTreeMap<String, String>,
        path: String,
    ) -> BoxFuture<'static, Node> {
        Box::pin(async move {
            let started = Instant::now();
            let strategy = template.retry_strategy.clone();
            let mut attempt_started = started;
            let mut node = self
                .clone()
                .attempt(owner.clone(), &template, &inputs, &path)
                .await;
            let mut attempts: u32 = 1;
            while let Some(s) = strategy.as_ref().filter(|_| !node.ok()) {
                let next = match super::retry::next(
                    s,
                    attempts,
                    started.elapsed(),
                    &node.phase,
                    &node.message,
                ) {
                    super::retry::Next::Retry(wait) => {
                        let last = (
                            node.phase.as_str(),
                            node.message.as_str(),
                            attempt_started.elapsed(),
                        );
                        match super::retry::expression_allows(s, attempts, last) {
                            Ok(true) => super::retry::Next::Retry(wait),
                            Ok(false) => super::retry::Next::Stop(Some(
                                "retryStrategy.expression evaluated to false".into(),
                            )),
                            // processNodeRetries' error: the node errs.
                            Err(e) => {
                                node.phase = "Error".into();
                                super::retry::Next::Stop(Some(e))
                            }
                        }
                    }
                    stop => stop,
                };
                match next {
                    super::retry::Next::Stop(why) => {
                        if let Some(why) = why {
                            node.message = format!("{}; {why}", node.message);
                        }
                        break;
                    }
                    super::retry::Next::Retry(wait) => {
                        let of = s
                            .limit
                            .as_ref()
                            .map(|l| format!(" of {}", value_string(l)))
                            .unwrap_or_default();
                        let after = if wait.is_zero() {
                            String::new()
                        } else {
                            format!(" in {:.1} s", wait.as_secs_f64())
                        };
                        self.say(&format!(
                            "↻ {path}: retry {attempts}{of}{after} after: {}",
                            node.message
                        ));
                        tokio::time::sleep(wait).await;
                    }
                }
                attempt_started = Instant::now();
                node = self
                    .clone()
                    .attempt(owner.clone(), &template, &inputs, &path)
                    .await;
                attempts = attempts.saturating_add(1);
            }
            self.record(&path, &node, started);
            node
        })
    }

    /// The scope of a template's run: the globals and its inputs (given,
    /// or their value or default); or the node that failed for want of one.
    fn scope(&self, template: &Template, inputs: &BTreeMap<String, String>) -> Result<Scope, Node> {
        let mut scope = self.globals();
        for p in &template.inputs.parameters {
            let value = inputs
                .get(&p.name)
                .cloned()
                .or_else(|| p.value.as_ref().or(p.default.as_ref()).map(value_string));
            let Some(v) = value else {
                return Err(Node::failed(format!(
                    "input parameter {:?} of template {:?} has no value",
                    p.name, template.name
                )));
            };
            scope.insert(format!("inputs.parameters.{}", p.name), v);
        }
        Ok(scope)
    }

    async fn attempt(
        self: Arc<Self>,
        owner: Arc<Document>,
        template: &Template,
        inputs: &BTreeMap<String, String>,
        path: &str,
    ) -> Node {
        let mut scope = match self.scope(template, inputs) {
            Ok(scope) => scope,
            Err(node) => return node,
        };
        if let Some(plugin) = &template.plugin {
            return self.call_plugin(template, plugin, &scope, path).await;
        }
        if template.suspend.is_some() {
            return self.suspend(path).await;
        }
        if let Some(groups) = &template.steps {
            let node = self
                .clone()
                .run_steps(owner, groups, &mut scope, path)
                .await;
            let node = outputs(template, &scope, node);
            // A steps template exports its own outputs once it succeeded
            // (argo-workflows `workflow/controller/steps.go`
            // `executeSteps`); its steps' outputs are not exported.
            if node.ok() {
                self.export(&node.globals);
            }
            node
        } else if let Some(dag) = &template.dag {
            let node = self
                .clone()
                .run_dag(owner, &dag.tasks, &mut scope, path)
                .await;
            // A DAG's own outputs are exported by the DAG that runs it as
            // a task, if one does (`dag.go` `executeDAG`).
            outputs(template, &scope, node)
        } else {
            Node::failed(format!("template {:?} has nothing to run", template.name))
        }
    }

    async fn suspend(&self, path: &str) -> Node {
        let _one_at_a_time = self.prompt.lock().await;
        if self.options.approve {
            self.say(&format!("⏸ {path}: approved (--approve)"));
            return Node::with("Succeeded", "approved (--approve)");
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
            Node::with("Succeeded", "approved")
        } else {
            Node::failed("not approved")
        }
    }
}

/// A parameter's value is one of its `enum`: `rollbackOnFailure: "True"
/// is not one of "true", "false"` (Argo: `spec.arguments.X.value should be
/// present in spec.arguments.X.enum list`).
fn in_enum(name: &str, value: &str, allowed: &[Value]) -> Result<(), RunError> {
    let allowed: Vec<String> = allowed.iter().map(value_string).collect();
    if allowed.iter().any(|a| a == value) {
        return Ok(());
    }
    if allowed.is_empty() {
        return Err(RunError::Invalid(format!(
            "{name}: its enum lists no value, so none can be given (Argo: spec.arguments.{name}.enum should contain at least one value)"
        )));
    }
    let shown: Vec<String> = allowed.iter().map(|a| format!("{a:?}")).collect();
    Err(RunError::Invalid(format!(
        "{name}: {value:?} is not one of {}{}",
        shown.join(", "),
        check::suggest(value, allowed.iter().map(String::as_str))
    )))
}

/// The outputs of a steps or dag template, from its children: each
/// `valueFrom.parameter` (or its default), or `value`; those with a
/// `globalName` also under that name, for export.
fn outputs(template: &Template, scope: &Scope, mut node: Node) -> Node {
    for out in &template.outputs.parameters {
        let value = match out.value_from.as_ref().and_then(|v| v.parameter.as_ref()) {
            Some(expression) => match expr::substitute(expression, scope) {
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
            if let Some(global) = out.global_name.as_ref().filter(|g| !g.is_empty()) {
                node.globals.insert(global.clone(), v.clone());
            }
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

/// `workflow.status` in an exit handler: the workflow phase the
/// entrypoint's node phase gives (operator.go `operate`: Skipped and
/// Omitted are Succeeded).
fn workflow_status(phase: &str) -> &'static str {
    match phase {
        "Failed" => "Failed",
        "Error" => "Error",
        _ => "Succeeded",
    }
}

/// `workflow.failures` in an exit handler: the Failed and Error nodes as
/// a JSON list of `{displayName, message, templateName, phase, podName,
/// finishedAt}`, Go-quoted as operator.go `operate` passes it
/// (`strconv.Quote`; the runner knows no template or pod names).
fn failures(nodes: &[NodeRecord]) -> String {
    let list: Vec<serde_json::Value> = nodes
        .iter()
        .filter(|n| n.phase == "Failed" || n.phase == "Error")
        .map(|n| {
            serde_json::json!({
                "displayName": n.path.rsplit('/').next().unwrap_or(&n.path),
                "message": n.message,
                "templateName": "",
                "phase": n.phase,
                "podName": "",
                "finishedAt": crate::api::kube_time(n.finished_at),
            })
        })
        .collect();
    // A nil Go slice marshals as null.
    let json = if list.is_empty() {
        "null".to_owned()
    } else {
        serde_json::Value::Array(list).to_string()
    };
    serde_json::Value::String(json).to_string()
}

/// The spec a Workflow with a `workflowTemplateRef` runs: the
/// WorkflowTemplate's, with the Workflow's own `entrypoint`, `onExit` and
/// templates over it (argo-workflows v4.0.5 util/workflow `JoinWorkflowSpec`:
/// the Workflow's spec wins, templates merge by name).
fn joined(doc: &Document, referenced: &Document) -> Document {
    let mut out = referenced.clone();
    if let Some(e) = &doc.spec.entrypoint {
        out.spec.entrypoint = Some(e.clone());
    }
    if let Some(e) = &doc.spec.on_exit {
        out.spec.on_exit = Some(e.clone());
    }
    for t in &doc.spec.templates {
        match out.spec.templates.iter_mut().find(|o| o.name == t.name) {
            Some(o) => *o = t.clone(),
            None => out.spec.templates.push(t.clone()),
        }
    }
    out
}

/// The workflow's phase and message from its entrypoint's node and its
/// exit handler's (operator.go `operate`): a failed entrypoint fails it
/// (an Error one errs it); a succeeded one with an exit handler that did
/// not succeed takes the handler's phase and message.
fn workflow_phase(main: &Node, exit: Option<&Node>) -> (String, String) {
    match (main.phase.as_str(), exit) {
        ("Succeeded", Some(e)) if !e.ok() && e.phase != "Skipped" => {
            let phase = if e.phase == "Error" {
                "Error"
            } else {
                "Failed"
            };
            (phase.to_owned(), format!("exit handler: {}", e.message))
        }
        ("Succeeded", _) => ("Succeeded".to_owned(), main.message.clone()),
        ("Error", _) => ("Error".to_owned(), main.message.clone()),
        _ => ("Failed".to_owned(), main.message.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(path: &str, phase: &str) -> NodeRecord {
        NodeRecord {
            path: path.into(),
            phase: phase.into(),
            message: format!("{phase} here"),
            duration: std::time::Duration::ZERO,
            finished_at: jiff::Timestamp::UNIX_EPOCH,
        }
    }

    /// operator.go `operate`: Failed and Error nodes, JSON, `strconv.Quote`d.
    #[test]
    fn failures_are_the_failed_and_errored_nodes_go_quoted() {
        let nodes = [
            record("main/a", "Succeeded"),
            record("main/b", "Failed"),
            record("main/c", "Error"),
            record("main/d", "Omitted"),
        ];
        let quoted = failures(&nodes);
        assert!(
            quoted.starts_with("\"[{\\\"displayName\\\":\\\"b\\\""),
            "{quoted}"
        );
        let json: String = serde_json::from_str(&quoted).unwrap();
        let list: Vec<serde_json::Value> = serde_json::from_str(&json).unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!(list[1]["phase"], "Error");
        assert_eq!(list[0]["message"], "Failed here");
        assert_eq!(list[0]["finishedAt"], "1970-01-01T00:00:00Z");
        assert_eq!(failures(&nodes[..1]), "\"null\"", "a nil slice");
        assert_eq!(workflow_status("Omitted"), "Succeeded");
        assert_eq!(workflow_status("Error"), "Error");
    }
}
