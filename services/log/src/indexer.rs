//! `campus-log worker index`: the Rust alternative to Logstash. Consumes the `access-log` topic with
//! the shared consumer runtime (at-least-once, per-partition order, DLQ), decodes each Filebeat
//! event ([`crate::document`]) and writes batches with one `_bulk` request each.
//!
//! - Document ids come from topic/partition/offset and are written with `create`: a replay finds
//!   every document already there (409) and counts it as done, so counts never change.
//! - A line that can never be indexed (not JSON, no time, rejected by the mapping) is a permanent
//!   failure: the runtime moves it to `<topic>.dlq.<group>` and the partition goes on.
//! - While Elasticsearch is unreachable or overloaded (429/5xx) the batch waits and retries with
//!   backoff instead of dead-lettering lines that are fine: an outage stalls, it loses nothing.
//! - The index template (mapping + alias) is installed at start, and today's index created so the
//!   alias answers queries before the first line arrives.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use async_trait::async_trait;
use axum::Router;
use campus_common::config::KafkaArgs;
use campus_common::kafka::consumer::ConsumerMetrics;
use campus_common::kafka::{ConsumerOptions, ConsumerRuntime, HandleError, Handler, Record};
use campus_common::logschema;
use campus_common::ops::{self, Readiness};
use campus_common::retry::Backoff;
use campus_contract::access_log;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;

use crate::document::{self, Decoded, Document};
use crate::es::Es;

/// What the indexer reads and where it writes.
#[derive(Debug, Clone)]
pub struct IndexSettings {
    /// Full topic name (with the platform prefix).
    pub topic: String,
    /// Full consumer group (with the platform prefix).
    pub group: String,
    /// Index prefix: daily indices `<prefix>-YYYY.MM.dd` behind the alias `<prefix>`.
    pub index_prefix: String,
    /// Records per bulk request (per partition).
    pub batch_size: usize,
}

impl IndexSettings {
    /// The names of the worker `contract` for a platform: its topic (`access-log`) and group
    /// (`log-index`), both prefixed.
    pub fn standard(
        kafka: &KafkaArgs,
        contract: &campus_contract::Worker,
        index_prefix: &str,
        batch_size: usize,
    ) -> Self {
        let [topic] = contract.consumes else {
            panic!(
                "the indexer consumes one topic, not {:?}",
                contract.consumes
            )
        };
        Self {
            topic: kafka.name(topic),
            group: kafka.name(contract.group),
            index_prefix: index_prefix.to_owned(),
            batch_size,
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

/// Indexer metrics: documents by outcome and bulk latency.
#[derive(Clone)]
pub struct IndexerMetrics {
    documents: Family<OutcomeLabels, Counter>,
    bulk_duration: Histogram,
}

impl IndexerMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self {
            documents: Family::default(),
            bulk_duration: Histogram::new(exponential_buckets(0.001, 2.0, 16)),
        };
        registry.register(
            "log_index_documents",
            "Access-log records by outcome: indexed, duplicate (already indexed), skipped (not an access line), rejected (dead-lettered)",
            m.documents.clone(),
        );
        registry.register(
            "log_index_bulk_duration_seconds",
            "Time of one bulk request",
            m.bulk_duration.clone(),
        );
        m
    }

    fn count(&self, outcome: &'static str, n: usize) {
        self.documents
            .get_or_create(&OutcomeLabels { outcome })
            .inc_by(n as u64);
    }
}

/// The [`Handler`] that turns access-log records into bulk requests.
pub struct IndexHandler {
    es: Es,
    prefix: String,
    batch_size: usize,
    metrics: IndexerMetrics,
    shutdown: CancellationToken,
}

impl IndexHandler {
    pub fn new(
        es: Es,
        settings: &IndexSettings,
        metrics: IndexerMetrics,
        shutdown: CancellationToken,
    ) -> Self {
        Self {
            es,
            prefix: settings.index_prefix.clone(),
            batch_size: settings.batch_size.max(1),
            metrics,
            shutdown,
        }
    }

