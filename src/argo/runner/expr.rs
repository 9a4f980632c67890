//! Argo's template expressions as the runner evaluates them: `{{name}}`
//! substitution, `when` conditions (the govaluate subset Argo templates
//! use: `==`, `!=`, `&&`, `||`, parentheses-free, operands compared as
//! strings once quotes are dropped) and DAG `depends` (`a`, `a.Succeeded`,
//! `a.Failed`, `a.Skipped`, `a.Errored`, joined by `&&`/`||`, `!`).

use std::collections::BTreeMap;

use regex::Regex;

/// Why an expression cannot be evaluated.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ExprError {
    /// A `{{…}}` reference with nothing behind it.
    #[error("{{{{{0}}}}} does not resolve to anything here")]
    Unresolved(String),
    /// A `when` the runner cannot read.
    #[error("cannot evaluate when: {0:?} (use A == B or A != B, joined by && or ||)")]
    When(String),
}

fn pattern() -> &'static Regex {
    static RE: std::sync::OnceLock<Regex> = std::sync::OnceLock::new();
    RE.get_or_init(|| Regex::new(r"\{\{\s*([^{}]+?)\s*\}\}").unwrap_or_else(|_| unreachable!()))
}

/// Replaces every `{{name}}` in `text` from `scope`; a name not in scope is
/// an error.
pub fn substitute(text: &str, scope: &BTreeMap<String, String>) -> Result<String, ExprError> {
    let mut error = None;
    let out = pattern().replace_all(text, |c: &regex::Captures<'_>| {
        let name = &c[1];
        match scope.get(name) {
            Some(v) => v.clone(),
            None => {
                error.get_or_insert_with(|| ExprError::Unresolved(name.to_owned()));
                String::new()
            }
        }
    });
    match error {
        Some(e) => Err(e),
        None => Ok(out.into_owned()),
    }
}

/// [`substitute`] over every string inside a JSON value.
pub fn substitute_json(
    value: &serde_json::Value,
    scope: &BTreeMap<String, String>,
) -> Result<serde_json::Value, ExprError> {
    use serde_json::Value;
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

fn operand(s: &str) -> String {
    let s = s.trim();
    let unquoted = s
        .strip_prefix('"')
        .and_then(|x| x.strip_suffix('"'))
        .or_else(|| s.strip_prefix('\'').and_then(|x| x.strip_suffix('\'')));
    unquoted.unwrap_or(s).to_owned()
}

/// Evaluates an already substituted `when`.
pub fn when(expression: &str) -> Result<bool, ExprError> {
    let bad = || ExprError::When(expression.to_owned());
    let mut any = false;
    for alternative in expression.split("||") {
        let mut all = true;
        for term in alternative.split("&&") {
            let term = term.trim();
            let holds = if let Some((a, b)) = term.split_once("!=") {
                operand(a) != operand(b)
            } else if let Some((a, b)) = term.split_once("==") {
                operand(a) == operand(b)
            } else {
                match operand(term).as_str() {
                    "true" => true,
                    "false" => false,
                    _ => return Err(bad()),
                }
            };
            all &= holds;
        }
        any |= all;
    }
    Ok(any)
}

/// Evaluates a DAG `depends` given each finished task's phase
/// (`Succeeded`, `Failed`, `Skipped`, `Error`).
pub fn depends(expression: &str, phases: &BTreeMap<String, String>) -> Result<bool, ExprError> {
    let bad = || ExprError::When(expression.to_owned());
    let mut any = false;
    for alternative in expression.split("||") {
        let mut all = true;
        for term in alternative.split("&&") {
            let term = term
                .trim()
                .trim_start_matches('(')
                .trim_end_matches(')')
                .trim();
            let (negate, term) = match term.strip_prefix('!') {
                Some(rest) => (true, rest.trim()),
                None => (false, term),
            };
            let (task, result) = term.split_once('.').unwrap_or((term, "Succeeded"));
            let phase = phases.get(task).ok_or_else(bad)?;
            let holds = match result {
                "Succeeded" => phase == "Succeeded",
                "Failed" => phase == "Failed",
                "Errored" => phase == "Error",
                "Skipped" => phase == "Skipped",
                "Completed" => phase == "Succeeded" || phase == "Failed",
                "Daemoned" => false,
                "AnySucceeded" => phase == "Succeeded",
                "AllFailed" => phase == "Failed",
                _ => return Err(bad()),
            };
            all &= holds != negate;
        }
        any |= all;
    }
    Ok(any)
}

/// The tasks a `depends` expression names.
pub fn depends_on(expression: &str) -> Vec<String> {
    expression
        .split(['&', '|', '(', ')', '!', ' '])
        .filter(|t| !t.is_empty())
        .map(|t| t.split('.').next().unwrap_or(t).to_owned())
        .collect()
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
        let v = substitute_json(
            &serde_json::json!({"scale": {"delta": "{{inputs.parameters.surge}}", "n": 1}}),
            &scope(),
        )
        .unwrap();
        assert_eq!(v, serde_json::json!({"scale": {"delta": "3", "n": 1}}));
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
        assert!(when("3 > 2").is_err());
    }

    #[test]
    fn depends_follows_task_results() {
        let phases = BTreeMap::from([
            ("a".to_owned(), "Succeeded".to_owned()),
            ("b".to_owned(), "Failed".to_owned()),
        ]);
        assert_eq!(depends("a", &phases), Ok(true));
        assert_eq!(depends("a && b", &phases), Ok(false));
        assert_eq!(depends("a && b.Failed", &phases), Ok(true));
        assert_eq!(depends("b || a.Failed", &phases), Ok(false));
        assert_eq!(depends("!b", &phases), Ok(true));
        assert!(depends("c", &phases).is_err());
        assert_eq!(depends_on("(a.Succeeded && !b) || c"), ["a", "b", "c"]);
    }
}
