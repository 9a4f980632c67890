//! The simulated fleet: the embedded cluster's stand-in for kubelet and for
//! players.
//!
//! In a real cluster kubelet runs each GameServer's pod and OpenKruiseGame
//! copies the pod's state into the GameServer's status; in the embedded
//! cluster [`run`] does both, talking to the API only through [`kube::Api`]
//! exactly as any other client would. Every server goes
//! `Creating` → (startup delay + jitter) → `Ready`; when its image matches
//! [`SimulatorConfig::crash_image`] it crash-loops as kubelet reports it
//! under `restartPolicy: Always` (kubernetes pkg/kubelet/kubelet_pods.go
//! `getPhase`): pod `Running`, the container waiting in `CrashLoopBackOff`
//! and restarted after an exponential back-off with a rising
//! `restartCount`, Ready false, so OKG shows `NotReady` (kruise-game
//! pkg/controllers/gameserver/gameserver_manager.go; `Crash` is only for a
//! `Failed` pod). When its image matches [`SimulatorConfig::pull_fail_image`]
//! it never starts: `ErrImagePull`, then `ImagePullBackOff`, pod `Pending`,
//! GameServer `Creating`. An image change set on a `Ready` (or crash-looping)
//! server is an in-place update: `Updating`, then `Ready` with the new image. Allocated servers host a match that ends
//! [`SimulatorConfig::match_duration`] after the allocator's
//! [`MATCH_STARTED_ANNOTATION`]; then the server is idle again.
//!
//! The status is written the way OKG writes it (`currentState`,
//! `desiredState`, priorities, a full `podStatus` whose
//! `containerStatuses[].image` is the running image, the `PodNormal` /
//! `NodeNormal` / `PersistentVolumeNormal` conditions, `lastTransitionTime`
//! changing only with `currentState`), plus the gameops extensions
//! `players` and `maxPlayers` (the capacity a server started with: the
//! fleet controller's `gameops.io/max-players` annotation, else its set's
//! `spec.parameters.maxPlayers`, else [`SimulatorConfig::default_max_players`]).
//!
//! Players: an allocator's `players` are never overwritten during a match;
//! at its end they drop to 0 (a status patch pinned to the resourceVersion
//! the decision was made on), then `spec.opsState` goes back to `None` and
//! the annotation is removed (one merge patch, also pinned). A server set
//! `Allocated` by hand (no annotation) gets one player and keeps its match
//! until someone changes `opsState`; a server whose `opsState` is `None` has
//! no players.
//!
//! Times in a status have whole seconds (as in Kubernetes), and timed
//! transitions count from `lastTransitionTime`, so one may come up to a
//! second early; nothing is kept in memory between reconciliations.
//!
//! The decisions are made by the pure function [`transition`]
//! (`transition.rs`, with the pod and status builders in `status.rs`);
//! [`run`] (`runner.rs`) only feeds it objects from a kube-runtime
//! controller and writes the result back as merge patches, waking each
//! server up again when its next timed transition is due.

mod pod;
mod runner;
mod status;
mod transition;

use std::time::Duration;

use regex::Regex;

use crate::api::{GameServerSet, GameServerStatus};

pub use runner::run;
pub use transition::{crash_backoff, startup_jitter, transition};

/// The longest crash back-off, as kubelet's.
pub const MAX_CRASH_BACKOFF: Duration = Duration::from_secs(300);

/// Reconciliations running at once: bounds the HTTP connections to the API.
pub(super) const CONCURRENCY: u16 = 64;
/// How long [`run`] waits for the GameServerSet cache before starting anyway.
pub(super) const SET_CACHE_WAIT: Duration = Duration::from_secs(10);
/// Transitions applied in memory before one write, when several are due at once.
pub(super) const MAX_CHAINED_TRANSITIONS: usize = 4;
/// The shortest wake-up, so a zero back-off cannot spin.
pub(super) const MIN_REQUEUE: Duration = Duration::from_millis(50);
/// Retry after a write lost a race (the watch brings the newer object).
pub(super) const CONFLICT_REQUEUE: Duration = Duration::from_millis(100);
/// Retry after any other failure.
pub(super) const ERROR_REQUEUE: Duration = Duration::from_secs(1);

/// How the simulated fleet behaves.
#[derive(Clone, Debug)]
pub struct SimulatorConfig {
    /// Time from `Creating` (or `Updating`) to `Ready`.
    pub startup_delay: Duration,
    /// Up to this much more startup time per server, derived from its uid.
    pub startup_jitter: Duration,
    /// Servers running an image that matches this crash-loop as kubelet
    /// reports it: pod `Running`, container waiting in `CrashLoopBackOff`,
    /// a rising `restartCount`, GameServer `NotReady`.
    pub crash_image: Option<Regex>,
    /// Servers whose image matches this never start: the image cannot be
    /// pulled (container waiting in `ErrImagePull`, then `ImagePullBackOff`;
    /// pod `Pending`, GameServer `Creating`).
    pub pull_fail_image: Option<Regex>,
    /// Back-off before the first restart of a crashed server; it doubles per
    /// restart up to [`MAX_CRASH_BACKOFF`].
    pub crash_backoff: Duration,
    /// How long a match started by the allocator lasts.
    pub match_duration: Duration,
    /// `status.maxPlayers` of servers whose set has no `spec.parameters.maxPlayers`.
    pub default_max_players: i32,
}

impl Default for SimulatorConfig {
    fn default() -> Self {
        Self {
            startup_delay: Duration::from_secs(2),
            startup_jitter: Duration::from_secs(1),
            crash_image: None,
            pull_fail_image: None,
            crash_backoff: Duration::from_secs(5),
            match_duration: Duration::from_secs(300),
            default_max_players: 10,
        }
    }
}

/// Why one reconciliation failed (it is retried).
#[derive(Debug, thiserror::Error)]
pub enum SimulatorError {
    /// The API refused or could not be reached.
    #[error("the API request failed: {0}")]
    Kube(#[from] kube::Error),
    /// A patch could not be encoded.
    #[error("cannot encode the patch: {0}")]
    Encode(#[from] serde_json::Error),
}

/// What the simulator uses from a server's GameServerSet.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SetInfo {
    /// The set's `spec.parameters.maxPlayers`.
    pub max_players: Option<i32>,
    /// `(name, image)` of each container of the set's pod template.
    pub template_containers: Vec<(String, String)>,
}

impl SetInfo {
    /// What [`transition`] needs from `set`.
    pub fn of(set: &GameServerSet) -> Self {
        let template_containers = set
            .template_containers()
            .iter()
            .filter_map(|c| Some((c.name.clone(), c.image.clone()?)))
            .collect();
        Self {
            max_players: set.spec.parameters.as_ref().and_then(|p| p.max_players),
            template_containers,
        }
    }
}

/// The outcome of [`transition`]: the status the server should have, whether
/// its match is over, and when to look at it again.
#[derive(Clone, Debug, PartialEq)]
pub struct Transition {
    /// The new status (equal to the old one when nothing changes).
    pub status: GameServerStatus,
    /// The match is over: `spec.opsState` goes back to `None` and the
    /// [`MATCH_STARTED_ANNOTATION`] is removed.
    pub end_match: bool,
    /// Time until the next timed transition (`None`: only a change of the
    /// object can change anything).
    pub wake_after: Option<Duration>,
}
