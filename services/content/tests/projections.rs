//! Projection workers against refusals of their stores: Elasticsearch's write block (what a full
//! disk sets) and a lost alias are waited out by the index worker; a Redis key of the wrong type
//! or a Redis out of memory (`OOM`) is dead-lettered by the cache worker instead of being retried
//! forever.

mod support;

use std::time::Duration;

use campus_common::envelope::EventType;
use campus_common::kafka::{Producer, dlq_topic};
use campus_content::config::PostsIndexArgs;
use campus_content::events::{self, PostView};
use campus_content::index::SearchIndex;
use campus_testkit::{self as testing, eventually};
use serde_json::json;
use support::Platform;

fn post(id: u64, version: i64, title: &str) -> PostView {
    PostView {
        id,
        title: title.to_owned(),
        content: "body".into(),
        user_id: 1,
        user_name: "alice".into(),
        category_id: 1,
        category_name: "General".into(),
        tags: Some(vec![]),
        created_at: chrono::Utc::now(),
        updated_at: chrono::Utc::now(),
        version,
    }
}

async fn send(p: &Platform, t: EventType, post: PostView) {
    let mut kafka = testing::kafka();
    kafka.prefix = p.prefix.clone();
    let producer = Producer::new(&kafka).unwrap();
    let e = events::event(t, post);
    producer
        .send(
            &p.topic("post.inspected"),
            e.key.as_bytes(),
            &serde_json::to_vec(&e).unwrap(),
            &[],
        )
        .await
        .unwrap();
}

/// Waits until the cache holds version 1 of the post at `key`.
async fn cached(conn: &redis::aio::MultiplexedConnection, key: &str) {
    eventually(&format!("{key} cached"), Duration::from_secs(20), || {
        let (mut conn, key) = (conn.clone(), key.to_owned());
        async move {
            let v: Option<String> = redis::cmd("HGET")
                .arg(key)
                .arg("v")
                .query_async(&mut conn)
                .await
                .unwrap();
            (v.as_deref() == Some("1")).then_some(())
        }
    })
    .await;
}

async fn es(method: reqwest::Method, url: String, body: serde_json::Value) -> serde_json::Value {
    let res = reqwest::Client::new()
        .request(method, url)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = res.status();
    let v: serde_json::Value = res.json().await.unwrap_or_default();
    assert!(status.is_success(), "{status}: {v}");
    v
}

async fn found(index: &SearchIndex, kw: &str) -> Vec<(u64, i64)> {
    index
        .search(kw, 0, 10)
        .await
        .map(|v| v.iter().map(|p| (p.id, p.version)).collect())
        .unwrap_or_default()
}

/// `index.blocks.write` (403 `cluster_block_exception` per item) for longer than the consumer's
/// attempts, then the alias removed (404 per item): every event is written once the block lifts
/// and the worker recreated the alias; nothing is dead-lettered. Before, both were dead-lettered
/// after three attempts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_index_worker_waits_out_a_write_block_and_recreates_a_lost_alias() {
    let p = Platform::new().await;
    p.start_worker("index", None);
    let index = SearchIndex::new(&PostsIndexArgs::new(
        &p.es_url,
        &p.alias,
        &p.index,
        Duration::from_secs(5),
    ))
    .unwrap();
    send(&p, EventType::Created, post(1, 1, "kwone")).await;
    eventually("indexed", Duration::from_secs(30), || async {
        (found(&index, "kwone").await == [(1, 1)]).then_some(())
    })
    .await;

    let settings = format!("{}/{}/_settings", p.es_url, p.index);
    es(
        reqwest::Method::PUT,
        settings.clone(),
        json!({"index.blocks.write": true}),
    )
    .await;
    send(&p, EventType::Created, post(2, 1, "kwtwo")).await;
    send(&p, EventType::Created, post(3, 1, "kwthree")).await;
    send(&p, EventType::Deleted, post(1, 2, "kwone")).await;
    // More than 3 attempts' worth of backoff (50–400 ms).
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(found(&index, "kwtwo").await.is_empty(), "the block held");
    es(
        reqwest::Method::PUT,
        settings,
        json!({"index.blocks.write": null}),
    )
    .await;
    for (kw, want) in [
        ("kwtwo", vec![(2, 1)]),
        ("kwthree", vec![(3, 1)]),
        ("kwone", vec![]),
    ] {
        eventually(
            &format!("{kw} after the block"),
            Duration::from_secs(30),
            || {
                let want = want.clone();
                let index = index.clone();
                async move { (found(&index, kw).await == want).then_some(()) }
            },
        )
        .await;
    }

    // The alias goes (an operator's mistake, a restore): the worker points it at the index again.
    es(
        reqwest::Method::POST,
        format!("{}/_aliases", p.es_url),
        json!({"actions": [{"remove": {"index": &p.index, "alias": &p.alias}}]}),
    )
    .await;
    send(&p, EventType::Created, post(4, 1, "kwfour")).await;
    eventually(
        "indexed after the alias was recreated",
        Duration::from_secs(30),
        || async { (found(&index, "kwfour").await == [(4, 1)]).then_some(()) },
    )
    .await;

    let dlq = dlq_topic(&p.topic("post.inspected"), &format!("{}.index", p.prefix));
    assert!(
        testing::read_topic(&dlq, 1, Duration::from_secs(3))
            .await
            .is_empty(),
        "nothing dead-lettered"
    );
}

