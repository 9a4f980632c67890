//! The Argo Workflows executor-plugin wire format (`ExecuteTemplateArgs` in,
//! `ExecuteTemplateReply` out), as Argo's agent sends and reads it
//! (argo-workflows `pkg/plugins/executor`, `workflow/executor/agent.go`).

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// What the agent sends: the workflow's identity and the template, with
/// every `{{...}}` already substituted.
#[derive(Debug, Clone, Deserialize, Serialize, Default)]
pub struct ExecuteTemplateArgs {
    /// The workflow.
    #[serde(default)]
    pub workflow: Workflow,
    /// The template to execute.
    #[serde(default)]
    pub template: Template,
}

/// The workflow part of a request.
#[derive(Debug, Clone, Deserialize, Serialize, Default)]
pub struct Workflow {
    /// Its metadata.
    #[serde(default)]
    pub metadata: WorkflowMeta,
}

/// Name, namespace and uid of the workflow.
#[derive(Debug, Clone, Deserialize, Serialize, Default)]
pub struct WorkflowMeta {
    /// The workflow's name.
    #[serde(default)]
    pub name: String,
    /// Its namespace (the default namespace of every op).
    #[serde(default)]
    pub namespace: String,
    /// Its uid (identifies retries of the same step).
    #[serde(default)]
    pub uid: String,
}

impl From<&WorkflowMeta> for crate::ops::Caller {
    fn from(m: &WorkflowMeta) -> Self {
        Self {
            name: m.name.clone(),
            namespace: m.namespace.clone(),
            uid: m.uid.clone(),
        }
    }
}

/// The template part of a request.
#[derive(Debug, Clone, Deserialize, Serialize, Default)]
pub struct Template {
    /// The template's name.
    #[serde(default)]
    pub name: String,
    /// Its inputs, with their values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inputs: Option<Outputs>,
    /// Declared outputs (`value: ""` placeholders).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outputs: Option<Outputs>,
    /// `{"<plugin name>": {...}}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plugin: Option<Map<String, Value>>,
}

/// Input or output parameters of a node.
#[derive(Debug, Clone, Deserialize, Serialize, Default, PartialEq)]
pub struct Outputs {
    /// The parameters.
    #[serde(default)]
    pub parameters: Vec<Parameter>,
}

/// One parameter; the value is always a string on the wire.
#[derive(Debug, Clone, Deserialize, Serialize, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Parameter {
    /// Its name.
    pub name: String,
    /// Its value.
    #[serde(default)]
    pub value: Option<String>,
    /// An output exported as `workflow.outputs.parameters.<globalName>`.
    /// Argo's controller replaces a plugin node's outputs with the returned
    /// ones (`workflow/controller/taskset.go`) and exports only returned
    /// parameters that carry it (`operator.go` `addParamToGlobalScope`):
    /// a reply must hand it back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub global_name: Option<String>,
    /// A declared output's `valueFrom` (its `default` is the value when the
    /// op gives none); never part of a reply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_from: Option<ValueFrom>,
}

/// `valueFrom` of a declared output, as far as a plugin node uses it.
#[derive(Debug, Clone, Deserialize, Serialize, Default, PartialEq)]
pub struct ValueFrom {
    /// The value when none is given (Argo's AnyString: a string, or a
    /// number or boolean written bare).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Value>,
    /// Everything else Argo allows there (`supplied`, `configMapKeyRef`,
    /// ...), passed on as it came.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

impl Parameter {
    /// A parameter with a value.
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            value: Some(value.into()),
            ..Self::default()
        }
    }

    /// The value a declared output has when the op gives none: its
    /// `value`, else its `valueFrom.default`.
    fn declared_value(&self) -> Option<String> {
        self.value.clone().or_else(|| {
            let default = self.value_from.as_ref()?.default.as_ref()?;
            Some(crate::argo::workflow::value_string(default))
        })
    }
}

/// A node phase Argo understands (the gameops plugin answers `Running`,
/// `Succeeded` or `Failed`).
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
pub enum Phase {
    /// Not started: the agent calls again after `requeue`.
    Pending,
    /// Still working: the agent calls again after `requeue`.
    Running,
    /// Done.
    Succeeded,
    /// Failed for good (no requeue).
    Failed,
    /// Failed by an error (no requeue).
    Error,
}

/// The node result.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct NodeResult {
    /// The phase.
    pub phase: Phase,
    /// A sentence for the Argo UI.
    pub message: String,
    /// Output parameters (on success).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub outputs: Option<Outputs>,
}

