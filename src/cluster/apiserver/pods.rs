//! What kube-apiserver does for core/v1 Pods beyond storing them: the
//! defaults and status of a new pod ([`prepare_create`], kubernetes
//! pkg/apis/core/v1/defaults.go and pkg/registry/core/pod/strategy.go
//! `PrepareForCreate`), the spec changes an update may make
//! ([`check_update`]), and the row `kubectl get pods` prints, as kube-apiserver builds it
//! (kubernetes pkg/printers/internalversion/printers.go, `printPod` and
//! `podColumnDefinitions`): READY counts ready running containers, STATUS
//! is the phase overridden by the pod's reason and then by the last
//! container's waiting or terminated reason (`Terminating` while deleted),
//! RESTARTS adds `(AGE ago)` of the last termination.

use jiff::Timestamp;
use serde_json::{Value, json};

use super::age::{age, human_duration};
use super::status::FieldError;

/// What may change in a pod's spec (kubernetes
/// pkg/apis/core/validation/validation.go `updatablePodSpecFields`).
const UPDATABLE: &str = "`spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)";

/// Checks an update of a pod's spec as kube-apiserver does
/// (validation.go `ValidatePodUpdate`): no container added or removed; only
/// the images, `activeDeadlineSeconds` (set, or lowered), tolerations
/// (added) and a negative `terminationGracePeriodSeconds` (to 1) may change.
pub fn check_update(old: &Value, new: &Value) -> Vec<FieldError> {
    let (Some(old_spec), Some(new_spec)) = (old.get("spec"), new.get("spec")) else {
        return Vec::new();
    };
    if old_spec == new_spec {
        return Vec::new();
    }
    for list in ["containers", "initContainers"] {
        let count = |s: &Value| s.get(list).and_then(Value::as_array).map_or(0, Vec::len);
        if count(old_spec) != count(new_spec) {
            return vec![FieldError::forbidden(
                &format!("spec.{list}"),
                "pod updates may not add or remove containers",
            )];
        }
    }
    let mut errors: Vec<FieldError> = deadline_error(old_spec, new_spec).into_iter().collect();
    let tolerations = |s: &Value| {
        s.get("tolerations")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let added = tolerations(new_spec);
    if tolerations(old_spec).iter().any(|t| !added.contains(t)) {
        errors.push(FieldError::forbidden(
            "spec.tolerations",
            "existing toleration can not be modified except its tolerationSeconds",
        ));
    }
    // The rest must be as it was once the updatable fields are put back.
    if &put_back(new_spec, old_spec) != old_spec {
        errors.push(FieldError::forbidden(
            "spec",
            &format!("pod updates may not change fields other than {UPDATABLE}"),
        ));
    }
    errors
}

/// `activeDeadlineSeconds` may be set, or lowered, and nothing else.
fn deadline_error(old_spec: &Value, new_spec: &Value) -> Option<FieldError> {
    let deadline = |s: &Value| s.get("activeDeadlineSeconds").and_then(Value::as_i64);
    let field = "spec.activeDeadlineSeconds";
    match (deadline(old_spec), deadline(new_spec)) {
        (_, Some(n)) if !(0..=i64::from(i32::MAX)).contains(&n) => Some(FieldError::invalid(
            field,
            &json!(n),
            "must be between 0 and 2147483647, inclusive",
        )),
        (Some(o), Some(n)) if n > o => Some(FieldError::invalid(
            field,
            &json!(n),
            "must be less than or equal to previous value",
        )),
        (Some(_), None) => Some(FieldError::invalid(
            field,
            &Value::Null,
            "must not update from a positive integer to nil value",
        )),
        _ => None,
    }
}

/// The new spec with the old values of the fields an update may change
/// (validation.go's `mungedPodSpec`).
fn put_back(new_spec: &Value, old_spec: &Value) -> Value {
    let mut munged = new_spec.clone();
    for list in ["containers", "initContainers"] {
        if let (Some(new_list), Some(old_list)) = (
            munged.get_mut(list).and_then(Value::as_array_mut),
            old_spec.get(list).and_then(Value::as_array),
        ) {
            for (n, o) in new_list.iter_mut().zip(old_list) {
                n["image"] = o.get("image").cloned().unwrap_or(Value::Null);
            }
        }
    }
    for field in ["activeDeadlineSeconds", "tolerations"] {
        match old_spec.get(field) {
            Some(v) => munged[field] = v.clone(),
            None => {
                if let Some(m) = munged.as_object_mut() {
                    m.remove(field);
                }
            }
        }
    }
    let grace = |s: &Value| {
        s.get("terminationGracePeriodSeconds")
            .and_then(Value::as_i64)
    };
    if grace(old_spec).is_some_and(|g| g < 0) && grace(&munged) == Some(1) {
        munged["terminationGracePeriodSeconds"] = old_spec["terminationGracePeriodSeconds"].clone();
    }
    munged
}

/// A new pod as kube-apiserver stores it: the defaults of its spec and
/// containers filled in, `status` replaced by `Pending` with its QoS class.
pub fn prepare_create(pod: &mut Value) {
    let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    for (key, value) in [
        ("restartPolicy", json!("Always")),
        ("terminationGracePeriodSeconds", json!(30)),
        ("dnsPolicy", json!("ClusterFirst")),
        ("securityContext", json!({})),
        ("schedulerName", json!("default-scheduler")),
        ("enableServiceLinks", json!(true)),
    ] {
        spec.entry(key).or_insert(value);
    }
    let mut qos = Qos::default();
    if let Some(containers) = spec.get_mut("containers").and_then(Value::as_array_mut) {
        for c in containers.iter_mut().filter_map(Value::as_object_mut) {
            let image = c.get("image").and_then(Value::as_str).unwrap_or("");
            // SetDefaults_Container: Always for :latest or no tag.
            let tag = image.rsplit_once('/').map_or(image, |(_, last)| last);
            let latest =
                !image.contains('@') && tag.split_once(':').is_none_or(|(_, t)| t == "latest");
            let pull = if latest { "Always" } else { "IfNotPresent" };
            c.entry("imagePullPolicy").or_insert(json!(pull));
            c.entry("terminationMessagePath")
                .or_insert(json!("/dev/termination-log"));
            c.entry("terminationMessagePolicy").or_insert(json!("File"));
            qos.add(c.get("resources"));
        }
    }
    pod["status"] = json!({"phase": "Pending", "qosClass": qos.class()});
}

/// kubernetes pkg/apis/core/helper/qos `GetPodQOS`, for cpu and memory.
#[derive(Default)]
struct Qos {
    /// Some container requests or limits cpu or memory.
    any: bool,
    /// Some container lacks a limit, or requests other than its limit.
    not_guaranteed: bool,
}

impl Qos {
    fn add(&mut self, resources: Option<&Value>) {
        let get = |kind: &str, r: &str| {
            resources
                .and_then(|x| x.pointer(&format!("/{kind}/{r}")))
                .cloned()
        };
        for r in ["cpu", "memory"] {
            let (req, lim) = (get("requests", r), get("limits", r));
            self.any |= req.is_some() || lim.is_some();
            // A request defaults to its limit.
            let guaranteed = lim.is_some() && req.as_ref().is_none_or(|q| Some(q) == lim.as_ref());
            self.not_guaranteed |= !guaranteed;
        }
    }

    fn class(&self) -> &'static str {
        match (self.any, self.not_guaranteed) {
            (false, _) => "BestEffort",
            (true, false) => "Guaranteed",
            (true, true) => "Burstable",
        }
    }
}

