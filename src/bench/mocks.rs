//! The outbound APIs the measured service calls, served in-process on 127.0.0.1 (axum):
//!
//! - the Anthropic Messages API: `POST /v1/messages` answers a structured-output decision in the
//!   documented wire format (reference/anthropic.md §4: a `text` block holding the JSON,
//!   `stop_reason: end_turn`, `usage`, a `request-id` header) after a configurable latency, or,
//!   at a configurable rate, `529 overloaded_error`; `POST /v1/messages/count_tokens` answers
//!   `{"input_tokens": N}` (the service counts its cached prefix at start);
//! - Plain's GraphQL API: the enrichment query and the routing-back mutations the adapter sends
//!   (`src/ticketing/plain.rs`, reference/plain.md §5-7), each mutation counted per thread so the
//!   benchmark knows when a ticket's last action arrived; at a configurable rate HTTP 500 with
//!   `INTERNAL_SERVER_ERROR`, which the service retries.
//!
//! Both check the credential the benchmark gave the service and answer 401 otherwise, so a
//! misconfigured run shows up as failures rather than as fast numbers.
//!
//! Over 450 lines: two mock APIs, each in the documented wire format with its counters; they share
//! the server and the injected-failure behaviour.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use axum::{
    Json, Router,
    extract::State,
    http::{HeaderMap, StatusCode},
    response::{IntoResponse as _, Response},
    routing::{get, post},
};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::{net::TcpListener, task::JoinHandle};

use super::tickets::{Tickets, template_in};
use crate::domain::Severity;

/// The fake Anthropic key the service is started with.
pub(crate) const MODEL_KEY: &str = "sk-ant-bench-0000000000000000";
/// The fake Plain machine-user key.
pub(crate) const PLAIN_KEY: &str = "plainApiKey_bench";

/// `addLabels` seen for a thread.
pub(crate) const MUTATION_LABEL: u8 = 1;
/// `changeThreadPriority`.
pub(crate) const MUTATION_PRIORITY: u8 = 2;
/// `assignThread`.
pub(crate) const MUTATION_ASSIGN: u8 = 4;
/// `createNote`.
pub(crate) const MUTATION_NOTE: u8 = 8;

/// Latency and failure rate of one mock.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Behaviour {
    /// Added before every answer.
    pub(crate) latency: Duration,
    /// Share of calls answered with an error (0..1).
    pub(crate) error_rate: f64,
}

impl Behaviour {
    async fn delay(&self) {
        if !self.latency.is_zero() {
            tokio::time::sleep(self.latency).await;
        }
    }

    fn fails(&self) -> bool {
        self.error_rate > 0.0 && rand::random_bool(self.error_rate.min(1.0))
    }
}

/// What the mock model saw.
#[derive(Debug, Default)]
pub(crate) struct ModelCounters {
    /// `POST /v1/messages` calls (errors included).
    pub(crate) calls: AtomicU64,
    /// Of those, answered 529 on purpose.
    pub(crate) errors: AtomicU64,
    /// `POST /v1/messages/count_tokens` calls.
    pub(crate) count_tokens: AtomicU64,
    /// Calls refused for a wrong key or an unreadable body.
    pub(crate) refused: AtomicU64,
    /// Calls in flight now.
    pub(crate) in_flight: AtomicU64,
    /// Most calls in flight at once.
    pub(crate) max_in_flight: AtomicU64,
}

/// What the mock Plain saw.
#[derive(Debug, Default)]
pub(crate) struct PlainCounters {
    /// `threadForRouting` queries.
    pub(crate) queries: AtomicU64,
    /// `threadNotes` lookups (a retried note looking for its marker).
    pub(crate) note_lookups: AtomicU64,
    /// Mutations answered successfully.
    pub(crate) mutations: AtomicU64,
    /// Calls answered 500 on purpose.
    pub(crate) errors: AtomicU64,
    /// Calls refused (wrong key, unknown operation, unreadable body).
    pub(crate) refused: AtomicU64,
}

