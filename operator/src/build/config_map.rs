//! ConfigMaps: the services' non-secret settings (read through `envFrom`), `filebeat.yml`, and
//! Logstash's settings and pipelines.

use std::collections::BTreeMap;

use campus_common::logschema::{self, FilebeatInput, FilebeatParams};

use super::logstash::{LogstashParams, logstash_pipeline};
use k8s_openapi::api::core::v1::ConfigMap;

use super::{child_name, meta};
use crate::model::{Filebeat, Logstash, Platform, Processor, Url};
use crate::plan::{Service, full_name};

/// Name of a service's settings ConfigMap: `<platform>-<service>-config`.
pub fn service_config_name(p: &Platform, service: Service) -> String {
    child_name(p, &format!("{}-config", service.as_str()))
}
/// Filebeat's objects (its ConfigMap, DaemonSet and ServiceAccount share the name), in the
/// namespace Filebeat lives in (see [`super::filebeat_name_in`]).
pub fn filebeat_name(p: &Platform, fb: &Filebeat) -> String {
    super::filebeat_name_in(&p.namespace, &p.name, &fb.namespace)
}
/// Logstash's `logstash.yml` and `pipelines.yml`: a change restarts Logstash.
pub fn logstash_settings_name(p: &Platform) -> String {
    child_name(p, "logstash-settings")
}
/// Logstash's pipeline definitions, mounted as a directory: edits reload in place.
pub fn logstash_pipelines_name(p: &Platform) -> String {
    child_name(p, "logstash-pipelines")
}

/// Every ConfigMap of the platform: one per running service, Filebeat's, Logstash's.
pub fn all(p: &Platform) -> Vec<ConfigMap> {
    let mut out: Vec<ConfigMap> = p
        .services
        .iter()
        .map(|s| service_config(p, s.service))
        .collect();
    if let Some(fb) = &p.logging.filebeat {
        out.push(filebeat(p, fb));
    }
    if let Processor::Logstash(ls) = &p.logging.processor {
        out.push(logstash_settings(p, ls));
        out.push(logstash_pipelines(p, ls));
    }
    out
}

fn config_map(
    p: &Platform,
    name: String,
    component: &str,
    data: BTreeMap<String, String>,
) -> ConfigMap {
    ConfigMap {
        metadata: meta(p, name, component),
        data: Some(data),
        ..ConfigMap::default()
    }
}

/// The environment (non-secret) of one service's containers.
pub fn service_env(p: &Platform, service: Service) -> BTreeMap<String, String> {
    super::env::service_env(p, service).config
}

fn service_config(p: &Platform, service: Service) -> ConfigMap {
    config_map(
        p,
        service_config_name(p, service),
        service.as_str(),
        service_env(p, service),
    )
}

/// `filebeat.yml`, rendered by the access-log schema's own function.
fn filebeat(p: &Platform, fb: &Filebeat) -> ConfigMap {
    let topic = full_name(&p.plan.prefix, campus_contract::access_log::TOPIC);
    let yaml = logschema::filebeat_yaml(&FilebeatParams {
        brokers: &p.kafka.brokers,
        topic: &topic,
        input: FilebeatInput::Containers {
            namespaces: &fb.namespaces,
        },
        access_only: fb.access_only,
        http: Some(logschema::FILEBEAT_POD_HTTP),
    });
    ConfigMap {
        metadata: super::filebeat_meta(p, fb, filebeat_name(p, fb)),
        data: Some(BTreeMap::from([("filebeat.yml".to_owned(), yaml)])),
        ..ConfigMap::default()
    }
}

/// Directory the pipelines ConfigMap is mounted at.
pub const LOGSTASH_PIPELINE_DIR: &str = "/usr/share/logstash/pipeline";

fn logstash_settings(p: &Platform, ls: &Logstash) -> ConfigMap {
    let settings = "\
api.http.host: 0.0.0.0
api.http.port: 9600
config.reload.automatic: true
config.reload.interval: 3s
log.format: json
"
    .to_owned();
    let mut pipelines = String::new();
    for pipe in &ls.pipelines {
        pipelines.push_str(&format!(
            "- pipeline.id: {id}\n  path.config: \"{LOGSTASH_PIPELINE_DIR}/{id}.conf\"\n",
            id = pipe.name
        ));
    }
    config_map(
        p,
        logstash_settings_name(p),
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

/// One `<pipeline>.conf` per pipeline ([`logstash_pipeline`]).
fn logstash_pipelines(p: &Platform, ls: &Logstash) -> ConfigMap {
    let es = match p.stores.elasticsearch.as_ref().map(|e| &e.url) {
        Some(Url::Plain(url)) => url.as_str(),
        Some(Url::Secret(_)) => LOGSTASH_ES_URL_REF,
        None => "",
    };
    let data = ls
        .pipelines
        .iter()
        .map(|pipe| {
            let conf = logstash_pipeline(&LogstashParams {
                brokers: &p.kafka.brokers,
                topic: &pipe.topic,
                group: &pipe.group,
                elasticsearch: es,
                index_prefix: &pipe.index_prefix,
                dlq_topic: &pipe.dlq_topic,
            });
            (format!("{}.conf", pipe.name), conf)
        })
        .collect();
    config_map(p, logstash_pipelines_name(p), "logstash", data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::fixtures::{MINIMAL, model, with_secret_urls};
    use campus_contract::env as var;
    use kube::ResourceExt;

    #[test]
    fn service_config_carries_prefix_and_backing_addresses() {
        let maps = all(&model(MINIMAL));
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
        let maps = all(&model(&with_secret_urls()));
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
        let maps = all(&model(MINIMAL));
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
        let maps = all(&model(MINIMAL));
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
            let p = model(&yaml);
            let maps = all(&p);
            let map = maps
                .iter()
                .find(|m| m.name_any() == filebeat_name(&p, p.logging.filebeat.as_ref().unwrap()))
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
        let p = model(MINIMAL);
        let fb = filebeat(&p, p.logging.filebeat.as_ref().unwrap())
            .data
            .unwrap()["filebeat.yml"]
            .clone();
        let broken = fb.replace(
            &format!("\"version\": \"{}\"", logschema::FILEBEAT_KAFKA_VERSION),
            "\"version\": \"0.7.0\"",
        );
        assert_ne!(broken, fb);
        let err = real.check(&broken).unwrap_err();
        assert!(err.contains("version"), "{err}");
    }
}
