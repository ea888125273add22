//! A Kafka producer that answers only when the broker has acknowledged the record: idempotent,
//! `acks=all`, so a success means the record is durable and per-partition order is kept through
//! retries.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rdkafka::ClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer as _, ProducerContext};
use tokio::sync::oneshot;

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

/// Where the broker stored an acknowledged record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivery {
    pub partition: i32,
    pub offset: i64,
}

type Ack = oneshot::Sender<Result<Delivery, KafkaError>>;

/// Completes each record's future from librdkafka's delivery report.
struct AckContext;

impl ClientContext for AckContext {}

impl ProducerContext for AckContext {
    type DeliveryOpaque = Box<Ack>;

    fn delivery(&self, result: &DeliveryResult<'_>, ack: Box<Ack>) {
        let outcome = match result {
            Ok(m) => Ok(Delivery {
                partition: m.partition(),
                offset: m.offset(),
            }),
            Err((e, _)) => Err(e.clone()),
        };
        // The sender may have given up waiting (its future dropped): nothing to tell.
        let _ = ack.send(outcome);
    }
}

/// How long one wait for delivery reports lasts on the polling thread. Long on purpose: a report
/// ends the wait at once, and rdkafka 0.39 rounds the rest of a wait down to whole milliseconds,
/// so each wait ends in a busy poll of up to 1 ms — with rdkafka's own polling thread (100 ms
/// waits: FutureProducer/ThreadedProducer) that kept 0.7 % of a core busy per idle producer.
const POLL_WAIT: Duration = Duration::from_secs(1);

/// The producer and its polling thread, which stops within [`POLL_WAIT`] of the last handle's drop.
struct Shared {
    producer: Arc<BaseProducer<AckContext>>,
    stop: Arc<AtomicBool>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Cheap to clone; share one per process.
#[derive(Clone)]
pub struct Producer {
    shared: Arc<Shared>,
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
        let producer: Arc<BaseProducer<AckContext>> = Arc::new(
            cfg.create_with_context(AckContext)
                .map_err(ProduceError::Create)?,
        );
        let stop = Arc::new(AtomicBool::new(false));
        {
            let (producer, stop) = (producer.clone(), stop.clone());
            std::thread::Builder::new()
                .name("kafka-acks".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        producer.poll(POLL_WAIT);
                    }
                })
                .map_err(|e| ProduceError::Create(KafkaError::ClientCreation(e.to_string())))?;
        }
        Ok(Self {
            shared: Arc::new(Shared { producer, stop }),
            timeout: args.produce_timeout,
        })
    }

    /// Sends one record and waits for the broker's acknowledgement. A full local queue is waited
    /// out (100 ms steps) for up to the produce timeout, as rdkafka's FutureProducer does.
    pub async fn send(
        &self,
        topic: &str,
        key: &[u8],
        payload: &[u8],
        headers: &[(&str, &[u8])],
    ) -> Result<Delivery, ProduceError> {
        let failed = |source| ProduceError::Delivery {
            topic: topic.to_owned(),
            source,
        };
        let mut hs = OwnedHeaders::new_with_capacity(headers.len());
        for (k, v) in headers {
            hs = hs.insert(Header {
                key: k,
                value: Some(*v),
            });
        }
        let (tx, rx) = oneshot::channel();
        let mut record = BaseRecord::with_opaque_to(topic, Box::new(tx))
            .key(key)
            .payload(payload)
            .headers(hs);
        let started = Instant::now();
        loop {
            match self.shared.producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back))
                    if started.elapsed() < self.timeout =>
                {
                    record = back;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err((e, _)) => return Err(failed(e)),
            }
        }
        match rx.await {
            Ok(outcome) => outcome.map_err(failed),
            // The report never came: the producer was destroyed with the record in flight.
            Err(_) => Err(failed(KafkaError::Canceled)),
        }
    }

    /// Flushes everything queued (used on shutdown).
    pub fn flush(&self, timeout: Duration) {
        if let Err(e) = self.shared.producer.flush(timeout) {
            tracing::warn!(error = %e, "producer flush did not complete");
        }
    }

    /// A readiness check: the cluster answers a metadata request.
    pub async fn ping(&self) -> Result<(), String> {
        let client = self.shared.producer.clone();
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
