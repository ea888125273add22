//! What a Campus container is told about the stores it needs. Which stores a service needs is
//! the contract's table ([`Service::needs`], the one the services' command lines read too);
//! each needed store gives plain settings, for the service's ConfigMap, and Secret references,
//! for the pod's `env` (a credential never enters a ConfigMap).

use std::collections::BTreeMap;

use campus_contract::{Store, env as var};
use k8s_openapi::api::core::v1::{
    EnvFromSource, EnvVar, EnvVarSource, SecretEnvSource, SecretKeySelector,
};

use crate::crd::SecretKeyRef;
use crate::model::{Platform, Url};
use crate::plan::Service;

/// A service's environment, split by where it comes from.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServiceEnv {
    /// Plain settings: the service's ConfigMap, read through `envFrom`.
    pub config: BTreeMap<String, String>,
    /// Variables read from Secrets, in [`STORES`] order.
    pub secrets: Vec<EnvVar>,
    /// Whole Secrets read as variables: Kafka's properties (`KAFKA_PROPERTY_<key>`).
    pub secret_sources: Vec<EnvFromSource>,
}

impl ServiceEnv {
    fn set(&mut self, name: &str, value: &str) {
        self.config.insert(name.to_owned(), value.to_owned());
    }

    fn secret(&mut self, name: &str, r: &SecretKeyRef) {
        self.secrets.push(secret_env(name, r));
    }

    /// A URL: into the ConfigMap when written in the spec, from its Secret otherwise.
    fn url(&mut self, name: &str, url: &Url) {
        match url {
            Url::Plain(u) => self.set(name, u),
            Url::Secret(r) => self.secret(name, r),
        }
    }
}

/// The stores, in the order their Secret variables appear in a container's `env` (a change of
/// order would roll every pod).
pub const STORES: [Store; 6] = [
    Store::Kafka,
    Store::Mysql,
    Store::Mongodb,
    Store::Redis,
    Store::Elasticsearch,
    Store::OpenAi,
];

/// The environment of `service`'s containers: `RUST_LOG`, and what each store it needs gives.
/// A needed store is configured (validation checked it).
pub fn service_env(p: &Platform, service: Service) -> ServiceEnv {
    let s = &p.stores;
    let mut env = ServiceEnv::default();
    env.set(var::RUST_LOG, &p.log_level);
    for store in STORES.into_iter().filter(|&store| service.needs(store)) {
        match store {
            Store::Kafka => {
                env.set(var::KAFKA_BROKERS, &p.kafka.brokers);
                env.set(var::KAFKA_PREFIX, &p.plan.prefix);
                if let Some(secret) = &p.kafka.properties_secret {
                    env.secret_sources.push(EnvFromSource {
                        prefix: Some(var::KAFKA_PROPERTY_PREFIX.to_owned()),
                        secret_ref: Some(SecretEnvSource {
                            name: secret.clone(),
                            optional: Some(false),
                        }),
                        ..EnvFromSource::default()
                    });
                }
                if !p.kafka.properties.is_empty() {
                    let props: Vec<String> = p
                        .kafka
                        .properties
                        .iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect();
                    env.set(var::KAFKA_PROPERTIES, &props.join(","));
                }
            }
            Store::Mysql => {
                if let Some(r) = &s.mysql {
                    env.secret(var::MYSQL_URL, r);
                }
            }
            Store::Mongodb => {
                if let Some(m) = &s.mongodb {
                    env.secret(var::MONGO_URL, &m.url);
                    env.set(var::MONGO_DATABASE, &m.database);
                }
            }
            Store::Redis => {
                if let Some(r) = &s.redis {
                    env.url(var::REDIS_URL, &r.url);
                    env.set(var::REDIS_KEY_PREFIX, &r.key_prefix);
                }
            }
            Store::Elasticsearch => {
                if let Some(es) = &s.elasticsearch {
                    env.url(var::ELASTICSEARCH_URL, &es.url);
                    // The posts index is the content service's own (the log service reads the
                    // access-log indices).
                    if service == Service::Content {
                        env.set(var::ES_INDEX_ALIAS, &es.posts_alias);
                    }
                }
            }
            Store::OpenAi => {
                if let Some(k) = &s.openai.api_key {
                    env.secret(var::OPENAI_API_KEY, k);
                }
                env.set(var::OPENAI_BASE_URL, &s.openai.base_url);
                env.set(var::OPENAI_MODEL, &s.openai.model);
            }
        }
    }
    env
}

/// `ELASTICSEARCH_URL` from its Secret, when the spec gives a Secret reference (Logstash, which
/// is no Campus service, expands it in its pipelines).
pub fn elasticsearch_secret_env(p: &Platform) -> Option<EnvVar> {
    match &p.stores.elasticsearch.as_ref()?.url {
        Url::Secret(r) => Some(secret_env(var::ELASTICSEARCH_URL, r)),
        Url::Plain(_) => None,
    }
}

/// A variable read from a Secret key.
pub fn secret_env(name: &str, r: &SecretKeyRef) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: r.name.clone(),
                key: r.key.clone(),
                optional: None,
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::fixtures::{model, with_secret_urls};

    /// Each service is told about exactly the stores the contract says it needs.
    #[test]
    fn each_service_gets_the_stores_of_the_contract_table() {
        // Every store configured, the optional OpenAI key too.
        let p = model(&format!(
            "{}  openai: {{apiKeySecretRef: {{name: ai, key: key}}}}\n",
            with_secret_urls()
        ));
        let names = |e: &ServiceEnv| -> Vec<String> {
            e.config
                .keys()
                .cloned()
                .chain(e.secrets.iter().map(|v| v.name.clone()))
                .collect()
        };
        for service in Service::ALL {
            let have = names(&service_env(&p, service));
            for store in STORES {
                assert_eq!(
                    have.iter().any(|n| n == store.env()),
                    service.needs(store),
                    "{}: {}",
                    service.as_str(),
                    store.env()
                );
            }
        }
    }
}
