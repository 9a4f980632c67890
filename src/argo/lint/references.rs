//! Check 3: every `{{...}}` of a template resolves. `inputs.parameters.X`
//! is an input of the template, `workflow.parameters.X` an argument of the
//! document, `steps.S...` / `tasks.T...` a step of an earlier group / a
//! task it depends on with an output its template declares, `item` is used
//! only in loops.

use std::collections::BTreeSet;

use serde_json::Value;

use super::Sink;
use super::index::{Call, Set, ancestors, calls, names, s};
use crate::argo::expr;
use crate::ops::check::{join, listing, suggest};

/// Where in a template a string sits, which decides what it may name.
enum Scope<'a> {
    /// Neither a step/task nor the outputs: no step or task is visible.
    Body,
    /// The template's outputs: every step or task is.
    Outputs,
    /// A step or task: the ones that ran before it; `item` if it loops.
    Call {
        name: &'a str,
        visible: BTreeSet<&'a str>,
        loops: bool,
    },
}

/// The variables Argo sets under `workflow.` (besides `parameters`).
const WORKFLOW_VARS: [&str; 11] = [
    "name",
    "namespace",
    "uid",
    "status",
    "serviceAccountName",
    "mainEntrypoint",
    "priority",
    "duration",
    "failures",
    "scheduledTime",
    "creationTimestamp",
];
const WORKFLOW_PREFIXES: [&str; 4] = ["labels", "annotations", "outputs", "creationTimestamp"];
const STEP_VARS: [&str; 7] = [
    "status",
    "id",
    "ip",
    "exitCode",
    "startedAt",
    "finishedAt",
    "hostNodeName",
];

pub(super) struct References<'s, 'a> {
    set: &'s Set<'a>,
    d: usize,
    tmpl: &'a Value,
    inputs: BTreeSet<&'a str>,
    input_artifacts: BTreeSet<&'a str>,
    arguments: BTreeSet<&'a str>,
    via_ref: bool,
    calls: Vec<Call<'a>>,
    /// `steps`, `tasks`, or neither.
    kind: Option<&'static str>,
}

impl<'s, 'a> References<'s, 'a> {
    pub(super) fn new(set: &'s Set<'a>, d: usize, tmpl: &'a Value, via_ref: bool) -> Self {
        let kind = if tmpl.get("steps").is_some() {
            Some("steps")
        } else if tmpl.get("dag").is_some() {
            Some("tasks")
        } else {
            None
        };
        References {
            set,
            d,
            tmpl,
            inputs: names(&tmpl["inputs"]["parameters"]),
            input_artifacts: names(&tmpl["inputs"]["artifacts"]),
            arguments: set.arguments(d),
            via_ref,
            calls: calls(tmpl),
            kind,
        }
    }

    pub(super) fn check(&self, sink: &mut Sink<'_>) {
        if let Some(map) = self.tmpl.as_object() {
            for (key, value) in map {
                let scope = match key.as_str() {
                    "steps" | "dag" => continue,
                    "outputs" => Scope::Outputs,
                    _ => Scope::Body,
                };
                self.strings(value, key, &scope, sink);
            }
        }
        for call in &self.calls {
            let visible: BTreeSet<&str> = if self.kind == Some("steps") {
                self.calls
                    .iter()
                    .filter(|c| c.group < call.group)
                    .map(|c| c.name)
                    .collect()
            } else {
                ancestors(&self.calls, call.name)
            };
            let loops = ["withItems", "withParam", "withSequence"]
                .iter()
                .any(|k| call.step.get(*k).is_some());
            let scope = Scope::Call {
                name: call.name,
                visible,
                loops,
            };
            // An inline template's own variables are its own business.
            for (key, value) in call.step.as_object().into_iter().flatten() {
                if key != "inline" {
                    self.strings(value, &join(&call.path, key), &scope, sink);
                }
            }
        }
    }

