//! Follow-ups (issue 26) end to end: Plain's documented message events on a decided thread are
//! decided again on the conversation, raise only, never undoing a person, bounded per thread;
//! every call to Plain is matched exactly and counted.

use super::*;

use escalator::ticketing::plain::{REMOVE_LABELS, THREAD_LABELS};

/// Routes with labels on both ends of a raise, and follow-ups read at once (or after `secs`).
fn tables(secs: u64) -> String {
    format!(
        "\n[routes.bot.plain]\nlabel_type_ids = [\"lt_bot\"]\n\
         [routes.human.plain]\nlabel_type_ids = [\"lt_human\"]\n\
         [followups]\nmin_interval_secs = {secs}\n"
    )
}

async fn spawn_followups(db: &TestDb, mocks: &Mocks, secs: u64) -> TestApp {
    let (s, config) = settings_with(db, mocks, "", &tables(secs));
    TestApp::start(s, Some(config)).await
}

/// Enrichment answering `tier` (no contract value), expected `n` times (once per delivery
/// decided: the first message and each re-decision), without the thread's routing.
async fn mount_tier(mocks: &Mocks, tier: &str, n: u64) {
    mount_thread(mocks, tier, json!({}), n).await;
}

/// `threadForRouting` answering `tier` and the thread's routing as Plain has it (`routing`:
/// `priority`, `labels`, `assignedTo`), for the next `n` calls (then the next mount answers).
async fn mount_thread(mocks: &Mocks, tier: &str, routing: Value, n: u64) {
    let mut thread = json!({
        "id": THREAD,
        "tier": {"id": "tier_1", "name": tier, "externalId": tier},
        "tenant": null,
        "customer": {"id": CUSTOMER, "company": null}
    });
    for (k, v) in routing.as_object().unwrap() {
        thread[k] = v.clone();
    }
    plain_call(
        "threadForRouting",
        THREAD_FOR_ROUTING,
        json!({ "threadId": THREAD }),
    )
    .respond_with(ResponseTemplate::new(200).set_body_json(json!({"data": {"thread": thread}})))
    .up_to_n_times(n)
    .expect(n)
    .mount(&mocks.plain)
    .await;
}

/// A thread's routing as `threadForRouting` selects it: `priority`, labels of these types
/// (label ids `l_<type>`), `assignedTo` a user or nobody.
fn routing(priority: u8, label_types: &[&str], assignee: Option<&str>) -> Value {
    json!({
        "priority": priority,
        "labels": label_types.iter().map(|t| json!({"id": format!("l_{t}"), "labelType": {"id": t}})).collect::<Vec<_>>(),
        "assignedTo": assignee.map(|id| json!({"__typename": "User", "id": id})),
    })
}

/// One mutation with exactly these variables, expected `n` times.
async fn expect_call(mocks: &Mocks, op: &str, query: &str, variables: Value, n: u64) {
    plain_call(op, query, variables)
        .respond_with(mutation_ok(op))
        .expect(n)
        .mount(&mocks.plain)
        .await;
}

/// `addLabels` of `label_type`, expected `labels_n` times, and `changeThreadPriority` to
/// `priority`, expected `priority_n` times.
async fn expect_routed(
    mocks: &Mocks,
    (label_type, labels_n): (&str, u64),
    (priority, priority_n): (u8, u64),
) {
    expect_call(
        mocks,
        "addLabels",
        ADD_LABELS,
        json!({"input": {"threadId": THREAD, "labelTypeIds": [label_type]}}),
        labels_n,
    )
    .await;
    expect_call(
        mocks,
        "changeThreadPriority",
        CHANGE_PRIORITY,
        json!({"input": {"threadId": THREAD, "priority": priority}}),
        priority_n,
    )
    .await;
}

async fn expect_notes(mocks: &Mocks, n: u64) {
    plain_call_op("createNote")
        .respond_with(mutation_ok("createNote"))
        .expect(n)
        .mount(&mocks.plain)
        .await;
}

