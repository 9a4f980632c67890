//! What the runner checks once the workflow's parameters are known, before
//! the first step runs. Argo validates a workflow's arguments at
//! submission (argo-workflows `workflow/validate/validate.go`,
//! `validateArgumentsValues`: `enum`, and a value for each); the plugin's
//! arguments it sees only when a step runs, after `ProcessArgs` /
//! `SubstituteParams` (`workflow/common/util.go`) filled them in. So a
//! parameter of the wrong form passes submission there and fails in the
//! middle of a release, after the image changed. The runner does better:
//! it fills every template's `{{...}}` in as far as the parameters decide
//! them (workflow parameters, the inputs they become, defaults, literal
//! loop items; not step outputs, which exist only once a step ran), and
//! checks each gameops plugin call with the op table
//! ([`crate::ops::check`]) and each `withParam` that is known, naming the
//! parameter behind a wrong value.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde_json::Value;

use super::precheck::{callee, display_name};
use super::{Library, RunError};
use crate::argo::expr;
use crate::argo::plugin::PLUGIN_NAME;
use crate::argo::workflow::{Document, Step, Template, value_string};
use crate::ops::check::{self, Problem};
use crate::ops::table::{self, Arg, OPS_STATES, THEN, Ty};

/// A value known before the run, and the workflow parameters it was made
/// from. Its text may still hold `{{...}}` that only the run fills in.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Known {
    text: String,
    from: BTreeSet<String>,
}

/// Names and what is known of their values.
type Scope = BTreeMap<String, Known>;

/// Templates called deeper than this (a recursive template) are not
/// checked ahead; the run checks them as it goes.
const MAX_DEPTH: usize = 32;

/// Checks every template reachable from `entry` (which gets `parameters`
/// as its inputs, as Argo hands a workflow's arguments to its entrypoint)
/// and from `exit`, with `globals` (`workflow.name`,
/// `workflow.parameters.X`, ...) known.
pub(super) fn check_arguments(
    library: &Library,
    owner: &Arc<Document>,
    (entry, exit): (&str, Option<&str>),
    globals: &BTreeMap<String, String>,
    parameters: &BTreeMap<String, String>,
) -> Result<(), RunError> {
    let globals = globals
        .iter()
        .map(|(k, v)| {
            let from = k
                .strip_prefix("workflow.parameters.")
                .map(|p| BTreeSet::from([p.to_owned()]))
                .unwrap_or_default();
            let text = v.clone();
            (k.clone(), Known { text, from })
        })
        .collect();
    let mut walk = Walk {
        library,
        globals,
        seen: BTreeSet::new(),
    };
    let inputs: Scope = parameters
        .iter()
        .map(|(k, v)| {
            let from = BTreeSet::from([k.clone()]);
            let text = v.clone();
            (k.clone(), Known { text, from })
        })
        .collect();
    if let Some(t) = owner.spec.template(entry) {
        walk.template(owner, t, &inputs, 0)?;
    }
    if let Some(t) = exit.and_then(|e| owner.spec.template(e)) {
        walk.template(owner, t, &Scope::new(), 0)?;
    }
    Ok(())
}

/// Fills in what `scope` knows of `text`, and notes the parameters used.
fn fill(text: &str, scope: &Scope) -> Known {
    let mut from = BTreeSet::new();
    let text = expr::substitute_with(text, |name| {
        let known = scope.get(name)?;
        from.extend(known.from.iter().cloned());
        Some(known.text.clone())
    });
    Known { text, from }
}

/// Whether `step`'s `when` is false whatever the run will fill in.
fn never_runs(step: &Step, scope: &Scope) -> bool {
    step.when
        .as_deref()
        .is_some_and(|w| expr::when_possible(&fill(w, scope).text) == Ok(false))
}

/// One template run in the walk: the document, the template and the
/// values of its inputs.
type Visit = (String, String, Vec<(String, String)>);

struct Walk<'l> {
    library: &'l Library,
    globals: Scope,
    /// What was checked already.
    seen: BTreeSet<Visit>,
}

