//! Everything that speaks Argo Workflows: the executor [`plugin`] endpoint
//! and its wire types, the local [`runner`], [`lint`] and the plugin's
//! [`packaging`] as an ExecutorPlugin ConfigMap.

pub mod lint;
pub mod packaging;
pub mod plugin;
pub mod runner;
