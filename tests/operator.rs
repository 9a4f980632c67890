//! The operator's side, used as an operator would during and after real
//! releases on the embedded fleet: `gameops status` (also `-w`, through a
//! pty and through a pipe), `gameops history`, `gameops unlock`, and Ctrl-C
//! in the middle of `gameops run` followed by the commands it prints.

mod common;

use std::io::Read;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{MINECRAFT_GSS, Server};
use serde_json::{Value, json};

const OLD: &str = "registry.cn-hangzhou.aliyuncs.com/acs/minecraft-demo:1.12.2";
const NEW: &str = "registry.cn-hangzhou.aliyuncs.com/acs/minecraft-demo:1.12.2-new";
const TEMPLATES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/workflow-templates");
const FLEET: &[&str] = &[
    "--in-memory",
    "--sim-startup-ms",
    "300",
    "--sim-jitter-ms",
    "100",
    "--sim-match-secs",
    "600",
];

fn gameops(srv: &Server, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gameops"))
        .args(args)
        .arg("--kubeconfig")
        .arg(srv.kubeconfig())
        .env("RUST_LOG", "warn")
        .output()
        .expect("gameops starts")
}

fn text(o: &Output) -> String {
    format!(
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn stdout(o: &Output) -> String {
    assert!(o.status.success(), "{}", text(o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn status_json(srv: &Server) -> Value {
    serde_json::from_str(&stdout(&gameops(
        srv,
        &["status", "minecraft", "-o", "json"],
    )))
    .expect("status -o json is JSON")
}

/// Polls `status -o json` until `check` holds.
fn status_until(srv: &Server, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let s = status_json(srv);
        if check(&s) {
            return s;
        }
        assert!(Instant::now() < deadline, "never {what}: {s:#}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn ready_on(s: &Value, image: &str) -> u64 {
    s["servers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|g| g["image"] == image && g["state"] == "Ready")
        .map(|g| g["servers"].as_u64().unwrap_or(0))
        .sum()
}

/// `gameops run` of `target` against `srv`'s plugin, not waited for.
fn start_run(srv: &Server, target: &str, params: &[&str]) -> Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gameops"));
    cmd.args(["run", target, "--templates", TEMPLATES, "--plugin"])
        .arg(format!("http://127.0.0.1:{}", srv.service_port))
        .arg("--plugin-token-file")
        .arg(srv.data_dir().join("plugin-token"));
    for p in params {
        cmd.args(["-p", p]);
    }
    cmd.env("KUBECONFIG", srv.kubeconfig())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("gameops run starts")
}

/// A seeded set of 3 Ready servers, one of them in a long match.
fn seeded_with_a_match(srv: &Server) -> String {
    srv.kubectl_ok(&["apply", "-f", "-"], Some(MINECRAFT_GSS));
    status_until(srv, "3 Ready old servers", |s| ready_on(s, OLD) == 3);
    allocate(srv)
}

/// A match on one server of `minecraft`, through the allocator: its name.
fn allocate(srv: &Server) -> String {
    let allocation: Value = reqwest::blocking::Client::new()
        .post(format!("http://127.0.0.1:{}/v1/allocate", srv.service_port))
        .json(&json!({"namespace": "default", "selectors": [{"gameServerSet": "minecraft"}]}))
        .send()
        .expect("allocate")
        .json()
        .expect("json");
    allocation["gameServerName"]
        .as_str()
        .expect("a server")
        .to_owned()
}

fn annotations(srv: &Server) -> Value {
    let out = srv.kubectl_ok(&["get", "gss", "minecraft", "-o", "json"], None);
    let gss: Value = serde_json::from_str(&out).expect("json");
    gss["metadata"]["annotations"].clone()
}

#[test]
#[allow(
    clippy::too_many_lines,
    reason = "one release and its rollback, watched step by step"
)]
fn status_history_and_unlock_follow_a_release_and_its_rollback() {
    let srv = Server::start_fleet(FLEET);
    srv.kubectl_ok(&["apply", "-f", "-"], Some(MINECRAFT_GSS));
    status_until(&srv, "3 Ready old servers", |s| ready_on(s, OLD) == 3);
    let before = stdout(&gameops(&srv, &["status", "minecraft"]));
    assert!(before.contains("Lease: free"), "{before}");
    assert!(before.contains("Last change: none recorded"), "{before}");
    let none = stdout(&gameops(&srv, &["history", "minecraft"]));
    assert!(none.contains("has no recorded image changes"), "{none}");
    // Unlocking a free set, twice: nothing to do, nothing fails.
    for _ in 0..2 {
        let free = stdout(&gameops(&srv, &["unlock", "minecraft"]));
        assert!(free.contains("holds no lease: nothing to free"), "{free}");
    }

    let busy = allocate(&srv);

    // The release waits in its drain for the match on `busy`.
    let release = start_run(
        &srv,
        "seamless-release",
        &[
            &format!("image={NEW}"),
            "drain=true",
            "drainTimeoutSeconds=30",
        ],
    );
    let s = status_until(&srv, "a drain waiting for the match", |s| {
        s["draining"].as_array().is_some_and(|d| !d.is_empty())
    });
    assert_eq!(s["draining"][0]["name"], busy.as_str(), "{s:#}");
    assert_eq!(s["draining"][0]["image"], OLD, "{s:#}");
    assert!(s["draining"][0]["deadline"].is_string(), "{s:#}");
    assert!(
        s["lease"]["workflow"]
            .as_str()
            .is_some_and(|w| w.starts_with("default/seamless-release")),
        "{s:#}"
    );
    assert_eq!(s["in_match"], 1, "{s:#}");
    let shown = stdout(&gameops(&srv, &["status", "minecraft"]));
    assert!(
        shown.contains("Draining: 1 old server still to go"),
        "{shown}"
    );
    assert!(shown.contains(&format!("  {busy}")), "{shown}");
    assert!(shown.contains("Matches: 1 server in a match"), "{shown}");

    // The live holder is refused, and nothing changes.
    let held = annotations(&srv);
    let refused = gameops(&srv, &["unlock", "minecraft"]);
    assert!(!refused.status.success(), "{}", text(&refused));
    let said = text(&refused);
    assert!(
        said.contains("is held by workflow default/seamless-release"),
        "{said}"
    );
    assert!(
        said.contains("not freed") && said.contains("--force"),
        "{said}"
    );
    assert_eq!(
        annotations(&srv)["gameops.io/lease"],
        held["gameops.io/lease"]
    );
    let running = stdout(&gameops(&srv, &["history", "minecraft"]));
    assert!(running.contains("in progress"), "{running}");

    // The drain times out around the match: the release fails and its
    // exit handler records that; the match is untouched.
    let out = release.wait_with_output().expect("run ends");
    assert!(!out.status.success(), "{}", text(&out));
    let rows: Value = serde_json::from_str(&stdout(&gameops(
        &srv,
        &["history", "minecraft", "-o", "json"],
    )))
    .expect("json");
    assert_eq!(rows[0]["kind"], "release", "{rows:#}");
    assert_eq!(rows[0]["from"], OLD, "{rows:#}");
    assert_eq!(rows[0]["to"], NEW, "{rows:#}");
    assert_eq!(rows[0]["outcome"], "Failed", "{rows:#}");
    assert!(rows[0]["seconds"].as_u64().is_some(), "{rows:#}");
    let after = stdout(&gameops(&srv, &["status", "minecraft"]));
    assert!(after.contains("Lease: free"), "{after}");
    assert!(
        after.contains(&format!("Last change: release {OLD} -> {NEW}"))
            && after.contains("Failed after"),
        "{after}"
    );

    // Right after: the rollback example, on the same set.
    let rollback = start_run(&srv, "rollback", &[])
        .wait_with_output()
        .expect("run");
    assert!(rollback.status.success(), "{}", text(&rollback));
    let history = stdout(&gameops(&srv, &["history", "minecraft"]));
    assert_eq!(
        history,
        stdout(&gameops(&srv, &["history", "minecraft"])),
        "the same twice"
    );
    let lines: Vec<&str> = history.lines().collect();
    assert!(lines[0].starts_with("WHEN"), "{history}");
    assert!(
        lines[1].contains("rollback") && lines[1].contains(&format!("{NEW} -> {OLD}")),
        "{history}"
    );
    assert!(lines[1].contains("Succeeded"), "{history}");
    assert!(
        lines[2].contains("release") && lines[2].contains("Failed"),
        "{history}"
    );
    let s = status_json(&srv);
    assert!(s["lease"].is_null(), "{s:#}");
    assert_eq!(s["template_image"], OLD, "{s:#}");
}

#[test]
fn a_stuck_lease_is_freed_only_when_forced_and_concurrent_unlocks_agree() {
    let srv = Server::start(&["--in-memory"]);
    srv.kubectl_ok(&["apply", "-f", "-"], Some(MINECRAFT_GSS));
    let until = jiff::Timestamp::now() + jiff::SignedDuration::from_mins(10);
    let lease = json!({"holder": "u-stuck", "workflow": "default/release-stuck", "until": until});
    let history = json!([{"container": "minecraft", "image": OLD, "at": "2026-12-01T10:00:00Z",
        "to": NEW, "op": "patchImage", "workflow": "default/release-stuck", "uid": "u-stuck"}]);
    srv.kubectl_ok(
        &[
            "annotate",
            "gss",
            "minecraft",
            &format!("gameops.io/lease={lease}"),
            &format!("gameops.io/image-history={history}"),
        ],
        None,
    );
    let before = annotations(&srv);

    // Bad arguments change nothing.
    for args in [["unlock", "nope"], ["status", "nope"], ["history", "nope"]] {
        let out = gameops(&srv, &args);
        assert!(!out.status.success(), "{}", text(&out));
        assert!(
            text(&out).contains("GameServerSet default/nope does not exist"),
            "{}",
            text(&out)
        );
    }
    // Nobody can tell whether the holder runs (no Argo here): refused.
    let refused = gameops(&srv, &["unlock", "minecraft"]);
    assert!(!refused.status.success(), "{}", text(&refused));
    assert!(
        text(&refused).contains("cannot be told here"),
        "{}",
        text(&refused)
    );
    assert!(
        text(&refused).contains("pass --force"),
        "{}",
        text(&refused)
    );
    assert_eq!(annotations(&srv), before, "a refusal changes nothing");

    // Two operators force it at once: both end well, the lease is gone and
    // the stuck release is recorded as unlocked, once.
    let spawn = || {
        Command::new(env!("CARGO_BIN_EXE_gameops"))
            .args(["unlock", "minecraft", "--force", "--kubeconfig"])
            .arg(srv.kubeconfig())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("unlock starts")
    };
    let (a, b) = (spawn(), spawn());
    for out in [
        a.wait_with_output().expect("a"),
        b.wait_with_output().expect("b"),
    ] {
        assert!(out.status.success(), "{}", text(&out));
    }
    let after = annotations(&srv);
    assert!(after.get("gameops.io/lease").is_none(), "{after:#}");
    let rows: Value = serde_json::from_str(&stdout(&gameops(
        &srv,
        &["history", "minecraft", "-o", "json"],
    )))
    .expect("json");
    assert_eq!(rows[0]["outcome"], "Unlocked", "{rows:#}");
}

/// Reads a child's stdout into a shared string as it comes.
fn collect(child: &mut Child) -> Arc<Mutex<String>> {
    let seen = Arc::new(Mutex::new(String::new()));
    let mut out = child.stdout.take().expect("stdout");
    let sink = seen.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = out.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock()
                .expect("lock")
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    seen
}

fn wait_for_text(seen: &Arc<Mutex<String>>, what: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let now = seen.lock().expect("lock").clone();
        if now.contains(what) {
            return now;
        }
        assert!(Instant::now() < deadline, "never saw {what:?} in:\n{now}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn watch_redraws_in_place_on_a_terminal_and_prints_blocks_through_a_pipe() {
    let srv = Server::start(&["--in-memory"]);
    srv.kubectl_ok(&["apply", "-f", "-"], Some(MINECRAFT_GSS));
    let bin = env!("CARGO_BIN_EXE_gameops");
    let kubeconfig = srv.kubeconfig();
    let watch = format!(
        "{bin} status minecraft -w --kubeconfig {}",
        kubeconfig.display()
    );
    // Through a pty (util-linux `script`), and through a pipe.
    let mut tty = Command::new("script")
        .args(["-qfec", &watch, "/dev/null"])
        .stdout(Stdio::piped())
        .stdin(Stdio::piped())
        .spawn()
        .expect("script starts");
    let mut piped = Command::new(bin)
        .args(["status", "minecraft", "-w", "--kubeconfig"])
        .arg(&kubeconfig)
        .stdout(Stdio::piped())
        .spawn()
        .expect("status -w starts");
    let (on_tty, on_pipe) = (collect(&mut tty), collect(&mut piped));
    wait_for_text(&on_tty, "replicas 3");
    wait_for_text(&on_pipe, "replicas 3");
    srv.kubectl_ok(
        &[
            "patch",
            "gss",
            "minecraft",
            "--type",
            "merge",
            "-p",
            r#"{"spec":{"replicas":5}}"#,
        ],
        None,
    );
    let tty_text = wait_for_text(&on_tty, "replicas 5");
    let pipe_text = wait_for_text(&on_pipe, "replicas 5");
    let _ = tty.kill();
    let _ = piped.kill();
    let _ = tty.wait();
    let _ = piped.wait();
    assert!(
        tty_text.matches("\x1b[H\x1b[2J").count() >= 2,
        "redrawn in place on a terminal: {tty_text:?}"
    );
    assert!(
        !pipe_text.contains('\x1b'),
        "no escape codes through a pipe: {pipe_text:?}"
    );
    assert_eq!(
        pipe_text.matches("GameServerSet default/minecraft").count(),
        2,
        "one block per change through a pipe: {pipe_text}"
    );
}

#[test]
#[allow(
    clippy::too_many_lines,
    reason = "the interrupted run, its report and the commands it prints, in order"
)]
fn ctrl_c_during_a_run_says_where_the_set_was_left_and_its_commands_work() {
    let srv = Server::start_fleet(FLEET);
    let busy = seeded_with_a_match(&srv);
    let mut release = start_run(
        &srv,
        "seamless-release",
        &[
            &format!("image={NEW}"),
            "drain=true",
            "drainTimeoutSeconds=600",
        ],
    );
    status_until(&srv, "a drain waiting for the match", |s| {
        s["draining"].as_array().is_some_and(|d| !d.is_empty())
    });
    let pid = release.id().to_string();
    let sent = Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .expect("kill");
    assert!(sent.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    while release.try_wait().expect("wait").is_none() {
        assert!(
            Instant::now() < deadline,
            "gameops run did not stop on Ctrl-C"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = release.wait_with_output().expect("output");
    assert!(!out.status.success(), "{}", text(&out));
    let said = text(&out);
    assert!(
        said.contains("seamless-release was interrupted before it finished"),
        "{said}"
    );
    assert!(
        said.contains("GameServerSet default/minecraft was left like this"),
        "{said}"
    );
    assert!(
        said.contains(&format!("  {busy}")),
        "the server it waited for: {said}"
    );
    assert!(
        said.contains(&format!(
            "gameops run seamless-release -p image={NEW} -p drain=true"
        )),
        "{said}"
    );
    let rollback_line = said
        .lines()
        .find(|l| l.trim_start().starts_with("roll back:"))
        .expect("a roll back command");
    let command = rollback_line
        .trim_start()
        .trim_start_matches("roll back:")
        .trim();
    assert!(
        command.contains("--templates") && command.contains("--plugin http://"),
        "the same way of running: {command}"
    );
    // Follow it as printed, in a shell: unlock, then roll back.
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_gameops"))
        .parent()
        .expect("bin dir")
        .to_owned();
    let rolled = Command::new("bash")
        .args(["-e", "-c", command])
        .env(
            "PATH",
            format!(
                "{}:{}",
                bin.display(),
                std::env::var("PATH").unwrap_or_default()
            ),
        )
        .env("KUBECONFIG", srv.kubeconfig())
        .env("RUST_LOG", "warn")
        .output()
        .expect("bash");
    assert!(rolled.status.success(), "{command}\n{}", text(&rolled));
    let s = status_json(&srv);
    assert_eq!(s["template_image"], OLD, "{s:#}");
    let history = stdout(&gameops(&srv, &["history", "minecraft"]));
    assert!(
        history
            .lines()
            .nth(2)
            .is_some_and(|l| l.contains("Unlocked")),
        "{history}"
    );
}
