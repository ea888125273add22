//! The Kafka side of a platform: create missing topics, grow partitions and bring topic config
//! to the spec through the admin API (never shrink, never change the replication factor: such a
//! change is reported), delete topics when the deletion policy says so. Admin clients are cached
//! per connection, so many platforms share one.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use campus_common::config::KafkaArgs;
use campus_common::kafka::admin::{Admin, AdminError, TopicConfig, TopicSpec, TopicState};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};

use crate::crd::{KafkaSpec, TopicStatus};
use crate::plan::PlannedTopic;

#[derive(Debug, thiserror::Error)]
pub enum TopicError {
    #[error("failed to reach Kafka at {brokers}")]
    Unreachable {
        brokers: String,
        #[source]
        source: AdminError,
    },
    #[error("failed to change topics")]
    Operation(#[source] AdminError),
    #[error("failed to get an answer from Kafka at {brokers} within {after:?}")]
    TimedOut {
        brokers: String,
        after: std::time::Duration,
    },
}

impl TopicError {
    /// The category: condition reason, event reason and metric label.
    /// Also listed in [`crate::metrics::FAILURE_REASONS`] (each counted from 0).
    pub fn reason(&self) -> &'static str {
        match self {
            TopicError::Unreachable { .. } => "KafkaUnreachable",
            TopicError::Operation(_) => "TopicOperationFailed",
            TopicError::TimedOut { .. } => "KafkaTimedOut",
        }
    }
}

/// The settings of the Campus clients for this platform's Kafka.
pub fn kafka_args(kafka: &KafkaSpec) -> KafkaArgs {
    let mut args = KafkaArgs::new(kafka.brokers.clone());
    args.properties = kafka
        .properties
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    args
}

/// Why a topic is not as its spec says. The order is the condition's: the first kind present
/// gives `TopicsReady` its reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ProblemKind {
    /// A change the operator never applies: fewer partitions, another replication factor.
    ChangeRefused,
    /// Kafka cannot read or change topic config (no DescribeConfigs / AlterConfigs).
    ConfigUnsupported,
    /// Kafka refused the config (unknown key, invalid value, policy).
    ConfigRejected,
}

impl ProblemKind {
    /// The condition and event reason.
    pub fn reason(self) -> &'static str {
        match self {
            ProblemKind::ChangeRefused => "ChangeRefused",
            ProblemKind::ConfigUnsupported => "ConfigUnsupported",
            ProblemKind::ConfigRejected => "ConfigRejected",
        }
    }
}

/// One way a topic differs from its spec and stays so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicProblem {
    pub kind: ProblemKind,
    /// Names the topic, what it has and what the spec asks for.
    pub message: String,
}

/// What one pass over a platform's topics found and did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TopicsOutcome {
    pub statuses: Vec<TopicStatus>,
    /// Full names of topics created in this pass.
    pub created: Vec<String>,
    /// Full names of topics whose partitions grew in this pass.
    pub grown: Vec<String>,
    /// Topics whose config changed in this pass: `name: key old → new, …`.
    pub reconfigured: Vec<String>,
    /// What keeps topics from being as specified.
    pub problems: Vec<TopicProblem>,
    /// How long the config pass took (DescribeConfigs, AlterConfigs, the read-back); the rest
    /// of the pass is describing, creating and growing.
    pub config_took: std::time::Duration,
}

impl TopicsOutcome {
    pub fn ready(&self) -> usize {
        self.statuses.iter().filter(|s| s.ready).count()
    }

    /// The reason and message of `TopicsReady=False`, when a topic is not as specified.
    pub fn problem(&self) -> Option<(&'static str, String)> {
        let kind = self.problems.iter().map(|p| p.kind).min()?;
        let message: Vec<&str> = self.problems.iter().map(|p| p.message.as_str()).collect();
        Some((kind.reason(), message.join("; ")))
    }

    fn report(&mut self, topic: &str, kind: ProblemKind, message: String) {
        if let Some(s) = self.statuses.iter_mut().find(|s| s.name == topic) {
            s.ready = false;
            s.message = Some(match s.message.take() {
                Some(m) => format!("{m}; {message}"),
                None => message.clone(),
            });
        }
        self.problems.push(TopicProblem { kind, message });
    }
}

/// The changes the spec asks of an existing topic that are never applied: fewer partitions
/// (partitions only grow) and another replication factor (it changes only by reassigning
/// partitions, which the operator does not do). Pure.
pub fn refused_changes(t: &PlannedTopic, have: &TopicState) -> Vec<String> {
    let mut out = Vec::new();
    if have.partitions > t.partitions {
        out.push(format!(
            "topic {} has {} partitions and the spec asks for {}: partitions never shrink",
            t.full, have.partitions, t.partitions
        ));
    }
    if have.replication != t.replication {
        out.push(format!(
            "topic {} has replication factor {} and the spec asks for {}: the replication factor \
             of an existing topic is never changed (that needs a partition reassignment)",
            t.full, have.replication, t.replication
        ));
    }
    out
}

