//! TLS for the API server when it is protected by a token: a private CA and
//! a server certificate signed by it (for localhost, the loopback addresses
//! and the listen address), generated once and kept in the data directory so
//! that kubeconfigs stay valid across restarts. kubectl does not send bearer
//! tokens over plain HTTP, and a token should never cross a network in clear.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, SanType};

/// PEM-encoded CA certificate, server certificate and server key.
#[derive(Debug, Clone)]
pub struct TlsMaterial {
    /// The CA that signed the server certificate (goes into kubeconfigs).
    pub ca_pem: String,
    /// The server certificate.
    pub cert_pem: String,
    /// The server's private key.
    pub key_pem: String,
}

/// Generating or storing the certificate failed.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// Certificate generation failed.
    #[error("cannot generate the API server certificate: {0}")]
    Generate(#[from] rcgen::Error),
    /// Reading or writing the files failed.
    #[error("cannot read or write the API server certificate in {path}: {source}")]
    Io {
        /// The folder.
        path: String,
        /// Why.
        source: std::io::Error,
    },
}

const FILES: [&str; 3] = ["ca.crt", "tls.crt", "tls.key"];

fn generate(listen: SocketAddr) -> Result<TlsMaterial, rcgen::Error> {
    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, "gameops-ca");
    let ca = rcgen::CertifiedIssuer::self_signed(ca, ca_key)?;

    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(vec!["localhost".to_owned()])?;
    params
        .distinguished_name
        .push(DnType::CommonName, "gameops-apiserver");
    let mut ips = vec![
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(Ipv6Addr::LOCALHOST),
    ];
    if !listen.ip().is_unspecified() && !ips.contains(&listen.ip()) {
        ips.push(listen.ip());
    }
    params
        .subject_alt_names
        .extend(ips.into_iter().map(SanType::IpAddress));
    let cert = params.signed_by(&key, &ca)?;
    Ok(TlsMaterial {
        ca_pem: ca.pem(),
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// The certificate for `listen`: read from `dir` when present there,
/// otherwise generated (and stored in `dir`, if given).
pub fn load_or_create(dir: Option<&Path>, listen: SocketAddr) -> Result<TlsMaterial, TlsError> {
    let io = |path: &Path| {
        let path = path.display().to_string();
        move |source| TlsError::Io { path, source }
    };
    if let Some(dir) = dir
        && FILES.iter().all(|f| dir.join(f).exists())
    {
        let read = |f: &str| std::fs::read_to_string(dir.join(f)).map_err(io(dir));
        return Ok(TlsMaterial {
            ca_pem: read(FILES[0])?,
            cert_pem: read(FILES[1])?,
            key_pem: read(FILES[2])?,
        });
    }
    let material = generate(listen)?;
    if let Some(dir) = dir {
        crate::cluster::private_dir(dir).map_err(io(dir))?;
        for (file, text) in
            FILES
                .iter()
                .zip([&material.ca_pem, &material.cert_pem, &material.key_pem])
        {
            crate::cluster::kubeconfig::write(&dir.join(file), text).map_err(io(dir))?;
        }
    }
    Ok(material)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_once_then_reused() {
        let dir = tempfile::tempdir().unwrap();
        let addr: SocketAddr = "127.0.0.1:6443".parse().unwrap();
        let first = load_or_create(Some(dir.path()), addr).unwrap();
        assert!(first.ca_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(first.key_pem.contains("PRIVATE KEY"));
        let again = load_or_create(Some(dir.path()), addr).unwrap();
        assert_eq!(first.cert_pem, again.cert_pem);
        let fresh = load_or_create(None, addr).unwrap();
        assert_ne!(first.cert_pem, fresh.cert_pem);
    }
}
