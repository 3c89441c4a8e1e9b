//! The HTTP edge (axum): liveness and readiness for the orchestrator, and the Plain and Pylon
//! webhooks.

use std::{sync::Arc, time::Duration};

use axum::{
    Json, Router,
    body::Bytes,
    extract::{DefaultBodyLimit, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse as _, Response},
    routing::{MethodRouter, get, post},
};

use axum::extract::rejection::BytesRejection;
use tracing::Instrument as _;

use crate::{
    domain::Source,
    error,
    store::Liveness,
    telemetry::{self, metrics::metrics},
    triage::{Bridge, Received},
};

/// Largest webhook body accepted; larger ones get 413 before any work is done.
pub const MAX_WEBHOOK_BYTES: usize = 1024 * 1024;

/// Shared state of the HTTP handlers.
#[derive(Clone)]
pub struct HttpState {
    /// The database, pinged by `/readyz`, and the queues' backlog for `/metrics`.
    pub store: Arc<dyn Liveness>,
    /// The webhook bridge.
    pub bridge: Bridge,
    /// The worker loops, checked by `/readyz`.
    pub health: Arc<crate::worker::Health>,
}

/// The router: `GET /healthz` (the process is up), `GET /readyz` (the database answers),
/// `GET /metrics` (Prometheus text), `POST /webhooks/plain` and `POST /webhooks/pylon`.
pub fn router(state: HttpState) -> Router {
    let gate = Arc::new(tokio::sync::Semaphore::new(WEBHOOKS_IN_FLIGHT));
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(prometheus_metrics))
        // The body is taken as raw bytes because the signature is over them exactly; the limit
        // layer answers 413 before a large body is buffered.
        .route("/webhooks/plain", webhook_route(Source::Plain, &gate))
        .route("/webhooks/pylon", webhook_route(Source::Pylon, &gate))
        .with_state(state)
}

/// Webhook requests handled at once, both tools together. The ones past it wait, before their
/// body is read, for one to finish: a burst of 2,000 deliveries on 2,000 connections otherwise
/// held every body, its parse and its place in the accept path's batches at once, and peaked
/// at 98 to 101 MiB in the shared harness (issue 25: at most 100). Twice the accept path's
/// batch of 256, so the limit only ever engages in such a burst; the request deadline
/// (`with_request_timeout`) still bounds the wait.
pub const WEBHOOKS_IN_FLIGHT: usize = 512;

/// `router` with a deadline on every request: past `timeout` the handler is dropped (its
/// future cancelled) and the caller gets 503, which a webhook sender retries (a delivery stored
/// just before the deadline is then a duplicate, acknowledged 200). Outermost, so it bounds
/// the whole request, and it lets the drain after SIGTERM end within `shutdown_grace_secs`
/// instead of waiting on one slow call.
pub fn with_request_timeout(router: Router, timeout: Duration) -> Router {
    router.layer(tower_http::timeout::TimeoutLayer::with_status_code(
        StatusCode::SERVICE_UNAVAILABLE,
        timeout,
    ))
}

/// `POST` of one tool's webhook, with the body limit, behind `gate` ([`WEBHOOKS_IN_FLIGHT`]).
fn webhook_route(source: Source, gate: &Arc<tokio::sync::Semaphore>) -> MethodRouter<HttpState> {
    let route = post(
        move |State(state): State<HttpState>,
              headers: HeaderMap,
              body: Result<Bytes, BytesRejection>| async move {
            webhook(&state, source, &headers, body).await
        },
    )
    .layer(DefaultBodyLimit::max(MAX_WEBHOOK_BYTES));
    gated(route, gate)
}

/// `route` behind `gate`: a request waits for a place before the handler runs, so before its
/// body is read, and keeps it until its answer is built.
fn gated<S: Clone + Send + Sync + 'static>(
    route: MethodRouter<S>,
    gate: &Arc<tokio::sync::Semaphore>,
) -> MethodRouter<S> {
    let gate = gate.clone();
    route.layer(axum::middleware::from_fn(
        move |request: axum::extract::Request, next: axum::middleware::Next| {
            let gate = gate.clone();
            async move {
                // The semaphore is never closed; were it, the request goes on without a place.
                let _place = gate.acquire_owned().await.ok();
                next.run(request).await
            }
        },
    ))
}

