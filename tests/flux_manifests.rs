//! Checks the Flux manifests in `manifests/flux/` against the Flux Operator
//! CRDs in `../shared/reference/flux-operator/` (verbatim upstream copies).
//!
//! Every `ResourceSetInputProvider` and `ResourceSet` must pass three checks:
//! the CRD's `openAPIV3Schema`, made strict (objects that list `properties`
//! reject unknown fields, where the API server would silently prune them);
//! an explicit "no unknown top-level or spec field" check; and the CRD's
//! `x-kubernetes-validations` CEL rules, translated by hand below (each rule
//! is matched by its exact text, so a CRD update with a new rule fails
//! `every_cel_rule_in_the_crds_is_translated` until it is translated).
//!
//! On top of the CRDs, the manifests must match gameops's contract
//! (CONTRACTS.md section 2): the providers call `GET /flux/v1/inputs?env=NAME`
//! with a bearer token, the ResourceSets consume them and template only the
//! input fields gameops exports.
#![allow(
    clippy::too_many_lines,
    reason = "a scenario or a table reads best top to bottom"
)]

mod common;

use common::adler32;
use common::schema::close_objects;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use regex::Regex;
use serde::Deserialize;
use serde_json::{Value, json};

const FLUX_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/manifests/flux");
const CRD_DIR: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/reference/flux-operator/"
);
const CRD_FILES: [&str; 2] = [
    "fluxcd.controlplane.io_resourcesetinputproviders.yaml",
    "fluxcd.controlplane.io_resourcesets.yaml",
];

const FLUX_API: &str = "fluxcd.controlplane.io/v1";
const PROVIDER: &str = "ResourceSetInputProvider";
const RESOURCE_SET: &str = "ResourceSet";
const NAMESPACE: &str = "flux-system";
const ENVS: [&str; 3] = ["develop", "staging", "production"];
const ENDPOINT_HOST: &str = "gameops.gameops-system.svc.cluster.local:4355";
const ENDPOINT_PATH: &str = "/flux/v1/inputs";
const IMAGE: &str = "registry.example.com/game/server";
/// What a template may read from `inputs`: the fields gameops exports
/// (CONTRACTS.md section 2) and Flux's built-in `provider` reference.
const INPUT_FIELDS: [&str; 6] = ["id", "tag", "digest", "image", "env", "provider"];

// ---------------------------------------------------------------------------
// Loading

/// Every document of a (multi-document) YAML text, empty documents skipped.
fn documents(text: &str) -> Vec<Value> {
    serde_yaml_ng::Deserializer::from_str(text)
        .map(|doc| Value::deserialize(doc).unwrap())
        .filter(|v| !v.is_null())
        .collect()
}

/// The `*.yaml` / `*.yml` files of `manifests/flux/`, sorted by name.
fn yaml_files() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(FLUX_DIR)
        .unwrap_or_else(|e| panic!("{FLUX_DIR}: {e}"))
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.ends_with(".yaml") || name.ends_with(".yml"))
        .collect();
    names.sort();
    names
}

