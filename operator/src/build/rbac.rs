//! Filebeat's identity: a ServiceAccount, and a ClusterRole with its binding so that
//! `add_kubernetes_metadata` can read pods, namespaces and nodes. The cluster-scoped two cannot
//! carry an owner reference to a namespaced platform: they are labelled with the platform's name
//! and namespace and deleted by the operator (when Filebeat is disabled and when the platform is
//! deleted).

use std::collections::BTreeMap;

use super::{PLATFORM_NAMESPACE_LABEL, child_name, cluster_child_name, component_labels, meta};
use crate::model::Platform;
use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

pub fn filebeat_service_account_name(p: &Platform) -> String {
    child_name(p, "filebeat")
}

/// Labels of the cluster-scoped children: the platform's and its namespace.
pub fn cluster_labels(p: &Platform) -> BTreeMap<String, String> {
    let mut l = component_labels(p, "filebeat");
    l.insert(PLATFORM_NAMESPACE_LABEL.to_owned(), p.namespace.clone());
    l
}

/// The label selector of the cluster-scoped children of the platform `name` in `namespace`.
pub fn cluster_selector(namespace: &str, name: &str) -> String {
    format!(
        "{},{PLATFORM_NAMESPACE_LABEL}={namespace}",
        super::selector_string(name),
    )
}

pub fn filebeat_service_account(p: &Platform) -> ServiceAccount {
    ServiceAccount {
        metadata: meta(p, filebeat_service_account_name(p), "filebeat"),
        ..ServiceAccount::default()
    }
}

/// Binds the platform's Filebeat account to the Filebeat ClusterRole that the operator's installation
/// ships (`role`: operator/rbac/operator.yaml's `campus-filebeat`, the chart's `<release>-filebeat`).
/// The operator creates no ClusterRole: it may only bind that one (RBAC `bind` by name), so it holds
/// no right over any other role, `cluster-admin` included.
pub fn filebeat_cluster_role_binding(p: &Platform, role: &str) -> ClusterRoleBinding {
    ClusterRoleBinding {
        metadata: ObjectMeta {
            name: Some(cluster_child_name(p, "filebeat")),
            labels: Some(cluster_labels(p)),
            ..ObjectMeta::default()
        },
        role_ref: RoleRef {
            api_group: Some("rbac.authorization.k8s.io".to_owned()),
            kind: "ClusterRole".to_owned(),
            name: role.to_owned(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".to_owned(),
            name: filebeat_service_account_name(p),
            namespace: Some(p.namespace.clone()),
            ..Subject::default()
        }]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::fixtures::{MINIMAL, model};
    use kube::ResourceExt;

    #[test]
    fn binding_ties_the_role_to_the_filebeat_account() {
        let p = model(MINIMAL);
        let binding = filebeat_cluster_role_binding(&p, "campus-filebeat");
        assert_eq!(binding.name_any(), "campus-filebeat.campus.blue");
        assert_eq!(binding.role_ref.name, "campus-filebeat");
        let subject = &binding.subjects.as_ref().unwrap()[0];
        assert_eq!(subject.name, filebeat_service_account(&p).name_any());
        assert_eq!(subject.namespace.as_deref(), Some("campus"));
        assert!(binding.metadata.owner_references.is_none());
        assert_eq!(
            cluster_selector(&p.namespace, &p.name),
            "app.kubernetes.io/managed-by=campus-operator,campus.dev/platform=blue,campus.dev/platform-namespace=campus"
        );
    }
}
