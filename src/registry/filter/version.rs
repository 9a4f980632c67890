//! Versions as Flux reads them (Masterminds/semver v3 `NewVersion` and
//! fluxcd/pkg `ParseVersion`) and Masterminds/semver v3 constraints.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::sync::LazyLock;

use regex::Regex;
use semver::{BuildMetadata, Prerelease, Version};

/// Masterminds `NewVersion` (with its default `CoerceNewVersion`): the
/// loose form `v?N(.N)?(.N)?(-pre)?(+build)?`, missing numbers 0, leading
/// zeros allowed in the numbers (not in numeric pre-release identifiers).
pub(super) fn masterminds_new_version(s: &str) -> Option<Version> {
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
