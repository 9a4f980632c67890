//! The Argo Workflows executor plugin: `POST /api/v1/template.execute`, as
//! Argo's agent calls every plugin sidecar for every plugin template.
//!
//! Rules (CONTRACTS section 1): a template for another plugin gets 200 `{}`;
//! a request without the agent's bearer token gets 403; a well-formed
//! request always gets 200, with `phase: Failed` and a message for a person
//! when its arguments are wrong (any other status would fail the node with
//! an unreadable body); only malformed JSON gets 400. `requeue` is a Go
//! duration and is never sent with a terminal phase. Every call answers
//! within [`calls::DEADLINE`]: work still going on then goes on, and a
//! repeat of the call collects it; a transient failure is retried a
//! bounded number of times, then fails naming its cause (see [`calls`]).

pub mod calls;
pub mod wire;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use bytes::Bytes;
use futures::FutureExt;
use kube::Client;
use serde_json::json;

use crate::informer::ServerCache;
use crate::ops::{self, Outcome};
use crate::registry::Resolver;
use wire::{ExecuteTemplateArgs, ExecuteTemplateReply};

/// The plugin's name: the key under `template.plugin`.
pub const PLUGIN_NAME: &str = "gameops";
/// How soon an `Outcome::Retry` that escaped the count is retried.
const RETRY_AFTER: Duration = Duration::from_secs(5);

/// One cluster the plugin acts on.
#[derive(Clone)]
struct Cluster {
    name: String,
    client: Client,
    servers: Arc<ServerCache>,
}

/// The plugin: the clusters it acts on (the first is the default), and
/// the registries it resolves and promotes tags in.
pub struct Plugin {
    targets: Targets,
    calls: Arc<calls::Calls>,
}

/// What the ops act on: the clusters (the first is the default) and the
/// registries; cheap to clone into a call's task.
#[derive(Clone)]
struct Targets {
    clusters: Arc<Vec<Cluster>>,
    resolver: Option<Arc<Resolver>>,
}

impl Plugin {
    /// A plugin acting on `clusters`. Each gets a GameServer cache, which
    /// watches a namespace from the first call that reads its servers.
    pub fn new(clusters: Vec<(String, Client)>) -> Self {
        Self::with_caches(
            clusters
                .into_iter()
                .map(|(name, client)| {
                    let servers = Arc::new(ServerCache::new(client.clone()));
                    (name, client, servers)
                })
                .collect(),
        )
    }

    /// A plugin acting on `clusters` through GameServer caches made
    /// elsewhere (the embedded server shares one per cluster with its
    /// allocator).
    pub fn with_caches(clusters: Vec<(String, Client, Arc<ServerCache>)>) -> Self {
        let clusters = clusters
            .into_iter()
            .map(|(name, client, servers)| Cluster {
                name,
                client,
                servers,
            })
            .collect();
        Self {
            targets: Targets {
                clusters: Arc::new(clusters),
                resolver: None,
            },
            calls: Arc::default(),
        }
    }

    /// The plugin, resolving and promoting tags with `resolver`.
    pub fn with_resolver(mut self, resolver: Arc<Resolver>) -> Self {
        self.targets.resolver = Some(resolver);
        self
    }

