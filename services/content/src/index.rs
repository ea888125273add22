//! The Elasticsearch search index: documents behind an alias (`posts` → `posts-v1`), created with
//! an explicit, strict mapping by the index worker at start-up; built from `post.inspected`.
//!
//! Writes use external versioning (`version_type=external` with the post's version), so Elasticsearch
//! itself rejects an older or equal version. A deleted post becomes a tombstone document
//! (`deleted: true`, no text) at its version, so a replay of older events cannot bring it back;
//! search filters tombstones out. Writes go through the alias with `require_alias`, so nothing ever
//! auto-creates an index.
//!
//! The worker takes a partition's queued records as one batch and writes the newest event of each
//! post in one `_bulk` request with `refresh=wait_for`: when it answers (and the offset is stored)
//! the posts are searchable. Elasticsearch and OpenSearch answer such a request at the next
//! scheduled refresh (`refresh_interval`, 200 ms here), so a batch costs at most that much.

use std::sync::Arc;

use async_trait::async_trait;
use campus_common::envelope::EventType;
use campus_common::kafka::{HandleError, Handler, Record};
use elasticsearch::http::StatusCode;
use elasticsearch::http::headers::{CONTENT_TYPE, HeaderValue};
use elasticsearch::http::request::JsonBody;
use elasticsearch::indices::{IndicesCreateParts, IndicesGetAliasParts};
use elasticsearch::params::Refresh;
use elasticsearch::{BulkParts, Elasticsearch, SearchParts};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::config::PostsIndexArgs;
use crate::events::{self, Batch, PostEvent, PostView};

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("failed to {action}: {source}")]
    Transport {
        action: &'static str,
        #[source]
        source: elasticsearch::Error,
    },
    #[error("failed to {action}: Elasticsearch answered {status}: {body}")]
    Status {
        action: &'static str,
        status: u16,
        body: String,
    },
    #[error(
        "failed to search: the index alias {0} does not exist yet (the index worker creates it)"
    )]
    Missing(String),
    /// The client could not be built (a bad URL).
    #[error("{0}")]
    Url(String),
    #[error("failed to read a search hit: {0}")]
    Decode(String),
}

/// The mapping of `posts-v1`. `dynamic: strict` rejects any field not listed here.
pub fn mapping() -> Value {
    json!({
        "settings": {"number_of_shards": 1, "refresh_interval": "200ms"},
        "mappings": {
            "dynamic": "strict",
            "properties": {
                "postId": {"type": "long"},
                "title": {"type": "text"},
                "content": {"type": "text"},
                "userId": {"type": "long"},
                "userName": {"type": "keyword"},
                "categoryId": {"type": "long"},
                "categoryName": {"type": "text", "fields": {"raw": {"type": "keyword"}}},
                "tags": {"type": "keyword"},
                "createdAt": {"type": "date"},
                "updatedAt": {"type": "date"},
                "version": {"type": "long"},
                "deleted": {"type": "boolean"}
            }
        }
    })
}

/// The search index; cheap to clone. Its client is the platform's one
/// ([`campus_common::search::client`]), as the log service's.
#[derive(Clone)]
pub struct SearchIndex {
    client: Elasticsearch,
    alias: Arc<str>,
    index: Arc<str>,
}

impl SearchIndex {
    pub fn new(args: &PostsIndexArgs) -> Result<Self, IndexError> {
        let client = campus_common::search::client(&args.es.es_url, args.timeout())
            .map_err(|e| IndexError::Url(e.to_string()))?;
        Ok(Self {
            client,
            alias: args.alias.as_str().into(),
            index: args.index.as_str().into(),
        })
    }

    pub fn alias(&self) -> &str {
        &self.alias
    }

