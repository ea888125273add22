//! `campus-log api`: search and stats over the access-log alias, with an OpenAPI document and
//! Swagger UI, the ops endpoints, and its own access-log lines.
//!
//! - [`query`]: the questions as Elasticsearch requests and the answers back (pure functions).

pub mod query;

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use campus_common::http::{ApiError, HttpMetrics, Json, Query, observe};
use campus_common::ops::{self, Readiness};
use prometheus_client::registry::Registry;
use utoipa::OpenApi;
use utoipa_swagger_ui::SwaggerUi;

use crate::es::{Es, EsError};

use self::query::{
    InvalidQuery, LogEntry, PathLatency, RateBucket, SearchParams, SearchResponse, StatsParams,
    StatsResponse, StatusClassCount,
};

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    es: Es,
    /// The alias (or index pattern) searched: the index prefix.
    target: String,
    registry: Arc<Registry>,
    metrics: HttpMetrics,
}

impl AppState {
    /// Queries `target` (the alias `<prefix>` over the daily indices) on `es`.
    pub fn new(es: Es, target: impl Into<String>) -> Self {
        let mut registry = campus_common::metrics::registry("campus-log");
        let metrics = HttpMetrics::register(&mut registry);
        Self {
            es,
            target: target.into(),
            registry: Arc::new(registry),
            metrics,
        }
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Campus log API",
        description = "Search and statistics over the access logs of every Campus service."
    ),
    paths(search, stats),
    components(schemas(
        SearchResponse,
        LogEntry,
        StatsResponse,
        StatusClassCount,
        RateBucket,
        PathLatency,
        ErrorBody,
        ErrorDetail
    )),
    tags((name = "logs", description = "Access-log queries")),
    modifiers(&StandardResponses)
)]
pub struct ApiDoc;

use campus_common::http::{ErrorBody, ErrorDetail, StandardResponses};

/// The whole API: routes, Swagger UI, ops endpoints, request ids and access logging.
pub fn app(state: AppState) -> Router {
    let es = state.es.clone();
    let readiness = Readiness::new().check("elasticsearch", move || {
        let es = es.clone();
        async move { es.ping().await.map_err(|e| e.to_string()) }
    });
    let routes = Router::new()
        .route("/logs/search", get(search))
        .route("/logs/stats", get(stats))
        .with_state(state.clone())
        .merge(SwaggerUi::new("/swagger-ui").url("/api-docs/openapi.json", ApiDoc::openapi()))
        .merge(ops::router(state.registry.clone(), readiness))
        .fallback(|| async { ApiError::not_found("no such endpoint") });
    observe(routes, crate::SERVICE, Some(state.metrics))
}

fn invalid(e: InvalidQuery) -> ApiError {
    ApiError::bad_request(e.0)
}

fn upstream(e: EsError) -> ApiError {
    tracing::error!(error = %e, "Elasticsearch query failed");
    match e {
        EsError::Unreachable { .. } => ApiError::unavailable("the log store is unreachable"),
        // Overloaded (429) or failing on its side (5xx, e.g. a new index's shards not started
        // yet): the same query succeeds shortly, so 503 with Retry-After, not a refusal.
        e if e.is_transient() => {
            ApiError::unavailable("the log store is busy or recovering; try again shortly")
        }
        _ => ApiError::new(
            StatusCode::BAD_GATEWAY,
            "upstream",
            "the log store could not answer the query",
        ),
    }
}

/// Search access-log entries.
#[utoipa::path(
    get,
    path = "/logs/search",
    tag = "logs",
    params(SearchParams),
    responses(
        (status = 200, description = "A page of entries, newest first", body = SearchResponse),
        (status = 400, description = "Bad parameter", body = ErrorBody),
        (status = 502, description = "Elasticsearch refused the query", body = ErrorBody),
        (status = 503, description = "Elasticsearch unreachable, overloaded (429) or failing (5xx); with Retry-After", body = ErrorBody)
    )
)]
async fn search(
    State(state): State<AppState>,
    Query(params): Query<SearchParams>,
) -> Result<Json<SearchResponse>, ApiError> {
    let (body, page, size) = query::search_body(&params).map_err(invalid)?;
    let answer = state
        .es
        .search(&state.target, &body)
        .await
        .map_err(upstream)?;
    Ok(Json(query::search_response(&answer, page, size)))
}

/// Traffic statistics over a window: requests by status class, requests per minute, and
/// p50/p95/p99 latency per path (Elasticsearch `percentiles` aggregation).
#[utoipa::path(
    get,
    path = "/logs/stats",
    tag = "logs",
    params(StatsParams),
    responses(
        (status = 200, description = "Statistics of the window", body = StatsResponse),
        (status = 400, description = "Bad parameter", body = ErrorBody),
        (status = 502, description = "Elasticsearch refused the query", body = ErrorBody),
        (status = 503, description = "Elasticsearch unreachable, overloaded (429) or failing (5xx); with Retry-After", body = ErrorBody)
    )
)]
async fn stats(
    State(state): State<AppState>,
    Query(params): Query<StatsParams>,
) -> Result<Json<StatsResponse>, ApiError> {
    let plan = query::stats_plan(&params, chrono::Utc::now()).map_err(invalid)?;
    let answer = state
        .es
        .search(&state.target, &plan.body)
        .await
        .map_err(upstream)?;
    Ok(Json(query::stats_response(&answer, &plan)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::response::IntoResponse;

    #[test]
    fn the_openapi_document_names_both_endpoints() {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
        assert!(doc["paths"]["/logs/search"]["get"].is_object());
        assert!(doc["paths"]["/logs/stats"]["get"].is_object());
        let params: Vec<&str> = doc["paths"]["/logs/search"]["get"]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        for name in ["path", "status", "from", "to", "q", "page", "size"] {
            assert!(params.contains(&name), "{name} missing: {params:?}");
        }
        assert!(doc["components"]["schemas"]["StatsResponse"].is_object());
    }

    #[test]
    fn a_busy_or_failing_store_is_503_with_retry_after_and_a_refused_query_502() {
        let status = |status| EsError::Status {
            status,
            what: "search".into(),
            reason: "r".into(),
        };
        for (e, want) in [
            (
                EsError::Unreachable {
                    url: "u".into(),
                    message: "m".into(),
                },
                503,
            ),
            (status(429), 503),
            (status(503), 503),
            (status(500), 503),
            (status(400), 502),
            (
                EsError::Decode {
                    what: "search".into(),
                    message: "m".into(),
                },
                502,
            ),
        ] {
            let res = upstream(e).into_response();
            assert_eq!(res.status().as_u16(), want);
            assert_eq!(
                res.headers().contains_key(axum::http::header::RETRY_AFTER),
                want == 503
            );
        }
    }
}
