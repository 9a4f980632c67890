//! Checks the Argo WorkflowTemplates in `workflow-templates/` and the
//! example Workflows in `workflow-templates/examples/`.
//!
//! Every file must pass Argo's own JSON schema
//! (`../shared/reference/argo-workflows/schema.json`), made strict: every
//! object schema that lists properties rejects unknown keys, so a misspelt
//! field fails here instead of being dropped by the API server.
//!
//! On top of the schema, the templates must make sense together: the Argo
//! UI can explain them (title, description, a description for every
//! argument), every plugin template calls a known op of the gameops
//! executor plugin with that op's arguments and outputs (README "Ops"),
//! every `template`, `templateRef`, `{{steps.X...}}`, `{{tasks.X...}}`,
//! `{{inputs.parameters.X}}` and `{{workflow.parameters.X}}` resolves, and
//! only the Argo features the local runner executes are used.

mod common;

use common::schema::close_objects;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use regex::Regex;
use serde_json::{Value, json};

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/workflow-templates");
const SCHEMA: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/reference/argo-workflows/schema.json"
);
const API_VERSION: &str = "argoproj.io/v1alpha1";
const TITLE: &str = "workflows.argoproj.io/title";
const DESCRIPTION: &str = "workflows.argoproj.io/description";

// ---------------------------------------------------------------------------
// The executor plugin's ops (README "Executor plugin" / "Ops")

/// One op: its arguments, the groups of which exactly one must be given,
/// and its outputs.
struct Op {
    name: &'static str,
    /// Takes `gameServerSet` (and `namespace`, `cluster`).
    on_set: bool,
    args: &'static [&'static str],
    one_of: &'static [&'static [&'static str]],
    outputs: &'static [&'static str],
}

const SET_ARGS: [&str; 3] = ["gameServerSet", "namespace", "cluster"];
const SELECT_KEYS: [&str; 7] = [
    "opsState",
    "notImage",
    "image",
    "ids",
    "currentState",
    "labels",
    "networkDisabled",
];

const OPS: [Op; 9] = [
    Op {
        name: "patchImage",
        on_set: true,
        args: &["image", "container"],
        one_of: &[&["image"]],
        outputs: &["previousImage", "revision"],
    },
    Op {
        name: "scale",
        on_set: true,
        args: &["replicas", "delta"],
        one_of: &[&["replicas", "delta"]],
        outputs: &["replicas"],
    },
    Op {
        name: "waitReady",
        on_set: true,
        args: &[
            "image",
            "count",
            "percent",
            "timeoutSeconds",
            "crashThreshold",
        ],
        one_of: &[&["count", "percent"], &["timeoutSeconds"]],
        outputs: &["ready"],
    },
    Op {
        name: "setOpsState",
        on_set: true,
        args: &["select", "opsState", "limit", "dryRun"],
        one_of: &[&["select"], &["opsState"]],
        outputs: &["count", "names"],
    },
    Op {
        name: "drain",
        on_set: true,
        args: &["notImage", "image", "timeoutSeconds", "then", "scaleDown"],
        one_of: &[&["notImage", "image"], &["timeoutSeconds"], &["then"]],
        outputs: &["drained", "remaining"],
    },
    Op {
        name: "rollback",
        on_set: true,
        args: &["toImage", "steps", "container"],
        one_of: &[],
        outputs: &["image", "previousImage", "revision"],
    },
    Op {
        name: "status",
        on_set: true,
        args: &[],
        one_of: &[],
        outputs: &["summary", "total", "ready"],
    },
    Op {
        name: "resolveTag",
        on_set: false,
        args: &["environment", "repository", "filter"],
        one_of: &[&["environment", "repository"]],
        outputs: &["tag", "digest", "image"],
    },
    Op {
        name: "promoteTag",
        on_set: false,
        args: &["repository", "from", "to"],
        one_of: &[&["repository"], &["from"], &["to"]],
        outputs: &["image", "digest", "previousDigest", "changed"],
    },
];

// ---------------------------------------------------------------------------
// Loading

/// One YAML file.
struct Doc {
    file: String,
    value: Value,
}

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    files.sort();
    files
}

fn load(dir: &Path) -> Vec<Doc> {
    yaml_files(dir)
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).unwrap();
            let value: Value = serde_yaml_ng::from_str(&text)
                .unwrap_or_else(|e| panic!("{}: not YAML: {e}", path.display()));
            let file = path.strip_prefix(DIR).unwrap().display().to_string();
            Doc { file, value }
        })
        .collect()
}

fn templates_dir() -> Vec<Doc> {
    load(Path::new(DIR))
}

fn examples_dir() -> Vec<Doc> {
    load(&Path::new(DIR).join("examples"))
}

/// The WorkflowTemplates by name.
type Library = BTreeMap<String, Value>;

fn library(docs: &[Doc]) -> Library {
    docs.iter()
        .map(|d| (s(&d.value["metadata"]["name"]).to_owned(), d.value.clone()))
        .collect()
}

