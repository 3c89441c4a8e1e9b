//! The Claude backend against a mock Messages API on 127.0.0.1: the exact request, and the
//! decision `Decider::decide` reaches for each kind of answer or failure.

mod limits;
mod models;
mod request;
mod retry;
mod service;
mod weighting;

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use axum::extract::State;

use escalator::{
    classifier::{
        Classifier as _, ClaudeClassifier, Decider, OfflineClassifier,
        claude::{ApiVersion, CacheTtl, ClaudeSettings, Effort, TokenSource},
    },
    domain::{Classification, RawTicket, Route, Severity, Source, Ticket, TicketContext, Tier},
    examples,
    prompt::{self, Prompt},
};
use secrecy::SecretString;
use serde_json::{Value, json};
use wiremock::{
    Mock, MockServer, Request, ResponseTemplate,
    matchers::{method, path},
};

const KEY: &str = "sk-ant-test-4f1c9e";

fn prompt_and_examples() -> (Prompt, Vec<examples::Example>) {
    let examples = examples::parse("labels.csv", examples::EMBEDDED_LABELS).unwrap();
    let prompt = Prompt::render(prompt::EMBEDDED_TEMPLATE, &examples).unwrap();
    (prompt, examples)
}

/// Settings aimed at `server`, with backoffs short enough for tests.
fn settings(server: &MockServer) -> ClaudeSettings {
    ClaudeSettings {
        api_key: Some(SecretString::from(KEY)),
        base_url: server.uri(),
        backoff_base: Duration::from_millis(1),
        backoff_max: Duration::from_millis(5),
        timeout: Duration::from_secs(5),
        deadline: Duration::from_secs(10),
        ..ClaudeSettings::default()
    }
}

fn decider(s: &ClaudeSettings) -> Decider {
    let (prompt, examples) = prompt_and_examples();
    let offline = Arc::new(OfflineClassifier::new(&examples, prompt.version()));
    let claude = Arc::new(ClaudeClassifier::new(s, prompt).unwrap());
    Decider::new(Some(claude), offline)
}

fn ticket(id: &str, subject: &str, body: &str, tier: &str) -> TicketContext {
    let raw = RawTicket {
        id: id.into(),
        subject: subject.into(),
        body: body.into(),
        tier: Tier::parse_given("tier", tier).unwrap(),
        arr_usd: Some(48_000.0),
        ..RawTicket::default()
    };
    TicketContext {
        ticket: Ticket::parse(Source::Api, raw, "").unwrap(),
        repeat_count_24h: 3,
    }
}

/// A ticket the offline classifier calls routine, so a fallback must raise it to urgent.
fn routine_ticket() -> TicketContext {
    TicketContext {
        repeat_count_24h: 0,
        ..ticket(
            "T-routine",
            "Renaming a workspace",
            "Small question: how can I change the name of our workspace?",
            "free",
        )
    }
}

fn outage_ticket() -> TicketContext {
    ticket(
        "T-outage",
        "Dashboard down",
        "Our production dashboard returns HTTP 500 for every user since 09:10.",
        "enterprise",
    )
}

/// A realistic `Message` with `content` and `stop_reason`.
fn message(content: Value, stop_reason: &str) -> Value {
    json!({
        "id": "msg_01XYZ", "type": "message", "role": "assistant", "model": "claude-sonnet-4-6",
        "content": content,
        "stop_reason": stop_reason, "stop_sequence": null, "stop_details": null,
        "usage": {
            "input_tokens": 312, "output_tokens": 58,
            "cache_creation_input_tokens": 0, "cache_read_input_tokens": 5400,
            "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
            "service_tier": "standard", "inference_geo": "us"
        }
    })
}

fn text_answer(answer: &str) -> Value {
    message(json!([{"type": "text", "text": answer}]), "end_turn")
}

fn ok(body: &Value) -> ResponseTemplate {
    ResponseTemplate::new(200)
        .insert_header("request-id", "req_011CTest")
        .set_body_json(body)
}

fn api_error(status: u16, kind: &str, code: Option<&str>) -> ResponseTemplate {
    let mut error = json!({"type": kind, "message": "details from the API"});
    if let Some(code) = code {
        error["details"] = json!({"error_code": code});
    }
    ResponseTemplate::new(status)
        .insert_header("request-id", "req_err_1")
        .set_body_json(json!({"type": "error", "error": error, "request_id": "req_err_1"}))
}

const ON_FIRE: &str = r#"{"severity":"on_fire","route":"engineering","confidence":0.93,"reasoning":"Production dashboard is down for every user.","topic":"outage","sentiment":"negative"}"#;

async fn mount(server: &MockServer, response: ResponseTemplate, times: u64) {
    Mock::given(method("POST"))
        .and(path("/v1/messages"))
        .respond_with(response)
        .up_to_n_times(times)
        .expect(times)
        .mount(server)
        .await;
}

async fn requests(server: &MockServer) -> Vec<Request> {
    server.received_requests().await.unwrap()
}

/// The raw bytes of the `system` value in a request body.
fn system_bytes(body: &[u8]) -> Vec<u8> {
    let text = std::str::from_utf8(body).unwrap();
    let start = text.find(r#""system":"#).unwrap();
    let end = text.find(r#","messages":"#).unwrap();
    text.as_bytes()[start..end].to_vec()
}

fn assert_from_claude(c: &Classification) {
    assert_eq!(c.fallback_reason, None, "{c:?}");
    assert_eq!(c.model, "claude-sonnet-4-6");
}

fn assert_fallback(c: &Classification, reason_starts: &str) {
    let reason = c.fallback_reason.as_deref().unwrap_or_default();
    assert!(reason.starts_with(reason_starts), "{reason:?}");
    assert_eq!(c.model, "offline");
    assert_eq!(c.verdict.severity, Severity::Urgent, "routine is raised");
    assert!(
        c.verdict
            .notes
            .contains(&"fallback raised routine to urgent".to_owned())
    );
}

/// Log lines written by a scoped subscriber, for asserting what is (and is not) logged.
#[derive(Clone, Default)]
struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
