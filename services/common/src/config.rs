//! Configuration shared by every process: flags with environment-variable fallbacks (12-factor).
//!
//! Every flag `--foo-bar` can be given as the environment variable `FOO_BAR`; Kubernetes Deployments
//! set the variables, developers use either. Secrets (URLs with passwords, API keys) are
//! [`SecretString`]s: they never appear in `Debug` output or logs.

use std::net::SocketAddr;
use std::time::Duration;

use campus_contract::{env, port};
pub use secrecy::{ExposeSecret, SecretString};

/// Parses a secret from a flag or environment variable.
pub fn parse_secret(s: &str) -> Result<SecretString, String> {
    if s.is_empty() {
        return Err("must not be empty".into());
    }
    Ok(SecretString::from(s.to_owned()))
}

/// Parses a duration given in milliseconds.
pub fn parse_millis(s: &str) -> Result<Duration, String> {
    s.parse::<u64>()
        .map(Duration::from_millis)
        .map_err(|e| format!("expected milliseconds: {e}"))
}

/// Where the Kafka brokers are and how this process names its topics.
#[derive(Debug, Clone, clap::Args)]
pub struct KafkaArgs {
    /// Kafka bootstrap servers, comma separated `host:port` pairs.
    #[arg(
        long = "kafka-brokers",
        env = env::KAFKA_BROKERS,
        value_name = "HOST:PORT,..."
    )]
    pub brokers: String,
    /// Prefix for every topic and consumer-group name (one platform per prefix); empty for none.
    #[arg(long = "kafka-prefix", env = env::KAFKA_PREFIX, default_value = "")]
    pub prefix: String,
    /// How long a produce may wait for the broker's acknowledgement, in milliseconds.
    #[arg(long = "kafka-produce-timeout-ms", env = "KAFKA_PRODUCE_TIMEOUT_MS", default_value = "10000", value_parser = parse_millis)]
    pub produce_timeout: Duration,
    /// Extra librdkafka properties, `key=value` pairs separated by commas (e.g. security settings).
    #[arg(long = "kafka-property", env = env::KAFKA_PROPERTIES, value_delimiter = ',', value_parser = parse_property)]
    pub properties: Vec<(String, String)>,
    /// How often a consumer reports the lag of its partitions (`campus_consumer_lag`, from
    /// librdkafka's statistics), in milliseconds; 0 for never.
    #[arg(long = "kafka-lag-interval-ms", env = "KAFKA_LAG_INTERVAL_MS", default_value = "10000", value_parser = parse_millis)]
    pub lag_interval: Duration,
}

fn parse_property(s: &str) -> Result<(String, String), String> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| format!("`{s}` is not key=value"))?;
    Ok((k.trim().to_owned(), v.trim().to_owned()))
}

impl KafkaArgs {
    /// Settings for code that is not started from a command line (tests, benchmarks).
    pub fn new(brokers: impl Into<String>) -> Self {
        Self {
            brokers: brokers.into(),
            prefix: String::new(),
            produce_timeout: Duration::from_secs(10),
            properties: Vec::new(),
            lag_interval: Duration::from_secs(10),
        }
    }

    /// The full name of a logical topic or group, with this platform's prefix.
    pub fn name(&self, logical: &str) -> String {
        campus_contract::prefixed(&self.prefix, logical)
    }

    /// A librdkafka configuration with the brokers and the extra properties applied.
    pub fn client_config(&self) -> rdkafka::ClientConfig {
        let mut cfg = rdkafka::ClientConfig::new();
        cfg.set("bootstrap.servers", &self.brokers);
        for (k, v) in &self.properties {
            cfg.set(k, v);
        }
        cfg
    }
}

/// Where MySQL is.
#[derive(Debug, Clone, clap::Args)]
pub struct MysqlArgs {
    /// MySQL URL, `mysql://user:password@host:port/database` (a secret: never logged).
    #[arg(long = "mysql-url", env = env::MYSQL_URL, value_parser = parse_secret)]
    pub url: SecretString,
    /// Maximum connections in the pool.
    #[arg(
        long = "mysql-max-connections",
        env = "MYSQL_MAX_CONNECTIONS",
        default_value_t = 16
    )]
    pub max_connections: u32,
    /// How long to wait for a connection (also at start-up), in milliseconds.
    #[arg(long = "mysql-connect-timeout-ms", env = "MYSQL_CONNECT_TIMEOUT_MS", default_value = "5000", value_parser = parse_millis)]
    pub connect_timeout: Duration,
}

