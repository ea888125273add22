//! Kafka: the acknowledged producer, the consumer runtime and topic administration.

pub mod admin;
pub mod consumer;
pub mod dlq;
pub mod producer;

pub use consumer::{ConsumerOptions, ConsumerRuntime, HandleError, Handler, Record};
pub use producer::{Delivery, ProduceError, Producer};

/// The dead-letter topic of `topic` for consumer group `group` (named by the contract).
pub use campus_contract::dlq_topic;

/// Header names on dead-letter records.
pub mod dlq_headers {
    /// The error of the last attempt.
    pub const ERROR: &str = "dlq-error";
    /// `permanent` (the handler rejected the record) or `exhausted` (transient failures, retries used up).
    pub const REASON: &str = "dlq-reason";
    pub const ORIGINAL_TOPIC: &str = "dlq-original-topic";
    pub const ORIGINAL_PARTITION: &str = "dlq-original-partition";
    pub const ORIGINAL_OFFSET: &str = "dlq-original-offset";
    pub const ATTEMPTS: &str = "dlq-attempts";
    pub const GROUP: &str = "dlq-group";
    /// RFC 3339 time the record was dead-lettered.
    pub const FAILED_AT: &str = "dlq-failed-at";
}
