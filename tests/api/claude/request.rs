//! The exact request, and how each kind of answer is validated or falls back.

use super::*;

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
                "schema": serde_json::from_str::<Value>(&prompt.schema().to_json()).unwrap()
            }})
        );
        let schema = &body["output_config"]["format"]["schema"];
        assert_eq!(schema["additionalProperties"], false);
        assert_eq!(
            schema["required"],
            json!([
                "severity",
                "route",
                "confidence",
                "reasoning",
                "topic",
                "sentiment"
            ])
        );
        assert_eq!(
            schema["properties"]["topic"]["enum"],
            json!([
                "billing",
                "bug",
                "outage",
                "account_access",
                "how_to",
                "feature_request",
                "security",
                "legal",
                "other"
            ])
        );
        assert_eq!(
            schema["properties"]["sentiment"]["enum"],
            json!(["negative", "neutral", "positive"])
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
        r#"{"severity":"Urgent","route":"HUMAN","confidence":0.7,"reasoning":"Enterprise customer reports churn risk.","extra_field":true,"topic":"Billing","sentiment":"negative"}"#,
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
    let answer = json!({"severity": "on_fire", "route": "bot", "confidence": 0.8, "reasoning": long, "topic": "outage", "sentiment": "neutral"});
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

/// Configured topics and a shadow category reach the exact request (system block and schema);
/// the answer's unknown topic is `other` with a note, its shadow list is kept for the decision.
#[tokio::test]
async fn configured_topics_and_shadow_categories_are_in_the_exact_request() {
    use escalator::taxonomy::{Category, Kind, Mode, Taxonomy};
    let server = MockServer::start().await;
    let taxonomy = Taxonomy::new(
        vec!["billing".into(), "sso".into(), "other".into()],
        vec![Category {
            name: "churn_risk".into(),
            kind: Kind::Topic,
            mode: Mode::Shadow,
            definition: "The customer says they may cancel or not renew.".into(),
        }],
    )
    .unwrap();
    let (_, examples) = prompt_and_examples();
    let prompt = Prompt::render_with(prompt::EMBEDDED_TEMPLATE, &examples, &taxonomy).unwrap();
    let answer = r#"{"severity":"urgent","route":"human","confidence":0.8,"reasoning":"Churn risk.","topic":"dashboards","sentiment":"negative","shadow":["churn_risk"]}"#;
    mount(&server, ok(&text_answer(answer)), 1).await;
    let offline = Arc::new(
        OfflineClassifier::new(&examples, prompt.version()).with_taxonomy(taxonomy.clone()),
    );
    let claude = Arc::new(ClaudeClassifier::new(&settings(&server), prompt.clone()).unwrap());
    let ctx = routine_ticket();
    let c = Decider::new(Some(claude), offline).decide(&ctx).await;
    assert_from_claude(&c);
    assert_eq!(c.prompt_version, prompt.version());
    assert_eq!(c.verdict.severity, Severity::Urgent);
    assert_eq!(c.verdict.labels.topic, "other");
    assert_eq!(
        c.verdict.labels.sentiment,
        escalator::domain::Sentiment::Negative
    );
    assert_eq!(
        c.verdict.notes,
        ["topic_unknown: model said \"dashboards\", recorded as other"]
    );
    assert_eq!(
        c.verdict.labels.shadow,
        std::collections::BTreeMap::from([("churn_risk".to_owned(), true)])
    );
    assert!(
        prompt
            .system()
            .contains("- topic: exactly one of billing, sso, other. Use other when none fits.")
    );
    assert!(
        prompt
            .system()
            .contains("- churn_risk (a topic): The customer says they may cancel or not renew.")
    );
    let reqs = requests(&server).await;
    let body: Value = reqs[0].body_json().unwrap();
    assert_eq!(
        body,
        json!({
            "model": "claude-sonnet-4-6",
            "max_tokens": 1024,
            "system": [{
                "type": "text",
                "text": prompt.system(),
                "cache_control": {"type": "ephemeral", "ttl": "1h"}
            }],
            "messages": [{"role": "user", "content": prompt.user_turn(&ctx)}],
            "output_config": {"format": {"type": "json_schema", "schema": {
                "type": "object",
                "properties": {
                    "severity": {"type": "string", "enum": ["routine", "urgent", "on_fire"]},
                    "route": {"type": "string", "enum": ["bot", "human", "engineering"]},
                    "confidence": {"type": "number"},
                    "reasoning": {"type": "string"},
                    "topic": {"type": "string", "enum": ["billing", "sso", "other"]},
                    "sentiment": {"type": "string", "enum": ["negative", "neutral", "positive"]},
                    "shadow": {"type": "array", "items": {"type": "string", "enum": ["churn_risk"]}}
                },
                "required": ["severity", "route", "confidence", "reasoning", "topic", "sentiment", "shadow"],
                "additionalProperties": false
            }}}
        })
    );
}
