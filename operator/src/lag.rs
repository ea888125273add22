//! Consumer-group lag and lag-based scaling. rdkafka has no ListConsumerGroupOffsets admin call:
//! a consumer created with the group's `group.id` (never subscribing, so it never joins the
//! group) reads the committed offsets, and the watermarks give the end of each partition.

use std::time::Duration;

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
    let per = bounds.lag_per_replica.max(1);
    let wanted = (lag.max(0) + per - 1) / per;
    let wanted = i32::try_from(wanted).unwrap_or(i32::MAX);
    wanted.clamp(
        bounds.min_replicas,
        bounds.max_replicas.max(bounds.min_replicas),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replicas_follow_lag_within_bounds() {
        let b = AutoscalingSpec {
            min_replicas: 1,
            max_replicas: 4,
            lag_per_replica: 100,
        };
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