impl Walk<'_> {
    fn template(
        &mut self,
        owner: &Arc<Document>,
        template: &Template,
        inputs: &Scope,
        depth: usize,
    ) -> Result<(), RunError> {
        let visit = (
            display_name(owner),
            template.name.clone(),
            inputs
                .iter()
                .map(|(k, v)| (k.clone(), v.text.clone()))
                .collect(),
        );
        if depth > MAX_DEPTH || !self.seen.insert(visit) {
            return Ok(());
        }
        let mut scope = self.globals.clone();
        for p in &template.inputs.parameters {
            let value = inputs.get(&p.name).cloned().or_else(|| {
                let v = p.value.as_ref().or(p.default.as_ref())?;
                Some(Known {
                    text: value_string(v),
                    from: BTreeSet::new(),
                })
            });
            if let Some(v) = value {
                scope.insert(format!("inputs.parameters.{}", p.name), v);
            }
        }
        if let Some(gameops) = template.plugin.as_ref().and_then(|p| p.get(PLUGIN_NAME)) {
            return plugin_call(owner, template, gameops, &scope);
        }
        for step in template.children() {
            self.step(owner, template, step, &scope, depth)?;
        }
        Ok(())
    }

    fn step(
        &mut self,
        owner: &Arc<Document>,
        parent: &Template,
        step: &Step,
        scope: &Scope,
        depth: usize,
    ) -> Result<(), RunError> {
        let Some((doc, template)) = callee(self.library, owner, step) else {
            return Ok(());
        };
        let items = items(step, scope).map_err(|(from, why)| {
            RunError::Invalid(format!(
                "{}{why} (step {:?} of template {:?} of {})",
                named(&from),
                step.name,
                parent.name,
                display_name(owner)
            ))
        })?;
        for item in items {
            let mut scope = scope.clone();
            scope.extend(item);
            if never_runs(step, &scope) {
                continue;
            }
            let args: Scope = step
                .arguments
                .parameters
                .iter()
                .map(|a| {
                    let raw = a.value.as_ref().map(value_string).unwrap_or_default();
                    (a.name.clone(), fill(&raw, &scope))
                })
                .collect();
            self.template(&doc, &template, &args, depth + 1)?;
        }
        Ok(())
    }
}

/// The item scopes a step runs with, as far as known: one empty scope
/// when it does not loop or its items are known only in the run; or the
/// parameters behind a `withParam` that is not a JSON list and Argo's
/// reason (`workflow/controller/steps.go` `expandStep`, `dag.go`
/// `expandTask`: "withParam value could not be parsed as a JSON list").
fn items(step: &Step, scope: &Scope) -> Result<Vec<Scope>, (BTreeSet<String>, String)> {
    let item_scope = |item: &Value, from: &BTreeSet<String>| {
        let known = |v: &Value| Known {
            text: value_string(v),
            from: from.clone(),
        };
        let mut s = Scope::from([("item".to_owned(), known(item))]);
        if let Some(map) = item.as_object() {
            for (k, v) in map {
                s.insert(format!("item.{k}"), known(v));
            }
        }
        s
    };
    match (&step.with_items, &step.with_param) {
        (Some(items), _) => Ok(items
            .iter()
            .map(|i| item_scope(i, &BTreeSet::new()))
            .collect()),
        (None, Some(param)) => {
            let list = fill(param, scope);
            if expr::has_tags(&list.text) {
                return Ok(vec![Scope::new()]);
            }
            match parse_with_param(&list.text) {
                Ok(items) => Ok(items.iter().map(|i| item_scope(i, &list.from)).collect()),
                Err(_) if never_runs(step, scope) => Ok(Vec::new()),
                Err(why) => Err((list.from, why)),
            }
        }
        (None, None) => Ok(vec![Scope::new()]),
    }
}

/// A `withParam` value as Argo reads it: a JSON list, or Argo's reason.
pub(super) fn parse_with_param(text: &str) -> Result<Vec<Value>, String> {
    serde_json::from_str(text).map_err(|e| {
        format!(
            "withParam value could not be parsed as a JSON list: {}: {e}",
            text.trim()
        )
    })
}

/// `surge: ` (or `container, image: `) for the parameters behind a value;
/// nothing when none is.
fn named(from: &BTreeSet<String>) -> String {
    if from.is_empty() {
        String::new()
    } else {
        format!("{}: ", from.iter().cloned().collect::<Vec<_>>().join(", "))
    }
}

