//! Lists of server names kept small, for what the plugin stores on a
//! GameServerSet (kube-apiserver allows 256 KiB of annotations per object
//! in all). A set's servers are named `<set>-<ordinal>`, so a list is kept
//! as `<prefix>{<ordinals>}` groups joined by `;`: the ordinals as ranges
//! (`minecraft-{0-99,105}`) or, when shorter, as a hex bitmap
//! (`minecraft-{#3f00…}`, bit `n` of the bitmap is ordinal `n`). A name
//! without an ordinal stands as it is. Kubernetes names hold none of `{`,
//! `}`, `;`, `,` or `#`, so the form cannot be mistaken.
//!
//! 10,000 servers take at most 2.5 KB this way, however they interleave.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Deserializer, Serializer};

/// The compact form of `names` (in any order; repeats count once).
pub fn compact<'a>(names: impl IntoIterator<Item = &'a str>) -> String {
    let mut groups: BTreeMap<&str, BTreeSet<u64>> = BTreeMap::new();
    let mut plain: BTreeSet<&str> = BTreeSet::new();
    for name in names {
        match split(name) {
            Some((prefix, ordinal)) => {
                groups.entry(prefix).or_default().insert(ordinal);
            }
            None => {
                plain.insert(name);
            }
        }
    }
    let mut out: Vec<String> = groups
        .into_iter()
        .map(|(prefix, ordinals)| format!("{prefix}{{{}}}", shortest(&ordinals)))
        .collect();
    out.extend(plain.into_iter().map(str::to_owned));
    out.join(";")
}

/// The names of a compact form, by prefix and ordinal.
///
/// # Errors
/// When `text` is not a form [`compact`] writes.
pub fn expand(text: &str) -> Result<Vec<String>, String> {
    let mut names = Vec::new();
    for group in text.split(';').filter(|g| !g.is_empty()) {
        let Some((prefix, rest)) = group.split_once('{') else {
            names.push(group.to_owned());
            continue;
        };
        let body = rest
            .strip_suffix('}')
            .ok_or_else(|| format!("{group:?} does not end in }}"))?;
        let ordinals = match body.strip_prefix('#') {
            Some(hex) => from_bitmap(hex)?,
            None => from_ranges(body)?,
        };
        names.extend(ordinals.into_iter().map(|o| format!("{prefix}{o}")));
    }
    Ok(names)
}

/// `name` as `(prefix ending in '-', ordinal)`, when it has an ordinal
/// written without leading zeros (so that it reads back the same).
fn split(name: &str) -> Option<(&str, u64)> {
    let dash = name.rfind('-')?;
    let digits = &name[dash + 1..];
    let ordinal: u64 = digits.parse().ok()?;
    (ordinal.to_string() == digits && ordinal < MAX_ORDINAL).then(|| (&name[..=dash], ordinal))
}

/// Ordinals at or above this stay whole names (a bitmap would not pay).
const MAX_ORDINAL: u64 = 1 << 20;

fn shortest(ordinals: &BTreeSet<u64>) -> String {
    let ranges = to_ranges(ordinals);
    let bitmap = format!("#{}", to_bitmap(ordinals));
    if bitmap.len() < ranges.len() {
        bitmap
    } else {
        ranges
    }
}

/// Ordinals as ranges: `0-99,105`.
pub fn to_ranges(ordinals: &BTreeSet<u64>) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut run: Option<(u64, u64)> = None;
    for &o in ordinals {
        run = match run {
            Some((a, b)) if o == b + 1 => Some((a, o)),
            Some(done) => {
                parts.push(range(done));
                Some((o, o))
            }
            None => Some((o, o)),
        };
    }
    parts.extend(run.map(range));
    parts.join(",")
}

fn range((a, b): (u64, u64)) -> String {
    if a == b {
        a.to_string()
    } else {
        format!("{a}-{b}")
    }
}

fn from_ranges(body: &str) -> Result<Vec<u64>, String> {
    let mut out = Vec::new();
    for part in body.split(',').filter(|p| !p.is_empty()) {
        let number = |s: &str| {
            s.parse::<u64>()
                .map_err(|_| format!("{part:?} is not an ordinal or a range"))
        };
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (number(a)?, number(b)?);
                if a > b || b >= MAX_ORDINAL {
                    return Err(format!("{part:?} is not a range of ordinals"));
                }
                out.extend(a..=b);
            }
            None => out.push(number(part)?),
        }
    }
    Ok(out)
}

