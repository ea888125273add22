//! The one place that knows the access-log schema and the pipeline that carries it:
//! services write [`crate::http::AccessLog`] lines to stdout → Filebeat ships each container line
//! to the `access-log` topic ([`filebeat_yaml`]) → Logstash (the operator renders its pipeline from
//! these names and [`document_id`]'s shape: operator/src/build/logstash.rs) or the native
//! indexer (`campus-log worker index`) parse the line and write daily indices
//! `access-log-YYYY.MM.dd` behind the alias `access-log`, shaped by [`index_template`].
//!
//! The Filebeat event on the topic (Filebeat 8 `filestream` input with the `container` parser,
//! Kafka output, JSON codec) looks like this ([`filebeat_event`] builds one); only `message`, the
//! `kubernetes` fields of [`KUBERNETES_FIELDS`] and, as a fallback, `@timestamp` are read:
//! ```json
//! {"@timestamp": "2026-11-25T20:00:00.123Z",
//!  "message": "{\"@timestamp\":\"2026-11-25T20:00:00.120Z\",\"log_type\":\"access\",…}",
//!  "stream": "stdout",
//!  "kubernetes": {"namespace": "campus", "pod": {"name": "content-api-7f…"}, "container": {"name": "api"}},
//!  "host": {"name": "kind-worker"}, "input": {"type": "filestream"},
//!  "log": {"file": {"path": "/var/log/containers/…log"}, "offset": 1234}}
//! ```
//!
//! Both consumers treat lines alike: a `message` that is not a JSON object goes to the dead-letter
//! topic `<topic>.dlq.<group>`; a JSON line whose `log_type` is not `"access"` (an ordinary
//! application log line) is dropped; an access line becomes one document in the daily index of its
//! own `@timestamp` (the event's `@timestamp` if the line has none), with the id
//! [`document_id`] of its Kafka record.

use campus_contract::access_log;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

/// The topic Filebeat writes to (before the platform prefix).
pub const TOPIC: &str = campus_contract::access_log::TOPIC;
/// Prefix of the daily indices, the alias over them and the index template's name.
pub const INDEX_PREFIX: &str = campus_contract::access_log::INDEX_PREFIX;

/// Elasticsearch type of a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    Date,
    Keyword,
    /// Full text with a `.keyword` sub-field.
    Text,
    Integer,
    Long,
    Float,
}

impl FieldType {
    fn mapping(self) -> Value {
        match self {
            FieldType::Date => json!({"type": "date"}),
            FieldType::Keyword => json!({"type": "keyword", "ignore_above": 1024}),
            FieldType::Text => {
                json!({"type": "text", "fields": {"keyword": {"type": "keyword", "ignore_above": 1024}}})
            }
            FieldType::Integer => json!({"type": "integer"}),
            FieldType::Long => json!({"type": "long"}),
            FieldType::Float => json!({"type": "float"}),
        }
    }
}

/// Every field of an access-log line, as the services write it (see `AccessLog`).
pub const FIELDS: &[(&str, FieldType)] = &[
    ("@timestamp", FieldType::Date),
    ("log_type", FieldType::Keyword),
    ("service", FieldType::Keyword),
    ("method", FieldType::Keyword),
    ("path", FieldType::Keyword),
    ("route", FieldType::Keyword),
    ("query", FieldType::Text),
    ("status", FieldType::Integer),
    ("bytes", FieldType::Long),
    ("duration_ms", FieldType::Float),
    ("request_id", FieldType::Keyword),
    ("user_agent", FieldType::Text),
];

/// Fields added from Filebeat's Kubernetes metadata (dotted paths in the indexed document).
pub const KUBERNETES_FIELDS: &[&str] = &[
    "kubernetes.namespace",
    "kubernetes.pod.name",
    "kubernetes.container.name",
];

/// Where a container line came from, as Filebeat's `add_kubernetes_metadata` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubernetesMeta<'a> {
    pub namespace: &'a str,
    pub pod: &'a str,
    pub container: &'a str,
    pub node: &'a str,
}

