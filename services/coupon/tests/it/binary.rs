//! The real binary: start-up failures are one clear `error:` line on stderr and a non-zero exit.

use std::process::Command;

fn campus_coupon() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_campus-coupon"));
    for var in [
        "KAFKA_BROKERS",
        "KAFKA_PREFIX",
        "MYSQL_URL",
        "REDIS_URL",
        "REDIS_KEY_PREFIX",
        "HTTP_ADDR",
        "OPS_ADDR",
        "KAFKA_PROPERTIES",
    ] {
        c.env_remove(var);
    }
    c
}

fn error_lines(stderr: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(stderr)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_owned)
        .collect()
}

#[test]
fn a_missing_broker_address_is_one_line_and_exit_2() {
    let out = campus_coupon()
        .arg("api")
        .env("MYSQL_URL", "mysql://root@127.0.0.1:3306/x")
        .env("REDIS_URL", "redis://127.0.0.1:6379")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let lines = error_lines(&out.stderr);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].starts_with("error:") && lines[0].contains("--kafka-brokers"),
        "{lines:?}"
    );
}

#[test]
fn an_unreachable_mysql_is_one_line_and_a_failed_exit() {
    for sub in [&["api"][..], &["worker", "issue"][..], &["reconcile"][..]] {
        let out = campus_coupon()
            .args(sub)
            .env("KAFKA_BROKERS", "127.0.0.1:9092")
            .env("MYSQL_URL", "mysql://root:hunter2@127.0.0.1:1/campus")
            .env("MYSQL_CONNECT_TIMEOUT_MS", "2000")
            .env("REDIS_URL", "redis://127.0.0.1:6379")
            .env("HTTP_ADDR", "127.0.0.1:0")
            .env("OPS_ADDR", "127.0.0.1:0")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{sub:?}: {out:?}");
        let lines = error_lines(&out.stderr);
        assert_eq!(lines.len(), 1, "{sub:?}: {lines:?}");
        assert!(
            lines[0].starts_with("error: failed to connect to MySQL at 127.0.0.1:1/campus"),
            "{sub:?}: {lines:?}"
        );
        assert!(
            !lines[0].contains("hunter2"),
            "the password leaked: {lines:?}"
        );
    }
}
