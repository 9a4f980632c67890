//! `GameServerSet` (`gss`): a scalable set of `GameServer`s sharing a pod template.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::StatefulSetPersistentVolumeClaimRetentionPolicy;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, PodTemplateSpec, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::CustomResource;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

use super::GameServerSpec;

/// Desired state of a GameServerSet (OKG `GameServerSetSpec`).
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "game.kruise.io",
    version = "v1alpha1",
    kind = "GameServerSet",
    namespaced,
    status = "GameServerSetStatus",
    shortname = "gss",
    derive = "Default",
    derive = "PartialEq",
    doc = "GameServerSet is the Schema for the gameserversets API",
    scale(
        spec_replicas_path = ".spec.replicas",
        status_replicas_path = ".status.replicas",
        label_selector_path = ".status.labelSelector"
    ),
    printcolumn = r#"{"name": "DESIRED", "type": "integer", "jsonPath": ".spec.replicas", "description": "The desired number of GameServers."}"#,
    printcolumn = r#"{"name": "CURRENT", "type": "integer", "jsonPath": ".status.currentReplicas", "description": "The total number of current GameServers."}"#,
    printcolumn = r#"{"name": "UPDATED", "type": "integer", "jsonPath": ".status.updatedReplicas", "description": "The number of GameServers updated."}"#,
    printcolumn = r#"{"name": "READY", "type": "integer", "jsonPath": ".status.readyReplicas", "description": "The number of GameServers ready."}"#,
    printcolumn = r#"{"name": "Maintaining", "type": "integer", "jsonPath": ".status.maintainingReplicas", "description": "The number of GameServers Maintaining."}"#,
    printcolumn = r#"{"name": "WaitToBeDeleted", "type": "integer", "jsonPath": ".status.waitToBeDeletedReplicas", "description": "The number of GameServers WaitToBeDeleted."}"#,
    printcolumn = r#"{"name": "PreDelete", "type": "integer", "jsonPath": ".status.preDeleteReplicas", "description": "The number of GameServers PreDelete."}"#,
    printcolumn = r#"{"name": "AGE", "type": "date", "jsonPath": ".metadata.creationTimestamp", "description": "The age of GameServerSet."}"#
)]
#[serde(rename_all = "camelCase")]
pub struct GameServerSetSpec {
    /// Desired number of GameServers.
    #[schemars(range(min = 0))]
    pub replicas: i32,
    /// Template of the pods (and PVCs) backing the GameServers.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub game_server_template: Option<GameServerTemplate>,
    /// Headless service governing the pods.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub service_name: Option<String>,
    /// Ordinals (or `a-b` ranges) never to be used.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub reserve_game_server_ids: Option<Vec<IntOrString>>,
    /// Probes whose results drive GameServer fields.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub service_qualities: Option<Vec<ServiceQuality>>,
    /// How template changes roll out.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub update_strategy: Option<UpdateStrategy>,
    /// How scaling happens.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub scale_strategy: Option<ScaleStrategy>,
    /// Network plugin configuration.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub network: Option<Network>,
    /// Lifecycle hooks of the pods.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub lifecycle: Option<Lifecycle>,
    /// What happens to PVCs on deletion and scale-down.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub persistent_volume_claim_retention_policy:
        Option<StatefulSetPersistentVolumeClaimRetentionPolicy>,
    /// gameops extension (seed 000): small inline configuration of every
    /// server; a change rolls out like an image change.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub parameters: Option<Parameters>,
    /// gameops extension (Agones `allocationOverflow`): labels and
    /// annotations applied to Allocated servers beyond `replicas`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub allocation_overflow: Option<AllocationOverflow>,
}

/// gameops extension: per-server parameters (seed 000).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Parameters {
    /// Players per server: injected as the `MAX_PLAYERS` container env and
    /// mirrored into each GameServer's `status.maxPlayers`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    #[schemars(range(min = 1))]
    pub max_players: Option<i32>,
}

/// gameops extension: what marks Allocated servers beyond `replicas`
/// (Agones `allocationOverflow`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AllocationOverflow {
    /// Labels set on each overflowing server (an empty value removes the label).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub labels: Option<BTreeMap<String, String>>,
    /// Annotations set on each overflowing server.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub annotations: Option<BTreeMap<String, String>>,
}

