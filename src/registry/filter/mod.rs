//! Which tags an environment runs: a tag filter with Flux's exact semantics.
//!
//! [`Filter`] is what `gameops.yaml` holds under
//! `environments.<name>.filter`. [`Filter::compile`] checks it once and
//! [`CompiledFilter::apply`] turns a registry's tag list into the tags that
//! survive, first = the one to run.
//!
//! # Flux `OCIArtifactTag` semantics (no `pattern`, no `order`)
//!
//! As flux-operator's `internal/filtering/filters.go` `Filters.Tags`, fed by
//! `ResourceSetInputProviderReconciler.makeFilters`:
//!
//! 1. `includeTag` / `excludeTag`: unanchored regular expressions; a tag is
//!    kept when it matches `includeTag` and does not match `excludeTag`.
//!    An empty string means "not set" (Go's `omitempty`).
//! 2. With `semver`: only tags that parse as fluxcd/pkg `version.ParseVersion`
//!    parses them (at least two dots, then Masterminds `NewVersion`: an
//!    optional lowercase `v`, leading zeros allowed in the numbers) and that
//!    satisfy the Masterminds/semver v3 constraint, newest first
//!    (`version.Sort`).
//! 3. Without `semver`: reverse byte order (`slices.Sort` then
//!    `slices.Reverse`), so `v0.3.9` comes before `v0.3.10` (Flux's known
//!    wart, kept for fidelity; use `order.by: semver` to avoid it).
//! 4. Cut to `limit` (default 100; 0 also means the default, as Flux's
//!    `Limit > 0` test; at most 10000).
//!
//! # Extensions (flux-operator issue #321, ImagePolicy style)
//!
//! * `pattern` (+ optional `extract`): as image-reflector-controller's
//!   `RegexFilter`: tags that do not match `pattern` are dropped; `extract`
//!   is expanded with Go's `regexp.Expand` rules (`$name`, `${name}`, `$1`,
//!   `$$`) and the extracted value is what is compared and sorted, while the
//!   original tag is returned. `extract` without `pattern` is an error.
//! * `order.by`: `semver` (the value parsed as Flux parses versions;
//!   unparsable values dropped), `alphabetical` (byte order) or `numerical`
//!   (Go `strconv.ParseFloat(value, 64)`, as ImagePolicy's numerical policy;
//!   unparsable dropped). `order.direction`: `desc` (default: newest /
//!   largest first) or `asc`.
//! * `semver` combines with `pattern` and `order`: the constraint applies to
//!   the extracted value. Without `order`, the Flux default ordering applies
//!   to the extracted value (semver if `semver` is set, else reverse byte
//!   order).
//!
//! Ties keep the input order (a stable sort).

mod extract;
mod gofloat;
#[cfg(test)]
mod tests;
mod version;

pub use version::{SemverConstraint, parse_flux_version};

use std::borrow::Cow;
use std::cmp::Ordering;

use regex::Regex;
use semver::Version;
use serde::{Deserialize, Serialize};

use extract::Template;
use gofloat::{go_cmp_f64, go_parse_float};

/// The number of tags kept when `limit` is not set (Flux's
/// `DefaultResourceSetInputProviderFilterLimit`).
pub const DEFAULT_LIMIT: usize = 100;

/// The largest `limit` accepted.
pub const MAX_LIMIT: usize = 10_000;

/// A tag filter as written in `gameops.yaml` under
/// `environments.<name>.filter`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Filter {
    /// Flux `OCIArtifactTag` `includeTag`: an unanchored Go-style regular
    /// expression the tag must match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_tag: Option<String>,
    /// Flux `excludeTag`: an unanchored regular expression the tag must not
    /// match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exclude_tag: Option<String>,
    /// A Masterminds/semver v3 constraint (Flux's library), e.g.
    /// `>=1.2.0 <2.0.0 || ^3`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub semver: Option<String>,
    /// How many tags to keep, first ones first (default 100, at most 10000;
    /// 0 means the default, as in Flux).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
    /// ImagePolicy `filterTags.pattern`: a regular expression with named or
    /// numbered groups; tags that do not match are dropped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    /// ImagePolicy `filterTags.extract`: a `$name`, `${name}` or `$1`
    /// template expanded from the `pattern` match; the extracted value is
    /// what is compared and sorted, the original tag is returned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extract: Option<String>,
    /// How to sort (default: Flux's, see the module documentation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<Order>,
}

