//! Prometheus metrics of the coupon processes.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, PoisonError};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::drift::DriftReport;

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
    /// What the periodic drift report found.
    pub drift: DriftMetrics,
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
        m.drift.register(registry);
        m
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EventLabels {
    pub coupon_event_id: i64,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    pub result: &'static str,
}

/// The drift report as gauges, refreshed by the API every `COUPON_DRIFT_INTERVAL_SECS`: how many
/// events drifted, and per event still open (or ended less than an hour ago) its limit, the
/// coupons MySQL holds and the holders Redis counts.
#[derive(Clone, Default)]
pub struct DriftMetrics {
    pub drifted: Gauge,
    pub limit: Family<EventLabels, Gauge>,
    pub coupons: Family<EventLabels, Gauge>,
    pub holders: Family<EventLabels, Gauge>,
    pub reports: Family<ResultLabels, Counter>,
    /// The events the per-event gauges show.
    shown: Arc<Mutex<BTreeSet<i64>>>,
}

/// Events ended longer ago than this leave the per-event gauges.
const ENDED_SHOWN: chrono::TimeDelta = chrono::TimeDelta::hours(1);

impl DriftMetrics {
    fn register(&self, registry: &mut Registry) {
        registry.register(
            "coupon_events_drifted",
            "Coupon events whose last drift report said drift or over_issued (Redis and MySQL disagree)",
            self.drifted.clone(),
        );
        registry.register(
            "coupon_event_limit",
            "Coupons an event may issue (events open now or ended within the hour)",
            self.limit.clone(),
        );
        registry.register(
            "coupon_event_coupons",
            "Coupons MySQL holds for the event, at the last drift report",
            self.coupons.clone(),
        );
        registry.register(
            "coupon_event_holders",
            "Users Redis counts as holders of the event (the number the issue script checks), at the last drift report",
            self.holders.clone(),
        );
        registry.register(
            "coupon_drift_reports",
            "Periodic drift reports run, by result (ok, error)",
            self.reports.clone(),
        );
        for result in ["ok", "error"] {
            let _ = self.reports.get_or_create(&ResultLabels { result });
        }
    }

    /// Shows `report`: events no longer in it (or long ended) leave the per-event gauges.
    pub fn record(&self, report: &DriftReport) {
        self.drifted.set(report.drifted as i64);
        let shown: Vec<_> = report
            .events
            .iter()
            .filter(|e| e.ends_at + ENDED_SHOWN > report.generated_at)
            .collect();
        let now: BTreeSet<i64> = shown.iter().map(|e| e.coupon_event_id).collect();
        let mut before = self.shown.lock().unwrap_or_else(PoisonError::into_inner);
        for id in before.difference(&now) {
            let labels = EventLabels {
                coupon_event_id: *id,
            };
            for family in [&self.limit, &self.coupons, &self.holders] {
                family.remove(&labels);
            }
        }
        *before = now;
        for e in shown {
            let labels = EventLabels {
                coupon_event_id: e.coupon_event_id,
            };
            self.limit.get_or_create(&labels).set(e.limit);
            self.coupons.get_or_create(&labels).set(e.mysql_coupons);
            self.holders.get_or_create(&labels).set(e.redis.holders);
        }
        self.count(true);
    }

    pub fn count(&self, ok: bool) {
        self.reports
            .get_or_create(&ResultLabels {
                result: if ok { "ok" } else { "error" },
            })
            .inc();
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drift::{EventDrift, RedisSide};
    use chrono::{TimeDelta, Utc};

    fn event(id: i64, ends_in: TimeDelta, coupons: i64, holders: i64) -> EventDrift {
        EventDrift {
            coupon_event_id: id,
            name: format!("e{id}"),
            limit: 10,
            ends_at: Utc::now() + ends_in,
            status: if coupons == holders { "ok" } else { "drift" }.to_owned(),
            redis: RedisSide {
                metadata: true,
                holders,
                confirmed: holders,
                pending: 0,
                stale_pending: 0,
            },
            mysql_coupons: coupons,
            drift: holders - coupons,
            only_in_redis: vec![],
            only_in_mysql: vec![],
        }
    }

    fn encode(registry: &Registry) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, registry).unwrap();
        out
    }

    #[test]
    fn drift_gauges_show_open_events_and_forget_old_ones() {
        let mut registry = campus_common::metrics::registry("campus-coupon");
        let m = ApiMetrics::register(&mut registry);
        let report = |events: Vec<EventDrift>| DriftReport {
            generated_at: Utc::now(),
            drifted: events.iter().filter(|e| e.status == "drift").count(),
            events,
        };
        m.drift.record(&report(vec![
            event(1, TimeDelta::hours(1), 3, 3),
            event(2, TimeDelta::hours(1), 4, 5),
            event(3, TimeDelta::hours(-2), 9, 9),
        ]));
        let text = encode(&registry);
        assert!(text.contains("campus_coupon_events_drifted 1\n"), "{text}");
        assert!(
            text.contains("campus_coupon_event_limit{coupon_event_id=\"1\"} 10\n"),
            "{text}"
        );
        assert!(
            text.contains("campus_coupon_event_coupons{coupon_event_id=\"2\"} 4\n"),
            "{text}"
        );
        assert!(
            text.contains("campus_coupon_event_holders{coupon_event_id=\"2\"} 5\n"),
            "{text}"
        );
        assert!(
            !text.contains("coupon_event_id=\"3\""),
            "long ended: {text}"
        );
        assert!(
            text.contains("campus_coupon_drift_reports_total{result=\"ok\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("campus_coupon_drift_reports_total{result=\"error\"} 0\n"),
            "{text}"
        );
        m.drift
            .record(&report(vec![event(1, TimeDelta::hours(1), 3, 3)]));
        let text = encode(&registry);
        assert!(text.contains("campus_coupon_events_drifted 0\n"), "{text}");
        assert!(
            !text.contains("coupon_event_id=\"2\""),
            "gone from the report: {text}"
        );
        assert!(
            text.contains("campus_coupon_event_coupons{coupon_event_id=\"1\"} 3\n"),
            "{text}"
        );
    }
}
