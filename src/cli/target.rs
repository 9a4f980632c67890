//! The cluster and namespace an operator's command looks at, chosen as
//! kubectl chooses them: `--kubeconfig` (else `KUBECONFIG`, else
//! `~/.kube/config`, else the pod's ServiceAccount), `--context` (else the
//! current one) and `-n` (else the context's namespace, else `default`);
//! and the set it names.

use std::path::{Path, PathBuf};

use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client};

use crate::api::GameServerSet;

/// Where `status`, `history` and `unlock` look.
#[derive(clap::Args, Debug, Clone)]
pub struct TargetArgs {
    /// The namespace of the GameServerSet (default: the context's, else
    /// default).
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
    /// The kubeconfig (default: KUBECONFIG, else ~/.kube/config, else the
    /// pod's ServiceAccount).
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context (default: its current context).
    #[arg(long)]
    pub context: Option<String>,
}

/// The client configuration of `context` (or the current one) in the
/// kubeconfig file at `path`.
pub(super) async fn kubeconfig_file(
    path: &Path,
    context: Option<&str>,
) -> Result<kube::Config, String> {
    let kubeconfig = Kubeconfig::read_from(path)
        .map_err(|e| format!("cannot read the kubeconfig {}: {e}", path.display()))?;
    let options = KubeConfigOptions {
        context: context.map(str::to_owned),
        ..Default::default()
    };
    kube::Config::from_custom_kubeconfig(kubeconfig, &options)
        .await
        .map_err(|e| {
            format!(
                "cannot use context {} of the kubeconfig {}: {e}",
                context.unwrap_or("(current)"),
                path.display()
            )
        })
}

impl TargetArgs {
    /// A client of the chosen cluster, and the namespace to look in.
    pub async fn connect(&self) -> Result<(Client, String), String> {
        let config = match &self.kubeconfig {
            Some(path) => kubeconfig_file(path, self.context.as_deref()).await?,
            None if self.context.is_some() => kube::Config::from_kubeconfig(&KubeConfigOptions {
                context: self.context.clone(),
                ..Default::default()
            })
                .await
                .map_err(|e| format!("cannot use --context: {e}"))?,
            None => kube::Config::infer().await.map_err(|e| {
                format!(
                    "no cluster to look at: {e}; give --kubeconfig FILE (gameops serve --kubeconfig-out and gameops demo --keep write one)"
                )
            })?,
        };
        let namespace = self
            .namespace
            .clone()
            .unwrap_or_else(|| config.default_namespace.clone());
        let client = Client::try_from(config).map_err(|e| format!("cannot build a client: {e}"))?;
        Ok((client, namespace))
    }
}

/// The set `name` in `namespace`, or a sentence saying why not.
pub async fn get_set(
    client: &Client,
    namespace: &str,
    name: &str,
) -> Result<GameServerSet, String> {
    let sets: Api<GameServerSet> = Api::namespaced(client.clone(), namespace);
    sets.get(name).await.map_err(|e| match &e {
        kube::Error::Api(a) if a.code == 404 => format!(
            "GameServerSet {namespace}/{name} does not exist; list them with kubectl get gss -n {namespace}"
        ),
        _ => format!("cannot read GameServerSet {namespace}/{name}: {e}"),
    })
}
