//! End to end, on the real local servers: real requests against the Campus APIs (the real
//! `campus-content api`, `campus-coupon api` and `campus-log api` binaries) → their stdout lines →
//! Kafka, in the event shape Filebeat produces → the native indexer → Elasticsearch (the shared
//! OpenSearch node) → the log API's counts and percentiles, which must match the request mix.
//!
//! ## What Filebeat would put on the topic
//! Filebeat 8 (`filestream` input with the `container` parser, `add_kubernetes_metadata`, Kafka
//! output with the JSON codec) publishes ONE event per container stdout line:
//! ```json
//! {"@timestamp": "<when Filebeat read the line>",
//!  "message": "<the line exactly as the service wrote it, without the newline>",
//!  "stream": "stdout", "input": {"type": "filestream"}, "ecs": {…}, "agent": {…}, "host": {…},
//!  "log": {"offset": …, "file": {"path": "/var/log/containers/<pod>_<ns>_<container>-<id>.log"}},
//!  "container": {…},
//!  "kubernetes": {"namespace": "…", "pod": {"name": "…", "uid": "…"}, "container": {"name": "…"},
//!                 "node": {"name": "…"}, "labels": {…}}}
//! ```
//! `campus_common::logschema::filebeat_event` builds exactly this; every stdout line of the
//! services is fed (their own JSON log lines too, as Filebeat ships them unless told otherwise),
//! plus one line that is not JSON.

mod support;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use campus_common::http::AccessLog;
use campus_common::logschema::{self, KubernetesMeta, filebeat_event};
use campus_testkit::{self as testing, eventually};
use serde_json::{Value, json};
use support::*;

/// A service binary running as a child process, its stdout collected line by line.
struct Service {
    name: &'static str,
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    base: String,
    /// The admin listener, for a service that has one (`admin listening`).
    admin: Option<String>,
}

impl Service {
    async fn start(name: &'static str, bin: PathBuf, env: Vec<(&str, String)>) -> Service {
        let mut child = Command::new(&bin)
            .arg("api")
            .env_clear()
            .envs(env)
            .env("HTTP_ADDR", "127.0.0.1:0")
            .env("ADMIN_ADDR", "127.0.0.1:0")
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", bin.display()));
        let lines = Arc::new(Mutex::new(Vec::new()));
        let out = child.stdout.take().unwrap();
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        // `serve` logs `{"addr": "127.0.0.1:PORT", "message": "listening"}` once bound.
        let addr = eventually(
            &format!("{name} to listen"),
            Duration::from_secs(120),
            || {
                let lines = lines.clone();
                async move {
                    lines.lock().unwrap().iter().find_map(|l| {
                        let v: Value = serde_json::from_str(l).ok()?;
                        (v["message"] == "listening")
                            .then(|| v["addr"].as_str().map(str::to_owned))?
                    })
                }
            },
        )
        .await;
        let admin = lines.lock().unwrap().iter().find_map(|l| {
            let v: Value = serde_json::from_str(l).ok()?;
            (v["message"] == "admin listening")
                .then(|| v["addr"].as_str().map(|a| format!("http://{a}")))?
        });
        Service {
            name,
            child,
            lines,
            base: format!("http://{addr}"),
            admin,
        }
    }

    fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    fn access_lines(&self) -> Vec<AccessLog> {
        self.lines()
            .iter()
            .filter(|l| l.contains(r#""log_type":"access""#))
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        testing::stop_child(&mut self.child);
    }
}

/// Sends requests and records the status each one got, by route (the client's view of the mix).
#[derive(Default)]
struct Mix {
    client: reqwest::Client,
    statuses: Vec<(String, u16)>,
}

impl Mix {
    async fn send(&mut self, req: reqwest::RequestBuilder, route: &str) -> (u16, Value) {
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        let body = res.json::<Value>().await.unwrap_or(Value::Null);
        self.statuses.push((route.to_owned(), status));
        (status, body)
    }
    async fn get(&mut self, url: String, route: &str) -> (u16, Value) {
        let req = self.client.get(url).header("user-agent", "campus-e2e/1");
        self.send(req, route).await
    }
    async fn post(&mut self, url: String, body: Value, route: &str) -> (u16, Value) {
        let req = self
            .client
            .post(url)
            .json(&body)
            .header("user-agent", "campus-e2e/1");
        self.send(req, route).await
    }
}

fn class_counts(statuses: impl Iterator<Item = u16>) -> [u64; 5] {
    let mut out = [0; 5];
    for s in statuses {
        out[(s / 100 - 1) as usize] += 1;
    }
    out
}

#[tokio::test]
async fn real_requests_flow_through_kafka_and_the_indexer_into_the_log_api() {
    let es_url = testing::es_url();
    let es = es(&es_url);
    let prefix = fresh_prefix();
    let kafka_prefix = testing::unique("e2e").replace('_', "-");
    let (mysql_content, _) = testing::fresh_mysql().await;
    let (mysql_coupon, _) = testing::fresh_mysql().await;
    let common_env = |extra: Vec<(&'static str, String)>| {
        let mut env = vec![
            ("KAFKA_BROKERS", testing::kafka_brokers()),
            ("KAFKA_PREFIX", kafka_prefix.clone()),
        ];
        env.extend(extra);
        env
    };
    let (content_bin, coupon_bin) = (
        testing::sibling_binary(env!("CARGO_BIN_EXE_campus-log"), "campus-content"),
        testing::sibling_binary(env!("CARGO_BIN_EXE_campus-log"), "campus-coupon"),
    );

    // The three APIs, as their Deployments run them.
    let content = Service::start(
        "campus-content",
        content_bin,
        common_env(vec![
            ("MYSQL_URL", mysql_content),
            ("REDIS_URL", testing::redis_url()),
            ("REDIS_KEY_PREFIX", format!("{}:", testing::unique("e2e"))),
            ("MONGO_URL", testing::mongo_url()),
            ("MONGO_DATABASE", testing::unique("e2e")),
            ("ELASTICSEARCH_URL", testing::es_url()),
            ("ES_INDEX_ALIAS", testing::fresh_index("e2e-posts")),
            ("ES_INDEX_NAME", testing::fresh_index("e2e-posts-v1")),
        ]),
    )
    .await;
    let coupon = Service::start(
        "campus-coupon",
        coupon_bin,
        common_env(vec![
            ("MYSQL_URL", mysql_coupon),
            ("REDIS_URL", testing::redis_url()),
            ("REDIS_KEY_PREFIX", format!("{}:", testing::unique("e2e"))),
            ("COUPON_REQUEST_PARTITIONS", "1".into()),
        ]),
    )
    .await;
    let log = Service::start(
        "campus-log",
        PathBuf::from(env!("CARGO_BIN_EXE_campus-log")),
        vec![
            ("ELASTICSEARCH_URL", es_url.clone()),
            ("LOG_INDEX_PREFIX", prefix.clone()),
        ],
    )
    .await;
    // The API creates today's index in the background; a search that comes while the index's
    // shard is still starting fails (all shards failed), so the mix starts once it is there.
    eventually(
        "the log API's template and index",
        Duration::from_secs(60),
        || async {
            log.lines()
                .iter()
                .any(|l| l.contains("access-log index template and alias installed"))
                .then_some(())
        },
    )
    .await;

    // A known request mix.
    let mut mix = Mix::default();
    let c = content.base.clone();
    let mut posts = Vec::new();
    for i in 0..4 {
        let (s, body) = mix
            .post(format!("{c}/posts"), json!({"title": format!("e2e {i}"), "content": "log pipeline", "userId": 1, "categoryId": 2}), "/posts")
            .await;
        assert_eq!(s, 201, "{body}");
        posts.push(body["id"].as_i64().unwrap());
    }
    let (s, _) = mix
        .post(
            format!("{c}/posts"),
            json!({"title": "x", "content": "y", "userId": 999_999, "categoryId": 2}),
            "/posts",
        )
        .await;
    assert_eq!(s, 422);
    for id in &posts {
        for _ in 0..3 {
            let (s, _) = mix
                .get(format!("{c}/posts/{id}/detail"), "/posts/{id}/detail")
                .await;
            assert_eq!(s, 200);
        }
    }
    for _ in 0..2 {
        let (s, _) = mix
            .get(format!("{c}/posts/999999/detail"), "/posts/{id}/detail")
            .await;
        assert_eq!(s, 404);
    }
    let (s, _) = mix
        .get(format!("{c}/list/inbox/2?page=1"), "/list/inbox/{userId}")
        .await;
    assert_eq!(s, 200);

    let k = coupon.base.clone();
    let admin = coupon
        .admin
        .clone()
        .expect("the coupon API's admin listener");
    let now = chrono::Utc::now();
    let (s, event) = mix
        .post(
            format!("{admin}/admin/coupon-events"),
            json!({"name": "e2e", "limit": 3, "startsAt": (now - chrono::Duration::minutes(1)).to_rfc3339(),
                   "endsAt": (now + chrono::Duration::hours(1)).to_rfc3339(), "couponValidSeconds": 3600}),
            "/admin/coupon-events",
        )
        .await;
    assert_eq!(s, 201, "{event}");
    let event_id = event["id"].as_i64().unwrap();
    for user in 1..=5 {
        mix.post(
            format!("{k}/coupons"),
            json!({"userId": user, "couponEventId": event_id}),
            "/coupons",
        )
        .await;
    }
    let (s, _) = mix
        .post(
            format!("{k}/coupons"),
            json!({"userId": 1, "couponEventId": event_id}),
            "/coupons",
        )
        .await;
    assert_eq!(s / 100, 4, "a second coupon for the same user is refused");
    let (s, _) = mix.get(format!("{k}/coupons?userId=1"), "/coupons").await;
    assert_eq!(s, 200);

    let l = log.base.clone();
    for _ in 0..5 {
        let (s, _) = mix
            .get(format!("{l}/logs/search?size=1"), "/logs/search")
            .await;
        assert_eq!(s, 200);
    }
    let (s, _) = mix
        .get(format!("{l}/logs/search?status=7xx"), "/logs/search")
        .await;
    assert_eq!(s, 400);

    // Every request became exactly one access line, with exactly the fields the pipeline maps.
    let want = mix.statuses.len();
    let services = [&content, &coupon, &log];
    eventually(
        "one access line per request",
        Duration::from_secs(30),
        || async {
            (services
                .iter()
                .map(|s| s.access_lines().len())
                .sum::<usize>()
                == want)
                .then_some(())
        },
    )
    .await;
    let mapped: Vec<&str> = logschema::FIELDS.iter().map(|(n, _)| *n).collect();
    let mut access = Vec::new();
    for s in services {
        for line in s
            .lines()
            .iter()
            .filter(|l| l.contains(r#""log_type":"access""#))
        {
            let v: Value = serde_json::from_str(line).unwrap();
            let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
            keys.sort_unstable();
            let mut m = mapped.clone();
            m.sort_unstable();
            assert_eq!(
                keys, m,
                "{} wrote fields the pipeline does not map: {line}",
                s.name
            );
        }
        access.extend(s.access_lines());
    }
    let observed: Vec<u16> = mix.statuses.iter().map(|(_, s)| *s).collect();
    let mut logged: Vec<u16> = access.iter().map(|a| a.status).collect();
    let mut sent = observed.clone();
    logged.sort_unstable();
    sent.sort_unstable();
    assert_eq!(logged, sent, "the lines carry the statuses the clients saw");

    // Ship every stdout line (service log lines included) as Filebeat would, plus a non-JSON line.
    let topic = testing::fresh_topic("access-log", 2).await;
    let mut payloads = Vec::new();
    for s in services {
        let meta = KubernetesMeta {
            namespace: "campus",
            pod: &format!("{}-api-7d9c8b-abcde", s.name),
            container: "api",
            node: "kind-worker",
        };
        for line in s.lines() {
            payloads.push(
                serde_json::to_vec(&filebeat_event(&line, chrono::Utc::now(), &meta)).unwrap(),
            );
        }
    }
    let non_json = event_bytes("Segmentation fault (core dumped)", chrono::Utc::now());
    payloads.insert(payloads.len() / 2, non_json);
    produce(&topic, &payloads).await;

    let group = testing::unique("log-index");
    let worker = start_worker(&es_url, &topic, &group, &prefix).await;
    eventually(
        "every access line indexed",
        Duration::from_secs(60),
        || async { (count(&es, &prefix).await == want as u64).then_some(()) },
    )
    .await;
    let dlq = campus_common::kafka::dlq_topic(&topic, &group);
    let dead = testing::read_topic(&dlq, 1, Duration::from_secs(30)).await;
    assert_eq!(dead.len(), 1);
    assert!(
        String::from_utf8_lossy(dead[0].payload.as_deref().unwrap()).contains("Segmentation fault")
    );
    assert!(
        worker
            .metric("campus_log_index_documents_total{outcome=\"skipped\"}")
            .await
            >= 3.0,
        "service log lines are skipped"
    );

    // The log API (the real binary) answers the right counts and percentiles for the mix.
    let first = access.iter().map(|a| at(&a.timestamp)).min().unwrap();
    let last = access.iter().map(|a| at(&a.timestamp)).max().unwrap();
    let window = format!(
        "from={}&to={}",
        first.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        (last + chrono::Duration::milliseconds(1))
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    )
    .replace('+', "%2B");
    let (status, stats) = get_json(&format!("{l}/logs/stats?{window}&top=50")).await;
    assert_eq!(status, 200, "{stats}");
    assert_eq!(stats["total"], want as u64);
    let classes: Vec<u64> = stats["status_classes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["count"].as_u64().unwrap())
        .collect();
    assert_eq!(classes, class_counts(observed.iter().copied()).to_vec());
    let mut by_route: BTreeMap<(String, String), Vec<f64>> = BTreeMap::new();
    for a in &access {
        by_route
            .entry((a.service.clone(), a.route.clone()))
            .or_default()
            .push(a.duration_ms);
    }
    let rows = stats["latency"].as_array().unwrap();
    for ((service, route), durations) in &by_route {
        let row = rows
            .iter()
            .find(|r| r["path"] == route.as_str())
            .unwrap_or_else(|| panic!("{service} {route} missing from {rows:?}"));
        // Routes are unique across the three services in this mix.
        assert_eq!(row["count"], durations.len() as u64, "{route}");
        for (key, p) in [("p50", 50.0), ("p95", 95.0), ("p99", 99.0)] {
            let got = row[key].as_f64().unwrap();
            let (lo, hi) = testing::percentile::rank_bounds(durations, p);
            // `duration_ms` is mapped as `float`: values come back rounded to f32.
            let (lo, hi) = (lo - lo.abs() * 1e-6, hi + hi.abs() * 1e-6);
            assert!(
                lo <= got && got <= hi,
                "{route} {key} = {got}, expected within [{lo}, {hi}] of {durations:?}"
            );
        }
    }
    for (route, n) in [
        ("/posts/{id}/detail", 14),
        ("/coupons", 7),
        ("/logs/search", 6),
    ] {
        assert_eq!(
            rows.iter().find(|r| r["path"] == route).unwrap()["count"],
            n,
            "{route}"
        );
    }

    // Search: a service and a class; one request found by its id.
    let (_, coupon_4xx) = get_json(&format!(
        "{l}/logs/search?{window}&service=campus-coupon&status=4xx"
    ))
    .await;
    let want_4xx = mix
        .statuses
        .iter()
        .filter(|(r, s)| (r == "/coupons" || r == "/admin/coupon-events") && *s / 100 == 4)
        .count();
    assert_eq!(coupon_4xx["total"], want_4xx as u64);
    let one = &access[3];
    let (_, found) = get_json(&format!("{l}/logs/search?q={}", one.request_id)).await;
    assert_eq!(found["total"], 1);
    assert_eq!(found["hits"][0]["path"], one.path.as_str());
    assert_eq!(found["hits"][0]["kubernetes"]["namespace"], "campus");
    worker.stop().await;

    // Replaying the topic from 0 leaves the counts unchanged.
    let replay = start_worker(
        &es_url,
        &topic,
        &testing::unique("log-index-replay"),
        &prefix,
    )
    .await;
    eventually(
        "the replay to reach every access line",
        Duration::from_secs(60),
        || async {
            (replay
                .metric("campus_log_index_documents_total{outcome=\"duplicate\"}")
                .await
                == want as f64)
                .then_some(())
        },
    )
    .await;
    assert_eq!(count(&es, &prefix).await, want as u64);
    let (_, again) = get_json(&format!("{l}/logs/stats?{window}")).await;
    assert_eq!(again["total"], want as u64);
    replay.stop().await;
    cleanup(&es, &prefix).await;
}
