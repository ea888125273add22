//! The inspector against a fake OpenAI server: the request it sends, GOOD/BAD, malformed replies,
//! timeouts, 429/5xx/401 waited out, dead-lettering of what cannot be parsed, the verdict applied
//! to the detail endpoint, and the offline policy.

mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use campus_common::envelope::EventType;
use campus_common::kafka::{Producer, Record, dlq_topic};
use campus_content::events::{self, PostEvent, PostView};
use campus_testkit::{self as testing, eventually};
use serde_json::json;
use support::{FakeOpenAi, Platform, Reply, default_reply};

fn post(id: u64, version: i64, title: &str) -> PostView {
    PostView {
        id,
        title: title.to_owned(),
        content: format!("content of {id}"),
        user_id: 1,
        user_name: "alice".into(),
        category_id: 2,
        category_name: "Tech".into(),
        tags: None,
        created_at: chrono::Utc::now(),
        updated_at: chrono::Utc::now(),
        version,
    }
}

async fn produce(p: &Platform, t: EventType, post: PostView) {
    let mut kafka = testing::kafka();
    kafka.prefix = p.prefix.clone();
    let producer = Producer::new(&kafka).unwrap();
    let e = events::event(t, post);
    producer
        .send(
            &p.topic("post.original"),
            e.key.as_bytes(),
            &serde_json::to_vec(&e).unwrap(),
            &[],
        )
        .await
        .unwrap();
}