/// 202 for a new delivery (stored; decided and routed in the background), 200 for a duplicate
/// or an ignored event, the mapped error status otherwise. Each delivery gets a root span that
/// continues the sender's `traceparent`; the worker that decides it continues this trace.
async fn webhook(
    state: &HttpState,
    source: Source,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let span = telemetry::root_span(&format!("webhook {source}"), headers);
    let rejected = |reason: &'static str| {
        metrics()
            .webhook_rejections
            .with_label_values(&[source.as_str(), reason])
            .inc();
    };
    let body = match body {
        Ok(b) => b,
        Err(rejection) => {
            // The body limit (413) or a broken stream: nothing was read, nothing stored.
            let reason = if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                "too_large"
            } else {
                "unreadable_body"
            };
            rejected(reason);
            telemetry::record_delivery(&span, source, reason);
            tracing::info!(%source, reason, "webhook refused: body");
            return rejection.into_response();
        }
    };
    let result = state
        .bridge
        .receive(source, headers, &body)
        .instrument(span.clone())
        .await;
    match result {
        Ok(r) => {
            telemetry::record_delivery(&span, source, r.as_str());
            let status = match r {
                Received::Accepted => StatusCode::ACCEPTED,
                Received::Duplicate | Received::Ignored => StatusCode::OK,
            };
            if matches!(r, Received::Duplicate) {
                metrics()
                    .duplicates
                    .with_label_values(&[source.as_str()])
                    .inc();
            }
            (status, Json(serde_json::json!({ "status": r.as_str() }))).into_response()
        }
        Err(e) => {
            let reason = error::webhook_reason(&e);
            rejected(reason);
            telemetry::record_delivery(&span, source, reason);
            telemetry::record_error(&span, reason);
            error::log_webhook(&e);
            (
                error::webhook_status(&e),
                Json(serde_json::json!({ "error": e.to_string() })),
            )
                .into_response()
        }
    }
}

async fn readyz(State(state): State<HttpState>) -> (StatusCode, String) {
    if let Err(e) = state.store.ping().await {
        tracing::warn!(error = %e, "readiness check failed: database unavailable");
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "database unavailable\n".to_owned(),
        );
    }
    let down = state.health.down();
    if !down.is_empty() {
        tracing::warn!(loops = ?down, "readiness check failed: worker loops down");
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("worker loops down: {}\n", down.join(", ")),
        );
    }
    (StatusCode::OK, "ready\n".to_owned())
}

async fn prometheus_metrics(State(state): State<HttpState>) -> impl axum::response::IntoResponse {
    let m = crate::telemetry::metrics::metrics();
    match state.store.backlog().await {
        Ok(b) => {
            let now = chrono::Utc::now();
            let age = |t: Option<chrono::DateTime<chrono::Utc>>| {
                t.map_or(0.0, |t| {
                    #[allow(clippy::cast_precision_loss)]
                    let ms = (now - t).num_milliseconds().max(0) as f64;
                    ms / 1000.0
                })
            };
            for (gauge, label, value) in [
                (&m.action_backlog, "pending", b.actions_pending),
                (&m.action_backlog, "failed", b.actions_failed),
                (&m.delivery_backlog, "pending", b.deliveries_pending),
                (&m.delivery_backlog, "failed", b.deliveries_failed),
            ] {
                gauge.with_label_values(&[label]).set(value);
            }
            for (queue, oldest) in [("inbox", b.oldest_delivery), ("outbox", b.oldest_action)] {
                m.oldest_pending_seconds
                    .with_label_values(&[queue])
                    .set(age(oldest));
            }
        }
        Err(e) => tracing::warn!(error = %e, "backlog unavailable for /metrics"),
    }
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        m.render(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A request past the deadline is answered 503 at the deadline (its handler dropped), one
    /// within it as usual.
    /// A gated request waits, body unread, while the gate has no place, and is answered once
    /// one frees.
    #[tokio::test]
    async fn a_gated_request_waits_for_a_place_before_its_body_is_read() {
        let read = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let seen = read.clone();
        let gate = Arc::new(tokio::sync::Semaphore::new(0));
        let route = gated(
            post(move |body: Bytes| async move {
                seen.store(true, std::sync::atomic::Ordering::SeqCst);
                format!("{} bytes", body.len())
            }),
            &gate,
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            axum::serve(listener, Router::new().route("/hook", route)).await
        });
        let send = tokio::spawn(async move {
            reqwest::Client::new()
                .post(format!("http://{addr}/hook"))
                .body("hello")
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!send.is_finished(), "no place: the request waits");
        assert!(
            !read.load(std::sync::atomic::Ordering::SeqCst),
            "its body unread"
        );
        gate.add_permits(1);
        assert_eq!(send.await.unwrap(), "5 bytes");
        assert_eq!(gate.available_permits(), 1, "the place is given back");
        server.abort();
    }

    #[tokio::test]
    async fn a_request_past_the_deadline_is_answered_503() {
        let routes = Router::new()
            .route(
                "/slow",
                get(|| async {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                    "late"
                }),
            )
            .route("/fast", get(|| async { "ok" }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            axum::serve(
                listener,
                with_request_timeout(routes, Duration::from_millis(200)),
            )
            .await
        });
        let client = reqwest::Client::new();
        let started = std::time::Instant::now();
        let slow = client
            .get(format!("http://{addr}/slow"))
            .send()
            .await
            .unwrap();
        assert_eq!(slow.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(started.elapsed() < Duration::from_secs(10));
        let fast = client
            .get(format!("http://{addr}/fast"))
            .send()
            .await
            .unwrap();
        assert_eq!(fast.status(), StatusCode::OK);
        server.abort();
    }
}
