//! The Argo documents being linted, as an index: each document's kind,
//! name and spec, the WorkflowTemplates by name, which template a step or
//! task runs, and the steps and tasks of a template with what each waits for.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::Finding;
use crate::argo::expr;
use crate::argo::workflow::KINDS;
use crate::ops::check::{join, suggest};

pub(super) fn arr(v: &Value) -> &[Value] {
    v.as_array().map(Vec::as_slice).unwrap_or(&[])
}

pub(super) fn s(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}

/// The `name`s of a parameter (or artifact) list.
pub(super) fn names(list: &Value) -> BTreeSet<&str> {
    arr(list).iter().map(|p| s(&p["name"])).collect()
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
    pub(super) spec: &'a Value,
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
        let (spec, spec_path) = if kind == "CronWorkflow" {
            (&value["spec"]["workflowSpec"], "spec.workflowSpec")
        } else {
            (&value["spec"], "spec")
        };
        Some(Doc {
            file,
            kind,
            name,
            spec,
            spec_path,
        })
    }

    pub(super) fn templates(&self) -> &'a [Value] {
        let spec: &'a Value = self.spec;
        arr(&spec["templates"])
    }

    pub(super) fn template(&self, name: &str) -> Option<&'a Value> {
        self.templates().iter().find(|t| t["name"] == name)
    }

    pub(super) fn field(&self, rest: &str) -> String {
        join(self.spec_path, rest)
    }

    /// Whether this is a library of templates rather than a run.
    pub(super) fn is_template(&self) -> bool {
        self.kind.ends_with("WorkflowTemplate")
    }
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
        let r = self.docs[d].spec.get("workflowTemplateRef")?;
        self.find(s(&r["name"]), r["clusterScope"] == true)
    }

    /// The template `name` as a `template:` in document `d` sees it: its
    /// own, or else one of the WorkflowTemplate it starts.
    pub(super) fn local(&self, d: usize, name: &str) -> Option<(usize, &'a Value)> {
        if let Some(t) = self.docs[d].template(name) {
            return Some((d, t));
        }
        let b = self.base(d)?;
        self.docs[b].template(name).map(|t| (b, t))
    }

    /// The document and template a step or task of document `d` runs, or
    /// the field (relative to the step) and what is wrong.
    pub(super) fn callee(
        &self,
        d: usize,
        step: &'a Value,
    ) -> Result<(usize, &'a Value), (String, String)> {
        let by = |k: &str| step.get(k).filter(|v| !v.is_null());
        match (by("template"), by("templateRef"), by("inline")) {
            (Some(t), None, None) => {
                let name = s(t);
                self.local(d, name).ok_or_else(|| {
                    let known = self.docs[d].templates().iter().map(|t| s(&t["name"]));
                    (
                        "template".into(),
                        format!(
                            "no template {name:?} in this document{}",
                            suggest(name, known)
                        ),
                    )
                })
            }
            (None, Some(r), None) => {
                let wt = s(&r["name"]);
                let name = s(&r["template"]);
                let cluster = r["clusterScope"] == true;
                let kind = template_kind(cluster);
                let Some(w) = self.find(wt, cluster) else {
                    return Err((
                        "templateRef.name".into(),
                        self.missing_template_message(wt, cluster),
                    ));
                };
                self.docs[w].template(name).map(|t| (w, t)).ok_or_else(|| {
                    let known = self.docs[w].templates().iter().map(|t| s(&t["name"]));
                    (
                        "templateRef.template".into(),
                        format!(
                            "{kind} {wt} has no template {name:?}{}",
                            suggest(name, known)
                        ),
                    )
                })
            }
            (None, None, Some(inline)) => Ok((d, inline)),
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
    pub(super) fn reached_by_template_ref(&self) -> BTreeSet<(usize, &'a str)> {
        let mut todo: Vec<(usize, &'a Value)> = Vec::new();
        for d in 0..self.docs.len() {
            for tmpl in self.docs[d].templates() {
                for call in calls(tmpl) {
                    if call.step.get("templateRef").is_some()
                        && let Ok((w, t)) = self.callee(d, call.step)
                        && w != d
                    {
                        todo.push((w, t));
                    }
                }
            }
        }
        let mut seen = BTreeSet::new();
        while let Some((d, tmpl)) = todo.pop() {
            if !seen.insert((d, s(&tmpl["name"]))) {
                continue;
            }
            for call in calls(tmpl) {
                if let Some(name) = call.step["template"].as_str()
                    && let Some(t) = self.docs[d].template(name)
                {
                    todo.push((d, t));
                }
            }
        }
        seen
    }

    /// The names `{{workflow.parameters.X}}` may use in document `d`.
    pub(super) fn arguments(&self, d: usize) -> BTreeSet<&'a str> {
        let mut out = names(&self.docs[d].spec["arguments"]["parameters"]);
        if let Some(b) = self.base(d) {
            out.extend(names(&self.docs[b].spec["arguments"]["parameters"]));
        }
        out
    }
}

/// One step or DAG task of a template.
pub(super) struct Call<'a> {
    pub(super) name: &'a str,
    pub(super) step: &'a Value,
    /// The step group (steps templates); 0 for tasks.
    pub(super) group: usize,
    /// `steps[G][I]` or `dag.tasks[I]`.
    pub(super) path: String,
}

pub(super) fn calls(tmpl: &Value) -> Vec<Call<'_>> {
    let mut out = Vec::new();
    for (g, group) in arr(&tmpl["steps"]).iter().enumerate() {
        for (i, step) in arr(group).iter().enumerate() {
            out.push(Call {
                name: s(&step["name"]),
                step,
                group: g,
                path: format!("steps[{g}][{i}]"),
            });
        }
    }
    for (i, step) in arr(&tmpl["dag"]["tasks"]).iter().enumerate() {
        out.push(Call {
            name: s(&step["name"]),
            step,
            group: 0,
            path: format!("dag.tasks[{i}]"),
        });
    }
    out
}

/// The tasks a DAG task waits for (`dependencies`, or the task names in
/// `depends`, whatever result they name).
pub(super) fn dependencies(task: &Value) -> Vec<String> {
    match task["dependencies"].as_array() {
        Some(list) => list.iter().map(|d| s(d).to_owned()).collect(),
        None => expr::depends_on(s(&task["depends"])),
    }
}

/// Every task `name` waits for, directly or not.
pub(super) fn ancestors<'a>(tasks: &[Call<'a>], name: &str) -> BTreeSet<&'a str> {
    let mut seen = BTreeSet::new();
    let mut todo = vec![name];
    while let Some(n) = todo.pop() {
        let Some(task) = tasks.iter().find(|t| t.name == n) else {
            continue;
        };
        for dep in dependencies(task.step) {
            if let Some(t) = tasks.iter().find(|t| t.name == dep)
                && seen.insert(t.name)
            {
                todo.push(t.name);
            }
        }
    }
    seen
}
