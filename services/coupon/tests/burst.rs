//! Bursts: 5,000 concurrent requests from 2,000 users for a limit of 100 — plain, with the worker
//! killed and restarted midway, with the Kafka server stopped for part of it, and with one broker
//! of three killed midway.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

mod support;

use campus_testkit::eventually;
use support::burst::{LIMIT, REQUESTS, USERS, assert_exact, fire, tally};
use support::{Env, PrivateKafka, burst_plan};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_issues_exactly_the_limit() {
    let env = Env::start().await;
    let worker = env.start_worker();
    let event = env.create_event(LIMIT).await;
    let answers = fire(
        &env,
        event,
        &burst_plan(USERS, REQUESTS),
        false,
        Arc::default(),
    )
    .await;
    assert_eq!(answers.len(), REQUESTS);
    let t = tally(&answers);
    // In a clean burst a 409 only ever goes to a user who holds a coupon.
    let winners: HashSet<i64> = t.winners.iter().copied().collect();
    for (user, status, _) in &answers {
        if *status == 409 {
            assert!(
                winners.contains(user),
                "user {user} got 409 without a coupon"
            );
        }
    }
    assert_exact(&env, event, &t).await;
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_survives_the_worker_killed_and_restarted_midway() {
    let env = Env::start().await;
    let worker = env.start_worker();
    let event = env.create_event(LIMIT).await;
    let plan = burst_plan(USERS, REQUESTS);
    let answers = {
        let burst = fire(&env, event, &plan, false, Arc::default());
        tokio::pin!(burst);
        // Kill the worker as soon as it stored its first coupons (records in hand, offsets not yet
        // committed), then start a new member of the same group while the burst goes on.
        let killed = async {
            eventually("the first coupons", Duration::from_secs(60), || async {
                (env.mysql_counts(event).await.0 > 0).then_some(())
            })
            .await;
            worker.kill().await;
            env.start_worker()
        };
        let (answers, second) = tokio::join!(burst, killed);
        (answers, second)
    };
    let (answers, second) = answers;
    let t = tally(&answers);
    assert_exact(&env, event, &t).await;
    // And once more: a graceful restart re-reads nothing it must not.
    second.stop().await;
    let third = env.start_worker();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(env.mysql_counts(event).await, (LIMIT, LIMIT));
    third.stop().await;
}

/// A burst against a private Kafka that a test will take (partly) away: the API with a short
/// produce timeout, a worker, an event and the plan.
struct Outage {
    env: Env,
    worker: crate::support::Worker,
    event: i64,
    plan: Vec<i64>,
    unavailable: Arc<AtomicUsize>,
}

impl Outage {
    async fn start(kafka: &PrivateKafka, produce_timeout: Duration) -> Self {
        let topic = kafka.topic(4).await;
        let mut args = kafka.args();
        args.produce_timeout = produce_timeout;
        let env = Env::start_with(args, topic).await;
        let worker = env.start_worker();
        let event = env.create_event(LIMIT).await;
        Self {
            env,
            worker,
            event,
            plan: burst_plan(USERS, REQUESTS),
            unavailable: Arc::new(AtomicUsize::new(0)),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_survives_kafka_stopped_for_part_of_it() {
    let mut kafka = PrivateKafka::start().await;
    let Outage {
        env,
        worker,
        event,
        plan,
        unavailable,
    } = Outage::start(&kafka, Duration::from_secs(2)).await;

    // Part 1, Kafka up: some coupons issue.
    let mut answers = fire(&env, event, &plan[..40], true, unavailable.clone()).await;
    assert_eq!(unavailable.load(Ordering::Relaxed), 0);
    let issued_before = answers.iter().filter(|a| a.1 == 201).count() as i64;
    assert!(issued_before > 0);

    // Part 2: Kafka stops. The winners of slots wait at most the produce timeout, get their slot
    // back and a 503 (and retry); once 503s were seen the worker is killed, Kafka comes back and
    // a new worker starts.
    kafka.stop_service().await;
    let during = fire(&env, event, &plan[40..2_540], true, unavailable.clone());
    let outage = async {
        eventually(
            "503 answers during the outage",
            Duration::from_secs(60),
            || async { (unavailable.load(Ordering::Relaxed) >= 20).then_some(()) },
        )
        .await;
        // Never more than the limit is held, and nothing new reached MySQL.
        assert!(env.redis_count(event).await <= LIMIT);
        assert!(env.mysql_counts(event).await.0 <= issued_before);
        // The worker dies during the outage too; a new one starts with Kafka.
        worker.kill().await;
        kafka.start_service().await;
        env.start_worker()
    };
    let (during, worker) = tokio::join!(during, outage);
    answers.extend(during);

    // Part 3, Kafka back: the rest of the burst.
    answers.extend(fire(&env, event, &plan[2_540..], true, unavailable.clone()).await);
    assert_eq!(answers.len(), REQUESTS);
    assert!(unavailable.load(Ordering::Relaxed) >= 20);
    let t = tally(&answers);
    // A user whose first request was still pending may have had a 409 for a parallel one, and
    // lost the slot when Kafka failed: 409s are not all winners' here, but no one wins twice.
    assert_exact(&env, event, &t).await;
    let by_user: HashMap<i64, usize> = t.winners.iter().fold(HashMap::new(), |mut m, u| {
        *m.entry(*u).or_default() += 1;
        m
    });
    assert!(by_user.values().all(|n| *n == 1));
    worker.stop().await;
}

/// Three brokers, `coupon.request` with replication factor 3 and `min.insync.replicas` 2: one
/// broker crashes in the middle of the burst. Writes go on to the two left (a 503 only while a
/// partition's leadership moves), the worker carries on, and exactly `limit` coupons exist, the
/// same in Redis and MySQL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_on_three_brokers_survives_one_broker_killed_midway() {
    let mut kafka = PrivateKafka::start_cluster().await;
    let Outage {
        env,
        worker,
        event,
        plan,
        unavailable,
    } = Outage::start(&kafka, Duration::from_secs(5)).await;

    // Some coupons issue (fewer than the limit), then a broker dies under the rest of the burst.
    let mut answers = fire(&env, event, &plan[..40], true, unavailable.clone()).await;
    assert!(tally(&answers).winners.len() < LIMIT as usize);
    kafka.kill_broker(2);
    answers.extend(fire(&env, event, &plan[40..], true, unavailable.clone()).await);
    assert_eq!(answers.len(), REQUESTS);
    let t = tally(&answers);
    assert_exact(&env, event, &t).await;
    // The broker comes back; nothing changes.
    kafka.resume_broker(2).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(env.mysql_counts(event).await, (LIMIT, LIMIT));
    worker.stop().await;
}
