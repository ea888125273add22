//! The admin API on its own listener: coupon events and the drift report (`/admin/reconcile`).

use super::*;
use campus_common::kafka::dlq::{self, DeadLetter};

/// The admin listener's document (`/api-docs/openapi.json` there).
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Campus coupons: admin",
        description = "Coupon events and the drift report; served on the admin listener only (`ADMIN_ADDR`)."
    ),
    paths(create_event, list_events, get_event, drift, dead_letters, replay_dead_letters),
    components(schemas(
        NewCouponEvent, CouponEvent, ErrorBody, ErrorDetail, DriftReport, EventDrift, RedisSide,
        DeadLetter
    )),
    tags((name = "admin")),
    modifiers(&StandardResponses)
)]
pub struct AdminDoc;

/// The admin API (coupon events, the drift report), served on the admin listener only
/// (`ADMIN_ADDR`, port [`campus_contract::port::ADMIN`]), never on the public port.
pub fn app(state: AppState) -> Router {
    let router = Router::new()
        .route("/admin/coupon-events", post(create_event).get(list_events))
        .route("/admin/coupon-events/{id}", get(get_event))
        .route("/admin/reconcile", get(drift))
        .route("/admin/dlq", get(dead_letters))
        .route("/admin/dlq/replay", post(replay_dead_letters))
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
    // (MySQL's DATETIME and Redis's millisecond scores hold these; the fuzz check found a year
    // 1001 start and a year 3117 end stored as NULL — 500s; see db::create_event's binding.)
    let in_range = |t: DateTime<Utc>| (1970..=9999).contains(&chrono::Datelike::year(&t));
    for (field, t) in [("startsAt", e.starts_at), ("endsAt", e.ends_at)] {
        if !in_range(t) {
            errors.insert(
                field.into(),
                "must be between the years 1970 and 9999 (UTC)".into(),
            );
        }
    }
    if e.ends_at <= e.starts_at {
        errors.insert("endsAt".into(), "must be after startsAt".into());
    }
    // (the last coupon's expiry, endsAt + couponValidSeconds, must fit a DATETIME too)
    let last_expiry = chrono::Duration::try_seconds(e.coupon_valid_seconds.max(0))
        .and_then(|d| e.ends_at.checked_add_signed(d));
    if in_range(e.ends_at) && !last_expiry.is_some_and(in_range) {
        errors.insert(
            "couponValidSeconds".into(),
            "endsAt plus couponValidSeconds must be before the year 10000".into(),
        );
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
    match drift::report(&s.pool, &s.store, q.coupon_event_id, s.in_flight_grace).await {
        Ok(r) => Ok(Json(r)),
        Err(drift::DriftError::UnknownEvent(id)) => {
            Err(ApiError::not_found(format!("coupon event {id} not found")))
        }
        Err(drift::DriftError::Database(e)) => Err(e.into()),
        Err(e @ (drift::DriftError::Redis(_) | drift::DriftError::Kafka(_))) => Err(unavailable(e)),
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct DlqQuery {
    /// Only records dead-lettered since then: RFC 3339, or an age such as `30m`, `6h`, `2d`.
    since: Option<String>,
}

/// What a dead-letter request works on: the Kafka settings, the `coupon-issue` group's
/// dead-letter topics and the time bound of the query.
struct DlqScope {
    kafka: campus_common::config::KafkaArgs,
    topics: Vec<String>,
    since: Option<DateTime<Utc>>,
}

fn dlq_scope(state: &AppState, q: &DlqQuery) -> Result<DlqScope, ApiError> {
    let kafka = state
        .inner
        .dead_letters
        .clone()
        .ok_or_else(|| ApiError::not_found("dead letters are not served here"))?;
    let since = q
        .since
        .as_deref()
        .map(dlq::parse_since)
        .transpose()
        .map_err(|e| ApiError::bad_request(format!("since: {e}")))?;
    let group = campus_contract::workers::COUPON_ISSUE.group;
    let topics = dlq::group_topics(&kafka, campus_contract::Service::Coupon, group)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    Ok(DlqScope {
        kafka,
        topics,
        since,
    })
}

fn kafka_unavailable(e: dlq::DlqError) -> ApiError {
    tracing::warn!(error = %campus_common::error::chain(&e), "dead letters: Kafka");
    ApiError::unavailable(format!("Kafka: {e}"))
}

/// The `coupon-issue` group's dead letters (records the worker could not store: undecodable,
/// unknown event, over the limit in MySQL), oldest first per partition. The same as
/// `campus-coupon dlq list --group coupon-issue`.
#[utoipa::path(get, path = "/admin/dlq", tag = "admin", params(DlqQuery), responses(
    (status = 200, description = "The dead letters", body = [DeadLetter]),
    (status = 400, description = "Bad `since`", body = ErrorBody),
    (status = 503, description = "Kafka unavailable", body = ErrorBody),
))]
async fn dead_letters(
    State(state): State<AppState>,
    Query(q): Query<DlqQuery>,
) -> Result<Json<Vec<DeadLetter>>, ApiError> {
    let s = dlq_scope(&state, &q)?;
    Ok(Json(
        dlq::list(&s.kafka, &s.topics, s.since)
            .await
            .map_err(kafka_unavailable)?,
    ))
}

/// Re-drives the `coupon-issue` group's dead letters not replayed yet to `coupon.request` (after
/// the cause is fixed); answers what was re-driven. The same as `campus-coupon dlq replay --group
/// coupon-issue`: the group `<prefix>.coupon-issue.dlq-replay` keeps the position, so a second
/// replay re-drives only what was dead-lettered since.
#[utoipa::path(post, path = "/admin/dlq/replay", tag = "admin", params(DlqQuery), responses(
    (status = 200, description = "The dead letters re-driven", body = [DeadLetter]),
    (status = 400, description = "Bad `since`", body = ErrorBody),
    (status = 503, description = "Kafka unavailable", body = ErrorBody),
))]
async fn replay_dead_letters(
    State(state): State<AppState>,
    Query(q): Query<DlqQuery>,
) -> Result<Json<Vec<DeadLetter>>, ApiError> {
    let s = dlq_scope(&state, &q)?;
    let group = dlq::replay_group(&s.kafka, campus_contract::workers::COUPON_ISSUE.group);
    let replayed = dlq::replay(&s.kafka, &s.topics, &group, s.since)
        .await
        .map_err(kafka_unavailable)?;
    tracing::info!(records = replayed.len(), "dead letters re-driven");
    Ok(Json(replayed))
}
