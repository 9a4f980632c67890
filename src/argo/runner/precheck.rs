//! What the runner refuses before it starts: a template that does not
//! exist, one that needs pods, a step with no (or two) templates, a
//! `templateRef` outside the templates directory, and a gameops plugin call
//! the op table rejects ([`crate::ops::check`], as `gameops lint` does).

use std::collections::BTreeSet;
use std::sync::Arc;

use super::{Library, RunError};
use crate::argo::plugin::PLUGIN_NAME;
use crate::argo::workflow::{Document, Step, Template};
use crate::ops::check;

/// The document and template a step runs (`template` of `owner`, or a
/// `templateRef` into the library).
pub(super) fn callee(
    library: &Library,
    owner: &Arc<Document>,
    step: &Step,
) -> Option<(Arc<Document>, Template)> {
    match (&step.template, &step.template_ref) {
        (Some(t), _) => Some((owner.clone(), owner.spec.template(t)?.clone())),
        (None, Some(r)) => {
            let doc = library.get(&r.name)?;
            let t = doc.spec.template(&r.template)?.clone();
            Some((doc, t))
        }
        _ => None,
    }
}

/// `Workflow NAME`, for messages.
pub(super) fn display_name(doc: &Document) -> String {
    format!(
        "{} {}",
        doc.kind,
        doc.metadata
            .name
            .as_deref()
            .or(doc.metadata.generate_name.as_deref())
            .unwrap_or("(unnamed)")
    )
}

/// Checks every template reachable from `entry` in `owner` (`seen`: the
/// ones already checked, by owner and name).
pub(super) fn reachable(
    library: &Library,
    owner: &Arc<Document>,
    entry: &str,
    seen: &mut BTreeSet<(String, String)>,
) -> Result<(), RunError> {
    let owner_name = owner.metadata.name.clone().unwrap_or_default();
    if !seen.insert((owner_name, entry.to_owned())) {
        return Ok(());
    }
    let template = owner.spec.template(entry).ok_or_else(|| {
        RunError::Invalid(format!(
            "template {entry:?} does not exist in {}",
            display_name(owner)
        ))
    })?;
    runnable(owner, template)?;
    for step in template.children() {
        // Argo refuses these at submission (ancestry.go ValidateTaskResults).
        if let Some(problem) = step
            .depends
            .as_deref()
            .and_then(crate::argo::expr::invalid_task_result)
        {
            return Err(RunError::Invalid(format!(
                "task {:?} of template {entry:?} of {}: depends: {problem}",
                step.name,
                display_name(owner)
            )));
        }
        match (&step.template, &step.template_ref) {
            (Some(t), None) => reachable(library, owner, t, seen)?,
            (None, Some(r)) => {
                let doc = library.get(&r.name).ok_or_else(|| {
                    RunError::Invalid(format!(
                        "step {:?} of template {entry:?} refers to WorkflowTemplate {:?}, which is not in the templates directory (it has: {})",
                        step.name,
                        r.name,
                        library.names().join(", ")
                    ))
                })?;
                reachable(library, &doc, &r.template, seen)?;
            }
            _ => {
                return Err(RunError::Invalid(format!(
                    "step {:?} of template {entry:?} needs exactly one of template or templateRef",
                    step.name
                )));
            }
        }
    }
    Ok(())
}

/// A template the runner can run: no pods, and a gameops plugin call the
/// op table accepts.
fn runnable(owner: &Document, template: &Template) -> Result<(), RunError> {
    if let Some(kind) = template.unsupported_kind() {
        return Err(RunError::Invalid(format!(
            "template {:?} of {} is a {kind} template, which needs pods; the local runner runs steps, dag, suspend and executor-plugin templates only",
            template.name,
            display_name(owner)
        )));
    }
    if let Some(strategy) = &template.retry_strategy {
        super::retry::check(strategy).map_err(|e| {
            RunError::Invalid(format!(
                "template {:?} of {}: {e}",
                template.name,
                display_name(owner)
            ))
        })?;
    }
    let Some(gameops) = template.plugin.as_ref().and_then(|p| p.get(PLUGIN_NAME)) else {
        return Ok(());
    };
    let declared = template.declared_outputs();
    match check::plugin_call(gameops, &declared).first() {
        None => Ok(()),
        Some(problem) => Err(RunError::Invalid(format!(
            "template {:?} of {}: {}: {} (gameops lint lists every problem)",
            template.name,
            display_name(owner),
            problem.field,
            problem.message
        ))),
    }
}