/// The event Filebeat 8 publishes to Kafka for one container line (`line` without its newline),
/// as documented above: what Filebeat would produce for that line, for tests and benchmarks.
pub fn filebeat_event(line: &str, at: DateTime<Utc>, k8s: &KubernetesMeta<'_>) -> Value {
    json!({
        "@timestamp": at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "@metadata": {"beat": "filebeat", "type": "_doc", "version": "8.15.3"},
        "message": line,
        "stream": "stdout",
        "input": {"type": "filestream"},
        "ecs": {"version": "8.0.0"},
        "agent": {"type": "filebeat", "version": "8.15.3", "name": k8s.node},
        "host": {"name": k8s.node},
        "log": {"offset": 0, "file": {"path": format!(
            "/var/log/containers/{}_{}_{}-0000000000000000.log", k8s.pod, k8s.namespace, k8s.container
        )}},
        "container": {"runtime": "containerd", "id": "0000000000000000"},
        "kubernetes": {
            "namespace": k8s.namespace,
            "node": {"name": k8s.node},
            "pod": {"name": k8s.pod, "uid": "00000000-0000-0000-0000-000000000000"},
            "container": {"name": k8s.container},
            "labels": {"app_kubernetes_io/name": k8s.container}
        }
    })
}

/// The daily index an event of this time belongs to: `access-log-2026.11.25`.
pub fn index_for(prefix: &str, at: DateTime<Utc>) -> String {
    format!("{prefix}-{}", at.format("%Y.%m.%d"))
}

/// The document id of a Kafka record: replays overwrite instead of duplicating. Logstash builds the
/// same id from its Kafka metadata. The record's timestamp (ms; -1 when it has none) is part of
/// it: offsets start again at 0 when the topic is recreated or Kafka replaced, and an id of
/// topic, partition and offset alone then names a document of the old topic — the indexer
/// counted the new records as duplicates and dropped them (seen on the cluster, whose Kafka is
/// new at every `up` while OpenSearch keeps the day's index).
pub fn document_id(topic: &str, partition: i32, offset: i64, timestamp_ms: Option<i64>) -> String {
    format!(
        "{topic}-{partition}-{offset}-{}",
        timestamp_ms.unwrap_or(-1)
    )
}

/// The composable index template for `<prefix>-*`: explicit mapping, the alias `<prefix>`.
pub fn index_template(prefix: &str) -> Value {
    let mut properties = serde_json::Map::new();
    for (name, ty) in FIELDS {
        properties.insert((*name).to_owned(), ty.mapping());
    }
    for path in KUBERNETES_FIELDS {
        insert_dotted(&mut properties, path, FieldType::Keyword.mapping());
    }
    json!({
        "index_patterns": [access_log::pattern(prefix)],
        "priority": 200,
        "template": {
            "settings": {"number_of_shards": 1, "number_of_replicas": 0},
            "mappings": {"dynamic": false, "properties": properties},
            "aliases": {access_log::alias(prefix): {}}
        },
        "_meta": {"managed_by": "campus"}
    })
}

/// Puts `mapping` at a dotted path (`kubernetes.pod.name`) as nested `properties` objects.
fn insert_dotted(properties: &mut serde_json::Map<String, Value>, path: &str, mapping: Value) {
    match path.split_once('.') {
        None => {
            properties.insert(path.to_owned(), mapping);
        }
        Some((head, rest)) => {
            let entry = properties
                .entry(head.to_owned())
                .or_insert_with(|| json!({"properties": {}}));
            if let Some(inner) = entry.get_mut("properties").and_then(Value::as_object_mut) {
                insert_dotted(inner, rest, mapping);
            }
        }
    }
}

/// Whether `field` (a dotted path, or a text field's `.keyword` sub-field) is mapped by
/// [`index_template`]: what dashboards and queries may refer to.
pub fn is_mapped(field: &str) -> bool {
    FIELDS.iter().any(|(name, ty)| {
        *name == field || (*ty == FieldType::Text && field.strip_suffix(".keyword") == Some(name))
    }) || KUBERNETES_FIELDS.contains(&field)
}

