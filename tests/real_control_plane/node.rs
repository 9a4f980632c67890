//! One node's kubelet, standing in for Argo's agent pods only (the real
//! stack has no kubelet). It runs each Pod labelled
//! `workflows.argoproj.io/component=agent` as kubelet would
//! (kubernetes pkg/kubelet/kubelet.go `SyncPod`, kuberuntime): binds it to
//! this node, mounts its volumes (Secret, ConfigMap, emptyDir; a Secret or
//! ConfigMap that does not exist keeps the Pod Pending with kubelet's
//! `FailedMount` event, retried), runs the init containers one after the
//! other, then the containers, each as a local process in a private mount
//! namespace (its own `/run`; the pod's volumes, `subPath` included, bound at
//! their `mountPath`s) as the pod's `runAsUser`/`runAsGroup`, with the
//! container's env (`value`, `valueFrom`, `envFrom`) and the service env
//! kubelet adds (`KUBERNETES_SERVICE_HOST`/`_PORT`). It reports status as
//! kubelet's status manager does (phase, init and container statuses,
//! conditions), restarts containers by `restartPolicy`, and when the Pod is
//! deleted stops its containers (SIGTERM, SIGKILL after the grace period) and
//! removes the Pod (grace 0, uid precondition).
//!
//! Deliberate differences (README, known differences): every pod shares the
//! host's network, so two agent pods at once would fight over the plugin's
//! port (the tests run one workflow at a time); an image is one binary, its
//! entrypoint; the root filesystem is the host's (only `/run` is private).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Container, Event, Pod};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use serde_json::{Value, json};
use tokio::sync::watch;

#[path = "node/container.rs"]
mod container;

/// The node's name, as pods bound to it show in `spec.nodeName`.
pub const NODE_NAME: &str = "gameops-node";

/// How long kubelet backs off before restarting a failed container (its
/// initial CrashLoopBackOff).
const RESTART_BACKOFF: Duration = Duration::from_secs(10);

/// How often a pod whose volumes cannot be mounted is retried.
const MOUNT_RETRY: Duration = Duration::from_secs(2);

/// A running node; stops (killing its containers) when dropped.
pub struct Node {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// What the node knows: where it keeps pods, the images it has, and the
/// API server its pods reach through the service env.
struct Setup {
    state: PathBuf,
    /// image reference → the binary that is its entrypoint
    images: BTreeMap<String, PathBuf>,
    service_host: String,
    service_port: String,
}

/// What the watch tells a pod's task.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Signal {
    Run,
    /// The Pod was deleted with this grace period (seconds).
    Delete(i64),
    /// The node stops: kill everything, leave the Pod as it is.
    Stop,
}

impl Node {
    /// Starts the node against the cluster of `kubeconfig`, keeping pods
    /// under `state`. `images` maps each image reference it can run to the
    /// binary that is that image's entrypoint (copied under `state`, where
    /// the pods' users can read it).
    pub fn start(kubeconfig: &Path, state: &Path, images: &[(&str, &Path)]) -> Node {
        let server = server_of(kubeconfig);
        let (host, port) = server
            .trim_start_matches("https://")
            .rsplit_once(':')
            .map(|(h, p)| (h.to_owned(), p.trim_end_matches('/').to_owned()))
            .expect("the kubeconfig's server has a port");
        std::fs::create_dir_all(state.join("images")).expect("the node's state folder");
        let mut known = BTreeMap::new();
        for (i, (image, binary)) in images.iter().enumerate() {
            let name = binary.file_name().expect("an image binary has a file name");
            let dir = state.join("images").join(i.to_string());
            std::fs::create_dir_all(&dir).expect("an image folder");
            let copy = dir.join(name);
            std::fs::copy(binary, &copy).expect("the image binary is copied");
            known.insert((*image).to_owned(), copy);
        }
        // The pods run as non-root users: they need to reach their binaries
        // and volumes under `state`.
        open_up(state);
        let setup = Arc::new(Setup {
            state: state.to_owned(),
            images: known,
            service_host: host,
            service_port: port,
        });
        let kubeconfig = kubeconfig.to_owned();
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("the node's runtime");
            runtime.block_on(async move {
                let config = kube::Config::from_custom_kubeconfig(
                    kube::config::Kubeconfig::read_from(&kubeconfig).expect("the kubeconfig"),
                    &kube::config::KubeConfigOptions::default(),
                )
                .await
                .expect("the kubeconfig is usable");
                let client = Client::try_from(config).expect("a client");
                serve(client, setup, stopped).await;
            });
        });
        Node {
            stop: Some(stop),
            thread: Some(thread),
        }
    }
}