// ---------------------------------------------------------------------------
// Small helpers over serde_json values

fn arr(v: &Value) -> &[Value] {
    v.as_array().map(Vec::as_slice).unwrap_or(&[])
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}

fn keys(v: &Value) -> Vec<&str> {
    v.as_object()
        .map(|o| o.keys().map(String::as_str).collect())
        .unwrap_or_default()
}

/// The `name`s of a parameter list.
fn names(params: &Value) -> BTreeSet<&str> {
    arr(params).iter().map(|p| s(&p["name"])).collect()
}

fn template<'a>(wt: &'a Value, name: &str) -> Option<&'a Value> {
    arr(&wt["spec"]["templates"])
        .iter()
        .find(|t| t["name"] == name)
}

/// One step or DAG task of a template.
struct Call<'a> {
    name: &'a str,
    step: &'a Value,
    /// The step group (steps templates), 0 for DAG tasks.
    group: usize,
}

fn calls(tmpl: &Value) -> Vec<Call<'_>> {
    let steps = arr(&tmpl["steps"])
        .iter()
        .enumerate()
        .flat_map(|(g, group)| {
            arr(group).iter().map(move |step| Call {
                name: s(&step["name"]),
                step,
                group: g,
            })
        });
    let tasks = arr(&tmpl["dag"]["tasks"]).iter().map(|step| Call {
        name: s(&step["name"]),
        step,
        group: 0,
    });
    steps.chain(tasks).collect()
}

/// The WorkflowTemplate and template a step or task runs.
fn callee<'a>(
    lib: &'a Library,
    wt: &'a Value,
    step: &Value,
) -> Result<(&'a Value, &'a Value), String> {
    match (step["template"].as_str(), step["templateRef"].as_object()) {
        (Some(name), None) => template(wt, name)
            .map(|t| (wt, t))
            .ok_or_else(|| format!("template {name} does not exist")),
        (None, Some(r)) => {
            let wt_name = s(&r["name"]);
            let name = s(&r["template"]);
            let other = lib
                .get(wt_name)
                .ok_or_else(|| format!("templateRef: no WorkflowTemplate {wt_name}"))?;
            template(other, name)
                .map(|t| (other, t))
                .ok_or_else(|| format!("templateRef: {wt_name} has no template {name}"))
        }
        _ => Err("needs exactly one of template and templateRef".into()),
    }
}

/// The tasks a DAG task waits for (`dependencies`, or the task names in
/// `depends`, whatever result they name).
fn dependencies(task: &Value) -> Vec<String> {
    if let Some(list) = task["dependencies"].as_array() {
        return list.iter().map(|d| s(d).to_owned()).collect();
    }
    let re = Regex::new(r"([A-Za-z0-9_-]+)(?:\.[A-Za-z]+)?").unwrap();
    re.captures_iter(s(&task["depends"]))
        .map(|c| c[1].to_owned())
        .collect()
}

