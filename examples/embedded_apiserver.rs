//! The embedded Kubernetes-compatible API server, with its fleet, in ten
//! lines: `cargo run --example embedded_apiserver`, then in another terminal
//! `KUBECONFIG=example-kubeconfig kubectl get gss,gs`.

use gameops::cli::serve::{self, ServeOptions};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let options = ServeOptions {
        in_memory: true,
        kubeconfig_out: Some("example-kubeconfig".into()),
        ..ServeOptions::default()
    };
    let running = serve::start(&options).await?;
    println!("API server on {}; Ctrl-C stops it", running.api_addr);
    running.serve().await?;
    Ok(())
}
