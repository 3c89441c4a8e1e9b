//! Agents' overrides through the real webhook routes: a Plain priority or label change by an
//! agent is stored once as an `override` verdict (a redelivery is a duplicate), a change by
//! escalator's own machine user is ignored, nothing is re-routed, and overrides are counted
//! apart; a Pylon override trigger reads the issue back (mock Pylon API).

use std::{collections::BTreeMap, io::Write as _};

use escalator::{
    config::Settings,
    domain::{Severity, Source},
    review::{self, Origin, ReviewVerdict},
    startup::App,
    store::Store,
};
use hmac::{Hmac, Mac as _};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use wiremock::{
    Mock, MockServer, ResponseTemplate,
    matchers::{header, method, path},
};

use crate::{harness, review::seed};

const PLAIN_SECRET: &str = "plain-secret";
const PYLON_SECRET: &str = "pylon-secret";

const CONFIG: &str = r#"
[routes.engineering.plain]
label_type_ids = ["lt_eng"]
[routes.human.plain]
label_type_ids = ["lt_human"]
[routes.engineering.pylon]
tags = ["escalator", "on-fire"]
team_id = "team_eng"
[routes.human.pylon]
tags = ["escalator", "needs-human"]
[review]
plain_machine_user_id = "mu_escalator"
"#;

fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

fn thread(id: &str, priority: u8, labels: &[&str], by: Value) -> Value {
    json!({
        "id": id,
        "title": "Checkout fails",
        "priority": priority,
        "labels": labels.iter().map(|l| json!({"id": format!("l_{l}"), "labelType": {"id": l, "name": l}})).collect::<Vec<_>>(),
        "customer": {"id": "c_1"},
        "updatedAt": "2026-11-25T10:00:00.000Z",
        "updatedBy": by,
    })
}