/// A customer's `thread.email_received` (or, with `sent`, the team's `thread.email_sent`) as
/// Plain documents it: `payload.email` with `textContent` and `isStartOfThread: false`.
fn email(event_id: &str, email_id: &str, text: &str, sent: bool) -> Vec<u8> {
    let kind = if sent {
        "thread.email_sent"
    } else {
        "thread.email_received"
    };
    json!({
        "id": event_id,
        "type": kind,
        "timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "workspaceId": "w_01GST0W989ZNAW53X6XYHAY87P",
        "payload": {
            "eventType": kind,
            "thread": {
                "id": THREAD,
                "customer": {"id": CUSTOMER},
                "title": TITLE,
                "priority": 2,
                "status": "TODO",
                "labels": [],
                "updatedAt": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
            },
            "email": {
                "id": email_id,
                "subject": "Re: Production down",
                "textContent": text,
                "markdownContent": text,
                "from": {"email": "peter@example.com"},
                "to": [{"email": "help@example.com"}],
                "isStartOfThread": false,
                "createdAt": {"iso8601": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)}
            }
        },
        "webhookMetadata": {
            "webhookTargetId": "whTarget_01HD4400VTDJQ646V6RY37SR7K",
            "webhookTargetVersion": "2026-07-14",
            "webhookDeliveryAttemptId": "whAttempt_01HD44FJASQM23MNHYDYPAXEG8",
            "webhookDeliveryAttemptNumber": 1,
            "webhookDeliveryAttemptTimestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        }
    })
    .to_string()
    .into_bytes()
}

/// The first decision's routing (human: its label, priority 1) and its note, then nothing of a
/// raise but a second note: no label, priority or assignee change, no label read.
async fn expect_human_routing_then_a_note_only(mocks: &Mocks) {
    expect_routed(mocks, ("lt_human", 1), (1, 1)).await;
    // Nothing of the raise reaches the thread but its note.
    for op in [
        "addLabels",
        "changeThreadPriority",
        "assignThread",
        "removeLabels",
        "threadLabels",
    ] {
        plain_call_op(op)
            .respond_with(mutation_ok(op))
            .expect(0)
            .with_priority(10)
            .mount(&mocks.plain)
            .await;
    }
    expect_notes(mocks, 2).await;
}

async fn decisions(pool: &PgPool) -> Vec<(String, Option<String>, String)> {
    sqlx::query_as("SELECT severity, supersedes, id FROM decisions ORDER BY created_at, id")
        .fetch_all(pool)
        .await
        .unwrap()
}

