//! The log API against the real local servers: search, and stats with the `percentiles`
//! aggregation, on the shared OpenSearch node.

mod support;

use std::time::Duration;

use campus_common::http::AccessLog;
use campus_testkit::{self as testing, eventually, percentile};
use support::*;

fn mix_for_search() -> Vec<AccessLog> {
    let mut lines = Vec::new();
    for i in 0..25u32 {
        let time = at(&format!("2026-11-25T10:{:02}:00Z", i));
        let (status, path) = match i % 5 {
            0 => (404, format!("/posts/{i}/detail")),
            1 => (500, "/coupons".to_owned()),
            _ => (200, format!("/posts/{i}/detail")),
        };
        let route = if path == "/coupons" {
            "/coupons"
        } else {
            "/posts/{id}/detail"
        };
        let mut l = access_line(
            time,
            "campus-content",
            "GET",
            &path,
            route,
            status,
            f64::from(i),
        );
        if i % 2 == 0 {
            l.user_agent = "curl/8.1.2".into();
        }
        if i == 7 {
            l.query = "keyword=kafka&page=2".into();
            l.request_id = "req-seven".into();
        }
        lines.push(l);
    }
    lines
}

#[tokio::test]
async fn search_filters_pages_and_orders() {
    let es_url = testing::es_url();
    let es = es(&es_url);
    let prefix = fresh_prefix();
    seed(&es, &prefix, &mix_for_search()).await;
    let (base, token) = start_api(&es_url, &prefix).await;
    let search = |q: &str| get_json_owned(format!("{base}/logs/search?{q}"));

    let (status, all) = search("size=10").await;
    assert_eq!(status, 200, "{all}");
    assert_eq!(all["total"], 25);
    assert_eq!(all["hits"].as_array().unwrap().len(), 10);
    assert_eq!(
        all["hits"][0]["@timestamp"], "2026-11-25T10:24:00.000Z",
        "newest first"
    );

    let (_, last) = search("size=10&page=3").await;
    assert_eq!(last["hits"].as_array().unwrap().len(), 5);
    assert_eq!(last["page"], 3);
    let (_, asc) = search("size=1&order=asc").await;
    assert_eq!(asc["hits"][0]["@timestamp"], "2026-11-25T10:00:00.000Z");

    let (_, errors) = search("status=5xx").await;
    assert_eq!(errors["total"], 5);
    assert!(
        errors["hits"]
            .as_array()
            .unwrap()
            .iter()
            .all(|h| h["path"] == "/coupons")
    );
    let (_, not_found) = search("status=404").await;
    assert_eq!(not_found["total"], 5);
    let (_, one) = search("path=/posts/12/detail").await;
    assert_eq!(one["total"], 1);
    assert_eq!(one["hits"][0]["duration_ms"], 12.0);
    assert!(one["hits"][0]["id"].as_str().unwrap().starts_with("seed-"));
    let (_, window) = search("from=2026-11-25T10:05:00Z&to=2026-11-25T10:10:00Z").await;
    assert_eq!(window["total"], 5, "from inclusive, to exclusive");
    let (_, route) = search("route=/posts/%7Bid%7D/detail&status=2xx").await;
    assert_eq!(route["total"], 15);

    let (_, text) = search("q=curl").await;
    assert_eq!(text["total"], 13);
    let (_, text) = search("q=kafka").await;
    assert_eq!(text["total"], 1);
    assert_eq!(text["hits"][0]["request_id"], "req-seven");
    let (_, text) = search("q=req-seven").await;
    assert_eq!(text["total"], 1);

    let (status, bad) = search("status=6xx").await;
    assert_eq!(status, 400);
    assert_eq!(bad["error"]["code"], "bad_request");
    let (status, bad) = search("from=yesterday").await;
    assert_eq!(status, 400);
    assert_eq!(bad["error"]["code"], "bad_request");

    token.cancel();
    cleanup(&es, &prefix).await;
}

async fn get_json_owned(url: String) -> (u16, serde_json::Value) {
    get_json(&url).await
}

