//! Every call answers in time, and no call is retried for ever.
//!
//! Argo's agent gives up on a plugin call after 30 s (argo-workflows
//! `workflow/executor/plugins/rpc/plugin.go`: `rpc.New(address, token,
//! 30*time.Second, ...)`, the `http.Client{Timeout}` of
//! `workflow/util/plugin/plugin.go`), and never times out a node left
//! `Running` (CONTRACTS section 1). So:
//!
//! - Each call's work runs in a task of its own, keyed by the call's
//!   fingerprint (workflow uid, template, op, arguments). A request waits
//!   for it at most [`DEADLINE`]; work still going on then is answered
//!   `Running` with a short requeue, and goes on. A repeat of the call (the
//!   requeue, or one of Argo's concurrent resends) joins that work rather
//!   than starting another, and answers its result once it is there. Work
//!   that has not finished after [`TASK_LIMIT`] is dropped and counts as a
//!   transient failure (every op is idempotent, so dropping it mid-way is
//!   safe).
//! - A transient failure (`Outcome::Retry`: see `ops::cas::classify`) is
//!   answered `Running` with a growing requeue; after [`MAX_TRANSIENT`]
//!   consecutive transient failures of the same call, or once the first of
//!   them is [`TRANSIENT_WINDOW`] old, the call is answered `Failed`,
//!   naming the cause. Any other outcome resets the count.
//!
//! All of this is in memory: a restarted plugin starts every count afresh
//! and forgets work in flight (a repeat starts it again; the ops are
//! idempotent). Entries untouched for [`FORGET`] are dropped.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};

use crate::ops::Outcome;

/// The longest a request waits for its work before answering `Running`
/// (Argo's agent waits 30 s; 20 s is the promise, this leaves margin).
pub const DEADLINE: Duration = Duration::from_secs(15);
/// The requeue of a call whose work is still going on.
pub const STILL_WORKING_REQUEUE: Duration = Duration::from_secs(2);
/// The longest one call's work may run before it is dropped.
pub const TASK_LIMIT: Duration = Duration::from_secs(5 * 60);
/// Consecutive transient failures of one call before it fails.
pub const MAX_TRANSIENT: u32 = 6;
/// How long one call may keep failing transiently before it fails.
pub const TRANSIENT_WINDOW: Duration = Duration::from_secs(5 * 60);
/// The requeue after the first transient failure; doubled after each
/// further one, up to [`MAX_BACKOFF`].
pub const FIRST_BACKOFF: Duration = Duration::from_secs(5);
/// The longest requeue after a transient failure.
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// Entries untouched this long are forgotten.
pub const FORGET: Duration = Duration::from_secs(30 * 60);

/// A call's work, which any number of requests may wait for.
type Work = Shared<BoxFuture<'static, Outcome>>;

/// What the plugin remembers of one call.
struct Entry {
    /// The work in flight (or finished and not yet collected), and since when.
    work: Option<(Work, Instant)>,
    /// Consecutive transient failures.
    failures: u32,
    /// When the first of them happened.
    first_failure: Option<Instant>,
    /// The last time a request or its work touched the entry.
    touched: Instant,
}

impl Entry {
    fn new(now: Instant) -> Self {
        Self {
            work: None,
            failures: 0,
            first_failure: None,
            touched: now,
        }
    }
}

/// What a request answers.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// The call's outcome (a transient failure already turned into a
    /// `Waiting` with its requeue, or a `Failed`).
    Outcome(Outcome),
    /// The work goes on after the deadline; it started this long ago.
    StillWorking(Duration),
}

/// The calls the plugin is working on, by fingerprint.
#[derive(Default)]
pub struct Calls {
    entries: Mutex<HashMap<String, Entry>>,
}

impl Calls {
    /// Locks the entries; a panic while they were locked left them
    /// consistent (every change is one assignment), so poison is ignored.
    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Answers a request for the call `fingerprint`: joins its work in
    /// flight, or starts it with `start`, and waits for it until `deadline`.
    pub async fn answer<F>(
        self: &Arc<Self>,
        fingerprint: &str,
        deadline: Duration,
        start: F,
    ) -> Answer
    where
        F: FnOnce() -> BoxFuture<'static, Outcome>,
    {
        let now = Instant::now();
        let (work, since) = {
            let mut entries = self.entries();
            entries.retain(|_, e| e.work.is_some() || now.duration_since(e.touched) < FORGET);
            let entry = entries
                .entry(fingerprint.to_owned())
                .or_insert_with(|| Entry::new(now));
            entry.touched = now;
            match &entry.work {
                Some((work, since)) => (work.clone(), *since),
                None => {
                    let work = self.spawn(fingerprint.to_owned(), start());
                    entry.work = Some((work.clone(), now));
                    (work, now)
                }
            }
        };
        match tokio::time::timeout(deadline, work.clone()).await {
            Ok(outcome) => {
                let mut entries = self.entries();
                if let Some(entry) = entries.get_mut(fingerprint)
                    && entry.work.as_ref().is_some_and(|(w, _)| w.ptr_eq(&work))
                {
                    entry.work = None;
                }
                Answer::Outcome(outcome)
            }
            Err(_) => Answer::StillWorking(since.elapsed()),
        }
    }