/// Every task `name` waits for, directly or not.
fn ancestors<'a>(tasks: &'a [Call<'a>], name: &str) -> BTreeSet<&'a str> {
    let mut seen = BTreeSet::new();
    let mut todo: Vec<String> = vec![name.to_owned()];
    while let Some(n) = todo.pop() {
        let Some(task) = tasks.iter().find(|t| t.name == n) else {
            continue;
        };
        for dep in dependencies(task.step) {
            if let Some(t) = tasks.iter().find(|t| t.name == dep)
                && seen.insert(t.name)
            {
                todo.push(dep);
            }
        }
    }
    seen
}

/// `{{steps.X.REST}}` and `{{tasks.X.REST}}` in `text`: (kind, X, REST).
fn step_refs(text: &str) -> Vec<(String, String, String)> {
    let re = Regex::new(r"\{\{\s*(steps|tasks)\.([A-Za-z0-9_-]+)\.([^}\s]*)\s*\}\}").unwrap();
    re.captures_iter(text)
        .map(|c| (c[1].to_owned(), c[2].to_owned(), c[3].to_owned()))
        .collect()
}

// ---------------------------------------------------------------------------
// Schema validation

/// Argo's schema for one definition (`io.argoproj.workflow.v1alpha1.KIND`),
/// every definition closed.
fn validator(kind: &str) -> jsonschema::Validator {
    let text = std::fs::read_to_string(SCHEMA).unwrap();
    let mut schema: Value = serde_json::from_str(&text).unwrap();
    for definition in schema["definitions"]
        .as_object_mut()
        .expect("the schema has definitions")
        .values_mut()
    {
        close_objects(definition);
    }
    let root = schema.as_object_mut().unwrap();
    root.remove("oneOf");
    let definition = format!("io.argoproj.workflow.v1alpha1.{kind}");
    assert!(
        root["definitions"].get(&definition).is_some(),
        "the schema has no {definition}"
    );
    root.insert("$ref".into(), json!(format!("#/definitions/{definition}")));
    jsonschema::validator_for(&schema).unwrap()
}

fn schema_errors(validator: &jsonschema::Validator, doc: &Value) -> Vec<String> {
    validator
        .iter_errors(doc)
        .map(|e| format!("schema: {}: {e}", e.instance_path()))
        .collect()
}

// ---------------------------------------------------------------------------
// The checks; each returns what is wrong, so the negative tests can run
// them on broken copies.

/// Title, description and an explained Submit form.
fn ui_problems(wt: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for key in [TITLE, DESCRIPTION] {
        if s(&wt["metadata"]["annotations"][key]).trim().is_empty() {
            out.push(format!("metadata.annotations.{key} is missing"));
        }
    }
    let params = arr(&wt["spec"]["arguments"]["parameters"]);
    if params.is_empty() {
        out.push("spec.arguments.parameters is empty".into());
    }
    for p in params {
        let name = s(&p["name"]);
        if s(&p["description"]).trim().is_empty() {
            out.push(format!("argument {name} has no description"));
        }
        if let (Some(values), Some(value)) = (p["enum"].as_array(), p.get("value"))
            && !values.contains(value)
        {
            out.push(format!("argument {name}: value {value} is not in its enum"));
        }
    }
    out
}

/// A plugin template calls one known op with its arguments and declares
/// only that op's outputs.
fn plugin_problems(tmpl: &Value) -> Vec<String> {
    let Some(plugin) = tmpl.get("plugin") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    if keys(plugin) != ["gameops"] {
        out.push(format!(
            "plugin must have exactly one key, gameops; has {:?}",
            keys(plugin)
        ));
        return out;
    }
    let ops = keys(&plugin["gameops"]);
    let [op_name] = ops.as_slice() else {
        out.push(format!(
            "plugin.gameops must name exactly one op; names {ops:?}"
        ));
        return out;
    };
    let Some(op) = OPS.iter().find(|o| o.name == *op_name) else {
        out.push(format!("plugin.gameops.{op_name} is not an op"));
        return out;
    };
    let args = &plugin["gameops"][*op_name];
    if !args.is_object() {
        out.push(format!("plugin.gameops.{op_name} must be an object"));
        return out;
    }
    let given = keys(args);
    for key in &given {
        let known = op.args.contains(key) || (op.on_set && SET_ARGS.contains(key));
        if !known {
            out.push(format!("plugin.gameops.{op_name} takes no {key}"));
        }
    }
    if op.on_set && s(&args["gameServerSet"]).is_empty() {
        out.push(format!("plugin.gameops.{op_name}.gameServerSet is missing"));
    }
    for group in op.one_of {
        let n = group.iter().filter(|a| given.contains(a)).count();
        if n != 1 {
            out.push(format!(
                "plugin.gameops.{op_name} needs exactly one of {group:?}"
            ));
        }
    }
    for key in keys(&args["select"]) {
        if !SELECT_KEYS.contains(&key) {
            out.push(format!("plugin.gameops.{op_name}.select has no {key}"));
        }
    }
    if let Some(then) = args["then"].as_str()
        && !then.contains("{{")
        && !["WaitToBeDeleted", "Kill"].contains(&then)
    {
        out.push(format!(
            "plugin.gameops.{op_name}.then {then} is not WaitToBeDeleted or Kill"
        ));
    }
    for p in arr(&tmpl["outputs"]["parameters"]) {
        let name = s(&p["name"]);
        if !op.outputs.contains(&name) {
            out.push(format!("{op_name} has no output {name}"));
        }
        if p.get("valueFrom").is_some() || p["value"] != "" {
            out.push(format!(
                "output {name} of a plugin template takes the placeholder value: \"\""
            ));
        }
    }
    out
}

/// The Argo features the local runner executes, and nothing else.
fn feature_problems(wt: &Value) -> Vec<String> {
    const SPEC: [&str; 4] = ["entrypoint", "onExit", "arguments", "templates"];
    const TEMPLATE: [&str; 8] = [
        "name",
        "inputs",
        "outputs",
        "steps",
        "dag",
        "suspend",
        "plugin",
        "retryStrategy",
    ];
    const KINDS: [&str; 4] = ["steps", "dag", "suspend", "plugin"];
    const STEP: [&str; 9] = [
        "name",
        "template",
        "templateRef",
        "arguments",
        "when",
        "withItems",
        "withParam",
        "continueOn",
        "onExit",
    ];
    const TASK_ONLY: [&str; 2] = ["depends", "dependencies"];
    let tag = Regex::new(
        r"^(inputs\.parameters\.[\w-]+|workflow\.parameters\.[\w-]+|workflow\.status|item|(steps|tasks)\.[\w-]+\.(status|outputs\.parameters\.[\w-]+))$",
    )
    .unwrap();
    let operand = r"(\{\{[^{}\s]+\}\}|[\w.-]+)";
    let comparison = Regex::new(&format!(r"^{operand} (==|!=) {operand}$")).unwrap();

    let mut out = Vec::new();
    for key in keys(&wt["spec"]) {
        if !SPEC.contains(&key) {
            out.push(format!("spec.{key} is not for the local runner"));
        }
    }
    let text = wt.to_string();
    for c in Regex::new(r"\{\{\s*([^{}]*?)\s*\}\}")
        .unwrap()
        .captures_iter(&text)
    {
        if !tag.is_match(&c[1]) {
            out.push(format!(
                "{{{{{}}}}} is not a variable the runner knows",
                &c[1]
            ));
        }
    }
    for tmpl in arr(&wt["spec"]["templates"]) {
        let name = s(&tmpl["name"]);
        for key in keys(tmpl) {
            if !TEMPLATE.contains(&key) {
                out.push(format!(
                    "template {name}: {key} is not for the local runner"
                ));
            }
        }
        let kinds: Vec<&str> = KINDS
            .into_iter()
            .filter(|k| tmpl.get(k).is_some())
            .collect();
        if kinds.len() != 1 {
            out.push(format!(
                "template {name} must be exactly one of {KINDS:?}; is {kinds:?}"
            ));
        }
        for key in keys(&tmpl["retryStrategy"]) {
            if key != "limit" {
                out.push(format!(
                    "template {name}: retryStrategy.{key} is not for the local runner"
                ));
            }
        }
        let in_dag = tmpl.get("dag").is_some();
        for call in calls(tmpl) {
            for key in keys(call.step) {
                let allowed = STEP.contains(&key) || (in_dag && TASK_ONLY.contains(&key));
                if !allowed {
                    out.push(format!(
                        "{name}.{}: {key} is not for the local runner",
                        call.name
                    ));
                }
            }
            let when = s(&call.step["when"]);
            if !when.is_empty() {
                let simple = when
                    .split("&&")
                    .flat_map(|part| part.split("||"))
                    .all(|part| comparison.is_match(part.trim()));
                if !simple {
                    out.push(format!(
                        "{name}.{}: when {when:?} is not A == B / A != B joined by && or ||",
                        call.name
                    ));
                }
            }
        }
    }
    out
}

/// The templates that run inside another WorkflowTemplate's workflow
/// (targets of a templateRef and what they call), by (WorkflowTemplate,
/// template): `{{workflow.parameters.X}}` there would be the caller's.
fn referenced(lib: &Library) -> BTreeSet<(String, String)> {
    let mut todo: Vec<(String, String)> = Vec::new();
    for wt in lib.values() {
        for tmpl in arr(&wt["spec"]["templates"]) {
            for call in calls(tmpl) {
                if let Some(r) = call.step["templateRef"].as_object() {
                    todo.push((s(&r["name"]).to_owned(), s(&r["template"]).to_owned()));
                }
            }
        }
    }
    let mut seen = BTreeSet::new();
    while let Some((w, t)) = todo.pop() {
        if !seen.insert((w.clone(), t.clone())) {
            continue;
        }
        if let Some(tmpl) = lib.get(&w).and_then(|wt| template(wt, &t)) {
            for call in calls(tmpl) {
                if let Some(local) = call.step["template"].as_str() {
                    todo.push((w.clone(), local.to_owned()));
                }
            }
        }
    }
    seen
}

/// Every `template`, `templateRef`, argument, `{{steps.X...}}`,
/// `{{tasks.X...}}`, `{{inputs.parameters.X}}` and
/// `{{workflow.parameters.X}}` of `wt_name` resolves.
fn reference_problems(lib: &Library, wt_name: &str) -> Vec<String> {
    let wt = &lib[wt_name];
    let spec = &wt["spec"];
    let arguments = names(&spec["arguments"]["parameters"]);
    let referenced = referenced(lib);
    let params = Regex::new(r"\{\{\s*(inputs|workflow)\.parameters\.([\w-]+)\s*\}\}").unwrap();
    let mut out = Vec::new();
    match spec["entrypoint"].as_str() {
        Some(e) if template(wt, e).is_some() => {}
        e => out.push(format!("spec.entrypoint {e:?} is not a template")),
    }
    if let Some(e) = spec["onExit"].as_str()
        && template(wt, e).is_none()
    {
        out.push(format!("spec.onExit {e} is not a template"));
    }
    for tmpl in arr(&spec["templates"]) {
        let tname = s(&tmpl["name"]);
        let at = |what: String| format!("{wt_name}/{tname}: {what}");
        let inputs = names(&tmpl["inputs"]["parameters"]);
        let via_ref = referenced.contains(&(wt_name.to_owned(), tname.to_owned()));
        for c in params.captures_iter(&tmpl.to_string()) {
            let name = &c[2];
            match &c[1] {
                "inputs" if !inputs.contains(name) => {
                    out.push(at(format!(
                        "{{{{inputs.parameters.{name}}}}} is not an input"
                    )));
                }
                "workflow" if !arguments.contains(name) => {
                    out.push(at(format!(
                        "{{{{workflow.parameters.{name}}}}} is not in spec.arguments"
                    )));
                }
                "workflow" if via_ref => {
                    out.push(at(format!(
                        "{{{{workflow.parameters.{name}}}}} in a template other WorkflowTemplates run (templateRef) would be the caller's: take an input"
                    )));
                }
                _ => {}
            }
        }

        let calls = calls(tmpl);
        let kind = if tmpl.get("dag").is_some() {
            "tasks"
        } else {
            "steps"
        };
        let mut seen_names = BTreeSet::new();
        for call in &calls {
            if !seen_names.insert(call.name) {
                out.push(at(format!("two steps named {}", call.name)));
            }
        }
        // What a reference names: a step (or task) of this template,
        // earlier than `before` allows, with the output it reads declared.
        let check_refs = |text: &str, before: Option<&BTreeSet<&str>>, out: &mut Vec<String>| {
            for (k, x, rest) in step_refs(text) {
                let Some(target) = calls.iter().find(|c| c.name == x) else {
                    out.push(at(format!("{{{{{k}.{x}.{rest}}}}}: no {kind} {x} here")));
                    continue;
                };
                if k != kind {
                    out.push(at(format!("{{{{{k}.{x}...}}}} in a {kind} template")));
                }
                if let Some(before) = before
                    && !before.contains(x.as_str())
                {
                    out.push(at(format!(
                        "{{{{{k}.{x}.{rest}}}}} names a {kind} that has not run yet"
                    )));
                }
                if rest == "status" {
                    continue;
                }
                let Some(param) = rest.strip_prefix("outputs.parameters.") else {
                    out.push(at(format!("{{{{{k}.{x}.{rest}}}}} is not supported")));
                    continue;
                };
                if let Ok((_, t)) = callee(lib, wt, target.step)
                    && !names(&t["outputs"]["parameters"]).contains(param)
                {
                    out.push(at(format!(
                        "{{{{{k}.{x}.{rest}}}}}: {} declares no output {param}",
                        s(&t["name"])
                    )));
                }
            }
        };
        for call in &calls {
            let step = call.step;
            let where_ = |what: String| at(format!("{} {}: {what}", kind, call.name));
            match callee(lib, wt, step) {
                Err(e) => out.push(where_(e)),
                Ok((_, t)) => {
                    let passed = names(&step["arguments"]["parameters"]);
                    let declared = names(&t["inputs"]["parameters"]);
                    for p in passed.difference(&declared) {
                        out.push(where_(format!("{} has no input {p}", s(&t["name"]))));
                    }
                    for p in arr(&t["inputs"]["parameters"]) {
                        let name = s(&p["name"]);
                        let required = p.get("default").is_none() && p.get("value").is_none();
                        if required && !passed.contains(name) {
                            out.push(where_(format!(
                                "input {name} of {} is not passed",
                                s(&t["name"])
                            )));
                        }
                    }
                }
            }
            let text = step.to_string();
            let loops = step.get("withItems").is_some() || step.get("withParam").is_some();
            if text.contains("{{item") && !loops {
                out.push(where_("{{item}} without withItems or withParam".into()));
            }
            let before: BTreeSet<&str> = if kind == "steps" {
                calls
                    .iter()
                    .filter(|c| c.group < call.group)
                    .map(|c| c.name)
                    .collect()
            } else {
                for dep in dependencies(step) {
                    if !calls.iter().any(|c| c.name == dep) {
                        out.push(where_(format!(
                            "depends on {dep}, which is not a task here"
                        )));
                    }
                }
                ancestors(&calls, call.name)
            };
            check_refs(&text, Some(&before), &mut out);
        }
        check_refs(&tmpl["outputs"].to_string(), None, &mut out);
    }
    out
}

/// An example Workflow starts an existing WorkflowTemplate with arguments
/// it declares, giving every one without a default.
fn example_problems(lib: &Library, doc: &Value) -> Vec<String> {
    let mut out = Vec::new();
    if doc["kind"] != "Workflow" {
        out.push(format!("kind {} is not Workflow", doc["kind"]));
    }
    let prefix = s(&doc["metadata"]["generateName"]);
    if !prefix.ends_with('-') {
        out.push(format!("metadata.generateName {prefix:?} should end in -"));
    }
    let name = s(&doc["spec"]["workflowTemplateRef"]["name"]);
    let Some(wt) = lib.get(name) else {
        out.push(format!(
            "spec.workflowTemplateRef.name {name:?} is not a WorkflowTemplate here"
        ));
        return out;
    };
    if !prefix.starts_with(name) {
        out.push(format!(
            "metadata.generateName {prefix:?} should start with {name}"
        ));
    }
    for key in keys(&doc["spec"]) {
        if !["workflowTemplateRef", "arguments"].contains(&key) {
            out.push(format!("spec.{key}: the WorkflowTemplate says it all"));
        }
    }
    let declared = arr(&wt["spec"]["arguments"]["parameters"]);
    let passed = arr(&doc["spec"]["arguments"]["parameters"]);
    for p in passed {
        let pname = s(&p["name"]);
        match declared.iter().find(|d| d["name"] == pname) {
            None => out.push(format!("{name} has no argument {pname}")),
            Some(d) => {
                if let Some(values) = d["enum"].as_array()
                    && !values.contains(&p["value"])
                {
                    out.push(format!("{pname}: {} is not one of {values:?}", p["value"]));
                }
            }
        }
    }
    for d in declared {
        let dname = s(&d["name"]);
        if d.get("value").is_none() && !passed.iter().any(|p| p["name"] == dname) {
            out.push(format!("argument {dname} has no default and is not given"));
        }
    }
    out
}

/// Breaks a copy of a template, for the negative tests.
type Breakage = fn(&mut Value);
/// One of the checks above, run over a library.
type Check = fn(&Library) -> Vec<String>;

fn assert_none(what: &str, problems: Vec<String>) {
    assert!(problems.is_empty(), "{what}:\n  {}", problems.join("\n  "));
}

// ---------------------------------------------------------------------------
// Tests

#[test]
fn every_file_validates_against_argos_schema() {
    let templates = validator("WorkflowTemplate");
    let workflows = validator("Workflow");
    let docs = templates_dir();
    let examples = examples_dir();
    assert!(!docs.is_empty() && !examples.is_empty());
    for doc in docs.iter().chain(&examples) {
        assert_eq!(doc.value["apiVersion"], API_VERSION, "{}", doc.file);
        let validator = match s(&doc.value["kind"]) {
            "WorkflowTemplate" => &templates,
            "Workflow" => &workflows,
            kind => panic!(
                "{}: kind {kind} is neither WorkflowTemplate nor Workflow",
                doc.file
            ),
        };
        assert_none(&doc.file, schema_errors(validator, &doc.value));
    }
}

#[test]
fn a_broken_template_fails_the_schema() {
    let validator = validator("WorkflowTemplate");
    let good = library(&templates_dir())["seamless-release"].clone();
    assert_none("seamless-release", schema_errors(&validator, &good));
    let breakages: [(&str, Breakage); 6] = [
        ("an unknown template field", |wt| {
            wt["spec"]["templates"][0]["pluginn"] = json!({});
        }),
        ("an unknown step field", |wt| {
            wt["spec"]["templates"][0]["steps"][2][0]["continueOnFailure"] = json!(true);
        }),
        ("an unknown spec field", |wt| {
            wt["spec"]["entryPoint"] = json!("release");
        }),
        ("an argument value that is a number", |wt| {
            wt["spec"]["arguments"]["parameters"][1]["value"] = json!(3);
        }),
        ("steps that are not a list of lists", |wt| {
            wt["spec"]["templates"][0]["steps"] = json!([{"name": "x", "template": "y"}]);
        }),
        ("the wrong kind", |wt| {
            wt["kind"] = json!("Workflow");
        }),
    ];
    for (what, breakage) in breakages {
        let mut broken = good.clone();
        breakage(&mut broken);
        assert!(
            !schema_errors(&validator, &broken).is_empty(),
            "the schema accepts {what}"
        );
    }
}

#[test]
fn the_four_templates_and_their_entrypoints() {
    let lib = library(&templates_dir());
    let entries: Vec<(&str, &str)> = lib
        .iter()
        .map(|(name, wt)| (name.as_str(), s(&wt["spec"]["entrypoint"])))
        .collect();
    assert_eq!(
        entries,
        [
            ("multi-region-release", "multi-region-release"),
            ("promote", "promote"),
            ("rollback", "rollback"),
            ("seamless-release", "release"),
        ]
    );
    for doc in templates_dir() {
        let name = s(&doc.value["metadata"]["name"]);
        assert_eq!(doc.value["kind"], "WorkflowTemplate", "{}", doc.file);
        assert_eq!(doc.file, format!("{name}.yaml"), "one file per template");
    }
    // The entry templates take the workflow's arguments as inputs (Argo
    // passes them to the entrypoint), with the same defaults, so that
    // templateRef callers get the same behaviour as a submission.
    for (name, wt) in &lib {
        let entry = template(wt, s(&wt["spec"]["entrypoint"])).unwrap();
        for arg in arr(&wt["spec"]["arguments"]["parameters"]) {
            let arg_name = s(&arg["name"]);
            let input = arr(&entry["inputs"]["parameters"])
                .iter()
                .find(|i| i["name"] == arg_name)
                .unwrap_or_else(|| panic!("{name}: the entry template has no input {arg_name}"));
            assert_eq!(input.get("default"), arg.get("value"), "{name}: {arg_name}");
        }
    }

    let argument = |wt: &str, name: &str| -> Value {
        arr(&lib[wt]["spec"]["arguments"]["parameters"])
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("{wt} has no argument {name}"))
            .clone()
    };
    let release = |name: &str| argument("seamless-release", name);
    assert!(release("image").get("value").is_none(), "image is required");
    for (name, value) in [
        ("gameServerSet", "minecraft"),
        ("namespace", "default"),
        ("container", "minecraft"),
        ("cluster", ""),
        ("surge", "3"),
        ("timeoutSeconds", "300"),
        ("drain", "false"),
        ("drainTimeoutSeconds", "3600"),
    ] {
        assert_eq!(release(name)["value"], value, "seamless-release {name}");
    }
    assert_eq!(release("drain")["enum"], json!(["true", "false"]));
    assert_eq!(argument("rollback", "toImage")["value"], "");
    assert_eq!(argument("promote", "sourceEnvironment")["value"], "staging");
    assert_eq!(
        argument("promote", "targetTag")["value"],
        "production-latest"
    );
    assert_eq!(
        argument("multi-region-release", "firstRegion")["value"],
        "eu-west"
    );
    let others = argument("multi-region-release", "otherRegions");
    let others: Vec<String> = serde_json::from_str(s(&others["value"])).unwrap();
    assert_eq!(others, ["us-east"]);
}

