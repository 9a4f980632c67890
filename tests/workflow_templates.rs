//! Checks the Argo WorkflowTemplates in `workflow-templates/` and the
//! example Workflows in `workflow-templates/examples/`.
//!
//! Every file must pass Argo's own JSON schema
//! (`../shared/reference/argo-workflows/schema.json`), made strict: every
//! object schema that lists properties rejects unknown keys, so a misspelt
//! field fails here instead of being dropped by the API server.
//!
//! The ops, their arguments and outputs, and every reference are
//! `gameops lint`'s business ([`gameops::argo::lint`], tested in `src/argo/lint/`):
//! here the templates must lint clean. On top of that, the Argo UI can
//! explain them (title, description, a description for every argument),
//! plugin templates call only the gameops plugin and declare their outputs
//! as placeholders, the examples are plain submissions, and only the Argo
//! features the local runner executes are used.
#![allow(
    clippy::too_many_lines,
    reason = "a scenario or a table reads best top to bottom"
)]

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

fn template<'a>(wt: &'a Value, name: &str) -> Option<&'a Value> {
    arr(&wt["spec"]["templates"])
        .iter()
        .find(|t| t["name"] == name)
}

/// The steps (every group) and DAG tasks of a template.
fn steps_and_tasks(tmpl: &Value) -> impl Iterator<Item = &Value> {
    arr(&tmpl["steps"])
        .iter()
        .flat_map(arr)
        .chain(arr(&tmpl["dag"]["tasks"]))
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

/// A plugin template calls the gameops plugin (`gameops lint` checks the
/// op) and declares its outputs with the placeholder `value: ""` the
/// plugin's answer replaces.
fn plugin_problems(tmpl: &Value) -> Vec<String> {
    let Some(plugin) = tmpl.get("plugin") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    if keys(plugin) != ["gameops"] {
        out.push(format!(
            "plugin must name only gameops; names {:?}",
            keys(plugin)
        ));
    }
    for p in arr(&tmpl["outputs"]["parameters"]) {
        if p.get("valueFrom").is_some() || p["value"] != "" {
            out.push(format!(
                "output {} of a plugin template takes the placeholder value: \"\"",
                s(&p["name"])
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
        for key in keys(&tmpl["retryStrategy"]) {
            if key != "limit" {
                out.push(format!(
                    "template {name}: retryStrategy.{key} is not for the local runner"
                ));
            }
        }
        let in_dag = tmpl.get("dag").is_some();
        for step in steps_and_tasks(tmpl) {
            let call = s(&step["name"]);
            for key in keys(step) {
                let allowed = STEP.contains(&key) || (in_dag && TASK_ONLY.contains(&key));
                if !allowed {
                    out.push(format!("{name}.{call}: {key} is not for the local runner"));
                }
            }
            let when = s(&step["when"]);
            if !when.is_empty() {
                let simple = when
                    .split("&&")
                    .flat_map(|part| part.split("||"))
                    .all(|part| comparison.is_match(part.trim()));
                if !simple {
                    out.push(format!(
                        "{name}.{call}: when {when:?} is not A == B / A != B joined by && or ||"
                    ));
                }
            }
        }
    }
    out
}

/// Breaks a copy of a template, for the negative tests.
type Breakage = fn(&mut Value);

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
    let ops: Vec<(&str, String)> = steps_and_tasks(release)
        .map(|step| {
            let op = match step["templateRef"]["name"].as_str() {
                Some(other) => format!("templateRef {other}"),
                None => {
                    let t = template(wt, s(&step["template"])).unwrap();
                    keys(&t["plugin"]["gameops"])[0].to_owned()
                }
            };
            (s(&step["name"]), op)
        })
        .collect();
    let ops: Vec<(&str, &str)> = ops.iter().map(|(a, b)| (*a, b.as_str())).collect();
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
            // Issue 11: the set returns to its size unless keepSurge.
            ("remove-retired", "removeRetired"),
        ]
    );
    let step = |name: &str| {
        steps_and_tasks(release)
            .find(|step| step["name"] == name)
            .unwrap()
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
    // The exit handler frees the set first (issue 11: the lease ends with
    // its workflow), then reports.
    let exit = template(wt, s(&wt["spec"]["onExit"])).unwrap();
    let steps: Vec<&str> = exit["steps"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|group| group.as_array().into_iter().flatten())
        .filter_map(|step| step["template"].as_str())
        .collect();
    assert_eq!(steps, ["unlock", "report"]);
    let unlock = template(wt, "unlock").unwrap();
    assert!(unlock["plugin"]["gameops"].get("unlock").is_some());
    let report = template(wt, "report").unwrap();
    assert!(report["plugin"]["gameops"].get("status").is_some());
}

#[test]
fn every_template_that_changes_a_set_frees_it_on_exit() {
    for doc in templates_dir() {
        let wt = &doc.value;
        let Some(on_exit) = wt["spec"]["onExit"].as_str() else {
            panic!("{}: no exit handler frees the set", doc.file);
        };
        let exit = template(wt, on_exit).unwrap();
        let text = serde_json::to_string(&exit).unwrap();
        let calls_unlock = text.contains("\"template\":\"unlock\"")
            || exit["plugin"]["gameops"].get("unlock").is_some();
        assert!(
            calls_unlock,
            "{}: the exit handler {on_exit} does not unlock",
            doc.file
        );
    }
}

#[test]
fn templates_explain_themselves_in_the_argo_ui() {
    for doc in templates_dir() {
        assert_none(&doc.file, ui_problems(&doc.value));
    }
}

#[test]
fn gameops_lint_finds_nothing_in_the_templates() {
    let findings = gameops::argo::lint::lint_dir(Path::new(DIR)).unwrap();
    assert_none(
        "gameops lint",
        findings.iter().map(ToString::to_string).collect(),
    );
}

#[test]
fn plugin_templates_call_gameops_with_placeholder_outputs() {
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

/// An example Workflow only starts its WorkflowTemplate (`gameops lint`
/// checks the template exists and the arguments), one per template.
#[test]
fn examples_start_each_template_once() {
    let mut started = BTreeSet::new();
    for doc in examples_dir() {
        let (file, spec) = (&doc.file, &doc.value["spec"]);
        let name = s(&spec["workflowTemplateRef"]["name"]);
        assert_eq!(doc.value["kind"], "Workflow", "{file}");
        assert_eq!(*file, format!("examples/{name}.yaml"));
        let prefix = s(&doc.value["metadata"]["generateName"]);
        assert_eq!(prefix, format!("{name}-"), "{file}: generateName");
        for key in keys(spec) {
            assert!(
                ["workflowTemplateRef", "arguments"].contains(&key),
                "{file}: spec.{key}: the WorkflowTemplate says it all"
            );
        }
        started.insert(name.to_owned());
    }
    let all: BTreeSet<String> = library(&templates_dir()).into_keys().collect();
    assert_eq!(started, all, "one example per WorkflowTemplate");
}

#[test]
fn the_checks_catch_broken_templates() {
    // Broken ops and references: `gameops lint`'s own tests.
    type Check = fn(&Value) -> Vec<String>;
    let good = library(&templates_dir())["seamless-release"].clone();
    let breakages: [(&str, Breakage, Check); 4] = [
        (
            "an argument without a description",
            |wt| {
                wt["spec"]["arguments"]["parameters"][0]
                    .as_object_mut()
                    .unwrap()
                    .remove("description");
            },
            ui_problems,
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
            feature_problems,
        ),
        (
            "a plugin output with a valueFrom",
            |wt| {
                wt["spec"]["templates"][1]["outputs"]["parameters"][0]["valueFrom"] =
                    json!({"parameter": "x"});
            },
            |wt| plugin_problems(&wt["spec"]["templates"][1]),
        ),
        (
            "another executor plugin",
            |wt| {
                wt["spec"]["templates"][1]["plugin"]["hello"] = json!({});
            },
            |wt| plugin_problems(&wt["spec"]["templates"][1]),
        ),
    ];
    for (what, breakage, check) in breakages {
        assert_none("seamless-release", check(&good));
        let mut broken = good.clone();
        breakage(&mut broken);
        assert!(!check(&broken).is_empty(), "the checks accept {what}");
    }
}
