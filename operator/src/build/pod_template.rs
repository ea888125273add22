//! The spec's pod customisation (`template`, already merged platform → service → group by
//! validation) applied to a workload the builders made. What the operator sets itself stays: its
//! labels and annotations (validation refuses the keys, and they win here too), its volumes, its
//! tolerations (Filebeat's), Filebeat's ServiceAccount.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};

use crate::model::PodTemplate;

/// Which kind of pod the template goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pods {
    /// A Deployment's: everything applies; the topology spread constraints join the operator's.
    Deployment,
    /// Filebeat's DaemonSet: one pod per node, so no topology spread, and its own ServiceAccount
    /// (bound to the Filebeat ClusterRole) stays.
    DaemonSet,
}

/// Adds `t` to a workload's metadata and pod template. `selector` is the workload's pod selector
/// (for a spread constraint that names none).
pub fn apply(
    t: &PodTemplate,
    pods: Pods,
    selector: &BTreeMap<String, String>,
    workload: &mut ObjectMeta,
    template: &mut PodTemplateSpec,
) {
    add(&mut workload.labels, &t.workload_labels);
    add(&mut workload.annotations, &t.workload_annotations);
    let meta = template.metadata.get_or_insert_with(ObjectMeta::default);
    add(&mut meta.labels, &t.pod_labels);
    add(&mut meta.annotations, &t.pod_annotations);
    let Some(pod) = template.spec.as_mut() else {
        return;
    };
    if !t.image_pull_secrets.is_empty() {
        pod.image_pull_secrets
            .get_or_insert_with(Vec::new)
            .extend(t.image_pull_secrets.iter().cloned());
    }
    add(&mut pod.node_selector, &t.node_selector);
    if !t.tolerations.is_empty() {
        pod.tolerations
            .get_or_insert_with(Vec::new)
            .extend(t.tolerations.iter().cloned());
    }
    if t.affinity.is_some() {
        pod.affinity = t.affinity.clone();
    }
    if t.priority_class_name.is_some() {
        pod.priority_class_name = t.priority_class_name.clone();
    }
    if pods == Pods::Deployment {
        if t.service_account_name.is_some() {
            pod.service_account_name = t.service_account_name.clone();
        }
        if !t.topology_spread_constraints.is_empty() {
            let spread = pod.topology_spread_constraints.get_or_insert_with(Vec::new);
            // The operator's constraint on a key the template names gives way to the template's.
            spread.retain(|own| {
                !t.topology_spread_constraints
                    .iter()
                    .any(|c| c.topology_key == own.topology_key)
            });
            for c in &t.topology_spread_constraints {
                let mut c = c.clone();
                if c.label_selector.is_none() {
                    c.label_selector = Some(LabelSelector {
                        match_labels: Some(selector.clone()),
                        ..LabelSelector::default()
                    });
                    if c.match_label_keys.is_none() {
                        c.match_label_keys = Some(vec!["pod-template-hash".to_owned()]);
                    }
                }
                spread.push(c);
            }
        }
    }
    if !t.volumes.is_empty() {
        pod.volumes
            .get_or_insert_with(Vec::new)
            .extend(t.volumes.iter().cloned());
    }
    if !t.volume_mounts.is_empty()
        && let Some(main) = pod.containers.first_mut()
    {
        main.volume_mounts
            .get_or_insert_with(Vec::new)
            .extend(t.volume_mounts.iter().cloned());
    }
}

