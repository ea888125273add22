//! Kafka topics of a platform.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Topics: which exist is derived from the enabled services; this sets their shape.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "!has(self.overrides) || self.overrides.all(o, self.overrides.exists_one(p, p.name == o.name))",
    "message": "overrides must name each topic at most once",
}]))]
pub struct TopicsSpec {
    /// Partitions of every topic without an override. Partitions only ever grow: a lower number
    /// than a topic has is reported in status, never applied.
    #[serde(default = "default_partitions")]
    #[schemars(range(min = 1, max = 1000))]
    pub partitions: i32,
    /// Replication factor of every topic without an override, applied when a topic is created.
    /// A different factor for an existing topic is never applied (Kafka changes it only by
    /// reassigning partitions): it is reported in status (`TopicsReady=False`, reason
    /// `ChangeRefused`) until the spec matches the topic again.
    #[serde(default = "default_replication")]
    #[schemars(range(min = 1, max = 10))]
    pub replication_factor: i32,
    /// Topic config (e.g. `retention.ms`, `cleanup.policy`) for every topic: set when a topic is
    /// created, and changed through the Kafka admin API (AlterConfigs) whenever a topic's value
    /// differs. A key removed from here keeps the value it has in Kafka. Config that Kafka refuses
    /// or cannot change is reported in status (`TopicsReady=False`, reason `ConfigRejected` or
    /// `ConfigUnsupported`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub config: BTreeMap<String, String>,
    /// Whether each consumed topic gets its dead-letter topics `<topic>.dlq.<group>` (one
    /// partition each).
    #[serde(default = "default_true")]
    pub dead_letter: bool,
    /// What happens to the topics when the platform is deleted: `Retain` keeps them, `Delete`
    /// deletes them (if Kafka stays unreachable, deletion gives up after the operator's grace
    /// period rather than blocking the platform's deletion). Topics of a service that is disabled
    /// are always retained.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
    /// Per-topic settings, by logical name before the prefix (`post.original`, `post.inspected`,
    /// `coupon.request`, `access-log`, or a dead-letter topic such as
    /// `post.original.dlq.inspection`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub overrides: Vec<TopicOverride>,
}

impl Default for TopicsSpec {
    fn default() -> Self {
        Self {
            partitions: default_partitions(),
            replication_factor: default_replication(),
            config: BTreeMap::new(),
            dead_letter: true,
            deletion_policy: DeletionPolicy::default(),
            overrides: Vec::new(),
        }
    }
}

/// Settings of one topic.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TopicOverride {
    /// Logical topic name (before the prefix).
    #[schemars(length(min = 1, max = 200))]
    pub name: String,
    /// Partitions of this topic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1000))]
    pub partitions: Option<i32>,
    /// Replication factor of this topic (applied when it is created; see
    /// `topics.replicationFactor`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 10))]
    pub replication_factor: Option<i32>,
    /// Topic config for this topic, merged over `topics.config` (kept in step like it).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub config: BTreeMap<String, String>,
}

/// What happens to a platform's topics when the platform is deleted.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum DeletionPolicy {
    /// Keep the topics and their data.
    #[default]
    Retain,
    /// Delete the topics.
    Delete,
}

fn default_partitions() -> i32 {
    3
}
fn default_replication() -> i32 {
    1
}
fn default_true() -> bool {
    true
}