/// How the surviving tags are sorted.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Order {
    /// What the (extracted) value is compared as.
    pub by: OrderBy,
    /// Which end comes first (default `desc`: newest / largest first).
    #[serde(default)]
    pub direction: Direction,
}

/// What the (extracted) value of a tag is compared as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OrderBy {
    /// Semantic version precedence, the value parsed as Flux parses
    /// versions (optional leading `v`); values that do not parse are dropped.
    Semver,
    /// Byte-wise string order.
    Alphabetical,
    /// The value parsed as a 64-bit float (Go `strconv.ParseFloat`, as
    /// ImagePolicy's numerical policy); values that do not parse are dropped.
    Numerical,
}

/// Which end of the order comes first.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Smallest / oldest first.
    Asc,
    /// Largest / newest first (the default).
    #[default]
    Desc,
}

/// Why a [`Filter`] does not compile. Its `Display` starts with the field's
/// name as written in YAML, e.g. `includeTag: invalid regex "(": ...`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FilterError {
    field: &'static str,
    message: String,
}

impl FilterError {
    fn new(field: &'static str, message: impl Into<String>) -> Self {
        FilterError {
            field,
            message: message.into(),
        }
    }

    /// The offending field as written in YAML (`includeTag`, `excludeTag`,
    /// `semver`, `limit`, `pattern`, `extract`, `order`).
    pub fn field(&self) -> &str {
        self.field
    }

    /// What is wrong, without the field name.
    pub fn message(&self) -> &str {
        &self.message
    }
}

/// What the kept values are sorted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SortKey {
    Semver,
    Bytes,
    Numerical,
}

/// A checked [`Filter`], ready to [`apply`](CompiledFilter::apply).
#[derive(Debug, Clone)]
pub struct CompiledFilter {
    include: Option<Regex>,
    exclude: Option<Regex>,
    pattern: Option<Regex>,
    extract: Option<Template>,
    semver: Option<SemverConstraint>,
    sort: SortKey,
    direction: Direction,
    limit: usize,
}

/// `Some(s)` unless `s` is absent or empty (Go's `omitempty`: Flux treats an
/// empty string as unset).
fn set(s: &Option<String>) -> Option<&str> {
    s.as_deref().filter(|s| !s.is_empty())
}

/// The last line of a regex error (`regex parse error:` is multi-line).
fn regex_message(e: &regex::Error) -> String {
    let text = e.to_string();
    text.lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix("error: "))
        .map(str::to_owned)
        .unwrap_or_else(|| text.split_whitespace().collect::<Vec<_>>().join(" "))
}

fn compile_regex(field: &'static str, source: Option<&str>) -> Result<Option<Regex>, FilterError> {
    source
        .map(|s| {
            Regex::new(s).map_err(|e| {
                FilterError::new(field, format!("invalid regex {s:?}: {}", regex_message(&e)))
            })
        })
        .transpose()
}

impl Filter {
    /// Checks the filter and compiles its expressions. Errors name the
    /// field: e.g. `includeTag: invalid regex "(": ...`,
    /// `semver: ">=1 <<2": not a semver constraint ...`,
    /// `limit: 20000 is over the maximum 10000`,
    /// `extract: needs pattern ...`.
    pub fn compile(&self) -> Result<CompiledFilter, FilterError> {
        let include = compile_regex("includeTag", set(&self.include_tag))?;
        let exclude = compile_regex("excludeTag", set(&self.exclude_tag))?;
        let pattern = compile_regex("pattern", set(&self.pattern))?;
        let extract = match (set(&self.extract), &pattern) {
            (None, _) => None,
            (Some(t), Some(p)) => Some(Template::parse(t, p)?),
            (Some(t), None) => {
                return Err(FilterError::new(
                    "extract",
                    format!(
                        "{t:?} needs pattern: extract expands the groups of pattern's match (e.g. pattern: '^v(?P<version>.*)$', extract: '$version')"
                    ),
                ));
            }
        };
        let semver = set(&self.semver)
            .map(|s| {
                SemverConstraint::parse(s).map_err(|e| {
                    FilterError::new(
                        "semver",
                        format!("{s:?}: not a semver constraint (Masterminds/semver v3 syntax, e.g. '>=1.2.0 <2.0.0', '^1.4', '~1.2.x', '1.2 - 1.4.5'): {e}"),
                    )
                })
            })
            .transpose()?;
        let limit = match self.limit {
            None | Some(0) => DEFAULT_LIMIT,
            Some(n) if n > MAX_LIMIT => {
                return Err(FilterError::new(
                    "limit",
                    format!("{n} is over the maximum {MAX_LIMIT}"),
                ));
            }
            Some(n) => n,
        };
        let (sort, direction) = match &self.order {
            Some(o) => {
                let sort = match o.by {
                    OrderBy::Semver => SortKey::Semver,
                    OrderBy::Alphabetical => SortKey::Bytes,
                    OrderBy::Numerical => SortKey::Numerical,
                };
                if sort == SortKey::Numerical && semver.is_some() {
                    return Err(FilterError::new(
                        "order",
                        "numerical ordering can never keep a tag together with semver: a value \
                         that passes semver has two dots, a number has at most one; drop one of \
                         them (or use order.by: semver)",
                    ));
                }
                (sort, o.direction)
            }
            None if semver.is_some() => (SortKey::Semver, Direction::Desc),
            None => (SortKey::Bytes, Direction::Desc),
        };
        Ok(CompiledFilter {
            include,
            exclude,
            pattern,
            extract,
            semver,
            sort,
            direction,
            limit,
        })
    }
}

