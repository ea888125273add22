//! Processes that tests and benchmarks start for themselves. A [`ServerProcess`] runs in its own
//! process group with its output in a log file, is stopped by its PID (the group), and is killed
//! when dropped, so a failed test leaves nothing running. Signals go through [`signal`] and
//! [`signal_group`] (nix), never a `kill` child process.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

pub use nix::sys::signal::Signal;
use nix::sys::signal::{kill, killpg};
use nix::unistd::Pid;

/// `$CAMPUS_CACHE`, else `~/.cache/campus`: where scripts/deps.sh installs servers.
pub fn cache_dir() -> PathBuf {
    std::env::var("CAMPUS_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/campus")
        })
}

/// The repository's `scripts/` directory (the tests run from a checkout).
pub fn scripts_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts")
}

/// A free TCP port on 127.0.0.1 (bound, read, released).
pub fn free_port() -> u16 {
    free_port_pair().0
}

/// Two distinct free TCP ports on 127.0.0.1 (both bound at once, then released).
pub fn free_port_pair() -> (u16, u16) {
    let bind = || std::net::TcpListener::bind("127.0.0.1:0").expect("a free local port");
    let (a, b) = (bind(), bind());
    let port = |l: &std::net::TcpListener| l.local_addr().expect("local address").port();
    (port(&a), port(&b))
}

/// True when something accepts TCP connections on 127.0.0.1:`port`.
pub fn listening(port: u16) -> bool {
    std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
}

/// Sends `signal` to the process group `pid` leads; a group that is gone is not an error.
pub fn signal_group(pid: u32, signal: Signal) {
    let _ = killpg(Pid::from_raw(pid as i32), signal);
}

/// Sends `signal` to the one process `pid` (a child started without a group of its own).
pub fn signal(pid: u32, signal: Signal) -> nix::Result<()> {
    kill(Pid::from_raw(pid as i32), signal)
}

/// SIGTERM to `child` and waits for it to exit; a child that already exited is only reaped.
/// For `Drop`s and the end of benchmarks: its exit status, if it could be read.
pub fn stop_child(child: &mut Child) -> Option<ExitStatus> {
    if let Ok(None) = child.try_wait() {
        let _ = signal(child.id(), Signal::SIGTERM);
    }
    child.wait().ok()
}

/// Another workspace package's binary of the same name, beside `own` (a test's
/// `env!("CARGO_BIN_EXE_…")`). A workspace test run has built it; when it is missing (`cargo test
/// -p <one crate>`) it is built here.
pub fn sibling_binary(own: &str, package: &str) -> PathBuf {
    let path = PathBuf::from(own).with_file_name(package);
    if !path.exists() {
        let status = Command::new(env!("CARGO"))
            .args(["build", "--quiet", "-p", package, "--bin", package])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .unwrap_or_else(|e| panic!("cargo build -p {package}: {e}"));
        assert!(status.success(), "cargo build -p {package} failed");
    }
    assert!(path.exists(), "{} missing", path.display());
    path
}

/// (VmRSS, VmHWM) of a process in KiB, from /proc; zeros once it is gone. For benchmarks.
pub fn memory_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// CPU time (user + system, all threads) the process `pid` has used so far, in seconds; 0 when
/// it cannot be read.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces), closed by the last ')'.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let field = |i: usize| {
        rest.split_whitespace()
            .nth(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime are fields 14 and 15 of stat(5); `rest` starts at field 3.
    let ticks = field(11) + field(12);
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .unwrap_or(100);
    ticks as f64 / hz as f64
}

/// Waits until every port in `ports` is open (`open`) or closed, up to `timeout`.
pub async fn wait_ports(ports: &[u16], open: bool, timeout: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    while tokio::time::Instant::now() < deadline {
        if ports.iter().all(|p| listening(*p) == open) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// One server process in its own process group, its output appended to `log`.
pub struct ServerProcess {
    child: Option<Child>,
    log: PathBuf,
}

impl ServerProcess {
    /// Spawns `cmd` (stdin closed, stdout and stderr appended to `log`) as the leader of a new
    /// process group.
    pub fn spawn(mut cmd: Command, log: &Path) -> Self {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("server log file");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("server log file"))
            .stderr(file)
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("failed to start {cmd:?}: {e}"));
        Self {
            child: Some(child),
            log: log.to_owned(),
        }
    }

    /// The leader's PID while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// True while the leader has not exited.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }

    /// The log so far (for panic messages).
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// SIGTERM to the group, up to `grace` for the leader to exit, then SIGKILL.
    pub async fn stop(&mut self, grace: Duration) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        signal_group(child.id(), Signal::SIGTERM);
        let deadline = tokio::time::Instant::now() + grace;
        while tokio::time::Instant::now() < deadline {
            if child.try_wait().ok().flatten().is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        signal_group(child.id(), Signal::SIGKILL);
        let _ = child.wait();
    }

    /// SIGKILL to the group at once (a crash, not a shutdown).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            signal_group(child.id(), Signal::SIGKILL);
            let _ = child.wait();
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_seconds_counts_this_processs_work() {
        let me = std::process::id();
        let before = cpu_seconds(me);
        let started = std::time::Instant::now();
        let mut x = 0u64;
        while started.elapsed() < Duration::from_millis(300) {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
        }
        let used = cpu_seconds(me) - before;
        assert!(
            (0.15..5.0).contains(&used),
            "{used} s of CPU for a 300 ms spin"
        );
        assert_eq!(cpu_seconds(u32::MAX), 0.0);
    }
}
