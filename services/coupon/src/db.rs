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
    // Times are bound as DATETIME (naive UTC), the columns' type: sqlx binds a DateTime<Utc> as a
    // TIMESTAMP, whose range ends in January 2038, and MariaDB stores NULL for one past it.
    .bind(e.starts_at.naive_utc())
    .bind(e.ends_at.naive_utc())
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

/// What storing one coupon came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    /// A new row; the event's `issued` counter went up by one.
    New,
    /// The user already holds a coupon of the event (a redelivery, a replay, a superseded request).
    Duplicate,
    /// The event is full in MySQL: not stored.
    OverLimit,
}

/// Why [`store_coupons`] stored nothing.
#[derive(Debug, thiserror::Error)]
pub enum StoreCouponsError {
    #[error("coupon event {0} does not exist")]
    UnknownEvent(i64),
    #[error("failed to store coupons in MySQL")]
    Database(#[from] sqlx::Error),
}

/// Stores coupons of one event in one transaction that enforces the limit: the event row is
/// locked, users who already hold a coupon of the event are duplicates (so are later requests of
/// the same user in `coupons`), and of the rest only as many as `issue_limit - issued` are
/// inserted, in order, and added to `issued`. One answer per coupon, in order.
pub async fn store_coupons(
    pool: &MySqlPool,
    event: i64,
    coupons: &[NewCoupon],
) -> Result<Vec<Stored>, StoreCouponsError> {
    if coupons.is_empty() {
        return Ok(Vec::new());
    }
    let mut tx = pool.begin().await?;
    let (issued, limit): (i64, i64) = sqlx::query_as(
        "SELECT CAST(issued AS SIGNED), CAST(issue_limit AS SIGNED) FROM coupon_events \
         WHERE id = ? FOR UPDATE",
    )
    .bind(event)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(StoreCouponsError::UnknownEvent(event))?;
    let mut qb = sqlx::QueryBuilder::<sqlx::MySql>::new(
        "SELECT user_id FROM coupons WHERE coupon_event_id = ",
    );
    qb.push_bind(event).push(" AND user_id IN (");
    let mut sep = qb.separated(", ");
    for c in coupons {
        sep.push_bind(c.user_id);
    }
    qb.push(")");
    let mut holders: std::collections::HashSet<i64> = qb
        .build_query_scalar::<i64>()
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .collect();
    let mut room = (limit - issued).max(0);
    let mut out = Vec::with_capacity(coupons.len());
    let mut rows = Vec::new();
    for c in coupons {
        if holders.contains(&c.user_id) {
            out.push(Stored::Duplicate);
        } else if room == 0 {
            out.push(Stored::OverLimit);
        } else {
            room -= 1;
            holders.insert(c.user_id);
            rows.push(c);
            out.push(Stored::New);
        }
    }
    if !rows.is_empty() {
        let mut qb = sqlx::QueryBuilder::<sqlx::MySql>::new(
            "INSERT IGNORE INTO coupons (id, user_id, coupon_event_id, issued_at, expires_at) ",
        );
        qb.push_values(&rows, |mut row, c| {
            row.push_bind(c.id.clone())
                .push_bind(c.user_id)
                .push_bind(c.coupon_event_id)
                .push_bind(c.issued_at.naive_utc())
                .push_bind(c.expires_at.naive_utc());
        });
        // An id that exists already (the same request under another user: never written by the
        // API) is left alone; the counter follows the rows really inserted.
        let inserted = qb.build().execute(&mut *tx).await?.rows_affected();
        sqlx::query("UPDATE coupon_events SET issued = issued + ? WHERE id = ?")
            .bind(inserted)
            .bind(event)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(out)
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
    .bind(now.naive_utc())
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
    .bind(now.naive_utc())
    .bind(id)
    .bind(now.naive_utc())
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

/// The event's `issued` counter (what MySQL counts against the limit).
pub async fn issued(pool: &MySqlPool, event: i64) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT CAST(issued AS SIGNED) FROM coupon_events WHERE id = ?")
        .bind(event)
        .fetch_one(pool)
        .await
}

/// Coupon rows per event.
pub async fn count_coupons(pool: &MySqlPool, event: i64) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT COUNT(*) FROM coupons WHERE coupon_event_id = ?")
        .bind(event)
        .fetch_one(pool)
        .await
}
