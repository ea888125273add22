//! The native indexer against the real local Kafka and Elasticsearch (scripts/servers.sh).

mod support;

use std::time::Duration;

use campus_common::kafka::dlq_headers;
use campus_testkit::{self as testing, PrivateSearch, eventually};
use support::*;

/// Access lines over two days, ordinary log lines, a non-JSON line and a line the mapping refuses:
/// every access line lands in the daily index of its own time, the others are skipped or
/// dead-lettered, and replaying the whole topic from offset 0 changes no count.
#[tokio::test]
async fn indexes_daily_dead_letters_bad_lines_and_replays_without_duplicates() {
    let es_url = testing::es_url();
    let es = es(&es_url);
    let prefix = fresh_prefix();
    let topic = testing::fresh_topic("access-log", 2).await;
    let shipped = at("2026-11-25T12:00:05Z");

    let mut payloads = Vec::new();
    for i in 0..30 {
        let day = if i < 12 { "2026-11-24" } else { "2026-11-25" };
        let time = at(&format!("{day}T11:{:02}:00Z", i % 60));
        let line = access_line(
            time,
            "campus-content",
            "GET",
            &format!("/posts/{i}/detail"),
            "/posts/{id}/detail",
            200,
            1.0 + i as f64,
        );
        payloads.push(event_bytes(&serde_json::to_string(&line).unwrap(), shipped));
        if i == 10 {
            // A panic message on stdout: not JSON.
            payloads.push(event_bytes(
                "thread 'main' panicked at src/main.rs:1:1",
                shipped,
            ));
        }
        if i % 10 == 0 {
            // An ordinary JSON log line of the same container: skipped.
            payloads.push(event_bytes(
                r#"{"timestamp":"2026-11-25T11:00:00Z","level":"INFO","message":"listening"}"#,
                shipped,
            ));
        }
    }
    // JSON with the access fields but a status the mapping (integer) refuses.
    let mut bad = serde_json::to_value(access_line(
        at("2026-11-25T11:59:00Z"),
        "campus-content",
        "GET",
        "/x",
        "/x",
        200,
        1.0,
    ))
    .unwrap();
    bad["status"] = serde_json::json!("two hundred");
    payloads.push(event_bytes(&bad.to_string(), shipped));
    produce(&topic, &payloads).await;

    let group = testing::unique("log-index");
    let worker = start_worker(&es_url, &topic, &group, &prefix).await;
    eventually("30 indexed documents", Duration::from_secs(60), || async {
        (count(&es, &prefix).await == 30).then_some(())
    })
    .await;
    assert_eq!(count(&es, &format!("{prefix}-2026.11.24")).await, 12);
    assert_eq!(count(&es, &format!("{prefix}-2026.11.25")).await, 18);

    let dlq = campus_common::kafka::dlq_topic(&topic, &group);
    let dead = testing::read_topic(&dlq, 2, Duration::from_secs(30)).await;
    assert_eq!(dead.len(), 2, "two records dead-lettered");
    let mut errors: Vec<String> = dead
        .iter()
        .map(|r| {
            assert_eq!(r.header(dlq_headers::REASON), Some(&b"permanent"[..]));
            assert_eq!(
                r.header(dlq_headers::ORIGINAL_TOPIC),
                Some(topic.as_bytes())
            );
            String::from_utf8(r.header(dlq_headers::ERROR).unwrap().to_vec()).unwrap()
        })
        .collect();
    errors.sort();
    assert!(errors[0].contains("rejected the document"), "{errors:?}");
    assert!(errors[1].contains("not JSON"), "{errors:?}");
    assert_eq!(
        worker
            .metric("campus_log_index_documents_total{outcome=\"skipped\"}")
            .await,
        3.0
    );
    // The document is the line plus the Kubernetes fields, under the record's id.
    let hit = es
        .search(
            &prefix,
            &serde_json::json!({"query": {"term": {"path": "/posts/29/detail"}}}),
        )
        .await
        .unwrap();
    let hit = &hit["hits"]["hits"][0];
    assert!(
        hit["_id"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{topic}-"))
    );
    assert_eq!(hit["_source"]["kubernetes"]["pod"]["name"], META.pod);
    assert_eq!(hit["_source"]["duration_ms"], 30.0);
    worker.stop().await;

    // Replay from offset 0 (a new group starts at the earliest offset): same ids, same counts.
    let replay_group = testing::unique("log-index-replay");
    let replay = start_worker(&es_url, &topic, &replay_group, &prefix).await;
    eventually(
        "the replay to see all 30 access lines",
        Duration::from_secs(60),
        || async {
            (replay
                .metric("campus_log_index_documents_total{outcome=\"duplicate\"}")
                .await
                == 30.0)
                .then_some(())
        },
    )
    .await;
    assert_eq!(
        replay
            .metric("campus_log_index_documents_total{outcome=\"indexed\"}")
            .await,
        0.0
    );
    assert_eq!(count(&es, &prefix).await, 30);
    replay.stop().await;
    cleanup(&es, &prefix).await;
}

/// The template is installed at start: the alias exists and the mapping is the schema's, before
/// any line arrives.
#[tokio::test]
async fn template_and_alias_exist_at_start() {
    let es_url = testing::es_url();
    let es = es(&es_url);
    let prefix = fresh_prefix();
    campus_log::indexer::prepare(&es, &prefix).await.unwrap();
    let http = reqwest::Client::new();
    let aliases: serde_json::Value = http
        .get(format!("{es_url}/_alias/{prefix}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let today = campus_common::logschema::index_for(&prefix, chrono::Utc::now());
    assert!(aliases[&today]["aliases"][&prefix].is_object(), "{aliases}");
    let mapping: serde_json::Value = http
        .get(format!("{es_url}/{today}/_mapping"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let props = &mapping[&today]["mappings"]["properties"];
    for (field, _) in campus_common::logschema::FIELDS {
        assert!(props[*field].is_object(), "{field} not mapped: {mapping}");
    }
    assert_eq!(props["duration_ms"]["type"], "float");
    // Preparing twice is fine (restarts).
    campus_log::indexer::prepare(&es, &prefix).await.unwrap();
    cleanup(&es, &prefix).await;
}

/// Elasticsearch goes away under the indexer: lines wait (nothing is dead-lettered) and are
/// written once it is back.
#[tokio::test]
async fn an_elasticsearch_outage_stalls_the_indexer_without_dead_lettering() {
    let mut server = PrivateSearch::start().await;
    let es_url = server.url();
    let es = es(&es_url);
    let prefix = fresh_prefix();
    let topic = testing::fresh_topic("access-log", 1).await;
    let group = testing::unique("log-index");
    let worker = start_worker(&es_url, &topic, &group, &prefix).await;
    let lines = |from: u32| -> Vec<Vec<u8>> {
        (from..from + 10)
            .map(|i| {
                let l = access_line(
                    at("2026-11-25T11:00:00Z"),
                    "campus-coupon",
                    "POST",
                    "/coupons",
                    "/coupons",
                    201,
                    f64::from(i),
                );
                event_bytes(
                    &serde_json::to_string(&l).unwrap(),
                    at("2026-11-25T11:00:01Z"),
                )
            })
            .collect()
    };
    produce(&topic, &lines(0)).await;
    eventually("the first 10 lines", Duration::from_secs(60), || async {
        (count(&es, &prefix).await == 10).then_some(())
    })
    .await;

    server.stop().await;
    produce(&topic, &lines(10)).await;
    // The worker is retrying against nothing now.
    eventually("a failed bulk attempt", Duration::from_secs(60), || async {
        (worker
            .metric("campus_log_index_bulk_duration_seconds_count")
            .await
            >= 2.0)
            .then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    server.resume().await;
    // The node comes back with its data: the 10 lines from before and the 10 that waited, each
    // once.
    eventually(
        "the 10 waiting lines after the outage",
        Duration::from_secs(60),
        || async { (count(&es, &prefix).await == 20).then_some(()) },
    )
    .await;
    assert_eq!(
        worker
            .metric("campus_log_index_documents_total{outcome=\"rejected\"}")
            .await,
        0.0
    );
    // All 20 records finished (the runtime counts a batch just after its bulk answered).
    eventually("20 records finished", Duration::from_secs(30), || async {
        (worker.metric("campus_consumer_records_total{").await == 20.0).then_some(())
    })
    .await;
    worker.stop().await;
    let dlq = campus_common::kafka::dlq_topic(&topic, &group);
    assert!(
        testing::read_topic(&dlq, 1, Duration::from_secs(3))
            .await
            .is_empty(),
        "nothing dead-lettered"
    );
}

/// `campus-log dlq` with the contract's names (a prefix, the group `log-index`): a day's index made
/// by hand with a mapping that refuses the access lines (`method` a number) dead-letters them;
/// `list` shows them, and after the fix (the bad index deleted) `replay` re-drives them to
/// `access-log` and the indexer stores them; a second replay re-drives nothing.
#[tokio::test]
async fn dead_letters_are_listed_and_replayed_after_a_fix() {
    use campus_common::kafka::admin::TopicSpec;
    let es_url = testing::es_url();
    let es = es(&es_url);
    let prefix = fresh_prefix();
    let kafka_prefix = testing::unique("dlq").replace('_', "-");
    let topic = format!("{kafka_prefix}.access-log");
    let group = format!("{kafka_prefix}.log-index");
    testing::create_topics(&[TopicSpec::new(&topic, 1)]).await;
    let day = format!("{prefix}-2026.11.25");
    let http = reqwest::Client::new();
    let made = http
        .put(format!("{es_url}/{day}"))
        .json(&serde_json::json!({"mappings": {"properties": {"method": {"type": "long"}}}}))
        .send()
        .await
        .unwrap();
    assert!(made.status().is_success(), "{:?}", made.text().await);

    let shipped = at("2026-11-25T12:00:05Z");
    let lines: Vec<Vec<u8>> = (0..3)
        .map(|i| {
            let line = access_line(
                at(&format!("2026-11-25T11:0{i}:00Z")),
                "campus-coupon",
                "POST",
                "/coupons",
                "/coupons",
                201,
                2.0,
            );
            event_bytes(&serde_json::to_string(&line).unwrap(), shipped)
        })
        .collect();
    produce(&topic, &lines).await;
    let worker = start_worker(&es_url, &topic, &group, &prefix).await;
    let dlq = campus_common::kafka::dlq_topic(&topic, &group);
    assert_eq!(
        testing::read_topic(&dlq, 3, Duration::from_secs(60))
            .await
            .len(),
        3
    );

    let cmd = |verb: &str| {
        let cli = <campus_log::cli::Cli as clap::Parser>::try_parse_from([
            "campus-log",
            "dlq",
            verb,
            "--kafka-brokers",
            &testing::kafka_brokers(),
            "--kafka-prefix",
            &kafka_prefix,
            "--group",
            "log-index",
        ])
        .unwrap();
        let campus_log::cli::Command::Dlq(cmd) = cli.command else {
            unreachable!()
        };
        cmd
    };
    let listed = cmd("list")
        .run(campus_contract::Service::Log)
        .await
        .unwrap();
    assert_eq!(listed.len(), 3);
    assert!(listed.iter().all(|d| {
        d.reason.as_deref() == Some("permanent")
            && d.original_topic.as_deref() == Some(topic.as_str())
            && d.error
                .as_deref()
                .is_some_and(|e| e.contains("rejected the document"))
    }));

    // The fix: the index with the wrong mapping goes; the template makes the next one.
    let _ = es.delete_indices(&day).await;
    let replayed = cmd("replay")
        .run(campus_contract::Service::Log)
        .await
        .unwrap();
    assert_eq!(replayed.len(), 3);
    eventually(
        "3 replayed lines indexed",
        Duration::from_secs(60),
        || async { (count(&es, &prefix).await == 3).then_some(()) },
    )
    .await;
    assert!(
        cmd("replay")
            .run(campus_contract::Service::Log)
            .await
            .unwrap()
            .is_empty(),
        "replayed once"
    );
    worker.stop().await;
    cleanup(&es, &prefix).await;
}