/// The config to set on a topic so that every entry of `want` holds, with what changes, or
/// `None` when it already holds. AlterConfigs replaces a topic's whole set of overrides, so the
/// overrides the spec does not name are carried over unchanged. Pure.
pub fn config_change(
    want: &[(String, String)],
    live: &TopicConfig,
) -> Option<(BTreeMap<String, String>, Vec<String>)> {
    let changes: Vec<String> = want
        .iter()
        .filter(|(k, v)| !live.values.get(k).is_some_and(|l| same_value(l, v)))
        .map(|(k, v)| match live.values.get(k) {
            Some(old) => format!("{k} {old} → {v}"),
            None => format!("{k} → {v}"),
        })
        .collect();
    if changes.is_empty() {
        return None;
    }
    let mut set = live.override_values();
    set.extend(want.iter().cloned());
    Some((set, changes))
}

/// Whether two config values are the same, as Kafka reads them: lists (`compact, delete`) ignore
/// the blanks around their commas.
fn same_value(a: &str, b: &str) -> bool {
    a.split(',').map(str::trim).eq(b.split(',').map(str::trim))
}

/// The error code, when an admin call failed because the broker does not have that API.
fn unsupported(e: &AdminError) -> Option<RDKafkaErrorCode> {
    match e {
        AdminError::Call(KafkaError::AdminOp(
            code @ (RDKafkaErrorCode::UnsupportedFeature | RDKafkaErrorCode::UnsupportedVersion),
        )) => Some(*code),
        _ => None,
    }
}

/// Cached admin clients, one per Kafka connection.
#[derive(Default)]
pub struct Topics {
    admins: Mutex<HashMap<String, Arc<Admin>>>,
}

impl Topics {
    pub fn new() -> Self {
        Self::default()
    }

    fn admin(&self, kafka: &KafkaSpec) -> Result<Arc<Admin>, TopicError> {
        let key = format!("{}|{:?}", kafka.brokers, kafka.properties);
        let mut admins = self.admins.lock().expect("admin cache lock");
        if let Some(a) = admins.get(&key) {
            return Ok(a.clone());
        }
        let admin =
            Arc::new(
                Admin::new(&kafka_args(kafka)).map_err(|source| TopicError::Unreachable {
                    brokers: kafka.brokers.clone(),
                    source,
                })?,
            );
        admins.insert(key, admin.clone());
        Ok(admin)
    }

    /// The records each of `topics` (name, partitions) holds — how deep the dead-letter topics
    /// are — on the cached admin client: one watermark query per partition.
    pub async fn records(
        &self,
        kafka: &KafkaSpec,
        topics: &[(String, i32)],
    ) -> Result<HashMap<String, i64>, TopicError> {
        let admin = self.admin(kafka)?;
        admin
            .records(topics)
            .await
            .map_err(|source| TopicError::Unreachable {
                brokers: kafka.brokers.clone(),
                source,
            })
    }

    /// Creates missing topics, grows partitions and sets the config of existing topics where it
    /// differs. Kafka being unreachable is an error; a refused change, or config Kafka cannot
    /// change or refuses, is part of the outcome.
    pub async fn reconcile(
        &self,
        kafka: &KafkaSpec,
        planned: &[PlannedTopic],
    ) -> Result<TopicsOutcome, TopicError> {
        let admin = self.admin(kafka)?;
        let unreachable = |source| TopicError::Unreachable {
            brokers: kafka.brokers.clone(),
            source,
        };
        let existing = admin.describe().await.map_err(unreachable)?;
        let mut outcome = TopicsOutcome::default();
        let specs: Vec<TopicSpec> = planned
            .iter()
            .map(|t| TopicSpec {
                name: t.full.clone(),
                partitions: t.partitions,
                replication: t.replication,
                config: t.config.clone(),
            })
            .collect();
        let needed = planned.iter().any(|t| {
            existing
                .get(&t.full)
                .is_none_or(|have| have.partitions < t.partitions)
        });
        // Nothing to create or grow (the steady state): no second round trip.
        let changed = if needed {
            admin.ensure(&specs).await
        } else {
            Ok(Vec::new())
        };
        let changed = match changed {
            Ok(c) => c,
            Err(e @ (AdminError::Metadata(_) | AdminError::Call(_) | AdminError::Create(_))) => {
                return Err(unreachable(e));
            }
            Err(e) => return Err(TopicError::Operation(e)),
        };
        for t in planned {
            let have = existing.get(&t.full);
            outcome.statuses.push(TopicStatus {
                name: t.full.clone(),
                partitions: have.map_or(0, |h| h.partitions).max(t.partitions),
                replication_factor: have.map_or(t.replication, |h| h.replication),
                under_replicated_partitions: have.map_or(0, |h| h.under_replicated),
                ready: true,
                message: None,
            });
            match have {
                None if changed.contains(&t.full) => outcome.created.push(t.full.clone()),
                None => {}
                Some(h) => {
                    if h.partitions < t.partitions && changed.contains(&t.full) {
                        outcome.grown.push(t.full.clone());
                    }
                    for msg in refused_changes(t, h) {
                        outcome.report(&t.full, ProblemKind::ChangeRefused, msg);
                    }
                }
            }
        }
        // Config of the topics that existed (new ones got theirs when created).
        let configured: Vec<&PlannedTopic> = planned
            .iter()
            .filter(|t| !t.config.is_empty() && existing.contains_key(&t.full))
            .collect();
        let started = std::time::Instant::now();
        self.reconcile_config(&admin, kafka, &configured, &mut outcome)
            .await?;
        outcome.config_took = started.elapsed();
        Ok(outcome)
    }

