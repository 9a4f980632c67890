//! The controller's view of one GameServerSet's servers: what each server is
//! (ordinal, revision, opsState, readiness, priorities, drain state), built
//! from GameServer objects once per reconcile, so that the planning code
//! below works on plain data.

use jiff::Timestamp;

use crate::api::{
    DRAINING_LABEL, DRAINING_SINCE_ANNOTATION, GameServer, GameServerState, OpsState,
    REVISION_LABEL,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// One GameServer as the planner sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct Server {
    /// Its name, `<set>-<ordinal>`.
    pub name: String,
    /// The ordinal parsed from the name.
    pub ordinal: u32,
    /// The template revision it was created from.
    pub revision: String,
    /// `spec.opsState` (`None` when absent).
    pub ops_state: String,
    /// `status.currentState` is `Ready`.
    pub ready: bool,
    /// `spec.deletionPriority` (higher goes first on scale-down).
    pub deletion_priority: i64,
    /// `spec.updatePriority` (higher is updated first).
    pub update_priority: i64,
    /// Players connected (`status.players`).
    pub players: i32,
    /// When it started draining, if it is draining.
    pub draining_since: Option<Timestamp>,
}

impl Server {
    /// Allocated or Maintaining: the controller never deletes or replaces it.
    pub fn protected(&self) -> bool {
        self.ops_state == OpsState::Allocated.as_str()
            || self.ops_state == OpsState::Maintaining.as_str()
    }

    /// Whether it has the opsState `state`.
    pub fn is(&self, state: OpsState) -> bool {
        self.ops_state == state.as_str()
    }
}

fn priority(v: Option<&IntOrString>) -> i64 {
    match v {
        Some(IntOrString::Int(i)) => i64::from(*i),
        Some(IntOrString::String(s)) => s.trim().parse().unwrap_or(0),
        None => 0,
    }
}

/// The ordinal of `name` in set `set` (`minecraft-3` => 3).
pub fn ordinal_of(set: &str, name: &str) -> Option<u32> {
    name.strip_prefix(set)?.strip_prefix('-')?.parse().ok()
}

impl Server {
    /// Reads a GameServer of set `set`; `None` when its name is not
    /// `<set>-<ordinal>` or it is being deleted.
    pub fn from_gameserver(set: &str, gs: &GameServer) -> Option<Self> {
        if gs.metadata.deletion_timestamp.is_some() {
            return None;
        }
        let name = gs.metadata.name.clone()?;
        let ordinal = ordinal_of(set, &name)?;
        let labels = gs.metadata.labels.as_ref();
        let status = gs.status.as_ref();
        let draining = labels
            .and_then(|l| l.get(DRAINING_LABEL))
            .is_some_and(|v| v == "true");
        let draining_since = draining.then(|| {
            gs.metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(DRAINING_SINCE_ANNOTATION))
                .and_then(|t| t.parse::<Timestamp>().ok())
                .unwrap_or(Timestamp::UNIX_EPOCH)
        });
        Some(Self {
            name,
            ordinal,
            revision: labels
                .and_then(|l| l.get(REVISION_LABEL))
                .cloned()
                .unwrap_or_default(),
            ops_state: gs
                .spec
                .ops_state
                .clone()
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| OpsState::None.as_str().to_owned()),
            ready: status.and_then(|s| s.current_state.as_deref())
                == Some(GameServerState::Ready.as_str()),
            deletion_priority: priority(gs.spec.deletion_priority.as_ref()),
            update_priority: priority(gs.spec.update_priority.as_ref()),
            players: status.and_then(|s| s.players).unwrap_or(0),
            draining_since,
        })
    }
}

/// OKG's rank of an opsState on scale-down: lower goes first.
fn ops_rank(ops_state: &str) -> u8 {
    match ops_state {
        "Kill" => 0,
        "WaitToBeDeleted" => 1,
        "Allocated" => 3,
        "Maintaining" => 4,
        // None and anything unknown.
        _ => 2,
    }
}

/// Sorts servers in OKG's scale-down order, first to delete first: Kill >
/// WaitToBeDeleted > None/unknown > Allocated > Maintaining, then higher
/// `deletionPriority`, then higher ordinal.
pub fn deletion_order(servers: &mut [Server]) {
    servers.sort_by(|a, b| {
        ops_rank(&a.ops_state)
            .cmp(&ops_rank(&b.ops_state))
            .then(b.deletion_priority.cmp(&a.deletion_priority))
            .then(b.ordinal.cmp(&a.ordinal))
    });
}