    /// Sends `pending` until every document is written or rejected for good; waits out outages.
    async fn write(
        &self,
        mut pending: Vec<(usize, Document)>,
        results: &mut [Result<(), HandleError>],
    ) {
        let mut attempt = 0u32;
        let mut body = Vec::new();
        while !pending.is_empty() {
            body.clear();
            document::write_bulk(&mut body, pending.iter().map(|(_, d)| d));
            let started = Instant::now();
            let answer = self.es.bulk(std::mem::take(&mut body)).await;
            self.metrics
                .bulk_duration
                .observe(started.elapsed().as_secs_f64());
            let failure = match answer {
                Ok(items) if items.len() == pending.len() => {
                    let mut retry = Vec::new();
                    let (mut created, mut existing) = (0, 0);
                    for ((i, doc), item) in pending.into_iter().zip(items) {
                        match item.status {
                            200..=299 => created += 1,
                            // `create` of an id that is there: a replay, already indexed.
                            409 => existing += 1,
                            429 | 500.. => retry.push((i, doc)),
                            status => {
                                let reason = item.error.unwrap_or_default();
                                tracing::warn!(
                                    request_id = doc.request_id.as_deref().unwrap_or(""),
                                    document = %doc.id, index = %doc.index, status, error = %reason,
                                    "Elasticsearch rejected the document; dead-lettering"
                                );
                                self.metrics.count("rejected", 1);
                                results[i] = Err(HandleError::permanent(anyhow::anyhow!(
                                    "Elasticsearch rejected the document ({status}): {reason}"
                                )));
                            }
                        }
                    }
                    self.metrics.count("indexed", created);
                    self.metrics.count("duplicate", existing);
                    pending = retry;
                    if pending.is_empty() {
                        return;
                    }
                    format!("{} documents answered 429/5xx", pending.len())
                }
                Ok(items) => format!(
                    "bulk answered {} items for {} actions",
                    items.len(),
                    pending.len()
                ),
                Err(e) if e.is_transient() => format!("{e}"),
                Err(e) => {
                    // The request as a whole was refused (e.g. too large): let the runtime retry
                    // the records one by one, which dead-letters the culprit.
                    for (i, _) in &pending {
                        results[*i] = Err(HandleError::transient(anyhow::anyhow!("{e}")));
                    }
                    return;
                }
            };
            attempt += 1;
            let delay = BACKOFF.delay(attempt);
            tracing::warn!(
                error = %failure, documents = pending.len(), attempt, retry_in_ms = delay.as_millis() as u64,
                "bulk write failed; retrying"
            );
            tokio::select! {
                _ = self.shutdown.cancelled() => {
                    for (i, _) in &pending {
                        results[*i] = Err(HandleError::transient(anyhow::anyhow!("shutting down: {failure}")));
                    }
                    return;
                }
                _ = tokio::time::sleep(delay) => {}
            }
        }
    }
}

/// The pause between bulk attempts while Elasticsearch is out: 100 ms doubling up to 10 s.
pub const BACKOFF: Backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(10));

#[async_trait]
impl Handler for IndexHandler {
    async fn handle(&self, record: &Record) -> Result<(), HandleError> {
        self.handle_batch(std::slice::from_ref(record))
            .await
            .pop()
            .unwrap_or(Ok(()))
    }

    fn batch_size(&self) -> usize {
        self.batch_size
    }

    async fn handle_batch(&self, records: &[Record]) -> Vec<Result<(), HandleError>> {
        let mut results: Vec<Result<(), HandleError>> = records.iter().map(|_| Ok(())).collect();
        let mut pending = Vec::with_capacity(records.len());
        let mut skipped = 0;
        for (i, record) in records.iter().enumerate() {
            match document::decode(record, &self.prefix) {
                Ok(Decoded::Index(doc)) => pending.push((i, doc)),
                Ok(Decoded::Skip) => skipped += 1,
                Err(e) => {
                    let request_id = record
                        .header(campus_common::http::REQUEST_ID.as_str())
                        .and_then(|v| std::str::from_utf8(v).ok())
                        .unwrap_or("");
                    tracing::warn!(
                        request_id, topic = %record.topic, partition = record.partition,
                        offset = record.offset, error = %e, "not an access-log line; dead-lettering"
                    );
                    self.metrics.count("rejected", 1);
                    results[i] = Err(HandleError::permanent(e));
                }
            }
        }
        self.metrics.count("skipped", skipped);
        if !pending.is_empty() {
            self.write(pending, &mut results).await;
        }
        results
    }
}

