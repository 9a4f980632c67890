//! Kubeconfig files that point kubectl and kube-rs at the embedded API
//! server: one cluster, user and context per served cluster.

use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;

use serde_json::json;

/// The server URL of cluster `name`; the first cluster is also at the root,
/// but every context uses the `/clusters/NAME` form so that they stay
/// distinct.
pub fn server_url(addr: SocketAddr, name: &str) -> String {
    format!("http://{addr}/clusters/{name}")
}

/// Renders the kubeconfig (YAML) for `clusters`; the first is current.
pub fn render(addr: SocketAddr, clusters: &[String], token: Option<&str>) -> String {
    let user = match token {
        Some(t) => json!({"token": t}),
        None => json!({}),
    };
    let config = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "preferences": {},
        "clusters": clusters.iter().map(|c| json!({"name": c, "cluster": {"server": server_url(addr, c)}})).collect::<Vec<_>>(),
        "users": [{"name": "gameops", "user": user}],
        "contexts": clusters.iter().map(|c| json!({"name": c, "context": {"cluster": c, "user": "gameops", "namespace": "default"}})).collect::<Vec<_>>(),
        "current-context": clusters.first(),
    });
    serde_yaml_ng::to_string(&config).unwrap_or_default()
}

/// Writes `text` to `path` atomically (temporary file, then rename), readable
/// only by its owner since it may hold a token.
pub fn write(path: &Path, text: &str) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(text.as_bytes())?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_context_per_cluster() {
        let addr: SocketAddr = "127.0.0.1:6443".parse().unwrap();
        let text = render(addr, &["eu".into(), "us".into()], Some("s3cret"));
        let v: serde_json::Value = serde_yaml_ng::from_str(&text).unwrap();
        assert_eq!(v["current-context"], "eu");
        assert_eq!(
            v["clusters"][1]["cluster"]["server"],
            "http://127.0.0.1:6443/clusters/us"
        );
        assert_eq!(v["users"][0]["user"]["token"], "s3cret");
        assert_eq!(v["contexts"][1]["context"]["cluster"], "us");
    }
}
