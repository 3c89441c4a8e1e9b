//! The HTTP edge (axum): liveness and readiness for the orchestrator.

use std::sync::Arc;

use axum::{Router, extract::State, http::StatusCode, routing::get};

use crate::store::Store;

/// Shared state of the HTTP handlers.
#[derive(Clone)]
pub struct HttpState {
    /// The routing log, pinged by `/readyz`.
    pub store: Arc<dyn Store>,
}

/// The router: `GET /healthz` (the process is up), `GET /readyz` (the database answers) and
/// `GET /metrics` (Prometheus text).
pub fn router(state: HttpState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state)
}

async fn readyz(State(state): State<HttpState>) -> (StatusCode, &'static str) {
    match state.store.ping().await {
        Ok(()) => (StatusCode::OK, "ready\n"),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed: database unavailable");
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable\n")
        }
    }
}

async fn metrics(State(state): State<HttpState>) -> impl axum::response::IntoResponse {
    let m = crate::telemetry::metrics::metrics();
    match state.store.action_backlog().await {
        Ok((pending, failed)) => {
            m.action_backlog
                .with_label_values(&["pending"])
                .set(pending);
            m.action_backlog.with_label_values(&["failed"]).set(failed);
        }
        Err(e) => tracing::warn!(error = %e, "action backlog unavailable for /metrics"),
    }
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        m.render(),
    )
}
