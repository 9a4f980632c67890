//! `promoteTag`: points tag `to` of `repository` at what `from` (a tag or
//! a `sha256:` digest) names, by copying the manifest, as seed 003 moves
//! `production-latest`. Idempotent (a repeat finds `to` already there and
//! writes nothing); a tag listed in `protectedTags` is never moved.
//! Outputs `image`, `digest`, `previousDigest` (empty when `to` was new)
//! and `changed` (`true`/`false`).

use std::collections::BTreeMap;

use super::Outcome;
use crate::registry::Resolver;

use super::table::PromoteTagArgs as Args;

/// Runs the op.
pub async fn run(resolver: &Resolver, args: Args) -> Outcome {
    let field = |name: &str, value: Option<String>, example: &str| {
        value.filter(|v| !v.trim().is_empty()).ok_or_else(|| {
            Outcome::Failed(format!(
                "plugin.gameops.promoteTag.{name} is missing: {example}"
            ))
        })
    };
    let (repository, from, to) = match (
        field(
            "repository",
            args.repository,
            "the image repository, e.g. registry.example.com/game/server",
        ),
        field(
            "from",
            args.from,
            "the tag or sha256: digest to promote, e.g. v1.2.3",
        ),
        field(
            "to",
            args.to,
            "the tag to point at it, e.g. production-latest",
        ),
    ) {
        (Ok(r), Ok(f), Ok(t)) => (r, f, t),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => return e,
    };
    if to.contains([':', '@', '/']) {
        return Outcome::Failed(format!(
            "plugin.gameops.promoteTag.to {to:?} must be a bare tag, e.g. production-latest"
        ));
    }
    match resolver.promote(&repository, &from, &to).await {
        Ok(p) => Outcome::Done {
            message: if p.changed {
                format!(
                    "{repository}:{to} now names {} (was {})",
                    p.digest,
                    p.previous.as_deref().unwrap_or("absent")
                )
            } else {
                format!("{repository}:{to} already names {}", p.digest)
            },
            outputs: BTreeMap::from([
                ("image".to_owned(), p.image),
                ("digest".to_owned(), p.digest),
                ("previousDigest".to_owned(), p.previous.unwrap_or_default()),
                ("changed".to_owned(), p.changed.to_string()),
            ]),
        },
        Err(e) => super::resolve_tag::failure(e),
    }
}
