//! The events of the content platform and the post as every read model sees it.
//!
//! Both topics carry a campus [`Envelope`] keyed by the post id, with the post's `version` (one
//! more per change, incremented in the same UPDATE). The payload is always the resolved post
//! ([`PostView`]); on `post.inspected` it also carries the inspector's `tags`.

use campus_common::envelope::{Envelope, EventType};
use campus_common::kafka::{HandleError, Record};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A post with its author's and category's names resolved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PostView {
    pub id: u64,
    pub title: String,
    pub content: String,
    pub user_id: u64,
    pub user_name: String,
    pub category_id: u64,
    pub category_name: String,
    /// Up to 5 tags from the inspector (only on `post.inspected` and the read models built from it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<String>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Monotonic per post: 1 on create, one more per update or delete.
    pub version: i64,
}

/// An event about a post.
pub type PostEvent = Envelope<PostView>;

/// Decodes a post event; anything that does not decode, or whose key disagrees with the payload,
/// is poison and goes to the dead-letter topic.
pub fn decode(record: &Record) -> Result<PostEvent, HandleError> {
    let event: PostEvent = record.json()?;
    if event.key != event.payload.id.to_string() || event.version != event.payload.version {
        return Err(HandleError::permanent(anyhow::anyhow!(
            "event key {} / version {} disagree with its payload (id {}, version {})",
            event.key,
            event.version,
            event.payload.id,
            event.payload.version
        )));
    }
    Ok(event)
}

/// A new event for `post` (version and key taken from it).
pub fn event(event_type: EventType, post: PostView) -> PostEvent {
    Envelope::new(event_type, post.id.to_string(), post.version, post)
}
