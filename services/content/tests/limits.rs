//! What every request meets before and around its handler, and what it gets when a store is out:
//! paging bounds (400), a body size limit (413), a request timeout and a concurrency limit (503
//! with `Retry-After`), store outages (503 with `Retry-After`, not 500), and a readiness that only
//! MySQL decides.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::Platform;

fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or_default()
}

/// Pages beyond what the stores allow are the client's mistake (400), not the server's (500).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paging_beyond_the_result_window_is_400() {
    let mut p = Platform::new().await;
    p.start_api().await;
    p.start_worker("index", None);
    p.wait_search_ready().await;
    for path in [
        "/list/search?keyword=x&page=39916800",
        "/list/search?keyword=x&page=100&size=100",
        "/list/inbox/1?page=39916800",
        "/list/inbox/1?page=1000&size=10",
    ] {
        let (s, v) = p.get(path).await;
        assert_eq!((s, code(&v)), (400, "bad_request"), "{path}: {v}");
    }
    // The last page inside the window is fine.
    let (s, v) = p.get("/list/search?keyword=x&page=99&size=100").await;
    assert_eq!(s, 200, "{v}");
}

/// A body over the limit is 413 with the JSON error shape, before any handler reads it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_over_the_limit_is_413() {
    let mut p = Platform::new().await;
    p.start_api_with(&["--http-body-limit-bytes", "65536"])
        .await;
    let (s, v) = p
        .post(
            "/posts",
            json!({"title": "t", "content": "x".repeat(100_000), "userId": 1, "categoryId": 1}),
        )
        .await;
    assert_eq!((s, code(&v)), (413, "payload_too_large"), "{v}");
    let (s, _) = p
        .post(
            "/posts",
            json!({"title": "t", "content": "fits", "userId": 1, "categoryId": 1}),
        )
        .await;
    assert_eq!(s, 201);
}

/// A request stuck on a row lock is answered 503 `timeout` when the request timeout passes (before,
/// it waited for InnoDB's 50 s lock wait timeout and got a 500); while it holds the only turn, the
/// next request waits a second and is answered 503 `overloaded`; with the pool's connections all
/// taken, a request gets 503 `unavailable` (was 500). Each with `Retry-After`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeouts_overload_and_an_exhausted_pool_are_503_with_retry_after() {
    let mut p = Platform::new().await;
    p.start_api_with(&[
        "--http-request-timeout-ms",
        "3000",
        "--http-max-concurrency",
        "1",
        "--mysql-max-connections",
        "2",
        "--mysql-connect-timeout-ms",
        "500",
    ])
    .await;
    let post = p.create_post(1, 1, "locked", "x").await;
    let id = post["id"].as_u64().unwrap();
    // Another client holds the post's row lock.
    let mut tx = p.pool.begin().await.unwrap();
    sqlx::query("SELECT id FROM posts WHERE id = ? FOR UPDATE")
        .bind(id)
        .execute(&mut *tx)
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let stuck = {
        let (http, url) = (p.http.clone(), format!("{}/posts/{id}", p.base));
        tokio::spawn(async move {
            let res = http
                .put(url)
                .json(&json!({"title": "t", "content": "c", "categoryId": 1}))
                .send()
                .await
                .unwrap();
            let retry = res.headers().get("retry-after").cloned();
            (
                res.status().as_u16(),
                retry,
                res.json::<Value>().await.unwrap(),
                started.elapsed(),
            )
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    // The only turn is taken: this one waits a second, then is turned away.
    let res = p
        .http
        .get(format!("{}/users", p.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 503);
    assert_eq!(res.headers()["retry-after"], "1");
    let v: Value = res.json().await.unwrap();
    assert_eq!(code(&v), "overloaded", "{v}");
    // Ops endpoints do not queue behind requests.
    assert_eq!(p.get("/healthz").await.0, 200);

    let (status, retry, v, took) = stuck.await.unwrap();
    assert_eq!((status, code(&v)), (503, "timeout"), "{v}");
    assert_eq!(retry.unwrap(), "1");
    assert!(took < Duration::from_secs(6), "{took:?}");
    tx.rollback().await.unwrap();
}

/// The pool's connections all taken (the relay holds one, a request stuck on a row lock the
/// other): a request that cannot get a connection in time is 503 `unavailable` with `Retry-After`,
/// not 500.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exhausted_database_pool_is_503_with_retry_after() {
    let mut p = Platform::new().await;
    p.start_api_with(&[
        "--mysql-max-connections",
        "2",
        "--mysql-connect-timeout-ms",
        "500",
    ])
    .await;
    let id = p.create_post(1, 1, "locked", "x").await["id"]
        .as_u64()
        .unwrap();
    let mut tx = p.pool.begin().await.unwrap();
    sqlx::query("SELECT id FROM posts WHERE id = ? FOR UPDATE")
        .bind(id)
        .execute(&mut *tx)
        .await
        .unwrap();
    let stuck = {
        let (http, url) = (p.http.clone(), format!("{}/posts/{id}", p.base));
        tokio::spawn(async move {
            http.put(url)
                .json(&json!({"title": "t", "content": "c", "categoryId": 1}))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let res = p
        .http
        .get(format!("{}/users", p.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 503);
    assert_eq!(res.headers()["retry-after"], "1");
    let v: Value = res.json().await.unwrap();
    assert_eq!(code(&v), "unavailable", "{v}");
    tx.rollback().await.unwrap();
    assert_eq!(
        stuck.await.unwrap(),
        200,
        "the stuck update goes through once the lock frees"
    );
    assert_eq!(p.get("/users").await.0, 200);
}

/// Kafka and Elasticsearch unreachable: the API stays ready (MySQL answers), takes writes (they
/// wait in the outbox), reports both on `/readyz?verbose` and in `dependency_up`, and answers
/// search 503 with `Retry-After` (was 500). Before, `/readyz` was 503 and the pod left its Service.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_and_elasticsearch_down_keep_the_api_ready_and_search_is_503() {
    let mut p =
        Platform::with_servers("127.0.0.1:1".to_owned(), "http://127.0.0.1:1".to_owned()).await;
    p.start_api().await;
    let (s, v) = p.get("/readyz").await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["checks"]["mysql"], "ok");
    let (s, v) = p.get("/readyz?verbose").await;
    assert_eq!(s, 200, "{v}");
    assert_ne!(v["checks"]["kafka"], "ok", "{v}");
    assert_ne!(v["checks"]["elasticsearch"], "ok", "{v}");
    assert_eq!(v["checks"]["mysql"], "ok");
    let metrics = p
        .http
        .get(format!("{}/metrics", p.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(r#"campus_dependency_up{dependency="kafka"} 0"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"campus_dependency_up{dependency="mysql"} 1"#),
        "{metrics}"
    );
    let v = p.create_post(1, 1, "while kafka is down", "x").await;
    assert_eq!(v["version"], 1);
    let res = p
        .http
        .get(format!("{}/list/search?keyword=x", p.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 503);
    assert_eq!(res.headers()["retry-after"], "1");
    let v: Value = res.json().await.unwrap();
    assert_eq!(code(&v), "unavailable", "{v}");
}
