//! The embedded fleet, talking to its cluster only through `kube::Api`: the
//! GameServerSet [`controller`], the [`simulator`] (kubelet, OKG and players
//! stand-in) and the [`allocator`].

pub mod allocator;
pub mod controller;
pub mod simulator;
