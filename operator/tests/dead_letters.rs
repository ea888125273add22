//! What status tells about the platform's traffic, against the real API server and the local
//! Kafka: the API endpoints, and the records in each group's dead-letter topics (also in
//! `kubectl get campus -o wide`).

mod support;

use std::process::Command;
use std::time::Duration;

use campus_testkit::eventually;
use rdkafka::producer::{FutureProducer, FutureRecord};
use support::*;

const WAIT: Duration = Duration::from_secs(60);

#[tokio::test]
async fn endpoints_and_a_dead_letter_show_in_status() {
    let client = client().await;
    install_crd(&client).await;
    let ns = TestNamespace::new(&client, "op-dlq").await;
    let mut settings = test_settings(&ns.name);
    // Dead letters are read on every reconcile; a short resync stands in for the next one.
    settings.resync = Duration::from_secs(1);
    let _op = Operator::start(&client, settings);
    let name = ns.name.clone();
    let brokers = campus_testkit::kafka_brokers();
    apply_platform(&client, &ns.name, &sample("minimal.yaml", &name, &brokers))
        .await
        .unwrap();
    let p = format!("{}.{name}", ns.name); // the default Kafka prefix
    let dlq = format!("{p}.post.original.dlq.{p}.inspection");
    let inspection = format!("{name}-content-inspection");

    // Empty dead-letter topics: 0 for each consuming workload, nothing for the APIs.
    let st = eventually("status shows the dead letters", WAIT, || async {
        let st = platform(&client, &ns.name, &name).await?.status?;
        (st.dead_letters == Some(0)).then_some(st)
    })
    .await;
    let counted: Vec<&str> = st
        .workloads
        .iter()
        .filter(|w| w.dead_letters == Some(0))
        .map(|w| w.name.as_str())
        .collect();
    assert_eq!(counted.len(), 6, "five workers and Logstash: {counted:?}");
    assert!(counted.contains(&inspection.as_str()));
    assert!(
        st.workloads
            .iter()
            .filter(|w| w.name.ends_with("-api"))
            .all(|w| w.dead_letters.is_none())
    );
    let endpoints: Vec<(String, String)> = st
        .endpoints
        .iter()
        .map(|e| (e.name.clone(), e.url.clone()))
        .collect();
    let url = |svc: &str, port: u16| format!("http://{name}-{svc}.{}.svc:{port}", ns.name);
    assert_eq!(
        endpoints,
        [
            ("content-api".to_owned(), url("content-api", 80)),
            ("coupon-api".to_owned(), url("coupon-api", 80)),
            ("coupon-admin".to_owned(), url("coupon-admin", 8081)),
            ("log-api".to_owned(), url("log-api", 80)),
        ]
    );

    // A record the inspection worker gave up on.
    let producer: FutureProducer = campus_testkit::kafka().client_config().create().unwrap();
    producer
        .send(
            FutureRecord::to(&dlq).key("post-1").payload("{}"),
            Duration::from_secs(10),
        )
        .await
        .expect("produce to the dead-letter topic");
    let st = eventually("the dead letter shows in status", WAIT, || async {
        let st = platform(&client, &ns.name, &name).await?.status?;
        (st.dead_letters == Some(1)).then_some(st)
    })
    .await;
    let w = st.workloads.iter().find(|w| w.name == inspection).unwrap();
    assert_eq!(w.dead_letters, Some(1));
    assert!(
        st.workloads
            .iter()
            .filter(|w| w.name != inspection)
            .all(|w| w.dead_letters.unwrap_or(0) == 0)
    );

    // `kubectl get campus -o wide` shows it; the default columns stay as they were.
    let get = |wide: bool| {
        let mut cmd = Command::new(kubectl());
        cmd.arg("--kubeconfig")
            .arg(kubeconfig_path())
            .args(["-n", &ns.name, "get", "campus", &name]);
        if wide {
            cmd.args(["-o", "wide"]);
        }
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    let columns = |text: &str, line: usize| -> Vec<String> {
        text.lines()
            .nth(line)
            .unwrap()
            .split_whitespace()
            .map(str::to_owned)
            .collect()
    };
    let wide = get(true);
    assert_eq!(
        columns(&wide, 0),
        [
            "NAME",
            "READY",
            "REASON",
            "TOPICS",
            "WORKLOADS",
            "DLQ",
            "AGE"
        ],
        "{wide}"
    );
    assert_eq!(columns(&wide, 1)[5], "1", "{wide}");
    let plain = get(false);
    assert_eq!(
        columns(&plain, 0),
        ["NAME", "READY", "TOPICS", "WORKLOADS", "AGE"],
        "{plain}"
    );
}
