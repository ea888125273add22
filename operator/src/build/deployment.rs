//! Deployments: one per API, one per consumer group, and Logstash.

use std::collections::BTreeMap;

use campus_contract::env as var;
use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment,
};
use k8s_openapi::api::core::v1::{
    ConfigMap, ConfigMapEnvSource, ConfigMapVolumeSource, Container, ContainerPort, EnvFromSource,
    EnvVar, HTTPGetAction, KeyToPath, PodSpec, PodTemplateSpec, Probe, ResourceRequirements,
    TopologySpreadConstraint, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::config_map::{
    LOGSTASH_PIPELINE_DIR, logstash_pipelines_name, logstash_settings_name, service_config_name,
};
use super::{
    BuildInputs, CONFIG_HASH_ANNOTATION, child_name, component_labels, config_hash, meta,
    pod_selector, pod_template, security,
};
use crate::crd::AutoscalingMode;
use crate::model::{Logstash, Platform, PodTemplate, Processor, ServiceSettings, Url};
use crate::plan::{Service, Worker};

/// Port of the APIs (`HTTP_ADDR`), which also serve `/healthz`, `/readyz`, `/metrics`.
pub const API_PORT: i32 = campus_contract::port::API as i32;
/// Port of the workers' ops server (`OPS_ADDR`).
pub const OPS_PORT: i32 = campus_contract::port::OPS as i32;
/// How long an API pod goes on serving after SIGTERM (`HTTP_SHUTDOWN_DRAIN_MS`): the endpoints
/// controller and kube-proxy drop a terminating pod within a second or two, and clients on
/// keep-alive connections are told to reconnect, so a roll or a drain fails no request. Within
/// the pod's 30 s termination grace period, with room for the in-flight requests.
pub const API_SHUTDOWN_DRAIN_MS: u64 = 5000;

/// Name of a service's API Deployment (and Service): `<platform>-<service>-api`.
pub fn api_name(p: &Platform, service: Service) -> String {
    child_name(p, &format!("{}-api", service.as_str()))
}
pub fn logstash_name(p: &Platform) -> String {
    child_name(p, "logstash")
}

/// The replicas a worker's Deployment gets: lag-based scaling's choice, else the minimum of its
/// bounds, else the spec's replicas; none under an external autoscaler (the field is left to it).
pub fn worker_replicas(worker: &Worker) -> Option<i32> {
    let scaled = worker.scaled_replicas;
    match &worker.spec.autoscaling {
        Some(a) if a.mode == AutoscalingMode::External => None,
        Some(a) => Some(scaled.unwrap_or(a.min_replicas)),
        None => Some(scaled.unwrap_or(worker.spec.replicas)),
    }
}

/// Every Deployment of the platform. `config_maps` are the desired ConfigMaps (for the hashes).
pub fn all(p: &Platform, inputs: &BuildInputs, config_maps: &[ConfigMap]) -> Vec<Deployment> {
    let mut out: Vec<Deployment> = p.apis().map(|s| api(p, s, inputs, config_maps)).collect();
    for w in &p.plan.workers {
        out.push(worker(p, w, inputs, config_maps));
    }
    if let Processor::Logstash(ls) = &p.logging.processor {
        out.push(logstash(p, ls, inputs, config_maps));
    }
    out
}

/// The settings of a service the model says runs (it has a Deployment).
fn settings(p: &Platform, service: Service) -> &ServiceSettings {
    p.service(service)
        .expect("a workload of a service the platform runs")
}

fn plain_env(name: &str, value: &str) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value: Some(value.to_owned()),
        ..EnvVar::default()
    }
}

/// The container environment: listen address, the Secret references of the stores the service
/// needs, then the user's extra variables (which replace an operator-set variable of the same
/// name).
fn env(p: &Platform, service: Service, listen: Vec<EnvVar>, extra: &[EnvVar]) -> Vec<EnvVar> {
    let mut env = listen;
    env.extend(super::env::service_env(p, service).secrets);
    for e in extra {
        env.retain(|have| have.name != e.name);
        env.push(e.clone());
    }
    env
}

/// An HTTP probe with an explicit timeout (the kubelet's default of 1 s fails a healthy pod on a
/// busy node).
fn probe(path: &str, port: &str, period: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.to_owned()),
            port: IntOrString::String(port.to_owned()),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(period),
        timeout_seconds: Some(3),
        failure_threshold: Some(3),
        ..Probe::default()
    }
}

/// Holds liveness and readiness back until the process serves `path` at all — migrations and the
/// first connections may take `budget_seconds` — so a slow start is not a restart loop.
fn startup_probe(path: &str, port: &str, budget_seconds: i32) -> Probe {
    Probe {
        failure_threshold: Some(budget_seconds / 5),
        ..probe(path, port, 5)
    }
}

