//! A private Redis server for tests that take Redis away or restart it midway (the shared server
//! is never touched): its own port and directory, in its own process group, killed when dropped.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use super::process::{ServerProcess, free_port, wait_ports};
use super::unique;

pub struct PrivateRedis {
    dir: PathBuf,
    port: u16,
    persistent: bool,
    process: Option<ServerProcess>,
}

impl PrivateRedis {
    /// Starts a server on a free port. With `persistent`, every write is in an append-only file
    /// fsynced at once, so a killed server comes back with its data; without, a restart comes back
    /// empty (a Redis run as a cache, or a pod restarted without a volume).
    pub async fn start(persistent: bool) -> Self {
        let dir = std::env::temp_dir().join(unique("redis"));
        std::fs::create_dir_all(&dir).expect("private Redis directory");
        let mut r = Self {
            dir,
            port: free_port(),
            persistent,
            process: None,
        };
        r.resume().await;
        r
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts the server (again) and waits until its port is open.
    pub async fn resume(&mut self) {
        assert!(self.process.is_none(), "the private Redis already runs");
        let mut cmd = Command::new("redis-server");
        cmd.args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .arg("--dir")
            .arg(&self.dir)
            .args(["--save", ""]);
        if self.persistent {
            cmd.args(["--appendonly", "yes", "--appendfsync", "always"]);
        } else {
            cmd.args(["--appendonly", "no"]);
        }
        let mut p = ServerProcess::spawn(cmd, &self.dir.join("redis.log"));
        if !wait_ports(&[self.port], true, Duration::from_secs(30)).await {
            panic!("private Redis did not start; log:\n{}", p.log_tail(40));
        }
        assert!(p.is_running());
        self.process = Some(p);
    }

    /// Kills the server at once (SIGKILL: a crash) and waits for its port to close.
    pub async fn kill(&mut self) {
        if let Some(mut p) = self.process.take() {
            p.kill();
        }
        assert!(
            wait_ports(&[self.port], false, Duration::from_secs(30)).await,
            "Redis port {} stayed open",
            self.port
        );
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        if let Some(mut p) = self.process.take() {
            p.kill();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
