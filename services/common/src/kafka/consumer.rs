//! The consumer runtime every Campus worker runs.
//!
//! - **At-least-once**: an offset is stored only after its record was handled (or dead-lettered),
//!   and committed in the background and once more on shutdown.
//! - **Order per partition, partitions in parallel**: each assigned partition gets its own librdkafka
//!   queue (split off the consumer's queue when the partition is assigned) and its own task that
//!   handles its records one after another (or in batches, for handlers that ask for them). A slow
//!   partition only stops its own fetching; the others go on.
//! - **Outages are waited out**: a [`HandleError::Outage`] (a store the handler needs is down) is
//!   retried with capped exponential backoff for as long as it lasts, with a warning per attempt
//!   and the `consumer_outage_retries` metric; the record is never dead-lettered for it (only a
//!   shutdown or a revoke interrupts, and then its offset is not stored).
//! - **Bounded retries**: a [`HandleError::Transient`] failure is retried with exponential backoff
//!   up to `max_attempts`; then — or at once for [`HandleError::Permanent`] — the record goes to
//!   `<topic>.dlq.<group>` with headers naming the error, the original topic/partition/offset and
//!   the attempts, and the partition moves on.
//! - **Panics**: a handler that panics has failed that attempt (a transient failure): the record is
//!   retried, then dead-lettered, and the worker goes on.
//! - **Metrics** ([`ConsumerMetrics`]): records by outcome, retries, dead-lettered records per
//!   group, topic and reason (`campus_consumer_dlq_records_total`, at 0 from the start so an alert
//!   sees the first one), and the lag of every assigned partition (`campus_consumer_lag`: its high
//!   watermark minus the group's committed offset), from librdkafka's statistics every
//!   `KAFKA_LAG_INTERVAL_MS`.
//! - **Shutdown**: when the token fires, each partition task finishes the record in hand, records
//!   still queued are left for the next owner, and stored offsets are committed synchronously.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, Weak};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures::FutureExt as _;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use rdkafka::consumer::stream_consumer::StreamPartitionQueue;
use rdkafka::consumer::{CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::{ClientContext, Statistics, TopicPartitionList};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::admin::{Admin, TopicSpec};
use super::producer::Producer;
use super::{dlq_headers, dlq_topic};
use crate::config::KafkaArgs;
use crate::http::REQUEST_ID;
use crate::retry::Backoff;

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
    pub(crate) fn from_message(m: &BorrowedMessage<'_>) -> Self {
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
    /// A dependency is unavailable (its server is down or unreachable): retried with backoff until
    /// it is back, never dead-lettered.
    #[error("{0:#}")]
    Outage(anyhow::Error),
}

impl HandleError {
    pub fn transient(e: impl Into<anyhow::Error>) -> Self {
        Self::Transient(e.into())
    }
    pub fn permanent(e: impl Into<anyhow::Error>) -> Self {
        Self::Permanent(e.into())
    }
    pub fn outage(e: impl Into<anyhow::Error>) -> Self {
        Self::Outage(e.into())
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
    /// Records librdkafka keeps prefetched per partition ahead of its handler (`queued.min.messages`;
    /// a `queued.min.messages` in the Kafka properties wins). The total is also capped in bytes by
    /// `queued.max.messages.kbytes`.
    pub partition_queue: usize,
    /// How often stored offsets are committed in the background.
    pub commit_interval: Duration,
    /// Group session timeout.
    pub session_timeout: Duration,
    /// How long the consumer's own client may fail to reach Kafka while an independent client
    /// (its dead-letter producer) reaches it, before [`ConsumerRuntime::run`] gives up with
    /// [`ConsumerError::Stalled`] so that the process exits and its pod starts afresh. librdkafka
    /// can stay wedged after a broker restart (seen on the cluster: a worker's metadata requests
    /// and group coordinator timed out for minutes against a healthy broker). Zero: never.
    pub stall_timeout: Duration,
    /// Create missing dead-letter topics at start (the operator normally does).
    pub create_dlq_topics: bool,
    /// librdkafka settings for this consumer only (not its dead-letter producer), e.g. prefetch
    /// limits; the Kafka properties the operator or user gives still win.
    pub consumer_properties: Vec<(String, String)>,
}

impl ConsumerOptions {
    pub fn new(group: impl Into<String>, topics: Vec<String>) -> Self {
        Self {
            group: group.into(),
            topics,
            max_attempts: 5,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
            partition_queue: 1000,
            commit_interval: Duration::from_secs(1),
            session_timeout: Duration::from_secs(10),
            stall_timeout: Duration::from_secs(60),
            create_dlq_topics: true,
            consumer_properties: Vec::new(),
        }
    }

    /// The pause before retry `attempt`: `initial_backoff` doubling up to `max_backoff`, ±20 %
    /// jitter so partitions that fail together do not retry together.
    fn backoff(&self, attempt: u32) -> Duration {
        Backoff::new(self.initial_backoff, self.max_backoff)
            .with_jitter(0.2)
            .delay(attempt)
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
    #[error(
        "the Kafka client of group {group} has not reached Kafka for {secs} s while another client \
         does: giving up so that a new process starts"
    )]
    Stalled { group: String, secs: u64 },
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

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DlqLabels {
    group: String,
    topic: String,
    /// `permanent` (the handler refused the record) or `exhausted` (its retries ran out).
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PartitionLabels {
    group: String,
    topic: String,
    partition: i32,
}

/// Consumer metrics; register once per process with [`ConsumerMetrics::register`].
#[derive(Clone)]
pub struct ConsumerMetrics {
    records: Family<OutcomeLabels, Counter>,
    retries: Family<GroupLabels, Counter>,
    outage_retries: Family<GroupLabels, Counter>,
    panics: Family<GroupLabels, Counter>,
    duration: Family<GroupLabels, Histogram, fn() -> Histogram>,
    dlq: Family<DlqLabels, Counter>,
    lag: Family<PartitionLabels, Gauge>,
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
            "consumer_outage_retries",
            "Handler attempts that failed because a dependency was down, retried until it is back",
            m.outage_retries.clone(),
        );
        registry.register(
            "consumer_handler_panics",
            "Handler attempts that panicked (each counted as a failed attempt)",
            m.panics.clone(),
        );
        registry.register(
            "consumer_handle_duration_seconds",
            "Time to handle a record or batch",
            m.duration.clone(),
        );
        registry.register(
            "consumer_dlq_records",
            "Records written to the group's dead-letter topic, by original topic and reason (permanent, exhausted)",
            m.dlq.clone(),
        );
        registry.register(
            "consumer_lag",
            "Records of an assigned partition the group has not committed yet (high watermark minus committed offset)",
            m.lag.clone(),
        );
        m
    }

    /// Creates the group's series at 0, so the first record dead-lettered (or retried) is an
    /// increase an alert sees, and dashboards show the group before its first record.
    fn start(&self, group: &str, topics: &[String]) {
        let g = GroupLabels {
            group: group.to_owned(),
        };
        let _ = self.retries.get_or_create(&g);
        let _ = self.outage_retries.get_or_create(&g);
        let _ = self.panics.get_or_create(&g);
        let _ = self.duration.get_or_create(&g);
        for topic in topics {
            for outcome in ["ok", "dlq"] {
                let _ = self.records.get_or_create(&OutcomeLabels {
                    group: group.to_owned(),
                    topic: topic.clone(),
                    outcome,
                });
            }
            for reason in ["permanent", "exhausted"] {
                let _ = self.dlq.get_or_create(&DlqLabels {
                    group: group.to_owned(),
                    topic: topic.clone(),
                    reason,
                });
            }
        }
    }

    /// The lag of `group`'s partition, as last reported (tests).
    pub fn lag(&self, group: &str, topic: &str, partition: i32) -> Option<i64> {
        let labels = PartitionLabels {
            group: group.to_owned(),
            topic: topic.to_owned(),
            partition,
        };
        // Read without creating the series.
        self.lag.get(&labels).map(|g| g.get())
    }
}

impl Default for ConsumerMetrics {
    fn default() -> Self {
        Self {
            records: Family::default(),
            retries: Family::default(),
            outage_retries: Family::default(),
            panics: Family::default(),
            duration: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.0001, 2.0, 18))
            }),
            dlq: Family::default(),
            lag: Family::default(),
        }
    }
}

