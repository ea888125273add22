//! The Kafka side of a platform: create missing topics and grow partitions through the admin API
//! (never shrink; a lower partition count is reported), delete topics when the deletion policy
//! says so. Admin clients are cached per connection, so many platforms share one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use campus_common::config::KafkaArgs;
use campus_common::kafka::admin::{Admin, AdminError, TopicSpec};

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

/// What one pass over a platform's topics found and did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TopicsOutcome {
    pub statuses: Vec<TopicStatus>,
    /// Full names of topics created in this pass.
    pub created: Vec<String>,
    /// Full names of topics whose partitions grew in this pass.
    pub grown: Vec<String>,
    /// Changes the spec asks for that are never applied (e.g. fewer partitions).
    pub refused: Vec<String>,
}

impl TopicsOutcome {
    pub fn ready(&self) -> usize {
        self.statuses.iter().filter(|s| s.ready).count()
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

    /// Creates missing topics and grows partitions. Kafka being unreachable is an error; a refused
    /// change is part of the outcome.
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
            let have = existing.get(&t.full).map(|s| s.partitions);
            let mut status = TopicStatus {
                name: t.full.clone(),
                partitions: have.unwrap_or(0).max(t.partitions),
                ready: true,
                message: None,
            };
            match have {
                None if changed.contains(&t.full) => outcome.created.push(t.full.clone()),
                None => {}
                Some(h) if h < t.partitions && changed.contains(&t.full) => {
                    outcome.grown.push(t.full.clone())
                }
                Some(h) if h > t.partitions => {
                    let msg = format!(
                        "topic {} has {h} partitions and the spec asks for {}: partitions never shrink",
                        t.full, t.partitions
                    );
                    status.ready = false;
                    status.message = Some(msg.clone());
                    outcome.refused.push(msg);
                }
                Some(_) => {}
            }
            outcome.statuses.push(status);
        }
        Ok(outcome)
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
