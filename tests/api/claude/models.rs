//! The model check at start: `GET /v1/models/{model}`.

use super::*;

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

#[tokio::test]
async fn eval_with_a_mistyped_model_exits_64_before_any_ticket_is_sent() {
    let server = MockServer::start().await;
    mount_model(
        &server,
        "claude-sonet-4-6",
        api_error(404, "not_found_error", None),
    )
    .await;
    mount_model_list(&server, &["claude-sonnet-4-6", "claude-haiku-5-5"]).await;
    no_messages_call(&server).await;
    let uri = server.uri();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_escalator"))
            .args(["eval", "--classifier", "claude"])
            .env("ANTHROPIC_API_KEY", KEY)
            .env("ANTHROPIC_BASE_URL", &uri)
            .env("ESCALATOR_MODEL", "claude-sonet-4-6")
            .env_remove("ESCALATOR_CONFIG")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Not an accuracy figure of the offline fallback under the model's name.
    assert_eq!(out.status.code(), Some(64), "{stderr}");
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(stderr.contains("model \"claude-sonet-4-6\""), "{stderr}");
    assert!(
        stderr.contains("close matches: claude-sonnet-4-6"),
        "{stderr}"
    );
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
