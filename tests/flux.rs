//! The Flux ExternalService endpoint and the plugin's registry ops, over
//! HTTP against `gameops serve --config`, with a real registry
//! (docker-registry) behind them: the body Flux reads, Adler-32 ids, auth,
//! unknown environments, the registry going down (stale answers, then
//! 503), and `resolveTag`/`promoteTag` as Argo's agent calls them.
#![allow(
    clippy::too_many_lines,
    reason = "a scenario or a table reads best top to bottom"
)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::agent::{Agent, output};
use common::registry::Registry;
use common::{Server, adler32};
use gameops::registry::Resolver;
use gameops::registry::config::Config;
use serde_json::{Value, json};

const REPO: &str = "game/server";
const FLUX_TOKEN: &str = "flux-secret-token";

struct Setup {
    registry: Registry,
    server: Server,
    repository: String,
    digests: Vec<(String, String)>,
    http: reqwest::Client,
}

impl Setup {
    async fn start(tags: &[&str]) -> Self {
        let registry = Registry::start();
        let repository = format!("{}/{REPO}", registry.host);
        let config = format!(
            "registries:\n{}environments:\n  develop: {{repository: {repository}, filter: {{includeTag: '^v\\d+\\.\\d+\\.\\d+-rc\\.[a-f0-9]+$', limit: 1}}}}\n  staging: {{repository: {repository}, filter: {{semver: '>=0.0.0', limit: 3}}}}\n  production: {{repository: {repository}, filter: {{includeTag: '^production-latest$'}}}}\n  never-asked: {{repository: {repository}}}\nprotectedTags: ['v\\d+\\.\\d+\\.\\d+']\nflux:\n  auth: {{bearer: {{token: {FLUX_TOKEN}}}}}\n  cacheSeconds: 1\n",
            registry.config_entry()
        );
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.keep().join("gameops.yaml");
        std::fs::write(&path, &config).expect("config");
        let resolver = Resolver::new(Arc::new(
            Config::parse(&config, &path).expect("config parses"),
        ))
        .expect("resolver");
        let mut digests = Vec::new();
        for tag in tags {
            let d = resolver
                .client()
                .push_image(&repository, tag, tag.as_bytes().to_vec())
                .await
                .expect("push");
            digests.push((tag.to_string(), d));
        }
        let path = path.to_string_lossy().into_owned();
        let server = Server::start(&["--in-memory", "--config", &path]);
        Self {
            registry,
            server,
            repository,
            digests,
            http: reqwest::Client::new(),
        }
    }

    fn digest(&self, tag: &str) -> &str {
        &self
            .digests
            .iter()
            .find(|(t, _)| t == tag)
            .expect("pushed")
            .1
    }

    async fn flux(&self, env: &str, token: Option<&str>) -> reqwest::Response {
        let mut request = self
            .http
            .get(format!(
                "http://127.0.0.1:{}/flux/v1/inputs?env={env}",
                self.server.service_port
            ))
            .header("Accept", "application/json")
            .header("User-Agent", "flux-operator/v0.43.0");
        if let Some(t) = token {
            request = request.bearer_auth(t);
        }
        request.send().await.expect("flux endpoint answers")
    }

    async fn plugin(&self, uid: &str, template: &str, op: &str, args: Value) -> Value {
        Agent::new(&self.server)
            .op(
                uid,
                template,
                op,
                args,
                &["tag", "digest", "image", "changed", "previousDigest"],
            )
            .await
    }
}

