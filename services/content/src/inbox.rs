//! The follower inbox in MongoDB: one document per (follower, post) in `inbox`, listed newest
//! first, built from `post.inspected` so it follows the moderation result.
//!
//! `inbox_posts` holds one state document per post (`{_id: postId, version, deleted}`): an event
//! older than that version is ignored, and a deleted post's state stays as a tombstone so a replay
//! of its older events cannot bring it back. The state is claimed first (its version raised to
//! the event's with `$max`, then read back) and the entries follow; if that is cut short, the same
//! version is applied again.
//! Inbox documents carry the version too, and updates only touch documents with an older one.
//!
//! The worker takes a partition's queued records as one batch: the newest event per post, one
//! followers query for all their authors, and a few MongoDB round trips for the whole batch.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use async_trait::async_trait;
use campus_common::envelope::EventType;
use campus_common::kafka::{HandleError, Handler, Record};
use campus_common::retry::{self, ride_out};
use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use mongodb::bson::{self, Bson, Document, doc};
use mongodb::error::{ErrorKind, WriteFailure};
use mongodb::options::IndexOptions;
use mongodb::{Collection, IndexModel};
use sqlx::MySqlPool;
use tokio_util::sync::CancellationToken;

use crate::events::{self, Batch, PostEvent, PostView};

#[derive(Debug, thiserror::Error)]
pub enum InboxError {
    #[error("failed to {action} in MongoDB")]
    Mongo {
        action: &'static str,
        #[source]
        source: mongodb::error::Error,
    },
    #[error("failed to read followers from MySQL")]
    Followers(#[source] sqlx::Error),
    #[error("failed to read an inbox document: {0}")]
    Decode(String),
    #[error("failed to {action} in MongoDB: {message}")]
    Write {
        action: &'static str,
        message: String,
        /// The write was not refused for what it is but for the server's state: a write concern
        /// not met, or a primary stepping down (see [`outage_code`]).
        outage: bool,
    },
}

/// Server error codes that mean "not now" rather than "not this": the primary stepped down or is
/// shutting down, no primary, a node unreachable, a network timeout, a write concern not met. The
/// driver's retryable-write codes plus `WriteConcernFailed` (64) and `MaxTimeMSExpired` (50).
pub fn outage_code(code: i32) -> bool {
    matches!(
        code,
        6 | 7 | 50 | 64 | 89 | 91 | 189 | 262 | 9001 | 10107 | 11600 | 11602 | 13435 | 13436
    )
}

/// The failures in the reply of an `update` command (`writeErrors`, `writeConcernError`).
pub fn write_failures(reply: &Document, action: &'static str) -> Result<(), InboxError> {
    let mut outage = false;
    let code = |d: &Document| {
        d.get_i32("code")
            .ok()
            .or_else(|| d.get_i64("code").ok().map(|c| c as i32))
    };
    let mut failures: Vec<String> = reply
        .get_array("writeErrors")
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter_map(Bson::as_document)
        .map(|w| {
            outage |= code(w).is_some_and(outage_code);
            w.get_str("errmsg").unwrap_or("write error").to_owned()
        })
        .collect();
    if let Ok(w) = reply.get_document("writeConcernError") {
        // The write may have been applied on the primary, but it is not durable: an outage; the
        // same version is applied again.
        outage = true;
        failures.push(
            w.get_str("errmsg")
                .unwrap_or("write concern error")
                .to_owned(),
        );
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(InboxError::Write {
            action,
            message: failures.join("; "),
            outage,
        })
    }
}

fn mongo(action: &'static str) -> impl FnOnce(mongodb::error::Error) -> InboxError {
    move |source| InboxError::Mongo { action, source }
}

/// The inbox collections; cheap to clone.
#[derive(Clone)]
pub struct InboxStore {
    db: mongodb::Database,
    inbox: Collection<Document>,
    posts: Collection<Document>,
}

impl InboxStore {
    pub async fn connect(url: &str, database: &str) -> Result<Self, InboxError> {
        let client = mongodb::Client::with_uri_str(url)
            .await
            .map_err(mongo("parse the MongoDB URL"))?;
        Ok(Self::new(client.database(database)))
    }

