//! What the tools' webhooks say of an agent's change to a ticket's routing (a Plain label or
//! priority change, the Pylon override trigger), parsed here with the rest of each tool's
//! webhook; whether it is an override, and the verdict it becomes, is judged by
//! `crate::review::overrides`.

use std::collections::BTreeSet;

use serde_json::Value;

/// The `event` of the Pylon trigger that reports a tag or team change.
pub const PYLON_OVERRIDE_EVENT: &str = "issue.routing_changed";

/// Who made a change in Plain (`updatedBy`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// A person (`actorType: user`).
    User(String),
    /// A machine user (an API key's owner), escalator's own or another integration's.
    MachineUser(String),
    /// The system, a customer, or an actor this version does not know.
    Other(String),
}

/// The routing-relevant state of a Plain thread.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlainRouting {
    /// `priority`, 0 urgent … 3 low.
    pub priority: Option<u64>,
    /// The label types of `labels[]`.
    pub label_type_ids: BTreeSet<String>,
}

/// A Plain label or priority change, parsed from its webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlainChange {
    /// The event id (`pEv_…`, the same on every redelivery).
    pub event_id: String,
    /// `thread.thread_labels_changed` or `thread.thread_priority_changed`.
    pub event_type: String,
    /// The thread.
    pub thread_id: String,
    /// Who changed it.
    pub actor: Actor,
    /// `previousThread`.
    pub before: PlainRouting,
    /// `thread`.
    pub after: PlainRouting,
}

/// A tool change that may be an agent's override.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observed {
    /// A Plain label or priority change.
    Plain(PlainChange),
    /// The Pylon override trigger rang for this issue.
    Pylon {
        /// The issue.
        issue_id: String,
    },
}

fn routing(thread: &Value) -> PlainRouting {
    PlainRouting {
        priority: thread.get("priority").and_then(Value::as_u64),
        label_type_ids: thread
            .get("labels")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|l| l.pointer("/labelType/id").and_then(Value::as_str))
            .map(str::to_owned)
            .collect(),
    }
}

/// A Plain label or priority change, or `None` for any other event (or one missing what an
/// override needs: it is then handled, or ignored, like any event).
pub fn plain_change(event_type: &str, v: &Value) -> Option<PlainChange> {
    if !matches!(
        event_type,
        "thread.thread_labels_changed" | "thread.thread_priority_changed"
    ) {
        return None;
    }
    let event_id = v.get("id").and_then(Value::as_str)?.trim();
    let thread = v.pointer("/payload/thread")?;
    let previous = v.pointer("/payload/previousThread")?;
    let thread_id = thread.get("id").and_then(Value::as_str)?.trim();
    // Both end up as keys in the log: bounded and free of control characters.
    let fits = |s: &str| {
        !s.is_empty() && s.len() <= crate::domain::MAX_ID_BYTES && !crate::text::has_control(s)
    };
    if !(fits(event_id) && fits(thread_id)) {
        return None;
    }
    let by = thread.get("updatedBy");
    let field = |k: &str| {
        by.and_then(|b| b.get(k))
            .and_then(Value::as_str)
            .unwrap_or("")
    };
    let actor = match field("actorType") {
        "user" => Actor::User(field("userId").to_owned()),
        "machineUser" => Actor::MachineUser(field("machineUserId").to_owned()),
        other => Actor::Other(other.to_owned()),
    };
    Some(PlainChange {
        event_id: event_id.to_owned(),
        event_type: event_type.to_owned(),
        thread_id: thread_id.to_owned(),
        actor,
        before: routing(previous),
        after: routing(thread),
    })
}

/// The Pylon override doorbell, or `None` for any other `event`.
pub fn pylon_doorbell(event: &str, issue_id: &str) -> Option<Observed> {
    (event == PYLON_OVERRIDE_EVENT).then(|| Observed::Pylon {
        issue_id: issue_id.to_owned(),
    })
}
