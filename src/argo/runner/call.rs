//! A plugin template, run as Argo's agent runs it: the template with its
//! `{{...}}` filled in goes to the plugin as an [`ExecuteTemplateArgs`]
//! with the agent's bearer token, and the [`ExecuteTemplateReply`] is
//! followed, calling again after each `requeue` until the node finishes.

use serde_json::Value;

use super::workflow_run::Runner;
use super::{Node, Scope};
use crate::argo::expr;
use crate::argo::plugin::wire::{
    self, ExecuteTemplateArgs, ExecuteTemplateReply, Outputs, Parameter, Phase, WorkflowMeta,
};
use crate::argo::workflow::{Template, value_string};

/// Tries of one call (the agent's backoff: `Steps: 5`).
const ATTEMPTS: u32 = 5;
/// The first wait between tries (`Duration: 1s`, `Factor: 2`).
const FIRST_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// What a reply means for the run.
enum Next {
    /// The node finished.
    Done(Node),
    /// Call again after this long; the plugin said this.
    Again(std::time::Duration, String),
}

impl Runner {
    /// The request Argo's agent sends for `template`: its inputs with their
    /// values, its declared outputs, the plugin call with `{{...}}` filled in.
    fn request(
        &self,
        template: &Template,
        plugin: &Value,
        scope: &Scope,
    ) -> Result<ExecuteTemplateArgs, expr::ExprError> {
        let plugin = expr::substitute_json(plugin, scope)?;
        let parameters = |params: Vec<Parameter>| Some(Outputs { parameters: params });
        let inputs = template.inputs.parameters.iter().map(|p| Parameter {
            name: p.name.clone(),
            value: scope.get(&format!("inputs.parameters.{}", p.name)).cloned(),
            ..Parameter::default()
        });
        // The declared outputs as the agent sends them: value, globalName
        // and valueFrom as written.
        let outputs = template.outputs.parameters.iter().map(|p| Parameter {
            name: p.name.clone(),
            value: p.value.as_ref().map(value_string),
            global_name: p.global_name.clone(),
            value_from: p.value_from.as_ref().map(|v| {
                let mut other = v.other.clone();
                if let Some(parameter) = &v.parameter {
                    other.insert("parameter".into(), Value::String(parameter.clone()));
                }
                wire::ValueFrom {
                    default: v.default.clone(),
                    other,
                }
            }),
        });
        let mut args = ExecuteTemplateArgs::default();
        args.workflow.metadata = WorkflowMeta {
            name: self.name.clone(),
            namespace: self.options.namespace.clone(),
            uid: self.uid.clone(),
        };
        args.template = wire::Template {
            name: template.name.clone(),
            inputs: parameters(inputs.collect()),
            outputs: parameters(outputs.collect()),
            plugin: plugin.as_object().cloned(),
        };
        Ok(args)
    }

    /// Runs a plugin template to its end.
    pub(super) async fn call_plugin(
        &self,
        template: &Template,
        plugin: &Value,
        scope: &Scope,
        path: &str,
    ) -> Node {
        let body = match self.request(template, plugin, scope) {
            Ok(body) => body,
            Err(e) => return Node::failed(format!("{path}: {e}")),
        };
        let url = format!(
            "{}/api/v1/template.execute",
            self.options.plugin.url.trim_end_matches('/')
        );
        let mut last_message = String::new();
        loop {
            let reply = match self.post(&url, &body).await {
                Ok(reply) => reply,
                Err(node) => return node,
            };
            match next(reply) {
                Next::Done(node) => return node,
                Next::Again(after, message) => {
                    if message != last_message {
                        self.say(&format!("… {path}  {message}"));
                        last_message = message;
                    }
                    tokio::time::sleep(after).await;
                }
            }
        }
    }

    /// One call, sent as Argo's agent sends it
    /// (argo-workflows v4.0.5 workflow/util/plugins/plugin.go `Call`): up to
    /// [`ATTEMPTS`] tries, waiting 1 s, 2 s, 4 s, 8 s between them, while the
    /// plugin refuses the connection, times out or answers 503; any other
    /// answer that is not a reply fails the node.
    async fn post(
        &self,
        url: &str,
        body: &ExecuteTemplateArgs,
    ) -> Result<ExecuteTemplateReply, Node> {
        let mut wait = FIRST_WAIT;
        let mut attempt = 1;
        loop {
            match self.post_once(url, body).await {
                Ok(reply) => return Ok(reply),
                Err((node, transient)) if !transient || attempt >= ATTEMPTS => return Err(node),
                Err((node, _)) => {
                    tracing::debug!(url, attempt, message = %node.message, "plugin call: transient failure; trying again");
                    tokio::time::sleep(wait).await;
                    wait *= 2;
                    attempt += 1;
                }
            }
        }
    }

    /// One request; the error says whether trying again may help.
    async fn post_once(
        &self,
        url: &str,
        body: &ExecuteTemplateArgs,
    ) -> Result<ExecuteTemplateReply, (Node, bool)> {
        let reply = self
            .http
            .post(url)
            .bearer_auth(&self.options.plugin.token)
            .json(body)
            .send()
            .await;
        match reply {
            Ok(r) if r.status().is_success() => r.json().await.map_err(|e| {
                (
                    Node::failed(format!(
                        "the plugin's reply is not an ExecuteTemplateReply: {e}"
                    )),
                    false,
                )
            }),
            Ok(r) => {
                let status = r.status();
                let text = r.text().await.unwrap_or_default();
                let transient = status == reqwest::StatusCode::SERVICE_UNAVAILABLE;
                Err((
                    Node::failed(format!("the plugin answered HTTP {status}: {text}")),
                    transient,
                ))
            }
            Err(e) => {
                let transient = e.is_connect() || e.is_timeout();
                Err((
                    Node::failed(format!("the plugin at {url} did not answer: {e}")),
                    transient,
                ))
            }
        }
    }
}

/// What a reply means: a finished node (Succeeded, Failed or Error, as
/// the plugin said), or a requeue; running without a requeue is a failure.
fn next(reply: ExecuteTemplateReply) -> Next {
    let shown = serde_json::to_string(&reply).unwrap_or_default();
    let Some(node) = reply.node else {
        return Next::Done(Node::failed(format!(
            "the plugin answered phase \"\" without a requeue: {shown}"
        )));
    };
    let phase = match node.phase {
        Phase::Succeeded => "Succeeded",
        Phase::Failed => "Failed",
        Phase::Error => "Error",
        Phase::Running | Phase::Pending => {
            let after = reply.requeue.as_deref().and_then(wire::parse_duration);
            return match after {
                Some(after) => Next::Again(after, node.message),
                None => Next::Done(Node::failed(format!(
                    "the plugin answered phase \"{:?}\" without a requeue: {shown}",
                    node.phase
                ))),
            };
        }
    };
    let outputs = node.outputs.map(|o| o.parameters).unwrap_or_default();
    // What Argo would export: returned parameters with a globalName and a
    // value (operator.go `addParamToGlobalScope`).
    let globals = outputs
        .iter()
        .filter_map(|p| {
            let name = p.global_name.clone().filter(|g| !g.is_empty())?;
            Some((name, p.value.clone()?))
        })
        .collect();
    Next::Done(Node {
        phase: phase.into(),
        message: node.message,
        outputs: outputs
            .into_iter()
            .map(|p| (p.name, p.value.unwrap_or_default()))
            .collect(),
        globals,
        items: None,
    })
}
