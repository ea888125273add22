//! The transactional outbox: a business write and the events it causes commit together in MySQL;
//! a relay publishes the committed events to Kafka and marks them sent.
//!
//! Guarantees:
//! - **Nothing lost**: a row is marked sent only after the broker acknowledged it.
//! - **Nothing invented**: rows exist only for committed transactions.
//! - **Order per key**: rows are published in id order. Writers enqueue after the business write
//!   in the same transaction, so the row lock on the entity orders its events; the idempotent
//!   producer keeps that order per partition.
//! - **One active relay**: relays take a MySQL named lock (`GET_LOCK`) on a dedicated connection
//!   and run every read and mark on it; other replicas wait as hot standbys. If the holder dies its
//!   connection closes, the lock frees, and a standby takes over.
//!   A holder that hangs without closing its connection (a frozen process, a lost host) holds the
//!   lock only until its session's `wait_timeout` ([`RelayOptions::lock_session_timeout`], set on
//!   the lock connection; the server default is 8 hours): the server then drops the session and
//!   the lock with it. A live holder keeps its session alive while a publish round waits on the
//!   broker (a ping every third of that timeout).
//! - **Duplicates only after a crash**: a relay killed between publish and mark re-publishes that
//!   batch when it (or another) resumes; consumers are idempotent.
//! - **A row that can never be published does not block the rest**: a row the producer refuses for
//!   what it is (larger than the broker accepts, an invalid topic name) is moved to
//!   `outbox_parked` with the error ([`PARKED_DDL`]), counted in `outbox_parked` (alert on it), and
//!   the rows behind it go on. Outages (broker down, timeouts, unknown topic) keep rows pending.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::join_all;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use sqlx::mysql::{MySqlConnection, MySqlPool};
use sqlx::{Acquire, Connection, Executor, MySql, Row};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::envelope::Envelope;
use crate::kafka::Producer;
use crate::retry::Backoff;

/// The outbox table. Created by [`install`]; services may also create it in their migrations.
pub const DDL: &str = r"
CREATE TABLE IF NOT EXISTS outbox (
  id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  topic VARCHAR(249) NOT NULL,
  message_key VARCHAR(255) NOT NULL,
  payload MEDIUMBLOB NOT NULL,
  headers JSON NULL,
  created_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  sent_at DATETIME(6) NULL,
  PRIMARY KEY (id),
  KEY outbox_pending (sent_at, id)
) ENGINE=InnoDB";

/// Rows that can never be published, moved out of the way with the producer's error. Created by
/// the relay when it takes the lock (and by [`install`]). Re-drive one after fixing its cause with
/// `INSERT INTO outbox (topic, message_key, payload, headers) SELECT topic, message_key, payload,
/// headers FROM outbox_parked WHERE id = …`.
pub const PARKED_DDL: &str = r"
CREATE TABLE IF NOT EXISTS outbox_parked (
  id BIGINT UNSIGNED NOT NULL,
  topic VARCHAR(249) NOT NULL,
  message_key VARCHAR(255) NOT NULL,
  payload MEDIUMBLOB NOT NULL,
  headers JSON NULL,
  created_at DATETIME(6) NOT NULL,
  parked_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  error TEXT NOT NULL,
  PRIMARY KEY (id)
) ENGINE=InnoDB";

/// Creates the outbox tables if they do not exist.
pub async fn install(pool: &MySqlPool) -> Result<(), sqlx::Error> {
    pool.execute(DDL).await?;
    pool.execute(PARKED_DDL).await.map(|_| ())
}

/// One event to publish.
#[derive(Debug, Clone)]
pub struct OutboxMessage {
    pub topic: String,
    pub key: String,
    pub payload: Vec<u8>,
    pub headers: Vec<(String, String)>,
}

impl OutboxMessage {
    /// An envelope serialized as JSON, keyed by the envelope's key.
    pub fn from_envelope<P: serde::Serialize>(
        topic: impl Into<String>,
        envelope: &Envelope<P>,
    ) -> Self {
        Self {
            topic: topic.into(),
            key: envelope.key.clone(),
            payload: serde_json::to_vec(envelope).expect("envelope serializes"),
            headers: Vec::new(),
        }
    }

    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
}

/// Adds a message inside the caller's transaction (call it after the business write).
pub async fn enqueue<'c, E>(executor: E, msg: &OutboxMessage) -> Result<u64, sqlx::Error>
where
    E: Executor<'c, Database = MySql>,
{
    let headers = (!msg.headers.is_empty()).then(|| {
        let map: serde_json::Map<String, serde_json::Value> = msg
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
            .collect();
        serde_json::Value::Object(map).to_string()
    });
    let done = sqlx::query(
        "INSERT INTO outbox (topic, message_key, payload, headers) VALUES (?, ?, ?, ?)",
    )
    .bind(&msg.topic)
    .bind(&msg.key)
    .bind(&msg.payload)
    .bind(headers)
    .execute(executor)
    .await?;
    Ok(done.last_insert_id())
}

