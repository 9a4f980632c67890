//! What every HTTP surface of gameops shares, as tower layers and small
//! routers: credentials checked in constant time (one [`AuthLayer`] for the
//! API server, the plugin and the allocator's service port), the health
//! routes, the request body limit, and the timeouts that close slow or
//! silent connections.

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::get;
use base64::Engine;

/// Compares in time independent of where the inputs differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// What a request must present in its `Authorization` header.
#[derive(Clone)]
pub enum Credential {
    /// `Bearer <token>`.
    Bearer(String),
    /// `Basic base64(<user>:<password>)`.
    Basic(String, String),
}

impl Credential {
    /// Whether `headers` carry this credential (compared in constant time).
    pub fn presented_in(&self, headers: &HeaderMap) -> bool {
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .trim();
        match self {
            Self::Bearer(token) => presented
                .strip_prefix("Bearer ")
                .is_some_and(|p| constant_time_eq(p.trim().as_bytes(), token.as_bytes())),
            Self::Basic(user, password) => {
                let expected =
                    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
                presented
                    .strip_prefix("Basic ")
                    .is_some_and(|p| constant_time_eq(p.trim().as_bytes(), expected.as_bytes()))
            }
        }
    }
}

/// The answer to a request without the credential (each surface answers in
/// its own protocol: a Kubernetes `Status`, plain text, JSON).
pub type Rejection = fn() -> Response;

#[derive(Clone)]
struct Auth {
    credential: Arc<Credential>,
    reject: Rejection,
}

async fn require(State(auth): State<Auth>, request: Request, next: Next) -> Response {
    if auth.credential.presented_in(request.headers()) {
        next.run(request).await
    } else {
        (auth.reject)()
    }
}

/// The router, with every request required to carry `credential` (answered
/// with `reject()` otherwise); unchanged without one.
pub fn require_credential(
    router: Router,
    credential: Option<Credential>,
    reject: Rejection,
) -> Router {
    match credential {
        Some(credential) => router.layer(middleware::from_fn_with_state(
            Auth {
                credential: Arc::new(credential),
                reject,
            },
            require,
        )),
        None => router,
    }
}

/// `/healthz`, `/livez` and `/readyz`, answering `ok` as kube-apiserver does.
pub fn health_routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    async fn ok() -> &'static str {
        "ok"
    }
    Router::new()
        .route("/healthz", get(ok))
        .route("/livez", get(ok))
        .route("/readyz", get(ok))
}

/// Refuses request bodies over `bytes` with 413 (the extractors read at
/// most that much).
pub fn body_limit(bytes: usize) -> DefaultBodyLimit {
    DefaultBodyLimit::max(bytes)
}

/// How long a client may take between two pieces of a request body.
pub const BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);
/// How long a request to the service port may take in all (the plugin
/// answers within 15 s, the allocator and the Flux endpoint at once).
pub const SERVICE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// Closes requests whose body stalls for [`BODY_TIMEOUT`] (a half-sent
/// body no longer holds a connection and a task for ever) and answers
/// 408 to any request still running after [`SERVICE_TIMEOUT`].
pub fn slow_client_timeouts(router: Router) -> Router {
    router
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            SERVICE_TIMEOUT,
        ))
        .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(
            BODY_TIMEOUT,
        ))
}

/// How long a client may take to send a request's headers.
pub const HEADER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Has HTTP/1 connections that never finish their headers closed after
/// [`HEADER_TIMEOUT`] (hyper's `header_read_timeout`; a connection idle
/// between requests counts as one waiting for headers), instead of
/// holding a socket and a task for ever.
pub fn close_slow_connections(
    builder: &mut hyper_util::server::conn::auto::Builder<hyper_util::rt::TokioExecutor>,
) {
    builder
        .http1()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT);
}

/// An acceptor that hands a connection on only once it has sent its first
/// byte, and closes it when that takes [`HEADER_TIMEOUT`]: hyper's
/// `header_read_timeout` starts only after hyper-util's HTTP version
/// detection has read the first bytes, so a connection that sends nothing
/// would otherwise hold a socket and a task for ever. Wraps the acceptor
/// that makes the stream (TLS included: the wait follows the handshake).
#[derive(Clone, Debug)]
pub struct FirstByteAcceptor<A> {
    inner: A,
}

impl<A> FirstByteAcceptor<A> {
    /// Waits for the first byte of what `inner` accepts.
    pub fn new(inner: A) -> Self {
        Self { inner }
    }
}

impl<A, I, S> axum_server::accept::Accept<I, S> for FirstByteAcceptor<A>
where
    A: axum_server::accept::Accept<I, S>,
    A::Future: Send + 'static,
    A::Stream: tokio::io::AsyncRead + Unpin + Send + 'static,
    A::Service: Send + 'static,
{
    type Stream = FirstByte<A::Stream>;
    type Service = A::Service;
    type Future = std::pin::Pin<
        Box<dyn Future<Output = std::io::Result<(Self::Stream, Self::Service)>> + Send>,
    >;

    fn accept(&self, stream: I, service: S) -> Self::Future {
        let accepted = self.inner.accept(stream, service);
        Box::pin(async move {
            use tokio::io::AsyncReadExt;
            let (mut stream, service) = accepted.await?;
            let mut first = [0u8; 1];
            match tokio::time::timeout(HEADER_TIMEOUT, stream.read(&mut first)).await {
                Ok(Ok(1)) => Ok((
                    FirstByte {
                        first: Some(first[0]),
                        inner: stream,
                    },
                    service,
                )),
                Ok(Ok(_)) => Err(std::io::ErrorKind::UnexpectedEof.into()),
                Ok(Err(e)) => Err(e),
                Err(_) => Err(std::io::ErrorKind::TimedOut.into()),
            }
        })
    }
}

/// A stream that gives back the byte [`FirstByteAcceptor`] read first.
#[derive(Debug)]
pub struct FirstByte<S> {
    first: Option<u8>,
    inner: S,
}

impl<S: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for FirstByte<S> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        if buf.remaining() > 0
            && let Some(b) = self.first.take()
        {
            buf.put_slice(&[b]);
            return std::task::Poll::Ready(Ok(()));
        }
        std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for FirstByte<S> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Ok(v) = HeaderValue::from_str(value) {
            h.insert(header::AUTHORIZATION, v);
        }
        h
    }

    #[test]
    fn bearer_and_basic_credentials() {
        let bearer = Credential::Bearer("t".into());
        assert!(bearer.presented_in(&headers("Bearer t")));
        assert!(!bearer.presented_in(&headers("Bearer u")));
        assert!(!bearer.presented_in(&headers("")));
        assert!(!bearer.presented_in(&headers("Basic t")));
        let basic = Credential::Basic("flux".into(), "pw".into());
        // base64("flux:pw")
        assert!(basic.presented_in(&headers("Basic Zmx1eDpwdw==")));
        assert!(!basic.presented_in(&headers("Basic Zmx1eDpwdA==")));
        assert!(!basic.presented_in(&headers("Bearer Zmx1eDpwdw==")));
    }

    #[test]
    fn constant_time_eq_compares_whole_inputs() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
