//! The simulator's pod and status builders: what kubelet reports for a
//! pod (phase, conditions, container states with restart counts,
//! `CrashLoopBackOff`, `ErrImagePull`/`ImagePullBackOff`, image ids) and
//! the conditions OKG derives from it.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting,
    ContainerStatus, HostIP, PodCondition, PodIP, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::api::hash::mixed as fnv1a;
use crate::api::{GameServer, GameServerCondition, GameServerState, GameServerStatus};

use super::*;

/// One container the server should run.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Desired {
    pub(super) name: String,
    pub(super) image: String,
    /// Set on the GameServer itself (so a change is an in-place update),
    /// rather than taken from the set's template.
    pub(super) pinned: bool,
}

/// The containers `gs` should run: its own `spec.containers` over the set's
/// template.
pub(super) fn desired_containers(gs: &GameServer, set: Option<&SetInfo>) -> Vec<Desired> {
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
        .map(|(name, image)| {
            let own_image = own.iter().find(|(n, _)| n == name).map(|(_, i)| *i);
            Desired {
                name: name.clone(),
                image: own_image.unwrap_or(image).to_owned(),
                pinned: own_image.is_some(),
            }
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
pub(super) struct PodId<'a> {
    pub(super) name: &'a str,
    pub(super) namespace: &'a str,
    pub(super) uid: &'a str,
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
pub(super) fn image_id(image: &str) -> String {
    let repo = crate::api::image::repository_as_written(image);
    format!("{repo}@sha256:{}", hex64(image.as_bytes()))
}

/// 64 hex digits derived from `bytes`.
pub(super) fn hex64(bytes: &[u8]) -> String {
    (0..4)
        .map(|i| format!("{:016x}", fnv1a(bytes, i + 10)))
        .collect()
}

pub(super) fn time(ts: Timestamp) -> Time {
    // Kubernetes times have whole seconds.
    Time(Timestamp::from_second(ts.as_second()).unwrap_or(ts))
}

pub(super) fn later(ts: Timestamp, d: Duration) -> Timestamp {
    ts.checked_add(d).unwrap_or(Timestamp::MAX)
}

/// Time from `now` until `due` (zero when it has passed).
pub(super) fn until(now: Timestamp, due: Timestamp) -> Duration {
    Duration::try_from(due.duration_since(now)).unwrap_or(Duration::ZERO)
}

pub(super) fn earliest(a: Option<Duration>, b: Duration) -> Option<Duration> {
    Some(a.map_or(b, |a| a.min(b)))
}

pub(super) fn restarts_of(
    status: &GameServerStatus,
) -> BTreeMap<String, (i32, Option<ContainerState>)> {
    status
        .pod_status
        .iter()
        .flat_map(|p| p.container_statuses.iter().flatten())
        .map(|c| (c.name.clone(), (c.restart_count, c.last_state.clone())))
        .collect()
}

pub(super) fn crashes(config: &SimulatorConfig, image: &str) -> bool {
    config
        .crash_image
        .as_ref()
        .is_some_and(|re| re.is_match(image))
}

pub(super) fn pull_fails(config: &SimulatorConfig, image: &str) -> bool {
    config
        .pull_fail_image
        .as_ref()
        .is_some_and(|re| re.is_match(image))
}

/// The pod's lifecycle stage, for its phase and conditions.
#[derive(Clone, Copy, PartialEq)]
pub(super) enum Stage {
    /// No container has started yet (pulling, creating): `Pending`.
    Creating,
    Ready,
    /// A container crash-loops under `restartPolicy: Always`: kubelet's
    /// `getPhase` (kubernetes pkg/kubelet/kubelet_pods.go) counts a
    /// container waiting after a termination as stopped, and with no
    /// container running and one stopped, `Always` means `Running`, never
    /// `Failed`.
    CrashLoop,
    Updating,
}

pub(super) fn condition(
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
pub(super) fn pod_conditions(
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
pub(super) fn pod_status(
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
        Stage::Ready | Stage::Updating | Stage::CrashLoop => "Running",
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

pub(super) fn waiting(reason: &str, message: Option<String>) -> ContainerState {
    ContainerState {
        waiting: Some(ContainerStateWaiting {
            reason: Some(reason.to_owned()),
            message,
        }),
        ..Default::default()
    }
}

/// A container being created (image pulled, not started yet).
pub(super) fn creating_container(
    d: &Desired,
    restarts: i32,
    last: Option<ContainerState>,
) -> ContainerStatus {
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
pub(super) fn running_container(
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

/// kubelet's `ErrImagePull` (the pull just failed) and `ImagePullBackOff`
/// (waiting to retry) waiting reasons (kubernetes pkg/kubelet/images).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum PullFailure {
    ErrImagePull,
    ImagePullBackOff,
}

/// A container whose image cannot be pulled: waiting, never started, no
/// image id.
pub(super) fn pull_failing_container(
    d: &Desired,
    restarts: i32,
    last: Option<ContainerState>,
    failure: PullFailure,
) -> ContainerStatus {
    let image = &d.image;
    let state = match failure {
        PullFailure::ErrImagePull => waiting(
            "ErrImagePull",
            Some(format!(
                "rpc error: code = NotFound desc = failed to pull and unpack image \"{image}\": failed to resolve reference \"{image}\": {image}: not found"
            )),
        ),
        PullFailure::ImagePullBackOff => waiting(
            "ImagePullBackOff",
            Some(format!("Back-off pulling image \"{image}\"")),
        ),
    };
    ContainerStatus {
        state: Some(state),
        ..creating_container(d, restarts, last)
    }
}

/// A crashed container that kubelet started again after its back-off: it
/// runs, not Ready yet (a game server takes its start-up time to pass its
/// readiness check), keeping the last termination.
pub(super) fn restarted_container(
    d: &Desired,
    pod: &PodId<'_>,
    restarts: i32,
    last: Option<ContainerState>,
    now: Timestamp,
) -> ContainerStatus {
    ContainerStatus {
        ready: false,
        ..running_container(d, pod, restarts, last, now)
    }
}

/// A container in `CrashLoopBackOff` after its `restarts`-th exit.
pub(super) fn crashed_container(
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
pub(super) fn poly(acc: &mut (String, String), message: &str, reason: &str) {
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
pub(super) fn pod_normal(pod: Option<&PodStatus>) -> GameServerCondition {
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
pub(super) fn gameserver_conditions(
    status: &GameServerStatus,
    now: Timestamp,
) -> Vec<GameServerCondition> {
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

pub(super) fn set_state(status: &mut GameServerStatus, state: GameServerState, now: Timestamp) {
    status.current_state = Some(state.as_str().to_owned());
    status.last_transition_time = Some(time(now));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_ids_name_the_repository() {
        assert_eq!(&image_id("nginx:1.2")[..13], "nginx@sha256:");
        assert_eq!(&image_id("host:5000/app")[..21], "host:5000/app@sha256:");
        assert!(image_id("a@sha256:00").starts_with("a@sha256:"));
        assert_eq!(image_id("nginx:1.2").len(), "nginx@sha256:".len() + 64);
    }
}
