//! `extract`: Go `regexp.Expand` templates over `pattern`'s match, as
//! image-reflector-controller's `RegexFilter` uses them.

use regex::{Captures, Regex};

use super::FilterError;

/// One piece of an `extract` template.
#[derive(Debug, Clone)]
pub(super) enum Piece {
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
pub(super) struct Template {
    pub(super) pieces: Vec<Piece>,
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
    pub(super) fn parse(template: &str, pattern: &Regex) -> Result<Template, FilterError> {
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
    pub(super) fn expand(&self, caps: &Captures) -> String {
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
