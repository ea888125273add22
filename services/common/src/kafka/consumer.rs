//! The consumer runtime every Campus worker runs.
//!
//! - **At-least-once**: an offset is stored only after its record was handled (or dead-lettered),
//!   and committed in the background and once more on shutdown.
//! - **Order per partition, partitions in parallel**: each assigned partition gets its own task that
//!   handles its records one after another (or in batches, for handlers that ask for them).
//! - **Bounded retries**: a [`HandleError::Transient`] failure is retried with exponential backoff
//!   up to `max_attempts`; then — or at once for [`HandleError::Permanent`] — the record goes to
//!   `<topic>.dlq.<group>` with headers naming the error, the original topic/partition/offset and
//!   the attempts, and the partition moves on.
//! - **Shutdown**: when the token fires, each partition task finishes the record in hand, records
//!   still queued are left for the next owner, and stored offsets are committed synchronously.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures::StreamExt as _;
use futures::stream::FuturesUnordered;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use rdkafka::consumer::{CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::{ClientContext, TopicPartitionList};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::admin::{Admin, TopicSpec};
use super::producer::Producer;
use super::{dlq_headers, dlq_topic};
use crate::config::KafkaArgs;
use crate::http::REQUEST_ID;

/// One Kafka record, detached from the client.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub payload: Option<Vec<u8>>,
    pub headers: Vec<(String, Vec<u8>)>,
    /// Milliseconds since the epoch, when the broker or producer stamped it.
    pub timestamp_ms: Option<i64>,
}

