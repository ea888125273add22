//! The platform's topology in one table, read by both sides: the operator plans its topics,
//! worker Deployments, dead-letter topics and environment from it, and every service's command
//! line takes its consumer group and topics from the entry of its sub-command.
//!
//! - [`topic`], [`group`]: the logical names (before the platform prefix, see [`prefixed`]).
//! - [`WORKERS`]: every consumer-group worker — service, binary, sub-command, group, the topics
//!   it consumes and writes, its dead-letter topics, the stores it needs, its ops port.
//! - [`APIS`]: every HTTP API — the topic it writes, the stores it needs, its port.
//! - [`env`]: the environment variables the operator sets and the services read.
//! - [`port`], [`content`], [`access_log`]: ports and the index names both sides spell.
//!
//! A test in each service crate builds every worker's subscription through the code path of its
//! binary and compares it with this table; a test in the operator compares its plan with it.

/// Logical topic names (before the platform prefix).
pub mod topic {
    /// Every change of a post, from the content API's outbox relay.
    pub const POST_ORIGINAL: &str = "post.original";
    /// Posts the inspector approved (with tags) or withdrew.
    pub const POST_INSPECTED: &str = "post.inspected";
    /// Coupon issue requests the coupon API accepted.
    pub const COUPON_REQUEST: &str = "coupon.request";
    /// Container lines Filebeat ships.
    pub const ACCESS_LOG: &str = "access-log";
    /// Every topic of the platform.
    pub const ALL: &[&str] = &[POST_ORIGINAL, POST_INSPECTED, COUPON_REQUEST, ACCESS_LOG];
}

/// Logical consumer-group names (before the platform prefix).
pub mod group {
    pub const INSPECTION: &str = "inspection";
    pub const CACHE: &str = "cache";
    pub const INBOX: &str = "inbox";
    pub const INDEX: &str = "index";
    pub const COUPON_ISSUE: &str = "coupon-issue";
    pub const LOG_INDEX: &str = "log-index";
    /// The default group of a Logstash pipeline (the operator's CRD lets a pipeline pick another).
    pub const LOGSTASH: &str = "logstash";
}

/// The full name of a logical topic or group: `prefix.name`, or `name` with an empty prefix.
pub fn prefixed(prefix: &str, logical: &str) -> String {
    if prefix.is_empty() {
        logical.to_owned()
    } else {
        format!("{prefix}.{logical}")
    }
}

/// The dead-letter topic of `topic` for consumer group `group` (both as named in Kafka, or both
/// logical): `<topic>.dlq.<group>`.
pub fn dlq_topic(topic: &str, group: &str) -> String {
    format!("{topic}.dlq.{group}")
}

/// Which Campus service a process belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Service {
    Content,
    Coupon,
    Log,
}

impl Service {
    pub const ALL: [Service; 3] = [Service::Content, Service::Coupon, Service::Log];

    /// `content`, `coupon`, `log`: part of object names and labels.
    pub const fn as_str(self) -> &'static str {
        match self {
            Service::Content => "content",
            Service::Coupon => "coupon",
            Service::Log => "log",
        }
    }

    /// The binary (and image name) of the service.
    pub const fn binary(self) -> &'static str {
        match self {
            Service::Content => "campus-content",
            Service::Coupon => "campus-coupon",
            Service::Log => "campus-log",
        }
    }

    /// The service's HTTP API.
    pub fn api(self) -> &'static Api {
        APIS.iter()
            .find(|a| a.service == self)
            .expect("every service has an API")
    }

    /// The service's workers, in table order.
    pub fn workers(self) -> impl Iterator<Item = &'static Worker> {
        WORKERS.iter().filter(move |w| w.service == self)
    }

    /// Checks that `offered`, the names of a binary's `worker` sub-commands, are exactly this
    /// service's workers in the table; the error lists both sides.
    pub fn check_worker_commands<'a>(
        self,
        offered: impl IntoIterator<Item = &'a str>,
    ) -> Result<(), String> {
        let mut offered: Vec<String> = offered.into_iter().map(|c| format!("worker {c}")).collect();
        let mut listed: Vec<String> = self.workers().map(|w| w.command.join(" ")).collect();
        offered.sort();
        listed.sort();
        if offered == listed {
            Ok(())
        } else {
            Err(format!(
                "worker sub-commands {offered:?}, the contract lists {listed:?}"
            ))
        }
    }

    /// Whether any process of the service (its API or a worker) needs `store`.
    pub fn needs(self, store: Store) -> bool {
        self.api().needs(store) || self.workers().any(|w| w.needs(store))
    }
}