/// A known request mix in a 5-minute window, plus lines just outside it and of another service.
#[tokio::test]
async fn stats_count_classes_rates_and_percentiles() {
    let es_url = testing::es_url();
    let es = es(&es_url);
    let prefix = fresh_prefix();
    let mut lines = Vec::new();
    let minute = |i: u32, s: u32| at(&format!("2026-11-25T10:{:02}:{:02}Z", i % 5, s % 60));
    let mut detail = Vec::new();
    for i in 0..100u32 {
        let d = f64::from(i + 1);
        detail.push(d);
        lines.push(access_line(
            minute(i, i),
            "campus-content",
            "GET",
            &format!("/posts/{i}/detail"),
            "/posts/{id}/detail",
            200,
            d,
        ));
    }
    let mut coupons = Vec::new();
    for i in 0..40u32 {
        let status = match i {
            0..30 => 201,
            30..36 => 409,
            _ => 500,
        };
        let d = f64::from(100 + i);
        coupons.push(d);
        lines.push(access_line(
            minute(i, i),
            "campus-coupon",
            "POST",
            "/coupons",
            "/coupons",
            status,
            d,
        ));
    }
    for i in 0..10u32 {
        lines.push(access_line(
            minute(i, 30 + i),
            "campus-content",
            "POST",
            "/posts",
            "/posts",
            422,
            5.0,
        ));
    }
    // Outside the window [10:00, 10:05).
    lines.push(access_line(
        at("2026-11-25T09:59:59.999Z"),
        "campus-content",
        "GET",
        "/posts",
        "/posts",
        200,
        1.0,
    ));
    lines.push(access_line(
        at("2026-11-25T10:05:00Z"),
        "campus-content",
        "GET",
        "/posts",
        "/posts",
        200,
        1.0,
    ));
    seed(&es, &prefix, &lines).await;
    let (base, token) = start_api(&es_url, &prefix).await;

    let window = "from=2026-11-25T10:00:00Z&to=2026-11-25T10:05:00Z";
    let (status, s) = get_json(&format!("{base}/logs/stats?{window}")).await;
    assert_eq!(status, 200, "{s}");
    assert_eq!(s["total"], 150);
    let classes: Vec<(String, u64)> = s["status_classes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["class"].as_str().unwrap().to_owned(),
                c["count"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        classes,
        [
            ("1xx", 0),
            ("2xx", 130),
            ("3xx", 0),
            ("4xx", 16),
            ("5xx", 4)
        ]
        .map(|(c, n)| (c.to_owned(), n))
    );
    assert_eq!(s["requests_per_minute"], 30.0);
    let rate = s["rate"].as_array().unwrap();
    assert_eq!(rate.len(), 5, "{rate:?}");
    assert!(
        rate.iter()
            .all(|b| b["count"] == 30 && b["per_minute"] == 30.0),
        "{rate:?}"
    );
    assert_eq!(rate[0]["time"], "2026-11-25T10:00:00.000Z");

    let latency = s["latency"].as_array().unwrap();
    assert_eq!(latency.len(), 3);
    assert_eq!(latency[0]["path"], "/posts/{id}/detail", "busiest first");
    assert_eq!(latency[0]["count"], 100);
    assert_eq!(latency[1]["path"], "/coupons");
    assert_eq!(latency[2]["count"], 10);
    for (row, values) in [(&latency[0], &detail), (&latency[1], &coupons)] {
        for (key, p) in [("p50", 50.0), ("p95", 95.0), ("p99", 99.0)] {
            let got = row[key].as_f64().unwrap();
            let want = percentile::interpolated(values, p);
            assert!(
                (got - want).abs() <= 1.0,
                "{} {key}: got {got}, want {want}",
                row["path"]
            );
        }
    }
    assert_eq!(latency[2]["p99"], 5.0);

    // Filtered by service, grouped by raw path.
    let (_, coupon) = get_json(&format!(
        "{base}/logs/stats?{window}&service=campus-coupon&group_by=path"
    ))
    .await;
    assert_eq!(coupon["total"], 40);
    assert_eq!(coupon["status_classes"][4]["count"], 4);
    assert_eq!(coupon["latency"][0]["path"], "/coupons");
    let (_, top) = get_json(&format!("{base}/logs/stats?{window}&group_by=path&top=2")).await;
    assert_eq!(top["latency"].as_array().unwrap().len(), 2);

    let (status, bad) = get_json(&format!(
        "{base}/logs/stats?from=2026-11-25T10:05:00Z&to=2026-11-25T10:00:00Z"
    ))
    .await;
    assert_eq!(status, 400, "{bad}");
    token.cancel();
    cleanup(&es, &prefix).await;
}

#[tokio::test]
async fn no_indices_yet_means_no_hits() {
    let (base, token) = start_api(&testing::es_url(), &fresh_prefix()).await;
    let (status, v) = get_json(&format!("{base}/logs/search")).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["total"], 0);
    token.cancel();
}