/// A pod template plus PVC templates (OKG `GameServerTemplate`).
///
/// Its schema is, as in OKG, an object preserving unknown fields with only
/// `reclaimPolicy` and `volumeClaimTemplates` spelled out.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(schema_with = "game_server_template_schema")]
pub struct GameServerTemplate {
    /// Pod metadata and spec.
    #[serde(flatten)]
    pub pod_template: PodTemplateSpec,
    /// PVCs created for each GameServer.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub volume_claim_templates: Option<Vec<PersistentVolumeClaim>>,
    /// `Cascade` or `Delete`: whether the pod's deletion deletes the GameServer.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub reclaim_policy: Option<String>,
}

/// OKG's schema of `gameServerTemplate`; its PVC templates, unlike k8s-openapi's
/// `PersistentVolumeClaim`, do not require `metadata`.
fn game_server_template_schema(generator: &mut SchemaGenerator) -> Schema {
    let mut claims = generator.subschema_for::<Vec<PersistentVolumeClaim>>();
    if let Some(item) = claims.get_mut("items").and_then(|i| i.as_object_mut()) {
        item.remove("required");
    }
    json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true,
        "properties": {
            "reclaimPolicy": generator.subschema_for::<String>(),
            "volumeClaimTemplates": claims,
        },
    })
}

/// A probe whose result sets GameServer fields (OKG `ServiceQuality`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceQuality {
    /// The probe (exec, httpGet, tcpSocket or grpc, plus timings).
    #[serde(flatten)]
    pub probe: Probe,
    /// Name of the service quality.
    pub name: String,
    /// Container the probe runs in.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub container_name: Option<String>,
    /// Whether actions fire once (true) or on every state change.
    pub permanent: bool,
    /// Actions applied to the GameServer for given probe results.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub service_quality_action: Option<Vec<ServiceQualityAction>>,
}

/// What to set on a GameServer when a probe reports a state (OKG `ServiceQualityAction`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceQualityAction {
    /// Probe success (true) or failure (false) this action applies to.
    pub state: bool,
    /// Probe output this action applies to.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub result: Option<String>,
    /// GameServer spec fields to set.
    #[serde(flatten)]
    pub game_server_spec: GameServerSpec,
    /// Annotations to set on the GameServer.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub annotations: Option<BTreeMap<String, String>>,
    /// Labels to set on the GameServer.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub labels: Option<BTreeMap<String, String>>,
}

/// Update strategy of a GameServerSet.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpdateStrategy {
    /// `RollingUpdate` (default) or `OnDelete` (OKG); `Recreate` (Agones) and
    /// `NoDisruption` (seed 000) are gameops extensions.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub r#type: Option<String>,
    /// Parameters of `RollingUpdate` (and the surge/unavailability of `NoDisruption`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub rolling_update: Option<RollingUpdateStrategy>,
    /// gameops extension (`NoDisruption`): seconds a draining server may keep
    /// its players before it is terminated anyway (default 3600).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    #[schemars(range(min = 0))]
    pub drain_timeout_seconds: Option<i64>,
}

/// Parameters of a rolling update (OKG `RollingUpdateStatefulSetStrategy`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RollingUpdateStrategy {
    /// Ordinals below this are not updated.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub partition: Option<i32>,
    /// Maximum GameServers unavailable during the update (number or percentage; default 1).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub max_unavailable: Option<IntOrString>,
    /// `ReCreate`, `InPlaceIfPossible` or `InPlaceOnly`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub pod_update_policy: Option<String>,
    /// Whether the update is paused.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub paused: Option<bool>,
    /// Parameters of in-place updates.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub in_place_update_strategy: Option<InPlaceUpdateStrategy>,
    /// Seconds a new pod must be ready to count as available.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub min_ready_seconds: Option<i32>,
    /// gameops extension (Agones): GameServers created above `replicas`
    /// during an update (number, or percentage of replicas rounded up; default 0).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub max_surge: Option<IntOrString>,
}

/// Parameters of in-place updates.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InPlaceUpdateStrategy {
    /// Seconds between marking a pod not-ready and updating it.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub grace_period_seconds: Option<i32>,
}

