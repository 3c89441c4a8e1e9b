//! Replicas on one database, and gRPC `Route` / `Classify` with `[actions] api_tool`.

use super::*;

#[tokio::test]
async fn two_replicas_on_one_database_decide_and_act_once() {
    let db = TestDb::new().await;
    let mocks = Mocks::start().await;
    mount_enrichment(&mocks).await;
    mount_plain_routing(&mocks).await;
    mount_plain_note(&mocks).await;
    let a = Arc::new(spawn(&db, &mocks, "").await);
    let b = Arc::new(spawn(&db, &mocks, "").await);
    let pool = db.pool().await;
    let body = plain_body(OUTAGE);
    let mut set = tokio::task::JoinSet::new();
    for i in 0..40 {
        let (app, body) = (if i % 2 == 0 { a.clone() } else { b.clone() }, body.clone());
        set.spawn(async move { app.plain(body).await.0 });
    }
    let statuses = set.join_all().await;
    assert_eq!(
        statuses.iter().filter(|s| **s == 202).count(),
        1,
        "{statuses:?}"
    );
    assert!(statuses.iter().all(|s| *s == 200 || *s == 202));
    wait_for_actions(&pool, 4).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(count(&pool, "SELECT COUNT(*) FROM decisions").await, 1);
    assert_eq!(count(&pool, "SELECT COUNT(*) FROM actions").await, 4);
    Arc::into_inner(a).unwrap().stop().await;
    Arc::into_inner(b).unwrap().stop().await;
}

#[tokio::test]
async fn grpc_route_acts_through_the_configured_tool_once() {
    use escalator::grpc::pb;
    let db = TestDb::new().await;
    let mocks = Mocks::start().await;
    mount_plain_routing(&mocks).await;
    mount_plain_note(&mocks).await;
    // `api` tickets carry Plain thread ids here.
    let app = spawn(&db, &mocks, "api_tool = \"plain\"\n").await;
    let pool = db.pool().await;

    let mut client = app.grpc.clone();
    let request = pb::RouteRequest {
        ticket: Some(pb::Ticket {
            id: THREAD.into(),
            version: "v1".into(),
            subject: "Production down".into(),
            body: OUTAGE.into(),
            tier: "enterprise".into(),
            arr_usd: None,
            customer_id: CUSTOMER.into(),
            conversation: Vec::new(),
        }),
        dry_run: false,
    };
    let first = client.route(request.clone()).await.unwrap().into_inner();
    assert!(!first.duplicate);
    let second = client.route(request).await.unwrap().into_inner();
    assert!(second.duplicate);
    assert_eq!(
        first.decision.unwrap().decision_id,
        second.decision.unwrap().decision_id
    );
    wait_for_actions(&pool, 4).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(count(&pool, "SELECT COUNT(*) FROM actions").await, 4);
    app.stop().await;
}

/// The proto says `Classify` only logs: even with `[actions] api_tool` set, it queues no action
/// in the tool (only `Route` does), and a later `Route` of the same key is a duplicate.
#[tokio::test]
async fn grpc_classify_logs_but_queues_no_action_even_with_an_api_tool() {
    use escalator::grpc::pb;
    let db = TestDb::new().await;
    let mocks = Mocks::start().await;
    // Any call to Plain would fail the test: nothing may be routed back.
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(500))
        .expect(0)
        .mount(&mocks.plain)
        .await;
    let app = spawn(&db, &mocks, "api_tool = \"plain\"\n").await;
    let pool = db.pool().await;
    let mut client = app.grpc.clone();
    let ticket = pb::Ticket {
        id: THREAD.into(),
        version: "v1".into(),
        subject: "Production down".into(),
        body: OUTAGE.into(),
        tier: "enterprise".into(),
        arr_usd: None,
        customer_id: CUSTOMER.into(),
        conversation: Vec::new(),
    };
    let classified = client
        .classify(pb::ClassifyRequest {
            ticket: Some(ticket.clone()),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!classified.duplicate);
    assert_eq!(count(&pool, "SELECT COUNT(*) FROM decisions").await, 1);
    let routed = client
        .route(pb::RouteRequest {
            ticket: Some(ticket),
            dry_run: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(routed.duplicate, "the key was decided by Classify");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(count(&pool, "SELECT COUNT(*) FROM actions").await, 0);
    app.stop().await;
}
