//! The one polling loop of the tests: wait until something holds, or fail naming what was awaited.

use std::future::Future;
use std::time::Duration;

/// How often a condition is checked.
pub const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// Polls `check` every [`POLL_INTERVAL`] until it yields `Some`, and returns that value; panics
/// after `timeout` naming `what` was awaited.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// [`eventually`] for a plain condition (counters, flags: nothing to await).
pub async fn wait_until(what: &str, timeout: Duration, mut holds: impl FnMut() -> bool) {
    eventually(what, timeout, || std::future::ready(holds().then_some(()))).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn returns_the_first_value() {
        let mut n = 0;
        let got = eventually("three tries", Duration::from_secs(5), || {
            n += 1;
            std::future::ready((n == 3).then_some(n))
        })
        .await;
        assert_eq!(got, 3);
    }

    #[tokio::test(start_paused = true)]
    #[should_panic(expected = "waiting for the impossible")]
    async fn names_what_it_waited_for() {
        wait_until("the impossible", Duration::from_secs(1), || false).await;
    }
}
