//! The real `campus-log` binary: start-up failures are one clear line; the indexer's logs carry
//! request ids; SIGTERM stops it cleanly.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use campus_testkit as testing;
use support::*;

const BIN: &str = env!("CARGO_BIN_EXE_campus-log");

/// A port nobody listens on.
fn closed_port() -> u16 {
    testing::free_port()
}

fn run(args: &[&str], env: &[(&str, String)]) -> (i32, String) {
    let out = Command::new(BIN)
        .args(args)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .env("OPS_ADDR", "127.0.0.1:0")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stderr).unwrap(),
    )
}

fn one_error_line(stderr: &str) -> &str {
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "exactly one line on stderr: {stderr:?}");
    assert!(lines[0].starts_with("error: "), "{stderr:?}");
    lines[0]
}

#[test]
fn without_a_broker_address_the_worker_says_so_in_one_line() {
    let es = format!("http://127.0.0.1:{}", closed_port());
    let (code, stderr) = run(&["worker", "index"], &[("ELASTICSEARCH_URL", es)]);
    assert_eq!(code, 2);
    let line = one_error_line(&stderr);
    assert!(line.contains("--kafka-brokers"), "{line}");
}

#[test]
fn with_elasticsearch_unreachable_the_worker_fails_in_one_line() {
    let port = closed_port();
    let (code, stderr) = run(
        &["worker", "index"],
        &[
            ("KAFKA_BROKERS", testing::kafka_brokers()),
            (
                "ELASTICSEARCH_URL",
                format!("http://elastic:hunter2@127.0.0.1:{port}"),
            ),
            ("ELASTICSEARCH_TIMEOUT_MS", "2000".into()),
        ],
    );
    assert_eq!(code, 1);
    let line = one_error_line(&stderr);
    assert!(
        line.contains("failed to install the index template access-log"),
        "{line}"
    );
    assert!(line.contains(&format!("127.0.0.1:{port}")), "{line}");
    assert!(!line.contains("hunter2"), "credentials leaked: {line}");
}

#[test]
fn the_api_refuses_a_bad_index_prefix_in_one_line() {
    let (code, stderr) = run(
        &["api"],
        &[
            ("ELASTICSEARCH_URL", "http://127.0.0.1:9".into()),
            ("LOG_INDEX_PREFIX", "Access*Log".into()),
        ],
    );
    assert_eq!(code, 2);
    assert!(
        one_error_line(&stderr).contains("LOG_INDEX_PREFIX")
            || stderr.contains("--log-index-prefix"),
        "{stderr}"
    );
}

/// `campus-log prepare` (what the operator runs before Logstash): the index template and today's
/// index behind the alias of every prefix it is given exist when it exits 0.
#[tokio::test]
async fn prepare_installs_the_template_and_alias_of_each_prefix_and_exits() {
    let (first, second) = (fresh_prefix(), fresh_prefix());
    let (code, stderr) = run(
        &["prepare", "--also-index-prefix", &second],
        &[
            ("ELASTICSEARCH_URL", testing::es_url()),
            ("LOG_INDEX_PREFIX", first.clone()),
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    let http = reqwest::Client::new();
    for prefix in [&first, &second] {
        let template = http
            .get(format!("{}/_index_template/{prefix}", testing::es_url()))
            .send()
            .await
            .unwrap();
        assert_eq!(template.status(), 200, "the index template {prefix}");
        let alias: serde_json::Value = http
            .get(format!("{}/_alias/{prefix}", testing::es_url()))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let today = campus_common::logschema::index_for(prefix, chrono::Utc::now());
        assert!(
            alias.get(&today).is_some(),
            "{today} behind the alias {prefix}: {alias}"
        );
    }
}

/// A record with an `x-request-id` header that cannot be indexed: the worker's log line about it
/// names the request id. Then SIGTERM: the worker commits and exits 0.
#[tokio::test]
async fn worker_logs_carry_request_ids_and_sigterm_stops_it() {
    let kafka_prefix = testing::unique("p").replace('_', "-");
    let topic = format!("{kafka_prefix}.access-log");
    testing::create_topics(&[campus_common::kafka::admin::TopicSpec::new(&topic, 1)]).await;
    let prefix = fresh_prefix();
    let mut child = Command::new(BIN)
        .args(["worker", "index"])
        .env_clear()
        .env("KAFKA_BROKERS", testing::kafka_brokers())
        .env("KAFKA_PREFIX", &kafka_prefix)
        .env("ELASTICSEARCH_URL", testing::es_url())
        .env("LOG_INDEX_PREFIX", &prefix)
        .env("OPS_ADDR", "127.0.0.1:0")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });

    let producer = campus_common::kafka::Producer::new(&testing::kafka()).unwrap();
    producer
        .send(
            &topic,
            b"k",
            b"\x00not a filebeat event",
            &[("x-request-id", b"req-4711")],
        )
        .await
        .unwrap();
    let line = tokio::task::spawn_blocking(move || {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        let mut seen = Vec::new();
        while std::time::Instant::now() < deadline {
            match rx.recv_timeout(Duration::from_millis(200)) {
                Ok(l) if l.contains("req-4711") => return (l, rx),
                Ok(l) => seen.push(l),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(e) => panic!("worker stdout closed: {e}; lines: {seen:#?}"),
            }
        }
        panic!("no log line with the request id; lines: {seen:#?}")
    })
    .await
    .unwrap();
    let (line, rx) = line;
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["request_id"], "req-4711", "{line}");
    assert_eq!(v["level"], "WARN");

    // The dead-letter topic got it, under the prefixed group's name.
    let dlq = format!("{topic}.dlq.{kafka_prefix}.log-index");
    let dead = testing::read_topic(&dlq, 1, Duration::from_secs(30)).await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].header("x-request-id"), Some(&b"req-4711"[..]));

    let status = testing::signal(child.id(), testing::process::Signal::SIGTERM);
    assert!(status.is_ok(), "{status:?}");
    let exit = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert!(exit.success(), "{exit:?}");
    let rest: Vec<String> = rx.try_iter().collect();
    assert!(
        rest.iter().any(|l| l.contains("consumer stopped")),
        "{rest:#?}"
    );
    cleanup(&es(&testing::es_url()), &prefix).await;
}
