//! Argument values as Argo templates write them. A parameter substituted
//! into a template (`count: "{{inputs.parameters.count}}"`) is always a
//! string, so numbers and booleans are taken as JSON numbers / booleans or
//! as strings spelling one; lists are taken as JSON arrays or as
//! comma-separated strings.

use serde::de::Error;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// An optional scalar: absent or `null` is `None`; else what `read` makes
/// of the value, or the error `expected`.
fn scalar<'de, D: Deserializer<'de>, T>(
    d: D,
    read: impl FnOnce(Value) -> Option<T>,
    expected: &str,
) -> Result<Option<T>, D::Error> {
    match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => Ok(None),
        Some(v) => read(v).map(Some).ok_or_else(|| D::Error::custom(expected)),
    }
}

/// A whole number, or a string of one (`3` or `"3"`).
pub fn whole<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    let read = |v| match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    };
    scalar(d, read, "expected a whole number such as 3 (or \"3\")")
}

/// A signed whole number, or a string of one (`-2` or `"-2"`).
pub fn integer<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    let read = |v| match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    };
    scalar(
        d,
        read,
        "expected a whole number such as 3 or -2 (or \"3\")",
    )
}

/// A boolean, or a string of one (`true` or `"true"`).
pub fn flag<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    let read = |v| match v {
        Value::Bool(b) => Some(b),
        Value::String(s) => match s.trim() {
            "true" | "True" => Some(true),
            "false" | "False" => Some(false),
            _ => None,
        },
        _ => None,
    };
    scalar(d, read, "expected true or false")
}

/// A list of strings: a JSON array, or one string of comma-separated
/// entries. Entries are trimmed; empty ones are dropped.
pub fn list<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    let wrong =
        || D::Error::custom("expected a string (entries separated by commas) or a list of strings");
    let raw: Vec<String> = match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) => vec![s],
        Some(Value::Array(items)) => items
            .into_iter()
            .map(|i| match i {
                Value::String(s) => Ok(s),
                _ => Err(wrong()),
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(wrong()),
    };
    Ok(Some(
        raw.iter()
            .flat_map(|s| s.split(','))
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
    ))
}

/// Ordinals: a number, a list of numbers or ranges (`[1, "3-5"]`), or a
/// string of them separated by commas (`"1,3-5"`).
pub fn ordinals<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u64>>, D::Error> {
    let wrong = |what: &str| {
        D::Error::custom(format!(
            "expected ordinals such as [1, 2], \"1,2\" or \"3-5\"; {what} is not one"
        ))
    };
    let entries: Vec<String> = match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Array(items)) => items
            .into_iter()
            .map(|i| match i {
                Value::String(s) => Ok(s),
                Value::Number(n) => Ok(n.to_string()),
                other => Err(wrong(&other.to_string())),
            })
            .collect::<Result<_, _>>()?,
        Some(Value::String(s)) => vec![s],
        Some(Value::Number(n)) => vec![n.to_string()],
        Some(other) => return Err(wrong(&other.to_string())),
    };
    let mut out = Vec::new();
    for entry in entries.iter().flat_map(|e| e.split(',')).map(str::trim) {
        if entry.is_empty() {
            continue;
        }
        let parse = |s: &str| {
            s.trim()
                .parse::<u64>()
                .map_err(|_| wrong(&format!("{entry:?}")))
        };
        match entry.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (parse(a)?, parse(b)?);
                if a > b || b - a > 100_000 {
                    return Err(wrong(&format!("{entry:?}")));
                }
                out.extend(a..=b);
            }
            None => out.push(parse(entry)?),
        }
    }
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[derive(Debug, Deserialize)]
    struct A {
        #[serde(default, deserialize_with = "whole")]
        n: Option<u64>,
        #[serde(default, deserialize_with = "flag")]
        b: Option<bool>,
        #[serde(default, deserialize_with = "list")]
        l: Option<Vec<String>>,
        #[serde(default, deserialize_with = "ordinals")]
        ids: Option<Vec<u64>>,
    }

    #[test]
    fn numbers_flags_and_lists_as_templates_write_them() {
        let a: A =
            serde_json::from_value(json!({"n": "3", "b": "true", "l": "x, y,,z", "ids": "1,3-5"}))
                .unwrap();
        assert_eq!((a.n, a.b), (Some(3), Some(true)));
        assert_eq!(a.l.unwrap(), ["x", "y", "z"]);
        assert_eq!(a.ids.unwrap(), [1, 3, 4, 5]);
        let a: A = serde_json::from_value(
            json!({"n": 4, "b": false, "l": ["x", "y,w"], "ids": [0, "2", "7-8"]}),
        )
        .unwrap();
        assert_eq!((a.n, a.b), (Some(4), Some(false)));
        assert_eq!(a.l.unwrap(), ["x", "y", "w"]);
        assert_eq!(a.ids.unwrap(), [0, 2, 7, 8]);
        let a: A = serde_json::from_value(json!({"ids": 2})).unwrap();
        assert_eq!(a.ids.unwrap(), [2]);
        let a: A = serde_json::from_value(json!({})).unwrap();
        assert_eq!((a.n, a.b, a.l, a.ids), (None, None, None, None));
        for bad in [
            json!({"n": "three"}),
            json!({"n": -1}),
            json!({"n": 1.5}),
            json!({"b": "yes"}),
            json!({"l": 3}),
            json!({"l": [1]}),
            json!({"ids": "x"}),
            json!({"ids": "5-3"}),
            json!({"ids": [true]}),
        ] {
            let e = serde_json::from_value::<A>(bad.clone()).unwrap_err();
            assert!(e.to_string().contains("expected"), "{bad}: {e}");
        }
    }
}
