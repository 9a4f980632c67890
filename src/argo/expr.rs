//! Argo's template expressions, for the runner and lint alike: `{{name}}`
//! references (substituted by the runner, resolved by lint, including the
//! variables a `{{= expression}}` names; [`super::exprlang`] evaluates
//! it), `when` conditions (the govaluate
//! subset Argo templates use: `==` and `!=` over operands compared as
//! strings once quotes are dropped) and DAG `depends` (`a`, `a.Succeeded`,
//! `a.Failed`, ..., as Argo's enhanced depends logic reads them), both
//! joined by `&&`, `||`, `!` and parentheses.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use regex::Regex;
use serde_json::Value;

/// Why an expression cannot be evaluated.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ExprError {
    /// A `{{…}}` reference with nothing behind it.
    #[error("{{{{{0}}}}} does not resolve to anything here")]
    Unresolved(String),
    /// A `{{= expression}}` that does not evaluate (worded as Argo's
    /// `failed to evaluate expression`), with why.
    #[error("{{{{{0}}}}}: failed to evaluate expression: {1}")]
    Expression(String, String),
    /// A `when` (or `depends`) that cannot be evaluated, as Argo says it.
    #[error("{0}")]
    When(String),
}

/// `{{ VAR }}` and `{{= EXPRESSION }}`.
static TAG: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"\{\{\s*(=?)\s*([^{}]*?)\s*\}\}").ok());

/// The variables an expression names (after `['x']` became `.x`).
static EXPR_VAR: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(
        r"(?:^|[^\w.'\x22])((?:inputs|outputs|steps|tasks|workflow|item)(?:\.\w+(?:-\w+)*)*)",
    )
    .ok()
});

/// `['x']` / `["x"]` in an expression.
static EXPR_INDEX: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r#"\[\s*['"]([^'"]+)['"]\s*\]"#).ok());

/// One variable a string names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// `inputs.parameters.image`.
    pub var: String,
    /// Named inside a `{{= expression}}`, where a prefix such as
    /// `inputs.parameters` is an object, not a mistake.
    pub expression: bool,
}

/// Every variable `text` names: each `{{name}}`, and the variables inside
/// each `{{= expression}}`.
pub fn references(text: &str) -> Vec<Reference> {
    let (Some(tag), Some(var), Some(index)) =
        (TAG.as_ref(), EXPR_VAR.as_ref(), EXPR_INDEX.as_ref())
    else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for c in tag.captures_iter(text) {
        let body = c.get(2).map_or("", |m| m.as_str());
        if c.get(1).is_some_and(|m| !m.as_str().is_empty()) {
            let body = index.replace_all(body, ".$1");
            out.extend(var.captures_iter(&body).filter_map(|v| {
                Some(Reference {
                    var: v.get(1)?.as_str().to_owned(),
                    expression: true,
                })
            }));
        } else {
            out.push(Reference {
                var: body.to_owned(),
                expression: false,
            });
        }
    }
    out
}

/// Replaces every `{{name}}` in `text` from `scope`; a name not in scope is
/// an error.
pub fn substitute(text: &str, scope: &BTreeMap<String, String>) -> Result<String, ExprError> {
    let Some(tag) = TAG.as_ref() else {
        return Ok(text.to_owned());
    };
    let mut error = None;
    let out = tag.replace_all(text, |c: &regex::Captures<'_>| {
        let name = format!("{}{}", &c[1], &c[2]);
        match scope.get(&name) {
            Some(v) => v.clone(),
            None if name.starts_with('=') => match super::exprlang::evaluate(&c[2], scope) {
                Ok(v) => v,
                Err(why) => {
                    error.get_or_insert(ExprError::Expression(name, why));
                    String::new()
                }
            },
            None => {
                error.get_or_insert(ExprError::Unresolved(name));
                String::new()
            }
        }
    });
    match error {
        Some(e) => Err(e),
        None => Ok(out.into_owned()),
    }
}