/// Adds the entries of `extra` whose keys `map` does not have yet (the operator's win).
fn add(map: &mut Option<BTreeMap<String, String>>, extra: &BTreeMap<String, String>) {
    if extra.is_empty() {
        return;
    }
    let map = map.get_or_insert_with(BTreeMap::new);
    for (k, v) in extra {
        map.entry(k.clone()).or_insert_with(|| v.clone());
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
    use k8s_openapi::api::core::v1::PodSpec;
    use kube::ResourceExt;

    use crate::build::fixtures::{MINIMAL, model, pod_labels};
    use crate::build::{BuildInputs, Desired};

    /// Every level set: the platform for all, the content service over it, its cache group over
    /// that.
    const LEVELS: &str = r#"
  template:
    podLabels: {team: campus, tier: platform}
    podAnnotations: {note: platform}
    workloadLabels: {cost-center: "42"}
    imagePullSecrets: [{name: regcred}]
    nodeSelector: {zone: a, disk: ssd}
    tolerations: [{key: dedicated, operator: Equal, value: campus, effect: NoSchedule}]
    priorityClassName: low
    serviceAccountName: campus-pods
    volumes: [{name: shared, emptyDir: {}}]
  content:
    template:
      podLabels: {tier: content}
      imagePullSecrets: [{name: content-cred}]
      nodeSelector: {zone: b}
      tolerations: [{key: spot, operator: Exists}]
      priorityClassName: mid
      volumeMounts: [{name: shared, mountPath: /shared}]
    groups:
      cache:
        template:
          podLabels: {tier: cache}
          nodeSelector: {zone: c}
          priorityClassName: high
          affinity:
            nodeAffinity:
              requiredDuringSchedulingIgnoredDuringExecution:
                nodeSelectorTerms:
                  - matchExpressions: [{key: cache, operator: In, values: ["yes"]}]
"#;

    fn desired(extra: &str) -> Desired {
        Desired::build(&model(&format!("{MINIMAL}{extra}")), &BuildInputs::new("t"))
    }

    fn by_name<'a>(d: &'a Desired, name: &str) -> &'a Deployment {
        d.deployments
            .iter()
            .find(|d| d.name_any() == name)
            .unwrap_or_else(|| panic!("no Deployment {name}"))
    }

    fn pod(d: &Deployment) -> &PodSpec {
        d.spec.as_ref().unwrap().template.spec.as_ref().unwrap()
    }

    fn ds_pod(d: &DaemonSet) -> &PodSpec {
        d.spec.as_ref().unwrap().template.spec.as_ref().unwrap()
    }

    fn pull_secrets(p: &PodSpec) -> Vec<&str> {
        p.image_pull_secrets
            .iter()
            .flatten()
            .map(|s| s.name.as_str())
            .collect()
    }

    fn tolerations(p: &PodSpec) -> Vec<&str> {
        p.tolerations
            .iter()
            .flatten()
            .map(|t| t.key.as_deref().unwrap_or("*"))
            .collect()
    }

    #[test]
    fn platform_then_service_then_group_the_most_specific_last() {
        let d = desired(LEVELS);
        // The content API: the platform's template with the content service's over it.
        let api = by_name(&d, "blue-content-api");
        let p = pod(api);
        let zone = |p: &PodSpec| p.node_selector.as_ref().unwrap()["zone"].clone();
        assert_eq!(zone(p), "b");
        assert_eq!(p.node_selector.as_ref().unwrap()["disk"], "ssd");
        assert_eq!(p.priority_class_name.as_deref(), Some("mid"));
        assert_eq!(pull_secrets(p), ["regcred", "content-cred"]);
        assert_eq!(tolerations(p), ["dedicated", "spot"]);
        assert_eq!(p.service_account_name.as_deref(), Some("campus-pods"));
        assert_eq!(p.automount_service_account_token, Some(false));
        assert_eq!(p.affinity, None);
        assert_eq!(pod_labels(api)["tier"], "content");
        assert_eq!(pod_labels(api)["team"], "campus");
        let meta = api
            .spec
            .as_ref()
            .unwrap()
            .template
            .metadata
            .as_ref()
            .unwrap();
        assert_eq!(meta.annotations.as_ref().unwrap()["note"], "platform");
        assert!(
            meta.annotations
                .as_ref()
                .unwrap()
                .contains_key("campus.dev/config-hash")
        );
        assert_eq!(api.labels()["cost-center"], "42");
        let mounts: Vec<_> = p.containers[0]
            .volume_mounts
            .iter()
            .flatten()
            .map(|m| (m.name.as_str(), m.mount_path.as_str()))
            .collect();
        assert_eq!(mounts, [("shared", "/shared")]);
        let volumes: Vec<_> = p
            .volumes
            .iter()
            .flatten()
            .map(|v| v.name.as_str())
            .collect();
        assert_eq!(volumes, ["shared"]);

        // Its cache group: the group's template over both.
        let cache = by_name(&d, "blue-content-cache");
        let p = pod(cache);
        assert_eq!(zone(p), "c");
        assert_eq!(p.priority_class_name.as_deref(), Some("high"));
        assert!(p.affinity.as_ref().unwrap().node_affinity.is_some());
        assert_eq!(pull_secrets(p), ["regcred", "content-cred"]);
        assert_eq!(pod_labels(cache)["tier"], "cache");
        assert_eq!(p.containers[0].volume_mounts.as_ref().unwrap().len(), 1);
        // Another group of the same service: the service's.
        let inspection = pod(by_name(&d, "blue-content-inspection"));
        assert_eq!(zone(inspection), "b");
        assert_eq!(inspection.affinity, None);

        // Another service, Logstash: the platform's alone (volumes, but no mount of the content
        // service's).
        for name in ["blue-coupon-api", "blue-coupon-issue", "blue-logstash"] {
            let dep = by_name(&d, name);
            let p = pod(dep);
            assert_eq!(zone(p), "a", "{name}");
            assert_eq!(p.priority_class_name.as_deref(), Some("low"), "{name}");
            assert_eq!(pull_secrets(p), ["regcred"], "{name}");
            assert_eq!(tolerations(p), ["dedicated"], "{name}");
            assert_eq!(pod_labels(dep)["tier"], "platform", "{name}");
            assert!(
                p.volumes.iter().flatten().any(|v| v.name == "shared"),
                "{name}"
            );
            let shared_mounts = p.containers[0]
                .volume_mounts
                .iter()
                .flatten()
                .filter(|m| m.name == "shared")
                .count();
            assert_eq!(shared_mounts, 0, "{name}");
        }
        // Logstash keeps its own volumes next to the template's.
        let ls: Vec<_> = pod(by_name(&d, "blue-logstash"))
            .volumes
            .iter()
            .flatten()
            .map(|v| v.name.as_str())
            .collect();
        assert_eq!(ls, ["settings", "pipelines", "shared"]);

        // Filebeat: the platform's, with its own tolerations and ServiceAccount kept and no
        // topology spread.
        let fb = &d.daemon_sets[0];
        let p = ds_pod(fb);
        assert_eq!(zone(p), "a");
        assert_eq!(pull_secrets(p), ["regcred"]);
        assert_eq!(tolerations(p), ["*", "dedicated"]);
        assert_eq!(p.service_account_name.as_deref(), Some("blue-filebeat"));
        assert_eq!(p.topology_spread_constraints, None);
        assert_eq!(p.priority_class_name.as_deref(), Some("low"));
        assert_eq!(fb.labels()["cost-center"], "42");
    }

    #[test]
    fn the_native_indexer_merges_the_log_service_and_its_group() {
        let d = desired(
            r#"
  template: {nodeSelector: {zone: a}}
  log:
    template: {nodeSelector: {zone: b}, priorityClassName: logs}
  logging:
    processor: Native
    native:
      template: {nodeSelector: {zone: c}}
"#,
        );
        let p = pod(by_name(&d, "blue-log-index"));
        assert_eq!(p.node_selector.as_ref().unwrap()["zone"], "c");
        assert_eq!(p.priority_class_name.as_deref(), Some("logs"));
        let api = pod(by_name(&d, "blue-log-api"));
        assert_eq!(api.node_selector.as_ref().unwrap()["zone"], "b");
    }

    #[test]
    fn spread_constraints_join_the_operators_and_one_on_hostname_replaces_it() {
        let d = desired(
            r#"
  template:
    topologySpreadConstraints:
      - {topologyKey: topology.kubernetes.io/zone, maxSkew: 1, whenUnsatisfiable: DoNotSchedule}
  coupon:
    template:
      topologySpreadConstraints:
        - topologyKey: kubernetes.io/hostname
          maxSkew: 2
          whenUnsatisfiable: DoNotSchedule
          labelSelector: {matchLabels: {app.kubernetes.io/component: coupon-api}}
"#,
        );
        let content = by_name(&d, "blue-content-api");
        let spread = pod(content).topology_spread_constraints.as_ref().unwrap();
        let keys: Vec<_> = spread.iter().map(|c| c.topology_key.as_str()).collect();
        assert_eq!(
            keys,
            ["kubernetes.io/hostname", "topology.kubernetes.io/zone"]
        );
        // Without a labelSelector the zone constraint counts this workload's pods, per rollout.
        let zone = &spread[1];
        assert_eq!(
            zone.label_selector.as_ref(),
            Some(&content.spec.as_ref().unwrap().selector)
        );
        assert_eq!(
            zone.match_label_keys.as_deref(),
            Some(&["pod-template-hash".to_owned()][..])
        );
        assert_eq!(zone.when_unsatisfiable, "DoNotSchedule");
        // The coupon service's hostname constraint replaces the operator's (not doubled).
        let coupon = pod(by_name(&d, "blue-coupon-api"));
        let spread = coupon.topology_spread_constraints.as_ref().unwrap();
        let keys: Vec<_> = spread
            .iter()
            .map(|c| (c.topology_key.as_str(), c.max_skew))
            .collect();
        assert_eq!(
            keys,
            [
                ("topology.kubernetes.io/zone", 1),
                ("kubernetes.io/hostname", 2)
            ]
        );
        assert_eq!(spread[1].match_label_keys, None, "as written");
    }

    #[test]
    fn the_operators_labels_and_annotations_win() {
        // Validation refuses these keys; the builder keeps the operator's all the same.
        let mut p = model(MINIMAL);
        let instance = "app.kubernetes.io/instance".to_owned();
        for s in &mut p.services {
            s.template
                .pod_labels
                .insert(instance.clone(), "evil".into());
            s.template.pod_labels.insert("extra".into(), "yes".into());
            s.template
                .pod_annotations
                .insert("campus.dev/config-hash".into(), "0".into());
            s.template
                .workload_labels
                .insert("campus.dev/platform".into(), "other".into());
        }
        let d = Desired::build(&p, &BuildInputs::new("t"));
        let api = by_name(&d, "blue-content-api");
        let selector = api
            .spec
            .as_ref()
            .unwrap()
            .selector
            .match_labels
            .as_ref()
            .unwrap();
        assert_eq!(selector[&instance], "blue");
        assert_eq!(pod_labels(api)[&instance], "blue");
        assert_eq!(pod_labels(api)["extra"], "yes");
        let meta = api
            .spec
            .as_ref()
            .unwrap()
            .template
            .metadata
            .as_ref()
            .unwrap();
        assert_ne!(
            meta.annotations.as_ref().unwrap()["campus.dev/config-hash"],
            "0"
        );
        assert_eq!(api.labels()["campus.dev/platform"], "blue");
    }

    #[test]
    fn no_template_changes_nothing() {
        let plain = Desired::build(&model(MINIMAL), &BuildInputs::new("t"));
        let empty = desired("  template: {}\n  content: {template: {}}\n");
        assert_eq!(plain.deployments, empty.deployments);
        assert_eq!(plain.daemon_sets, empty.daemon_sets);
    }
}
