//! The Argo documents being linted, as an index over the typed model
//! ([`crate::argo::workflow`], as the runner reads them) next to the raw
//! JSON (for the `{{...}}` walk and exact fields): each document's kind,
//! name and spec, the WorkflowTemplates by name, which template a step or
//! task runs, and the steps and tasks of a template with what each waits for.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use super::Finding;
use crate::argo::workflow::{KINDS, Parameter, Spec, Step, Template};
use crate::ops::check::{join, suggest};

pub(super) fn arr(v: &Value) -> &[Value] {
    v.as_array().map(Vec::as_slice).unwrap_or(&[])
}

pub(super) fn s(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}

/// The `name`s of a parameter (or artifact) list.
pub(super) fn names(list: &[Parameter]) -> BTreeSet<&str> {
    list.iter().map(|p| p.name.as_str()).collect()
}

/// `ClusterWorkflowTemplate` or `WorkflowTemplate`.
pub(super) fn template_kind(cluster: bool) -> &'static str {
    if cluster {
        "ClusterWorkflowTemplate"
    } else {
        "WorkflowTemplate"
    }
}

/// One Argo document.
pub(super) struct Doc<'a> {
    pub(super) file: &'a Path,
    pub(super) kind: &'a str,
    /// `metadata.name`, else `metadata.generateName`.
    pub(super) name: &'a str,
    /// The spec as written.
    pub(super) raw: &'a Value,
    /// The spec as the runner reads it (empty when it does not parse).
    pub(super) spec: Spec,
    /// Why the spec does not parse: the field (relative to the spec) and
    /// the parser's message.
    pub(super) invalid: Option<(String, String)>,
    /// Where `spec` is, for fields (`spec`, or `spec.workflowSpec`).
    pub(super) spec_path: &'static str,
}

impl<'a> Doc<'a> {
    pub(super) fn new(file: &'a Path, value: &'a Value) -> Option<Self> {
        if !s(&value["apiVersion"]).starts_with("argoproj.io/") {
            return None;
        }
        let kind = KINDS.into_iter().find(|k| value["kind"] == *k)?;
        let metadata = &value["metadata"];
        let name = metadata["name"]
            .as_str()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| s(&metadata["generateName"]));
        let (raw, spec_path) = if kind == "CronWorkflow" {
            (&value["spec"]["workflowSpec"], "spec.workflowSpec")
        } else {
            (&value["spec"], "spec")
        };
        let (spec, invalid) = match parse(raw) {
            Ok(spec) => (spec, None),
            Err(why) => (Spec::default(), Some(why)),
        };
        Some(Doc {
            file,
            kind,
            name,
            raw,
            spec,
            invalid,
            spec_path,
        })
    }

    /// Its templates, typed and as written.
    pub(super) fn templates(&self) -> impl Iterator<Item = (&Template, &'a Value)> {
        self.spec.templates.iter().zip(arr(&self.raw["templates"]))
    }

    pub(super) fn field(&self, rest: &str) -> String {
        join(self.spec_path, rest)
    }

    /// Whether this is a library of templates rather than a run.
    pub(super) fn is_template(&self) -> bool {
        self.kind.ends_with("WorkflowTemplate")
    }
}

/// A spec as the typed model reads it, or the field (the first template
/// that does not parse, else the spec) and why not.
fn parse(raw: &Value) -> Result<Spec, (String, String)> {
    if raw.is_null() {
        return Ok(Spec::default());
    }
    Spec::deserialize(raw).map_err(|e| {
        let template = arr(&raw["templates"])
            .iter()
            .enumerate()
            .find_map(|(i, t)| {
                let e = Template::deserialize(t).err()?;
                Some((format!("templates[{i}]"), e.to_string()))
            });
        template.unwrap_or_else(|| (String::new(), e.to_string()))
    })
}

/// All the documents, and the WorkflowTemplates by name.
pub(super) struct Set<'a> {
    pub(super) docs: Vec<Doc<'a>>,
    /// (cluster scope, name) to index in `docs`.
    pub(super) by_name: BTreeMap<(bool, &'a str), usize>,
}

impl<'a> Set<'a> {
    pub(super) fn new(docs: &'a [(PathBuf, Value)]) -> Self {
        let docs: Vec<Doc<'a>> = docs
            .iter()
            .filter_map(|(file, value)| Doc::new(file, value))
            .collect();
        let mut by_name = BTreeMap::new();
        for (i, doc) in docs.iter().enumerate() {
            if doc.is_template() && !doc.name.is_empty() {
                by_name
                    .entry((doc.kind == "ClusterWorkflowTemplate", doc.name))
                    .or_insert(i);
            }
        }
        Set { docs, by_name }
    }

