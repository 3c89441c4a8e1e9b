//! Stateful fakes of Plain's GraphQL API and the Anthropic Messages API for the fault tests,
//! served on 127.0.0.1 with axum. Unlike the wiremock mocks of the happy-path suites, these keep
//! the state a real tool keeps (a thread's labels, priority, assignee and notes; a note thread's
//! timeline), so a test can assert what the agent finally sees after crashes and outages, and
//! they can be switched into an outage (HTTP 500 / 529) and back while the service runs.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use axum::{
    Json, Router,
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde_json::{Value, json};
use tokio::net::TcpListener;

/// The machine-user key the service is given.
pub const PLAIN_KEY: &str = "plainApiKey_faults";
/// The fake Anthropic key.
pub const MODEL_KEY: &str = "sk-ant-faults-0000";

/// What one Plain thread looks like now.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Thread {
    /// Label type ids added.
    pub labels: BTreeSet<String>,
    /// Priority set, if any.
    pub priority: Option<i64>,
    /// Assigned user, if any.
    pub assignee: Option<String>,
    /// Notes posted, in order (their text).
    pub notes: Vec<String>,
    /// Successful mutations, by operation name.
    pub calls: BTreeMap<String, u32>,
}

#[derive(Default)]
struct PlainState {
    threads: Mutex<BTreeMap<String, Thread>>,
    down: AtomicBool,
    latency_ms: AtomicU64,
    /// Notes on threads whose id contains `slow` are read this much later (0: not delayed).
    slow_notes_ms: AtomicU64,
    /// Delayed notes not yet read.
    slow_in_flight: AtomicU64,
    refused: AtomicU64,
    failed: AtomicU64,
}

/// A fake Plain; dropping it stops the server.
pub struct FakePlain {
    /// Its GraphQL endpoint (`PLAIN_API_URL`).
    pub url: String,
    state: Arc<PlainState>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakePlain {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(router: Router) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    (addr, task)
}

impl FakePlain {
    /// Starts it.
    pub async fn start() -> Self {
        let state = Arc::new(PlainState::default());
        let (addr, task) = serve(
            Router::new()
                .route("/graphql/v1", post(plain_graphql))
                .with_state(state.clone()),
        )
        .await;
        Self {
            url: format!("http://{addr}/graphql/v1"),
            state,
            task,
        }
    }

    /// Answers every call with HTTP 500 while `down`.
    pub fn set_down(&self, down: bool) {
        self.state.down.store(down, Ordering::SeqCst);
    }

    /// Adds `ms` before every answer.
    pub fn set_latency_ms(&self, ms: u64) {
        self.state.latency_ms.store(ms, Ordering::SeqCst);
    }

    /// Reads a `createNote` on a thread whose id contains `slow` only `ms` after it arrived, as
    /// a tool with a full listen backlog does: the note is stored then whether or not the
    /// sender is still there (a killed sender's request still lands), and answered after.
    pub fn set_slow_notes_ms(&self, ms: u64) {
        self.state.slow_notes_ms.store(ms, Ordering::SeqCst);
    }

    /// Delayed notes that have arrived but are not read yet.
    pub fn slow_in_flight(&self) -> u64 {
        self.state.slow_in_flight.load(Ordering::SeqCst)
    }

    /// Every thread the service touched.
    pub fn threads(&self) -> BTreeMap<String, Thread> {
        self.state.threads.lock().unwrap().clone()
    }

    /// Calls answered 500 on purpose.
    pub fn failed(&self) -> u64 {
        self.state.failed.load(Ordering::SeqCst)
    }

    /// Calls refused (wrong key, unknown operation).
    pub fn refused(&self) -> u64 {
        self.state.refused.load(Ordering::SeqCst)
    }

