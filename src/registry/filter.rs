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

use std::borrow::Cow;
use std::cmp::Ordering;
use std::sync::LazyLock;

use regex::{Captures, Regex};
use semver::{BuildMetadata, Prerelease, Version};
use serde::{Deserialize, Serialize};

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

// ---------------------------------------------------------------------------
// Go `regexp.Expand` templates.

/// One piece of an `extract` template.
#[derive(Debug, Clone)]
enum Piece {
    Literal(String),
    /// `$1` / `${1}`: a numbered group.
    Group(usize),
    /// `$name` / `${name}`: the first group of that name that took part in
    /// the match.
    Named(Vec<usize>),
}

/// An `extract` template, parsed once with Go's `regexp.Expand` rules and
/// checked against the pattern's groups.
#[derive(Debug, Clone)]
struct Template {
    pieces: Vec<Piece>,
}

/// Go's `unicode.IsLetter(r) || unicode.IsDigit(r) || r == '_'` (exact for
/// ASCII; Unicode's alphabetic/numeric properties beyond it).
fn is_name_char(c: char) -> bool {
    c == '_' || c.is_alphanumeric()
}

/// Go's `regexp.extract`: the name from a leading `name` or `{name}` (the
/// `$` already removed); the number when it is one (no leading zeros, under
/// 10^8), and the rest. `None`: malformed (the `$` is then literal).
fn go_extract(s: &str) -> Option<(&str, Option<usize>, &str)> {
    let (brace, body) = match s.strip_prefix('{') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let end = body
        .char_indices()
        .find(|&(_, c)| !is_name_char(c))
        .map_or(body.len(), |(i, _)| i);
    if end == 0 {
        return None;
    }
    let name = &body[..end];
    let rest = if brace {
        body[end..].strip_prefix('}')?
    } else {
        &body[end..]
    };
    let mut num: Option<usize> = Some(0);
    for b in name.bytes() {
        num = match num {
            Some(n) if b.is_ascii_digit() && n < 100_000_000 => {
                Some(n * 10 + usize::from(b - b'0'))
            }
            _ => None,
        };
        if num.is_none() {
            break;
        }
    }
    if name.len() > 1 && name.starts_with('0') {
        num = None;
    }
    Some((name, num, rest))
}

impl Template {
    /// Parses `template` (Go `regexp.Expand` syntax) against `pattern`.
    /// Unlike Go, which expands an unknown group to "", a reference to a
    /// group `pattern` does not have is an error, since it would silently
    /// make every value the same.
    fn parse(template: &str, pattern: &Regex) -> Result<Template, FilterError> {
        let mut pieces = Vec::new();
        let mut literal = String::new();
        let mut rest = template;
        while let Some(i) = rest.find('$') {
            literal.push_str(&rest[..i]);
            rest = &rest[i + 1..];
            if let Some(after) = rest.strip_prefix('$') {
                literal.push('$');
                rest = after;
                continue;
            }
            let Some((name, num, after)) = go_extract(rest) else {
                literal.push('$');
                continue;
            };
            rest = after;
            if !literal.is_empty() {
                pieces.push(Piece::Literal(std::mem::take(&mut literal)));
            }
            match num {
                Some(n) => {
                    if n >= pattern.captures_len() {
                        return Err(FilterError::new(
                            "extract",
                            format!(
                                "{template:?} refers to group {n}, but pattern {:?} has only {} group(s)",
                                pattern.as_str(),
                                pattern.captures_len() - 1
                            ),
                        ));
                    }
                    pieces.push(Piece::Group(n));
                }
                None => {
                    let indexes: Vec<usize> = pattern
                        .capture_names()
                        .enumerate()
                        .filter(|(_, n)| *n == Some(name))
                        .map(|(i, _)| i)
                        .collect();
                    if indexes.is_empty() {
                        let names: Vec<&str> = pattern.capture_names().flatten().collect();
                        let hint = if name.starts_with(|c: char| c.is_ascii_digit()) {
                            " (Go reads $1x as ${1x}: write ${1}x)"
                        } else {
                            ""
                        };
                        return Err(FilterError::new(
                            "extract",
                            format!(
                                "{template:?} refers to group {name:?}, which pattern {:?} does not name (named groups: {}){hint}",
                                pattern.as_str(),
                                if names.is_empty() {
                                    "none".to_owned()
                                } else {
                                    names.join(", ")
                                }
                            ),
                        ));
                    }
                    pieces.push(Piece::Named(indexes));
                }
            }
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            pieces.push(Piece::Literal(literal));
        }
        Ok(Template { pieces })
    }

    /// The template expanded from one match.
    fn expand(&self, caps: &Captures) -> String {
        let mut out = String::new();
        for piece in &self.pieces {
            match piece {
                Piece::Literal(s) => out.push_str(s),
                Piece::Group(n) => {
                    if let Some(m) = caps.get(*n) {
                        out.push_str(m.as_str());
                    }
                }
                Piece::Named(indexes) => {
                    if let Some(m) = indexes.iter().find_map(|&i| caps.get(i)) {
                        out.push_str(m.as_str());
                    }
                }
            }
        }
        out
    }
}

// ---------------------------------------------------------------------------
// Versions: Masterminds/semver v3 `NewVersion` and fluxcd/pkg `ParseVersion`.

/// Masterminds `NewVersion` (with its default `CoerceNewVersion`): the
/// loose form `v?N(.N)?(.N)?(-pre)?(+build)?`, missing numbers 0, leading
/// zeros allowed in the numbers (not in numeric pre-release identifiers).
fn masterminds_new_version(s: &str) -> Option<Version> {
    fn number(s: &str) -> Option<(u64, &str)> {
        let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        if end == 0 {
            return None;
        }
        Some((s[..end].parse().ok()?, &s[end..]))
    }
    let s = s.strip_prefix('v').unwrap_or(s);
    let (major, mut rest) = number(s)?;
    let mut minor = 0;
    let mut patch = 0;
    if let Some(r) = rest.strip_prefix('.') {
        (minor, rest) = number(r)?;
        if let Some(r) = rest.strip_prefix('.') {
            (patch, rest) = number(r)?;
        }
    }
    let (rest, build) = match rest.split_once('+') {
        Some((r, b)) => (r, Some(b)),
        None => (rest, None),
    };
    // Identifiers may not be empty (`Prerelease::new("")` would be EMPTY).
    let pre = match rest.strip_prefix('-') {
        Some("") => return None,
        Some(p) => Prerelease::new(p).ok()?,
        None if rest.is_empty() => Prerelease::EMPTY,
        None => return None,
    };
    let build = match build {
        Some("") => return None,
        Some(b) => BuildMetadata::new(b).ok()?,
        None => BuildMetadata::EMPTY,
    };
    Some(Version {
        major,
        minor,
        patch,
        pre,
        build,
    })
}

