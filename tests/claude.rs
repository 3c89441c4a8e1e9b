//! The Claude backend against a mock Messages API on 127.0.0.1: the exact request, and the
//! decision `Decider::decide` reaches for each kind of answer or failure.
#![allow(clippy::unwrap_used)]

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
        claude::{ApiVersion, CacheTtl, Effort, TokenSource},
    },
    config::ClaudeSettings,
    domain::{Classification, RawTicket, Route, Severity, Source, Ticket, TicketContext},
    labels,
    prompt::{self, OUTPUT_SCHEMA, Prompt},
};
use secrecy::SecretString;
use serde_json::{Value, json};
use wiremock::{
    Mock, MockServer, Request, ResponseTemplate,
    matchers::{method, path},
};

const KEY: &str = "sk-ant-test-4f1c9e";

fn prompt_and_examples() -> (Prompt, Vec<labels::Example>) {
    let examples = labels::parse("labels.csv", labels::EMBEDDED_LABELS).unwrap();
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
        tier: tier.into(),
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

const ON_FIRE: &str = r#"{"severity":"on_fire","route":"engineering","confidence":0.93,"reasoning":"Production dashboard is down for every user."}"#;

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

#[tokio::test]
async fn the_request_is_exact_and_the_system_block_identical_across_tickets() {
    let server = MockServer::start().await;
    mount(&server, ok(&text_answer(ON_FIRE)), 2).await;
    let d = decider(&settings(&server));

    let first = d.decide(&outage_ticket()).await;
    let second = d.decide(&routine_ticket()).await;
    assert_from_claude(&first);
    assert_eq!(first.verdict.severity, Severity::OnFire);
    assert_eq!(first.verdict.route, Route::Engineering);
    assert_eq!(
        first.verdict.reasoning,
        "Production dashboard is down for every user."
    );
    assert!(first.verdict.notes.is_empty());
    assert!(first.prompt_version.starts_with("classifier@"));
    assert_from_claude(&second);

    // Usage and cost: 312×$3 + 5,400×$0.30 + 58×$15 per million on Sonnet 4.6.
    let u = &first.usage;
    assert_eq!(u.request_id.as_deref(), Some("req_011CTest"));
    assert_eq!(
        (
            u.input_tokens,
            u.output_tokens,
            u.cache_read_tokens,
            u.cache_write_tokens
        ),
        (312, 58, 5400, 0)
    );
    assert!((u.cost_usd - (312.0 * 3.0 + 5400.0 * 0.3 + 58.0 * 15.0) / 1e6).abs() < 1e-12);

    let (prompt, _) = prompt_and_examples();
    let reqs = requests(&server).await;
    assert_eq!(reqs.len(), 2);
    for (r, ctx) in reqs.iter().zip([outage_ticket(), routine_ticket()]) {
        let h = |name: &str| r.headers.get(name).map(|v| v.to_str().unwrap().to_owned());
        assert_eq!(h("anthropic-version").as_deref(), Some("2026-10-21"));
        assert_eq!(
            h("authorization").as_deref(),
            Some(format!("Bearer {KEY}").as_str())
        );
        assert_eq!(h("x-api-key"), None, "exactly one auth header");
        assert_eq!(h("anthropic-beta"), None);
        assert_eq!(h("content-type").as_deref(), Some("application/json"));

        let body: Value = r.body_json().unwrap();
        assert_eq!(body["model"], "claude-sonnet-4-6");
        assert_eq!(body["max_tokens"], 1024);
        let keys: Vec<&str> = body
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        for sampling in ["temperature", "top_p", "top_k"] {
            assert!(!keys.contains(&sampling), "{sampling} sent");
        }
        assert_eq!(
            body["system"],
            json!([{
                "type": "text",
                "text": prompt.system(),
                "cache_control": {"type": "ephemeral", "ttl": "1h"}
            }])
        );
        assert_eq!(
            body["output_config"],
            json!({"format": {
                "type": "json_schema",
                "schema": serde_json::from_str::<Value>(OUTPUT_SCHEMA).unwrap()
            }})
        );
        let schema = &body["output_config"]["format"]["schema"];
        assert_eq!(schema["additionalProperties"], false);
        assert_eq!(
            schema["required"],
            json!(["severity", "route", "confidence", "reasoning"])
        );
        assert_eq!(
            schema["properties"]["severity"]["enum"],
            json!(["routine", "urgent", "on_fire"])
        );
        assert_eq!(
            body["messages"],
            json!([{"role": "user", "content": prompt.user_turn(&ctx)}])
        );
        let user = body["messages"][0]["content"].as_str().unwrap();
        assert!(user.contains(ctx.ticket.subject()));
        assert!(user.contains("tier: "));
        assert!(user.contains("arr_usd: 48000"));
        let repeats = format!(
            "other_tickets_from_customer_last_24h: {}",
            ctx.repeat_count_24h
        );
        assert!(user.contains(&repeats));
        let system = body["system"][0]["text"].as_str().unwrap();
        assert!(!system.contains(ctx.ticket.subject()));
        assert!(!system.contains(ctx.ticket.body()));
    }
    assert_eq!(system_bytes(&reqs[0].body), system_bytes(&reqs[1].body));
    // The raw body keeps a fixed key order (what the cache keys on).
    let raw = std::str::from_utf8(&reqs[0].body).unwrap();
    assert!(raw.starts_with(
        r#"{"model":"claude-sonnet-4-6","max_tokens":1024,"system":[{"type":"text","text":"#
    ));
}

#[tokio::test]
async fn the_older_version_pair_is_switched_together_and_tunables_are_sent() {
    let server = MockServer::start().await;
    mount(&server, ok(&text_answer(ON_FIRE)), 1).await;
    let s = ClaudeSettings {
        api_version: ApiVersion::V2023_06_01,
        model: "claude-haiku-5-5".into(),
        cache_ttl: CacheTtl::FiveMinutes,
        effort: Some(Effort::Low),
        max_tokens: 300,
        ..settings(&server)
    };
    let c = decider(&s).decide(&outage_ticket()).await;
    assert_eq!(c.fallback_reason, None);
    assert_eq!(c.model, "claude-haiku-5-5");
    // Haiku 5.5 prices: 312×0.10 + 5,400×0.01 + 58×0.50 per million.
    assert!((c.usage.cost_usd - (312.0 * 0.10 + 5400.0 * 0.01 + 58.0 * 0.50) / 1e6).abs() < 1e-12);
    let r = &requests(&server).await[0];
    assert_eq!(r.headers["anthropic-version"], "2023-06-01");
    assert_eq!(r.headers["x-api-key"], KEY);
    assert!(r.headers.get("authorization").is_none());
    let body: Value = r.body_json().unwrap();
    assert_eq!(body["model"], "claude-haiku-5-5");
    assert_eq!(body["max_tokens"], 300);
    assert_eq!(body["system"][0]["cache_control"]["ttl"], "5m");
    assert_eq!(body["output_config"]["effort"], "low");
}

#[tokio::test]
async fn effort_is_not_sent_to_a_model_without_effort_levels() {
    let server = MockServer::start().await;
    mount(&server, ok(&text_answer(ON_FIRE)), 1).await;
    let s = ClaudeSettings {
        model: "claude-haiku-4-5".into(),
        effort: Some(Effort::Low),
        ..settings(&server)
    };
    decider(&s).decide(&outage_ticket()).await;
    let body: Value = requests(&server).await[0].body_json().unwrap();
    assert!(body["output_config"].get("effort").is_none(), "{body}");
}

#[tokio::test]
async fn a_thinking_block_before_the_text_is_skipped() {
    let server = MockServer::start().await;
    let body = message(
        json!([
            {"type": "thinking", "thinking": "", "signature": "EqQBCkYIBxgCKkA"},
            {"type": "redacted_thinking", "data": "abc"},
            {"type": "text", "text": ON_FIRE}
        ]),
        "end_turn",
    );
    mount(&server, ok(&body), 1).await;
    let c = decider(&settings(&server)).decide(&outage_ticket()).await;
    assert_from_claude(&c);
    assert_eq!(c.verdict.severity, Severity::OnFire);
}

#[tokio::test]
async fn capitalised_enums_unknown_fields_and_new_stop_reasons_are_accepted() {
    let server = MockServer::start().await;
    let mut body = text_answer(
        r#"{"severity":"Urgent","route":"HUMAN","confidence":0.7,"reasoning":"Enterprise customer reports churn risk.","extra_field":true}"#,
    );
    body["stop_reason"] = json!("brand_new_reason");
    body["diagnostics"] = json!({"cache_miss_reason": {"type": "system_changed"}});
    body["usage"]["server_tool_use"] = json!({"web_search_requests": 0});
    mount(&server, ok(&body), 1).await;
    let c = decider(&settings(&server)).decide(&routine_ticket()).await;
    assert_from_claude(&c);
    assert_eq!(c.verdict.severity, Severity::Urgent);
    assert_eq!(c.verdict.route, Route::Human);
    assert!(c.verdict.notes.is_empty());
}

#[tokio::test]
async fn a_route_that_disagrees_with_the_severity_is_derived_and_recorded() {
    let server = MockServer::start().await;
    let long = "Production is down for all users and it keeps failing on every request we send, \
                which blocks our whole company today. Please help.";
    let answer =
        json!({"severity": "on_fire", "route": "bot", "confidence": 0.8, "reasoning": long});
    mount(&server, ok(&text_answer(&answer.to_string())), 1).await;
    let c = decider(&settings(&server)).decide(&outage_ticket()).await;
    assert_from_claude(&c);
    assert_eq!(c.verdict.route, Route::Engineering);
    assert_eq!(c.verdict.notes.len(), 2, "{:?}", c.verdict.notes);
    assert!(c.verdict.notes[0].starts_with("route_disagreement: model said bot"));
    assert_eq!(c.verdict.notes[1], "reasoning_trimmed");
    assert_eq!(c.verdict.reasoning.split(' ').count(), 20);
}

#[tokio::test]
async fn a_refusal_falls_back() {
    let server = MockServer::start().await;
    let mut body = message(json!([{"type": "text", "text": ""}]), "refusal");
    body["stop_details"] = json!({"type": "refusal", "category": "cyber", "explanation": null});
    mount(&server, ok(&body), 1).await;
    let c = decider(&settings(&server)).decide(&routine_ticket()).await;
    assert_fallback(&c, "invalid_answer: refusal (cyber)");
    // The refused call was billed: the fallback decision keeps its usage and request id.
    assert_eq!(c.usage.request_id.as_deref(), Some("req_011CTest"));
    assert_eq!(
        (
            c.usage.input_tokens,
            c.usage.output_tokens,
            c.usage.cache_read_tokens
        ),
        (312, 58, 5400)
    );
    assert!(c.usage.cost_usd > 0.0);
}

#[tokio::test]
async fn a_truncated_answer_falls_back() {
    let server = MockServer::start().await;
    let body = message(
        json!([{"type": "text", "text": r#"{"severity":"rout"#}]),
        "max_tokens",
    );
    mount(&server, ok(&body), 1).await;
    let c = decider(&settings(&server)).decide(&routine_ticket()).await;
    assert_fallback(&c, "invalid_answer: stop_reason max_tokens");
}

#[tokio::test]
async fn broken_json_and_schema_violations_fall_back() {
    for (answer, reason) in [
        (
            r#"{"severity": "urgent", "route": "#,
            "invalid_answer: json",
        ),
        (
            r#"{"severity":"urgent","route":"human","confidence":7,"reasoning":"x"}"#,
            "invalid_answer: invalid confidence",
        ),
        (
            r#"{"severity":"critical","route":"human","confidence":0.5,"reasoning":"x"}"#,
            "invalid_answer: invalid severity",
        ),
    ] {
        let server = MockServer::start().await;
        mount(&server, ok(&text_answer(answer)), 1).await;
        let c = decider(&settings(&server)).decide(&routine_ticket()).await;
        assert_fallback(&c, reason);
    }
    let server = MockServer::start().await;
    mount(
        &server,
        ResponseTemplate::new(200).set_body_string("<html>proxy</html>"),
        1,
    )
    .await;
    let c = decider(&settings(&server)).decide(&routine_ticket()).await;
    assert_fallback(&c, "invalid_answer: response body");
}

#[tokio::test]
async fn overloaded_twice_then_success_is_retried() {
    let server = MockServer::start().await;
    mount(&server, api_error(529, "overloaded_error", None), 2).await;
    mount(&server, ok(&text_answer(ON_FIRE)), 1).await;
    let c = decider(&settings(&server)).decide(&outage_ticket()).await;
    assert_from_claude(&c);
    assert_eq!(requests(&server).await.len(), 3);
}

#[tokio::test]
async fn a_rate_limit_waits_for_retry_after_within_its_cap() {
    let server = MockServer::start().await;
    mount(
        &server,
        api_error(429, "rate_limit_error", None).insert_header("retry-after", "30"),
        1,
    )
    .await;
    mount(&server, ok(&text_answer(ON_FIRE)), 1).await;
    let s = ClaudeSettings {
        retry_after_max: Duration::from_millis(200),
        ..settings(&server)
    };
    let started = Instant::now();
    let c = decider(&s).decide(&outage_ticket()).await;
    assert_from_claude(&c);
    // The header's wait (capped at 200 ms) was honoured instead of the 1 ms backoff.
    assert!(started.elapsed() >= Duration::from_millis(200));
    assert_eq!(requests(&server).await.len(), 2);
}

#[tokio::test]
async fn a_spend_cap_is_never_retried() {
    let server = MockServer::start().await;
    // `x-should-retry: true` does not override a spend cap.
    mount(
        &server,
        api_error(
            429,
            "rate_limit_error",
            Some("enforced_spend_limit_reached"),
        )
        .insert_header("x-should-retry", "true"),
        1,
    )
    .await;
    let c = decider(&settings(&server)).decide(&routine_ticket()).await;
    assert_fallback(&c, "upstream_429: enforced_spend_limit_reached");
    assert_eq!(requests(&server).await.len(), 1);
}

#[tokio::test]
async fn a_bad_key_is_not_retried_and_never_shown() {
    let server = MockServer::start().await;
    mount(&server, api_error(401, "authentication_error", None), 2).await;
    let s = settings(&server);
    let (prompt, _) = prompt_and_examples();
    let claude = ClaudeClassifier::new(&s, prompt).unwrap();
    let err = claude.classify(&routine_ticket()).await.unwrap_err();
    assert_eq!(err.reason(), "upstream_401: authentication_error");
    assert!(format!("{err:?}").contains("req_err_1"), "request-id kept");
    assert!(!format!("{claude:?}").contains(KEY));
    assert!(!format!("{err:?}").contains(KEY));
    let c = decider(&s).decide(&routine_ticket()).await;
    assert_fallback(&c, "upstream_401: authentication_error");
    assert_eq!(requests(&server).await.len(), 2, "one request per ticket");
}

#[tokio::test]
async fn x_should_retry_false_stops_retries_and_the_budget_caps_them() {
    let server = MockServer::start().await;
    mount(
        &server,
        api_error(529, "overloaded_error", None).insert_header("x-should-retry", "false"),
        1,
    )
    .await;
    let c = decider(&settings(&server)).decide(&routine_ticket()).await;
    assert_fallback(&c, "upstream_529: overloaded_error");

    // An empty budget: the storm gets one request per ticket, not three.
    let server = MockServer::start().await;
    mount(&server, api_error(529, "overloaded_error", None), 2).await;
    let s = ClaudeSettings {
        retry_budget_reserve: 0.0,
        retry_budget_ratio: 0.0,
        ..settings(&server)
    };
    let d = decider(&s);
    for _ in 0..2 {
        let c = d.decide(&routine_ticket()).await;
        assert_fallback(&c, "overloaded: retry budget spent");
    }

    // Retries run out: bounded attempts (1 + max_retries).
    let server = MockServer::start().await;
    mount(&server, api_error(503, "api_error", None), 3).await;
    let c = decider(&settings(&server)).decide(&routine_ticket()).await;
    assert_fallback(&c, "upstream_503: api_error");
}

#[tokio::test]
async fn a_slow_answer_times_out_and_falls_back() {
    let server = MockServer::start().await;
    mount(
        &server,
        ok(&text_answer(ON_FIRE)).set_delay(Duration::from_secs(2)),
        3,
    )
    .await;
    let s = ClaudeSettings {
        timeout: Duration::from_millis(150),
        ..settings(&server)
    };
    let c = decider(&s).decide(&routine_ticket()).await;
    assert_fallback(&c, "timeout");
    assert_eq!(requests(&server).await.len(), 3, "timeouts are retried");
}

#[tokio::test]
async fn the_deadline_covers_retries() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ok(&text_answer(ON_FIRE)).set_delay(Duration::from_secs(2)))
        .mount(&server)
        .await;
    let s = ClaudeSettings {
        timeout: Duration::from_secs(20),
        deadline: Duration::from_millis(300),
        ..settings(&server)
    };
    let c = decider(&s).decide(&routine_ticket()).await;
    assert_fallback(&c, "timeout");
    assert_eq!(requests(&server).await.len(), 1);
}

#[tokio::test]
async fn warming_sends_max_tokens_zero_with_the_same_prefix() {
    let server = MockServer::start().await;
    let mut warm = message(json!([]), "max_tokens");
    warm["usage"] = json!({"input_tokens": 9, "output_tokens": 0,
        "cache_creation_input_tokens": 5400, "cache_read_input_tokens": 0});
    mount(&server, ok(&warm), 1).await;
    mount(&server, ok(&text_answer(ON_FIRE)), 1).await;
    let (prompt, _) = prompt_and_examples();
    let claude = ClaudeClassifier::new(&settings(&server), prompt).unwrap();
    let usage = claude.warm().await.unwrap();
    // No split in the answer: the writes are priced at the requested 1h TTL (2 × $3).
    assert_eq!(usage.cache_write_tokens, 5400);
    assert!((usage.cost_usd - (9.0 * 3.0 + 5400.0 * 6.0) / 1e6).abs() < 1e-12);
    claude.classify(&outage_ticket()).await.unwrap();
    let reqs = requests(&server).await;
    let warm_body: Value = reqs[0].body_json().unwrap();
    assert_eq!(warm_body["max_tokens"], 0);
    assert!(
        !warm_body["messages"][0]["content"]
            .as_str()
            .unwrap()
            .is_empty()
    );
    assert_eq!(system_bytes(&reqs[0].body), system_bytes(&reqs[1].body));
    assert_eq!(
        reqs[0].body_json::<Value>().unwrap()["output_config"],
        reqs[1].body_json::<Value>().unwrap()["output_config"],
        "a different format would invalidate the cache"
    );
}

#[tokio::test]
async fn the_cached_prefix_is_counted_and_checked_against_the_minimum() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/messages/count_tokens"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"input_tokens": 5512})))
        .expect(1)
        .mount(&server)
        .await;
    let (prompt, _) = prompt_and_examples();
    let claude = ClaudeClassifier::new(&settings(&server), prompt.clone()).unwrap();
    let check = claude.check_cache().await;
    assert_eq!(check.source, TokenSource::CountTokens);
    assert_eq!(check.tokens, 5512);
    assert_eq!(check.minimum, 2048);
    assert!(check.cacheable());
    let body: Value = requests(&server).await[0].body_json().unwrap();
    assert!(
        body.get("max_tokens").is_none(),
        "count_tokens takes no max_tokens"
    );
    assert_eq!(body["system"][0]["text"], prompt.system());

    // count_tokens unavailable: the chars/4 estimate, and Haiku 4.5's 4,096 minimum.
    let down = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(api_error(404, "not_found_error", None))
        .mount(&down)
        .await;
    let s = ClaudeSettings {
        model: "claude-haiku-4-5".into(),
        ..settings(&down)
    };
    let check = ClaudeClassifier::new(&s, prompt.clone())
        .unwrap()
        .check_cache()
        .await;
    assert_eq!(check.source, TokenSource::Estimate);
    assert_eq!(
        check.tokens as usize,
        prompt.system().chars().count().div_ceil(4)
    );
    assert_eq!(check.minimum, 4096);
}

/// Counts requests in flight on a slow Messages endpoint.
#[derive(Clone, Default)]
struct Gauge {
    now: Arc<AtomicUsize>,
    max: Arc<AtomicUsize>,
    total: Arc<AtomicUsize>,
}

async fn slow_messages(State(g): State<Gauge>) -> axum::Json<Value> {
    let n = g.now.fetch_add(1, Ordering::SeqCst) + 1;
    g.max.fetch_max(n, Ordering::SeqCst);
    g.total.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(50)).await;
    g.now.fetch_sub(1, Ordering::SeqCst);
    axum::Json(text_answer(ON_FIRE))
}

