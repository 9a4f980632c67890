//! `gameops.yaml` as written: the serde types, strict (unknown keys are
//! errors), before [`super::Config`] checks them.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

use crate::registry::filter::Filter;

/// The file as written.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConfigFile {
    /// Registries with their auth; a registry not listed is anonymous over HTTPS.
    #[serde(default)]
    pub registries: Vec<RegistryEntry>,
    /// Environment name => what it runs.
    #[serde(default)]
    pub environments: BTreeMap<String, EnvironmentEntry>,
    /// Regexes (whole-tag matches) of tags promotion refuses to move.
    #[serde(default)]
    pub protected_tags: Vec<String>,
    /// The Flux input provider endpoint.
    #[serde(default)]
    pub flux: FluxEntry,
}

/// One registry.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RegistryEntry {
    /// `host[:port]` as in image references.
    pub host: String,
    /// Plain HTTP (only for registries you mark so).
    #[serde(default)]
    pub insecure: bool,
    /// How to authenticate; absent: anonymous (with the token flow when the
    /// registry asks for it).
    #[serde(default)]
    pub auth: Option<AuthEntry>,
}

/// Registry credentials: at most one kind (none: anonymous).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuthEntry {
    /// Username and password: HTTP Basic, or the credentials of the
    /// registry's token flow.
    pub basic: Option<Login>,
    /// A bearer token sent as is.
    pub bearer: Option<TokenEntry>,
    /// A docker `config.json` (`auths.<host>.auth` or username/password).
    pub docker_config: Option<PathBuf>,
}

/// A username and a password, inline or from a file.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Login {
    /// The username.
    pub username: String,
    /// The password, inline.
    pub password: Option<String>,
    /// The password, from this file (trailing newline dropped).
    pub password_file: Option<PathBuf>,
}

/// A token, inline or from a file.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TokenEntry {
    /// The token, inline.
    pub token: Option<String>,
    /// The token, from this file (trailing newline dropped).
    pub token_file: Option<PathBuf>,
}

/// One environment.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EnvironmentEntry {
    /// `host/path` of the image repository (no tag).
    pub repository: String,
    /// Which tags qualify, and in what order.
    #[serde(default)]
    pub filter: Filter,
}

/// The Flux endpoint's settings.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FluxEntry {
    /// What callers must send; absent: no authentication (loopback use).
    pub auth: Option<FluxAuthEntry>,
    /// How long an answer is reused (default 30).
    pub cache_seconds: Option<u64>,
}

/// The Flux endpoint's credentials: a bearer token, or Basic.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FluxAuthEntry {
    /// `Authorization: Bearer <token>` (Flux: secretRef key `token`).
    pub bearer: Option<TokenEntry>,
    /// HTTP Basic (Flux: secretRef keys `username` and `password`).
    pub basic: Option<Login>,
}
