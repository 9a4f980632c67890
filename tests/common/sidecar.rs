//! `gameops plugin`, the sidecar Argo's agent pod runs, started on a free
//! port with its own token file and the kubeconfig a test hands it.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::agent::Agent;
use super::free_port;

/// The token the sidecar requires.
pub const TOKEN: &str = "agent-token-for-tests-0123456789";

/// A running `gameops plugin`.
pub struct Sidecar {
    child: Child,
    /// Where it listens.
    pub port: u16,
    dir: tempfile::TempDir,
}

impl Sidecar {
    /// Starts `gameops plugin` acting on the cluster of `kubeconfig` (its
    /// text), with `extra` arguments, and waits until it is healthy.
    pub fn start(kubeconfig: &str, extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = dir.path().join("kubeconfig");
        std::fs::write(&config, kubeconfig).expect("write kubeconfig");
        let token = dir.path().join("token");
        std::fs::write(&token, TOKEN).expect("write token");
        let port = free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_gameops"))
            .args(["plugin", "--listen"])
            .arg(format!("127.0.0.1:{port}"))
            .arg("--cluster")
            .arg(format!("default={}", config.display()))
            .arg("--token-file")
            .arg(&token)
            .args(extra)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("sidecar.log")).expect("log"))
            .spawn()
            .expect("start gameops plugin");
        let mut sidecar = Self { child, port, dir };
        sidecar.wait_listening();
        sidecar
    }

    /// Waits until it accepts connections (a plain TCP connect: this may
    /// run inside a tokio test, where a blocking HTTP client may not).
    fn wait_listening(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("gameops plugin exited with {status}: {}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("gameops plugin did not start listening: {}", self.log());
    }

    /// What it logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sidecar.log")).unwrap_or_default()
    }

    /// Argo's agent, calling this sidecar.
    pub fn agent(&self) -> Agent {
        Agent::at(self.port, TOKEN)
    }
}

impl Drop for Sidecar {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
