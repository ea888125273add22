//! Running a consumer group: the consumer runtime, its ops server and readiness checks, and a
//! helper that rides out an outage of a projection's store instead of dead-lettering records.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use campus_common::config::KafkaArgs;
use campus_common::kafka::consumer::ConsumerMetrics;
use campus_common::kafka::{ConsumerOptions, ConsumerRuntime, Handler};
use campus_common::ops::{self, Readiness};
use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;

use crate::config::ConsumerArgs;

/// One consumer group of the content platform.
pub struct Group<'a> {
    pub kafka: &'a KafkaArgs,
    pub consumer: &'a ConsumerArgs,
    /// The worker's contract entry: its logical group and topics (prefixed here).
    pub contract: &'static campus_contract::Worker,
}

impl Group<'_> {
    /// The consumer's options: the contract's group and topics with the platform prefix.
    pub fn options(&self) -> ConsumerOptions {
        let topics = self
            .contract
            .consumes
            .iter()
            .map(|t| self.kafka.name(t))
            .collect();
        self.consumer
            .options(self.kafka.name(self.contract.group), topics)
    }

    /// Consumes until `shutdown`; serves `/healthz`, `/readyz`, `/metrics` on `ops_addr` if given.
    pub async fn run<H: Handler>(
        self,
        handler: Arc<H>,
        mut registry: Registry,
        readiness: Readiness,
        ops_addr: Option<SocketAddr>,
        shutdown: CancellationToken,
    ) -> anyhow::Result<()> {
        let metrics = ConsumerMetrics::register(&mut registry);
        let opts = self.options();
        let runtime = ConsumerRuntime::new(self.kafka, opts, metrics)?;
        let readiness = readiness.check("kafka", runtime.ping_fn());
        let ops_task = ops_addr.map(|addr| {
            let router = ops::router(Arc::new(registry), readiness);
            let token = shutdown.clone();
            tokio::spawn(async move { campus_common::http::serve(addr, router, token).await })
        });
        let result = runtime.run(handler, shutdown.clone()).await;
        shutdown.cancel();
        if let Some(t) = ops_task {
            match t.await {
                Ok(Err(e)) => return Err(e),
                Err(e) => return Err(anyhow::anyhow!("ops server failed: {e}")),
                Ok(Ok(())) => {}
            }
        }
        Ok(result?)
    }
}

/// Retries `op` while its error is an outage of a dependency (`is_outage`), with backoff up to 5 s,
/// until it succeeds or `shutdown` fires (then the last error is returned and the consumer runtime
/// leaves the record for the next owner). Other errors are returned at once.
pub async fn ride_out<T, E, F, Fut>(
    shutdown: &CancellationToken,
    what: &str,
    is_outage: impl Fn(&E) -> bool,
    mut op: F,
) -> Result<T, E>
where
    E: std::fmt::Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut delay = Duration::from_millis(100);
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
                    _ = tokio::time::sleep(delay) => {}
                }
                delay = (delay * 2).min(Duration::from_secs(5));
            }
            Err(e) => return Err(e),
        }
    }
}
