//! The gRPC edge: a thin tonic service over the triage use case. Protobuf types never leave
//! this module: `ticket_from` parses a request's ticket into a domain value once, here, and
//! `From<Decision>` writes the answer. Who may call is checked
//! in [`auth`] (a caller's bearer token) before a handler runs; [`settings`] holds the callers
//! file, reflection and TLS.

pub mod auth;
pub mod settings;

use std::panic::AssertUnwindSafe;

use futures_util::FutureExt as _;
use tonic::{Request, Response, Status};

use crate::{
    domain::{
        Decision, DomainError, MAX_BODY_CHARS, RawTicket, Route, Severity, Source, Ticket, Tier,
        conversation::{Author, Conversation, Message},
    },
    error,
    triage::{Mode, Outcome, Triage, TriageError},
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

/// The request's ticket as a domain value, sent by `caller`; an invalid one is
/// [`TriageError::InvalidInput`], mapped to a status in `crate::error` like every other failure.
fn ticket_from(
    t: Option<pb::Ticket>,
    caller: Option<&auth::Caller>,
) -> Result<Ticket, TriageError> {
    let t = t.ok_or_else(|| DomainError::invalid("ticket", "is required"))?;
    let conversation = conversation_from(&t.body, t.conversation)?;
    let body = match &conversation {
        // Validated as the body is; the conversation's rendering replaces it below.
        Some(c) if t.body.trim().is_empty() => c
            .messages()
            .last()
            .map(|m| m.text.clone())
            .unwrap_or_default(),
        _ => t.body,
    };
    let raw = RawTicket {
        tier: Tier::parse_given("ticket.tier", &t.tier)?,
        id: t.id,
        version: t.version,
        subject: t.subject,
        body,
        arr_usd: t.arr_usd,
        customer_id: t.customer_id,
    };
    let ticket =
        Ticket::parse(Source::Api, raw, "ticket.")?.with_caller(caller.map(|c| c.0.clone()));
    Ok(match conversation {
        Some(c) => ticket.with_conversation(c),
        None => ticket,
    })
}

/// The request's conversation (`None` when it has none), with `body`, when set, as the first
/// customer message before every other.
fn conversation_from(
    body: &str,
    messages: Vec<pb::Message>,
) -> Result<Option<Conversation>, DomainError> {
    if messages.is_empty() {
        return Ok(None);
    }
    let mut out = Vec::with_capacity(messages.len() + 1);
    for (i, m) in messages.into_iter().enumerate() {
        let field = |f: &str| format!("ticket.conversation[{i}].{f}");
        let author = match pb::Author::try_from(m.author) {
            Ok(pb::Author::Customer) => Author::Customer,
            Ok(pb::Author::Agent) => Author::Agent,
            _ => {
                return Err(DomainError::invalid(
                    field("author"),
                    "must be CUSTOMER or AGENT",
                ));
            }
        };
        let sent_at = chrono::DateTime::parse_from_rfc3339(m.sent_at.trim())
            .map_err(|e| DomainError::invalid(field("sent_at"), format!("is not RFC 3339: {e}")))?
            .with_timezone(&chrono::Utc);
        if m.text.trim().is_empty() {
            return Err(DomainError::invalid(field("text"), "is required"));
        }
        if m.text.chars().count() > MAX_BODY_CHARS {
            return Err(DomainError::invalid(
                field("text"),
                format!("is longer than {MAX_BODY_CHARS} characters"),
            ));
        }
        out.push(Message {
            id: if m.id.is_empty() {
                format!("m{i}")
            } else {
                m.id
            },
            author,
            sent_at,
            text: m.text,
        });
    }
    if !body.trim().is_empty() {
        let first = out.iter().map(|m| m.sent_at).min().unwrap_or_default();
        out.insert(
            0,
            Message {
                id: "body".to_owned(),
                author: Author::Customer,
                sent_at: first,
                text: body.to_owned(),
            },
        );
    }
    Ok(Some(Conversation::new(out)))
}

impl From<Decision> for pb::Decision {
    fn from(d: Decision) -> Self {
        let severity = |s: Severity| match s {
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
            severity: severity(d.severity).into(),
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
            topic: d.topic.unwrap_or_default(),
            sentiment: d
                .sentiment
                .map(|s| s.as_str().to_owned())
                .unwrap_or_default(),
            model_severity: severity(d.model_severity).into(),
            weighting_rule: d.weighting_rule.unwrap_or_default(),
            tier: d.tier.as_str().to_owned(),
            tier_source: d
                .tier_source
                .map(|s| s.as_str().to_owned())
                .unwrap_or_default(),
            supersedes: d.supersedes.unwrap_or_default(),
        }
    }
}

impl EscalatorService {
    /// Runs one request in its own trace ([`Triage::traced`]), errors mapped in one place
    /// (`crate::error`), and a panic anywhere in the handler answered `INTERNAL` with the
    /// generic message (the connection and the other requests on it carry on). A panic while
    /// deciding has already released the ticket's claim in [`Triage::decide`], so a retry is
    /// decided at once.
    async fn guarded(
        &self,
        name: &str,
        request: (tonic::metadata::MetadataMap, tonic::Extensions),
        ticket: Option<pb::Ticket>,
        mode: Mode,
    ) -> Result<Outcome, Status> {
        let (metadata, extensions) = request;
        let caller = extensions.get::<auth::Caller>();
        if let Some(c) = caller {
            crate::telemetry::metrics::metrics()
                .auth
                .grpc_calls
                .with_label_values(&[c.0.as_str(), name])
                .inc();
        }
        AssertUnwindSafe(
            self.triage
                .traced(name, &metadata, ticket_from(ticket, caller), mode),
        )
        .catch_unwind()
        .await
        .unwrap_or_else(|_panic| {
            Err(TriageError::Unexpected(anyhow::anyhow!(
                "the {name} handler panicked"
            )))
        })
        .map_err(|e| error::to_status(&e))
    }
}

#[tonic::async_trait]
impl pb::escalator_server::Escalator for EscalatorService {
    async fn classify(
        &self,
        request: Request<pb::ClassifyRequest>,
    ) -> Result<Response<pb::ClassifyResponse>, Status> {
        let (metadata, extensions, req) = request.into_parts();
        let outcome = self
            .guarded(
                "Classify",
                (metadata, extensions),
                req.ticket,
                Mode::LogOnly,
            )
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
        let (metadata, extensions, req) = request.into_parts();
        let outcome = self
            .guarded(
                "Route",
                (metadata, extensions),
                req.ticket,
                if req.dry_run {
                    Mode::DryRun
                } else {
                    Mode::Route
                },
            )
            .await?;
        Ok(Response::new(pb::RouteResponse {
            decision: Some(outcome.decision.into()),
            duplicate: outcome.duplicate,
        }))
    }
}