impl Record {
    fn from_message(m: &BorrowedMessage<'_>) -> Self {
        let headers = m
            .headers()
            .map(|hs| {
                hs.iter()
                    .map(|h| {
                        (
                            h.key.to_owned(),
                            h.value.map(<[u8]>::to_vec).unwrap_or_default(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        Self {
            topic: m.topic().to_owned(),
            partition: m.partition(),
            offset: m.offset(),
            key: m.key().map(<[u8]>::to_vec),
            payload: m.payload().map(<[u8]>::to_vec),
            headers,
            timestamp_ms: m.timestamp().to_millis(),
        }
    }

    /// The first header with this name.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_slice())
    }

    /// The key as UTF-8, if it is.
    pub fn key_str(&self) -> Option<&str> {
        self.key
            .as_deref()
            .and_then(|k| std::str::from_utf8(k).ok())
    }

    /// Decodes the payload as JSON; a record that does not decode is poison ([`HandleError::Permanent`]).
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, HandleError> {
        let payload = self
            .payload
            .as_deref()
            .ok_or_else(|| HandleError::permanent(anyhow::anyhow!("record has no payload")))?;
        serde_json::from_slice(payload)
            .map_err(|e| HandleError::permanent(anyhow::anyhow!("invalid JSON payload: {e}")))
    }
}

/// Why a record could not be handled.
#[derive(Debug, thiserror::Error)]
pub enum HandleError {
    /// May succeed later (a dependency is down, a timeout): retried with backoff.
    #[error("{0:#}")]
    Transient(anyhow::Error),
    /// Will never succeed (malformed, violates the schema): dead-lettered at once.
    #[error("{0:#}")]
    Permanent(anyhow::Error),
}

impl HandleError {
    pub fn transient(e: impl Into<anyhow::Error>) -> Self {
        Self::Transient(e.into())
    }
    pub fn permanent(e: impl Into<anyhow::Error>) -> Self {
        Self::Permanent(e.into())
    }
}

/// What a worker does with its records.
#[async_trait]
pub trait Handler: Send + Sync + 'static {
    /// Handles one record. Must be idempotent: after a crash a record may come again.
    async fn handle(&self, record: &Record) -> Result<(), HandleError>;

    /// Up to this many queued records of one partition are passed to [`Handler::handle_batch`].
    fn batch_size(&self) -> usize {
        1
    }

    /// Handles consecutive records of one partition, returning one result per record. Failed
    /// records are then retried one by one through [`Handler::handle`].
    async fn handle_batch(&self, records: &[Record]) -> Vec<Result<(), HandleError>> {
        let mut out = Vec::with_capacity(records.len());
        for r in records {
            out.push(self.handle(r).await);
        }
        out
    }
}

/// How a consumer group runs.
#[derive(Debug, Clone)]
pub struct ConsumerOptions {
    /// Consumer group id (already prefixed).
    pub group: String,
    /// Topics to subscribe to (already prefixed).
    pub topics: Vec<String>,
    /// Attempts for a transiently failing record before it is dead-lettered.
    pub max_attempts: u32,
    /// First retry delay; doubled per attempt up to `max_backoff`.
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// Records buffered per partition ahead of its handler.
    pub partition_queue: usize,
    /// How often stored offsets are committed in the background.
    pub commit_interval: Duration,
    /// Group session timeout.
    pub session_timeout: Duration,
    /// Create missing dead-letter topics at start (the operator normally does).
    pub create_dlq_topics: bool,
}

impl ConsumerOptions {
    pub fn new(group: impl Into<String>, topics: Vec<String>) -> Self {
        Self {
            group: group.into(),
            topics,
            max_attempts: 5,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
            partition_queue: 256,
            commit_interval: Duration::from_secs(1),
            session_timeout: Duration::from_secs(10),
            create_dlq_topics: true,
        }
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1));
        let d = self
            .initial_backoff
            .saturating_mul(factor)
            .min(self.max_backoff);
        // ±20 % jitter so partitions that fail together do not retry together.
        let jitter = rand::random_range(0.8..1.2);
        d.mul_f64(jitter)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConsumerError {
    #[error("failed to create the Kafka consumer")]
    Create(#[source] KafkaError),
    #[error("failed to subscribe to {topics:?}")]
    Subscribe {
        topics: Vec<String>,
        #[source]
        source: KafkaError,
    },
    #[error("failed to create the dead-letter producer")]
    Producer(#[source] super::ProduceError),
    #[error("a partition task of group {group} failed: {message}")]
    Worker { group: String, message: String },
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    group: String,
    topic: String,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GroupLabels {
    group: String,
}

/// Consumer metrics; register once per process with [`ConsumerMetrics::register`].
#[derive(Clone)]
pub struct ConsumerMetrics {
    records: Family<OutcomeLabels, Counter>,
    retries: Family<GroupLabels, Counter>,
    duration: Family<GroupLabels, Histogram, fn() -> Histogram>,
}

impl ConsumerMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self::default();
        registry.register(
            "consumer_records",
            "Records finished, by outcome (ok, dlq)",
            m.records.clone(),
        );
        registry.register(
            "consumer_retries",
            "Handler attempts that failed and were retried",
            m.retries.clone(),
        );
        registry.register(
            "consumer_handle_duration_seconds",
            "Time to handle a record or batch",
            m.duration.clone(),
        );
        m
    }
}

impl Default for ConsumerMetrics {
    fn default() -> Self {
        Self {
            records: Family::default(),
            retries: Family::default(),
            duration: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.0001, 2.0, 18))
            }),
        }
    }
}

struct LoggingContext {
    group: String,
}

impl ClientContext for LoggingContext {}

impl ConsumerContext for LoggingContext {
    fn pre_rebalance(&self, _: &rdkafka::consumer::BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            tracing::info!(group = %self.group, partitions = %describe(tpl), "partitions revoked");
        }
    }
    fn post_rebalance(&self, _: &rdkafka::consumer::BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            tracing::info!(group = %self.group, partitions = %describe(tpl), "partitions assigned");
        }
    }
}

fn describe(tpl: &TopicPartitionList) -> String {
    tpl.elements()
        .iter()
        .map(|e| format!("{}/{}", e.topic(), e.partition()))
        .collect::<Vec<_>>()
        .join(",")
}