/// A backing server a process connects to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Store {
    Mysql,
    Redis,
    Mongodb,
    Elasticsearch,
    Kafka,
    /// An OpenAI-compatible chat API (optional: without a key the inspector's offline policy runs).
    OpenAi,
}

impl Store {
    /// The environment variable that says where the store is (or, for OpenAI, its key).
    pub const fn env(self) -> &'static str {
        match self {
            Store::Mysql => env::MYSQL_URL,
            Store::Redis => env::REDIS_URL,
            Store::Mongodb => env::MONGO_URL,
            Store::Elasticsearch => env::ELASTICSEARCH_URL,
            Store::Kafka => env::KAFKA_BROKERS,
            Store::OpenAi => env::OPENAI_API_KEY,
        }
    }
}

/// A consumer-group worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Worker {
    pub service: Service,
    /// The worker's name: `content-inspection`, `log-index` (the operator's Deployment suffix).
    pub name: &'static str,
    /// Arguments after the binary: `["worker", "inspect"]`.
    pub command: &'static [&'static str],
    /// Logical consumer group.
    pub group: &'static str,
    /// Logical topics the group consumes.
    pub consumes: &'static [&'static str],
    /// Logical topic the worker writes, if any.
    pub produces: Option<&'static str>,
    /// What the worker connects to.
    pub stores: &'static [Store],
    /// Port of its ops server (`/healthz`, `/readyz`, `/metrics`).
    pub ops_port: u16,
}

impl Worker {
    pub const fn binary(&self) -> &'static str {
        self.service.binary()
    }

    /// Logical dead-letter topics, one per consumed topic.
    pub fn dlq_topics(&self) -> Vec<String> {
        self.consumes
            .iter()
            .map(|t| dlq_topic(t, self.group))
            .collect()
    }

    pub fn needs(&self, store: Store) -> bool {
        self.stores.contains(&store)
    }

    /// The command line that starts this worker under `prefix`, with each store's flag set to
    /// `value(store)` (the services' contract tests parse it as the binary does).
    pub fn command_line(&self, prefix: &str, value: impl Fn(Store) -> &'static str) -> Vec<String> {
        let mut args = vec![self.binary().to_owned()];
        args.extend(self.command.iter().map(|s| (*s).to_owned()));
        args.extend([env::flag(env::KAFKA_PREFIX), prefix.to_owned()]);
        for store in self.stores {
            args.extend([env::flag(store.env()), value(*store).to_owned()]);
        }
        args
    }

    /// The full consumer group and topics this worker must subscribe to under `prefix`.
    pub fn subscription(&self, prefix: &str) -> (String, Vec<String>) {
        (
            prefixed(prefix, self.group),
            self.consumes.iter().map(|t| prefixed(prefix, t)).collect(),
        )
    }

    /// The entry whose binary is `binary` and whose command is `command`.
    pub fn find(binary: &str, command: &[&str]) -> Option<&'static Worker> {
        WORKERS
            .iter()
            .find(|w| w.binary() == binary && w.command == command)
    }
}

/// An HTTP API (it also serves `/healthz`, `/readyz`, `/metrics` on its port).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Api {
    pub service: Service,
    /// Arguments after the binary.
    pub command: &'static [&'static str],
    /// Logical topic the API writes, if any.
    pub produces: Option<&'static str>,
    pub stores: &'static [Store],
    pub port: u16,
}

impl Api {
    pub fn needs(&self, store: Store) -> bool {
        self.stores.contains(&store)
    }
}

