//! One module per subcommand: the only place that wires the parts together.

pub mod demo;
pub mod plugin;
pub mod serve;