    /// Executes one template, as the endpoint does after authentication.
    pub async fn execute(&self, args: &ExecuteTemplateArgs) -> ExecuteTemplateReply {
        let Some(spec) = args
            .template
            .plugin
            .as_ref()
            .and_then(|p| p.get(PLUGIN_NAME))
        else {
            return ExecuteTemplateReply::default();
        };
        let ops = ops::table::listing();
        let (op, value) = match spec.as_object().map(|o| o.iter().collect::<Vec<_>>()) {
            Some(entries) if entries.len() == 1 => entries[0],
            _ => {
                return ExecuteTemplateReply::failed(format!(
                    "plugin.gameops must name exactly one op, e.g. {{\"scale\": {{\"gameServerSet\": \"minecraft\", \"delta\": 3}}}}; the ops are {ops}"
                ));
            }
        };
        let declared = args.template.outputs.as_ref();
        let caller = ops::Caller::from(&args.workflow.metadata);
        let template = args.template.name.clone();
        let fingerprint = ops::fingerprint(&caller.uid, &template, op, value);
        let (targets, op, value) = (self.targets.clone(), op.clone(), value.clone());
        let start = move || {
            async move { ops::run(&targets, &caller, &template, &op, &value).await }.boxed()
        };
        let answer = self
            .calls
            .answer(&fingerprint, calls::DEADLINE, start)
            .await;
        match answer {
            calls::Answer::StillWorking(since) => ExecuteTemplateReply::running(
                format!(
                    "still working on this call (started {} s ago); it goes on, and the next call collects its result",
                    since.as_secs()
                ),
                calls::STILL_WORKING_REQUEUE,
            ),
            calls::Answer::Outcome(Outcome::Done { message, outputs }) => {
                let values: Vec<(&str, String)> = outputs
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.clone()))
                    .collect();
                ExecuteTemplateReply::succeeded(message, declared, &values)
            }
            calls::Answer::Outcome(Outcome::Waiting { message, after }) => {
                ExecuteTemplateReply::running(message, after)
            }
            calls::Answer::Outcome(Outcome::Retry(message)) => {
                ExecuteTemplateReply::running(format!("{message} (retrying)"), RETRY_AFTER)
            }
            calls::Answer::Outcome(Outcome::Failed(message)) => {
                ExecuteTemplateReply::failed(message)
            }
        }
    }
}

impl Targets {
    fn cluster(&self, name: Option<&str>) -> Option<&Cluster> {
        match name {
            None | Some("") => self.clusters.first(),
            Some(n) => self.clusters.iter().find(|c| c.name == n),
        }
    }
}

impl ops::Clusters for Targets {
    fn client(&self, name: Option<&str>) -> Option<Client> {
        self.cluster(name).map(|c| c.client.clone())
    }

    fn names(&self) -> Vec<String> {
        self.clusters.iter().map(|c| c.name.clone()).collect()
    }

    fn cache(&self, name: Option<&str>) -> Option<Arc<ServerCache>> {
        self.cluster(name).map(|c| c.servers.clone())
    }

    fn resolver(&self) -> Option<Arc<Resolver>> {
        self.resolver.clone()
    }
}

/// The plugin acts on its targets (`ops::run(&plugin, ...)` runs an op
/// directly, without the deadline and the count of [`calls`]).
impl ops::Clusters for Plugin {
    fn client(&self, name: Option<&str>) -> Option<Client> {
        self.targets.client(name)
    }

    fn names(&self) -> Vec<String> {
        self.targets.names()
    }

    fn cache(&self, name: Option<&str>) -> Option<Arc<ServerCache>> {
        self.targets.cache(name)
    }

    fn resolver(&self) -> Option<Arc<Resolver>> {
        self.targets.resolver()
    }
}

async fn execute(State(plugin): State<Arc<Plugin>>, body: Bytes) -> Response {
    let args: ExecuteTemplateArgs = match serde_json::from_slice(&body) {
        Ok(a) => a,
        Err(e) => {
            let error = json!({"error": format!("the request body is not an ExecuteTemplateArgs JSON object: {e}")});
            return (StatusCode::BAD_REQUEST, axum::Json(error)).into_response();
        }
    };
    axum::Json(plugin.execute(&args).await).into_response()
}

/// `POST /api/v1/template.execute`; with `token`, every call must carry it
/// (403 otherwise).
pub fn router(plugin: Arc<Plugin>, token: Option<&str>) -> Router {
    let router = Router::new()
        .route("/api/v1/template.execute", post(execute))
        .with_state(plugin);
    crate::http::require_credential(
        router,
        token.map(|t| crate::http::Credential::Bearer(t.to_owned())),
        || {
            (
                StatusCode::FORBIDDEN,
                "forbidden: the Authorization bearer token is not the agent's",
            )
                .into_response()
        },
    )
}