#[test]
fn seamless_release_runs_seed_001s_four_steps_then_rolls_back_on_failure() {
    let lib = library(&templates_dir());
    let wt = &lib["seamless-release"];
    let release = template(wt, "release").unwrap();
    let ops: Vec<(String, String)> = calls(release)
        .iter()
        .map(|c| {
            let (_, t) = callee(&lib, wt, c.step).unwrap();
            let op = keys(&t["plugin"]["gameops"]).first().map_or_else(
                || format!("templateRef {}", s(&c.step["templateRef"]["name"])),
                |o| o.to_string(),
            );
            (c.name.to_owned(), op)
        })
        .collect();
    let ops: Vec<(&str, &str)> = ops.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    assert_eq!(
        ops,
        [
            ("patch-image", "patchImage"),
            ("scale-up", "scale"),
            ("wait-ready", "waitReady"),
            ("roll-back", "templateRef rollback"),
            ("release-failed", "waitReady"),
            ("retire-old", "setOpsState"),
            ("drain-old", "drain"),
        ]
    );
    let step = |name: &str| {
        calls(release)
            .into_iter()
            .find(|c| c.name == name)
            .unwrap()
            .step
            .clone()
    };
    assert_eq!(step("wait-ready")["continueOn"], json!({"failed": true}));
    // The failure path asks the identical waitReady question again, so the
    // plugin answers it as it did the first time.
    assert_eq!(
        step("release-failed")["template"],
        step("wait-ready")["template"]
    );
    assert_eq!(
        step("release-failed")["arguments"],
        step("wait-ready")["arguments"]
    );
    assert_eq!(
        step("release-failed")["when"],
        "{{steps.wait-ready.status}} == Failed"
    );
    assert_eq!(
        step("drain-old")["when"],
        "{{steps.wait-ready.status}} == Succeeded && {{inputs.parameters.drain}} == true"
    );
    let retire = template(wt, "retire-old").unwrap();
    assert_eq!(
        retire["plugin"]["gameops"]["setOpsState"],
        json!({
            "gameServerSet": "{{inputs.parameters.gameServerSet}}",
            "namespace": "{{inputs.parameters.namespace}}",
            "cluster": "{{inputs.parameters.cluster}}",
            "select": {"opsState": "None", "notImage": "{{inputs.parameters.notImage}}"},
            "opsState": "WaitToBeDeleted",
        })
    );
    assert_eq!(
        step("retire-old")["arguments"]["parameters"][3]["value"],
        "{{inputs.parameters.container}}/{{inputs.parameters.image}}"
    );
    let exit = template(wt, s(&wt["spec"]["onExit"])).unwrap();
    assert!(exit["plugin"]["gameops"].get("status").is_some());
}