#[tokio::test]
async fn the_concurrency_cap_bounds_calls_in_flight() {
    let gauge = Gauge::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base_url = format!("http://{}", listener.local_addr().unwrap());
    let app = axum::Router::new()
        .route("/v1/messages", axum::routing::post(slow_messages))
        .with_state(gauge.clone());
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let s = ClaudeSettings {
        api_key: Some(SecretString::from(KEY)),
        base_url,
        max_concurrency: 2,
        ..ClaudeSettings::default()
    };
    let d = decider(&s);
    let calls: Vec<_> = (0..6)
        .map(|_| {
            let d = d.clone();
            tokio::spawn(async move { d.decide(&outage_ticket()).await })
        })
        .collect();
    for c in calls {
        assert_from_claude(&c.await.unwrap());
    }
    assert_eq!(gauge.total.load(Ordering::SeqCst), 6);
    let max = gauge.max.load(Ordering::SeqCst);
    assert!(
        (1..=2).contains(&max),
        "{max} calls in flight with a cap of 2"
    );
    server.abort();
}

/// Answers each holdout ticket with its label, except H-002, which it calls urgent.
fn labelled_answer(req: &Request) -> ResponseTemplate {
    let body: Value = req.body_json().unwrap();
    if req.url.path() == "/v1/messages/count_tokens" {
        return ResponseTemplate::new(200).set_body_json(json!({"input_tokens": 5512}));
    }
    if body["max_tokens"] == 0 {
        let mut warm = message(json!([]), "max_tokens");
        warm["usage"] = json!({"input_tokens": 9, "output_tokens": 0,
            "cache_creation_input_tokens": 5400, "cache_read_input_tokens": 0,
            "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 5400}});
        return ok(&warm);
    }
    let user = body["messages"][0]["content"].as_str().unwrap();
    let holdout = labels::parse("holdout.csv", labels::EMBEDDED_HOLDOUT).unwrap();
    let e = holdout
        .iter()
        .find(|e| user.contains(&format!("subject: {}\n", e.subject)))
        .unwrap();
    let severity = if e.ticket_id == "H-002" {
        Severity::Urgent
    } else {
        e.severity
    };
    let answer = json!({"severity": severity, "route": severity.route(), "confidence": 0.9,
        "reasoning": format!("Looks {severity} to me.")});
    ok(&text_answer(&answer.to_string()))
}

fn run_eval(server_uri: &str, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["eval", "--classifier", "claude", "--json"];
    args.extend_from_slice(extra);
    std::process::Command::new(env!("CARGO_BIN_EXE_escalator"))
        .args(&args)
        .env("ANTHROPIC_API_KEY", KEY)
        .env("ANTHROPIC_BASE_URL", server_uri)
        .env_remove("ESCALATOR_CONFIG")
        .env_remove("ESCALATOR_MODEL")
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn eval_with_claude_warms_the_cache_then_reports_accuracy_tokens_and_cost() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(labelled_answer)
        .mount(&server)
        .await;
    let uri = server.uri();
    let out = tokio::task::spawn_blocking(move || run_eval(&uri, &["--min-accuracy", "0.9"]))
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("system block: 5512 tokens (count_tokens)"),
        "{stderr}"
    );
    assert!(!stderr.contains(KEY));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["model"], "claude-sonnet-4-6");
    assert_eq!(v["total"], 54);
    assert_eq!(v["correct"], 53);
    assert_eq!(v["fallbacks"], 0);
    assert_eq!(v["misses"][0]["ticket_id"], "H-002");
    assert_eq!(v["misses"][0]["predicted"], "urgent");
    assert_eq!(v["misses"][0]["reasoning"], "Looks urgent to me.");
    assert_eq!(v["confusion"]["routine"]["urgent"], 1);
    let u = &v["usage"];
    assert_eq!(u["answered"], 54);
    assert_eq!(u["cache_hit_rate"], 1.0);
    assert_eq!(u["input_tokens"], 312 * 54 + 9);
    assert_eq!(u["cache_read_tokens"], 5400 * 54);
    assert_eq!(u["cache_write_tokens"], 5400);
    let per_answer = (312.0 * 3.0 + 5400.0 * 0.3 + 58.0 * 15.0) / 1e6;
    let warm = (9.0 * 3.0 + 5400.0 * 6.0) / 1e6;
    assert!((u["warmup_cost_usd"].as_f64().unwrap() - warm).abs() < 1e-12);
    assert!((u["cost_usd"].as_f64().unwrap() - (54.0 * per_answer + warm)).abs() < 1e-9);
    assert!(v["latency_ms"]["p95"].as_u64().unwrap() >= v["latency_ms"]["p50"].as_u64().unwrap());

    // count_tokens first, then the warm-up, then the tickets.
    let reqs = requests(&server).await;
    assert_eq!(reqs.len(), 56);
    assert_eq!(reqs[0].url.path(), "/v1/messages/count_tokens");
    assert_eq!(reqs[1].body_json::<Value>().unwrap()["max_tokens"], 0);
    assert!(
        reqs[2..]
            .iter()
            .all(|r| r.body_json::<Value>().unwrap()["max_tokens"] == 1024)
    );

    let uri = server.uri();
    let out = tokio::task::spawn_blocking(move || run_eval(&uri, &["--min-accuracy", "0.99"]))
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
}