/// Waits until `n` decisions are logged and every action is done.
async fn wait_for_decisions(pool: &PgPool, n: i64, actions: i64) {
    for _ in 0..400 {
        if count(pool, "SELECT COUNT(*) FROM decisions").await >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(count(pool, "SELECT COUNT(*) FROM decisions").await, n);
    wait_for_actions(pool, actions).await;
}

/// Waits until no delivery is pending.
async fn wait_for_inbox(pool: &PgPool) {
    for _ in 0..400 {
        if count(
            pool,
            "SELECT COUNT(*) FROM deliveries WHERE status = 'pending'",
        )
        .await
            == 0
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("deliveries still pending");
}

/// The thread's title: neutral, so the first message alone sets the severity.
const TITLE: &str = "Exporting dashboards";

/// A `thread.thread_created` delivery of [`TITLE`] with `text` as its first message.
fn created(text: &str) -> Vec<u8> {
    String::from_utf8(plain_body(text))
        .unwrap()
        .replace("\"Production down\"", &format!("{TITLE:?}"))
        .into_bytes()
}

const HOW_TO: &str = "How do I export a CSV of my dashboards?";
const DATA_LOSS: &str =
    "The export deleted half of our records. We lost customer data in production!";

#[tokio::test]
async fn a_routine_ticket_whose_second_message_reports_data_loss_is_raised_to_on_fire() {
    let db = TestDb::new().await;
    let mocks = Mocks::start().await;
    // Plain re-read before the raise shows what escalator set (the bot's label and priority,
    // nobody assigned) and a label no route uses: nobody moved it, so it is raised.
    mount_thread(
        &mocks,
        "free",
        routing(2, &["lt_bot", "lt_feedback"], None),
        2,
    )
    .await;
    // The first decision: routine, the bot's label and priority, a note.
    expect_routed(&mocks, ("lt_bot", 1), (2, 1)).await;
    // The raise: one label swap (bot's off, engineering's on), one priority change, the
    // route's assignee, one note.
    plain_call("threadLabels", THREAD_LABELS, json!({"threadId": THREAD}))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"data": {"thread": {
                "id": THREAD,
                "labels": [{"id": "l_bot_1", "labelType": {"id": "lt_bot"}}]
            }}})),
        )
        .expect(1)
        .mount(&mocks.plain)
        .await;
    expect_call(
        &mocks,
        "removeLabels",
        REMOVE_LABELS,
        json!({"input": {"labelIds": ["l_bot_1"]}}),
        1,
    )
    .await;
    expect_routed(&mocks, ("lt_engineering", 1), (0, 1)).await;
    expect_call(
        &mocks,
        "assignThread",
        ASSIGN_THREAD,
        json!({"input": {"threadId": THREAD, "userId": "u_oncall"}}),
        1,
    )
    .await;
    expect_notes(&mocks, 2).await;
    let app = spawn_followups(&db, &mocks, 0).await;
    let pool = db.pool().await;

    assert_eq!(app.plain(created(HOW_TO)).await.0, 202);
    wait_for_decisions(&pool, 1, 3).await;
    // The team answers, then the customer writes again.
    assert_eq!(
        app.plain(email("pEv_a1", "em_a1", "Settings → Export → CSV.", true))
            .await
            .0,
        202
    );
    assert_eq!(
        app.plain(email("pEv_c1", "em_c1", DATA_LOSS, false))
            .await
            .0,
        202
    );
    wait_for_decisions(&pool, 2, 8).await;

    let d = decisions(&pool).await;
    assert_eq!(d[0].0, "routine");
    assert_eq!(d[1].0, "on_fire");
    assert_eq!(
        d[1].1.as_deref(),
        Some(d[0].2.as_str()),
        "the re-decision supersedes the first"
    );
    // The conversation was decided: first message, the agent's reply marked, the new message.
    let body: String =
        sqlx::query_scalar("SELECT body FROM tickets WHERE version = 'message:em_c1'")
            .fetch_one(&pool)
            .await
            .unwrap();
    let (a, b, c) = (
        body.find(HOW_TO).unwrap(),
        body.find("[agent reply").unwrap(),
        body.find(DATA_LOSS).unwrap(),
    );
    assert!(a < b && b < c, "{body}");
    // The raise's note says what changed and why.
    let note: String = sqlx::query_scalar(
        "SELECT payload FROM actions WHERE kind = 'plain.note' ORDER BY id DESC LIMIT 1",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(note.contains("Raised from routine to on_fire"), "{note}");
    app.stop().await;
}

#[tokio::test]
async fn thanks_on_an_urgent_ticket_changes_nothing_and_a_redelivery_is_decided_once() {
    let db = TestDb::new().await;
    let mocks = Mocks::start().await;
    // Enterprise: the first message is urgent by the tier's floor.
    mount_tier(&mocks, "enterprise", 2).await;
    expect_routed(&mocks, ("lt_human", 1), (1, 1)).await;
    expect_notes(&mocks, 1).await;
    let app = spawn_followups(&db, &mocks, 0).await;
    let pool = db.pool().await;

    assert_eq!(app.plain(created(HOW_TO)).await.0, 202);
    wait_for_decisions(&pool, 1, 3).await;
    let thanks = || email("pEv_t1", "em_t1", "Thanks, that worked!", false);
    assert_eq!(
        app.plain(thanks()).await,
        (202, json!({"status": "accepted"}))
    );
    // Plain redelivers the event: acknowledged, nothing else.
    assert_eq!(
        app.plain(thanks()).await,
        (200, json!({"status": "duplicate"}))
    );
    wait_for_inbox(&pool).await;
    wait_for_decisions(&pool, 2, 3).await;
    let d = decisions(&pool).await;
    assert_eq!((d[0].0.as_str(), d[1].0.as_str()), ("urgent", "urgent"));
    assert_eq!(
        count(&pool, "SELECT COUNT(*) FROM actions").await,
        3,
        "no action for an equal severity"
    );
    app.stop().await;
}