    /// Creates the index with its mapping and points the alias at it, unless the alias exists.
    pub async fn ensure(&self) -> Result<(), IndexError> {
        let action = "check the index alias";
        let res = self
            .client
            .indices()
            .get_alias(IndicesGetAliasParts::Name(&[&self.alias]))
            .send()
            .await
            .map_err(|source| IndexError::Transport { action, source })?;
        if res.status_code().is_success() {
            return Ok(());
        }
        let action = "create the posts index";
        let res = self
            .client
            .indices()
            .create(IndicesCreateParts::Index(&self.index))
            .body(mapping())
            .send()
            .await
            .map_err(|source| IndexError::Transport { action, source })?;
        let status = res.status_code();
        if !status.is_success() {
            let body = res.text().await.unwrap_or_default();
            if !body.contains("resource_already_exists_exception") {
                return Err(IndexError::Status {
                    action,
                    status: status.as_u16(),
                    body,
                });
            }
        }
        let action = "create the index alias";
        let res = self
            .client
            .indices()
            .update_aliases()
            .body(json!({"actions": [{"add": {"index": &*self.index, "alias": &*self.alias, "is_write_index": true}}]}))
            .send()
            .await
            .map_err(|source| IndexError::Transport { action, source })?;
        check(action, res).await?;
        tracing::info!(index = %self.index, alias = %self.alias, "search index ready");
        Ok(())
    }

    /// Writes one event. Returns false when Elasticsearch holds this version or a newer one.
    pub async fn apply(&self, event: &PostEvent) -> Result<bool, IndexError> {
        self.apply_all(&[event])
            .await?
            .pop()
            .unwrap_or_else(|| Err(IndexError::Decode("no item in the bulk answer".into())))
    }

