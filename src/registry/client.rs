//! The registry client: the OCI distribution API through the `oci-client`
//! crate (the token flow, manifest HEAD for digests, manifest pull and
//! push), plus the one thing that crate does not do: following the tag
//! list's `Link` header page after page until the end.
//!
//! Every request is retried with backoff on 429, 5xx and timeouts (honouring
//! `Retry-After`); a 401 gets the registry's token flow once.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::manifest;
use oci_client::secrets::RegistryAuth;
use oci_client::{Reference, RegistryOperation};
use reqwest::StatusCode;
use reqwest::header::{HeaderValue, LINK, RETRY_AFTER, WWW_AUTHENTICATE};
use tokio::sync::Mutex;

use crate::registry::config::{Config, Credentials};

/// Tags asked for per page.
const PAGE: usize = 1000;
/// Attempts per request (the first and the retries).
const ATTEMPTS: u32 = 5;
/// The first backoff; doubled each retry.
const BACKOFF: Duration = Duration::from_millis(200);
/// The longest `Retry-After` honoured.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(10);
/// One request's time limit.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// A guard against a registry whose `Link` never ends.
const MAX_PAGES: usize = 100_000;

/// The manifest media types gameops reads: OCI index and manifest, Docker
/// manifest list and manifest.
pub const MANIFEST_TYPES: &[&str] = &[
    manifest::OCI_IMAGE_INDEX_MEDIA_TYPE,
    manifest::IMAGE_MANIFEST_LIST_MEDIA_TYPE,
    manifest::OCI_IMAGE_MEDIA_TYPE,
    manifest::IMAGE_MANIFEST_MEDIA_TYPE,
];

/// Why a registry request failed.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The registry could not be reached or kept failing (Flux retries).
    #[error("registry {host} is unavailable: {reason}")]
    Unavailable {
        /// The registry.
        host: String,
        /// The last failure.
        reason: String,
    },
    /// Credentials missing or refused.
    #[error(
        "registry {host} refused the credentials for {repository} ({reason}): set registries[].auth for {host} in gameops.yaml"
    )]
    Unauthorized {
        /// The registry.
        host: String,
        /// The repository.
        repository: String,
        /// What it said.
        reason: String,
    },
    /// No such repository, tag or digest.
    #[error("{what} does not exist in the registry")]
    NotFound {
        /// `repository:tag`.
        what: String,
    },
    /// Anything else the registry refused or sent that makes no sense.
    #[error("registry {host}: {reason}")]
    Refused {
        /// The registry.
        host: String,
        /// What happened.
        reason: String,
    },
    /// A repository or tag that cannot form a reference.
    #[error("{0:?} is not a valid image reference")]
    Reference(String),
    /// HTTPS was tried on a registry that speaks plain HTTP.
    #[error(
        "registry {host} speaks plain HTTP, not HTTPS: add `insecure: true` for {host} under registries in gameops.yaml (gameops resolve: --insecure)"
    )]
    PlainHttp {
        /// The registry.
        host: String,
    },
    /// The HTTP client could not be built.
    #[error("cannot set up the registry client: {0}")]
    Setup(String),
}

impl RegistryError {
    /// Whether trying again later may help.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unavailable { .. })
    }
}

/// The client, shared by every caller.
pub struct RegistryClient {
    config: Arc<Config>,
    oci: oci_client::Client,
    http: reqwest::Client,
    /// Bearer tokens from the token flow, by repository.
    tokens: Mutex<HashMap<String, String>>,
    requests: AtomicU64,
}

impl std::fmt::Debug for RegistryClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryClient")
            .field("requests", &self.requests)
            .finish_non_exhaustive()
    }
}

/// A step of a retried request.
enum Attempt<T> {
    Done(T),
    /// Transient: wait (at least this long, if the registry said) and retry.
    Again(String, Option<Duration>),
    Fail(RegistryError),
}

fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let secs: u64 = headers
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(secs).min(MAX_RETRY_AFTER))
}

