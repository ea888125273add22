//! The events of the content platform and the post as every read model sees it.
//!
//! Both topics carry a campus [`Envelope`] keyed by the post id, with the post's `version` (one
//! more per change, incremented in the same UPDATE). The payload is always the resolved post
//! ([`PostView`]); on `post.inspected` it also carries the inspector's `tags`.

use std::collections::HashMap;

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

/// One outcome per event when a batch's write failed as a whole: each a transient error with
/// the cause, so the runtime retries the records one by one.
pub fn failed_together(
    events: usize,
    error: impl std::fmt::Display,
) -> Vec<Result<(), HandleError>> {
    let message = format!("{error:#}");
    (0..events)
        .map(|_| Err(HandleError::transient(anyhow::anyhow!("{message}"))))
        .collect()
}

/// Records of one partition handled together: decoded, with the newest event of each post picked
/// out. Applying only those leaves every projection as applying all of them in order would,
/// since each ignores versions older than what it holds.
pub struct Batch {
    /// Per record: its event, or why it does not decode (poison, dead-lettered on its own).
    decoded: Vec<Result<PostEvent, HandleError>>,
    /// Indexes of the records holding the newest event of their post, in record order.
    newest: Vec<usize>,
    /// Per decoded record: the index of the newest record of its post (itself if it is that one).
    newest_of: Vec<usize>,
}

impl Batch {
    pub fn decode(records: &[Record]) -> Self {
        let decoded: Vec<Result<PostEvent, HandleError>> = records.iter().map(decode).collect();
        let mut newest_by_post: HashMap<u64, usize> = HashMap::new();
        for (i, e) in decoded.iter().enumerate() {
            if let Ok(e) = e {
                let slot = newest_by_post.entry(e.payload.id).or_insert(i);
                // On a tie (the same version twice) the later record stands for both.
                if version_at(&decoded, *slot) <= e.version {
                    *slot = i;
                }
            }
        }
        let newest_of = decoded
            .iter()
            .enumerate()
            .map(|(i, e)| match e {
                Ok(e) => newest_by_post[&e.payload.id],
                Err(_) => i,
            })
            .collect();
        let mut newest: Vec<usize> = newest_by_post.into_values().collect();
        newest.sort_unstable();
        Self {
            decoded,
            newest,
            newest_of,
        }
    }

    /// The newest event of each post, in record order.
    pub fn events(&self) -> Vec<&PostEvent> {
        self.newest
            .iter()
            .filter_map(|&i| self.decoded[i].as_ref().ok())
            .collect()
    }

    /// One result per record, from one outcome per [`Batch::events`]. A record superseded by a
    /// newer one of its post is done when that one is; when that one failed, the older record is
    /// handed back to be retried on its own (before the newer, which comes later), so the
    /// projection goes through the same versions as one-by-one handling would.
    pub fn results(self, outcomes: Vec<Result<(), HandleError>>) -> Vec<Result<(), HandleError>> {
        debug_assert_eq!(outcomes.len(), self.newest.len());
        let mut by_record: HashMap<usize, Result<(), HandleError>> =
            self.newest.iter().copied().zip(outcomes).collect();
        let newest_ok: HashMap<usize, bool> =
            by_record.iter().map(|(i, r)| (*i, r.is_ok())).collect();
        self.decoded
            .into_iter()
            .enumerate()
            .map(|(i, e)| {
                let event = e?;
                let newest = self.newest_of[i];
                if newest == i {
                    by_record.remove(&i).unwrap_or(Ok(()))
                } else if newest_ok.get(&newest).copied().unwrap_or(false) {
                    Ok(())
                } else {
                    Err(HandleError::transient(anyhow::anyhow!(
                        "post {} version {}: a newer version in the same batch failed, so this one is retried on its own",
                        event.payload.id,
                        event.version
                    )))
                }
            })
            .collect()
    }
}

fn version_at(decoded: &[Result<PostEvent, HandleError>], i: usize) -> i64 {
    decoded[i].as_ref().map(|e| e.version).unwrap_or(i64::MIN)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(offset: i64, event_type: EventType, id: u64, version: i64) -> Record {
        let post = PostView {
            id,
            title: "t".into(),
            content: "c".into(),
            user_id: 1,
            user_name: "u".into(),
            category_id: 1,
            category_name: "General".into(),
            tags: Some(vec![]),
            created_at: Utc::now(),
            updated_at: Utc::now(),
            version,
        };
        Record {
            topic: "t".into(),
            partition: 0,
            offset,
            key: Some(id.to_string().into_bytes()),
            payload: Some(serde_json::to_vec(&event(event_type, post)).unwrap()),
            headers: vec![],
            timestamp_ms: None,
        }
    }

    fn poison(offset: i64) -> Record {
        Record {
            payload: Some(b"not json".to_vec()),
            ..record(offset, EventType::Created, 9, 1)
        }
    }

    fn picked(b: &Batch) -> Vec<(u64, i64)> {
        b.events()
            .iter()
            .map(|e| (e.payload.id, e.version))
            .collect()
    }

    #[test]
    fn picks_the_newest_version_of_each_post_in_record_order() {
        let b = Batch::decode(&[
            record(0, EventType::Created, 1, 1),
            record(1, EventType::Updated, 2, 2),
            record(2, EventType::Updated, 1, 2),
            poison(3),
            record(4, EventType::Deleted, 1, 3),
            // Older than what came before it (a replay in reverse): not picked.
            record(5, EventType::Created, 2, 1),
        ]);
        assert_eq!(picked(&b), [(2, 2), (1, 3)]);
    }

    #[test]
    fn a_poison_record_fails_alone() {
        let b = Batch::decode(&[
            record(0, EventType::Created, 1, 1),
            poison(1),
            record(2, EventType::Created, 2, 1),
        ]);
        assert_eq!(picked(&b), [(1, 1), (2, 1)]);
        let r = b.results(vec![Ok(()), Ok(())]);
        assert!(r[0].is_ok() && r[2].is_ok());
        assert!(matches!(r[1], Err(HandleError::Permanent(_))));
    }

    #[test]
    fn superseded_records_follow_the_newest_one() {
        let records = [
            record(0, EventType::Created, 1, 1),
            record(1, EventType::Updated, 1, 2),
            record(2, EventType::Created, 2, 1),
            record(3, EventType::Updated, 2, 2),
        ];
        let b = Batch::decode(&records);
        assert_eq!(picked(&b), [(1, 2), (2, 2)]);
        // Post 1's newest failed: its older record is handed back first, to be retried alone.
        let r = b.results(vec![
            Err(HandleError::permanent(anyhow::anyhow!("rejected"))),
            Ok(()),
        ]);
        assert!(matches!(r[0], Err(HandleError::Transient(_))));
        assert!(matches!(r[1], Err(HandleError::Permanent(_))));
        assert!(r[2].is_ok() && r[3].is_ok());
    }

    #[test]
    fn the_same_version_twice_is_one_event() {
        let b = Batch::decode(&[
            record(0, EventType::Created, 1, 1),
            record(1, EventType::Created, 1, 1),
        ]);
        assert_eq!(picked(&b), [(1, 1)]);
        assert!(b.results(vec![Ok(())]).iter().all(Result::is_ok));
    }
}
