//! Private Apache Kafka brokers for tests that stop a broker midway and for benchmarks that need a
//! broker of their own; the shared servers are never touched. Each node is
//! `scripts/kafka-node.sh` (the same configuration the shared server uses), in its own process
//! group; its data survives a stop, so a stopped broker comes back with its topics and offsets.

use std::path::PathBuf;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use std::process::Command;
use std::time::Duration;

use super::process::{ServerProcess, free_port_pair, scripts_dir, wait_ports};
use super::unique;
use campus_common::config::KafkaArgs;

const STARTED: &str = "Kafka Server started";

struct Node {
    id: u32,
    port: u16,
    controller_port: u16,
    process: Option<ServerProcess>,
    starts: usize,
}

/// One broker, or a cluster of combined broker+controller nodes (KRaft).
pub struct PrivateKafka {
    dir: PathBuf,
    cluster_id: String,
    voters: String,
    nodes: Vec<Node>,
}

impl PrivateKafka {
    /// One broker on free ports.
    pub async fn start() -> Self {
        Self::start_on(free_port_pair().0).await
    }

    /// One broker on `port` (a test may point a client at the port before the broker exists).
    pub async fn start_on(port: u16) -> Self {
        Self::launch(vec![(port, free_port_pair().1)]).await
    }

    /// `n` brokers (replication factor `n` by default for new topics, `min.insync.replicas` 2
    /// when `n` > 1, internal topics replicated the same way).
    pub async fn start_cluster(n: usize) -> Self {
        Self::launch((0..n).map(|_| free_port_pair()).collect()).await
    }

    async fn launch(ports: Vec<(u16, u16)>) -> Self {
        let dir = std::env::temp_dir().join(unique("kafka"));
        std::fs::create_dir_all(&dir).expect("private Kafka directory");
        let nodes: Vec<Node> = ports
            .into_iter()
            .enumerate()
            .map(|(i, (port, controller_port))| Node {
                id: i as u32 + 1,
                port,
                controller_port,
                process: None,
                starts: 0,
            })
            .collect();
        let voters = nodes
            .iter()
            .map(|n| format!("{}@127.0.0.1:{}", n.id, n.controller_port))
            .collect::<Vec<_>>()
            .join(",");
        let cluster_id = new_cluster_id();
        let mut k = Self {
            dir,
            cluster_id,
            voters,
            nodes,
        };
        k.resume().await;
        k
    }

    /// Every broker, comma-separated.
    pub fn brokers(&self) -> String {
        self.nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Kafka settings for these brokers.
    pub fn kafka(&self) -> KafkaArgs {
        KafkaArgs::new(self.brokers())
    }

    /// The first node's PID while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.nodes[0].process.as_ref().and_then(ServerProcess::pid)
    }

    /// The node ids (1-based), for [`Self::stop_node`] and friends.
    pub fn node_ids(&self) -> Vec<u32> {
        self.nodes.iter().map(|n| n.id).collect()
    }

    fn node_log(&self, id: u32) -> PathBuf {
        self.dir.join(format!("node-{id}.log"))
    }

    fn spawn(&mut self, id: u32) {
        let replication = self.nodes.len();
        let log = self.node_log(id);
        let dir = self.dir.join(format!("node-{id}"));
        let starts = std::fs::read_to_string(&log)
            .map(|s| s.matches(STARTED).count())
            .unwrap_or(0);
        let (voters, cluster_id) = (self.voters.clone(), self.cluster_id.clone());
        let node = self.node_mut(id);
        assert!(node.process.is_none(), "node {id} already runs");
        let mut cmd = Command::new("bash");
        cmd.arg(scripts_dir().join("kafka-node.sh"))
            .arg("--dir")
            .arg(&dir)
            .args(["--port", &node.port.to_string()])
            .args(["--controller-port", &node.controller_port.to_string()])
            .args(["--node-id", &id.to_string()])
            .args(["--voters", &voters])
            .args(["--cluster-id", &cluster_id])
            .args(["--replication", &replication.to_string()]);
        if replication > 1 {
            // A killed broker is noticed in 3 s instead of 9 (broker.session.timeout.ms), so
            // failover tests do not wait for the default.
            cmd.args(["--set", "broker.session.timeout.ms=3000"])
                .args(["--set", "broker.heartbeat.interval.ms=500"]);
        }
        cmd.env(
            "KAFKA_HEAP_OPTS",
            std::env::var("CAMPUS_TEST_KAFKA_HEAP").unwrap_or_else(|_| "-Xms128m -Xmx512m".into()),
        );
        node.process = Some(ServerProcess::spawn(cmd, &log));
        node.starts = starts;
    }