/// A mock server; aborted on drop.
pub(crate) struct MockServer {
    /// Its address.
    pub(crate) addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for MockServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(router: Router) -> std::io::Result<MockServer> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router).await {
            tracing::warn!(error = %e, "bench mock server stopped");
        }
    });
    Ok(MockServer { addr, task })
}

#[derive(Clone)]
struct ModelState {
    behaviour: Behaviour,
    counters: Arc<ModelCounters>,
}

/// Starts the mock Messages API.
///
/// # Errors
/// When no port can be bound.
pub(crate) async fn start_model(
    behaviour: Behaviour,
    counters: Arc<ModelCounters>,
) -> std::io::Result<MockServer> {
    let state = ModelState {
        behaviour,
        counters,
    };
    serve(
        Router::new()
            .route("/v1/messages", post(messages))
            .route("/v1/messages/count_tokens", post(count_tokens))
            .route("/v1/models/{model}", get(model_info))
            .with_state(state),
    )
    .await
}

/// Either auth pair the service may send (`api_version` picks one, README).
fn model_key_ok(headers: &HeaderMap) -> bool {
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let x_api_key = headers.get("x-api-key").and_then(|v| v.to_str().ok());
    bearer == Some(MODEL_KEY) || x_api_key == Some(MODEL_KEY)
}

fn model_error(status: u16, kind: &str, message: &str) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        status,
        [("request-id", "req_bench_error")],
        Json(json!({
            "type": "error",
            "error": {"type": kind, "message": message},
            "request_id": "req_bench_error"
        })),
    )
        .into_response()
}

#[derive(Deserialize)]
struct MessagesBody {
    model: String,
    max_tokens: Option<u32>,
    messages: Vec<MessageTurn>,
}

#[derive(Deserialize)]
struct MessageTurn {
    content: Value,
}

