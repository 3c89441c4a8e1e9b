//! The two ports the ticketing tools sit behind ([`Ticketing`], [`ActionPlanner`]), their errors,
//! and the plumbing each adapter shares: a typed action as its outbox row and back, a stored
//! delivery as the adapter's payload, a failed enrichment call, a decision's note lines, the
//! bits of an HTTP answer both read.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use reqwest::header::HeaderMap;
use serde::{Serialize, de::DeserializeOwned};

use super::{overrides, settings::RouteTargets};
use crate::domain::{
    Decision, DomainError, FollowUpChange, NoteOnly, Route, Source, Ticket, ToolRouting,
    work::{Action, ActionKind, NewAction, NewDelivery, PendingDelivery},
};

/// Why a webhook delivery was refused. Mapped to an HTTP status in `crate::error`.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// The route's secret (or the API credential it needs) is not configured: every request is
    /// refused rather than accepted unsigned.
    #[error("the {tool} webhook is not configured on this server ({missing} is unset)")]
    NotConfigured {
        /// Which webhook.
        tool: Source,
        /// The environment variable that is missing.
        missing: &'static str,
    },
    /// The signature header is absent.
    #[error("missing {0} header")]
    MissingSignature(&'static str),
    /// The signature does not match the body.
    #[error("invalid signature")]
    BadSignature,
    /// A signed delivery outside the replay window.
    #[error("delivery timestamp {0} is outside the replay window")]
    Stale(String),
    /// The body is not JSON.
    #[error("body is not valid JSON: {0}")]
    Malformed(String),
    /// A field the bridge needs is missing or has the wrong type; names the field.
    #[error("missing or invalid field `{0}`")]
    MissingField(String),
    /// A field failed domain validation; the message names the field.
    #[error(transparent)]
    Invalid(#[from] DomainError),
}

/// Why a call to a ticketing tool failed. [`TicketingError::is_retryable`] decides between
/// "back off and retry" and "give up and record".
#[derive(Debug, thiserror::Error)]
pub enum TicketingError {
    /// The tool asked us to slow down, or our own rate limiter has no token yet.
    #[error("rate limited; retry in {retry_after:?}")]
    RateLimited {
        /// When to try again.
        retry_after: Duration,
    },
    /// The object does not exist in the tool.
    #[error("not found: {0}")]
    NotFound(String),
    /// The tool failed (5xx, an INTERNAL mutation error, an unreadable answer): retry.
    #[error("upstream error (HTTP {status}): {message}")]
    Upstream {
        /// The HTTP status.
        status: u16,
        /// What the tool said.
        message: String,
    },
    /// The tool rejected the request for good (validation, authentication, permission).
    #[error("rejected (HTTP {status}): {message}")]
    Rejected {
        /// The HTTP status.
        status: u16,
        /// What the tool said.
        message: String,
    },
    /// The request did not reach the tool or its answer did not arrive (connect, timeout).
    #[error("transport error")]
    Transport(#[source] reqwest::Error),
    /// The credential needed for the call is not configured; retried, so setting it and
    /// restarting completes the work.
    #[error("{0} is not set")]
    NotConfigured(&'static str),
    /// The stored payload cannot be used (a bug or a manual edit): never retried.
    #[error("invalid payload: {0}")]
    InvalidPayload(String),
    /// The tool's ticket is not one the domain accepts (e.g. an empty message): no attempt
    /// will change that, so it is decided safely at once (a person reads it). Both adapters
    /// answer this for a ticket `Ticket::parse` refuses.
    #[error("invalid ticket: {0}")]
    InvalidTicket(#[source] DomainError),
}

impl TicketingError {
    /// Whether another attempt may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            TicketingError::RateLimited { .. }
            | TicketingError::Upstream { .. }
            | TicketingError::Transport(_)
            | TicketingError::NotConfigured(_) => true,
            TicketingError::NotFound(_)
            | TicketingError::Rejected { .. }
            | TicketingError::InvalidPayload(_)
            | TicketingError::InvalidTicket(_) => false,
        }
    }

    /// Whether the tool refused our credential (HTTP 401 or 403): a rotated or revoked token,
    /// or one without the scope. Never retried; the operator has to fix the token.
    pub fn is_unauthorised(&self) -> bool {
        matches!(
            self,
            TicketingError::Rejected {
                status: 401 | 403,
                ..
            }
        )
    }

    /// The delay the tool asked for, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            TicketingError::RateLimited { retry_after } => Some(*retry_after),
            _ => None,
        }
    }
}

/// What a verified, parsed webhook asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Accepted {
    /// A new ticket (or a new version of one) to store and decide.
    Ticket(NewDelivery),
    /// A change in the tool that may be an agent's override of escalator's routing
    /// (judged by `crate::review::overrides`, read through [`Ticketing::route_change`]); never
    /// re-routes the ticket.
    Override(overrides::Observed),
    /// An event the bridge does not act on; acknowledged and ignored.
    Ignored {
        /// The event type, for the log.
        event_type: String,
    },
}

