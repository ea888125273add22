//! Shared test wiring for the integration tests against the real local servers
//! (scripts/servers.sh): an API on port 0 with a fresh database, Redis prefix and topic; issue
//! workers as tasks; a private Kafka that can be stopped and started; the bursts ([`burst`]).

#![allow(dead_code)]

pub mod burst;

use std::collections::HashMap;

use std::time::Duration;

use campus_common::auth::Auth;
use campus_common::config::{KafkaArgs, RedisArgs};
use campus_common::kafka::Producer;
use campus_common::kafka::admin::{Admin, TopicSpec};
use campus_common::kafka::consumer::ConsumerMetrics;
use campus_coupon::config::RateLimitArgs;
use campus_coupon::inflight::InFlight;
use campus_coupon::metrics::WorkerMetrics;
use campus_coupon::store::CouponStore;
use campus_coupon::{AppState, admin_app, app, cli, db, worker};
use campus_testkit as testing;
use chrono::{DateTime, Utc};
use redis::AsyncCommands;
use serde_json::{Value, json};
use sqlx::MySqlPool;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use campus_testkit::eventually;

/// An API on a real listener with its own database, Redis prefix and topic.
pub struct Env {
    /// The public listener.
    pub base: String,
    /// The admin listener (`/admin/*`).
    pub admin_base: String,
    pub http: reqwest::Client,
    pub pool: MySqlPool,
    pub store: CouponStore,
    /// Reconnects by itself (a test may kill and restart a private Redis).
    pub redis: redis::aio::ConnectionManager,
    pub prefix: String,
    pub topic: String,
    pub kafka: KafkaArgs,
    pub group: String,
    shutdown: CancellationToken,
}

impl Drop for Env {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl Env {
    /// Against the shared local Kafka.
    pub async fn start() -> Self {
        let topic = testing::fresh_topic("coupon-request", 4).await;
        Self::start_with(testing::kafka(), topic).await
    }

    /// Against `kafka`, where `topic` already exists.
    pub async fn start_with(kafka: KafkaArgs, topic: String) -> Self {
        Self::start_custom(kafka, topic, Servers::default()).await
    }