/// Hex digits, four ordinals each, lowest ordinals first.
fn to_bitmap(ordinals: &BTreeSet<u64>) -> String {
    let Some(&last) = ordinals.last() else {
        return String::new();
    };
    (0..=last / 4)
        .map(|nibble| {
            let bits = (0..4).fold(0u32, |acc, bit| {
                let on = ordinals.contains(&(nibble * 4 + bit));
                acc | (u32::from(on) << bit)
            });
            char::from_digit(bits, 16).unwrap_or('0')
        })
        .collect()
}

fn from_bitmap(hex: &str) -> Result<Vec<u64>, String> {
    let mut out = Vec::new();
    for (nibble, c) in (0u64..).zip(hex.chars()) {
        let bits = c
            .to_digit(16)
            .ok_or_else(|| format!("{c:?} is not a hex digit"))?;
        out.extend(
            (0u32..4)
                .filter(|b| bits & (1 << b) != 0)
                .map(|b| nibble * 4 + u64::from(b)),
        );
    }
    Ok(out)
}

/// Serde for a set of names kept in the compact form
/// (`#[serde(with = "name_list::set")]`).
pub mod set {
    use super::{BTreeSet, Deserialize, Deserializer, Serializer};

    /// Writes the compact form.
    ///
    /// # Errors
    /// Those of the serializer.
    pub fn serialize<S: Serializer>(names: &BTreeSet<String>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::compact(names.iter().map(String::as_str)))
    }

    /// The forms read: the compact one, or a plain list (as written
    /// before the compact form).
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Form {
        Compact(String),
        List(BTreeSet<String>),
    }

    /// Reads the compact form, or a plain list.
    ///
    /// # Errors
    /// When the text is neither.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeSet<String>, D::Error> {
        match Form::deserialize(d)? {
            Form::Compact(text) => super::expand(&text)
                .map(|names| names.into_iter().collect())
                .map_err(serde::de::Error::custom),
            Form::List(names) => Ok(names),
        }
    }
}

/// At most `shown` of `names`, then how many more: for messages.
pub fn shortened(names: &[String], shown: usize) -> String {
    let mut out = names
        .iter()
        .take(shown)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > shown {
        out.push_str(&format!(" and {} more", names.len() - shown));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(prefix: &str, ordinals: impl IntoIterator<Item = u64>) -> Vec<String> {
        ordinals
            .into_iter()
            .map(|o| format!("{prefix}{o}"))
            .collect()
    }

    #[test]
    fn ranges_read_back_the_same_names() {
        let mut list = names("minecraft-", (0..100).chain([105, 107, 108]));
        list.push("odd-name".into());
        list.push("lobby-7".into());
        let text = compact(list.iter().map(String::as_str));
        assert_eq!(text, "lobby-{7};minecraft-{0-99,105,107-108};odd-name");
        let mut back = expand(&text).unwrap();
        back.sort();
        list.sort();
        assert_eq!(back, list);
        assert_eq!(compact([]), "");
        assert!(expand("").unwrap().is_empty());
        // Leading zeros are not an ordinal: the name stays whole.
        assert_eq!(compact(["m-007"]), "m-007");
    }

    #[test]
    fn ten_thousand_interleaved_servers_take_a_bitmap_of_two_and_a_half_kb() {
        let list = names("minecraft-", (0..10_000).filter(|o| o % 2 == 0));
        let text = compact(list.iter().map(String::as_str));
        assert!(text.starts_with("minecraft-{#"), "{}", &text[..20]);
        assert!(text.len() < 2_600, "{}", text.len());
        assert_eq!(expand(&text).unwrap(), list);
    }

    #[test]
    fn a_form_it_did_not_write_is_refused() {
        for bad in ["m-{1-x}", "m-{#zz}", "m-{5-3}", "m-{1"] {
            assert!(expand(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn messages_name_the_first_few() {
        let list = names("m-", 0..13);
        assert_eq!(shortened(&list[..2], 10), "m-0, m-1");
        assert!(shortened(&list, 10).ends_with("m-9 and 3 more"));
    }
}
