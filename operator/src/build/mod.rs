//! Pure builders: spec in, Kubernetes objects out, one module per kind. Nothing here talks to the
//! API server, so every builder is unit-tested from an inline YAML fixture.

pub mod auth;
pub mod config_map;
pub mod daemon_set;
pub mod deployment;
pub mod env;
pub mod pdb;
pub mod rbac;
pub mod security;
pub mod service;

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::{ConfigMap, Service, ServiceAccount};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::ClusterRoleBinding;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use sha2::{Digest, Sha256};

use crate::model::Platform;

/// `app.kubernetes.io/managed-by` value on every child; with [`PLATFORM_LABEL`] it selects what to prune.
pub const MANAGED_BY: &str = "campus-operator";
/// Label with the owning platform's name.
pub const PLATFORM_LABEL: &str = "campus.dev/platform";
/// Label with the owning platform's namespace (on cluster-scoped children).
pub const PLATFORM_NAMESPACE_LABEL: &str = "campus.dev/platform-namespace";
/// Pod-template annotation: hash of the configuration the pods read; a change rolls them.
pub const CONFIG_HASH_ANNOTATION: &str = "campus.dev/config-hash";

/// The Filebeat ClusterRole of operator/rbac/operator.yaml (the chart names its own).
pub const DEFAULT_FILEBEAT_CLUSTER_ROLE: &str = "campus-filebeat";

/// Inputs beyond the platform that the builders need: the operator's settings.
#[derive(Debug, Clone, Default)]
pub struct BuildInputs {
    /// Tag of the default Campus images (the operator's version).
    pub image_tag: String,
    /// The ClusterRole that Filebeat accounts are bound to (installed with the operator).
    pub filebeat_cluster_role: String,
}

impl BuildInputs {
    pub fn new(image_tag: impl Into<String>) -> Self {
        Self {
            image_tag: image_tag.into(),
            filebeat_cluster_role: DEFAULT_FILEBEAT_CLUSTER_ROLE.to_owned(),
        }
    }
}

/// Every object the platform should have.
#[derive(Debug, Clone, Default)]
pub struct Desired {
    pub config_maps: Vec<ConfigMap>,
    pub deployments: Vec<Deployment>,
    pub services: Vec<Service>,
    pub daemon_sets: Vec<DaemonSet>,
    pub service_accounts: Vec<ServiceAccount>,
    pub cluster_role_bindings: Vec<ClusterRoleBinding>,
    pub pdbs: Vec<PodDisruptionBudget>,
}

impl Desired {
    /// Builds every child of the validated platform `p`.
    pub fn build(p: &Platform, inputs: &BuildInputs) -> Desired {
        let config_maps = config_map::all(p);
        let deployments = deployment::all(p, inputs, &config_maps);
        let services = service::all(p);
        let (daemon_sets, service_accounts, cluster_role_bindings) = match &p.logging.filebeat {
            Some(fb) => (
                vec![daemon_set::filebeat(p, fb, &config_maps)],
                vec![rbac::filebeat_service_account(p)],
                vec![rbac::filebeat_cluster_role_binding(
                    p,
                    &inputs.filebeat_cluster_role,
                )],
            ),
            None => Default::default(),
        };
        Desired {
            config_maps,
            deployments,
            services,
            daemon_sets,
            service_accounts,
            cluster_role_bindings,
            pdbs: pdb::all(p),
        }
    }

    /// Number of objects.
    pub fn len(&self) -> usize {
        self.config_maps.len()
            + self.deployments.len()
            + self.services.len()
            + self.daemon_sets.len()
            + self.service_accounts.len()
            + self.cluster_role_bindings.len()
            + self.pdbs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// `<platform>-<suffix>`: the name of a namespaced child.
pub fn child_name(p: &Platform, suffix: &str) -> String {
    child_name_of(&p.name, suffix)
}

/// [`child_name`] by the platform's name.
pub fn child_name_of(platform: &str, suffix: &str) -> String {
    format!("{platform}-{suffix}")
}

/// The name of a cluster-scoped child: `campus-<suffix>.<namespace>.<platform>`.
pub fn cluster_child_name(p: &Platform, suffix: &str) -> String {
    format!("campus-{suffix}.{}.{}", p.namespace, p.name)
}

/// Labels that select a platform's children (and prune them), by the platform's name.
pub fn selector_labels(name: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            "app.kubernetes.io/managed-by".to_owned(),
            MANAGED_BY.to_owned(),
        ),
        (PLATFORM_LABEL.to_owned(), name.to_owned()),
    ])
}