    /// Against `kafka` (where `topic` exists) and the MySQL and Redis `servers` name.
    pub async fn start_custom(kafka: KafkaArgs, topic: String, servers: Servers<'_>) -> Self {
        campus_common::telemetry::init("campus-coupon-test");
        let (_url, pool) = match &servers.mysql {
            Some(m) => m.fresh_database(servers.mysql_acquire).await,
            None => testing::fresh_mysql().await,
        };
        db::migrate(&pool).await.expect("migrate");
        let (prefix, _) = testing::fresh_redis().await;
        let redis_url = servers.redis_url.unwrap_or_else(testing::redis_url);
        // Tests share two cores with every other crate's builds and tests: generous timeouts, so
        // only a real failure (not a slow moment) turns into a 503 or a failed assertion.
        let redis = redis::Client::open(redis_url.as_str())
            .unwrap()
            .get_connection_manager_with_config(
                redis::aio::ConnectionManagerConfig::new()
                    .set_response_timeout(Some(Duration::from_secs(30)))
                    .set_number_of_retries(10),
            )
            .await
            .expect("redis");
        let mut redis_args = RedisArgs::new(&redis_url, prefix.clone());
        redis_args.redis_timeout = Some(Duration::from_secs(15));
        let store = CouponStore::connect(&redis_args, Duration::from_secs(600))
            .await
            .expect("redis");
        let producer = Producer::new(&kafka).expect("producer");
        let group = testing::unique("coupon-issue");
        let in_flight = InFlight::new(&kafka, &topic, &group);
        let state = AppState::new(pool.clone(), store.clone(), producer, topic.clone())
            .with_in_flight(in_flight)
            .with_rate_limits(&servers.rate_limits)
            .with_auth(servers.auth.clone());
        let state = match servers.dead_letters {
            Some(k) => state.with_dead_letters(k),
            None => state,
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let admin_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let admin_base = format!("http://{}", admin_listener.local_addr().unwrap());
        let shutdown = CancellationToken::new();
        tokio::spawn(campus_common::http::serve_on(
            admin_listener,
            admin_app(state.clone()),
            shutdown.clone(),
        ));
        tokio::spawn(campus_common::http::serve_on(
            listener,
            app(state),
            shutdown.clone(),
        ));
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        Self {
            base,
            admin_base,
            http,
            pool,
            store,
            redis,
            prefix,
            topic,
            kafka,
            group,
            shutdown,
        }
    }

    /// `/admin/*` goes to the admin listener, everything else to the public one.
    pub fn url(&self, path: &str) -> String {
        if path.starts_with("/admin") {
            format!("{}{path}", self.admin_base)
        } else {
            format!("{}{path}", self.base)
        }
    }

    /// On the public listener, whatever the path.
    pub fn public_url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Creates an event open from `starts_at` to `ends_at`; returns its id.
    pub async fn create_event_at(
        &self,
        limit: i64,
        starts_at: DateTime<Utc>,
        ends_at: DateTime<Utc>,
    ) -> i64 {
        let (status, body) = self
            .post(
                "/admin/coupon-events",
                json!({"name": "test event", "limit": limit, "startsAt": starts_at,
                       "endsAt": ends_at, "couponValidSeconds": 3600}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        body["id"].as_i64().unwrap()
    }

    /// An event open now for an hour.
    pub async fn create_event(&self, limit: i64) -> i64 {
        let now = Utc::now();
        self.create_event_at(
            limit,
            now - chrono::Duration::minutes(1),
            now + chrono::Duration::hours(1),
        )
        .await
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let res = self
            .http
            .post(self.url(path))
            .json(&body)
            .send()
            .await
            .expect("request");
        let status = res.status().as_u16();
        let body = res.json().await.unwrap_or(Value::Null);
        (status, body)
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let res = self.http.get(self.url(path)).send().await.expect("request");
        let status = res.status().as_u16();
        let body = res.json().await.unwrap_or(Value::Null);
        (status, body)
    }

    /// One request with this bearer token (or none): the status, `WWW-Authenticate` and the body.
    pub async fn send_as(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        bearer: Option<&str>,
    ) -> (u16, String, Value) {
        testing::jwt::send_as(&self.http, method, &self.url(path), body, bearer).await
    }

    pub async fn issue(&self, user: i64, event: i64) -> (u16, Value) {
        self.post("/coupons", json!({"userId": user, "couponEventId": event}))
            .await
    }

    /// Starts an issue worker (a member of this env's group) as a task.
    pub fn start_worker(&self) -> Worker {
        self.start_worker_in(&self.group)
    }

    /// A new group name on this env's topic: it reads the topic from the start (an offset reset).
    pub fn replay_group(&self) -> String {
        testing::unique("coupon-replay")
    }

    /// Starts an issue worker in `group` as a task.
    pub fn start_worker_in(&self, group: &str) -> Worker {
        let runtime =
            cli::issue_consumer(&self.kafka, group, &self.topic, ConsumerMetrics::default())
                .expect("consumer");
        let shutdown = CancellationToken::new();
        let handler = worker::handler(
            self.pool.clone(),
            self.store.clone(),
            WorkerMetrics::default(),
        );
        let handle = tokio::spawn(runtime.run(handler, shutdown.clone()));
        Worker { shutdown, handle }
    }

    /// (rows, distinct users) of an event in MySQL.
    pub async fn mysql_counts(&self, event: i64) -> (i64, i64) {
        sqlx::query_as(
            "SELECT COUNT(*), COUNT(DISTINCT user_id) FROM coupons WHERE coupon_event_id = ?",
        )
        .bind(event)
        .fetch_one(&self.pool)
        .await
        .unwrap()
    }

    pub async fn mysql_users(&self, event: i64) -> Vec<i64> {
        let mut v: Vec<i64> =
            sqlx::query_scalar("SELECT user_id FROM coupons WHERE coupon_event_id = ?")
                .bind(event)
                .fetch_all(&self.pool)
                .await
                .unwrap();
        v.sort_unstable();
        v
    }

    /// The Redis count (size of the holders hash) of an event.
    pub async fn redis_count(&self, event: i64) -> i64 {
        let mut c = self.redis.clone();
        // The first command after a Redis restart fails once while the connection reconnects.
        for _ in 0..20 {
            if let Ok(n) = c.hlen(self.store.keys().holders(event)).await {
                return n;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        c.hlen(self.store.keys().holders(event)).await.unwrap()
    }

    /// Every key under this env's prefix.
    pub async fn redis_keys(&self) -> Vec<String> {
        let mut c = self.redis.clone();
        let mut keys: Vec<String> = c.keys(format!("{}*", self.prefix)).await.unwrap();
        keys.sort();
        keys
    }

    /// Waits until MySQL holds `n` coupons of `event` and Redis counts the same.
    pub async fn wait_drained(&self, event: i64, n: i64) {
        eventually("the worker to drain", Duration::from_secs(90), || async {
            let (rows, _) = self.mysql_counts(event).await;
            assert!(
                rows <= n,
                "more coupons in MySQL ({rows}) than expected ({n})"
            );
            (rows == n && self.redis_count(event).await == n).then_some(())
        })
        .await;
    }
}

/// Which MySQL and Redis an [`Env`] uses (default: the shared ones).
pub struct Servers<'a> {
    pub mysql: Option<&'a testing::PrivateMysql>,
    /// How long the pool waits for a MySQL connection (the worker's `MYSQL_CONNECT_TIMEOUT_MS`).
    pub mysql_acquire: Duration,
    pub redis_url: Option<String>,
    /// Rate limits of the API (none by default).
    pub rate_limits: RateLimitArgs,
    /// Who requests act for (mode `none` by default).
    pub auth: Auth,
    /// The Kafka settings (their prefix) `/admin/dlq` reads with (not served by default).
    pub dead_letters: Option<KafkaArgs>,
}

impl Default for Servers<'_> {
    fn default() -> Self {
        Self {
            mysql: None,
            mysql_acquire: Duration::from_secs(10),
            redis_url: None,
            rate_limits: RateLimitArgs::default(),
            auth: Auth::none(),
            dead_letters: None,
        }
    }
}

/// A worker task.
pub struct Worker {
    pub shutdown: CancellationToken,
    pub handle: JoinHandle<Result<(), campus_common::kafka::consumer::ConsumerError>>,
}

impl Worker {
    /// Graceful stop (SIGTERM): finish records in hand, commit.
    pub async fn stop(self) {
        self.shutdown.cancel();
        self.handle.await.expect("join").expect("worker");
    }
    /// A crash: no final commit, records in hand abandoned.
    pub async fn kill(self) {
        self.handle.abort();
        let _ = self.handle.await;
    }
}

/// Answers of a burst, by status, and who got a coupon.
#[derive(Debug, Default)]
pub struct Tally {
    pub by_status: HashMap<u16, usize>,
    pub by_code: HashMap<String, usize>,
    pub winners: Vec<i64>,
}

/// `tries` requests spread over `users` users (each user at least twice), shuffled.
pub fn burst_plan(users: i64, tries: usize) -> Vec<i64> {
    use rand::seq::SliceRandom;
    let mut plan: Vec<i64> = (0..tries).map(|i| 1 + (i as i64 % users)).collect();
    plan.shuffle(&mut rand::rng());
    plan
}

/// A private Apache Kafka broker on free ports, for tests that stop the broker midway; see
/// [`testing::PrivateKafka`].
pub struct PrivateKafka {
    kafka: testing::PrivateKafka,
}

impl PrivateKafka {
    pub async fn start() -> Self {
        Self {
            kafka: testing::PrivateKafka::start().await,
        }
    }

    /// Three brokers: new topics get replication factor 3 and `min.insync.replicas` 2.
    pub async fn start_cluster() -> Self {
        Self {
            kafka: testing::PrivateKafka::start_cluster(3).await,
        }
    }

    /// Kills one broker of a cluster (SIGKILL: a crash).
    pub fn kill_broker(&mut self, id: u32) {
        self.kafka.kill_node(id);
    }

    /// Starts a killed broker again with its data.
    pub async fn resume_broker(&mut self, id: u32) {
        self.kafka.resume_node(id).await;
    }

    pub fn args(&self) -> KafkaArgs {
        self.kafka.kafka()
    }

    /// Creates a topic on these brokers (replicated as the brokers' default says).
    pub async fn topic(&self, partitions: i32) -> String {
        let name = testing::unique("coupon-request").replace('_', "-");
        let admin = Admin::new(&self.args()).unwrap();
        admin
            .ensure(&[TopicSpec::new(&name, partitions)])
            .await
            .expect("create topic");
        eventually("the topic to appear", Duration::from_secs(30), || async {
            admin
                .describe()
                .await
                .ok()
                .filter(|t| t.contains_key(&name))
                .map(|_| ())
        })
        .await;
        name
    }

    /// Stops the broker (a clean shutdown; its data stays).
    pub async fn stop_service(&mut self) {
        self.kafka.stop().await;
    }

    /// Starts the broker again with its data.
    pub async fn start_service(&mut self) {
        self.kafka.resume().await;
    }
}