type Inner = StreamConsumer<PartitionContext>;
type PartitionQueue = StreamPartitionQueue<PartitionContext>;
type PartitionKey = (String, i32);
/// Starts the task of a newly assigned partition; `run` installs it before subscribing.
type Spawn =
    Box<dyn Fn(PartitionKey, PartitionQueue, Option<JoinHandle<()>>) -> Lane + Send + Sync>;

/// One assigned (or just revoked) partition's task.
struct Lane {
    stop: CancellationToken,
    task: JoinHandle<()>,
}

/// Gives every assigned partition its own queue and task, in the rebalance callback: the queue must
/// be split off before librdkafka assigns the partition, or its first records land in the
/// consumer's common queue.
struct PartitionContext {
    group: String,
    consumer: OnceLock<Weak<Inner>>,
    spawn: OnceLock<Spawn>,
    lanes: Mutex<HashMap<PartitionKey, Lane>>,
    /// The partitions assigned now (their lag is reported).
    assigned: Mutex<HashSet<PartitionKey>>,
    lag: Family<PartitionLabels, Gauge>,
}

impl ClientContext for PartitionContext {
    /// librdkafka's statistics (every `statistics.interval.ms`): the lag of each assigned
    /// partition.
    fn stats(&self, statistics: Statistics) {
        let assigned = self.assigned.lock().unwrap_or_else(PoisonError::into_inner);
        for (topic, partition) in assigned.iter() {
            let Some(p) = statistics
                .topics
                .get(topic)
                .and_then(|t| t.partitions.get(partition))
            else {
                continue;
            };
            if let Some(lag) =
                partition_lag(p.consumer_lag, p.hi_offset, p.lo_offset, p.committed_offset)
            {
                self.lag
                    .get_or_create(&self.lag_labels(topic, *partition))
                    .set(lag);
            }
        }
    }
}

