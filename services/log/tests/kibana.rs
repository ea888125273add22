//! The committed Kibana objects (kibana/campus-log.ndjson, shipped by the chart) are exactly what
//! `campus_log::kibana` renders for the default index prefix, and name only mapped fields.
//! After changing the objects or the schema: `UPDATE_KIBANA=1 cargo test -p campus-log --test kibana`.

use campus_common::logschema;

const FILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/kibana/campus-log.ndjson");

#[test]
fn committed_objects_are_current_and_use_mapped_fields() {
    let rendered = campus_log::kibana::saved_objects_ndjson(logschema::INDEX_PREFIX);
    if std::env::var_os("UPDATE_KIBANA").is_some() {
        std::fs::write(FILE, &rendered).unwrap();
    }
    let committed = std::fs::read_to_string(FILE).unwrap();
    assert_eq!(
        committed, rendered,
        "kibana/campus-log.ndjson is stale: run UPDATE_KIBANA=1 cargo test -p campus-log --test kibana"
    );
    let objects: Vec<serde_json::Value> = committed
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let types: Vec<&str> = objects
        .iter()
        .map(|o| o["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        [
            "index-pattern",
            "visualization",
            "visualization",
            "visualization",
            "dashboard"
        ]
    );
    for f in campus_log::kibana::referenced_fields(&objects) {
        assert!(
            logschema::is_mapped(&f),
            "{f} is not mapped by the index template"
        );
    }
}
