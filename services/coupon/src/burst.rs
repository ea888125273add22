//! `campus-coupon burst`: a first-come-first-served burst against a running coupon API, as its
//! users make one — many requests at once, most users trying more than once — and what came back:
//! every answer by status, latency percentiles, and whether any user got two coupons. It is how
//! the cluster e2e proves "exactly the limit, at most one per user" through a Service, and how an
//! operator of an installation can try it on their own.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures::StreamExt as _;
use rand::seq::SliceRandom as _;
use serde::Serialize;
use serde_json::json;

/// What to send.
#[derive(Debug, Clone, clap::Args)]
pub struct BurstCmd {
    /// The coupon API's base URL (a Service's, e.g. `http://campus-coupon-api`).
    #[arg(long, env = "COUPON_API_URL")]
    pub url: String,
    /// The coupon event to ask for.
    #[arg(long = "event")]
    pub event: i64,
    /// Requests in all.
    #[arg(long, default_value_t = 3000)]
    pub requests: usize,
    /// Distinct users, `first-user ..`; each tries about requests/users times, in a shuffled order.
    #[arg(long, default_value_t = 300)]
    pub users: usize,
    /// The first user id.
    #[arg(long = "first-user", default_value_t = 1)]
    pub first_user: i64,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// Requests started per second, evenly spaced (a steady load, e.g. during a roll); 0 sends
    /// them as fast as `concurrency` allows (a burst).
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    /// Seconds one request may take before it counts as an error.
    #[arg(long = "timeout-secs", default_value_t = 10)]
    pub timeout_secs: u64,
    /// Exit with an error unless exactly this many coupons were issued, no user got two and no
    /// request failed (an error, a 5xx or a timeout).
    #[arg(long = "expect-issued")]
    pub expect_issued: Option<u64>,
}

/// What came back.
#[derive(Debug, Default, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BurstReport {
    pub requests: u64,
    /// 201: a coupon.
    pub issued: u64,
    /// 409 `already_issued`.
    pub already_issued: u64,
    /// 410 `sold_out`.
    pub sold_out: u64,
    /// 429 `rate_limited`.
    pub rate_limited: u64,
    /// Any other status, by status code.
    pub other: HashMap<u16, u64>,
    /// No answer (connect, read or timeout).
    pub errors: u64,
    /// Users that were answered 201 more than once.
    pub users_issued_twice: u64,
    pub seconds: f64,
    pub requests_per_second: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// The first error or unexpected answer, for the log.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_failure: Option<String>,
}

impl BurstReport {
    /// Answers that mean a request failed: no answer, or a 5xx.
    pub fn failed(&self) -> u64 {
        self.errors
            + self
                .other
                .iter()
                .filter(|(s, _)| **s >= 500)
                .map(|(_, n)| n)
                .sum::<u64>()
    }

    /// `Err` with the reasons unless the burst issued exactly `expected` coupons, none twice to a
    /// user, and no request failed.
    pub fn check(&self, expected: u64) -> Result<(), String> {
        let mut why = Vec::new();
        if self.issued != expected {
            why.push(format!("{} issued, expected {expected}", self.issued));
        }
        if self.users_issued_twice > 0 {
            why.push(format!("{} users issued twice", self.users_issued_twice));
        }
        if self.failed() > 0 {
            why.push(format!("{} requests failed", self.failed()));
        }
        if why.is_empty() {
            Ok(())
        } else {
            Err(why.join(", "))
        }
    }
}

/// The users of a burst, in the order they ask: each of `users` ids from `first` about
/// `requests / users` times, shuffled.
pub fn plan(first: i64, users: usize, requests: usize) -> Vec<i64> {
    let users = users.max(1);
    let mut p: Vec<i64> = (0..requests).map(|i| first + (i % users) as i64).collect();
    p.shuffle(&mut rand::rng());
    p
}

/// Sends the burst and counts the answers.
pub async fn run(cmd: &BurstCmd) -> anyhow::Result<BurstReport> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(cmd.timeout_secs))
        .pool_max_idle_per_host(cmd.concurrency)
        .build()
        .context("failed to build the HTTP client")?;
    let url = format!("{}/coupons", cmd.url.trim_end_matches('/'));
    let start = Instant::now();
    let answers: Vec<(i64, Answer, Duration)> = futures::stream::iter(
        plan(cmd.first_user, cmd.users, cmd.requests)
            .into_iter()
            .enumerate(),
    )
    .map(|(i, user)| {
        let (client, url) = (client.clone(), url.clone());
        let body = json!({"userId": user, "couponEventId": cmd.event});
        let at = (cmd.rate > 0.0).then(|| start + Duration::from_secs_f64(i as f64 / cmd.rate));
        async move {
            if let Some(at) = at {
                tokio::time::sleep_until(at.into()).await;
            }
            let t = Instant::now();
            let r = match client.post(&url).json(&body).send().await {
                // (The body read to its end: the connection goes back to the pool.)
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    match resp.bytes().await {
                        Ok(b) => Answer::Status(
                            status,
                            String::from_utf8_lossy(&b[..b.len().min(300)]).into_owned(),
                        ),
                        Err(e) => Answer::Error(format!("{status}, reading the body: {e}")),
                    }
                }
                Err(e) => Answer::Error(format!("{e:#}")),
            };
            (user, r, t.elapsed())
        }
    })
    .buffer_unordered(cmd.concurrency.max(1))
    .collect()
    .await;
    Ok(tally(answers, start.elapsed()))
}

