//! The Redis read model of a post (`{prefix}post:{id}`), written by the cache worker from
//! `post.inspected` (what the inspector approved, with its tags; a BAD update arrives as `deleted`)
//! and by the API on a read miss.
//!
//! Each key is a hash `{v: version, d: post JSON}` (or `{v, x: 1}` for a deleted post, a tombstone
//! that keeps older events from bringing it back) with a TTL. Every write goes through one Lua
//! script that compares versions, so an older version never replaces a newer one, whoever writes;
//! at the same version a tombstone wins, so a BAD verdict withdraws a post the API had already
//! filled from MySQL at that version.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use campus_common::config::{ExposeSecret, RedisArgs};
use campus_common::envelope::EventType;
use campus_common::kafka::{HandleError, Handler, Record};
use campus_common::retry::{self, ride_out};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio_util::sync::CancellationToken;

use crate::events::{self, PostView};

/// Compare-and-set: writes only when the stored version is missing or older, or (a tombstone) the
/// same.
/// KEYS[1] key; ARGV[1] version; ARGV[2] JSON or "" for a tombstone; ARGV[3] TTL in ms.
/// Returns 1 when written, 0 when the stored version was newer (or as new, for a post).
///
/// HSET comes first: Redis checks `maxmemory` on a script's first write that may grow memory and,
/// once a script has written anything, lets it go on past the limit (so it is never half done).
/// With HDEL first, a Redis at `maxmemory` with `noeviction` took every post anyway.
const PUT_IF_NEWER: &str = r"
local cur = redis.call('HGET', KEYS[1], 'v')
if cur and (tonumber(cur) > tonumber(ARGV[1]) or (tonumber(cur) == tonumber(ARGV[1]) and ARGV[2] ~= '')) then
  return 0
end
if ARGV[2] == '' then
  redis.call('HSET', KEYS[1], 'v', ARGV[1], 'x', '1')
  redis.call('HDEL', KEYS[1], 'd')
else
  redis.call('HSET', KEYS[1], 'v', ARGV[1], 'd', ARGV[2])
  redis.call('HDEL', KEYS[1], 'x')
end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
";

#[derive(Debug, thiserror::Error)]
#[error("failed to {action} in Redis")]
pub struct CacheError {
    action: &'static str,
    #[source]
    source: redis::RedisError,
}

impl CacheError {
    /// Whether Redis refuses this write for good: `WRONGTYPE` (the key holds something else) or
    /// `OOM` (`maxmemory` reached with a policy that does not evict). Such a record is
    /// dead-lettered (and can be replayed once the key or the memory is fixed); everything else
    /// (unreachable, loading, a failover) is an outage and waited out.
    pub fn is_permanent(&self) -> bool {
        matches!(self.source.code(), Some("WRONGTYPE" | "OOM"))
    }
}

/// What the cache holds for a post.
#[derive(Debug, Clone, PartialEq)]
pub enum Cached {
    /// The post's JSON ([`PostView`]), ready to answer.
    Live(String),
    /// The post was deleted (at this version).
    Deleted,
}

/// The post cache; cheap to clone.
#[derive(Clone)]
pub struct PostCache {
    conn: ConnectionManager,
    prefix: Arc<str>,
    ttl: Duration,
    script: Arc<redis::Script>,
}

impl PostCache {
    /// Connects to `redis` (its timeout, when given, bounds connecting and each command; otherwise
    /// the Redis client's own apply).
    pub async fn connect(redis: &RedisArgs, ttl: Duration) -> Result<Self, CacheError> {
        let client =
            redis::Client::open(redis.redis_url.expose_secret()).map_err(|source| CacheError {
                action: "parse the Redis URL",
                source,
            })?;
        let mut config = ConnectionManagerConfig::new();
        if let Some(t) = redis.redis_timeout {
            config = config
                .set_connection_timeout(Some(t))
                .set_response_timeout(Some(t));
        }
        let conn = ConnectionManager::new_with_config(client, config)
            .await
            .map_err(|source| CacheError {
                action: "connect",
                source,
            })?;
        Ok(Self::new(conn, &redis.key_prefix, ttl))
    }

    pub fn new(conn: ConnectionManager, prefix: &str, ttl: Duration) -> Self {
        Self {
            conn,
            prefix: prefix.into(),
            ttl,
            script: Arc::new(redis::Script::new(PUT_IF_NEWER)),
        }
    }

    pub fn key(&self, id: u64) -> String {
        format!("{}post:{id}", self.prefix)
    }

    /// Reads a post; `None` on a miss.
    pub async fn get(&self, id: u64) -> Result<Option<Cached>, CacheError> {
        let mut conn = self.conn.clone();
        let (data, deleted): (Option<String>, Option<String>) = redis::cmd("HMGET")
            .arg(self.key(id))
            .arg("d")
            .arg("x")
            .query_async(&mut conn)
            .await
            .map_err(|source| CacheError {
                action: "read a post",
                source,
            })?;
        Ok(match (data, deleted) {
            (_, Some(_)) => Some(Cached::Deleted),
            (Some(d), None) => Some(Cached::Live(d)),
            (None, None) => None,
        })
    }

    /// Stores `post` unless a version as new or newer is there. Returns whether it was written.
    pub async fn put(&self, post: &PostView) -> Result<bool, CacheError> {
        let json = serde_json::to_string(post).expect("post serializes");
        self.cas(post.id, post.version, &json).await
    }

    /// Stores a tombstone for a deleted (or withdrawn) post unless a newer version is there.
    pub async fn put_deleted(&self, id: u64, version: i64) -> Result<bool, CacheError> {
        self.cas(id, version, "").await
    }

    async fn cas(&self, id: u64, version: i64, data: &str) -> Result<bool, CacheError> {
        let mut conn = self.conn.clone();
        let written: i64 = self
            .script
            .key(self.key(id))
            .arg(version)
            .arg(data)
            .arg(self.ttl.as_millis().max(1) as u64)
            .invoke_async(&mut conn)
            .await
            .map_err(|source| CacheError {
                action: "write a post",
                source,
            })?;
        Ok(written == 1)
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

/// The `cache` consumer group: `post.inspected` → Redis. `created`/`updated` carry the approved post
/// with the inspector's tags; `deleted` is a delete or a BAD update (the post is withdrawn).
pub struct CacheHandler {
    cache: PostCache,
    shutdown: CancellationToken,
}

impl CacheHandler {
    /// `shutdown` ends the wait while Redis is down.
    pub fn new(cache: PostCache, shutdown: CancellationToken) -> Arc<Self> {
        Arc::new(Self { cache, shutdown })
    }
}

#[async_trait]
impl Handler for CacheHandler {
    async fn handle(&self, record: &Record) -> Result<(), HandleError> {
        let event = events::decode(record)?;
        let written = ride_out(
            &self.shutdown,
            "redis",
            retry::OUTAGE,
            |e: &CacheError| !e.is_permanent(),
            || async {
                match event.event_type {
                    EventType::Created | EventType::Updated => self.cache.put(&event.payload).await,
                    EventType::Deleted => {
                        self.cache
                            .put_deleted(event.payload.id, event.version)
                            .await
                    }
                }
            },
        )
        .await
        .map_err(|e| {
            if e.is_permanent() {
                HandleError::permanent(e)
            } else {
                HandleError::transient(e)
            }
        })?;
        if !written {
            tracing::debug!(
                post = event.payload.id,
                version = event.version,
                "older or same version; ignored"
            );
        }
        Ok(())
    }
}