fn read(name: &str) -> String {
    let path = PathBuf::from(FLUX_DIR).join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every document of every YAML file except `kustomization.yaml`, with the
/// file it came from.
fn manifests() -> Vec<(String, Value)> {
    let all: Vec<(String, Value)> = yaml_files()
        .into_iter()
        .filter(|name| name != "kustomization.yaml")
        .flat_map(|name| {
            documents(&read(&name))
                .into_iter()
                .map(move |doc| (name.clone(), doc))
        })
        .collect();
    assert!(!all.is_empty(), "no manifests in {FLUX_DIR}");
    all
}

fn of_kind(docs: &[(String, Value)], kind: &str) -> Vec<Value> {
    docs.iter()
        .filter(|(_, d)| d["apiVersion"] == FLUX_API && d["kind"] == kind)
        .map(|(_, d)| d.clone())
        .collect()
}

fn name(doc: &Value) -> &str {
    doc["metadata"]["name"].as_str().unwrap()
}

/// The two Flux Operator CRDs.
fn crds() -> Vec<Value> {
    CRD_FILES
        .iter()
        .map(|file| {
            let path = format!("{CRD_DIR}{file}");
            let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
            let mut docs = documents(&text);
            assert_eq!(docs.len(), 1, "{path}: one CRD per file");
            docs.remove(0)
        })
        .collect()
}

/// The `openAPIV3Schema` (as upstream wrote it) that the CRD for `doc`'s
/// group and kind serves for `doc`'s version; panics if there is none.
fn schema_for(doc: &Value) -> Value {
    let api_version = doc["apiVersion"].as_str().unwrap();
    let (group, version) = api_version.split_once('/').unwrap();
    let crd = crds()
        .into_iter()
        .find(|c| c["spec"]["group"] == group && c["spec"]["names"]["kind"] == doc["kind"])
        .unwrap_or_else(|| panic!("no CRD for {api_version} {}", doc["kind"]));
    let served = crd["spec"]["versions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == version && v["served"] == true)
        .unwrap_or_else(|| panic!("the CRD serves no version {version} of {}", doc["kind"]));
    served["schema"]["openAPIV3Schema"].clone()
}

// ---------------------------------------------------------------------------
// Schema validation (the idea of tests/okg_schema.rs: close every object
// schema that lists properties, then validate with `jsonschema`)

fn strict(mut schema: Value) -> Value {
    close_objects(&mut schema);
    schema
}

fn schema_errors(schema: &Value, doc: &Value) -> Vec<String> {
    let validator = jsonschema::validator_for(&strict(schema.clone())).unwrap();
    validator
        .iter_errors(doc)
        .map(|e| format!("schema: {}: {e}", e.instance_path()))
        .collect()
}

/// Top-level fields other than apiVersion/kind/metadata/spec (a manifest
/// carries no status), and spec fields the CRD does not define.
fn unknown_fields(schema: &Value, doc: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for key in doc.as_object().into_iter().flat_map(|o| o.keys()) {
        if !["apiVersion", "kind", "metadata", "spec"].contains(&key.as_str()) {
            out.push(format!("unknown field: .{key}"));
        }
    }
    let known = &schema["properties"]["spec"]["properties"];
    for key in doc["spec"].as_object().into_iter().flat_map(|o| o.keys()) {
        if known.get(key).is_none() {
            out.push(format!("unknown field: .spec.{key}"));
        }
    }
    out
}

// ---------------------------------------------------------------------------
// CEL: the CRDs' x-kubernetes-validations, by hand

/// A CEL result: `Some(bool)`, or `None` when evaluation errors (e.g.
/// `self.url` on an object without `url`); the API server rejects both
/// `Some(false)` and `None`.
type Cel = Option<bool>;

fn has(o: &Value, key: &str) -> Cel {
    Some(o.get(key).is_some())
}

fn text<'a>(o: &'a Value, key: &str) -> Option<&'a str> {
    o.get(key)?.as_str()
}

fn eq(o: &Value, key: &str, literal: &str) -> Cel {
    text(o, key).map(|s| s == literal)
}

fn starts(o: &Value, key: &str, prefix: &str) -> Cel {
    text(o, key).map(|s| s.starts_with(prefix))
}

fn ends(o: &Value, key: &str, suffix: &str) -> Cel {
    text(o, key).map(|s| s.ends_with(suffix))
}

fn not(c: Cel) -> Cel {
    c.map(|b| !b)
}

/// CEL's `||`: true if any side is true, even if another side errors.
fn or<const N: usize>(cs: [Cel; N]) -> Cel {
    if cs.contains(&Some(true)) {
        Some(true)
    } else if cs.iter().all(|c| *c == Some(false)) {
        Some(false)
    } else {
        None
    }
}

/// CEL's `&&`: false if any side is false, even if another side errors.
fn and<const N: usize>(cs: [Cel; N]) -> Cel {
    if cs.contains(&Some(false)) {
        Some(false)
    } else if cs.iter().all(|c| *c == Some(true)) {
        Some(true)
    } else {
        None
    }
}

