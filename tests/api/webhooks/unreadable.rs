//! A ticket acknowledged with a 2xx whose text the worker cannot read from its tool (a refused
//! token, a deleted issue) still ends with a decision in the routing log: the safe one (`urgent`,
//! a person, fallback) with a reason naming the call and its answer, never the token; its
//! actions are planned and, when the tool refuses them too, end `failed`. Counted in
//! `escalator_unreadable_tickets_total{source, cause}`.

use escalator::domain::IdempotencyKey;

use super::*;

/// Waits for the decision of `key` (30 s at most).
async fn decision_of(pool: &PgPool, key: &IdempotencyKey) -> Decision {
    let store = store::PgStore::new(pool.clone());
    for _ in 0..600 {
        if let Some(d) = store.decision(key).await.unwrap() {
            return d;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no decision for {key}");
}

/// Waits until no action is pending and returns every action's (kind, status, last error).
async fn settled_actions(pool: &PgPool) -> Vec<(String, String, Option<String>)> {
    for _ in 0..600 {
        if count(
            pool,
            "SELECT COUNT(*) FROM actions WHERE status = 'pending'",
        )
        .await
            == 0
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    sqlx::query_as("SELECT kind, status, last_error FROM actions ORDER BY kind, id")
        .fetch_all(pool)
        .await
        .unwrap()
}

/// The value of the metric line starting with `prefix` on `/metrics` (0 when absent).
async fn metric(app: &TestApp, prefix: &str) -> f64 {
    let (_, text) = app.get("/metrics").await;
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .map_or(0.0, |v| v.parse().unwrap())
}

#[tokio::test]
async fn a_pylon_issue_that_cannot_be_read_gets_the_safe_decision_naming_the_cause() {
    let db = TestDb::new().await;
    let mocks = Mocks::start().await;
    let auth = format!("Bearer {PYLON_TOKEN}");
    // 401: a rotated token (Pylon's message even echoes it); 403: a token without the scope;
    // 404: the issue is gone. Every call on these issues is refused alike.
    for (id, status) in [("iss_401", 401), ("iss_403", 403), ("iss_404", 404)] {
        Mock::given(wiremock::matchers::path_regex(format!("^/issues/{id}")))
            .and(header("authorization", auth.as_str()))
            .respond_with(ResponseTemplate::new(status).set_body_json(json!({
                "errors": [format!("token {PYLON_TOKEN} refused")], "request_id": "req_x"
            })))
            .mount(&mocks.pylon)
            .await;
    }
    let app = spawn(&db, &mocks, "").await;
    let pool = db.pool().await;
    let before_auth = metric(
        &app,
        "escalator_unreadable_tickets_total{cause=\"auth\",source=\"pylon\"}",
    )
    .await;
    for id in ["iss_401", "iss_403", "iss_404"] {
        let body = format!(r#"{{"issue_id":"{id}","event":"issue.created"}}"#).into_bytes();
        assert_eq!(app.pylon(body).await.0, 202, "{id}");
    }

    for (id, status) in [("iss_401", 401), ("iss_403", 403), ("iss_404", 404)] {
        let d = decision_of(
            &pool,
            &IdempotencyKey::new(Source::Pylon, id, "issue.created"),
        )
        .await;
        assert_eq!(
            (d.severity.as_str(), d.route.as_str(), d.fallback),
            ("urgent", "human", true),
            "{id}"
        );
        let reason = d.fallback_reason.clone().unwrap_or_default();
        assert!(
            reason.starts_with("ticket_unreadable: ")
                && reason.contains(&format!("pylon GET /issues/{id} answered {status}")),
            "{id}: {reason}"
        );
        assert!(
            !reason.contains(PYLON_TOKEN),
            "{id}: the token leaked: {reason}"
        );
    }
    let statuses: Vec<String> =
        sqlx::query_scalar("SELECT status FROM deliveries ORDER BY ticket_id")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(statuses, ["done", "done", "done"]);

    // The safe decision's actions were planned and tried; the tool refused them too, so they
    // ended failed (the actions-failed alert fires), naming the call, never the token.
    let actions = settled_actions(&pool).await;
    // The human route of the test configuration names no Pylon team or tags: the note only.
    assert_eq!(actions.len(), 3, "{actions:?}");
    for (kind, status, error) in &actions {
        assert_eq!(status, "failed", "{kind}: {error:?}");
        let error = error.clone().unwrap_or_default();
        assert!(error.contains("pylon "), "{kind}: {error}");
        assert!(
            !error.contains(PYLON_TOKEN),
            "{kind}: the token leaked: {error}"
        );
    }
    // What Pylon was asked: each issue read once (a refused read is not retried), then the note.
    let requests = mocks.pylon.received_requests().await.unwrap();
    assert!(
        requests
            .iter()
            .all(|r| r.headers["authorization"] == auth.as_str())
    );
    for id in ["iss_401", "iss_403", "iss_404"] {
        let reads = requests
            .iter()
            .filter(|r| r.method.as_str() == "GET" && r.url.path() == format!("/issues/{id}"))
            .count();
        assert_eq!(reads, 1, "{id}");
        let notes = requests
            .iter()
            .filter(|r| r.method.as_str() == "POST" && r.url.path() == format!("/issues/{id}/note"))
            .count();
        assert_eq!(notes, 1, "{id}: the note was tried once");
    }

    let auth_now = metric(
        &app,
        "escalator_unreadable_tickets_total{cause=\"auth\",source=\"pylon\"}",
    )
    .await;
    assert!(auth_now >= before_auth + 2.0, "{before_auth} -> {auth_now}");
    assert!(
        metric(
            &app,
            "escalator_unreadable_tickets_total{cause=\"not_found\",source=\"pylon\"}"
        )
        .await
            >= 1.0
    );
    app.stop().await;
}

#[tokio::test]
async fn a_plain_thread_whose_token_is_refused_gets_the_safe_decision_naming_the_cause() {
    let db = TestDb::new().await;
    let mocks = Mocks::start().await;
    // The machine user's key was revoked: every GraphQL call answers 401 UNAUTHENTICATED.
    Mock::given(method("POST"))
        .and(path("/graphql/v1"))
        .and(header("authorization", format!("Bearer {PLAIN_KEY}").as_str()))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({
            "errors": [{"message": "Authentication required", "extensions": {"code": "UNAUTHENTICATED"}}]
        })))
        .mount(&mocks.plain)
        .await;
    let app = spawn(&db, &mocks, "").await;
    let pool = db.pool().await;
    assert_eq!(app.plain(plain_body(OUTAGE)).await.0, 202);

    let d = decision_of(
        &pool,
        &IdempotencyKey::new(Source::Plain, THREAD, UPDATED_AT),
    )
    .await;
    assert_eq!(
        (d.severity.as_str(), d.route.as_str(), d.fallback),
        ("urgent", "human", true)
    );
    let reason = d.fallback_reason.clone().unwrap_or_default();
    assert!(
        reason.starts_with("ticket_unreadable: ")
            && reason.contains("plain threadForRouting answered 401: UNAUTHENTICATED"),
        "{reason}"
    );
    assert!(!reason.contains(PLAIN_KEY), "{reason}");
    assert_eq!(
        count(
            &pool,
            "SELECT COUNT(*) FROM deliveries WHERE status = 'done'"
        )
        .await,
        1
    );
    let actions = settled_actions(&pool).await;
    assert!(!actions.is_empty(), "the safe decision plans its actions");
    for (kind, status, error) in &actions {
        assert_eq!(status, "failed", "{kind}: {error:?}");
        assert!(
            error
                .as_deref()
                .unwrap_or_default()
                .contains("answered 401"),
            "{kind}: {error:?}"
        );
    }
    // The enrichment read was made once (a refused token is not retried), then each action once.
    let ops: Vec<String> = mocks
        .plain
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| serde_json::from_slice::<Value>(&r.body).unwrap()["operationName"].to_string())
        .collect();
    assert_eq!(
        ops.iter()
            .filter(|o| o.contains("threadForRouting"))
            .count(),
        1,
        "{ops:?}"
    );
    assert_eq!(ops.len(), 1 + actions.len(), "{ops:?}");
    assert!(
        metric(
            &app,
            "escalator_unreadable_tickets_total{cause=\"auth\",source=\"plain\"}"
        )
        .await
            >= 1.0
    );
    app.stop().await;
}
