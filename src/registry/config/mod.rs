//! `gameops.yaml` (`--config FILE`): the registries gameops may talk to and
//! how it authenticates to each, the environments (name => repository and
//! tag filter) that `resolveTag`, `gameops resolve` and the Flux endpoint
//! answer for, the tags promotion must never move, and how the Flux
//! endpoint authenticates its callers.
//!
//! ```yaml
//! registries:
//!   - host: registry.example.com
//!     auth: {basic: {username: ci, passwordFile: /etc/gameops/registry-password}}
//!   - host: localhost:5000
//!     insecure: true                       # plain http
//! environments:
//!   develop:    {repository: registry.example.com/game/server, filter: {includeTag: '^v\d+\.\d+\.\d+-rc\.[a-f0-9]+$', limit: 1}}
//!   staging:    {repository: registry.example.com/game/server, filter: {semver: '>=0.0.0', limit: 1}}
//!   production: {repository: registry.example.com/game/server, filter: {includeTag: '^production-latest$'}}
//! protectedTags: ['v\d+\.\d+\.\d+']        # promotion never moves these
//! flux:
//!   auth: {tokenFile: /etc/gameops/flux-token}
//!   cacheSeconds: 30
//! ```
//!
//! Every mistake is a startup error naming the place: the environment and
//! field, the registry, or the unknown key.

mod file;
mod secrets;

pub use file::{
    AuthEntry, ConfigFile, EnvironmentEntry, FluxAuthEntry, FluxEntry, Login, RegistryEntry,
    TokenEntry,
};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use oci_client::Reference;
use regex::Regex;

use crate::registry::filter::{CompiledFilter, Filter};
use secrets::{docker_config, password, token};

/// Registry credentials, read.
#[derive(Clone, PartialEq)]
pub enum Credentials {
    /// None (the token flow may still run, anonymously).
    Anonymous,
    /// Username and password.
    Basic(String, String),
    /// A bearer token.
    Bearer(String),
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Anonymous => f.write_str("Anonymous"),
            Self::Basic(user, _) => write!(f, "Basic({user}, ***)"),
            Self::Bearer(_) => f.write_str("Bearer(***)"),
        }
    }
}

/// One registry, read.
#[derive(Debug, Clone)]
pub struct Registry {
    /// `host[:port]`.
    pub host: String,
    /// Plain HTTP.
    pub insecure: bool,
    /// Credentials.
    pub credentials: Credentials,
}

/// One environment, checked.
#[derive(Debug, Clone)]
pub struct Environment {
    /// Its name.
    pub name: String,
    /// `host/path`.
    pub repository: String,
    /// The filter as written (for messages and `--output json`).
    pub filter: Filter,
    /// The filter, compiled.
    pub compiled: CompiledFilter,
}

/// What the Flux endpoint requires of callers.
#[derive(Clone, PartialEq)]
pub enum FluxAuth {
    /// Nothing.
    None,
    /// This bearer token.
    Bearer(String),
    /// These Basic credentials.
    Basic(String, String),
}

impl std::fmt::Debug for FluxAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::None => f.write_str("None"),
            Self::Basic(user, _) => write!(f, "Basic({user}, ***)"),
            Self::Bearer(_) => f.write_str("Bearer(***)"),
        }
    }
}

/// The whole configuration, checked.
#[derive(Debug, Clone)]
pub struct Config {
    /// Registries by host.
    pub registries: BTreeMap<String, Registry>,
    /// Environments by name.
    pub environments: BTreeMap<String, Environment>,
    /// Tags promotion refuses to move (anchored).
    pub protected_tags: Vec<Regex>,
    /// The Flux endpoint's auth.
    pub flux_auth: FluxAuth,
    /// How long the Flux endpoint reuses an answer.
    pub flux_cache: Duration,
    /// Where it was read from (`--config`'s file, `$GAMEOPS_CONFIG_YAML`);
    /// `None` when none was given.
    pub source: Option<PathBuf>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            registries: BTreeMap::new(),
            environments: BTreeMap::new(),
            protected_tags: Vec::new(),
            flux_auth: FluxAuth::None,
            flux_cache: DEFAULT_FLUX_CACHE,
            source: None,
        }
    }
}

