//! ConfigMaps: the services' non-secret settings (read through `envFrom`), `filebeat.yml`, and
//! Logstash's settings and pipelines.

use std::collections::BTreeMap;

use campus_common::logschema::{self, FilebeatInput, FilebeatParams, LogstashParams};
use campus_contract::{dlq_topic, env as var};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::ResourceExt;

use super::{child_name, meta};
use crate::crd::{CampusPlatform, ProcessorKind, UrlSource};
use crate::plan::{Plan, Service, full_name};

/// Name of a service's settings ConfigMap: `<platform>-<service>-config`.
pub fn service_config_name(cr: &CampusPlatform, service: Service) -> String {
    child_name(cr, &format!("{}-config", service.as_str()))
}
pub fn filebeat_name(cr: &CampusPlatform) -> String {
    child_name(cr, "filebeat")
}
/// Logstash's `logstash.yml` and `pipelines.yml`: a change restarts Logstash.
pub fn logstash_settings_name(cr: &CampusPlatform) -> String {
    child_name(cr, "logstash-settings")
}
/// Logstash's pipeline definitions, mounted as a directory: edits reload in place.
pub fn logstash_pipelines_name(cr: &CampusPlatform) -> String {
    child_name(cr, "logstash-pipelines")
}

/// Every ConfigMap the spec asks for.
pub fn all(cr: &CampusPlatform, plan: &Plan) -> Vec<ConfigMap> {
    let spec = &cr.spec;
    let mut out = Vec::new();
    let log_needed = spec.log.enabled || spec.logging.processor == ProcessorKind::Native;
    for (service, enabled) in [
        (Service::Content, spec.content.enabled),
        (Service::Coupon, spec.coupon.enabled),
        (Service::Log, log_needed),
    ] {
        if enabled {
            out.push(service_config(cr, plan, service));
        }
    }
    if spec.logging.filebeat.enabled {
        out.push(filebeat(cr, plan));
    }
    if spec.logging.processor == ProcessorKind::Logstash {
        out.push(logstash_settings(cr));
        out.push(logstash_pipelines(cr, plan));
    }
    out
}

fn config_map(
    cr: &CampusPlatform,
    name: String,
    component: &str,
    data: BTreeMap<String, String>,
) -> ConfigMap {
    ConfigMap {
        metadata: meta(cr, name, component),
        data: Some(data),
        ..ConfigMap::default()
    }
}

/// The environment (non-secret) of one service's containers.
pub fn service_env(cr: &CampusPlatform, plan: &Plan, service: Service) -> BTreeMap<String, String> {
    let spec = &cr.spec;
    let mut env = BTreeMap::new();
    let mut set = |k: &str, v: &str| {
        env.insert(k.to_owned(), v.to_owned());
    };
    set(var::KAFKA_BROKERS, &spec.kafka.brokers);
    set(var::KAFKA_PREFIX, &plan.prefix);
    if !spec.kafka.properties.is_empty() {
        let props: Vec<String> = spec
            .kafka
            .properties
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        set(var::KAFKA_PROPERTIES, &props.join(","));
    }
    set(var::RUST_LOG, &spec.log_level);
    let redis = |set: &mut dyn FnMut(&str, &str)| {
        if let Some(r) = &spec.redis {
            // A URL from a Secret reaches the pods through `secretKeyRef`, never a ConfigMap.
            if let Some(UrlSource::Plain(url)) = r.url_source() {
                set(var::REDIS_URL, url);
            }
            let prefix = r.key_prefix.clone().unwrap_or_else(|| {
                format!(
                    "{}:",
                    if plan.prefix.is_empty() {
                        cr.name_any()
                    } else {
                        plan.prefix.clone()
                    }
                )
            });
            set(var::REDIS_KEY_PREFIX, &prefix);
        }
    };
    match service {
        Service::Content => {
            redis(&mut set);
            if let Some(m) = &spec.mongodb {
                set(var::MONGO_DATABASE, &m.database);
            }
            if let Some(es) = &spec.elasticsearch {
                if let Some(UrlSource::Plain(url)) = es.url_source() {
                    set(var::ELASTICSEARCH_URL, url);
                }
                set(var::ES_INDEX_ALIAS, &es.posts_alias);
            }
            set(var::OPENAI_BASE_URL, &spec.openai.base_url);
            set(var::OPENAI_MODEL, &spec.openai.model);
        }
        Service::Coupon => redis(&mut set),
        Service::Log => {
            if let Some(UrlSource::Plain(url)) =
                spec.elasticsearch.as_ref().and_then(|es| es.url_source())
            {
                set(var::ELASTICSEARCH_URL, url);
            }
        }
    }
    env
}