/// Column definitions after NAME (wide ones at priority 1).
pub fn columns() -> Vec<Value> {
    [
        ("Ready", 0, "The aggregate readiness state of this pod for accepting traffic."),
        ("Status", 0, "The aggregate status of the containers in this pod."),
        ("Restarts", 0, "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted."),
        ("Age", 0, "CreationTimestamp is a timestamp representing the server time when this object was created."),
        ("IP", 1, "IP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated."),
        ("Node", 1, "NodeName is a request to schedule this pod onto a specific node."),
        ("Nominated Node", 1, "nominatedNodeName is set only when this pod preempts other pods on the node."),
        ("Readiness Gates", 1, "If specified, all readiness gates will be evaluated for pod readiness."),
    ]
    .iter()
    .map(|(n, p, d)| json!({"name": n, "type": "string", "format": "", "description": d, "priority": p}))
    .collect()
}

fn text<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

/// What the containers say, read last to first as `printPod` reads them.
#[derive(Default)]
struct Containers {
    reason: Option<String>,
    ready: usize,
    restarts: i64,
    running: bool,
    last_restart: Option<Timestamp>,
}

fn containers(pod: &Value) -> Containers {
    let mut out = Containers::default();
    let statuses = pod
        .pointer("/status/containerStatuses")
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice);
    for c in statuses.iter().rev() {
        out.restarts += c.get("restartCount").and_then(Value::as_i64).unwrap_or(0);
        if let Some(t) = c
            .pointer("/lastState/terminated/finishedAt")
            .and_then(Value::as_str)
            .and_then(|s| s.parse::<Timestamp>().ok())
        {
            out.last_restart = Some(out.last_restart.map_or(t, |l| l.max(t)));
        }
        let waiting = text(c, "/state/waiting/reason");
        if !waiting.is_empty() {
            out.reason = Some(waiting.to_owned());
        } else if let Some(t) = c.pointer("/state/terminated") {
            out.reason = Some(match t.get("reason").and_then(Value::as_str) {
                Some(r) if !r.is_empty() => r.to_owned(),
                _ => match t.get("signal").and_then(Value::as_i64) {
                    Some(s) if s != 0 => format!("Signal:{s}"),
                    _ => format!(
                        "ExitCode:{}",
                        t.get("exitCode").and_then(Value::as_i64).unwrap_or(0)
                    ),
                },
            });
        } else if c.get("ready") == Some(&Value::Bool(true))
            && c.pointer("/state/running").is_some()
        {
            out.running = true;
            out.ready += 1;
        }
    }
    out
}

