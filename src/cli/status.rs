//! `gameops status [SET] [-w] [-o json]`: where a GameServerSet stands, at
//! a glance: its servers by image × state × opsState, the matches in
//! progress, the servers a running `drain` waits for (how long, until
//! when), the release lease and whether its workflow still runs, and the
//! last release with its outcome. `-w` redraws as the fleet changes.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::time::Duration;

use jiff::Timestamp;
use kube::Client;
use kube::api::{Api, ListParams};
use serde::Serialize;

use super::target::TargetArgs;
use crate::api::image::reported_image;
use crate::api::{GameServer, GameServerSet, OWNER_GSS_LABEL};
use crate::ops::history::{self, HistoryEntry};
use crate::ops::ledger::{self, Holder};
use crate::ops::progress;
use crate::ops::select::{current_state, deleting, ops_state, players};

/// opsStates of servers a drain has already moved (they wait for removal).
const RETIRED: [&str; 2] = ["WaitToBeDeleted", "Kill"];

/// How often `-w` looks again.
const REFRESH: Duration = Duration::from_secs(1);

/// `gameops status`.
#[derive(clap::Args)]
pub struct StatusArgs {
    /// The GameServerSet (default: every set in the namespace).
    pub set: Option<String>,
    /// Keep watching: redraw whenever something changes (in place on a
    /// terminal, a new block otherwise); Ctrl-C stops.
    #[arg(short = 'w', long)]
    pub watch: bool,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = Format::Text)]
    pub output: Format,
    /// The cluster and namespace.
    #[command(flatten)]
    pub target: TargetArgs,
}

/// How `status` and `history` print.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Tables for people.
    Text,
    /// JSON, for scripts.
    Json,
}

/// Servers of one image in one state and opsState.
#[derive(Debug, Serialize, PartialEq)]
pub struct Group {
    /// The image the game container runs (as its status reports).
    pub image: String,
    /// `status.currentState`.
    pub state: String,
    /// `spec.opsState`.
    pub ops_state: String,
    /// How many.
    pub servers: u32,
    /// Their players.
    pub players: i64,
}

/// A server a running drain waits for.
#[derive(Debug, Serialize, PartialEq)]
pub struct Draining {
    /// The server.
    pub name: String,
    /// Its image.
    pub image: String,
    /// `status.currentState`.
    pub state: String,
    /// `spec.opsState`.
    pub ops_state: String,
    /// Its players.
    pub players: i32,
    /// Seconds since the drain started.
    pub draining_seconds: u64,
    /// When the drain gives up.
    pub deadline: Option<Timestamp>,
}

/// The release lease.
#[derive(Debug, Serialize, PartialEq)]
pub struct LeaseView {
    /// `namespace/name` of the holding workflow.
    pub workflow: String,
    /// Its uid.
    pub uid: String,
    /// When the lease lapses.
    pub until: Timestamp,
    /// Whether the workflow still runs: `Running (phase)`, `Finished
    /// (phase)` or `unknown (why)`.
    pub workflow_state: String,
}

/// Where one set stands.
#[derive(Debug, Serialize)]
pub struct SetStatus {
    /// `namespace/name`.
    pub set: String,
    /// `spec.replicas`.
    pub replicas: i32,
    /// The template's game container image (what new servers get).
    pub template_image: String,
    /// `spec.updateStrategy.type`.
    pub update_strategy: String,
    /// Servers by image × state × opsState.
    pub servers: Vec<Group>,
    /// Servers in a match (players, or opsState Allocated).
    pub in_match: u32,
    /// Players on all servers.
    pub players: i64,
    /// The servers a running drain still waits for.
    pub draining: Vec<Draining>,
    /// The lease, if one is held.
    pub lease: Option<LeaseView>,
    /// The newest image change.
    pub last_release: Option<HistoryEntry>,
}

/// The game container of `gss`: the template's first.
fn game_container(gss: &GameServerSet) -> (String, String) {
    gss.template_containers()
        .first()
        .map(|c| (c.name.clone(), c.image.clone().unwrap_or_default()))
        .unwrap_or_default()
}

fn image_of(gs: &GameServer, container: &str) -> String {
    gs.status
        .as_ref()
        .and_then(|s| reported_image(s, container))
        .unwrap_or("(not known yet)")
        .to_owned()
}

/// Whether `gs` is in a match.
fn in_match(gs: &GameServer) -> bool {
    players(gs) > 0 || ops_state(gs) == "Allocated"
}