/// A version as Flux parses a tag (fluxcd/pkg `version.ParseVersion`): it
/// must have at least two dots, then Masterminds `NewVersion` (optional
/// leading `v`, leading zeros allowed, e.g. `v2025.07.03`). `None` when it
/// does not parse.
pub fn parse_flux_version(tag: &str) -> Option<Version> {
    if tag.matches('.').count() < 2 {
        return None;
    }
    masterminds_new_version(tag)
}

// ---------------------------------------------------------------------------
// Masterminds/semver v3 constraints.

/// Go's `\s` (ASCII only).
const WS: &str = r"[\t\n\f\r ]";
/// The operators, in Masterminds' alternation order (leftmost-first).
const OPS: &str = r"=||!=|>|<|>=|=>|<=|=<|~|~>|\^";
/// Masterminds' `cvRegex` (note the literal `|` in the classes, as upstream).
const CV: &str = r"v?([0-9|x|X|\*]+)(\.[0-9|x|X|\*]+)?(\.[0-9|x|X|\*]+)?(-([0-9A-Za-z\-]+(\.[0-9A-Za-z\-]+)*))?(\+([0-9A-Za-z\-]+(\.[0-9A-Za-z\-]+)*))?";

/// Masterminds' constraint regexes, built once.
struct ConstraintRegexes {
    /// `constraintRegex`: one comparator.
    single: Regex,
    /// `constraintRangeRegex`: `A - B`.
    range: Regex,
    /// `findConstraintRegex`: the comparators of an AND group.
    find: Regex,
    /// `validConstraintRegex`: a whole AND group.
    valid: Regex,
}

static CONSTRAINT_REGEXES: LazyLock<Result<ConstraintRegexes, regex::Error>> =
    LazyLock::new(|| {
        Ok(ConstraintRegexes {
            single: Regex::new(&format!(r"^{WS}*({OPS}){WS}*({CV}){WS}*$"))?,
            range: Regex::new(&format!(r"{WS}*({CV}){WS}+-{WS}+({CV}){WS}*"))?,
            find: Regex::new(&format!(r"({OPS}){WS}*({CV})"))?,
            valid: Regex::new(&format!(
                r"^({WS}*({OPS}){WS}*({CV}){WS}*)((?:{WS}+|,{WS}*)({OPS}){WS}*({CV}){WS}*)*$"
            ))?,
        })
    });

/// A comparator's operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    /// `` / `=`: equal, or tilde when the version has wildcards.
    TildeOrEqual,
    /// `!=`.
    NotEqual,
    /// `>`.
    Greater,
    /// `<`.
    Less,
    /// `>=` / `=>`.
    GreaterEqual,
    /// `<=` / `=<`.
    LessEqual,
    /// `~` / `~>`.
    Tilde,
    /// `^`.
    Caret,
}

/// One comparator of an AND group (Masterminds `constraint`).
#[derive(Debug, Clone)]
struct Comparator {
    op: Op,
    con: Version,
    dirty: bool,
    minor_dirty: bool,
    patch_dirty: bool,
}

impl Comparator {
    /// Masterminds `parseConstraint` on one comparator string.
    fn parse(rx: &ConstraintRegexes, c: &str) -> Result<Comparator, String> {
        let m = rx
            .single
            .captures(c)
            .ok_or_else(|| format!("improper constraint: {c:?}"))?;
        let g = |i: usize| m.get(i).map_or("", |m| m.as_str());
        let op = match g(1) {
            "" | "=" => Op::TildeOrEqual,
            "!=" => Op::NotEqual,
            ">" => Op::Greater,
            "<" => Op::Less,
            ">=" | "=>" => Op::GreaterEqual,
            "<=" | "=<" => Op::LessEqual,
            "~" | "~>" => Op::Tilde,
            "^" => Op::Caret,
            other => return Err(format!("improper constraint: unknown operator {other:?}")),
        };
        let is_x = |s: &str| matches!(s, "x" | "X" | "*");
        let (major, minor, patch, pre) = (g(3), g(4), g(5), g(6));
        let (mut dirty, mut minor_dirty, mut patch_dirty) = (false, false, false);
        let ver: Cow<str> = if is_x(major) || major.is_empty() {
            dirty = true;
            Cow::Owned(format!("0.0.0{pre}"))
        } else if is_x(minor.trim_start_matches('.')) || minor.is_empty() {
            dirty = true;
            minor_dirty = true;
            Cow::Owned(format!("{major}.0.0{pre}"))
        } else if is_x(patch.trim_start_matches('.')) || patch.is_empty() {
            dirty = true;
            patch_dirty = true;
            Cow::Owned(format!("{major}{minor}.0{pre}"))
        } else {
            Cow::Borrowed(g(2))
        };
        let con = masterminds_new_version(&ver)
            .ok_or_else(|| format!("constraint parser error: {:?} is not a version", g(2)))?;
        Ok(Comparator {
            op,
            con,
            dirty,
            minor_dirty,
            patch_dirty,
        })
    }

    /// Masterminds' `constraint*` functions.
    fn check(&self, v: &Version, include_pre: bool) -> bool {
        // Every operator first refuses a pre-release the group is not
        // looking for.
        if !v.pre.is_empty() && !include_pre {
            return false;
        }
        let c = &self.con;
        let cmp = v.cmp_precedence(c);
        match self.op {
            Op::TildeOrEqual if self.dirty => self.tilde(v, cmp),
            Op::TildeOrEqual => cmp == Ordering::Equal,
            Op::NotEqual => {
                if self.dirty {
                    if c.major != v.major {
                        return true;
                    }
                    if c.minor != v.minor && !self.minor_dirty {
                        return true;
                    } else if self.minor_dirty {
                        return false;
                    } else if c.patch != v.patch && !self.patch_dirty {
                        return true;
                    } else if self.patch_dirty {
                        // Go: comparePrerelease(v.pre, c.pre) != 0, i.e. the
                        // pre-releases differ (valid ones have one spelling).
                        return (!v.pre.is_empty() || !c.pre.is_empty()) && v.pre != c.pre;
                    }
                }
                cmp != Ordering::Equal
            }
            Op::Greater => {
                if !self.dirty {
                    return cmp == Ordering::Greater;
                }
                if v.major > c.major {
                    true
                } else if v.major < c.major || self.minor_dirty {
                    false
                } else if self.patch_dirty {
                    v.minor > c.minor
                } else {
                    cmp == Ordering::Greater
                }
            }
            Op::Less => cmp == Ordering::Less,
            Op::GreaterEqual => cmp != Ordering::Less,
            Op::LessEqual => {
                if !self.dirty {
                    return cmp != Ordering::Greater;
                }
                !(v.major > c.major
                    || (v.major == c.major && v.minor > c.minor && !self.minor_dirty))
            }
            Op::Tilde => self.tilde(v, cmp),
            Op::Caret => {
                if cmp == Ordering::Less {
                    false
                } else if c.major > 0 || self.minor_dirty {
                    v.major == c.major
                } else if v.major > 0 {
                    false
                } else if c.minor > 0 || self.patch_dirty {
                    v.minor == c.minor
                } else if v.minor > 0 {
                    false
                } else {
                    c.patch == v.patch
                }
            }
        }
    }