    /// Brings the config of existing topics to the spec: reads it (DescribeConfigs) and sets it
    /// where an entry differs (AlterConfigs). A broker without those APIs, or one that refuses a
    /// value, is reported in the outcome; only an unreachable Kafka is an error.
    async fn reconcile_config(
        &self,
        admin: &Admin,
        kafka: &KafkaSpec,
        topics: &[&PlannedTopic],
        outcome: &mut TopicsOutcome,
    ) -> Result<(), TopicError> {
        if topics.is_empty() {
            return Ok(());
        }
        let unreachable = |source| TopicError::Unreachable {
            brokers: kafka.brokers.clone(),
            source,
        };
        let names: Vec<&str> = topics.iter().map(|t| t.full.as_str()).collect();
        let live = match admin.topic_configs(&names).await {
            Ok(live) => live,
            Err(e) => {
                let Some(code) = unsupported(&e) else {
                    return Err(unreachable(e));
                };
                for t in topics {
                    outcome.report(
                        &t.full,
                        ProblemKind::ConfigUnsupported,
                        format!(
                            "cannot read the config of topic {}: Kafka at {} does not support \
                             DescribeConfigs ({code})",
                            t.full, kafka.brokers
                        ),
                    );
                }
                return Ok(());
            }
        };
        let mut alter = Vec::new();
        let mut changes = BTreeMap::new();
        for t in topics {
            let have = live.get(&t.full).cloned().unwrap_or_default();
            if let Some((set, what)) = config_change(&t.config, &have) {
                alter.push((t.full.clone(), set));
                changes.insert(t.full.clone(), (*t, what));
            }
        }
        if alter.is_empty() {
            return Ok(());
        }
        if let Err(e) = admin.set_topic_configs(&alter).await {
            let Some(code) = unsupported(&e) else {
                return Err(unreachable(e));
            };
            for (name, (_, what)) in &changes {
                outcome.report(
                    name,
                    ProblemKind::ConfigUnsupported,
                    format!(
                        "cannot change the config of topic {name} ({}): Kafka at {} does not \
                         support AlterConfigs ({code})",
                        what.join(", "),
                        kafka.brokers
                    ),
                );
            }
            return Ok(());
        }
        // The call does not say which topics Kafka refused: read them back. A broker takes a
        // change from the controller's metadata a moment after the call returns (KRaft; seen in
        // CI: the old value read back at once), so a config that still differs is read again for
        // a few seconds before it counts as refused.
        let names: Vec<&str> = changes.keys().map(String::as_str).collect();
        let mut now = admin.topic_configs(&names).await.map_err(unreachable)?;
        for _ in 0..READ_BACK_RETRIES {
            let differs = changes.iter().any(|(name, (t, _))| {
                config_change(&t.config, &now.get(name).cloned().unwrap_or_default()).is_some()
            });
            if !differs {
                break;
            }
            tokio::time::sleep(READ_BACK_PAUSE).await;
            now = admin.topic_configs(&names).await.map_err(unreachable)?;
        }
        for (name, (t, what)) in &changes {
            let have = now.get(name).cloned().unwrap_or_default();
            match config_change(&t.config, &have) {
                None => outcome
                    .reconfigured
                    .push(format!("{name}: {}", what.join(", "))),
                Some((_, still)) => outcome.report(
                    name,
                    ProblemKind::ConfigRejected,
                    format!(
                        "Kafka refused the config of topic {name} ({}): an unknown key, an \
                         invalid value or a broker policy",
                        still.join(", ")
                    ),
                ),
            }
        }
        Ok(())
    }