/// Decrements the in-flight count however the handler ends.
struct InFlight<'a>(&'a AtomicU64);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn messages(State(s): State<ModelState>, headers: HeaderMap, body: String) -> Response {
    let c = &s.counters;
    c.calls.fetch_add(1, Ordering::Relaxed);
    let now = c.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
    c.max_in_flight.fetch_max(now, Ordering::Relaxed);
    let _in_flight = InFlight(&c.in_flight);
    if !model_key_ok(&headers) {
        c.refused.fetch_add(1, Ordering::Relaxed);
        return model_error(401, "authentication_error", "invalid x-api-key");
    }
    let req: MessagesBody = match serde_json::from_str(&body) {
        Ok(r) => r,
        Err(e) => {
            c.refused.fetch_add(1, Ordering::Relaxed);
            return model_error(400, "invalid_request_error", &e.to_string());
        }
    };
    s.behaviour.delay().await;
    if s.behaviour.fails() {
        c.errors.fetch_add(1, Ordering::Relaxed);
        return model_error(529, "overloaded_error", "Overloaded");
    }
    let user = req
        .messages
        .last()
        .map(|m| match &m.content {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .unwrap_or_default();
    let severity = template_in(&user).map_or(Severity::Urgent, |t| t.severity);
    let (route, reasoning) = match severity {
        Severity::OnFire => (
            "engineering",
            "Production is down or data is lost for the customer.",
        ),
        Severity::Urgent => (
            "human",
            "A billing problem or churn risk needs a person soon.",
        ),
        Severity::Routine => ("bot", "A how-to question the documentation answers."),
    };
    let answer = json!({
        "severity": severity.as_str(),
        "route": route,
        "confidence": 0.9,
        "reasoning": reasoning,
        "topic": "other",
        "sentiment": "neutral",
    })
    .to_string();
    // A `max_tokens: 0` warm-up generates nothing.
    let content = if req.max_tokens == Some(0) {
        json!([])
    } else {
        json!([{"type": "text", "text": answer}])
    };
    let n = c.calls.load(Ordering::Relaxed);
    (
        [("request-id", format!("req_bench_{n}"))],
        Json(json!({
            "id": format!("msg_bench_{n}"),
            "type": "message",
            "role": "assistant",
            "model": req.model,
            "content": content,
            "stop_reason": if req.max_tokens == Some(0) { "max_tokens" } else { "end_turn" },
            "stop_sequence": null,
            "stop_details": null,
            "usage": {
                "input_tokens": 310,
                "output_tokens": 42,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 5600,
                "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
                "service_tier": "standard"
            }
        })),
    )
        .into_response()
}

async fn count_tokens(State(s): State<ModelState>, headers: HeaderMap) -> Response {
    s.counters.count_tokens.fetch_add(1, Ordering::Relaxed);
    if !model_key_ok(&headers) {
        s.counters.refused.fetch_add(1, Ordering::Relaxed);
        return model_error(401, "authentication_error", "invalid x-api-key");
    }
    Json(json!({"input_tokens": 5600})).into_response()
}

/// `GET /v1/models/{model}`, which the service calls once at start: any model exists, active,
/// with structured outputs and every effort level.
async fn model_info(
    headers: HeaderMap,
    axum::extract::Path(model): axum::extract::Path<String>,
) -> Response {
    if !model_key_ok(&headers) {
        return model_error(401, "authentication_error", "invalid x-api-key");
    }
    Json(json!({
        "type": "model",
        "id": model,
        "display_name": model,
        "created_at": "2026-01-01T00:00:00Z",
        "lifecycle": "active",
        "capabilities": {
            "structured_outputs": {"supported": true},
            "effort": {"supported": true, "low": {"supported": true}, "medium": {"supported": true},
                       "high": {"supported": true}, "xhigh": {"supported": true}, "max": {"supported": true}}
        }
    }))
    .into_response()
}

/// Note (id, text) pairs per thread id.
type NotesByThread = std::collections::HashMap<String, Vec<(String, String)>>;

#[derive(Clone)]
struct PlainState {
    behaviour: Behaviour,
    counters: Arc<PlainCounters>,
    tickets: Arc<Tickets>,
    /// Notes created per thread (id, text), so a retried note's marker lookup (`threadNotes`)
    /// finds what a first attempt posted, as Plain's timeline would.
    notes: Arc<std::sync::Mutex<NotesByThread>>,
}

/// Starts the mock Plain GraphQL API at `/graphql/v1`.
///
/// # Errors
/// When no port can be bound.
pub(crate) async fn start_plain(
    behaviour: Behaviour,
    counters: Arc<PlainCounters>,
    tickets: Arc<Tickets>,
) -> std::io::Result<MockServer> {
    let state = PlainState {
        behaviour,
        counters,
        tickets,
        notes: Arc::default(),
    };
    serve(
        Router::new()
            .route("/graphql/v1", post(graphql))
            .with_state(state),
    )
    .await
}

#[derive(Deserialize)]
struct GraphqlBody {
    #[serde(rename = "operationName")]
    operation_name: Option<String>,
    #[serde(default)]
    variables: Value,
}

fn graphql_error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        Json(json!({"errors": [{"message": message, "extensions": {"code": code}}]})),
    )
        .into_response()
}

