//! `retryStrategy` as Argo's controller applies it
//! (argo-workflows v4.0.5 workflow/controller/operator.go
//! `processNodeRetries`, `RetryStrategy.RetryPolicyActual` in
//! pkg/apis/workflow/v1alpha1/workflow_types.go):
//! - no `limit`: no limit; `limit: N`: up to N attempts after the first;
//! - `retryPolicy` `OnFailure` (the default; `Always` when an `expression`
//!   is given) retries Failed nodes, `OnError` Error nodes, `Always` both,
//!   `OnTransientError` either when its message is a transient error
//!   (util/errors/errors.go `isTransientErr` as it reads a message);
//! - `backoff`: the n-th retry waits `duration × factor^(n-1)`, at most
//!   `cap`; no attempt is made past `maxDuration` after the first started,
//!   nor a wait that would end past it.
//!
//! - `expression` (expr-lang, [`crate::argo::exprlang`]): checked last, once
//!   the limit and backoff allow another attempt; false stops with
//!   "retryStrategy.expression evaluated to false". It sees `retries` and
//!   `lastRetry.exitCode` (`-1`: a plugin node has none), `.status`,
//!   `.duration` (seconds) and `.message` (`buildRetryStrategyLocalScope`).

use std::time::Duration;

use serde_json::Value;

use crate::argo::workflow::{RetryStrategy, value_string};

/// What to do after an attempt that did not succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Try again after waiting this long.
    Retry(Duration),
    /// Stop; the node keeps its phase, with this message when given.
    Stop(Option<String>),
}

/// A duration as Argo's `ParseStringToDuration` reads one: whole seconds,
/// or a Go duration.
pub fn duration(v: &Value) -> Result<Duration, String> {
    let text = value_string(v).trim().to_owned();
    if let Ok(secs) = text.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    crate::argo::plugin::wire::parse_duration(&text)
        .ok_or_else(|| format!("{text:?} is not a duration (e.g. 10s, 1m30s, or whole seconds)"))
}

fn whole(v: &Value, field: &str) -> Result<u32, String> {
    let text = value_string(v).trim().to_owned();
    text.parse::<u32>()
        .map_err(|_| format!("retryStrategy.{field} {text:?} is not a whole number"))
}

/// Messages Argo counts as transient (util/errors/errors.go: the etcd,
/// network and database cases that read the message).
const TRANSIENT: [&str; 16] = [
    "etcdserver: leader changed",
    "etcdserver: request timed out",
    "etcdserver: too many requests",
    "Connection closed by foreign host",
    "net/http: TLS handshake timeout",
    "i/o timeout",
    "connection timed out",
    "connection reset by peer",
    "http2: client connection lost",
    "http2: server sent GOAWAY and closed the connection",
    "connect: connection refused",
    "invalid connection",
    "upper: no more rows in",
    "exceeded quota",
    "Operation cannot be fulfilled on resourcequota",
    "resource quota evaluation timed out",
];

/// Whether Argo would call a node's message a transient error
/// (`TRANSIENT_ERROR_PATTERN` as well, when set).
pub fn transient(message: &str) -> bool {
    TRANSIENT.iter().any(|t| message.contains(t))
        || std::env::var("TRANSIENT_ERROR_PATTERN")
            .ok()
            .filter(|p| !p.is_empty())
            .and_then(|p| regex::Regex::new(&p).ok())
            .is_some_and(|re| re.is_match(message))
}

/// Checks a strategy before the run: its values, and what the runner
/// cannot do.
pub fn check(s: &RetryStrategy) -> Result<(), String> {
    if let Some(l) = &s.limit {
        whole(l, "limit")?;
    }
    match s.retry_policy.as_deref() {
        None | Some("" | "Always" | "OnFailure" | "OnError" | "OnTransientError") => {}
        Some(other) => {
            return Err(format!(
                "retryStrategy.retryPolicy {other} is not a valid RetryPolicy: use Always, OnFailure, OnError or OnTransientError"
            ));
        }
    }
    if let Some(b) = &s.backoff {
        match &b.duration {
            None => {
                return Err(
                    "retryStrategy.backoff: no base duration specified for retryStrategy".into(),
                );
            }
            Some(d) => {
                duration(d).map_err(|e| format!("retryStrategy.backoff.duration {e}"))?;
            }
        }
        for (field, v) in [("cap", &b.cap), ("maxDuration", &b.max_duration)] {
            if let Some(v) = v {
                duration(v).map_err(|e| format!("retryStrategy.backoff.{field} {e}"))?;
            }
        }
        if let Some(f) = &b.factor {
            whole(f, "backoff.factor")?;
        }
    }
    Ok(())
}

