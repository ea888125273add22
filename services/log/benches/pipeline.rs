//! Log pipeline benchmark: `cargo bench -p campus-log --bench pipeline`.
//!
//! Runs on PRIVATE servers it starts and stops itself (a fresh Kafka broker and OpenSearch node per
//! run, so every run starts from empty servers; the shared ones are never touched):
//!
//! Both runs are observed alike: `_count` every second from the start (no explicit refresh).
//!
//! Each run gets fresh servers: an Apache Kafka broker and an OpenSearch node, two processes as in a
//! real deployment, so the Elasticsearch process does the same work in both runs.
//!
//! 1. **Raw bulk rate**: N Filebeat events produced to Kafka (so both runs see the same server
//!    state); then the very documents the indexer would write are bulk-loaded straight into
//!    Elasticsearch (same batch size, one stream per partition) until searchable.
//! 2. **Native indexer**: fresh servers, the same N events produced; the real
//!    `campus-log worker index` binary is started and timed until all N are searchable. Its peak
//!    RSS (VmHWM) is read from /proc.
//! 3. **Steady feed**: fresh servers, the indexer started first, then `BENCH_FEED_LINES` lines
//!    produced at `BENCH_FEED_RATE` lines/s; its peak RSS under a live feed (see [`feed_run`] for
//!    why the backlog run's RSS overstates it on the test server).
//! 4. **Stats latency**: a fresh OpenSearch node, M documents bulk-loaded, then `GET /logs/stats`
//!    timed through the real API router over HTTP.
//!
//! Knobs (environment): `BENCH_LINES` (default 200000), `BENCH_PARTITIONS` (2), `BENCH_BATCH`
//! (1000), `BENCH_FEED_LINES` (60000), `BENCH_FEED_RATE` (2000), `BENCH_STATS_DOCS` (1000000),
//! `BENCH_STATS_RUNS` (10 timed requests per stats query), `BENCH_SKIP` (comma list of `raw`,
//! `indexer`, `feed`, `stats`),
//! `CAMPUS_CACHE` (where scripts/deps.sh put the servers, default ~/.cache/campus),
//! `CAMPUS_TEST_OPENSEARCH_HEAP` (the nodes' heap, default 512m), `OPENSEARCH_JAVA_OPTS` (e.g.
//! `-XX:TieredStopAtLevel=4` for the full JIT; scripts/opensearch-node.sh starts C1 only).

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use campus_common::config::{KafkaArgs, SecretString};
use campus_common::http::AccessLog;
use campus_common::kafka::Record;
use campus_common::kafka::admin::{Admin, TopicSpec};
use campus_common::logschema::{self, KubernetesMeta, filebeat_event};
use campus_log::api::query::StatsParams;
use campus_log::document::{self, Decoded, Document};
use campus_log::es::Es;
use campus_testkit::{self as testing, PrivateKafka, PrivateSearch, memory_kib};
use chrono::{DateTime, Duration as ChronoDuration, Utc};
use rdkafka::producer::{BaseRecord, Producer as _, ThreadedProducer};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A private Apache Kafka broker and a private OpenSearch node, two processes as in a real
/// deployment, fresh for each run.
struct Servers {
    kafka: PrivateKafka,
    es: PrivateSearch,
}

impl Servers {
    async fn start() -> Self {
        Self {
            kafka: PrivateKafka::start().await,
            es: PrivateSearch::start().await,
        }
    }

    /// Fresh servers with `n` access-log events waiting in `bench.access-log`; the events too.
    async fn with_backlog(n: usize, partitions: i32) -> (Self, Vec<Vec<u8>>) {
        let servers = Self::start().await;
        let payloads = events(n, Utc::now());
        let brokers = servers.kafka.brokers();
        produce_all(&brokers, "bench.access-log", partitions, &payloads, None).await;
        (servers, payloads)
    }

    fn es_rss_mib(&self) -> u64 {
        self.es.pid().map_or(0, |pid| memory_kib(pid).0) / 1024
    }
}

const ROUTES: [(&str, &str, &str); 8] = [
    ("campus-content", "GET", "/posts/{id}/detail"),
    ("campus-content", "POST", "/posts"),
    ("campus-content", "PUT", "/posts/{id}"),
    ("campus-content", "GET", "/list/search"),
    ("campus-content", "GET", "/list/inbox/{userId}"),
    ("campus-coupon", "POST", "/coupons"),
    ("campus-coupon", "GET", "/coupons"),
    ("campus-log", "GET", "/logs/stats"),
];

