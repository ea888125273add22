//! HTTP building blocks: one JSON error shape, the access-log line, and serving with graceful
//! shutdown (the ops servers, the operator's too); with feature `http-api`, the APIs' middleware
//! (`api`, re-exported here): extractors whose rejections use the error shape, one access-log line
//! per request with request ids, HTTP metrics, request limits (a timeout, a body size limit and a
//! concurrency limit, each answered with the JSON error shape).
//!
//! Store outages are answered `503` with `Retry-After` (a database error that means "not now":
//! pool timeout, connection lost, too many connections, lock wait timeout, deadlock), never `500`.
//!
//! Error body: `{"error": {"code": "not_found", "message": "post 7 not found", "details": …}}`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

#[cfg(feature = "http-api")]
mod api;
#[cfg(feature = "http-api")]
pub use api::*;

/// The header that carries a request id in and out (and into Kafka record headers).
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// An error answered to an API client. Internal causes are logged, never returned.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub details: Option<Value>,
}

#[derive(Serialize)]
struct WireError<'a> {
    error: WireErrorInner<'a>,
}

#[derive(Serialize)]
struct WireErrorInner<'a> {
    code: &'a str,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    details: Option<&'a Value>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            details: None,
        }
    }
    pub fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }
    pub fn validation(message: impl Into<String>, details: Value) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            message,
        )
        .with_details(details)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }
    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }
    /// Logs the cause with the request's span and answers a generic 500.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error",
        )
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.code,
            self.message
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = WireError {
            error: WireErrorInner {
                code: self.code,
                message: &self.message,
                details: self.details.as_ref(),
            },
        };
        let mut res = (self.status, axum::Json(body)).into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            res.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from_static(RETRY_AFTER_SECS),
            );
        }
        if self.status == StatusCode::UNAUTHORIZED {
            // RFC 6750 §3: how to authenticate; `invalid_token` when the token given was refused.
            let challenge = if self.code == INVALID_TOKEN {
                r#"Bearer error="invalid_token""#
            } else {
                "Bearer"
            };
            res.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
        }
        res
    }
}

/// The code of a `401` whose bearer token was refused (`WWW-Authenticate: Bearer
/// error="invalid_token"`); any other `401` says `WWW-Authenticate: Bearer`.
pub const INVALID_TOKEN: &str = "invalid_token";

/// What `Retry-After` says on a 503.
pub const RETRY_AFTER_SECS: &str = "1";

#[cfg(feature = "mysql")]
impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        if crate::mysql::is_outage(&e) {
            tracing::warn!(error = %e, "database unavailable");
            return ApiError::unavailable("the database is unavailable; try again shortly");
        }
        ApiError::internal(format!("database: {e}"))
    }
}

/// The access-log line every API writes per request (see the log pipeline). The field names are the
/// contract with Filebeat/Logstash and the native indexer: change them together.
#[derive(Debug, Serialize, serde::Deserialize, Clone, PartialEq)]
pub struct AccessLog {
    /// RFC 3339 time the request finished.
    #[serde(rename = "@timestamp")]
    pub timestamp: String,
    /// Always `"access"`: tells access lines from other log lines.
    pub log_type: String,
    pub service: String,
    pub method: String,
    pub path: String,
    /// Route template (`/posts/{id}`), for aggregations.
    pub route: String,
    pub query: String,
    pub status: u16,
    pub bytes: u64,
    pub duration_ms: f64,
    pub request_id: String,
    pub user_agent: String,
}

/// Binds `addr`, serves `router` until `shutdown` fires, then finishes in-flight requests.
pub async fn serve(
    addr: SocketAddr,
    router: Router,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("failed to listen on {addr}: {e}"))?;
    serve_on(listener, router, shutdown).await
}

/// Like [`serve`] on a listener the caller bound (tests bind port 0).
pub async fn serve_on(
    listener: TcpListener,
    router: Router,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    serve_draining(listener, router, shutdown, Duration::ZERO).await
}