/// A cache key holding another type (`WRONGTYPE`) will never take the post: the record is
/// dead-lettered as permanent and the worker goes on. Before, it was retried forever and its
/// partition stopped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cache_worker_dead_letters_a_wrongtype_key_and_goes_on() {
    let p = Platform::new().await;
    let client = redis::Client::open(testing::redis_url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let key = |id: u64| format!("{}post:{id}", p.redis_prefix);
    let _: () = redis::cmd("SET")
        .arg(key(1))
        .arg("not a hash")
        .query_async(&mut conn)
        .await
        .unwrap();
    p.start_worker("cache", None);
    send(&p, EventType::Created, post(1, 1, "one")).await;
    for id in 2..=4 {
        send(&p, EventType::Created, post(id, 1, "more")).await;
    }
    let dlq = dlq_topic(&p.topic("post.inspected"), &format!("{}.cache", p.prefix));
    let dead = testing::read_topic(&dlq, 1, Duration::from_secs(30)).await;
    assert_eq!(dead.len(), 1, "the WRONGTYPE record was not dead-lettered");
    assert_eq!(dead[0].key_str(), Some("1"));
    assert_eq!(dead[0].header("dlq-reason"), Some(&b"permanent"[..]));
    let error = String::from_utf8_lossy(dead[0].header("dlq-error").unwrap()).into_owned();
    assert!(error.contains("WRONGTYPE"), "{error}");
    for id in 2..=4 {
        cached(&conn, &key(id)).await;
    }
}

/// A Redis at its `maxmemory` with `noeviction` answers every write `OOM`: the cache worker
/// dead-letters the record as permanent instead of retrying it forever (its partition would stop),
/// and once memory is there again the next posts are cached.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cache_worker_dead_letters_an_oom_refusal_and_goes_on() {
    let p = Platform::new().await;
    let redis_server = testing::PrivateRedis::start(false).await;
    let client = redis::Client::open(redis_server.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let config = |key: &'static str, value: &'static str| {
        let mut conn = conn.clone();
        async move {
            let _: () = redis::cmd("CONFIG")
                .arg("SET")
                .arg(key)
                .arg(value)
                .query_async(&mut conn)
                .await
                .unwrap();
        }
    };
    config("maxmemory-policy", "noeviction").await;
    // (1 byte: every write that may grow memory is refused; 0 is no limit.)
    config("maxmemory", "1").await;
    let mut args = p.worker_args("cache", None);
    let at = args.iter().position(|a| a == "--redis-url").unwrap() + 1;
    args[at] = redis_server.url();
    let _worker = p.start_worker_with(args, p.token.clone());
    send(&p, EventType::Created, post(1, 1, "one")).await;
    let dlq = dlq_topic(&p.topic("post.inspected"), &format!("{}.cache", p.prefix));
    let dead = testing::read_topic(&dlq, 1, Duration::from_secs(30)).await;
    assert_eq!(dead.len(), 1, "the OOM record was not dead-lettered");
    assert_eq!(dead[0].key_str(), Some("1"));
    assert_eq!(dead[0].header("dlq-reason"), Some(&b"permanent"[..]));
    let error = String::from_utf8_lossy(dead[0].header("dlq-error").unwrap()).into_owned();
    assert!(error.contains("OOM"), "{error}");

    config("maxmemory", "0").await;
    send(&p, EventType::Created, post(2, 1, "two")).await;
    cached(&conn, &format!("{}post:2", p.redis_prefix)).await;
    let one: bool = redis::cmd("EXISTS")
        .arg(format!("{}post:1", p.redis_prefix))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(!one, "post 1 was refused, not cached");
}
