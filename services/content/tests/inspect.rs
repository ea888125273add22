//! The inspector against a fake OpenAI server: the request it sends, GOOD/BAD, malformed replies,
//! timeouts, 429/5xx with retries, dead-lettering, and the offline policy.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use campus_common::envelope::EventType;
use campus_common::kafka::{Producer, Record, dlq_topic};
use campus_common::testing;
use campus_content::events::{self, PostEvent, PostView};
use common::{FakeOpenAi, Platform, Reply, default_reply, eventually};
use serde_json::json;

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
async fn inspects_through_the_model_with_retries_and_dead_letters_what_it_cannot_use() {
    let fake = FakeOpenAi::start().await;
    // Per-title attempt counts drive the failure modes.
    let attempts: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    let seen = attempts.clone();
    fake.set(move |req, _| {
        let user = req["messages"][1].to_string();
        let marker = ["MALFORMED", "SLOW", "RATE", "DOWN", "SEVEN"]
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
            Some("DOWN") => Reply::Status(503),
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

    // Published: 1 created, 4 created (after a timeout), 5 created (after 429s), 7 created, 1 deleted
    // (BAD update), 8 deleted. Not published: 2 (BAD create), 3 (malformed), 6 (5xx exhausted).
    let topic = p.topic("post.inspected");
    let got = eventually("inspected events", Duration::from_secs(60), || async {
        let records = testing::read_topic(&topic, 6, Duration::from_secs(2)).await;
        (records.len() >= 6).then_some(records)
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
            (4, EventType::Created, 1, vec![]),
            (5, EventType::Created, 1, vec![]),
            (7, EventType::Created, 1, tags(&["a", "b", "c", "d", "e"])),
            (8, EventType::Deleted, 3, vec![]),
        ]
    );
    let deleted_on_bad = got
        .iter()
        .map(decode)
        .find(|e| e.payload.id == 1 && e.event_type == EventType::Deleted)
        .unwrap();
    assert_eq!(deleted_on_bad.payload.user_name, "alice");

    // Unusable replies went to the dead-letter topic with their reason; the worker kept going.
    let dlq = dlq_topic(
        &p.topic("post.original"),
        &format!("{}.inspection", p.prefix),
    );
    let dead = testing::read_topic(&dlq, 2, Duration::from_secs(30)).await;
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
    assert_eq!(
        reasons,
        [
            ("3".to_owned(), "permanent".to_owned()),
            ("6".to_owned(), "exhausted".to_owned())
        ]
    );
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
    // 503: the client's 3 retries per call, times the consumer's 3 attempts.
    assert_eq!(a["DOWN"], 12);
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
    eventually("GOOD post published", Duration::from_secs(30), || async {
        (!testing::read_topic(&topic, 1, Duration::from_secs(2))
            .await
            .is_empty())
        .then_some(())
    })
    .await;
    // Both were inspected by now (the GOOD one was published); only it is on the topic.
    let got = testing::read_topic(&topic, 2, Duration::from_secs(3)).await;
    assert_eq!(got.len(), 1);
    let e = decode(&got[0]);
    assert_eq!(e.payload.id, 2);
    assert_eq!(
        e.payload.tags,
        Some(vec!["kafka".into(), "outbox".into(), "works".into()])
    );
}
