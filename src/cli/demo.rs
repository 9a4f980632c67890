//! `gameops demo`: the main job, one command, no setup. Starts the embedded
//! API server, controller, simulator and plugin in-process (in memory),
//! creates seed 001's starting state (GameServerSet `minecraft`, 3 servers,
//! `OnDelete`, `minecraft-0` in a match), runs the `seamless-release`
//! WorkflowTemplate through the local runner exactly as Argo's agent would
//! call the plugin, and prints the resulting `kubectl get gs` table next to
//! the seed's ~108 s.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};

use crate::api::{GameServer, GameServerSet};
use crate::argo::runner::{self, Library, PluginEndpoint, RunOptions, RunResult, Runner};
use crate::cli::serve::{self, DEFAULT_CLUSTER, PLUGIN_TOKEN_FILE, ServeOptions};

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

/// The WorkflowTemplates built into the binary, so `gameops demo` needs no
/// checkout; `--templates DIR` uses a directory instead.
pub const BUILTIN_TEMPLATES: &[(&str, &str)] = &[
    (
        "seamless-release.yaml",
        include_str!("../../workflow-templates/seamless-release.yaml"),
    ),
    (
        "rollback.yaml",
        include_str!("../../workflow-templates/rollback.yaml"),
    ),
    (
        "promote.yaml",
        include_str!("../../workflow-templates/promote.yaml"),
    ),
    (
        "multi-region-release.yaml",
        include_str!("../../workflow-templates/multi-region-release.yaml"),
    ),
];

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
    /// Where to write the kubeconfig (and keep serving, with `keep`).
    pub workdir: PathBuf,
    /// Print the runner's live view.
    pub live: bool,
}

/// What the demo did.
#[derive(Debug)]
pub struct Demo {
    /// The run.
    pub result: RunResult,
    /// `kubectl get gs` afterwards.
    pub table: String,
    /// The kubeconfig reaching the embedded API.
    pub kubeconfig: PathBuf,
    /// The embedded server, still serving (dropped: stops).
    pub server: tokio::task::JoinHandle<()>,
}

/// The built-in templates as a library.
pub fn builtin_library() -> Result<Library, runner::RunError> {
    let staging = |e: std::io::Error| {
        runner::RunError::Invalid(format!("cannot stage the built-in templates: {e}"))
    };
    let dir = tempfile::tempdir().map_err(staging)?;
    for (name, text) in BUILTIN_TEMPLATES {
        std::fs::write(dir.path().join(name), text).map_err(staging)?;
    }
    Library::load_dir(dir.path())
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
        "seed 001: GameServerSet minecraft, 3 servers of 1.12.2 starting…",
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
        "seed 001: minecraft-0 is in a match (opsState Allocated)",
    );

    Ok(())
}

/// Runs the demo; the embedded server keeps serving until the returned
/// handle is aborted.
pub async fn run(options: &DemoOptions) -> Result<Demo, DemoError> {
    let library = match &options.templates {
        Some(dir) => Library::load_dir(dir)?,
        None => builtin_library()?,
    };
    let release = library.get("seamless-release").ok_or_else(|| {
        runner::RunError::Invalid("the templates have no seamless-release WorkflowTemplate".into())
    })?;
    std::fs::create_dir_all(&options.workdir)?;
    let kubeconfig = options.workdir.join("kubeconfig");
    let loopback = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    let serve_options = ServeOptions {
        api_listen: loopback,
        listen: loopback,
        data_dir: options.workdir.join("data"),
        in_memory: true,
        kubeconfig_out: Some(kubeconfig.clone()),
        clusters: vec![DEFAULT_CLUSTER.to_owned()],
        ..ServeOptions::default()
    };
    let running = serve::start(&serve_options).await?;
    let client = running.client(DEFAULT_CLUSTER).await?;
    let service = running.service_addr;
    let token_file = options.workdir.join("data").join(PLUGIN_TOKEN_FILE);
    let server = tokio::spawn(async move {
        if let Err(e) = running.serve().await {
            tracing::error!(error = %e, "the embedded server stopped");
        }
    });
    wait_for("the plugin token", Duration::from_secs(10), || async {
        Ok(token_file.exists())
    })
    .await?;
    let token = std::fs::read_to_string(&token_file)?.trim().to_owned();

    seed(&client, options).await?;

    let runner = Runner::new(
        library,
        RunOptions {
            plugin: PluginEndpoint {
                url: format!("http://{service}"),
                token,
            },
            approve: true,
            parameters: vec![("image".into(), NEW_IMAGE.into())],
            namespace: "default".into(),
            live: options.live,
        },
    );
    let result = runner.run(Arc::unwrap_or_clone(release)).await?;
    let table = gs_table(&client, "default").await?;
    Ok(Demo {
        result,
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

/// The demo's closing lines: the table and the timing next to the seed's;
/// with `kubeconfig` (the server keeps serving), how to look around.
pub fn report(demo: &Demo, kubeconfig: Option<&Path>) -> String {
    let secs = demo.result.duration.as_secs_f64();
    let mut out = format!(
        "{}\n$ kubectl get gs\n{}\nseamless-release {} in {secs:.1} s (the seed's recipe: four pods, ~{SEED_SECONDS} s: {:.0}x faster)\n",
        runner::summary(&demo.result),
        demo.table,
        demo.result.phase,
        SEED_SECONDS as f64 / secs.max(0.001),
    );
    if let Some(k) = kubeconfig {
        out.push_str(&format!(
            "look around: KUBECONFIG={} kubectl get gs\n",
            k.display()
        ));
    }
    out
}
/// `gameops demo`: runs the demo, prints its report and, with `keep`, keeps
/// serving until Ctrl-C or SIGTERM. `Err` unless the release Succeeded.
pub async fn main(options: &DemoOptions, keep: bool) -> Result<(), String> {
    let demo = run(options).await.map_err(|e| e.to_string())?;
    let kubeconfig = std::fs::canonicalize(&demo.kubeconfig).unwrap_or(demo.kubeconfig.clone());
    print!("{}", report(&demo, keep.then_some(kubeconfig.as_path())));
    if keep {
        eprintln!("serving until Ctrl-C (or SIGTERM)");
        super::shutdown_signal().await;
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