    /// Writes events in one `_bulk` request and waits until they are searchable
    /// (`refresh=wait_for`). The outer error is the request's; otherwise one result per event, in
    /// order: true when written, false when Elasticsearch holds that version or a newer one.
    ///
    /// The target goes in each action (`_index` with `require_alias`) rather than in the path;
    /// Elasticsearch and OpenSearch take both forms, and each action then says on its own where it
    /// goes.
    pub async fn apply_all(
        &self,
        events: &[&PostEvent],
    ) -> Result<Vec<Result<bool, IndexError>>, IndexError> {
        let mut body: Vec<JsonBody<Value>> = Vec::with_capacity(events.len() * 2);
        for event in events {
            let post = &event.payload;
            body.push(
                json!({"index": {
                    "_index": &*self.alias,
                    "_id": post.id.to_string(),
                    "version": event.version,
                    "version_type": "external",
                    "require_alias": true,
                }})
                .into(),
            );
            body.push(
                match event.event_type {
                    EventType::Created | EventType::Updated => document(post),
                    EventType::Deleted => {
                        json!({"postId": post.id, "version": event.version, "deleted": true})
                    }
                }
                .into(),
            );
        }
        let action = "index posts";
        let res = self
            .client
            .bulk(BulkParts::None)
            .header(
                CONTENT_TYPE,
                HeaderValue::from_static(campus_common::search::NDJSON),
            )
            .refresh(Refresh::WaitFor)
            .filter_path(&["items.*.status", "items.*.error"])
            .body(body)
            .send()
            .await
            .map_err(|source| IndexError::Transport { action, source })?;
        let answer = check(action, res).await?;
        let items = answer["items"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default();
        if items.len() != events.len() {
            return Err(IndexError::Decode(format!(
                "the bulk answer has {} items for {} actions",
                items.len(),
                events.len()
            )));
        }
        Ok(items.iter().map(item_result).collect())
    }

    /// Posts matching `keyword` in title, content, tags or category; best match first, then newest.
    pub async fn search(
        &self,
        keyword: &str,
        page: u32,
        size: u32,
    ) -> Result<Vec<PostView>, IndexError> {
        let action = "search";
        let res = self
            .client
            .search(SearchParts::Index(&[&self.alias]))
            .body(query(keyword, page, size))
            .send()
            .await
            .map_err(|source| IndexError::Transport { action, source })?;
        if res.status_code() == StatusCode::NOT_FOUND {
            return Err(IndexError::Missing(self.alias.to_string()));
        }
        let body = check(action, res).await?;
        body["hits"]["hits"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .map(|h| from_source(&h["_source"]))
            .collect()
    }

    /// A readiness check.
    pub async fn ping(&self) -> Result<(), String> {
        match self.client.ping().send().await {
            Ok(r) if r.status_code().is_success() => Ok(()),
            Ok(r) => Err(format!("elasticsearch: {}", r.status_code())),
            Err(e) => Err(format!("elasticsearch: {e}")),
        }
    }
}

async fn check(
    action: &'static str,
    res: elasticsearch::http::response::Response,
) -> Result<Value, IndexError> {
    let status = res.status_code();
    if status.is_success() {
        return res
            .json::<Value>()
            .await
            .map_err(|source| IndexError::Transport { action, source });
    }
    let body = res.text().await.unwrap_or_default();
    Err(IndexError::Status {
        action,
        status: status.as_u16(),
        body: body.chars().take(500).collect(),
    })
}

/// One item of a bulk answer (`{"index": {"status": .., "error": ..}}`).
fn item_result(item: &Value) -> Result<bool, IndexError> {
    let item = &item["index"];
    let status = item["status"].as_u64().unwrap_or(0) as u16;
    match status {
        200..=299 => Ok(true),
        409 => Ok(false),
        _ => Err(IndexError::Status {
            action: "index a post",
            status,
            body: item["error"].to_string().chars().take(500).collect(),
        }),
    }
}

fn document(post: &PostView) -> Value {
    json!({
        "postId": post.id,
        "title": post.title,
        "content": post.content,
        "userId": post.user_id,
        "userName": post.user_name,
        "categoryId": post.category_id,
        "categoryName": post.category_name,
        "tags": post.tags.clone().unwrap_or_default(),
        "createdAt": post.created_at,
        "updatedAt": post.updated_at,
        "version": post.version,
        "deleted": false,
    })
}

fn from_source(s: &Value) -> Result<PostView, IndexError> {
    let mut s = s.clone();
    if let Some(o) = s.as_object_mut() {
        o.remove("deleted");
        if let Some(id) = o.remove("postId") {
            o.insert("id".to_owned(), id);
        }
    }
    serde_json::from_value(s).map_err(|e| IndexError::Decode(e.to_string()))
}

/// The search request: a `multi_match` over title, content, category and tags, plus exact
/// matches on a tag or a category name; tombstones filtered out.
pub fn query(keyword: &str, page: u32, size: u32) -> Value {
    json!({
        "from": u64::from(page) * u64::from(size),
        "size": size,
        "query": {"bool": {
            "filter": [{"term": {"deleted": false}}],
            "should": [
                {"multi_match": {"query": keyword, "fields": ["title^3", "content", "categoryName^2", "tags^2"]}},
                {"term": {"tags": {"value": keyword.to_lowercase(), "boost": 2.0}}},
                {"term": {"categoryName.raw": {"value": keyword}}}
            ],
            "minimum_should_match": 1
        }},
        "sort": ["_score", {"createdAt": "desc"}, {"postId": "desc"}]
    })
}

/// The `index` consumer group: `post.inspected` → Elasticsearch.
pub struct IndexHandler {
    index: SearchIndex,
    shutdown: CancellationToken,
}

impl IndexHandler {
    /// `shutdown` ends the wait while Elasticsearch is down.
    pub fn new(index: SearchIndex, shutdown: CancellationToken) -> Arc<Self> {
        Arc::new(Self { index, shutdown })
    }
}

impl IndexError {
    /// Whether the write may succeed later without anyone touching the record: Elasticsearch is
    /// unreachable, overloaded (429, 5xx, per request or per item), blocked by a `cluster_block_exception`
    /// (the read-only block a full disk sets: 429 on Elasticsearch 7.4+ and OpenSearch, 403 before,
    /// and `index.blocks.write`), or the alias is gone (404; the worker recreates it). Retried until
    /// it succeeds.
    pub fn is_outage(&self) -> bool {
        match self {
            Self::Transport { .. } => true,
            Self::Status { status, body, .. } => {
                *status == 429
                    || *status >= 500
                    || body.contains("cluster_block_exception")
                    || self.alias_missing()
            }
            _ => false,
        }
    }

    /// Whether the write found no index behind the alias (`require_alias`).
    pub fn alias_missing(&self) -> bool {
        matches!(self, Self::Status { status: 404, body, .. } if body.contains("index_not_found_exception"))
    }
}

impl IndexHandler {
    /// Writes `events` in `_bulk` requests until each item is written or refused for good: the
    /// request and each item that fails with an outage ([`IndexError::is_outage`]) are retried with
    /// backoff (only those items), the alias recreated when it is gone, until `shutdown` (then the
    /// items left fail, and the consumer runtime leaves their records for the next owner).
    async fn write(
        &self,
        events: &[&PostEvent],
    ) -> Result<Vec<Result<bool, IndexError>>, IndexError> {
        let mut results: Vec<Option<Result<bool, IndexError>>> =
            events.iter().map(|_| None).collect();
        let mut todo: Vec<usize> = (0..events.len()).collect();
        let mut attempt = 0u32;
        while !todo.is_empty() {
            let batch: Vec<&PostEvent> = todo.iter().map(|&i| events[i]).collect();
            let mut again = Vec::new();
            let mut last: Option<IndexError> = None;
            match self.index.apply_all(&batch).await {
                Ok(items) => {
                    for (&i, r) in todo.iter().zip(items) {
                        match r {
                            Err(e) if e.is_outage() => {
                                again.push(i);
                                last = Some(e);
                            }
                            r => results[i] = Some(r),
                        }
                    }
                }
                Err(e) if e.is_outage() => {
                    again = todo.clone();
                    last = Some(e);
                }
                Err(e) => return Err(e),
            }
            todo = again;
            let Some(error) = last else { break };
            if self.shutdown.is_cancelled() {
                let message = error.to_string();
                for &i in &todo {
                    results[i] = Some(Err(IndexError::Decode(format!(
                        "shutdown while waiting: {message}"
                    ))));
                }
                break;
            }
            attempt += 1;
            if attempt == 1 || attempt.is_multiple_of(20) {
                tracing::warn!(
                    dependency = "elasticsearch", attempt, items = todo.len(), error = %error,
                    "writes refused for now (unreachable, overloaded, read-only or no alias); waiting"
                );
            }
            if error.alias_missing() {
                match self.index.ensure().await {
                    Ok(()) => {
                        tracing::warn!(alias = %self.index.alias(), "the index alias was gone; recreated it")
                    }
                    Err(e) => tracing::warn!(error = %e, "could not recreate the index alias"),
                }
            }
            tokio::select! {
                _ = self.shutdown.cancelled() => {}
                _ = tokio::time::sleep(campus_common::retry::OUTAGE.delay(attempt)) => {}
            }
        }
        if attempt > 0 {
            tracing::info!(
                dependency = "elasticsearch",
                attempts = attempt + 1,
                "writes accepted again"
            );
        }
        Ok(results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(IndexError::Decode("no result".into()))))
            .collect())
    }
}