/// Collects formatted log lines for assertions.
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

#[tokio::test(flavor = "current_thread")]
async fn a_refused_call_is_logged_at_error_once_per_kind_without_the_key_or_ticket() {
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let server = MockServer::start().await;
    mount(&server, api_error(401, "authentication_error", None), 3).await;
    let d = decider(&settings(&server));
    for _ in 0..3 {
        let c = d.decide(&outage_ticket()).await;
        assert!(c.fallback_reason.is_some());
    }
    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    let errors: Vec<&str> = text.lines().filter(|l| l.contains("ERROR")).collect();
    assert_eq!(errors.len(), 1, "{text}");
    assert!(errors[0].contains("req_err_1"), "{}", errors[0]);
    assert!(errors[0].contains("authentication_error"));
    assert!(!text.contains(KEY), "{text}");
    let ctx = outage_ticket();
    assert!(!text.contains(ctx.ticket.body()), "{text}");
}

#[tokio::test]
async fn with_a_key_the_service_classifies_with_claude_and_counts_the_prefix_at_start() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/messages/count_tokens"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"input_tokens": 5512})))
        .expect(1)
        .mount(&server)
        .await;
    mount(&server, ok(&text_answer(ON_FIRE)), 1).await;
    let uri = server.uri();
    let env = std::collections::BTreeMap::from([
        ("ANTHROPIC_API_KEY", KEY),
        ("ANTHROPIC_BASE_URL", uri.as_str()),
    ]);
    let settings = escalator::config::Settings::load(&env).unwrap();
    let (decider, _) = escalator::startup::build_decider(&settings).unwrap();
    assert_eq!(decider.describe(), "claude-sonnet-4-6 (fallback: offline)");
    let c = decider.decide(&outage_ticket()).await;
    assert_from_claude(&c);
    // The start-up count runs in the background; wait for it (bounded).
    for _ in 0..100 {
        let counted = requests(&server)
            .await
            .iter()
            .any(|r| r.url.path() == "/v1/messages/count_tokens");
        if counted {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("count_tokens was not called at start");
}

#[test]
fn without_a_key_the_offline_classifier_serves_alone() {
    let settings = escalator::config::Settings::load(&std::collections::BTreeMap::new()).unwrap();
    let (decider, _) = escalator::startup::build_decider(&settings).unwrap();
    assert_eq!(decider.describe(), "offline (no ANTHROPIC_API_KEY set)");
}

#[allow(dead_code, unreachable_pub, missing_docs)]
#[path = "support/collector.rs"]
mod collector;

#[test]
fn the_call_is_exported_as_a_langfuse_generation_with_usage_and_cost() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let server = rt.block_on(async {
        let server = MockServer::start().await;
        mount(&server, ok(&text_answer(ON_FIRE)), 1).await;
        server
    });
    let lf = collector::Collector::start();
    let (lf_url, api_url) = (lf.url(), server.uri());
    let env = std::collections::BTreeMap::from([
        ("LANGFUSE_HOST", lf_url.as_str()),
        ("LANGFUSE_PUBLIC_KEY", "pk-lf-test"),
        ("LANGFUSE_SECRET_KEY", "sk-lf-secret"),
        ("ANTHROPIC_API_KEY", KEY),
        ("ANTHROPIC_BASE_URL", api_url.as_str()),
    ]);
    let settings = escalator::config::Settings::load(&env).unwrap();
    // Built outside any runtime (the exporter's blocking client owns one); scoped to this
    // thread, which runs the whole call.
    let (dispatch, guard) = escalator::telemetry::build(&settings.telemetry).unwrap();
    let _scope = tracing::dispatcher::set_default(&dispatch);
    let c = rt.block_on(decider(&settings.claude).decide(&outage_ticket()));
    assert_from_claude(&c);
    guard.flush();

    let spans = lf.spans();
    let generations: Vec<_> = spans
        .iter()
        .filter(|s| {
            collector::attrs(s)
                .get("langfuse.observation.type")
                .map(String::as_str)
                == Some("generation")
        })
        .collect();
    assert_eq!(generations.len(), 1, "{spans:#?}");
    let span = generations[0];
    assert_eq!(span.name, "chat claude-sonnet-4-6");
    assert_eq!(c.observation_id, Some(hex::encode(&span.span_id)));
    let a = collector::attrs(span);
    for (k, v) in [
        ("gen_ai.provider.name", "anthropic"),
        ("gen_ai.request.model", "claude-sonnet-4-6"),
        ("gen_ai.response.model", "claude-sonnet-4-6"),
        ("gen_ai.response.id", "msg_01XYZ"),
        ("gen_ai.response.finish_reasons", "[end_turn]"),
        ("gen_ai.usage.output_tokens", "58"),
        ("gen_ai.usage.cache_read.input_tokens", "5400"),
        ("escalator.request_id", "req_011CTest"),
        ("langfuse.observation.output", ON_FIRE),
    ] {
        assert_eq!(a.get(k).map(String::as_str), Some(v), "{k}: {a:#?}");
    }
    let cost: Value = serde_json::from_str(&a["langfuse.observation.cost_details"]).unwrap();
    assert!((cost["total"].as_f64().unwrap() - c.usage.cost_usd).abs() < 1e-12);
    assert!(c.usage.cost_usd > 0.0);
    assert!(!format!("{a:?}").contains(KEY));
    guard.shutdown();
}