/// Relay settings.
#[derive(Debug, Clone)]
pub struct RelayOptions {
    /// Rows published per round.
    pub batch_size: u32,
    /// How often to look for new rows when nothing woke the relay.
    pub poll_interval: Duration,
    /// Sent rows older than this are deleted.
    pub retention: Duration,
    /// The MySQL named lock that elects the one active relay.
    pub lock_name: String,
    /// `wait_timeout` of the lock connection's session: how long a holder that stopped talking
    /// (hung, host lost) keeps the lock before the server drops its session (at least 2 s).
    pub lock_session_timeout: Duration,
}

impl Default for RelayOptions {
    fn default() -> Self {
        Self {
            batch_size: 500,
            poll_interval: Duration::from_millis(100),
            retention: Duration::from_secs(3600),
            lock_name: "campus-outbox-relay".to_owned(),
            lock_session_timeout: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("failed to read or mark outbox rows")]
    Database(#[from] sqlx::Error),
}

/// How often the active relay counts the rows still pending (`outbox_pending`).
const BACKLOG_INTERVAL: Duration = Duration::from_secs(5);

/// Relay metrics.
#[derive(Clone, Default)]
pub struct RelayMetrics {
    published: Counter,
    failures: Counter,
    parked: Counter,
    leader: Gauge,
    pending: Gauge,
    oldest_pending_age: Gauge<f64, std::sync::atomic::AtomicU64>,
}

impl RelayMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self::default();
        registry.register(
            "outbox_published",
            "Outbox rows published and marked sent",
            m.published.clone(),
        );
        registry.register(
            "outbox_publish_failures",
            "Outbox rows whose publish failed (retried)",
            m.failures.clone(),
        );
        registry.register(
            "outbox_parked",
            "Outbox rows that can never be published, moved to outbox_parked (alert when it grows)",
            m.parked.clone(),
        );
        registry.register(
            "outbox_relay_leader",
            "1 while this process holds the relay lock",
            m.leader.clone(),
        );
        registry.register(
            "outbox_pending",
            "Outbox rows not published yet, counted every 5 s by the active relay (0 on standbys)",
            m.pending.clone(),
        );
        registry.register(
            "outbox_oldest_pending_age_seconds",
            "Age of the oldest outbox row not published yet (active relay; 0 when none)",
            m.oldest_pending_age.clone(),
        );
        m
    }

    /// The last backlog count (tests).
    pub fn pending(&self) -> i64 {
        self.pending.get()
    }
}

/// A pending row.
#[derive(Debug, Clone)]
pub struct PendingRow {
    pub id: u64,
    pub topic: String,
    pub key: String,
    pub payload: Vec<u8>,
    pub headers: Vec<(String, String)>,
}

/// The relay's pause after an interrupted leadership: 100 ms, doubling, at most 5 s.
pub const RELAY_BACKOFF: Backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));

/// Publishes committed outbox rows. Wake it after a commit with [`Relay::notifier`] for low latency;
/// otherwise it polls.
pub struct Relay {
    pool: MySqlPool,
    producer: Producer,
    opts: RelayOptions,
    wake: Arc<Notify>,
    metrics: RelayMetrics,
}

impl Relay {
    pub fn new(
        pool: MySqlPool,
        producer: Producer,
        opts: RelayOptions,
        metrics: RelayMetrics,
    ) -> Self {
        Self {
            pool,
            producer,
            opts,
            wake: Arc::new(Notify::new()),
            metrics,
        }
    }

