//! `gameops run`: a Workflow or WorkflowTemplate run locally as Argo would,
//! its plugin steps sent to an executor plugin over HTTP (another one, or
//! one started in-process over the given clusters).

use std::collections::BTreeMap;
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
    /// The WorkflowTemplates that templateRef and workflowTemplateRef may
    /// name [default: ./workflow-templates when it exists, else the ones
    /// built into gameops].
    #[arg(long, value_name = "DIR")]
    pub templates: Option<PathBuf>,
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
    /// The in-process plugin's configuration (registries, environments).
    #[command(flatten)]
    pub config: super::ConfigArgs,
    /// The log format.
    #[command(flatten)]
    pub log: super::LogArgs,
}

/// The plugin the steps go to: another one (`--plugin`), or one started
/// in-process over the given clusters, served until the handle is dropped.
async fn plugin_endpoint(
    config: Arc<Config>,
    a: &RunArgs,
) -> Result<(PluginEndpoint, Option<tokio::task::JoinHandle<()>>), String> {
    if let (Some(url), Some(file)) = (&a.plugin, &a.plugin_token_file) {
        let parsed = reqwest::Url::parse(url).ok();
        if !parsed.is_some_and(|u| matches!(u.scheme(), "http" | "https") && u.has_host()) {
            return Err(format!(
                "--plugin {url} is not a URL of a plugin: write it with its scheme, e.g. --plugin http://{}",
                url.trim_start_matches("//")
            ));
        }
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

/// The folder `gameops run` reads WorkflowTemplates from without
/// `--templates`, when it exists.
const CHECKOUT_TEMPLATES: &str = "workflow-templates";

/// The WorkflowTemplates: `--templates`, else ./workflow-templates, else
/// the built-in ones (said on stderr); and where they came from.
fn library(a: &RunArgs) -> Result<(Library, String), String> {
    let checkout = PathBuf::from(CHECKOUT_TEMPLATES);
    let dir = a
        .templates
        .clone()
        .or_else(|| checkout.is_dir().then_some(checkout));
    match dir {
        Some(dir) => {
            let library = Library::load_dir(&dir)
                .map_err(|e| format!("{e}; give --templates DIR holding the WorkflowTemplates, or leave it out for the built-in ones"))?;
            Ok((library, dir.display().to_string()))
        }
        None => {
            eprintln!(
                "Using the WorkflowTemplates built into gameops (no ./{CHECKOUT_TEMPLATES} here; --templates DIR uses others)."
            );
            let library = Library::builtin().map_err(|e| e.to_string())?;
            Ok((library, "the built-in templates".to_owned()))
        }
    }
}

/// The document to run: a file, or a WorkflowTemplate of the library.
fn document(
    library: &Library,
    from: &str,
    a: &RunArgs,
) -> Result<crate::argo::workflow::Document, String> {
    let path = PathBuf::from(&a.target);
    if path.exists() {
        return runner::load_file(&path).map_err(|e| e.to_string());
    }
    let found = library.get(&a.target).ok_or_else(|| {
        format!(
            "{} is neither a file nor a WorkflowTemplate in {from} (it has: {}); give a file, one of those names, or --templates DIR holding it",
            a.target,
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

/// The workflow parameters as they will be: `-p` over the document's own,
/// over its WorkflowTemplate's.
fn effective_parameters(
    library: &Library,
    doc: &crate::argo::workflow::Document,
    given: &[(String, String)],
) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let referenced = doc
        .spec
        .workflow_template_ref
        .as_ref()
        .and_then(|r| library.get(&r.name));
    for d in referenced.iter().map(|d| &**d).chain([doc]) {
        for p in &d.spec.arguments.parameters {
            if let Some(v) = p.value.as_ref().or(p.default.as_ref()) {
                out.insert(p.name.clone(), crate::argo::workflow::value_string(v));
            }
        }
    }
    out.extend(given.iter().cloned());
    out
}

/// What Ctrl-C during a run prints: where the set was left, and the
/// commands that continue or roll back.
async fn interrupted(a: &RunArgs, parameters: &BTreeMap<String, String>) -> String {
    let Some(set) = parameters.get("gameServerSet").filter(|s| !s.is_empty()) else {
        return format!("{} was interrupted before it finished.", a.target);
    };
    let namespace = parameters
        .get("namespace")
        .filter(|n| !n.is_empty())
        .unwrap_or(&a.namespace)
        .clone();
    let client = match super::plugin::connect(&a.clusters).await {
        Ok(clusters) => {
            let wanted = parameters.get("cluster");
            clusters
                .iter()
                .find(|(name, _)| Some(name) == wanted)
                .or(clusters.first())
                .map(|(_, c)| c.clone())
        }
        Err(_) => None,
    };
    let left = match client {
        Some(client) => super::status::read(&client, &namespace, Some(set))
            .await
            .map(|s| {
                s.iter()
                    .map(|s| super::status::render(s, jiff::Timestamp::now()))
                    .collect::<String>()
            })
            .unwrap_or_else(|e| format!("(cannot read the set: {e})\n")),
        None => "(cannot reach its cluster to show it)\n".to_owned(),
    };
    // The same way of running: templates, plugin, clusters.
    let mut how = String::new();
    if let Some(dir) = &a.templates {
        how.push_str(&format!(" --templates {}", dir.display()));
    }
    if let (Some(url), Some(file)) = (&a.plugin, &a.plugin_token_file) {
        how.push_str(&format!(
            " --plugin {url} --plugin-token-file {}",
            file.display()
        ));
    }
    for c in &a.clusters {
        how.push_str(&format!(" --cluster {c}"));
    }
    let again: String = a.parameters.iter().map(|p| format!(" -p {p}")).collect();
    let cluster = parameters
        .get("cluster")
        .filter(|c| !c.is_empty())
        .map(|c| format!(" -p cluster={c}"))
        .unwrap_or_default();
    format!(
        "{target} was interrupted before it finished. GameServerSet {namespace}/{set} was left like this:\n\n{left}\n\
         Its release lease stays with the interrupted run until it lapses; to go on, free it first:\n\
         \x20 continue:  gameops unlock {set} -n {namespace} --force && gameops run {target}{again}{how}\n\
         \x20 roll back: gameops unlock {set} -n {namespace} --force && gameops run rollback -p gameServerSet={set} -p namespace={namespace}{cluster}{how}\n\
         \x20 look:      gameops status {set} -n {namespace}",
        target = a.target,
    )
}

/// Runs the workflow; `Err` unless it Succeeded.
pub async fn run(a: RunArgs) -> Result<(), String> {
    let config = a.config.load()?;
    let (library, from) = library(&a)?;
    let doc = document(&library, &from, &a)?;
    let parameters = parameters(&a)?;
    let effective = effective_parameters(&library, &doc, &parameters);
    let (plugin, _serving) = plugin_endpoint(config, &a).await?;
    let runner = Runner::new(
        library,
        RunOptions {
            plugin,
            approve: a.approve,
            parameters,
            namespace: a.namespace.clone(),
            live: true,
        },
    );
    let result = tokio::select! {
        r = runner.run(doc) => r.map_err(|e| e.to_string())?,
        () = super::shutdown_signal() => return Err(interrupted(&a, &effective).await),
    };
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
