//! What the workspace's tests and benchmarks share (a dev-dependency of every crate that has
//! tests against real servers):
//!
//! - Isolation on the real local servers started by `scripts/servers.sh`: each helper hands out
//!   a fresh database, topic, index, Mongo database or Redis key prefix, so tests run in parallel
//!   without seeing each other's data. Addresses come from `CAMPUS_TEST_*` variables
//!   (`scripts/servers.sh env` prints them); the defaults are the script's default ports on
//!   127.0.0.1.
//! - Private servers a test may stop, kill and restart ([`PrivateKafka`], [`PrivateMysql`],
//!   [`PrivateRedis`], [`PrivateSearch`]) and the real Filebeat ([`Filebeat`]).
//! - [`process`]: server processes in their own process group, signals (no shelling out to
//!   `kill`), free ports, another workspace binary, memory of a process.
//! - [`poll`]: [`eventually`] and [`wait_until`], the one polling loop.
//! - [`jwt`]: bearer tokens (HS256, ES256) and a JWKS server for the APIs' `jwt` mode.
//! - [`percentile`]: latency summaries (HDR histogram) for benchmarks, exact percentiles for tests
//!   that check a server's.

use std::time::Duration;

use sqlx::mysql::{MySqlPool, MySqlPoolOptions};
use sqlx::{Connection, Executor, MySqlConnection};

use campus_common::config::KafkaArgs;

mod filebeat;
pub mod jwt;
mod kafka;
pub mod percentile;
pub mod poll;
mod private_mysql;
mod private_redis;
pub mod process;
mod search;

use campus_common::kafka::admin::{Admin, TopicSpec};
pub use filebeat::{FILEBEAT_ENV, Filebeat};
pub use kafka::PrivateKafka;
pub use percentile::Latencies;
pub use poll::{eventually, wait_until};
pub use private_mysql::PrivateMysql;
pub use private_redis::PrivateRedis;
pub use process::{
    ServerProcess, cache_dir, cpu_seconds, free_port, free_port_pair, listening, memory_kib,
    scripts_dir, sibling_binary, signal, signal_group, stop_child, wait_ports,
};
pub use search::PrivateSearch;

/// True on CI (`CI=true`), where a missing tool fails the test instead of skipping it.
pub fn on_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

fn var(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

/// `mysql://root@127.0.0.1:3306` (no database).
pub fn mysql_url() -> String {
    var("CAMPUS_TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306")
}
pub fn redis_url() -> String {
    var("CAMPUS_TEST_REDIS_URL", "redis://127.0.0.1:6379")
}
pub fn kafka_brokers() -> String {
    var("CAMPUS_TEST_KAFKA_BROKERS", "127.0.0.1:9092")
}
/// The shared OpenSearch node's REST API (the suite's Elasticsearch API).
pub fn es_url() -> String {
    var("CAMPUS_TEST_ES_URL", "http://127.0.0.1:9200")
}
pub fn mongo_url() -> String {
    var("CAMPUS_TEST_MONGO_URL", "mongodb://127.0.0.1:27017")
}

/// A short random suffix: `prefix_1a2b3c4d`.
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

/// Kafka settings for the local broker.
pub fn kafka() -> KafkaArgs {
    KafkaArgs::new(kafka_brokers())
}

/// A fresh, empty MySQL database; returns its URL and a pool on it.
pub async fn fresh_mysql() -> (String, MySqlPool) {
    let name = unique("t");
    let mut admin = MySqlConnection::connect(&mysql_url())
        .await
        .expect("MySQL is up (scripts/servers.sh start)");
    let create = format!("CREATE DATABASE `{name}`");
    admin
        .execute(sqlx::AssertSqlSafe(create))
        .await
        .expect("create database");
    let url = format!("{}/{name}", mysql_url());
    let pool = MySqlPoolOptions::new()
        .max_connections(32)
        .acquire_timeout(Duration::from_secs(10))
        .connect(&url)
        .await
        .expect("connect to fresh database");
    (url, pool)
}

/// A fresh topic with `partitions` partitions, created and visible to metadata requests.
pub async fn fresh_topic(prefix: &str, partitions: i32) -> String {
    let name = unique(prefix).replace('_', "-");
    create_topics(&[TopicSpec::new(&name, partitions)]).await;
    name
}

/// Creates topics and waits until metadata shows them.
pub async fn create_topics(specs: &[TopicSpec]) {
    let admin = Admin::new(&kafka()).expect("admin client");
    admin
        .ensure(specs)
        .await
        .expect("Kafka is up (scripts/servers.sh start)");
    for _ in 0..100 {
        let have = admin.describe().await.expect("metadata");
        if specs.iter().all(|s| {
            have.get(&s.name)
                .is_some_and(|t| t.partitions >= s.partitions)
        }) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("topics {specs:?} did not appear");
}

/// A fresh Elasticsearch index (or alias) name; nothing is created.
pub fn fresh_index(prefix: &str) -> String {
    unique(prefix).to_lowercase()
}

/// A fresh MongoDB database on the local server.
pub async fn fresh_mongo() -> mongodb::Database {
    let client = mongodb::Client::with_uri_str(mongo_url())
        .await
        .expect("MongoDB client");
    client.database(&unique("t"))
}

/// A fresh Redis key prefix (`t_xxxxxxxxxxxx:`), and a connection.
pub async fn fresh_redis() -> (String, redis::aio::MultiplexedConnection) {
    let client = redis::Client::open(redis_url()).expect("redis url");
    let conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("Redis is up (scripts/servers.sh start)");
    (format!("{}:", unique("t")), conn)
}

/// Reads every record currently in `topic` (all partitions) with a throwaway group, until `want`
/// records arrived or `timeout` passed.
pub async fn read_topic(
    topic: &str,
    want: usize,
    timeout: Duration,
) -> Vec<campus_common::kafka::Record> {
    use rdkafka::consumer::{Consumer, StreamConsumer};
    use rdkafka::message::{Headers, Message};
    let mut cfg = kafka().client_config();
    cfg.set("group.id", unique("reader"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("session.timeout.ms", "6000");
    let consumer: StreamConsumer = cfg.create().expect("consumer");
    let deadline = tokio::time::Instant::now() + timeout;
    // A topic that does not exist yet (its producer creates it later) is waited for: subscribed
    // to early, librdkafka would answer UnknownTopicOrPartition.
    while tokio::time::Instant::now() < deadline {
        let known = consumer
            .fetch_metadata(Some(topic), Duration::from_secs(5))
            .is_ok_and(|m| {
                m.topics()
                    .iter()
                    .any(|t| t.error().is_none() && !t.partitions().is_empty())
            });
        if known {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    consumer.subscribe(&[topic]).expect("subscribe");
    let mut out = Vec::new();
    while out.len() < want {
        let m = match tokio::time::timeout_at(deadline, consumer.recv()).await {
            Ok(Ok(m)) => m,
            Ok(Err(e)) => panic!("consume {topic}: {e}"),
            Err(_) => break,
        };
        out.push(campus_common::kafka::Record {
            topic: m.topic().to_owned(),
            partition: m.partition(),
            offset: m.offset(),
            key: m.key().map(<[u8]>::to_vec),
            payload: m.payload().map(<[u8]>::to_vec),
            headers: m
                .headers()
                .map(|hs| {
                    hs.iter()
                        .map(|h| (h.key.to_owned(), h.value.unwrap_or_default().to_vec()))
                        .collect()
                })
                .unwrap_or_default(),
            timestamp_ms: m.timestamp().to_millis(),
        });
    }
    out
}
