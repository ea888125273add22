//! Services: one ClusterIP Service per API, and the coupon API's admin listener on a Service of its
//! own (`<p>-coupon-admin`), so that nothing that exposes an API (the chart's expose Service, an
//! Ingress to `<p>-coupon-api`) reaches `/admin/*`.

use k8s_openapi::api::core::v1::{Service as KubeService, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::deployment::{API_PORT, api_name};
use super::{meta, pod_selector};
use crate::model::Platform;
use crate::plan::Service;

/// The port of each API's Service (→ the API's `http` port).
pub const API_SERVICE_PORT: i32 = 80;

/// A Service for each enabled API, port [`API_SERVICE_PORT`] → the API's `http` port.
pub fn all(p: &Platform) -> Vec<KubeService> {
    p.apis()
        .flat_map(|s| {
            let admin = (s.service == Service::Coupon).then(|| coupon_admin(p));
            std::iter::once(api(p, s.service)).chain(admin)
        })
        .collect()
}

/// Name of the coupon API's admin Service.
pub fn coupon_admin_name(p: &Platform) -> String {
    super::child_name(p, "coupon-admin")
}

fn coupon_admin(p: &Platform) -> KubeService {
    let component = "coupon-api";
    KubeService {
        metadata: meta(p, coupon_admin_name(p), "coupon-admin"),
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".to_owned()),
            selector: Some(pod_selector(p, component)),
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

fn api(p: &Platform, service: Service) -> KubeService {
    let component = format!("{}-api", service.as_str());
    KubeService {
        metadata: meta(p, api_name(p, service), &component),
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".to_owned()),
            selector: Some(pod_selector(p, &component)),
            ports: Some(vec![ServicePort {
                name: Some("http".to_owned()),
                port: API_SERVICE_PORT,
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
    use crate::build::fixtures::{MINIMAL, model};
    use kube::ResourceExt;

    #[test]
    fn a_service_per_enabled_api_selecting_its_pods() {
        let svcs = all(&model(&format!("{MINIMAL}  coupon: {{enabled: false}}\n")));
        let names: Vec<_> = svcs.iter().map(|s| s.name_any()).collect();
        assert_eq!(names, ["blue-content-api", "blue-log-api"]);
        let all_on = all(&model(MINIMAL));
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