type Inner = StreamConsumer<LoggingContext>;

/// A running consumer group member. Build with [`ConsumerRuntime::new`], then [`ConsumerRuntime::run`].
pub struct ConsumerRuntime {
    consumer: Arc<Inner>,
    dlq: Producer,
    args: KafkaArgs,
    opts: Arc<ConsumerOptions>,
    metrics: ConsumerMetrics,
}

impl ConsumerRuntime {
    pub fn new(
        args: &KafkaArgs,
        opts: ConsumerOptions,
        metrics: ConsumerMetrics,
    ) -> Result<Self, ConsumerError> {
        let mut cfg = args.client_config();
        cfg.set("group.id", &opts.group)
            .set("enable.auto.commit", "true")
            .set(
                "auto.commit.interval.ms",
                opts.commit_interval.as_millis().to_string(),
            )
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("enable.partition.eof", "false")
            .set(
                "session.timeout.ms",
                opts.session_timeout.as_millis().to_string(),
            );
        for (k, v) in &args.properties {
            cfg.set(k, v);
        }
        let consumer: Inner = cfg
            .create_with_context(LoggingContext {
                group: opts.group.clone(),
            })
            .map_err(ConsumerError::Create)?;
        let dlq = Producer::new(args).map_err(ConsumerError::Producer)?;
        Ok(Self {
            consumer: Arc::new(consumer),
            dlq,
            args: args.clone(),
            opts: Arc::new(opts),
            metrics,
        })
    }

    /// A readiness check: the group's coordinator answers.
    pub fn ping_fn(
        &self,
    ) -> impl Fn() -> futures::future::BoxFuture<'static, Result<(), String>> + Send + Sync + 'static
    {
        let consumer = self.consumer.clone();
        move || {
            let consumer = consumer.clone();
            Box::pin(async move {
                tokio::task::spawn_blocking(move || {
                    consumer
                        .fetch_metadata(None, Duration::from_secs(2))
                        .map(|_| ())
                        .map_err(|e| format!("kafka: {e}"))
                })
                .await
                .map_err(|e| e.to_string())?
            })
        }
    }

