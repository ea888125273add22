//! The HTTP API: issue, list and use coupons; create coupon events; the drift report.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use campus_common::envelope::{Envelope, EventType};
use campus_common::http::{ApiError, HttpMetrics, Json, Path, Query, REQUEST_ID, observe};
use campus_common::kafka::Producer;
use campus_common::ops::{self, Readiness};
use chrono::{DateTime, Utc};
use prometheus_client::registry::Registry;
use serde::Deserialize;
use serde_json::json;
use sqlx::MySqlPool;
use utoipa::OpenApi;
use utoipa_swagger_ui::SwaggerUi;
use uuid::Uuid;

use crate::config::RateLimitArgs;
use crate::db::{self, UseOutcome};
use crate::inflight::InFlight;
use crate::limits::Limits;
use crate::metrics::{ApiMetrics, OutcomeLabels};
use crate::model::{
    Coupon, CouponEvent, CouponList, ErrorBody, ErrorDetail, IssueRequest, IssueRequested, Issued,
    ListQuery, NewCouponEvent, request_key,
};
use crate::reconcile::{self, DriftReport, EventDrift, RedisSide};
use crate::store::{CouponStore, Decision, EventWindow, GiveBack, Reload, StoreError};

/// Largest limit an event may have.
pub const MAX_LIMIT: i64 = 10_000_000;

/// Everything the handlers share. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    pool: MySqlPool,
    store: CouponStore,
    producer: Producer,
    topic: String,
    metrics: ApiMetrics,
    http_metrics: HttpMetrics,
    registry: Arc<Registry>,
    readiness: Readiness,
    in_flight_grace: Duration,
    /// Where the requests acknowledged but not yet stored are read from when Redis lost an
    /// event (None: the reload counts MySQL's coupons only).
    in_flight: Option<InFlight>,
    /// Rate limits on `POST /coupons` (none by default).
    limits: Limits,
    /// One reload at a time per event in this process.
    reloading: std::sync::Mutex<HashMap<i64, Arc<tokio::sync::Mutex<()>>>>,
}

impl AppState {
    /// `topic` is the full (prefixed) name of `coupon.request`.
    pub fn new(
        pool: MySqlPool,
        store: CouponStore,
        producer: Producer,
        topic: impl Into<String>,
    ) -> Self {
        let mut registry = campus_common::metrics::registry("campus-coupon");
        let http_metrics = HttpMetrics::register(&mut registry);
        let metrics = ApiMetrics::register(&mut registry);
        let readiness = {
            let (pool, store, producer) = (pool.clone(), store.clone(), producer.clone());
            Readiness::new()
                .check("mysql", move || {
                    let pool = pool.clone();
                    async move { campus_common::mysql::ping(&pool).await }
                })
                .check("redis", move || {
                    let store = store.clone();
                    async move { store.ping().await }
                })
                .check("kafka", move || {
                    let producer = producer.clone();
                    async move { producer.ping().await }
                })
        };
        Self {
            inner: Arc::new(Inner {
                pool,
                store,
                producer,
                topic: topic.into(),
                metrics,
                http_metrics,
                registry: Arc::new(registry),
                readiness,
                in_flight_grace: reconcile::DEFAULT_IN_FLIGHT_GRACE,
                in_flight: None,
                limits: Limits::default(),
                reloading: Default::default(),
            }),
        }
    }

    /// Reads the in-flight requests from `in_flight` when Redis lost an event's keys, so the
    /// reload counts them (the binary always sets it).
    pub fn with_in_flight(mut self, in_flight: InFlight) -> Self {
        self.inner_mut().in_flight = Some(in_flight);
        self
    }

    /// The gauges the periodic drift report refreshes (`campus_coupon_events_drifted`, …).
    pub fn drift_metrics(&self) -> crate::metrics::DriftMetrics {
        self.inner.metrics.drift.clone()
    }

    /// Rate limits on `POST /coupons`.
    pub fn with_rate_limits(mut self, args: &RateLimitArgs) -> Self {
        self.inner_mut().limits = Limits::new(args);
        self
    }

