//! The simulated fleet: the embedded cluster's stand-in for kubelet and for
//! players.
//!
//! In a real cluster kubelet runs each GameServer's pod and OpenKruiseGame
//! copies the pod's state into the GameServer's status; in the embedded
//! cluster [`run`] does both, talking to the API only through [`kube::Api`]
//! exactly as any other client would. Every server goes
//! `Creating` → (startup delay + jitter) → `Ready`, or → `Crash` when its
//! image matches [`SimulatorConfig::crash_image`] (then restarts after an
//! exponential back-off, as kubelet's `CrashLoopBackOff` does). An image
//! change on a `Ready` server is an in-place update: `Updating`, then `Ready`
//! with the new image. Allocated servers host a match that ends
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
//! no players. A crash shows as `podStatus.phase: Failed` (OKG's mapping to
//! `Crash`) with the container waiting in `CrashLoopBackOff`.
//!
//! Times in a status have whole seconds (as in Kubernetes), and timed
//! transitions count from `lastTransitionTime`, so one may come up to a
//! second early; nothing is kept in memory between reconciliations.
//!
//! The decisions are made by the pure function [`transition`]; [`run`] only
//! feeds it objects from a kube-runtime [`Controller`] and writes the result
//! back as merge patches, waking each server up again when its next timed
//! transition is due.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting,
    ContainerStatus, HostIP, PodCondition, PodIP, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::{self, Action, Controller};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use regex::Regex;
use serde_json::{Map, Value, json};

use crate::api::MAX_PLAYERS_ANNOTATION;
use crate::api::hash::mixed as fnv1a;
use crate::api::image::reported_image;
use crate::api::{
    GameServer, GameServerCondition, GameServerSet, GameServerState, GameServerStatus,
    MATCH_STARTED_ANNOTATION, OWNER_GSS_LABEL, OpsState,
};

/// The longest crash back-off, as kubelet's.
pub const MAX_CRASH_BACKOFF: Duration = Duration::from_secs(300);

/// Reconciliations running at once: bounds the HTTP connections to the API.
const CONCURRENCY: u16 = 64;
/// How long [`run`] waits for the GameServerSet cache before starting anyway.
const SET_CACHE_WAIT: Duration = Duration::from_secs(10);
/// Transitions applied in memory before one write, when several are due at once.
const MAX_CHAINED_TRANSITIONS: usize = 4;
/// The shortest wake-up, so a zero back-off cannot spin.
const MIN_REQUEUE: Duration = Duration::from_millis(50);
/// Retry after a write lost a race (the watch brings the newer object).
const CONFLICT_REQUEUE: Duration = Duration::from_millis(100);
/// Retry after any other failure.
const ERROR_REQUEUE: Duration = Duration::from_secs(1);

/// How the simulated fleet behaves.
#[derive(Clone, Debug)]
pub struct SimulatorConfig {
    /// Time from `Creating` (or `Updating`) to `Ready`.
    pub startup_delay: Duration,
    /// Up to this much more startup time per server, derived from its uid.
    pub startup_jitter: Duration,
    /// Servers running an image that matches this go to `Crash`.
    pub crash_image: Option<Regex>,
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
            .spec
            .game_server_template
            .as_ref()
            .and_then(|t| t.pod_template.spec.as_ref())
            .map(|pod| {
                pod.containers
                    .iter()
                    .filter_map(|c| Some((c.name.clone(), c.image.clone()?)))
                    .collect()
            })
            .unwrap_or_default();
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

/// A deterministic startup jitter in `[0, max)` derived from a server's
/// uid, so a restarted simulator picks the same times without remembering.
pub fn startup_jitter(uid: &str, max: Duration) -> Duration {
    // The top 53 bits of the hash, as a fraction of 1.
    let fraction = (fnv1a(uid.as_bytes(), 0) >> 11) as f64 / (1u64 << 53) as f64;
    max.mul_f64(fraction)
}

/// The back-off after the `restarts`-th crash: `base`, doubling per
/// restart, at most [`MAX_CRASH_BACKOFF`].
pub fn crash_backoff(base: Duration, restarts: i32) -> Duration {
    let doublings = restarts.saturating_sub(1).clamp(0, 31) as u32;
    base.saturating_mul(1u32 << doublings)
        .min(MAX_CRASH_BACKOFF)
}

/// One container the server should run.
#[derive(Clone, Debug, PartialEq)]
struct Desired {
    name: String,
    image: String,
    /// Set on the GameServer itself (so a change is an in-place update),
    /// rather than taken from the set's template.
    pinned: bool,
}

/// The containers `gs` should run: its own `spec.containers` over the set's
/// template.
fn desired_containers(gs: &GameServer, set: Option<&SetInfo>) -> Vec<Desired> {
    let own: Vec<(&str, &str)> = gs
        .spec
        .containers
        .iter()
        .flatten()
        .filter_map(|c| Some((c.name.as_str(), c.image.as_deref()?)))
        .collect();
    let template = set.map(|s| s.template_containers.as_slice()).unwrap_or(&[]);
    let mut out: Vec<Desired> = template
        .iter()
        .map(|(name, image)| match own.iter().find(|(n, _)| n == name) {
            Some((_, own_image)) => Desired {
                name: name.clone(),
                image: (*own_image).to_owned(),
                pinned: true,
            },
            None => Desired {
                name: name.clone(),
                image: image.clone(),
                pinned: false,
            },
        })
        .collect();
    for (name, image) in &own {
        if !out.iter().any(|d| d.name == *name) {
            out.push(Desired {
                name: (*name).to_owned(),
                image: (*image).to_owned(),
                pinned: true,
            });
        }
    }
    out
}

/// Who the simulated pod is: for names, ids and addresses.
struct PodId<'a> {
    name: &'a str,
    namespace: &'a str,
    uid: &'a str,
}

impl PodId<'_> {
    fn host_ip(&self) -> String {
        let h = fnv1a(self.uid.as_bytes(), 1);
        format!("172.18.{}.{}", (h >> 8) % 256, 2 + h % 250)
    }

    fn pod_ip(&self) -> String {
        let h = fnv1a(self.uid.as_bytes(), 2);
        format!("10.244.{}.{}", (h >> 8) % 256, 2 + h % 250)
    }

    fn container_id(&self, container: &str, restarts: i32) -> String {
        let seed = format!("{}/{container}/{restarts}", self.uid);
        format!("containerd://{}", hex64(seed.as_bytes()))
    }
}