/// Replaces each `{{name}}` in `text` that `known` gives a value for and
/// leaves the others as written (a `{{= expression}}` is passed to
/// `known` with its `=`): what can be filled in before a run, the rest
/// left for the run.
pub fn substitute_with(text: &str, mut known: impl FnMut(&str) -> Option<String>) -> String {
    let Some(tag) = TAG.as_ref() else {
        return text.to_owned();
    };
    tag.replace_all(text, |c: &regex::Captures<'_>| {
        let name = format!("{}{}", &c[1], &c[2]);
        known(&name).unwrap_or_else(|| c[0].to_owned())
    })
    .into_owned()
}

/// Whether `text` still holds a `{{...}}`.
pub fn has_tags(text: &str) -> bool {
    TAG.as_ref().is_some_and(|t| t.is_match(text))
}

/// [`substitute`] over every string inside a JSON value.
pub fn substitute_json(
    value: &Value,
    scope: &BTreeMap<String, String>,
) -> Result<Value, ExprError> {
    Ok(match value {
        Value::String(s) => Value::String(substitute(s, scope)?),
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|i| substitute_json(i, scope))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| Ok((k.clone(), substitute_json(v, scope)?)))
                .collect::<Result<_, ExprError>>()?,
        ),
        other => other.clone(),
    })
}

/// Evaluates an already substituted `when` as Argo's controller does
/// ([`super::govaluate`]).
pub fn when(expression: &str) -> Result<bool, ExprError> {
    super::govaluate::should_execute(expression.trim()).map_err(|e| ExprError::When(e.0))
}