/// The Kafka protocol version Filebeat's Kafka output speaks (`output.kafka.version`). Kafka 4
/// removed the request versions of clients older than 2.1 (KIP-896) and Filebeat 7's default is
/// `1.0.0`; 2.6.0 is the newest version both Filebeat 7.17 and 8.x accept.
pub const FILEBEAT_KAFKA_VERSION: &str = "2.6.0";

/// The kubelet's links to the container logs on a node, one per container.
pub const CONTAINER_LOGS: &str = "/var/log/containers";

/// Which lines Filebeat reads.
#[derive(Debug, Clone)]
pub enum FilebeatInput<'a> {
    /// A Kubernetes node's container logs (`/var/log/containers/*.log` through the `container`
    /// parser, with `add_kubernetes_metadata`): the DaemonSet. Only containers in these
    /// namespaces; empty means every namespace.
    Containers { namespaces: &'a [String] },
    /// Files (globs) that processes' stdout is written to, one line per line, shipped as they are
    /// in `message`: the local mode and the end-to-end test.
    Files { paths: &'a [String] },
}

/// What Filebeat collects and where it sends it.
#[derive(Debug, Clone)]
pub struct FilebeatParams<'a> {
    /// Kafka bootstrap servers.
    pub brokers: &'a str,
    /// Full topic name (with prefix).
    pub topic: &'a str,
    /// What it reads.
    pub input: FilebeatInput<'a>,
    /// Drop lines that are not access-log lines (`"log_type":"access"`) before they leave the node.
    pub access_only: bool,
    /// Host and port of Filebeat's monitoring HTTP endpoint (`/`, `/stats`); `None`: off.
    pub http: Option<(&'a str, u16)>,
}

/// The monitoring endpoint of the DaemonSet's Filebeat.
pub const FILEBEAT_POD_HTTP: (&str, u16) = ("0.0.0.0", 5066);

/// `filebeat.yml` for the DaemonSet (mounted from a ConfigMap) or a local Filebeat.
pub fn filebeat_yaml(p: &FilebeatParams<'_>) -> String {
    let mut processors = Vec::new();
    let input = match p.input {
        FilebeatInput::Containers { namespaces } => {
            processors.push(json!({"add_kubernetes_metadata": {
                "host": "${NODE_NAME}",
                "matchers": [{"logs_path": {"logs_path": "/var/log/containers/"}}]
            }}));
            // The namespaces by file name (`<pod>_<namespace>_<container>-<id>.log`; neither a pod
            // nor a namespace name has a `_`), not by a `drop_event` on `kubernetes.namespace`:
            // add_kubernetes_metadata knows no pod until its first sync, and the backlog Filebeat
            // reads at start-up came before it — dropped (seen on the cluster: a restarted
            // Filebeat lost every line written while it was down).
            let paths: Vec<String> = if namespaces.is_empty() {
                vec![format!("{CONTAINER_LOGS}/*.log")]
            } else {
                namespaces
                    .iter()
                    .map(|ns| format!("{CONTAINER_LOGS}/*_{ns}_*.log"))
                    .collect()
            };
            json!({
                "type": "filestream",
                "id": "campus-containers",
                "paths": paths,
                "parsers": [{"container": {"stream": "all", "format": "auto"}}],
                "prospector.scanner.symlinks": true
            })
        }
        FilebeatInput::Files { paths } => json!({
            "type": "filestream",
            "id": "campus-files",
            "paths": paths,
            // New files are found within a second (the default is 10 s).
            "prospector.scanner.check_interval": "1s"
        }),
    };
    if p.access_only {
        processors.push(json!({"drop_event": {"when": {"not": {"contains": {"message": "\"log_type\":\"access\""}}}}}));
    }
    let mut config = json!({
        "filebeat.inputs": [input],
        "processors": processors,
        "output.kafka": {
            "hosts": p.brokers.split(',').map(str::trim).collect::<Vec<_>>(),
            "topic": p.topic,
            "version": FILEBEAT_KAFKA_VERSION,
            "partition.round_robin": {"reachable_only": false},
            "required_acks": -1,
            "compression": "lz4",
            "codec.json": {"pretty": false}
        },
        "logging.json": true
    });
    let obj = config.as_object_mut().expect("an object");
    if let FilebeatInput::Containers { .. } = p.input {
        obj.insert(
            "filebeat.registry.path".to_owned(),
            json!("/usr/share/filebeat/data/registry"),
        );
    }
    let http = match p.http {
        Some((host, port)) => json!({"enabled": true, "host": host, "port": port}),
        None => json!({"enabled": false}),
    };
    obj.insert("http".to_owned(), http);
    serde_yaml_like(&config)
}

/// Renders a JSON value as YAML (JSON is valid YAML 1.2; Filebeat reads it).
fn serde_yaml_like(v: &Value) -> String {
    let mut s = serde_json::to_string_pretty(v).expect("config serializes");
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::AccessLog;

    fn sample() -> AccessLog {
        AccessLog {
            timestamp: "2026-11-25T20:00:00.120Z".into(),
            log_type: "access".into(),
            service: "campus-content".into(),
            method: "GET".into(),
            path: "/posts/1/detail".into(),
            route: "/posts/{id}/detail".into(),
            query: String::new(),
            status: 200,
            bytes: 321,
            duration_ms: 1.5,
            request_id: "r1".into(),
            user_agent: "curl/8".into(),
        }
    }

    #[test]
    fn the_fields_the_pipeline_maps_are_the_fields_the_services_write() {
        let written = serde_json::to_value(sample()).unwrap();
        let written: Vec<&str> = written
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let mut mapped: Vec<&str> = FIELDS.iter().map(|(n, _)| *n).collect();
        let mut written_sorted = written.clone();
        written_sorted.sort_unstable();
        mapped.sort_unstable();
        assert_eq!(written_sorted, mapped);
        let template = index_template(INDEX_PREFIX);
        for name in &written {
            assert!(
                template["template"]["mappings"]["properties"]
                    .get(*name)
                    .is_some(),
                "{name} unmapped"
            );
        }
    }

    #[test]
    fn filebeat_ships_to_the_topic_and_ids_name_the_record() {
        // (The operator's Logstash pipeline builds the same id: operator/src/build/logstash.rs.)
        assert_eq!(
            document_id("p.access-log", 2, 17, Some(1_764_000_000_123)),
            "p.access-log-2-17-1764000000123"
        );
        assert_eq!(
            document_id("p.access-log", 2, 17, None),
            "p.access-log-2-17--1"
        );
        let fb = filebeat_yaml(&FilebeatParams {
            brokers: "a:9092, b:9092",
            topic: "p.access-log",
            input: FilebeatInput::Containers {
                namespaces: &["campus".into()],
            },
            access_only: true,
            http: Some(FILEBEAT_POD_HTTP),
        });
        let v: Value = serde_json::from_str(&fb).unwrap();
        assert_eq!(v["output.kafka"]["topic"], "p.access-log");
        assert_eq!(v["output.kafka"]["hosts"], json!(["a:9092", "b:9092"]));
        // The namespace is chosen by the file name: no event waits for pod metadata to be kept.
        assert_eq!(
            v["filebeat.inputs"][0]["paths"],
            json!(["/var/log/containers/*_campus_*.log"])
        );
        assert!(!fb.contains("kubernetes.namespace"), "{fb}");
        assert!(fb.contains("\\\"log_type\\\":\\\"access\\\""));
    }

    #[test]
    fn filebeat_events_carry_the_line_and_the_kubernetes_fields() {
        let line = serde_json::to_string(&sample()).unwrap();
        let at = DateTime::parse_from_rfc3339("2026-11-25T20:00:00.123Z")
            .unwrap()
            .with_timezone(&Utc);
        let meta = KubernetesMeta {
            namespace: "campus",
            pod: "content-api-7f",
            container: "api",
            node: "kind-worker",
        };
        let event = filebeat_event(&line, at, &meta);
        assert_eq!(event["message"], line.as_str());
        assert_eq!(event["@timestamp"], "2026-11-25T20:00:00.123Z");
        for field in KUBERNETES_FIELDS {
            let mut v = &event;
            for part in field.split('.') {
                v = &v[part];
            }
            assert!(v.is_string(), "{field} missing from the event");
        }
    }

    #[test]
    fn kubernetes_fields_are_mapped_as_nested_keywords() {
        let t = index_template("x");
        let props = &t["template"]["mappings"]["properties"];
        assert_eq!(
            props["kubernetes"]["properties"]["pod"]["properties"]["name"]["type"],
            "keyword"
        );
        assert_eq!(
            props["kubernetes"]["properties"]["namespace"]["type"],
            "keyword"
        );
        assert!(is_mapped("kubernetes.pod.name"));
        assert!(is_mapped("user_agent.keyword"));
        assert!(is_mapped("duration_ms"));
        assert!(!is_mapped("path.keyword"));
        assert!(!is_mapped("message"));
    }

    #[test]
    fn daily_index_names() {
        let at = DateTime::parse_from_rfc3339("2026-01-02T23:59:59Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(index_for(INDEX_PREFIX, at), "access-log-2026.01.02");
    }

    /// Every shape of `filebeat.yml` [`filebeat_yaml`] renders (the DaemonSet's and the local
    /// files' one, with and without the access-line filter and the monitoring endpoint) passes the
    /// real Filebeat's `filebeat test config` and starts its inputs. Skipped without `$CAMPUS_TEST_FILEBEAT`, failed on
    /// CI. (The operator's test covers every platform spec.)
    #[test]
    fn every_filebeat_yml_shape_is_taken_by_the_real_filebeat() {
        let Some(filebeat) = campus_testkit::Filebeat::find() else {
            return;
        };
        let ns = ["campus".to_owned(), "shop".to_owned()];
        let files = [
            "/tmp/campus/*.log".to_owned(),
            "/var/log/api.log".to_owned(),
        ];
        let shapes = [
            (
                FilebeatInput::Containers { namespaces: &ns },
                true,
                Some(FILEBEAT_POD_HTTP),
            ),
            (FilebeatInput::Containers { namespaces: &[] }, false, None),
            (
                FilebeatInput::Files { paths: &files },
                true,
                Some(("127.0.0.1", 5066)),
            ),
            (FilebeatInput::Files { paths: &files[..1] }, false, None),
        ];
        for (input, access_only, http) in shapes {
            let fb = filebeat_yaml(&FilebeatParams {
                brokers: "127.0.0.1:9092,127.0.0.1:9093",
                topic: "p.access-log",
                input: input.clone(),
                access_only,
                http,
            });
            if let Err(e) = filebeat.check(&fb) {
                panic!("{input:?}: Filebeat refused\n{fb}\n{e}");
            }
        }
        // The check has teeth: an input Filebeat cannot build (which `test config` alone lets
        // pass) fails it.
        let fb = filebeat_yaml(&FilebeatParams {
            brokers: "127.0.0.1:9092",
            topic: "p.access-log",
            input: FilebeatInput::Files { paths: &files },
            access_only: true,
            http: None,
        });
        let broken = fb.replace("\"1s\"", "\"a second\"");
        assert_ne!(broken, fb);
        assert!(filebeat.test_config(&broken).is_ok());
        let err = filebeat.check(&broken).unwrap_err();
        assert!(err.contains("check_interval"), "{err}");
    }

    #[test]
    fn filebeat_speaks_a_kafka_protocol_kafka_4_still_serves() {
        for input in [
            FilebeatInput::Containers { namespaces: &[] },
            FilebeatInput::Files {
                paths: &["/x.log".to_owned()],
            },
        ] {
            let fb = filebeat_yaml(&FilebeatParams {
                brokers: "k:9092",
                topic: "access-log",
                input,
                access_only: true,
                http: None,
            });
            let v: Value = serde_json::from_str(&fb).unwrap();
            let version = v["output.kafka"]["version"].as_str().unwrap();
            let parts: Vec<u32> = version.split('.').map(|p| p.parse().unwrap()).collect();
            assert!(
                parts >= vec![2, 1, 0],
                "{version}: Kafka 4 serves clients from 2.1 on"
            );
            assert_eq!(v["http"]["enabled"], false);
        }
    }
}
