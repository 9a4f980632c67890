//! The simulator's pure transitions: from a GameServer (and its set) at a
//! time, the status and spec changes kubelet, OKG and the players would
//! make, and when to look again.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::ContainerStatus;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;

use crate::api::MAX_PLAYERS_ANNOTATION;
use crate::api::hash::mixed as fnv1a;
use crate::api::image::reported_image;
use crate::api::{
    GameServer, GameServerState, GameServerStatus, MATCH_STARTED_ANNOTATION, OpsState,
};

use super::status::*;
use super::*;

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

/// Starts the containers: when an image matches the crash pattern, the pod
/// crash-loops as kubelet reports it (phase `Running`, the container
/// waiting in `CrashLoopBackOff` with its last termination and a rising
/// `restartCount`, Ready false), which OKG shows as `NotReady`; else
/// `Ready`. Returns the time until the next transition.
pub(super) fn start(
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
                    // The first exit is restarted at once (kubelet keeps no
                    // back-off yet); the second one waits in CrashLoopBackOff.
                    let count = count.saturating_add(1);
                    restarts = restarts.max(count);
                    let backoff = crash_backoff(config.crash_backoff, count);
                    crashed_container(d, pod, count, backoff, started.clone(), now)
                } else {
                    running_container(d, pod, count, last, now)
                }
            })
            .collect();
        st.pod_status = Some(pod_status(old, pod, containers, Stage::CrashLoop, now));
        set_state(st, GameServerState::NotReady, now);
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

/// The old status of each container, by name.
fn old_containers(old: &GameServerStatus) -> BTreeMap<String, ContainerStatus> {
    old.pod_status
        .iter()
        .flat_map(|p| p.container_statuses.iter().flatten())
        .map(|c| (c.name.clone(), c.clone()))
        .collect()
}

/// Where a container of a crash-looping pod is in its loop.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Loop {
    /// Waiting in `CrashLoopBackOff` until `due`.
    BackingOff { due: Timestamp },
    /// Restarted, running but not Ready; it exits again at `due`.
    Restarted { due: Timestamp },
    /// Running and Ready, or anything else: not looping.
    Other,
}

/// The crash-loop step of a container: kubelet restarts it when its
/// back-off (doubling with `restartCount`) ends, and a restarted crashing
/// container exits again once its start-up time has passed. Timed from the
/// container's own `finishedAt` / `startedAt`, as nothing is kept in memory.
fn loop_step(c: &ContainerStatus, base: Duration, startup: Duration, since: Timestamp) -> Loop {
    let state = c.state.clone().unwrap_or_default();
    let backing_off =
        state.waiting.as_ref().and_then(|w| w.reason.as_deref()) == Some("CrashLoopBackOff");
    if backing_off {
        let finished = c
            .last_state
            .as_ref()
            .and_then(|l| l.terminated.as_ref())
            .and_then(|t| t.finished_at.as_ref())
            .map_or(since, |t| t.0);
        return Loop::BackingOff {
            due: later(finished, crash_backoff(base, c.restart_count)),
        };
    }
    match &state.running {
        Some(running) if !c.ready => {
            let began = running.started_at.as_ref().map_or(since, |t| t.0);
            Loop::Restarted {
                due: later(began, startup),
            }
        }
        _ => Loop::Other,
    }
}

/// A server's capacity when it starts: the `MAX_PLAYERS` it was created
/// with ([`MAX_PLAYERS_ANNOTATION`], written by the fleet controller), else
/// its set's `parameters.maxPlayers`, else the configured default.
pub(super) fn capacity(gs: &GameServer, set: Option<&SetInfo>, config: &SimulatorConfig) -> i32 {
    gs.annotations()
        .get(MAX_PLAYERS_ANNOTATION)
        .and_then(|v| v.trim().parse().ok())
        .or_else(|| set.and_then(|s| s.max_players))
        .unwrap_or(config.default_max_players)
}

/// Back to `Creating` (a new pod, or a restart after a crash).
pub(super) fn create(
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

/// What a transition of one server works from.
struct Inputs<'a> {
    gs: &'a GameServer,
    set: Option<&'a SetInfo>,
    config: &'a SimulatorConfig,
    old: &'a GameServerStatus,
    pod: PodId<'a>,
    desired: Vec<Desired>,
    /// The startup delay with this server's jitter.
    startup: Duration,
    now: Timestamp,
}

