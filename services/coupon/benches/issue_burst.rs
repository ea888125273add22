//! The issue path under a burst, against the real local servers (scripts/servers.sh start):
//!
//! (a) the issue Lua script straight against Redis (the API's own client code, same concurrency);
//! (b) `POST /coupons` of the real `campus-coupon api` binary (release build, access log to
//!     /dev/null) with `campus-coupon worker issue` storing the coupons, driven by a minimal
//!     keep-alive HTTP/1.1 load generator in this process;
//!
//! then prints both rates, b/a, the endpoint's p50/p99/p999 latency, and checks that exactly the
//! limit was issued (201 answers, MySQL rows after the worker drained, Redis count).
//!
//! `cargo bench -p campus-coupon --bench issue_burst`
//! Knobs: BENCH_REQUESTS (100000), BENCH_USERS (40000), BENCH_LIMIT (10000), BENCH_CONCURRENCY (64).

use std::collections::HashSet;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use campus_common::config::RedisArgs;
use campus_coupon::store::{CouponStore, Decision, EventWindow};
use campus_testkit::{self as testing, Latencies};
use chrono::Utc;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use uuid::Uuid;

fn knob(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The users of a burst: `requests` tries over `users` users, shuffled (fixed seed per run size).
fn plan(users: usize, requests: usize) -> Vec<i64> {
    use rand::seq::SliceRandom;
    let mut p: Vec<i64> = (0..requests).map(|i| 1 + (i % users) as i64).collect();
    p.shuffle(&mut rand::rng());
    p
}

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        testing::stop_child(&mut self.0);
    }
}

fn spawn(args: &[&str], env: &[(&str, String)]) -> Proc {
    let mut c = Command::new(env!("CARGO_BIN_EXE_campus-coupon"));
    c.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    for (k, v) in env {
        c.env(k, v);
    }
    Proc(c.spawn().expect("start campus-coupon"))
}

/// One keep-alive HTTP/1.1 connection that POSTs JSON and reads status + body.
struct Conn {
    stream: BufReader<TcpStream>,
    line: String,
    body: Vec<u8>,
}

impl Conn {
    async fn open(addr: &str) -> Self {
        let s = TcpStream::connect(addr).await.expect("connect");
        s.set_nodelay(true).unwrap();
        Self {
            stream: BufReader::new(s),
            line: String::new(),
            body: Vec::new(),
        }
    }

    async fn post(&mut self, path: &str, json: &str) -> u16 {
        let req = format!(
            "POST {path} HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{json}",
            json.len()
        );
        self.stream
            .get_mut()
            .write_all(req.as_bytes())
            .await
            .expect("write");
        self.line.clear();
        self.stream
            .read_line(&mut self.line)
            .await
            .expect("status line");
        let status: u16 = self
            .line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("status");
        let mut len = 0usize;
        loop {
            self.line.clear();
            self.stream.read_line(&mut self.line).await.expect("header");
            let l = self.line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':')
                && k.eq_ignore_ascii_case("content-length")
            {
                len = v.trim().parse().expect("content-length");
            }
        }
        self.body.resize(len, 0);
        self.stream.read_exact(&mut self.body).await.expect("body");
        status
    }
}

async fn raw_script_rate(
    store: &CouponStore,
    event: i64,
    users: &[i64],
    concurrency: usize,
) -> (f64, usize) {
    let users = Arc::new(users.to_vec());
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (store, users, next) = (store.clone(), users.clone(), next.clone());
        tasks.spawn(async move {
            let mut issued = 0;
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(&user) = users.get(i) else { break };
                let d = store
                    .decide(event, user, &Uuid::now_v7(), None)
                    .await
                    .expect("script");
                if matches!(d, Decision::Issued { .. }) {
                    issued += 1;
                }
            }
            issued
        });
    }
    let issued: usize = tasks.join_all().await.into_iter().sum();
    (users.len() as f64 / started.elapsed().as_secs_f64(), issued)
}

/// The same script through `redis-benchmark` (C client, one connection per client, no
/// pipelining), for reference, when it is installed.
async fn redis_benchmark(
    redis: &mut redis::aio::MultiplexedConnection,
    store: &CouponStore,
    event: i64,
    requests: usize,
    users: usize,
    concurrency: usize,
) -> Option<f64> {
    let sha: String = redis::cmd("SCRIPT")
        .arg("LOAD")
        .arg(include_str!("../src/lua/issue.lua"))
        .query_async(redis)
        .await
        .ok()?;
    let keys = store.keys();
    let out = Command::new("redis-benchmark")
        .args(["-h", "127.0.0.1", "-p", &redis_port()])
        .args(["-c", &concurrency.to_string(), "-n", &requests.to_string()])
        .args(["-r", &users.to_string(), "--csv", "EVALSHA", &sha, "2"])
        .args([keys.meta(event), keys.holders(event)])
        .args(["__rand_int__", "req", "600000"])
        .output()
        .ok()?;
    let csv = String::from_utf8_lossy(&out.stdout);
    let row = csv.lines().nth(1)?;
    row.split("\",\"").nth(1)?.trim_matches('"').parse().ok()
}