    /// Consumes until `shutdown` fires, then finishes the records in hand and commits.
    pub async fn run<H: Handler>(
        self,
        handler: Arc<H>,
        shutdown: CancellationToken,
    ) -> Result<(), ConsumerError> {
        if self.opts.create_dlq_topics {
            self.create_dlq_topics().await;
        }
        let topics: Vec<&str> = self.opts.topics.iter().map(String::as_str).collect();
        self.consumer
            .subscribe(&topics)
            .map_err(|source| ConsumerError::Subscribe {
                topics: self.opts.topics.clone(),
                source,
            })?;
        tracing::info!(group = %self.opts.group, topics = ?self.opts.topics, "consuming");

        let stop_workers = shutdown.child_token();
        let mut partitions: HashMap<PartitionKey, Lane> = HashMap::new();
        // One future per paused partition: resolves when its queue has room again.
        let mut drained = FuturesUnordered::new();
        let mut tasks = JoinSet::new();
        let mut failure = None;
        loop {
            let msg = tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                Some(done) = tasks.join_next(), if !tasks.is_empty() => {
                    failure = Some(task_failure(done));
                    break;
                }
                Some(key) = drained.next(), if !drained.is_empty() => {
                    self.refill(&mut partitions, key, &mut drained);
                    continue;
                }
                msg = self.consumer.recv() => msg,
            };
            let record = match msg {
                Ok(m) => Record::from_message(&m),
                Err(e) => {
                    tracing::warn!(group = %self.opts.group, error = %e, "consume error; retrying");
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(Duration::from_millis(500)) => continue,
                    }
                }
            };
            let key = (record.topic.clone(), record.partition);
            let lane = partitions.entry(key.clone()).or_insert_with(|| {
                let (tx, rx) = mpsc::channel(self.opts.partition_queue.max(1));
                let worker = PartitionWorker {
                    consumer: self.consumer.clone(),
                    dlq: self.dlq.clone(),
                    opts: self.opts.clone(),
                    metrics: self.metrics.clone(),
                    handler: handler.clone(),
                    shutdown: stop_workers.clone(),
                };
                tasks.spawn(worker.run(rx));
                Lane {
                    tx,
                    parked: VecDeque::new(),
                }
            });
            if !lane.parked.is_empty() {
                // Fetched before the pause took effect: keep the order behind the parked ones.
                lane.parked.push_back(record);
                continue;
            }
            match lane.tx.try_send(record) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(record)) => {
                    lane.parked.push_back(record);
                    self.pause(&key, lane, &mut drained);
                }
                // The task ended; its result is collected on the next turn.
                Err(mpsc::error::TrySendError::Closed(_)) => {}
            }
        }
        stop_workers.cancel();
        drop(partitions);
        drop(drained);
        while let Some(done) = tasks.join_next().await {
            if let Err(e) = done {
                failure.get_or_insert_with(|| task_failure(Err(e)));
            }
        }
        match self.consumer.commit_consumer_state(CommitMode::Sync) {
            Ok(()) => {}
            Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
            Err(e) => tracing::warn!(group = %self.opts.group, error = %e, "final commit failed"),
        }
        self.dlq.flush(Duration::from_secs(5));
        tracing::info!(group = %self.opts.group, "consumer stopped");
        match failure {
            Some(message) => Err(ConsumerError::Worker {
                group: self.opts.group.clone(),
                message,
            }),
            None => Ok(()),
        }
    }

    async fn create_dlq_topics(&self) {
        let specs: Vec<TopicSpec> = self
            .opts
            .topics
            .iter()
            .map(|t| TopicSpec::new(dlq_topic(t, &self.opts.group), 1))
            .collect();
        let result = match Admin::new(&self.args) {
            Ok(admin) => admin
                .ensure(&specs)
                .await
                .map(|_| ())
                .map_err(|e| format!("{e:#}")),
            Err(e) => Err(e.to_string()),
        };
        if let Err(e) = result {
            tracing::warn!(group = %self.opts.group, error = %e, "could not create dead-letter topics; they must exist before a record is dead-lettered");
        }
    }

    /// A partition's queue is full: stop fetching it, without holding up the other partitions,
    /// until its handler has worked off half the queue. librdkafka drops what it prefetched for a
    /// paused partition and fetches again from the next undelivered offset on resume, so nothing
    /// is skipped and nothing comes twice.
    fn pause(&self, key: &PartitionKey, lane: &Lane, drained: &mut Drained) {
        if let Err(e) = self.consumer.pause(&partition_list(key)) {
            tracing::debug!(topic = %key.0, partition = key.1, error = %e, "pause failed");
        }
        let tx = lane.tx.clone();
        let room = (tx.max_capacity() / 2)
            .max(lane.parked.len())
            .clamp(1, tx.max_capacity());
        let key = key.clone();
        drained.push(Box::pin(async move {
            // Waits for the room, then hands it back at once: the records go in through `refill`.
            drop(tx.reserve_many(room).await);
            key
        }));
    }

    /// A paused partition's queue has room: queue its parked records and fetch it again.
    fn refill(
        &self,
        partitions: &mut HashMap<PartitionKey, Lane>,
        key: PartitionKey,
        drained: &mut Drained,
    ) {
        let Some(lane) = partitions.get_mut(&key) else {
            return;
        };
        while let Some(record) = lane.parked.pop_front() {
            match lane.tx.try_send(record) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(record)) => {
                    lane.parked.push_front(record);
                    self.pause(&key, lane, drained);
                    return;
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    lane.parked.clear();
                    return;
                }
            }
        }
        if let Err(e) = self.consumer.resume(&partition_list(&key)) {
            tracing::debug!(topic = %key.0, partition = key.1, error = %e, "resume failed");
        }
    }
}

