//! The controller: watches platforms (and the children they own) and reconciles each one.
//!
//! [`reconcile`] reads top to bottom: finalizer dispatch, then apply (validate → lag → build →
//! apply → prune → topics → report: events and metrics → status) or cleanup (topic deletion
//! policy); [`error_policy`] beside it backs off exponentially per object.

pub mod apply;
pub mod children;
pub mod pod_template;
pub mod reconcile;
pub mod status;
pub mod validate;

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::{ConfigMap, Service, ServiceAccount};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;

use self::children::Watched;
use crate::crd::CampusPlatform;
use crate::metrics::Metrics;
use crate::topics::{TopicError, Topics};

/// The finalizer that lets the operator apply the topic deletion policy.
pub const FINALIZER: &str = "campus.dev/topics";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("failed to {action}")]
    Kube {
        action: &'static str,
        #[source]
        source: kube::Error,
    },
    #[error("failed to delete the platform's topics")]
    Topics(#[source] TopicError),
    #[error("{0}")]
    Conflict(&'static str),
    #[error("failed to run the finalizer")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
}

impl Error {
    /// The category: event reason and metric label.
    /// Also listed in [`crate::metrics::FAILURE_REASONS`] (each counted from 0).
    pub fn reason(&self) -> &'static str {
        match self {
            Error::Kube { .. } | Error::Conflict(_) => "KubeApiFailed",
            Error::Topics(e) => e.reason(),
            Error::Finalizer(e) => match e.as_ref() {
                kube::runtime::finalizer::Error::ApplyFailed(e)
                | kube::runtime::finalizer::Error::CleanupFailed(e) => e.reason(),
                _ => "FinalizerFailed",
            },
        }
    }
}

/// How the controller behaves.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The namespaces whose platforms are reconciled, one controller each (sharing this
    /// context); empty: every namespace (`WATCH_NAMESPACES=*`), which needs the namespaced rights
    /// in every namespace.
    pub namespaces: Vec<String>,
    /// Tag of the default Campus images.
    pub image_tag: String,
    /// Registry (and path) before the default Campus images; empty: their bare names.
    pub image_registry: String,
    /// Re-check a healthy platform this often (drift, topics).
    pub resync: Duration,
    /// Retry the topics this soon while Kafka is unreachable.
    pub kafka_retry: Duration,
    /// Read consumer-group lag this often when lag-based scaling is on.
    pub lag_interval: Duration,
    /// How long deletion waits for Kafka to delete topics before giving up.
    pub topic_deletion_grace: Duration,
    /// First and longest retry delay after a failed reconcile.
    pub backoff: (Duration, Duration),
    /// Platforms reconciled at the same time.
    pub concurrency: u16,
    /// Name of this instance in events.
    pub instance: Option<String>,
    /// The ClusterRole that platforms' Filebeat accounts are bound to (only used to create the
    /// binding below where it is missing and the operator may).
    pub filebeat_cluster_role: String,
    /// The installation's ClusterRoleBinding of that role, whose subjects are the platforms'
    /// Filebeat accounts.
    pub filebeat_cluster_role_binding: String,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            namespaces: Vec::new(),
            image_tag: crate::VERSION.to_owned(),
            image_registry: String::new(),
            resync: Duration::from_secs(300),
            kafka_retry: Duration::from_secs(10),
            lag_interval: Duration::from_secs(30),
            topic_deletion_grace: Duration::from_secs(120),
            backoff: (Duration::from_secs(1), Duration::from_secs(300)),
            concurrency: 8,
            instance: None,
            filebeat_cluster_role: crate::build::DEFAULT_FILEBEAT_CLUSTER_ROLE.to_owned(),
            filebeat_cluster_role_binding: crate::build::DEFAULT_FILEBEAT_CLUSTER_ROLE_BINDING
                .to_owned(),
        }
    }
}

