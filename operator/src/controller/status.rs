//! The platform's status: conditions from what the reconcile saw, written only when it changed.
//! Pure except [`write`].

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::{Api, Patch};
use serde_json::json;

use super::Error;
use crate::build::deployment::{api_name, logstash_name};
use crate::build::service::{API_SERVICE_PORT, coupon_admin_name};
use crate::crd::{CampusPlatform, CampusPlatformStatus, Endpoint, TopicStatus, WorkloadStatus};
use crate::model::{Platform, Processor};
use crate::plan::Service;
use crate::topics::{TopicError, TopicsOutcome};

pub const READY: &str = "Ready";
pub const TOPICS_READY: &str = "TopicsReady";
pub const WORKLOADS_READY: &str = "WorkloadsReady";
pub const LOGGING_READY: &str = "LoggingReady";

/// A condition's state before its timestamps are filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cond {
    pub type_: &'static str,
    pub ok: bool,
    pub reason: String,
    pub message: String,
}

impl Cond {
    pub fn new(
        type_: &'static str,
        ok: bool,
        reason: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            type_,
            ok,
            reason: reason.into(),
            message: message.into(),
        }
    }
}

/// Whether a Deployment has rolled out its current spec and has every replica available.
pub fn deployment_status(d: &Deployment) -> WorkloadStatus {
    let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let st = d.status.clone().unwrap_or_default();
    let current = st.observed_generation.unwrap_or(0) >= d.metadata.generation.unwrap_or(0);
    let ready_replicas = st.ready_replicas.unwrap_or(0);
    let ready = current
        && st.updated_replicas.unwrap_or(0) >= want
        && st.available_replicas.unwrap_or(0) >= want
        && st.replicas.unwrap_or(0) <= want;
    WorkloadStatus {
        name: d.name_any(),
        kind: "Deployment".to_owned(),
        replicas: want,
        ready_replicas,
        ready,
        group: d
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get("campus.dev/consumer-group").cloned()),
        lag: None,
        last_scale: None,
        dead_letters: None,
    }
}

/// Whether a DaemonSet runs its current spec, ready, on every node it should.
pub fn daemon_set_status(d: &DaemonSet) -> WorkloadStatus {
    let st = d.status.clone().unwrap_or_default();
    let current = st.observed_generation.unwrap_or(0) >= d.metadata.generation.unwrap_or(0)
        && st.observed_generation.is_some();
    let desired = st.desired_number_scheduled;
    let ready = current
        && st.number_ready >= desired
        && st.updated_number_scheduled.unwrap_or(0) >= desired;
    WorkloadStatus {
        name: d.name_any(),
        kind: "DaemonSet".to_owned(),
        replicas: desired,
        ready_replicas: st.number_ready,
        ready,
        group: None,
        lag: None,
        last_scale: None,
        dead_letters: None,
    }
}

fn workload_cond(type_: &'static str, what: &str, ws: &[&WorkloadStatus]) -> Cond {
    if ws.is_empty() {
        return Cond::new(type_, true, "Disabled", format!("no {what} is enabled"));
    }
    let waiting: Vec<String> = ws
        .iter()
        .filter(|w| !w.ready)
        .map(|w| format!("{} ({}/{})", w.name, w.ready_replicas, w.replicas))
        .collect();
    if waiting.is_empty() {
        Cond::new(
            type_,
            true,
            "AllReady",
            format!("{} {what} ready", ws.len()),
        )
    } else {
        Cond::new(
            type_,
            false,
            "NotReady",
            format!("waiting for {}", waiting.join(", ")),
        )
    }
}

/// The result of the topic pass, as the status sees it.
pub enum TopicsSeen<'a> {
    Done(&'a TopicsOutcome),
    Failed(&'a TopicError, &'a [String]),
}

/// The conditions of a reconciled platform. `logging` names the logging workloads.
pub fn conditions(
    workloads: &[WorkloadStatus],
    logging: &[String],
    topics: &TopicsSeen<'_>,
) -> Vec<Cond> {
    let (log_ws, svc_ws): (Vec<&WorkloadStatus>, Vec<&WorkloadStatus>) =
        workloads.iter().partition(|w| logging.contains(&w.name));
    let topics_cond = match topics {
        TopicsSeen::Done(o) => match o.problem() {
            Some((reason, message)) => Cond::new(TOPICS_READY, false, reason, message),
            None => Cond::new(TOPICS_READY, true, "AllReady", topics_ready_message(o)),
        },
        TopicsSeen::Failed(e, _) => Cond::new(TOPICS_READY, false, e.reason(), chain(e)),
    };
    let workloads_cond = workload_cond(WORKLOADS_READY, "service workloads", &svc_ws);
    let logging_cond = workload_cond(LOGGING_READY, "logging workloads", &log_ws);
    let parts = [&topics_cond, &workloads_cond, &logging_cond];
    let ready = match parts.iter().find(|c| !c.ok) {
        None => Cond::new(
            READY,
            true,
            "Ready",
            "topics, workloads and logging are ready",
        ),
        Some(c) => Cond::new(
            READY,
            false,
            c.type_.replace("Ready", "NotReady"),
            c.message.clone(),
        ),
    };
    vec![ready, topics_cond, workloads_cond, logging_cond]
}

