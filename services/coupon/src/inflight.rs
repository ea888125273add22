//! Requests acknowledged by Kafka but not yet stored by the issue worker: the records of
//! `coupon.request` between the worker group's committed offsets and the end of each partition.
//!
//! Redis's holders hash is the only other place that knows them, so when Redis lost an event's
//! keys the reload counts them ([`crate::api`]), and a stale pending mark is given back only when
//! its request is not among them ([`crate::drift::sweep`]).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use campus_common::config::KafkaArgs;
use campus_common::envelope::Envelope;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use crate::model::IssueRequested;

/// Where the in-flight requests are: the request topic and the issue worker's group (both
/// already prefixed), and how long a read may take.
#[derive(Debug, Clone)]
pub struct InFlight {
    kafka: KafkaArgs,
    topic: String,
    group: String,
    timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error("failed to read the in-flight issue requests from Kafka")]
    Kafka(#[from] KafkaError),
    #[error("failed to read the in-flight issue requests from Kafka: {0}")]
    Incomplete(String),
}

impl InFlight {
    pub fn new(kafka: &KafkaArgs, topic: impl Into<String>, group: impl Into<String>) -> Self {
        Self {
            kafka: kafka.clone(),
            topic: topic.into(),
            group: group.into(),
            timeout: Duration::from_secs(30),
        }
    }

    /// How long a producer may still be waiting for an acknowledgement: a request decided before
    /// now is in the topic (or failed, and its user answered 503) once this has passed.
    pub fn settle(&self) -> Duration {
        self.kafka.produce_timeout + Duration::from_secs(1)
    }

    /// The requests of `event` the worker group has not committed yet (oldest first per
    /// partition). A record of a committed offset is in MySQL: the worker stores before it commits.
    pub async fn scan(&self, event: i64) -> Result<Vec<IssueRequested>, ScanError> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.scan_blocking(event))
            .await
            .map_err(|e| ScanError::Incomplete(e.to_string()))?
    }

    fn scan_blocking(&self, event: i64) -> Result<Vec<IssueRequested>, ScanError> {
        let mut cfg = self.kafka.client_config();
        // The worker group's id, to read its committed offsets; the partitions are assigned by
        // hand, so this consumer never joins the group, and it never commits.
        cfg.set("group.id", &self.group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("enable.partition.eof", "false");
        let consumer: BaseConsumer = cfg.create()?;
        let metadata = consumer.fetch_metadata(Some(&self.topic), self.timeout)?;
        let partitions: Vec<i32> = metadata
            .topics()
            .iter()
            .filter(|t| t.name() == self.topic)
            .flat_map(|t| t.partitions().iter().map(|p| p.id()))
            .collect();
        let mut tpl = TopicPartitionList::new();
        for p in &partitions {
            tpl.add_partition(&self.topic, *p);
        }
        let committed = consumer.committed_offsets(tpl, self.timeout)?;
        // Read each partition from its committed offset (the beginning without one) to the end.
        let mut assign = TopicPartitionList::new();
        let mut ends: HashMap<i32, i64> = HashMap::new();
        for e in committed.elements() {
            let (low, high) =
                consumer.fetch_watermarks(&self.topic, e.partition(), self.timeout)?;
            let from = match e.offset() {
                Offset::Offset(o) => o.max(low),
                _ => low,
            };
            if from < high {
                assign.add_partition_offset(&self.topic, e.partition(), Offset::Offset(from))?;
                ends.insert(e.partition(), high);
            }
        }
        let mut out = Vec::new();
        if ends.is_empty() {
            return Ok(out);
        }
        consumer.assign(&assign)?;
        let deadline = Instant::now() + self.timeout;
        while !ends.is_empty() {
            if Instant::now() > deadline {
                return Err(ScanError::Incomplete(format!(
                    "{} partition(s) not read to the end in {:?}",
                    ends.len(),
                    self.timeout
                )));
            }
            let Some(m) = consumer.poll(Duration::from_millis(200)) else {
                continue;
            };
            let m = m?;
            if let Some(payload) = m.payload()
                && let Ok(e) = serde_json::from_slice::<Envelope<IssueRequested>>(payload)
                && e.payload.coupon_event_id == event
            {
                out.push(e.payload);
            }
            if ends
                .get(&m.partition())
                .is_some_and(|end| m.offset() + 1 >= *end)
            {
                ends.remove(&m.partition());
            }
        }
        Ok(out)
    }
}