fn deployment(
    p: &Platform,
    name: String,
    component: &str,
    replicas: Option<i32>,
    hash: String,
    container: Container,
    volumes: Option<Vec<Volume>>,
) -> Deployment {
    let mut pod_labels = component_labels(p, component);
    pod_labels.extend(pod_selector(p, component));
    Deployment {
        metadata: meta(p, name, component),
        spec: Some(DeploymentSpec {
            replicas,
            selector: LabelSelector {
                match_labels: Some(pod_selector(p, component)),
                ..LabelSelector::default()
            },
            // One new pod Ready before an old one goes, whatever the replicas (the default's
            // 25 % lets a quarter go first from four replicas on).
            strategy: Some(DeploymentStrategy {
                type_: Some("RollingUpdate".to_owned()),
                rolling_update: Some(RollingUpdateDeployment {
                    max_surge: Some(IntOrString::Int(1)),
                    max_unavailable: Some(IntOrString::Int(0)),
                }),
            }),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(pod_labels),
                    annotations: Some(BTreeMap::from([(CONFIG_HASH_ANNOTATION.to_owned(), hash)])),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    containers: vec![container],
                    volumes,
                    topology_spread_constraints: Some(spread_over_nodes(p, component)),
                    termination_grace_period_seconds: Some(30),
                    // Neither the Campus processes nor Logstash talk to the API server.
                    automount_service_account_token: Some(false),
                    security_context: Some(security::restricted_pod()),
                    ..PodSpec::default()
                }),
            },
            ..DeploymentSpec::default()
        }),
        ..Deployment::default()
    }
}

/// `d` (of `component`) with the spec's pod customisation (see [`pod_template::apply`]).
fn customised(
    p: &Platform,
    component: &str,
    template: &PodTemplate,
    mut d: Deployment,
) -> Deployment {
    if let Some(spec) = d.spec.as_mut() {
        pod_template::apply(
            template,
            pod_template::Pods::Deployment,
            &pod_selector(p, component),
            &mut d.metadata,
            &mut spec.template,
        );
    }
    d
}

/// The replicas spread over the nodes, so that losing or draining one node takes at most about
/// 1/n of an API's pods. A preference (`ScheduleAnyway`), not a rule: a full or tainted node never
/// leaves a pod Pending. Counted within one ReplicaSet (`matchLabelKeys: pod-template-hash`), so a
/// roll spreads its new pods instead of balancing them against the old ones on their way out; nodes
/// the pod may not go to (cordoned for a drain, a control plane) are left out of the count
/// (`nodeTaintsPolicy: Honor`).
fn spread_over_nodes(p: &Platform, component: &str) -> Vec<TopologySpreadConstraint> {
    vec![TopologySpreadConstraint {
        max_skew: 1,
        topology_key: "kubernetes.io/hostname".to_owned(),
        when_unsatisfiable: "ScheduleAnyway".to_owned(),
        label_selector: Some(LabelSelector {
            match_labels: Some(pod_selector(p, component)),
            ..LabelSelector::default()
        }),
        match_label_keys: Some(vec!["pod-template-hash".to_owned()]),
        node_taints_policy: Some("Honor".to_owned()),
        ..TopologySpreadConstraint::default()
    }]
}

fn find<'a>(maps: &'a [ConfigMap], name: &str) -> Option<&'a ConfigMap> {
    maps.iter()
        .find(|m| m.metadata.name.as_deref() == Some(name))
}

fn campus_container(
    p: &Platform,
    service: Service,
    inputs: &BuildInputs,
    name: &str,
    args: Vec<String>,
    port: (i32, &str),
    resources: Option<&ResourceRequirements>,
) -> Container {
    let s = settings(p, service);
    let listen = if port.0 == API_PORT {
        let mut api = vec![
            plain_env(var::HTTP_ADDR, &format!("0.0.0.0:{API_PORT}")),
            // Served on after SIGTERM while the endpoints drop the pod (see API_SHUTDOWN_DRAIN_MS).
            plain_env(
                var::HTTP_SHUTDOWN_DRAIN_MS,
                &API_SHUTDOWN_DRAIN_MS.to_string(),
            ),
        ];
        // Who the requests act for (`spec.auth`; none in the default mode).
        api.extend(super::auth::api_env(p, service));
        // `POST /coupons` rate limits (`spec.coupon.rateLimits`; none by default), and the planned
        // partitions of `coupon.request`: the API creates the topic when it starts before the
        // operator has (a Kafka pod still starting), and must not create another count than the
        // plan's (more partitions than planned is never shrunk: the platform stayed not Ready).
        if service == Service::Coupon {
            if let Some(t) = p
                .plan
                .topics
                .iter()
                .find(|t| t.logical == campus_contract::topic::COUPON_REQUEST)
            {
                api.push(plain_env(
                    var::COUPON_REQUEST_PARTITIONS,
                    &t.partitions.to_string(),
                ));
            }
            let limits = p.coupon_rate_limits.iter().flat_map(|l| l.env());
            api.extend(limits.map(|(name, v)| plain_env(name, &v.to_string())));
        }
        api
    } else {
        vec![plain_env(var::OPS_ADDR, &format!("0.0.0.0:{OPS_PORT}"))]
    };
    Container {
        name: name.to_owned(),
        image: Some(s.image(&inputs.image_registry, &inputs.image_tag)),
        image_pull_policy: Some(p.pull_policy.as_str().to_owned()),
        args: Some(args),
        env: Some(env(p, service, listen, &s.env)),
        env_from: Some(
            [EnvFromSource {
                config_map_ref: Some(ConfigMapEnvSource {
                    name: service_config_name(p, service),
                    optional: Some(false),
                }),
                ..EnvFromSource::default()
            }]
            .into_iter()
            // Kafka's credentials, from their Secret (after the ConfigMap: they win).
            .chain(super::env::service_env(p, service).secret_sources)
            .collect(),
        ),
        ports: Some(vec![ContainerPort {
            name: Some(port.1.to_owned()),
            container_port: port.0,
            protocol: Some("TCP".to_owned()),
            ..ContainerPort::default()
        }]),
        startup_probe: Some(startup_probe("/healthz", port.1, 300)),
        liveness_probe: Some(probe("/healthz", port.1, 10)),
        readiness_probe: Some(probe("/readyz", port.1, 5)),
        resources: resources.or(s.resources.as_ref()).cloned(),
        security_context: Some(security::restricted_container(true)),
        ..Container::default()
    }
}