/// A partition's lag from its statistics: librdkafka's `consumer_lag` (high watermark minus the
/// committed offset) when it knows it; before the group's first commit, what is left from the log
/// start (the group starts at the earliest offset); `None` while the watermarks are unknown.
fn partition_lag(consumer_lag: i64, hi: i64, lo: i64, committed: i64) -> Option<i64> {
    if consumer_lag >= 0 {
        Some(consumer_lag)
    } else if hi >= 0 && committed < 0 {
        Some((hi - lo.max(0)).max(0))
    } else {
        None
    }
}

impl ConsumerContext for PartitionContext {
    fn pre_rebalance(&self, _: &rdkafka::consumer::BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => self.assign(tpl),
            Rebalance::Revoke(tpl) => {
                tracing::info!(group = %self.group, partitions = %describe(tpl), "partitions revoked");
                {
                    let mut assigned = self.assigned.lock().unwrap_or_else(PoisonError::into_inner);
                    for e in tpl.elements() {
                        assigned.remove(&(e.topic().to_owned(), e.partition()));
                        // Another member reports it now.
                        self.lag.remove(&self.lag_labels(e.topic(), e.partition()));
                    }
                }
                let lanes = self.lanes.lock().unwrap_or_else(PoisonError::into_inner);
                for e in tpl.elements() {
                    if let Some(lane) = lanes.get(&(e.topic().to_owned(), e.partition())) {
                        // It finishes the record in hand; its offset is then not stored, and the
                        // next owner takes the partition from the last commit.
                        lane.stop.cancel();
                    }
                }
            }
            Rebalance::Error(e) => {
                tracing::warn!(group = %self.group, error = %e, "rebalance failed")
            }
        }
    }

    fn post_rebalance(&self, _: &rdkafka::consumer::BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            tracing::info!(group = %self.group, partitions = %describe(tpl), "partitions assigned");
        }
    }
}

impl PartitionContext {
    fn lag_labels(&self, topic: &str, partition: i32) -> PartitionLabels {
        PartitionLabels {
            group: self.group.clone(),
            topic: topic.to_owned(),
            partition,
        }
    }

    fn assign(&self, tpl: &TopicPartitionList) {
        self.assigned
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend(
                tpl.elements()
                    .iter()
                    .map(|e| (e.topic().to_owned(), e.partition())),
            );
        let (Some(consumer), Some(spawn)) = (
            self.consumer.get().and_then(Weak::upgrade),
            self.spawn.get(),
        ) else {
            return;
        };
        let mut lanes = self.lanes.lock().unwrap_or_else(PoisonError::into_inner);
        for e in tpl.elements() {
            let key = (e.topic().to_owned(), e.partition());
            // A task of an earlier assignment of this partition: the new one waits for it.
            let previous = lanes.remove(&key).map(|lane| {
                lane.stop.cancel();
                lane.task
            });
            match consumer.split_partition_queue(&key.0, key.1) {
                Some(queue) => {
                    lanes.insert(key.clone(), spawn(key, queue, previous));
                }
                None => tracing::error!(
                    group = %self.group, topic = %key.0, partition = key.1,
                    "could not give the partition its own queue"
                ),
            }
        }
    }

