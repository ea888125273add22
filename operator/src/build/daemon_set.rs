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
    CONFIG_HASH_ANNOTATION, component_labels, config_hash, meta, pod_selector, pod_template,
    security,
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
    let name = filebeat_name(p);
    let hash = config_hash(
        maps.iter()
            .filter(|m| m.metadata.name.as_deref() == Some(&name)),
    );
    let mut pod_labels = component_labels(p, "filebeat");
    pod_labels.extend(pod_selector(p, "filebeat"));
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
        metadata: meta(p, name.clone(), "filebeat"),
        spec: Some(DaemonSetSpec {
            selector: LabelSelector {
                match_labels: Some(pod_selector(p, "filebeat")),
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
                    service_account_name: Some(filebeat_service_account_name(p)),
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
}
