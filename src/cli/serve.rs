//! `gameops serve`: the embedded API server (one store per named cluster)
//! and the service port, with the kubeconfig that reaches them.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;

use std::sync::Arc;

use crate::cluster::apiserver::{self, Cluster};
use crate::cluster::kubeconfig;
use crate::cluster::store::StoreError;
use crate::informer::ServerCache;
use crate::metrics::Metrics;

/// The cluster name used when no `--cluster` is given.
pub const DEFAULT_CLUSTER: &str = "gameops";

/// What `gameops serve` was asked to do.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Where the API server listens.
    pub api_listen: SocketAddr,
    /// Where the service port listens.
    pub listen: SocketAddr,
    /// Where durable stores live (one folder per cluster).
    pub data_dir: PathBuf,
    /// Keep everything in memory.
    pub in_memory: bool,
    /// Where to write the kubeconfig, if anywhere.
    pub kubeconfig_out: Option<PathBuf>,
    /// The clusters to serve (the first is the default context).
    pub clusters: Vec<String>,
    /// A file holding the bearer token every API request must carry.
    pub api_token_file: Option<PathBuf>,
    /// Run the fleet controller on every embedded cluster.
    pub controller: bool,
    /// Simulate the fleet (server start-up, crashes, matches) on every
    /// embedded cluster; `None` leaves GameServer status to others.
    pub simulator: Option<crate::fleet::simulator::SimulatorConfig>,
    /// gameops.yaml: registries and environments (`resolveTag`,
    /// `promoteTag`, the Flux endpoint).
    pub config: Arc<crate::registry::config::Config>,
    /// How long an Event lives after its last write (kube-apiserver's
    /// `--event-ttl`).
    pub event_ttl: Duration,
    /// Write the executor plugin's token to `DATA_DIR/plugin-token` for
    /// callers in other processes; off, it is only handed over in-process
    /// ([`Running::plugin_token`]) and nothing is written.
    pub write_plugin_token: bool,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            api_listen: SocketAddr::from(([127, 0, 0, 1], 6443)),
            listen: SocketAddr::from(([127, 0, 0, 1], 4355)),
            data_dir: PathBuf::from("./.gameops"),
            in_memory: false,
            kubeconfig_out: None,
            clusters: Vec::new(),
            api_token_file: None,
            controller: true,
            simulator: Some(crate::fleet::simulator::SimulatorConfig::default()),
            config: Arc::default(),
            write_plugin_token: true,
            event_ttl: apiserver::event_ttl::DEFAULT_TTL,
        }
    }
}

