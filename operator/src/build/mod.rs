//! Pure builders: spec in, Kubernetes objects out, one module per kind. Nothing here talks to the
//! API server, so every builder is unit-tested from an inline YAML fixture.

pub mod auth;
pub mod config_map;
pub mod daemon_set;
pub mod deployment;
pub mod env;
pub mod logstash;
pub mod pdb;
pub mod pod_template;
pub mod rbac;
pub mod security;
pub mod service;

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::{ConfigMap, Service, ServiceAccount};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::Subject;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use sha2::{Digest, Sha256};

use crate::model::{Filebeat, Platform};

/// `app.kubernetes.io/managed-by` value on every child; with [`PLATFORM_LABEL`] it selects what to prune.
pub const MANAGED_BY: &str = "campus-operator";
/// Label with the owning platform's name.
pub const PLATFORM_LABEL: &str = "campus.dev/platform";
/// Label with the owning platform's namespace, on the children that cannot carry an owner
/// reference (Filebeat's objects outside the platform's namespace).
pub const PLATFORM_NAMESPACE_LABEL: &str = "campus.dev/platform-namespace";
/// Pod-template annotation: hash of the configuration the pods read; a change rolls them.
pub const CONFIG_HASH_ANNOTATION: &str = "campus.dev/config-hash";

/// The Filebeat ClusterRole of operator/rbac/operator.yaml (the chart names its own).
pub const DEFAULT_FILEBEAT_CLUSTER_ROLE: &str = "campus-filebeat";
/// The ClusterRoleBinding of operator/rbac/operator.yaml that binds it to the platforms' Filebeat
/// accounts (the chart names its own): the operator keeps its subjects.
pub const DEFAULT_FILEBEAT_CLUSTER_ROLE_BINDING: &str = "campus-filebeat";

/// Inputs beyond the platform that the builders need: the operator's settings.
#[derive(Debug, Clone, Default)]
pub struct BuildInputs {
    /// Tag of the default Campus images (the operator's version).
    pub image_tag: String,
    /// Registry (and path) before the default Campus images; empty: their bare names.
    pub image_registry: String,
}

impl BuildInputs {
    pub fn new(image_tag: impl Into<String>) -> Self {
        Self {
            image_tag: image_tag.into(),
            image_registry: String::new(),
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
    /// Filebeat's account, as a subject of the installation's Filebeat ClusterRoleBinding.
    pub filebeat_subject: Option<Subject>,
    pub pdbs: Vec<PodDisruptionBudget>,
}

impl Desired {
    /// Builds every child of the validated platform `p`.
    pub fn build(p: &Platform, inputs: &BuildInputs) -> Desired {
        let config_maps = config_map::all(p);
        let deployments = deployment::all(p, inputs, &config_maps);
        let services = service::all(p);
        let (daemon_sets, service_accounts, filebeat_subject) = match &p.logging.filebeat {
            Some(fb) => (
                vec![daemon_set::filebeat(p, fb, &config_maps)],
                vec![rbac::filebeat_service_account(p, fb)],
                Some(rbac::filebeat_subject(p, fb)),
            ),
            None => Default::default(),
        };
        Desired {
            config_maps,
            deployments,
            services,
            daemon_sets,
            service_accounts,
            filebeat_subject,
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
            + usize::from(self.filebeat_subject.is_some())
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
    label_selector(&selector_labels(name))
}

/// The equality-based label selector (`k=v,…`) matching every one of `labels`.
pub fn label_selector(labels: &BTreeMap<String, String>) -> String {
    labels
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

/// Labels of a child without an owner reference: its component's, and the platform's namespace.
pub fn unowned_labels(p: &Platform, component: &str) -> BTreeMap<String, String> {
    let mut l = component_labels(p, component);
    l.insert(PLATFORM_NAMESPACE_LABEL.to_owned(), p.namespace.clone());
    l
}

/// The label selector of the children without an owner reference of the platform `name` in
/// `namespace`.
pub fn unowned_selector(namespace: &str, name: &str) -> String {
    format!(
        "{},{PLATFORM_NAMESPACE_LABEL}={namespace}",
        selector_string(name)
    )
}

/// Name of Filebeat's DaemonSet, ConfigMap and ServiceAccount: `<platform>-filebeat` in the
/// platform's namespace; `<platform namespace>-<platform>-filebeat` in another, which platforms
/// of several namespaces may share.
pub fn filebeat_name_in(platform_namespace: &str, platform: &str, namespace: &str) -> String {
    if namespace == platform_namespace {
        child_name_of(platform, "filebeat")
    } else {
        format!("{platform_namespace}-{platform}-filebeat")
    }
}

/// Metadata of one of Filebeat's objects: a child like any other in the platform's namespace; in
/// another (`logging.filebeat.namespace`) no owner reference can name the platform, so it is
/// labelled with the platform's namespace and pruned, and deleted with the platform, by label.
pub fn filebeat_meta(p: &Platform, fb: &Filebeat, name: String) -> ObjectMeta {
    if fb.namespace == p.namespace {
        return meta(p, name, "filebeat");
    }
    ObjectMeta {
        name: Some(name),
        namespace: Some(fb.namespace.clone()),
        labels: Some(unowned_labels(p, "filebeat")),
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

    /// A Deployment's first container.
    pub fn container(d: &Deployment) -> &k8s_openapi::api::core::v1::Container {
        &d.spec
            .as_ref()
            .unwrap()
            .template
            .spec
            .as_ref()
            .unwrap()
            .containers[0]
    }

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