    /// Masterminds `constraintTilde` (after the pre-release test).
    fn tilde(&self, v: &Version, cmp: Ordering) -> bool {
        let c = &self.con;
        if cmp == Ordering::Less {
            return false;
        }
        if c.major == 0 && c.minor == 0 && c.patch == 0 && !self.minor_dirty && !self.patch_dirty {
            return true;
        }
        if v.major != c.major {
            return false;
        }
        v.minor == c.minor || self.minor_dirty
    }
}

/// A Masterminds/semver v3 constraint (`NewConstraint` / `Check`), as Flux
/// uses it: `||` separates OR groups; within a group comparators are
/// separated by commas or spaces (AND); operators `=` `!=` `>` `<` `>=`
/// `=>` `<=` `=<` `~` `~>` `^`; hyphen ranges `1.2 - 1.4.5`; wildcards `x`
/// `X` `*` and partial versions. A version with a pre-release satisfies a
/// group only if some comparator of that group has a pre-release.
#[derive(Debug, Clone)]
pub struct SemverConstraint {
    /// The OR groups: comparators ANDed, and whether any has a pre-release.
    groups: Vec<(Vec<Comparator>, bool)>,
}

impl SemverConstraint {
    /// Masterminds `NewConstraint`. The error says why, as Masterminds
    /// does (`improper constraint: "..."`).
    pub fn parse(constraint: &str) -> Result<SemverConstraint, String> {
        let rx = match &*CONSTRAINT_REGEXES {
            Ok(rx) => rx,
            Err(e) => {
                return Err(format!(
                    "internal error building the constraint parser: {e}"
                ));
            }
        };
        // rewriteRange: each `A - B` becomes `>= A, <= B `.
        let mut c = constraint.to_owned();
        let ranges: Vec<(String, String)> = rx
            .range
            .captures_iter(constraint)
            .map(|m| {
                let g = |i: usize| m.get(i).map_or("", |m| m.as_str());
                (g(0).to_owned(), format!(">= {}, <= {} ", g(1), g(11)))
            })
            .collect();
        for (from, to) in ranges {
            c = c.replacen(&from, &to, 1);
        }
        let mut groups = Vec::new();
        for segment in c.split("||") {
            if !rx.valid.is_match(segment) {
                return Err(format!("improper constraint: {segment:?}"));
            }
            let mut parts: Vec<&str> = rx.find.find_iter(segment).map(|m| m.as_str()).collect();
            if parts.is_empty() {
                parts.push(segment);
            }
            let comparators = parts
                .into_iter()
                .map(|p| Comparator::parse(rx, p))
                .collect::<Result<Vec<_>, _>>()?;
            let has_pre = comparators.iter().any(|c| !c.con.pre.is_empty());
            groups.push((comparators, has_pre));
        }
        Ok(SemverConstraint { groups })
    }

    /// Masterminds `Constraints.Check` (with `IncludePrerelease` false, as
    /// Flux): some OR group whose comparators all hold.
    pub fn check(&self, v: &Version) -> bool {
        self.groups
            .iter()
            .any(|(comparators, has_pre)| comparators.iter().all(|c| c.check(v, *has_pre)))
    }
}

// ---------------------------------------------------------------------------
// Go `strconv.ParseFloat(s, 64)`, as ImagePolicy's numerical policy.

/// Go's `cmp.Compare` on floats: NaN below everything, NaNs equal, -0 == 0.
fn go_cmp_f64(a: f64, b: f64) -> Ordering {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Less,
        (false, true) => Ordering::Greater,
        (false, false) => a.partial_cmp(&b).unwrap_or(Ordering::Equal),
    }
}

/// Go `strconv.underscoreOK`: underscores only between digits (or between
/// a base prefix and a digit).
fn go_underscore_ok(s: &str) -> bool {
    let b = s.as_bytes();
    let b = match b.first() {
        Some(b'+' | b'-') => &b[1..],
        _ => b,
    };
    let mut saw = b'^';
    let mut i = 0;
    let mut hex = false;
    if b.len() >= 2 && b[0] == b'0' && matches!(b[1].to_ascii_lowercase(), b'b' | b'o' | b'x') {
        i = 2;
        saw = b'0';
        hex = b[1].eq_ignore_ascii_case(&b'x');
    }
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_digit() || (hex && c.is_ascii_hexdigit()) {
            saw = b'0';
        } else if c == b'_' {
            if saw != b'0' {
                return false;
            }
            saw = b'_';
        } else {
            if saw == b'_' {
                return false;
            }
            saw = b'!';
        }
        i += 1;
    }
    saw != b'_'
}

/// Go `strconv.special`: `[+-]inf`, `[+-]infinity`, `nan` (any case), as
/// (value, bytes consumed).
fn go_special(s: &str) -> Option<(f64, usize)> {
    let b = s.as_bytes();
    let prefix_len = |s: &[u8], word: &[u8]| {
        s.iter()
            .zip(word)
            .take_while(|(x, y)| x.to_ascii_lowercase() == **y)
            .count()
    };
    let (sign, nsign) = match b.first()? {
        b'+' => (1.0, 1),
        b'-' => (-1.0, 1),
        b'n' | b'N' => {
            return (prefix_len(b, b"nan") == 3).then_some((f64::NAN, 3));
        }
        _ => (1.0, 0),
    };
    let mut n = prefix_len(&b[nsign..], b"infinity");
    if 3 < n && n < 8 {
        n = 3;
    }
    (n == 3 || n == 8).then_some((sign * f64::INFINITY, nsign + n))
}

/// `q * 2^e` for `q < 2^53` and a representable result (exact).
fn scale_exact(q: u64, e: i64) -> f64 {
    let pow2 = |e: i64| -> f64 {
        if e >= -1022 {
            f64::from_bits(((e + 1023) as u64) << 52)
        } else {
            f64::from_bits(1u64 << (e + 1074))
        }
    };
    // Split so neither factor over- or underflows on its own.
    let half = e / 2;
    (q as f64) * pow2(half) * pow2(e - half)
}

