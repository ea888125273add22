//! Server-side apply of the desired children with one field manager, and pruning by label of
//! the children that are no longer desired.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::time::{Duration, Instant};

use futures::future::try_join_all;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::{ConfigMap, Service, ServiceAccount};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::Error;
use super::children::{Children, Watched};
use crate::FIELD_MANAGER;
use crate::build::rbac::{edit_subjects, filebeat_subjects_of};
use crate::build::{Desired, label_selector, selector_labels, unowned_selector};
use crate::crd::CampusPlatform;
use crate::model::Platform;

/// The parameters of every server-side apply the operator makes: forced (the operator owns these
/// fields) and strict (`fieldValidation=Strict`), so an unknown or duplicate field is an error
/// rather than silently dropped, whatever the API server's default.
pub fn apply_params() -> PatchParams {
    apply_params_as(FIELD_MANAGER)
}

/// [`apply_params`] with another field manager.
pub fn apply_params_as(field_manager: &str) -> PatchParams {
    PatchParams::apply(field_manager)
        .force()
        .validation_strict()
}

/// The field manager of the platform the chart hands the operator (`--apply-platform`).
pub const CHART_FIELD_MANAGER: &str = "campus-chart";

/// Server-side applies a CampusPlatform manifest as the chart ([`CHART_FIELD_MANAGER`], forced:
/// the chart owns what it sets; fields set by others stay) and as strictly as every other apply
/// of the operator: a field the CRD does not declare is an error, not silently dropped.
pub async fn apply_as_chart(
    api: &Api<CampusPlatform>,
    name: &str,
    manifest: &serde_json::Value,
) -> Result<CampusPlatform, kube::Error> {
    api.patch(
        name,
        &apply_params_as(CHART_FIELD_MANAGER),
        &Patch::Apply(manifest),
    )
    .await
}

/// Applies `objs` (server-side, see [`apply_params`]) and returns what the API server holds
/// afterwards, status included.
pub async fn apply_all<K>(api: &Api<K>, objs: &[K]) -> Result<Vec<K>, Error>
where
    K: Resource + Serialize + DeserializeOwned + Clone + Debug,
{
    let params = apply_params();
    try_join_all(objs.iter().map(|o| {
        let params = &params;
        async move {
            api.patch(&o.name_any(), params, &Patch::Apply(o))
                .await
                .map_err(|source| Error::Kube {
                    action: "apply a child object",
                    source,
                })
        }
    }))
    .await
}

/// Applies `objs` in `namespace` (see [`apply_params`]) but those the API server holds as the
/// last apply left them ([`Children::unchanged`]: for those, the watched object is returned), and
/// returns what the API server holds afterwards, status included.
async fn apply_changed<K>(
    children: &Children,
    api: &Api<K>,
    namespace: &str,
    objs: &[K],
) -> Result<Vec<K>, Error>
where
    K: Watched + DeserializeOwned,
{
    let params = apply_params();
    try_join_all(objs.iter().map(|o| {
        let params = &params;
        async move {
            if let Some(live) = children.unchanged(namespace, o) {
                children.counted(false);
                return Ok(live);
            }
            let answer = api
                .patch(&o.name_any(), params, &Patch::Apply(o))
                .await
                .map_err(|source| Error::Kube {
                    action: "apply a child object",
                    source,
                })?;
            children.counted(true);
            children.applied(namespace, o, &answer);
            Ok(answer)
        }
    }))
    .await
}

