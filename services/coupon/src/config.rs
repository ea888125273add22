//! Coupon-specific configuration; the shared parts (Kafka, MySQL, Redis, HTTP, ops) come from
//! `campus_common::config`, the topic and group names from `campus_contract`. Every flag can also be set by the environment variable named here.

use std::time::Duration;

/// Coupon's Redis timeout when `REDIS_TIMEOUT_MS` is not given: connecting and each command.
pub const REDIS_TIMEOUT: Duration = Duration::from_secs(2);

/// How long an event's Redis keys outlive the event.
#[derive(Debug, Clone, clap::Args)]
pub struct RetentionArgs {
    /// Seconds an event's Redis keys are kept after the event's end (late retries still get a clear
    /// answer from Redis; the drift report can still compare). The keys expire at end + this.
    #[arg(
        long = "coupon-key-retention-secs",
        env = "COUPON_KEY_RETENTION_SECS",
        default_value_t = 86_400
    )]
    pub key_retention_secs: u64,
}

impl RetentionArgs {
    pub fn retention(&self) -> Duration {
        Duration::from_secs(self.key_retention_secs)
    }
}

/// Rate limits on `POST /coupons`, per API replica (off by default). A request over a limit is
/// answered 429 with `Retry-After` and touches nothing in Redis or Kafka.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct RateLimitArgs {
    /// Issue requests per second one user may make; 0 for no per-user limit.
    #[arg(
        long = "coupon-rate-per-user",
        env = campus_contract::env::COUPON_RATE_PER_USER,
        default_value_t = 0
    )]
    pub per_user: u32,
    /// How many of a user's requests may come at once (default: the per-second rate).
    #[arg(
        long = "coupon-rate-per-user-burst",
        env = campus_contract::env::COUPON_RATE_PER_USER_BURST,
        default_value_t = 0
    )]
    pub per_user_burst: u32,
    /// Issue requests per second over all users; 0 for no global limit.
    #[arg(
        long = "coupon-rate-global",
        env = campus_contract::env::COUPON_RATE_GLOBAL,
        default_value_t = 0
    )]
    pub global: u32,
    /// How many requests may come at once over all users (default: the per-second rate).
    #[arg(
        long = "coupon-rate-global-burst",
        env = campus_contract::env::COUPON_RATE_GLOBAL_BURST,
        default_value_t = 0
    )]
    pub global_burst: u32,
}