#[tokio::test]
async fn a_connection_failure_is_retried_then_falls_back() {
    // A port that was free a moment ago: connections are refused.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let s = ClaudeSettings {
        api_key: Some(SecretString::from(KEY)),
        base_url: format!("http://127.0.0.1:{port}"),
        backoff_base: Duration::from_millis(1),
        backoff_max: Duration::from_millis(5),
        ..ClaudeSettings::default()
    };
    let c = decider(&s).decide(&routine_ticket()).await;
    assert_fallback(&c, "transport: ");
    assert!(!c.fallback_reason.unwrap().contains(KEY));
}

// ---------------------------------------------------------------------------------------------
// The model check at start: GET /v1/models/{model}
// ---------------------------------------------------------------------------------------------

/// A `ModelInfo` as `GET /v1/models/{id}` answers it.
fn model_info(id: &str, lifecycle: &str, structured: bool, effort: Value) -> Value {
    json!({
        "type": "model", "id": id, "display_name": "Claude", "created_at": "2026-02-17T00:00:00Z",
        "lifecycle": lifecycle, "deprecated_at": null, "retires_at": null,
        "max_input_tokens": 200000, "max_tokens": 64000,
        "capabilities": {
            "batch": {"supported": true}, "citations": {"supported": true},
            "structured_outputs": {"supported": structured},
            "effort": effort,
            "thinking": {"supported": true, "types": {"adaptive": {"supported": true}}}
        }
    })
}

