//! What the burst tests share with the fault tests: the burst's size, firing it, and the exact
//! outcome every burst must end in.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{Value, json};

use super::{Env, Tally};

pub const LIMIT: i64 = 100;
pub const USERS: i64 = 2_000;
pub const REQUESTS: usize = 5_000;

/// One final answer per request.
pub type Answer = (i64, u16, String);

/// Connections open at once: below the listener's accept backlog (1024), so a loaded machine
/// cannot turn the burst into refused or reset connections.
const CONNECTIONS: usize = 512;

/// Fires every request of `plan` at once (over at most `CONNECTIONS` connections at a time). With
/// `retry_503`, a 503 is retried (as a client may) until another answer comes; every 503 seen is
/// counted in `unavailable`.
pub async fn fire(
    env: &Env,
    event: i64,
    plan: &[i64],
    retry_503: bool,
    unavailable: Arc<AtomicUsize>,
) -> Vec<Answer> {
    let connections = Arc::new(tokio::sync::Semaphore::new(CONNECTIONS));
    let mut tasks = tokio::task::JoinSet::new();
    for &user in plan {
        let (http, url) = (env.http.clone(), env.url("/coupons"));
        let (unavailable, connections) = (unavailable.clone(), connections.clone());
        tasks.spawn(async move {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
            loop {
                let connection = connections.acquire().await.unwrap();
                let res = http
                    .post(&url)
                    .json(&json!({"userId": user, "couponEventId": event}))
                    .send()
                    .await
                    .expect("every request is answered (none hangs past the client timeout)");
                let status = res.status().as_u16();
                let body: Value = res.json().await.unwrap_or(Value::Null);
                let code = body["error"]["code"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                drop(connection);
                if status == 503 {
                    unavailable.fetch_add(1, Ordering::Relaxed);
                    if retry_503 && tokio::time::Instant::now() < deadline {
                        tokio::time::sleep(Duration::from_millis(200 + rand::random_range(0..300)))
                            .await;
                        continue;
                    }
                }
                return (user, status, code);
            }
        });
    }
    tasks.join_all().await
}

pub fn tally(answers: &[Answer]) -> Tally {
    let mut t = Tally::default();
    for (user, status, code) in answers {
        *t.by_status.entry(*status).or_default() += 1;
        *t.by_code.entry(code.clone()).or_default() += 1;
        if *status == 201 {
            t.winners.push(*user);
        }
    }
    t.winners.sort_unstable();
    t
}

/// Exactly `LIMIT` winners, all distinct, every other answer a 409 or sold-out; after the worker
/// drained, MySQL holds exactly the winners and Redis counts the same; the drift report agrees.
pub async fn assert_exact(env: &Env, event: i64, t: &Tally) {
    assert_eq!(t.winners.len() as i64, LIMIT, "201 answers: {t:?}");
    let distinct: HashSet<i64> = t.winners.iter().copied().collect();
    assert_eq!(distinct.len() as i64, LIMIT, "a user won twice: {t:?}");
    for (status, n) in &t.by_status {
        assert!(
            matches!(status, 201 | 409 | 410),
            "{n} answers with status {status}: {t:?}"
        );
    }
    for (code, n) in &t.by_code {
        assert!(
            matches!(code.as_str(), "" | "already_issued" | "sold_out"),
            "{n} x {code}: {t:?}"
        );
    }
    env.wait_drained(event, LIMIT).await;
    let (rows, users) = env.mysql_counts(event).await;
    assert_eq!((rows, users), (LIMIT, LIMIT));
    assert_eq!(
        env.mysql_users(event).await,
        t.winners,
        "MySQL holds exactly the winners"
    );
    assert_eq!(env.redis_count(event).await, LIMIT);
    let (_, report) = env
        .get(&format!("/admin/reconcile?couponEventId={event}"))
        .await;
    assert_eq!(report["events"][0]["status"], "ok", "{report}");
    assert_eq!(report["events"][0]["redis"]["pending"], 0, "{report}");
}
