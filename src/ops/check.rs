//! Checks a `plugin: {gameops: {OP: {...}}}` call against the op table
//! ([`super::table`]) without running it: one known op, the arguments it
//! takes, the required ones given, every value without a `{{...}}` of the
//! right type and in range, and only outputs the op gives. `gameops lint`
//! and the runner's pre-check report what it finds.

use serde_json::{Map, Value};

use super::select::Select;
use super::table::{self, OPS_STATES, OpSpec, THEN, Ty};
use super::values;
use crate::registry::filter::Filter;

/// One problem, at a field of the template (`plugin.gameops.scale.delta`,
/// `outputs.parameters.x`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The field, inside the template.
    pub field: String,
    /// What is wrong, and the fix where there is an obvious one.
    pub message: String,
}

/// The problems found so far.
#[derive(Debug, Default)]
struct Problems(Vec<Problem>);

impl Problems {
    fn add(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(Problem {
            field: field.into(),
            message: message.into(),
        });
    }
}

/// `path.key`, or `key` at the top.
pub fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// `a, b, c`, or `none`.
pub fn listing(items: &[&str]) -> String {
    if items.is_empty() {
        "none".into()
    } else {
        items.join(", ")
    }
}

/// ` (did you mean X?)` when a candidate is close to `word`.
pub fn suggest<'c>(word: &str, candidates: impl IntoIterator<Item = &'c str>) -> String {
    let lower = word.to_lowercase();
    candidates
        .into_iter()
        .map(|c| (distance(&lower, &c.to_lowercase()), c))
        .filter(|(d, c)| *d <= (c.chars().count() / 2).min(2) && *c != word)
        .min()
        .map(|(_, c)| format!(" (did you mean {c}?)"))
        .unwrap_or_default()
}

/// Levenshtein distance.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let next = (row[j + 1] + 1)
                .min(row[j] + 1)
                .min(prev + usize::from(ca != *cb));
            prev = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}

/// Whether a value holds a `{{...}}` anywhere (Argo fills it in later, so
/// its type cannot be checked now).
pub fn templated(v: &Value) -> bool {
    match v {
        Value::String(s) => s.contains("{{"),
        Value::Array(items) => items.iter().any(templated),
        Value::Object(map) => map.values().any(templated),
        _ => false,
    }
}

fn blank(v: &Value) -> bool {
    v.is_null() || v.as_str().is_some_and(|s| s.trim().is_empty())
}

/// A Docker image reference (distribution/reference's grammar, as
/// `oci_client::Reference` parses it).
fn is_image(text: &str) -> bool {
    text.trim().parse::<oci_client::Reference>().is_ok()
}

/// Checks `gameops`, the value of a template's `plugin.gameops`, and the
/// output parameters the template declares; fields are the template's.
pub fn plugin_call(gameops: &Value, declared_outputs: &[&str]) -> Vec<Problem> {
    let mut out = Problems::default();
    let ops = table::listing();
    let Some(calls) = gameops.as_object() else {
        out.add(
            "plugin.gameops",
            format!(
                "must be an object naming one op, e.g. {{status: {{gameServerSet: minecraft}}}}; the ops are {ops}"
            ),
        );
        return out.0;
    };
    let (op, args) = match calls.iter().next() {
        Some((op, args)) if calls.len() == 1 => (op.as_str(), args),
        _ => {
            let named: Vec<&str> = calls.keys().map(String::as_str).collect();
            let message = if named.is_empty() {
                format!("names no op; the ops are {ops}")
            } else {
                format!(
                    "names {} ops ({}); a plugin template calls exactly one: split it into one template per op",
                    named.len(),
                    named.join(", ")
                )
            };
            out.add("plugin.gameops", message);
            return out.0;
        }
    };
    let field = format!("plugin.gameops.{op}");
    let Some(spec) = table::find(op) else {
        out.add(
            field,
            format!(
                "{op} is not an op of the gameops plugin{}; the ops are {ops}",
                suggest(op, table::names())
            ),
        );
        return out.0;
    };
    arguments(spec, args, &field, &mut out);
    for name in declared_outputs {
        if !spec.outputs.contains(name) {
            out.add(
                format!("outputs.parameters.{name}"),
                format!(
                    "{op} gives no output {name}{}; its outputs: {}",
                    suggest(name, spec.outputs.iter().copied()),
                    spec.outputs.join(", ")
                ),
            );
        }
    }
    out.0
}

