//! The drift report: for each event, who holds a coupon according to Redis (the holders hash the
//! issue script counts) against the coupon rows in MySQL.
//!
//! After the worker drained, both sides list the same users. A pending Redis holder younger than
//! the in-flight grace is a request on its way (written to Kafka, not yet stored) and is not drift.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::MySqlPool;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::db;
use crate::inflight::{InFlight, ScanError};
use crate::model::CouponEvent;
use crate::store::{Claim, CouponStore, GiveBack, StoreError};

/// Pending holders younger than this count as in flight, not as drift.
pub const DEFAULT_IN_FLIGHT_GRACE: Duration = Duration::from_secs(60);

/// At most this many user ids are listed per side and event.
const MAX_LISTED: usize = 50;

#[derive(Debug, thiserror::Error)]
pub enum DriftError {
    #[error("failed to read the in-flight requests")]
    Kafka(#[from] ScanError),
    #[error("failed to find coupon event {0}: it does not exist")]
    UnknownEvent(i64),
    #[error("failed to read coupons from MySQL")]
    Database(#[from] sqlx::Error),
    #[error("failed to read holders from Redis")]
    Redis(#[from] StoreError),
}

/// The report over one or all events.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DriftReport {
    pub generated_at: DateTime<Utc>,
    /// Events whose status is `drift` or `over_issued`.
    pub drifted: usize,
    pub events: Vec<EventDrift>,
}

/// One event's comparison.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventDrift {
    pub coupon_event_id: i64,
    pub name: String,
    pub limit: i64,
    pub ends_at: DateTime<Utc>,
    /// `ok` (both sides agree), `in_flight` (differences are only young pending requests),
    /// `drift` (they disagree), `over_issued` (MySQL holds more than the limit),
    /// `not_in_redis` (Redis holds nothing: expired after the event, or flushed; the next issue
    /// request reloads it from MySQL).
    pub status: String,
    pub redis: RedisSide,
    pub mysql_coupons: i64,
    /// Redis holders minus MySQL coupons.
    pub drift: i64,
    /// Users Redis counts without a MySQL coupon (at most 50 listed).
    pub only_in_redis: Vec<i64>,
    /// Users with a MySQL coupon that Redis does not count (at most 50 listed).
    pub only_in_mysql: Vec<i64>,
}

/// What Redis holds for an event.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RedisSide {
    /// The event's metadata (limit, window) is present.
    pub metadata: bool,
    /// Users holding a slot: the count the issue script checks against the limit.
    pub holders: i64,
    /// Of those, claimed by the worker.
    pub confirmed: i64,
    /// Of those, not yet claimed by the worker.
    pub pending: i64,
    /// Of the pending, older than the in-flight grace.
    pub stale_pending: i64,
}

/// Compares Redis and MySQL for one event or every event.
pub async fn report(
    pool: &MySqlPool,
    store: &CouponStore,
    event: Option<i64>,
    in_flight_grace: Duration,
) -> Result<DriftReport, DriftError> {
    let events = match event {
        Some(id) => vec![
            db::find_event(pool, id)
                .await?
                .ok_or(DriftError::UnknownEvent(id))?,
        ],
        None => db::list_events(pool).await?,
    };
    let now = Utc::now();
    let mut out = Vec::with_capacity(events.len());
    for e in events {
        out.push(compare(pool, store, e, now, in_flight_grace).await?);
    }
    Ok(DriftReport {
        generated_at: now,
        drifted: out
            .iter()
            .filter(|e| matches!(e.status.as_str(), "drift" | "over_issued"))
            .count(),
        events: out,
    })
}

