//! `gameops lint [DIR]`: checks Argo WorkflowTemplates and Workflows offline
//! (no cluster, no network), before anyone submits them.
//!
//! [`lint_dir`] reads every `*.yaml` / `*.yml` file of a directory and of
//! its `examples/` (every YAML document of a file counts) and
//! [`lint_documents`] checks the Argo documents among them (`Workflow`,
//! `WorkflowTemplate`, `ClusterWorkflowTemplate`, `CronWorkflow`; other
//! documents are not looked at):
//!
//! 1. every plugin template `plugin: {gameops: {OP: {...}}}` names exactly
//!    one op of the gameops executor plugin ([`crate::ops::OPS`]); templates
//!    of other plugins are left alone;
//! 2. the op's arguments are the ones it takes, the required ones are
//!    there, and every value without a `{{...}}` has the right type:
//!    numbers, booleans, opsStates, `then`, image references,
//!    `CONTAINER/IMAGE` entries, `select` and tag filters (compiled as
//!    `resolveTag` compiles them); declared outputs are ones the op gives;
//! 3. every `{{...}}` resolves: `inputs.parameters.X` is an input of the
//!    template, `workflow.parameters.X` an argument of the document (or of
//!    the WorkflowTemplate a Workflow starts), `steps.S...` / `tasks.T...`
//!    name a step of an earlier group / a task it depends on, with an output
//!    the step's template declares, `item` is used only in loops; every
//!    `template`, `templateRef`, entrypoint and `onExit` names a template
//!    that exists, and every call passes the inputs its template declares
//!    (all those without a default);
//! 4. only templates the local runner executes: steps, dag, suspend and
//!    plugin; container, script, resource, http, containerSet and data
//!    templates are findings.
//!
//! Each problem is a [`Finding`] naming the file, the template and the
//! field, e.g.
//! `workflow-templates/seamless-release.yaml: seamless-release/scale-up: plugin.gameops.scale.delta: expected a whole number such as 3 or -2 (or "3"), not "three"`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use regex::Regex;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::ops::OPS;
use crate::ops::progress::MAX_TIMEOUT_SECONDS;
use crate::ops::select::Select;
use crate::registry::filter::Filter;

/// One problem in one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The file, as it was given (for [`lint_dir`]: the directory joined
    /// with the file's name).
    pub file: PathBuf,
    /// `DOCUMENT/TEMPLATE`: the WorkflowTemplate's or Workflow's name
    /// (`metadata.name`, else `metadata.generateName`) and the template's;
    /// empty for a problem of the document itself.
    pub template: String,
    /// The field: inside the template for template problems
    /// (`steps[2][0].arguments.parameters.delta`,
    /// `plugin.gameops.scale.delta`), inside the document otherwise
    /// (`spec.entrypoint`); may be empty.
    pub field: String,
    /// What is wrong, and the fix where there is an obvious one; one line.
    pub message: String,
}

impl fmt::Display for Finding {
    /// `FILE: TEMPLATE: FIELD: MESSAGE` on one line; an empty template or
    /// field is left out with its separator.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        for part in [&self.template, &self.field] {
            if !part.is_empty() {
                write!(f, ": {part}")?;
            }
        }
        write!(f, ": {}", self.message)
    }
}

/// Why [`lint_dir`] could not check anything at all. Problems of the
/// documents themselves are [`Finding`]s.
#[derive(Debug, thiserror::Error)]
pub enum LintError {
    /// A directory or file could not be read.
    #[error("{}: {source}", .path.display())]
    Read {
        /// The directory or file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file is not valid YAML.
    #[error("{}{}: not valid YAML: {message}", .file.display(), line_suffix(.line))]
    Yaml {
        /// The file.
        file: PathBuf,
        /// The line (1-based) the parser stopped at, when it says.
        line: Option<usize>,
        /// The parser's message.
        message: String,
    },
}

fn line_suffix(line: &Option<usize>) -> String {
    line.map(|l| format!(":{l}")).unwrap_or_default()
}

/// Reads every `*.yaml` / `*.yml` file in `dir` and in `dir/examples`
/// (when it exists; also accepts a single file for `dir`), every YAML
/// document of each, and checks them with [`lint_documents`]. A directory
/// without any YAML file is a finding (nothing was checked).
///
/// Errors only when a directory or file cannot be read or a file is not
/// valid YAML (with its file and line).
pub fn lint_dir(dir: &Path) -> Result<Vec<Finding>, LintError> {
    let files = if dir.is_file() {
        vec![dir.to_path_buf()]
    } else {
        let mut files = yaml_files(dir)?;
        let examples = dir.join("examples");
        if examples.is_dir() {
            files.extend(yaml_files(&examples)?);
        }
        files
    };
    if files.is_empty() {
        return Ok(vec![Finding {
            file: dir.to_path_buf(),
            template: String::new(),
            field: String::new(),
            message: "no *.yaml or *.yml file here or in examples/: nothing to check".into(),
        }]);
    }
    let mut docs = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).map_err(|source| LintError::Read {
            path: file.clone(),
            source,
        })?;
        for value in parse_yaml(&file, &text)? {
            docs.push((file.clone(), value));
        }
    }
    Ok(lint_documents(&docs))
}

