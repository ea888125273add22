//! The `CampusPlatform` custom resource (`campus.dev/v1alpha1`): one Campus installation.
//!
//! Spec types are split by concern: [`backing`] (where Kafka and the databases are), [`topics`],
//! [`services`] (content, coupon, log), [`logging`] (Filebeat and the log processor), [`auth`]
//! (who the APIs' requests act for) and [`status`]. Every field's doc comment is `kubectl explain`'s text.

pub mod auth;
pub mod backing;
pub mod logging;
pub mod services;
pub mod status;
pub mod template;
pub mod topics;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use auth::{AuthMode, AuthSpec, JwtAlgorithm, JwtSpec};
pub use backing::{
    ElasticsearchSpec, KafkaSpec, MongoSpec, MysqlSpec, OpenAiSpec, RedisSpec, SecretKeyRef,
    SecretRef,
};
pub use logging::{FilebeatSpec, LoggingSpec, LogstashSpec, PipelineSpec, ProcessorKind};
pub use services::{
    AutoscalingMode, AutoscalingSpec, ContentGroups, ContentSpec, CouponGroups, CouponRateLimits,
    CouponSpec, GroupSpec, LogServiceSpec, ServiceCommon,
};
pub use status::{CampusPlatformStatus, Endpoint, ScaleDecision, TopicStatus, WorkloadStatus};
pub use template::{PodOverrides, PullSecret};
pub use topics::{DeletionPolicy, TopicOverride, TopicsSpec};

/// The annotation that pauses reconciliation of a platform (`"true"`): the operator leaves its
/// children and topics alone until it is removed or set to anything else. A paused platform can
/// still be deleted; its topics are then kept whatever the deletion policy says.
pub const PAUSE_ANNOTATION: &str = "campus.dev/paused";

/// A Campus installation: where its backing services are, which Campus services run, the Kafka
/// topics they use and the log pipeline. The operator reconciles it into topics, Deployments,
/// Services, ConfigMaps, a Filebeat DaemonSet and Logstash.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "campus.dev",
    version = "v1alpha1",
    kind = "CampusPlatform",
    plural = "campusplatforms",
    shortname = "campus",
    category = "campus",
    doc = "A Campus installation (see `spec`); the operator reports on it in `status`.",
    namespaced,
    status = "CampusPlatformStatus",
    printcolumn = r#"{"name":"Ready","type":"string","description":"Whether every part of the platform is ready","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","priority":1,"description":"Why the platform is (not) ready","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"Topics","type":"string","description":"Topics ready / desired","jsonPath":".status.topicsSummary"}"#,
    printcolumn = r#"{"name":"Workloads","type":"string","description":"Workloads ready / desired","jsonPath":".status.workloadsSummary"}"#,
    printcolumn = r#"{"name":"DLQ","type":"integer","priority":1,"description":"Records in the dead-letter topics","jsonPath":".status.deadLetters"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct CampusPlatformSpec {
    /// Where the Kafka brokers are and how this platform names its topics and consumer groups.
    pub kafka: KafkaSpec,
    /// Where MySQL is (needed by the content and coupon services). Both may share one database:
    /// their tables differ and each records its migrations in a table of its own. A service's
    /// `env` can give it a `MYSQL_URL` of its own instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mysql: Option<MysqlSpec>,
    /// Where MongoDB is (needed by the content service's inbox projection).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mongodb: Option<MongoSpec>,
    /// Where Redis is (needed by the content cache and the coupon service).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis: Option<RedisSpec>,
    /// Where Elasticsearch is (needed by the content search index, the log API and the log
    /// processor).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub elasticsearch: Option<ElasticsearchSpec>,
    /// The OpenAI-compatible chat API the content inspector uses. Without an API key the
    /// inspector applies its documented offline policy.
    #[serde(default)]
    pub openai: OpenAiSpec,
    /// Kafka topics: defaults are derived from the enabled services; partitions, replication,
    /// topic config and what happens to the topics when the platform is deleted.
    #[serde(default)]
    pub topics: TopicsSpec,
    /// The content platform: `campus-content api` and one worker Deployment per consumer group.
    #[serde(default)]
    pub content: ContentSpec,
    /// The first-come-first-served coupon service: `campus-coupon api` and its issue worker.
    #[serde(default)]
    pub coupon: CouponSpec,
    /// The log query API `campus-log api`.
    #[serde(default)]
    pub log: LogServiceSpec,
    /// The log pipeline: Filebeat on every node, and Logstash or the native indexer.
    #[serde(default)]
    pub logging: LoggingSpec,
    /// Who the content and coupon APIs' requests act for: the `userId` they name (`None`, the
    /// default, as in the course) or the user of a JWT bearer token (`Jwt`).
    #[serde(default, skip_serializing_if = "is_default")]
    pub auth: AuthSpec,
    /// `RUST_LOG` for every Campus service (a tracing filter such as `info` or
    /// `info,campus_content=debug`); a service's `env` may override it.
    #[serde(default = "default_log_level")]
    pub log_level: String,
    /// Pull policy for every container the operator creates.
    #[serde(default)]
    pub image_pull_policy: PullPolicy,
    /// Pod customisation of every pod the operator makes (the services' Deployments, Logstash,
    /// the Filebeat DaemonSet); a service's and then a group's `template` are merged over it:
    /// labels, annotations and `nodeSelector` key by key; `imagePullSecrets`, `tolerations`,
    /// `topologySpreadConstraints`, `volumes` and `volumeMounts` add up (the same name,
    /// topologyKey or mountPath replaces the less specific entry); `affinity`,
    /// `priorityClassName` and `serviceAccountName` from the most specific level that sets them.
    /// Affinity, tolerations, spread constraints, volumes and mounts are checked by the operator
    /// (a field the Kubernetes type lacks is `InvalidSpec`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<PodOverrides>,
}

fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

fn default_log_level() -> String {
    "info".to_owned()
}

/// When the kubelet pulls an image.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum PullPolicy {
    /// Pull when the image is not on the node yet.
    #[default]
    IfNotPresent,
    /// Pull on every start.
    Always,
    /// Never pull (images loaded on the node, e.g. `kind load`).
    Never,
}

impl PullPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            PullPolicy::IfNotPresent => "IfNotPresent",
            PullPolicy::Always => "Always",
            PullPolicy::Never => "Never",
        }
    }
}

impl CampusPlatform {
    /// The prefix of every topic and consumer-group name: `spec.kafka.prefix`, else the name.
    pub fn kafka_prefix(&self) -> String {
        if let Some(p) = &self.spec.kafka.prefix {
            return p.clone();
        }
        let status = self.status.as_ref();
        if let Some(p) = status.and_then(|s| s.kafka_prefix.as_ref()) {
            return p.clone();
        }
        let name = kube::ResourceExt::name_any(self);
        if status.is_some_and(|s| !s.topics.is_empty()) {
            // Reconciled by an operator that defaulted to the name and pinned nothing: its
            // topics carry the name alone.
            return name;
        }
        match kube::ResourceExt::namespace(self) {
            Some(ns) => format!("{ns}.{name}"),
            None => name,
        }
    }

    /// Whether the pause annotation is set to `"true"`.
    pub fn paused(&self) -> bool {
        kube::ResourceExt::annotations(self)
            .get(PAUSE_ANNOTATION)
            .is_some_and(|v| v == "true")
    }
}
