//! Prometheus metrics at `/metrics` on the service port (text format):
//! servers by set, state, opsState and image (read from the controllers'
//! caches at scrape time), allocations and their failures, drain durations,
//! rollout progress, and reconcile errors and durations.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use kube::runtime::reflector::Store;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::api::{GameServer, OWNER_GSS_LABEL};

/// Labels of the per-server gauge.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServerLabels {
    cluster: String,
    namespace: String,
    gameserverset: String,
    state: String,
    ops_state: String,
    image: String,
}

/// Labels naming a cluster.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ClusterLabels {
    /// The cluster.
    pub cluster: String,
}

/// Labels of an allocation outcome.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AllocationLabels {
    /// The cluster.
    pub cluster: String,
    /// `Allocated`, `UnAllocated` (nothing matched) or `Error`.
    pub result: String,
}

/// Labels naming a GameServerSet.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SetLabels {
    /// The cluster.
    pub cluster: String,
    /// The namespace.
    pub namespace: String,
    /// The set.
    pub gameserverset: String,
}

/// Counts servers at scrape time from the controllers' GameServer caches.
#[derive(Debug, Default)]
struct Fleet {
    caches: Mutex<Vec<(String, Store<GameServer>)>>,
}

impl Collector for Fleet {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let family = Family::<ServerLabels, Gauge>::default();
        let caches = self.caches.lock().unwrap_or_else(|e| e.into_inner());
        for (cluster, cache) in caches.iter() {
            for gs in cache.state() {
                let status = gs.status.as_ref();
                let image = gs.running_image().unwrap_or_default().to_owned();
                let labels = ServerLabels {
                    cluster: cluster.clone(),
                    namespace: gs.metadata.namespace.clone().unwrap_or_default(),
                    gameserverset: gs
                        .metadata
                        .labels
                        .as_ref()
                        .and_then(|l| l.get(OWNER_GSS_LABEL))
                        .cloned()
                        .unwrap_or_default(),
                    state: status
                        .and_then(|s| s.current_state.clone())
                        .unwrap_or_else(|| "Unknown".into()),
                    ops_state: gs.spec.ops_state.clone().unwrap_or_else(|| "None".into()),
                    image,
                };
                family.get_or_create(&labels).inc();
            }
        }
        let metric = encoder.encode_descriptor(
            "gameops_gameservers",
            "GameServers by cluster, namespace, set, state, opsState and running image",
            None,
            family.metric_type(),
        )?;
        family.encode(metric)
    }
}

/// Every metric gameops exports.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    fleet: Arc<Fleet>,
    /// Allocation requests by outcome.
    pub allocations: Family<AllocationLabels, Counter>,
    /// Seconds from a server's start of draining to its removal.
    pub drain_duration: Histogram,
    /// Updated servers / desired replicas, per set.
    pub rollout_progress: Family<SetLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    /// Reconciles that failed.
    pub reconcile_errors: Family<ClusterLabels, Counter>,
    /// Seconds per reconcile.
    pub reconcile_duration: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A registry with every metric registered.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let fleet = Arc::new(Fleet::default());
        registry.register_collector(Box::new(fleet.clone()));
        let allocations = Family::<AllocationLabels, Counter>::default();
        registry.register(
            "gameops_allocations",
            "Allocation requests by result",
            allocations.clone(),
        );
        let drain_duration = Histogram::new(exponential_buckets(1.0, 2.0, 14));
        registry.register(
            "gameops_drain_duration_seconds",
            "Time from a server starting to drain to its removal",
            drain_duration.clone(),
        );
        let rollout_progress = Family::default();
        registry.register(
            "gameops_rollout_progress_ratio",
            "Servers on the set's current revision divided by its desired replicas",
            rollout_progress.clone(),
        );
        let reconcile_errors = Family::<ClusterLabels, Counter>::default();
        registry.register(
            "gameops_reconcile_errors",
            "GameServerSet reconciles that failed",
            reconcile_errors.clone(),
        );
        let reconcile_duration = Histogram::new(exponential_buckets(0.0005, 2.0, 16));
        registry.register(
            "gameops_reconcile_duration_seconds",
            "Time per GameServerSet reconcile",
            reconcile_duration.clone(),
        );
        Self {
            registry,
            fleet,
            allocations,
            drain_duration,
            rollout_progress,
            reconcile_errors,
            reconcile_duration,
        }
    }

    /// Counts `cluster`'s servers from `cache` at every scrape.
    pub fn watch_fleet(&self, cluster: &str, cache: Store<GameServer>) {
        self.fleet
            .caches
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((cluster.to_owned(), cache));
    }

    /// The text exposition.
    pub fn render(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

async fn scrape(State(metrics): State<Arc<Metrics>>) -> Response {
    match metrics.render() {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "metrics could not be encoded",
        )
            .into_response(),
    }
}

/// `GET /metrics`.
pub fn router(metrics: Arc<Metrics>) -> Router {
    Router::new()
        .route("/metrics", get(scrape))
        .with_state(metrics)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_family_is_exported() {
        let m = Metrics::new();
        m.allocations
            .get_or_create(&AllocationLabels {
                cluster: "eu".into(),
                result: "Allocated".into(),
            })
            .inc();
        m.drain_duration.observe(3.0);
        let set = SetLabels {
            cluster: "eu".into(),
            namespace: "default".into(),
            gameserverset: "m".into(),
        };
        m.rollout_progress.get_or_create(&set).set(0.5);
        m.reconcile_errors
            .get_or_create(&ClusterLabels {
                cluster: "eu".into(),
            })
            .inc();
        m.reconcile_duration.observe(0.01);
        let text = m.render().unwrap();
        for name in [
            "gameops_gameservers",
            "gameops_allocations_total{cluster=\"eu\",result=\"Allocated\"} 1",
            "gameops_drain_duration_seconds_count 1",
            "gameops_rollout_progress_ratio",
            "gameops_reconcile_errors",
            "gameops_reconcile_duration_seconds",
        ] {
            assert!(text.contains(name), "{name} missing in\n{text}");
        }
    }
}
