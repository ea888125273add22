//! The operator against a real API server (kube-apiserver + kube-controller-manager v1.37,
//! scripts/kube.sh) and the local Kafka (scripts/servers.sh). Each test has its own namespace
//! and its own operator watching only that namespace; topic names are unique per test because the
//! default Kafka prefix (`<namespace>.<name>`) is.

mod support;

use std::time::{Duration, Instant};

use campus_common::kafka::admin::Admin;
use campus_operator::build::CONFIG_HASH_ANNOTATION;
use campus_operator::metrics::ApplyLabels;
use campus_testkit::{PrivateKafka, eventually, free_port};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::{ConfigMap, Service, ServiceAccount};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use kube::api::{Api, DeleteParams, ListParams};
use kube::{Client, ResourceExt};
use serde_json::json;
use support::*;

const WAIT: Duration = Duration::from_secs(60);

/// Waits until the platform's `TopicsReady` is True for its current generation.
async fn wait_topics_ready(client: &Client, ns: &str, name: &str, what: &str) {
    eventually(what, WAIT, || async {
        let (s, _, _) = condition(client, ns, name, "TopicsReady").await?;
        (s == "True").then_some(())
    })
    .await;
}

/// A fresh namespace with the CRD installed, an operator watching it, and the minimal sample
/// named after the namespace (not yet applied).
async fn minimal_platform(prefix: &str) -> (Client, TestNamespace, Operator, serde_json::Value) {
    let client = client().await;
    install_crd(&client).await;
    let ns = TestNamespace::new(&client, prefix).await;
    let op = Operator::start(&client, test_settings(&ns.name));
    let cr = sample("minimal.yaml", &ns.name, &brokers());
    (client, ns, op, cr)
}

fn brokers() -> String {
    campus_testkit::kafka_brokers()
}

async fn names<K>(client: &Client, ns: &str) -> Vec<String>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let api: Api<K> = Api::namespaced(client.clone(), ns);
    let mut n: Vec<String> = api
        .list_metadata(&ListParams::default())
        .await
        .unwrap()
        .into_iter()
        .filter(|o| o.metadata.deletion_timestamp.is_none())
        .map(|o| o.name_any())
        .filter(|n| n != "kube-root-ca.crt" && n != "default")
        .collect();
    n.sort();
    n
}

fn sorted(v: &[&str], prefix: &str) -> Vec<String> {
    let mut out: Vec<String> = v.iter().map(|s| format!("{prefix}-{s}")).collect();
    out.sort();
    out
}

async fn deployment(client: &Client, ns: &str, name: &str) -> Option<Deployment> {
    Api::<Deployment>::namespaced(client.clone(), ns)
        .get_opt(name)
        .await
        .unwrap()
}

fn template_hash(d: &Deployment) -> String {
    d.spec
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
}

const ALL_DEPLOYMENTS: [&str; 9] = [
    "content-api",
    "coupon-api",
    "log-api",
    "content-inspection",
    "content-cache",
    "content-inbox",
    "content-index",
    "coupon-issue",
    "logstash",
];

/// The minimal sample creates every child and every topic within seconds; `Ready` is False until
/// the pods are ready, then True; the printer columns' fields are filled in.
#[tokio::test]
async fn a_sample_creates_every_child_and_topic_and_ready_follows_the_pods() {
    let client = client().await;
    install_crd(&client).await;
    let ns = TestNamespace::new(&client, "op-create").await;
    let name = ns.name.clone();
    let p = format!("{}.{name}", ns.name); // the default Kafka prefix
    let op = Operator::start(&client, test_settings(&ns.name));
    apply_platform(
        &client,
        &ns.name,
        &sample("minimal.yaml", &name, &brokers()),
    )
    .await
    .expect("the minimal sample is accepted");

    let want = sorted(&ALL_DEPLOYMENTS, &name);
    eventually("every Deployment exists", WAIT, || async {
        (names::<Deployment>(&client, &ns.name).await == want).then_some(())
    })
    .await;
    let topics = [
        "post.original",
        "post.inspected",
        "coupon.request",
        "access-log",
        "post.original.dlq.{p}.inspection",
        "post.inspected.dlq.{p}.cache",
        "post.inspected.dlq.{p}.inbox",
        "post.inspected.dlq.{p}.index",
        "coupon.request.dlq.{p}.coupon-issue",
        "access-log.dlq.{p}.logstash",
    ]
    .map(|t| format!("{p}.{}", t.replace("{p}", &p)));
    eventually("every topic exists in Kafka", WAIT, || async {
        let have = kafka_topics(&brokers()).await;
        topics.iter().all(|t| have.contains_key(t)).then_some(())
    })
    .await;
    let have = kafka_topics(&brokers()).await;
    assert_eq!(have[&format!("{p}.post.original")], 3);
    assert_eq!(have[&format!("{p}.post.original.dlq.{p}.inspection")], 1);

    // (Services are applied beside the Deployments: they may come a moment after.)
    let services = sorted(
        &["content-api", "coupon-admin", "coupon-api", "log-api"],
        &name,
    );
    eventually("every Service exists", WAIT, || async {
        (names::<Service>(&client, &ns.name).await == services).then_some(())
    })
    .await;
    assert_eq!(
        names::<ConfigMap>(&client, &ns.name).await,
        sorted(
            &[
                "content-config",
                "coupon-config",
                "log-config",
                "filebeat",
                "logstash-settings",
                "logstash-pipelines"
            ],
            &name
        )
    );
    eventually("the Filebeat DaemonSet exists", WAIT, || async {
        (names::<DaemonSet>(&client, &ns.name).await == [format!("{name}-filebeat")]).then_some(())
    })
    .await;
    assert_eq!(
        names::<ServiceAccount>(&client, &ns.name).await,
        [format!("{name}-filebeat")]
    );
    let pdbs = sorted(&["content-api", "coupon-api", "log-api"], &name);
    eventually("every PodDisruptionBudget exists", WAIT, || async {
        (names::<PodDisruptionBudget>(&client, &ns.name).await == pdbs).then_some(())
    })
    .await;
    // Filebeat's account is a subject of the installation's Filebeat binding (of its Filebeat
    // ClusterRole); the operator makes no ClusterRole or ClusterRoleBinding of its own.
    assert!(filebeat_bound(&client, &ns.name, &format!("{name}-filebeat")).await);
    let binding = Api::<ClusterRoleBinding>::all(client.clone())
        .get("campus-filebeat")
        .await
        .unwrap();
    assert_eq!(binding.role_ref.name, "campus-filebeat");
    let own = ListParams::default().labels(&format!("campus.dev/platform={name}"));
    assert!(
        Api::<ClusterRole>::all(client.clone())
            .list_metadata(&own)
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert!(
        Api::<ClusterRoleBinding>::all(client.clone())
            .list_metadata(&own)
            .await
            .unwrap()
            .items
            .is_empty()
    );

    // Not ready while no pod is.
    let (status, reason, message) = eventually("Ready is reported", WAIT, || async {
        condition(&client, &ns.name, &name, "Ready").await
    })
    .await;
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "WorkloadsNotReady"),
        "{message}"
    );
    let topics_ready = condition(&client, &ns.name, &name, "TopicsReady")
        .await
        .unwrap();
    assert_eq!(topics_ready.0, "True", "{topics_ready:?}");

    // The stand-in kubelet makes every pod ready: the Deployments become available through the
    // real ReplicaSet and Deployment controllers, and the platform becomes Ready.
    eventually("Ready is True", WAIT, || async {
        mark_pods_ready(&client, &ns.name).await;
        let (s, _, _) = condition(&client, &ns.name, &name, "Ready").await?;
        (s == "True").then_some(())
    })
    .await;
    let cr = platform(&client, &ns.name, &name).await.unwrap();
    let st = cr.status.unwrap();
    assert_eq!(st.topics_summary.as_deref(), Some("10/10"));
    assert_eq!(st.workloads_summary.as_deref(), Some("10/10"));
    for t in ["TopicsReady", "WorkloadsReady", "LoggingReady"] {
        assert!(
            st.conditions
                .iter()
                .any(|c| c.type_ == t && c.status == "True"),
            "{t}: {:?}",
            st.conditions
        );
    }
    // Settled: no reconcile triggers the next one (no child event from a no-op apply counts as a
    // change).
    let reconciles = |text: String| {
        text.lines()
            .find(|l| l.starts_with("campus_operator_reconciles_total"))
            .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
            .unwrap()
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = reconciles(op.metrics_text());
    tokio::time::sleep(Duration::from_secs(4)).await;
    let after = reconciles(op.metrics_text());
    assert!(
        after - before <= 1,
        "the operator keeps reconciling a settled platform: {before} → {after}"
    );
    // Children carry the owner reference.
    let d = deployment(&client, &ns.name, &format!("{name}-content-api"))
        .await
        .unwrap();
    assert_eq!(d.owner_references()[0].uid, cr.metadata.uid.unwrap());
}