    /// Threads that have a note, a label and a priority: what a routed ticket looks like.
    pub fn routed(&self) -> usize {
        self.threads()
            .values()
            .filter(|t| !t.notes.is_empty() && !t.labels.is_empty() && t.priority.is_some())
            .count()
    }
}

fn gql_error(status: StatusCode, code: &str) -> Response {
    (
        status,
        Json(json!({"errors": [{"message": code, "extensions": {"code": code}}]})),
    )
        .into_response()
}

async fn plain_graphql(
    State(s): State<Arc<PlainState>>,
    headers: axum::http::HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let latency = s.latency_ms.load(Ordering::SeqCst);
    if latency > 0 {
        tokio::time::sleep(Duration::from_millis(latency)).await;
    }
    if headers.get("authorization").and_then(|v| v.to_str().ok())
        != Some(&format!("Bearer {PLAIN_KEY}"))
    {
        s.refused.fetch_add(1, Ordering::SeqCst);
        return gql_error(StatusCode::UNAUTHORIZED, "UNAUTHENTICATED");
    }
    if s.down.load(Ordering::SeqCst) {
        s.failed.fetch_add(1, Ordering::SeqCst);
        return gql_error(StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL_SERVER_ERROR");
    }
    let slow = s.slow_notes_ms.load(Ordering::SeqCst);
    if slow > 0
        && body["operationName"] == "createNote"
        && body["variables"]["input"]["threadId"]
            .as_str()
            .is_some_and(|t| t.contains("slow"))
    {
        // Read later in a task of its own, so the note lands even if the sender is gone.
        s.slow_in_flight.fetch_add(1, Ordering::SeqCst);
        let (tx, rx) = tokio::sync::oneshot::channel();
        let state = s.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(slow)).await;
            let answer = plain_answer(&state, &body);
            state.slow_in_flight.fetch_sub(1, Ordering::SeqCst);
            let _ = tx.send(answer);
        });
        return rx
            .await
            .unwrap_or_else(|_| gql_error(StatusCode::INTERNAL_SERVER_ERROR, "LOST"));
    }
    plain_answer(&s, &body)
}

