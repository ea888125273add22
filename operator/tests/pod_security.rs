//! Every pod the operator builds, judged by the API server's own Pod Security admission: the
//! Campus and Logstash pods pass `restricted` (enforced), and Filebeat — which must mount the
//! node's log directories — breaks `baseline` by its hostPath volumes and nothing else.

mod support;

use std::process::Command;

use campus_operator::build::{BuildInputs, Desired};
use campus_operator::controller::validate::validate;
use campus_operator::crd::CampusPlatform;
use k8s_openapi::api::core::v1::{Namespace, Pod, PodSpec, ServiceAccount};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;
use support::*;

fn platforms(ns: &str) -> Vec<CampusPlatform> {
    ["minimal.yaml", "full.yaml", "native-indexer.yaml"]
        .into_iter()
        .map(|f| {
            let mut v = sample(f, &f.replace(".yaml", ""), "kafka:9092");
            v["metadata"]["namespace"] = json!(ns);
            v["metadata"]["uid"] = json!("00000000-0000-0000-0000-000000000001");
            serde_json::from_value(v).unwrap()
        })
        .collect()
}

fn pod(name: &str, spec: &PodSpec) -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": spec,
    }))
    .unwrap()
}

async fn label(client: &kube::Client, ns: &str, labels: serde_json::Value) {
    Api::<Namespace>::all(client.clone())
        .patch(
            ns,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": labels}})),
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn every_campus_pod_passes_restricted_and_filebeat_only_needs_its_host_paths() {
    let client = client().await;
    let ns = TestNamespace::new(&client, "op-pss").await;
    label(
        &client,
        &ns.name,
        json!({
            "pod-security.kubernetes.io/enforce": "restricted",
            "pod-security.kubernetes.io/enforce-version": "latest",
        }),
    )
    .await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns.name);
    let dry = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    let mut refused = Vec::new();
    let mut checked = 0;
    let mut filebeats = Vec::new();
    for cr in platforms(&ns.name) {
        let p = validate(&cr)
            .unwrap_or_else(|e| panic!("{}: {e}", cr.metadata.name.as_deref().unwrap_or_default()));
        let d = Desired::build(&p, &BuildInputs::new("t"));
        for dep in &d.deployments {
            let name = dep.metadata.name.clone().unwrap();
            let spec = dep.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
            checked += 1;
            if let Err(e) = pods.create(&dry, &pod(&name, spec)).await {
                refused.push(format!("{name}: {e}"));
            }
        }
        for sa in &d.service_accounts {
            let mut sa = sa.clone();
            sa.metadata.owner_references = None;
            let _ = Api::<ServiceAccount>::namespaced(client.clone(), &ns.name)
                .create(&PostParams::default(), &sa)
                .await;
        }
        for ds in &d.daemon_sets {
            let spec = ds.spec.as_ref().unwrap().template.spec.clone().unwrap();
            filebeats.push((ds.metadata.name.clone().unwrap(), spec));
        }
    }
    assert!(checked >= 10, "only {checked} pods built");
    assert!(
        refused.is_empty(),
        "pods the restricted profile refuses:\n{}",
        refused.join("\n")
    );

    // Filebeat: a namespace that warns on baseline; the API server's warnings (printed by
    // kubectl) name every rule the pod breaks.
    assert!(!filebeats.is_empty(), "the full sample runs Filebeat");
    label(
        &client,
        &ns.name,
        json!({
            "pod-security.kubernetes.io/enforce": "privileged",
            "pod-security.kubernetes.io/warn": "baseline",
            "pod-security.kubernetes.io/warn-version": "latest",
        }),
    )
    .await;
    for (name, spec) in filebeats {
        let file = std::env::temp_dir().join(format!("{}-{name}.json", ns.name));
        std::fs::write(&file, serde_json::to_vec(&pod(&name, &spec)).unwrap()).unwrap();
        let out = Command::new(kubectl())
            .arg("--kubeconfig")
            .arg(kubeconfig_path())
            .args(["create", "--dry-run=server", "-n", &ns.name, "-f"])
            .arg(&file)
            .output()
            .unwrap();
        let _ = std::fs::remove_file(&file);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{name}: {stderr}");
        let warning = stderr
            .lines()
            .find(|l| l.contains("would violate PodSecurity"))
            .unwrap_or_else(|| panic!("{name}: no baseline warning for its hostPath volumes"));
        let broken = warning.split_once("\": ").map(|(_, r)| r).unwrap_or("");
        assert!(
            broken.starts_with("hostPath volumes") && !broken.contains("), "),
            "{name} breaks baseline by more than its hostPath volumes: {warning}"
        );
    }
}
