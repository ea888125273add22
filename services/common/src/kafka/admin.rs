//! Topic administration through the Kafka admin API: create what is missing, grow partitions,
//! never shrink; read and set per-topic config.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use rdkafka::admin::{
    AdminClient, AdminOptions, AlterConfig, ConfigSource, NewPartitions, NewTopic,
    OwnedResourceSpecifier, ResourceSpecifier, TopicReplication,
};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};

use crate::config::KafkaArgs;

/// A topic as it should be.
#[derive(Debug, Clone, PartialEq)]
pub struct TopicSpec {
    pub name: String,
    pub partitions: i32,
    /// Replicas per partition; [`TopicSpec::BROKER_DEFAULT`] leaves it to the broker's
    /// `default.replication.factor`.
    pub replication: i32,
    pub config: Vec<(String, String)>,
}

impl TopicSpec {
    /// `replication` meaning "the broker's `default.replication.factor`" (CreateTopics v4+).
    pub const BROKER_DEFAULT: i32 = -1;

    /// A topic with `partitions` partitions, replicated as the broker's default says (one copy
    /// on a single broker, as many as the cluster is configured for on a real cluster).
    pub fn new(name: impl Into<String>, partitions: i32) -> Self {
        Self {
            name: name.into(),
            partitions,
            replication: Self::BROKER_DEFAULT,
            config: Vec::new(),
        }
    }
}

/// What the cluster holds for one topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicState {
    pub partitions: i32,
    /// Replicas per partition (the most any partition has; 0 without partitions).
    pub replication: i32,
    /// Partitions whose in-sync replicas are fewer than their replicas (a broker is down or
    /// behind).
    pub under_replicated: i32,
}

/// A topic's config as Kafka reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TopicConfig {
    /// The value in effect of every entry that has one (set on the topic or a default).
    pub values: BTreeMap<String, String>,
    /// Names of the entries set on the topic itself.
    pub overrides: BTreeSet<String>,
}

