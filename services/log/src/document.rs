//! From a Filebeat event on the `access-log` topic to an Elasticsearch document, by the rules in
//! [`campus_common::logschema`]: the container line in `message` must be a JSON object; lines whose
//! `log_type` is not `"access"` are skipped; the document is the line plus the Kubernetes fields,
//! in the daily index of the line's `@timestamp`, with an id derived from topic/partition/offset and the record timestamp.

use campus_common::kafka::Record;
use campus_common::logschema::{self, KUBERNETES_FIELDS};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Map, Value};

/// A document ready for a bulk request.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    pub index: String,
    pub id: String,
    /// The `_source`, serialized.
    pub source: Vec<u8>,
    /// The access line's request id, for log lines about this document.
    pub request_id: Option<String>,
}

/// What to do with one record.
#[derive(Debug, Clone, PartialEq)]
pub enum Decoded {
    Index(Document),
    /// A JSON line that is not an access line (`log_type` is not `"access"`).
    Skip,
}

/// Why a record can never be indexed (it goes to the dead-letter topic).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DecodeError {
    #[error("record has no payload")]
    Empty,
    #[error("record is not a Filebeat JSON event: {0}")]
    NotAnEvent(String),
    #[error("the event has no `message` string (not a Filebeat container event)")]
    NoMessage,
    #[error("the container line is not JSON: {0}")]
    NotJson(String),
    #[error("the container line is JSON but not an object")]
    NotAnObject,
    #[error("the access line has no valid `@timestamp` (RFC 3339) and neither has the event")]
    NoTimestamp,
}

/// The parts of a Filebeat event the indexer reads.
#[derive(Deserialize)]
struct Event {
    message: Option<String>,
    #[serde(rename = "@timestamp")]
    timestamp: Option<String>,
    kubernetes: Option<Value>,
}

/// Decodes one record of the access-log topic into the document for index prefix `prefix`.
pub fn decode(record: &Record, prefix: &str) -> Result<Decoded, DecodeError> {
    let payload = record.payload.as_deref().ok_or(DecodeError::Empty)?;
    let event: Event =
        serde_json::from_slice(payload).map_err(|e| DecodeError::NotAnEvent(e.to_string()))?;
    let message = event.message.ok_or(DecodeError::NoMessage)?;
    let line: Value = serde_json::from_str(message.trim_end())
        .map_err(|e| DecodeError::NotJson(e.to_string()))?;
    let Value::Object(mut line) = line else {
        return Err(DecodeError::NotAnObject);
    };
    if line.get("log_type").and_then(Value::as_str) != Some("access") {
        return Ok(Decoded::Skip);
    }
    let own = parse_time(line.get("@timestamp").and_then(Value::as_str));
    let at = own
        .or_else(|| parse_time(event.timestamp.as_deref()))
        .ok_or(DecodeError::NoTimestamp)?;
    if own.is_none() {
        line.insert(
            "@timestamp".to_owned(),
            Value::String(at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
        );
    }
    if let Some(k8s) = &event.kubernetes {
        let picked = pick_kubernetes(k8s);
        if !picked.is_empty() {
            line.insert("kubernetes".to_owned(), Value::Object(picked));
        }
    }
    let request_id = line
        .get("request_id")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned);
    Ok(Decoded::Index(Document {
        index: logschema::index_for(prefix, at),
        id: logschema::document_id(
            &record.topic,
            record.partition,
            record.offset,
            record.timestamp_ms,
        ),
        source: serde_json::to_vec(&line).expect("a JSON map serializes"),
        request_id,
    }))
}

fn parse_time(s: Option<&str>) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s?)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// Only the Kubernetes fields the schema maps (Filebeat adds labels, annotations, uids…).
fn pick_kubernetes(k8s: &Value) -> Map<String, Value> {
    let mut out = Map::new();
    for path in KUBERNETES_FIELDS {
        let Some(rest) = path.strip_prefix("kubernetes.") else {
            continue;
        };
        let mut v = k8s;
        for part in rest.split('.') {
            v = &v[part];
        }
        if v.is_string() {
            set_dotted(&mut out, rest, v.clone());
        }
    }
    out
}

fn set_dotted(map: &mut Map<String, Value>, path: &str, value: Value) {
    match path.split_once('.') {
        None => {
            map.insert(path.to_owned(), value);
        }
        Some((head, rest)) => {
            let entry = map
                .entry(head.to_owned())
                .or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(inner) = entry {
                set_dotted(inner, rest, value);
            }
        }
    }
}

