//! The Plain note: no idempotency key, so a retry looks for its marker first.

use super::*;

/// A `threadNotes` page as Plain answers it: `notes` as `NoteEntry` nodes (text and markdown),
/// with `previous` as the cursor of an older page, if any.
fn notes_page(notes: &[(&str, &str)], previous: Option<&str>) -> ResponseTemplate {
    let edges: Vec<Value> = notes
        .iter()
        .enumerate()
        .map(|(i, (text, markdown))| {
            json!({"cursor": format!("c{i}"), "node": {"id": format!("t_{i}"), "entry": {
                "__typename": "NoteEntry", "noteId": format!("n_{i}"),
                "text": text, "markdown": markdown
            }}})
        })
        .collect();
    ResponseTemplate::new(200).set_body_json(json!({"data": {"thread": {"timelineEntries": {
        "edges": edges,
        "pageInfo": {"hasPreviousPage": previous.is_some(), "startCursor": previous.unwrap_or("c0")}
    }}}}))
}

/// The notes lookup for `before` (a cursor, or null for the newest page).
fn notes_lookup(before: Value) -> wiremock::MockBuilder {
    plain_call(
        "threadNotes",
        THREAD_NOTES,
        json!({"threadId": THREAD, "before": before}),
    )
}

#[tokio::test]
async fn a_plain_note_whose_completion_failed_is_found_and_not_posted_again() {
    let db = TestDb::new().await;
    let mocks = Mocks::start().await;
    mount_enrichment(&mocks).await;
    mount_plain_routing(&mocks).await;
    // A fake Plain thread: createNote stores the note, the timeline shows what was stored.
    let posted: Arc<std::sync::Mutex<Vec<(String, String)>>> = Arc::default();
    let store_note = posted.clone();
    Mock::given(method("POST"))
        .and(path("/graphql/v1"))
        .and(wiremock::matchers::body_partial_json(
            json!({"operationName": "createNote", "query": CREATE_NOTE}),
        ))
        .respond_with(move |req: &wiremock::Request| {
            let input = &req.body_json::<Value>().unwrap()["variables"]["input"];
            store_note.lock().unwrap().push((
                input["text"].as_str().unwrap().to_owned(),
                input["markdown"].as_str().unwrap().to_owned(),
            ));
            mutation_ok("createNote")
        })
        .expect(1)
        .mount(&mocks.plain)
        .await;
    let timeline = posted.clone();
    notes_lookup(Value::Null)
        .respond_with(move |_: &wiremock::Request| {
            let notes = timeline.lock().unwrap().clone();
            let notes: Vec<(&str, &str)> = notes
                .iter()
                .map(|(t, m)| (t.as_str(), m.as_str()))
                .collect();
            notes_page(&notes, None)
        })
        .expect(1)
        .mount(&mocks.plain)
        .await;

    // The database refuses the first two "note done" updates, as in a blip right after Plain
    // answered: the worker's batched completion, then its one-by-one completion of that batch
    // (a sequence, because a failed statement rolls back everything else).
    {
        let s = store::connect(&StoreSettings {
            url: db.url.clone(),
            max_connections: 1,
            accept_connections: 0,
            acquire_timeout: Duration::from_secs(5),
            stale_after: store::DEFAULT_STALE_AFTER,
            in_flight_grace: Duration::from_secs(15),
        })
        .await
        .unwrap();
        s.close().await;
    }
    let pool = db.pool().await;
    for sql in [
        "CREATE SEQUENCE note_done_updates",
        "CREATE FUNCTION fail_first_note_done() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
         IF NEW.kind = 'plain.note' AND NEW.status = 'done' AND OLD.status <> 'done' \
            AND nextval('note_done_updates') <= 2 THEN \
           RAISE EXCEPTION 'simulated database blip'; \
         END IF; RETURN NEW; END $$",
        "CREATE TRIGGER fail_first_note_done BEFORE UPDATE ON actions \
         FOR EACH ROW EXECUTE FUNCTION fail_first_note_done()",
    ] {
        sqlx::query(sql).execute(&pool).await.unwrap();
    }

    let (mut s, config) = settings(&db, &mocks, "");
    s.worker.action_lease = Duration::from_secs(1);
    let app = TestApp::start(s, Some(config)).await;
    assert_eq!(app.plain(plain_body(OUTAGE)).await.0, 202);
    wait_for_actions(&pool, 4).await;
    let d = the_decision(&pool).await;
    let (attempts, status): (i32, String) =
        sqlx::query_as("SELECT attempts, status FROM actions WHERE kind = 'plain.note'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!((attempts, status.as_str()), (2, "done"));
    // One note, ending in its marker, in both renderings; the retry found it (expect(1) each).
    let notes = posted.lock().unwrap().clone();
    assert_eq!(notes.len(), 1);
    let marker = note_marker(&d.id);
    assert_eq!(marker, format!("escalator decision {}", d.id));
    assert!(
        notes[0].0.ends_with(&format!("\n{marker}")),
        "{}",
        notes[0].0
    );
    assert!(
        notes[0].1.ends_with(&format!("\n\n{marker}")),
        "{}",
        notes[0].1
    );
    app.stop().await;
}

#[tokio::test]
async fn a_retried_plain_note_pages_the_notes_and_posts_when_its_marker_is_absent() {
    let db = TestDb::new().await;
    let mocks = Mocks::start().await;
    mount_enrichment(&mocks).await;
    mount_plain_routing(&mocks).await;
    // The first createNote fails (Plain stored nothing), the second succeeds.
    plain_call_op("createNote")
        .respond_with(ResponseTemplate::new(502))
        .up_to_n_times(1)
        .with_priority(1)
        .expect(1)
        .mount(&mocks.plain)
        .await;
    plain_call_op("createNote")
        .respond_with(mutation_ok("createNote"))
        .with_priority(2)
        .expect(1)
        .mount(&mocks.plain)
        .await;
    // Two pages of other notes (an agent's, and one of another decision), newest first.
    notes_lookup(Value::Null)
        .respond_with(notes_page(
            &[("Called the customer.", "Called the customer.")],
            Some("c_older"),
        ))
        .expect(1)
        .mount(&mocks.plain)
        .await;
    notes_lookup(json!("c_older"))
        .respond_with(notes_page(
            &[(
                "escalator decision 0190-other",
                "escalator decision 0190-other",
            )],
            None,
        ))
        .expect(1)
        .mount(&mocks.plain)
        .await;
    let app = spawn(&db, &mocks, "").await;
    let pool = db.pool().await;
    assert_eq!(app.plain(plain_body(OUTAGE)).await.0, 202);
    wait_for_actions(&pool, 4).await;
    let d = the_decision(&pool).await;
    let notes = notes_received(&mocks).await;
    assert_eq!(notes.len(), 2, "the failed attempt and the retry");
    assert_eq!(notes[1]["variables"]["input"]["text"], note_text(&d));
    app.stop().await;
}