impl TopicConfig {
    /// The entries set on the topic itself, with their values.
    pub fn override_values(&self) -> BTreeMap<String, String> {
        self.values
            .iter()
            .filter(|(k, _)| self.overrides.contains(*k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("failed to create the Kafka admin client")]
    Create(#[source] KafkaError),
    #[error("failed to read cluster metadata")]
    Metadata(#[source] KafkaError),
    #[error("failed to create topic {topic}: {code}")]
    CreateTopic {
        topic: String,
        code: RDKafkaErrorCode,
    },
    #[error("failed to add partitions to topic {topic}: {code}")]
    Grow {
        topic: String,
        code: RDKafkaErrorCode,
    },
    #[error("failed to delete topic {topic}: {code}")]
    Delete {
        topic: String,
        code: RDKafkaErrorCode,
    },
    #[error("failed to call the Kafka admin API")]
    Call(#[source] KafkaError),
    /// (`partition`: `<topic>/<number>`.)
    #[error("failed to read the watermarks of {partition}")]
    Watermarks {
        partition: Box<str>,
        #[source]
        source: KafkaError,
    },
}

/// A thin handle over the admin client.
pub struct Admin {
    client: Arc<AdminClient<DefaultClientContext>>,
    timeout: Duration,
}

impl Admin {
    pub fn new(args: &KafkaArgs) -> Result<Self, AdminError> {
        let mut cfg = args.client_config();
        cfg.set("socket.timeout.ms", "5000");
        let client = Arc::new(cfg.create().map_err(AdminError::Create)?);
        Ok(Self {
            client,
            timeout: Duration::from_secs(5),
        })
    }

    fn options(&self) -> AdminOptions {
        AdminOptions::new()
            .operation_timeout(Some(self.timeout))
            .request_timeout(Some(self.timeout))
    }

    /// Partition counts of the topics that exist, by name.
    pub async fn describe(&self) -> Result<HashMap<String, TopicState>, AdminError> {
        let client = self.client.clone();
        let timeout = self.timeout;
        let md = tokio::task::spawn_blocking(move || client.inner().fetch_metadata(None, timeout))
            .await
            .map_err(|_| AdminError::Metadata(KafkaError::Canceled))?
            .map_err(AdminError::Metadata)?;
        Ok(md
            .topics()
            .iter()
            .filter(|t| t.error().is_none())
            .map(|t| {
                (
                    t.name().to_owned(),
                    TopicState {
                        partitions: t.partitions().len() as i32,
                        replication: t
                            .partitions()
                            .iter()
                            .map(|p| p.replicas().len() as i32)
                            .max()
                            .unwrap_or(0),
                        under_replicated: t
                            .partitions()
                            .iter()
                            .filter(|p| p.isr().len() < p.replicas().len())
                            .count() as i32,
                    },
                )
            })
            .collect())
    }

    /// Creates missing topics and grows partitions where fewer exist than wanted. Returns the names
    /// that were created or grown. Fewer wanted than exist is left alone (never shrink).
    pub async fn ensure(&self, specs: &[TopicSpec]) -> Result<Vec<String>, AdminError> {
        let existing = self.describe().await?;
        let mut changed = Vec::new();
        let to_create: Vec<&TopicSpec> = specs
            .iter()
            .filter(|s| !existing.contains_key(&s.name))
            .collect();
        if !to_create.is_empty() {
            let new: Vec<NewTopic<'_>> = to_create
                .iter()
                .map(|s| {
                    let mut t = NewTopic::new(
                        &s.name,
                        s.partitions,
                        TopicReplication::Fixed(s.replication),
                    );
                    for (k, v) in &s.config {
                        t = t.set(k, v);
                    }
                    t
                })
                .collect();
            for r in self
                .client
                .create_topics(&new, &self.options())
                .await
                .map_err(AdminError::Call)?
            {
                match r {
                    Ok(name) => changed.push(name),
                    Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                    Err((topic, code)) => return Err(AdminError::CreateTopic { topic, code }),
                }
            }
        }
        let grow: Vec<NewPartitions<'_>> = specs
            .iter()
            .filter_map(|s| {
                let have = existing.get(&s.name)?.partitions;
                (s.partitions > have).then(|| NewPartitions::new(&s.name, s.partitions as usize))
            })
            .collect();
        if !grow.is_empty() {
            for r in self
                .client
                .create_partitions(&grow, &self.options())
                .await
                .map_err(AdminError::Call)?
            {
                match r {
                    Ok(name) => changed.push(name),
                    Err((topic, code)) => return Err(AdminError::Grow { topic, code }),
                }
            }
        }
        Ok(changed)
    }

    /// The config of each topic (DescribeConfigs), by name. A failure of the whole call (e.g.
    /// a broker without DescribeConfigs: `AdminOp(UnsupportedFeature)`) is `Call`. rdkafka 0.39
    /// drops each topic's own error: a topic Kafka could not describe has no entries.
    pub async fn topic_configs(
        &self,
        names: &[&str],
    ) -> Result<HashMap<String, TopicConfig>, AdminError> {
        if names.is_empty() {
            return Ok(HashMap::new());
        }
        let specifiers: Vec<ResourceSpecifier<'_>> =
            names.iter().map(|n| ResourceSpecifier::Topic(n)).collect();
        let results = self
            .client
            .describe_configs(&specifiers, &self.options())
            .await
            .map_err(AdminError::Call)?;
        let mut out = HashMap::new();
        for r in results.into_iter().flatten() {
            let OwnedResourceSpecifier::Topic(name) = r.specifier else {
                continue;
            };
            let mut config = TopicConfig::default();
            for e in r.entries {
                let Some(value) = e.value else { continue };
                if e.source == ConfigSource::DynamicTopic {
                    config.overrides.insert(e.name.clone());
                }
                config.values.insert(e.name, value);
            }
            out.insert(name, config);
        }
        Ok(out)
    }

    /// Sets the config of each topic to exactly the given entries (AlterConfigs: entries set on
    /// the topic and not given go back to their defaults). A failure of the whole call is `Call`.
    /// rdkafka 0.39 drops each topic's own error (a refused value looks like success), so read
    /// the config back with [`Admin::topic_configs`] to know what was applied.
    pub async fn set_topic_configs(
        &self,
        configs: &[(String, BTreeMap<String, String>)],
    ) -> Result<(), AdminError> {
        if configs.is_empty() {
            return Ok(());
        }
        let alter: Vec<AlterConfig<'_>> = configs
            .iter()
            .map(|(name, entries)| {
                entries.iter().fold(
                    AlterConfig::new(ResourceSpecifier::Topic(name)),
                    |a, (k, v)| a.set(k, v),
                )
            })
            .collect();
        self.client
            .alter_configs(&alter, &self.options())
            .await
            .map_err(AdminError::Call)?;
        Ok(())
    }

    /// The records each topic holds: over its partitions `0..n` (n as given), the high watermark
    /// minus the low one, summed. One watermark query per partition, on the admin client's
    /// connections (no client of its own).
    pub async fn records(
        &self,
        topics: &[(String, i32)],
    ) -> Result<HashMap<String, i64>, AdminError> {
        let client = self.client.clone();
        let timeout = self.timeout;
        let topics = topics.to_vec();
        tokio::task::spawn_blocking(move || {
            let mut out = HashMap::new();
            for (topic, partitions) in topics {
                let mut records = 0i64;
                for partition in 0..partitions {
                    let (low, high) = client
                        .inner()
                        .fetch_watermarks(&topic, partition, timeout)
                        .map_err(|source| AdminError::Watermarks {
                            partition: format!("{topic}/{partition}").into(),
                            source,
                        })?;
                    records += (high - low).max(0);
                }
                out.insert(topic, records);
            }
            Ok(out)
        })
        .await
        .map_err(|_| AdminError::Metadata(KafkaError::Canceled))?
    }

    /// Deletes topics; a topic that is already gone counts as deleted.
    pub async fn delete(&self, names: &[&str]) -> Result<(), AdminError> {
        if names.is_empty() {
            return Ok(());
        }
        for r in self
            .client
            .delete_topics(names, &self.options())
            .await
            .map_err(AdminError::Call)?
        {
            match r {
                Ok(_) | Err((_, RDKafkaErrorCode::UnknownTopicOrPartition)) => {}
                Err((topic, code)) => return Err(AdminError::Delete { topic, code }),
            }
        }
        Ok(())
    }
}
