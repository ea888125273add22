//! What the operator reports about a platform.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Observed state of a platform.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CampusPlatformStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready` (everything below is true), `TopicsReady`, `WorkloadsReady` and `LoggingReady`,
    /// each with a reason and a message.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Topics ready / desired, e.g. `8/8`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topics_summary: Option<String>,
    /// Workloads ready / desired, e.g. `9/9`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workloads_summary: Option<String>,
    /// Every topic of the platform.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub topics: Vec<TopicStatus>,
    /// Every Deployment and DaemonSet of the platform.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub workloads: Vec<WorkloadStatus>,
    /// The prefix of the platform's topics, groups and Redis keys (`spec.kafka.prefix` or its
    /// default when first reconciled); kept so that a changed default never renames topics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kafka_prefix: Option<String>,
    /// Where the enabled APIs answer inside the cluster: each API's Service, and the coupon
    /// API's admin Service (`/admin/*`, never exposed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub endpoints: Vec<Endpoint>,
    /// Records in the platform's dead-letter topics, every group's together (the sum of
    /// `workloads[].deadLetters`); as last read from Kafka.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_letters: Option<i64>,
    /// The namespace Filebeat's objects were last applied in (`spec.logging.filebeat.namespace`
    /// or the platform's): when it changes or Filebeat is disabled, the operator deletes them
    /// there too (they carry no owner reference outside the platform's namespace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filebeat_namespace: Option<String>,
    /// Topics the platform created that its spec no longer names (a service disabled, another
    /// log processor or pipeline): kept in Kafka, as the operator never deletes a topic on a spec
    /// change, and deleted with the platform under `topics.deletionPolicy: Delete`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retained_topics: Vec<String>,
}

/// One API of the platform, as a client inside the cluster reaches it.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Endpoint {
    /// `content-api`, `coupon-api`, `coupon-admin` or `log-api`.
    pub name: String,
    /// `http://<Service>.<namespace>.svc:<port>`.
    pub url: String,
}

/// One topic as the operator last saw it.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TopicStatus {
    /// Full topic name (with prefix).
    pub name: String,
    /// Partitions the topic has (0 when unknown).
    pub partitions: i32,
    /// Replication factor the topic has (0 when unknown).
    #[serde(default)]
    pub replication_factor: i32,
    /// Partitions whose in-sync replicas are fewer than their replicas: a broker is down or
    /// behind, and one more failure may stop writes (`min.insync.replicas`). Omitted when 0.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub under_replicated_partitions: i32,
    /// Whether the topic exists as specified.
    pub ready: bool,
    /// Why not: what was refused (fewer partitions, another replication factor), or config that
    /// Kafka refused or cannot change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// One workload as the operator last saw it.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadStatus {
    /// Object name.
    pub name: String,
    /// `Deployment` or `DaemonSet`.
    pub kind: String,
    /// Desired replicas (pods scheduled, for a DaemonSet).
    pub replicas: i32,
    /// Ready replicas.
    pub ready_replicas: i32,
    /// Whether the workload has rolled out and is available.
    pub ready: bool,
    /// Consumer group of a worker (full name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Total lag of the group (records), when lag-based scaling reads it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lag: Option<i64>,
    /// The last change of replicas lag-based scaling made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_scale: Option<ScaleDecision>,
    /// Records in the dead-letter topics of the workload's consumer group(s) (each partition's
    /// high minus low watermark, summed): what the group gave up on. As last read from Kafka;
    /// omitted without dead-letter topics (`topics.deadLetter: false`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_letters: Option<i64>,
}

/// One change of a worker's replicas by lag-based scaling.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScaleDecision {
    /// When (RFC 3339).
    pub time: String,
    /// Replicas before.
    pub from: i32,
    /// Replicas after.
    pub to: i32,
    /// The group's lag it was decided on.
    pub lag: i64,
    /// How the count came about: the lag per replica, the bound or the partitions that capped
    /// it, the stabilisation window that held a scale-down back.
    pub reason: String,
}

fn is_zero(n: &i32) -> bool {
    *n == 0
}
