//! Plain deliveries: logged, then routed back once; duplicates, outages, validation errors.

use super::*;

#[tokio::test]
async fn a_signed_plain_delivery_is_logged_then_routed_once() {
    let db = TestDb::new().await;
    let mocks = Mocks::start().await;
    mount_enrichment(&mocks).await;
    mount_plain_routing(&mocks).await;
    mount_plain_note(&mocks).await;
    // A first attempt posts the note without looking for an earlier one.
    Mock::given(method("POST"))
        .and(path("/graphql/v1"))
        .and(wiremock::matchers::body_partial_json(
            json!({"operationName": "threadNotes"}),
        ))
        .respond_with(ResponseTemplate::new(500))
        .expect(0)
        .mount(&mocks.plain)
        .await;
    let app = spawn(&db, &mocks, "").await;
    let pool = db.pool().await;

    let body = plain_body(OUTAGE);
    let (status, json) = app.plain(body.clone()).await;
    assert_eq!((status, json), (202, json!({"status": "accepted"})));
    wait_for_actions(&pool, 4).await;

    let d = the_decision(&pool).await;
    assert_eq!(d.severity.as_str(), "on_fire");
    assert_eq!(d.route.as_str(), "engineering");
    assert_eq!(d.tier.as_str(), "enterprise", "tier comes from enrichment");
    let arr: Option<f64> = sqlx::query_scalar("SELECT arr_usd FROM tickets")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(arr, Some(120_000.0));
    assert_note_matches(&mocks, &d).await;
    let kinds: Vec<String> = sqlx::query_scalar("SELECT kind FROM actions ORDER BY id")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(
        kinds,
        [
            "plain.label",
            "plain.priority",
            "plain.assign",
            "plain.note"
        ]
    );

    // A redelivery (new attempt timestamp, new signature, same key) is acknowledged and does
    // nothing: the mocks' expect(1) fail on drop otherwise.
    let (status, json) = app.plain(plain_body(OUTAGE)).await;
    assert_eq!((status, json), (200, json!({"status": "duplicate"})));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(count(&pool, "SELECT COUNT(*) FROM decisions").await, 1);
    assert_eq!(count(&pool, "SELECT COUNT(*) FROM actions").await, 4);
    app.stop().await;
}

#[tokio::test]
async fn a_hundred_concurrent_copies_cost_one_decision_and_one_set_of_actions() {
    let db = TestDb::new().await;
    let mocks = Mocks::start().await;
    mount_enrichment(&mocks).await;
    mount_plain_routing(&mocks).await;
    mount_plain_note(&mocks).await;
    let app = Arc::new(spawn(&db, &mocks, "").await);
    let pool = db.pool().await;

    let body = plain_body(OUTAGE);
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..100 {
        let (app, body) = (app.clone(), body.clone());
        set.spawn(async move { app.plain(body).await });
    }
    let results = set.join_all().await;
    assert!(
        results.iter().all(|(s, _)| *s == 200 || *s == 202),
        "{results:?}"
    );
    assert_eq!(results.iter().filter(|(s, _)| *s == 202).count(), 1);
    wait_for_actions(&pool, 4).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(count(&pool, "SELECT COUNT(*) FROM decisions").await, 1);
    assert_eq!(count(&pool, "SELECT COUNT(*) FROM actions").await, 4);
    assert_eq!(count(&pool, "SELECT COUNT(*) FROM deliveries").await, 1);
    assert_note_matches(&mocks, &the_decision(&pool).await).await;
    Arc::into_inner(app).unwrap().stop().await;
}