#[tokio::test]
async fn an_unreachable_store_is_503_and_not_ready() {
    let port = testing::free_port();
    let (base, token) = start_api(&format!("http://127.0.0.1:{port}"), "access-log").await;
    let (status, v) = get_json(&format!("{base}/logs/stats")).await;
    assert_eq!(status, 503);
    assert_eq!(v["error"]["code"], "unavailable");
    assert!(
        !v.to_string().contains(&port.to_string()),
        "internals leaked: {v}"
    );
    let (status, v) = get_json(&format!("{base}/readyz")).await;
    assert_eq!(status, 503);
    assert!(
        v["checks"]["elasticsearch"]
            .as_str()
            .unwrap()
            .contains("failed to reach")
    );
    token.cancel();
}

#[tokio::test]
async fn openapi_and_swagger_ui_are_served() {
    let (base, token) = start_api(&testing::es_url(), "access-log").await;
    let (status, doc) = get_json(&format!("{base}/api-docs/openapi.json")).await;
    assert_eq!(status, 200);
    assert!(doc["paths"]["/logs/stats"].is_object());
    let res = reqwest::get(format!("{base}/swagger-ui/")).await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.text().await.unwrap().contains("swagger"));
    let res = reqwest::get(format!("{base}/nope")).await.unwrap();
    assert_eq!(res.status(), 404);
    assert!(res.headers().contains_key("x-request-id"));
    token.cancel();
}

/// The Logstash path: Logstash (the default processor) installs no index template, so the log
/// API does at start. Started as the binary starts it, against a fresh prefix with no indexer,
/// it installs the template and the alias before any document; a document then written as
/// Logstash writes it (straight into a daily index, which Elasticsearch creates on the write) gets
/// the schema's mapping and the alias, and the API finds it.
#[tokio::test]
async fn on_the_logstash_path_the_api_installs_the_template_and_alias_at_start() {
    use clap::Parser;

    let es_url = testing::es_url();
    let es = es(&es_url);
    let prefix = fresh_prefix();
    let cli = campus_log::cli::Cli::try_parse_from([
        "campus-log",
        "api",
        "--elasticsearch-url",
        &es_url,
        "--log-index-prefix",
        &prefix,
    ])
    .unwrap();
    let campus_log::cli::Command::Api(args) = cli.command else {
        panic!("not the api")
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let token = tokio_util::sync::CancellationToken::new();
    let api = tokio::spawn(campus_log::cli::run_api(args, listener, token.clone()));

    let http = reqwest::Client::new();
    let template = campus_contract::access_log::template_name(&prefix).to_owned();
    let alias = campus_contract::access_log::alias(&prefix).to_owned();
    let templates = eventually("the index template", Duration::from_secs(30), || async {
        let res = http
            .get(format!("{es_url}/_index_template/{template}"))
            .send()
            .await
            .ok()?;
        (res.status() == 200).then_some(())?;
        res.json::<serde_json::Value>().await.ok()
    })
    .await;
    let installed = &templates["index_templates"][0];
    assert_eq!(installed["name"], template.as_str(), "{templates}");
    assert_eq!(
        installed["index_template"]["index_patterns"],
        serde_json::json!([format!("{prefix}-*")]),
        "{templates}"
    );
    let aliases = eventually("the alias", Duration::from_secs(30), || async {
        let res = http
            .get(format!("{es_url}/_alias/{alias}"))
            .send()
            .await
            .ok()?;
        (res.status() == 200).then_some(())?;
        res.json::<serde_json::Value>().await.ok()
    })
    .await;
    let today = campus_common::logschema::index_for(&prefix, chrono::Utc::now());
    assert!(aliases[&today]["aliases"][&alias].is_object(), "{aliases}");

    // A line as Logstash indexes it: into the daily index of its own time, with a plain `index`.
    let line = access_line(
        at("2026-11-25T10:00:00Z"),
        "campus-content",
        "GET",
        "/posts/1/detail",
        "/posts/{id}/detail",
        200,
        1.5,
    );
    let daily = campus_common::logschema::index_for(&prefix, at(&line.timestamp));
    let mut body = serde_json::to_vec(&serde_json::json!({"index": {"_index": daily}})).unwrap();
    body.push(b'\n');
    serde_json::to_writer(&mut body, &line).unwrap();
    body.push(b'\n');
    let items = es.bulk(body).await.unwrap();
    assert!(items.iter().all(|i| i.status == 201), "{items:?}");
    es.refresh(&alias).await.unwrap();
    let mapping: serde_json::Value = http
        .get(format!("{es_url}/{daily}/_mapping"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        mapping[&daily]["mappings"]["properties"]["duration_ms"]["type"], "float",
        "{mapping}"
    );
    let (status, found) = get_json(&format!("{base}/logs/search?service=campus-content")).await;
    assert_eq!(status, 200, "{found}");
    assert_eq!(found["total"], 1, "{found}");

    token.cancel();
    api.await.unwrap().unwrap();
    cleanup(&es, &prefix).await;
}
