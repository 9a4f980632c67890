//! The checks of one Argo document as a whole: its name, the
//! WorkflowTemplate it starts and the arguments it passes, its entrypoint
//! and exit handler, its own arguments; then each template
//! ([`super::template`]).

use std::collections::BTreeSet;

use serde_json::Value;

use super::index::{Doc, Set, arr, s};
use super::template::lint_template;
use super::{Finding, Sink};
use crate::ops::check::{listing, suggest};

/// Checks document `d` of `set`; `by_ref` are the templates other
/// documents run by `templateRef`.
pub(super) fn lint_doc<'a>(
    set: &Set<'a>,
    d: usize,
    by_ref: &BTreeSet<(usize, &'a str)>,
    out: &mut Vec<Finding>,
) {
    let doc = &set.docs[d];
    let mut sink = Sink {
        out,
        file: doc.file.to_path_buf(),
        template: String::new(),
    };
    if doc.name.is_empty() {
        sink.add(
            "metadata.name",
            format!("the {} has no metadata.name (or generateName)", doc.kind),
        );
    }
    workflow_template_ref(set, d, &mut sink);
    template_names(doc, &mut sink);
    entry_and_exit(set, d, &mut sink);
    own_arguments(doc, &mut sink);
    entrypoint_inputs(set, d, &mut sink);
    for (i, tmpl) in doc.templates().iter().enumerate() {
        let name = s(&tmpl["name"]);
        let template = if name.is_empty() {
            format!("{}/templates[{i}]", doc.name)
        } else {
            format!("{}/{name}", doc.name)
        };
        let mut tsink = sink.template(template);
        if name.is_empty() {
            tsink.add("name", "the template has no name");
        }
        lint_template(set, d, tmpl, by_ref.contains(&(d, name)), &mut tsink);
    }
}

/// `spec.workflowTemplateRef` names a linted WorkflowTemplate, and the
/// arguments fit it.
fn workflow_template_ref(set: &Set<'_>, d: usize, sink: &mut Sink<'_>) {
    let doc = &set.docs[d];
    let Some(r) = doc.spec.get("workflowTemplateRef") else {
        return;
    };
    match set.base(d) {
        Some(b) => submission_arguments(doc, &set.docs[b], sink),
        None => {
            let (cluster, name) = (r["clusterScope"] == true, s(&r["name"]));
            sink.add(
                doc.field("workflowTemplateRef.name"),
                set.missing_template_message(name, cluster),
            );
        }
    }
}

/// Some templates (unless it starts another's), none named twice.
fn template_names(doc: &Doc<'_>, sink: &mut Sink<'_>) {
    let templates = doc.templates();
    if templates.is_empty() && doc.spec.get("workflowTemplateRef").is_none() {
        sink.add(
            doc.field("templates"),
            format!("{} {} has no templates", doc.kind, doc.name),
        );
    }
    let mut seen = BTreeSet::new();
    for t in templates {
        let name = s(&t["name"]);
        if !name.is_empty() && !seen.insert(name) {
            sink.add(
                doc.field("templates"),
                format!("two templates are named {name}"),
            );
        }
    }
}

/// `entrypoint` (required of a Workflow of its own) and `onExit` name
/// templates.
fn entry_and_exit(set: &Set<'_>, d: usize, sink: &mut Sink<'_>) {
    let doc = &set.docs[d];
    let known = || {
        let mut all: Vec<&str> = doc.templates().iter().map(|t| s(&t["name"])).collect();
        if let Some(b) = set.base(d) {
            all.extend(set.docs[b].templates().iter().map(|t| s(&t["name"])));
        }
        all
    };
    let named = |key: &str, sink: &mut Sink<'_>| {
        if let Some(e) = doc.spec.get(key).and_then(Value::as_str)
            && set.local(d, e).is_none()
        {
            sink.add(
                doc.field(key),
                format!("{e:?} is not a template here{}", suggest(e, known())),
            );
        }
    };
    named("entrypoint", sink);
    let starts_another = doc.spec.get("workflowTemplateRef").is_some();
    let entrypoint = doc.spec.get("entrypoint").and_then(Value::as_str);
    if entrypoint.is_none() && !doc.is_template() && !starts_another {
        sink.add(
            doc.field("entrypoint"),
            "is missing: name the template the workflow starts with",
        );
    }
    named("onExit", sink);
}

