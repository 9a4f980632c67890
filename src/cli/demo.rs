//! `gameops demo`: the main job, one command, no setup. Starts the embedded
//! API server, controller, simulator and plugin in-process (in memory:
//! nothing is written to disk, the plugin's token is handed over in-process),
//! creates seed 001's starting state (GameServerSet `minecraft`, 3 servers,
//! `OnDelete`, `minecraft-0` in a match), runs the `seamless-release`
//! WorkflowTemplate through the local runner exactly as Argo's agent would
//! call the plugin, and prints the resulting `kubectl get gs` table and the
//! pipeline's own overhead (its time not spent waiting for the simulated
//! servers to start) next to the seed's ~108 s.
//!
//! With `--keep` it writes a kubeconfig into the work directory, keeps
//! serving until Ctrl-C or SIGTERM, and removes the kubeconfig when it stops.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::watcher;

use crate::api::{GameServer, GameServerSet, GameServerState};
use crate::argo::runner::{self, Library, PluginEndpoint, RunOptions, RunResult, Runner};
use crate::cli::serve::{self, DEFAULT_CLUSTER, ServeOptions};

/// The image the seed releases.
pub const NEW_IMAGE: &str = "registry.cn-hangzhou.aliyuncs.com/acs/minecraft-demo:1.12.2-new";
/// How long the seed's recipe took, end to end.
pub const SEED_SECONDS: u64 = 108;

/// Seed 001's GameServerSet, on image `…/minecraft-demo:1.12.2`.
const SEED_GSS: &str = r#"{
  "apiVersion": "game.kruise.io/v1alpha1",
  "kind": "GameServerSet",
  "metadata": {"name": "minecraft", "namespace": "default"},
  "spec": {
    "replicas": 3,
    "updateStrategy": {"type": "OnDelete"},
    "gameServerTemplate": {"spec": {"containers": [
      {"name": "minecraft", "image": "registry.cn-hangzhou.aliyuncs.com/acs/minecraft-demo:1.12.2"}
    ]}}
  }
}"#;

