//! Behaviour of the API with the worker, one endpoint at a time.

mod support;

use std::time::Duration;

use campus_common::config::KafkaArgs;
use campus_testkit::{self as testing, free_port};
use chrono::Utc;
use redis::AsyncCommands;
use serde_json::json;

use support::Env;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issues_once_per_user_then_lists_and_uses() {
    let env = Env::start().await;
    let worker = env.start_worker();
    let event = env.create_event(2).await;

    let (status, first) = env.issue(1, event).await;
    assert_eq!(status, 201, "{first}");
    assert_eq!(first["userId"], 1);
    assert_eq!(first["couponEventId"], event);
    let coupon_id = first["couponId"].as_str().unwrap().to_owned();

    let (status, body) = env.issue(1, event).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "already_issued");
    assert_eq!(env.issue(2, event).await.0, 201);
    let (status, body) = env.issue(3, event).await;
    assert_eq!(status, 410, "{body}");
    assert_eq!(body["error"]["code"], "sold_out");

    env.wait_drained(event, 2).await;
    let (status, list) = env.get("/coupons?userId=1").await;
    assert_eq!(status, 200, "{list}");
    let coupons = list["coupons"].as_array().unwrap();
    assert_eq!(coupons.len(), 1, "{list}");
    assert_eq!(coupons[0]["id"], coupon_id.as_str());
    assert!(coupons[0]["usedAt"].is_null());

    let (status, used) = env
        .post(&format!("/coupons/{coupon_id}/use"), json!({}))
        .await;
    assert_eq!(status, 200, "{used}");
    assert!(used["usedAt"].is_string());
    let (status, body) = env
        .post(&format!("/coupons/{coupon_id}/use"), json!({}))
        .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "already_used");
    let (_, list) = env.get("/coupons?userId=1").await;
    assert_eq!(list["coupons"], json!([]), "a used coupon is not usable");

    let unknown = uuid::Uuid::now_v7();
    let (status, body) = env
        .post(&format!("/coupons/{unknown}/use"), json!({}))
        .await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(env.post("/coupons/not-a-uuid/use", json!({})).await.0, 400);
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_coupons_are_not_listed_or_usable() {
    let env = Env::start().await;
    let worker = env.start_worker();
    let event = env.create_event(5).await;
    let (status, body) = env.issue(7, event).await;
    assert_eq!(status, 201, "{body}");
    let id = body["couponId"].as_str().unwrap().to_owned();
    env.wait_drained(event, 1).await;
    sqlx::query("UPDATE coupons SET expires_at = ? WHERE id = ?")
        .bind(Utc::now() - chrono::Duration::seconds(1))
        .bind(&id)
        .execute(&env.pool)
        .await
        .unwrap();
    let (_, list) = env.get("/coupons?userId=7").await;
    assert_eq!(list["coupons"], json!([]));
    let (status, body) = env.post(&format!("/coupons/{id}/use"), json!({})).await;
    assert_eq!(status, 410, "{body}");
    assert_eq!(body["error"]["code"], "expired");
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outside_the_window_is_refused_and_unknown_events_touch_nothing() {
    let env = Env::start().await;
    let now = Utc::now();
    let future = env
        .create_event_at(
            10,
            now + chrono::Duration::hours(1),
            now + chrono::Duration::hours(2),
        )
        .await;
    let past = env
        .create_event_at(
            10,
            now - chrono::Duration::hours(2),
            now - chrono::Duration::hours(1),
        )
        .await;
    let before = env.redis_keys().await;
    // The future event's metadata is there; the past one's expired at once (end + retention).
    assert_eq!(before, vec![env.store.keys().meta(future)], "{before:?}");

    let (status, body) = env.issue(1, future).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "not_started");
    let (status, body) = env.issue(1, past).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "ended");
    let (status, body) = env.issue(1, 9_999).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["code"], "not_found");
    assert_eq!(
        env.redis_keys().await,
        before,
        "refusals wrote nothing to Redis"
    );
    assert_eq!(
        env.mysql_counts(future).await.0 + env.mysql_counts(past).await.0,
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_a_400_with_the_error_body() {
    let env = Env::start().await;
    let event = env.create_event(1).await;
    for body in [
        json!({"userId": 0, "couponEventId": event}),
        json!({"userId": -4, "couponEventId": event}),
        json!({"userId": "x", "couponEventId": event}),
        json!({"couponEventId": event}),
        json!({"userId": 1, "couponEventId": event, "extra": true}),
    ] {
        let (status, res) = env.post("/coupons", body.clone()).await;
        assert_eq!(status, 400, "{body} -> {res}");
        assert_eq!(res["error"]["code"], "bad_request", "{res}");
    }
    let (status, res) = env.get("/coupons?userId=abc").await;
    assert_eq!(
        (status, res["error"]["code"].as_str()),
        (400, Some("bad_request"))
    );
    let (status, res) = env.get("/coupons").await;
    assert_eq!(status, 400, "{res}");

    let now = Utc::now();
    let (status, res) = env
        .post(
            "/admin/coupon-events",
            json!({"name": "", "limit": 0, "startsAt": now, "endsAt": now,
                   "couponValidSeconds": 0}),
        )
        .await;
    assert_eq!(status, 400, "{res}");
    for field in ["name", "limit", "endsAt", "couponValidSeconds"] {
        assert!(res["error"]["details"][field].is_string(), "{field}: {res}");
    }
    // A window MySQL cannot store (schemathesis found a year-1001 start answered 500).
    let (status, res) = env
        .post(
            "/admin/coupon-events",
            json!({"name": "Old", "limit": 5, "startsAt": "1001-07-16T09:35:55+19:06",
                   "endsAt": "1001-07-16T10:48:50Z", "couponValidSeconds": 60}),
        )
        .await;
    assert_eq!(status, 400, "{res}");
    assert!(res["error"]["details"]["startsAt"].is_string(), "{res}");
    assert!(res["error"]["details"]["endsAt"].is_string(), "{res}");
    // Past January 2038 (a TIMESTAMP's end; the columns are DATETIME): stored as given. The fuzz
    // check found a year-3117 end answered 500 (bound as a TIMESTAMP, stored as NULL).
    let (status, res) = env
        .post(
            "/admin/coupon-events",
            json!({"name": "Far", "limit": 5, "startsAt": "2026-12-06T00:01:20Z",
                   "endsAt": "3117-04-25T14:09:45.014Z", "couponValidSeconds": 12320}),
        )
        .await;
    assert_eq!(status, 201, "{res}");
    assert_eq!(res["endsAt"], "3117-04-25T14:09:45.014Z", "{res}");
    let (status, got) = env
        .get(&format!("/admin/coupon-events/{}", res["id"]))
        .await;
    assert_eq!((status, &got["endsAt"]), (200, &res["endsAt"]), "{got}");
    let (status, res) = env
        .post(
            "/admin/coupon-events",
            json!({"name": "Edge", "limit": 5, "startsAt": "2026-12-06T00:01:20Z",
                   "endsAt": "9999-12-31T23:00:00Z", "couponValidSeconds": 7200}),
        )
        .await;
    assert_eq!(status, 400, "{res}");
    assert!(
        res["error"]["details"]["couponValidSeconds"].is_string(),
        "{res}"
    );
    assert_eq!(env.redis_count(event).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_redis_metadata_is_reloaded_from_mysql() {
    let env = Env::start().await;
    let worker = env.start_worker();
    let event = env.create_event(3).await;
    assert_eq!(env.issue(1, event).await.0, 201);
    assert_eq!(env.issue(2, event).await.0, 201);
    env.wait_drained(event, 2).await;

    // Redis lost everything of this platform (a flush).
    let mut c = env.redis.clone();
    for k in env.redis_keys().await {
        let _: () = c.del(k).await.unwrap();
    }
    let (status, body) = env.issue(1, event).await;
    assert_eq!(status, 409, "holders came back from MySQL: {body}");
    assert_eq!(env.redis_count(event).await, 2);
    assert_eq!(env.issue(3, event).await.0, 201);
    assert_eq!(env.issue(4, event).await.0, 410);
    env.wait_drained(event, 3).await;
    assert_eq!(env.mysql_users(event).await, vec![1, 2, 3]);
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_kafka_write_gives_the_slot_back_and_answers_503() {
    // A broker address where nothing listens: every write fails after the produce timeout.
    let mut kafka = KafkaArgs::new(format!("127.0.0.1:{}", free_port()));
    kafka.produce_timeout = Duration::from_millis(1500);
    let env = Env::start_with(kafka, "coupon.request".into()).await;
    let event = env.create_event(1).await;
    for _ in 0..2 {
        let res = env
            .http
            .post(env.url("/coupons"))
            .json(&json!({"userId": 5, "couponEventId": event}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 503);
        assert_eq!(res.headers()["retry-after"], "1");
        let body: serde_json::Value = res.json().await.unwrap();
        assert_eq!(body["error"]["code"], "unavailable", "{body}");
        // The slot and the user's mark were given back: the same user gets 503 again, not 409.
        assert_eq!(env.redis_count(event).await, 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_drift_report_compares_redis_with_mysql() {
    let env = Env::start().await;
    let worker = env.start_worker();
    let event = env.create_event(10).await;
    for user in 1..=3 {
        assert_eq!(env.issue(user, event).await.0, 201);
    }
    env.wait_drained(event, 3).await;
    let (status, report) = env
        .get(&format!("/admin/reconcile?couponEventId={event}"))
        .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["drifted"], 0, "{report}");
    let e = &report["events"][0];
    assert_eq!(e["status"], "ok", "{report}");
    assert_eq!(
        (e["redis"]["holders"].as_i64(), e["mysqlCoupons"].as_i64()),
        (Some(3), Some(3))
    );
    assert_eq!(e["redis"]["confirmed"], 3);

    // A coupon MySQL has and Redis does not count, and a pending holder long past the grace.
    sqlx::query(
        "INSERT INTO coupons (id, user_id, coupon_event_id, issued_at, expires_at) VALUES (?, 99, ?, ?, ?)",
    )
    .bind(uuid::Uuid::now_v7().to_string())
    .bind(event)
    .bind(Utc::now())
    .bind(Utc::now() + chrono::Duration::hours(1))
    .execute(&env.pool)
    .await
    .unwrap();
    let old = uuid::Uuid::new_v7(uuid::Timestamp::from_unix(
        uuid::NoContext,
        (Utc::now().timestamp() - 3600) as u64,
        0,
    ));
    let mut c = env.redis.clone();
    let _: () = c
        .hset(env.store.keys().holders(event), 77, old.to_string())
        .await
        .unwrap();
    let (_, report) = env.get("/admin/reconcile").await;
    assert_eq!(report["drifted"], 1, "{report}");
    let e = &report["events"][0];
    assert_eq!(e["status"], "drift", "{report}");
    assert_eq!(e["onlyInMysql"], json!([99]));
    assert_eq!(e["onlyInRedis"], json!([77]));
    assert_eq!(e["redis"]["stalePending"], 1);
    assert_eq!(e["drift"], 0);
    assert_eq!(
        env.get("/admin/reconcile?couponEventId=424242").await.0,
        404
    );
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_openapi_swagger_and_ops_endpoints() {
    let env = Env::start().await;
    let (status, doc) = env.get("/api-docs/openapi.json").await;
    assert_eq!(status, 200);
    for path in ["/coupons", "/coupons/{id}/use"] {
        assert!(
            doc["paths"][path].is_object(),
            "{path} missing from the OpenAPI document"
        );
    }
    // The admin API is on its own listener, with its own document, and not on the public port.
    assert!(doc["paths"]["/admin/reconcile"].is_null(), "{doc}");
    let admin: serde_json::Value = env
        .http
        .get(format!("{}/api-docs/openapi.json", env.admin_base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for path in [
        "/admin/coupon-events",
        "/admin/coupon-events/{id}",
        "/admin/reconcile",
    ] {
        assert!(admin["paths"][path].is_object(), "{path}: {admin}");
    }
    for path in ["/admin/reconcile", "/admin/coupon-events"] {
        let res = env.http.get(env.public_url(path)).send().await.unwrap();
        assert_eq!(res.status(), 404, "{path} on the public port");
        let res = env
            .http
            .post(env.public_url(path))
            .json(&serde_json::json!({}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 404, "POST {path} on the public port");
    }
    let res = env.http.get(env.url("/swagger-ui/")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.text().await.unwrap().contains("swagger"));
    assert_eq!(env.get("/healthz").await.0, 200);
    let (status, ready) = env.get("/readyz").await;
    assert_eq!(status, 200, "{ready}");
    let metrics = env
        .http
        .get(env.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("campus_http_requests"), "{metrics}");
    let (status, body) = env.get("/nope").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("not_found"))
    );
    let _ = testing::unique("x");
}

/// Over the per-user limit a user gets 429 with `Retry-After` and the JSON error body (and takes
/// nothing in Redis); over the global limit everyone does. Off by default (the other tests).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_answer_429_with_retry_after() {
    use campus_coupon::config::RateLimitArgs;
    let topic = testing::fresh_topic("coupon-request", 1).await;
    let servers = support::Servers {
        rate_limits: RateLimitArgs {
            per_user: 1,
            per_user_burst: 2,
            global: 1,
            global_burst: 5,
        },
        ..Default::default()
    };
    let env = Env::start_custom(testing::kafka(), topic, servers).await;
    let event = env.create_event(100).await;
    let send = |user: i64| {
        env.http
            .post(env.url("/coupons"))
            .json(&json!({"userId": user, "couponEventId": event}))
            .send()
    };
    assert_eq!(send(1).await.unwrap().status(), 201);
    assert_eq!(send(1).await.unwrap().status(), 409);
    let res = send(1).await.unwrap();
    assert_eq!(res.status(), 429);
    let retry: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry), "Retry-After {retry}");
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limited", "{body}");
    assert_eq!(body["error"]["details"]["scope"], "user", "{body}");
    // Three more users fit the global burst of 5 (user 1 took 2); then the global limit answers
    // (a slow machine may refill a cell or two meanwhile: one per second).
    let mut issued = 1;
    let mut user = 2;
    let res = loop {
        let res = send(user).await.unwrap();
        if res.status() != 201 {
            break res;
        }
        issued += 1;
        user += 1;
        assert!(user < 20, "no global limit after {issued} coupons");
    };
    assert!(issued >= 4, "only {issued} issued before the global limit");
    assert_eq!(res.status(), 429);
    assert!(res.headers().contains_key("retry-after"));
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["error"]["details"]["scope"], "global", "{body}");
    assert_eq!(
        env.redis_count(event).await,
        issued,
        "a limited request takes no slot"
    );
}