/// The API server's URL in `kubeconfig`.
fn server_of(kubeconfig: &Path) -> String {
    let text = std::fs::read_to_string(kubeconfig).expect("the kubeconfig");
    text.lines()
        .find_map(|l| l.trim().strip_prefix("server: "))
        .expect("the kubeconfig names its server")
        .to_owned()
}

/// Lets every user traverse `path` and its ancestors (temporary folders are
/// created 0700).
fn open_up(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let mut at = Some(path);
    while let Some(dir) = at {
        if dir == Path::new("/") {
            break;
        }
        if let Ok(meta) = std::fs::metadata(dir) {
            let mode = meta.permissions().mode();
            if mode & 0o011 != 0o011 {
                let _ = std::fs::set_permissions(
                    dir,
                    std::fs::Permissions::from_mode((mode | 0o011) & 0o7777),
                );
            }
        }
        at = dir.parent();
    }
}

/// Watches the agent pods and runs each in its own task until it is deleted
/// or the node stops.
async fn serve(client: Client, setup: Arc<Setup>, mut stopped: tokio::sync::oneshot::Receiver<()>) {
    let heartbeat = tokio::spawn(heartbeat(client.clone()));
    let api: Api<Pod> = Api::all(client.clone());
    let config = watcher::Config::default().labels("workflows.argoproj.io/component=agent");
    let mut events = std::pin::pin!(watcher(api, config));
    let mut pods: HashMap<String, (watch::Sender<Signal>, tokio::task::JoinHandle<()>)> =
        HashMap::new();
    loop {
        tokio::select! {
            _ = &mut stopped => break,
            event = events.next() => match event {
                Some(Ok(watcher::Event::Apply(pod) | watcher::Event::InitApply(pod))) => {
                    let uid = pod.uid().unwrap_or_default();
                    if pod.metadata.deletion_timestamp.is_some() {
                        let grace = pod.metadata.deletion_grace_period_seconds.unwrap_or(30);
                        if let Some((signal, _)) = pods.get(&uid) {
                            let _ = signal.send(Signal::Delete(grace));
                        } else {
                            // Deleted before it ever ran here: nothing to stop.
                            let (signal, _) = watch::channel(Signal::Delete(grace));
                            let task = tokio::spawn(run_pod(client.clone(), setup.clone(), pod, signal.subscribe()));
                            pods.insert(uid, (signal, task));
                        }
                    } else if !pods.contains_key(&uid) && !finished(&pod) {
                        let (signal, watching) = watch::channel(Signal::Run);
                        let task = tokio::spawn(run_pod(client.clone(), setup.clone(), pod, watching));
                        pods.insert(uid, (signal, task));
                    }
                }
                Some(Ok(watcher::Event::Delete(pod))) => {
                    if let Some((signal, _)) = pods.get(&pod.uid().unwrap_or_default()) {
                        let _ = signal.send(Signal::Delete(0));
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    eprintln!("node: watching agent pods: {e}");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                None => break,
            }
        }
        pods.retain(|_, (_, task)| !task.is_finished());
    }
    heartbeat.abort();
    for (signal, task) in pods.into_values() {
        let _ = signal.send(Signal::Stop);
        let _ = task.await;
    }
}

/// How often kubelet renews its node Lease (kubelet's default
/// `nodeLeaseDurationSeconds` 40 s, renewed every quarter of it).
const LEASE_RENEW: Duration = Duration::from_secs(10);

/// Registers this node and keeps it alive as kubelet does: the Node object
/// (Ready) and its Lease in `kube-node-lease`, renewed every 10 s.
/// Without them kube-controller-manager's pod GC deletes the pods bound
/// here as orphans after 40 s (pkg/controller/podgc/gc_controller.go
/// `gcOrphaned`), and its node lifecycle controller taints the node.
async fn heartbeat(client: Client) {
    use k8s_openapi::api::coordination::v1::Lease;
    use k8s_openapi::api::core::v1::Node;
    let nodes: Api<Node> = Api::all(client.clone());
    let leases: Api<Lease> = Api::namespaced(client, "kube-node-lease");
    let apply = PatchParams::apply("kubelet").force();
    let node = json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": { "name": NODE_NAME, "labels": {
            "kubernetes.io/hostname": NODE_NAME, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64" } },
    });
    if let Err(e) = nodes.patch(NODE_NAME, &apply, &Patch::Apply(&node)).await {
        eprintln!("node: registering {NODE_NAME}: {e}");
    }
    loop {
        let now = jiff::Timestamp::now();
        let micro = now.strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string();
        let status = json!({
            "apiVersion": "v1", "kind": "Node", "metadata": { "name": NODE_NAME },
            "status": {
                "conditions": [{ "type": "Ready", "status": "True", "reason": "KubeletReady",
                    "message": "kubelet is posting ready status",
                    "lastHeartbeatTime": now.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
                    "lastTransitionTime": now.strftime("%Y-%m-%dT%H:%M:%SZ").to_string() }],
                "addresses": [{ "type": "InternalIP", "address": "127.0.0.1" },
                              { "type": "Hostname", "address": NODE_NAME }],
                "capacity": { "cpu": "2", "memory": "24Gi", "pods": "110" },
                "allocatable": { "cpu": "2", "memory": "24Gi", "pods": "110" },
            },
        });
        if let Err(e) = nodes
            .patch_status(NODE_NAME, &apply, &Patch::Apply(&status))
            .await
        {
            eprintln!("node: status of {NODE_NAME}: {e}");
        }
        let lease = json!({
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": { "name": NODE_NAME, "namespace": "kube-node-lease" },
            "spec": { "holderIdentity": NODE_NAME, "leaseDurationSeconds": 40, "renewTime": micro },
        });
        if let Err(e) = leases.patch(NODE_NAME, &apply, &Patch::Apply(&lease)).await {
            eprintln!("node: lease of {NODE_NAME}: {e}");
        }
        tokio::time::sleep(LEASE_RENEW).await;
    }
}