type PartitionKey = (String, i32);
type Drained = FuturesUnordered<futures::future::BoxFuture<'static, PartitionKey>>;

/// The way from the fetch loop to one partition's task.
struct Lane {
    tx: mpsc::Sender<Record>,
    /// Records fetched while the queue was full; the partition is paused while any are here.
    parked: VecDeque<Record>,
}

fn partition_list((topic, partition): &PartitionKey) -> TopicPartitionList {
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(topic, *partition);
    tpl
}

fn task_failure(done: Result<(), tokio::task::JoinError>) -> String {
    match done {
        Ok(()) => "partition task ended unexpectedly".to_owned(),
        Err(e) if e.is_panic() => {
            let p = e.into_panic();
            p.downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "handler panicked".to_owned())
        }
        Err(e) => e.to_string(),
    }
}

struct PartitionWorker<H> {
    consumer: Arc<Inner>,
    dlq: Producer,
    opts: Arc<ConsumerOptions>,
    metrics: ConsumerMetrics,
    handler: Arc<H>,
    shutdown: CancellationToken,
}

/// A record's fate after retries: done (stored) or abandoned on shutdown (not stored).
enum Finished {
    Done,
    Abandoned,
}

impl<H: Handler> PartitionWorker<H> {
    async fn run(self, mut rx: mpsc::Receiver<Record>) {
        let batch_size = self.handler.batch_size().max(1);
        let mut batch = Vec::with_capacity(batch_size);
        loop {
            let first = tokio::select! {
                biased;
                _ = self.shutdown.cancelled() => return,
                r = rx.recv() => match r { Some(r) => r, None => return },
            };
            batch.clear();
            batch.push(first);
            while batch.len() < batch_size {
                match rx.try_recv() {
                    Ok(r) => batch.push(r),
                    Err(_) => break,
                }
            }
            let last = batch
                .last()
                .map(|r| (r.topic.clone(), r.partition, r.offset));
            if let Finished::Abandoned = self.process(&batch).await {
                return;
            }
            if let Some((topic, partition, offset)) = last
                && let Err(e) = self.consumer.store_offset(&topic, partition, offset)
            {
                // The partition was revoked meanwhile: the next owner re-delivers from the
                // last commit, which at-least-once allows.
                tracing::debug!(%topic, partition, offset, error = %e, "offset not stored");
            }
        }
    }

    async fn process(&self, batch: &[Record]) -> Finished {
        let started = Instant::now();
        let results = if batch.len() == 1 {
            vec![self.attempt(&batch[0]).await]
        } else {
            self.handler
                .handle_batch(batch)
                .instrument(tracing::info_span!("batch", size = batch.len()))
                .await
        };
        self.metrics
            .duration
            .get_or_create(&GroupLabels {
                group: self.opts.group.clone(),
            })
            .observe(started.elapsed().as_secs_f64());
        for (record, result) in batch.iter().zip(results) {
            let finished = match result {
                Ok(()) => {
                    self.count(record, "ok");
                    Finished::Done
                }
                Err(e) => self.retry(record, e).await,
            };
            if let Finished::Abandoned = finished {
                return Finished::Abandoned;
            }
        }
        Finished::Done
    }

    async fn attempt(&self, record: &Record) -> Result<(), HandleError> {
        let request_id = record
            .header(REQUEST_ID.as_str())
            .and_then(|v| std::str::from_utf8(v).ok())
            .unwrap_or("");
        let span = tracing::info_span!(
            "record",
            group = %self.opts.group,
            topic = %record.topic,
            partition = record.partition,
            offset = record.offset,
            request_id,
        );
        self.handler.handle(record).instrument(span).await
    }

