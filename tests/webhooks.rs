//! End-to-end tests of the webhook bridge: the real App on port 0 against a fresh PostgreSQL
//! database per test (`DATABASE_URL`, default `postgres://postgres@127.0.0.1:5432/postgres`),
//! with wiremock servers standing in for Plain's GraphQL API and Pylon's REST API.
#![allow(clippy::unwrap_used, unreachable_pub)]

#[path = "support/pg.rs"]
mod pg;

use std::{collections::BTreeMap, io::Write as _, sync::Arc, time::Duration};

use escalator::{
    config::Settings,
    domain::{Decision, RawTicket, Source, Ticket},
    http::{HttpState, router},
    startup::{App, build_decider},
    store::{self, NewDelivery, SqliteStore, Store, StoreSettings},
    ticketing::{
        Adapters, RoutingPlanner, note_html, note_marker, note_text,
        plain::{
            ADD_LABELS, ASSIGN_THREAD, CHANGE_PRIORITY, CREATE_NOTE, THREAD_FOR_ROUTING,
            THREAD_NOTES,
        },
    },
    triage::{Bridge, Triage},
};
use hmac::{Hmac, Mac as _};
use pg::TestDb;
use serde_json::{Value, json};
use sha2::Sha256;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use wiremock::{
    Mock, MockServer, ResponseTemplate,
    matchers::{body_json, header, method, path},
};

const PLAIN_SECRET: &str = "plain-webhook-secret";
const PYLON_SECRET: &str = "pylon-webhook-secret";
const PLAIN_KEY: &str = "plainApiKey_test";
const PYLON_TOKEN: &str = "pylon-token";
const THREAD: &str = "th_01HD44FHMCDSSWE38N14FSYV6K";
const CUSTOMER: &str = "c_01HD44FHDPG82VQ4QNHDR4N2T0";
const UPDATED_AT: &str = "2026-11-25T04:00:00.000Z";
/// The offline classifier puts this on fire (route engineering), deterministically.
const OUTAGE: &str =
    "Our production API is down for all users since 10:00, every request returns 500.";

const CONFIG: &str = r#"
[actions]
poll_interval_ms = 25
backoff_base_ms = 20
backoff_max_secs = 1
action_lease_secs = 30

[routes.engineering.plain]
label_type_ids = ["lt_engineering"]
assignee_user_id = "u_oncall"

[routes.engineering.pylon]
tags = ["escalator", "on-fire"]
team_id = "team_eng"
"#;

// ---------------------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------------------

struct Mocks {
    plain: MockServer,
    pylon: MockServer,
}

impl Mocks {
    async fn start() -> Self {
        Self {
            plain: MockServer::start().await,
            pylon: MockServer::start().await,
        }
    }
}

/// Settings for a test app; `actions_extra` is added to the `[actions]` table of [`CONFIG`].
fn settings(
    db: &TestDb,
    mocks: &Mocks,
    actions_extra: &str,
) -> (Settings, tempfile::NamedTempFile) {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    let config = CONFIG.replace("[actions]\n", &format!("[actions]\n{actions_extra}"));
    file.write_all(config.as_bytes()).unwrap();
    let config = file.path().to_str().unwrap().to_owned();
    let plain_url = format!("{}/graphql/v1", mocks.plain.uri());
    let pylon_url = mocks.pylon.uri();
    let env: BTreeMap<&str, &str> = BTreeMap::from([
        ("DATABASE_URL", db.url.as_str()),
        ("ESCALATOR_GRPC_ADDR", "127.0.0.1:0"),
        ("ESCALATOR_HTTP_ADDR", "127.0.0.1:0"),
        ("ESCALATOR_CONFIG", config.as_str()),
        ("PLAIN_API_URL", plain_url.as_str()),
        ("PLAIN_API_KEY", PLAIN_KEY),
        ("PLAIN_WEBHOOK_SECRET", PLAIN_SECRET),
        ("PYLON_API_URL", pylon_url.as_str()),
        ("PYLON_API_TOKEN", PYLON_TOKEN),
        ("PYLON_WEBHOOK_SECRET", PYLON_SECRET),
    ]);
    let mut s = Settings::load(&env).unwrap();
    s.shutdown_grace = Duration::from_secs(5);
    (s, file)
}

struct TestApp {
    http: String,
    grpc: String,
    client: reqwest::Client,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    _config: tempfile::NamedTempFile,
}

impl TestApp {
    async fn spawn(db: &TestDb, mocks: &Mocks, actions_extra: &str) -> Self {
        let (s, config) = settings(db, mocks, actions_extra);
        Self::with_settings(s, config).await
    }

