//! The container image: one name and tag everywhere (the crate version),
//! a Dockerfile that builds what the manifests run, and an image built
//! without a Docker engine (an OCI image assembled from the built binary,
//! as the Dockerfile lays it out), pushed to Debian's `docker-registry`,
//! pulled back and run from its root filesystem.

mod common;

use std::path::Path;
use std::process::Command;

use common::registry::Registry;
use oci_client::client::{ClientConfig, ClientProtocol, Config, ImageLayer};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use serde_json::json;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const IMAGE: &str = concat!("ghcr.io/gameops/gameops:", env!("CARGO_PKG_VERSION"));
const LAYER_MEDIA_TYPE: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const CONFIG_MEDIA_TYPE: &str = "application/vnd.oci.image.config.v1+json";
/// Where the Dockerfile puts the binary, and the user it runs as.
const ENTRYPOINT: &str = "/usr/local/bin/gameops";
const USER: &str = "8737:8737";

/// Every `image:` in `plugin/` and `manifests/` (Flux's examples name the
/// game servers' image, not ours).
fn image_references() -> Vec<(String, String)> {
    fn walk(dir: &Path, out: &mut Vec<(String, String)>) {
        for entry in std::fs::read_dir(dir).expect("a directory").flatten() {
            let path = entry.path();
            if path.is_dir() {
                if !path.ends_with("flux") {
                    walk(&path, out);
                }
            } else if path.extension().is_some_and(|e| e == "yaml") {
                let text = std::fs::read_to_string(&path).expect("text");
                for line in text.lines() {
                    if let Some(image) = line.trim().strip_prefix("image:") {
                        out.push((path.display().to_string(), image.trim().to_owned()));
                    }
                }
            }
        }
    }
    let mut out = Vec::new();
    walk(&Path::new(ROOT).join("plugin"), &mut out);
    walk(&Path::new(ROOT).join("manifests"), &mut out);
    out
}

#[test]
fn every_image_reference_names_the_crate_version() {
    let references = image_references();
    assert!(references.len() >= 2, "{references:?}");
    for (file, image) in &references {
        assert_eq!(image, IMAGE, "{file}");
    }
    // The packaged ConfigMap carries it too.
    let configmap = std::fs::read_to_string(
        Path::new(ROOT).join("plugin/gameops-executor-plugin-configmap.yaml"),
    )
    .expect("the ConfigMap");
    assert!(
        configmap.contains(&format!("image: {IMAGE}")),
        "{configmap}"
    );
}

#[test]
fn the_dockerfile_builds_what_the_manifests_run() {
    let dockerfile =
        std::fs::read_to_string(Path::new(ROOT).join("Dockerfile")).expect("Dockerfile");
    assert!(
        dockerfile.contains("cargo build --locked --release"),
        "{dockerfile}"
    );
    assert!(
        dockerfile.contains(&format!("ENTRYPOINT [\"{ENTRYPOINT}\"]")),
        "{dockerfile}"
    );
    assert!(dockerfile.contains(&format!("USER {USER}")), "{dockerfile}");
    // The uid and gid the manifests' securityContext runs it as.
    for file in ["plugin/plugin.yaml", "manifests/gameops/deployment.yaml"] {
        let text = std::fs::read_to_string(Path::new(ROOT).join(file)).expect(file);
        assert!(
            text.contains("runAsUser: 8737") && text.contains("runAsGroup: 8737"),
            "{file}"
        );
    }
}

