//! The `gameops` command line: parses arguments and calls the library.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use gameops::cli::serve::{self, ServeOptions};
use gameops::registry::Resolver;
use gameops::registry::config::Config;
use gameops::registry::filter::Filter;
use std::sync::Arc;

#[derive(Parser)]
#[command(
    name = "gameops",
    version,
    about = "Seamless releases of session-based game servers"
)]
struct Cli {
    /// Log format: human-readable, or JSON lines for clusters.
    #[arg(long, value_enum, default_value_t = LogFormat::Human, global = true)]
    log_format: LogFormat,
    /// gameops.yaml: registries (with auth), environments (repository and
    /// tag filter), protected tags, the Flux endpoint's auth.
    #[arg(long, global = true, env = "GAMEOPS_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Human,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the embedded Kubernetes-compatible API server (and the service port).
    Serve(Box<ServeArgs>),
    /// Print the GameServerSet and GameServer CRDs as YAML.
    Crds,
    /// Run the Argo executor plugin as a sidecar (no embedded API server);
    /// `gameops plugin build` packages it.
    Plugin(Box<PluginArgs>),
    /// Print the tag an environment should run (or a repository's newest
    /// tag under an ad hoc filter), with its digest and image reference.
    Resolve(Box<ResolveArgs>),
    /// Run a Workflow or WorkflowTemplate locally, as Argo would: plugin
    /// steps go to the executor plugin over HTTP.
    Run(Box<RunArgs>),
    /// The main job: an embedded fleet, seed 001's starting state, and the
    /// seamless-release pipeline run against it, with the resulting table.
    Demo(DemoArgs),
    /// Check WorkflowTemplates offline: every plugin step names a known op
    /// with valid arguments, and every {{...}} reference resolves.
    Lint {
        /// The directory (and its examples/).
        #[arg(default_value = "workflow-templates")]
        dir: PathBuf,
    },
}

/// `gameops run`.
#[derive(clap::Args)]
struct RunArgs {
    /// A Workflow/WorkflowTemplate file, or the name of a WorkflowTemplate
    /// in --templates.
    target: String,
    /// A workflow parameter (repeatable).
    #[arg(short = 'p', long = "parameter", value_name = "KEY=VALUE")]
    parameters: Vec<String>,
    /// The WorkflowTemplates that templateRef and workflowTemplateRef may name.
    #[arg(long, default_value = "workflow-templates")]
    templates: PathBuf,
    /// Approve every suspend step without asking.
    #[arg(long)]
    approve: bool,
    /// Another plugin to call (http://HOST:PORT), instead of one in-process.
    #[arg(long, requires = "plugin_token_file")]
    plugin: Option<String>,
    /// The token that plugin expects (with --plugin).
    #[arg(long)]
    plugin_token_file: Option<PathBuf>,
    /// In-process plugin: a named target cluster NAME=KUBECONFIG[:CONTEXT]
    /// (repeatable); without any, the current kubeconfig.
    #[arg(long = "cluster", value_name = "NAME=KUBECONFIG[:CONTEXT]")]
    clusters: Vec<String>,
    /// The namespace the workflow runs in (the ops' default namespace).
    #[arg(long, default_value = "default")]
    namespace: String,
}

/// `gameops demo`.
#[derive(clap::Args)]
struct DemoArgs {
    /// Keep serving afterwards, so kubectl can look around (Ctrl-C stops).
    #[arg(long)]
    keep: bool,
    /// WorkflowTemplates from this directory instead of the built-in ones.
    #[arg(long)]
    templates: Option<PathBuf>,
    /// Where the kubeconfig goes.
    #[arg(long, default_value = ".gameops-demo")]
    workdir: PathBuf,
}

#[derive(Clone, Copy, ValueEnum)]
enum Output {
    Text,
    Json,
}

