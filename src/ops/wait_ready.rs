//! `waitReady`: wait until `count` (or `percent` of `spec.replicas`,
//! rounded up) servers of the set whose containers RUN `image` (default:
//! the image of the template's first container; compared normalised) are
//! `Ready`. Servers that will not serve never count: those being deleted
//! and those marked `WaitToBeDeleted` or `Kill` (a rollback must not take
//! the servers the release retired for its new ones). Answers Running with
//! a short requeue meanwhile; fails at once when `crashThreshold`
//! (default 1) servers running that image are crashing, and at
//! `timeoutSeconds` with what it saw ("1/3 Ready, 2 NotReady").
//!
//! Crashing is what kubelet and OKG report: a container waiting in
//! `CrashLoopBackOff` (its pod stays `Running` under `restartPolicy:
//! Always` and OKG shows the server `NotReady`; kubernetes
//! pkg/kubelet/kubelet_pods.go `getPhase`), an image that cannot be pulled
//! (`ErrImagePull`, `ImagePullBackOff`, ...), or OKG's `Crash` state (a pod
//! that failed).
//!
//! The timeout counts from the call's first request (remembered on the
//! set, see [`super::progress`]), so repeated requests and plugin restarts
//! do not extend it; and a failed verdict is remembered with it, so the
//! same call sent again (the templates' `release-failed` step) answers the
//! same failure even when the slow servers have turned Ready since.
//! Changes nothing else and needs no lease. Outputs `ready`.

use std::borrow::Borrow;
use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;

use super::patch_image;
use super::progress::{self, MAX_TIMEOUT_SECONDS};
use super::select::{self, current_state, deleting};
use super::{Call, Outcome};
use crate::api::{GameServer, ImageRef};

/// How soon Argo asks again.
const POLL: Duration = Duration::from_secs(2);

use super::table::WaitReadyArgs as Args;

/// The arguments, checked.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Goal {
    count: Option<u64>,
    percent: Option<u64>,
    timeout: Duration,
    crash_threshold: u64,
}

fn goal(args: &Args) -> Result<Goal, String> {
    match (args.count, args.percent) {
        (Some(_), Some(_)) | (None, None) => {
            return Err("plugin.gameops.waitReady takes exactly one of count (Ready servers needed, e.g. 3) or percent (of spec.replicas, rounded up, e.g. 50)".into());
        }
        (None, Some(p)) if p > 100 => {
            return Err(format!(
                "plugin.gameops.waitReady.percent is {p}: give 0 to 100 (of spec.replicas)"
            ));
        }
        _ => {}
    }
    let timeout = match args.timeout_seconds {
        None | Some(0) => {
            return Err("plugin.gameops.waitReady.timeoutSeconds is missing: give how long to wait in seconds, e.g. 600".into());
        }
        Some(t) if t > MAX_TIMEOUT_SECONDS => {
            return Err(format!(
                "plugin.gameops.waitReady.timeoutSeconds {t} is over the limit of {MAX_TIMEOUT_SECONDS} (a day)"
            ));
        }
        Some(t) => Duration::from_secs(t),
    };
    let crash_threshold = match args.crash_threshold {
        Some(0) => {
            return Err("plugin.gameops.waitReady.crashThreshold must be at least 1 (crashed servers that fail the wait)".into());
        }
        t => t.unwrap_or(super::table::CRASH_THRESHOLD),
    };
    Ok(Goal {
        count: args.count,
        percent: args.percent,
        timeout,
        crash_threshold,
    })
}

/// Ready servers needed: `count`, or `percent` of `replicas` rounded up.
fn needed(goal: &Goal, replicas: i32) -> u64 {
    match (goal.count, goal.percent) {
        (Some(c), _) => c,
        (None, Some(p)) => (u64::try_from(replicas).unwrap_or(0) * p).div_ceil(100),
        (None, None) => 0,
    }
}

/// The states of the servers running an image.
#[derive(Debug, Default, PartialEq)]
struct Tally {
    states: BTreeMap<String, u64>,
    crashes: u64,
    crashed: Vec<String>,
}

/// Container waiting reasons kubelet gives a container that will not run
/// (kubernetes pkg/kubelet/images/types.go, pkg/kubelet/container/sync_result.go).
const FAILING: [&str; 8] = [
    "CrashLoopBackOff",
    "ImagePullBackOff",
    "ErrImagePull",
    "ErrImageNeverPull",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
    "RunContainerError",
];