fn change(event_id: &str, kind: &str, before: Value, after: Value) -> Vec<u8> {
    let mut payload = json!({"eventType": kind, "previousThread": before, "thread": after});
    if kind == "thread.thread_labels_changed" {
        payload["changeType"] = json!("ADDED");
    }
    json!({
        "id": event_id,
        "type": kind,
        "payload": payload,
        "webhookMetadata": {
            "webhookDeliveryAttemptTimestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        }
    })
    .to_string()
    .into_bytes()
}

struct Running {
    base: String,
    http: reqwest::Client,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    _config: tempfile::NamedTempFile,
}

impl Running {
    async fn post(
        &self,
        route: &str,
        sig_header: &str,
        secret: &str,
        body: Vec<u8>,
    ) -> (u16, Value) {
        let resp = self
            .http
            .post(format!("{}{route}", self.base))
            .header("content-type", "application/json")
            .header(sig_header, sign(secret, &body))
            .body(body)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }
}

async fn start(store: std::sync::Arc<dyn Store>, pylon: &MockServer) -> Running {
    let mut config = tempfile::NamedTempFile::new().unwrap();
    config.write_all(CONFIG.as_bytes()).unwrap();
    let path = config.path().to_str().unwrap().to_owned();
    let pylon_url = pylon.uri();
    let settings = Settings::load(&BTreeMap::from([
        ("ESCALATOR_GRPC_ADDR", "127.0.0.1:0"),
        ("ESCALATOR_HTTP_ADDR", "127.0.0.1:0"),
        ("ESCALATOR_CONFIG", path.as_str()),
        ("PLAIN_WEBHOOK_SECRET", PLAIN_SECRET),
        ("PYLON_WEBHOOK_SECRET", PYLON_SECRET),
        ("PYLON_API_TOKEN", "pylon-token"),
        ("PYLON_API_URL", pylon_url.as_str()),
    ]))
    .unwrap();
    let app = App::with_store(settings, store).await.unwrap();
    let base = format!("http://{}", app.http_addr().unwrap());
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(app.run_until_stopped(shutdown.clone()));
    Running {
        base,
        http: reqwest::Client::new(),
        shutdown,
        task,
        _config: config,
    }
}

#[sqlx::test(migrations = "migrations/sqlite")]
async fn plain_and_pylon_overrides_are_verdicts_stored_once(pool: sqlx::SqlitePool) {
    let store = harness::lite(pool);
    let day = crate::review::day();
    let at = chrono::TimeZone::from_utc_datetime(&chrono::Utc, &day.and_hms_opt(10, 0, 0).unwrap());
    let human = seed(
        store.as_ref(),
        Source::Plain,
        "th_a",
        "s",
        "b",
        Severity::Urgent,
        false,
        at,
    )
    .await;
    let other = seed(
        store.as_ref(),
        Source::Plain,
        "th_b",
        "s",
        "b",
        Severity::Urgent,
        false,
        at,
    )
    .await;
    let issue = seed(
        store.as_ref(),
        Source::Pylon,
        "iss_1",
        "s",
        "b",
        Severity::Urgent,
        false,
        at,
    )
    .await;
    let pylon = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/issues/iss_1"))
        .and(header("authorization", "Bearer pylon-token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "data": {"id": "iss_1", "tags": ["escalator", "needs-human"], "team": {"id": "team_eng"}},
            "request_id": "r1"
        })))
        .expect(2)
        .mount(&pylon)
        .await;
    let app = start(store.clone(), &pylon).await;
    let agent = json!({"actorType": "user", "userId": "u_agent"});
    let me = json!({"actorType": "machineUser", "machineUserId": "mu_escalator"});

    // An agent raises the priority from human's (1) to engineering's (0): an override.
    let body = || {
        change(
            "pEv_1",
            "thread.thread_priority_changed",
            thread("th_a", 1, &["lt_human"], agent.clone()),
            thread("th_a", 0, &["lt_human"], agent.clone()),
        )
    };
    let (status, v) = app
        .post(
            "/webhooks/plain",
            "Plain-Request-Signature",
            PLAIN_SECRET,
            body(),
        )
        .await;
    assert_eq!((status, v["status"].as_str()), (202, Some("accepted")));
    // Plain redelivers the same event: stored once.
    let (status, v) = app
        .post(
            "/webhooks/plain",
            "Plain-Request-Signature",
            PLAIN_SECRET,
            body(),
        )
        .await;
    assert_eq!((status, v["status"].as_str()), (200, Some("duplicate")));
    let h = store.reviews(&human.id).await.unwrap();
    assert_eq!(h.len(), 1);
    assert_eq!(
        (h[0].verdict, h[0].origin, h[0].reviewer.as_str()),
        (
            ReviewVerdict::Corrected(Severity::OnFire),
            Origin::Override,
            "u_agent"
        )
    );
    assert!(
        h[0].why
            .as_deref()
            .unwrap()
            .contains("from human to engineering in Plain (priority)")
    );

    // escalator's own label change is not an override; nor is one between the same route.
    let own = change(
        "pEv_2",
        "thread.thread_labels_changed",
        thread("th_b", 1, &[], me.clone()),
        thread("th_b", 1, &["lt_human"], me),
    );
    let (status, v) = app
        .post(
            "/webhooks/plain",
            "Plain-Request-Signature",
            PLAIN_SECRET,
            own,
        )
        .await;
    assert_eq!((status, v["status"].as_str()), (200, Some("ignored")));
    assert!(store.reviews(&other.id).await.unwrap().is_empty());
    // An agent adds engineering's label to a thread escalator labelled human: an override.
    let moved = change(
        "pEv_3",
        "thread.thread_labels_changed",
        thread("th_b", 1, &["lt_human"], agent.clone()),
        thread("th_b", 1, &["lt_human", "lt_eng"], agent.clone()),
    );
    let (status, _) = app
        .post(
            "/webhooks/plain",
            "Plain-Request-Signature",
            PLAIN_SECRET,
            moved,
        )
        .await;
    assert_eq!(status, 202);
    let h = store.reviews(&other.id).await.unwrap();
    assert_eq!(
        (h.len(), h[0].verdict),
        (1, ReviewVerdict::Corrected(Severity::OnFire))
    );

    // Pylon: the trigger rings; the issue now has engineering's team: an override, once.
    let bell = br#"{"issue_id": "iss_1", "event": "issue.routing_changed"}"#.to_vec();
    let (status, _) = app
        .post(
            "/webhooks/pylon",
            "X-Pylon-Signature",
            PYLON_SECRET,
            bell.clone(),
        )
        .await;
    assert_eq!(status, 202);
    let (status, v) = app
        .post("/webhooks/pylon", "X-Pylon-Signature", PYLON_SECRET, bell)
        .await;
    assert_eq!((status, v["status"].as_str()), (200, Some("duplicate")));
    let h = store.reviews(&issue.id).await.unwrap();
    assert_eq!(
        (h.len(), h[0].verdict),
        (1, ReviewVerdict::Corrected(Severity::OnFire))
    );
    assert!(h[0].why.as_deref().unwrap().contains("in Pylon (team)"));

    // Never re-routed: no actions, no new delivery; counted apart from sampled reviews; scored.
    for d in [&human, &other, &issue] {
        assert!(store.actions(&d.id).await.unwrap().is_empty());
    }
    assert_eq!(store.backlog().await.unwrap().deliveries_pending, 0);
    let t = review::tally(store.as_ref(), chrono_tz::UTC, day)
        .await
        .unwrap();
    assert_eq!((t.reviewed(), t.overrides), (0, 3));
    let scores = store
        .due_scores(chrono::Utc::now() + chrono::Duration::minutes(1), 20)
        .await
        .unwrap();
    assert_eq!(
        scores.len(),
        6,
        "routing_correct and corrected_severity per override"
    );
    app.shutdown.cancel();
    app.task.await.unwrap().unwrap();
}
