//! Waiting out a dependency's outage instead of failing: the one backoff of the services
//! ([`Backoff`]), start-up steps ([`until_up`]) and a worker's writes ([`ride_out`]).
//!
//! A worker that finds Elasticsearch or MongoDB unreachable when it starts (a node restarting, a
//! cluster still coming up) keeps trying with capped exponential backoff until the step succeeds
//! or shutdown is asked for; an error the dependency will keep answering (a bad mapping, a refused
//! credential) ends the start at once with that error.

use std::future::Future;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// Capped exponential backoff, the one the services use between attempts: the first pause, doubled
/// per attempt, never longer than the cap; optionally spread by ±`jitter` (a fraction) so that
/// callers failing together do not retry together.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    pub first: Duration,
    pub max: Duration,
    pub jitter: f64,
}

impl Backoff {
    /// `first`, doubling, capped at `max`; no jitter.
    pub const fn new(first: Duration, max: Duration) -> Self {
        Self {
            first,
            max,
            jitter: 0.0,
        }
    }

    /// The same, each pause multiplied by a random factor in `1 ± fraction`.
    pub const fn with_jitter(self, fraction: f64) -> Self {
        Self {
            jitter: fraction,
            ..self
        }
    }

    /// The pause before retry `attempt` (1 for the first retry): `first · 2^(attempt−1)`, at most
    /// `max`, then jittered.
    pub fn delay(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1));
        let d = self.first.saturating_mul(factor).min(self.max);
        if self.jitter > 0.0 {
            d.mul_f64(rand::random_range(1.0 - self.jitter..1.0 + self.jitter))
        } else {
            d
        }
    }
}

/// [`until_up`]'s backoff: 200 ms, doubling, at most 5 s.
pub const START_UP: Backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));

/// Runs `step` until it succeeds. An error for which `is_outage` is true is logged and retried;
/// any other error is returned. `Ok(None)` when `shutdown` fired first.
pub async fn until_up<T, E, F, Fut>(
    what: &str,
    shutdown: &CancellationToken,
    is_outage: impl Fn(&E) -> bool,
    mut step: F,
) -> Result<Option<T>, E>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
    E: std::fmt::Display,
{
    let mut attempt: u32 = 1;
    loop {
        let outcome = tokio::select! {
            _ = shutdown.cancelled() => return Ok(None),
            r = step() => r,
        };
        match outcome {
            Ok(v) => {
                if attempt > 1 {
                    tracing::info!(
                        step = what,
                        attempts = attempt,
                        "start-up step succeeded after an outage"
                    );
                }
                return Ok(Some(v));
            }
            Err(e) if is_outage(&e) => {
                let backoff = START_UP.delay(attempt);
                tracing::warn!(step = what, attempt, error = %e, retry_in_ms = backoff.as_millis() as u64, "dependency unavailable at start-up; retrying");
                tokio::select! {
                    _ = shutdown.cancelled() => return Ok(None),
                    _ = tokio::time::sleep(backoff) => {}
                }
                attempt = attempt.saturating_add(1);
            }
            Err(e) => return Err(e),
        }
    }
}

/// [`ride_out`]'s backoff when the caller has none of its own: 100 ms, doubling, at most 5 s.
pub const OUTAGE: Backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));

