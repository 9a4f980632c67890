//! Checks the `gameops::api` types against OpenKruiseGame's own CRD schemas.
//!
//! OKG's schemas (verbatim upstream CRDs) are made strict — objects with
//! `properties` reject unknown fields — so a serialised field OKG does not know,
//! or one of the wrong type, fails validation.
#![allow(
    clippy::too_many_lines,
    reason = "a scenario or a table reads best top to bottom"
)]

mod common;

use common::schema::close_objects;

use std::collections::BTreeMap;

use gameops::api::{
    GameServer, GameServerCondition, GameServerContainer, GameServerSet, GameServerSetSpec,
    GameServerSetStatus, GameServerSpec, GameServerStatus, GameServerTemplate,
    InPlaceUpdateStrategy, Lifecycle, LifecycleHook, Network, NetworkAddress, NetworkConfParam,
    NetworkPort, NetworkPortRange, NetworkStatus, OWNER_GSS_LABEL, RollingUpdateStrategy,
    ScaleStrategy, ServiceQuality, ServiceQualityAction, ServiceQualityCondition, UpdateStrategy,
    crds,
};
use k8s_openapi::api::apps::v1::StatefulSetPersistentVolumeClaimRetentionPolicy;
use k8s_openapi::api::core::v1::{ExecAction, Probe, ResourceRequirements, TCPSocketAction};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::{Value, json};

const OKG_DIR: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/reference/kruise-game/"
);

