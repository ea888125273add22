//! Stores taken away under the issue path, and records the worker must not over-issue from:
//! MySQL killed mid-burst, Redis killed with records in flight, the topic replayed after the
//! Redis keys are gone. Every 201 ends as a coupon row, the dead-letter topic stays empty (a store
//! outage is waited out), and MySQL never holds more than the limit.

mod support;

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::{Duration, Instant};

use campus_common::envelope::{Envelope, EventType};
use campus_common::kafka::{Producer, dlq_topic};
use campus_coupon::db;
use campus_coupon::model::IssueRequested;
use campus_testkit::{self as testing, PrivateMysql, PrivateRedis, eventually};
use uuid::Uuid;

use support::burst::{LIMIT, REQUESTS, USERS, assert_exact, fire, tally};
use support::{Env, Servers, burst_plan};

/// Every record the worker group dead-lettered (waits `wait` for the first).
async fn dead_letters(env: &Env, wait: Duration) -> Vec<campus_common::kafka::Record> {
    testing::read_topic(&dlq_topic(&env.topic, &env.group), usize::MAX, wait).await
}

/// MySQL is killed after the first coupons were stored and stays away for 25 s while the burst
/// goes on (the API decides in Redis and keeps answering 201; the worker's records cannot be
/// stored). Once MySQL is back every 201 is a coupon row and nothing was dead-lettered — the worker's
/// pool gives up on a connection after 3 s, so five attempts would have been spent in ~15 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_survives_mysql_killed_midway_without_dead_letters() {
    let mut mysql = PrivateMysql::start().await;
    let topic = testing::fresh_topic("coupon-request", 4).await;
    let env = Env::start_custom(
        testing::kafka(),
        topic,
        Servers {
            mysql: Some(&mysql),
            mysql_acquire: Duration::from_secs(3),
            ..Servers::default()
        },
    )
    .await;
    let worker = env.start_worker();
    let event = env.create_event(LIMIT).await;
    let plan = burst_plan(USERS, REQUESTS);
    let unavailable = Arc::new(AtomicUsize::new(0));
    let mut answers = fire(&env, event, &plan[..40], false, unavailable.clone()).await;
    let before = tally(&answers).winners.len() as i64;
    assert!(
        before > 0 && before < LIMIT,
        "{before} winners before the outage"
    );
    env.wait_drained(event, before).await;

    mysql.kill().await;
    let down = Instant::now();
    answers.extend(fire(&env, event, &plan[40..], true, unavailable.clone()).await);
    let t = tally(&answers);
    assert_eq!(
        t.winners.len() as i64,
        LIMIT,
        "the API issues without MySQL: {t:?}"
    );
    tokio::time::sleep(Duration::from_secs(25).saturating_sub(down.elapsed())).await;
    mysql.resume().await;
    eprintln!(
        "MySQL was down {:?}; {} answers 201 during it",
        down.elapsed(),
        LIMIT - before
    );

    assert_exact(&env, event, &t).await;
    assert_eq!(db::issued(&env.pool, event).await.unwrap(), LIMIT);
    let dlq = dead_letters(&env, Duration::from_secs(5)).await;
    assert!(dlq.is_empty(), "{} records dead-lettered", dlq.len());
    worker.stop().await;
}

/// The burst is answered while no worker runs (every 201 is a record in Kafka), then Redis is
/// killed and a worker starts: it cannot claim anything for 15 s. Once Redis is back (with its
/// data: append-only file) every 201 is a coupon row, and nothing was dead-lettered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_in_flight_wait_for_a_killed_redis_without_dead_letters() {
    let mut redis = PrivateRedis::start(true).await;
    let topic = testing::fresh_topic("coupon-request", 4).await;
    let env = Env::start_custom(
        testing::kafka(),
        topic,
        Servers {
            redis_url: Some(redis.url()),
            ..Servers::default()
        },
    )
    .await;
    let event = env.create_event(LIMIT).await;
    let plan = burst_plan(USERS, 2_000);
    let answers = fire(&env, event, &plan, false, Arc::default()).await;
    let t = tally(&answers);
    assert_eq!(t.winners.len() as i64, LIMIT, "{t:?}");

    redis.kill().await;
    let worker = env.start_worker();
    tokio::time::sleep(Duration::from_secs(15)).await;
    assert_eq!(
        env.mysql_counts(event).await.0,
        0,
        "nothing stored unclaimed"
    );
    redis.resume().await;

    assert_exact(&env, event, &t).await;
    let dlq = dead_letters(&env, Duration::from_secs(5)).await;
    assert!(dlq.is_empty(), "{} records dead-lettered", dlq.len());
    worker.stop().await;
}

async fn send(producer: &Producer, topic: &str, event: i64, user: i64, id: Uuid) {
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
            topic,
            e.key.as_bytes(),
            &serde_json::to_vec(&e).unwrap(),
            &[],
        )
        .await
        .unwrap();
}

