//! The rows of the queues, typed: the inbox (webhook deliveries, decided by the worker), the
//! outbox (actions a decision implies, executed in the ticketing tool) and the score outbox
//! (reviews on their way to Langfuse). The store parses
//! each column once, as it reads a row, so everything above it works with these values; the
//! text forms (`plain.label`, `pending`) are the database's.

use serde::{Deserialize, Serialize};

use super::{DomainError, IdempotencyKey, Source};

string_enum! {
    /// What an action does, and so which tool executes it: one value per action kind of each
    /// tool (the adapters' typed actions, `PlainAction` and `PylonAction`, are tagged with
    /// these spellings).
    ActionKind {
        /// Plain `addLabels`: the route's label types.
        #[serde(rename = "plain.label")]
        PlainLabel = "plain.label",
        /// Plain `removeLabels`: a raised follow-up takes the previous route's labels off.
        #[serde(rename = "plain.unlabel")]
        PlainUnlabel = "plain.unlabel",
        /// Plain `changeThreadPriority`.
        #[serde(rename = "plain.priority")]
        PlainPriority = "plain.priority",
        /// Plain `assignThread`.
        #[serde(rename = "plain.assign")]
        PlainAssign = "plain.assign",
        /// Plain `createNote`: the note with the decision.
        #[serde(rename = "plain.note")]
        PlainNote = "plain.note",
        /// Pylon `PATCH /issues/{id}`: tags, team, assignee.
        #[serde(rename = "pylon.update")]
        PylonUpdate = "pylon.update",
        /// Pylon `POST /issues/{id}/note`: the note with the decision.
        #[serde(rename = "pylon.note")]
        PylonNote = "pylon.note",
    }
}

impl ActionKind {
    /// The tool that executes it.
    pub fn tool(self) -> Source {
        match self {
            ActionKind::PlainLabel
            | ActionKind::PlainUnlabel
            | ActionKind::PlainPriority
            | ActionKind::PlainAssign
            | ActionKind::PlainNote => Source::Plain,
            ActionKind::PylonUpdate | ActionKind::PylonNote => Source::Pylon,
        }
    }
}

string_enum! {
    /// Where an action stands in the outbox.
    ActionStatus {
        /// Waiting to run, or to run again after a failed attempt.
        Pending = "pending",
        /// Executed in the tool.
        Done = "done",
        /// Given up: the tool rejected it, or it failed too many times.
        Failed = "failed",
    }
}

string_enum! {
    /// Where a webhook delivery stands in the inbox.
    DeliveryStatus {
        /// Waiting to be decided, or to be tried again.
        Pending = "pending",
        /// Decided (or deliberately skipped).
        Done = "done",
        /// Given up: the tool says the ticket does not exist, or will not give it.
        Failed = "failed",
    }
}

/// An action a decision implies, written in the same transaction as the decision and executed
/// later from the log.
#[derive(Debug, Clone, PartialEq)]
pub struct NewAction {
    /// What to do; unique per decision, so an action is logged once.
    pub kind: ActionKind,
    /// Everything the executor needs, as JSON.
    pub payload: serde_json::Value,
}

/// An action in the outbox.
#[derive(Debug, Clone, PartialEq)]
pub struct Action {
    /// Row id; the lease and completion name it.
    pub id: i64,
    /// The decision that implied it.
    pub decision_id: String,
    /// The ticket's source.
    pub source: Source,
    /// The ticket's id in its source.
    pub ticket_id: String,
    /// What to do.
    pub kind: ActionKind,
    /// Everything the executor needs.
    pub payload: serde_json::Value,
    /// Where it stands.
    pub status: ActionStatus,
    /// Attempts so far (a leased action counts its current attempt).
    pub attempts: u32,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// Earlier attempts that ended in a panic or an unexpected error.
    pub internal_errors: u32,
}

/// A webhook delivery as accepted: the adapter's parse of the body, made durable under its
/// idempotency key before the sender gets a 2xx.
#[derive(Debug, Clone, PartialEq)]
pub struct NewDelivery {
    /// Source, ticket id and version: a repeat of the key is a duplicate.
    pub key: IdempotencyKey,
    /// The tool's event type (e.g. `thread.thread_created`), for logs.
    pub event_type: String,
    /// What the adapter needs to build the ticket later (ticket text; never secrets).
    pub payload: serde_json::Value,
    /// The payload's version (Plain's `webhookTargetVersion`, Pylon's trigger shape), kept so
    /// the weekly audit can compare accuracy before and after a tool update.
    pub webhook_version: Option<String>,
    /// Fields the lenient parse had to do without (e.g. the message text, so the preview
    /// stood in).
    pub missing_fields: Vec<String>,
    /// The W3C `traceparent` of the webhook request, so the worker that decides the delivery
    /// continues its trace.
    pub trace_context: Option<String>,
}

/// A stored delivery leased to one worker, which must build, decide and finish it.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingDelivery {
    /// The delivery's key.
    pub key: IdempotencyKey,
    /// The tool's event type.
    pub event_type: String,
    /// The adapter's payload.
    pub payload: serde_json::Value,
    /// Attempts so far, this one included.
    pub attempts: u32,
    /// Earlier attempts that ended in a panic or an unexpected error.
    pub internal_errors: u32,
    /// The webhook request's `traceparent`, when it was traced.
    pub trace_context: Option<String>,
}

/// A routing score in the score outbox, waiting to be sent to Langfuse (or sent).
#[derive(Debug, Clone, PartialEq)]
pub struct ScoreRow {
    /// Idempotency id, also the Langfuse score id.
    pub id: String,
    /// The decision it judges.
    pub decision_id: String,
    /// The decision's trace, when traced.
    pub trace_id: Option<String>,
    /// The generation span of the model call, when there was one.
    pub observation_id: Option<String>,
    /// The ticket id (Langfuse session id).
    pub session_id: String,
    /// Score name (`routing_correct`).
    pub name: String,
    /// The value: `routing_correct` is BOOLEAN (1 correct, 0 corrected), `corrected_severity`
    /// CATEGORICAL (the severity the reviewer says is right).
    pub value: ScoreValue,
    /// Free text from the reviewer (e.g. the corrected route).
    pub comment: Option<String>,
    /// JSON object of filterable context (severity, route, prompt version, model).
    pub metadata: String,
    /// Failed send attempts so far.
    pub attempts: i32,
}

/// A score's value and, with it, its Langfuse `dataType`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScoreValue {
    /// `dataType: BOOLEAN`, sent as `1` or `0`.
    Boolean(bool),
    /// `dataType: CATEGORICAL`, sent as the string.
    Categorical(String),
}

impl ScoreValue {
    /// The Langfuse `dataType` (also the stored `data_type`).
    pub fn data_type(&self) -> &'static str {
        match self {
            ScoreValue::Boolean(_) => "BOOLEAN",
            ScoreValue::Categorical(_) => "CATEGORICAL",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_read_back_as_written_and_name_their_tool() {
        for k in ActionKind::ALL {
            assert_eq!(ActionKind::parse("kind", k.as_str()).unwrap(), *k);
            assert!(k.as_str().starts_with(&format!("{}.", k.tool())), "{k}");
        }
        assert!(ActionKind::parse("kind", "api.label").is_err());
        assert_eq!(
            ActionStatus::parse("status", "failed").unwrap(),
            ActionStatus::Failed
        );
        assert_eq!(DeliveryStatus::Done.as_str(), "done");
    }
}