    /// Deletes topics (those already gone count as deleted).
    pub async fn delete(&self, kafka: &KafkaSpec, names: &[String]) -> Result<(), TopicError> {
        let admin = self.admin(kafka)?;
        // Fail fast (and clearly) when Kafka is not there.
        admin
            .describe()
            .await
            .map_err(|source| TopicError::Unreachable {
                brokers: kafka.brokers.clone(),
                source,
            })?;
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        admin.delete(&names).await.map_err(TopicError::Operation)
    }
}

/// Read-backs after AlterConfigs before a config that still differs counts as refused.
const READ_BACK_RETRIES: usize = 6;
const READ_BACK_PAUSE: std::time::Duration = std::time::Duration::from_millis(500);

#[cfg(test)]
mod tests {
    use super::*;

    fn planned(partitions: i32, replication: i32, config: &[(&str, &str)]) -> PlannedTopic {
        PlannedTopic {
            logical: "post.original".into(),
            full: "blue.post.original".into(),
            partitions,
            replication,
            config: config
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }

    #[test]
    fn fewer_partitions_and_another_replication_factor_are_refused() {
        let have = TopicState {
            partitions: 3,
            replication: 1,
            under_replicated: 0,
        };
        assert!(refused_changes(&planned(3, 1, &[]), &have).is_empty());
        assert!(refused_changes(&planned(5, 1, &[]), &have).is_empty());
        let r = refused_changes(&planned(2, 3, &[]), &have);
        assert_eq!(r.len(), 2, "{r:?}");
        assert!(r[0].contains("has 3 partitions and the spec asks for 2"));
        assert!(
            r[1].contains(
                "topic blue.post.original has replication factor 1 and the spec asks for 3"
            ),
            "{}",
            r[1]
        );
    }

    #[test]
    fn config_changes_keep_overrides_the_spec_does_not_name() {
        let live = TopicConfig {
            values: [
                ("retention.ms", "100"),
                ("cleanup.policy", "delete"),
                ("segment.ms", "7"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
            overrides: ["retention.ms".to_owned(), "segment.ms".to_owned()].into(),
        };
        assert_eq!(
            config_change(&planned(1, 1, &[("retention.ms", "100")]).config, &live),
            None
        );
        assert_eq!(
            config_change(
                &planned(1, 1, &[("cleanup.policy", " delete ")]).config,
                &live
            ),
            None
        );
        // A default value the spec names is in effect already.
        assert_eq!(
            config_change(
                &planned(1, 1, &[("cleanup.policy", "delete")]).config,
                &live
            ),
            None
        );
        let (set, what) = config_change(
            &planned(1, 1, &[("retention.ms", "200"), ("max.message.bytes", "9")]).config,
            &live,
        )
        .unwrap();
        assert_eq!(what, ["retention.ms 100 → 200", "max.message.bytes → 9"]);
        let set: Vec<(&str, &str)> = set.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(
            set,
            [
                ("max.message.bytes", "9"),
                ("retention.ms", "200"),
                ("segment.ms", "7")
            ]
        );
    }

    #[test]
    fn a_broker_without_the_api_is_told_apart_from_an_unreachable_one() {
        let call = |code| AdminError::Call(KafkaError::AdminOp(code));
        assert_eq!(
            unsupported(&call(RDKafkaErrorCode::UnsupportedFeature)),
            Some(RDKafkaErrorCode::UnsupportedFeature)
        );
        assert_eq!(
            unsupported(&call(RDKafkaErrorCode::BrokerTransportFailure)),
            None
        );
        assert_eq!(unsupported(&call(RDKafkaErrorCode::InvalidConfig)), None);
    }

    #[test]
    fn problems_mark_their_topic_and_the_first_kind_gives_the_reason() {
        let mut o = TopicsOutcome {
            statuses: vec![TopicStatus {
                name: "t".into(),
                partitions: 1,
                replication_factor: 1,
                ready: true,
                message: None,
                ..TopicStatus::default()
            }],
            ..TopicsOutcome::default()
        };
        assert_eq!(o.problem(), None);
        o.report(
            "t",
            ProblemKind::ConfigUnsupported,
            "no AlterConfigs".into(),
        );
        o.report("t", ProblemKind::ChangeRefused, "replication".into());
        assert_eq!(
            o.problem(),
            Some(("ChangeRefused", "no AlterConfigs; replication".to_owned()))
        );
        assert!(!o.statuses[0].ready);
        assert_eq!(
            o.statuses[0].message.as_deref(),
            Some("no AlterConfigs; replication")
        );
        assert_eq!(o.ready(), 0);
    }
}
