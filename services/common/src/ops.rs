//! Operational endpoints every process serves: `/healthz` (the process is alive), `/readyz` (what
//! it needs to answer responds right now; `?verbose` shows every dependency) and `/metrics`
//! (Prometheus text format, with `campus_dependency_up` when registered in the process's root
//! registry, [`crate::metrics::registry`]).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::future::{BoxFuture, join_all};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde_json::json;

type CheckFn = dyn Fn() -> BoxFuture<'static, Result<(), String>> + Send + Sync;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DependencyLabels {
    dependency: String,
}

/// Named dependency checks run by `/readyz`; each must answer within the timeout.
///
/// A **required** check ([`Readiness::check`]) is something the process cannot answer without:
/// it fails `/readyz` (and takes the pod out of its Service). A **reported** check
/// ([`Readiness::report`]) is a dependency it can do without for a while (an API whose writes wait
/// in the outbox while Kafka is down): it is shown on `/readyz?verbose` and as the
/// `dependency_up{dependency=…}` gauge, never fails readiness.
#[derive(Clone, Default)]
pub struct Readiness {
    checks: Vec<(&'static str, bool, Arc<CheckFn>)>,
    up: Family<DependencyLabels, Gauge>,
}

/// How long one check may take.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

impl Readiness {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a required check; `f` is called on every `/readyz` request.
    pub fn check<F, Fut>(self, name: &'static str, f: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        self.add(name, true, f)
    }

    /// Adds a reported check: on `/readyz?verbose` and in `dependency_up`, never failing readiness.
    pub fn report<F, Fut>(self, name: &'static str, f: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        self.add(name, false, f)
    }

    fn add<F, Fut>(mut self, name: &'static str, required: bool, f: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        self.checks
            .push((name, required, Arc::new(move || Box::pin(f()))));
        self
    }

    /// Registers `dependency_up{dependency}` (1 when the last check of it passed, 0 when not),
    /// refreshed on every `/readyz?verbose` and every `/metrics` scrape.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "dependency_up",
            "1 when the dependency answered its last check, 0 when not",
            self.up.clone(),
        );
    }

    /// Runs the required checks concurrently; `true` when all pass, with each result.
    pub async fn evaluate(&self) -> (bool, BTreeMap<&'static str, String>) {
        self.run(false).await
    }

    /// Runs every check (required and reported); `true` when the required ones pass.
    pub async fn evaluate_all(&self) -> (bool, BTreeMap<&'static str, String>) {
        self.run(true).await
    }

    async fn run(&self, all: bool) -> (bool, BTreeMap<&'static str, String>) {
        let results = join_all(
            self.checks
                .iter()
                .filter(|(_, required, _)| all || *required)
                .map(|(name, required, f)| async move {
                    let r = match tokio::time::timeout(CHECK_TIMEOUT, f()).await {
                        Ok(r) => r,
                        Err(_) => Err(format!("timed out after {} s", CHECK_TIMEOUT.as_secs())),
                    };
                    (*name, *required, r)
                }),
        )
        .await;
        let mut ok = true;
        let mut out = BTreeMap::new();
        for (name, required, r) in results {
            self.up
                .get_or_create(&DependencyLabels {
                    dependency: name.to_owned(),
                })
                .set(i64::from(r.is_ok()));
            match r {
                Ok(()) => {
                    out.insert(name, "ok".to_owned());
                }
                Err(e) => {
                    ok &= !required;
                    out.insert(name, e);
                }
            }
        }
        (ok, out)
    }

    fn has_reported(&self) -> bool {
        self.checks.iter().any(|(_, required, _)| !required)
    }
}

#[derive(Clone)]
struct OpsState {
    registry: Arc<Registry>,
    readiness: Readiness,
}

/// The ops routes, to merge into an API router or serve alone with [`crate::http::serve`].
pub fn router(registry: Arc<Registry>, readiness: Readiness) -> Router {
    Router::new()
        .route(
            "/healthz",
            get(|| async { axum::Json(json!({"status": "ok"})) }),
        )
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(OpsState {
            registry,
            readiness,
        })
}

#[derive(serde::Deserialize)]
struct ReadyQuery {
    verbose: Option<String>,
}

/// `/readyz`: the required checks decide (200 or 503); `?verbose` also runs and shows the reported
/// ones (`"required"`/`"reported"` say which is which).
async fn readyz(
    State(state): State<OpsState>,
    axum::extract::Query(q): axum::extract::Query<ReadyQuery>,
) -> Response {
    let verbose = q.verbose.is_some();
    let (ok, checks) = if verbose {
        state.readiness.evaluate_all().await
    } else {
        state.readiness.evaluate().await
    };
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let mut body = json!({"status": if ok { "ready" } else { "not ready" }, "checks": checks});
    if verbose {
        let names = |required: bool| -> Vec<&str> {
            state
                .readiness
                .checks
                .iter()
                .filter(|(_, r, _)| *r == required)
                .map(|(n, _, _)| *n)
                .collect()
        };
        body["required"] = json!(names(true));
        body["reported"] = json!(names(false));
    }
    (status, axum::Json(body)).into_response()
}

async fn metrics(State(state): State<OpsState>) -> Response {
    // Reported dependencies are checked on each scrape, so `dependency_up` is current.
    if state.readiness.has_reported() {
        let _ = state.readiness.evaluate_all().await;
    }
    let mut body = String::new();
    match prometheus_client::encoding::text::encode(&mut body, &state.registry) {
        Ok(()) => (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            body,
        )
            .into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use http::Request;
    use tower::ServiceExt;

    #[tokio::test]
    async fn readyz_reflects_checks() {
        let readiness = Readiness::new()
            .check("good", || async { Ok(()) })
            .check("bad", || async { Err("connection refused".to_owned()) });
        let app = router(Arc::new(Registry::default()), readiness);
        let res = app
            .clone()
            .oneshot(Request::get("/readyz").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        let body = axum::body::to_bytes(res.into_body(), 1 << 16)
            .await
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["checks"]["bad"], "connection refused");
        assert_eq!(v["checks"]["good"], "ok");
        let res = app
            .oneshot(Request::get("/healthz").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn reported_checks_show_on_verbose_and_in_metrics_but_never_fail_readiness() {
        let readiness = Readiness::new()
            .check("mysql", || async { Ok(()) })
            .report("kafka", || async { Err("all brokers down".to_owned()) });
        let mut registry = crate::metrics::registry("campus-test");
        readiness.register(&mut registry);
        let app = router(Arc::new(registry), readiness);
        let get = |uri: &'static str| {
            let app = app.clone();
            async move {
                let res = app
                    .oneshot(Request::get(uri).body(Body::empty()).unwrap())
                    .await
                    .unwrap();
                let status = res.status();
                let body = axum::body::to_bytes(res.into_body(), 1 << 16)
                    .await
                    .unwrap();
                (status, String::from_utf8(body.to_vec()).unwrap())
            }
        };
        let (status, body) = get("/readyz").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(!body.contains("kafka"), "{body}");
        let (status, body) = get("/readyz?verbose").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["checks"]["kafka"], "all brokers down");
        assert_eq!(v["checks"]["mysql"], "ok");
        assert_eq!(v["reported"], json!(["kafka"]));
        let (_, metrics) = get("/metrics").await;
        assert!(
            metrics.contains(r#"campus_dependency_up{dependency="kafka"} 0"#),
            "{metrics}"
        );
        assert!(
            metrics.contains(r#"campus_dependency_up{dependency="mysql"} 1"#),
            "{metrics}"
        );
    }
}
