//! `gameops resolve`: the tag an environment should run (or a repository's
//! newest tags under an ad hoc filter), with digest and image reference.

use std::sync::Arc;

use clap::ValueEnum;

use crate::registry::Resolver;
use crate::registry::config::Config;
use crate::registry::filter::Filter;

/// How to print.
#[derive(Clone, Copy, ValueEnum)]
pub enum Output {
    /// TAG, DIGEST and IMAGE, tab-separated, a line each.
    Text,
    /// A JSON object (a list with --limit above 1).
    Json,
}

/// `gameops resolve`.
#[derive(clap::Args)]
pub struct ResolveArgs {
    /// A configured environment (gameops.yaml).
    #[arg(
        long = "env",
        conflicts_with = "repository",
        required_unless_present = "repository"
    )]
    pub env: Option<String>,
    /// Or a repository, e.g. registry.example.com/game/server.
    #[arg(long)]
    pub repository: Option<String>,
    /// Use plain HTTP for the repository's registry.
    #[arg(long, requires = "repository")]
    pub insecure: bool,
    /// Unanchored regex the tag must match (Flux includeTag).
    #[arg(long, requires = "repository")]
    pub include_tag: Option<String>,
    /// Unanchored regex the tag must not match (Flux excludeTag).
    #[arg(long, requires = "repository")]
    pub exclude_tag: Option<String>,
    /// Semver constraint, e.g. ">=1.0.0 <2.0.0" (Flux semver).
    #[arg(long, requires = "repository")]
    pub semver: Option<String>,
    /// Regex selecting tags, with groups for --extract (ImagePolicy pattern).
    #[arg(long, requires = "repository")]
    pub pattern: Option<String>,
    /// What to sort by, from the pattern's groups, e.g. '$version'.
    #[arg(long, requires = "pattern")]
    pub extract: Option<String>,
    /// Order: semver, alphabetical or numerical.
    #[arg(long, requires = "repository")]
    pub order_by: Option<String>,
    /// Direction of --order-by: asc or desc (default desc: newest first).
    #[arg(long, requires = "order_by")]
    pub direction: Option<String>,
    /// How many tags to print, newest first; 0 prints every tag the
    /// filter keeps.
    #[arg(long, default_value_t = 1)]
    pub limit: usize,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Output::Text)]
    pub output: Output,
    /// The configuration (environments, registries).
    #[command(flatten)]
    pub config: super::ConfigArgs,
    /// The log format.
    #[command(flatten)]
    pub log: super::LogArgs,
}

/// What to resolve: a name for messages, the repository and its filter.
type Target = (String, String, Filter);

/// The configured environment `--env`, or `--repository` with the ad hoc
/// filter flags (registering `--insecure` for its registry in `config`).
fn target(config: &mut Config, a: &ResolveArgs) -> Result<Target, String> {
    match (&a.env, &a.repository) {
        (Some(env), _) => {
            let e = config.environments.get(env).ok_or_else(|| match &config.source {
                None => format!(
                    "--env {env}: no configuration was given; pass --config gameops.yaml (its environments: name the repository and tag filter of each)"
                ),
                Some(source) if config.environments.is_empty() => format!(
                    "--env {env}: {} defines no environments; add one under environments:",
                    source.display()
                ),
                Some(source) => format!(
                    "--env {env} is not an environment of {}; it has: {}",
                    source.display(),
                    config.environment_names().join(", ")
                ),
            })?;
            Ok((env.clone(), e.repository.clone(), e.filter.clone()))
        }
        (None, Some(repository)) => {
            let filter = ad_hoc_filter(a)?;
            if a.insecure {
                let host = crate::registry::config::registry_host(repository).to_owned();
                let mut registry = config.registry(&host);
                registry.insecure = true;
                config.registries.insert(host, registry);
            }
            Ok((repository.clone(), repository.clone(), filter))
        }
        (None, None) => Err("give --env NAME or --repository REPOSITORY".into()),
    }
}

/// The filter the `--include-tag`, `--semver`, `--pattern`, ... flags describe.
fn ad_hoc_filter(a: &ResolveArgs) -> Result<Filter, String> {
    let mut order = serde_json::Map::new();
    if let Some(by) = &a.order_by {
        order.insert("by".into(), by.as_str().into());
    }
    if let Some(d) = &a.direction {
        order.insert("direction".into(), d.as_str().into());
    }
    let mut f = serde_json::Map::new();
    for (k, v) in [
        ("includeTag", &a.include_tag),
        ("excludeTag", &a.exclude_tag),
        ("semver", &a.semver),
        ("pattern", &a.pattern),
        ("extract", &a.extract),
    ] {
        if let Some(v) = v {
            f.insert(k.into(), v.as_str().into());
        }
    }
    if !order.is_empty() {
        f.insert("order".into(), order.into());
    }
    serde_json::from_value(f.into()).map_err(|e| format!("--order-by/--direction: {e}"))
}

/// Resolves and prints.
pub async fn run(a: ResolveArgs) -> Result<(), String> {
    let mut config = Config::clone(&*a.config.load()?);
    let (what, repository, mut filter) = target(&mut config, &a)?;
    // --limit may ask for more than the filter's own limit keeps; 0 asks
    // for all it keeps.
    filter.limit = Some(filter.limit.unwrap_or(100).max(a.limit));
    let first = if a.limit == 0 { usize::MAX } else { a.limit };
    let compiled = filter
        .compile()
        .map_err(|e| format!("the filter of {what}: {e}"))?;
    let resolver = Resolver::new(Arc::new(config)).map_err(|e| e.to_string())?;
    let found = resolver
        .resolve(&repository, &compiled, first)
        .await
        .map_err(|e| format!("{what}: {e}"))?;
    match a.output {
        Output::Json => {
            let list: Vec<serde_json::Value> = found
                .iter()
                .map(|r| {
                    serde_json::json!({
                        "tag": r.tag, "digest": r.digest, "image": r.image,
                        "repository": repository, "environment": a.env,
                    })
                })
                .collect();
            let value = if a.limit == 1 {
                list.into_iter().next().unwrap_or_default()
            } else {
                list.into()
            };
            println!("{value:#}");
        }
        Output::Text => {
            for r in &found {
                println!("{}\t{}\t{}", r.tag, r.digest, r.image);
            }
        }
    }
    Ok(())
}
