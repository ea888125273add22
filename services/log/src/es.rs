//! The calls the log pipeline makes (index template, bulk, search, refresh, count, ping) on the
//! platform's one Elasticsearch client ([`campus_common::search`]: the `elasticsearch` crate, with
//! the plain JSON media types that Elasticsearch and OpenSearch both accept), and what their
//! failures mean ([`EsError`]: the API answers 503 with `Retry-After` to a transient one, the
//! indexer waits it out).

use std::time::Duration;

use campus_common::config::SecretString;
use campus_common::search::{self, Elasticsearch};
use elasticsearch::http::headers::{CONTENT_TYPE, HeaderValue};
use elasticsearch::http::response::Response;
use elasticsearch::http::{Method, StatusCode};
use elasticsearch::indices::{
    IndicesCreateParts, IndicesDeleteIndexTemplateParts, IndicesDeleteParts,
    IndicesPutIndexTemplateParts, IndicesRefreshParts,
};
use elasticsearch::{BulkParts, CountParts, SearchParts};
use serde_json::Value;
/// Why an Elasticsearch call failed.
#[derive(Debug, thiserror::Error)]
pub enum EsError {
    /// The server could not be reached or did not answer in time.
    #[error("failed to reach Elasticsearch at {url}: {message}")]
    Unreachable { url: String, message: String },
    /// The server answered with an error status.
    #[error("Elasticsearch answered {status} to {what}: {reason}")]
    Status {
        status: u16,
        what: String,
        reason: String,
    },
    #[error("failed to decode the Elasticsearch answer to {what}: {message}")]
    Decode { what: String, message: String },
}

impl EsError {
    /// Worth retrying: unreachable, overloaded (429) or a server-side failure (5xx).
    pub fn is_transient(&self) -> bool {
        match self {
            EsError::Unreachable { .. } => true,
            EsError::Status { status, .. } => *status == 429 || *status >= 500,
            EsError::Decode { .. } => false,
        }
    }
}

/// One item of a bulk answer.
#[derive(Debug, Clone, PartialEq)]
pub struct BulkItem {
    pub status: u16,
    /// `type: reason` of the item's error, when it failed.
    pub error: Option<String>,
}

/// Cheap to clone; share one per process.
#[derive(Clone)]
pub struct Es {
    client: Elasticsearch,
    shown: String,
}

impl Es {
    /// A client for `url` (`http://user:password@host:9200`; credentials are sent as basic auth and
    /// never printed).
    pub fn new(url: &SecretString, timeout: Duration) -> Result<Self, EsError> {
        let shown = search::shown(url);
        let client = search::client(url, timeout).map_err(|e| EsError::Unreachable {
            url: shown.clone(),
            message: e.to_string(),
        })?;
        Ok(Self { client, shown })
    }

    /// The server address without credentials, for messages.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    /// The answer's JSON, or why there is none: not sent, an error status, not JSON.
    async fn answer(
        &self,
        sent: Result<Response, elasticsearch::Error>,
        what: &str,
    ) -> Result<Value, EsError> {
        let unreachable = |e: &dyn std::error::Error| EsError::Unreachable {
            url: self.shown.clone(),
            message: campus_common::error::chain(e),
        };
        let res = sent.map_err(|e| unreachable(&e))?;
        let status = res.status_code();
        // A HEAD request (ping) answers without a body.
        if res.method() == Method::Head && status.is_success() {
            return Ok(Value::Null);
        }
        let bytes = res.bytes().await.map_err(|e| unreachable(&e))?;
        if !status.is_success() {
            return Err(EsError::Status {
                status: status.as_u16(),
                what: what.to_owned(),
                reason: error_reason(status, &bytes),
            });
        }
        serde_json::from_slice(&bytes).map_err(|e| EsError::Decode {
            what: what.to_owned(),
            message: e.to_string(),
        })
    }

    /// Answers when the server does (`HEAD /`).
    pub async fn ping(&self) -> Result<(), EsError> {
        let sent = self.client.ping().send().await;
        self.answer(sent, "ping").await.map(|_| ())
    }

    /// Creates or replaces the composable index template `name`.
    pub async fn put_index_template(&self, name: &str, template: &Value) -> Result<(), EsError> {
        let sent = self
            .client
            .indices()
            .put_index_template(IndicesPutIndexTemplateParts::Name(name))
            .body(template)
            .send()
            .await;
        self.answer(sent, &format!("PUT index template {name}"))
            .await
            .map(|_| ())
    }

