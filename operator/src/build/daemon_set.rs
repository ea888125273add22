//! The Filebeat DaemonSet: container logs and its registry on hostPaths, `filebeat.yml` from a
//! ConfigMap whose hash rolls the pods.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{DaemonSet, DaemonSetSpec, DaemonSetUpdateStrategy};
use k8s_openapi::api::core::v1::{
    ConfigMap, ConfigMapVolumeSource, Container, EnvVar, EnvVarSource, HostPathVolumeSource,
    ObjectFieldSelector, PodSpec, PodTemplateSpec, Toleration, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};

use super::config_map::filebeat_name;
use super::rbac::filebeat_service_account_name;
use super::{
    CONFIG_HASH_ANNOTATION, PLATFORM_NAMESPACE_LABEL, component_labels, config_hash, filebeat_meta,
    pod_selector, pod_template, security,
};
use crate::model::{Filebeat, Platform};

/// Where the registry (read offsets) lives on the node, per platform.
pub fn registry_host_path(p: &Platform) -> String {
    format!("/var/lib/campus-filebeat/{}/{}", p.namespace, p.name)
}

fn host_path(name: &str, path: &str, type_: &str) -> Volume {
    Volume {
        name: name.to_owned(),
        host_path: Some(HostPathVolumeSource {
            path: path.to_owned(),
            type_: Some(type_.to_owned()),
        }),
        ..Volume::default()
    }
}

fn mount(name: &str, path: &str, read_only: bool) -> VolumeMount {
    VolumeMount {
        name: name.to_owned(),
        mount_path: path.to_owned(),
        read_only: Some(read_only),
        ..VolumeMount::default()
    }
}

