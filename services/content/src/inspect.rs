//! The AI inspector: `post.original` → OpenAI chat completions → `post.inspected`.
//!
//! The model answers `{"status": "GOOD"|"BAD", "tags": [...]}` through JSON structured output
//! (`response_format: json_schema`, strict), temperature 0, with a timeout; `async-openai` retries
//! 429, 5xx and connection errors a few times itself. Past that, the inspector **waits out** an
//! outage (timeouts, connection errors, 408/409/429/5xx) and a refused deployment (401/403/404 or no
//! quota: logged as errors, counted in `content_inspector_failures{kind="misconfigured"}`) with
//! backoff, the post staying in line; nothing is dead-lettered for it. Only a post that can never
//! be inspected is poison and goes to the dead-letter topic: a reply that cannot be used (not JSON,
//! wrong shape, refusal) or a request the API rejects as such (400, 413, 422).
//!
//! Results: GOOD → `created`/`updated` on `post.inspected` with up to 5 tags; BAD (create or
//! update) → the verdict is stored on the row (`posts.rejected_version`, so the API's MySQL
//! fallback answers 404) and `deleted` is published (the cache holds a tombstone, the post leaves
//! search and inboxes); `deleted` on `post.original` → `deleted`, without a model call.
//!
//! **Offline policy** (no `OPENAI_API_KEY`): a post is BAD when its title or content contains a
//! word of [`OFFLINE_BLOCKLIST`], otherwise GOOD with up to 5 tags: the distinct words of its title
//! with at least 3 letters, lowercased, in order, that are not [`STOPWORDS`].

use std::sync::Arc;
use std::time::Duration;

use async_openai::Client;
use async_openai::config::OpenAIConfig;
use async_openai::error::OpenAIError;
use async_openai::types::chat::{
    ChatCompletionRequestSystemMessage, ChatCompletionRequestUserMessage,
    CreateChatCompletionRequestArgs, ResponseFormat, ResponseFormatJsonSchema,
};
use async_trait::async_trait;
use campus_common::envelope::{Envelope, EventType};
use campus_common::http::REQUEST_ID;
use campus_common::kafka::{HandleError, Handler, Producer, Record};
use campus_common::retry::{self, ride_out};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde::Deserialize;
use serde_json::json;
use sqlx::MySqlPool;
use tokio_util::sync::CancellationToken;

use crate::config::OpenAiArgs;
use crate::events::{self, PostView};

/// Words that make a post BAD under the offline policy.
pub const OFFLINE_BLOCKLIST: &[&str] = &[
    "spam", "scam", "casino", "viagra", "porn", "hate", "kill", "fraud", "phishing",
];

/// Words never used as tags by the offline policy.
pub const STOPWORDS: &[&str] = &[
    "the", "and", "for", "with", "that", "this", "from", "are", "was", "were", "have", "has",
    "not", "but", "you", "your", "our", "its", "about", "into", "over", "how", "why", "what",
];

const SYSTEM_PROMPT: &str = "You moderate posts on a campus community board. \
Reply with JSON only: {\"status\": \"GOOD\" or \"BAD\", \"tags\": [...]}. \
BAD means spam, scams, hate, harassment, violence, sexual content or illegal content; \
everything else is GOOD. tags: up to 5 short lowercase topic tags for search (empty when BAD).";

/// The moderation result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Good { tags: Vec<String> },
    Bad,
}

#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    #[error("failed to get an answer from the model within {0:?}")]
    Timeout(Duration),
    #[error("failed to call the model")]
    Api(#[source] OpenAIError),
    #[error("failed to use the model's reply: {0}")]
    Reply(String),
}

/// What a failed model call means for the post being inspected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The model is unreachable, slow, rate limited or failing (timeouts, connection errors, 408,
    /// 409, 429, 5xx): waited out, the post stays in line.
    Outage,
    /// The API refuses this deployment (401, 403, 404: a wrong key, project or model, or 429 with
    /// no quota): logged as an error and counted, and waited out too — a fixed key or model lets
    /// the posts through; dead-lettering would lose every post until then.
    Misconfigured,
    /// This post can never be inspected: the reply cannot be used (not JSON, wrong shape,
    /// refusal), or the API rejects this request as such (400, 413, 422). Dead-lettered.
    Poison,
}

impl InspectError {
    /// How to treat this failure (see [`Failure`]).
    pub fn failure(&self) -> Failure {
        match self {
            Self::Timeout(_) => Failure::Outage,
            Self::Api(OpenAIError::ApiError(e)) => {
                let quota = e.api_error.code.as_deref() == Some("insufficient_quota")
                    || e.api_error.r#type.as_deref() == Some("insufficient_quota");
                match e.status_code.as_u16() {
                    429 if quota => Failure::Misconfigured,
                    408 | 409 | 429 | 500.. => Failure::Outage,
                    401 | 403 | 404 => Failure::Misconfigured,
                    _ => Failure::Poison,
                }
            }
            Self::Api(OpenAIError::Reqwest(_)) => Failure::Outage,
            Self::Api(_) => Failure::Poison,
            Self::Reply(_) => Failure::Poison,
        }
    }

