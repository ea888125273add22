//! The Kibana saved objects for the access logs: a data view over the alias, three visualizations
//! (requests over time, status codes, slowest paths) and a dashboard holding them. Built from
//! [`campus_common::logschema`], so they can only name fields the index template maps; the chart
//! ships the rendered NDJSON (`services/log/kibana/campus-log.ndjson`) and a Job imports it with
//! `POST /api/saved_objects/_import?overwrite=true` once Kibana is ready.
//!
//! The objects use the aggregation-based visualization format with 7.10 migration versions, which
//! every Kibana from 7.10 through 8.x imports (Kibana migrates them forward on import).

use campus_common::logschema;
use serde_json::{Value, json};

/// Saved-object id of the data view.
pub const DATA_VIEW_ID: &str = "campus-access-log";
/// Saved-object id of the dashboard.
pub const DASHBOARD_ID: &str = "campus-access-log-dashboard";

const INDEX_REF: &str = "kibanaSavedObjectMeta.searchSourceJSON.index";

fn field(name: &'static str) -> &'static str {
    assert!(
        logschema::is_mapped(name),
        "{name} is not mapped by the index template"
    );
    name
}

fn search_source() -> String {
    json!({"query": {"query": "", "language": "kuery"}, "filter": [], "indexRefName": INDEX_REF})
        .to_string()
}

fn visualization(id: &str, title: &str, description: &str, vis_state: Value) -> Value {
    json!({
        "type": "visualization",
        "id": id,
        "attributes": {
            "title": title,
            "description": description,
            "uiStateJSON": "{}",
            "version": 1,
            "visState": vis_state.to_string(),
            "kibanaSavedObjectMeta": {"searchSourceJSON": search_source()}
        },
        "references": [{"name": INDEX_REF, "type": "index-pattern", "id": DATA_VIEW_ID}],
        "migrationVersion": {"visualization": "7.10.0"}
    })
}

fn axes_params(chart: &str, mode: &str) -> Value {
    json!({
        "type": chart,
        "grid": {"categoryLines": false},
        "categoryAxes": [{"id": "CategoryAxis-1", "type": "category", "position": "bottom", "show": true,
            "style": {}, "scale": {"type": "linear"}, "labels": {"show": true, "filter": true, "truncate": 100}, "title": {}}],
        "valueAxes": [{"id": "ValueAxis-1", "name": "LeftAxis-1", "type": "value", "position": "left", "show": true,
            "style": {}, "scale": {"type": "linear", "mode": "normal"},
            "labels": {"show": true, "rotate": 0, "filter": false, "truncate": 100}, "title": {"text": "Requests"}}],
        "seriesParams": [{"show": true, "type": chart, "mode": mode, "data": {"label": "Requests", "id": "1"},
            "valueAxis": "ValueAxis-1", "drawLinesBetweenPoints": true, "lineWidth": 2, "showCircles": true,
            "interpolate": "linear"}],
        "addTooltip": true,
        "addLegend": true,
        "legendPosition": "right",
        "times": [],
        "addTimeMarker": false,
        "thresholdLine": {"show": false, "value": 10, "width": 1, "style": "full", "color": "#E7664C"},
        "labels": {}
    })
}

/// Requests per time bucket, stacked by service.
fn requests_over_time() -> Value {
    visualization(
        "campus-access-log-requests",
        "Campus — requests over time",
        "Requests per time bucket, by service",
        json!({
            "title": "Campus — requests over time",
            "type": "histogram",
            "params": axes_params("histogram", "stacked"),
            "aggs": [
                {"id": "1", "enabled": true, "type": "count", "schema": "metric", "params": {}},
                {"id": "2", "enabled": true, "type": "date_histogram", "schema": "segment",
                 "params": {"field": field("@timestamp"), "useNormalizedEsInterval": true, "interval": "auto",
                            "drop_partials": false, "min_doc_count": 1, "extended_bounds": {}}},
                {"id": "3", "enabled": true, "type": "terms", "schema": "group",
                 "params": {"field": field("service"), "size": 10, "order": "desc", "orderBy": "1",
                            "otherBucket": true, "otherBucketLabel": "other", "missingBucket": false}}
            ]
        }),
    )
}

/// Requests by status code.
fn status_codes() -> Value {
    visualization(
        "campus-access-log-status",
        "Campus — status codes",
        "Requests by HTTP status code",
        json!({
            "title": "Campus — status codes",
            "type": "pie",
            "params": {"type": "pie", "addTooltip": true, "addLegend": true, "legendPosition": "right",
                       "isDonut": true,
                       "labels": {"show": true, "values": true, "last_level": true, "truncate": 100}},
            "aggs": [
                {"id": "1", "enabled": true, "type": "count", "schema": "metric", "params": {}},
                {"id": "2", "enabled": true, "type": "terms", "schema": "segment",
                 "params": {"field": field("status"), "size": 20, "order": "desc", "orderBy": "1",
                            "otherBucket": true, "otherBucketLabel": "other", "missingBucket": false}}
            ]
        }),
    )
}

/// Routes by average latency, with percentiles and counts.
fn slowest_paths() -> Value {
    visualization(
        "campus-access-log-slowest",
        "Campus — slowest paths",
        "Routes by average latency (ms), with p50/p95/p99 and request counts",
        json!({
            "title": "Campus — slowest paths",
            "type": "table",
            "params": {"perPage": 15, "showPartialRows": false, "showMetricsAtAllLevels": false,
                       "showTotal": false, "totalFunc": "sum", "percentageCol": ""},
            "aggs": [
                {"id": "1", "enabled": true, "type": "avg", "schema": "metric",
                 "params": {"field": field("duration_ms"), "customLabel": "avg ms"}},
                {"id": "2", "enabled": true, "type": "percentiles", "schema": "metric",
                 "params": {"field": field("duration_ms"), "percents": [50, 95, 99], "customLabel": "ms"}},
                {"id": "3", "enabled": true, "type": "count", "schema": "metric", "params": {"customLabel": "requests"}},
                {"id": "4", "enabled": true, "type": "terms", "schema": "bucket",
                 "params": {"field": field("route"), "size": 15, "order": "desc", "orderBy": "1",
                            "otherBucket": false, "missingBucket": false, "customLabel": "route"}},
                {"id": "5", "enabled": true, "type": "terms", "schema": "bucket",
                 "params": {"field": field("service"), "size": 5, "order": "desc", "orderBy": "1",
                            "otherBucket": false, "missingBucket": false, "customLabel": "service"}}
            ]
        }),
    )
}

/// The data view over the alias `index_prefix`.
fn data_view(index_prefix: &str) -> Value {
    json!({
        "type": "index-pattern",
        "id": DATA_VIEW_ID,
        "attributes": {
            "title": index_prefix,
            "timeFieldName": field("@timestamp"),
            "fieldFormatMap": json!({field("duration_ms"): {"id": "number", "params": {"pattern": "0,0.[000]"}}}).to_string()
        },
        "references": [],
        "migrationVersion": {"index-pattern": "7.6.0"}
    })
}

fn dashboard(panels: &[&Value]) -> Value {
    // Requests over time across the top, status codes and slowest paths below.
    let layout = [(0, 0, 48, 14), (0, 14, 16, 16), (16, 14, 32, 16)];
    let panels_json: Vec<Value> = panels
        .iter()
        .zip(layout)
        .enumerate()
        .map(|(i, (_, (x, y, w, h)))| {
            json!({
                "version": "7.10.0",
                "type": "visualization",
                "gridData": {"x": x, "y": y, "w": w, "h": h, "i": (i + 1).to_string()},
                "panelIndex": (i + 1).to_string(),
                "embeddableConfig": {},
                "panelRefName": format!("panel_{i}")
            })
        })
        .collect();
    let references: Vec<Value> = panels
        .iter()
        .enumerate()
        .map(|(i, p)| json!({"name": format!("panel_{i}"), "type": "visualization", "id": p["id"]}))
        .collect();
    json!({
        "type": "dashboard",
        "id": DASHBOARD_ID,
        "attributes": {
            "title": "Campus access logs",
            "description": "Requests over time, status codes and the slowest paths of every Campus API",
            "hits": 0,
            "panelsJSON": Value::Array(panels_json).to_string(),
            "optionsJSON": json!({"useMargins": true, "hidePanelTitles": false}).to_string(),
            "version": 1,
            "timeRestore": true,
            "timeFrom": "now-1h",
            "timeTo": "now",
            "refreshInterval": {"pause": false, "value": 30000},
            "kibanaSavedObjectMeta": {"searchSourceJSON": json!({"query": {"query": "", "language": "kuery"}, "filter": []}).to_string()}
        },
        "references": references,
        "migrationVersion": {"dashboard": "7.9.3"}
    })
}

/// Every saved object, dependencies first.
pub fn saved_objects(index_prefix: &str) -> Vec<Value> {
    let (requests, status, slowest) = (requests_over_time(), status_codes(), slowest_paths());
    let dash = dashboard(&[&requests, &status, &slowest]);
    vec![data_view(index_prefix), requests, status, slowest, dash]
}

/// The objects as NDJSON, the format of Kibana's saved-objects import.
pub fn saved_objects_ndjson(index_prefix: &str) -> String {
    let mut out = String::new();
    for o in saved_objects(index_prefix) {
        out.push_str(&o.to_string());
        out.push('\n');
    }
    out
}

/// Every field name the objects refer to: the data view's time field, field formats, and the
/// `field` of every visualization aggregation.
pub fn referenced_fields(objects: &[Value]) -> Vec<String> {
    let mut fields = Vec::new();
    for o in objects {
        let attrs = &o["attributes"];
        if let Some(f) = attrs["timeFieldName"].as_str() {
            fields.push(f.to_owned());
        }
        if let Some(formats) = attrs["fieldFormatMap"]
            .as_str()
            .and_then(|s| serde_json::from_str::<Value>(s).ok())
            && let Some(m) = formats.as_object()
        {
            fields.extend(m.keys().cloned());
        }
        if let Some(vis) = attrs["visState"]
            .as_str()
            .and_then(|s| serde_json::from_str::<Value>(s).ok())
        {
            for agg in vis["aggs"].as_array().into_iter().flatten() {
                if let Some(f) = agg["params"]["field"].as_str() {
                    fields.push(f.to_owned());
                }
            }
        }
    }
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_reference_only_mapped_fields() {
        let objects = saved_objects("access-log");
        let fields = referenced_fields(&objects);
        assert!(fields.len() >= 8, "{fields:?}");
        for f in &fields {
            assert!(logschema::is_mapped(f), "{f} is not in the index template");
        }
        // The template maps these as aggregatable (keyword/numeric/date): no `.keyword` needed.
        for f in ["route", "service", "status", "duration_ms", "@timestamp"] {
            assert!(fields.iter().any(|x| x == f), "{f} unused");
        }
    }

    #[test]
    fn every_reference_resolves_inside_the_file() {
        let objects = saved_objects("access-log");
        let ids: Vec<(String, String)> = objects
            .iter()
            .map(|o| {
                (
                    o["type"].as_str().unwrap().to_owned(),
                    o["id"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        for o in &objects {
            for r in o["references"].as_array().unwrap() {
                let key = (
                    r["type"].as_str().unwrap().to_owned(),
                    r["id"].as_str().unwrap().to_owned(),
                );
                assert!(ids.contains(&key), "dangling reference {r}");
            }
        }
        let dash = objects.iter().find(|o| o["type"] == "dashboard").unwrap();
        let panels: Value =
            serde_json::from_str(dash["attributes"]["panelsJSON"].as_str().unwrap()).unwrap();
        assert_eq!(panels.as_array().unwrap().len(), 3);
        assert_eq!(objects[0]["attributes"]["title"], "access-log");
    }
}