/// Children someone else changed or deleted are put back (the operator skips applying children
/// that are as its last apply left them, so this is what proves it still sees drift): an edited
/// ConfigMap value, a scaled Deployment, a deleted Service. Reconciles with nothing changed send
/// no apply.
#[tokio::test]
async fn children_changed_or_deleted_by_others_are_put_back() {
    let (client, ns, op, cr) = minimal_platform("op-drift").await;
    let name = ns.name.clone();
    apply_platform(&client, &ns.name, &cr).await.unwrap();
    wait_topics_ready(&client, &ns.name, &name, "the platform is reconciled").await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns.name);
    let deps: Api<Deployment> = Api::namespaced(client.clone(), &ns.name);
    let svcs: Api<Service> = Api::namespaced(client.clone(), &ns.name);
    let (cm_name, api_name) = (
        format!("{name}-content-config"),
        format!("{name}-content-api"),
    );
    let redis_url = cms.get(&cm_name).await.unwrap().data.unwrap()["REDIS_URL"].clone();
    let replicas = deps.get(&api_name).await.unwrap().spec.unwrap().replicas;
    let svc_name = names::<Service>(&client, &ns.name).await[0].clone();

    // Settled (once the watches have caught up with the first applies): a reconcile applies
    // nothing and finds every child unchanged.
    let applies = |result: &'static str| {
        op.ctx
            .metrics
            .child_applies
            .get_or_create(&ApplyLabels {
                result: result.to_owned(),
            })
            .get()
    };
    let pokes = std::sync::atomic::AtomicU32::new(0);
    eventually("a reconcile applies nothing", WAIT, || async {
        let (applied, unchanged) = (applies("applied"), applies("unchanged"));
        let reconciles = op.ctx.metrics.reconciles.get();
        let mut poke = cr.clone();
        let n = pokes.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        poke["metadata"]["annotations"] = json!({"campus.dev/poke": n.to_string()});
        apply_platform(&client, &ns.name, &poke).await.ok()?;
        while op.ctx.metrics.reconciles.get() == reconciles {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        (applies("applied") == applied && applies("unchanged") > unchanged).then_some(())
    })
    .await;

    let edit = kube::api::PatchParams::default();
    cms.patch(
        &cm_name,
        &edit,
        &kube::api::Patch::Merge(json!({"data": {"REDIS_URL": "redis://someone-else:1"}})),
    )
    .await
    .unwrap();
    deps.patch(
        &api_name,
        &edit,
        &kube::api::Patch::Merge(json!({"spec": {"replicas": 7}})),
    )
    .await
    .unwrap();
    svcs.delete(&svc_name, &DeleteParams::default())
        .await
        .unwrap();
    eventually("the edited value is put back", WAIT, || async {
        let data = cms.get(&cm_name).await.ok()?.data?;
        (data["REDIS_URL"] == redis_url).then_some(())
    })
    .await;
    eventually("the scaled Deployment is put back", WAIT, || async {
        let d = deps.get(&api_name).await.ok()?;
        (d.spec?.replicas == replicas).then_some(())
    })
    .await;
    eventually("the deleted Service is back", WAIT, || async {
        svcs.get_opt(&svc_name).await.ok()?.map(drop)
    })
    .await;
}