/// The label selector string matching [`selector_labels`].
pub fn selector_string(name: &str) -> String {
    selector_labels(name)
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Labels of one component's objects and pods.
pub fn component_labels(p: &Platform, component: &str) -> BTreeMap<String, String> {
    let mut l = selector_labels(&p.name);
    l.insert("app.kubernetes.io/name".to_owned(), "campus".to_owned());
    l.insert("app.kubernetes.io/instance".to_owned(), p.name.clone());
    l.insert(
        "app.kubernetes.io/component".to_owned(),
        component.to_owned(),
    );
    l.insert(
        "app.kubernetes.io/version".to_owned(),
        crate::VERSION.to_owned(),
    );
    l
}

/// The labels a component's pods are selected by (stable across versions).
pub fn pod_selector(p: &Platform, component: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/instance".to_owned(), p.name.clone()),
        (
            "app.kubernetes.io/component".to_owned(),
            component.to_owned(),
        ),
        (PLATFORM_LABEL.to_owned(), p.name.clone()),
    ])
}

/// The controller owner reference to the platform.
pub fn owner_ref(p: &Platform) -> OwnerReference {
    p.owner_ref()
}

/// Metadata of a namespaced child of one component.
pub fn meta(p: &Platform, name: String, component: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: Some(p.namespace.clone()),
        labels: Some(component_labels(p, component)),
        owner_references: Some(vec![owner_ref(p)]),
        ..ObjectMeta::default()
    }
}

/// Hex SHA-256 of the given ConfigMaps' data (sorted by key), for [`CONFIG_HASH_ANNOTATION`].
pub fn config_hash<'a>(maps: impl IntoIterator<Item = &'a ConfigMap>) -> String {
    let mut h = Sha256::new();
    for cm in maps {
        h.update(cm.metadata.name.as_deref().unwrap_or_default());
        h.update([0]);
        for (k, v) in cm.data.iter().flatten() {
            h.update(k);
            h.update([0]);
            h.update(v);
            h.update([0]);
        }
    }
    let digest = h.finalize();
    digest.iter().take(16).map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
pub(crate) mod fixtures {
    use std::collections::BTreeMap;

    use k8s_openapi::api::apps::v1::Deployment;

    use crate::crd::CampusPlatform;
    use crate::model::Platform;

    /// The labels of a Deployment's pod template.
    pub fn pod_labels(d: &Deployment) -> &BTreeMap<String, String> {
        let template = &d.spec.as_ref().expect("a spec").template;
        let meta = template.metadata.as_ref().expect("template metadata");
        meta.labels.as_ref().expect("pod labels")
    }

    /// A platform as the API server would hand it over (with a uid), from YAML.
    pub fn platform(yaml: &str) -> CampusPlatform {
        let mut cr: CampusPlatform = serde_yaml::from_str(yaml).expect("fixture parses");
        cr.metadata.uid.get_or_insert_with(|| "0000-uid".to_owned());
        cr.metadata
            .namespace
            .get_or_insert_with(|| "campus".to_owned());
        cr
    }

    /// The validated model of a fixture (which must be valid).
    pub fn model(yaml: &str) -> Platform {
        valid(&platform(yaml))
    }

    /// The validated model of a platform (which must be valid).
    pub fn valid(cr: &CampusPlatform) -> Platform {
        crate::controller::validate::validate(cr)
            .unwrap_or_else(|e| panic!("the fixture is invalid: {e}"))
    }

    pub const MINIMAL: &str = r#"
apiVersion: campus.dev/v1alpha1
kind: CampusPlatform
metadata: {name: blue}
spec:
  kafka: {brokers: "kafka:9092"}
  mysql: {urlSecretRef: {name: campus-db, key: url}}
  mongodb: {urlSecretRef: {name: campus-db, key: mongo}}
  redis: {url: "redis://redis:6379"}
  elasticsearch: {url: "http://es:9200"}
"#;

    /// MINIMAL with Redis and Elasticsearch read from Secrets.
    pub fn with_secret_urls() -> String {
        MINIMAL
            .replace(
                r#"redis: {url: "redis://redis:6379"}"#,
                "redis: {urlSecretRef: {name: campus-redis, key: url}}",
            )
            .replace(
                r#"elasticsearch: {url: "http://es:9200"}"#,
                "elasticsearch: {urlSecretRef: {name: campus-es, key: url}}",
            )
    }
}
