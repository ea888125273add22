//! Validation of the spec's pod customisation (`template` at the platform, service and group
//! levels): the free-form parts parsed into the Kubernetes types (a field they do not have is a
//! problem, not silently dropped), the operator's labels, annotations and volume names kept for
//! the operator, every volume mount naming a volume it can see. Pure.

use std::collections::BTreeSet;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::crd::PodOverrides;
use crate::model::PodTemplate;

/// Label keys the operator sets on its workloads and pods (besides everything under
/// `campus.dev/`): they select the pods and prune the children.
pub const OPERATOR_LABELS: [&str; 5] = [
    "app.kubernetes.io/managed-by",
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/component",
    "app.kubernetes.io/version",
];

/// Volume names the operator's own pods use (Logstash's settings and pipelines, Filebeat's
/// config, registry and log directories).
pub const OPERATOR_VOLUMES: [&str; 6] = [
    "config",
    "settings",
    "pipelines",
    "registry",
    "varlogcontainers",
    "varlogpods",
];

/// One level's template (`path`: where it is in the spec, e.g. `content.template`), parsed and
/// checked; `visible` is what the less specific levels merged to (its volumes may be mounted).
/// Problems are pushed onto `problems`; the template returned then leaves the bad parts out.
pub fn parse(
    path: &str,
    o: Option<&PodOverrides>,
    visible: &PodTemplate,
    problems: &mut Vec<String>,
) -> PodTemplate {
    let Some(o) = o else {
        return PodTemplate::default();
    };
    for (what, map, labels) in [
        ("podLabels", &o.pod_labels, true),
        ("workloadLabels", &o.workload_labels, true),
        ("podAnnotations", &o.pod_annotations, false),
        ("workloadAnnotations", &o.workload_annotations, false),
    ] {
        for key in map.keys() {
            if key.starts_with("campus.dev/") || (labels && OPERATOR_LABELS.contains(&key.as_str()))
            {
                problems.push(format!(
                    "{path}.{what}: `{key}` is set by the operator (it selects and tracks the pods)"
                ));
            }
        }
    }
    for s in &o.image_pull_secrets {
        if !valid_name(&s.name) {
            problems.push(format!(
                "{path}.imagePullSecrets: `{}` is not a Secret name",
                s.name
            ));
        }
    }
    for (what, name) in [
        ("priorityClassName", &o.priority_class_name),
        ("serviceAccountName", &o.service_account_name),
    ] {
        if let Some(n) = name
            && !valid_name(n)
        {
            problems.push(format!("{path}.{what}: `{n}` is not a valid name"));
        }
    }
    let tolerations = list(path, "tolerations", "Toleration", &o.tolerations, problems);
    let affinity = o
        .affinity
        .as_ref()
        .and_then(|v| parse_one(&format!("{path}.affinity"), "Affinity", v, problems));
    let spread: Vec<k8s_openapi::api::core::v1::TopologySpreadConstraint> = list(
        path,
        "topologySpreadConstraints",
        "TopologySpreadConstraint",
        &o.topology_spread_constraints,
        problems,
    );
    let volumes: Vec<k8s_openapi::api::core::v1::Volume> =
        list(path, "volumes", "Volume", &o.volumes, problems);
    let mounts: Vec<k8s_openapi::api::core::v1::VolumeMount> = list(
        path,
        "volumeMounts",
        "VolumeMount",
        &o.volume_mounts,
        problems,
    );
    let mut seen = BTreeSet::new();
    for v in &volumes {
        if OPERATOR_VOLUMES.contains(&v.name.as_str()) {
            problems.push(format!(
                "{path}.volumes: `{}` is a volume name the operator uses (taken: {})",
                v.name,
                OPERATOR_VOLUMES.join(", ")
            ));
        }
        if !seen.insert(v.name.as_str()) {
            problems.push(format!("{path}.volumes names `{}` twice", v.name));
        }
    }
    let mut paths = BTreeSet::new();
    for m in &mounts {
        let known = volumes
            .iter()
            .chain(&visible.volumes)
            .any(|v| v.name == m.name);
        if !known {
            problems.push(format!(
                "{path}.volumeMounts: `{}` mounts volume `{}`, which neither this template nor a \
                 less specific one defines",
                m.mount_path, m.name
            ));
        }
        if !paths.insert(m.mount_path.as_str()) {
            problems.push(format!(
                "{path}.volumeMounts mounts `{}` twice",
                m.mount_path
            ));
        }
    }
    let mut keys = BTreeSet::new();
    for c in &spread {
        if !keys.insert(c.topology_key.as_str()) {
            problems.push(format!(
                "{path}.topologySpreadConstraints names topologyKey `{}` twice",
                c.topology_key
            ));
        }
    }
    PodTemplate {
        pod_labels: o.pod_labels.clone(),
        pod_annotations: o.pod_annotations.clone(),
        workload_labels: o.workload_labels.clone(),
        workload_annotations: o.workload_annotations.clone(),
        image_pull_secrets: o
            .image_pull_secrets
            .iter()
            .map(|s| k8s_openapi::api::core::v1::LocalObjectReference {
                name: s.name.clone(),
            })
            .collect(),
        node_selector: o.node_selector.clone(),
        tolerations,
        affinity,
        topology_spread_constraints: spread,
        priority_class_name: o.priority_class_name.clone(),
        service_account_name: o.service_account_name.clone(),
        volumes,
        volume_mounts: mounts,
    }
}