    pub fn new(db: mongodb::Database) -> Self {
        Self {
            inbox: db.collection("inbox"),
            posts: db.collection("inbox_posts"),
            db,
        }
    }

    /// Creates the indexes the listing and the projection use (idempotent).
    pub async fn ensure_indexes(&self) -> Result<(), InboxError> {
        self.inbox
            .create_index(
                IndexModel::builder()
                    .keys(doc! {"followerId": 1, "createdAt": -1, "postId": -1})
                    .options(
                        IndexOptions::builder()
                            .name("follower_newest".to_owned())
                            .build(),
                    )
                    .build(),
            )
            .await
            .map_err(mongo("create the inbox index"))?;
        self.inbox
            .create_index(
                IndexModel::builder()
                    .keys(doc! {"postId": 1})
                    .options(IndexOptions::builder().name("post".to_owned()).build())
                    .build(),
            )
            .await
            .map_err(mongo("create the inbox index"))?;
        Ok(())
    }

    /// A follower's inbox, newest first.
    pub async fn list(
        &self,
        follower: u64,
        page: u32,
        size: u32,
    ) -> Result<Vec<PostView>, InboxError> {
        let docs: Vec<Document> = self
            .inbox
            .find(doc! {"followerId": follower as i64})
            .sort(doc! {"createdAt": -1, "postId": -1})
            .skip(u64::from(page) * u64::from(size))
            .limit(i64::from(size))
            .await
            .map_err(mongo("list an inbox"))?
            .try_collect()
            .await
            .map_err(mongo("list an inbox"))?;
        docs.iter().map(from_doc).collect()
    }

    /// Records the events' versions in the posts' states — at most one event per post — and
    /// returns, per event, whether it is current: false when the state holds a newer version
    /// (the event is ignored). The same version again is current, so a batch cut short after
    /// this is applied again in full. Two round trips whatever the number of events: one ordered
    /// `update` that raises each state's version to the event's (`$max`, upserting a missing
    /// state) and sets `deleted` where the version is now the event's, then a read of the
    /// versions: an event is current when its version is the state's.
    ///
    /// No statement can fail on a newer state, so nothing depends on how a server reports a
    /// failed statement of a bulk write or whether it goes on after one (FerretDB stops at the
    /// first and reports it at index 0).
    pub async fn claim(&self, events: &[&PostEvent]) -> Result<Vec<bool>, InboxError> {
        let mut statements = Vec::with_capacity(events.len() * 2);
        for e in events {
            let id = e.payload.id as i64;
            statements.push(doc! {
                "q": {"_id": id},
                "u": {"$max": {"version": e.version}},
                "upsert": true,
            });
            statements.push(doc! {
                "q": {"_id": id, "version": e.version},
                "u": {"$set": {"deleted": e.event_type == EventType::Deleted}},
            });
        }
        self.update(self.posts.name(), statements, "record the posts' state")
            .await?;
        let ids: Vec<i64> = events.iter().map(|e| e.payload.id as i64).collect();
        let versions: HashMap<i64, i64> = self
            .posts
            .find(doc! {"_id": {"$in": ids}})
            .projection(doc! {"version": 1})
            .await
            .map_err(mongo("read the posts' state"))?
            .try_collect::<Vec<Document>>()
            .await
            .map_err(mongo("read the posts' state"))?
            .iter()
            .filter_map(|d| Some((d.get_i64("_id").ok()?, d.get_i64("version").ok()?)))
            .collect();
        Ok(events
            .iter()
            .map(|e| versions.get(&(e.payload.id as i64)) == Some(&e.version))
            .collect())
    }