#[tokio::test]
async fn after_an_agent_lowers_the_priority_a_stronger_message_is_a_note_only() {
    let db = TestDb::new().await;
    let mocks = Mocks::start().await;
    mount_tier(&mocks, "enterprise", 2).await;
    expect_human_routing_then_a_note_only(&mocks).await;
    let app = spawn_followups(&db, &mocks, 0).await;
    let pool = db.pool().await;

    assert_eq!(app.plain(created(HOW_TO)).await.0, 202);
    wait_for_decisions(&pool, 1, 3).await;
    // An agent lowers the priority from human's (1) to bot's (2).
    let agent = json!({"actorType": "user", "userId": "u_agent"});
    let thread = |p: u8| {
        json!({
            "id": THREAD, "title": TITLE, "priority": p,
            "labels": [{"id": "l_h", "labelType": {"id": "lt_human", "name": "human"}}],
            "customer": {"id": CUSTOMER}, "updatedAt": UPDATED_AT, "updatedBy": agent.clone(),
        })
    };
    let lowered = json!({
        "id": "pEv_low", "type": "thread.thread_priority_changed",
        "payload": {"eventType": "thread.thread_priority_changed", "previousThread": thread(1), "thread": thread(2)},
        "webhookMetadata": {"webhookDeliveryAttemptTimestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)}
    }).to_string().into_bytes();
    assert_eq!(app.plain(lowered).await.0, 202);
    assert_eq!(
        count(
            &pool,
            "SELECT COUNT(*) FROM reviews WHERE origin = 'override'"
        )
        .await,
        1
    );
    assert_eq!(
        app.plain(email("pEv_s1", "em_s1", DATA_LOSS, false))
            .await
            .0,
        202
    );
    wait_for_decisions(&pool, 2, 4).await;
    let d = decisions(&pool).await;
    assert_eq!(d[1].0, "on_fire");
    let kinds: Vec<String> = sqlx::query_scalar("SELECT kind FROM actions WHERE decision_id = $1")
        .bind(&d[1].2)
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(kinds, ["plain.note"]);
    let note: String = sqlx::query_scalar("SELECT payload FROM actions WHERE decision_id = $1")
        .bind(&d[1].2)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(
        note.contains("escalator would raise this to on_fire"),
        "{note}"
    );
    app.stop().await;
}

#[tokio::test]
async fn ten_messages_in_the_window_cost_one_redecision() {
    let db = TestDb::new().await;
    let mocks = Mocks::start().await;
    mount_tier(&mocks, "enterprise", 2).await;
    expect_routed(&mocks, ("lt_human", 1), (1, 1)).await;
    expect_notes(&mocks, 1).await;
    let app = spawn_followups(&db, &mocks, 2).await;
    let pool = db.pool().await;

    assert_eq!(app.plain(created(HOW_TO)).await.0, 202);
    wait_for_decisions(&pool, 1, 3).await;
    for i in 0..10 {
        let body = email(
            &format!("pEv_w{i}"),
            &format!("em_w{i}"),
            &format!("Any news? ({i})"),
            false,
        );
        assert_eq!(app.plain(body).await.0, 202);
    }
    wait_for_inbox(&pool).await;
    assert_eq!(count(&pool, "SELECT COUNT(*) FROM decisions").await, 2);
    let body: String = sqlx::query_scalar("SELECT t.body FROM tickets t JOIN decisions d \
         ON d.ticket_id = t.ticket_id AND d.ticket_version = t.version WHERE d.supersedes IS NOT NULL")
        .fetch_one(&pool)
        .await
        .unwrap();
    for i in 0..10 {
        assert!(
            body.contains(&format!("Any news? ({i})")),
            "message {i} was read: {body}"
        );
    }
    app.stop().await;
}

/// Pylon: a second trigger's doorbell (`issue.message_received`, its `version` the message
/// marker) is a follow-up; the conversation is read with `GET /issues/{id}/messages` (internal
/// notes left out), and a raise is the route's update plus a note saying why.
#[tokio::test]
async fn a_pylon_message_trigger_raises_the_issue_on_its_conversation() {
    let db = TestDb::new().await;
    let mocks = Mocks::start().await;
    let auth = format!("Bearer {PYLON_TOKEN}");
    let issue = json!({"data": {
        "id": "iss_2", "number": 43, "title": TITLE,
        "body_html": format!("<p>{HOW_TO}</p>"),
        "state": "new", "requester": {"id": "ct_1", "email": "ops@acme.test"},
        "account": {"id": "acc_1"}, "team": null, "assignee": null, "tags": []
    }, "request_id": "req_1"});
    // Built twice (the first doorbell, the follow-up), read once more before the PATCH.
    Mock::given(method("GET"))
        .and(path("/issues/iss_2"))
        .and(header("authorization", auth.as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(issue.clone()))
        .expect(3)
        .mount(&mocks.pylon)
        .await;
    let t0 = chrono::Utc::now() - chrono::Duration::hours(1);
    let at = |m: i64| (t0 + chrono::Duration::minutes(m)).to_rfc3339();
    Mock::given(method("GET"))
        .and(path("/issues/iss_2/messages"))
        .and(header("authorization", auth.as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"data": [
            {"id": "pm_1", "author": {"name": "Ops", "contact": {"id": "ct_1", "email": "ops@acme.test"}},
             "is_private": false, "message_html": format!("<p>{HOW_TO}</p>"), "timestamp": at(0)},
            {"id": "pm_2", "author": {"name": "Agent", "user": {"id": "u_1", "email": "a@us.test"}},
             "is_private": false, "message_html": "<p>Settings, then Export.</p>", "timestamp": at(10)},
            {"id": "pm_3", "author": {"name": "escalator", "user": {"id": "u_bot"}},
             "is_private": true, "message_html": "<p>escalator: routine</p>", "timestamp": at(11)},
            {"id": "pm_4", "author": {"name": "Ops", "contact": {"id": "ct_1", "email": "ops@acme.test"}},
             "is_private": false, "message_html": format!("<p>{DATA_LOSS}</p>"), "timestamp": at(30)}
        ], "request_id": "req_2"})))
        .expect(1)
        .mount(&mocks.pylon)
        .await;
    Mock::given(method("PATCH"))
        .and(path("/issues/iss_2"))
        .and(header("authorization", auth.as_str()))
        .and(body_json(
            json!({"tags": ["escalator", "on-fire"], "team_id": "team_eng"}),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(issue.clone()))
        .expect(1)
        .mount(&mocks.pylon)
        .await;
    Mock::given(method("POST"))
        .and(path("/issues/iss_2/note"))
        .and(header("authorization", auth.as_str()))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"data": {"id": "msg_9", "issue_id": "iss_2"}})),
        )
        .expect(2)
        .mount(&mocks.pylon)
        .await;
    let app = spawn_followups(&db, &mocks, 0).await;
    let pool = db.pool().await;

    let created = br#"{"issue_id":"iss_2","event":"issue.created"}"#.to_vec();
    assert_eq!(app.pylon(created).await.0, 202);
    wait_for_decisions(&pool, 1, 1).await;
    let message =
        br#"{"issue_id":"iss_2","event":"issue.message_received","version":"pm_4"}"#.to_vec();
    assert_eq!(
        app.pylon(message.clone()).await,
        (202, json!({"status": "accepted"}))
    );
    assert_eq!(
        app.pylon(message).await,
        (200, json!({"status": "duplicate"}))
    );
    wait_for_decisions(&pool, 2, 3).await;
    let d = decisions(&pool).await;
    assert_eq!((d[0].0.as_str(), d[1].0.as_str()), ("routine", "on_fire"));
    assert_eq!(d[1].1.as_deref(), Some(d[0].2.as_str()));
    let body: String =
        sqlx::query_scalar("SELECT body FROM tickets WHERE version = 'message:pm_4'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(
        body.contains("[agent reply") && body.contains(DATA_LOSS),
        "{body}"
    );
    assert!(
        !body.contains("escalator: routine"),
        "internal notes are not the conversation"
    );
    let notes: Vec<Value> = mocks
        .pylon
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.url.path() == "/issues/iss_2/note")
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect();
    assert!(
        notes[1]["body_html"]
            .as_str()
            .unwrap()
            .contains("Raised from routine to on_fire"),
        "{notes:?}"
    );
    app.stop().await;
}

