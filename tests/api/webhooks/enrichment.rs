//! Enrichment for the tier weighting: Plain from the places `[plain] tier_from` names (and the
//! tenant ARR field), Pylon from the issue's account (`GET /accounts/{id}` custom fields), each
//! against a mock asserting the exact request; a failing enrichment is retried, then the ticket
//! is decided with the default tier and flagged; a floor's change reaches the agent's note.

use escalator::domain::{IdempotencyKey, Severity, Tier, TierSource};

use super::*;

/// A routine question: the offline classifier says routine for it on a free or pro ticket.
const HOW_TO: &str = "How do I export a CSV of our dashboards?";

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

/// A Plain delivery of [`HOW_TO`] under a routine title.
fn plain_how_to() -> Vec<u8> {
    String::from_utf8(plain_body(HOW_TO))
        .unwrap()
        .replace("\"Production down\"", "\"Export question\"")
        .into_bytes()
}

/// The value of the metric line starting with `prefix` on `/metrics` (0 when absent).
async fn metric(app: &TestApp, prefix: &str) -> f64 {
    let (_, text) = app.get("/metrics").await;
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .map_or(0.0, |v| v.parse().unwrap())
}

fn plain_key() -> IdempotencyKey {
    IdempotencyKey::new(Source::Plain, THREAD, UPDATED_AT)
}

#[tokio::test]
async fn plain_reads_the_configured_places_and_a_floor_reaches_the_note() {
    let db = TestDb::new().await;
    let mocks = Mocks::start().await;
    plain_call(
        "threadForRouting",
        THREAD_FOR_ROUTING,
        json!({ "threadId": THREAD }),
    )
    .respond_with(ResponseTemplate::new(200).set_body_json(json!({
        "data": {"thread": {
            "id": THREAD,
            "tier": {"id": "tier_1", "name": "Pro", "externalId": "pro"},
            "tenant": {"id": "te_1", "name": "Acme", "externalId": null, "tier": null,
                "tenantFields": [
                    {"externalFieldId": "other", "value": {"__typename": "TenantFieldNumberValue", "numberValue": 1}},
                    {"externalFieldId": "arr_usd", "value": {"__typename": "TenantFieldNumberValue", "numberValue": 75000}}
                ]},
            "customer": {"id": CUSTOMER, "company": {"id": "co_1", "name": "Acme", "contractValue": 1000,
                "tier": {"id": "tier_2", "name": "Enterprise", "externalId": "enterprise"}}}
        }}
    })))
    .expect(1)
    .mount(&mocks.plain)
    .await;
    mount_plain_routing(&mocks).await;
    mount_plain_note(&mocks).await;
    let (s, config) = settings_with(
        &db,
        &mocks,
        "",
        "[plain]\ntier_from = [\"company\", \"thread\"]\narr_tenant_field = \"arr_usd\"\n\
         [tiers.enterprise]\nfloor = \"on_fire\"\n",
    );
    let app = TestApp::start(s, Some(config)).await;
    let pool = db.pool().await;
    assert_eq!(app.plain(plain_how_to()).await.0, 202);
    wait_for_actions(&pool, 4).await;
    let d = decision_of(&pool, &plain_key()).await;
    assert_eq!(
        d.tier,
        Tier::Enterprise,
        "company before thread, as configured"
    );
    assert_eq!(d.tier_source, Some(TierSource::PlainCompany));
    assert_eq!(
        d.arr_usd,
        Some(75_000.0),
        "the tenant field before the contract value"
    );
    assert!(!d.enrichment_failed);
    // The offline classifier judges the words of a how-to routine; the configured floor decides.
    assert_eq!(d.model_severity, Severity::Routine);
    assert_eq!(d.severity, Severity::OnFire);
    assert_eq!(d.weighting_rule.as_deref(), Some("tiers.enterprise"));
    assert_eq!(d.route.as_str(), "engineering");
    let notes = notes_received(&mocks).await;
    let text = notes[0]["variables"]["input"]["text"].as_str().unwrap();
    assert!(
        text.contains("Severity raised from routine by rule tiers.enterprise."),
        "{text}"
    );
    assert_eq!(text, note_text(&d));
    assert!(
        metric(
            &app,
            "escalator_weighting_changes_total{rule=\"tiers.enterprise\"}"
        )
        .await
            >= 1.0
    );
    app.stop().await;
}

#[tokio::test]
async fn a_failing_plain_enrichment_is_retried_then_the_default_is_used_and_flagged() {
    let db = TestDb::new().await;
    let mocks = Mocks::start().await;
    plain_call(
        "threadForRouting",
        THREAD_FOR_ROUTING,
        json!({ "threadId": THREAD }),
    )
    .respond_with(ResponseTemplate::new(500))
    .expect(3)
    .mount(&mocks.plain)
    .await;
    let (s, config) = settings_with(&db, &mocks, "", "[plain]\ndefault_tier = \"pro\"\n");
    let app = TestApp::start(s, Some(config)).await;
    let pool = db.pool().await;
    assert_eq!(app.plain(plain_how_to()).await.0, 202);
    let d = decision_of(&pool, &plain_key()).await;
    assert_eq!(d.tier, Tier::Pro);
    assert_eq!(d.tier_source, Some(TierSource::Default));
    assert!(d.enrichment_failed);
    let flagged: bool = sqlx::query_scalar("SELECT enrichment_failed FROM decisions")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(flagged);
    assert!(
        metric(
            &app,
            "escalator_enrichment_failures_total{source=\"plain\"}"
        )
        .await
            >= 1.0
    );
    app.stop().await;
}