    /// Brings the inbox entries in line with current events (see [`InboxStore::claim`]), at
    /// most one per post: removes deleted posts, updates the entries of updated ones and adds
    /// the entries missing for the authors' `followers` (by author id). At most four round trips
    /// whatever the number of events, two for a batch of creates.
    pub async fn project(
        &self,
        events: &[&PostEvent],
        followers: &HashMap<u64, Vec<u64>>,
    ) -> Result<(), InboxError> {
        let (deleted, live): (Vec<&PostEvent>, Vec<&PostEvent>) = events
            .iter()
            .partition(|e| e.event_type == EventType::Deleted);
        if !deleted.is_empty() {
            let ids: Vec<i64> = deleted.iter().map(|e| e.payload.id as i64).collect();
            self.inbox
                .delete_many(doc! {"postId": {"$in": ids}})
                .await
                .map_err(mongo("remove posts from inboxes"))?;
        }
        // Entries of an earlier version can exist only after a create: bring them up to date and
        // note who has one. A create's entries are all inserted (a duplicate means a previous
        // attempt got that far).
        let updated: Vec<&PostEvent> = live.iter().copied().filter(|e| e.version > 1).collect();
        let mut existing: HashSet<(i64, i64)> = HashSet::new();
        if !updated.is_empty() {
            let statements: Vec<Document> = updated
                .iter()
                .map(|e| {
                    doc! {
                        "q": {"postId": e.payload.id as i64, "version": {"$lt": e.version}},
                        "u": {"$set": post_fields(&e.payload)},
                        "multi": true,
                    }
                })
                .collect();
            self.update(self.inbox.name(), statements, "update inbox entries")
                .await?;
            let ids: Vec<i64> = updated.iter().map(|e| e.payload.id as i64).collect();
            existing = self
                .inbox
                .find(doc! {"postId": {"$in": ids}})
                .projection(doc! {"followerId": 1, "postId": 1})
                .await
                .map_err(mongo("read inbox entries"))?
                .try_collect::<Vec<Document>>()
                .await
                .map_err(mongo("read inbox entries"))?
                .iter()
                .filter_map(|d| Some((d.get_i64("followerId").ok()?, d.get_i64("postId").ok()?)))
                .collect();
        }
        let mut missing = Vec::new();
        for e in &live {
            let post_id = e.payload.id as i64;
            let fields = post_fields(&e.payload);
            for &f in followers
                .get(&e.payload.user_id)
                .map(Vec::as_slice)
                .unwrap_or_default()
            {
                let f = f as i64;
                if !existing.contains(&(f, post_id)) {
                    let mut d = doc! {"_id": format!("{f}:{post_id}"), "followerId": f};
                    d.extend(fields.clone());
                    missing.push(d);
                }
            }
        }
        if !missing.is_empty() {
            match self.inbox.insert_many(missing).ordered(false).await {
                Ok(_) => {}
                Err(e) if is_duplicate(&e) => {}
                Err(e) => return Err(mongo("add inbox entries")(e)),
            }
        }
        Ok(())
    }

    /// Runs one ordered `update` command with several statements; any write error fails the
    /// call.
    async fn update(
        &self,
        collection: &str,
        statements: Vec<Document>,
        action: &'static str,
    ) -> Result<(), InboxError> {
        let reply = self
            .db
            .run_command(doc! {"update": collection, "updates": statements, "ordered": true})
            .await
            .map_err(mongo(action))?;
        write_failures(&reply, action)
    }