    fn inner_mut(&mut self) -> &mut Inner {
        Arc::get_mut(&mut self.inner).expect("AppState is configured before it is shared")
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Campus coupons",
        description = "First-come-first-served coupons: one Redis Lua decision per request, an acknowledged Kafka write, at most `limit` coupons and one per user."
    ),
    paths(issue, list, use_coupon),
    components(schemas(
        IssueRequest, Issued, Coupon, CouponList, ErrorBody, ErrorDetail, IssueRequested
    )),
    tags((name = "coupons"))
)]
pub struct ApiDoc;

/// The admin listener's document (`/api-docs/openapi.json` there).
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Campus coupons: admin",
        description = "Coupon events and the drift report; served on the admin listener only (`ADMIN_ADDR`)."
    ),
    paths(create_event, list_events, get_event, drift),
    components(schemas(
        NewCouponEvent, CouponEvent, ErrorBody, ErrorDetail, DriftReport, EventDrift, RedisSide
    )),
    tags((name = "admin"))
)]
pub struct AdminDoc;

/// The public API: `/coupons…`, `/healthz`, `/readyz`, `/metrics`, Swagger UI and the OpenAPI
/// document. `/admin/*` is not here: it is [`admin_app`], on a listener of its own.
pub fn app(state: AppState) -> Router {
    let api = Router::new()
        .route("/coupons", post(issue).get(list))
        .route("/coupons/{id}/use", post(use_coupon))
        .with_state(state.clone())
        .fallback(|| async { ApiError::not_found("no such endpoint") });
    let router = api
        .merge(SwaggerUi::new("/swagger-ui").url("/api-docs/openapi.json", ApiDoc::openapi()))
        .merge(ops::router(
            state.inner.registry.clone(),
            state.inner.readiness.clone(),
        ));
    observe(
        router,
        "campus-coupon",
        Some(state.inner.http_metrics.clone()),
    )
}

/// The admin API (coupon events, the drift report), served on the admin listener only
/// (`ADMIN_ADDR`, port [`campus_contract::port::ADMIN`]), never on the public port.
pub fn admin_app(state: AppState) -> Router {
    let router = Router::new()
        .route("/admin/coupon-events", post(create_event).get(list_events))
        .route("/admin/coupon-events/{id}", get(get_event))
        .route("/admin/reconcile", get(drift))
        .route(
            "/api-docs/openapi.json",
            get(|| async { axum::Json(AdminDoc::openapi()) }),
        )
        .with_state(state.clone())
        .fallback(|| async { ApiError::not_found("no such endpoint") });
    observe(
        router,
        "campus-coupon",
        Some(state.inner.http_metrics.clone()),
    )
}

fn positive(name: &str, v: i64, errors: &mut BTreeMap<String, String>) {
    if v <= 0 {
        errors.insert(name.to_owned(), "must be a positive integer".to_owned());
    }
}

fn invalid(errors: BTreeMap<String, String>) -> Result<(), ApiError> {
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::bad_request("invalid input").with_details(json!(errors)))
    }
}

/// Infrastructure trouble on the issue path: the client may retry.
fn unavailable(e: impl std::error::Error) -> ApiError {
    tracing::warn!(error = %campus_common::error::chain(&e), "dependency failed");
    ApiError::unavailable("coupon issuing is temporarily unavailable; retry shortly")
}

fn retry_later(e: ApiError) -> Response {
    let mut res = e.into_response();
    res.headers_mut()
        .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
    res
}

