//! The README's main command blocks, run as a newcomer would paste them
//! (`bash -e`, in an empty directory, with the release binary `gameops` on
//! the PATH): the demo, the embedded server in a first terminal, the
//! kubectl block and a release with `gameops run` in a second, and the
//! plugin's curl example. A block is picked by the `<!-- README test: NAME
//! -->` line above it, so the README stays true.

use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const README: &str = include_str!("../README.md");

/// The ```sh block under `<!-- README test: NAME ...-->`.
fn block(name: &str) -> String {
    let marker = format!("<!-- README test: {name}");
    let at = README
        .find(&marker)
        .unwrap_or_else(|| panic!("README has no block marked {marker:?}"));
    let rest = &README[at..];
    let start = rest
        .find("```sh\n")
        .expect("a ```sh block follows the marker")
        + 6;
    let end = rest[start..].find("\n```").expect("the block ends") + start;
    rest[start..end].to_owned()
}

/// `bash -e` running `script` in `dir` with `gameops` on the PATH.
fn bash(dir: &Path, script: &str) -> Command {
    let bin = Path::new(env!("CARGO_BIN_EXE_gameops"))
        .parent()
        .expect("the binary's folder")
        .to_owned();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut cmd = Command::new("bash");
    cmd.args(["-e", "-o", "pipefail", "-c", script])
        .current_dir(dir)
        .env("PATH", path)
        .env_remove("KUBECONFIG")
        .env_remove("GAMEOPS_CONFIG")
        .env_remove("RUST_LOG");
    cmd
}

fn run(dir: &Path, name: &str) -> String {
    let out: Output = bash(dir, &block(name)).output().expect("bash starts");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "README block {name:?} failed:\n{text}"
    );
    text
}

/// A block that runs until stopped (the first terminal), stopped with its
/// whole process group.
struct Background(Child);

impl Drop for Background {
    fn drop(&mut self) {
        let group = format!("-{}", self.0.id());
        let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
        let _ = self.0.wait();
    }
}

fn listening(port: u16) -> bool {
    TcpStream::connect(("127.0.0.1", port)).is_ok()
}

#[test]
fn the_demo_block_ends_in_the_table_it_shows() {
    let dir = tempfile::tempdir().expect("dir");
    let out = run(dir.path(), "demo");
    for row in [
        "minecraft-0   Ready   Allocated         0    0",
        "minecraft-1   Ready   WaitToBeDeleted   0    0",
        "minecraft-5   Ready   None              0    0",
    ] {
        assert!(out.contains(row), "{out}");
    }
    assert!(out.contains("seamless-release Succeeded"), "{out}");
}

#[test]
fn the_server_kubectl_release_and_plugin_blocks_work_as_pasted() {
    // The README's ports: nothing else may hold them.
    for port in [6443, 4355, 4356] {
        assert!(
            !listening(port),
            "port {port} is taken: the README's blocks use it; stop what listens there"
        );
    }
    let dir = tempfile::tempdir().expect("dir");
    let mut first = bash(dir.path(), &block("serve (runs until stopped)"));
    first
        .process_group(0)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let _serve = Background(first.spawn().expect("serve starts"));
    let deadline = Instant::now() + Duration::from_secs(30);
    while !(listening(6443) && listening(4355) && dir.path().join("kubeconfig").exists()) {
        assert!(Instant::now() < deadline, "gameops serve never listened");
        std::thread::sleep(Duration::from_millis(100));
    }

    let out = run(dir.path(), "kubectl");
    assert!(
        out.contains("gameserverset.game.kruise.io/minecraft created"),
        "{out}"
    );
    assert!(
        out.contains("gameserverset.game.kruise.io/minecraft condition met"),
        "{out}"
    );
    assert!(out.contains("minecraft-5"), "{out}");
    assert!(out.contains("gameops_gameservers{"), "{out}");

    let out = run(dir.path(), "release");
    assert!(
        out.contains("Using the WorkflowTemplates built into gameops"),
        "{out}"
    );
    assert!(out.contains("seamless-release Succeeded"), "{out}");
    assert!(out.contains("Lease: free"), "{out}");
    assert!(
        out.contains("registry.cn-hangzhou.aliyuncs.com/acs/minecraft-demo:1.12.2 -> registry.cn-hangzhou.aliyuncs.com/acs/minecraft-demo:1.12.2-new"),
        "{out}"
    );
    assert!(out.contains("Succeeded"), "{out}");

    let out = run(dir.path(), "plugin");
    assert!(out.contains(r#""phase":"Succeeded""#), "{out}");
    assert!(out.contains("minecraft"), "{out}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while listening(4356) {
        assert!(Instant::now() < deadline, "kill %1 did not stop the plugin");
        std::thread::sleep(Duration::from_millis(100));
    }
}