/// `gameops resolve`.
#[derive(clap::Args)]
struct ResolveArgs {
    /// A configured environment (gameops.yaml).
    #[arg(
        long = "env",
        conflicts_with = "repository",
        required_unless_present = "repository"
    )]
    env: Option<String>,
    /// Or a repository, e.g. registry.example.com/game/server.
    #[arg(long)]
    repository: Option<String>,
    /// Use plain HTTP for the repository's registry.
    #[arg(long, requires = "repository")]
    insecure: bool,
    /// Unanchored regex the tag must match (Flux includeTag).
    #[arg(long, requires = "repository")]
    include_tag: Option<String>,
    /// Unanchored regex the tag must not match (Flux excludeTag).
    #[arg(long, requires = "repository")]
    exclude_tag: Option<String>,
    /// Semver constraint, e.g. ">=1.0.0 <2.0.0" (Flux semver).
    #[arg(long, requires = "repository")]
    semver: Option<String>,
    /// Regex selecting tags, with groups for --extract (ImagePolicy pattern).
    #[arg(long, requires = "repository")]
    pattern: Option<String>,
    /// What to sort by, from the pattern's groups, e.g. '$version'.
    #[arg(long, requires = "pattern")]
    extract: Option<String>,
    /// Order: semver, alphabetical or numerical.
    #[arg(long, requires = "repository")]
    order_by: Option<String>,
    /// Direction of --order-by: asc or desc (default desc: newest first).
    #[arg(long, requires = "order_by")]
    direction: Option<String>,
    /// How many tags to print (default 1).
    #[arg(long, default_value_t = 1)]
    limit: usize,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Output::Text)]
    output: Output,
}

#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
struct PluginArgs {
    #[command(subcommand)]
    command: Option<PluginCommand>,
    #[command(flatten)]
    sidecar: SidecarArgs,
}

#[derive(Subcommand)]
enum PluginCommand {
    /// Write DIR/<name>-executor-plugin-configmap.yaml and DIR/README.md from
    /// DIR/plugin.yaml, exactly as `argo executor-plugin build DIR` does.
    Build {
        /// The plugin directory (holding plugin.yaml).
        #[arg(default_value = "plugin")]
        dir: PathBuf,
    },
}

/// `gameops plugin`: the sidecar Argo's agent calls.
#[derive(clap::Args)]
struct SidecarArgs {
    /// Address to serve POST /api/v1/template.execute, /healthz and /readyz on.
    #[arg(long, default_value = "127.0.0.1:4355")]
    listen: SocketAddr,
    /// A named target cluster (repeatable; the first is the default):
    /// NAME=KUBECONFIG[:CONTEXT]. Without any: in-cluster config or
    /// kubeconfig, named "in-cluster" or "default".
    #[arg(long = "cluster", value_name = "NAME=KUBECONFIG[:CONTEXT]")]
    clusters: Vec<String>,
    /// File holding the bearer token every call must carry (Argo's agent writes it).
    #[arg(long, default_value = gameops::cli::plugin::DEFAULT_TOKEN_FILE)]
    token_file: PathBuf,
    /// Start even when no token can be read, and then serve WITHOUT authentication.
    #[arg(long)]
    insecure_no_auth: bool,
    /// Seconds to wait for the token file to appear.
    #[arg(long, default_value_t = 60, hide = true)]
    token_wait_secs: u64,
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Address of the embedded API server.
    #[arg(long, default_value = "127.0.0.1:6443")]
    api_listen: SocketAddr,
    /// Address of the service port (health; later the plugin, allocator, Flux endpoint, metrics).
    #[arg(long, default_value = "127.0.0.1:4355")]
    listen: SocketAddr,
    /// Directory of the durable stores (one folder per cluster).
    #[arg(long, default_value = "./.gameops")]
    data_dir: PathBuf,
    /// Keep everything in memory (nothing survives a restart).
    #[arg(long)]
    in_memory: bool,
    /// Write a kubeconfig whose contexts reach the served clusters.
    #[arg(long)]
    kubeconfig_out: Option<PathBuf>,
    /// Serve a named cluster (repeatable, e.g. one per region); the first is the default context.
    #[arg(long = "cluster", value_name = "NAME")]
    clusters: Vec<String>,
    /// File with the bearer token every API request must carry (required off loopback).
    #[arg(long)]
    api_token_file: Option<PathBuf>,
    /// Do not run the fleet controller (GameServerSets then create no GameServers).
    #[arg(long)]
    no_controller: bool,
    #[command(flatten)]
    simulation: SimulationArgs,
}