/// The namespaces to watch from `--namespaces` (a list, `*` alone for every namespace: returned
/// as an empty list) or the older `--namespace` (one), else the operator's own `own`. Blank
/// entries are ignored, duplicates dropped.
pub fn watch_namespaces(
    list: &[String],
    single: Option<&str>,
    own: &str,
) -> Result<Vec<String>, String> {
    let mut out: Vec<String> = Vec::new();
    let given = list
        .iter()
        .map(|n| n.trim())
        .chain(single.map(str::trim))
        .filter(|n| !n.is_empty());
    for n in given {
        if !out.iter().any(|o| o == n) {
            out.push(n.to_owned());
        }
    }
    if out.iter().any(|n| n == "*") {
        return if out.len() == 1 {
            Ok(Vec::new())
        } else {
            Err(format!(
                "`*` (every namespace) cannot be combined with namespaces: {}",
                out.join(",")
            ))
        };
    }
    if out.is_empty() {
        out.push(own.to_owned());
    }
    Ok(out)
}

/// What every reconcile shares.
pub struct Context {
    pub client: Client,
    pub settings: Settings,
    pub metrics: Metrics,
    pub recorder: Recorder,
    pub topics: Topics,
    /// Scale-down stabilisation of lag-based scaling: recommendations per Deployment.
    pub scaling: Mutex<crate::lag::Stabilizer>,
    /// The watched children and the fingerprints of the applies made (unchanged ones are not
    /// applied again).
    pub children: children::Children,
    /// The installation's Filebeat binding as last read or written.
    binding: apply::BindingCache,
    failures: Mutex<HashMap<(String, String), u32>>,
}

impl Context {
    /// The installation's Filebeat binding.
    pub fn filebeat_binding(&self) -> apply::FilebeatBinding<'_> {
        apply::FilebeatBinding {
            name: &self.settings.filebeat_cluster_role_binding,
            role: &self.settings.filebeat_cluster_role,
            cache: &self.binding,
        }
    }

    pub fn new(client: Client, settings: Settings, metrics: Metrics) -> Arc<Self> {
        let recorder = Recorder::new(
            client.clone(),
            Reporter {
                controller: "campus-operator".into(),
                instance: settings.instance.clone(),
            },
        );
        let children = children::Children::new(metrics.child_applies.clone());
        Arc::new(Self {
            client,
            settings,
            children,
            binding: apply::BindingCache::default(),
            metrics,
            recorder,
            topics: Topics::new(),
            scaling: Mutex::new(Default::default()),
            failures: Mutex::new(HashMap::new()),
        })
    }

    /// Publishes an event of `type_` about `cr`; a failure to publish is logged, never fatal.
    pub async fn event(
        &self,
        cr: &CampusPlatform,
        type_: EventType,
        reason: &str,
        action: &str,
        note: String,
    ) {
        let ev = Event {
            type_,
            reason: reason.to_owned(),
            note: Some(truncate(note, 1000)),
            action: action.to_owned(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&ev, &cr.object_ref(&())).await {
            tracing::warn!(error = %e, reason, "failed to publish an event");
        }
    }

    fn key(cr: &CampusPlatform) -> (String, String) {
        (cr.namespace().unwrap_or_default(), cr.name_any())
    }

    pub(crate) fn succeeded(&self, cr: &CampusPlatform) {
        self.failures.lock().expect("lock").remove(&Self::key(cr));
    }

    /// Counts a failure of `cr` and returns the delay before its next attempt: base × 2^n, capped.
    fn failed(&self, cr: &CampusPlatform) -> Duration {
        let mut f = self.failures.lock().expect("lock");
        let n = f.entry(Self::key(cr)).or_insert(0);
        *n = n.saturating_add(1);
        backoff_delay(*n, self.settings.backoff.0, self.settings.backoff.1)
    }
}

fn truncate(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
    s
}

/// The delay after the `n`th consecutive failure (n ≥ 1).
pub fn backoff_delay(n: u32, base: Duration, max: Duration) -> Duration {
    let factor = 2u32.saturating_pow(n.saturating_sub(1).min(20));
    base.saturating_mul(factor).min(max)
}