    fn strings(&self, value: &Value, path: &str, scope: &Scope<'_>, sink: &mut Sink<'_>) {
        walk_strings(value, path, &mut |field, text| {
            for r in expr::references(text) {
                self.var(&r.var, r.expression, scope, field, sink);
            }
        });
    }

    /// One variable; `expr`: inside `{{=...}}`, where a prefix such as
    /// `inputs.parameters` is an object, not a mistake.
    fn var(&self, var: &str, expr: bool, scope: &Scope<'_>, field: &str, sink: &mut Sink<'_>) {
        let shown = if expr {
            format!("{var} (in {{{{=...}}}})")
        } else {
            format!("{{{{{var}}}}}")
        };
        let parts: Vec<&str> = var.split('.').collect();
        let unknown = |sink: &mut Sink<'_>| {
            sink.add(
                field,
                format!("{shown} is not a variable Argo sets for a template"),
            );
        };
        let rest = &parts[1..];
        match parts[0] {
            "item" => {
                if !matches!(scope, Scope::Call { loops: true, .. }) {
                    sink.add(
                        field,
                        format!(
                            "{shown}: item is set only in a step or task with withItems, withParam or withSequence"
                        ),
                    );
                }
            }
            "inputs" => match rest {
                [] | ["parameters"] | ["artifacts"] => {
                    if !expr && rest.is_empty() {
                        unknown(sink);
                    }
                }
                ["parameters", name, ..] => {
                    if !self.inputs.contains(name) {
                        sink.add(
                            field,
                            format!(
                                "{shown}: the template has no input {name}{}; its inputs: {}",
                                suggest(name, self.inputs.iter().copied()),
                                listing(&self.inputs.iter().copied().collect::<Vec<_>>())
                            ),
                        );
                    }
                }
                ["artifacts", name, ..] => {
                    if !self.input_artifacts.contains(name) {
                        sink.add(
                            field,
                            format!("{shown}: the template has no input artifact {name}"),
                        );
                    }
                }
                _ => unknown(sink),
            },
            "outputs" => {}
            "workflow" => match rest {
                [] => {
                    if !expr {
                        unknown(sink);
                    }
                }
                ["parameters"] | ["parameters", "json"] => {}
                ["parameters", name, ..] => {
                    if !self.arguments.contains(name) {
                        let known: Vec<&str> = self.arguments.iter().copied().collect();
                        sink.add(
                            field,
                            format!(
                                "{shown}: {} has no argument {name}{} in spec.arguments.parameters; it has {}",
                                self.set.docs[self.d].name,
                                suggest(name, known.iter().copied()),
                                listing(&known)
                            ),
                        );
                    } else if self.via_ref {
                        sink.add(
                            field,
                            format!(
                                "{shown}: other WorkflowTemplates run this template by templateRef, and there workflow.parameters are the caller's: take an input instead"
                            ),
                        );
                    }
                }
                [v] if WORKFLOW_VARS.contains(v) => {}
                [p, ..] if WORKFLOW_PREFIXES.contains(p) => {}
                _ => unknown(sink),
            },
            "steps" | "tasks" => match rest {
                [] | ["name"] => {
                    if !expr && rest.is_empty() {
                        unknown(sink);
                    }
                }
                [step, tail @ ..] => {
                    self.call_ref(parts[0], step, tail, expr, scope, field, &shown, sink);
                }
            },
            "pod" | "node" | "retries" | "lastRetry" | "cronworkflow" => {}
            _ => unknown(sink),
        }
    }

    /// `{{steps.S.REST}}` / `{{tasks.T.REST}}`.
    #[allow(clippy::too_many_arguments)]
    fn call_ref(
        &self,
        written: &str,
        name: &str,
        rest: &[&str],
        expr: bool,
        scope: &Scope<'_>,
        field: &str,
        shown: &str,
        sink: &mut Sink<'_>,
    ) {
        let Some(kind) = self.kind else {
            sink.add(
                field,
                format!(
                    "{shown}: this template has no {written}; only steps and dag templates name their {written}"
                ),
            );
            return;
        };
        if written != kind {
            sink.add(
                field,
                format!("{shown}: this template's calls are {kind}: write {kind}.{name}..."),
            );
            return;
        }
        let noun = if kind == "steps" { "step" } else { "task" };
        let Some(target) = self.calls.iter().find(|c| c.name == name) else {
            sink.add(
                field,
                format!(
                    "{shown}: no {noun} {name} in this template{}",
                    suggest(name, self.calls.iter().map(|c| c.name))
                ),
            );
            return;
        };
        match scope {
            Scope::Body => sink.add(
                field,
                format!(
                    "{shown}: {kind} are visible only in the {kind} themselves and in the template's outputs"
                ),
            ),
            Scope::Call {
                name: from,
                visible,
                ..
            } if !visible.contains(name) => {
                let why = if kind == "steps" {
                    format!(
                        "step {name} runs in the same or a later group than step {from}: it has not run yet"
                    )
                } else {
                    format!("task {from} does not depend on task {name} (add it to depends)")
                };
                sink.add(field, format!("{shown}: {why}"));
            }
            _ => {}
        }
        let callee = self.set.callee(self.d, target.step).ok().map(|(_, t)| t);
        match rest {
            [] => {
                if !expr {
                    sink.add(field, format!("{shown}: name what of {noun} {name} to use"));
                }
            }
            [v] if STEP_VARS.contains(v) => {}
            ["outputs"] | ["outputs", "parameters"] => {}
            ["outputs", "result"] => {
                if let Some(t) = callee
                    && ["plugin", "suspend", "steps", "dag"]
                        .iter()
                        .any(|k| t.get(*k).is_some())
                {
                    sink.add(
                        field,
                        format!(
                            "{shown}: template {} prints no result (only script and container templates do); use an output parameter",
                            s(&t["name"])
                        ),
                    );
                }
            }
            ["outputs", group @ ("parameters" | "artifacts"), output, ..] => {
                if let Some(t) = callee {
                    let declared = names(&t["outputs"][*group]);
                    if !declared.contains(output) {
                        let what = if *group == "parameters" {
                            "output"
                        } else {
                            "output artifact"
                        };
                        sink.add(
                            field,
                            format!(
                                "{shown}: template {} declares no {what} {output}{}; it declares {}",
                                s(&t["name"]),
                                suggest(output, declared.iter().copied()),
                                listing(&declared.iter().copied().collect::<Vec<_>>())
                            ),
                        );
                    }
                }
            }
            _ => {
                if !expr {
                    sink.add(
                        field,
                        format!("{shown} is not a variable Argo sets for a {noun}"),
                    );
                }
            }
        }
    }
}

/// Calls `visit(field, text)` for every string in `value`, naming fields as
/// findings do: list entries by index (`steps[2][0]`), except parameters and
/// artifacts, by name and without their `value` key
/// (`arguments.parameters.delta`).
fn walk_strings(value: &Value, path: &str, visit: &mut dyn FnMut(&str, &str)) {
    walk(value, path, false, visit);
}

fn walk(value: &Value, path: &str, named: bool, visit: &mut dyn FnMut(&str, &str)) {
    match value {
        Value::String(text) => visit(path, text),
        Value::Array(items) => {
            let by_name = path.ends_with("parameters") || path.ends_with("artifacts");
            for (i, item) in items.iter().enumerate() {
                match item.get("name").and_then(Value::as_str) {
                    Some(name) if by_name => walk(item, &join(path, name), true, visit),
                    _ => walk(item, &format!("{path}[{i}]"), false, visit),
                }
            }
        }
        Value::Object(map) => {
            for (key, v) in map {
                if named && key == "value" {
                    walk(v, path, false, visit);
                } else {
                    walk(v, &join(path, key), false, visit);
                }
            }
        }
        _ => {}
    }
}
