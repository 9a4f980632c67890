//! The resources the embedded API server serves: OKG's GameServerSet and
//! GameServer (described by the CRDs generated from [`crate::api`]) and core
//! v1 Events and Pods. Everything the server says about a resource (discovery,
//! OpenAPI, validation, tables, selectable fields) comes from here.

use std::sync::LazyLock;

use serde_json::{Value, json};

/// Where the scale subresource reads and writes.
#[derive(Debug, Clone)]
pub struct ScalePaths {
    /// JSON pointer of the desired replicas, e.g. `/spec/replicas`.
    pub spec_replicas: String,
    /// JSON pointer of the observed replicas.
    pub status_replicas: String,
    /// JSON pointer of the label selector string, if any.
    pub label_selector: Option<String>,
}

/// How `kubectl get` rows are built for a resource.
#[derive(Debug, Clone)]
pub enum Printer {
    /// A CRD's `additionalPrinterColumns` (name, type, format, description,
    /// priority, jsonPath), after the NAME column.
    Columns(Vec<Value>),
    /// The API server's built-in columns for core/v1 Events.
    Events,
    /// The API server's built-in columns for core/v1 Pods.
    Pods,
}

/// One served resource.
#[derive(Debug, Clone)]
pub struct ResourceDef {
    /// API group, empty for core.
    pub group: &'static str,
    /// Version.
    pub version: &'static str,
    /// Plural name (the URL segment).
    pub plural: &'static str,
    /// Singular name.
    pub singular: &'static str,
    /// Kind.
    pub kind: &'static str,
    /// List kind.
    pub list_kind: &'static str,
    /// Short names for kubectl.
    pub short_names: Vec<String>,
    /// Categories for kubectl (`kubectl get all`-style groupings).
    pub categories: Vec<String>,
    /// Whether objects live in namespaces.
    pub namespaced: bool,
    /// Whether `/status` is a subresource (then main writes keep status).
    pub status_subresource: bool,
    /// The scale subresource, if any.
    pub scale: Option<ScalePaths>,
    /// The structural schema; `None` accepts any fields.
    pub schema: Option<Value>,
    /// Table columns.
    pub printer: Printer,
    /// Fields usable in `fieldSelector`.
    pub selectable_fields: Vec<&'static str>,
}

impl ResourceDef {
    /// `apiVersion` of objects: `group/version`, or `version` for core.
    pub fn api_version(&self) -> String {
        kube::core::api_version_from_group_version(self.group.into(), self.version.into())
            .into_owned()
    }

    /// `plural.group` as error messages name it (`gameservers.game.kruise.io`).
    pub fn qualified(&self) -> String {
        self.with_group(self.plural)
    }

    /// `Kind.group` as validation messages name it.
    pub fn kind_group(&self) -> String {
        self.with_group(self.kind)
    }

    /// `name.group`, or `name` for core.
    fn with_group(&self, name: &str) -> String {
        if self.group.is_empty() {
            name.to_owned()
        } else {
            format!("{name}.{}", self.group)
        }
    }

    /// The verbs the resource supports.
    pub fn verbs(&self) -> Vec<&'static str> {
        vec![
            "create",
            "delete",
            "deletecollection",
            "get",
            "list",
            "patch",
            "update",
            "watch",
        ]
    }
}

fn leak(s: &str) -> &'static str {
    // Called once per resource, for the process's lifetime (see `all`).
    Box::leak(s.to_owned().into_boxed_str())
}

fn pointer(json_path: &str) -> String {
    json_path.replace('.', "/")
}

