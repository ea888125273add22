//! The log API's questions as Elasticsearch requests, and the answers back: pure functions, so the
//! query shapes are tested without a server.

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::{IntoParams, ToSchema};

/// Largest page size.
pub const MAX_PAGE_SIZE: u32 = 100;
/// Elasticsearch's default `index.max_result_window`: `from + size` may not exceed it.
pub const MAX_RESULT_WINDOW: u64 = 10_000;
/// Default stats window when `from` is not given.
pub const DEFAULT_WINDOW_MINUTES: i64 = 15;
/// Most buckets of the request-rate series; longer windows get wider buckets.
pub const MAX_RATE_BUCKETS: i64 = 1440;
/// The latency percentiles reported per path.
pub const PERCENTS: [f64; 3] = [50.0, 95.0, 99.0];

/// A bad query parameter (answered 400).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidQuery(pub String);

/// Filters shared by search and stats.
#[derive(Debug, Clone, Default, Deserialize, IntoParams, ToSchema)]
#[into_params(parameter_in = Query)]
pub struct SearchParams {
    /// Exact request path, e.g. `/posts/7/detail`.
    pub path: Option<String>,
    /// Exact route template, e.g. `/posts/{id}/detail`.
    pub route: Option<String>,
    /// Service that answered, e.g. `campus-content`.
    pub service: Option<String>,
    /// HTTP method, e.g. `GET`.
    pub method: Option<String>,
    /// A status code (`404`) or a class (`4xx`).
    pub status: Option<String>,
    /// Start of the time range (inclusive), RFC 3339.
    pub from: Option<DateTime<Utc>>,
    /// End of the time range (exclusive), RFC 3339.
    pub to: Option<DateTime<Utc>>,
    /// Free text over path, route, query string, user agent, request id and service
    /// (Elasticsearch simple query string syntax: `+`, `|`, `-`, `"…"`, `*`).
    pub q: Option<String>,
    /// Page number, from 1.
    pub page: Option<u32>,
    /// Hits per page, 1 to 100 (default 20).
    pub size: Option<u32>,
    /// `desc` (newest first, default) or `asc`.
    pub order: Option<String>,
}

/// Stats window and filters.
#[derive(Debug, Clone, Default, Deserialize, IntoParams, ToSchema)]
#[into_params(parameter_in = Query)]
pub struct StatsParams {
    /// Start of the window (inclusive), RFC 3339; default `to` minus 15 minutes.
    pub from: Option<DateTime<Utc>>,
    /// End of the window (exclusive), RFC 3339; default now.
    pub to: Option<DateTime<Utc>>,
    /// Only this service.
    pub service: Option<String>,
    /// Latency per `route` (the template, default) or per raw `path`.
    pub group_by: Option<String>,
    /// How many paths to report (the busiest first), 1 to 100 (default 20).
    pub top: Option<u32>,
}

/// One access-log entry.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(default)]
pub struct LogEntry {
    /// Document id (`<topic>-<partition>-<offset>`).
    #[serde(skip_deserializing)]
    pub id: String,
    /// Daily index holding it.
    #[serde(skip_deserializing)]
    pub index: String,
    #[serde(rename = "@timestamp")]
    pub timestamp: String,
    pub service: String,
    pub method: String,
    pub path: String,
    pub route: String,
    pub query: String,
    pub status: u16,
    pub bytes: u64,
    pub duration_ms: f64,
    pub request_id: String,
    pub user_agent: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kubernetes: Option<Value>,
}

/// A page of search hits.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct SearchResponse {
    /// All matching entries.
    pub total: u64,
    pub page: u32,
    pub size: u32,
    pub hits: Vec<LogEntry>,
}

/// Requests of one status class.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct StatusClassCount {
    /// `1xx` … `5xx`.
    pub class: String,
    pub count: u64,
}

/// Requests in one bucket of the rate series.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct RateBucket {
    /// Start of the bucket, RFC 3339.
    pub time: String,
    pub count: u64,
    /// `count` divided by the bucket's minutes.
    pub per_minute: f64,
}