/// The YAML files directly in `dir`, sorted.
fn yaml_files(dir: &Path) -> Result<Vec<PathBuf>, LintError> {
    let read = |source| LintError::Read {
        path: dir.to_path_buf(),
        source,
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(read)? {
        let path = entry.map_err(read)?.path();
        let yaml = path.extension().is_some_and(|x| x == "yaml" || x == "yml");
        if yaml && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// Every document of a (multi-document) YAML file, with merge keys
/// (`<<: *anchor`) applied; empty documents are dropped.
fn parse_yaml(file: &Path, text: &str) -> Result<Vec<Value>, LintError> {
    let error = |e: serde_yaml_ng::Error| LintError::Yaml {
        file: file.to_path_buf(),
        line: e.location().map(|l| l.line()),
        message: e.to_string(),
    };
    let mut out = Vec::new();
    for doc in serde_yaml_ng::Deserializer::from_str(text) {
        let mut yaml = serde_yaml_ng::Value::deserialize(doc).map_err(error)?;
        yaml.apply_merge().map_err(error)?;
        let value = serde_json::to_value(&yaml).map_err(|e| LintError::Yaml {
            file: file.to_path_buf(),
            line: None,
            message: format!("not representable as JSON (Kubernetes objects are): {e}"),
        })?;
        if !value.is_null() {
            out.push(value);
        }
    }
    Ok(out)
}

/// Checks the documents (each with the file it came from) together: a
/// `templateRef` or `workflowTemplateRef` must name a WorkflowTemplate among
/// them. Returns the findings in document order; none means clean.
pub fn lint_documents(docs: &[(PathBuf, Value)]) -> Vec<Finding> {
    let set = Set::new(docs);
    let mut out = Vec::new();
    set.duplicate_names(&mut out);
    let by_ref = set.reached_by_template_ref();
    for d in 0..set.docs.len() {
        lint_doc(&set, d, &by_ref, &mut out);
    }
    out
}

// ---------------------------------------------------------------------------
// Small helpers over JSON values

fn arr(v: &Value) -> &[Value] {
    v.as_array().map(Vec::as_slice).unwrap_or(&[])
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}

/// The `name`s of a parameter (or artifact) list.
fn names(list: &Value) -> BTreeSet<&str> {
    arr(list).iter().map(|p| s(&p["name"])).collect()
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// Whether a value holds a `{{...}}` anywhere (Argo fills it in later, so
/// its type cannot be checked now).
fn templated(v: &Value) -> bool {
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

fn listing(items: &[&str]) -> String {
    if items.is_empty() {
        "none".into()
    } else {
        items.join(", ")
    }
}

/// ` (did you mean X?)` when a candidate is close to `word`.
fn suggest<'c>(word: &str, candidates: impl IntoIterator<Item = &'c str>) -> String {
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

/// Calls `visit(field, text)` for every string in `value`, naming fields as
/// findings do: list entries by index (`steps[2][0]`), except parameters and
/// artifacts, by name and without their `value` key
/// (`arguments.parameters.delta`).
fn walk_strings(value: &Value, path: &str, visit: &mut dyn FnMut(&str, &str)) {
    walk(value, path, false, visit);
}

fn walk(value: &Value, path: &str, named: bool, visit: &mut dyn FnMut(&str, &str)) {
    match value {
        Value::String(text) => visit(path, text),
        Value::Array(items) => {
            let by_name = path.ends_with("parameters") || path.ends_with("artifacts");
            for (i, item) in items.iter().enumerate() {
                match item.get("name").and_then(Value::as_str) {
                    Some(name) if by_name => walk(item, &join(path, name), true, visit),
                    _ => walk(item, &format!("{path}[{i}]"), false, visit),
                }
            }
        }
        Value::Object(map) => {
            for (key, v) in map {
                if named && key == "value" {
                    walk(v, path, false, visit);
                } else {
                    walk(v, &join(path, key), false, visit);
                }
            }
        }
        _ => {}
    }
}

// ---------------------------------------------------------------------------
// The documents

/// The Argo kinds that are checked.
const KINDS: [&str; 4] = [
    "Workflow",
    "WorkflowTemplate",
    "ClusterWorkflowTemplate",
    "CronWorkflow",
];

/// One Argo document.
struct Doc<'a> {
    file: &'a Path,
    kind: &'a str,
    /// `metadata.name`, else `metadata.generateName`.
    name: &'a str,
    spec: &'a Value,
    /// Where `spec` is, for fields (`spec`, or `spec.workflowSpec`).
    spec_path: &'static str,
}

impl<'a> Doc<'a> {
    fn new(file: &'a Path, value: &'a Value) -> Option<Self> {
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

    fn templates(&self) -> &'a [Value] {
        let spec: &'a Value = self.spec;
        arr(&spec["templates"])
    }

    fn template(&self, name: &str) -> Option<&'a Value> {
        self.templates().iter().find(|t| t["name"] == name)
    }

    fn field(&self, rest: &str) -> String {
        join(self.spec_path, rest)
    }

    /// Whether this is a library of templates rather than a run.
    fn is_template(&self) -> bool {
        self.kind.ends_with("WorkflowTemplate")
    }
}

/// All the documents, and the WorkflowTemplates by name.
struct Set<'a> {
    docs: Vec<Doc<'a>>,
    /// (cluster scope, name) to index in `docs`.
    by_name: BTreeMap<(bool, &'a str), usize>,
}

impl<'a> Set<'a> {
    fn new(docs: &'a [(PathBuf, Value)]) -> Self {
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
    fn duplicate_names(&self, out: &mut Vec<Finding>) {
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

    fn find(&self, name: &str, cluster: bool) -> Option<usize> {
        self.by_name.get(&(cluster, name)).copied()
    }

    /// The WorkflowTemplate a Workflow starts (`spec.workflowTemplateRef`).
    fn base(&self, d: usize) -> Option<usize> {
        let r = self.docs[d].spec.get("workflowTemplateRef")?;
        self.find(s(&r["name"]), r["clusterScope"] == true)
    }

    /// The template `name` as a `template:` in document `d` sees it: its
    /// own, or else one of the WorkflowTemplate it starts.
    fn local(&self, d: usize, name: &str) -> Option<(usize, &'a Value)> {
        if let Some(t) = self.docs[d].template(name) {
            return Some((d, t));
        }
        let b = self.base(d)?;
        self.docs[b].template(name).map(|t| (b, t))
    }

    /// The document and template a step or task of document `d` runs, or
    /// the field (relative to the step) and what is wrong.
    fn callee(&self, d: usize, step: &'a Value) -> Result<(usize, &'a Value), (String, String)> {
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
                let kind = if cluster {
                    "ClusterWorkflowTemplate"
                } else {
                    "WorkflowTemplate"
                };
                let Some(w) = self.find(wt, cluster) else {
                    let known = self
                        .by_name
                        .keys()
                        .filter(|(c, _)| *c == cluster)
                        .map(|(_, n)| *n);
                    return Err((
                        "templateRef.name".into(),
                        format!(
                            "no {kind} {wt:?} among the linted files{}",
                            suggest(wt, known)
                        ),
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

    /// The templates other documents run by `templateRef`, and what those
    /// call in their own document, by (document, template name): in them
    /// `{{workflow.parameters.X}}` is the calling workflow's.
    fn reached_by_template_ref(&self) -> BTreeSet<(usize, &'a str)> {
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
    fn arguments(&self, d: usize) -> BTreeSet<&'a str> {
        let mut out = names(&self.docs[d].spec["arguments"]["parameters"]);
        if let Some(b) = self.base(d) {
            out.extend(names(&self.docs[b].spec["arguments"]["parameters"]));
        }
        out
    }
}

/// One step or DAG task of a template.
struct Call<'a> {
    name: &'a str,
    step: &'a Value,
    /// The step group (steps templates); 0 for tasks.
    group: usize,
    /// `steps[G][I]` or `dag.tasks[I]`.
    path: String,
}

fn calls(tmpl: &Value) -> Vec<Call<'_>> {
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
fn dependencies(task: &Value) -> Vec<&str> {
    if let Some(list) = task["dependencies"].as_array() {
        return list.iter().map(s).collect();
    }
    let Some(re) = DEPENDS.as_ref() else {
        return Vec::new();
    };
    re.captures_iter(s(&task["depends"]))
        .filter_map(|c| c.get(1))
        .map(|m| m.as_str())
        .collect()
}

/// Every task `name` waits for, directly or not.
fn ancestors<'a>(tasks: &[Call<'a>], name: &str) -> BTreeSet<&'a str> {
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

static DEPENDS: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"([A-Za-z0-9_-]+)(?:\.[A-Za-z]+)?").ok());

/// `{{ VAR }}` and `{{= EXPRESSION }}`.
static TAG: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"\{\{\s*(=?)\s*(.*?)\s*\}\}").ok());

/// The variables an expression names (after `['x']` became `.x`).
static EXPR_VAR: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(
        r"(?:^|[^\w.'\x22])((?:inputs|outputs|steps|tasks|workflow|item)(?:\.\w+(?:-\w+)*)*)",
    )
    .ok()
});

