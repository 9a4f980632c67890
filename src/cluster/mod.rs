//! The embedded Kubernetes: versioned object storage ([`store`]), the
//! Kubernetes-compatible API server over it ([`apiserver`]), and the
//! kubeconfig and TLS material that reach it.

pub mod apiserver;
pub mod kubeconfig;
pub mod store;
pub mod tls;
