//! A private noida-db (Kafka + Elasticsearch) on free ports, for tests that stop a server midway.
//! Never touches the shared servers. State survives a stop/start (noida-db saves on SIGTERM).

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct PrivateNoida {
    pub kafka_port: u16,
    pub es_port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn binary() -> PathBuf {
    if let Ok(b) = std::env::var("CAMPUS_NOIDA_BIN") {
        return b.into();
    }
    let cache = std::env::var("CAMPUS_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/campus"));
    cache.join("venv/lib/python3.11/site-packages/noida_db/noida-db")
}

fn listening(port: u16) -> bool {
    std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
}

impl PrivateNoida {
    pub async fn start() -> Self {
        let dir = std::env::temp_dir().join(campus_common::testing::unique("noida"));
        std::fs::create_dir_all(&dir).unwrap();
        let mut n = Self {
            kafka_port: free_port(),
            es_port: free_port(),
            dir,
            child: None,
        };
        n.resume().await;
        n
    }

    pub fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.kafka_port)
    }

    pub fn es_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.es_port)
    }

    /// Starts (again) on the same ports and data directory, and waits for both ports.
    pub async fn resume(&mut self) {
        assert!(self.child.is_none());
        let log = std::fs::File::create(self.dir.join("noida.log")).unwrap();
        let child = Command::new(binary())
            .args(["start", "--data-dir"])
            .arg(self.dir.join("data"))
            .args([
                "--only",
                "kafka,elasticsearch",
                "--kafka-port",
                &self.kafka_port.to_string(),
            ])
            .args(["--elasticsearch-port", &self.es_port.to_string()])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .process_group(0)
            .spawn()
            .expect("noida-db binary (scripts/deps.sh installs it)");
        self.child = Some(child);
        for _ in 0..300 {
            if listening(self.kafka_port) && listening(self.es_port) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("private noida-db did not open its ports");
    }

    /// Stops the server (SIGTERM to its process group) and waits until it exited.
    pub async fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let pgid = format!("-{}", child.id());
        let _ = Command::new("kill")
            .args(["-TERM", "--", &pgid])
            .stderr(Stdio::null())
            .status();
        for _ in 0..100 {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let _ = Command::new("kill")
            .args(["-KILL", "--", &pgid])
            .stderr(Stdio::null())
            .status();
        let _ = child.wait();
        for _ in 0..100 {
            if !listening(self.kafka_port) && !listening(self.es_port) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for PrivateNoida {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pgid = format!("-{}", child.id());
            let _ = Command::new("kill")
                .args(["-KILL", "--", &pgid])
                .stderr(Stdio::null())
                .status();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