/// Installs the index template `<prefix>` (mapping, alias) and creates today's index; idempotent.
/// The indexer runs it at start, and so does the log API (for the Logstash path, which does not
/// manage templates).
pub async fn prepare(es: &Es, prefix: &str) -> anyhow::Result<()> {
    let template = access_log::template_name(prefix);
    es.put_index_template(template, &logschema::index_template(prefix))
        .await
        .with_context(|| format!("failed to install the index template {template}"))?;
    let today = logschema::index_for(prefix, chrono::Utc::now());
    es.ensure_index(&today)
        .await
        .with_context(|| format!("failed to create the index {today}"))?;
    Ok(())
}

/// librdkafka's prefetch defaults (64 MB) would hold a whole backlog in memory, and fetch one
/// partition in large chunks while the others wait. Smaller, interleaved fetches keep every
/// partition's bulk pipeline fed and memory bounded (the runtime also asks for only two batches per
/// partition). Consumer-only settings; `KAFKA_PROPERTIES` still wins.
fn prefetch_limits() -> Vec<(String, String)> {
    [
        ("queued.max.messages.kbytes", "8192"),
        ("max.partition.fetch.bytes", "262144"),
        ("fetch.max.bytes", "2097152"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// A prepared indexer: template installed, consumer created, metrics registered.
pub struct Worker {
    runtime: ConsumerRuntime,
    handler: Arc<IndexHandler>,
    registry: Arc<Registry>,
    readiness: Readiness,
    shutdown: CancellationToken,
}

impl Worker {
    /// Installs the template and creates the consumer; fails with a clear message when
    /// Elasticsearch or the Kafka client configuration is not usable.
    pub async fn new(
        kafka: &KafkaArgs,
        es: Es,
        settings: IndexSettings,
        shutdown: CancellationToken,
    ) -> anyhow::Result<Self> {
        prepare(&es, &settings.index_prefix).await?;
        let mut registry = campus_common::metrics::registry("campus-log");
        let consumer_metrics = ConsumerMetrics::register(&mut registry);
        let metrics = IndexerMetrics::register(&mut registry);
        let batch = settings.batch_size.max(1);
        let mut opts = ConsumerOptions::new(settings.group.clone(), vec![settings.topic.clone()]);
        // Keep a full batch fetched behind the one being written, so bulks follow each other.
        opts.partition_queue = batch * 2;
        opts.consumer_properties = prefetch_limits();
        let runtime = ConsumerRuntime::new(kafka, opts, consumer_metrics)
            .context("failed to create the Kafka consumer")?;
        let es_check = es.clone();
        let readiness =
            Readiness::new()
                .check("kafka", runtime.ping_fn())
                .check("elasticsearch", move || {
                    let es = es_check.clone();
                    async move { es.ping().await.map_err(|e| e.to_string()) }
                });
        let handler = Arc::new(IndexHandler::new(es, &settings, metrics, shutdown.clone()));
        tracing::info!(
            topic = %settings.topic, group = %settings.group, index_prefix = %settings.index_prefix,
            batch_size = settings.batch_size, "access-log indexer ready"
        );
        Ok(Self {
            runtime,
            handler,
            registry: Arc::new(registry),
            readiness,
            shutdown,
        })
    }

    /// `/healthz`, `/readyz` (Kafka, Elasticsearch) and `/metrics`.
    pub fn ops_router(&self) -> Router {
        ops::router(self.registry.clone(), self.readiness.clone())
    }

    /// Consumes until the shutdown token fires, then commits what was written.
    pub async fn run(self) -> anyhow::Result<()> {
        self.runtime
            .run(self.handler, self.shutdown)
            .await
            .context("the access-log consumer failed")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_bounded() {
        assert_eq!(BACKOFF.delay(1), Duration::from_millis(100));
        assert_eq!(BACKOFF.delay(3), Duration::from_millis(400));
        assert_eq!(BACKOFF.delay(40), Duration::from_secs(10));
    }
}