fn service_config(cr: &CampusPlatform, plan: &Plan, service: Service) -> ConfigMap {
    config_map(
        cr,
        service_config_name(cr, service),
        service.as_str(),
        service_env(cr, plan, service),
    )
}

/// `filebeat.yml`, rendered by the access-log schema's own function.
fn filebeat(cr: &CampusPlatform, plan: &Plan) -> ConfigMap {
    let fb = &cr.spec.logging.filebeat;
    let namespaces: Vec<String> = if fb.all_namespaces {
        Vec::new()
    } else if fb.namespaces.is_empty() {
        vec![cr.namespace().unwrap_or_default()]
    } else {
        fb.namespaces.clone()
    };
    let topic = full_name(&plan.prefix, campus_contract::access_log::TOPIC);
    let yaml = logschema::filebeat_yaml(&FilebeatParams {
        brokers: &cr.spec.kafka.brokers,
        topic: &topic,
        input: FilebeatInput::Containers {
            namespaces: &namespaces,
        },
        access_only: fb.access_only,
        http: Some(logschema::FILEBEAT_POD_HTTP),
    });
    config_map(
        cr,
        filebeat_name(cr),
        "filebeat",
        BTreeMap::from([("filebeat.yml".to_owned(), yaml)]),
    )
}

/// Directory the pipelines ConfigMap is mounted at.
pub const LOGSTASH_PIPELINE_DIR: &str = "/usr/share/logstash/pipeline";

fn logstash_settings(cr: &CampusPlatform) -> ConfigMap {
    let settings = "\
api.http.host: 0.0.0.0
api.http.port: 9600
config.reload.automatic: true
config.reload.interval: 3s
log.format: json
"
    .to_owned();
    let mut pipelines = String::new();
    for p in &cr.spec.logging.logstash.pipelines {
        pipelines.push_str(&format!(
            "- pipeline.id: {id}\n  path.config: \"{LOGSTASH_PIPELINE_DIR}/{id}.conf\"\n",
            id = p.name
        ));
    }
    config_map(
        cr,
        logstash_settings_name(cr),
        "logstash",
        BTreeMap::from([
            ("logstash.yml".to_owned(), settings),
            ("pipelines.yml".to_owned(), pipelines),
        ]),
    )
}

/// What the pipelines name as Elasticsearch when its URL comes from a Secret: Logstash expands
/// the environment variable (set from the Secret on its container) when it loads the pipeline.
pub const LOGSTASH_ES_URL_REF: &str = "${ELASTICSEARCH_URL}";