#[test]
fn templates_explain_themselves_in_the_argo_ui() {
    for doc in templates_dir() {
        assert_none(&doc.file, ui_problems(&doc.value));
    }
}

#[test]
fn plugin_templates_call_a_known_op_with_its_arguments() {
    let mut plugin_templates = 0;
    for doc in templates_dir() {
        for tmpl in arr(&doc.value["spec"]["templates"]) {
            plugin_templates += usize::from(tmpl.get("plugin").is_some());
            let what = format!("{} template {}", doc.file, s(&tmpl["name"]));
            assert_none(&what, plugin_problems(tmpl));
        }
    }
    assert!(plugin_templates >= 9, "{plugin_templates} plugin templates");
}

#[test]
fn only_features_the_local_runner_executes() {
    for doc in templates_dir() {
        assert_none(&doc.file, feature_problems(&doc.value));
    }
}

#[test]
fn every_reference_resolves() {
    let lib = library(&templates_dir());
    for name in lib.keys() {
        assert_none(name, reference_problems(&lib, name));
    }
}

#[test]
fn examples_start_an_existing_template() {
    let lib = library(&templates_dir());
    let examples = examples_dir();
    let mut started = BTreeSet::new();
    for doc in &examples {
        assert_none(&doc.file, example_problems(&lib, &doc.value));
        let name = s(&doc.value["spec"]["workflowTemplateRef"]["name"]);
        assert_eq!(doc.file, format!("examples/{name}.yaml"));
        started.insert(name.to_owned());
    }
    let all: BTreeSet<String> = lib.keys().cloned().collect();
    assert_eq!(started, all, "one example per WorkflowTemplate");
}

