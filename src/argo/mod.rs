//! Everything that speaks Argo Workflows: the executor [`plugin`] endpoint
//! and its wire types, the one typed [`workflow`] model and the one
//! [`expr`]ession module that the local [`runner`] and [`lint`] share (its
//! `when` evaluated by [`govaluate`] and its `{{= ...}}` by [`exprlang`] as
//! Argo's controller does), and
//! the plugin's [`packaging`] as an ExecutorPlugin ConfigMap.

pub mod expr;
pub mod exprlang;
pub mod govaluate;
pub mod lint;
pub mod packaging;
pub mod plugin;
pub mod runner;
pub mod workflow;
