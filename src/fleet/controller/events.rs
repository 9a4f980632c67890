//! core/v1 Events about GameServerSets, as `kubectl describe gss` and
//! `kubectl get events` show them.

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
use kube::api::{Api, PostParams};
use kube::{Client, Resource, ResourceExt};

use crate::api::GameServerSet;

/// Who reports the events.
pub const COMPONENT: &str = "gameops-controller";

/// Normal or Warning.
#[derive(Clone, Copy, Debug)]
pub enum Kind {
    /// Something happened as planned.
    Normal,
    /// Something needs a person's attention.
    Warning,
}

/// Records one event about `gss`. Failing to record is logged, never fatal:
/// events are for people, the work is already done.
pub async fn record(
    client: &Client,
    gss: &GameServerSet,
    kind: Kind,
    reason: &str,
    message: String,
) {
    let namespace = gss.namespace().unwrap_or_else(|| "default".into());
    let now = jiff::Timestamp::now();
    let time = Time(now);
    let event = Event {
        metadata: ObjectMeta {
            generate_name: Some(format!("{}.", gss.name_any())),
            namespace: Some(namespace.clone()),
            ..Default::default()
        },
        involved_object: ObjectReference {
            api_version: Some(GameServerSet::api_version(&()).into_owned()),
            kind: Some(GameServerSet::kind(&()).into_owned()),
            name: Some(gss.name_any()),
            namespace: Some(namespace.clone()),
            uid: gss.uid(),
            resource_version: gss.resource_version(),
            ..Default::default()
        },
        reason: Some(reason.to_owned()),
        message: Some(message),
        type_: Some(match kind {
            Kind::Normal => "Normal".into(),
            Kind::Warning => "Warning".into(),
        }),
        source: Some(EventSource {
            component: Some(COMPONENT.into()),
            host: None,
        }),
        reporting_component: Some(COMPONENT.into()),
        reporting_instance: Some(COMPONENT.into()),
        first_timestamp: Some(time.clone()),
        last_timestamp: Some(time),
        event_time: Some(MicroTime(now)),
        action: Some(reason.to_owned()),
        count: Some(1),
        ..Default::default()
    };
    let api: Api<Event> = Api::namespaced(client.clone(), &namespace);
    if let Err(e) = api.create(&PostParams::default(), &event).await {
        tracing::warn!(set = %gss.name_any(), reason, error = %e, "could not record an event");
    }
}
