//! Where the backing services are: Kafka, MySQL, MongoDB, Redis, Elasticsearch and the OpenAI API.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A key in a Secret of the platform's namespace.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// Name of the Secret (in the platform's namespace).
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key inside the Secret.
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

/// Kafka connection and naming.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KafkaSpec {
    /// Bootstrap servers, comma separated `host:port` pairs (e.g. `kafka:9092`).
    #[schemars(length(min = 1))]
    pub brokers: String,
    /// Prefix of every topic and consumer-group name, joined with `.` (`blue` gives
    /// `blue.post.original`). Defaults to `<namespace>.<name>`, so two platforms of one name in
    /// two namespaces never share a topic, group or Redis key; the empty string means no prefix.
    /// The prefix in use is pinned in `status.kafkaPrefix`: removing this field never renames
    /// topics (platforms made before the namespace joined the default keep their name alone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 100), regex(pattern = r"^[a-zA-Z0-9._-]*$"))]
    pub prefix: Option<String>,
    /// Extra librdkafka properties for every Campus client and for the operator's admin client
    /// (e.g. `security.protocol`). Not applied to Filebeat or Logstash.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub properties: BTreeMap<String, String>,
}

/// MySQL, used by the content and coupon services.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MysqlSpec {
    /// The Secret key holding the URL `mysql://user:password@host:port/database` (`MYSQL_URL`).
    pub url_secret_ref: SecretKeyRef,
}

/// MongoDB, used by the content service's inbox projection.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MongoSpec {
    /// The Secret key holding the connection string `mongodb://…` (`MONGO_URL`).
    pub url_secret_ref: SecretKeyRef,
    /// Database name (`MONGO_DATABASE`).
    #[serde(default = "default_mongo_database")]
    #[schemars(length(min = 1, max = 63))]
    pub database: String,
}

fn default_mongo_database() -> String {
    "campus".to_owned()
}

/// Redis, used by the content cache and the coupon service. Exactly one of `url` and
/// `urlSecretRef` is given.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "has(self.url) != has(self.urlSecretRef)",
    "message": "give exactly one of url and urlSecretRef",
}]))]
pub struct RedisSpec {
    /// URL `redis://host:port[/db]` (`REDIS_URL`), for a Redis without a password. Exactly one
    /// of `url` and `urlSecretRef` is given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub url: Option<String>,
    /// The Secret key holding the URL `redis://[:password@]host:port[/db]` (`REDIS_URL`), so a
    /// password stays out of the platform's spec. Exactly one of `url` and `urlSecretRef` is
    /// given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_secret_ref: Option<SecretKeyRef>,
    /// Prefix of every key the services write (`REDIS_KEY_PREFIX`). Defaults to `<kafka prefix>:`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_prefix: Option<String>,
}

/// Elasticsearch, used by the content search index, the log API and the log processor. Exactly
/// one of `url` and `urlSecretRef` is given.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "has(self.url) != has(self.urlSecretRef)",
    "message": "give exactly one of url and urlSecretRef",
}]))]
pub struct ElasticsearchSpec {
    /// URL(s) `http://host:9200`, comma separated (`ELASTICSEARCH_URL`), for an Elasticsearch
    /// without authentication. Exactly one of `url` and `urlSecretRef` is given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub url: Option<String>,
    /// The Secret key holding one URL `http(s)://user:password@host:port` (`ELASTICSEARCH_URL`;
    /// the credentials become basic auth), so they stay out of the platform's spec. Logstash
    /// reads it as `${ELASTICSEARCH_URL}` in its pipelines. Exactly one of `url` and
    /// `urlSecretRef` is given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_secret_ref: Option<SecretKeyRef>,
    /// Alias the content search index is served under (`ES_INDEX_ALIAS`).
    #[serde(default = "default_posts_alias")]
    #[schemars(length(min = 1, max = 255))]
    pub posts_alias: String,
}

fn default_posts_alias() -> String {
    campus_contract::content::POSTS_ALIAS.to_owned()
}

/// The OpenAI-compatible chat API of the content inspector.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "self.baseUrl.startsWith('https://') || (has(self.allowInsecureBaseUrl) && self.allowInsecureBaseUrl)",
    "message": "baseUrl must be https:// (the API key travels with every request); set allowInsecureBaseUrl: true for a plain-HTTP server you trust",
}]))]
pub struct OpenAiSpec {
    /// The Secret key holding the API key (`OPENAI_API_KEY`). Unset: the inspector runs its
    /// offline policy and says so in its logs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_secret_ref: Option<SecretKeyRef>,
    /// Base URL of any OpenAI-compatible server (`OPENAI_BASE_URL`); `https://` unless
    /// `allowInsecureBaseUrl`.
    #[serde(default = "default_openai_base_url")]
    pub base_url: String,
    /// Allow a plain `http://` base URL (a local model server or a fake on the cluster network):
    /// the API key and the posts then cross the network unencrypted.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_insecure_base_url: bool,
    /// Chat model (`OPENAI_MODEL`).
    #[serde(default = "default_openai_model")]
    #[schemars(length(min = 1))]
    pub model: String,
}

impl Default for OpenAiSpec {
    fn default() -> Self {
        Self {
            api_key_secret_ref: None,
            base_url: default_openai_base_url(),
            allow_insecure_base_url: false,
            model: default_openai_model(),
        }
    }
}

fn default_openai_base_url() -> String {
    "https://api.openai.com/v1".to_owned()
}

fn default_openai_model() -> String {
    "gpt-4o-mini".to_owned()
}