/// One request's answer: its status and (the start of) its body, or no answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    Status(u16, String),
    Error(String),
}

/// The report of `answers` (user, answer, latency) that took `elapsed` in all.
pub fn tally(answers: Vec<(i64, Answer, Duration)>, elapsed: Duration) -> BurstReport {
    let mut r = BurstReport {
        requests: answers.len() as u64,
        seconds: elapsed.as_secs_f64(),
        ..BurstReport::default()
    };
    let mut per_user: HashMap<i64, u64> = HashMap::new();
    let mut latencies: Vec<Duration> = Vec::with_capacity(answers.len());
    for (user, answer, latency) in answers {
        latencies.push(latency);
        match answer {
            Answer::Status(201, _) => {
                r.issued += 1;
                *per_user.entry(user).or_default() += 1;
            }
            Answer::Status(409, _) => r.already_issued += 1,
            Answer::Status(410, _) => r.sold_out += 1,
            Answer::Status(429, _) => r.rate_limited += 1,
            Answer::Status(status, body) => {
                *r.other.entry(status).or_default() += 1;
                r.first_failure
                    .get_or_insert_with(|| format!("user {user}: {status} {body}"));
            }
            Answer::Error(e) => {
                r.errors += 1;
                r.first_failure
                    .get_or_insert_with(|| format!("user {user}: {e}"));
            }
        }
    }
    r.users_issued_twice = per_user.values().filter(|n| **n > 1).count() as u64;
    if r.seconds > 0.0 {
        r.requests_per_second = r.requests as f64 / r.seconds;
    }
    latencies.sort();
    let ms = |q: f64| -> f64 {
        if latencies.is_empty() {
            return 0.0;
        }
        let i = ((latencies.len() as f64 * q).ceil() as usize).clamp(1, latencies.len()) - 1;
        latencies[i].as_secs_f64() * 1000.0
    };
    (r.p50_ms, r.p99_ms, r.max_ms) = (ms(0.50), ms(0.99), ms(1.0));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_asks_for_every_user_about_equally() {
        let p = plan(100, 3, 10);
        assert_eq!(p.len(), 10);
        let mut n: HashMap<i64, usize> = HashMap::new();
        for u in p {
            *n.entry(u).or_default() += 1;
        }
        assert_eq!(n.len(), 3);
        assert!(n.keys().all(|u| (100..103).contains(u)));
        assert!(n.values().all(|c| (3..=4).contains(c)), "{n:?}");
    }

    #[test]
    fn tally_counts_answers_and_users_issued_twice() {
        let ms = Duration::from_millis;
        let s = |status| Answer::Status(status, "{}".into());
        let answers = vec![
            (1, s(201), ms(1)),
            (1, s(201), ms(2)),
            (2, s(201), ms(3)),
            (3, s(409), ms(4)),
            (4, s(410), ms(5)),
            (5, s(429), ms(6)),
            (6, s(400), ms(7)),
            (7, s(503), ms(8)),
            (8, Answer::Error("connection refused".into()), ms(9)),
            (9, s(410), ms(100)),
        ];
        let r = tally(answers, Duration::from_secs(2));
        assert_eq!(
            (
                r.requests,
                r.issued,
                r.already_issued,
                r.sold_out,
                r.rate_limited
            ),
            (10, 3, 1, 2, 1)
        );
        assert_eq!(r.other, HashMap::from([(400, 1), (503, 1)]));
        assert_eq!((r.errors, r.users_issued_twice, r.failed()), (1, 1, 2));
        assert_eq!((r.p50_ms, r.max_ms), (5.0, 100.0));
        assert_eq!(r.requests_per_second, 5.0);
        assert_eq!(r.first_failure.as_deref(), Some("user 6: 400 {}"));
        assert_eq!(
            r.check(3).unwrap_err(),
            "1 users issued twice, 2 requests failed"
        );
        let clean = tally(vec![(1, s(201), ms(1)), (2, s(410), ms(1))], ms(10));
        assert_eq!(clean.check(1), Ok(()));
        assert_eq!(clean.check(2).unwrap_err(), "1 issued, expected 2");
    }
}
