//! Protocol smoke tests, one per local test server, so a bad upgrade of a server shows at once.
//! These talk to the servers scripts/servers.sh starts (MariaDB, Redis, noida-db Kafka and
//! Elasticsearch, SecantusDB, osmem-server).

use std::time::Duration;

use campus_common::kafka::Producer;
use campus_common::kafka::admin::{Admin, TopicSpec};
use campus_common::testing;
use futures::TryStreamExt;
use mongodb::bson::{Document, doc};
use redis::AsyncCommands;
use sqlx::Row;

#[tokio::test]
async fn mariadb_transactions_and_unique_keys() {
    let (_, pool) = testing::fresh_mysql().await;
    sqlx::query("CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(10) NOT NULL, UNIQUE KEY (v))")
        .execute(&pool)
        .await
        .unwrap();
    let mut tx = pool.begin().await.unwrap();
    sqlx::query("INSERT INTO t VALUES (1, 'a')")
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    sqlx::query("INSERT INTO t VALUES (1, 'a')")
        .execute(&pool)
        .await
        .unwrap();
    let dup = sqlx::query("INSERT INTO t VALUES (2, 'a')")
        .execute(&pool)
        .await
        .unwrap_err();
    assert!(dup.as_database_error().unwrap().is_unique_violation());
    let row = sqlx::query("SELECT COUNT(*) AS n, VERSION() AS v FROM t")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(row.get::<i64, _>("n"), 1);
    assert!(row.get::<String, _>("v").contains("MariaDB"));
}

#[tokio::test]
async fn redis_lua_and_ttl() {
    let (prefix, mut conn) = testing::fresh_redis().await;
    let key = format!("{prefix}n");
    let n: i64 = redis::Script::new(
        "redis.call('SET', KEYS[1], 0, 'EX', 60); return redis.call('INCRBY', KEYS[1], ARGV[1])",
    )
    .key(&key)
    .arg(5)
    .invoke_async(&mut conn)
    .await
    .unwrap();
    assert_eq!(n, 5);
    let ttl: i64 = conn.ttl(&key).await.unwrap();
    assert!((1..=60).contains(&ttl));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_admin_produce_consume() {
    let topic = testing::fresh_topic("smoke", 1).await;
    let admin = Admin::new(&testing::kafka()).unwrap();
    admin.ensure(&[TopicSpec::new(&topic, 2)]).await.unwrap();
    assert_eq!(
        admin.describe().await.unwrap()[&topic].partitions,
        2,
        "partitions grow"
    );
    let producer = Producer::new(&testing::kafka()).unwrap();
    producer
        .send(&topic, b"k", b"v", &[("h", b"1")])
        .await
        .unwrap();
    let got = testing::read_topic(&topic, 1, Duration::from_secs(20)).await;
    assert_eq!(got[0].payload.as_deref(), Some(&b"v"[..]));
    assert_eq!(got[0].header("h"), Some(&b"1"[..]));
    admin.delete(&[&topic]).await.unwrap();
}

async fn es_roundtrip(base: &str) -> serde_json::Value {
    let http = reqwest::Client::new();
    let index = testing::fresh_index("smoke");
    let res = http
        .put(format!("{base}/{index}"))
        .json(&serde_json::json!({"mappings": {"properties": {"title": {"type": "text"}, "n": {"type": "integer"}}}}))
        .send()
        .await
        .unwrap();
    assert!(
        res.status().is_success(),
        "create index: {}",
        res.text().await.unwrap()
    );
    let bulk = format!(
        "{}\n{}\n{}\n{}\n",
        serde_json::json!({"index": {"_index": index, "_id": "1"}}),
        serde_json::json!({"title": "hello campus", "n": 10}),
        serde_json::json!({"index": {"_index": index, "_id": "2"}}),
        serde_json::json!({"title": "goodbye", "n": 30}),
    );
    let res = http
        .post(format!("{base}/_bulk?refresh=true"))
        .header("content-type", "application/x-ndjson")
        .body(bulk)
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success());
    let res: serde_json::Value = http
        .post(format!("{base}/{index}/_search"))
        .json(&serde_json::json!({
            "query": {"match": {"title": "campus"}},
            "aggs": {"n": {"percentiles": {"field": "n", "percents": [50]}}}
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(res["hits"]["total"]["value"], 1, "{res}");
    res
}

#[tokio::test]
async fn elasticsearch_mapping_bulk_search() {
    // noida-db has no percentiles aggregation: only the search part is checked there.
    let http = reqwest::Client::new();
    let index = testing::fresh_index("smoke");
    let base = testing::es_url();
    let res = http
        .put(format!("{base}/{index}"))
        .json(&serde_json::json!({"mappings": {"properties": {"title": {"type": "text"}}}}))
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success());
    http.put(format!("{base}/{index}/_doc/1?refresh=true"))
        .json(&serde_json::json!({"title": "hello campus"}))
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap();
    let res: serde_json::Value = http
        .post(format!("{base}/{index}/_search"))
        .json(&serde_json::json!({"query": {"match": {"title": "campus"}}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(res["hits"]["total"]["value"], 1, "{res}");
}

#[tokio::test]
async fn opensearch_percentiles() {
    let res = es_roundtrip(&testing::osmem_url()).await;
    let p50 = res["aggregations"]["n"]["values"]["50.0"]
        .as_f64()
        .expect("percentiles answered");
    assert!((10.0..=30.0).contains(&p50), "{p50}");
}

#[tokio::test]
async fn mongodb_crud_index_sort() {
    let db = testing::fresh_mongo().await;
    let coll = db.collection::<Document>("inbox");
    coll.create_index(
        mongodb::IndexModel::builder()
            .keys(doc! {"f": 1, "t": -1})
            .build(),
    )
    .await
    .unwrap();
    coll.insert_many([
        doc! {"f": 1, "t": 1},
        doc! {"f": 1, "t": 3},
        doc! {"f": 2, "t": 2},
    ])
    .await
    .unwrap();
    coll.update_one(doc! {"f": 2}, doc! {"$set": {"t": 5}})
        .await
        .unwrap();
    let docs: Vec<Document> = coll
        .find(doc! {"f": 1})
        .sort(doc! {"t": -1})
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    let ts: Vec<i32> = docs.iter().map(|d| d.get_i32("t").unwrap()).collect();
    assert_eq!(ts, vec![3, 1]);
    db.drop().await.unwrap();
}
