//! Steps, DAGs and loops: which children a step or task expands to
//! (`withItems`, `withParam`), whether each runs (`when`, `depends`), the
//! arguments it passes, and how their results combine (a loop's outputs
//! aggregated as Argo does, `continueOn`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Instant;

use futures::future::BoxFuture;
use serde_json::{Value, json};

use super::known::parse_with_param;
use super::precheck::callee;
use super::workflow_run::Runner;
use super::{Node, Scope};
use crate::argo::expr::{self, TaskResult};
use crate::argo::workflow::{Document, Step, value_string};

/// The children a step expands to: (name suffix, item scope).
fn expand(step: &Step, scope: &Scope) -> Result<Vec<(String, Scope)>, String> {
    let items: Option<Vec<Value>> = match (&step.with_items, &step.with_param) {
        (Some(items), _) => Some(items.clone()),
        (None, Some(param)) => {
            let text = expr::substitute(param, scope).map_err(|e| e.to_string())?;
            Some(parse_with_param(&text).map_err(|e| format!("step {:?}: {e}", step.name))?)
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

/// The arguments a step passes, with `{{...}}` filled in from `scope`.
fn arguments(step: &Step, scope: &Scope) -> Result<BTreeMap<String, String>, String> {
    let mut args = BTreeMap::new();
    for a in &step.arguments.parameters {
        let raw = a.value.as_ref().map(value_string).unwrap_or_default();
        let value = expr::substitute(&raw, scope)
            .map_err(|e| format!("step {:?}, argument {:?}: {e}", step.name, a.name))?;
        args.insert(a.name.clone(), value);
    }
    Ok(args)
}

/// Failed or Error (argo-workflows `NodeStatus.FailedOrError`).
fn unsuccessful(phase: &str) -> bool {
    phase == "Failed" || phase == "Error"
}

/// Whether a step's `when` holds in `scope` (no `when`: it does).
fn holds(step: &Step, scope: &Scope) -> Result<bool, String> {
    let Some(condition) = &step.when else {
        return Ok(true);
    };
    expr::substitute(condition, scope)
        .map_err(|e| e.to_string())
        .and_then(|w| expr::when(&w).map_err(|e| e.to_string()))
        .map_err(|e| format!("step {:?}: {e}", step.name))
}

/// A loop's node: failed if an item failed, skipped if all were, and its
/// outputs aggregated as Argo does: `outputs.parameters` (key `""`) a JSON
/// list of each item's outputs, `outputs.parameters.P` a JSON list of each
/// item's P.
fn aggregate(results: &[Node]) -> Node {
    let failed = results.iter().filter(|n| unsuccessful(&n.phase)).count();
    let all_skipped = results.iter().all(|n| n.phase == "Skipped");
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
    let phase = if failed > 0 {
        "Failed"
    } else if all_skipped {
        "Skipped"
    } else {
        "Succeeded"
    };
    Node {
        outputs: aggregated,
        items: Some(results.iter().map(|n| n.phase.clone()).collect()),
        ..Node::with(
            phase,
            format!("{} of {} items failed", failed, results.len()),
        )
    }
}

/// Puts a finished step's or task's status and outputs in `scope`.
fn publish(scope: &mut Scope, kind: &str, name: &str, node: &Node) {
    scope.insert(format!("{kind}.{name}.status"), node.phase.clone());
    for (k, v) in &node.outputs {
        if k.is_empty() {
            scope.insert(format!("{kind}.{name}.outputs.parameters"), v.clone());
        } else {
            scope.insert(format!("{kind}.{name}.outputs.parameters.{k}"), v.clone());
        }
    }
}

/// Whether a task whose dependencies all finished runs: its `depends`, or
/// its `dependencies` read as Argo reads them (each a bare name, joined
/// by `&&`: ancestry.go `getTaskDependsLogic`).
fn may_run(task: &Step, results: &BTreeMap<String, TaskResult>) -> Result<bool, expr::ExprError> {
    match &task.depends {
        Some(d) => expr::depends(d, results),
        None if task.waits_for().is_empty() => Ok(true),
        None => expr::depends(&task.waits_for().join(" && "), results),
    }
}

/// A DAG's node: failed when a task failed or errored that does not
/// `continueOn` it.
fn dag_result(tasks: &[Step], results: &BTreeMap<String, TaskResult>) -> Node {
    let tolerated = |name: &str, phase: &str| {
        tasks
            .iter()
            .any(|t| t.name == name && t.continue_on.as_ref().is_some_and(|c| c.tolerates(phase)))
    };
    let failed: Vec<&str> = results
        .iter()
        .filter(|(name, r)| unsuccessful(&r.phase) && !tolerated(name, &r.phase))
        .map(|(n, _)| n.as_str())
        .collect();
    if failed.is_empty() {
        Node::with("Succeeded", "")
    } else {
        Node::failed(format!("tasks failed: {}", failed.join(", ")))
    }
}

impl Runner {
    /// Runs one step or task (all its items, concurrently); returns its
    /// combined node.
    async fn run_step(
        self: Arc<Self>,
        owner: Arc<Document>,
        step: Step,
        scope: Scope,
        path: String,
    ) -> Node {
        let Some((owner, template)) = callee(&self.library, &owner, &step) else {
            return Node::failed(format!("step {:?}: its template does not exist", step.name));
        };
        let children = match expand(&step, &scope) {
            Ok(c) => c,
            Err(e) => return Node::failed(e),
        };
        let mut runs: Vec<BoxFuture<'static, Node>> = Vec::new();
        for (suffix, item_scope) in children {
            let mut child_scope = scope.clone();
            child_scope.extend(item_scope);
            let child_path = format!("{path}/{}{suffix}", step.name);
            match holds(&step, &child_scope) {
                Ok(true) => {}
                Ok(false) => {
                    let condition = step.when.as_deref().unwrap_or_default();
                    let node = Node::with("Skipped", format!("when {condition:?} is false"));
                    self.record(&child_path, &node, Instant::now());
                    runs.push(Box::pin(futures::future::ready(node)));
                    continue;
                }
                Err(e) => {
                    // steps.go: the step is an Error, its template Failed.
                    self.record(&child_path, &Node::with("Error", e.clone()), Instant::now());
                    return Node::failed(e);
                }
            }
            let args = match arguments(&step, &child_scope) {
                Ok(args) => args,
                Err(e) => return Node::failed(e),
            };
            let run = self
                .clone()
                .execute(owner.clone(), template.clone(), args, child_path);
            runs.push(run);
        }
        let results = futures::future::join_all(runs).await;
        if step.with_items.is_none() && step.with_param.is_none() {
            return results
                .into_iter()
                .next()
                .unwrap_or_else(|| Node::failed("no run"));
        }
        aggregate(&results)
    }

    /// Runs the groups of a steps template one after another, the steps of
    /// a group concurrently.
    pub(super) async fn run_steps(
        self: Arc<Self>,
        owner: Arc<Document>,
        groups: &[Vec<Step>],
        scope: &mut Scope,
        path: &str,
    ) -> Node {
        for group in groups {
            self.refresh(scope);
            let runs = group.iter().map(|step| {
                self.clone()
                    .run_step(owner.clone(), step.clone(), scope.clone(), path.to_owned())
            });
            let results = futures::future::join_all(runs).await;
            let mut failure = None;
            for (step, node) in group.iter().zip(&results) {
                publish(scope, "steps", &step.name, node);
                let tolerated = step
                    .continue_on
                    .as_ref()
                    .is_some_and(|c| c.tolerates(&node.phase));
                if unsuccessful(&node.phase) && !tolerated && failure.is_none() {
                    failure = Some(format!("step {:?} failed: {}", step.name, node.message));
                }
            }
            if let Some(message) = failure {
                return Node::failed(message);
            }
        }
        Node::with("Succeeded", "")
    }

    /// Runs a DAG: each round, the tasks whose dependencies have finished
    /// run (concurrently) or are skipped, as their `depends` says.
    pub(super) async fn run_dag(
        self: Arc<Self>,
        owner: Arc<Document>,
        tasks: &[Step],
        scope: &mut Scope,
        path: &str,
    ) -> Node {
        let mut phases: BTreeMap<String, TaskResult> = BTreeMap::new();
        let mut exported: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        let result = |task: &Step, node: &Node| TaskResult {
            phase: node.phase.clone(),
            children: node.items.clone(),
            continue_failed: task.continue_on.as_ref().is_some_and(|c| c.failed),
            continue_error: task.continue_on.as_ref().is_some_and(|c| c.error),
        };
        while phases.len() < tasks.len() {
            self.refresh(scope);
            let ready: Vec<&Step> = tasks
                .iter()
                .filter(|t| !phases.contains_key(&t.name))
                .filter(|t| t.waits_for().iter().all(|d| phases.contains_key(d)))
                .collect();
            if ready.is_empty() {
                return Node::failed(
                    "the DAG's dependencies form a cycle or name tasks that do not exist",
                );
            }
            let mut runnable = Vec::new();
            for task in ready {
                match may_run(task, &phases) {
                    Ok(true) => runnable.push(task),
                    Ok(false) => {
                        // dag.go: a task whose depends does not hold is Omitted.
                        let node = Node::with("Omitted", "omitted: depends condition not met");
                        self.record(&format!("{path}/{}", task.name), &node, Instant::now());
                        phases.insert(task.name.clone(), result(task, &node));
                        publish(scope, "tasks", &task.name, &node);
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
                phases.insert(task.name.clone(), result(task, &node));
                publish(scope, "tasks", &task.name, &node);
                exported.insert(task.name.clone(), node.globals);
            }
        }
        let node = dag_result(tasks, &phases);
        // Once the DAG succeeded, each task's outputs that carry a
        // globalName are exported, in task order (argo-workflows
        // `workflow/controller/dag.go` `executeDAG`, `addOutputsToGlobalScope`).
        if node.ok() {
            for task in tasks {
                if let Some(globals) = exported.get(&task.name) {
                    self.export(globals);
                }
            }
        }
        node
    }
}