    /// A readiness check.
    pub async fn ping(&self) -> Result<(), String> {
        self.inbox
            .estimated_document_count()
            .await
            .map(|_| ())
            .map_err(|e| format!("mongodb: {e}"))
    }
}

fn post_fields(post: &PostView) -> Document {
    doc! {
        "postId": post.id as i64,
        "title": &post.title,
        "content": &post.content,
        "userId": post.user_id as i64,
        "userName": &post.user_name,
        "categoryId": post.category_id as i64,
        "categoryName": &post.category_name,
        "tags": post.tags.clone().unwrap_or_default(),
        "createdAt": bson::DateTime::from_millis(post.created_at.timestamp_millis()),
        "updatedAt": bson::DateTime::from_millis(post.updated_at.timestamp_millis()),
        "version": post.version,
    }
}

fn from_doc(d: &Document) -> Result<PostView, InboxError> {
    let err = |e: bson::document::ValueAccessError| InboxError::Decode(e.to_string());
    let time = |key: &str| -> Result<DateTime<Utc>, InboxError> {
        let t = d.get_datetime(key).map_err(err)?;
        DateTime::from_timestamp_millis(t.timestamp_millis())
            .ok_or_else(|| InboxError::Decode(format!("{key} out of range")))
    };
    Ok(PostView {
        id: d.get_i64("postId").map_err(err)? as u64,
        title: d.get_str("title").map_err(err)?.to_owned(),
        content: d.get_str("content").map_err(err)?.to_owned(),
        user_id: d.get_i64("userId").map_err(err)? as u64,
        user_name: d.get_str("userName").map_err(err)?.to_owned(),
        category_id: d.get_i64("categoryId").map_err(err)? as u64,
        category_name: d.get_str("categoryName").map_err(err)?.to_owned(),
        tags: Some(
            d.get_array("tags")
                .map_err(err)?
                .iter()
                .filter_map(Bson::as_str)
                .map(str::to_owned)
                .collect(),
        ),
        created_at: time("createdAt")?,
        updated_at: time("updatedAt")?,
        version: d.get_i64("version").map_err(err)?,
    })
}

const DUPLICATE_KEY: i32 = 11000;

/// Whether every failure in `e` is a duplicate key (an entry or state someone else wrote).
fn is_duplicate(e: &mongodb::error::Error) -> bool {
    match e.kind.as_ref() {
        ErrorKind::Write(WriteFailure::WriteError(w)) => w.code == DUPLICATE_KEY,
        ErrorKind::InsertMany(m) => {
            m.write_concern_error.is_none()
                && m.write_errors
                    .as_ref()
                    .is_some_and(|ws| ws.iter().all(|w| w.code == DUPLICATE_KEY))
        }
        _ => false,
    }
}

/// The followers of each of `authors`, from MySQL, in one query.
pub async fn followers_of(
    pool: &MySqlPool,
    authors: &[u64],
) -> Result<HashMap<u64, Vec<u64>>, InboxError> {
    let mut out: HashMap<u64, Vec<u64>> = HashMap::new();
    if authors.is_empty() {
        return Ok(out);
    }
    let mut q = sqlx::QueryBuilder::<sqlx::MySql>::new(
        "SELECT followee_id, follower_id FROM follows WHERE followee_id IN (",
    );
    let mut ids = q.separated(", ");
    for a in authors {
        ids.push_bind(*a);
    }
    q.push(")");
    let rows: Vec<(u64, u64)> = q
        .build_query_as()
        .fetch_all(pool)
        .await
        .map_err(InboxError::Followers)?;
    for (followee, follower) in rows {
        out.entry(followee).or_default().push(follower);
    }
    Ok(out)
}

/// The `inbox` consumer group: `post.inspected` → MongoDB.
pub struct InboxHandler {
    store: InboxStore,
    pool: MySqlPool,
    shutdown: CancellationToken,
}

impl InboxHandler {
    /// `shutdown` ends the wait while MongoDB or MySQL is down.
    pub fn new(store: InboxStore, pool: MySqlPool, shutdown: CancellationToken) -> Arc<Self> {
        Arc::new(Self {
            store,
            pool,
            shutdown,
        })
    }
}

impl InboxError {
    /// Whether the store is unreachable (retried until it is back) rather than refusing the write.
    pub fn is_outage(&self) -> bool {
        match self {
            Self::Mongo { source, .. } => {
                matches!(
                    source.kind.as_ref(),
                    ErrorKind::Io(_)
                        | ErrorKind::ConnectionPoolCleared { .. }
                        | ErrorKind::ServerSelection { .. }
                ) || matches!(source.kind.as_ref(), ErrorKind::Command(c) if outage_code(c.code))
                    || matches!(
                        source.kind.as_ref(),
                        ErrorKind::Write(WriteFailure::WriteConcernError(_))
                    )
                    || matches!(source.kind.as_ref(), ErrorKind::Write(WriteFailure::WriteError(w)) if outage_code(w.code))
                    || source.contains_label(mongodb::error::RETRYABLE_WRITE_ERROR)
            }
            Self::Followers(e) => matches!(
                e,
                sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed
            ),
            Self::Write { outage, .. } => *outage,
            Self::Decode(_) => false,
        }
    }
}

/// Records of one partition applied together.
pub const BATCH_SIZE: usize = 128;

impl InboxHandler {
    /// Applies events (at most one per post) with their authors' followers, waiting out an outage
    /// of MongoDB or MySQL. The followers are read while the states are claimed; only current
    /// events are projected. Returns, per event, whether it was current.
    async fn apply(&self, events: &[&PostEvent]) -> Result<Vec<bool>, InboxError> {
        let mut authors: Vec<u64> = events
            .iter()
            .filter(|e| e.event_type != EventType::Deleted)
            .map(|e| e.payload.user_id)
            .collect();
        authors.sort_unstable();
        authors.dedup();
        ride_out(
            &self.shutdown,
            "mongodb",
            retry::OUTAGE,
            InboxError::is_outage,
            || async {
                let (current, followers) =
                    tokio::try_join!(self.store.claim(events), followers_of(&self.pool, &authors))?;
                let fresh: Vec<&PostEvent> = events
                    .iter()
                    .zip(&current)
                    .filter(|(_, c)| **c)
                    .map(|(e, _)| *e)
                    .collect();
                if !fresh.is_empty() {
                    self.store.project(&fresh, &followers).await?;
                }
                Ok(current)
            },
        )
        .await
    }
}

fn ignored(event: &PostEvent) {
    tracing::debug!(
        post = event.payload.id,
        version = event.version,
        "older version; ignored"
    );
}

#[async_trait]
impl Handler for InboxHandler {
    async fn handle(&self, record: &Record) -> Result<(), HandleError> {
        let event = events::decode(record)?;
        let applied = self
            .apply(&[&event])
            .await
            .map_err(HandleError::transient)?;
        if applied.first() == Some(&false) {
            ignored(&event);
        }
        Ok(())
    }

