//! The event envelope every Campus topic carries. Its JSON schema is committed next to this crate
//! (`services/common/schemas/envelope.schema.json`); a test fails when it is stale.
//!
//! ```json
//! {"eventId": "0192…", "type": "updated", "key": "42", "version": 3,
//!  "occurredAt": "2026-11-25T20:00:00.123Z", "payload": {…}}
//! ```

use chrono::{DateTime, SecondsFormat, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// What happened to the entity named by `key`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum EventType {
    Created,
    Updated,
    Deleted,
}

/// One event about one entity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(title = "Campus event envelope")]
pub struct Envelope<P> {
    /// Unique id of this event (UUID v7, time-ordered). Consumers may use it to de-duplicate.
    pub event_id: Uuid,
    /// What happened.
    #[serde(rename = "type")]
    pub event_type: EventType,
    /// The entity's id; also the Kafka record key, so one entity's events stay in one partition.
    pub key: String,
    /// The entity's version after this event; strictly increasing per key. Projections ignore
    /// events whose version is not newer than what they hold.
    #[schemars(range(min = 1))]
    pub version: i64,
    /// When the change was committed (RFC 3339, UTC, milliseconds).
    #[serde(with = "rfc3339_millis")]
    #[schemars(with = "String", extend("format" = "date-time"))]
    pub occurred_at: DateTime<Utc>,
    /// The entity's state after the change (for `deleted`, at least its id).
    pub payload: P,
}

impl<P> Envelope<P> {
    /// A new event with a fresh id, stamped now.
    pub fn new(event_type: EventType, key: impl Into<String>, version: i64, payload: P) -> Self {
        Self {
            event_id: Uuid::now_v7(),
            event_type,
            key: key.into(),
            version,
            occurred_at: Utc::now(),
            payload,
        }
    }
}

mod rfc3339_millis {
    use super::*;
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&t.to_rfc3339_opts(SecondsFormat::Millis, true))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let s = String::deserialize(d)?;
        DateTime::parse_from_rfc3339(&s)
            .map(|t| t.with_timezone(&Utc))
            .map_err(serde::de::Error::custom)
    }
}

/// The JSON schema of an envelope with any payload, as committed in `schemas/`.
pub fn schema_json() -> String {
    let schema = schemars::schema_for!(Envelope<serde_json::Value>);
    let mut s = serde_json::to_string_pretty(&schema).expect("schema serializes");
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_with_the_documented_field_names() {
        let e = Envelope::new(
            EventType::Updated,
            "42",
            3,
            serde_json::json!({"title": "t"}),
        );
        let v = serde_json::to_value(&e).unwrap();
        for field in ["eventId", "type", "key", "version", "occurredAt", "payload"] {
            assert!(v.get(field).is_some(), "missing {field} in {v}");
        }
        assert_eq!(v["type"], "updated");
        let at = v["occurredAt"].as_str().unwrap();
        assert!(at.ends_with('Z') && at.len() == 24, "{at}");
        let back: Envelope<serde_json::Value> = serde_json::from_value(v).unwrap();
        assert_eq!(back.event_id, e.event_id);
        assert_eq!(
            back.occurred_at.timestamp_millis(),
            e.occurred_at.timestamp_millis()
        );
    }

    #[test]
    fn rejects_unknown_types() {
        let bad = r#"{"eventId":"0192e0a0-0000-7000-8000-000000000000","type":"exploded","key":"1","version":1,"occurredAt":"2026-01-01T00:00:00Z","payload":{}}"#;
        assert!(serde_json::from_str::<Envelope<serde_json::Value>>(bad).is_err());
    }

    /// Regenerate with `UPDATE_SCHEMAS=1 cargo test -p campus-common envelope`.
    #[test]
    fn committed_schema_is_current() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/schemas/envelope.schema.json");
        let want = schema_json();
        if std::env::var_os("UPDATE_SCHEMAS").is_some() {
            std::fs::write(path, &want).unwrap();
        }
        let have = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            have == want,
            "{path} is stale: run UPDATE_SCHEMAS=1 cargo test -p campus-common envelope"
        );
    }
}