/// How long the Flux endpoint reuses an answer by default.
pub const DEFAULT_FLUX_CACHE: Duration = Duration::from_secs(30);

/// Why the configuration is unusable; each says where.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("cannot read the config {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Not YAML of the expected shape (names the key and line).
    #[error("config {path}: {message}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// serde's message, with the location.
        message: String,
    },
    /// A value that fails its check.
    #[error("config {path}: {place}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// e.g. `environments.staging.filter.semver`.
        place: String,
        /// What is wrong and what to do.
        message: String,
    },
}

/// `repository` (`host/path`, no tag or digest) as an image reference
/// (`oci_client::Reference`, tagged `latest`), or `None` when it is not one.
pub fn repository_reference(repository: &str) -> Option<Reference> {
    format!("{repository}:latest").parse().ok()
}

/// The registry host of a repository (`host/path`), as docker decides
/// (`oci_client::Reference`): the first component when it has a dot or a
/// colon or is `localhost`, else `docker.io`. Empty for a text that is no
/// repository (every request for it then fails naming it).
pub fn registry_host(repository: &str) -> String {
    repository_reference(repository)
        .map(|r| r.registry().to_owned())
        .unwrap_or_default()
}

/// A mistake in the file: where (`environments.prod.repository`) and what.
type Mistake = (String, String);

/// `registries`: each host once, with its credentials read.
fn registries(entries: &[RegistryEntry]) -> Result<BTreeMap<String, Registry>, Mistake> {
    let mut registries = BTreeMap::new();
    for (i, entry) in entries.iter().enumerate() {
        let place = format!("registries[{i}] ({})", entry.host);
        if entry.host.is_empty() || entry.host.contains('/') {
            return Err((
                place,
                "host must be host[:port], e.g. registry.example.com or localhost:5000".into(),
            ));
        }
        let auth = entry.auth.clone().unwrap_or_default();
        let credentials = match (&auth.basic, &auth.bearer, &auth.docker_config) {
            (None, None, None) => Ok(Credentials::Anonymous),
            (Some(s), None, None) => password(s).map(|(u, p)| Credentials::Basic(u, p)),
            (None, Some(t), None) => token(t).map(Credentials::Bearer),
            (None, None, Some(p)) => docker_config(p, &entry.host),
            _ => Err("give one of basic, bearer or dockerConfig".into()),
        }
        .map_err(|m| (format!("{place}.auth"), m))?;
        let registry = Registry {
            host: entry.host.clone(),
            insecure: entry.insecure,
            credentials,
        };
        if registries.insert(entry.host.clone(), registry).is_some() {
            return Err((place, "this host is listed twice".into()));
        }
    }
    Ok(registries)
}

/// `environments`: each repository a repository, each filter compiled.
fn environments(
    entries: BTreeMap<String, EnvironmentEntry>,
) -> Result<BTreeMap<String, Environment>, Mistake> {
    let mut environments = BTreeMap::new();
    for (name, entry) in entries {
        let place = format!("environments.{name}");
        if repository_reference(&entry.repository).is_none() {
            return Err((
                format!("{place}.repository"),
                format!(
                    "{:?} is not a repository: write host/path without a tag or digest, e.g. registry.example.com/game/server",
                    entry.repository
                ),
            ));
        }
        let compiled = entry.filter.compile().map_err(|e| {
            (
                format!("{place}.filter.{}", e.field()),
                e.to_string()
                    .trim_start_matches(e.field())
                    .trim_start_matches(':')
                    .trim()
                    .to_owned(),
            )
        })?;
        environments.insert(
            name.clone(),
            Environment {
                name,
                repository: entry.repository,
                filter: entry.filter,
                compiled,
            },
        );
    }
    Ok(environments)
}

