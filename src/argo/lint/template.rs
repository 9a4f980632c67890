//! The checks of one template: exactly one kind the local runner runs, a
//! `plugin.gameops` call the op table accepts ([`crate::ops::check`]), its
//! steps or tasks, and its `{{...}}` references ([`super::references`]).

use std::collections::BTreeSet;

use serde_json::Value;

use super::Sink;
use super::index::{Call, Set, ancestors, arr, calls, dependencies, names, s};
use super::references::References;
use crate::argo::workflow::{POD_KINDS, RUNNABLE_KINDS};
use crate::ops::check::{self, join, listing, suggest};

pub(super) fn lint_template<'a>(
    set: &Set<'a>,
    d: usize,
    tmpl: &'a Value,
    via_ref: bool,
    sink: &mut Sink<'_>,
) {
    let present = |k: &&str| tmpl.get(*k).is_some_and(|v| !v.is_null());
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
    References::new(set, d, tmpl, via_ref).check(sink);
}

/// The steps or tasks: names, what they run, the arguments they pass,
/// what they depend on.
fn lint_calls<'a>(set: &Set<'a>, d: usize, tmpl: &'a Value, sink: &mut Sink<'_>) {
    let calls = calls(tmpl);
    let noun = if tmpl.get("dag").is_some() {
        "task"
    } else {
        "step"
    };
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
        if let Some(exit) = step.get("onExit").and_then(Value::as_str)
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
fn passes_inputs<'a>(set: &Set<'a>, d: usize, call: &Call<'a>, sink: &mut Sink<'_>) {
    match set.callee(d, call.step) {
        Err((field, message)) => sink.add(join(&call.path, &field), message),
        Ok((_, t)) => {
            let callee = s(&t["name"]);
            let declared = names(&t["inputs"]["parameters"]);
            let passed = names(&call.step["arguments"]["parameters"]);
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
            for p in arr(&t["inputs"]["parameters"]) {
                let name = s(&p["name"]);
                let required = p.get("default").is_none() && p.get("value").is_none();
                if required && !passed.contains(name) {
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
    for dep in dependencies(call.step) {
        if !calls.iter().any(|c| c.name == dep) {
            let field = if call.step.get("dependencies").is_some() {
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
fn lint_plugin(tmpl: &Value, sink: &mut Sink<'_>) {
    let Some(plugin) = tmpl.get("plugin").filter(|p| !p.is_null()) else {
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
    let declared: Vec<&str> = arr(&tmpl["outputs"]["parameters"])
        .iter()
        .map(|p| s(&p["name"]))
        .collect();
    for problem in check::plugin_call(gameops, &declared) {
        sink.add(problem.field, problem.message);
    }
}
