//! gameops: seamless releases of session-based game servers.
//!
//! The library behind the `gameops` binary. Read `ARCHITECTURE.md` first;
//! the folders carry the architecture, and dependencies point down:
//!
//! - [`cli`]: one module per subcommand, the only place that wires parts together;
//! - [`argo`], [`registry`], [`fleet`], [`cluster`], [`ops`]: the parts;
//! - [`informer`], [`http`], [`metrics`], [`api`]: what the parts share.

pub mod api;
pub mod argo;
pub mod cli;
pub mod cluster;
pub mod fleet;
pub mod http;
pub mod informer;
pub mod metrics;
pub mod ops;
pub mod registry;
