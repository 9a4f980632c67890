//! Kubeconfig files that point kubectl and kube-rs at the embedded API
//! server: one cluster, user and context per served cluster.

use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;

use serde_json::json;

/// The server URL of cluster `name`; the first cluster is also at the root,
/// but every context uses the `/clusters/NAME` form so that they stay
/// distinct. A wildcard listen address is reached over loopback.
pub fn server_url(addr: SocketAddr, name: &str, tls: bool) -> String {
    let mut addr = addr;
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let scheme = if tls { "https" } else { "http" };
    format!("{scheme}://{addr}/clusters/{name}")
}

/// How clients authenticate and verify the server: a bearer token and the
/// CA (PEM) of the server's certificate.
#[derive(Debug, Clone, Copy, Default)]
pub struct Credentials<'a> {
    /// The bearer token.
    pub token: Option<&'a str>,
    /// The CA certificate, when the server speaks TLS.
    pub ca_pem: Option<&'a str>,
}

/// Renders the kubeconfig (YAML) for `clusters`; the first is current.
pub fn render(addr: SocketAddr, clusters: &[String], credentials: Credentials<'_>) -> String {
    use base64::Engine;
    let user = match credentials.token {
        Some(t) => json!({"token": t}),
        None => json!({}),
    };
    let tls = credentials.ca_pem.is_some();
    let cluster = |c: &String| {
        let mut entry = json!({"server": server_url(addr, c, tls)});
        if let Some(ca) = credentials.ca_pem {
            entry["certificate-authority-data"] =
                json!(base64::engine::general_purpose::STANDARD.encode(ca));
        }
        json!({"name": c, "cluster": entry})
    };
    let config = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "preferences": {},
        "clusters": clusters.iter().map(cluster).collect::<Vec<_>>(),
        "users": [{"name": "gameops", "user": user}],
        "contexts": clusters.iter().map(|c| json!({"name": c, "context": {"cluster": c, "user": "gameops", "namespace": "default"}})).collect::<Vec<_>>(),
        "current-context": clusters.first(),
    });
    serde_yaml_ng::to_string(&config).unwrap_or_default()
}

/// A kube-rs client configuration for cluster `name` of a server at `addr`:
/// the same thing a kubeconfig written by [`render`] gives, without a file.
pub async fn client_config(
    addr: SocketAddr,
    name: &str,
    credentials: Credentials<'_>,
) -> Result<kube::Config, kube::config::KubeconfigError> {
    let text = render(addr, &[name.to_owned()], credentials);
    let kubeconfig = kube::config::Kubeconfig::from_yaml(&text)?;
    kube::Config::from_custom_kubeconfig(kubeconfig, &kube::config::KubeConfigOptions::default())
        .await
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
        let credentials = Credentials {
            token: Some("s3cret"),
            ca_pem: Some("PEM"),
        };
        let text = render(addr, &["eu".into(), "us".into()], credentials);
        let v: serde_json::Value = serde_yaml_ng::from_str(&text).unwrap();
        assert_eq!(v["current-context"], "eu");
        assert_eq!(
            v["clusters"][1]["cluster"]["server"],
            "https://127.0.0.1:6443/clusters/us"
        );
        assert_eq!(
            v["clusters"][1]["cluster"]["certificate-authority-data"],
            "UEVN"
        );
        assert_eq!(v["users"][0]["user"]["token"], "s3cret");
        assert_eq!(v["contexts"][1]["context"]["cluster"], "us");
        let plain = render(
            "0.0.0.0:80".parse().unwrap(),
            &["a".into()],
            Credentials::default(),
        );
        assert!(plain.contains("server: http://127.0.0.1:80/clusters/a"));
    }
}
