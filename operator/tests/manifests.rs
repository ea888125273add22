//! `kubectl apply -f` of every sample and of the operator's RBAC passes against the test API
//! server, and the operator works with exactly the permissions of operator/rbac/operator.yaml.

mod support;

use std::process::Command;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};
use serde_json::json;
use support::*;

fn kubectl() -> String {
    let cached = std::env::var("CAMPUS_CACHE")
        .map(|c| format!("{c}/bin/kubectl"))
        .unwrap_or_default();
    if !cached.is_empty() && std::path::Path::new(&cached).exists() {
        return cached;
    }
    let found = Command::new("sh")
        .args(["-c", "command -v kubectl"])
        .output()
        .unwrap();
    assert!(
        found.status.success(),
        "kubectl is not installed: the test needs it to apply the samples"
    );
    String::from_utf8(found.stdout).unwrap().trim().to_owned()
}

fn run_kubectl(args: &[&str]) -> String {
    let out = Command::new(kubectl())
        .arg("--kubeconfig")
        .arg(kubeconfig_path())
        .args(args)
        .output()
        .expect("run kubectl");
    assert!(
        out.status.success(),
        "kubectl {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test]
async fn every_sample_applies_with_kubectl() {
    let client = client().await;
    install_crd(&client).await;
    let ns = TestNamespace::new(&client, "op-samples").await;
    let dir = workspace().join("operator/samples");
    let out = run_kubectl(&["apply", "-n", &ns.name, "-f", dir.to_str().unwrap()]);
    let mut files = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let text = std::fs::read_to_string(e.unwrap().path()).unwrap();
        let v: serde_json::Value = serde_yaml::from_str(&text).unwrap();
        let name = v["metadata"]["name"].as_str().unwrap();
        assert!(
            out.contains(&format!("campusplatform.campus.dev/{name}")),
            "{out}"
        );
        files += 1;
    }
    assert!(files >= 3);
    // The committed CRD applies with kubectl too (server-side dry run).
    let crd = workspace().join("crds/campusplatforms.yaml");
    run_kubectl(&[
        "apply",
        "--server-side",
        "--dry-run=server",
        "-f",
        crd.to_str().unwrap(),
    ]);
    // Defaults were filled in by the schema.
    let full = run_kubectl(&["get", "-n", &ns.name, "campus", "campus", "-o", "json"]);
    let full: serde_json::Value = serde_json::from_str(&full).unwrap();
    assert_eq!(full["spec"]["topics"]["deletionPolicy"], "Retain");
    assert_eq!(full["spec"]["logging"]["processor"], "Logstash");
}

/// The operator, impersonating a service account bound by operator/rbac/operator.yaml, creates a
/// platform's children, topics and status: the RBAC is enough.
#[tokio::test]
async fn the_operator_works_with_its_rbac_alone() {
    let admin = client().await;
    install_crd(&admin).await;
    let ns = TestNamespace::new(&admin, "op-rbac").await;
    let rbac = std::fs::read_to_string(workspace().join("operator/rbac/operator.yaml")).unwrap();
    let role = format!("campus-operator-{}", ns.name);
    let rbac = rbac
        .replace("name: campus-operator\n", &format!("name: {role}\n"))
        .replace(
            "namespace: campus-system",
            &format!("namespace: {}", ns.name),
        );
    let file = workspace().join("target").join(format!("{role}.yaml"));
    std::fs::write(&file, rbac).unwrap();
    run_kubectl(&["apply", "-f", file.to_str().unwrap()]);
    run_kubectl(&["create", "serviceaccount", "-n", &ns.name, &role]);

    let kc = Kubeconfig::read_from(kubeconfig_path()).unwrap();
    let mut config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .unwrap();
    config.auth_info.impersonate = Some(format!("system:serviceaccount:{}:{role}", ns.name));
    campus_operator::install_tls_provider();
    let operator_client = Client::try_from(config).unwrap();

    let op = Operator::start(&operator_client, test_settings(&ns.name));
    let name = ns.name.clone();
    let mut cr = sample(
        "minimal.yaml",
        &name,
        &campus_common::testing::kafka_brokers(),
    );
    cr["spec"]["topics"] = json!({"deletionPolicy": "Delete"});
    apply_platform(&admin, &ns.name, &cr).await.unwrap();
    eventually(
        "status is written by the operator",
        Duration::from_secs(60),
        || async {
            let (_, reason, _) = condition(&admin, &ns.name, &name, "Ready").await?;
            (reason == "WorkloadsNotReady").then_some(())
        },
    )
    .await;
    let deployments: Api<Deployment> = Api::namespaced(admin.clone(), &ns.name);
    assert!(
        deployments
            .get_opt(&format!("{name}-content-api"))
            .await
            .unwrap()
            .is_some()
    );
    // Events were published (a forbidden publish would only be logged).
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(admin.clone(), &ns.name);
    eventually(
        "the TopicsCreated event is published",
        Duration::from_secs(30),
        || async {
            let list = events.list(&Default::default()).await.ok()?;
            list.items
                .iter()
                .any(|e| e.reason.as_deref() == Some("TopicsCreated"))
                .then_some(())
        },
    )
    .await;
    let metrics = op.metrics_text();
    assert!(
        !metrics.contains("campus_operator_reconcile_failures_total{"),
        "{metrics}"
    );
    // Leader election with the same identity.
    let leases = Api::namespaced(operator_client.clone(), &ns.name);
    let elector =
        campus_operator::leader::LeaderElector::new(leases, "op", "me", Duration::from_secs(5));
    assert!(elector.try_acquire_or_renew().await.unwrap());
    // Deletion through the finalizer works with these permissions too.
    let platforms: Api<campus_operator::crd::CampusPlatform> =
        Api::namespaced(admin.clone(), &ns.name);
    platforms.delete(&name, &Default::default()).await.unwrap();
    eventually(
        "the platform is deleted",
        Duration::from_secs(60),
        || async {
            platforms
                .get_opt(&name)
                .await
                .unwrap()
                .is_none()
                .then_some(())
        },
    )
    .await;
    let _ = run_kubectl(&["delete", "-f", file.to_str().unwrap(), "--wait=false"]);
}