/// Records of one partition written in one `_bulk` request.
pub const BATCH_SIZE: usize = 128;

/// What a write's result means for its record.
fn outcome(event: &PostEvent, applied: Result<bool, IndexError>) -> Result<(), HandleError> {
    match applied {
        Ok(true) => Ok(()),
        Ok(false) => {
            tracing::debug!(
                post = event.payload.id,
                version = event.version,
                "older or same version; ignored"
            );
            Ok(())
        }
        // A mapping rejection will not heal by itself; anything else (down, timeout) may.
        Err(IndexError::Status {
            status: 400, body, ..
        }) => Err(HandleError::permanent(anyhow::anyhow!(
            "Elasticsearch rejected the document: {body}"
        ))),
        Err(e) => Err(HandleError::transient(e)),
    }
}

#[async_trait]
impl Handler for IndexHandler {
    async fn handle(&self, record: &Record) -> Result<(), HandleError> {
        let event = events::decode(record)?;
        let applied = match self.write(&[&event]).await {
            Ok(mut items) => items
                .pop()
                .unwrap_or_else(|| Err(IndexError::Decode("no item in the bulk answer".into()))),
            Err(e) => Err(e),
        };
        outcome(&event, applied)
    }

    fn batch_size(&self) -> usize {
        BATCH_SIZE
    }

    /// The newest event of each post in the batch, in one `_bulk` request; an item Elasticsearch
    /// refuses for good fails only its own record.
    async fn handle_batch(&self, records: &[Record]) -> Vec<Result<(), HandleError>> {
        let batch = Batch::decode(records);
        let events = batch.events();
        let outcomes = if events.is_empty() {
            Vec::new()
        } else {
            match self.write(&events).await {
                Ok(items) => events
                    .iter()
                    .zip(items)
                    .map(|(e, r)| outcome(e, r))
                    .collect(),
                // The request was refused as a whole: each record is retried on its own.
                Err(e) => events::failed_together(events.len(), e),
            }
        };
        drop(events);
        batch.results(outcomes)
    }
}
