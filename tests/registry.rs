//! Tag resolution and promotion against a real registry (Debian's
//! `docker-registry`, CNCF Distribution) filled with the project's own
//! client: seed 003's three filters, semver with pre-releases and a leading
//! `v`, pagination over 1,000+ tags, htpasswd Basic auth, promotion and its
//! idempotency, protected tags, and `gameops resolve`.

mod common;

use std::sync::Arc;

use common::registry::Registry;
use gameops::registry::config::Config;
use gameops::registry::{ResolveError, Resolver};

const REPO: &str = "game/server";

fn resolver(config: &str) -> Resolver {
    let config = Config::parse(config, std::path::Path::new("gameops.yaml")).expect("config");
    Resolver::new(Arc::new(config)).expect("resolver")
}

fn config(registry: &Registry, environments: &str) -> String {
    format!(
        "registries:\n{}environments:\n{environments}protectedTags: ['v\\d+\\.\\d+\\.\\d+']\n",
        registry.config_entry()
    )
}

/// Pushes one distinct image per tag; returns the digests by tag.
async fn push(resolver: &Resolver, repository: &str, tags: &[&str]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for tag in tags {
        let digest = resolver
            .client()
            .push_image(repository, tag, format!("layer of {tag}").into_bytes())
            .await
            .expect("push");
        out.push((tag.to_string(), digest));
    }
    out
}

fn digest_of<'a>(pushed: &'a [(String, String)], tag: &str) -> &'a str {
    &pushed.iter().find(|(t, _)| t == tag).expect("pushed").1
}

const SEED_TAGS: &[&str] = &[
    "v0.1.0-rc.a1b2c3d",
    "v0.2.0-rc.0f0f0f0",
    "v0.2.0-rc.zzz",
    "v0.3.9",
    "v0.3.10",
    "v1.2.3",
    "production-latest",
    "dev-abc123-1700000000",
    "latest",
];

#[tokio::test]
async fn seed_003_filters_pick_what_flux_would() {
    let registry = Registry::start();
    let repository = format!("{}/{REPO}", registry.host);
    let r = resolver(&config(
        &registry,
        &format!(
            "  develop: {{repository: {repository}, filter: {{includeTag: '^v\\d+\\.\\d+\\.\\d+-rc\\.[a-f0-9]+$', limit: 1}}}}\n  staging: {{repository: {repository}, filter: {{includeTag: '^v[0-9]+\\.[0-9]+\\.[0-9]+$', limit: 1}}}}\n  staging-semver: {{repository: {repository}, filter: {{semver: '>=0.0.0', limit: 1}}}}\n  staging-ordered: {{repository: {repository}, filter: {{pattern: '^v(?P<v>[0-9]+\\.[0-9]+\\.[0-9]+)$', extract: '$v', order: {{by: semver}}}}}}\n  production: {{repository: {repository}, filter: {{includeTag: production-latest, limit: 1}}}}\n"
        ),
    ));
    let pushed = push(&r, &repository, SEED_TAGS).await;

    // Release candidates: Flux sorts reverse-lexically without semver.
    let develop = r.resolve_environment("develop").await.expect("develop");
    assert_eq!(develop.len(), 1, "limit 1");
    assert_eq!(develop[0].tag, "v0.2.0-rc.0f0f0f0", "zzz is not hex");
    assert_eq!(develop[0].digest, digest_of(&pushed, "v0.2.0-rc.0f0f0f0"));
    assert_eq!(
        develop[0].image,
        format!("{repository}:v0.2.0-rc.0f0f0f0@{}", develop[0].digest)
    );

    // Stable by regex only: Flux's reverse byte order puts v0.3.9 above
    // v0.3.10; with semver (Flux's own) or our semver order, v1.2.3 wins.
    let staging = r.resolve_environment("staging").await.expect("staging");
    assert_eq!(staging[0].tag, "v1.2.3");
    let semver = r
        .resolve_environment("staging-semver")
        .await
        .expect("semver");
    assert_eq!(semver[0].tag, "v1.2.3");
    let ordered = r
        .resolve_environment("staging-ordered")
        .await
        .expect("ordered");
    let tags: Vec<&str> = ordered.iter().map(|x| x.tag.as_str()).collect();
    assert_eq!(
        tags,
        ["v1.2.3", "v0.3.10", "v0.3.9"],
        "v0.3.10 after v0.3.9"
    );

    let production = r
        .resolve_environment("production")
        .await
        .expect("production");
    assert_eq!(production[0].tag, "production-latest");
    assert_eq!(
        production[0].digest,
        digest_of(&pushed, "production-latest")
    );

    let e = r.resolve_environment("qa").await.unwrap_err().to_string();
    assert!(
        e.contains("\"qa\"") && e.contains("develop, production"),
        "{e}"
    );
}

