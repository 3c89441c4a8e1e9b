//! Pylon doorbells: fetched, decided and routed once; rate limits; a note posted before a crash.

use super::*;

fn pylon_issue() -> Value {
    json!({"data": {
        "id": "iss_1", "number": 42, "title": "Production down",
        "body_html": "<p>Our production API is <b>down</b> for all users since 10:00, every request returns 500.</p>",
        "state": "new", "requester": {"id": "ct_1", "email": "ops@acme.test"},
        "account": {"id": "acc_1"}, "team": null, "assignee": null, "tags": ["vip"]
    }, "request_id": "req_1"})
}

#[tokio::test]
async fn a_pylon_doorbell_is_fetched_decided_and_routed_once() {
    let db = TestDb::new().await;
    let mocks = Mocks::start().await;
    let auth = format!("Bearer {PYLON_TOKEN}");
    Mock::given(method("GET"))
        .and(path("/issues/iss_1"))
        .and(header("authorization", auth.as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(pylon_issue()))
        .expect(2) // once to build the ticket, once to merge tags before the PATCH
        .mount(&mocks.pylon)
        .await;
    Mock::given(method("PATCH"))
        .and(path("/issues/iss_1"))
        .and(header("authorization", auth.as_str()))
        .and(body_json(
            json!({"tags": ["vip", "escalator", "on-fire"], "team_id": "team_eng"}),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(pylon_issue()))
        .expect(1)
        .mount(&mocks.pylon)
        .await;
    Mock::given(method("POST"))
        .and(path("/issues/iss_1/note"))
        .and(header("authorization", auth.as_str()))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"data": {"id": "msg_1", "issue_id": "iss_1"}})),
        )
        .expect(1)
        .mount(&mocks.pylon)
        .await;
    let app = spawn(&db, &mocks, "").await;
    let pool = db.pool().await;

    let body = br#"{"issue_id":"iss_1","event":"issue.created"}"#.to_vec();
    assert_eq!(
        app.pylon(body.clone()).await,
        (202, json!({"status": "accepted"}))
    );
    wait_for_actions(&pool, 2).await;
    assert_eq!(app.pylon(body).await, (200, json!({"status": "duplicate"})));

    let store = store::PgStore::new(pool.clone());
    let d = store
        .decision(&escalator::domain::IdempotencyKey::new(
            Source::Pylon,
            "iss_1",
            "issue.created",
        ))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(d.route.as_str(), "engineering");
    let notes: Vec<Value> = mocks
        .pylon
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.url.path() == "/issues/iss_1/note")
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect();
    assert_eq!(notes, [json!({"body_html": note_html(&d)})]);
    tokio::time::sleep(Duration::from_millis(200)).await;
    app.stop().await;
}

