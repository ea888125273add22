//! The API's request and response bodies, and the Kafka record of an issue request.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// A coupon event to create.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewCouponEvent {
    /// Shown to users; 1–200 characters.
    #[schema(example = "Black Friday 10%")]
    pub name: String,
    /// How many coupons may be issued in total (1–10,000,000).
    #[schema(example = 100)]
    pub limit: i64,
    /// Issuing opens at this time (RFC 3339).
    pub starts_at: DateTime<Utc>,
    /// Issuing closes at this time (RFC 3339); after `startsAt`.
    pub ends_at: DateTime<Utc>,
    /// A coupon can be used for this many seconds after it was issued.
    #[schema(example = 604800)]
    pub coupon_valid_seconds: i64,
}

/// A coupon event.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct CouponEvent {
    pub id: i64,
    pub name: String,
    #[sqlx(rename = "issue_limit")]
    pub limit: i64,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub coupon_valid_seconds: i64,
    pub created_at: DateTime<Utc>,
}

/// `POST /coupons`: ask for a coupon of an event.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IssueRequest {
    /// Positive user id: required by default; in bearer mode the token's user (may be omitted,
    /// another user's id is 403).
    #[schema(example = 42)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<i64>,
    /// Positive coupon event id.
    #[schema(example = 1)]
    pub coupon_event_id: i64,
}

/// The answer to a successful issue: the coupon is reserved and its request is durable in Kafka;
/// it shows in `GET /coupons` as soon as the issue worker stored it (normally milliseconds).
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Issued {
    /// The coupon's id (also the id of the issue request).
    pub coupon_id: Uuid,
    pub user_id: i64,
    pub coupon_event_id: i64,
    pub issued_at: DateTime<Utc>,
}

/// A coupon.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct Coupon {
    pub id: String,
    pub user_id: i64,
    pub coupon_event_id: i64,
    pub issued_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub used_at: Option<DateTime<Utc>>,
}

/// `GET /coupons?userId=`: the user's usable (unused, unexpired) coupons, soonest expiry first.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CouponList {
    pub user_id: i64,
    pub coupons: Vec<Coupon>,
}

/// Query of `GET /coupons`.
#[derive(Debug, Clone, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Positive user id: required by default; in bearer mode the token's user (may be omitted,
    /// another user's id is 403).
    pub user_id: Option<i64>,
}

/// The record written to `coupon.request` (inside the event envelope, whose `eventId` is the
/// coupon id and whose `occurredAt` is the issue time). Key: `{couponEventId}:{userId}`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct IssueRequested {
    pub coupon_id: Uuid,
    pub user_id: i64,
    pub coupon_event_id: i64,
}

/// The Kafka key of an issue request.
pub fn request_key(coupon_event_id: i64, user_id: i64) -> String {
    format!("{coupon_event_id}:{user_id}")
}

/// The JSON error body every endpoint answers with (one schema for every Campus API).
pub use campus_common::http::{ErrorBody, ErrorDetail};
