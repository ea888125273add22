//! End to end with a real Filebeat, as the local mode runs it: the real `campus-coupon api` and
//! `campus-log api` write their stdout (their JSON access lines among their own log lines) to
//! files → a real Filebeat (scripts/install/filebeat.sh), configured by `campus-log
//! filebeat-config`, tails the files and ships the access lines to the shared Kafka → the real
//! `campus-log worker index` writes them into the shared OpenSearch → the log API finds each
//! request by its id. Skipped without `$CAMPUS_TEST_FILEBEAT`, failed on CI.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use campus_common::kafka::admin::TopicSpec;
use campus_testkit::{self as testing, Filebeat, ServerProcess, eventually};
use serde_json::{Value, json};
use support::*;

const BIN: &str = env!("CARGO_BIN_EXE_campus-log");

/// An API process on a free port, its stdout and stderr appended to `log`.
async fn start_api(bin: &Path, env: Vec<(&str, String)>, log: &Path) -> (ServerProcess, String) {
    let port = testing::free_port();
    let mut cmd = Command::new(bin);
    cmd.arg("api")
        .env_clear()
        .envs(env)
        .env("HTTP_ADDR", format!("127.0.0.1:{port}"))
        .env("RUST_LOG", "info");
    let mut p = ServerProcess::spawn(cmd, log);
    if !testing::wait_ports(&[port], true, Duration::from_secs(120)).await {
        panic!("{} did not listen: {}", bin.display(), p.log_tail(20));
    }
    assert!(p.is_running());
    (p, format!("http://127.0.0.1:{port}"))
}

