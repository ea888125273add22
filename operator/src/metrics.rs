//! Prometheus metrics of the operator: reconciles, failures by category, reconcile duration (and
//! per phase) and topic operations, named `campus_operator_…` under the process's root registry
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
pub struct ApplyLabels {
    /// `applied` (a server-side apply was sent) or `unchanged` (the child is as the last apply
    /// left it: no request).
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PhaseLabels {
    /// One of [`PHASES`].
    pub phase: String,
}

/// The phases of a reconciliation, in order, each timed on its own (together they are nearly all
/// of `reconcile_duration_seconds`; the finalizer's own patch is not in any): `validate`; `lag`
/// (consumer-group lag and replicas of autoscaled groups); `build` (every child, in memory);
/// `apply_children` (server-side apply); `prune`; `topics` (describe, create, grow) and
/// `topic_config` (DescribeConfigs, AlterConfigs and their read-back); `report` (events);
/// `status` (the status patch, and the Ready event).
pub const PHASES: &[&str] = &[
    "validate",
    "lag",
    "build",
    "apply_children",
    "prune",
    "topics",
    "topic_config",
    "report",
    "status",
];

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
    pub phases: Family<PhaseLabels, Histogram>,
    pub topic_operations: Family<TopicLabels, Counter>,
    pub scale_events: Family<ScaleLabels, Counter>,
    pub child_applies: Family<ApplyLabels, Counter>,
    pub leader: Gauge,
}

impl Metrics {
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self {
            reconciles: Counter::default(),
            failures: Family::default(),
            duration: Histogram::new(exponential_buckets(0.005, 2.0, 14)),
            // 0.5 ms to 16 s: building is sub-millisecond, a Kafka round trip can take seconds.
            phases: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.0005, 2.0, 16))
            }),
            topic_operations: Family::default(),
            scale_events: Family::default(),
            child_applies: Family::default(),
            leader: Gauge::default(),
        };
        for result in ["applied", "unchanged"] {
            let _ = m.child_applies.get_or_create(&ApplyLabels {
                result: result.to_owned(),
            });
        }
        for reason in FAILURE_REASONS {
            let _ = m.failures.get_or_create(&ErrorLabels {
                reason: (*reason).to_owned(),
            });
        }
        for phase in PHASES {
            let _ = m.phases.get_or_create(&PhaseLabels {
                phase: (*phase).to_owned(),
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
            "reconcile_phase_seconds",
            "Time each phase of a reconciliation took (see the phase label)",
            m.phases.clone(),
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
            "child_applies",
            "Desired children per reconcile: applied, or unchanged since the last apply (skipped)",
            m.child_applies.clone(),
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

    /// Records that `phase` (one of [`PHASES`]) took `took`.
    pub fn phase(&self, phase: &str, took: Duration) {
        self.phases
            .get_or_create(&PhaseLabels {
                phase: phase.to_owned(),
            })
            .observe(took.as_secs_f64());
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_are_exported_from_zero_and_as_recorded() {
        let mut registry = campus_common::metrics::registry("campus-operator");
        let m = Metrics::register(&mut registry);
        m.phase("build", Duration::from_millis(3));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(
            text.contains("campus_operator_reconcile_phase_seconds_count{phase=\"build\"} 1"),
            "{text}"
        );
        for phase in PHASES {
            assert!(
                text.contains(&format!(
                    "campus_operator_reconcile_phase_seconds_sum{{phase=\"{phase}\"}}"
                )),
                "{phase}"
            );
        }
    }
}
