//! `gameops plugin`: the executor plugin as the sidecar Argo's agent pod
//! runs (CONTRACTS section 1). No embedded API server: the plugin acts on
//! real clusters, reached through the pod's ServiceAccount (in-cluster
//! config) or a kubeconfig, and on any number of named clusters given as
//! `--cluster NAME=KUBECONFIG[:CONTEXT]`, or as environment variables
//! `GAMEOPS_CLUSTER_<NAME>` holding a kubeconfig: how the sidecar gets them
//! under Argo, whose agent pod mounts no volume of the plugin's choosing but
//! keeps the container's `env`/`envFrom` (plugin/plugin.yaml takes them
//! from the Secret `gameops-plugin-clusters`, and gameops.yaml from
//! `GAMEOPS_CONFIG_YAML`).
//!
//! Every call must carry the bearer token the agent writes to
//! `--token-file` (default `/var/run/argo/token`). The agent may write it
//! just after the sidecar starts, so the sidecar waits for it (60 s by
//! default) before refusing to start; `--insecure-no-auth` starts without
//! one, and then serves without authentication.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use kube::Client;
use kube::config::{KubeConfigOptions, Kubeconfig};
use tokio::net::TcpListener;

use crate::argo::plugin::{self, Plugin};
use crate::registry::Resolver;
use crate::registry::flux::FluxInputs;

/// Where Argo's agent writes the token.
pub const DEFAULT_TOKEN_FILE: &str = "/var/run/argo/token";
/// How long to wait for the token file by default.
pub const DEFAULT_TOKEN_WAIT: Duration = Duration::from_secs(60);
/// How long calls in flight may take to finish after SIGTERM.
const GRACE: Duration = Duration::from_secs(10);
/// The default cluster's name when it comes from a kubeconfig.
pub const KUBECONFIG_CLUSTER: &str = "default";
/// The default cluster's name when it comes from the pod's ServiceAccount.
pub const IN_CLUSTER: &str = "in-cluster";

/// What `gameops plugin` was asked to do.
#[derive(Debug, Clone)]
pub struct SidecarOptions {
    /// Where to listen.
    pub listen: SocketAddr,
    /// `NAME=KUBECONFIG[:CONTEXT]` targets; empty: the in-cluster or
    /// kubeconfig default.
    pub clusters: Vec<String>,
    /// Named clusters as `(name, kubeconfig YAML)`, after `clusters`
    /// ([`env_clusters`]).
    pub env_clusters: Vec<(String, String)>,
    /// The file holding the token callers must send.
    pub token_file: PathBuf,
    /// Start (and serve unauthenticated) when no token can be read.
    pub insecure_no_auth: bool,
    /// How long to wait for the token file to appear.
    pub token_wait: Duration,
    /// gameops.yaml: registries and environments (`resolveTag`,
    /// `promoteTag`, the Flux endpoint).
    pub config: Arc<crate::registry::config::Config>,
}

impl Default for SidecarOptions {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 4355)),
            clusters: Vec::new(),
            env_clusters: Vec::new(),
            token_file: PathBuf::from(DEFAULT_TOKEN_FILE),
            insecure_no_auth: false,
            token_wait: DEFAULT_TOKEN_WAIT,
            config: Arc::default(),
        }
    }
}

/// Why the sidecar could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum SidecarError {
    /// The registries of gameops.yaml are unusable.
    #[error("{0}")]
    Config(String),
    /// A `--cluster` value not of the form `NAME=KUBECONFIG[:CONTEXT]`.
    #[error(
        "--cluster {0:?} is not NAME=KUBECONFIG[:CONTEXT] (e.g. --cluster eu=/etc/gameops/eu.kubeconfig or --cluster eu=/etc/gameops/kubeconfig:eu-west)"
    )]
    ClusterSpec(String),
    /// A cluster name that is not a DNS label.
    #[error(
        "--cluster {0:?}: the name must be lower-case letters, digits and '-' (e.g. eu-west); templates name it in their `cluster` argument"
    )]
    ClusterName(String),
    /// The same name twice.
    #[error("--cluster {0} is given twice: each cluster needs its own name")]
    DuplicateCluster(String),
    /// A named cluster's kubeconfig or context is unusable.
    #[error("--cluster {name}: {reason}")]
    Cluster {
        /// The cluster.
        name: String,
        /// Why.
        reason: String,
    },
    /// A `GAMEOPS_CLUSTER_<NAME>` variable whose kubeconfig is unusable.
    #[error(
        "{var}: {reason} (cluster {name}); it must hold a kubeconfig file's text, e.g. from the Secret gameops-plugin-clusters (kubectl create secret generic gameops-plugin-clusters --from-file={var}=FILE)"
    )]
    EnvCluster {
        /// The variable.
        var: String,
        /// The cluster it names.
        name: String,
        /// Why.
        reason: String,
    },
    /// No `--cluster` and neither a kubeconfig nor an in-cluster config.
    #[error(
        "no cluster to act on: no kubeconfig ({kubeconfig}) and no in-cluster ServiceAccount ({in_cluster}); run in a pod (the plugin manifest sets automountServiceAccountToken: true), set KUBECONFIG, or pass --cluster NAME=KUBECONFIG[:CONTEXT]"
    )]
    NoCluster {
        /// Why the kubeconfig did not load.
        kubeconfig: String,
        /// Why the in-cluster config did not load.
        in_cluster: String,
    },
    /// No usable token and no `--insecure-no-auth`.
    #[error(
        "{problem}. Every call must carry the bearer token Argo's agent writes to --token-file (default {DEFAULT_TOKEN_FILE}); outside Argo, put a random token in a file and pass --token-file FILE, or pass --insecure-no-auth to serve without authentication (trusted networks only)"
    )]
    Token {
        /// What went wrong with the file.
        problem: String,
    },
    /// Binding the port failed.
    #[error(
        "cannot listen on {addr}: {source} (is another plugin using this port? pick another with --listen)"
    )]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The HTTP server failed.
    #[error("the server stopped: {0}")]
    Io(#[from] std::io::Error),
}

