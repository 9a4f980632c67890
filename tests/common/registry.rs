//! A real OCI registry for the tests: Debian's `docker-registry` (CNCF
//! Distribution), on a free loopback port with its storage in a temporary
//! directory, optionally behind htpasswd Basic auth. Its access log tells
//! how many requests a client made.
#![allow(
    clippy::too_many_lines,
    reason = "a scenario or a table reads best top to bottom"
)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::free_port;

/// Where Debian installs it.
pub const BINARY: &str = "/usr/bin/docker-registry";

/// A running registry.
pub struct Registry {
    child: Option<Child>,
    dir: tempfile::TempDir,
    /// `127.0.0.1:PORT`.
    pub host: String,
    /// Basic credentials it requires, if any.
    pub login: Option<(String, String)>,
}

impl Registry {
    /// An open registry.
    pub fn start() -> Self {
        Self::launch(None)
    }

    /// A registry that requires `user`/`password` (htpasswd, bcrypt).
    pub fn start_with_login(user: &str, password: &str) -> Self {
        Self::launch(Some((user.to_owned(), password.to_owned())))
    }

    fn launch(login: Option<(String, String)>) -> Self {
        assert!(
            std::path::Path::new(BINARY).exists(),
            "{BINARY} is missing: install Debian's docker-registry (scripts/test does: apt-get install -y docker-registry)"
        );
        let dir = tempfile::tempdir().expect("temp dir");
        let host = format!("127.0.0.1:{}", free_port());
        let mut config = format!(
            "version: 0.1\nlog:\n  level: warn\n  formatter: text\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {host}\n",
            dir.path().join("data").display()
        );
        if let Some((user, password)) = &login {
            let hash = bcrypt::hash_with_result(password, 4)
                .expect("bcrypt")
                .format_for_version(bcrypt::Version::TwoY);
            let htpasswd = dir.path().join("htpasswd");
            std::fs::write(&htpasswd, format!("{user}:{hash}\n")).expect("htpasswd");
            config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: gameops-test\n    path: {}\n",
                htpasswd.display()
            ));
        }
        std::fs::write(dir.path().join("config.yml"), config).expect("registry config");
        let mut registry = Self {
            child: None,
            dir,
            host,
            login,
        };
        registry.spawn();
        registry
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("access.log")
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("registry log");
        let child = Command::new(BINARY)
            .arg("serve")
            .arg(self.dir.path().join("config.yml"))
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .expect("start docker-registry");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(&self.host).is_err() {
            assert!(
                Instant::now() < deadline,
                "docker-registry did not listen on {}: {}",
                self.host,
                std::fs::read_to_string(self.log_path()).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops it (the storage stays).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port with the same storage.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// The requests it has answered so far (access-log lines).
    pub fn requests(&self) -> usize {
        std::fs::read_to_string(self.log_path())
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("\" HTTP/1.1\" ") || l.contains(" HTTP/1.1\" "))
            .count()
    }

    /// The `registries:` entry of a gameops.yaml for it.
    pub fn config_entry(&self) -> String {
        match &self.login {
            None => format!("  - {{host: \"{}\", insecure: true}}\n", self.host),
            Some((u, p)) => format!(
                "  - {{host: \"{}\", insecure: true, auth: {{basic: {{username: \"{u}\", password: \"{p}\"}}}}}}\n",
                self.host
            ),
        }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.stop();
    }
}

/// How the front behaves, beyond passing requests to the registry.
#[derive(Clone, Default)]
pub struct Front {
    /// Page the tag list, at most this many tags a page.
    pub page_cap: Option<usize>,
    /// Require the registry token flow: 401 with a Bearer challenge unless
    /// the request carries a token that `GET /token` issued for these Basic
    /// credentials (as Docker Hub, GHCR and Distribution's token auth do).
    pub token_login: Option<(String, String)>,
    /// Answer this many requests with 503, then this many with 429, first.
    pub fail_first: usize,
    /// Hold every request this long before passing it on (a slow registry).
    pub delay: Option<std::time::Duration>,
}

/// A reverse proxy in front of the registry at `upstream` that acts as
/// many hosted registries do where Debian's Distribution 2.8 does not:
/// it pages the tag list as the OCI distribution spec describes (`n`,
/// `last`, a `Link: <…>; rel="next"` header, at most `page_cap` a page
/// whatever `n` asks), runs the token flow, and fails on purpose.
/// Returns `127.0.0.1:PORT`.
pub async fn front(upstream: String, front: Front) -> String {
    front_with_counter(upstream, front).await.0
}