/// Whether a `when` whose `{{...}}` are filled in only where known can
/// still hold: each comparison or word still holding a `{{...}}` may come
/// out either way. `Ok(false)`: it is false whatever the rest turns out to
/// be (past 8 unknown terms, it is taken to hold).
pub fn when_possible(expression: &str) -> Result<bool, ExprError> {
    let unknown: Vec<&str> = tokens(expression)
        .into_iter()
        .filter(|t| has_tags(t))
        .collect();
    if unknown.len() > 8 {
        return Ok(true);
    }
    for assignment in 0u32..(1 << unknown.len()) {
        let holds = boolean(expression, |term| {
            match unknown.iter().position(|u| *u == term) {
                Some(i) => Some(assignment & (1 << i) != 0),
                None => when(term).ok(),
            }
        })?;
        if holds {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The tasks a `depends` expression names.
pub fn depends_on(expression: &str) -> Vec<String> {
    expression
        .split(['&', '|', '(', ')', '!', ' '])
        .filter(|t| !t.is_empty())
        .map(|t| t.split('.').next().unwrap_or(t).to_owned())
        .collect()
}

/// What `depends` knows of a finished task (argo-workflows v4.0.5
/// workflow/controller/dag.go `evaluateDependsLogic`'s `TaskResults`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskResult {
    /// `Succeeded`, `Failed`, `Error`, `Skipped` or `Omitted`.
    pub phase: String,
    /// A loop's items' phases (`AnySucceeded`, `AllFailed` read them).
    pub children: Option<Vec<String>>,
    /// Its `continueOn.failed`.
    pub continue_failed: bool,
    /// Its `continueOn.error`.
    pub continue_error: bool,
}

impl TaskResult {
    /// A task that ended in `phase`.
    pub fn of(phase: &str) -> Self {
        Self {
            phase: phase.to_owned(),
            ..Self::default()
        }
    }
}

/// The task results `depends` may name (workflow/common/ancestry.go
/// `ValidateTaskResults`).
const TASK_RESULTS: [&str; 8] = [
    "Succeeded",
    "Failed",
    "Errored",
    "Skipped",
    "Omitted",
    "Daemoned",
    "AnySucceeded",
    "AllFailed",
];

/// Argo's refusal of a `depends` naming a result it does not know
/// (`ValidateTaskResults`, at submission), if any.
pub fn invalid_task_result(expression: &str) -> Option<String> {
    static RESULT: LazyLock<Option<Regex>> =
        LazyLock::new(|| Regex::new(r"([a-zA-Z0-9][-a-zA-Z0-9]*?\.[A-Z][a-zA-Z]+)").ok());
    RESULT.as_ref()?.captures_iter(expression).find_map(|c| {
        let (task, result) = c.get(1)?.as_str().split_once('.')?;
        (!TASK_RESULTS.contains(&result))
            .then(|| format!("task result '{result}' for task '{task}' is invalid"))
    })
}

/// Evaluates a DAG `depends` given each finished task's result, as Argo
/// does: a task named without a result means `(T.Succeeded || T.Skipped
/// || T.Daemoned)`, plus `T.Errored` / `T.Failed` when the task continues
/// on them (ancestry.go `expandDependency`); `AnySucceeded` and
/// `AllFailed` hold only for loops.
pub fn depends(expression: &str, tasks: &BTreeMap<String, TaskResult>) -> Result<bool, ExprError> {
    boolean(expression, |term| {
        let (task, result) = term.split_once('.').unwrap_or((term, ""));
        let t = tasks.get(task)?;
        let phase = t.phase.as_str();
        Some(match result {
            "" => {
                matches!(phase, "Succeeded" | "Skipped")
                    || (t.continue_error && phase == "Error")
                    || (t.continue_failed && phase == "Failed")
            }
            "Succeeded" | "Failed" | "Skipped" | "Omitted" => phase == result,
            "Errored" => phase == "Error",
            "Daemoned" => false,
            "AnySucceeded" => t
                .children
                .as_ref()
                .is_some_and(|c| c.iter().any(|p| p == "Succeeded")),
            "AllFailed" => t
                .children
                .as_ref()
                .is_some_and(|c| !c.is_empty() && c.iter().all(|p| p == "Failed")),
            _ => return None,
        })
    })
}

/// Evaluates `&&`, `||`, `!` and parentheses over terms, each the text
/// between them, valued by `term` (`None`: not a term it reads).
fn boolean(expression: &str, term: impl Fn(&str) -> Option<bool>) -> Result<bool, ExprError> {
    let tokens = tokens(expression);
    let mut parser = Boolean {
        tokens: &tokens,
        at: 0,
        term: &term,
    };
    match parser.or() {
        Some(v) if parser.at == tokens.len() => Ok(v),
        _ => Err(ExprError::When(format!(
            "cannot read {expression:?}: write terms joined by &&, || and !, with parentheses"
        ))),
    }
}

/// `&&`, `||`, `!` (not `!=`), `(`, `)` and the terms between them; a `!`
/// inside a term, and anything quoted, belongs to the term.
fn tokens(expression: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = expression.trim();
    while !rest.is_empty() {
        let len = if rest.starts_with("&&") || rest.starts_with("||") {
            2
        } else if rest.starts_with(['(', ')']) || (rest.starts_with('!') && !rest.starts_with("!="))
        {
            1
        } else {
            term_len(rest)
        };
        out.push(rest[..len].trim());
        rest = rest[len..].trim_start();
    }
    out
}

/// The length of the term `text` starts with: up to `&&`, `||`, `(` or
/// `)` outside quotes.
fn term_len(text: &str) -> usize {
    let mut quote = None;
    for (i, c) in text.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '(' | ')') if i > 0 => return i,
            (None, _) if text[i..].starts_with("&&") || text[i..].starts_with("||") => return i,
            _ => {}
        }
    }
    text.len()
}

/// A recursive-descent reader: `or := and ("||" and)*`,
/// `and := not ("&&" not)*`, `not := "!" not | "(" or ")" | TERM`.
struct Boolean<'t, F> {
    tokens: &'t [&'t str],
    at: usize,
    term: &'t F,
}