/// Deletes the children of kind `K` in `namespace` carrying `labels` whose names are not in
/// `keep` and that the owner `owner_uid` owns: read from the watched children where the
/// operator watches `namespace`, else listed. Returns the deleted names.
async fn prune_watched<K>(
    children: &Children,
    api: &Api<K>,
    namespace: &str,
    labels: &BTreeMap<String, String>,
    keep: &[K],
    owner_uid: Option<&str>,
) -> Result<Vec<String>, Error>
where
    K: Watched + DeserializeOwned,
{
    let Some(stores) = children.stores_for(namespace) else {
        return prune(api, &label_selector(labels), keep, owner_uid).await;
    };
    let keep: BTreeSet<String> = keep.iter().map(|k| k.name_any()).collect();
    let doomed: Vec<String> = K::store(&stores)
        .state()
        .iter()
        .filter(|o| o.meta().namespace.as_deref() == Some(namespace))
        .filter(|o| labels.iter().all(|(k, v)| o.labels().get(k) == Some(v)))
        .filter(|o| owner_uid.is_none_or(|uid| o.owner_references().iter().any(|r| r.uid == uid)))
        .map(|o| o.name_any())
        .filter(|name| !keep.contains(name))
        .collect();
    let mut deleted = Vec::new();
    for name in doomed {
        if delete(api, &name).await? {
            deleted.push(name.clone());
        }
        children.forget::<K>(namespace, &name);
    }
    Ok(deleted)
}

/// Deletes `name`; false when it was gone already.
async fn delete<K>(api: &Api<K>, name: &str) -> Result<bool, Error>
where
    K: Resource + DeserializeOwned + Clone + Debug,
{
    match api.delete(name, &DeleteParams::background()).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(false),
        Err(source) => Err(Error::Kube {
            action: "delete a child that is no longer desired",
            source,
        }),
    }
}

/// Deletes the objects matching `selector` whose names are not in `keep` (and, for namespaced
/// kinds, that `cr` owns). Returns the deleted names.
pub async fn prune<K>(
    api: &Api<K>,
    selector: &str,
    keep: &[K],
    owner_uid: Option<&str>,
) -> Result<Vec<String>, Error>
where
    K: Resource + DeserializeOwned + Clone + Debug,
{
    let keep: BTreeSet<String> = keep.iter().map(|k| k.name_any()).collect();
    let existing = api
        .list_metadata(&ListParams::default().labels(selector))
        .await
        .map_err(|source| Error::Kube {
            action: "list children to prune",
            source,
        })?;
    let mut deleted = Vec::new();
    for o in existing {
        let name = o.name_any();
        let owned = owner_uid.is_none_or(|uid| o.owner_references().iter().any(|r| r.uid == uid));
        if keep.contains(&name) || !owned {
            continue;
        }
        if delete(api, &name).await? {
            deleted.push(name);
        }
    }
    Ok(deleted)
}

/// What the API server holds after an apply.
#[derive(Default)]
pub struct Applied {
    pub deployments: Vec<Deployment>,
    pub daemon_sets: Vec<DaemonSet>,
}

/// The APIs of a platform's children in its namespace.
struct Apis {
    cms: Api<ConfigMap>,
    deps: Api<Deployment>,
    svcs: Api<Service>,
    dss: Api<DaemonSet>,
    sas: Api<ServiceAccount>,
    pdbs: Api<PodDisruptionBudget>,
}

impl Apis {
    fn new(client: &Client, ns: &str) -> Self {
        Self {
            cms: Api::namespaced(client.clone(), ns),
            deps: Api::namespaced(client.clone(), ns),
            svcs: Api::namespaced(client.clone(), ns),
            dss: Api::namespaced(client.clone(), ns),
            sas: Api::namespaced(client.clone(), ns),
            pdbs: Api::namespaced(client.clone(), ns),
        }
    }
}

/// The installation's Filebeat ClusterRoleBinding, whose subjects the operator keeps.
#[derive(Debug, Clone, Copy)]
pub struct FilebeatBinding<'a> {
    /// Its name (`--filebeat-cluster-role-binding`): the one binding the operator may get and
    /// update.
    pub name: &'a str,
    /// Its ClusterRole (`--filebeat-cluster-role`), used only to create the binding where it is
    /// missing and the operator may create it (a development cluster; never with its RBAC).
    pub role: &'a str,
    /// The operator's copy of it, which also makes the edits one at a time.
    pub cache: &'a BindingCache,
}