/// After a failed reconcile: an event, a metric, and a retry with exponential backoff.
pub fn error_policy(cr: Arc<CampusPlatform>, err: &Error, ctx: Arc<Context>) -> Action {
    let delay = ctx.failed(&cr);
    let reason = err.reason();
    let message = status::chain(err);
    tracing::warn!(platform = %cr.name_any(), reason, error = %message, retry_in = ?delay, "reconcile failed");
    ctx.metrics.failed(reason);
    let ctx2 = ctx.clone();
    tokio::spawn(async move {
        ctx2.event(&cr, EventType::Warning, reason, "Reconcile", message)
            .await;
    });
    Action::requeue(delay)
}

/// What a watch event must change to trigger a reconcile of the platform: its generation (spec),
/// annotations (pause), finalizers and deletion. Status writes do not trigger one.
fn trigger_hash(cr: &CampusPlatform) -> Option<u64> {
    let mut h = DefaultHasher::new();
    cr.metadata.generation.hash(&mut h);
    cr.metadata.annotations.hash(&mut h);
    cr.metadata.finalizers.hash(&mut h);
    cr.metadata
        .deletion_timestamp
        .as_ref()
        .map(|t| t.0.as_second())
        .hash(&mut h);
    Some(h.finish())
}

fn api<K>(client: &Client, namespace: &Option<String>) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// What a child's watch event must change to trigger a reconcile: anything but `managedFields`
/// and `resourceVersion`. On older API servers (1.20) a no-op server-side apply still rewrote the
/// managed-fields timestamps, which would otherwise make every reconcile trigger the next one.
fn content_hash<K: serde::Serialize>(obj: &K) -> u64 {
    let mut v = serde_json::to_value(obj).unwrap_or_default();
    if let Some(meta) = v.get_mut("metadata").and_then(|m| m.as_object_mut()) {
        meta.remove("managedFields");
        meta.remove("resourceVersion");
    }
    let mut h = DefaultHasher::new();
    v.to_string().hash(&mut h);
    h.finish()
}

/// The children of one kind whose content changed, and those deleted, from `events` (a watch of
/// them, which also keeps their store).
fn changes<K: Watched + DeserializeOwned>(
    events: impl futures::Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static,
) -> impl futures::Stream<Item = Result<K, watcher::Error>> + Send + 'static {
    let seen: Arc<Mutex<HashMap<String, u64>>> = Arc::default();
    events.filter_map(move |event| {
        let seen = seen.clone();
        async move {
            match event {
                Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o)) => {
                    let key = o.uid().unwrap_or_else(|| o.name_any());
                    let hash = content_hash(&o);
                    let mut seen = seen.lock().expect("lock");
                    (seen.insert(key, hash) != Some(hash)).then_some(Ok(o))
                }
                Ok(watcher::Event::Delete(o)) => {
                    let key = o.uid().unwrap_or_else(|| o.name_any());
                    seen.lock().expect("lock").remove(&key);
                    Some(Ok(o))
                }
                Ok(watcher::Event::Init | watcher::Event::InitDone) => None,
                Err(e) => Some(Err(e)),
            }
        }
    })
}

/// One kind of child in `ns` (or every namespace) watched with `config`: its store, and the
/// changes that trigger a reconcile of the owner.
fn watched<K>(
    client: &Client,
    ns: &Option<String>,
    config: &watcher::Config,
) -> (
    reflector::Store<K>,
    impl futures::Stream<Item = Result<K, watcher::Error>> + Send + 'static,
)
where
    K: Watched + DeserializeOwned + Resource<Scope = k8s_openapi::NamespaceResourceScope>,
{
    let (reader, writer) = reflector::store();
    let events = watcher(api::<K>(client, ns), config.clone())
        .default_backoff()
        .reflect(writer);
    (reader, changes(events))
}