/// One ticketing tool.
#[async_trait]
pub trait Ticketing: Send + Sync {
    /// Which source this adapter serves.
    fn source(&self) -> Source;

    /// Verifies the signature over the raw `body` and parses it leniently. `now` is the clock
    /// for the replay window.
    ///
    /// # Errors
    /// [`WebhookError`] for an unconfigured route, a bad or missing signature, a stale
    /// delivery, malformed JSON or a missing field.
    fn accept(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        now: DateTime<Utc>,
    ) -> Result<Accepted, WebhookError>;

    /// The payload version of a signed delivery the parse refused, when it can be read, so
    /// the weekly audit can tie parse failures to a tool update (none by default).
    fn webhook_version(&self, body: &[u8]) -> Option<String> {
        let _ = body;
        None
    }

    /// Builds the ticket for a stored delivery: fetches what the webhook did not carry and adds
    /// tier and ARR.
    ///
    /// # Errors
    /// [`TicketingError`]; retryable ones are tried again later;
    /// [`TicketingError::InvalidTicket`] when the domain refuses the ticket.
    async fn ticket(&self, delivery: &PendingDelivery) -> Result<Ticket, TicketingError>;

    /// The thread's messages as the tool has them, for a follow-up delivery (key version
    /// `message:…`) whose webhook carries no message (Pylon's doorbell); `None` when the
    /// delivery carries its message (Plain) or is not a follow-up.
    ///
    /// # Errors
    /// [`TicketingError`] when the tool cannot answer.
    async fn thread_messages(
        &self,
        d: &PendingDelivery,
    ) -> Result<Option<Vec<crate::domain::conversation::Message>>, TicketingError> {
        let _ = d;
        Ok(None)
    }

    /// How `observed` (an agent's change this adapter's webhook reported) moved the ticket
    /// between routes, read against the routes' `targets` in the tool; `decided` is the route
    /// escalator logged for the ticket. `None` when it moved it to no other route (or the
    /// change is not this tool's).
    ///
    /// # Errors
    /// [`TicketingError`] when the tool has to be asked (Pylon's trigger carries no state) and
    /// cannot answer.
    async fn route_change(
        &self,
        observed: &overrides::Observed,
        targets: &RouteTargets,
        decided: Route,
    ) -> Result<Option<overrides::RouteChange>, TicketingError>;

    /// Executes one logged action. Must be safe to repeat after a crash between the tool's
    /// answer and the log's update.
    ///
    /// # Errors
    /// [`TicketingError`]; retryable ones are tried again later with backoff.
    async fn execute(&self, action: &Action) -> Result<(), TicketingError>;
}

/// Builds the actions a decision implies (empty when the ticket's source has nothing to act on).
pub trait ActionPlanner: Send + Sync {
    /// The actions for `decision` on `ticket`, written in the same transaction as the decision.
    fn plan(&self, ticket: &Ticket, decision: &Decision) -> Vec<NewAction>;

    /// The actions of a follow-up's re-decision that raised the severity: for
    /// [`FollowUpChange::Raise`] the route's changes as for a new ticket (the previous route's
    /// labels swapped for the new one's) and a note saying what changed and why; for
    /// [`FollowUpChange::WouldRaise`] the note alone. None by default.
    fn plan_follow_up(
        &self,
        ticket: &Ticket,
        decision: &Decision,
        change: FollowUpChange,
    ) -> Vec<NewAction> {
        let _ = (ticket, decision, change);
        Vec::new()
    }

    /// How `now` (the ticket's routing as its tool reports it, re-read for a follow-up)
    /// differs from what escalator's done routing `acted` (the thread's executed actions other
    /// than notes, oldest first) set, in words for the log (ids and numbers, no ticket text);
    /// `None` when it does not, or when escalator set nothing there to compare. A field
    /// escalator never set has no baseline and is not compared. None by default.
    fn routing_moved(
        &self,
        ticket: &Ticket,
        now: &ToolRouting,
        acted: &[Action],
    ) -> Option<String> {
        let _ = (ticket, now, acted);
        None
    }
}

/// A planner that plans nothing (decisions are logged, nobody is told).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoActions;

impl ActionPlanner for NoActions {
    fn plan(&self, _ticket: &Ticket, _decision: &Decision) -> Vec<NewAction> {
        Vec::new()
    }
}

/// A typed action as the outbox row it is stored as. The action enums are adjacently tagged
/// (`kind`, `payload`), exactly the two columns, and their tags are the [`ActionKind`]
/// spellings, so the row is the enum's serde form.
pub(super) fn to_row<T: ToolAction>(action: &T) -> NewAction {
    // Serialising a derived enum of strings and numbers cannot fail.
    let mut v = serde_json::to_value(action).unwrap_or_default();
    NewAction {
        kind: action.kind(),
        payload: v
            .get_mut("payload")
            .map(serde_json::Value::take)
            .unwrap_or_default(),
    }
}

/// A tool's typed action: serialised as its outbox row, tagged with its [`ActionKind`].
pub(super) trait ToolAction: Serialize {
    /// The kind it is stored as (its serde tag; a test keeps the two equal).
    fn kind(&self) -> ActionKind;
}

