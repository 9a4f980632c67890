//! kube-apiserver's metadata limits on the embedded API server, met through
//! kubectl and kube-rs: all annotations of an object together at most
//! 256 KiB (`TotalAnnotationSizeLimitB`, k8s.io/apimachinery
//! pkg/api/validation/objectmeta.go), label keys and values as
//! `ValidateLabels` (pkg/apis/meta/v1/validation) has them. A write over a
//! limit is a 422 `Invalid` naming the field, and changes nothing.

mod common;

use std::collections::BTreeMap;

use common::{MINECRAFT_GSS, Server};
use gameops::api::GameServerSet;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

const LIMIT: usize = 256 * 1024;
const TOO_LONG: &str = "metadata.annotations: Too long: may not be more than 262144 bytes";

/// `len(key) + len(value)` over all annotations, as kube-apiserver counts.
fn annotation_bytes(annotations: &BTreeMap<String, String>) -> usize {
    annotations.iter().map(|(k, v)| k.len() + v.len()).sum()
}

async fn fetch(api: &Api<GameServerSet>) -> GameServerSet {
    api.get("minecraft").await.expect("get the set")
}

fn rv(gss: &GameServerSet) -> String {
    gss.metadata.resource_version.clone().unwrap_or_default()
}

#[tokio::test]
async fn kubectl_annotate_over_256_kib_is_refused_and_at_the_limit_accepted() {
    let server = Server::start(&["--in-memory"]);
    server.kubectl_ok(&["create", "-f", "-"], Some(MINECRAFT_GSS));
    let api: Api<GameServerSet> = Api::namespaced(server.client().await, "default");
    let before = fetch(&api).await;
    let used = annotation_bytes(
        before
            .metadata
            .annotations
            .as_ref()
            .unwrap_or(&BTreeMap::new()),
    );
    // Three annotations (one argument each stays under the kernel's 128 KiB
    // per-argument limit) filling the object exactly to the limit...
    let room = LIMIT - used - 3;
    let sizes = [room / 3, room / 3, room - 2 * (room / 3)];
    let args: Vec<String> = ["a", "b", "c"]
        .iter()
        .zip(sizes)
        .map(|(k, n)| format!("{k}={}", "x".repeat(n)))
        .collect();
    // ... plus one byte more: refused, and nothing changes.
    let over: Vec<String> = args
        .iter()
        .enumerate()
        .map(|(i, a)| if i == 0 { format!("{a}x") } else { a.clone() })
        .collect();
    let mut cmd = vec!["annotate", "gss", "minecraft"];
    cmd.extend(over.iter().map(String::as_str));
    let out = server.kubectl(&cmd);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "over the limit must fail");
    // kubectl words an Invalid Status from its details, as with a cluster.
    assert!(
        stderr.contains(&format!(
            "The GameServerSet \"minecraft\" is invalid: {TOO_LONG}"
        )),
        "{stderr}"
    );
    let after = fetch(&api).await;
    assert_eq!(rv(&after), rv(&before), "a refused write changes nothing");
    assert_eq!(after.metadata.annotations, before.metadata.annotations);

    let mut cmd = vec!["annotate", "gss", "minecraft"];
    cmd.extend(args.iter().map(String::as_str));
    server.kubectl_ok(&cmd, None);
    let at_limit = fetch(&api).await;
    assert_eq!(
        annotation_bytes(at_limit.metadata.annotations.as_ref().expect("annotations")),
        LIMIT
    );
}

/// The seed's set, created with kube-rs.
async fn seeded(server: &Server) -> Api<GameServerSet> {
    let api: Api<GameServerSet> = Api::namespaced(server.client().await, "default");
    let gss: GameServerSet = serde_yaml_ng::from_str(MINECRAFT_GSS).expect("seed yaml");
    api.create(&PostParams::default(), &gss)
        .await
        .expect("create");
    api
}

#[tokio::test]
async fn kube_rs_gets_kube_apiservers_422_over_256_kib_of_annotations() {
    let server = Server::start(&["--in-memory"]);
    let api = seeded(&server).await;
    let before = fetch(&api).await;
    let used = annotation_bytes(
        before
            .metadata
            .annotations
            .as_ref()
            .unwrap_or(&BTreeMap::new()),
    );
    let key = "gameops.io/ops";
    let fill = LIMIT - used - key.len();
    let patch = |n: usize| Patch::Merge(json!({"metadata": {"annotations": {key: "x".repeat(n)}}}));

    let refused = api
        .patch("minecraft", &PatchParams::default(), &patch(fill + 1))
        .await;
    let Err(kube::Error::Api(status)) = refused else {
        panic!("over the limit must be an API error: {refused:?}");
    };
    assert_eq!((status.code, status.reason.as_str()), (422, "Invalid"));
    assert_eq!(
        status.message,
        format!("GameServerSet.game.kruise.io \"minecraft\" is invalid: {TOO_LONG}")
    );
    let details = status.details.clone().expect("details");
    assert_eq!(
        (
            details.name.as_str(),
            details.group.as_str(),
            details.kind.as_str()
        ),
        ("minecraft", "game.kruise.io", "GameServerSet")
    );
    assert_eq!(details.causes.len(), 1, "{details:?}");
    let cause = &details.causes[0];
    assert_eq!(
        (
            cause.reason.as_str(),
            cause.field.as_str(),
            cause.message.as_str()
        ),
        (
            "FieldValueTooLong",
            "metadata.annotations",
            "Too long: may not be more than 262144 bytes"
        )
    );
    let after = fetch(&api).await;
    assert_eq!(rv(&after), rv(&before), "a refused write changes nothing");

    // Exactly at the limit: accepted.
    let written = api
        .patch("minecraft", &PatchParams::default(), &patch(fill))
        .await
        .expect("at the limit is accepted");
    assert_eq!(
        annotation_bytes(written.metadata.annotations.as_ref().expect("annotations")),
        LIMIT
    );
}

/// A label value over 63 characters, and an annotation key that is no
/// qualified name: 422 at `metadata.labels` / `metadata.annotations`.
#[tokio::test]
async fn kube_rs_gets_422_for_long_label_values_and_bad_annotation_keys() {
    let server = Server::start(&["--in-memory"]);
    let api = seeded(&server).await;
    let written = fetch(&api).await;
    let long_label = api
        .patch(
            "minecraft",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"version": "v".repeat(64)}}})),
        )
        .await;
    let Err(kube::Error::Api(status)) = long_label else {
        panic!("a 64-character label value must be refused: {long_label:?}");
    };
    assert_eq!(status.code, 422);
    let cause = &status.details.expect("details").causes[0];
    assert_eq!(cause.field, "metadata.labels");
    assert!(
        cause
            .message
            .ends_with(": must be no more than 63 characters"),
        "{}",
        cause.message
    );
    let bad_key = api
        .patch(
            "minecraft",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {"not a key": "x"}}})),
        )
        .await;
    let Err(kube::Error::Api(status)) = bad_key else {
        panic!("an annotation key with spaces must be refused: {bad_key:?}");
    };
    assert_eq!(status.code, 422);
    assert!(
        status.message.contains(
            "metadata.annotations: Invalid value: \"not a key\": name part must consist of alphanumeric characters"
        ),
        "{}",
        status.message
    );
    // None of the refused writes landed.
    assert_eq!(rv(&fetch(&api).await), rv(&written));
}