/// Checks a gameops plugin call with what is known filled in.
fn plugin_call(
    owner: &Document,
    template: &Template,
    gameops: &Value,
    scope: &Scope,
) -> Result<(), RunError> {
    let mut leaves = BTreeMap::new();
    let filled = fill_json(gameops, "plugin.gameops", scope, &mut leaves);
    let declared = template.declared_outputs();
    match check::plugin_call(&filled, &declared).first() {
        None => Ok(()),
        Some(problem) => Err(RunError::Invalid(message(
            owner, template, problem, &leaves,
        ))),
    }
}

/// [`fill`] over every string of a JSON value; `leaves` gets what was
/// filled in at each field (`plugin.gameops.scale.delta`; a list's
/// strings together, under the list's field).
fn fill_json(
    value: &Value,
    path: &str,
    scope: &Scope,
    leaves: &mut BTreeMap<String, Known>,
) -> Value {
    match value {
        Value::String(s) => {
            let known = fill(s, scope);
            let text = known.text.clone();
            let leaf = leaves.entry(path.to_owned()).or_default();
            if !leaf.text.is_empty() {
                leaf.text.push_str(", ");
            }
            leaf.text.push_str(&known.text);
            leaf.from.extend(known.from);
            Value::String(text)
        }
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|i| fill_json(i, path, scope, leaves))
                .collect(),
        ),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        fill_json(v, &check::join(path, k), scope, leaves),
                    )
                })
                .collect(),
        ),
        other => other.clone(),
    }
}

/// One sentence for a problem the filled-in values caused: the parameter
/// behind it, the value and the form expected, then where it goes
/// (`surge: "abc" is not a whole number such as 3 or -2 (scale.delta of
/// template "scale-up" of WorkflowTemplate seamless-release)`).
fn message(
    owner: &Document,
    template: &Template,
    problem: &Problem,
    leaves: &BTreeMap<String, Known>,
) -> String {
    let place = format!("template {:?} of {}", template.name, display_name(owner));
    let field = problem
        .field
        .strip_prefix("plugin.gameops.")
        .unwrap_or(&problem.field);
    let leaf = leaves.get(&problem.field);
    let (op, arg) = field.split_once('.').unwrap_or((field, ""));
    let spec = table::find(op);
    // A problem of the call as a whole (none of a required group given):
    // the parameters that made an argument of such a group empty.
    let required = |path: &str| {
        let arg = path.rsplit('.').next().unwrap_or(path);
        spec.is_some_and(|s| s.exactly_one.iter().any(|g| g.contains(&arg)))
    };
    let from = leaf.map(|l| l.from.clone()).unwrap_or_else(|| {
        let under = format!("{}.", problem.field);
        leaves
            .iter()
            .filter(|(path, k)| path.starts_with(&under) && k.text.trim().is_empty())
            .filter(|(path, _)| required(path))
            .flat_map(|(_, k)| k.from.iter().cloned())
            .collect()
    });
    let arg = spec.and_then(|s| s.all_args().find(|a| a.name == arg));
    match (named(&from), leaf, arg.and_then(form)) {
        (who, _, _) if who.is_empty() => format!("{place}: {}: {}", problem.field, problem.message),
        (who, leaf, _) if leaf.is_none_or(|l| l.text.trim().is_empty()) => {
            format!("{who}is empty, so {field} of {place} {}", problem.message)
        }
        (who, Some(leaf), Some(form)) => {
            format!("{who}{:?} is not {form} ({field} of {place})", leaf.text)
        }
        (who, _, _) => format!("{who}{field} of {place}: {}", problem.message),
    }
}

