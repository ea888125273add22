//! The HTTP API: issue, list and use coupons; create coupon events; the drift report.
//!
//! Who acts: by default (`AUTH_MODE=none`, the course's shape) the `userId` a request names; with
//! `AUTH_MODE=jwt` the user of the bearer token — issuing and listing act only for the token's user
//! and only the coupon's owner may use it (others: 403); see [`campus_common::auth`]. The admin
//! listener is not user-facing and checks no token.
//!
//! - [`issue`]: `POST /coupons`, the Redis decision, the reload of lost keys, the Kafka write.
//! - [`coupons`]: a user's coupons and using one.
//! - [`admin`]: the admin API (coupon events, the drift report) on its own listener.

mod admin;
mod coupons;
mod issue;

pub use admin::{AdminDoc, app as admin_app};

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{FromRef, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use campus_common::auth::{Auth, BearerSecurity, Caller};
use campus_common::envelope::{Envelope, EventType};
use campus_common::http::{
    ApiError, HttpMetrics, Json, Path, Query, REQUEST_ID, StandardResponses, observe,
};
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
use crate::drift::{self, DriftReport, EventDrift, RedisSide};
use crate::inflight::InFlight;
use crate::limits::Limits;
use crate::metrics::{ApiMetrics, OutcomeLabels};
use crate::model::{
    Coupon, CouponEvent, CouponList, ErrorBody, ErrorDetail, IssueRequest, IssueRequested, Issued,
    ListQuery, NewCouponEvent, request_key,
};
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
    /// Who a request acts for (mode `none` by default).
    auth: Auth,
    /// The Kafka settings `/admin/dlq` reads the `coupon-issue` group's dead letters with (None:
    /// those endpoints answer 404; the binary always sets them).
    dead_letters: Option<campus_common::config::KafkaArgs>,
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
                in_flight_grace: drift::DEFAULT_IN_FLIGHT_GRACE,
                in_flight: None,
                limits: Limits::default(),
                auth: Auth::none(),
                dead_letters: None,
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

    /// Who the public API's requests act for (mode `none` unless given).
    pub fn with_auth(mut self, auth: Auth) -> Self {
        self.inner_mut().auth = auth;
        self
    }

    /// Serves `/admin/dlq` and `/admin/dlq/replay` (the `coupon-issue` group's dead letters) on
    /// the admin listener, reading and writing Kafka with `kafka` (its prefix names the topics).
    pub fn with_dead_letters(mut self, kafka: campus_common::config::KafkaArgs) -> Self {
        self.inner_mut().dead_letters = Some(kafka);
        self
    }

    fn inner_mut(&mut self) -> &mut Inner {
        Arc::get_mut(&mut self.inner).expect("AppState is configured before it is shared")
    }
}

impl FromRef<AppState> for Auth {
    fn from_ref(state: &AppState) -> Auth {
        state.inner.auth.clone()
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Campus coupons",
        description = "First-come-first-served coupons: one Redis Lua decision per request, an acknowledged Kafka write, at most `limit` coupons and one per user."
    ),
    paths(issue::issue, coupons::list, coupons::use_coupon),
    components(schemas(
        IssueRequest, Issued, Coupon, CouponList, ErrorBody, ErrorDetail, IssueRequested
    )),
    tags((name = "coupons")),
    modifiers(&BearerSecurity, &StandardResponses)
)]
pub struct ApiDoc;

/// The public API: `/coupons…`, `/healthz`, `/readyz`, `/metrics`, Swagger UI and the OpenAPI
/// document. `/admin/*` is not here: it is [`admin::app`], on a listener of its own.
pub fn app(state: AppState) -> Router {
    let api = Router::new()
        .route("/coupons", post(issue::issue).get(coupons::list))
        .route("/coupons/{id}/use", post(coupons::use_coupon))
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

pub(super) fn positive(name: &str, v: i64, errors: &mut BTreeMap<String, String>) {
    if v <= 0 {
        errors.insert(name.to_owned(), "must be a positive integer".to_owned());
    }
}

/// The user a request acts for: the token's in bearer mode (another id named is 403), else the
/// one named, which is then required (400).
pub(super) fn acting_for(caller: &Caller, named: Option<i64>) -> Result<i64, ApiError> {
    caller.acting_for(named, "userId")?.ok_or_else(|| {
        ApiError::bad_request("userId is required").with_details(json!({"userId": "is required"}))
    })
}

pub(super) fn invalid(errors: BTreeMap<String, String>) -> Result<(), ApiError> {
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::bad_request("invalid input").with_details(json!(errors)))
    }
}

/// Infrastructure trouble on the issue path: the client may retry.
pub(super) fn unavailable(e: impl std::error::Error) -> ApiError {
    tracing::warn!(error = %campus_common::error::chain(&e), "dependency failed");
    ApiError::unavailable("coupon issuing is temporarily unavailable; retry shortly")
}

pub(super) fn retry_later(e: ApiError) -> Response {
    let mut res = e.into_response();
    res.headers_mut()
        .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
    res
}

/// The issue window of an event, as the Redis decision checks it.
pub(super) fn window_of(e: &CouponEvent) -> EventWindow {
    EventWindow {
        limit: e.limit,
        starts_at: e.starts_at,
        ends_at: e.ends_at,
    }
}
