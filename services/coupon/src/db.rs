//! MySQL: migrations, coupon events and coupons.

use chrono::{DateTime, Utc};
use sqlx::MySqlPool;
use sqlx::migrate::Migrator;

use crate::model::{Coupon, CouponEvent, NewCouponEvent};

/// The schema, embedded from `services/coupon/migrations`. The API runs it at start-up.
static MIGRATIONS: Migrator = sqlx::migrate!("./migrations");

/// Where the coupon service records its applied migrations. Not sqlx's default table, which the
/// content service uses: both can share one MySQL database (as a `CampusPlatform` with a single
/// MySQL URL has them do) without each taking the other's migrations for missing ones of its own.
pub const MIGRATIONS_TABLE: &str = "_coupon_migrations";

/// The coupon schema's migrator, recording into [`MIGRATIONS_TABLE`].
pub fn migrator() -> Migrator {
    let mut m = Migrator::with_migrations(MIGRATIONS.iter().cloned().collect());
    m.dangerous_set_table_name(MIGRATIONS_TABLE);
    m
}

#[derive(Debug, thiserror::Error)]
#[error("failed to migrate the coupon schema")]
pub struct MigrateError(#[from] sqlx::migrate::MigrateError);

/// Brings the schema up to date (safe to run from several replicas: sqlx takes a lock).
pub async fn migrate(pool: &MySqlPool) -> Result<(), MigrateError> {
    migrator().run(pool).await?;
    Ok(())
}

const EVENT_COLUMNS: &str =
    "id, name, issue_limit, starts_at, ends_at, coupon_valid_seconds, created_at";
const COUPON_COLUMNS: &str = "id, user_id, coupon_event_id, issued_at, expires_at, used_at";

pub async fn create_event(
    pool: &MySqlPool,
    e: &NewCouponEvent,
) -> Result<CouponEvent, sqlx::Error> {
    let done = sqlx::query(
        "INSERT INTO coupon_events (name, issue_limit, starts_at, ends_at, coupon_valid_seconds) \
         VALUES (?, ?, ?, ?, ?)",
    )
    .bind(&e.name)
    .bind(e.limit)
    .bind(e.starts_at)
    .bind(e.ends_at)
    .bind(e.coupon_valid_seconds)
    .execute(pool)
    .await?;
    let id = done.last_insert_id() as i64;
    find_event(pool, id).await?.ok_or(sqlx::Error::RowNotFound)
}

pub async fn find_event(pool: &MySqlPool, id: i64) -> Result<Option<CouponEvent>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {EVENT_COLUMNS} FROM coupon_events WHERE id = ?"
    )))
    .bind(id)
    .fetch_optional(pool)
    .await
}

pub async fn list_events(pool: &MySqlPool) -> Result<Vec<CouponEvent>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {EVENT_COLUMNS} FROM coupon_events ORDER BY id"
    )))
    .fetch_all(pool)
    .await
}

/// (user id, coupon id) of every coupon of an event.
pub async fn holders(pool: &MySqlPool, event: i64) -> Result<Vec<(i64, String)>, sqlx::Error> {
    sqlx::query_as("SELECT user_id, id FROM coupons WHERE coupon_event_id = ?")
        .bind(event)
        .fetch_all(pool)
        .await
}

/// A coupon the worker stores.
#[derive(Debug, Clone)]
pub struct NewCoupon {
    pub id: String,
    pub user_id: i64,
    pub coupon_event_id: i64,
    pub issued_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// Inserts coupons in one statement; a coupon whose (user, event) or id exists is left as it is
/// (a duplicate is success). Returns MySQL's affected-row count.
pub async fn insert_coupons(pool: &MySqlPool, coupons: &[NewCoupon]) -> Result<u64, sqlx::Error> {
    if coupons.is_empty() {
        return Ok(0);
    }
    let mut qb = sqlx::QueryBuilder::<sqlx::MySql>::new(
        "INSERT INTO coupons (id, user_id, coupon_event_id, issued_at, expires_at) ",
    );
    qb.push_values(coupons, |mut row, c| {
        row.push_bind(c.id.clone())
            .push_bind(c.user_id)
            .push_bind(c.coupon_event_id)
            .push_bind(c.issued_at)
            .push_bind(c.expires_at);
    });
    qb.push(" ON DUPLICATE KEY UPDATE id = id");
    let done = qb.build().execute(pool).await?;
    Ok(done.rows_affected())
}

/// The user's unused, unexpired coupons, soonest expiry first.
pub async fn usable_coupons(
    pool: &MySqlPool,
    user: i64,
    now: DateTime<Utc>,
) -> Result<Vec<Coupon>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COUPON_COLUMNS} FROM coupons \
         WHERE user_id = ? AND used_at IS NULL AND expires_at > ? ORDER BY expires_at, id"
    )))
    .bind(user)
    .bind(now)
    .fetch_all(pool)
    .await
}

pub async fn find_coupon(pool: &MySqlPool, id: &str) -> Result<Option<Coupon>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COUPON_COLUMNS} FROM coupons WHERE id = ?"
    )))
    .bind(id)
    .fetch_optional(pool)
    .await
}

/// What using a coupon came to.
#[derive(Debug)]
pub enum UseOutcome {
    Used(Coupon),
    NotFound,
    AlreadyUsed(Coupon),
    Expired(Coupon),
}

/// Marks a coupon used, once: the update only matches an unused, unexpired coupon.
pub async fn use_coupon(
    pool: &MySqlPool,
    id: &str,
    now: DateTime<Utc>,
) -> Result<UseOutcome, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE coupons SET used_at = ? WHERE id = ? AND used_at IS NULL AND expires_at > ?",
    )
    .bind(now)
    .bind(id)
    .bind(now)
    .execute(pool)
    .await?;
    let coupon = find_coupon(pool, id).await?;
    Ok(match coupon {
        None => UseOutcome::NotFound,
        Some(c) if done.rows_affected() == 1 => UseOutcome::Used(c),
        Some(c) if c.used_at.is_some() => UseOutcome::AlreadyUsed(c),
        Some(c) => UseOutcome::Expired(c),
    })
}

/// Coupon rows per event.
pub async fn count_coupons(pool: &MySqlPool, event: i64) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT COUNT(*) FROM coupons WHERE coupon_event_id = ?")
        .bind(event)
        .fetch_one(pool)
        .await
}
