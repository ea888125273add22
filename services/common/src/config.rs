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

    /// A librdkafka configuration with the brokers and the extra properties applied: those of
    /// `--kafka-property` (`KAFKA_PROPERTIES`), then those of the process's `KAFKA_PROPERTY_<name>`
    /// variables ([`env_properties`]), which win.
    pub fn client_config(&self) -> rdkafka::ClientConfig {
        self.client_config_with(std::env::vars_os())
    }

    /// [`KafkaArgs::client_config`] with `env` for the process's environment.
    pub fn client_config_with<I>(&self, env: I) -> rdkafka::ClientConfig
    where
        I: IntoIterator<Item = (std::ffi::OsString, std::ffi::OsString)>,
    {
        let mut cfg = rdkafka::ClientConfig::new();
        cfg.set("bootstrap.servers", &self.brokers);
        for (k, v) in &self.properties {
            cfg.set(k, v);
        }
        for (k, v) in env_properties(env) {
            cfg.set(k, v);
        }
        cfg
    }
}

/// The librdkafka properties given one per variable `KAFKA_PROPERTY_<name>` (the prefix
/// [`env::KAFKA_PROPERTY_PREFIX`]): credentials such as `sasl.password`, which the operator reads
/// into the pods from a Secret (`envFrom` with that prefix), never from a ConfigMap. The name
/// after the prefix is the property's as it is (`KAFKA_PROPERTY_sasl.password`, a Secret key), or
/// in capitals with `_` for `.` for a shell (`KAFKA_PROPERTY_SASL_PASSWORD`). Sorted by name;
/// variables that are not Unicode are skipped.
pub fn env_properties<I>(env: I) -> Vec<(String, String)>
where
    I: IntoIterator<Item = (std::ffi::OsString, std::ffi::OsString)>,
{
    let mut out: Vec<(String, String)> = env
        .into_iter()
        .filter_map(|(k, v)| {
            let name = k.into_string().ok()?;
            let property = name.strip_prefix(env::KAFKA_PROPERTY_PREFIX)?;
            if property.is_empty() {
                return None;
            }
            let property = if property.chars().any(|c| c.is_ascii_lowercase()) {
                property.to_owned()
            } else {
                property.to_ascii_lowercase().replace('_', ".")
            };
            Some((property, v.into_string().ok()?))
        })
        .collect();
    out.sort();
    out
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

/// Where Elasticsearch is (content's posts index, log's access-log indices).
#[derive(Debug, Clone, clap::Args)]
pub struct EsArgs {
    /// Elasticsearch URL, `http(s)://[user:password@]host:port` (credentials are sent as basic auth;
    /// a secret: never logged).
    #[arg(long = "elasticsearch-url", env = env::ELASTICSEARCH_URL, value_parser = parse_secret)]
    pub es_url: SecretString,
    /// Timeout of one Elasticsearch request, in milliseconds [default: 5000 in content, 30000 in
    /// log].
    #[arg(long = "elasticsearch-timeout-ms", env = ELASTICSEARCH_TIMEOUT_MS, value_parser = parse_millis)]
    pub es_timeout: Option<Duration>,
    /// The former name of `--elasticsearch-timeout-ms` (content's `ES_TIMEOUT_MS`), still read so
    /// existing deployments keep their setting; the new name wins when both are given.
    #[arg(long = "es-timeout-ms", env = ES_TIMEOUT_MS_ALIAS, hide = true, value_parser = parse_millis)]
    pub es_timeout_alias: Option<Duration>,
}

/// The variable of [`EsArgs::es_timeout`].
pub const ELASTICSEARCH_TIMEOUT_MS: &str = "ELASTICSEARCH_TIMEOUT_MS";
/// Accepted instead of [`ELASTICSEARCH_TIMEOUT_MS`] (clap reads one variable per flag, hence the
/// hidden second flag).
pub const ES_TIMEOUT_MS_ALIAS: &str = "ES_TIMEOUT_MS";

impl EsArgs {
    /// Settings for code not started from a command line (tests, benchmarks).
    pub fn new(url: impl Into<String>, timeout: Duration) -> Self {
        Self {
            es_url: SecretString::from(url.into()),
            es_timeout: Some(timeout),
            es_timeout_alias: None,
        }
    }

    /// The request timeout given (by either name), else the service's `default`.
    pub fn timeout_or(&self, default: Duration) -> Duration {
        self.es_timeout.or(self.es_timeout_alias).unwrap_or(default)
    }
}

/// Where Redis is and how this platform names its keys (content's cache, coupon's decisions).
#[derive(Debug, Clone, clap::Args)]
pub struct RedisArgs {
    /// Redis URL, `redis://[:password@]host:port[/db]` (a secret: never logged).
    #[arg(long = "redis-url", env = env::REDIS_URL, value_parser = parse_secret)]
    pub redis_url: SecretString,
    /// Prefix of every Redis key this service reads and writes (one platform per prefix), e.g.
    /// `blue:`.
    #[arg(
        long = "redis-key-prefix",
        env = env::REDIS_KEY_PREFIX,
        default_value = ""
    )]
    pub key_prefix: String,
    /// Timeout of a Redis connection attempt and of each command, in milliseconds [default: 2000
    /// in coupon; content keeps the Redis client's own (1 s to connect, 500 ms per command)].
    #[arg(long = "redis-timeout-ms", env = "REDIS_TIMEOUT_MS", value_parser = parse_millis)]
    pub redis_timeout: Option<Duration>,
}

