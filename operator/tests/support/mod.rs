//! Shared harness for tests against the real API server (scripts/kube.sh) and the local Kafka
//! (scripts/servers.sh): a client, the CRD, a fresh namespace per test, an in-process operator
//! scoped to that namespace, a stand-in kubelet that marks pods ready, and polling helpers.
#![allow(dead_code)]

pub mod old_kafka;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use campus_common::kafka::admin::Admin;
use campus_operator::controller::{self, Context, Settings};
use campus_operator::crd::CampusPlatform;
use campus_operator::metrics::Metrics;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config, CustomResourceExt, ResourceExt};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

pub fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub fn kubeconfig_path() -> PathBuf {
    std::env::var_os("CAMPUS_TEST_KUBECONFIG")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target/kube/kubeconfig"))
}

/// A client for the test API server; fails loudly when it is not there.
pub async fn client() -> Client {
    campus_operator::install_tls_provider();
    let path = kubeconfig_path();
    let kc = Kubeconfig::read_from(&path).unwrap_or_else(|e| {
        panic!(
            "no kubeconfig at {} ({e}): start the test API server with `bash scripts/kube.sh start` \
             (scripts/test.sh does it and sets CAMPUS_TEST_KUBECONFIG)",
            path.display()
        )
    });
    let config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .expect("kubeconfig is usable");
    let client = Client::try_from(config).expect("client");
    if let Err(e) = client.apiserver_version().await {
        panic!(
            "the test API server in {} is unreachable ({e}): run `bash scripts/kube.sh start`",
            path.display()
        );
    }
    client
}

/// Installs the CRD (server-side apply, idempotent, shared by every test) and waits until it is
/// Established.
pub async fn install_crd(client: &Client) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd = CampusPlatform::crd();
    crds.patch(
        &crd.name_any(),
        &PatchParams::apply("campus-operator-tests").force(),
        &Patch::Apply(&crd),
    )
    .await
    .expect("apply the CRD");
    eventually(
        "the CRD is Established",
        Duration::from_secs(30),
        || async {
            let c = crds.get(&crd.name_any()).await.ok()?;
            c.status?
                .conditions?
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True")
                .then_some(())
        },
    )
    .await;
}

use campus_testkit::eventually;

/// A fresh namespace, deleted when dropped.
pub struct TestNamespace {
    pub name: String,
}

impl TestNamespace {
    pub async fn new(client: &Client, prefix: &str) -> Self {
        let name = campus_testkit::unique(prefix)
            .replace('_', "-")
            .to_lowercase();
        let api: Api<Namespace> = Api::all(client.clone());
        let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
        api.create(&PostParams::default(), &ns)
            .await
            .expect("create a namespace");
        Self { name }
    }
}

impl Drop for TestNamespace {
    /// Deletes the namespace (and the cluster-scoped objects named after it). The operator under
    /// test is gone by now, so the platforms' finalizers are removed first or the namespace would
    /// stay Terminating. Runs on its own thread and runtime: the test's runtime is shutting down.
    fn drop(&mut self) {
        let name = self.name.clone();
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(cleanup_namespace(&name));
        })
        .join();
    }
}

async fn cleanup_namespace(name: &str) {
    use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
    let Ok(kc) = Kubeconfig::read_from(kubeconfig_path()) else {
        return;
    };
    let Ok(config) = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await else {
        return;
    };
    campus_operator::install_tls_provider();
    let Ok(client) = Client::try_from(config) else {
        return;
    };
    let platforms: Api<CampusPlatform> = Api::namespaced(client.clone(), name);
    if let Ok(list) = platforms.list_metadata(&ListParams::default()).await {
        for p in list {
            let _ = platforms
                .patch(
                    &p.name_any(),
                    &PatchParams::default(),
                    &Patch::Merge(json!({"metadata": {"finalizers": null}})),
                )
                .await;
        }
    }
    let _ = Api::<Namespace>::all(client.clone())
        .delete(name, &DeleteParams::background())
        .await;
    let selector = format!("campus.dev/platform-namespace={name}");
    let lp = ListParams::default().labels(&selector);
    let _ = Api::<ClusterRoleBinding>::all(client.clone())
        .delete_collection(&DeleteParams::background(), &lp)
        .await;
    let _ = Api::<ClusterRole>::all(client.clone())
        .delete_collection(&DeleteParams::background(), &lp)
        .await;
    // The platforms' Filebeat accounts of this namespace leave the shared Filebeat binding (their
    // finalizers, which would remove them, were removed above).
    let _ = drop_subjects_in(
        &client,
        campus_operator::build::DEFAULT_FILEBEAT_CLUSTER_ROLE_BINDING,
        name,
    )
    .await;
}

