//! Events expire, as kube-apiserver expires them (`--event-ttl`, default
//! one hour: each write of an Event gives it an etcd lease of that length,
//! pkg/registry/core/event/storage `TTLFunc`). An event goes once its last
//! write (the newest of its creation, `lastTimestamp`, `eventTime` and
//! `series.lastObservedTime`) is older than the TTL.

use std::time::Duration;

use jiff::Timestamp;
use serde_json::Value;

use super::Cluster;
use crate::cluster::store::{ObjectKey, Op, StoredObject};

/// kube-apiserver's default `--event-ttl`.
pub const DEFAULT_TTL: Duration = Duration::from_secs(3600);

/// When an event was last written, as far as it says.
fn last_written(event: &Value) -> Option<Timestamp> {
    [
        "/metadata/creationTimestamp",
        "/lastTimestamp",
        "/eventTime",
        "/series/lastObservedTime",
    ]
    .iter()
    .filter_map(|p| event.pointer(p).and_then(Value::as_str))
    .filter_map(|t| t.parse::<Timestamp>().ok())
    .max()
}

/// Whether an event written last at `written` has expired at `now`.
fn expired(event: &StoredObject, ttl: Duration, now: Timestamp) -> bool {
    last_written(&event.value).is_some_and(|w| {
        now.duration_since(w)
            .try_into()
            .is_ok_and(|age: Duration| age >= ttl)
    })
}

/// Deletes expired events of `cluster` until its store closes, checking a
/// few times per TTL (at most every minute).
pub async fn run(cluster: Cluster, ttl: Duration) {
    let period = (ttl / 4).clamp(Duration::from_millis(200), Duration::from_secs(60));
    loop {
        tokio::time::sleep(period).await;
        let (events, _) = cluster.store.list("events", None);
        let now = Timestamp::now();
        for event in events.iter().filter(|e| expired(e, ttl, now)) {
            let key = ObjectKey::new("events", event.namespace(), event.name());
            let op = Op::Delete {
                expect_rv: Some(event.rv),
            };
            match cluster.store.write(key, op).await {
                Ok(_) => tracing::debug!(event = %event.name(), "an event expired"),
                Err(crate::cluster::store::StoreError::Closed) => return,
                // Written meanwhile: it lives on.
                Err(_) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_event_lives_from_its_last_write() {
        let event = StoredObject::new(
            1,
            json!({"metadata": {"name": "e", "namespace": "ns", "creationTimestamp": "2026-12-01T10:00:00Z"},
                "lastTimestamp": "2026-12-01T10:30:00Z"}),
        );
        let at = |t: &str| t.parse::<Timestamp>().expect("time");
        assert!(!expired(&event, DEFAULT_TTL, at("2026-12-01T11:29:59Z")));
        assert!(expired(&event, DEFAULT_TTL, at("2026-12-01T11:30:00Z")));
    }
}