/// The strict OKG schema of `plural` (`gameserversets` or `gameservers`).
fn okg_schema(plural: &str) -> Value {
    let path = format!("{OKG_DIR}game.kruise.io_{plural}.yaml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let crd: Value = serde_yaml_ng::from_str(&text).unwrap();
    strict(crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone())
}

/// The strict schema of our generated CRD of `kind`.
fn our_schema(kind: &str) -> Value {
    let crd = crds()
        .into_iter()
        .find(|c| c.spec.names.kind == kind)
        .unwrap();
    strict(serde_json::to_value(&crd.spec.versions[0].schema).unwrap()["openAPIV3Schema"].clone())
}

/// Gives the root the `apiVersion`/`kind`/`metadata` properties every object
/// has (kube's generated schemas leave them out), then closes every object
/// schema that lists `properties` and neither preserves unknown fields nor
/// says anything about additional properties.
fn strict(mut schema: Value) -> Value {
    let props = schema["properties"].as_object_mut().unwrap();
    props
        .entry("apiVersion")
        .or_insert(json!({"type": "string"}));
    props.entry("kind").or_insert(json!({"type": "string"}));
    props.entry("metadata").or_insert(json!({"type": "object"}));
    close_objects(&mut schema);
    schema
}

/// Validation errors of `instance` against `schema`, one line each.
fn errors(schema: &Value, instance: &Value) -> Vec<String> {
    let validator = jsonschema::validator_for(schema).unwrap();
    validator
        .iter_errors(instance)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect()
}

fn time(s: &str) -> Time {
    Time(s.parse().unwrap())
}

fn resources() -> ResourceRequirements {
    serde_json::from_value(json!({
        "limits": {"cpu": "2", "memory": "4Gi"},
        "requests": {"cpu": "500m", "memory": "1Gi"},
    }))
    .unwrap()
}

fn hook(label: &str) -> LifecycleHook {
    LifecycleHook {
        labels_handler: Some(BTreeMap::from([(label.into(), "true".into())])),
        finalizers_handler: Some(vec![format!("game.kruise.io/{label}")]),
        mark_pod_not_ready: Some(true),
    }
}

fn server_spec() -> GameServerSpec {
    GameServerSpec {
        ops_state: Some("Allocated".into()),
        update_priority: Some(IntOrString::Int(10)),
        deletion_priority: Some(IntOrString::String("5".into())),
        network_disabled: Some(false),
        containers: Some(vec![GameServerContainer {
            name: "minecraft".into(),
            image: Some("registry.cn-hangzhou.aliyuncs.com/acs/minecraft-demo:1.12.2-new".into()),
            resources: Some(resources()),
        }]),
    }
}

fn service_quality(name: &str, probe: Probe) -> ServiceQuality {
    ServiceQuality {
        probe: Probe {
            initial_delay_seconds: Some(5),
            timeout_seconds: Some(3),
            period_seconds: Some(10),
            success_threshold: Some(1),
            failure_threshold: Some(3),
            termination_grace_period_seconds: Some(30),
            ..probe
        },
        name: name.into(),
        container_name: Some("minecraft".into()),
        permanent: false,
        service_quality_action: Some(vec![ServiceQualityAction {
            state: true,
            result: Some("idle".into()),
            game_server_spec: server_spec(),
            annotations: Some(BTreeMap::from([(
                "game.kruise.io/idle".into(),
                "true".into(),
            )])),
            labels: Some(BTreeMap::from([("idle".into(), "true".into())])),
        }]),
    }
}

fn full_game_server_set() -> GameServerSet {
    let template = GameServerTemplate {
        pod_template: serde_json::from_value(json!({
            "metadata": {"labels": {"app": "minecraft"}},
            "spec": {"containers": [{
                "name": "minecraft",
                "image": "registry.cn-hangzhou.aliyuncs.com/acs/minecraft-demo:1.12.2",
                "ports": [{"containerPort": 25565, "protocol": "TCP"}],
            }]},
        }))
        .unwrap(),
        volume_claim_templates: Some(vec![
            serde_json::from_value(json!({
                "metadata": {"name": "world"},
                "spec": {
                    "accessModes": ["ReadWriteOnce"],
                    "resources": {"requests": {"storage": "10Gi"}},
                    "storageClassName": "standard",
                },
            }))
            .unwrap(),
        ]),
        reclaim_policy: Some("Cascade".into()),
    };
    let mut gss = GameServerSet::new(
        "minecraft",
        GameServerSetSpec {
            replicas: 6,
            game_server_template: Some(template),
            service_name: Some("minecraft".into()),
            reserve_game_server_ids: Some(vec![
                IntOrString::Int(2),
                IntOrString::String("7-9".into()),
            ]),
            service_qualities: Some(vec![
                service_quality(
                    "idle",
                    Probe {
                        exec: Some(ExecAction {
                            command: Some(vec!["bash".into(), "./idle.sh".into()]),
                        }),
                        ..Default::default()
                    },
                ),
                service_quality(
                    "healthy",
                    Probe {
                        tcp_socket: Some(TCPSocketAction {
                            host: Some("127.0.0.1".into()),
                            port: IntOrString::Int(25565),
                        }),
                        ..Default::default()
                    },
                ),
                service_quality(
                    "http",
                    serde_json::from_value(json!({
                        "httpGet": {"path": "/healthz", "port": "http", "scheme": "HTTP",
                                    "httpHeaders": [{"name": "X-Probe", "value": "okg"}]},
                    }))
                    .unwrap(),
                ),
                service_quality(
                    "grpc",
                    serde_json::from_value(json!({"grpc": {"port": 9090, "service": "health"}}))
                        .unwrap(),
                ),
            ]),
            update_strategy: Some(UpdateStrategy {
                r#type: Some("RollingUpdate".into()),
                rolling_update: Some(RollingUpdateStrategy {
                    partition: Some(0),
                    max_unavailable: Some(IntOrString::String("20%".into())),
                    pod_update_policy: Some("InPlaceIfPossible".into()),
                    paused: Some(false),
                    in_place_update_strategy: Some(InPlaceUpdateStrategy {
                        grace_period_seconds: Some(10),
                    }),
                    min_ready_seconds: Some(5),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            scale_strategy: Some(ScaleStrategy {
                max_unavailable: Some(IntOrString::Int(1)),
                scale_down_strategy_type: Some("ReserveIds".into()),
            }),
            network: Some(Network {
                network_type: Some("Kubernetes-HostPort".into()),
                network_conf: Some(vec![NetworkConfParam {
                    name: Some("ContainerPorts".into()),
                    value: Some("minecraft:25565/TCP".into()),
                }]),
            }),
            lifecycle: Some(Lifecycle {
                pre_delete: Some(hook("pre-delete")),
                in_place_update: Some(hook("in-place-update")),
                pre_normal: Some(hook("pre-normal")),
            }),
            persistent_volume_claim_retention_policy: Some(
                StatefulSetPersistentVolumeClaimRetentionPolicy {
                    when_deleted: Some("Delete".into()),
                    when_scaled: Some("Retain".into()),
                },
            ),
            ..Default::default()
        },
    );
    gss.metadata.namespace = Some("default".into());
    gss.status = Some(GameServerSetStatus {
        observed_generation: Some(3),
        replicas: 6,
        ready_replicas: 5,
        available_replicas: 5,
        current_replicas: 3,
        updated_replicas: 3,
        updated_ready_replicas: Some(2),
        maintaining_replicas: Some(0),
        wait_to_be_deleted_replicas: Some(1),
        pre_delete_replicas: Some(0),
        label_selector: Some(format!("{OWNER_GSS_LABEL}=minecraft")),
    });
    gss
}

fn full_game_server() -> GameServer {
    let address = |ip: &str| NetworkAddress {
        ip: ip.into(),
        ports: Some(vec![NetworkPort {
            name: "minecraft".into(),
            protocol: Some("TCP".into()),
            port: Some(IntOrString::Int(25565)),
        }]),
        port_range: Some(NetworkPortRange {
            protocol: Some("UDP".into()),
            port_range: Some("8000-8100".into()),
        }),
        end_point: Some("mc.example.com".into()),
    };
    GameServer {
        metadata: ObjectMeta {
            name: Some("minecraft-0".into()),
            namespace: Some("default".into()),
            labels: Some(BTreeMap::from([(
                OWNER_GSS_LABEL.into(),
                "minecraft".into(),
            )])),
            ..Default::default()
        },
        spec: server_spec(),
        status: Some(GameServerStatus {
            desired_state: Some("Ready".into()),
            current_state: Some("Ready".into()),
            network_status: Some(NetworkStatus {
                network_type: Some("Kubernetes-HostPort".into()),
                internal_addresses: Some(vec![address("10.0.0.12")]),
                external_addresses: Some(vec![address("203.0.113.7")]),
                desired_network_state: Some("Ready".into()),
                current_network_state: Some("Ready".into()),
                create_time: Some(time("2024-05-01T10:00:00Z")),
                last_transition_time: Some(time("2024-05-01T10:00:05Z")),
            }),
            pod_status: Some(
                serde_json::from_value(json!({
                    "phase": "Running",
                    "podIP": "10.0.0.12",
                    "hostIP": "192.168.1.4",
                    "startTime": "2024-05-01T10:00:00Z",
                    "conditions": [{"type": "Ready", "status": "True",
                                    "lastTransitionTime": "2024-05-01T10:00:04Z"}],
                    "containerStatuses": [{
                        "name": "minecraft",
                        "image": "registry.cn-hangzhou.aliyuncs.com/acs/minecraft-demo:1.12.2",
                        "imageID": "sha256:0123abcd",
                        "ready": true,
                        "restartCount": 0,
                        "started": true,
                        "state": {"running": {"startedAt": "2024-05-01T10:00:02Z"}},
                    }],
                }))
                .unwrap(),
            ),
            service_qualities_conditions: Some(vec![ServiceQualityCondition {
                name: "idle".into(),
                status: Some("True".into()),
                result: Some("idle".into()),
                last_probe_time: Some(time("2024-05-01T10:05:00Z")),
                last_transition_time: Some(time("2024-05-01T10:01:00Z")),
                last_action_transition_time: Some(time("2024-05-01T10:01:00Z")),
            }]),
            update_priority: Some(IntOrString::Int(10)),
            deletion_priority: Some(IntOrString::Int(5)),
            last_transition_time: Some(time("2024-05-01T10:00:04Z")),
            conditions: Some(vec![GameServerCondition {
                r#type: "PodNormal".into(),
                status: "True".into(),
                last_probe_time: Some(time("2024-05-01T10:05:00Z")),
                last_transition_time: Some(time("2024-05-01T10:00:04Z")),
                reason: Some("PodRunning".into()),
                message: Some("pod is running".into()),
            }]),
            ..Default::default()
        }),
    }
}

#[test]
fn full_game_server_set_validates_against_okg_and_own_schema() {
    let gss = serde_json::to_value(full_game_server_set()).unwrap();
    assert_eq!(
        errors(&okg_schema("gameserversets"), &gss),
        Vec::<String>::new()
    );
    assert_eq!(
        errors(&our_schema("GameServerSet"), &gss),
        Vec::<String>::new()
    );
}

#[test]
fn full_game_server_validates_against_okg_and_own_schema() {
    let gs = serde_json::to_value(full_game_server()).unwrap();
    assert_eq!(
        errors(&okg_schema("gameservers"), &gs),
        Vec::<String>::new()
    );
    assert_eq!(errors(&our_schema("GameServer"), &gs), Vec::<String>::new());
}

#[test]
fn full_values_round_trip_through_json() {
    let gss = full_game_server_set();
    assert_eq!(
        serde_json::from_value::<GameServerSet>(serde_json::to_value(&gss).unwrap()).unwrap(),
        gss
    );
    let gs = full_game_server();
    assert_eq!(
        serde_json::from_value::<GameServer>(serde_json::to_value(&gs).unwrap()).unwrap(),
        gs
    );
}

#[test]
fn wrong_objects_do_not_validate() {
    let gss_schema = okg_schema("gameserversets");
    let gs_schema = okg_schema("gameservers");
    let gss = serde_json::to_value(full_game_server_set()).unwrap();
    let gs = serde_json::to_value(full_game_server()).unwrap();

    let broken = |base: &Value, pointer: &str, value: Option<Value>| {
        let mut v = base.clone();
        let (parent, key) = pointer.rsplit_once('/').unwrap();
        let parent = v.pointer_mut(parent).unwrap().as_object_mut().unwrap();
        match value {
            Some(value) => parent.insert(key.into(), value),
            None => parent.remove(key),
        };
        v
    };
    for (schema, instance) in [
        (
            &gss_schema,
            broken(&gss, "/spec/replicas", Some(json!("three"))),
        ),
        (&gss_schema, broken(&gss, "/spec/replicas", Some(json!(-1)))),
        (&gss_schema, broken(&gss, "/spec/bogus", Some(json!(true)))),
        (&gss_schema, broken(&gss, "/spec/replicas", None)),
        (&gss_schema, broken(&gss, "/status/replicas", None)),
        (
            &gss_schema,
            broken(
                &gss,
                "/spec/updateStrategy/rollingUpdate/maxSurge",
                Some(json!(1)),
            ),
        ),
        (
            &gss_schema,
            broken(&gss, "/spec/serviceQualities/0/permanent", None),
        ),
        (&gs_schema, broken(&gs, "/spec/opsState", Some(json!(5)))),
        (&gs_schema, broken(&gs, "/spec/containers/0/name", None)),
        (
            &gs_schema,
            broken(&gs, "/status/conditions/0/severity", Some(json!("High"))),
        ),
    ] {
        assert!(
            !errors(schema, &instance).is_empty(),
            "accepted: {instance}"
        );
    }
}

/// `path -> (type, required)` of every schema node, skipping k8s-openapi's
/// built-in types whose schemas follow a newer Kubernetes than OKG's CRDs.
fn shape(schema: &Value, path: String, out: &mut BTreeMap<String, (Value, Value)>) {
    if ["podStatus", "volumeClaimTemplates"]
        .iter()
        .any(|skip| path.ends_with(skip))
    {
        return;
    }
    let mut required = schema["required"].clone();
    if let Some(names) = required.as_array_mut() {
        names.sort_by(|a, b| a.as_str().cmp(&b.as_str()));
    }
    out.insert(path.clone(), (schema["type"].clone(), required));
    for (name, sub) in schema["properties"].as_object().into_iter().flatten() {
        shape(sub, format!("{path}.{name}"), out);
    }
    if schema["items"].is_object() {
        shape(&schema["items"], format!("{path}[]"), out);
    }
    if schema["additionalProperties"].is_object() {
        shape(&schema["additionalProperties"], format!("{path}{{}}"), out);
    }
}

#[test]
fn generated_schemas_have_okg_fields_types_and_required_lists() {
    for (plural, kind) in [
        ("gameserversets", "GameServerSet"),
        ("gameservers", "GameServer"),
    ] {
        let (mut okg, mut ours) = (BTreeMap::new(), BTreeMap::new());
        shape(&okg_schema(plural), String::new(), &mut okg);
        shape(&our_schema(kind), String::new(), &mut ours);
        // kube's root type always requires `spec`; OKG's does not.
        ours.insert(String::new(), okg[""].clone());
        // gameops's extensions are the only allowed differences.
        let extensions = match kind {
            "GameServerSet" => gameops::api::GAMESERVERSET_EXTENSIONS,
            _ => gameops::api::GAMESERVER_EXTENSIONS,
        };
        for ext in extensions {
            assert!(
                ours.keys().any(|k| k == ext),
                "{ext} is listed as an extension but not in the schema"
            );
            assert!(
                !okg.contains_key(*ext),
                "{ext} is in OKG's schema, not an extension"
            );
            ours.retain(|k, _| !k.starts_with(ext));
        }
        assert_eq!(ours, okg, "{kind}");
    }
}

/// What the server stores, read back over HTTP after the seed's commands and
/// writes through every endpoint, validates against OKG's strict schemas.
#[test]
fn objects_stored_by_the_server_validate_against_okg() {
    let server = common::Server::start(&["--in-memory"]);
    server.kubectl_ok(&["apply", "-f", "-"], Some(common::MINECRAFT_GSS));
    server.kubectl_ok(&["scale", "gss", "minecraft", "--replicas=6"], None);
    let gs = serde_json::to_string(&full_game_server()).unwrap();
    let mut gs: Value = serde_json::from_str(&gs).unwrap();
    let status = gs["status"].take();
    let meta = gs["metadata"].as_object_mut().unwrap();
    meta.retain(|k, _| matches!(k.as_str(), "name" | "namespace" | "labels" | "annotations"));
    meta.insert("namespace".into(), json!("default"));
    server.kubectl_ok(&["create", "-f", "-"], Some(&gs.to_string()));
    let name = gs["metadata"]["name"].as_str().unwrap().to_owned();
    server.kubectl_ok(
        &[
            "patch",
            "gs",
            &name,
            "--subresource=status",
            "--type=merge",
            "-p",
            &json!({"status": status}).to_string(),
        ],
        None,
    );
    server.kubectl_ok(
        &[
            "patch",
            "gs",
            &name,
            "--type=merge",
            "-p",
            r#"{"spec":{"opsState":"Allocated"}}"#,
        ],
        None,
    );
    for plural in ["gameserversets", "gameservers"] {
        let list: Value =
            serde_json::from_str(&server.kubectl_ok(&["get", plural, "-o", "json"], None)).unwrap();
        let items = list["items"].as_array().unwrap();
        assert!(!items.is_empty(), "{plural}");
        let schema = okg_schema(plural);
        for item in items {
            let problems = errors(&schema, item);
            assert!(problems.is_empty(), "{plural} {item}: {problems:?}");
        }
    }
    let stored: Value =
        serde_json::from_str(&server.kubectl_ok(&["get", "gs", &name, "-o", "json"], None))
            .unwrap();
    assert_eq!(
        stored["status"]["currentState"], status["currentState"],
        "status was stored"
    );
}

/// Every extension is listed in the README (kept true by this test).
#[test]
fn readme_lists_every_extension() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let section = readme
        .split("## Extensions beyond OpenKruiseGame")
        .nth(1)
        .unwrap_or("");
    for ext in gameops::api::GAMESERVERSET_EXTENSIONS
        .iter()
        .chain(gameops::api::GAMESERVER_EXTENSIONS)
    {
        let field = ext.trim_start_matches('.');
        assert!(
            section.contains(&format!("`{field}`")),
            "README does not list {field}"
        );
    }
    for strategy in ["`Recreate`", "`NoDisruption`"] {
        assert!(
            section.contains(strategy),
            "README does not list {strategy}"
        );
    }
}
