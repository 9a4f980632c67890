//! The `gameops` command line: parses arguments and calls the library.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use gameops::serve::{self, ServeOptions};

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
    fn config(&self) -> Result<Option<gameops::simulator::SimulatorConfig>, String> {
        if self.no_simulator {
            return Ok(None);
        }
        let crash_image = self
            .sim_crash_image
            .as_deref()
            .map(regex::Regex::new)
            .transpose()
            .map_err(|e| format!("--sim-crash-image is not a valid regular expression: {e}"))?;
        Ok(Some(gameops::simulator::SimulatorConfig {
            startup_delay: Duration::from_millis(self.sim_startup_ms),
            startup_jitter: Duration::from_millis(self.sim_jitter_ms),
            crash_image,
            match_duration: Duration::from_secs(self.sim_match_secs),
            default_max_players: self.sim_max_players,
            ..Default::default()
        }))
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().init(),
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
            };
            let running = serve::start(&options).await.map_err(|e| e.to_string())?;
            running.serve().await.map_err(|e| e.to_string())
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("gameops: {message}");
            ExitCode::FAILURE
        }
    }
}
