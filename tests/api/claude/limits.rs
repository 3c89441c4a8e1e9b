//! Rate limits from the API's headers, and the spend-cap breaker.

use super::*;

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
