//! Campus log pipeline (chapter 3): the native access-log indexer (`campus-log worker index`) and
//! the log query API (`campus-log api`). The log schema, the Filebeat configuration and the Logstash
//! pipeline live in [`campus_common::logschema`]; this crate consumes and queries what they define.
//!
//! - [`cli`]: the command line and its environment variables.
//! - [`es`]: the small Elasticsearch client both sides use.
//! - [`document`]: Filebeat event → index document.
//! - [`indexer`]: the consumer handler writing bulk requests.
//! - [`query`]: search and stats requests → Elasticsearch queries and back.
//! - [`api`]: the HTTP API with its OpenAPI document.
//! - [`kibana`]: the Kibana saved objects (data view, visualizations, dashboard).

pub mod api;
pub mod cli;
pub mod document;
pub mod es;
pub mod indexer;
pub mod kibana;
pub mod query;

use anyhow::Context as _;
use campus_common::{http, shutdown, telemetry};

use crate::cli::{Cli, Command, EsArgs, WorkerCommand};
use crate::es::Es;

/// The service name in logs and access lines.
pub const SERVICE: &str = "campus-log";

/// Runs the sub-command until SIGTERM/SIGINT.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    telemetry::init(SERVICE);
    let shutdown = shutdown::on_signal();
    match cli.command {
        Command::Api(args) => {
            let es = client(&args.es)?;
            if let Err(e) = es.ping().await {
                tracing::warn!(error = %e, "Elasticsearch does not answer yet; /readyz reports it");
            }
            let state = api::AppState::new(es, args.es.index_prefix.clone());
            http::serve(args.http.http_addr, api::app(state), shutdown).await
        }
        Command::Worker {
            worker: WorkerCommand::Index(args),
        } => {
            let es = client(&args.es)?;
            let settings = indexer::IndexSettings::standard(
                &args.kafka,
                &args.es.index_prefix,
                args.batch_size as usize,
            );
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
    }
}

fn client(args: &EsArgs) -> anyhow::Result<Es> {
    Es::new(&args.url, args.timeout).context("failed to create the Elasticsearch client")
}