    async fn with_settings(s: Settings, config: tempfile::NamedTempFile) -> Self {
        let app = App::build(s).await.unwrap();
        let http = format!("http://{}", app.http_addr().unwrap());
        let grpc = format!("http://{}", app.grpc_addr().unwrap());
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(app.run_until_stopped(shutdown.clone()));
        Self {
            http,
            grpc,
            client: reqwest::Client::new(),
            shutdown,
            task,
            _config: config,
        }
    }

    async fn post(&self, route: &str, headers: &[(&str, String)], body: Vec<u8>) -> (u16, Value) {
        let mut req = self
            .client
            .post(format!("{}{route}", self.http))
            .header("content-type", "application/json")
            .body(body);
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    async fn plain(&self, body: Vec<u8>) -> (u16, Value) {
        let sig = sign(PLAIN_SECRET, &body);
        self.post("/webhooks/plain", &[("Plain-Request-Signature", sig)], body)
            .await
    }

    async fn pylon(&self, body: Vec<u8>) -> (u16, Value) {
        let sig = sign(PYLON_SECRET, &body);
        self.post("/webhooks/pylon", &[("X-Pylon-Signature", sig)], body)
            .await
    }

    async fn stop(self) {
        self.shutdown.cancel();
        self.task.await.unwrap().unwrap();
    }
}

fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// A `thread.thread_created` delivery as Plain sends it, attempted now, with a field no schema
/// version has (lenient parsing must ignore it).
fn plain_body(text: &str) -> Vec<u8> {
    json!({
        "timestamp": UPDATED_AT,
        "workspaceId": "w_01GST0W989ZNAW53X6XYHAY87P",
        "payload": {
            "eventType": "thread.thread_created",
            "thread": {
                "id": THREAD,
                "customer": {"id": CUSTOMER, "email": {"email": "peter@example.com", "isVerified": false}},
                "title": "Production down",
                "previewText": text,
                "priority": 2,
                "status": "TODO",
                "labels": [],
                "createdAt": UPDATED_AT,
                "updatedAt": UPDATED_AT,
                "someFieldFromTheFuture": {"x": 1}
            }
        },
        "id": "pEv_01HD44FHHJ0YABSNGKWMG3CJ5J",
        "webhookMetadata": {
            "webhookTargetId": "whTarget_01HD4400VTDJQ646V6RY37SR7K",
            "webhookTargetVersion": "2026-07-14",
            "webhookDeliveryAttemptId": "whAttempt_01HD44FJASQM23MNHYDYPAXEG8",
            "webhookDeliveryAttemptNumber": "1",
            "webhookDeliveryAttemptTimestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        },
        "type": "thread.thread_created"
    })
    .to_string()
    .into_bytes()
}

fn graphql(op: &str, query: &str, variables: Value) -> Value {
    json!({ "query": query, "variables": variables, "operationName": op })
}

fn plain_call(op: &str, query: &str, variables: Value) -> wiremock::MockBuilder {
    Mock::given(method("POST"))
        .and(path("/graphql/v1"))
        .and(header(
            "authorization",
            format!("Bearer {PLAIN_KEY}").as_str(),
        ))
        .and(body_json(graphql(op, query, variables)))
}

/// Any call of the operation `op`, whatever its variables.
fn plain_call_op(op: &str) -> wiremock::MockBuilder {
    Mock::given(method("POST"))
        .and(path("/graphql/v1"))
        .and(wiremock::matchers::body_partial_json(
            json!({"operationName": op}),
        ))
}

fn mutation_ok(op: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({ "data": { op: { "error": null } } }))
}

/// Enrichment: the thread's tier is enterprise and its company's contract value 120k.
async fn mount_enrichment(mocks: &Mocks) {
    plain_call(
        "threadForRouting",
        THREAD_FOR_ROUTING,
        json!({ "threadId": THREAD }),
    )
    .respond_with(ResponseTemplate::new(200).set_body_json(json!({
        "data": {"thread": {
            "id": THREAD,
            "tier": {"id": "tier_1", "name": "Enterprise", "externalId": "enterprise"},
            "tenant": null,
            "customer": {"id": CUSTOMER, "company": {"id": "co_1", "name": "Acme", "contractValue": 120000, "tier": null}}
        }}
    })))
    .expect(1)
    .mount(&mocks.plain)
    .await;
}

/// The label, priority and assignment for the engineering route, each expected exactly once.
async fn mount_plain_routing(mocks: &Mocks) {
    plain_call(
        "addLabels",
        ADD_LABELS,
        json!({"input": {"threadId": THREAD, "labelTypeIds": ["lt_engineering"]}}),
    )
    .respond_with(mutation_ok("addLabels"))
    .expect(1)
    .mount(&mocks.plain)
    .await;
    plain_call(
        "changeThreadPriority",
        CHANGE_PRIORITY,
        json!({"input": {"threadId": THREAD, "priority": 0}}),
    )
    .respond_with(mutation_ok("changeThreadPriority"))
    .expect(1)
    .mount(&mocks.plain)
    .await;
    plain_call(
        "assignThread",
        ASSIGN_THREAD,
        json!({"input": {"threadId": THREAD, "userId": "u_oncall"}}),
    )
    .respond_with(mutation_ok("assignThread"))
    .expect(1)
    .mount(&mocks.plain)
    .await;
}

/// The note cannot be matched before the decision exists (it carries the decision id), so it is
/// matched by operation and checked against the logged decision afterwards.
async fn mount_plain_note(mocks: &Mocks) {
    Mock::given(method("POST"))
        .and(path("/graphql/v1"))
        .and(wiremock::matchers::body_partial_json(
            json!({"operationName": "createNote", "query": CREATE_NOTE}),
        ))
        .respond_with(mutation_ok("createNote"))
        .expect(1)
        .mount(&mocks.plain)
        .await;
}

async fn the_decision(pool: &PgPool) -> Decision {
    let store = store::PgStore::new(pool.clone());
    let key = escalator::domain::IdempotencyKey {
        source: Source::Plain,
        ticket_id: THREAD.into(),
        version: UPDATED_AT.into(),
    };
    store.decision(&key).await.unwrap().unwrap()
}

async fn count(pool: &PgPool, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

/// Waits until every logged action is done (and at least `n` exist), or fails after 30 s.
async fn wait_for_actions(pool: &PgPool, n: i64) {
    for _ in 0..600 {
        let total = count(pool, "SELECT COUNT(*) FROM actions").await;
        let done = count(pool, "SELECT COUNT(*) FROM actions WHERE status = 'done'").await;
        if total >= n && done == total {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let rows: Vec<(String, String, i32, Option<String>)> =
        sqlx::query_as("SELECT kind, status, attempts, last_error FROM actions ORDER BY id")
            .fetch_all(pool)
            .await
            .unwrap();
    panic!("actions did not complete: {rows:?}");
}

/// The createNote requests Plain received.
async fn notes_received(mocks: &Mocks) -> Vec<Value> {
    mocks
        .plain
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| serde_json::from_slice::<Value>(&r.body).unwrap())
        .filter(|b| b["operationName"] == "createNote")
        .collect()
}

async fn assert_note_matches(mocks: &Mocks, d: &Decision) {
    let notes = notes_received(mocks).await;
    assert_eq!(notes.len(), 1);
    let input = &notes[0]["variables"]["input"];
    assert_eq!(input["customerId"], CUSTOMER);
    assert_eq!(input["threadId"], THREAD);
    assert_eq!(input["text"], note_text(d));
    let md = input["markdown"].as_str().unwrap();
    assert!(
        md.contains("`on_fire` → `engineering`") && md.contains(&d.id),
        "{md}"
    );
}

// ---------------------------------------------------------------------------------------------
// Plain
// ---------------------------------------------------------------------------------------------

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
    let app = TestApp::spawn(&db, &mocks, "").await;
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
    let app = Arc::new(TestApp::spawn(&db, &mocks, "").await);
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
    let app = TestApp::spawn(&db, &mocks, "").await;
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
    let app = TestApp::spawn(&db, &mocks, "").await;
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

// ---------------------------------------------------------------------------------------------
// Crash recovery: a process killed at any point loses nothing and repeats nothing.
// ---------------------------------------------------------------------------------------------

fn outage_ticket() -> Ticket {
    Ticket::parse(
        Source::Plain,
        RawTicket {
            id: THREAD.into(),
            version: UPDATED_AT.into(),
            subject: "Production down".into(),
            body: OUTAGE.into(),
            tier: "enterprise".into(),
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
        acquire_timeout: Duration::from_secs(5),
        stale_after: store::DEFAULT_STALE_AFTER,
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

    let app = TestApp::spawn(&db, &mocks, "").await;
    let pool = db.pool().await;
    wait_for_actions(&pool, 4).await;
    assert_note_matches(&mocks, &the_decision(&pool).await).await;
    app.stop().await;
    // A second restart finds nothing to do (expect(1) on every mock).
    let app = TestApp::spawn(&db, &mocks, "").await;
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
    let app = TestApp::spawn(&db, &mocks, "").await;
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
            acquire_timeout: Duration::from_secs(5),
            stale_after: store::DEFAULT_STALE_AFTER,
        })
        .await
        .unwrap();
        let stored = store
            .accept_delivery(&NewDelivery {
                key: outage_ticket().key().clone(),
                event_type: "thread.thread_created".into(),
                payload: json!({"event_id": "pEv_1", "thread_id": THREAD, "title": "Production down",
                                "text": OUTAGE, "customer_id": CUSTOMER}),
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
    let app = TestApp::spawn(&db, &mocks, "").await;
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

#[tokio::test]
async fn a_grpc_ticket_abandoned_after_its_claim_is_decided_by_the_worker() {
    let db = TestDb::new().await;
    let mocks = Mocks::start().await;
    // A Route request claimed the ticket and its process died before deciding.
    {
        let (s, _config) = settings(&db, &mocks, "");
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
        let claim = store
            .claim(&ticket, Duration::from_millis(500))
            .await
            .unwrap();
        assert_eq!(claim, escalator::store::Claim::New);
        store.close().await;
    }
    let app = TestApp::spawn(&db, &mocks, "").await;
    let pool = db.pool().await;
    for _ in 0..200 {
        if count(&pool, "SELECT COUNT(*) FROM decisions WHERE source = 'api'").await == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(count(&pool, "SELECT COUNT(*) FROM decisions").await, 1);
    // api tickets plan no actions unless [actions] api_tool is set.
    assert_eq!(count(&pool, "SELECT COUNT(*) FROM actions").await, 0);
    app.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Pylon
// ---------------------------------------------------------------------------------------------

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
    let app = TestApp::spawn(&db, &mocks, "").await;
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
        .decision(&escalator::domain::IdempotencyKey {
            source: Source::Pylon,
            ticket_id: "iss_1".into(),
            version: "issue.created".into(),
        })
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

#[tokio::test]
async fn pylon_error_paths() {
    let db = TestDb::new().await;
    let mocks = Mocks::start().await;
    let app = TestApp::spawn(&db, &mocks, "").await;
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
    let app = TestApp::spawn(&db, &mocks, "").await;
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
    let app = TestApp::spawn(&db, &mocks, "").await;
    let pool = db.pool().await;
    wait_for_actions(&pool, 2).await;
    app.stop().await;
}

// ---------------------------------------------------------------------------------------------
// The Plain note: no idempotency key, so a retry looks for its marker first.
// ---------------------------------------------------------------------------------------------

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
            acquire_timeout: Duration::from_secs(5),
            stale_after: store::DEFAULT_STALE_AFTER,
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
    let app = TestApp::with_settings(s, config).await;
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
    let app = TestApp::spawn(&db, &mocks, "").await;
    let pool = db.pool().await;
    assert_eq!(app.plain(plain_body(OUTAGE)).await.0, 202);
    wait_for_actions(&pool, 4).await;
    let d = the_decision(&pool).await;
    let notes = notes_received(&mocks).await;
    assert_eq!(notes.len(), 2, "the failed attempt and the retry");
    assert_eq!(notes[1]["variables"]["input"]["text"], note_text(&d));
    app.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Replicas and gRPC
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn two_replicas_on_one_database_decide_and_act_once() {
    let db = TestDb::new().await;
    let mocks = Mocks::start().await;
    mount_enrichment(&mocks).await;
    mount_plain_routing(&mocks).await;
    mount_plain_note(&mocks).await;
    let a = Arc::new(TestApp::spawn(&db, &mocks, "").await);
    let b = Arc::new(TestApp::spawn(&db, &mocks, "").await);
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
    let app = TestApp::spawn(&db, &mocks, "api_tool = \"plain\"\n").await;
    let pool = db.pool().await;

    let mut client = pb::escalator_client::EscalatorClient::connect(app.grpc.clone())
        .await
        .unwrap();
    let request = pb::RouteRequest {
        ticket: Some(pb::Ticket {
            id: THREAD.into(),
            version: "v1".into(),
            subject: "Production down".into(),
            body: OUTAGE.into(),
            tier: "enterprise".into(),
            arr_usd: None,
            customer_id: CUSTOMER.into(),
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
    let app = TestApp::spawn(&db, &mocks, "api_tool = \"plain\"\n").await;
    let pool = db.pool().await;
    let mut client = pb::escalator_client::EscalatorClient::connect(app.grpc.clone())
        .await
        .unwrap();
    let ticket = pb::Ticket {
        id: THREAD.into(),
        version: "v1".into(),
        subject: "Production down".into(),
        body: OUTAGE.into(),
        tier: "enterprise".into(),
        arr_usd: None,
        customer_id: CUSTOMER.into(),
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

// ---------------------------------------------------------------------------------------------
// Error paths
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn plain_error_paths_answer_the_documented_statuses() {
    let db = TestDb::new().await;
    let mocks = Mocks::start().await;
    let app = TestApp::spawn(&db, &mocks, "").await;
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