/// Latency of one path (or route) over the window, in milliseconds.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct PathLatency {
    pub path: String,
    pub count: u64,
    pub p50: Option<f64>,
    pub p95: Option<f64>,
    pub p99: Option<f64>,
}

/// Traffic over a window.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct StatsResponse {
    pub from: String,
    pub to: String,
    /// Requests in the window.
    pub total: u64,
    /// Requests per status class, all five classes.
    pub status_classes: Vec<StatusClassCount>,
    /// Width of each rate bucket in minutes (1 unless the window is longer than a day).
    pub interval_minutes: i64,
    /// Average requests per minute over the window.
    pub requests_per_minute: f64,
    /// The request rate over time, empty buckets included.
    pub rate: Vec<RateBucket>,
    /// `route` or `path`.
    pub group_by: String,
    /// p50/p95/p99 latency of the busiest paths, busiest first.
    pub latency: Vec<PathLatency>,
}

fn time_str(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn range(
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
) -> Result<Option<Value>, InvalidQuery> {
    if let (Some(f), Some(t)) = (from, to)
        && f >= t
    {
        return Err(InvalidQuery("`from` must be before `to`".into()));
    }
    if from.is_none() && to.is_none() {
        return Ok(None);
    }
    let mut r = serde_json::Map::new();
    if let Some(f) = from {
        r.insert("gte".into(), json!(time_str(f)));
    }
    if let Some(t) = to {
        r.insert("lt".into(), json!(time_str(t)));
    }
    r.insert("format".into(), json!("strict_date_optional_time"));
    Ok(Some(json!({"range": {"@timestamp": r}})))
}

fn term(field: &str, value: &Option<String>) -> Option<Value> {
    value
        .as_deref()
        .filter(|v| !v.is_empty())
        .map(|v| json!({"term": {field: v}}))
}

/// `404` → a term, `4xx` → a range.
fn status_filter(status: &str) -> Result<Value, InvalidQuery> {
    let bad = || {
        InvalidQuery(format!(
            "`status` must be a code like 404 or a class like 4xx, not `{status}`"
        ))
    };
    let s = status.trim().to_ascii_lowercase();
    if let Some(class) = s.strip_suffix("xx") {
        let digit: u16 = class.parse().map_err(|_| bad())?;
        if !(1..=5).contains(&digit) || class.len() != 1 {
            return Err(bad());
        }
        return Ok(json!({"range": {"status": {"gte": digit * 100, "lt": digit * 100 + 100}}}));
    }
    let code: u16 = s.parse().map_err(|_| bad())?;
    if !(100..=599).contains(&code) {
        return Err(bad());
    }
    Ok(json!({"term": {"status": code}}))
}

/// The Elasticsearch request for a search, and the page and size it answers.
pub fn search_body(p: &SearchParams) -> Result<(Value, u32, u32), InvalidQuery> {
    let page = p.page.unwrap_or(1);
    let size = p.size.unwrap_or(20);
    if page == 0 {
        return Err(InvalidQuery("`page` starts at 1".into()));
    }
    if size == 0 || size > MAX_PAGE_SIZE {
        return Err(InvalidQuery(format!("`size` must be 1 to {MAX_PAGE_SIZE}")));
    }
    let from = u64::from(page - 1) * u64::from(size);
    if from + u64::from(size) > MAX_RESULT_WINDOW {
        return Err(InvalidQuery(format!(
            "page × size may not exceed {MAX_RESULT_WINDOW}; narrow the time range instead"
        )));
    }
    let order = match p.order.as_deref().unwrap_or("desc") {
        o @ ("asc" | "desc") => o,
        other => {
            return Err(InvalidQuery(format!(
                "`order` must be asc or desc, not `{other}`"
            )));
        }
    };
    let mut filter: Vec<Value> = [
        term("path", &p.path),
        term("route", &p.route),
        term("service", &p.service),
        term("method", &p.method.as_ref().map(|m| m.to_ascii_uppercase())),
    ]
    .into_iter()
    .flatten()
    .collect();
    if let Some(s) = p.status.as_deref().filter(|s| !s.is_empty()) {
        filter.push(status_filter(s)?);
    }
    if let Some(r) = range(p.from, p.to)? {
        filter.push(r);
    }
    let mut must = Vec::new();
    if let Some(q) = p.q.as_deref().map(str::trim).filter(|q| !q.is_empty()) {
        must.push(json!({"simple_query_string": {
            "query": q,
            "fields": ["path", "route", "query", "user_agent", "request_id", "service"],
            "default_operator": "and",
            "lenient": true
        }}));
    }
    let body = json!({
        "from": from,
        "size": size,
        "track_total_hits": true,
        "query": {"bool": {"filter": filter, "must": must}},
        "sort": [{"@timestamp": {"order": order}}]
    });
    Ok((body, page, size))
}

/// Reads a search answer.
pub fn search_response(v: &Value, page: u32, size: u32) -> SearchResponse {
    let hits = &v["hits"];
    let total = hits["total"]["value"]
        .as_u64()
        .or_else(|| hits["total"].as_u64())
        .unwrap_or(0);
    let entries = hits["hits"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|h| {
                    let mut e: LogEntry =
                        serde_json::from_value(h["_source"].clone()).unwrap_or_default();
                    e.id = h["_id"].as_str().unwrap_or_default().to_owned();
                    e.index = h["_index"].as_str().unwrap_or_default().to_owned();
                    e
                })
                .collect()
        })
        .unwrap_or_default();
    SearchResponse {
        total,
        page,
        size,
        hits: entries,
    }
}

