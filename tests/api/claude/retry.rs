//! The retry layer (statuses, `retry-after`, `x-should-retry`, the budget, the deadline), and
//! the prompt cache (warm-up, the counted prefix).

use super::*;

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
