//! MySQL connection pool with a clear start-up error.

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