async fn compare(
    pool: &MySqlPool,
    store: &CouponStore,
    e: CouponEvent,
    now: DateTime<Utc>,
    grace: Duration,
) -> Result<EventDrift, DriftError> {
    let snapshot = store.snapshot(e.id).await?;
    let count = store.count(e.id).await?;
    let mysql: HashMap<i64, String> = db::holders(pool, e.id).await?.into_iter().collect();
    let mut confirmed = 0;
    let mut pending = 0;
    let mut stale_pending = 0;
    let mut only_in_redis = BTreeSet::new();
    let mut stale_differences = false;
    for (user, (id, is_confirmed)) in &snapshot.holders {
        if *is_confirmed {
            confirmed += 1;
        } else {
            pending += 1;
        }
        let young = !is_confirmed && age(id, now).is_some_and(|a| a < grace);
        if !young && !is_confirmed {
            stale_pending += 1;
        }
        if !mysql.contains_key(user) {
            only_in_redis.insert(*user);
            if !young {
                stale_differences = true;
            }
        }
    }
    let only_in_mysql: BTreeSet<i64> = mysql
        .keys()
        .filter(|u| !snapshot.holders.contains_key(u))
        .copied()
        .collect();
    // HLEN: the count the issue script checks (the scan may have seen a moving hash).
    let holders = count;
    let mysql_coupons = mysql.len() as i64;
    let status = if mysql_coupons > e.limit {
        "over_issued"
    } else if !snapshot.has_meta && snapshot.holders.is_empty() {
        "not_in_redis"
    } else if only_in_redis.is_empty() && only_in_mysql.is_empty() {
        "ok"
    } else if !stale_differences && only_in_mysql.is_empty() {
        "in_flight"
    } else {
        "drift"
    };
    Ok(EventDrift {
        coupon_event_id: e.id,
        name: e.name,
        limit: e.limit,
        ends_at: e.ends_at,
        status: status.to_owned(),
        redis: RedisSide {
            metadata: snapshot.has_meta,
            holders,
            confirmed,
            pending,
            stale_pending,
        },
        mysql_coupons,
        drift: holders - mysql_coupons,
        only_in_redis: only_in_redis.into_iter().take(MAX_LISTED).collect(),
        only_in_mysql: only_in_mysql.into_iter().take(MAX_LISTED).collect(),
    })
}

/// What a sweep did with the pending marks older than the bound.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SweepReport {
    /// Marks whose request never reached Kafka (the API died between decision and write): the
    /// slot is free again and the user may try again.
    pub given_back: usize,
    /// Marks whose coupon MySQL already holds (stored without a claim): now confirmed.
    pub confirmed: usize,
    /// Marks whose request is in Kafka, not yet stored: left for the worker.
    pub in_flight: usize,
}

/// Gives back the pending marks older than `bound` whose request is neither in Kafka (after the
/// worker group's committed offsets) nor in MySQL: their Kafka write never happened, so nobody
/// was answered 201 for them. `bound` must exceed the produce timeout (a request decided longer
/// ago than that is in the topic or was answered 503). Events are read from MySQL; only those
/// with stale marks cost a Kafka read.
pub async fn sweep(
    pool: &MySqlPool,
    store: &CouponStore,
    in_flight: &InFlight,
    bound: Duration,
) -> Result<SweepReport, DriftError> {
    let mut out = SweepReport::default();
    let now = Utc::now();
    for e in db::list_events(pool).await? {
        let snapshot = store.snapshot(e.id).await?;
        let stale: Vec<(i64, String)> = snapshot
            .holders
            .iter()
            .filter(|(_, (id, confirmed))| !confirmed && age(id, now).is_some_and(|a| a >= bound))
            .map(|(u, (id, _))| (*u, id.clone()))
            .collect();
        if stale.is_empty() {
            continue;
        }
        // Kafka first, then MySQL: a record committed in between is in MySQL by then.
        let queued: std::collections::HashSet<(i64, String)> = in_flight
            .scan(e.id)
            .await?
            .into_iter()
            .map(|r| (r.user_id, r.coupon_id.to_string()))
            .collect();
        let stored: HashMap<i64, String> = db::holders(pool, e.id).await?.into_iter().collect();
        for (user, id) in stale {
            if queued.contains(&(user, id.clone())) {
                out.in_flight += 1;
            } else if stored.get(&user) == Some(&id) {
                if store.claim(e.id, &[(user, id.clone())]).await? == [Claim::Insert] {
                    out.confirmed += 1;
                }
            } else {
                let request = Uuid::parse_str(&id).unwrap_or_default();
                if store.give_back(e.id, user, &request).await? == GiveBack::Returned {
                    tracing::warn!(coupon_event_id = e.id, user_id = user, coupon_id = %id, "a pending mark without its Kafka record was given back");
                    out.given_back += 1;
                }
            }
        }
    }
    Ok(out)
}

/// Age of a request from its UUID v7 timestamp.
fn age(id: &str, now: DateTime<Utc>) -> Option<Duration> {
    let (secs, nanos) = Uuid::parse_str(id).ok()?.get_timestamp()?.to_unix();
    let at = DateTime::from_timestamp(secs as i64, nanos)?;
    (now - at).to_std().ok().or(Some(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn age_comes_from_the_v7_timestamp() {
        let id = Uuid::now_v7().to_string();
        let later = Utc::now() + chrono::Duration::seconds(90);
        let a = age(&id, later).unwrap();
        assert!(
            a >= Duration::from_secs(89) && a <= Duration::from_secs(91),
            "{a:?}"
        );
        assert_eq!(age("not-a-uuid", later), None);
        assert_eq!(age(&Uuid::new_v4().to_string(), later), None);
    }
}
