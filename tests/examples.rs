//! The runnable examples, run as a reader would run them: the embedded API
//! server example serves the real kubectl, and the op example reports the
//! `status` of a GameServerSet on the cluster its kubeconfig points at.
//! `cargo test` builds the examples beside the test binaries
//! (`target/<profile>/examples/`); this test runs those builds.

mod common;

use std::fs::File;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{MINECRAFT_GSS, kubectl_with};

/// The built example `name`.
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let profile = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps");
    let path = profile.join("examples").join(name);
    assert!(
        path.exists(),
        "{} is missing: `cargo test` without a target filter builds the examples",
        path.display()
    );
    path
}

/// Kills the example server when the test ends, however it ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What the op example prints for `set`.
fn status_of(kubeconfig: &Path, set: &str) -> String {
    let out = Command::new(example("op_against_kubeconfig"))
        .arg(set)
        .env("KUBECONFIG", kubeconfig)
        .output()
        .expect("run op_against_kubeconfig");
    assert!(
        out.status.success(),
        "op_against_kubeconfig failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_examples_serve_kubectl_and_run_an_op() {
    let dir = tempfile::tempdir().expect("temp dir");
    let log_path = dir.path().join("example.log");
    let log = File::create(&log_path).expect("log file");
    let child = Command::new(example("embedded_apiserver"))
        .current_dir(dir.path())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start embedded_apiserver");
    let mut server = Running(child);
    let kubeconfig = dir.path().join("example-kubeconfig");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !(kubeconfig.exists() && TcpStream::connect(("127.0.0.1", 6443)).is_ok()) {
        if let Ok(Some(status)) = server.0.try_wait() {
            panic!(
                "embedded_apiserver exited ({status}): {}",
                std::fs::read_to_string(&log_path).unwrap_or_default()
            );
        }
        assert!(
            Instant::now() < deadline,
            "embedded_apiserver did not serve"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let kubectl = |args: &[&str], input: Option<&str>| {
        let out = kubectl_with(&kubeconfig, dir.path(), args, input);
        assert!(
            out.status.success(),
            "kubectl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    kubectl(&["apply", "-f", "-"], Some(MINECRAFT_GSS));
    // The example runs the fleet: its controller creates the servers, and
    // the op sees them through the same kubeconfig.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = status_of(&kubeconfig, "minecraft");
        if status.starts_with("Done") && status.contains(r#""total": "3""#) {
            assert!(status.contains("minecraft: 3 servers"), "{status}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the op never saw the set's three servers: {status}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let listed = kubectl(&["get", "gs", "-o", "name"], None);
    assert_eq!(listed.lines().count(), 3, "{listed}");
    // A set that does not exist: the op fails naming it, and changes nothing.
    let missing = status_of(&kubeconfig, "nope");
    assert!(
        missing.starts_with("Failed")
            && missing.contains("GameServerSet default/nope does not exist"),
        "{missing}"
    );
    assert_eq!(kubectl(&["get", "gs", "-o", "name"], None), listed);
}
