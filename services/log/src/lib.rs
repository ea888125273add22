//! Campus log pipeline (chapter 3): the native access-log indexer (`campus-log worker index`) and
//! the log query API (`campus-log api`). The log schema, the Filebeat configuration and the Logstash
//! pipeline live in [`campus_common::logschema`]; this crate consumes and queries what they define.
//!
//! - [`cli`]: the command line.
//! - [`config`]: its log-specific settings and their environment variables.
//! - [`es`]: the Elasticsearch calls both sides make, on the platform's one client
//!   ([`campus_common::search`]).
//! - [`document`]: Filebeat event → index document.
//! - [`indexer`]: the consumer handler writing bulk requests.
//! - [`query`]: search and stats requests → Elasticsearch queries and back.
//! - [`api`]: the HTTP API with its OpenAPI document.
//! - [`kibana`]: the Kibana saved objects (data view, visualizations, dashboard).

pub mod api;
pub mod cli;
pub mod config;
pub mod document;
pub mod es;
pub mod indexer;
pub mod kibana;
pub mod query;

use anyhow::Context as _;
use campus_common::config::EsArgs;
use campus_common::{http, retry, shutdown, telemetry};
use campus_contract::access_log;
use tokio_util::sync::CancellationToken;

use crate::cli::{ApiArgs, Cli, Command, WorkerCommand};
use crate::es::Es;

/// The service name in logs and access lines.
pub const SERVICE: &str = "campus-log";

/// Runs the sub-command until SIGTERM/SIGINT.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    if let Command::FilebeatConfig(args) = &cli.command {
        print!("{}", args.render());
        return Ok(());
    }
    telemetry::init(SERVICE);
    let shutdown = shutdown::on_signal();
    match cli.command {
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
            let worker = indexer::Worker::new(&args.kafka, es, settings, shutdown.clone()).await?;
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
        Command::FilebeatConfig(_) => unreachable!("handled above"),
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

/// Runs [`indexer::prepare`] until it succeeds or `shutdown` fires, with the indexer's backoff.
async fn install_index_template(es: Es, prefix: String, shutdown: CancellationToken) {
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
}

fn client(args: &EsArgs) -> anyhow::Result<Es> {
    Es::new(&args.es_url, args.timeout_or(config::ES_TIMEOUT))
        .context("failed to create the Elasticsearch client")
}
