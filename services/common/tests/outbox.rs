//! The transactional outbox and its relay against real MariaDB and the local Kafka server.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use campus_common::envelope::{Envelope, EventType};
use campus_common::kafka::Producer;
use campus_common::outbox::{self, OutboxMessage, Relay, RelayMetrics, RelayOptions};
use campus_testkit as testing;
use sqlx::mysql::MySqlPool;
use sqlx::{Acquire, Executor};
use tokio_util::sync::CancellationToken;

async fn setup() -> (MySqlPool, String) {
    let (_, pool) = testing::fresh_mysql().await;
    outbox::install(&pool).await.unwrap();
    pool.execute("CREATE TABLE entity (id INT PRIMARY KEY, version BIGINT NOT NULL)")
        .await
        .unwrap();
    let topic = testing::fresh_topic("outbox", 3).await;
    (pool, topic)
}

fn relay(pool: &MySqlPool, lock: &str) -> Relay {
    let opts = RelayOptions {
        lock_name: lock.to_owned(),
        batch_size: 100,
        ..RelayOptions::default()
    };
    Relay::new(
        pool.clone(),
        Producer::new(&testing::kafka()).unwrap(),
        opts,
        RelayMetrics::default(),
    )
}

/// One business transaction: bump the entity's version (row lock), then enqueue its event.
async fn write(pool: &MySqlPool, topic: &str, id: i32) -> Envelope<serde_json::Value> {
    let mut tx = pool.begin().await.unwrap();
    sqlx::query("INSERT INTO entity (id, version) VALUES (?, 1) ON DUPLICATE KEY UPDATE version = version + 1")
        .bind(id)
        .execute(&mut *tx)
        .await
        .unwrap();
    let version: i64 = sqlx::query_scalar("SELECT version FROM entity WHERE id = ?")
        .bind(id)
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    let event = Envelope::new(
        EventType::Updated,
        id.to_string(),
        version,
        serde_json::json!({"id": id}),
    );
    outbox::enqueue(
        &mut *tx,
        &OutboxMessage::from_envelope(topic, &event).header("x-request-id", format!("r{id}")),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    event
}

async fn pending(pool: &MySqlPool) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE sent_at IS NULL")
        .fetch_one(pool)
        .await
        .unwrap()
}

