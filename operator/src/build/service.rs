//! Services: one ClusterIP Service per API.

use k8s_openapi::api::core::v1::{Service as KubeService, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::deployment::{API_PORT, api_name};
use super::{meta, pod_selector};
use crate::crd::CampusPlatform;
use crate::plan::Service;

/// A Service for each enabled API, port 80 → the API's `http` port.
pub fn all(cr: &CampusPlatform) -> Vec<KubeService> {
    let s = &cr.spec;
    [
        (Service::Content, s.content.enabled),
        (Service::Coupon, s.coupon.enabled),
        (Service::Log, s.log.enabled),
    ]
    .into_iter()
    .filter(|(_, enabled)| *enabled)
    .map(|(service, _)| api(cr, service))
    .collect()
}

fn api(cr: &CampusPlatform, service: Service) -> KubeService {
    let component = format!("{}-api", service.as_str());
    KubeService {
        metadata: meta(cr, api_name(cr, service), &component),
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".to_owned()),
            selector: Some(pod_selector(cr, &component)),
            ports: Some(vec![ServicePort {
                name: Some("http".to_owned()),
                port: 80,
                target_port: Some(IntOrString::Int(API_PORT)),
                protocol: Some("TCP".to_owned()),
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        ..KubeService::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::fixtures::{MINIMAL, platform};
    use kube::ResourceExt;

    #[test]
    fn a_service_per_enabled_api_selecting_its_pods() {
        let cr = platform(&format!("{MINIMAL}  coupon: {{enabled: false}}\n"));
        let svcs = all(&cr);
        let names: Vec<_> = svcs.iter().map(|s| s.name_any()).collect();
        assert_eq!(names, ["blue-content-api", "blue-log-api"]);
        let spec = svcs[0].spec.as_ref().unwrap();
        assert_eq!(
            spec.selector.as_ref().unwrap()["app.kubernetes.io/component"],
            "content-api"
        );
        assert_eq!(
            spec.ports.as_ref().unwrap()[0].target_port,
            Some(IntOrString::Int(8080))
        );
    }
}
