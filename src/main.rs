//! The `gameops` command line: parses arguments and calls the library.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use gameops::cli::serve::{self, ServeOptions};
use gameops::cli::{LogArgs, LogFormat};

#[derive(Parser)]
#[command(
    name = "gameops",
    version,
    about = "Seamless releases of session-based game servers"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
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
    Resolve(Box<gameops::cli::resolve::ResolveArgs>),
    /// Run a Workflow or WorkflowTemplate locally, as Argo would: plugin
    /// steps go to the executor plugin over HTTP.
    Run(Box<gameops::cli::run::RunArgs>),
    /// The main job: an embedded fleet, the starting state of OpenKruiseGame's seamless-release example, and the
    /// seamless-release pipeline run against it, with the resulting table.
    Demo(DemoArgs),
    /// Where a GameServerSet stands: servers by image, state and opsState,
    /// matches, draining servers, the release lease, the last release.
    Status(Box<gameops::cli::status::StatusArgs>),
    /// The releases and rollbacks of a GameServerSet, newest first.
    History(Box<gameops::cli::history::HistoryArgs>),
    /// Free a GameServerSet's release lease after saying who holds it;
    /// refuses a workflow that still runs unless --force.
    Unlock(Box<gameops::cli::unlock::UnlockArgs>),
    /// Attach the fleet controller and simulator (stand-ins for
    /// OpenKruiseGame and kubelet) to existing clusters, e.g. a kind cluster.
    Fleet(FleetArgs),
    /// Check WorkflowTemplates offline: every plugin step names a known op
    /// with valid arguments, and every {{...}} reference resolves.
    Lint {
        /// The directory (and its examples/).
        #[arg(default_value = "workflow-templates")]
        dir: PathBuf,
    },
    /// Print a shell completion script, e.g.
    /// `source <(gameops completions bash)`.
    Completions {
        /// The shell.
        shell: CompletionShell,
    },
}

/// The shells `gameops completions` writes scripts for.
#[derive(Clone, Copy, ValueEnum)]
enum CompletionShell {
    Bash,
    Zsh,
    Fish,
}

/// `gameops demo`.
#[derive(clap::Args)]
struct DemoArgs {
    /// Keep serving afterwards, so kubectl can look around (Ctrl-C or
    /// SIGTERM stops, and removes the kubeconfig).
    #[arg(long)]
    keep: bool,
    /// WorkflowTemplates from this directory instead of the built-in ones.
    #[arg(long, value_name = "DIR")]
    templates: Option<PathBuf>,
    /// Where the kubeconfig goes with --keep (without it nothing is written).
    #[arg(long, default_value = ".gameops-demo")]
    workdir: PathBuf,
    #[command(flatten)]
    log: LogArgs,
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
    /// kubeconfig, named "in-cluster" or "default". Environment variables
    /// GAMEOPS_CLUSTER_<NAME> holding a kubeconfig add clusters after these
    /// (GAMEOPS_CLUSTER_EU_WEST is cluster eu-west).
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
    #[command(flatten)]
    config: gameops::cli::ConfigArgs,
    #[command(flatten)]
    log: LogArgs,
}

/// `gameops fleet`.
#[derive(clap::Args)]
struct FleetArgs {
    /// A cluster to attach to (repeatable): NAME=KUBECONFIG[:CONTEXT].
    /// Without any: in-cluster config or kubeconfig.
    #[arg(long = "cluster", value_name = "NAME=KUBECONFIG[:CONTEXT]")]
    clusters: Vec<String>,
    /// Do not run the fleet controller (GameServerSets then create no GameServers).
    #[arg(long)]
    no_controller: bool,
    #[command(flatten)]
    simulation: SimulationArgs,
    #[command(flatten)]
    log: LogArgs,
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Address of the embedded API server.
    #[arg(long, default_value = "127.0.0.1:6443")]
    api_listen: SocketAddr,
    /// Address of the service port: the executor plugin
    /// (/api/v1/template.execute), the allocator (/v1/allocate), the Flux
    /// input provider (/flux/v1/inputs), /metrics, /healthz and /readyz.
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
    /// How long an Event lives after its last write, as kube-apiserver's
    /// --event-ttl (a Go duration: 1h, 30m, 90s).
    #[arg(long, default_value = "1h", value_parser = go_duration)]
    event_ttl: std::time::Duration,
    #[command(flatten)]
    simulation: SimulationArgs,
    #[command(flatten)]
    config: gameops::cli::ConfigArgs,
    #[command(flatten)]
    log: LogArgs,
}

