//! `kubectl apply -f` of every sample and of the operator's RBAC passes against the test API
//! server, and the operator works with exactly the permissions of operator/rbac/operator.yaml.

mod support;

use std::process::Command;
use std::time::Duration;

use campus_testkit::eventually;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::api::rbac::v1::ClusterRoleBinding;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};
use serde_json::json;
use support::*;

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

/// The operator, impersonating a service account bound by operator/rbac/operator.yaml (its
/// namespaced rights by a RoleBinding in its own namespace, the Filebeat objects' by one in a
/// namespace for Filebeat), creates a platform's children there, Filebeat's in the other namespace,
/// its account's place in the Filebeat binding, topics and status, and deletes them with the
/// platform: the RBAC is enough. And it is no more: `kubectl auth can-i` as that account.
#[tokio::test]
async fn the_operator_works_with_its_rbac_alone() {
    let admin = client().await;
    install_crd(&admin).await;
    let ns = TestNamespace::new(&admin, "op-rbac").await;
    let logs = TestNamespace::new(&admin, "op-rbac-logs").await;
    let rbac = std::fs::read_to_string(workspace().join("operator/rbac/operator.yaml")).unwrap();
    // Every name made unique to this run: campus-operator(-cluster, -filebeat-objects),
    // campus-filebeat (role and binding), the account.
    let role = format!("campus-operator-{}", ns.name);
    let filebeat_role = format!("{role}-filebeat");
    let rbac = rbac
        .replace("campus-operator", &role)
        .replace("campus-filebeat", &filebeat_role)
        .replace(
            "namespace: campus-system",
            &format!("namespace: {}", ns.name),
        );
    let file = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{role}.yaml"));
    std::fs::write(&file, rbac).unwrap();
    run_kubectl(&["apply", "-f", file.to_str().unwrap()]);
    run_kubectl(&["create", "serviceaccount", "-n", &ns.name, &role]);
    // The Filebeat namespace: only Filebeat's objects (as the chart's operator.filebeatNamespaces).
    run_kubectl(&[
        "create",
        "rolebinding",
        &role,
        "-n",
        &logs.name,
        "--clusterrole",
        &format!("{role}-filebeat-objects"),
        "--serviceaccount",
        &format!("{}:{role}", ns.name),
    ]);
    let account = format!("system:serviceaccount:{}:{role}", ns.name);
    let can_i = |what: &str| {
        let mut args = vec!["auth", "can-i", "--as", &account];
        args.extend(what.split(' '));
        let out = Command::new(kubectl())
            .arg("--kubeconfig")
            .arg(kubeconfig_path())
            .args(&args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim() == "yes"
    };
    let lease = format!("leases/{role}");
    let (own, fb) = (ns.name.as_str(), logs.name.as_str());
    for allowed in [
        format!("create deployments -n {own}"),
        format!("delete configmaps -n {own}"),
        format!("watch campusplatforms -n {own}"),
        format!("update {lease} -n {own}"),
        format!("create daemonsets -n {fb}"),
        format!("delete serviceaccounts -n {fb}"),
        format!("bind clusterroles/{filebeat_role}"),
        format!("update clusterrolebindings/{filebeat_role}"),
    ] {
        assert!(can_i(&allowed), "the operator may not {allowed}");
    }
    for refused in [
        "delete clusterroles/cluster-admin".to_owned(),
        "bind clusterroles/cluster-admin".to_owned(),
        "create clusterroles".to_owned(),
        "update leases/kube-scheduler -n kube-system".to_owned(),
        "update leases/kube-controller-manager -n kube-system".to_owned(),
        format!("update {lease} -n kube-system"),
        "create deployments -n kube-system".to_owned(),
        "create deployments -n default".to_owned(),
        format!("create deployments -n {fb}"),
        format!("create services -n {fb}"),
        "create clusterrolebindings".to_owned(),
        "delete clusterrolebindings/cluster-admin".to_owned(),
        "update clusterrolebindings/cluster-admin".to_owned(),
        "delete clusterrolebindings/system:basic-user".to_owned(),
        format!("delete clusterrolebindings/{role}-cluster"),
        "get secrets -n kube-system".to_owned(),
        format!("get secrets -n {own}"),
        format!("update leases/another -n {own}"),
    ] {
        assert!(!can_i(&refused), "the operator may {refused}");
    }

    let kc = Kubeconfig::read_from(kubeconfig_path()).unwrap();
    let mut config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .unwrap();
    config.auth_info.impersonate = Some(account.clone());
    campus_operator::install_tls_provider();
    let operator_client = Client::try_from(config).unwrap();

    let mut settings = test_settings(&ns.name);
    settings.filebeat_cluster_role = filebeat_role.clone();
    settings.filebeat_cluster_role_binding = filebeat_role.clone();
    let op = Operator::start(&operator_client, settings);
    let name = ns.name.clone();
    let mut cr = sample("minimal.yaml", &name, &campus_testkit::kafka_brokers());
    cr["spec"]["topics"] = json!({"deletionPolicy": "Delete"});
    cr["spec"]["logging"]["filebeat"] = json!({"enabled": true, "namespace": fb});
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
    let filebeat = format!("{}-{name}-filebeat", ns.name);
    let daemon_sets: Api<DaemonSet> = Api::namespaced(admin.clone(), fb);
    eventually(
        "Filebeat's DaemonSet in its namespace",
        Duration::from_secs(30),
        || async { daemon_sets.get_opt(&filebeat).await.ok().flatten() },
    )
    .await;
    let subject = format!("{fb}/{filebeat}");
    eventually(
        "Filebeat's account in the Filebeat binding",
        Duration::from_secs(30),
        || async {
            let subjects = binding_subjects(&admin, &filebeat_role).await;
            (subjects == [subject.clone()]).then_some(())
        },
    )
    .await;
    let binding = Api::<ClusterRoleBinding>::all(admin.clone())
        .get(&filebeat_role)
        .await
        .unwrap();
    assert_eq!(binding.role_ref.name, filebeat_role);
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
    let failures: Vec<&str> = metrics
        .lines()
        .filter(|l| {
            l.starts_with("campus_operator_reconcile_failures_total{") && !l.ends_with(" 0")
        })
        .collect();
    assert!(
        failures.is_empty() && metrics.contains("campus_operator_reconcile_failures_total{"),
        "{metrics}"
    );
    // Leader election with the same identity.
    let leases = Api::namespaced(operator_client.clone(), &ns.name);
    let elector =
        campus_operator::leader::LeaderElector::new(leases, &role, "me", Duration::from_secs(5));
    assert!(elector.try_acquire_or_renew().await.unwrap());
    // Deletion through the finalizer works with these permissions too: Filebeat's objects in
    // the other namespace and its subject go with the platform.
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
    assert!(daemon_sets.get_opt(&filebeat).await.unwrap().is_none());
    let maps: Api<ConfigMap> = Api::namespaced(admin.clone(), fb);
    assert!(maps.get_opt(&filebeat).await.unwrap().is_none());
    assert!(binding_subjects(&admin, &filebeat_role).await.is_empty());
    let _ = run_kubectl(&["delete", "-f", file.to_str().unwrap(), "--wait=false"]);
}