/// An issue the domain refuses as a ticket (no title, no text) is decided safely at once: a
/// person reads it (the same as Plain's invalid ticket; before, Pylon gave the delivery up).
#[tokio::test]
async fn a_pylon_issue_that_is_no_valid_ticket_is_decided_safely_at_once() {
    let db = TestDb::new().await;
    let mocks = Mocks::start().await;
    let empty = json!({"data": {
        "id": "iss_9", "title": "", "body_html": "<p> </p>", "state": "new",
        "requester": {"id": "ct_1"}, "account": null, "team": null, "assignee": null,
        "tags": []
    }});
    Mock::given(method("GET"))
        .and(path("/issues/iss_9"))
        .respond_with(ResponseTemplate::new(200).set_body_json(empty.clone()))
        .mount(&mocks.pylon)
        .await;
    Mock::given(method("PATCH"))
        .and(path("/issues/iss_9"))
        .respond_with(ResponseTemplate::new(200).set_body_json(empty))
        .mount(&mocks.pylon)
        .await;
    Mock::given(method("POST"))
        .and(path("/issues/iss_9/note"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"data": {"id": "msg_9", "issue_id": "iss_9"}})),
        )
        .mount(&mocks.pylon)
        .await;
    let app = spawn(&db, &mocks, "").await;
    let pool = db.pool().await;
    let body = br#"{"issue_id":"iss_9","event":"issue.created"}"#.to_vec();
    assert_eq!(app.pylon(body).await.0, 202);
    let store = store::PgStore::new(pool.clone());
    let key = escalator::domain::IdempotencyKey::new(Source::Pylon, "iss_9", "issue.created");
    let mut decided = None;
    for _ in 0..200 {
        decided = store.decision(&key).await.unwrap();
        if decided.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let d = decided.expect("the invalid ticket was decided");
    let reason = d.fallback_reason.clone().unwrap_or_default();
    assert!(
        reason.starts_with("invalid_ticket: invalid ticket: invalid issue.body"),
        "{reason}"
    );
    assert_eq!(d.route.as_str(), "human");
    let status: String = sqlx::query_scalar(
        "SELECT status FROM deliveries WHERE source = 'pylon' AND ticket_id = 'iss_9'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(status, "done");
    app.stop().await;
}

#[tokio::test]
async fn pylon_error_paths() {
    let db = TestDb::new().await;
    let mocks = Mocks::start().await;
    let app = spawn(&db, &mocks, "").await;
    let (s, j) = app.pylon(br#"{"event":"issue.created"}"#.to_vec()).await;
    assert_eq!(
        (s, j),
        (400, json!({"error": "missing or invalid field `issue_id`"}))
    );
    let body = br#"{"issue_id":"iss_1","event":"issue.created"}"#.to_vec();
    let (s, _) = app
        .post(
            "/webhooks/pylon",
            &[("X-Pylon-Signature", sign("wrong", &body))],
            body.clone(),
        )
        .await;
    assert_eq!(s, 401);
    let (s, j) = app.post("/webhooks/pylon", &[], body).await;
    assert_eq!(
        (s, j),
        (401, json!({"error": "missing X-Pylon-Signature header"}))
    );
    app.stop().await;
    assert!(mocks.pylon.received_requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_pylon_rate_limit_is_waited_out_and_the_note_posted_once() {
    let db = TestDb::new().await;
    let mocks = Mocks::start().await;
    Mock::given(method("GET"))
        .and(path("/issues/iss_1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(pylon_issue()))
        .mount(&mocks.pylon)
        .await;
    Mock::given(method("PATCH"))
        .and(path("/issues/iss_1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(pylon_issue()))
        .expect(1)
        .mount(&mocks.pylon)
        .await;
    Mock::given(method("POST"))
        .and(path("/issues/iss_1/note"))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "1"))
        .up_to_n_times(1)
        .with_priority(1)
        .expect(1)
        .mount(&mocks.pylon)
        .await;
    Mock::given(method("POST"))
        .and(path("/issues/iss_1/note"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"data": {"id": "msg_1", "issue_id": "iss_1"}})),
        )
        .with_priority(2)
        .expect(1)
        .mount(&mocks.pylon)
        .await;
    // The retry first checks the note was not posted already.
    Mock::given(method("GET"))
        .and(path("/issues/iss_1/messages"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"data": [
            {"id": "m_0", "message_html": "<p>hello</p>", "is_private": false}
        ]})))
        .expect(1)
        .mount(&mocks.pylon)
        .await;
    let app = spawn(&db, &mocks, "").await;
    let pool = db.pool().await;
    let body = br#"{"issue_id":"iss_1","event":"issue.created"}"#.to_vec();
    assert_eq!(app.pylon(body).await.0, 202);
    wait_for_actions(&pool, 2).await;
    let (attempts, last_error): (i32, Option<String>) =
        sqlx::query_as("SELECT attempts, last_error FROM actions WHERE kind = 'pylon.note'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!((attempts, last_error), (2, None));
    app.stop().await;
}

#[tokio::test]
async fn a_pylon_note_posted_before_a_crash_is_not_posted_again() {
    let db = TestDb::new().await;
    let mocks = Mocks::start().await;
    let (s, _config) = settings(&db, &mocks, "");
    let store = store::connect(&s.store).await.unwrap();
    let (decider, _) = build_decider(&s).unwrap();
    let triage = Triage::new(
        store.clone(),
        decider,
        Arc::new(RoutingPlanner::new(&s.ticketing)),
        s.triage.clone(),
    );
    let ticket = Ticket::parse(
        Source::Pylon,
        RawTicket {
            id: "iss_1".into(),
            version: "issue.created".into(),
            subject: "Production down".into(),
            body: OUTAGE.into(),
            ..RawTicket::default()
        },
        "",
    )
    .unwrap();
    let d = triage.decide(ticket, None).await.unwrap().decision;
    // The dead worker held both actions and had posted the note when it died.
    assert_eq!(
        store
            .lease_actions(Duration::from_secs(1), 2)
            .await
            .unwrap()
            .len(),
        2
    );
    store.close().await;

    Mock::given(method("GET"))
        .and(path("/issues/iss_1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(pylon_issue()))
        .expect(1)
        .mount(&mocks.pylon)
        .await;
    Mock::given(method("PATCH"))
        .and(path("/issues/iss_1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(pylon_issue()))
        .expect(1)
        .mount(&mocks.pylon)
        .await;
    Mock::given(method("GET"))
        .and(path("/issues/iss_1/messages"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"data": [
            {"id": "m_1", "message_html": note_html(&d), "is_private": true, "thread_id": "t_1"}
        ]})))
        .expect(1)
        .mount(&mocks.pylon)
        .await;
    Mock::given(method("POST"))
        .and(path("/issues/iss_1/note"))
        .respond_with(ResponseTemplate::new(200))
        .expect(0)
        .mount(&mocks.pylon)
        .await;
    let app = spawn(&db, &mocks, "").await;
    let pool = db.pool().await;
    wait_for_actions(&pool, 2).await;
    app.stop().await;
}
