//! A user's coupons: listing the usable ones and using one.

use super::*;

/// List a user's usable coupons (unused, unexpired); in bearer mode only one's own.
#[utoipa::path(get, path = "/coupons", tag = "coupons", params(ListQuery),
    security((), ("bearer" = [])),
    responses(
    (status = 200, description = "Usable coupons, soonest expiry first", body = CouponList),
    (status = 400, description = "Bad input", body = ErrorBody),
    (status = 401, description = "Bearer mode: no, an invalid or an expired token (`unauthorized`, `invalid_token`)", body = ErrorBody),
    (status = 403, description = "Bearer mode: `userId` is not the token's user (`forbidden`)", body = ErrorBody),
))]
pub(super) async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<ListQuery>,
) -> Result<Json<CouponList>, ApiError> {
    let user_id = acting_for(&caller, q.user_id)?;
    let mut errors = BTreeMap::new();
    positive("userId", user_id, &mut errors);
    invalid(errors)?;
    let coupons = db::usable_coupons(&state.inner.pool, user_id, Utc::now()).await?;
    Ok(Json(CouponList { user_id, coupons }))
}

/// Use a coupon (once); in bearer mode only its owner may.
#[utoipa::path(post, path = "/coupons/{id}/use", tag = "coupons",
    params(("id" = Uuid, Path, description = "Coupon id")),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "Used", body = Coupon),
        (status = 400, description = "Bad input", body = ErrorBody),
        (status = 401, description = "Bearer mode: no, an invalid or an expired token (`unauthorized`, `invalid_token`)", body = ErrorBody),
        (status = 403, description = "Bearer mode: another user's coupon (`forbidden`)", body = ErrorBody),
        (status = 404, description = "No such coupon (a just-issued coupon appears once the worker stored it)", body = ErrorBody),
        (status = 409, description = "Already used (`already_used`)", body = ErrorBody),
        (status = 410, description = "Expired (`expired`)", body = ErrorBody),
))]
pub(super) async fn use_coupon(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> Result<Json<Coupon>, ApiError> {
    if caller.user().is_some() {
        // A coupon never changes hands: checking its owner first leaves no window.
        match db::find_coupon(&state.inner.pool, &id.to_string()).await? {
            Some(c) => caller.ensure(c.user_id, || format!("coupon {id} is another user's"))?,
            None => return Err(ApiError::not_found(format!("coupon {id} not found"))),
        }
    }
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