/// A fake but stable image digest reference, as kubelet reports `imageID`.
fn image_id(image: &str) -> String {
    let repo = crate::api::image::repository_as_written(image);
    format!("{repo}@sha256:{}", hex64(image.as_bytes()))
}

/// 64 hex digits derived from `bytes`.
fn hex64(bytes: &[u8]) -> String {
    (0..4)
        .map(|i| format!("{:016x}", fnv1a(bytes, i + 10)))
        .collect()
}

fn time(ts: Timestamp) -> Time {
    // Kubernetes times have whole seconds.
    Time(Timestamp::from_second(ts.as_second()).unwrap_or(ts))
}

fn later(ts: Timestamp, d: Duration) -> Timestamp {
    ts.checked_add(d).unwrap_or(Timestamp::MAX)
}

/// Time from `now` until `due` (zero when it has passed).
fn until(now: Timestamp, due: Timestamp) -> Duration {
    Duration::try_from(due.duration_since(now)).unwrap_or(Duration::ZERO)
}

fn earliest(a: Option<Duration>, b: Duration) -> Option<Duration> {
    Some(a.map_or(b, |a| a.min(b)))
}

fn restarts_of(status: &GameServerStatus) -> BTreeMap<String, (i32, Option<ContainerState>)> {
    status
        .pod_status
        .iter()
        .flat_map(|p| p.container_statuses.iter().flatten())
        .map(|c| (c.name.clone(), (c.restart_count, c.last_state.clone())))
        .collect()
}

fn max_restarts(status: &GameServerStatus) -> i32 {
    restarts_of(status)
        .values()
        .map(|(n, _)| *n)
        .max()
        .unwrap_or(0)
}

fn crashes(config: &SimulatorConfig, image: &str) -> bool {
    config
        .crash_image
        .as_ref()
        .is_some_and(|re| re.is_match(image))
}

/// The pod's lifecycle stage, for its conditions.
#[derive(Clone, Copy, PartialEq)]
enum Stage {
    Creating,
    Ready,
    Crash,
    Updating,
}

fn condition(
    type_: &str,
    ok: bool,
    reason: Option<String>,
    message: Option<String>,
) -> PodCondition {
    PodCondition {
        type_: type_.to_owned(),
        status: if ok { "True" } else { "False" }.to_owned(),
        reason,
        message,
        ..Default::default()
    }
}

/// The pod conditions kubelet (and Kruise's `InPlaceUpdateReady` readiness
/// gate) report in `stage`; a condition whose status did not change keeps
/// its `lastTransitionTime`.
fn pod_conditions(
    old: Option<&PodStatus>,
    stage: Stage,
    unready: &[&str],
    now: Timestamp,
) -> Vec<PodCondition> {
    let not_ready = || {
        (
            Some("ContainersNotReady".to_owned()),
            Some(format!(
                "containers with unready status: [{}]",
                unready.join(" ")
            )),
        )
    };
    let containers_ready = unready.is_empty();
    let gate_ready = stage != Stage::Updating;
    let (ready_reason, ready_message) = if !containers_ready {
        not_ready()
    } else if !gate_ready {
        (
            Some("ReadinessGatesNotReady".to_owned()),
            Some(
                "the status of pod readiness gate \"InPlaceUpdateReady\" is not \"True\", but False"
                    .to_owned(),
            ),
        )
    } else {
        (None, None)
    };
    let (cr_reason, cr_message) = if containers_ready {
        (None, None)
    } else {
        not_ready()
    };
    let mut conditions = vec![
        condition("InPlaceUpdateReady", gate_ready, None, None),
        condition("PodReadyToStartContainers", true, None, None),
        condition("Initialized", true, None, None),
        condition(
            "Ready",
            containers_ready && gate_ready,
            ready_reason,
            ready_message,
        ),
        condition("ContainersReady", containers_ready, cr_reason, cr_message),
        condition("PodScheduled", true, None, None),
    ];
    let old = old.and_then(|p| p.conditions.as_deref()).unwrap_or(&[]);
    for c in &mut conditions {
        c.last_transition_time = old
            .iter()
            .find(|o| o.type_ == c.type_ && o.status == c.status)
            .and_then(|o| o.last_transition_time.clone())
            .or_else(|| Some(time(now)));
    }
    conditions
}

/// The pod status in `stage`, built from the old one.
fn pod_status(
    old: &GameServerStatus,
    pod: &PodId<'_>,
    containers: Vec<ContainerStatus>,
    stage: Stage,
    now: Timestamp,
) -> PodStatus {
    let old_pod = old.pod_status.as_ref();
    let unready: Vec<&str> = containers
        .iter()
        .filter(|c| !c.ready)
        .map(|c| c.name.as_str())
        .collect();
    let phase = match stage {
        Stage::Creating => "Pending",
        Stage::Ready | Stage::Updating => "Running",
        Stage::Crash => "Failed",
    };
    let conditions = pod_conditions(old_pod, stage, &unready, now);
    let host_ip = pod.host_ip();
    let pod_ip = pod.pod_ip();
    PodStatus {
        phase: Some(phase.to_owned()),
        conditions: Some(conditions),
        host_ip: Some(host_ip.clone()),
        host_ips: Some(vec![HostIP { ip: host_ip }]),
        pod_ip: Some(pod_ip.clone()),
        pod_ips: Some(vec![PodIP { ip: pod_ip }]),
        qos_class: Some("BestEffort".to_owned()),
        start_time: old_pod
            .and_then(|p| p.start_time.clone())
            .or_else(|| Some(time(now))),
        container_statuses: Some(containers),
        ..Default::default()
    }
}

fn waiting(reason: &str, message: Option<String>) -> ContainerState {
    ContainerState {
        waiting: Some(ContainerStateWaiting {
            reason: Some(reason.to_owned()),
            message,
        }),
        ..Default::default()
    }
}

/// A container being created (image pulled, not started yet).
fn creating_container(d: &Desired, restarts: i32, last: Option<ContainerState>) -> ContainerStatus {
    ContainerStatus {
        name: d.name.clone(),
        image: d.image.clone(),
        image_id: String::new(),
        ready: false,
        started: Some(false),
        restart_count: restarts,
        state: Some(waiting("ContainerCreating", None)),
        last_state: last,
        ..Default::default()
    }
}

