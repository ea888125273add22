//! Validation that the schema cannot express, plus the CRD's CEL rules again (for a platform
//! stored under an older CRD, or by a server that does not enforce them). Pure: a spec is either
//! turned into the validated [`Platform`] the builders take, or its problems are reported in
//! status and no child is touched.

use std::collections::BTreeSet;

use kube::ResourceExt;

use campus_contract::Store;

use crate::crd::{CampusPlatform, GroupSpec, ProcessorKind, SecretKeyRef};
use crate::model::{
    Elasticsearch, Filebeat, Kafka, Logging, Logstash, Mongo, OpenAi, Pipeline, Platform,
    Processor, Redis, ServiceSettings, Stores, Url,
};
use crate::plan::{Plan, Service, full_name};

/// Every problem of a spec, as sentences, in the order checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid(pub Vec<String>);

/// The problems joined by `; `: the message of `Ready=False/InvalidSpec` and of its event.
impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.join("; "))
    }
}

impl std::error::Error for Invalid {}

/// The validated platform, or every problem of the spec.
pub fn validate(cr: &CampusPlatform) -> Result<Platform, Invalid> {
    let s = &cr.spec;
    let mut problems = Vec::new();
    let mut need = |ok: bool, what: &str| {
        if !ok {
            problems.push(what.to_owned());
        }
    };

    // Kafka.
    let brokers: Vec<&str> = s.kafka.brokers.split(',').map(str::trim).collect();
    need(
        brokers.iter().all(|b| valid_host_port(b)),
        &format!(
            "kafka.brokers must be host:port pairs separated by commas, got `{}`",
            s.kafka.brokers
        ),
    );
    let credentials: Vec<&str> = crate::crd::backing::CREDENTIAL_PROPERTIES
        .into_iter()
        .filter(|k| s.kafka.properties.contains_key(*k))
        .collect();
    need(
        credentials.is_empty(),
        &format!(
            "kafka.properties must not hold credentials ({}): put them in a Secret, its keys the property names, and name it in kafka.propertiesSecretRef",
            credentials.join(", ")
        ),
    );
    if let Some(r) = &s.kafka.properties_secret_ref {
        need(
            !r.name.is_empty(),
            "kafka.propertiesSecretRef needs a Secret name",
        );
    }
    let prefix = cr.kafka_prefix();
    need(
        prefix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
            && prefix.len() <= 100,
        &format!(
            "the Kafka prefix `{prefix}` may only contain letters, digits, `.`, `_` and `-` (at most 100)"
        ),
    );

    // The stores the running processes need (the contract's table), each configured.
    let plan = Plan::of(cr);
    let services = running_services(cr);
    let logstash = s.logging.processor == ProcessorKind::Logstash;
    for (store, name, configured) in [
        (Store::Mysql, "mysql", s.mysql.is_some()),
        (Store::Redis, "redis", s.redis.is_some()),
        (Store::Mongodb, "mongodb", s.mongodb.is_some()),
        (
            Store::Elasticsearch,
            "elasticsearch",
            s.elasticsearch.is_some(),
        ),
    ] {
        let needed = services
            .iter()
            .any(|svc| svc.api_replicas.is_some() && svc.service.api().needs(store))
            || plan.workers.iter().any(|w| w.contract.needs(store))
            || (logstash && store == LOGSTASH_NEEDS);
        need(
            !needed || configured,
            &format!("{name} is required by {}", users(store)),
        );
    }
    // The CRD's CEL rule says so too; checked here as well so a platform stored under an older
    // CRD, or one that slipped past a schema-less API, is reported rather than half-applied.
    let redis_url = s.redis.as_ref().and_then(|r| {
        url(
            "redis",
            r.url.as_deref(),
            r.url_secret_ref.as_ref(),
            &mut need,
        )
    });
    let es_url = s.elasticsearch.as_ref().and_then(|e| {
        url(
            "elasticsearch",
            e.url.as_deref(),
            e.url_secret_ref.as_ref(),
            &mut need,
        )
    });
    for (what, r) in [
        (
            "redis.urlSecretRef",
            s.redis.as_ref().and_then(|r| r.url_secret_ref.as_ref()),
        ),
        (
            "elasticsearch.urlSecretRef",
            s.elasticsearch
                .as_ref()
                .and_then(|e| e.url_secret_ref.as_ref()),
        ),
        (
            "mysql.urlSecretRef",
            s.mysql.as_ref().map(|m| &m.url_secret_ref),
        ),
        (
            "mongodb.urlSecretRef",
            s.mongodb.as_ref().map(|m| &m.url_secret_ref),
        ),
        (
            "openai.apiKeySecretRef",
            s.openai.api_key_secret_ref.as_ref(),
        ),
    ] {
        if let Some(r) = r {
            need(
                valid_secret_ref(r),
                &format!("{what} needs a Secret name and key"),
            );
        }
    }

    // The inspector's API key goes with every request to the base URL (also a CEL rule).
    let base = s.openai.base_url.trim();
    need(
        base.starts_with("https://")
            || (s.openai.allow_insecure_base_url && base.starts_with("http://")),
        &format!(
            "openai.baseUrl must be https:// (the API key travels with every request), got `{base}`; \
             set openai.allowInsecureBaseUrl: true for a plain-HTTP server you trust"
        ),
    );

    // Groups.
    let groups: [(&str, &GroupSpec); 6] = [
        ("content.groups.inspection", &s.content.groups.inspection),
        ("content.groups.cache", &s.content.groups.cache),
        ("content.groups.inbox", &s.content.groups.inbox),
        ("content.groups.index", &s.content.groups.index),
        ("coupon.groups.issue", &s.coupon.groups.issue),
        ("logging.native", &s.logging.native),
    ];
    for (path, g) in groups {
        need(
            (0..=100).contains(&g.replicas),
            &format!("{path}.replicas must be within 0..=100"),
        );
        if let Some(a) = &g.autoscaling {
            need(
                a.min_replicas >= 0 && a.min_replicas <= a.max_replicas,
                &format!(
                    "{path}.autoscaling needs 0 <= minReplicas <= maxReplicas, got {}..{}",
                    a.min_replicas, a.max_replicas
                ),
            );
            need(
                a.lag_per_replica >= 1,
                &format!("{path}.autoscaling.lagPerReplica must be at least 1"),
            );
        }
    }
    for (path, r) in [
        ("content.replicas", s.content.common.replicas),
        ("coupon.replicas", s.coupon.common.replicas),
        ("log.replicas", s.log.common.replicas),
    ] {
        need(
            (0..=100).contains(&r),
            &format!("{path} must be within 0..=100"),
        );
    }

    // Topics.
    let t = &s.topics;
    need(
        (1..=1000).contains(&t.partitions),
        "topics.partitions must be within 1..=1000",
    );
    need(
        (1..=10).contains(&t.replication_factor),
        "topics.replicationFactor must be within 1..=10",
    );
    let known = known_topics(cr);
    let mut seen = BTreeSet::new();
    for o in &t.overrides {
        need(
            seen.insert(o.name.as_str()),
            &format!("topics.overrides names `{}` twice", o.name),
        );
        need(
            known.contains(&o.name),
            &format!(
                "topics.overrides names `{}`, which is not a topic of this platform (known: {})",
                o.name,
                known.iter().cloned().collect::<Vec<_>>().join(", ")
            ),
        );
        if let Some(p) = o.partitions {
            need(
                (1..=1000).contains(&p),
                &format!(
                    "topics.overrides[{}].partitions must be within 1..=1000",
                    o.name
                ),
            );
        }
    }

    // Logging.
    let logging = &s.logging;
    if logging.processor == ProcessorKind::Logstash {
        let pipelines = &logging.logstash.pipelines;
        need(
            !pipelines.is_empty(),
            "logging.logstash.pipelines needs at least one pipeline",
        );
        let mut names = BTreeSet::new();
        for p in pipelines {
            need(
                names.insert(p.name.as_str()),
                &format!("logging.logstash.pipelines names `{}` twice", p.name),
            );
            need(
                valid_dns_label(&p.name),
                &format!("pipeline name `{}` must be a DNS label", p.name),
            );
        }
    }
    if let Some(ns) = &logging.filebeat.namespace {
        need(
            valid_dns_label(ns),
            &format!("logging.filebeat.namespace: `{ns}` is not a namespace name"),
        );
    }
    for ns in &logging.filebeat.namespaces {
        need(
            valid_dns_label(ns),
            &format!("logging.filebeat.namespaces: `{ns}` is not a namespace name"),
        );
    }

    // Who the APIs' requests act for (also CEL rules).
    for p in s.auth.problems() {
        need(false, &p);
    }

    // Object names must stay within 63 characters (Services, labels).
    let longest = format!("{}-content-inspection", cr.name_any());
    need(
        longest.len() <= 63,
        &format!(
            "the platform name is too long: child names such as `{longest}` exceed 63 characters"
        ),
    );
    // Pod customisation: each level parsed, then merged platform → service → group.
    let template = super::pod_template::parse(
        "template",
        s.template.as_ref(),
        &Default::default(),
        &mut problems,
    );
    let (mut services, mut plan) = (services, plan);
    templates(cr, &template, &mut services, &mut plan, &mut problems);
    if !problems.is_empty() {
        return Err(Invalid(problems));
    }
    let mut p = platform(cr, plan, services, prefix, redis_url, es_url);
    p.template = template;
    Ok(p)
}