/// [`front`], also returning how many requests it has received.
pub async fn front_with_counter(
    upstream: String,
    front: Front,
) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use axum::body::Body;
    use axum::extract::{Request, State};
    use axum::http::{HeaderValue, StatusCode};
    use axum::response::{IntoResponse, Response};

    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    const ISSUED: &str = "issued-token-for-tests";

    #[derive(Clone)]
    struct Proxy {
        upstream: String,
        front: Front,
        seen: Arc<AtomicUsize>,
        http: reqwest::Client,
        host: String,
    }

    async fn handle(State(p): State<Proxy>, request: Request) -> Response {
        let n = p.seen.fetch_add(1, Ordering::SeqCst);
        if let Some(delay) = p.front.delay {
            tokio::time::sleep(delay).await;
        }
        if n < p.front.fail_first {
            return (StatusCode::SERVICE_UNAVAILABLE, "try later").into_response();
        }
        if n < 2 * p.front.fail_first {
            let mut r = (StatusCode::TOO_MANY_REQUESTS, "slow down").into_response();
            r.headers_mut()
                .insert("retry-after", HeaderValue::from_static("0"));
            return r;
        }
        let path = request.uri().path().to_owned();
        if let Some((user, password)) = &p.front.token_login {
            use base64::Engine as _;
            let presented = request
                .headers()
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned();
            if path == "/token" {
                let expected = format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
                );
                return if presented == expected {
                    axum::Json(serde_json::json!({"token": ISSUED, "expires_in": 300}))
                        .into_response()
                } else {
                    (StatusCode::UNAUTHORIZED, "bad credentials").into_response()
                };
            }
            if presented != format!("Bearer {ISSUED}") {
                let mut r = (StatusCode::UNAUTHORIZED, "token required").into_response();
                let challenge = format!(
                    "Bearer realm=\"http://{}/token\",service=\"test-registry\"",
                    p.host
                );
                r.headers_mut().insert(
                    "www-authenticate",
                    HeaderValue::from_str(&challenge).expect("challenge"),
                );
                return r;
            }
        }
        let query: Vec<(String, String)> =
            form_urlencoded::parse(request.uri().query().unwrap_or("").as_bytes())
                .into_owned()
                .collect();
        let method =
            reqwest::Method::from_bytes(request.method().as_str().as_bytes()).expect("method");
        let mut forward = p
            .http
            .request(method, format!("http://{}{}", p.upstream, request.uri()));
        for (k, v) in request.headers() {
            if k != "host" && !(p.front.token_login.is_some() && k == "authorization") {
                forward = forward.header(k.as_str(), v.as_bytes());
            }
        }
        let body = axum::body::to_bytes(request.into_body(), usize::MAX)
            .await
            .expect("body");
        let tag_list = p.front.page_cap.is_some() && path.ends_with("/tags/list");
        if tag_list {
            // Fetch the whole list, then page it.
            forward = p.http.get(format!("http://{}{path}", p.upstream));
        }
        let upstream = forward.body(body).send().await.expect("upstream answers");
        let status = StatusCode::from_u16(upstream.status().as_u16()).expect("status");
        let headers = upstream.headers().clone();
        let bytes = upstream.bytes().await.expect("upstream body");
        if !tag_list || !status.is_success() {
            let mut r = Response::new(Body::from(bytes));
            *r.status_mut() = status;
            for (k, v) in &headers {
                if let (Ok(k), Ok(v)) = (
                    axum::http::HeaderName::from_bytes(k.as_str().as_bytes()),
                    HeaderValue::from_bytes(v.as_bytes()),
                ) {
                    r.headers_mut().append(k, v);
                }
            }
            return r;
        }
        let list: serde_json::Value = serde_json::from_slice(&bytes).expect("tag list");
        let mut tags: Vec<String> = list["tags"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| t.as_str().map(str::to_owned))
            .collect();
        tags.sort();
        let get = |k: &str| query.iter().find(|(q, _)| q == k).map(|(_, v)| v.clone());
        let n = get("n")
            .and_then(|n| n.parse::<usize>().ok())
            .unwrap_or(usize::MAX)
            .min(p.front.page_cap.unwrap_or(usize::MAX));
        let start = get("last").map_or(0, |last| tags.partition_point(|t| *t <= last));
        let page: Vec<String> = tags.iter().skip(start).take(n).cloned().collect();
        let more = start + page.len() < tags.len();
        let mut r =
            axum::Json(serde_json::json!({"name": list["name"], "tags": page})).into_response();
        if more && let Some(last) = page.last() {
            let link = format!("<{path}?n={n}&last={last}>; rel=\"next\"");
            r.headers_mut()
                .insert("link", HeaderValue::from_str(&link).expect("link"));
        }
        r
    }

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let host = listener.local_addr().expect("addr").to_string();
    let seen = Arc::new(AtomicUsize::new(0));
    let app = axum::Router::new().fallback(handle).with_state(Proxy {
        upstream,
        front,
        seen: seen.clone(),
        http: reqwest::Client::new(),
        host: host.clone(),
    });
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (host, seen)
}