    /// Call `notify_one()` on this after committing outbox rows.
    pub fn notifier(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    /// Runs until `shutdown`: waits for the lock, then publishes. Database or broker outages are
    /// retried with [`RELAY_BACKOFF`] (from its first pause again after a leadership that ended
    /// well); nothing here ends the process.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut failures = 0u32;
        while !shutdown.is_cancelled() {
            match self.lead(&shutdown).await {
                Ok(()) => failures = 0,
                Err(e) => {
                    failures = failures.saturating_add(1);
                    let delay = RELAY_BACKOFF.delay(failures);
                    tracing::warn!(error = %format!("{e:#}"), retry_in_ms = delay.as_millis() as u64, "outbox relay interrupted");
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(delay) => {}
                    }
                }
            }
        }
        self.metrics.leader.set(0);
    }

    /// Takes the lock on a dedicated connection and relays while holding it.
    async fn lead(&self, shutdown: &CancellationToken) -> Result<(), RelayError> {
        let mut conn = self.pool.acquire().await?;
        let conn: &mut MySqlConnection = conn.acquire().await?;
        // A session that says nothing for this long is dropped by the server, and the lock with it.
        let wait = self.opts.lock_session_timeout.as_secs().max(2);
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SET SESSION wait_timeout = {wait}"
        )))
        .execute(&mut *conn)
        .await?;
        sqlx::query(PARKED_DDL).execute(&mut *conn).await?;
        loop {
            let got: Option<i64> = sqlx::query_scalar("SELECT GET_LOCK(?, 1)")
                .bind(&self.opts.lock_name)
                .fetch_one(&mut *conn)
                .await?;
            if got == Some(1) {
                break;
            }
            if shutdown.is_cancelled() {
                return Ok(());
            }
        }
        self.metrics.leader.set(1);
        tracing::info!(lock = %self.opts.lock_name, "outbox relay is active");
        let result = self.relay_loop(conn, shutdown).await;
        self.metrics.leader.set(0);
        self.metrics.pending.set(0);
        self.metrics.oldest_pending_age.set(0.0);
        let _ = sqlx::query("SELECT RELEASE_LOCK(?)")
            .bind(&self.opts.lock_name)
            .execute(&mut *conn)
            .await;
        // The pool must not hand this session (short wait_timeout) to anyone else.
        let _ = sqlx::query("SET SESSION wait_timeout = DEFAULT")
            .execute(&mut *conn)
            .await;
        result
    }

    async fn relay_loop(
        &self,
        conn: &mut MySqlConnection,
        shutdown: &CancellationToken,
    ) -> Result<(), RelayError> {
        let mut last_cleanup = Instant::now();
        let mut last_backlog: Option<Instant> = None;
        while !shutdown.is_cancelled() {
            if last_backlog.is_none_or(|t| t.elapsed() >= BACKLOG_INTERVAL) {
                self.count_backlog(conn).await?;
                last_backlog = Some(Instant::now());
            }
            let published = self.relay_once(conn).await?;
            if last_cleanup.elapsed() > Duration::from_secs(60) {
                self.cleanup(conn).await?;
                last_cleanup = Instant::now();
            }
            if published < self.opts.batch_size as usize {
                tokio::select! {
                    _ = shutdown.cancelled() => {}
                    _ = self.wake.notified() => {}
                    _ = tokio::time::sleep(self.opts.poll_interval) => {}
                }
            }
        }
        Ok(())
    }

    /// One round on a connection the caller owns: fetch, publish, mark. Returns the rows marked.
    pub async fn relay_once(&self, conn: &mut MySqlConnection) -> Result<usize, RelayError> {
        let rows = fetch_pending(conn, self.opts.batch_size).await?;
        if rows.is_empty() {
            return Ok(0);
        }
        // The lock connection is idle while the broker acknowledges: keep its session alive.
        let keepalive = (self.opts.lock_session_timeout / 3).max(Duration::from_millis(500));
        let publish = self.publish_parking(&rows);
        tokio::pin!(publish);
        let (sent, parked) = loop {
            tokio::select! {
                done = &mut publish => break done,
                _ = tokio::time::sleep(keepalive) => {
                    conn.ping().await?;
                }
            }
        };
        mark_sent(conn, &sent).await?;
        for (id, error) in &parked {
            park(conn, *id, error).await?;
            self.metrics.parked.inc();
            tracing::error!(id, error = %error, "outbox row can never be published; moved to outbox_parked");
        }
        Ok(sent.len() + parked.len())
    }

    /// Publishes rows in order (all queued at once, acknowledged together) and returns the ids of
    /// the longest acknowledged prefix: a failed row and everything after it stay pending, so a
    /// key's order is never broken by a gap.
    pub async fn publish(&self, rows: &[PendingRow]) -> Vec<u64> {
        self.publish_parking(rows).await.0
    }

    /// Like [`Relay::publish`], except that a row the producer refuses for good (see
    /// [`is_unpublishable`]) does not end the prefix: it is returned with its error, to park.
    async fn publish_parking(&self, rows: &[PendingRow]) -> (Vec<u64>, Vec<(u64, String)>) {
        let sends = rows.iter().map(|r| {
            let headers: Vec<(&str, &[u8])> = r
                .headers
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_bytes()))
                .collect();
            async move {
                self.producer
                    .send(&r.topic, r.key.as_bytes(), &r.payload, &headers)
                    .await
            }
        });
        let results = join_all(sends).await;
        let mut sent = Vec::with_capacity(rows.len());
        let mut parked = Vec::new();
        for (row, result) in rows.iter().zip(results) {
            match result {
                Ok(_) => sent.push(row.id),
                Err(e) if is_unpublishable(&e) => {
                    parked.push((row.id, crate::error::chain(&e)));
                }
                Err(e) => {
                    self.metrics.failures.inc();
                    tracing::warn!(id = row.id, topic = %row.topic, error = %format!("{e:#}"), "outbox publish failed; will retry");
                    break;
                }
            }
        }
        self.metrics.published.inc_by(sent.len() as u64);
        (sent, parked)
    }

    /// Counts the pending rows and the age of the oldest (both on the `outbox_pending` index).
    async fn count_backlog(&self, conn: &mut MySqlConnection) -> Result<(), RelayError> {
        let pending: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE sent_at IS NULL")
            .fetch_one(&mut *conn)
            .await?;
        let age_us: Option<i64> = sqlx::query_scalar(
            "SELECT TIMESTAMPDIFF(MICROSECOND, created_at, NOW(6)) FROM outbox WHERE sent_at IS NULL ORDER BY sent_at, id LIMIT 1",
        )
        .fetch_optional(&mut *conn)
        .await?;
        self.metrics.pending.set(pending);
        self.metrics
            .oldest_pending_age
            .set(age_us.unwrap_or(0).max(0) as f64 / 1e6);
        Ok(())
    }

    async fn cleanup(&self, conn: &mut MySqlConnection) -> Result<(), RelayError> {
        let deleted = sqlx::query("DELETE FROM outbox WHERE sent_at IS NOT NULL AND sent_at < NOW(6) - INTERVAL ? SECOND LIMIT 10000")
            .bind(self.opts.retention.as_secs())
            .execute(&mut *conn)
            .await?
            .rows_affected();
        if deleted > 0 {
            tracing::debug!(deleted, "outbox cleanup");
        }
        Ok(())
    }
}