    async fn wait_started(&mut self, id: u32) {
        let log = self.node_log(id);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
        loop {
            let node = self.node_mut(id);
            let seen = std::fs::read_to_string(&log)
                .map(|s| s.matches(STARTED).count())
                .unwrap_or(0);
            if seen > node.starts {
                break;
            }
            let process = node.process.as_mut().expect("spawned");
            if !process.is_running() || tokio::time::Instant::now() > deadline {
                panic!(
                    "private Kafka node {id} did not start; log:\n{}",
                    process.log_tail(40)
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let port = self.node_mut(id).port;
        assert!(
            wait_ports(&[port], true, Duration::from_secs(30)).await,
            "private Kafka node {id} started but port {port} is closed"
        );
    }

    fn node_mut(&mut self, id: u32) -> &mut Node {
        self.nodes
            .iter_mut()
            .find(|n| n.id == id)
            .unwrap_or_else(|| panic!("no Kafka node {id}"))
    }

    /// Starts (again) every node that is not running, with its data, and waits until each has
    /// started (a quorum needs its majority up at once, so all are spawned before any wait).
    pub async fn resume(&mut self) {
        let ids: Vec<u32> = self
            .nodes
            .iter()
            .filter(|n| n.process.is_none())
            .map(|n| n.id)
            .collect();
        for id in &ids {
            self.spawn(*id);
        }
        for id in ids {
            self.wait_started(id).await;
        }
    }

    /// Stops every node (a clean shutdown) and waits for the ports to close.
    pub async fn stop(&mut self) {
        for id in self.node_ids() {
            self.stop_node(id).await;
        }
    }

    /// Stops one node cleanly (SIGTERM; the broker hands over leadership first).
    pub async fn stop_node(&mut self, id: u32) {
        let node = self.node_mut(id);
        let port = node.port;
        if let Some(mut p) = node.process.take() {
            p.stop(Duration::from_secs(60)).await;
        }
        assert!(
            wait_ports(&[port], false, Duration::from_secs(30)).await,
            "Kafka port {port} stayed open"
        );
    }

    /// Kills one node at once (SIGKILL: a crash).
    pub fn kill_node(&mut self, id: u32) {
        if let Some(mut p) = self.node_mut(id).process.take() {
            p.kill();
        }
    }

    /// Starts one stopped node again and waits until it has started.
    pub async fn resume_node(&mut self, id: u32) {
        self.spawn(id);
        self.wait_started(id).await;
    }
}

impl Drop for PrivateKafka {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            if let Some(mut p) = n.process.take() {
                p.kill();
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A new KRaft cluster id in Kafka's form (URL-safe base64 of 16 random bytes, no padding) that does
/// not start with '-': `kafka-storage format -t -x…` takes such an id for an option and fails (one
/// start in 64). Kafka's own `Uuid.randomUuid()` skips those ids for the same reason.
fn new_cluster_id() -> String {
    loop {
        let id = URL_SAFE_NO_PAD.encode(uuid::Uuid::new_v4().as_bytes());
        if !id.starts_with('-') {
            return id;
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn cluster_ids_never_look_like_options() {
        for _ in 0..10_000 {
            let id = super::new_cluster_id();
            assert_eq!(id.len(), 22);
            assert!(!id.starts_with('-'), "{id}");
        }
    }
}