    /// Two WorkflowTemplates with one name: only one can be installed.
    pub(super) fn duplicate_names(&self, out: &mut Vec<Finding>) {
        for (i, doc) in self.docs.iter().enumerate() {
            let cluster = doc.kind == "ClusterWorkflowTemplate";
            if let Some(&first) = self.by_name.get(&(cluster, doc.name))
                && doc.is_template()
                && first != i
            {
                out.push(Finding {
                    file: doc.file.to_path_buf(),
                    template: String::new(),
                    field: "metadata.name".into(),
                    message: format!(
                        "{} {} is also defined in {}; installing both keeps only one",
                        doc.kind,
                        doc.name,
                        self.docs[first].file.display()
                    ),
                });
            }
        }
    }

    pub(super) fn find(&self, name: &str, cluster: bool) -> Option<usize> {
        self.by_name.get(&(cluster, name)).copied()
    }

    /// The WorkflowTemplate a Workflow starts (`spec.workflowTemplateRef`).
    pub(super) fn base(&self, d: usize) -> Option<usize> {
        let r = self.docs[d].spec.workflow_template_ref.as_ref()?;
        self.find(&r.name, r.cluster_scope)
    }

    /// The template `name` as a `template:` in document `d` sees it: its
    /// own, or else one of the WorkflowTemplate it starts.
    pub(super) fn local(&self, d: usize, name: &str) -> Option<(usize, &Template)> {
        if let Some(t) = self.docs[d].spec.template(name) {
            return Some((d, t));
        }
        let b = self.base(d)?;
        self.docs[b].spec.template(name).map(|t| (b, t))
    }

    /// The names of the templates document `d` sees: its own, then those
    /// of the WorkflowTemplate it starts.
    pub(super) fn known(&self, d: usize) -> impl Iterator<Item = &str> {
        let base = self.base(d).map(|b| &self.docs[b].spec.templates);
        let all = self.docs[d].spec.templates.iter();
        all.chain(base.into_iter().flatten())
            .map(|t| t.name.as_str())
    }

    /// The document and template a step or task of document `d` runs (none
    /// for an inline template), or the field (relative to the step) and
    /// what is wrong.
    pub(super) fn callee(
        &self,
        d: usize,
        step: &Step,
    ) -> Result<Option<(usize, &Template)>, (String, String)> {
        match (&step.template, &step.template_ref, &step.inline) {
            (Some(name), None, None) => self.local(d, name).map(Some).ok_or_else(|| {
                (
                    "template".into(),
                    format!(
                        "no template {name:?} in this document{}",
                        suggest(name, self.known(d))
                    ),
                )
            }),
            (None, Some(r), None) => {
                let (wt, name) = (&r.name, &r.template);
                let Some(w) = self.find(wt, r.cluster_scope) else {
                    return Err((
                        "templateRef.name".into(),
                        self.missing_template_message(wt, r.cluster_scope),
                    ));
                };
                let kind = template_kind(r.cluster_scope);
                let t = self.docs[w].spec.template(name).ok_or_else(|| {
                    (
                        "templateRef.template".into(),
                        format!(
                            "{kind} {wt} has no template {name:?}{}",
                            suggest(name, self.known(w))
                        ),
                    )
                })?;
                Ok(Some((w, t)))
            }
            (None, None, Some(_)) => Ok(None),
            _ => Err((
                String::new(),
                "needs exactly one of template, templateRef and inline".into(),
            )),
        }
    }

    /// No (Cluster)WorkflowTemplate `name`: what to say.
    pub(super) fn missing_template_message(&self, name: &str, cluster: bool) -> String {
        let known = self
            .by_name
            .keys()
            .filter(|(c, _)| *c == cluster)
            .map(|(_, n)| *n);
        format!(
            "no {} {name:?} among the linted files{}",
            template_kind(cluster),
            suggest(name, known)
        )
    }