/// Scale strategy of a GameServerSet.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScaleStrategy {
    /// Maximum GameServers unavailable while scaling (number or percentage).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub max_unavailable: Option<IntOrString>,
    /// `General` (default) or `ReserveIds`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub scale_down_strategy_type: Option<String>,
}

/// Network plugin configuration.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Network {
    /// Network plugin name.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub network_type: Option<String>,
    /// Plugin parameters.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub network_conf: Option<Vec<NetworkConfParam>>,
}

/// One network plugin parameter.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NetworkConfParam {
    /// Parameter name.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub name: Option<String>,
    /// Parameter value.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub value: Option<String>,
}

/// Pod lifecycle hooks (Kruise `Lifecycle`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Lifecycle {
    /// Hook run before a pod is deleted.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub pre_delete: Option<LifecycleHook>,
    /// Hook run before a pod is updated in place.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub in_place_update: Option<LifecycleHook>,
    /// Hook run before a pod becomes normal.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub pre_normal: Option<LifecycleHook>,
}

/// One lifecycle hook: the labels/finalizers that hold the pod in its phase.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LifecycleHook {
    /// Labels whose presence holds the hook.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub labels_handler: Option<BTreeMap<String, String>>,
    /// Finalizers whose presence holds the hook.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub finalizers_handler: Option<Vec<String>>,
    /// Whether to mark the pod not-ready during the hook.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub mark_pod_not_ready: Option<bool>,
}

/// Observed state of a GameServerSet (OKG `GameServerSetStatus`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = require_replica_counts)]
pub struct GameServerSetStatus {
    /// Generation last processed by the controller.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub observed_generation: Option<i64>,
    /// Number of GameServers.
    #[serde(default)]
    pub replicas: i32,
    /// Number of ready GameServers.
    #[serde(default)]
    pub ready_replicas: i32,
    /// Number of available GameServers.
    #[serde(default)]
    pub available_replicas: i32,
    /// Number of GameServers at the current revision.
    #[serde(default)]
    pub current_replicas: i32,
    /// Number of GameServers at the update revision.
    #[serde(default)]
    pub updated_replicas: i32,
    /// Number of ready GameServers at the update revision.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub updated_ready_replicas: Option<i32>,
    /// Number of GameServers with opsState `Maintaining`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub maintaining_replicas: Option<i32>,
    /// Number of GameServers with opsState `WaitToBeDeleted`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub wait_to_be_deleted_replicas: Option<i32>,
    /// Number of GameServers in state `PreDelete`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub pre_delete_replicas: Option<i32>,
    /// Label selector of the GameServers' pods, for the scale subresource.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub label_selector: Option<String>,
}

/// Status fields OKG's schema requires (deserialisation still defaults them to 0).
const REQUIRED_STATUS_COUNTS: [&str; 5] = [
    "availableReplicas",
    "currentReplicas",
    "readyReplicas",
    "replicas",
    "updatedReplicas",
];

/// Makes the schema of [`GameServerSetStatus`] require the replica counts, as OKG's does,
/// and drops the `default: 0` that `#[serde(default)]` adds to them.
fn require_replica_counts(schema: &mut Schema) {
    if let Some(props) = schema.get_mut("properties").and_then(|p| p.as_object_mut()) {
        for name in REQUIRED_STATUS_COUNTS {
            if let Some(prop) = props.get_mut(name).and_then(|p| p.as_object_mut()) {
                prop.remove("default");
            }
        }
    }
    schema.insert("required".into(), REQUIRED_STATUS_COUNTS.into());
}

impl GameServerSet {
    /// The containers of the set's template, in order (none without a
    /// template).
    pub fn template_containers(&self) -> &[k8s_openapi::api::core::v1::Container] {
        self.spec
            .game_server_template
            .as_ref()
            .and_then(|t| t.pod_template.spec.as_ref())
            .map(|s| s.containers.as_slice())
            .unwrap_or_default()
    }

    /// The revision of the set's template and parameters: a stable hash of
    /// both (replicas alone do not roll).
    pub fn revision(&self) -> String {
        let material = serde_json::json!({
            "template": self.spec.game_server_template,
            "parameters": self.spec.parameters,
        });
        let h = super::hash::fnv1a(material.to_string().as_bytes());
        format!("{:010x}", h & 0xff_ffff_ffff)
    }
}
