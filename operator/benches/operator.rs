//! Benchmarks of the real `campus-operator` binary against the test API server and the local
//! Kafka (run `bash scripts/kube.sh start` and `bash scripts/servers.sh start` first):
//!
//! 1. apply → every child and topic exists: one platform at a time, median of 20;
//! 2. 50 platforms applied at once in one namespace → all reconciled (children, topics, status);
//! 3. the operator process's RSS after that (VmRSS and VmHWM from /proc).
//!
//! After each of the first two, the operator's own reconcile duration and, per phase
//! (`campus_operator_reconcile_phase_seconds`), its mean, median and share of the time.
//!
//! `cargo bench -p campus-operator --bench operator`

#[path = "../tests/support/mod.rs"]
mod support;

use std::process::{Child, Command};
use std::time::{Duration, Instant};

use campus_operator::crd::CampusPlatform;
use campus_testkit::{eventually, free_port};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, DeleteParams, ListParams};
use kube::runtime::WatchStreamExt;
use kube::{Client, ResourceExt};
use serde_json::json;
use support::*;

const DEPLOYMENTS_PER_PLATFORM: usize = 9;
const TOPICS_PER_PLATFORM: usize = 10;

struct OperatorProcess(Child, u16);

impl OperatorProcess {
    fn start(namespace: &str) -> Self {
        let port = free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_campus-operator"))
            .env("KUBECONFIG", kubeconfig_path())
            .env("WATCH_NAMESPACE", namespace)
            .env("LEADER_ELECTION", "false")
            .env("OPS_ADDR", format!("127.0.0.1:{port}"))
            .env("CONCURRENCY", "16")
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("start campus-operator");
        Self(child, port)
    }

    /// The operator's own `/metrics` (with the HTTP head).
    async fn metrics(&self) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", self.1))
            .await
            .unwrap();
        s.write_all(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut body = String::new();
        s.read_to_string(&mut body).await.unwrap();
        body
    }

    /// Mean reconcile duration and count, from the operator's own `/metrics`.
    async fn reconcile_stats(&self) -> (f64, f64) {
        let body = self.metrics().await;
        let value = |name: &str| {
            body.lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        let sum = value("campus_operator_reconcile_duration_seconds_sum");
        let count = value("campus_operator_reconcile_duration_seconds_count");
        (if count > 0.0 { sum / count } else { 0.0 }, count)
    }

    fn memory_kib(&self) -> (u64, u64) {
        campus_testkit::memory_kib(self.0.id())
    }
}

impl Drop for OperatorProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn platform_json(name: &str) -> serde_json::Value {
    let mut cr = sample("minimal.yaml", name, &campus_testkit::kafka_brokers());
    cr["spec"]["topics"] = json!({"deletionPolicy": "Delete"});
    cr
}

async fn deployments_of(client: &Client, ns: &str, name: &str) -> usize {
    Api::<Deployment>::namespaced(client.clone(), ns)
        .list_metadata(&ListParams::default().labels(&format!("campus.dev/platform={name}")))
        .await
        .map(|l| l.items.len())
        .unwrap_or(0)
}

/// The topics of platform `name` in `ns`: named with the default prefix `<ns>.<name>`.
fn topics_of(have: &std::collections::HashMap<String, i32>, ns: &str, name: &str) -> usize {
    let prefix = format!("{ns}.{name}.");
    have.keys().filter(|t| t.starts_with(&prefix)).count()
}

async fn delete_all(client: &Client, ns: &str) {
    let api: Api<CampusPlatform> = Api::namespaced(client.clone(), ns);
    let _ = api
        .delete_collection(&DeleteParams::default(), &ListParams::default())
        .await;
    eventually(
        "the platforms are deleted",
        Duration::from_secs(300),
        || async {
            api.list_metadata(&ListParams::default())
                .await
                .ok()?
                .items
                .is_empty()
                .then_some(())
        },
    )
    .await;
}

/// One phase of the reconcile as `/metrics` shows it.
struct Phase {
    name: String,
    count: f64,
    sum: f64,
    /// (upper bound, cumulative count), ascending.
    buckets: Vec<(f64, f64)>,
}

impl Phase {
    /// The median, interpolated within its bucket (as Prometheus' `histogram_quantile`).
    fn p50(&self) -> f64 {
        let rank = self.count / 2.0;
        let mut lower = (0.0, 0.0);
        for &(le, n) in &self.buckets {
            if n >= rank {
                if le.is_infinite() {
                    return lower.0;
                }
                let width = n - lower.1;
                let into = if width > 0.0 {
                    (rank - lower.1) / width
                } else {
                    1.0
                };
                return lower.0 + (le - lower.0) * into;
            }
            lower = (le, n);
        }
        0.0
    }
}

/// Every phase of `campus_operator_reconcile_phase_seconds` in `metrics`, in the order listed.
fn phases(metrics: &str) -> Vec<Phase> {
    const NAME: &str = "campus_operator_reconcile_phase_seconds";
    let mut out: Vec<Phase> = Vec::new();
    for line in metrics.lines() {
        let Some(rest) = line.strip_prefix(NAME) else {
            continue;
        };
        let (Some(open), Some(close)) = (rest.find('{'), rest.find('}')) else {
            continue;
        };
        let suffix = &rest[..open];
        let labels: Vec<(&str, &str)> = rest[open + 1..close]
            .split(',')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k, v.trim_matches('"')))
            .collect();
        let label = |k: &str| labels.iter().find(|l| l.0 == k).map(|l| l.1);
        let Some(phase) = label("phase") else {
            continue;
        };
        let value: f64 = rest[close + 1..]
            .split_whitespace()
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        let i = match out.iter().position(|p| p.name == phase) {
            Some(i) => i,
            None => {
                out.push(Phase {
                    name: phase.to_owned(),
                    count: 0.0,
                    sum: 0.0,
                    buckets: Vec::new(),
                });
                out.len() - 1
            }
        };
        let p = &mut out[i];
        match suffix {
            "_count" => p.count = value,
            "_sum" => p.sum = value,
            "_bucket" => {
                let le = match label("le") {
                    Some("+Inf") => f64::INFINITY,
                    Some(le) => le.parse().unwrap_or(f64::INFINITY),
                    None => continue,
                };
                p.buckets.push((le, value));
            }
            _ => {}
        }
    }
    for p in &mut out {
        p.buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    out
}