/// The next page's path and query from a `Link: <…>; rel="next"` header.
fn next_link(headers: &reqwest::header::HeaderMap) -> Option<String> {
    headers
        .get_all(LINK)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .find(|part| {
            part.split(';')
                .skip(1)
                .any(|p| p.trim().trim_matches('"') == "rel=next" || p.trim() == "rel=\"next\"")
        })
        .and_then(|part| {
            let url = part.split(';').next()?.trim();
            Some(url.strip_prefix('<')?.strip_suffix('>')?.to_owned())
        })
}

/// What one tag-list page's answer means: the page (and the next page's
/// link), a transient failure to retry, or a final refusal.
fn page_attempt(
    status: StatusCode,
    headers: &reqwest::header::HeaderMap,
    body: bytes::Bytes,
    host: &str,
    repository: &str,
) -> Attempt<(bytes::Bytes, Option<String>)> {
    match status {
        s if s.is_success() => Attempt::Done((body, next_link(headers))),
        StatusCode::TOO_MANY_REQUESTS => {
            Attempt::Again("HTTP 429 Too Many Requests".into(), retry_after(headers))
        }
        s if s.is_server_error() => Attempt::Again(format!("HTTP {s}"), retry_after(headers)),
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
            Attempt::Fail(RegistryError::Unauthorized {
                host: host.to_owned(),
                repository: repository.to_owned(),
                reason: format!("HTTP {status}"),
            })
        }
        StatusCode::NOT_FOUND => Attempt::Fail(RegistryError::NotFound {
            what: format!("repository {repository}"),
        }),
        s => Attempt::Fail(RegistryError::Refused {
            host: host.to_owned(),
            reason: format!(
                "listing the tags of {repository} got HTTP {s}: {}",
                String::from_utf8_lossy(&body)
                    .chars()
                    .take(200)
                    .collect::<String>()
            ),
        }),
    }
}

