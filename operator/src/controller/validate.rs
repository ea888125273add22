//! Validation that the schema cannot express, plus the CRD's CEL rules again (for a platform
//! stored under an older CRD, or by a server that does not enforce them). Pure: a bad spec is
//! reported in status and no child is touched.

use std::collections::BTreeSet;

use crate::crd::{CampusPlatform, GroupSpec, ProcessorKind, SecretKeyRef};
use crate::plan::Plan;

/// Every problem of the spec, as sentences; empty when it is valid.
pub fn validate(cr: &CampusPlatform) -> Vec<String> {
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

    // Backing services each enabled service needs.
    let content = s.content.enabled;
    let coupon = s.coupon.enabled;
    let es_users = s.log.enabled || s.logging.processor != ProcessorKind::None;
    need(
        !(content || coupon) || s.mysql.is_some(),
        "mysql is required by the content and coupon services",
    );
    need(
        !(content || coupon) || s.redis.is_some(),
        "redis is required by the content and coupon services",
    );
    need(
        !content || s.mongodb.is_some(),
        "mongodb is required by the content service",
    );
    need(
        !(content || es_users) || s.elasticsearch.is_some(),
        "elasticsearch is required by the content service, the log API and the log processor",
    );
    // The CRD's CEL rule says so too; checked here as well so a platform stored under an older
    // CRD, or one that slipped past a schema-less API, is reported rather than half-applied.
    for (what, url, secret) in [
        (
            "redis",
            s.redis.as_ref().map(|r| r.url.is_some()),
            s.redis.as_ref().is_some_and(|r| r.url_secret_ref.is_some()),
        ),
        (
            "elasticsearch",
            s.elasticsearch.as_ref().map(|e| e.url.is_some()),
            s.elasticsearch
                .as_ref()
                .is_some_and(|e| e.url_secret_ref.is_some()),
        ),
    ] {
        need(
            url != Some(true) || !secret,
            &format!("{what}: give either url or urlSecretRef, not both"),
        );
        need(
            url != Some(false) || secret,
            &format!("{what}: one of url and urlSecretRef is required"),
        );
    }
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
        ("content.replicas", s.content.replicas),
        ("coupon.replicas", s.coupon.replicas),
        ("log.replicas", s.log.replicas),
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
    for ns in &logging.filebeat.namespaces {
        need(
            valid_dns_label(ns),
            &format!("logging.filebeat.namespaces: `{ns}` is not a namespace name"),
        );
    }

    // Object names must stay within 63 characters (Services, labels).
    let longest = format!("{}-content-inspection", kube::ResourceExt::name_any(cr));
    need(
        longest.len() <= 63,
        &format!(
            "the platform name is too long: child names such as `{longest}` exceed 63 characters"
        ),
    );
    problems
}

/// Logical topic names an override may refer to: every topic any configuration of the services
/// could have (so an override of a disabled service's topic stays valid).
fn known_topics(cr: &CampusPlatform) -> BTreeSet<String> {
    let mut all = cr.clone();
    all.spec.content.enabled = true;
    all.spec.coupon.enabled = true;
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

    #[test]
    fn the_minimal_platform_is_valid() {
        assert_eq!(validate(&platform(MINIMAL)), Vec::<String>::new());
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
        let problems = validate(&cr);
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
            validate(&platform(&yaml))
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
        assert_eq!(validate(&cr), Vec::<String>::new());
    }

    #[test]
    fn the_openai_base_url_is_https_unless_plain_http_is_allowed() {
        let mut cr = platform(MINIMAL);
        assert!(validate(&cr).is_empty());
        cr.spec.openai.base_url = "http://fake-openai.campus.svc/v1".into();
        let problems = validate(&cr);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].starts_with("openai.baseUrl must be https://"),
            "{problems:?}"
        );
        cr.spec.openai.allow_insecure_base_url = true;
        assert!(validate(&cr).is_empty());
        cr.spec.openai.base_url = "ftp://x".into();
        assert_eq!(validate(&cr).len(), 1);
    }
}
