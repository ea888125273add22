//! The shared runtime every Campus service is built on.
//!
//! - [`config`]: configuration from flags and environment variables (clap), secrets that never print.
//! - [`telemetry`]: JSON-lines tracing on stdout.
//! - [`ops`]: `/healthz`, `/readyz` (real dependency checks) and Prometheus `/metrics`.
//! - [`metrics`]: the root registry of every process (`campus_` prefix, build info, process
//!   metrics).
//! - [`shutdown`]: one cancellation token fired by SIGTERM/SIGINT.
//! - [`http`]: the JSON error shape, extractors that use it, access logging, serving with graceful
//!   shutdown.
//! - [`kafka`]: the acknowledged producer, the at-least-once consumer runtime with retries and
//!   dead-letter topics, topic administration.
//! - [`outbox`]: the MySQL transactional outbox and its relay.
//! - [`envelope`]: the event envelope every topic carries.
//! - [`error`]: an error and its causes on one line.
//! - [`logschema`]: the access-log schema, Filebeat config, Logstash pipeline and index template.
//! - [`retry`]: start-up steps that wait out a dependency's outage.
//! - `search` (feature `search`): the one Elasticsearch client builder (content and log).
//! - [`run`]: `main` glue that turns start-up errors into one clear line and a non-zero exit.
//! - `testing` (feature `testing`): per-test isolation on the real local servers.

pub mod config;
pub mod envelope;
pub mod error;
pub mod http;
pub mod kafka;
pub mod logschema;
pub mod metrics;
pub mod mysql;
pub mod ops;
pub mod outbox;
pub mod retry;
pub mod run;
#[cfg(feature = "search")]
pub mod search;
pub mod shutdown;
pub mod telemetry;
#[cfg(feature = "testing")]
pub mod testing;

pub use envelope::{Envelope, EventType};