/// Evaluates the CEL `rule` with `self` = `s`. Each arm is the rule's exact
/// text (whitespace collapsed). Panics on a rule not translated here.
fn cel(rule: &str, s: &Value) -> Cel {
    let rule = rule.split_whitespace().collect::<Vec<_>>().join(" ");
    let ty = |lit: &str| eq(s, "type", lit);
    match rule.as_str() {
        // ---- ResourceSetInputProvider .spec ----
        // "spec.url must be empty when spec.type is 'Static'"
        "self.type != 'Static' || !has(self.url)" => or([not(ty("Static")), not(has(s, "url"))]),
        // "spec.url must be empty when spec.type is 'ExternalArtifact'"
        "self.type != 'ExternalArtifact' || !has(self.url)" => {
            or([not(ty("ExternalArtifact")), not(has(s, "url"))])
        }
        // "spec.url must not be empty when spec.type is not 'Static' or
        // 'ExternalArtifact'": so ExternalService requires a url.
        "self.type == 'Static' || self.type == 'ExternalArtifact' || has(self.url)" => {
            or([ty("Static"), ty("ExternalArtifact"), has(s, "url")])
        }
        // "spec.url must start with 'http://' or 'https://' when spec.type is a Git provider"
        "!self.type.startsWith('Git') || self.url.startsWith('http')" => {
            or([not(starts(s, "type", "Git")), starts(s, "url", "http")])
        }
        // "... when spec.type is an AzureDevOps provider"
        "!self.type.startsWith('AzureDevOps') || self.url.startsWith('http://') || self.url.startsWith('https://')" => {
            or([
                not(starts(s, "type", "AzureDevOps")),
                starts(s, "url", "http://"),
                starts(s, "url", "https://"),
            ])
        }
        // "spec.url must start with 'https://' when spec.type is a AWSCodeCommit provider"
        "!self.type.startsWith('AWSCodeCommit') || self.url.startsWith('https://')" => or([
            not(starts(s, "type", "AWSCodeCommit")),
            starts(s, "url", "https://"),
        ]),
        // "spec.url must start with 'oci://' when spec.type is an OCI provider"
        "!self.type.endsWith('ArtifactTag') || self.url.startsWith('oci')" => {
            or([not(ends(s, "type", "ArtifactTag")), starts(s, "url", "oci")])
        }
        // "spec.url must include the repository path after the registry host
        // when spec.type is an OCI provider"
        "!self.type.endsWith('ArtifactTag') || !self.url.startsWith('oci://') || self.url.substring(6).contains('/')" => {
            or([
                not(ends(s, "type", "ArtifactTag")),
                not(starts(s, "url", "oci://")),
                text(s, "url")
                    .and_then(|u| u.get(6..))
                    .map(|rest| rest.contains('/')),
            ])
        }
        // "spec.url must start with 'http://' or 'https://' when spec.type is 'ExternalService'"
        "self.type != 'ExternalService' || self.url.startsWith('http')" => {
            or([not(ty("ExternalService")), starts(s, "url", "http")])
        }
        // "spec.insecure can only be set when spec.type is 'ExternalService' or 'OCIArtifactTag'"
        "!has(self.insecure) || !self.insecure || self.type == 'ExternalService' || self.type == 'OCIArtifactTag'" => {
            or([
                not(has(s, "insecure")),
                not(s.get("insecure").and_then(Value::as_bool)),
                ty("ExternalService"),
                ty("OCIArtifactTag"),
            ])
        }
        // "spec.url must use 'https://' unless spec.insecure is true"
        "self.type != 'ExternalService' || !self.url.startsWith('http://') || (has(self.insecure) && self.insecure)" => {
            or([
                not(ty("ExternalService")),
                not(starts(s, "url", "http://")),
                and([
                    has(s, "insecure"),
                    s.get("insecure").and_then(Value::as_bool),
                ]),
            ])
        }
        // "cannot specify spec.serviceAccountName when spec.type is not one of
        // AzureDevOps*, AWSCodeCommit*, *ArtifactTag or ExternalArtifact"
        "!has(self.serviceAccountName) || self.type.startsWith('AzureDevOps') || self.type.startsWith('AWSCodeCommit') || self.type.endsWith('ArtifactTag') || self.type == 'ExternalArtifact'" => {
            or([
                not(has(s, "serviceAccountName")),
                starts(s, "type", "AzureDevOps"),
                starts(s, "type", "AWSCodeCommit"),
                ends(s, "type", "ArtifactTag"),
                ty("ExternalArtifact"),
            ])
        }
        // "cannot specify spec.certSecretRef when spec.type is one of Static,
        // ExternalArtifact, AzureDevOps*, AWSCodeCommit*, ACRArtifactTag,
        // ECRArtifactTag or GARArtifactTag"
        "!has(self.certSecretRef) || !(self.type == 'Static' || self.type == 'ExternalArtifact' || self.type.startsWith('AzureDevOps') || self.type.startsWith('AWSCodeCommit') || (self.type.endsWith('ArtifactTag') && self.type != 'OCIArtifactTag'))" => {
            or([
                not(has(s, "certSecretRef")),
                not(or([
                    ty("Static"),
                    ty("ExternalArtifact"),
                    starts(s, "type", "AzureDevOps"),
                    starts(s, "type", "AWSCodeCommit"),
                    and([ends(s, "type", "ArtifactTag"), not(ty("OCIArtifactTag"))]),
                ])),
            ])
        }
        // "cannot specify spec.secretRef when spec.type is one of Static,
        // ExternalArtifact, AWSCodeCommit*, ACRArtifactTag, ECRArtifactTag or
        // GARArtifactTag"
        "!has(self.secretRef) || !(self.type == 'Static' || self.type == 'ExternalArtifact' || self.type.startsWith('AWSCodeCommit') || (self.type.endsWith('ArtifactTag') && self.type != 'OCIArtifactTag'))" => {
            or([
                not(has(s, "secretRef")),
                not(or([
                    ty("Static"),
                    ty("ExternalArtifact"),
                    starts(s, "type", "AWSCodeCommit"),
                    and([ends(s, "type", "ArtifactTag"), not(ty("OCIArtifactTag"))]),
                ])),
            ])
        }
        // "spec.selectors must be set when spec.type is 'ExternalArtifact'"
        "self.type != 'ExternalArtifact' || (has(self.selectors) && size(self.selectors) > 0)" => {
            or([
                not(ty("ExternalArtifact")),
                and([
                    has(s, "selectors"),
                    s.get("selectors")
                        .and_then(Value::as_array)
                        .map(|a| !a.is_empty()),
                ]),
            ])
        }
        // "spec.selectors must not be set when spec.type is not 'ExternalArtifact'"
        "self.type == 'ExternalArtifact' || !has(self.selectors)" => {
            or([ty("ExternalArtifact"), not(has(s, "selectors"))])
        }
        // .spec.selectors[]: "name is mutually exclusive with matchLabels and matchExpressions"
        "!has(self.name) || (!has(self.matchLabels) && !has(self.matchExpressions))" => or([
            not(has(s, "name")),
            and([not(has(s, "matchLabels")), not(has(s, "matchExpressions"))]),
        ]),

        // ---- ResourceSet ----
        // .spec: "steps is mutually exclusive with resources and resourcesTemplate"
        "!has(self.steps) || (!has(self.resources) && !has(self.resourcesTemplate))" => or([
            not(has(s, "steps")),
            and([not(has(s, "resources")), not(has(s, "resourcesTemplate"))]),
        ]),
        // .spec: "at least one of steps, resources or resourcesTemplate must be set"
        "has(self.steps) || has(self.resources) || has(self.resourcesTemplate)" => or([
            has(s, "steps"),
            has(s, "resources"),
            has(s, "resourcesTemplate"),
        ]),
        // .spec.inputStrategy: "includeEmptyProviders only applies when name is Permute"
        "!has(self.includeEmptyProviders) || self.name == 'Permute'" => or([
            not(has(s, "includeEmptyProviders")),
            eq(s, "name", "Permute"),
        ]),
        // .spec.inputsFrom[]: "at least one of name or selector must be set
        // for input provider references"
        "has(self.name) || has(self.selector)" => or([has(s, "name"), has(s, "selector")]),
        // .spec.inputsFrom[]: "cannot set both name and selector for input
        // provider references"
        "!has(self.name) || !has(self.selector)" => {
            or([not(has(s, "name")), not(has(s, "selector"))])
        }
        // .spec.steps: "step names must be unique"
        "self.all(s, self.exists_one(t, t.name == s.name))" => {
            let names: Option<Vec<&str>> = s.as_array()?.iter().map(|t| text(t, "name")).collect();
            names.map(|n| n.iter().all(|a| n.iter().filter(|b| *b == a).count() == 1))
        }
        // .spec.steps[]: "at least one of resources or resourcesTemplate must be set"
        "has(self.resources) || has(self.resourcesTemplate)" => {
            or([has(s, "resources"), has(s, "resourcesTemplate")])
        }
        other => panic!("CEL rule not translated in tests/flux_manifests.rs: {other}"),
    }
}

