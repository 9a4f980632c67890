//! How the node makes a container of a pod: its volumes (Secret,
//! ConfigMap, emptyDir, as kubelet's volume plugins write them), its env (as
//! kubelet resolves `env`, `envFrom` and the downward API) and its process
//! (the image's binary in a private mount namespace, as the pod's user).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{Container, Volume};
use kube::ResourceExt;
use kube::api::Api;

use super::{NODE_NAME, PodRun};

impl PodRun {
    /// The data of Secret (`secret`) or ConfigMap `name` in the pod's
    /// namespace, None when it does not exist.
    async fn object_data(
        &self,
        secret: bool,
        name: &str,
    ) -> Result<Option<BTreeMap<String, Vec<u8>>>, String> {
        use k8s_openapi::api::core::v1::{ConfigMap, Secret};
        let ns = self.pod.namespace().unwrap_or_default();
        let found = if secret {
            let api: Api<Secret> = Api::namespaced(self.client.clone(), &ns);
            api.get_opt(name).await.map(|s| {
                s.map(|s| {
                    s.data
                        .unwrap_or_default()
                        .into_iter()
                        .map(|(k, v)| (k, v.0))
                        .collect()
                })
            })
        } else {
            let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), &ns);
            api.get_opt(name).await.map(|m| {
                m.map(|m| {
                    let text = m.data.unwrap_or_default().into_iter();
                    let binary = m.binary_data.unwrap_or_default().into_iter();
                    text.map(|(k, v)| (k, v.into_bytes()))
                        .chain(binary.map(|(k, v)| (k, v.0)))
                        .collect()
                })
            })
        };
        found.map_err(|e| e.to_string())
    }

    /// Writes the pod's volumes under its folder; their folders by name, or
    /// kubelet's FailedMount message for the first that cannot be mounted.
    pub(super) async fn mount_volumes(
        &self,
        volumes: &[Volume],
    ) -> Result<HashMap<String, PathBuf>, String> {
        use std::os::unix::fs::PermissionsExt;
        let mut mounted = HashMap::new();
        for v in volumes {
            let dir = self.dir.join("volumes").join(&v.name);
            let failed =
                |why: String| format!("MountVolume.SetUp failed for volume \"{}\" : {why}", v.name);
            std::fs::create_dir_all(&dir).map_err(|e| failed(e.to_string()))?;
            if v.empty_dir.is_some() {
                let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777));
                mounted.insert(v.name.clone(), dir);
                continue;
            }
            let (kind, name, optional, mode, items) = match (&v.secret, &v.config_map) {
                (Some(s), _) => {
                    let name = s.secret_name.clone().unwrap_or_default();
                    ("secret", name, s.optional, s.default_mode, s.items.clone())
                }
                (None, Some(m)) => (
                    "configmap",
                    m.name.clone(),
                    m.optional,
                    m.default_mode,
                    m.items.clone(),
                ),
                (None, None) => {
                    return Err(failed(
                        "this node mounts only Secret, ConfigMap and emptyDir volumes".to_owned(),
                    ));
                }
            };
            let files = match self
                .object_data(kind == "secret", &name)
                .await
                .map_err(&failed)?
            {
                Some(files) => files,
                None if optional == Some(true) => BTreeMap::new(),
                None => return Err(failed(format!("{kind} \"{name}\" not found"))),
            };
            let mode = mode.unwrap_or(0o644);
            // `items` picks keys and their paths; a missing key fails.
            let files: Vec<(String, Vec<u8>, i32)> = match items {
                Some(items) => {
                    let mut picked = Vec::new();
                    for item in items {
                        let Some(data) = files.get(&item.key) else {
                            return Err(failed(format!("key \"{}\" not found", item.key)));
                        };
                        picked.push((item.path, data.clone(), item.mode.unwrap_or(mode)));
                    }
                    picked
                }
                None => files.into_iter().map(|(k, d)| (k, d, mode)).collect(),
            };
            let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755));
            for (path, data, mode) in files {
                let file = dir.join(&path);
                if let Some(parent) = file.parent() {
                    std::fs::create_dir_all(parent).map_err(|e| failed(e.to_string()))?;
                }
                std::fs::write(&file, data).map_err(|e| failed(e.to_string()))?;
                let mode = u32::try_from(mode).unwrap_or(0o644);
                let _ = std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode));
            }
            mounted.insert(v.name.clone(), dir);
        }
        Ok(mounted)
    }

    /// The container's env, as kubelet resolves it: the service env, then
    /// `envFrom`, then `env` (later names win).
    async fn env(
        &self,
        c: &Container,
        spec: &k8s_openapi::api::core::v1::PodSpec,
    ) -> Result<Vec<(String, String)>, String> {
        let port = &self.setup.service_port;
        let mut env: BTreeMap<String, String> = [
            (
                "PATH",
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            ),
            ("HOSTNAME", &self.pod.name_any()),
            ("KUBERNETES_SERVICE_HOST", &self.setup.service_host),
            ("KUBERNETES_SERVICE_PORT", port),
            ("KUBERNETES_SERVICE_PORT_HTTPS", port),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let text = |data: BTreeMap<String, Vec<u8>>| -> BTreeMap<String, String> {
            data.into_iter()
                .map(|(k, v)| (k, String::from_utf8_lossy(&v).into_owned()))
                .collect()
        };
        for from in c.env_from.iter().flatten() {
            let prefix = from.prefix.clone().unwrap_or_default();
            let (kind, name, optional) = match (&from.secret_ref, &from.config_map_ref) {
                (Some(s), _) => ("secret", s.name.clone(), s.optional),
                (None, Some(m)) => ("configmap", m.name.clone(), m.optional),
                (None, None) => continue,
            };
            match self.object_data(kind == "secret", &name).await? {
                Some(values) => env.extend(
                    text(values)
                        .into_iter()
                        .map(|(k, v)| (format!("{prefix}{k}"), v)),
                ),
                None if optional == Some(true) => {}
                None => return Err(format!("{kind} \"{name}\" not found")),
            }
        }
        for e in c.env.iter().flatten() {
            let Some(from) = &e.value_from else {
                env.insert(e.name.clone(), e.value.clone().unwrap_or_default());
                continue;
            };
            let (kind, label, name, key, optional) =
                match (&from.secret_key_ref, &from.config_map_key_ref) {
                    (Some(r), _) => ("secret", "Secret", &r.name, &r.key, r.optional),
                    (None, Some(r)) => ("configmap", "ConfigMap", &r.name, &r.key, r.optional),
                    (None, None) => {
                        let Some(r) = &from.field_ref else {
                            return Err(format!(
                                "env {}: valueFrom names no source this node resolves",
                                e.name
                            ));
                        };
                        env.insert(e.name.clone(), self.field(&r.field_path, spec)?);
                        continue;
                    }
                };
            let ns = self.pod.namespace().unwrap_or_default();
            match self.object_data(kind == "secret", name).await?.map(text) {
                Some(values) => match values.get(key) {
                    Some(v) => {
                        env.insert(e.name.clone(), v.clone());
                    }
                    None if optional == Some(true) => {}
                    None => return Err(format!("couldn't find key {key} in {label} {ns}/{name}")),
                },
                None if optional == Some(true) => {}
                None => return Err(format!("{kind} \"{name}\" not found")),
            }
        }
        Ok(env.into_iter().collect())
    }

    /// A `fieldRef`'s value (the downward API).
    fn field(
        &self,
        path: &str,
        spec: &k8s_openapi::api::core::v1::PodSpec,
    ) -> Result<String, String> {
        Ok(match path {
            "metadata.name" => self.pod.name_any(),
            "metadata.namespace" => self.pod.namespace().unwrap_or_default(),
            "metadata.uid" => self.pod.uid().unwrap_or_default(),
            "spec.serviceAccountName" => spec.service_account_name.clone().unwrap_or_default(),
            "spec.nodeName" => NODE_NAME.to_owned(),
            "status.podIP" | "status.hostIP" => "127.0.0.1".to_owned(),
            other => return Err(format!("unsupported fieldRef {other}")),
        })
    }

    /// The process for container `c`: its image's binary, in a private
    /// mount namespace with the pod's volumes, as the pod's user. On error,
    /// kubelet's waiting reason and message.
    pub(super) async fn command(
        &self,
        c: &Container,
        volumes: &HashMap<String, PathBuf>,
        spec: &k8s_openapi::api::core::v1::PodSpec,
    ) -> Result<tokio::process::Command, (&'static str, String)> {
        let image = c.image.clone().unwrap_or_default();
        let Some(binary) = self.setup.images.get(&image) else {
            return Err((
                "ErrImagePull",
                format!("image \"{image}\" is not on this node"),
            ));
        };
        // The image is its binary: a `command` must name it.
        if let Some(first) = c.command.as_ref().and_then(|c| c.first())
            && Path::new(first).file_name() != binary.file_name()
        {
            return Err((
                "RunContainerError",
                format!("exec: \"{first}\": executable file not found in $PATH"),
            ));
        }
        let mut argv: Vec<String> = c.command.iter().flatten().skip(1).cloned().collect();
        argv.extend(c.args.iter().flatten().cloned());
        let env = self
            .env(c, spec)
            .await
            .map_err(|m| ("CreateContainerConfigError", m))?;
        let mounts = mounts(c, volumes).map_err(|m| ("CreateContainerConfigError", m))?;
        let sc = c.security_context.as_ref();
        let psc = spec.security_context.as_ref();
        let uid = sc
            .and_then(|s| s.run_as_user)
            .or_else(|| psc.and_then(|s| s.run_as_user))
            .unwrap_or(0);
        let gid = sc
            .and_then(|s| s.run_as_group)
            .or_else(|| psc.and_then(|s| s.run_as_group))
            .unwrap_or(0);
        let logs = self.setup.state.join("logs");
        let log_path = logs.join(format!(
            "{}_{}_{}.log",
            self.pod.namespace().unwrap_or_default(),
            self.pod.name_any(),
            c.name
        ));
        let open = || -> std::io::Result<(std::fs::File, std::fs::File)> {
            std::fs::create_dir_all(&logs)?;
            let log = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log_path)?;
            let err = log.try_clone()?;
            Ok((log, err))
        };
        let (log, err) = open().map_err(|e| ("RunContainerError", e.to_string()))?;
        let mut cmd = tokio::process::Command::new("unshare");
        cmd.args([
            "--mount",
            "--propagation",
            "private",
            "--",
            "sh",
            "-c",
            SCRIPT,
            "sh",
        ])
        .args(&mounts)
        .arg("--")
        .args([
            "setpriv",
            &format!("--reuid={uid}"),
            &format!("--regid={gid}"),
            "--clear-groups",
            "--",
        ])
        .arg(binary)
        .args(&argv)
        .env_clear()
        .envs(env)
        .stdin(std::process::Stdio::null())
        .stdout(log)
        .stderr(err)
        .kill_on_drop(true);
        Ok(cmd)
    }
}

