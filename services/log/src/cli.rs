//! The command line: `campus-log api`, `campus-log worker index`, `campus-log prepare` and
//! `campus-log filebeat-config`, and running them. Every flag has an environment variable (see the README for the full list).

use anyhow::Context as _;
use campus_common::config::{EsArgs, HttpArgs, KafkaArgs, OpsArgs};
use campus_common::{http, retry, shutdown, telemetry};
use campus_contract::{access_log, env};
use clap::{Args, Parser, Subcommand};

use tokio_util::sync::CancellationToken;

use crate::api;
use crate::config::{self, AccessLogArgs};
use crate::es::Es;
use crate::indexer::{self, IndexSettings};

#[derive(Debug, Parser)]
#[command(
    name = "campus-log",
    version,
    about = "Campus log pipeline: the access-log query API and the native indexer"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// The log query API: search and stats over the access-log indices.
    Api(ApiArgs),
    /// Background workers.
    Worker {
        #[command(subcommand)]
        worker: WorkerCommand,
    },
    /// Install the access-log index template and today's index behind the alias of one or more
    /// index prefixes, waiting out an Elasticsearch that does not answer yet, then exit: what the
    /// operator runs before Logstash starts (Logstash does not install them), so the log API and
    /// Kibana find the alias before the first document whichever processor writes it.
    Prepare(PrepareArgs),
    /// Print a `filebeat.yml` that ships the access lines of files (processes' stdout written to
    /// files, as in the local mode) to the `access-log` topic. In Kubernetes the operator renders
    /// the DaemonSet's from the same schema.
    FilebeatConfig(FilebeatConfigArgs),
    /// Dead letters of the `log-index` group: list them, or re-drive them to `access-log` after a
    /// fix.
    #[command(subcommand)]
    Dlq(campus_common::kafka::dlq::DlqCommand),
}

#[derive(Debug, Clone, Args)]
pub struct FilebeatConfigArgs {
    /// Kafka bootstrap servers, comma separated `host:port` pairs.
    #[arg(long = "kafka-brokers", env = env::KAFKA_BROKERS, value_name = "HOST:PORT,...")]
    pub brokers: String,
    /// Prefix of the topic: `<prefix>.access-log`; empty for none.
    #[arg(long = "kafka-prefix", env = env::KAFKA_PREFIX, default_value = "")]
    pub prefix: String,
    /// A file (or glob) to tail; repeat for several.
    #[arg(long = "path", required = true, value_name = "GLOB")]
    pub paths: Vec<String>,
    /// Ship every line, not only access lines (`"log_type":"access"`).
    #[arg(long = "all-lines")]
    pub all_lines: bool,
    /// Address of Filebeat's monitoring endpoint (`/`, `/stats`); off when not given.
    #[arg(long = "filebeat-http-addr", value_name = "IP:PORT")]
    pub http: Option<std::net::SocketAddr>,
}

impl FilebeatConfigArgs {
    /// The `filebeat.yml` these arguments ask for.
    pub fn render(&self) -> String {
        use campus_common::logschema::{FilebeatInput, FilebeatParams, filebeat_yaml};
        let host = self.http.map(|a| a.ip().to_string());
        filebeat_yaml(&FilebeatParams {
            brokers: &self.brokers,
            topic: &campus_contract::prefixed(&self.prefix, access_log::TOPIC),
            input: FilebeatInput::Files { paths: &self.paths },
            access_only: !self.all_lines,
            http: host.as_deref().zip(self.http.map(|a| a.port())),
        })
    }
}

#[derive(Debug, Subcommand)]
pub enum WorkerCommand {
    /// Index the `access-log` topic into daily Elasticsearch indices (the Logstash alternative).
    Index(IndexArgs),
}

