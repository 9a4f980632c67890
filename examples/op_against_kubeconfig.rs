//! One release primitive against whatever cluster your kubeconfig points at,
//! as the executor plugin runs it for Argo: `cargo run --example
//! op_against_kubeconfig -- minecraft` prints the `status` op's outcome for
//! the GameServerSet `minecraft` of the default namespace.

use gameops::argo::plugin::Plugin;
use gameops::ops::{self, Caller};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let set = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "minecraft".into());
    let client = kube::Client::try_default().await?;
    let plugin = Plugin::new(vec![("default".into(), client)]);
    let caller = Caller {
        name: "example".into(),
        namespace: "default".into(),
        uid: "example".into(),
    };
    let args = serde_json::json!({ "gameServerSet": set });
    let outcome = ops::run(&plugin, &caller, "example", "status", &args).await;
    println!("{outcome:?}");
    Ok(())
}