/// A hexadecimal mantissa `m` (with a sticky low bit) times `2^e`, rounded
/// to nearest even as an f64; `None` on overflow (Go's `ErrRange`).
fn hex_to_f64(m: u128, e: i64) -> Option<f64> {
    if m == 0 {
        return Some(0.0);
    }
    let bits = i64::from(128 - m.leading_zeros());
    let top = bits - 1 + e;
    if top > 1023 {
        return None;
    }
    let lsb = if top >= -1022 { top - 52 } else { -1074 };
    let drop = lsb - e;
    let (mut q, mut lsb) = if drop <= 0 {
        (m << (-drop) as u32, lsb)
    } else if drop >= 129 {
        (0, lsb)
    } else if drop == 128 {
        // m < 2^128: rounds to 1 only above one half ulp (2^127).
        (u128::from(m > 1u128 << 127), lsb)
    } else {
        let d = drop as u32;
        let q = m >> d;
        let rem = m & ((1u128 << d) - 1);
        let half = 1u128 << (d - 1);
        let up = rem > half || (rem == half && q & 1 == 1);
        (q + u128::from(up), lsb)
    };
    if q >= 1u128 << 53 {
        q >>= 1;
        lsb += 1;
    }
    if lsb + 52 > 1023 && q >= 1u128 << 52 {
        return None;
    }
    let f = scale_exact(q as u64, lsb);
    f.is_finite().then_some(f)
}

