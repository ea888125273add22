//! Services: one ClusterIP Service per API, and the coupon API's admin listener on a Service of its
//! own (`<p>-coupon-admin`), so that nothing that exposes an API (the chart's expose Service, an
//! Ingress to `<p>-coupon-api`) reaches `/admin/*`.

use k8s_openapi::api::core::v1::{Service as KubeService, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::deployment::{API_PORT, api_name};
use super::{enabled_apis, meta, pod_selector};
use crate::crd::CampusPlatform;
use crate::plan::Service;

/// A Service for each enabled API, port 80 → the API's `http` port.
pub fn all(cr: &CampusPlatform) -> Vec<KubeService> {
    enabled_apis(cr)
        .flat_map(|service| {
            let admin = (service == Service::Coupon).then(|| coupon_admin(cr));
            std::iter::once(api(cr, service)).chain(admin)
        })
        .collect()
}

/// Name of the coupon API's admin Service.
pub fn coupon_admin_name(cr: &CampusPlatform) -> String {
    super::child_name(cr, "coupon-admin")
}

fn coupon_admin(cr: &CampusPlatform) -> KubeService {
    let component = "coupon-api";
    KubeService {
        metadata: meta(cr, coupon_admin_name(cr), "coupon-admin"),
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".to_owned()),
            selector: Some(pod_selector(cr, component)),
            ports: Some(vec![ServicePort {
                name: Some("admin".to_owned()),
                port: i32::from(campus_contract::port::ADMIN),
                target_port: Some(IntOrString::String("admin".to_owned())),
                protocol: Some("TCP".to_owned()),
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        ..KubeService::default()
    }
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
        let all_on = all(&platform(MINIMAL));
        let names: Vec<_> = all_on.iter().map(|s| s.name_any()).collect();
        assert_eq!(
            names,
            [
                "blue-content-api",
                "blue-coupon-api",
                "blue-coupon-admin",
                "blue-log-api"
            ]
        );
        let port = |i: usize| all_on[i].spec.as_ref().unwrap().ports.clone().unwrap();
        assert_eq!(
            port(1).len(),
            1,
            "the coupon API Service carries no admin port"
        );
        assert_eq!(port(2)[0].port, 8081);
        assert_eq!(
            all_on[2].spec.as_ref().unwrap().selector,
            all_on[1].spec.as_ref().unwrap().selector
        );
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