#[tokio::test]
async fn semver_keeps_pre_releases_only_when_asked_and_takes_a_leading_v() {
    let registry = Registry::start();
    let repository = format!("{}/{REPO}", registry.host);
    let r = resolver(&config(
        &registry,
        &format!(
            "  stable: {{repository: {repository}, filter: {{semver: '>=1.0.0'}}}}\n  pre: {{repository: {repository}, filter: {{semver: '>=1.0.0-0'}}}}\n  one: {{repository: {repository}, filter: {{semver: '~1.2'}}}}\n"
        ),
    ));
    push(
        &r,
        &repository,
        &[
            "1.0.0",
            "v1.2.0",
            "v1.2.5",
            "v1.3.0-rc.1",
            "v2.0.0-beta.2",
            "1.3",
            "not-a-version",
        ],
    )
    .await;
    let stable: Vec<String> = r
        .resolve_environment("stable")
        .await
        .expect("stable")
        .into_iter()
        .map(|x| x.tag)
        .collect();
    assert_eq!(stable, ["v1.2.5", "v1.2.0", "1.0.0"]);
    let pre: Vec<String> = r
        .resolve_environment("pre")
        .await
        .expect("pre")
        .into_iter()
        .map(|x| x.tag)
        .collect();
    assert_eq!(pre[0], "v2.0.0-beta.2", "{pre:?}");
    assert!(pre.contains(&"v1.3.0-rc.1".to_owned()), "{pre:?}");
    let one: Vec<String> = r
        .resolve_environment("one")
        .await
        .expect("one")
        .into_iter()
        .map(|x| x.tag)
        .collect();
    assert_eq!(one, ["v1.2.5", "v1.2.0"]);
}

#[tokio::test]
async fn tag_lists_are_followed_past_the_first_page() {
    let registry = Registry::start();
    let repository = format!("{}/{REPO}", registry.host);
    let r = resolver(&config(&registry, ""));
    push(&r, &repository, &["v0.0.1"]).await;
    // 1,500 more tags on the same manifest: one PUT each.
    let (manifest, media_type, _) = r
        .client()
        .manifest(&repository, "v0.0.1")
        .await
        .expect("manifest");
    for i in 0..1500 {
        r.client()
            .put_manifest(
                &repository,
                &format!("v1.{}.{}", i / 100, i % 100),
                manifest.clone(),
                &media_type,
            )
            .await
            .expect("tag");
    }
    // Distribution 2.8 answers with every tag at once.
    let tags = r.client().list_tags(&repository).await.expect("list");
    assert_eq!(tags.len(), 1501);

    // Through a registry that pages (at most 100 a page, whatever n asks):
    // every page is followed, in order, to the end.
    let paging = common::registry::front(
        registry.host.clone(),
        common::registry::Front {
            page_cap: Some(100),
            ..Default::default()
        },
    )
    .await;
    let paged_repository = format!("{paging}/{REPO}");
    let p = resolver(&format!(
        "registries:\n  - {{host: \"{paging}\", insecure: true}}\nenvironments:\n  all: {{repository: {paged_repository}, filter: {{semver: '>=0.0.0', limit: 1}}}}\n"
    ));
    let paged = p
        .client()
        .list_tags(&paged_repository)
        .await
        .expect("paged list");
    assert_eq!(
        p.client().tag_list_requests(),
        16,
        "1,501 tags at 100 a page"
    );
    let mut sorted = tags.clone();
    sorted.sort();
    assert_eq!(paged, sorted, "every tag once, in the registry's order");
    let newest = p.resolve_environment("all").await.expect("resolve");
    assert_eq!(newest[0].tag, "v1.14.99");
    assert_eq!(
        newest[0].digest,
        r.client()
            .digest(&repository, "v1.14.99")
            .await
            .expect("digest")
    );
}

