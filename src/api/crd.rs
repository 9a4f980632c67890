//! CustomResourceDefinitions of the OKG-compatible resources.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

use super::{GameServer, GameServerSet};

/// The CRDs of [`GameServerSet`] and [`GameServer`], in that order, with
/// `listKind` set as in OKG's.
pub fn crds() -> Vec<CustomResourceDefinition> {
    let mut crds = vec![GameServerSet::crd(), GameServer::crd()];
    for crd in &mut crds {
        let names = &mut crd.spec.names;
        names.list_kind = Some(format!("{}List", names.kind));
    }
    crds
}

/// [`crds`] as a multi-document YAML stream, each document starting with `---`.
pub fn crds_yaml() -> Result<String, serde_yaml_ng::Error> {
    crds().iter().try_fold(String::new(), |mut out, crd| {
        out.push_str("---\n");
        out.push_str(&serde_yaml_ng::to_string(crd)?);
        Ok(out)
    })
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;
    use serde_json::{Value, json};

    use super::*;
    use crate::api::{GameServerSetSpec, UpdateStrategy};

    /// The `minecraft` GameServerSet of seed 001.
    const MINECRAFT_GSS: &str = "\
apiVersion: game.kruise.io/v1alpha1
kind: GameServerSet
metadata:
  name: minecraft
  namespace: default
spec:
  replicas: 3
  updateStrategy:
    type: OnDelete
  gameServerTemplate:
    spec:
      containers:
        - image: registry.cn-hangzhou.aliyuncs.com/acs/minecraft-demo:1.12.2
          name: minecraft
";

    fn schema_of(crd: &CustomResourceDefinition) -> Value {
        let schema = crd.spec.versions[0]
            .schema
            .as_ref()
            .map(|s| &s.open_api_v3_schema);
        serde_json::to_value(schema).unwrap()
    }

    #[test]
    fn minecraft_seed_round_trips_without_losing_fields() {
        let original: Value = serde_yaml_ng::from_str(MINECRAFT_GSS).unwrap();
        let gss: GameServerSet = serde_yaml_ng::from_str(MINECRAFT_GSS).unwrap();

        assert_eq!(gss.spec.replicas, 3);
        assert_eq!(
            gss.spec
                .update_strategy
                .as_ref()
                .and_then(|u| u.r#type.as_deref()),
            Some("OnDelete")
        );
        let pod_spec = gss
            .spec
            .game_server_template
            .as_ref()
            .unwrap()
            .pod_template
            .spec
            .as_ref();
        let container = &pod_spec.unwrap().containers[0];
        assert_eq!(container.name, "minecraft");
        assert_eq!(
            container.image.as_deref(),
            Some("registry.cn-hangzhou.aliyuncs.com/acs/minecraft-demo:1.12.2")
        );
        assert!(gss.status.is_none());

        assert_eq!(serde_json::to_value(&gss).unwrap(), original);
    }

    #[test]
    fn absent_optional_fields_are_not_serialised() {
        let spec = GameServerSetSpec {
            replicas: 0,
            update_strategy: Some(UpdateStrategy::default()),
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_value(spec).unwrap(),
            json!({"replicas": 0, "updateStrategy": {}})
        );
    }

    #[test]
    fn crds_have_okg_names_columns_and_subresources() {
        let [gss, gs] = <[CustomResourceDefinition; 2]>::try_from(crds()).unwrap();
        let gss = serde_json::to_value(gss).unwrap();
        let gs = serde_json::to_value(gs).unwrap();

        assert_eq!(gss["metadata"]["name"], "gameserversets.game.kruise.io");
        assert_eq!(gss["spec"]["group"], "game.kruise.io");
        assert_eq!(gss["spec"]["scope"], "Namespaced");
        assert_eq!(
            gss["spec"]["names"],
            json!({"kind": "GameServerSet", "listKind": "GameServerSetList",
                   "plural": "gameserversets", "singular": "gameserverset",
                   "shortNames": ["gss"]})
        );
        let version = &gss["spec"]["versions"][0];
        assert_eq!(version["name"], "v1alpha1");
        assert_eq!(
            version["subresources"],
            json!({"status": {}, "scale": {"specReplicasPath": ".spec.replicas",
                   "statusReplicasPath": ".status.replicas",
                   "labelSelectorPath": ".status.labelSelector"}})
        );
        let columns: Vec<_> = version["additionalPrinterColumns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c["name"].as_str().unwrap(),
                    c["type"].as_str().unwrap(),
                    c["jsonPath"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            columns,
            [
                ("DESIRED", "integer", ".spec.replicas"),
                ("CURRENT", "integer", ".status.currentReplicas"),
                ("UPDATED", "integer", ".status.updatedReplicas"),
                ("READY", "integer", ".status.readyReplicas"),
                ("Maintaining", "integer", ".status.maintainingReplicas"),
                (
                    "WaitToBeDeleted",
                    "integer",
                    ".status.waitToBeDeletedReplicas"
                ),
                ("PreDelete", "integer", ".status.preDeleteReplicas"),
                ("AGE", "date", ".metadata.creationTimestamp"),
            ]
        );
        assert_eq!(
            version["additionalPrinterColumns"][0]["description"],
            "The desired number of GameServers."
        );

        assert_eq!(gs["metadata"]["name"], "gameservers.game.kruise.io");
        assert_eq!(gs["spec"]["names"]["shortNames"], json!(["gs"]));
        assert_eq!(gs["spec"]["scope"], "Namespaced");
        let version = &gs["spec"]["versions"][0];
        assert_eq!(version["subresources"], json!({"status": {}}));
        assert_eq!(
            version["additionalPrinterColumns"],
            json!([
                {"name": "STATE", "type": "string", "jsonPath": ".status.currentState",
                 "description": "The current state of GameServer"},
                {"name": "OPSSTATE", "type": "string", "jsonPath": ".spec.opsState",
                 "description": "The operations state of GameServer"},
                {"name": "DP", "type": "string", "jsonPath": ".status.deletionPriority",
                 "description": "The current deletionPriority of GameServer"},
                {"name": "UP", "type": "string", "jsonPath": ".status.updatePriority",
                 "description": "The current updatePriority of GameServer"},
                {"name": "AGE", "type": "date", "jsonPath": ".metadata.creationTimestamp",
                 "description": "The age of GameServer"},
            ])
        );
    }

    #[test]
    fn gss_schema_matches_okg_shape() {
        let schema = schema_of(&GameServerSet::crd());
        let spec = &schema["properties"]["spec"];
        assert_eq!(spec["required"], json!(["replicas"]));
        assert_eq!(
            spec["properties"]["replicas"]["minimum"].as_f64(),
            Some(0.0)
        );
        assert_eq!(spec["properties"]["replicas"]["type"], "integer");

        let template = &spec["properties"]["gameServerTemplate"];
        assert_eq!(template["type"], "object");
        assert_eq!(template["x-kubernetes-preserve-unknown-fields"], true);
        assert_eq!(template["properties"]["reclaimPolicy"]["type"], "string");
        let claims = &template["properties"]["volumeClaimTemplates"];
        assert_eq!(claims["type"], "array");
        assert!(claims["items"].get("required").is_none());

        let status = &schema["properties"]["status"];
        let mut required: Vec<_> = status["required"].as_array().unwrap().iter().collect();
        required.sort_by_key(|v| v.as_str());
        assert_eq!(
            required,
            [
                "availableReplicas",
                "currentReplicas",
                "readyReplicas",
                "replicas",
                "updatedReplicas"
            ]
        );
        assert!(status["properties"]["replicas"].get("default").is_none());
    }

    #[test]
    fn crds_yaml_is_a_two_document_stream() {
        let yaml = crds_yaml().unwrap();
        assert!(yaml.starts_with("---\n"));
        let docs: Vec<CustomResourceDefinition> = serde_yaml_ng::Deserializer::from_str(&yaml)
            .map(|doc| CustomResourceDefinition::deserialize(doc).unwrap())
            .collect();
        assert_eq!(docs, crds());
    }
}
