//! The shared runtime every Campus service is built on.
//!
//! - [`config`]: configuration from flags and environment variables (clap), secrets that never print.
//! - [`telemetry`]: JSON-lines tracing on stdout.
//! - [`ops`]: `/healthz`, `/readyz` (real dependency checks) and Prometheus `/metrics`.
//! - [`metrics`]: the root registry of every process (`campus_` prefix, build info, process
//!   metrics).
//! - [`shutdown`]: one cancellation token fired by SIGTERM/SIGINT.
//! - `auth` (feature `http-api`): who calls an API — nobody in particular (mode `none`, the
//!   course's shape) or the user of a JWT bearer token (mode `jwt`), and the `auth::Caller`
//!   extractor.
//! - [`http`]: the JSON error shape, serving with graceful shutdown; with feature `http-api` the
//!   API middleware (extractors that use the error shape, access logging, metrics, limits).
//! - [`kafka`]: the acknowledged producer, the at-least-once consumer runtime with retries and
//!   dead-letter topics, topic administration.
//! - `mysql`, `outbox` (feature `mysql`): the MySQL pool, database outages, the transactional
//!   outbox and its relay.
//! - [`envelope`]: the event envelope every topic carries.
//! - [`error`]: an error and its causes on one line.
//! - [`logschema`]: the access-log schema, Filebeat config, Logstash pipeline and index template.
//! - [`retry`]: the one backoff, and waiting out a dependency's outage.
//! - `search` (feature `search`): the one Elasticsearch client builder (content and log).
//! - [`run`]: `main` glue that turns start-up errors into one clear line and a non-zero exit.
//!
//! The operator depends on this crate without features, so it links neither sqlx nor the API
//! middleware; the services enable what they use.

#[cfg(feature = "http-api")]
pub mod auth;
pub mod config;
pub mod envelope;
pub mod error;
pub mod http;
pub mod kafka;
pub mod logschema;
pub mod metrics;
#[cfg(feature = "mysql")]
pub mod mysql;
pub mod ops;
#[cfg(feature = "mysql")]
pub mod outbox;
pub mod retry;
pub mod run;
#[cfg(feature = "search")]
pub mod search;
pub mod shutdown;
pub mod telemetry;

pub use envelope::{Envelope, EventType};
