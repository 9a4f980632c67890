//! Label selectors (`=`, `==`, `!=`, `in`, `notin`, exists, `!`exists) and
//! field selectors (`=`, `==`, `!=` on a resource's selectable fields), parsed
//! once per request and matched against stored objects.

use serde_json::Value;

use super::status::ApiError;

#[derive(Debug, Clone, PartialEq)]
enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

/// A parsed label selector; the empty selector matches everything.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LabelSelector(Vec<Requirement>);

/// Splits at commas that are not inside parentheses.
fn split_top(s: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0i32, 0usize);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
        .into_iter()
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect()
}

fn bad(selector: &str, why: &str) -> ApiError {
    ApiError::bad_request(format!(
        "unable to parse requirement: invalid label selector \"{selector}\": {why}"
    ))
}

fn set_values(rest: &str, selector: &str) -> Result<Vec<String>, ApiError> {
    let inner = rest
        .trim()
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(|| bad(selector, "expected a parenthesised list of values"))?;
    inner
        .split(',')
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(|v| check_value(v, selector))
        .collect()
}

fn check_key(key: &str, selector: &str) -> Result<String, ApiError> {
    let valid = !key.is_empty()
        && key.len() <= 317
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'));
    if valid {
        Ok(key.to_owned())
    } else {
        Err(bad(selector, &format!("invalid label key \"{key}\"")))
    }
}

/// A label value as apimachinery's selector parser accepts it
/// (labels/selector.go `validateLabelValue`: empty, or at most 63
/// alphanumerics, `-`, `_`, `.`, starting and ending alphanumeric).
fn check_value(value: &str, selector: &str) -> Result<String, ApiError> {
    if crate::api::names::is_label_value(value) {
        Ok(value.to_owned())
    } else {
        Err(bad(
            selector,
            &format!(
                "invalid label value: \"{value}\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"
            ),
        ))
    }
}

impl LabelSelector {
    /// Parses `labelSelector`.
    pub fn parse(selector: &str) -> Result<Self, ApiError> {
        let mut reqs = Vec::new();
        for part in split_top(selector) {
            let req = if let Some(key) = part.strip_prefix('!') {
                Requirement::NotExists(check_key(key.trim(), selector)?)
            } else if let Some((k, v)) = part.split_once("!=") {
                Requirement::NotEquals(
                    check_key(k.trim(), selector)?,
                    check_value(v.trim(), selector)?,
                )
            } else if let Some((k, v)) = part.split_once("==").or_else(|| part.split_once('=')) {
                Requirement::Equals(
                    check_key(k.trim(), selector)?,
                    check_value(v.trim(), selector)?,
                )
            } else if let Some((k, rest)) = part.split_once(" notin ") {
                Requirement::NotIn(check_key(k.trim(), selector)?, set_values(rest, selector)?)
            } else if let Some((k, rest)) = part.split_once(" in ") {
                Requirement::In(check_key(k.trim(), selector)?, set_values(rest, selector)?)
            } else {
                Requirement::Exists(check_key(part, selector)?)
            };
            reqs.push(req);
        }
        Ok(Self(reqs))
    }

    /// Whether an object's `metadata.labels` satisfy every requirement.
    pub fn matches(&self, object: &Value) -> bool {
        let labels = object
            .pointer("/metadata/labels")
            .and_then(Value::as_object);
        let get = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
        self.0.iter().all(|r| match r {
            Requirement::Equals(k, v) => get(k) == Some(v.as_str()),
            Requirement::NotEquals(k, v) => get(k) != Some(v.as_str()),
            Requirement::In(k, vs) => get(k).is_some_and(|l| vs.iter().any(|v| v == l)),
            Requirement::NotIn(k, vs) => get(k).is_none_or(|l| vs.iter().all(|v| v != l)),
            Requirement::Exists(k) => get(k).is_some(),
            Requirement::NotExists(k) => get(k).is_none(),
        })
    }
}

/// A parsed field selector over a resource's selectable fields.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FieldSelector(Vec<(String, bool, String)>);