impl RedisArgs {
    /// Settings for code not started from a command line (tests, benchmarks).
    pub fn new(url: &str, key_prefix: impl Into<String>) -> Self {
        Self {
            redis_url: SecretString::from(url.to_owned()),
            key_prefix: key_prefix.into(),
            redis_timeout: None,
        }
    }
}

/// Where the ops endpoints (`/healthz`, `/readyz`, `/metrics`) listen for processes without an API.
#[derive(Debug, Clone, clap::Args)]
pub struct OpsArgs {
    /// Address of the ops server of a worker (`/healthz`, `/readyz`, `/metrics`).
    #[arg(long = "ops-addr", env = env::OPS_ADDR, default_value_t = SocketAddr::from(([0, 0, 0, 0], port::OPS)))]
    pub ops_addr: SocketAddr,
}

/// Where an HTTP API listens.
#[cfg(feature = "http-api")]
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

#[cfg(feature = "http-api")]
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

/// Who calls an API: `none`, or a JWT bearer token checked against a key or a JWKS (see
/// [`crate::auth`]). Every setting is also an `AUTH_*` variable.
#[cfg(feature = "http-api")]
#[derive(Debug, Clone, clap::Args)]
pub struct AuthArgs {
    /// `none` (the default, as in the course): a request acts for the `userId` it names. `jwt`: the
    /// user comes from a bearer token (`Authorization: Bearer <JWT>`); a missing, invalid or expired
    /// token is answered 401, a `userId` other than the token's 403.
    #[arg(long = "auth-mode", env = env::AUTH_MODE, value_enum, ignore_case = true, default_value_t = crate::auth::AuthMode::None)]
    pub mode: crate::auth::AuthMode,
    /// The HS256 shared secret tokens are signed with, at least 32 bytes (a secret: never logged).
    /// Exactly one of this, a public key and a JWKS URL in mode `jwt`.
    #[arg(long = "auth-jwt-secret", env = env::AUTH_JWT_SECRET, value_parser = parse_secret)]
    pub jwt_hs256_key: Option<SecretString>,
    /// The PEM public key (RSA, EC P-256/P-384 or Ed25519) tokens are signed with.
    #[arg(long = "auth-jwt-public-key", env = env::AUTH_JWT_PUBLIC_KEY)]
    pub jwt_public_key: Option<String>,
    /// A file holding the PEM public key (instead of `--auth-jwt-public-key`).
    #[arg(long = "auth-jwt-public-key-file", env = "AUTH_JWT_PUBLIC_KEY_FILE")]
    pub jwt_public_key_file: Option<std::path::PathBuf>,
    /// The one signing algorithm accepted (`HS256`, `RS256`, `ES256`, …) [default: the key's:
    /// HS256 for a secret, RS256 for an RSA key, ES256/ES384 for an EC key, EdDSA for Ed25519;
    /// with a JWKS, each key's `alg`].
    #[arg(long = "auth-jwt-algorithm", env = env::AUTH_JWT_ALGORITHM)]
    pub jwt_algorithm: Option<String>,
    /// The JWKS (`https://issuer/.well-known/jwks.json`) the signing keys are fetched from; kept
    /// for `--auth-jwks-cache-secs` and fetched again when a token names an unknown `kid`.
    #[arg(long = "auth-jwks-url", env = env::AUTH_JWKS_URL)]
    pub jwks_url: Option<String>,
    /// How long fetched JWKS keys are used before the set is fetched again, in seconds.
    #[arg(
        long = "auth-jwks-cache-secs",
        env = "AUTH_JWKS_CACHE_SECS",
        default_value_t = 300
    )]
    pub jwks_cache_secs: u64,
    /// The JWKS is fetched at most once per this many milliseconds, however many tokens name
    /// unknown keys (a flood of made-up `kid`s never floods the issuer).
    #[arg(long = "auth-jwks-min-refresh-ms", env = "AUTH_JWKS_MIN_REFRESH_MS", default_value = "10000", value_parser = parse_millis)]
    pub jwks_min_refresh: Duration,
    /// The issuer (`iss`) a token must name; unset: not checked.
    #[arg(long = "auth-jwt-issuer", env = env::AUTH_JWT_ISSUER)]
    pub issuer: Option<String>,
    /// An audience (`aud`) a token must name; unset: not checked.
    #[arg(long = "auth-jwt-audience", env = env::AUTH_JWT_AUDIENCE)]
    pub audience: Option<String>,
    /// The claim holding the user id: a positive integer, or a string of one.
    #[arg(long = "auth-user-claim", env = env::AUTH_USER_CLAIM, default_value = "sub")]
    pub user_claim: String,
    /// Clock skew allowed on `exp` and `nbf`, in seconds.
    #[arg(
        long = "auth-jwt-leeway-secs",
        env = "AUTH_JWT_LEEWAY_SECS",
        default_value_t = 60
    )]
    pub leeway_secs: u64,
}