impl RegistryClient {
    /// A client for `config`'s registries.
    pub fn new(config: Arc<Config>) -> Result<Self, RegistryError> {
        let insecure: Vec<String> = config
            .registries
            .values()
            .filter(|r| r.insecure)
            .map(|r| r.host.clone())
            .collect();
        let oci = oci_client::Client::try_from(ClientConfig {
            protocol: ClientProtocol::HttpsExcept(insecure),
            read_timeout: Some(REQUEST_TIMEOUT),
            connect_timeout: Some(Duration::from_secs(10)),
            user_agent: concat!("gameops/", env!("CARGO_PKG_VERSION")),
            ..Default::default()
        })
        .map_err(|e| RegistryError::Setup(e.to_string()))?;
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .user_agent(concat!("gameops/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| RegistryError::Setup(e.to_string()))?;
        Ok(Self {
            config,
            oci,
            http,
            tokens: Mutex::default(),
            requests: AtomicU64::new(0),
        })
    }

    /// Requests this client sent itself (tag pages); the `oci-client`
    /// requests are not counted.
    pub fn tag_list_requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    fn auth(&self, host: &str) -> RegistryAuth {
        match self.config.registry(host).credentials {
            Credentials::Anonymous => RegistryAuth::Anonymous,
            Credentials::Basic(u, p) => RegistryAuth::Basic(u, p),
            Credentials::Bearer(t) => RegistryAuth::Bearer(t),
        }
    }

    /// What a call on `repository:tag_or_digest` needs: the reference, its
    /// host's credentials, and its name for messages.
    fn target(
        &self,
        repository: &str,
        tag_or_digest: &str,
    ) -> Result<(Reference, RegistryAuth, String), RegistryError> {
        let reference = Self::reference(repository, tag_or_digest)?;
        let auth = self.auth(reference.registry());
        Ok((reference, auth, format!("{repository}:{tag_or_digest}")))
    }

    fn reference(repository: &str, tag_or_digest: &str) -> Result<Reference, RegistryError> {
        let text = if tag_or_digest.contains(':') {
            format!("{repository}@{tag_or_digest}")
        } else {
            format!("{repository}:{tag_or_digest}")
        };
        text.parse()
            .map_err(|_| RegistryError::Reference(text.clone()))
    }

    /// Runs `step` until it is done, retrying transient failures with
    /// exponential backoff.
    async fn retried<T, F, Fut>(&self, host: &str, mut step: F) -> Result<T, RegistryError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Attempt<T>>,
    {
        let mut backoff = BACKOFF;
        let mut last = String::new();
        for attempt in 1..=ATTEMPTS {
            match step().await {
                Attempt::Done(v) => return Ok(v),
                Attempt::Fail(e) => return Err(e),
                Attempt::Again(reason, after) => {
                    tracing::debug!(host, attempt, %reason, "registry: transient failure; retrying");
                    last = reason;
                    if attempt < ATTEMPTS {
                        tokio::time::sleep(after.unwrap_or(backoff).max(backoff)).await;
                        backoff *= 2;
                    }
                }
            }
        }
        if self.speaks_plain_http(host).await {
            return Err(RegistryError::PlainHttp {
                host: host.to_owned(),
            });
        }
        Err(RegistryError::Unavailable {
            host: host.to_owned(),
            reason: format!("{last} (after {ATTEMPTS} attempts)"),
        })
    }

    /// Whether `host`, reached over HTTPS and failing, answers plain HTTP
    /// instead (the commonest cause of a local registry "unavailable").
    async fn speaks_plain_http(&self, host: &str) -> bool {
        if self.config.registry(host).insecure {
            return false;
        }
        self.http
            .get(format!("http://{host}/v2/"))
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .is_ok()
    }

    /// Classifies an `oci-client` outcome: done, or a failure to retry or
    /// report.
    fn oci_attempt<T>(
        host: &str,
        repository: &str,
        what: &str,
        result: Result<T, OciDistributionError>,
    ) -> Attempt<T> {
        let e = match result {
            Ok(v) => return Attempt::Done(v),
            Err(e) => e,
        };
        match e {
            OciDistributionError::RequestError(e) => Attempt::Again(e.to_string(), None),
            OciDistributionError::ServerError { code, message, .. }
                if code == 429 || code >= 500 =>
            {
                Attempt::Again(format!("HTTP {code}: {message}"), None)
            }
            OciDistributionError::ServerError { code: 404, .. }
            | OciDistributionError::ImageManifestNotFoundError(_) => {
                Attempt::Fail(RegistryError::NotFound {
                    what: what.to_owned(),
                })
            }
            OciDistributionError::RegistryError { envelope, .. }
                if envelope.errors.iter().any(|e| {
                    matches!(
                        e.code,
                        OciErrorCode::ManifestUnknown
                            | OciErrorCode::NameUnknown
                            | OciErrorCode::NotFound
                            | OciErrorCode::BlobUnknown
                    )
                }) =>
            {
                Attempt::Fail(RegistryError::NotFound {
                    what: what.to_owned(),
                })
            }
            OciDistributionError::UnauthorizedError { .. }
            | OciDistributionError::AuthenticationFailure(_) => {
                Attempt::Fail(RegistryError::Unauthorized {
                    host: host.to_owned(),
                    repository: repository.to_owned(),
                    reason: e.to_string(),
                })
            }
            other => Attempt::Fail(RegistryError::Refused {
                host: host.to_owned(),
                reason: other.to_string(),
            }),
        }
    }

    /// Every tag of `repository`, following `Link` pages to the end.
    pub async fn list_tags(&self, repository: &str) -> Result<Vec<String>, RegistryError> {
        #[derive(serde::Deserialize)]
        struct Page {
            #[serde(default)]
            tags: Option<Vec<String>>,
        }
        let reference = Self::reference(repository, "latest")?;
        let host = reference.registry();
        let scheme = if self.config.registry(host).insecure {
            "http"
        } else {
            "https"
        };
        let base = format!("{scheme}://{}", reference.resolve_registry());
        let mut next = Some(format!("/v2/{}/tags/list?n={PAGE}", reference.repository()));
        let mut tags = Vec::new();
        let mut pages = 0;
        while let Some(path) = next.take() {
            pages += 1;
            if pages > MAX_PAGES {
                return Err(RegistryError::Refused {
                    host: host.to_owned(),
                    reason: format!(
                        "the tag list of {repository} did not end after {MAX_PAGES} pages"
                    ),
                });
            }
            let url = if path.starts_with("http://") || path.starts_with("https://") {
                path
            } else {
                format!("{base}{path}")
            };
            let (page, link) = self
                .retried(host, || self.tag_page(&url, &reference, host, repository))
                .await?;
            let page: Page = serde_json::from_slice(&page).map_err(|e| RegistryError::Refused {
                host: host.to_owned(),
                reason: format!("the tag list of {repository} is not JSON: {e}"),
            })?;
            tags.extend(page.tags.unwrap_or_default());
            next = link;
        }
        Ok(tags)
    }

    async fn tag_page(
        &self,
        url: &str,
        reference: &Reference,
        host: &str,
        repository: &str,
    ) -> Attempt<(bytes::Bytes, Option<String>)> {
        let mut fresh_token = false;
        loop {
            let mut request = self.http.get(url);
            let token = self.tokens.lock().await.get(repository).cloned();
            match (&token, self.auth(host)) {
                (Some(t), _) => request = request.bearer_auth(t),
                (None, RegistryAuth::Bearer(t)) => request = request.bearer_auth(t),
                (None, RegistryAuth::Basic(u, p)) => request = request.basic_auth(u, Some(p)),
                (None, RegistryAuth::Anonymous) => {}
            }
            self.requests.fetch_add(1, Ordering::Relaxed);
            let response = match request.send().await {
                Ok(r) => r,
                Err(e) => return Attempt::Again(e.to_string(), None),
            };
            let status = response.status();
            let headers = response.headers().clone();
            if status == StatusCode::UNAUTHORIZED && !fresh_token {
                let bearer = headers
                    .get(WWW_AUTHENTICATE)
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|v| v.trim_start().to_ascii_lowercase().starts_with("bearer"));
                if bearer {
                    // The registry's token flow, done by oci-client.
                    match self
                        .oci
                        .auth(reference, &self.auth(host), RegistryOperation::Pull)
                        .await
                    {
                        Ok(Some(token)) => {
                            self.tokens
                                .lock()
                                .await
                                .insert(repository.to_owned(), token);
                            fresh_token = true;
                            continue;
                        }
                        Ok(None) => {}
                        Err(e) => return Self::oci_attempt(host, repository, repository, Err(e)),
                    }
                }
            }
            let body = match response.bytes().await {
                Ok(b) => b,
                Err(e) => return Attempt::Again(e.to_string(), None),
            };
            return page_attempt(status, &headers, body, host, repository);
        }
    }

    /// The digest `tag` names (a manifest HEAD; index, list or manifest).
    pub async fn digest(&self, repository: &str, tag: &str) -> Result<String, RegistryError> {
        let (reference, auth, what) = self.target(repository, tag)?;
        let host = reference.registry();
        self.retried(host, || async {
            let digest = self.oci.fetch_manifest_digest(&reference, &auth).await;
            Self::oci_attempt(host, repository, &what, digest)
        })
        .await
    }

    /// [`RegistryClient::digest`], or `None` when the tag does not exist.
    pub async fn digest_if_exists(
        &self,
        repository: &str,
        tag: &str,
    ) -> Result<Option<String>, RegistryError> {
        match self.digest(repository, tag).await {
            Ok(d) => Ok(Some(d)),
            Err(RegistryError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The manifest `tag_or_digest` names, as stored: bytes, media type,
    /// digest.
    pub async fn manifest(
        &self,
        repository: &str,
        tag_or_digest: &str,
    ) -> Result<(bytes::Bytes, String, String), RegistryError> {
        let (reference, auth, what) = self.target(repository, tag_or_digest)?;
        let host = reference.registry();
        let (body, digest) = self
            .retried(host, || async {
                let pulled = self
                    .oci
                    .pull_manifest_raw(&reference, &auth, MANIFEST_TYPES)
                    .await;
                Self::oci_attempt(host, repository, &what, pulled)
            })
            .await?;
        let media_type = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| {
                v.get("mediaType")
                    .and_then(|m| m.as_str())
                    .map(str::to_owned)
                    .or_else(|| {
                        v.get("manifests")
                            .map(|_| manifest::OCI_IMAGE_INDEX_MEDIA_TYPE.to_owned())
                    })
            })
            .unwrap_or_else(|| manifest::OCI_IMAGE_MEDIA_TYPE.to_owned());
        Ok((body, media_type, digest))
    }

    /// Stores `manifest` under `tag`.
    pub async fn put_manifest(
        &self,
        repository: &str,
        tag: &str,
        manifest: bytes::Bytes,
        media_type: &str,
    ) -> Result<(), RegistryError> {
        let (reference, auth, what) = self.target(repository, tag)?;
        let host = reference.registry();
        let content_type =
            HeaderValue::from_str(media_type).map_err(|_| RegistryError::Refused {
                host: host.to_owned(),
                reason: format!("the manifest's media type {media_type:?} is not a header value"),
            })?;
        self.retried(host, || async {
            if let Err(e) = self
                .oci
                .auth(&reference, &auth, RegistryOperation::Push)
                .await
            {
                return Self::oci_attempt(host, repository, &what, Err(e));
            }
            let pushed = self
                .oci
                .push_manifest_raw(&reference, manifest.clone(), content_type.clone())
                .await;
            Self::oci_attempt(host, repository, &what, pushed.map(drop))
        })
        .await
    }

    /// Pushes a small single-layer OCI image (`layer` as its only layer) as
    /// `repository:tag` and returns its digest: how the tests, the
    /// benchmark and demos fill a registry.
    pub async fn push_image(
        &self,
        repository: &str,
        tag: &str,
        layer: Vec<u8>,
    ) -> Result<String, RegistryError> {
        let (reference, auth, what) = self.target(repository, tag)?;
        let host = reference.registry();
        let layers = vec![oci_client::client::ImageLayer::new(
            layer,
            manifest::IMAGE_LAYER_MEDIA_TYPE.to_owned(),
            None,
        )];
        let config = oci_client::client::Config::new(
            br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#
                .to_vec(),
            manifest::IMAGE_CONFIG_MEDIA_TYPE.to_owned(),
            None,
        );
        self.retried(host, || async {
            let pushed = self
                .oci
                .push(&reference, &layers, config.clone(), &auth, None)
                .await;
            Self::oci_attempt(host, repository, &what, pushed.map(drop))
        })
        .await?;
        self.digest(repository, tag).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderMap;

    #[test]
    fn the_next_link_is_read_as_distribution_writes_it() {
        let mut h = HeaderMap::new();
        h.insert(
            LINK,
            HeaderValue::from_static(
                "</v2/game/server/tags/list?last=v1.0.999&n=1000>; rel=\"next\"",
            ),
        );
        assert_eq!(
            next_link(&h).as_deref(),
            Some("/v2/game/server/tags/list?last=v1.0.999&n=1000")
        );
        let mut h = HeaderMap::new();
        h.insert(
            LINK,
            HeaderValue::from_static("<https://r.io/v2/x/tags/list?n=2&last=b>; rel=next, <https://r.io/v2/x/tags/list>; rel=\"first\""),
        );
        assert_eq!(
            next_link(&h).as_deref(),
            Some("https://r.io/v2/x/tags/list?n=2&last=b")
        );
        let mut h = HeaderMap::new();
        h.insert(
            LINK,
            HeaderValue::from_static("</v2/x/tags/list>; rel=\"prev\""),
        );
        assert_eq!(next_link(&h), None);
        assert_eq!(next_link(&HeaderMap::new()), None);
    }

    #[test]
    fn retry_after_is_capped() {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_static("3"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(3)));
        h.insert(RETRY_AFTER, HeaderValue::from_static("3600"));
        assert_eq!(retry_after(&h), Some(MAX_RETRY_AFTER));
    }
}
