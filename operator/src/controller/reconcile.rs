//! One reconciliation of a platform, top to bottom: finalizer dispatch, then [`apply`] or
//! [`cleanup`].

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use tracing::Instrument;

use super::status::{self, Cond, TopicsSeen};
use super::{Context, Error, FINALIZER, apply, validate};
use crate::build::{BuildInputs, Desired};
use crate::crd::{
    AutoscalingMode, CampusPlatform, DeletionPolicy, ScaleDecision, TopicStatus, WorkloadStatus,
};
use crate::lag;
use crate::model::{Platform, Processor};
use crate::plan::{Plan, PlannedTopic};
use crate::topics::{ProblemKind, TopicError, TopicsOutcome, kafka_args};

/// The longest one pass over a platform's topics may take.
const TOPICS_TIMEOUT: Duration = Duration::from_secs(30);

/// Entry point of the controller for one platform.
pub async fn reconcile(cr: Arc<CampusPlatform>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    let ns = cr.namespace().unwrap_or_default();
    let api: Api<CampusPlatform> = Api::namespaced(ctx.client.clone(), &ns);
    let span = tracing::info_span!("reconcile", platform = %cr.name_any(), namespace = %ns);
    // A new platform gets the finalizer and its children in this same reconcile (kube's
    // `finalizer` would add it and wait for the watch to bring the updated object back).
    let cr = match add_finalizer(&api, &cr).await {
        Ok(Some(updated)) => Arc::new(updated),
        Ok(None) => cr,
        Err(e) => {
            ctx.metrics.reconciled(started.elapsed());
            return Err(e);
        }
    };
    let result = finalizer(&api, FINALIZER, cr.clone(), |event| async {
        match event {
            Finalizer::Apply(cr) => apply(cr, ctx.clone()).await,
            Finalizer::Cleanup(cr) => cleanup(cr, ctx.clone()).await,
        }
    })
    .instrument(span)
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)));
    ctx.metrics.reconciled(started.elapsed());
    if result.is_ok() {
        ctx.succeeded(&cr);
    }
    result
}

/// Adds the finalizer to a platform that lacks it and is not being deleted (a merge patch that
/// names the resourceVersion it extends, so a concurrent change fails it) and returns the updated
/// platform; `None` when there is nothing to add.
async fn add_finalizer(
    api: &Api<CampusPlatform>,
    cr: &CampusPlatform,
) -> Result<Option<CampusPlatform>, Error> {
    if cr.metadata.deletion_timestamp.is_some() || cr.finalizers().iter().any(|f| f == FINALIZER) {
        return Ok(None);
    }
    let mut finalizers = cr.finalizers().to_vec();
    finalizers.push(FINALIZER.to_owned());
    // (with the resourceVersion read: a platform changed meanwhile is a conflict, retried)
    let patch = serde_json::json!({"metadata": {
        "finalizers": finalizers,
        "resourceVersion": cr.resource_version(),
    }});
    api.patch(
        &cr.name_any(),
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(&patch),
    )
    .await
    .map(Some)
    .map_err(|source| Error::Kube {
        action: "add the finalizer",
        source,
    })
}

/// Validate → lag (on the plan's workers) → build → children applied, old ones pruned and the
/// topics reconciled at the same time (independent: the API server and Kafka) → report → status,
/// each phase timed ([`crate::metrics::PHASES`]).
async fn apply(cr: Arc<CampusPlatform>, ctx: Arc<Context>) -> Result<Action, Error> {
    let ctx = &*ctx;
    if cr.paused() {
        return timed(ctx, "status", paused(&cr, ctx)).await;
    }
    let mut platform = match timed(ctx, "validate", async { validate::validate(&cr) }).await {
        Ok(p) => p,
        Err(invalid) => return timed(ctx, "status", invalid_spec(&cr, ctx, invalid)).await,
    };
    timed(ctx, "lag", scale(&cr, ctx, &mut platform)).await;
    let desired = timed(ctx, "build", async {
        Desired::build(&platform, &inputs(ctx))
    })
    .await;
    // Where Filebeat's objects were last applied: a move or a disable deletes them there too.
    let previous_filebeat = cr
        .status
        .as_ref()
        .and_then(|s| s.filebeat_namespace.as_deref());
    let (applied, pruned, topics) = tokio::join!(
        timed(ctx, "apply_children", async {
            let binding = ctx.filebeat_binding();
            apply::apply_children(
                &ctx.client,
                &ctx.children,
                &platform,
                &desired,
                binding,
                previous_filebeat,
            )
            .await
        }),
        timed(ctx, "prune", async {
            // A platform never reconciled before owns nothing yet (its children carry its uid).
            if cr
                .status
                .as_ref()
                .and_then(|s| s.observed_generation)
                .is_none()
            {
                return Ok(Vec::new());
            }
            apply::prune_children(
                &ctx.client,
                &ctx.children,
                &platform,
                &desired,
                previous_filebeat,
            )
            .await
        }),
        reconcile_topics(&cr, ctx, &platform),
    );
    let (applied, pruned) = (applied?, pruned?);
    let dead_letters = timed(ctx, "report", async {
        report(&cr, ctx, &platform, &pruned, &topics).await;
        dead_letters(&cr, ctx, &platform, &topics).await
    })
    .await;
    timed(
        ctx,
        "status",
        write_status(&cr, ctx, &platform, &applied, &topics, dead_letters),
    )
    .await?;
    Ok(Action::requeue(next_check(ctx, &platform, &topics)))
}