/// Issue a coupon.
///
/// Decided in Redis by one Lua script (window, one per user, limit); answered only after the request
/// is acknowledged by Kafka. On a failed write the slot is given back and the answer is 503.
#[utoipa::path(post, path = "/coupons", tag = "coupons", request_body = IssueRequest, responses(
    (status = 201, description = "Issued", body = Issued),
    (status = 400, description = "Bad input", body = ErrorBody),
    (status = 403, description = "Outside the event's window (`not_started`, `ended`)", body = ErrorBody),
    (status = 404, description = "Unknown coupon event", body = ErrorBody),
    (status = 409, description = "This user already has a coupon of this event (`already_issued`)", body = ErrorBody),
    (status = 410, description = "Sold out (`sold_out`)", body = ErrorBody),
    (status = 429, description = "Over the per-user or global rate limit (`rate_limited`); `Retry-After` says when to try again", body = ErrorBody),
    (status = 503, description = "Redis or Kafka unavailable; nothing was issued, retry", body = ErrorBody),
))]
async fn issue(
    State(state): State<AppState>,
    headers: HeaderMap,
    Json(req): Json<IssueRequest>,
) -> Response {
    if let Err(limited) = state.inner.limits.check(req.user_id) {
        state
            .inner
            .metrics
            .decisions
            .get_or_create(&OutcomeLabels {
                outcome: "rate_limited",
            })
            .inc();
        return limited.into_response();
    }
    let request_id = headers
        .get(&REQUEST_ID)
        .map(|v| v.as_bytes().to_vec())
        .unwrap_or_default();
    // Decision, write and give-back run in their own task: a client that hangs up half-way must
    // not leave a slot taken without a Kafka record.
    match tokio::spawn(issue_one(state, req, request_id)).await {
        Ok(Ok(issued)) => (StatusCode::CREATED, Json(issued)).into_response(),
        Ok(Err(e)) if e.status == StatusCode::SERVICE_UNAVAILABLE => retry_later(e),
        Ok(Err(e)) => e.into_response(),
        Err(e) => ApiError::internal(format!("issue task failed: {e}")).into_response(),
    }
}

async fn issue_one(
    state: AppState,
    req: IssueRequest,
    request_id: Vec<u8>,
) -> Result<Issued, ApiError> {
    let outcome = match decide(&state, &req).await {
        Ok(request) => write_request(&state, req, request, request_id).await,
        Err(e) => Err(e),
    };
    let label = match &outcome {
        Ok(_) => "issued",
        Err(e) => e.code,
    };
    state
        .inner
        .metrics
        .decisions
        .get_or_create(&OutcomeLabels { outcome: label })
        .inc();
    outcome
}

/// The Redis decision (reloading missing metadata from MySQL); the request id on success.
async fn decide(state: &AppState, req: &IssueRequest) -> Result<Uuid, ApiError> {
    let s = &state.inner;
    let mut errors = BTreeMap::new();
    positive("userId", req.user_id, &mut errors);
    positive("couponEventId", req.coupon_event_id, &mut errors);
    invalid(errors)?;
    let (event, user) = (req.coupon_event_id, req.user_id);
    let request = Uuid::now_v7();
    let mut decision = match s.store.decide(event, user, &request, None).await {
        Ok(d) => d,
        Err(e) => return Err(undecided(state, req, &request, e).await),
    };
    if decision == Decision::Missing {
        decision = reload(state, req, &request).await?;
    }
    match decision {
        Decision::Issued { .. } => Ok(request),
        Decision::AlreadyIssued => Err(ApiError::conflict(
            "already_issued",
            format!("user {user} already has a coupon of event {event}"),
        )),
        Decision::NotStarted => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "not_started",
            format!("coupon event {event} has not started yet"),
        )),
        Decision::Ended => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "ended",
            format!("coupon event {event} has ended"),
        )),
        Decision::SoldOut => Err(ApiError::new(
            StatusCode::GONE,
            "sold_out",
            format!("coupon event {event} is sold out"),
        )),
        Decision::Missing => Err(ApiError::internal(
            "the issue script found no metadata right after a reload",
        )),
    }
}

