//! What a spec implies, before any Kubernetes object: the platform's topics (with their full,
//! prefixed names) and its consumer-group workers. Pure; the builders and the topic reconciler
//! both read it. The workers, their groups, topics and dead-letter topics come from the contract
//! table ([`campus_contract::WORKERS`]) the services' command lines read as well.

/// Which Campus service a workload belongs to.
pub use campus_contract::Service;
/// `prefix.name`, or `name` with an empty prefix (as the services' `KafkaArgs::name`).
pub use campus_contract::prefixed as full_name;
use campus_contract::{self as contract, dlq_topic, group, topic};

use kube::ResourceExt;

use crate::crd::{CampusPlatform, CampusPlatformSpec, GroupSpec, ProcessorKind, ScaleDecision};

/// A topic as the platform wants it.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedTopic {
    /// Name before the prefix (`post.original`, `post.original.dlq.inspection`).
    pub logical: String,
    /// Name in Kafka (`blue.post.original`, `blue.post.original.dlq.blue.inspection`).
    pub full: String,
    pub partitions: i32,
    pub replication: i32,
    pub config: Vec<(String, String)>,
}

/// A consumer-group worker Deployment: what the spec implies, and what lag-based scaling read
/// and decided for it in this reconcile.
#[derive(Debug, Clone, PartialEq)]
pub struct Worker {
    pub service: Service,
    /// Component label and name suffix: `content-inspection`, `log-index`.
    pub component: String,
    /// The Deployment's name: `<platform>-<component>` (`blue-content-inspection`).
    pub name: String,
    /// Arguments after the binary: `worker inspect`.
    pub args: Vec<String>,
    /// Full group name.
    pub group: String,
    /// Full names of the topics the group consumes.
    pub topics: Vec<String>,
    pub spec: GroupSpec,
    /// The worker's contract entry.
    pub contract: &'static contract::Worker,
    /// The replicas lag-based scaling chose (`autoscaling.mode: Lag`); `None`: not scaled in
    /// this reconcile (no autoscaling, or neither a lag reading nor a Deployment to keep).
    pub scaled_replicas: Option<i32>,
    /// The group's lag, when autoscaled and read in this reconcile.
    pub lag: Option<i64>,
    /// The change of replicas lag-based scaling made in this reconcile.
    pub last_scale: Option<ScaleDecision>,
    /// Pod customisation: empty here; validation sets the platform's, the service's and the
    /// group's `template` merged in that order.
    pub template: crate::model::PodTemplate,
}

/// Everything the spec implies about Kafka.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub prefix: String,
    pub topics: Vec<PlannedTopic>,
    pub workers: Vec<Worker>,
}

/// The spec's settings of a contract worker, or `None` when the spec does not run it.
fn group_spec<'a>(spec: &'a CampusPlatformSpec, w: &contract::Worker) -> Option<&'a GroupSpec> {
    let content = spec.content.common.enabled.then_some(&spec.content.groups);
    match w.group {
        group::INSPECTION => content.map(|g| &g.inspection),
        group::CACHE => content.map(|g| &g.cache),
        group::INBOX => content.map(|g| &g.inbox),
        group::INDEX => content.map(|g| &g.index),
        group::COUPON_ISSUE => spec
            .coupon
            .common
            .enabled
            .then_some(&spec.coupon.groups.issue),
        group::LOG_INDEX => {
            (spec.logging.processor == ProcessorKind::Native).then_some(&spec.logging.native)
        }
        _ => None,
    }
}

fn add<'a>(topics: &mut Vec<&'a str>, t: &'a str) {
    if !topics.contains(&t) {
        topics.push(t);
    }
}

impl Plan {
    pub fn of(cr: &CampusPlatform) -> Plan {
        let spec = &cr.spec;
        let prefix = cr.kafka_prefix();
        let full = |logical: &str| full_name(&prefix, logical);
        // Logical topics, and the (logical topic, logical group) pairs consumed.
        let mut topics: Vec<&str> = Vec::new();
        let mut consumed: Vec<(String, String)> = Vec::new();
        // A service's topics: what its API writes, what its workers consume and write.
        for (service, enabled) in [
            (Service::Content, spec.content.common.enabled),
            (Service::Coupon, spec.coupon.common.enabled),
        ] {
            if !enabled {
                continue;
            }
            let api = service.api().produces.into_iter();
            let workers = service
                .workers()
                .flat_map(|w| w.consumes.iter().copied().chain(w.produces));
            for t in api.chain(workers) {
                add(&mut topics, t);
            }
        }
        let mut workers = Vec::new();
        for w in contract::WORKERS {
            let Some(gspec) = group_spec(spec, w) else {
                continue;
            };
            workers.push(Worker {
                service: w.service,
                component: w.name.to_owned(),
                name: crate::build::child_name_of(&cr.name_any(), w.name),
                args: w.command.iter().map(|s| (*s).to_owned()).collect(),
                group: full(w.group),
                topics: w.consumes.iter().map(|t| full(t)).collect(),
                spec: gspec.clone(),
                contract: w,
                scaled_replicas: None,
                lag: None,
                last_scale: None,
                template: Default::default(),
            });
            consumed.extend(
                w.consumes
                    .iter()
                    .map(|t| ((*t).to_owned(), w.group.to_owned())),
            );
        }
        let logging = &spec.logging;
        if logging.filebeat.enabled || logging.processor != ProcessorKind::None {
            add(&mut topics, topic::ACCESS_LOG);
        }
        if logging.processor == ProcessorKind::Logstash {
            for p in &logging.logstash.pipelines {
                add(&mut topics, &p.topic);
                consumed.push((p.topic.clone(), p.group.clone()));
            }
        }

        let t = &spec.topics;
        let shape = |logical: &str, full_name: String, default_partitions: i32| {
            let o = t.overrides.iter().find(|o| o.name == logical);
            let mut config: Vec<(String, String)> = t
                .config
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            if let Some(o) = o {
                for (k, v) in &o.config {
                    config.retain(|(ek, _)| ek != k);
                    config.push((k.clone(), v.clone()));
                }
            }
            PlannedTopic {
                logical: logical.to_owned(),
                full: full_name,
                partitions: o.and_then(|o| o.partitions).unwrap_or(default_partitions),
                replication: o
                    .and_then(|o| o.replication_factor)
                    .unwrap_or(t.replication_factor),
                config,
            }
        };
        let mut planned: Vec<PlannedTopic> = topics
            .iter()
            .map(|l| shape(l, full(l), t.partitions))
            .collect();
        if t.dead_letter {
            for (tp, grp) in &consumed {
                let logical = dlq_topic(tp, grp);
                if planned.iter().any(|p| p.logical == logical) {
                    continue;
                }
                planned.push(shape(&logical, dlq_topic(&full(tp), &full(grp)), 1));
            }
        }
        Plan {
            prefix,
            topics: planned,
            workers,
        }
    }

