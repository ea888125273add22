//! MySQL connection pool with a clear start-up error, and which database errors are outages.

use secrecy::ExposeSecret;
use sqlx::mysql::{MySqlPool, MySqlPoolOptions};

use crate::config::{MysqlArgs, redact_url};

/// Failed to reach MySQL.
#[derive(Debug, thiserror::Error)]
#[error("failed to connect to MySQL at {target}")]
pub struct ConnectError {
    target: String,
    #[source]
    source: sqlx::Error,
}

/// Opens the pool and checks one connection, so a wrong address fails at start-up.
pub async fn connect(args: &MysqlArgs) -> Result<MySqlPool, ConnectError> {
    let url = args.url.expose_secret();
    MySqlPoolOptions::new()
        .max_connections(args.max_connections)
        .acquire_timeout(args.connect_timeout)
        .connect(url)
        .await
        .map_err(|source| ConnectError {
            target: redact_url(url),
            source,
        })
}

/// A readiness check for [`crate::ops::Readiness`].
pub async fn ping(pool: &MySqlPool) -> Result<(), String> {
    sqlx::query("SELECT 1")
        .execute(pool)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Whether a database error means the database is unavailable right now (the request may succeed
/// if tried again), not that the request is wrong.
pub fn is_outage(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(d) => d
            .try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>()
            .is_some_and(|m| OUTAGES.iter().any(|(n, _)| *n == m.number())),
        _ => false,
    }
}

/// MySQL/MariaDB errors that say the server cannot take the statement right now, not that the
/// statement is wrong: tried again shortly, it may succeed. sqlx has no error kind for these (its
/// kinds are constraint violations), hence the numbers.
pub const OUTAGES: &[(u16, &str)] = &[
    // Every connection slot is taken (`max_connections`).
    (1040, "ER_CON_COUNT_ERROR: too many connections"),
    // The server is shutting down (a restart, a failover).
    (1053, "ER_SERVER_SHUTDOWN: server shutdown in progress"),
    // Another transaction held the row lock longer than `innodb_lock_wait_timeout`.
    (1205, "ER_LOCK_WAIT_TIMEOUT: lock wait timeout exceeded"),
    // InnoDB chose this transaction as a deadlock victim and rolled it back.
    (1213, "ER_LOCK_DEADLOCK: deadlock found"),
    // `--read-only` (a replica, or a primary being demoted during a failover).
    (
        1290,
        "ER_OPTION_PREVENTS_STATEMENT: the server runs with --read-only",
    ),
    // The statement was killed or interrupted (e.g. by a shutdown).
    (
        1317,
        "ER_QUERY_INTERRUPTED: query execution was interrupted",
    ),
    // `read_only` set on this server (a replica before it is promoted).
    (1836, "ER_READ_ONLY_MODE: running in read-only mode"),
    // The connection was killed (MariaDB: a shutdown or KILL CONNECTION).
    (1927, "ER_CONNECTION_KILLED: connection was killed"),
];