/// A stats request resolved against the clock: the window, bucket width and grouping.
#[derive(Debug, Clone, PartialEq)]
pub struct StatsPlan {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub interval_minutes: i64,
    pub group_by: &'static str,
    pub body: Value,
}

/// The Elasticsearch request for stats over a window ending at `to` (default `now`).
pub fn stats_plan(p: &StatsParams, now: DateTime<Utc>) -> Result<StatsPlan, InvalidQuery> {
    let to = p.to.unwrap_or(now);
    let from = p
        .from
        .unwrap_or(to - Duration::minutes(DEFAULT_WINDOW_MINUTES));
    if from >= to {
        return Err(InvalidQuery("`from` must be before `to`".into()));
    }
    if to - from > Duration::days(366) {
        return Err(InvalidQuery("the window may span at most 366 days".into()));
    }
    let group_by = match p.group_by.as_deref().unwrap_or("route") {
        "route" => "route",
        "path" => "path",
        other => {
            return Err(InvalidQuery(format!(
                "`group_by` must be route or path, not `{other}`"
            )));
        }
    };
    let top = p.top.unwrap_or(20);
    if top == 0 || top > 100 {
        return Err(InvalidQuery("`top` must be 1 to 100".into()));
    }
    let window_minutes = ((to - from).num_seconds() + 59) / 60;
    let interval_minutes = ((window_minutes + MAX_RATE_BUCKETS - 1) / MAX_RATE_BUCKETS).max(1);
    let mut filter = vec![range(Some(from), Some(to))?.expect("a bounded range")];
    if let Some(t) = term("service", &p.service) {
        filter.push(t);
    }
    let classes: Vec<Value> = (1..=5)
        .map(|d| json!({"key": format!("{d}xx"), "from": d * 100, "to": d * 100 + 100}))
        .collect();
    let body = json!({
        "size": 0,
        "track_total_hits": true,
        "query": {"bool": {"filter": filter}},
        "aggs": {
            "status_classes": {"range": {"field": "status", "ranges": classes}},
            "rate": {"date_histogram": {
                "field": "@timestamp",
                "fixed_interval": format!("{interval_minutes}m"),
                "min_doc_count": 0,
                "extended_bounds": {
                    "min": from.timestamp_millis(),
                    "max": to.timestamp_millis() - 1
                }
            }},
            "latency": {
                "terms": {"field": group_by, "size": top},
                "aggs": {"duration": {"percentiles": {"field": "duration_ms", "percents": PERCENTS}}}
            }
        }
    });
    Ok(StatsPlan {
        from,
        to,
        interval_minutes,
        group_by,
        body,
    })
}