/// Walks `schema` and `doc` together and evaluates every
/// `x-kubernetes-validations` rule on the node it is attached to (the API
/// server skips rules of absent fields, and so does this).
fn cel_errors(schema: &Value, doc: &Value, path: &str, out: &mut Vec<String>) {
    for v in schema["x-kubernetes-validations"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let rule = v["rule"].as_str().unwrap();
        let message = v["message"].as_str().unwrap_or(rule);
        match cel(rule, doc) {
            Some(true) => {}
            Some(false) => out.push(format!("CEL: {path}: {message}")),
            None => out.push(format!("CEL: {path}: `{rule}` does not evaluate")),
        }
    }
    let props = schema["properties"].as_object();
    if let (Some(props), Some(obj)) = (props, doc.as_object()) {
        for (key, sub) in props {
            if let Some(child) = obj.get(key) {
                cel_errors(sub, child, &format!("{path}.{key}"), out);
            }
        }
    }
    if let (Some(items), Some(arr)) = (schema.get("items"), doc.as_array()) {
        for (i, child) in arr.iter().enumerate() {
            cel_errors(items, child, &format!("{path}[{i}]"), out);
        }
    }
    if let (Some(extra @ Value::Object(_)), Some(obj)) =
        (schema.get("additionalProperties"), doc.as_object())
    {
        for (key, child) in obj {
            if props.is_none_or(|p| !p.contains_key(key)) {
                cel_errors(extra, child, &format!("{path}.{key}"), out);
            }
        }
    }
}

/// Every reason the API server (or the strict checks) would refuse `doc`.
fn violations(doc: &Value) -> Vec<String> {
    let schema = schema_for(doc);
    let mut out = schema_errors(&schema, doc);
    out.extend(unknown_fields(&schema, doc));
    cel_errors(&schema, doc, "", &mut out);
    out
}

/// All `x-kubernetes-validations` rules of a schema, with their paths.
fn all_rules(schema: &Value, path: &str, out: &mut Vec<(String, String)>) {
    for v in schema["x-kubernetes-validations"]
        .as_array()
        .into_iter()
        .flatten()
    {
        out.push((path.to_owned(), v["rule"].as_str().unwrap().to_owned()));
    }
    for (key, sub) in schema["properties"].as_object().into_iter().flatten() {
        all_rules(sub, &format!("{path}.{key}"), out);
    }
    if let Some(items) = schema.get("items") {
        all_rules(items, &format!("{path}[]"), out);
    }
    if let Some(extra @ Value::Object(_)) = schema.get("additionalProperties") {
        all_rules(extra, &format!("{path}{{}}"), out);
    }
}