/// Runs one phase of the reconcile and records how long it took.
async fn timed<T>(ctx: &Context, phase: &'static str, step: impl Future<Output = T>) -> T {
    let started = Instant::now();
    let out = step.await;
    ctx.metrics.phase(phase, started.elapsed());
    out
}

/// What the builders take besides the platform: the operator's settings.
fn inputs(ctx: &Context) -> BuildInputs {
    let mut inputs = BuildInputs::new(ctx.settings.image_tag.clone());
    inputs.image_registry = ctx.settings.image_registry.clone();
    inputs
}

/// A paused platform: `Ready=False/Paused`, the rest of its status kept, nothing touched.
async fn paused(cr: &CampusPlatform, ctx: &Context) -> Result<Action, Error> {
    let conds = paused_conditions(cr);
    let st = status::build(cr, &conds, previous_topics(cr), previous_workloads(cr));
    if status::write(&platforms(cr, ctx), cr, st).await? {
        ctx.event(
            cr,
            EventType::Normal,
            "Paused",
            "Reconcile",
            "reconciliation paused by annotation".into(),
        )
        .await;
    }
    Ok(Action::await_change())
}

/// A spec that failed validation: `Ready=False/InvalidSpec` with every problem, no child touched.
async fn invalid_spec(
    cr: &CampusPlatform,
    ctx: &Context,
    invalid: validate::Invalid,
) -> Result<Action, Error> {
    let message = invalid.to_string();
    let conds = vec![Cond::new(
        status::READY,
        false,
        "InvalidSpec",
        message.clone(),
    )];
    let st = status::build(cr, &conds, previous_topics(cr), previous_workloads(cr));
    if status::write(&platforms(cr, ctx), cr, st).await? {
        ctx.event(cr, EventType::Warning, "InvalidSpec", "Validate", message)
            .await;
    }
    ctx.metrics.failed("InvalidSpec");
    Ok(Action::await_change())
}

/// The platform's own API (for its status).
fn platforms(cr: &CampusPlatform, ctx: &Context) -> Api<CampusPlatform> {
    Api::namespaced(ctx.client.clone(), &cr.namespace().unwrap_or_default())
}

/// One pass over the platform's topics, bounded so that a Kafka that accepts connections but
/// never answers cannot hold a reconcile slot forever. Timed as two phases: `topic_config` (the
/// config pass) and `topics` (the rest).
async fn reconcile_topics(
    cr: &CampusPlatform,
    ctx: &Context,
    platform: &Platform,
) -> Result<TopicsOutcome, TopicError> {
    let started = Instant::now();
    let pass = ctx.topics.reconcile(&cr.spec.kafka, &platform.plan.topics);
    let result = match tokio::time::timeout(TOPICS_TIMEOUT, pass).await {
        Ok(r) => r,
        Err(_) => Err(TopicError::TimedOut {
            brokers: platform.kafka.brokers.clone(),
            after: TOPICS_TIMEOUT,
        }),
    };
    let config = result.as_ref().map_or(Duration::ZERO, |o| o.config_took);
    ctx.metrics
        .phase("topics", started.elapsed().saturating_sub(config));
    ctx.metrics.phase("topic_config", config);
    result
}