/// Like [`serve_on`], but when `shutdown` fires the server first drains for `drain`: it goes on
/// serving (a Service's endpoints and kube-proxy's rules take a moment to drop a terminating pod,
/// and clients keep their keep-alive connections), answers `/readyz` 503 and closes each
/// connection after its response (`Connection: close`), so clients move to the other replicas
/// without a failed request; then it stops accepting and finishes in-flight requests.
pub async fn serve_draining(
    listener: TcpListener,
    router: Router,
    shutdown: CancellationToken,
    drain: Duration,
) -> anyhow::Result<()> {
    tracing::info!(addr = %listener.local_addr()?, "listening");
    let draining = Arc::new(AtomicBool::new(false));
    let router = router.layer(DrainLayer(draining.clone()));
    // Graceful shutdown begins when this future ends: after `shutdown` and the drain.
    let drained = async move {
        shutdown.cancelled().await;
        if !drain.is_zero() {
            tracing::info!(
                drain_ms = drain.as_millis() as u64,
                "draining: /readyz answers 503, connections close after their response"
            );
            draining.store(true, Ordering::Relaxed);
            tokio::time::sleep(drain).await;
        }
    };
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(drained)
    .await?;
    Ok(())
}

/// While set, [`serve_draining`] answers `/readyz` 503 and closes each connection after its
/// response. A tower layer of its own rather than `middleware::from_fn`: a request that finds
/// the flag unset goes straight to the router, with no boxed future and nothing cloned but an
/// `Arc`.
#[derive(Clone)]
struct DrainLayer(Arc<AtomicBool>);

impl<S> tower::Layer<S> for DrainLayer {
    type Service = Drain<S>;
    fn layer(&self, inner: S) -> Drain<S> {
        Drain {
            inner,
            draining: self.0.clone(),
        }
    }
}

#[derive(Clone)]
struct Drain<S> {
    inner: S,
    draining: Arc<AtomicBool>,
}