/// Appends the bulk actions for `docs` to `body` (`create` with an explicit id: a replayed record
/// finds its document already there and changes nothing).
pub fn write_bulk<'a>(body: &mut Vec<u8>, docs: impl IntoIterator<Item = &'a Document>) {
    for doc in docs {
        let action = serde_json::json!({"create": {"_index": doc.index, "_id": doc.id}});
        serde_json::to_writer(&mut *body, &action).expect("JSON serializes");
        body.push(b'\n');
        body.extend_from_slice(&doc.source);
        body.push(b'\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use campus_common::logschema::{KubernetesMeta, filebeat_event};
    use serde_json::json;

    fn record(payload: &[u8]) -> Record {
        Record {
            topic: "p.access-log".into(),
            partition: 2,
            offset: 41,
            key: None,
            payload: Some(payload.to_vec()),
            headers: vec![],
            timestamp_ms: None,
        }
    }

    fn event(line: &str) -> Vec<u8> {
        let at = DateTime::parse_from_rfc3339("2026-11-25T23:59:59.900Z")
            .unwrap()
            .with_timezone(&Utc);
        let meta = KubernetesMeta {
            namespace: "campus",
            pod: "content-api-1",
            container: "api",
            node: "n1",
        };
        serde_json::to_vec(&filebeat_event(line, at, &meta)).unwrap()
    }

    #[test]
    fn an_access_line_becomes_a_document_in_its_daily_index() {
        let line = r#"{"@timestamp":"2026-11-26T00:00:00.120Z","log_type":"access","service":"campus-content","method":"GET","path":"/posts/1/detail","route":"/posts/{id}/detail","query":"","status":200,"bytes":10,"duration_ms":1.25,"request_id":"r-1","user_agent":"t"}"#;
        let Decoded::Index(doc) = decode(&record(&event(line)), "access-log").unwrap() else {
            panic!("skipped")
        };
        // The line's time picks the index, not Filebeat's (a line written just before midnight
        // and shipped after it stays in its day).
        assert_eq!(doc.index, "access-log-2026.11.26");
        assert_eq!(doc.id, "p.access-log-2-41--1");
        assert_eq!(doc.request_id.as_deref(), Some("r-1"));
        let source: Value = serde_json::from_slice(&doc.source).unwrap();
        assert_eq!(source["status"], 200);
        assert_eq!(source["route"], "/posts/{id}/detail");
        assert_eq!(
            source["kubernetes"],
            json!({"namespace": "campus", "pod": {"name": "content-api-1"}, "container": {"name": "api"}})
        );
        assert!(source.get("message").is_none());
        let mut body = Vec::new();
        write_bulk(&mut body, [&doc]);
        let text = String::from_utf8(body).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(
            serde_json::from_str::<Value>(lines[0]).unwrap(),
            json!({"create": {"_index": "access-log-2026.11.26", "_id": "p.access-log-2-41--1"}})
        );
    }

    #[test]
    fn bad_lines_are_errors_and_other_lines_are_skipped() {
        assert!(matches!(
            decode(&record(&event("panicked at main.rs:1")), "a"),
            Err(DecodeError::NotJson(_))
        ));
        assert!(matches!(
            decode(&record(b"not json at all"), "a"),
            Err(DecodeError::NotAnEvent(_))
        ));
        assert_eq!(
            decode(&record(br#"{"@timestamp":"2026-11-25T00:00:00Z"}"#), "a"),
            Err(DecodeError::NoMessage)
        );
        assert_eq!(
            decode(&record(&event("[1,2]")), "a"),
            Err(DecodeError::NotAnObject)
        );
        assert_eq!(
            decode(
                &record(&event(r#"{"level":"INFO","message":"listening"}"#)),
                "a"
            ),
            Ok(Decoded::Skip)
        );
        // No time in the line: the event's time is used.
        let Decoded::Index(doc) = decode(
            &record(&event(r#"{"log_type":"access","status":500}"#)),
            "a",
        )
        .unwrap() else {
            panic!("skipped")
        };
        assert_eq!(doc.index, "a-2026.11.25");
        let no_time = br#"{"message":"{\"log_type\":\"access\"}"}"#;
        assert_eq!(decode(&record(no_time), "a"), Err(DecodeError::NoTimestamp));
    }
}
