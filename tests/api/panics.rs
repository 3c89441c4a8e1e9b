//! A handler that fails unexpectedly: a classifier that panics on a marker, served over a real
//! socket. The caller gets `INTERNAL` with the generic message, the server carries on, and the
//! ticket's claim is released at once, so the retry is decided without waiting out the lease.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use async_trait::async_trait;
use escalator::{
    classifier::{Classifier, ClassifierError, Decider, OfflineClassifier},
    domain::{Classification, IdempotencyKey, Source, TicketContext},
    examples,
    grpc::{
        EscalatorService,
        pb::{
            ClassifyRequest, RouteRequest, escalator_client::EscalatorClient,
            escalator_server::EscalatorServer,
        },
    },
    store::Store,
    ticketing::NoActions,
    triage::{Triage, TriageSettings},
};
use tokio_stream::wrappers::TcpListenerStream;
use tokio_util::sync::CancellationToken;
use tonic::{Code, transport::Channel};

use crate::{both_backends, harness::ticket};

const MARKER: &str = "PANIC-MARKER";

/// Panics on tickets whose body holds [`MARKER`] while armed; otherwise fails like a timeout,
/// so the offline classifier decides.
struct PanicsOnMarker {
    armed: AtomicBool,
}

#[async_trait]
impl Classifier for PanicsOnMarker {
    fn model(&self) -> &str {
        "panics-on-marker"
    }

    async fn classify(&self, ctx: &TicketContext) -> Result<Classification, ClassifierError> {
        if self.armed.load(Ordering::SeqCst) && ctx.ticket.body().contains(MARKER) {
            panic!("classifier bug on {MARKER}");
        }
        Err(ClassifierError::Timeout)
    }
}

struct Served {
    grpc: EscalatorClient<Channel>,
    classifier: Arc<PanicsOnMarker>,
    shutdown: CancellationToken,
    server: tokio::task::JoinHandle<Result<(), tonic::transport::Error>>,
}

