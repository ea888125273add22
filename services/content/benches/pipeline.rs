//! Benchmark of the whole content platform, each process the real binary:
//! create-to-visible latency (search, inbox, cache) at a steady write rate — one poller per read
//! model every 20 ms, asking for all the posts it has not seen yet at once, so the polling load does
//! not grow with the lag it measures — with each post's time per hop, detail requests/s on
//! cache hits with a keep-alive HTTP/1.1 load generator, and idle and loaded RSS of every process.
//!
//!   scripts/servers.sh start && cargo bench -p campus-content --bench pipeline
//!   (BENCH_RATE posts/s, default 20; BENCH_SECONDS, default 15; BENCH_CONNECTIONS, default 64;
//!   BENCH_TIMELINES=file.csv writes each post's timestamps per hop)

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::{HashMap, HashSet};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use campus_testkit::eventually;
use serde_json::json;
use support::{FakeOpenAi, Platform};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn free_addr() -> String {
    format!("127.0.0.1:{}", campus_testkit::free_port())
}

struct Proc {
    name: &'static str,
    child: Child,
    /// Where its `/metrics` is served (workers).
    ops: Option<String>,
}

impl Proc {
    fn spawn(name: &'static str, args: &[String], env: &[(&str, String)]) -> Self {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_campus-content"));
        cmd.args(&args[1..])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .env("RUST_LOG", "warn");
        if let Ok(props) = std::env::var("BENCH_KAFKA_PROPERTIES") {
            cmd.env("KAFKA_PROPERTIES", props);
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        Self {
            name,
            child: cmd.spawn().expect("binary starts"),
            ops: env
                .iter()
                .find(|(k, _)| *k == "OPS_ADDR")
                .map(|(_, v)| v.clone()),
        }
    }

    fn rss_kib(&self) -> u64 {
        campus_testkit::memory_kib(self.child.id()).0
    }
}

impl Proc {
    /// SIGTERM and wait (again: a no-op).
    fn stop(&mut self) {
        campus_testkit::stop_child(&mut self.child);
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
    }
}

fn report(name: &str, v: Vec<f64>) {
    let mut l = campus_testkit::Latencies::new();
    v.iter().for_each(|ms| l.record_ms(*ms));
    println!(
        "  {name:<8} n={:<4} p50={:>7.1} ms  p99={:>7.1} ms  max={:>7.1} ms",
        l.len(),
        l.ms(0.5),
        l.ms(0.99),
        l.max_ms()
    );
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// When one post passed each hop, in milliseconds since the epoch.
#[derive(Clone, Default)]
struct Timeline {
    /// The word of its title it is searched by.
    keyword: String,
    /// The bench sent `POST /posts`.
    sent: i64,
    /// The API answered 201 (the transaction with the outbox row committed).
    committed: i64,
    /// The timestamp of its record on `post.original` (the relay's produce).
    original: Option<i64>,
    /// The timestamp of its record on `post.inspected` (the inspector's produce).
    inspected: Option<i64>,
    /// First poll that found it.
    search: Option<i64>,
    inbox: Option<i64>,
    cache: Option<i64>,
}

/// How long a poller's checks took (the resolution of what it measures, on top of its 20 ms sleep).
#[derive(Default)]
struct Ticks {
    count: AtomicU64,
    micros: AtomicU64,
    max_micros: AtomicU64,
}

impl Ticks {
    fn add(&self, d: Duration) {
        let us = d.as_micros() as u64;
        self.count.fetch_add(1, Ordering::Relaxed);
        self.micros.fetch_add(us, Ordering::Relaxed);
        self.max_micros.fetch_max(us, Ordering::Relaxed);
    }

    fn describe(&self) -> String {
        let n = self.count.load(Ordering::Relaxed).max(1);
        format!(
            "{} checks, mean {:.1} ms, max {:.1} ms",
            self.count.load(Ordering::Relaxed),
            self.micros.load(Ordering::Relaxed) as f64 / n as f64 / 1000.0,
            self.max_micros.load(Ordering::Relaxed) as f64 / 1000.0
        )
    }
}

/// Polls Redis every 20 ms for the posts not yet cached (the worker's write, not the API's fill).
async fn poll_cache(
    book: Arc<Mutex<HashMap<u64, Timeline>>>,
    writing: Arc<AtomicBool>,
    mut redis: redis::aio::MultiplexedConnection,
    prefix: String,
    ticks: Arc<Ticks>,
) {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let waiting: Vec<u64> = book
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, t)| t.cache.is_none())
            .map(|(id, _)| *id)
            .collect();
        if waiting.is_empty() && !writing.load(Ordering::Relaxed) || Instant::now() > deadline {
            return;
        }
        if !waiting.is_empty() {
            let started = Instant::now();
            let mut pipe = redis::pipe();
            for id in &waiting {
                pipe.hexists(format!("{prefix}post:{id}"), "d");
            }
            // A slow answer on a loaded machine is a missed tick, not a failure.
            let Ok(found) = pipe.query_async::<Vec<bool>>(&mut redis).await else {
                continue;
            };
            let at = now_ms();
            ticks.add(started.elapsed());
            let mut book = book.lock().unwrap();
            for (id, f) in waiting.iter().zip(found) {
                if f {
                    book.get_mut(id).unwrap().cache = Some(at);
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Polls search every 20 ms for the posts not yet found, each by its own keyword, up to 25
/// keywords per request (the API allows 200 characters), oldest first.
async fn poll_search(
    book: Arc<Mutex<HashMap<u64, Timeline>>>,
    writing: Arc<AtomicBool>,
    p: Arc<Platform>,
    ticks: Arc<Ticks>,
) {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let mut waiting: Vec<(i64, u64, String)> = book
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, t)| t.search.is_none())
            .map(|(id, t)| (t.sent, *id, t.keyword.clone()))
            .collect();
        if waiting.is_empty() && !writing.load(Ordering::Relaxed) || Instant::now() > deadline {
            return;
        }
        waiting.sort();
        let started = Instant::now();
        for chunk in waiting.chunks(25) {
            let words: Vec<&str> = chunk.iter().map(|w| w.2.as_str()).collect();
            let found: HashSet<u64> = p.search_ids(&words.join("+")).await.into_iter().collect();
            let at = now_ms();
            let mut book = book.lock().unwrap();
            for (_, id, _) in chunk {
                if found.contains(id) {
                    book.get_mut(id).unwrap().search = Some(at);
                }
            }
        }
        if !waiting.is_empty() {
            ticks.add(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Polls the follower's inbox through the API every 20 ms, all pages, for the posts not yet in it.
async fn poll_inbox(
    book: Arc<Mutex<HashMap<u64, Timeline>>>,
    writing: Arc<AtomicBool>,
    p: Arc<Platform>,
    follower: u64,
    ticks: Arc<Ticks>,
) {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let waiting = book.lock().unwrap().values().any(|t| t.inbox.is_none());
        if !waiting && !writing.load(Ordering::Relaxed) || Instant::now() > deadline {
            return;
        }
        if waiting {
            // Newest first: pages past the oldest post still waiting cannot hold one.
            let oldest_waiting = book
                .lock()
                .unwrap()
                .iter()
                .filter(|(_, t)| t.inbox.is_none())
                .map(|(id, _)| *id)
                .min()
                .unwrap_or(0);
            let started = Instant::now();
            let mut listed = HashSet::new();
            for page in 0.. {
                let (s, v) = p
                    .get(&format!("/list/inbox/{follower}?size=100&page={page}"))
                    .await;
                assert_eq!(s, 200, "{v}");
                let ids = support::ids(&v);
                listed.extend(ids.iter().copied());
                if ids.len() < 100 || ids.iter().min().is_some_and(|m| *m < oldest_waiting) {
                    break;
                }
            }
            ticks.add(started.elapsed());
            let at = now_ms();
            let mut book = book.lock().unwrap();
            for (id, t) in book.iter_mut() {
                if t.inbox.is_none() && listed.contains(id) {
                    t.inbox = Some(at);
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A worker's handler calls and the seconds they took, from its `/metrics`.
async fn handle_metrics(http: &reqwest::Client, addr: &str) -> (f64, f64) {
    let Ok(res) = http.get(format!("http://{addr}/metrics")).send().await else {
        return (0.0, 0.0);
    };
    let text = res.text().await.unwrap_or_default();
    let value = |name: &str| {
        text.lines()
            .filter(|l| l.starts_with(name))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>()
    };
    (
        value("campus_consumer_handle_duration_seconds_count"),
        value("campus_consumer_handle_duration_seconds_sum"),
    )
}

fn main() {
    // `cargo bench` passes `--bench`; test runners listing or running all targets (`--list`,
    // `cargo test --all-targets`) do not, and must not start a benchmark.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(run());
}

async fn run() {
    let rate = env_or("BENCH_RATE", 20);
    let seconds = env_or("BENCH_SECONDS", 15);
    let connections = env_or("BENCH_CONNECTIONS", 64);
    let fake = FakeOpenAi::start().await;
    let mut p = Platform::new().await;
    let http_addr = free_addr();
    p.base = format!("http://{http_addr}");
    let mut procs = vec![Proc::spawn(
        "api",
        &p.api_args(),
        &[("HTTP_ADDR", http_addr.clone())],
    )];
    for (name, w) in [
        ("inspect", "inspect"),
        ("cache", "cache"),
        ("inbox", "inbox"),
        ("index", "index"),
    ] {
        let mut args = p.worker_args(w, Some(&fake.url));
        let ops = free_addr();
        if let Some(i) = args.iter().position(|a| a == "--ops-addr") {
            args[i + 1] = ops.clone();
        }
        procs.push(Proc::spawn(name, &args, &[("OPS_ADDR", ops)]));
    }
    eventually("API ready", Duration::from_secs(60), || async {
        p.http
            .get(format!("{}/readyz", p.base))
            .send()
            .await
            .ok()
            .filter(|r| r.status() == 200)
            .map(|_| ())
    })
    .await;
    p.wait_search_ready().await;
    let author = p.create_user("author").await;
    let follower = p.create_user("follower").await;
    let (s, _) = p
        .post(
            "/follows",
            json!({"followerId": follower, "followeeId": author}),
        )
        .await;
    assert_eq!(s, 201);
    tokio::time::sleep(Duration::from_secs(3)).await;
    println!("idle RSS (KiB):");
    for pr in &procs {
        println!("  {:<8} {}", pr.name, pr.rss_kib());
    }

    // 1. Create-to-visible latency at a steady rate, with a timestamp per hop.
    let total = rate * seconds;
    println!(
        "create-to-visible at {rate} posts/s for {seconds} s ({total} posts), polling every 20 ms:"
    );
    let p = Arc::new(p);
    let redis = redis::Client::open(campus_testkit::redis_url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let book = Arc::new(Mutex::new(HashMap::<u64, Timeline>::new()));
    let writing = Arc::new(AtomicBool::new(true));
    let ticks: [Arc<Ticks>; 3] = Default::default();
    let cache_poller = tokio::spawn(poll_cache(
        book.clone(),
        writing.clone(),
        redis,
        p.redis_prefix.clone(),
        ticks[2].clone(),
    ));
    let search_poller = tokio::spawn(poll_search(
        book.clone(),
        writing.clone(),
        p.clone(),
        ticks[0].clone(),
    ));
    let inbox_poller = tokio::spawn(poll_inbox(
        book.clone(),
        writing.clone(),
        p.clone(),
        follower,
        ticks[1].clone(),
    ));
    let mut tasks = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / rate));
    for j in 0..total {
        tick.tick().await;
        let (p, book) = (p.clone(), book.clone());
        tasks.push(tokio::spawn(async move {
            let title = format!("bench kw{j}z");
            let sent = now_ms();
            let v = p.create_post(author, 2, &title, "steady write rate").await;
            let id = v["id"].as_u64().unwrap();
            let committed = now_ms();
            book.lock().unwrap().insert(
                id,
                Timeline {
                    keyword: format!("kw{j}z"),
                    sent,
                    committed,
                    ..Timeline::default()
                },
            );
        }));
    }
    let mut peak = vec![0u64; procs.len()];
    for t in tasks {
        t.await.unwrap();
        for (i, pr) in procs.iter().enumerate() {
            peak[i] = peak[i].max(pr.rss_kib());
        }
    }
    writing.store(false, Ordering::Relaxed);
    loop {
        for (i, pr) in procs.iter().enumerate() {
            peak[i] = peak[i].max(pr.rss_kib());
        }
        if cache_poller.is_finished() && inbox_poller.is_finished() && search_poller.is_finished() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Record timestamps, read once the run is over, so no extra consumer shares the machine with
    // the run being measured.
    let stamps = |records: Vec<campus_common::kafka::Record>| {
        let mut m = HashMap::new();
        for r in records {
            if let (Some(id), Some(ts)) = (
                r.key_str().and_then(|k| k.parse::<u64>().ok()),
                r.timestamp_ms,
            ) {
                m.entry(id).or_insert(ts);
            }
        }
        m
    };
    let want = total as usize;
    let original = stamps(
        campus_testkit::read_topic(&p.topic("post.original"), want, Duration::from_secs(20)).await,
    );
    let inspected = stamps(
        campus_testkit::read_topic(&p.topic("post.inspected"), want, Duration::from_secs(20)).await,
    );
    let timelines: Vec<Timeline> = book
        .lock()
        .unwrap()
        .iter()
        .map(|(id, t)| Timeline {
            original: original.get(id).copied(),
            inspected: inspected.get(id).copied(),
            ..t.clone()
        })
        .collect();
    let since = |from: fn(&Timeline) -> Option<i64>, to: fn(&Timeline) -> Option<i64>| {
        timelines
            .iter()
            .filter_map(|t| Some((to(t)? - from(t)?) as f64))
            .collect::<Vec<f64>>()
    };
    let sent = |t: &Timeline| Some(t.sent);
    report("search", since(sent, |t| t.search));
    report("inbox", since(sent, |t| t.inbox));
    report("cache", since(sent, |t| t.cache));
    let missing = timelines
        .iter()
        .filter(|t| t.search.is_none() || t.inbox.is_none() || t.cache.is_none())
        .count();
    println!("  not visible within 300 s: {missing}");
    for (name, t) in ["search", "inbox", "cache"].iter().zip(&ticks) {
        println!("  {name} poller: {}", t.describe());
    }
    println!("per hop (record timestamps; visible = first poll that saw it):");
    report("api", since(sent, |t| Some(t.committed)));
    report("relay", since(|t| Some(t.committed), |t| t.original));
    report("inspect", since(|t| t.original, |t| t.inspected));
    report("index", since(|t| t.inspected, |t| t.search));
    report("inbox", since(|t| t.inspected, |t| t.inbox));
    report("cache", since(|t| t.inspected, |t| t.cache));
    println!("  (api: POST until 201; relay: commit to the post.original record's timestamp;");
    println!(
        "   inspect: post.original to post.inspected timestamps; index and inbox: post.inspected"
    );
    println!(
        "   timestamp to visible through the API; cache: post.inspected timestamp to the key in Redis)"
    );
    if let Ok(path) = std::env::var("BENCH_TIMELINES") {
        let mut csv = String::from("sent,committed,original,inspected,search,inbox,cache\n");
        let mut sorted = timelines.clone();
        sorted.sort_by_key(|t| t.sent);
        let o = |v: Option<i64>| v.map(|v| v.to_string()).unwrap_or_default();
        for t in &sorted {
            csv.push_str(&format!(
                "{},{},{},{},{},{},{}\n",
                t.sent,
                t.committed,
                o(t.original),
                o(t.inspected),
                o(t.search),
                o(t.inbox),
                o(t.cache)
            ));
        }
        std::fs::write(&path, csv).unwrap();
        println!("  timelines written to {path}");
    }
    // The API's own view of POST /posts, to tell a slow API from a slow client or machine.
    if let Ok(res) = p.http.get(format!("{}/metrics", p.base)).send().await {
        let text = res.text().await.unwrap_or_default();
        let bucket = |le: &str| {
            text.lines()
                .filter(|l| {
                    l.starts_with("campus_http_request_duration_seconds_bucket")
                        && l.contains("method=\"POST\"")
                        && l.contains("route=\"/posts\"")
                        && l.contains(&format!("le=\"{le}\""))
                })
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum::<f64>()
        };
        println!(
            "POST /posts as the API timed it: {} requests, {} over 16 ms, {} over 128 ms, {} over 512 ms",
            bucket("+Inf"),
            bucket("+Inf") - bucket("0.016"),
            bucket("+Inf") - bucket("0.128"),
            bucket("+Inf") - bucket("0.512"),
        );
    }
    println!("handler calls (consumer_handle_duration_seconds):");
    for pr in &procs[1..] {
        if let Some(addr) = &pr.ops {
            let (calls, secs) = handle_metrics(&p.http, addr).await;
            println!(
                "  {:<8} {calls:>5} calls, mean {:>6.1} ms",
                pr.name,
                if calls > 0.0 {
                    secs * 1000.0 / calls
                } else {
                    f64::NAN
                }
            );
        }
    }
    // 2. Detail on cache hits with a keep-alive load generator, the workers idle beside it as in a
    // running platform (Kafka holds their empty fetches).
    let ids: Vec<u64> = book.lock().unwrap().keys().copied().collect();
    for id in &ids {
        assert_eq!(p.detail(*id).await.2, "hit");
    }
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let ids = Arc::new(ids);
    let mut gens = Vec::new();
    for c in 0..connections {
        let (stop, done, errors, ids, addr) = (
            stop.clone(),
            done.clone(),
            errors.clone(),
            ids.clone(),
            http_addr.clone(),
        );
        gens.push(tokio::spawn(async move {
            let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
            s.set_nodelay(true).unwrap();
            let mut buf = vec![0u8; 64 * 1024];
            let mut i = c as usize;
            while !stop.load(Ordering::Relaxed) {
                let id = ids[i % ids.len()];
                i += 7;
                let req = format!("GET /posts/{id}/detail HTTP/1.1\r\nHost: bench\r\n\r\n");
                s.write_all(req.as_bytes()).await.unwrap();
                // Read one response: headers, then content-length bytes.
                let mut have = 0;
                loop {
                    let n = s.read(&mut buf[have..]).await.unwrap();
                    assert!(n > 0, "connection closed");
                    have += n;
                    if let Some(end) = buf[..have].windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = std::str::from_utf8(&buf[..end])
                            .unwrap()
                            .to_ascii_lowercase();
                        let len: usize = head
                            .lines()
                            .find_map(|l| {
                                l.strip_prefix("content-length:")
                                    .map(|v| v.trim().parse().unwrap())
                            })
                            .unwrap_or(0);
                        while have < end + 4 + len {
                            have += s.read(&mut buf[have..]).await.unwrap();
                        }
                        if !head.starts_with("http/1.1 200") || !head.contains("x-cache: hit") {
                            errors.fetch_add(1, Ordering::Relaxed);
                        }
                        break;
                    }
                }
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let load_secs = 10;
    let start = Instant::now();
    tokio::time::sleep(Duration::from_secs(2)).await; // warm-up
    let warm = done.load(Ordering::Relaxed);
    let measured_from = Instant::now();
    let mut api_peak = 0;
    while measured_from.elapsed() < Duration::from_secs(load_secs) {
        tokio::time::sleep(Duration::from_millis(500)).await;
        api_peak = api_peak.max(procs[0].rss_kib());
    }
    let n = done.load(Ordering::Relaxed) - warm;
    let elapsed = measured_from.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for g in gens {
        let _ = g.await;
    }
    peak[0] = peak[0].max(api_peak);
    println!(
        "detail on cache hits: {connections} keep-alive connections, {load_secs} s after {:.0} s warm-up: {:.0} requests/s ({} non-hit or non-200)",
        (measured_from - start).as_secs_f64(),
        n as f64 / elapsed,
        errors.load(Ordering::Relaxed)
    );
    println!("loaded RSS, peak (KiB):");
    for (pr, kib) in procs.iter().zip(&peak) {
        println!("  {:<8} {}", pr.name, kib);
    }
}
