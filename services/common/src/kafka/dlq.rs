//! Working with dead letters: list what a group dead-lettered, and re-drive it to its topic after
//! the cause is fixed (`campus-<service> dlq list|replay --group G [--since T]`).
//!
//! `replay` reads each dead-letter topic from where the last replay of that group stopped (the
//! consumer group `<group>.dlq-replay` keeps the position), produces every record — key, payload and
//! its original headers, plus `dlq-replayed-from` — to its original topic (`dlq-original-topic`),
//! waits for the acknowledgements, and only then commits: a record is re-driven at least once and,
//! barring a crash mid-replay, once. `--since` skips records dead-lettered before that time.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::{Offset, TopicPartitionList};
use serde::Serialize;

use super::consumer::Record;
use super::{Producer, dlq_headers};
use crate::config::KafkaArgs;

/// One dead letter, as `dlq list` prints it (one JSON line each) and the coupon admin listener's
/// `/admin/dlq` answers it: where it is, the `dlq-*` headers the consumer wrote, the payload's size.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "http-api", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct DeadLetter {
    pub dlq_topic: String,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<String>,
    pub reason: Option<String>,
    pub error: Option<String>,
    pub original_topic: Option<String>,
    pub original_partition: Option<String>,
    pub original_offset: Option<String>,
    pub attempts: Option<String>,
    pub failed_at: Option<String>,
    pub payload_bytes: usize,
}

impl DeadLetter {
    fn of(r: &Record) -> Self {
        let h = |name: &str| {
            r.header(name)
                .map(|v| String::from_utf8_lossy(v).into_owned())
        };
        Self {
            dlq_topic: r.topic.clone(),
            partition: r.partition,
            offset: r.offset,
            key: r.key_str().map(str::to_owned),
            reason: h(dlq_headers::REASON),
            error: h(dlq_headers::ERROR),
            original_topic: h(dlq_headers::ORIGINAL_TOPIC),
            original_partition: h(dlq_headers::ORIGINAL_PARTITION),
            original_offset: h(dlq_headers::ORIGINAL_OFFSET),
            attempts: h(dlq_headers::ATTEMPTS),
            failed_at: h(dlq_headers::FAILED_AT),
            payload_bytes: r.payload.as_ref().map_or(0, Vec::len),
        }
    }

    fn failed_at(&self) -> Option<DateTime<Utc>> {
        self.failed_at
            .as_deref()
            .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
            .map(|t| t.with_timezone(&Utc))
    }
}

/// Parses `--since`: an RFC 3339 time, or an age such as `90s`, `30m`, `6h`, `2d`.
pub fn parse_since(s: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    let (n, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: i64 = n
        .parse()
        .map_err(|_| format!("not an RFC 3339 time or an age like 30m: {s:?}"))?;
    let secs = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => return Err(format!("unknown unit in {s:?} (s, m, h, d)")),
    };
    Ok(Utc::now() - chrono::Duration::seconds(secs))
}

