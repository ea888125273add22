//! Running a consumer group: the consumer runtime, its ops server and readiness checks. (Riding
//! out an outage of a projection's store is `campus_common::retry::ride_out`.)

use std::net::SocketAddr;
use std::sync::Arc;

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