/// Redis lost (or never got) an event's keys: restores them from MySQL and Kafka, then decides.
///
/// The slots to count are MySQL's coupons and the requests acknowledged by Kafka that the worker
/// has not stored yet. Requests decided before the keys were lost may still be waiting for their
/// acknowledgement, so the reload first waits out the produce timeout ([`InFlight::settle`]; no
/// decision is taken meanwhile: every one finds the keys missing), then reads the uncommitted
/// records, then MySQL (in that order: a record committed in between is in MySQL by then).
/// An unknown event touches nothing in Redis.
async fn reload(
    state: &AppState,
    req: &IssueRequest,
    request: &Uuid,
) -> Result<Decision, ApiError> {
    let s = &state.inner;
    let (event, user) = (req.coupon_event_id, req.user_id);
    let lock = s
        .reloading
        .lock()
        .expect("poisoned")
        .entry(event)
        .or_default()
        .clone();
    let _one_at_a_time = lock.lock().await;
    // Another request of this process may have reloaded while this one waited.
    let decision = match s.store.decide(event, user, request, None).await {
        Ok(d) => d,
        Err(e) => return Err(undecided(state, req, request, e).await),
    };
    if decision != Decision::Missing {
        return Ok(decision);
    }
    let Some(e) = db::find_event(&s.pool, event).await.map_err(unavailable)? else {
        return Err(ApiError::not_found(format!(
            "coupon event {event} not found"
        )));
    };
    let now = Utc::now();
    if now >= e.ends_at {
        // Over (the keys expired after the retention): nothing to restore.
        return Ok(Decision::Ended);
    }
    let mut pending = Vec::new();
    if let Some(in_flight) = &s.in_flight
        && now >= e.starts_at - chrono::Duration::seconds(5)
    {
        tracing::warn!(
            coupon_event_id = event,
            settle_ms = in_flight.settle().as_millis() as u64,
            "Redis lost the event's keys; waiting for writes in progress before reloading"
        );
        tokio::time::sleep(in_flight.settle()).await;
        pending = in_flight
            .scan(event)
            .await
            .map_err(unavailable)?
            .into_iter()
            .map(|r| (r.user_id, r.coupon_id.to_string()))
            .collect();
    }
    let holders = db::holders(&s.pool, event).await.map_err(unavailable)?;
    s.metrics.reloads.inc();
    tracing::info!(
        coupon_event_id = event,
        holders = holders.len(),
        in_flight = pending.len(),
        "reloading event metadata into Redis"
    );
    let reload = Reload {
        window: window_of(&e),
        holders,
        pending,
    };
    match s.store.decide(event, user, request, Some(&reload)).await {
        Ok(d) => Ok(d),
        Err(e) => Err(undecided(state, req, request, e).await),
    }
}

/// The script's answer was lost (e.g. a timeout): it may have taken a slot, so give back whatever
/// this request holds (a no-op when it took nothing) before answering 503.
async fn undecided(
    state: &AppState,
    req: &IssueRequest,
    request: &Uuid,
    e: StoreError,
) -> ApiError {
    let s = &state.inner;
    if let Err(back) = s
        .store
        .give_back(req.coupon_event_id, req.user_id, request)
        .await
    {
        tracing::warn!(coupon_id = %request, error = %campus_common::error::chain(&back), "could not give back after a lost decision");
    }
    unavailable(e)
}

fn window_of(e: &CouponEvent) -> EventWindow {
    EventWindow {
        limit: e.limit,
        starts_at: e.starts_at,
        ends_at: e.ends_at,
    }
}

