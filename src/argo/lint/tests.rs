//! The table tests of `gameops lint`: the committed templates, broken
//! copies of them, and each check on small documents.
#![allow(
    clippy::too_many_lines,
    reason = "a scenario or a table reads best top to bottom"
)]

use super::*;
use serde_json::json;

const FILE: &str = "t.yaml";

/// A WorkflowTemplate `t` with `templates` and `arguments`.
fn wt(arguments: Value, templates: Value) -> (PathBuf, Value) {
    (
        PathBuf::from(FILE),
        json!({
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "WorkflowTemplate",
            "metadata": {"name": "t"},
            "spec": {
                "entrypoint": "main",
                "arguments": {"parameters": arguments},
                "templates": templates,
            },
        }),
    )
}

/// A plugin template `main` calling `op` with `args`.
fn plugin(op: &str, args: Value) -> (PathBuf, Value) {
    wt(
        json!([]),
        json!([{"name": "main", "plugin": {"gameops": {op: args}}}]),
    )
}

/// Asserts a finding with this template and field whose message
/// contains `needle`.
#[track_caller]
fn assert_finding(findings: &[Finding], template: &str, field: &str, needle: &str) {
    assert_finding_in(findings, Path::new(FILE), template, field, needle);
}

/// [`assert_finding`] for a finding in `file`.
#[track_caller]
fn assert_finding_in(findings: &[Finding], file: &Path, template: &str, field: &str, needle: &str) {
    assert!(
        findings.iter().any(|f| f.file == file
            && f.template == template
            && f.field == field
            && f.message.contains(needle)),
        "no finding {template}: {field}: ...{needle}... in:\n{}",
        findings
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[track_caller]
fn assert_clean(findings: &[Finding]) {
    assert!(
        findings.is_empty(),
        "unexpected findings:\n{}",
        findings
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    );
}

fn committed() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/workflow-templates"))
}

#[test]
fn the_committed_workflow_templates_lint_clean() {
    let findings = lint_dir(&committed()).unwrap();
    assert_clean(&findings);
}

/// The committed documents, as [`lint_dir`] reads them.
fn committed_documents() -> Vec<(PathBuf, Value)> {
    let mut files = yaml_files(&committed()).unwrap();
    files.extend(yaml_files(&committed().join("examples")).unwrap());
    let mut docs = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for value in parse_yaml(&file, &text).unwrap() {
            docs.push((file.clone(), value));
        }
    }
    docs
}

#[test]
fn broken_copies_of_the_committed_templates_are_caught() {
    type Breakage = fn(&mut Value);
    let release = "seamless-release/release";
    let cases: [(Breakage, &str, &str, &str); 8] = [
        (
            |wt| {
                wt["spec"]["templates"][0]["steps"][1][0]["arguments"]["parameters"][3]["value"] =
                    json!("{{steps.nope.outputs.parameters.x}}");
            },
            release,
            "steps[1][0].arguments.parameters.delta",
            "no step nope",
        ),
        (
            |wt| {
                wt["spec"]["templates"][0]["steps"][1][0]["arguments"]["parameters"][3]["value"] =
                    json!("{{steps.wait-ready.outputs.parameters.ready}}");
            },
            release,
            "steps[1][0].arguments.parameters.delta",
            "has not run yet",
        ),
        (
            |wt| {
                wt["spec"]["templates"][0]["outputs"]["parameters"][0]["valueFrom"]["parameter"] =
                    json!("{{steps.patch-image.outputs.parameters.image}}");
            },
            release,
            "outputs.parameters.previousImage.valueFrom.parameter",
            "declares no output image",
        ),
        (
            |wt| {
                wt["spec"]["templates"][0]["steps"][3][0]["templateRef"]["template"] =
                    json!("nope");
            },
            release,
            "steps[3][0].templateRef.template",
            "WorkflowTemplate rollback has no template \"nope\"",
        ),
        (
            |wt| {
                wt["spec"]["templates"][0]["steps"][1][0]["arguments"]["parameters"][3]["name"] =
                    json!("replicas");
            },
            release,
            "steps[1][0].arguments.parameters.replicas",
            "template scale-up has no input replicas",
        ),
        (
            |wt| {
                wt["spec"]["templates"][1]["plugin"]["gameops"]["patchImage"]["image"] =
                    json!("{{inputs.parameters.newImage}}");
            },
            "seamless-release/patch-image",
            "plugin.gameops.patchImage.image",
            "no input newImage",
        ),
        (
            |wt| {
                let args = wt["spec"]["templates"][1]["plugin"]["gameops"]["patchImage"].take();
                wt["spec"]["templates"][1]["plugin"]["gameops"] = json!({"setImage": args});
            },
            "seamless-release/patch-image",
            "plugin.gameops.setImage",
            "not an op",
        ),
        (
            |wt| {
                wt["spec"]["templates"][2]["container"] = json!({"image": "alpine"});
            },
            "seamless-release/scale-up",
            "container",
            "cannot run a container template",
        ),
    ];
    let docs = committed_documents();
    let target = committed().join("seamless-release.yaml");
    let index = docs.iter().position(|(f, _)| *f == target).unwrap();
    for (breakage, template, field, needle) in cases {
        let mut broken = docs.clone();
        breakage(&mut broken[index].1);
        let findings = lint_documents(&broken);
        assert_finding_in(&findings, &target, template, field, needle);
    }
}