/// Prints each phase's mean, median and share of the time of all phases, in reconcile order.
fn print_phases(metrics: &str) {
    use campus_operator::metrics::PHASES;
    let mut phases = phases(metrics);
    phases.sort_by_key(|p| PHASES.iter().position(|n| *n == p.name));
    let total: f64 = phases.iter().map(|p| p.sum).sum();
    let applies = |result: &str| {
        let name = format!("campus_operator_child_applies_total{{result=\"{result}\"}}");
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name.as_str()))
            .map_or("?".to_owned(), |v| v.trim().to_owned())
    };
    println!(
        "  children per reconcile: {} applied, {} unchanged (not sent)",
        applies("applied"),
        applies("unchanged")
    );
    println!("  reconcile phases (per reconcile: mean, p50; share of all phases' time):");
    for p in &phases {
        let mean = if p.count > 0.0 { p.sum / p.count } else { 0.0 };
        // Within the first bucket the interpolation says nothing but "below it".
        let first = p.buckets.first().map_or(0.0, |b| b.0);
        let p50 = p.p50();
        let p50 = if p50 < first {
            format!("<{:.1}", first * 1000.0)
        } else {
            format!("{:.2}", p50 * 1000.0)
        };
        let share = if total > 0.0 {
            p.sum / total * 100.0
        } else {
            0.0
        };
        println!(
            "    {:<15} mean {:>8.2} ms  p50 {:>8} ms  {share:>5.1} %  (n={})",
            p.name,
            mean * 1000.0,
            p50,
            p.count
        );
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[tokio::main]
async fn main() {
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("load average at start: {}", load.trim());
    let client = client().await;
    install_crd(&client).await;
    let admin = campus_common::kafka::admin::Admin::new(&campus_testkit::kafka()).unwrap();
    let topics_now = || async {
        admin
            .describe()
            .await
            .unwrap()
            .into_iter()
            .map(|(k, v)| (k, v.partitions))
            .collect::<std::collections::HashMap<String, i32>>()
    };

    // 1. One platform at a time.
    let ns = TestNamespace::new(&client, "bench-one").await;
    let op = OperatorProcess::start(&ns.name);
    let mut times = Vec::new();
    for i in 0..20 {
        let name = format!("{}-{i}", ns.name);
        let started = Instant::now();
        apply_platform(&client, &ns.name, &platform_json(&name))
            .await
            .unwrap();
        eventually(
            "children and topics exist",
            Duration::from_secs(60),
            || async {
                if deployments_of(&client, &ns.name, &name).await < DEPLOYMENTS_PER_PLATFORM {
                    return None;
                }
                let have = topics_now().await;
                (topics_of(&have, &ns.name, &name) >= TOPICS_PER_PLATFORM).then_some(())
            },
        )
        .await;
        times.push(started.elapsed());
    }
    let (rss_one, _) = op.memory_kib();
    let (mean_one, count_one) = op.reconcile_stats().await;
    let metrics_one = op.metrics().await;
    delete_all(&client, &ns.name).await;
    drop(op);
    println!(
        "apply → all {DEPLOYMENTS_PER_PLATFORM} Deployments (+ Services, ConfigMaps, DaemonSet, RBAC) and {TOPICS_PER_PLATFORM} topics exist: median {:.0} ms, min {:.0} ms, max {:.0} ms (n=20)",
        median(times.clone()).as_secs_f64() * 1000.0,
        times.iter().min().unwrap().as_secs_f64() * 1000.0,
        times.iter().max().unwrap().as_secs_f64() * 1000.0,
    );
    println!(
        "  operator's own reconcile duration: mean {:.0} ms over {count_one} reconciles",
        mean_one * 1000.0
    );
    print_phases(&metrics_one);

    // 2. Fifty platforms at once.
    let ns50 = TestNamespace::new(&client, "bench-fifty").await;
    let op = OperatorProcess::start(&ns50.name);
    let names: Vec<String> = (0..50).map(|i| format!("{}-{i}", ns50.name)).collect();
    let started = Instant::now();
    let crs: Vec<serde_json::Value> = names.iter().map(|n| platform_json(n)).collect();
    futures::future::try_join_all(crs.iter().map(|cr| apply_platform(&client, &ns50.name, cr)))
        .await
        .unwrap();
    // Watched (not listed in a loop: 50 platforms with their status every 100 ms would load the
    // API server being measured).
    let platforms: Api<CampusPlatform> = Api::namespaced(client.clone(), &ns50.name);
    let reconciled = |p: &CampusPlatform| {
        p.status.as_ref().is_some_and(|s| {
            s.observed_generation == p.metadata.generation
                && s.conditions
                    .iter()
                    .any(|c| c.type_ == "TopicsReady" && c.status == "True")
                && s.workloads.len() == DEPLOYMENTS_PER_PLATFORM + 1
        })
    };
    let mut done = std::collections::HashSet::new();
    let mut events = std::pin::pin!(
        kube::runtime::watcher(platforms.clone(), kube::runtime::watcher::Config::default())
            .default_backoff()
            .applied_objects()
    );
    let mut last_report = Instant::now();
    while done.len() < names.len() {
        let next = tokio::time::timeout(Duration::from_secs(1), events.next()).await;
        if let Ok(Some(Ok(p))) = next
            && reconciled(&p)
        {
            done.insert(p.name_any());
        }
        if last_report.elapsed() > Duration::from_secs(15) {
            eprintln!(
                "  … {:.0} s: {}/50 reconciled",
                started.elapsed().as_secs_f64(),
                done.len()
            );
            last_report = Instant::now();
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "50 platforms not reconciled in 600 s"
        );
    }
    let took = started.elapsed();
    let deployments = Api::<Deployment>::namespaced(client.clone(), &ns50.name)
        .list_metadata(&ListParams::default())
        .await
        .unwrap()
        .items
        .len();
    let have = topics_now().await;
    let topics: usize = names.iter().map(|n| topics_of(&have, &ns50.name, n)).sum();
    let (rss, hwm) = op.memory_kib();
    let (mean50, count50) = op.reconcile_stats().await;
    let metrics50 = op.metrics().await;
    println!(
        "50 platforms in one namespace → all reconciled (status written, {deployments} Deployments, {topics} topics): {:.2} s",
        took.as_secs_f64()
    );
    println!(
        "  operator's own reconcile duration: mean {:.0} ms over {count50} reconciles",
        mean50 * 1000.0
    );
    print_phases(&metrics50);
    println!(
        "operator RSS: {:.1} MiB after 20 single platforms; {:.1} MiB with 50 platforms (peak {:.1} MiB)",
        rss_one as f64 / 1024.0,
        rss as f64 / 1024.0,
        hwm as f64 / 1024.0
    );
    assert_eq!(deployments, 50 * DEPLOYMENTS_PER_PLATFORM);
    delete_all(&client, &ns50.name).await;
    for n in &platforms.list(&ListParams::default()).await.unwrap().items {
        eprintln!("left over: {}", n.name_any());
    }
    drop(op);
}