/// Every worker of the platform.
pub const WORKERS: &[Worker] = &[
    workers::CONTENT_INSPECTION,
    workers::CONTENT_CACHE,
    workers::CONTENT_INBOX,
    workers::CONTENT_INDEX,
    workers::COUPON_ISSUE,
    workers::LOG_INDEX,
];

/// Every HTTP API of the platform.
pub const APIS: &[Api] = &[
    Api {
        service: Service::Content,
        command: &["api"],
        // Through the transactional outbox.
        produces: Some(topic::POST_ORIGINAL),
        stores: &[
            Store::Kafka,
            Store::Mysql,
            Store::Redis,
            Store::Mongodb,
            Store::Elasticsearch,
        ],
        port: port::API,
    },
    Api {
        service: Service::Coupon,
        command: &["api"],
        produces: Some(topic::COUPON_REQUEST),
        stores: &[Store::Kafka, Store::Mysql, Store::Redis],
        port: port::API,
    },
    Api {
        service: Service::Log,
        command: &["api"],
        produces: None,
        stores: &[Store::Elasticsearch],
        port: port::API,
    },
];

/// The workers one by one (each service's command line names its own).
pub mod workers {
    use super::{Service, Store, Worker, group, port, topic};

    pub const CONTENT_INSPECTION: Worker = Worker {
        service: Service::Content,
        name: "content-inspection",
        command: &["worker", "inspect"],
        group: group::INSPECTION,
        consumes: &[topic::POST_ORIGINAL],
        produces: Some(topic::POST_INSPECTED),
        // MySQL: a BAD verdict is stored on the post, so the API never serves it.
        stores: &[Store::Kafka, Store::Mysql, Store::OpenAi],
        ops_port: port::OPS,
    };
    pub const CONTENT_CACHE: Worker = Worker {
        service: Service::Content,
        name: "content-cache",
        command: &["worker", "cache"],
        group: group::CACHE,
        // Only what the inspector approved reaches the detail cache.
        consumes: &[topic::POST_INSPECTED],
        produces: None,
        stores: &[Store::Kafka, Store::Redis],
        ops_port: port::OPS,
    };
    pub const CONTENT_INBOX: Worker = Worker {
        service: Service::Content,
        name: "content-inbox",
        command: &["worker", "inbox"],
        group: group::INBOX,
        consumes: &[topic::POST_INSPECTED],
        produces: None,
        stores: &[Store::Kafka, Store::Mongodb, Store::Mysql],
        ops_port: port::OPS,
    };
    pub const CONTENT_INDEX: Worker = Worker {
        service: Service::Content,
        name: "content-index",
        command: &["worker", "index"],
        group: group::INDEX,
        consumes: &[topic::POST_INSPECTED],
        produces: None,
        stores: &[Store::Kafka, Store::Elasticsearch],
        ops_port: port::OPS,
    };
    pub const COUPON_ISSUE: Worker = Worker {
        service: Service::Coupon,
        name: "coupon-issue",
        command: &["worker", "issue"],
        group: group::COUPON_ISSUE,
        consumes: &[topic::COUPON_REQUEST],
        produces: None,
        stores: &[Store::Kafka, Store::Mysql, Store::Redis],
        ops_port: port::OPS,
    };
    pub const LOG_INDEX: Worker = Worker {
        service: Service::Log,
        name: "log-index",
        command: &["worker", "index"],
        group: group::LOG_INDEX,
        consumes: &[topic::ACCESS_LOG],
        produces: None,
        stores: &[Store::Kafka, Store::Elasticsearch],
        ops_port: port::OPS,
    };
}

/// Ports the processes listen on.
pub mod port {
    /// The APIs (`HTTP_ADDR`).
    pub const API: u16 = 8080;
    /// The workers' ops server (`OPS_ADDR`).
    pub const OPS: u16 = 9090;
    /// The coupon API's admin listener (`ADMIN_ADDR`: `/admin/*`, never exposed publicly).
    pub const ADMIN: u16 = 8081;
}

