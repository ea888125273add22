//! The whole platform end to end: API, inspector (fake OpenAI), cache, inbox and index workers.

mod support;

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use campus_common::config::RedisArgs;
use campus_common::kafka::Handler;
use campus_content::cache::{CacheHandler, PostCache};
use campus_content::config::PostsIndexArgs;
use campus_content::inbox::{InboxHandler, InboxStore};
use campus_content::index::{IndexHandler, SearchIndex};
use campus_testkit::{self as testing, eventually};
use serde_json::{Value, json};
use support::{FakeOpenAi, Platform};
use tokio_util::sync::CancellationToken;

const USERS: usize = 10;
const POSTS: usize = 50;
const CATEGORIES: [&str; 5] = ["General", "Tech", "Sports", "Music", "Travel"];
const DEADLINE: Duration = Duration::from_secs(30);

/// Follower `f` follows the two users before it (mod 10).
fn followees(f: usize) -> [usize; 2] {
    [(f + USERS - 1) % USERS, (f + USERS - 2) % USERS]
}

struct Scenario {
    p: Platform,
    users: Vec<u64>,
    posts: Vec<u64>,
    /// post id → author index
    author: HashMap<u64, usize>,
}

impl Scenario {
    /// Posts (ids) each user's inbox should list, newest first.
    fn expected_inbox(&self, f: usize, gone: &[u64]) -> Vec<u64> {
        let mut ids: Vec<u64> = self
            .posts
            .iter()
            .copied()
            .filter(|id| followees(f).contains(&self.author[id]) && !gone.contains(id))
            .collect();
        ids.sort_unstable_by(|a, b| b.cmp(a));
        ids
    }