/// Each entry of a free-form list parsed as the Kubernetes `kind`; those that fail are left out.
fn list<T: DeserializeOwned + Serialize>(
    path: &str,
    field: &str,
    kind: &str,
    items: &[Value],
    problems: &mut Vec<String>,
) -> Vec<T> {
    items
        .iter()
        .enumerate()
        .filter_map(|(i, v)| parse_one(&format!("{path}.{field}[{i}]"), kind, v, problems))
        .collect()
}

/// A free-form value parsed as the Kubernetes `kind`. The Kubernetes types skip fields they do
/// not know, so the parsed value is compared with what was written: a field that did not survive
/// the round trip (a typo such as `nodeAfinity`) is a problem too.
fn parse_one<T: DeserializeOwned + Serialize>(
    path: &str,
    kind: &str,
    v: &Value,
    problems: &mut Vec<String>,
) -> Option<T> {
    match serde_json::from_value::<T>(v.clone()) {
        Err(e) => {
            problems.push(format!("{path} is not a Kubernetes {kind}: {e}"));
            None
        }
        Ok(t) => {
            let back = serde_json::to_value(&t).unwrap_or(Value::Null);
            match dropped(v, &back, "") {
                Some(field) => {
                    problems.push(format!(
                        "{path}: unknown field `{field}` (not a field of a Kubernetes {kind})"
                    ));
                    None
                }
                None => Some(t),
            }
        }
    }
}

/// The first field (as a dotted path) of `written` with a value that `parsed` does not have.
fn dropped(written: &Value, parsed: &Value, at: &str) -> Option<String> {
    match (written, parsed) {
        (Value::Object(w), Value::Object(p)) => w.iter().find_map(|(k, wv)| {
            let here = if at.is_empty() {
                k.clone()
            } else {
                format!("{at}.{k}")
            };
            match p.get(k) {
                None if wv.is_null() => None,
                None => Some(here),
                Some(pv) => dropped(wv, pv, &here),
            }
        }),
        (Value::Array(w), Value::Array(p)) => w
            .iter()
            .zip(p)
            .enumerate()
            .find_map(|(i, (wv, pv))| dropped(wv, pv, &format!("{at}[{i}]"))),
        _ => None,
    }
}

/// A DNS subdomain (a Secret, ServiceAccount or PriorityClass name).
fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.ends_with(|c: char| c.is_ascii_alphanumeric())
}

/// Where a worker's group is in the spec (`content.groups.cache`, `logging.native`).
pub fn group_path(w: &crate::plan::Worker) -> String {
    use campus_contract::group;
    match w.contract.group {
        group::LOG_INDEX => "logging.native".to_owned(),
        group::COUPON_ISSUE => "coupon.groups.issue".to_owned(),
        g => format!("{}.groups.{g}", w.service.as_str()),
    }
}

