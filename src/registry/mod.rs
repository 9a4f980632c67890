//! OCI registries: which tag an environment should run ([`filter`] decides
//! from the tag list), the client that lists tags, reads digests and copies
//! manifests ([`client`], on the `oci-client` crate), and the two answers
//! built on them: [`Resolver::resolve`] and [`Resolver::promote`].

pub mod client;
pub mod config;
pub mod filter;
pub mod flux;

use std::sync::Arc;

use futures::StreamExt;
use serde::Serialize;

use crate::registry::config::Config;
pub use client::{RegistryClient, RegistryError};
use filter::CompiledFilter;

/// How many digests are read at once.
const DIGEST_CONCURRENCY: usize = 8;

/// One tag that qualifies, with its digest.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Resolved {
    /// The tag.
    pub tag: String,
    /// Its manifest digest (`sha256:…`).
    pub digest: String,
    /// `repository:tag@digest`, ready for a container spec.
    pub image: String,
}

/// What a promotion did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Promoted {
    /// `repository:to@digest`.
    pub image: String,
    /// The digest `to` now names.
    pub digest: String,
    /// The digest `to` named before (`None`: it did not exist).
    pub previous: Option<String>,
    /// Whether anything was written (false: `to` already named the digest).
    pub changed: bool,
}

/// Why a resolution or promotion failed.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// The registry failed.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// No tag survives the filter.
    #[error("no tag of {repository} matches the filter ({tags} tags listed): check the filter")]
    NoMatch {
        /// The repository.
        repository: String,
        /// How many tags it has.
        tags: usize,
    },
    /// An environment nobody configured.
    #[error("environment {name:?} is not configured; known: {known}")]
    UnknownEnvironment {
        /// The name asked for.
        name: String,
        /// The configured ones.
        known: String,
    },
    /// Promotion would move a protected tag.
    #[error(
        "tag {tag} of {repository} is protected (protectedTags) and names {current}; promotion never moves it: choose another target tag"
    )]
    Protected {
        /// The repository.
        repository: String,
        /// The tag.
        tag: String,
        /// What it names.
        current: String,
    },
}

/// Resolves environments and promotes tags, per the configuration.
#[derive(Debug)]
pub struct Resolver {
    config: Arc<Config>,
    client: RegistryClient,
}

impl Resolver {
    /// A resolver over `config`'s registries and environments.
    pub fn new(config: Arc<Config>) -> Result<Self, RegistryError> {
        Ok(Self {
            client: RegistryClient::new(config.clone())?,
            config,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The registry client.
    pub fn client(&self) -> &RegistryClient {
        &self.client
    }

    /// The environment called `name`.
    pub fn environment(
        &self,
        name: &str,
    ) -> Result<&crate::registry::config::Environment, ResolveError> {
        self.config
            .environments
            .get(name)
            .ok_or_else(|| ResolveError::UnknownEnvironment {
                name: name.to_owned(),
                known: if self.config.environments.is_empty() {
                    "none (add environments to gameops.yaml)".into()
                } else {
                    self.config.environment_names().join(", ")
                },
            })
    }

    /// The first `first` tags of `repository` that survive `filter`,
    /// first = the one to run, each with its digest (read only for those
    /// tags).
    pub async fn resolve(
        &self,
        repository: &str,
        filter: &CompiledFilter,
        first: usize,
    ) -> Result<Vec<Resolved>, ResolveError> {
        let tags = self.client.list_tags(repository).await?;
        let mut chosen = filter.apply(tags.iter().map(String::as_str));
        chosen.truncate(first);
        if chosen.is_empty() {
            return Err(ResolveError::NoMatch {
                repository: repository.to_owned(),
                tags: tags.len(),
            });
        }
        let digests: Vec<Result<String, RegistryError>> = futures::stream::iter(chosen.clone())
            .map(|tag| async move { self.client.digest(repository, &tag).await })
            .buffered(DIGEST_CONCURRENCY)
            .collect()
            .await;
        chosen
            .into_iter()
            .zip(digests)
            .map(|(tag, digest)| {
                let digest = digest?;
                Ok(Resolved {
                    image: format!("{repository}:{tag}@{digest}"),
                    tag,
                    digest,
                })
            })
            .collect()
    }

    /// Every tag of a configured environment that survives its filter (up
    /// to the filter's limit), as Flux lists them.
    pub async fn resolve_environment(&self, name: &str) -> Result<Vec<Resolved>, ResolveError> {
        let env = self.environment(name)?;
        self.resolve(&env.repository, &env.compiled, usize::MAX)
            .await
    }

    /// Points tag `to` of `repository` at the manifest `from` (a tag or a
    /// `sha256:` digest) names. Idempotent: when `to` already names it,
    /// nothing is written. A protected `to` that names something else is
    /// never moved.
    pub async fn promote(
        &self,
        repository: &str,
        from: &str,
        to: &str,
    ) -> Result<Promoted, ResolveError> {
        let (manifest, media_type, digest) = self.client.manifest(repository, from).await?;
        let previous = self.client.digest_if_exists(repository, to).await?;
        let image = format!("{repository}:{to}@{digest}");
        if previous.as_deref() == Some(digest.as_str()) {
            return Ok(Promoted {
                image,
                digest,
                previous,
                changed: false,
            });
        }
        if let Some(current) = &previous
            && self.config.is_protected(to)
        {
            return Err(ResolveError::Protected {
                repository: repository.to_owned(),
                tag: to.to_owned(),
                current: current.clone(),
            });
        }
        self.client
            .put_manifest(repository, to, manifest, &media_type)
            .await?;
        Ok(Promoted {
            image,
            digest,
            previous,
            changed: true,
        })
    }
}