#[tokio::test]
async fn actions_are_retried_through_an_outage_and_complete_once() {
    let db = TestDb::new().await;
    let mocks = Mocks::start().await;
    mount_enrichment(&mocks).await;
    let label = json!({"input": {"threadId": THREAD, "labelTypeIds": ["lt_engineering"]}});
    // Plain fails three ways before the label sticks: HTTP 500, a mutation error of type
    // INTERNAL under HTTP 200, and finally "already added" (a previous attempt got through).
    plain_call("addLabels", ADD_LABELS, label.clone())
        .respond_with(ResponseTemplate::new(500))
        .up_to_n_times(2)
        .with_priority(1)
        .expect(2)
        .mount(&mocks.plain)
        .await;
    plain_call("addLabels", ADD_LABELS, label.clone())
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"data": {"addLabels": {
            "labels": null,
            "error": {"message": "try again", "type": "INTERNAL", "code": "internal", "fields": []}
        }}})))
        .up_to_n_times(1)
        .with_priority(2)
        .expect(1)
        .mount(&mocks.plain)
        .await;
    plain_call("addLabels", ADD_LABELS, label)
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"data": {"addLabels": {
                "labels": null,
                "error": {"message": "already there", "type": "VALIDATION",
                          "code": "label_with_given_type_already_added_to_thread", "fields": []}
            }}})),
        )
        .with_priority(3)
        .expect(1)
        .mount(&mocks.plain)
        .await;
    for (op, query, vars) in [
        (
            "changeThreadPriority",
            CHANGE_PRIORITY,
            json!({"input": {"threadId": THREAD, "priority": 0}}),
        ),
        (
            "assignThread",
            ASSIGN_THREAD,
            json!({"input": {"threadId": THREAD, "userId": "u_oncall"}}),
        ),
    ] {
        plain_call(op, query, vars)
            .respond_with(mutation_ok(op))
            .expect(1)
            .mount(&mocks.plain)
            .await;
    }
    mount_plain_note(&mocks).await;
    let app = spawn(&db, &mocks, "").await;
    let pool = db.pool().await;

    assert_eq!(app.plain(plain_body(OUTAGE)).await.0, 202);
    wait_for_actions(&pool, 4).await;
    let (attempts, last_error): (i32, Option<String>) =
        sqlx::query_as("SELECT attempts, last_error FROM actions WHERE kind = 'plain.label'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(attempts, 4);
    assert_eq!(last_error, None);
    app.stop().await;
}

#[tokio::test]
async fn a_validation_error_is_recorded_and_not_retried() {
    let db = TestDb::new().await;
    let mocks = Mocks::start().await;
    mount_enrichment(&mocks).await;
    plain_call(
        "changeThreadPriority",
        CHANGE_PRIORITY,
        json!({"input": {"threadId": THREAD, "priority": 0}}),
    )
    .respond_with(ResponseTemplate::new(200).set_body_json(
        json!({"data": {"changeThreadPriority": {
            "thread": null,
            "error": {"message": "bad priority", "type": "VALIDATION", "code": "input_validation",
                      "fields": [{"field": "priority", "message": "bad", "type": "VALIDATION"}]}
        }}}),
    ))
    .expect(1)
    .mount(&mocks.plain)
    .await;
    for (op, query, vars) in [
        (
            "addLabels",
            ADD_LABELS,
            json!({"input": {"threadId": THREAD, "labelTypeIds": ["lt_engineering"]}}),
        ),
        (
            "assignThread",
            ASSIGN_THREAD,
            json!({"input": {"threadId": THREAD, "userId": "u_oncall"}}),
        ),
    ] {
        plain_call(op, query, vars)
            .respond_with(mutation_ok(op))
            .expect(1)
            .mount(&mocks.plain)
            .await;
    }
    mount_plain_note(&mocks).await;
    let app = spawn(&db, &mocks, "").await;
    let pool = db.pool().await;
    assert_eq!(app.plain(plain_body(OUTAGE)).await.0, 202);
    for _ in 0..600 {
        let settled = "SELECT COUNT(*) FROM actions WHERE status <> 'pending'";
        if count(&pool, settled).await == 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, attempts, last_error): (String, i32, Option<String>) = sqlx::query_as(
        "SELECT status, attempts, last_error FROM actions WHERE kind = 'plain.priority'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!((status.as_str(), attempts), ("failed", 1));
    assert!(last_error.unwrap().contains("input_validation"));
    app.stop().await;
}
