//! `gameops demo`, the real binary, as a new user runs it: again and again
//! in the same directory, in memory (nothing left on disk), failing
//! honestly, and with `--keep` stopping on SIGTERM as on Ctrl-C.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn demo(cwd: &Path, tmp: &Path, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gameops"))
        .arg("demo")
        .args(extra)
        .current_dir(cwd)
        .env("TMPDIR", tmp)
        .env("RUST_LOG", "warn")
        .output()
        .expect("gameops demo starts")
}

fn text(o: &Output) -> String {
    format!(
        "status: {}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Every path under `dir`, relative to it.
fn contents(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("read dir").flatten() {
            let path = entry.path();
            out.push(
                path.strip_prefix(dir)
                    .unwrap_or(&path)
                    .display()
                    .to_string(),
            );
            if path.is_dir() {
                stack.push(path);
            }
        }
    }
    out.sort();
    out
}

/// Before the fix the second run read the token file the first one left in
/// `.gameops-demo/data/plugin-token` and every plugin call got 403. The
/// planted stale token makes the first run meet that situation too.
#[test]
fn demo_runs_twice_in_a_row_in_the_same_directory() {
    let cwd = tempfile::tempdir().expect("dir");
    let tmp = tempfile::tempdir().expect("tmp");
    let stale = cwd.path().join(".gameops-demo/data");
    std::fs::create_dir_all(&stale).expect("stale dir");
    std::fs::write(stale.join("plugin-token"), "a-token-from-an-earlier-run").expect("stale");
    for run in 1..=2 {
        let out = demo(cwd.path(), tmp.path(), &[]);
        assert!(out.status.success(), "run {run}: {}", text(&out));
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            stdout.contains("seamless-release Succeeded in"),
            "run {run}: {stdout}"
        );
        assert!(
            stdout.contains("minecraft-5   Ready   None"),
            "run {run}: {stdout}"
        );
    }
}

/// "In memory" means it: no store, no token file, no kubeconfig, nothing in
/// the working directory or the temporary directory once it is done.
#[test]
fn demo_in_memory_writes_nothing_to_disk() {
    let cwd = tempfile::tempdir().expect("dir");
    let tmp = tempfile::tempdir().expect("tmp");
    let out = demo(cwd.path(), tmp.path(), &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(contents(cwd.path()), Vec::<String>::new(), "{}", text(&out));
    assert_eq!(contents(tmp.path()), Vec::<String>::new(), "{}", text(&out));
    // The closing line compares our overhead, not the start-up waits, with the seed.
    let stdout = String::from_utf8_lossy(&out.stdout);
    let closing = stdout
        .lines()
        .find(|l| l.starts_with("seamless-release Succeeded in") && l.contains("overhead"))
        .unwrap_or_else(|| panic!("no closing line: {stdout}"));
    assert!(
        closing.contains("s waiting for the simulated servers to start")
            && closing.contains("s of pipeline overhead")
            && closing.contains("~108 s")
            && closing.contains("x faster"),
        "{closing}"
    );
}

/// A `seamless-release` whose only step cannot succeed: servers of an
/// image nobody runs, within a second.
const FAILING_RELEASE: &str = r#"apiVersion: argoproj.io/v1alpha1
kind: WorkflowTemplate
metadata:
  name: seamless-release
spec:
  entrypoint: release
  arguments:
    parameters:
      - name: image
      - name: keepSurge
        value: "false"
  templates:
    - name: release
      steps:
        - - name: wait-ready
            template: wait-ready
    - name: wait-ready
      plugin:
        gameops:
          waitReady:
            gameServerSet: minecraft
            image: "{{workflow.parameters.image}}"
            count: "3"
            timeoutSeconds: "1"
"#;

#[test]
fn a_failed_demo_prints_no_speedup() {
    let cwd = tempfile::tempdir().expect("dir");
    let tmp = tempfile::tempdir().expect("tmp");
    let templates = tempfile::tempdir().expect("templates");
    std::fs::write(
        templates.path().join("seamless-release.yaml"),
        FAILING_RELEASE,
    )
    .expect("template");
    let dir = templates.path().to_string_lossy().into_owned();
    let out = demo(cwd.path(), tmp.path(), &["--templates", &dir]);
    assert!(!out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("seamless-release Failed in")
                && l.ends_with("s of it waiting for servers to start)")),
        "{}",
        text(&out)
    );
    assert!(!stdout.contains("faster"), "{}", text(&out));
    assert!(!stdout.contains("108"), "{}", text(&out));
}

#[test]
fn demo_keep_stops_on_sigterm() {
    let cwd = tempfile::tempdir().expect("dir");
    let tmp = tempfile::tempdir().expect("tmp");
    let mut child = Command::new(env!("CARGO_BIN_EXE_gameops"))
        .args(["demo", "--keep"])
        .current_dir(cwd.path())
        .env("TMPDIR", tmp.path())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("gameops demo --keep starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let look = loop {
        match lines.next() {
            Some(Ok(line)) if line.starts_with("look around: KUBECONFIG=") => break line,
            Some(Ok(_)) => {}
            other => {
                let _ = child.kill();
                panic!("the demo ended before serving: {other:?}");
            }
        }
    };
    let kubeconfig = cwd.path().join(".gameops-demo/kubeconfig");
    assert!(
        look.contains(".gameops-demo/kubeconfig") && kubeconfig.exists(),
        "{look}"
    );
    // SIGTERM right after the report, as a supervisor (or `kill`) sends it.
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("gameops demo --keep did not stop within 15 s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        status.success(),
        "SIGTERM stops it cleanly, as Ctrl-C does: {status}"
    );
    assert!(
        !kubeconfig.exists(),
        "the kubeconfig of a stopped demo is removed"
    );
    assert_eq!(contents(cwd.path()), Vec::<String>::new());
}