    /// The templates other documents run by `templateRef`, and what those
    /// call in their own document, by (document, template name): in them
    /// `{{workflow.parameters.X}}` is the calling workflow's.
    pub(super) fn reached_by_template_ref(&self) -> BTreeSet<(usize, &str)> {
        let mut todo: Vec<(usize, &Template)> = Vec::new();
        for d in 0..self.docs.len() {
            for tmpl in &self.docs[d].spec.templates {
                for call in calls(tmpl, &Value::Null) {
                    if call.step.template_ref.is_some()
                        && let Ok(Some((w, t))) = self.callee(d, call.step)
                        && w != d
                    {
                        todo.push((w, t));
                    }
                }
            }
        }
        let mut seen = BTreeSet::new();
        while let Some((d, tmpl)) = todo.pop() {
            if !seen.insert((d, tmpl.name.as_str())) {
                continue;
            }
            for call in calls(tmpl, &Value::Null) {
                if let Some(name) = &call.step.template
                    && let Some(t) = self.docs[d].spec.template(name)
                {
                    todo.push((d, t));
                }
            }
        }
        seen
    }

    /// The `globalName`s of the output parameters (`parameters`) or
    /// artifacts (`artifacts`) declared by the templates of document `d`,
    /// of the WorkflowTemplate it starts and of every WorkflowTemplate
    /// they reach by `templateRef`: what `{{workflow.outputs.<group>.X}}`
    /// may name there. With `everywhere`, those of every document.
    pub(super) fn global_names(&self, d: usize, group: &str, everywhere: bool) -> BTreeSet<&str> {
        let mut todo: Vec<usize> = if everywhere {
            (0..self.docs.len()).collect()
        } else {
            std::iter::once(d).chain(self.base(d)).collect()
        };
        let mut seen = BTreeSet::new();
        let mut out = BTreeSet::new();
        while let Some(doc) = todo.pop() {
            if !seen.insert(doc) {
                continue;
            }
            for tmpl in &self.docs[doc].spec.templates {
                let declared = if group == "artifacts" {
                    &tmpl.outputs.artifacts
                } else {
                    &tmpl.outputs.parameters
                };
                out.extend(
                    declared
                        .iter()
                        .filter_map(|p| p.global_name.as_deref())
                        .filter(|g| !g.is_empty()),
                );
                for call in calls(tmpl, &Value::Null) {
                    if let Some(r) = &call.step.template_ref
                        && let Some(w) = self.find(&r.name, r.cluster_scope)
                    {
                        todo.push(w);
                    }
                }
            }
        }
        out
    }

    /// The names `{{workflow.parameters.X}}` may use in document `d`.
    pub(super) fn arguments(&self, d: usize) -> BTreeSet<&str> {
        let mut out = names(&self.docs[d].spec.arguments.parameters);
        if let Some(b) = self.base(d) {
            out.extend(names(&self.docs[b].spec.arguments.parameters));
        }
        out
    }
}

/// One step or DAG task of a template.
pub(super) struct Call<'a> {
    pub(super) name: &'a str,
    pub(super) step: &'a Step,
    /// The step as written (null when not given).
    pub(super) raw: &'a Value,
    /// The step group (steps templates); 0 for tasks.
    pub(super) group: usize,
    /// `steps[G][I]` or `dag.tasks[I]`.
    pub(super) path: String,
}

/// The steps or tasks of `tmpl`, `raw` as written (or null).
pub(super) fn calls<'a>(tmpl: &'a Template, raw: &'a Value) -> Vec<Call<'a>> {
    let mut out = Vec::new();
    for (g, group) in tmpl.steps.iter().flatten().enumerate() {
        for (i, step) in group.iter().enumerate() {
            out.push(Call {
                name: &step.name,
                step,
                raw: &raw["steps"][g][i],
                group: g,
                path: format!("steps[{g}][{i}]"),
            });
        }
    }
    for (i, step) in tmpl.dag.iter().flat_map(|d| &d.tasks).enumerate() {
        out.push(Call {
            name: &step.name,
            step,
            raw: &raw["dag"]["tasks"][i],
            group: 0,
            path: format!("dag.tasks[{i}]"),
        });
    }
    out
}

/// Every task `name` waits for, directly or not.
pub(super) fn ancestors<'a>(tasks: &[Call<'a>], name: &str) -> BTreeSet<&'a str> {
    let mut seen = BTreeSet::new();
    let mut todo = vec![name];
    while let Some(n) = todo.pop() {
        let Some(task) = tasks.iter().find(|t| t.name == n) else {
            continue;
        };
        for dep in task.step.waits_for() {
            if let Some(t) = tasks.iter().find(|t| t.name == dep)
                && seen.insert(t.name)
            {
                todo.push(t.name);
            }
        }
    }
    seen
}