/// The arguments of one op: known, typed, the required ones given, in
/// range, and the op's own rules between them.
fn arguments(spec: &OpSpec, args: &Value, field: &str, out: &mut Problems) {
    let Some(map) = args.as_object() else {
        let example = if spec.on_set {
            "{gameServerSet: minecraft}"
        } else {
            "{repository: registry.example.com/game/server}"
        };
        out.add(
            field,
            format!("must be an object of arguments, e.g. {example}"),
        );
        return;
    };
    known_and_typed(spec, map, field, out);
    required(spec, map, field, out);
    ranges(spec, map, field, out);
    op_rules(spec, map, field, out);
}

/// As the plugin reads them: for ops on a set an empty string is an
/// argument not given (a template cannot leave a key out); the registry
/// ops take what is there.
fn given(spec: &OpSpec, map: &Map<String, Value>, key: &str) -> bool {
    map.get(key)
        .is_some_and(|v| if spec.on_set { !blank(v) } else { !v.is_null() })
}

/// Every key is an argument of the op, with a value of its type.
fn known_and_typed(spec: &OpSpec, map: &Map<String, Value>, field: &str, out: &mut Problems) {
    let op = spec.name;
    let known: Vec<&str> = spec.all_args().map(|a| a.name).collect();
    for (key, value) in map {
        let arg_field = join(field, key);
        match spec.all_args().find(|a| a.name == key.as_str()) {
            None => out.add(
                arg_field,
                format!(
                    "{op} takes no argument {key}{}; it takes {}",
                    suggest(key, known.iter().copied()),
                    listing(&known)
                ),
            ),
            Some(_) if !spec.on_set && value.as_str().is_some_and(|v| v.trim().is_empty()) => {
                out.add(
                    arg_field,
                    "is empty: give a value or leave the argument out",
                );
            }
            // An opsState OKG does not define, asked for in so many words.
            Some(arg)
                if arg.ty == Ty::OpsState
                    && map
                        .get("allowCustomState")
                        .filter(|v| !templated(v))
                        .and_then(literal_flag)
                        == Some(true) => {}
            Some(arg) => check_value(arg.ty, value, &arg_field, out),
        }
    }
}

/// `gameServerSet` for an op on a set, and one of each exactly-one group;
/// at most one of each at-most-one group.
fn required(spec: &OpSpec, map: &Map<String, Value>, field: &str, out: &mut Problems) {
    let op = spec.name;
    if spec.on_set && !given(spec, map, "gameServerSet") {
        out.add(
            join(field, "gameServerSet"),
            "is missing: name the GameServerSet to act on",
        );
    }
    for group in spec.exactly_one {
        let n = group.iter().filter(|k| given(spec, map, k)).count();
        match (group, n) {
            ([one], 0) => out.add(join(field, one), format!("is missing: {op} needs {one}")),
            (_, 0) => out.add(field, format!("needs one of {}", group.join(" or "))),
            (_, 1) => {}
            _ => out.add(
                field,
                format!("takes exactly one of {}, not several", group.join(", ")),
            ),
        }
    }
}

/// Literal numbers within their argument's range.
fn ranges(spec: &OpSpec, map: &Map<String, Value>, field: &str, out: &mut Problems) {
    for arg in spec.args {
        let Some(range) = arg.range else { continue };
        if let Some(n) = map
            .get(arg.name)
            .filter(|v| !templated(v))
            .and_then(literal_number)
            && (n < range.min || n > range.max)
        {
            let why = range.why.replace("{max}", &range.max.to_string());
            out.add(join(field, arg.name), format!("is {n}: {why}"));
        }
    }
}

