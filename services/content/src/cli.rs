//! The command line: `campus-content api` and `campus-content worker inspect|cache|inbox|index`.

use std::sync::Arc;

use campus_common::config::{ExposeSecret, KafkaArgs, MysqlArgs, OpsArgs, RedisArgs};
use campus_common::kafka::Producer;
use campus_common::ops::Readiness;
use clap::{Parser, Subcommand};
use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;

use crate::api::{Api, ApiArgs};
use crate::cache::{CacheHandler, PostCache};
use crate::config::{CacheArgs, ConsumerArgs, MongoArgs, OpenAiArgs, PostsIndexArgs};
use crate::inbox::{InboxError, InboxHandler, InboxStore};
use crate::index::{IndexError, IndexHandler, SearchIndex};
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
    /// Dead letters of a consumer group: list them, or re-drive them to their topic after a fix.
    #[command(subcommand)]
    Dlq(campus_common::kafka::dlq::DlqCommand),
}

#[derive(Debug, Subcommand)]
pub enum WorkerCommand {
    /// `inspection`: post.original → OpenAI → post.inspected (a BAD verdict is also stored on the
    /// post in MySQL).
    Inspect {
        #[command(flatten)]
        kafka: KafkaArgs,
        #[command(flatten)]
        openai: OpenAiArgs,
        #[command(flatten)]
        mysql: MysqlArgs,
        #[command(flatten)]
        consumer: ConsumerArgs,
        #[command(flatten)]
        ops: OpsArgs,
    },
    /// `cache`: post.inspected → Redis (only what the inspector approved; a BAD update is a delete).
    Cache {
        #[command(flatten)]
        kafka: KafkaArgs,
        #[command(flatten)]
        redis: RedisArgs,
        #[command(flatten)]
        cache: CacheArgs,
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
        search: PostsIndexArgs,
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
            Command::Dlq(d) => d.run(campus_contract::Service::Content).await.map(drop),
        }
    }
}

