//! Check 3: every `{{...}}` of a template resolves. `inputs.parameters.X`
//! is an input of the template, `workflow.parameters.X` an argument of the
//! document, `steps.S...` / `tasks.T...` a step of an earlier group / a
//! task it depends on with an output its template declares, `item` is used
//! only in loops.

use std::collections::BTreeSet;

use serde_json::Value;

use super::Sink;
use super::index::{Call, Set, ancestors, calls, names};
use crate::argo::expr;
use crate::argo::workflow::{Parameter, Template};
use crate::ops::check::{join, listing, suggest};

/// Whether an `enum` value is a word govaluate reads whole: letters,
/// digits and `_`, starting with a letter (`true`, `OnDelete`).
fn plain_word(v: &Value) -> bool {
    v.as_str().is_some_and(|s| {
        s.chars().next().is_some_and(char::is_alphabetic)
            && s.chars().all(|c| c.is_alphanumeric() || c == '_')
    })
}

/// The `{{...}}` references of a `when` that stand outside quotes.
fn unquoted_in_when(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut quote: Option<char> = None;
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if quote.is_none() && rest.starts_with("{{") {
            let Some(end) = rest.find("}}") else { break };
            let var = rest[2..end].trim();
            if !var.starts_with('=') {
                out.push(var.to_owned());
            }
            rest = &rest[end + 2..];
            continue;
        }
        match (quote, c) {
            (None, '\'' | '"') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            _ => {}
        }
        rest = &rest[c.len_utf8()..];
    }
    out
}

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
    /// The template as written.
    raw: &'s Value,
    inputs: BTreeSet<&'s str>,
    /// Inputs whose `enum` allows only plain words (safe unquoted in a `when`).
    plain_inputs: BTreeSet<&'s str>,
    input_artifacts: BTreeSet<&'s str>,
    arguments: BTreeSet<&'s str>,
    via_ref: bool,
    calls: Vec<Call<'s>>,
    /// `steps`, `tasks`, or neither.
    kind: Option<&'static str>,
}

impl<'s, 'a> References<'s, 'a> {
    pub(super) fn new(
        set: &'s Set<'a>,
        d: usize,
        (tmpl, raw): (&'s Template, &'s Value),
        via_ref: bool,
    ) -> Self {
        let kind = if tmpl.steps.is_some() {
            Some("steps")
        } else if tmpl.dag.is_some() {
            Some("tasks")
        } else {
            None
        };
        References {
            set,
            d,
            raw,
            inputs: names(&tmpl.inputs.parameters),
            plain_inputs: tmpl
                .inputs
                .parameters
                .iter()
                .filter(|p| {
                    p.enum_values
                        .as_ref()
                        .is_some_and(|e| e.iter().all(plain_word))
                })
                .map(|p| p.name.as_str())
                .collect(),
            input_artifacts: names(&tmpl.inputs.artifacts),
            arguments: set.arguments(d),
            via_ref,
            calls: calls(tmpl, raw),
            kind,
        }
    }

    pub(super) fn check(&self, sink: &mut Sink<'_>) {
        if let Some(map) = self.raw.as_object() {
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
            let step = call.step;
            let loops = step.with_items.is_some()
                || step.with_param.is_some()
                || step.with_sequence.is_some();
            let scope = Scope::Call {
                name: call.name,
                visible,
                loops,
            };
            // An inline template's own variables are its own business.
            for (key, value) in call.raw.as_object().into_iter().flatten() {
                if key != "inline" {
                    self.strings(value, &join(&call.path, key), &scope, sink);
                }
            }
        }
    }

    fn strings(&self, value: &Value, path: &str, scope: &Scope<'_>, sink: &mut Sink<'_>) {
        walk_strings(value, path, false, &mut |field, text| {
            for r in expr::references(text) {
                self.var(&r.var, r.expression, scope, field, sink);
            }
            if field.ends_with(".when") || field == "when" {
                for var in unquoted_in_when(text) {
                    if !self.plain_in_when(&var) {
                        sink.add(
                            field,
                            format!(
                                "{{{{{var}}}}} is not quoted in this when: Argo evaluates it with govaluate, which fails the step when the value is empty or holds a '-' or a '.' (a name, an image, a version); quote it: '{{{{{var}}}}}'"
                            ),
                        );
                    }
                }
            }
        });
    }

    /// Whether `var` always gives a plain word: a step's or the workflow's
    /// status (an Argo phase), or an input whose `enum` holds only plain
    /// words.
    fn plain_in_when(&self, var: &str) -> bool {
        var.ends_with(".status")
            || var
                .strip_prefix("inputs.parameters.")
                .is_some_and(|name| self.plain_inputs.contains(name))
    }

