//! The validated platform: what [`crate::controller::validate::validate`] makes of a
//! `CampusPlatform` once every check has passed. Typed, already-checked values — where each
//! store is (a plain URL or a Secret reference), which services run and with what settings, the
//! logging choice, the topic plan with its workers. The builders ([`crate::build`]) read only
//! this, never the raw spec, so nothing they do re-decides what validation decided.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Affinity, EnvVar, LocalObjectReference, ResourceRequirements, Toleration,
    TopologySpreadConstraint, Volume, VolumeMount,
};
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
    /// The platform's pod customisation (`spec.template`): Logstash's and Filebeat's; the
    /// services' and workers' have it merged in ([`ServiceSettings::template`],
    /// [`crate::plan::Worker::template`]).
    pub template: PodTemplate,
    /// Who the content and coupon APIs' requests act for (checked).
    pub auth: AuthSpec,
    /// `POST /coupons` rate limits of each coupon API replica (none by default).
    pub coupon_rate_limits: Option<crate::crd::CouponRateLimits>,
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

    /// Whether Filebeat's objects live outside the platform's namespace (no owner reference).
    pub fn filebeat_elsewhere(&self) -> bool {
        self.logging
            .filebeat
            .as_ref()
            .is_some_and(|fb| fb.namespace != self.namespace)
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
    /// Extra librdkafka properties of the Campus clients (none of them a credential).
    pub properties: BTreeMap<String, String>,
    /// The Secret whose keys are more properties (the credentials), read by the containers as
    /// `KAFKA_PROPERTY_<key>` variables.
    pub properties_secret: Option<String>,
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
    /// The spec's image; `None`: `[<registry>/]<binary>:<operator version>` (see
    /// [`ServiceSettings::image`]).
    pub image: Option<String>,
    /// Resources of every container of the service (a worker may have its own).
    pub resources: Option<ResourceRequirements>,
    /// Extra environment variables; they replace an operator-set variable of the same name.
    pub env: Vec<EnvVar>,
    /// Pod customisation of the service's API: the platform's with the service's merged over it.
    pub template: PodTemplate,
}

impl ServiceSettings {
    /// The container image: the spec's, else the service's binary tagged `tag`, after
    /// `registry` when that is not empty (the operator's `--image-registry`).
    pub fn image(&self, registry: &str, tag: &str) -> String {
        if let Some(image) = &self.image {
            return image.clone();
        }
        let binary = self.service.binary();
        match registry.trim_end_matches('/') {
            "" => format!("{binary}:{tag}"),
            registry => format!("{registry}/{binary}:{tag}"),
        }
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
    /// Where its DaemonSet, ConfigMap and ServiceAccount live: the spec's namespace, else the
    /// platform's.
    pub namespace: String,
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

/// Pod customisation (`template` of the spec) with its Kubernetes types parsed and checked, at
/// one level or merged over several ([`PodTemplate::merged`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PodTemplate {
    pub pod_labels: BTreeMap<String, String>,
    pub pod_annotations: BTreeMap<String, String>,
    pub workload_labels: BTreeMap<String, String>,
    pub workload_annotations: BTreeMap<String, String>,
    pub image_pull_secrets: Vec<LocalObjectReference>,
    pub node_selector: BTreeMap<String, String>,
    pub tolerations: Vec<Toleration>,
    pub affinity: Option<Affinity>,
    pub topology_spread_constraints: Vec<TopologySpreadConstraint>,
    pub priority_class_name: Option<String>,
    pub service_account_name: Option<String>,
    pub volumes: Vec<Volume>,
    pub volume_mounts: Vec<VolumeMount>,
}

impl PodTemplate {
    /// `over` (a more specific level) merged over `self`: maps key by key; lists add up, an entry
    /// of `over` replacing one of `self` with the same key (pull Secret and volume name,
    /// topologyKey, mountPath; an equal toleration is kept once); affinity, PriorityClass and
    /// ServiceAccount from `over` when it sets them.
    pub fn merged(&self, over: &PodTemplate) -> PodTemplate {
        fn maps(
            a: &BTreeMap<String, String>,
            b: &BTreeMap<String, String>,
        ) -> BTreeMap<String, String> {
            let mut m = a.clone();
            m.extend(b.iter().map(|(k, v)| (k.clone(), v.clone())));
            m
        }
        fn keyed<T: Clone, K: PartialEq>(a: &[T], b: &[T], key: impl Fn(&T) -> K) -> Vec<T> {
            let mut out: Vec<T> = a
                .iter()
                .filter(|x| !b.iter().any(|y| key(y) == key(x)))
                .cloned()
                .collect();
            out.extend(b.iter().cloned());
            out
        }
        PodTemplate {
            pod_labels: maps(&self.pod_labels, &over.pod_labels),
            pod_annotations: maps(&self.pod_annotations, &over.pod_annotations),
            workload_labels: maps(&self.workload_labels, &over.workload_labels),
            workload_annotations: maps(&self.workload_annotations, &over.workload_annotations),
            image_pull_secrets: keyed(&self.image_pull_secrets, &over.image_pull_secrets, |s| {
                s.name.clone()
            }),
            node_selector: maps(&self.node_selector, &over.node_selector),
            tolerations: keyed(&self.tolerations, &over.tolerations, Clone::clone),
            affinity: over.affinity.clone().or_else(|| self.affinity.clone()),
            topology_spread_constraints: keyed(
                &self.topology_spread_constraints,
                &over.topology_spread_constraints,
                |c| c.topology_key.clone(),
            ),
            priority_class_name: over
                .priority_class_name
                .clone()
                .or_else(|| self.priority_class_name.clone()),
            service_account_name: over
                .service_account_name
                .clone()
                .or_else(|| self.service_account_name.clone()),
            volumes: keyed(&self.volumes, &over.volumes, |v| v.name.clone()),
            volume_mounts: keyed(&self.volume_mounts, &over.volume_mounts, |m| {
                m.mount_path.clone()
            }),
        }
    }
}
