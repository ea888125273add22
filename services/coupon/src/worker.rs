//! `worker issue`: stores the coupons of acknowledged issue requests.
//!
//! For each batch of `coupon.request` records (per partition, in order) the worker claims the
//! requests in Redis (one script per event: a request whose slot was given back is skipped, a
//! claimed one can no longer be given back), then inserts the claimed coupons in one statement
//! with the unique `(user_id, coupon_event_id)` key, a duplicate counting as success, in a
//! transaction that also enforces the limit on the event row ([`db::store_coupons`]). Every step
//! is idempotent, so redelivery after a crash or restart changes nothing, and a replay can never
//! take an event past its limit.
//!
//! Every acknowledged request was answered 201, so a MySQL or Redis failure is an outage the
//! runtime waits out ([`HandleError::Outage`]), never a reason to dead-letter. Only records that
//! cannot be stored at all are poison: undecodable, of an unknown event, or beyond the limit MySQL
//! enforces (which only happens when Redis lost its count).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use campus_common::envelope::Envelope;
use campus_common::kafka::{HandleError, Handler, Record};
use chrono::Duration as ChronoDuration;
use sqlx::MySqlPool;

use crate::db::{self, NewCoupon, StoreCouponsError, Stored};
use crate::metrics::WorkerMetrics;
use crate::model::IssueRequested;
use crate::store::{Claim, CouponStore};

/// Records handled together (one Redis script per event and one INSERT per batch).
pub const BATCH_SIZE: usize = 200;

/// The issue worker's record handler.
pub struct IssueHandler {
    pool: MySqlPool,
    store: CouponStore,
    metrics: WorkerMetrics,
    /// Coupon validity per event (immutable once created).
    validity: Mutex<HashMap<i64, i64>>,
}

impl IssueHandler {
    pub fn new(pool: MySqlPool, store: CouponStore, metrics: WorkerMetrics) -> Self {
        Self {
            pool,
            store,
            metrics,
            validity: Mutex::new(HashMap::new()),
        }
    }

    async fn validity_of(&self, event: i64) -> Result<i64, HandleError> {
        if let Some(v) = self.validity.lock().expect("poisoned").get(&event) {
            return Ok(*v);
        }
        let e = db::find_event(&self.pool, event)
            .await
            .map_err(mysql_outage)?
            .ok_or_else(|| {
                HandleError::permanent(anyhow::anyhow!("coupon event {event} does not exist"))
            })?;
        self.validity
            .lock()
            .expect("poisoned")
            .insert(event, e.coupon_valid_seconds);
        Ok(e.coupon_valid_seconds)
    }

    /// Claims and stores the requests of one event: one answer per request, or one error for all.
    async fn store_event(
        &self,
        event: i64,
        requests: &[&Envelope<IssueRequested>],
    ) -> Result<Vec<Result<(), HandleError>>, HandleError> {
        let valid = self.validity_of(event).await?;
        let pairs: Vec<(i64, String)> = requests
            .iter()
            .map(|r| (r.payload.user_id, r.payload.coupon_id.to_string()))
            .collect();
        let claims = self.store.claim(event, &pairs).await.map_err(|e| {
            HandleError::outage(anyhow::Error::new(e).context("Redis is unavailable"))
        })?;
        let mut rows = Vec::with_capacity(requests.len());
        let mut of_row = Vec::with_capacity(requests.len());
        let mut out: Vec<Result<(), HandleError>> = Vec::with_capacity(requests.len());
        let (mut skipped, mut unclaimed) = (0, 0);
        for (i, (r, claim)) in requests.iter().zip(claims).enumerate() {
            out.push(Ok(()));
            match claim {
                Claim::Skip => {
                    skipped += 1;
                    tracing::info!(coupon_id = %r.payload.coupon_id, user_id = r.payload.user_id, coupon_event_id = event, "request was given back or superseded; not stored");
                    continue;
                }
                Claim::Unknown => unclaimed += 1,
                Claim::Insert => {}
            }
            of_row.push(i);
            rows.push(NewCoupon {
                id: r.payload.coupon_id.to_string(),
                user_id: r.payload.user_id,
                coupon_event_id: event,
                issued_at: r.occurred_at,
                expires_at: r.occurred_at + ChronoDuration::seconds(valid),
            });
        }
        let stored = match db::store_coupons(&self.pool, event, &rows).await {
            Ok(s) => s,
            Err(StoreCouponsError::UnknownEvent(_)) => {
                return Err(HandleError::permanent(anyhow::anyhow!(
                    "coupon event {event} does not exist"
                )));
            }
            Err(StoreCouponsError::Database(e)) => return Err(mysql_outage(e)),
        };
        let (mut new, mut duplicate, mut over) = (0, 0, 0);
        for (row, s) in of_row.iter().zip(stored) {
            match s {
                Stored::New => new += 1,
                Stored::Duplicate => duplicate += 1,
                Stored::OverLimit => {
                    over += 1;
                    let r = requests[*row];
                    tracing::error!(coupon_id = %r.payload.coupon_id, user_id = r.payload.user_id, coupon_event_id = event, "the event is full in MySQL: request not stored (Redis lost its count?)");
                    out[*row] = Err(HandleError::permanent(anyhow::anyhow!(
                        "coupon event {event} is full in MySQL: request {} of user {} not stored",
                        r.payload.coupon_id,
                        r.payload.user_id
                    )));
                }
            }
        }
        self.metrics.count("stored", new);
        self.metrics.count("duplicate", duplicate);
        self.metrics.count("over_limit", over);
        self.metrics.count("unclaimed", unclaimed);
        self.metrics.count("skipped", skipped);
        Ok(out)
    }
}