/// A running, ready container.
fn running_container(
    d: &Desired,
    pod: &PodId<'_>,
    restarts: i32,
    last: Option<ContainerState>,
    now: Timestamp,
) -> ContainerStatus {
    ContainerStatus {
        name: d.name.clone(),
        image: d.image.clone(),
        image_id: image_id(&d.image),
        container_id: Some(pod.container_id(&d.name, restarts)),
        ready: true,
        started: Some(true),
        restart_count: restarts,
        state: Some(ContainerState {
            running: Some(ContainerStateRunning {
                started_at: Some(time(now)),
            }),
            ..Default::default()
        }),
        last_state: last,
        ..Default::default()
    }
}

/// A container in `CrashLoopBackOff` after its `restarts`-th exit.
fn crashed_container(
    d: &Desired,
    pod: &PodId<'_>,
    restarts: i32,
    backoff: Duration,
    started: Time,
    now: Timestamp,
) -> ContainerStatus {
    let message = format!(
        "back-off {}s restarting failed container={} pod={}_{}({})",
        backoff.as_secs(),
        d.name,
        pod.name,
        pod.namespace,
        pod.uid
    );
    let container_id = pod.container_id(&d.name, restarts);
    ContainerStatus {
        name: d.name.clone(),
        image: d.image.clone(),
        image_id: image_id(&d.image),
        container_id: Some(container_id.clone()),
        ready: false,
        started: Some(false),
        restart_count: restarts,
        state: Some(waiting("CrashLoopBackOff", Some(message))),
        last_state: Some(ContainerState {
            terminated: Some(ContainerStateTerminated {
                container_id: Some(container_id),
                exit_code: 1,
                reason: Some("Error".to_owned()),
                started_at: Some(started),
                finished_at: Some(time(now)),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// OKG's `polyMessageReason`: joins distinct messages and reasons with `; `.
fn poly(acc: &mut (String, String), message: &str, reason: &str) {
    if acc.0.is_empty() && acc.1.is_empty() {
        *acc = (message.to_owned(), reason.to_owned());
        return;
    }
    if !acc.1.contains(reason) {
        acc.1 = format!("{}; {reason}", acc.1);
    }
    if !acc.0.contains(message) {
        acc.0 = format!("{}; {message}", acc.0);
    }
}

/// OKG's `PodNormal` condition of a pod (`getPodConditions`), without times.
fn pod_normal(pod: Option<&PodStatus>) -> GameServerCondition {
    let mut acc = (String::new(), String::new());
    if let Some(pod) = pod {
        if let Some(reason) = pod.reason.as_deref().filter(|r| !r.is_empty()) {
            poly(&mut acc, pod.message.as_deref().unwrap_or(""), reason);
        }
        let conditions = pod.conditions.as_deref().unwrap_or(&[]);
        let containers_ready = conditions
            .iter()
            .any(|c| c.type_ == "ContainersReady" && c.status == "True");
        for c in conditions {
            let failing = match c.type_.as_str() {
                "PodScheduled" | "Initialized" | "ContainersReady" => c.status != "True",
                "Ready" => containers_ready && c.status == "False",
                _ => false,
            };
            if failing {
                poly(
                    &mut acc,
                    c.message.as_deref().unwrap_or(""),
                    c.reason.as_deref().unwrap_or(""),
                );
            }
        }
        for s in pod.container_statuses.iter().flatten() {
            let state = s.state.clone().unwrap_or_default();
            if let Some(w) = &state.waiting
                && let Some(reason) = w.reason.as_deref().filter(|r| !r.is_empty())
            {
                poly(&mut acc, w.message.as_deref().unwrap_or(""), reason);
            }
            let terminated = |t: &ContainerStateTerminated| {
                t.reason.as_deref().filter(|r| !r.is_empty()).map(|r| {
                    (
                        format!(
                            "{} ExitCode: {}",
                            t.message.as_deref().unwrap_or(""),
                            t.exit_code
                        ),
                        format!("ContainerTerminated:{r}"),
                    )
                })
            };
            let last = s.last_state.as_ref().and_then(|l| l.terminated.as_ref());
            let found = match &state.terminated {
                Some(t) => terminated(t),
                None if state.running.is_none() => last.and_then(terminated),
                None => None,
            };
            if let Some((message, reason)) = found {
                poly(&mut acc, &message, &reason);
            }
        }
    }
    let (message, reason) = acc;
    let ok = message.is_empty() && reason.is_empty();
    GameServerCondition {
        r#type: "PodNormal".to_owned(),
        status: if ok { "True" } else { "False" }.to_owned(),
        reason: (!reason.is_empty()).then_some(reason),
        message: (!message.is_empty()).then_some(message),
        ..Default::default()
    }
}

/// OKG's GameServer conditions for the status's pod: `PodNormal`,
/// `NodeNormal`, `PersistentVolumeNormal`; an unchanged condition keeps its
/// `lastTransitionTime`.
fn gameserver_conditions(status: &GameServerStatus, now: Timestamp) -> Vec<GameServerCondition> {
    let healthy = |t: &str| GameServerCondition {
        r#type: t.to_owned(),
        status: "True".to_owned(),
        ..Default::default()
    };
    let mut conditions = vec![
        pod_normal(status.pod_status.as_ref()),
        healthy("NodeNormal"),
        healthy("PersistentVolumeNormal"),
    ];
    let old = status.conditions.as_deref().unwrap_or(&[]);
    for c in &mut conditions {
        c.last_transition_time = old
            .iter()
            .find(|o| {
                o.r#type == c.r#type
                    && o.status == c.status
                    && o.reason == c.reason
                    && o.message == c.message
            })
            .and_then(|o| o.last_transition_time.clone())
            .or_else(|| Some(time(now)));
    }
    conditions
}

fn set_state(status: &mut GameServerStatus, state: GameServerState, now: Timestamp) {
    status.current_state = Some(state.as_str().to_owned());
    status.last_transition_time = Some(time(now));
}

/// Starts the containers: `Crash` when an image matches the crash pattern,
/// else `Ready`. Returns the time until the next transition.
fn start(
    st: &mut GameServerStatus,
    old: &GameServerStatus,
    pod: &PodId<'_>,
    desired: &[Desired],
    capacity: i32,
    config: &SimulatorConfig,
    now: Timestamp,
) -> Option<Duration> {
    let previous = restarts_of(old);
    let was_updating = old.current_state.as_deref() == Some(GameServerState::Updating.as_str());
    let started = st.last_transition_time.clone().unwrap_or_else(|| time(now));
    if desired.iter().any(|d| crashes(config, &d.image)) {
        let mut restarts = 0;
        let containers = desired
            .iter()
            .map(|d| {
                let (count, last) = previous.get(&d.name).cloned().unwrap_or_default();
                if crashes(config, &d.image) {
                    let count = count.saturating_add(1);
                    restarts = restarts.max(count);
                    let backoff = crash_backoff(config.crash_backoff, count);
                    crashed_container(d, pod, count, backoff, started.clone(), now)
                } else {
                    running_container(d, pod, count, last, now)
                }
            })
            .collect();
        st.pod_status = Some(pod_status(old, pod, containers, Stage::Crash, now));
        set_state(st, GameServerState::Crash, now);
        return Some(crash_backoff(config.crash_backoff, restarts));
    }
    let containers = desired
        .iter()
        .map(|d| {
            let (count, last) = previous.get(&d.name).cloned().unwrap_or_default();
            let replaced = was_updating && reported_image(old, &d.name) != Some(d.image.as_str());
            let count = if replaced {
                count.saturating_add(1)
            } else {
                count
            };
            running_container(d, pod, count, last, now)
        })
        .collect();
    st.pod_status = Some(pod_status(old, pod, containers, Stage::Ready, now));
    set_state(st, GameServerState::Ready, now);
    st.max_players = Some(capacity);
    st.players.get_or_insert(0);
    None
}

/// A server's capacity when it starts: the `MAX_PLAYERS` it was created
/// with ([`MAX_PLAYERS_ANNOTATION`], written by the fleet controller), else
/// its set's `parameters.maxPlayers`, else the configured default.
fn capacity(gs: &GameServer, set: Option<&SetInfo>, config: &SimulatorConfig) -> i32 {
    gs.annotations()
        .get(MAX_PLAYERS_ANNOTATION)
        .and_then(|v| v.trim().parse().ok())
        .or_else(|| set.and_then(|s| s.max_players))
        .unwrap_or(config.default_max_players)
}

/// Back to `Creating` (a new pod, or a restart after a crash).
fn create(
    st: &mut GameServerStatus,
    old: &GameServerStatus,
    pod: &PodId<'_>,
    desired: &[Desired],
    startup: Duration,
    now: Timestamp,
) -> Option<Duration> {
    let previous = restarts_of(old);
    let containers = desired
        .iter()
        .map(|d| {
            let (count, last) = previous.get(&d.name).cloned().unwrap_or_default();
            creating_container(d, count, last)
        })
        .collect();
    st.pod_status = Some(pod_status(old, pod, containers, Stage::Creating, now));
    set_state(st, GameServerState::Creating, now);
    Some(startup)
}

/// The next state of `gs` at `now`: the heart of the simulator, free of I/O.
///
/// `set` is what the server's GameServerSet says (capacity, template), if
/// it has one.
pub fn transition(
    gs: &GameServer,
    set: Option<&SetInfo>,
    now: Timestamp,
    config: &SimulatorConfig,
) -> Transition {
    let old = gs.status.clone().unwrap_or_default();
    let mut st = old.clone();
    let uid = gs.metadata.uid.as_deref().unwrap_or_default();
    let pod = PodId {
        name: gs.metadata.name.as_deref().unwrap_or_default(),
        namespace: gs.metadata.namespace.as_deref().unwrap_or_default(),
        uid,
    };
    st.desired_state = Some(GameServerState::Ready.as_str().to_owned());
    st.deletion_priority = Some(
        gs.spec
            .deletion_priority
            .clone()
            .unwrap_or(IntOrString::Int(0)),
    );
    st.update_priority = Some(
        gs.spec
            .update_priority
            .clone()
            .unwrap_or(IntOrString::Int(0)),
    );

    let desired = desired_containers(gs, set);
    let startup = config
        .startup_delay
        .saturating_add(startup_jitter(uid, config.startup_jitter));
    let since = old
        .last_transition_time
        .as_ref()
        .map(|t| t.0)
        .or_else(|| gs.metadata.creation_timestamp.as_ref().map(|t| t.0))
        .unwrap_or(now);
    let mut end_match = false;

    if gs.metadata.deletion_timestamp.is_some() {
        if old.current_state.as_deref() != Some(GameServerState::Deleting.as_str()) {
            set_state(&mut st, GameServerState::Deleting, now);
        }
        st.conditions = Some(gameserver_conditions(&st, now));
        return Transition {
            status: st,
            end_match,
            wake_after: None,
        };
    }

    let state = old
        .current_state
        .as_deref()
        .filter(|s| !s.is_empty())
        .map(|s| GameServerState::parse(s).ok_or(s));
    let mut wake = match state {
        None => create(&mut st, &old, &pod, &desired, startup, now),
        Some(Ok(
            GameServerState::Creating | GameServerState::NotReady | GameServerState::Unknown,
        ))
        | Some(Ok(GameServerState::Updating)) => {
            let due = later(since, startup);
            if now >= due {
                start(
                    &mut st,
                    &old,
                    &pod,
                    &desired,
                    capacity(gs, set, config),
                    config,
                    now,
                )
            } else {
                Some(until(now, due))
            }
        }
        Some(Ok(GameServerState::Crash)) => {
            let due = later(
                since,
                crash_backoff(config.crash_backoff, max_restarts(&old)),
            );
            let fixed = desired
                .iter()
                .any(|d| reported_image(&old, &d.name) != Some(d.image.as_str()));
            if now >= due || fixed {
                create(&mut st, &old, &pod, &desired, startup, now)
            } else {
                Some(until(now, due))
            }
        }
        Some(Ok(GameServerState::Ready)) => {
            let changed: Vec<&str> = desired
                .iter()
                .filter(|d| d.pinned && reported_image(&old, &d.name) != Some(d.image.as_str()))
                .map(|d| d.name.as_str())
                .collect();
            if changed.is_empty() {
                if st.max_players.is_none() {
                    st.max_players = Some(capacity(gs, set, config));
                }
                None
            } else {
                let mut pod_now = old.pod_status.clone().unwrap_or_default();
                for c in pod_now.container_statuses.iter_mut().flatten() {
                    if changed.contains(&c.name.as_str()) {
                        c.ready = false;
                    }
                }
                let containers = pod_now.container_statuses.take().unwrap_or_default();
                st.pod_status = Some(pod_status(&old, &pod, containers, Stage::Updating, now));
                set_state(&mut st, GameServerState::Updating, now);
                Some(startup)
            }
        }
        // Hook states, or a state someone else wrote: left alone.
        Some(_) => None,
    };

    match gs.spec.ops_state.as_deref().map(OpsState::parse) {
        Some(Some(OpsState::Allocated)) => {
            let started = gs
                .annotations()
                .get(MATCH_STARTED_ANNOTATION)
                .and_then(|s| s.parse::<Timestamp>().ok());
            match started {
                Some(started) => {
                    let ends = later(started, config.match_duration);
                    if now >= ends {
                        st.players = Some(0);
                        end_match = true;
                    } else {
                        wake = earliest(wake, until(now, ends));
                    }
                }
                // Allocated by hand: somebody is playing, for as long as it lasts.
                None if st.players.unwrap_or(0) == 0 => st.players = Some(1),
                None => {}
            }
        }
        // Idle: nobody is playing.
        None | Some(Some(OpsState::None)) if st.players.unwrap_or(0) > 0 => {
            st.players = Some(0);
        }
        _ => {}
    }

    st.conditions = Some(gameserver_conditions(&st, now));
    Transition {
        status: st,
        end_match,
        wake_after: wake,
    }
}

/// A JSON merge patch (RFC 7386) turning `old` into `new`; `None` if equal.
fn merge_diff(old: &Value, new: &Value) -> Option<Value> {
    match (old, new) {
        (Value::Object(o), Value::Object(n)) => {
            let mut out = Map::new();
            for (k, nv) in n {
                match o.get(k) {
                    Some(ov) => {
                        if let Some(d) = merge_diff(ov, nv) {
                            out.insert(k.clone(), d);
                        }
                    }
                    None => {
                        out.insert(k.clone(), nv.clone());
                    }
                }
            }
            for k in o.keys() {
                if !n.contains_key(k) {
                    out.insert(k.clone(), Value::Null);
                }
            }
            (!out.is_empty()).then_some(Value::Object(out))
        }
        _ => (old != new).then(|| new.clone()),
    }
}

struct Context {
    client: Client,
    config: SimulatorConfig,
    sets: Store<GameServerSet>,
}

impl Context {
    fn set_of(&self, gs: &GameServer) -> Option<SetInfo> {
        let namespace = gs.metadata.namespace.as_deref()?;
        let name = gs.labels().get(OWNER_GSS_LABEL).cloned().or_else(|| {
            gs.owner_references()
                .iter()
                .find(|o| o.kind == "GameServerSet")
                .map(|o| o.name.clone())
        })?;
        let set = self.sets.get(&ObjectRef::new(&name).within(namespace))?;
        Some(SetInfo::of(&set))
    }
}

fn status_code(e: &kube::Error) -> Option<u16> {
    match e {
        kube::Error::Api(s) => Some(s.code),
        _ => None,
    }
}

/// What a failed write means for the reconciliation.
fn on_write_error(e: kube::Error) -> Result<Action, SimulatorError> {
    match status_code(&e) {
        Some(404) => Ok(Action::await_change()),
        Some(409) => Ok(Action::requeue(CONFLICT_REQUEUE)),
        _ => Err(e.into()),
    }
}

async fn reconcile(gs: Arc<GameServer>, ctx: Arc<Context>) -> Result<Action, SimulatorError> {
    let (Some(namespace), Some(name)) = (
        gs.metadata.namespace.as_deref(),
        gs.metadata.name.as_deref(),
    ) else {
        return Ok(Action::await_change());
    };
    let api: Api<GameServer> = Api::namespaced(ctx.client.clone(), namespace);
    let set = ctx.set_of(&gs);
    let mut work = (*gs).clone();
    let mut outcome = None;
    for _ in 0..MAX_CHAINED_TRANSITIONS {
        let before = work.status.as_ref().and_then(|s| s.current_state.clone());
        let t = transition(&work, set.as_ref(), Timestamp::now(), &ctx.config);
        if t.status.current_state != before {
            tracing::debug!(
                gameserver = %format!("{namespace}/{name}"),
                from = before.as_deref().unwrap_or("-"),
                to = t.status.current_state.as_deref().unwrap_or("-"),
                "simulated state transition"
            );
        }
        let again = !t.end_match && t.wake_after == Some(Duration::ZERO);
        work.status = Some(t.status.clone());
        outcome = Some(t);
        if !again {
            break;
        }
    }
    let Some(outcome) = outcome else {
        return Ok(Action::await_change());
    };

    let old = serde_json::to_value(gs.status.clone().unwrap_or_default())?;
    let new = serde_json::to_value(&outcome.status)?;
    let mut resource_version = gs.metadata.resource_version.clone();
    if let Some(diff) = merge_diff(&old, &new) {
        // Players belong to whoever changed them last: only write them over
        // the version they were decided on.
        let pin = diff.get("players").is_some();
        let mut body = json!({ "status": diff });
        if pin {
            body["metadata"] = json!({ "resourceVersion": resource_version });
        }
        match api
            .patch_status(name, &PatchParams::default(), &Patch::Merge(&body))
            .await
        {
            Ok(updated) => resource_version = updated.metadata.resource_version,
            Err(e) => return on_write_error(e),
        }
    }
    if outcome.end_match {
        let body = json!({
            "metadata": {
                "resourceVersion": resource_version,
                "annotations": { MATCH_STARTED_ANNOTATION: null },
            },
            "spec": { "opsState": OpsState::None.as_str() },
        });
        if let Err(e) = api
            .patch(name, &PatchParams::default(), &Patch::Merge(&body))
            .await
        {
            return on_write_error(e);
        }
        tracing::debug!(gameserver = %format!("{namespace}/{name}"), "simulated match ended");
        return Ok(Action::await_change());
    }
    Ok(match outcome.wake_after {
        Some(d) => Action::requeue(d.max(MIN_REQUEUE)),
        None => Action::await_change(),
    })
}

fn error_policy(_gs: Arc<GameServer>, error: &SimulatorError, _ctx: Arc<Context>) -> Action {
    tracing::debug!(%error, "simulator reconciliation failed; retrying");
    Action::requeue(ERROR_REQUEUE)
}

/// Runs the simulated fleet over every GameServer the client can see, until
/// the future is dropped.
pub async fn run(client: Client, config: SimulatorConfig) {
    let (sets, writer) = reflector::store::<GameServerSet>();
    let set_cache = watcher(
        Api::<GameServerSet>::all(client.clone()),
        watcher::Config::default(),
    )
    .default_backoff()
    .reflect(writer)
    .for_each(|event| {
        if let Err(error) = event {
            tracing::warn!(%error, "simulator: watching GameServerSets failed; retrying");
        }
        futures::future::ready(())
    });
    let ctx = Arc::new(Context {
        client: client.clone(),
        config,
        sets: sets.clone(),
    });
    let servers = async move {
        if tokio::time::timeout(SET_CACHE_WAIT, sets.wait_until_ready())
            .await
            .is_err()
        {
            tracing::warn!("simulator: no GameServerSet list yet; starting without it");
        }
        Controller::new(Api::<GameServer>::all(client), watcher::Config::default())
            .with_config(controller::Config::default().concurrency(CONCURRENCY))
            .run(reconcile, error_policy, ctx)
            .for_each(|result| {
                match result {
                    Ok(_) => {}
                    Err(controller::Error::ObjectNotFound(_)) => {}
                    Err(controller::Error::ReconcilerFailed(error, object)) => {
                        tracing::warn!(%error, gameserver = %object, "simulator: reconciliation failed");
                    }
                    Err(error) => tracing::warn!(%error, "simulator: controller error"),
                }
                futures::future::ready(())
            })
            .await;
    };
    futures::future::join(set_cache, servers).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{GameServerContainer, GameServerSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    const IMAGE: &str = "registry.example/game:1.0";
    const IMAGE2: &str = "registry.example/game:2.0";
    const BAD: &str = "registry.example/game:broken";

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + s).unwrap()
    }

    fn config() -> SimulatorConfig {
        SimulatorConfig {
            startup_delay: Duration::from_secs(2),
            startup_jitter: Duration::ZERO,
            crash_image: Some(Regex::new("broken").unwrap()),
            crash_backoff: Duration::from_secs(5),
            match_duration: Duration::from_secs(60),
            default_max_players: 10,
        }
    }

    fn server(image: &str) -> GameServer {
        GameServer {
            metadata: ObjectMeta {
                name: Some("gs-0".into()),
                namespace: Some("default".into()),
                uid: Some("3f0e6b52-0d5c-4b43-9d7f-1a2b3c4d5e6f".into()),
                creation_timestamp: Some(Time(at(0))),
                ..Default::default()
            },
            spec: GameServerSpec {
                containers: Some(vec![GameServerContainer {
                    name: "game".into(),
                    image: Some(image.into()),
                    resources: None,
                }]),
                ..Default::default()
            },
            status: None,
        }
    }

    /// Applies `transition` at `t` and stores the status back.
    fn step(gs: &mut GameServer, t: i64) -> Transition {
        let out = transition(gs, None, at(t), &config());
        gs.status = Some(out.status.clone());
        out
    }

    fn state(gs: &GameServer) -> &str {
        gs.status
            .as_ref()
            .and_then(|s| s.current_state.as_deref())
            .unwrap_or("")
    }

    fn container(gs: &GameServer) -> ContainerStatus {
        gs.status
            .as_ref()
            .unwrap()
            .pod_status
            .as_ref()
            .unwrap()
            .container_statuses
            .as_ref()
            .unwrap()[0]
            .clone()
    }

    fn condition<'a>(gs: &'a GameServer, t: &str) -> &'a GameServerCondition {
        gs.status
            .as_ref()
            .unwrap()
            .conditions
            .iter()
            .flatten()
            .find(|c| c.r#type == t)
            .unwrap()
    }

    #[test]
    fn jitter_is_deterministic_and_bounded() {
        let max = Duration::from_secs(1);
        let a = startup_jitter("uid-a", max);
        assert_eq!(a, startup_jitter("uid-a", max));
        assert!(a < max);
        assert_eq!(startup_jitter("uid-a", Duration::ZERO), Duration::ZERO);
        let spread: std::collections::BTreeSet<_> = (0..100)
            .map(|i| startup_jitter(&format!("uid-{i}"), max).as_millis() / 100)
            .collect();
        assert!(spread.len() >= 8, "jitter should spread: {spread:?}");
    }

    #[test]
    fn backoff_doubles_up_to_five_minutes() {
        let base = Duration::from_secs(5);
        let table = [
            (0, 5),
            (1, 5),
            (2, 10),
            (3, 20),
            (4, 40),
            (5, 80),
            (6, 160),
            (7, 300),
            (50, 300),
            (i32::MAX, 300),
        ];
        for (restarts, secs) in table {
            assert_eq!(
                crash_backoff(base, restarts),
                Duration::from_secs(secs),
                "restarts {restarts}"
            );
        }
        assert_eq!(
            crash_backoff(Duration::from_secs(600), 1),
            MAX_CRASH_BACKOFF
        );
    }

    #[test]
    fn new_server_is_created_then_ready_after_the_startup_delay() {
        let mut gs = server(IMAGE);
        gs.spec.deletion_priority = Some(IntOrString::Int(3));
        let t = step(&mut gs, 0);
        assert_eq!(state(&gs), "Creating");
        assert_eq!(t.wake_after, Some(Duration::from_secs(2)));
        let st = gs.status.clone().unwrap();
        assert_eq!(st.desired_state.as_deref(), Some("Ready"));
        assert_eq!(st.deletion_priority, Some(IntOrString::Int(3)));
        assert_eq!(st.update_priority, Some(IntOrString::Int(0)));
        assert_eq!(st.last_transition_time, Some(Time(at(0))));
        assert_eq!(
            st.pod_status.as_ref().unwrap().phase.as_deref(),
            Some("Pending")
        );
        assert_eq!(condition(&gs, "PodNormal").status, "False");

        // Not yet due: nothing changes, and it says when to come back.
        let t = step(&mut gs, 1);
        assert_eq!(t.status, st);
        assert_eq!(t.wake_after, Some(Duration::from_secs(1)));

        let t = step(&mut gs, 2);
        assert_eq!(state(&gs), "Ready");
        assert_eq!(t.wake_after, None);
        let st = gs.status.clone().unwrap();
        assert_eq!(st.last_transition_time, Some(Time(at(2))));
        assert_eq!(st.players, Some(0));
        assert_eq!(st.max_players, Some(10));
        let pod = st.pod_status.as_ref().unwrap();
        assert_eq!(pod.phase.as_deref(), Some("Running"));
        assert!(pod.conditions.iter().flatten().all(|c| c.status == "True"));
        let c = container(&gs);
        assert_eq!(
            (c.image.as_str(), c.ready, c.started, c.restart_count),
            (IMAGE, true, Some(true), 0)
        );
        assert!(c.image_id.starts_with("registry.example/game@sha256:"));
        assert!(c.state.unwrap().running.is_some());
        assert_eq!(condition(&gs, "PodNormal").status, "True");
        assert_eq!(
            condition(&gs, "PodNormal").last_transition_time,
            Some(Time(at(2)))
        );

        // Steady: a later look changes nothing, not even a time.
        let t = step(&mut gs, 500);
        assert_eq!(t.status, st);
        assert_eq!(t.wake_after, None);
    }

    #[test]
    fn jitter_delays_the_start() {
        let mut gs = server(IMAGE);
        let mut cfg = config();
        cfg.startup_jitter = Duration::from_secs(10);
        let jitter = startup_jitter(gs.metadata.uid.as_deref().unwrap(), cfg.startup_jitter);
        let t = transition(&gs, None, at(0), &cfg);
        assert_eq!(t.wake_after, Some(Duration::from_secs(2) + jitter));
        gs.status = Some(t.status);
        let due = 2 + jitter.as_secs() as i64;
        if jitter.as_secs() > 0 {
            let t = transition(&gs, None, at(due - 1), &cfg);
            assert_eq!(t.status.current_state.as_deref(), Some("Creating"));
        }
        let t = transition(&gs, None, at(due + 1), &cfg);
        assert_eq!(t.status.current_state.as_deref(), Some("Ready"));
    }

    #[test]
    fn crash_image_crash_loops_with_growing_backoff() {
        let mut gs = server(BAD);
        step(&mut gs, 0);
        let t = step(&mut gs, 2);
        assert_eq!(state(&gs), "Crash");
        assert_eq!(t.wake_after, Some(Duration::from_secs(5)));
        let c = container(&gs);
        assert_eq!((c.ready, c.restart_count), (false, 1));
        let w = c.state.unwrap().waiting.unwrap();
        assert_eq!(w.reason.as_deref(), Some("CrashLoopBackOff"));
        assert!(
            w.message
                .unwrap()
                .contains("container=game pod=gs-0_default(")
        );
        assert_eq!(c.last_state.unwrap().terminated.unwrap().exit_code, 1);
        let normal = condition(&gs, "PodNormal");
        assert_eq!(normal.status, "False");
        assert!(
            normal
                .reason
                .as_deref()
                .unwrap()
                .contains("CrashLoopBackOff")
        );

        // Back-off not over yet.
        let t = step(&mut gs, 6);
        assert_eq!(
            (state(&gs), t.wake_after),
            ("Crash", Some(Duration::from_secs(1)))
        );
        // Restart: Creating, then Crash again with restartCount 2 and a 10 s back-off.
        let t = step(&mut gs, 7);
        assert_eq!(
            (state(&gs), t.wake_after),
            ("Creating", Some(Duration::from_secs(2)))
        );
        assert_eq!(container(&gs).restart_count, 1);
        let t = step(&mut gs, 9);
        assert_eq!(
            (state(&gs), t.wake_after),
            ("Crash", Some(Duration::from_secs(10)))
        );
        assert_eq!(container(&gs).restart_count, 2);
        step(&mut gs, 19);
        let t = step(&mut gs, 21);
        assert_eq!(
            (state(&gs), t.wake_after),
            ("Crash", Some(Duration::from_secs(20)))
        );
        assert_eq!(container(&gs).restart_count, 3);
    }

    #[test]
    fn fixing_the_image_of_a_crashed_server_restarts_it_at_once() {
        let mut gs = server(BAD);
        step(&mut gs, 0);
        step(&mut gs, 2);
        assert_eq!(state(&gs), "Crash");
        gs.spec.containers.as_mut().unwrap()[0].image = Some(IMAGE.into());
        step(&mut gs, 3);
        assert_eq!(state(&gs), "Creating");
        step(&mut gs, 5);
        assert_eq!(state(&gs), "Ready");
        assert_eq!(container(&gs).image, IMAGE);
    }

    #[test]
    fn image_change_updates_in_place() {
        let mut gs = server(IMAGE);
        step(&mut gs, 0);
        step(&mut gs, 2);
        gs.spec.containers.as_mut().unwrap()[0].image = Some(IMAGE2.into());
        let t = step(&mut gs, 10);
        assert_eq!(
            (state(&gs), t.wake_after),
            ("Updating", Some(Duration::from_secs(2)))
        );
        // Still the old image running while it updates, not ready.
        let c = container(&gs);
        assert_eq!((c.image.as_str(), c.ready), (IMAGE, false));
        let st = gs.status.as_ref().unwrap();
        assert_eq!(st.last_transition_time, Some(Time(at(10))));
        let t = step(&mut gs, 12);
        assert_eq!((state(&gs), t.wake_after), ("Ready", None));
        let c = container(&gs);
        assert_eq!(
            (c.image.as_str(), c.ready, c.restart_count),
            (IMAGE2, true, 1)
        );
        // An update to a crashing image ends in Crash.
        gs.spec.containers.as_mut().unwrap()[0].image = Some(BAD.into());
        step(&mut gs, 20);
        assert_eq!(state(&gs), "Updating");
        step(&mut gs, 22);
        assert_eq!(state(&gs), "Crash");
    }

    #[test]
    fn template_images_do_not_roll_running_servers() {
        let mut gs = server(IMAGE);
        gs.spec.containers = None;
        let mut set = SetInfo {
            max_players: Some(42),
            template_containers: vec![("game".into(), IMAGE.into())],
        };
        for t in [0, 2] {
            gs.status = Some(transition(&gs, Some(&set), at(t), &config()).status);
        }
        assert_eq!(state(&gs), "Ready");
        assert_eq!(container(&gs).image, IMAGE);
        assert_eq!(gs.status.as_ref().unwrap().max_players, Some(42));
        // The capacity the server was created with wins over its set's.
        let mut annotated = gs.clone();
        annotated.status = None;
        annotated.metadata.annotations = Some(BTreeMap::from([(
            MAX_PLAYERS_ANNOTATION.to_owned(),
            "16".to_owned(),
        )]));
        for t in [0, 2] {
            annotated.status = Some(transition(&annotated, Some(&set), at(t), &config()).status);
        }
        assert_eq!(annotated.status.as_ref().unwrap().max_players, Some(16));
        // OnDelete: the set's template changes, the running server does not.
        set.template_containers[0].1 = IMAGE2.into();
        set.max_players = Some(7);
        let t = transition(&gs, Some(&set), at(5), &config());
        assert_eq!(Some(&t.status), gs.status.as_ref());
    }

    #[test]
    fn allocated_match_ends_after_its_duration() {
        let mut gs = server(IMAGE);
        step(&mut gs, 0);
        step(&mut gs, 2);
        gs.spec.ops_state = Some("Allocated".into());
        gs.metadata.annotations = Some(BTreeMap::from([(
            MATCH_STARTED_ANNOTATION.to_owned(),
            at(10).to_string(),
        )]));
        gs.status.as_mut().unwrap().players = Some(4);
        let t = step(&mut gs, 30);
        assert!(!t.end_match);
        assert_eq!(t.wake_after, Some(Duration::from_secs(40)));
        assert_eq!(t.status.players, Some(4), "the allocator's players stay");
        let t = step(&mut gs, 70);
        assert!(t.end_match);
        assert_eq!(t.status.players, Some(0));
        assert_eq!(t.status.current_state.as_deref(), Some("Ready"));
    }

    #[test]
    fn allocation_by_hand_has_a_player_and_no_end() {
        let mut gs = server(IMAGE);
        step(&mut gs, 0);
        step(&mut gs, 2);
        gs.spec.ops_state = Some("Allocated".into());
        let t = step(&mut gs, 3);
        assert_eq!(
            (t.status.players, t.end_match, t.wake_after),
            (Some(1), false, None)
        );
        let t = step(&mut gs, 100_000);
        assert_eq!(
            (t.status.players, t.end_match, t.wake_after),
            (Some(1), false, None)
        );
        // Released by hand: the player leaves.
        gs.spec.ops_state = Some("None".into());
        let t = step(&mut gs, 100_001);
        assert_eq!(t.status.players, Some(0));
        // Other ops states keep their players.
        gs.status.as_mut().unwrap().players = Some(2);
        gs.spec.ops_state = Some("Maintaining".into());
        assert_eq!(step(&mut gs, 100_002).status.players, Some(2));
    }

    #[test]
    fn deleting_servers_say_so_and_stop() {
        let mut gs = server(IMAGE);
        step(&mut gs, 0);
        gs.metadata.deletion_timestamp = Some(Time(at(1)));
        let t = step(&mut gs, 1);
        assert_eq!((state(&gs), t.wake_after), ("Deleting", None));
        assert_eq!(
            gs.status.as_ref().unwrap().last_transition_time,
            Some(Time(at(1)))
        );
        let t = step(&mut gs, 100);
        assert_eq!(Some(&t.status), gs.status.as_ref());
    }

    #[test]
    fn priorities_follow_the_spec_without_a_state_change() {
        let mut gs = server(IMAGE);
        step(&mut gs, 0);
        step(&mut gs, 2);
        gs.spec.update_priority = Some(IntOrString::String("5".into()));
        let t = step(&mut gs, 9);
        assert_eq!(
            t.status.update_priority,
            Some(IntOrString::String("5".into()))
        );
        assert_eq!(t.status.last_transition_time, Some(Time(at(2))));
    }

    #[test]
    fn zero_delay_goes_straight_through() {
        let gs = server(IMAGE);
        let mut cfg = config();
        cfg.startup_delay = Duration::ZERO;
        let t = transition(&gs, None, at(0), &cfg);
        assert_eq!(t.wake_after, Some(Duration::ZERO));
        let mut gs = gs;
        gs.status = Some(t.status);
        let t = transition(&gs, None, at(0), &cfg);
        assert_eq!(t.status.current_state.as_deref(), Some("Ready"));
    }

    #[test]
    fn merge_diff_is_minimal_and_removes_fields() {
        let old = json!({"a": 1, "b": {"c": 2, "d": 3}, "e": [1, 2]});
        let new = json!({"a": 1, "b": {"c": 5}, "e": [1, 2, 3], "f": "x"});
        assert_eq!(
            merge_diff(&old, &new),
            Some(json!({"b": {"c": 5, "d": null}, "e": [1, 2, 3], "f": "x"}))
        );
        assert_eq!(merge_diff(&old, &old), None);
        let mut patched = old.clone();
        json_patch::merge(&mut patched, &merge_diff(&old, &new).unwrap());
        assert_eq!(patched, new);
    }

    #[test]
    fn pod_normal_follows_okg() {
        let mut gs = server(BAD);
        step(&mut gs, 0);
        let creating = condition(&gs, "PodNormal").clone();
        assert_eq!(
            creating.reason.as_deref(),
            Some("ContainersNotReady; ContainerCreating")
        );
        assert_eq!(
            creating.message.as_deref(),
            Some("containers with unready status: [game]")
        );
        step(&mut gs, 2);
        let crash = condition(&gs, "PodNormal");
        assert_eq!(
            crash.reason.as_deref(),
            Some("ContainersNotReady; CrashLoopBackOff; ContainerTerminated:Error")
        );
        assert_eq!(condition(&gs, "NodeNormal").status, "True");
        assert_eq!(condition(&gs, "PersistentVolumeNormal").status, "True");
    }

    #[test]
    fn image_ids_name_the_repository() {
        assert_eq!(&image_id("nginx:1.2")[..13], "nginx@sha256:");
        assert_eq!(&image_id("host:5000/app")[..21], "host:5000/app@sha256:");
        assert!(image_id("a@sha256:00").starts_with("a@sha256:"));
        assert_eq!(image_id("nginx:1.2").len(), "nginx@sha256:".len() + 64);
    }
}
