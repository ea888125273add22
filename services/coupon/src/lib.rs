//! Campus coupons: first-come-first-served issuing that never over-issues, at Redis speed.
//!
//! - [`api`]: `POST /coupons` decides in Redis ([`store`], one Lua script), writes the request to
//!   Kafka and answers only after the broker acknowledged it; a failed write gives the slot back.
//! - [`worker`]: `worker issue` claims the requests in Redis and stores the coupons in MySQL
//!   ([`db`]) with a unique `(user_id, coupon_event_id)` key.
//! - [`drift`]: the drift report between Redis and MySQL (`drift` command, `/admin/reconcile`),
//!   and the sweep of stale pending marks.
//! - [`burst`]: `burst`, a first-come-first-served burst against a running API, and its report.
//! - [`cli`]: the sub-commands, wired from [`config`].

pub mod api;
pub mod burst;
pub mod cli;
pub mod config;
pub mod db;
pub mod drift;
pub mod inflight;
pub mod limits;
pub mod metrics;
pub mod model;
pub mod store;
pub mod worker;

pub use api::{AppState, admin_app, app};
