//! A generic OTLP/HTTP collector (standard `OTEL_EXPORTER_OTLP_*` settings) with ticket text
//! redacted: labels and usage are exported, subject and message are not. Its own test binary:
//! redaction is a process-global trace default (`telemetry::build`), so it would redact the
//! traces other tests assert on.
#![allow(clippy::unwrap_used, unreachable_pub, missing_docs)]

#[allow(dead_code)]
#[path = "support/collector.rs"]
mod collector;
#[allow(dead_code)]
#[path = "support/traced.rs"]
mod traced;

use collector::{Collector, attrs};
use escalator::grpc::pb::{self, ClassifyRequest};
use traced::traced;

const SECRET_TEXT: &str = "Customer Jane Roe says the export deleted her invoices";

#[test]
fn redacted_ticket_text_never_leaves_the_process() {
    let col = Collector::start();
    let endpoint = format!("{}/otlp", col.url());
    let t = traced(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
        (
            "OTEL_EXPORTER_OTLP_HEADERS",
            "authorization=Bearer%20collector-token",
        ),
        ("ESCALATOR_REDACT_TICKET_TEXT", "true"),
    ]);
    let _scope = tracing::dispatcher::set_default(&t.dispatch);
    t.rt.block_on(async {
        let mut app = t.start().await;
        let ticket = pb::Ticket {
            id: "R-1".into(),
            subject: "Invoices gone".into(),
            body: SECRET_TEXT.into(),
            tier: "pro".into(),
            ..pb::Ticket::default()
        };
        let d = app
            .grpc
            .classify(ClassifyRequest {
                ticket: Some(ticket),
            })
            .await
            .unwrap()
            .into_inner()
            .decision
            .unwrap();
        assert_eq!(d.severity(), pb::Severity::OnFire);
        app.stop().await;
    });
    t.guard.shutdown();

    let exports = col.requests("traces");
    assert!(!exports.is_empty());
    for r in &exports {
        assert_eq!(r.headers["authorization"], "Bearer collector-token");
        assert!(!r.headers.contains_key("x-langfuse-ingestion-version"));
        let raw = String::from_utf8_lossy(&r.body);
        assert!(
            !raw.contains("Jane Roe") && !raw.contains("Invoices gone"),
            "ticket text exported"
        );
    }
    let spans = col.spans();
    assert_eq!(spans.len(), 1);
    let a = attrs(&spans[0]);
    assert_eq!(a["langfuse.trace.metadata.severity"], "on_fire");
    assert_eq!(a["escalator.route"], "engineering");
    let input: serde_json::Value = serde_json::from_str(&a["langfuse.observation.input"]).unwrap();
    assert_eq!(input["ticket_id"], "R-1");
    assert!(input.get("first_message").is_none() && input.get("subject").is_none());
}

/// A collector that is down costs nothing: requests succeed and shutdown still completes.
#[test]
fn an_unreachable_collector_never_fails_a_request() {
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}/otlp", dead.local_addr().unwrap());
    drop(dead);
    let t = traced(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
        // Same as the other test in this binary: the redaction switch is process-wide.
        ("ESCALATOR_REDACT_TICKET_TEXT", "true"),
    ]);
    let _scope = tracing::dispatcher::set_default(&t.dispatch);
    t.rt.block_on(async {
        let mut app = t.start().await;
        for i in 0..3 {
            let ticket = pb::Ticket {
                id: format!("D-{i}"),
                body: "How do I invite a teammate?".into(),
                ..pb::Ticket::default()
            };
            let d = app
                .grpc
                .classify(ClassifyRequest {
                    ticket: Some(ticket),
                })
                .await
                .unwrap()
                .into_inner()
                .decision
                .unwrap();
            assert_eq!(d.severity(), pb::Severity::Routine);
        }
        app.stop().await;
    });
    t.guard.shutdown();
}