/// A positive Go duration (`1h`, `30m`, `1m30s`).
fn go_duration(text: &str) -> Result<std::time::Duration, String> {
    gameops::argo::plugin::wire::parse_duration(text)
        .filter(|d| !d.is_zero())
        .ok_or_else(|| format!("{text:?} is not a positive duration (e.g. 1h, 30m, 1m30s)"))
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
    /// Servers whose image matches this regular expression crash-loop
    /// (CrashLoopBackOff, restarted with back-off; GameServer NotReady).
    #[arg(long, value_name = "REGEX")]
    sim_crash_image: Option<String>,
    /// Servers whose image matches this regular expression cannot pull it
    /// (ErrImagePull, then ImagePullBackOff; GameServer Creating).
    #[arg(long, value_name = "REGEX")]
    sim_pull_fail_image: Option<String>,
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
        let pattern = |flag: &str, value: &Option<String>| {
            value
                .as_deref()
                .map(regex::Regex::new)
                .transpose()
                .map_err(|e| format!("--{flag} is not a valid regular expression: {e}"))
        };
        let crash_image = pattern("sim-crash-image", &self.sim_crash_image)?;
        let pull_fail_image = pattern("sim-pull-fail-image", &self.sim_pull_fail_image)?;
        Ok(Some(gameops::fleet::simulator::SimulatorConfig {
            startup_delay: Duration::from_millis(self.sim_startup_ms),
            startup_jitter: Duration::from_millis(self.sim_jitter_ms),
            crash_image,
            pull_fail_image,
            match_duration: Duration::from_secs(self.sim_match_secs),
            default_max_players: self.sim_max_players,
            ..Default::default()
        }))
    }
}

impl Command {
    /// The log settings of a subcommand that logs.
    fn log(&self) -> Option<LogArgs> {
        match self {
            Self::Serve(a) => Some(a.log),
            Self::Plugin(a) => Some(a.sidecar.log),
            Self::Resolve(a) => Some(a.log),
            Self::Run(a) => Some(a.log),
            Self::Demo(a) => Some(a.log),
            Self::Fleet(a) => Some(a.log),
            _ => None,
        }
    }
}

/// Writes the completion script for `shell` to stdout.
fn print_completions(shell: CompletionShell) {
    let shell = match shell {
        CompletionShell::Bash => clap_complete::Shell::Bash,
        CompletionShell::Zsh => clap_complete::Shell::Zsh,
        CompletionShell::Fish => clap_complete::Shell::Fish,
    };
    let mut command = <Cli as clap::CommandFactory>::command();
    clap_complete::generate(shell, &mut command, "gameops", &mut std::io::stdout());
}

/// `gameops plugin`: the sidecar, or `plugin build`.
async fn plugin(args: PluginArgs) -> Result<(), String> {
    match args.command {
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
                env_clusters: gameops::cli::plugin::env_clusters(
                    std::env::vars_os()
                        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))),
                ),
                token_file: a.token_file,
                insecure_no_auth: a.insecure_no_auth,
                token_wait: Duration::from_secs(a.token_wait_secs),
                config: a.config.load()?,
            };
            gameops::cli::plugin::run(&options)
                .await
                .map_err(|e| e.to_string())
        }
    }
}

async fn run(cli: Cli) -> Result<(), String> {
    match cli.command {
        Command::Crds => {
            let yaml =
                gameops::api::crds_yaml().map_err(|e| format!("cannot render the CRDs: {e}"))?;
            print!("{yaml}");
            Ok(())
        }
        Command::Resolve(args) => gameops::cli::resolve::run(*args).await,
        Command::Run(args) => gameops::cli::run::run(*args).await,
        Command::Status(args) => gameops::cli::status::run(*args).await,
        Command::History(args) => gameops::cli::history::run(*args).await,
        Command::Unlock(args) => gameops::cli::unlock::run(*args).await,
        Command::Demo(a) => {
            let options = gameops::cli::demo::DemoOptions {
                templates: a.templates,
                workdir: a.workdir,
                live: true,
                keep: a.keep,
            };
            gameops::cli::demo::main(&options).await
        }
        Command::Fleet(args) => {
            let options = gameops::cli::fleet::FleetOptions {
                clusters: args.clusters,
                controller: !args.no_controller,
                simulator: args.simulation.config()?,
            };
            gameops::cli::fleet::run(&options).await
        }
        Command::Lint { dir } => gameops::cli::lint::run(&dir),
        Command::Completions { shell } => {
            print_completions(shell);
            Ok(())
        }
        Command::Plugin(args) => plugin(*args).await,
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
                config: args.config.load()?,
                write_plugin_token: true,
                event_ttl: args.event_ttl,
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
    let log = cli.command.log().unwrap_or_default();
    gameops::cli::init_logging(log.log_format == LogFormat::Json, quiet);
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("gameops: {message}");
            ExitCode::FAILURE
        }
    }
}
