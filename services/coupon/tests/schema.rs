//! The coupon and content schemas in one MySQL database, as a `CampusPlatform` with a single
//! MySQL URL gives them: each service's migrations must leave the other's alone, in either order.

use campus_testkit as testing;
use sqlx::migrate::Migrator;

/// The content service's real migrations, recorded in sqlx's default table.
static CONTENT: Migrator = sqlx::migrate!("../content/migrations");

async fn tables(pool: &sqlx::MySqlPool) -> Vec<String> {
    let mut names: Vec<String> = sqlx::query_scalar(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE()",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coupon_and_content_share_a_database_in_either_order() {
    for coupon_first in [true, false] {
        let (_, pool) = testing::fresh_mysql().await;
        if coupon_first {
            campus_coupon::db::migrate(&pool).await.unwrap();
            CONTENT.run(&pool).await.unwrap();
        } else {
            CONTENT.run(&pool).await.unwrap();
            campus_coupon::db::migrate(&pool).await.unwrap();
        }
        // A restart runs both again: nothing to do, nothing mistaken for missing.
        campus_coupon::db::migrate(&pool).await.unwrap();
        CONTENT.run(&pool).await.unwrap();
        let names = tables(&pool).await;
        for t in [
            "coupon_events",
            "coupons",
            campus_coupon::db::MIGRATIONS_TABLE,
            "posts",
            "outbox",
            "_sqlx_migrations",
        ] {
            assert!(names.iter().any(|n| n == t), "{t} missing from {names:?}");
        }
        let coupon_applied: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM _coupon_migrations")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(campus_coupon::db::MIGRATIONS_TABLE, "_coupon_migrations");
        assert_eq!(
            coupon_applied,
            campus_coupon::db::migrator().iter().count() as i64
        );
    }
}
