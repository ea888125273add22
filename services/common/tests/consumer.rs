//! The consumer runtime against the real local Kafka server (scripts/servers.sh).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use campus_common::kafka::{
    ConsumerOptions, ConsumerRuntime, HandleError, Handler, Producer, Record,
    consumer::ConsumerMetrics, dlq_headers, dlq_topic,
};
use campus_testkit::{self as testing, wait_until};
use tokio_util::sync::CancellationToken;

#[derive(serde::Serialize, serde::Deserialize)]
struct Msg {
    n: u32,
    #[serde(default)]
    fail_times: u32,
}

/// Records which `n` were handled, how often; fails `fail_times` times per record first; treats a
/// payload that is not a `Msg` as poison; can be slowed down.
#[derive(Default)]
struct Recorder {
    seen: Mutex<Vec<u32>>,
    attempts: Mutex<HashMap<u32, u32>>,
    delay: Duration,
}

#[async_trait]
impl Handler for Recorder {
    async fn handle(&self, record: &Record) -> Result<(), HandleError> {
        let msg: Msg = record.json()?;
        let attempt = {
            let mut a = self.attempts.lock().unwrap();
            let e = a.entry(msg.n).or_default();
            *e += 1;
            *e
        };
        if attempt <= msg.fail_times {
            return Err(HandleError::transient(anyhow::anyhow!(
                "dependency down (attempt {attempt})"
            )));
        }
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        self.seen.lock().unwrap().push(msg.n);
        Ok(())
    }
}

impl Recorder {
    fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }
}

/// How many different records two consumers handled between them.
fn distinct_handled(a: &Recorder, b: &Recorder) -> usize {
    let mut all: Vec<u32> = a.seen.lock().unwrap().clone();
    all.extend(b.seen.lock().unwrap().iter());
    all.sort_unstable();
    all.dedup();
    all.len()
}

async fn produce(topic: &str, msgs: impl IntoIterator<Item = (String, Vec<u8>)>) {
    let producer = Producer::new(&testing::kafka()).unwrap();
    for (key, payload) in msgs {
        producer
            .send(
                topic,
                key.as_bytes(),
                &payload,
                &[("x-request-id", b"req-1")],
            )
            .await
            .unwrap();
    }
}

fn json_msg(n: u32, fail_times: u32) -> (String, Vec<u8>) {
    (
        format!("k{}", n % 7),
        serde_json::to_vec(&Msg { n, fail_times }).unwrap(),
    )
}

fn options(group: &str, topic: &str) -> ConsumerOptions {
    let mut o = ConsumerOptions::new(group, vec![topic.to_owned()]);
    o.initial_backoff = Duration::from_millis(20);
    o.max_backoff = Duration::from_millis(200);
    o.max_attempts = 3;
    o.session_timeout = Duration::from_secs(6);
    o
}

fn start(
    opts: ConsumerOptions,
    handler: Arc<Recorder>,
) -> (
    CancellationToken,
    tokio::task::JoinHandle<Result<(), campus_common::kafka::consumer::ConsumerError>>,
) {
    let runtime =
        ConsumerRuntime::new(&testing::kafka(), opts, ConsumerMetrics::default()).unwrap();
    let token = CancellationToken::new();
    let task = tokio::spawn(runtime.run(handler, token.clone()));
    (token, task)
}