/// Removes every subject of namespace `ns` from the ClusterRoleBinding `binding`.
async fn drop_subjects_in(client: &Client, binding: &str, ns: &str) -> Result<(), kube::Error> {
    use k8s_openapi::api::rbac::v1::ClusterRoleBinding;
    let api: Api<ClusterRoleBinding> = Api::all(client.clone());
    for _ in 0..10 {
        let Some(mut crb) = api.get_opt(binding).await? else {
            return Ok(());
        };
        let have = crb.subjects.clone().unwrap_or_default();
        let keep: Vec<_> = have
            .iter()
            .filter(|s| s.namespace.as_deref() != Some(ns))
            .cloned()
            .collect();
        if keep.len() == have.len() {
            return Ok(());
        }
        crb.subjects = Some(keep);
        match api.replace(binding, &PostParams::default(), &crb).await {
            Err(kube::Error::Api(s)) if s.code == 409 => continue,
            other => return other.map(drop),
        }
    }
    Ok(())
}

/// The subjects (`namespace/name`) of the ClusterRoleBinding `binding`, sorted.
pub async fn binding_subjects(client: &Client, binding: &str) -> Vec<String> {
    use k8s_openapi::api::rbac::v1::ClusterRoleBinding;
    let crb = Api::<ClusterRoleBinding>::all(client.clone())
        .get_opt(binding)
        .await
        .expect("read the ClusterRoleBinding");
    let mut out: Vec<String> = crb
        .and_then(|c| c.subjects)
        .unwrap_or_default()
        .into_iter()
        .map(|s| format!("{}/{}", s.namespace.unwrap_or_default(), s.name))
        .collect();
    out.sort();
    out
}

/// Whether the Filebeat binding of the default settings has the account `ns/name`.
pub async fn filebeat_bound(client: &Client, ns: &str, name: &str) -> bool {
    binding_subjects(
        client,
        campus_operator::build::DEFAULT_FILEBEAT_CLUSTER_ROLE_BINDING,
    )
    .await
    .contains(&format!("{ns}/{name}"))
}

/// Settings for an operator under test: short intervals, this namespace only.
pub fn test_settings(namespace: &str) -> Settings {
    Settings {
        namespaces: vec![namespace.to_owned()],
        image_tag: "test".to_owned(),
        resync: Duration::from_secs(30),
        kafka_retry: Duration::from_millis(500),
        lag_interval: Duration::from_millis(500),
        topic_deletion_grace: Duration::from_secs(5),
        backoff: (Duration::from_millis(200), Duration::from_secs(5)),
        concurrency: 8,
        instance: Some("test".to_owned()),
        ..Settings::default()
    }
}

/// An operator running in this process, watching one namespace; stopped when dropped.
pub struct Operator {
    stop: CancellationToken,
    pub ctx: Arc<Context>,
    pub registry: Arc<prometheus_client::registry::Registry>,
}

impl Operator {
    pub fn start(client: &Client, settings: Settings) -> Self {
        let mut registry = campus_common::metrics::registry("campus-operator");
        let metrics = Metrics::register(&mut registry);
        let ctx = Context::new(client.clone(), settings, metrics);
        let stop = CancellationToken::new();
        let token = stop.clone();
        tokio::spawn(controller::run(ctx.clone(), async move {
            token.cancelled().await;
        }));
        Self {
            stop,
            ctx,
            registry: Arc::new(registry),
        }
    }

