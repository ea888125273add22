//! What the operator knows of its children between reconciles, so that a reconcile sends the API
//! server only what changed:
//!
//! - the children it watches anyway (their watches trigger reconciles) are kept in one reflector
//!   [`Store`] per kind and watch scope ([`Stores`]);
//! - each server-side apply it makes leaves a fingerprint: a hash of the desired object and a hash
//!   of the fields the API server records as the operator's (its `managedFields` entry).
//!
//! An apply is skipped when the desired object is the one last applied and the watched object
//! still carries the operator's fields as that apply left them. Anyone changing a field the
//! operator owns (an update takes the field over; a forced apply too) changes that entry, a
//! deleted child leaves the store, and a restarted operator has no fingerprints: each of these
//! applies again, so drift is corrected as before. Status writes by other controllers do not
//! touch the entry and cost no apply.
//!
//! Pruning reads the same stores instead of listing each kind on every reconcile.

use std::collections::HashMap;
use std::fmt::Debug;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, Mutex, RwLock};

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::{ConfigMap, Service, ServiceAccount};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Resource, ResourceExt};
use serde::Serialize;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

use crate::FIELD_MANAGER;
use crate::metrics::ApplyLabels;

/// The watched children of one watch scope (a namespace, or every namespace: `None`).
pub struct Stores {
    pub scope: Option<String>,
    pub deployments: Store<Deployment>,
    pub daemon_sets: Store<DaemonSet>,
    pub services: Store<Service>,
    pub config_maps: Store<ConfigMap>,
    pub service_accounts: Store<ServiceAccount>,
    pub pdbs: Store<PodDisruptionBudget>,
}

/// A kind of child the operator watches, and its store in [`Stores`].
pub trait Watched:
    Resource<DynamicType = ()> + Clone + Debug + Serialize + Send + Sync + 'static
{
    const KIND: &'static str;
    fn store(stores: &Stores) -> &Store<Self>;
}

macro_rules! watched {
    ($t:ty, $kind:literal, $field:ident) => {
        impl Watched for $t {
            const KIND: &'static str = $kind;
            fn store(stores: &Stores) -> &Store<Self> {
                &stores.$field
            }
        }
    };
}
watched!(Deployment, "Deployment", deployments);
watched!(DaemonSet, "DaemonSet", daemon_sets);
watched!(Service, "Service", services);
watched!(ConfigMap, "ConfigMap", config_maps);
watched!(ServiceAccount, "ServiceAccount", service_accounts);
watched!(PodDisruptionBudget, "PodDisruptionBudget", pdbs);

/// What one apply left: the desired object's hash and the hash of the operator's managed fields
/// in the API server's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Fingerprint {
    desired: u64,
    ours: u64,
}