// ---------------------------------------------------------------------------
// Small helpers for the contract checks

/// Splits `scheme://host/path?query` (no fragment, no userinfo).
fn split_url(url: &str) -> (&str, &str, &str, &str) {
    let (scheme, rest) = url.split_once("://").unwrap();
    let (authority, rest) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    (scheme, authority, path, query)
}

/// Go duration as the Flux annotations take it (same pattern the CRDs use
/// for durations).
fn is_duration(s: &str) -> bool {
    Regex::new(r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$")
        .unwrap()
        .is_match(s)
}

fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253
        && Regex::new(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
            .unwrap()
            .is_match(s)
}

fn labels_match(labels: &Value, selector: &Value) -> bool {
    let wanted = selector["matchLabels"].as_object();
    let exprs = selector["matchExpressions"].as_array();
    assert!(
        exprs.is_none_or(|e| e.is_empty()),
        "matchExpressions is not evaluated by this test; use matchLabels or name"
    );
    wanted
        .into_iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v))
}

/// The fields of `inputs` that a template reads (`<< inputs.tag | quote >>`
/// reads `tag`).
fn template_inputs(template: &str) -> BTreeSet<String> {
    let action = Regex::new(r"<<-?(.*?)-?>>").unwrap();
    let field = Regex::new(r"\binputs\.([A-Za-z_][A-Za-z0-9_]*)").unwrap();
    action
        .captures_iter(template)
        .flat_map(|c| {
            field
                .captures_iter(c.get(1).unwrap().as_str())
                .map(|f| f[1].to_owned())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Renders the `<< inputs.NAME >>` and `<< inputs.NAME | quote >>` actions of
/// a manifest text the way Flux's Go template would; panics on any other
/// action, so a new template construct gets a deliberate look here.
fn render(template: &str, inputs: &BTreeMap<&str, &str>) -> String {
    let action = Regex::new(r"<<\s*inputs\.([A-Za-z_][A-Za-z0-9_]*)\s*(\|\s*quote\s*)?>>").unwrap();
    let rendered = action.replace_all(template, |c: &regex::Captures| {
        let value = inputs
            .get(&c[1])
            .unwrap_or_else(|| panic!("no input {}", &c[1]));
        if c.get(2).is_some() {
            serde_json::to_string(value).unwrap()
        } else {
            (*value).to_owned()
        }
    });
    assert!(
        !rendered.contains("<<"),
        "a template action this test cannot render is left: {rendered}"
    );
    rendered.into_owned()
}

// ---------------------------------------------------------------------------
// Tests

#[test]
fn flux_manifests_validate_against_the_flux_operator_crds() {
    let docs = manifests();
    let mut checked = 0;
    for (file, doc) in &docs {
        if doc["apiVersion"] != FLUX_API {
            continue;
        }
        let errors = violations(doc);
        assert!(
            errors.is_empty(),
            "{file}: {} {}:\n  {}",
            doc["kind"],
            doc["metadata"]["name"],
            errors.join("\n  ")
        );
        checked += 1;
    }
    assert_eq!(of_kind(&docs, PROVIDER).len(), ENVS.len());
    assert_eq!(of_kind(&docs, RESOURCE_SET).len(), ENVS.len());
    assert_eq!(checked, 2 * ENVS.len(), "unexpected Flux Operator objects");
}

#[test]
fn every_document_is_an_expected_kind_in_the_flux_namespace() {
    let mut seen = BTreeSet::new();
    for (file, doc) in manifests() {
        let kind = (doc["apiVersion"].as_str(), doc["kind"].as_str());
        assert!(
            matches!(
                kind,
                (Some(FLUX_API), Some(PROVIDER | RESOURCE_SET)) | (Some("v1"), Some("Secret"))
            ),
            "{file}: unexpected {kind:?}; validate it here before adding it"
        );
        let n = name(&doc);
        assert!(is_dns_subdomain(n), "{file}: bad name {n:?}");
        // ResourceSets read providers, and providers read Secrets, only in
        // their own namespace.
        assert_eq!(doc["metadata"]["namespace"], NAMESPACE, "{file}: {n}");
        assert!(
            seen.insert((kind.1.unwrap().to_owned(), n.to_owned())),
            "{file}: duplicate {} {n}",
            doc["kind"]
        );
    }
}

#[test]
fn providers_call_the_gameops_flux_endpoint() {
    let docs = manifests();
    let secrets: BTreeMap<String, Value> = docs
        .iter()
        .filter(|(_, d)| d["apiVersion"] == "v1" && d["kind"] == "Secret")
        .map(|(_, d)| (name(d).to_owned(), d.clone()))
        .collect();
    let mut envs = BTreeSet::new();
    for provider in of_kind(&docs, PROVIDER) {
        let n = name(&provider);
        let spec = &provider["spec"];
        assert_eq!(spec["type"], "ExternalService", "{n}");

        let url = spec["url"].as_str().unwrap();
        let (scheme, host, path, query) = split_url(url);
        assert_eq!(host, ENDPOINT_HOST, "{n}: {url}");
        assert_eq!(path, ENDPOINT_PATH, "{n}: {url}");
        let params: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect();
        let [(key, env)] = params.as_slice() else {
            panic!("{n}: the query must be exactly env=NAME: {url}");
        };
        assert_eq!(key, "env", "{n}: {url}");
        assert!(ENVS.contains(&env.as_str()), "{n}: unknown env {env}");
        assert_eq!(n, format!("game-{env}"), "provider named after its env");
        assert_eq!(provider["metadata"]["labels"]["gameops.io/env"], *env);
        assert!(envs.insert(env.clone()), "two providers for env {env}");

        // In-cluster plain HTTP needs insecure: true; with https it must go.
        let insecure = spec["insecure"].as_bool().unwrap_or(false);
        assert!(matches!(scheme, "http" | "https"), "{n}: {url}");
        assert_eq!(insecure, scheme == "http", "{n}: insecure iff http://");

        let secret_name = spec["secretRef"]["name"].as_str().unwrap();
        let secret = secrets
            .get(secret_name)
            .unwrap_or_else(|| panic!("{n}: no Secret {secret_name} in {FLUX_DIR}"));
        assert!(
            secret["stringData"].get("token").is_some() || secret["data"].get("token").is_some(),
            "{secret_name}: the bearer token goes under key `token`"
        );

        // gameops answers one input per environment; keep only that one.
        assert_eq!(spec["filter"]["limit"], 1, "{n}");

        let annotations = provider["metadata"]["annotations"].as_object();
        for (key, value) in annotations.into_iter().flatten() {
            let value = value.as_str().unwrap();
            match key.as_str() {
                "fluxcd.controlplane.io/reconcileEvery"
                | "fluxcd.controlplane.io/reconcileTimeout" => {
                    assert!(is_duration(value), "{n}: {key}: {value}")
                }
                "fluxcd.controlplane.io/reconcile" => {
                    assert!(matches!(value, "enabled" | "disabled"), "{n}: {key}")
                }
                other => panic!("{n}: annotation {other} is not one Flux documents"),
            }
        }
    }
    assert_eq!(envs, ENVS.iter().map(|e| e.to_string()).collect());
}

/// The parameters `seamless-release` declares, and those without a default.
fn seamless_release_parameters() -> (BTreeSet<String>, BTreeSet<String>) {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/workflow-templates/seamless-release.yaml"
    );
    let text = std::fs::read_to_string(path).unwrap();
    let [template] = documents(&text).try_into().unwrap();
    let params = template["spec"]["arguments"]["parameters"]
        .as_array()
        .unwrap();
    let names = params
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_owned());
    let required = params
        .iter()
        .filter(|p| p.get("value").is_none() && p.get("default").is_none())
        .map(|p| p["name"].as_str().unwrap().to_owned());
    (names.collect(), required.collect())
}

#[test]
fn resourcesets_consume_existing_providers_and_start_one_release_per_tag() {
    let docs = manifests();
    let providers = of_kind(&docs, PROVIDER);
    let (declared, required) = seamless_release_parameters();
    let mut consumed = BTreeSet::new();
    for rset in of_kind(&docs, RESOURCE_SET) {
        let n = name(&rset);
        let refs = rset["spec"]["inputsFrom"].as_array().unwrap();
        assert!(!refs.is_empty(), "{n}: no inputsFrom");
        for r in refs {
            assert_eq!(r["apiVersion"], FLUX_API, "{n}");
            assert_eq!(r["kind"], PROVIDER, "{n}");
            let matched: Vec<&str> = providers
                .iter()
                .filter(|p| match r["name"].as_str() {
                    Some(wanted) => name(p) == wanted,
                    None => labels_match(&p["metadata"]["labels"], &r["selector"]),
                })
                .map(name)
                .collect();
            assert!(!matched.is_empty(), "{n}: {r} matches no provider");
            consumed.extend(matched.into_iter().map(str::to_owned));
        }

        let resources = rset["spec"]["resources"].as_array().unwrap();
        let read = template_inputs(&serde_json::to_string(resources).unwrap());
        for field in &read {
            assert!(
                INPUT_FIELDS.contains(&field.as_str()),
                "{n}: template reads inputs.{field}, which gameops does not export"
            );
        }
        // One writer of a GameServerSet: Flux renders only the release
        // Workflow, never the set or anything that writes its image.
        let [workflow] = resources.as_slice() else {
            panic!(
                "{n}: renders {} objects, not one release Workflow",
                resources.len()
            );
        };
        assert_eq!(workflow["apiVersion"], "argoproj.io/v1alpha1", "{n}");
        assert_eq!(workflow["kind"], "Workflow", "{n}");
        assert_eq!(workflow["metadata"]["namespace"], "argo", "{n}");
        // Once per tag: the name carries the tag's id.
        assert_eq!(
            template_inputs(workflow["metadata"]["name"].as_str().unwrap()),
            BTreeSet::from(["id".to_owned()]),
            "{n}"
        );
        let annotations = &workflow["metadata"]["annotations"];
        assert_eq!(
            annotations["fluxcd.controlplane.io/ssa"], "IfNotPresent",
            "{n}"
        );
        assert_eq!(
            annotations["fluxcd.controlplane.io/prune"], "disabled",
            "{n}"
        );
        assert_eq!(
            workflow["spec"]["workflowTemplateRef"]["name"], "seamless-release",
            "{n}"
        );
        let given: BTreeSet<String> = workflow["spec"]["arguments"]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap().to_owned())
            .collect();
        assert!(given.is_subset(&declared), "{n}: {given:?} vs {declared:?}");
        assert!(
            required.is_subset(&given),
            "{n}: {required:?} missing from {given:?}"
        );
    }
    let all: BTreeSet<String> = providers.iter().map(|p| name(p).to_owned()).collect();
    assert_eq!(consumed, all, "every provider is consumed by a ResourceSet");
}