/// One `--cluster NAME=KUBECONFIG[:CONTEXT]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterTarget {
    /// The name templates use in their `cluster` argument.
    pub name: String,
    /// The kubeconfig file.
    pub kubeconfig: PathBuf,
    /// The context (default: the file's current context).
    pub context: Option<String>,
}

/// Parses `NAME=KUBECONFIG[:CONTEXT]`. Context names may contain `:` (EKS
/// ARNs do), so the kubeconfig is the shortest prefix before a `:` that is
/// an existing file; without such a file the whole value is the path.
pub fn parse_cluster(spec: &str) -> Result<ClusterTarget, SidecarError> {
    let (name, rest) = spec
        .split_once('=')
        .filter(|(n, r)| !n.is_empty() && !r.is_empty())
        .ok_or_else(|| SidecarError::ClusterSpec(spec.to_owned()))?;
    if crate::api::names::dns_label_error(name).is_some() {
        return Err(SidecarError::ClusterName(name.to_owned()));
    }
    let split = rest
        .match_indices(':')
        .map(|(i, _)| (&rest[..i], &rest[i + 1..]))
        .find(|(path, _)| !Path::new(rest).is_file() && Path::new(path).is_file());
    let (path, context) = match split {
        Some((_, "")) => return Err(SidecarError::ClusterSpec(spec.to_owned())),
        Some((path, context)) => (path, Some(context.to_owned())),
        None => (rest, None),
    };
    Ok(ClusterTarget {
        name: name.to_owned(),
        kubeconfig: PathBuf::from(path),
        context,
    })
}

async fn client_for(target: &ClusterTarget) -> Result<Client, SidecarError> {
    let fail = |reason: String| SidecarError::Cluster {
        name: target.name.clone(),
        reason,
    };
    let config = super::target::kubeconfig_file(&target.kubeconfig, target.context.as_deref())
        .await
        .map_err(fail)?;
    Client::try_from(config).map_err(|e| fail(format!("cannot build a client: {e}")))
}

/// The default cluster, as `kube::Config::infer` finds it: the kubeconfig
/// (`KUBECONFIG` or `~/.kube/config`, named `default`), else the pod's
/// ServiceAccount (named `in-cluster`).
async fn default_cluster() -> Result<(String, Client), SidecarError> {
    let (name, config) = match kube::Config::from_kubeconfig(&KubeConfigOptions::default()).await {
        Ok(config) => (KUBECONFIG_CLUSTER, config),
        Err(kubeconfig) => match kube::Config::incluster() {
            Ok(config) => (IN_CLUSTER, config),
            Err(in_cluster) => {
                return Err(SidecarError::NoCluster {
                    kubeconfig: kubeconfig.to_string(),
                    in_cluster: in_cluster.to_string(),
                });
            }
        },
    };
    let client = Client::try_from(config).map_err(|e| SidecarError::Cluster {
        name: name.to_owned(),
        reason: format!("cannot build a client: {e}"),
    })?;
    Ok((name.to_owned(), client))
}

/// The clusters the plugin acts on: each `--cluster` in order (the first is
/// the default), or the inferred default.
pub async fn connect(specs: &[String]) -> Result<Vec<(String, Client)>, SidecarError> {
    if specs.is_empty() {
        return Ok(vec![default_cluster().await?]);
    }
    let mut clusters: Vec<(String, Client)> = Vec::new();
    for spec in specs {
        let target = parse_cluster(spec)?;
        if clusters.iter().any(|(n, _)| *n == target.name) {
            return Err(SidecarError::DuplicateCluster(target.name));
        }
        let client = client_for(&target).await?;
        clusters.push((target.name, client));
    }
    Ok(clusters)
}

