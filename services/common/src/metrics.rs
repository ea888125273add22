//! The root Prometheus registry of every Campus process: one prefix for all its metrics
//! ([`PREFIX`], so `campus_http_requests_total`, `campus_consumer_lag`, `campus_operator_…`),
//! `campus_build_info{version,service}` and the process metrics (`campus_process_…`).
//!
//! Every binary creates its registry with [`registry`] and registers its metrics in it (or in a
//! sub-registry); nothing names the prefix itself.

use std::time::{SystemTime, UNIX_EPOCH};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::registry::Registry;

/// The prefix of every metric a Campus process exports.
pub const PREFIX: &str = "campus";

/// The version every Campus binary of this build reports (the workspace's).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: String,
    service: String,
}

/// A process's root registry: every metric registered in it is named `campus_…`. `service` is
/// the binary (`campus-content`, `campus-operator`), as in the access log's `service` field.
pub fn registry(service: &str) -> Registry {
    let mut registry = Registry::with_prefix(PREFIX);
    let build = Family::<BuildLabels, Gauge>::default();
    build
        .get_or_create(&BuildLabels {
            version: VERSION.to_owned(),
            service: service.to_owned(),
        })
        .set(1);
    registry.register(
        "build_info",
        "Always 1; the labels say which version of which Campus binary runs",
        build,
    );
    registry.register_collector(Box::new(ProcessCollector::new()));
    registry
}

/// The process metrics of Prometheus' client libraries (`process_cpu_seconds_total`,
/// `process_resident_memory_bytes`, …), read from `/proc/self` on each scrape (Linux; elsewhere
/// only the start time).
#[derive(Debug)]
pub struct ProcessCollector {
    start_time: f64,
}

impl ProcessCollector {
    /// The start time is taken now (a process builds its registry as it starts).
    pub fn new() -> Self {
        Self {
            start_time: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or_default(),
        }
    }
}

impl Default for ProcessCollector {
    fn default() -> Self {
        Self::new()
    }
}

/// What `/proc/self` says about this process.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ProcessStats {
    pub cpu_seconds: Option<f64>,
    pub resident_memory_bytes: Option<i64>,
    pub virtual_memory_bytes: Option<i64>,
    pub threads: Option<i64>,
    pub open_fds: Option<i64>,
    pub max_fds: Option<i64>,
}

impl ProcessStats {
    /// Reads the current figures; a file that cannot be read leaves its figures out.
    pub fn read() -> Self {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let kib = |key: &str| status_field(&status, key).map(|v| v * 1024);
        Self {
            cpu_seconds: cpu_seconds(),
            resident_memory_bytes: kib("VmRSS:"),
            virtual_memory_bytes: kib("VmSize:"),
            threads: status_field(&status, "Threads:"),
            open_fds: std::fs::read_dir("/proc/self/fd")
                .ok()
                .map(|d| d.count() as i64),
            max_fds: std::fs::read_to_string("/proc/self/limits")
                .ok()
                .and_then(|l| status_field(&l, "Max open files")),
        }
    }
}

/// The first number after `key` on the line that starts with it: `/proc/self/status`
/// (`VmRSS:  1234 kB`) and `/proc/self/limits` (`Max open files  1024  4096  files`: the soft limit).
fn status_field(status: &str, key: &str) -> Option<i64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// User and system CPU time of the whole process (every thread).
#[cfg(target_os = "linux")]
fn cpu_seconds() -> Option<f64> {
    use nix::sys::resource::{UsageWho, getrusage};
    let usage = getrusage(UsageWho::RUSAGE_SELF).ok()?;
    let secs = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 + t.tv_usec() as f64 / 1e6;
    Some(secs(usage.user_time()) + secs(usage.system_time()))
}

