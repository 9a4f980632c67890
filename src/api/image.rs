//! Docker image references, normalised as Docker does, so that `nginx`,
//! `library/nginx` and `docker.io/library/nginx:latest` name one image.
//! Shared by the allocator's image selectors and the plugin's ops.

use std::fmt;

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
    /// Parses and normalises `image`.
    pub fn parse(image: &str) -> Self {
        let image = image.trim();
        let (rest, digest) = match image.split_once('@') {
            Some((rest, digest)) => (rest, Some(digest.to_owned())),
            None => (image, None),
        };
        let (name, tag) = match rest.rfind(':') {
            Some(i) if !rest[i + 1..].contains('/') => (&rest[..i], Some(rest[i + 1..].to_owned())),
            _ => (rest, None),
        };
        let (domain, path) = match name.split_once('/') {
            Some((first, path))
                if first.contains('.')
                    || first.contains(':')
                    || first == "localhost"
                    || first.chars().any(|c| c.is_ascii_uppercase()) =>
            {
                (first.to_ascii_lowercase(), path)
            }
            _ => ("docker.io".to_owned(), name),
        };
        let domain = if domain == "index.docker.io" {
            "docker.io".to_owned()
        } else {
            domain
        };
        let path = if domain == "docker.io" && !path.contains('/') {
            format!("library/{path}")
        } else {
            path.to_owned()
        };
        let tag = match (tag, &digest) {
            (None, None) => Some("latest".to_owned()),
            (tag, _) => tag,
        };
        Self {
            name: format!("{domain}/{path}"),
            tag,
            digest,
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

impl ImageRef {
    /// The image a container runs, from its status: `image` with the
    /// digest of `image_id` (`repo@sha256:…`, as kubelet reports it, any
    /// `docker-pullable://` scheme aside) when `image` has none and the
    /// digest is of the same repository. A bare `sha256:…` image id is the
    /// image's config id, not a registry digest, and is ignored.
    pub fn running(image: &str, image_id: &str) -> Self {
        let mut running = Self::parse(image);
        if running.digest.is_none() {
            let id = image_id
                .trim()
                .split_once("://")
                .map_or(image_id.trim(), |(_, rest)| rest);
            if let Some((repo, digest)) = id.split_once('@')
                && !repo.is_empty()
                && Self::parse(repo).name == running.name
            {
                running.digest = Some(digest.to_owned());
            }
        }
        running
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
        );
        assert_eq!(running.digest.as_deref(), Some("sha256:abc"));
        assert!(ImageRef::parse("registry.example.com/mc:1.12.2").same_image(&running));
        assert!(ImageRef::parse("registry.example.com/mc@sha256:abc").same_image(&running));
        assert!(!ImageRef::parse("registry.example.com/mc@sha256:def").same_image(&running));
        assert!(!ImageRef::parse("registry.example.com/mc:1.12.3").same_image(&running));
        // Digest-only running image: known tag and digest both in the reference.
        let pinned = ImageRef::running("nginx@sha256:abc", "");
        assert!(ImageRef::parse("nginx:1.25@sha256:abc").same_image(&pinned));
        // A config id, or another repository's digest, is not this image's digest.
        assert_eq!(ImageRef::running("nginx:1.25", "sha256:abc").digest, None);
        assert_eq!(
            ImageRef::running("nginx:1.25", "docker.io/library/redis@sha256:abc").digest,
            None
        );
        assert_eq!(
            ImageRef::running("nginx:1.25", "docker.io/library/nginx@sha256:abc")
                .digest
                .as_deref(),
            Some("sha256:abc")
        );
    }
}
