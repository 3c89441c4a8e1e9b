//! Traces Langfuse understands, Prometheus metrics and routing scores, checked against a fake
//! Langfuse on 127.0.0.1 that decodes the OTLP protobufs the service really exports.
//! Its own test binary, not in `tests/api`: `telemetry::build` sets process-global trace
//! defaults (environment, release, redaction) and the metrics registry is per process, and
//! these tests assert exact exported attributes and metric values that other tests would move.
#![allow(clippy::unwrap_used, unreachable_pub, missing_docs)]

#[path = "support/collector.rs"]
mod collector;
#[path = "support/traced.rs"]
mod traced;

use collector::{Collector, attrs};
use escalator::{
    domain::IdempotencyKey,
    grpc::pb::{self, ClassifyRequest},
    telemetry::scores,
};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use traced::traced;

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_SPAN: &str = "00f067aa0ba902b7";
const LANGFUSE_KEYS: [(&str, &str); 4] = [
    ("LANGFUSE_PUBLIC_KEY", "pk-lf-test"),
    ("LANGFUSE_SECRET_KEY", "sk-lf-secret"),
    ("ESCALATOR_ENVIRONMENT", "staging"),
    ("ESCALATOR_RELEASE", "abc1234"),
];

async fn get(addr: std::net::SocketAddr, path: &str) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out
}

fn metric(text: &str, line_prefix: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(line_prefix))
        .and_then(|l| l.rsplit(' ').next())
        .map_or(0.0, |v| v.parse().unwrap())
}

