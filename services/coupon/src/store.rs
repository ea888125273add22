//! The Redis side of issuing: the atomic decision, giving a slot back, the worker's claim, and
//! what the drift report reads.
//!
//! Per event two keys share one hash slot (`{ev:<id>}`), so the scripts also run on Redis Cluster:
//! - `<prefix>coupon:{ev:<id>}:meta`: hash `limit`, `start`, `end` (ms since the epoch);
//! - `<prefix>coupon:{ev:<id>}:holders`: hash user id → request id (`<id>` while the Kafka write is
//!   pending or unconfirmed, `c:<id>` once the worker claimed it). Its size is the issued count.
//!
//! Both expire at the event's end plus a retention, never after a fixed number of days.

use std::collections::HashMap;
use std::time::Duration;

use campus_common::config::{ExposeSecret, RedisArgs, redact_url};
use chrono::{DateTime, Utc};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use uuid::Uuid;

use crate::config::REDIS_TIMEOUT;

const ISSUE: &str = include_str!("lua/issue.lua");
const GIVE_BACK: &str = include_str!("lua/give_back.lua");
const CONFIRM: &str = include_str!("lua/confirm.lua");

/// Fields per HSCAN page of the drift report and the sweep.
pub const SCAN_PAGE: usize = 1000;

/// Commands in flight on the one multiplexed connection at a time.
const IN_FLIGHT: usize = 256;

/// A Redis operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("failed to connect to Redis at {target}")]
    Connect {
        target: String,
        #[source]
        source: redis::RedisError,
    },
    #[error("failed to {op} in Redis")]
    Command {
        op: &'static str,
        #[source]
        source: redis::RedisError,
    },
    #[error("failed to {op} in Redis: unexpected answer {answer:?}")]
    Answer { op: &'static str, answer: Vec<i64> },
}

/// What Redis needs to decide without MySQL.
#[derive(Debug, Clone, PartialEq)]
pub struct EventWindow {
    pub limit: i64,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
}

/// The metadata and current holders from MySQL, for when Redis lost its copy.
#[derive(Debug, Clone)]
pub struct Reload {
    pub window: EventWindow,
    /// (user id, coupon id) of coupons MySQL holds.
    pub holders: Vec<(i64, String)>,
    /// (user id, request id) of requests acknowledged by Kafka that the worker has not stored yet
    /// ([`crate::inflight`]): they hold their slots as pending marks.
    pub pending: Vec<(i64, String)>,
}

/// The answer of the issue script.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// A slot is taken for this request; `issued` counts it.
    Issued {
        issued: i64,
    },
    AlreadyIssued,
    NotStarted,
    Ended,
    SoldOut,
    /// Redis holds no metadata for the event; nothing was written.
    Missing,
}

/// The answer of the give-back script.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GiveBack {
    /// The slot and the user's mark are free again.
    Returned,
    /// The worker already claimed the request: the write reached Kafka after all.
    Confirmed,
    /// Nothing was held for this request.
    NotHeld,
}

/// The worker's claim on one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// Claimed: insert it.
    Insert,
    /// Given back or superseded by a later request of the same user: do not insert.
    Skip,
    /// Redis holds nothing for the event (flushed or expired): insert, MySQL's unique key decides.
    Unknown,
}

/// What Redis holds for one event, for the drift report.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    pub has_meta: bool,
    /// user id → (coupon/request id, confirmed by the worker)
    pub holders: HashMap<i64, (String, bool)>,
}

/// Key names for one platform (prefix).
#[derive(Debug, Clone)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    pub fn new(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
        }
    }
    pub fn meta(&self, event: i64) -> String {
        format!("{}coupon:{{ev:{event}}}:meta", self.prefix)
    }
    pub fn holders(&self, event: i64) -> String {
        format!("{}coupon:{{ev:{event}}}:holders", self.prefix)
    }
}

