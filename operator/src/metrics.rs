//! Prometheus metrics of the operator: reconciles, failures by category, reconcile duration and
//! topic operations, named `campus_operator_…` under the process's root registry
//! ([`campus_common::metrics::registry`]).

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    /// The error's category (also its event reason).
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TopicLabels {
    /// `create`, `grow`, `config`, `delete`, `ensure` (a failed pass).
    pub operation: String,
    /// `ok` or `error`.
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ScaleLabels {
    /// `up` or `down`.
    pub direction: String,
}

/// Every category a failed reconcile is counted under (`Error::reason`, `TopicError::reason`,
/// `InvalidSpec`); each starts at 0, so an alert sees the first failure of a kind as an increase.
pub const FAILURE_REASONS: &[&str] = &[
    "InvalidSpec",
    "KubeApiFailed",
    "FinalizerFailed",
    "KafkaUnreachable",
    "TopicOperationFailed",
    "KafkaTimedOut",
];

/// The operator's metrics, registered in one registry.
#[derive(Clone)]
pub struct Metrics {
    pub reconciles: Counter,
    pub failures: Family<ErrorLabels, Counter>,
    pub duration: Histogram,
    pub topic_operations: Family<TopicLabels, Counter>,
    pub scale_events: Family<ScaleLabels, Counter>,
    pub leader: Gauge,
}

impl Metrics {
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self {
            reconciles: Counter::default(),
            failures: Family::default(),
            duration: Histogram::new(exponential_buckets(0.005, 2.0, 14)),
            topic_operations: Family::default(),
            scale_events: Family::default(),
            leader: Gauge::default(),
        };
        for reason in FAILURE_REASONS {
            let _ = m.failures.get_or_create(&ErrorLabels {
                reason: (*reason).to_owned(),
            });
        }
        let r = registry.sub_registry_with_prefix("operator");
        r.register("reconciles", "Reconciliations run", m.reconciles.clone());
        r.register(
            "reconcile_failures",
            "Reconciliations that failed, by error category",
            m.failures.clone(),
        );
        r.register(
            "reconcile_duration_seconds",
            "Time one reconciliation took",
            m.duration.clone(),
        );
        r.register(
            "topic_operations",
            "Kafka topic operations by kind and result",
            m.topic_operations.clone(),
        );
        r.register(
            "scale_events",
            "Lag-based scaling changes of a consumer group's replicas",
            m.scale_events.clone(),
        );
        r.register(
            "leader",
            "1 while this instance holds the leader Lease",
            m.leader.clone(),
        );
        m
    }

    pub fn reconciled(&self, took: Duration) {
        self.reconciles.inc();
        self.duration.observe(took.as_secs_f64());
    }

    pub fn failed(&self, reason: &str) {
        self.failures
            .get_or_create(&ErrorLabels {
                reason: reason.to_owned(),
            })
            .inc();
    }

    pub fn topic_op(&self, operation: &str, ok: bool, n: u64) {
        self.topic_operations
            .get_or_create(&TopicLabels {
                operation: operation.to_owned(),
                result: if ok { "ok" } else { "error" }.to_owned(),
            })
            .inc_by(n);
    }

    pub fn scaled(&self, up: bool) {
        self.scale_events
            .get_or_create(&ScaleLabels {
                direction: if up { "up" } else { "down" }.to_owned(),
            })
            .inc();
    }
}