/// Re-reading the tool (issue 26): an agent changes the routing in Plain and no override event
/// reaches escalator; the follow-up's `threadForRouting` (the enrichment read it makes anyway)
/// shows the thread is not as escalator left it, so a raise is a note only. `now` is the
/// routing the re-read shows; `reason` what the note must say.
async fn plain_reread_case(now: Option<Value>, reason: &str) {
    let db = TestDb::new().await;
    let mocks = Mocks::start().await;
    // Enterprise: urgent, the human route (its label, priority 1).
    mount_thread(&mocks, "enterprise", routing(2, &[], None), 1).await;
    match now {
        Some(now) => mount_thread(&mocks, "enterprise", now, 1).await,
        // The re-read fails (Plain answers 400): it cannot be compared.
        None => {
            plain_call(
                "threadForRouting",
                THREAD_FOR_ROUTING,
                json!({ "threadId": THREAD }),
            )
            .respond_with(ResponseTemplate::new(400).set_body_json(json!({"message": "bad"})))
            .expect(1)
            .mount(&mocks.plain)
            .await;
        }
    }
    expect_human_routing_then_a_note_only(&mocks).await;
    let app = spawn_followups(&db, &mocks, 0).await;
    let pool = db.pool().await;

    assert_eq!(app.plain(created(HOW_TO)).await.0, 202);
    wait_for_decisions(&pool, 1, 3).await;
    // No override webhook: escalator learns of the change only by re-reading the thread.
    assert_eq!(
        app.plain(email("pEv_r1", "em_r1", DATA_LOSS, false))
            .await
            .0,
        202
    );
    wait_for_decisions(&pool, 2, 4).await;
    assert_eq!(count(&pool, "SELECT COUNT(*) FROM reviews").await, 0);
    let d = decisions(&pool).await;
    assert_eq!(d[1].0, "on_fire");
    let kinds: Vec<String> = sqlx::query_scalar("SELECT kind FROM actions WHERE decision_id = $1")
        .bind(&d[1].2)
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(kinds, ["plain.note"]);
    let notes: Vec<Value> = mocks
        .plain
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| serde_json::from_slice::<Value>(&r.body).unwrap())
        .filter(|b| b["operationName"] == "createNote")
        .collect();
    let text = notes[1]["variables"]["input"]["text"].as_str().unwrap();
    assert!(
        text.starts_with("escalator would raise this to on_fire:") && text.contains(reason),
        "{text}"
    );
    app.stop().await;
}