    /// Whether trying again later may help (everything but [`Failure::Poison`]).
    pub fn is_transient(&self) -> bool {
        self.failure() != Failure::Poison
    }

    fn status(&self) -> Option<u16> {
        match self {
            Self::Api(OpenAIError::ApiError(e)) => Some(e.status_code.as_u16()),
            _ => None,
        }
    }
}

/// The reply the model must give.
#[derive(Debug, Deserialize)]
struct Reply {
    status: String,
    #[serde(default)]
    tags: Vec<String>,
}

/// Calls the model, or applies the offline policy.
#[allow(clippy::large_enum_variant, reason = "one per process")]
pub enum Inspector {
    OpenAi {
        client: Client<OpenAIConfig>,
        model: String,
        timeout: Duration,
    },
    Offline,
}

impl Inspector {
    pub fn new(args: &OpenAiArgs) -> Self {
        match args.key() {
            Some(key) => {
                let config = OpenAIConfig::new()
                    .with_api_base(args.base_url.trim_end_matches('/'))
                    .with_api_key(key);
                Self::OpenAi {
                    client: Client::with_config(config),
                    model: args.model.clone(),
                    timeout: args.openai_timeout,
                }
            }
            None => Self::Offline,
        }
    }

    pub fn is_offline(&self) -> bool {
        matches!(self, Self::Offline)
    }

    pub async fn inspect(&self, post: &PostView) -> Result<Verdict, InspectError> {
        match self {
            Self::Offline => Ok(offline_verdict(post)),
            Self::OpenAi {
                client,
                model,
                timeout,
            } => {
                let request = CreateChatCompletionRequestArgs::default()
                    .model(model.as_str())
                    .temperature(0.0)
                    .max_completion_tokens(200u32)
                    .response_format(ResponseFormat::JsonSchema {
                        json_schema: ResponseFormatJsonSchema {
                            description: Some("Moderation verdict and search tags".to_owned()),
                            name: "inspection".to_owned(),
                            schema: reply_schema(),
                            strict: Some(true),
                        },
                    })
                    .messages(vec![
                        ChatCompletionRequestSystemMessage::from(SYSTEM_PROMPT).into(),
                        ChatCompletionRequestUserMessage::from(
                            format!(
                                "Title: {}\nCategory: {}\nContent:\n{}",
                                post.title, post.category_name, post.content
                            )
                            .as_str(),
                        )
                        .into(),
                    ])
                    .build()
                    .map_err(InspectError::Api)?;
                let response = tokio::time::timeout(*timeout, client.chat().create(request))
                    .await
                    .map_err(|_| InspectError::Timeout(*timeout))?
                    .map_err(InspectError::Api)?;
                let choice = response
                    .choices
                    .first()
                    .ok_or_else(|| InspectError::Reply("no choices".to_owned()))?;
                if let Some(refusal) = &choice.message.refusal {
                    return Err(InspectError::Reply(format!("the model refused: {refusal}")));
                }
                let content = choice
                    .message
                    .content
                    .as_deref()
                    .ok_or_else(|| InspectError::Reply("empty content".to_owned()))?;
                parse_reply(content)
            }
        }
    }
}

/// The JSON schema of the reply (structured output).
pub fn reply_schema() -> serde_json::Value {
    json!({
        "type": "object",
        "properties": {
            "status": {"type": "string", "enum": ["GOOD", "BAD"]},
            "tags": {"type": "array", "items": {"type": "string"}}
        },
        "required": ["status", "tags"],
        "additionalProperties": false
    })
}

/// Parses the model's reply into a verdict; tags are normalized (lowercase, trimmed, distinct, ≤ 5).
pub fn parse_reply(content: &str) -> Result<Verdict, InspectError> {
    let reply: Reply = serde_json::from_str(content.trim()).map_err(|e| {
        InspectError::Reply(format!(
            "not the expected JSON ({e}): {}",
            content.chars().take(200).collect::<String>()
        ))
    })?;
    match reply.status.trim().to_ascii_uppercase().as_str() {
        "GOOD" => Ok(Verdict::Good {
            tags: normalize_tags(reply.tags),
        }),
        "BAD" => Ok(Verdict::Bad),
        other => Err(InspectError::Reply(format!("unknown status {other:?}"))),
    }
}