/// Writes the request to Kafka and waits for the acknowledgement; gives the slot back on failure.
async fn write_request(
    state: &AppState,
    req: IssueRequest,
    request: Uuid,
    request_id: Vec<u8>,
) -> Result<Issued, ApiError> {
    let s = &state.inner;
    let key = request_key(req.coupon_event_id, req.user_id);
    let mut envelope = Envelope::new(
        EventType::Created,
        key.clone(),
        1,
        IssueRequested {
            coupon_id: request,
            user_id: req.user_id,
            coupon_event_id: req.coupon_event_id,
        },
    );
    envelope.event_id = request;
    let issued = Issued {
        coupon_id: request,
        user_id: req.user_id,
        coupon_event_id: req.coupon_event_id,
        issued_at: envelope.occurred_at,
    };
    let payload = serde_json::to_vec(&envelope).map_err(ApiError::internal)?;
    let header_name = REQUEST_ID;
    let headers: &[(&str, &[u8])] = &[(header_name.as_str(), &request_id)];
    let error = match s
        .producer
        .send(&s.topic, key.as_bytes(), &payload, headers)
        .await
    {
        Ok(_) => return Ok(issued),
        Err(e) => campus_common::error::chain(&e),
    };
    let back = s
        .store
        .give_back(req.coupon_event_id, req.user_id, &request)
        .await;
    let outcome = match &back {
        Ok(GiveBack::Returned) => "returned",
        Ok(GiveBack::Confirmed) => "confirmed",
        Ok(GiveBack::NotHeld) => "not_held",
        Err(_) => "failed",
    };
    s.metrics
        .give_backs
        .get_or_create(&OutcomeLabels { outcome })
        .inc();
    match back {
        Ok(GiveBack::Confirmed) => {
            tracing::info!(coupon_id = %request, %error, "Kafka write reported failure but the worker already stored the request");
            Ok(issued)
        }
        Ok(_) => {
            tracing::warn!(coupon_id = %request, %error, give_back = outcome, "Kafka write failed; slot given back");
            Err(ApiError::unavailable(
                "the issue request could not be recorded; nothing was issued, retry shortly",
            ))
        }
        Err(e) => {
            tracing::error!(coupon_id = %request, %error, give_back_error = %campus_common::error::chain(&e), "Kafka write failed and the slot could not be given back");
            Err(ApiError::unavailable(
                "the issue request could not be recorded; nothing was issued, retry shortly",
            ))
        }
    }
}

/// List a user's usable coupons (unused, unexpired).
#[utoipa::path(get, path = "/coupons", tag = "coupons", params(ListQuery), responses(
    (status = 200, description = "Usable coupons, soonest expiry first", body = CouponList),
    (status = 400, description = "Bad input", body = ErrorBody),
))]
async fn list(
    State(state): State<AppState>,
    Query(q): Query<ListQuery>,
) -> Result<Json<CouponList>, ApiError> {
    let mut errors = BTreeMap::new();
    positive("userId", q.user_id, &mut errors);
    invalid(errors)?;
    let coupons = db::usable_coupons(&state.inner.pool, q.user_id, Utc::now()).await?;
    Ok(Json(CouponList {
        user_id: q.user_id,
        coupons,
    }))
}