#[test]
fn langfuse_traces_metrics_and_scores() {
    let lf = Collector::start();
    let url = lf.url();
    let t = traced(&[
        ("LANGFUSE_HOST", url.as_str()),
        LANGFUSE_KEYS[0],
        LANGFUSE_KEYS[1],
        LANGFUSE_KEYS[2],
        LANGFUSE_KEYS[3],
    ]);
    let _scope = tracing::dispatcher::set_default(&t.dispatch);

    let (decision_id, stored_trace, metrics_text, app) = t.rt.block_on(async {
        let mut app = t.start().await;
        let http = app.http;
        let before = get(http, "/metrics").await;

        let mut req = tonic::Request::new(ClassifyRequest {
            ticket: Some(pb::Ticket {
                id: "T-42".into(),
                subject: "Everything is down".into(),
                body: "Our production API is down, every request returns HTTP 503.".into(),
                tier: "enterprise".into(),
                arr_usd: Some(250_000.0),
                ..pb::Ticket::default()
            }),
        });
        req.metadata_mut().insert(
            "traceparent",
            format!("00-{TRACE_ID}-{PARENT_SPAN}-01").parse().unwrap(),
        );
        let d = app
            .grpc
            .classify(req)
            .await
            .unwrap()
            .into_inner()
            .decision
            .unwrap();
        // A duplicate and an invalid request show up in the metrics too.
        let mut again = tonic::Request::new(ClassifyRequest {
            ticket: Some(pb::Ticket {
                id: "T-42".into(),
                body: "x".into(),
                ..pb::Ticket::default()
            }),
        });
        again.metadata_mut().insert(
            "traceparent",
            format!("00-{TRACE_ID}-{PARENT_SPAN}-01").parse().unwrap(),
        );
        assert!(
            app.grpc
                .classify(again)
                .await
                .unwrap()
                .into_inner()
                .duplicate
        );
        let after = get(http, "/metrics").await;
        assert!(
            after.contains("content-type: text/plain; version=0.0.4"),
            "{after}"
        );
        let metrics_text = format!("{before}\n=====\n{after}");

        let key = IdempotencyKey::new(escalator::domain::Source::Api, "T-42", "1");
        let stored = app.store.decision(&key).await.unwrap().unwrap();
        (d.decision_id, stored.trace_id.clone(), metrics_text, app)
    });

    // The routing log links to the caller's trace.
    assert_eq!(stored_trace.as_deref(), Some(TRACE_ID));

    // Metrics: one decision, one duplicate, backlog gauges present.
    let (before, after) = metrics_text.split_once("\n=====\n").unwrap();
    let line = "escalator_decisions_total{model=\"offline\",route=\"engineering\",severity=\"on_fire\",source=\"api\"}";
    assert_eq!(metric(after, line) - metric(before, line), 1.0, "{after}");
    let dup = "escalator_duplicates_total{source=\"api\"}";
    assert_eq!(metric(after, dup) - metric(before, dup), 1.0);
    assert!(
        after.contains("escalator_action_backlog{status=\"pending\"} 0"),
        "{after}"
    );

    t.guard.flush();
    let exports = lf.requests("traces");
    assert!(!exports.is_empty(), "no spans exported");
    for r in &exports {
        assert_eq!(
            r.headers["authorization"],
            "Basic cGstbGYtdGVzdDpzay1sZi1zZWNyZXQ="
        );
        assert_eq!(r.headers["x-langfuse-ingestion-version"], "4");
        assert_eq!(r.headers["content-type"], "application/x-protobuf");
    }
    let spans = lf.spans();
    // Only escalator's own spans: two requests, two root spans, no library spans.
    assert_eq!(
        spans.len(),
        2,
        "{:#?}",
        spans.iter().map(attrs).collect::<Vec<_>>()
    );
    let root = spans
        .iter()
        .find(|s| attrs(s).get("escalator.duplicate").map(String::as_str) == Some("false"))
        .unwrap();
    assert_eq!(root.name, "Classify");
    assert_eq!(hex(&root.trace_id), TRACE_ID);
    assert_eq!(hex(&root.parent_span_id), PARENT_SPAN);
    let a = attrs(root);
    for (k, v) in [
        ("langfuse.trace.name", "escalator.triage"),
        ("langfuse.session.id", "T-42"),
        ("langfuse.trace.tags", "[escalator,api]"),
        ("langfuse.release", "abc1234"),
        ("langfuse.environment", "staging"),
        ("langfuse.trace.metadata.source", "api"),
        ("langfuse.trace.metadata.tier", "enterprise"),
        ("langfuse.trace.metadata.route", "engineering"),
        ("langfuse.trace.metadata.severity", "on_fire"),
        ("langfuse.trace.metadata.model", "offline"),
        ("langfuse.trace.metadata.decision_id", decision_id.as_str()),
        ("escalator.tier", "enterprise"),
        ("escalator.arr_usd", "250000"),
        ("escalator.tier_source", "request"),
        ("escalator.weighting.rule", "none"),
        ("escalator.weighting.changed", "false"),
        ("escalator.weighting.model_severity", "on_fire"),
        ("escalator.route", "engineering"),
        ("escalator.fallback", "false"),
        // Production down is a negative tone (offline), as the labels files have it.
        ("escalator.label.topic", "outage"),
        ("escalator.label.sentiment", "negative"),
        ("langfuse.trace.metadata.topic", "outage"),
        ("langfuse.trace.metadata.sentiment", "negative"),
    ] {
        assert_eq!(a.get(k).map(String::as_str), Some(v), "{k} in {a:#?}");
    }
    assert!(a["langfuse.trace.metadata.prompt_version"].starts_with("classifier@"));
    let input: serde_json::Value = serde_json::from_str(&a["langfuse.observation.input"]).unwrap();
    assert_eq!(
        input["first_message"],
        "Our production API is down, every request returns HTTP 503."
    );
    let output: serde_json::Value =
        serde_json::from_str(&a["langfuse.observation.output"]).unwrap();
    assert_eq!(output["severity"], "on_fire");
    assert_eq!(
        (output["topic"].as_str(), output["sentiment"].as_str()),
        (Some("outage"), Some("negative"))
    );
    // Noise off.
    assert!(
        a.keys().all(|k| !k.starts_with("code.")
            && !k.starts_with("thread.")
            && k != "target"
            && k != "busy_ns"),
        "{a:#?}"
    );

    // Scores: a review is written to the outbox, a Langfuse 500 leaves it pending, the next
    // round sends it; the body is the documented BOOLEAN score with an idempotent id.
    lf.script_scores(&[500]);
    let store = app.store.clone();
    t.rt.block_on(async {
        let key = IdempotencyKey::new(escalator::domain::Source::Api, "T-42", "1");
        let decision = store.decision(&key).await.unwrap().unwrap();
        let row = scores::review_score(&decision, false, Some("engineering -> human"));
        store.upsert_score(&row).await.unwrap();
        assert_eq!(row.id, format!("{TRACE_ID}-routing_correct"));
        let sender =
            scores::ScoreSender::new(t.settings.telemetry.langfuse.as_ref().unwrap(), "staging")
                .unwrap();
        let now = chrono::Utc::now();
        assert_eq!(
            escalator::worker::scores::send_due(store.as_ref(), &sender, now)
                .await
                .unwrap(),
            0
        );
        // Not due again until its back-off has passed.
        assert_eq!(
            escalator::worker::scores::send_due(store.as_ref(), &sender, now)
                .await
                .unwrap(),
            0
        );
        let later = now + chrono::Duration::minutes(5);
        assert_eq!(
            escalator::worker::scores::send_due(store.as_ref(), &sender, later)
                .await
                .unwrap(),
            1
        );
        assert_eq!(
            escalator::worker::scores::send_due(store.as_ref(), &sender, later)
                .await
                .unwrap(),
            0
        );
        app.stop().await;
    });
    let sent = lf.requests("scores");
    assert_eq!(sent.len(), 2, "one failed attempt, one success");
    let body: serde_json::Value = serde_json::from_slice(&sent[1].body).unwrap();
    assert_eq!(
        sent[1].headers["authorization"],
        "Basic cGstbGYtdGVzdDpzay1sZi1zZWNyZXQ="
    );
    assert_eq!(body["id"], format!("{TRACE_ID}-routing_correct"));
    assert_eq!(body["traceId"], TRACE_ID);
    assert_eq!(body["name"], "routing_correct");
    assert_eq!(body["value"], 0);
    assert_eq!(body["dataType"], "BOOLEAN");
    assert_eq!(body["comment"], "engineering -> human");
    assert_eq!(body["environment"], "staging");
    assert_eq!(body["metadata"]["decision_id"], decision_id);
    assert!(body.get("sessionId").is_none());
    t.guard.shutdown();
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn sign(secret: &str, body: &[u8]) -> String {
    use hmac::{Hmac, Mac as _};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

async fn post(
    addr: std::net::SocketAddr,
    path: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> u16 {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    s.write_all(body).await.unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out).await;
    out[9..12].parse().unwrap()
}

/// A Plain delivery is one trace: the webhook request (continuing the sender's traceparent) and
/// the worker's decision are spans of the same trace, whose id is in the routing log; refused
/// deliveries are counted by reason.
#[test]
fn a_webhook_delivery_and_its_decision_share_one_trace() {
    let lf = Collector::start();
    let url = lf.url();
    let t = traced(&[
        ("LANGFUSE_HOST", url.as_str()),
        LANGFUSE_KEYS[0],
        LANGFUSE_KEYS[1],
        LANGFUSE_KEYS[2],
        LANGFUSE_KEYS[3],
        ("PLAIN_WEBHOOK_SECRET", "whsec"),
    ]);
    let _scope = tracing::dispatcher::set_default(&t.dispatch);
    let (stored_trace, after) = t.rt.block_on(async {
        let app = t.start().await;
        let http = app.http;
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let body = serde_json::json!({
            "id": "pEv_trace", "type": "thread.thread_created",
            "payload": {"thread": {"id": "th_trace", "title": "Down", "previewText": "Our API is down for all users",
                "customer": {"id": "c_1"}, "updatedAt": now}},
            "webhookMetadata": {"webhookDeliveryAttemptTimestamp": now}
        })
        .to_string();
        let tp = format!("00-{TRACE_ID}-{PARENT_SPAN}-01");
        let sig = sign("whsec", body.as_bytes());
        let headers = [("Plain-Request-Signature", sig.clone()), ("traceparent", tp.clone())];
        assert_eq!(post(http, "/webhooks/plain", &headers, body.as_bytes()).await, 202);
        assert_eq!(post(http, "/webhooks/plain", &[("Plain-Request-Signature", "00".repeat(32))], body.as_bytes()).await, 401);
        let big = vec![b' '; 1024 * 1024 + 1];
        assert_eq!(post(http, "/webhooks/plain", &[("Plain-Request-Signature", sign("whsec", &big))], &big).await, 413);

        let key = IdempotencyKey::new(escalator::domain::Source::Plain, "th_trace", now.clone());
        let mut decision = None;
        for _ in 0..200 {
            if let Some(d) = app.store.decision(&key).await.unwrap() {
                decision = Some(d);
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        let decision = decision.expect("the worker decided the delivery");
        let after = get(http, "/metrics").await;
        app.stop().await;
        (decision.trace_id, after)
    });
    t.guard.shutdown();

    assert_eq!(stored_trace.as_deref(), Some(TRACE_ID));
    assert!(
        after.contains(
            "escalator_webhook_rejections_total{reason=\"bad_signature\",source=\"plain\"} 1"
        ),
        "{after}"
    );
    assert!(
        after.contains(
            "escalator_webhook_rejections_total{reason=\"too_large\",source=\"plain\"} 1"
        ),
        "{after}"
    );
    let spans = lf.spans();
    let webhook = spans
        .iter()
        .find(|s| {
            s.name == "webhook plain"
                && attrs(s).get("escalator.delivery").map(String::as_str) == Some("accepted")
        })
        .unwrap();
    let decide = spans
        .iter()
        .find(|s| s.name == "decide plain delivery")
        .unwrap();
    assert_eq!(hex(&webhook.trace_id), TRACE_ID);
    assert_eq!(hex(&webhook.parent_span_id), PARENT_SPAN);
    assert_eq!(decide.trace_id, webhook.trace_id);
    assert_eq!(decide.parent_span_id, webhook.span_id);
    let a = attrs(decide);
    assert_eq!(a["langfuse.session.id"], "th_trace");
    assert_eq!(a["langfuse.trace.metadata.source"], "plain");
    assert_eq!(a["langfuse.trace.metadata.route"], "engineering");
    assert_eq!(a["escalator.weighting.rule"], "none");
    assert_eq!(a["escalator.weighting.changed"], "false");
}

/// A weighting rule that changes an outcome says so in the trace: the rule, `changed`, and the
/// classifier's own severity beside the final one; and in the routing log.
#[test]
fn a_weighting_change_is_traced_with_the_rule_and_the_models_severity() {
    let lf = Collector::start();
    let url = lf.url();
    let mut config = tempfile::NamedTempFile::new().unwrap();
    std::io::Write::write_all(&mut config, b"[tiers.pro]\nfloor = \"urgent\"\n").unwrap();
    let path = config.path().to_str().unwrap().to_owned();
    let t = traced(&[
        ("LANGFUSE_HOST", url.as_str()),
        LANGFUSE_KEYS[0],
        LANGFUSE_KEYS[1],
        LANGFUSE_KEYS[2],
        LANGFUSE_KEYS[3],
        ("ESCALATOR_CONFIG", path.as_str()),
    ]);
    let _scope = tracing::dispatcher::set_default(&t.dispatch);
    let (stored, app) = t.rt.block_on(async {
        let mut app = t.start().await;
        app.grpc
            .classify(tonic::Request::new(ClassifyRequest {
                ticket: Some(pb::Ticket {
                    id: "T-W1".into(),
                    subject: "Export".into(),
                    body: "How do I export a CSV of our dashboards?".into(),
                    tier: "pro".into(),
                    arr_usd: Some(12_000.0),
                    ..pb::Ticket::default()
                }),
            }))
            .await
            .unwrap();
        let key = IdempotencyKey::new(escalator::domain::Source::Api, "T-W1", "1");
        let stored = app.store.decision(&key).await.unwrap().unwrap();
        (stored, app)
    });
    assert_eq!(stored.weighting_rule.as_deref(), Some("tiers.pro"));
    assert_eq!(stored.model_severity.as_str(), "routine");
    assert_eq!(stored.severity.as_str(), "urgent");
    t.guard.flush();
    let spans = lf.spans();
    let root = spans
        .iter()
        .find(|s| attrs(s).contains_key("escalator.weighting.rule"))
        .unwrap_or_else(|| panic!("{:#?}", spans.iter().map(attrs).collect::<Vec<_>>()));
    let a = attrs(root);
    for (k, v) in [
        ("escalator.weighting.rule", "tiers.pro"),
        ("escalator.weighting.changed", "true"),
        ("escalator.weighting.model_severity", "routine"),
        ("escalator.severity", "urgent"),
        ("escalator.route", "human"),
        ("escalator.tier", "pro"),
        ("escalator.tier_source", "request"),
        ("escalator.arr_usd", "12000"),
    ] {
        assert_eq!(a.get(k).map(String::as_str), Some(v), "{k} in {a:#?}");
    }
    assert!(
        !a.contains_key("escalator.tier_rule"),
        "the input-computed rule is gone"
    );
    let output: serde_json::Value =
        serde_json::from_str(&a["langfuse.observation.output"]).unwrap();
    assert_eq!(output["model_severity"], "routine");
    assert_eq!(output["weighting_rule"], "tiers.pro");
    t.rt.block_on(app.stop());
}

/// The authenticated caller's name is on its decision and its trace (so both split by caller),
/// and `/metrics` counts its calls and the refused ones, never naming a token.
#[test]
fn an_authenticated_callers_name_is_on_its_trace_decision_and_metrics() {
    const TOKEN: &str = "ci-bot-token-0123456789";
    let lf = Collector::start();
    let url = lf.url();
    let mut callers = tempfile::NamedTempFile::new().unwrap();
    std::io::Write::write_all(&mut callers, format!("ci-bot {TOKEN}\n").as_bytes()).unwrap();
    let path = callers.path().to_str().unwrap().to_owned();
    let t = traced(&[
        ("LANGFUSE_HOST", url.as_str()),
        LANGFUSE_KEYS[0],
        LANGFUSE_KEYS[1],
        LANGFUSE_KEYS[2],
        LANGFUSE_KEYS[3],
        ("ESCALATOR_GRPC_CALLERS_FILE", path.as_str()),
    ]);
    let _scope = tracing::dispatcher::set_default(&t.dispatch);
    let (stored, metrics, app) = t.rt.block_on(async {
        let mut app = t.start().await;
        let request = || {
            tonic::Request::new(ClassifyRequest {
                ticket: Some(pb::Ticket {
                    id: "T-C1".into(),
                    body: "How do I export a CSV of our dashboards?".into(),
                    ..pb::Ticket::default()
                }),
            })
        };
        let refused = app.grpc.classify(request()).await.unwrap_err();
        assert_eq!(refused.code(), tonic::Code::Unauthenticated);
        let mut req = request();
        req.metadata_mut()
            .insert("authorization", format!("Bearer {TOKEN}").parse().unwrap());
        app.grpc.classify(req).await.unwrap();
        let key = IdempotencyKey::new(escalator::domain::Source::Api, "T-C1", "1");
        let stored = app.store.decision(&key).await.unwrap().unwrap();
        let metrics = get(app.http, "/metrics").await;
        (stored, metrics, app)
    });
    assert_eq!(stored.caller.as_deref(), Some("ci-bot"));
    assert_eq!(
        metric(
            &metrics,
            "escalator_grpc_calls_total{caller=\"ci-bot\",method=\"Classify\"}"
        ),
        1.0,
        "{metrics}"
    );
    assert_eq!(
        metric(
            &metrics,
            "escalator_grpc_unauthenticated_total{reason=\"missing\"}"
        ),
        1.0,
        "{metrics}"
    );
    assert!(!metrics.contains(TOKEN));
    t.guard.flush();
    let spans = lf.spans();
    let root = spans
        .iter()
        .find(|s| s.name == "Classify")
        .unwrap_or_else(|| panic!("{:#?}", spans.iter().map(|s| &s.name).collect::<Vec<_>>()));
    let a = attrs(root);
    assert_eq!(
        a.get("langfuse.trace.metadata.caller").map(String::as_str),
        Some("ci-bot"),
        "{a:#?}"
    );
    assert!(
        spans
            .iter()
            .all(|s| !attrs(s).values().any(|v| v.contains(TOKEN)))
    );
    t.rt.block_on(app.stop());
}