fn effort_levels(levels: &[&str]) -> Value {
    let mut e = json!({"supported": !levels.is_empty()});
    for l in ["low", "medium", "high", "max", "xhigh"] {
        e[l] = json!({"supported": levels.contains(&l)});
    }
    e
}

/// `GET /v1/models/{model}` with the configured version and auth headers, answered once.
async fn mount_model(server: &MockServer, model: &str, response: ResponseTemplate) {
    Mock::given(method("GET"))
        .and(path(format!("/v1/models/{model}")))
        .and(wiremock::matchers::header(
            "authorization",
            format!("Bearer {KEY}").as_str(),
        ))
        .and(wiremock::matchers::header(
            "anthropic-version",
            "2026-10-21",
        ))
        .respond_with(response)
        .expect(1)
        .mount(server)
        .await;
}

async fn mount_model_list(server: &MockServer, ids: &[&str]) {
    let data: Vec<Value> = ids
        .iter()
        .map(|id| model_info(id, "active", true, effort_levels(&[])))
        .collect();
    Mock::given(method("GET"))
        .and(path("/v1/models"))
        .and(wiremock::matchers::query_param("limit", "1000"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"data": data, "has_more": false, "first_id": ids[0], "last_id": ids[ids.len() - 1]}),
        ))
        .expect(1)
        .mount(server)
        .await;
}