    /// Logical names a topic override may use.
    pub fn logical_topics(&self) -> impl Iterator<Item = &str> {
        self.topics.iter().map(|t| t.logical.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::fixtures::{MINIMAL, platform};

    /// The contract test, operator side: each planned worker runs a contract entry's command of
    /// its service's binary and consumes as that entry says (group and topics with the prefix,
    /// their dead-letter topics planned); a spec that runs everything plans every entry.
    #[test]
    fn the_default_prefix_holds_the_namespace_and_is_pinned_once_used() {
        use crate::crd::{CampusPlatformStatus, TopicStatus};
        let mut cr = platform(MINIMAL);
        assert_eq!(Plan::of(&cr).prefix, "campus.blue");
        let mut other = platform(MINIMAL);
        other.metadata.namespace = Some("shop".into());
        assert_ne!(
            Plan::of(&other).topics[0].full,
            Plan::of(&cr).topics[0].full
        );
        // A platform an older operator reconciled (topics in status, no prefix pinned) keeps
        // the name alone; once pinned, the status wins over the default.
        cr.status = Some(CampusPlatformStatus {
            topics: vec![TopicStatus {
                name: "blue.post.original".into(),
                ..TopicStatus::default()
            }],
            ..CampusPlatformStatus::default()
        });
        assert_eq!(Plan::of(&cr).prefix, "blue");
        cr.status.as_mut().unwrap().kafka_prefix = Some("pinned".into());
        assert_eq!(Plan::of(&cr).prefix, "pinned");
        cr.spec.kafka.prefix = Some(String::new());
        assert_eq!(Plan::of(&cr).prefix, "");
    }

    #[test]
    fn every_planned_worker_is_its_contract_entry() {
        let cr = platform(&format!("{MINIMAL}  logging: {{processor: Native}}\n"));
        let plan = Plan::of(&cr);
        let full = |l: &str| full_name("campus.blue", l);
        let planned: Vec<String> = plan.topics.iter().map(|t| t.full.clone()).collect();
        for w in &plan.workers {
            let args: Vec<&str> = w.args.iter().map(String::as_str).collect();
            let c = contract::Worker::find(w.service.binary(), &args).unwrap_or_else(|| {
                panic!(
                    "{}: `{}` is no contract worker",
                    w.component,
                    args.join(" ")
                )
            });
            assert_eq!(w.contract, c, "{}", w.component);
            assert_eq!(w.component, c.name);
            assert_eq!(w.name, format!("blue-{}", c.name), "the Deployment's name");
            assert_eq!(w.group, full(c.group), "{}", w.component);
            let topics: Vec<String> = c.consumes.iter().map(|t| full(t)).collect();
            assert_eq!(w.topics, topics, "{}", w.component);
            for t in c.consumes.iter().chain(&c.produces) {
                assert!(
                    planned.contains(&full(t)),
                    "{}: {t} not planned",
                    w.component
                );
            }
            for t in &w.topics {
                let dlq = dlq_topic(t, &w.group);
                assert!(planned.contains(&dlq), "{}: {dlq} not planned", w.component);
            }
        }
        let names: Vec<&str> = plan.workers.iter().map(|w| w.component.as_str()).collect();
        let all: Vec<&str> = contract::WORKERS.iter().map(|w| w.name).collect();
        assert_eq!(
            names, all,
            "a spec that runs everything plans every contract worker"
        );
    }

    #[test]
    fn disabled_services_plan_no_workers_or_topics() {
        let cr = platform(&format!(
            "{MINIMAL}  content: {{enabled: false}}\n  logging: {{processor: None, filebeat: {{enabled: false}}}}\n"
        ));
        let plan = Plan::of(&cr);
        let names: Vec<&str> = plan.workers.iter().map(|w| w.component.as_str()).collect();
        assert_eq!(names, ["coupon-issue"]);
        let topics: Vec<&str> = plan.logical_topics().collect();
        assert_eq!(
            topics,
            ["coupon.request", "coupon.request.dlq.coupon-issue"]
        );
    }
}