/// Environment variables the operator sets and the services read (each is also a flag:
/// [`flag`] gives its name).
pub mod env {
    pub const KAFKA_BROKERS: &str = "KAFKA_BROKERS";
    pub const KAFKA_PREFIX: &str = "KAFKA_PREFIX";
    pub const KAFKA_PROPERTIES: &str = "KAFKA_PROPERTIES";
    /// Prefix of the variables that carry one librdkafka property each:
    /// `KAFKA_PROPERTY_sasl.password=…` sets `sasl.password`. The operator fills them from the
    /// Secret of `spec.kafka.propertiesSecretRef` (`envFrom` with this prefix: the Secret's keys
    /// are the property names), so credentials never pass through a ConfigMap.
    pub const KAFKA_PROPERTY_PREFIX: &str = "KAFKA_PROPERTY_";
    pub const MYSQL_URL: &str = "MYSQL_URL";
    pub const REDIS_URL: &str = "REDIS_URL";
    pub const REDIS_KEY_PREFIX: &str = "REDIS_KEY_PREFIX";
    pub const MONGO_URL: &str = "MONGO_URL";
    pub const MONGO_DATABASE: &str = "MONGO_DATABASE";
    pub const ELASTICSEARCH_URL: &str = "ELASTICSEARCH_URL";
    pub const ES_INDEX_ALIAS: &str = "ES_INDEX_ALIAS";
    pub const OPENAI_API_KEY: &str = "OPENAI_API_KEY";
    pub const OPENAI_BASE_URL: &str = "OPENAI_BASE_URL";
    pub const OPENAI_MODEL: &str = "OPENAI_MODEL";
    pub const LOG_INDEX_PREFIX: &str = "LOG_INDEX_PREFIX";
    pub const HTTP_ADDR: &str = "HTTP_ADDR";
    /// How long an API goes on serving after SIGTERM (`/readyz` 503, `Connection: close`) before
    /// it stops accepting, in milliseconds; the operator sets it in every API pod.
    pub const HTTP_SHUTDOWN_DRAIN_MS: &str = "HTTP_SHUTDOWN_DRAIN_MS";
    pub const OPS_ADDR: &str = "OPS_ADDR";
    /// The coupon API's admin listener (`/admin/*`).
    pub const ADMIN_ADDR: &str = "ADMIN_ADDR";
    /// The tracing filter (`info`, `campus_content=debug`).
    pub const RUST_LOG: &str = "RUST_LOG";
    /// Who calls the content and coupon APIs: `none` (the `userId` a request names, as in the
    /// course) or `jwt` (a bearer token names the user). The operator sets the `AUTH_*` variables
    /// in those two API containers from `spec.auth`.
    pub const AUTH_MODE: &str = "AUTH_MODE";
    /// The HS256 shared secret (a Secret reference, never a ConfigMap).
    pub const AUTH_JWT_SECRET: &str = "AUTH_JWT_SECRET";
    /// A PEM public key (RSA, EC or Ed25519) tokens are signed with.
    pub const AUTH_JWT_PUBLIC_KEY: &str = "AUTH_JWT_PUBLIC_KEY";
    /// The one signing algorithm accepted (`HS256`, `RS256`, `ES256`, …); default: the key's.
    pub const AUTH_JWT_ALGORITHM: &str = "AUTH_JWT_ALGORITHM";
    /// The JWKS the signing keys are fetched from.
    pub const AUTH_JWKS_URL: &str = "AUTH_JWKS_URL";
    /// The `iss` a token must carry, when set.
    pub const AUTH_JWT_ISSUER: &str = "AUTH_JWT_ISSUER";
    /// An `aud` a token must carry, when set.
    pub const AUTH_JWT_AUDIENCE: &str = "AUTH_JWT_AUDIENCE";
    /// The claim holding the user id (default `sub`).
    pub const AUTH_USER_CLAIM: &str = "AUTH_USER_CLAIM";
    /// Rate limits of the coupon API's `POST /coupons`, per replica (0 or unset: none): one user's
    /// requests per second and burst, every user's per second and burst. The operator sets them
    /// from `spec.coupon.rateLimits`.
    pub const COUPON_RATE_PER_USER: &str = "COUPON_RATE_PER_USER";
    pub const COUPON_RATE_PER_USER_BURST: &str = "COUPON_RATE_PER_USER_BURST";
    pub const COUPON_RATE_GLOBAL: &str = "COUPON_RATE_GLOBAL";
    pub const COUPON_RATE_GLOBAL_BURST: &str = "COUPON_RATE_GLOBAL_BURST";
    /// Partitions of `coupon.request` when the coupon API creates it (it starts before the topic
    /// exists); the operator sets the planned count.
    pub const COUPON_REQUEST_PARTITIONS: &str = "COUPON_REQUEST_PARTITIONS";