/// The services' and workers' pod customisation: the platform's `template` with the service's
/// and then the group's merged over it.
fn templates(
    cr: &CampusPlatform,
    platform: &crate::model::PodTemplate,
    services: &mut [ServiceSettings],
    plan: &mut Plan,
    problems: &mut Vec<String>,
) {
    use super::pod_template::{group_path, parse};
    let s = &cr.spec;
    let mut merged = std::collections::BTreeMap::new();
    for (service, common) in [
        (Service::Content, &s.content.common),
        (Service::Coupon, &s.coupon.common),
        (Service::Log, &s.log.common),
    ] {
        let path = format!("{}.template", service.as_str());
        let own = parse(&path, common.template.as_ref(), platform, problems);
        merged.insert(service.as_str(), platform.merged(&own));
    }
    for svc in services.iter_mut() {
        svc.template = merged[svc.service.as_str()].clone();
    }
    for w in &mut plan.workers {
        let service = &merged[w.service.as_str()];
        let path = format!("{}.template", group_path(w));
        let own = parse(&path, w.spec.template.as_ref(), service, problems);
        w.template = service.merged(&own);
    }
}

/// What Logstash (no Campus service, so not in the contract) connects to.
const LOGSTASH_NEEDS: Store = Store::Elasticsearch;

