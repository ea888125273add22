//! Operational endpoints every process serves: `/healthz` (the process is alive), `/readyz` (its
//! dependencies answer right now) and `/metrics` (Prometheus text format).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::future::{BoxFuture, join_all};
use prometheus_client::registry::Registry;
use serde_json::json;

type CheckFn = dyn Fn() -> BoxFuture<'static, Result<(), String>> + Send + Sync;

/// Named dependency checks run by `/readyz`; each must answer within the timeout.
#[derive(Clone, Default)]
pub struct Readiness {
    checks: Vec<(&'static str, Arc<CheckFn>)>,
}

impl Readiness {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a check; `f` is called on every `/readyz` request.
    pub fn check<F, Fut>(mut self, name: &'static str, f: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        self.checks.push((name, Arc::new(move || Box::pin(f()))));
        self
    }

    /// Runs every check concurrently; `Ok` with each result when all pass.
    pub async fn evaluate(&self) -> (bool, BTreeMap<&'static str, String>) {
        let results = join_all(self.checks.iter().map(|(name, f)| async move {
            let r = match tokio::time::timeout(Duration::from_secs(2), f()).await {
                Ok(r) => r,
                Err(_) => Err("timed out after 2 s".to_owned()),
            };
            (*name, r)
        }))
        .await;
        let mut ok = true;
        let mut out = BTreeMap::new();
        for (name, r) in results {
            match r {
                Ok(()) => {
                    out.insert(name, "ok".to_owned());
                }
                Err(e) => {
                    ok = false;
                    out.insert(name, e);
                }
            }
        }
        (ok, out)
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

async fn readyz(State(state): State<OpsState>) -> Response {
    let (ok, checks) = state.readiness.evaluate().await;
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({"status": if ok { "ready" } else { "not ready" }, "checks": checks});
    (status, axum::Json(body)).into_response()
}

async fn metrics(State(state): State<OpsState>) -> Response {
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
}
