//! What a spec implies, before any Kubernetes object: the platform's topics (with their full,
//! prefixed names) and its consumer-group workers. Pure; the builders and the topic reconciler
//! both read it.

use campus_common::kafka::dlq_topic;
use campus_common::logschema;

use crate::crd::{CampusPlatform, GroupSpec, ProcessorKind};

/// Logical topic names (before the prefix), as the services use them.
pub mod topic {
    pub const POST_ORIGINAL: &str = "post.original";
    pub const POST_INSPECTED: &str = "post.inspected";
    pub const COUPON_REQUEST: &str = "coupon.request";
}

/// Logical consumer-group names (before the prefix).
pub mod group {
    pub const INSPECTION: &str = "inspection";
    pub const CACHE: &str = "cache";
    pub const INBOX: &str = "inbox";
    pub const INDEX: &str = "index";
    pub const COUPON_ISSUE: &str = "coupon-issue";
    pub const LOG_INDEX: &str = "log-index";
}

/// Which Campus service a workload belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Service {
    Content,
    Coupon,
    Log,
}

impl Service {
    /// `content`, `coupon`, `log`: part of object names and labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Service::Content => "content",
            Service::Coupon => "coupon",
            Service::Log => "log",
        }
    }
    /// The binary (and image name) of the service.
    pub fn binary(self) -> &'static str {
        match self {
            Service::Content => "campus-content",
            Service::Coupon => "campus-coupon",
            Service::Log => "campus-log",
        }
    }
}

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

/// A consumer-group worker Deployment.
#[derive(Debug, Clone, PartialEq)]
pub struct Worker {
    pub service: Service,
    /// Component label and name suffix: `content-inspection`, `log-index`.
    pub component: String,
    /// Arguments after the binary: `worker inspect`.
    pub args: Vec<String>,
    /// Full group name.
    pub group: String,
    /// Full names of the topics the group consumes.
    pub topics: Vec<String>,
    pub spec: GroupSpec,
}

/// Everything the spec implies about Kafka.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub prefix: String,
    pub topics: Vec<PlannedTopic>,
    pub workers: Vec<Worker>,
}

/// `prefix.name`, or `name` with an empty prefix (as `KafkaArgs::name`).
pub fn full_name(prefix: &str, logical: &str) -> String {
    if prefix.is_empty() {
        logical.to_owned()
    } else {
        format!("{prefix}.{logical}")
    }
}

impl Plan {
    pub fn of(cr: &CampusPlatform) -> Plan {
        let spec = &cr.spec;
        let prefix = cr.kafka_prefix();
        let full = |logical: &str| full_name(&prefix, logical);
        // (logical topic, logical group) pairs consumed, and the topics written.
        let mut topics: Vec<&str> = Vec::new();
        let mut consumed: Vec<(String, String)> = Vec::new();
        let mut workers = Vec::new();
        let mut worker = |service: Service,
                          component: &str,
                          args: &[&str],
                          group: &str,
                          topic: &str,
                          gspec: &GroupSpec| {
            workers.push(Worker {
                service,
                component: component.to_owned(),
                args: args.iter().map(|s| (*s).to_owned()).collect(),
                group: full(group),
                topics: vec![full(topic)],
                spec: gspec.clone(),
            });
        };
        if spec.content.enabled {
            let g = &spec.content.groups;
            topics.extend([topic::POST_ORIGINAL, topic::POST_INSPECTED]);
            for (grp, tp, sub, gs) in [
                (
                    group::INSPECTION,
                    topic::POST_ORIGINAL,
                    "inspect",
                    &g.inspection,
                ),
                (group::CACHE, topic::POST_INSPECTED, "cache", &g.cache),
                (group::INBOX, topic::POST_INSPECTED, "inbox", &g.inbox),
                (group::INDEX, topic::POST_INSPECTED, "index", &g.index),
            ] {
                worker(
                    Service::Content,
                    &format!("content-{grp}"),
                    &["worker", sub],
                    grp,
                    tp,
                    gs,
                );
                consumed.push((tp.to_owned(), grp.to_owned()));
            }
        }
        if spec.coupon.enabled {
            topics.push(topic::COUPON_REQUEST);
            worker(
                Service::Coupon,
                "coupon-issue",
                &["worker", "issue"],
                group::COUPON_ISSUE,
                topic::COUPON_REQUEST,
                &spec.coupon.groups.issue,
            );
            consumed.push((
                topic::COUPON_REQUEST.to_owned(),
                group::COUPON_ISSUE.to_owned(),
            ));
        }
        let logging = &spec.logging;
        if logging.filebeat.enabled || logging.processor != ProcessorKind::None {
            topics.push(logschema::TOPIC);
        }
        match logging.processor {
            ProcessorKind::Native => {
                worker(
                    Service::Log,
                    "log-index",
                    &["worker", "index"],
                    group::LOG_INDEX,
                    logschema::TOPIC,
                    &logging.native,
                );
                consumed.push((logschema::TOPIC.to_owned(), group::LOG_INDEX.to_owned()));
            }
            ProcessorKind::Logstash => {
                for p in &logging.logstash.pipelines {
                    if !topics.contains(&p.topic.as_str()) {
                        topics.push(&p.topic);
                    }
                    consumed.push((p.topic.clone(), p.group.clone()));
                }
            }
            ProcessorKind::None => {}
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
