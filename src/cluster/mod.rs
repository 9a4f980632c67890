//! The embedded Kubernetes: versioned object storage ([`store`]), the
//! Kubernetes-compatible API server over it ([`apiserver`]), and the
//! kubeconfig and TLS material that reach it.

pub mod apiserver;
pub mod kubeconfig;
pub mod store;
pub mod tls;

/// Creates `dir` (and its parents) and makes it readable by its owner
/// only (0700), as etcd keeps its data directory: it holds the store, the
/// TLS key and the plugin's token.
///
/// # Errors
/// When the directory cannot be created or its mode set.
pub fn private_dir(dir: &std::path::Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// Makes `file` readable and writable by its owner only (0600).
///
/// # Errors
/// When its mode cannot be set.
pub fn private_file(file: &std::path::Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o600))?;
    }
    #[cfg(not(unix))]
    let _ = file;
    Ok(())
}
