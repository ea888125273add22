//! A private MariaDB server for tests that take MySQL away midway (the shared server is never
//! touched): its own data directory and port, in its own process group, killed when dropped. Its
//! data survives a kill, so a killed server comes back with its databases (after InnoDB recovery).

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use sqlx::mysql::{MySqlPool, MySqlPoolOptions};
use sqlx::{Connection, Executor, MySqlConnection};

use super::process::{ServerProcess, free_port, wait_ports};
use super::unique;

pub struct PrivateMysql {
    dir: PathBuf,
    port: u16,
    process: Option<ServerProcess>,
}

impl PrivateMysql {
    /// Initialises a data directory and starts the server on a free port.
    pub async fn start() -> Self {
        let dir = std::env::temp_dir().join(unique("mysql"));
        std::fs::create_dir_all(&dir).expect("private MySQL directory");
        let out = Command::new("mariadb-install-db")
            .args(["--no-defaults", "--user=root", "--skip-test-db"])
            .arg(format!("--datadir={}", dir.join("data").display()))
            .arg("--auth-root-authentication-method=normal")
            .output()
            .expect("mariadb-install-db (scripts/deps.sh installs MariaDB)");
        assert!(
            out.status.success(),
            "mariadb-install-db failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut m = Self {
            dir,
            port: free_port(),
            process: None,
        };
        m.resume().await;
        m
    }

    /// `mysql://root@127.0.0.1:<port>` (no database).
    pub fn url(&self) -> String {
        format!("mysql://root@127.0.0.1:{}", self.port)
    }

    /// Starts the server (again, with its data) and waits until it accepts connections.
    pub async fn resume(&mut self) {
        assert!(self.process.is_none(), "the private MySQL already runs");
        let mut cmd = Command::new("mariadbd");
        cmd.args(["--no-defaults", "--user=root"])
            .arg(format!("--datadir={}", self.dir.join("data").display()))
            .arg(format!(
                "--socket={}",
                self.dir.join("mysql.sock").display()
            ))
            .arg(format!(
                "--pid-file={}",
                self.dir.join("mysqld.pid").display()
            ))
            .arg(format!("--port={}", self.port))
            .args([
                "--bind-address=127.0.0.1",
                "--skip-log-bin",
                "--max-connections=500",
                "--innodb-buffer-pool-size=64M",
                "--innodb-flush-log-at-trx-commit=2",
            ]);
        let mut p = ServerProcess::spawn(cmd, &self.dir.join("mysqld.log"));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
        loop {
            if MySqlConnection::connect(&self.url()).await.is_ok() {
                break;
            }
            if !p.is_running() || tokio::time::Instant::now() > deadline {
                panic!("private MySQL did not start; log:\n{}", p.log_tail(40));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        self.process = Some(p);
    }

    /// Kills the server at once (SIGKILL: a crash) and waits for its port to close.
    pub async fn kill(&mut self) {
        if let Some(mut p) = self.process.take() {
            p.kill();
        }
        assert!(
            wait_ports(&[self.port], false, Duration::from_secs(30)).await,
            "MySQL port {} stayed open",
            self.port
        );
    }

    /// A fresh, empty database; its URL and a pool on it that waits at most `acquire` for a
    /// connection.
    pub async fn fresh_database(&self, acquire: Duration) -> (String, MySqlPool) {
        let name = unique("t");
        let mut admin = MySqlConnection::connect(&self.url())
            .await
            .expect("private MySQL is up");
        admin
            .execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE `{name}`")))
            .await
            .expect("create database");
        let url = format!("{}/{name}", self.url());
        let pool = MySqlPoolOptions::new()
            .max_connections(32)
            .acquire_timeout(acquire)
            .connect(&url)
            .await
            .expect("connect to fresh database");
        (url, pool)
    }
}

impl Drop for PrivateMysql {
    fn drop(&mut self) {
        if let Some(mut p) = self.process.take() {
            p.kill();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
