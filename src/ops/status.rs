//! `status`: a summary of a GameServerSet's servers per running image and
//! state, for workflow messages and gates. Outputs `summary` (JSON:
//! image => {state or opsState => count}), `total` and `ready`.

use std::borrow::Borrow;
use std::collections::BTreeMap;

use super::{Call, Outcome};
use crate::api::GameServer;
use crate::api::image::reported_image;

/// The summary's key for servers no status reports an image for yet.
const NOT_KNOWN: &str = "(image not known yet)";

use super::table::StatusArgs as Args;

/// Counts per image `container` runs (as its status reports it; kubelet
/// lists statuses by name, so the first need not be the game's):
/// `currentState`s, and `opsState`s other than None.
fn summarise<S: Borrow<GameServer>>(
    servers: &[S],
    container: &str,
) -> BTreeMap<String, BTreeMap<String, u32>> {
    let mut out: BTreeMap<String, BTreeMap<String, u32>> = BTreeMap::new();
    for gs in servers.iter().map(Borrow::borrow) {
        let image = gs
            .status
            .as_ref()
            .and_then(|s| reported_image(s, container))
            .unwrap_or(NOT_KNOWN)
            .to_owned();
        let counts = out.entry(image).or_default();
        let state = gs
            .status
            .as_ref()
            .and_then(|s| s.current_state.clone())
            .unwrap_or_else(|| "Unknown".into());
        *counts.entry(state).or_default() += 1;
        if let Some(ops) = gs
            .spec
            .ops_state
            .as_deref()
            .filter(|o| !o.is_empty() && *o != "None")
        {
            *counts.entry(ops.to_owned()).or_default() += 1;
        }
    }
    out
}

/// One line per image for the Argo UI.
fn message(set: &str, total: usize, summary: &BTreeMap<String, BTreeMap<String, u32>>) -> String {
    let images: Vec<String> = summary
        .iter()
        .map(|(image, counts)| {
            let parts: Vec<String> = counts.iter().map(|(k, v)| format!("{v} {k}")).collect();
            format!("{image}: {}", parts.join(", "))
        })
        .collect();
    format!("{set}: {total} servers; {}", images.join("; "))
}

/// Runs the op.
pub async fn run(call: &Call<'_>, _args: Args) -> Result<Outcome, Outcome> {
    let gss = super::get_set(call).await?;
    let containers = super::select::template_containers(&gss);
    let container = containers.first().map_or("", String::as_str);
    let servers = super::select::list_servers(call).await?;
    let summary = summarise(&servers, container);
    let ready = servers
        .iter()
        .filter(|g| g.status.as_ref().and_then(|s| s.current_state.as_deref()) == Some("Ready"))
        .count();
    Ok(Outcome::Done {
        message: message(&call.game_server_set, servers.len(), &summary),
        outputs: BTreeMap::from([
            (
                "summary".to_owned(),
                serde_json::to_string(&summary).unwrap_or_default(),
            ),
            ("total".to_owned(), servers.len().to_string()),
            ("ready".to_owned(), ready.to_string()),
        ]),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{GameServerSpec, GameServerStatus};

    fn gs(state: &str, ops: &str, image: &str) -> GameServer {
        let mut g = GameServer::new(
            "x",
            GameServerSpec {
                ops_state: Some(ops.into()),
                ..Default::default()
            },
        );
        let status: GameServerStatus = serde_json::from_value(serde_json::json!({
            "currentState": state,
            "podStatus": {"containerStatuses": [{"name": "c", "image": image, "imageID": "", "ready": true, "restartCount": 0}]}
        }))
        .unwrap();
        g.status = Some(status);
        g
    }

    #[test]
    fn summary_counts_states_per_running_image() {
        let servers = [
            gs("Ready", "Allocated", "mc:1"),
            gs("Ready", "None", "mc:1"),
            gs("Crash", "None", "mc:2"),
        ];
        let s = summarise(&servers, "c");
        assert_eq!(s["mc:1"]["Ready"], 2);
        assert_eq!(s["mc:1"]["Allocated"], 1);
        assert_eq!(s["mc:2"]["Crash"], 1);
        assert_eq!(
            message("mc", 3, &s),
            "mc: 3 servers; mc:1: 1 Allocated, 2 Ready; mc:2: 1 Crash"
        );
    }
}
