//! Shared by the benchmarks: latency samples and their percentiles.
#![allow(dead_code)] // each benchmark uses a different part

use std::time::Duration;

/// The test suite's registry harness (docker-registry), shared rather than copied.
#[path = "../../tests/common/registry.rs"]
pub mod registry;

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// Milliseconds, as the result tables print them.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Sorted-sample percentile (nearest rank).
pub fn pct(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Latency samples, sorted once.
pub struct Lat {
    /// The samples, shortest first.
    pub sorted: Vec<Duration>,
}

impl Lat {
    /// Sorts `samples`.
    pub fn new(mut samples: Vec<Duration>) -> Self {
        samples.sort_unstable();
        Self { sorted: samples }
    }
    /// Median, in ms.
    pub fn p50(&self) -> f64 {
        ms(pct(&self.sorted, 50.0))
    }
    /// 99th percentile, in ms.
    pub fn p99(&self) -> f64 {
        ms(pct(&self.sorted, 99.0))
    }
    /// Maximum, in ms.
    pub fn max(&self) -> f64 {
        ms(self.sorted.last().copied().unwrap_or_default())
    }
}

/// A client for the server of `kubeconfig` (its first cluster and user:
/// the CA, and a client certificate, as scripts/real-stack writes them);
/// the server's URL. `idle`: connections kept per host.
pub fn tls_client(kubeconfig: &std::path::Path, idle: usize) -> (String, reqwest::Client) {
    use base64::Engine as _;
    let text = std::fs::read_to_string(kubeconfig).expect("the kubeconfig");
    let config: serde_json::Value = serde_yaml_ng::from_str(&text).expect("kubeconfig YAML");
    let data = |v: &serde_json::Value| {
        base64::engine::general_purpose::STANDARD
            .decode(v.as_str().expect("base64 data"))
            .expect("base64")
    };
    let cluster = &config["clusters"][0]["cluster"];
    let user = &config["users"][0]["user"];
    let ca = reqwest::Certificate::from_pem(&data(&cluster["certificate-authority-data"]))
        .expect("the CA");
    let mut pem = data(&user["client-key-data"]);
    pem.extend(data(&user["client-certificate-data"]));
    let identity = reqwest::Identity::from_pem(&pem).expect("the client certificate");
    // HTTP/1.1, as kube-rs speaks it (over
    // HTTP/2, kube-apiserver's Go server answers a burst of concurrent
    // streams with GOAWAY "too_many_internal_resets").
    let client = reqwest::Client::builder()
        .no_proxy()
        .http1_only()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(idle)
        .add_root_certificate(ca)
        .identity(identity)
        .build()
        .expect("client");
    let base = cluster["server"].as_str().expect("a server").to_owned();
    (base, client)
}