/// Reads the token of `--token-file`, waiting up to `wait` for the file to
/// appear (or to be written). A file that exists but cannot be read fails
/// at once.
pub async fn read_token(path: &Path, wait: Duration) -> Result<String, SidecarError> {
    super::read_token(path, wait).await.map_err(|e| {
        let shown = path.display();
        let problem = match e {
            super::TokenProblem::Unreadable(e)
                if e.kind() == std::io::ErrorKind::PermissionDenied =>
            {
                format!(
                    "cannot read --token-file {shown}: {e}. Argo's agent writes it as uid 8737 with mode 0440: run the sidecar with securityContext.runAsUser: 8737 (plugin/plugin.yaml does)"
                )
            }
            other => format!("--token-file {shown} {other}"),
        };
        SidecarError::Token { problem }
    })
}

/// The token to require, or `None` (with a warning) under
/// `--insecure-no-auth` when none can be read.
pub async fn token(options: &SidecarOptions) -> Result<Option<String>, SidecarError> {
    if !options.insecure_no_auth {
        return read_token(&options.token_file, options.token_wait)
            .await
            .map(Some);
    }
    match read_token(&options.token_file, Duration::ZERO).await {
        Ok(token) => {
            tracing::info!(path = %options.token_file.display(), "token read: calls must carry it despite --insecure-no-auth");
            Ok(Some(token))
        }
        Err(e) => {
            tracing::warn!(reason = %e, "--insecure-no-auth: serving WITHOUT authentication; anyone who reaches this port can change your game servers");
            Ok(None)
        }
    }
}

/// The one plugin assembly, for `serve`, `plugin` and `run`: the executor
/// plugin (behind `token`, if any) and the Flux endpoint (behind its own
/// auth), both resolving tags with `resolver`.
pub fn plugin_routes(plugin: Plugin, resolver: Arc<Resolver>, token: Option<&str>) -> Router {
    let plugin = Arc::new(plugin.with_resolver(resolver.clone()));
    let flux = Arc::new(FluxInputs::new(resolver));
    flux.router().merge(plugin::router(plugin, token))
}

/// The prefix of the environment variables that name a cluster.
pub const CLUSTER_ENV_PREFIX: &str = "GAMEOPS_CLUSTER_";

/// The clusters given in the environment: each `GAMEOPS_CLUSTER_<NAME>`
/// holds a kubeconfig (its current context is used); the cluster's name is
/// `<NAME>` in lower case with `_` as `-` (`GAMEOPS_CLUSTER_EU_WEST` is
/// `eu-west`). Sorted by name.
pub fn env_clusters(vars: impl IntoIterator<Item = (String, String)>) -> Vec<(String, String)> {
    let mut found: Vec<(String, String)> = vars
        .into_iter()
        .filter_map(|(key, value)| {
            let name = key.strip_prefix(CLUSTER_ENV_PREFIX)?;
            Some((name.to_ascii_lowercase().replace('_', "-"), value))
        })
        .collect();
    found.sort();
    found
}

/// A client for the cluster of kubeconfig YAML `text`, named `name`
/// (from `GAMEOPS_CLUSTER_<NAME>`).
async fn env_client(name: &str, text: &str) -> Result<Client, SidecarError> {
    let var = format!(
        "{CLUSTER_ENV_PREFIX}{}",
        name.to_ascii_uppercase().replace('-', "_")
    );
    let fail = |reason: String| SidecarError::EnvCluster {
        var: var.clone(),
        name: name.to_owned(),
        reason,
    };
    if crate::api::names::dns_label_error(name).is_some() {
        return Err(SidecarError::ClusterName(name.to_owned()));
    }
    let kubeconfig = Kubeconfig::from_yaml(text)
        .map_err(|e| fail(format!("does not hold a kubeconfig: {e}")))?;
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .map_err(|e| fail(format!("cannot use its current context: {e}")))?;
    Client::try_from(config).map_err(|e| fail(format!("cannot build a client: {e}")))
}

/// [`connect`], then the clusters of `env` ([`env_clusters`]) after them.
pub async fn connect_all(
    specs: &[String],
    env: &[(String, String)],
) -> Result<Vec<(String, Client)>, SidecarError> {
    let mut clusters = connect(specs).await?;
    for (name, text) in env {
        if clusters.iter().any(|(n, _)| n == name) {
            return Err(SidecarError::DuplicateCluster(name.clone()));
        }
        clusters.push((name.clone(), env_client(name, text).await?));
    }
    Ok(clusters)
}