/// Why `gs` is crashing, if it is: OKG's `Crash`, or a container kubelet
/// reports waiting for one of the [`FAILING`] reasons.
fn crashing(gs: &GameServer) -> Option<String> {
    if current_state(gs) == "Crash" {
        return Some("Crash".into());
    }
    let statuses = gs.status.as_ref()?.pod_status.as_ref()?;
    statuses.container_statuses.iter().flatten().find_map(|c| {
        let reason = c.state.as_ref()?.waiting.as_ref()?.reason.as_deref()?;
        FAILING.contains(&reason).then(|| match c.restart_count {
            0 => reason.to_owned(),
            n => format!("{reason} after {n} restarts"),
        })
    })
}

/// Whether `gs` will serve: not being deleted, not marked for retirement.
fn will_serve(gs: &GameServer) -> bool {
    !deleting(gs) && !matches!(select::ops_state(gs), "WaitToBeDeleted" | "Kill")
}

/// Crashed servers named in a message, at most.
const NAMED: usize = 10;

impl Tally {
    fn of<S: Borrow<GameServer>>(servers: &[S], image: &ImageRef) -> Self {
        let mut t = Self::default();
        let mut crashed = Vec::new();
        for gs in servers
            .iter()
            .map(Borrow::borrow)
            .filter(|g| will_serve(g) && g.runs_image(image))
        {
            let state = current_state(gs);
            *t.states.entry(state.to_owned()).or_default() += 1;
            if let Some(why) = crashing(gs) {
                crashed.push((select::name(gs).to_owned(), why));
            }
        }
        crashed.sort_by(|(a, _), (b, _)| (select::ordinal(a), a).cmp(&(select::ordinal(b), b)));
        t.crashes = crashed.len() as u64;
        t.crashed = crashed
            .into_iter()
            .take(NAMED)
            .map(|(name, why)| {
                if why == "Crash" {
                    name
                } else {
                    format!("{name} ({why})")
                }
            })
            .collect();
        if t.crashes > NAMED as u64 {
            t.crashed
                .push(format!("and {} more", t.crashes - NAMED as u64));
        }
        t
    }

    fn count(&self, state: &str) -> u64 {
        self.states.get(state).copied().unwrap_or(0)
    }

    fn total(&self) -> u64 {
        self.states.values().sum()
    }

    /// `first` states, then the others by count (most first).
    fn describe(&self, first: &[&str]) -> Vec<String> {
        let mut others: Vec<(&String, &u64)> = self
            .states
            .iter()
            .filter(|(s, _)| !first.contains(&s.as_str()))
            .collect();
        others.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        first
            .iter()
            .map(|s| format!("{} {s}", self.count(s)))
            .chain(others.into_iter().map(|(s, n)| format!("{n} {s}")))
            .collect()
    }

    /// "1/3 Ready, 2 Crash".
    fn progress(&self, needed: u64) -> String {
        let mut parts = vec![format!("{}/{needed} Ready", self.count("Ready"))];
        let mut rest = self.describe(&["Ready"]);
        rest.remove(0);
        parts.extend(rest);
        parts.join(", ")
    }
}

/// What one look at the servers says.
#[derive(Debug, PartialEq)]
enum Verdict {
    Ready(String),
    Crashing(String),
    TimedOut(String),
    Waiting(String, Duration),
}

fn verdict(t: &Tally, image: &str, needed: u64, goal: &Goal, elapsed: Duration) -> Verdict {
    if t.crashes >= goal.crash_threshold {
        return Verdict::Crashing(format!(
            "new version {image} is crashing: {} of {} servers running it (crashThreshold {}; in Crash: {})",
            t.describe(&["Crash", "Ready"]).join(", "),
            t.total(),
            goal.crash_threshold,
            t.crashed.join(", ")
        ));
    }
    if t.count("Ready") >= needed {
        return Verdict::Ready(format!(
            "{} servers running {image} are Ready ({} needed)",
            t.count("Ready"),
            needed
        ));
    }
    let seen = t.progress(needed);
    if elapsed >= goal.timeout {
        return Verdict::TimedOut(format!(
            "timed out after {}s waiting for {needed} Ready servers running {image}: {seen}",
            goal.timeout.as_secs()
        ));
    }
    let left = goal.timeout - elapsed;
    Verdict::Waiting(
        format!(
            "waiting for {needed} Ready servers running {image}: {seen} ({}s of {}s)",
            elapsed.as_secs(),
            goal.timeout.as_secs()
        ),
        POLL.min(left).max(Duration::from_millis(200)),
    )
}