    async fn inboxes_match(&self, gone: &[u64]) -> bool {
        for f in 0..USERS {
            if self.p.inbox_ids(self.users[f]).await != self.expected_inbox(f, gone) {
                return false;
            }
        }
        true
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn posts_flow_to_search_inbox_and_cache_and_replays_change_nothing() {
    let fake = FakeOpenAi::start().await;
    let mut p = Platform::new().await;
    p.start_api().await;
    for w in ["inspect", "cache", "inbox", "index"] {
        p.start_worker(w, Some(&fake.url));
    }
    p.wait_search_ready().await;

    let mut users = Vec::new();
    for i in 0..USERS {
        users.push(p.create_user(&format!("user{i}")).await);
    }
    for f in 0..USERS {
        for e in followees(f) {
            let (s, v) = p
                .post(
                    "/follows",
                    json!({"followerId": users[f], "followeeId": users[e]}),
                )
                .await;
            assert_eq!(s, 201, "{v}");
        }
    }
    let started = Instant::now();
    let mut posts = Vec::new();
    let mut author = HashMap::new();
    for j in 0..POSTS {
        let u = j % USERS;
        let v = p
            .create_post(
                users[u],
                1 + (j % 5) as u64,
                &format!("Post kw{j}x"),
                &format!("Body number {j}."),
            )
            .await;
        let id = v["id"].as_u64().unwrap();
        posts.push(id);
        author.insert(id, u);
    }
    let s = Scenario {
        p,
        users,
        posts,
        author,
    };
    let p = &s.p;

    // Every post: by a keyword of its title, by its tag, by its category.
    for (j, id) in s.posts.iter().enumerate() {
        eventually(&format!("post {j} searchable"), DEADLINE, || async {
            (p.search_ids(&format!("kw{j}x")).await == [*id]
                && p.search_ids(&format!("tag{j}x")).await == [*id])
            .then_some(())
        })
        .await;
    }
    for (c, name) in CATEGORIES.iter().enumerate() {
        let mut want: Vec<u64> = s
            .posts
            .iter()
            .enumerate()
            .filter(|(j, _)| j % 5 == c)
            .map(|(_, id)| *id)
            .collect();
        want.sort_unstable();
        let mut got = p.search_ids(name).await;
        got.sort_unstable();
        assert_eq!(got, want, "category {name}");
    }
    eventually("inboxes", DEADLINE, || async {
        s.inboxes_match(&[]).await.then_some(())
    })
    .await;
    for id in &s.posts {
        let (status, v, cache) = eventually("detail cached", DEADLINE, || async {
            let d = p.detail(*id).await;
            (d.2 == "hit").then_some(d)
        })
        .await;
        assert_eq!(status, 200);
        assert_eq!(v["id"], *id);
        assert_eq!(v["userName"], format!("user{}", s.author[id]));
        assert_eq!(cache, "hit");
    }
    eprintln!(
        "50 posts visible everywhere {:?} after the first create",
        started.elapsed()
    );

    // An update shows everywhere.
    let (p0, p1, p2) = (s.posts[0], s.posts[1], s.posts[2]);
    let (st, v) = p
        .put(
            &format!("/posts/{p0}"),
            json!({"title": "Post kw0new", "content": "changed", "categoryId": 2}),
        )
        .await;
    assert_eq!((st, v["version"].as_i64()), (200, Some(2)), "{v}");
    eventually("update searchable", DEADLINE, || async {
        (p.search_ids("kw0new").await == [p0]
            && p.search_ids("tag0new").await == [p0]
            && p.search_ids("kw0x").await.is_empty())
        .then_some(())
    })
    .await;
    eventually("update in detail", DEADLINE, || async {
        let (_, v, cache) = p.detail(p0).await;
        (v["title"] == "Post kw0new" && v["version"] == 2 && cache == "hit").then_some(())
    })
    .await;
    let follower = (s.author[&p0] + 1) % USERS;
    eventually("update in inbox", DEADLINE, || async {
        let (_, v) = p
            .get(&format!("/list/inbox/{}?size=100", s.users[follower]))
            .await;
        v.as_array()
            .unwrap()
            .iter()
            .any(|e| {
                e["id"] == p0
                    && e["title"] == "Post kw0new"
                    && e["tags"] == json!(["tag0new"])
                    && e["categoryName"] == "Tech"
            })
            .then_some(())
    })
    .await;

    // A BAD update withdraws the post from search and inboxes.
    let (st, _) = p
        .put(
            &format!("/posts/{p1}"),
            json!({"title": "Post kw1x", "content": "BADWORD", "categoryId": 1}),
        )
        .await;
    assert_eq!(st, 200);
    // A delete removes it everywhere.
    let (st, _) = p.delete(&format!("/posts/{p2}")).await;
    assert_eq!(st, 204);
    eventually(
        "BAD and deleted posts gone from search",
        DEADLINE,
        || async {
            (p.search_ids("kw1x").await.is_empty() && p.search_ids("kw2x").await.is_empty())
                .then_some(())
        },
    )
    .await;
    eventually(
        "BAD and deleted posts gone from inboxes",
        DEADLINE,
        || async { s.inboxes_match(&[p1, p2]).await.then_some(()) },
    )
    .await;
    eventually("deleted post's detail is 404", DEADLINE, || async {
        (p.detail(p2).await.0 == 404).then_some(())
    })
    .await;
    // The cache is fed from `post.inspected`: the BAD update withdraws the cached detail too.
    eventually("BAD update's detail is 404", DEADLINE, || async {
        (p.detail(p1).await.0 == 404).then_some(())
    })
    .await;
    // Once the inspector saw all 53 changes (and the projections caught up), take a snapshot.
    eventually("inspector saw every change", DEADLINE, || async {
        (fake.count() >= POSTS + 2).then_some(())
    })
    .await;
    let before = snapshot(&s).await;

    // Replay every inspected event from offset 0 through the projections (the cache included), in
    // order and then reversed (so older versions arrive after newer ones): nothing changes.
    let original = testing::read_topic(
        &p.topic("post.original"),
        POSTS + 3,
        Duration::from_secs(20),
    )
    .await;
    let inspected = testing::read_topic(
        &p.topic("post.inspected"),
        POSTS + 3,
        Duration::from_secs(20),
    )
    .await;
    assert_eq!(original.len(), POSTS + 3);
    assert_eq!(
        inspected.len(),
        POSTS + 3,
        "50 created, 1 updated, 2 deleted (BAD update, delete)"
    );
    let token = CancellationToken::new();
    let cache = CacheHandler::new(
        PostCache::connect(
            &RedisArgs::new(&testing::redis_url(), &p.redis_prefix),
            Duration::from_secs(3600),
        )
        .await
        .unwrap(),
        token.clone(),
    );
    let inbox = InboxHandler::new(
        InboxStore::connect(&testing::mongo_url(), &p.mongo_db)
            .await
            .unwrap(),
        p.pool.clone(),
        token.clone(),
    );
    let index = IndexHandler::new(
        SearchIndex::new(&PostsIndexArgs::new(
            &p.es_url,
            &p.alias,
            &p.index,
            Duration::from_secs(5),
        ))
        .unwrap(),
        token.clone(),
    );
    // One by one, then in batches (as the consumer runtime hands them to the inbox and index
    // handlers: several versions of a post may share a batch).
    for round in 0..4 {
        let mut i = inspected.clone();
        if round % 2 == 1 {
            i.reverse();
        }
        for r in &i {
            cache.handle(r).await.unwrap();
        }
        if round < 2 {
            for r in &i {
                inbox.handle(r).await.unwrap();
                index.handle(r).await.unwrap();
            }
        } else {
            // All in one batch in order, then reversed in batches of 20.
            let size = if round == 2 { i.len() } else { 20 };
            for chunk in i.chunks(size) {
                for result in inbox.handle_batch(chunk).await {
                    result.unwrap();
                }
                for result in index.handle_batch(chunk).await {
                    result.unwrap();
                }
            }
        }
    }
    // Give a (wrong) asynchronous write time to land before comparing.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = snapshot(&s).await;
    assert_eq!(before, after);
}

/// Everything a client can see: search by every keyword, every inbox, every detail (and Redis).
async fn snapshot(s: &Scenario) -> BTreeMap<String, Value> {
    let p = &s.p;
    let mut out = BTreeMap::new();
    for j in 0..POSTS {
        for kw in [format!("kw{j}x"), format!("tag{j}x")] {
            let (_, v) = p.get(&format!("/list/search?keyword={kw}&size=100")).await;
            out.insert(format!("search {kw}"), v);
        }
    }
    out.insert(
        "search kw0new".into(),
        p.get("/list/search?keyword=kw0new").await.1,
    );
    for (f, u) in s.users.iter().enumerate() {
        out.insert(
            format!("inbox {f}"),
            p.get(&format!("/list/inbox/{u}?size=100")).await.1,
        );
    }
    let client = redis::Client::open(testing::redis_url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    for id in &s.posts {
        let (status, v, _) = p.detail(*id).await;
        out.insert(format!("detail {id}"), json!({"status": status, "body": v}));
        let raw: HashMap<String, String> = redis::cmd("HGETALL")
            .arg(format!("{}post:{id}", p.redis_prefix))
            .query_async(&mut conn)
            .await
            .unwrap();
        out.insert(format!("redis {id}"), json!(raw));
    }
    out
}
