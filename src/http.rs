//! The HTTP edge (axum): liveness and readiness for the orchestrator, and the Plain and Pylon
//! webhooks.

use std::sync::Arc;

use axum::{
    Json, Router,
    body::Bytes,
    extract::{DefaultBodyLimit, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse as _, Response},
    routing::{get, post},
};

use crate::{
    domain::Source,
    error,
    store::Store,
    ticketing::{Bridge, Received},
};

/// Largest webhook body accepted; larger ones get 413 before any work is done.
pub const MAX_WEBHOOK_BYTES: usize = 1024 * 1024;

/// Shared state of the HTTP handlers.
#[derive(Clone)]
pub struct HttpState {
    /// The routing log, pinged by `/readyz`.
    pub store: Arc<dyn Store>,
    /// The webhook bridge.
    pub bridge: Bridge,
}

/// The router: `GET /healthz` (the process is up), `GET /readyz` (the database answers),
/// `GET /metrics` (Prometheus text), `POST /webhooks/plain` and `POST /webhooks/pylon`.
pub fn router(state: HttpState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        // The body is taken as raw bytes because the signature is over them exactly; the limit
        // layer answers 413 before a large body is buffered.
        .route(
            "/webhooks/plain",
            post(plain_webhook).layer(DefaultBodyLimit::max(MAX_WEBHOOK_BYTES)),
        )
        .route(
            "/webhooks/pylon",
            post(pylon_webhook).layer(DefaultBodyLimit::max(MAX_WEBHOOK_BYTES)),
        )
        .with_state(state)
}

async fn plain_webhook(
    State(state): State<HttpState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    webhook(&state, Source::Plain, &headers, &body).await
}

async fn pylon_webhook(
    State(state): State<HttpState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    webhook(&state, Source::Pylon, &headers, &body).await
}

/// 202 for a new delivery (stored; decided and routed in the background), 200 for a duplicate
/// or an ignored event, the mapped error status otherwise.
async fn webhook(state: &HttpState, source: Source, headers: &HeaderMap, body: &[u8]) -> Response {
    match state.bridge.receive(source, headers, body).await {
        Ok(r) => {
            let status = match r {
                Received::Accepted => StatusCode::ACCEPTED,
                Received::Duplicate | Received::Ignored => StatusCode::OK,
            };
            (status, Json(serde_json::json!({ "status": r.as_str() }))).into_response()
        }
        Err(e) => {
            error::log_webhook(&e);
            (
                error::webhook_status(&e),
                Json(serde_json::json!({ "error": e.to_string() })),
            )
                .into_response()
        }
    }
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