    /// Creates `index` (it takes its settings, mapping and alias from the matching template) unless
    /// it exists, so the alias resolves before the first document arrives.
    pub async fn ensure_index(&self, index: &str) -> Result<(), EsError> {
        let sent = self
            .client
            .indices()
            .create(IndicesCreateParts::Index(index))
            .send()
            .await;
        match self.answer(sent, &format!("create index {index}")).await {
            Ok(_) => Ok(()),
            Err(EsError::Status {
                status: 400,
                reason,
                ..
            }) if reason.contains("already_exists") || reason.contains("already exists") => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Sends a bulk body (NDJSON, ending in a newline); one [`BulkItem`] per action, in order.
    pub async fn bulk(&self, body: Vec<u8>) -> Result<Vec<BulkItem>, EsError> {
        let sent = self
            .client
            .bulk(BulkParts::None)
            .header(CONTENT_TYPE, HeaderValue::from_static(search::NDJSON))
            .body(vec![body])
            .send()
            .await;
        let v = self.answer(sent, "bulk").await?;
        let items = v
            .get("items")
            .and_then(Value::as_array)
            .ok_or_else(|| EsError::Decode {
                what: "bulk".into(),
                message: "no `items` in the answer".into(),
            })?;
        Ok(items
            .iter()
            .map(|item| {
                let inner = item
                    .as_object()
                    .and_then(|o| o.values().next())
                    .cloned()
                    .unwrap_or(Value::Null);
                let status = inner.get("status").and_then(Value::as_u64).unwrap_or(0) as u16;
                let error = inner.get("error").map(|e| {
                    format!(
                        "{}: {}",
                        e.get("type").and_then(Value::as_str).unwrap_or("error"),
                        e.get("reason").and_then(Value::as_str).unwrap_or_default()
                    )
                });
                BulkItem { status, error }
            })
            .collect())
    }

    /// Runs a search on `target` (an index, alias or pattern). A target that does not exist yet
    /// answers no hits rather than an error.
    pub async fn search(&self, target: &str, body: &Value) -> Result<Value, EsError> {
        let sent = self
            .client
            .search(SearchParts::Index(&[target]))
            .ignore_unavailable(true)
            .allow_no_indices(true)
            .body(body)
            .send()
            .await;
        self.answer(sent, &format!("search {target}")).await
    }

    /// Makes everything written so far searchable.
    pub async fn refresh(&self, target: &str) -> Result<(), EsError> {
        let sent = self
            .client
            .indices()
            .refresh(IndicesRefreshParts::Index(&[target]))
            .ignore_unavailable(true)
            .allow_no_indices(true)
            .send()
            .await;
        self.answer(sent, &format!("refresh {target}"))
            .await
            .map(|_| ())
    }

    /// Number of documents in `target` (0 when it does not exist).
    pub async fn count(&self, target: &str) -> Result<u64, EsError> {
        let sent = self
            .client
            .count(CountParts::Index(&[target]))
            .ignore_unavailable(true)
            .allow_no_indices(true)
            .body(serde_json::json!({"query": {"match_all": {}}}))
            .send()
            .await;
        let v = self.answer(sent, &format!("count {target}")).await?;
        Ok(v.get("count").and_then(Value::as_u64).unwrap_or(0))
    }

    /// Deletes indices (a pattern is allowed) and ignores those that do not exist.
    pub async fn delete_indices(&self, pattern: &str) -> Result<(), EsError> {
        let sent = self
            .client
            .indices()
            .delete(IndicesDeleteParts::Index(&[pattern]))
            .ignore_unavailable(true)
            .allow_no_indices(true)
            .send()
            .await;
        match self.answer(sent, &format!("delete {pattern}")).await {
            Ok(_) | Err(EsError::Status { status: 404, .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Deletes an index template; a missing one counts as deleted.
    pub async fn delete_index_template(&self, name: &str) -> Result<(), EsError> {
        let sent = self
            .client
            .indices()
            .delete_index_template(IndicesDeleteIndexTemplateParts::Name(name))
            .send()
            .await;
        match self
            .answer(sent, &format!("delete index template {name}"))
            .await
        {
            Ok(_) | Err(EsError::Status { status: 404, .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// `type: reason` from an Elasticsearch error body, or the status text.
fn error_reason(status: StatusCode, body: &[u8]) -> String {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let err = parsed.as_ref().and_then(|v| v.get("error"));
    match err {
        Some(Value::String(s)) => s.clone(),
        Some(e) => {
            let root = e.get("root_cause").and_then(|r| r.get(0)).unwrap_or(e);
            format!(
                "{}: {}",
                root.get("type").and_then(Value::as_str).unwrap_or("error"),
                root.get("reason")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
            )
        }
        None => {
            let text = String::from_utf8_lossy(body);
            let text = text.trim();
            if text.is_empty() {
                status.to_string()
            } else {
                text.chars().take(300).collect()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_come_from_the_root_cause() {
        let body = br#"{"error":{"root_cause":[{"type":"parsing_exception","reason":"Unknown aggregation type [percentiles]"}],"type":"x","reason":"y"},"status":400}"#;
        assert_eq!(
            error_reason(StatusCode::BAD_REQUEST, body),
            "parsing_exception: Unknown aggregation type [percentiles]"
        );
        assert_eq!(
            error_reason(StatusCode::BAD_GATEWAY, b""),
            "502 Bad Gateway"
        );
    }

    #[test]
    fn transient_errors() {
        let s = |status| EsError::Status {
            status,
            what: "bulk".into(),
            reason: String::new(),
        };
        assert!(s(429).is_transient());
        assert!(s(503).is_transient());
        assert!(!s(400).is_transient());
        assert!(
            EsError::Unreachable {
                url: "h".into(),
                message: "refused".into()
            }
            .is_transient()
        );
    }

    #[test]
    fn credentials_are_not_shown() {
        let es = Es::new(
            &SecretString::from("http://elastic:hunter2@es:9200/"),
            Duration::from_secs(1),
        )
        .unwrap();
        assert_eq!(es.shown(), "es:9200");
    }
}