/// An outbox row as the adapter's typed action; a row that does not decode (a bug or a manual
/// edit) is [`TicketingError::InvalidPayload`], never retried.
pub(super) fn from_row<T: DeserializeOwned>(a: &Action) -> Result<T, TicketingError> {
    serde_json::from_value(serde_json::json!({ "kind": a.kind, "payload": a.payload }))
        .map_err(|e| TicketingError::InvalidPayload(format!("{}: {e}", a.kind)))
}

/// A stored delivery's payload as the adapter's typed shape (the one it stored at accept;
/// unknown keys are skipped).
pub(super) fn from_delivery<T: DeserializeOwned>(d: &PendingDelivery) -> Result<T, TicketingError> {
    T::deserialize(&d.payload).map_err(|e| TicketingError::InvalidPayload(e.to_string()))
}

/// A failed enrichment call of delivery `d`: `Err` (retry the delivery) while the error is
/// retryable and `d` has attempts left under `max_attempts`, and always for a credential the
/// tool refuses ([`TicketingError::is_unauthorised`]: the ticket cannot be read as the tool
/// has it, so the worker logs the safe decision naming the cause); otherwise it is counted in
/// `escalator_enrichment_failures_total{source}`, logged at WARN (key and cause, no ticket
/// text) and `Ok`: the caller decides with the default tier and flags `enrichment_failed`.
pub(super) fn enrichment_failed(
    source: Source,
    d: &PendingDelivery,
    e: TicketingError,
    max_attempts: u32,
) -> Result<(), TicketingError> {
    if (e.is_retryable() && d.attempts < max_attempts) || e.is_unauthorised() {
        return Err(e);
    }
    crate::telemetry::metrics::metrics()
        .enrichment_failures
        .with_label_values(&[source.as_str()])
        .inc();
    tracing::warn!(
        key = %d.key,
        source = source.as_str(),
        attempts = d.attempts,
        error = %crate::causes::chain(&e),
        "enrichment failed; deciding with the default tier (flagged enrichment_failed)"
    );
    Ok(())
}

/// The adapter's typed delivery shape as the payload stored with it.
pub(super) fn to_payload<T: Serialize>(delivery: &T) -> serde_json::Value {
    // Serialising a derived struct of strings cannot fail.
    serde_json::to_value(delivery).unwrap_or_default()
}

/// The reasoning as a note shows it: one sentence, cut by characters (before any escaping, so a
/// cut never splits an entity).
pub(super) fn note_reasoning(d: &Decision) -> std::borrow::Cow<'_, str> {
    let reasoning = crate::text::ellipsize(&d.reasoning, crate::domain::MAX_REASONING_CHARS);
    match &d.weighting_rule {
        None => reasoning,
        // The agent sees that contract policy, not the classifier, set the severity.
        Some(rule) => std::borrow::Cow::Owned(format!(
            "{reasoning} Severity raised from {} by rule {rule}.",
            d.model_severity
        )),
    }
}

/// The labels line of a note (`Topic: billing · sentiment: negative`), `None` for a decision
/// logged without labels. Shadow categories are not shown: they are on trial, and an agent
/// reading one would take it as a decision.
pub(super) fn note_labels(d: &Decision) -> Option<String> {
    match (&d.topic, d.sentiment) {
        (None, None) => None,
        (t, s) => Some(format!(
            "Topic: {} · sentiment: {}",
            t.as_deref().unwrap_or("-"),
            s.map_or("-", crate::domain::Sentiment::as_str)
        )),
    }
}

/// The first line of a follow-up's note: what changed and why, or what escalator would do.
pub(super) fn follow_up_head(d: &Decision, change: FollowUpChange) -> String {
    match change {
        FollowUpChange::Raise { from } => format!(
            "Raised from {from} to {} after the customer wrote again: {}",
            d.severity,
            note_reasoning(d)
        ),
        FollowUpChange::WouldRaise { why, .. } => format!(
            "escalator would raise this to {}: {} {}",
            d.severity,
            note_reasoning(d),
            match why {
                NoteOnly::Override => {
                    "A person changed this ticket's routing since escalator last acted, so \
                     nothing else was changed."
                }
                NoteOnly::Moved => {
                    "This ticket's routing in the tool is not what escalator last set (a person \
                     changed it), so nothing else was changed."
                }
                NoteOnly::Unread => {
                    "escalator could not re-read this ticket's routing in the tool to check that \
                     nobody changed it, so nothing else was changed."
                }
            }
        ),
    }
}

/// The value of `Retry-After` (seconds) if present and sane.
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(|s| Duration::from_secs(s.min(3_600)))
}

/// A JSON string at `pointer`, or the error naming `field`.
pub(crate) fn required_str<'a>(
    v: &'a serde_json::Value,
    pointer: &str,
    field: &str,
) -> Result<&'a str, WebhookError> {
    v.pointer(pointer)
        .and_then(serde_json::Value::as_str)
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| WebhookError::MissingField(field.to_owned()))
}