    pub fn metrics_text(&self) -> String {
        let mut s = String::new();
        prometheus_client::encoding::text::encode(&mut s, &self.registry).unwrap();
        s
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// A sample from `operator/samples/` as JSON, with its name set and Kafka pointed at `brokers`.
pub fn sample(file: &str, name: &str, brokers: &str) -> Value {
    let text = std::fs::read_to_string(workspace().join("operator/samples").join(file)).unwrap();
    let mut v: Value = serde_yaml::from_str(&text).unwrap();
    v["metadata"]["name"] = json!(name);
    v["spec"]["kafka"]["brokers"] = json!(brokers);
    v
}

/// Server-side applies a platform (as JSON) in `ns`, as a user would with `kubectl apply`.
pub async fn apply_platform(
    client: &Client,
    ns: &str,
    cr: &Value,
) -> Result<CampusPlatform, kube::Error> {
    let api: Api<CampusPlatform> = Api::namespaced(client.clone(), ns);
    let name = cr["metadata"]["name"].as_str().unwrap();
    api.patch(
        name,
        &PatchParams::apply("test-user").force(),
        &Patch::Apply(cr),
    )
    .await
}

pub async fn platform(client: &Client, ns: &str, name: &str) -> Option<CampusPlatform> {
    Api::<CampusPlatform>::namespaced(client.clone(), ns)
        .get_opt(name)
        .await
        .expect("read the platform")
}

/// The condition `type_` of the platform as (status, reason), once it describes the current
/// generation.
pub async fn condition(
    client: &Client,
    ns: &str,
    name: &str,
    type_: &str,
) -> Option<(String, String, String)> {
    let cr = platform(client, ns, name).await?;
    let st = cr.status.as_ref()?;
    if st.observed_generation != cr.metadata.generation {
        return None;
    }
    st.conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
}

/// Acts as the kubelet: marks every pod of the namespace Running and Ready. Returns how many
/// pods it changed.
pub async fn mark_pods_ready(client: &Client, ns: &str) -> usize {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let mut n = 0;
    for p in pods.list(&ListParams::default()).await.expect("list pods") {
        let ready = p
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
        if ready || p.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let now = k8s_openapi::jiff::Timestamp::now().to_string();
        let patch = json!({"status": {
            "phase": "Running",
            "conditions": [
                {"type": "Ready", "status": "True", "lastTransitionTime": now},
                {"type": "ContainersReady", "status": "True", "lastTransitionTime": now}
            ]
        }});
        if pods
            .patch_status(
                &p.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
            .is_ok()
        {
            n += 1;
        }
    }
    n
}

/// Topic names and partition counts in the shared Kafka.
pub async fn kafka_topics(brokers: &str) -> std::collections::HashMap<String, i32> {
    let admin = Admin::new(&campus_common::config::KafkaArgs::new(brokers)).expect("admin");
    admin
        .describe()
        .await
        .expect("the local Kafka is up (scripts/servers.sh start)")
        .into_iter()
        .map(|(k, v)| (k, v.partitions))
        .collect()
}

/// The kubectl the suite built (scripts/kube.sh) or the one on PATH.
pub fn kubectl() -> String {
    let cached = std::env::var("CAMPUS_CACHE")
        .map(|c| format!("{c}/bin/kubectl"))
        .unwrap_or_default();
    if !cached.is_empty() && std::path::Path::new(&cached).exists() {
        return cached;
    }
    let found = std::process::Command::new("sh")
        .args(["-c", "command -v kubectl"])
        .output()
        .unwrap();
    assert!(
        found.status.success(),
        "kubectl is not installed: the test needs it to apply the samples"
    );
    String::from_utf8(found.stdout).unwrap().trim().to_owned()
}
