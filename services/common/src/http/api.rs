//! The API middleware (feature `http-api`): extractors whose rejections are the JSON error shape,
//! one access-log line per request with request ids, HTTP metrics, and request limits (a timeout,
//! a body size limit and a concurrency limit, each answered with the JSON error shape).

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::DefaultBodyLimit;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, MatchedPath, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Router, middleware};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use serde::Serialize;

use super::{AccessLog, ApiError, REQUEST_ID};

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

#[derive(Clone)]
struct ObserveState {
    service: &'static str,
    metrics: Option<HttpMetrics>,
    gate: Gate,
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
    // One middleware for ids, logs, metrics and limits (each `from_fn` layer costs a boxed
    // service clone and a boxed future per request).
    router
        .layer(DefaultBodyLimit::max(limits.body_limit))
        .layer(middleware::from_fn_with_state(
            ObserveState {
                service,
                metrics,
                gate,
            },
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

/// How far past the body limit a body is still read (and discarded) before the 413 is sent.
const DISCARD_OVER: u64 = 1 << 20;
/// How long that read may take.
const DISCARD_TIME: Duration = Duration::from_secs(2);

/// Reads a body to its end without keeping it; false when it fails or takes over DISCARD_TIME.
async fn discard(body: axum::body::Body) -> bool {
    use futures::StreamExt;
    let mut data = body.into_data_stream();
    tokio::time::timeout(DISCARD_TIME, async {
        while let Some(chunk) = data.next().await {
            if chunk.is_err() {
                return false;
            }
        }
        true
    })
    .await
    .unwrap_or(false)
}

/// The limits of [`Limits`] around the rest of the stack.
async fn limit_request(gate: &Gate, req: Request, next: Next) -> Response {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let limit = gate.limits.body_limit as u64;
    if let Some(n) = declared.filter(|n| *n > limit) {
        // Answered before the handler, from Content-Length. The body is still on its way: closing
        // with it unread makes the kernel reset the connection, and the client can lose the 413 it
        // was sent. A body up to DISCARD_OVER past the limit is read and thrown away first
        // (bounded in time), so the answer arrives and the connection stays usable; a larger one
        // gets the answer at once and `Connection: close`.
        let discarded = n <= limit.saturating_add(DISCARD_OVER) && discard(req.into_body()).await;
        let mut res = ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the body must be at most {} bytes", gate.limits.body_limit),
        )
        .into_response();
        if !discarded {
            res.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        return res;
    }
    if is_ops_path(req.uri().path()) {
        return next.run(req).await;
    }
    // A free turn is taken without a timer; only a wait for one is bounded.
    let permit = match gate.permits.try_acquire() {
        Ok(p) => Some(p),
        Err(_) => tokio::time::timeout(Limits::QUEUE_WAIT, gate.permits.acquire())
            .await
            .ok()
            .and_then(Result::ok),
    };
    let Some(permit) = permit else {
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "overloaded",
            "too many requests in progress; try again shortly",
        )
        .into_response();
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
    let id_header = HeaderValue::from_str(&request_id).ok();
    if let Some(v) = &id_header {
        req.headers_mut().insert(REQUEST_ID, v.clone());
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
    let mut res =
        tracing::Instrument::instrument(limit_request(&state.gate, req, next), span).await;
    if let Some(v) = id_header {
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

/// The JSON error body every Campus API answers with (the documentation of [`ApiError`]'s shape,
/// one schema `ErrorBody` in every API's OpenAPI document).
#[derive(Debug, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// One error.
#[derive(Debug, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Stable, machine-readable: `bad_request` (a parameter or body that does not parse),
    /// `validation_failed` (with `details` per field), `not_found`, `conflict`,
    /// `payload_too_large`, `unsupported_media_type`, `unauthorized` (no bearer token),
    /// `invalid_token`, `forbidden` (another user's), `rate_limited`, `unavailable` (a store),
    /// `overloaded`, `timeout`, `internal`; coupons also `sold_out`, `already_issued`,
    /// `not_started`, `ended`.
    pub code: String,
    pub message: String,
    /// Per-field messages for `validation_failed`.
    #[schema(value_type = Option<Object>)]
    pub details: Option<serde_json::Value>,
}

/// Adds to every operation of an API's OpenAPI document the answers the shared middleware and
/// extractors give whatever the handler ([`observe`], the `Json`/`Path`/`Query` extractors),
/// unless the operation documents them itself: `400` (a path or query parameter that does not
/// parse), `503` (overloaded, timed out, a store unavailable; with `Retry-After`), and for an
/// operation with a body `413`, `415` (not `application/json`) and `422` (JSON of the wrong
/// shape). Each with the `ErrorBody` schema.
pub struct StandardResponses;

impl utoipa::Modify for StandardResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder, header::HeaderBuilder};
        let error = |description: &str, retry_after: bool| {
            let mut r = ResponseBuilder::new().description(description).content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("ErrorBody")))
                    .build(),
            );
            if retry_after {
                r = r.header(
                    "Retry-After",
                    HeaderBuilder::new()
                        .schema(utoipa::openapi::schema::Object::with_type(
                            utoipa::openapi::schema::Type::Integer,
                        ))
                        .description(Some("Seconds to wait before trying again"))
                        .build(),
                );
            }
            r.build()
        };
        for item in openapi.paths.paths.values_mut() {
            for op in [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ]
            .into_iter()
            .flatten()
            {
                let has_body = op.request_body.is_some();
                let mut add = |status: &str, description: &str, retry_after: bool| {
                    op.responses
                        .responses
                        .entry(status.to_owned())
                        .or_insert_with(|| error(description, retry_after).into());
                };
                add(
                    "400",
                    "Bad input: a parameter or body that does not parse",
                    false,
                );
                add(
                    "503",
                    "Overloaded, timed out or a store unavailable: try again after Retry-After",
                    true,
                );
                if has_body {
                    add("413", "The body is larger than the API accepts", false);
                    add("415", "The body is not `application/json`", false);
                    add("422", "JSON of the wrong shape or values", false);
                }
            }
        }
    }
}
