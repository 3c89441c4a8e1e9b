//! A generic OTLP/HTTP collector (standard `OTEL_EXPORTER_OTLP_*` settings) with ticket text
//! redacted: labels and usage are exported, subject and message are not.
#![allow(clippy::unwrap_used, unreachable_pub, missing_docs)]

#[allow(dead_code)]
#[path = "support/collector.rs"]
mod collector;

use std::collections::BTreeMap;

use collector::{Collector, attrs};
use escalator::{
    config::Settings,
    grpc::pb::{self, ClassifyRequest, escalator_client::EscalatorClient},
    startup::App,
    store::{self, StoreSettings},
    telemetry,
};
use tokio_util::sync::CancellationToken;

const SECRET_TEXT: &str = "Customer Jane Roe says the export deleted her invoices";

#[test]
fn redacted_ticket_text_never_leaves_the_process() {
    let col = Collector::start();
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("t.db").display());
    let endpoint = format!("{}/otlp", col.url());
    let env = BTreeMap::from([
        ("ESCALATOR_GRPC_ADDR", "127.0.0.1:0"),
        ("ESCALATOR_HTTP_ADDR", "127.0.0.1:0"),
        ("DATABASE_URL", db.as_str()),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
        (
            "OTEL_EXPORTER_OTLP_HEADERS",
            "authorization=Bearer%20collector-token",
        ),
        ("ESCALATOR_REDACT_TICKET_TEXT", "true"),
    ]);
    let settings = Settings::load(&env).unwrap();
    let (dispatch, guard) = telemetry::build(&settings.telemetry).unwrap();
    let _scope = tracing::dispatcher::set_default(&dispatch);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = store::connect(&StoreSettings {
            url: db.clone(),
            ..settings.store.clone()
        })
        .await
        .unwrap();
        let app = App::with_store(settings.clone(), store).await.unwrap();
        let grpc = app.grpc_addr().unwrap();
        let shutdown = CancellationToken::new();
        let server = tokio::spawn(app.run_until_stopped(shutdown.clone()));
        let mut client = EscalatorClient::connect(format!("http://{grpc}"))
            .await
            .unwrap();
        let t = pb::Ticket {
            id: "R-1".into(),
            subject: "Invoices gone".into(),
            body: SECRET_TEXT.into(),
            tier: "pro".into(),
            ..pb::Ticket::default()
        };
        let d = client
            .classify(ClassifyRequest { ticket: Some(t) })
            .await
            .unwrap()
            .into_inner()
            .decision
            .unwrap();
        assert_eq!(d.severity(), pb::Severity::OnFire);
        shutdown.cancel();
        server.await.unwrap().unwrap();
    });
    guard.shutdown();

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
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("d.db").display());
    let env = BTreeMap::from([
        ("ESCALATOR_GRPC_ADDR", "127.0.0.1:0"),
        ("ESCALATOR_HTTP_ADDR", "127.0.0.1:0"),
        ("DATABASE_URL", db.as_str()),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
        // Same as the other test in this binary: the redaction switch is process-wide.
        ("ESCALATOR_REDACT_TICKET_TEXT", "true"),
    ]);
    let settings = Settings::load(&env).unwrap();
    let (dispatch, guard) = telemetry::build(&settings.telemetry).unwrap();
    let _scope = tracing::dispatcher::set_default(&dispatch);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = store::connect(&StoreSettings {
            url: db.clone(),
            ..settings.store.clone()
        })
        .await
        .unwrap();
        let app = App::with_store(settings.clone(), store).await.unwrap();
        let grpc = app.grpc_addr().unwrap();
        let shutdown = CancellationToken::new();
        let server = tokio::spawn(app.run_until_stopped(shutdown.clone()));
        let mut client = EscalatorClient::connect(format!("http://{grpc}"))
            .await
            .unwrap();
        for i in 0..3 {
            let t = pb::Ticket {
                id: format!("D-{i}"),
                body: "How do I invite a teammate?".into(),
                ..pb::Ticket::default()
            };
            let d = client
                .classify(ClassifyRequest { ticket: Some(t) })
                .await
                .unwrap()
                .into_inner()
                .decision
                .unwrap();
            assert_eq!(d.severity(), pb::Severity::Routine);
        }
        shutdown.cancel();
        server.await.unwrap().unwrap();
    });
    guard.shutdown();
}
