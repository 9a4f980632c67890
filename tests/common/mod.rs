//! Shared by the integration tests: starts the real `gameops` binary on free
//! loopback ports with its own data directory, and runs the real `kubectl`
//! (and kube-rs) against it.
#![allow(dead_code)] // each test binary uses a different part of this module

pub mod agent;
pub mod apifront;
pub mod registry;
pub mod schema;
pub mod seed;
pub mod sidecar;

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// A running `gameops serve`.
pub struct Server {
    child: Option<Child>,
    /// Temporary directory holding the data dir, kubeconfig and kubectl cache.
    pub dir: tempfile::TempDir,
    /// The API port.
    pub api_port: u16,
    /// The service port.
    pub service_port: u16,
    extra: Vec<String>,
}

impl Server {
    /// Starts `gameops serve` (the API only: no controller, no simulator,
    /// so tests own every GameServer) with a durable store and `extra` arguments.
    pub fn start(extra: &[&str]) -> Self {
        let mut args = vec!["--no-controller", "--no-simulator"];
        args.extend_from_slice(extra);
        Self::start_fleet(&args)
    }

    /// Starts `gameops serve` with the fleet controller (and simulator) on.
    pub fn start_fleet(extra: &[&str]) -> Self {
        let mut server = Self {
            child: None,
            dir: tempfile::tempdir().expect("temp dir"),
            api_port: free_port(),
            service_port: free_port(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
        };
        // Another test may take a port between free_port() and the bind:
        // then try fresh ports.
        for _ in 0..5 {
            match server.try_spawn() {
                Ok(()) => return server,
                Err(log) if log.contains("cannot listen on") => {
                    server.api_port = free_port();
                    server.service_port = free_port();
                }
                Err(log) => panic!("gameops exited: {log}"),
            }
        }
        panic!("gameops found no free ports: {}", server.log());
    }

    /// The kubeconfig the server writes.
    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.path().join("kubeconfig")
    }

    /// The data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Base URL of the API server (the default cluster, at the root).
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.api_port)
    }

    fn spawn(&mut self) {
        if let Err(log) = self.try_spawn() {
            panic!("gameops exited: {log}");
        }
    }

    /// Starts the binary and waits until it serves; `Err` with its log
    /// when it exits first.
    fn try_spawn(&mut self) -> Result<(), String> {
        let _ = std::fs::remove_file(self.kubeconfig());
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("server.log"))
            .expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_gameops"))
            .args(["serve", "--api-listen"])
            .arg(format!("127.0.0.1:{}", self.api_port))
            .arg("--listen")
            .arg(format!("127.0.0.1:{}", self.service_port))
            .arg("--data-dir")
            .arg(self.data_dir())
            .arg("--kubeconfig-out")
            .arg(self.kubeconfig())
            .args(&self.extra)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start gameops");
        self.child = Some(child);
        self.wait_ready()
    }

    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if self.kubeconfig().exists()
                && self.data_dir().join("plugin-token").exists()
                && TcpStream::connect(("127.0.0.1", self.api_port)).is_ok()
            {
                return Ok(());
            }
            if let Some(Some(status)) = self.child.as_mut().map(|c| c.try_wait().ok().flatten()) {
                return Err(format!("exit {status}: {}", self.log()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("gameops did not become ready: {}", self.log());
    }

    /// What the server logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// Kills the server with SIGKILL (no chance to flush anything).
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same ports and data directory.
    pub fn restart(&mut self) {
        self.kill9();
        self.spawn();
    }

    /// Runs kubectl against the server.
    pub fn kubectl(&self, args: &[&str]) -> Output {
        self.kubectl_stdin(args, None)
    }

    /// Runs kubectl with `input` on its standard input.
    pub fn kubectl_stdin(&self, args: &[&str], input: Option<&str>) -> Output {
        kubectl_with(&self.kubeconfig(), self.dir.path(), args, input)
    }

    /// Runs kubectl and returns its stdout, failing the test (with stderr)
    /// if it did not succeed.
    pub fn kubectl_ok(&self, args: &[&str], input: Option<&str>) -> String {
        let out = self.kubectl_stdin(args, input);
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A kube-rs client from the written kubeconfig (current context).
    pub async fn client(&self) -> kube::Client {
        let kubeconfig =
            kube::config::Kubeconfig::read_from(self.kubeconfig()).expect("kubeconfig");
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
            .await
            .expect("client config");
        kube::Client::try_from(config).expect("client")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Runs kubectl with a kubeconfig and a private discovery cache.
pub fn kubectl_with(kubeconfig: &Path, cache: &Path, args: &[&str], input: Option<&str>) -> Output {
    let mut child = Command::new("kubectl")
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .env("KUBECACHEDIR", cache.join("kubecache"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl is installed (/usr/bin/kubectl)");
    if let Some(mut stdin) = child.stdin.take()
        && let Some(input) = input
    {
        stdin
            .write_all(input.as_bytes())
            .expect("write kubectl stdin");
    }
    child.wait_with_output().expect("kubectl output")
}

/// The seed's starting GameServerSet, verbatim from `shared/seeds/001_*`.
pub const MINECRAFT_GSS: &str = "apiVersion: game.kruise.io/v1alpha1
kind: GameServerSet
metadata:
  name: minecraft
  namespace: default
spec:
  replicas: 3
  updateStrategy:
    type: OnDelete
  gameServerTemplate:
    spec:
      containers:
        - image: registry.cn-hangzhou.aliyuncs.com/acs/minecraft-demo:1.12.2
          name: minecraft
";

/// Adler-32 (zlib's, Go's `hash/adler32`: Flux's input ids), written out
/// here so that checks do not trust the code under test.
pub fn adler32(data: &[u8]) -> u32 {
    let (mut a, mut b) = (1u32, 0u32);
    for &byte in data {
        a = (a + u32::from(byte)) % 65521;
        b = (b + a) % 65521;
    }
    (b << 16) | a
}