impl WorkerCommand {
    /// The contract entry of this sub-command: its group, topics and stores.
    pub fn contract(&self) -> &'static campus_contract::Worker {
        use campus_contract::workers;
        match self {
            WorkerCommand::Inspect { .. } => &workers::CONTENT_INSPECTION,
            WorkerCommand::Cache { .. } => &workers::CONTENT_CACHE,
            WorkerCommand::Inbox { .. } => &workers::CONTENT_INBOX,
            WorkerCommand::Index { .. } => &workers::CONTENT_INDEX,
        }
    }

    /// The consumer group this worker runs: the contract's group and topics, prefixed.
    pub fn group(&self) -> Group<'_> {
        let (kafka, consumer) = match self {
            WorkerCommand::Inspect {
                kafka, consumer, ..
            }
            | WorkerCommand::Cache {
                kafka, consumer, ..
            }
            | WorkerCommand::Inbox {
                kafka, consumer, ..
            }
            | WorkerCommand::Index {
                kafka, consumer, ..
            } => (kafka, consumer),
        };
        Group {
            kafka,
            consumer,
            contract: self.contract(),
        }
    }

    /// Runs the worker until `shutdown`, with its ops server.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let mut registry = campus_common::metrics::registry("campus-content");
        let group = self.group();
        match &self {
            WorkerCommand::Inspect {
                kafka,
                openai,
                mysql,
                ops,
                ..
            } => {
                campus_common::telemetry::init("campus-content-inspect");
                let pool = campus_common::mysql::connect(mysql).await?;
                let handler = inspect_handler(
                    kafka,
                    openai,
                    Some(pool.clone()),
                    shutdown.clone(),
                    &mut registry,
                )?;
                let readiness = Readiness::new().check("mysql", move || {
                    let p = pool.clone();
                    async move { campus_common::mysql::ping(&p).await }
                });
                group
                    .run(handler, registry, readiness, Some(ops.ops_addr), shutdown)
                    .await
            }
            WorkerCommand::Cache {
                redis, cache, ops, ..
            } => {
                campus_common::telemetry::init("campus-content-cache");
                let cache = PostCache::connect(redis, cache.ttl()).await?;
                let c = cache.clone();
                let readiness = Readiness::new().check("redis", move || {
                    let c = c.clone();
                    async move { c.ping().await }
                });
                group
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
                mongo, mysql, ops, ..
            } => {
                campus_common::telemetry::init("campus-content-inbox");
                let pool = campus_common::mysql::connect(mysql).await?;
                let store =
                    InboxStore::connect(mongo.mongo_url.expose_secret(), &mongo.database).await?;
                // (None: shutdown came first.)
                let Some(()) = campus_common::retry::until_up(
                    "create the inbox indexes",
                    &shutdown,
                    InboxError::is_outage,
                    || store.ensure_indexes(),
                )
                .await?
                else {
                    return Ok(());
                };
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
                group
                    .run(
                        InboxHandler::new(store, pool, shutdown.clone()),
                        registry,
                        readiness,
                        Some(ops.ops_addr),
                        shutdown,
                    )
                    .await
            }
            WorkerCommand::Index { search, ops, .. } => {
                campus_common::telemetry::init("campus-content-index");
                let index = SearchIndex::new(search)?;
                // (None: shutdown came first.)
                let Some(()) = campus_common::retry::until_up(
                    "create the search index",
                    &shutdown,
                    IndexError::is_outage,
                    || index.ensure(),
                )
                .await?
                else {
                    return Ok(());
                };
                let i = index.clone();
                let readiness = Readiness::new().check("elasticsearch", move || {
                    let i = i.clone();
                    async move { i.ping().await }
                });
                group
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

/// The inspector's handler (also used by tests and benchmarks).
pub fn inspect_handler(
    kafka: &KafkaArgs,
    openai: &OpenAiArgs,
    pool: Option<sqlx::MySqlPool>,
    shutdown: CancellationToken,
    registry: &mut Registry,
) -> anyhow::Result<Arc<InspectHandler>> {
    let metrics = InspectMetrics::register(registry);
    let producer = Producer::new(kafka)?;
    Ok(InspectHandler::new(
        Inspector::new(openai),
        producer,
        kafka.name(
            campus_contract::workers::CONTENT_INSPECTION
                .produces
                .expect("the inspector writes a topic"),
        ),
        metrics,
        pool,
        shutdown,
    ))
}

#[cfg(test)]
mod tests {
    use campus_contract::{Service, Store};
    use clap::{CommandFactory, Parser};

    use super::{Cli, Command};

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    /// A value for the flag of each store (no server is contacted).
    fn store_value(store: Store) -> &'static str {
        match store {
            Store::Kafka => "127.0.0.1:9092",
            Store::Mysql => "mysql://root@127.0.0.1:3306/campus",
            Store::Redis => "redis://127.0.0.1:6379",
            Store::Mongodb => "mongodb://127.0.0.1:27017",
            Store::Elasticsearch => "http://127.0.0.1:9200",
            Store::OpenAi => "sk-test",
        }
    }

    /// The contract test: every `worker` sub-command is a contract entry of this binary and back,
    /// and each, parsed from the entry's command and store flags as the binary parses it,
    /// subscribes (through the code path `run` uses) to exactly the entry's group and topics.
    #[test]
    fn every_worker_subscribes_as_the_contract_says() {
        let cli = Cli::command();
        let worker = cli.find_subcommand("worker").expect("a worker sub-command");
        Service::Content
            .check_worker_commands(worker.get_subcommands().map(|c| c.get_name()))
            .unwrap();
        for w in Service::Content.workers() {
            let args = w.command_line("blue", store_value);
            let cli = Cli::try_parse_from(&args).unwrap_or_else(|e| panic!("{}: {e}", w.name));
            let Command::Worker(cmd) = cli.command else {
                panic!("{}: not a worker", w.name)
            };
            assert_eq!(cmd.contract(), w, "{}", w.name);
            let opts = cmd.group().options();
            assert_eq!(
                (opts.group, opts.topics),
                w.subscription("blue"),
                "{}",
                w.name
            );
        }
    }
}
