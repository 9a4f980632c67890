//! `GameServer` (`gs`): one game server process, owned by a `GameServerSet`.

use k8s_openapi::api::core::v1::{PodStatus, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Desired state of a GameServer (OKG `GameServerSpec`).
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "game.kruise.io",
    version = "v1alpha1",
    kind = "GameServer",
    namespaced,
    status = "GameServerStatus",
    shortname = "gs",
    derive = "Default",
    derive = "PartialEq",
    doc = "GameServer is the Schema for the gameservers API",
    printcolumn = r#"{"name": "STATE", "type": "string", "jsonPath": ".status.currentState", "description": "The current state of GameServer"}"#,
    printcolumn = r#"{"name": "OPSSTATE", "type": "string", "jsonPath": ".spec.opsState", "description": "The operations state of GameServer"}"#,
    printcolumn = r#"{"name": "DP", "type": "string", "jsonPath": ".status.deletionPriority", "description": "The current deletionPriority of GameServer"}"#,
    printcolumn = r#"{"name": "UP", "type": "string", "jsonPath": ".status.updatePriority", "description": "The current updatePriority of GameServer"}"#,
    printcolumn = r#"{"name": "AGE", "type": "date", "jsonPath": ".metadata.creationTimestamp", "description": "The age of GameServer"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct GameServerSpec {
    /// Operations state; free text, known values in [`OpsState`](super::OpsState).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub ops_state: Option<String>,
    /// Update priority: higher is updated first.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub update_priority: Option<IntOrString>,
    /// Deletion priority: higher is deleted first on scale-down.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub deletion_priority: Option<IntOrString>,
    /// Whether the server's network access is cut off.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub network_disabled: Option<bool>,
    /// Per-server container overrides (image, resources).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub containers: Option<Vec<GameServerContainer>>,
}

/// A per-server override of one pod container.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GameServerContainer {
    /// Name of the container in the pod template.
    pub name: String,
    /// Image to run instead of the template's.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub image: Option<String>,
    /// Resources to use instead of the template's.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub resources: Option<ResourceRequirements>,
}

/// Observed state of a GameServer (OKG `GameServerStatus`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GameServerStatus {
    /// State the controller drives the server towards.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub desired_state: Option<String>,
    /// Current state; known values in [`GameServerState`](super::GameServerState).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub current_state: Option<String>,
    /// Network status of the server.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub network_status: Option<NetworkStatus>,
    /// Status of the backing pod.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub pod_status: Option<PodStatus>,
    /// Results of the GameServerSet's service quality probes.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub service_qualities_conditions: Option<Vec<ServiceQualityCondition>>,
    /// Effective update priority.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub update_priority: Option<IntOrString>,
    /// Effective deletion priority.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub deletion_priority: Option<IntOrString>,
    /// When `currentState` last changed.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub last_transition_time: Option<Time>,
    /// Conditions of the server.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub conditions: Option<Vec<GameServerCondition>>,
    /// gameops extension: players currently connected.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub players: Option<i32>,
    /// gameops extension: the server's capacity (`spec.parameters.maxPlayers` of its set).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub max_players: Option<i32>,
}

/// One condition of a GameServer.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GameServerCondition {
    /// Condition type.
    pub r#type: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// When the condition was last probed.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub last_probe_time: Option<Time>,
    /// When the condition last changed status.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub last_transition_time: Option<Time>,
    /// Machine-readable reason of the last transition.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub reason: Option<String>,
    /// Human-readable detail of the last transition.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub message: Option<String>,
}

/// Result of one service quality probe on one GameServer.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceQualityCondition {
    /// Name of the service quality.
    pub name: String,
    /// Probe status.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub status: Option<String>,
    /// Probe output.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub result: Option<String>,
    /// When the probe last ran.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub last_probe_time: Option<Time>,
    /// When the probe status last changed.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub last_transition_time: Option<Time>,
    /// When a service quality action was last applied.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub last_action_transition_time: Option<Time>,
}

/// Network status of a GameServer.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NetworkStatus {
    /// Network plugin type.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub network_type: Option<String>,
    /// Cluster-internal addresses.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub internal_addresses: Option<Vec<NetworkAddress>>,
    /// Externally reachable addresses.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub external_addresses: Option<Vec<NetworkAddress>>,
    /// Desired network state (`Ready`, `NotReady`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub desired_network_state: Option<String>,
    /// Current network state.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub current_network_state: Option<String>,
    /// When the network was created.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub create_time: Option<Time>,
    /// When the network state last changed.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub last_transition_time: Option<Time>,
}

/// One network address of a GameServer.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NetworkAddress {
    /// IP address.
    pub ip: String,
    /// Individual ports.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub ports: Option<Vec<NetworkPort>>,
    /// A contiguous port range.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub port_range: Option<NetworkPortRange>,
    /// Endpoint (e.g. a load balancer host name).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub end_point: Option<String>,
}

/// One named port of a network address.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NetworkPort {
    /// Port name.
    pub name: String,
    /// `TCP`, `UDP` or `SCTP`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub protocol: Option<String>,
    /// Port number or name.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub port: Option<IntOrString>,
}

/// A port range of a network address.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NetworkPortRange {
    /// `TCP`, `UDP` or `SCTP`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub protocol: Option<String>,
    /// Range such as `8000-8100`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub port_range: Option<String>,
}