#[cfg(test)]
mod tests {
    use crate::build::fixtures::{MINIMAL, platform};
    use crate::controller::validate::validate;

    fn problems(extra: &str) -> Vec<String> {
        validate(&platform(&format!("{MINIMAL}{extra}")))
            .err()
            .map(|e| e.0)
            .unwrap_or_default()
    }

    #[test]
    fn the_operators_labels_annotations_and_volume_names_are_refused() {
        let found = problems(
            r#"
  template:
    podLabels: {app.kubernetes.io/instance: x, team: ok}
    workloadAnnotations: {campus.dev/consumer-group: x, note: ok}
    volumes: [{name: config, emptyDir: {}}]
  coupon:
    groups:
      issue:
        template:
          podLabels: {campus.dev/platform: other}
"#,
        );
        assert_eq!(
            found,
            [
                "template.podLabels: `app.kubernetes.io/instance` is set by the operator (it selects and tracks the pods)",
                "template.workloadAnnotations: `campus.dev/consumer-group` is set by the operator (it selects and tracks the pods)",
                "template.volumes: `config` is a volume name the operator uses (taken: config, settings, pipelines, registry, varlogcontainers, varlogpods)",
                "coupon.groups.issue.template.podLabels: `campus.dev/platform` is set by the operator (it selects and tracks the pods)",
            ]
        );
    }

    #[test]
    fn free_form_fields_must_parse_as_their_kubernetes_types() {
        let found = problems(
            r#"
  template:
    affinity: {nodeAfinity: {}}
    tolerations: [{key: a, operator: Exists}, {key: b, tolerationSeconds: soon}]
  content:
    template:
      topologySpreadConstraints: [{topologyKey: zone, maxSkew: 1, whenUnsatisfiable: DoNotSchedule, labelSelecter: {}}]
      volumes: [{name: data, emptyDir: {sizeLimit: 1Gi}}]
      volumeMounts: [{name: data, mountPath: /data}, {name: nope, mountPath: /nope}]
    groups:
      cache:
        template:
          volumeMounts: [{name: data, mountPath: /data2, readOnly: true}]
  logging:
    processor: Native
    native:
      template:
        volumeMounts: [{name: data, mountPath: /data}]
"#,
        );
        let want = [
            "template.tolerations[1] is not a Kubernetes Toleration: invalid type: string \"soon\", expected i64",
            "template.affinity: unknown field `nodeAfinity` (not a field of a Kubernetes Affinity)",
            "content.template.topologySpreadConstraints[0]: unknown field `labelSelecter` (not a field of a Kubernetes TopologySpreadConstraint)",
            "content.template.volumeMounts: `/nope` mounts volume `nope`, which neither this template nor a less specific one defines",
            // The log service's indexer cannot see the content service's volume.
            "logging.native.template.volumeMounts: `/data` mounts volume `data`, which neither this template nor a less specific one defines",
        ];
        assert_eq!(found, want);
    }

    #[test]
    fn names_must_be_names() {
        let found = problems(
            r#"
  template:
    imagePullSecrets: [{name: ""}, {name: regcred}]
    priorityClassName: High
    serviceAccountName: ok-name
"#,
        );
        assert_eq!(
            found,
            [
                "template.imagePullSecrets: `` is not a Secret name",
                "template.priorityClassName: `High` is not a valid name",
            ]
        );
    }

    #[test]
    fn a_valid_template_is_in_the_model_merged() {
        let p = validate(&platform(&format!(
            "{MINIMAL}  template: {{priorityClassName: low}}\n  coupon: {{groups: {{issue: {{template: {{priorityClassName: high}}}}}}}}\n"
        )))
        .unwrap();
        assert_eq!(p.template.priority_class_name.as_deref(), Some("low"));
        let coupon = p.service(crate::plan::Service::Coupon).unwrap();
        assert_eq!(coupon.template.priority_class_name.as_deref(), Some("low"));
        let issue = p
            .plan
            .workers
            .iter()
            .find(|w| w.component == "coupon-issue")
            .unwrap();
        assert_eq!(issue.template.priority_class_name.as_deref(), Some("high"));
    }
}