impl Inputs<'_> {
    /// When the current state began.
    fn since(&self) -> Timestamp {
        self.old
            .last_transition_time
            .as_ref()
            .map(|t| t.0)
            .or_else(|| self.gs.metadata.creation_timestamp.as_ref().map(|t| t.0))
            .unwrap_or(self.now)
    }

    /// The pod's part, as kubelet and OKG move it on: create, start, crash
    /// and restart, update in place. Returns the time until the next step.
    fn advance(&self, st: &mut GameServerStatus) -> Option<Duration> {
        let (old, pod, desired, now) = (self.old, &self.pod, &self.desired, self.now);
        let state = old
            .current_state
            .as_deref()
            .filter(|s| !s.is_empty())
            .map(|s| GameServerState::parse(s).ok_or(s));
        match state {
            None => create(st, old, pod, desired, self.startup, now),
            Some(Ok(GameServerState::Creating | GameServerState::Unknown)) => {
                self.when_started(st, Stage::Creating)
            }
            Some(Ok(GameServerState::Updating)) => self.when_started(st, Stage::Updating),
            // `Crash` only from objects written before the simulator
            // reported crashes kubelet's way: both loop alike.
            Some(Ok(GameServerState::NotReady | GameServerState::Crash)) => self.crash_loop(st),
            Some(Ok(GameServerState::Ready)) => self.ready(st),
            // Hook states, or a state someone else wrote: left alone.
            Some(_) => None,
        }
    }

    /// A pod being created (or updated in place): its containers start once
    /// the start-up delay has passed, unless an image cannot be pulled.
    fn when_started(&self, st: &mut GameServerStatus, stage: Stage) -> Option<Duration> {
        let due = later(self.since(), self.startup);
        if self.now < due {
            return Some(until(self.now, due));
        }
        if self
            .desired
            .iter()
            .any(|d| pull_fails(self.config, &d.image))
        {
            return self.pull_failing(st, stage, due);
        }
        let capacity = capacity(self.gs, self.set, self.config);
        start(
            st,
            self.old,
            &self.pod,
            &self.desired,
            capacity,
            self.config,
            self.now,
        )
    }

    /// An image that cannot be pulled: kubelet reports `ErrImagePull` when
    /// the pull fails (at `attempted`), then `ImagePullBackOff` while it
    /// waits to retry; no container starts, so the pod stays `Pending` (or
    /// the in-place update stays `Updating`) and OKG's state with it.
    fn pull_failing(
        &self,
        st: &mut GameServerStatus,
        stage: Stage,
        attempted: Timestamp,
    ) -> Option<Duration> {
        let backing_off = later(attempted, self.config.crash_backoff);
        let failure = if self.now >= backing_off {
            PullFailure::ImagePullBackOff
        } else {
            PullFailure::ErrImagePull
        };
        let previous = restarts_of(self.old);
        let kept = old_containers(self.old);
        let containers = self
            .desired
            .iter()
            .map(|d| {
                let (count, last) = previous.get(&d.name).cloned().unwrap_or_default();
                match (pull_fails(self.config, &d.image), kept.get(&d.name)) {
                    (true, _) => pull_failing_container(d, count, last, failure),
                    (false, Some(c)) if stage == Stage::Updating => c.clone(),
                    (false, _) => creating_container(d, count, last),
                }
            })
            .collect();
        // The state (and so `lastTransitionTime`, which times this) stays.
        st.pod_status = Some(pod_status(self.old, &self.pod, containers, stage, self.now));
        match failure {
            PullFailure::ErrImagePull => Some(until(self.now, backing_off)),
            PullFailure::ImagePullBackOff => None,
        }
    }

    /// A crash-looping pod (OKG `NotReady`, pod `Running`): a changed image
    /// set on the server is updated in place; otherwise each crashed
    /// container is restarted when its back-off ends (`restartCount` + 1)
    /// and exits again after the start-up time.
    fn crash_loop(&self, st: &mut GameServerStatus) -> Option<Duration> {
        let (old, now) = (self.old, self.now);
        let changed: Vec<&str> = self
            .desired
            .iter()
            .filter(|d| {
                d.pinned && reported_image(old, &d.name).is_some_and(|r| r != d.image.as_str())
            })
            .map(|d| d.name.as_str())
            .collect();
        if !changed.is_empty() {
            return self.update_in_place(st, &changed);
        }
        let kept = old_containers(old);
        let steps: BTreeMap<&str, Loop> = kept
            .iter()
            .map(|(name, c)| {
                let step = loop_step(c, self.config.crash_backoff, self.startup, self.since());
                (name.as_str(), step)
            })
            .collect();
        let exits = steps
            .values()
            .any(|s| matches!(s, Loop::Restarted { due } if now >= *due));
        let restarts: Vec<&str> = steps
            .iter()
            .filter(|(_, s)| matches!(s, Loop::BackingOff { due } if now >= *due))
            .map(|(name, _)| *name)
            .collect();
        if exits || !restarts.is_empty() {
            return self.loop_once(st, &kept, &steps, exits);
        }
        let next = steps
            .values()
            .filter_map(|s| match s {
                Loop::BackingOff { due } | Loop::Restarted { due } => Some(*due),
                Loop::Other => None,
            })
            .min();
        match next {
            Some(due) => Some(until(now, due)),
            // NotReady for no reason we track (written by someone else):
            // start it like a new pod.
            None => self.when_started(st, Stage::Creating),
        }
    }

    /// One turn of the loop: containers due to exit crash again (waiting in
    /// `CrashLoopBackOff`, same `restartCount`), containers whose back-off
    /// ended restart (`restartCount` + 1). A container whose image no
    /// longer crashes starts Ready.
    fn loop_once(
        &self,
        st: &mut GameServerStatus,
        kept: &BTreeMap<String, ContainerStatus>,
        steps: &BTreeMap<&str, Loop>,
        exits: bool,
    ) -> Option<Duration> {
        let (pod, now, config) = (&self.pod, self.now, self.config);
        if exits && !self.desired.iter().any(|d| crashes(config, &d.image)) {
            let capacity = capacity(self.gs, self.set, config);
            return start(st, self.old, pod, &self.desired, capacity, config, now);
        }
        let mut wake: Option<Duration> = None;
        let containers = self
            .desired
            .iter()
            .map(|d| {
                let Some(c) = kept.get(&d.name) else {
                    return creating_container(d, 0, None);
                };
                let count = c.restart_count;
                match steps.get(d.name.as_str()) {
                    Some(Loop::Restarted { due }) if now >= *due => {
                        let backoff = crash_backoff(config.crash_backoff, count);
                        wake = earliest(wake, backoff);
                        let began = c
                            .state
                            .as_ref()
                            .and_then(|s| s.running.as_ref())
                            .and_then(|r| r.started_at.clone())
                            .unwrap_or_else(|| time(now));
                        crashed_container(d, pod, count, backoff, began, now)
                    }
                    Some(Loop::BackingOff { due }) if now >= *due => {
                        wake = earliest(wake, self.startup);
                        let count = count.saturating_add(1);
                        restarted_container(d, pod, count, c.last_state.clone(), now)
                    }
                    _ => c.clone(),
                }
            })
            .collect();
        st.pod_status = Some(pod_status(self.old, pod, containers, Stage::CrashLoop, now));
        set_state(st, GameServerState::NotReady, now);
        wake
    }

    /// A Ready server: updated in place when an image set on it changed.
    fn ready(&self, st: &mut GameServerStatus) -> Option<Duration> {
        let old = self.old;
        let changed: Vec<&str> = self
            .desired
            .iter()
            .filter(|d| d.pinned && reported_image(old, &d.name) != Some(d.image.as_str()))
            .map(|d| d.name.as_str())
            .collect();
        if changed.is_empty() {
            if st.max_players.is_none() {
                st.max_players = Some(capacity(self.gs, self.set, self.config));
            }
            return None;
        }
        self.update_in_place(st, &changed)
    }

    /// An in-place update of the `changed` containers (Kruise's, which OKG
    /// shows as `Updating`): they stop being Ready, and the new images start
    /// after the start-up delay.
    fn update_in_place(&self, st: &mut GameServerStatus, changed: &[&str]) -> Option<Duration> {
        let mut pod_now = self.old.pod_status.clone().unwrap_or_default();
        for c in pod_now.container_statuses.iter_mut().flatten() {
            if changed.contains(&c.name.as_str()) {
                c.ready = false;
            }
        }
        let containers = pod_now.container_statuses.take().unwrap_or_default();
        st.pod_status = Some(pod_status(
            self.old,
            &self.pod,
            containers,
            Stage::Updating,
            self.now,
        ));
        set_state(st, GameServerState::Updating, self.now);
        Some(self.startup)
    }
}