/// Arguments: named once, values in their enum; a Workflow gives every
/// one a value.
fn own_arguments(doc: &Doc<'_>, sink: &mut Sink<'_>) {
    let mut seen = BTreeSet::new();
    for p in arr(&doc.spec["arguments"]["parameters"]) {
        let name = s(&p["name"]);
        let field = doc.field(&format!("arguments.parameters.{name}"));
        if name.is_empty() {
            sink.add(doc.field("arguments.parameters"), "a parameter has no name");
        } else if !seen.insert(name) {
            sink.add(field.clone(), format!("two arguments are named {name}"));
        }
        if let (Some(values), Some(value)) = (p["enum"].as_array(), p.get("value"))
            && !values.contains(value)
        {
            sink.add(
                field.clone(),
                format!(
                    "value {value} is not one of its enum {}",
                    Value::from(values.clone())
                ),
            );
        }
        if !doc.is_template() && p.get("value").is_none() && p.get("valueFrom").is_none() {
            sink.add(
                field,
                "has no value: a Workflow must give each of its arguments one",
            );
        }
    }
}

/// Argo hands the workflow's arguments to the entrypoint's inputs by
/// name: an input without a default must be one of them.
fn entrypoint_inputs(set: &Set<'_>, d: usize, sink: &mut Sink<'_>) {
    let doc = &set.docs[d];
    let Some(e) = doc.spec.get("entrypoint").and_then(Value::as_str) else {
        return;
    };
    let Some(entry) = doc.template(e) else {
        return;
    };
    let given = set.arguments(d);
    for p in arr(&entry["inputs"]["parameters"]) {
        let name = s(&p["name"]);
        let required = p.get("default").is_none() && p.get("value").is_none();
        if required && !name.is_empty() && !given.contains(name) {
            sink.template(format!("{}/{e}", doc.name)).add(
                format!("inputs.parameters.{name}"),
                format!(
                    "the entrypoint's input {name} has no default and {} does not declare it: Argo fills the entrypoint's inputs from the workflow's arguments",
                    doc.field("arguments.parameters")
                ),
            );
        }
    }
}

/// A Workflow that starts a WorkflowTemplate passes arguments it declares,
/// in their enums, and every one without a default.
fn submission_arguments(doc: &Doc<'_>, wt: &Doc<'_>, sink: &mut Sink<'_>) {
    let declared = arr(&wt.spec["arguments"]["parameters"]);
    let passed = arr(&doc.spec["arguments"]["parameters"]);
    let declared_names: Vec<&str> = declared.iter().map(|p| s(&p["name"])).collect();
    for p in passed {
        let name = s(&p["name"]);
        let field = doc.field(&format!("arguments.parameters.{name}"));
        match declared.iter().find(|d| d["name"] == name) {
            None => sink.add(
                field,
                format!(
                    "{} {} declares no argument {name}{}; it has {}",
                    wt.kind,
                    wt.name,
                    suggest(name, declared_names.iter().copied()),
                    listing(&declared_names)
                ),
            ),
            Some(d) => {
                if let (Some(values), Some(value)) = (d["enum"].as_array(), p.get("value"))
                    && !values.contains(value)
                {
                    sink.add(
                        field,
                        format!("{value} is not one of {}", Value::from(values.clone())),
                    );
                }
            }
        }
    }
    for d in declared {
        let name = s(&d["name"]);
        let has_default = d.get("value").is_some() || d.get("valueFrom").is_some();
        if !has_default && !passed.iter().any(|p| p["name"] == name) {
            sink.add(
                doc.field("arguments.parameters"),
                format!(
                    "{} {}'s argument {name} has no default: give it here",
                    wt.kind, wt.name
                ),
            );
        }
    }
}