    fn batch_size(&self) -> usize {
        BATCH_SIZE
    }

    /// The newest event of each post in the batch, with one followers query and a handful of
    /// MongoDB round trips in all. If that fails, each record is retried on its own.
    async fn handle_batch(&self, records: &[Record]) -> Vec<Result<(), HandleError>> {
        let batch = Batch::decode(records);
        let events = batch.events();
        let outcomes = if events.is_empty() {
            Vec::new()
        } else {
            match self.apply(&events).await {
                Ok(applied) => events
                    .iter()
                    .zip(applied)
                    .map(|(e, a)| {
                        if !a {
                            ignored(e);
                        }
                        Ok(())
                    })
                    .collect(),
                Err(e) => events::failed_together(events.len(), e),
            }
        };
        drop(events);
        batch.results(outcomes)
    }
}

#[cfg(test)]
mod outage_tests {
    use super::*;

    /// Replies of MongoDB's `update` command as a replica set answers during a step-down or when a
    /// write concern times out: outages (waited out), not refusals (dead-lettered).
    #[test]
    fn step_down_and_write_concern_replies_are_outages() {
        let step_down = doc! {"ok": 1, "n": 0, "writeErrors": [
            {"index": 0, "code": 10107, "codeName": "NotWritablePrimary", "errmsg": "not primary"}
        ]};
        let wc = doc! {"ok": 1, "n": 1, "writeConcernError": {
            "code": 64, "codeName": "WriteConcernFailed", "errmsg": "waiting for replication timed out"
        }};
        let refused = doc! {"ok": 1, "n": 0, "writeErrors": [
            {"index": 0, "code": 121, "codeName": "DocumentValidationFailure", "errmsg": "invalid"}
        ]};
        assert!(write_failures(&doc! {"ok": 1, "n": 1}, "x").is_ok());
        for reply in [step_down, wc] {
            let e = write_failures(&reply, "x").unwrap_err();
            assert!(e.is_outage(), "{e}");
        }
        let e = write_failures(&refused, "x").unwrap_err();
        assert!(!e.is_outage(), "{e}");
        for code in [189, 91, 11600, 11602, 13435, 13436, 10107, 64] {
            assert!(outage_code(code), "{code}");
        }
        assert!(!outage_code(11000), "a duplicate key is no outage");
    }
}
