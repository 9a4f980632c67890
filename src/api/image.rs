//! Image references and the one definition of the image a server runs.
//!
//! References are parsed by [`oci_client::Reference`] and normalised as
//! Docker does, so that `nginx`, `library/nginx` and
//! `docker.io/library/nginx:latest` name one image. What a server runs is
//! what kubelet reports per container name in
//! `status.containerStatuses[].image`/`imageID` (OKG copies the pod's
//! status to the GameServer's `status.podStatus`), never the spec, which may
//! already name a newer image. Shared by the allocator's image selectors,
//! the plugin's ops and the simulator.

use std::fmt;

use k8s_openapi::api::core::v1::ContainerStatus;
use oci_client::Reference;

use super::{GameServer, GameServerStatus};

/// A well-formed digest put in place of the real one while parsing: the
/// real one is kept as written (a status may report a short or unusual
/// digest, which [`Reference`] refuses), and with a digest present
/// [`Reference`] sets a tag only when one is written.
const ANY_DIGEST: &str = "sha256:0000000000000000000000000000000000000000000000000000000000000000";

/// A Docker image reference, normalised as Docker does: `nginx` is
/// `docker.io/library/nginx:latest`; a reference with a digest keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageRef {
    /// Registry and repository, e.g. `docker.io/library/nginx`.
    pub name: String,
    /// The tag (`latest` when neither a tag nor a digest is given).
    pub tag: Option<String>,
    /// The digest, e.g. `sha256:…`.
    pub digest: Option<String>,
}

impl ImageRef {
    /// Parses and normalises `image`; what [`Reference`] refuses (an
    /// upper-case repository, say) is kept as written, so that it equals
    /// only itself.
    pub fn parse(image: &str) -> Self {
        let image = image.trim();
        let (rest, digest) = match image.split_once('@') {
            Some((rest, digest)) => (rest, Some(digest.to_owned())),
            None => (image, None),
        };
        let parsed = match digest {
            Some(_) => Reference::try_from(format!("{rest}@{ANY_DIGEST}")),
            None => Reference::try_from(rest),
        };
        match parsed {
            Ok(r) => Self {
                name: format!("{}/{}", r.registry(), r.repository()),
                tag: r.tag().map(str::to_owned),
                digest,
            },
            Err(_) => Self {
                name: rest.to_owned(),
                tag: None,
                digest,
            },
        }
    }

    /// Whether both name the same image: the same repository and, when both
    /// carry a digest, the same digest, otherwise the same tag.
    pub fn same_image(&self, other: &Self) -> bool {
        if self.name != other.name {
            return false;
        }
        match (&self.digest, &other.digest) {
            (Some(a), Some(b)) => a == b,
            _ => self.tag == other.tag,
        }
    }

    /// Whether `running` (what a container reports) is this image: `Some`
    /// when that can be told, `None` when it cannot: the same repository,
    /// but one side known only by digest and the other only by tag (a
    /// runtime that reports `sha256:…` for a container started from a tag).
    pub fn compare(&self, running: &Self) -> Option<bool> {
        if self.name != running.name {
            return Some(false);
        }
        match (&self.digest, &running.digest, &self.tag, &running.tag) {
            (Some(a), Some(b), _, _) => Some(a == b),
            (None, Some(_), Some(_), None) | (Some(_), None, None, Some(_)) => None,
            _ => Some(self.tag == running.tag),
        }
    }

    /// The image a container runs, from its status: `image` with the
    /// digest of `image_id` (`repo@sha256:…`, as kubelet reports it, any
    /// `docker-pullable://` scheme aside) when `image` has none and the
    /// digest is of the same repository. A bare `sha256:…` image id is the
    /// image's config id, not a registry digest, and is ignored.
    ///
    /// Some runtimes report `image` as the bare image id (`sha256:…`, e.g.
    /// containerd when one image has several tags; kubernetes/kubernetes
    /// issue 51017): the repository and digest are then read from
    /// `image_id`, and without a `repo@digest` there the image is not known
    /// (`None`).
    pub fn running(image: &str, image_id: &str) -> Option<Self> {
        let id = image_id
            .trim()
            .split_once("://")
            .map_or(image_id.trim(), |(_, rest)| rest);
        let repo_digest = id.split_once('@').filter(|(repo, _)| !repo.is_empty());
        if is_bare_id(image) {
            let (repo, digest) = repo_digest?;
            let mut running = Self::parse(repo);
            running.tag = None;
            running.digest = Some(digest.to_owned());
            return Some(running);
        }
        let mut running = Self::parse(image);
        if running.digest.is_none()
            && let Some((repo, digest)) = repo_digest
            && Self::parse(repo).name == running.name
        {
            running.digest = Some(digest.to_owned());
        }
        Some(running)
    }
}

