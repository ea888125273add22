//! Per-user and global rate limits on `POST /coupons` (the `governor` crate's GCRA), per API
//! replica. Over a limit: 429 with `Retry-After` and the JSON error body, before Redis is asked.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use campus_common::http::ApiError;
use governor::clock::Clock;
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};
use serde_json::json;

use crate::config::RateLimitArgs;

/// Checks between two clean-ups of the per-user state.
const RETAIN_EVERY: u64 = 65_536;

/// The configured limits; none by default.
#[derive(Default)]
pub struct Limits {
    per_user: Option<DefaultKeyedRateLimiter<i64>>,
    global: Option<DefaultDirectRateLimiter>,
    checks: AtomicU64,
}

fn quota(rate: u32, burst: u32) -> Option<Quota> {
    let rate = NonZeroU32::new(rate)?;
    let burst = NonZeroU32::new(burst).unwrap_or(rate);
    Some(Quota::per_second(rate).allow_burst(burst))
}

/// A request over a limit: which one, and when to try again.
#[derive(Debug)]
pub struct Limited {
    pub scope: &'static str,
    pub retry_after: Duration,
}

impl Limits {
    pub fn new(args: &RateLimitArgs) -> Self {
        Self {
            per_user: quota(args.per_user, args.per_user_burst).map(RateLimiter::keyed),
            global: quota(args.global, args.global_burst).map(RateLimiter::direct),
            checks: AtomicU64::new(0),
        }
    }

    /// Takes one cell of `user`'s quota, then one of the global quota. (The limiters' own clock
    /// tells the wait: a new `DefaultClock` per call ran CPUID each time, which traps to the
    /// hypervisor in a VM — 3 % of the API's CPU in the issue benchmark.)
    pub fn check(&self, user: i64) -> Result<(), Limited> {
        if let Some(l) = &self.per_user {
            if self.checks.fetch_add(1, Ordering::Relaxed) % RETAIN_EVERY == RETAIN_EVERY - 1 {
                l.retain_recent();
                l.shrink_to_fit();
            }
            if let Err(not_until) = l.check_key(&user) {
                return Err(Limited {
                    scope: "user",
                    retry_after: not_until.wait_time_from(l.clock().now()),
                });
            }
        }
        if let Some(l) = &self.global
            && let Err(not_until) = l.check()
        {
            return Err(Limited {
                scope: "global",
                retry_after: not_until.wait_time_from(l.clock().now()),
            });
        }
        Ok(())
    }
}

impl IntoResponse for Limited {
    fn into_response(self) -> Response {
        // Whole seconds, rounded up, at least 1.
        let secs = self.retry_after.as_millis().div_ceil(1000).max(1) as u64;
        let message = match self.scope {
            "user" => "too many issue requests from this user; retry later",
            _ => "too many issue requests; retry later",
        };
        let mut res = ApiError::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", message)
            .with_details(json!({"scope": self.scope, "retryAfterSeconds": secs}))
            .into_response();
        res.headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from(secs));
        res
    }
}