/// Events and metrics of what this reconcile changed: pruned children, created, grown and
/// reconfigured topics, and a topic problem or failure (announced once: again only when what
/// is wrong changes).
async fn report(
    cr: &CampusPlatform,
    ctx: &Context,
    platform: &Platform,
    pruned: &[String],
    topics: &Result<TopicsOutcome, TopicError>,
) {
    let normal = |reason: &'static str, action: &'static str, note: String| {
        ctx.event(cr, EventType::Normal, reason, action, note)
    };
    if !pruned.is_empty() {
        normal("Pruned", "Prune", format!("deleted {}", pruned.join(", "))).await;
    }
    let o = match topics {
        Ok(o) => o,
        Err(e) => {
            ctx.metrics.topic_op("ensure", false, 1);
            ctx.metrics.failed(e.reason());
            if !already_reported(cr, status::TOPICS_READY, e.reason()) {
                let note = status::chain(e);
                ctx.event(cr, EventType::Warning, e.reason(), "CreateTopics", note)
                    .await;
            }
            return;
        }
    };
    let config_failed = o
        .problems
        .iter()
        .filter(|p| p.kind != ProblemKind::ChangeRefused)
        .count();
    ctx.metrics.topic_op("create", true, o.created.len() as u64);
    ctx.metrics.topic_op("grow", true, o.grown.len() as u64);
    ctx.metrics
        .topic_op("config", true, o.reconfigured.len() as u64);
    ctx.metrics.topic_op("config", false, config_failed as u64);
    if !o.created.is_empty() {
        normal("TopicsCreated", "CreateTopics", o.created.join(", ")).await;
    }
    if !o.grown.is_empty() {
        normal("PartitionsGrown", "GrowTopics", o.grown.join(", ")).await;
    }
    if !o.reconfigured.is_empty() {
        // Names without the platform's prefix: an event's note holds 1 kB.
        let names: Vec<&str> = o
            .reconfigured
            .iter()
            .map(|r| unprefixed(&platform.plan.prefix, r))
            .collect();
        normal("TopicsReconfigured", "ConfigureTopics", names.join("; ")).await;
    }
    if let Some((reason, message)) = o.problem()
        && !status::condition(cr, status::TOPICS_READY)
            .is_some_and(|c| c.reason == reason && c.message == message)
    {
        ctx.event(cr, EventType::Warning, reason, "ReconcileTopics", message)
            .await;
    }
}

/// The longest the dead-letter topics' watermarks may take to read.
const DEAD_LETTERS_TIMEOUT: Duration = Duration::from_secs(10);

/// Records in each workload's dead-letter topics, by workload name: one watermark query per
/// partition of each dead-letter topic (one partition unless overridden), on the admin client
/// the topic pass used, and only when that pass reached Kafka. `None` when not read (Kafka
/// failed, or no dead-letter topic): status keeps what it showed.
async fn dead_letters(
    cr: &CampusPlatform,
    ctx: &Context,
    platform: &Platform,
    topics: &Result<TopicsOutcome, TopicError>,
) -> Option<BTreeMap<String, i64>> {
    let outcome = topics.as_ref().ok()?;
    let by_workload = status::dead_letter_topics(platform);
    let mut query: Vec<(String, i32)> = Vec::new();
    for t in by_workload.iter().flat_map(|(_, dlqs)| dlqs) {
        let partitions = outcome
            .statuses
            .iter()
            .find(|s| &s.name == t)
            .map_or(0, |s| s.partitions);
        if partitions > 0 && !query.iter().any(|(q, _)| q == t) {
            query.push((t.clone(), partitions));
        }
    }
    if query.is_empty() {
        return None;
    }
    let read = ctx.topics.records(&cr.spec.kafka, &query);
    let records = match tokio::time::timeout(DEAD_LETTERS_TIMEOUT, read).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            tracing::warn!(error = %status::chain(&e), "failed to read the dead-letter topics");
            return None;
        }
        Err(_) => {
            tracing::warn!(after = ?DEAD_LETTERS_TIMEOUT, "no answer reading the dead-letter topics");
            return None;
        }
    };
    Some(
        by_workload
            .into_iter()
            .map(|(name, dlqs)| {
                let n = dlqs.iter().filter_map(|t| records.get(t)).sum();
                (name, n)
            })
            .collect(),
    )
}