impl<F: Fn(&str) -> Option<bool>> Boolean<'_, F> {
    fn next_is(&mut self, token: &str) -> bool {
        let is = self.tokens.get(self.at) == Some(&token);
        self.at += usize::from(is);
        is
    }

    fn or(&mut self) -> Option<bool> {
        let mut v = self.and()?;
        while self.next_is("||") {
            v |= self.and()?;
        }
        Some(v)
    }

    fn and(&mut self) -> Option<bool> {
        let mut v = self.not()?;
        while self.next_is("&&") {
            v &= self.not()?;
        }
        Some(v)
    }

    fn not(&mut self) -> Option<bool> {
        if self.next_is("!") {
            return self.not().map(|v| !v);
        }
        if self.next_is("(") {
            let v = self.or()?;
            return self.next_is(")").then_some(v);
        }
        let term = self.tokens.get(self.at)?;
        self.at += 1;
        (self.term)(term)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope() -> BTreeMap<String, String> {
        BTreeMap::from([
            ("inputs.parameters.surge".into(), "3".into()),
            ("steps.wait.status".into(), "Failed".into()),
        ])
    }

    #[test]
    fn substitution_fills_names_and_refuses_unknown_ones() {
        assert_eq!(
            substitute(
                "delta {{inputs.parameters.surge}} / {{ steps.wait.status }}",
                &scope()
            ),
            Ok("delta 3 / Failed".into())
        );
        assert_eq!(
            substitute("{{inputs.parameters.nope}}", &scope()),
            Err(ExprError::Unresolved("inputs.parameters.nope".into()))
        );
        // Expressions evaluate as Argo's (see exprlang.rs), errors included.
        assert_eq!(
            substitute("{{= asInt(inputs.parameters.surge) + 1 }}", &scope()),
            Ok("4".into())
        );
        let e = substitute("{{= inputs.parameters.surge > 0 }}", &scope()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "{{=inputs.parameters.surge > 0}}: failed to evaluate expression: invalid operation: > (mismatched types string and int)"
        );
        let v = substitute_json(
            &serde_json::json!({"scale": {"delta": "{{inputs.parameters.surge}}", "n": 1}}),
            &scope(),
        )
        .unwrap();
        assert_eq!(v, serde_json::json!({"scale": {"delta": "3", "n": 1}}));
    }

    #[test]
    fn substitute_with_fills_what_it_knows_and_keeps_the_rest() {
        let known = |name: &str| (name == "inputs.parameters.surge").then(|| "3".to_owned());
        assert_eq!(
            substitute_with(
                "{{inputs.parameters.surge}}/{{ steps.a.status }}/{{= 1 + 1 }}",
                known
            ),
            "3/{{ steps.a.status }}/{{= 1 + 1 }}"
        );
        assert!(has_tags("x {{steps.a.status}}"));
        assert!(!has_tags("x {y}"));
    }

    #[test]
    fn when_possible_is_false_only_whatever_the_unknowns_are() {
        let w = "{{steps.wait.status}} == Succeeded && false == true";
        assert_eq!(when_possible(w), Ok(false));
        let w = "{{steps.wait.status}} == Succeeded && true == true";
        assert_eq!(when_possible(w), Ok(true));
        assert_eq!(
            when_possible("{{steps.a.status}} == Failed || x == y"),
            Ok(true)
        );
        assert_eq!(when_possible("a == b"), Ok(false));
        assert!(when_possible("(a == b").is_err());
    }

    #[test]
    fn references_name_variables_of_tags_and_expressions() {
        let refs = references(
            "{{ inputs.parameters.x }} and {{= asInt(steps['a'].outputs.parameters.n) + 1 }}",
        );
        assert_eq!(
            refs,
            [
                Reference {
                    var: "inputs.parameters.x".into(),
                    expression: false
                },
                Reference {
                    var: "steps.a.outputs.parameters.n".into(),
                    expression: true
                },
            ]
        );
    }

    #[test]
    fn when_compares_strings_with_and_or() {
        assert_eq!(when("Failed == Failed"), Ok(true));
        assert_eq!(when("Failed == Succeeded"), Ok(false));
        assert_eq!(when("Failed != Succeeded"), Ok(true));
        assert_eq!(when("Failed == Failed && true == true"), Ok(true));
        assert_eq!(when("Failed == Failed && false == true"), Ok(false));
        assert_eq!(when("a == b || 'x' == \"x\""), Ok(true));
        assert_eq!(when("true"), Ok(true));
        // Numbers compare as govaluate compares them; see govaluate.rs.
        assert_eq!(when("3 > 2"), Ok(true));
        assert!(when("a-b == a-b").is_err(), "a minus on strings");
    }

    /// govaluate groups with parentheses and negates with `!`.
    #[test]
    fn when_reads_parentheses_and_not() {
        assert_eq!(when("(a == a)"), Ok(true));
        assert_eq!(when("!(a == b) && (x != y || 1 == 2)"), Ok(true));
        assert!(when("(a == a").is_err());
        assert_eq!(when("'a(b) && c!' == \"a(b) && c!\""), Ok(true));
    }

    fn results(list: &[(&str, &str)]) -> BTreeMap<String, TaskResult> {
        list.iter()
            .map(|(t, p)| ((*t).to_owned(), TaskResult::of(p)))
            .collect()
    }

    #[test]
    fn depends_follows_task_results() {
        let phases = results(&[("a", "Succeeded"), ("b", "Failed")]);
        assert_eq!(depends("a", &phases), Ok(true));
        assert_eq!(depends("a && b", &phases), Ok(false));
        assert_eq!(depends("a && b.Failed", &phases), Ok(true));
        assert_eq!(depends("b || a.Failed", &phases), Ok(false));
        assert_eq!(depends("!b", &phases), Ok(true));
        assert!(depends("c", &phases).is_err());
        assert_eq!(depends_on("(a.Succeeded && !b) || c"), ["a", "b", "c"]);
    }

    /// Argo's enhanced depends logic: a bare task means
    /// `(T.Succeeded || T.Skipped || T.Daemoned)`, and parentheses group.
    #[test]
    fn depends_reads_as_argo_does() {
        let phases = results(&[("a", "Skipped"), ("b", "Failed"), ("c", "Succeeded")]);
        assert_eq!(depends("a", &phases), Ok(true));
        assert_eq!(depends("a.Succeeded", &phases), Ok(false));
        assert_eq!(depends("(a || b) && c", &phases), Ok(true));
        assert_eq!(depends("(a.Succeeded || b) && c", &phases), Ok(false));
        assert_eq!(depends("!(b.Failed || a.Succeeded)", &phases), Ok(false));
        assert!(depends("(a && c", &phases).is_err());
        assert!(depends("a.Nope", &phases).is_err());
    }

    /// ancestry.go `expandDependency`, dag.go `evaluateDependsLogic` and
    /// `ValidateTaskResults`: an Omitted task does not satisfy a bare
    /// name, continueOn widens it, loops answer AnySucceeded/AllFailed,
    /// `Completed` is not a task result.
    #[test]
    fn depends_reads_omitted_continue_on_loops_and_refuses_unknown_results() {
        let mut tasks = results(&[("a", "Omitted"), ("b", "Failed"), ("c", "Error")]);
        assert_eq!(depends("a", &tasks), Ok(false));
        assert_eq!(depends("a.Omitted", &tasks), Ok(true));
        assert_eq!(depends("b", &tasks), Ok(false));
        assert_eq!(depends("c.Errored", &tasks), Ok(true));
        if let Some(b) = tasks.get_mut("b") {
            b.continue_failed = true;
        }
        if let Some(c) = tasks.get_mut("c") {
            c.continue_error = true;
        }
        assert_eq!(depends("b && c", &tasks), Ok(true));
        assert_eq!(depends("b.AnySucceeded", &tasks), Ok(false), "not a loop");
        tasks.insert(
            "l".into(),
            TaskResult {
                phase: "Failed".into(),
                children: Some(vec!["Failed".into(), "Succeeded".into()]),
                ..TaskResult::default()
            },
        );
        assert_eq!(depends("l.AnySucceeded", &tasks), Ok(true));
        assert_eq!(depends("l.AllFailed", &tasks), Ok(false));
        assert_eq!(
            invalid_task_result("a.Completed || b"),
            Some("task result 'Completed' for task 'a' is invalid".into())
        );
        assert_eq!(
            invalid_task_result("(a.Succeeded || my-task.Omitted) && b"),
            None
        );
    }
}
