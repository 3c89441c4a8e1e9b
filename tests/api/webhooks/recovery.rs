//! Crash recovery: a process killed at any point loses nothing and repeats nothing.

use super::*;

fn outage_ticket() -> Ticket {
    Ticket::parse(
        Source::Plain,
        RawTicket {
            id: THREAD.into(),
            version: UPDATED_AT.into(),
            subject: "Production down".into(),
            body: OUTAGE.into(),
            tier: Some(Tier::Enterprise),
            arr_usd: None,
            customer_id: CUSTOMER.into(),
        },
        "",
    )
    .unwrap()
}

/// What a previous process did before it died: the decision and its actions are logged (the
/// same code path the worker uses), and, when `mid_action`, one action was leased and in flight.
async fn log_then_die(db: &TestDb, mocks: &Mocks, mid_action: bool) {
    let (s, _config) = settings(db, mocks, "");
    let store = store::connect(&StoreSettings {
        url: db.url.clone(),
        max_connections: 2,
        accept_connections: 0,
        acquire_timeout: Duration::from_secs(5),
        stale_after: store::DEFAULT_STALE_AFTER,
        in_flight_grace: Duration::from_secs(15),
    })
    .await
    .unwrap();
    let (decider, _) = build_decider(&s).unwrap();
    let triage = Triage::new(
        store.clone(),
        decider,
        Arc::new(RoutingPlanner::new(&s.ticketing)),
        s.triage.clone(),
    );
    let outcome = triage.decide(outage_ticket(), None).await.unwrap();
    assert!(!outcome.duplicate);
    assert_eq!(store.actions(&outcome.decision.id).await.unwrap().len(), 4);
    if mid_action {
        let leased = store
            .lease_actions(Duration::from_secs(1), 1)
            .await
            .unwrap();
        assert_eq!(leased.len(), 1);
    }
    store.close().await;
}

#[tokio::test]
async fn a_restart_after_logging_runs_the_pending_actions_once() {
    let db = TestDb::new().await;
    let mocks = Mocks::start().await;
    mount_plain_routing(&mocks).await;
    mount_plain_note(&mocks).await;
    log_then_die(&db, &mocks, false).await;
    assert!(mocks.plain.received_requests().await.unwrap().is_empty());

    let app = spawn(&db, &mocks, "").await;
    let pool = db.pool().await;
    wait_for_actions(&pool, 4).await;
    assert_note_matches(&mocks, &the_decision(&pool).await).await;
    app.stop().await;
    // A second restart finds nothing to do (expect(1) on every mock).
    let app = spawn(&db, &mocks, "").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    app.stop().await;
}

#[tokio::test]
async fn an_action_leased_by_a_dead_worker_is_taken_over_after_its_lease() {
    let db = TestDb::new().await;
    let mocks = Mocks::start().await;
    mount_plain_routing(&mocks).await;
    mount_plain_note(&mocks).await;
    log_then_die(&db, &mocks, true).await;
    let app = spawn(&db, &mocks, "").await;
    let pool = db.pool().await;
    wait_for_actions(&pool, 4).await;
    let label_attempts: i32 =
        sqlx::query_scalar("SELECT attempts FROM actions WHERE kind = 'plain.label'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(label_attempts, 2, "the dead worker's attempt is counted");
    app.stop().await;
}

#[tokio::test]
async fn a_delivery_stored_before_a_crash_is_decided_and_routed_on_restart() {
    let db = TestDb::new().await;
    let mocks = Mocks::start().await;
    mount_enrichment(&mocks).await;
    mount_plain_routing(&mocks).await;
    mount_plain_note(&mocks).await;
    // The previous process answered 2xx (the delivery is stored), leased it, and died.
    {
        let store = store::connect(&StoreSettings {
            url: db.url.clone(),
            max_connections: 2,
            accept_connections: 0,
            acquire_timeout: Duration::from_secs(5),
            stale_after: store::DEFAULT_STALE_AFTER,
            in_flight_grace: Duration::from_secs(15),
        })
        .await
        .unwrap();
        let stored = store
            .accept_delivery(&NewDelivery {
                key: outage_ticket().key().clone(),
                event_type: "thread.thread_created".into(),
                payload: json!({"event_id": "pEv_1", "thread_id": THREAD, "title": "Production down",
                                "text": OUTAGE, "customer_id": CUSTOMER}),
                webhook_version: None,
                missing_fields: Vec::new(),
                trace_context: None,
            })
            .await
            .unwrap();
        assert!(stored);
        assert_eq!(
            store
                .lease_deliveries(Duration::from_secs(1), 10)
                .await
                .unwrap()
                .len(),
            1
        );
        store.close().await;
    }
    let app = spawn(&db, &mocks, "").await;
    let pool = db.pool().await;
    wait_for_actions(&pool, 4).await;
    assert_eq!(count(&pool, "SELECT COUNT(*) FROM decisions").await, 1);
    assert_eq!(
        count(
            &pool,
            "SELECT COUNT(*) FROM deliveries WHERE status = 'done'"
        )
        .await,
        1
    );
    app.stop().await;
}

/// A gRPC request claimed a ticket and its process died before deciding; the worker decides it
/// as that request would have: `Route` acts (when `[actions] api_tool` names the tool),
/// `Classify` only logs. Returns how many actions the decision queued.
async fn abandoned_and_decided_by_the_worker(acts: bool, actions_extra: &str) -> i64 {
    let db = TestDb::new().await;
    let mocks = Mocks::start().await;
    {
        let (s, _config) = settings(&db, &mocks, actions_extra);
        let store = store::connect(&s.store).await.unwrap();
        let ticket = Ticket::parse(
            Source::Api,
            RawTicket {
                id: THREAD.into(),
                version: "v1".into(),
                subject: "Production down".into(),
                body: OUTAGE.into(),
                ..RawTicket::default()
            },
            "",
        )
        .unwrap();
        let options = escalator::store::ClaimOptions {
            acts,
            ..escalator::store::ClaimOptions::default()
        };
        let (claim, _) = store
            .claim_counting(&ticket, Duration::from_millis(500), &options)
            .await
            .unwrap();
        assert_eq!(claim, escalator::store::Claim::New);
        store.close().await;
    }
    let app = spawn(&db, &mocks, actions_extra).await;
    let pool = db.pool().await;
    for _ in 0..200 {
        if count(&pool, "SELECT COUNT(*) FROM decisions WHERE source = 'api'").await == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(count(&pool, "SELECT COUNT(*) FROM decisions").await, 1);
    let actions = count(&pool, "SELECT COUNT(*) FROM actions").await;
    app.stop().await;
    actions
}

#[tokio::test]
async fn a_grpc_ticket_abandoned_after_its_claim_is_decided_by_the_worker() {
    // api tickets plan no actions unless [actions] api_tool is set.
    assert_eq!(abandoned_and_decided_by_the_worker(true, "").await, 0);
}

#[tokio::test]
async fn an_abandoned_route_acts_and_an_abandoned_classify_only_logs() {
    let api_tool = "api_tool = \"plain\"\n";
    assert!(abandoned_and_decided_by_the_worker(true, api_tool).await > 0);
    assert_eq!(
        abandoned_and_decided_by_the_worker(false, api_tool).await,
        0
    );
}