/// Who needs `store`, from the contract's table, as a problem names them: the content and coupon
/// services by name, the log service by its parts (the log API; its indexer — the log processor,
/// as Logstash is).
fn users(store: Store) -> String {
    let services: Vec<&str> = [Service::Content, Service::Coupon]
        .into_iter()
        .filter(|s| s.needs(store))
        .map(Service::as_str)
        .collect();
    let mut who = Vec::new();
    match services.as_slice() {
        [] => {}
        [one] => who.push(format!("the {one} service")),
        many => who.push(format!("the {} services", and_list(many))),
    }
    if Service::Log.api().needs(store) {
        who.push("the log API".to_owned());
    }
    if Service::Log.workers().any(|w| w.needs(store)) || store == LOGSTASH_NEEDS {
        who.push("the log processor".to_owned());
    }
    and_list(&who)
}

/// `a`, `a and b`, `a, b and c`.
fn and_list<S: AsRef<str>>(items: &[S]) -> String {
    match items {
        [] => String::new(),
        [one] => one.as_ref().to_owned(),
        [init @ .., last] => {
            let init: Vec<&str> = init.iter().map(AsRef::as_ref).collect();
            format!("{} and {}", init.join(", "), last.as_ref())
        }
    }
}

/// The services with a process running — the API when enabled, the log service also for the
/// native indexer (one of its workers) — with their settings.
fn running_services(cr: &CampusPlatform) -> Vec<ServiceSettings> {
    let s = &cr.spec;
    let native = s.logging.processor == ProcessorKind::Native;
    [
        (
            Service::Content,
            &s.content.common,
            s.content.common.enabled,
        ),
        (Service::Coupon, &s.coupon.common, s.coupon.common.enabled),
        (Service::Log, &s.log.common, s.log.common.enabled || native),
    ]
    .into_iter()
    .filter(|(_, _, runs)| *runs)
    .map(|(service, c, _)| ServiceSettings {
        service,
        api_replicas: c.enabled.then_some(c.replicas),
        image: c.image.clone(),
        resources: c.resources.clone(),
        env: c.env.clone(),
        template: Default::default(),
    })
    .collect()
}

