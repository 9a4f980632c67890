//! Benchmark of tag resolution (issue #5): the newest stable tag, with its
//! digest, in a repository of 10,000 tags, `gameops resolve` versus what a
//! user scripts today (`skopeo list-tags` piped through the same filter in
//! shell, then `skopeo inspect` for the digest), against the same
//! docker-registry; wall time per run and the registry requests each made
//! (counted from the registry's access log).
//!
//! Run with `cargo bench --bench registry` (needs /usr/bin/docker-registry
//! and /usr/bin/skopeo, both Debian packages).
#![allow(
    clippy::too_many_lines,
    reason = "a scenario or a table reads best top to bottom"
)]

mod common;

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::Lat;
use common::registry::Registry;
use futures::StreamExt;
use gameops::registry::Resolver;
use gameops::registry::config::Config;

const REPO: &str = "game/server";
const TAGS: usize = 10_000;
const RUNS: usize = 7;

/// 9,000 stable `vA.B.C` (newest v9.29.29) and 1,000 release candidates.
fn tag_names() -> Vec<String> {
    let mut tags = Vec::with_capacity(TAGS);
    for a in 0..10 {
        for b in 0..30 {
            for c in 0..30 {
                tags.push(format!("v{a}.{b}.{c}"));
            }
        }
    }
    for i in 0..(TAGS - tags.len()) {
        tags.push(format!("v10.0.{i}-rc.{:07x}", i * 7919));
    }
    tags
}

fn run(cmd: &mut Command) -> (Duration, String) {
    let t = Instant::now();
    let out = cmd.output().expect("command runs");
    let took = t.elapsed();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (took, String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

#[tokio::main]
async fn main() {
    let registry = Registry::start();
    let repository = format!("{}/{REPO}", registry.host);
    let config_text = format!("registries:\n{}", registry.config_entry());
    let config = Config::parse(&config_text, std::path::Path::new("gameops.yaml")).expect("config");
    let resolver = Resolver::new(Arc::new(config)).expect("resolver");
    let client = resolver.client();

    let t = Instant::now();
    client
        .push_image(&repository, "seed", b"bench layer".to_vec())
        .await
        .expect("push");
    let (manifest, media_type, digest) = client
        .manifest(&repository, "seed")
        .await
        .expect("manifest");
    let tags = tag_names();
    let failures = futures::stream::iter(&tags)
        .map(|tag| client.put_manifest(&repository, tag, manifest.clone(), &media_type))
        .buffer_unordered(16)
        .filter(|r| std::future::ready(r.is_err()))
        .count()
        .await;
    assert_eq!(failures, 0);
    println!(
        "pushed 1 image under {} tags in {:.1} s",
        tags.len() + 1,
        t.elapsed().as_secs_f64()
    );

    let dir = tempfile::tempdir().expect("dir");
    let config_path = dir.path().join("gameops.yaml");
    std::fs::write(&config_path, &config_text).expect("config");
    let stable = r"^v?[0-9]+\.[0-9]+\.[0-9]+$";

    // gameops: one process per run, as a user would call it.
    let mut gameops_times = Vec::new();
    let mut gameops_requests = Vec::new();
    for _ in 0..RUNS {
        let before = registry.requests();
        let (took, out) = run(Command::new(env!("CARGO_BIN_EXE_gameops"))
            .args([
                "resolve",
                "--repository",
                &repository,
                "--include-tag",
                stable,
                "--semver",
                ">=0.0.0",
                "--output",
                "json",
                "--config",
            ])
            .arg(&config_path));
        std::thread::sleep(Duration::from_millis(200)); // let the access log flush
        gameops_requests.push(registry.requests() - before);
        gameops_times.push(took);
        let v: serde_json::Value = serde_json::from_str(&out).expect("json");
        assert_eq!(v["tag"], "v9.29.29");
        assert_eq!(v["digest"], digest.as_str());
    }

    // The script a user writes today.
    let script = format!(
        "set -euo pipefail\n\
         tag=$(skopeo list-tags --tls-verify=false docker://{repository} | grep -oE '\"[^\"]+\"' | tr -d '\"' | grep -E '{stable}' | sort -V | tail -1)\n\
         digest=$(skopeo inspect --tls-verify=false --format '{{{{.Digest}}}}' docker://{repository}:$tag)\n\
         echo \"$tag $digest\"\n"
    );
    let mut skopeo_times = Vec::new();
    let mut skopeo_requests = Vec::new();
    for _ in 0..RUNS {
        let before = registry.requests();
        let (took, out) = run(Command::new("bash").args(["-c", &script]));
        std::thread::sleep(Duration::from_millis(200));
        skopeo_requests.push(registry.requests() - before);
        skopeo_times.push(took);
        assert_eq!(out, format!("v9.29.29 {digest}"));
    }

    let g = Lat::new(gameops_times);
    let s = Lat::new(skopeo_times);
    gameops_requests.sort_unstable();
    skopeo_requests.sort_unstable();
    println!(
        "\nnewest stable tag of {} tags, {RUNS} runs each (median; min..max requests)",
        tags.len() + 1
    );
    println!("| Way | p50 | max | registry requests |");
    println!("|---|---:|---:|---:|");
    println!(
        "| gameops resolve | {:.0} ms | {:.0} ms | {} ({}..{}) |",
        g.p50(),
        g.max(),
        gameops_requests[RUNS / 2],
        gameops_requests[0],
        gameops_requests[RUNS - 1]
    );
    println!(
        "| skopeo list-tags + grep + sort -V + skopeo inspect | {:.0} ms | {:.0} ms | {} ({}..{}) |",
        s.p50(),
        s.max(),
        skopeo_requests[RUNS / 2],
        skopeo_requests[0],
        skopeo_requests[RUNS - 1]
    );
    println!("ratio (skopeo / gameops, p50): {:.1}x", s.p50() / g.p50());
    println!(
        "load average: {}",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
}
