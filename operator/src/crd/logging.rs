//! The log pipeline: Filebeat on every node, then Logstash pipelines or the native indexer.

use k8s_openapi::api::core::v1::ResourceRequirements;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::services::GroupSpec;

/// The log pipeline: Filebeat → Kafka `access-log` → Logstash or `campus-log worker index` →
/// Elasticsearch `access-log-YYYY.MM.dd`.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LoggingSpec {
    /// Filebeat, one pod per node, shipping container logs to Kafka.
    #[serde(default)]
    pub filebeat: FilebeatSpec,
    /// What indexes the access-log topic into Elasticsearch: `Logstash`, `Native`
    /// (`campus-log worker index`) or `None`.
    #[serde(default)]
    pub processor: ProcessorKind,
    /// Logstash, used when `processor` is `Logstash`.
    #[serde(default)]
    pub logstash: LogstashSpec,
    /// The native indexer `campus-log worker index` (group `log-index`, image of the log
    /// service), used when `processor` is `Native`: replicas, resources and lag-based scaling.
    #[serde(default)]
    pub native: GroupSpec,
}

/// Which process indexes the access-log topic.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum ProcessorKind {
    /// Logstash with the pipelines of `logging.logstash.pipelines` (group `logstash`).
    #[default]
    Logstash,
    /// `campus-log worker index` (group `log-index`), the Rust alternative to Logstash.
    Native,
    /// Nothing indexes the logs (they stay in Kafka).
    None,
}

/// Filebeat DaemonSet.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FilebeatSpec {
    /// Whether Filebeat runs.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Filebeat image.
    #[serde(default = "default_filebeat_image")]
    pub image: String,
    /// Namespaces whose containers are collected; empty means the platform's own namespace.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
    /// Collect every namespace (overrides `namespaces`).
    #[serde(default)]
    pub all_namespaces: bool,
    /// Ship only access-log lines (`"log_type":"access"`); other lines are dropped on the node.
    #[serde(default = "default_true")]
    pub access_only: bool,
    /// Resources of the Filebeat container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// The namespace Filebeat's DaemonSet, ConfigMap and ServiceAccount live in (default: the
    /// platform's). Filebeat reads the nodes' logs through hostPath volumes, which only the
    /// `privileged` Pod Security level allows: a namespace of its own lets the platform's
    /// namespace enforce `restricted`. It must exist, and the operator needs its rights there
    /// (the chart's `operator.filebeatNamespaces`). Objects there carry no owner reference: the
    /// operator deletes them by label, also when the platform is deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
    )]
    pub namespace: Option<String>,
}

impl Default for FilebeatSpec {
    fn default() -> Self {
        Self {
            enabled: true,
            image: default_filebeat_image(),
            namespaces: Vec::new(),
            all_namespaces: false,
            access_only: true,
            resources: None,
            namespace: None,
        }
    }
}

/// Logstash Deployment; its pipelines reload in place when they change.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "self.pipelines.all(p, self.pipelines.exists_one(q, q.name == p.name))",
    "message": "pipelines must have distinct names",
}]))]
pub struct LogstashSpec {
    /// Logstash image.
    #[serde(default = "default_logstash_image")]
    pub image: String,
    /// Replicas (they share each pipeline's consumer group).
    #[serde(default = "default_replicas")]
    #[schemars(range(min = 0, max = 20))]
    pub replicas: i32,
    /// Resources of the Logstash container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Pipelines, each reading one topic with one group into daily indices. Defaults to one
    /// pipeline `access-log` (topic `access-log`, group `logstash`, indices `access-log-*`).
    #[serde(default = "default_pipelines")]
    #[schemars(length(min = 1, max = 16))]
    pub pipelines: Vec<PipelineSpec>,
}

impl Default for LogstashSpec {
    fn default() -> Self {
        Self {
            image: default_logstash_image(),
            replicas: default_replicas(),
            resources: None,
            pipelines: default_pipelines(),
        }
    }
}

/// One Logstash pipeline.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PipelineSpec {
    /// Pipeline id (lowercase letters, digits and `-`).
    #[schemars(
        length(min = 1, max = 50),
        regex(pattern = r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
    )]
    pub name: String,
    /// Logical topic it reads (before the prefix); created by the operator.
    #[serde(default = "default_log_topic")]
    #[schemars(length(min = 1, max = 200))]
    pub topic: String,
    /// Logical consumer group (before the prefix).
    #[serde(default = "default_logstash_group")]
    #[schemars(length(min = 1, max = 200))]
    pub group: String,
    /// Prefix of the daily indices `<indexPrefix>-YYYY.MM.dd` (and of their alias).
    #[serde(default = "default_index_prefix")]
    #[schemars(length(min = 1, max = 200))]
    pub index_prefix: String,
}

fn default_true() -> bool {
    true
}
fn default_replicas() -> i32 {
    1
}
fn default_filebeat_image() -> String {
    "docker.elastic.co/beats/filebeat:7.17.29".to_owned()
}
fn default_logstash_image() -> String {
    "docker.elastic.co/logstash/logstash:8.15.3".to_owned()
}
fn default_log_topic() -> String {
    campus_contract::access_log::TOPIC.to_owned()
}
fn default_logstash_group() -> String {
    campus_contract::group::LOGSTASH.to_owned()
}
fn default_index_prefix() -> String {
    campus_contract::access_log::INDEX_PREFIX.to_owned()
}
fn default_pipelines() -> Vec<PipelineSpec> {
    vec![PipelineSpec {
        name: "access-log".to_owned(),
        topic: default_log_topic(),
        group: default_logstash_group(),
        index_prefix: default_index_prefix(),
    }]
}