/// The servers a running `drain` of `gss` still waits for: those on
/// another image than the template's that it has not moved yet.
fn draining(
    gss: &GameServerSet,
    servers: &[GameServer],
    container: &str,
    template_image: &str,
    now: Timestamp,
) -> Vec<Draining> {
    let drain = progress::all(gss)
        .into_values()
        .filter(|p| p.op.as_deref() == Some("drain") && p.failed.is_none())
        .max_by_key(|p| p.started);
    drain
        .map(|d| {
            let seconds = u64::try_from(now.duration_since(d.started).as_secs()).unwrap_or(0);
            servers
                .iter()
                .filter(|gs| !deleting(gs) && !RETIRED.contains(&ops_state(gs)))
                .filter(|gs| {
                    gs.status
                        .as_ref()
                        .and_then(|st| reported_image(st, container))
                        .is_some_and(|i| !crate::api::images_match(i, template_image))
                })
                .map(|gs| Draining {
                    name: gs.metadata.name.clone().unwrap_or_default(),
                    image: image_of(gs, container),
                    state: current_state(gs).to_owned(),
                    ops_state: ops_state(gs).to_owned(),
                    players: players(gs),
                    draining_seconds: seconds,
                    deadline: d.deadline,
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The status of `gss` with `servers` (its GameServers) at `now`; the
/// lease's workflow state as `holder` says.
pub fn summarise(
    gss: &GameServerSet,
    servers: &[GameServer],
    holder: Option<&Holder>,
    now: Timestamp,
) -> SetStatus {
    let (container, template_image) = game_container(gss);
    let mut groups: BTreeMap<(String, String, String), (u32, i64)> = BTreeMap::new();
    for gs in servers {
        let key = (
            image_of(gs, &container),
            current_state(gs).to_owned(),
            ops_state(gs).to_owned(),
        );
        let entry = groups.entry(key).or_default();
        entry.0 += 1;
        entry.1 += i64::from(players(gs));
    }
    let draining = draining(gss, servers, &container, &template_image, now);
    let lease = ledger::lease(gss).map(|l| LeaseView {
        workflow_state: match holder {
            Some(Holder::Running(phase)) => format!("Running ({phase})"),
            Some(Holder::Finished(phase)) => format!("Finished ({phase})"),
            Some(Holder::Unknown(why)) => format!("unknown ({why})"),
            None => "unknown".to_owned(),
        },
        workflow: l.workflow,
        uid: l.holder,
        until: l.until,
    });
    SetStatus {
        set: format!(
            "{}/{}",
            gss.metadata.namespace.as_deref().unwrap_or(""),
            gss.metadata.name.as_deref().unwrap_or("")
        ),
        replicas: gss.spec.replicas,
        template_image,
        update_strategy: gss
            .spec
            .update_strategy
            .as_ref()
            .and_then(|u| u.r#type.clone())
            .unwrap_or_else(|| "RollingUpdate".to_owned()),
        servers: groups
            .into_iter()
            .map(|((image, state, ops_state), (servers, players))| Group {
                image,
                state,
                ops_state,
                servers,
                players,
            })
            .collect(),
        in_match: u32::try_from(servers.iter().filter(|g| in_match(g)).count()).unwrap_or(0),
        players: servers.iter().map(|g| i64::from(players(g))).sum(),
        draining,
        lease,
        last_release: history::history(gss).pop(),
    }
}

/// `12m05s`-style, for people.
pub fn human(seconds: u64) -> String {
    match seconds {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m{:02}s", s / 60, s % 60),
        s => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

/// `18:04:05Z`.
pub fn clock(t: Timestamp) -> String {
    t.strftime("%Y-%m-%d %H:%M:%SZ").to_string()
}

/// Columns padded to their widest cell.
pub fn table(rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = Vec::new();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if widths.len() <= i {
                widths.push(0);
            }
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in rows {
        let last = row.len().saturating_sub(1);
        for (i, cell) in row.iter().enumerate() {
            out.push_str(cell);
            if i < last {
                let pad = widths[i] - cell.chars().count() + 3;
                out.push_str(&" ".repeat(pad));
            }
        }
        out.push('\n');
    }
    out
}

/// The last release in one line: when, from → to, by whom, how it ended.
pub fn release_line(e: &HistoryEntry, now: Timestamp) -> String {
    let what = match e.op.as_deref() {
        Some("rollback") => "rollback",
        _ => "release",
    };
    let to = e.to.as_deref().unwrap_or("?");
    let by = e
        .workflow
        .as_deref()
        .map(|w| format!(" by workflow {w}"))
        .unwrap_or_default();
    let end = e.ended.unwrap_or(now);
    let took = human(u64::try_from(end.duration_since(e.at).as_secs()).unwrap_or(0));
    let outcome = match &e.outcome {
        Some(o) => format!("{o} after {took}"),
        None => format!("no outcome recorded yet ({took} ago)"),
    };
    format!(
        "{what} {} -> {to} at {}{by}: {outcome}",
        e.image,
        clock(e.at)
    )
}

/// The text `status` prints for one set.
pub fn render(s: &SetStatus, now: Timestamp) -> String {
    let mut out = format!(
        "GameServerSet {}: replicas {}, template image {}, updateStrategy {}\n\n",
        s.set, s.replicas, s.template_image, s.update_strategy
    );
    if s.servers.is_empty() {
        out.push_str("No GameServers.\n");
    } else {
        let mut rows = vec![
            ["IMAGE", "STATE", "OPSSTATE", "SERVERS", "PLAYERS"]
                .map(str::to_owned)
                .to_vec(),
        ];
        rows.extend(s.servers.iter().map(|g| {
            vec![
                g.image.clone(),
                g.state.clone(),
                g.ops_state.clone(),
                g.servers.to_string(),
                g.players.to_string(),
            ]
        }));
        out.push_str(&table(&rows));
    }
    out.push_str(&format!(
        "\nMatches: {} server{} in a match, {} player{}\n",
        s.in_match,
        if s.in_match == 1 { "" } else { "s" },
        s.players,
        if s.players == 1 { "" } else { "s" }
    ));
    if let Some(first) = s.draining.first() {
        let deadline = first
            .deadline
            .map(|d| {
                let left = u64::try_from(d.duration_since(now).as_secs()).unwrap_or(0);
                format!(", deadline {} (in {})", clock(d), human(left))
            })
            .unwrap_or_default();
        out.push_str(&format!(
            "Draining: {} old server{} still to go, draining for {}{deadline}\n",
            s.draining.len(),
            if s.draining.len() == 1 { "" } else { "s" },
            human(first.draining_seconds)
        ));
        let rows: Vec<Vec<String>> = s
            .draining
            .iter()
            .map(|d| {
                vec![
                    format!("  {}", d.name),
                    d.image.clone(),
                    d.state.clone(),
                    d.ops_state.clone(),
                    format!("{} players", d.players),
                ]
            })
            .collect();
        out.push_str(&table(&rows));
    }
    match &s.lease {
        Some(l) => out.push_str(&format!(
            "Lease: held by workflow {} (uid {}) until {}; that workflow: {}\n",
            l.workflow,
            l.uid,
            clock(l.until),
            l.workflow_state
        )),
        None => out.push_str("Lease: free (no release in progress)\n"),
    }
    match &s.last_release {
        Some(e) => out.push_str(&format!("Last change: {}\n", release_line(e, now))),
        None => out.push_str("Last change: none recorded\n"),
    }
    out
}

/// The sets `set` names (or all of them) and their servers, read now.
pub async fn read(
    client: &Client,
    namespace: &str,
    set: Option<&str>,
) -> Result<Vec<SetStatus>, String> {
    let sets: Api<GameServerSet> = Api::namespaced(client.clone(), namespace);
    let servers: Api<GameServer> = Api::namespaced(client.clone(), namespace);
    let chosen = match set {
        Some(name) => vec![super::target::get_set(client, namespace, name).await?],
        None => {
            sets.list(&ListParams::default())
                .await
                .map_err(|e| format!("cannot list the GameServerSets of {namespace}: {e}"))?
                .items
        }
    };
    let now = Timestamp::now();
    let mut out = Vec::new();
    for gss in chosen {
        let name = gss.metadata.name.clone().unwrap_or_default();
        let list = servers
            .list(&ListParams::default().labels(&format!("{OWNER_GSS_LABEL}={name}")))
            .await
            .map_err(|e| format!("cannot list the GameServers of {namespace}/{name}: {e}"))?
            .items;
        let holder = match ledger::lease(&gss) {
            Some(l) => Some(ledger::holder(client, &l).await),
            None => None,
        };
        out.push(summarise(&gss, &list, holder.as_ref(), now));
    }
    Ok(out)
}

/// What one look prints.
fn output(statuses: &[SetStatus], format: Format, namespace: &str) -> Result<String, String> {
    let now = Timestamp::now();
    match format {
        Format::Json => {
            let doc = if statuses.len() == 1 {
                serde_json::to_string_pretty(&statuses[0])
            } else {
                serde_json::to_string_pretty(statuses)
            };
            doc.map(|d| d + "\n").map_err(|e| e.to_string())
        }
        Format::Text if statuses.is_empty() => {
            Ok(format!("No GameServerSets in namespace {namespace}.\n"))
        }
        Format::Text => Ok(statuses
            .iter()
            .map(|s| render(s, now))
            .collect::<Vec<_>>()
            .join("\n")),
    }
}

/// Runs `gameops status`.
pub async fn run(a: StatusArgs) -> Result<(), String> {
    let (client, namespace) = a.target.connect().await?;
    let first = read(&client, &namespace, a.set.as_deref()).await?;
    let mut shown = output(&first, a.output, &namespace)?;
    let terminal = std::io::stdout().is_terminal();
    let mut stdout = std::io::stdout();
    let clear = if terminal && a.watch {
        "\x1b[H\x1b[2J"
    } else {
        ""
    };
    let write = |stdout: &mut std::io::Stdout, text: &str| {
        let _ = write!(stdout, "{clear}{text}");
        let _ = stdout.flush();
    };
    write(&mut stdout, &shown);
    if !a.watch {
        return Ok(());
    }
    let stop = super::shutdown_signal();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => return Ok(()),
            () = tokio::time::sleep(REFRESH) => {}
        }
        let now = match read(&client, &namespace, a.set.as_deref()).await {
            Ok(s) => output(&s, a.output, &namespace)?,
            Err(e) => format!("(cannot read: {e}; trying again)\n"),
        };
        // Text with times in it changes every second: redraw in place on a
        // terminal; elsewhere print a block only when the fleet changed.
        if now != shown && (terminal || strip_times(&now) != strip_times(&shown)) {
            if !terminal {
                write(&mut stdout, "\n");
            }
            write(&mut stdout, &now);
            shown = now;
        }
    }
}

/// `text` without the durations that change as time passes.
fn strip_times(text: &str) -> String {
    text.lines()
        .filter(|l| !l.starts_with("Draining:") && !l.starts_with("Last change:"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::select::tests::server;
    use serde_json::json;

    fn set(annotations: serde_json::Value) -> GameServerSet {
        serde_json::from_value(json!({
            "apiVersion": "game.kruise.io/v1alpha1", "kind": "GameServerSet",
            "metadata": {"name": "minecraft", "namespace": "default", "annotations": annotations},
            "spec": {"replicas": 3, "updateStrategy": {"type": "OnDelete"},
                     "gameServerTemplate": {"spec": {"containers": [{"name": "minecraft", "image": "mc:2"}]}}},
        }))
        .unwrap()
    }

    #[test]
    fn servers_are_grouped_and_a_running_drain_names_what_it_waits_for() {
        let now: Timestamp = "2026-12-01T10:10:00Z".parse().unwrap();
        let waits = json!({"fp": {"template": "drain", "started": "2026-12-01T10:08:00Z",
                                  "op": "drain", "deadline": "2026-12-01T10:18:00Z"}});
        let lease = json!({"holder": "u1", "workflow": "default/release-1",
                           "until": "2026-12-01T10:20:00Z"});
        let gss = set(json!({
            progress::WAITS_ANNOTATION: waits.to_string(),
            ledger::LEASE_ANNOTATION: lease.to_string(),
        }));
        let mut busy = server(0, "Ready", "Allocated", "mc:1");
        busy.status.as_mut().unwrap().players = Some(4);
        let servers = vec![
            busy,
            server(1, "Ready", "None", "mc:2"),
            server(2, "Ready", "None", "mc:2"),
        ];
        let s = summarise(
            &gss,
            &servers,
            Some(&Holder::Running("Running".into())),
            now,
        );
        assert_eq!(s.servers.len(), 2);
        assert_eq!(s.servers[1].servers, 2);
        assert_eq!((s.in_match, s.players), (1, 4));
        assert_eq!(s.draining.len(), 1);
        assert_eq!(s.draining[0].name, "minecraft-0");
        assert_eq!(s.draining[0].draining_seconds, 120);
        let text = render(&s, now);
        assert!(
            text.contains("Draining: 1 old server still to go, draining for 2m00s, deadline 2026-12-01 10:18:00Z (in 8m00s)"),
            "{text}"
        );
        assert!(
            text.contains("held by workflow default/release-1 (uid u1) until 2026-12-01 10:20:00Z; that workflow: Running (Running)"),
            "{text}"
        );
        assert!(
            text.contains("Matches: 1 server in a match, 4 players"),
            "{text}"
        );
    }

    #[test]
    fn no_drain_no_lease_says_so() {
        let s = summarise(&set(json!({})), &[], None, Timestamp::UNIX_EPOCH);
        let text = render(&s, Timestamp::UNIX_EPOCH);
        assert!(text.contains("No GameServers."), "{text}");
        assert!(text.contains("Lease: free"), "{text}");
        assert!(text.contains("Last change: none recorded"), "{text}");
        assert!(s.draining.is_empty());
    }
}
