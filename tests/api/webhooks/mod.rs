//! End-to-end tests of the webhook bridge: the real App on port 0 against a fresh PostgreSQL
//! database per test (`DATABASE_URL`, default `postgres://postgres@127.0.0.1:5432/postgres`),
//! with wiremock servers standing in for Plain's GraphQL API and Pylon's REST API
//! ([`crate::harness::Mocks`]).

mod enrichment;
mod errors;
mod followups;
mod notes;
mod plain;
mod pylon;
mod recovery;
mod replicas;
mod rotation;
mod unreadable;

use std::{collections::BTreeMap, io::Write as _, sync::Arc, time::Duration};

use crate::{
    harness::{Mocks, PLAIN_KEY, PLAIN_SECRET, PYLON_SECRET, PYLON_TOKEN, TestApp, sign},
    pg::TestDb,
};
use escalator::{
    config::Settings,
    domain::{Decision, RawTicket, Source, Ticket, Tier, work::NewDelivery},
    http::{HttpState, router},
    startup::{App, build_decider},
    store::{self, SqliteStore, Store, StoreSettings, prelude::*},
    ticketing::{
        Adapters, RoutingPlanner, note_html, note_marker, note_text,
        plain::{
            ADD_LABELS, ASSIGN_THREAD, CHANGE_PRIORITY, CREATE_NOTE, THREAD_FOR_ROUTING,
            THREAD_NOTES,
        },
    },
    triage::{Bridge, Triage},
};
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use wiremock::{
    Mock, ResponseTemplate,
    matchers::{body_json, header, method, path},
};

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

/// Settings for a test app; `actions_extra` is added to the `[actions]` table of [`CONFIG`].
fn settings(
    db: &TestDb,
    mocks: &Mocks,
    actions_extra: &str,
) -> (Settings, tempfile::NamedTempFile) {
    settings_with(db, mocks, actions_extra, "")
}

/// As [`settings`], with `tables` appended to the file (more tables, e.g. `[tiers.pro]`).
fn settings_with(
    db: &TestDb,
    mocks: &Mocks,
    actions_extra: &str,
    tables: &str,
) -> (Settings, tempfile::NamedTempFile) {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    let config = CONFIG.replace("[actions]\n", &format!("[actions]\n{actions_extra}"));
    file.write_all(config.as_bytes()).unwrap();
    file.write_all(tables.as_bytes()).unwrap();
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

/// The app for `settings` on its own database (`db`), with the webhook secrets of the mocks.
async fn spawn(db: &TestDb, mocks: &Mocks, actions_extra: &str) -> TestApp {
    let (s, config) = settings(db, mocks, actions_extra);
    TestApp::start(s, Some(config)).await
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
    let key = escalator::domain::IdempotencyKey::new(Source::Plain, THREAD, UPDATED_AT);
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