/// A spec change updates the children and rolls the config hash; disabling services removes
/// their children; pipeline edits do not restart Logstash.
#[tokio::test]
async fn spec_changes_update_children_roll_hashes_and_prune_disabled_services() {
    let (client, ns, _op, mut cr) = minimal_platform("op-change").await;
    let name = ns.name.clone();
    apply_platform(&client, &ns.name, &cr).await.unwrap();
    let api_name = format!("{name}-content-api");
    let first = eventually("the content API exists", WAIT, || async {
        deployment(&client, &ns.name, &api_name).await
    })
    .await;
    let ls_name = format!("{name}-logstash");
    let ls_first = eventually("Logstash exists", WAIT, || async {
        deployment(&client, &ns.name, &ls_name).await
    })
    .await;

    cr["spec"]["redis"]["url"] = json!("redis://redis-2:6379");
    cr["spec"]["content"]["replicas"] = json!(3);
    cr["spec"]["logging"] =
        json!({"logstash": {"pipelines": [{"name": "access-log", "indexPrefix": "logs"}]}});
    apply_platform(&client, &ns.name, &cr).await.unwrap();
    let changed = eventually("the content API rolled", WAIT, || async {
        let d = deployment(&client, &ns.name, &api_name).await?;
        (template_hash(&d) != template_hash(&first)).then_some(d)
    })
    .await;
    assert_eq!(changed.spec.as_ref().unwrap().replicas, Some(3));
    let cm: ConfigMap = Api::namespaced(client.clone(), &ns.name)
        .get(&format!("{name}-content-config"))
        .await
        .unwrap();
    assert_eq!(cm.data.unwrap()["REDIS_URL"], "redis://redis-2:6379");
    let log_api = deployment(&client, &ns.name, &format!("{name}-log-api"))
        .await
        .unwrap();
    assert_eq!(
        log_api.metadata.generation,
        Some(1),
        "the log API's config did not change"
    );
    eventually("the pipeline is edited in place", WAIT, || async {
        let cm: ConfigMap = Api::namespaced(client.clone(), &ns.name)
            .get(&format!("{name}-logstash-pipelines"))
            .await
            .ok()?;
        cm.data?["access-log.conf"]
            .contains(r#"index => "logs-%{+YYYY.MM.dd}""#)
            .then_some(())
    })
    .await;
    let ls = deployment(&client, &ns.name, &ls_name).await.unwrap();
    assert_eq!(
        template_hash(&ls),
        template_hash(&ls_first),
        "Logstash reloads pipelines in place"
    );

    // Disable the coupon service and Filebeat, switch to the native indexer.
    cr["spec"]["coupon"] = json!({"enabled": false});
    cr["spec"]["logging"] = json!({"processor": "Native", "filebeat": {"enabled": false}});
    apply_platform(&client, &ns.name, &cr).await.unwrap();
    let want = sorted(
        &[
            "content-api",
            "log-api",
            "content-inspection",
            "content-cache",
            "content-inbox",
            "content-index",
            "log-index",
        ],
        &name,
    );
    // Prunes of the different kinds run concurrently: wait for all of them.
    let want_services = sorted(&["content-api", "log-api"], &name);
    let want_maps = sorted(&["content-config", "log-config"], &name);
    eventually("the disabled parts' children are gone", WAIT, || async {
        let done = names::<Deployment>(&client, &ns.name).await == want
            && names::<Service>(&client, &ns.name).await == want_services
            && names::<ConfigMap>(&client, &ns.name).await == want_maps
            && names::<DaemonSet>(&client, &ns.name).await.is_empty()
            && names::<ServiceAccount>(&client, &ns.name).await.is_empty()
            && names::<PodDisruptionBudget>(&client, &ns.name).await == want_services;
        done.then_some(())
    })
    .await;
    eventually(
        "Filebeat's account left the Filebeat binding",
        WAIT,
        || async {
            let bound = filebeat_bound(&client, &ns.name, &format!("{name}-filebeat")).await;
            (!bound).then_some(())
        },
    )
    .await;
    let indexer = deployment(&client, &ns.name, &format!("{name}-log-index"))
        .await
        .unwrap();
    let c = &indexer.spec.unwrap().template.spec.unwrap().containers[0];
    assert_eq!(c.args.as_deref().unwrap(), ["worker", "index"]);
}

/// Deleting a platform with `deletionPolicy: Delete` deletes its topics and its children
/// (garbage-collected through owner references by the controller-manager); `Retain` keeps them.
#[tokio::test]
async fn deletion_garbage_collects_children_and_applies_the_topic_policy() {
    let client = client().await;
    install_crd(&client).await;
    let ns = TestNamespace::new(&client, "op-delete").await;
    let _op = Operator::start(&client, test_settings(&ns.name));
    let api: Api<campus_operator::crd::CampusPlatform> = Api::namespaced(client.clone(), &ns.name);
    for policy in ["Delete", "Retain"] {
        let name = format!("{}-{}", ns.name, policy.to_lowercase());
        let p = format!("{}.{name}", ns.name); // the default Kafka prefix
        let mut cr = sample("minimal.yaml", &name, &brokers());
        cr["spec"]["topics"] = json!({"deletionPolicy": policy});
        apply_platform(&client, &ns.name, &cr).await.unwrap();
        let topic = format!("{p}.post.original");
        eventually("the topics exist", WAIT, || async {
            kafka_topics(&brokers())
                .await
                .contains_key(&topic)
                .then_some(())
        })
        .await;
        eventually("the children exist", WAIT, || async {
            deployment(&client, &ns.name, &format!("{name}-content-api"))
                .await
                .map(drop)
        })
        .await;
        let cr_now = api.get(&name).await.unwrap();
        assert!(cr_now.finalizers().iter().any(|f| f == "campus.dev/topics"));

        api.delete(&name, &DeleteParams::foreground())
            .await
            .unwrap();
        eventually("the platform is gone", WAIT, || async {
            api.get_opt(&name).await.unwrap().is_none().then_some(())
        })
        .await;
        eventually("the children are garbage-collected", WAIT, || async {
            let left = names::<Deployment>(&client, &ns.name).await;
            let left_cm = names::<ConfigMap>(&client, &ns.name).await;
            (!left.iter().chain(&left_cm).any(|n| n.starts_with(&name))).then_some(())
        })
        .await;
        assert!(
            !filebeat_bound(&client, &ns.name, &format!("{name}-filebeat")).await,
            "the finalizer removed Filebeat's account from the Filebeat binding"
        );
        let have = kafka_topics(&brokers()).await;
        match policy {
            "Delete" => {
                eventually("the topics are deleted", WAIT, || async {
                    let have = kafka_topics(&brokers()).await;
                    (!have.keys().any(|t| t.starts_with(&format!("{p}.")))).then_some(())
                })
                .await
            }
            _ => assert!(have.contains_key(&topic), "Retain keeps {topic}"),
        }
    }
}

/// Filebeat's DaemonSets, ConfigMaps and ServiceAccounts in `ns`.
async fn filebeat_in(client: &Client, ns: &str) -> (Vec<String>, Vec<String>, Vec<String>) {
    (
        names::<DaemonSet>(client, ns).await,
        names::<ConfigMap>(client, ns)
            .await
            .into_iter()
            .filter(|n| n.ends_with("-filebeat"))
            .collect(),
        names::<ServiceAccount>(client, ns).await,
    )
}

/// Filebeat in a namespace of its own (`logging.filebeat.namespace`): its DaemonSet, ConfigMap
/// and ServiceAccount live there, labelled with the platform (no owner reference can cross
/// namespaces), its account is bound there; moving it back deletes them there, and so does
/// deleting the platform (the finalizer), with its subject in the Filebeat binding.
#[tokio::test]
async fn filebeat_in_a_namespace_of_its_own_moves_and_goes_with_the_platform() {
    let (client, ns, _op, mut cr) = minimal_platform("op-fbns").await;
    let logs = TestNamespace::new(&client, "op-fbns-logs").await;
    let name = ns.name.clone();
    let here = format!("{name}-filebeat");
    let there = format!("{}-{name}-filebeat", ns.name);
    let only = |n: &str| (vec![n.to_owned()], vec![n.to_owned()], vec![n.to_owned()]);
    let none = || (Vec::new(), Vec::new(), Vec::new());
    let status_ns = |client: Client, ns: String, name: String| async move {
        platform(&client, &ns, &name)
            .await?
            .status?
            .filebeat_namespace
    };

    cr["spec"]["logging"] = json!({"filebeat": {"namespace": logs.name}});
    apply_platform(&client, &ns.name, &cr).await.unwrap();
    eventually("Filebeat's objects in their namespace", WAIT, || async {
        (filebeat_in(&client, &logs.name).await == only(&there)
            && filebeat_in(&client, &ns.name).await == none()
            && filebeat_bound(&client, &logs.name, &there).await
            && status_ns(client.clone(), ns.name.clone(), name.clone())
                .await
                .as_deref()
                == Some(logs.name.as_str()))
        .then_some(())
    })
    .await;
    let ds = Api::<DaemonSet>::namespaced(client.clone(), &logs.name)
        .get(&there)
        .await
        .unwrap();
    assert!(ds.owner_references().is_empty());
    assert_eq!(ds.labels()["campus.dev/platform"], name);
    assert_eq!(ds.labels()["campus.dev/platform-namespace"], ns.name);
    let pod = ds.spec.unwrap().template.spec.unwrap();
    assert_eq!(pod.service_account_name.as_deref(), Some(there.as_str()));
    // Its workload counts in the platform's status.
    let cr_now = platform(&client, &ns.name, &name).await.unwrap();
    assert!(
        cr_now
            .status
            .unwrap()
            .workloads
            .iter()
            .any(|w| w.name == there),
        "the DaemonSet in {} is one of the platform's workloads",
        logs.name
    );

    // Back to the platform's namespace: the objects there go, the account moves.
    cr["spec"]["logging"] = json!({"filebeat": {"enabled": true}});
    apply_platform(&client, &ns.name, &cr).await.unwrap();
    eventually("Filebeat moved back", WAIT, || async {
        (filebeat_in(&client, &logs.name).await == none()
            && filebeat_in(&client, &ns.name).await == only(&here)
            && filebeat_bound(&client, &ns.name, &here).await
            && !filebeat_bound(&client, &logs.name, &there).await)
            .then_some(())
    })
    .await;

    // Out again, then the platform is deleted: the finalizer deletes what no owner reference
    // lets the garbage collector delete.
    cr["spec"]["logging"] = json!({"filebeat": {"namespace": logs.name}});
    apply_platform(&client, &ns.name, &cr).await.unwrap();
    eventually("Filebeat out again", WAIT, || async {
        (filebeat_in(&client, &logs.name).await == only(&there)
            && !filebeat_bound(&client, &ns.name, &here).await)
            .then_some(())
    })
    .await;
    let api: Api<campus_operator::crd::CampusPlatform> = Api::namespaced(client.clone(), &ns.name);
    api.delete(&name, &DeleteParams::default()).await.unwrap();
    eventually("the platform is gone", WAIT, || async {
        api.get_opt(&name).await.unwrap().is_none().then_some(())
    })
    .await;
    assert_eq!(filebeat_in(&client, &logs.name).await, none());
    assert!(!filebeat_bound(&client, &logs.name, &there).await);
}

/// The schema rejects a malformed platform at the API; a well-formed but invalid one is reported
/// in status, and an existing platform's children are left untouched while its spec is invalid.
#[tokio::test]
async fn bad_platforms_are_rejected_or_reported_without_touching_children() {
    let client = client().await;
    install_crd(&client).await;
    let ns = TestNamespace::new(&client, "op-bad").await;
    let _op = Operator::start(&client, test_settings(&ns.name));

    for (field, value) in [
        ("/spec/topics/deletionPolicy", json!("Sometimes")),
        ("/spec/topics/partitions", json!(0)),
        ("/spec/content/replicas", json!(1000)),
        ("/spec/logging/processor", json!("Fluentd")),
        ("/spec/kafka", json!({})),
    ] {
        let mut cr = sample("minimal.yaml", "rejected", &brokers());
        set(&mut cr, field, value.clone());
        let err = apply_platform(&client, &ns.name, &cr)
            .await
            .expect_err(field);
        match err {
            kube::Error::Api(s) => assert_eq!(s.code, 422, "{field}={value}: {s:?}"),
            other => panic!("{field}: {other}"),
        }
    }

    // Valid to the schema, invalid to the operator: reported, nothing created.
    let name = format!("{}-x", ns.name);
    let mut cr = sample("minimal.yaml", &name, "kafka-without-port");
    cr["spec"]["mysql"] = serde_json::Value::Null;
    cr["spec"].as_object_mut().unwrap().remove("mysql");
    apply_platform(&client, &ns.name, &cr).await.unwrap();
    let (s, reason, message) = eventually("InvalidSpec is reported", WAIT, || async {
        condition(&client, &ns.name, &name, "Ready").await
    })
    .await;
    assert_eq!((s.as_str(), reason.as_str()), ("False", "InvalidSpec"));
    assert!(message.contains("kafka.brokers"), "{message}");
    assert!(message.contains("mysql is required"), "{message}");
    assert!(names::<Deployment>(&client, &ns.name).await.is_empty());
    assert!(names::<ConfigMap>(&client, &ns.name).await.is_empty());

    // Fix it: children appear. Break it again: they stay exactly as they were.
    let good = sample("minimal.yaml", &name, &brokers());
    apply_platform(&client, &ns.name, &good).await.unwrap();
    let api_name = format!("{name}-content-api");
    let before = eventually("children are created", WAIT, || async {
        let d = deployment(&client, &ns.name, &api_name).await?;
        condition(&client, &ns.name, &name, "TopicsReady").await?;
        Some(d)
    })
    .await;
    let mut bad = good.clone();
    bad["spec"]["topics"] = json!({"overrides": [{"name": "no.such.topic"}]});
    bad["spec"]["redis"]["url"] = json!("redis://elsewhere:6379");
    apply_platform(&client, &ns.name, &bad).await.unwrap();
    let (_, reason, message) = eventually("InvalidSpec is reported again", WAIT, || async {
        let c = condition(&client, &ns.name, &name, "Ready").await?;
        (c.1 == "InvalidSpec").then_some(c)
    })
    .await;
    assert_eq!(reason, "InvalidSpec");
    assert!(message.contains("`no.such.topic`"), "{message}");
    let after = deployment(&client, &ns.name, &api_name).await.unwrap();
    // (The resourceVersion moves with the deployment controller's status writes; the spec is
    // what the operator would change.)
    assert_eq!(after.metadata.generation, before.metadata.generation);
    assert_eq!(after.spec, before.spec);
    let cm: ConfigMap = Api::namespaced(client.clone(), &ns.name)
        .get(&format!("{name}-content-config"))
        .await
        .unwrap();
    assert_eq!(cm.data.unwrap()["REDIS_URL"], "redis://redis:6379");
}

/// Sets a JSON-pointer path, creating the objects on the way.
fn set(v: &mut serde_json::Value, pointer: &str, value: serde_json::Value) {
    let mut cur = v;
    let parts: Vec<&str> = pointer.trim_start_matches('/').split('/').collect();
    for p in &parts[..parts.len() - 1] {
        if cur.get(*p).is_none() {
            cur[*p] = json!({});
        }
        cur = &mut cur[*p];
    }
    cur[parts[parts.len() - 1]] = value;
}

fn container_of(d: &Deployment) -> &k8s_openapi::api::core::v1::Container {
    &d.spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap()
        .containers[0]
}

/// The (Secret, key) an environment variable of the Deployment's container is read from.
fn secret_env(d: &Deployment, var: &str) -> Option<(String, String)> {
    let e = container_of(d)
        .env
        .as_ref()?
        .iter()
        .find(|e| e.name == var)?;
    let r = e.value_from.as_ref()?.secret_key_ref.as_ref()?;
    Some((r.name.clone(), r.key.clone()))
}

/// `redis.urlSecretRef` and `elasticsearch.urlSecretRef`: switching a running platform from
/// plain URLs to Secret references rolls the pods, which then read `REDIS_URL` and
/// `ELASTICSEARCH_URL` from the Secrets (Logstash too, through `${ELASTICSEARCH_URL}` in its
/// pipeline), and no URL is left in a ConfigMap. A platform with both `url` and `urlSecretRef`, or
/// neither, is rejected by the schema and its children stay as they were.
#[tokio::test]
async fn url_secret_refs_reach_the_pods_and_url_with_url_secret_ref_is_rejected() {
    use k8s_openapi::api::core::v1::Secret;
    let client = client().await;
    install_crd(&client).await;
    let ns = TestNamespace::new(&client, "op-secret-urls").await;
    let name = ns.name.clone();
    let _op = Operator::start(&client, test_settings(&ns.name));
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "campus-urls"},
        "stringData": {
            "redis": "redis://:s3cret@redis:6379/0",
            "es": "https://elastic:s3cret@es:9200"
        }
    }))
    .unwrap();
    Api::<Secret>::namespaced(client.clone(), &ns.name)
        .create(&Default::default(), &secret)
        .await
        .unwrap();

    // Plain URLs first (what every platform so far has): they keep working.
    let mut cr = sample("minimal.yaml", &name, &brokers());
    apply_platform(&client, &ns.name, &cr).await.unwrap();
    let want = sorted(&ALL_DEPLOYMENTS, &name);
    eventually("every Deployment exists", WAIT, || async {
        (names::<Deployment>(&client, &ns.name).await == want).then_some(())
    })
    .await;
    let get = |n: &str| {
        let n = format!("{name}-{n}");
        let client = client.clone();
        let ns = ns.name.clone();
        async move { deployment(&client, &ns, &n).await.unwrap() }
    };
    let api_before = get("content-api").await;
    let ls_before = get("logstash").await;
    assert_eq!(secret_env(&api_before, "REDIS_URL"), None);

    cr["spec"]["redis"] = json!({"urlSecretRef": {"name": "campus-urls", "key": "redis"}});
    cr["spec"]["elasticsearch"] = json!({"urlSecretRef": {"name": "campus-urls", "key": "es"}});
    apply_platform(&client, &ns.name, &cr).await.unwrap();
    let redis = Some(("campus-urls".to_owned(), "redis".to_owned()));
    let es = Some(("campus-urls".to_owned(), "es".to_owned()));
    eventually("the pods read the URLs from the Secret", WAIT, || async {
        let mut done = true;
        for (d, r, e) in [
            ("content-api", true, true),
            ("content-cache", true, true),
            ("coupon-api", true, false),
            ("coupon-issue", true, false),
            ("log-api", false, true),
            ("logstash", false, true),
        ] {
            let d = deployment(&client, &ns.name, &format!("{name}-{d}")).await?;
            done &= secret_env(&d, "REDIS_URL") == if r { redis.clone() } else { None };
            done &= secret_env(&d, "ELASTICSEARCH_URL") == if e { es.clone() } else { None };
        }
        done.then_some(())
    })
    .await;
    // The pod templates changed, so the Deployments roll (a new generation and config hash).
    let api_after = get("content-api").await;
    assert!(api_after.metadata.generation > api_before.metadata.generation);
    assert_ne!(template_hash(&api_after), template_hash(&api_before));
    let ls_after = get("logstash").await;
    assert!(ls_after.metadata.generation > ls_before.metadata.generation);
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns.name);
    for svc in ["content", "coupon", "log"] {
        let data = cms
            .get(&format!("{name}-{svc}-config"))
            .await
            .unwrap()
            .data
            .unwrap();
        assert!(!data.contains_key("REDIS_URL"), "{svc}: {data:?}");
        assert!(!data.contains_key("ELASTICSEARCH_URL"), "{svc}: {data:?}");
    }
    let pipelines = cms
        .get(&format!("{name}-logstash-pipelines"))
        .await
        .unwrap()
        .data
        .unwrap();
    let conf = &pipelines["access-log.conf"];
    assert!(
        conf.contains(r#"hosts => ["${ELASTICSEARCH_URL}"]"#),
        "{conf}"
    );
    assert!(
        !conf.contains("s3cret"),
        "the operator never reads the Secret"
    );

    // Both, or neither: refused by the API; nothing changes.
    let settled = eventually("the platform settles", WAIT, || async {
        let c = condition(&client, &ns.name, &name, "TopicsReady").await?;
        Some(c)
    })
    .await;
    assert_eq!(settled.0, "True", "{settled:?}");
    let generation = platform(&client, &ns.name, &name)
        .await
        .unwrap()
        .metadata
        .generation;
    for (what, redis) in [
        (
            "both",
            json!({"url": "redis://elsewhere:6379",
                   "urlSecretRef": {"name": "campus-urls", "key": "redis"}}),
        ),
        ("neither", json!({"keyPrefix": "x:"})),
    ] {
        let mut bad = cr.clone();
        bad["spec"]["redis"] = redis;
        let err = apply_platform(&client, &ns.name, &bad)
            .await
            .expect_err(what);
        match err {
            kube::Error::Api(s) => {
                assert_eq!(s.code, 422, "{what}: {s:?}");
                assert!(s.message.contains("spec.redis"), "{what}: {}", s.message);
            }
            other => panic!("{what}: {other}"),
        }
    }
    let cr_now = platform(&client, &ns.name, &name).await.unwrap();
    assert_eq!(cr_now.metadata.generation, generation);
    assert_eq!(
        cr_now.spec.redis.unwrap().url_secret_ref.unwrap().key,
        "redis"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let api_final = get("content-api").await;
    assert_eq!(api_final.metadata.generation, api_after.metadata.generation);
    assert_eq!(api_final.spec, api_after.spec);
}

/// With Kafka unreachable the workloads are still applied and `TopicsReady` is False with a
/// reason; when Kafka comes up (same address, nothing else changes) the operator creates the
/// topics on its own.
#[tokio::test]
async fn kafka_unreachable_is_reported_and_the_operator_recovers_when_it_returns() {
    let client = client().await;
    install_crd(&client).await;
    let ns = TestNamespace::new(&client, "op-kafka").await;
    let name = ns.name.clone();
    let p = format!("{}.{name}", ns.name); // the default Kafka prefix
    let _op = Operator::start(&client, test_settings(&ns.name));
    let port = free_port();
    let private = format!("127.0.0.1:{port}");
    apply_platform(&client, &ns.name, &sample("minimal.yaml", &name, &private))
        .await
        .unwrap();
    let (s, reason, message) = eventually("TopicsReady is reported", WAIT, || async {
        condition(&client, &ns.name, &name, "TopicsReady").await
    })
    .await;
    assert_eq!(
        (s.as_str(), reason.as_str()),
        ("False", "KafkaUnreachable"),
        "{message}"
    );
    assert!(message.contains(&private), "{message}");
    assert!(
        deployment(&client, &ns.name, &format!("{name}-content-api"))
            .await
            .is_some()
    );
    let ready = condition(&client, &ns.name, &name, "Ready").await.unwrap();
    assert_eq!(
        (ready.0.as_str(), ready.1.as_str()),
        ("False", "TopicsNotReady")
    );

    let kafka = PrivateKafka::start_on(port).await;
    eventually(
        "TopicsReady becomes True",
        Duration::from_secs(90),
        || async {
            let (s, _, _) = condition(&client, &ns.name, &name, "TopicsReady").await?;
            (s == "True").then_some(())
        },
    )
    .await;
    let have = kafka_topics(&private).await;
    assert!(have.contains_key(&format!("{p}.post.original")), "{have:?}");
    drop(kafka);
}

/// `deletionPolicy: Delete` with Kafka gone: deletion gives up after the grace period instead
/// of hanging.
#[tokio::test]
async fn deletion_does_not_hang_when_kafka_is_gone() {
    let client = client().await;
    install_crd(&client).await;
    let ns = TestNamespace::new(&client, "op-gone").await;
    let name = ns.name.clone();
    let _op = Operator::start(&client, test_settings(&ns.name));
    let mut cr = sample("minimal.yaml", &name, &format!("127.0.0.1:{}", free_port()));
    cr["spec"]["topics"] = json!({"deletionPolicy": "Delete"});
    apply_platform(&client, &ns.name, &cr).await.unwrap();
    eventually("the finalizer is in place", WAIT, || async {
        let cr = platform(&client, &ns.name, &name).await?;
        (!cr.finalizers().is_empty()).then_some(())
    })
    .await;
    let api: Api<campus_operator::crd::CampusPlatform> = Api::namespaced(client.clone(), &ns.name);
    let started = Instant::now();
    api.delete(&name, &DeleteParams::default()).await.unwrap();
    eventually("the platform is gone despite Kafka", WAIT, || async {
        api.get_opt(&name).await.unwrap().is_none().then_some(())
    })
    .await;
    // The test operator's grace is 5 s; deletion must not finish before trying for that long.
    assert!(
        started.elapsed() >= Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
}

/// The pause annotation stops changes to the children; removing it applies them.
#[tokio::test]
async fn the_pause_annotation_holds_changes_back() {
    let (client, ns, _op, mut cr) = minimal_platform("op-pause").await;
    let name = ns.name.clone();
    apply_platform(&client, &ns.name, &cr).await.unwrap();
    let api_name = format!("{name}-coupon-api");
    eventually("children exist", WAIT, || async {
        deployment(&client, &ns.name, &api_name).await
    })
    .await;
    cr["metadata"]["annotations"] = json!({"campus.dev/paused": "true"});
    cr["spec"]["coupon"] = json!({"replicas": 4});
    apply_platform(&client, &ns.name, &cr).await.unwrap();
    let (_, reason, _) = eventually("Paused is reported", WAIT, || async {
        let c = condition(&client, &ns.name, &name, "Ready").await?;
        (c.1 == "Paused").then_some(c)
    })
    .await;
    assert_eq!(reason, "Paused");
    let d = deployment(&client, &ns.name, &api_name).await.unwrap();
    assert_eq!(d.spec.unwrap().replicas, Some(1));
    cr["metadata"]["annotations"] = json!({"campus.dev/paused": "false"});
    apply_platform(&client, &ns.name, &cr).await.unwrap();
    eventually("the change is applied after the pause", WAIT, || async {
        let d = deployment(&client, &ns.name, &api_name).await?;
        (d.spec?.replicas == Some(4)).then_some(())
    })
    .await;
}

/// Lag-based scaling: a built-up lag on `post.original` scales the inspection group's Deployment
/// up to its bound; once the group has committed to the end, it scales back down. The lag shows
/// in status.
#[tokio::test]
async fn lag_scaling_moves_replicas_up_and_down() {
    use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
    use rdkafka::producer::{FutureProducer, FutureRecord};
    use rdkafka::{Offset, TopicPartitionList};

    let (client, ns, op, mut cr) = minimal_platform("op-lag").await;
    let name = ns.name.clone();
    let p = format!("{}.{name}", ns.name); // the default Kafka prefix
    cr["spec"]["content"]["groups"] = json!({"inspection": {"autoscaling": {"minReplicas": 1, "maxReplicas": 4, "lagPerReplica": 10, "scaleDownStabilizationSeconds": 3}}});
    apply_platform(&client, &ns.name, &cr).await.unwrap();
    let dep = format!("{name}-content-inspection");
    let topic = format!("{p}.post.original");
    let group = format!("{p}.inspection");
    let replicas = |d: Option<Deployment>| d.and_then(|d| d.spec?.replicas);
    eventually("the worker starts at its minimum", WAIT, || async {
        (replicas(deployment(&client, &ns.name, &dep).await) == Some(1)).then_some(())
    })
    .await;
    eventually("the topic exists", WAIT, || async {
        kafka_topics(&brokers())
            .await
            .contains_key(&topic)
            .then_some(())
    })
    .await;

    let producer: FutureProducer = campus_testkit::kafka().client_config().create().unwrap();
    for i in 0..35 {
        let key = format!("post-{i}");
        producer
            .send(
                FutureRecord::to(&topic).key(&key).payload("{}"),
                Duration::from_secs(10),
            )
            .await
            .expect("produce");
    }
    eventually(
        "the worker scales up to 3 (lag 35, 10 per replica: 4, capped by the topic's 3 partitions)",
        WAIT,
        || async { (replicas(deployment(&client, &ns.name, &dep).await) == Some(3)).then_some(()) },
    )
    .await;
    let w = eventually("status shows the lag", WAIT, || async {
        let st = platform(&client, &ns.name, &name).await?.status?;
        st.workloads
            .into_iter()
            .find(|w| w.name == dep && w.lag == Some(35))
    })
    .await;
    assert_eq!(w.group.as_deref(), Some(group.as_str()));

    // The group works off the lag: commit every partition at its end.
    let mut cfg = campus_testkit::kafka().client_config();
    cfg.set("group.id", &group)
        .set("enable.auto.commit", "false");
    let consumer: BaseConsumer = cfg.create().unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..3 {
        let (_, high) = consumer
            .fetch_watermarks(&topic, p, Duration::from_secs(5))
            .unwrap();
        tpl.add_partition_offset(&topic, p, Offset::Offset(high))
            .unwrap();
    }
    consumer
        .commit(&tpl, CommitMode::Sync)
        .expect("commit the group's offsets");
    eventually("the worker scales back down to 1", WAIT, || async {
        (replicas(deployment(&client, &ns.name, &dep).await) == Some(1)).then_some(())
    })
    .await;
    let last = eventually("status shows the last scaling decision", WAIT, || async {
        let st = platform(&client, &ns.name, &name).await?.status?;
        st.workloads
            .into_iter()
            .find(|w| w.name == dep)?
            .last_scale
            .filter(|d| d.to == 1)
    })
    .await;
    assert!(last.from > 1 && last.lag == 0, "{last:?}");
    assert!(
        last.reason.starts_with("lag 0 at 10 per replica wants 0"),
        "{last:?}"
    );
    eventually("status shows no lag", WAIT, || async {
        let st = platform(&client, &ns.name, &name).await?.status?;
        st.workloads
            .into_iter()
            .find(|w| w.name == dep && w.lag == Some(0))
    })
    .await;
    let metrics = op.metrics_text();
    // The lag may be seen while the records are still arriving, so scaling up can take more
    // than one step; each direction must have happened.
    let scale_events = |direction: &str| -> u64 {
        let prefix = format!("campus_operator_scale_events_total{{direction=\"{direction}\"}} ");
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(prefix.as_str()))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0)
    };
    assert!(scale_events("up") >= 1, "{metrics}");
    assert!(scale_events("down") >= 1, "{metrics}");
    assert!(
        metrics.contains("campus_operator_reconciles_total"),
        "{metrics}"
    );
}