    /// Stops every partition task and waits for them.
    async fn stop_all(&self) {
        let lanes: Vec<Lane> = self
            .lanes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .drain()
            .map(|(_, lane)| lane)
            .collect();
        for lane in &lanes {
            lane.stop.cancel();
        }
        for lane in lanes {
            let _ = lane.task.await;
        }
    }
}

/// Resolves once `own()` (the consumer's client reaching Kafka) has failed for `limit` while
/// `independent()` (another client) succeeded every time it was asked; an outage both see resets
/// the clock (Kafka is down: wait it out, a new process would not help). Never when `limit` is 0.
async fn stall_watch<O, FO, I, FI>(mut own: O, mut independent: I, limit: Duration, group: &str)
where
    O: FnMut() -> FO,
    FO: std::future::Future<Output = bool>,
    I: FnMut() -> FI,
    FI: std::future::Future<Output = bool>,
{
    if limit.is_zero() {
        return std::future::pending().await;
    }
    let every = (limit / 6).clamp(Duration::from_millis(100), Duration::from_secs(10));
    let mut since: Option<tokio::time::Instant> = None;
    loop {
        tokio::time::sleep(every).await;
        if own().await || !independent().await {
            since = None;
            continue;
        }
        let first = *since.get_or_insert_with(tokio::time::Instant::now);
        tracing::warn!(
            %group,
            for_secs = first.elapsed().as_secs(),
            "the consumer's Kafka client fails where another client reaches Kafka"
        );
        if first.elapsed() >= limit {
            return;
        }
    }
}

/// Aborts the partition tasks that are still registered when dropped.
struct AbortOnDrop<'a>(&'a PartitionContext);

