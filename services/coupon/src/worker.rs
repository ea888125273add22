//! `worker issue`: stores the coupons of acknowledged issue requests.
//!
//! For each batch of `coupon.request` records (per partition, in order) the worker claims the
//! requests in Redis (one script per event: a request whose slot was given back is skipped, a
//! claimed one can no longer be given back), then inserts the claimed coupons in one statement
//! with the unique `(user_id, coupon_event_id)` key, a duplicate counting as success. Every step
//! is idempotent, so redelivery after a crash or restart changes nothing.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use campus_common::envelope::Envelope;
use campus_common::kafka::{HandleError, Handler, Record};
use chrono::Duration as ChronoDuration;
use sqlx::MySqlPool;

use crate::db::{self, NewCoupon};
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
            .map_err(HandleError::transient)?
            .ok_or_else(|| {
                HandleError::permanent(anyhow::anyhow!("coupon event {event} does not exist"))
            })?;
        self.validity
            .lock()
            .expect("poisoned")
            .insert(event, e.coupon_valid_seconds);
        Ok(e.coupon_valid_seconds)
    }

    /// Claims and stores the requests of one event; the same result for all of them.
    async fn store_event(
        &self,
        event: i64,
        requests: &[&Envelope<IssueRequested>],
    ) -> Result<(), HandleError> {
        let valid = self.validity_of(event).await?;
        let pairs: Vec<(i64, String)> = requests
            .iter()
            .map(|r| (r.payload.user_id, r.payload.coupon_id.to_string()))
            .collect();
        let claims = self
            .store
            .claim(event, &pairs)
            .await
            .map_err(HandleError::transient)?;
        let mut rows = Vec::with_capacity(requests.len());
        let (mut skipped, mut unclaimed) = (0, 0);
        for (r, claim) in requests.iter().zip(claims) {
            match claim {
                Claim::Skip => {
                    skipped += 1;
                    tracing::info!(coupon_id = %r.payload.coupon_id, user_id = r.payload.user_id, coupon_event_id = event, "request was given back or superseded; not stored");
                    continue;
                }
                Claim::Unknown => unclaimed += 1,
                Claim::Insert => {}
            }
            rows.push(NewCoupon {
                id: r.payload.coupon_id.to_string(),
                user_id: r.payload.user_id,
                coupon_event_id: event,
                issued_at: r.occurred_at,
                expires_at: r.occurred_at + ChronoDuration::seconds(valid),
            });
        }
        db::insert_coupons(&self.pool, &rows)
            .await
            .map_err(HandleError::transient)?;
        self.metrics
            .count("stored", (rows.len() - unclaimed) as u64);
        self.metrics.count("unclaimed", unclaimed as u64);
        self.metrics.count("skipped", skipped);
        Ok(())
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
        self.store_event(e.payload.coupon_event_id, &[&e]).await
    }

    fn batch_size(&self) -> usize {
        BATCH_SIZE
    }

    async fn handle_batch(&self, records: &[Record]) -> Vec<Result<(), HandleError>> {
        let decoded: Vec<Result<Envelope<IssueRequested>, HandleError>> =
            records.iter().map(decode).collect();
        let mut by_event: BTreeMap<i64, Vec<usize>> = BTreeMap::new();
        for (i, d) in decoded.iter().enumerate() {
            if let Ok(e) = d {
                by_event
                    .entry(e.payload.coupon_event_id)
                    .or_default()
                    .push(i);
            }
        }
        let mut event_results: HashMap<i64, Result<(), String>> = HashMap::new();
        for (event, idx) in &by_event {
            let envs: Vec<&Envelope<IssueRequested>> = idx
                .iter()
                .filter_map(|i| decoded[*i].as_ref().ok())
                .collect();
            let r = self.store_event(*event, &envs).await;
            // A failed event's records are retried one by one by the runtime (which keeps the
            // error's kind by calling `handle` again).
            event_results.insert(*event, r.map_err(|e| format!("{e}")));
        }
        decoded
            .into_iter()
            .map(|d| match d {
                Err(e) => Err(e),
                Ok(e) => match &event_results[&e.payload.coupon_event_id] {
                    Ok(()) => Ok(()),
                    Err(msg) => Err(HandleError::transient(anyhow::anyhow!("{msg}"))),
                },
            })
            .collect()
    }
}

/// Convenience for wiring: the handler behind an `Arc`.
pub fn handler(pool: MySqlPool, store: CouponStore, metrics: WorkerMetrics) -> Arc<IssueHandler> {
    Arc::new(IssueHandler::new(pool, store, metrics))
}
