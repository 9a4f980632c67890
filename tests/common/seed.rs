//! Seed 001's own check, read from the seed at test time so it runs
//! verbatim: the `check-pods-ready` script (kubectl and jq over the pods of
//! `minecraft` in `default`).

use std::path::Path;
use std::process::Command;

/// The image seed 001 releases.
pub const NEW_IMAGE: &str = "registry.cn-hangzhou.aliyuncs.com/acs/minecraft-demo:1.12.2-new";
/// The image seed 001 starts from.
pub const OLD_IMAGE: &str = "registry.cn-hangzhou.aliyuncs.com/acs/minecraft-demo:1.12.2";

/// The `source` of the seed's `check-pods-ready` template, unchanged.
pub fn check_pods_ready_script() -> String {
    let seed = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/seeds"))
        .expect("the seeds")
        .filter_map(Result::ok)
        .find(|e| e.file_name().to_string_lossy().starts_with("001_"))
        .expect("seed 001");
    let text = std::fs::read_to_string(seed.path()).expect("seed 001 reads");
    let start = text
        .find("- name: check-pods-ready\n      retryStrategy")
        .expect("the template");
    let source = &text[start..];
    let body = &source[source.find("source: |\n").expect("its source") + "source: |\n".len()..];
    let indent = "          ";
    body.lines()
        .take_while(|l| l.starts_with(indent) || l.trim().is_empty())
        .map(|l| l.strip_prefix(indent).unwrap_or(l))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Runs the script against `kubeconfig` (kubectl's cache under `home`):
/// whether it succeeded, and what it printed.
pub fn check_pods_ready(kubeconfig: &Path, home: &Path) -> (bool, String) {
    let out = Command::new("bash")
        .arg("-c")
        .arg(check_pods_ready_script())
        .env("KUBECONFIG", kubeconfig)
        .env("HOME", home)
        .output()
        .expect("bash runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}
