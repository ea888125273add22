//! Helpers for the integration tests: fresh names, access lines in Filebeat's event shape, an
//! in-process indexer, polling.
#![allow(dead_code)]

use std::time::Duration;

use campus_common::config::SecretString;
use campus_common::http::AccessLog;
use campus_common::kafka::Producer;
use campus_common::logschema::{KubernetesMeta, filebeat_event};
use campus_log::es::Es;
use campus_log::indexer::{IndexSettings, Worker};
use campus_testkit as testing;
use chrono::{DateTime, Utc};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub fn es(url: &str) -> Es {
    Es::new(&SecretString::from(url.to_owned()), Duration::from_secs(30)).unwrap()
}

/// A fresh index prefix (also the alias and template name).
pub fn fresh_prefix() -> String {
    testing::fresh_index("alog")
}

pub fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// An access line as `campus_common::http::observe` writes it.
pub fn access_line(
    time: DateTime<Utc>,
    service: &str,
    method: &str,
    path: &str,
    route: &str,
    status: u16,
    duration_ms: f64,
) -> AccessLog {
    AccessLog {
        timestamp: time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        log_type: "access".into(),
        service: service.into(),
        method: method.into(),
        path: path.into(),
        route: route.into(),
        query: String::new(),
        status,
        bytes: 42,
        duration_ms,
        request_id: uuid::Uuid::new_v4().to_string(),
        user_agent: "campus-test/1".into(),
    }
}

pub const META: KubernetesMeta<'static> = KubernetesMeta {
    namespace: "campus",
    pod: "content-api-5d9f7c6b4-x2x7q",
    container: "api",
    node: "kind-worker",
};

/// The Filebeat event for one container line, serialized as Filebeat's Kafka output sends it.
pub fn event_bytes(line: &str, shipped: DateTime<Utc>) -> Vec<u8> {
    serde_json::to_vec(&filebeat_event(line, shipped, &META)).unwrap()
}

pub async fn produce(topic: &str, payloads: &[Vec<u8>]) {
    let producer = Producer::new(&testing::kafka()).unwrap();
    for (i, p) in payloads.iter().enumerate() {
        producer
            .send(topic, i.to_string().as_bytes(), p, &[])
            .await
            .unwrap();
    }
}

/// An indexer running in this process until the token is cancelled.
pub struct RunningWorker {
    pub token: CancellationToken,
    pub ops: axum::Router,
    pub task: JoinHandle<anyhow::Result<()>>,
}

impl RunningWorker {
    pub async fn stop(self) {
        self.token.cancel();
        self.task.await.unwrap().unwrap();
    }

    /// The value of a counter sample on `/metrics` whose line starts with `prefix`.
    pub async fn metric(&self, prefix: &str) -> f64 {
        use tower::ServiceExt;
        let res = self
            .ops
            .clone()
            .oneshot(
                axum::http::Request::get("/metrics")
                    .body(axum::body::Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        let body = axum::body::to_bytes(res.into_body(), 1 << 20)
            .await
            .unwrap();
        let text = String::from_utf8(body.to_vec()).unwrap();
        text.lines()
            .filter(|l| l.starts_with(prefix))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }
}

pub async fn start_worker(es_url: &str, topic: &str, group: &str, prefix: &str) -> RunningWorker {
    let token = CancellationToken::new();
    let settings = IndexSettings {
        topic: topic.into(),
        group: group.into(),
        index_prefix: prefix.into(),
        batch_size: 100,
    };
    let worker = Worker::new(&testing::kafka(), es(es_url), settings, token.clone())
        .await
        .unwrap();
    let ops = worker.ops_router();
    let task = tokio::spawn(worker.run());
    RunningWorker { token, ops, task }
}

/// Document count of `target` after a refresh.
pub async fn count(es: &Es, target: &str) -> u64 {
    es.refresh(target).await.unwrap();
    es.count(target).await.unwrap()
}

/// Removes a test's indices and template (best effort).
pub async fn cleanup(es: &Es, prefix: &str) {
    let _ = es.delete_indices(&format!("{prefix}-*")).await;
    let _ = es.delete_index_template(prefix).await;
}

/// Writes access lines straight into the daily indices of `prefix` (template installed first).
pub async fn seed(es: &Es, prefix: &str, lines: &[AccessLog]) {
    campus_log::indexer::prepare(es, prefix).await.unwrap();
    let mut body = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let time = at(&line.timestamp);
        let action = serde_json::json!({"create": {
            "_index": campus_common::logschema::index_for(prefix, time),
            "_id": format!("seed-{i}")
        }});
        serde_json::to_writer(&mut body, &action).unwrap();
        body.push(b'\n');
        serde_json::to_writer(&mut body, line).unwrap();
        body.push(b'\n');
    }
    let items = es.bulk(body).await.unwrap();
    assert!(items.iter().all(|i| i.status == 201), "{items:?}");
    es.refresh(prefix).await.unwrap();
}

/// A `campus-log api` served in this process on a free port; returns its base URL.
pub async fn start_api(es_url: &str, target: &str) -> (String, CancellationToken) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let token = CancellationToken::new();
    let app = campus_log::api::app(campus_log::api::AppState::new(es(es_url), target));
    tokio::spawn(campus_common::http::serve_on(listener, app, token.clone()));
    (base, token)
}

pub async fn get_json(url: &str) -> (u16, serde_json::Value) {
    let res = reqwest::get(url).await.unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap())
}
