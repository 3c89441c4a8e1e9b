//! The gRPC edge: a thin tonic service over the triage use case. Protobuf types never leave
//! this module; `TryFrom` turns them into domain values once, here.

use std::panic::AssertUnwindSafe;

use futures_util::FutureExt as _;
use tonic::{Request, Response, Status};
use tracing::Instrument as _;

use crate::{
    domain::{Decision, RawTicket, Route, Severity, Source, Ticket},
    error, telemetry,
    triage::{Outcome, Triage, TriageError},
};

/// Code generated from `proto/escalator/v1/escalator.proto`.
#[allow(missing_docs, unreachable_pub, clippy::all, clippy::pedantic)]
pub mod pb {
    tonic::include_proto!("escalator.v1");

    /// The encoded descriptor set, served by gRPC reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/escalator_descriptor.bin"));
}

/// The `escalator.v1.Escalator` service.
#[derive(Clone)]
pub struct EscalatorService {
    triage: Triage,
}

impl EscalatorService {
    /// A service over `triage`.
    pub fn new(triage: Triage) -> Self {
        Self { triage }
    }
}

fn ticket_from(t: Option<pb::Ticket>) -> Result<Ticket, Status> {
    let t = t.ok_or_else(|| Status::invalid_argument("invalid ticket: is required"))?;
    let raw = RawTicket {
        id: t.id,
        version: t.version,
        subject: t.subject,
        body: t.body,
        tier: t.tier,
        arr_usd: t.arr_usd,
        customer_id: t.customer_id,
    };
    Ticket::parse(Source::Api, raw, "ticket.").map_err(|e| Status::invalid_argument(e.to_string()))
}

impl From<Decision> for pb::Decision {
    fn from(d: Decision) -> Self {
        let severity = match d.severity {
            Severity::Routine => pb::Severity::Routine,
            Severity::Urgent => pb::Severity::Urgent,
            Severity::OnFire => pb::Severity::OnFire,
        };
        let route = match d.route {
            Route::Bot => pb::Route::Bot,
            Route::Human => pb::Route::Human,
            Route::Engineering => pb::Route::Engineering,
        };
        pb::Decision {
            decision_id: d.id,
            severity: severity.into(),
            route: route.into(),
            confidence: d.confidence,
            reasoning: d.reasoning,
            prompt_version: d.prompt_version,
            model: d.model,
            fallback: d.fallback,
            fallback_reason: d.fallback_reason.unwrap_or_default(),
            source: d.source.as_str().to_owned(),
            ticket_id: d.ticket_id,
            ticket_version: d.ticket_version,
            created_at: d
                .created_at
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        }
    }
}

impl EscalatorService {
    /// [`Self::traced`], with a panic anywhere in the handler answered `INTERNAL` with the
    /// generic message (the connection and the other requests on it carry on). A panic while
    /// deciding has already released the ticket's claim in [`Triage::decide`], so a retry is
    /// decided at once.
    async fn guarded(
        &self,
        name: &str,
        metadata: &tonic::metadata::MetadataMap,
        ticket: Option<pb::Ticket>,
        dry_run: bool,
    ) -> Result<Outcome, Status> {
        AssertUnwindSafe(self.traced(name, metadata, ticket, dry_run))
            .catch_unwind()
            .await
            .unwrap_or_else(|_panic| {
                Err(error::to_status(&TriageError::Unexpected(anyhow::anyhow!(
                    "the {name} handler panicked"
                ))))
            })
    }

    /// Runs one request in its own trace: a root span continuing the caller's `traceparent`,
    /// the ticket and decision recorded on it, errors mapped in one place.
    async fn traced(
        &self,
        name: &str,
        metadata: &tonic::metadata::MetadataMap,
        ticket: Option<pb::Ticket>,
        dry_run: bool,
    ) -> Result<Outcome, Status> {
        let span = telemetry::root_span(name, metadata);
        let trace = telemetry::trace_id(&span, metadata);
        let ticket = match ticket_from(ticket) {
            Ok(t) => t,
            Err(status) => {
                telemetry::record_error(&span, status.message());
                return Err(status);
            }
        };
        telemetry::record_ticket(&span, &ticket);
        let result: Result<Outcome, TriageError> = if dry_run {
            self.triage
                .dry_run(ticket, trace)
                .instrument(span.clone())
                .await
        } else {
            self.triage
                .decide(ticket, trace)
                .instrument(span.clone())
                .await
        };
        match result {
            Ok(outcome) => {
                telemetry::record_decision(&span, &outcome.decision, outcome.duplicate);
                Ok(outcome)
            }
            Err(e) => {
                telemetry::record_error(&span, &e.to_string());
                Err(error::to_status(&e))
            }
        }
    }
}

#[tonic::async_trait]
impl pb::escalator_server::Escalator for EscalatorService {
    async fn classify(
        &self,
        request: Request<pb::ClassifyRequest>,
    ) -> Result<Response<pb::ClassifyResponse>, Status> {
        let (metadata, _, req) = request.into_parts();
        let outcome = self
            .guarded("Classify", &metadata, req.ticket, false)
            .await?;
        Ok(Response::new(pb::ClassifyResponse {
            decision: Some(outcome.decision.into()),
            duplicate: outcome.duplicate,
        }))
    }

    async fn route(
        &self,
        request: Request<pb::RouteRequest>,
    ) -> Result<Response<pb::RouteResponse>, Status> {
        let (metadata, _, req) = request.into_parts();
        let outcome = self
            .guarded("Route", &metadata, req.ticket, req.dry_run)
            .await?;
        Ok(Response::new(pb::RouteResponse {
            decision: Some(outcome.decision.into()),
            duplicate: outcome.duplicate,
        }))
    }
}