/// The real gRPC service over `store`, with a claim lease and an in-flight wait far longer than
/// the test allows, so only a released claim lets a retry through in time.
async fn serve(store: Arc<dyn Store>) -> Served {
    let examples = examples::parse("labels.csv", examples::EMBEDDED_LABELS).unwrap();
    let offline = Arc::new(OfflineClassifier::new(&examples, "classifier@test"));
    let classifier = Arc::new(PanicsOnMarker {
        armed: AtomicBool::new(true),
    });
    let decider = Decider::new(Some(classifier.clone()), offline);
    let triage = Triage::new(
        store,
        decider,
        Arc::new(NoActions),
        TriageSettings {
            claim_lease: Duration::from_secs(600),
            in_flight_wait: Duration::from_secs(60),
            ..TriageSettings::default()
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(EscalatorServer::new(EscalatorService::new(triage)))
            .serve_with_incoming_shutdown(
                TcpListenerStream::new(listener),
                shutdown.clone().cancelled_owned(),
            ),
    );
    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    Served {
        grpc: EscalatorClient::new(channel),
        classifier,
        shutdown,
        server,
    }
}

fn key(id: &str) -> IdempotencyKey {
    IdempotencyKey::new(Source::Api, id, "v1")
}

/// Well under `in_flight_wait` (60 s): a retry that had to wait out the claim fails here.
const RETRY_BOUND: Duration = Duration::from_secs(15);

both_backends! {
    async fn a_panicking_classify_answers_internal_and_its_retry_is_decided_at_once(store) {
        let mut s = serve(store.clone()).await;
        let t = ticket("T-P1", "Help", &format!("Our API is down {MARKER}"), "pro");
        let e = s.grpc.classify(ClassifyRequest { ticket: Some(t.clone()) }).await.unwrap_err();
        assert_eq!(e.code(), Code::Internal);
        assert_eq!(e.message(), "internal error");
        assert!(store.decision(&key("T-P1")).await.unwrap().is_none(), "nothing was logged");

        // The bug is fixed (or was transient): the caller's retry is decided now, not after
        // the claim lease, on the same connection.
        s.classifier.armed.store(false, Ordering::SeqCst);
        let retry = tokio::time::timeout(RETRY_BOUND, s.grpc.classify(ClassifyRequest { ticket: Some(t) }))
            .await
            .expect("the retry waited on the claim of the request that panicked")
            .unwrap()
            .into_inner();
        assert!(!retry.duplicate);
        let d = retry.decision.unwrap();
        assert_eq!(d.ticket_id, "T-P1");
        assert!(d.fallback, "the stand-in classifier times out; offline decides");
        assert!(store.decision(&key("T-P1")).await.unwrap().is_some());
        s.shutdown.cancel();
        s.server.await.unwrap().unwrap();
    }

    async fn a_panicking_route_answers_internal_dry_run_or_not_and_the_server_carries_on(store) {
        let mut s = serve(store.clone()).await;
        let t = ticket("T-P2", "Help", &format!("Refund please {MARKER}"), "pro");
        for dry_run in [true, false] {
            let e = s.grpc.route(RouteRequest { ticket: Some(t.clone()), dry_run }).await.unwrap_err();
            assert_eq!((e.code(), e.message()), (Code::Internal, "internal error"), "dry_run {dry_run}");
        }
        // Other tickets are unaffected while the bug is live.
        let other = ticket("T-P3", "Docs", "Where are the webhook docs?", "free");
        let ok = s.grpc.route(RouteRequest { ticket: Some(other), dry_run: false }).await.unwrap().into_inner();
        assert_eq!(ok.decision.unwrap().ticket_id, "T-P3");

        s.classifier.armed.store(false, Ordering::SeqCst);
        let retry = tokio::time::timeout(RETRY_BOUND, s.grpc.route(RouteRequest { ticket: Some(t), dry_run: false }))
            .await
            .expect("the retry waited on the claim of the request that panicked")
            .unwrap()
            .into_inner();
        assert!(!retry.duplicate);
        assert!(store.decision(&key("T-P2")).await.unwrap().is_some());
        s.shutdown.cancel();
        s.server.await.unwrap().unwrap();
    }
}

/// Before: `eval` dropped a ticket whose classification panicked and reported it as correct
/// (`if let Ok(r) = joined`; accuracy was `total - misses`).
#[tokio::test]
async fn eval_counts_a_ticket_whose_classifier_panicked_as_a_miss() {
    let text = format!(
        "ticket_id,subject,first_message,tier,severity,route,why_this_label\n\
         E-1,Docs,Where are the webhook docs?,free,routine,bot,w\n\
         E-2,Outage,Our API is down {MARKER},pro,on_fire,engineering,w\n\
         E-3,Lawyer,Our lawyer says this is a breach of contract.,pro,on_fire,engineering,w\n"
    );
    let examples = examples::parse("eval.csv", &text).unwrap();
    let offline = Arc::new(OfflineClassifier::new(&examples, "classifier@test"));
    let decider = Decider::new(
        Some(Arc::new(PanicsOnMarker {
            armed: AtomicBool::new(true),
        })),
        offline,
    );
    let weighting = escalator::weighting::Weighting::default();
    let report = escalator::evaluation::evaluate("eval.csv", &examples, &decider, &weighting).await;
    assert_eq!(report.total, 3);
    assert_eq!(report.failed, 1);
    assert!(report.correct <= 2, "a failed row is never correct");
    #[allow(clippy::cast_precision_loss)]
    let accuracy = report.correct as f64 / 3.0;
    assert!((report.accuracy - accuracy).abs() < 1e-9);
    assert_eq!(
        report.failed_by_expected[&escalator::domain::Severity::OnFire],
        1
    );
    // The other two fell back (the test classifier times out): classified, but by the offline
    // classifier, so misses of the model and the fallback margin of the matrix.
    let classified: usize = report.confusion.values().flat_map(|r| r.values()).sum();
    assert_eq!(classified, 0);
    assert_eq!(report.fallbacks, 2);
    assert_eq!(report.fallbacks_by_expected.values().sum::<usize>(), 2);
    assert_eq!(report.fallback_reasons["timeout"], 2);
    assert_eq!(report.correct, 0, "a fallback is never the model's hit");
    let miss = report.misses.iter().find(|m| m.ticket_id == "E-2").unwrap();
    assert_eq!(miss.predicted, None);
    assert_eq!(
        miss.error.as_deref(),
        Some("classification panicked: classifier bug on PANIC-MARKER")
    );
    assert!(
        report
            .to_string()
            .contains("E-2: expected on_fire, FAILED: classification panicked")
    );
}

/// A fresh process (the binary on its embedded defaults: a SQLite file, the offline
/// classifier) exports every labelled counter's known series at 0 before anything happened, so
/// an alert on `rate(escalator_worker_panics_total[5m]) > 0` or a dashboard panel has a series
/// to read from the first scrape on.
#[tokio::test]
async fn a_fresh_process_exports_every_known_counter_at_zero() {
    use std::process::{Command, Stdio};
    let dir = tempfile::tempdir().unwrap();
    fn port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }
    let http = port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_escalator"))
        .arg("serve")
        .env_clear()
        .env(
            "DATABASE_URL",
            format!("sqlite://{}", dir.path().join("fresh.db").display()),
        )
        .env("ESCALATOR_HTTP_ADDR", format!("127.0.0.1:{http}"))
        .env("ESCALATOR_GRPC_ADDR", format!("127.0.0.1:{}", port()))
        .env("ESCALATOR_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let client = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{http}/metrics");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let text = loop {
        if let Ok(r) = client.get(&url).send().await
            && r.status() == 200
        {
            break r.text().await.unwrap();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the service did not answer /metrics within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    child.kill().unwrap();
    child.wait().unwrap();
    for series in [
        "escalator_worker_panics_total{stage=\"decide\"} 0",
        "escalator_worker_panics_total{stage=\"act\"} 0",
        "escalator_worker_panics_total{stage=\"recover\"} 0",
        "escalator_worker_restarts_total{loop=\"outbox\"} 0",
        "escalator_action_failures_total{kind=\"plain.note\"} 0",
        "escalator_action_failures_total{kind=\"pylon.update\"} 0",
        "escalator_webhook_rejections_total{reason=\"bad_signature\",source=\"plain\"} 0",
        "escalator_duplicates_total{source=\"pylon\"} 0",
        "escalator_scores_total{outcome=\"failed\"} 0",
        "escalator_fallbacks_total{reason=\"timeout\"} 0",
        "escalator_claude_spend_cap_transitions_total{state=\"open\"} 0",
        "escalator_grpc_unauthenticated_total{reason=\"unknown\"} 0",
        "escalator_review_login_throttled_total{scope=\"global\"} 0",
        "escalator_enrichment_failures_total{source=\"plain\"} 0",
        "escalator_worker_restarts_total{loop=\"leases\"} 0",
        "escalator_unreadable_tickets_total{cause=\"auth\",source=\"pylon\"} 0",
        "escalator_unreadable_tickets_total{cause=\"not_found\",source=\"plain\"} 0",
    ] {
        assert!(text.contains(series), "missing {series} in:\n{text}");
    }
    // The offline classifier's decisions, by source and severity, from the first scrape.
    assert!(
        text.lines()
            .any(|l| l.starts_with("escalator_decisions_total{")
                && l.contains("severity=\"on_fire\"")
                && l.contains("source=\"plain\"")
                && l.ends_with(" 0")),
        "no zero decisions series for the offline classifier:\n{text}"
    );
}
