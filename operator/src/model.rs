//! The validated platform: what [`crate::controller::validate::validate`] makes of a
//! `CampusPlatform` once every check has passed. Typed, already-checked values — where each
//! store is (a plain URL or a Secret reference), which services run and with what settings, the
//! logging choice, the topic plan with its workers. The builders ([`crate::build`]) read only
//! this, never the raw spec, so nothing they do re-decides what validation decided.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{EnvVar, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

use crate::crd::{AuthSpec, PullPolicy, SecretKeyRef};
use crate::plan::{Plan, Service};

/// A platform whose spec passed validation.
#[derive(Debug, Clone, PartialEq)]
pub struct Platform {
    pub name: String,
    pub namespace: String,
    /// The controller reference every namespaced child carries; `None` for a platform that was
    /// never stored (no uid: a sample checked offline).
    pub owner: Option<OwnerReference>,
    pub kafka: Kafka,
    pub stores: Stores,
    /// The services with at least one process running (its API or a worker), in
    /// [`Service::ALL`] order.
    pub services: Vec<ServiceSettings>,
    pub logging: Logging,
    /// Topics and consumer-group workers (with their replicas).
    pub plan: Plan,
    /// `RUST_LOG` of every Campus container.
    pub log_level: String,
    pub pull_policy: PullPolicy,
    /// Who the content and coupon APIs' requests act for (checked).
    pub auth: AuthSpec,
}

impl Platform {
    /// The controller owner reference to the platform.
    pub fn owner_ref(&self) -> OwnerReference {
        self.owner
            .clone()
            .expect("a platform read from the API server has a uid")
    }

    /// The settings of `service`, when any of its processes runs.
    pub fn service(&self, service: Service) -> Option<&ServiceSettings> {
        self.services.iter().find(|s| s.service == service)
    }

    /// The services whose API runs: content, coupon, log, in that order. Each has a Deployment,
    /// a Service and a PodDisruptionBudget.
    pub fn apis(&self) -> impl Iterator<Item = &ServiceSettings> {
        self.services.iter().filter(|s| s.api_replicas.is_some())
    }
}

/// Where Kafka is.
#[derive(Debug, Clone, PartialEq)]
pub struct Kafka {
    /// Bootstrap servers as the spec gives them (each checked to be `host:port`).
    pub brokers: String,
    /// Extra librdkafka properties of the Campus clients.
    pub properties: BTreeMap<String, String>,
}

/// Where a URL comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Url {
    /// Written in the spec; it goes into the service's ConfigMap.
    Plain(String),
    /// A Secret key; the pods read it through `valueFrom.secretKeyRef` (the operator never does).
    Secret(SecretKeyRef),
}

/// The backing stores the spec configures (each present one checked; every store an enabled
/// service needs is present).
#[derive(Debug, Clone, PartialEq)]
pub struct Stores {
    pub mysql: Option<SecretKeyRef>,
    pub mongodb: Option<Mongo>,
    pub redis: Option<Redis>,
    pub elasticsearch: Option<Elasticsearch>,
    pub openai: OpenAi,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Mongo {
    pub url: SecretKeyRef,
    pub database: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Redis {
    pub url: Url,
    /// `REDIS_KEY_PREFIX`: the spec's, else `<kafka prefix>:` (the platform's name with an empty
    /// Kafka prefix).
    pub key_prefix: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Elasticsearch {
    pub url: Url,
    /// The content search index's alias (`ES_INDEX_ALIAS`).
    pub posts_alias: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct OpenAi {
    /// Unset: the inspector's offline policy.
    pub api_key: Option<SecretKeyRef>,
    /// Checked: `https://`, or `http://` where the spec allows it.
    pub base_url: String,
    pub model: String,
}

/// One running service's settings (shared by its API and its workers).
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceSettings {
    pub service: Service,
    /// Replicas of the API Deployment; `None` when the API does not run (the log service's
    /// native indexer without the log API).
    pub api_replicas: Option<i32>,
    /// The spec's image; `None`: `<binary>:<operator version>` (see [`ServiceSettings::image`]).
    pub image: Option<String>,
    /// Resources of every container of the service (a worker may have its own).
    pub resources: Option<ResourceRequirements>,
    /// Extra environment variables; they replace an operator-set variable of the same name.
    pub env: Vec<EnvVar>,
}

impl ServiceSettings {
    /// The container image: the spec's, else the service's binary tagged `tag`.
    pub fn image(&self, tag: &str) -> String {
        self.image
            .clone()
            .unwrap_or_else(|| format!("{}:{tag}", self.service.binary()))
    }
}

/// The log pipeline.
#[derive(Debug, Clone, PartialEq)]
pub struct Logging {
    /// Filebeat on every node, when enabled.
    pub filebeat: Option<Filebeat>,
    pub processor: Processor,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Filebeat {
    pub image: String,
    /// The namespaces whose containers are shipped; empty: every namespace.
    pub namespaces: Vec<String>,
    pub access_only: bool,
    pub resources: Option<ResourceRequirements>,
}

/// What indexes the access log.
#[derive(Debug, Clone, PartialEq)]
pub enum Processor {
    Logstash(Logstash),
    /// `campus-log worker index`: a worker of the plan.
    Native,
    None,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Logstash {
    pub image: String,
    pub replicas: i32,
    pub resources: Option<ResourceRequirements>,
    /// At least one, with distinct DNS-label names.
    pub pipelines: Vec<Pipeline>,
}

/// One Logstash pipeline, with the names it uses in Kafka.
#[derive(Debug, Clone, PartialEq)]
pub struct Pipeline {
    pub name: String,
    /// Full topic name.
    pub topic: String,
    /// Full consumer-group name.
    pub group: String,
    /// Full name of its dead-letter topic.
    pub dlq_topic: String,
    pub index_prefix: String,
}
