//! Faults: Kafka stopped while the API takes writes; Elasticsearch stopped under the index worker.
//! Each test stops and restarts a private server (a Kafka broker, an OpenSearch node), never the
//! shared servers. The tests take turns (`HEAVY`): a private OpenSearch node beside a cluster of
//! three brokers is more than two cores keep responsive, and the shared servers starve with them.

mod support;

use std::time::Duration;

use campus_common::config::KafkaArgs;
use campus_common::envelope::EventType;
use campus_common::kafka::admin::{Admin, TopicSpec};
use campus_common::kafka::{Producer, dlq_topic};
use campus_content::config::PostsIndexArgs;
use campus_content::events::{self, PostEvent, PostView};
use campus_content::index::SearchIndex;
use campus_testkit as testing;
use campus_testkit::{PrivateKafka, PrivateSearch, eventually};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;
use serde_json::json;
use support::Platform;

/// Held for the whole of each test here: one private server set at a time.
static HEAVY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Every (key, type, version) on `topic` of `brokers`, read until `want` arrived or `timeout`.
async fn read_events(
    brokers: &str,
    topic: &str,
    want: usize,
    timeout: Duration,
) -> Vec<(String, EventType, i64)> {
    let mut cfg = KafkaArgs::new(brokers).client_config();
    cfg.set("group.id", testing::unique("reader"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("session.timeout.ms", "6000");
    let consumer: StreamConsumer = cfg.create().unwrap();
    consumer.subscribe(&[topic]).unwrap();
    let deadline = tokio::time::Instant::now() + timeout;
    let mut out = Vec::new();
    while out.len() < want {
        match tokio::time::timeout_at(deadline, consumer.recv()).await {
            Ok(Ok(m)) => {
                let e: PostEvent = serde_json::from_slice(m.payload().unwrap()).unwrap();
                out.push((e.key, e.event_type, e.version));
            }
            Ok(Err(_)) => tokio::time::sleep(Duration::from_millis(100)).await,
            Err(_) => break,
        }
    }
    out.sort_by(|x, y| (&x.0, x.2).cmp(&(&y.0, y.2)));
    out
}

async fn pending(p: &Platform) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE sent_at IS NULL")
        .fetch_one(&p.pool)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_kafka_stopped_writes_succeed_and_every_event_arrives_once_it_is_back() {
    let _heavy = HEAVY.lock().await;
    let mut kafka = PrivateKafka::start().await;
    let mut p = Platform::with_servers(kafka.brokers(), testing::es_url()).await;
    let topic = p.topic("post.original");
    Admin::new(&KafkaArgs::new(kafka.brokers()))
        .unwrap()
        .ensure(&[TopicSpec::new(&topic, 3)])
        .await
        .unwrap();
    p.start_api().await;
    let a = p.create_post(1, 1, "before the outage", "x").await["id"]
        .as_u64()
        .unwrap();
    eventually("first event relayed", Duration::from_secs(30), || async {
        (pending(&p).await == 0).then_some(())
    })
    .await;

    kafka.stop().await;
    let b = p.create_post(2, 2, "during the outage b", "x").await["id"]
        .as_u64()
        .unwrap();
    let c = p.create_post(3, 3, "during the outage c", "x").await["id"]
        .as_u64()
        .unwrap();
    let (s, _) = p
        .put(
            &format!("/posts/{b}"),
            json!({"title": "b2", "content": "y", "categoryId": 1}),
        )
        .await;
    assert_eq!(s, 200);
    let (s, _) = p.delete(&format!("/posts/{c}")).await;
    assert_eq!(s, 204);
    assert_eq!(
        pending(&p).await,
        4,
        "the outage's events wait in the outbox"
    );

    kafka.resume().await;
    eventually("outbox drained", Duration::from_secs(60), || async {
        (pending(&p).await == 0).then_some(())
    })
    .await;
    let got = read_events(&kafka.brokers(), &topic, 5, Duration::from_secs(30)).await;
    let (a, b, c) = (a.to_string(), b.to_string(), c.to_string());
    let outage: Vec<_> = got.iter().filter(|(k, _, _)| *k != a).cloned().collect();
    assert_eq!(
        outage,
        vec![
            (b.clone(), EventType::Created, 1),
            (b, EventType::Updated, 2),
            (c.clone(), EventType::Created, 1),
            (c, EventType::Deleted, 2),
        ]
    );
    p.token.cancel();
    kafka.stop().await;
}

fn post(id: u64, version: i64, title: &str) -> PostView {
    PostView {
        id,
        title: title.to_owned(),
        content: "text".into(),
        user_id: 1,
        user_name: "alice".into(),
        category_id: 1,
        category_name: "General".into(),
        tags: Some(vec!["t".into()]),
        created_at: chrono::Utc::now(),
        updated_at: chrono::Utc::now(),
        version,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_elasticsearch_stopped_the_index_worker_waits_and_loses_nothing() {
    let _heavy = HEAVY.lock().await;
    let mut es = PrivateSearch::start().await;
    let p = Platform::with_servers(testing::kafka_brokers(), es.url()).await;
    testing::create_topics(&[
        TopicSpec::new(p.topic("post.original"), 3),
        TopicSpec::new(p.topic("post.inspected"), 3),
    ])
    .await;
    p.start_worker("index", None);
    let mut kafka = testing::kafka();
    kafka.prefix = p.prefix.clone();
    let producer = Producer::new(&kafka).unwrap();
    let topic = p.topic("post.inspected");
    let send = |t: EventType, post: PostView| {
        let (producer, topic) = (producer.clone(), topic.clone());
        async move {
            let e = events::event(t, post);
            producer
                .send(
                    &topic,
                    e.key.as_bytes(),
                    &serde_json::to_vec(&e).unwrap(),
                    &[],
                )
                .await
                .unwrap();
        }
    };
    let index = SearchIndex::new(&PostsIndexArgs::new(
        &es.url(),
        &p.alias,
        &p.index,
        Duration::from_secs(2),
    ))
    .unwrap();
    let titles = |ids: &[u64]| ids.iter().map(|i| format!("kw{i}")).collect::<Vec<_>>();
    async fn found(index: &SearchIndex, kw: &str) -> Vec<(u64, i64)> {
        index
            .search(kw, 0, 10)
            .await
            .map(|v| v.iter().map(|p| (p.id, p.version)).collect())
            .unwrap_or_default()
    }
    for i in 1..=3 {
        send(EventType::Created, post(i, 1, &format!("kw{i}"))).await;
    }
    for kw in titles(&[1, 2, 3]) {
        eventually(
            "indexed before the outage",
            Duration::from_secs(30),
            || async { (found(&index, &kw).await.len() == 1).then_some(()) },
        )
        .await;
    }

    es.stop().await;
    for i in 4..=6 {
        send(EventType::Created, post(i, 1, &format!("kw{i}"))).await;
    }
    send(EventType::Updated, post(1, 2, "kw1 changed")).await;
    send(EventType::Deleted, post(2, 2, "kw2")).await;
    // Long enough for several failed attempts (more than the consumer's 3 attempts would allow).
    tokio::time::sleep(Duration::from_secs(4)).await;
    es.resume().await;

    for i in [3, 4, 5, 6] {
        let kw = format!("kw{i}");
        eventually(
            "indexed after the outage",
            Duration::from_secs(60),
            || async { (found(&index, &kw).await == [(i, 1)]).then_some(()) },
        )
        .await;
    }
    eventually("update applied", Duration::from_secs(30), || async {
        (found(&index, "changed").await == [(1, 2)]).then_some(())
    })
    .await;
    eventually("delete applied", Duration::from_secs(30), || async {
        found(&index, "kw2").await.is_empty().then_some(())
    })
    .await;
    let dlq = dlq_topic(&topic, &format!("{}.index", p.prefix));
    assert!(
        testing::read_topic(&dlq, 1, Duration::from_secs(3))
            .await
            .is_empty(),
        "nothing dead-lettered"
    );
    p.token.cancel();
    es.stop().await;
}

/// Three brokers, both content topics with replication factor 3 and `min.insync.replicas` 2: a
/// broker crashes in the middle of a stream of writes. Every post still reaches search, the
/// follower's inbox and the detail cache, and no event is lost on either topic.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_broker_of_three_killed_mid_stream_every_post_reaches_every_read_model() {
    const POSTS: usize = 30;
    let _heavy = HEAVY.lock().await;
    let mut kafka = PrivateKafka::start_cluster(3).await;
    let mut p = Platform::with_servers(kafka.brokers(), testing::es_url()).await;
    let admin = Admin::new(&KafkaArgs::new(kafka.brokers())).unwrap();
    admin
        .ensure(&[
            TopicSpec::new(p.topic("post.original"), 3),
            TopicSpec::new(p.topic("post.inspected"), 3),
        ])
        .await
        .unwrap();
    p.start_api().await;
    let workers: Vec<_> = ["inspect", "cache", "inbox", "index"]
        .into_iter()
        .map(|w| p.start_worker(w, None))
        .collect();
    p.wait_search_ready().await;
    let author = p.create_user("author").await;
    let follower = p.create_user("follower").await;
    let (s, v) = p
        .post(
            "/follows",
            json!({"followerId": follower, "followeeId": author}),
        )
        .await;
    assert_eq!(s, 201, "{v}");

    let mut ids = Vec::new();
    for j in 0..POSTS {
        if j == POSTS / 3 {
            kafka.kill_node(3);
        }
        let v = p
            .create_post(author, 1, &format!("Replicated kw{j}x"), "three brokers")
            .await;
        ids.push(v["id"].as_u64().unwrap());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let deadline = Duration::from_secs(90);
    eventually("every post searchable", deadline, || async {
        let mut found = p.search_ids("replicated").await;
        found.sort_unstable();
        (found == ids).then_some(())
    })
    .await;
    eventually("every post in the follower's inbox", deadline, || async {
        let mut found = p.inbox_ids(follower).await;
        found.sort_unstable();
        (found == ids).then_some(())
    })
    .await;
    for id in &ids {
        eventually("the post in the detail cache", deadline, || async {
            let (s, _, cache) = p.detail(*id).await;
            (s == 200 && cache == "hit").then_some(())
        })
        .await;
    }
    assert_eq!(pending(&p).await, 0, "the outbox drained");
    for topic in ["post.original", "post.inspected"] {
        let got = read_events(
            &kafka.brokers(),
            &p.topic(topic),
            POSTS,
            Duration::from_secs(30),
        )
        .await;
        let mut keys: Vec<u64> = got.iter().map(|(k, _, _)| k.parse().unwrap()).collect();
        keys.sort_unstable();
        keys.dedup();
        assert_eq!(keys, ids, "one created event per post on {topic}");
    }
    // The workers stop (commit, leave their groups) while the brokers are still there.
    p.token.cancel();
    for w in workers {
        tokio::time::timeout(Duration::from_secs(60), w)
            .await
            .expect("a worker stops within a minute")
            .unwrap();
    }
    drop(kafka);
}