/// An event of limit 10 is issued out; then its Redis keys are gone (expired after the retention,
/// or flushed), 20 more issue records of other users land in the topic (old, forged or replayed
/// from elsewhere), and a new group reads the topic from the start (an offset reset). MySQL still
/// holds exactly the 10 winners: the records past the limit are dead-lettered as over the limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_without_redis_keys_never_exceeds_the_limit() {
    let topic = testing::fresh_topic("coupon-request", 2).await;
    let env = Env::start_with(testing::kafka(), topic).await;
    let worker = env.start_worker();
    let event = env.create_event(10).await;
    for user in 1..=12 {
        let (status, _) = env.issue(user, event).await;
        assert_eq!(status, if user <= 10 { 201 } else { 410 });
    }
    env.wait_drained(event, 10).await;
    worker.stop().await;
    let winners = env.mysql_users(event).await;
    assert_eq!(winners, (1..=10).collect::<Vec<_>>());

    let mut c = env.redis.clone();
    let _: () = redis::cmd("DEL")
        .arg(env.store.keys().meta(event))
        .arg(env.store.keys().holders(event))
        .query_async(&mut c)
        .await
        .unwrap();
    let producer = Producer::new(&env.kafka).unwrap();
    for user in 100..120 {
        send(&producer, &env.topic, event, user, Uuid::now_v7()).await;
    }

    let replay = support::Env::replay_group(&env);
    let worker = env.start_worker_in(&replay);
    let dlq = testing::read_topic(
        &dlq_topic(&env.topic, &replay),
        20,
        Duration::from_secs(120),
    )
    .await;
    assert_eq!(dlq.len(), 20, "the 20 records past the limit");
    assert!(
        dlq.iter()
            .all(|r| r.header("dlq-reason") == Some(&b"permanent"[..]))
    );
    eventually("the replay to finish", Duration::from_secs(60), || async {
        (env.mysql_counts(event).await.0 >= 10).then_some(())
    })
    .await;
    assert_eq!(env.mysql_counts(event).await, (10, 10));
    assert_eq!(env.mysql_users(event).await, winners);
    assert_eq!(db::issued(&env.pool, event).await.unwrap(), 10);
    worker.stop().await;
}

/// Redis loses everything (FLUSHALL; the same as a restart without persistence) while the first
/// winners' requests are acknowledged by Kafka but not stored (no worker runs yet). The burst
/// goes on: the reload counts those requests, so the event still ends at exactly the limit, and
/// every 201 — before and after the loss — is a coupon row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_flush_with_records_in_flight_loses_no_201_and_ends_at_the_limit() {
    let redis = PrivateRedis::start(false).await;
    let topic = testing::fresh_topic("coupon-request", 4).await;
    let env = Env::start_custom(
        testing::kafka(),
        topic,
        Servers {
            redis_url: Some(redis.url()),
            ..Servers::default()
        },
    )
    .await;
    let event = env.create_event(LIMIT).await;
    let plan = burst_plan(USERS, REQUESTS);
    let mut answers = fire(&env, event, &plan[..40], false, Arc::default()).await;
    let before = tally(&answers).winners.len() as i64;
    assert!(
        before > 0 && before < LIMIT,
        "{before} winners before the loss"
    );

    let mut c = env.redis.clone();
    let _: () = redis::cmd("FLUSHALL").query_async(&mut c).await.unwrap();
    let worker = env.start_worker();
    answers.extend(fire(&env, event, &plan[40..], true, Arc::default()).await);
    let t = tally(&answers);
    eprintln!("{before} winners before the flush; {t:?}");
    assert_exact(&env, event, &t).await;
    let dlq = dead_letters(&env, Duration::from_secs(5)).await;
    assert!(dlq.is_empty(), "{} records dead-lettered", dlq.len());
    worker.stop().await;
}

/// The API dies between a decision and its Kafka write (here: the decision is taken and nothing is
/// written), so a pending mark holds a slot no record will ever claim. After the bound the sweep
/// gives it back — but not the mark of a request that is in Kafka and waits for a worker — the
/// user can try again, and the drift report says ok.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_mark_without_a_kafka_record_is_given_back_after_the_bound() {
    use campus_coupon::drift::{self, SweepReport};
    use campus_coupon::inflight::InFlight;
    use campus_coupon::store::Decision;

    let env = Env::start().await;
    let event = env.create_event(2).await;
    let orphan = Uuid::now_v7();
    assert_eq!(
        env.store.decide(event, 1, &orphan, None).await.unwrap(),
        Decision::Issued { issued: 1 }
    );
    assert_eq!(
        env.issue(2, event).await.0,
        201,
        "acknowledged, no worker yet"
    );
    assert_eq!(env.issue(3, event).await.0, 410, "the orphan holds a slot");

    let in_flight = InFlight::new(&env.kafka, &env.topic, &env.group);
    let bound = Duration::from_secs(2);
    // Younger than the bound: nothing happens.
    let r = drift::sweep(&env.pool, &env.store, &in_flight, Duration::from_secs(600))
        .await
        .unwrap();
    assert_eq!(r, SweepReport::default());
    tokio::time::sleep(bound).await;
    let r = drift::sweep(&env.pool, &env.store, &in_flight, bound)
        .await
        .unwrap();
    assert_eq!(
        r,
        SweepReport {
            given_back: 1,
            confirmed: 0,
            in_flight: 1
        }
    );

    let worker = env.start_worker();
    env.wait_drained(event, 1).await;
    let (_, report) = env
        .get(&format!("/admin/reconcile?couponEventId={event}"))
        .await;
    assert_eq!(report["events"][0]["status"], "ok", "{report}");
    let (status, body) = env.issue(1, event).await;
    assert_eq!(status, 201, "user 1 may try again: {body}");
    env.wait_drained(event, 2).await;
    assert_eq!(env.mysql_users(event).await, vec![1, 2]);
    worker.stop().await;
}
