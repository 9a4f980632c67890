//! `resolveTag`: the tag an environment should run, from its registry and
//! filter (gameops.yaml), or from a repository and filter given inline.
//! Outputs `tag`, `digest` and `image` (`repository:tag@digest`).

use std::collections::BTreeMap;

use super::Outcome;
use crate::registry::{ResolveError, Resolver};

use super::table::ResolveTagArgs as Args;

/// How a registry failure ends the call.
pub fn failure(e: ResolveError) -> Outcome {
    match e {
        ResolveError::Registry(e) if e.is_transient() => Outcome::Retry(e.to_string()),
        e => Outcome::Failed(e.to_string()),
    }
}

/// Runs the op.
pub async fn run(resolver: &Resolver, args: Args) -> Outcome {
    let resolved = match (&args.environment, &args.repository) {
        (Some(env), None) if args.filter.is_none() => match resolver.environment(env) {
            Ok(e) => resolver
                .resolve(&e.repository, &e.compiled, 1)
                .await
                .map(|r| (env.clone(), r)),
            Err(e) => Err(e),
        },
        (None, Some(repository)) => {
            let filter = args.filter.unwrap_or_default();
            let compiled = match filter.compile() {
                Ok(c) => c,
                Err(e) => {
                    return Outcome::Failed(format!("plugin.gameops.resolveTag.filter.{e}"));
                }
            };
            resolver
                .resolve(repository, &compiled, 1)
                .await
                .map(|r| (repository.clone(), r))
        }
        _ => {
            return Outcome::Failed(format!(
                "plugin.gameops.resolveTag takes either environment (one of: {}) or repository with an optional filter, e.g. {{\"repository\": \"registry.example.com/game/server\", \"filter\": {{\"semver\": \">=1.0.0\"}}}}",
                resolver.config().environment_names().join(", ")
            ));
        }
    };
    match resolved {
        Ok((what, list)) => match list.into_iter().next() {
            Some(first) => Outcome::Done {
                message: format!("{what}: {} ({})", first.tag, first.digest),
                outputs: BTreeMap::from([
                    ("tag".to_owned(), first.tag),
                    ("digest".to_owned(), first.digest),
                    ("image".to_owned(), first.image),
                ]),
            },
            None => Outcome::Failed(format!("{what}: no tag matches the filter")),
        },
        Err(e) => failure(e),
    }
}