#[test]
fn lint_dir_reads_the_examples_and_every_document() {
    // The committed examples are read (a broken one is found), and a
    // multi-document file counts every document.
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("examples")).unwrap();
    for entry in std::fs::read_dir(committed()).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            std::fs::copy(&path, dir.path().join(path.file_name().unwrap())).unwrap();
        }
    }
    let example = std::fs::read_to_string(committed().join("examples/promote.yaml"))
        .unwrap()
        .replace("name: promote\n", "name: promot\n");
    std::fs::write(dir.path().join("examples/promote.yaml"), example).unwrap();
    std::fs::write(
        dir.path().join("extra.yml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n---\n---\napiVersion: argoproj.io/v1alpha1\nkind: WorkflowTemplate\nmetadata: {name: extra}\nspec:\n  templates:\n    - name: a\n      container: {image: alpine}\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("notes.txt"), "not yaml: [").unwrap();
    let findings = lint_dir(dir.path()).unwrap();
    let shown: Vec<String> = findings.iter().map(ToString::to_string).collect();
    let promote = dir.path().join("examples/promote.yaml");
    assert!(
        findings.iter().any(|f| f.file == promote
            && f.template.is_empty()
            && f.field == "spec.workflowTemplateRef.name"
            && f.message.contains("did you mean promote?")),
        "{shown:#?}"
    );
    let extra = dir.path().join("extra.yml");
    assert!(
        findings
            .iter()
            .any(|f| f.file == extra && f.template == "extra/a" && f.field == "container"),
        "{shown:#?}"
    );
    assert_eq!(findings.len(), 2, "{shown:#?}");
}

#[test]
fn lint_dir_errors_name_the_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let e = lint_dir(dir.path()).unwrap_err();
    assert!(matches!(e, LintError::Empty(_)), "{e}");
    assert!(e.to_string().contains("no *.yaml"), "{e}");

    std::fs::write(
        dir.path().join("bad.yaml"),
        "apiVersion: argoproj.io/v1alpha1\nkind: WorkflowTemplate\nspec:\n  templates: [\n",
    )
    .unwrap();
    let e = lint_dir(dir.path()).unwrap_err();
    let LintError::Yaml { file, line, .. } = &e else {
        panic!("{e}");
    };
    assert_eq!(file, &dir.path().join("bad.yaml"));
    assert!(line.is_some_and(|l| l >= 4), "{e}");
    assert!(
        e.to_string().starts_with(&format!("{}:", file.display())),
        "{e}"
    );

    let missing = dir.path().join("nope");
    let e = lint_dir(&missing).unwrap_err();
    assert!(matches!(e, LintError::Read { .. }), "{e}");
    assert!(e.to_string().contains("nope"), "{e}");
}

#[test]
fn a_finding_displays_on_one_line() {
    let f = Finding {
        file: PathBuf::from("workflow-templates/x.yaml"),
        template: "x/scale-up".into(),
        field: "plugin.gameops.scale.delta".into(),
        message: "expected a whole number".into(),
    };
    assert_eq!(
        f.to_string(),
        "workflow-templates/x.yaml: x/scale-up: plugin.gameops.scale.delta: expected a whole number"
    );
    let f = Finding {
        template: String::new(),
        field: "spec.entrypoint".into(),
        ..f
    };
    assert_eq!(
        f.to_string(),
        "workflow-templates/x.yaml: spec.entrypoint: expected a whole number"
    );
}

// Check 1 ---------------------------------------------------------------

#[test]
fn check_1_a_plugin_template_names_exactly_one_known_op() {
    let f = lint_documents(&[plugin("setImage", json!({"gameServerSet": "m"}))]);
    assert_finding(&f, "t/main", "plugin.gameops.setImage", "not an op");

    let f = lint_documents(&[plugin("scal", json!({"gameServerSet": "m"}))]);
    assert_finding(&f, "t/main", "plugin.gameops.scal", "did you mean scale?");

    let two = wt(
        json!([]),
        json!([{"name": "main", "plugin": {"gameops": {
            "status": {"gameServerSet": "m"},
            "scale": {"gameServerSet": "m", "delta": 1},
        }}}]),
    );
    let f = lint_documents(&[two]);
    assert_finding(&f, "t/main", "plugin.gameops", "names 2 ops");

    let none = wt(
        json!([]),
        json!([{"name": "main", "plugin": {"gameops": {}}}]),
    );
    assert_finding(
        &lint_documents(&[none]),
        "t/main",
        "plugin.gameops",
        "names no op",
    );

    // Another plugin's template is not ours to check.
    let other = wt(
        json!([]),
        json!([{"name": "main", "plugin": {"hello": {"anything": 1}}}]),
    );
    assert_clean(&lint_documents(&[other]));
}

// Check 2 ---------------------------------------------------------------

#[test]
fn check_2_arguments_are_known_and_the_required_ones_given() {
    let f = lint_documents(&[plugin("scale", json!({"gameServerSet": "m", "replica": 3}))]);
    assert_finding(
        &f,
        "t/main",
        "plugin.gameops.scale.replica",
        "did you mean replicas?",
    );
    assert_finding(
        &f,
        "t/main",
        "plugin.gameops.scale",
        "needs one of replicas or delta",
    );

    let f = lint_documents(&[plugin("scale", json!({"delta": 1, "replicas": 2}))]);
    assert_finding(
        &f,
        "t/main",
        "plugin.gameops.scale.gameServerSet",
        "is missing",
    );
    assert_finding(
        &f,
        "t/main",
        "plugin.gameops.scale",
        "exactly one of replicas, delta",
    );

    // An empty string is an argument not given.
    let f = lint_documents(&[plugin(
        "patchImage",
        json!({"gameServerSet": "m", "image": ""}),
    )]);
    assert_finding(
        &f,
        "t/main",
        "plugin.gameops.patchImage.image",
        "is missing",
    );

    let f = lint_documents(&[plugin("waitReady", json!({"gameServerSet": "m"}))]);
    assert_finding(&f, "t/main", "plugin.gameops.waitReady", "count or percent");
    assert_finding(
        &f,
        "t/main",
        "plugin.gameops.waitReady.timeoutSeconds",
        "is missing",
    );
}

#[test]
fn check_2_required_arguments_of_the_other_ops() {
    let f = lint_documents(&[plugin("setOpsState", json!({"gameServerSet": "m"}))]);
    assert_finding(
        &f,
        "t/main",
        "plugin.gameops.setOpsState.select",
        "is missing",
    );
    assert_finding(
        &f,
        "t/main",
        "plugin.gameops.setOpsState.opsState",
        "is missing",
    );

    let f = lint_documents(&[plugin(
        "drain",
        json!({"gameServerSet": "m", "timeoutSeconds": 60}),
    )]);
    assert_finding(&f, "t/main", "plugin.gameops.drain", "notImage or image");
    assert_finding(&f, "t/main", "plugin.gameops.drain.then", "is missing");

    let f = lint_documents(&[plugin("promoteTag", json!({"repository": "r", "to": ""}))]);
    assert_finding(&f, "t/main", "plugin.gameops.promoteTag.from", "is missing");
    assert_finding(&f, "t/main", "plugin.gameops.promoteTag.to", "is empty");

    let f = lint_documents(&[plugin("resolveTag", json!({"gameServerSet": "m"}))]);
    assert_finding(
        &f,
        "t/main",
        "plugin.gameops.resolveTag.gameServerSet",
        "takes no argument",
    );
    assert_finding(
        &f,
        "t/main",
        "plugin.gameops.resolveTag",
        "environment or repository",
    );

    let f = lint_documents(&[plugin(
        "rollback",
        json!({"gameServerSet": "m", "toImage": "mc:1", "steps": 2}),
    )]);
    assert_finding(&f, "t/main", "plugin.gameops.rollback", "not both");

    // Outputs are the op's.
    let doc = wt(
        json!([]),
        json!([{"name": "main",
            "outputs": {"parameters": [{"name": "replica", "value": ""}]},
            "plugin": {"gameops": {"scale": {"gameServerSet": "m", "delta": 1}}}}]),
    );
    let f = lint_documents(&[doc]);
    assert_finding(
        &f,
        "t/main",
        "outputs.parameters.replica",
        "scale gives no output replica",
    );
}

#[test]
fn check_2_literal_values_are_type_checked() {
    let f = lint_documents(&[plugin(
        "scale",
        json!({"gameServerSet": "m", "delta": "three"}),
    )]);
    assert_finding(&f, "t/main", "plugin.gameops.scale.delta", "whole number");
    // Numbers as strings, negative deltas and templated values are fine.
    for delta in [json!("-2"), json!(-2), json!("{{inputs.parameters.d}}")] {
        let doc = wt(
            json!([]),
            json!([{"name": "main", "inputs": {"parameters": [{"name": "d", "default": "1"}]},
                "plugin": {"gameops": {"scale": {"gameServerSet": "m", "delta": delta}}}}]),
        );
        assert_clean(&lint_documents(&[doc]));
    }
    let f = lint_documents(&[plugin(
        "waitReady",
        json!({"gameServerSet": "m", "count": -1, "timeoutSeconds": "0", "crashThreshold": 1.5}),
    )]);
    assert_finding(
        &f,
        "t/main",
        "plugin.gameops.waitReady.count",
        "whole number",
    );
    assert_finding(
        &f,
        "t/main",
        "plugin.gameops.waitReady.timeoutSeconds",
        "is 0",
    );
    assert_finding(
        &f,
        "t/main",
        "plugin.gameops.waitReady.crashThreshold",
        "whole number",
    );

    let f = lint_documents(&[plugin(
        "waitReady",
        json!({"gameServerSet": "m", "percent": 150, "timeoutSeconds": 60}),
    )]);
    assert_finding(&f, "t/main", "plugin.gameops.waitReady.percent", "0 to 100");
}

#[test]
fn check_2_literal_values_of_set_ops_state_and_drain_are_type_checked() {
    let f = lint_documents(&[plugin(
        "setOpsState",
        json!({"gameServerSet": 7, "select": {"opsState": "Idle", "ids": "1,x", "networkDisabled": "maybe", "zone": "a"},
               "opsState": "WaitToBeDelete", "dryRun": "yes", "limit": "two"}),
    )]);
    assert_finding(
        &f,
        "t/main",
        "plugin.gameops.setOpsState.gameServerSet",
        "must be a string",
    );
    assert_finding(
        &f,
        "t/main",
        "plugin.gameops.setOpsState.opsState",
        "did you mean WaitToBeDeleted?",
    );
    assert_finding(
        &f,
        "t/main",
        "plugin.gameops.setOpsState.dryRun",
        "true or false",
    );
    assert_finding(
        &f,
        "t/main",
        "plugin.gameops.setOpsState.limit",
        "whole number",
    );
    assert_finding(
        &f,
        "t/main",
        "plugin.gameops.setOpsState.select.opsState",
        "is not None or Allocated",
    );
    assert_finding(
        &f,
        "t/main",
        "plugin.gameops.setOpsState.select.ids",
        "ordinals",
    );
    assert_finding(
        &f,
        "t/main",
        "plugin.gameops.setOpsState.select.networkDisabled",
        "true or false",
    );
    assert_finding(
        &f,
        "t/main",
        "plugin.gameops.setOpsState.select.zone",
        "select has no field zone",
    );

    let f = lint_documents(&[plugin(
        "drain",
        json!({"gameServerSet": "m", "notImage": "mc:2", "then": "Delete", "timeoutSeconds": 60, "scaleDown": 1}),
    )]);
    assert_finding(
        &f,
        "t/main",
        "plugin.gameops.drain.notImage",
        "not CONTAINER/IMAGE",
    );
    assert_finding(
        &f,
        "t/main",
        "plugin.gameops.drain.then",
        "WaitToBeDeleted or Kill",
    );
    assert_finding(
        &f,
        "t/main",
        "plugin.gameops.drain.scaleDown",
        "true or false",
    );

    let f = lint_documents(&[plugin(
        "drain",
        json!({"gameServerSet": "m", "image": ["minecraft/mc:1"], "then": "Kill", "timeoutSeconds": 60, "scaleDown": "true"}),
    )]);
    assert_finding(
        &f,
        "t/main",
        "plugin.gameops.drain.scaleDown",
        "goes with then: WaitToBeDeleted",
    );
}

#[test]
fn check_2_patch_image_needs_an_image_reference() {
    let f = lint_documents(&[plugin(
        "patchImage",
        json!({"gameServerSet": "m", "image": "Minecraft Demo:1.12"}),
    )]);
    assert_finding(
        &f,
        "t/main",
        "plugin.gameops.patchImage.image",
        "not an image reference",
    );
    for image in [
        "nginx",
        "registry.cn-hangzhou.aliyuncs.com/acs/minecraft-demo:1.12.2-new",
        "localhost:5000/game/server:v1.2.3@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        "registry.example.com/{{inputs.parameters.tag}}",
    ] {
        let f = lint_documents(&[plugin(
            "patchImage",
            json!({"gameServerSet": "m", "image": image}),
        )]);
        let f: Vec<&Finding> = f
            .iter()
            .filter(|f| !f.message.contains("inputs.parameters.tag"))
            .collect();
        assert!(f.is_empty(), "{image}: {f:?}");
    }
}

#[test]
fn check_2_tag_filters_compile() {
    let f = lint_documents(&[plugin(
        "resolveTag",
        json!({"repository": "registry.example.com/game", "filter": {"includeTag": "^v(", "semver": ">=1"}}),
    )]);
    assert_finding(
        &f,
        "t/main",
        "plugin.gameops.resolveTag.filter.includeTag",
        "invalid regex",
    );

    let f = lint_documents(&[plugin(
        "resolveTag",
        json!({"repository": "r", "filter": {"includeTags": "^v"}}),
    )]);
    assert_finding(
        &f,
        "t/main",
        "plugin.gameops.resolveTag.filter",
        "unknown field `includeTags`",
    );

    let f = lint_documents(&[plugin(
        "resolveTag",
        json!({"environment": "staging", "filter": {"semver": ">=1"}}),
    )]);
    assert_finding(
        &f,
        "t/main",
        "plugin.gameops.resolveTag.filter",
        "goes with repository",
    );

    // A templated field is left to run time; the rest is still checked.
    let f = lint_documents(&[plugin(
        "resolveTag",
        json!({"repository": "r", "filter": {"includeTag": "{{workflow.name}}", "limit": "many"}}),
    )]);
    assert_finding(
        &f,
        "t/main",
        "plugin.gameops.resolveTag.filter",
        "invalid type",
    );
    let ok = plugin(
        "resolveTag",
        json!({"repository": "r", "filter": {"includeTag": "{{workflow.name}}", "pattern": "^v(?P<v>.*)$", "extract": "$v", "order": {"by": "semver"}}}),
    );
    assert_clean(&lint_documents(&[ok]));
}

// Check 3 ---------------------------------------------------------------

/// A steps template `main` (input `image`) calling `scale` twice.
fn steps(first_args: Value, second_args: Value, outputs: Value) -> (PathBuf, Value) {
    wt(
        json!([{"name": "image", "description": "x"}]),
        json!([
            {"name": "main",
             "inputs": {"parameters": [{"name": "image"}]},
             "outputs": {"parameters": outputs},
             "steps": [
                [{"name": "first", "template": "scale", "arguments": {"parameters": first_args}}],
                [{"name": "second", "template": "scale", "arguments": {"parameters": second_args}}],
             ]},
            {"name": "scale",
             "inputs": {"parameters": [{"name": "delta"}, {"name": "set", "default": "m"}]},
             "outputs": {"parameters": [{"name": "replicas", "value": ""}]},
             "plugin": {"gameops": {"scale": {
                "gameServerSet": "{{inputs.parameters.set}}",
                "delta": "{{inputs.parameters.delta}}"}}}},
        ]),
    )
}

#[test]
fn check_3_step_references_resolve() {
    let ok = steps(
        json!([{"name": "delta", "value": "{{inputs.parameters.image}}"}]),
        json!([{"name": "delta", "value": "{{steps.first.outputs.parameters.replicas}}"}]),
        json!([{"name": "r", "valueFrom": {"parameter": "{{steps.second.outputs.parameters.replicas}}"}}]),
    );
    assert_clean(&lint_documents(&[ok]));

    let f = lint_documents(&[steps(
        json!([{"name": "delta", "value": "{{steps.second.outputs.parameters.replicas}}"}]),
        json!([{"name": "delta", "value": "{{steps.first.outputs.parameters.replica}}"}]),
        json!([{"name": "r", "valueFrom": {"parameter": "{{steps.nope.status}}"}}]),
    )]);
    assert_finding(
        &f,
        "t/main",
        "steps[0][0].arguments.parameters.delta",
        "has not run yet",
    );
    assert_finding(
        &f,
        "t/main",
        "steps[1][0].arguments.parameters.delta",
        "declares no output replica (did you mean replicas?)",
    );
    assert_finding(
        &f,
        "t/main",
        "outputs.parameters.r.valueFrom.parameter",
        "no step nope",
    );
}

#[test]
fn check_3_inputs_and_workflow_parameters_resolve() {
    let f = lint_documents(&[steps(
        json!([{"name": "delta", "value": "{{inputs.parameters.imag}}"}]),
        json!([{"name": "delta", "value": "{{workflow.parameters.surge}}"}]),
        json!([]),
    )]);
    assert_finding(
        &f,
        "t/main",
        "steps[0][0].arguments.parameters.delta",
        "no input imag (did you mean image?)",
    );
    assert_finding(
        &f,
        "t/main",
        "steps[1][0].arguments.parameters.delta",
        "t has no argument surge",
    );
    // Expressions name variables too.
    let f = lint_documents(&[steps(
        json!([{"name": "delta", "value": "{{=asInt(inputs.parameters['imag']) + 1}}"}]),
        json!([{"name": "delta", "value": "{{= steps['first'].outputs.parameters.replicas }}"}]),
        json!([]),
    )]);
    assert_finding(
        &f,
        "t/main",
        "steps[0][0].arguments.parameters.delta",
        "inputs.parameters.imag (in {{=...}}): the template has no input imag",
    );
    assert_eq!(f.len(), 1, "{f:#?}");
    // The entrypoint's input without a default must be an argument.
    let (file, mut doc) = steps(json!([]), json!([]), json!([]));
    doc["spec"]["arguments"]["parameters"] = json!([]);
    let f = lint_documents(&[(file, doc)]);
    assert_finding(&f, "t/main", "inputs.parameters.image", "has no default");
}

#[test]
fn check_3_calls_name_templates_and_pass_their_inputs() {
    let f = lint_documents(&[steps(
        json!([{"name": "delta", "value": "1"}, {"name": "replicas", "value": "3"}]),
        json!([]),
        json!([]),
    )]);
    assert_finding(
        &f,
        "t/main",
        "steps[0][0].arguments.parameters.replicas",
        "template scale has no input replicas",
    );
    assert_finding(
        &f,
        "t/main",
        "steps[1][0].arguments.parameters",
        "input delta has no default and is not passed",
    );

    let (file, mut doc) = steps(
        json!([{"name": "delta", "value": "1"}]),
        json!([{"name": "delta", "value": "1"}]),
        json!([]),
    );
    doc["spec"]["templates"][0]["steps"][1][0]["template"] = json!("scal");
    doc["spec"]["entrypoint"] = json!("mian");
    doc["spec"]["onExit"] = json!("report");
    let f = lint_documents(&[(file, doc)]);
    assert_finding(&f, "t/main", "steps[1][0].template", "did you mean scale?");
    assert_finding(&f, "", "spec.entrypoint", "did you mean main?");
    assert_finding(&f, "", "spec.onExit", "\"report\" is not a template");
}

#[test]
fn check_3_template_refs_and_workflows_name_a_linted_workflow_template() {
    let lib = steps(
        json!([{"name": "delta", "value": "1"}]),
        json!([{"name": "delta", "value": "1"}]),
        json!([]),
    );
    let caller = (
        PathBuf::from(FILE),
        json!({
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "WorkflowTemplate",
            "metadata": {"name": "caller"},
            "spec": {"entrypoint": "go", "templates": [{"name": "go", "steps": [[
                {"name": "a", "templateRef": {"name": "t", "template": "scale"},
                 "arguments": {"parameters": [{"name": "delta", "value": "1"}]}},
                {"name": "b", "templateRef": {"name": "t", "template": "scal"},
                 "arguments": {"parameters": [{"name": "delta", "value": "1"}]}},
                {"name": "c", "templateRef": {"name": "tt", "template": "scale"}},
            ]]}]},
        }),
    );
    let run = (
        PathBuf::from(FILE),
        json!({
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "Workflow",
            "metadata": {"generateName": "t-"},
            "spec": {
                "workflowTemplateRef": {"name": "t"},
                "arguments": {"parameters": [{"name": "imag", "value": "mc:2"}]},
            },
        }),
    );
    let f = lint_documents(&[lib, caller, run]);
    assert_finding(
        &f,
        "caller/go",
        "steps[0][1].templateRef.template",
        "did you mean scale?",
    );
    assert_finding(
        &f,
        "caller/go",
        "steps[0][2].templateRef.name",
        "no WorkflowTemplate \"tt\"",
    );
    assert_finding(
        &f,
        "",
        "spec.arguments.parameters.imag",
        "declares no argument imag (did you mean image?)",
    );
    assert_finding(
        &f,
        "",
        "spec.arguments.parameters",
        "argument image has no default: give it here",
    );

    // In a template others run by templateRef, workflow.parameters are
    // the caller's.
    let (file, mut lib) = steps(
        json!([{"name": "delta", "value": "1"}]),
        json!([{"name": "delta", "value": "1"}]),
        json!([]),
    );
    lib["spec"]["templates"][1]["plugin"]["gameops"]["scale"]["gameServerSet"] =
        json!("{{workflow.parameters.image}}");
    let caller = (
        PathBuf::from(FILE),
        json!({
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "WorkflowTemplate",
            "metadata": {"name": "caller"},
            "spec": {"entrypoint": "go", "templates": [{"name": "go", "steps": [[
                {"name": "a", "templateRef": {"name": "t", "template": "main"},
                 "arguments": {"parameters": [{"name": "image", "value": "1"}]}},
            ]]}]},
        }),
    );
    let f = lint_documents(&[(file, lib), caller]);
    assert_finding(
        &f,
        "t/scale",
        "plugin.gameops.scale.gameServerSet",
        "the caller's",
    );
}

#[test]
fn check_3_tasks_items_and_unknown_variables() {
    let doc = wt(
        json!([]),
        json!([
            {"name": "main", "dag": {"tasks": [
                {"name": "a", "template": "status"},
                {"name": "b", "template": "status", "depends": "a"},
                {"name": "c", "template": "echo", "depends": "a && d",
                 "arguments": {"parameters": [{"name": "x", "value": "{{tasks.b.outputs.parameters.total}}"}]}},
                {"name": "e", "template": "echo", "withItems": ["a"], "depends": "b",
                 "arguments": {"parameters": [{"name": "x", "value": "{{item}} {{tasks.b.outputs.parameters.total}}"}]}},
                {"name": "f", "template": "echo",
                 "arguments": {"parameters": [{"name": "x", "value": "{{item}}"}]}},
                {"name": "g", "template": "echo",
                 "arguments": {"parameters": [{"name": "x", "value": "{{steps.a.status}} {{wokflow.name}} {{workflow.name}}"}]}},
            ]}},
            {"name": "status",
             "outputs": {"parameters": [{"name": "total", "value": ""}]},
             "plugin": {"gameops": {"status": {"gameServerSet": "m"}}}},
            {"name": "echo", "inputs": {"parameters": [{"name": "x"}]}, "suspend": {}},
        ]),
    );
    let f = lint_documents(&[doc]);
    assert_finding(&f, "t/main", "dag.tasks[2].depends", "d is not a task");
    assert_finding(
        &f,
        "t/main",
        "dag.tasks[2].arguments.parameters.x",
        "task c does not depend on task b",
    );
    assert_finding(
        &f,
        "t/main",
        "dag.tasks[4].arguments.parameters.x",
        "item is set only in a step or task with withItems",
    );
    assert_finding(
        &f,
        "t/main",
        "dag.tasks[5].arguments.parameters.x",
        "this template's calls are tasks",
    );
    assert_finding(
        &f,
        "t/main",
        "dag.tasks[5].arguments.parameters.x",
        "{{wokflow.name}} is not a variable",
    );
    assert!(
        !f.iter()
            .any(|f| f.field.starts_with("dag.tasks[3]")
                || f.message.contains("{{workflow.name}}")),
        "{f:#?}"
    );
}

// Check 4 ---------------------------------------------------------------

#[test]
fn check_4_only_templates_the_local_runner_runs() {
    let doc = wt(
        json!([]),
        json!([
            {"name": "main", "steps": [[{"name": "a", "template": "echo"}], [{"name": "b", "template": "http"}]]},
            {"name": "echo", "container": {"image": "alpine", "command": ["echo"]}},
            {"name": "http", "http": {"url": "https://example.com"}},
            {"name": "nothing"},
        ]),
    );
    let f = lint_documents(&[doc]);
    assert_finding(
        &f,
        "t/echo",
        "container",
        "the local runner cannot run a container template; gameops templates use plugin steps",
    );
    assert_finding(&f, "t/http", "http", "cannot run a http template");
    assert_finding(&f, "t/nothing", "", "nothing to run");
}

// The typed model --------------------------------------------------------

#[test]
fn a_document_the_typed_model_rejects_is_a_finding_naming_the_template() {
    let (file, mut doc) = plugin("status", json!({"gameServerSet": "m"}));
    let templates = doc["spec"]["templates"].as_array_mut().unwrap();
    templates.push(json!({"suspend": {}}));
    let f = lint_documents(&[(file, doc)]);
    assert_finding(&f, "", "spec.templates[1]", "missing field `name`");
    assert_eq!(f.len(), 1, "{f:#?}");
}

#[test]
fn a_dag_may_not_mix_depends_and_dependencies() {
    // Argo's validation rejects it; the runner (like Argo) reads depends.
    let doc = wt(
        json!([]),
        json!([
            {"name": "main", "dag": {"tasks": [
                {"name": "a", "template": "wait"},
                {"name": "b", "template": "wait", "depends": "a"},
                {"name": "c", "template": "wait", "dependencies": ["a"], "depends": "b"},
            ]}},
            {"name": "wait", "suspend": {}},
        ]),
    );
    let f = lint_documents(&[doc]);
    assert_finding(&f, "t/main", "dag", "both depends and dependencies");
    assert_eq!(f.len(), 1, "{f:#?}");
}

/// Issue 11 item 13: `{{workflow.outputs.parameters.X}}` only when some
/// template declares an output with `globalName: X` (argo-workflows
/// `workflow/controller/operator.go` `addParamToGlobalScope` exports only
/// those), here or in a WorkflowTemplate reached by templateRef.
#[test]
fn workflow_outputs_must_be_declared_with_a_global_name() {
    let templates = |global: &str, read: &str| {
        json!([
            {"name": "main", "dag": {"tasks": [
                {"name": "count", "template": "count"},
                {"name": "use", "template": "use", "depends": "count",
                 "arguments": {"parameters": [{"name": "n", "value": format!("{{{{workflow.outputs.parameters.{read}}}}}")}]}}
            ]}},
            {"name": "count",
             "outputs": {"parameters": [{"name": "total", "value": "", "globalName": global}]},
             "plugin": {"gameops": {"status": {"gameServerSet": "a"}}}},
            {"name": "use", "inputs": {"parameters": [{"name": "n"}]},
             "plugin": {"gameops": {"status": {"gameServerSet": "{{inputs.parameters.n}}"}}}}
        ])
    };
    assert_clean(&lint_documents(&[wt(
        json!([]),
        templates("total", "total"),
    )]));
    let findings = lint_documents(&[wt(json!([]), templates("total", "totl"))]);
    assert_finding(
        &findings,
        "t/main",
        "dag.tasks[1].arguments.parameters.n",
        "{{workflow.outputs.parameters.totl}}: no template declares an output parameter with globalName: totl (did you mean total?)",
    );
    // Declared in a WorkflowTemplate this one reaches by templateRef.
    let (file, mut caller) = wt(
        json!([]),
        json!([
            {"name": "main", "steps": [
                [{"name": "count", "templateRef": {"name": "other", "template": "count"}}],
                [{"name": "use", "template": "use",
                  "arguments": {"parameters": [{"name": "n", "value": "{{workflow.outputs.parameters.total}}"}]}}]
            ]},
            {"name": "use", "inputs": {"parameters": [{"name": "n"}]},
             "plugin": {"gameops": {"status": {"gameServerSet": "{{inputs.parameters.n}}"}}}}
        ]),
    );
    caller["metadata"]["name"] = json!("caller");
    let (_, mut other) = wt(json!([]), templates("total", "total"));
    other["metadata"]["name"] = json!("other");
    assert_clean(&lint_documents(&[
        (file.clone(), caller.clone()),
        (file.clone(), other),
    ]));
    let findings = lint_documents(&[(file, caller)]);
    assert!(
        findings
            .iter()
            .any(|f| f.message.contains("globalName: total")),
        "{findings:?}"
    );
}

/// govaluate (argo-workflows v4.0.5 workflow/controller/steps.go
/// `shouldExecute`) fails a step whose `when` holds an unquoted empty or
/// hyphenated value: lint says so where a value can be one.
#[test]
fn a_when_operand_that_can_be_empty_or_hyphenated_must_be_quoted() {
    let doc = |when: &str, input: Value| {
        wt(
            json!([]),
            json!([
                {"name": "main", "inputs": {"parameters": [input]}, "steps": [
                    [{"name": "a", "template": "leaf"}],
                    [{"name": "b", "template": "leaf", "when": when}]
                ]},
                {"name": "leaf", "suspend": {}}
            ]),
        )
    };
    let f = lint_documents(&[doc(
        "{{inputs.parameters.app}} == my-app",
        json!({"name": "app", "default": "x"}),
    )]);
    assert_finding(
        &f,
        "t/main",
        "steps[1][0].when",
        "{{inputs.parameters.app}} is not quoted in this when",
    );
    assert_finding(
        &f,
        "t/main",
        "steps[1][0].when",
        "quote it: '{{inputs.parameters.app}}'",
    );
    for (when, input) in [
        (
            "'{{inputs.parameters.app}}' == 'my-app'",
            json!({"name": "app", "default": "x"}),
        ),
        (
            "\"{{inputs.parameters.app}}\" == x",
            json!({"name": "app", "default": "x"}),
        ),
        (
            "{{steps.a.status}} == Succeeded",
            json!({"name": "app", "default": "x"}),
        ),
        (
            "{{inputs.parameters.flag}} == true",
            json!({"name": "flag", "default": "true", "enum": ["true", "false"]}),
        ),
    ] {
        assert_clean(&lint_documents(&[doc(when, input)]));
    }
    // An enum with a hyphenated value is not safe unquoted.
    let f = lint_documents(&[doc(
        "{{inputs.parameters.mode}} == fast",
        json!({"name": "mode", "default": "fast", "enum": ["fast", "slow-start"]}),
    )]);
    assert_finding(&f, "t/main", "steps[1][0].when", "is not quoted");
}