/// An error and its causes on one line.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        // Some errors already print their cause; do not repeat it.
        let text = c.to_string();
        if !s.contains(&text) {
            s.push_str(": ");
            s.push_str(&text);
        }
        cur = c.source();
    }
    s
}

/// Turns conditions into API conditions, keeping `lastTransitionTime` of those whose status did
/// not change.
pub fn merge_conditions(
    previous: &[Condition],
    conds: &[Cond],
    generation: Option<i64>,
    now: Timestamp,
) -> Vec<Condition> {
    conds
        .iter()
        .map(|c| {
            let status = if c.ok { "True" } else { "False" };
            let last = previous
                .iter()
                .find(|p| p.type_ == c.type_ && p.status == status)
                .map(|p| p.last_transition_time.clone())
                .unwrap_or(Time(now));
            Condition {
                type_: c.type_.to_owned(),
                status: status.to_owned(),
                reason: c.reason.clone(),
                message: c.message.clone(),
                observed_generation: generation,
                last_transition_time: last,
            }
        })
        .collect()
}

/// Where the enabled APIs answer inside the cluster: `http://<Service>.<namespace>.svc:<port>`
/// for each API's Service and the coupon API's admin Service.
pub fn endpoints(p: &Platform) -> Vec<Endpoint> {
    let url = |service: &str, port: i32| format!("http://{service}.{}.svc:{port}", p.namespace);
    let mut out = Vec::new();
    for s in p.apis() {
        out.push(Endpoint {
            name: format!("{}-api", s.service.as_str()),
            url: url(&api_name(p, s.service), API_SERVICE_PORT),
        });
        if s.service == Service::Coupon {
            out.push(Endpoint {
                name: "coupon-admin".to_owned(),
                url: url(
                    &coupon_admin_name(p),
                    i32::from(campus_contract::port::ADMIN),
                ),
            });
        }
    }
    out
}

/// The dead-letter topics of each workload that consumes: a worker's (one per topic its group
/// reads), Logstash's (one per pipeline); only those planned (`topics.deadLetter`).
pub fn dead_letter_topics(platform: &Platform) -> Vec<(String, Vec<String>)> {
    let planned = |t: &String| platform.plan.topics.iter().any(|p| &p.full == t);
    let mut out: Vec<(String, Vec<String>)> = platform
        .plan
        .workers
        .iter()
        .map(|w| {
            let dlqs = w
                .topics
                .iter()
                .map(|t| campus_contract::dlq_topic(t, &w.group));
            (w.name.clone(), dlqs.filter(planned).collect())
        })
        .collect();
    if let Processor::Logstash(ls) = &platform.logging.processor {
        let dlqs = ls.pipelines.iter().map(|p| p.dlq_topic.clone());
        out.push((logstash_name(platform), dlqs.filter(planned).collect()));
    }
    out.retain(|(_, dlqs)| !dlqs.is_empty());
    out
}

/// A full status from its parts; the endpoints and the dead letters as the platform last showed
/// them (a reconcile that reads them sets them after).
pub fn build(
    cr: &CampusPlatform,
    conds: &[Cond],
    topics: Vec<TopicStatus>,
    workloads: Vec<WorkloadStatus>,
) -> CampusPlatformStatus {
    let previous = cr
        .status
        .as_ref()
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default();
    let generation = cr.metadata.generation;
    let topics_summary = (!topics.is_empty()).then(|| {
        format!(
            "{}/{}",
            topics.iter().filter(|t| t.ready).count(),
            topics.len()
        )
    });
    let workloads_summary = (!workloads.is_empty()).then(|| {
        format!(
            "{}/{}",
            workloads.iter().filter(|w| w.ready).count(),
            workloads.len()
        )
    });
    let last = cr.status.as_ref();
    CampusPlatformStatus {
        endpoints: last.map(|s| s.endpoints.clone()).unwrap_or_default(),
        dead_letters: last.and_then(|s| s.dead_letters),
        observed_generation: generation,
        conditions: merge_conditions(previous, conds, generation, Timestamp::now()),
        topics_summary,
        workloads_summary,
        topics,
        workloads,
        kafka_prefix: Some(cr.kafka_prefix()),
        // Kept as it was; a reconcile that applied Filebeat sets it (reconcile::write_status).
        filebeat_namespace: cr
            .status
            .as_ref()
            .and_then(|s| s.filebeat_namespace.clone()),
        retained_topics: last.map(|s| s.retained_topics.clone()).unwrap_or_default(),
    }
}

