//! Argo's Workflow and WorkflowTemplate (`argoproj.io/v1alpha1`), typed as
//! far as the runner executes them, with the kinds of document and of
//! template that the runner and `gameops lint` both name. Fields the runner
//! does not use are ignored here; lint and the schema test check the
//! documents as a whole.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

/// The Argo kinds of document `gameops lint` checks.
pub const KINDS: [&str; 4] = [
    "Workflow",
    "WorkflowTemplate",
    "ClusterWorkflowTemplate",
    "CronWorkflow",
];

/// The kinds of template the local runner executes.
pub const RUNNABLE_KINDS: [&str; 4] = ["steps", "dag", "suspend", "plugin"];

/// The kinds it cannot run (they need pods or an agent of their own).
pub const POD_KINDS: [&str; 6] = [
    "container",
    "script",
    "resource",
    "http",
    "containerSet",
    "data",
];

/// A Workflow or WorkflowTemplate.
#[derive(Debug, Clone, Deserialize)]
pub struct Document {
    /// `Workflow` or `WorkflowTemplate`.
    pub kind: String,
    /// Its metadata.
    #[serde(default)]
    pub metadata: Metadata,
    /// Its spec.
    #[serde(default)]
    pub spec: Spec,
}

/// Name and namespace.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Metadata {
    /// The name.
    pub name: Option<String>,
    /// Or a prefix for one.
    pub generate_name: Option<String>,
    /// The namespace.
    pub namespace: Option<String>,
}

/// A workflow spec.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Spec {
    /// The template to start.
    pub entrypoint: Option<String>,
    /// The workflow's parameters.
    #[serde(default)]
    pub arguments: Arguments,
    /// The templates.
    #[serde(default)]
    pub templates: Vec<Template>,
    /// The exit handler.
    pub on_exit: Option<String>,
    /// Run another WorkflowTemplate's spec.
    pub workflow_template_ref: Option<NameRef>,
}

/// `{name}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NameRef {
    /// The name.
    pub name: String,
    /// A ClusterWorkflowTemplate rather than a WorkflowTemplate.
    #[serde(default)]
    pub cluster_scope: bool,
}

/// Parameters passed.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Arguments {
    /// The parameters.
    #[serde(default)]
    pub parameters: Vec<Parameter>,
}

/// A parameter (argument, input or output).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Parameter {
    /// Its name.
    pub name: String,
    /// Its value.
    pub value: Option<Value>,
    /// Used when no value is given.
    pub default: Option<Value>,
    /// Outputs: where the value comes from.
    pub value_from: Option<ValueFrom>,
    /// The values it may take.
    #[serde(rename = "enum")]
    pub enum_values: Option<Vec<Value>>,
    /// Outputs: also exported as `workflow.outputs.parameters.<this>`.
    pub global_name: Option<String>,
}

/// `valueFrom` of an output of a steps or dag template.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ValueFrom {
    /// An expression such as `{{steps.x.outputs.parameters.y}}`.
    pub parameter: Option<String>,
    /// Used when it does not resolve.
    pub default: Option<Value>,
    /// The other sources Argo knows (`supplied`, `configMapKeyRef`, ...).
    #[serde(flatten)]
    pub other: serde_json::Map<String, Value>,
}

/// Inputs or outputs.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Io {
    /// The parameters.
    #[serde(default)]
    pub parameters: Vec<Parameter>,
    /// The artifacts (only their names are read).
    #[serde(default)]
    pub artifacts: Vec<Parameter>,
}

/// A template.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Template {
    /// Its name.
    pub name: String,
    /// Its inputs.
    #[serde(default)]
    pub inputs: Io,
    /// Its outputs.
    #[serde(default)]
    pub outputs: Io,
    /// Groups of steps, run one group after another.
    pub steps: Option<Vec<Vec<Step>>>,
    /// A DAG of tasks.
    pub dag: Option<Dag>,
    /// An executor-plugin call.
    pub plugin: Option<Value>,
    /// Wait for approval.
    pub suspend: Option<Value>,
    /// Retries.
    pub retry_strategy: Option<RetryStrategy>,
    /// Everything else, among it the kinds the runner refuses
    /// ([`POD_KINDS`]).
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