/// The simulated fleet of the embedded clusters.
#[derive(clap::Args)]
struct SimulationArgs {
    /// Do not simulate servers (their status is then left to whoever writes it).
    #[arg(long)]
    no_simulator: bool,
    /// Milliseconds a server takes to start.
    #[arg(long, default_value_t = 2000)]
    sim_startup_ms: u64,
    /// Up to this many extra milliseconds of start-up, different per server.
    #[arg(long, default_value_t = 1000)]
    sim_jitter_ms: u64,
    /// Servers whose image matches this regular expression crash (and restart with backoff).
    #[arg(long, value_name = "REGEX")]
    sim_crash_image: Option<String>,
    /// Seconds a match started by the allocator lasts.
    #[arg(long, default_value_t = 300)]
    sim_match_secs: u64,
    /// Players per server when the set gives no parameters.maxPlayers.
    #[arg(long, default_value_t = 10)]
    sim_max_players: i32,
}

impl SimulationArgs {
    fn config(&self) -> Result<Option<gameops::fleet::simulator::SimulatorConfig>, String> {
        if self.no_simulator {
            return Ok(None);
        }
        let crash_image = self
            .sim_crash_image
            .as_deref()
            .map(regex::Regex::new)
            .transpose()
            .map_err(|e| format!("--sim-crash-image is not a valid regular expression: {e}"))?;
        Ok(Some(gameops::fleet::simulator::SimulatorConfig {
            startup_delay: Duration::from_millis(self.sim_startup_ms),
            startup_jitter: Duration::from_millis(self.sim_jitter_ms),
            crash_image,
            match_duration: Duration::from_secs(self.sim_match_secs),
            default_max_players: self.sim_max_players,
            ..Default::default()
        }))
    }
}

