//! Error paths: the documented statuses, an unconfigured secret, a database outage.

use super::*;

#[tokio::test]
async fn plain_error_paths_answer_the_documented_statuses() {
    let db = TestDb::new().await;
    let mocks = Mocks::start().await;
    let app = spawn(&db, &mocks, "").await;
    let pool = db.pool().await;
    let body = plain_body(OUTAGE);

    // Bad and missing signatures.
    let (s, j) = app
        .post(
            "/webhooks/plain",
            &[("Plain-Request-Signature", sign("wrong", &body))],
            body.clone(),
        )
        .await;
    assert_eq!((s, j), (401, json!({"error": "invalid signature"})));
    let (s, _) = app.post("/webhooks/plain", &[], body.clone()).await;
    assert_eq!(s, 401);

    // Outside the replay window.
    let old = String::from_utf8(body.clone()).unwrap();
    let v: Value = serde_json::from_str(&old).unwrap();
    let ts = v["webhookMetadata"]["webhookDeliveryAttemptTimestamp"]
        .as_str()
        .unwrap();
    let stale = old.replace(ts, "2023-10-19T14:12:26.073Z").into_bytes();
    let (s, j) = app.plain(stale).await;
    assert_eq!(s, 401);
    assert!(
        j["error"].as_str().unwrap().contains("replay window"),
        "{j}"
    );

    // Signed but not JSON, and a required field missing.
    let (s, j) = app.plain(b"hello-world".to_vec()).await;
    assert_eq!(s, 400);
    assert!(
        j["error"]
            .as_str()
            .unwrap()
            .starts_with("body is not valid JSON"),
        "{j}"
    );
    let no_thread = String::from_utf8(body.clone())
        .unwrap()
        .replace(&format!("\"id\":\"{THREAD}\""), "\"id\":7")
        .into_bytes();
    let (s, j) = app.plain(no_thread).await;
    assert_eq!(
        (s, j),
        (
            400,
            json!({"error": "missing or invalid field `payload.thread.id`"})
        )
    );

    // Over 1 MiB.
    let big = plain_body(&"x".repeat(1024 * 1024 + 1));
    let (s, _) = app.plain(big).await;
    assert_eq!(s, 413);

    // An event the bridge does not act on is acknowledged and ignored.
    let other = String::from_utf8(body)
        .unwrap()
        .replace(
            "\"type\":\"thread.thread_created\"",
            "\"type\":\"thread.note_created\"",
        )
        .into_bytes();
    assert_eq!(app.plain(other).await, (200, json!({"status": "ignored"})));

    app.stop().await;
    assert_eq!(count(&pool, "SELECT COUNT(*) FROM deliveries").await, 0);
    assert!(mocks.plain.received_requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn an_unconfigured_secret_refuses_every_request() {
    let db = TestDb::new().await;
    let mocks = Mocks::start().await;
    let (mut s, _config) = settings(&db, &mocks, "");
    s.ticketing.plain.webhook_secret = None;
    s.ticketing.pylon.webhook_secret = None;
    let app = App::build(s).await.unwrap();
    let http = format!("http://{}", app.http_addr().unwrap());
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(app.run_until_stopped(shutdown.clone()));
    let client = reqwest::Client::new();
    for (route, header_name, secret, var) in [
        (
            "plain",
            "Plain-Request-Signature",
            PLAIN_SECRET,
            "PLAIN_WEBHOOK_SECRET",
        ),
        (
            "pylon",
            "X-Pylon-Signature",
            PYLON_SECRET,
            "PYLON_WEBHOOK_SECRET",
        ),
    ] {
        let body = plain_body(OUTAGE);
        let resp = client
            .post(format!("{http}/webhooks/{route}"))
            .header(header_name, sign(secret, &body))
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 503);
        let j: Value = resp.json().await.unwrap();
        assert!(j["error"].as_str().unwrap().contains(var), "{j}");
    }
    shutdown.cancel();
    task.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_database_outage_answers_503_so_the_sender_retries() {
    let db = TestDb::new().await;
    let mocks = Mocks::start().await;
    let (s, _config) = settings(&db, &mocks, "");
    // A store whose pool is closed behaves like a database that went away.
    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .connect("sqlite::memory:")
        .await
        .unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::new(pool.clone()));
    pool.close().await;
    let bridge = Bridge::new(
        store.clone(),
        Adapters::new(&s.ticketing).unwrap(),
        Arc::new(tokio::sync::Notify::new()),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        axum::serve(
            listener,
            router(HttpState {
                store,
                bridge,
                health: Default::default(),
            }),
        )
        .await
        .unwrap();
    });
    let body = plain_body(OUTAGE);
    let resp = reqwest::Client::new()
        .post(format!("http://{addr}/webhooks/plain"))
        .header("Plain-Request-Signature", sign(PLAIN_SECRET, &body))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 503);
    let j: Value = resp.json().await.unwrap();
    assert_eq!(
        j,
        json!({"error": "the routing log is unavailable; retry later"})
    );
    server.abort();
}