static EXPR_INDEX: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r#"\[\s*['"]([^'"]+)['"]\s*\]"#).ok());

/// A Docker image reference (distribution/reference's grammar):
/// `[HOST[:PORT]/]PATH[:TAG][@DIGEST]`.
static IMAGE: LazyLock<Option<Regex>> = LazyLock::new(|| {
    let component = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*";
    let label = r"[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?";
    let pattern = format!(
        r"^(?:{label}(?:\.{label})*(?::[0-9]+)?/)?{component}(?:/{component})*(?::\w[\w.-]{{0,127}})?(?:@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9A-Fa-f]{{32,}})?$"
    );
    Regex::new(&pattern).ok()
});

fn is_image(text: &str) -> bool {
    IMAGE.as_ref().is_none_or(|re| re.is_match(text.trim()))
}

// ---------------------------------------------------------------------------
// Where findings go

struct Sink<'o> {
    out: &'o mut Vec<Finding>,
    file: PathBuf,
    template: String,
}

impl Sink<'_> {
    fn add(&mut self, field: impl Into<String>, message: impl Into<String>) {
        let message: String = message.into();
        self.out.push(Finding {
            file: self.file.clone(),
            template: self.template.clone(),
            field: field.into(),
            message: message.replace(['\n', '\r'], " "),
        });
    }
}

// ---------------------------------------------------------------------------
// Documents

