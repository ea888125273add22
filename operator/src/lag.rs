//! Consumer-group lag and lag-based scaling. rdkafka has no ListConsumerGroupOffsets admin call:
//! a consumer created with the group's `group.id` (never subscribing, so it never joins the
//! group) reads the committed offsets, and the watermarks give the end of each partition.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use campus_common::config::KafkaArgs;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::{Offset, TopicPartitionList};

use crate::crd::AutoscalingSpec;

#[derive(Debug, thiserror::Error)]
pub enum LagError {
    #[error("failed to create a Kafka consumer for group {group}")]
    Consumer {
        group: String,
        #[source]
        source: KafkaError,
    },
    #[error("failed to read the partitions of topic {topic}")]
    Metadata {
        topic: String,
        #[source]
        source: KafkaError,
    },
    #[error("failed to read the committed offsets of group {group}")]
    Committed {
        group: String,
        #[source]
        source: KafkaError,
    },
    #[error("failed to read the end offsets of {topic}/{partition}")]
    Watermarks {
        topic: String,
        partition: i32,
        #[source]
        source: KafkaError,
    },
    #[error("the lag reader task failed")]
    Join,
}

impl LagError {
    pub fn reason(&self) -> &'static str {
        "LagUnavailable"
    }
}

const TIMEOUT: Duration = Duration::from_secs(5);

/// Total lag of `group` over `topics`: for each partition, end offset minus committed offset (or
/// minus the start offset when the group has committed nothing there).
pub async fn group_lag(kafka: &KafkaArgs, group: &str, topics: &[String]) -> Result<i64, LagError> {
    let mut cfg = kafka.client_config();
    cfg.set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("socket.timeout.ms", "5000");
    let group = group.to_owned();
    let topics = topics.to_vec();
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = cfg.create().map_err(|source| LagError::Consumer {
            group: group.clone(),
            source,
        })?;
        let mut tpl = TopicPartitionList::new();
        for topic in &topics {
            let md = consumer
                .fetch_metadata(Some(topic), TIMEOUT)
                .map_err(|source| LagError::Metadata {
                    topic: topic.clone(),
                    source,
                })?;
            for t in md.topics() {
                for p in t.partitions() {
                    tpl.add_partition(t.name(), p.id());
                }
            }
        }
        if tpl.count() == 0 {
            return Ok(0);
        }
        let committed =
            consumer
                .committed_offsets(tpl, TIMEOUT)
                .map_err(|source| LagError::Committed {
                    group: group.clone(),
                    source,
                })?;
        let mut lag = 0i64;
        for e in committed.elements() {
            let (low, high) = consumer
                .fetch_watermarks(e.topic(), e.partition(), TIMEOUT)
                .map_err(|source| LagError::Watermarks {
                    topic: e.topic().to_owned(),
                    partition: e.partition(),
                    source,
                })?;
            let from = match e.offset() {
                Offset::Offset(o) => o,
                _ => low,
            };
            lag += (high - from).max(0);
        }
        Ok(lag)
    })
    .await
    .map_err(|_| LagError::Join)?
}

/// Replicas for a lag: `ceil(lag / lagPerReplica)`, within the bounds.
pub fn desired_replicas(lag: i64, bounds: &AutoscalingSpec) -> i32 {
    recommend(lag, bounds, 0).replicas
}

/// What the lag asks for, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recommendation {
    pub replicas: i32,
    pub reason: String,
}

/// Replicas for a lag: `ceil(lag / lagPerReplica)` within the bounds, and never more than
/// `partitions` (the partitions of the group's topics; 0 when unknown): a consumer beyond them
/// gets no partition and only costs the group a rebalance.
pub fn recommend(lag: i64, bounds: &AutoscalingSpec, partitions: i32) -> Recommendation {
    let per = bounds.lag_per_replica.max(1);
    let wanted = (lag.max(0) + per - 1) / per;
    let wanted = i32::try_from(wanted).unwrap_or(i32::MAX);
    let max = bounds.max_replicas.max(bounds.min_replicas);
    let mut reason = format!("lag {lag} at {per} per replica wants {wanted}");
    let mut replicas = wanted.clamp(bounds.min_replicas, max);
    if replicas != wanted {
        reason.push_str(&format!(
            ", bounds {}..{} give {replicas}",
            bounds.min_replicas, max
        ));
    }
    if partitions > 0 && replicas > partitions {
        replicas = partitions;
        reason.push_str(&format!(", capped at the topic's {partitions} partitions"));
    }
    Recommendation { replicas, reason }
}

