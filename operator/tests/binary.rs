//! The real `campus-operator` binary against the test API server: `/healthz` and `/readyz`
//! answer, it takes the leader Lease, reconciles, `/metrics` counts the reconciles, and SIGTERM
//! stops it cleanly.

mod support;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use campus_testkit::process::Signal;
use campus_testkit::{eventually, free_port};
use support::*;

const BIN: &str = env!("CARGO_BIN_EXE_campus-operator");

/// The operator process; killed when dropped if still running.
struct Process(Child);

impl Process {
    /// The operator binary with leader election on, its ops endpoints on `port`, plus `env`.
    fn start(kubeconfig: &std::path::Path, port: u16, env: &[(&str, &str)]) -> Self {
        Self(
            Command::new(BIN)
                .env("KUBECONFIG", kubeconfig)
                .env("LEADER_ELECTION", "true")
                .env("OPS_ADDR", format!("127.0.0.1:{port}"))
                .envs(env.iter().copied())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start campus-operator"),
        )
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `GET path` on the ops port: (status code, body), or `None` while nothing listens.
async fn get(port: u16, path: &str) -> Option<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").as_bytes())
        .await
        .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).await.ok()?;
    let code = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned())?;
    Some((code, body))
}

/// The value of a metric line that starts with `name` followed by a space or `{`.
fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.strip_prefix(name).is_some_and(|r| r.starts_with(' ')))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
}

#[tokio::test]
async fn the_binary_serves_health_readiness_and_reconcile_metrics() {
    let client = client().await;
    install_crd(&client).await;
    let ns = TestNamespace::new(&client, "op-bin").await;
    let name = ns.name.clone();
    let port = free_port();
    let mut op = Process::start(
        &kubeconfig_path(),
        port,
        &[
            ("WATCH_NAMESPACE", &ns.name),
            ("POD_NAMESPACE", &ns.name),
            ("POD_NAME", "binary-test"),
            ("RUST_LOG", "warn"),
        ],
    );

    let (code, body) = eventually("/healthz answers", Duration::from_secs(30), || {
        get(port, "/healthz")
    })
    .await;
    assert_eq!(code, 200, "{body}");
    let (code, body) = eventually("/readyz answers 200", Duration::from_secs(30), || async {
        get(port, "/readyz").await.filter(|(c, _)| *c == 200)
    })
    .await;
    assert_eq!(code, 200, "{body}");
    assert!(
        body.contains("kubernetes"),
        "/readyz names its check: {body}"
    );

    apply_platform(
        &client,
        &ns.name,
        &sample("minimal.yaml", &name, &campus_testkit::kafka_brokers()),
    )
    .await
    .unwrap();
    eventually(
        "the binary reconciles the platform",
        Duration::from_secs(60),
        || async {
            let (s, _, _) = condition(&client, &ns.name, &name, "TopicsReady").await?;
            (s == "True").then_some(())
        },
    )
    .await;
    let text = eventually(
        "/metrics counts the reconciles",
        Duration::from_secs(30),
        || async {
            let (code, text) = get(port, "/metrics").await?;
            (code == 200 && metric(&text, "campus_operator_reconciles_total")? >= 1.0)
                .then_some(text)
        },
    )
    .await;
    let count = metric(&text, "campus_operator_reconcile_duration_seconds_count").unwrap();
    assert!(count >= 1.0, "{text}");
    assert_eq!(metric(&text, "campus_operator_leader"), Some(1.0), "{text}");
    assert!(
        text.contains("campus_operator_topic_operations_total{operation=\"create\",result=\"ok\"}"),
        "{text}"
    );
    // The Lease in its namespace names this instance.
    let lease = kube::Api::<k8s_openapi::api::coordination::v1::Lease>::namespaced(
        client.clone(),
        &ns.name,
    )
    .get("campus-operator")
    .await
    .unwrap();
    assert_eq!(
        lease.spec.unwrap().holder_identity.as_deref(),
        Some("binary-test")
    );

    // SIGTERM: a clean exit (releasing the Lease is not losing it).
    let killed = campus_testkit::signal(op.0.id(), Signal::SIGTERM);
    assert!(killed.is_ok(), "{killed:?}");
    let status = eventually("the operator exits", Duration::from_secs(20), || {
        let s = op.0.try_wait().unwrap();
        async move { s }
    })
    .await;
    assert!(status.success(), "{status:?}");
}

/// With the API server unreachable the process is alive (`/healthz` 200) but not ready
/// (`/readyz` 503, naming the failed check).
#[tokio::test]
async fn readyz_fails_while_the_api_server_is_unreachable() {
    let text = std::fs::read_to_string(kubeconfig_path()).unwrap();
    let mut kc: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    let nowhere = format!("https://127.0.0.1:{}", free_port());
    for c in kc["clusters"].as_sequence_mut().unwrap() {
        c["cluster"]["server"] = serde_yaml::Value::String(nowhere.clone());
    }
    // Cargo's scratch directory for integration tests (exists wherever the target dir is).
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("kubeconfig-nowhere-{}", std::process::id()));
    std::fs::write(&path, serde_yaml::to_string(&kc).unwrap()).unwrap();
    let port = free_port();
    let _op = Process::start(&path, port, &[("RUST_LOG", "error")]);
    let (code, _) = eventually("/healthz answers", Duration::from_secs(30), || {
        get(port, "/healthz")
    })
    .await;
    assert_eq!(code, 200);
    let (code, body) = get(port, "/readyz").await.unwrap();
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("kubernetes"), "{body}");
    let _ = std::fs::remove_file(&path);
}
