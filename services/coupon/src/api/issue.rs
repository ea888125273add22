//! `POST /coupons`: the Redis decision (with the reload of keys Redis lost), the acknowledged
//! Kafka write, and the slot given back when the write fails.

use super::*;

/// Issue a coupon (in bearer mode to the token's user).
///
/// Decided in Redis by one Lua script (window, one per user, limit); answered only after the request
/// is acknowledged by Kafka. On a failed write the slot is given back and the answer is 503.
#[utoipa::path(post, path = "/coupons", tag = "coupons", request_body = IssueRequest,
    security((), ("bearer" = [])),
    responses(
    (status = 201, description = "Issued", body = Issued),
    (status = 400, description = "Bad input", body = ErrorBody),
    (status = 401, description = "Bearer mode: no, an invalid or an expired token (`unauthorized`, `invalid_token`)", body = ErrorBody),
    (status = 403, description = "Outside the event's window (`not_started`, `ended`); in bearer mode also `userId` not the token's user (`forbidden`)", body = ErrorBody),
    (status = 404, description = "Unknown coupon event", body = ErrorBody),
    (status = 409, description = "This user already has a coupon of this event (`already_issued`)", body = ErrorBody),
    (status = 410, description = "Sold out (`sold_out`)", body = ErrorBody),
    (status = 429, description = "Over the per-user or global rate limit (`rate_limited`); `Retry-After` says when to try again", body = ErrorBody),
    (status = 503, description = "Redis or Kafka unavailable; nothing was issued, retry", body = ErrorBody),
))]
pub(super) async fn issue(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Json(req): Json<IssueRequest>,
) -> Response {
    let req = match acting_for(&caller, req.user_id) {
        Ok(user_id) => Wanted {
            user_id,
            coupon_event_id: req.coupon_event_id,
        },
        Err(e) => return e.into_response(),
    };
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

/// What a request asks for, its user settled.
#[derive(Debug, Clone, Copy)]
struct Wanted {
    user_id: i64,
    coupon_event_id: i64,
}

async fn issue_one(state: AppState, req: Wanted, request_id: Vec<u8>) -> Result<Issued, ApiError> {
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
async fn decide(state: &AppState, req: &Wanted) -> Result<Uuid, ApiError> {
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
async fn reload(state: &AppState, req: &Wanted, request: &Uuid) -> Result<Decision, ApiError> {
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
async fn undecided(state: &AppState, req: &Wanted, request: &Uuid, e: StoreError) -> ApiError {
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

/// Writes the request to Kafka and waits for the acknowledgement; gives the slot back on failure.
async fn write_request(
    state: &AppState,
    req: Wanted,
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