/// Every MySQL failure of the worker is an outage to wait out: the request was answered 201.
fn mysql_outage(e: sqlx::Error) -> HandleError {
    HandleError::outage(anyhow::Error::new(e).context("MySQL is unavailable"))
}

/// The same failure for another record of a batch (the runtime retries each by its kind).
fn same_kind(e: &HandleError) -> HandleError {
    let msg = anyhow::anyhow!("{e}");
    match e {
        HandleError::Transient(_) => HandleError::Transient(msg),
        HandleError::Permanent(_) => HandleError::Permanent(msg),
        HandleError::Outage(_) => HandleError::Outage(msg),
    }
}

fn decode(record: &Record) -> Result<Envelope<IssueRequested>, HandleError> {
    let e: Envelope<IssueRequested> = record.json()?;
    let p = &e.payload;
    if p.user_id <= 0 || p.coupon_event_id <= 0 || p.coupon_id != e.event_id {
        return Err(HandleError::permanent(anyhow::anyhow!(
            "invalid issue request {}: ids must be positive and couponId equal eventId",
            e.event_id
        )));
    }
    Ok(e)
}

#[async_trait]
impl Handler for IssueHandler {
    async fn handle(&self, record: &Record) -> Result<(), HandleError> {
        let e = decode(record)?;
        let mut r = self.store_event(e.payload.coupon_event_id, &[&e]).await?;
        r.pop().unwrap_or(Ok(()))
    }

    fn batch_size(&self) -> usize {
        BATCH_SIZE
    }

    async fn handle_batch(&self, records: &[Record]) -> Vec<Result<(), HandleError>> {
        let mut out: Vec<Result<(), HandleError>> = Vec::with_capacity(records.len());
        let mut decoded = Vec::with_capacity(records.len());
        let mut by_event: BTreeMap<i64, Vec<usize>> = BTreeMap::new();
        for (i, r) in records.iter().enumerate() {
            match decode(r) {
                Ok(e) => {
                    by_event
                        .entry(e.payload.coupon_event_id)
                        .or_default()
                        .push(i);
                    decoded.push(Some(e));
                    out.push(Ok(()));
                }
                Err(e) => {
                    decoded.push(None);
                    out.push(Err(e));
                }
            }
        }
        for (event, idx) in &by_event {
            let envs: Vec<&Envelope<IssueRequested>> =
                idx.iter().filter_map(|i| decoded[*i].as_ref()).collect();
            match self.store_event(*event, &envs).await {
                Ok(results) => {
                    for (i, r) in idx.iter().zip(results) {
                        out[*i] = r;
                    }
                }
                // A failed event's records are retried one by one by the runtime, by the kind of
                // the failure (an outage is waited out).
                Err(e) => {
                    for i in idx {
                        out[*i] = Err(same_kind(&e));
                    }
                }
            }
        }
        out
    }
}

/// Convenience for wiring: the handler behind an `Arc`.
pub fn handler(pool: MySqlPool, store: CouponStore, metrics: WorkerMetrics) -> Arc<IssueHandler> {
    Arc::new(IssueHandler::new(pool, store, metrics))
}