/// The topics a platform had (in its last status: listed or already retained) that `planned` no
/// longer names, sorted: kept in Kafka and in status until the platform is deleted.
pub fn retained_topics(last: Option<&CampusPlatformStatus>, planned: &[String]) -> Vec<String> {
    let Some(last) = last else {
        return Vec::new();
    };
    let mut retained: Vec<String> = last
        .topics
        .iter()
        .map(|t| &t.name)
        .chain(&last.retained_topics)
        .filter(|t| !planned.contains(t))
        .cloned()
        .collect();
    retained.sort();
    retained.dedup();
    retained
}

/// `N topics exist as specified`, and which are under-replicated: they take writes, but a broker
/// is down or behind (Strimzi and Kafka's own tools report it the same way, as a warning).
fn topics_ready_message(o: &crate::topics::TopicsOutcome) -> String {
    let mut message = format!("{} topics exist as specified", o.statuses.len());
    let degraded: Vec<String> = o
        .statuses
        .iter()
        .filter(|t| t.under_replicated_partitions > 0)
        .map(|t| {
            format!(
                "{} ({} of {})",
                t.name, t.under_replicated_partitions, t.partitions
            )
        })
        .collect();
    if !degraded.is_empty() {
        message.push_str("; under-replicated partitions: ");
        message.push_str(&degraded.join(", "));
    }
    message
}

/// Writes `status` unless it equals what the platform already shows. Returns whether it wrote.
pub async fn write(
    api: &Api<CampusPlatform>,
    cr: &CampusPlatform,
    status: CampusPlatformStatus,
) -> Result<bool, Error> {
    if cr.status.as_ref() == Some(&status) {
        return Ok(false);
    }
    let patch = json!({
        "apiVersion": "campus.dev/v1alpha1",
        "kind": "CampusPlatform",
        "status": status,
    });
    api.patch_status(
        &cr.name_any(),
        &super::apply::apply_params(),
        &Patch::Apply(&patch),
    )
    .await
    .map_err(|source| Error::Kube {
        action: "write the platform's status",
        source,
    })?;
    Ok(true)
}