/// The rules between arguments: at-most-one groups, and each op's own.
fn op_rules(spec: &OpSpec, map: &Map<String, Value>, field: &str, out: &mut Problems) {
    for group in spec.at_most_one {
        if group.iter().filter(|k| given(spec, map, k)).count() > 1 {
            out.add(field, format!("takes {}, not both", group.join(" or ")));
        }
    }
    let literal = |k: &str| map.get(k).filter(|v| !templated(v));
    match spec.op {
        table::Op::Drain => {
            let scale_down = literal("scaleDown").and_then(literal_flag) == Some(true);
            let then = literal("then").and_then(Value::as_str).map(str::trim);
            if scale_down && then == Some("Kill") {
                out.add(
                    join(field, "scaleDown"),
                    "goes with then: WaitToBeDeleted; with then: Kill the controller already lowers spec.replicas for each killed server (drop scaleDown)",
                );
            }
        }
        table::Op::ResolveTag if given(spec, map, "environment") && given(spec, map, "filter") => {
            out.add(
                join(field, "filter"),
                "goes with repository; an environment has its own filter in gameops.yaml",
            );
        }
        _ => {}
    }
}

/// A literal whole number (or a string of one), when it is one.
fn literal_number(v: &Value) -> Option<i128> {
    match v {
        Value::Number(n) => n
            .as_i64()
            .map(i128::from)
            .or_else(|| n.as_u64().map(i128::from)),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A literal boolean (or a string of one), when it is one.
fn literal_flag(v: &Value) -> Option<bool> {
    values::flag(v.clone()).ok().flatten()
}

/// Checks the parts of `value` without a `{{...}}` against `ty`.
fn check_value(ty: Ty, value: &Value, field: &str, out: &mut Problems) {
    match ty {
        _ if value.is_null() => {}
        Ty::Select => check_select(value, field, out),
        Ty::Filter => check_filter(value, field, out),
        Ty::Entries => check_entries(value, field, out),
        _ if templated(value) => {}
        _ => {
            if let Some(message) = literal_problem(ty, value) {
                out.add(field, message);
            }
        }
    }
}

/// What is wrong with a literal `value` for an argument of type `ty`.
fn literal_problem(ty: Ty, value: &Value) -> Option<String> {
    let shown = value.to_string();
    let one_of = |allowed: &[&str]| match value.as_str().map(str::trim) {
        Some("") => None,
        Some(v) if allowed.contains(&v) => None,
        _ => Some(format!(
            "{shown} is not {}{}",
            allowed.join(" or "),
            value
                .as_str()
                .map(|v| suggest(v, allowed.iter().copied()))
                .unwrap_or_default()
        )),
    };
    match ty {
        Ty::Text => (!value.is_string()).then(|| {
            format!(
                "must be a string, not {shown} (quote it: \"{}\")",
                shown.trim_matches('"')
            )
        }),
        _ if blank(value) && matches!(ty, Ty::Int | Ty::Whole | Ty::Flag) => None,
        Ty::Int => values::integer(value.clone())
            .err()
            .map(|e| format!("{e}, not {shown}")),
        Ty::Whole => values::whole(value.clone())
            .err()
            .map(|e| format!("{e}, not {shown}")),
        Ty::Flag => values::flag(value.clone())
            .err()
            .map(|e| format!("{e}, not {shown}")),
        Ty::Image => match value.as_str() {
            None => Some(format!(
                "must be an image reference (a string), not {shown}"
            )),
            Some(text) if !text.trim().is_empty() && !is_image(text) => Some(format!(
                "{text:?} is not an image reference, e.g. registry.example.com/game/server:v1.2.3"
            )),
            Some(_) => None,
        },
        Ty::OpsState => one_of(&OPS_STATES),
        Ty::Then => one_of(&THEN),
        Ty::Select | Ty::Filter | Ty::Entries | Ty::Ordinals | Ty::Labels => None,
    }
}

/// `CONTAINER/IMAGE` entries: a comma-separated string or a list of
/// strings; entries with a `{{...}}` are not checked.
fn check_entries(value: &Value, field: &str, out: &mut Problems) {
    let raw: Vec<&str> = match value {
        Value::String(s) => vec![s.as_str()],
        Value::Array(items) => {
            let mut raw = Vec::new();
            for item in items {
                match item.as_str() {
                    Some(s) => raw.push(s),
                    None => {
                        out.add(
                            field,
                            format!("expected a string (entries separated by commas) or a list of strings; {item} is neither"),
                        );
                        return;
                    }
                }
            }
            if raw.is_empty() {
                out.add(
                    field,
                    "is empty: give CONTAINER/IMAGE, e.g. minecraft/registry.example.com/game:v2",
                );
            }
            raw
        }
        other => {
            out.add(
                field,
                format!("expected a string (entries separated by commas) or a list of strings, not {other}"),
            );
            return;
        }
    };
    for entry in raw
        .iter()
        .filter(|e| !e.contains("{{"))
        .flat_map(|e| e.split(','))
        .map(str::trim)
        .filter(|e| !e.is_empty())
    {
        match entry.split_once('/') {
            Some((container, image)) if !container.is_empty() && !image.is_empty() => {
                if !is_image(image) {
                    out.add(
                        field,
                        format!(
                            "entry {entry:?}: {image:?} is not an image reference (CONTAINER/IMAGE, e.g. minecraft/registry.example.com/game:v2)"
                        ),
                    );
                }
            }
            _ => out.add(
                field,
                format!(
                    "entry {entry:?} is not CONTAINER/IMAGE (the text before the first / names the container), e.g. minecraft/{entry}"
                ),
            ),
        }
    }
}

/// `setOpsState.select`: known fields, each checked as the plugin parses
/// it ([`Select`]) unless it holds a `{{...}}`.
fn check_select(value: &Value, field: &str, out: &mut Problems) {
    let Some(map) = value.as_object() else {
        out.add(
            field,
            "must be an object, e.g. {opsState: None, notImage: CONTAINER/NEW-IMAGE} ({} selects every server)",
        );
        return;
    };
    for (key, v) in map {
        let key_field = join(field, key);
        let keys = || Select::ARGS.iter().map(|a| a.name);
        if !keys().any(|k| k == key) {
            out.add(
                key_field,
                format!(
                    "select has no field {key}{}; it has {}",
                    suggest(key, keys()),
                    keys().collect::<Vec<_>>().join(", ")
                ),
            );
            continue;
        }
        match key.as_str() {
            "notImage" | "image" => {
                if !v.is_null() {
                    check_entries(v, &key_field, out);
                }
                continue;
            }
            "opsState" if !templated(v) && v.is_string() => {
                if blank(v) {
                    out.add(key_field, "is empty: give a value or leave the field out");
                } else {
                    check_value(Ty::OpsState, v, &key_field, out);
                }
                continue;
            }
            _ => {}
        }
        if templated(v) {
            continue;
        }
        let mut one = Map::new();
        one.insert(key.clone(), v.clone());
        let parsed = serde_json::from_value::<Select>(Value::Object(one))
            .map_err(|e| e.to_string())
            .and_then(|select| select.compile(field, &[]).map(|_| ()));
        if let Err(message) = parsed {
            let message = message
                .strip_prefix(&key_field)
                .map_or(message.as_str(), str::trim_start)
                .to_owned();
            out.add(key_field, message);
        }
    }
}

/// `resolveTag.filter`: deserialized as `gameops.yaml` filters are, and
/// compiled (regexes, semver constraint, extract) when it holds no
/// `{{...}}`.
fn check_filter(value: &Value, field: &str, out: &mut Problems) {
    if !value.is_object() {
        out.add(
            field,
            "must be an object, e.g. {semver: \">=1.0.0\", includeTag: \"^v\"}",
        );
        return;
    }
    let parsed = serde_json::from_value::<Filter>(without_templated(value));
    match parsed {
        Err(e) => out.add(field, e.to_string()),
        Ok(filter) if !templated(value) => {
            if let Err(e) = filter.compile() {
                out.add(join(field, e.field()), e.message());
            }
        }
        Ok(_) => {}
    }
}

/// `value` without the object fields that hold a `{{...}}`.
fn without_templated(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(_, v)| v.is_object() || !templated(v))
                .map(|(k, v)| (k.clone(), without_templated(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}