fn api(p: &Platform, s: &ServiceSettings, inputs: &BuildInputs, maps: &[ConfigMap]) -> Deployment {
    let service = s.service;
    let mut container = campus_container(
        p,
        service,
        inputs,
        "api",
        service
            .api()
            .command
            .iter()
            .map(|s| (*s).to_owned())
            .collect(),
        (i32::from(service.api().port), "http"),
        None,
    );
    if service == Service::Coupon {
        // `/admin/*` listens on a port of its own, reached through `<p>-coupon-admin` only.
        container
            .ports
            .get_or_insert_with(Vec::new)
            .push(ContainerPort {
                name: Some("admin".to_owned()),
                container_port: i32::from(campus_contract::port::ADMIN),
                protocol: Some("TCP".to_owned()),
                ..ContainerPort::default()
            });
        container.env.get_or_insert_with(Vec::new).push(plain_env(
            var::ADMIN_ADDR,
            &format!("0.0.0.0:{}", campus_contract::port::ADMIN),
        ));
    }
    let hash = config_hash(find(maps, &service_config_name(p, service)));
    let component = format!("{}-api", service.as_str());
    let d = deployment(
        p,
        api_name(p, service),
        &component,
        s.api_replicas,
        hash,
        container,
        None,
    );
    customised(p, &component, &s.template, d)
}

fn worker(p: &Platform, w: &Worker, inputs: &BuildInputs, maps: &[ConfigMap]) -> Deployment {
    let container = campus_container(
        p,
        w.service,
        inputs,
        "worker",
        w.args.clone(),
        (i32::from(w.contract.ops_port), "ops"),
        w.spec.resources.as_ref(),
    );
    let hash = config_hash(find(maps, &service_config_name(p, w.service)));
    let d = deployment(
        p,
        w.name.clone(),
        &w.component,
        worker_replicas(w),
        hash,
        container,
        None,
    );
    let mut d = customised(p, &w.component, &w.template, d);
    d.metadata
        .annotations
        .get_or_insert_with(BTreeMap::new)
        .insert("campus.dev/consumer-group".to_owned(), w.group.clone());
    d
}

/// Before Logstash starts, `campus-log prepare` (the log image) installs the access-log index
/// template and today's index behind the alias of every pipeline that writes access logs, and
/// waits for Elasticsearch to take them: Logstash installs neither, and the log API and Kibana
/// query the alias before the first document (with or without the log API running).
fn prepare_access_log_indices(
    p: &Platform,
    ls: &Logstash,
    inputs: &BuildInputs,
) -> Option<Container> {
    let topic = campus_contract::prefixed(&p.plan.prefix, campus_contract::access_log::TOPIC);
    let mut prefixes = ls
        .pipelines
        .iter()
        .filter(|pipe| pipe.topic == topic)
        .map(|pipe| pipe.index_prefix.as_str());
    let first = prefixes.next()?;
    let mut args = vec!["prepare".to_owned()];
    for also in prefixes {
        args.extend(["--also-index-prefix".to_owned(), also.to_owned()]);
    }
    let image = match p.service(Service::Log) {
        Some(s) => s.image(&inputs.image_registry, &inputs.image_tag),
        None => {
            let binary = Service::Log.binary();
            match inputs.image_registry.trim_end_matches('/') {
                "" => format!("{binary}:{}", inputs.image_tag),
                registry => format!("{registry}/{binary}:{}", inputs.image_tag),
            }
        }
    };
    let es = match p.stores.elasticsearch.as_ref().map(|e| &e.url) {
        Some(Url::Plain(url)) => plain_env(var::ELASTICSEARCH_URL, url),
        _ => super::env::elasticsearch_secret_env(p)?,
    };
    Some(Container {
        name: "prepare-indices".to_owned(),
        image: Some(image),
        image_pull_policy: Some(p.pull_policy.as_str().to_owned()),
        args: Some(args),
        env: Some(vec![
            es,
            plain_env(var::LOG_INDEX_PREFIX, first),
            plain_env("RUST_LOG", &p.log_level),
        ]),
        security_context: Some(security::restricted_container(true)),
        ..Container::default()
    })
}