/// After `attempts` attempts (the first included), the first started
/// `since_first` ago, the last ending in `phase` with `message`: retry
/// (after how long), or stop.
pub fn next(
    s: &RetryStrategy,
    attempts: u32,
    since_first: Duration,
    phase: &str,
    message: &str,
) -> Next {
    let policy = match s.retry_policy.as_deref() {
        Some(p) if !p.is_empty() => p,
        _ if s.expression.as_deref().is_some_and(|e| !e.is_empty()) => "Always",
        _ => "OnFailure",
    };
    let (on_failed, on_error) = match policy {
        "Always" => (true, true),
        "OnError" => (false, true),
        "OnTransientError" => {
            let t = matches!(phase, "Failed" | "Error") && transient(message);
            (t, t)
        }
        _ => (true, false),
    };
    if (phase == "Failed" && !on_failed) || (phase == "Error" && !on_error) {
        return Next::Stop(None);
    }
    let limit = s.limit.as_ref().and_then(|l| whole(l, "limit").ok());
    let mut wait = Duration::ZERO;
    if let Some(b) = &s.backoff {
        let max = b.max_duration.as_ref().and_then(|m| duration(m).ok());
        if max.is_some_and(|m| since_first > m) {
            return Next::Stop(Some("Max duration limit exceeded".into()));
        }
        let base = b
            .duration
            .as_ref()
            .and_then(|d| duration(d).ok())
            .unwrap_or_default();
        wait = base;
        if let Some(f) = b
            .factor
            .as_ref()
            .and_then(|f| whole(f, "backoff.factor").ok())
            .filter(|f| *f > 0)
        {
            let power = i32::try_from(attempts.saturating_sub(1)).unwrap_or(i32::MAX);
            let factor = f64::from(f).powi(power);
            wait =
                Duration::try_from_secs_f64(base.as_secs_f64() * factor).unwrap_or(Duration::MAX);
        }
        if let Some(cap) = b.cap.as_ref().and_then(|c| duration(c).ok()) {
            wait = wait.min(cap);
        }
        if max.is_some_and(|m| since_first + wait > m) {
            return Next::Stop(Some("Backoff would exceed max duration limit".into()));
        }
        // Argo waits only under a limit (the requeue in processNodeRetries
        // asks for `retryStrategy.Limit != nil`).
        if limit.is_none() {
            wait = Duration::ZERO;
        }
    }
    if limit.is_some_and(|l| attempts > l) {
        return Next::Stop(Some("No more retries left".into()));
    }
    Next::Retry(wait)
}