/// `retryStrategy`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RetryStrategy {
    /// Retries after the first attempt (Argo: an int or a string of one);
    /// none: no limit.
    pub limit: Option<Value>,
    /// `Always`, `OnFailure` (the default), `OnError` or `OnTransientError`.
    pub retry_policy: Option<String>,
    /// The wait between attempts.
    pub backoff: Option<Backoff>,
    /// An expr-lang condition for another attempt.
    pub expression: Option<String>,
}

/// `retryStrategy.backoff`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Backoff {
    /// The first wait (a Go duration, or seconds).
    pub duration: Option<Value>,
    /// Each wait is the last times this.
    pub factor: Option<Value>,
    /// The longest wait.
    pub cap: Option<Value>,
    /// No attempt starts later than this after the first.
    pub max_duration: Option<Value>,
}

/// `templateRef`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TemplateRef {
    /// The WorkflowTemplate.
    pub name: String,
    /// The template in it.
    pub template: String,
    /// A ClusterWorkflowTemplate rather than a WorkflowTemplate.
    #[serde(default)]
    pub cluster_scope: bool,
}

/// `continueOn`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ContinueOn {
    /// Go on when it failed.
    #[serde(default)]
    pub failed: bool,
    /// Go on when it errored.
    #[serde(default)]
    pub error: bool,
}

impl ContinueOn {
    /// Whether a node that ended in `phase` lets the run go on
    /// (argo-workflows `WorkflowStep.ContinuesOn`).
    pub fn tolerates(&self, phase: &str) -> bool {
        (phase == "Failed" && self.failed) || (phase == "Error" && self.error)
    }
}

/// A step, or (with `dependencies`/`depends`) a DAG task.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Step {
    /// Its name.
    pub name: String,
    /// A template of the same document.
    pub template: Option<String>,
    /// Or of a WorkflowTemplate.
    pub template_ref: Option<TemplateRef>,
    /// Or a template of its own.
    pub inline: Option<Value>,
    /// What it passes.
    #[serde(default)]
    pub arguments: Arguments,
    /// Run only when this holds.
    pub when: Option<String>,
    /// Run once per item.
    pub with_items: Option<Vec<Value>>,
    /// Run once per item of this JSON list.
    pub with_param: Option<String>,
    /// Run once per number of a sequence.
    pub with_sequence: Option<Value>,
    /// The template to run after it.
    pub on_exit: Option<String>,
    /// Go on when it fails.
    pub continue_on: Option<ContinueOn>,
    /// DAG: tasks that must succeed first.
    pub dependencies: Option<Vec<String>>,
    /// DAG: an expression over other tasks' results.
    pub depends: Option<String>,
}

/// A DAG.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Dag {
    /// Its tasks.
    #[serde(default)]
    pub tasks: Vec<Step>,
}

impl Spec {
    /// The template `name`.
    pub fn template(&self, name: &str) -> Option<&Template> {
        self.templates.iter().find(|t| t.name == name)
    }
}

impl Step {
    /// The tasks a DAG task waits for: those its `depends` names (whatever
    /// result), else its `dependencies`.
    pub fn waits_for(&self) -> Vec<String> {
        match (&self.depends, &self.dependencies) {
            (Some(d), _) => crate::argo::expr::depends_on(d),
            (None, Some(list)) => list.clone(),
            (None, None) => Vec::new(),
        }
    }
}

impl Template {
    /// Its steps (group by group) and then its DAG tasks.
    pub fn children(&self) -> impl Iterator<Item = &Step> {
        self.steps
            .iter()
            .flatten()
            .flatten()
            .chain(self.dag.iter().flat_map(|d| d.tasks.iter()))
    }

    /// The names of the output parameters it declares.
    pub fn declared_outputs(&self) -> Vec<&str> {
        self.outputs
            .parameters
            .iter()
            .map(|p| p.name.as_str())
            .collect()
    }

    /// The kind of a template the runner cannot run, if it is one.
    pub fn unsupported_kind(&self) -> Option<&'static str> {
        POD_KINDS
            .into_iter()
            .find(|k| self.other.get(*k).is_some_and(|v| !v.is_null()))
    }
}

/// A parameter value as Argo renders it: strings as they are, anything
/// else as JSON.
pub fn value_string(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}