#[tokio::test]
async fn an_agent_lowering_the_priority_in_plain_without_a_webhook_gets_a_note_only() {
    plain_reread_case(
        Some(routing(2, &["lt_human"], None)),
        "not what escalator last set (a person changed it)",
    )
    .await;
}

#[tokio::test]
async fn an_agent_moving_the_label_in_plain_without_a_webhook_gets_a_note_only() {
    // The priority is escalator's, but the human label is off and the bot's is on.
    plain_reread_case(
        Some(routing(1, &["lt_bot"], None)),
        "not what escalator last set (a person changed it)",
    )
    .await;
}

#[tokio::test]
async fn when_plain_cannot_be_reread_a_raise_is_a_note_only_saying_so() {
    plain_reread_case(None, "could not re-read this ticket's routing").await;
}

/// Pylon: the bot route sets a tag and a team; the follow-up's `GET /issues/{id}` (the read
/// that builds the ticket anyway) shows the issue as escalator left it (`moved: false`: the
/// raise's PATCH) or moved to another team by a person (`moved: true`: the note alone).
async fn pylon_reread_case(moved: bool) {
    let db = TestDb::new().await;
    let mocks = Mocks::start().await;
    let auth = format!("Bearer {PYLON_TOKEN}");
    let issue = |tags: Value, team: Value| {
        json!({"data": {
            "id": "iss_3", "number": 44, "title": TITLE,
            "body_html": format!("<p>{HOW_TO}</p>"),
            "state": "waiting_on_you", "requester": {"id": "ct_1", "email": "ops@acme.test"},
            "account": {"id": "acc_1"}, "team": team, "assignee": null, "tags": tags
        }, "request_id": "req_1"})
    };
    // Built for the first doorbell and read before its PATCH: as it arrived.
    Mock::given(method("GET"))
        .and(path("/issues/iss_3"))
        .and(header("authorization", auth.as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(issue(json!([]), json!(null))))
        .up_to_n_times(2)
        .expect(2)
        .mount(&mocks.pylon)
        .await;
    // Then as escalator set it, or with a team a person chose.
    let team = if moved { "team_billing" } else { "team_bot" };
    Mock::given(method("GET"))
        .and(path("/issues/iss_3"))
        .and(header("authorization", auth.as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(issue(
            json!(["escalator", "bot", "vip"]),
            json!({"id": team}),
        )))
        .expect(if moved { 1 } else { 2 })
        .mount(&mocks.pylon)
        .await;
    Mock::given(method("GET"))
        .and(path("/issues/iss_3/messages"))
        .and(header("authorization", auth.as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"data": [
            {"id": "pm_1", "author": {"name": "Ops", "contact": {"id": "ct_1"}},
             "is_private": false, "message_html": format!("<p>{HOW_TO}</p>"),
             "timestamp": (chrono::Utc::now() - chrono::Duration::minutes(30)).to_rfc3339()},
            {"id": "pm_2", "author": {"name": "Ops", "contact": {"id": "ct_1"}},
             "is_private": false, "message_html": format!("<p>{DATA_LOSS}</p>"),
             "timestamp": chrono::Utc::now().to_rfc3339()}
        ], "request_id": "req_2"})))
        .expect(1)
        .mount(&mocks.pylon)
        .await;
    Mock::given(method("PATCH"))
        .and(path("/issues/iss_3"))
        .and(body_json(
            json!({"tags": ["escalator", "bot"], "team_id": "team_bot"}),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(issue(json!([]), json!(null))))
        .expect(1)
        .mount(&mocks.pylon)
        .await;
    Mock::given(method("PATCH"))
        .and(path("/issues/iss_3"))
        .and(body_json(json!({
            "tags": ["escalator", "bot", "vip", "on-fire"], "team_id": "team_eng"
        })))
        .respond_with(ResponseTemplate::new(200).set_body_json(issue(json!([]), json!(null))))
        .expect(u64::from(!moved))
        .mount(&mocks.pylon)
        .await;
    Mock::given(method("POST"))
        .and(path("/issues/iss_3/note"))
        .and(header("authorization", auth.as_str()))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"data": {"id": "msg_9", "issue_id": "iss_3"}})),
        )
        .expect(2)
        .mount(&mocks.pylon)
        .await;
    let config = format!(
        "{}[routes.bot.pylon]\ntags = [\"escalator\", \"bot\"]\nteam_id = \"team_bot\"\n",
        tables(0)
    );
    let (s, file) = settings_with(&db, &mocks, "", &config);
    let app = TestApp::start(s, Some(file)).await;
    let pool = db.pool().await;

    let created = br#"{"issue_id":"iss_3","event":"issue.created"}"#.to_vec();
    assert_eq!(app.pylon(created).await.0, 202);
    wait_for_decisions(&pool, 1, 2).await;
    let message =
        br#"{"issue_id":"iss_3","event":"issue.message_received","version":"pm_2"}"#.to_vec();
    assert_eq!(app.pylon(message).await.0, 202);
    wait_for_decisions(&pool, 2, if moved { 3 } else { 4 }).await;
    let d = decisions(&pool).await;
    assert_eq!((d[0].0.as_str(), d[1].0.as_str()), ("routine", "on_fire"));
    let notes: Vec<Value> = mocks
        .pylon
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.url.path() == "/issues/iss_3/note")
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect();
    let note = notes[1]["body_html"].as_str().unwrap();
    if moved {
        assert!(
            note.contains("escalator would raise this to on_fire")
                && note.contains("not what escalator last set"),
            "{note}"
        );
    } else {
        assert!(note.contains("Raised from routine to on_fire"), "{note}");
    }
    app.stop().await;
}

#[tokio::test]
async fn a_pylon_issue_a_person_moved_to_another_team_without_a_webhook_gets_a_note_only() {
    pylon_reread_case(true).await;
}

#[tokio::test]
async fn a_pylon_issue_as_escalator_left_it_is_raised() {
    pylon_reread_case(false).await;
}
