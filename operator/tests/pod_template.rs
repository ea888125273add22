//! Pod customisation (`template`) against the real API server: the platform's, a service's and a
//! group's reach the workloads the operator applies, merged in that order; a template whose
//! free-form part is no Kubernetes type is reported in status and changes nothing.

mod support;

use std::time::Duration;

use campus_testkit::eventually;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::PodSpec;
use kube::api::Api;
use serde_json::json;
use support::*;

const WAIT: Duration = Duration::from_secs(60);

fn pod(d: &Deployment) -> &PodSpec {
    d.spec.as_ref().unwrap().template.spec.as_ref().unwrap()
}

fn zone(p: &PodSpec) -> Option<&str> {
    p.node_selector.as_ref()?.get("zone").map(String::as_str)
}

#[tokio::test]
async fn templates_reach_the_workloads_and_a_bad_one_is_reported() {
    let client = client().await;
    install_crd(&client).await;
    let ns = TestNamespace::new(&client, "op-template").await;
    let _op = Operator::start(&client, test_settings(&ns.name));
    let name = ns.name.clone();
    let mut cr = sample("minimal.yaml", &name, &campus_testkit::kafka_brokers());
    cr["spec"]["template"] = json!({
        "imagePullSecrets": [{"name": "regcred"}],
        "nodeSelector": {"zone": "a"},
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "campus", "effect": "NoSchedule"}],
        "podLabels": {"team": "campus"},
        "podAnnotations": {"example.com/owner": "campus"},
        "workloadLabels": {"cost-center": "42"},
    });
    cr["spec"]["content"] = json!({"template": {
        "nodeSelector": {"zone": "b"},
        "volumes": [{"name": "scratch", "emptyDir": {"sizeLimit": "64Mi"}}],
        "volumeMounts": [{"name": "scratch", "mountPath": "/scratch"}],
        "topologySpreadConstraints": [
            {"topologyKey": "topology.kubernetes.io/zone", "maxSkew": 1, "whenUnsatisfiable": "ScheduleAnyway"}
        ],
    }, "groups": {"cache": {"template": {
        "nodeSelector": {"zone": "c"},
        "affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 10, "preference": {"matchExpressions": [{"key": "cache", "operator": "Exists"}]}}
        ]}},
    }}}});
    apply_platform(&client, &ns.name, &cr).await.unwrap();

    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns.name);
    let get = |n: &str| {
        let deployments = deployments.clone();
        let n = format!("{name}-{n}");
        async move { deployments.get_opt(&n).await.unwrap() }
    };
    let cache = eventually(
        "the cache worker carries its group's template",
        WAIT,
        || async {
            get("content-cache")
                .await
                .filter(|d| zone(pod(d)) == Some("c"))
        },
    )
    .await;
    let p = pod(&cache);
    let preferred = p
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|n| {
            n.preferred_during_scheduling_ignored_during_execution
                .as_ref()
        })
        .expect("the group's affinity");
    assert_eq!(preferred[0].weight, 10);
    // The service's volume reaches its workers too.
    assert!(
        p.containers[0]
            .volume_mounts
            .iter()
            .flatten()
            .any(|m| m.mount_path == "/scratch")
    );

    let api = get("content-api").await.expect("the content API");
    let p = pod(&api);
    assert_eq!(zone(p), Some("b"));
    let spread: Vec<&str> = p
        .topology_spread_constraints
        .iter()
        .flatten()
        .map(|c| c.topology_key.as_str())
        .collect();
    assert_eq!(
        spread,
        ["kubernetes.io/hostname", "topology.kubernetes.io/zone"]
    );
    let volume = p.volumes.iter().flatten().find(|v| v.name == "scratch");
    assert_eq!(
        volume
            .and_then(|v| v.empty_dir.as_ref())
            .and_then(|e| e.size_limit.as_ref())
            .map(|q| q.0.as_str()),
        Some("64Mi")
    );

    // Everything else: the platform's alone.
    for n in [
        "content-api",
        "coupon-api",
        "coupon-issue",
        "log-api",
        "logstash",
    ] {
        let d = get(n).await.unwrap_or_else(|| panic!("{n}"));
        let p = pod(&d);
        let secrets: Vec<&str> = p
            .image_pull_secrets
            .iter()
            .flatten()
            .map(|s| s.name.as_str())
            .collect();
        assert_eq!(secrets, ["regcred"], "{n}");
        let tolerations: Vec<_> = p.tolerations.iter().flatten().collect();
        assert_eq!(tolerations.len(), 1, "{n}");
        assert_eq!(tolerations[0].key.as_deref(), Some("dedicated"), "{n}");
        if n != "content-api" {
            assert_eq!(zone(p), Some("a"), "{n}");
        }
        let meta = d.spec.as_ref().unwrap().template.metadata.as_ref().unwrap();
        assert_eq!(meta.labels.as_ref().unwrap()["team"], "campus", "{n}");
        assert_eq!(
            meta.annotations.as_ref().unwrap()["example.com/owner"],
            "campus",
            "{n}"
        );
        assert_eq!(
            d.metadata.labels.as_ref().unwrap()["cost-center"],
            "42",
            "{n}"
        );
    }
    let filebeat = Api::<DaemonSet>::namespaced(client.clone(), &ns.name)
        .get(&format!("{name}-filebeat"))
        .await
        .unwrap();
    let p = filebeat
        .spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap();
    assert_eq!(
        p.node_selector.as_ref().unwrap()["zone"],
        "a",
        "Filebeat gets the platform's template"
    );
    assert_eq!(
        p.tolerations.as_ref().unwrap().len(),
        2,
        "its own and the platform's"
    );
    assert_eq!(
        p.service_account_name.as_deref(),
        Some(format!("{name}-filebeat").as_str())
    );

    // A typo in a free-form part: reported, the workloads keep the last good template.
    let before = pod(&cache).clone();
    cr["spec"]["content"]["groups"]["cache"]["template"]["affinity"] = json!({"nodeAfinity": {}});
    apply_platform(&client, &ns.name, &cr).await.unwrap();
    let (_, reason, message) = eventually("InvalidSpec is reported", WAIT, || async {
        let c = condition(&client, &ns.name, &name, "Ready").await?;
        (c.1 == "InvalidSpec").then_some(c)
    })
    .await;
    assert_eq!(reason, "InvalidSpec");
    assert!(
        message.contains(
            "content.groups.cache.template.affinity: unknown field `nodeAfinity` (not a field of a Kubernetes Affinity)"
        ),
        "{message}"
    );
    let after = get("content-cache").await.unwrap();
    assert_eq!(pod(&after), &before);
}