fn header<'a>(r: &'a Record, name: &str) -> &'a str {
    std::str::from_utf8(
        r.header(name)
            .unwrap_or_else(|| panic!("header {name} missing")),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_record_goes_to_dlq_and_the_rest_is_processed() {
    let topic = testing::fresh_topic("poison", 1).await;
    let group = testing::unique("g");
    let mut msgs: Vec<_> = (0..10).map(|n| json_msg(n, 0)).collect();
    msgs.insert(5, ("bad".to_owned(), b"this is not json".to_vec()));
    produce(&topic, msgs).await;

    let handler = Arc::new(Recorder::default());
    let (token, task) = start(options(&group, &topic), handler.clone());
    wait_until("10 good records", Duration::from_secs(30), || {
        handler.count() == 10
    })
    .await;
    let dlq = testing::read_topic(&dlq_topic(&topic, &group), 1, Duration::from_secs(20)).await;
    token.cancel();
    task.await.unwrap().unwrap();

    assert_eq!(
        *handler.seen.lock().unwrap(),
        (0..10).collect::<Vec<_>>(),
        "order kept, nothing skipped"
    );
    assert_eq!(dlq.len(), 1);
    let d = &dlq[0];
    assert_eq!(d.payload.as_deref(), Some(&b"this is not json"[..]));
    assert_eq!(d.key.as_deref(), Some(&b"bad"[..]));
    assert_eq!(header(d, dlq_headers::REASON), "permanent");
    assert_eq!(header(d, dlq_headers::ORIGINAL_TOPIC), topic);
    assert_eq!(header(d, dlq_headers::ORIGINAL_PARTITION), "0");
    assert_eq!(header(d, dlq_headers::ORIGINAL_OFFSET), "5");
    assert_eq!(header(d, dlq_headers::ATTEMPTS), "1");
    assert_eq!(header(d, dlq_headers::GROUP), group);
    assert!(
        header(d, dlq_headers::ERROR).contains("invalid JSON"),
        "{}",
        header(d, dlq_headers::ERROR)
    );
    assert_eq!(
        header(d, "x-request-id"),
        "req-1",
        "original headers are kept"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_failures_are_retried_then_succeed_or_exhaust_to_dlq() {
    let topic = testing::fresh_topic("retry", 1).await;
    let group = testing::unique("g");
    // n=1 fails twice then succeeds (3 attempts allowed); n=2 fails 5 times: exhausted after 3.
    produce(
        &topic,
        [
            json_msg(0, 0),
            json_msg(1, 2),
            json_msg(2, 5),
            json_msg(3, 0),
        ],
    )
    .await;

    let handler = Arc::new(Recorder::default());
    let (token, task) = start(options(&group, &topic), handler.clone());
    wait_until("3 records", Duration::from_secs(30), || {
        handler.count() == 3
    })
    .await;
    let dlq = testing::read_topic(&dlq_topic(&topic, &group), 1, Duration::from_secs(20)).await;
    token.cancel();
    task.await.unwrap().unwrap();

    assert_eq!(*handler.seen.lock().unwrap(), vec![0, 1, 3]);
    let attempts = handler.attempts.lock().unwrap().clone();
    assert_eq!(attempts[&1], 3, "two failures, then success");
    assert_eq!(attempts[&2], 3, "bounded by max_attempts");
    assert_eq!(dlq.len(), 1);
    assert_eq!(header(&dlq[0], dlq_headers::REASON), "exhausted");
    assert_eq!(header(&dlq[0], dlq_headers::ATTEMPTS), "3");
    assert_eq!(header(&dlq[0], dlq_headers::ORIGINAL_OFFSET), "2");
    assert!(header(&dlq[0], dlq_headers::ERROR).contains("dependency down"));
}

/// Stops a consumer mid-stream (SIGTERM path) and starts another in the same group: every record
/// is handled, and only records that were in hand may be handled twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_and_restart_mid_stream_loses_nothing() {
    const N: u32 = 600;
    const PARTITIONS: i32 = 3;
    let topic = testing::fresh_topic("restart", PARTITIONS).await;
    let group = testing::unique("g");
    produce(&topic, (0..N).map(|n| json_msg(n, 0))).await;

    let first = Arc::new(Recorder {
        delay: Duration::from_millis(2),
        ..Default::default()
    });
    let (token, task) = start(options(&group, &topic), first.clone());
    wait_until("a third of the stream", Duration::from_secs(60), || {
        first.count() >= (N / 3) as usize
    })
    .await;
    token.cancel();
    task.await.unwrap().unwrap();
    let handled_first = first.count();
    assert!(handled_first < N as usize, "stopped mid-stream");

    let second = Arc::new(Recorder::default());
    let (token, task) = start(options(&group, &topic), second.clone());
    wait_until("the rest of the stream", Duration::from_secs(60), || {
        distinct_handled(&first, &second) == N as usize
    })
    .await;
    token.cancel();
    task.await.unwrap().unwrap();

    let firsts: std::collections::HashSet<u32> =
        first.seen.lock().unwrap().iter().copied().collect();
    let again = second
        .seen
        .lock()
        .unwrap()
        .iter()
        .filter(|n| firsts.contains(n))
        .count();
    assert!(
        again <= PARTITIONS as usize,
        "{again} records handled twice; at most one in hand per partition"
    );
}

/// A consumer that dies without committing (task aborted) is replaced; nothing is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_without_commit_loses_nothing() {
    const N: u32 = 300;
    let topic = testing::fresh_topic("crash", 2).await;
    let group = testing::unique("g");
    produce(&topic, (0..N).map(|n| json_msg(n, 0))).await;

    let first = Arc::new(Recorder {
        delay: Duration::from_millis(3),
        ..Default::default()
    });
    let (_token, task) = start(options(&group, &topic), first.clone());
    wait_until("some records", Duration::from_secs(60), || {
        first.count() >= 50
    })
    .await;
    task.abort();
    let _ = task.await;

    let second = Arc::new(Recorder::default());
    let (token, task) = start(options(&group, &topic), second.clone());
    wait_until("every record", Duration::from_secs(90), || {
        distinct_handled(&first, &second) == N as usize
    })
    .await;
    token.cancel();
    task.await.unwrap().unwrap();
}

/// Holds partition 0's records until opened; records every (partition, n) in handling order.
#[derive(Default)]
struct Gate {
    open: tokio::sync::Notify,
    opened: std::sync::atomic::AtomicBool,
    seen: Mutex<Vec<(i32, u32)>>,
}

#[async_trait]
impl Handler for Gate {
    async fn handle(&self, record: &Record) -> Result<(), HandleError> {
        let msg: Msg = record.json()?;
        if record.partition == 0 {
            let opened = self.open.notified();
            if !self.opened.load(std::sync::atomic::Ordering::SeqCst) {
                opened.await;
            }
        }
        self.seen.lock().unwrap().push((record.partition, msg.n));
        Ok(())
    }
}

impl Gate {
    fn handled(&self, partition: i32) -> Vec<u32> {
        let seen = self.seen.lock().unwrap();
        seen.iter()
            .filter(|(p, _)| *p == partition)
            .map(|(_, n)| *n)
            .collect()
    }
}

/// A partition whose handler is stuck (its queue full, the partition paused) does not hold up the
/// others; once it moves again it resumes exactly where it stopped: nothing skipped, nothing twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_partition_does_not_stall_the_others() {
    use rdkafka::producer::{FutureProducer, FutureRecord};
    const PER_PARTITION: u32 = 400;
    let topic = testing::fresh_topic("stall", 2).await;
    let group = testing::unique("g");
    let producer: FutureProducer = testing::kafka().client_config().create().unwrap();
    let payloads: Vec<(i32, Vec<u8>)> = (0..PER_PARTITION)
        .flat_map(|n| [0, 1].map(|p| (p, serde_json::to_vec(&Msg { n, fail_times: 0 }).unwrap())))
        .collect();
    let sends = payloads.iter().map(|(partition, payload)| {
        producer.send(
            FutureRecord::<(), _>::to(&topic)
                .partition(*partition)
                .payload(payload),
            Duration::from_secs(10),
        )
    });
    for sent in futures::future::join_all(sends).await {
        sent.unwrap();
    }

    let gate = Arc::new(Gate::default());
    let mut opts = ConsumerOptions::new(group.as_str(), vec![topic.clone()]);
    opts.partition_queue = 8;
    let runtime =
        ConsumerRuntime::new(&testing::kafka(), opts, ConsumerMetrics::default()).unwrap();
    let token = CancellationToken::new();
    let task = tokio::spawn(runtime.run(gate.clone(), token.clone()));

    // Partition 0 is stuck on its first record with 8 queued behind it; partition 1 runs through.
    wait_until(
        "partition 1 handled while 0 is stuck",
        Duration::from_secs(60),
        || gate.handled(1).len() == PER_PARTITION as usize,
    )
    .await;
    assert!(gate.handled(0).is_empty());

    gate.opened.store(true, std::sync::atomic::Ordering::SeqCst);
    gate.open.notify_waiters();
    wait_until(
        "partition 0 after it moves again",
        Duration::from_secs(60),
        || gate.handled(0).len() >= PER_PARTITION as usize,
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    token.cancel();
    task.await.unwrap().unwrap();
    let expected: Vec<u32> = (0..PER_PARTITION).collect();
    assert_eq!(gate.handled(0), expected, "partition 0 in order, each once");
    assert_eq!(gate.handled(1), expected, "partition 1 in order, each once");
}

/// Holds the first attempt of the records `n < holds` for `hold` (a record in hand while a
/// rebalance comes); records every n handled.
#[derive(Default)]
struct HoldFirst {
    hold: Duration,
    holds: u32,
    held: Mutex<std::collections::HashSet<u32>>,
    holding: std::sync::atomic::AtomicUsize,
    seen: Mutex<Vec<u32>>,
}

#[async_trait]
impl Handler for HoldFirst {
    async fn handle(&self, record: &Record) -> Result<(), HandleError> {
        let msg: Msg = record.json()?;
        if msg.n < self.holds && self.held.lock().unwrap().insert(msg.n) {
            use std::sync::atomic::Ordering::SeqCst;
            self.holding.fetch_add(1, SeqCst);
            tokio::time::sleep(self.hold).await;
            self.holding.fetch_sub(1, SeqCst);
        }
        self.seen.lock().unwrap().push(msg.n);
        Ok(())
    }
}

/// A partition given back to the same member while the task of its earlier assignment still
/// finishes a record goes on flowing: the new task gets every record produced afterwards. (The old
/// task's queue, dropped after the new one was split off, used to switch off the partition's
/// wake-up for good: seen on the cluster as coupons left unstored after a roll.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_assigned_again_while_its_old_task_finishes_keeps_flowing() {
    use rdkafka::producer::{FutureProducer, FutureRecord};
    let topic = testing::fresh_topic("again", 2).await;
    let group = testing::unique("g");
    let producer: FutureProducer = testing::kafka().client_config().create().unwrap();
    let send = |n: u32, partition: i32| {
        let payload = serde_json::to_vec(&Msg { n, fail_times: 0 }).unwrap();
        let (producer, topic) = (producer.clone(), topic.clone());
        async move {
            producer
                .send(
                    FutureRecord::<(), _>::to(&topic)
                        .partition(partition)
                        .payload(&payload),
                    Duration::from_secs(10),
                )
                .await
                .unwrap();
        }
    };
    // One record on each partition, both held by the first member when the second joins.
    send(0, 0).await;
    send(1, 1).await;
    let hold = Duration::from_secs(4);
    let a = Arc::new(HoldFirst {
        hold,
        holds: 2,
        ..HoldFirst::default()
    });
    let b = Arc::new(HoldFirst::default());
    let first = {
        let rt = ConsumerRuntime::new(
            &testing::kafka(),
            options(&group, &topic),
            ConsumerMetrics::default(),
        )
        .unwrap();
        let token = CancellationToken::new();
        (token.clone(), tokio::spawn(rt.run(a.clone(), token)))
    };
    wait_until("both records in hand", Duration::from_secs(30), || {
        a.holding.load(std::sync::atomic::Ordering::SeqCst) == 2
    })
    .await;
    // The second member joins: the first gives both partitions up and gets one back while its
    // tasks still hold their records.
    let second = {
        let rt = ConsumerRuntime::new(
            &testing::kafka(),
            options(&group, &topic),
            ConsumerMetrics::default(),
        )
        .unwrap();
        let token = CancellationToken::new();
        (token.clone(), tokio::spawn(rt.run(b.clone(), token)))
    };
    wait_until(
        "the second member's first record",
        Duration::from_secs(30),
        || !b.seen.lock().unwrap().is_empty(),
    )
    .await;
    // The old tasks are done; then a stream on both partitions.
    tokio::time::sleep(hold + Duration::from_secs(1)).await;
    const N: u32 = 100;
    for n in 2..N {
        send(n, (n % 2) as i32).await;
    }
    let distinct = || {
        let mut all: Vec<u32> = a.seen.lock().unwrap().clone();
        all.extend(b.seen.lock().unwrap().iter());
        all.sort_unstable();
        all.dedup();
        all
    };
    let end = tokio::time::Instant::now() + Duration::from_secs(30);
    while distinct().len() < N as usize && tokio::time::Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let missing: Vec<u32> = (0..N).filter(|n| !distinct().contains(n)).collect();
    assert!(
        missing.is_empty(),
        "records never handled after the partition came back: {missing:?} (first member {:?}, second {:?})",
        a.seen.lock().unwrap(),
        b.seen.lock().unwrap()
    );
    for (token, task) in [first, second] {
        token.cancel();
        task.await.unwrap().unwrap();
    }
}

