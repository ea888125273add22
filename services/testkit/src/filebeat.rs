//! A real Filebeat (built by scripts/install/filebeat.sh) for tests: `filebeat test config` on a
//! rendered `filebeat.yml`, and Filebeat processes that ship files to Kafka. The binary comes from
//! `$CAMPUS_TEST_FILEBEAT` (`scripts/servers.sh env` prints it).

use std::path::{Path, PathBuf};
use std::process::Command;

use super::process::ServerProcess;
use super::{on_ci, unique};

/// The variable naming the Filebeat binary.
pub const FILEBEAT_ENV: &str = "CAMPUS_TEST_FILEBEAT";

/// A Filebeat binary.
#[derive(Debug, Clone)]
pub struct Filebeat {
    bin: PathBuf,
}

impl Filebeat {
    /// The binary `$CAMPUS_TEST_FILEBEAT` names. Without it the test is skipped (it says so on
    /// stderr and the caller returns), except on CI (`CI=true`), where it fails.
    pub fn find() -> Option<Self> {
        let found = std::env::var_os(FILEBEAT_ENV)
            .map(PathBuf::from)
            .filter(|p| p.is_file());
        match found {
            Some(bin) => Some(Self { bin }),
            None if on_ci() => panic!(
                "CI=true but ${FILEBEAT_ENV} names no Filebeat binary ({:?}): run scripts/deps.sh \
                 and eval \"$(bash scripts/servers.sh env)\"",
                std::env::var_os(FILEBEAT_ENV)
            ),
            None => {
                eprintln!(
                    "SKIPPED: ${FILEBEAT_ENV} names no Filebeat binary (scripts/servers.sh env \
                     prints it)"
                );
                None
            }
        }
    }

    pub fn bin(&self) -> &Path {
        &self.bin
    }

    /// `filebeat <args> -c <config>` with its home, data and logs in `home` (created), the
    /// config file's permission check off, and `NODE_NAME` set (the DaemonSet's config reads it).
    pub fn command(&self, config: &Path, home: &Path) -> Command {
        std::fs::create_dir_all(home.join("data")).expect("Filebeat data directory");
        std::fs::create_dir_all(home.join("logs")).expect("Filebeat logs directory");
        let mut cmd = Command::new(&self.bin);
        cmd.arg("-c")
            .arg(config)
            .arg("--path.home")
            .arg(home)
            .arg("--path.config")
            .arg(home)
            .arg("--path.data")
            .arg(home.join("data"))
            .arg("--path.logs")
            .arg(home.join("logs"))
            .arg("--strict.perms=false")
            .env("NODE_NAME", "campus-test-node");
        cmd
    }

    /// Whether Filebeat takes `yaml`: `filebeat test config` (settings, processors, the output),
    /// then a real start with the output swapped for a file in a temporary home (the inputs,
    /// which `test config` does not build) until it reports its inputs started. `Err` with
    /// Filebeat's output when it refuses the configuration.
    pub fn check(&self, yaml: &str) -> Result<(), String> {
        self.test_config(yaml)?;
        self.starts(yaml)
    }

    /// `filebeat test config` on `yaml`, in a temporary home.
    pub fn test_config(&self, yaml: &str) -> Result<(), String> {
        let home = std::env::temp_dir().join(unique("filebeat-test-config"));
        std::fs::create_dir_all(&home).expect("temporary Filebeat home");
        let config = home.join("filebeat.yml");
        std::fs::write(&config, yaml).expect("write filebeat.yml");
        let out = self
            .command(&config, &home)
            .args(["test", "config"])
            .output()
            .unwrap_or_else(|e| panic!("failed to run {}: {e}", self.bin.display()));
        let _ = std::fs::remove_dir_all(&home);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if out.status.success() && text.contains("Config OK") {
            Ok(())
        } else {
            Err(format!("filebeat test config: {}: {text}", out.status))
        }
    }

    /// Filebeat started on `yaml` (output to a file in a temporary home, monitoring endpoint
    /// off, so nothing leaves the machine and no port is bound) until it logs that its inputs
    /// started; then stopped.
    pub fn starts(&self, yaml: &str) -> Result<(), String> {
        use std::time::{Duration, Instant};
        let home = std::env::temp_dir().join(unique("filebeat-start"));
        std::fs::create_dir_all(&home).expect("temporary Filebeat home");
        let config = home.join("filebeat.yml");
        std::fs::write(&config, yaml).expect("write filebeat.yml");
        let out_dir = home.join("out");
        let mut cmd = self.command(&config, &home);
        cmd.arg("-e")
            .args(["-E", "output.kafka.enabled=false", "-E"])
            .arg(format!("output.file.path={}", out_dir.display()))
            .args(["-E", "http.enabled=false"]);
        let log = home.join("filebeat.out");
        let mut p = ServerProcess::spawn(cmd, &log);
        let deadline = Instant::now() + Duration::from_secs(60);
        let result = loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if text.contains("Loading and starting Inputs completed") {
                break Ok(());
            }
            if !p.is_running() {
                break Err(format!("Filebeat exited at start: {text}"));
            }
            if Instant::now() > deadline {
                break Err(format!("Filebeat did not start its inputs in 60 s: {text}"));
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        p.kill();
        let _ = std::fs::remove_dir_all(&home);
        result
    }

    /// Filebeat running `yaml` (`-e`: its own log lines on stderr, into `home/filebeat.out`), its
    /// registry in `home`.
    pub fn spawn(&self, yaml: &str, home: &Path) -> ServerProcess {
        std::fs::create_dir_all(home).expect("Filebeat home");
        let config = home.join("filebeat.yml");
        std::fs::write(&config, yaml).expect("write filebeat.yml");
        let mut cmd = self.command(&config, home);
        cmd.arg("-e");
        ServerProcess::spawn(cmd, &home.join("filebeat.out"))
    }
}