    /// The flag of a variable: `KAFKA_BROKERS` → `--kafka-brokers`.
    pub fn flag(var: &str) -> String {
        format!("--{}", var.to_ascii_lowercase().replace('_', "-"))
    }
}

/// Names of the content service both sides spell.
pub mod content {
    /// The Elasticsearch alias every posts read and write goes through.
    pub const POSTS_ALIAS: &str = "posts";
}

/// The access-log indices: daily `<prefix>-YYYY.MM.dd` behind the alias `<prefix>`, shaped by the
/// composable index template `<prefix>`.
pub mod access_log {
    /// The topic Filebeat writes (before the platform prefix).
    pub const TOPIC: &str = super::topic::ACCESS_LOG;
    /// The default index prefix.
    pub const INDEX_PREFIX: &str = "access-log";

    /// The alias over the daily indices of `prefix` (what the log API and Kibana query).
    pub fn alias(prefix: &str) -> &str {
        prefix
    }

    /// The name of the index template of `prefix`.
    pub fn template_name(prefix: &str) -> &str {
        prefix
    }

    /// The index pattern of the daily indices.
    pub fn pattern(prefix: &str) -> String {
        format!("{prefix}-*")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_dead_letter_topics() {
        assert_eq!(prefixed("", "post.original"), "post.original");
        assert_eq!(prefixed("blue", "post.original"), "blue.post.original");
        assert_eq!(
            workers::CONTENT_INSPECTION.dlq_topics(),
            ["post.original.dlq.inspection"]
        );
        assert_eq!(
            dlq_topic("blue.post.inspected", "blue.cache"),
            "blue.post.inspected.dlq.blue.cache"
        );
        assert_eq!(env::flag(env::KAFKA_BROKERS), "--kafka-brokers");
    }

    #[test]
    fn the_table_is_consistent() {
        let mut names: Vec<_> = WORKERS.iter().map(|w| w.name).collect();
        let mut groups: Vec<_> = WORKERS.iter().map(|w| w.group).collect();
        names.sort_unstable();
        names.dedup();
        groups.sort_unstable();
        groups.dedup();
        assert_eq!(names.len(), WORKERS.len(), "worker names are unique");
        assert_eq!(groups.len(), WORKERS.len(), "groups are unique");
        for w in WORKERS {
            assert!(w.name.starts_with(w.service.as_str()), "{}", w.name);
            assert_eq!(w.command[0], "worker", "{}", w.name);
            assert_eq!(
                Worker::find(w.binary(), w.command),
                Some(w),
                "{}: one entry per binary and command",
                w.name
            );
            assert!(w.needs(Store::Kafka), "{}", w.name);
            for t in w.consumes.iter().chain(&w.produces) {
                assert!(topic::ALL.contains(t), "{}: unknown topic {t}", w.name);
            }
        }
        // Every topic written inside the platform is consumed by a worker.
        for t in APIS
            .iter()
            .filter_map(|a| a.produces)
            .chain(WORKERS.iter().filter_map(|w| w.produces))
        {
            assert!(WORKERS.iter().any(|w| w.consumes.contains(&t)), "{t}");
        }
        for s in Service::ALL {
            assert_eq!(s.api().service, s);
        }
        assert!(Service::Content.needs(Store::OpenAi));
        assert!(!Service::Coupon.needs(Store::Elasticsearch));
        assert!(!Service::Log.needs(Store::Redis));
    }

    #[test]
    fn the_detail_cache_is_fed_from_inspected_posts() {
        assert_eq!(workers::CONTENT_CACHE.consumes, [topic::POST_INSPECTED]);
        assert_eq!(workers::CONTENT_CACHE.command, ["worker", "cache"]);
    }
}