/// The status from what this reconcile saw — workloads (with lag, the last scaling decision and
/// their dead letters), topics, conditions, the API endpoints — and the `Ready`/`NotReady` event
/// when readiness flips.
async fn write_status(
    cr: &CampusPlatform,
    ctx: &Context,
    platform: &Platform,
    applied: &apply::Applied,
    topics: &Result<TopicsOutcome, TopicError>,
    dead_letters: Option<BTreeMap<String, i64>>,
) -> Result<(), Error> {
    let plan = &platform.plan;
    let mut workloads: Vec<WorkloadStatus> = applied
        .deployments
        .iter()
        .map(status::deployment_status)
        .chain(applied.daemon_sets.iter().map(status::daemon_set_status))
        .collect();
    for w in &mut workloads {
        let worker = plan.workers.iter().find(|pw| pw.name == w.name);
        w.lag = worker.and_then(|pw| pw.lag);
        // Read in this reconcile, else as last shown (Kafka did not answer).
        w.dead_letters = match &dead_letters {
            Some(read) => read.get(&w.name).copied(),
            None => previous_workloads(cr)
                .into_iter()
                .find(|p| p.name == w.name)
                .and_then(|p| p.dead_letters),
        };
        // The last decision stays in status until the next one.
        w.last_scale = worker.and_then(|pw| pw.last_scale.clone()).or_else(|| {
            previous_workloads(cr)
                .into_iter()
                .find(|p| p.name == w.name)
                .and_then(|p| p.last_scale)
        });
    }
    let logging = logging_workloads(platform);
    let full_names: Vec<String> = plan.topics.iter().map(|t| t.full.clone()).collect();
    let seen = match topics {
        Ok(o) => TopicsSeen::Done(o),
        Err(e) => TopicsSeen::Failed(e, &full_names),
    };
    let conds = status::conditions(&workloads, &logging, &seen);
    let topic_statuses = match topics {
        Ok(o) => o.statuses.clone(),
        Err(e) => plan
            .topics
            .iter()
            .map(|t| TopicStatus {
                name: t.full.clone(),
                partitions: previous_topic(cr, &t.full).map_or(0, |p| p.partitions),
                replication_factor: previous_topic(cr, &t.full).map_or(0, |p| p.replication_factor),
                ready: false,
                message: Some(e.reason().to_owned()),
                ..Default::default()
            })
            .collect(),
    };
    let was_ready = status::condition(cr, status::READY).map(|c| c.status == "True");
    let now_ready = conds[0].ok;
    let total = workloads
        .iter()
        .filter_map(|w| w.dead_letters)
        .reduce(|a, b| a + b);
    let mut st = status::build(cr, &conds, topic_statuses, workloads);
    st.endpoints = status::endpoints(platform);
    st.dead_letters = total;
    st.filebeat_namespace = platform
        .logging
        .filebeat
        .as_ref()
        .map(|fb| fb.namespace.clone());
    st.retained_topics = status::retained_topics(cr.status.as_ref(), &full_names);
    status::write(&platforms(cr, ctx), cr, st).await?;
    if was_ready != Some(now_ready) && (now_ready || was_ready.is_some()) {
        if now_ready {
            let note = "every topic and workload is ready".to_owned();
            ctx.event(cr, EventType::Normal, "Ready", "Reconcile", note)
                .await;
        } else {
            let note = conds[0].message.clone();
            ctx.event(cr, EventType::Warning, "NotReady", "Reconcile", note)
                .await;
        }
    }
    Ok(())
}

/// When to look again: soon while Kafka fails or a partition is under-replicated (status should
/// show the broker's return, or the next failure, without waiting for the resync); at the lag
/// interval while a group is autoscaled; else at the resync.
fn next_check(
    ctx: &Context,
    platform: &Platform,
    topics: &Result<TopicsOutcome, TopicError>,
) -> Duration {
    let settings = &ctx.settings;
    let autoscaled = platform
        .plan
        .workers
        .iter()
        .any(|w| w.spec.autoscaling.is_some());
    // Under-replicated partitions, or a topic not as specified (metadata read while a new broker
    // still elects leaders can look like another partition count or replication factor): looked
    // at again soon, not at the next resync — a transient reading must not keep the platform
    // not Ready for minutes.
    let degraded = topics.as_ref().is_ok_and(|o| {
        !o.problems.is_empty() || o.statuses.iter().any(|t| t.under_replicated_partitions > 0)
    });
    match (topics, autoscaled) {
        (Err(_), _) => settings.kafka_retry,
        _ if degraded => settings.kafka_retry,
        (_, true) => settings.lag_interval,
        _ => settings.resync,
    }
}

