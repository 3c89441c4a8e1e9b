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

/// The router: `GET /healthz` (the process is up) and `GET /readyz` (the database answers).
pub fn router(state: HttpState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
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