#[cfg(feature = "http-api")]
impl Default for AuthArgs {
    /// Mode `none`, every other setting at its default.
    fn default() -> Self {
        Self {
            mode: crate::auth::AuthMode::None,
            jwt_hs256_key: None,
            jwt_public_key: None,
            jwt_public_key_file: None,
            jwt_algorithm: None,
            jwks_url: None,
            jwks_cache_secs: 300,
            jwks_min_refresh: Duration::from_secs(10),
            issuer: None,
            audience: None,
            user_claim: "sub".to_owned(),
            leeway_secs: 60,
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
    fn properties_from_kafka_property_variables_reach_the_client_config_and_win() {
        let env = |pairs: &[(&str, &str)]| -> Vec<(std::ffi::OsString, std::ffi::OsString)> {
            pairs
                .iter()
                .map(|(k, v)| ((*k).into(), (*v).into()))
                .collect()
        };
        let mut args = KafkaArgs::new("k:9092");
        args.properties = vec![
            ("security.protocol".into(), "plaintext".into()),
            ("client.rack".into(), "a".into()),
        ];
        // As a Secret's keys reach a pod through envFrom's prefix, and as a shell would set one.
        let cfg = args.client_config_with(env(&[
            ("KAFKA_PROPERTY_sasl.password", "s3cret"),
            ("KAFKA_PROPERTY_SECURITY_PROTOCOL", "SASL_SSL"),
            ("KAFKA_PROPERTY_", "ignored"),
            ("KAFKA_PROPERTIES", "not.this=1"),
            ("OTHER", "x"),
        ]));
        assert_eq!(cfg.get("sasl.password"), Some("s3cret"));
        assert_eq!(
            cfg.get("security.protocol"),
            Some("SASL_SSL"),
            "the variable wins"
        );
        assert_eq!(cfg.get("client.rack"), Some("a"));
        assert_eq!(cfg.get("bootstrap.servers"), Some("k:9092"));
        assert_eq!(cfg.get("not.this"), None);
        assert_eq!(cfg.config_map().len(), 4, "{:?}", cfg.config_map().keys());
        // The property reaches librdkafka itself: an unknown one is refused by name.
        let err = args
            .client_config_with(env(&[("KAFKA_PROPERTY_no.such.property", "1")]))
            .create::<rdkafka::producer::BaseProducer>()
            .err()
            .expect("librdkafka refuses an unknown property");
        assert!(err.to_string().contains("no.such.property"), "{err}");
        // Nothing of the variables is kept in the arguments (whose Debug may be logged).
        assert!(!format!("{args:?}").contains("s3cret"));
    }

    #[derive(Parser, Debug)]
    struct EsCli {
        #[command(flatten)]
        es: EsArgs,
    }

    #[test]
    fn the_elasticsearch_timeout_has_one_name_and_an_alias() {
        let parse = |args: &[&str]| {
            let mut all = vec!["x", "--elasticsearch-url", "http://es:9200"];
            all.extend(args);
            EsCli::try_parse_from(all).unwrap().es
        };
        let default = Duration::from_secs(7);
        assert_eq!(parse(&[]).timeout_or(default), default);
        let new = parse(&["--elasticsearch-timeout-ms", "1500"]);
        assert_eq!(new.timeout_or(default), Duration::from_millis(1500));
        let old = parse(&["--es-timeout-ms", "2500"]);
        assert_eq!(old.timeout_or(default), Duration::from_millis(2500));
        let both = parse(&[
            "--es-timeout-ms",
            "2500",
            "--elasticsearch-timeout-ms",
            "1500",
        ]);
        assert_eq!(both.timeout_or(default), Duration::from_millis(1500));
        // The alias is read but not advertised.
        use clap::CommandFactory;
        let help = EsCli::command().render_help().to_string();
        assert!(help.contains("ELASTICSEARCH_TIMEOUT_MS"), "{help}");
        assert!(!help.contains("es-timeout-ms"), "{help}");
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