    /// Runs `work` in a task of its own, bounded by [`TASK_LIMIT`], and
    /// counts its transient failures once, however many requests wait.
    fn spawn(self: &Arc<Self>, fingerprint: String, work: BoxFuture<'static, Outcome>) -> Work {
        let calls = Arc::clone(self);
        let task = tokio::spawn(async move {
            let outcome = match tokio::time::timeout(TASK_LIMIT, work).await {
                Ok(outcome) => outcome,
                Err(_) => Outcome::Retry(format!(
                    "the call did not finish within {} s (the API server or registry did not answer)",
                    TASK_LIMIT.as_secs()
                )),
            };
            calls.account(&fingerprint, outcome, Instant::now())
        });
        async move {
            task.await.unwrap_or_else(|e| {
                tracing::error!(error = %e, "a plugin call's task failed");
                Outcome::Failed(format!(
                    "the plugin failed while working on this call ({e}); see its log"
                ))
            })
        }
        .boxed()
        .shared()
    }

    /// Counts `outcome` for `fingerprint` at `now`: a transient failure
    /// becomes a `Waiting` with a growing requeue, or, past the bounds, a
    /// `Failed` naming the cause; anything else resets the count.
    fn account(&self, fingerprint: &str, outcome: Outcome, now: Instant) -> Outcome {
        let mut entries = self.entries();
        let entry = entries
            .entry(fingerprint.to_owned())
            .or_insert_with(|| Entry::new(now));
        entry.touched = now;
        let Outcome::Retry(cause) = outcome else {
            entry.failures = 0;
            entry.first_failure = None;
            return outcome;
        };
        entry.failures += 1;
        let first = *entry.first_failure.get_or_insert(now);
        let failures = entry.failures;
        let over = now.duration_since(first);
        if failures >= MAX_TRANSIENT || over >= TRANSIENT_WINDOW {
            entry.failures = 0;
            entry.first_failure = None;
            tracing::warn!(fingerprint, failures, cause = %cause, "a call kept failing: answering Failed");
            return Outcome::Failed(format!(
                "{cause}; gave up after {failures} attempts over {} s: fix the cause and run the step again",
                over.as_secs()
            ));
        }
        let after = backoff(failures);
        tracing::info!(fingerprint, failures, cause = %cause, "transient failure: requeued");
        Outcome::Waiting {
            message: format!(
                "{cause} (attempt {failures} of {MAX_TRANSIENT}; trying again in {} s)",
                after.as_secs()
            ),
            after,
        }
    }
}

/// The requeue after `failures` consecutive transient failures.
fn backoff(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    FIRST_BACKOFF
        .saturating_mul(1 << doublings)
        .min(MAX_BACKOFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn retry() -> Outcome {
        Outcome::Retry("connection refused".into())
    }

    #[test]
    fn transient_failures_fail_after_a_bounded_count() {
        let calls = Calls::default();
        let now = Instant::now();
        let mut requeues = Vec::new();
        for _ in 1..MAX_TRANSIENT {
            match calls.account("f", retry(), now) {
                Outcome::Waiting { message, after } => {
                    assert!(message.contains("connection refused"), "{message}");
                    requeues.push(after.as_secs());
                }
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(requeues, [5, 10, 20, 40, 60]);
        let Outcome::Failed(m) = calls.account("f", retry(), now) else {
            panic!("the last one fails");
        };
        assert!(
            m.contains("connection refused") && m.contains("gave up after 6 attempts"),
            "{m}"
        );
        // Another call counts on its own.
        assert!(matches!(
            calls.account("g", retry(), now),
            Outcome::Waiting { .. }
        ));
    }

    #[test]
    fn transient_failures_fail_after_a_bounded_time() {
        let calls = Calls::default();
        let start = Instant::now();
        assert!(matches!(
            calls.account("f", retry(), start),
            Outcome::Waiting { .. }
        ));
        assert!(matches!(
            calls.account("f", retry(), start + TRANSIENT_WINDOW),
            Outcome::Failed(_)
        ));
    }

    #[test]
    fn any_other_outcome_resets_the_count() {
        let calls = Calls::default();
        let now = Instant::now();
        for _ in 1..MAX_TRANSIENT {
            calls.account("f", retry(), now);
        }
        let waiting = Outcome::Waiting {
            message: "2/3 Ready".into(),
            after: Duration::from_secs(5),
        };
        assert_eq!(calls.account("f", waiting.clone(), now), waiting);
        assert!(matches!(
            calls.account("f", retry(), now),
            Outcome::Waiting { .. }
        ));
    }

    #[tokio::test]
    async fn slow_work_goes_on_and_a_repeat_collects_it() {
        let calls = Arc::new(Calls::default());
        let started = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let start = || {
            let started = started.clone();
            move || -> BoxFuture<'static, Outcome> {
                started.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                async {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    Outcome::Failed("done".into())
                }
                .boxed()
            }
        };
        let first = calls.answer("f", Duration::from_millis(50), start()).await;
        assert!(matches!(first, Answer::StillWorking(_)), "{first:?}");
        // A concurrent repeat joins the same work.
        let second = calls.answer("f", Duration::from_millis(50), start()).await;
        assert!(matches!(second, Answer::StillWorking(_)), "{second:?}");
        tokio::time::sleep(Duration::from_millis(400)).await;
        let third = calls.answer("f", Duration::from_secs(5), start()).await;
        assert_eq!(third, Answer::Outcome(Outcome::Failed("done".into())));
        assert_eq!(started.load(std::sync::atomic::Ordering::SeqCst), 1);
        // Collected: the next repeat starts the work again.
        let fourth = calls.answer("f", Duration::from_secs(5), start()).await;
        assert!(matches!(fourth, Answer::Outcome(_)));
        assert_eq!(started.load(std::sync::atomic::Ordering::SeqCst), 2);
    }
}
