//! Server-side apply of the desired children with one field manager, and pruning by label of
//! the children that are no longer desired.

use std::collections::BTreeSet;
use std::fmt::Debug;

use futures::future::try_join_all;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::{ConfigMap, Service, ServiceAccount};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::ClusterRoleBinding;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::{Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::Error;
use crate::FIELD_MANAGER;
use crate::build::rbac::cluster_selector;
use crate::build::{Desired, selector_string};
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
        match api.delete(&name, &DeleteParams::background()).await {
            Ok(_) => deleted.push(name),
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(source) => {
                return Err(Error::Kube {
                    action: "delete a child that is no longer desired",
                    source,
                });
            }
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

/// The APIs of a platform's children.
struct Apis {
    cms: Api<ConfigMap>,
    deps: Api<Deployment>,
    svcs: Api<Service>,
    dss: Api<DaemonSet>,
    sas: Api<ServiceAccount>,
    crbs: Api<ClusterRoleBinding>,
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
            crbs: Api::all(client.clone()),
            pdbs: Api::namespaced(client.clone(), ns),
        }
    }
}

/// Applies every desired child of `p`.
pub async fn apply_children(
    client: &Client,
    p: &Platform,
    desired: &Desired,
) -> Result<Applied, Error> {
    let a = Apis::new(client, &p.namespace);
    // ConfigMaps and identities first, so that pods never start without their configuration.
    let ((), (), ()) = futures::try_join!(
        async { apply_all(&a.cms, &desired.config_maps).await.map(drop) },
        async { apply_all(&a.sas, &desired.service_accounts).await.map(drop) },
        async {
            apply_all(&a.crbs, &desired.cluster_role_bindings)
                .await
                .map(drop)
        },
    )?;
    let (deployments, daemon_sets, (), ()) = futures::try_join!(
        apply_all(&a.deps, &desired.deployments),
        apply_all(&a.dss, &desired.daemon_sets),
        async { apply_all(&a.svcs, &desired.services).await.map(drop) },
        async { apply_all(&a.pdbs, &desired.pdbs).await.map(drop) },
    )?;
    Ok(Applied {
        deployments,
        daemon_sets,
    })
}

/// Deletes the children of `p` that are no longer desired; returns `Kind/name` of each.
pub async fn prune_children(
    client: &Client,
    p: &Platform,
    desired: &Desired,
) -> Result<Vec<String>, Error> {
    let a = Apis::new(client, &p.namespace);
    let sel = selector_string(&p.name);
    let csel = cluster_selector(&p.namespace, &p.name);
    let uid = p.owner.as_ref().map(|o| o.uid.as_str());
    let pruned = futures::try_join!(
        prune(&a.deps, &sel, &desired.deployments, uid),
        prune(&a.dss, &sel, &desired.daemon_sets, uid),
        prune(&a.svcs, &sel, &desired.services, uid),
        prune(&a.cms, &sel, &desired.config_maps, uid),
        prune(&a.sas, &sel, &desired.service_accounts, uid),
        prune(&a.crbs, &csel, &desired.cluster_role_bindings, None),
        prune(&a.pdbs, &sel, &desired.pdbs, uid),
    )?;
    let mut all = Vec::new();
    for (kind, names) in [
        ("Deployment", pruned.0),
        ("DaemonSet", pruned.1),
        ("Service", pruned.2),
        ("ConfigMap", pruned.3),
        ("ServiceAccount", pruned.4),
        ("ClusterRoleBinding", pruned.5),
        ("PodDisruptionBudget", pruned.6),
    ] {
        all.extend(names.into_iter().map(|n| format!("{kind}/{n}")));
    }
    Ok(all)
}

/// Deletes the cluster-scoped children of `cr` (they carry no owner reference).
pub async fn delete_cluster_children(client: &Client, cr: &CampusPlatform) -> Result<(), Error> {
    let csel = cluster_selector(&cr.namespace().unwrap_or_default(), &cr.name_any());
    let crbs: Api<ClusterRoleBinding> = Api::all(client.clone());
    prune(&crbs, &csel, &[], None).await?;
    Ok(())
}