/// One request with a request id of ours; the status it got.
async fn call(req: reqwest::RequestBuilder, id: &str) -> u16 {
    req.header("x-request-id", id)
        .header("user-agent", "campus-filebeat-e2e/1")
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn a_real_filebeat_ships_the_apis_access_logs_through_kafka_into_the_log_api() {
    let Some(filebeat) = Filebeat::find() else {
        return;
    };
    let dir = std::env::temp_dir().join(testing::unique("filebeat-e2e"));
    std::fs::create_dir_all(&dir).unwrap();
    let es_url = testing::es_url();
    let index_prefix = fresh_prefix();
    let kafka_prefix = testing::unique("fb").replace('_', "-");
    let topic = format!("{kafka_prefix}.{}", campus_contract::access_log::TOPIC);
    testing::create_topics(&[TopicSpec::new(&topic, 2)]).await;

    // Two real APIs, their output in files, as scripts/local.sh runs them.
    let (coupon_log, log_log) = (dir.join("coupon-api.log"), dir.join("log-api.log"));
    let (mysql, _) = testing::fresh_mysql().await;
    let (mut coupon, k) = start_api(
        &testing::sibling_binary(BIN, "campus-coupon"),
        vec![
            ("KAFKA_BROKERS", testing::kafka_brokers()),
            ("KAFKA_PREFIX", kafka_prefix.clone()),
            ("MYSQL_URL", mysql),
            ("REDIS_URL", testing::redis_url()),
            ("REDIS_KEY_PREFIX", format!("{}:", testing::unique("fb"))),
            ("COUPON_REQUEST_PARTITIONS", "1".into()),
        ],
        &coupon_log,
    )
    .await;
    let (mut log_api, l) = start_api(
        Path::new(BIN),
        vec![
            ("ELASTICSEARCH_URL", es_url.clone()),
            ("LOG_INDEX_PREFIX", index_prefix.clone()),
        ],
        &log_log,
    )
    .await;

    // The native indexer, the real binary.
    let ops = testing::free_port();
    let mut index_cmd = Command::new(BIN);
    index_cmd
        .args(["worker", "index"])
        .env_clear()
        .env("KAFKA_BROKERS", testing::kafka_brokers())
        .env("KAFKA_PREFIX", &kafka_prefix)
        .env("ELASTICSEARCH_URL", &es_url)
        .env("LOG_INDEX_PREFIX", &index_prefix)
        .env("OPS_ADDR", format!("127.0.0.1:{ops}"));
    let mut indexer = ServerProcess::spawn(index_cmd, &dir.join("log-index.log"));

    // Filebeat, configured the way the local mode configures it.
    let fb_port = testing::free_port();
    let out = Command::new(BIN)
        .arg("filebeat-config")
        .args(["--kafka-brokers", &testing::kafka_brokers()])
        .args(["--kafka-prefix", &kafka_prefix])
        .arg("--path")
        .arg(&coupon_log)
        .arg("--path")
        .arg(&log_log)
        .args(["--filebeat-http-addr", &format!("127.0.0.1:{fb_port}")])
        .env_clear()
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let yaml = String::from_utf8(out.stdout).unwrap();
    filebeat
        .test_config(&yaml)
        .unwrap_or_else(|e| panic!("{yaml}\n{e}"));
    let mut shipper = filebeat.spawn(&yaml, &dir.join("filebeat"));
    if !testing::wait_ports(&[fb_port], true, Duration::from_secs(60)).await {
        panic!("Filebeat did not start: {}", shipper.log_tail(30));
    }

    // Requests with ids of ours: successes and refusals, on both APIs.
    let run = uuid::Uuid::new_v4().simple().to_string();
    let client = reqwest::Client::new();
    let now = chrono::Utc::now();
    let mut sent: Vec<(String, &str, &str, u16)> = Vec::new();
    let id = |n: u32| format!("fb-{run}-{n}");
    // (`/admin/*` is on the coupon API's admin listener, not on this port.)
    let s = call(client.get(format!("{k}/coupons?userId=2")), &id(1)).await;
    sent.push((id(1), "campus-coupon", "/coupons", s));
    let s = call(client.get(format!("{k}/coupons?userId=1")), &id(2)).await;
    sent.push((id(2), "campus-coupon", "/coupons", s));
    let s = call(
        client
            .post(format!("{k}/coupons"))
            .json(&json!({"userId": "not a number"})),
        &id(3),
    )
    .await;
    sent.push((id(3), "campus-coupon", "/coupons", s));
    // (A busy or recovering Elasticsearch is a 503 with Retry-After, which a client retries;
    // each try is a request of its own, with an id of its own.)
    let mut n = 4;
    let s = loop {
        let s = call(client.get(format!("{l}/logs/search?size=1")), &id(n)).await;
        if s != 503 || n >= 100 {
            break s;
        }
        n += 10;
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    sent.push((id(n), "campus-log", "/logs/search", s));
    let s = call(client.get(format!("{l}/logs/search?status=7xx")), &id(5)).await;
    sent.push((id(5), "campus-log", "/logs/search", s));
    let classes: Vec<u16> = sent.iter().map(|r| r.3 / 100).collect();
    assert_eq!(classes, [2, 2, 4, 2, 4], "{sent:?}");

    // Every request reaches the index: waited for on Elasticsearch itself (the log API's own
    // searches would be access lines too, with the ids in their query strings).
    let store = es(&es_url);
    for (rid, ..) in &sent {
        eventually(
            &format!("request {rid} indexed"),
            Duration::from_secs(120),
            || async {
                store.refresh(&index_prefix).await.ok()?;
                let body = json!({"size": 0, "track_total_hits": true,
                "query": {"term": {"request_id": rid}}});
                let found = store.search(&index_prefix, &body).await.ok()?;
                (found["hits"]["total"]["value"] == 1).then_some(())
            },
        )
        .await;
    }
    // The log API finds each request by its id, exactly once, as the client saw it.
    for (rid, service, path, status) in &sent {
        let (code, body) = get_json(&format!("{l}/logs/search?q={rid}")).await;
        assert_eq!(code, 200, "{body}");
        assert_eq!(body["total"], 1, "{rid}: {body}");
        let hit = &body["hits"][0];
        assert_eq!(hit["request_id"], rid.as_str(), "{hit}");
        assert_eq!(hit["service"], *service, "{hit}");
        assert_eq!(hit["path"], *path, "{hit}");
        assert_eq!(hit["status"], *status, "{hit}");
        assert_eq!(hit["user_agent"], "campus-filebeat-e2e/1", "{hit}");
    }
    // And counts them: the stats of the requests' time window.
    let (code, stats) = get_json(&format!(
        "{l}/logs/stats?from={}",
        (now - chrono::Duration::seconds(1))
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
            .replace('+', "%2B")
    ))
    .await;
    assert_eq!(code, 200, "{stats}");
    assert!(
        stats["total"].as_u64().unwrap() >= sent.len() as u64,
        "{stats}"
    );
    assert!(
        shipper.is_running(),
        "Filebeat exited: {}",
        shipper.log_tail(30)
    );

    // What reached Kafka is Filebeat's: one event per access line of the two files, the
    // services' own log lines dropped on the way.
    let records = testing::read_topic(&topic, sent.len(), Duration::from_secs(30)).await;
    assert!(records.len() >= sent.len(), "{} records", records.len());
    let files = [
        coupon_log.display().to_string(),
        log_log.display().to_string(),
    ];
    for r in &records {
        let v: Value = serde_json::from_slice(r.payload.as_deref().unwrap()).unwrap();
        assert_eq!(v["agent"]["type"], "filebeat", "{v}");
        assert_eq!(v["input"]["type"], "filestream", "{v}");
        let path = v["log"]["file"]["path"].as_str().unwrap_or_default();
        assert!(files.iter().any(|f| f == path), "{v}");
        let line: Value = serde_json::from_str(v["message"].as_str().unwrap()).unwrap();
        assert_eq!(
            line["log_type"], "access",
            "only access lines are shipped: {v}"
        );
    }
    let version = records
        .first()
        .and_then(|r| serde_json::from_slice::<Value>(r.payload.as_deref()?).ok())
        .map(|v| v["agent"]["version"].clone());
    eprintln!("filebeat {version:?} shipped {} records", records.len());

    shipper.stop(Duration::from_secs(10)).await;
    indexer.stop(Duration::from_secs(20)).await;
    coupon.stop(Duration::from_secs(10)).await;
    log_api.stop(Duration::from_secs(10)).await;
    cleanup(&es(&es_url), &index_prefix).await;
    let _ = std::fs::remove_dir_all(&dir);
}
