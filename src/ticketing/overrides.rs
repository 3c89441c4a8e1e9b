//! What the tools' webhooks say of an agent's change to a ticket's routing (a Plain label or
//! priority change, the Pylon override trigger), parsed here with the rest of each tool's
//! webhook, and how such a change moved the ticket between routes ([`RouteChange`], answered by
//! each adapter's `Ticketing::route_change`). Whether it is an override, and the verdict it
//! becomes, is judged by `crate::review::overrides`.

use std::collections::BTreeSet;

use serde_json::Value;

use super::settings::RouteTargets;
use crate::domain::{Route, Source};

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

impl Observed {
    /// The tool and the ticket the change is about.
    pub fn ticket(&self) -> (Source, &str) {
        match self {
            Observed::Plain(c) => (Source::Plain, &c.thread_id),
            Observed::Pylon { issue_id } => (Source::Pylon, issue_id),
        }
    }
}

/// How a change moved a ticket between routes, as its tool shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteChange {
    /// The route the ticket was on.
    pub from: Route,
    /// The route the change puts it on.
    pub to: Route,
    /// What changed in the tool (`priority`, `label`, `team`, `tag`).
    pub what: &'static str,
}

/// The one route whose Plain priority is `p` (none when routes share it).
fn route_of_priority(targets: &RouteTargets, p: u64) -> Option<Route> {
    let mut found = Route::ALL
        .iter()
        .filter(|r| u64::from(targets.plain(**r).priority) == p);
    match (found.next(), found.next()) {
        (Some(r), None) => Some(*r),
        _ => None,
    }
}

/// Routes any of whose Plain label types are in `labels`.
fn routes_of_labels(targets: &RouteTargets, labels: &BTreeSet<String>) -> BTreeSet<Route> {
    Route::ALL
        .iter()
        .copied()
        .filter(|r| {
            targets
                .plain(*r)
                .label_type_ids
                .iter()
                .any(|l| labels.contains(l))
        })
        .collect()
}

/// How a Plain priority or label change moved the thread: a priority that is one route's
/// before and another's after, or labels added of exactly one route while the thread had
/// another route's.
pub(super) fn plain_route_change(c: &PlainChange, targets: &RouteTargets) -> Option<RouteChange> {
    if c.event_type == "thread.thread_priority_changed" {
        let (Some(b), Some(a)) = (c.before.priority, c.after.priority) else {
            return None;
        };
        let (from, to) = (
            route_of_priority(targets, b)?,
            route_of_priority(targets, a)?,
        );
        return Some(RouteChange {
            from,
            to,
            what: "priority",
        });
    }
    let added: BTreeSet<String> = c
        .after
        .label_type_ids
        .difference(&c.before.label_type_ids)
        .cloned()
        .collect();
    let to = routes_of_labels(targets, &added);
    let from = routes_of_labels(targets, &c.before.label_type_ids);
    match (to.len(), to.iter().next()) {
        (1, Some(to)) => from.iter().find(|r| *r != to).map(|from| RouteChange {
            from: *from,
            to: *to,
            what: "label",
        }),
        _ => None,
    }
}

/// How a Pylon issue's current `tags` and `team` moved it off `decided`: a team of another
/// route, else a tag only that other route has. escalator itself only ever adds its own
/// route's tags and team, so its changes never count.
pub(super) fn pylon_route_change(
    tags: &[String],
    team: Option<String>,
    targets: &RouteTargets,
    decided: Route,
) -> Option<RouteChange> {
    let others = Route::ALL.iter().copied().filter(|r| *r != decided);
    let by_team: Vec<Route> = others
        .clone()
        .filter(|r| {
            let t = &targets.pylon(*r).team_id;
            t.is_some() && *t == team && *t != targets.pylon(decided).team_id
        })
        .collect();
    let by_tag: Vec<Route> = others
        .filter(|r| {
            targets.pylon(*r).tags.iter().any(|t| {
                tags.contains(t)
                    && Route::ALL
                        .iter()
                        .filter(|o| *o != r)
                        .all(|o| !targets.pylon(*o).tags.contains(t))
            })
        })
        .collect();
    let (to, what) = match (by_team.as_slice(), by_tag.as_slice()) {
        ([r], _) => (*r, "team"),
        ([], [r]) => (*r, "tag"),
        _ => return None,
    };
    Some(RouteChange {
        from: decided,
        to,
        what,
    })
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
