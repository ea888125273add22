//! Campus log pipeline (chapter 3): the native access-log indexer (`campus-log worker index`) and
//! the log query API (`campus-log api`). The log schema, the Filebeat configuration and the Logstash
//! pipeline live in [`campus_common::logschema`]; this crate consumes and queries what they define.
//!
//! - [`cli`]: the command line, and running what it asks for.
//! - [`config`]: its log-specific settings and their environment variables.
//! - [`es`]: the Elasticsearch calls both sides make, on the platform's one client
//!   ([`campus_common::search`]).
//! - [`document`]: Filebeat event → index document.
//! - [`indexer`]: the consumer handler writing bulk requests.
//! - [`api`]: the HTTP API with its OpenAPI document (its queries in [`api::query`]).
//! - [`kibana`]: the Kibana saved objects (data view, visualizations, dashboard).

pub mod api;
pub mod cli;
pub mod config;
pub mod document;
pub mod es;
pub mod indexer;
pub mod kibana;

/// The service name in logs and access lines.
pub const SERVICE: &str = "campus-log";
