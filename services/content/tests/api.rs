//! The API on its own: validation, error shape, outbox events with versions, OpenAPI, the binary.

mod support;

use std::time::Duration;

use campus_common::envelope::EventType;
use campus_content::events::PostEvent;
use campus_testkit as testing;
use serde_json::{Value, json};
use support::Platform;

async fn count(p: &Platform, sql: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
        .fetch_one(&p.pool)
        .await
        .unwrap()
}

fn assert_error(status: u16, body: &Value, want: u16, code: &str) {
    assert_eq!(status, want, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(body["error"]["message"].is_string(), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_a_4xx_with_the_json_error_and_writes_nothing() {
    let mut p = Platform::new().await;
    p.start_api().await;
    let long = "x".repeat(201);
    let cases = [
        (
            json!({"content": "c", "userId": 1, "categoryId": 1}),
            422,
            "validation_failed",
        ),
        (
            json!({"title": "  ", "content": "c", "userId": 1, "categoryId": 1}),
            422,
            "validation_failed",
        ),
        (
            json!({"title": long, "content": "c", "userId": 1, "categoryId": 1}),
            422,
            "validation_failed",
        ),
        (
            json!({"title": "t", "content": "c", "userId": 999, "categoryId": 1}),
            422,
            "validation_failed",
        ),
        (
            json!({"title": "t", "content": "c", "userId": 1, "categoryId": 999}),
            422,
            "validation_failed",
        ),
        (
            json!({"title": "t", "content": "c", "userId": "abc", "categoryId": 1}),
            400,
            "bad_request",
        ),
    ];
    for (body, status, code) in cases {
        let (s, v) = p.post("/posts", body.clone()).await;
        assert_error(s, &v, status, code);
    }
    let (s, v) = p
        .post(
            "/posts",
            json!({"title": "t", "content": "c", "userId": 999, "categoryId": 1}),
        )
        .await;
    assert_eq!(v["error"]["details"]["userId"], "does not exist", "{s} {v}");
    // Not JSON at all.
    let res = p
        .http
        .post(format!("{}/posts", p.base))
        .header("content-type", "application/json")
        .body("{")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let (s, v) = p.get("/posts/abc/detail").await;
    assert_error(s, &v, 400, "bad_request");
    let (s, v) = p
        .put(
            "/posts/abc",
            json!({"title": "t", "content": "c", "categoryId": 1}),
        )
        .await;
    assert_error(s, &v, 400, "bad_request");
    let (s, v) = p
        .put(
            "/posts/12345",
            json!({"title": "t", "content": "c", "categoryId": 1}),
        )
        .await;
    assert_error(s, &v, 404, "not_found");
    let (s, v) = p.delete("/posts/12345").await;
    assert_error(s, &v, 404, "not_found");
    assert_eq!(count(&p, "SELECT COUNT(*) FROM posts").await, 0);
    assert_eq!(count(&p, "SELECT COUNT(*) FROM outbox").await, 0);

    // A deleted post cannot be updated or deleted again; neither writes anything.
    let post = p.create_post(1, 1, "hello", "world").await;
    let id = post["id"].as_u64().unwrap();
    let (s, _) = p.delete(&format!("/posts/{id}")).await;
    assert_eq!(s, 204);
    let (s, v) = p
        .put(
            &format!("/posts/{id}"),
            json!({"title": "t", "content": "c", "categoryId": 1}),
        )
        .await;
    assert_error(s, &v, 404, "not_found");
    let (s, v) = p.delete(&format!("/posts/{id}")).await;
    assert_error(s, &v, 404, "not_found");
    let (s, v) = p.get(&format!("/posts/{id}/detail")).await;
    assert_error(s, &v, 404, "not_found");
    assert_eq!(count(&p, "SELECT COUNT(*) FROM outbox").await, 2);
    assert_eq!(count(&p, "SELECT MAX(version) FROM posts").await, 2);
    // Update with an unknown category: 422 and the version did not move.
    let post = p.create_post(2, 1, "second", "post").await;
    let id = post["id"].as_u64().unwrap();
    let (s, v) = p
        .put(
            &format!("/posts/{id}"),
            json!({"title": "t", "content": "c", "categoryId": 77}),
        )
        .await;
    assert_error(s, &v, 422, "validation_failed");
    let (s, v) = p
        .put(
            &format!("/posts/{id}"),
            json!({"content": "c", "categoryId": 1}),
        )
        .await;
    assert_error(s, &v, 422, "validation_failed");
    let (_, v) = p.get(&format!("/posts/{id}/detail")).await;
    assert_eq!(v["version"], 1);
    assert_eq!(v["title"], "second");
    // Unknown route, metadata errors.
    let (s, v) = p.get("/nope").await;
    assert_error(s, &v, 404, "not_found");
    let (s, v) = p.post("/users", json!({"name": ""})).await;
    assert_error(s, &v, 422, "validation_failed");
    let (s, v) = p.post("/categories", json!({"name": "Tech"})).await;
    assert_error(s, &v, 409, "conflict");
    let (s, v) = p
        .post("/follows", json!({"followerId": 1, "followeeId": 999}))
        .await;
    assert_error(s, &v, 422, "validation_failed");
    let (s, v) = p.delete("/users/1").await;
    assert_error(s, &v, 409, "conflict");
    let (s, v) = p.get("/list/inbox/999").await;
    assert_error(s, &v, 404, "not_found");
    let (s, v) = p.get("/list/search").await;
    assert_error(s, &v, 400, "bad_request");
    // No index worker ran: search must not create the index, and says so.
    let (s, v) = p.get("/list/search?keyword=hello").await;
    assert_error(s, &v, 503, "unavailable");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_reach_post_original_through_the_outbox_with_versions() {
    let mut p = Platform::new().await;
    p.start_api().await;
    let post = p.create_post(1, 2, "outbox", "first").await;
    let id = post["id"].as_u64().unwrap();
    let (s, v) = p
        .put(
            &format!("/posts/{id}"),
            json!({"title": "outbox 2", "content": "second", "categoryId": 3}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["version"], 2);
    assert_eq!(v["categoryName"], "Sports");
    let (s, _) = p.delete(&format!("/posts/{id}")).await;
    assert_eq!(s, 204);
    let records = testing::read_topic(&p.topic("post.original"), 3, Duration::from_secs(20)).await;
    assert_eq!(records.len(), 3);
    let events: Vec<PostEvent> = records
        .iter()
        .map(|r| serde_json::from_slice(r.payload.as_deref().unwrap()).unwrap())
        .collect();
    let got: Vec<(EventType, i64)> = events.iter().map(|e| (e.event_type, e.version)).collect();
    assert_eq!(
        got,
        [
            (EventType::Created, 1),
            (EventType::Updated, 2),
            (EventType::Deleted, 3)
        ]
    );
    for (r, e) in records.iter().zip(&events) {
        assert_eq!(r.key_str(), Some(id.to_string().as_str()));
        assert_eq!(e.payload.user_name, "alice");
        assert!(r.header("x-request-id").is_some());
    }
    assert_eq!(events[1].payload.title, "outbox 2");
    eventually_sent(&p).await;
}

async fn eventually_sent(p: &Platform) {
    testing::eventually(
        "outbox rows marked sent",
        Duration::from_secs(10),
        || async {
            (count(p, "SELECT COUNT(*) FROM outbox WHERE sent_at IS NULL").await == 0).then_some(())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_openapi_swagger_ops_and_metadata() {
    let mut p = Platform::new().await;
    p.start_api().await;
    let (s, doc) = p.get("/api-docs/openapi.json").await;
    assert_eq!(s, 200);
    for path in [
        "/posts",
        "/posts/{id}",
        "/posts/{id}/detail",
        "/list/search",
        "/list/inbox/{userId}",
        "/users",
        "/categories",
        "/follows",
    ] {
        assert!(doc["paths"][path].is_object(), "missing {path}");
    }
    let res = p
        .http
        .get(format!("{}/swagger-ui/", p.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.text().await.unwrap().contains("swagger"));
    let (s, v) = p.get("/readyz").await;
    assert_eq!(s, 200, "{v}");
    let (s, _) = p.get("/healthz").await;
    assert_eq!(s, 200);
    let metrics = p
        .http
        .get(format!("{}/metrics", p.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("campus_http_requests_total{"), "{metrics}");
    // Seed data and CRUD.
    let (_, users) = p.get("/users").await;
    assert_eq!(users[0]["name"], "alice");
    let (_, cats) = p.get("/categories").await;
    assert!(cats.as_array().unwrap().len() >= 5);
    let u = p.create_user("zed").await;
    let (s, v) = p.put(&format!("/users/{u}"), json!({"name": "zed2"})).await;
    assert_eq!((s, v["name"].as_str()), (200, Some("zed2")));
    let (s, _) = p
        .post("/follows", json!({"followerId": u, "followeeId": 1}))
        .await;
    assert_eq!(s, 201);
    let (s, _) = p
        .post("/follows", json!({"followerId": u, "followeeId": 1}))
        .await;
    assert_eq!(s, 201, "following twice is idempotent");
    let (_, f) = p.get("/users/1/followers").await;
    assert!(support::ids(&f).contains(&u));
    let (_, f) = p.get(&format!("/users/{u}/followees")).await;
    assert_eq!(support::ids(&f), [1]);
    let (s, _) = p.delete(&format!("/follows/{u}/1")).await;
    assert_eq!(s, 204);
    let (s, _) = p.delete(&format!("/follows/{u}/1")).await;
    assert_eq!(s, 404);
    let (s, _) = p.delete(&format!("/users/{u}")).await;
    assert_eq!(s, 204);
    let (s, _) = p.get(&format!("/users/{u}")).await;
    assert_eq!(s, 404);
}

#[test]
fn the_outbox_migration_matches_the_common_table() {
    let migration = include_str!("../migrations/0003_outbox.sql");
    let norm = |s: &str| {
        s.split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .trim_end_matches(';')
            .to_owned()
    };
    let body = migration
        .lines()
        .filter(|l| !l.starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n");
    assert_eq!(norm(&body), norm(campus_common::outbox::DDL));
}

/// The real binary: a missing broker address and an unreachable MySQL each give one `error:` line.
#[test]
fn the_binary_fails_with_one_clear_line() {
    let bin = env!("CARGO_BIN_EXE_campus-content");
    let out = std::process::Command::new(bin)
        .args([
            "api",
            "--mysql-url",
            "mysql://root@127.0.0.1:1/x",
            "--redis-url",
            "redis://127.0.0.1:1",
            "--mongo-url",
            "mongodb://127.0.0.1:1",
            "--elasticsearch-url",
            "http://127.0.0.1:1",
        ])
        .env_remove("KAFKA_BROKERS")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("error:") && stderr.contains("--kafka-brokers"),
        "{stderr}"
    );

    let out = std::process::Command::new(bin)
        .args([
            "api",
            "--kafka-brokers",
            "127.0.0.1:9092",
            "--mysql-url",
            "mysql://root@127.0.0.1:1/x",
            "--mysql-connect-timeout-ms",
            "500",
            "--redis-url",
            "redis://127.0.0.1:1",
            "--mongo-url",
            "mongodb://127.0.0.1:1",
            "--elasticsearch-url",
            "http://127.0.0.1:1",
        ])
        .env("HTTP_ADDR", "127.0.0.1:0")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("error: failed to connect to MySQL at 127.0.0.1:1/x"),
        "{stderr}"
    );
}