/// The image's one layer: `usr/local/bin/gameops`, as the Dockerfile
/// copies it (the test binary stripped of debug information, to keep the
/// push small), gzipped; and the sha256 of the uncompressed tar.
fn layer(dir: &Path) -> (Vec<u8>, String) {
    let root = dir.join("rootfs");
    std::fs::create_dir_all(root.join("usr/local/bin")).expect("dirs");
    let binary = root.join("usr/local/bin/gameops");
    let ok = Command::new("strip")
        .arg("--strip-debug")
        .arg(env!("CARGO_BIN_EXE_gameops"))
        .arg("-o")
        .arg(&binary)
        .status()
        .expect("strip runs");
    assert!(ok.success());
    let tar = dir.join("layer.tar");
    let ok = Command::new("tar")
        .args(["--owner=0", "--group=0", "--numeric-owner", "-cf"])
        .arg(&tar)
        .arg("-C")
        .arg(&root)
        .arg("usr")
        .status()
        .expect("tar runs");
    assert!(ok.success());
    let diff_id = {
        let out = Command::new("sha256sum")
            .arg(&tar)
            .output()
            .expect("sha256sum");
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .next()
            .expect("a digest")
            .to_owned()
    };
    let ok = Command::new("gzip")
        .args(["-1", "-f"])
        .arg(&tar)
        .status()
        .expect("gzip");
    assert!(ok.success());
    let gz = std::fs::read(dir.join("layer.tar.gz")).expect("the layer");
    (gz, format!("sha256:{diff_id}"))
}

#[tokio::test]
async fn an_image_assembled_from_the_binary_is_pushed_pulled_and_runs() {
    let registry = Registry::start();
    let dir = tempfile::tempdir().expect("dir");
    let (gz, diff_id) = layer(dir.path());
    let config = json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {"Entrypoint": [ENTRYPOINT], "User": USER, "ExposedPorts": {"4355/tcp": {}}},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    });
    let client = Client::new(ClientConfig {
        protocol: ClientProtocol::Http,
        ..Default::default()
    });
    let version = env!("CARGO_PKG_VERSION");
    let reference: Reference = format!("{}/gameops/gameops:{version}", registry.host)
        .parse()
        .expect("a reference");
    client
        .push(
            &reference,
            &[ImageLayer::new(
                gz.clone(),
                LAYER_MEDIA_TYPE.to_owned(),
                None,
            )],
            Config::new(
                config.to_string().into_bytes(),
                CONFIG_MEDIA_TYPE.to_owned(),
                None,
            ),
            &RegistryAuth::Anonymous,
            None,
        )
        .await
        .expect("the push");

    // Pulled back: the same layer, and a config whose entrypoint and user
    // are the Dockerfile's.
    let pulled = client
        .pull(&reference, &RegistryAuth::Anonymous, vec![LAYER_MEDIA_TYPE])
        .await
        .expect("the pull");
    let [only] = pulled.layers.as_slice() else {
        panic!("one layer, got {}", pulled.layers.len());
    };
    assert_eq!(only.data.as_ref(), gz.as_slice());
    let pulled_config: serde_json::Value =
        serde_json::from_slice(&pulled.config.data).expect("config JSON");
    assert_eq!(pulled_config["config"]["Entrypoint"], json!([ENTRYPOINT]));
    assert_eq!(pulled_config["config"]["User"], USER);

    // Run it from the unpacked root filesystem, as a runtime would start
    // the entrypoint.
    let unpacked = dir.path().join("unpacked");
    std::fs::create_dir_all(&unpacked).expect("dir");
    std::fs::write(dir.path().join("pulled.tar.gz"), only.data.as_ref()).expect("write");
    let ok = Command::new("tar")
        .arg("-xzf")
        .arg(dir.path().join("pulled.tar.gz"))
        .arg("-C")
        .arg(&unpacked)
        .status()
        .expect("tar runs");
    assert!(ok.success());
    let entry = unpacked.join(ENTRYPOINT.trim_start_matches('/'));
    let out = Command::new(&entry)
        .arg("--version")
        .output()
        .expect("the entrypoint runs");
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("gameops {version}")
    );
    let crds = Command::new(&entry)
        .arg("crds")
        .output()
        .expect("gameops crds");
    assert!(String::from_utf8_lossy(&crds.stdout).contains("name: gameserversets.game.kruise.io"));
}