/// The oldest unsent rows, in id order.
pub async fn fetch_pending(
    conn: &mut MySqlConnection,
    limit: u32,
) -> Result<Vec<PendingRow>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT id, topic, message_key, payload, headers FROM outbox WHERE sent_at IS NULL ORDER BY id LIMIT ?",
    )
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    rows.into_iter()
        .map(|r| {
            let headers: Option<String> = r.try_get("headers")?;
            let headers = headers
                .and_then(|h| {
                    serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(&h).ok()
                })
                .map(|m| {
                    m.into_iter()
                        .map(|(k, v)| {
                            (
                                k,
                                v.as_str()
                                    .map(str::to_owned)
                                    .unwrap_or_else(|| v.to_string()),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            Ok(PendingRow {
                id: r.try_get("id")?,
                topic: r.try_get("topic")?,
                key: r.try_get("message_key")?,
                payload: r.try_get("payload")?,
                headers,
            })
        })
        .collect()
}

/// Whether the producer refused the record for what it is, so no retry can publish it.
pub fn is_unpublishable(e: &crate::kafka::ProduceError) -> bool {
    use rdkafka::error::{KafkaError, RDKafkaErrorCode as C};
    let crate::kafka::ProduceError::Delivery { source, .. } = e else {
        return false;
    };
    matches!(
        source,
        KafkaError::MessageProduction(
            C::MessageSizeTooLarge
                | C::InvalidMessageSize
                | C::InvalidMessage
                | C::InvalidRecord
                | C::MessageBatchTooLarge
                | C::InvalidTopic
        )
    )
}

/// Moves a row to `outbox_parked` with its error, in one transaction.
pub async fn park(conn: &mut MySqlConnection, id: u64, error: &str) -> Result<(), sqlx::Error> {
    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
    sqlx::query(
        "INSERT IGNORE INTO outbox_parked (id, topic, message_key, payload, headers, created_at, error) \
         SELECT id, topic, message_key, payload, headers, created_at, ? FROM outbox WHERE id = ?",
    )
    .bind(error)
    .bind(id)
    .execute(&mut *tx)
    .await?;
    sqlx::query("DELETE FROM outbox WHERE id = ?")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await
}

/// Marks rows sent.
pub async fn mark_sent(conn: &mut MySqlConnection, ids: &[u64]) -> Result<(), sqlx::Error> {
    if ids.is_empty() {
        return Ok(());
    }
    let mut q =
        sqlx::QueryBuilder::<MySql>::new("UPDATE outbox SET sent_at = NOW(6) WHERE id IN (");
    let mut sep = q.separated(", ");
    for id in ids {
        sep.push_bind(*id);
    }
    q.push(")");
    q.build().execute(&mut *conn).await?;
    Ok(())
}

/// Keeps the relay's connection alive check cheap: used by readiness.
pub async fn pending_count(pool: &MySqlPool) -> Result<i64, sqlx::Error> {
    let mut conn = pool.acquire().await?;
    conn.ping().await?;
    sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE sent_at IS NULL")
        .fetch_one(&mut *conn)
        .await
}
