//! The checks of one Argo document as a whole: its name, the
//! WorkflowTemplate it starts and the arguments it passes, its entrypoint
//! and exit handler, its own arguments; then each template
//! ([`super::template`]).

use std::collections::BTreeSet;

use serde_json::Value;

use super::index::{Doc, Set};
use super::template::lint_template;
use super::{Finding, Sink};
use crate::ops::check::{listing, suggest};

/// Checks document `d` of `set`; `by_ref` are the templates other
/// documents run by `templateRef`.
pub(super) fn lint_doc(
    set: &Set<'_>,
    d: usize,
    by_ref: &BTreeSet<(usize, &str)>,
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
    if let Some((field, message)) = &doc.invalid {
        let what = format!("not a valid Argo {}: {message}", doc.kind);
        return sink.add(doc.field(field), what);
    }
    workflow_template_ref(set, d, &mut sink);
    template_names(doc, &mut sink);
    entry_and_exit(set, d, &mut sink);
    own_arguments(doc, &mut sink);
    entrypoint_inputs(set, d, &mut sink);
    for (i, (tmpl, raw)) in doc.templates().enumerate() {
        let name = tmpl.name.as_str();
        let template = if name.is_empty() {
            format!("{}/templates[{i}]", doc.name)
        } else {
            format!("{}/{name}", doc.name)
        };
        let mut tsink = sink.template(template);
        if name.is_empty() {
            tsink.add("name", "the template has no name");
        }
        lint_template(set, d, (tmpl, raw), by_ref.contains(&(d, name)), &mut tsink);
    }
}

/// `spec.workflowTemplateRef` names a linted WorkflowTemplate, and the
/// arguments fit it.
fn workflow_template_ref(set: &Set<'_>, d: usize, sink: &mut Sink<'_>) {
    let doc = &set.docs[d];
    let Some(r) = &doc.spec.workflow_template_ref else {
        return;
    };
    match set.base(d) {
        Some(b) => submission_arguments(doc, &set.docs[b], sink),
        None => sink.add(
            doc.field("workflowTemplateRef.name"),
            set.missing_template_message(&r.name, r.cluster_scope),
        ),
    }
}

/// Some templates (unless it starts another's), none named twice.
fn template_names(doc: &Doc<'_>, sink: &mut Sink<'_>) {
    let templates = &doc.spec.templates;
    if templates.is_empty() && doc.spec.workflow_template_ref.is_none() {
        sink.add(
            doc.field("templates"),
            format!("{} {} has no templates", doc.kind, doc.name),
        );
    }
    let mut seen = BTreeSet::new();
    for t in templates {
        let name = &t.name;
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
    let named = |key: &str, value: &Option<String>, sink: &mut Sink<'_>| {
        if let Some(e) = value
            && set.local(d, e).is_none()
        {
            sink.add(
                doc.field(key),
                format!("{e:?} is not a template here{}", suggest(e, set.known(d))),
            );
        }
    };
    named("entrypoint", &doc.spec.entrypoint, sink);
    let starts_another = doc.spec.workflow_template_ref.is_some();
    if doc.spec.entrypoint.is_none() && !doc.is_template() && !starts_another {
        sink.add(
            doc.field("entrypoint"),
            "is missing: name the template the workflow starts with",
        );
    }
    named("onExit", &doc.spec.on_exit, sink);
}

/// Arguments: named once, values in their enum; a Workflow gives every
/// one a value.
fn own_arguments(doc: &Doc<'_>, sink: &mut Sink<'_>) {
    let mut seen = BTreeSet::new();
    for p in &doc.spec.arguments.parameters {
        let name = &p.name;
        let field = doc.field(&format!("arguments.parameters.{name}"));
        if name.is_empty() {
            sink.add(doc.field("arguments.parameters"), "a parameter has no name");
        } else if !seen.insert(name) {
            sink.add(field.clone(), format!("two arguments are named {name}"));
        }
        if let (Some(values), Some(value)) = (&p.enum_values, &p.value)
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
        if !doc.is_template() && p.value.is_none() && p.value_from.is_none() {
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
    let Some(e) = &doc.spec.entrypoint else {
        return;
    };
    let Some(entry) = doc.spec.template(e) else {
        return;
    };
    let given = set.arguments(d);
    for p in &entry.inputs.parameters {
        let name = p.name.as_str();
        let required = p.default.is_none() && p.value.is_none();
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
    let declared = &wt.spec.arguments.parameters;
    let passed = &doc.spec.arguments.parameters;
    let declared_names: Vec<&str> = declared.iter().map(|p| p.name.as_str()).collect();
    for p in passed {
        let name = &p.name;
        let field = doc.field(&format!("arguments.parameters.{name}"));
        match declared.iter().find(|d| d.name == *name) {
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
                if let (Some(values), Some(value)) = (&d.enum_values, &p.value)
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
        let name = &d.name;
        let has_default = d.value.is_some() || d.value_from.is_some();
        if !has_default && !passed.iter().any(|p| p.name == *name) {
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