/// A group scaled 1 → 3 → 1 under a steady stream, under Kafka's real group coordinator: every
/// record is handled, and the records handled twice are no more than the records in hand at the
/// rebalances (one per partition per rebalance: offsets are stored after each record and
/// committed when partitions are revoked).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn scaling_a_group_one_three_one_under_load_loses_nothing() {
    const PARTITIONS: i32 = 6;
    const N: u32 = 3_000;
    let topic = testing::fresh_topic("scale", PARTITIONS).await;
    let group = testing::unique("g");
    let members: Vec<Arc<Recorder>> = (0..3)
        .map(|_| {
            Arc::new(Recorder {
                delay: Duration::from_millis(2),
                ..Recorder::default()
            })
        })
        .collect();
    let feed = {
        let topic = topic.clone();
        tokio::spawn(async move {
            // About 300 records/s for 10 s.
            for start in (0..N).step_by(30) {
                let chunk: Vec<_> = (start..(start + 30).min(N))
                    .map(|n| json_msg(n, 0))
                    .collect();
                produce(&topic, chunk).await;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    let first = start(options(&group, &topic), members[0].clone());
    wait_until(
        "the first member to consume",
        Duration::from_secs(30),
        || members[0].count() > 100,
    )
    .await;
    let more: Vec<_> = members[1..]
        .iter()
        .map(|m| start(options(&group, &topic), m.clone()))
        .collect();
    wait_until(
        "all three members to consume",
        Duration::from_secs(60),
        || members[1..].iter().all(|m| m.count() > 50),
    )
    .await;
    for (token, task) in more {
        token.cancel();
        task.await.unwrap().unwrap();
    }
    feed.await.unwrap();
    let all = || {
        let mut seen: Vec<u32> = members
            .iter()
            .flat_map(|m| m.seen.lock().unwrap().clone())
            .collect();
        seen.sort_unstable();
        seen
    };
    wait_until("every record handled", Duration::from_secs(60), || {
        let mut s = all();
        s.dedup();
        s.len() == N as usize
    })
    .await;
    first.0.cancel();
    first.1.await.unwrap().unwrap();
    let seen = all();
    let mut distinct = seen.clone();
    distinct.dedup();
    assert_eq!(
        distinct,
        (0..N).collect::<Vec<_>>(),
        "every record, none invented"
    );
    let duplicates = seen.len() - distinct.len();
    // Four rebalances (two joins, two leaves), at most one record in hand per partition at each.
    assert!(
        duplicates <= 4 * PARTITIONS as usize,
        "{duplicates} records handled twice"
    );
}

/// A consumer told to stop after its broker died (a worker getting SIGTERM during a Kafka outage)
/// stops within its session timeout and a bit, instead of waiting forever in librdkafka's close.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_stops_in_bounded_time_when_kafka_is_gone() {
    let mut kafka = testing::PrivateKafka::start().await;
    let admin = campus_common::kafka::admin::Admin::new(&kafka.kafka()).unwrap();
    let topic = testing::unique("gone").replace('_', "-");
    admin
        .ensure(&[campus_common::kafka::admin::TopicSpec::new(&topic, 2)])
        .await
        .unwrap();
    let handler = Arc::new(Recorder::default());
    let runtime = ConsumerRuntime::new(
        &kafka.kafka(),
        options(&testing::unique("g"), &topic),
        ConsumerMetrics::default(),
    )
    .unwrap();
    let token = CancellationToken::new();
    let task = tokio::spawn(runtime.run(handler.clone(), token.clone()));
    let producer = Producer::new(&kafka.kafka()).unwrap();
    producer
        .send(
            &topic,
            b"k",
            &serde_json::to_vec(&Msg {
                n: 1,
                fail_times: 0,
            })
            .unwrap(),
            &[],
        )
        .await
        .unwrap();
    wait_until("the record", Duration::from_secs(30), || {
        handler.count() == 1
    })
    .await;
    kafka.kill_node(1);
    token.cancel();
    // Session timeout 6 s (see `options`) + 10 s of grace, and some slack for a loaded machine.
    tokio::time::timeout(Duration::from_secs(30), task)
        .await
        .expect("the consumer stopped although Kafka is gone")
        .unwrap()
        .unwrap();
}

/// Panics on `n == 3` always and on `n == 5` at its first attempt; with `batch`, its batch handler
/// panics whenever the batch holds `n == 3`.
#[derive(Default)]
struct Panicky {
    inner: Recorder,
    batch: bool,
}

#[async_trait]
impl Handler for Panicky {
    async fn handle(&self, record: &Record) -> Result<(), HandleError> {
        let msg: Msg = record.json()?;
        let attempt = {
            let mut a = self.inner.attempts.lock().unwrap();
            let e = a.entry(msg.n).or_default();
            *e += 1;
            *e
        };
        if msg.n == 3 || (msg.n == 5 && attempt == 1) {
            panic!("bug triggered by record {}", msg.n);
        }
        self.inner.seen.lock().unwrap().push(msg.n);
        Ok(())
    }

    fn batch_size(&self) -> usize {
        if self.batch { 16 } else { 1 }
    }

    async fn handle_batch(&self, records: &[Record]) -> Vec<Result<(), HandleError>> {
        if records
            .iter()
            .any(|r| r.json::<Msg>().map(|m| m.n == 3).unwrap_or(false))
        {
            panic!("batch bug");
        }
        let mut out = Vec::new();
        for r in records {
            out.push(self.handle(r).await);
        }
        out
    }
}

/// A handler panic is one failed attempt: the record is retried, then dead-lettered, and the worker
/// keeps consuming (before, the panic ended the whole consumer, and the process crash-looped on it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_panic_is_retried_then_dead_lettered_and_the_worker_goes_on() {
    for batch in [false, true] {
        let topic = testing::fresh_topic("panic", 1).await;
        let group = testing::unique("g");
        produce(&topic, (0..10).map(|n| json_msg(n, 0))).await;
        let handler = Arc::new(Panicky {
            batch,
            ..Panicky::default()
        });
        let runtime = ConsumerRuntime::new(
            &testing::kafka(),
            options(&group, &topic),
            ConsumerMetrics::default(),
        )
        .unwrap();
        let token = CancellationToken::new();
        let task = tokio::spawn(runtime.run(handler.clone(), token.clone()));
        wait_until("9 records handled", Duration::from_secs(30), || {
            handler.inner.count() == 9 || task.is_finished()
        })
        .await;
        assert!(
            !task.is_finished(),
            "the consumer ended on a panic (batch: {batch})"
        );
        let dlq = testing::read_topic(&dlq_topic(&topic, &group), 1, Duration::from_secs(20)).await;
        token.cancel();
        task.await.unwrap().unwrap();
        let mut seen = handler.inner.seen.lock().unwrap().clone();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen, vec![0, 1, 2, 4, 5, 6, 7, 8, 9], "batch: {batch}");
        assert_eq!(dlq.len(), 1);
        assert_eq!(
            header(&dlq[0], dlq_headers::ATTEMPTS),
            "3",
            "bounded by max_attempts"
        );
        assert_eq!(header(&dlq[0], dlq_headers::ORIGINAL_OFFSET), "3");
        assert_eq!(header(&dlq[0], dlq_headers::REASON), "exhausted");
        assert!(
            header(&dlq[0], dlq_headers::ERROR)
                .contains("handler panicked: bug triggered by record 3"),
            "{}",
            header(&dlq[0], dlq_headers::ERROR)
        );
    }
}