/// `url` or `secret`, exactly one of them.
fn url(
    what: &str,
    url: Option<&str>,
    secret: Option<&SecretKeyRef>,
    need: &mut impl FnMut(bool, &str),
) -> Option<Url> {
    need(
        url.is_none() || secret.is_none(),
        &format!("{what}: give either url or urlSecretRef, not both"),
    );
    need(
        url.is_some() || secret.is_some(),
        &format!("{what}: one of url and urlSecretRef is required"),
    );
    if let Some(u) = url {
        need(
            !crate::crd::backing::url_has_password(u),
            &format!("{what}.{}", crate::crd::backing::URL_PASSWORD_MESSAGE),
        );
    }
    match (url, secret) {
        (Some(u), None) => Some(Url::Plain(u.to_owned())),
        (None, Some(r)) => Some(Url::Secret(r.clone())),
        _ => None,
    }
}

/// The model of a spec that passed every check (`redis_url`, `es_url`: the checked URLs of the
/// stores the spec configures).
fn platform(
    cr: &CampusPlatform,
    plan: Plan,
    services: Vec<ServiceSettings>,
    prefix: String,
    redis_url: Option<Url>,
    es_url: Option<Url>,
) -> Platform {
    let s = &cr.spec;
    let redis = s.redis.as_ref().zip(redis_url).map(|(r, url)| Redis {
        url,
        key_prefix: r.key_prefix.clone().unwrap_or_else(|| {
            format!(
                "{}:",
                if prefix.is_empty() {
                    cr.name_any()
                } else {
                    prefix.clone()
                }
            )
        }),
    });
    let elasticsearch = s
        .elasticsearch
        .as_ref()
        .zip(es_url)
        .map(|(e, url)| Elasticsearch {
            url,
            posts_alias: e.posts_alias.clone(),
        });
    let l = &s.logging;
    let fb = &l.filebeat;
    let filebeat = fb.enabled.then(|| Filebeat {
        namespace: fb
            .namespace
            .clone()
            .unwrap_or_else(|| cr.namespace().unwrap_or_default()),
        image: fb.image.clone(),
        namespaces: if fb.all_namespaces {
            Vec::new()
        } else if fb.namespaces.is_empty() {
            vec![cr.namespace().unwrap_or_default()]
        } else {
            fb.namespaces.clone()
        },
        access_only: fb.access_only,
        resources: fb.resources.clone(),
    });
    let processor = match l.processor {
        ProcessorKind::Logstash => Processor::Logstash(Logstash {
            image: l.logstash.image.clone(),
            replicas: l.logstash.replicas,
            resources: l.logstash.resources.clone(),
            pipelines: l
                .logstash
                .pipelines
                .iter()
                .map(|p| {
                    let topic = full_name(&plan.prefix, &p.topic);
                    let group = full_name(&plan.prefix, &p.group);
                    Pipeline {
                        name: p.name.clone(),
                        dlq_topic: campus_contract::dlq_topic(&topic, &group),
                        topic,
                        group,
                        index_prefix: p.index_prefix.clone(),
                    }
                })
                .collect(),
        }),
        ProcessorKind::Native => Processor::Native,
        ProcessorKind::None => Processor::None,
    };
    Platform {
        name: cr.name_any(),
        namespace: cr.namespace().unwrap_or_default(),
        owner: cr.uid().and_then(|_| {
            use kube::Resource;
            cr.controller_owner_ref(&())
        }),
        kafka: Kafka {
            brokers: s.kafka.brokers.clone(),
            properties: s.kafka.properties.clone(),
            properties_secret: s
                .kafka
                .properties_secret_ref
                .as_ref()
                .map(|r| r.name.clone()),
        },
        stores: Stores {
            mysql: s.mysql.as_ref().map(|m| m.url_secret_ref.clone()),
            mongodb: s.mongodb.as_ref().map(|m| Mongo {
                url: m.url_secret_ref.clone(),
                database: m.database.clone(),
            }),
            redis,
            elasticsearch,
            openai: OpenAi {
                api_key: s.openai.api_key_secret_ref.clone(),
                base_url: s.openai.base_url.clone(),
                model: s.openai.model.clone(),
            },
        },
        services,
        logging: Logging {
            filebeat,
            processor,
        },
        plan,
        log_level: s.log_level.clone(),
        pull_policy: s.image_pull_policy,
        template: Default::default(),
        auth: s.auth.clone(),
        coupon_rate_limits: s.coupon.rate_limits.clone(),
    }
}

