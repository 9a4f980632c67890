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
//!    one op of the gameops executor plugin ([`crate::ops::table`]); templates
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

mod document;
mod index;
mod references;
mod template;
#[cfg(test)]
mod tests;

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use index::Set;

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
    /// The directory holds nothing to check.
    #[error(
        "{} holds no WorkflowTemplates (no *.yaml or *.yml file in it or in its examples/): nothing to check; give the folder that holds them, e.g. gameops lint workflow-templates",
        .0.display()
    )]
    Empty(PathBuf),
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
        return Err(LintError::Empty(dir.to_path_buf()));
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
        document::lint_doc(&set, d, &by_ref, &mut out);
    }
    out
}

/// Where the findings of one document (and template) go.
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
    /// The sink for a template of the same file.
    fn template(&mut self, template: String) -> Sink<'_> {
        Sink {
            out: &mut *self.out,
            file: self.file.clone(),
            template,
        }
    }
}
