//! The real binary: start-up failures are one clear `error:` line on stderr and a non-zero exit.

mod support;

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
    for sub in [
        &["api"][..],
        &["worker", "issue"][..],
        &["reconcile"][..],
        &["drift"][..],
    ] {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_prints_the_report_and_fails_on_drift() {
    let env = support::Env::start().await;
    let worker = env.start_worker();
    let event = env.create_event(5).await;
    assert_eq!(env.issue(1, event).await.0, 201);
    env.wait_drained(event, 1).await;
    worker.stop().await;
    let db_url = format!(
        "{}/{}",
        campus_testkit::mysql_url(),
        sqlx::query_scalar::<_, String>("SELECT DATABASE()")
            .fetch_one(&env.pool)
            .await
            .unwrap()
    );
    let run = |fail: bool| {
        let mut c = campus_coupon();
        c.arg("reconcile")
            .env("MYSQL_URL", &db_url)
            .env("REDIS_URL", campus_testkit::redis_url())
            .env("REDIS_KEY_PREFIX", &env.prefix);
        if fail {
            c.arg("--fail-on-drift");
        }
        c.output().unwrap()
    };
    let out = run(true);
    assert!(out.status.success(), "{out:?}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["events"][0]["status"], "ok", "{report}");
    assert_eq!(report["events"][0]["mysqlCoupons"], 1);

    sqlx::query("DELETE FROM coupons WHERE coupon_event_id = ?")
        .bind(event)
        .execute(&env.pool)
        .await
        .unwrap();
    let out = run(false);
    assert!(out.status.success(), "without --fail-on-drift: {out:?}");
    let out = run(true);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["events"][0]["status"], "drift", "{report}");
    assert_eq!(report["events"][0]["onlyInRedis"], serde_json::json!([1]));
    let lines = error_lines(&out.stderr);
    assert_eq!(lines, vec!["error: 1 coupon event(s) drifted".to_owned()]);
}