fn logstash(p: &Platform, ls: &Logstash, inputs: &BuildInputs, maps: &[ConfigMap]) -> Deployment {
    let settings = logstash_settings_name(p);
    let container = Container {
        name: "logstash".to_owned(),
        image: Some(ls.image.clone()),
        image_pull_policy: Some(p.pull_policy.as_str().to_owned()),
        // With the Elasticsearch URL in a Secret the pipelines name `${ELASTICSEARCH_URL}`,
        // which Logstash expands from this environment.
        env: Some(
            std::iter::once(plain_env("LS_JAVA_OPTS", "-Xms256m -Xmx256m"))
                .chain(super::env::elasticsearch_secret_env(p))
                .collect(),
        ),
        ports: Some(vec![ContainerPort {
            name: Some("api".to_owned()),
            container_port: 9600,
            protocol: Some("TCP".to_owned()),
            ..ContainerPort::default()
        }]),
        startup_probe: Some(startup_probe("/", "api", 300)),
        liveness_probe: Some(probe("/", "api", 20)),
        readiness_probe: Some(probe("/", "api", 10)),
        resources: ls.resources.clone(),
        // Logstash writes its queue and state under /usr/share/logstash/data.
        security_context: Some(security::restricted_container(false)),
        volume_mounts: Some(vec![
            VolumeMount {
                name: "settings".to_owned(),
                mount_path: "/usr/share/logstash/config/logstash.yml".to_owned(),
                sub_path: Some("logstash.yml".to_owned()),
                read_only: Some(true),
                ..VolumeMount::default()
            },
            VolumeMount {
                name: "settings".to_owned(),
                mount_path: "/usr/share/logstash/config/pipelines.yml".to_owned(),
                sub_path: Some("pipelines.yml".to_owned()),
                read_only: Some(true),
                ..VolumeMount::default()
            },
            // A directory mount (no subPath): the kubelet updates the files in place and
            // Logstash's automatic reload picks the change up without a restart.
            VolumeMount {
                name: "pipelines".to_owned(),
                mount_path: LOGSTASH_PIPELINE_DIR.to_owned(),
                read_only: Some(true),
                ..VolumeMount::default()
            },
        ]),
        ..Container::default()
    };
    let volumes = vec![
        Volume {
            name: "settings".to_owned(),
            config_map: Some(ConfigMapVolumeSource {
                name: settings.clone(),
                items: Some(vec![
                    KeyToPath {
                        key: "logstash.yml".to_owned(),
                        path: "logstash.yml".to_owned(),
                        ..KeyToPath::default()
                    },
                    KeyToPath {
                        key: "pipelines.yml".to_owned(),
                        path: "pipelines.yml".to_owned(),
                        ..KeyToPath::default()
                    },
                ]),
                ..ConfigMapVolumeSource::default()
            }),
            ..Volume::default()
        },
        Volume {
            name: "pipelines".to_owned(),
            config_map: Some(ConfigMapVolumeSource {
                name: logstash_pipelines_name(p),
                ..ConfigMapVolumeSource::default()
            }),
            ..Volume::default()
        },
    ];
    // Only the settings are hashed: pipeline edits reload in place instead of rolling the pods.
    let hash = config_hash(find(maps, &settings));
    let mut d = deployment(
        p,
        logstash_name(p),
        "logstash",
        Some(ls.replicas),
        hash,
        container,
        Some(volumes),
    );
    if let Some(spec) = d.spec.as_mut().and_then(|s| s.template.spec.as_mut()) {
        spec.init_containers = prepare_access_log_indices(p, ls, inputs).map(|c| vec![c]);
    }
    customised(p, "logstash", &p.template, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::fixtures::{MINIMAL, container, model, pod_labels, with_secret_urls};
    use crate::build::{Desired, config_map};
    use kube::ResourceExt;

    fn deployments(yaml: &str, inputs: &BuildInputs) -> Vec<Deployment> {
        deployments_of(&model(yaml), inputs)
    }

    fn deployments_of(p: &Platform, inputs: &BuildInputs) -> Vec<Deployment> {
        all(p, inputs, &config_map::all(p))
    }

    /// `spec.coupon.rateLimits` becomes the coupon API container's `COUPON_RATE_*`, only the limits
    /// set; no other container gets them, and none without the field.
    #[test]
    fn coupon_rate_limits_reach_the_coupon_api_only() {
        let rates = |yaml: &str| -> Vec<(String, Vec<(String, String)>)> {
            deployments(yaml, &BuildInputs::new("t"))
                .iter()
                .map(|d| {
                    let env = container(d)
                        .env
                        .iter()
                        .flatten()
                        .filter(|e| {
                            e.name.starts_with("COUPON_RATE_")
                                || e.name == "COUPON_REQUEST_PARTITIONS"
                        })
                        .map(|e| (e.name.clone(), e.value.clone().unwrap_or_default()))
                        .collect();
                    (d.name_any(), env)
                })
                .filter(|(_, env): &(String, Vec<_>)| !env.is_empty())
                .collect()
        };
        assert_eq!(
            rates(MINIMAL),
            [(
                "blue-coupon-api".to_owned(),
                vec![("COUPON_REQUEST_PARTITIONS".to_owned(), "3".to_owned())]
            )]
        );
        let yaml = format!("{MINIMAL}  coupon:\n    rateLimits: {{perUser: 2, global: 500}}\n");
        assert_eq!(
            rates(&yaml),
            [(
                "blue-coupon-api".to_owned(),
                vec![
                    ("COUPON_REQUEST_PARTITIONS".to_owned(), "3".to_owned()),
                    ("COUPON_RATE_PER_USER".to_owned(), "2".to_owned()),
                    ("COUPON_RATE_GLOBAL".to_owned(), "500".to_owned())
                ]
            )]
        );
    }

    /// The fixture's model with lag-based scaling's choice for the worker Deployment `name`.
    fn scaled(yaml: &str, name: &str, replicas: i32) -> Platform {
        let mut p = model(yaml);
        let w = p.plan.workers.iter_mut().find(|w| w.name == name);
        w.expect("a worker of that name").scaled_replicas = Some(replicas);
        p
    }

    fn env_of<'a>(c: &'a Container, name: &str) -> Option<&'a EnvVar> {
        c.env.as_ref().unwrap().iter().find(|e| e.name == name)
    }

    #[test]
    fn the_coupon_api_serves_admin_on_a_port_of_its_own() {
        let ds = deployments(MINIMAL, &BuildInputs::new("0.1.0"));
        let coupon = container(&ds[1]);
        assert_eq!(ds[1].name_any(), "blue-coupon-api");
        let ports: Vec<_> = coupon
            .ports
            .as_ref()
            .unwrap()
            .iter()
            .map(|p| (p.name.clone().unwrap(), p.container_port))
            .collect();
        assert_eq!(ports, [("http".into(), 8080), ("admin".into(), 8081)]);
        assert_eq!(
            env_of(coupon, "ADMIN_ADDR").unwrap().value.as_deref(),
            Some("0.0.0.0:8081")
        );
        assert!(env_of(container(&ds[0]), "ADMIN_ADDR").is_none());
    }

    #[test]
    fn every_container_has_a_startup_budget_and_probes_with_timeouts() {
        for d in deployments(MINIMAL, &BuildInputs::new("0.1.0")) {
            let c = container(&d);
            let name = d.name_any();
            for (kind, p) in [
                ("startup", &c.startup_probe),
                ("liveness", &c.liveness_probe),
                ("readiness", &c.readiness_probe),
            ] {
                let p = p
                    .as_ref()
                    .unwrap_or_else(|| panic!("{name}: no {kind} probe"));
                assert!(p.timeout_seconds >= Some(2), "{name}: {kind} timeout");
            }
            let startup = c.startup_probe.as_ref().unwrap();
            let budget = startup.period_seconds.unwrap() * startup.failure_threshold.unwrap();
            assert!(budget >= 120, "{name}: {budget} s to start");
            assert_eq!(
                c.liveness_probe.as_ref().unwrap().initial_delay_seconds,
                None
            );
        }
    }

    #[test]
    fn one_deployment_per_api_and_per_consumer_group() {
        let ds = deployments(MINIMAL, &BuildInputs::new("0.1.0"));
        let names: Vec<_> = ds.iter().map(|d| d.name_any()).collect();
        assert_eq!(
            names,
            [
                "blue-content-api",
                "blue-coupon-api",
                "blue-log-api",
                "blue-content-inspection",
                "blue-content-cache",
                "blue-content-inbox",
                "blue-content-index",
                "blue-coupon-issue",
                "blue-logstash"
            ]
        );
        let api = container(&ds[0]);
        assert_eq!(api.image.as_deref(), Some("campus-content:0.1.0"));
        assert_eq!(api.args.as_deref(), Some(&["api".to_owned()][..]));
        assert_eq!(
            env_of(api, "HTTP_ADDR").unwrap().value.as_deref(),
            Some("0.0.0.0:8080")
        );
        // Every API drains after SIGTERM; no worker does (it has no clients to move).
        for d in &ds[..3] {
            assert_eq!(
                env_of(container(d), "HTTP_SHUTDOWN_DRAIN_MS").and_then(|e| e.value.as_deref()),
                Some("5000"),
                "{}",
                d.name_any()
            );
        }
        assert!(env_of(container(&ds[3]), "HTTP_SHUTDOWN_DRAIN_MS").is_none());
        // A roll surges one pod and takes none away first, whatever the replicas.
        for d in &ds {
            let ru = d.spec.as_ref().unwrap().strategy.as_ref().unwrap();
            let ru = ru.rolling_update.as_ref().unwrap();
            assert_eq!(
                (ru.max_surge.clone(), ru.max_unavailable.clone()),
                (Some(IntOrString::Int(1)), Some(IntOrString::Int(0))),
                "{}",
                d.name_any()
            );
            // Its pods, and only its pods, spread over the nodes, as a preference.
            let spec = d.spec.as_ref().unwrap();
            let pod = spec.template.spec.as_ref().unwrap();
            let [spread] = pod.topology_spread_constraints.as_deref().unwrap() else {
                panic!("{}: one spread constraint", d.name_any())
            };
            assert_eq!(spread.topology_key, "kubernetes.io/hostname");
            assert_eq!(spread.when_unsatisfiable, "ScheduleAnyway");
            assert_eq!(spread.max_skew, 1);
            assert_eq!(
                spread.label_selector.as_ref(),
                Some(&spec.selector),
                "{}",
                d.name_any()
            );
            assert_eq!(
                spread.match_label_keys.as_deref(),
                Some(&["pod-template-hash".to_owned()][..])
            );
            assert_eq!(spread.node_taints_policy.as_deref(), Some("Honor"));
        }
        let mysql = env_of(api, "MYSQL_URL").unwrap();
        let secret = mysql
            .value_from
            .as_ref()
            .unwrap()
            .secret_key_ref
            .as_ref()
            .unwrap();
        assert_eq!(
            (secret.name.as_str(), secret.key.as_str()),
            ("campus-db", "url")
        );
        assert!(env_of(api, "OPENAI_API_KEY").is_none());
        let inspect = container(&ds[3]);
        assert_eq!(inspect.args.as_deref().unwrap(), ["worker", "inspect"]);
        assert_eq!(
            env_of(inspect, "OPS_ADDR").unwrap().value.as_deref(),
            Some("0.0.0.0:9090")
        );
        assert_eq!(
            ds[3].metadata.annotations.as_ref().unwrap()["campus.dev/consumer-group"],
            "campus.blue.inspection"
        );
        let issue = container(&ds[7]);
        assert_eq!(issue.image.as_deref(), Some("campus-coupon:0.1.0"));
        assert!(env_of(issue, "MONGO_URL").is_none());
        // Owner references and selectors.
        for d in &ds {
            let owner = &d.metadata.owner_references.as_ref().unwrap()[0];
            assert_eq!(
                (owner.kind.as_str(), owner.controller),
                ("CampusPlatform", Some(true))
            );
            let sel = d
                .spec
                .as_ref()
                .unwrap()
                .selector
                .match_labels
                .as_ref()
                .unwrap();
            let pod = pod_labels(d);
            assert!(
                sel.iter().all(|(k, v)| pod.get(k) == Some(v)),
                "{}",
                d.name_any()
            );
        }
    }

    #[test]
    fn an_external_autoscaler_owns_the_replicas() {
        let yaml = format!(
            "{MINIMAL}{}",
            r#"
  content:
    groups:
      inspection: {autoscaling: {mode: External, maxReplicas: 3}}
  coupon: {enabled: false}
  log: {enabled: false}
  logging: {processor: Native, filebeat: {enabled: false}}
"#
        );
        let inputs = BuildInputs::new("0.1.0");
        // (whatever the lag reading said: External never sets replicas)
        let ds = deployments_of(&scaled(&yaml, "blue-content-inspection", 2), &inputs);
        let replicas = |name: &str| {
            ds.iter()
                .find(|d| d.name_any() == name)
                .and_then(|d| d.spec.as_ref().unwrap().replicas)
        };
        assert_eq!(replicas("blue-content-inspection"), None);
        assert_eq!(replicas("blue-content-cache"), Some(1));
        assert_eq!(replicas("blue-content-api"), Some(1));
    }

    #[test]
    fn overrides_images_env_resources_and_scaled_replicas() {
        let yaml = format!(
            "{MINIMAL}{}",
            r#"
  openai: {apiKeySecretRef: {name: ai, key: key}}
  content:
    image: registry.local/content:dev
    replicas: 3
    env: [{name: RUST_LOG, value: debug}, {name: EXTRA, value: "1"}]
    resources: {limits: {memory: 256Mi}}
    groups:
      inspection: {replicas: 2, resources: {limits: {memory: 64Mi}}}
      cache: {autoscaling: {minReplicas: 2, maxReplicas: 5}}
  coupon: {enabled: false}
  log: {enabled: false}
  logging: {processor: Native, filebeat: {enabled: false}}
"#
        );
        let inputs = BuildInputs::new("0.1.0");
        let ds = deployments_of(&scaled(&yaml, "blue-content-inbox", 4), &inputs);
        let names: Vec<_> = ds.iter().map(|d| d.name_any()).collect();
        assert_eq!(
            names,
            [
                "blue-content-api",
                "blue-content-inspection",
                "blue-content-cache",
                "blue-content-inbox",
                "blue-content-index",
                "blue-log-index"
            ]
        );
        let replicas: Vec<_> = ds
            .iter()
            .map(|d| d.spec.as_ref().unwrap().replicas.unwrap())
            .collect();
        assert_eq!(replicas, [3, 2, 2, 4, 1, 1]);
        let api = container(&ds[0]);
        assert_eq!(api.image.as_deref(), Some("registry.local/content:dev"));
        let rust_log: Vec<_> = api
            .env
            .as_ref()
            .unwrap()
            .iter()
            .filter(|e| e.name == "RUST_LOG")
            .collect();
        assert_eq!(rust_log.len(), 1);
        assert_eq!(rust_log[0].value.as_deref(), Some("debug"));
        assert!(env_of(api, "OPENAI_API_KEY").is_some());
        let mem = |c: &Container| {
            c.resources.as_ref().unwrap().limits.as_ref().unwrap()["memory"]
                .0
                .clone()
        };
        assert_eq!(mem(api), "256Mi");
        assert_eq!(mem(container(&ds[1])), "64Mi");
        assert_eq!(mem(container(&ds[2])), "256Mi");
        let indexer = container(&ds[5]);
        assert_eq!(indexer.image.as_deref(), Some("campus-log:0.1.0"));
        assert_eq!(indexer.args.as_deref().unwrap(), ["worker", "index"]);
    }

    #[test]
    fn the_operators_image_registry_prefixes_only_the_default_images() {
        let yaml = format!(
            "{MINIMAL}  coupon: {{image: \"mirror.example.com/coupon:dev\"}}\n  logging: {{processor: Native}}\n"
        );
        let mut inputs = BuildInputs::new("0.1.0");
        inputs.image_registry = "registry.example.com/campus/".to_owned();
        let images: Vec<(String, String)> = deployments(&yaml, &inputs)
            .iter()
            .map(|d| (d.name_any(), container(d).image.clone().unwrap()))
            .collect();
        let image = |name: &str| images.iter().find(|(n, _)| n == name).unwrap().1.as_str();
        assert_eq!(
            image("blue-content-api"),
            "registry.example.com/campus/campus-content:0.1.0"
        );
        assert_eq!(
            image("blue-content-cache"),
            "registry.example.com/campus/campus-content:0.1.0"
        );
        assert_eq!(
            image("blue-log-index"),
            "registry.example.com/campus/campus-log:0.1.0"
        );
        // A platform's own image is used as it is, for its API and its workers.
        assert_eq!(image("blue-coupon-api"), "mirror.example.com/coupon:dev");
        assert_eq!(image("blue-coupon-issue"), "mirror.example.com/coupon:dev");
        // Empty (the default): the bare names, as before.
        let bare = deployments(MINIMAL, &BuildInputs::new("0.1.0"));
        assert_eq!(
            container(&bare[0]).image.as_deref(),
            Some("campus-content:0.1.0")
        );
    }

    fn secret_of(c: &Container, name: &str) -> Option<(String, String)> {
        let r = env_of(c, name)?
            .value_from
            .as_ref()?
            .secret_key_ref
            .as_ref()?;
        Some((r.name.clone(), r.key.clone()))
    }

    #[test]
    fn kafka_credentials_come_from_their_secret_never_from_the_config_map() {
        let inputs = BuildInputs::new("0.1.0");
        let yaml = MINIMAL.replace(
            r#"kafka: {brokers: "kafka:9092"}"#,
            r#"kafka: {brokers: "kafka:9092", properties: {security.protocol: SASL_SSL, sasl.mechanism: PLAIN}, propertiesSecretRef: {name: kafka-credentials}}"#,
        );
        let ds = deployments(&yaml, &inputs);
        for d in &ds {
            let c = container(d);
            if d.name_any() == "blue-logstash" {
                let sources = c.env_from.iter().flatten();
                assert!(
                    sources.into_iter().all(|s| s.secret_ref.is_none()),
                    "not Logstash"
                );
                continue;
            }
            let sources = c.env_from.as_ref().unwrap();
            // The ConfigMap first, then the Secret, whose keys become KAFKA_PROPERTY_<key>.
            assert_eq!(sources.len(), 2, "{}", d.name_any());
            assert!(sources[0].config_map_ref.is_some());
            let secret = sources[1].secret_ref.as_ref().unwrap();
            assert_eq!(secret.name, "kafka-credentials");
            assert_eq!(secret.optional, Some(false));
            assert_eq!(sources[1].prefix.as_deref(), Some("KAFKA_PROPERTY_"));
        }
        let p = model(&yaml);
        let maps = crate::build::config_map::all(&p);
        let cm = maps
            .iter()
            .find(|m| m.name_any() == "blue-content-config")
            .unwrap();
        assert_eq!(
            cm.data.as_ref().unwrap()["KAFKA_PROPERTIES"],
            "sasl.mechanism=PLAIN,security.protocol=SASL_SSL"
        );
        // Without the reference, no Secret is read.
        for d in deployments(MINIMAL, &inputs) {
            let sources = container(&d).env_from.iter().flatten();
            assert!(sources.into_iter().all(|s| s.secret_ref.is_none()));
        }
    }

    #[test]
    fn redis_and_elasticsearch_urls_come_from_their_secrets_when_referenced() {
        let inputs = BuildInputs::new("0.1.0");
        let plain = deployments(MINIMAL, &inputs);
        for d in &plain {
            let c = container(d);
            assert!(secret_of(c, "REDIS_URL").is_none(), "{}", d.name_any());
            assert!(
                secret_of(c, "ELASTICSEARCH_URL").is_none(),
                "{}",
                d.name_any()
            );
        }
        let ds = deployments(&with_secret_urls(), &inputs);
        let redis = Some(("campus-redis".to_owned(), "url".to_owned()));
        let es = Some(("campus-es".to_owned(), "url".to_owned()));
        let by_name = |n: &str| container(ds.iter().find(|d| d.name_any() == n).unwrap());
        // Who reads what: the same split as the plain URLs in the services' ConfigMaps.
        for (name, wants_redis, wants_es) in [
            ("blue-content-api", true, true),
            ("blue-content-inspection", true, true),
            ("blue-content-cache", true, true),
            ("blue-content-index", true, true),
            ("blue-coupon-api", true, false),
            ("blue-coupon-issue", true, false),
            ("blue-log-api", false, true),
            ("blue-logstash", false, true),
        ] {
            let c = by_name(name);
            let want = |yes: bool, v: &Option<(String, String)>| if yes { v.clone() } else { None };
            assert_eq!(
                secret_of(c, "REDIS_URL"),
                want(wants_redis, &redis),
                "{name}"
            );
            assert_eq!(
                secret_of(c, "ELASTICSEARCH_URL"),
                want(wants_es, &es),
                "{name}"
            );
        }
        // Logstash keeps its JVM options next to the Secret.
        assert!(env_of(by_name("blue-logstash"), "LS_JAVA_OPTS").is_some());
        // The native indexer is a log worker: it reads the Secret as well.
        let native = deployments(
            &format!("{}  logging: {{processor: Native}}\n", with_secret_urls()),
            &inputs,
        );
        let indexer = native
            .iter()
            .find(|d| d.name_any() == "blue-log-index")
            .unwrap();
        assert_eq!(secret_of(container(indexer), "ELASTICSEARCH_URL"), es);
        // A user's own REDIS_URL still replaces the operator's.
        let own = deployments(
            &format!(
                "{}  coupon:\n    env: [{{name: REDIS_URL, value: \"redis://mine:6379\"}}]\n",
                with_secret_urls()
            ),
            &inputs,
        );
        let issue = container(
            own.iter()
                .find(|d| d.name_any() == "blue-coupon-api")
                .unwrap(),
        );
        let redis_env: Vec<_> = issue
            .env
            .as_ref()
            .unwrap()
            .iter()
            .filter(|e| e.name == "REDIS_URL")
            .collect();
        assert_eq!(redis_env.len(), 1);
        assert_eq!(redis_env[0].value.as_deref(), Some("redis://mine:6379"));
    }

    #[test]
    fn logstash_starts_after_the_access_log_indices_are_prepared() {
        let inputs = BuildInputs::new("0.1.0");
        let init = |yaml: &str| {
            let ds = deployments(yaml, &inputs);
            let d = ds.iter().find(|d| d.name_any() == "blue-logstash").unwrap();
            let mut inits = d
                .spec
                .clone()
                .unwrap()
                .template
                .spec
                .unwrap()
                .init_containers
                .unwrap();
            assert_eq!(inits.len(), 1);
            inits.remove(0)
        };
        // The default pipeline: the log image prepares the alias `access-log` on the spec's URL.
        let c = init(MINIMAL);
        assert_eq!(c.name, "prepare-indices");
        assert_eq!(c.image.as_deref(), Some("campus-log:0.1.0"));
        assert_eq!(c.args, Some(vec!["prepare".to_owned()]));
        assert_eq!(
            env_of(&c, "LOG_INDEX_PREFIX").and_then(|e| e.value.as_deref()),
            Some("access-log")
        );
        assert_eq!(
            env_of(&c, "ELASTICSEARCH_URL").and_then(|e| e.value.as_deref()),
            Some("http://es:9200")
        );
        // The URL from its Secret, as Logstash reads it.
        let c = init(&with_secret_urls());
        assert_eq!(
            secret_of(&c, "ELASTICSEARCH_URL"),
            Some(("campus-es".to_owned(), "url".to_owned()))
        );
        // Every pipeline that writes access logs, and only those; without the log API too.
        let c = init(&format!(
            "{MINIMAL}  log: {{enabled: false}}\n  logging:\n    logstash:\n      pipelines:\n        \
             - {{name: a, indexPrefix: logs-a}}\n        - {{name: other, topic: audit, indexPrefix: audit}}\n        \
             - {{name: b, indexPrefix: logs-b}}\n"
        ));
        assert_eq!(c.image.as_deref(), Some("campus-log:0.1.0"));
        assert_eq!(
            env_of(&c, "LOG_INDEX_PREFIX").and_then(|e| e.value.as_deref()),
            Some("logs-a")
        );
        assert_eq!(
            c.args,
            Some(vec![
                "prepare".to_owned(),
                "--also-index-prefix".to_owned(),
                "logs-b".to_owned()
            ])
        );
        // The native indexer prepares its own: no Logstash, no init container.
        assert!(
            deployments(
                &format!("{MINIMAL}  logging: {{processor: Native}}\n"),
                &inputs
            )
            .iter()
            .all(|d| d
                .spec
                .clone()
                .unwrap()
                .template
                .spec
                .unwrap()
                .init_containers
                .is_none())
        );
    }

    #[test]
    fn switching_to_or_between_secret_references_changes_the_pod_templates() {
        let inputs = BuildInputs::new("0.1.0");
        let template = |d: &Deployment| d.spec.as_ref().unwrap().template.clone();
        let plain = deployments(MINIMAL, &inputs);
        let secret = deployments(&with_secret_urls(), &inputs);
        let other = deployments(
            &with_secret_urls().replace("campus-redis", "redis-2"),
            &inputs,
        );
        let hash = |d: &Deployment| {
            template(d).metadata.unwrap().annotations.unwrap()[CONFIG_HASH_ANNOTATION].clone()
        };
        for ((p, s), o) in plain.iter().zip(&secret).zip(&other) {
            let name = p.name_any();
            assert_ne!(template(p), template(s), "{name}: url → urlSecretRef");
            let redis_reader = !name.contains("log");
            assert_eq!(
                template(s) != template(o),
                redis_reader,
                "{name}: another Redis Secret"
            );
            // The URL left the ConfigMap, so the config hash moved too (the Secret's env var
            // itself is in the pod template, which rolls the pods on its own).
            if name != "blue-logstash" {
                assert_ne!(hash(p), hash(s), "{name}");
            }
        }
    }

    #[test]
    fn config_changes_roll_the_hash_but_pipeline_edits_do_not_restart_logstash() {
        let inputs = BuildInputs::new("0.1.0");
        let hash = |d: &Deployment| {
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
        };
        let before = deployments(MINIMAL, &inputs);
        let changed = deployments(&MINIMAL.replace("redis:6379", "redis2:6379"), &inputs);
        assert_ne!(
            hash(&before[0]),
            hash(&changed[0]),
            "content config changed"
        );
        assert_ne!(hash(&before[1]), hash(&changed[1]), "coupon config changed");
        assert_eq!(hash(&before[2]), hash(&changed[2]), "log config unchanged");
        let a = Desired::build(&model(MINIMAL), &inputs);
        let b = Desired::build(
            &model(&format!(
                "{MINIMAL}  logging:\n    logstash:\n      pipelines: [{{name: access-log, indexPrefix: other}}]\n"
            )),
            &inputs,
        );
        let ls = |d: &Desired| {
            d.deployments
                .iter()
                .find(|d| d.name_any() == "blue-logstash")
                .cloned()
                .unwrap()
        };
        assert_eq!(hash(&ls(&a)), hash(&ls(&b)));
        let pipes = |d: &Desired| {
            d.config_maps
                .iter()
                .find(|m| m.name_any() == "blue-logstash-pipelines")
                .unwrap()
                .data
                .clone()
        };
        assert_ne!(pipes(&a), pipes(&b));
    }
}