fn init_logging(format: LogFormat, quiet: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(if quiet { "warn" } else { "info" })
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Reads `--config` (an empty configuration without one).
fn load_config(path: Option<&PathBuf>) -> Result<Arc<Config>, String> {
    match path {
        Some(p) => Config::load(p).map(Arc::new).map_err(|e| e.to_string()),
        None => Ok(Arc::default()),
    }
}

async fn resolve(config: Arc<Config>, a: ResolveArgs) -> Result<(), String> {
    let mut config = Config::clone(&config);
    let (what, repository, filter) = match (&a.env, &a.repository) {
        (Some(env), _) => {
            let e = config
                .environments
                .get(env)
                .ok_or_else(|| {
                    format!(
                        "environment {env:?} is not in the config; known: {} (pass --config gameops.yaml)",
                        if config.environments.is_empty() { "none".to_owned() } else { config.environment_names().join(", ") }
                    )
                })?;
            (env.clone(), e.repository.clone(), e.filter.clone())
        }
        (None, Some(repository)) => {
            let mut order = serde_json::Map::new();
            if let Some(by) = &a.order_by {
                order.insert("by".into(), by.as_str().into());
            }
            if let Some(d) = &a.direction {
                order.insert("direction".into(), d.as_str().into());
            }
            let mut f = serde_json::Map::new();
            for (k, v) in [
                ("includeTag", &a.include_tag),
                ("excludeTag", &a.exclude_tag),
                ("semver", &a.semver),
                ("pattern", &a.pattern),
                ("extract", &a.extract),
            ] {
                if let Some(v) = v {
                    f.insert(k.into(), v.as_str().into());
                }
            }
            if !order.is_empty() {
                f.insert("order".into(), order.into());
            }
            let filter: Filter = serde_json::from_value(f.into())
                .map_err(|e| format!("--order-by/--direction: {e}"))?;
            if a.insecure {
                let host = gameops::registry::config::registry_host(repository).to_owned();
                let mut registry = config.registry(&host);
                registry.insecure = true;
                config.registries.insert(host, registry);
            }
            (repository.clone(), repository.clone(), filter)
        }
        (None, None) => return Err("give --env NAME or --repository REPOSITORY".into()),
    };
    // --limit may ask for more than the filter's own limit keeps.
    let mut filter = filter;
    filter.limit = Some(filter.limit.unwrap_or(100).max(a.limit));
    let compiled = filter
        .compile()
        .map_err(|e| format!("the filter of {what}: {e}"))?;
    let resolver = Resolver::new(Arc::new(config)).map_err(|e| e.to_string())?;
    let found = resolver
        .resolve(&repository, &compiled, a.limit)
        .await
        .map_err(|e| format!("{what}: {e}"))?;
    let shown = found;
    match a.output {
        Output::Json => {
            let list: Vec<serde_json::Value> = shown
                .iter()
                .map(|r| {
                    serde_json::json!({
                        "tag": r.tag, "digest": r.digest, "image": r.image,
                        "repository": repository, "environment": a.env,
                    })
                })
                .collect();
            let value = if a.limit == 1 {
                list.into_iter().next().unwrap_or_default()
            } else {
                list.into()
            };
            println!("{value:#}");
        }
        Output::Text => {
            for r in &shown {
                println!("{}\t{}\t{}", r.tag, r.digest, r.image);
            }
        }
    }
    Ok(())
}

async fn run_workflow(config: Arc<Config>, a: RunArgs) -> Result<(), String> {
    use gameops::argo::runner::{self, Library, PluginEndpoint, RunOptions, Runner};
    let library = Library::load_dir(&a.templates).map_err(|e| e.to_string())?;
    let path = PathBuf::from(&a.target);
    let doc = if path.exists() {
        runner::load_file(&path).map_err(|e| e.to_string())?
    } else {
        let found = library.get(&a.target).ok_or_else(|| {
            format!(
                "{} is neither a file nor a WorkflowTemplate in {} (it has: {})",
                a.target,
                a.templates.display(),
                library.names().join(", ")
            )
        })?;
        Arc::unwrap_or_clone(found)
    };
    let mut parameters = Vec::new();
    for p in &a.parameters {
        let (k, v) = p.split_once('=').ok_or_else(|| {
            format!("-p {p}: write KEY=VALUE, e.g. -p image=registry.example.com/game:1.2")
        })?;
        parameters.push((k.to_owned(), v.to_owned()));
    }
    // The plugin: another one, or one in-process over the given clusters.
    let (plugin, _serving) = match (&a.plugin, &a.plugin_token_file) {
        (Some(url), Some(file)) => {
            let token = std::fs::read_to_string(file)
                .map_err(|e| format!("cannot read --plugin-token-file {}: {e}", file.display()))?;
            (
                PluginEndpoint {
                    url: url.clone(),
                    token: token.trim().to_owned(),
                },
                None,
            )
        }
        _ => {
            let clusters = gameops::cli::plugin::connect(&a.clusters)
                .await
                .map_err(|e| e.to_string())?;
            let resolver = Arc::new(Resolver::new(config).map_err(|e| e.to_string())?);
            let plugin = Arc::new(
                gameops::argo::plugin::Plugin::new(clusters).with_resolver(resolver.clone()),
            );
            let token = uuid::Uuid::new_v4().to_string();
            let flux = Arc::new(gameops::registry::flux::FluxInputs::new(resolver));
            let router = gameops::cli::plugin::router(plugin, Some(&token), flux);
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .map_err(|e| format!("cannot start the in-process plugin: {e}"))?;
            let addr = listener
                .local_addr()
                .map_err(|e| format!("cannot start the in-process plugin: {e}"))?;
            let serving = tokio::spawn(async move {
                let _ = axum::serve(listener, router).await;
            });
            (
                PluginEndpoint {
                    url: format!("http://{addr}"),
                    token,
                },
                Some(serving),
            )
        }
    };
    let runner = Runner::new(
        library,
        RunOptions {
            plugin,
            approve: a.approve,
            parameters,
            namespace: a.namespace,
            live: true,
        },
    );
    let result = runner.run(doc).await.map_err(|e| e.to_string())?;
    print!("{}", runner::summary(&result));
    if result.phase == "Succeeded" {
        Ok(())
    } else {
        Err(format!(
            "{} {}: {}",
            result.name, result.phase, result.message
        ))
    }
}

async fn demo(a: DemoArgs) -> Result<(), String> {
    let options = gameops::cli::demo::DemoOptions {
        templates: a.templates,
        workdir: a.workdir.clone(),
        live: true,
    };
    let demo = gameops::cli::demo::run(&options)
        .await
        .map_err(|e| e.to_string())?;
    let kubeconfig = std::fs::canonicalize(&demo.kubeconfig).unwrap_or(demo.kubeconfig.clone());
    print!(
        "{}",
        gameops::cli::demo::report(&demo, a.keep.then_some(kubeconfig.as_path()))
    );
    if a.keep {
        eprintln!("serving until Ctrl-C");
        let _ = tokio::signal::ctrl_c().await;
    }
    demo.server.abort();
    if demo.result.phase == "Succeeded" {
        Ok(())
    } else {
        Err(format!(
            "the release {}: {}",
            demo.result.phase, demo.result.message
        ))
    }
}

async fn run(cli: Cli) -> Result<(), String> {
    let config = load_config(cli.config.as_ref())?;
    match cli.command {
        Command::Crds => {
            let yaml =
                gameops::api::crds_yaml().map_err(|e| format!("cannot render the CRDs: {e}"))?;
            print!("{yaml}");
            Ok(())
        }
        Command::Resolve(args) => resolve(config, *args).await,
        Command::Run(args) => run_workflow(config, *args).await,
        Command::Demo(args) => demo(args).await,
        Command::Lint { dir } => {
            let findings = gameops::argo::lint::lint_dir(&dir).map_err(|e| e.to_string())?;
            for f in &findings {
                println!("{f}");
            }
            if findings.is_empty() {
                println!("{}: every template is well-formed", dir.display());
                Ok(())
            } else {
                Err(format!("{} problems in {}", findings.len(), dir.display()))
            }
        }
        Command::Plugin(args) => match args.command {
            Some(PluginCommand::Build { dir }) => {
                let built = gameops::argo::packaging::build(&dir).map_err(|e| e.to_string())?;
                println!("{} created", built.configmap.display());
                println!("{} created", built.readme.display());
                Ok(())
            }
            None => {
                let a = args.sidecar;
                let options = gameops::cli::plugin::SidecarOptions {
                    listen: a.listen,
                    clusters: a.clusters,
                    token_file: a.token_file,
                    insecure_no_auth: a.insecure_no_auth,
                    token_wait: Duration::from_secs(a.token_wait_secs),
                    config,
                };
                gameops::cli::plugin::run(&options)
                    .await
                    .map_err(|e| e.to_string())
            }
        },
        Command::Serve(args) => {
            let options = ServeOptions {
                api_listen: args.api_listen,
                listen: args.listen,
                data_dir: args.data_dir,
                in_memory: args.in_memory,
                kubeconfig_out: args.kubeconfig_out,
                clusters: args.clusters,
                api_token_file: args.api_token_file,
                controller: !args.no_controller,
                simulator: args.simulation.config()?,
                config,
            };
            let running = serve::start(&options).await.map_err(|e| e.to_string())?;
            running.serve().await.map_err(|e| e.to_string())
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    // The demo's own output tells the story; its server's logs stay quiet.
    let quiet = matches!(cli.command, Command::Demo(_));
    init_logging(cli.log_format, quiet);
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("gameops: {message}");
            ExitCode::FAILURE
        }
    }
}