/// The previous status of a condition, if any.
pub fn condition<'a>(cr: &'a CampusPlatform, type_: &str) -> Option<&'a Condition> {
    cr.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topics::{ProblemKind, TopicProblem};

    #[test]
    fn topics_the_spec_no_longer_names_are_retained_until_the_platform_goes() {
        let topic = |name: &str| TopicStatus {
            name: name.into(),
            ..Default::default()
        };
        let planned = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
        assert!(retained_topics(None, &planned(&["p.a"])).is_empty());
        // Logstash's dead-letter topic after a switch to the native indexer.
        let last = CampusPlatformStatus {
            topics: vec![topic("p.a"), topic("p.a.dlq.p.logstash")],
            ..Default::default()
        };
        let retained = retained_topics(Some(&last), &planned(&["p.a", "p.a.dlq.p.log-index"]));
        assert_eq!(retained, ["p.a.dlq.p.logstash"]);
        // Kept over later reconciles; planned again, no longer retained.
        let later = CampusPlatformStatus {
            topics: vec![topic("p.a"), topic("p.a.dlq.p.log-index")],
            retained_topics: retained,
            ..Default::default()
        };
        assert_eq!(
            retained_topics(Some(&later), &planned(&["p.a", "p.a.dlq.p.log-index"])),
            ["p.a.dlq.p.logstash"]
        );
        assert!(
            retained_topics(Some(&later), &planned(&["p.a", "p.a.dlq.p.logstash"]))
                .contains(&"p.a.dlq.p.log-index".to_owned())
        );
        assert!(
            !retained_topics(Some(&later), &planned(&["p.a", "p.a.dlq.p.logstash"]))
                .contains(&"p.a.dlq.p.logstash".to_owned())
        );
    }

    fn w(name: &str, ready: bool) -> WorkloadStatus {
        WorkloadStatus {
            name: name.into(),
            kind: "Deployment".into(),
            replicas: 1,
            ready_replicas: i32::from(ready),
            ready,
            group: None,
            lag: None,
            last_scale: None,
            dead_letters: None,
        }
    }

    #[test]
    fn ready_needs_every_part() {
        let outcome = TopicsOutcome {
            statuses: vec![TopicStatus {
                name: "t".into(),
                partitions: 3,
                replication_factor: 1,
                ready: true,
                message: None,
                ..TopicStatus::default()
            }],
            ..TopicsOutcome::default()
        };
        let logging = vec!["p-filebeat".to_owned()];
        let all = [w("p-content-api", true), w("p-filebeat", true)];
        let c = conditions(&all, &logging, &TopicsSeen::Done(&outcome));
        assert!(c.iter().all(|c| c.ok), "{c:?}");
        let some = [w("p-content-api", false), w("p-filebeat", true)];
        let c = conditions(&some, &logging, &TopicsSeen::Done(&outcome));
        assert_eq!(
            (c[0].ok, c[0].reason.as_str()),
            (false, "WorkloadsNotReady")
        );
        assert!(c[0].message.contains("p-content-api (0/1)"));
        assert!(c[3].ok);
        let problem = |kind, message: &str| TopicProblem {
            kind,
            message: message.into(),
        };
        let refused = TopicsOutcome {
            problems: vec![
                problem(ProblemKind::ConfigRejected, "bad value"),
                problem(ProblemKind::ChangeRefused, "never shrink"),
            ],
            ..outcome.clone()
        };
        let c = conditions(&all, &logging, &TopicsSeen::Done(&refused));
        assert_eq!((c[1].ok, c[1].reason.as_str()), (false, "ChangeRefused"));
        assert_eq!(c[1].message, "bad value; never shrink");
        assert_eq!(c[0].reason, "TopicsNotReady");
        let rejected = TopicsOutcome {
            problems: vec![problem(ProblemKind::ConfigRejected, "bad value")],
            ..outcome.clone()
        };
        let c = conditions(&all, &logging, &TopicsSeen::Done(&rejected));
        assert_eq!((c[1].ok, c[1].reason.as_str()), (false, "ConfigRejected"));
    }

    #[test]
    fn endpoints_name_every_enabled_api_and_the_coupon_admin() {
        use crate::build::fixtures::{MINIMAL, model};
        let urls = |yaml: &str| -> Vec<(String, String)> {
            endpoints(&model(yaml))
                .into_iter()
                .map(|e| (e.name, e.url))
                .collect()
        };
        let pair = |n: &str, u: &str| (n.to_owned(), u.to_owned());
        assert_eq!(
            urls(MINIMAL),
            [
                pair("content-api", "http://blue-content-api.campus.svc:80"),
                pair("coupon-api", "http://blue-coupon-api.campus.svc:80"),
                pair("coupon-admin", "http://blue-coupon-admin.campus.svc:8081"),
                pair("log-api", "http://blue-log-api.campus.svc:80"),
            ]
        );
        // The native indexer runs the log service without its API: no endpoint.
        let fewer = format!(
            "{MINIMAL}  coupon: {{enabled: false}}\n  log: {{enabled: false}}\n  logging: {{processor: Native}}\n"
        );
        assert_eq!(
            urls(&fewer),
            [pair("content-api", "http://blue-content-api.campus.svc:80")]
        );
    }

    #[test]
    fn every_consuming_workload_has_its_dead_letter_topics() {
        use crate::build::fixtures::{MINIMAL, model};
        let p = model(MINIMAL);
        let dlqs = dead_letter_topics(&p);
        let get = |name: &str| {
            dlqs.iter()
                .find(|(n, _)| n == name)
                .map(|(_, t)| t.clone())
                .unwrap_or_else(|| panic!("{name}: {dlqs:?}"))
        };
        let c = "campus.blue";
        assert_eq!(
            get("blue-content-inspection"),
            [format!("{c}.post.original.dlq.{c}.inspection")]
        );
        assert_eq!(
            get("blue-coupon-issue"),
            [format!("{c}.coupon.request.dlq.{c}.coupon-issue")]
        );
        assert_eq!(
            get("blue-logstash"),
            [format!("{c}.access-log.dlq.{c}.logstash")]
        );
        // Six workloads consume (five workers and Logstash); the APIs do not.
        assert_eq!(dlqs.len(), 6, "{dlqs:?}");
        // Without dead-letter topics there is nothing to read.
        let none = model(&format!("{MINIMAL}  topics: {{deadLetter: false}}\n"));
        assert!(dead_letter_topics(&none).is_empty());
    }

    #[test]
    fn transition_times_survive_unchanged_conditions() {
        let t0 = Timestamp::from_second(1_000).unwrap();
        let t1 = Timestamp::from_second(2_000).unwrap();
        let first = merge_conditions(&[], &[Cond::new(READY, false, "X", "x")], Some(1), t0);
        let same = merge_conditions(&first, &[Cond::new(READY, false, "Y", "y")], Some(2), t1);
        assert_eq!(same[0].last_transition_time, Time(t0));
        let flipped = merge_conditions(&same, &[Cond::new(READY, true, "Ready", "")], Some(2), t1);
        assert_eq!(flipped[0].last_transition_time, Time(t1));
    }
}