/// The config of one topic as Kafka reports it.
async fn topic_config(topic: &str) -> campus_common::kafka::admin::TopicConfig {
    let admin = Admin::new(&campus_testkit::kafka()).unwrap();
    admin
        .topic_configs(&[topic])
        .await
        .expect("DescribeConfigs")
        .remove(topic)
        .unwrap_or_default()
}

/// Whether an event with this reason was published about the namespace's platform; its note.
async fn event_note(client: &Client, ns: &str, reason: &str) -> Option<String> {
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client.clone(), ns);
    let list = events.list(&Default::default()).await.ok()?;
    list.items
        .into_iter()
        .find(|e| e.reason.as_deref() == Some(reason))
        .map(|e| e.note.unwrap_or_default())
}

/// A counter of the operator's topic operations.
fn topic_ops(metrics: &str, operation: &str, result: &str) -> u64 {
    let prefix = format!(
        "campus_operator_topic_operations_total{{operation=\"{operation}\",result=\"{result}\"}} "
    );
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

/// Config changed in the spec after the topics exist reaches Kafka (AlterConfigs), keeps the
/// overrides the spec does not name, is counted and announced; a value Kafka refuses is
/// reported in status and clears once fixed.
#[tokio::test]
async fn topic_config_changes_are_applied_to_existing_topics() {
    let (client, ns, op, mut cr) = minimal_platform("op-config").await;
    let name = ns.name.clone();
    let p = format!("{}.{name}", ns.name); // the default Kafka prefix
    apply_platform(&client, &ns.name, &cr).await.unwrap();
    wait_topics_ready(&client, &ns.name, &name, "TopicsReady is True").await;
    let original = format!("{p}.post.original");
    let coupon = format!("{p}.coupon.request");
    // (A broker may answer DescribeConfigs for a topic it learns of from the controller a moment
    // after the creation returned: nothing yet.)
    let before = eventually("the new topic's config readable", WAIT, || async {
        let c = topic_config(&original).await;
        c.values.contains_key("retention.ms").then_some(c)
    })
    .await;
    assert_eq!(before.values["retention.ms"], "604800000", "{before:?}");
    assert!(before.overrides.is_empty(), "{before:?}");
    // Someone sets an override by hand that the spec does not name.
    let admin = Admin::new(&campus_testkit::kafka()).unwrap();
    let by_hand = [(
        original.clone(),
        [("segment.ms".to_owned(), "3600000".to_owned())].into(),
    )];
    admin.set_topic_configs(&by_hand).await.unwrap();
    // (The broker takes the change from the controller a moment after the call returns.)
    eventually("the hand-set override is read back", WAIT, || async {
        (topic_config(&original).await.values["segment.ms"] == "3600000").then_some(())
    })
    .await;

    cr["spec"]["topics"] = json!({
        "config": {"retention.ms": "7200000"},
        "overrides": [{"name": "post.original", "config": {"max.message.bytes": "2097152"}}]
    });
    apply_platform(&client, &ns.name, &cr).await.unwrap();
    let after = eventually("post.original has the new config", WAIT, || async {
        let c = topic_config(&original).await;
        (c.values.get("retention.ms").map(String::as_str) == Some("7200000")
            && c.values.get("max.message.bytes").map(String::as_str) == Some("2097152"))
        .then_some(c)
    })
    .await;
    assert_eq!(
        after.values["segment.ms"], "3600000",
        "an override the spec does not name is kept: {after:?}"
    );
    assert!(after.overrides.contains("retention.ms"), "{after:?}");
    eventually("coupon.request has the new retention", WAIT, || async {
        let c = topic_config(&coupon).await;
        (c.values.get("retention.ms").map(String::as_str) == Some("7200000")).then_some(())
    })
    .await;
    let note = eventually("the TopicsReconfigured event", WAIT, || async {
        event_note(&client, &ns.name, "TopicsReconfigured").await
    })
    .await;
    assert!(
        note.contains("post.original: retention.ms 604800000 → 7200000")
            && !note.starts_with(&p)
            && !note.contains(&format!("; {p}.")),
        "{note}"
    );
    let (s, reason, _) = eventually("TopicsReady for the new generation", WAIT, || async {
        condition(&client, &ns.name, &name, "TopicsReady").await
    })
    .await;
    assert_eq!((s.as_str(), reason.as_str()), ("True", "AllReady"));
    // Every topic of the platform (10) had its retention changed.
    assert!(
        topic_ops(&op.metrics_text(), "config", "ok") >= 10,
        "{}",
        op.metrics_text()
    );

    // A value Kafka refuses: reported, named, and the topic keeps what it had.
    cr["spec"]["topics"]["config"] = json!({"retention.ms": "a week"});
    apply_platform(&client, &ns.name, &cr).await.unwrap();
    let (s, reason, message) = eventually("ConfigRejected is reported", WAIT, || async {
        let c = condition(&client, &ns.name, &name, "TopicsReady").await?;
        (c.0 == "False").then_some(c)
    })
    .await;
    assert_eq!(reason, "ConfigRejected", "{s} {message}");
    assert!(
        message.contains(&format!("Kafka refused the config of topic {original}"))
            && message.contains("retention.ms 7200000 → a week"),
        "{message}"
    );
    let st = platform(&client, &ns.name, &name)
        .await
        .unwrap()
        .status
        .unwrap();
    let t = st.topics.iter().find(|t| t.name == original).unwrap();
    assert!(!t.ready && t.message.is_some(), "{t:?}");
    assert_eq!(
        topic_config(&original).await.values["retention.ms"],
        "7200000"
    );
    assert!(topic_ops(&op.metrics_text(), "config", "error") >= 1);
    cr["spec"]["topics"]["config"] = json!({"retention.ms": "86400000"});
    apply_platform(&client, &ns.name, &cr).await.unwrap();
    wait_topics_ready(&client, &ns.name, &name, "TopicsReady is True again").await;
    assert_eq!(
        topic_config(&original).await.values["retention.ms"],
        "86400000"
    );
}

/// A replication factor other than the topics have is refused: `TopicsReady=False/ChangeRefused`
/// naming the topic and both factors, each topic's status shows it, the children and the topics
/// are left as they were; reverting the spec clears it.
#[tokio::test]
async fn a_replication_factor_change_is_refused_and_reverting_clears_it() {
    let (client, ns, _op, mut cr) = minimal_platform("op-rf").await;
    let name = ns.name.clone();
    let p = format!("{}.{name}", ns.name); // the default Kafka prefix
    apply_platform(&client, &ns.name, &cr).await.unwrap();
    wait_topics_ready(&client, &ns.name, &name, "TopicsReady is True").await;
    let before: Vec<Deployment> = Api::<Deployment>::namespaced(client.clone(), &ns.name)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items;
    assert_eq!(before.len(), ALL_DEPLOYMENTS.len());
    let original = format!("{p}.post.original");
    let st = platform(&client, &ns.name, &name)
        .await
        .unwrap()
        .status
        .unwrap();
    assert!(
        st.topics.iter().all(|t| t.replication_factor == 1),
        "{st:?}"
    );

    cr["spec"]["topics"] = json!({"replicationFactor": 2});
    apply_platform(&client, &ns.name, &cr).await.unwrap();
    let (s, reason, message) = eventually("the change is refused", WAIT, || async {
        condition(&client, &ns.name, &name, "TopicsReady").await
    })
    .await;
    assert_eq!(
        (s.as_str(), reason.as_str()),
        ("False", "ChangeRefused"),
        "{message}"
    );
    assert!(
        message.contains(&format!(
            "topic {original} has replication factor 1 and the spec asks for 2"
        )),
        "{message}"
    );
    let ready = condition(&client, &ns.name, &name, "Ready").await.unwrap();
    assert_eq!(ready.1, "TopicsNotReady");
    let st = platform(&client, &ns.name, &name)
        .await
        .unwrap()
        .status
        .unwrap();
    assert_eq!(st.topics_summary.as_deref(), Some("0/10"));
    let t = st.topics.iter().find(|t| t.name == original).unwrap();
    assert_eq!((t.ready, t.replication_factor), (false, 1), "{t:?}");
    assert!(t.message.as_deref().unwrap().contains("replication factor"));
    let note = eventually("the ChangeRefused event", WAIT, || async {
        event_note(&client, &ns.name, "ChangeRefused").await
    })
    .await;
    assert!(note.contains(&original), "{note}");
    // Children and topics untouched.
    for d in &before {
        let now = deployment(&client, &ns.name, &d.name_any()).await.unwrap();
        assert_eq!(
            now.metadata.generation,
            d.metadata.generation,
            "{}",
            d.name_any()
        );
        assert_eq!(now.spec, d.spec, "{}", d.name_any());
    }
    let admin = Admin::new(&campus_testkit::kafka()).unwrap();
    let have = admin.describe().await.unwrap();
    assert_eq!(have[&original].replication, 1);
    assert_eq!(have[&original].partitions, 3);

    cr["spec"]["topics"] = json!({"replicationFactor": 1});
    apply_platform(&client, &ns.name, &cr).await.unwrap();
    let (s, reason, _) = eventually("reverting clears the refusal", WAIT, || async {
        let c = condition(&client, &ns.name, &name, "TopicsReady").await?;
        (c.0 == "True").then_some(c)
    })
    .await;
    assert_eq!((s.as_str(), reason.as_str()), ("True", "AllReady"));
    let st = platform(&client, &ns.name, &name)
        .await
        .unwrap()
        .status
        .unwrap();
    assert_eq!(st.topics_summary.as_deref(), Some("10/10"));
    assert!(st.topics.iter().all(|t| t.ready && t.message.is_none()));
}

/// Config for a Kafka without DescribeConfigs/AlterConfigs is reported as `ConfigUnsupported`,
/// not ignored. Kafka has both, so the operator talks to it through a proxy that removes them
/// from the broker's ApiVersions answer, as an older broker would not list them; librdkafka then
/// refuses the calls. Creating topics (with their config) still works through it.
#[tokio::test]
async fn config_a_broker_cannot_change_is_reported_as_unsupported() {
    use support::old_kafka::{CONFIG_APIS, OldKafka};
    let client = client().await;
    install_crd(&client).await;
    let ns = TestNamespace::new(&client, "op-cfgold").await;
    let name = ns.name.clone();
    let p = format!("{}.{name}", ns.name); // the default Kafka prefix
    let _op = Operator::start(&client, test_settings(&ns.name));
    let old = OldKafka::start(&brokers(), &CONFIG_APIS).await;
    let mut cr = sample("minimal.yaml", &name, &old.brokers());
    cr["spec"]["topics"] = json!({"config": {"retention.ms": "3600000"}});
    apply_platform(&client, &ns.name, &cr).await.unwrap();
    wait_topics_ready(&client, &ns.name, &name, "TopicsReady is True").await;
    let original = format!("{p}.post.original");
    assert_eq!(
        topic_config(&original).await.values["retention.ms"],
        "3600000"
    );

    cr["spec"]["topics"] = json!({"config": {"retention.ms": "7200000"}});
    apply_platform(&client, &ns.name, &cr).await.unwrap();
    let (s, reason, message) = eventually("the unsupported config is reported", WAIT, || async {
        condition(&client, &ns.name, &name, "TopicsReady").await
    })
    .await;
    assert_eq!(
        (s.as_str(), reason.as_str()),
        ("False", "ConfigUnsupported"),
        "{message}"
    );
    assert!(
        message.contains(&format!(
            "cannot read the config of topic {original}: Kafka at {} does not support \
             DescribeConfigs",
            old.brokers()
        )),
        "{message}"
    );
    let st = platform(&client, &ns.name, &name)
        .await
        .unwrap()
        .status
        .unwrap();
    let t = st.topics.iter().find(|t| t.name == original).unwrap();
    assert!(!t.ready, "{t:?}");
    assert_eq!(
        topic_config(&original).await.values["retention.ms"],
        "3600000"
    );
    eventually("the ConfigUnsupported event", WAIT, || async {
        event_note(&client, &ns.name, "ConfigUnsupported").await
    })
    .await;
}

/// On three brokers (a private KRaft cluster) the operator creates every topic with three
/// replicas; when a broker dies it reports the under-replicated partitions in status (per topic
/// and in `TopicsReady`'s message) while the platform stays Ready, and clears them once the
/// broker is back.
#[tokio::test]
async fn on_three_brokers_topics_get_three_replicas_and_under_replication_is_reported() {
    let client = client().await;
    install_crd(&client).await;
    let ns = TestNamespace::new(&client, "op-rf3").await;
    let name = ns.name.clone();
    let p = format!("{}.{name}", ns.name); // the default Kafka prefix
    let _op = Operator::start(&client, test_settings(&ns.name));
    let mut kafka = PrivateKafka::start_cluster(3).await;
    let mut cr = sample("minimal.yaml", &name, &kafka.brokers());
    cr["spec"]["topics"]["replicationFactor"] = json!(3);
    apply_platform(&client, &ns.name, &cr).await.unwrap();
    let topics =
        |cr: campus_operator::crd::CampusPlatform| cr.status.map(|s| s.topics).unwrap_or_default();
    eventually("every topic with three replicas", WAIT, || async {
        let t = topics(platform(&client, &ns.name, &name).await?);
        (!t.is_empty() && t.iter().all(|t| t.ready && t.replication_factor == 3)).then_some(())
    })
    .await;
    let have = Admin::new(&kafka.kafka())
        .unwrap()
        .describe()
        .await
        .unwrap();
    let ours: Vec<_> = have
        .iter()
        .filter(|(n, _)| n.starts_with(&format!("{p}.")))
        .collect();
    assert!(
        !ours.is_empty() && ours.iter().all(|(_, t)| t.replication == 3),
        "{have:?}"
    );

    kafka.kill_node(3);
    let message = eventually("under-replicated partitions in status", WAIT, || async {
        let cr = platform(&client, &ns.name, &name).await?;
        let degraded = topics(cr.clone())
            .iter()
            .filter(|t| t.under_replicated_partitions > 0)
            .count();
        let (s, _, message) = condition(&client, &ns.name, &name, "TopicsReady").await?;
        (degraded > 0 && s == "True" && message.contains("under-replicated")).then_some(message)
    })
    .await;
    assert!(message.contains(&format!("{p}.post.original")), "{message}");

    kafka.resume_node(3).await;
    eventually("under-replication cleared", WAIT, || async {
        let t = topics(platform(&client, &ns.name, &name).await?);
        (!t.is_empty() && t.iter().all(|t| t.under_replicated_partitions == 0)).then_some(())
    })
    .await;
}