impl WorkerCommand {
    /// The contract entry of this sub-command: its group, topics and stores.
    pub fn contract(&self) -> &'static campus_contract::Worker {
        match self {
            WorkerCommand::Index(_) => &campus_contract::workers::LOG_INDEX,
        }
    }

    /// What the indexer reads (the contract's topic and group, prefixed) and where it writes.
    pub fn settings(&self) -> IndexSettings {
        match self {
            WorkerCommand::Index(args) => IndexSettings::standard(
                &args.kafka,
                self.contract(),
                &args.access_log.index_prefix,
                args.batch_size as usize,
            ),
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct ApiArgs {
    #[command(flatten)]
    pub http: HttpArgs,
    #[command(flatten)]
    pub es: EsArgs,
    #[command(flatten)]
    pub access_log: AccessLogArgs,
}

#[derive(Debug, Clone, Args)]
pub struct PrepareArgs {
    #[command(flatten)]
    pub es: EsArgs,
    #[command(flatten)]
    pub access_log: AccessLogArgs,
    /// Further index prefixes to prepare (repeat the flag; the operator passes every Logstash
    /// pipeline that writes access logs).
    #[arg(long = "also-index-prefix", value_name = "PREFIX", value_parser = config::parse_index_prefix)]
    pub also: Vec<String>,
}

#[derive(Debug, Clone, Args)]
pub struct IndexArgs {
    #[command(flatten)]
    pub kafka: KafkaArgs,
    #[command(flatten)]
    pub ops: OpsArgs,
    #[command(flatten)]
    pub es: EsArgs,
    #[command(flatten)]
    pub access_log: AccessLogArgs,
    /// Records per bulk request (per partition).
    #[arg(long = "index-batch-size", env = "INDEX_BATCH_SIZE", default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=20000))]
    pub batch_size: u32,
}

impl Cli {
    /// Runs the sub-command until SIGTERM/SIGINT.
    pub async fn run(self) -> anyhow::Result<()> {
        if let Command::FilebeatConfig(args) = &self.command {
            print!("{}", args.render());
            return Ok(());
        }
        if let Command::Dlq(cmd) = &self.command {
            return cmd.run(campus_contract::Service::Log).await.map(drop);
        }
        telemetry::init(crate::SERVICE);
        let shutdown = shutdown::on_signal();
        match self.command {
            Command::Api(args) => {
                let addr = args.http.http_addr;
                let listener = tokio::net::TcpListener::bind(addr)
                    .await
                    .map_err(|e| anyhow::anyhow!("failed to listen on {addr}: {e}"))?;
                run_api(args, listener, shutdown).await
            }
            Command::Worker { worker } => {
                let WorkerCommand::Index(args) = &worker;
                let es = client(&args.es)?;
                let settings = worker.settings();
                let worker =
                    indexer::Worker::new(&args.kafka, es, settings, shutdown.clone()).await?;
                let addr = args.ops.ops_addr;
                let listener = tokio::net::TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("failed to listen on {addr}"))?;
                let ops = tokio::spawn(http::serve_on(
                    listener,
                    worker.ops_router(),
                    shutdown.clone(),
                ));
                let result = worker.run().await;
                shutdown.cancel();
                match ops.await {
                    Ok(Err(e)) if result.is_ok() => return Err(e),
                    _ => {}
                }
                result
            }
            Command::Prepare(args) => {
                let es = client(&args.es)?;
                let mut prefixes = vec![args.access_log.index_prefix];
                prefixes.extend(args.also);
                prefixes.dedup();
                for prefix in prefixes {
                    if !install_index_template(es.clone(), prefix.clone(), shutdown.clone()).await {
                        anyhow::bail!(
                            "stopped before the index template of {prefix} was installed"
                        );
                    }
                }
                Ok(())
            }
            Command::FilebeatConfig(_) | Command::Dlq(_) => unreachable!("handled above"),
        }
    }
}

/// `campus-log api` on `listener` until `shutdown`. It installs the index template and alias of
/// its prefix in the background ([`indexer::prepare`], retried until Elasticsearch takes it), so
/// they exist whichever processor writes the documents: the native indexer installs them too,
/// Logstash (the default) does not.
pub async fn run_api(
    args: ApiArgs,
    listener: tokio::net::TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let es = client(&args.es)?;
    if let Err(e) = es.ping().await {
        tracing::warn!(error = %e, "Elasticsearch does not answer yet; /readyz reports it");
    }
    let prefix = &args.access_log.index_prefix;
    tokio::spawn(install_index_template(
        es.clone(),
        prefix.clone(),
        shutdown.clone(),
    ));
    let state = api::AppState::new(es, access_log::alias(prefix));
    http::serve_draining(
        listener,
        api::app(state),
        shutdown,
        args.http.shutdown_drain,
    )
    .await
}

/// Runs [`indexer::prepare`] until it succeeds or `shutdown` fires, with the indexer's backoff;
/// true once installed.
async fn install_index_template(es: Es, prefix: String, shutdown: CancellationToken) -> bool {
    let installed = retry::ride_out(
        &shutdown,
        "elasticsearch",
        indexer::BACKOFF,
        |_| true,
        || async {
            indexer::prepare(&es, &prefix)
                .await
                .map_err(|e| format!("failed to install the access-log index template: {e:#}"))
        },
    )
    .await;
    if installed.is_ok() {
        tracing::info!(index_prefix = %prefix, "access-log index template and alias installed");
    }
    installed.is_ok()
}

fn client(args: &EsArgs) -> anyhow::Result<Es> {
    Es::new(&args.es_url, args.timeout_or(config::ES_TIMEOUT))
        .context("failed to create the Elasticsearch client")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_flags_parse() {
        let cli = Cli::try_parse_from([
            "campus-log",
            "worker",
            "index",
            "--kafka-brokers",
            "k:9092",
            "--elasticsearch-url",
            "http://u:secret@es:9200",
        ])
        .unwrap();
        let Command::Worker {
            worker: WorkerCommand::Index(args),
        } = cli.command
        else {
            panic!("not the index worker")
        };
        assert_eq!(args.access_log.index_prefix, "access-log");
        assert_eq!(args.batch_size, 1000);
        assert!(!format!("{args:?}").contains("secret"));
    }

    #[test]
    fn filebeat_config_ships_the_files_to_the_prefixed_topic() {
        let parse = |extra: &[&str]| {
            let mut args = vec!["campus-log", "filebeat-config", "--kafka-brokers", "k:9092"];
            args.extend(extra);
            let Command::FilebeatConfig(a) = Cli::try_parse_from(args).unwrap().command else {
                panic!("not filebeat-config")
            };
            serde_json::from_str::<serde_json::Value>(&a.render()).unwrap()
        };
        let v = parse(&[
            "--kafka-prefix",
            "local",
            "--path",
            "/a.log",
            "--path",
            "/b/*.log",
        ]);
        assert_eq!(v["output.kafka"]["topic"], "local.access-log");
        assert_eq!(
            v["filebeat.inputs"][0]["paths"],
            serde_json::json!(["/a.log", "/b/*.log"])
        );
        assert_eq!(
            v["processors"].as_array().unwrap().len(),
            1,
            "access lines only"
        );
        assert_eq!(v["http"]["enabled"], false);
        let v = parse(&[
            "--path",
            "/a.log",
            "--all-lines",
            "--filebeat-http-addr",
            "127.0.0.1:5066",
        ]);
        assert_eq!(v["output.kafka"]["topic"], "access-log");
        assert_eq!(v["processors"], serde_json::json!([]));
        assert_eq!(
            v["http"],
            serde_json::json!({"enabled": true, "host": "127.0.0.1", "port": 5066})
        );
        assert!(
            Cli::try_parse_from(["campus-log", "filebeat-config", "--kafka-brokers", "k:9092"])
                .is_err(),
            "a path is required"
        );
    }

    /// The contract test: every `worker` sub-command is a contract entry of this binary and back,
    /// and each, parsed from the entry's command and store flags as the binary parses it,
    /// subscribes (through the code path `run` uses) to exactly the entry's group and topics.
    #[test]
    fn every_worker_subscribes_as_the_contract_says() {
        use campus_contract::{Service, Store};
        use clap::CommandFactory;

        let cli = Cli::command();
        let worker = cli.find_subcommand("worker").expect("a worker sub-command");
        Service::Log
            .check_worker_commands(worker.get_subcommands().map(|c| c.get_name()))
            .unwrap();
        for w in Service::Log.workers() {
            let args = w.command_line("blue", |store| match store {
                Store::Kafka => "127.0.0.1:9092",
                Store::Elasticsearch => "http://127.0.0.1:9200",
                other => panic!("the log service does not use {other:?}"),
            });
            let cli = Cli::try_parse_from(&args).unwrap_or_else(|e| panic!("{}: {e}", w.name));
            let Command::Worker { worker } = cli.command else {
                panic!("{}: not a worker", w.name)
            };
            assert_eq!(worker.contract(), w, "{}", w.name);
            let settings = worker.settings();
            assert_eq!(
                (settings.group, vec![settings.topic]),
                w.subscription("blue"),
                "{}",
                w.name
            );
        }
    }
}