#[tokio::test]
async fn flux_reads_the_inputs_of_each_environment() {
    let s = Setup::start(&[
        "v0.1.0-rc.a1b2c3d",
        "v1.0.0",
        "v1.2.0",
        "v1.10.0",
        "6.0.4",
        "production-latest",
    ])
    .await;

    let r = s.flux("staging", Some(FLUX_TOKEN)).await;
    assert_eq!(r.status().as_u16(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap_or_default()
            .starts_with("application/json")
    );
    let body: Value = r.json().await.expect("json");
    let inputs = body["inputs"].as_array().expect("inputs is a list");
    let tags: Vec<&str> = inputs
        .iter()
        .map(|i| i["tag"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        tags,
        ["6.0.4", "v1.10.0", "v1.2.0"],
        "semver newest first, limit 3"
    );
    for input in inputs {
        let tag = input["tag"].as_str().expect("tag");
        assert!(input["id"].is_string(), "Flux needs string ids");
        assert_eq!(input["id"], adler32(tag.as_bytes()).to_string(), "{input}");
        assert_eq!(input["digest"], s.digest(tag));
        assert_eq!(
            input["image"],
            format!("{}:{tag}@{}", s.repository, s.digest(tag))
        );
        assert_eq!(input["env"], "staging");
    }
    assert_eq!(
        inputs.iter().find(|i| i["tag"] == "6.0.4").expect("6.0.4")["id"],
        "48955639",
        "the id Flux's OCIArtifactTag provider gives 6.0.4"
    );

    let prod: Value = s
        .flux("production", Some(FLUX_TOKEN))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(prod["inputs"][0]["tag"], "production-latest");
    let dev: Value = s
        .flux("develop", Some(FLUX_TOKEN))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(dev["inputs"][0]["tag"], "v0.1.0-rc.a1b2c3d");
    assert_eq!(dev["inputs"].as_array().map(Vec::len), Some(1));

    // Auth as configured, 401 otherwise.
    assert_eq!(s.flux("staging", None).await.status().as_u16(), 401);
    assert_eq!(
        s.flux("staging", Some("wrong")).await.status().as_u16(),
        401
    );

    // An unknown environment: 404 naming the known ones.
    let r = s.flux("qa", Some(FLUX_TOKEN)).await;
    assert_eq!(r.status().as_u16(), 404);
    let e: Value = r.json().await.expect("json error");
    let message = e["error"].as_str().expect("error");
    assert!(
        message.contains("\"qa\"") && message.contains("staging"),
        "{message}"
    );
    assert!(
        e["known"]
            .as_array()
            .is_some_and(|k| k.contains(&json!("production")))
    );
}

#[tokio::test]
async fn a_registry_outage_serves_the_last_answer_then_503() {
    let mut s = Setup::start(&["v1.0.0", "v1.1.0"]).await;
    let fresh: Value = s
        .flux("staging", Some(FLUX_TOKEN))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(fresh["inputs"][0]["tag"], "v1.1.0");

    s.registry.stop();
    tokio::time::sleep(Duration::from_millis(1100)).await; // past cacheSeconds: 1
    let r = s.flux("staging", Some(FLUX_TOKEN)).await;
    assert_eq!(
        r.status().as_u16(),
        200,
        "stale beats nothing while the registry is down"
    );
    assert!(
        r.headers()
            .get("warning")
            .and_then(|w| w.to_str().ok())
            .is_some_and(|w| w.contains("Stale")),
        "a stale answer says so"
    );
    let stale: Value = r.json().await.expect("json");
    assert_eq!(stale, fresh);

    // Nothing cached for this one: 503 with a message, so Flux retries.
    let r = s.flux("production", Some(FLUX_TOKEN)).await;
    assert_eq!(r.status().as_u16(), 503);
    let e: Value = r.json().await.expect("json");
    assert!(
        e["error"]
            .as_str()
            .is_some_and(|m| m.contains("unavailable")),
        "{e}"
    );

    // The plugin op says the same, as a transient failure Argo requeues.
    let reply = s
        .plugin(
            "wf-down",
            "resolve",
            "resolveTag",
            json!({"environment": "staging"}),
        )
        .await;
    assert_eq!(reply["node"]["phase"], "Running", "{reply}");
    assert!(reply["requeue"].is_string(), "{reply}");

    s.registry.restart();
    let back: Value = s
        .flux("production", Some(FLUX_TOKEN))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(
        back["inputs"],
        json!([]),
        "no production-latest tag: an empty list"
    );
}

#[tokio::test]
async fn resolve_and_promote_as_plugin_steps() {
    let s = Setup::start(&["v1.0.0", "v1.2.0", "v1.2.1-rc.abc"]).await;
    let reply = s
        .plugin(
            "wf-1",
            "resolve",
            "resolveTag",
            json!({"environment": "staging"}),
        )
        .await;
    assert_eq!(reply["node"]["phase"], "Succeeded", "{reply}");
    assert_eq!(output(&reply, "tag"), "v1.2.0");
    assert_eq!(output(&reply, "digest"), s.digest("v1.2.0"));
    assert_eq!(
        output(&reply, "image"),
        format!("{}:v1.2.0@{}", s.repository, s.digest("v1.2.0"))
    );

    // Ad hoc repository and filter.
    let reply = s
        .plugin(
            "wf-1",
            "resolve-rc",
            "resolveTag",
            json!({"repository": s.repository, "filter": {"semver": ">=1.2.1-0"}}),
        )
        .await;
    assert_eq!(output(&reply, "tag"), "v1.2.1-rc.abc", "{reply}");

    // Promotion, sent three times as Argo retries would: one change.
    let args = json!({"repository": s.repository, "from": "v1.2.0", "to": "production-latest"});
    let mut changed = Vec::new();
    for _ in 0..3 {
        let reply = s
            .plugin("wf-1", "promote", "promoteTag", args.clone())
            .await;
        assert_eq!(reply["node"]["phase"], "Succeeded", "{reply}");
        assert_eq!(output(&reply, "digest"), s.digest("v1.2.0"));
        changed.push(output(&reply, "changed").to_owned());
    }
    assert_eq!(changed, ["true", "false", "false"]);
    let prod: Value = s
        .flux("production", Some(FLUX_TOKEN))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(prod["inputs"][0]["digest"], s.digest("v1.2.0"));

    // A protected tag is never moved: a terminal failure that says why.
    let reply = s
        .plugin(
            "wf-1",
            "promote-bad",
            "promoteTag",
            json!({"repository": s.repository, "from": "v1.2.0", "to": "v1.0.0"}),
        )
        .await;
    assert_eq!(reply["node"]["phase"], "Failed", "{reply}");
    assert!(reply.get("requeue").is_none_or(Value::is_null));
    let message = reply["node"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("protected"), "{message}");

    // Bad arguments name the field.
    let reply = s
        .plugin(
            "wf-1",
            "promote-x",
            "promoteTag",
            json!({"repository": s.repository, "from": "v1.2.0"}),
        )
        .await;
    assert_eq!(reply["node"]["phase"], "Failed");
    assert!(
        reply["node"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("promoteTag.to")),
        "{reply}"
    );
    let reply = s
        .plugin(
            "wf-1",
            "resolve-x",
            "resolveTag",
            json!({"environment": "qa"}),
        )
        .await;
    assert_eq!(reply["node"]["phase"], "Failed");
    assert!(
        reply["node"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("qa") && m.contains("staging")),
        "{reply}"
    );
}
