//! Test harness: an isolated platform (fresh database, topics, Redis prefix, Mongo database,
//! index) on the real local servers, the API and workers in-process, and a fake OpenAI server.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use campus_common::kafka::admin::TopicSpec;
use campus_content::api::Api;
use campus_content::cli::{Cli, Command};
use campus_testkit as testing;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

pub struct Platform {
    pub prefix: String,
    pub mysql_url: String,
    pub pool: sqlx::MySqlPool,
    pub redis_prefix: String,
    pub mongo_db: String,
    pub alias: String,
    pub index: String,
    pub brokers: String,
    pub es_url: String,
    pub token: CancellationToken,
    pub http: reqwest::Client,
    pub base: String,
    /// Sent as `Authorization: Bearer …` with every request of [`Platform::send`] when set.
    pub bearer: Option<String>,
}

impl Platform {
    /// Fresh stores and topics; nothing started yet.
    pub async fn new() -> Self {
        Self::with_servers(testing::kafka_brokers(), testing::es_url()).await
    }

    pub async fn with_servers(brokers: String, es_url: String) -> Self {
        let prefix = testing::unique("c").to_lowercase();
        let (mysql_url, pool) = testing::fresh_mysql().await;
        // The schema, as the API creates it at start (workers that write MySQL may start first).
        campus_content::api::MIGRATOR
            .run(&pool)
            .await
            .expect("migrations");
        let (redis_prefix, _) = testing::fresh_redis().await;
        let mongo_db = testing::unique("t");
        let alias = testing::fresh_index("posts");
        let index = format!("{alias}-v1");
        if brokers == testing::kafka_brokers() {
            testing::create_topics(&[
                TopicSpec::new(format!("{prefix}.post.original"), 3),
                TopicSpec::new(format!("{prefix}.post.inspected"), 3),
            ])
            .await;
        }
        Self {
            prefix,
            mysql_url,
            pool,
            redis_prefix,
            mongo_db,
            alias,
            index,
            brokers,
            es_url,
            token: CancellationToken::new(),
            http: reqwest::Client::new(),
            base: String::new(),
            bearer: None,
        }
    }

    pub fn topic(&self, logical: &str) -> String {
        format!("{}.{logical}", self.prefix)
    }

    fn common(&self) -> Vec<String> {
        vec![
            "--kafka-brokers".into(),
            self.brokers.clone(),
            "--kafka-prefix".into(),
            self.prefix.clone(),
        ]
    }

    pub fn api_args(&self) -> Vec<String> {
        let mut a = vec!["campus-content".to_owned(), "api".to_owned()];
        a.extend(self.common());
        a.extend(
            [
                "--mysql-url",
                &self.mysql_url,
                "--redis-url",
                &testing::redis_url(),
                "--redis-key-prefix",
                &self.redis_prefix,
                "--mongo-url",
                &testing::mongo_url(),
                "--mongo-database",
                &self.mongo_db,
                "--elasticsearch-url",
                &self.es_url,
                "--es-index-alias",
                &self.alias,
                "--es-index-name",
                &self.index,
            ]
            .map(str::to_owned),
        );
        a
    }

    /// Starts the API on a free port; `self.base` is its URL.
    pub async fn start_api(&mut self) {
        self.start_api_with(&[]).await
    }

    /// Starts the API with more arguments.
    pub async fn start_api_with(&mut self, extra: &[&str]) {
        let mut args = self.api_args();
        args.extend(extra.iter().map(|a| (*a).to_owned()));
        let Command::Api(args) = Cli::try_parse_from_vec(args).command else {
            unreachable!()
        };
        let api = Api::connect(&args).await.expect("API connects");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        self.base = format!("http://{}", listener.local_addr().unwrap());
        let token = self.token.clone();
        tokio::spawn(async move { api.serve(listener, token).await.expect("API serves") });
    }