fn finished(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

/// One container's state as kubelet reports it.
#[derive(Clone)]
struct Status {
    name: String,
    image: String,
    restarts: i32,
    state: Value,
    last: Value,
    running: bool,
}

impl Status {
    fn waiting(c: &Container, reason: &str) -> Self {
        let waiting = json!({ "reason": reason });
        Status {
            name: c.name.clone(),
            image: c.image.clone().unwrap_or_default(),
            restarts: 0,
            state: json!({ "waiting": waiting }),
            last: json!({}),
            running: false,
        }
    }

    fn to_json(&self, init: bool) -> Value {
        let ready = self.running && !init;
        json!({
            "name": self.name,
            "image": self.image,
            "imageID": "",
            "ready": ready || (init && self.state.get("terminated").is_some_and(|t| t["exitCode"] == 0)),
            "started": self.running,
            "restartCount": self.restarts,
            "state": self.state,
            "lastState": self.last,
        })
    }
}

/// A pod's statuses, written back as one `status` merge patch.
struct PodStatus {
    init: Vec<Status>,
    main: Vec<Status>,
    phase: &'static str,
    initialized: bool,
    started: String,
}

impl PodStatus {
    fn to_patch(&self) -> Value {
        let ready = self.phase == "Running" && self.main.iter().all(|s| s.running);
        let condition = |kind: &str, ok: bool, reason: &str| {
            let mut c = json!({ "type": kind, "status": if ok { "True" } else { "False" }, "lastTransitionTime": now() });
            if !ok {
                c["reason"] = json!(reason);
            }
            c
        };
        json!({ "status": {
            "phase": self.phase,
            "hostIP": "127.0.0.1",
            "hostIPs": [{ "ip": "127.0.0.1" }],
            "podIP": "127.0.0.1",
            "podIPs": [{ "ip": "127.0.0.1" }],
            "startTime": self.started,
            "conditions": [
                condition("PodReadyToStartContainers", true, ""),
                condition("Initialized", self.initialized, "ContainersNotInitialized"),
                condition("Ready", ready, "ContainersNotReady"),
                condition("ContainersReady", ready, "ContainersNotReady"),
                condition("PodScheduled", true, ""),
            ],
            "initContainerStatuses": self.init.iter().map(|s| s.to_json(true)).collect::<Vec<_>>(),
            "containerStatuses": self.main.iter().map(|s| s.to_json(false)).collect::<Vec<_>>(),
        }})
    }
}

fn now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// What a pod's task works with.
struct PodRun {
    client: Client,
    setup: Arc<Setup>,
    pod: Pod,
    api: Api<Pod>,
    dir: PathBuf,
    signal: watch::Receiver<Signal>,
    status: PodStatus,
    /// FailedMount and other events already posted (kubelet aggregates).
    posted: Vec<String>,
}

async fn run_pod(client: Client, setup: Arc<Setup>, pod: Pod, signal: watch::Receiver<Signal>) {
    let ns = pod.namespace().unwrap_or_default();
    let name = pod.name_any();
    let spec = pod.spec.clone().unwrap_or_default();
    let waiting_init: Vec<Status> = spec
        .init_containers
        .iter()
        .flatten()
        .map(|c| Status::waiting(c, "PodInitializing"))
        .collect();
    let main_reason = if waiting_init.is_empty() {
        "ContainerCreating"
    } else {
        "PodInitializing"
    };
    let mut run = PodRun {
        api: Api::namespaced(client.clone(), &ns),
        dir: setup.state.join("pods").join(pod.uid().unwrap_or_default()),
        client,
        setup,
        status: PodStatus {
            init: waiting_init,
            main: spec
                .containers
                .iter()
                .map(|c| Status::waiting(c, main_reason))
                .collect(),
            phase: "Pending",
            initialized: false,
            started: now(),
        },
        pod,
        signal,
        posted: Vec::new(),
    };
    if *run.signal.borrow() == Signal::Run {
        run.bind(&name).await;
        run.lifecycle(&spec).await;
    }
    let last = *run.signal.borrow();
    if let Signal::Delete(_) = last {
        // kubelet's status manager removes the Pod once its containers
        // are gone: grace 0, only this very Pod (its uid).
        let params = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions {
                uid: run.pod.uid(),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        let _ = run.api.delete(&name, &params).await;
        let _ = std::fs::remove_dir_all(&run.dir);
    }
}

impl PodRun {
    /// Binds the pod to this node (`pods/binding`), as the scheduler would.
    async fn bind(&self, name: &str) {
        if self
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .is_some()
        {
            return;
        }
        let binding = json!({
            "apiVersion": "v1", "kind": "Binding",
            "metadata": { "name": name },
            "target": { "apiVersion": "v1", "kind": "Node", "name": NODE_NAME },
        });
        if let Err(e) = self
            .api
            .create_subresource::<Value, Value>("binding", name, &PostParams::default(), &binding)
            .await
        {
            eprintln!("node: binding {name}: {e}");
        }
    }

    async fn patch_status(&self) {
        let name = self.pod.name_any();
        if let Err(e) = self
            .api
            .patch_status(
                &name,
                &PatchParams::default(),
                &Patch::Merge(self.status.to_patch()),
            )
            .await
        {
            eprintln!("node: status of {name}: {e}");
        }
    }

    /// Posts a core/v1 Event about the pod, as kubelet's recorder does;
    /// the same reason and message once.
    async fn event(&mut self, kind: &str, reason: &str, message: &str) {
        let key = format!("{reason}: {message}");
        if self.posted.contains(&key) {
            return;
        }
        self.posted.push(key);
        let ns = self.pod.namespace().unwrap_or_default();
        let name = self.pod.name_any();
        let event = json!({
            "apiVersion": "v1", "kind": "Event",
            "metadata": { "generateName": format!("{name}."), "namespace": ns },
            "involvedObject": { "apiVersion": "v1", "kind": "Pod", "name": name, "namespace": ns, "uid": self.pod.uid() },
            "reason": reason, "message": message, "type": kind,
            "source": { "component": "kubelet", "host": NODE_NAME },
            "reportingComponent": "kubelet", "reportingInstance": NODE_NAME,
            "firstTimestamp": now(), "lastTimestamp": now(), "count": 1,
        });
        let Ok(event) = serde_json::from_value::<Event>(event) else {
            return;
        };
        let api: Api<Event> = Api::namespaced(self.client.clone(), &ns);
        if let Err(e) = api.create(&PostParams::default(), &event).await {
            eprintln!("node: event on {name}: {e}");
        }
    }

    /// Waits `d`, or less if the signal changes; whether the pod still runs.
    async fn pause(&mut self, d: Duration) -> bool {
        if *self.signal.borrow() != Signal::Run {
            return false;
        }
        let _ = tokio::time::timeout(d, self.signal.changed()).await;
        *self.signal.borrow() == Signal::Run
    }

    /// Volumes, init containers, containers, until the pod is deleted or
    /// the node stops.
    async fn lifecycle(&mut self, spec: &k8s_openapi::api::core::v1::PodSpec) {
        // Volumes: kubelet waits (and retries) until every one mounts.
        let volumes = loop {
            match self
                .mount_volumes(spec.volumes.as_deref().unwrap_or_default())
                .await
            {
                Ok(v) => break v,
                Err(message) => {
                    self.patch_status().await;
                    self.event("Warning", "FailedMount", &message).await;
                    if !self.pause(MOUNT_RETRY).await {
                        return;
                    }
                }
            }
        };
        let policy = spec
            .restart_policy
            .clone()
            .unwrap_or_else(|| "Always".to_owned());
        for (i, c) in spec.init_containers.iter().flatten().enumerate() {
            loop {
                let Some(code) = self.run_to_end(c, &volumes, spec, i, true).await else {
                    return;
                };
                if code == 0 {
                    break;
                }
                if policy == "Never" {
                    self.status.phase = "Failed";
                    self.patch_status().await;
                    return self.wait_for_deletion().await;
                }
                if !self.pause(RESTART_BACKOFF).await {
                    return;
                }
            }
        }
        self.status.initialized = true;
        self.run_containers(spec, &volumes, &policy).await;
    }

    async fn wait_for_deletion(&mut self) {
        while self.pause(Duration::from_secs(3600)).await {}
    }

    /// Runs init container `i` to its end; its exit code, or None when the
    /// pod goes away meanwhile.
    async fn run_to_end(
        &mut self,
        c: &Container,
        volumes: &HashMap<String, PathBuf>,
        spec: &k8s_openapi::api::core::v1::PodSpec,
        i: usize,
        init: bool,
    ) -> Option<i32> {
        let mut child = self.start(c, volumes, spec, i, init).await?;
        let started = now();
        let code = tokio::select! {
            status = child.wait() => status.ok().and_then(|s| s.code()).unwrap_or(-1),
            _ = self.signal.changed() => {
                stop(&mut child, 0).await;
                return None;
            }
        };
        let status = &mut self.status.init[i];
        status.running = false;
        status.state = terminated(code, &started);
        self.patch_status().await;
        Some(code)
    }

    /// Starts container `i` (of the init containers when `init`), waiting
    /// and retrying while its config or image is not there; the process, or
    /// None when the pod goes away meanwhile.
    async fn start(
        &mut self,
        c: &Container,
        volumes: &HashMap<String, PathBuf>,
        spec: &k8s_openapi::api::core::v1::PodSpec,
        i: usize,
        init: bool,
    ) -> Option<tokio::process::Child> {
        loop {
            let attempt = self.command(c, volumes, spec).await;
            let which = if init {
                &mut self.status.init[i]
            } else {
                &mut self.status.main[i]
            };
            match attempt.and_then(|mut cmd| {
                cmd.spawn()
                    .map_err(|e| ("RunContainerError", format!("starting {}: {e}", c.name)))
            }) {
                Ok(child) => {
                    which.running = true;
                    which.state = json!({ "running": { "startedAt": now() } });
                    if !init && self.status.phase == "Pending" {
                        self.status.phase = "Running";
                    }
                    self.patch_status().await;
                    return Some(child);
                }
                Err((reason, message)) => {
                    which.state = json!({ "waiting": { "reason": reason, "message": message } });
                    self.patch_status().await;
                    self.event("Warning", "Failed", &format!("Error: {message}"))
                        .await;
                    if !self.pause(MOUNT_RETRY).await {
                        return None;
                    }
                }
            }
        }
    }

    /// The grace period the pod was deleted with (0 when the node stops).
    fn grace(&self) -> i64 {
        match *self.signal.borrow() {
            Signal::Delete(grace) => grace,
            _ => 0,
        }
    }

    /// Runs the pod's containers, restarting them by `policy`, until the pod
    /// is deleted or the node stops; then stops them.
    async fn run_containers(
        &mut self,
        spec: &k8s_openapi::api::core::v1::PodSpec,
        volumes: &HashMap<String, PathBuf>,
        policy: &str,
    ) {
        let (exited, mut exits) = tokio::sync::mpsc::unbounded_channel();
        let mut live: Vec<Option<Supervised>> = Vec::new();
        for (i, c) in spec.containers.iter().enumerate() {
            let Some(child) = self.start(c, volumes, spec, i, false).await else {
                return stop_live(live, &mut exits, 0).await;
            };
            live.push(Some(supervise(i, child, exited.clone())));
        }
        loop {
            if live.iter().all(Option::is_none) {
                // Every container ended for good.
                let failed = self
                    .status
                    .main
                    .iter()
                    .any(|s| s.state["terminated"]["exitCode"] != 0);
                self.status.phase = if failed { "Failed" } else { "Succeeded" };
                self.patch_status().await;
                return self.wait_for_deletion().await;
            }
            let (i, code) = tokio::select! {
                Some(exit) = exits.recv() => exit,
                _ = self.signal.changed() => {
                    let grace = self.grace();
                    return stop_live(live, &mut exits, grace).await;
                }
            };
            let started = live[i].take().map(|s| s.started).unwrap_or_default();
            let status = &mut self.status.main[i];
            status.running = false;
            status.state = terminated(code, &started);
            self.patch_status().await;
            if !(policy == "Always" || (policy == "OnFailure" && code != 0)) {
                continue;
            }
            let status = &mut self.status.main[i];
            status.last = status.state.clone();
            status.state = json!({ "waiting": { "reason": "CrashLoopBackOff",
                "message": format!("back-off {}s restarting failed container={} pod={}",
                    RESTART_BACKOFF.as_secs(), spec.containers[i].name, self.pod.name_any()) } });
            status.restarts += 1;
            self.patch_status().await;
            if !self.pause(RESTART_BACKOFF).await {
                let grace = self.grace();
                return stop_live(live, &mut exits, grace).await;
            }
            let Some(child) = self
                .start(&spec.containers[i], volumes, spec, i, false)
                .await
            else {
                return stop_live(live, &mut exits, 0).await;
            };
            live[i] = Some(supervise(i, child, exited.clone()));
        }
    }
}

fn terminated(code: i32, started: &str) -> Value {
    json!({ "terminated": {
        "exitCode": code,
        "reason": if code == 0 { "Completed" } else { "Error" },
        "startedAt": started,
        "finishedAt": now(),
    }})
}

/// Stops one process: SIGTERM, then SIGKILL after `grace` seconds.
async fn stop(child: &mut tokio::process::Child, grace: i64) {
    if let Some(pid) = child.id() {
        let _ = tokio::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .await;
    }
    let grace = Duration::from_secs(u64::try_from(grace.clamp(0, 30)).unwrap_or(0));
    if tokio::time::timeout(grace, child.wait()).await.is_err() {
        let _ = child.kill().await;
    }
}

/// A container's process, watched by its own task.
struct Supervised {
    /// Stops the process with this grace period (seconds).
    stop: tokio::sync::oneshot::Sender<i64>,
    started: String,
}

/// Watches container `i`'s process: reports `(i, exit code)` on `exited`
/// when it ends, by itself or stopped.
fn supervise(
    i: usize,
    mut child: tokio::process::Child,
    exited: tokio::sync::mpsc::UnboundedSender<(usize, i32)>,
) -> Supervised {
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let code = tokio::select! {
            status = child.wait() => status.ok().and_then(|s| s.code()).unwrap_or(-1),
            grace = stop_rx => {
                stop(&mut child, grace.unwrap_or(0)).await;
                -1
            }
        };
        let _ = exited.send((i, code));
    });
    Supervised {
        stop: stop_tx,
        started: now(),
    }
}

/// Stops every live container with `grace` and waits until they have.
async fn stop_live(
    live: Vec<Option<Supervised>>,
    exits: &mut tokio::sync::mpsc::UnboundedReceiver<(usize, i32)>,
    grace: i64,
) {
    let mut stopping = 0;
    for s in live.into_iter().flatten() {
        if s.stop.send(grace).is_ok() {
            stopping += 1;
        }
    }
    while stopping > 0 && exits.recv().await.is_some() {
        stopping -= 1;
    }
}