type Key = (&'static str, String, String);

/// The stores of every watch scope and the fingerprints of the applies made.
#[derive(Default)]
pub struct Children {
    scopes: RwLock<Vec<Arc<Stores>>>,
    applied: Mutex<HashMap<Key, Fingerprint>>,
    counts: Family<ApplyLabels, Counter>,
}

impl Children {
    /// Counts each desired child in `counts` (`applied` or `unchanged`).
    pub fn new(counts: Family<ApplyLabels, Counter>) -> Self {
        Self {
            counts,
            ..Self::default()
        }
    }

    /// Counts one desired child: applied, or skipped as unchanged.
    pub fn counted(&self, applied: bool) {
        self.counts
            .get_or_create(&ApplyLabels {
                result: if applied { "applied" } else { "unchanged" }.to_owned(),
            })
            .inc();
    }

    /// Adds the stores of one watch scope (a controller registers its own when it starts).
    pub fn register(&self, stores: Arc<Stores>) {
        self.scopes.write().expect("lock").push(stores);
    }

    /// The stores that watch `namespace`, if any does.
    pub fn stores_for(&self, namespace: &str) -> Option<Arc<Stores>> {
        self.scopes
            .read()
            .expect("lock")
            .iter()
            .find(|s| s.scope.as_deref().is_none_or(|n| n == namespace))
            .cloned()
    }

    /// The watched object `name` of `namespace` when `obj` (desired there) needs no apply: the
    /// last apply of it was this very object and the watched one still has the operator's
    /// fields as that apply left them.
    pub fn unchanged<K: Watched>(&self, namespace: &str, obj: &K) -> Option<K> {
        let key = key::<K>(namespace, obj);
        let last = *self.applied.lock().expect("lock").get(&key)?;
        if last.desired != desired_hash(obj) {
            return None;
        }
        let stores = self.stores_for(namespace)?;
        let live = K::store(&stores).get(&ObjectRef::new(&key.2).within(namespace))?;
        (ours_hash(&*live) == Some(last.ours)).then(|| (*live).clone())
    }

    /// Records the apply of `obj` in `namespace`, whose answer was `answer`.
    pub fn applied<K: Watched>(&self, namespace: &str, obj: &K, answer: &K) {
        let key = key::<K>(namespace, obj);
        let mut applied = self.applied.lock().expect("lock");
        match ours_hash(answer) {
            Some(ours) => {
                applied.insert(
                    key,
                    Fingerprint {
                        desired: desired_hash(obj),
                        ours,
                    },
                );
            }
            None => {
                applied.remove(&key);
            }
        }
    }

    /// Forgets the fingerprint of a child that was deleted.
    pub fn forget<K: Watched>(&self, namespace: &str, name: &str) {
        self.applied.lock().expect("lock").remove(&(
            K::KIND,
            namespace.to_owned(),
            name.to_owned(),
        ));
    }
}

fn key<K: Watched>(namespace: &str, obj: &K) -> Key {
    (K::KIND, namespace.to_owned(), obj.name_any())
}

fn desired_hash<K: Serialize>(obj: &K) -> u64 {
    let mut h = DefaultHasher::new();
    serde_json::to_vec(obj).unwrap_or_default().hash(&mut h);
    h.finish()
}

/// The hash of the fields the API server records as applied by the operator (its `Apply` entry
/// in `managedFields`, without the timestamp), if it has one.
fn ours_hash<K: Resource>(obj: &K) -> Option<u64> {
    let entry = obj.meta().managed_fields.as_ref()?.iter().find(|m| {
        m.manager.as_deref() == Some(FIELD_MANAGER)
            && m.operation.as_deref() == Some("Apply")
            && m.subresource.as_deref().unwrap_or_default().is_empty()
    })?;
    let mut h = DefaultHasher::new();
    entry.api_version.hash(&mut h);
    serde_json::to_vec(&entry.fields_v1)
        .unwrap_or_default()
        .hash(&mut h);
    Some(h.finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
        FieldsV1, ManagedFieldsEntry, ObjectMeta,
    };
    use kube::runtime::reflector;
    use kube::runtime::watcher;

    fn cm(data: &str, fields: &str, manager: &str) -> ConfigMap {
        ConfigMap {
            metadata: ObjectMeta {
                name: Some("c".into()),
                namespace: Some("ns".into()),
                managed_fields: Some(vec![ManagedFieldsEntry {
                    manager: Some(manager.into()),
                    operation: Some("Apply".into()),
                    api_version: Some("v1".into()),
                    fields_v1: Some(FieldsV1(serde_json::json!({ fields: {} }))),
                    ..Default::default()
                }]),
                ..Default::default()
            },
            data: Some([("k".to_owned(), data.to_owned())].into()),
            ..Default::default()
        }
    }

    fn stores(live: Option<ConfigMap>) -> Arc<Stores> {
        let (config_maps, mut writer) = reflector::store();
        if let Some(live) = live {
            writer.apply_watcher_event(&watcher::Event::Apply(live));
        }
        Arc::new(Stores {
            scope: Some("ns".into()),
            deployments: reflector::store().0,
            daemon_sets: reflector::store().0,
            services: reflector::store().0,
            config_maps,
            service_accounts: reflector::store().0,
            pdbs: reflector::store().0,
        })
    }

    #[test]
    fn an_apply_is_skipped_only_while_desired_and_owned_fields_are_as_last_applied() {
        let desired = cm("v1", "f:data", FIELD_MANAGER);
        let answer = cm("v1", "f:data", FIELD_MANAGER);
        let children = Children::default();
        children.register(stores(Some(answer.clone())));
        // Never applied (e.g. the operator restarted): apply.
        assert!(children.unchanged("ns", &desired).is_none());
        children.applied("ns", &desired, &answer);
        assert!(children.unchanged("ns", &desired).is_some());
        // Another namespace, another spec: apply.
        assert!(children.unchanged("other", &desired).is_none());
        assert!(
            children
                .unchanged("ns", &cm("v2", "f:data", FIELD_MANAGER))
                .is_none()
        );
    }

    #[test]
    fn a_child_someone_changed_or_deleted_is_applied_again() {
        let desired = cm("v1", "f:data", FIELD_MANAGER);
        // Someone took a field over: the operator's entry changed.
        let children = Children::default();
        children.register(stores(Some(cm("v1", "f:metadata", FIELD_MANAGER))));
        children.applied("ns", &desired, &desired);
        assert!(children.unchanged("ns", &desired).is_none());
        // Gone from the store.
        let children = Children::default();
        children.register(stores(None));
        children.applied("ns", &desired, &desired);
        assert!(children.unchanged("ns", &desired).is_none());
        // An answer without the operator's entry leaves nothing to compare: always apply.
        let children = Children::default();
        children.register(stores(Some(desired.clone())));
        children.applied("ns", &desired, &cm("v1", "f:data", "someone-else"));
        assert!(children.unchanged("ns", &desired).is_none());
        children.applied("ns", &desired, &desired);
        children.forget::<ConfigMap>("ns", "c");
        assert!(children.unchanged("ns", &desired).is_none());
    }
}