/// Cheap to clone: one multiplexed connection that reconnects by itself.
#[derive(Clone)]
pub struct CouponStore {
    conn: ConnectionManager,
    keys: Keys,
    retention_ms: i64,
    issue: std::sync::Arc<redis::Script>,
    give_back: std::sync::Arc<redis::Script>,
    confirm: std::sync::Arc<redis::Script>,
}

impl CouponStore {
    /// Connects (failing fast when Redis does not answer) and loads nothing else.
    pub async fn connect(args: &RedisArgs, retention: Duration) -> Result<Self, StoreError> {
        let url = args.redis_url.expose_secret();
        let timeout = args.redis_timeout.unwrap_or(REDIS_TIMEOUT);
        let target = redact_url(url);
        let client = redis::Client::open(url).map_err(|source| StoreError::Connect {
            target: target.clone(),
            source,
        })?;
        // Requests wait for one of `IN_FLIGHT` permits before their timeout starts, so a burst
        // queues in front of Redis instead of timing out inside the connection's pipeline.
        let config = ConnectionManagerConfig::new()
            .set_concurrency_limit(IN_FLIGHT)
            .set_pipeline_buffer_size(IN_FLIGHT)
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_millis(500));
        let conn = ConnectionManager::new_with_config(client, config)
            .await
            .map_err(|source| StoreError::Connect { target, source })?;
        Ok(Self::new(
            conn,
            Keys::new(args.key_prefix.clone()),
            retention,
        ))
    }

    pub fn new(conn: ConnectionManager, keys: Keys, retention: Duration) -> Self {
        Self {
            conn,
            keys,
            retention_ms: retention.as_millis() as i64,
            issue: std::sync::Arc::new(redis::Script::new(ISSUE)),
            give_back: std::sync::Arc::new(redis::Script::new(GIVE_BACK)),
            confirm: std::sync::Arc::new(redis::Script::new(CONFIRM)),
        }
    }

    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// Writes an event's metadata (a new event, or a reload) with its expiry, atomically.
    pub async fn put_window(&self, event: i64, w: &EventWindow) -> Result<(), StoreError> {
        let meta = self.keys.meta(event);
        let mut conn = self.conn.clone();
        redis::pipe()
            .atomic()
            .hset_multiple(
                &meta,
                &[
                    ("limit", w.limit),
                    ("start", w.starts_at.timestamp_millis()),
                    ("end", w.ends_at.timestamp_millis()),
                ],
            )
            .ignore()
            .pexpire_at(&meta, w.ends_at.timestamp_millis() + self.retention_ms)
            .ignore()
            .query_async::<()>(&mut conn)
            .await
            .map_err(|source| StoreError::Command {
                op: "write the event metadata",
                source,
            })
    }

    /// Runs the issue decision. With `reload`, missing metadata is first restored from it.
    pub async fn decide(
        &self,
        event: i64,
        user: i64,
        request: &Uuid,
        reload: Option<&Reload>,
    ) -> Result<Decision, StoreError> {
        let mut inv = self.issue.prepare_invoke();
        inv.key(self.keys.meta(event))
            .key(self.keys.holders(event))
            .arg(user)
            .arg(request.to_string())
            .arg(self.retention_ms);
        if let Some(r) = reload {
            inv.arg(r.window.limit)
                .arg(r.window.starts_at.timestamp_millis())
                .arg(r.window.ends_at.timestamp_millis())
                .arg(r.holders.len());
            for (u, c) in r.holders.iter().chain(&r.pending) {
                inv.arg(*u).arg(c);
            }
        }
        let mut conn = self.conn.clone();
        let answer: Vec<i64> =
            inv.invoke_async(&mut conn)
                .await
                .map_err(|source| StoreError::Command {
                    op: "run the issue script",
                    source,
                })?;
        Ok(match answer.as_slice() {
            [0, n] => Decision::Issued { issued: *n },
            [1, _] => Decision::AlreadyIssued,
            [2, _] => Decision::NotStarted,
            [3, _] => Decision::Ended,
            [4, _] => Decision::SoldOut,
            [-1, _] => Decision::Missing,
            _ => {
                return Err(StoreError::Answer {
                    op: "run the issue script",
                    answer,
                });
            }
        })
    }

    /// Gives the slot of a request whose Kafka write failed back, in one script.
    pub async fn give_back(
        &self,
        event: i64,
        user: i64,
        request: &Uuid,
    ) -> Result<GiveBack, StoreError> {
        let mut conn = self.conn.clone();
        let answer: i64 = self
            .give_back
            .key(self.keys.holders(event))
            .arg(user)
            .arg(request.to_string())
            .invoke_async(&mut conn)
            .await
            .map_err(|source| StoreError::Command {
                op: "give a slot back",
                source,
            })?;
        Ok(match answer {
            1 => GiveBack::Returned,
            2 => GiveBack::Confirmed,
            _ => GiveBack::NotHeld,
        })
    }

    /// Claims requests of one event for insertion; one answer per (user, request) pair.
    pub async fn claim(
        &self,
        event: i64,
        requests: &[(i64, String)],
    ) -> Result<Vec<Claim>, StoreError> {
        if requests.is_empty() {
            return Ok(Vec::new());
        }
        let mut inv = self.confirm.prepare_invoke();
        inv.key(self.keys.meta(event)).key(self.keys.holders(event));
        for (u, r) in requests {
            inv.arg(*u).arg(r);
        }
        let mut conn = self.conn.clone();
        let answer: Vec<i64> =
            inv.invoke_async(&mut conn)
                .await
                .map_err(|source| StoreError::Command {
                    op: "claim requests",
                    source,
                })?;
        if answer.len() != requests.len() {
            return Err(StoreError::Answer {
                op: "claim requests",
                answer,
            });
        }
        Ok(answer
            .into_iter()
            .map(|c| match c {
                1 => Claim::Insert,
                2 => Claim::Unknown,
                _ => Claim::Skip,
            })
            .collect())
    }

    /// Reads what Redis holds for an event (the drift report), with HSCAN in pages of
    /// [`SCAN_PAGE`]: never one command that blocks Redis for the size of the event.
    pub async fn snapshot(&self, event: i64) -> Result<Snapshot, StoreError> {
        let mut conn = self.conn.clone();
        let has_meta: bool = redis::cmd("EXISTS")
            .arg(self.keys.meta(event))
            .query_async(&mut conn)
            .await
            .map_err(|source| StoreError::Command {
                op: "read an event's metadata",
                source,
            })?;
        let key = self.keys.holders(event);
        let mut holders = HashMap::new();
        let mut cursor: u64 = 0;
        loop {
            let (next, page): (u64, Vec<(String, String)>) = redis::cmd("HSCAN")
                .arg(&key)
                .arg(cursor)
                .arg("COUNT")
                .arg(SCAN_PAGE)
                .query_async(&mut conn)
                .await
                .map_err(|source| StoreError::Command {
                    op: "read an event's holders",
                    source,
                })?;
            for (u, v) in page {
                let Ok(user) = u.parse::<i64>() else { continue };
                match v.strip_prefix("c:") {
                    Some(id) => holders.insert(user, (id.to_owned(), true)),
                    None => holders.insert(user, (v, false)),
                };
            }
            if next == 0 {
                break;
            }
            cursor = next;
        }
        Ok(Snapshot { has_meta, holders })
    }

    /// The size of an event's holders hash (HLEN): the count the issue script checks.
    pub async fn count(&self, event: i64) -> Result<i64, StoreError> {
        let mut conn = self.conn.clone();
        redis::cmd("HLEN")
            .arg(self.keys.holders(event))
            .query_async(&mut conn)
            .await
            .map_err(|source| StoreError::Command {
                op: "count an event's holders",
                source,
            })
    }

    /// A readiness check.
    pub async fn ping(&self) -> Result<(), String> {
        let mut conn = self.conn.clone();
        redis::cmd("PING")
            .query_async::<String>(&mut conn)
            .await
            .map(|_| ())
            .map_err(|e| format!("redis: {e}"))
    }
}