/// Applies `objs` in the namespace each one names (`default` where it names none): every child
/// lives in the platform's namespace but Filebeat's, which may live in one of its own.
async fn apply_in_their_namespaces<K>(
    client: &Client,
    children: &Children,
    default: &str,
    objs: &[K],
) -> Result<Vec<K>, Error>
where
    K: Watched + Resource<Scope = k8s_openapi::NamespaceResourceScope> + DeserializeOwned,
{
    let mut by_ns: Vec<(String, Vec<K>)> = Vec::new();
    for o in objs {
        let ns = o
            .meta()
            .namespace
            .clone()
            .unwrap_or_else(|| default.to_owned());
        match by_ns.iter_mut().find(|(n, _)| *n == ns) {
            Some((_, v)) => v.push(o.clone()),
            None => by_ns.push((ns, vec![o.clone()])),
        }
    }
    let applied = try_join_all(by_ns.iter().map(|(ns, objs)| {
        let api: Api<K> = Api::namespaced(client.clone(), ns);
        async move { apply_changed(children, &api, ns, objs).await }
    }))
    .await?;
    Ok(applied.into_iter().flatten().collect())
}

/// Applies every desired child of `p`, and keeps Filebeat's account (alone of this platform's
/// accounts: `previous_filebeat_namespace` names where an earlier one may be) among the subjects
/// of the installation's Filebeat binding.
pub async fn apply_children(
    client: &Client,
    children: &Children,
    p: &Platform,
    desired: &Desired,
    binding: FilebeatBinding<'_>,
    previous_filebeat_namespace: Option<&str>,
) -> Result<Applied, Error> {
    let a = Apis::new(client, &p.namespace);
    let ns = p.namespace.as_str();
    // ConfigMaps and identities first, so that pods never start without their configuration.
    let ((), (), ()) = futures::try_join!(
        async {
            apply_in_their_namespaces(client, children, ns, &desired.config_maps)
                .await
                .map(drop)
        },
        async {
            apply_in_their_namespaces(client, children, ns, &desired.service_accounts)
                .await
                .map(drop)
        },
        async {
            let fb_ns = p.logging.filebeat.as_ref().map(|fb| fb.namespace.as_str());
            let drop = filebeat_subjects_of(
                ns,
                &p.name,
                fb_ns.into_iter().chain(previous_filebeat_namespace),
            );
            bind_filebeat(client, binding, desired.filebeat_subject.as_ref(), &drop).await
        },
    )?;
    let (deployments, daemon_sets, (), ()) = futures::try_join!(
        apply_changed(children, &a.deps, ns, &desired.deployments),
        apply_in_their_namespaces(client, children, ns, &desired.daemon_sets),
        async {
            apply_changed(children, &a.svcs, ns, &desired.services)
                .await
                .map(drop)
        },
        async {
            apply_changed(children, &a.pdbs, ns, &desired.pdbs)
                .await
                .map(drop)
        },
    )?;
    Ok(Applied {
        deployments,
        daemon_sets,
    })
}

/// The installation's Filebeat binding as this operator last read or wrote it, and when. Every
/// platform's reconcile edits this one object: the edits are made one at a time (no conflicting
/// updates between the operator's own reconciles) and a copy younger than [`BINDING_FRESH`]
/// stands in for a read.
#[derive(Debug, Default)]
pub struct BindingCache(tokio::sync::Mutex<Option<(ClusterRoleBinding, Instant)>>);

/// How long a read or written binding stands in for another read. Someone else's edit of the
/// subjects is seen after at most this long (at the platform's next reconcile); an update based
/// on a stale copy fails on its resourceVersion and is retried from a fresh read.
pub const BINDING_FRESH: Duration = Duration::from_secs(5);

