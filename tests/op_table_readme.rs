//! The README's op table (section "Ops") says what the op table in
//! `src/ops/table.rs` says: the same ops, each with the same arguments,
//! the same required ones (`a`), optional ones (`a?`), exactly-one-of
//! (`a` or `b`) and at-most-one-of (`a?` or `b?`) groups, the same literal
//! defaults (`a?` (default 1)), and the same outputs. Other parenthesised
//! notes (`then` (WaitToBeDeleted or Kill)) are prose; `gameServerSet`, `namespace` and `cluster` are said once above
//! the table.

use std::collections::{BTreeMap, BTreeSet};

use gameops::ops::table::{self, Literal, OpSpec};

/// What a README row says about one op.
#[derive(Debug, PartialEq)]
struct Row {
    args: BTreeSet<String>,
    exactly_one: BTreeSet<Vec<String>>,
    at_most_one: BTreeSet<Vec<String>>,
    defaults: BTreeMap<String, String>,
    outputs: Vec<String>,
}

/// The defaults of an arguments cell: `` `a?` (default 1) `` is `a: 1`.
fn defaults(cell: &str) -> BTreeMap<String, String> {
    cell.split("` (default ")
        .collect::<Vec<_>>()
        .windows(2)
        .filter_map(|w| {
            let name = w[0].rsplit('`').next()?.trim_end_matches('?');
            let value = w[1].split(')').next()?;
            Some((name.to_owned(), value.to_owned()))
        })
        .collect()
}

/// The names in backticks in `text`, after dropping `(...)` notes.
fn ticked(text: &str) -> Vec<String> {
    let mut plain = String::new();
    let mut depth = 0usize;
    for c in text.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            c if depth == 0 => plain.push(c),
            _ => {}
        }
    }
    plain
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

/// The groups of an arguments cell: `a, b?, c or d, or e and f?` is
/// `[a] [b?] [c d e] [f?]` (a part starting with `or` joins the group
/// before it).
fn groups(cell: &str) -> Vec<Vec<String>> {
    let mut out: Vec<Vec<String>> = Vec::new();
    for part in cell.split(", ") {
        let part = part.trim();
        let (joins, part) = match part.strip_prefix("or ") {
            Some(rest) => (true, rest),
            None => (false, part),
        };
        for (k, item) in part.split(" and ").enumerate() {
            let names = ticked(item);
            if names.is_empty() {
                continue;
            }
            match out.last_mut() {
                Some(last) if joins && k == 0 => last.extend(names),
                _ => out.push(names),
            }
        }
    }
    out
}

fn row(args: &str, outputs: &str) -> Row {
    let mut row = Row {
        args: BTreeSet::new(),
        exactly_one: BTreeSet::new(),
        at_most_one: BTreeSet::new(),
        defaults: defaults(args),
        outputs: ticked(outputs),
    };
    for group in groups(args) {
        let optional = group.iter().all(|n| n.ends_with('?'));
        let names: Vec<String> = group
            .iter()
            .map(|n| n.trim_end_matches('?').to_owned())
            .collect();
        row.args.extend(names.iter().cloned());
        match (optional, names.len()) {
            (false, _) => drop(row.exactly_one.insert(names)),
            (true, 1) => {}
            (true, _) => drop(row.at_most_one.insert(names)),
        }
    }
    row
}

fn from_table(spec: &OpSpec) -> Row {
    let owned = |g: &&[&str]| g.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>();
    Row {
        args: spec.args.iter().map(|a| a.name.to_owned()).collect(),
        exactly_one: spec.exactly_one.iter().map(owned).collect(),
        at_most_one: spec.at_most_one.iter().map(owned).collect(),
        defaults: spec
            .args
            .iter()
            .filter_map(|a| {
                let value = match a.default? {
                    Literal::Whole(n) => n.to_string(),
                    Literal::Flag(b) => b.to_string(),
                };
                Some((a.name.to_owned(), value))
            })
            .collect(),
        outputs: spec.outputs.iter().map(|o| (*o).to_owned()).collect(),
    }
}

/// The rows of the README's op table: (op, row).
fn readme_rows() -> Vec<(String, Row)> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let section = readme
        .split("\n### Ops\n")
        .nth(1)
        .expect("a section ### Ops in README.md");
    section
        .lines()
        .skip_while(|l| !l.starts_with("| op |"))
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .map(|line| {
            let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
            assert_eq!(
                cells.len(),
                4,
                "op | arguments | what it does | outputs: {line}"
            );
            let op = ticked(cells[0]).concat();
            (op, row(cells[1], cells[3]))
        })
        .collect()
}

#[test]
fn the_readme_cells_parse_as_meant() {
    let r = row("`environment`, or `repository` and `filter?`", "`tag`");
    assert_eq!(
        r.exactly_one,
        BTreeSet::from([vec!["environment".to_owned(), "repository".to_owned()]])
    );
    assert_eq!(r.args.len(), 3);
    let r = row(
        "`toImage?` or `steps?`, `container?`",
        "`summary` (JSON), `total`",
    );
    assert_eq!(
        r.at_most_one,
        BTreeSet::from([vec!["toImage".to_owned(), "steps".to_owned()]])
    );
    assert!(r.exactly_one.is_empty());
    assert_eq!(r.outputs, ["summary", "total"]);
    let r = row(
        "`toImage?` or `steps?` (default 1), `dryRun?` (default false)",
        "",
    );
    assert_eq!(
        r.defaults,
        BTreeMap::from([
            ("steps".to_owned(), "1".to_owned()),
            ("dryRun".to_owned(), "false".to_owned())
        ])
    );
    let r = row("`from` (tag or `sha256:` digest), `to`", "");
    assert!(r.defaults.is_empty());
    assert_eq!(r.args, BTreeSet::from(["from".to_owned(), "to".to_owned()]));
}

#[test]
fn the_readme_op_table_matches_the_op_table() {
    let rows = readme_rows();
    let names: Vec<&str> = rows.iter().map(|(op, _)| op.as_str()).collect();
    assert_eq!(
        names,
        table::names().collect::<Vec<_>>(),
        "the ops, in order"
    );
    let mut drift = Vec::new();
    for (op, readme) in &rows {
        let Some(spec) = table::find(op) else {
            continue;
        };
        let want = from_table(spec);
        if *readme != want {
            drift.push(format!("{op}:\n  README: {readme:?}\n  table:  {want:?}"));
        }
    }
    assert!(
        drift.is_empty(),
        "README.md's op table drifted from src/ops/table.rs:\n{}",
        drift.join("\n")
    );
}
