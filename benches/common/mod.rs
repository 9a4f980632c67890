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
