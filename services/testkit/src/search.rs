//! Private OpenSearch nodes for tests that stop the search server midway and for benchmarks that
//! need one of their own; the shared server is never touched. The node is
//! `scripts/opensearch-node.sh` (the same configuration the shared server uses) in its own process
//! group; its data survives [`PrivateSearch::stop`] / [`PrivateSearch::resume`].

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use super::process::{ServerProcess, free_port_pair, scripts_dir, wait_ports};
use super::unique;

/// A private single-node OpenSearch on free ports (HTTP and transport).
pub struct PrivateSearch {
    http_port: u16,
    transport_port: u16,
    dir: PathBuf,
    process: Option<ServerProcess>,
}

impl PrivateSearch {
    /// Starts a fresh node and waits until its cluster health is yellow or green.
    pub async fn start() -> Self {
        let dir = std::env::temp_dir().join(unique("opensearch"));
        std::fs::create_dir_all(&dir).expect("private OpenSearch directory");
        let (http_port, transport_port) = free_port_pair();
        let mut s = Self {
            http_port,
            transport_port,
            dir,
            process: None,
        };
        s.resume().await;
        s.warm_up().await;
        s
    }

    /// One index created and deleted: the first index of a fresh node takes several times as long
    /// as the next ones (classes to load, code to compile), long enough to run into the short
    /// request timeouts some tests give their clients.
    async fn warm_up(&self) {
        let client = reqwest::Client::new();
        let index = format!("{}/campus-warm-up", self.url());
        let body = serde_json::json!({
            "settings": {"number_of_shards": 1},
            "mappings": {"properties": {
                "t": {"type": "text"}, "k": {"type": "keyword"}, "n": {"type": "long"},
                "d": {"type": "date"}
            }},
            "aliases": {"campus-warm-up-alias": {}}
        });
        for req in [client.put(&index).json(&body), client.delete(&index)] {
            let res = req.send().await.expect("private OpenSearch answers");
            assert!(
                res.status().is_success(),
                "warm-up on the private OpenSearch: {}",
                res.text().await.unwrap_or_default()
            );
        }
    }

    /// `http://127.0.0.1:PORT`, the REST API.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
    }

    /// The node's PID (its process group), while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().and_then(ServerProcess::pid)
    }

    /// Starts (again) on the same ports and data, and waits until the cluster health is yellow or
    /// green (the indices it had are open again).
    pub async fn resume(&mut self) {
        assert!(self.process.is_none(), "already running");
        let mut cmd = Command::new("bash");
        cmd.arg(scripts_dir().join("opensearch-node.sh"))
            .arg("--dir")
            .arg(self.dir.join("node"))
            .args(["--http-port", &self.http_port.to_string()])
            .args(["--transport-port", &self.transport_port.to_string()]);
        if let Ok(heap) = std::env::var("CAMPUS_TEST_OPENSEARCH_HEAP") {
            cmd.env("OPENSEARCH_HEAP", heap);
        }
        let health = format!(
            "{}/_cluster/health?wait_for_status=yellow&timeout=1s",
            self.url()
        );
        let client = reqwest::Client::new();
        let process = self
            .process
            .insert(ServerProcess::spawn(cmd, &self.dir.join("opensearch.log")));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
        loop {
            let ok = client
                .get(&health)
                .timeout(Duration::from_secs(5))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ok {
                return;
            }
            if !process.is_running() || tokio::time::Instant::now() > deadline {
                panic!(
                    "private OpenSearch on port {} did not become healthy; log:\n{}",
                    self.http_port,
                    process.log_tail(40)
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Stops the node cleanly (SIGTERM to its group, KILL after 30 s) and waits for the ports to
    /// close.
    pub async fn stop(&mut self) {
        if let Some(mut p) = self.process.take() {
            p.stop(Duration::from_secs(30)).await;
        }
        assert!(
            wait_ports(
                &[self.http_port, self.transport_port],
                false,
                Duration::from_secs(30)
            )
            .await,
            "private OpenSearch port {} or {} stayed open",
            self.http_port,
            self.transport_port
        );
    }
}

impl Drop for PrivateSearch {
    fn drop(&mut self) {
        if let Some(mut p) = self.process.take() {
            p.kill();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