/// A deterministic, varied access line `i` of `n`, spread over the hour before `end`.
fn line(i: usize, n: usize, end: DateTime<Utc>) -> AccessLog {
    let h = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let (service, method, route) = ROUTES[(h % ROUTES.len() as u64) as usize];
    let id = h % 10_000;
    let path = route
        .replace("{id}", &id.to_string())
        .replace("{userId}", &(id % 97).to_string());
    let status = match h % 100 {
        0..=84 => 200,
        85..=91 => 201,
        92..=96 => 404,
        97..=98 => 409,
        _ => 503,
    };
    // Long-tailed latency: mostly a few ms, some hundreds.
    let base = ((h >> 16) % 1000) as f64 / 100.0;
    let duration_ms = if h.is_multiple_of(50) {
        base * 40.0
    } else {
        base + 0.3
    };
    let at = end - ChronoDuration::milliseconds(((n - i) as i64 * 3_600_000) / n as i64);
    AccessLog {
        timestamp: at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        log_type: "access".into(),
        service: service.into(),
        method: method.into(),
        path,
        route: route.into(),
        query: if route == "/list/search" {
            format!("keyword=k{id}&page=1")
        } else {
            String::new()
        },
        status,
        bytes: 100 + h % 4000,
        duration_ms: (duration_ms * 1000.0).round() / 1000.0,
        request_id: format!("{:032x}", h as u128 * 31 + i as u128),
        user_agent: "Mozilla/5.0 (X11; Linux x86_64) campus-bench/1".into(),
    }
}

const META: KubernetesMeta<'static> = KubernetesMeta {
    namespace: "campus",
    pod: "content-api-5d9f7c6b4-x2x7q",
    container: "api",
    node: "kind-worker",
};

fn events(n: usize, end: DateTime<Utc>) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            let l = serde_json::to_string(&line(i, n, end)).unwrap();
            serde_json::to_vec(&filebeat_event(&l, end, &META)).unwrap()
        })
        .collect()
}

/// Produces `payloads` round-robin over the partitions: as fast as possible, or at `rate` per second.
async fn produce_all(
    brokers: &str,
    topic: &str,
    partitions: i32,
    payloads: &[Vec<u8>],
    rate: Option<usize>,
) {
    let kafka = KafkaArgs::new(brokers);
    Admin::new(&kafka)
        .unwrap()
        .ensure(&[TopicSpec::new(topic, partitions)])
        .await
        .unwrap();
    let mut cfg = kafka.client_config();
    cfg.set("linger.ms", "20")
        .set("batch.num.messages", "10000")
        .set("queue.buffering.max.messages", "200000")
        .set("compression.type", "lz4")
        .set("acks", "all");
    let producer: ThreadedProducer<rdkafka::producer::DefaultProducerContext> =
        cfg.create().unwrap();
    let started = Instant::now();
    for (i, p) in payloads.iter().enumerate() {
        if let Some(rate) = rate
            && i % 100 == 0
        {
            let due = started + Duration::from_secs_f64(i as f64 / rate as f64);
            tokio::time::sleep_until(due.into()).await;
        }
        let mut rec = BaseRecord::<(), [u8]>::to(topic)
            .payload(p.as_slice())
            .partition((i % partitions as usize) as i32);
        loop {
            match producer.send(rec) {
                Ok(()) => break,
                Err((_, r)) => {
                    rec = r;
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        }
    }
    producer.flush(Duration::from_secs(120)).unwrap();
}

fn documents(payloads: &[Vec<u8>], topic: &str, partitions: i32, prefix: &str) -> Vec<Document> {
    payloads
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let record = Record {
                topic: topic.into(),
                partition: (i % partitions as usize) as i32,
                offset: (i / partitions as usize) as i64,
                key: None,
                payload: Some(p.clone()),
                headers: vec![],
                timestamp_ms: None,
            };
            match document::decode(&record, prefix).unwrap() {
                Decoded::Index(d) => d,
                Decoded::Skip => unreachable!(),
            }
        })
        .collect()
}

fn es(url: &str) -> Es {
    Es::new(
        &SecretString::from(url.to_owned()),
        Duration::from_secs(120),
    )
    .unwrap()
}