    /// Retries a failed record with backoff, then dead-letters it.
    async fn retry(&self, record: &Record, mut error: HandleError) -> Finished {
        let mut attempts = 1;
        loop {
            match &error {
                HandleError::Permanent(_) => break,
                HandleError::Transient(_) if attempts >= self.opts.max_attempts => break,
                HandleError::Transient(e) => {
                    self.metrics
                        .retries
                        .get_or_create(&GroupLabels {
                            group: self.opts.group.clone(),
                        })
                        .inc();
                    let delay = self.opts.backoff(attempts);
                    tracing::warn!(
                        topic = %record.topic, partition = record.partition, offset = record.offset,
                        attempt = attempts, retry_in_ms = delay.as_millis() as u64, error = %format!("{e:#}"),
                        "handler failed; retrying"
                    );
                    tokio::select! {
                        _ = self.shutdown.cancelled() => return Finished::Abandoned,
                        _ = tokio::time::sleep(delay) => {}
                    }
                }
            }
            attempts += 1;
            match self.attempt(record).await {
                Ok(()) => {
                    self.count(record, "ok");
                    return Finished::Done;
                }
                Err(e) => error = e,
            }
        }
        self.dead_letter(record, &error, attempts).await
    }

    async fn dead_letter(&self, record: &Record, error: &HandleError, attempts: u32) -> Finished {
        let topic = dlq_topic(&record.topic, &self.opts.group);
        let (reason, message) = match error {
            HandleError::Permanent(e) => ("permanent", format!("{e:#}")),
            HandleError::Transient(e) => ("exhausted", format!("{e:#}")),
        };
        let partition = record.partition.to_string();
        let offset = record.offset.to_string();
        let attempts_s = attempts.to_string();
        let failed_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let mut headers: Vec<(&str, &[u8])> = record
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_slice()))
            .collect();
        headers.extend([
            (dlq_headers::ERROR, message.as_bytes()),
            (dlq_headers::REASON, reason.as_bytes()),
            (dlq_headers::ORIGINAL_TOPIC, record.topic.as_bytes()),
            (dlq_headers::ORIGINAL_PARTITION, partition.as_bytes()),
            (dlq_headers::ORIGINAL_OFFSET, offset.as_bytes()),
            (dlq_headers::ATTEMPTS, attempts_s.as_bytes()),
            (dlq_headers::GROUP, self.opts.group.as_bytes()),
            (dlq_headers::FAILED_AT, failed_at.as_bytes()),
        ]);
        let key = record.key.as_deref().unwrap_or_default();
        let payload = record.payload.as_deref().unwrap_or_default();
        let mut tries = 0u32;
        loop {
            match self.dlq.send(&topic, key, payload, &headers).await {
                Ok(_) => {
                    tracing::error!(
                        topic = %record.topic, partition = record.partition, offset = record.offset,
                        dlq = %topic, reason, attempts, error = %message, "record dead-lettered"
                    );
                    self.count(record, "dlq");
                    return Finished::Done;
                }
                Err(e) => {
                    tries += 1;
                    let delay = self.opts.backoff(tries);
                    tracing::error!(dlq = %topic, error = %format!("{e:#}"), "dead-letter write failed; retrying");
                    tokio::select! {
                        _ = self.shutdown.cancelled() => return Finished::Abandoned,
                        _ = tokio::time::sleep(delay) => {}
                    }
                }
            }
        }
    }

    fn count(&self, record: &Record, outcome: &'static str) {
        self.metrics
            .records
            .get_or_create(&OutcomeLabels {
                group: self.opts.group.clone(),
                topic: record.topic.clone(),
                outcome,
            })
            .inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_bounded() {
        let o = ConsumerOptions::new("g", vec![]);
        let b1 = o.backoff(1);
        let b4 = o.backoff(4);
        assert!(
            b1 >= Duration::from_millis(80) && b1 <= Duration::from_millis(120),
            "{b1:?}"
        );
        assert!(
            b4 >= Duration::from_millis(640) && b4 <= Duration::from_millis(960),
            "{b4:?}"
        );
        assert!(o.backoff(30) <= Duration::from_secs(6));
    }
}
