//! Prometheus metrics of the coupon processes.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: &'static str,
}

/// Issue decisions and what happened to the Kafka writes (API).
#[derive(Clone, Default)]
pub struct ApiMetrics {
    /// Answers to `POST /coupons` by outcome (the error code otherwise): issued, already_issued,
    /// not_started, ended, sold_out, not_found, bad_request, unavailable, internal.
    pub decisions: Family<OutcomeLabels, Counter>,
    /// Kafka writes that failed, by what the give-back script did: returned, confirmed, not_held,
    /// failed (Redis did not answer either: the slot stays taken until the drift report shows it).
    pub give_backs: Family<OutcomeLabels, Counter>,
    /// Decisions that found no metadata in Redis and reloaded it from MySQL.
    pub reloads: Counter,
}

impl ApiMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self::default();
        registry.register(
            "coupon_issue_decisions",
            "Answers to issue requests, by outcome",
            m.decisions.clone(),
        );
        registry.register(
            "coupon_give_backs",
            "Failed Kafka writes, by what giving the slot back did",
            m.give_backs.clone(),
        );
        registry.register(
            "coupon_metadata_reloads",
            "Issue decisions that reloaded an event's metadata from MySQL",
            m.reloads.clone(),
        );
        m
    }
}

/// What the issue worker did with requests.
#[derive(Clone, Default)]
pub struct WorkerMetrics {
    /// Requests by outcome: stored (claimed and inserted), skipped (given back or superseded),
    /// unclaimed (Redis had nothing for the event; inserted, MySQL's unique key decided).
    pub requests: Family<OutcomeLabels, Counter>,
}

impl WorkerMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self::default();
        registry.register(
            "coupon_issue_requests",
            "Issue requests handled by the worker, by outcome",
            m.requests.clone(),
        );
        m
    }
    pub fn count(&self, outcome: &'static str, n: u64) {
        if n > 0 {
            self.requests
                .get_or_create(&OutcomeLabels { outcome })
                .inc_by(n);
        }
    }
}
