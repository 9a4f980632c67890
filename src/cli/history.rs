//! `gameops history SET [-o json]`: the releases and rollbacks of a set,
//! newest first, from the image history the plugin keeps on it
//! ([`crate::ops::history`], the last 20 changes): when, which workflow,
//! image from → to, outcome and duration. A change whose workflow recorded
//! no outcome yet is asked about: its lease and its Argo `Workflow`.

use jiff::Timestamp;
use serde::Serialize;

use super::status::{Format, clock, human, table};
use super::target::TargetArgs;
use crate::ops::history::{self, HistoryEntry};
use crate::ops::ledger::{self, Holder};

/// `gameops history`.
#[derive(clap::Args)]
pub struct HistoryArgs {
    /// The GameServerSet.
    pub set: String,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = Format::Text)]
    pub output: Format,
    /// The cluster and namespace.
    #[command(flatten)]
    pub target: TargetArgs,
}

/// One change, as shown.
#[derive(Debug, Serialize, PartialEq)]
pub struct Row {
    /// When it was made.
    pub at: Timestamp,
    /// `release` (patchImage) or `rollback`.
    pub kind: String,
    /// The container.
    pub container: String,
    /// The image before.
    pub from: String,
    /// The image after (unknown for changes recorded before gameops kept it).
    pub to: Option<String>,
    /// `namespace/name` of the workflow.
    pub workflow: Option<String>,
    /// How it ended, or where it stands.
    pub outcome: String,
    /// Seconds from the change to its workflow's end (or until now, while
    /// it runs).
    pub seconds: Option<u64>,
}

/// Where a change with no recorded outcome stands: `holder` is the state of
/// the lease's workflow when that lease is the change's.
fn open_outcome(e: &HistoryEntry, lease_holder: Option<(&str, &Holder)>) -> (String, bool) {
    match lease_holder {
        Some((uid, state)) if e.uid.as_deref() == Some(uid) => match state {
            Holder::Running(phase) => (format!("Running ({phase})"), true),
            Holder::Finished(phase) => (phase.clone(), false),
            Holder::Unknown(_) => ("in progress (holds the lease)".to_owned(), true),
        },
        _ if e.uid.is_none() => ("not recorded".to_owned(), false),
        _ => ("ended without recording an outcome".to_owned(), false),
    }
}

/// The rows of `entries` (oldest first), newest first, at `now`.
pub fn rows(
    entries: &[HistoryEntry],
    lease_holder: Option<(&str, &Holder)>,
    now: Timestamp,
) -> Vec<Row> {
    entries
        .iter()
        .rev()
        .map(|e| {
            let (outcome, running) = match &e.outcome {
                Some(o) => (o.clone(), false),
                None => open_outcome(e, lease_holder),
            };
            let end = e.ended.or(running.then_some(now));
            Row {
                at: e.at,
                kind: match e.op.as_deref() {
                    Some("rollback") => "rollback",
                    _ => "release",
                }
                .to_owned(),
                container: e.container.clone(),
                from: e.image.clone(),
                to: e.to.clone(),
                workflow: e.workflow.clone(),
                outcome,
                seconds: end.map(|t| u64::try_from(t.duration_since(e.at).as_secs()).unwrap_or(0)),
            }
        })
        .collect()
}

/// The table `history` prints.
pub fn render(set: &str, rows: &[Row]) -> String {
    if rows.is_empty() {
        return format!(
            "GameServerSet {set} has no recorded image changes (gameops records them on patchImage and rollback).\n"
        );
    }
    let mut cells = vec![
        ["WHEN", "KIND", "IMAGE", "WORKFLOW", "OUTCOME", "DURATION"]
            .map(str::to_owned)
            .to_vec(),
    ];
    cells.extend(rows.iter().map(|r| {
        vec![
            clock(r.at),
            r.kind.clone(),
            format!("{} -> {}", r.from, r.to.as_deref().unwrap_or("?")),
            r.workflow.clone().unwrap_or_else(|| "-".to_owned()),
            r.outcome.clone(),
            r.seconds.map_or_else(|| "-".to_owned(), human),
        ]
    }));
    table(&cells)
}

/// Runs `gameops history`.
pub async fn run(a: HistoryArgs) -> Result<(), String> {
    let (client, namespace) = a.target.connect().await?;
    let gss = super::target::get_set(&client, &namespace, &a.set).await?;
    let lease = ledger::lease(&gss);
    let holder = match &lease {
        Some(l) => Some(ledger::holder(&client, l).await),
        None => None,
    };
    let lease_holder = lease
        .as_ref()
        .zip(holder.as_ref())
        .map(|(l, h)| (l.holder.as_str(), h));
    let rows = rows(&history::history(&gss), lease_holder, Timestamp::now());
    match a.output {
        Format::Json => {
            let doc = serde_json::to_string_pretty(&rows).map_err(|e| e.to_string())?;
            println!("{doc}");
        }
        Format::Text => print!("{}", render(&format!("{namespace}/{}", a.set), &rows)),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::Caller;

    #[test]
    fn newest_first_with_outcomes_durations_and_the_running_one() {
        let t: Timestamp = "2026-12-01T10:00:00Z".parse().unwrap();
        let by = |uid: &str| Caller {
            name: format!("release-{uid}"),
            namespace: "default".into(),
            uid: uid.into(),
        };
        let mut old = HistoryEntry::change("mc", "mc:1", "mc:2", "patchImage", &by("1"), t);
        old.outcome = Some("Succeeded".into());
        old.ended = Some(t + jiff::SignedDuration::from_secs(108));
        let later = t + jiff::SignedDuration::from_secs(600);
        let running = HistoryEntry::change("mc", "mc:2", "mc:3", "patchImage", &by("2"), later);
        let legacy = HistoryEntry {
            container: "mc".into(),
            image: "mc:0".into(),
            at: t - jiff::SignedDuration::from_secs(600),
            ..HistoryEntry::default()
        };
        let now = later + jiff::SignedDuration::from_secs(30);
        let holder = Holder::Running("Running".into());
        let r = rows(&[legacy, old, running], Some(("2", &holder)), now);
        assert_eq!(r[0].outcome, "Running (Running)");
        assert_eq!(r[0].seconds, Some(30));
        assert_eq!(r[1].outcome, "Succeeded");
        assert_eq!(r[1].seconds, Some(108));
        assert_eq!(r[2].outcome, "not recorded");
        let text = render("default/minecraft", &r);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[1].contains("mc:2 -> mc:3"), "{text}");
        assert!(lines[2].contains("default/release-1"), "{text}");
        assert!(lines[2].contains("1m48s"), "{text}");
        assert!(lines[3].contains("mc:0 -> ?"), "{text}");
    }

    #[test]
    fn an_open_change_whose_workflow_is_gone_says_so() {
        let e = HistoryEntry::change(
            "mc",
            "a",
            "b",
            "patchImage",
            &Caller {
                name: "w".into(),
                namespace: "n".into(),
                uid: "9".into(),
            },
            Timestamp::UNIX_EPOCH,
        );
        let r = rows(&[e], None, Timestamp::UNIX_EPOCH);
        assert_eq!(r[0].outcome, "ended without recording an outcome");
        assert_eq!(r[0].seconds, None);
    }
}
