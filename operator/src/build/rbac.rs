//! Filebeat's identity: a ServiceAccount, and its place among the subjects of the one
//! ClusterRoleBinding the operator's installation ships (operator/rbac/operator.yaml's
//! `campus-filebeat`, the chart's `<release>-campus-operator-filebeat`), so that
//! `add_kubernetes_metadata` can read pods, namespaces and nodes. The operator may get, update and
//! patch that binding alone (RBAC `resourceNames`) and create none: it holds no right over any
//! other binding or role, `cluster-admin`'s included.

use super::{filebeat_meta, filebeat_name_in};
use crate::model::{Filebeat, Platform};
use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::Subject;

pub fn filebeat_service_account_name(p: &Platform, fb: &Filebeat) -> String {
    filebeat_name_in(&p.namespace, &p.name, &fb.namespace)
}

pub fn filebeat_service_account(p: &Platform, fb: &Filebeat) -> ServiceAccount {
    ServiceAccount {
        metadata: filebeat_meta(p, fb, filebeat_service_account_name(p, fb)),
        ..ServiceAccount::default()
    }
}

/// A ServiceAccount as a binding's subject.
pub fn service_account_subject(namespace: &str, name: &str) -> Subject {
    Subject {
        kind: "ServiceAccount".to_owned(),
        name: name.to_owned(),
        namespace: Some(namespace.to_owned()),
        ..Subject::default()
    }
}

/// The platform's Filebeat account as a subject of the installation's Filebeat binding.
pub fn filebeat_subject(p: &Platform, fb: &Filebeat) -> Subject {
    service_account_subject(&fb.namespace, &filebeat_service_account_name(p, fb))
}

/// Every subject the Filebeat of the platform `name` in `namespace` may have had: its account in
/// the platform's namespace and in each of `filebeat_namespaces` (where Filebeat is or was).
pub fn filebeat_subjects_of<'a>(
    namespace: &str,
    name: &str,
    filebeat_namespaces: impl IntoIterator<Item = &'a str>,
) -> Vec<Subject> {
    let mut out = vec![service_account_subject(
        namespace,
        &filebeat_name_in(namespace, name, namespace),
    )];
    for ns in filebeat_namespaces {
        let s = service_account_subject(ns, &filebeat_name_in(namespace, name, ns));
        if !out.contains(&s) {
            out.push(s);
        }
    }
    out
}

/// `subjects` with `keep` present (appended when missing) and every one of `drop` but `keep`
/// gone; `None` when nothing changes. Other subjects (other platforms') keep their order.
pub fn edit_subjects(
    subjects: &[Subject],
    keep: Option<&Subject>,
    drop: &[Subject],
) -> Option<Vec<Subject>> {
    let same = |a: &Subject, b: &Subject| {
        a.kind == b.kind && a.name == b.name && a.namespace == b.namespace
    };
    let mut out: Vec<Subject> = subjects
        .iter()
        .filter(|s| keep.is_some_and(|k| same(s, k)) || !drop.iter().any(|d| same(s, d)))
        .cloned()
        .collect();
    if let Some(k) = keep
        && !out.iter().any(|s| same(s, k))
    {
        out.push(k.clone());
    }
    (out != subjects).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::fixtures::{MINIMAL, model};
    use kube::ResourceExt;

    #[test]
    fn the_filebeat_account_is_a_subject_of_the_installations_binding() {
        let p = model(MINIMAL);
        let fb = p.logging.filebeat.as_ref().unwrap();
        let sa = filebeat_service_account(&p, fb);
        assert_eq!(sa.name_any(), "blue-filebeat");
        assert_eq!(sa.namespace().as_deref(), Some("campus"));
        assert_eq!(sa.owner_references().len(), 1);
        let subject = filebeat_subject(&p, fb);
        assert_eq!(
            (subject.name.as_str(), subject.namespace.as_deref()),
            ("blue-filebeat", Some("campus"))
        );
        assert_eq!(
            crate::build::unowned_selector(&p.namespace, &p.name),
            "app.kubernetes.io/managed-by=campus-operator,campus.dev/platform=blue,campus.dev/platform-namespace=campus"
        );
    }

    #[test]
    fn subjects_are_added_once_and_only_this_platforms_are_removed() {
        let other = service_account_subject("campus", "green-filebeat");
        let mine = service_account_subject("campus", "blue-filebeat");
        let moved = service_account_subject("logs", "campus-blue-filebeat");
        let all = filebeat_subjects_of("campus", "blue", ["logs", "campus"]);
        assert_eq!(all, [mine.clone(), moved.clone()]);
        // Added after the others.
        assert_eq!(
            edit_subjects(std::slice::from_ref(&other), Some(&mine), &all),
            Some(vec![other.clone(), mine.clone()])
        );
        // Already there: no update.
        assert_eq!(
            edit_subjects(&[other.clone(), mine.clone()], Some(&mine), &all),
            None
        );
        // Filebeat moved to `logs`: the old subject goes, the new one comes.
        assert_eq!(
            edit_subjects(&[mine.clone(), other.clone()], Some(&moved), &all),
            Some(vec![other.clone(), moved.clone()])
        );
        // Disabled: every subject of this platform goes, the other platform's stays.
        assert_eq!(
            edit_subjects(&[mine, other.clone(), moved], None, &all),
            Some(vec![other.clone()])
        );
        assert_eq!(edit_subjects(&[other], None, &all), None);
    }
}