/// Connects to the clusters, reads the token, then serves until SIGINT or
/// SIGTERM.
pub async fn run(options: &SidecarOptions) -> Result<(), SidecarError> {
    let clusters = connect_all(&options.clusters, &options.env_clusters).await?;
    let token = token(options).await?;
    let listener =
        TcpListener::bind(options.listen)
            .await
            .map_err(|source| SidecarError::Bind {
                addr: options.listen,
                source,
            })?;
    let names: Vec<&str> = clusters.iter().map(|(n, _)| n.as_str()).collect();
    tracing::info!(
        listen = %listener.local_addr()?,
        clusters = %names.join(","),
        default_cluster = names.first().copied().unwrap_or(""),
        authenticated = token.is_some(),
        "gameops executor plugin is serving"
    );
    let resolver = Arc::new(
        Resolver::new(options.config.clone()).map_err(|e| SidecarError::Config(e.to_string()))?,
    );
    let routes = crate::http::health_routes().merge(plugin_routes(
        Plugin::new(clusters),
        resolver,
        token.as_deref(),
    ));
    // On SIGINT/SIGTERM: no new connections, in-flight calls get up to
    // GRACE to finish (Argo's agent keeps connections alive between calls).
    let handle = axum_server::Handle::new();
    let stop = super::shutdown_signal();
    let stopper = handle.clone();
    tokio::spawn(async move {
        stop.await;
        stopper.graceful_shutdown(Some(GRACE));
    });
    let mut server = axum_server::from_tcp(listener.into_std()?)?
        .handle(handle)
        .acceptor(crate::http::FirstByteAcceptor::new(
            axum_server::accept::DefaultAcceptor::new(),
        ));
    crate::http::close_slow_connections(server.http_builder());
    server
        .serve(crate::http::slow_client_timeouts(routes).into_make_service())
        .await?;
    tracing::info!("stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn clusters_from_the_environment_are_named_after_their_variable() {
        let vars = [
            ("GAMEOPS_CLUSTER_US_EAST", "b"),
            ("HOME", "/root"),
            ("GAMEOPS_CLUSTER_EU_WEST", "a"),
            ("GAMEOPS_CLUSTERS", "not one"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()));
        assert_eq!(
            super::env_clusters(vars),
            [
                ("eu-west".to_owned(), "a".to_owned()),
                ("us-east".to_owned(), "b".to_owned())
            ]
        );
    }

    #[tokio::test]
    async fn an_environment_cluster_that_is_no_kubeconfig_is_named_with_its_variable() {
        let env = [("eu-west".to_owned(), "clusters: [1".to_owned())];
        let err = super::connect_all(&["x=/nonexistent".to_owned()], &[])
            .await
            .err()
            .map(|e| e.to_string());
        assert!(err.is_some(), "a missing kubeconfig file fails");
        let err = super::env_client(&env[0].0, &env[0].1)
            .await
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.starts_with("GAMEOPS_CLUSTER_EU_WEST: does not hold a kubeconfig"),
            "{err}"
        );
    }

    use super::*;

    #[test]
    fn cluster_specs() {
        let dir = tempfile::tempdir().unwrap();
        let kc = dir.path().join("kc");
        std::fs::write(&kc, "").unwrap();
        let kc_s = kc.display().to_string();
        let t = parse_cluster(&format!("eu={kc_s}")).unwrap();
        assert_eq!(
            (t.name.as_str(), t.kubeconfig.as_path(), t.context),
            ("eu", kc.as_path(), None)
        );
        let t = parse_cluster(&format!("eu={kc_s}:arn:aws:eks:eu-west-1:1:cluster/x")).unwrap();
        assert_eq!(t.kubeconfig, kc);
        assert_eq!(
            t.context.as_deref(),
            Some("arn:aws:eks:eu-west-1:1:cluster/x")
        );
        // A missing file is the whole value (reported when it is read).
        let t = parse_cluster("eu=/nope:ctx").unwrap();
        assert_eq!(t.kubeconfig, PathBuf::from("/nope:ctx"));
        for bad in ["eu", "=x", "eu=", &format!("eu={kc_s}:")] {
            assert!(
                matches!(parse_cluster(bad), Err(SidecarError::ClusterSpec(_))),
                "{bad}"
            );
        }
        assert!(matches!(
            parse_cluster("EU=x"),
            Err(SidecarError::ClusterName(_))
        ));
    }

    #[tokio::test]
    async fn waits_for_the_token() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        let writer = {
            let path = path.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(200)).await;
                std::fs::write(path, "s3cret\n").unwrap();
            })
        };
        let token = read_token(&path, Duration::from_secs(10)).await.unwrap();
        assert_eq!(token, "s3cret");
        writer.await.unwrap();
        let missing = dir.path().join("missing");
        let e = read_token(&missing, Duration::ZERO)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("--token-file") && e.contains("--insecure-no-auth"),
            "{e}"
        );
    }
}
