//! Isolation helpers for tests against the real local servers started by `scripts/servers.sh`.
//! Each helper hands out a fresh database, topic, index, Mongo database or Redis key prefix, so
//! tests run in parallel without seeing each other's data.
//!
//! Addresses come from `CAMPUS_TEST_*` variables (`scripts/servers.sh env` prints them); the
//! defaults are the script's default ports on 127.0.0.1.

use std::time::Duration;

use sqlx::mysql::{MySqlPool, MySqlPoolOptions};
use sqlx::{Connection, Executor, MySqlConnection};

use crate::config::KafkaArgs;
use crate::kafka::admin::{Admin, TopicSpec};

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
pub fn es_url() -> String {
    var("CAMPUS_TEST_ES_URL", "http://127.0.0.1:9200")
}
/// An OpenSearch-compatible server with the `percentiles` aggregation (osmem-server).
pub fn osmem_url() -> String {
    var("CAMPUS_TEST_OSMEM_URL", "http://127.0.0.1:9201")
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
pub async fn read_topic(topic: &str, want: usize, timeout: Duration) -> Vec<crate::kafka::Record> {
    use rdkafka::consumer::{Consumer, StreamConsumer};
    use rdkafka::message::{Headers, Message};
    let mut cfg = kafka().client_config();
    cfg.set("group.id", unique("reader"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("session.timeout.ms", "6000");
    let consumer: StreamConsumer = cfg.create().expect("consumer");
    consumer.subscribe(&[topic]).expect("subscribe");
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + timeout;
    while out.len() < want {
        let m = match tokio::time::timeout_at(deadline, consumer.recv()).await {
            Ok(Ok(m)) => m,
            Ok(Err(e)) => panic!("consume {topic}: {e}"),
            Err(_) => break,
        };
        out.push(crate::kafka::Record {
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

/// A free TCP port on 127.0.0.1 (bound, read, released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free local port")
        .port()
}

/// (VmRSS, VmHWM) of a process in KiB, from /proc; zeros once it is gone. For benchmarks.
pub fn memory_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Where scripts/deps.sh installed the Python-packaged servers.
fn site_packages() -> std::path::PathBuf {
    let cache = std::env::var("CAMPUS_CACHE")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| {
            std::path::PathBuf::from(std::env::var("HOME").unwrap_or_default())
                .join(".cache/campus")
        });
    cache.join("venv/lib/python3.11/site-packages")
}

fn noida_binary() -> std::path::PathBuf {
    if let Ok(b) = std::env::var("CAMPUS_NOIDA_BIN") {
        return b.into();
    }
    site_packages().join("noida_db/noida-db")
}

fn listening(port: u16) -> bool {
    std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
}

/// A private noida-db (Kafka, Elasticsearch or both) for tests that stop a server midway and for
/// benchmarks that need a server of their own; the shared servers are never touched. It runs in its own process group, is stopped by its PID
/// (the group), and is killed when dropped. Its data survives [`PrivateNoida::stop`] /
/// [`PrivateNoida::resume`] (noida-db saves on SIGTERM).
pub struct PrivateNoida {
    kafka_port: Option<u16>,
    es_port: Option<u16>,
    dir: std::path::PathBuf,
    child: Option<std::process::Child>,
}

impl PrivateNoida {
    /// Kafka and Elasticsearch on free ports.
    pub async fn start() -> Self {
        Self::launch(Some(free_port()), Some(free_port())).await
    }

    /// Kafka only, on `port` (a test may point a client at the port before the server exists).
    pub async fn start_kafka(port: u16) -> Self {
        Self::launch(Some(port), None).await
    }

    /// Elasticsearch only, on a free port.
    pub async fn start_elasticsearch() -> Self {
        Self::launch(None, Some(free_port())).await
    }

    async fn launch(kafka_port: Option<u16>, es_port: Option<u16>) -> Self {
        let dir = std::env::temp_dir().join(unique("noida"));
        std::fs::create_dir_all(&dir).expect("private noida-db directory");
        let mut n = Self {
            kafka_port,
            es_port,
            dir,
            child: None,
        };
        n.resume().await;
        n
    }

    /// Panics when started without Kafka.
    pub fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.kafka_port())
    }

    fn kafka_port(&self) -> u16 {
        self.kafka_port.expect("started with Kafka")
    }

    /// The server's PID (its process group), while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(std::process::Child::id)
    }

    /// Kafka settings for this broker.
    pub fn kafka(&self) -> KafkaArgs {
        KafkaArgs::new(self.brokers())
    }

    /// Panics when started without Elasticsearch.
    pub fn es_url(&self) -> String {
        format!(
            "http://127.0.0.1:{}",
            self.es_port.expect("started with Elasticsearch")
        )
    }

    fn ports(&self) -> Vec<u16> {
        self.kafka_port.into_iter().chain(self.es_port).collect()
    }

    async fn wait_ports(&self, open: bool) {
        for _ in 0..300 {
            if self.ports().into_iter().all(|p| listening(p) == open) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "private noida-db ports {:?} did not become {}",
            self.ports(),
            if open { "open" } else { "closed" }
        );
    }

    /// Starts (again) on the same ports and data directory, and waits for the ports.
    pub async fn resume(&mut self) {
        use std::os::unix::process::CommandExt;
        use std::process::{Command, Stdio};
        assert!(self.child.is_none(), "already running");
        let log = std::fs::File::create(self.dir.join("noida.log")).expect("log file");
        let mut cmd = Command::new(noida_binary());
        cmd.args(["start", "--data-dir"]).arg(self.dir.join("data"));
        let mut only = Vec::new();
        if let Some(port) = self.kafka_port {
            only.push("kafka");
            cmd.args(["--kafka-port", &port.to_string()]);
        }
        if let Some(port) = self.es_port {
            only.push("elasticsearch");
            cmd.args(["--elasticsearch-port", &port.to_string()]);
        }
        let child = cmd
            .args(["--only", &only.join(",")])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .process_group(0)
            .spawn()
            .expect("noida-db binary (scripts/deps.sh installs it)");
        self.child = Some(child);
        self.wait_ports(true).await;
    }

    /// Stops the whole server (SIGTERM to its process group, then KILL) and waits for the ports
    /// to close.
    pub async fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        signal_group(child.id(), "-TERM");
        for _ in 0..100 {
            if child.try_wait().ok().flatten().is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        signal_group(child.id(), "-KILL");
        let _ = child.wait();
        self.wait_ports(false).await;
    }

    fn control(&self, verb: &str) {
        let out = std::process::Command::new(noida_binary())
            .args([verb, "kafka", "--data-dir"])
            .arg(self.dir.join("data"))
            .output()
            .expect("noida-db control command");
        assert!(out.status.success(), "noida-db {verb} kafka: {out:?}");
    }

    /// Stops only the Kafka service (the process keeps running, the port closes).
    pub async fn stop_kafka_service(&self) {
        self.control("stop");
        let port = self.kafka_port();
        for _ in 0..300 {
            if !listening(port) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("private Kafka port {port} did not close");
    }

    /// Starts the Kafka service again, with its data.
    pub async fn start_kafka_service(&self) {
        self.control("start");
        let port = self.kafka_port();
        for _ in 0..300 {
            if listening(port) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("private Kafka port {port} did not open");
    }
}

fn signal_group(pid: u32, signal: &str) {
    let _ = std::process::Command::new("kill")
        .args([signal, "--", &format!("-{pid}")])
        .stderr(std::process::Stdio::null())
        .status();
}

impl Drop for PrivateNoida {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            signal_group(child.id(), "-KILL");
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A private osmem-server (OpenSearch API with the `percentiles` aggregation) on a free port, in
/// its own process group, killed (the group) when dropped.
pub struct PrivateOsmem {
    port: u16,
    child: std::process::Child,
}

impl PrivateOsmem {
    pub async fn start() -> Self {
        use std::os::unix::process::CommandExt;
        use std::process::{Command, Stdio};
        let port = free_port();
        let child = Command::new(site_packages().join("osmem_server/bin/osmem-server"))
            .args(["-no-stdin-watch", "-addr", &format!("127.0.0.1:{port}")])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("osmem-server binary (scripts/deps.sh installs it)");
        let server = Self { port, child };
        for _ in 0..300 {
            if listening(port) {
                return server;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("private osmem-server port {port} did not open");
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for PrivateOsmem {
    fn drop(&mut self) {
        signal_group(self.child.id(), "-KILL");
        let _ = self.child.wait();
    }
}