async fn no_messages_call(server: &MockServer) {
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(500))
        .expect(0)
        .mount(server)
        .await;
}

#[tokio::test]
async fn a_mistyped_model_refuses_to_start_with_exit_64_naming_close_matches() {
    let server = MockServer::start().await;
    mount_model(
        &server,
        "claude-sonet-4-6",
        api_error(404, "not_found_error", None),
    )
    .await;
    mount_model_list(
        &server,
        &["claude-opus-4-8", "claude-sonnet-4-6", "claude-haiku-5-5"],
    )
    .await;
    no_messages_call(&server).await;
    let dir = tempfile::tempdir().unwrap();
    let uri = server.uri();
    let db = format!("sqlite://{}", dir.path().join("e.db").display());
    let out = tokio::task::spawn_blocking(move || {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_escalator"))
            .arg("serve")
            .env("ANTHROPIC_API_KEY", KEY)
            .env("ANTHROPIC_BASE_URL", &uri)
            .env("ESCALATOR_MODEL", "claude-sonet-4-6")
            .env("DATABASE_URL", &db)
            .env("ESCALATOR_GRPC_ADDR", "127.0.0.1:0")
            .env("ESCALATOR_HTTP_ADDR", "127.0.0.1:0")
            .env_remove("ESCALATOR_CONFIG")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let started = Instant::now();
        while child.try_wait().unwrap().is_none() {
            if started.elapsed() > Duration::from_secs(30) {
                child.kill().unwrap();
                panic!("serve started with a model the API does not know");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{stderr}");
    assert!(stderr.contains("model \"claude-sonet-4-6\""), "{stderr}");
    assert!(stderr.contains("answered 404"), "{stderr}");
    assert!(
        stderr.contains("close matches: claude-sonnet-4-6"),
        "{stderr}"
    );
    assert!(!stderr.contains("claude-opus-4-8"), "not close: {stderr}");
    assert!(!stderr.contains(KEY), "{stderr}");
}

/// Settings for `App::build` on a fresh SQLite file, Claude aimed at `server`.
fn app_settings(server_uri: &str, dir: &tempfile::TempDir) -> escalator::config::Settings {
    let db = format!("sqlite://{}", dir.path().join("a.db").display());
    let env = std::collections::BTreeMap::from([
        ("ANTHROPIC_API_KEY", KEY),
        ("ANTHROPIC_BASE_URL", server_uri),
        ("DATABASE_URL", db.as_str()),
        ("ESCALATOR_GRPC_ADDR", "127.0.0.1:0"),
        ("ESCALATOR_HTTP_ADDR", "127.0.0.1:0"),
    ]);
    escalator::config::Settings::load(&env).unwrap()
}

#[tokio::test]
async fn an_api_outage_at_start_only_warns_and_the_service_starts() {
    let server = MockServer::start().await;
    mount_model(
        &server,
        "claude-sonnet-4-6",
        api_error(503, "api_error", None),
    )
    .await;
    Mock::given(method("POST"))
        .and(path("/v1/messages/count_tokens"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"input_tokens": 5512})))
        .mount(&server)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let app = escalator::startup::App::build(app_settings(&server.uri(), &dir))
        .await
        .unwrap();
    drop(app);

    // No answer at all (connection refused): the same.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let app =
        escalator::startup::App::build(app_settings(&format!("http://127.0.0.1:{port}"), &dir))
            .await
            .unwrap();
    drop(app);
}

#[tokio::test]
async fn the_models_capabilities_are_checked_against_the_configuration() {
    use escalator::classifier::claude::models::{ModelError, check_model};

    // No structured outputs: every call would be refused.
    let server = MockServer::start().await;
    mount_model(
        &server,
        "claude-sonnet-4-6",
        ok(&model_info(
            "claude-sonnet-4-6",
            "active",
            false,
            effort_levels(&[]),
        )),
    )
    .await;
    let e = check_model(&settings(&server)).await.unwrap_err();
    assert_eq!(
        e,
        ModelError::NoStructuredOutputs {
            model: "claude-sonnet-4-6".into()
        }
    );

    // A level the model does not take: refused, naming the levels it takes.
    let server = MockServer::start().await;
    let levels = effort_levels(&["low", "medium", "high", "max"]);
    mount_model(
        &server,
        "claude-haiku-5-5",
        ok(&model_info("claude-haiku-5-5", "active", true, levels)),
    )
    .await;
    let s = ClaudeSettings {
        model: "claude-haiku-5-5".into(),
        effort: Some(Effort::Xhigh),
        ..settings(&server)
    };
    let e = check_model(&s).await.unwrap_err();
    assert_eq!(
        e.to_string(),
        "claude.effort \"xhigh\" is not a level model \"claude-haiku-5-5\" takes (it takes: high, low, max, medium); change or remove claude.effort"
    );

    // Retired: refused like an unknown id, with the callable ones closest to it.
    let server = MockServer::start().await;
    mount_model(
        &server,
        "claude-sonnet-4-5",
        ok(&model_info(
            "claude-sonnet-4-5",
            "retired",
            true,
            effort_levels(&[]),
        )),
    )
    .await;
    mount_model_list(&server, &["claude-sonnet-4-6", "claude-sonnet-5-5"]).await;
    let s = ClaudeSettings {
        model: "claude-sonnet-4-5".into(),
        ..settings(&server)
    };
    let ModelError::Retired { close, .. } = check_model(&s).await.unwrap_err() else {
        panic!("not retired")
    };
    assert_eq!(close[0], "claude-sonnet-4-6");
}

#[tokio::test]
async fn the_api_decides_whether_effort_is_sent() {
    // The built-in table would send `effort` for Sonnet 4.6; the API says it takes none.
    let server = MockServer::start().await;
    mount_model(
        &server,
        "claude-sonnet-4-6",
        ok(&model_info(
            "claude-sonnet-4-6",
            "deprecated",
            true,
            effort_levels(&[]),
        )),
    )
    .await;
    mount(&server, ok(&text_answer(ON_FIRE)), 1).await;
    let s = ClaudeSettings {
        effort: Some(Effort::Low),
        ..settings(&server)
    };
    let info = escalator::classifier::claude::models::check_model(&s)
        .await
        .unwrap()
        .expect("verified");
    let (prompt, _) = prompt_and_examples();
    let claude = ClaudeClassifier::with_model(&s, prompt.clone(), Some(&info)).unwrap();
    claude.classify(&outage_ticket()).await.unwrap();
    let body: Value = requests(&server).await[1].body_json().unwrap();
    assert!(body["output_config"].get("effort").is_none(), "{body}");

    // The table does not send it to Haiku 4.5; an API that lists levels for the model wins.
    let server = MockServer::start().await;
    let levels = effort_levels(&["low", "medium", "high"]);
    mount_model(
        &server,
        "claude-haiku-4-5",
        ok(&model_info("claude-haiku-4-5", "active", true, levels)),
    )
    .await;
    mount(&server, ok(&text_answer(ON_FIRE)), 1).await;
    let s = ClaudeSettings {
        model: "claude-haiku-4-5".into(),
        effort: Some(Effort::Low),
        ..settings(&server)
    };
    let info = escalator::classifier::claude::models::check_model(&s)
        .await
        .unwrap();
    let claude = ClaudeClassifier::with_model(&s, prompt, info.as_ref()).unwrap();
    claude.classify(&outage_ticket()).await.unwrap();
    let body: Value = requests(&server).await[1].body_json().unwrap();
    assert_eq!(body["output_config"]["effort"], "low");
}

// ---------------------------------------------------------------------------------------------
// Rate limits from the API's headers, and the spend-cap breaker
// ---------------------------------------------------------------------------------------------

/// A Messages API with a real request bucket (`capacity` requests, refilling `per_second`),
/// stating it in `anthropic-ratelimit-requests-*` on every answer and refusing with 429 when it
/// is empty, as the API does. Counts answers and refusals.
#[derive(Clone)]
struct Bucketed {
    state: Arc<std::sync::Mutex<(f64, Instant)>>,
    capacity: f64,
    per_second: f64,
    ok: Arc<AtomicUsize>,
    refused: Arc<AtomicUsize>,
}

impl Bucketed {
    fn new(capacity: f64, per_second: f64) -> Self {
        Self {
            state: Arc::new(std::sync::Mutex::new((capacity, Instant::now()))),
            capacity,
            per_second,
            ok: Arc::default(),
            refused: Arc::default(),
        }
    }
}

async fn bucketed_messages(State(b): State<Bucketed>) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    let (admitted, left) = {
        let mut s = b.state.lock().unwrap();
        let now = Instant::now();
        s.0 = (s.0 + now.duration_since(s.1).as_secs_f64() * b.per_second).min(b.capacity);
        s.1 = now;
        let admitted = s.0 >= 1.0;
        if admitted {
            s.0 -= 1.0;
        }
        (admitted, s.0)
    };
    let full_in = Duration::from_secs_f64((b.capacity - left) / b.per_second);
    let reset = (chrono::Utc::now() + chrono::Duration::from_std(full_in).unwrap())
        .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
    let headers = [
        (
            "anthropic-ratelimit-requests-limit",
            format!("{}", b.capacity),
        ),
        (
            "anthropic-ratelimit-requests-remaining",
            format!("{}", left.floor()),
        ),
        ("anthropic-ratelimit-requests-reset", reset.clone()),
        (
            "anthropic-ratelimit-output-tokens-limit",
            "80000".to_owned(),
        ),
        (
            "anthropic-ratelimit-output-tokens-remaining",
            "79000".to_owned(),
        ),
        ("anthropic-ratelimit-output-tokens-reset", reset),
    ];
    tokio::time::sleep(Duration::from_millis(20)).await;
    if admitted {
        b.ok.fetch_add(1, Ordering::SeqCst);
        (headers, axum::Json(text_answer(ON_FIRE))).into_response()
    } else {
        b.refused.fetch_add(1, Ordering::SeqCst);
        let body = json!({"type": "error", "error": {"type": "rate_limit_error",
            "message": "Number of requests has exceeded your per-minute rate limit"}});
        (
            axum::http::StatusCode::TOO_MANY_REQUESTS,
            headers,
            axum::Json(body),
        )
            .into_response()
    }
}

#[tokio::test]
async fn the_rate_limit_headers_slow_calls_down_before_the_api_refuses_them() {
    // Five requests at once, five more a second: a client sending eight at a time (its cap)
    // would be refused; one reading the headers never is.
    let api = Bucketed::new(5.0, 5.0);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base_url = format!("http://{}", listener.local_addr().unwrap());
    let app = axum::Router::new()
        .route("/v1/messages", axum::routing::post(bucketed_messages))
        .with_state(api.clone());
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let s = ClaudeSettings {
        api_key: Some(SecretString::from(KEY)),
        base_url,
        max_concurrency: 8,
        ..ClaudeSettings::default()
    };
    let d = decider(&s);
    // The first answer tells the client where the bucket stands.
    assert_from_claude(&d.decide(&outage_ticket()).await);
    let calls: Vec<_> = (0..10)
        .map(|_| {
            let d = d.clone();
            tokio::spawn(async move { d.decide(&outage_ticket()).await })
        })
        .collect();
    for c in calls {
        assert_from_claude(&c.await.unwrap());
    }
    assert_eq!(
        api.refused.load(Ordering::SeqCst),
        0,
        "the API refused a call"
    );
    assert_eq!(api.ok.load(Ordering::SeqCst), 11);

    // The headroom is on /metrics.
    let text = escalator::telemetry::metrics::metrics().render();
    for needle in [
        "escalator_claude_ratelimit_limit{kind=\"requests\"} 5",
        "escalator_claude_ratelimit_limit{kind=\"output_tokens\"} 80000",
        "escalator_claude_ratelimit_remaining{kind=\"output_tokens\"} 79000",
        "escalator_claude_ratelimit_remaining{kind=\"requests\"}",
        "escalator_claude_ratelimit_reset_timestamp_seconds{kind=\"requests\"}",
        "escalator_claude_concurrency_limit",
        "escalator_claude_in_flight",
    ] {
        assert!(text.contains(needle), "{needle} not in\n{text}");
    }
    server.abort();

    // An empty bucket that refills only after the call's deadline: the ticket falls back at
    // once, with no call the API would refuse.
    let server = MockServer::start().await;
    let empty_until = (chrono::Utc::now() + chrono::Duration::seconds(60)).to_rfc3339();
    mount(
        &server,
        ok(&text_answer(ON_FIRE))
            .insert_header("anthropic-ratelimit-requests-limit", "50")
            .insert_header("anthropic-ratelimit-requests-remaining", "0")
            .insert_header("anthropic-ratelimit-requests-reset", empty_until.as_str()),
        1,
    )
    .await;
    let s = ClaudeSettings {
        deadline: Duration::from_millis(500),
        ..settings(&server)
    };
    let d = decider(&s);
    assert_from_claude(&d.decide(&outage_ticket()).await);
    let started = Instant::now();
    let c = d.decide(&routine_ticket()).await;
    assert_fallback(
        &c,
        "overloaded: rate limit: no requests headroom before the deadline",
    );
    assert!(
        started.elapsed() < Duration::from_millis(400),
        "it did not wait"
    );
    assert_eq!(requests(&server).await.len(), 1);
}

#[tokio::test(flavor = "current_thread")]
async fn a_spend_cap_opens_the_breaker_until_a_probe_gets_through() {
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let m = escalator::telemetry::metrics::metrics();
    let opened = m
        .claude_spend_cap
        .transitions
        .with_label_values(&["open"])
        .get();
    let closed = m
        .claude_spend_cap
        .transitions
        .with_label_values(&["closed"])
        .get();

    let server = MockServer::start().await;
    let spend_cap = || {
        api_error(
            429,
            "rate_limit_error",
            Some("enforced_spend_limit_reached"),
        )
    };
    // The call that hits the cap, then the first probe (still capped), then the API answers.
    Mock::given(method("POST"))
        .and(path("/v1/messages"))
        .respond_with(spend_cap())
        .up_to_n_times(2)
        .with_priority(1)
        .expect(2)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/messages"))
        .respond_with(ok(&text_answer(ON_FIRE)))
        .with_priority(2)
        .expect(2)
        .mount(&server)
        .await;
    let s = ClaudeSettings {
        spend_cap_probe_interval: Duration::from_millis(300),
        ..settings(&server)
    };
    let d = decider(&s);

    let c = d.decide(&routine_ticket()).await;
    assert_fallback(&c, "upstream_429: enforced_spend_limit_reached");
    // Open: no call at all, the fallback at once.
    let started = Instant::now();
    for _ in 0..3 {
        let c = d.decide(&routine_ticket()).await;
        assert_fallback(&c, "spend_cap");
        assert_eq!(c.fallback_reason.as_deref(), Some("spend_cap"));
    }
    assert!(
        started.elapsed() < Duration::from_millis(250),
        "no added latency"
    );
    assert_eq!(requests(&server).await.len(), 1);

    // One probe per interval; this one is still refused, so the breaker stays open.
    tokio::time::sleep(Duration::from_millis(350)).await;
    let c = d.decide(&routine_ticket()).await;
    assert_fallback(&c, "upstream_429: enforced_spend_limit_reached");
    assert_fallback(&d.decide(&routine_ticket()).await, "spend_cap");
    assert_eq!(requests(&server).await.len(), 2);

    // The next probe gets an answer: closed, and Claude decides again.
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_from_claude(&d.decide(&outage_ticket()).await);
    assert_from_claude(&d.decide(&outage_ticket()).await);
    assert_eq!(requests(&server).await.len(), 4);
    // The metrics are process-wide and other tests open breakers of their own, so only the
    // growth of the counters is checked here.
    assert!(
        m.claude_spend_cap
            .transitions
            .with_label_values(&["open"])
            .get()
            > opened
    );
    assert!(
        m.claude_spend_cap
            .transitions
            .with_label_values(&["closed"])
            .get()
            > closed
    );

    // Each change logged once: ERROR when it opened, INFO when it closed.
    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    let errors: Vec<&str> = text.lines().filter(|l| l.contains("ERROR")).collect();
    assert_eq!(errors.len(), 1, "{text}");
    assert!(errors[0].contains("spend limit reached"), "{}", errors[0]);
    assert!(errors[0].contains("req_err_1"), "{}", errors[0]);
    let closes = text
        .lines()
        .filter(|l| l.contains("INFO") && l.contains("breaker is closed"))
        .count();
    assert_eq!(closes, 1, "{text}");
    let rendered = m.render();
    assert!(
        rendered.contains("escalator_claude_spend_cap_open "),
        "{rendered}"
    );
    assert!(
        rendered.contains("escalator_claude_spend_cap_transitions_total{state=\"open\"}"),
        "{rendered}"
    );
}
