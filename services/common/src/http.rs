//! HTTP building blocks shared by the APIs: one JSON error shape, extractors whose rejections use
//! it, one access-log line per request with request ids, HTTP metrics, request limits (a timeout, a
//! body size limit and a concurrency limit, each answered with the JSON error shape), and serving
//! with graceful shutdown.
//!
//! Store outages are answered `503` with `Retry-After` (a database error that means "not now":
//! pool timeout, connection lost, too many connections, lock wait timeout, deadlock), never `500`.
//!
//! Error body: `{"error": {"code": "not_found", "message": "post 7 not found", "details": …}}`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::DefaultBodyLimit;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, MatchedPath, Request};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Router, middleware};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use serde::Serialize;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

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
struct ErrorBody<'a> {
    error: ErrorInner<'a>,
}

#[derive(Serialize)]
struct ErrorInner<'a> {
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
        let body = ErrorBody {
            error: ErrorInner {
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
        res
    }
}

/// What `Retry-After` says on a 503.
pub const RETRY_AFTER_SECS: &str = "1";

/// Whether a database error means the database is unavailable right now (the request may succeed
/// if tried again), not that the request is wrong.
pub fn is_database_outage(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(d) => d
            .try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>()
            .is_some_and(|m| MYSQL_OUTAGES.iter().any(|(n, _)| *n == m.number())),
        _ => false,
    }
}

/// MySQL/MariaDB errors that say the server cannot take the statement right now, not that the
/// statement is wrong: tried again shortly, it may succeed. sqlx has no error kind for these (its
/// kinds are constraint violations), hence the numbers.
pub const MYSQL_OUTAGES: &[(u16, &str)] = &[
    // Every connection slot is taken (`max_connections`).
    (1040, "ER_CON_COUNT_ERROR: too many connections"),
    // The server is shutting down (a restart, a failover).
    (1053, "ER_SERVER_SHUTDOWN: server shutdown in progress"),
    // Another transaction held the row lock longer than `innodb_lock_wait_timeout`.
    (1205, "ER_LOCK_WAIT_TIMEOUT: lock wait timeout exceeded"),
    // InnoDB chose this transaction as a deadlock victim and rolled it back.
    (1213, "ER_LOCK_DEADLOCK: deadlock found"),
    // `--read-only` (a replica, or a primary being demoted during a failover).
    (
        1290,
        "ER_OPTION_PREVENTS_STATEMENT: the server runs with --read-only",
    ),
    // The statement was killed or interrupted (e.g. by a shutdown).
    (
        1317,
        "ER_QUERY_INTERRUPTED: query execution was interrupted",
    ),
    // `read_only` set on this server (a replica before it is promoted).
    (1836, "ER_READ_ONLY_MODE: running in read-only mode"),
    // The connection was killed (MariaDB: a shutdown or KILL CONNECTION).
    (1927, "ER_CONNECTION_KILLED: connection was killed"),
];

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        if is_database_outage(&e) {
            tracing::warn!(error = %e, "database unavailable");
            return ApiError::unavailable("the database is unavailable; try again shortly");
        }
        ApiError::internal(format!("database: {e}"))
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        let (status, code) = match r {
            JsonRejection::MissingJsonContentType(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "bad_request")
            }
            JsonRejection::BytesRejection(_) => {
                (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large")
            }
            _ => (StatusCode::BAD_REQUEST, "bad_request"),
        };
        ApiError::new(status, code, r.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> Self {
        ApiError::bad_request(r.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        ApiError::bad_request(r.body_text())
    }
}

/// `axum::Json` whose rejection is an [`ApiError`].
#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct Json<T>(pub T);

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// `axum::extract::Path` whose rejection is an [`ApiError`] (400).
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct Path<T>(pub T);

/// `axum::extract::Query` whose rejection is an [`ApiError`] (400).
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct Query<T>(pub T);

/// Request counters and latency histograms, labelled by route template (not raw path).
#[derive(Clone)]
pub struct HttpMetrics {
    requests: Family<RouteLabels, Counter>,
    duration: Family<RouteLabels, Histogram>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: String,
    route: String,
    status: u16,
}

impl HttpMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let requests = Family::<RouteLabels, Counter>::default();
        let duration = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0005, 2.0, 16))
        });
        registry.register("http_requests", "HTTP requests answered", requests.clone());
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency",
            duration.clone(),
        );
        Self { requests, duration }
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

#[derive(Clone)]
struct ObserveState {
    service: &'static str,
    metrics: Option<HttpMetrics>,
}

/// Adds request ids, one JSON access-log line per request on stdout, and metrics to a router, and
/// the default [`Limits`]. Ops endpoints (`/healthz`, `/readyz`, `/metrics`) are counted but not
/// logged.
pub fn observe(router: Router, service: &'static str, metrics: Option<HttpMetrics>) -> Router {
    observe_with(router, service, metrics, Limits::DEFAULT)
}

/// [`observe`] with these limits.
pub fn observe_with(
    router: Router,
    service: &'static str,
    metrics: Option<HttpMetrics>,
    limits: Limits,
) -> Router {
    let gate = Gate {
        limits,
        permits: Arc::new(tokio::sync::Semaphore::new(limits.concurrency.max(1))),
    };
    router
        .layer(middleware::from_fn_with_state(gate, limit_request))
        .layer(DefaultBodyLimit::max(limits.body_limit))
        .layer(middleware::from_fn_with_state(
            ObserveState { service, metrics },
            observe_request,
        ))
}

