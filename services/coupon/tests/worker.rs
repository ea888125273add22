//! The issue worker on its own records: poison goes to the dead-letter topic, given-back requests
//! are not stored, redelivery stores nothing twice.

mod support;

use std::time::Duration;

use campus_common::envelope::{Envelope, EventType};
use campus_common::kafka::{Producer, dlq_topic};
use campus_coupon::model::IssueRequested;
use campus_testkit as testing;
use uuid::Uuid;

use support::Env;

async fn send(env: &Env, producer: &Producer, event: i64, user: i64, id: Uuid) {
    let mut e = Envelope::new(
        EventType::Created,
        format!("{event}:{user}"),
        1,
        IssueRequested {
            coupon_id: id,
            user_id: user,
            coupon_event_id: event,
        },
    );
    e.event_id = id;
    producer
        .send(
            &env.topic,
            e.key.as_bytes(),
            &serde_json::to_vec(&e).unwrap(),
            &[],
        )
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_is_dead_lettered_given_back_requests_are_skipped_redelivery_is_harmless() {
    // One partition: records are handled in the order they were written.
    let topic = testing::fresh_topic("coupon-request", 1).await;
    let env = Env::start_with(testing::kafka(), topic).await;
    let event = env.create_event(10).await;
    let producer = Producer::new(&env.kafka).unwrap();
    producer
        .send(&env.topic, b"x", b"not json", &[])
        .await
        .unwrap();
    // A request whose slot is not held (given back after a failed write that reached Kafka).
    send(&env, &producer, event, 5, Uuid::now_v7()).await;
    // A real request, then its redelivery.
    let (status, issued) = env.issue(6, event).await;
    assert_eq!(status, 201, "{issued}");
    let id: Uuid = issued["couponId"].as_str().unwrap().parse().unwrap();
    send(&env, &producer, event, 6, id).await;

    let worker = env.start_worker();
    env.wait_drained(event, 1).await;
    assert_eq!(env.mysql_users(event).await, vec![6]);
    let dlq = testing::read_topic(
        &dlq_topic(&env.topic, &env.group),
        1,
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(dlq.len(), 1);
    assert_eq!(dlq[0].payload.as_deref(), Some(&b"not json"[..]));
    assert_eq!(dlq[0].header("dlq-reason"), Some(&b"permanent"[..]));

    // Everything after the poison was handled: a later request is stored too.
    assert_eq!(env.issue(7, event).await.0, 201);
    env.wait_drained(event, 2).await;
    assert_eq!(env.mysql_users(event).await, vec![6, 7]);
    let stored: String = sqlx::query_scalar("SELECT id FROM coupons WHERE user_id = 6")
        .fetch_one(&env.pool)
        .await
        .unwrap();
    assert_eq!(
        stored,
        id.to_string(),
        "the coupon id is the one the API answered"
    );
    worker.stop().await;
}

/// `campus-coupon dlq` with the contract's names (a prefix, the group `coupon-issue`): `list`
/// shows the poison the worker dead-lettered, `replay` re-drives it to `coupon.request` once (the
/// worker dead-letters it again — it is still poison — and keeps going), an unknown group is an
/// error naming the service's groups; the admin listener's `/admin/dlq` and `/admin/dlq/replay`
/// answer the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_listed_and_replayed_by_the_cli() {
    use campus_common::kafka::admin::TopicSpec;
    let prefix = testing::unique("dlq").replace('_', "-");
    let topic = format!("{prefix}.coupon.request");
    testing::create_topics(&[TopicSpec::new(&topic, 1)]).await;
    let mut prefixed = testing::kafka();
    prefixed.prefix = prefix.clone();
    let servers = support::Servers {
        dead_letters: Some(prefixed),
        ..Default::default()
    };
    let env = Env::start_custom(testing::kafka(), topic.clone(), servers).await;
    let event = env.create_event(10).await;
    let (status, body) = env.get("/admin/dlq").await;
    assert_eq!(
        (status, body.as_array().map(Vec::len)),
        (200, Some(0)),
        "{body}"
    );
    let producer = Producer::new(&env.kafka).unwrap();
    producer.send(&topic, b"x", b"not json", &[]).await.unwrap();
    let worker = env.start_worker_in(&format!("{prefix}.coupon-issue"));
    assert_eq!(env.issue(6, event).await.0, 201);
    env.wait_drained(event, 1).await;
    let dlq = dlq_topic(&topic, &format!("{prefix}.coupon-issue"));
    assert_eq!(
        testing::read_topic(&dlq, 1, Duration::from_secs(60))
            .await
            .len(),
        1
    );

    let cmd = |verb: &str, group: &str| {
        let cli = <campus_coupon::cli::Cli as clap::Parser>::try_parse_from([
            "campus-coupon",
            "dlq",
            verb,
            "--kafka-brokers",
            &testing::kafka_brokers(),
            "--kafka-prefix",
            &prefix,
            "--group",
            group,
        ])
        .unwrap();
        let campus_coupon::cli::Command::Dlq(cmd) = cli.command else {
            unreachable!()
        };
        cmd
    };
    let listed = cmd("list", "coupon-issue")
        .run(campus_contract::Service::Coupon)
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].dlq_topic, dlq);
    assert_eq!(listed[0].reason.as_deref(), Some("permanent"));
    assert_eq!(listed[0].original_topic.as_deref(), Some(topic.as_str()));
    assert_eq!(listed[0].payload_bytes, b"not json".len());
    let (status, body) = env.get("/admin/dlq?since=1h").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body[0]["dlqTopic"], dlq.as_str(), "{body}");
    assert_eq!(body[0]["reason"], "permanent", "{body}");
    assert_eq!(body.as_array().unwrap().len(), 1, "{body}");
    let (status, body) = env.get("/admin/dlq?since=yesterday").await;
    assert_eq!(status, 400, "{body}");
    assert!(body["error"].to_string().contains("since"), "{body}");
    // Not on the public listener.
    let public = env
        .http
        .get(format!("{}/admin/dlq", env.base))
        .send()
        .await
        .unwrap();
    assert_eq!(public.status().as_u16(), 404);
    let err = cmd("list", "inspection")
        .run(campus_contract::Service::Coupon)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("coupon-issue"), "{err}");

    let replayed = cmd("replay", "coupon-issue")
        .run(campus_contract::Service::Coupon)
        .await
        .unwrap();
    assert_eq!(replayed.len(), 1);
    let redriven = testing::read_topic(&topic, 3, Duration::from_secs(30)).await;
    assert!(
        redriven
            .iter()
            .any(|r| r.payload.as_deref() == Some(&b"not json"[..])
                && r.header("dlq-replayed-from") == Some(format!("{dlq}/0@0").as_bytes())),
        "the poison re-driven to {topic}"
    );
    // Still poison: dead-lettered again, and the worker goes on.
    assert_eq!(
        testing::read_topic(&dlq, 2, Duration::from_secs(60))
            .await
            .len(),
        2
    );
    // The admin listener replays the new dead letter (its replay group is the CLI's: only what
    // was dead-lettered since the last replay), the worker dead-letters it a third time, and the
    // next replay re-drives just that one.
    let (status, body) = env.post("/admin/dlq/replay", serde_json::json!({})).await;
    assert_eq!(
        (status, body.as_array().map(Vec::len)),
        (200, Some(1)),
        "{body}"
    );
    assert_eq!(body[0]["offset"], 1, "{body}");
    assert_eq!(
        testing::read_topic(&dlq, 3, Duration::from_secs(60))
            .await
            .len(),
        3
    );
    let (status, body) = env
        .post("/admin/dlq/replay?since=1h", serde_json::json!({}))
        .await;
    assert_eq!(
        (status, body.as_array().map(Vec::len)),
        (200, Some(1)),
        "{body}"
    );
    assert_eq!(body[0]["offset"], 2, "{body}");
    assert_eq!(env.issue(7, event).await.0, 201);
    env.wait_drained(event, 2).await;
    assert_eq!(env.mysql_users(event).await, vec![6, 7]);
    worker.stop().await;
}