/// What the plugin answers: `{}` (not ours), or a node and maybe a requeue.
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
pub struct ExecuteTemplateReply {
    /// The node result; absent when the template is another plugin's.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub node: Option<NodeResult>,
    /// When to call again, as a Go duration (`"5s"`, `"1m30s"`, `"500ms"`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub requeue: Option<String>,
}

/// Formats a duration as Go's `time.Duration.String()` does for the values
/// the plugin uses (whole milliseconds): `500ms`, `5s`, `1m30s`, `1h0m0s`.
/// (`kube::core::Duration` prints `90s` for `1m30s`: valid, but not what
/// Argo's own plugins write.)
///
/// ```
/// use std::time::Duration;
/// use gameops::argo::plugin::wire::go_duration;
///
/// assert_eq!(go_duration(Duration::from_secs(90)), "1m30s");
/// assert_eq!(go_duration(Duration::from_millis(500)), "500ms");
/// ```
pub fn go_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        return "0s".into();
    }
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let (h, rest) = (ms / 3_600_000, ms % 3_600_000);
    let (m, rest) = (rest / 60_000, rest % 60_000);
    let (s, frac) = (rest / 1000, rest % 1000);
    let secs = if frac == 0 {
        format!("{s}s")
    } else {
        let f = format!("{:03}", frac);
        format!("{s}.{}s", f.trim_end_matches('0'))
    };
    match (h, m) {
        (0, 0) => secs,
        (0, m) => format!("{m}m{secs}"),
        (h, m) => format!("{h}h{m}m{secs}"),
    }
}

/// Parses a Go duration (`requeue`: `5s`, `1m30s`, `500ms`, `+1.5s`) with
/// `kube::core::Duration`, as Go's `time.ParseDuration` reads it; a
/// negative one is not a time to wait.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let d: kube::core::Duration = text.trim().parse().ok()?;
    (!d.is_negative()).then(|| d.into())
}

impl ExecuteTemplateReply {
    /// A finished node with outputs. Only the outputs the template declared
    /// are returned (Argo only passes declared ones on), as strings, each
    /// with the `globalName` it was declared with; one the op does not
    /// give keeps its declared `value` or `valueFrom.default`.
    pub fn succeeded(
        message: impl Into<String>,
        declared: Option<&Outputs>,
        values: &[(&str, String)],
    ) -> Self {
        let outputs = declared.map(|d| Outputs {
            parameters: d
                .parameters
                .iter()
                .map(|p| Parameter {
                    name: p.name.clone(),
                    value: values
                        .iter()
                        .find(|(n, _)| *n == p.name)
                        .map(|(_, v)| v.clone())
                        .or_else(|| p.declared_value()),
                    global_name: p.global_name.clone().filter(|g| !g.is_empty()),
                    value_from: None,
                })
                .collect(),
        });
        Self {
            node: Some(NodeResult {
                phase: Phase::Succeeded,
                message: message.into(),
                outputs,
            }),
            requeue: None,
        }
    }

    /// Still running: call again after `after`.
    pub fn running(message: impl Into<String>, after: Duration) -> Self {
        Self {
            node: Some(NodeResult {
                phase: Phase::Running,
                message: message.into(),
                outputs: None,
            }),
            requeue: Some(go_duration(after)),
        }
    }

