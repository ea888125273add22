//! The Logstash pipeline (`<pipeline>.conf`) of the access-log path: what the native indexer
//! (`campus-log worker index`) does, in Logstash's language. The names and shapes it shares with the
//! services — the topic, the dead-letter topic, the daily index `<prefix>-YYYY.MM.dd` and the
//! document id of [`campus_common::logschema::document_id`] — are checked against theirs below.

/// Where Logstash reads and writes.
#[derive(Debug, Clone)]
pub struct LogstashParams<'a> {
    pub brokers: &'a str,
    /// Full topic name (with prefix).
    pub topic: &'a str,
    /// Consumer group (with prefix).
    pub group: &'a str,
    /// Elasticsearch URL(s), comma separated.
    pub elasticsearch: &'a str,
    /// Index prefix (`access-log`): daily indices `<prefix>-YYYY.MM.dd`.
    pub index_prefix: &'a str,
    /// Topic for lines that are not JSON (`<topic>.dlq.<group>`).
    pub dlq_topic: &'a str,
}

/// A Logstash pipeline (`pipeline.conf`) doing what the native indexer does.
pub fn logstash_pipeline(p: &LogstashParams<'_>) -> String {
    let hosts: Vec<String> = p
        .elasticsearch
        .split(',')
        .map(|h| format!("\"{}\"", h.trim()))
        .collect();
    format!(
        r#"input {{
  kafka {{
    bootstrap_servers => "{brokers}"
    topics => ["{topic}"]
    group_id => "{group}"
    client_id => "{group}"
    auto_offset_reset => "earliest"
    codec => "json"
    decorate_events => "basic"
  }}
}}
filter {{
  # The Filebeat event carries the service's line in `message`; parse it into the event root.
  json {{
    source => "message"
    skip_on_invalid_json => false
    tag_on_failure => ["_jsonparsefailure"]
  }}
  if "_jsonparsefailure" not in [tags] and [log_type] != "access" {{
    # An ordinary application log line, not an access line: not for the access-log indices.
    drop {{ }}
  }}
  if "_jsonparsefailure" not in [tags] {{
    date {{
      match => ["@timestamp", "ISO8601"]
      target => "@timestamp"
    }}
    mutate {{
      add_field => {{ "[@metadata][doc_id]" => "%{{[@metadata][kafka][topic]}}-%{{[@metadata][kafka][partition]}}-%{{[@metadata][kafka][offset]}}-%{{[@metadata][kafka][timestamp]}}" }}
      remove_field => ["message", "agent", "ecs", "input", "log", "stream", "event", "container", "@version"]
    }}
  }}
}}
output {{
  if "_jsonparsefailure" in [tags] {{
    kafka {{
      bootstrap_servers => "{brokers}"
      topic_id => "{dlq}"
      codec => "json"
    }}
  }} else {{
    elasticsearch {{
      hosts => [{hosts}]
      index => "{prefix}-%{{+YYYY.MM.dd}}"
      document_id => "%{{[@metadata][doc_id]}}"
      manage_template => false
    }}
  }}
}}
"#,
        brokers = p.brokers,
        topic = p.topic,
        group = p.group,
        dlq = p.dlq_topic,
        hosts = hosts.join(", "),
        prefix = p.index_prefix,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use campus_common::logschema::{INDEX_PREFIX, document_id};

    fn render(topic: &str, group: &str, dlq: &str) -> String {
        logstash_pipeline(&LogstashParams {
            brokers: "kafka:9092",
            topic,
            group,
            elasticsearch: "http://es:9200, http://es2:9200",
            index_prefix: INDEX_PREFIX,
            dlq_topic: dlq,
        })
    }

    #[test]
    fn the_pipeline_reads_the_topic_and_writes_what_the_native_indexer_writes() {
        let dlq = campus_common::kafka::dlq_topic("p.access-log", "p.logstash");
        let conf = render("p.access-log", "p.logstash", &dlq);
        assert!(conf.contains(r#"topics => ["p.access-log"]"#));
        assert!(conf.contains(r#"group_id => "p.logstash""#));
        assert!(conf.contains(r#"index => "access-log-%{+YYYY.MM.dd}""#));
        assert!(conf.contains(r#"topic_id => "p.access-log.dlq.p.logstash""#));
        assert!(conf.contains(r#"hosts => ["http://es:9200", "http://es2:9200"]"#));
        // Only access lines reach the indices; others are dropped, unparsable ones dead-lettered.
        assert!(conf.contains(r#"[log_type] != "access""#));
        // The document id is the native indexer's: topic-partition-offset-timestamp.
        let id = "%{[@metadata][kafka][topic]}-%{[@metadata][kafka][partition]}-%{[@metadata][kafka][offset]}-%{[@metadata][kafka][timestamp]}";
        assert!(conf.contains(id), "{conf}");
        let native = document_id("p.access-log", 2, 17, Some(1_764_000_000_123));
        let logstash = id
            .replace("%{[@metadata][kafka][topic]}", "p.access-log")
            .replace("%{[@metadata][kafka][partition]}", "2")
            .replace("%{[@metadata][kafka][offset]}", "17")
            .replace("%{[@metadata][kafka][timestamp]}", "1764000000123");
        assert_eq!(logstash, native);
    }
}
