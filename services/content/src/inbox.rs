//! The follower inbox in MongoDB: one document per (follower, post) in `inbox`, listed newest
//! first, built from `post.inspected` so it follows the moderation result.
//!
//! `inbox_posts` holds one state document per post (`{_id: postId, version, deleted}`): an event
//! older than that version is ignored, and a deleted post's state stays as a tombstone so a replay
//! of its older events cannot bring it back. Inbox documents carry the version too, and updates
//! only touch documents with an older one.

use std::collections::HashSet;
use std::sync::Arc;

use async_trait::async_trait;
use campus_common::envelope::EventType;
use campus_common::kafka::{HandleError, Handler, Record};
use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use mongodb::bson::{self, Bson, Document, doc};
use mongodb::error::{ErrorKind, WriteFailure};
use mongodb::options::IndexOptions;
use mongodb::{Collection, IndexModel};
use sqlx::MySqlPool;
use tokio_util::sync::CancellationToken;

use crate::events::{self, PostEvent, PostView};
use crate::worker::ride_out;

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
}

fn mongo(action: &'static str) -> impl FnOnce(mongodb::error::Error) -> InboxError {
    move |source| InboxError::Mongo { action, source }
}

/// The inbox collections; cheap to clone.
#[derive(Clone)]
pub struct InboxStore {
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

    /// The stored version of a post (its state document), if any.
    pub async fn version(&self, post: u64) -> Result<Option<i64>, InboxError> {
        let state = self
            .posts
            .find_one(doc! {"_id": post as i64})
            .await
            .map_err(mongo("read a post's state"))?;
        Ok(state.and_then(|d| d.get_i64("version").ok()))
    }

    /// Applies one event for the given followers of its author. Returns false when it was older
    /// than what the inbox holds (ignored).
    pub async fn apply(&self, event: &PostEvent, followers: &[u64]) -> Result<bool, InboxError> {
        let post = &event.payload;
        let post_id = post.id as i64;
        let v = event.version;
        if self.version(post.id).await?.is_some_and(|have| have > v) {
            return Ok(false);
        }
        let deleted = match event.event_type {
            EventType::Deleted => {
                self.inbox
                    .delete_many(doc! {"postId": post_id})
                    .await
                    .map_err(mongo("remove a post from inboxes"))?;
                true
            }
            EventType::Created | EventType::Updated => {
                let fields = post_fields(post);
                self.inbox
                    .update_many(
                        doc! {"postId": post_id, "version": {"$lt": v}},
                        doc! {"$set": fields.clone()},
                    )
                    .await
                    .map_err(mongo("update inbox entries"))?;
                let existing: HashSet<i64> = self
                    .inbox
                    .find(doc! {"postId": post_id})
                    .projection(doc! {"followerId": 1})
                    .await
                    .map_err(mongo("read inbox entries"))?
                    .try_collect::<Vec<Document>>()
                    .await
                    .map_err(mongo("read inbox entries"))?
                    .iter()
                    .filter_map(|d| d.get_i64("followerId").ok())
                    .collect();
                let missing: Vec<Document> = followers
                    .iter()
                    .map(|&f| f as i64)
                    .filter(|f| !existing.contains(f))
                    .map(|f| {
                        let mut d = doc! {"_id": format!("{f}:{post_id}"), "followerId": f};
                        d.extend(fields.clone());
                        d
                    })
                    .collect();
                if !missing.is_empty() {
                    match self.inbox.insert_many(missing).ordered(false).await {
                        Ok(_) => {}
                        Err(e) if is_duplicate(&e) => {}
                        Err(e) => return Err(mongo("add inbox entries")(e)),
                    }
                }
                false
            }
        };
        let state = self
            .posts
            .update_one(
                doc! {"_id": post_id, "version": {"$lt": v}},
                doc! {"$set": {"version": v, "deleted": deleted}},
            )
            .upsert(true)
            .await;
        match state {
            Ok(_) => Ok(true),
            // A newer state arrived meanwhile: ours is older, which is fine.
            Err(e) if is_duplicate(&e) => Ok(true),
            Err(e) => Err(mongo("record a post's state")(e)),
        }
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

/// Whether every failure in `e` is a duplicate key (an entry or state someone else wrote).
fn is_duplicate(e: &mongodb::error::Error) -> bool {
    const DUPLICATE_KEY: i32 = 11000;
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

/// The followers of `user`, from MySQL.
pub async fn followers(pool: &MySqlPool, user: u64) -> Result<Vec<u64>, InboxError> {
    sqlx::query_scalar("SELECT follower_id FROM follows WHERE followee_id = ?")
        .bind(user)
        .fetch_all(pool)
        .await
        .map_err(InboxError::Followers)
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
            Self::Mongo { source, .. } => matches!(
                source.kind.as_ref(),
                ErrorKind::Io(_)
                    | ErrorKind::ConnectionPoolCleared { .. }
                    | ErrorKind::ServerSelection { .. }
            ),
            Self::Followers(e) => matches!(
                e,
                sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed
            ),
            Self::Decode(_) => false,
        }
    }
}

#[async_trait]
impl Handler for InboxHandler {
    async fn handle(&self, record: &Record) -> Result<(), HandleError> {
        let event = events::decode(record)?;
        let applied = ride_out(&self.shutdown, "mongodb", InboxError::is_outage, || async {
            let followers = match event.event_type {
                EventType::Deleted => Vec::new(),
                _ => followers(&self.pool, event.payload.user_id).await?,
            };
            self.store.apply(&event, &followers).await
        })
        .await
        .map_err(HandleError::transient)?;
        if !applied {
            tracing::debug!(
                post = event.payload.id,
                version = event.version,
                "older version; ignored"
            );
        }
        Ok(())
    }
}