    /// Failed for good: no requeue, or Argo would call again.
    pub fn failed(message: impl Into<String>) -> Self {
        Self {
            node: Some(NodeResult {
                phase: Phase::Failed,
                message: message.into(),
                outputs: None,
            }),
            requeue: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn durations_are_go_strings() {
        let cases = [
            (0, "0s"),
            (500, "500ms"),
            (1000, "1s"),
            (5000, "5s"),
            (1500, "1.5s"),
            (90_000, "1m30s"),
            (60_000, "1m0s"),
            (3_600_000, "1h0m0s"),
        ];
        for (ms, want) in cases {
            assert_eq!(go_duration(Duration::from_millis(ms)), want);
        }
    }

    #[test]
    fn go_durations_parse_as_the_plugin_writes_them() {
        assert_eq!(parse_duration("5s"), Some(Duration::from_secs(5)));
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("1h0m0s"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_duration("soon"), None);
        for d in [1u64, 999, 1000, 61_500, 3_600_000] {
            let d = Duration::from_millis(d);
            assert_eq!(parse_duration(&go_duration(d)), Some(d));
        }
    }

    /// Where the two hand-written copies disagreed, Go's
    /// `time.ParseDuration` decides: a sign is allowed (`+5s`), a number
    /// without a unit is not, and a negative duration is no time to wait.
    #[test]
    fn go_durations_parse_as_go_reads_them() {
        assert_eq!(parse_duration("+5s"), Some(Duration::from_secs(5)));
        assert_eq!(parse_duration("0"), Some(Duration::ZERO));
        assert_eq!(parse_duration("5"), None);
        assert_eq!(parse_duration("-5s"), None);
    }

    #[test]
    fn replies_serialise_as_argo_reads_them() {
        assert_eq!(
            serde_json::to_value(ExecuteTemplateReply::default()).unwrap(),
            json!({})
        );
        let r = ExecuteTemplateReply::running("2/3 new servers Ready", Duration::from_secs(5));
        assert_eq!(
            serde_json::to_value(r).unwrap(),
            json!({"node": {"phase": "Running", "message": "2/3 new servers Ready"}, "requeue": "5s"})
        );
        let declared = Outputs {
            parameters: vec![Parameter::new("previousImage", "")],
        };
        let r = ExecuteTemplateReply::succeeded(
            "patched",
            Some(&declared),
            &[("previousImage", "x:v1".into()), ("other", "y".into())],
        );
        assert_eq!(
            serde_json::to_value(r).unwrap(),
            json!({"node": {"phase": "Succeeded", "message": "patched",
                "outputs": {"parameters": [{"name": "previousImage", "value": "x:v1"}]}}})
        );
        let f = serde_json::to_value(ExecuteTemplateReply::failed("no")).unwrap();
        assert!(f.get("requeue").is_none());
    }

    /// Issue 11 item 13: Argo exports a plugin node's output to
    /// `workflow.outputs` only when the returned parameter carries
    /// `globalName` (argo-workflows `workflow/controller/operator.go`
    /// `addParamToGlobalScope`; the node's outputs are the returned ones,
    /// `taskset.go`), so the reply hands back each declared one; an output
    /// declared with only `valueFrom.default` gets that default when the
    /// op gives no value.
    #[test]
    fn replies_carry_the_global_names_and_defaults_the_template_declared() {
        let args: ExecuteTemplateArgs = serde_json::from_value(json!({
            "workflow": {"metadata": {"name": "w", "namespace": "argo", "uid": "1"}},
            "template": {"name": "s", "outputs": {"parameters": [
                {"name": "summary", "value": "", "globalName": "fleetSummary"},
                {"name": "ready", "valueFrom": {"default": 0, "supplied": {}}},
                {"name": "total", "globalName": ""}
            ]}, "plugin": {"gameops": {"status": {"gameServerSet": "a"}}}}
        }))
        .unwrap();
        let declared = args.template.outputs.as_ref();
        let r = ExecuteTemplateReply::succeeded(
            "ok",
            declared,
            &[("summary", "{}".into()), ("total", "3".into())],
        );
        assert_eq!(
            serde_json::to_value(r).unwrap()["node"]["outputs"],
            json!({"parameters": [
                {"name": "summary", "value": "{}", "globalName": "fleetSummary"},
                {"name": "ready", "value": "0"},
                {"name": "total", "value": "3"}
            ]})
        );
        // A request carries the declarations on, as the agent sends them.
        let again = serde_json::to_value(&args).unwrap();
        assert_eq!(
            again["template"]["outputs"]["parameters"][1]["valueFrom"],
            json!({"default": 0, "supplied": {}})
        );
    }

    #[test]
    fn requests_parse_from_the_contract_example() {
        let body = json!({"workflow":{"metadata":{"name":"rel-7x2kq","namespace":"argo","uid":"0b6f"}},
            "template":{"name":"patch-image","inputs":{"parameters":[{"name":"image","value":"x:v2"}]},
            "outputs":{"parameters":[{"name":"previousImage","value":""}]},"metadata":{},
            "plugin":{"gameops":{"patchImage":{"gameServerSet":"minecraft","image":"x:v2"}}}}});
        let args: ExecuteTemplateArgs = serde_json::from_value(body).unwrap();
        assert_eq!(args.workflow.metadata.uid, "0b6f");
        assert_eq!(
            args.template.plugin.unwrap()["gameops"]["patchImage"]["image"],
            "x:v2"
        );
    }
}