/// The partitions of a worker's topics: as planned, or as status last saw them when more.
fn partitions_of(cr: &CampusPlatform, planned: &[PlannedTopic], topics: &[String]) -> i32 {
    topics
        .iter()
        .map(|name| {
            let planned = planned
                .iter()
                .find(|t| &t.full == name)
                .map_or(0, |t| t.partitions);
            let seen = previous_topic(cr, name).map_or(0, |t| t.partitions);
            planned.max(seen)
        })
        .sum()
}

/// Reads the lag of every autoscaled group and picks its replicas (`Lag` mode: within the
/// bounds and the partitions, scale-downs stabilised); `External` mode only reads the lag. A
/// group whose lag cannot be read keeps the replicas it has. What it reads and decides goes on
/// the plan's worker.
async fn scale(cr: &CampusPlatform, ctx: &Context, platform: &mut Platform) {
    let kafka = kafka_args(&cr.spec.kafka);
    let ns = &platform.namespace;
    let deployments: Api<Deployment> = Api::namespaced(ctx.client.clone(), ns);
    let Plan {
        topics, workers, ..
    } = &mut platform.plan;
    for w in workers.iter_mut() {
        let Some(bounds) = w.spec.autoscaling.clone() else {
            continue;
        };
        if bounds.mode == AutoscalingMode::External {
            match lag::group_lag(&kafka, &w.group, &w.topics).await {
                Ok(l) => w.lag = Some(l),
                Err(e) => {
                    tracing::warn!(group = %w.group, error = %status::chain(&e), "failed to read lag")
                }
            }
            continue;
        }
        // The replicas the Deployment has now (status may lag behind).
        let previous = match deployments.get_opt(&w.name).await {
            Ok(d) => d.and_then(|d| d.spec?.replicas),
            Err(e) => {
                tracing::warn!(deployment = %w.name, error = %e, "failed to read replicas");
                None
            }
        };
        match lag::group_lag(&kafka, &w.group, &w.topics).await {
            Ok(l) => {
                let rec = lag::recommend(l, &bounds, partitions_of(cr, topics, &w.topics));
                let window =
                    Duration::from_secs(bounds.scale_down_stabilization_seconds.max(0) as u64);
                let current = previous.unwrap_or(rec.replicas);
                let want = ctx.scaling.lock().expect("scaling state").decide(
                    &format!("{ns}/{}", w.name),
                    Instant::now(),
                    window,
                    current,
                    rec.replicas,
                );
                let mut reason = rec.reason;
                if want != rec.replicas {
                    reason.push_str(&format!(
                        "; held at {want} by the {}s scale-down stabilisation",
                        window.as_secs()
                    ));
                }
                w.lag = Some(l);
                if let Some(p) = previous
                    && p != want
                {
                    ctx.metrics.scaled(want > p);
                    ctx.event(
                        cr,
                        EventType::Normal,
                        "Scaled",
                        "Scale",
                        format!(
                            "{}: {p} → {want} replicas (group {}: {reason})",
                            w.name, w.group
                        ),
                    )
                    .await;
                    w.last_scale = Some(ScaleDecision {
                        time: k8s_openapi::jiff::Timestamp::now().to_string(),
                        from: p,
                        to: want,
                        lag: l,
                        reason,
                    });
                }
                w.scaled_replicas = Some(want);
            }
            Err(e) => {
                tracing::warn!(group = %w.group, error = %status::chain(&e), "failed to read lag; keeping replicas");
                if let Some(p) = previous {
                    w.scaled_replicas = Some(p.clamp(bounds.min_replicas, bounds.max_replicas));
                }
            }
        }
    }
}