/// The Redis server's process id (`INFO server`), for its CPU time; 0 when not found.
async fn redis_pid(redis: &mut redis::aio::MultiplexedConnection) -> u32 {
    let info: String = redis::cmd("INFO")
        .arg("server")
        .query_async(redis)
        .await
        .unwrap_or_default();
    info.lines()
        .find_map(|l| l.strip_prefix("process_id:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

fn redis_port() -> String {
    testing::redis_url()
        .rsplit(':')
        .next()
        .unwrap_or("6379")
        .trim_end_matches('/')
        .to_owned()
}

async fn http_burst(
    addr: &str,
    event: i64,
    users: &[i64],
    concurrency: usize,
) -> (f64, Latencies, Vec<(i64, u16)>) {
    let users = Arc::new(users.to_vec());
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut conns = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        conns.push(Conn::open(addr).await);
    }
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for mut conn in conns {
        let (users, next) = (users.clone(), next.clone());
        tasks.spawn(async move {
            let mut lat = Vec::new();
            let mut answers = Vec::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(&user) = users.get(i) else { break };
                let body = format!(r#"{{"userId":{user},"couponEventId":{event}}}"#);
                let t = Instant::now();
                let status = conn.post("/coupons", &body).await;
                lat.push(t.elapsed());
                answers.push((user, status));
            }
            (lat, answers)
        });
    }
    let mut lat = Latencies::new();
    let mut answers = Vec::with_capacity(users.len());
    for (l, a) in tasks.join_all().await {
        lat.extend(l);
        answers.extend(a);
    }
    let rate = users.len() as f64 / started.elapsed().as_secs_f64();
    (rate, lat, answers)
}

/// A coupon event through the admin listener at `admin`.
async fn create_event(admin: &str, limit: usize) -> i64 {
    let now = Utc::now();
    let body = serde_json::json!({
        "name": "bench", "limit": limit,
        "startsAt": now - chrono::Duration::minutes(1), "endsAt": now + chrono::Duration::hours(1),
        "couponValidSeconds": 3600
    });
    let res = reqwest::Client::new()
        .post(format!("http://{admin}/admin/coupon-events"))
        .json(&body)
        .send()
        .await
        .expect("create event");
    assert_eq!(res.status(), 201);
    let v: serde_json::Value = res.json().await.unwrap();
    v["id"].as_i64().unwrap()
}

async fn run() {
    let requests = knob("BENCH_REQUESTS", 100_000);
    let users = knob("BENCH_USERS", 40_000);
    let limit = knob("BENCH_LIMIT", 10_000);
    let concurrency = knob("BENCH_CONCURRENCY", 64);

    let (mysql_url, pool) = testing::fresh_mysql().await;
    let (prefix, mut redis) = testing::fresh_redis().await;
    let kafka_prefix = testing::unique("bench");
    let http_port = testing::free_port();
    let addr = format!("127.0.0.1:{http_port}");
    // Coupon events are created on the admin listener (never the public port).
    let admin = format!("127.0.0.1:{}", testing::free_port());
    let env = vec![
        ("MYSQL_URL", mysql_url.clone()),
        ("REDIS_URL", testing::redis_url()),
        ("REDIS_KEY_PREFIX", prefix.clone()),
        ("KAFKA_BROKERS", testing::kafka_brokers()),
        ("KAFKA_PREFIX", kafka_prefix.clone()),
        ("HTTP_ADDR", addr.clone()),
        ("ADMIN_ADDR", admin.clone()),
        ("OPS_ADDR", format!("127.0.0.1:{}", testing::free_port())),
        ("COUPON_KEY_RETENTION_SECS", "600".into()),
        ("RUST_LOG", "warn".into()),
    ];
    let api = spawn(&["api"], &env);
    let ready = Instant::now();
    loop {
        if let Ok(r) = reqwest::get(format!("http://{addr}/readyz")).await
            && r.status() == 200
        {
            break;
        }
        assert!(
            ready.elapsed() < Duration::from_secs(60),
            "the API did not become ready"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _worker = spawn(&["worker", "issue"], &env);

    // (a) The same script straight against Redis, same concurrency, same user sequence.
    let store = CouponStore::connect(
        &RedisArgs::new(&testing::redis_url(), format!("{prefix}raw:")),
        Duration::from_secs(600),
    )
    .await
    .expect("redis");
    let window = EventWindow {
        limit: limit as i64,
        starts_at: Utc::now() - chrono::Duration::minutes(1),
        ends_at: Utc::now() + chrono::Duration::hours(1),
    };
    let burst = plan(users, requests);
    store.put_window(1, &window).await.unwrap();
    store.put_window(2, &window).await.unwrap();
    raw_script_rate(&store, 1, &burst[..requests / 10], concurrency).await; // warm-up
    let redis_pid = redis_pid(&mut redis).await;
    let cpu = testing::cpu_seconds;
    let me = std::process::id();
    let before_a = (cpu(me), cpu(redis_pid));
    let (raw_rate, raw_issued) = raw_script_rate(&store, 2, &burst, concurrency).await;
    let cpu_a = (cpu(me) - before_a.0, cpu(redis_pid) - before_a.1);
    store.put_window(3, &window).await.unwrap();
    let reference = redis_benchmark(&mut redis, &store, 3, requests, users, concurrency).await;

    // (b) The endpoint, same concurrency, same user sequence, on a fresh event.
    let warm = create_event(&admin, limit).await;
    http_burst(&addr, warm, &burst[..requests / 10], concurrency).await; // warm-up
    let event = create_event(&admin, limit).await;
    let api_pid = api.0.id();
    let before_b = (cpu(me), cpu(api_pid), cpu(redis_pid));
    let (api_rate, lat, answers) = http_burst(&addr, event, &burst, concurrency).await;
    let cpu_b = (
        cpu(me) - before_b.0,
        cpu(api_pid) - before_b.1,
        cpu(redis_pid) - before_b.2,
    );

    let issued: Vec<i64> = answers.iter().filter(|a| a.1 == 201).map(|a| a.0).collect();
    let other: usize = answers
        .iter()
        .filter(|a| !matches!(a.1, 201 | 409 | 410))
        .count();
    let distinct: HashSet<i64> = issued.iter().copied().collect();
    // Zero over-issue: wait for the worker, then compare MySQL and Redis with the limit.
    let drained = Instant::now();
    let (rows, row_users) = loop {
        let (rows, row_users): (i64, i64) = sqlx::query_as(
            "SELECT COUNT(*), COUNT(DISTINCT user_id) FROM coupons WHERE coupon_event_id = ?",
        )
        .bind(event)
        .fetch_one(&pool)
        .await
        .unwrap();
        if rows >= issued.len() as i64 || drained.elapsed() > Duration::from_secs(120) {
            break (rows, row_users);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let redis_count: i64 = redis::cmd("HLEN")
        .arg(format!("{prefix}coupon:{{ev:{event}}}:holders"))
        .query_async(&mut redis)
        .await
        .unwrap();

    println!(
        "coupon issue burst: {requests} requests, {users} users, limit {limit}, concurrency {concurrency}"
    );
    println!(
        "(a) issue Lua script straight against Redis: {raw_rate:>9.0} calls/s (issued {raw_issued})"
    );
    println!(
        "(b) POST /coupons (API + Kafka ack):          {api_rate:>9.0} req/s  p50 {:.2} ms  p99 {:.2} ms  p999 {:.2} ms  max {:.2} ms",
        lat.ms(0.50),
        lat.ms(0.99),
        lat.ms(0.999),
        lat.max_ms()
    );
    if let Some(r) = reference {
        println!(
            "    reference: redis-benchmark, same script:  {r:>9.0} calls/s (b/that = {:.3})",
            api_rate / r
        );
    }
    println!("b/a = {:.3}", api_rate / raw_rate);
    // CPU per call (µs), from /proc: where the difference goes on a machine whose cores all of
    // them share.
    let per = |secs: f64| secs / requests as f64 * 1e6;
    println!(
        "CPU per call: (a) bench client {:.1} µs + Redis {:.1} µs = {:.1} µs; (b) load generator {:.1} µs + API {:.1} µs + Redis {:.1} µs = {:.1} µs",
        per(cpu_a.0),
        per(cpu_a.1),
        per(cpu_a.0 + cpu_a.1),
        per(cpu_b.0),
        per(cpu_b.1),
        per(cpu_b.2),
        per(cpu_b.0 + cpu_b.1 + cpu_b.2)
    );
    println!(
        "answers: 201 x {} ({} distinct users), 409/410 x {}, other x {other}",
        issued.len(),
        distinct.len(),
        answers.len() - issued.len() - other
    );
    println!(
        "after the worker drained ({:.1} s): MySQL {rows} coupons of {row_users} users, Redis count {redis_count}",
        drained.elapsed().as_secs_f64()
    );
    let exact = issued.len() == limit
        && distinct.len() == limit
        && rows == limit as i64
        && row_users == limit as i64
        && redis_count == limit as i64
        && other == 0;
    println!(
        "over-issue: {}",
        if exact && raw_issued == limit {
            "none (exactly the limit everywhere)"
        } else {
            "CHECK FAILED"
        }
    );
    if !exact {
        std::process::exit(1);
    }
}

fn main() {
    // `cargo bench` passes `--bench`; nothing to filter.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run());
}
