//! Concurrency, `eval --classifier claude`, logging without the key, the service with and
//! without a key, and the exported generation span.

use super::*;

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
    let holdout = examples::parse("holdout.csv", examples::EMBEDDED_HOLDOUT).unwrap();
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

/// `GET /v1/models/claude-sonnet-4-6` answered as the API does for a model it knows.
async fn mount_known_model(server: &MockServer) {
    Mock::given(method("GET"))
        .and(path("/v1/models/claude-sonnet-4-6"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "type": "model", "id": "claude-sonnet-4-6", "display_name": "Claude Sonnet 4.6",
            "created_at": "2026-02-17T00:00:00Z", "max_input_tokens": 200000, "max_tokens": 64000,
            "capabilities": {"structured_outputs": {"supported": true}, "effort": {"supported": false}}
        })))
        .mount(server)
        .await;
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
    mount_known_model(&server).await;
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

    // The model check first (as `serve` does), then count_tokens, the warm-up and the tickets.
    let mut reqs = requests(&server).await;
    assert_eq!(reqs[0].method.as_str(), "GET");
    assert_eq!(reqs[0].url.path(), "/v1/models/claude-sonnet-4-6");
    reqs.remove(0);
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

/// Answers as [`labelled_answer`], but the API refuses the requests for H-003 and H-040 (a 400
/// is not retried): the offline classifier stands in for them.
fn labelled_answer_with_two_refusals(req: &Request) -> ResponseTemplate {
    if let Ok(body) = req.body_json::<Value>() {
        let user = body["messages"][0]["content"].as_str().unwrap_or_default();
        let refused = ["SDK changelog 3.3 → 3.4", "Half our events vanished"];
        if refused
            .iter()
            .any(|s| user.contains(&format!("subject: {s}\n")))
        {
            return api_error(400, "invalid_request_error", None);
        }
    }
    labelled_answer(req)
}

/// A fallback row is a miss of the model, whatever the offline classifier answered: the
/// accuracy is the model's, the fallbacks and their reasons stand beside it, and the command
/// exits 1 unless `--allow-fallbacks`.
#[tokio::test(flavor = "multi_thread")]
async fn eval_with_claude_counts_fallbacks_as_misses_of_the_model() {
    let server = MockServer::start().await;
    mount_known_model(&server).await;
    Mock::given(method("POST"))
        .respond_with(labelled_answer_with_two_refusals)
        .mount(&server)
        .await;
    let uri = server.uri();
    let out = tokio::task::spawn_blocking(move || run_eval(&uri, &[]))
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("2 of 54 tickets fell back to the offline classifier"),
        "{stderr}"
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    // H-002 wrong, H-003 and H-040 fell back: 51 of 54 are the model's hits.
    assert_eq!(v["correct"], 51);
    assert_eq!(v["fallbacks"], 2);
    assert_eq!(v["fallback_reasons"], json!({"upstream_400": 2}));
    assert_eq!(v["fallbacks_by_expected"]["routine"], 1);
    assert_eq!(v["fallbacks_by_expected"]["on_fire"], 1);
    let fell_back: Vec<&Value> = v["misses"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["fallback_reason"].is_string())
        .collect();
    assert_eq!(fell_back.len(), 2);
    assert_eq!(fell_back[0]["ticket_id"], "H-003");
    assert_eq!(
        fell_back[0]["fallback_reason"],
        "upstream_400: invalid_request_error"
    );
    // H-003 is routine; the fallback raises routine to urgent (a person sees what the model
    // did not judge). A miss of the model either way.
    assert_eq!(fell_back[0]["predicted"], "urgent");
    let classified: u64 = v["confusion"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|r| r.as_object().unwrap().values())
        .map(|n| n.as_u64().unwrap())
        .sum();
    assert_eq!(classified, 52, "the matrix holds the model's answers only");

    let uri = server.uri();
    let out = tokio::task::spawn_blocking(move || {
        run_eval(&uri, &["--allow-fallbacks", "--min-accuracy", "0.9"])
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // As text: the accuracy, then the fallbacks and their reasons beside it.
    let uri = server.uri();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_escalator"))
            .args(["eval", "--classifier", "claude", "--allow-fallbacks"])
            .env("ANTHROPIC_API_KEY", KEY)
            .env("ANTHROPIC_BASE_URL", uri)
            .env_remove("ESCALATOR_CONFIG")
            .env_remove("ESCALATOR_MODEL")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(
            "accuracy: 51/54 = 94.4% (95% Wilson interval 84.9%–98.1%)\n\
             fallbacks: 2 of 54 rows fell back to the offline classifier (upstream_400 2), counted as misses of the model\n"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains("H-003: expected routine, FELL BACK (upstream_400: invalid_request_error); the fallback decided urgent"),
        "{stdout}"
    );
}

/// Collects formatted log lines for assertions.
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

use crate::collector;

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