#[test]
fn the_checks_catch_broken_templates() {
    let lib = library(&templates_dir());
    let breakages: [(&str, Breakage, Check); 10] = [
        (
            "a reference to a step that does not exist",
            |wt| {
                wt.pointer_mut("/spec/templates/0/steps/1/0/arguments/parameters/3/value")
                    .map(|v| *v = json!("{{steps.nope.outputs.parameters.x}}"))
                    .unwrap();
            },
            |lib| reference_problems(lib, "seamless-release"),
        ),
        (
            "a reference to a step that runs later",
            |wt| {
                wt.pointer_mut("/spec/templates/0/steps/1/0/arguments/parameters/3/value")
                    .map(|v| *v = json!("{{steps.wait-ready.outputs.parameters.ready}}"))
                    .unwrap();
            },
            |lib| reference_problems(lib, "seamless-release"),
        ),
        (
            "an output the step's template does not declare",
            |wt| {
                wt.pointer_mut("/spec/templates/0/outputs/parameters/0/valueFrom/parameter")
                    .map(|v| *v = json!("{{steps.patch-image.outputs.parameters.image}}"))
                    .unwrap();
            },
            |lib| reference_problems(lib, "seamless-release"),
        ),
        (
            "a templateRef to a template that does not exist",
            |wt| {
                wt.pointer_mut("/spec/templates/0/steps/3/0/templateRef/template")
                    .map(|v| *v = json!("nope"))
                    .unwrap();
            },
            |lib| reference_problems(lib, "seamless-release"),
        ),
        (
            "an argument the template has no input for",
            |wt| {
                wt.pointer_mut("/spec/templates/0/steps/1/0/arguments/parameters/3/name")
                    .map(|v| *v = json!("replicas"))
                    .unwrap();
            },
            |lib| reference_problems(lib, "seamless-release"),
        ),
        (
            "an input that is not declared",
            |wt| {
                wt.pointer_mut("/spec/templates/1/plugin/gameops/patchImage/image")
                    .map(|v| *v = json!("{{inputs.parameters.newImage}}"))
                    .unwrap();
            },
            |lib| reference_problems(lib, "seamless-release"),
        ),
        (
            "an unknown op",
            |wt| {
                let args = wt["spec"]["templates"][1]["plugin"]["gameops"]["patchImage"].take();
                wt["spec"]["templates"][1]["plugin"]["gameops"] = json!({"setImage": args});
            },
            |lib| plugin_problems(&lib["seamless-release"]["spec"]["templates"][1]),
        ),
        (
            "a plugin template with two ops",
            |wt| {
                wt["spec"]["templates"][1]["plugin"]["gameops"]["status"] =
                    json!({"gameServerSet": "minecraft"});
            },
            |lib| plugin_problems(&lib["seamless-release"]["spec"]["templates"][1]),
        ),
        (
            "an argument without a description",
            |wt| {
                wt["spec"]["arguments"]["parameters"][0]
                    .as_object_mut()
                    .unwrap()
                    .remove("description");
            },
            |lib| ui_problems(&lib["seamless-release"]),
        ),
        (
            "a when the runner cannot evaluate",
            |wt| {
                wt.pointer_mut("/spec/templates/0/steps/2/0")
                    .unwrap()
                    .as_object_mut()
                    .unwrap()
                    .insert("when".into(), json!("{{=inputs.parameters.surge > 0}}"));
            },
            |lib| feature_problems(&lib["seamless-release"]),
        ),
    ];
    for (what, breakage, check) in breakages {
        let mut broken = lib.clone();
        breakage(broken.get_mut("seamless-release").unwrap());
        assert!(!check(&broken).is_empty(), "the checks accept {what}");
    }
    // and the example check, with an example naming no template
    let mut example = examples_dir()
        .into_iter()
        .find(|d| d.file == "examples/seamless-release.yaml")
        .unwrap()
        .value;
    assert_none("example", example_problems(&lib, &example));
    example["spec"]["workflowTemplateRef"]["name"] = json!("seamless-releas");
    assert!(!example_problems(&lib, &example).is_empty());
}