fn lint_doc<'a>(
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
    let what = format!("{} {}", doc.kind, doc.name);
    if doc.name.is_empty() {
        sink.add(
            "metadata.name",
            format!("the {} has no metadata.name (or generateName)", doc.kind),
        );
    }
    let wt_ref = doc.spec.get("workflowTemplateRef");
    let base = set.base(d);
    if let Some(r) = wt_ref {
        let cluster = r["clusterScope"] == true;
        let kind = if cluster {
            "ClusterWorkflowTemplate"
        } else {
            "WorkflowTemplate"
        };
        let name = s(&r["name"]);
        match base {
            None => {
                let known = set
                    .by_name
                    .keys()
                    .filter(|(c, _)| *c == cluster)
                    .map(|(_, n)| *n);
                sink.add(
                    doc.field("workflowTemplateRef.name"),
                    format!(
                        "no {kind} {name:?} among the linted files{}",
                        suggest(name, known)
                    ),
                );
            }
            Some(b) => submission_arguments(doc, &set.docs[b], &mut sink),
        }
    }

    let templates = doc.templates();
    if templates.is_empty() && wt_ref.is_none() {
        sink.add(doc.field("templates"), format!("{what} has no templates"));
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

    let known = || {
        let mut all: Vec<&str> = templates.iter().map(|t| s(&t["name"])).collect();
        if let Some(b) = base {
            all.extend(set.docs[b].templates().iter().map(|t| s(&t["name"])));
        }
        all
    };
    match doc.spec.get("entrypoint").and_then(Value::as_str) {
        Some(e) if set.local(d, e).is_none() => sink.add(
            doc.field("entrypoint"),
            format!("{e:?} is not a template here{}", suggest(e, known())),
        ),
        Some(_) => {}
        None if !doc.is_template() && wt_ref.is_none() => sink.add(
            doc.field("entrypoint"),
            "is missing: name the template the workflow starts with",
        ),
        None => {}
    }
    if let Some(e) = doc.spec.get("onExit").and_then(Value::as_str)
        && set.local(d, e).is_none()
    {
        sink.add(
            doc.field("onExit"),
            format!("{e:?} is not a template here{}", suggest(e, known())),
        );
    }

    // Arguments: values in their enum; a Workflow gives every one a value.
    let arguments = arr(&doc.spec["arguments"]["parameters"]);
    let mut seen = BTreeSet::new();
    for p in arguments {
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

    // Argo hands the workflow's arguments to the entrypoint's inputs by
    // name: an input without a default must be one of them.
    if let Some(e) = doc.spec.get("entrypoint").and_then(Value::as_str)
        && let Some(entry) = doc.template(e)
    {
        let given = set.arguments(d);
        for p in arr(&entry["inputs"]["parameters"]) {
            let name = s(&p["name"]);
            let required = p.get("default").is_none() && p.get("value").is_none();
            if required && !name.is_empty() && !given.contains(name) {
                let mut entry_sink = Sink {
                    out: &mut *sink.out,
                    file: sink.file.clone(),
                    template: format!("{}/{e}", doc.name),
                };
                entry_sink.add(
                    format!("inputs.parameters.{name}"),
                    format!(
                        "the entrypoint's input {name} has no default and {} does not declare it: Argo fills the entrypoint's inputs from the workflow's arguments",
                        doc.field("arguments.parameters")
                    ),
                );
            }
        }
    }

    for (i, tmpl) in templates.iter().enumerate() {
        let name = s(&tmpl["name"]);
        let via_ref = by_ref.contains(&(d, name));
        let template = if name.is_empty() {
            format!("{}/templates[{i}]", doc.name)
        } else {
            format!("{}/{name}", doc.name)
        };
        let mut tsink = Sink {
            out: &mut *sink.out,
            file: sink.file.clone(),
            template,
        };
        if name.is_empty() {
            tsink.add("name", "the template has no name");
        }
        lint_template(set, d, tmpl, via_ref, &mut tsink);
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

// ---------------------------------------------------------------------------
// Templates

/// The kinds of template the local runner executes.
const RUNNER_KINDS: [&str; 4] = ["steps", "dag", "suspend", "plugin"];
/// The kinds it cannot (they need pods or an agent of their own).
const OTHER_KINDS: [&str; 6] = [
    "container",
    "script",
    "resource",
    "http",
    "containerSet",
    "data",
];

fn lint_template<'a>(set: &Set<'a>, d: usize, tmpl: &'a Value, via_ref: bool, sink: &mut Sink<'_>) {
    let present = |k: &&str| tmpl.get(*k).is_some_and(|v| !v.is_null());
    let kinds: Vec<&str> = RUNNER_KINDS
        .iter()
        .chain(&OTHER_KINDS)
        .copied()
        .filter(|k| present(k))
        .collect();
    for k in OTHER_KINDS.iter().filter(|k| present(k)) {
        sink.add(
            *k,
            format!(
                "the local runner cannot run a {k} template; gameops templates use plugin steps (plugin: {{gameops: ...}})"
            ),
        );
    }
    match kinds.as_slice() {
        [] => sink.add(
            "",
            "the template has none of steps, dag, suspend and plugin: nothing to run",
        ),
        [_] => {}
        many => sink.add(
            "",
            format!(
                "the template is {}: a template is exactly one kind",
                many.join(" and ")
            ),
        ),
    }
    lint_plugin(tmpl, sink);
    lint_calls(set, d, tmpl, sink);
    References::new(set, d, tmpl, via_ref).check(sink);
}

/// The steps or tasks: names, what they run, the arguments they pass,
/// what they depend on.
fn lint_calls<'a>(set: &Set<'a>, d: usize, tmpl: &'a Value, sink: &mut Sink<'_>) {
    let calls = calls(tmpl);
    let noun = if tmpl.get("dag").is_some() {
        "task"
    } else {
        "step"
    };
    let mut seen = BTreeSet::new();
    for call in &calls {
        let step = call.step;
        if call.name.is_empty() {
            sink.add(join(&call.path, "name"), format!("the {noun} has no name"));
        } else if !seen.insert(call.name) {
            sink.add(
                join(&call.path, "name"),
                format!("two {noun}s are named {}", call.name),
            );
        }
        match set.callee(d, step) {
            Err((field, message)) => sink.add(join(&call.path, &field), message),
            Ok((_, t)) => {
                let callee = s(&t["name"]);
                let declared = names(&t["inputs"]["parameters"]);
                let passed = names(&step["arguments"]["parameters"]);
                for p in passed.difference(&declared) {
                    sink.add(
                        format!("{}.arguments.parameters.{p}", call.path),
                        format!(
                            "template {callee} has no input {p}{}; its inputs: {}",
                            suggest(p, declared.iter().copied()),
                            listing(&declared.iter().copied().collect::<Vec<_>>())
                        ),
                    );
                }
                for p in arr(&t["inputs"]["parameters"]) {
                    let name = s(&p["name"]);
                    let required = p.get("default").is_none() && p.get("value").is_none();
                    if required && !passed.contains(name) {
                        sink.add(
                            join(&call.path, "arguments.parameters"),
                            format!(
                                "template {callee}'s input {name} has no default and is not passed"
                            ),
                        );
                    }
                }
            }
        }
        if let Some(exit) = step.get("onExit").and_then(Value::as_str)
            && set.local(d, exit).is_none()
        {
            sink.add(
                join(&call.path, "onExit"),
                format!("{exit:?} is not a template here"),
            );
        }
        if noun == "task" {
            for dep in dependencies(step) {
                if !calls.iter().any(|c| c.name == dep) {
                    let field = if step.get("dependencies").is_some() {
                        "dependencies"
                    } else {
                        "depends"
                    };
                    sink.add(
                        join(&call.path, field),
                        format!(
                            "{dep} is not a task of this dag{}",
                            suggest(dep, calls.iter().map(|c| c.name))
                        ),
                    );
                }
            }
            if !call.name.is_empty() && ancestors(&calls, call.name).contains(call.name) {
                sink.add(
                    join(&call.path, "depends"),
                    format!("task {} depends on itself (a cycle)", call.name),
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------
// References: `{{...}}`

/// Where in a template a string sits, which decides what it may name.
enum Scope<'a> {
    /// Neither a step/task nor the outputs: no step or task is visible.
    Body,
    /// The template's outputs: every step or task is.
    Outputs,
    /// A step or task: the ones that ran before it; `item` if it loops.
    Call {
        name: &'a str,
        visible: BTreeSet<&'a str>,
        loops: bool,
    },
}

/// The variables Argo sets under `workflow.` (besides `parameters`).
const WORKFLOW_VARS: [&str; 11] = [
    "name",
    "namespace",
    "uid",
    "status",
    "serviceAccountName",
    "mainEntrypoint",
    "priority",
    "duration",
    "failures",
    "scheduledTime",
    "creationTimestamp",
];
const WORKFLOW_PREFIXES: [&str; 4] = ["labels", "annotations", "outputs", "creationTimestamp"];
const STEP_VARS: [&str; 7] = [
    "status",
    "id",
    "ip",
    "exitCode",
    "startedAt",
    "finishedAt",
    "hostNodeName",
];

struct References<'s, 'a> {
    set: &'s Set<'a>,
    d: usize,
    tmpl: &'a Value,
    inputs: BTreeSet<&'a str>,
    input_artifacts: BTreeSet<&'a str>,
    arguments: BTreeSet<&'a str>,
    via_ref: bool,
    calls: Vec<Call<'a>>,
    /// `steps`, `tasks`, or neither.
    kind: Option<&'static str>,
}

impl<'s, 'a> References<'s, 'a> {
    fn new(set: &'s Set<'a>, d: usize, tmpl: &'a Value, via_ref: bool) -> Self {
        let kind = if tmpl.get("steps").is_some() {
            Some("steps")
        } else if tmpl.get("dag").is_some() {
            Some("tasks")
        } else {
            None
        };
        References {
            set,
            d,
            tmpl,
            inputs: names(&tmpl["inputs"]["parameters"]),
            input_artifacts: names(&tmpl["inputs"]["artifacts"]),
            arguments: set.arguments(d),
            via_ref,
            calls: calls(tmpl),
            kind,
        }
    }

    fn check(&self, sink: &mut Sink<'_>) {
        if let Some(map) = self.tmpl.as_object() {
            for (key, value) in map {
                let scope = match key.as_str() {
                    "steps" | "dag" => continue,
                    "outputs" => Scope::Outputs,
                    _ => Scope::Body,
                };
                self.strings(value, key, &scope, sink);
            }
        }
        for call in &self.calls {
            let visible: BTreeSet<&str> = if self.kind == Some("steps") {
                self.calls
                    .iter()
                    .filter(|c| c.group < call.group)
                    .map(|c| c.name)
                    .collect()
            } else {
                ancestors(&self.calls, call.name)
            };
            let loops = ["withItems", "withParam", "withSequence"]
                .iter()
                .any(|k| call.step.get(*k).is_some());
            let scope = Scope::Call {
                name: call.name,
                visible,
                loops,
            };
            // An inline template's own variables are its own business.
            for (key, value) in call.step.as_object().into_iter().flatten() {
                if key != "inline" {
                    self.strings(value, &join(&call.path, key), &scope, sink);
                }
            }
        }
    }

    fn strings(&self, value: &Value, path: &str, scope: &Scope<'_>, sink: &mut Sink<'_>) {
        let (Some(tag), Some(expr_var), Some(index)) =
            (TAG.as_ref(), EXPR_VAR.as_ref(), EXPR_INDEX.as_ref())
        else {
            return;
        };
        walk_strings(value, path, &mut |field, text| {
            for c in tag.captures_iter(text) {
                let is_expr = c.get(1).is_some_and(|m| !m.as_str().is_empty());
                let body = c.get(2).map_or("", |m| m.as_str());
                if is_expr {
                    let body = index.replace_all(body, ".$1");
                    for v in expr_var.captures_iter(&body) {
                        if let Some(m) = v.get(1) {
                            self.var(m.as_str(), true, scope, field, sink);
                        }
                    }
                } else {
                    self.var(body, false, scope, field, sink);
                }
            }
        });
    }

    /// One variable; `expr`: inside `{{=...}}`, where a prefix such as
    /// `inputs.parameters` is an object, not a mistake.
    fn var(&self, var: &str, expr: bool, scope: &Scope<'_>, field: &str, sink: &mut Sink<'_>) {
        let shown = if expr {
            format!("{var} (in {{{{=...}}}})")
        } else {
            format!("{{{{{var}}}}}")
        };
        let parts: Vec<&str> = var.split('.').collect();
        let unknown = |sink: &mut Sink<'_>| {
            sink.add(
                field,
                format!("{shown} is not a variable Argo sets for a template"),
            );
        };
        let rest = &parts[1..];
        match parts[0] {
            "item" => {
                if !matches!(scope, Scope::Call { loops: true, .. }) {
                    sink.add(
                        field,
                        format!(
                            "{shown}: item is set only in a step or task with withItems, withParam or withSequence"
                        ),
                    );
                }
            }
            "inputs" => match rest {
                [] | ["parameters"] | ["artifacts"] => {
                    if !expr && rest.is_empty() {
                        unknown(sink);
                    }
                }
                ["parameters", name, ..] => {
                    if !self.inputs.contains(name) {
                        sink.add(
                            field,
                            format!(
                                "{shown}: the template has no input {name}{}; its inputs: {}",
                                suggest(name, self.inputs.iter().copied()),
                                listing(&self.inputs.iter().copied().collect::<Vec<_>>())
                            ),
                        );
                    }
                }
                ["artifacts", name, ..] => {
                    if !self.input_artifacts.contains(name) {
                        sink.add(
                            field,
                            format!("{shown}: the template has no input artifact {name}"),
                        );
                    }
                }
                _ => unknown(sink),
            },
            "outputs" => {}
            "workflow" => match rest {
                [] => {
                    if !expr {
                        unknown(sink);
                    }
                }
                ["parameters"] | ["parameters", "json"] => {}
                ["parameters", name, ..] => {
                    if !self.arguments.contains(name) {
                        let known: Vec<&str> = self.arguments.iter().copied().collect();
                        sink.add(
                            field,
                            format!(
                                "{shown}: {} has no argument {name}{} in spec.arguments.parameters; it has {}",
                                self.set.docs[self.d].name,
                                suggest(name, known.iter().copied()),
                                listing(&known)
                            ),
                        );
                    } else if self.via_ref {
                        sink.add(
                            field,
                            format!(
                                "{shown}: other WorkflowTemplates run this template by templateRef, and there workflow.parameters are the caller's: take an input instead"
                            ),
                        );
                    }
                }
                [v] if WORKFLOW_VARS.contains(v) => {}
                [p, ..] if WORKFLOW_PREFIXES.contains(p) => {}
                _ => unknown(sink),
            },
            "steps" | "tasks" => match rest {
                [] | ["name"] => {
                    if !expr && rest.is_empty() {
                        unknown(sink);
                    }
                }
                [step, tail @ ..] => {
                    self.call_ref(parts[0], step, tail, expr, scope, field, &shown, sink);
                }
            },
            "pod" | "node" | "retries" | "lastRetry" | "cronworkflow" => {}
            _ => unknown(sink),
        }
    }

    /// `{{steps.S.REST}}` / `{{tasks.T.REST}}`.
    #[allow(clippy::too_many_arguments)]
    fn call_ref(
        &self,
        written: &str,
        name: &str,
        rest: &[&str],
        expr: bool,
        scope: &Scope<'_>,
        field: &str,
        shown: &str,
        sink: &mut Sink<'_>,
    ) {
        let Some(kind) = self.kind else {
            sink.add(
                field,
                format!(
                    "{shown}: this template has no {written}; only steps and dag templates name their {written}"
                ),
            );
            return;
        };
        if written != kind {
            sink.add(
                field,
                format!("{shown}: this template's calls are {kind}: write {kind}.{name}..."),
            );
            return;
        }
        let noun = if kind == "steps" { "step" } else { "task" };
        let Some(target) = self.calls.iter().find(|c| c.name == name) else {
            sink.add(
                field,
                format!(
                    "{shown}: no {noun} {name} in this template{}",
                    suggest(name, self.calls.iter().map(|c| c.name))
                ),
            );
            return;
        };
        match scope {
            Scope::Body => sink.add(
                field,
                format!(
                    "{shown}: {kind} are visible only in the {kind} themselves and in the template's outputs"
                ),
            ),
            Scope::Call {
                name: from,
                visible,
                ..
            } if !visible.contains(name) => {
                let why = if kind == "steps" {
                    format!(
                        "step {name} runs in the same or a later group than step {from}: it has not run yet"
                    )
                } else {
                    format!("task {from} does not depend on task {name} (add it to depends)")
                };
                sink.add(field, format!("{shown}: {why}"));
            }
            _ => {}
        }
        let callee = self.set.callee(self.d, target.step).ok().map(|(_, t)| t);
        match rest {
            [] => {
                if !expr {
                    sink.add(field, format!("{shown}: name what of {noun} {name} to use"));
                }
            }
            [v] if STEP_VARS.contains(v) => {}
            ["outputs"] | ["outputs", "parameters"] => {}
            ["outputs", "result"] => {
                if let Some(t) = callee
                    && ["plugin", "suspend", "steps", "dag"]
                        .iter()
                        .any(|k| t.get(*k).is_some())
                {
                    sink.add(
                        field,
                        format!(
                            "{shown}: template {} prints no result (only script and container templates do); use an output parameter",
                            s(&t["name"])
                        ),
                    );
                }
            }
            ["outputs", group @ ("parameters" | "artifacts"), output, ..] => {
                if let Some(t) = callee {
                    let declared = names(&t["outputs"][*group]);
                    if !declared.contains(output) {
                        let what = if *group == "parameters" {
                            "output"
                        } else {
                            "output artifact"
                        };
                        sink.add(
                            field,
                            format!(
                                "{shown}: template {} declares no {what} {output}{}; it declares {}",
                                s(&t["name"]),
                                suggest(output, declared.iter().copied()),
                                listing(&declared.iter().copied().collect::<Vec<_>>())
                            ),
                        );
                    }
                }
            }
            _ => {
                if !expr {
                    sink.add(
                        field,
                        format!("{shown} is not a variable Argo sets for a {noun}"),
                    );
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------
// The gameops plugin's ops

/// What an argument's value must be.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Ty {
    /// A string.
    Text,
    /// A signed whole number, or a string of one.
    Int,
    /// A whole number (not negative), or a string of one.
    Whole,
    /// true or false, or a string of one.
    Flag,
    /// An image reference.
    Image,
    /// `CONTAINER/IMAGE` entries: a string (comma-separated) or a list.
    Entries,
    /// An opsState.
    OpsState,
    /// `WaitToBeDeleted` or `Kill`.
    Then,
    /// `setOpsState`'s `select`.
    Select,
    /// `resolveTag`'s tag filter.
    Filter,
}

/// One op: its arguments, the groups of which exactly one must be given,
/// and its outputs.
struct OpSpec {
    name: &'static str,
    /// Takes `gameServerSet` (required), `namespace` and `cluster`.
    on_set: bool,
    args: &'static [(&'static str, Ty)],
    exactly_one: &'static [&'static [&'static str]],
    outputs: &'static [&'static str],
}

const COMMON: [(&str, Ty); 3] = [
    ("gameServerSet", Ty::Text),
    ("namespace", Ty::Text),
    ("cluster", Ty::Text),
];

/// The opsStates OpenKruiseGame knows.
const OPS_STATES: [&str; 5] = [
    "None",
    "Allocated",
    "WaitToBeDeleted",
    "Maintaining",
    "Kill",
];

const SELECT_KEYS: [&str; 7] = [
    "opsState",
    "notImage",
    "image",
    "ids",
    "currentState",
    "labels",
    "networkDisabled",
];

/// The ops (README "Ops"), as the plugin parses them.
const SPECS: [OpSpec; 9] = [
    OpSpec {
        name: "patchImage",
        on_set: true,
        args: &[("image", Ty::Image), ("container", Ty::Text)],
        exactly_one: &[&["image"]],
        outputs: &["previousImage", "revision"],
    },
    OpSpec {
        name: "scale",
        on_set: true,
        args: &[("replicas", Ty::Int), ("delta", Ty::Int)],
        exactly_one: &[&["replicas", "delta"]],
        outputs: &["replicas"],
    },
    OpSpec {
        name: "waitReady",
        on_set: true,
        args: &[
            ("image", Ty::Image),
            ("count", Ty::Whole),
            ("percent", Ty::Whole),
            ("timeoutSeconds", Ty::Whole),
            ("crashThreshold", Ty::Whole),
        ],
        exactly_one: &[&["count", "percent"], &["timeoutSeconds"]],
        outputs: &["ready"],
    },
    OpSpec {
        name: "setOpsState",
        on_set: true,
        args: &[
            ("select", Ty::Select),
            ("opsState", Ty::OpsState),
            ("limit", Ty::Whole),
            ("dryRun", Ty::Flag),
        ],
        exactly_one: &[&["select"], &["opsState"]],
        outputs: &["count", "names"],
    },
    OpSpec {
        name: "drain",
        on_set: true,
        args: &[
            ("notImage", Ty::Entries),
            ("image", Ty::Entries),
            ("timeoutSeconds", Ty::Whole),
            ("then", Ty::Then),
            ("scaleDown", Ty::Flag),
        ],
        exactly_one: &[&["notImage", "image"], &["timeoutSeconds"], &["then"]],
        outputs: &["drained", "remaining"],
    },
    OpSpec {
        name: "rollback",
        on_set: true,
        args: &[
            ("toImage", Ty::Image),
            ("steps", Ty::Whole),
            ("container", Ty::Text),
        ],
        exactly_one: &[],
        outputs: &["image", "previousImage", "revision"],
    },
    OpSpec {
        name: "status",
        on_set: true,
        args: &[],
        exactly_one: &[],
        outputs: &["summary", "total", "ready"],
    },
    OpSpec {
        name: "resolveTag",
        on_set: false,
        args: &[
            ("environment", Ty::Text),
            ("repository", Ty::Text),
            ("filter", Ty::Filter),
        ],
        exactly_one: &[&["environment", "repository"]],
        outputs: &["tag", "digest", "image"],
    },
    OpSpec {
        name: "promoteTag",
        on_set: false,
        args: &[
            ("repository", Ty::Text),
            ("from", Ty::Text),
            ("to", Ty::Text),
        ],
        exactly_one: &[&["repository"], &["from"], &["to"]],
        outputs: &["image", "digest", "previousDigest", "changed"],
    },
];

/// Check 1 and 2: a `plugin.gameops` template.
fn lint_plugin(tmpl: &Value, sink: &mut Sink<'_>) {
    let Some(plugin) = tmpl.get("plugin").filter(|p| !p.is_null()) else {
        return;
    };
    let Some(plugins) = plugin.as_object() else {
        sink.add(
            "plugin",
            "must be an object naming one plugin, e.g. {gameops: {status: {gameServerSet: minecraft}}}",
        );
        return;
    };
    let Some(gameops) = plugins.get("gameops") else {
        return; // another executor plugin's template: not ours to check
    };
    if plugins.len() > 1 {
        let all: Vec<&str> = plugins.keys().map(String::as_str).collect();
        sink.add(
            "plugin",
            format!(
                "names {} plugins ({}); a template calls exactly one",
                all.len(),
                all.join(", ")
            ),
        );
    }
    let Some(ops) = gameops.as_object() else {
        sink.add(
            "plugin.gameops",
            format!(
                "must be an object naming one op, e.g. {{status: {{gameServerSet: minecraft}}}}; the ops are {}",
                OPS.join(", ")
            ),
        );
        return;
    };
    let named: Vec<&str> = ops.keys().map(String::as_str).collect();
    let (op, args) = match ops.iter().next() {
        Some((op, args)) if ops.len() == 1 => (op.as_str(), args),
        _ => {
            let message = if named.is_empty() {
                format!("names no op; the ops are {}", OPS.join(", "))
            } else {
                format!(
                    "names {} ops ({}); a plugin template calls exactly one: split it into one template per op",
                    named.len(),
                    named.join(", ")
                )
            };
            sink.add("plugin.gameops", message);
            return;
        }
    };
    let field = format!("plugin.gameops.{op}");
    if !OPS.contains(&op) {
        sink.add(
            field,
            format!(
                "{op} is not an op of the gameops plugin{}; the ops are {}",
                suggest(op, OPS.iter().copied()),
                OPS.join(", ")
            ),
        );
        return;
    }
    let Some(spec) = SPECS.iter().find(|o| o.name == op) else {
        return;
    };
    lint_op_arguments(spec, args, &field, sink);
    for p in arr(&tmpl["outputs"]["parameters"]) {
        let name = s(&p["name"]);
        if !spec.outputs.contains(&name) {
            sink.add(
                format!("outputs.parameters.{name}"),
                format!(
                    "{op} gives no output {name}{}; its outputs: {}",
                    suggest(name, spec.outputs.iter().copied()),
                    spec.outputs.join(", ")
                ),
            );
        }
    }
}

fn lint_op_arguments(spec: &OpSpec, args: &Value, field: &str, sink: &mut Sink<'_>) {
    let op = spec.name;
    let Some(map) = args.as_object() else {
        let example = if spec.on_set {
            "{gameServerSet: minecraft}"
        } else {
            "{repository: registry.example.com/game/server}"
        };
        sink.add(
            field,
            format!("must be an object of arguments, e.g. {example}"),
        );
        return;
    };
    let known: Vec<(&str, Ty)> = if spec.on_set { &COMMON[..] } else { &[] }
        .iter()
        .chain(spec.args)
        .copied()
        .collect();
    for (key, value) in map {
        let arg_field = join(field, key);
        match known.iter().find(|(k, _)| *k == key.as_str()) {
            None => sink.add(
                arg_field,
                format!(
                    "{op} takes no argument {key}{}; it takes {}",
                    suggest(key, known.iter().map(|(k, _)| *k)),
                    listing(&known.iter().map(|(k, _)| *k).collect::<Vec<_>>())
                ),
            ),
            Some((_, ty)) => {
                if !spec.on_set && value.as_str().is_some_and(|v| v.trim().is_empty()) {
                    sink.add(
                        arg_field,
                        "is empty: give a value or leave the argument out",
                    );
                } else {
                    check_value(*ty, value, &arg_field, sink);
                }
            }
        }
    }
    // As the plugin reads them: for ops on a set an empty string is an
    // argument not given (a template cannot leave a key out); the registry
    // ops take what is there.
    let given = |k: &str| {
        map.get(k)
            .is_some_and(|v| if spec.on_set { !blank(v) } else { !v.is_null() })
    };
    if spec.on_set && !given("gameServerSet") {
        sink.add(
            join(field, "gameServerSet"),
            "is missing: name the GameServerSet to act on",
        );
    }
    for group in spec.exactly_one {
        let n = group.iter().filter(|k| given(k)).count();
        match (group, n) {
            ([one], 0) => sink.add(join(field, one), format!("is missing: {op} needs {one}")),
            (_, 0) => sink.add(field, format!("needs one of {}", group.join(" or "))),
            (_, 1) => {}
            _ => sink.add(
                field,
                format!("takes exactly one of {}, not several", group.join(", ")),
            ),
        }
    }
    let literal = |k: &str| map.get(k).filter(|v| !templated(v));
    let number = |k: &str| literal(k).and_then(literal_number);
    let text = |k: &str| literal(k).and_then(Value::as_str).map(str::trim);
    let mut bound = |k: &str, min: i128, max: i128, why: &str| {
        if let Some(n) = number(k)
            && (n < min || n > max)
        {
            sink.add(join(field, k), format!("is {n}: {why}"));
        }
    };
    let day = i128::from(MAX_TIMEOUT_SECONDS);
    match op {
        "scale" => bound("replicas", 0, i128::MAX, "replicas cannot be negative"),
        "waitReady" => {
            bound("percent", 0, 100, "give 0 to 100 (of spec.replicas)");
            bound(
                "timeoutSeconds",
                1,
                day,
                &format!("give 1 to {MAX_TIMEOUT_SECONDS} seconds"),
            );
            bound(
                "crashThreshold",
                1,
                i128::MAX,
                "must be at least 1 (crashed servers that fail the wait)",
            );
        }
        "drain" => {
            bound(
                "timeoutSeconds",
                1,
                day,
                &format!("give 1 to {MAX_TIMEOUT_SECONDS} seconds"),
            );
            let scale_down = literal("scaleDown").and_then(literal_flag) == Some(true);
            if scale_down && text("then") == Some("Kill") {
                sink.add(
                    join(field, "scaleDown"),
                    "goes with then: WaitToBeDeleted; with then: Kill the controller already lowers spec.replicas for each killed server (drop scaleDown)",
                );
            }
        }
        "rollback" => {
            bound(
                "steps",
                1,
                i128::MAX,
                "must be at least 1 (1: the image before the last change)",
            );
            if given("toImage") && given("steps") {
                sink.add(
                    field,
                    "takes toImage (an image from the history) or steps (how many changes back), not both",
                );
            }
        }
        "resolveTag" if given("environment") && given("filter") => sink.add(
            join(field, "filter"),
            "goes with repository; an environment has its own filter in gameops.yaml",
        ),
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

fn literal_flag(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) => match s.trim() {
            "true" | "True" => Some(true),
            "false" | "False" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// Checks the parts of `value` without a `{{...}}` against `ty`.
fn check_value(ty: Ty, value: &Value, field: &str, sink: &mut Sink<'_>) {
    if value.is_null() {
        return;
    }
    match ty {
        Ty::Select => return check_select(value, field, sink),
        Ty::Filter => return check_filter(value, field, sink),
        Ty::Entries => return check_entries(value, field, sink),
        _ => {}
    }
    if templated(value) {
        return;
    }
    let shown = value.to_string();
    match ty {
        Ty::Text => {
            if !value.is_string() {
                sink.add(
                    field,
                    format!("must be a string, not {shown} (quote it: \"{}\")", shown.trim_matches('"')),
                );
            }
        }
        Ty::Int => {
            let ok = match value {
                Value::Number(n) => n.as_i64().is_some(),
                Value::String(s) => s.trim().is_empty() || s.trim().parse::<i64>().is_ok(),
                _ => false,
            };
            if !ok {
                sink.add(
                    field,
                    format!("expected a whole number such as 3 or -2 (or \"3\"), not {shown}"),
                );
            }
        }
        Ty::Whole => {
            let ok = match value {
                Value::Number(n) => n.as_u64().is_some(),
                Value::String(s) => s.trim().is_empty() || s.trim().parse::<u64>().is_ok(),
                _ => false,
            };
            if !ok {
                sink.add(
                    field,
                    format!("expected a whole number such as 3 (or \"3\"), not {shown}"),
                );
            }
        }
        Ty::Flag => {
            if literal_flag(value).is_none() && !blank(value) {
                sink.add(field, format!("expected true or false, not {shown}"));
            }
        }
        Ty::Image => match value.as_str() {
            None => sink.add(field, format!("must be an image reference (a string), not {shown}")),
            Some(text) if !text.trim().is_empty() && !is_image(text) => sink.add(
                field,
                format!(
                    "{text:?} is not an image reference, e.g. registry.example.com/game/server:v1.2.3"
                ),
            ),
            Some(_) => {}
        },
        Ty::OpsState | Ty::Then => {
            let allowed: &[&str] = if ty == Ty::Then {
                &["WaitToBeDeleted", "Kill"]
            } else {
                &OPS_STATES
            };
            match value.as_str().map(str::trim) {
                Some("") => {}
                Some(v) if allowed.contains(&v) => {}
                _ => sink.add(
                    field,
                    format!(
                        "{shown} is not {}{}",
                        allowed.join(" or "),
                        value
                            .as_str()
                            .map(|v| suggest(v, allowed.iter().copied()))
                            .unwrap_or_default()
                    ),
                ),
            }
        }
        Ty::Select | Ty::Filter | Ty::Entries => {}
    }
}

/// `CONTAINER/IMAGE` entries: a comma-separated string or a list of
/// strings; entries with a `{{...}}` are not checked.
fn check_entries(value: &Value, field: &str, sink: &mut Sink<'_>) {
    let raw: Vec<&str> = match value {
        Value::String(s) => vec![s.as_str()],
        Value::Array(items) => {
            let mut raw = Vec::new();
            for item in items {
                match item.as_str() {
                    Some(s) => raw.push(s),
                    None => {
                        sink.add(
                            field,
                            format!("expected a string (entries separated by commas) or a list of strings; {item} is neither"),
                        );
                        return;
                    }
                }
            }
            if raw.is_empty() {
                sink.add(
                    field,
                    "is empty: give CONTAINER/IMAGE, e.g. minecraft/registry.example.com/game:v2",
                );
            }
            raw
        }
        other => {
            sink.add(
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
                    sink.add(
                        field,
                        format!(
                            "entry {entry:?}: {image:?} is not an image reference (CONTAINER/IMAGE, e.g. minecraft/registry.example.com/game:v2)"
                        ),
                    );
                }
            }
            _ => sink.add(
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
fn check_select(value: &Value, field: &str, sink: &mut Sink<'_>) {
    let Some(map) = value.as_object() else {
        sink.add(
            field,
            "must be an object, e.g. {opsState: None, notImage: CONTAINER/NEW-IMAGE} ({} selects every server)",
        );
        return;
    };
    for (key, v) in map {
        let key_field = join(field, key);
        if !SELECT_KEYS.contains(&key.as_str()) {
            sink.add(
                key_field,
                format!(
                    "select has no field {key}{}; it has {}",
                    suggest(key, SELECT_KEYS),
                    SELECT_KEYS.join(", ")
                ),
            );
            continue;
        }
        match key.as_str() {
            "notImage" | "image" => {
                if !v.is_null() {
                    check_entries(v, &key_field, sink);
                }
                continue;
            }
            "opsState" if !templated(v) && v.is_string() => {
                if blank(v) {
                    sink.add(key_field, "is empty: give a value or leave the field out");
                } else {
                    check_value(Ty::OpsState, v, &key_field, sink);
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
            sink.add(key_field, message);
        }
    }
}

/// `resolveTag.filter`: deserialized as `gameops.yaml` filters are, and
/// compiled (regexes, semver constraint, extract) when it holds no
/// `{{...}}`.
fn check_filter(value: &Value, field: &str, sink: &mut Sink<'_>) {
    if !value.is_object() {
        sink.add(
            field,
            "must be an object, e.g. {semver: \">=1.0.0\", includeTag: \"^v\"}",
        );
        return;
    }
    let parsed = serde_json::from_value::<Filter>(without_templated(value));
    match parsed {
        Err(e) => sink.add(field, e.to_string()),
        Ok(filter) if !templated(value) => {
            if let Err(e) = filter.compile() {
                sink.add(join(field, e.field()), e.message());
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

#[cfg(test)]
mod tests {
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
    fn assert_finding_in(
        findings: &[Finding],
        file: &Path,
        template: &str,
        field: &str,
        needle: &str,
    ) {
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
        let findings = lint_dir(dir.path()).unwrap();
        assert_eq!(findings.len(), 1);
        assert!(findings[0].message.contains("no *.yaml"), "{}", findings[0]);

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

    #[test]
    fn the_op_table_matches_the_plugins_ops() {
        let specs: Vec<&str> = SPECS.iter().map(|o| o.name).collect();
        assert_eq!(specs, OPS);
        for re in [&*DEPENDS, &*TAG, &*EXPR_VAR, &*EXPR_INDEX, &*IMAGE] {
            assert!(re.is_some());
        }
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
}