/// Why the server could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// A non-loopback address without a token.
    #[error(
        "--api-listen {0} is not a loopback address, so the API would be open to the network: pass --api-token-file FILE (a file holding a bearer token) or listen on 127.0.0.1"
    )]
    Unprotected(SocketAddr),
    /// A non-loopback service port without a token.
    #[error(
        "--listen {0} is not a loopback address, so the allocator would be open to the network: pass --api-token-file FILE (the allocator then requires the same bearer token) or listen on 127.0.0.1"
    )]
    UnprotectedService(SocketAddr),
    /// The token file is unreadable or empty.
    #[error("--api-token-file {path} {reason}")]
    Token {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// A cluster name that cannot be a URL segment and context name.
    #[error(
        "--cluster {0:?} is not a valid name: use lower-case letters, digits and '-' (e.g. eu-west)"
    )]
    ClusterName(String),
    /// The same cluster named twice.
    #[error("--cluster {0} is given twice: each cluster needs its own name")]
    DuplicateCluster(String),
    /// A store did not open.
    #[error("cannot open the store of cluster {cluster}: {source}")]
    Store {
        /// The cluster.
        cluster: String,
        /// Why.
        source: StoreError,
    },
    /// Binding a port failed.
    #[error(
        "cannot listen on {addr}: {source} (is another gameops already running? pick another port)"
    )]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The registry client could not be set up.
    #[error("{0}")]
    Registry(#[from] crate::registry::RegistryError),
    /// The TLS certificate could not be made or read.
    #[error("{0}")]
    Tls(#[from] crate::cluster::tls::TlsError),
    /// Writing the kubeconfig, the plugin token or the data directory failed.
    #[error("cannot write {path}: {source}")]
    Kubeconfig {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A client of the embedded API could not be built.
    #[error("cannot build a client of the embedded API server: {0}")]
    Client(String),
    /// The HTTP server failed.
    #[error("the server stopped: {0}")]
    Io(#[from] std::io::Error),
}

fn check_names(names: &[String]) -> Result<Vec<String>, ServeError> {
    let names = if names.is_empty() {
        vec![DEFAULT_CLUSTER.to_owned()]
    } else {
        names.to_vec()
    };
    for (i, n) in names.iter().enumerate() {
        if crate::api::names::dns_label_error(n).is_some() {
            return Err(ServeError::ClusterName(n.clone()));
        }
        if names[..i].contains(n) {
            return Err(ServeError::DuplicateCluster(n.clone()));
        }
    }
    Ok(names)
}

/// A running server: its clusters and bound addresses.
pub struct Running {
    /// The served clusters.
    pub clusters: Vec<Cluster>,
    /// The API server's address.
    pub api_addr: SocketAddr,
    /// The service port's address.
    pub service_addr: SocketAddr,
    api: TcpListener,
    service: TcpListener,
    token: Option<String>,
    tls: Option<crate::cluster::tls::TlsMaterial>,
    controller: bool,
    simulator: Option<crate::fleet::simulator::SimulatorConfig>,
    event_ttl: Duration,
    resolver: Arc<crate::registry::Resolver>,
    plugin_token: String,
    /// The metrics served at `/metrics`.
    pub metrics: Arc<Metrics>,
}

/// Opens the stores, binds both ports and writes the kubeconfig.
pub async fn start(options: &ServeOptions) -> Result<Running, ServeError> {
    let token =
        match options.api_token_file.as_deref() {
            Some(path) => Some(super::read_token(path, Duration::ZERO).await.map_err(|e| {
                ServeError::Token {
                    path: path.display().to_string(),
                    reason: e.to_string(),
                }
            })?),
            None => None,
        };
    check_protected(options, token.is_some())?;
    let names = check_names(&options.clusters)?;
    let data_dir = private_data_dir(options)?;
    let mut clusters = Vec::new();
    for name in &names {
        let cluster = Cluster::open(name, data_dir).map_err(|source| ServeError::Store {
            cluster: name.clone(),
            source,
        })?;
        tracing::info!(
            cluster = %name,
            objects_at = cluster.store.current_rv(),
            storage = %data_dir.map_or("memory".to_owned(), |d| d.join(name).display().to_string()),
            "cluster ready"
        );
        clusters.push(cluster);
    }
    let bind = |addr: SocketAddr| async move {
        TcpListener::bind(addr)
            .await
            .map_err(|source| ServeError::Bind { addr, source })
    };
    let api = bind(options.api_listen).await?;
    let service = bind(options.listen).await?;
    let api_addr = api.local_addr()?;
    let service_addr = service.local_addr()?;
    // A token travels only over TLS (kubectl would not even send it otherwise).
    let tls = match token {
        Some(_) => Some(crate::cluster::tls::load_or_create(
            data_dir.map(|d| d.join("tls")).as_deref(),
            api_addr,
        )?),
        None => None,
    };
    if let Some(path) = &options.kubeconfig_out {
        let credentials = kubeconfig::Credentials {
            token: token.as_deref(),
            ca_pem: tls.as_ref().map(|t| t.ca_pem.as_str()),
        };
        let text = kubeconfig::render(api_addr, &names, credentials);
        kubeconfig::write(path, &text).map_err(|source| ServeError::Kubeconfig {
            path: path.display().to_string(),
            source,
        })?;
        tracing::info!(path = %path.display(), "wrote kubeconfig");
    }
    let plugin_token = new_plugin_token();
    if options.write_plugin_token {
        write_plugin_token(&options.data_dir, &plugin_token)?;
    }
    Ok(Running {
        clusters,
        api_addr,
        service_addr,
        api,
        service,
        token,
        tls,
        controller: options.controller,
        simulator: options.simulator.clone(),
        event_ttl: options.event_ttl,
        plugin_token,
        resolver: Arc::new(crate::registry::Resolver::new(options.config.clone())?),
        metrics: Arc::new(Metrics::new()),
    })
}

/// Off loopback, both ports need the token.
fn check_protected(options: &ServeOptions, has_token: bool) -> Result<(), ServeError> {
    if !options.api_listen.ip().is_loopback() && !has_token {
        return Err(ServeError::Unprotected(options.api_listen));
    }
    if !options.listen.ip().is_loopback() && !has_token {
        return Err(ServeError::UnprotectedService(options.listen));
    }
    Ok(())
}

/// A fresh random token for the executor plugin, new on every start.
fn new_plugin_token() -> String {
    use rand::Rng;
    rand::rng()
        .sample_iter(rand::distr::Alphanumeric)
        .take(40)
        .map(char::from)
        .collect()
}

/// The data directory, created private to its owner (0700), or `None`
/// for an in-memory store.
fn private_data_dir(options: &ServeOptions) -> Result<Option<&Path>, ServeError> {
    if options.in_memory {
        return Ok(None);
    }
    let dir = options.data_dir.as_path();
    crate::cluster::private_dir(dir).map_err(|source| ServeError::Kubeconfig {
        path: dir.display().to_string(),
        source,
    })?;
    Ok(Some(dir))
}

/// Writes the plugin's token to `DATA_DIR/plugin-token` (mode 0600) for
/// local callers in other processes (`gameops run`, tests) to send, as
/// Argo's agent sends the one it writes. Written before anything serves,
/// so a token file left by an earlier run is never read by mistake.
fn write_plugin_token(data_dir: &Path, token: &str) -> Result<(), ServeError> {
    let path = data_dir.join(PLUGIN_TOKEN_FILE);
    let written =
        crate::cluster::private_dir(data_dir).and_then(|()| kubeconfig::write(&path, token));
    written.map_err(|source| ServeError::Kubeconfig {
        path: path.display().to_string(),
        source,
    })?;
    tracing::info!(path = %path.display(), "executor plugin token written");
    Ok(())
}

/// The file in the data directory holding the executor plugin's token.
pub const PLUGIN_TOKEN_FILE: &str = "plugin-token";

/// The service port's router: health and metrics (`serve` adds the
/// allocator and the executor plugin).
pub fn service_router(metrics: Arc<Metrics>) -> Router {
    crate::http::health_routes().merge(crate::metrics::router(metrics))
}

impl Running {
    /// The bearer token the executor plugin on the service port requires:
    /// in-process callers (`gameops demo`) take it from here.
    pub fn plugin_token(&self) -> &str {
        &self.plugin_token
    }

    /// A kube-rs client for `cluster`, as every in-process component (the
    /// controller, the simulator, the allocator) reaches the API: over HTTP,
    /// exactly as in a real cluster.
    pub async fn client(&self, cluster: &str) -> Result<kube::Client, ServeError> {
        let credentials = kubeconfig::Credentials {
            token: self.token.as_deref(),
            ca_pem: self.tls.as_ref().map(|t| t.ca_pem.as_str()),
        };
        let config = kubeconfig::client_config(self.api_addr, cluster, credentials)
            .await
            .map_err(|e| ServeError::Client(e.to_string()))?;
        kube::Client::try_from(config).map_err(|e| ServeError::Client(e.to_string()))
    }

    /// Starts each cluster's garbage collector, controller and simulator on
    /// `tasks`; returns one GameServer informer per cluster, shared by the
    /// ops and the allocator (the embedded server grants every namespace).
    async fn start_fleet(
        &self,
        tasks: &mut tokio::task::JoinSet<()>,
    ) -> Result<Vec<(String, kube::Client, Arc<ServerCache>)>, ServeError> {
        let mut caches = Vec::new();
        for cluster in &self.clusters {
            let client = self.client(&cluster.name).await?;
            let servers = Arc::new(ServerCache::cluster_wide(client.clone()));
            caches.push((cluster.name.clone(), client, servers));
            tasks.spawn(apiserver::gc::run(cluster.clone()));
            tasks.spawn(apiserver::event_ttl::run(cluster.clone(), self.event_ttl));
            if self.controller {
                let client = self.client(&cluster.name).await?;
                tasks.spawn(crate::fleet::controller::run(
                    client,
                    cluster.name.clone(),
                    self.metrics.clone(),
                ));
            }
            if let Some(config) = &self.simulator {
                let client = self.client(&cluster.name).await?;
                tasks.spawn(crate::fleet::simulator::run(client, config.clone()));
            }
        }
        Ok(caches)
    }

    /// Serves until SIGINT/SIGTERM, then closes the stores.
    pub async fn serve(self) -> Result<(), ServeError> {
        let mut tasks = tokio::task::JoinSet::new();
        let caches = self.start_fleet(&mut tasks).await?;
        let api_router = apiserver::router(&self.clusters, self.token.as_deref());
        tracing::info!(
            api = %self.api_addr,
            service = %self.service_addr,
            tls = self.tls.is_some(),
            "gameops is serving"
        );
        let api = async {
            match &self.tls {
                Some(tls) => {
                    let config = axum_server::tls_rustls::RustlsConfig::from_pem(
                        tls.cert_pem.clone().into_bytes(),
                        tls.key_pem.clone().into_bytes(),
                    )
                    .await?;
                    // TCP_NODELAY: small watch events must not wait for delayed ACKs.
                    let acceptor = crate::http::FirstByteAcceptor::new(
                        axum_server::tls_rustls::RustlsAcceptor::new(config)
                            .acceptor(axum_server::accept::NoDelayAcceptor::new()),
                    );
                    let mut server =
                        axum_server::from_tcp(self.api.into_std()?)?.acceptor(acceptor);
                    crate::http::close_slow_connections(server.http_builder());
                    server.serve(api_router.into_make_service()).await
                }
                None => {
                    // TCP_NODELAY: small watch events must not wait for delayed ACKs.
                    let mut server = axum_server::from_tcp(self.api.into_std()?)?.acceptor(
                        crate::http::FirstByteAcceptor::new(
                            axum_server::accept::NoDelayAcceptor::new(),
                        ),
                    );
                    crate::http::close_slow_connections(server.http_builder());
                    server.serve(api_router.into_make_service()).await
                }
            }
        };
        let plugin = super::plugin::plugin_routes(
            crate::argo::plugin::Plugin::with_caches(caches.clone()),
            self.resolver.clone(),
            Some(&self.plugin_token),
        );
        let allocator =
            crate::fleet::allocator::Allocator::with_caches(caches, self.metrics.clone());
        // The allocator hands out servers: with an API token it requires it
        // too (the plugin and the Flux endpoint have their own).
        let allocator = crate::http::require_credential(
            allocator.router(),
            self.token.clone().map(crate::http::Credential::Bearer),
            || {
                axum::response::IntoResponse::into_response((
                    axum::http::StatusCode::UNAUTHORIZED,
                    axum::Json(serde_json::json!({
                        "state": "UnAllocated",
                        "message": "this allocator requires the bearer token of --api-token-file (Authorization: Bearer TOKEN)"
                    })),
                ))
            },
        );
        let service_routes = crate::http::slow_client_timeouts(
            service_router(self.metrics.clone())
                .merge(allocator)
                .merge(plugin),
        );
        let mut service = axum_server::from_tcp(self.service.into_std()?)?.acceptor(
            crate::http::FirstByteAcceptor::new(axum_server::accept::DefaultAcceptor::new()),
        );
        crate::http::close_slow_connections(service.http_builder());
        let service = service.serve(service_routes.into_make_service());
        tokio::select! {
            r = api => r?,
            r = service => r?,
            _ = super::shutdown_signal() => tracing::info!("shutting down"),
        }
        // Open watches would hold a graceful shutdown forever: close the
        // stores (finishing queued writes) and stop.
        let clusters = self.clusters;
        let closing =
            tokio::task::spawn_blocking(move || clusters.iter().for_each(|c| c.store.close()));
        let _ = tokio::time::timeout(Duration::from_secs(10), closing).await;
        Ok(())
    }
}