/// Scale-down stabilisation, the HorizontalPodAutoscaler's rule: a worker scales up at once,
/// and down only to the highest count recommended within the window — a lag that dips for a
/// moment does not cost two rebalances. Recommendations are kept in memory per Deployment; on
/// first sight the current replicas count as one, so a restarted operator scales nothing down
/// before one window has passed.
#[derive(Debug, Default)]
pub struct Stabilizer {
    history: HashMap<String, VecDeque<(Instant, i32)>>,
}

impl Stabilizer {
    /// The replicas to set now for `key` (namespace/Deployment).
    pub fn decide(
        &mut self,
        key: &str,
        now: Instant,
        window: Duration,
        current: i32,
        recommended: i32,
    ) -> i32 {
        if window.is_zero() {
            self.history.remove(key);
            return recommended;
        }
        let h = self
            .history
            .entry(key.to_owned())
            .or_insert_with(|| VecDeque::from([(now, current)]));
        h.push_back((now, recommended));
        while h
            .front()
            .is_some_and(|&(t, _)| now.saturating_duration_since(t) > window)
        {
            h.pop_front();
        }
        if recommended >= current {
            return recommended;
        }
        let highest = h.iter().map(|&(_, r)| r).max().unwrap_or(recommended);
        highest.min(current)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bounds(min: i32, max: i32, per: i64) -> AutoscalingSpec {
        AutoscalingSpec {
            mode: Default::default(),
            min_replicas: min,
            max_replicas: max,
            lag_per_replica: per,
            scale_down_stabilization_seconds: 300,
        }
    }

    #[test]
    fn never_more_replicas_than_partitions() {
        let b = bounds(1, 10, 100);
        let r = recommend(950, &b, 3);
        assert_eq!(r.replicas, 3);
        assert_eq!(
            r.reason,
            "lag 950 at 100 per replica wants 10, capped at the topic's 3 partitions"
        );
        assert_eq!(recommend(950, &b, 0).replicas, 10, "0: partitions unknown");
        assert_eq!(recommend(150, &b, 3).replicas, 2);
        let r = recommend(5000, &b, 20);
        assert_eq!(
            (r.replicas, r.reason.as_str()),
            (
                10,
                "lag 5000 at 100 per replica wants 50, bounds 1..10 give 10"
            )
        );
    }

    #[test]
    fn scale_down_waits_for_the_window_scale_up_does_not() {
        let w = Duration::from_secs(300);
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut st = Stabilizer::default();
        // First sight of a Deployment at 1: up at once.
        assert_eq!(st.decide("ns/d", at(0), w, 1, 4), 4);
        // The lag is gone: held at 4 for the window ...
        assert_eq!(st.decide("ns/d", at(10), w, 4, 1), 4);
        assert_eq!(st.decide("ns/d", at(200), w, 4, 2), 4);
        assert_eq!(st.decide("ns/d", at(300), w, 4, 1), 4);
        // ... then down to the highest of the last 300 s (2, at 200 s), then to 1.
        assert_eq!(st.decide("ns/d", at(301), w, 4, 1), 2);
        assert_eq!(st.decide("ns/d", at(501), w, 2, 1), 1);
        // Up again at once, whatever the history.
        assert_eq!(st.decide("ns/d", at(502), w, 1, 3), 3);
        // Never above the current count by stabilisation alone.
        assert_eq!(st.decide("ns/d", at(503), w, 2, 1), 2);
        // Other Deployments have a history of their own; a new one holds its current count.
        assert_eq!(st.decide("ns/e", at(503), w, 5, 1), 5);
        // Window 0: the recommendation as it is.
        assert_eq!(st.decide("ns/f", at(0), Duration::ZERO, 5, 1), 1);
    }

    #[test]
    fn replicas_follow_lag_within_bounds() {
        let b = bounds(1, 4, 100);
        assert_eq!(desired_replicas(0, &b), 1);
        assert_eq!(desired_replicas(100, &b), 1);
        assert_eq!(desired_replicas(101, &b), 2);
        assert_eq!(desired_replicas(350, &b), 4);
        assert_eq!(desired_replicas(1_000_000, &b), 4);
        let zero = AutoscalingSpec {
            min_replicas: 0,
            ..b
        };
        assert_eq!(desired_replicas(0, &zero), 0);
        assert_eq!(desired_replicas(1, &zero), 1);
    }
}