/// Why the demo failed.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// The embedded server.
    #[error("the embedded server failed: {0}")]
    Serve(#[from] serve::ServeError),
    /// Talking to it.
    #[error("the embedded API failed: {0}")]
    Api(#[from] kube::Error),
    /// The templates or the run.
    #[error("{0}")]
    Run(#[from] runner::RunError),
    /// Something that did not happen in time.
    #[error("{0}")]
    Timeout(String),
    /// A local file.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// How the demo runs.
#[derive(Debug, Clone, Default)]
pub struct DemoOptions {
    /// WorkflowTemplates from this directory instead of the built-in ones.
    pub templates: Option<PathBuf>,
    /// Where the kubeconfig goes when the server keeps serving (`keep`);
    /// without `keep` nothing is written anywhere.
    pub workdir: PathBuf,
    /// Print the runner's live view.
    pub live: bool,
    /// Keep serving afterwards, with a kubeconfig in `workdir`.
    pub keep: bool,
}

/// What the demo did.
#[derive(Debug)]
pub struct Demo {
    /// The run.
    pub result: RunResult,
    /// How much of the run went by while servers were starting (simulated
    /// start-up: the time no pipeline could save).
    pub starting: Duration,
    /// `kubectl get gs` afterwards.
    pub table: String,
    /// The kubeconfig reaching the embedded API (only with `keep`).
    pub kubeconfig: Option<Kubeconfig>,
    /// The embedded server, still serving (dropped: stops).
    pub server: tokio::task::JoinHandle<()>,
}

/// The kubeconfig `--keep` writes, removed again when the demo stops.
#[derive(Debug)]
pub struct Kubeconfig {
    /// The file.
    pub path: PathBuf,
    /// The work directory, if the demo created it (removed too when empty).
    created_dir: Option<PathBuf>,
}

impl Kubeconfig {
    /// Removes the file (and the directory the demo made for it, if empty):
    /// a stopped demo leaves nothing behind. Best effort.
    pub fn remove(&self) {
        if let Err(e) = std::fs::remove_file(&self.path)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(path = %self.path.display(), error = %e, "cannot remove the demo's kubeconfig");
        }
        if let Some(dir) = &self.created_dir {
            // Fails, harmlessly, when someone put something else there.
            let _ = std::fs::remove_dir(dir);
        }
    }
}

/// Measures how long at least one server was starting: the union of the
/// intervals in which some server was being created, updated or restarted.
/// Fed from a watch of the namespace's GameServers while the pipeline runs.
#[derive(Debug, Default)]
pub struct StartupClock {
    starting: BTreeSet<String>,
    since: Option<Instant>,
    total: Duration,
}

impl StartupClock {
    /// Server `name` is (or is no longer) starting, as seen at `now`.
    pub fn observe(&mut self, name: &str, starting: bool, now: Instant) {
        let was_idle = self.starting.is_empty();
        if starting {
            self.starting.insert(name.to_owned());
        } else {
            self.starting.remove(name);
        }
        match (was_idle, self.starting.is_empty()) {
            (true, false) => self.since = Some(now),
            (false, true) => {
                if let Some(since) = self.since.take() {
                    self.total += now.saturating_duration_since(since);
                }
            }
            _ => {}
        }
    }

    /// The time spent with at least one server starting, up to `now`.
    pub fn total(&self, now: Instant) -> Duration {
        self.total
            + self
                .since
                .map_or(Duration::ZERO, |since| now.saturating_duration_since(since))
    }
}

/// Whether `gs` is on its way to Ready: no state yet, `Creating`,
/// `Updating`, or `NotReady` (a container starting or restarting), and
/// not being deleted.
fn is_starting(gs: &GameServer) -> bool {
    if gs.metadata.deletion_timestamp.is_some() {
        return false;
    }
    let state = gs.status.as_ref().and_then(|s| s.current_state.as_deref());
    match state.filter(|s| !s.is_empty()) {
        None => true,
        Some(s) => [
            GameServerState::Creating,
            GameServerState::Updating,
            GameServerState::NotReady,
        ]
        .iter()
        .any(|k| k.as_str() == s),
    }
}

/// Watches `namespace`'s GameServers into `clock` until aborted; resolves
/// `listed` once the first list is in, so nothing that follows is missed.
async fn watch_startups(
    client: kube::Client,
    namespace: &str,
    clock: Arc<Mutex<StartupClock>>,
    listed: tokio::sync::oneshot::Sender<()>,
) {
    let api: Api<GameServer> = Api::namespaced(client, namespace);
    let mut listed = Some(listed);
    let mut events = std::pin::pin!(watcher(api, watcher::Config::default()));
    while let Some(event) = events.next().await {
        let now = Instant::now();
        let seen = match event {
            Ok(watcher::Event::Apply(gs) | watcher::Event::InitApply(gs)) => {
                Some((gs.metadata.name.clone(), is_starting(&gs)))
            }
            Ok(watcher::Event::Delete(gs)) => Some((gs.metadata.name.clone(), false)),
            Ok(watcher::Event::InitDone) => {
                if let Some(tx) = listed.take() {
                    let _ = tx.send(());
                }
                None
            }
            Ok(watcher::Event::Init) => None,
            Err(e) => {
                tracing::debug!(error = %e, "demo: watching GameServers failed; retrying");
                tokio::time::sleep(Duration::from_millis(100)).await;
                None
            }
        };
        if let Some((Some(name), starting)) = seen
            && let Ok(mut clock) = clock.lock()
        {
            clock.observe(&name, starting, now);
        }
    }
}

async fn wait_for<F, Fut>(what: &str, limit: Duration, mut check: F) -> Result<(), DemoError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<bool, DemoError>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if check().await? {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(DemoError::Timeout(format!(
                "{what} did not happen within {}s",
                limit.as_secs()
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `kubectl get gs` as kubectl prints it, from the API server's Table.
pub async fn gs_table(client: &kube::Client, namespace: &str) -> Result<String, DemoError> {
    let request = http::Request::get(format!(
        "/apis/game.kruise.io/v1alpha1/namespaces/{namespace}/gameservers"
    ))
    .header(
        "Accept",
        "application/json;as=Table;v=v1;g=meta.k8s.io,application/json",
    )
    .body(Vec::new())
    .map_err(|e| DemoError::Timeout(e.to_string()))?;
    let table: serde_json::Value = client.request(request).await?;
    let columns: Vec<String> = table["columnDefinitions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| c["name"].as_str().unwrap_or("").to_uppercase())
        .collect();
    let shown: Vec<usize> = (0..columns.len())
        .filter(|i| columns[*i] != "AGE")
        .collect();
    let mut rows: Vec<Vec<String>> = vec![shown.iter().map(|i| columns[*i].clone()).collect()];
    for row in table["rows"].as_array().into_iter().flatten() {
        let cells = row["cells"].as_array().cloned().unwrap_or_default();
        rows.push(
            shown
                .iter()
                .map(|i| match cells.get(*i) {
                    Some(serde_json::Value::String(s)) => s.clone(),
                    Some(v) => v.to_string(),
                    None => String::new(),
                })
                .collect(),
        );
    }
    let widths: Vec<usize> = (0..shown.len())
        .map(|c| rows.iter().map(|r| r[c].len()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in rows {
        let line: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(c, cell)| format!("{cell:<width$}", width = widths[c]))
            .collect();
        out.push_str(line.join("   ").trim_end());
        out.push('\n');
    }
    Ok(out)
}

/// Seed 001's starting state: the set, its 3 servers Ready, `minecraft-0`
/// in a match.
async fn seed(client: &kube::Client, options: &DemoOptions) -> Result<(), DemoError> {
    let sets: Api<GameServerSet> = Api::namespaced(client.clone(), "default");
    let gss: GameServerSet = serde_json::from_str(SEED_GSS)
        .map_err(|e| DemoError::Timeout(format!("the seed GameServerSet: {e}")))?;
    sets.create(&PostParams::default(), &gss).await?;
    let servers: Api<GameServer> = Api::namespaced(client.clone(), "default");
    say(
        options,
        "OpenKruiseGame's seamless-release example: GameServerSet minecraft, 3 servers of 1.12.2 starting…",
    );
    wait_for("3 Ready servers", Duration::from_secs(60), || async {
        let list = servers.list(&ListParams::default()).await?;
        Ok(list
            .items
            .iter()
            .filter(|g| g.status.as_ref().and_then(|s| s.current_state.as_deref()) == Some("Ready"))
            .count()
            >= 3)
    })
    .await?;
    servers
        .patch(
            "minecraft-0",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"opsState": "Allocated"}})),
        )
        .await?;
    say(
        options,
        "OpenKruiseGame's seamless-release example: minecraft-0 is in a match (opsState Allocated)",
    );

    Ok(())
}

/// Runs `release`, measuring how much of the run servers spent starting
/// (a watch of the namespace's GameServers feeds a [`StartupClock`]).
async fn timed_run(
    client: &kube::Client,
    runner: Runner,
    release: crate::argo::workflow::Document,
) -> Result<(RunResult, Duration), DemoError> {
    let clock = Arc::new(Mutex::new(StartupClock::default()));
    let (listed, listed_rx) = tokio::sync::oneshot::channel();
    let watch = tokio::spawn(watch_startups(
        client.clone(),
        "default",
        clock.clone(),
        listed,
    ));
    if tokio::time::timeout(Duration::from_secs(10), listed_rx)
        .await
        .is_err()
    {
        watch.abort();
        return Err(DemoError::Timeout(
            "the list of GameServers did not arrive within 10s".into(),
        ));
    }
    let result = runner.run(release).await;
    let ended = Instant::now();
    watch.abort();
    let result = result?;
    let starting = clock
        .lock()
        .map(|c| c.total(ended))
        .unwrap_or_default()
        .min(result.duration);
    Ok((result, starting))
}

/// Runs the demo; the embedded server keeps serving until the returned
/// handle is aborted.
pub async fn run(options: &DemoOptions) -> Result<Demo, DemoError> {
    let library = match &options.templates {
        Some(dir) => Library::load_dir(dir)?,
        None => Library::builtin()?,
    };
    let release = library.get("seamless-release").ok_or_else(|| {
        runner::RunError::Invalid("the templates have no seamless-release WorkflowTemplate".into())
    })?;
    // In memory: only `--keep` writes anything (the kubeconfig to look around with).
    let kubeconfig = if options.keep {
        let created_dir = (!options.workdir.exists()).then(|| options.workdir.clone());
        std::fs::create_dir_all(&options.workdir)?;
        Some(Kubeconfig {
            path: options.workdir.join("kubeconfig"),
            created_dir,
        })
    } else {
        None
    };
    let loopback = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    let serve_options = ServeOptions {
        api_listen: loopback,
        listen: loopback,
        data_dir: options.workdir.join("data"),
        in_memory: true,
        kubeconfig_out: kubeconfig.as_ref().map(|k| k.path.clone()),
        clusters: vec![DEFAULT_CLUSTER.to_owned()],
        write_plugin_token: false,
        ..ServeOptions::default()
    };
    let running = serve::start(&serve_options).await?;
    let client = running.client(DEFAULT_CLUSTER).await?;
    let service = running.service_addr;
    // Handed over in-process: a token file left by any earlier run is never read.
    let token = running.plugin_token().to_owned();
    let server = tokio::spawn(async move {
        if let Err(e) = running.serve().await {
            tracing::error!(error = %e, "the embedded server stopped");
        }
    });

    seed(&client, options).await?;

    let runner = Runner::new(
        library,
        RunOptions {
            plugin: PluginEndpoint {
                url: format!("http://{service}"),
                token,
            },
            approve: true,
            // The seed's recipe keeps the surge, and its end table shows
            // the retired servers still there.
            parameters: vec![
                ("image".into(), NEW_IMAGE.into()),
                ("keepSurge".into(), "true".into()),
            ],
            namespace: "default".into(),
            live: options.live,
        },
    );
    let (result, starting) = timed_run(&client, runner, Arc::unwrap_or_clone(release)).await?;
    let table = gs_table(&client, "default").await?;
    Ok(Demo {
        result,
        starting,
        table,
        kubeconfig,
        server,
    })
}

fn say(options: &DemoOptions, line: &str) {
    if options.live {
        eprintln!("{line}");
    }
}

/// The demo's closing lines: the table and the timing; on success the
/// pipeline's own overhead (the run minus the time servers spent starting,
/// which no pipeline can save) beside the seed's; with `kubeconfig` (the
/// server keeps serving), how to look around.
pub fn report(demo: &Demo, kubeconfig: Option<&Path>) -> String {
    let mut out = format!(
        "{}\n$ kubectl get gs\n{}\n{}\n",
        runner::summary(&demo.result),
        demo.table,
        closing_line(&demo.result.phase, demo.result.duration, demo.starting),
    );
    if let Some(k) = kubeconfig {
        out.push_str(&format!(
            "look around: KUBECONFIG={} kubectl get gs\n",
            k.display()
        ));
    }
    out
}

/// `seamless-release PHASE in T s ...`: a comparison with the seed only
/// when the release succeeded, and then of like with like: our overhead
/// (`total` minus `starting`, the simulated start-up waits) beside the
/// seed's ~108 s.
pub fn closing_line(phase: &str, total: Duration, starting: Duration) -> String {
    let secs = total.as_secs_f64();
    let waiting = starting.min(total);
    let overhead = total.saturating_sub(waiting).as_secs_f64();
    let waited = waiting.as_secs_f64();
    if phase != "Succeeded" {
        return format!(
            "seamless-release {phase} in {secs:.1} s ({waited:.1} s of it waiting for servers to start)"
        );
    }
    format!(
        "seamless-release {phase} in {secs:.1} s: {waited:.1} s waiting for the simulated servers to start, {overhead:.1} s of pipeline overhead (OpenKruiseGame's seamless-release example by hand: four pods, ~{SEED_SECONDS} s: {:.0}x faster)",
        SEED_SECONDS as f64 / overhead.max(0.1),
    )
}

/// `gameops demo`: runs the demo, prints its report and, with `keep`, keeps
/// serving until Ctrl-C or SIGTERM. `Err` unless the release Succeeded.
pub async fn main(options: &DemoOptions) -> Result<(), String> {
    let demo = run(options).await.map_err(|e| e.to_string())?;
    let shown = demo
        .kubeconfig
        .as_ref()
        .map(|k| std::fs::canonicalize(&k.path).unwrap_or(k.path.clone()));
    // Armed before the report: a SIGTERM sent as soon as it shows is caught.
    let stop = super::shutdown_signal();
    print!("{}", report(&demo, shown.as_deref()));
    if options.keep {
        use std::io::Write;
        let _ = std::io::stdout().flush();
        eprintln!("serving until Ctrl-C (or SIGTERM)");
        stop.await;
    }
    demo.server.abort();
    if let Some(k) = &demo.kubeconfig {
        k.remove();
    }
    if demo.result.phase == "Succeeded" {
        Ok(())
    } else {
        Err(format!(
            "the release {}: {}",
            demo.result.phase, demo.result.message
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    #[test]
    fn startup_clock_counts_overlapping_startups_once() {
        let t0 = Instant::now();
        let at = |s: f64| t0 + secs(s);
        let mut clock = StartupClock::default();
        clock.observe("a", false, at(0.0));
        clock.observe("a", true, at(1.0));
        clock.observe("b", true, at(1.5));
        clock.observe("a", true, at(1.7)); // a repeated event changes nothing
        clock.observe("a", false, at(3.0));
        assert_eq!(clock.total(at(3.5)), secs(2.5), "b still starting");
        clock.observe("b", false, at(4.0));
        clock.observe("c", true, at(10.0));
        clock.observe("c", false, at(11.0));
        assert_eq!(clock.total(at(20.0)), secs(4.0));
        // A server that disappears stops counting.
        clock.observe("d", true, at(20.0));
        assert_eq!(clock.total(at(21.0)), secs(5.0));
    }

    #[test]
    fn the_closing_line_compares_overhead_and_only_on_success() {
        let ok = closing_line("Succeeded", secs(4.0), secs(3.0));
        assert!(ok.contains("1.0 s of pipeline overhead"), "{ok}");
        assert!(ok.contains("3.0 s waiting"), "{ok}");
        assert!(ok.contains("~108 s: 108x faster"), "{ok}");
        let failed = closing_line("Failed", secs(40.0), secs(1.0));
        assert!(!failed.contains("faster"), "{failed}");
        assert!(!failed.contains("108"), "{failed}");
        assert!(failed.starts_with("seamless-release Failed in 40.0 s"));
        // Start-up longer than the run (clock skew) never makes overhead negative.
        let odd = closing_line("Succeeded", secs(1.0), secs(2.0));
        assert!(odd.contains("0.0 s of pipeline overhead"), "{odd}");
    }
}
