//! The admin API on its own listener: coupon events and the drift report (`/admin/reconcile`).

use super::*;

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

/// The admin API (coupon events, the drift report), served on the admin listener only
/// (`ADMIN_ADDR`, port [`campus_contract::port::ADMIN`]), never on the public port.
pub fn app(state: AppState) -> Router {
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
    match drift::report(&s.pool, &s.store, q.coupon_event_id, s.in_flight_grace).await {
        Ok(r) => Ok(Json(r)),
        Err(drift::DriftError::UnknownEvent(id)) => {
            Err(ApiError::not_found(format!("coupon event {id} not found")))
        }
        Err(drift::DriftError::Database(e)) => Err(e.into()),
        Err(e @ (drift::DriftError::Redis(_) | drift::DriftError::Kafka(_))) => Err(unavailable(e)),
    }
}