/// The lag gauge follows each assigned partition (before the group's first commit too), and
/// dead-lettered records are counted per group, topic and reason, from 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lag_per_partition_and_dead_letters_per_group_are_exported() {
    use rdkafka::producer::{FutureProducer, FutureRecord};
    let topic = testing::fresh_topic("lag", 2).await;
    let group = testing::unique("g");
    let producer: FutureProducer = testing::kafka().client_config().create().unwrap();
    // Partition 0: 5 records (its handler is stuck on the first); partition 1: 5 and a poison one.
    let mut payloads: Vec<(i32, Vec<u8>)> = (0..5)
        .flat_map(|n| [0, 1].map(|p| (p, serde_json::to_vec(&Msg { n, fail_times: 0 }).unwrap())))
        .collect();
    payloads.push((1, b"not json".to_vec()));
    for (partition, payload) in &payloads {
        producer
            .send(
                FutureRecord::<(), _>::to(&topic)
                    .partition(*partition)
                    .payload(payload),
                Duration::from_secs(10),
            )
            .await
            .unwrap();
    }
    let gate = Arc::new(Gate::default());
    let mut registry = campus_common::metrics::registry("campus-test");
    let metrics = ConsumerMetrics::register(&mut registry);
    let mut kafka = testing::kafka();
    kafka.lag_interval = Duration::from_millis(200);
    let runtime = ConsumerRuntime::new(&kafka, options(&group, &topic), metrics.clone()).unwrap();
    let token = CancellationToken::new();
    let task = tokio::spawn(runtime.run(gate.clone(), token.clone()));
    let text = || {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &registry).unwrap();
        out
    };
    wait_until(
        "partition 0 lags by 5 (nothing committed yet), partition 1 by 0",
        Duration::from_secs(60),
        || metrics.lag(&group, &topic, 0) == Some(5) && metrics.lag(&group, &topic, 1) == Some(0),
    )
    .await;
    let t = text();
    assert!(
        t.contains(&format!(
            "campus_consumer_lag{{group=\"{group}\",topic=\"{topic}\",partition=\"0\"}} 5\n"
        )),
        "{t}"
    );
    let dlq = |reason: &str| {
        format!(
            "campus_consumer_dlq_records_total{{group=\"{group}\",topic=\"{topic}\",reason=\"{reason}\"}}"
        )
    };
    assert!(t.contains(&format!("{} 1\n", dlq("permanent"))), "{t}");
    assert!(
        t.contains(&format!("{} 0\n", dlq("exhausted"))),
        "from 0: {t}"
    );

    gate.opened.store(true, std::sync::atomic::Ordering::SeqCst);
    gate.open.notify_waiters();
    wait_until(
        "partition 0 caught up and committed",
        Duration::from_secs(60),
        || metrics.lag(&group, &topic, 0) == Some(0),
    )
    .await;
    token.cancel();
    task.await.unwrap().unwrap();
    assert_eq!(gate.handled(0), (0..5).collect::<Vec<_>>());
}
