//! The Campus services: content, coupon and the log API, with their consumer groups.

use k8s_openapi::api::core::v1::{EnvVar, ResourceRequirements};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::template::PodOverrides;

/// What every Campus service's spec has (flattened into each): whether it runs, its image, the
/// replicas of its API, resources and extra environment.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceCommon {
    /// Whether the service runs (the log service: its API; the native indexer is chosen under
    /// `logging`). Disabling it removes its Deployments, Services and ConfigMaps (its topics are
    /// kept).
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Container image; defaults to the service's binary tagged with the operator's version
    /// (`campus-content:<operator version>`, `campus-coupon:…`, `campus-log:…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Replicas of the API Deployment.
    #[serde(default = "default_replicas")]
    #[schemars(range(min = 0, max = 100))]
    pub replicas: i32,
    /// Resources of every container of this service (a group may override them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Extra environment variables for every container of this service; a name the operator sets
    /// too (such as `RUST_LOG`) is replaced.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,
    /// Pod customisation of every pod of this service (its API and workers), merged over
    /// `spec.template`; a group's `template` is merged over it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<PodOverrides>,
}

impl Default for ServiceCommon {
    fn default() -> Self {
        Self {
            enabled: true,
            image: None,
            replicas: default_replicas(),
            resources: None,
            env: Vec::new(),
            template: None,
        }
    }
}

/// The content platform: `campus-content api` plus the workers `inspect`, `cache`, `inbox` and
/// `index`, one Deployment per consumer group.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ContentSpec {
    #[serde(flatten)]
    pub common: ServiceCommon,
    /// The consumer groups, one worker Deployment each.
    #[serde(default)]
    pub groups: ContentGroups,
}

/// The content workers' consumer groups.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ContentGroups {
    /// Group `inspection` (`worker inspect`): reads `post.original`, asks the AI inspector,
    /// writes `post.inspected`.
    #[serde(default)]
    pub inspection: GroupSpec,
    /// Group `cache` (`worker cache`): projects `post.inspected` into Redis.
    #[serde(default)]
    pub cache: GroupSpec,
    /// Group `inbox` (`worker inbox`): projects `post.inspected` into the MongoDB follower inbox.
    #[serde(default)]
    pub inbox: GroupSpec,
    /// Group `index` (`worker index`): projects `post.inspected` into the Elasticsearch index.
    #[serde(default)]
    pub index: GroupSpec,
}

/// The coupon service: `campus-coupon api` and the `issue` worker.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CouponSpec {
    #[serde(flatten)]
    pub common: ServiceCommon,
    /// The consumer groups, one worker Deployment each.
    #[serde(default)]
    pub groups: CouponGroups,
    /// Rate limits on `POST /coupons`, enforced by each API replica on its own (with N replicas
    /// the platform accepts up to N times `global`). A request over a limit is answered 429 with
    /// `Retry-After` and touches neither Redis nor Kafka. None by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limits: Option<CouponRateLimits>,
}

/// `POST /coupons` rate limits of one coupon API replica; an unset field is no limit (a burst
/// defaults to its rate).
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CouponRateLimits {
    /// Requests per second one user may make.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1_000_000))]
    pub per_user: Option<u32>,
    /// How many of one user's requests may come at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1_000_000))]
    pub per_user_burst: Option<u32>,
    /// Requests per second over all users.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1_000_000))]
    pub global: Option<u32>,
    /// How many requests over all users may come at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1_000_000))]
    pub global_burst: Option<u32>,
}

impl CouponRateLimits {
    /// The coupon API's variables for the limits set: `(name, value)`.
    pub fn env(&self) -> Vec<(&'static str, u32)> {
        use campus_contract::env as var;
        [
            (var::COUPON_RATE_PER_USER, self.per_user),
            (var::COUPON_RATE_PER_USER_BURST, self.per_user_burst),
            (var::COUPON_RATE_GLOBAL, self.global),
            (var::COUPON_RATE_GLOBAL_BURST, self.global_burst),
        ]
        .into_iter()
        .filter_map(|(name, v)| Some((name, v?)))
        .collect()
    }
}

/// The coupon worker's consumer group.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CouponGroups {
    /// Group `coupon-issue` (`worker issue`): reads `coupon.request`, inserts issued coupons.
    #[serde(default)]
    pub issue: GroupSpec,
}

/// The log query API `campus-log api` (the native indexer is configured under `logging`; it
/// runs with this image and environment).
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LogServiceSpec {
    #[serde(flatten)]
    pub common: ServiceCommon,
}

/// One consumer group's worker Deployment.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GroupSpec {
    /// Replicas of the worker Deployment (ignored while `autoscaling` is set).
    #[serde(default = "default_replicas")]
    #[schemars(range(min = 0, max = 100))]
    pub replicas: i32,
    /// Resources of the worker container; defaults to the service's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Lag-based scaling: the operator reads the group's lag through the Kafka admin API and sets
    /// the replicas within these bounds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscaling: Option<AutoscalingSpec>,
    /// Pod customisation of this worker, merged over the platform's and the service's
    /// `template`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<PodOverrides>,
}

impl Default for GroupSpec {
    fn default() -> Self {
        Self {
            replicas: default_replicas(),
            resources: None,
            autoscaling: None,
            template: None,
        }
    }
}

/// Lag-based scaling: replicas = ceil(lag / lagPerReplica), within [minReplicas, maxReplicas]
/// and never more than the partitions of the group's topics (a consumer beyond them would sit
/// idle, and every change of replicas costs the group a rebalance). Scaling up is immediate;
/// scaling down waits until no higher count was wanted for `scaleDownStabilizationSeconds`.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "self.minReplicas <= self.maxReplicas",
    "message": "minReplicas must not exceed maxReplicas",
}]))]
pub struct AutoscalingSpec {
    /// `Lag`: the operator sets the replicas from the group's lag. `External`: something else
    /// does (a HorizontalPodAutoscaler, KEDA) — the operator leaves the Deployment's replicas
    /// alone and only reports the lag in status.
    #[serde(default)]
    pub mode: AutoscalingMode,
    /// Fewest replicas, also with no lag.
    #[serde(default = "default_replicas")]
    #[schemars(range(min = 0, max = 100))]
    pub min_replicas: i32,
    /// Most replicas (the topic's partitions bound them too).
    #[serde(default = "default_max_replicas")]
    #[schemars(range(min = 1, max = 100))]
    pub max_replicas: i32,
    /// Records of lag one replica is expected to work off.
    #[serde(default = "default_lag_per_replica")]
    #[schemars(range(min = 1))]
    pub lag_per_replica: i64,
    /// Scale down only to the highest count wanted within this many seconds (the
    /// HorizontalPodAutoscaler's scale-down stabilisation; 0: at once). After an operator
    /// start, no scale-down before one window has passed.
    #[serde(default = "default_stabilization_seconds")]
    #[schemars(range(min = 0, max = 3600))]
    pub scale_down_stabilization_seconds: i32,
}

/// Who sets a worker's replicas under `autoscaling`.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum AutoscalingMode {
    /// The operator, from the group's lag.
    #[default]
    Lag,
    /// Another autoscaler; the operator reports the lag only.
    External,
}

fn default_true() -> bool {
    true
}
fn default_replicas() -> i32 {
    1
}
fn default_lag_per_replica() -> i64 {
    1000
}
fn default_max_replicas() -> i32 {
    10
}
fn default_stabilization_seconds() -> i32 {
    300
}