/// Whether `image` is a bare image id (`sha256:<hex>`, or the hex alone)
/// rather than a reference.
fn is_bare_id(image: &str) -> bool {
    let hex = image.trim();
    let hex = hex.strip_prefix("sha256:").unwrap_or(hex);
    hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit())
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

/// `image` in its fully qualified form (`nginx` → `docker.io/library/nginx:latest`).
pub fn normalise_image(image: &str) -> String {
    ImageRef::parse(image).to_string()
}

/// Whether two image references name the same image once normalised.
pub fn images_match(a: &str, b: &str) -> bool {
    ImageRef::parse(a).same_image(&ImageRef::parse(b))
}

/// The repository of `image` as written, without tag or digest
/// (`nginx:1.2` → `nginx`), as kubelet names it in an `imageID`.
pub fn repository_as_written(image: &str) -> &str {
    let image = image.trim();
    let rest = image.split_once('@').map_or(image, |(rest, _)| rest);
    ImageRef::parse(image)
        .tag
        .and_then(|tag| {
            rest.strip_suffix(tag.as_str())?
                .strip_suffix(':')
                .map(str::len)
        })
        .map_or(rest, |len| &rest[..len])
}

/// The container statuses of a server, as kubelet lists them (by name).
fn container_statuses(status: &GameServerStatus) -> impl Iterator<Item = &ContainerStatus> {
    status
        .pod_status
        .iter()
        .flat_map(|p| p.container_statuses.iter().flatten())
}

/// The image container `container` runs as its status reports it
/// (`containerStatuses[name].image`, as written).
pub fn reported_image<'a>(status: &'a GameServerStatus, container: &str) -> Option<&'a str> {
    container_statuses(status)
        .find(|c| c.name == container)
        .map(|c| c.image.as_str())
}

impl GameServer {
    /// The images the server's containers run, by container name, as their
    /// statuses report them (with the registry digest of each `imageID`).
    pub fn running_images(&self) -> Vec<(&str, ImageRef)> {
        self.status
            .iter()
            .flat_map(container_statuses)
            .filter(|c| !c.image.is_empty())
            .filter_map(|c| Some((c.name.as_str(), ImageRef::running(&c.image, &c.image_id)?)))
            .collect()
    }

    /// Whether any container of the server runs `image`.
    pub fn runs_image(&self, image: &ImageRef) -> bool {
        self.running_images()
            .iter()
            .any(|(_, running)| image.compare(running) == Some(true))
    }

