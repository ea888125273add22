//! Filebeat's identity: a ServiceAccount, and a ClusterRole with its binding so that
//! `add_kubernetes_metadata` can read pods, namespaces and nodes. The cluster-scoped two cannot
//! carry an owner reference to a namespaced platform: they are labelled with the platform's name
//! and namespace and deleted by the operator (when Filebeat is disabled and when the platform is
//! deleted).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::ResourceExt;

use super::{PLATFORM_NAMESPACE_LABEL, child_name, cluster_child_name, component_labels, meta};
use crate::crd::CampusPlatform;

pub fn filebeat_service_account_name(cr: &CampusPlatform) -> String {
    child_name(cr, "filebeat")
}

/// Labels of the cluster-scoped children: the platform's and its namespace.
pub fn cluster_labels(cr: &CampusPlatform) -> BTreeMap<String, String> {
    let mut l = component_labels(cr, "filebeat");
    l.insert(
        PLATFORM_NAMESPACE_LABEL.to_owned(),
        cr.namespace().unwrap_or_default(),
    );
    l
}

/// The label selector of a platform's cluster-scoped children.
pub fn cluster_selector(cr: &CampusPlatform) -> String {
    format!(
        "{},{PLATFORM_NAMESPACE_LABEL}={}",
        super::selector_string(cr),
        cr.namespace().unwrap_or_default()
    )
}

pub fn filebeat_service_account(cr: &CampusPlatform) -> ServiceAccount {
    ServiceAccount {
        metadata: meta(cr, filebeat_service_account_name(cr), "filebeat"),
        ..ServiceAccount::default()
    }
}

/// Binds the platform's Filebeat account to the Filebeat ClusterRole that the operator's installation
/// ships (`role`: operator/rbac/operator.yaml's `campus-filebeat`, the chart's `<release>-filebeat`).
/// The operator creates no ClusterRole: it may only bind that one (RBAC `bind` by name), so it holds
/// no right over any other role, `cluster-admin` included.
pub fn filebeat_cluster_role_binding(cr: &CampusPlatform, role: &str) -> ClusterRoleBinding {
    ClusterRoleBinding {
        metadata: ObjectMeta {
            name: Some(cluster_child_name(cr, "filebeat")),
            labels: Some(cluster_labels(cr)),
            ..ObjectMeta::default()
        },
        role_ref: RoleRef {
            api_group: Some("rbac.authorization.k8s.io".to_owned()),
            kind: "ClusterRole".to_owned(),
            name: role.to_owned(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".to_owned(),
            name: filebeat_service_account_name(cr),
            namespace: cr.namespace(),
            ..Subject::default()
        }]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::fixtures::{MINIMAL, platform};

    #[test]
    fn binding_ties_the_role_to_the_filebeat_account() {
        let cr = platform(MINIMAL);
        let binding = filebeat_cluster_role_binding(&cr, "campus-filebeat");
        assert_eq!(binding.name_any(), "campus-filebeat.campus.blue");
        assert_eq!(binding.role_ref.name, "campus-filebeat");
        let subject = &binding.subjects.as_ref().unwrap()[0];
        assert_eq!(subject.name, filebeat_service_account(&cr).name_any());
        assert_eq!(subject.namespace.as_deref(), Some("campus"));
        assert!(binding.metadata.owner_references.is_none());
        assert_eq!(
            cluster_selector(&cr),
            "app.kubernetes.io/managed-by=campus-operator,campus.dev/platform=blue,campus.dev/platform-namespace=campus"
        );
    }
}