/// The `TARGET SOURCE ro|rw` triples of container `c`'s volume mounts, for
/// `SCRIPT`: each volume's folder (or its `subPath`, created when missing as
/// kubelet does, kubelet_pods.go `makeMounts`) at its `mountPath` under the
/// container's private `/run`.
fn mounts(c: &Container, volumes: &HashMap<String, PathBuf>) -> Result<Vec<String>, String> {
    let mut triples = Vec::new();
    for m in c.volume_mounts.iter().flatten() {
        let Some(dir) = volumes.get(&m.name) else {
            return Err(format!(
                "volume \"{}\" is not among the pod's volumes",
                m.name
            ));
        };
        let source = match m.sub_path.as_deref().filter(|p| !p.is_empty()) {
            Some(sub) => {
                let source = dir.join(sub);
                std::fs::create_dir_all(&source).map_err(|e| e.to_string())?;
                source
            }
            None => dir.clone(),
        };
        let target = m
            .mount_path
            .strip_prefix("/var/run")
            .map_or_else(|| m.mount_path.clone(), |rest| format!("/run{rest}"));
        if !target.starts_with("/run/") {
            return Err(format!(
                "mountPath {} is outside /run, which this node keeps private per container",
                m.mount_path
            ));
        }
        let mode = if m.read_only == Some(true) {
            "ro"
        } else {
            "rw"
        };
        triples.extend([
            target,
            source.to_string_lossy().into_owned(),
            mode.to_owned(),
        ]);
    }
    Ok(triples)
}

/// What runs in a container's new mount namespace before its binary: a
/// private `/run`, then each `TARGET SOURCE ro|rw` triple bound until `--`,
/// then the rest of the arguments exec'd.
const SCRIPT: &str = r#"set -e
mount -t tmpfs -o mode=0755 tmpfs /run
while [ "$1" != "--" ]; do
  mkdir -p "$1"
  if [ "$3" = ro ]; then mount --bind -o ro "$2" "$1"; else mount --bind "$2" "$1"; fi
  shift 3
done
shift
cd /
exec "$@""#;