    /// One variable; `expr`: inside `{{=...}}`, where a prefix such as
    /// `inputs.parameters` is an object, not a mistake.
    fn var(&self, var: &str, expr: bool, scope: &Scope<'_>, field: &str, sink: &mut Sink<'_>) {
        let v = Var {
            shown: if expr {
                format!("{var} (in {{{{=...}}}})")
            } else {
                format!("{{{{{var}}}}}")
            },
            expr,
        };
        let parts: Vec<&str> = var.split('.').collect();
        let rest = &parts[1..];
        let problems = match parts[0] {
            "item" => Vec::from_iter((!matches!(scope, Scope::Call { loops: true, .. })).then(|| {
                format!(
                    "{}: item is set only in a step or task with withItems, withParam or withSequence",
                    v.shown
                )
            })),
            "inputs" => Vec::from_iter(self.input_var(&v, rest)),
            "workflow" => Vec::from_iter(self.workflow_var(&v, rest)),
            "steps" | "tasks" => match rest {
                [] | ["name"] => Vec::from_iter((!expr && rest.is_empty()).then(|| v.unknown())),
                [step, tail @ ..] => self.call_ref(&v, parts[0], step, tail, scope),
            },
            "outputs" | "pod" | "node" | "retries" | "lastRetry" | "cronworkflow" => Vec::new(),
            _ => vec![v.unknown()],
        };
        for message in problems {
            sink.add(field, message);
        }
    }

    /// `inputs.parameters.X` / `inputs.artifacts.X`: an input of the template.
    fn input_var(&self, v: &Var, rest: &[&str]) -> Option<String> {
        let shown = &v.shown;
        match rest {
            [] | ["parameters"] | ["artifacts"] => {
                (!v.expr && rest.is_empty()).then(|| v.unknown())
            }
            ["parameters", name, ..] => (!self.inputs.contains(name)).then(|| {
                format!(
                    "{shown}: the template has no input {name}{}; its inputs: {}",
                    suggest(name, self.inputs.iter().copied()),
                    listing(&self.inputs.iter().copied().collect::<Vec<_>>())
                )
            }),
            ["artifacts", name, ..] => (!self.input_artifacts.contains(name))
                .then(|| format!("{shown}: the template has no input artifact {name}")),
            _ => Some(v.unknown()),
        }
    }

    /// `workflow.X`: a variable Argo sets, or an argument of the document
    /// (and not in a template others run by `templateRef`).
    fn workflow_var(&self, v: &Var, rest: &[&str]) -> Option<String> {
        let shown = &v.shown;
        match rest {
            [] => (!v.expr).then(|| v.unknown()),
            ["parameters"] | ["parameters", "json"] => None,
            ["parameters", name, ..] if !self.arguments.contains(name) => {
                let known: Vec<&str> = self.arguments.iter().copied().collect();
                Some(format!(
                    "{shown}: {} has no argument {name}{} in spec.arguments.parameters; it has {}",
                    self.set.docs[self.d].name,
                    suggest(name, known.iter().copied()),
                    listing(&known)
                ))
            }
            ["parameters", ..] => self.via_ref.then(|| {
                format!(
                    "{shown}: other WorkflowTemplates run this template by templateRef, and there workflow.parameters are the caller's: take an input instead"
                )
            }),
            ["outputs", group @ ("parameters" | "artifacts"), name, ..] => {
                self.workflow_output(v, group, name)
            }
            [v] if WORKFLOW_VARS.contains(v) => None,
            [p, ..] if WORKFLOW_PREFIXES.contains(p) => None,
            _ => Some(v.unknown()),
        }
    }

    /// `workflow.outputs.parameters.X` (or `.artifacts.X`): an output some
    /// template declares with `globalName: X` (argo-workflows
    /// `workflow/controller/operator.go` `addParamToGlobalScope` exports
    /// only those); in a template others run by `templateRef`, one of any
    /// linted document (the caller's workflow).
    fn workflow_output(&self, v: &Var, group: &str, name: &str) -> Option<String> {
        let declared = self.set.global_names(self.d, group, self.via_ref);
        if declared.contains(name) {
            return None;
        }
        let what = if group == "artifacts" {
            "output artifact"
        } else {
            "output parameter"
        };
        Some(format!(
            "{}: no template declares an {what} with globalName: {name}{}, so the workflow never has this output (globalNames declared: {})",
            v.shown,
            suggest(name, declared.iter().copied()),
            listing(&declared.iter().copied().collect::<Vec<_>>())
        ))
    }

