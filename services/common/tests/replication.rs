//! The Kafka runtime on a private three-broker Apache Kafka cluster (KRaft): topics with
//! replication factor 3 and `min.insync.replicas` 2 keep taking writes and serving the group when
//! one broker dies, and nothing acknowledged is lost.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use campus_common::config::KafkaArgs;
use campus_common::kafka::admin::{Admin, TopicSpec};
use campus_common::kafka::{
    ConsumerOptions, ConsumerRuntime, HandleError, Handler, Producer, Record,
    consumer::ConsumerMetrics,
};
use campus_testkit::{self as testing, PrivateKafka};
use tokio_util::sync::CancellationToken;

#[derive(Default)]
struct Seen(Mutex<BTreeSet<u32>>);

#[async_trait]
impl Handler for Seen {
    async fn handle(&self, record: &Record) -> Result<(), HandleError> {
        let n: u32 = record.json()?;
        self.0.lock().unwrap().insert(n);
        Ok(())
    }
}

async fn replicated_topic(kafka: &KafkaArgs, partitions: i32) -> String {
    let name = testing::unique("replicated").replace('_', "-");
    let mut spec = TopicSpec::new(&name, partitions);
    spec.replication = 3;
    spec.config = vec![("min.insync.replicas".into(), "2".into())];
    let admin = Admin::new(kafka).unwrap();
    admin.ensure(&[spec]).await.unwrap();
    for _ in 0..100 {
        let have = admin.describe().await.unwrap();
        if have
            .get(&name)
            .is_some_and(|t| t.partitions == partitions && t.replication == 3)
        {
            return name;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("topic {name} did not appear with 3 replicas");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_broker_killed_mid_stream_loses_no_acknowledged_record() {
    const N: u32 = 2_000;
    let mut cluster = PrivateKafka::start_cluster(3).await;
    let kafka = cluster.kafka();
    let topic = replicated_topic(&kafka, 6).await;

    let seen = Arc::new(Seen::default());
    let mut opts = ConsumerOptions::new(testing::unique("g"), vec![topic.clone()]);
    opts.session_timeout = Duration::from_secs(6);
    let runtime = ConsumerRuntime::new(&kafka, opts, ConsumerMetrics::default()).unwrap();
    let token = CancellationToken::new();
    let consumer = tokio::spawn(runtime.run(seen.clone(), token.clone()));

    let producer = Producer::new(&kafka).unwrap();
    let mut acked = Vec::new();
    for n in 0..N {
        if n == N / 3 {
            // A crash, not a shutdown: no leadership handed over first.
            cluster.kill_node(2);
        }
        let payload = serde_json::to_vec(&n).unwrap();
        match producer
            .send(&topic, format!("k{n}").as_bytes(), &payload, &[])
            .await
        {
            Ok(_) => acked.push(n),
            Err(e) => panic!("record {n} was refused with two of three brokers up: {e:#}"),
        }
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    while seen.0.lock().unwrap().len() < acked.len() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} of {} acknowledged records consumed",
            seen.0.lock().unwrap().len(),
            acked.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The broker comes back and catches up; the stream goes on.
    cluster.resume_node(2).await;
    for n in N..N + 100 {
        producer
            .send(&topic, b"k", &serde_json::to_vec(&n).unwrap(), &[])
            .await
            .unwrap();
        acked.push(n);
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while seen.0.lock().unwrap().len() < acked.len() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "records after the broker's return"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    token.cancel();
    consumer.await.unwrap().unwrap();
    let seen: Vec<u32> = seen.0.lock().unwrap().iter().copied().collect();
    assert_eq!(
        seen, acked,
        "every acknowledged record consumed, none invented"
    );
}
