//! One module per subcommand: the only place that wires the parts together.
//! `main.rs` parses the command line (clap) and calls one of these.

pub mod demo;
pub mod fleet;
pub mod history;
pub mod lint;
pub mod plugin;
pub mod resolve;
pub mod run;
pub mod serve;
pub mod status;
pub mod target;
pub mod unlock;

/// Resolves on SIGINT (Ctrl-C) or SIGTERM (`kill`, a pod stopping): the one
/// shutdown signal of every long-running subcommand.
///
/// The handlers are installed when this is called, not when the future is
/// first polled: a signal that arrives in between (say, right after
/// `gameops demo --keep` printed its report) is caught rather than ending
/// the process with the default action.
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let interrupt = signal(SignalKind::interrupt());
        let terminate = signal(SignalKind::terminate());
        async move {
            match (interrupt, terminate) {
                (Ok(mut int), Ok(mut term)) => {
                    tokio::select! {
                        _ = int.recv() => {}
                        _ = term.recv() => {}
                    }
                }
                (Ok(mut int), Err(_)) => {
                    int.recv().await;
                }
                (Err(_), Ok(mut term)) => {
                    term.recv().await;
                }
                (Err(_), Err(_)) => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// How logs are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Human,
    /// JSON lines, for clusters.
    Json,
}

/// `--log-format`: the subcommands that log take it.
#[derive(clap::Args, Debug, Clone, Copy, Default)]
pub struct LogArgs {
    /// Log format: human-readable, or JSON lines for clusters.
    #[arg(long, value_enum, default_value_t = LogFormat::Human)]
    pub log_format: LogFormat,
}

/// Logs to stderr: human-readable (coloured only on a terminal), or JSON
/// lines for clusters (`json`); warnings only when `quiet`. `RUST_LOG`
/// overrides the level.
pub fn init_logging(json: bool, quiet: bool) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(if quiet { "warn" } else { "info" })
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// `--config FILE` or `GAMEOPS_CONFIG_YAML`: the subcommands that read
/// gameops.yaml (registries, environments, protected tags, the Flux
/// endpoint's auth) take these.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ConfigArgs {
    /// gameops.yaml: registries (with auth), environments (repository and
    /// tag filter), protected tags, the Flux endpoint's auth.
    #[arg(long, env = "GAMEOPS_CONFIG", value_name = "FILE")]
    pub config: Option<std::path::PathBuf>,
    /// gameops.yaml's text itself, instead of --config (the executor
    /// plugin's sidecar gets it this way under Argo).
    #[arg(
        long,
        env = "GAMEOPS_CONFIG_YAML",
        hide_env_values = true,
        value_name = "YAML",
        conflicts_with = "config"
    )]
    pub config_yaml: Option<String>,
}

impl ConfigArgs {
    /// Reads `--config FILE`, or the configuration's text itself
    /// (`GAMEOPS_CONFIG_YAML`); an empty configuration without either.
    pub fn load(&self) -> Result<std::sync::Arc<crate::registry::config::Config>, String> {
        use crate::registry::config::Config;
        let config = match (&self.config, &self.config_yaml) {
            (Some(p), _) => Config::load(p),
            (None, Some(text)) => Config::parse(text, std::path::Path::new("$GAMEOPS_CONFIG_YAML")),
            (None, None) => return Ok(std::sync::Arc::default()),
        };
        config.map(std::sync::Arc::new).map_err(|e| e.to_string())
    }
}

/// Why a token file gave no token.
#[derive(Debug, thiserror::Error)]
pub enum TokenProblem {
    /// No such file (after waiting).
    #[error("does not exist{0}")]
    Missing(String),
    /// The file holds only whitespace (after waiting).
    #[error("is empty{0}; put a random token in it")]
    Empty(String),
    /// The file exists but cannot be read.
    #[error("cannot be read: {0}")]
    Unreadable(std::io::Error),
}

/// The one token reader: the trimmed contents of `path`, waiting up to
/// `wait` for the file to appear or be written (Argo's agent may write it
/// just after its sidecars start). An unreadable file fails at once.
pub async fn read_token(
    path: &std::path::Path,
    wait: std::time::Duration,
) -> Result<String, TokenProblem> {
    let deadline = std::time::Instant::now() + wait;
    let mut waiting = false;
    loop {
        let empty = match tokio::fs::read_to_string(path).await {
            Ok(text) if !text.trim().is_empty() => return Ok(text.trim().to_owned()),
            Ok(_) => true,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
            Err(e) => return Err(TokenProblem::Unreadable(e)),
        };
        let now = std::time::Instant::now();
        if now >= deadline {
            let waited = if wait.is_zero() {
                String::new()
            } else {
                format!(" after waiting {} s", wait.as_secs())
            };
            return Err(if empty {
                TokenProblem::Empty(waited)
            } else {
                TokenProblem::Missing(waited)
            });
        }
        if !waiting {
            tracing::info!(path = %path.display(), wait_secs = wait.as_secs(), "waiting for the token file");
            waiting = true;
        }
        tokio::time::sleep((deadline - now).min(std::time::Duration::from_millis(100))).await;
    }
}
