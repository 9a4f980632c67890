//! gameops: seamless releases of session-based game servers.
//!
//! The library behind the `gameops` binary: OpenKruiseGame-compatible
//! resource types ([`api`]), their versioned storage ([`store`]) and the
//! embedded Kubernetes-compatible API server over it ([`apiserver`]).

pub mod allocator;
pub mod api;
pub mod apiserver;
pub mod config;
pub mod controller;
pub mod demo;
pub mod flux;
pub mod kubeconfig;
pub mod lint;
pub mod metrics;
pub mod ops;
pub mod packaging;
pub mod plugin;
pub mod registry;
pub mod runner;
pub mod serve;
pub mod sidecar;
pub mod simulator;
pub mod store;
pub mod tls;