/// The value for `percent` in a `percentiles` answer (keyed `"95.0"`, or a `[{key, value}]` list).
fn percentile(values: &Value, percent: f64) -> Option<f64> {
    match values {
        Value::Object(m) => m
            .iter()
            .find(|(k, _)| k.parse::<f64>().ok() == Some(percent))
            .and_then(|(_, v)| v.as_f64()),
        Value::Array(a) => a
            .iter()
            .find(|e| e["key"].as_f64() == Some(percent))
            .and_then(|e| e["value"].as_f64()),
        _ => None,
    }
}

/// Reads a stats answer.
pub fn stats_response(v: &Value, plan: &StatsPlan) -> StatsResponse {
    let aggs = &v["aggregations"];
    let total = v["hits"]["total"]["value"]
        .as_u64()
        .or_else(|| v["hits"]["total"].as_u64())
        .unwrap_or(0);
    let status_classes = (1..=5)
        .map(|d| {
            let class = format!("{d}xx");
            let count = aggs["status_classes"]["buckets"]
                .as_array()
                .and_then(|b| b.iter().find(|b| b["key"] == class.as_str()))
                .and_then(|b| b["doc_count"].as_u64())
                .unwrap_or(0);
            StatusClassCount { class, count }
        })
        .collect();
    let minutes = plan.interval_minutes as f64;
    let rate = aggs["rate"]["buckets"]
        .as_array()
        .map(|b| {
            b.iter()
                .map(|b| {
                    let count = b["doc_count"].as_u64().unwrap_or(0);
                    let time = b["key"]
                        .as_i64()
                        .and_then(DateTime::from_timestamp_millis)
                        .map(time_str)
                        .unwrap_or_default();
                    RateBucket {
                        time,
                        count,
                        per_minute: count as f64 / minutes,
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    let latency = aggs["latency"]["buckets"]
        .as_array()
        .map(|b| {
            b.iter()
                .map(|b| {
                    let values = &b["duration"]["values"];
                    PathLatency {
                        path: match &b["key"] {
                            Value::String(s) => s.clone(),
                            other => other.to_string(),
                        },
                        count: b["doc_count"].as_u64().unwrap_or(0),
                        p50: percentile(values, 50.0),
                        p95: percentile(values, 95.0),
                        p99: percentile(values, 99.0),
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    let window_minutes = (plan.to - plan.from).num_milliseconds() as f64 / 60_000.0;
    StatsResponse {
        from: time_str(plan.from),
        to: time_str(plan.to),
        total,
        status_classes,
        interval_minutes: plan.interval_minutes,
        requests_per_minute: total as f64 / window_minutes,
        rate,
        group_by: plan.group_by.to_owned(),
        latency,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn search_filters_and_paging() {
        let p = SearchParams {
            path: Some("/posts/1/detail".into()),
            status: Some("4xx".into()),
            method: Some("get".into()),
            from: Some(t("2026-11-25T20:00:00Z")),
            q: Some("curl".into()),
            page: Some(3),
            size: Some(10),
            ..Default::default()
        };
        let (body, page, size) = search_body(&p).unwrap();
        assert_eq!((page, size), (3, 10));
        assert_eq!(body["from"], 20);
        let filter = body["query"]["bool"]["filter"].as_array().unwrap();
        assert!(filter.contains(&json!({"term": {"path": "/posts/1/detail"}})));
        assert!(filter.contains(&json!({"term": {"method": "GET"}})));
        assert!(filter.contains(&json!({"range": {"status": {"gte": 400, "lt": 500}}})));
        assert!(filter.contains(&json!({"range": {"@timestamp": {"gte": "2026-11-25T20:00:00.000Z", "format": "strict_date_optional_time"}}})));
        assert_eq!(
            body["query"]["bool"]["must"][0]["simple_query_string"]["query"],
            "curl"
        );
        assert_eq!(body["sort"][0]["@timestamp"]["order"], "desc");
    }

    #[test]
    fn bad_search_parameters() {
        let bad = |p: SearchParams| search_body(&p).unwrap_err();
        bad(SearchParams {
            status: Some("6xx".into()),
            ..Default::default()
        });
        bad(SearchParams {
            status: Some("abc".into()),
            ..Default::default()
        });
        bad(SearchParams {
            status: Some("99".into()),
            ..Default::default()
        });
        bad(SearchParams {
            size: Some(101),
            ..Default::default()
        });
        bad(SearchParams {
            page: Some(0),
            ..Default::default()
        });
        bad(SearchParams {
            page: Some(101),
            size: Some(100),
            ..Default::default()
        });
        bad(SearchParams {
            order: Some("up".into()),
            ..Default::default()
        });
        bad(SearchParams {
            from: Some(t("2026-11-25T20:00:00Z")),
            to: Some(t("2026-11-25T19:00:00Z")),
            ..Default::default()
        });
        assert_eq!(
            status_filter("404").unwrap(),
            json!({"term": {"status": 404}})
        );
    }

    #[test]
    fn stats_window_and_buckets() {
        let now = t("2026-11-25T20:00:00Z");
        let plan = stats_plan(&StatsParams::default(), now).unwrap();
        assert_eq!(plan.from, t("2026-11-25T19:45:00Z"));
        assert_eq!(plan.interval_minutes, 1);
        assert_eq!(
            plan.body["aggs"]["rate"]["date_histogram"]["fixed_interval"],
            "1m"
        );
        assert_eq!(
            plan.body["aggs"]["latency"]["aggs"]["duration"]["percentiles"]["percents"],
            json!([50.0, 95.0, 99.0])
        );
        let week = stats_plan(
            &StatsParams {
                from: Some(t("2026-11-18T20:00:00Z")),
                group_by: Some("path".into()),
                ..Default::default()
            },
            now,
        )
        .unwrap();
        assert_eq!(week.interval_minutes, 7);
        assert_eq!(week.body["aggs"]["latency"]["terms"]["field"], "path");
        assert!(
            stats_plan(
                &StatsParams {
                    group_by: Some("x".into()),
                    ..Default::default()
                },
                now
            )
            .is_err()
        );
        assert!(
            stats_plan(
                &StatsParams {
                    top: Some(0),
                    ..Default::default()
                },
                now
            )
            .is_err()
        );
    }

    #[test]
    fn stats_answers_are_read() {
        let now = t("2026-11-25T20:00:00Z");
        let plan = stats_plan(
            &StatsParams {
                from: Some(t("2026-11-25T19:58:00Z")),
                ..Default::default()
            },
            now,
        )
        .unwrap();
        let answer = json!({
            "hits": {"total": {"value": 6, "relation": "eq"}, "hits": []},
            "aggregations": {
                "status_classes": {"buckets": [
                    {"key": "1xx", "doc_count": 0}, {"key": "2xx", "doc_count": 4},
                    {"key": "3xx", "doc_count": 0}, {"key": "4xx", "doc_count": 1}, {"key": "5xx", "doc_count": 1}]},
                "rate": {"buckets": [
                    {"key": 1_795_636_680_000i64, "doc_count": 2},
                    {"key": 1_795_636_740_000i64, "doc_count": 4}]},
                "latency": {"buckets": [
                    {"key": "/posts", "doc_count": 5, "duration": {"values": {"50.0": 2.0, "95.0": 9.5, "99.0": null}}},
                    {"key": "/x", "doc_count": 1, "duration": {"values": [{"key": 50.0, "value": 1.0}]}}]}
            }
        });
        let r = stats_response(&answer, &plan);
        assert_eq!(r.total, 6);
        assert_eq!(r.requests_per_minute, 3.0);
        assert_eq!(
            r.status_classes[1],
            StatusClassCount {
                class: "2xx".into(),
                count: 4
            }
        );
        assert_eq!(r.status_classes[4].count, 1);
        assert_eq!(r.rate[0].time, "2026-11-25T19:58:00.000Z");
        assert_eq!(r.rate[1].per_minute, 4.0);
        assert_eq!(r.latency[0].p95, Some(9.5));
        assert_eq!(r.latency[0].p99, None);
        assert_eq!(r.latency[1].p50, Some(1.0));
    }
}