fn normalize_tags(tags: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for t in tags {
        let t: String = t.trim().to_lowercase().chars().take(40).collect();
        if !t.is_empty() && !out.contains(&t) {
            out.push(t);
        }
        if out.len() == 5 {
            break;
        }
    }
    out
}

/// The offline policy (see the module documentation).
pub fn offline_verdict(post: &PostView) -> Verdict {
    let words = |s: &str| -> Vec<String> {
        s.split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .map(str::to_lowercase)
            .collect()
    };
    let text = words(&post.title)
        .into_iter()
        .chain(words(&post.content))
        .collect::<Vec<_>>();
    if text.iter().any(|w| OFFLINE_BLOCKLIST.contains(&w.as_str())) {
        return Verdict::Bad;
    }
    let tags = words(&post.title)
        .into_iter()
        .filter(|w| w.chars().count() >= 3 && !STOPWORDS.contains(&w.as_str()));
    Verdict::Good {
        tags: normalize_tags(tags),
    }
}

/// Inspector metrics.
#[derive(Clone, Default)]
pub struct InspectMetrics {
    verdicts: Family<Vec<(String, String)>, Counter>,
    offline: Gauge,
    /// Failed model calls by kind (`outage`, `misconfigured`, `poison`) and HTTP status.
    failures: Family<Vec<(String, String)>, Counter>,
    /// 1 while a post waits for the model (an outage or a refused key/model).
    waiting: Gauge,
}

impl InspectMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self::default();
        registry.register(
            "content_inspections",
            "Inspection results by verdict (good, bad)",
            m.verdicts.clone(),
        );
        registry.register(
            "content_inspector_offline",
            "1 when no OpenAI API key is set and the offline policy decides",
            m.offline.clone(),
        );
        registry.register(
            "content_inspector_failures",
            "Failed model calls by kind (outage, misconfigured, poison) and HTTP status",
            m.failures.clone(),
        );
        registry.register(
            "content_inspector_waiting",
            "1 while the inspector waits out a model outage or a refused key/model (alert on misconfigured failures)",
            m.waiting.clone(),
        );
        m
    }
}

/// The `inspection` consumer group.
pub struct InspectHandler {
    inspector: Inspector,
    producer: Producer,
    inspected_topic: String,
    metrics: InspectMetrics,
    /// The content database: a BAD verdict is stored on the post (`posts.rejected_version`), so the
    /// API never serves a rejected post from MySQL. `None` only in tests of the inspector alone.
    pool: Option<MySqlPool>,
    /// Ends the wait for the model (or MySQL) on shutdown.
    shutdown: CancellationToken,
}

impl InspectHandler {
    pub fn new(
        inspector: Inspector,
        producer: Producer,
        inspected_topic: String,
        metrics: InspectMetrics,
        pool: Option<MySqlPool>,
        shutdown: CancellationToken,
    ) -> Arc<Self> {
        if inspector.is_offline() {
            metrics.offline.set(1);
            tracing::warn!(
                "OPENAI_API_KEY is not set: inspecting with the offline policy (blocklist → BAD, title words → tags)"
            );
        }
        Arc::new(Self {
            inspector,
            producer,
            inspected_topic,
            metrics,
            pool,
            shutdown,
        })
    }

    /// Asks the model, waiting out outages and refused keys/models until it answers, the answer is
    /// poison, or shutdown comes (then the record is left for the next owner).
    async fn verdict(&self, post: &PostView) -> Result<Verdict, HandleError> {
        let result = ride_out(&self.shutdown, "openai", retry::OUTAGE,
            |e: &InspectError| e.failure() != Failure::Poison,
            || async {
                let r = self.inspector.inspect(post).await;
                match &r {
                    Ok(_) => {
                        self.metrics.waiting.set(0);
                    }
                    Err(e) => {
                        let kind = match e.failure() {
                            Failure::Outage => "outage",
                            Failure::Misconfigured => "misconfigured",
                            Failure::Poison => "poison",
                        };
                        let status = e.status().map(|s| s.to_string()).unwrap_or_default();
                        self.metrics
                            .failures
                            .get_or_create(&vec![
                                ("kind".to_owned(), kind.to_owned()),
                                ("status".to_owned(), status),
                            ])
                            .inc();
                        match e.failure() {
                            Failure::Misconfigured => {
                                self.metrics.waiting.set(1);
                                tracing::error!(
                                    post = post.id, error = %format!("{e:#}"),
                                    "the OpenAI API refuses this deployment (check OPENAI_API_KEY, the model name and the quota); posts wait until it is fixed"
                                );
                            }
                            Failure::Outage => {
                                self.metrics.waiting.set(1);
                            }
                            Failure::Poison => {}
                        }
                    }
                }
                r
            },
        )
        .await;
        result.map_err(|e| match e.failure() {
            Failure::Poison => HandleError::permanent(e),
            // Only on shutdown: the record is not stored and comes again.
            _ => HandleError::transient(e),
        })
    }

