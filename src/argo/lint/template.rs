//! The checks of one template: exactly one kind the local runner runs, a
//! `plugin.gameops` call the op table accepts ([`crate::ops::check`]), its
//! steps or tasks, and its `{{...}}` references ([`super::references`]).

use std::collections::BTreeSet;

use serde_json::Value;

use super::Sink;
use super::index::{Call, Set, ancestors, calls, names};
use super::references::References;
use crate::argo::workflow::{POD_KINDS, RUNNABLE_KINDS, Step, Template};
use crate::ops::check::{self, join, listing, suggest};

/// Checks one template, typed and as written; `via_ref`: other documents
/// run it by `templateRef`.
pub(super) fn lint_template(
    set: &Set<'_>,
    d: usize,
    (tmpl, raw): (&Template, &Value),
    via_ref: bool,
    sink: &mut Sink<'_>,
) {
    let present = |k: &&str| raw.get(*k).is_some_and(|v| !v.is_null());
    let kinds: Vec<&str> = RUNNABLE_KINDS
        .iter()
        .chain(&POD_KINDS)
        .copied()
        .filter(|k| present(k))
        .collect();
    for k in POD_KINDS.iter().filter(|k| present(k)) {
        sink.add(
            *k,
            format!(
                "the local runner cannot run a {k} template; gameops templates use plugin steps (plugin: {{gameops: ...}})"
            ),
        );
    }
    match kinds.as_slice() {
        [] => sink.add(
            "",
            "the template has none of steps, dag, suspend and plugin: nothing to run",
        ),
        [_] => {}
        many => sink.add(
            "",
            format!(
                "the template is {}: a template is exactly one kind",
                many.join(" and ")
            ),
        ),
    }
    lint_plugin(tmpl, sink);
    lint_calls(set, d, tmpl, sink);
    References::new(set, d, (tmpl, raw), via_ref).check(sink);
}

/// The steps or tasks: names, what they run, the arguments they pass,
/// what they depend on.
fn lint_calls(set: &Set<'_>, d: usize, tmpl: &Template, sink: &mut Sink<'_>) {
    let calls = calls(tmpl, &Value::Null);
    let noun = if tmpl.dag.is_some() { "task" } else { "step" };
    let uses = |f: fn(&Step) -> bool| calls.iter().any(|c| f(c.step));
    if uses(|s| s.depends.is_some()) && uses(|s| s.dependencies.is_some()) {
        sink.add(
            "dag",
            "Argo rejects a DAG template that uses both depends and dependencies: use depends",
        );
    }
    let mut seen = BTreeSet::new();
    for call in &calls {
        let step = call.step;
        if call.name.is_empty() {
            sink.add(join(&call.path, "name"), format!("the {noun} has no name"));
        } else if !seen.insert(call.name) {
            sink.add(
                join(&call.path, "name"),
                format!("two {noun}s are named {}", call.name),
            );
        }
        passes_inputs(set, d, call, sink);
        if let Some(exit) = &step.on_exit
            && set.local(d, exit).is_none()
        {
            sink.add(
                join(&call.path, "onExit"),
                format!("{exit:?} is not a template here"),
            );
        }
        if noun == "task" {
            task_dependencies(&calls, call, sink);
        }
    }
}

/// A step's callee exists and gets the inputs it declares, no others.
fn passes_inputs(set: &Set<'_>, d: usize, call: &Call<'_>, sink: &mut Sink<'_>) {
    match set.callee(d, call.step) {
        Err((field, message)) => sink.add(join(&call.path, &field), message),
        Ok(None) => {}
        Ok(Some((_, t))) => {
            let callee = &t.name;
            let declared = names(&t.inputs.parameters);
            let passed = names(&call.step.arguments.parameters);
            for p in passed.difference(&declared) {
                sink.add(
                    format!("{}.arguments.parameters.{p}", call.path),
                    format!(
                        "template {callee} has no input {p}{}; its inputs: {}",
                        suggest(p, declared.iter().copied()),
                        listing(&declared.iter().copied().collect::<Vec<_>>())
                    ),
                );
            }
            for p in &t.inputs.parameters {
                let name = &p.name;
                let required = p.default.is_none() && p.value.is_none();
                if required && !passed.contains(name.as_str()) {
                    sink.add(
                        join(&call.path, "arguments.parameters"),
                        format!(
                            "template {callee}'s input {name} has no default and is not passed"
                        ),
                    );
                }
            }
        }
    }
}

/// A task waits only for tasks of its DAG, and not (through others) for
/// itself.
fn task_dependencies(calls: &[Call<'_>], call: &Call<'_>, sink: &mut Sink<'_>) {
    for dep in call.step.waits_for() {
        if !calls.iter().any(|c| c.name == dep) {
            let field = if call.step.depends.is_none() {
                "dependencies"
            } else {
                "depends"
            };
            sink.add(
                join(&call.path, field),
                format!(
                    "{dep} is not a task of this dag{}",
                    suggest(&dep, calls.iter().map(|c| c.name))
                ),
            );
        }
    }
    if !call.name.is_empty() && ancestors(calls, call.name).contains(call.name) {
        sink.add(
            join(&call.path, "depends"),
            format!("task {} depends on itself (a cycle)", call.name),
        );
    }
}

/// Check 1 and 2: a `plugin.gameops` template (other plugins' are not
/// ours to check).
fn lint_plugin(tmpl: &Template, sink: &mut Sink<'_>) {
    let Some(plugin) = &tmpl.plugin else {
        return;
    };
    let Some(plugins) = plugin.as_object() else {
        sink.add(
            "plugin",
            "must be an object naming one plugin, e.g. {gameops: {status: {gameServerSet: minecraft}}}",
        );
        return;
    };
    let Some(gameops) = plugins.get("gameops") else {
        return; // another executor plugin's template: not ours to check
    };
    if plugins.len() > 1 {
        let all: Vec<&str> = plugins.keys().map(String::as_str).collect();
        sink.add(
            "plugin",
            format!(
                "names {} plugins ({}); a template calls exactly one",
                all.len(),
                all.join(", ")
            ),
        );
    }
    let outputs = &tmpl.outputs.parameters;
    let declared: Vec<&str> = outputs.iter().map(|p| p.name.as_str()).collect();
    for problem in check::plugin_call(gameops, &declared) {
        sink.add(problem.field, problem.message);
    }
}