fn from_crd(crd: &Value, selectable: &[&'static str]) -> Option<ResourceDef> {
    let spec = crd.get("spec")?;
    let names = spec.get("names")?;
    let version = spec.get("versions")?.get(0)?;
    let s = |v: &Value| v.as_str().map(leak);
    let strings = |v: Option<&Value>| -> Vec<String> {
        v.and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let subresources = version.get("subresources");
    let scale = subresources
        .and_then(|s| s.get("scale"))
        .map(|scale| ScalePaths {
            spec_replicas: pointer(
                scale["specReplicasPath"]
                    .as_str()
                    .unwrap_or(".spec.replicas"),
            ),
            status_replicas: pointer(
                scale["statusReplicasPath"]
                    .as_str()
                    .unwrap_or(".status.replicas"),
            ),
            label_selector: scale["labelSelectorPath"].as_str().map(pointer),
        });
    let mut fields = vec!["metadata.name", "metadata.namespace"];
    fields.extend_from_slice(selectable);
    Some(ResourceDef {
        group: s(&spec["group"])?,
        version: s(&version["name"])?,
        plural: s(&names["plural"])?,
        singular: s(&names["singular"])?,
        kind: s(&names["kind"])?,
        list_kind: s(&names["listKind"])?,
        short_names: strings(names.get("shortNames")),
        categories: strings(names.get("categories")),
        namespaced: spec["scope"] == "Namespaced",
        status_subresource: subresources.and_then(|s| s.get("status")).is_some(),
        scale,
        schema: version.pointer("/schema/openAPIV3Schema").cloned(),
        printer: Printer::Columns(
            version
                .get("additionalPrinterColumns")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default(),
        ),
        selectable_fields: fields,
    })
}

/// The structural schema of a built-in type, generated as kube-derive
/// generates CRD schemas (inlined, nullable options, int-or-string).
fn builtin_schema<T: schemars::JsonSchema>() -> Option<Value> {
    let generator = schemars::generate::SchemaSettings::openapi3()
        .with(|s| {
            s.inline_subschemas = true;
            s.meta_schema = None;
        })
        .with_transform(schemars::transform::AddNullable::default())
        .with_transform(kube::core::schema::StructuralSchemaRewriter)
        .with_transform(kube::core::schema::OptionalEnum)
        .with_transform(kube::core::schema::OptionalIntOrString)
        .into_generator();
    serde_json::to_value(generator.into_root_schema_for::<T>()).ok()
}

fn events() -> ResourceDef {
    ResourceDef {
        group: "",
        version: "v1",
        plural: "events",
        singular: "event",
        kind: "Event",
        list_kind: "EventList",
        short_names: vec!["ev".into()],
        categories: Vec::new(),
        namespaced: true,
        status_subresource: false,
        scale: None,
        schema: builtin_schema::<k8s_openapi::api::core::v1::Event>(),
        printer: Printer::Events,
        selectable_fields: vec![
            "metadata.name",
            "metadata.namespace",
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        ],
    }
}

/// core/v1 Pods: what OKG runs each GameServer as, played by the
/// simulator as kubelet would (kubernetes pkg/registry/core/pod: status
/// subresource, `spec.nodeName`, `status.phase` and friends selectable).
fn pods() -> ResourceDef {
    ResourceDef {
        group: "",
        version: "v1",
        plural: "pods",
        singular: "pod",
        kind: "Pod",
        list_kind: "PodList",
        short_names: vec!["po".into()],
        categories: vec!["all".into()],
        namespaced: true,
        status_subresource: true,
        scale: None,
        schema: builtin_schema::<k8s_openapi::api::core::v1::Pod>(),
        printer: Printer::Pods,
        selectable_fields: vec![
            "metadata.name",
            "metadata.namespace",
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
        ],
    }
}

static ALL: LazyLock<Vec<ResourceDef>> = LazyLock::new(|| {
    let mut defs = Vec::new();
    for crd in crate::api::crds() {
        let Ok(crd) = serde_json::to_value(&crd) else {
            continue;
        };
        let selectable: &[&'static str] =
            if crd.pointer("/spec/names/kind") == Some(&json!("GameServer")) {
                &[
                    "spec.opsState",
                    "spec.networkDisabled",
                    "status.currentState",
                ]
            } else {
                &[]
            };
        if let Some(def) = from_crd(&crd, selectable) {
            defs.push(def);
        }
    }
    defs.push(events());
    defs.push(pods());
    defs
});

/// Every served resource.
pub fn all() -> &'static [ResourceDef] {
    &ALL
}

/// Every resource's plural name, for the store.
pub fn plurals() -> Vec<&'static str> {
    all().iter().map(|r| r.plural).collect()
}

/// The resource served at `group/version/plural`.
pub fn find(group: &str, version: &str, plural: &str) -> Option<&'static ResourceDef> {
    all()
        .iter()
        .find(|r| r.group == group && r.version == version && r.plural == plural)
}

/// The distinct non-core groups with their versions, in order.
pub fn groups() -> Vec<(&'static str, &'static str)> {
    let mut out: Vec<(&'static str, &'static str)> = Vec::new();
    for r in all().iter().filter(|r| !r.group.is_empty()) {
        if !out.contains(&(r.group, r.version)) {
            out.push((r.group, r.version));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn okg_resources_come_from_the_crds() {
        let gss = find("game.kruise.io", "v1alpha1", "gameserversets").unwrap();
        assert_eq!(gss.kind, "GameServerSet");
        assert_eq!(gss.short_names, ["gss"]);
        assert!(gss.status_subresource);
        let scale = gss.scale.as_ref().unwrap();
        assert_eq!(scale.spec_replicas, "/spec/replicas");
        assert_eq!(
            scale.label_selector.as_deref(),
            Some("/status/labelSelector")
        );
        let gs = find("game.kruise.io", "v1alpha1", "gameservers").unwrap();
        assert_eq!(gs.short_names, ["gs"]);
        assert!(gs.scale.is_none());
        assert!(gs.selectable_fields.contains(&"spec.opsState"));
        let Printer::Columns(cols) = &gs.printer else {
            panic!("columns")
        };
        let names: Vec<&str> = cols.iter().map(|c| c["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["STATE", "OPSSTATE", "DP", "UP", "AGE"]);
        assert!(find("", "v1", "events").is_some());
        assert_eq!(groups(), [("game.kruise.io", "v1alpha1")]);
    }
}
