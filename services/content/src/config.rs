//! Configuration of the content processes: every flag has an environment variable (see README).

use std::time::Duration;

use campus_common::config::EsArgs;
use campus_common::config::{ExposeSecret, SecretString, parse_millis, parse_secret};
use campus_common::kafka::ConsumerOptions;
use campus_contract::{content, env};

/// How long the post cache keeps a post (Redis itself: [`RedisArgs`]).
#[derive(Debug, Clone, clap::Args)]
pub struct CacheArgs {
    /// How long a cached post lives, in seconds.
    #[arg(
        long = "cache-ttl-seconds",
        env = "CACHE_TTL_SECONDS",
        default_value_t = 3600
    )]
    pub ttl_seconds: u64,
}

impl CacheArgs {
    pub fn ttl(&self) -> Duration {
        Duration::from_secs(self.ttl_seconds)
    }
}

/// Where MongoDB is.
#[derive(Debug, Clone, clap::Args)]
pub struct MongoArgs {
    /// MongoDB connection string (a secret: never logged).
    #[arg(long = "mongo-url", env = env::MONGO_URL, value_parser = parse_secret)]
    pub mongo_url: SecretString,
    /// Database that holds the `inbox` collections.
    #[arg(
        long = "mongo-database",
        env = env::MONGO_DATABASE,
        default_value = "campus"
    )]
    pub database: String,
}

/// Where Elasticsearch is and which index the posts live in.
#[derive(Debug, Clone, clap::Args)]
pub struct PostsIndexArgs {
    #[command(flatten)]
    pub es: EsArgs,
    /// The alias every read and write goes through.
    #[arg(
        long = "es-index-alias",
        env = env::ES_INDEX_ALIAS,
        default_value = content::POSTS_ALIAS
    )]
    pub alias: String,
    /// The concrete index the index worker creates (with its mapping) behind the alias.
    #[arg(
        long = "es-index-name",
        env = "ES_INDEX_NAME",
        default_value = "posts-v1"
    )]
    pub index: String,
}

/// Content's Elasticsearch request timeout when none is given (a search or one bulk write).
pub const ES_TIMEOUT: Duration = Duration::from_secs(5);

impl PostsIndexArgs {
    /// Settings for code not started from a command line (tests, benchmarks).
    pub fn new(url: &str, alias: &str, index: &str, timeout: Duration) -> Self {
        Self {
            es: EsArgs::new(url, timeout),
            alias: alias.to_owned(),
            index: index.to_owned(),
        }
    }

    /// The request timeout: given, or [`ES_TIMEOUT`].
    pub fn timeout(&self) -> Duration {
        self.es.timeout_or(ES_TIMEOUT)
    }
}

/// The OpenAI-compatible chat API the inspector calls.
#[derive(Debug, Clone, clap::Args)]
pub struct OpenAiArgs {
    /// API key; without it the inspector applies the offline policy (see README).
    #[arg(long = "openai-api-key", env = env::OPENAI_API_KEY, value_parser = parse_secret)]
    pub api_key: Option<SecretString>,
    /// Base URL of any OpenAI-compatible server.
    #[arg(
        long = "openai-base-url",
        env = env::OPENAI_BASE_URL,
        default_value = "https://api.openai.com/v1"
    )]
    pub base_url: String,
    /// Chat model.
    #[arg(
        long = "openai-model",
        env = env::OPENAI_MODEL,
        default_value = "gpt-4o-mini"
    )]
    pub model: String,
    /// Timeout of one inspection call (including the client's own 429/5xx retries), in milliseconds.
    #[arg(long = "openai-timeout-ms", env = "OPENAI_TIMEOUT_MS", default_value = "15000", value_parser = parse_millis)]
    pub openai_timeout: Duration,
}

impl OpenAiArgs {
    /// Settings for a given server (tests, benchmarks).
    pub fn new(base_url: impl Into<String>, api_key: Option<&str>) -> Self {
        Self {
            api_key: api_key.map(|k| SecretString::from(k.to_owned())),
            base_url: base_url.into(),
            model: "gpt-4o-mini".to_owned(),
            openai_timeout: Duration::from_secs(15),
        }
    }

    pub fn key(&self) -> Option<&str> {
        self.api_key.as_ref().map(|k| k.expose_secret())
    }
}

/// Retry settings of a consumer group.
#[derive(Debug, Clone, clap::Args)]
pub struct ConsumerArgs {
    /// Attempts for a transiently failing record before it goes to the dead-letter topic.
    #[arg(
        long = "consumer-max-attempts",
        env = "CONSUMER_MAX_ATTEMPTS",
        default_value_t = 5
    )]
    pub max_attempts: u32,
    /// First retry delay, doubled per attempt, in milliseconds.
    #[arg(long = "consumer-initial-backoff-ms", env = "CONSUMER_INITIAL_BACKOFF_MS", default_value = "200", value_parser = parse_millis)]
    pub initial_backoff: Duration,
    /// Longest retry delay, in milliseconds.
    #[arg(long = "consumer-max-backoff-ms", env = "CONSUMER_MAX_BACKOFF_MS", default_value = "10000", value_parser = parse_millis)]
    pub max_backoff: Duration,
}

impl Default for ConsumerArgs {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(10),
        }
    }
}

impl ConsumerArgs {
    /// The options of a group consuming `topics` (full names).
    pub fn options(&self, group: String, topics: Vec<String>) -> ConsumerOptions {
        let mut o = ConsumerOptions::new(group, topics);
        o.max_attempts = self.max_attempts.max(1);
        o.initial_backoff = self.initial_backoff;
        o.max_backoff = self.max_backoff.max(self.initial_backoff);
        o
    }
}
