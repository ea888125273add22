//! Integration tests against the real local servers (scripts/servers.sh): API and worker run
//! in-process on real listeners; the fault tests start a private Kafka.

mod api;
mod binary;
mod burst;
mod faults;
mod schema;
mod store;
mod support;
mod worker;
