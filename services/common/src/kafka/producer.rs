//! A Kafka producer that answers only when the broker has acknowledged the record: idempotent,
//! `acks=all`, so a success means the record is durable and per-partition order is kept through
//! retries.

use std::time::Duration;

use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, future_producer::Delivery};

use crate::config::KafkaArgs;

/// A produce that did not reach the broker in time.
#[derive(Debug, thiserror::Error)]
pub enum ProduceError {
    #[error("failed to create the Kafka producer")]
    Create(#[source] KafkaError),
    #[error("failed to deliver to topic {topic}")]
    Delivery {
        topic: String,
        #[source]
        source: KafkaError,
    },
}

/// Cheap to clone; share one per process.
#[derive(Clone)]
pub struct Producer {
    inner: FutureProducer,
    timeout: Duration,
}

impl Producer {
    pub fn new(args: &KafkaArgs) -> Result<Self, ProduceError> {
        let mut cfg = args.client_config();
        cfg.set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "2")
            .set("compression.type", "lz4")
            .set(
                "message.timeout.ms",
                args.produce_timeout.as_millis().to_string(),
            );
        // Extra properties win over the defaults above.
        for (k, v) in &args.properties {
            cfg.set(k, v);
        }
        let inner: FutureProducer = cfg.create().map_err(ProduceError::Create)?;
        Ok(Self {
            inner,
            timeout: args.produce_timeout,
        })
    }

    /// Sends one record and waits for the broker's acknowledgement.
    pub async fn send(
        &self,
        topic: &str,
        key: &[u8],
        payload: &[u8],
        headers: &[(&str, &[u8])],
    ) -> Result<Delivery, ProduceError> {
        let mut hs = OwnedHeaders::new_with_capacity(headers.len());
        for (k, v) in headers {
            hs = hs.insert(Header {
                key: k,
                value: Some(*v),
            });
        }
        let record = FutureRecord::to(topic)
            .key(key)
            .payload(payload)
            .headers(hs);
        self.inner
            .send(record, self.timeout)
            .await
            .map_err(|(source, _)| ProduceError::Delivery {
                topic: topic.to_owned(),
                source,
            })
    }

    /// Flushes everything queued (used on shutdown).
    pub fn flush(&self, timeout: Duration) {
        use rdkafka::producer::Producer as _;
        if let Err(e) = self.inner.flush(timeout) {
            tracing::warn!(error = %e, "producer flush did not complete");
        }
    }

    /// The underlying rdkafka producer, for callers that pipeline many sends.
    pub fn rdkafka(&self) -> &FutureProducer {
        &self.inner
    }

    /// A readiness check: the cluster answers a metadata request.
    pub async fn ping(&self) -> Result<(), String> {
        use rdkafka::producer::Producer as _;
        let client = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            client
                .client()
                .fetch_metadata(None, Duration::from_secs(2))
                .map(|_| ())
                .map_err(|e| format!("kafka: {e}"))
        })
        .await
        .map_err(|e| e.to_string())?
    }
}
