//! Argo's agent as the tests play it: `POST /api/v1/template.execute` on a
//! server's service port, with the plugin token `serve` writes, and readers
//! for the reply.

use std::time::{Duration, Instant};

use gameops::argo::plugin::wire::parse_duration;
use serde_json::{Value, json};

use super::Server;

/// Calls a server's executor plugin.
pub struct Agent {
    http: reqwest::Client,
    url: String,
    /// The token `serve` wrote to `DATA_DIR/plugin-token`.
    pub token: String,
}

/// The request Argo's agent sends for template `template` of workflow
/// `uid`, whose `plugin` is `plugin` and whose declared outputs are `outputs`.
pub fn request(uid: &str, template: &str, plugin: Value, outputs: &[&str]) -> Value {
    let outputs: Vec<Value> = outputs
        .iter()
        .map(|n| json!({"name": n, "value": ""}))
        .collect();
    json!({
        "workflow": {"metadata": {"name": format!("wf-{uid}"), "namespace": "default", "uid": uid}},
        "template": {"name": template, "inputs": {}, "outputs": {"parameters": outputs}, "metadata": {},
            "plugin": plugin},
    })
}

impl Agent {
    /// The agent of `server`'s plugin.
    pub fn new(server: &Server) -> Self {
        let token = std::fs::read_to_string(server.data_dir().join("plugin-token"))
            .expect("serve writes the plugin token");
        Self {
            http: reqwest::Client::new(),
            url: format!(
                "http://127.0.0.1:{}/api/v1/template.execute",
                server.service_port
            ),
            token: token.trim().to_owned(),
        }
    }

    /// The agent of a plugin listening at `127.0.0.1:port` that requires `token`.
    pub fn at(port: u16, token: &str) -> Self {
        Self {
            http: reqwest::Client::new(),
            url: format!("http://127.0.0.1:{port}/api/v1/template.execute"),
            token: token.to_owned(),
        }
    }

    /// Sends `body` with `token` (or none) as it is.
    pub async fn raw(&self, token: Option<&str>, body: String) -> reqwest::Response {
        let mut request = self
            .http
            .post(&self.url)
            .header("Content-Type", "application/json")
            .body(body);
        if let Some(t) = token {
            request = request.bearer_auth(t);
        }
        request.send().await.expect("plugin answers")
    }

    /// Sends `plugin` as template `template` of workflow `uid`; returns the reply.
    pub async fn call(&self, uid: &str, template: &str, plugin: Value, outputs: &[&str]) -> Value {
        let body = request(uid, template, plugin, outputs);
        let r = self.raw(Some(&self.token), body.to_string()).await;
        assert_eq!(
            r.status().as_u16(),
            200,
            "a well-formed request always gets 200"
        );
        r.json().await.expect("JSON reply")
    }

    /// [`Agent::call`] of gameops op `op` with `args`.
    pub async fn op(
        &self,
        uid: &str,
        template: &str,
        op: &str,
        args: Value,
        outputs: &[&str],
    ) -> Value {
        self.call(uid, template, json!({"gameops": {op: args}}), outputs)
            .await
    }
}

/// The reply's node phase.
pub fn phase(reply: &Value) -> &str {
    reply["node"]["phase"].as_str().unwrap_or("")
}

/// The reply's node message.
pub fn message(reply: &Value) -> &str {
    reply["node"]["message"].as_str().unwrap_or("")
}

/// Output parameter `name` of the reply ("" when absent).
pub fn output<'a>(reply: &'a Value, name: &str) -> &'a str {
    reply["node"]["outputs"]["parameters"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["name"] == name))
        .and_then(|p| p["value"].as_str())
        .unwrap_or("")
}

/// How long a driven op may stay Running before a test counts it as broken.
const DEADLINE: Duration = Duration::from_secs(60);

/// Calls as Argo does: again after each `requeue` while Running, until
/// the node ends. Returns the final reply and how many calls it took.
pub async fn drive(
    agent: &Agent,
    uid: &str,
    template: &str,
    op: &str,
    args: Value,
    outputs: &[&str],
) -> (Value, usize) {
    let deadline = Instant::now() + DEADLINE;
    let mut calls = 0;
    loop {
        let reply = agent.op(uid, template, op, args.clone(), outputs).await;
        calls += 1;
        if phase(&reply) != "Running" {
            return (reply, calls);
        }
        let requeue = reply["requeue"]
            .as_str()
            .unwrap_or_else(|| panic!("Running without requeue hangs the node: {reply}"));
        assert!(
            Instant::now() < deadline,
            "{op} still Running after {DEADLINE:?}: {reply}"
        );
        let after = parse_duration(requeue)
            .unwrap_or_else(|| panic!("requeue {requeue:?} is not a Go duration"));
        tokio::time::sleep(after).await;
    }
}

/// Asserts the reply Succeeded.
pub fn succeeded(reply: &Value) {
    assert_eq!(phase(reply), "Succeeded", "{reply}");
}

pub fn set(extra: Value) -> Value {
    let mut args = json!({"gameServerSet": "minecraft"});
    json_patch::merge(&mut args, &extra);
    args
}