/// Go `strconv.ParseFloat(s, 64)`: decimal or hexadecimal (`0x1.8p3`)
/// floats, `_` digit separators, `inf`/`infinity`/`nan`; `None` where Go
/// returns an error (syntax, or out of range).
pub(crate) fn go_parse_float(s: &str) -> Option<f64> {
    if let Some((f, n)) = go_special(s) {
        return (n == s.len()).then_some(f);
    }
    let b = s.as_bytes();
    let mut i = 0;
    let neg = match b.first()? {
        b'+' => {
            i += 1;
            false
        }
        b'-' => {
            i += 1;
            true
        }
        _ => false,
    };
    let hex = i + 2 < b.len() && b[i] == b'0' && b[i + 1].eq_ignore_ascii_case(&b'x');
    if hex {
        i += 2;
    }
    let mut underscores = false;
    let mut saw_dot = false;
    let mut saw_digits = false;
    // Hexadecimal: significant digits into `mant` (with a sticky bit for
    // the ones that do not fit) and the binary exponent they imply.
    let mut mant: u128 = 0;
    let mut mant_exp: i64 = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'_' {
            underscores = true;
        } else if c == b'.' {
            if saw_dot {
                break;
            }
            saw_dot = true;
        } else if c.is_ascii_digit() || (hex && c.is_ascii_hexdigit()) {
            saw_digits = true;
            if hex {
                let d = u128::from((c as char).to_digit(16).unwrap_or_default());
                if mant >> 120 == 0 {
                    mant = (mant << 4) | d;
                    if saw_dot {
                        mant_exp -= 4;
                    }
                } else {
                    mant |= u128::from(d != 0);
                    if !saw_dot {
                        mant_exp += 4;
                    }
                }
            }
        } else {
            break;
        }
        i += 1;
    }
    if !saw_digits {
        return None;
    }
    let exp_char = if hex { b'p' } else { b'e' };
    let mut exp: i64 = 0;
    if i < b.len() && b[i].eq_ignore_ascii_case(&exp_char) {
        i += 1;
        let mut esign = 1;
        match b.get(i) {
            Some(b'+') => i += 1,
            Some(b'-') => {
                i += 1;
                esign = -1;
            }
            _ => {}
        }
        if !b.get(i).is_some_and(u8::is_ascii_digit) {
            return None;
        }
        while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'_') {
            if b[i] == b'_' {
                underscores = true;
            } else if exp < 10_000 {
                exp = exp * 10 + i64::from(b[i] - b'0');
            }
            i += 1;
        }
        exp *= esign;
    } else if hex {
        return None;
    }
    if i != b.len() || (underscores && !go_underscore_ok(s)) {
        return None;
    }
    let value = if hex {
        hex_to_f64(mant, mant_exp + exp)?
    } else {
        let digits: String = s.chars().filter(|&c| c != '_').collect();
        let f: f64 = digits.parse().ok()?;
        if !f.is_finite() {
            return None;
        }
        f.abs()
    };
    Some(if neg { -value } else { value })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn compile(yaml: &str) -> CompiledFilter {
        let f: Filter = serde_yaml_ng::from_str(yaml).unwrap_or_else(|e| panic!("{yaml}: {e}"));
        f.compile().unwrap_or_else(|e| panic!("{yaml}: {e}"))
    }

    fn run(yaml: &str, tags: &[&str]) -> Vec<String> {
        compile(yaml).apply(tags.iter().copied())
    }

    fn compile_err(yaml: &str) -> FilterError {
        let f: Filter = serde_yaml_ng::from_str(yaml).unwrap_or_else(|e| panic!("{yaml}: {e}"));
        match f.compile() {
            Ok(c) => panic!("{yaml} compiled: {c:?}"),
            Err(e) => e,
        }
    }

    fn check(constraint: &str, version: &str) -> bool {
        let c = SemverConstraint::parse(constraint)
            .unwrap_or_else(|e| panic!("constraint {constraint:?}: {e}"));
        let v = masterminds_new_version(version)
            .unwrap_or_else(|| panic!("version {version:?} does not parse"));
        c.check(&v)
    }

    #[test]
    fn flux_default_is_reverse_byte_order_with_its_wart() {
        let tags = ["v0.3.9", "v0.3.10", "v0.3.8", "latest", "v0.3.9"];
        assert_eq!(
            run("{}", &tags),
            ["v0.3.9", "v0.3.9", "v0.3.8", "v0.3.10", "latest"]
        );
        // flux-operator filters_test.go cases.
        let tags = ["v1.0.0", "v1.1.0", "v2.0.0"];
        assert_eq!(run("{}", &tags), ["v2.0.0", "v1.1.0", "v1.0.0"]);
        assert_eq!(run(r"includeTag: '^v1\.'", &tags), ["v1.1.0", "v1.0.0"]);
        assert_eq!(run(r"excludeTag: '^v2\.'", &tags), ["v1.1.0", "v1.0.0"]);
        let tags = ["2024.01.01", "2024.01.02", "2024.01.03"];
        assert_eq!(run("limit: 1", &tags), ["2024.01.03"]);
    }

    #[test]
    fn include_and_exclude_are_unanchored() {
        let tags = ["v1.0.0", "v1.1.0", "v2.0.0", "v1.2.0", "rubbish"];
        assert_eq!(
            run(r"{includeTag: '1\.', excludeTag: '0\.0$'}", &tags),
            ["v1.2.0", "v1.1.0"]
        );
        // An empty expression is "not set", as Go's omitempty.
        assert_eq!(run("{includeTag: '', excludeTag: ''}", &tags).len(), 5);
    }

    #[test]
    fn flux_semver_filters_and_sorts_newest_first() {
        let tags = ["v1.0.0", "v1.1.0", "v2.0.0", "v1.2.0", "rubbish", "garbage"];
        assert_eq!(
            run("semver: '>= 1.0.0 < 2.0.0'", &tags),
            ["v1.2.0", "v1.1.0", "v1.0.0"]
        );
        assert_eq!(
            run(
                r"{includeTag: '^v1\.', excludeTag: '^v1\.0\.0$', semver: '>= 1.0.0 < 2.0.0', limit: 2}",
                &tags
            ),
            ["v1.2.0", "v1.1.0"]
        );
        // fluxcd/pkg version.Sort's test: stable among equal versions.
        let tags = [
            "v1.2.0",
            "v1.2.3",
            "v1.3.0",
            "1.2.4",
            "v1.1.0",
            "something-invalid",
            "v1.2.4",
            "another-invalid",
            "1.2.4",
        ];
        assert_eq!(
            run("semver: '>= 1.2.0, < 1.3.0'", &tags),
            ["1.2.4", "v1.2.4", "1.2.4", "v1.2.3", "v1.2.0"]
        );
        // Semver ordering fixes the wart.
        assert_eq!(
            run("semver: '*'", &["v0.3.9", "v0.3.10", "v0.3.8"]),
            ["v0.3.10", "v0.3.9", "v0.3.8"]
        );
    }

    #[test]
    fn flux_parse_version_rules() {
        // fluxcd/pkg version_test.go TestParseVersion.
        for (tag, ok) in [
            ("v1.2.3", true),
            ("v2025.07.03", true),
            ("v1.0", false),
            ("v1", false),
            ("v1.2.beta", false),
            ("v1.2-5", false),
            ("v1.2-beta5", false),
            ("\nv1.2", false),
            ("v1.2.0-x.Y.0+metadata", true),
            ("v1.2.0-x.Y.0+metadata-width-hypen", true),
            ("v1.2.3-rc1-with-hypen", true),
            ("v1.2.3.4", false),
            // Two dots anywhere, then NewVersion's coercion: 1.2.0-beta.5.
            ("v1.2-beta.5", true),
            ("V1.2.3", false),
            ("1.2.3-01", false),
            ("1.2.3-rc.0a1", true),
            ("1.2.3+", false),
            ("1.2.3-", false),
            ("99999999999999999999.0.0", false),
            ("", false),
        ] {
            assert_eq!(parse_flux_version(tag).is_some(), ok, "{tag:?}");
        }
        let v = parse_flux_version("v2025.07.03").unwrap();
        assert_eq!((v.major, v.minor, v.patch), (2025, 7, 3));
        let v = parse_flux_version("v1.2-beta.5").unwrap();
        assert_eq!(v.to_string(), "1.2.0-beta.5");
    }

    #[test]
    fn masterminds_operators() {
        // Masterminds/semver v3 constraints_test.go (TestConstraintsCheck).
        for (c, v, want) in [
            ("=2.0.0", "1.2.3", false),
            ("=2.0.0", "2.0.0", true),
            ("=2.0", "2.0.1", true),
            ("= 2.0", "1.2.3", false),
            ("4.1", "4.1.0", true),
            ("2.1", "2.2.1", false),
            ("v1.2", "1.2.9", true),
            ("!=4.1.0", "4.1.0", false),
            ("!=4.1.0", "4.1.1", true),
            ("!=4.1", "4.1.0", false),
            ("!=4.1", "4.1.1", false),
            ("!=4.1", "5.1.0", true),
            ("!=4.1-alpha", "4.1.0", true),
            ("!=4.1-alpha", "4.1.0-alpha", false),
            ("!=4.x", "4.1.0", false),
            ("!=4.x", "5.1.0", true),
            ("!=4.1.x", "4.2.0", true),
            ("!=4.2.x", "4.2.3", false),
            (">1.1", "4.1.0", true),
            (">1.1", "1.1.0", false),
            (">11", "11.1.0", false),
            (">11.1", "11.1.1", false),
            (">11.1", "11.2.1", true),
            (">0", "0.0.1-alpha", false),
            (">0.0.0-0", "0.0.0-alpha", true),
            (">1.2.3-alpha.1", "1.3.3-alpha.2", true),
            ("<11", "11.1.0", false),
            ("<1.1", "0.1.0", true),
            ("<1.1", "1.1.0", false),
            ("<1.x", "0.1.1", true),
            ("<1.x", "1.1.1", false),
            ("<1.1.x", "1.0.500", true),
            ("<0-z", "0.0.0-alpha", true),
            (">=1.1", "1.1.0", true),
            (">=1.1", "0.0.9", false),
            (">=1.1", "4.1.0-beta", false),
            ("=> 1.2", "1.2.0", true),
            (">=0-0", "0.0.1-alpha", true),
            ("<=1.1", "1.1.1", true),
            ("<=1.1", "1.2.3", false),
            ("<=1.x", "1.9.0", true),
            ("<=2.x", "3.0.0", false),
            ("<=11", "11.2.3", true),
            ("=< 1.2", "1.2.9", true),
            ("<=1.1-a", "0.1.0-alpha", true),
            ("~1.2.3", "1.2.4", true),
            ("~1.2.3", "1.3.4", false),
            ("~1.2.3", "1.2.2", false),
            ("~1", "1.3.5", true),
            ("~1", "2.1.1", false),
            ("~>1.2", "1.2.9", true),
            ("~>1.2", "1.3.0", false),
            ("~*", "2.1.1", true),
            ("~0.0.0", "1.2.3", true),
            ("~1.2.3-beta.2", "1.2.4-beta.2", true),
            ("~1.2.3-beta.2", "1.3.4-beta.2", false),
            ("^1.2.3", "1.8.9", true),
            ("^1.2.3", "2.8.9", false),
            ("^1.2.3", "1.2.1", false),
            ("^1.x", "1.1.1", true),
            ("^1.x", "2.1.1", false),
            ("^0.2.3", "0.2.5", true),
            ("^0.2.3", "0.3.0", false),
            ("^0.2", "0.2.5", true),
            ("^0.2", "0.5.6", false),
            ("^0.0.3", "0.0.3", true),
            ("^0.0.3", "0.0.4", false),
            ("^0.0", "0.0.3", true),
            ("^0.0", "0.1.4", false),
            ("^0", "0.2.3", true),
            ("^0", "1.1.4", false),
            ("^0.0.0", "1.2.3", false),
            ("^1.2.0-alpha.2", "1.2.0-alpha.1", false),
            ("^1.1.2-alpha", "1.2.1-beta1", true),
        ] {
            assert_eq!(check(c, v), want, "{c:?} against {v:?}");
        }
    }

    #[test]
    fn masterminds_wildcards_partials_and_x() {
        for (c, v, want) in [
            ("*", "4.5.6", true),
            ("*", "1.2.3-alpha.1", false),
            ("*-0", "1.2.3-alpha.1", true),
            ("x", "0.0.1", true),
            ("X", "7.0.0", true),
            ("2.*", "2.1.1", true),
            ("2.*", "3.4.5", false),
            ("2.x", "2.9.9", true),
            ("2.1.*", "2.1.1", true),
            ("2.1.*", "2.2.1", false),
            ("2.1.X", "2.1.7", true),
            ("1.x", "1.4", true),
            ("2", "2.1.1", true),
            ("2", "3.4.5", false),
            ("0.x.x", "1.2.3", false),
            ("0.0.x", "1.2.3", false),
        ] {
            assert_eq!(check(c, v), want, "{c:?} against {v:?}");
        }
    }

    #[test]
    fn masterminds_and_or_and_hyphen_ranges() {
        for (c, v, want) in [
            (">1.1, <2", "1.2.1", true),
            (">1.1, <2", "1.1.1", false),
            (">1.1 <2", "1.2.1", true),
            (">1.1    <3", "4.3.2", false),
            (">=1.1, <2, !=1.2.3", "1.2.3", false),
            (">=1.1 <2 !=1.2.3 || > 3", "4.1.2", true),
            (">=1.1 <2 !=1.2.3 || > 3", "3.1.2", false),
            (">=1.1 <2 !=1.2.3 || >= 3", "3.0.0", true),
            (">= 1.1, <2, !=1.2.3 || > 3", "1.2.3", false),
            ("^1 || ^3", "3.4.0", true),
            ("^1 || ^3", "2.4.0", false),
            ("1.1 - 2", "1.1.1", true),
            ("1.2 - 1.4.5", "1.4.5", true),
            ("1.2 - 1.4.5", "1.4.6", false),
            ("1.2 - 1.4.5", "1.1.9", false),
            ("1.5.0 - 4.5", "3.7.0", true),
            ("1.1 - 3", "4.3.2", false),
            ("1.0.0 - 2.0.0 <=2.0.0", "1.5.0", true),
            ("1.0.0 - 2.0.0, <=2.0.0", "1.5.0", true),
            // Without spaces around '-' it is a pre-release, not a range.
            ("1.1-3", "4.3.2", false),
        ] {
            assert_eq!(check(c, v), want, "{c:?} against {v:?}");
        }
    }

    #[test]
    fn masterminds_prerelease_rule_is_per_or_group() {
        // A pre-release passes a group only if one of that group's
        // comparators has a pre-release (v3.3+ rule), then compares normally.
        assert!(check(">=1.0.0-0 <2.0.0", "1.5.0-beta.1"));
        assert!(!check(">=1.0.0 <2.0.0", "1.5.0-beta.1"));
        assert!(!check(">=1.0.0 <2.0.0 || >=3.0.0-0", "1.5.0-beta.1"));
        assert!(check(">=1.0.0 <2.0.0 || >=1.0.0-0", "1.5.0-beta.1"));
        assert!(check("~1.1-alpha", "1.1.1-beta"));
        assert!(!check("~1.1.1-beta", "1.1.1-alpha"));
        assert!(check("~1.1.1-beta", "1.1.1"));
        // Through the filter: stable >=0.0.0 keeps release candidates out.
        let tags = ["v1.2.3", "v1.3.0-rc.1", "v1.2.4-rc.abc"];
        assert_eq!(run("semver: '>=0.0.0'", &tags), ["v1.2.3"]);
        assert_eq!(
            run("semver: '>=0.0.0-0'", &tags),
            ["v1.3.0-rc.1", "v1.2.4-rc.abc", "v1.2.3"]
        );
    }

    #[test]
    fn masterminds_constraint_syntax_errors() {
        // Masterminds TestNewConstraint.
        for (c, ok) in [
            (">= 1.1", true),
            (">40.50.60, < 50.70", true),
            ("v2.3.5-20161202202307-sha.e8fc5e5", true),
            (">= 1.2.3 < 2.0 || => 3.0 < 4", true),
            ("3 - 4 || => 3.0, < 4", true),
            ("12.3.34 ~1.2.3", true),
            ("~>1", true),
            (">= bar", false),
            ("BAR >= 1.2.3", false),
            ("foo", false),
            ("12.3.4.1234", false),
            ("12.3.34~ 1.2.3", false),
            (">=1.0.0<2.0.0", false),
            ("1.2.3-01", false),
            ("1x.2", false),
            ("", false),
            ("1 ||", false),
        ] {
            assert_eq!(SemverConstraint::parse(c).is_ok(), ok, "{c:?}");
        }
    }

    #[test]
    fn seed_003_filters() {
        let tags = [
            "v1.2.3",
            "v1.2.4-rc.0a1b2c",
            "v1.2.4-rc.ffee01",
            "v1.2.10",
            "v0.9.0",
            "production-latest",
            "production-latest-old",
            "v1.3.0-rc.abc123",
            "latest",
        ];
        // develop: release candidates, as includeTag (Flux: reverse bytes).
        assert_eq!(
            run(
                r"{includeTag: '^v\d+\.\d+\.\d+-rc\.[a-f0-9]+$', limit: 1}",
                &tags
            ),
            ["v1.3.0-rc.abc123"]
        );
        // ... and as pattern ordered by semver.
        assert_eq!(
            run(
                r"{pattern: '^v\d+\.\d+\.\d+-rc\.[a-f0-9]+$', order: {by: semver}}",
                &tags
            ),
            ["v1.3.0-rc.abc123", "v1.2.4-rc.ffee01", "v1.2.4-rc.0a1b2c"]
        );
        // staging: stable semver, newest first (v1.2.10 > v1.2.3).
        assert_eq!(run("{semver: '>=0.0.0', limit: 1}", &tags), ["v1.2.10"]);
        assert_eq!(
            run(
                r"{includeTag: '^v[0-9]+\.[0-9]+\.[0-9]+$', order: {by: semver}}",
                &tags
            ),
            ["v1.2.10", "v1.2.3", "v0.9.0"]
        );
        // production: one fixed tag.
        assert_eq!(
            run(
                "includeTag: production-latest",
                &["v1", "production-latest"]
            ),
            ["production-latest"]
        );
        assert_eq!(
            run("includeTag: '^production-latest$'", &tags),
            ["production-latest"]
        );
    }

    #[test]
    fn extract_named_and_numbered_groups() {
        let tags = ["main-abc-100", "main-def-20", "feat-xyz-300", "main-bad"];
        // Numbered group, numerical desc: largest build first.
        assert_eq!(
            run(
                r"{pattern: '^main-[a-z]+-(\d+)$', extract: '$1', order: {by: numerical}}",
                &tags
            ),
            ["main-abc-100", "main-def-20"]
        );
        // Named group with braces, ascending.
        assert_eq!(
            run(
                r"{pattern: '^(?P<branch>[a-z]+)-[a-z]+-(?P<ts>\d+)$', extract: '${ts}', order: {by: numerical, direction: asc}}",
                &tags
            ),
            ["main-def-20", "main-abc-100", "feat-xyz-300"]
        );
        // $name, literal text and $$.
        let f = compile(r"{pattern: '^v(?P<ver>\d+\.\d+)$', extract: '$$${ver}.0-x$ver'}");
        let Some(Template { pieces }) = &f.extract else {
            panic!("no template")
        };
        let caps = f.pattern.as_ref().unwrap().captures("v1.2").unwrap();
        assert_eq!(f.extract.as_ref().unwrap().expand(&caps), "$1.2.0-x1.2");
        assert!(pieces.len() >= 3);
        // The extracted value is compared, the tag returned.
        assert_eq!(
            run(
                r"{pattern: '^app-(?P<v>\d+\.\d+\.\d+)$', extract: 'v$v', semver: '^1', order: {by: semver}}",
                &["app-1.2.0", "app-1.10.0", "app-2.0.0", "app-x"]
            ),
            ["app-1.10.0", "app-1.2.0"]
        );
        // Pattern without extract: the tag is the value; non-matching dropped.
        assert_eq!(run(r"pattern: '^v\d'", &["v1", "x1", "v2"]), ["v2", "v1"]);
    }

    #[test]
    fn go_expand_rules() {
        let re = Regex::new(r"^(?P<a>x)?(?P<b>\d+)(?P<b1>y)?$").unwrap();
        let expand = |t: &str, s: &str| {
            let tmpl = Template::parse(t, &re).unwrap_or_else(|e| panic!("{t}: {e}"));
            tmpl.expand(&re.captures(s).unwrap())
        };
        assert_eq!(expand("$b", "x12"), "12");
        assert_eq!(expand("${b}1", "x12"), "121");
        assert_eq!(expand("$b1", "12y"), "y"); // $b1 is ${b1}, not ${b}1
        assert_eq!(expand("$2-$1", "x12"), "12-x");
        assert_eq!(expand("[$a]", "12"), "[]"); // a group that did not take part
        assert_eq!(expand("$$b", "12"), "$b");
        assert_eq!(expand("${b", "12"), "${b"); // malformed: literal
        assert_eq!(expand("$-", "12"), "$-");
        assert_eq!(expand("cost $", "12"), "cost $");
        // Go reads $01 as a name, and $1x as ${1x}: no such groups here.
        for bad in ["$01", "$1x", "$4", "$nope", "${nope}"] {
            let e = Template::parse(bad, &re)
                .err()
                .unwrap_or_else(|| panic!("{bad}"));
            assert_eq!(e.field(), "extract", "{bad}");
        }
    }

    #[test]
    fn alphabetical_and_numerical_directions() {
        let tags = ["b", "a10", "c", "a9"];
        assert_eq!(
            run("order: {by: alphabetical}", &tags),
            ["c", "b", "a9", "a10"]
        );
        assert_eq!(
            run("order: {by: alphabetical, direction: asc}", &tags),
            ["a10", "a9", "b", "c"]
        );
        let tags = [
            "10", "9", "1e2", "-3.5", "x", "0x10p0", "1_000", "NaN", "1e400",
        ];
        assert_eq!(
            run("order: {by: numerical}", &tags),
            ["1_000", "1e2", "0x10p0", "10", "9", "-3.5", "NaN"]
        );
        assert_eq!(
            run("order: {by: numerical, direction: asc}", &tags),
            ["NaN", "-3.5", "9", "10", "0x10p0", "1e2", "1_000"]
        );
        // Semver ascending: oldest first; unparsable dropped.
        assert_eq!(
            run(
                "order: {by: semver, direction: asc}",
                &["v0.3.10", "v0.3.9", "junk", "v0.3.10-rc.1"]
            ),
            ["v0.3.9", "v0.3.10-rc.1", "v0.3.10"]
        );
    }

    #[test]
    fn go_parse_float_matches_strconv() {
        // Go strconv atof_test.go cases.
        for (s, want) in [
            ("1", Some(1.0)),
            ("+1", Some(1.0)),
            ("-0.5", Some(-0.5)),
            (".5", Some(0.5)),
            ("5.", Some(5.0)),
            ("1e23", Some(1e23)),
            ("1E-2", Some(0.01)),
            ("1_23.50_0_0e+1_2", Some(1.235e14)),
            ("0x_1_2.3_4_5p+1_2", Some(74565.0)),
            ("0x1p-2", Some(0.25)),
            ("0x1.8p1", Some(3.0)),
            ("0X1P0", Some(1.0)),
            ("0x1p-1074", Some(5e-324)),
            ("0x1p-1075", Some(0.0)),
            ("0x1.8p-1075", Some(5e-324)),
            ("0x1.fffffffffffffp1023", Some(f64::MAX)),
            ("1.7976931348623157e308", Some(f64::MAX)),
            ("Infinity", Some(f64::INFINITY)),
            ("-inf", Some(f64::NEG_INFINITY)),
            ("+INF", Some(f64::INFINITY)),
            ("1e-400", Some(0.0)),
            ("1e400", None),
            ("0x1p1024", None),
            ("1.7976931348623159e308", None),
            ("infin", None),
            ("infx", None),
            ("+nan", None),
            ("-nan", None),
            ("nanx", None),
            ("0x1", None),
            ("0x", None),
            ("0x1e2", None),
            ("1x", None),
            ("1.1.", None),
            (".", None),
            ("", None),
            ("-", None),
            ("e5", None),
            ("1e", None),
            ("1e_5", None),
            ("_123", None),
            ("1__23", None),
            ("123_", None),
            ("123_.5", None),
            ("123._5", None),
            ("123.5e+12_", None),
            ("0x12.345p+1__2", None),
        ] {
            let got = go_parse_float(s);
            assert_eq!(got, want, "{s:?}");
        }
        assert!(go_parse_float("nan").is_some_and(f64::is_nan));
        assert!(go_parse_float("NaN").is_some_and(f64::is_nan));
    }

    #[test]
    fn limit_default_zero_and_max() {
        let tags: Vec<String> = (0..250).map(|i| format!("t{i:03}")).collect();
        let refs: Vec<&str> = tags.iter().map(String::as_str).collect();
        let out = run("{}", &refs);
        assert_eq!(out.len(), DEFAULT_LIMIT);
        assert_eq!(out[0], "t249");
        assert_eq!(run("limit: 0", &refs).len(), DEFAULT_LIMIT);
        assert_eq!(run("limit: 3", &refs), ["t249", "t248", "t247"]);
        assert_eq!(run("limit: 10000", &refs).len(), 250);
        assert_eq!(compile("limit: 10000").limit(), MAX_LIMIT);
        let e = compile_err("limit: 20000");
        assert_eq!(e.field(), "limit");
        assert_eq!(e.to_string(), "limit: 20000 is over the maximum 10000");
    }

    #[test]
    fn compile_errors_name_the_field() {
        for (yaml, field, needle) in [
            ("includeTag: '('", "includeTag", "invalid regex \"(\""),
            ("excludeTag: '[a-'", "excludeTag", "invalid regex"),
            ("pattern: '(?P<x>'", "pattern", "invalid regex"),
            ("semver: 'latest'", "semver", "not a semver constraint"),
            ("semver: '>=1 <<2'", "semver", "improper constraint"),
            ("limit: 10001", "limit", "over the maximum 10000"),
            ("extract: '$1'", "extract", "needs pattern"),
            ("{pattern: '(a)', extract: '$2'}", "extract", "group 2"),
            ("{pattern: '(?P<a>a)', extract: '$b'}", "extract", "\"b\""),
            (
                "{semver: '*', order: {by: numerical}}",
                "order",
                "numerical ordering",
            ),
        ] {
            let e = compile_err(yaml);
            assert_eq!(e.field(), field, "{yaml}: {e}");
            assert!(e.to_string().starts_with(&format!("{field}: ")), "{e}");
            assert!(e.message().contains(needle), "{yaml}: {e}");
            assert!(!e.to_string().contains('\n'), "one line: {e}");
        }
    }

    #[test]
    fn unknown_fields_and_values_are_rejected_by_serde() {
        let e = serde_yaml_ng::from_str::<Filter>("colour: red").unwrap_err();
        assert!(e.to_string().contains("colour"), "{e}");
        let e = serde_json::from_str::<Filter>(r#"{"include_tag": "x"}"#).unwrap_err();
        assert!(e.to_string().contains("include_tag"), "{e}");
        let e = serde_yaml_ng::from_str::<Filter>("order: {by: size}").unwrap_err();
        assert!(e.to_string().contains("size"), "{e}");
        let e = serde_yaml_ng::from_str::<Filter>("order: {by: semver, way: up}").unwrap_err();
        assert!(e.to_string().contains("way"), "{e}");
        let e = serde_yaml_ng::from_str::<Filter>("order: {direction: asc}").unwrap_err();
        assert!(e.to_string().contains("by"), "{e}");
        // And the camelCase names round-trip.
        let f: Filter = serde_yaml_ng::from_str(
            "{includeTag: a, excludeTag: b, semver: '*', limit: 5, pattern: '(c)', extract: '$1', order: {by: alphabetical}}",
        )
        .unwrap();
        assert_eq!(f.include_tag.as_deref(), Some("a"));
        assert_eq!(f.order.as_ref().map(|o| o.direction), Some(Direction::Desc));
        let back: Filter = serde_json::from_value(serde_json::to_value(&f).unwrap()).unwrap();
        assert_eq!(back, f);
    }

    #[test]
    fn adler32_ids() {
        assert_eq!(adler32_id("6.0.4"), "48955639");
        assert_eq!(adler32_id(""), "1");
        // A 128-byte tag (the OCI maximum), and 13000 bytes (past zlib's
        // 5552-byte reduction block); expected values from zlib.adler32.
        assert_eq!(adler32_id(&"0123456789abcdef".repeat(8)), "2807046929");
        assert_eq!(adler32_id(&"registry-tag_".repeat(1000)), "2043184917");
    }

    fn tag_strategy() -> impl Strategy<Value = String> {
        prop_oneof![
            "v?[0-9]{1,2}\\.[0-9]{1,2}\\.[0-9]{1,2}(-rc\\.[0-9a-f]{1,3})?",
            "[a-z0-9._-]{1,10}",
            Just("v1.0.0".to_owned()),
        ]
    }

    proptest! {
        #[test]
        fn apply_is_a_bounded_sorted_sub_multiset(
            tags in prop::collection::vec(tag_strategy(), 0..60),
            limit in 1usize..30,
            by in prop_oneof![Just("semver"), Just("alphabetical"), Just("numerical")],
            semver_desc in any::<bool>(),
        ) {
            let by = if semver_desc { "semver" } else { by };
            let f = Filter {
                limit: Some(limit),
                order: Some(Order {
                    by: serde_yaml_ng::from_str(by).unwrap(),
                    direction: Direction::Desc,
                }),
                ..Filter::default()
            };
            let out = f.compile().unwrap().apply(tags.iter().map(String::as_str));
            prop_assert!(out.len() <= limit);
            let mut pool = tags.clone();
            for t in &out {
                let i = pool.iter().position(|p| p == t);
                prop_assert!(i.is_some(), "{t} not in the input (or more often than there)");
                pool.swap_remove(i.unwrap());
            }
            if by == "semver" {
                let versions: Vec<Version> = out
                    .iter()
                    .map(|t| parse_flux_version(t).unwrap())
                    .collect();
                for w in versions.windows(2) {
                    prop_assert!(w[0].cmp_precedence(&w[1]) != Ordering::Less, "{out:?}");
                }
                let parsable = tags.iter().filter(|t| parse_flux_version(t).is_some()).count();
                prop_assert_eq!(out.len(), parsable.min(limit));
            }
            // The default filter keeps everything up to the limit, sorted
            // in reverse byte order.
            let d = Filter { limit: Some(limit), ..Filter::default() }
                .compile()
                .unwrap()
                .apply(tags.iter().map(String::as_str));
            prop_assert_eq!(d.len(), tags.len().min(limit));
            prop_assert!(d.windows(2).all(|w| w[0] >= w[1]));
        }
    }
}