/// Logical topic names an override may refer to: every topic any configuration of the services
/// could have (so an override of a disabled service's topic stays valid).
fn known_topics(cr: &CampusPlatform) -> BTreeSet<String> {
    let mut all = cr.clone();
    all.spec.content.common.enabled = true;
    all.spec.coupon.common.enabled = true;
    all.spec.topics.overrides.clear();
    all.spec.topics.dead_letter = true;
    let mut known: BTreeSet<String> = BTreeSet::new();
    for processor in [ProcessorKind::Logstash, ProcessorKind::Native] {
        all.spec.logging.processor = processor;
        known.extend(Plan::of(&all).logical_topics().map(str::to_owned));
    }
    known
}

fn valid_host_port(s: &str) -> bool {
    match s.rsplit_once(':') {
        Some((host, port)) => !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0),
        None => false,
    }
}

fn valid_secret_ref(r: &SecretKeyRef) -> bool {
    !r.name.is_empty() && !r.key.is_empty()
}

fn valid_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::fixtures::{MINIMAL, platform};

    fn problems(cr: &CampusPlatform) -> Vec<String> {
        validate(cr).err().map(|e| e.0).unwrap_or_default()
    }

    #[test]
    fn required_stores_are_named_with_their_users_from_the_contract() {
        assert_eq!(users(Store::Mysql), "the content and coupon services");
        assert_eq!(users(Store::Redis), "the content and coupon services");
        assert_eq!(users(Store::Mongodb), "the content service");
        assert_eq!(
            users(Store::Elasticsearch),
            "the content service, the log API and the log processor"
        );
    }

    #[test]
    fn the_minimal_platform_is_valid() {
        assert_eq!(problems(&platform(MINIMAL)), Vec::<String>::new());
    }

    #[test]
    fn problems_are_reported_one_by_one() {
        let cr = platform(
            r#"
apiVersion: campus.dev/v1alpha1
kind: CampusPlatform
metadata: {name: bad}
spec:
  kafka: {brokers: "kafka"}
  content:
    groups:
      cache: {autoscaling: {minReplicas: 5, maxReplicas: 2}}
  topics:
    overrides: [{name: post.original, partitions: 6}, {name: nope}]
"#,
        );
        let problems = problems(&cr);
        let has = |s: &str| problems.iter().any(|p| p.contains(s));
        assert!(has("kafka.brokers must be host:port"), "{problems:#?}");
        assert!(has("mysql is required"));
        assert!(has("mongodb is required"));
        assert!(has(
            "content.groups.cache.autoscaling needs 0 <= minReplicas <= maxReplicas"
        ));
        assert!(has("`nope`, which is not a topic"));
        assert!(!has("`post.original`"));
        assert_eq!(problems.len(), 7, "{problems:#?}");
    }

    #[test]
    fn redis_and_elasticsearch_need_exactly_one_of_url_and_url_secret_ref() {
        let with = |redis: &str, es: &str| {
            let yaml = MINIMAL
                .replace(r#"redis: {url: "redis://redis:6379"}"#, redis)
                .replace(r#"elasticsearch: {url: "http://es:9200"}"#, es);
            problems(&platform(&yaml))
        };
        let secret_redis = "redis: {urlSecretRef: {name: r, key: url}}";
        let secret_es = "elasticsearch: {urlSecretRef: {name: e, key: url}}";
        assert_eq!(with(secret_redis, secret_es), Vec::<String>::new());
        assert_eq!(
            with(
                r#"redis: {url: "redis://r:6379", urlSecretRef: {name: r, key: url}}"#,
                r#"elasticsearch: {url: "http://e:9200", urlSecretRef: {name: e, key: url}}"#
            ),
            [
                "redis: give either url or urlSecretRef, not both",
                "elasticsearch: give either url or urlSecretRef, not both"
            ]
        );
        assert_eq!(
            with(
                "redis: {keyPrefix: \"x:\"}",
                "elasticsearch: {postsAlias: p}"
            ),
            [
                "redis: one of url and urlSecretRef is required",
                "elasticsearch: one of url and urlSecretRef is required"
            ]
        );
        assert_eq!(
            with(
                r#"redis: {urlSecretRef: {name: "", key: url}}"#,
                r#"elasticsearch: {urlSecretRef: {name: e, key: ""}}"#
            ),
            [
                "redis.urlSecretRef needs a Secret name and key",
                "elasticsearch.urlSecretRef needs a Secret name and key"
            ]
        );
    }

    #[test]
    fn only_what_is_enabled_needs_its_backing_services() {
        let cr = platform(
            r#"
apiVersion: campus.dev/v1alpha1
kind: CampusPlatform
metadata: {name: logs}
spec:
  kafka: {brokers: "k:9092"}
  content: {enabled: false}
  coupon: {enabled: false}
  log: {enabled: false}
  logging: {processor: None}
  topics:
    overrides: [{name: post.original.dlq.inspection, partitions: 2}]
"#,
        );
        assert_eq!(problems(&cr), Vec::<String>::new());
    }

    #[test]
    fn credentials_come_from_secrets_not_from_kafka_properties_or_urls() {
        let mut cr = platform(MINIMAL);
        cr.spec
            .kafka
            .properties
            .insert("security.protocol".into(), "SASL_SSL".into());
        cr.spec
            .kafka
            .properties
            .insert("sasl.username".into(), "campus".into());
        assert_eq!(problems(&cr), Vec::<String>::new());
        cr.spec
            .kafka
            .properties
            .insert("sasl.password".into(), "s3cret".into());
        cr.spec
            .kafka
            .properties
            .insert("ssl.key.password".into(), "k3y".into());
        let found = problems(&cr);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].starts_with(
                "kafka.properties must not hold credentials (sasl.password, ssl.key.password)"
            ) && found[0].contains("kafka.propertiesSecretRef"),
            "{found:?}"
        );
        cr.spec.kafka.properties.remove("sasl.password");
        cr.spec.kafka.properties.remove("ssl.key.password");
        cr.spec.kafka.properties_secret_ref = Some(crate::crd::SecretRef {
            name: "kafka-credentials".into(),
        });
        assert_eq!(problems(&cr), Vec::<String>::new());
        let p = validate(&cr).unwrap();
        assert_eq!(
            p.kafka.properties_secret.as_deref(),
            Some("kafka-credentials")
        );

        // URLs with a password: only through urlSecretRef.
        let mut cr = platform(MINIMAL);
        cr.spec.redis.as_mut().unwrap().url = Some("redis://:pw@redis:6379".into());
        cr.spec.elasticsearch.as_mut().unwrap().url =
            Some("http://es-1:9200,http://elastic:pw@es-2:9200".into());
        assert_eq!(
            problems(&cr),
            [
                "redis.url must not carry a password (user:password@): put the URL in a Secret and name it in urlSecretRef",
                "elasticsearch.url must not carry a password (user:password@): put the URL in a Secret and name it in urlSecretRef",
            ]
        );
        cr.spec.redis.as_mut().unwrap().url = Some("redis://default@redis:6379".into());
        cr.spec.elasticsearch.as_mut().unwrap().url =
            Some("http://es-1:9200,http://es-2:9200".into());
        assert_eq!(problems(&cr), Vec::<String>::new());
    }

    #[test]
    fn the_openai_base_url_is_https_unless_plain_http_is_allowed() {
        let mut cr = platform(MINIMAL);
        assert!(problems(&cr).is_empty());
        cr.spec.openai.base_url = "http://fake-openai.campus.svc/v1".into();
        let found = problems(&cr);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].starts_with("openai.baseUrl must be https://"),
            "{found:?}"
        );
        cr.spec.openai.allow_insecure_base_url = true;
        assert!(problems(&cr).is_empty());
        cr.spec.openai.base_url = "ftp://x".into();
        assert_eq!(problems(&cr).len(), 1);
    }
}