#[derive(Debug, thiserror::Error)]
pub enum DlqError {
    #[error("Kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error(transparent)]
    Produce(#[from] super::ProduceError),
    #[error("dead letter {topic}/{partition}@{offset} has no {header} header")]
    NoOrigin {
        topic: String,
        partition: i32,
        offset: i64,
        header: &'static str,
    },
}

/// Reads `topic` up to its end as of now: from the beginning, or from where `group` committed.
async fn read_to_end(
    args: &KafkaArgs,
    topic: &str,
    group: Option<&str>,
) -> Result<(StreamConsumer, Vec<Record>), DlqError> {
    let mut cfg = args.client_config();
    cfg.set(
        "group.id",
        group.map_or_else(
            || format!("campus-dlq-list-{}", uuid::Uuid::new_v4()),
            str::to_owned,
        ),
    )
    .set("enable.auto.commit", "false")
    .set("enable.auto.offset.store", "false")
    .set("auto.offset.reset", "earliest");
    let consumer: StreamConsumer = cfg.create()?;
    let timeout = Duration::from_secs(10);
    let metadata = consumer.fetch_metadata(Some(topic), timeout)?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    let mut ends = HashMap::new();
    let mut tpl = TopicPartitionList::new();
    for p in &partitions {
        let (low, high) = consumer.fetch_watermarks(topic, *p, timeout)?;
        tpl.add_partition_offset(topic, *p, Offset::Beginning)?;
        ends.insert(*p, (low, high));
    }
    // Where to start: the group's commit, else the beginning.
    let mut next: HashMap<i32, i64> = ends.iter().map(|(p, (low, _))| (*p, *low)).collect();
    if group.is_some() {
        let committed = consumer.committed_offsets(tpl.clone(), timeout)?;
        for e in committed.elements() {
            if let Offset::Offset(o) = e.offset() {
                next.insert(e.partition(), o);
                tpl.set_partition_offset(topic, e.partition(), Offset::Offset(o))?;
            }
        }
    }
    consumer.assign(&tpl)?;
    let mut out = Vec::new();
    let done = |next: &HashMap<i32, i64>| next.iter().all(|(p, n)| *n >= ends[p].1);
    while !done(&next) {
        match tokio::time::timeout(Duration::from_secs(10), consumer.recv()).await {
            Ok(Ok(m)) => {
                let r = Record::from_message(&m);
                next.insert(r.partition, r.offset + 1);
                out.push(r);
            }
            Ok(Err(e)) => return Err(e.into()),
            // Compacted or deleted ends: nothing more to read.
            Err(_) => break,
        }
    }
    Ok((consumer, out))
}

/// The dead letters in `dlq_topics`, oldest first per partition, dead-lettered at or after `since`.
pub async fn list(
    args: &KafkaArgs,
    dlq_topics: &[String],
    since: Option<DateTime<Utc>>,
) -> Result<Vec<DeadLetter>, DlqError> {
    let mut out = Vec::new();
    for topic in dlq_topics {
        let (_, records) = read_to_end(args, topic, None).await?;
        out.extend(
            records
                .iter()
                .map(DeadLetter::of)
                .filter(|d| since.is_none_or(|s| d.failed_at().is_none_or(|t| t >= s))),
        );
    }
    Ok(out)
}

/// Re-drives the dead letters of `dlq_topics` not replayed yet (and dead-lettered at or after
/// `since`) to their original topics; `replay_group` keeps the position. Returns what was re-driven.
pub async fn replay(
    args: &KafkaArgs,
    dlq_topics: &[String],
    replay_group: &str,
    since: Option<DateTime<Utc>>,
) -> Result<Vec<DeadLetter>, DlqError> {
    let producer = Producer::new(args)?;
    let mut out = Vec::new();
    for topic in dlq_topics {
        let (consumer, records) = read_to_end(args, topic, Some(replay_group)).await?;
        let mut commit = TopicPartitionList::new();
        for r in &records {
            let d = DeadLetter::of(r);
            if since.is_none_or(|s| d.failed_at().is_none_or(|t| t >= s)) {
                let original = d.original_topic.clone().ok_or(DlqError::NoOrigin {
                    topic: r.topic.clone(),
                    partition: r.partition,
                    offset: r.offset,
                    header: dlq_headers::ORIGINAL_TOPIC,
                })?;
                let from = format!("{}/{}@{}", r.topic, r.partition, r.offset);
                let mut headers: Vec<(&str, &[u8])> = r
                    .headers
                    .iter()
                    .filter(|(k, _)| !k.starts_with("dlq-"))
                    .map(|(k, v)| (k.as_str(), v.as_slice()))
                    .collect();
                headers.push(("dlq-replayed-from", from.as_bytes()));
                producer
                    .send(
                        &original,
                        r.key.as_deref().unwrap_or_default(),
                        r.payload.as_deref().unwrap_or_default(),
                        &headers,
                    )
                    .await?;
                tracing::info!(dlq = %r.topic, partition = r.partition, offset = r.offset, topic = %original, "dead letter re-driven");
                out.push(d);
            }
            commit.add_partition_offset(&r.topic, r.partition, Offset::Offset(r.offset + 1))?;
        }
        if commit.count() > 0 {
            consumer.commit(&commit, CommitMode::Sync)?;
        }
    }
    Ok(out)
}

/// `campus-<service> dlq list|replay --group G [--since T]`: the sub-command every service's binary
/// offers for its own consumer groups.
#[derive(Debug, clap::Subcommand)]
pub enum DlqCommand {
    /// Prints the group's dead letters, one JSON object per line.
    List(DlqArgs),
    /// Re-drives the group's dead letters not replayed yet to their original topics; prints each.
    Replay(DlqArgs),
}

#[derive(Debug, Clone, clap::Args)]
pub struct DlqArgs {
    #[command(flatten)]
    pub kafka: KafkaArgs,
    /// The consumer group, as the contract names it (content: `inspection`, `cache`, `inbox`,
    /// `index`; coupon: `coupon-issue`; log: `log-index`).
    #[arg(long)]
    pub group: String,
    /// Only records dead-lettered since then: RFC 3339, or an age such as `30m`, `6h`, `2d`.
    #[arg(long, value_parser = parse_since)]
    pub since: Option<DateTime<Utc>>,
}

/// The dead-letter topics (prefixed as `kafka` says) of `group`, one of `service`'s groups in the
/// contract; an unknown group is an error naming the service's groups.
pub fn group_topics(
    kafka: &KafkaArgs,
    service: campus_contract::Service,
    group: &str,
) -> anyhow::Result<Vec<String>> {
    let worker = service
        .workers()
        .find(|w| w.group == group)
        .ok_or_else(|| {
            let groups: Vec<&str> = service.workers().map(|w| w.group).collect();
            anyhow::anyhow!(
                "no group {group:?} in {}; its groups are {groups:?}",
                service.as_str()
            )
        })?;
    Ok(worker
        .consumes
        .iter()
        .map(|t| super::dlq_topic(&kafka.name(t), &kafka.name(worker.group)))
        .collect())
}

/// The consumer group that keeps the position of `group`'s replays: `<group>.dlq-replay`.
pub fn replay_group(kafka: &KafkaArgs, group: &str) -> String {
    format!("{}.dlq-replay", kafka.name(group))
}

impl DlqArgs {
    /// The dead-letter topics (prefixed) of the group, one of `service`'s in the contract.
    pub fn topics(&self, service: campus_contract::Service) -> anyhow::Result<Vec<String>> {
        group_topics(&self.kafka, service, &self.group)
    }
}

impl DlqCommand {
    /// Lists or replays the dead letters of one of `service`'s groups; prints each (JSON lines)
    /// and returns them.
    pub async fn run(&self, service: campus_contract::Service) -> anyhow::Result<Vec<DeadLetter>> {
        let letters = match self {
            DlqCommand::List(a) => list(&a.kafka, &a.topics(service)?, a.since).await?,
            DlqCommand::Replay(a) => {
                let group = replay_group(&a.kafka, &a.group);
                replay(&a.kafka, &a.topics(service)?, &group, a.since).await?
            }
        };
        for l in &letters {
            println!("{}", serde_json::to_string(l)?);
        }
        eprintln!("{} dead letter(s)", letters.len());
        Ok(letters)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_times_and_ages() {
        let t = parse_since("2026-01-02T03:04:05Z").unwrap();
        assert_eq!(t.to_rfc3339(), "2026-01-02T03:04:05+00:00");
        let age = Utc::now() - parse_since("2h").unwrap();
        assert!((age.num_seconds() - 7200).abs() < 5);
        assert!(parse_since("2y").is_err());
        assert!(parse_since("soon").is_err());
    }
}