/// The form an argument's value must have, for messages; `None` for the
/// structured ones, whose check says what is wrong.
fn form(arg: &Arg) -> Option<String> {
    let number = |example: &str| match arg.range {
        Some(r) if r.max == i128::MAX => format!("a whole number of at least {}", r.min),
        Some(r) => format!("a whole number from {} to {}", r.min, r.max),
        None => format!("a whole number such as {example}"),
    };
    Some(match arg.ty {
        Ty::Int => number("3 or -2"),
        Ty::Whole => number("3"),
        Ty::Flag => "true or false".into(),
        Ty::Text => "a string".into(),
        Ty::Image => "an image reference such as registry.example.com/game/server:v1.2.3".into(),
        Ty::OpsState => format!("one of {}", OPS_STATES.join(", ")),
        Ty::Then => THEN.join(" or "),
        Ty::Entries | Ty::Select | Ty::Filter | Ty::Ordinals | Ty::Labels => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(yaml: &str) -> Arc<Document> {
        Arc::new(serde_yaml_ng::from_str(yaml).expect("yaml"))
    }

    fn checked(yaml: &str, parameters: &[(&str, &str)]) -> Result<(), String> {
        let owner = doc(yaml);
        let parameters: BTreeMap<String, String> = parameters
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let globals = parameters
            .iter()
            .map(|(k, v)| (format!("workflow.parameters.{k}"), v.clone()))
            .collect();
        check_arguments(
            &Library::default(),
            &owner,
            ("main", owner.spec.on_exit.as_deref()),
            &globals,
            &parameters,
        )
        .map_err(|e| e.to_string())
    }

    const WF: &str = r#"
kind: Workflow
metadata: {name: w}
spec:
  entrypoint: main
  onExit: bye
  templates:
    - name: main
      inputs: {parameters: [{name: n}, {name: go}]}
      steps:
        - - name: first
            template: scale
            arguments: {parameters: [{name: delta, value: "{{inputs.parameters.n}}"}]}
        - - name: later
            template: scale
            when: "{{steps.first.status}} == Succeeded && {{inputs.parameters.go}} == true"
            arguments: {parameters: [{name: delta, value: "{{inputs.parameters.n}}x"}]}
          - name: from-output
            template: scale
            arguments: {parameters: [{name: delta, value: "{{steps.first.outputs.parameters.replicas}}"}]}
    - name: scale
      inputs: {parameters: [{name: delta}]}
      outputs: {parameters: [{name: replicas, value: ""}]}
      plugin: {gameops: {scale: {gameServerSet: a, delta: "{{inputs.parameters.delta}}"}}}
    - name: bye
      plugin: {gameops: {waitReady: {gameServerSet: a, count: 1, timeoutSeconds: "{{workflow.parameters.n}}"}}}
"#;

    #[test]
    fn arguments_the_parameters_decide_are_checked_with_the_parameter_named() {
        assert_eq!(checked(WF, &[("n", "2"), ("go", "false")]), Ok(()));
        let e = checked(WF, &[("n", "two"), ("go", "false")]).unwrap_err();
        assert!(
            e.starts_with(
                r#"n: "two" is not a whole number such as 3 or -2 (scale.delta of template "scale""#
            ),
            "{e}"
        );
        // A step whose `when` can still hold is checked, whatever the
        // step it waits for does; one whose `when` the parameters make
        // false is not.
        let e = checked(WF, &[("n", "2"), ("go", "true")]).unwrap_err();
        assert!(e.starts_with(r#"n: "2x" is not a whole number"#), "{e}");
        // The exit handler too.
        let e = checked(WF, &[("n", "-1"), ("go", "false")]).unwrap_err();
        assert!(
            e.contains("waitReady.timeoutSeconds of template \"bye\""),
            "{e}"
        );
    }

    #[test]
    fn a_with_param_the_parameters_decide_must_be_a_json_list() {
        let wf = r#"
kind: Workflow
metadata: {name: w}
spec:
  entrypoint: main
  templates:
    - name: main
      inputs: {parameters: [{name: sets}]}
      dag:
        tasks:
          - name: each
            template: status
            withParam: "{{inputs.parameters.sets}}"
            arguments: {parameters: [{name: set, value: "{{item}}"}]}
    - name: status
      inputs: {parameters: [{name: set}]}
      plugin: {gameops: {scale: {gameServerSet: "{{inputs.parameters.set}}", delta: "{{inputs.parameters.set}}"}}}
"#;
        let e = checked(wf, &[("sets", "a, b")]).unwrap_err();
        assert!(
            e.starts_with("sets: withParam value could not be parsed as a JSON list: a, b:"),
            "{e}"
        );
        // Each item is filled in and checked.
        let e = checked(wf, &[("sets", r#"["1", "x"]"#)]).unwrap_err();
        assert!(e.starts_with(r#"sets: "x" is not a whole number"#), "{e}");
        assert_eq!(checked(wf, &[("sets", r#"["1", "2"]"#)]), Ok(()));
    }
}
