//! `gameops fleet`: the embedded fleet's controller and simulator attached
//! to any cluster, as the stand-in for OpenKruiseGame's controller and
//! kubelet (a kind cluster for rehearsals, or the real control plane of the
//! conformance tests, which has neither). The cluster needs the
//! GameServerSet and GameServer CRDs (`gameops crds`, or OKG's own).
//!
//! Clusters are given as the plugin takes them (`--cluster
//! NAME=KUBECONFIG[:CONTEXT]`, or the kubeconfig / in-cluster default).
//! Runs until SIGINT or SIGTERM.

use std::sync::Arc;

use crate::fleet::simulator::SimulatorConfig;
use crate::metrics::Metrics;

/// What `gameops fleet` was asked to do.
#[derive(Debug, Clone, Default)]
pub struct FleetOptions {
    /// `NAME=KUBECONFIG[:CONTEXT]` targets; empty: the in-cluster or
    /// kubeconfig default.
    pub clusters: Vec<String>,
    /// Run the GameServerSet controller (OKG's stand-in).
    pub controller: bool,
    /// Simulate the servers (kubelet's and the players' stand-in).
    pub simulator: Option<SimulatorConfig>,
}

/// Connects to every cluster, then runs the controller and the simulator
/// on each until the shutdown signal. A cluster that cannot be reached at
/// start is an error naming it; later outages are retried with back-off.
pub async fn run(options: &FleetOptions) -> Result<(), String> {
    let stop = super::shutdown_signal();
    if !options.controller && options.simulator.is_none() {
        return Err(
            "nothing to run: --no-controller and --no-simulator together leave the fleet empty; drop one of them"
                .into(),
        );
    }
    let clusters = super::plugin::connect(&options.clusters)
        .await
        .map_err(|e| e.to_string())?;
    let metrics = Arc::new(Metrics::new());
    let mut tasks = tokio::task::JoinSet::new();
    for (name, client) in clusters {
        if options.controller {
            tasks.spawn(crate::fleet::controller::run(
                client.clone(),
                name.clone(),
                metrics.clone(),
            ));
        }
        if let Some(config) = &options.simulator {
            tasks.spawn(crate::fleet::simulator::run(client, config.clone()));
        }
        tracing::info!(
            cluster = %name,
            controller = options.controller,
            simulator = options.simulator.is_some(),
            "fleet attached"
        );
    }
    stop.await;
    tasks.shutdown().await;
    Ok(())
}