/// Edits the subjects of the installation's Filebeat binding: `keep` present, every one of
/// `drop` but `keep` gone (a read, unless [`BindingCache`] holds a fresh one, and an update with
/// its resourceVersion only when the subjects change, retried from a new read when someone else
/// updated it in between). Where the binding is missing it is created if there is a subject to
/// keep; the operator's RBAC forbids that, and the error says the binding is part of the
/// installation.
pub async fn bind_filebeat(
    client: &Client,
    binding: FilebeatBinding<'_>,
    keep: Option<&Subject>,
    drop: &[Subject],
) -> Result<(), Error> {
    let api: Api<ClusterRoleBinding> = Api::all(client.clone());
    let kube = |action, source| Error::Kube { action, source };
    let mut cached = binding.cache.0.lock().await;
    for _ in 0..10 {
        let fresh = cached
            .as_ref()
            .filter(|(_, at)| at.elapsed() < BINDING_FRESH)
            .map(|(crb, _)| crb.clone());
        let read = fresh.is_none();
        let crb = match fresh {
            Some(crb) => Some(crb),
            None => api
                .get_opt(binding.name)
                .await
                .map_err(|e| kube("read the installation's Filebeat ClusterRoleBinding", e))?,
        };
        let Some(mut crb) = crb else {
            *cached = None;
            let Some(keep) = keep else { return Ok(()) };
            let crb = ClusterRoleBinding {
                metadata: ObjectMeta {
                    name: Some(binding.name.to_owned()),
                    ..ObjectMeta::default()
                },
                role_ref: RoleRef {
                    api_group: Some("rbac.authorization.k8s.io".to_owned()),
                    kind: "ClusterRole".to_owned(),
                    name: binding.role.to_owned(),
                },
                subjects: Some(vec![keep.clone()]),
            };
            match api.create(&PostParams::default(), &crb).await {
                Ok(created) => {
                    *cached = Some((created, Instant::now()));
                    return Ok(());
                }
                Err(kube::Error::Api(s)) if s.code == 409 => continue,
                Err(e) => {
                    return Err(kube(
                        "create the missing Filebeat ClusterRoleBinding (operator/rbac/operator.yaml and the chart ship it; the operator's RBAC only lets it edit its subjects)",
                        e,
                    ));
                }
            }
        };
        let have = crb.subjects.clone().unwrap_or_default();
        let Some(subjects) = edit_subjects(&have, keep, drop) else {
            // (a copy just read replaces a stale one; a fresh copy keeps its own time)
            if read {
                *cached = Some((crb, Instant::now()));
            }
            return Ok(());
        };
        crb.subjects = Some(subjects);
        match api
            .replace(binding.name, &PostParams::default(), &crb)
            .await
        {
            Ok(updated) => {
                *cached = Some((updated, Instant::now()));
                return Ok(());
            }
            // Changed (or deleted) by someone else: read it again.
            Err(kube::Error::Api(s)) if s.code == 409 || s.code == 404 => *cached = None,
            Err(e) => {
                *cached = None;
                return Err(kube(
                    "update the subjects of the installation's Filebeat ClusterRoleBinding",
                    e,
                ));
            }
        }
    }
    Err(Error::Conflict(
        "the installation's Filebeat ClusterRoleBinding changed under each of 10 updates",
    ))
}

/// Deletes the children of `p` that are no longer desired; returns `Kind/name` of each (and the
/// namespace, for Filebeat's objects outside the platform's). Besides the platform's namespace,
/// Filebeat's (when it has one of its own) and `previous_filebeat_namespace` (where it was) are
/// pruned by label.
pub async fn prune_children(
    client: &Client,
    children: &Children,
    p: &Platform,
    desired: &Desired,
    previous_filebeat_namespace: Option<&str>,
) -> Result<Vec<String>, Error> {
    let a = Apis::new(client, &p.namespace);
    let labels = selector_labels(&p.name);
    let ns = p.namespace.as_str();
    let uid = p.owner.as_ref().map(|o| o.uid.as_str());
    // (Filebeat's objects in another namespace are no children here.)
    let dss = in_namespace(&desired.daemon_sets, &p.namespace);
    let cms = in_namespace(&desired.config_maps, &p.namespace);
    let sas = in_namespace(&desired.service_accounts, &p.namespace);
    let pruned = futures::try_join!(
        prune_watched(children, &a.deps, ns, &labels, &desired.deployments, uid),
        prune_watched(children, &a.dss, ns, &labels, &dss, uid),
        prune_watched(children, &a.svcs, ns, &labels, &desired.services, uid),
        prune_watched(children, &a.cms, ns, &labels, &cms, uid),
        prune_watched(children, &a.sas, ns, &labels, &sas, uid),
        prune_watched(children, &a.pdbs, ns, &labels, &desired.pdbs, uid),
    )?;
    let mut all = Vec::new();
    for (kind, names) in [
        ("Deployment", pruned.0),
        ("DaemonSet", pruned.1),
        ("Service", pruned.2),
        ("ConfigMap", pruned.3),
        ("ServiceAccount", pruned.4),
        ("PodDisruptionBudget", pruned.5),
    ] {
        all.extend(names.into_iter().map(|n| format!("{kind}/{n}")));
    }
    let current = p.logging.filebeat.as_ref().map(|fb| fb.namespace.as_str());
    for ns in elsewhere(
        &p.namespace,
        current.into_iter().chain(previous_filebeat_namespace),
    ) {
        all.extend(prune_filebeat_in(client, &p.namespace, &p.name, ns, desired).await?);
    }
    Ok(all)
}