fn decode(r: &Record) -> PostEvent {
    serde_json::from_slice(r.payload.as_deref().unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inspects_through_the_model_waits_out_outages_and_dead_letters_only_what_it_cannot_parse() {
    let fake = FakeOpenAi::start().await;
    // Per-title attempt counts drive the failure modes.
    let attempts: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    let seen = attempts.clone();
    fake.set(move |req, _| {
        let user = req["messages"][1].to_string();
        let marker = ["MALFORMED", "SLOW", "RATE", "DOWN", "AUTH", "SEVEN"]
            .into_iter()
            .find(|m| user.contains(m));
        let n = {
            let mut a = seen.lock().unwrap();
            let n = a.entry(marker.unwrap_or("").to_owned()).or_default();
            *n += 1;
            *n
        };
        match marker {
            Some("MALFORMED") => Reply::Content("this is not JSON".into()),
            Some("SLOW") if n == 1 => Reply::Delay(Duration::from_secs(4)),
            Some("RATE") if n <= 2 => Reply::Status(429),
            // An outage longer than the client's retries and the consumer's attempts together.
            Some("DOWN") if n <= 14 => Reply::Status(503),
            // A refused key (fixed after a while).
            Some("AUTH") if n <= 4 => Reply::Status(401),
            Some("SEVEN") => Reply::Content(
                json!({"status": "GOOD", "tags": ["a", "b", "c", "d", "e", "f", "g"]}).to_string(),
            ),
            _ => Reply::Content(default_reply(req)),
        }
    });
    let p = Platform::new().await;
    let mut args = p.worker_args("inspect", Some(&fake.url));
    args.extend(["--openai-model".into(), "campus-test-model".into()]);
    p.start_worker_with(args, p.token.clone());

    produce(&p, EventType::Created, post(1, 1, "good kwone")).await;
    produce(&p, EventType::Created, post(2, 1, "BADWORD create")).await;
    produce(&p, EventType::Created, post(3, 1, "MALFORMED reply")).await;
    produce(&p, EventType::Created, post(4, 1, "SLOW reply")).await;
    produce(&p, EventType::Created, post(5, 1, "RATE limited")).await;
    produce(&p, EventType::Created, post(6, 1, "DOWN server")).await;
    produce(&p, EventType::Created, post(7, 1, "SEVEN tags")).await;
    let mut bad_update = post(1, 2, "good kwone");
    bad_update.content = "now BADWORD".into();
    produce(&p, EventType::Updated, bad_update).await;
    produce(&p, EventType::Deleted, post(8, 3, "gone")).await;
    produce(&p, EventType::Created, post(9, 1, "AUTH refused")).await;

    // Published: 1 created, 4 created (after a timeout), 5 created (after 429s), 6 created (after
    // the 503 outage), 7 created, 9 created (after the 401s), 1 deleted (BAD update), 2 deleted
    // (BAD create), 8 deleted. Not published: 3 (malformed).
    let topic = p.topic("post.inspected");
    let got = eventually("inspected events", Duration::from_secs(90), || async {
        let records = testing::read_topic(&topic, 9, Duration::from_secs(2)).await;
        (records.len() >= 9).then_some(records)
    })
    .await;
    let mut summary: Vec<(u64, EventType, i64, Vec<String>)> = got
        .iter()
        .map(decode)
        .map(|e| {
            (
                e.payload.id,
                e.event_type,
                e.version,
                e.payload.tags.clone().unwrap_or_default(),
            )
        })
        .collect();
    summary.sort_by_key(|s| (s.0, s.2));
    let tags = |t: &[&str]| t.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    assert_eq!(
        summary,
        vec![
            (1, EventType::Created, 1, tags(&["tagone"])),
            (1, EventType::Deleted, 2, vec![]),
            (2, EventType::Deleted, 1, vec![]),
            (4, EventType::Created, 1, vec![]),
            (5, EventType::Created, 1, vec![]),
            (6, EventType::Created, 1, vec![]),
            (7, EventType::Created, 1, tags(&["a", "b", "c", "d", "e"])),
            (8, EventType::Deleted, 3, vec![]),
            (9, EventType::Created, 1, vec![]),
        ]
    );
    let deleted_on_bad = got
        .iter()
        .map(decode)
        .find(|e| e.payload.id == 1 && e.event_type == EventType::Deleted)
        .unwrap();
    assert_eq!(deleted_on_bad.payload.user_name, "alice");

    // Only the unusable reply went to the dead-letter topic; outages lost nothing.
    let dlq = dlq_topic(
        &p.topic("post.original"),
        &format!("{}.inspection", p.prefix),
    );
    let dead = testing::read_topic(&dlq, 2, Duration::from_secs(5)).await;
    let mut reasons: Vec<(String, String)> = dead
        .iter()
        .map(|r| {
            (
                r.key_str().unwrap().to_owned(),
                String::from_utf8_lossy(r.header("dlq-reason").unwrap()).into_owned(),
            )
        })
        .collect();
    reasons.sort();
    assert_eq!(reasons, [("3".to_owned(), "permanent".to_owned())]);
    assert!(
        String::from_utf8_lossy(
            dead.iter()
                .find(|r| r.key_str() == Some("3"))
                .unwrap()
                .header("dlq-error")
                .unwrap()
        )
        .contains("expected JSON")
    );

    // What it sent: the configured model, JSON structured output, temperature 0.
    let requests = fake.requests.lock().unwrap().clone();
    for r in &requests {
        assert_eq!(r["model"], "campus-test-model");
        assert_eq!(r["temperature"], 0.0);
        assert_eq!(r["response_format"]["type"], "json_schema");
        assert_eq!(r["response_format"]["json_schema"]["strict"], true);
        assert_eq!(
            r["response_format"]["json_schema"]["schema"]["properties"]["status"]["enum"],
            json!(["GOOD", "BAD"])
        );
        assert_eq!(r["messages"][0]["role"], "system");
    }
    let a = attempts.lock().unwrap().clone();
    assert_eq!(a["RATE"], 3, "two 429s, then the answer");
    assert!(a["SLOW"] >= 2, "timed out once, then retried");
    assert_eq!(a["DOWN"], 15, "14 answers 503, then the post goes through");
    assert_eq!(a["AUTH"], 5, "4 answers 401, then the post goes through");
    assert_eq!(a["MALFORMED"], 1, "a malformed reply is not retried");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_key_the_offline_policy_decides() {
    let p = Platform::new().await;
    p.start_worker("inspect", None);
    produce(&p, EventType::Created, post(1, 1, "Scam alert")).await;
    produce(
        &p,
        EventType::Created,
        post(2, 1, "How the Kafka outbox works"),
    )
    .await;
    let topic = p.topic("post.inspected");
    // The GOOD post is published with its tags; the BAD one is withdrawn (`deleted`).
    let mut got: Vec<PostEvent> = eventually("both inspected", Duration::from_secs(30), || async {
        let r = testing::read_topic(&topic, 2, Duration::from_secs(2)).await;
        (r.len() >= 2).then_some(r)
    })
    .await
    .iter()
    .map(decode)
    .collect();
    got.sort_by_key(|e| e.payload.id);
    assert_eq!(got.len(), 2);
    assert_eq!(
        (got[0].payload.id, got[0].event_type),
        (1, EventType::Deleted)
    );
    assert_eq!(
        (got[1].payload.id, got[1].event_type),
        (2, EventType::Created)
    );
    assert_eq!(
        got[1].payload.tags,
        Some(vec!["kafka".into(), "outbox".into(), "works".into()])
    );
}

/// A post the inspector rejects is never served again: not from the cache the API filled before the
/// verdict, and not from MySQL after its cache entry is gone (TTL, eviction, a Redis restart).
/// Before, a BAD create published nothing: the cached copy stayed, and a miss read it from MySQL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_post_is_not_served_from_the_cache_or_from_mysql() {
    let fake = FakeOpenAi::start().await;
    let gate = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let open = gate.clone();
    // The model is down until the gate opens, so the API reads (and caches) the post first.
    fake.set(move |req, _| {
        if open.load(std::sync::atomic::Ordering::SeqCst) {
            Reply::Content(default_reply(req))
        } else {
            Reply::Status(503)
        }
    });
    let mut p = Platform::new().await;
    p.start_api().await;
    p.start_worker("inspect", Some(&fake.url));
    p.start_worker("cache", Some(&fake.url));
    let user = p.create_user("mallory").await;
    let id = p
        .create_post(user, 1, "Totally fine", "BADWORD inside")
        .await["id"]
        .as_u64()
        .unwrap();
    // Not inspected yet: the author reads it, and the API fills the cache.
    assert_eq!(p.detail(id).await.0, 200);
    let (status, _, cache) = p.detail(id).await;
    assert_eq!((status, cache.as_str()), (200, "hit"));
    eventually("the inspector tried", Duration::from_secs(20), || async {
        (fake.count() >= 2).then_some(())
    })
    .await;
    gate.store(true, std::sync::atomic::Ordering::SeqCst);

    eventually(
        "the rejected post's detail is 404",
        Duration::from_secs(30),
        || async { (p.detail(id).await.0 == 404).then_some(()) },
    )
    .await;
    let rejected: Option<i64> =
        sqlx::query_scalar("SELECT rejected_version FROM posts WHERE id = ?")
            .bind(id)
            .fetch_one(&p.pool)
            .await
            .unwrap();
    assert_eq!(rejected, Some(1));
    // The cache entry goes (TTL, eviction): the miss reads MySQL, which knows the verdict.
    let client = redis::Client::open(testing::redis_url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let key = format!("{}post:{id}", p.redis_prefix);
    let _: i64 = redis::cmd("DEL")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(
        p.detail(id).await.0,
        404,
        "served from MySQL after a cache miss"
    );
    let tombstone: Option<String> = redis::cmd("HGET")
        .arg(&key)
        .arg("x")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(
        tombstone.as_deref(),
        Some("1"),
        "the miss wrote a tombstone"
    );

    // A later, acceptable version is served again.
    let (s, v) = p
        .put(
            &format!("/posts/{id}"),
            json!({"title": "Totally fine", "content": "now clean", "categoryId": 1}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    eventually(
        "the GOOD version is served",
        Duration::from_secs(30),
        || async {
            let (s, v, _) = p.detail(id).await;
            (s == 200 && v["version"] == 2).then_some(())
        },
    )
    .await;
}

/// `dlq list` shows what the inspector dead-lettered; after the cause is fixed, `dlq replay`
/// re-drives it to `post.original` and the post is inspected and published; a second replay
/// re-drives nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_listed_and_replayed_after_a_fix() {
    let fake = FakeOpenAi::start().await;
    let broken = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let b = broken.clone();
    fake.set(move |req, _| {
        if b.load(std::sync::atomic::Ordering::SeqCst) {
            Reply::Content("not JSON at all".into())
        } else {
            Reply::Content(default_reply(req))
        }
    });
    let p = Platform::new().await;
    p.start_worker("inspect", Some(&fake.url));
    produce(&p, EventType::Created, post(1, 1, "kwone")).await;
    produce(&p, EventType::Created, post(2, 1, "kwtwo")).await;
    let dlq = dlq_topic(
        &p.topic("post.original"),
        &format!("{}.inspection", p.prefix),
    );
    assert_eq!(
        testing::read_topic(&dlq, 2, Duration::from_secs(30))
            .await
            .len(),
        2
    );

    let dlq_cmd = |verb: &str, extra: &[&str]| {
        let mut args: Vec<String> = [
            "campus-content",
            "dlq",
            verb,
            "--kafka-brokers",
            &testing::kafka_brokers(),
            "--kafka-prefix",
            &p.prefix,
            "--group",
            "inspection",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        let cli = <campus_content::cli::Cli as clap::Parser>::try_parse_from(args).unwrap();
        let campus_content::cli::Command::Dlq(cmd) = cli.command else {
            unreachable!()
        };
        cmd
    };
    let listed = dlq_cmd("list", &[])
        .run(campus_contract::Service::Content)
        .await
        .unwrap();
    let mut keys: Vec<_> = listed.iter().filter_map(|d| d.key.clone()).collect();
    keys.sort();
    assert_eq!(keys, ["1", "2"]);
    assert!(
        listed
            .iter()
            .all(|d| d.reason.as_deref() == Some("permanent"))
    );
    assert!(
        dlq_cmd("list", &["--since", "2099-01-01T00:00:00Z"])
            .run(campus_contract::Service::Content)
            .await
            .unwrap()
            .is_empty()
    );

    broken.store(false, std::sync::atomic::Ordering::SeqCst);
    let replayed = dlq_cmd("replay", &["--since", "1h"])
        .run(campus_contract::Service::Content)
        .await
        .unwrap();
    assert_eq!(replayed.len(), 2);
    let topic = p.topic("post.inspected");
    let got = eventually(
        "replayed posts inspected",
        Duration::from_secs(30),
        || async {
            let r = testing::read_topic(&topic, 2, Duration::from_secs(2)).await;
            (r.len() >= 2).then_some(r)
        },
    )
    .await;
    let mut ids: Vec<u64> = got.iter().map(|r| decode(r).payload.id).collect();
    ids.sort_unstable();
    assert_eq!(ids, [1, 2]);
    assert!(
        dlq_cmd("replay", &[])
            .run(campus_contract::Service::Content)
            .await
            .unwrap()
            .is_empty(),
        "replayed once"
    );
    // The re-driven records say where they came from.
    let original = testing::read_topic(&p.topic("post.original"), 4, Duration::from_secs(10)).await;
    assert_eq!(
        original
            .iter()
            .filter(|r| r.header("dlq-replayed-from").is_some())
            .count(),
        2
    );
}
