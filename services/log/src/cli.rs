//! The command line: `campus-log api` and `campus-log worker index`. Every flag has an environment
//! variable (see the README for the full list).

use std::time::Duration;

use campus_common::config::{
    HttpArgs, KafkaArgs, OpsArgs, SecretString, parse_millis, parse_secret,
};
use clap::{Args, Parser, Subcommand};

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
}

#[derive(Debug, Subcommand)]
pub enum WorkerCommand {
    /// Index the `access-log` topic into daily Elasticsearch indices (the Logstash alternative).
    Index(IndexArgs),
}

/// Where Elasticsearch is and which indices hold the access logs.
#[derive(Debug, Clone, Args)]
pub struct EsArgs {
    /// Elasticsearch URL, `http(s)://[user:password@]host:port` (a secret: never logged).
    #[arg(long = "elasticsearch-url", env = "ELASTICSEARCH_URL", value_parser = parse_secret)]
    pub url: SecretString,
    /// Prefix of the daily indices `<prefix>-YYYY.MM.dd`, of their alias and index template.
    #[arg(
        long = "log-index-prefix",
        env = "LOG_INDEX_PREFIX",
        default_value = campus_common::logschema::INDEX_PREFIX,
        value_parser = parse_index_prefix
    )]
    pub index_prefix: String,
    /// Timeout of one Elasticsearch request, in milliseconds.
    #[arg(long = "elasticsearch-timeout-ms", env = "ELASTICSEARCH_TIMEOUT_MS", default_value = "30000", value_parser = parse_millis)]
    pub timeout: Duration,
}

#[derive(Debug, Clone, Args)]
pub struct ApiArgs {
    #[command(flatten)]
    pub http: HttpArgs,
    #[command(flatten)]
    pub es: EsArgs,
}

#[derive(Debug, Clone, Args)]
pub struct IndexArgs {
    #[command(flatten)]
    pub kafka: KafkaArgs,
    #[command(flatten)]
    pub ops: OpsArgs,
    #[command(flatten)]
    pub es: EsArgs,
    /// Records per bulk request (per partition).
    #[arg(long = "index-batch-size", env = "INDEX_BATCH_SIZE", default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=20000))]
    pub batch_size: u32,
}

/// Elasticsearch index names: lowercase, no `\ / * ? " < > | , #` or spaces, not starting with
/// `-`, `_` or `+`.
pub fn parse_index_prefix(s: &str) -> Result<String, String> {
    if s.is_empty() || s.len() > 200 {
        return Err("must be 1 to 200 characters".into());
    }
    if s.starts_with(['-', '_', '+']) {
        return Err("must not start with -, _ or +".into());
    }
    if s.chars().any(|c| {
        c.is_ascii_uppercase()
            || c.is_whitespace()
            || matches!(
                c,
                '\\' | '/' | '*' | '?' | '"' | '<' | '>' | '|' | ',' | '#' | ':'
            )
    }) {
        return Err("must be lowercase without spaces or any of \\ / * ? \" < > | , # :".into());
    }
    Ok(s.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_prefixes() {
        assert!(parse_index_prefix("access-log").is_ok());
        assert!(parse_index_prefix("Access").is_err());
        assert!(parse_index_prefix("_x").is_err());
        assert!(parse_index_prefix("a*").is_err());
    }

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
        assert_eq!(args.es.index_prefix, "access-log");
        assert_eq!(args.batch_size, 1000);
        assert!(!format!("{args:?}").contains("secret"));
    }
}