/// `protectedTags`: each a whole-tag regex.
fn protected_tags(patterns: &[String]) -> Result<Vec<Regex>, Mistake> {
    patterns
        .iter()
        .enumerate()
        .map(|(i, p)| {
            Regex::new(&format!("^(?:{p})$"))
                .map_err(|e| (format!("protectedTags[{i}]"), format!("{p:?}: {e}")))
        })
        .collect()
}

/// `flux.auth`: at most one of bearer or basic.
fn flux_auth(auth: FluxAuthEntry) -> Result<FluxAuth, Mistake> {
    match (&auth.bearer, &auth.basic) {
        (None, None) => Ok(FluxAuth::None),
        (Some(t), None) => token(t)
            .map(FluxAuth::Bearer)
            .map_err(|m| ("flux.auth.bearer".into(), m)),
        (None, Some(s)) => password(s)
            .map(|(u, p)| FluxAuth::Basic(u, p))
            .map_err(|m| ("flux.auth.basic".into(), m)),
        _ => Err(("flux.auth".into(), "give one of bearer or basic".into())),
    }
}

impl Config {
    /// Reads and checks `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parses and checks `text` (`path` for messages).
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let file: ConfigFile = if text.trim().is_empty() {
            ConfigFile::default()
        } else {
            serde_yaml_ng::from_str(text).map_err(|e| ConfigError::Syntax {
                path: path.to_owned(),
                message: e.to_string(),
            })?
        };
        Self::check(file, path)
    }

    fn check(file: ConfigFile, path: &Path) -> Result<Self, ConfigError> {
        let invalid = |(place, message)| ConfigError::Invalid {
            path: path.to_owned(),
            place,
            message,
        };
        Ok(Self {
            registries: registries(&file.registries).map_err(invalid)?,
            environments: environments(file.environments).map_err(invalid)?,
            protected_tags: protected_tags(&file.protected_tags).map_err(invalid)?,
            flux_auth: flux_auth(file.flux.auth.unwrap_or_default()).map_err(invalid)?,
            flux_cache: file
                .flux
                .cache_seconds
                .map_or(DEFAULT_FLUX_CACHE, Duration::from_secs),
            source: Some(path.to_owned()),
        })
    }

    /// The settings for `host` (anonymous HTTPS when not listed).
    pub fn registry(&self, host: &str) -> Registry {
        self.registries.get(host).cloned().unwrap_or(Registry {
            host: host.to_owned(),
            insecure: false,
            credentials: Credentials::Anonymous,
        })
    }

    /// Whether promotion must leave `tag` where it is.
    pub fn is_protected(&self, tag: &str) -> bool {
        self.protected_tags.iter().any(|r| r.is_match(tag))
    }

    /// The environment names, for messages.
    pub fn environment_names(&self) -> Vec<String> {
        self.environments.keys().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, String> {
        Config::parse(text, Path::new("gameops.yaml")).map_err(|e| e.to_string())
    }

    #[test]
    fn a_full_config_reads() {
        let c = parse(
            r#"
registries:
  - host: registry.example.com
    auth: {basic: {username: ci, password: s3cret}}
  - host: localhost:5000
    insecure: true
  - host: ghcr.io
    auth: {bearer: {token: abc}}
environments:
  develop: {repository: registry.example.com/game/server, filter: {includeTag: '^v\d+\.\d+\.\d+-rc\.[a-f0-9]+$', limit: 1}}
  staging: {repository: registry.example.com/game/server, filter: {semver: '>=0.0.0', limit: 1}}
  production: {repository: registry.example.com/game/server, filter: {includeTag: '^production-latest$'}}
protectedTags: ['v\d+\.\d+\.\d+']
flux:
  auth: {bearer: {token: flux-token}}
  cacheSeconds: 5
"#,
        )
        .unwrap();
        assert_eq!(
            c.registry("registry.example.com").credentials,
            Credentials::Basic("ci".into(), "s3cret".into())
        );
        assert!(c.registry("localhost:5000").insecure);
        assert_eq!(
            c.registry("ghcr.io").credentials,
            Credentials::Bearer("abc".into())
        );
        assert_eq!(
            c.registry("quay.io").credentials,
            Credentials::Anonymous,
            "unlisted registries are anonymous"
        );
        assert!(!c.registry("quay.io").insecure);
        assert_eq!(c.environments.len(), 3);
        assert!(c.is_protected("v1.2.3"));
        assert!(!c.is_protected("production-latest"));
        assert!(
            !c.is_protected("v1.2.3-rc.1"),
            "protected patterns match whole tags"
        );
        assert_eq!(c.flux_auth, FluxAuth::Bearer("flux-token".into()));
        assert_eq!(c.flux_cache, Duration::from_secs(5));
    }

    #[test]
    fn mistakes_name_the_environment_and_field() {
        let e =
            parse("environments:\n  staging: {repository: r.io/x, filter: {includeTag: '('}}\n")
                .unwrap_err();
        assert!(e.contains("environments.staging.filter.includeTag"), "{e}");
        let e =
            parse("environments:\n  prod: {repository: r.io/x, filter: {semver: 'not a range'}}\n")
                .unwrap_err();
        assert!(e.contains("environments.prod.filter.semver"), "{e}");
        let e = parse("environments:\n  prod: {repository: r.io/x, filter: {colour: red}}\n")
            .unwrap_err();
        assert!(e.contains("colour") && e.contains("unknown field"), "{e}");
        let e = parse("environments:\n  prod: {repository: 'r.io/x:1.0'}\n").unwrap_err();
        assert!(e.contains("environments.prod.repository"), "{e}");
        let e = parse("registries:\n  - {host: r.io, auth: {basic: {username: u}}}\n").unwrap_err();
        assert!(
            e.contains("registries[0] (r.io).auth") && e.contains("password"),
            "{e}"
        );
        let e = parse("protectedTags: ['(']\n").unwrap_err();
        assert!(e.contains("protectedTags[0]"), "{e}");
        let e = parse("registires: []\n").unwrap_err();
        assert!(e.contains("registires"), "{e}");
    }

    #[test]
    fn docker_config_json_gives_basic_credentials() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(
            &path,
            r#"{"auths": {"https://r.example.com": {"auth": "dXNlcjpwYXNz"}, "other.io": {"username": "a", "password": "b"}}}"#,
        )
        .unwrap();
        let text = format!(
            "registries:\n  - {{host: r.example.com, auth: {{dockerConfig: {}}}}}\n  - {{host: other.io, auth: {{dockerConfig: {}}}}}\n",
            path.display(),
            path.display()
        );
        let c = parse(&text).unwrap();
        assert_eq!(
            c.registry("r.example.com").credentials,
            Credentials::Basic("user".into(), "pass".into())
        );
        assert_eq!(
            c.registry("other.io").credentials,
            Credentials::Basic("a".into(), "b".into())
        );
        let missing = format!(
            "registries:\n  - {{host: nope.io, auth: {{dockerConfig: {}}}}}\n",
            path.display()
        );
        assert!(
            parse(&missing)
                .unwrap_err()
                .contains("no auths entry for nope.io")
        );
    }

    #[test]
    fn registry_hosts_follow_docker() {
        assert_eq!(
            registry_host("registry.example.com/game/server"),
            "registry.example.com"
        );
        assert_eq!(registry_host("localhost:5000/game"), "localhost:5000");
        assert_eq!(registry_host("127.0.0.1:5000/game"), "127.0.0.1:5000");
        assert_eq!(registry_host("library/nginx"), "docker.io");
        assert_eq!(registry_host("nginx"), "docker.io");
    }
}