/// A field's value as field selectors compare it: strings as they are,
/// numbers and booleans in their JSON text, absent as empty.
pub fn field_value(object: &Value, field: &str) -> String {
    let pointer = format!("/{}", field.replace('.', "/"));
    match object.pointer(&pointer) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

impl FieldSelector {
    /// Parses `fieldSelector`, accepting only `allowed` fields.
    pub fn parse(selector: &str, allowed: &[&str], resource: &str) -> Result<Self, ApiError> {
        let mut reqs = Vec::new();
        for part in split_top(selector) {
            let (field, equal, value) = if let Some((f, v)) = part.split_once("!=") {
                (f, false, v)
            } else if let Some((f, v)) = part.split_once("==") {
                (f, true, v)
            } else if let Some((f, v)) = part.split_once('=') {
                (f, true, v)
            } else {
                return Err(ApiError::bad_request(format!(
                    "invalid field selector \"{selector}\": \"{part}\" is not of the form field=value or field!=value"
                )));
            };
            let field = field.trim();
            if !allowed.contains(&field) {
                return Err(ApiError::bad_request(format!(
                    "field label not supported: \"{field}\" (for {resource} the supported fields are {})",
                    allowed.join(", ")
                )));
            }
            reqs.push((field.to_owned(), equal, value.trim().to_owned()));
        }
        Ok(Self(reqs))
    }

    /// Whether the object satisfies every requirement.
    pub fn matches(&self, object: &Value) -> bool {
        self.0
            .iter()
            .all(|(field, equal, value)| (field_value(object, field) == *value) == *equal)
    }
}

/// A request's `labelSelector` and `fieldSelector` together.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    labels: LabelSelector,
    fields: FieldSelector,
}

impl Selection {
    /// Parses a request's selectors for resource `def`.
    pub fn parse(
        def: &super::resources::ResourceDef,
        params: &super::request::Params,
    ) -> Result<Self, ApiError> {
        Ok(Self {
            labels: LabelSelector::parse(params.label_selector.as_deref().unwrap_or(""))?,
            fields: FieldSelector::parse(
                params.field_selector.as_deref().unwrap_or(""),
                &def.selectable_fields,
                &def.qualified(),
            )?,
        })
    }

    /// Whether the object satisfies both selectors.
    pub fn matches(&self, object: &Value) -> bool {
        self.labels.matches(object) && self.fields.matches(object)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj() -> Value {
        json!({"metadata": {"name": "m-0", "namespace": "default",
            "labels": {"game.kruise.io/owner-gss": "m", "tier": "gold"}},
            "spec": {"opsState": "Allocated", "networkDisabled": false}})
    }

    #[test]
    fn label_operators() {
        let cases = [
            ("", true),
            ("game.kruise.io/owner-gss=m", true),
            ("game.kruise.io/owner-gss==m", true),
            ("game.kruise.io/owner-gss=x", false),
            ("tier!=gold", false),
            ("tier!=silver", true),
            ("missing!=x", true),
            ("tier in (silver, gold)", true),
            ("tier in (silver)", false),
            ("tier notin (silver)", true),
            ("tier notin (gold,silver)", false),
            ("missing notin (x)", true),
            ("tier", true),
            ("missing", false),
            ("!missing", true),
            ("!tier", false),
            ("tier in (gold),game.kruise.io/owner-gss=m", true),
            ("tier in (gold),game.kruise.io/owner-gss=x", false),
        ];
        for (sel, want) in cases {
            assert_eq!(
                LabelSelector::parse(sel).unwrap().matches(&obj()),
                want,
                "{sel}"
            );
        }
    }

    #[test]
    fn bad_label_selector_is_a_bad_request() {
        let err = LabelSelector::parse("tier in gold").unwrap_err();
        assert_eq!(err.code.as_u16(), 400);
        assert!(LabelSelector::parse("a b c").is_err());
        // apimachinery's parser: `a===b` and values with other characters.
        for bad in ["a===b", "a=b c", "a!=-x", "a in (x,y z)", "a=b!"] {
            assert_eq!(
                LabelSelector::parse(bad).unwrap_err().code.as_u16(),
                400,
                "{bad}"
            );
        }
        assert!(LabelSelector::parse("a=,b==x.y_z-1,c in (p, q)").is_ok());
    }

    #[test]
    fn field_selectors() {
        let allowed = ["metadata.name", "spec.opsState", "spec.networkDisabled"];
        let m = |s: &str| {
            FieldSelector::parse(s, &allowed, "gameservers")
                .unwrap()
                .matches(&obj())
        };
        assert!(m("metadata.name=m-0"));
        assert!(m("spec.opsState==Allocated"));
        assert!(!m("spec.opsState!=Allocated"));
        assert!(m("spec.opsState!=None,metadata.name=m-0"));
        assert!(m("spec.networkDisabled=false"));
        let err = FieldSelector::parse("spec.bogus=1", &allowed, "gameservers").unwrap_err();
        assert!(
            err.message
                .contains("field label not supported: \"spec.bogus\"")
        );
    }
}