/// The namespaces among `namespaces` other than the platform's, each once.
fn elsewhere<'a>(platform_ns: &str, namespaces: impl IntoIterator<Item = &'a str>) -> Vec<&'a str> {
    let mut out: Vec<&str> = Vec::new();
    for ns in namespaces {
        if ns != platform_ns && !out.contains(&ns) {
            out.push(ns);
        }
    }
    out
}

/// `objs` of the namespace `ns`.
fn in_namespace<K: Resource + Clone>(objs: &[K], ns: &str) -> Vec<K> {
    objs.iter()
        .filter(|o| o.meta().namespace.as_deref() == Some(ns))
        .cloned()
        .collect()
}

/// Deletes Filebeat's objects of the platform `name` (in `platform_ns`) from `ns`, another
/// namespace, but those `desired` there; by label (they have no owner reference).
async fn prune_filebeat_in(
    client: &Client,
    platform_ns: &str,
    name: &str,
    ns: &str,
    desired: &Desired,
) -> Result<Vec<String>, Error> {
    let sel = unowned_selector(platform_ns, name);
    let a = Apis::new(client, ns);
    let keep = (
        in_namespace(&desired.daemon_sets, ns),
        in_namespace(&desired.config_maps, ns),
        in_namespace(&desired.service_accounts, ns),
    );
    let (dss, cms, sas) = futures::try_join!(
        prune(&a.dss, &sel, &keep.0, None),
        prune(&a.cms, &sel, &keep.1, None),
        prune(&a.sas, &sel, &keep.2, None),
    )?;
    let mut all = Vec::new();
    for (kind, names) in [
        ("DaemonSet", dss),
        ("ConfigMap", cms),
        ("ServiceAccount", sas),
    ] {
        all.extend(names.into_iter().map(|n| format!("{kind}/{ns}/{n}")));
    }
    Ok(all)
}

/// The namespaces Filebeat's objects of `cr` may be in besides its own: the spec's and the one
/// status recorded.
pub fn filebeat_namespaces(cr: &CampusPlatform) -> Vec<String> {
    let own = cr.namespace().unwrap_or_default();
    let spec = cr.spec.logging.filebeat.namespace.clone();
    let seen = cr
        .status
        .as_ref()
        .and_then(|s| s.filebeat_namespace.clone());
    let mut out: Vec<String> = Vec::new();
    for ns in spec.into_iter().chain(seen) {
        if ns != own && !out.contains(&ns) {
            out.push(ns);
        }
    }
    out
}

/// Deletes what `cr` has that no owner reference lets the garbage collector delete: Filebeat's
/// objects in other namespaces, and its accounts among the subjects of the Filebeat binding.
pub async fn delete_unowned_children(
    client: &Client,
    cr: &CampusPlatform,
    binding: FilebeatBinding<'_>,
) -> Result<(), Error> {
    let ns = cr.namespace().unwrap_or_default();
    let name = cr.name_any();
    let others = filebeat_namespaces(cr);
    let drop = filebeat_subjects_of(&ns, &name, others.iter().map(String::as_str));
    bind_filebeat(client, binding, None, &drop).await?;
    for other in &others {
        prune_filebeat_in(client, &ns, &name, other, &Desired::default()).await?;
    }
    Ok(())
}