    /// The image of the first container status (kubelet lists them by
    /// name; a one-container server's image), as written, for display.
    pub fn running_image(&self) -> Option<&str> {
        container_statuses(self.status.as_ref()?)
            .next()
            .map(|c| c.image.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_are_normalised_like_docker() {
        for (raw, full) in [
            ("nginx", "docker.io/library/nginx:latest"),
            ("nginx:1.25", "docker.io/library/nginx:1.25"),
            ("library/nginx", "docker.io/library/nginx:latest"),
            ("docker.io/nginx", "docker.io/library/nginx:latest"),
            (
                "index.docker.io/library/nginx:1",
                "docker.io/library/nginx:1",
            ),
            ("bitnami/redis:7", "docker.io/bitnami/redis:7"),
            ("localhost/app", "localhost/app:latest"),
            ("localhost:5000/app:v2", "localhost:5000/app:v2"),
            (
                "registry.cn-hangzhou.aliyuncs.com/acs/minecraft-demo:1.12.2",
                "registry.cn-hangzhou.aliyuncs.com/acs/minecraft-demo:1.12.2",
            ),
            ("nginx@sha256:abc", "docker.io/library/nginx@sha256:abc"),
            (
                "nginx:1.25@sha256:abc",
                "docker.io/library/nginx:1.25@sha256:abc",
            ),
            (" ghcr.io/o/r ", "ghcr.io/o/r:latest"),
        ] {
            assert_eq!(normalise_image(raw), full, "{raw}");
        }
    }

    #[test]
    fn images_match_after_normalisation_only_when_the_same() {
        assert!(images_match("nginx", "docker.io/library/nginx:latest"));
        assert!(images_match(
            "nginx:latest",
            "index.docker.io/library/nginx"
        ));
        assert!(images_match("nginx:1.25", "nginx:1.25@sha256:abc"));
        assert!(images_match("nginx@sha256:abc", "nginx:1.24@sha256:abc"));
        assert!(!images_match("nginx@sha256:abc", "nginx@sha256:def"));
        assert!(!images_match("nginx", "nginx:1.25"));
        assert!(!images_match("nginx@sha256:abc", "nginx:latest"));
        assert!(!images_match("nginx", "ghcr.io/library/nginx"));
        assert!(!images_match("foo/nginx", "nginx"));
    }

    #[test]
    fn a_running_digest_matches_its_tag_and_its_digest() {
        let running = ImageRef::running(
            "registry.example.com/mc:1.12.2",
            "docker-pullable://registry.example.com/mc@sha256:abc",
        )
        .unwrap();
        assert_eq!(running.digest.as_deref(), Some("sha256:abc"));
        assert!(ImageRef::parse("registry.example.com/mc:1.12.2").same_image(&running));
        assert!(ImageRef::parse("registry.example.com/mc@sha256:abc").same_image(&running));
        assert!(!ImageRef::parse("registry.example.com/mc@sha256:def").same_image(&running));
        assert!(!ImageRef::parse("registry.example.com/mc:1.12.3").same_image(&running));
        // Digest-only running image: known tag and digest both in the reference.
        let pinned = ImageRef::running("nginx@sha256:abc", "").unwrap();
        assert!(ImageRef::parse("nginx:1.25@sha256:abc").same_image(&pinned));
        // A config id, or another repository's digest, is not this image's digest.
        assert_eq!(
            ImageRef::running("nginx:1.25", "sha256:abc")
                .unwrap()
                .digest,
            None
        );
        assert_eq!(
            ImageRef::running("nginx:1.25", "docker.io/library/redis@sha256:abc")
                .unwrap()
                .digest,
            None
        );
        assert_eq!(
            ImageRef::running("nginx:1.25", "docker.io/library/nginx@sha256:abc")
                .unwrap()
                .digest
                .as_deref(),
            Some("sha256:abc")
        );
    }

    #[test]
    fn a_bare_image_id_is_read_from_the_image_id_or_not_known() {
        // containerd reports `image: sha256:<id>` for some tagged images
        // (kubernetes/kubernetes#51017); the imageID still names repo@digest.
        let id = format!("sha256:{}", "a".repeat(64));
        let running = ImageRef::running(&id, "docker.io/library/nginx@sha256:abc").unwrap();
        assert_eq!(running.name, "docker.io/library/nginx");
        assert_eq!(running.digest.as_deref(), Some("sha256:abc"));
        assert_eq!(
            ImageRef::parse("nginx@sha256:abc").compare(&running),
            Some(true)
        );
        assert_eq!(
            ImageRef::parse("nginx@sha256:def").compare(&running),
            Some(false)
        );
        assert_eq!(
            ImageRef::parse("nginx:1.25").compare(&running),
            None,
            "cannot tell a tag from a digest"
        );
        assert_eq!(ImageRef::parse("redis:7").compare(&running), Some(false));
        assert_eq!(
            ImageRef::running(&id, &id),
            None,
            "no repository anywhere: not known"
        );
    }

    #[test]
    fn the_repository_as_written_drops_tag_and_digest() {
        assert_eq!(repository_as_written("nginx:1.2"), "nginx");
        assert_eq!(repository_as_written("host:5000/app"), "host:5000/app");
        assert_eq!(repository_as_written("host:5000/app:v1"), "host:5000/app");
        assert_eq!(repository_as_written("a@sha256:00"), "a");
        assert_eq!(repository_as_written("nginx"), "nginx");
    }

    fn server(statuses: &[(&str, &str, &str)]) -> GameServer {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "game.kruise.io/v1alpha1", "kind": "GameServer",
            "metadata": {"name": "s-0"},
            "spec": {"containers": [{"name": "main", "image": "spec:9"}]},
            "status": {"podStatus": {"containerStatuses": statuses.iter().map(|(name, image, id)| serde_json::json!({
                "name": name, "image": image, "imageID": id, "ready": true, "restartCount": 0,
            })).collect::<Vec<_>>()}},
        }))
        .unwrap_or_default()
    }

    /// kubelet lists container statuses sorted by name, so a sidecar may
    /// come first: a server runs the image of every container, by name,
    /// with the digest of its imageID, and never the spec's.
    #[test]
    fn a_server_runs_each_containers_reported_image() {
        let gs = server(&[
            ("a-sidecar", "envoy:1", ""),
            ("main", "game:2", "docker.io/library/game@sha256:abc"),
        ]);
        assert_eq!(gs.running_image(), Some("envoy:1"));
        assert!(gs.runs_image(&ImageRef::parse("game:2")));
        assert!(gs.runs_image(&ImageRef::parse("game@sha256:abc")));
        assert!(gs.runs_image(&ImageRef::parse("docker.io/library/envoy:1")));
        assert!(!gs.runs_image(&ImageRef::parse("spec:9")));
        let status = gs.status.as_ref().expect("status");
        assert_eq!(reported_image(status, "main"), Some("game:2"));
        assert_eq!(reported_image(status, "nope"), None);
        assert_eq!(server(&[]).running_image(), None);
    }
}