/// Whether a `retryStrategy.expression` allows another attempt after
/// `attempts` attempts, the last ending in `phase` with `message` after
/// `last`; an expression that does not evaluate is the node's error, as in
/// Argo.
pub fn expression_allows(
    s: &RetryStrategy,
    attempts: u32,
    (phase, message, last): (&str, &str, Duration),
) -> Result<bool, String> {
    let Some(expression) = s.expression.as_deref().filter(|e| !e.is_empty()) else {
        return Ok(true);
    };
    let scope = std::collections::BTreeMap::from([
        ("retries".to_owned(), (attempts - 1).to_string()),
        ("lastRetry.exitCode".to_owned(), "-1".to_owned()),
        ("lastRetry.status".to_owned(), phase.to_owned()),
        (
            "lastRetry.duration".to_owned(),
            last.as_secs_f64().to_string(),
        ),
        ("lastRetry.message".to_owned(), message.to_owned()),
    ]);
    crate::argo::exprlang::evaluate_bool(expression, &scope)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn strategy(v: Value) -> RetryStrategy {
        serde_json::from_value(v).unwrap()
    }

    /// Outcomes read from processNodeRetries.
    #[test]
    fn limits_policies_and_backoff_as_argo_applies_them() {
        let s = strategy(json!({"limit": 2}));
        assert_eq!(
            next(&s, 1, Duration::ZERO, "Failed", "x"),
            Next::Retry(Duration::ZERO)
        );
        assert_eq!(
            next(&s, 2, Duration::ZERO, "Failed", "x"),
            Next::Retry(Duration::ZERO)
        );
        assert_eq!(
            next(&s, 3, Duration::ZERO, "Failed", "x"),
            Next::Stop(Some("No more retries left".into()))
        );
        // OnFailure, the default, leaves errors alone.
        assert_eq!(next(&s, 1, Duration::ZERO, "Error", "x"), Next::Stop(None));
        // No limit: no limit.
        let s = strategy(json!({}));
        assert_eq!(
            next(&s, 1000, Duration::ZERO, "Failed", "x"),
            Next::Retry(Duration::ZERO)
        );
        let s = strategy(json!({"retryPolicy": "OnError", "limit": "3"}));
        assert_eq!(next(&s, 1, Duration::ZERO, "Failed", "x"), Next::Stop(None));
        assert_eq!(
            next(&s, 1, Duration::ZERO, "Error", "x"),
            Next::Retry(Duration::ZERO)
        );
        let s = strategy(json!({"retryPolicy": "Always", "limit": 1}));
        assert_eq!(
            next(&s, 1, Duration::ZERO, "Error", "x"),
            Next::Retry(Duration::ZERO)
        );
        let s = strategy(json!({"retryPolicy": "OnTransientError", "limit": 1}));
        assert_eq!(
            next(
                &s,
                1,
                Duration::ZERO,
                "Failed",
                "dial tcp 10.0.0.1:4355: connect: connection refused"
            ),
            Next::Retry(Duration::ZERO)
        );
        assert_eq!(
            next(&s, 1, Duration::ZERO, "Failed", "image not found"),
            Next::Stop(None)
        );

        // duration × factor^(n-1), capped; nothing past maxDuration.
        let s = strategy(
            json!({"limit": 10, "backoff": {"duration": "1s", "factor": 2, "cap": "5s", "maxDuration": "1m"}}),
        );
        let waits: Vec<Next> = (1..=4)
            .map(|n| next(&s, n, Duration::ZERO, "Failed", "x"))
            .collect();
        assert_eq!(
            waits,
            [1, 2, 4, 5].map(|s| Next::Retry(Duration::from_secs(s)))
        );
        assert_eq!(
            next(&s, 2, Duration::from_secs(61), "Failed", "x"),
            Next::Stop(Some("Max duration limit exceeded".into()))
        );
        assert_eq!(
            next(&s, 4, Duration::from_secs(58), "Failed", "x"),
            Next::Stop(Some("Backoff would exceed max duration limit".into()))
        );
        let s = strategy(json!({"limit": 1, "backoff": {"duration": "30"}}));
        assert_eq!(
            next(&s, 1, Duration::ZERO, "Failed", "x"),
            Next::Retry(Duration::from_secs(30))
        );
        // Without a limit Argo does not wait.
        let s = strategy(json!({"backoff": {"duration": "30s"}}));
        assert_eq!(
            next(&s, 1, Duration::ZERO, "Failed", "x"),
            Next::Retry(Duration::ZERO)
        );
    }

    /// operator.go `buildRetryStrategyLocalScope`: the scope an expression
    /// sees; a plugin node has no exit code (`-1`); a non-bool result is
    /// `EvalBool`'s error.
    #[test]
    fn the_expression_sees_the_last_attempt() {
        let allows = |e: &str, phase: &str| {
            expression_allows(
                &strategy(json!({"expression": e})),
                3,
                (phase, "quota exceeded", Duration::from_millis(1500)),
            )
        };
        assert_eq!(allows("lastRetry.status == 'Error'", "Error"), Ok(true));
        assert_eq!(allows("lastRetry.status == 'Error'", "Failed"), Ok(false));
        assert_eq!(allows("asInt(retries) < 2", "Failed"), Ok(false));
        assert_eq!(
            allows(
                "asInt(lastRetry.exitCode) == -1 && lastRetry.message contains 'quota'",
                "Failed"
            ),
            Ok(true)
        );
        assert_eq!(
            allows("asFloat(lastRetry.duration) > 1", "Failed"),
            Ok(true)
        );
        assert!(allows("lastRetry.message", "Failed").is_err_and(|e| e.contains("to bool")));
    }

    #[test]
    fn what_argo_refuses_is_said_before_the_run() {
        assert!(check(&strategy(json!({"limit": 3, "retryPolicy": "OnFailure"}))).is_ok());
        let e = check(&strategy(json!({"retryPolicy": "Sometimes"}))).unwrap_err();
        assert!(e.contains("Sometimes is not a valid RetryPolicy"), "{e}");
        let e = check(&strategy(json!({"backoff": {"factor": 2}}))).unwrap_err();
        assert!(e.contains("no base duration specified"), "{e}");
        let e = check(&strategy(json!({"backoff": {"duration": "soon"}}))).unwrap_err();
        assert!(e.contains("\"soon\" is not a duration"), "{e}");
        assert!(
            check(&strategy(
                json!({"expression": "lastRetry.status == 'Error'"})
            ))
            .is_ok()
        );
        let e = check(&strategy(json!({"limit": "many"}))).unwrap_err();
        assert!(
            e.contains("retryStrategy.limit \"many\" is not a whole number"),
            "{e}"
        );
    }
}