#[tokio::test]
async fn basic_auth_from_htpasswd() {
    let registry = Registry::start_with_login("ci", "s3cret");
    let repository = format!("{}/{REPO}", registry.host);
    let env = format!("  prod: {{repository: {repository}, filter: {{semver: '>=0.0.0'}}}}\n");
    let r = resolver(&config(&registry, &env));
    push(&r, &repository, &["v1.0.0", "v1.1.0"]).await;
    let found = r
        .resolve_environment("prod")
        .await
        .expect("resolve with the login");
    assert_eq!(found[0].tag, "v1.1.0");

    let anonymous = resolver(&format!(
        "registries:\n  - {{host: \"{}\", insecure: true}}\nenvironments:\n{env}",
        registry.host
    ));
    let e = anonymous.resolve_environment("prod").await.unwrap_err();
    let text = e.to_string();
    assert!(
        matches!(e, ResolveError::Registry(ref r) if !r.is_transient()),
        "{text}"
    );
    assert!(
        text.contains("registries[].auth") && text.contains(&registry.host),
        "{text}"
    );

    let wrong = resolver(&format!(
        "registries:\n  - {{host: \"{}\", insecure: true, auth: {{basic: {{username: ci, password: nope}}}}}}\nenvironments:\n{env}",
        registry.host
    ));
    assert!(wrong.resolve_environment("prod").await.is_err());
}

#[tokio::test]
async fn promotion_copies_the_manifest_once_and_never_moves_a_protected_tag() {
    let registry = Registry::start();
    let repository = format!("{}/{REPO}", registry.host);
    let r = resolver(&config(&registry, ""));
    let pushed = push(&r, &repository, &["v1.2.3", "v1.2.4"]).await;

    let first = r
        .promote(&repository, "v1.2.3", "production-latest")
        .await
        .expect("promote");
    assert!(first.changed);
    assert_eq!(first.previous, None);
    assert_eq!(first.digest, digest_of(&pushed, "v1.2.3"));
    assert_eq!(
        r.client()
            .digest(&repository, "production-latest")
            .await
            .expect("digest"),
        digest_of(&pushed, "v1.2.3")
    );
    let again = r
        .promote(&repository, "v1.2.3", "production-latest")
        .await
        .expect("again");
    assert!(!again.changed, "a repeat writes nothing");
    assert_eq!(
        again.previous.as_deref(),
        Some(digest_of(&pushed, "v1.2.3"))
    );

    // By digest, moving the tag on.
    let moved = r
        .promote(
            &repository,
            digest_of(&pushed, "v1.2.4"),
            "production-latest",
        )
        .await
        .expect("by digest");
    assert!(moved.changed);
    assert_eq!(
        moved.previous.as_deref(),
        Some(digest_of(&pushed, "v1.2.3"))
    );

    // v1.2.3 is protected: never moved, and left as it was.
    let e = r
        .promote(&repository, "v1.2.4", "v1.2.3")
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("protected") && e.contains("v1.2.3"), "{e}");
    assert_eq!(
        r.client()
            .digest(&repository, "v1.2.3")
            .await
            .expect("digest"),
        digest_of(&pushed, "v1.2.3")
    );
    let missing = r
        .promote(&repository, "v9.9.9", "x")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        missing.contains("v9.9.9") && missing.contains("does not exist"),
        "{missing}"
    );
}