/// What one API accepts: a request timeout, a body size limit, a concurrency limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Past this, the request is dropped and answered `503` (`timeout`) with `Retry-After`.
    pub request_timeout: Duration,
    /// Larger bodies are answered `413` (`payload_too_large`), by `Content-Length` before the
    /// handler runs, or while the body is read.
    pub body_limit: usize,
    /// Requests handled at once; one more waits up to [`Limits::QUEUE_WAIT`] for a turn, then is
    /// answered `503` (`overloaded`) with `Retry-After`. Ops endpoints do not count.
    pub concurrency: usize,
}

impl Limits {
    pub const DEFAULT: Limits = Limits {
        request_timeout: Duration::from_secs(30),
        body_limit: 1 << 20,
        concurrency: 1024,
    };
    /// How long a request waits for a turn when `concurrency` requests are in hand.
    pub const QUEUE_WAIT: Duration = Duration::from_secs(1);
}

impl Default for Limits {
    fn default() -> Self {
        Self::DEFAULT
    }
}

#[derive(Clone)]
struct Gate {
    limits: Limits,
    permits: Arc<tokio::sync::Semaphore>,
}

fn is_ops_path(path: &str) -> bool {
    matches!(path, "/healthz" | "/readyz" | "/metrics")
}

async fn limit_request(
    axum::extract::State(gate): axum::extract::State<Gate>,
    req: Request,
    next: Next,
) -> Response {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > gate.limits.body_limit as u64) {
        return ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the body must be at most {} bytes", gate.limits.body_limit),
        )
        .into_response();
    }
    if is_ops_path(req.uri().path()) {
        return next.run(req).await;
    }
    let permit = match tokio::time::timeout(
        Limits::QUEUE_WAIT,
        gate.permits.clone().acquire_owned(),
    )
    .await
    {
        Ok(Ok(p)) => p,
        _ => {
            return ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "overloaded",
                "too many requests in progress; try again shortly",
            )
            .into_response();
        }
    };
    let res = match tokio::time::timeout(gate.limits.request_timeout, next.run(req)).await {
        Ok(res) => res,
        Err(_) => {
            tracing::warn!(
                timeout_ms = gate.limits.request_timeout.as_millis() as u64,
                "request timed out"
            );
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "timeout",
                format!(
                    "no answer within {} ms; try again shortly",
                    gate.limits.request_timeout.as_millis()
                ),
            )
            .into_response()
        }
    };
    drop(permit);
    res
}

async fn observe_request(
    axum::extract::State(state): axum::extract::State<ObserveState>,
    mut req: Request,
    next: Next,
) -> Response {
    let start = Instant::now();
    let request_id = req
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128)
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        req.headers_mut().insert(REQUEST_ID, v);
    }
    let method = req.method().to_string();
    let path = req.uri().path().to_owned();
    let query = req.uri().query().unwrap_or_default().to_owned();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let user_agent = req
        .headers()
        .get(axum::http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let span = tracing::info_span!("request", %method, %route, request_id = %request_id);
    let mut res = tracing::Instrument::instrument(next.run(req), span).await;
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        res.headers_mut().insert(REQUEST_ID, v);
    }
    let elapsed = start.elapsed();
    let status = res.status().as_u16();
    if let Some(m) = &state.metrics {
        let labels = RouteLabels {
            method: method.clone(),
            route: route.clone(),
            status,
        };
        m.requests.get_or_create(&labels).inc();
        m.duration
            .get_or_create(&labels)
            .observe(elapsed.as_secs_f64());
    }
    if is_ops_path(&path) {
        return res;
    }
    let bytes = axum::body::HttpBody::size_hint(res.body())
        .exact()
        .unwrap_or(0);
    let line = AccessLog {
        timestamp: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        log_type: "access".to_owned(),
        service: state.service.to_owned(),
        method,
        path,
        route,
        query,
        status,
        bytes,
        duration_ms: (elapsed.as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0,
        request_id,
        user_agent,
    };
    write_access_log(&line);
    res
}

/// Writes one access-log line to stdout (one `write` call per line, so lines never interleave).
fn write_access_log(line: &AccessLog) {
    use std::io::Write;
    if let Ok(mut s) = serde_json::to_vec(line) {
        s.push(b'\n');
        let _ = std::io::stdout().lock().write_all(&s);
    }
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
    let draining = CancellationToken::new();
    let router = {
        let draining = draining.clone();
        router.layer(middleware::from_fn(move |req: Request, next: Next| {
            let draining = draining.is_cancelled();
            async move {
                if !draining {
                    return next.run(req).await;
                }
                let mut resp = if req.uri().path() == "/readyz" {
                    ApiError::unavailable("shutting down").into_response()
                } else {
                    next.run(req).await
                };
                resp.headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
                resp
            }
        }))
    };
    // Graceful shutdown begins when this future ends: after `shutdown` and the drain.
    let drained = async move {
        shutdown.cancelled().await;
        if !drain.is_zero() {
            tracing::info!(
                drain_ms = drain.as_millis() as u64,
                "draining: /readyz answers 503, connections close after their response"
            );
            draining.cancel();
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

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::routing::post;
    use http::Request;
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
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        conn.write_all(format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes())
            .await
            .unwrap();
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
