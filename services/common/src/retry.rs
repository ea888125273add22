//! Start-up steps that wait out a dependency's outage instead of ending the process.
//!
//! A worker that finds Elasticsearch or MongoDB unreachable when it starts (a node restarting, a
//! cluster still coming up) keeps trying with capped exponential backoff until the step succeeds
//! or shutdown is asked for; an error the dependency will keep answering (a bad mapping, a refused
//! credential) ends the start at once with that error.

use std::future::Future;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// Backoff between attempts: starts here, doubles, and stops growing at [`MAX_BACKOFF`].
pub const FIRST_BACKOFF: Duration = Duration::from_millis(200);
/// The longest pause between two attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(5);

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
    let mut backoff = FIRST_BACKOFF;
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
                tracing::warn!(step = what, attempt, error = %e, retry_in_ms = backoff.as_millis() as u64, "dependency unavailable at start-up; retrying");
                tokio::select! {
                    _ = shutdown.cancelled() => return Ok(None),
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
                attempt = attempt.saturating_add(1);
            }
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

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