/// What the fake Plain answers to an authorised call while up.
fn plain_answer(s: &PlainState, body: &Value) -> Response {
    let op = body["operationName"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let vars = &body["variables"];
    let input = &vars["input"];
    let thread_id = input["threadId"]
        .as_str()
        .or(vars["threadId"].as_str())
        .unwrap_or_default()
        .to_owned();
    let mut threads = s.threads.lock().unwrap();
    let data = match op.as_str() {
        "threadForRouting" => json!({"thread": {
            "id": thread_id, "tier": {"id": "tier_pro", "name": "Pro", "externalId": "pro"},
            "tenant": null, "customer": {"id": "c_1", "company": null}
        }}),
        "threadNotes" => {
            let notes = threads
                .get(&thread_id)
                .map(|t| t.notes.clone())
                .unwrap_or_default();
            let edges: Vec<Value> = notes
                .iter()
                .enumerate()
                .map(|(i, text)| {
                    json!({"node": {"id": format!("te_{i}"), "entry": {
                        "__typename": "NoteEntry", "noteId": format!("n_{i}"),
                        "text": text, "markdown": text
                    }}})
                })
                .collect();
            json!({"thread": {"timelineEntries": {"edges": edges,
                "pageInfo": {"hasPreviousPage": false, "startCursor": null}}}})
        }
        "addLabels" | "changeThreadPriority" | "assignThread" | "createNote" => {
            let t = threads.entry(thread_id.clone()).or_default();
            *t.calls.entry(op.clone()).or_default() += 1;
            match op.as_str() {
                "addLabels" => {
                    for l in input["labelTypeIds"].as_array().into_iter().flatten() {
                        t.labels.insert(l.as_str().unwrap_or_default().to_owned());
                    }
                    json!({"addLabels": {"labels": [], "error": null}})
                }
                "changeThreadPriority" => {
                    t.priority = input["priority"].as_i64();
                    json!({"changeThreadPriority": {"thread": {"id": thread_id, "priority": input["priority"]}, "error": null}})
                }
                "assignThread" => {
                    t.assignee = input["userId"].as_str().map(str::to_owned);
                    json!({"assignThread": {"thread": {"id": thread_id, "status": "TODO", "assignedTo": {"__typename": "User", "id": input["userId"]}}, "error": null}})
                }
                _ => {
                    t.notes
                        .push(input["text"].as_str().unwrap_or_default().to_owned());
                    json!({"createNote": {"note": {"id": "n_x", "text": input["text"], "markdown": input["markdown"]}, "error": null}})
                }
            }
        }
        _ => {
            s.refused.fetch_add(1, Ordering::SeqCst);
            return gql_error(StatusCode::BAD_REQUEST, "GRAPHQL_VALIDATION_FAILED");
        }
    };
    Json(json!({ "data": data })).into_response()
}

#[derive(Default)]
struct ModelState {
    down: AtomicBool,
    calls: AtomicU64,
    refused_529: AtomicU64,
    in_flight: AtomicU64,
    max_in_flight: AtomicU64,
}

/// A fake Messages API: answers `on_fire` for tickets mentioning "down", else `routine`; 529
/// while down.
pub struct FakeClaude {
    /// `ANTHROPIC_BASE_URL`.
    pub url: String,
    state: Arc<ModelState>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeClaude {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeClaude {
    /// Starts it.
    pub async fn start() -> Self {
        let state = Arc::new(ModelState::default());
        let (addr, task) = serve(
            Router::new()
                .route("/v1/messages", post(messages))
                .route(
                    "/v1/messages/count_tokens",
                    post(|| async { Json(json!({"input_tokens": 5000})) }),
                )
                .route("/v1/models/{model}", get(model))
                .with_state(state.clone()),
        )
        .await;
        Self {
            url: format!("http://{addr}"),
            state,
            task,
        }
    }

    /// Answers 529 `overloaded_error` while `down`.
    pub fn set_down(&self, down: bool) {
        self.state.down.store(down, Ordering::SeqCst);
    }

    /// `POST /v1/messages` calls seen (529s included).
    pub fn calls(&self) -> u64 {
        self.state.calls.load(Ordering::SeqCst)
    }

    /// Calls answered 529.
    pub fn refused(&self) -> u64 {
        self.state.refused_529.load(Ordering::SeqCst)
    }
}

async fn model(Path(id): Path<String>) -> Json<Value> {
    Json(json!({
        "type": "model", "id": id, "display_name": id, "created_at": "2026-01-01T00:00:00Z",
        "lifecycle": "active",
        "capabilities": {"structured_outputs": {"supported": true}, "effort": {"supported": false}}
    }))
}

struct InFlight<'a>(&'a AtomicU64);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn messages(State(s): State<Arc<ModelState>>, Json(body): Json<Value>) -> Response {
    let n = s.calls.fetch_add(1, Ordering::SeqCst) + 1;
    let now = s.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    s.max_in_flight.fetch_max(now, Ordering::SeqCst);
    let _guard = InFlight(&s.in_flight);
    if s.down.load(Ordering::SeqCst) {
        s.refused_529.fetch_add(1, Ordering::SeqCst);
        return (
            StatusCode::from_u16(529).unwrap(),
            [("request-id", format!("req_{n}"))],
            Json(json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})),
        )
            .into_response();
    }
    let user = body["messages"].to_string().to_lowercase();
    let (severity, route) = if user.contains("down") {
        ("on_fire", "engineering")
    } else {
        ("routine", "bot")
    };
    let answer = json!({"severity": severity, "route": route, "confidence": 0.9,
        "reasoning": "The customer reports what the ticket says.",
        "topic": if severity == "on_fire" { "outage" } else { "how_to" }, "sentiment": "neutral"})
    .to_string();
    let content = if body["max_tokens"] == json!(0) {
        json!([])
    } else {
        json!([{"type": "text", "text": answer}])
    };
    (
        [("request-id", format!("req_{n}"))],
        Json(json!({
            "id": format!("msg_{n}"), "type": "message", "role": "assistant",
            "model": body["model"], "content": content,
            "stop_reason": if body["max_tokens"] == json!(0) { "max_tokens" } else { "end_turn" },
            "stop_sequence": null,
            "usage": {"input_tokens": 300, "output_tokens": 40, "cache_creation_input_tokens": 0,
                      "cache_read_input_tokens": 5000}
        })),
    )
        .into_response()
}

/// HMAC-SHA256 hex of `body` under `secret`, as Plain signs a delivery.
pub fn sign(secret: &str, body: &[u8]) -> String {
    use hmac::{Hmac, Mac as _};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// A `thread.thread_created` delivery for thread `id`, attempted now.
pub fn plain_delivery(id: &str, text: &str) -> Vec<u8> {
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    json!({
        "id": format!("pEv_{id}"),
        "type": "thread.thread_created",
        "payload": {"thread": {
            "id": id, "title": "Ticket", "previewText": text,
            "customer": {"id": format!("c_{id}")}, "updatedAt": "2026-11-25T04:00:00.000Z"
        }},
        "webhookMetadata": {"webhookDeliveryAttemptTimestamp": now}
    })
    .to_string()
    .into_bytes()
}