/// Retries `op` while its error is an outage of a dependency (`is_outage`), pausing per `backoff`,
/// until it succeeds or `shutdown` fires (then the last error is returned: a consumer leaves the
/// record for the next owner). Other errors are returned at once. Logs the first and every 20th
/// failed attempt, and the recovery.
pub async fn ride_out<T, E, F, Fut>(
    shutdown: &CancellationToken,
    what: &str,
    backoff: Backoff,
    is_outage: impl Fn(&E) -> bool,
    mut op: F,
) -> Result<T, E>
where
    E: std::fmt::Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut attempt = 0u32;
    loop {
        match op().await {
            Ok(v) => {
                if attempt > 0 {
                    tracing::info!(
                        dependency = what,
                        attempts = attempt + 1,
                        "dependency is back"
                    );
                }
                return Ok(v);
            }
            Err(e) if is_outage(&e) && !shutdown.is_cancelled() => {
                attempt += 1;
                if attempt == 1 || attempt.is_multiple_of(20) {
                    tracing::warn!(dependency = what, attempt, error = %e, "dependency unavailable; waiting");
                }
                tokio::select! {
                    _ = shutdown.cancelled() => return Err(e),
                    _ = tokio::time::sleep(backoff.delay(attempt)) => {}
                }
            }
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[test]
    fn backoff_doubles_up_to_its_cap_and_jitters_within_bounds() {
        let b = Backoff::new(Duration::from_millis(100), Duration::from_secs(10));
        assert_eq!(b.delay(0), Duration::from_millis(100));
        assert_eq!(b.delay(1), Duration::from_millis(100));
        assert_eq!(b.delay(3), Duration::from_millis(400));
        assert_eq!(b.delay(40), Duration::from_secs(10));
        assert_eq!(b.delay(u32::MAX), Duration::from_secs(10));
        let j = b.with_jitter(0.2);
        for attempt in [1, 4, 30] {
            let plain = b.delay(attempt);
            for _ in 0..50 {
                let d = j.delay(attempt);
                assert!(d >= plain.mul_f64(0.8) && d <= plain.mul_f64(1.2), "{d:?}");
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn ride_out_waits_out_outages_and_gives_up_on_shutdown() {
        let calls = AtomicU32::new(0);
        let token = CancellationToken::new();
        let r: Result<u32, String> = ride_out(
            &token,
            "t",
            OUTAGE,
            |e: &String| e == "down",
            || async {
                let n = calls.fetch_add(1, Ordering::SeqCst);
                if n < 3 { Err("down".to_owned()) } else { Ok(n) }
            },
        )
        .await;
        assert_eq!(r, Ok(3));
        let r: Result<(), String> = ride_out(
            &token,
            "t",
            OUTAGE,
            |_| false,
            || async { Err("bad".into()) },
        )
        .await;
        assert_eq!(r, Err("bad".to_owned()));
        let t = token.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(30)).await;
            t.cancel();
        });
        let r: Result<(), String> = ride_out(
            &token,
            "t",
            OUTAGE,
            |_| true,
            || async { Err("down".into()) },
        )
        .await;
        assert_eq!(r, Err("down".to_owned()));
    }

    #[tokio::test(start_paused = true)]
    async fn outages_are_retried_until_the_step_succeeds() {
        let calls = AtomicU32::new(0);
        let token = CancellationToken::new();
        let r: Result<Option<u32>, String> = until_up(
            "t",
            &token,
            |e: &String| e == "down",
            || async {
                let n = calls.fetch_add(1, Ordering::SeqCst);
                if n < 4 { Err("down".to_owned()) } else { Ok(n) }
            },
        )
        .await;
        assert_eq!(r, Ok(Some(4)));
        assert_eq!(calls.load(Ordering::SeqCst), 5);
    }

    #[tokio::test(start_paused = true)]
    async fn a_lasting_error_ends_the_start_at_once() {
        let calls = AtomicU32::new(0);
        let token = CancellationToken::new();
        let r: Result<Option<()>, String> = until_up(
            "t",
            &token,
            |e: &String| e == "down",
            || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err("bad mapping".to_owned())
            },
        )
        .await;
        assert_eq!(r, Err("bad mapping".to_owned()));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_stops_the_waiting() {
        let token = CancellationToken::new();
        let t = token.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(30)).await;
            t.cancel();
        });
        let r: Result<Option<()>, String> =
            until_up("t", &token, |_| true, || async { Err("down".to_owned()) }).await;
        assert_eq!(r, Ok(None));
    }
}
