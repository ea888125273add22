//! The command line: `campus-content api` and `campus-content worker inspect|cache|inbox|index`.

use std::sync::Arc;
use std::time::Duration;

use campus_common::config::{ExposeSecret, KafkaArgs, MysqlArgs, OpsArgs};
use campus_common::kafka::Producer;
use campus_common::ops::Readiness;
use clap::{Parser, Subcommand};
use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;

use crate::api::{Api, ApiArgs};
use crate::cache::{CacheHandler, PostCache};
use crate::config::{ConsumerArgs, EsArgs, MongoArgs, OpenAiArgs, RedisArgs, names};
use crate::inbox::{InboxHandler, InboxStore};
use crate::index::{IndexHandler, SearchIndex};
use crate::inspect::{InspectHandler, InspectMetrics, Inspector};
use crate::worker::Group;

/// The Campus content platform: posts API and its workers.
#[derive(Debug, Parser)]
#[command(name = "campus-content", version)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
#[allow(clippy::large_enum_variant, reason = "parsed once per process")]
pub enum Command {
    /// The HTTP API (also relays the outbox to Kafka).
    Api(ApiArgs),
    /// A consumer group.
    #[command(subcommand)]
    Worker(WorkerCommand),
}

#[derive(Debug, Subcommand)]
pub enum WorkerCommand {
    /// `inspection`: post.original → OpenAI → post.inspected.
    Inspect {
        #[command(flatten)]
        kafka: KafkaArgs,
        #[command(flatten)]
        openai: OpenAiArgs,
        #[command(flatten)]
        consumer: ConsumerArgs,
        #[command(flatten)]
        ops: OpsArgs,
    },
    /// `cache`: post.original → Redis.
    Cache {
        #[command(flatten)]
        kafka: KafkaArgs,
        #[command(flatten)]
        redis: RedisArgs,
        #[command(flatten)]
        consumer: ConsumerArgs,
        #[command(flatten)]
        ops: OpsArgs,
    },
    /// `inbox`: post.inspected → MongoDB (followers from MySQL).
    Inbox {
        #[command(flatten)]
        kafka: KafkaArgs,
        #[command(flatten)]
        mongo: MongoArgs,
        #[command(flatten)]
        mysql: MysqlArgs,
        #[command(flatten)]
        consumer: ConsumerArgs,
        #[command(flatten)]
        ops: OpsArgs,
    },
    /// `index`: post.inspected → Elasticsearch (creates the index and alias at start).
    Index {
        #[command(flatten)]
        kafka: KafkaArgs,
        #[command(flatten)]
        es: EsArgs,
        #[command(flatten)]
        consumer: ConsumerArgs,
        #[command(flatten)]
        ops: OpsArgs,
    },
}

impl Cli {
    /// Runs the chosen process until SIGTERM/SIGINT.
    pub async fn run(self) -> anyhow::Result<()> {
        match self.command {
            Command::Api(args) => {
                campus_common::telemetry::init("campus-content-api");
                let shutdown = campus_common::shutdown::on_signal();
                let api = Api::connect(&args).await?;
                let listener = tokio::net::TcpListener::bind(args.http.http_addr)
                    .await
                    .map_err(|e| {
                        anyhow::anyhow!("failed to listen on {}: {e}", args.http.http_addr)
                    })?;
                api.serve(listener, shutdown).await
            }
            Command::Worker(w) => {
                let shutdown = campus_common::shutdown::on_signal();
                w.run(shutdown).await
            }
        }
    }
}

impl WorkerCommand {
    /// Runs the worker until `shutdown`, with its ops server.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let mut registry = Registry::default();
        match self {
            WorkerCommand::Inspect {
                kafka,
                openai,
                consumer,
                ops,
            } => {
                campus_common::telemetry::init("campus-content-inspect");
                let handler = inspect_handler(&kafka, &openai, &mut registry)?;
                let readiness = Readiness::new();
                group(
                    &kafka,
                    &consumer,
                    names::GROUP_INSPECTION,
                    names::POST_ORIGINAL,
                )
                .run(handler, registry, readiness, Some(ops.ops_addr), shutdown)
                .await
            }
            WorkerCommand::Cache {
                kafka,
                redis,
                consumer,
                ops,
            } => {
                campus_common::telemetry::init("campus-content-cache");
                let cache = PostCache::connect(
                    redis.redis_url.expose_secret(),
                    &redis.key_prefix,
                    Duration::from_secs(redis.ttl_seconds),
                )
                .await?;
                let c = cache.clone();
                let readiness = Readiness::new().check("redis", move || {
                    let c = c.clone();
                    async move { c.ping().await }
                });
                group(&kafka, &consumer, names::GROUP_CACHE, names::POST_ORIGINAL)
                    .run(
                        CacheHandler::new(cache, shutdown.clone()),
                        registry,
                        readiness,
                        Some(ops.ops_addr),
                        shutdown,
                    )
                    .await
            }
            WorkerCommand::Inbox {
                kafka,
                mongo,
                mysql,
                consumer,
                ops,
            } => {
                campus_common::telemetry::init("campus-content-inbox");
                let pool = campus_common::mysql::connect(&mysql).await?;
                let store =
                    InboxStore::connect(mongo.mongo_url.expose_secret(), &mongo.database).await?;
                store.ensure_indexes().await?;
                let (s, p) = (store.clone(), pool.clone());
                let readiness = Readiness::new()
                    .check("mongodb", move || {
                        let s = s.clone();
                        async move { s.ping().await }
                    })
                    .check("mysql", move || {
                        let p = p.clone();
                        async move { campus_common::mysql::ping(&p).await }
                    });
                group(&kafka, &consumer, names::GROUP_INBOX, names::POST_INSPECTED)
                    .run(
                        InboxHandler::new(store, pool, shutdown.clone()),
                        registry,
                        readiness,
                        Some(ops.ops_addr),
                        shutdown,
                    )
                    .await
            }
            WorkerCommand::Index {
                kafka,
                es,
                consumer,
                ops,
            } => {
                campus_common::telemetry::init("campus-content-index");
                let index = SearchIndex::new(&es)?;
                index.ensure().await?;
                let i = index.clone();
                let readiness = Readiness::new().check("elasticsearch", move || {
                    let i = i.clone();
                    async move { i.ping().await }
                });
                group(&kafka, &consumer, names::GROUP_INDEX, names::POST_INSPECTED)
                    .run(
                        IndexHandler::new(index, shutdown.clone()),
                        registry,
                        readiness,
                        Some(ops.ops_addr),
                        shutdown,
                    )
                    .await
            }
        }
    }
}

fn group<'a>(
    kafka: &'a KafkaArgs,
    consumer: &'a ConsumerArgs,
    group: &'static str,
    topic: &'static str,
) -> Group<'a> {
    Group {
        kafka,
        consumer,
        group,
        topic,
    }
}

/// The inspector's handler (also used by tests and benchmarks).
pub fn inspect_handler(
    kafka: &KafkaArgs,
    openai: &OpenAiArgs,
    registry: &mut Registry,
) -> anyhow::Result<Arc<InspectHandler>> {
    let metrics = InspectMetrics::register(registry);
    let producer = Producer::new(kafka)?;
    Ok(InspectHandler::new(
        Inspector::new(openai),
        producer,
        kafka.name(names::POST_INSPECTED),
        metrics,
    ))
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