async fn wait_count(es: &Es, target: &str, n: u64) -> (Duration, Option<(Instant, u64)>) {
    let start = Instant::now();
    let mut first = None;
    loop {
        // No explicit refresh (it slows the server down badly): documents become searchable
        // through the periodic refresh (1 s), the same for every run.
        let c = es.count(target).await.unwrap();
        if c > 0 && first.is_none() {
            first = Some((Instant::now(), c));
        }
        if c >= n {
            return (start.elapsed(), first);
        }
        tokio::time::sleep(Duration::from_millis(1000)).await;
    }
}

/// Bulk-loads `docs` with `streams` concurrent streams of `batch`-document requests.
async fn bulk_load(es: &Es, docs: Arc<Vec<Document>>, streams: usize, batch: usize) {
    let mut tasks = Vec::new();
    for s in 0..streams {
        let es = es.clone();
        let docs = docs.clone();
        tasks.push(tokio::spawn(async move {
            let mine: Vec<&Document> = docs.iter().skip(s).step_by(streams).collect();
            for chunk in mine.chunks(batch) {
                let mut body = Vec::new();
                document::write_bulk(&mut body, chunk.iter().copied());
                let items = es.bulk(body).await.unwrap();
                assert!(items.iter().all(|i| i.status == 201), "bulk item failed");
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

async fn raw_run(n: usize, partitions: i32, batch: usize) -> f64 {
    let (servers, payloads) = Servers::with_backlog(n, partitions).await;
    let es = es(&servers.es.url());
    campus_log::indexer::prepare(&es, "raw").await.unwrap();
    let docs = Arc::new(documents(&payloads, "bench.access-log", partitions, "raw"));
    drop(payloads);
    let started = Instant::now();
    // Observed exactly like the indexer run: `_count` every second from the start.
    tokio::join!(
        bulk_load(&es, docs, partitions as usize, batch),
        wait_count(&es, "raw", n as u64)
    );
    let secs = started.elapsed().as_secs_f64();
    let rate = n as f64 / secs;
    println!(
        "raw bulk:        {n} docs in {secs:.2} s = {rate:.0} docs/s ({partitions} streams × {batch}-doc bulks); OpenSearch RSS {} MiB",
        servers.es_rss_mib()
    );
    rate
}

/// The real `campus-log worker index` binary, its memory sampled every 20 ms.
struct Indexer {
    child: std::process::Child,
    ops_port: u16,
    sampler: std::thread::JoinHandle<u64>,
}

impl Indexer {
    fn start(servers: &Servers, batch: usize) -> Self {
        let ops_port = testing::free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_campus-log"))
            .args(["worker", "index"])
            .env_clear()
            .env("KAFKA_BROKERS", servers.kafka.brokers())
            .env("KAFKA_PREFIX", "bench")
            .env("ELASTICSEARCH_URL", servers.es.url())
            .env("LOG_INDEX_PREFIX", "idx")
            .env("INDEX_BATCH_SIZE", batch.to_string())
            .env("OPS_ADDR", format!("127.0.0.1:{ops_port}"))
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let pid = child.id();
        let sampler = std::thread::spawn(move || {
            let mut peak = 0;
            loop {
                let (rss, _) = memory_kib(pid);
                if rss == 0 {
                    return peak;
                }
                peak = peak.max(rss);
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        Self {
            child,
            ops_port,
            sampler,
        }
    }

    /// (VmRSS, VmHWM) now, in MiB.
    fn memory_mib(&self) -> (f64, f64) {
        let (rss, hwm) = memory_kib(self.child.id());
        (rss as f64 / 1024.0, hwm as f64 / 1024.0)
    }

    /// Bulk requests made and their mean duration in ms, from its /metrics.
    async fn bulks(&self) -> (f64, f64) {
        let metrics = reqwest::get(format!("http://127.0.0.1:{}/metrics", self.ops_port))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let sample = |name: &str| -> f64 {
            metrics
                .lines()
                .filter(|l| l.starts_with(name))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum()
        };
        let count = sample("campus_log_index_bulk_duration_seconds_count");
        let secs = sample("campus_log_index_bulk_duration_seconds_sum");
        (count, secs * 1000.0 / count.max(1.0))
    }

    /// SIGTERM (it commits and exits), then the sampled peak RSS in MiB.
    fn stop(mut self) -> f64 {
        testing::stop_child(&mut self.child);
        self.sampler.join().unwrap() as f64 / 1024.0
    }
}

/// N lines already waiting in Kafka (a backlog), then the indexer started and timed until all are
/// searchable: (lines/s from process start, lines/s after the first searchable batch, peak RSS MiB).
async fn indexer_run(n: usize, partitions: i32, batch: usize) -> (f64, f64, f64) {
    let (servers, payloads) = Servers::with_backlog(n, partitions).await;
    drop(payloads);
    let es = es(&servers.es.url());
    let indexer = Indexer::start(&servers, batch);
    let (total, first) = wait_count(&es, "idx", n as u64).await;
    let done = Instant::now();
    let (_, hwm) = indexer.memory_mib();
    let (bulks, ms_per_bulk) = indexer.bulks().await;
    let sampled = indexer.stop();
    println!(
        "                 {bulks} bulk requests, {:.0} lines per bulk, {ms_per_bulk:.1} ms per bulk",
        n as f64 / bulks.max(1.0),
    );
    let secs = total.as_secs_f64();
    let overall = n as f64 / secs;
    let (t0, c0) = first.unwrap();
    let steady = (n as u64 - c0) as f64 / done.duration_since(t0).as_secs_f64();
    println!(
        "native indexer:  {n} lines in {secs:.2} s from process start = {overall:.0} lines/s; \
         after the first searchable batch {steady:.0} lines/s; peak RSS {hwm:.1} MiB (VmHWM; sampled max {sampled:.1} MiB)"
    );
    (overall, steady, hwm)
}

/// The indexer running first, then N lines produced at a steady `rate` (lines/s), as a live
/// platform sees them (the backlog run shows memory while catching up; Kafka caps each fetch
/// response at fetch.max.bytes / max.partition.fetch.bytes).
async fn feed_run(n: usize, partitions: i32, batch: usize, rate: usize) {
    let servers = Servers::start().await;
    let brokers = servers.kafka.brokers();
    let kafka = KafkaArgs::new(brokers.clone());
    Admin::new(&kafka)
        .unwrap()
        .ensure(&[TopicSpec::new("bench.access-log", partitions)])
        .await
        .unwrap();
    let es = es(&servers.es.url());
    let indexer = Indexer::start(&servers, batch);
    let payloads = events(n, Utc::now());
    let started = Instant::now();
    tokio::join!(
        produce_all(
            &brokers,
            "bench.access-log",
            partitions,
            &payloads,
            Some(rate)
        ),
        wait_count(&es, "idx", n as u64),
    );
    let secs = started.elapsed().as_secs_f64();
    let (rss, hwm) = indexer.memory_mib();
    let sampled = indexer.stop();
    println!(
        "steady feed:     {n} lines produced at {rate} lines/s, all searchable after {secs:.1} s; \
         indexer peak RSS {hwm:.1} MiB (VmHWM; sampled max {sampled:.1} MiB), {rss:.1} MiB at the end"
    );
}

/// `runs` timed requests per query after a warm-up (3 requests, 1 when `runs` is under 10).
async fn stats_run(m: usize, runs: usize) {
    let runs = runs.max(1);
    let warm_up = if runs < 10 { 1 } else { 3 };
    let server = PrivateSearch::start().await;
    let es = es(&server.url());
    campus_log::indexer::prepare(&es, "stats").await.unwrap();
    let end = Utc::now();
    let load = Instant::now();
    let chunk = 50_000;
    for start in (0..m).step_by(chunk) {
        let docs: Vec<Document> = (start..(start + chunk).min(m))
            .map(|i| {
                let l = line(i, m, end);
                let at = DateTime::parse_from_rfc3339(&l.timestamp)
                    .unwrap()
                    .with_timezone(&Utc);
                Document {
                    index: logschema::index_for("stats", at),
                    id: format!("s-{i}"),
                    source: serde_json::to_vec(&l).unwrap(),
                    request_id: None,
                }
            })
            .collect();
        bulk_load(&es, Arc::new(docs), 2, 5000).await;
        eprintln!(
            "  loaded {} docs in {:.0} s, OpenSearch RSS {} MiB",
            (start + chunk).min(m),
            load.elapsed().as_secs_f64(),
            server.pid().map_or(0, |pid| memory_kib(pid).0) / 1024
        );
    }
    let (_, _) = wait_count(&es, "stats", m as u64).await;
    println!(
        "stats setup:     {m} docs loaded into OpenSearch in {:.1} s (RSS {} MiB)",
        load.elapsed().as_secs_f64(),
        server.pid().map_or(0, |pid| memory_kib(pid).0) / 1024
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let token = tokio_util::sync::CancellationToken::new();
    let app = campus_log::api::app(campus_log::api::AppState::new(es.clone(), "stats"));
    tokio::spawn(campus_common::http::serve_on(listener, app, token.clone()));
    let client = reqwest::Client::new();
    let secs = |t: DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let hour = end - ChronoDuration::hours(1) - ChronoDuration::seconds(1);
    let to = end + ChronoDuration::seconds(1);
    let quarter = end - ChronoDuration::minutes(15);
    let params = |from: DateTime<Utc>, service: Option<&str>, group_by: Option<&str>| StatsParams {
        from: Some(from),
        to: Some(to),
        service: service.map(str::to_owned),
        group_by: group_by.map(str::to_owned),
        top: None,
    };
    for (label, query, params) in [
        (
            "whole hour (all docs)",
            format!("from={}&to={}", secs(hour), secs(to)),
            params(hour, None, None),
        ),
        (
            "last 15 minutes",
            format!("from={}&to={}", secs(quarter), secs(to)),
            params(quarter, None, None),
        ),
        (
            "one service, per path",
            format!(
                "from={}&to={}&service=campus-coupon&group_by=path",
                secs(hour),
                secs(to)
            ),
            params(hour, Some("campus-coupon"), Some("path")),
        ),
    ] {
        // The API over HTTP, and the very Elasticsearch request it makes, straight to the server:
        // the difference is what the API adds.
        let url = format!("{base}/logs/stats?{query}");
        let plan = campus_log::api::query::stats_plan(&params, Utc::now()).unwrap();
        let (mut api, mut direct) = (Vec::new(), Vec::new());
        let mut total = 0;
        for i in 0..runs + warm_up {
            let t = Instant::now();
            let res = client.get(&url).send().await.unwrap();
            assert_eq!(res.status(), 200);
            let v: serde_json::Value = res.json().await.unwrap();
            let api_ms = t.elapsed().as_secs_f64() * 1000.0;
            let t = Instant::now();
            es.search("stats", &plan.body).await.unwrap();
            if i >= warm_up {
                api.push(api_ms);
                direct.push(t.elapsed().as_secs_f64() * 1000.0);
            }
            total = v["total"].as_u64().unwrap();
        }
        api.sort_by(f64::total_cmp);
        direct.sort_by(f64::total_cmp);
        println!(
            "stats latency:   {label}: {total} docs matched; over {runs} requests median {:.0} ms, max {:.0} ms \
             (the same aggregation straight to the server: median {:.0} ms)",
            api[api.len() / 2],
            api[api.len() - 1],
            direct[direct.len() / 2],
        );
    }
    token.cancel();
}

fn main() {
    let n = env_usize("BENCH_LINES", 200_000);
    let partitions = env_usize("BENCH_PARTITIONS", 2) as i32;
    let batch = env_usize("BENCH_BATCH", 1000);
    let m = env_usize("BENCH_STATS_DOCS", 1_000_000);
    let feed_lines = env_usize("BENCH_FEED_LINES", 60_000);
    let feed_rate = env_usize("BENCH_FEED_RATE", 2_000);
    let skip = std::env::var("BENCH_SKIP").unwrap_or_default();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        println!("log pipeline benchmark: {n} lines, {partitions} partitions, batch {batch}");
        let raw = if skip.contains("raw") { None } else { Some(raw_run(n, partitions, batch).await) };
        let indexer = if skip.contains("indexer") { None } else { Some(indexer_run(n, partitions, batch).await) };
        if let (Some(raw), Some((overall, steady, hwm))) = (raw, indexer) {
            println!(
                "ratio:           indexer/raw = {:.0}% (from process start), {:.0}% (steady); RSS {hwm:.1} MiB",
                overall / raw * 100.0,
                steady / raw * 100.0,
            );
        }
        if !skip.contains("feed") {
            feed_run(feed_lines, partitions, batch, feed_rate).await;
        }
        if !skip.contains("stats") {
            stats_run(m, env_usize("BENCH_STATS_RUNS", 10)).await;
        }
    });
}