#[tokio::test]
#[allow(
    clippy::too_many_lines,
    reason = "one registry, the command's answers and messages in turn"
)]
async fn gameops_resolve_prints_tag_digest_and_image() {
    let registry = Registry::start();
    let repository = format!("{}/{REPO}", registry.host);
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("gameops.yaml");
    std::fs::write(
        &path,
        config(
            &registry,
            &format!(
                "  staging: {{repository: {repository}, filter: {{semver: '>=1.0.0', limit: 1}}}}\n"
            ),
        ),
    )
    .expect("config");
    let r = resolver(&std::fs::read_to_string(&path).expect("read"));
    let pushed = push(&r, &repository, &["v1.0.0", "v1.4.0", "v2.0.0-rc.1"]).await;

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gameops"))
        .args([
            "resolve", "--env", "staging", "--output", "json", "--config",
        ])
        .arg(&path)
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["tag"], "v1.4.0");
    assert_eq!(v["digest"], digest_of(&pushed, "v1.4.0"));
    assert_eq!(
        v["image"],
        format!("{repository}:v1.4.0@{}", digest_of(&pushed, "v1.4.0"))
    );

    // Ad hoc, text output.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gameops"))
        .args([
            "resolve",
            "--insecure",
            "--repository",
            &repository,
            "--semver",
            ">=2.0.0-0",
        ])
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("v2.0.0-rc.1\t"), "{text}");

    let gameops = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_gameops"))
            .args(args)
            .output()
            .expect("run")
    };
    // --limit 0: every tag the filter keeps, newest first.
    let out = gameops(&[
        "resolve",
        "--insecure",
        "--repository",
        &repository,
        "--semver",
        ">=1.0.0",
        "--limit",
        "0",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    let tags: Vec<&str> = text.lines().filter_map(|l| l.split('\t').next()).collect();
    assert_eq!(tags, ["v1.4.0", "v1.0.0"], "{text}");
    // HTTPS to a plain-HTTP registry says what to change, not "unavailable".
    let out = gameops(&["resolve", "--repository", &repository]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("registry {} speaks plain HTTP", registry.host))
            && err.contains("insecure: true")
            && !err.contains("unavailable"),
        "{err}"
    );
    // An environment the given config lacks: named, with what it has, and
    // no request for the --config that was given.
    let out = gameops(&[
        "resolve",
        "--env",
        "prod",
        "--config",
        &path.display().to_string(),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--env prod is not an environment of") && err.contains("it has: staging"),
        "{err}"
    );
    assert!(!err.contains("pass --config"), "{err}");
    let out = gameops(&["resolve", "--env", "prod"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no configuration was given; pass --config"),
        "{err}"
    );

    // A bad filter is a clear startup error naming the environment and field.
    std::fs::write(
        &path,
        config(
            &registry,
            &format!("  staging: {{repository: {repository}, filter: {{semver: 'banana'}}}}\n"),
        ),
    )
    .expect("config");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gameops"))
        .args(["resolve", "--env", "staging", "--config"])
        .arg(&path)
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("environments.staging.filter.semver"), "{err}");
}

#[tokio::test]
async fn the_token_flow_and_retries_on_429_and_503() {
    let registry = Registry::start();
    let repository = format!("{}/{REPO}", registry.host);
    let direct = resolver(&config(&registry, ""));
    let pushed = push(&direct, &repository, &["v1.0.0", "v1.1.0"]).await;

    // A front that wants a token from its /token realm, for Basic ci/s3cret,
    // and fails the first 2 requests with 503 and the next 2 with 429.
    let (host, seen) = common::registry::front_with_counter(
        registry.host.clone(),
        common::registry::Front {
            page_cap: Some(1),
            token_login: Some(("ci".into(), "s3cret".into())),
            fail_first: 2,
            ..Default::default()
        },
    )
    .await;
    let front_repository = format!("{host}/{REPO}");
    let env =
        format!("  prod: {{repository: {front_repository}, filter: {{semver: '>=0.0.0'}}}}\n");
    let r = resolver(&format!(
        "registries:\n  - {{host: \"{host}\", insecure: true, auth: {{basic: {{username: ci, password: s3cret}}}}}}\nenvironments:\n{env}"
    ));
    let found = r
        .resolve_environment("prod")
        .await
        .expect("token flow, after retries");
    assert_eq!(found[0].tag, "v1.1.0");
    assert_eq!(found[0].digest, digest_of(&pushed, "v1.1.0"));
    assert!(
        seen.load(std::sync::atomic::Ordering::SeqCst) > 4 + 2,
        "the failures were met and retried"
    );

    // The same front with wrong credentials: a clear, non-transient refusal.
    let wrong = resolver(&format!(
        "registries:\n  - {{host: \"{host}\", insecure: true, auth: {{basic: {{username: ci, password: nope}}}}}}\nenvironments:\n{env}"
    ));
    let e = wrong.resolve_environment("prod").await.unwrap_err();
    assert!(
        matches!(e, ResolveError::Registry(ref r) if !r.is_transient()),
        "{e}"
    );
    assert!(e.to_string().contains("registries[].auth"), "{e}");
}