fn pylon_issue(id: &str, account: &str) -> Value {
    json!({"data": {
        "id": id, "number": 7, "title": "Export",
        "body_html": format!("<p>{HOW_TO}</p>"),
        "state": "new", "requester": {"id": "ct_9", "email": "ops@acme.test"},
        "account": {"id": account}, "team": null, "assignee": null, "tags": []
    }, "request_id": "req_7"})
}

const PYLON_ACCOUNT_FIELDS: &str = "[pylon]\naccount_tier_field = \"plan\"\naccount_arr_field = \"arr\"\n\
    tier_values = { \"Enterprise Annual\" = \"enterprise\" }\n";

#[tokio::test]
async fn pylon_reads_the_issues_account_for_tier_and_arr() {
    let db = TestDb::new().await;
    let mocks = Mocks::start().await;
    let auth = format!("Bearer {PYLON_TOKEN}");
    Mock::given(method("GET"))
        .and(path("/issues/iss_7"))
        .and(header("authorization", auth.as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(pylon_issue("iss_7", "acc_9")))
        .expect(1)
        .mount(&mocks.pylon)
        .await;
    Mock::given(method("GET"))
        .and(path("/accounts/acc_9"))
        .and(header("authorization", auth.as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"data": {
            "id": "acc_9", "name": "Acme", "domain": "acme.test", "tags": [],
            "custom_fields": {
                "plan": {"slug": "plan", "value": "Enterprise Annual", "values": null},
                "arr": {"slug": "arr", "value": "120,000", "values": null}
            }
        }, "request_id": "req_8"})))
        .expect(1)
        .mount(&mocks.pylon)
        .await;
    Mock::given(method("POST"))
        .and(path("/issues/iss_7/note"))
        .and(header("authorization", auth.as_str()))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"data": {"id": "msg_7", "issue_id": "iss_7"}})),
        )
        .expect(1)
        .mount(&mocks.pylon)
        .await;
    let (s, config) = settings_with(&db, &mocks, "", PYLON_ACCOUNT_FIELDS);
    let app = TestApp::start(s, Some(config)).await;
    let pool = db.pool().await;
    let body = br#"{"issue_id":"iss_7","event":"issue.created"}"#.to_vec();
    assert_eq!(app.pylon(body).await.0, 202);
    wait_for_actions(&pool, 1).await;
    let d = decision_of(
        &pool,
        &IdempotencyKey::new(Source::Pylon, "iss_7", "issue.created"),
    )
    .await;
    assert_eq!(d.tier, Tier::Enterprise, "mapped by tier_values");
    assert_eq!(d.tier_source, Some(TierSource::PylonAccount));
    assert_eq!(d.arr_usd, Some(120_000.0));
    assert!(!d.enrichment_failed);
    assert_eq!(d.severity, Severity::Urgent, "enterprise is never routine");
    app.stop().await;
}

#[tokio::test]
async fn a_failing_pylon_account_read_is_retried_then_the_default_is_used_and_flagged() {
    let db = TestDb::new().await;
    let mocks = Mocks::start().await;
    let auth = format!("Bearer {PYLON_TOKEN}");
    Mock::given(method("GET"))
        .and(path("/issues/iss_8"))
        .and(header("authorization", auth.as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(pylon_issue("iss_8", "acc_10")))
        .expect(3)
        .mount(&mocks.pylon)
        .await;
    Mock::given(method("GET"))
        .and(path("/accounts/acc_10"))
        .and(header("authorization", auth.as_str()))
        .respond_with(ResponseTemplate::new(503).set_body_json(json!({"errors": ["unavailable"]})))
        .expect(3)
        .mount(&mocks.pylon)
        .await;
    let (s, config) = settings_with(&db, &mocks, "", PYLON_ACCOUNT_FIELDS);
    let app = TestApp::start(s, Some(config)).await;
    let pool = db.pool().await;
    let body = br#"{"issue_id":"iss_8","event":"issue.created"}"#.to_vec();
    assert_eq!(app.pylon(body).await.0, 202);
    let d = decision_of(
        &pool,
        &IdempotencyKey::new(Source::Pylon, "iss_8", "issue.created"),
    )
    .await;
    assert_eq!(d.tier, Tier::Free);
    assert_eq!(d.tier_source, Some(TierSource::Default));
    assert!(d.enrichment_failed);
    assert_eq!(d.severity, Severity::Routine);
    assert!(
        metric(
            &app,
            "escalator_enrichment_failures_total{source=\"pylon\"}"
        )
        .await
            >= 1.0
    );
    app.stop().await;
}
