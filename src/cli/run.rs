//! `gameops run`: a Workflow or WorkflowTemplate run locally as Argo would,
//! its plugin steps sent to an executor plugin over HTTP (another one, or
//! one started in-process over the given clusters).

use std::path::PathBuf;
use std::sync::Arc;

use crate::argo::runner::{self, Library, PluginEndpoint, RunOptions, Runner};
use crate::registry::Resolver;
use crate::registry::config::Config;

/// `gameops run`.
#[derive(clap::Args)]
pub struct RunArgs {
    /// A Workflow/WorkflowTemplate file, or the name of a WorkflowTemplate
    /// in --templates.
    pub target: String,
    /// A workflow parameter (repeatable).
    #[arg(short = 'p', long = "parameter", value_name = "KEY=VALUE")]
    pub parameters: Vec<String>,
    /// The WorkflowTemplates that templateRef and workflowTemplateRef may name.
    #[arg(long, default_value = "workflow-templates")]
    pub templates: PathBuf,
    /// Approve every suspend step without asking.
    #[arg(long)]
    pub approve: bool,
    /// Another plugin to call (http://HOST:PORT), instead of one in-process.
    #[arg(long, requires = "plugin_token_file")]
    pub plugin: Option<String>,
    /// The token that plugin expects (with --plugin).
    #[arg(long)]
    pub plugin_token_file: Option<PathBuf>,
    /// In-process plugin: a named target cluster NAME=KUBECONFIG[:CONTEXT]
    /// (repeatable); without any, the current kubeconfig.
    #[arg(long = "cluster", value_name = "NAME=KUBECONFIG[:CONTEXT]")]
    pub clusters: Vec<String>,
    /// The namespace the workflow runs in (the ops' default namespace).
    #[arg(long, default_value = "default")]
    pub namespace: String,
}

/// The plugin the steps go to: another one (`--plugin`), or one started
/// in-process over the given clusters, served until the handle is dropped.
async fn plugin_endpoint(
    config: Arc<Config>,
    a: &RunArgs,
) -> Result<(PluginEndpoint, Option<tokio::task::JoinHandle<()>>), String> {
    if let (Some(url), Some(file)) = (&a.plugin, &a.plugin_token_file) {
        let token = super::read_token(file, std::time::Duration::ZERO)
            .await
            .map_err(|e| format!("--plugin-token-file {} {e}", file.display()))?;
        let url = url.clone();
        return Ok((PluginEndpoint { url, token }, None));
    }
    let clusters = super::plugin::connect(&a.clusters)
        .await
        .map_err(|e| e.to_string())?;
    let resolver = Arc::new(Resolver::new(config).map_err(|e| e.to_string())?);
    let token = uuid::Uuid::new_v4().to_string();
    let plugin = crate::argo::plugin::Plugin::new(clusters);
    let router = super::plugin::plugin_routes(plugin, resolver, Some(&token));
    let cannot = |e: std::io::Error| format!("cannot start the in-process plugin: {e}");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(cannot)?;
    let addr = listener.local_addr().map_err(cannot)?;
    let serving = tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    let url = format!("http://{addr}");
    Ok((PluginEndpoint { url, token }, Some(serving)))
}

/// The document to run: a file, or a WorkflowTemplate of the library.
fn document(library: &Library, a: &RunArgs) -> Result<crate::argo::workflow::Document, String> {
    let path = PathBuf::from(&a.target);
    if path.exists() {
        return runner::load_file(&path).map_err(|e| e.to_string());
    }
    let found = library.get(&a.target).ok_or_else(|| {
        format!(
            "{} is neither a file nor a WorkflowTemplate in {} (it has: {})",
            a.target,
            a.templates.display(),
            library.names().join(", ")
        )
    })?;
    Ok(Arc::unwrap_or_clone(found))
}

/// `-p KEY=VALUE` pairs.
fn parameters(a: &RunArgs) -> Result<Vec<(String, String)>, String> {
    a.parameters
        .iter()
        .map(|p| {
            p.split_once('=')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .ok_or_else(|| {
                    format!("-p {p}: write KEY=VALUE, e.g. -p image=registry.example.com/game:1.2")
                })
        })
        .collect()
}

/// Runs the workflow; `Err` unless it Succeeded.
pub async fn run(config: Arc<Config>, a: RunArgs) -> Result<(), String> {
    let library = Library::load_dir(&a.templates).map_err(|e| e.to_string())?;
    let doc = document(&library, &a)?;
    let parameters = parameters(&a)?;
    let (plugin, _serving) = plugin_endpoint(config, &a).await?;
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