    pub fn worker_args(&self, worker: &str, openai: Option<&str>) -> Vec<String> {
        let mut a = vec![
            "campus-content".to_owned(),
            "worker".to_owned(),
            worker.to_owned(),
        ];
        a.extend(self.common());
        a.extend(
            [
                "--ops-addr",
                "127.0.0.1:0",
                "--consumer-initial-backoff-ms",
                "50",
                "--consumer-max-backoff-ms",
                "400",
                "--consumer-max-attempts",
                "3",
            ]
            .map(str::to_owned),
        );
        let more: Vec<String> = match worker {
            "cache" => vec![
                "--redis-url".into(),
                testing::redis_url(),
                "--redis-key-prefix".into(),
                self.redis_prefix.clone(),
            ],
            "inbox" => vec![
                "--mongo-url".into(),
                testing::mongo_url(),
                "--mongo-database".into(),
                self.mongo_db.clone(),
                "--mysql-url".into(),
                self.mysql_url.clone(),
            ],
            "index" => vec![
                "--elasticsearch-url".into(),
                self.es_url.clone(),
                "--es-index-alias".into(),
                self.alias.clone(),
                "--es-index-name".into(),
                self.index.clone(),
                "--es-timeout-ms".into(),
                "2000".into(),
            ],
            "inspect" => {
                let mut v = vec![
                    "--openai-timeout-ms".into(),
                    "1500".into(),
                    "--mysql-url".into(),
                    self.mysql_url.clone(),
                ];
                if let Some(url) = openai {
                    v.extend([
                        "--openai-base-url".into(),
                        url.to_owned(),
                        "--openai-api-key".into(),
                        "sk-test".into(),
                    ]);
                }
                v
            }
            _ => unreachable!(),
        };
        a.extend(more);
        a
    }

    /// Starts a worker as a task under `token`.
    pub fn start_worker_with(
        &self,
        args: Vec<String>,
        token: CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        let Command::Worker(w) = Cli::try_parse_from_vec(args).command else {
            unreachable!()
        };
        tokio::spawn(async move {
            if let Err(e) = w.run(token).await {
                panic!("worker failed: {e:#}");
            }
        })
    }

    pub fn start_worker(&self, worker: &str, openai: Option<&str>) -> tokio::task::JoinHandle<()> {
        self.start_worker_with(self.worker_args(worker, openai), self.token.clone())
    }

    /// Waits until the index worker created the alias (searches answer 200).
    pub async fn wait_search_ready(&self) {
        eventually("search index exists", Duration::from_secs(60), || async {
            let r = self.get("/list/search?keyword=x").await;
            (r.0 == 200).then_some(())
        })
        .await;
    }

    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let (status, _, body) = self
            .send_as(method, path, body, self.bearer.as_deref())
            .await;
        (status, body)
    }

    /// One request with this bearer token (or none); the status, the `WWW-Authenticate` header
    /// and the JSON body.
    pub async fn send_as(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        bearer: Option<&str>,
    ) -> (u16, String, Value) {
        let url = format!("{}{path}", self.base);
        testing::jwt::send_as(&self.http, method, &url, body, bearer).await
    }

    /// Detail with its `x-cache` header.
    pub async fn detail(&self, id: u64) -> (u16, Value, String) {
        let res = self
            .http
            .get(format!("{}/posts/{id}/detail", self.base))
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        let cache = res
            .headers()
            .get("x-cache")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        (status, res.json().await.unwrap_or(Value::Null), cache)
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.send(reqwest::Method::GET, path, None).await
    }
    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.send(reqwest::Method::POST, path, Some(body)).await
    }
    pub async fn put(&self, path: &str, body: Value) -> (u16, Value) {
        self.send(reqwest::Method::PUT, path, Some(body)).await
    }
    pub async fn delete(&self, path: &str) -> (u16, Value) {
        self.send(reqwest::Method::DELETE, path, None).await
    }

    pub async fn create_user(&self, name: &str) -> u64 {
        let (s, v) = self.post("/users", json!({"name": name})).await;
        assert_eq!(s, 201, "{v}");
        v["id"].as_u64().unwrap()
    }

    pub async fn create_post(&self, user: u64, category: u64, title: &str, content: &str) -> Value {
        let (s, v) = self
            .post(
                "/posts",
                json!({"title": title, "content": content, "userId": user, "categoryId": category}),
            )
            .await;
        assert_eq!(s, 201, "{v}");
        v
    }

    pub async fn search_ids(&self, keyword: &str) -> Vec<u64> {
        let (s, v) = self
            .get(&format!("/list/search?keyword={keyword}&size=100"))
            .await;
        assert_eq!(s, 200, "{v}");
        ids(&v)
    }

    pub async fn inbox_ids(&self, user: u64) -> Vec<u64> {
        let (s, v) = self.get(&format!("/list/inbox/{user}?size=100")).await;
        assert_eq!(s, 200, "{v}");
        ids(&v)
    }
}