impl Drop for AbortOnDrop<'_> {
    fn drop(&mut self) {
        let mut lanes = self.0.lanes.lock().unwrap_or_else(PoisonError::into_inner);
        for (_, lane) in lanes.drain() {
            lane.task.abort();
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
            )
            .set(
                "queued.min.messages",
                opts.partition_queue.max(1).to_string(),
            )
            // With the queue bounded that low, a full queue postponed the partition's next fetch
            // by librdkafka's default 1 s (`fetch.queue.backoff.ms`), though the handler empties
            // it in milliseconds: the log indexer's bulks stood idle ~3/4 of the time on a backlog.
            .set("fetch.queue.backoff.ms", "10")
            // The lag gauges come from librdkafka's statistics (0 turns them off).
            .set(
                "statistics.interval.ms",
                args.lag_interval.as_millis().to_string(),
            );
        for (k, v) in opts.consumer_properties.iter().chain(&args.properties) {
            cfg.set(k, v);
        }
        let consumer: Arc<Inner> = Arc::new(
            cfg.create_with_context(PartitionContext {
                group: opts.group.clone(),
                consumer: OnceLock::new(),
                spawn: OnceLock::new(),
                lanes: Mutex::default(),
                assigned: Mutex::default(),
                lag: metrics.lag.clone(),
            })
            .map_err(ConsumerError::Create)?,
        );
        // The rebalance callback splits partition queues off the consumer it belongs to.
        let _ = consumer.context().consumer.set(Arc::downgrade(&consumer));
        let dlq = Producer::new(args).map_err(ConsumerError::Producer)?;
        Ok(Self {
            consumer,
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
        self.metrics.start(&self.opts.group, &self.opts.topics);
        let stop_workers = shutdown.child_token();
        let (failures, mut failed) = mpsc::unbounded_channel();
        let spawn: Spawn = {
            let (consumer, dlq, opts, metrics) = (
                Arc::downgrade(&self.consumer),
                self.dlq.clone(),
                self.opts.clone(),
                self.metrics.clone(),
            );
            let runtime = tokio::runtime::Handle::current();
            let stop_workers = stop_workers.clone();
            Box::new(move |key, queue, previous| {
                let stop = stop_workers.child_token();
                let worker = PartitionWorker {
                    consumer: consumer.clone(),
                    dlq: dlq.clone(),
                    opts: opts.clone(),
                    metrics: metrics.clone(),
                    handler: handler.clone(),
                    shutdown: stop.clone(),
                };
                let failures = failures.clone();
                let task = runtime.spawn(async move {
                    let run = std::panic::AssertUnwindSafe(worker.run(key, queue, previous));
                    if let Err(panic) = run.catch_unwind().await {
                        let _ = failures.send(panic_message(panic));
                    }
                });
                Lane { stop, task }
            })
        };
        // Should this future be dropped (its task aborted), the partition tasks go with it.
        let abort = AbortOnDrop(self.consumer.context());
        if self.consumer.context().spawn.set(spawn).is_err() {
            unreachable!("run takes the runtime by value, so it runs once");
        }
        let topics: Vec<&str> = self.opts.topics.iter().map(String::as_str).collect();
        self.consumer
            .subscribe(&topics)
            .map_err(|source| ConsumerError::Subscribe {
                topics: self.opts.topics.clone(),
                source,
            })?;
        tracing::info!(group = %self.opts.group, topics = ?self.opts.topics, "consuming");

        // The consumer's own queue only carries events (rebalances, errors) now, but it must be
        // polled for them; records come through the partition queues.
        let mut failure = None;
        let mut stalled = false;
        let watchdog = {
            // (Its own client: the readiness check; the other: the dead-letter producer's.)
            let (own, probe) = (self.ping_fn(), self.dlq.clone());
            stall_watch(
                move || {
                    let ping = own();
                    async move { ping.await.is_ok() }
                },
                move || {
                    let probe = probe.clone();
                    async move { probe.ping().await.is_ok() }
                },
                self.opts.stall_timeout,
                &self.opts.group,
            )
        };
        tokio::pin!(watchdog);
        loop {
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                _ = &mut watchdog => {
                    stalled = true;
                    break;
                }
                Some(message) = failed.recv() => {
                    failure = Some(message);
                    break;
                }
                msg = self.consumer.recv() => match msg {
                    Ok(m) => {
                        failure = Some(format!(
                            "record {}/{}@{} arrived outside its partition queue",
                            m.topic(), m.partition(), m.offset()
                        ));
                        break;
                    }
                    Err(e) => {
                        tracing::warn!(group = %self.opts.group, error = %e, "consume error; retrying");
                        tokio::select! {
                            _ = shutdown.cancelled() => break,
                            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                        }
                    }
                },
            }
        }
        stop_workers.cancel();
        self.consumer.context().stop_all().await;
        if let Ok(message) = failed.try_recv() {
            failure.get_or_insert(message);
        }
        self.dlq.flush(Duration::from_secs(5));
        // The final commit and the close (leaving the group) block in librdkafka, and neither
        // returns while no broker answers: rdkafka's drop polls until the consumer is closed. So
        // both run on a thread of their own, waited for at most a session timeout and a bit;
        // past that (Kafka gone) the consumer is left behind and shutdown goes on.
        let group = self.opts.group.clone();
        let limit = self.opts.session_timeout + Duration::from_secs(10);
        drop(abort);
        let consumer = self.consumer;
        let (closed, done) = tokio::sync::oneshot::channel();
        let closer = std::thread::Builder::new()
            .name("kafka-close".into())
            .spawn(move || {
                match consumer.commit_consumer_state(CommitMode::Sync) {
                    Ok(()) => {}
                    Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
                    Err(e) => tracing::warn!(%group, error = %e, "final commit failed"),
                }
                drop(consumer);
                let _ = closed.send(());
            });
        match closer {
            Ok(_) => {
                if tokio::time::timeout(limit, done).await.is_err() {
                    tracing::warn!(group = %self.opts.group, ?limit, "the consumer did not commit and close in time (is Kafka reachable?); shutting down without it");
                }
            }
            Err(e) => {
                tracing::warn!(group = %self.opts.group, error = %e, "no thread to close the consumer on")
            }
        }
        tracing::info!(group = %self.opts.group, "consumer stopped");
        match failure {
            Some(message) => Err(ConsumerError::Worker {
                group: self.opts.group.clone(),
                message,
            }),
            None if stalled => Err(ConsumerError::Stalled {
                group: self.opts.group.clone(),
                secs: self.opts.stall_timeout.as_secs(),
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
}

fn panic_message(panic: Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "handler panicked".to_owned())
}

struct PartitionWorker<H> {
    consumer: Weak<Inner>,
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
    async fn run(
        self,
        (topic, partition): PartitionKey,
        queue: PartitionQueue,
        previous: Option<JoinHandle<()>>,
    ) {
        let mut queue = queue;
        // The task of an earlier assignment finishes its record in hand first: one partition,
        // one handler at a time.
        if let Some(previous) = previous {
            let _ = previous.await;
            if self.shutdown.is_cancelled() {
                return;
            }
            // Its queue, dropped as it ended, switched off the wake-up of librdkafka's one queue
            // of the partition, which this task's queue had just switched on (rdkafka's
            // PartitionQueue::drop disables the callback of the shared native queue): this task
            // would never wake for a new record. So the partition is split off again, now that
            // no older handle is left. (Seen on the cluster: a coupon partition stalled for good
            // after two quick rebalances during a roll.)
            drop(queue);
            match self
                .consumer
                .upgrade()
                .and_then(|c| c.split_partition_queue(&topic, partition))
            {
                Some(q) => queue = q,
                // (Caught like a handler's panic: the consumer ends with an error and the worker
                // starts afresh, rather than leave the partition unread.)
                None => panic!("could not give {topic}/{partition} its own queue again"),
            }
        }
        let batch_size = self.handler.batch_size().max(1);
        let mut batch = Vec::with_capacity(batch_size);
        loop {
            let first = tokio::select! {
                biased;
                _ = self.shutdown.cancelled() => return,
                r = queue.recv() => r.map(|m| Record::from_message(&m)),
            };
            batch.clear();
            match first {
                Ok(record) => batch.push(record),
                Err(e) => {
                    tracing::warn!(group = %self.opts.group, error = %e, "partition consume error; retrying");
                    tokio::select! {
                        _ = self.shutdown.cancelled() => return,
                        _ = tokio::time::sleep(Duration::from_millis(500)) => continue,
                    }
                }
            }
            // Whatever else is already fetched joins the batch; nothing is waited for.
            while batch.len() < batch_size {
                match queue.recv().now_or_never() {
                    Some(Ok(m)) => batch.push(Record::from_message(&m)),
                    _ => break,
                }
            }
            let last = batch
                .last()
                .map(|r| (r.topic.clone(), r.partition, r.offset));
            if let Finished::Abandoned = self.process(&batch).await {
                return;
            }
            if let (Some((topic, partition, offset)), Some(consumer)) =
                (last, self.consumer.upgrade())
                && let Err(e) = consumer.store_offset(&topic, partition, offset)
            {
                // The partition was revoked meanwhile: the next owner re-delivers from the last
                // commit, which at-least-once allows.
                tracing::debug!(%topic, partition, offset, error = %e, "offset not stored");
            }
        }
    }

    async fn process(&self, batch: &[Record]) -> Finished {
        let started = Instant::now();
        let results = if batch.len() == 1 {
            vec![self.attempt(&batch[0]).await]
        } else {
            let run = std::panic::AssertUnwindSafe(
                self.handler
                    .handle_batch(batch)
                    .instrument(tracing::info_span!("batch", size = batch.len())),
            );
            match run.catch_unwind().await {
                Ok(results) if results.len() == batch.len() => results,
                // A batch that panicked (or answered for the wrong number of records): each record
                // is retried on its own, where a panic is caught per record.
                Ok(results) => {
                    let n = results.len();
                    batch
                        .iter()
                        .map(|_| {
                            Err(HandleError::transient(anyhow::anyhow!(
                                "the batch handler answered {n} results for {} records",
                                batch.len()
                            )))
                        })
                        .collect()
                }
                Err(panic) => {
                    let message = panic_message(panic);
                    tracing::error!(group = %self.opts.group, size = batch.len(), panic = %message, "batch handler panicked; retrying its records one by one");
                    batch
                        .iter()
                        .map(|_| {
                            Err(HandleError::transient(anyhow::anyhow!(
                                "handler panicked: {message}"
                            )))
                        })
                        .collect()
                }
            }
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
        // A panic is one failed attempt of this record (retried, then dead-lettered), not the end
        // of the worker: a crash loop would stop every partition on one bad record.
        let run = std::panic::AssertUnwindSafe(self.handler.handle(record).instrument(span));
        match run.catch_unwind().await {
            Ok(result) => result,
            Err(panic) => {
                let message = panic_message(panic);
                tracing::error!(
                    group = %self.opts.group, topic = %record.topic, partition = record.partition,
                    offset = record.offset, panic = %message, "handler panicked"
                );
                self.metrics
                    .panics
                    .get_or_create(&GroupLabels {
                        group: self.opts.group.clone(),
                    })
                    .inc();
                Err(HandleError::transient(anyhow::anyhow!(
                    "handler panicked: {message}"
                )))
            }
        }
    }

    /// Retries a failed record with backoff, then dead-letters it.
    async fn retry(&self, record: &Record, mut error: HandleError) -> Finished {
        let mut attempts = 1;
        // Attempts that failed for an outage; they never count towards `max_attempts`.
        let mut outages = 0u32;
        loop {
            match &error {
                HandleError::Permanent(_) => break,
                HandleError::Outage(e) => {
                    outages += 1;
                    self.metrics
                        .outage_retries
                        .get_or_create(&GroupLabels {
                            group: self.opts.group.clone(),
                        })
                        .inc();
                    let delay = self.opts.backoff(outages);
                    tracing::warn!(
                        topic = %record.topic, partition = record.partition, offset = record.offset,
                        outage_attempt = outages, retry_in_ms = delay.as_millis() as u64, error = %format!("{e:#}"),
                        "a dependency is unavailable; waiting for it (the record is not dead-lettered)"
                    );
                    tokio::select! {
                        _ = self.shutdown.cancelled() => return Finished::Abandoned,
                        _ = tokio::time::sleep(delay) => {}
                    }
                    match self.attempt(record).await {
                        Ok(()) => {
                            self.count(record, "ok");
                            return Finished::Done;
                        }
                        Err(e) => error = e,
                    }
                    continue;
                }
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
            HandleError::Transient(e) | HandleError::Outage(e) => ("exhausted", format!("{e:#}")),
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
                    self.metrics
                        .dlq
                        .get_or_create(&DlqLabels {
                            group: self.opts.group.clone(),
                            topic: record.topic.clone(),
                            reason,
                        })
                        .inc();
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
    fn lag_is_the_committed_distance_or_what_is_left_before_the_first_commit() {
        assert_eq!(partition_lag(7, 100, 0, 93), Some(7));
        // No commit yet: the group starts from the log start.
        assert_eq!(partition_lag(-1, 100, 40, -1001), Some(60));
        assert_eq!(partition_lag(-1, 0, -1, -1001), Some(0));
        // Watermarks not fetched yet.
        assert_eq!(partition_lag(-1, -1, -1, -1001), None);
    }

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

    #[tokio::test(start_paused = true)]
    async fn a_client_that_fails_where_another_succeeds_is_given_up_on_and_an_outage_is_waited_out()
    {
        use std::sync::atomic::{AtomicBool, Ordering};
        let limit = Duration::from_secs(60);
        // Wedged: its own client fails, the other reaches Kafka: gives up after the limit.
        let t = tokio::time::Instant::now();
        stall_watch(|| async { false }, || async { true }, limit, "g").await;
        let took = t.elapsed();
        assert!(
            took >= limit && took <= limit + Duration::from_secs(20),
            "{took:?}"
        );
        // Kafka down for both: never gives up (within an hour).
        let outage = stall_watch(|| async { false }, || async { false }, limit, "g");
        assert!(
            tokio::time::timeout(Duration::from_secs(3600), outage)
                .await
                .is_err()
        );
        // A healthy client: never.
        let healthy = stall_watch(|| async { true }, || async { true }, limit, "g");
        assert!(
            tokio::time::timeout(Duration::from_secs(3600), healthy)
                .await
                .is_err()
        );
        // A success of its own resets the clock: failing 50 s, one success, failing again.
        let flip = std::sync::Arc::new(AtomicBool::new(false));
        let f = flip.clone();
        let t = tokio::time::Instant::now();
        let watch = stall_watch(
            move || {
                let ok = f.swap(false, Ordering::SeqCst);
                async move { ok }
            },
            || async { true },
            limit,
            "g",
        );
        tokio::pin!(watch);
        assert!(
            tokio::time::timeout(Duration::from_secs(50), &mut watch)
                .await
                .is_err()
        );
        flip.store(true, Ordering::SeqCst);
        watch.await;
        assert!(
            t.elapsed() >= Duration::from_secs(50) + limit,
            "{:?}",
            t.elapsed()
        );
        // Zero turns it off.
        let off = stall_watch(|| async { false }, || async { true }, Duration::ZERO, "g");
        assert!(
            tokio::time::timeout(Duration::from_secs(3600), off)
                .await
                .is_err()
        );
    }
}