pub fn filebeat(p: &Platform, fb: &Filebeat, maps: &[ConfigMap]) -> DaemonSet {
    let name = filebeat_name(p, fb);
    let hash = config_hash(
        maps.iter()
            .filter(|m| m.metadata.name.as_deref() == Some(&name)),
    );
    // Elsewhere, platforms of one name from several namespaces may meet: their pods are told
    // apart by the platform's namespace too.
    let mut selector = pod_selector(p, "filebeat");
    if fb.namespace != p.namespace {
        selector.insert(PLATFORM_NAMESPACE_LABEL.to_owned(), p.namespace.clone());
    }
    let mut pod_labels = component_labels(p, "filebeat");
    pod_labels.extend(selector.clone());
    let container = Container {
        name: "filebeat".to_owned(),
        image: Some(fb.image.clone()),
        image_pull_policy: Some(p.pull_policy.as_str().to_owned()),
        args: Some(vec![
            "-c".to_owned(),
            "/etc/filebeat/filebeat.yml".to_owned(),
            "-e".to_owned(),
        ]),
        env: Some(vec![EnvVar {
            name: "NODE_NAME".to_owned(),
            value_from: Some(EnvVarSource {
                field_ref: Some(ObjectFieldSelector {
                    field_path: "spec.nodeName".to_owned(),
                    ..ObjectFieldSelector::default()
                }),
                ..EnvVarSource::default()
            }),
            ..EnvVar::default()
        }]),
        resources: fb.resources.clone(),
        security_context: Some(security::filebeat_container()),
        volume_mounts: Some(vec![
            mount("config", "/etc/filebeat", true),
            mount("varlogcontainers", "/var/log/containers", true),
            mount("varlogpods", "/var/log/pods", true),
            mount("registry", "/usr/share/filebeat/data", false),
        ]),
        ..Container::default()
    };
    let mut ds = DaemonSet {
        metadata: filebeat_meta(p, fb, name.clone()),
        spec: Some(DaemonSetSpec {
            selector: LabelSelector {
                match_labels: Some(selector),
                ..LabelSelector::default()
            },
            update_strategy: Some(DaemonSetUpdateStrategy {
                type_: Some("RollingUpdate".to_owned()),
                ..DaemonSetUpdateStrategy::default()
            }),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(pod_labels),
                    annotations: Some(BTreeMap::from([(CONFIG_HASH_ANNOTATION.to_owned(), hash)])),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    service_account_name: Some(filebeat_service_account_name(p, fb)),
                    security_context: Some(security::filebeat_pod()),
                    containers: vec![container],
                    tolerations: Some(vec![Toleration {
                        operator: Some("Exists".to_owned()),
                        effect: Some("NoSchedule".to_owned()),
                        ..Toleration::default()
                    }]),
                    termination_grace_period_seconds: Some(30),
                    volumes: Some(vec![
                        Volume {
                            name: "config".to_owned(),
                            config_map: Some(ConfigMapVolumeSource {
                                name: name.clone(),
                                default_mode: Some(0o640),
                                ..ConfigMapVolumeSource::default()
                            }),
                            ..Volume::default()
                        },
                        host_path("varlogcontainers", "/var/log/containers", "Directory"),
                        host_path("varlogpods", "/var/log/pods", "Directory"),
                        host_path("registry", &registry_host_path(p), "DirectoryOrCreate"),
                    ]),
                    ..PodSpec::default()
                }),
            },
            ..DaemonSetSpec::default()
        }),
        ..DaemonSet::default()
    };
    // The platform's pod customisation only: Filebeat belongs to no service.
    if let Some(spec) = ds.spec.as_mut() {
        pod_template::apply(
            &p.template,
            pod_template::Pods::DaemonSet,
            &pod_selector(p, "filebeat"),
            &mut ds.metadata,
            &mut spec.template,
        );
    }
    ds
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::fixtures::{MINIMAL, model};
    use crate::build::{BuildInputs, Desired};

    #[test]
    fn filebeat_reads_host_logs_keeps_its_registry_and_rolls_on_config_change() {
        let p = model(MINIMAL);
        let d = Desired::build(&p, &BuildInputs::new("t"));
        let ds = &d.daemon_sets[0];
        let pod = ds.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
        let paths: Vec<_> = pod
            .volumes
            .as_ref()
            .unwrap()
            .iter()
            .filter_map(|v| v.host_path.as_ref().map(|h| h.path.clone()))
            .collect();
        assert_eq!(
            paths,
            [
                "/var/log/containers",
                "/var/log/pods",
                "/var/lib/campus-filebeat/campus/blue"
            ]
        );
        assert_eq!(pod.service_account_name.as_deref(), Some("blue-filebeat"));
        let hash = |p: &Platform| {
            let d = Desired::build(p, &BuildInputs::new("t"));
            d.daemon_sets[0]
                .spec
                .as_ref()
                .unwrap()
                .template
                .metadata
                .as_ref()
                .unwrap()
                .annotations
                .as_ref()
                .unwrap()[CONFIG_HASH_ANNOTATION]
                .clone()
        };
        let other = model(&format!(
            "{MINIMAL}  logging: {{filebeat: {{accessOnly: false}}}}\n"
        ));
        assert_ne!(hash(&p), hash(&other));
        let same = model(&format!("{MINIMAL}  coupon: {{replicas: 4}}\n"));
        assert_eq!(hash(&p), hash(&same));
    }

    #[test]
    fn filebeat_in_a_namespace_of_its_own_is_labelled_not_owned() {
        use kube::ResourceExt;
        let p = model(&format!(
            "{MINIMAL}  logging: {{filebeat: {{namespace: campus-logs}}}}\n"
        ));
        assert!(p.filebeat_elsewhere());
        let d = Desired::build(&p, &BuildInputs::new("t"));
        let platform_ns = [
            ("app.kubernetes.io/managed-by", "campus-operator"),
            ("campus.dev/platform", "blue"),
            ("campus.dev/platform-namespace", "campus"),
        ];
        let fb_cm = d
            .config_maps
            .iter()
            .find(|m| m.name_any().ends_with("filebeat"))
            .unwrap();
        let objects: [(&str, &ObjectMeta); 3] = [
            ("DaemonSet", &d.daemon_sets[0].metadata),
            ("ServiceAccount", &d.service_accounts[0].metadata),
            ("ConfigMap", &fb_cm.metadata),
        ];
        for (kind, m) in objects {
            assert_eq!(m.name.as_deref(), Some("campus-blue-filebeat"), "{kind}");
            assert_eq!(m.namespace.as_deref(), Some("campus-logs"), "{kind}");
            assert!(
                m.owner_references.is_none(),
                "{kind}: no owner reference across namespaces"
            );
            let labels = m.labels.as_ref().unwrap();
            for (k, v) in platform_ns {
                assert_eq!(labels.get(k).map(String::as_str), Some(v), "{kind}: {k}");
            }
        }
        // Every other child stays in the platform's namespace, owned.
        for m in d
            .config_maps
            .iter()
            .filter(|m| !m.name_any().ends_with("filebeat"))
        {
            assert_eq!(m.namespace().as_deref(), Some("campus"));
            assert_eq!(m.owner_references().len(), 1);
        }
        let spec = d.daemon_sets[0].spec.as_ref().unwrap();
        let pod = spec.template.spec.as_ref().unwrap();
        assert_eq!(
            pod.service_account_name.as_deref(),
            Some("campus-blue-filebeat")
        );
        let config = pod.volumes.as_ref().unwrap()[0]
            .config_map
            .as_ref()
            .unwrap();
        assert_eq!(config.name, "campus-blue-filebeat");
        // Platforms of one name from two namespaces never select each other's pods.
        let selector = spec.selector.match_labels.as_ref().unwrap();
        assert_eq!(selector["campus.dev/platform-namespace"], "campus");
        let pod_labels = spec
            .template
            .metadata
            .as_ref()
            .unwrap()
            .labels
            .as_ref()
            .unwrap();
        assert!(selector.iter().all(|(k, v)| pod_labels.get(k) == Some(v)));
        // Its subject names the account where it is; it still collects the platform's namespace.
        let subject = d.filebeat_subject.as_ref().unwrap();
        assert_eq!(
            (subject.name.as_str(), subject.namespace.as_deref()),
            ("campus-blue-filebeat", Some("campus-logs"))
        );
        assert!(
            fb_cm.data.as_ref().unwrap()["filebeat.yml"].contains("campus"),
            "collects the platform's namespace"
        );
        // The default stays: in the platform's namespace, owned, without the namespace label.
        let same = model(&format!(
            "{MINIMAL}  logging: {{filebeat: {{namespace: campus}}}}\n"
        ));
        assert!(!same.filebeat_elsewhere());
        let d = Desired::build(&same, &BuildInputs::new("t"));
        assert_eq!(d.daemon_sets[0].name_any(), "blue-filebeat");
        assert_eq!(d.daemon_sets[0].owner_references().len(), 1);
    }
}
