//! Backbone throughput on the local servers (scripts/servers.sh start):
//!   cargo bench -p campus-common --bench backbone
//! Prints: outbox relay events/s (committed row → broker ack → marked sent) beside Kafka's own
//! `kafka-producer-perf-test` (ProducerPerformance, acks=all, same record size) on the same broker,
//! consumer runtime records/s with a no-op handler beside `kafka-consumer-perf-test`
//! (ConsumerPerformance, same topic, both including the group join), with a MySQL upsert handler,
//! and produce → handler latency.
//! Sizes: BENCH_OUTBOX_N (default 20000), BENCH_NOOP_N (200000), BENCH_UPSERT_N (20000).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use campus_common::kafka::consumer::ConsumerMetrics;
use campus_common::kafka::{
    ConsumerOptions, ConsumerRuntime, HandleError, Handler, Producer, Record,
};
use campus_common::outbox::{self, Relay, RelayMetrics, RelayOptions};
use campus_testkit as testing;
use sqlx::Executor;
use sqlx::mysql::MySqlPool;
use tokio_util::sync::CancellationToken;

fn size(var: &str, default: usize) -> usize {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn payload(i: usize) -> Vec<u8> {
    // ~100-byte JSON values.
    format!(r#"{{"id":{i},"user":"user-{:06}","text":"lorem ipsum dolor sit amet consectetur adipiscing"}}"#, i % 1000)
        .into_bytes()
}

async fn bench_outbox(n: usize) {
    let (_, pool) = testing::fresh_mysql().await;
    outbox::install(&pool).await.unwrap();
    let topic = testing::fresh_topic("bench-outbox", 3).await;
    for chunk in (0..n).collect::<Vec<_>>().chunks(1000) {
        let mut q = sqlx::QueryBuilder::<sqlx::MySql>::new(
            "INSERT INTO outbox (topic, message_key, payload) ",
        );
        q.push_values(chunk, |mut b, i| {
            b.push_bind(&topic)
                .push_bind(format!("k{}", i % 100))
                .push_bind(payload(*i));
        });
        q.build().execute(&pool).await.unwrap();
    }
    let relay = Relay::new(
        pool.clone(),
        Producer::new(&testing::kafka()).unwrap(),
        RelayOptions {
            lock_name: testing::unique("lock"),
            ..RelayOptions::default()
        },
        RelayMetrics::default(),
    );
    let token = CancellationToken::new();
    let start = Instant::now();
    let task = tokio::spawn(relay.run(token.clone()));
    loop {
        let left: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE sent_at IS NULL")
            .fetch_one(&pool)
            .await
            .unwrap();
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let secs = start.elapsed().as_secs_f64();
    token.cancel();
    task.await.unwrap();
    let relay_rate = n as f64 / secs;
    println!(
        "outbox relay: {n} events in {secs:.2} s = {relay_rate:.0} events/s (commit -> ack -> marked)"
    );
    // Kafka's own producer tool, same broker, same record size, acks=all.
    let perf_topic = testing::fresh_topic("bench-producer-perf", 3).await;
    let out = kafka_tool(&[
        "org.apache.kafka.tools.ProducerPerformance",
        "--topic",
        &perf_topic,
        "--num-records",
        &n.to_string(),
        "--record-size",
        &payload(0).len().to_string(),
        "--throughput",
        "-1",
        "--producer-props",
        &format!("bootstrap.servers={}", testing::kafka_brokers()),
        "acks=all",
        "enable.idempotence=true",
    ]);
    // Last line: "N records sent, R records/sec (…)".
    let tool_rate: f64 = out
        .lines()
        .last()
        .and_then(|l| l.split(", ").nth(1))
        .and_then(|f| f.split(' ').next())
        .and_then(|r| r.parse().ok())
        .unwrap_or_else(|| panic!("unexpected ProducerPerformance output: {out}"));
    println!(
        "kafka-producer-perf-test: {n} records of {} bytes, acks=all = {tool_rate:.0} records/s; relay / tool = {:.2}",
        payload(0).len(),
        relay_rate / tool_rate
    );
}

/// Runs one of Kafka's own tools (scripts/kafka-tool.sh) and returns what it printed on stdout.
fn kafka_tool(args: &[&str]) -> String {
    let out = std::process::Command::new("bash")
        .arg(testing::scripts_dir().join("kafka-tool.sh"))
        .args(args)
        .output()
        .expect("scripts/kafka-tool.sh");
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("tool output")
}

/// `kafka-consumer-perf-test` on `topic`: records/s over the whole run, group join included (its
/// `nMsg.sec` column), as the runtime's own figure is.
fn consumer_perf(topic: &str, n: usize) -> f64 {
    let out = kafka_tool(&[
        "org.apache.kafka.tools.ConsumerPerformance",
        "--bootstrap-server",
        &testing::kafka_brokers(),
        "--topic",
        topic,
        "--num-records",
        &n.to_string(),
        "--group",
        &testing::unique("bench-perf"),
        "--timeout",
        "60000",
    ]);
    // "start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec, …"
    let header: Vec<&str> = out
        .lines()
        .find(|l| l.starts_with("start.time"))
        .unwrap_or_else(|| panic!("unexpected ConsumerPerformance output: {out}"))
        .split(", ")
        .collect();
    let row: Vec<&str> = out.lines().last().unwrap_or_default().split(", ").collect();
    let col = header
        .iter()
        .position(|h| *h == "nMsg.sec")
        .expect("nMsg.sec column");
    row[col].trim().parse().expect("nMsg.sec value")
}

struct Count(AtomicUsize);

#[async_trait]
impl Handler for Count {
    async fn handle(&self, _: &Record) -> Result<(), HandleError> {
        self.0.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

struct Upsert {
    pool: MySqlPool,
    done: AtomicUsize,
}

#[async_trait]
impl Handler for Upsert {
    async fn handle(&self, r: &Record) -> Result<(), HandleError> {
        let v: serde_json::Value = r.json()?;
        sqlx::query("INSERT INTO projection (id, body, version) VALUES (?, ?, 1) ON DUPLICATE KEY UPDATE body = VALUES(body), version = version + 1")
            .bind(v["id"].as_i64())
            .bind(v.to_string())
            .execute(&self.pool)
            .await
            .map_err(HandleError::transient)?;
        self.done.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

async fn fill_topic(n: usize, partitions: i32) -> String {
    let topic = testing::fresh_topic("bench-consume", partitions).await;
    let producer = Producer::new(&testing::kafka()).unwrap();
    // Sends pipelined 10,000 at a time (each send enqueues when first polled).
    let records: Vec<(String, Vec<u8>)> = (0..n)
        .map(|i| (format!("k{}", i % 1000), payload(i)))
        .collect();
    for chunk in records.chunks(10_000) {
        futures::future::try_join_all(
            chunk
                .iter()
                .map(|(key, value)| producer.send(&topic, key.as_bytes(), value, &[])),
        )
        .await
        .unwrap();
    }
    topic
}

async fn consume<H: Handler>(
    label: &str,
    topic: &str,
    n: usize,
    handler: Arc<H>,
    done: impl Fn(&H) -> usize,
) -> f64 {
    let opts = ConsumerOptions::new(testing::unique("bench"), vec![topic.to_owned()]);
    let runtime =
        ConsumerRuntime::new(&testing::kafka(), opts, ConsumerMetrics::default()).unwrap();
    let token = CancellationToken::new();
    let start = Instant::now();
    let task = tokio::spawn(runtime.run(handler.clone(), token.clone()));
    while done(&handler) < n {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let secs = start.elapsed().as_secs_f64();
    token.cancel();
    task.await.unwrap().unwrap();
    let rate = n as f64 / secs;
    println!(
        "consumer runtime, {label}: {n} records in {secs:.2} s = {rate:.0} records/s (group join included)"
    );
    rate
}

/// Produce → handler latency at a steady 50 records/s (one record in flight at a time).
struct Latency {
    seen: tokio::sync::mpsc::UnboundedSender<Instant>,
}

#[async_trait]
impl Handler for Latency {
    async fn handle(&self, _: &Record) -> Result<(), HandleError> {
        let _ = self.seen.send(Instant::now());
        Ok(())
    }
}

async fn bench_latency(n: usize) {
    let topic = testing::fresh_topic("bench-latency", 1).await;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let opts = ConsumerOptions::new(testing::unique("bench"), vec![topic.clone()]);
    let runtime =
        ConsumerRuntime::new(&testing::kafka(), opts, ConsumerMetrics::default()).unwrap();
    let token = CancellationToken::new();
    let task = tokio::spawn(runtime.run(Arc::new(Latency { seen: tx }), token.clone()));
    let producer = Producer::new(&testing::kafka()).unwrap();
    // Warm up: the group has joined once the first record comes through.
    producer.send(&topic, b"w", b"{}", &[]).await.unwrap();
    rx.recv().await.unwrap();
    let mut lat = testing::Latencies::new();
    for i in 0..n {
        let sent = Instant::now();
        producer
            .send(&topic, b"k", payload(i).as_slice(), &[])
            .await
            .unwrap();
        let seen = rx.recv().await.unwrap();
        lat.record(seen.duration_since(sent));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    token.cancel();
    task.await.unwrap().unwrap();
    println!(
        "produce -> handler latency ({n} records, one at a time): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        lat.ms(0.50),
        lat.ms(0.99),
        lat.max_ms()
    );
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        bench_latency(size("BENCH_LATENCY_N", 200)).await;
        bench_outbox(size("BENCH_OUTBOX_N", 20_000)).await;

        let n = size("BENCH_NOOP_N", 200_000);
        let topic = fill_topic(n, 4).await;
        let ours = consume("no-op handler", &topic, n, Arc::new(Count(AtomicUsize::new(0))), |h| h.0.load(Ordering::Relaxed)).await;
        let tool = consumer_perf(&topic, n);
        println!(
            "kafka-consumer-perf-test: {n} records, same topic = {tool:.0} records/s (group join included); runtime / tool = {:.2}",
            ours / tool
        );

        let n = size("BENCH_UPSERT_N", 20_000);
        let topic = fill_topic(n, 4).await;
        let (_, pool) = testing::fresh_mysql().await;
        pool.execute("CREATE TABLE projection (id BIGINT PRIMARY KEY, body TEXT NOT NULL, version BIGINT NOT NULL)")
            .await
            .unwrap();
        let handler = Arc::new(Upsert { pool, done: AtomicUsize::new(0) });
        consume("MySQL upsert handler", &topic, n, handler, |h| h.done.load(Ordering::Relaxed)).await;
    });
}