/// Applies the deletion policy to the topics, then lets the platform go. Children go with it
/// (owner references); Filebeat's objects in another namespace and its subject in the Filebeat
/// binding are deleted here. When Kafka stays unreachable,
/// deletion gives up after the grace period instead of blocking forever.
async fn cleanup(cr: Arc<CampusPlatform>, ctx: Arc<Context>) -> Result<Action, Error> {
    apply::delete_unowned_children(&ctx.client, &cr, ctx.filebeat_binding()).await?;
    if cr.spec.topics.deletion_policy == DeletionPolicy::Retain || cr.paused() {
        ctx.event(
            &cr,
            EventType::Normal,
            "TopicsRetained",
            "Delete",
            "deletion policy Retain: topics kept".into(),
        )
        .await;
        return Ok(Action::await_change());
    }
    let mut names: Vec<String> = Plan::of(&cr).topics.into_iter().map(|t| t.full).collect();
    let retained = cr.status.as_ref().map(|s| s.retained_topics.clone());
    for t in previous_topics(&cr)
        .into_iter()
        .map(|t| t.name)
        .chain(retained.into_iter().flatten())
    {
        if !names.contains(&t) {
            names.push(t);
        }
    }
    match ctx.topics.delete(&cr.spec.kafka, &names).await {
        Ok(()) => {
            ctx.metrics.topic_op("delete", true, names.len() as u64);
            ctx.event(
                &cr,
                EventType::Normal,
                "TopicsDeleted",
                "Delete",
                names.join(", "),
            )
            .await;
            Ok(Action::await_change())
        }
        Err(e) => {
            ctx.metrics.topic_op("delete", false, 1);
            let waited = cr
                .metadata
                .deletion_timestamp
                .as_ref()
                .map(|t| k8s_openapi::jiff::Timestamp::now().duration_since(t.0))
                .and_then(|d| Duration::try_from(d).ok())
                .unwrap_or_default();
            if waited >= ctx.settings.topic_deletion_grace {
                ctx.event(
                    &cr,
                    EventType::Warning,
                    "TopicDeletionAbandoned",
                    "Delete",
                    format!(
                        "gave up deleting topics after {}s: {}; left in Kafka: {}",
                        waited.as_secs(),
                        status::chain(&e),
                        names.join(", ")
                    ),
                )
                .await;
                Ok(Action::await_change())
            } else {
                Err(Error::Topics(e))
            }
        }
    }
}

fn paused_conditions(cr: &CampusPlatform) -> Vec<Cond> {
    let mut conds = vec![Cond::new(
        status::READY,
        false,
        "Paused",
        format!(
            "reconciliation is paused (annotation {})",
            crate::crd::PAUSE_ANNOTATION
        ),
    )];
    // Keep what was last seen of the other conditions.
    for t in [
        status::TOPICS_READY,
        status::WORKLOADS_READY,
        status::LOGGING_READY,
    ] {
        if let Some(c) = status::condition(cr, t) {
            conds.push(Cond::new(
                t,
                c.status == "True",
                c.reason.clone(),
                c.message.clone(),
            ));
        }
    }
    conds
}

fn already_reported(cr: &CampusPlatform, type_: &str, reason: &str) -> bool {
    status::condition(cr, type_).is_some_and(|c| c.reason == reason)
}

fn previous_topics(cr: &CampusPlatform) -> Vec<crate::crd::TopicStatus> {
    cr.status
        .as_ref()
        .map(|s| s.topics.clone())
        .unwrap_or_default()
}

fn previous_workloads(cr: &CampusPlatform) -> Vec<WorkloadStatus> {
    cr.status
        .as_ref()
        .map(|s| s.workloads.clone())
        .unwrap_or_default()
}

fn previous_topic(cr: &CampusPlatform, name: &str) -> Option<crate::crd::TopicStatus> {
    previous_topics(cr).into_iter().find(|t| t.name == name)
}

/// Names of the logging workloads (they make up `LoggingReady`).
fn logging_workloads(p: &Platform) -> Vec<String> {
    let mut names: Vec<String> = p
        .logging
        .filebeat
        .iter()
        .map(|fb| crate::build::config_map::filebeat_name(p, fb))
        .collect();
    match p.logging.processor {
        Processor::Logstash(_) => names.push(crate::build::deployment::logstash_name(p)),
        Processor::Native => names.extend(
            p.plan
                .workers
                .iter()
                .filter(|w| w.contract.group == campus_contract::group::LOG_INDEX)
                .map(|w| w.name.clone()),
        ),
        Processor::None => {}
    }
    names
}

/// `text` without a leading `<prefix>.` (a topic's full name → the name the spec uses).
fn unprefixed<'a>(prefix: &str, text: &'a str) -> &'a str {
    if prefix.is_empty() {
        return text;
    }
    text.strip_prefix(prefix)
        .and_then(|r| r.strip_prefix('.'))
        .unwrap_or(text)
}