async fn graphql(State(s): State<PlainState>, headers: HeaderMap, body: String) -> Response {
    let c = &s.counters;
    let authorised = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == format!("Bearer {PLAIN_KEY}"));
    if !authorised {
        c.refused.fetch_add(1, Ordering::Relaxed);
        return graphql_error(
            StatusCode::UNAUTHORIZED,
            "UNAUTHENTICATED",
            "invalid API key",
        );
    }
    let Ok(req) = serde_json::from_str::<GraphqlBody>(&body) else {
        c.refused.fetch_add(1, Ordering::Relaxed);
        return graphql_error(
            StatusCode::BAD_REQUEST,
            "GRAPHQL_PARSE_FAILED",
            "body is not a GraphQL request",
        );
    };
    s.behaviour.delay().await;
    if s.behaviour.fails() {
        c.errors.fetch_add(1, Ordering::Relaxed);
        return graphql_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "INTERNAL_SERVER_ERROR",
            "internal error",
        );
    }
    let op = req.operation_name.unwrap_or_default();
    let input = &req.variables["input"];
    let thread_id = input["threadId"].as_str().unwrap_or("").to_owned();
    let (bit, data) = match op.as_str() {
        "threadForRouting" => {
            c.queries.fetch_add(1, Ordering::Relaxed);
            let id = req.variables["threadId"].as_str().unwrap_or("");
            return Json(json!({"data": {"thread": enrichment(&s.tickets, id)}})).into_response();
        }
        "threadNotes" => {
            c.note_lookups.fetch_add(1, Ordering::Relaxed);
            let id = req.variables["threadId"].as_str().unwrap_or("");
            let notes = s
                .notes
                .lock()
                .map(|n| n.get(id).cloned())
                .unwrap_or_default();
            return Json(json!({"data": {"thread": thread_notes(id, notes.unwrap_or_default())}}))
                .into_response();
        }
        "addLabels" => (
            MUTATION_LABEL,
            json!({"labels": [{"id": format!("l_{}", super::tickets::ulid()), "labelType": {"id": input["labelTypeIds"][0], "name": "escalator", "externalId": null}}], "error": null}),
        ),
        "changeThreadPriority" => (
            MUTATION_PRIORITY,
            json!({"thread": {"id": thread_id, "priority": input["priority"]}, "error": null}),
        ),
        "assignThread" => (
            MUTATION_ASSIGN,
            json!({"thread": {"id": thread_id, "status": "TODO", "assignedTo": {"__typename": "User", "id": input["userId"]}}, "error": null}),
        ),
        "createNote" => (
            MUTATION_NOTE,
            json!({"note": {"id": format!("n_{}", super::tickets::ulid()), "text": input["text"], "markdown": input["markdown"]}, "error": null}),
        ),
        _ => {
            c.refused.fetch_add(1, Ordering::Relaxed);
            return graphql_error(
                StatusCode::BAD_REQUEST,
                "GRAPHQL_VALIDATION_FAILED",
                "unknown operation",
            );
        }
    };
    if op == "createNote" {
        if let Ok(mut notes) = s.notes.lock() {
            let text = input["markdown"].as_str().or(input["text"].as_str());
            notes.entry(thread_id.clone()).or_default().push((
                data["note"]["id"].as_str().unwrap_or("").to_owned(),
                text.unwrap_or("").to_owned(),
            ));
        }
    }
    c.mutations.fetch_add(1, Ordering::Relaxed);
    s.tickets.mutation(&thread_id, bit);
    Json(json!({"data": {op: data}})).into_response()
}

/// The thread's `NOTE` timeline entries, as `threadNotes` selects them (one page: the
/// benchmark's threads carry at most a few notes).
fn thread_notes(thread_id: &str, notes: Vec<(String, String)>) -> Value {
    let edges: Vec<Value> = notes
        .into_iter()
        .map(|(id, text)| {
            json!({"node": {"id": format!("te_{id}"), "entry": {"__typename": "NoteEntry", "noteId": id, "text": text, "markdown": text}}})
        })
        .collect();
    json!({
        "id": thread_id,
        "timelineEntries": {"edges": edges, "pageInfo": {"hasPreviousPage": false, "startCursor": null}}
    })
}

/// The thread's tier and company, as `threadForRouting` selects them.
fn enrichment(tickets: &Tickets, thread_id: &str) -> Value {
    let tier = tickets.tier_of(thread_id).unwrap_or("free");
    json!({
        "id": thread_id,
        "tier": {"id": format!("tier_{tier}"), "name": tier, "externalId": tier},
        "tenant": null,
        "customer": {
            "id": "c_bench",
            "company": {"id": "co_bench", "name": "Bench Co", "contractValue": 24000, "tier": null}
        }
    })
}