/// Runs the op.
pub async fn run(call: &Call<'_>, args: Args) -> Result<Outcome, Outcome> {
    let goal = goal(&args).map_err(Outcome::Failed)?;
    let gss = super::get_set(call).await?;
    let image = match args.image.as_deref().map(str::trim) {
        Some("") => {
            return Err(Outcome::Failed("plugin.gameops.waitReady.image is empty: give the image to wait for, or leave it out for the template's".into()));
        }
        Some(i) => i.to_owned(),
        None => match patch_image::container(&gss, None, "waitReady") {
            Ok((_, _, Some(i))) => i,
            Ok((_, name, None)) => {
                return Err(Outcome::Failed(format!(
                    "container {name} of the template has no image: give plugin.gameops.waitReady.image"
                )));
            }
            Err(e) => return Err(Outcome::Failed(e)),
        },
    };
    let replicas = gss.spec.replicas;
    let (gss, started) = progress::start(call, gss, ("waitReady", goal.timeout)).await?;
    if let Some(failed) = started.failed {
        return Err(Outcome::Failed(failed));
    }
    let servers = select::list_servers(call).await?;
    let wanted = ImageRef::parse(&image);
    let tally = Tally::of(&servers, &wanted);
    let needed = needed(&goal, replicas);
    Ok(
        match verdict(
            &tally,
            &image,
            needed,
            &goal,
            started.elapsed(Timestamp::now()),
        ) {
            Verdict::Ready(message) => Outcome::Done {
                message,
                outputs: BTreeMap::from([("ready".to_owned(), tally.count("Ready").to_string())]),
            },
            Verdict::Crashing(m) | Verdict::TimedOut(m) => {
                match progress::fail(call, gss, &m).await {
                    Ok(()) => Outcome::Failed(m),
                    Err(outcome) => outcome,
                }
            }
            Verdict::Waiting(message, after) => Outcome::Waiting { message, after },
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::select::tests::{NEW, OLD, server};
    use serde_json::json;

    fn goal_of(v: serde_json::Value) -> Result<Goal, String> {
        let args: Args = serde_json::from_value(v).map_err(|e| e.to_string())?;
        goal(&args)
    }

    #[test]
    fn percent_rounds_up() {
        let g = goal_of(json!({"percent": 50, "timeoutSeconds": 60})).unwrap();
        assert_eq!(needed(&g, 3), 2);
        assert_eq!(needed(&g, 4), 2);
        assert_eq!(needed(&g, 0), 0);
        let g = goal_of(json!({"percent": "34", "timeoutSeconds": "60"})).unwrap();
        assert_eq!(needed(&g, 6), 3, "2.04 rounds up to 3");
        let g = goal_of(json!({"percent": 100, "timeoutSeconds": 60})).unwrap();
        assert_eq!(needed(&g, 7), 7);
        let g = goal_of(json!({"count": 3, "timeoutSeconds": 60})).unwrap();
        assert_eq!(needed(&g, 100), 3);
    }

    #[test]
    fn arguments_are_checked() {
        for (args, needle) in [
            (json!({"timeoutSeconds": 60}), "exactly one of count"),
            (
                json!({"count": 1, "percent": 5, "timeoutSeconds": 60}),
                "exactly one of count",
            ),
            (json!({"percent": 101, "timeoutSeconds": 60}), "0 to 100"),
            (json!({"count": 1}), "timeoutSeconds is missing"),
            (
                json!({"count": 1, "timeoutSeconds": 60, "crashThreshold": 0}),
                "at least 1",
            ),
            (
                json!({"count": 1, "timeoutSeconds": 999_999}),
                "over the limit",
            ),
            (
                json!({"count": 1, "timeoutSeconds": 60, "replicas": 1}),
                "unknown field",
            ),
        ] {
            let e = goal_of(args.clone()).unwrap_err();
            assert!(e.contains(needle), "{args}: {e}");
        }
    }

    #[test]
    fn counts_ready_servers_of_the_image_and_fails_fast_on_crashes() {
        let g = goal_of(json!({"count": 3, "timeoutSeconds": 60})).unwrap();
        let new = ImageRef::parse(NEW);
        let mut servers = vec![
            server(0, "Ready", "Allocated", OLD),
            server(1, "Ready", "None", OLD),
            server(3, "Ready", "None", NEW),
            server(4, "Creating", "None", NEW),
            server(5, "Creating", "None", NEW),
        ];
        let t = Tally::of(&servers, &new);
        let v = verdict(&t, NEW, 3, &g, Duration::from_secs(5));
        let Verdict::Waiting(m, after) = v else {
            panic!("{v:?}")
        };
        assert!(m.contains("1/3 Ready, 2 Creating (5s of 60s)"), "{m}");
        assert_eq!(after, POLL);
        // Timed out: says what it saw.
        let v = verdict(&t, NEW, 3, &g, Duration::from_secs(60));
        assert!(
            matches!(&v, Verdict::TimedOut(m) if m.contains("1/3 Ready, 2 Creating")),
            "{v:?}"
        );
        // All Ready: done (old-version Ready servers do not count).
        servers[3] = server(4, "Ready", "None", NEW);
        servers[4] = server(5, "Ready", "None", NEW);
        let v = verdict(&Tally::of(&servers, &new), NEW, 3, &g, Duration::ZERO);
        assert!(matches!(v, Verdict::Ready(_)), "{v:?}");
        let old = Tally::of(&servers, &ImageRef::parse(OLD));
        assert_eq!(old.count("Ready"), 2);
        // Crashes fail fast, naming them.
        servers[3] = server(4, "Crash", "None", NEW);
        servers[4] = server(5, "Crash", "None", NEW);
        let v = verdict(&Tally::of(&servers, &new), NEW, 3, &g, Duration::ZERO);
        let Verdict::Crashing(m) = v else {
            panic!("{v:?}")
        };
        assert!(m.contains("2 Crash, 1 Ready of 3 servers"), "{m}");
        assert!(m.contains("in Crash: minecraft-4, minecraft-5"), "{m}");
        // Under the threshold it keeps waiting.
        let g3 = goal_of(json!({"count": 3, "timeoutSeconds": 60, "crashThreshold": 3})).unwrap();
        let v = verdict(&Tally::of(&servers, &new), NEW, 3, &g3, Duration::ZERO);
        assert!(
            matches!(&v, Verdict::Waiting(m, _) if m.contains("1/3 Ready, 2 Crash")),
            "{v:?}"
        );
    }

    #[test]
    fn the_requeue_never_overshoots_the_deadline() {
        let g = goal_of(json!({"count": 1, "timeoutSeconds": 10})).unwrap();
        let v = verdict(&Tally::default(), NEW, 1, &g, Duration::from_millis(9_500));
        assert!(
            matches!(v, Verdict::Waiting(_, after) if after == Duration::from_millis(500)),
            "{v:?}"
        );
    }

    fn waiting_in(mut gs: GameServer, reason: &str, restarts: i32) -> GameServer {
        let c = gs
            .status
            .as_mut()
            .and_then(|s| s.pod_status.as_mut())
            .and_then(|p| p.container_statuses.as_mut())
            .and_then(|c| c.first_mut());
        if let Some(c) = c {
            c.restart_count = restarts;
            c.state = Some(k8s_openapi::api::core::v1::ContainerState {
                waiting: Some(k8s_openapi::api::core::v1::ContainerStateWaiting {
                    reason: Some(reason.into()),
                    message: None,
                }),
                ..Default::default()
            });
        }
        gs
    }

    #[test]
    fn crashes_are_read_as_kubelet_reports_them_and_retired_servers_never_count() {
        let g = goal_of(json!({"count": 2, "timeoutSeconds": 60})).unwrap();
        let new = ImageRef::parse(NEW);
        // kubelet_pods.go getPhase: a crash loop under restartPolicy Always
        // keeps the pod Running; OKG shows the server NotReady.
        let servers = vec![
            waiting_in(server(1, "NotReady", "None", NEW), "CrashLoopBackOff", 3),
            server(2, "Ready", "None", NEW),
        ];
        let v = verdict(&Tally::of(&servers, &new), NEW, 2, &g, Duration::ZERO);
        let Verdict::Crashing(m) = v else {
            panic!("{v:?}")
        };
        assert!(
            m.contains("minecraft-1 (CrashLoopBackOff after 3 restarts)"),
            "{m}"
        );
        let pulling = vec![waiting_in(
            server(1, "Creating", "None", NEW),
            "ImagePullBackOff",
            0,
        )];
        let v = verdict(&Tally::of(&pulling, &new), NEW, 2, &g, Duration::ZERO);
        assert!(
            matches!(&v, Verdict::Crashing(m) if m.contains("minecraft-1 (ImagePullBackOff)")),
            "{v:?}"
        );
        // Ready servers marked for retirement will not serve: not counted.
        let retired = vec![
            server(1, "Ready", "WaitToBeDeleted", NEW),
            server(2, "Ready", "Kill", NEW),
            server(3, "Ready", "None", NEW),
        ];
        let t = Tally::of(&retired, &new);
        assert_eq!(t.count("Ready"), 1);
    }
}