    /// Stores a BAD verdict on the post in MySQL (never lowering a later one), waiting out outages.
    async fn reject(&self, post: &PostView, version: i64) -> Result<(), HandleError> {
        let Some(pool) = &self.pool else {
            return Ok(());
        };
        ride_out(&self.shutdown, "mysql", retry::OUTAGE, |_: &sqlx::Error| true, || async {
            sqlx::query(
                "UPDATE posts SET rejected_version = ? WHERE id = ? AND (rejected_version IS NULL OR rejected_version < ?)",
            )
            .bind(version)
            .bind(post.id)
            .bind(version)
            .execute(pool)
            .await
        })
        .await
        .map(|_| ())
        .map_err(HandleError::transient)
    }

    async fn publish(
        &self,
        event_type: EventType,
        original: &Envelope<PostView>,
        post: PostView,
        record: &Record,
    ) -> Result<(), HandleError> {
        let mut event = events::event(event_type, post);
        event.occurred_at = original.occurred_at;
        let payload = serde_json::to_vec(&event).expect("event serializes");
        let mut headers: Vec<(&str, &[u8])> = vec![("event-type", event_type_name(event_type))];
        if let Some(rid) = record.header(REQUEST_ID.as_str()) {
            headers.push(("x-request-id", rid));
        }
        self.producer
            .send(
                &self.inspected_topic,
                event.key.as_bytes(),
                &payload,
                &headers,
            )
            .await
            .map_err(HandleError::transient)?;
        Ok(())
    }
}

fn event_type_name(t: EventType) -> &'static [u8] {
    match t {
        EventType::Created => b"created",
        EventType::Updated => b"updated",
        EventType::Deleted => b"deleted",
    }
}

#[async_trait]
impl Handler for InspectHandler {
    async fn handle(&self, record: &Record) -> Result<(), HandleError> {
        let event = events::decode(record)?;
        let post = event.payload.clone();
        if event.event_type == EventType::Deleted {
            return self.publish(EventType::Deleted, &event, post, record).await;
        }
        let verdict = self.verdict(&post).await?;
        let label = |v: &str| vec![("verdict".to_owned(), v.to_owned())];
        match verdict {
            Verdict::Good { tags } => {
                self.metrics.verdicts.get_or_create(&label("good")).inc();
                let post = PostView {
                    tags: Some(tags),
                    ..post
                };
                self.publish(event.event_type, &event, post, record).await
            }
            Verdict::Bad => {
                // The verdict is applied where the post is served: on the row (so the API's MySQL
                // fallback answers 404) and as `deleted` on `post.inspected` (so the cache holds a
                // tombstone at this version even if the API filled it from MySQL first, and the
                // post leaves search and inboxes).
                self.metrics.verdicts.get_or_create(&label("bad")).inc();
                tracing::info!(
                    post = post.id,
                    version = event.version,
                    kind = ?event.event_type,
                    "BAD post: withdrawn"
                );
                self.reject(&post, event.version).await?;
                self.publish(EventType::Deleted, &event, post, record).await
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn post(title: &str, content: &str) -> PostView {
        PostView {
            id: 1,
            title: title.into(),
            content: content.into(),
            user_id: 1,
            user_name: "a".into(),
            category_id: 1,
            category_name: "General".into(),
            tags: None,
            created_at: chrono::Utc::now(),
            updated_at: chrono::Utc::now(),
            version: 1,
        }
    }

    #[test]
    fn parses_replies_and_normalizes_tags() {
        assert_eq!(
            parse_reply(r#"{"status":"GOOD","tags":[" Rust ","rust","Kafka","a","b","c","d"]}"#)
                .unwrap(),
            Verdict::Good {
                tags: vec![
                    "rust".into(),
                    "kafka".into(),
                    "a".into(),
                    "b".into(),
                    "c".into()
                ]
            }
        );
        assert_eq!(
            parse_reply(r#"{"status":"BAD","tags":[]}"#).unwrap(),
            Verdict::Bad
        );
        for bad in ["nope", r#"{"status":"MAYBE","tags":[]}"#, r#"{"tags":[]}"#] {
            let e = parse_reply(bad).unwrap_err();
            assert!(!e.is_transient(), "{e}");
        }
    }

    #[test]
    fn offline_policy_blocks_listed_words_and_tags_title_words() {
        assert_eq!(
            offline_verdict(&post("Free casino bonus", "click")),
            Verdict::Bad
        );
        assert_eq!(
            offline_verdict(&post("How the Kafka outbox works, and why", "x")),
            Verdict::Good {
                tags: vec!["kafka".into(), "outbox".into(), "works".into()]
            }
        );
    }
}