impl Drop for Platform {
    fn drop(&mut self) {
        self.token.cancel();
    }
}

pub fn ids(v: &Value) -> Vec<u64> {
    v.as_array()
        .map(|a| a.iter().filter_map(|p| p["id"].as_u64()).collect())
        .unwrap_or_default()
}

trait ParseVec {
    fn try_parse_from_vec(args: Vec<String>) -> Self;
}

impl ParseVec for Cli {
    fn try_parse_from_vec(args: Vec<String>) -> Self {
        <Cli as clap::Parser>::try_parse_from(args).expect("valid arguments")
    }
}

use campus_testkit::eventually;

/// What the fake model does with one request.
#[derive(Clone, Debug)]
pub enum Reply {
    /// A chat completion whose message content is this string.
    Content(String),
    /// An HTTP error status with an OpenAI error body.
    Status(u16),
    /// Waits this long, then answers with the default.
    Delay(Duration),
}

type Policy = Arc<dyn Fn(&Value, usize) -> Reply + Send + Sync>;

/// A fake OpenAI-compatible server on 127.0.0.1 (port 0) that records every request.
#[derive(Clone)]
pub struct FakeOpenAi {
    pub url: String,
    pub requests: Arc<Mutex<Vec<Value>>>,
    policy: Arc<Mutex<Policy>>,
}

/// The default verdict: BAD when the content says BADWORD; tags are the title's words that start with `tg`.
pub fn default_reply(req: &Value) -> String {
    let user = req["messages"][1].to_string();
    if user.contains("BADWORD") {
        return json!({"status": "BAD", "tags": []}).to_string();
    }
    let tags: Vec<String> = user
        .split(|c: char| !c.is_alphanumeric())
        .filter_map(|w| w.strip_prefix("kw"))
        .map(|rest| format!("tag{rest}"))
        .collect();
    json!({"status": "GOOD", "tags": tags}).to_string()
}

impl FakeOpenAi {
    pub async fn start() -> Self {
        let fake = Self {
            url: String::new(),
            requests: Arc::default(),
            policy: Arc::new(Mutex::new(Arc::new(|_: &Value, _| {
                Reply::Content(String::new())
            }))),
        };
        fake.set(|req, _| Reply::Content(default_reply(req)));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        let app = axum::Router::new()
            .route("/v1/chat/completions", post(completions))
            .with_state(fake.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self {
            url: format!("http://{addr}/v1"),
            ..fake
        }
    }

    /// Replaces the behaviour; the closure gets the request and its 0-based index.
    pub fn set(&self, f: impl Fn(&Value, usize) -> Reply + Send + Sync + 'static) {
        *self.policy.lock().unwrap() = Arc::new(f);
    }

    pub fn count(&self) -> usize {
        self.requests.lock().unwrap().len()
    }
}

async fn completions(
    State(fake): State<FakeOpenAi>,
    axum::Json(req): axum::Json<Value>,
) -> Response {
    let n = {
        let mut r = fake.requests.lock().unwrap();
        r.push(req.clone());
        r.len() - 1
    };
    let policy = fake.policy.lock().unwrap().clone();
    let reply = policy(&req, n);
    let content = match reply {
        Reply::Content(c) => c,
        Reply::Status(s) => {
            let body = json!({"error": {"message": "fake failure", "type": "server_error", "param": null, "code": null}});
            return (StatusCode::from_u16(s).unwrap(), axum::Json(body)).into_response();
        }
        Reply::Delay(d) => {
            tokio::time::sleep(d).await;
            default_reply(&req)
        }
    };
    axum::Json(json!({
        "id": format!("chatcmpl-{n}"),
        "object": "chat.completion",
        "created": 1_700_000_000u32,
        "model": req["model"],
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": content},
            "finish_reason": "stop"
        }],
        "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20}
    }))
    .into_response()
}