#[test]
fn resourceset_templates_render_one_workflow_name_per_tag_and_the_pinned_image() {
    // A tag that YAML would read as a number unless the template quotes it.
    assert_eq!(adler32(b"6.0.4"), 48955639, "CONTRACTS.md's example id");
    let digest = "sha256:0d7bb7e5a0d1d6a8e6f1a1f5b9d2b5c2b0f2a9c1e3d4f5a6b7c8d9e0f1a2b3c4";
    let render_for = |env: &str, tag: &str| -> Vec<Value> {
        let id = adler32(tag.as_bytes()).to_string();
        let image = format!("{IMAGE}:{tag}@{digest}");
        let inputs = BTreeMap::from([
            ("id", id.as_str()),
            ("tag", tag),
            ("digest", digest),
            ("image", image.as_str()),
            ("env", env),
        ]);
        documents(&render(&read("resourceset.yaml"), &inputs))
            .iter()
            .map(|rset| rset["spec"]["resources"][0].clone())
            .collect()
    };
    for env in ENVS {
        let rendered = render_for(env, "1.20");
        assert_eq!(rendered.len(), ENVS.len());
        for (w, e) in rendered.iter().zip(ENVS) {
            let name = w["metadata"]["name"].as_str().unwrap();
            assert_eq!(name, format!("release-{e}-{}", adler32(b"1.20")));
            assert!(is_dns_subdomain(name), "{name}");
            assert_eq!(
                w["metadata"]["annotations"]["gameops.io/release-tag"],
                json!("1.20")
            );
            let params = w["spec"]["arguments"]["parameters"].as_array().unwrap();
            let image = params.iter().find(|p| p["name"] == "image").unwrap();
            assert_eq!(image["value"], json!(format!("{IMAGE}:1.20@{digest}")));
        }
        // The same tag renders the same Workflow; the next tag a new one.
        assert_eq!(render_for(env, "1.20"), rendered);
        let next = render_for(env, "1.21");
        assert_ne!(next[0]["metadata"]["name"], rendered[0]["metadata"]["name"]);
    }
}