async fn wait_drained(pool: &MySqlPool) {
    for _ in 0..600 {
        if pending(pool).await == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("outbox not drained");
}

fn decode(records: &[campus_common::kafka::Record]) -> Vec<Envelope<serde_json::Value>> {
    records.iter().map(|r| r.json().unwrap()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_come_out_in_commit_order_per_key() {
    let (pool, topic) = setup().await;
    let lock = testing::unique("lock");
    let token = CancellationToken::new();
    let relay_task = tokio::spawn(relay(&pool, &lock).run(token.clone()));

    // 8 concurrent writers over 4 keys: the row lock orders each key's transactions.
    let mut writers = Vec::new();
    for w in 0..8 {
        let pool = pool.clone();
        let topic = topic.clone();
        writers.push(tokio::spawn(async move {
            for i in 0..25 {
                write(&pool, &topic, (w + i) % 4).await;
            }
        }));
    }
    for w in writers {
        w.await.unwrap();
    }
    wait_drained(&pool).await;
    let events = decode(&testing::read_topic(&topic, 200, Duration::from_secs(30)).await);
    token.cancel();
    relay_task.await.unwrap();

    assert_eq!(events.len(), 200);
    let mut per_key: HashMap<String, Vec<i64>> = HashMap::new();
    for e in &events {
        per_key.entry(e.key.clone()).or_default().push(e.version);
    }
    for (key, versions) in per_key {
        let want: Vec<i64> = (1..=versions.len() as i64).collect();
        assert_eq!(versions, want, "key {key}: versions out of commit order");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_killed_between_publish_and_mark_loses_nothing() {
    let (pool, topic) = setup().await;
    let lock = testing::unique("lock");
    let mut written = HashSet::new();
    for id in 0..60 {
        written.insert(write(&pool, &topic, id % 6).await.event_id);
    }
    // The first relay publishes a batch and dies before marking it.
    let doomed = relay(&pool, &lock);
    let mut conn = pool.acquire().await.unwrap();
    let conn = conn.acquire().await.unwrap();
    let rows = outbox::fetch_pending(conn, 40).await.unwrap();
    let published = doomed.publish(&rows).await;
    assert_eq!(published.len(), 40);
    drop(doomed);
    assert_eq!(pending(&pool).await, 60, "nothing was marked");

    let token = CancellationToken::new();
    let task = tokio::spawn(relay(&pool, &lock).run(token.clone()));
    wait_drained(&pool).await;
    let records = testing::read_topic(&topic, 100, Duration::from_secs(30)).await;
    token.cancel();
    task.await.unwrap();

    let events = decode(&records);
    let seen: HashSet<_> = events.iter().map(|e| e.event_id).collect();
    assert_eq!(seen, written, "every committed event arrived");
    assert_eq!(events.len(), 100, "exactly the unmarked batch came twice");
    assert!(
        records.iter().all(|r| r.header("x-request-id").is_some()),
        "headers relayed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_relays_at_once_publish_each_row_once() {
    let (pool, topic) = setup().await;
    let lock = testing::unique("lock");
    let token = CancellationToken::new();
    let a = tokio::spawn(relay(&pool, &lock).run(token.clone()));
    let b = tokio::spawn(relay(&pool, &lock).run(token.clone()));
    let mut written = HashSet::new();
    for id in 0..150 {
        written.insert(write(&pool, &topic, id % 10).await.event_id);
    }
    wait_drained(&pool).await;
    // Read a little past what is expected, to catch a duplicate.
    let records = testing::read_topic(&topic, 151, Duration::from_secs(5)).await;
    token.cancel();
    a.await.unwrap();
    b.await.unwrap();
    let events = decode(&records);
    assert_eq!(events.len(), 150, "each row once");
    assert_eq!(
        events.iter().map(|e| e.event_id).collect::<HashSet<_>>(),
        written
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolled_back_writes_publish_nothing() {
    let (pool, topic) = setup().await;
    let lock = testing::unique("lock");
    let mut tx = pool.begin().await.unwrap();
    let ghost = Envelope::new(EventType::Created, "ghost", 1, serde_json::json!({}));
    outbox::enqueue(&mut *tx, &OutboxMessage::from_envelope(&topic, &ghost))
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    let real = write(&pool, &topic, 1).await;

    let token = CancellationToken::new();
    let task = tokio::spawn(relay(&pool, &lock).run(token.clone()));
    wait_drained(&pool).await;
    let records = testing::read_topic(&topic, 2, Duration::from_secs(5)).await;
    token.cancel();
    task.await.unwrap();
    let events = decode(&records);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].event_id, real.event_id);
}

/// With the broker unreachable the relay keeps rows pending and publishes them once it is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_outage_keeps_rows_pending() {
    let (pool, topic) = setup().await;
    for id in 0..5 {
        write(&pool, &topic, id).await;
    }
    let mut args = campus_common::config::KafkaArgs::new("127.0.0.1:1");
    args.produce_timeout = Duration::from_millis(500);
    let dead = Relay::new(
        pool.clone(),
        Producer::new(&args).unwrap(),
        RelayOptions::default(),
        RelayMetrics::default(),
    );
    let mut conn = pool.acquire().await.unwrap();
    let marked = dead
        .relay_once(conn.acquire().await.unwrap())
        .await
        .unwrap();
    assert_eq!(marked, 0);
    assert_eq!(pending(&pool).await, 5);

    let token = CancellationToken::new();
    let task = tokio::spawn(relay(&pool, &testing::unique("lock")).run(token.clone()));
    wait_drained(&pool).await;
    token.cancel();
    task.await.unwrap();
    assert_eq!(
        testing::read_topic(&topic, 6, Duration::from_secs(5))
            .await
            .len(),
        5
    );
}

async fn lock_holder(pool: &MySqlPool, lock: &str) -> Option<i64> {
    sqlx::query_scalar("SELECT IS_USED_LOCK(?)")
        .bind(lock)
        .fetch_one(pool)
        .await
        .unwrap()
}

/// The relay holding the lock hangs without closing its connection (a frozen process: its runtime
/// blocked): the server drops its session after the short `wait_timeout` the relay set, the lock
/// frees, and a standby publishes. Before, the session kept the server's `wait_timeout` (8 h) and
/// nothing was published until then.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_lock_holder_loses_the_lock_and_a_standby_publishes() {
    let (url, pool) = testing::fresh_mysql().await;
    outbox::install(&pool).await.unwrap();
    pool.execute("CREATE TABLE entity (id INT PRIMARY KEY, version BIGINT NOT NULL)")
        .await
        .unwrap();
    let topic = testing::fresh_topic("outbox", 3).await;
    let lock = testing::unique("lock");
    let opts = RelayOptions {
        lock_name: lock.clone(),
        batch_size: 100,
        lock_session_timeout: Duration::from_secs(3),
        ..RelayOptions::default()
    };
    // The holder runs on a runtime of its own, which a blocking task then freezes.
    let (unfreeze, frozen) = std::sync::mpsc::channel::<()>();
    let (started, holder_up) = std::sync::mpsc::channel::<()>();
    let holder_token = CancellationToken::new();
    let holder = {
        let (opts, token) = (opts.clone(), holder_token.clone());
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                // Its own pool: connections belong to the runtime that opened them.
                let pool = MySqlPool::connect(&url).await.unwrap();
                let relay = Relay::new(
                    pool.clone(),
                    Producer::new(&testing::kafka()).unwrap(),
                    opts,
                    RelayMetrics::default(),
                );
                let task = tokio::spawn(relay.run(token.clone()));
                while sqlx::query_scalar::<_, Option<i64>>("SELECT IS_USED_LOCK(?)")
                    .bind(&lock)
                    .fetch_one(&pool)
                    .await
                    .unwrap()
                    .is_none()
                {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                started.send(()).unwrap();
                // Frozen: nothing on this runtime runs until the test lets go.
                let _ = frozen.recv_timeout(Duration::from_secs(120));
                token.cancel();
                let _ = task.await;
            });
        })
    };
    holder_up.recv_timeout(Duration::from_secs(30)).unwrap();
    let first = lock_holder(&pool, &opts.lock_name).await;
    assert!(first.is_some());

    let token = CancellationToken::new();
    let standby = tokio::spawn(
        Relay::new(
            pool.clone(),
            Producer::new(&testing::kafka()).unwrap(),
            opts.clone(),
            RelayMetrics::default(),
        )
        .run(token.clone()),
    );
    for id in 0..5 {
        write(&pool, &topic, id).await;
    }
    let started = std::time::Instant::now();
    // Well under the server's default wait_timeout; a few times the relay's.
    for _ in 0..400 {
        if pending(&pool).await == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let drained_after = started.elapsed();
    let remaining = pending(&pool).await;
    let _ = unfreeze.send(());
    holder_token.cancel();
    holder.join().unwrap();
    token.cancel();
    standby.await.unwrap();
    assert_eq!(remaining, 0, "the hung holder kept the lock");
    assert_ne!(lock_holder(&pool, &opts.lock_name).await, first);
    eprintln!("published {drained_after:?} after the holder hung");
    assert_eq!(
        testing::read_topic(&topic, 6, Duration::from_secs(5))
            .await
            .len(),
        5
    );
}

/// A row larger than the broker accepts is parked (moved to `outbox_parked` with the error) and
/// the rows behind it are published; before, it failed forever and held back every row after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_that_can_never_be_published_is_parked_and_the_rest_go_on() {
    let (pool, topic) = setup().await;
    write(&pool, &topic, 1).await;
    let big = OutboxMessage {
        topic: topic.clone(),
        key: "big".into(),
        payload: vec![b'x'; 3 << 20],
        headers: Vec::new(),
    };
    let big_id = outbox::enqueue(&pool, &big).await.unwrap();
    for id in 2..5 {
        write(&pool, &topic, id).await;
    }
    let token = CancellationToken::new();
    let task = tokio::spawn(relay(&pool, &testing::unique("lock")).run(token.clone()));
    for _ in 0..400 {
        if pending(&pool).await == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let left = pending(&pool).await;
    token.cancel();
    task.await.unwrap();
    assert_eq!(left, 0, "rows held back behind the unpublishable one");
    let (id, error): (u64, String) = sqlx::query_as("SELECT id, error FROM outbox_parked")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(id, big_id);
    assert!(error.to_lowercase().contains("too large"), "{error}");
    let keys: Vec<String> = testing::read_topic(&topic, 5, Duration::from_secs(10))
        .await
        .iter()
        .map(|r| r.key_str().unwrap().to_owned())
        .collect();
    assert_eq!(keys.len(), 4, "{keys:?}");
    assert!(!keys.contains(&"big".to_owned()));
}