/// The cells of one pod, NAME first.
pub fn cells(pod: &Value, now: Timestamp) -> Vec<Value> {
    let total = pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    let mut reason = text(pod, "/status/phase").to_owned();
    if !text(pod, "/status/reason").is_empty() {
        reason = text(pod, "/status/reason").to_owned();
    }
    let Containers {
        reason: from_containers,
        ready,
        restarts,
        running,
        last_restart,
    } = containers(pod);
    if let Some(r) = from_containers {
        reason = r;
    }
    if reason == "Completed" && running {
        let pod_ready = pod
            .pointer("/status/conditions")
            .and_then(Value::as_array)
            .is_some_and(|cs| {
                cs.iter()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True")
            });
        reason = if pod_ready { "Running" } else { "NotReady" }.into();
    }
    let phase = text(pod, "/status/phase");
    if pod.pointer("/metadata/deletionTimestamp").is_some() {
        if text(pod, "/status/reason") == "NodeLost" {
            reason = "Unknown".into();
        } else if phase != "Succeeded" && phase != "Failed" {
            reason = "Terminating".into();
        }
    }
    let restarts = match last_restart {
        Some(t) if restarts != 0 => format!(
            "{restarts} ({} ago)",
            human_duration(now.duration_since(t).as_secs())
        ),
        _ => restarts.to_string(),
    };
    let or_none = |s: &str| {
        if s.is_empty() {
            "<none>".to_owned()
        } else {
            s.to_owned()
        }
    };
    vec![
        pod.pointer("/metadata/name")
            .cloned()
            .unwrap_or(Value::Null),
        json!(format!("{ready}/{total}")),
        json!(reason),
        json!(restarts),
        age(pod.pointer("/metadata/creationTimestamp"), now),
        json!(or_none(text(pod, "/status/podIP"))),
        json!(or_none(text(pod, "/spec/nodeName"))),
        json!(or_none(text(pod, "/status/nominatedNodeName"))),
        json!("<none>"),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Timestamp {
        "2026-11-30T12:00:00Z".parse().unwrap()
    }

    fn pod(statuses: Value, phase: &str) -> Value {
        json!({"metadata": {"name": "mc-0", "creationTimestamp": "2026-11-30T11:58:00Z"},
            "spec": {"containers": [{"name": "mc", "image": "a"}]},
            "status": {"phase": phase, "containerStatuses": statuses}})
    }

    #[test]
    fn a_new_pod_is_pending_with_defaults_and_its_qos_class() {
        let mut p = json!({"spec": {"containers": [
            {"name": "a", "image": "mc:1.12", "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}},
            {"name": "b", "image": "sidecar", "resources": {"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "1", "memory": "1Gi"}}}]},
            "status": {"phase": "Running"}});
        prepare_create(&mut p);
        assert_eq!(
            p["status"],
            json!({"phase": "Pending", "qosClass": "Guaranteed"})
        );
        assert_eq!(p["spec"]["restartPolicy"], "Always");
        assert_eq!(
            p["spec"]["containers"][0]["imagePullPolicy"],
            "IfNotPresent"
        );
        assert_eq!(p["spec"]["containers"][1]["imagePullPolicy"], "Always");
        let mut burst = json!({"spec": {"containers": [{"name": "a", "image": "x:1", "resources": {"requests": {"cpu": "1"}}}]}});
        prepare_create(&mut burst);
        assert_eq!(burst["status"]["qosClass"], "Burstable");
        let mut none = json!({"spec": {"containers": [{"name": "a", "image": "x:1"}]}});
        prepare_create(&mut none);
        assert_eq!(none["status"]["qosClass"], "BestEffort");
    }

    #[test]
    fn a_ready_pod_prints_running_and_one_of_one() {
        let p = pod(
            json!([{"name": "mc", "ready": true, "restartCount": 0, "state": {"running": {}}}]),
            "Running",
        );
        assert_eq!(
            cells(&p, now())[..5],
            [
                json!("mc-0"),
                json!("1/1"),
                json!("Running"),
                json!("0"),
                json!("2m")
            ]
        );
    }

    #[test]
    fn a_crash_loop_prints_its_reason_and_when_it_last_restarted() {
        let p = pod(
            json!([{"name": "mc", "ready": false, "restartCount": 3,
                "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                "lastState": {"terminated": {"exitCode": 1, "reason": "Error", "finishedAt": "2026-11-30T11:59:30Z"}}}]),
            "Running",
        );
        let row = cells(&p, now());
        assert_eq!(row[1], "0/1");
        assert_eq!(row[2], "CrashLoopBackOff");
        assert_eq!(row[3], "3 (30s ago)");
    }

    #[test]
    fn a_deleted_pod_prints_terminating_and_a_fresh_one_its_waiting_reason() {
        let mut p = pod(
            json!([{"name": "mc", "ready": false, "restartCount": 0, "state": {"waiting": {"reason": "ContainerCreating"}}}]),
            "Pending",
        );
        assert_eq!(cells(&p, now())[2], "ContainerCreating");
        p["metadata"]["deletionTimestamp"] = json!("2026-11-30T11:59:59Z");
        assert_eq!(cells(&p, now())[2], "Terminating");
    }
}