#[test]
fn kustomization_lists_every_other_manifest() {
    let docs = documents(&read("kustomization.yaml"));
    let [k] = docs.as_slice() else {
        panic!("kustomization.yaml: one document");
    };
    assert_eq!(k["apiVersion"], "kustomize.config.k8s.io/v1beta1");
    assert_eq!(k["kind"], "Kustomization");
    let listed: Vec<&str> = k["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    let unique: BTreeSet<&str> = listed.iter().copied().collect();
    assert_eq!(unique.len(), listed.len(), "duplicates in {listed:?}");
    let files: BTreeSet<String> = yaml_files()
        .into_iter()
        .filter(|f| f != "kustomization.yaml")
        .collect();
    assert_eq!(
        unique,
        files.iter().map(String::as_str).collect(),
        "kustomization.yaml resources vs the YAML files in {FLUX_DIR}"
    );
}

/// A valid provider, edited by `edit`.
fn provider(edit: impl FnOnce(&mut Value)) -> Value {
    let mut p = of_kind(&manifests(), PROVIDER).remove(0);
    edit(&mut p);
    p
}

fn assert_refused(what: &str, doc: &Value, expect: &str) {
    let errors = violations(doc);
    assert!(
        errors.iter().any(|e| e.contains(expect)),
        "{what}: expected an error containing {expect:?}, got {errors:#?}"
    );
}

#[test]
fn broken_providers_fail_validation() {
    assert_eq!(violations(&provider(|_| {})), Vec::<String>::new());

    // The schema's enum.
    let p = provider(|p| p["spec"]["type"] = json!("Nope"));
    assert_refused("type: Nope", &p, "schema: /spec/type");
    // The schema's url pattern.
    let p = provider(|p| p["spec"]["url"] = json!("ftp://gameops/flux/v1/inputs"));
    assert_refused("ftp url", &p, "schema: /spec/url");
    // A wrong type of value.
    let p = provider(|p| p["spec"]["filter"]["limit"] = json!("1"));
    assert_refused("string limit", &p, "schema: /spec/filter/limit");
    // Strictness the CRD lacks (the API server would prune these silently).
    let p = provider(|p| p["spec"]["token"] = json!("x"));
    assert_refused("unknown spec field", &p, "unknown field: .spec.token");
    let p = provider(|p| p["spec"]["filter"]["maxItems"] = json!(1));
    assert_refused("unknown nested field", &p, "schema: /spec/filter");
    let p = provider(|p| p["status"] = json!({}));
    assert_refused("status in a manifest", &p, "unknown field: .status");
    // CEL: ExternalService requires a url.
    let p = provider(|p| {
        p["spec"].as_object_mut().unwrap().remove("url");
    });
    assert_refused("missing url", &p, "spec.url must not be empty");
    // CEL: plain http needs insecure: true.
    let p = provider(|p| {
        p["spec"].as_object_mut().unwrap().remove("insecure");
    });
    assert_refused("http without insecure", &p, "must use 'https://' unless");
    // CEL: insecure only for ExternalService / OCIArtifactTag.
    let p = provider(|p| {
        p["spec"]["type"] = json!("GitHubBranch");
        p["spec"]["url"] = json!("https://github.com/example/game");
    });
    assert_refused("insecure on GitHub", &p, "spec.insecure can only be set");
}

#[test]
fn broken_resourcesets_fail_validation() {
    let valid = of_kind(&manifests(), RESOURCE_SET).remove(0);
    assert_eq!(violations(&valid), Vec::<String>::new());

    let mut both = valid.clone();
    both["spec"]["inputsFrom"][0]["selector"] = json!({"matchLabels": {"a": "b"}});
    assert_refused(
        "name and selector",
        &both,
        "cannot set both name and selector",
    );

    let mut neither = valid.clone();
    neither["spec"]["inputsFrom"][0] = json!({"kind": PROVIDER});
    assert_refused(
        "no name or selector",
        &neither,
        "at least one of name or selector",
    );

    let mut nothing = valid.clone();
    nothing["spec"].as_object_mut().unwrap().remove("resources");
    assert_refused("no resources", &nothing, "at least one of steps, resources");

    let mut kind = valid.clone();
    kind["spec"]["inputsFrom"][0]["kind"] = json!("ConfigMap");
    assert_refused(
        "wrong provider kind",
        &kind,
        "schema: /spec/inputsFrom/0/kind",
    );

    let mut steps = valid;
    steps["spec"]["steps"] =
        json!([{"name": "a", "resources": []}, {"name": "a", "resources": []}]);
    assert_refused("steps and resources", &steps, "steps is mutually exclusive");
    assert_refused("duplicate step names", &steps, "step names must be unique");
}

#[test]
fn every_cel_rule_in_the_crds_is_translated() {
    let mut rules = Vec::new();
    for crd in crds() {
        for version in crd["spec"]["versions"].as_array().unwrap() {
            let kind = crd["spec"]["names"]["kind"].as_str().unwrap();
            let root = format!("{kind}/{}", version["name"].as_str().unwrap());
            all_rules(&version["schema"]["openAPIV3Schema"], &root, &mut rules);
        }
    }
    // 17 on the provider (16 on .spec, 1 on .spec.selectors[]), 7 on the
    // ResourceSet, in flux-operator v0.58.1: the walk finds them all.
    assert_eq!(rules.len(), 24, "{rules:#?}");
    for (_path, rule) in &rules {
        // Panics if the rule has no translation; the value does not matter.
        let _ = cel(rule, &json!({}));
    }
    // Spot checks of the translation against the rule's meaning.
    let url_required = "self.type == 'Static' || self.type == 'ExternalArtifact' || has(self.url)";
    assert_eq!(
        cel(url_required, &json!({"type": "ExternalService"})),
        Some(false)
    );
    assert_eq!(cel(url_required, &json!({"type": "Static"})), Some(true));
    let https = "self.type != 'ExternalService' || self.url.startsWith('http')";
    // A missing url makes `self.url` an evaluation error: refused.
    assert_eq!(cel(https, &json!({"type": "ExternalService"})), None);
    assert_eq!(cel(https, &json!({"type": "GitHubTag"})), Some(true));
}