/// Runs the controller until `shutdown` resolves: one per watched namespace (each with its own
/// watches, all sharing `ctx`), or one over every namespace.
pub async fn run(ctx: Arc<Context>, shutdown: impl Future<Output = ()> + Send + Sync + 'static) {
    use futures::FutureExt;
    let shutdown = shutdown.shared();
    let scopes: Vec<Option<String>> = if ctx.settings.namespaces.is_empty() {
        vec![None]
    } else {
        ctx.settings.namespaces.iter().cloned().map(Some).collect()
    };
    futures::future::join_all(
        scopes
            .into_iter()
            .map(|ns| run_in(ctx.clone(), ns, shutdown.clone())),
    )
    .await;
}

/// One controller over the platforms (and their children) of `ns`, or of every namespace.
async fn run_in(
    ctx: Arc<Context>,
    ns: Option<String>,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let client = ctx.client.clone();
    let platforms: Api<CampusPlatform> = api(&client, &ns);
    let owned = watcher::Config::default().labels(&format!(
        "app.kubernetes.io/managed-by={}",
        crate::build::MANAGED_BY
    ));
    let (deployments, deployment_changes) = watched::<Deployment>(&client, &ns, &owned);
    let (daemon_sets, daemon_set_changes) = watched::<DaemonSet>(&client, &ns, &owned);
    let (services, service_changes) = watched::<Service>(&client, &ns, &owned);
    let (config_maps, config_map_changes) = watched::<ConfigMap>(&client, &ns, &owned);
    let (service_accounts, account_changes) = watched::<ServiceAccount>(&client, &ns, &owned);
    let (pdbs, pdb_changes) = watched::<PodDisruptionBudget>(&client, &ns, &owned);
    ctx.children.register(Arc::new(children::Stores {
        scope: ns.clone(),
        deployments,
        daemon_sets,
        services,
        config_maps,
        service_accounts,
        pdbs,
    }));
    let (reader, writer) = reflector::store();
    let main = watcher(platforms, watcher::Config::default())
        .default_backoff()
        .reflect(writer)
        .applied_objects()
        .predicate_filter(trigger_hash, Default::default());
    Controller::for_stream(main, reader)
        .with_config(
            kube::runtime::controller::Config::default().concurrency(ctx.settings.concurrency),
        )
        .owns_stream(deployment_changes)
        .owns_stream(daemon_set_changes)
        .owns_stream(service_changes)
        .owns_stream(config_map_changes)
        .owns_stream(account_changes)
        .owns_stream(pdb_changes)
        .graceful_shutdown_on(shutdown)
        .run(reconcile::reconcile, error_policy, ctx)
        .for_each(|res| async move {
            if let Err(e) = res {
                tracing::debug!(error = %e, "controller event");
            }
        })
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watched_namespaces_default_to_the_operators_own_and_star_means_all() {
        let list = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(watch_namespaces(&[], None, "ops").unwrap(), ["ops"]);
        assert_eq!(
            watch_namespaces(&list(&[""]), Some(""), "ops").unwrap(),
            ["ops"]
        );
        assert_eq!(watch_namespaces(&[], Some("a"), "ops").unwrap(), ["a"]);
        assert_eq!(
            watch_namespaces(&list(&["a", " b", "a"]), None, "ops").unwrap(),
            ["a", "b"]
        );
        assert!(
            watch_namespaces(&list(&["*"]), None, "ops")
                .unwrap()
                .is_empty()
        );
        let err = watch_namespaces(&list(&["*", "a"]), None, "ops").unwrap_err();
        assert!(err.contains("cannot be combined"), "{err}");
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let (b, m) = (Duration::from_secs(1), Duration::from_secs(60));
        let delays: Vec<u64> = (1..=8).map(|n| backoff_delay(n, b, m).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 32, 60, 60]);
        assert_eq!(backoff_delay(u32::MAX, b, m), m);
    }
}