    /// `{{steps.S.REST}}` / `{{tasks.T.REST}}`: a step or task of this
    /// template, visible from where it is named, and a field of it.
    fn call_ref(
        &self,
        v: &Var,
        written: &str,
        name: &str,
        rest: &[&str],
        scope: &Scope<'_>,
    ) -> Vec<String> {
        let shown = &v.shown;
        let Some(kind) = self.kind else {
            return vec![format!(
                "{shown}: this template has no {written}; only steps and dag templates name their {written}"
            )];
        };
        if written != kind {
            return vec![format!(
                "{shown}: this template's calls are {kind}: write {kind}.{name}..."
            )];
        }
        let noun = if kind == "steps" { "step" } else { "task" };
        let Some(target) = self.calls.iter().find(|c| c.name == name) else {
            return vec![format!(
                "{shown}: no {noun} {name} in this template{}",
                suggest(name, self.calls.iter().map(|c| c.name))
            )];
        };
        let callee = self.set.callee(self.d, target.step).ok().flatten();
        let callee = callee.map(|(_, t)| t);
        let seen = visibility(kind, name, scope).map(|why| format!("{shown}: {why}"));
        let field = match rest {
            [] => (!v.expr).then(|| format!("{shown}: name what of {noun} {name} to use")),
            [v] if STEP_VARS.contains(v) => None,
            ["outputs"] | ["outputs", "parameters"] => None,
            ["outputs", "result"] => callee.and_then(|t| no_result(shown, t)),
            ["outputs", group @ ("parameters" | "artifacts"), output, ..] => {
                callee.and_then(|t| undeclared_output(shown, t, group, output))
            }
            _ => (!v.expr).then(|| format!("{shown} is not a variable Argo sets for a {noun}")),
        };
        seen.into_iter().chain(field).collect()
    }
}

/// A variable as a finding shows it, and whether it is inside `{{=...}}`.
struct Var {
    shown: String,
    expr: bool,
}

impl Var {
    fn unknown(&self) -> String {
        format!("{} is not a variable Argo sets for a template", self.shown)
    }
}

/// Why step or task `name` is not visible from `scope`, if it is not.
fn visibility(kind: &str, name: &str, scope: &Scope<'_>) -> Option<String> {
    match scope {
        Scope::Body => Some(format!(
            "{kind} are visible only in the {kind} themselves and in the template's outputs"
        )),
        Scope::Call {
            name: from,
            visible,
            ..
        } if !visible.contains(name) => Some(if kind == "steps" {
            format!(
                "step {name} runs in the same or a later group than step {from}: it has not run yet"
            )
        } else {
            format!("task {from} does not depend on task {name} (add it to depends)")
        }),
        _ => None,
    }
}

/// `outputs.result` of a template that prints none.
fn no_result(shown: &str, t: &Template) -> Option<String> {
    (t.plugin.is_some() || t.suspend.is_some() || t.steps.is_some() || t.dag.is_some())
        .then(|| {
            format!(
                "{shown}: template {} prints no result (only script and container templates do); use an output parameter",
                t.name
            )
        })
}

/// `outputs.parameters.X` / `outputs.artifacts.X` the template does not
/// declare.
fn undeclared_output(shown: &str, t: &Template, group: &str, output: &str) -> Option<String> {
    let (list, what): (&[Parameter], _) = if group == "parameters" {
        (&t.outputs.parameters, "output")
    } else {
        (&t.outputs.artifacts, "output artifact")
    };
    let declared = names(list);
    (!declared.contains(output)).then(|| {
        format!(
            "{shown}: template {} declares no {what} {output}{}; it declares {}",
            t.name,
            suggest(output, declared.iter().copied()),
            listing(&declared.iter().copied().collect::<Vec<_>>())
        )
    })
}

/// Calls `visit(field, text)` for every string in `value`, naming fields as
/// findings do: list entries by index (`steps[2][0]`), except parameters and
/// artifacts, by name and without their `value` key
/// (`arguments.parameters.delta`); `named`: `value` is such an entry.
fn walk_strings(value: &Value, path: &str, named: bool, visit: &mut dyn FnMut(&str, &str)) {
    match value {
        Value::String(text) => visit(path, text),
        Value::Array(items) => {
            let by_name = path.ends_with("parameters") || path.ends_with("artifacts");
            for (i, item) in items.iter().enumerate() {
                match item.get("name").and_then(Value::as_str) {
                    Some(name) if by_name => walk_strings(item, &join(path, name), true, visit),
                    _ => walk_strings(item, &format!("{path}[{i}]"), false, visit),
                }
            }
        }
        Value::Object(map) => {
            for (key, v) in map {
                if named && key == "value" {
                    walk_strings(v, path, false, visit);
                } else {
                    walk_strings(v, &join(path, key), false, visit);
                }
            }
        }
        _ => {}
    }
}