/// The players and the match: an allocator's match ends
/// `match_duration` after it started; one allocated by hand has a player;
/// an idle server has none. Returns whether the match ends now, and the
/// time until it does.
fn play(
    gs: &GameServer,
    st: &mut GameServerStatus,
    config: &SimulatorConfig,
    now: Timestamp,
) -> (bool, Option<Duration>) {
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
                        return (true, None);
                    }
                    return (false, Some(until(now, ends)));
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
    (false, None)
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
    st.desired_state = Some(GameServerState::Ready.as_str().to_owned());
    let priority = |p: &Option<IntOrString>| Some(p.clone().unwrap_or(IntOrString::Int(0)));
    st.deletion_priority = priority(&gs.spec.deletion_priority);
    st.update_priority = priority(&gs.spec.update_priority);

    if gs.metadata.deletion_timestamp.is_some() {
        if old.current_state.as_deref() != Some(GameServerState::Deleting.as_str()) {
            set_state(&mut st, GameServerState::Deleting, now);
        }
        st.conditions = Some(gameserver_conditions(&st, now));
        return Transition {
            status: st,
            end_match: false,
            wake_after: None,
        };
    }
    let inputs = Inputs {
        gs,
        set,
        config,
        old: &old,
        pod: PodId {
            name: gs.metadata.name.as_deref().unwrap_or_default(),
            namespace: gs.metadata.namespace.as_deref().unwrap_or_default(),
            uid,
        },
        desired: desired_containers(gs, set),
        startup: config
            .startup_delay
            .saturating_add(startup_jitter(uid, config.startup_jitter)),
        now,
    };
    let mut wake = inputs.advance(&mut st);
    let (end_match, ends_in) = play(gs, &mut st, config, now);
    if let Some(ends_in) = ends_in {
        wake = earliest(wake, ends_in);
    }
    st.conditions = Some(gameserver_conditions(&st, now));
    Transition {
        status: st,
        end_match,
        wake_after: wake,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::api::core::v1::ContainerStatus;

    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    use crate::api::GameServerCondition;
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
            pull_fail_image: Some(Regex::new("unpullable").unwrap()),
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

    fn phase(gs: &GameServer) -> String {
        gs.status
            .as_ref()
            .and_then(|s| s.pod_status.as_ref())
            .and_then(|p| p.phase.clone())
            .unwrap_or_default()
    }

    fn pod_condition(gs: &GameServer, t: &str) -> String {
        gs.status
            .as_ref()
            .and_then(|s| s.pod_status.as_ref())
            .and_then(|p| p.conditions.as_ref())
            .and_then(|cs| cs.iter().find(|c| c.type_ == t))
            .map(|c| c.status.clone())
            .unwrap_or_default()
    }

    fn waiting_reason(gs: &GameServer) -> String {
        container(gs)
            .state
            .and_then(|s| s.waiting)
            .and_then(|w| w.reason)
            .unwrap_or_default()
    }

    /// kubelet (kubernetes pkg/kubelet/kubelet_pods.go `getPhase`) keeps a
    /// crash-looping pod under `restartPolicy: Always` `Running`; OKG
    /// (kruise-game pkg/controllers/gameserver/gameserver_manager.go
    /// `SyncGsToPod`) maps `Running` with the Ready condition false to
    /// `NotReady`; `Crash` is only for pod phase `Failed`.
    #[test]
    fn crash_image_crash_loops_like_kubelet_getphase_and_okg_shows_not_ready() {
        let mut gs = server(BAD);
        step(&mut gs, 0);
        let t = step(&mut gs, 2);
        assert_eq!(state(&gs), "NotReady");
        assert_eq!(phase(&gs), "Running");
        assert_eq!(pod_condition(&gs, "Ready"), "False");
        assert_eq!(pod_condition(&gs, "ContainersReady"), "False");
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
        let terminated = c.last_state.unwrap().terminated.unwrap();
        assert_eq!(terminated.exit_code, 1);
        assert_eq!(terminated.finished_at, Some(Time(at(2))));
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
            ("NotReady", Some(Duration::from_secs(1)))
        );
        // Restarted (restartCount 2): running, not Ready, the pod still
        // Running and the server still NotReady, never Creating again.
        let t = step(&mut gs, 7);
        assert_eq!(
            (state(&gs), phase(&gs), t.wake_after),
            (
                "NotReady",
                "Running".to_owned(),
                Some(Duration::from_secs(2))
            )
        );
        let c = container(&gs);
        assert_eq!((c.ready, c.restart_count), (false, 2));
        assert!(c.state.unwrap().running.is_some());
        assert_eq!(
            c.last_state.unwrap().terminated.unwrap().exit_code,
            1,
            "the last termination stays"
        );
        // It exits again after its start-up time: a 10 s back-off now.
        let t = step(&mut gs, 9);
        assert_eq!(
            (state(&gs), t.wake_after),
            ("NotReady", Some(Duration::from_secs(10)))
        );
        assert_eq!(waiting_reason(&gs), "CrashLoopBackOff");
        assert_eq!(container(&gs).restart_count, 2);
        step(&mut gs, 19);
        assert_eq!(container(&gs).restart_count, 3);
        let t = step(&mut gs, 21);
        assert_eq!(
            (state(&gs), t.wake_after),
            ("NotReady", Some(Duration::from_secs(20)))
        );
        assert_eq!(waiting_reason(&gs), "CrashLoopBackOff");
        assert_eq!(phase(&gs), "Running");
    }

    #[test]
    fn fixing_the_image_of_a_crashed_server_updates_it_in_place() {
        let mut gs = server(BAD);
        step(&mut gs, 0);
        step(&mut gs, 2);
        assert_eq!(state(&gs), "NotReady");
        gs.spec.containers.as_mut().unwrap()[0].image = Some(IMAGE.into());
        let t = step(&mut gs, 3);
        assert_eq!(
            (state(&gs), t.wake_after),
            ("Updating", Some(Duration::from_secs(2)))
        );
        step(&mut gs, 5);
        assert_eq!(state(&gs), "Ready");
        let c = container(&gs);
        assert_eq!(
            (c.image.as_str(), c.ready, c.restart_count),
            (IMAGE, true, 2)
        );
    }

    #[test]
    fn an_image_that_cannot_be_pulled_waits_in_image_pull_backoff() {
        const UNPULLABLE: &str = "registry.example/game:unpullable";
        let mut gs = server(UNPULLABLE);
        step(&mut gs, 0);
        assert_eq!(waiting_reason(&gs), "ContainerCreating");
        let t = step(&mut gs, 2);
        assert_eq!(
            (state(&gs), phase(&gs), t.wake_after),
            (
                "Creating",
                "Pending".to_owned(),
                Some(Duration::from_secs(5))
            )
        );
        assert_eq!(waiting_reason(&gs), "ErrImagePull");
        let c = container(&gs);
        assert_eq!(
            (c.ready, c.restart_count, c.image.as_str()),
            (false, 0, UNPULLABLE)
        );
        assert!(c.last_state.is_none_or(|l| l.terminated.is_none()));
        assert_eq!(pod_condition(&gs, "Ready"), "False");
        let t = step(&mut gs, 7);
        assert_eq!((state(&gs), t.wake_after), ("Creating", None));
        assert_eq!(waiting_reason(&gs), "ImagePullBackOff");
        assert_eq!(
            container(&gs)
                .state
                .unwrap()
                .waiting
                .unwrap()
                .message
                .as_deref(),
            Some("Back-off pulling image \"registry.example/game:unpullable\"")
        );
        assert!(
            condition(&gs, "PodNormal")
                .reason
                .as_deref()
                .unwrap_or("")
                .contains("ImagePullBackOff")
        );
        // Still pulling: the times it is judged by stay.
        assert_eq!(
            gs.status.as_ref().unwrap().last_transition_time,
            Some(Time(at(0)))
        );
        // A pullable image set on it: it starts.
        gs.spec.containers.as_mut().unwrap()[0].image = Some(IMAGE.into());
        step(&mut gs, 8);
        assert_eq!(state(&gs), "Ready");
        assert_eq!(container(&gs).image, IMAGE);
    }

    #[test]
    fn not_ready_for_an_unknown_reason_starts_like_a_new_pod() {
        let mut gs = server(IMAGE);
        gs.status = Some(GameServerStatus {
            current_state: Some("NotReady".into()),
            last_transition_time: Some(Time(at(0))),
            ..Default::default()
        });
        let t = step(&mut gs, 1);
        assert_eq!(
            (state(&gs), t.wake_after),
            ("NotReady", Some(Duration::from_secs(1)))
        );
        step(&mut gs, 2);
        assert_eq!(state(&gs), "Ready");
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
        // An update to a crashing image ends crash-looping: NotReady.
        gs.spec.containers.as_mut().unwrap()[0].image = Some(BAD.into());
        step(&mut gs, 20);
        assert_eq!(state(&gs), "Updating");
        step(&mut gs, 22);
        assert_eq!(state(&gs), "NotReady");
        assert_eq!(phase(&gs), "Running");
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
}