/// Where the ops endpoints (`/healthz`, `/readyz`, `/metrics`) listen for processes without an API.
#[derive(Debug, Clone, clap::Args)]
pub struct OpsArgs {
    /// Address of the ops server of a worker (`/healthz`, `/readyz`, `/metrics`).
    #[arg(long = "ops-addr", env = env::OPS_ADDR, default_value_t = SocketAddr::from(([0, 0, 0, 0], port::OPS)))]
    pub ops_addr: SocketAddr,
}

/// Where an HTTP API listens.
#[derive(Debug, Clone, clap::Args)]
pub struct HttpArgs {
    /// Address the API listens on; it also serves `/healthz`, `/readyz` and `/metrics`.
    #[arg(long = "http-addr", env = env::HTTP_ADDR, default_value_t = SocketAddr::from(([0, 0, 0, 0], port::API)))]
    pub http_addr: SocketAddr,
    /// A request not answered in this long is answered 503 (milliseconds).
    #[arg(long = "http-request-timeout-ms", env = "HTTP_REQUEST_TIMEOUT_MS", default_value = "30000", value_parser = parse_millis)]
    pub request_timeout: Duration,
    /// Largest request body accepted (bytes); a larger one is answered 413.
    #[arg(
        long = "http-body-limit-bytes",
        env = "HTTP_BODY_LIMIT_BYTES",
        default_value_t = crate::http::Limits::DEFAULT.body_limit
    )]
    pub body_limit: usize,
    /// Requests handled at once; more wait up to a second for a turn, then are answered 503.
    #[arg(
        long = "http-max-concurrency",
        env = "HTTP_MAX_CONCURRENCY",
        default_value_t = crate::http::Limits::DEFAULT.concurrency
    )]
    pub concurrency: usize,
    /// After SIGTERM, go on serving this long (milliseconds) with `/readyz` answering 503 and each
    /// connection closed after its response, before no longer accepting: the time a Service and
    /// kube-proxy take to drop a terminating pod. 0 (the default outside Kubernetes) stops at once.
    #[arg(long = "http-shutdown-drain-ms", env = env::HTTP_SHUTDOWN_DRAIN_MS, default_value = "0", value_parser = parse_millis)]
    pub shutdown_drain: Duration,
}

impl HttpArgs {
    /// The request limits these arguments set.
    pub fn limits(&self) -> crate::http::Limits {
        crate::http::Limits {
            request_timeout: self.request_timeout,
            body_limit: self.body_limit,
            concurrency: self.concurrency.max(1),
        }
    }
}

/// Describes a URL for messages without its credentials (`mysql://u:p@h:1/db` → `h:1/db`).
pub fn redact_url(url: &str) -> String {
    let without_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
    let without_user = without_scheme
        .rsplit_once('@')
        .map_or(without_scheme, |(_, rest)| rest);
    without_user
        .split('?')
        .next()
        .unwrap_or_default()
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser, Debug)]
    struct Cli {
        #[command(flatten)]
        kafka: KafkaArgs,
        #[command(flatten)]
        mysql: MysqlArgs,
    }

    #[test]
    fn secrets_do_not_print() {
        let cli = Cli::try_parse_from([
            "x",
            "--kafka-brokers",
            "k:9092",
            "--mysql-url",
            "mysql://root:hunter2@db:3306/campus",
        ])
        .unwrap();
        let debug = format!("{cli:?}");
        assert!(!debug.contains("hunter2"), "{debug}");
        assert_eq!(
            cli.mysql.url.expose_secret(),
            "mysql://root:hunter2@db:3306/campus"
        );
    }

    #[test]
    fn names_carry_the_prefix_and_properties_parse() {
        let cli = Cli::try_parse_from([
            "x",
            "--kafka-brokers",
            "k:9092",
            "--kafka-prefix",
            "blue",
            "--kafka-property",
            "security.protocol=ssl,client.rack = a",
            "--mysql-url",
            "mysql://h/db",
        ])
        .unwrap();
        assert_eq!(cli.kafka.name("post.original"), "blue.post.original");
        assert_eq!(
            cli.kafka.properties,
            vec![
                ("security.protocol".into(), "ssl".into()),
                ("client.rack".into(), "a".into())
            ]
        );
        assert!(
            Cli::try_parse_from([
                "x",
                "--kafka-brokers",
                "k",
                "--mysql-url",
                "m",
                "--kafka-property",
                "novalue"
            ])
            .is_err()
        );
    }

    #[test]
    fn redacts_credentials() {
        assert_eq!(
            redact_url("mysql://root:pw@db:3306/campus?ssl=1"),
            "db:3306/campus"
        );
        assert_eq!(redact_url("redis://127.0.0.1:6379"), "127.0.0.1:6379");
    }
}