impl<S> tower::Service<Request> for Drain<S>
where
    S: tower::Service<Request, Response = Response, Error = Infallible> + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = futures::future::Either<
        S::Future,
        futures::future::BoxFuture<'static, Result<Response, Infallible>>,
    >;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        use futures::future::Either;
        if !self.draining.load(Ordering::Relaxed) {
            return Either::Left(self.inner.call(req));
        }
        let close = |mut resp: Response| {
            resp.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            resp
        };
        if req.uri().path() == "/readyz" {
            let resp = close(ApiError::unavailable("shutting down").into_response());
            return Either::Right(Box::pin(async move { Ok(resp) }));
        }
        let fut = self.inner.call(req);
        Either::Right(Box::pin(async move { fut.await.map(close) }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::routing::post;
    use http::Request;
    use std::time::Instant;
    use tower::ServiceExt;

    #[derive(serde::Deserialize)]
    #[allow(dead_code)]
    struct Input {
        name: String,
    }

    async fn create(Json(_): Json<Input>) -> Result<StatusCode, ApiError> {
        Err(ApiError::conflict("duplicate", "already there"))
    }

    async fn read_error(res: Response) -> (StatusCode, Value) {
        let status = res.status();
        let body = axum::body::to_bytes(res.into_body(), 1 << 16)
            .await
            .unwrap();
        (status, serde_json::from_slice(&body).unwrap())
    }

    #[tokio::test]
    async fn rejections_and_errors_share_one_shape() {
        let app = observe(Router::new().route("/x", post(create)), "test", None);
        let res = app
            .clone()
            .oneshot(
                Request::post("/x")
                    .header("content-type", "application/json")
                    .body(Body::from("{"))
                    .unwrap(),
            )
            .await
            .unwrap();
        assert!(res.headers().contains_key(&REQUEST_ID));
        let (status, v) = read_error(res).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(v["error"]["code"], "bad_request");
        let res = app
            .oneshot(
                Request::post("/x")
                    .header("content-type", "application/json")
                    .body(Body::from(r#"{"name":"a"}"#))
                    .unwrap(),
            )
            .await
            .unwrap();
        let (status, v) = read_error(res).await;
        assert_eq!(status, StatusCode::CONFLICT);
        assert_eq!(
            v,
            serde_json::json!({"error": {"code": "duplicate", "message": "already there"}})
        );
    }

    /// One HTTP/1.1 request on `conn`; the answer's head (lower-cased) and body.
    async fn exchange(conn: &mut tokio::net::TcpStream, path: &str) -> (String, String) {
        use tokio::io::AsyncWriteExt;
        conn.write_all(format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes())
            .await
            .unwrap();
        read_answer(conn).await
    }

    /// The next answer on `conn`: its head (lower-cased) and body.
    async fn read_answer(conn: &mut tokio::net::TcpStream) -> (String, String) {
        use tokio::io::AsyncReadExt;
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            let n = conn.read(&mut chunk).await.unwrap();
            assert!(
                n > 0,
                "closed before an answer: {}",
                String::from_utf8_lossy(&buf)
            );
            buf.extend_from_slice(&chunk[..n]);
            let text = String::from_utf8_lossy(&buf).into_owned();
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let head = head.to_ascii_lowercase();
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length: "))
                    .map_or(0, |v| v.trim().parse().unwrap());
                if body.len() >= len {
                    return (head, body.to_owned());
                }
            }
        }
    }

    /// With the default limits, a body over the limit (by Content-Length) is read and dropped
    /// before the 413, so the answer arrives and the same connection serves the next request.
    #[tokio::test]
    async fn an_over_limit_body_is_answered_413_and_the_connection_stays_usable() {
        use tokio::io::AsyncWriteExt;
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let router = observe(
            Router::new().route("/x", axum::routing::get(|| async { "x" }).post(create)),
            "test",
            None,
        );
        let server = tokio::spawn(serve_on(listener, router, CancellationToken::new()));
        let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
        let len = Limits::DEFAULT.body_limit + 512 * 1024;
        conn.write_all(
            format!(
                "POST /x HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: {len}\r\n\r\n"
            )
            .as_bytes(),
        )
        .await
        .unwrap();
        conn.write_all(&vec![b' '; len]).await.unwrap();
        let (head, body) = read_answer(&mut conn).await;
        assert!(
            head.starts_with("http/1.1 413") && !head.contains("connection: close"),
            "{head}"
        );
        assert!(body.contains("payload_too_large"), "{body}");
        let (head, body) = exchange(&mut conn, "/x").await;
        assert!(head.starts_with("http/1.1 200"), "{head}");
        assert_eq!(body, "x");
        server.abort();
    }

    #[tokio::test]
    async fn a_draining_server_serves_on_fails_readiness_and_closes_connections() {
        use tokio::io::AsyncReadExt;
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let router = Router::new()
            .route("/readyz", axum::routing::get(|| async { "ready" }))
            .route("/x", axum::routing::get(|| async { "x" }));
        let shutdown = CancellationToken::new();
        let drain = Duration::from_millis(600);
        let server = tokio::spawn(serve_draining(listener, router, shutdown.clone(), drain));
        let mut kept = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (head, body) = exchange(&mut kept, "/x").await;
        assert!(
            head.starts_with("http/1.1 200") && !head.contains("connection: close"),
            "{head}"
        );
        assert_eq!(body, "x");

        let t = Instant::now();
        shutdown.cancel();
        tokio::time::sleep(Duration::from_millis(50)).await;
        // The kept connection is still served, then closed after its answer.
        let (head, body) = exchange(&mut kept, "/x").await;
        assert!(
            head.starts_with("http/1.1 200") && head.contains("connection: close"),
            "{head}"
        );
        assert_eq!(body, "x");
        assert_eq!(kept.read(&mut [0u8; 16]).await.unwrap(), 0, "not closed");
        // A new connection during the drain is served; readiness fails.
        let mut fresh = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (head, body) = exchange(&mut fresh, "/readyz").await;
        assert!(head.starts_with("http/1.1 503"), "{head}");
        assert!(body.contains("unavailable"), "{body}");

        server.await.unwrap().unwrap();
        assert!(t.elapsed() >= drain, "stopped after {:?}", t.elapsed());
        assert!(tokio::net::TcpStream::connect(addr).await.is_err());
    }
}
