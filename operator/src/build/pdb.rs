//! PodDisruptionBudgets: one per API Deployment, `maxUnavailable: 1`. A node drain or a cluster
//! upgrade evicts one API pod at a time — with two replicas or more the API stays up throughout —
//! and a single replica never blocks a drain (`minAvailable: 1` would).

use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::deployment::api_name;
use super::{meta, pod_selector};
use crate::model::Platform;

/// The budgets of the enabled APIs, named as their Deployments.
pub fn all(p: &Platform) -> Vec<PodDisruptionBudget> {
    p.apis()
        .map(|s| {
            let component = format!("{}-api", s.service.as_str());
            PodDisruptionBudget {
                metadata: meta(p, api_name(p, s.service), &component),
                spec: Some(PodDisruptionBudgetSpec {
                    max_unavailable: Some(IntOrString::Int(1)),
                    selector: Some(LabelSelector {
                        match_labels: Some(pod_selector(p, &component)),
                        ..LabelSelector::default()
                    }),
                    // A pod that is not Ready (crash-looping, stuck) may always be evicted.
                    unhealthy_pod_eviction_policy: Some("AlwaysAllow".to_owned()),
                    ..PodDisruptionBudgetSpec::default()
                }),
                ..PodDisruptionBudget::default()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::fixtures::{MINIMAL, model, platform, pod_labels, valid};
    use crate::build::{BuildInputs, Desired};
    use kube::ResourceExt;

    #[test]
    fn one_budget_per_api_selecting_exactly_its_pods() {
        let d = Desired::build(&model(MINIMAL), &BuildInputs::new("0.1.0"));
        let names: Vec<_> = d.pdbs.iter().map(|p| p.name_any()).collect();
        assert_eq!(
            names,
            ["blue-content-api", "blue-coupon-api", "blue-log-api"]
        );
        for pdb in &d.pdbs {
            let spec = pdb.spec.as_ref().unwrap();
            assert_eq!(spec.max_unavailable, Some(IntOrString::Int(1)));
            assert_eq!(spec.min_available, None);
            let want = spec
                .selector
                .as_ref()
                .unwrap()
                .match_labels
                .as_ref()
                .unwrap();
            let selects = |dep: &k8s_openapi::api::apps::v1::Deployment| {
                let labels = pod_labels(dep);
                want.iter().all(|(k, v)| labels.get(k) == Some(v))
            };
            // Its API's pods, and no other Deployment's.
            assert_eq!(d.deployments.iter().filter(|x| selects(x)).count(), 1);
            for dep in &d.deployments {
                assert_eq!(
                    selects(dep),
                    dep.name_any() == pdb.name_any(),
                    "{} selects {want:?}; {} has {:?}",
                    pdb.name_any(),
                    dep.name_any(),
                    pod_labels(dep)
                );
            }
        }
    }

    #[test]
    fn a_disabled_service_has_no_budget() {
        let mut cr = platform(MINIMAL);
        cr.spec.coupon.common.enabled = false;
        let names: Vec<_> = all(&valid(&cr)).iter().map(|p| p.name_any()).collect();
        assert_eq!(names, ["blue-content-api", "blue-log-api"]);
    }
}