#[cfg(not(target_os = "linux"))]
fn cpu_seconds() -> Option<f64> {
    None
}

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let stats = ProcessStats::read();
        let start = ConstGauge::new(self.start_time);
        start.encode(encoder.encode_descriptor(
            "process_start_time_seconds",
            "Start time of the process since the Unix epoch in seconds",
            None,
            start.metric_type(),
        )?)?;
        if let Some(v) = stats.cpu_seconds {
            let m = ConstCounter::new(v);
            m.encode(encoder.encode_descriptor(
                "process_cpu_seconds",
                "Total user and system CPU time spent in seconds",
                None,
                m.metric_type(),
            )?)?;
        }
        for (name, help, value) in [
            (
                "process_resident_memory_bytes",
                "Resident memory size in bytes",
                stats.resident_memory_bytes,
            ),
            (
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes",
                stats.virtual_memory_bytes,
            ),
            (
                "process_threads",
                "Number of OS threads in the process",
                stats.threads,
            ),
            (
                "process_open_fds",
                "Number of open file descriptors",
                stats.open_fds,
            ),
            (
                "process_max_fds",
                "Maximum number of open file descriptors",
                stats.max_fds,
            ),
        ] {
            if let Some(v) = value {
                let m = ConstGauge::new(v);
                m.encode(encoder.encode_descriptor(name, help, None, m.metric_type())?)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(registry: &Registry) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, registry).unwrap();
        out
    }

    fn value(text: &str, name: &str) -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("no sample {name} in\n{text}"))
            .parse()
            .unwrap()
    }

    #[test]
    fn every_metric_is_prefixed_with_build_info_and_process_metrics() {
        let mut registry = registry("campus-test");
        let c = prometheus_client::metrics::counter::Counter::<u64>::default();
        registry.register("things", "Things", c.clone());
        c.inc();
        let text = encode(&registry);
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            assert!(line.starts_with("campus_"), "{line}\n{text}");
        }
        assert!(
            text.contains(&format!(
                "campus_build_info{{version=\"{VERSION}\",service=\"campus-test\"}} 1\n"
            )),
            "{text}"
        );
        assert_eq!(value(&text, "campus_things_total"), 1.0);
        let started = value(&text, "campus_process_start_time_seconds");
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        assert!(started <= now && started > now - 60.0, "{started} {now}");
        // Real figures of this test process.
        assert!(
            value(&text, "campus_process_resident_memory_bytes") > 1e6,
            "{text}"
        );
        assert!(value(&text, "campus_process_open_fds") >= 3.0, "{text}");
        assert!(value(&text, "campus_process_max_fds") >= value(&text, "campus_process_open_fds"));
        assert!(value(&text, "campus_process_threads") >= 1.0, "{text}");
        // Spinning raises the process's CPU seconds. (Until 0.2 s of them, not for 0.3 s of wall
        // time: on a loaded machine the spin gets only part of a core — seen in CI: 0.19 s.)
        let before = value(&text, "campus_process_cpu_seconds_total");
        let t = std::time::Instant::now();
        let mut x = 0u64;
        let mut after = before;
        while after - before < 0.2 && t.elapsed() < std::time::Duration::from_secs(20) {
            for _ in 0..1_000_000 {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
            }
            after = value(&encode(&registry), "campus_process_cpu_seconds_total");
        }
        assert!(
            after - before >= 0.2,
            "{before} -> {after} in {:?}",
            t.elapsed()
        );
    }

    #[test]
    fn proc_files_are_parsed() {
        let status = "Name:\tx\nVmSize:\t  2048 kB\nVmRSS:\t   512 kB\nThreads:\t7\n";
        assert_eq!(status_field(status, "VmRSS:"), Some(512));
        assert_eq!(status_field(status, "Threads:"), Some(7));
        assert_eq!(status_field(status, "VmSwap:"), None);
        let limits = "Limit                     Soft Limit           Hard Limit           Units\nMax open files            1024                 524288               files\n";
        assert_eq!(status_field(limits, "Max open files"), Some(1024));
    }
}
