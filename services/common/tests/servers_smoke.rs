//! Protocol smoke tests, one per local test server, so a bad upgrade of a server shows at once.
//! These talk to the servers scripts/servers.sh starts (MariaDB, Redis, Kafka, OpenSearch,
//! FerretDB).

use std::time::Duration;

use campus_common::kafka::Producer;
use campus_common::kafka::admin::{Admin, TopicSpec};
use campus_testkit as testing;
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

/// The suite's Elasticsearch API is a real OpenSearch 2.19 node: a mapping, a bulk write, a match
/// query and the `percentiles` aggregation (the log API's stats need it).
#[tokio::test]
async fn opensearch_mapping_bulk_search_percentiles() {
    let http = reqwest::Client::new();
    let base = testing::es_url();
    let root: serde_json::Value = http
        .get(format!("{base}/"))
        .send()
        .await
        .expect("OpenSearch is up (scripts/servers.sh start)")
        .json()
        .await
        .unwrap();
    assert_eq!(root["version"]["distribution"], "opensearch", "{root}");
    assert!(
        root["version"]["number"]
            .as_str()
            .is_some_and(|v| v.starts_with("2.19.")),
        "{root}"
    );
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
        "{}\n{}\n{}\n{}\n{}\n{}\n",
        serde_json::json!({"index": {"_index": index, "_id": "1"}}),
        serde_json::json!({"title": "hello campus", "n": 10}),
        serde_json::json!({"index": {"_index": index, "_id": "2"}}),
        serde_json::json!({"title": "goodbye", "n": 30}),
        serde_json::json!({"index": {"_index": index, "_id": "3"}}),
        serde_json::json!({"title": "campus again", "n": 20}),
    );
    let res: serde_json::Value = http
        .post(format!("{base}/_bulk?refresh=true"))
        .header("content-type", "application/x-ndjson")
        .body(bulk)
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(res["errors"], false, "{res}");
    let res: serde_json::Value = http
        .post(format!("{base}/{index}/_search"))
        .json(&serde_json::json!({
            "query": {"match": {"title": "campus"}},
            "aggs": {"n": {"percentiles": {"field": "n", "percents": [50, 99]}}}
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(res["hits"]["total"]["value"], 2, "{res}");
    let p50 = res["aggregations"]["n"]["values"]["50.0"]
        .as_f64()
        .expect("percentiles answered");
    assert!((10.0..=20.0).contains(&p50), "{res}");
    http.delete(format!("{base}/{index}"))
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap();
}

/// What campus-content's inbox (services/content/src/inbox.rs) does, one operation each: named
/// compound index, ordered bulk `update` with upserting `$max` and version-guarded `$set`, multi
/// updates guarded by version, unordered `insert_many` with duplicates, `$in` finds with a
/// projection, sort, skip, limit, `delete_many` with `$in` and the estimated count.
#[tokio::test]
async fn mongodb_inbox_operations() {
    let db = testing::fresh_mongo().await;
    let info = db.run_command(doc! {"buildInfo": 1}).await.unwrap();
    assert!(
        info.get_str("ferretdbVersion")
            .is_ok_and(|v| v.starts_with("v1.24.")),
        "not FerretDB 1.24: {info}"
    );
    let coll = db.collection::<Document>("inbox");
    coll.create_index(
        mongodb::IndexModel::builder()
            .keys(doc! {"f": 1, "t": -1, "p": -1})
            .options(
                mongodb::options::IndexOptions::builder()
                    .name("f_newest".to_owned())
                    .build(),
            )
            .build(),
    )
    .await
    .unwrap();
    let names = coll.list_index_names().await.unwrap();
    assert!(names.contains(&"f_newest".to_owned()), "{names:?}");

    // Version-guarded state: an ordered `update` raising each version with an upserting `$max`
    // and setting a flag where the version is the event's, then the versions read back.
    let states = db.collection::<Document>("states");
    let claim = |events: &[(i64, i64)]| {
        let mut updates = Vec::new();
        for &(id, v) in events {
            updates.push(doc! {"q": {"_id": id}, "u": {"$max": {"version": v}}, "upsert": true});
            updates.push(doc! {"q": {"_id": id, "version": v}, "u": {"$set": {"seen": v}}});
        }
        doc! {"update": "states", "updates": updates, "ordered": true}
    };
    let versions = || async {
        states
            .find(doc! {"_id": {"$in": [1_i64, 2_i64, 3_i64]}})
            .projection(doc! {"version": 1, "seen": 1})
            .sort(doc! {"_id": 1})
            .await
            .unwrap()
            .try_collect::<Vec<Document>>()
            .await
            .unwrap()
            .iter()
            .map(|d| {
                let v = |k| d.get_i64(k).unwrap();
                (v("_id"), v("version"), v("seen"))
            })
            .collect::<Vec<_>>()
    };
    let reply = db.run_command(claim(&[(1, 2), (2, 1)])).await.unwrap();
    assert!(reply.get_array("writeErrors").is_err(), "{reply}");
    assert_eq!(reply.get_array("upserted").unwrap().len(), 2, "{reply}");
    assert_eq!(versions().await, vec![(1, 2, 2), (2, 1, 1)]);
    // The same version again, an older one, a new post.
    let reply = db
        .run_command(claim(&[(1, 2), (2, 0), (3, 1)]))
        .await
        .unwrap();
    assert!(reply.get_array("writeErrors").is_err(), "{reply}");
    assert_eq!(versions().await, vec![(1, 2, 2), (2, 1, 1), (3, 1, 1)]);
    db.run_command(claim(&[(2, 4)])).await.unwrap();
    assert_eq!(versions().await, vec![(1, 2, 2), (2, 4, 4), (3, 1, 1)]);

    // Unordered insert_many: the duplicates fail, the others are written.
    let entry = |f: i64, p: i64, t: i64| doc! {"_id": format!("{f}:{p}"), "f": f, "p": p, "t": t, "v": 1_i64};
    coll.insert_many([entry(1, 1, 1), entry(1, 2, 3), entry(2, 1, 1)])
        .await
        .unwrap();
    let err = coll
        .insert_many([
            entry(1, 1, 1),
            entry(1, 3, 3),
            entry(2, 1, 1),
            entry(1, 4, 2),
        ])
        .ordered(false)
        .await
        .unwrap_err();
    match *err.kind {
        mongodb::error::ErrorKind::InsertMany(ref m) => {
            let codes: Vec<i32> = m.write_errors.iter().flatten().map(|w| w.code).collect();
            assert_eq!(codes, vec![11000, 11000], "{err}");
        }
        ref k => panic!("not an insert_many error: {k:?}"),
    }
    assert_eq!(coll.estimated_document_count().await.unwrap(), 5);

    // Multi update guarded by version.
    let reply = db
        .run_command(doc! {"update": "inbox", "ordered": true, "updates": [
            {"q": {"p": 1, "v": {"$lt": 2_i64}}, "u": {"$set": {"v": 2_i64, "t": 4}}, "multi": true},
            {"q": {"p": 2, "v": {"$lt": 1_i64}}, "u": {"$set": {"v": 1_i64}}, "multi": true},
        ]})
        .await
        .unwrap();
    assert_eq!(reply.get_i32("n").unwrap(), 2, "{reply}");
    assert_eq!(reply.get_i32("nModified").unwrap(), 2, "{reply}");

    // $in with a projection.
    let mut pairs: Vec<(i64, i64)> = coll
        .find(doc! {"p": {"$in": [1_i64, 3_i64]}})
        .projection(doc! {"f": 1, "p": 1})
        .await
        .unwrap()
        .try_collect::<Vec<Document>>()
        .await
        .unwrap()
        .iter()
        .map(|d| {
            assert!(d.get("t").is_none(), "{d}");
            (d.get_i64("f").unwrap(), d.get_i64("p").unwrap())
        })
        .collect();
    pairs.sort_unstable();
    assert_eq!(pairs, vec![(1, 1), (1, 3), (2, 1)]);

    // Sort on the compound key, skip, limit.
    let page = |skip: u64| {
        coll.find(doc! {"f": 1_i64})
            .sort(doc! {"t": -1, "p": -1})
            .skip(skip)
            .limit(2)
    };
    let ids = |docs: Vec<Document>| -> Vec<i64> {
        docs.iter().map(|d| d.get_i64("p").unwrap()).collect()
    };
    let first: Vec<Document> = page(0).await.unwrap().try_collect().await.unwrap();
    let second: Vec<Document> = page(2).await.unwrap().try_collect().await.unwrap();
    assert_eq!(ids(first), vec![1, 3]);
    assert_eq!(ids(second), vec![2, 4]);

    // delete_many with $in.
    let gone = coll
        .delete_many(doc! {"p": {"$in": [1_i64, 4_i64]}})
        .await
        .unwrap();
    assert_eq!(gone.deleted_count, 3);
    assert_eq!(coll.estimated_document_count().await.unwrap(), 2);
    db.drop().await.unwrap();
}
