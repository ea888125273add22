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

/// A Secret of the platform's namespace, as a whole.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretRef {
    /// Name of the Secret (in the platform's namespace).
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// librdkafka properties that carry credentials: refused in `kafka.properties` (which goes into a
/// ConfigMap); they belong in the Secret of `kafka.propertiesSecretRef`.
pub const CREDENTIAL_PROPERTIES: [&str; 5] = [
    "sasl.password",
    "ssl.key.password",
    "ssl.keystore.password",
    "ssl.key.pem",
    "sasl.oauthbearer.client.secret",
];

/// The CEL rule refusing [`CREDENTIAL_PROPERTIES`] in `properties` (a map lookup per name).
fn properties_rule() -> String {
    let names: Vec<String> = CREDENTIAL_PROPERTIES
        .iter()
        .map(|k| format!("'{k}'"))
        .collect();
    format!(
        "!has(self.properties) || ![{}].exists(k, k in self.properties)",
        names.join(", ")
    )
}

fn properties_message() -> String {
    format!(
        "properties must not hold credentials ({}): put them in a Secret, its keys the property names, and name it in propertiesSecretRef",
        CREDENTIAL_PROPERTIES.join(", ")
    )
}

/// A URL whose authority carries a password (`scheme://user:password@host`, `redis://:password@host`),
/// in any of a comma-separated list: the regular expression of the CEL rule, which
/// [`url_has_password`] repeats for platforms stored under an older CRD.
pub const URL_PASSWORD_PATTERN: &str = "://[^/?#@]*:[^/?#@]*@";

/// The message of the rule refusing a `url` with a password.
pub const URL_PASSWORD_MESSAGE: &str = "url must not carry a password (user:password@): put the URL in a Secret and name it in urlSecretRef";

/// Whether `url` (or one of a comma-separated list) names a password in its authority: after a
/// `://`, a `:` and then an `@` before any `/`, `?` or `#` ([`URL_PASSWORD_PATTERN`]).
pub fn url_has_password(url: &str) -> bool {
    url.match_indices("://").any(|(at, _)| {
        let rest = &url[at + 3..];
        match rest.find(['/', '?', '#', '@']) {
            Some(end) if rest.as_bytes()[end] == b'@' => rest[..end].contains(':'),
            _ => false,
        }
    })
}

/// Kafka connection and naming.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": properties_rule(),
    "message": properties_message(),
}]))]
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
    /// (e.g. `security.protocol`). Not applied to Filebeat or Logstash. They go into the services'
    /// ConfigMaps: credentials (`sasl.password`, `ssl.key.password`, `ssl.keystore.password`,
    /// `ssl.key.pem`, `sasl.oauthbearer.client.secret`) are refused here and belong in
    /// `propertiesSecretRef`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub properties: BTreeMap<String, String>,
    /// A Secret whose keys are librdkafka property names and whose values are theirs (e.g.
    /// `sasl.password`): the Kafka credentials of every Campus client. The containers read it
    /// whole as the variables `KAFKA_PROPERTY_<key>` (`envFrom` with that prefix), which win over
    /// `properties`; the operator never reads it, so its own admin client takes Kafka credentials
    /// from the operator's environment (`KAFKA_PROPERTY_<key>`; the chart's
    /// `operator.kafkaPropertiesSecret`). Not applied to Filebeat or Logstash. A changed reference
    /// rolls the pods; a changed value in the Secret reaches them when they restart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub properties_secret_ref: Option<SecretRef>,
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
}, {
    "rule": format!("!has(self.url) || !self.url.matches('{URL_PASSWORD_PATTERN}')"),
    "message": URL_PASSWORD_MESSAGE,
}]))]
pub struct RedisSpec {
    /// URL `redis://host:port[/db]` (`REDIS_URL`), for a Redis without a password (one with a
    /// password is refused: use `urlSecretRef`). Exactly one of `url` and `urlSecretRef` is given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 2048))]
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
}, {
    "rule": format!("!has(self.url) || !self.url.matches('{URL_PASSWORD_PATTERN}')"),
    "message": URL_PASSWORD_MESSAGE,
}]))]
pub struct ElasticsearchSpec {
    /// URL(s) `http://host:9200`, comma separated (`ELASTICSEARCH_URL`), for an Elasticsearch
    /// without authentication (one with `user:password@` is refused: use `urlSecretRef`).
    /// Exactly one of `url` and `urlSecretRef` is given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 4096))]
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_in_a_urls_authority_is_found_in_any_of_a_list() {
        for url in [
            "redis://user:pw@redis:6379",
            "redis://:pw@redis:6379/0",
            "http://elastic:changeme@es:9200",
            "http://es-1:9200,https://u:p@es-2:9200",
            "https://u:p:q@es",
        ] {
            assert!(url_has_password(url), "{url}");
        }
        for url in [
            "redis://redis:6379",
            "redis://user@redis:6379",
            "http://es:9200,http://es-2:9200",
            "http://es:9200/path@x:y",
            "http://es:9200/?q=a:b@c",
            "http://es:9200#a:b@c",
        ] {
            assert!(!url_has_password(url), "{url}");
        }
    }

    #[test]
    fn the_cel_rule_names_every_credential_property() {
        let rule = properties_rule();
        for k in CREDENTIAL_PROPERTIES {
            assert!(rule.contains(&format!("'{k}'")), "{rule}");
            assert!(properties_message().contains(k));
        }
    }
}
