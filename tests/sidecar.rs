//! `gameops plugin`, the sidecar Argo's agent calls: the real binary,
//! acting on an embedded fleet through `--cluster NAME=KUBECONFIG`, with
//! the agent's bearer token read from `--token-file`.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{MINECRAFT_GSS, Server, free_port};
use serde_json::{Value, json};

const TOKEN: &str = "agent-token-0123456789";

/// A running `gameops plugin`.
struct Sidecar {
    child: Child,
    port: u16,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Sidecar {
    /// Starts `gameops plugin` with `args` (after --listen); does not wait.
    fn spawn(args: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let log = dir.path().join("sidecar.log");
        let child = Command::new(env!("CARGO_BIN_EXE_gameops"))
            .args(["plugin", "--listen"])
            .arg(format!("127.0.0.1:{port}"))
            .args(args)
            .env("RUST_LOG", "info")
            .env("KUBECONFIG", dir.path().join("no-kubeconfig"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("start gameops plugin");
        Self {
            child,
            port,
            log,
            _dir: dir,
        }
    }

    /// Starts it and waits until `/healthz` answers.
    fn start(args: &[&str]) -> Self {
        let mut sidecar = Self::spawn(args);
        sidecar.wait_healthy(Duration::from_secs(30));
        sidecar
    }

    fn wait_healthy(&mut self, within: Duration) {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(r) = reqwest::blocking::get(self.url("/healthz"))
                && r.status() == 200
            {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("gameops plugin exited with {status}: {}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("gameops plugin did not become healthy: {}", self.log());
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// POSTs `body` to the plugin endpoint with `token`; status and body.
    fn call(&self, token: Option<&str>, body: &Value) -> (u16, String) {
        let mut request = reqwest::blocking::Client::new()
            .post(self.url("/api/v1/template.execute"))
            .header("Content-Type", "application/json")
            .body(body.to_string());
        if let Some(t) = token {
            request = request.bearer_auth(t);
        }
        let r = request.send().expect("the plugin answers");
        let status = r.status().as_u16();
        (status, r.text().unwrap_or_default())
    }

    /// Waits for the process to exit by itself; its status code.
    fn exit_code(&mut self, within: Duration) -> Option<i32> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("gameops plugin is still running: {}", self.log());
    }
}

impl Drop for Sidecar {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn write_token(dir: &Path, token: &str) -> PathBuf {
    let path = dir.join("token");
    std::fs::write(&path, token).expect("write token");
    path
}

/// A kubeconfig for a server nobody needs to reach (the sidecar only
/// connects when a template runs).
fn idle_kubeconfig(dir: &Path) -> String {
    let path = dir.join("kubeconfig");
    let text = gameops::cluster::kubeconfig::render(
        "127.0.0.1:1".parse().expect("address"),
        &["idle".to_owned()],
        Default::default(),
    );
    std::fs::write(&path, text).expect("write kubeconfig");
    path.display().to_string()
}

fn template(plugin: Value) -> Value {
    json!({
        "workflow": {"metadata": {"name": "release-1", "namespace": "default", "uid": "uid-sidecar-1"}},
        "template": {"name": "status", "inputs": {}, "metadata": {},
            "outputs": {"parameters": [{"name": "total", "value": ""}, {"name": "summary", "value": ""}]},
            "plugin": plugin},
    })
}

fn output(reply: &Value, name: &str) -> Option<String> {
    reply["node"]["outputs"]["parameters"]
        .as_array()?
        .iter()
        .find(|p| p["name"] == name)?["value"]
        .as_str()
        .map(str::to_owned)
}

#[test]
fn sidecar_serves_the_plugin_on_a_named_cluster_behind_the_agent_token() {
    let server = Server::start_fleet(&["--in-memory"]);
    let dir = tempfile::tempdir().expect("temp dir");
    let token_file = write_token(dir.path(), &format!("{TOKEN}\n"));
    let cluster = format!("eu={}", server.kubeconfig().display());
    let sidecar = Sidecar::start(&[
        "--cluster",
        &cluster,
        "--token-file",
        &token_file.display().to_string(),
        "--log-format",
        "json",
    ]);

    // Health needs no token.
    for path in ["/healthz", "/readyz"] {
        let r = reqwest::blocking::get(sidecar.url(path)).expect("health");
        assert_eq!(r.status(), 200, "{path}");
    }

    // No token, a wrong token: 403, before the body is even read.
    let other = template(json!({"slack": {"text": "hi"}}));
    assert_eq!(sidecar.call(None, &other).0, 403);
    assert_eq!(sidecar.call(Some("not-the-agent-token"), &other).0, 403);

    // Another plugin's template: 200 {}.
    let (status, body) = sidecar.call(Some(TOKEN), &other);
    assert_eq!((status, body.as_str()), (200, "{}"));

    // A status op on a set created with kubectl, by cluster name and by default.
    server.kubectl_ok(&["apply", "-f", "-"], Some(MINECRAFT_GSS));
    for args in [
        json!({"gameServerSet": "minecraft", "cluster": "eu"}),
        json!({"gameServerSet": "minecraft"}),
    ] {
        let (status, body) =
            sidecar.call(Some(TOKEN), &template(json!({"gameops": {"status": args}})));
        assert_eq!(status, 200, "{body}");
        let reply: Value = serde_json::from_str(&body).expect("JSON reply");
        assert_eq!(reply["node"]["phase"], "Succeeded", "{reply}");
        assert!(output(&reply, "total").is_some(), "{reply}");
        assert!(
            reply["node"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("minecraft")),
            "{reply}"
        );
    }

    // A cluster it does not know: Failed, naming the ones it has.
    let (status, body) = sidecar.call(
        Some(TOKEN),
        &template(json!({"gameops": {"status": {"gameServerSet": "minecraft", "cluster": "us"}}})),
    );
    assert_eq!(status, 200);
    let reply: Value = serde_json::from_str(&body).expect("JSON reply");
    assert_eq!(reply["node"]["phase"], "Failed", "{reply}");
    assert!(
        reply["node"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("eu")),
        "{reply}"
    );

    // --log-format json: every log line is a JSON object.
    let log = sidecar.log();
    assert!(log.contains("serving"), "{log}");
    for line in log.lines().filter(|l| !l.trim().is_empty()) {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(v.is_object(), "{line}");
    }
}

#[test]
fn sidecar_refuses_to_start_without_a_token_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let cluster = format!("eu={}", idle_kubeconfig(dir.path()));
    let missing = dir.path().join("no-such-token").display().to_string();
    let mut sidecar = Sidecar::spawn(&[
        "--cluster",
        &cluster,
        "--token-file",
        &missing,
        "--token-wait-secs",
        "0",
    ]);
    let code = sidecar.exit_code(Duration::from_secs(20));
    assert!(code.is_some_and(|c| c != 0), "exits non-zero: {code:?}");
    let log = sidecar.log();
    assert!(
        log.contains("--token-file")
            && log.contains("--insecure-no-auth")
            && log.contains(&missing),
        "the message names the file and both ways out: {log}"
    );
}

#[test]
fn sidecar_waits_for_the_agent_to_write_the_token() {
    let dir = tempfile::tempdir().expect("temp dir");
    let cluster = format!("eu={}", idle_kubeconfig(dir.path()));
    let token_file = dir.path().join("token");
    let mut sidecar = Sidecar::spawn(&[
        "--cluster",
        &cluster,
        "--token-file",
        &token_file.display().to_string(),
        "--token-wait-secs",
        "30",
    ]);
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        reqwest::blocking::get(sidecar.url("/healthz")).is_err(),
        "not serving before the token exists"
    );
    assert!(
        sidecar.child.try_wait().ok().flatten().is_none(),
        "still waiting"
    );
    let log = sidecar.log();
    assert!(
        log.contains("waiting for the token file")
            && log.contains(&token_file.display().to_string()),
        "it says what it waits for while it waits: {log}"
    );
    write_token(dir.path(), TOKEN);
    sidecar.wait_healthy(Duration::from_secs(20));
    let other = template(json!({"slack": {}}));
    assert_eq!(sidecar.call(None, &other).0, 403);
    assert_eq!(sidecar.call(Some(TOKEN), &other).0, 200);
}

#[test]
fn insecure_no_auth_serves_without_a_token_and_says_so() {
    let dir = tempfile::tempdir().expect("temp dir");
    let cluster = format!("eu={}", idle_kubeconfig(dir.path()));
    let missing = dir.path().join("no-such-token").display().to_string();
    let sidecar = Sidecar::start(&[
        "--cluster",
        &cluster,
        "--token-file",
        &missing,
        "--insecure-no-auth",
    ]);
    let (status, body) = sidecar.call(None, &template(json!({"slack": {}})));
    assert_eq!((status, body.as_str()), (200, "{}"));
    let log = sidecar.log();
    assert!(
        log.contains("WARN") && log.contains("WITHOUT authentication"),
        "{log}"
    );
    assert!(
        !log.contains('\u{1b}'),
        "no colour codes when stderr is not a terminal: {log:?}"
    );
}

#[test]
fn sidecar_rejects_a_malformed_cluster_flag() {
    let dir = tempfile::tempdir().expect("temp dir");
    let token_file = write_token(dir.path(), TOKEN).display().to_string();
    for (cluster, says) in [
        ("eu", "NAME=KUBECONFIG[:CONTEXT]"),
        ("eu=/no/such/kubeconfig", "/no/such/kubeconfig"),
    ] {
        let mut sidecar = Sidecar::spawn(&["--cluster", cluster, "--token-file", &token_file]);
        let code = sidecar.exit_code(Duration::from_secs(20));
        assert!(code.is_some_and(|c| c != 0), "{cluster}: {code:?}");
        let log = sidecar.log();
        assert!(
            log.contains("--cluster") && log.contains(says),
            "{cluster}: {log}"
        );
    }
}

/// The sidecar closes a connection that never finishes its headers after
/// 30 s (hyper's header read timeout), and stops on SIGTERM as a pod
/// stopping sends it, exiting 0.
#[test]
fn half_sent_headers_are_cut_off_and_sigterm_stops_it() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().expect("temp dir");
    let cluster = format!("eu={}", idle_kubeconfig(dir.path()));
    let missing = dir.path().join("no-such-token").display().to_string();
    let mut sidecar = Sidecar::start(&[
        "--cluster",
        &cluster,
        "--token-file",
        &missing,
        "--insecure-no-auth",
    ]);
    let port = sidecar
        .url("")
        .rsplit(':')
        .next()
        .and_then(|p| p.trim_end_matches('/').parse::<u16>().ok())
        .expect("a port");
    let mut tcp = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .expect("write");
    tcp.set_read_timeout(Some(Duration::from_secs(45)))
        .expect("timeout");
    let started = std::time::Instant::now();
    let mut answer = Vec::new();
    let _ = tcp.read_to_end(&mut answer);
    assert!(
        started.elapsed() < Duration::from_secs(44),
        "the half-sent request was cut off"
    );
    let pid = sidecar.child.id().to_string();
    let killed = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(killed.success());
    assert_eq!(sidecar.exit_code(Duration::from_secs(15)), Some(0));
}
