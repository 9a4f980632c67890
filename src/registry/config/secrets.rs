//! Reading credentials: passwords and tokens inline or from files, and
//! registry logins from a docker `config.json`.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use super::{Credentials, Login, TokenEntry};

/// A secret file's text, without its final line break.
fn read_secret(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path)
        .map(|s| s.trim_end_matches(['\n', '\r']).to_owned())
        .map_err(|e| format!("cannot read {}: {e}", path.display()))
}

/// The username and password of a login (exactly one of password or
/// passwordFile).
pub(super) fn password(secret: &Login) -> Result<(String, String), String> {
    match (&secret.password, &secret.password_file) {
        (Some(p), None) => Ok((secret.username.clone(), p.clone())),
        (None, Some(f)) => Ok((secret.username.clone(), read_secret(f)?)),
        _ => Err("give exactly one of password or passwordFile".into()),
    }
}

/// A token given inline or in a file (exactly one), not empty.
pub(super) fn token(entry: &TokenEntry) -> Result<String, String> {
    let token = match (&entry.token, &entry.token_file) {
        (Some(t), None) => t.clone(),
        (None, Some(f)) => read_secret(f)?,
        _ => return Err("give exactly one of token or tokenFile".into()),
    };
    if token.trim().is_empty() {
        return Err("the token is empty".into());
    }
    Ok(token)
}

/// Credentials for `host` from a docker `config.json`.
pub(super) fn docker_config(path: &Path, host: &str) -> Result<Credentials, String> {
    #[derive(Deserialize)]
    struct File {
        #[serde(default)]
        auths: BTreeMap<String, Entry>,
    }
    #[derive(Deserialize)]
    struct Entry {
        auth: Option<String>,
        username: Option<String>,
        password: Option<String>,
        registrytoken: Option<String>,
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let file: File = serde_json::from_str(&text)
        .map_err(|e| format!("{} is not a docker config.json: {e}", path.display()))?;
    let entry = file
        .auths
        .iter()
        .find(|(k, _)| {
            let k = k
                .trim_start_matches("https://")
                .trim_start_matches("http://");
            k == host || k.split('/').next() == Some(host)
        })
        .map(|(_, e)| e)
        .ok_or_else(|| format!("{} has no auths entry for {host}", path.display()))?;
    if let Some(token) = &entry.registrytoken {
        return Ok(Credentials::Bearer(token.clone()));
    }
    if let (Some(u), Some(p)) = (&entry.username, &entry.password) {
        return Ok(Credentials::Basic(u.clone(), p.clone()));
    }
    if let Some(auth) = &entry.auth {
        use base64::Engine as _;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(auth.trim())
            .map_err(|e| format!("auths.{host}.auth is not base64: {e}"))?;
        let decoded = String::from_utf8(decoded)
            .map_err(|_| format!("auths.{host}.auth is not UTF-8 once decoded"))?;
        let (u, p) = decoded
            .split_once(':')
            .ok_or_else(|| format!("auths.{host}.auth is not base64 of USER:PASSWORD"))?;
        return Ok(Credentials::Basic(u.to_owned(), p.to_owned()));
    }
    Err(format!(
        "auths.{host} in {} has neither auth, username/password nor registrytoken (credential helpers are not supported)",
        path.display()
    ))
}