/// Parses `reserveGameServerIds` (ints, `"7"`, or `"a-b"` ranges).
pub fn reserved_ids(ids: &[IntOrString]) -> Result<Vec<u32>, String> {
    let mut out = Vec::new();
    for id in ids {
        match id {
            IntOrString::Int(i) => {
                out.push(u32::try_from(*i).map_err(|_| format!("reserved id {i} is negative"))?)
            }
            IntOrString::String(s) => {
                let parse = |t: &str| {
                    t.trim()
                        .parse::<u32>()
                        .map_err(|_| format!("reserved id {s:?} is not a number or a range a-b"))
                };
                match s.split_once('-') {
                    Some((a, b)) => {
                        let (a, b) = (parse(a)?, parse(b)?);
                        if b < a || b - a > 100_000 {
                            return Err(format!("reserved range {s:?} is empty or too large"));
                        }
                        out.extend(a..=b);
                    }
                    None => out.push(parse(s)?),
                }
            }
        }
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

/// The lowest `n` ordinals not in use and not reserved.
///
/// ```
/// use gameops::fleet::controller::fleet::free_ordinals;
///
/// assert_eq!(free_ordinals(&[0, 2], &[1], 2), [3, 4]);
/// ```
pub fn free_ordinals(used: &[u32], reserved: &[u32], n: usize) -> Vec<u32> {
    let taken: std::collections::HashSet<u32> = used.iter().chain(reserved).copied().collect();
    (0..).filter(|o| !taken.contains(o)).take(n).collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A Ready server for table tests.
    pub fn server(ordinal: u32, ops: &str, dp: i64) -> Server {
        Server {
            name: format!("s-{ordinal}"),
            ordinal,
            revision: "r1".into(),
            ops_state: ops.into(),
            ready: true,
            deletion_priority: dp,
            update_priority: 0,
            players: 0,
            draining_since: None,
        }
    }

    fn order(mut servers: Vec<Server>) -> Vec<u32> {
        deletion_order(&mut servers);
        servers.iter().map(|s| s.ordinal).collect()
    }

    #[test]
    fn scale_down_order_follows_okg() {
        // (servers, expected deletion order by ordinal)
        let cases: Vec<(Vec<Server>, Vec<u32>)> = vec![
            // opsState ranks: Kill > WaitToBeDeleted > None > Allocated > Maintaining.
            (
                vec![
                    server(0, "Maintaining", 0),
                    server(1, "Allocated", 0),
                    server(2, "None", 0),
                    server(3, "WaitToBeDeleted", 0),
                    server(4, "Kill", 0),
                ],
                vec![4, 3, 2, 1, 0],
            ),
            // Unknown opsState ranks with None.
            (
                vec![
                    server(0, "Custom", 0),
                    server(1, "Allocated", 0),
                    server(2, "None", 0),
                ],
                vec![2, 0, 1],
            ),
            // Same opsState: higher deletionPriority first.
            (
                vec![
                    server(0, "None", 5),
                    server(1, "None", 1),
                    server(2, "None", 3),
                ],
                vec![0, 2, 1],
            ),
            // Same opsState and priority: higher ordinal first.
            (
                vec![
                    server(0, "None", 0),
                    server(7, "None", 0),
                    server(3, "None", 0),
                ],
                vec![7, 3, 0],
            ),
            // opsState beats priority.
            (
                vec![server(0, "None", 100), server(1, "WaitToBeDeleted", 0)],
                vec![1, 0],
            ),
            // Priority beats ordinal.
            (vec![server(9, "None", 0), server(1, "None", 1)], vec![1, 9]),
        ];
        for (servers, want) in cases {
            assert_eq!(order(servers), want);
        }
    }

    #[test]
    fn ordinals_skip_used_and_reserved() {
        let reserved =
            reserved_ids(&[IntOrString::Int(1), IntOrString::String("3-4".into())]).unwrap();
        assert_eq!(reserved, [1, 3, 4]);
        assert_eq!(free_ordinals(&[0, 2], &reserved, 3), [5, 6, 7]);
        assert_eq!(free_ordinals(&[], &[], 2), [0, 1]);
        assert!(reserved_ids(&[IntOrString::String("x".into())]).is_err());
        assert!(reserved_ids(&[IntOrString::Int(-1)]).is_err());
        assert_eq!(ordinal_of("minecraft", "minecraft-12"), Some(12));
        assert_eq!(ordinal_of("minecraft", "minecraft-new-1"), None);
    }
}