/// A tag that survived filtering, with what it is sorted by.
struct Kept<'a> {
    tag: &'a str,
    value: Cow<'a, str>,
    version: Option<Version>,
    number: f64,
}

impl CompiledFilter {
    /// The tags that survive, in order (first = the one to run), cut to the
    /// limit. Input duplicates are kept.
    pub fn apply<'a>(&self, tags: impl IntoIterator<Item = &'a str>) -> Vec<String> {
        let mut kept: Vec<Kept<'a>> = Vec::new();
        for tag in tags {
            if self.include.as_ref().is_some_and(|re| !re.is_match(tag)) {
                continue;
            }
            if self.exclude.as_ref().is_some_and(|re| re.is_match(tag)) {
                continue;
            }
            let value: Cow<'a, str> = match &self.pattern {
                None => Cow::Borrowed(tag),
                Some(re) => match re.captures(tag) {
                    None => continue,
                    Some(caps) => match &self.extract {
                        None => Cow::Borrowed(tag),
                        Some(t) => Cow::Owned(t.expand(&caps)),
                    },
                },
            };
            let version = if self.semver.is_some() || self.sort == SortKey::Semver {
                match parse_flux_version(&value) {
                    Some(v) => Some(v),
                    None => continue,
                }
            } else {
                None
            };
            if let (Some(c), Some(v)) = (&self.semver, &version)
                && !c.check(v)
            {
                continue;
            }
            let number = if self.sort == SortKey::Numerical {
                match go_parse_float(&value) {
                    Some(n) => n,
                    None => continue,
                }
            } else {
                0.0
            };
            kept.push(Kept {
                tag,
                value,
                version,
                number,
            });
        }
        let ascending = |a: &Kept, b: &Kept| match self.sort {
            SortKey::Semver => match (&a.version, &b.version) {
                (Some(x), Some(y)) => x.cmp_precedence(y),
                _ => Ordering::Equal,
            },
            SortKey::Bytes => a.value.as_bytes().cmp(b.value.as_bytes()),
            SortKey::Numerical => go_cmp_f64(a.number, b.number),
        };
        match self.direction {
            Direction::Asc => kept.sort_by(ascending),
            Direction::Desc => kept.sort_by(|a, b| ascending(b, a)),
        }
        kept.truncate(self.limit);
        kept.into_iter().map(|k| k.tag.to_owned()).collect()
    }

    /// How many tags [`apply`](CompiledFilter::apply) keeps at most.
    pub fn limit(&self) -> usize {
        self.limit
    }
}

/// Flux's input id for a tag: the decimal Adler-32 checksum of the tag's
/// bytes (Go `hash/adler32`). `adler32_id("6.0.4") == "48955639"`.
pub fn adler32_id(tag: &str) -> String {
    const MOD: u32 = 65_521;
    let (mut a, mut b) = (1u32, 0u32);
    for &byte in tag.as_bytes() {
        a = (a + u32::from(byte)) % MOD;
        b = (b + a) % MOD;
    }
    ((b << 16) | a).to_string()
}