/// One `<pipeline>.conf` per pipeline, rendered by the access-log schema's own function.
fn logstash_pipelines(cr: &CampusPlatform, plan: &Plan) -> ConfigMap {
    let es = match cr.spec.elasticsearch.as_ref().and_then(|e| e.url_source()) {
        Some(UrlSource::Plain(url)) => url,
        Some(UrlSource::Secret(_)) => LOGSTASH_ES_URL_REF,
        None => "",
    };
    let data = cr
        .spec
        .logging
        .logstash
        .pipelines
        .iter()
        .map(|p| {
            let topic = full_name(&plan.prefix, &p.topic);
            let group = full_name(&plan.prefix, &p.group);
            let dlq = dlq_topic(&topic, &group);
            let conf = logschema::logstash_pipeline(&LogstashParams {
                brokers: &cr.spec.kafka.brokers,
                topic: &topic,
                group: &group,
                elasticsearch: es,
                index_prefix: &p.index_prefix,
                dlq_topic: &dlq,
            });
            (format!("{}.conf", p.name), conf)
        })
        .collect();
    config_map(cr, logstash_pipelines_name(cr), "logstash", data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::fixtures::{MINIMAL, platform, with_secret_urls};

    #[test]
    fn service_config_carries_prefix_and_backing_addresses() {
        let cr = platform(MINIMAL);
        let plan = Plan::of(&cr);
        let maps = all(&cr, &plan);
        let names: Vec<_> = maps.iter().map(|m| m.name_any()).collect();
        assert_eq!(
            names,
            [
                "blue-content-config",
                "blue-coupon-config",
                "blue-log-config",
                "blue-filebeat",
                "blue-logstash-settings",
                "blue-logstash-pipelines"
            ]
        );
        let content = maps[0].data.as_ref().unwrap();
        assert_eq!(content["KAFKA_PREFIX"], "campus.blue");
        assert_eq!(content["KAFKA_BROKERS"], "kafka:9092");
        assert_eq!(content["REDIS_KEY_PREFIX"], "campus.blue:");
        assert_eq!(content["ES_INDEX_ALIAS"], "posts");
        assert_eq!(content["MONGO_DATABASE"], "campus");
        assert!(
            !content.contains_key("MYSQL_URL"),
            "secrets stay out of ConfigMaps"
        );
        let coupon = maps[1].data.as_ref().unwrap();
        assert!(!coupon.contains_key("ELASTICSEARCH_URL"));
    }

    #[test]
    fn urls_from_secrets_stay_out_of_config_maps_and_logstash_expands_the_variable() {
        let cr = platform(&with_secret_urls());
        let plan = Plan::of(&cr);
        let maps = all(&cr, &plan);
        for m in &maps[..3] {
            let data = m.data.as_ref().unwrap();
            assert!(!data.contains_key("REDIS_URL"), "{}", m.name_any());
            assert!(!data.contains_key("ELASTICSEARCH_URL"), "{}", m.name_any());
        }
        let content = maps[0].data.as_ref().unwrap();
        assert_eq!(content["REDIS_KEY_PREFIX"], "campus.blue:");
        assert_eq!(content["ES_INDEX_ALIAS"], "posts");
        let conf = &maps[5].data.as_ref().unwrap()["access-log.conf"];
        assert!(
            conf.contains(r#"hosts => ["${ELASTICSEARCH_URL}"]"#),
            "{conf}"
        );
        assert_eq!(
            LOGSTASH_ES_URL_REF,
            format!("${{{}}}", var::ELASTICSEARCH_URL)
        );
        // A plain URL is written out as before.
        let plain = platform(MINIMAL);
        let maps = all(&plain, &Plan::of(&plain));
        assert_eq!(
            maps[0].data.as_ref().unwrap()["REDIS_URL"],
            "redis://redis:6379"
        );
        assert_eq!(
            maps[2].data.as_ref().unwrap()["ELASTICSEARCH_URL"],
            "http://es:9200"
        );
        let conf = &maps[5].data.as_ref().unwrap()["access-log.conf"];
        assert!(conf.contains(r#"hosts => ["http://es:9200"]"#), "{conf}");
    }

    #[test]
    fn filebeat_and_logstash_come_from_the_log_schema() {
        let cr = platform(MINIMAL);
        let plan = Plan::of(&cr);
        let maps = all(&cr, &plan);
        let fb = &maps[3].data.as_ref().unwrap()["filebeat.yml"];
        let expected = logschema::filebeat_yaml(&FilebeatParams {
            brokers: "kafka:9092",
            topic: "campus.blue.access-log",
            input: FilebeatInput::Containers {
                namespaces: &["campus".to_owned()],
            },
            access_only: true,
            http: Some(logschema::FILEBEAT_POD_HTTP),
        });
        assert_eq!(fb, &expected);
        let pipelines = maps[5].data.as_ref().unwrap();
        let conf = &pipelines["access-log.conf"];
        assert!(
            conf.contains(r#"topics => ["campus.blue.access-log"]"#),
            "{conf}"
        );
        assert!(conf.contains(r#"group_id => "campus.blue.logstash""#));
        assert!(conf.contains("campus.blue.access-log.dlq.campus.blue.logstash"));
        let settings = maps[4].data.as_ref().unwrap();
        assert!(settings["logstash.yml"].contains("config.reload.automatic: true"));
        assert!(settings["pipelines.yml"].contains("/usr/share/logstash/pipeline/access-log.conf"));
    }

    /// Every `filebeat.yml` the operator can render (the samples, and each Filebeat and Kafka
    /// setting that changes the file) passes the real Filebeat's `filebeat test config` (settings,
    /// processors, the Kafka output: a Kafka `version` it does not know fails it) and starts its
    /// inputs. Skipped without `$CAMPUS_TEST_FILEBEAT`, failed on CI.
    #[test]
    fn every_rendered_filebeat_yml_is_taken_by_the_real_filebeat() {
        let Some(real) = campus_testkit::Filebeat::find() else {
            return;
        };
        let variant = |extra: &str| format!("{MINIMAL}{extra}");
        let variants = [
            ("the minimal fixture", MINIMAL.to_owned()),
            (
                "samples/minimal.yaml",
                include_str!("../../samples/minimal.yaml").to_owned(),
            ),
            (
                "samples/full.yaml",
                include_str!("../../samples/full.yaml").to_owned(),
            ),
            (
                "samples/native-indexer.yaml",
                include_str!("../../samples/native-indexer.yaml").to_owned(),
            ),
            (
                "several namespaces",
                variant("  logging: {filebeat: {namespaces: [campus, shop, \"team-a\"]}}\n"),
            ),
            (
                "all namespaces",
                variant("  logging: {filebeat: {allNamespaces: true}}\n"),
            ),
            (
                "every line, not only access lines",
                variant("  logging: {filebeat: {accessOnly: false, allNamespaces: true}}\n"),
            ),
            (
                "no topic prefix, three brokers",
                MINIMAL.replace(
                    r#"kafka: {brokers: "kafka:9092"}"#,
                    r#"kafka: {brokers: "k-0.kafka:9092, k-1.kafka:9093,k-2.kafka:9094", prefix: ""}"#,
                ),
            ),
            (
                "a custom prefix and Kafka properties (not applied to Filebeat)",
                MINIMAL.replace(
                    r#"kafka: {brokers: "kafka:9092"}"#,
                    r#"kafka: {brokers: "kafka:9092", prefix: "prod-eu", properties: {security.protocol: SSL}}"#,
                ),
            ),
        ];
        let mut seen = std::collections::BTreeSet::new();
        for (what, yaml) in variants {
            let cr = platform(&yaml);
            let maps = all(&cr, &Plan::of(&cr));
            let map = maps
                .iter()
                .find(|m| m.name_any() == filebeat_name(&cr))
                .unwrap_or_else(|| panic!("{what}: no Filebeat ConfigMap"));
            let fb = &map.data.as_ref().unwrap()["filebeat.yml"];
            assert!(
                seen.insert(fb.clone()),
                "{what}: the same file as another variant"
            );
            if let Err(e) = real.check(fb) {
                panic!("{what}: Filebeat refused\n{fb}\n{e}");
            }
        }
        // The check has teeth: the same file with a Kafka version Filebeat does not know fails.
        let cr = platform(MINIMAL);
        let fb = filebeat(&cr, &Plan::of(&cr)).data.unwrap()["filebeat.yml"].clone();
        let broken = fb.replace(
            &format!("\"version\": \"{}\"", logschema::FILEBEAT_KAFKA_VERSION),
            "\"version\": \"0.7.0\"",
        );
        assert_ne!(broken, fb);
        let err = real.check(&broken).unwrap_err();
        assert!(err.contains("version"), "{err}");
    }
}