/// Use a coupon (once).
#[utoipa::path(post, path = "/coupons/{id}/use", tag = "coupons",
    params(("id" = Uuid, Path, description = "Coupon id")),
    responses(
        (status = 200, description = "Used", body = Coupon),
        (status = 400, description = "Bad input", body = ErrorBody),
        (status = 404, description = "No such coupon (a just-issued coupon appears once the worker stored it)", body = ErrorBody),
        (status = 409, description = "Already used (`already_used`)", body = ErrorBody),
        (status = 410, description = "Expired (`expired`)", body = ErrorBody),
))]
async fn use_coupon(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> Result<Json<Coupon>, ApiError> {
    match db::use_coupon(&state.inner.pool, &id.to_string(), Utc::now()).await? {
        UseOutcome::Used(c) => Ok(Json(c)),
        UseOutcome::NotFound => Err(ApiError::not_found(format!("coupon {id} not found"))),
        UseOutcome::AlreadyUsed(_) => Err(ApiError::conflict(
            "already_used",
            format!("coupon {id} was already used"),
        )),
        UseOutcome::Expired(c) => Err(ApiError::new(
            StatusCode::GONE,
            "expired",
            format!("coupon {id} expired at {}", c.expires_at.to_rfc3339()),
        )),
    }
}

/// Create a coupon event (stored in MySQL; its limit and window are written to Redis).
#[utoipa::path(post, path = "/admin/coupon-events", tag = "admin", request_body = NewCouponEvent, responses(
    (status = 201, description = "Created", body = CouponEvent),
    (status = 400, description = "Bad input", body = ErrorBody),
))]
async fn create_event(
    State(state): State<AppState>,
    Json(e): Json<NewCouponEvent>,
) -> Result<(StatusCode, Json<CouponEvent>), ApiError> {
    let mut errors = BTreeMap::new();
    let name_len = e.name.trim().chars().count();
    if name_len == 0 || e.name.chars().count() > 200 {
        errors.insert("name".into(), "must be 1–200 characters".into());
    }
    if !(1..=MAX_LIMIT).contains(&e.limit) {
        errors.insert("limit".into(), format!("must be between 1 and {MAX_LIMIT}"));
    }
    if e.ends_at <= e.starts_at {
        errors.insert("endsAt".into(), "must be after startsAt".into());
    }
    if !(1..=10 * 365 * 86_400).contains(&e.coupon_valid_seconds) {
        errors.insert(
            "couponValidSeconds".into(),
            "must be between 1 and 315360000 (10 years)".into(),
        );
    }
    invalid(errors)?;
    // Times are stored with millisecond precision; decide on exactly what is stored.
    let e = NewCouponEvent {
        starts_at: millis(e.starts_at),
        ends_at: millis(e.ends_at),
        ..e
    };
    let s = &state.inner;
    let created = db::create_event(&s.pool, &e).await?;
    if let Err(err) = s.store.put_window(created.id, &window_of(&created)).await {
        // The first issue request reloads it from MySQL.
        tracing::warn!(coupon_event_id = created.id, error = %campus_common::error::chain(&err), "event metadata not written to Redis; it will be reloaded on first use");
    }
    tracing::info!(
        coupon_event_id = created.id,
        limit = created.limit,
        "coupon event created"
    );
    Ok((StatusCode::CREATED, Json(created)))
}

fn millis(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(t.timestamp_millis()).unwrap_or(t)
}

/// List coupon events.
#[utoipa::path(get, path = "/admin/coupon-events", tag = "admin", responses(
    (status = 200, description = "All coupon events", body = [CouponEvent]),
))]
async fn list_events(State(state): State<AppState>) -> Result<Json<Vec<CouponEvent>>, ApiError> {
    Ok(Json(db::list_events(&state.inner.pool).await?))
}

/// One coupon event.
#[utoipa::path(get, path = "/admin/coupon-events/{id}", tag = "admin",
    params(("id" = i64, Path, description = "Coupon event id")),
    responses(
        (status = 200, description = "The event", body = CouponEvent),
        (status = 404, description = "Unknown event", body = ErrorBody),
))]
async fn get_event(
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Json<CouponEvent>, ApiError> {
    db::find_event(&state.inner.pool, id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("coupon event {id} not found")))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
struct DriftQuery {
    /// Only this event (default: every event).
    coupon_event_id: Option<i64>,
}

/// The drift report: Redis holders against MySQL coupons, per event.
#[utoipa::path(get, path = "/admin/reconcile", tag = "admin", params(DriftQuery), responses(
    (status = 200, description = "The report", body = DriftReport),
    (status = 404, description = "Unknown event", body = ErrorBody),
    (status = 503, description = "Redis unavailable", body = ErrorBody),
))]
async fn drift(
    State(state): State<AppState>,
    Query(q): Query<DriftQuery>,
) -> Result<Json<DriftReport>, ApiError> {
    let s = &state.inner;
    match reconcile::report(&s.pool, &s.store, q.coupon_event_id, s.in_flight_grace).await {
        Ok(r) => Ok(Json(r)),
        Err(reconcile::ReconcileError::UnknownEvent(id)) => {
            Err(ApiError::not_found(format!("coupon event {id} not found")))
        }
        Err(reconcile::ReconcileError::Database(e)) => Err(e.into()),
        Err(e @ (reconcile::ReconcileError::Redis(_) | reconcile::ReconcileError::Kafka(_))) => {
            Err(unavailable(e))
        }
    }
}
