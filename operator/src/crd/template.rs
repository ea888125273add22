//! Pod customisation (`template`): set on the platform (`spec.template`), on a service
//! (`spec.<service>.template`) and on a consumer group (`spec.<service>.groups.<group>.template`,
//! `spec.logging.native.template`), merged in that order, the most specific level last (ECK's
//! `podTemplate`, Strimzi's `template`).
//!
//! The CRD holds the schema of this struct at every level (ten copies: a CRD schema has no
//! references), and kubectl's client-side apply keeps the whole CRD in a 256 KiB annotation. So the
//! small fields are typed here, and the big Kubernetes types (affinity, tolerations, topology
//! spread constraints, volumes, volume mounts) are kept as free-form objects
//! (`x-kubernetes-preserve-unknown-fields`): the operator parses them into the Kubernetes types
//! when it validates the platform and reports one that does not parse (or names an unknown field)
//! in status (`Ready=False`, `InvalidSpec`).

use std::collections::BTreeMap;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Pod customisation. Levels merge platform → service → group: labels, annotations and
/// `nodeSelector` key by key; `imagePullSecrets`, `tolerations`, `topologySpreadConstraints`,
/// `volumes` and `volumeMounts` add up (an entry with the same name, topologyKey or mountPath
/// replaces the less specific level's); `affinity`, `priorityClassName` and
/// `serviceAccountName` come from the most specific level that sets them.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodOverrides {
    /// Labels of the pods. Keys the operator sets (`app.kubernetes.io/{name,instance,component,
    /// version,managed-by}`, `campus.dev/*`) are refused: they select the pods.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pod_labels: BTreeMap<String, String>,
    /// Annotations of the pods (`campus.dev/*` is the operator's). A change rolls the pods.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pod_annotations: BTreeMap<String, String>,
    /// Labels of the Deployments and the DaemonSet themselves (same reserved keys as `podLabels`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub workload_labels: BTreeMap<String, String>,
    /// Annotations of the Deployments and the DaemonSet themselves (`campus.dev/*` is the
    /// operator's).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub workload_annotations: BTreeMap<String, String>,
    /// Secrets the kubelet pulls the images with, e.g. `[{name: regcred}]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub image_pull_secrets: Vec<PullSecret>,
    /// Node labels the pods must match (the pod's `nodeSelector`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    /// Pod tolerations (Kubernetes `Toleration`s). Filebeat keeps its own (every `NoSchedule`
    /// taint) and gets these too.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "free_form_list")]
    pub tolerations: Vec<Value>,
    /// Pod affinity (a Kubernetes `Affinity`: nodeAffinity, podAffinity, podAntiAffinity).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "free_form_object")]
    pub affinity: Option<Value>,
    /// Topology spread constraints (Kubernetes `TopologySpreadConstraint`s) of the Deployments'
    /// pods, added to the operator's spread over `kubernetes.io/hostname`; one on
    /// `kubernetes.io/hostname` replaces it. One without `labelSelector` counts the workload's
    /// own pods of the same rollout (its pod selector, `matchLabelKeys: [pod-template-hash]`).
    /// Not used by the Filebeat DaemonSet.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "free_form_list")]
    pub topology_spread_constraints: Vec<Value>,
    /// The pods' PriorityClass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority_class_name: Option<String>,
    /// The pods' ServiceAccount (e.g. for a cloud identity); its token is not mounted (the
    /// processes never call the Kubernetes API). Filebeat keeps its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_name: Option<String>,
    /// Extra pod volumes (Kubernetes `Volume`s). The names the operator uses (`config`,
    /// `settings`, `pipelines`, `registry`, `varlogcontainers`, `varlogpods`) are refused.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "free_form_list")]
    pub volumes: Vec<Value>,
    /// Extra volume mounts (Kubernetes `VolumeMount`s) of the main container; each names a
    /// volume of `volumes` (of this level or a less specific one).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "free_form_list")]
    pub volume_mounts: Vec<Value>,
}

/// An image pull Secret, by name.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct PullSecret {
    /// Name of a `kubernetes.io/dockerconfigjson` Secret in the platform's namespace.
    pub name: String,
}

/// A Kubernetes object kept as it is written; the operator parses it.
fn free_form_object(_: &mut SchemaGenerator) -> Schema {
    json_schema!({"type": "object", "x-kubernetes-preserve-unknown-fields": true})
}

/// A list of Kubernetes objects kept as they are written; the operator parses them.
fn free_form_list(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "array",
        "items": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
    })
}
