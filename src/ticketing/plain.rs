//! Plain: `thread.*` webhooks in (signed with `Plain-Request-Signature`, replay window on
//! `webhookMetadata.webhookDeliveryAttemptTimestamp`), GraphQL out (labels, priority, assignee,
//! internal note) and GraphQL enrichment (tier, company contract value). A retried note first
//! pages the thread's notes for its decision marker, since Plain notes have no idempotency key.
//!
//! Parsing is lenient on purpose: unknown fields, unknown event types and new webhook versions
//! are accepted and logged; only the fields the bridge needs are required.
//!
//! Over 450 lines on purpose: everything Plain-specific sits here, the webhook parse, the typed
//! actions a decision is planned into ([`PlainAction`], [`plan`]), the note renderers and the
//! GraphQL calls that execute them, so a plan and its execution are read side by side.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use reqwest::header::HeaderMap;
use secrecy::ExposeSecret as _;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{
    http, overrides,
    port::{
        Accepted, Ticketing, TicketingError, ToolAction, WebhookError, enrichment_failed,
        from_delivery, from_row, note_labels, note_reasoning, required_str, to_payload,
    },
    settings::{PlainSettings, PlainTarget, PlainTierFrom, RouteTargets},
    webhook::Webhook,
};
use crate::domain::{
    Decision, DomainError, MAX_BODY_CHARS, MAX_SUBJECT_CHARS, RawTicket, Route, RoutingRead,
    Source, Ticket, Tier, TierSource, ToolRouting,
    conversation::{Author, MESSAGE_VERSION_PREFIX, Message},
    work::{Action, ActionKind, NewDelivery, PendingDelivery},
};

/// The signature header.
pub const SIGNATURE_HEADER: &str = "Plain-Request-Signature";
/// How Plain webhooks are signed and configured.
const WEBHOOK: Webhook = Webhook::new(Source::Plain, SIGNATURE_HEADER, "PLAIN_WEBHOOK_SECRET");

/// Adds the route's labels. `label_with_given_type_already_added_to_thread` counts as done.
pub const ADD_LABELS: &str = "mutation addLabels($input: AddLabelsInput!) { addLabels(input: $input) { labels { id labelType { id name externalId } } error { message type code fields { field message type } } } }";
/// Reads the thread's labels (label ids with their types), for a label swap.
pub const THREAD_LABELS: &str = "query threadLabels($threadId: ID!) { thread(threadId: $threadId) { id labels { id labelType { id } } } }";
/// Removes labels by label id (`l_…`, not the type).
pub const REMOVE_LABELS: &str = "mutation removeLabels($input: RemoveLabelsInput!) { removeLabels(input: $input) { error { message type code fields { field message type } } } }";
/// Sets the thread priority (0 urgent … 3 low).
pub const CHANGE_PRIORITY: &str = "mutation changeThreadPriority($input: ChangeThreadPriorityInput!) { changeThreadPriority(input: $input) { thread { id priority } error { message type code fields { field message type } } } }";
/// Assigns the thread to a user.
pub const ASSIGN_THREAD: &str = "mutation assignThread($input: AssignThreadInput!) { assignThread(input: $input) { thread { id status assignedTo { __typename ... on User { id } ... on MachineUser { id } } } error { message type code fields { field message type } } } }";
/// Creates the internal note with the decision.
pub const CREATE_NOTE: &str = "mutation createNote($input: CreateNoteInput!) { createNote(input: $input) { note { id text markdown } error { message type code fields { field message type } } } }";
/// Pages the thread's notes, newest first (`last`/`before`), to find one an earlier attempt
/// posted (reference/plain.md, addendum: notes have no idempotency key).
pub const THREAD_NOTES: &str = "query threadNotes($threadId: ID!, $before: String) { thread(threadId: $threadId) { timelineEntries(filters: { entryTypes: [NOTE] }, last: 50, before: $before) { edges { node { id entry { __typename ... on NoteEntry { noteId text markdown } } } } pageInfo { hasPreviousPage startCursor } } } }";
/// Most pages of 50 notes a retried note looks through before posting anyway.
const MAX_NOTE_PAGES: usize = 20;
/// Reads the thread's routing as it stands (priority, labels, assignee: what a follow-up compares
/// with what escalator last set) and its tier and customer's company (tier, contract value).
pub const THREAD_FOR_ROUTING: &str = "query threadForRouting($threadId: ID!) { thread(threadId: $threadId) { id priority labels { id labelType { id } } assignedTo { __typename ... on User { id } ... on MachineUser { id } } tier { id name externalId } tenant { id name externalId tier { id name externalId } tenantFields { externalFieldId value { __typename ... on TenantFieldStringValue { stringValue } ... on TenantFieldNumberValue { numberValue } } } } customer { id company { id name contractValue tier { id name externalId } } } } }";

/// What enrichment found for a thread: the tier and where it came from, and the ARR.
#[derive(Debug, Clone, PartialEq)]
pub struct Enriched {
    /// The tier, when a configured place named one.
    pub tier: Option<(Tier, TierSource)>,
    /// The ARR in USD, when known.
    pub arr_usd: Option<f64>,
    /// The thread's routing as Plain has it now; `None` when the answer has no valid
    /// `priority` (an answer that cannot be compared).
    pub routing: Option<ToolRouting>,
}

/// What escalator asks Plain to do, one variant per action kind. Adjacently tagged, so the tag
/// and its content are the outbox's `kind` (`plain.label`, …) and `payload` columns exactly as
/// rows have always been stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "payload")]
pub enum PlainAction {
    /// `addLabels`: the route's label types.
    #[serde(rename = "plain.label")]
    Label {
        /// The thread.
        thread_id: String,
        /// `labelTypeIds`.
        label_type_ids: Vec<String>,
    },
    /// `removeLabels`: the labels of these types come off the thread (a raised follow-up's
    /// previous route); none there counts as done.
    #[serde(rename = "plain.unlabel")]
    Unlabel {
        /// The thread.
        thread_id: String,
        /// The label types whose labels are removed.
        label_type_ids: Vec<String>,
    },
    /// `changeThreadPriority`.
    #[serde(rename = "plain.priority")]
    Priority {
        /// The thread.
        thread_id: String,
        /// 0 (urgent) … 3 (low).
        priority: u8,
    },
    /// `assignThread`.
    #[serde(rename = "plain.assign")]
    Assign {
        /// The thread.
        thread_id: String,
        /// The user to assign.
        user_id: String,
    },
    /// `createNote`: the internal note with the decision; ends in [`note_marker`].
    #[serde(rename = "plain.note")]
    Note {
        /// The thread.
        thread_id: String,
        /// The thread's customer (`createNote` needs it).
        customer_id: String,
        /// The decision the note shows; its marker makes a retried note idempotent.
        decision_id: String,
        /// [`note_text`].
        text: String,
        /// [`note_markdown`].
        markdown: String,
    },
}

/// The ticket a Plain delivery carries, stored with it at accept (validated then) and read back
/// when the worker builds the ticket; its fields are the `payload` keys of stored deliveries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlainDelivery {
    /// The webhook event's id (`id`), for logs.
    #[serde(default)]
    pub event_id: String,
    /// `payload.thread.id`.
    pub thread_id: String,
    /// `payload.thread.title`, cut to the subject limit.
    pub title: String,
    /// The first message, cut to the body limit.
    pub text: String,
    /// `payload.thread.customer.id`.
    pub customer_id: String,
}

impl PlainDelivery {
    /// The ticket of version `version` with `tier` and `arr_usd`: the one place a Plain ticket
    /// is parsed, at accept (no tier yet: a ticket the domain refuses is a 400 naming the
    /// field) and when the worker builds it with what enrichment found.
    ///
    /// # Errors
    /// [`DomainError`] naming the field (prefixed `prefix`) the domain refuses.
    fn ticket(
        &self,
        version: &str,
        tier: Option<Tier>,
        arr_usd: Option<f64>,
        prefix: &str,
    ) -> Result<Ticket, DomainError> {
        Ticket::parse(
            Source::Plain,
            RawTicket {
                id: self.thread_id.clone(),
                version: version.to_owned(),
                subject: self.title.clone(),
                body: self.text.clone(),
                tier,
                arr_usd,
                customer_id: self.customer_id.clone(),
            },
            prefix,
        )
    }
}

impl ToolAction for PlainAction {
    fn kind(&self) -> ActionKind {
        match self {
            PlainAction::Label { .. } => ActionKind::PlainLabel,
            PlainAction::Unlabel { .. } => ActionKind::PlainUnlabel,
            PlainAction::Priority { .. } => ActionKind::PlainPriority,
            PlainAction::Assign { .. } => ActionKind::PlainAssign,
            PlainAction::Note { .. } => ActionKind::PlainNote,
        }
    }
}

/// The actions `d` implies in Plain for a route landing on `target`: labels (if the route has
/// label types), priority, assignment (if the route has an assignee), and the internal note
/// (if the ticket has a customer: `createNote` needs one).
pub fn plan(target: &PlainTarget, ticket: &Ticket, d: &Decision) -> Vec<PlainAction> {
    let thread_id = &d.ticket_id;
    let mut out = Vec::new();
    if !target.label_type_ids.is_empty() {
        out.push(PlainAction::Label {
            thread_id: thread_id.clone(),
            label_type_ids: target.label_type_ids.clone(),
        });
    }
    out.push(PlainAction::Priority {
        thread_id: thread_id.clone(),
        priority: target.priority,
    });
    if let Some(user_id) = &target.assignee_user_id {
        out.push(PlainAction::Assign {
            thread_id: thread_id.clone(),
            user_id: user_id.clone(),
        });
    }
    if let Some(customer_id) = ticket.customer_id() {
        out.push(PlainAction::Note {
            thread_id: thread_id.clone(),
            customer_id: customer_id.to_owned(),
            decision_id: d.id.clone(),
            text: note_text(d),
            markdown: note_markdown(d),
        });
    }
    out
}

/// The actions of a follow-up's re-decision that raised the severity (see
/// `ActionPlanner::plan_follow_up`): for a raise, the new route's actions as for a new ticket,
/// the previous route's label types (those the new route does not share) swapped out, and the
/// note headed by what changed; for a note-only raise, the note alone.
pub fn plan_follow_up(
    routes: &RouteTargets,
    ticket: &Ticket,
    d: &Decision,
    change: crate::domain::FollowUpChange,
) -> Vec<PlainAction> {
    let head = super::port::follow_up_head(d, change);
    let mut out = match change {
        crate::domain::FollowUpChange::Raise { from } => {
            let target = routes.plain(d.route);
            let old: Vec<String> = routes
                .plain(from.route())
                .label_type_ids
                .iter()
                .filter(|l| !target.label_type_ids.contains(l))
                .cloned()
                .collect();
            let mut out = plan(target, ticket, d);
            if !old.is_empty() {
                out.insert(
                    0,
                    PlainAction::Unlabel {
                        thread_id: d.ticket_id.clone(),
                        label_type_ids: old,
                    },
                );
            }
            out
        }
        crate::domain::FollowUpChange::WouldRaise { .. } => ticket
            .customer_id()
            .map(|customer_id| PlainAction::Note {
                thread_id: d.ticket_id.clone(),
                customer_id: customer_id.to_owned(),
                decision_id: d.id.clone(),
                text: String::new(),
                markdown: String::new(),
            })
            .into_iter()
            .collect(),
    };
    for a in &mut out {
        if let PlainAction::Note { text, markdown, .. } = a {
            *text = format!("{head}\n{}", note_text(d));
            *markdown = format!("{head}\n\n{}", note_markdown(d));
        }
    }
    out
}

/// Longest internal note Plain accepts, in characters (reference/plain.md, "Internal note").
/// The renderers stay far below it: the reasoning in a note is cut to
/// [`crate::domain::MAX_REASONING_CHARS`].
pub const PLAIN_NOTE_MAX_CHARS: usize = 10_000;

/// The internal note shown to agents: severity, route, confidence, the model's reasoning, and
/// the topic and sentiment labels.
pub fn note_text(d: &Decision) -> String {
    render_note(d, false)
}

/// The internal note as Markdown.
pub fn note_markdown(d: &Decision) -> String {
    render_note(d, true)
}

/// Both forms of the note in one place, since they show the same parts in the same order and
/// differ only in markup: the head, the labels, the fallback remark when the offline
/// classifier decided, then the marker on its own line.
fn render_note(d: &Decision, markdown: bool) -> String {
    let (severity, route, confidence) = (&d.severity, &d.route, d.confidence);
    let reasoning = note_reasoning(d);
    let mut s = if markdown {
        format!(
            "**escalator**: `{severity}` → `{route}` (confidence {confidence:.2})\n\n{reasoning}"
        )
    } else {
        format!("escalator: {severity} -> {route} (confidence {confidence:.2}). {reasoning}")
    };
    if let Some(l) = note_labels(d) {
        s.push_str(&if markdown {
            format!("\n\n{l}")
        } else {
            format!(" {l}.")
        });
    }
    if d.fallback {
        s.push_str(if markdown {
            "\n\n_fallback: the offline classifier decided_"
        } else {
            " [fallback: the offline classifier decided]"
        });
    }
    s.push_str(if markdown { "\n\n" } else { "\n" });
    s.push_str(&note_marker(&d.id));
    s
}

/// The last line of every Plain note: Plain notes have no idempotency key, so a retried
/// `plain.note` looks for this line among the thread's notes before posting again.
pub fn note_marker(decision_id: &str) -> String {
    format!("escalator decision {decision_id}")
}

/// The Plain adapter.
#[derive(Debug, Clone)]
pub struct Plain {
    settings: PlainSettings,
    http: reqwest::Client,
}

impl Plain {
    /// An adapter for `settings`.
    ///
    /// # Errors
    /// When the HTTP client cannot be built.
    pub fn new(settings: PlainSettings) -> Result<Self, reqwest::Error> {
        let http = http::client(settings.timeout)?;
        Ok(Self { settings, http })
    }

    /// Posts one GraphQL operation and returns its `data`, classifying every failure.
    async fn graphql(
        &self,
        op: &str,
        query: &str,
        variables: Value,
    ) -> Result<Value, TicketingError> {
        let Some(key) = &self.settings.api_key else {
            return Err(TicketingError::NotConfigured("PLAIN_API_KEY"));
        };
        let resp = self
            .http
            .post(&self.settings.api_url)
            .bearer_auth(key.expose_secret())
            .json(&json!({ "query": query, "variables": variables, "operationName": op }))
            .send()
            .await
            .map_err(TicketingError::Transport)?;
        let status = resp.status();
        let request_id = http::header_str(resp.headers(), "apigw-requestid");
        tracing::debug!(
            op,
            status = status.as_u16(),
            request_id,
            "plain graphql answered"
        );
        let text = http::answer_text(resp, Duration::from_secs(10)).await?;
        let body: Option<Value> = serde_json::from_str(&text).ok();
        if let Some(errors) = body
            .as_ref()
            .and_then(|b| b.get("errors"))
            .and_then(Value::as_array)
            .filter(|e| !e.is_empty())
        {
            let code = errors[0]
                .pointer("/extensions/code")
                .and_then(Value::as_str)
                .unwrap_or("");
            let message = http::without_secret(
                &format!(
                    "plain {op} answered {}: {code}: {}",
                    status.as_u16(),
                    errors[0]
                        .get("message")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                ),
                key,
            );
            let retryable = code == "INTERNAL_SERVER_ERROR" || status.is_server_error();
            return Err(http::failure(retryable, status.as_u16(), message));
        }
        http::check_status(status, || {
            format!("plain {op} answered {}", status.as_u16())
        })?;
        http::take_data(body, status)
    }

    /// Runs a mutation; its `error` field counts as a failure even under HTTP 200, except the
    /// codes in `done_codes`, which mean the change is already there.
    async fn mutate(
        &self,
        op: &str,
        query: &str,
        input: Value,
        done_codes: &[&str],
    ) -> Result<(), TicketingError> {
        let data = self.graphql(op, query, json!({ "input": input })).await?;
        let result = data.get(op).ok_or_else(|| TicketingError::Upstream {
            status: 200,
            message: format!("answer has no {op}"),
        })?;
        match result.get("error") {
            None | Some(Value::Null) => Ok(()),
            Some(err) => {
                let code = err.get("code").and_then(Value::as_str).unwrap_or("");
                if done_codes.contains(&code) {
                    tracing::info!(op, code, "plain says the change is already there");
                    return Ok(());
                }
                let kind = err.get("type").and_then(Value::as_str).unwrap_or("");
                let message = format!(
                    "{op}: {kind} {code}: {}",
                    err.get("message").and_then(Value::as_str).unwrap_or("")
                );
                Err(http::failure(kind == "INTERNAL", 200, message))
            }
        }
    }

    /// Whether one of the thread's notes carries `marker` (the decision's last line), paging
    /// back from the newest note. A thread with more notes than [`MAX_NOTE_PAGES`] pages is
    /// logged and counted as "not found": a note twice is better than no note.
    async fn note_posted(&self, thread_id: &str, marker: &str) -> Result<bool, TicketingError> {
        let mut before = Value::Null;
        for _ in 0..MAX_NOTE_PAGES {
            let data = self
                .graphql(
                    "threadNotes",
                    THREAD_NOTES,
                    json!({ "threadId": thread_id, "before": before }),
                )
                .await?;
            // No thread: nothing was posted on it; createNote gives Plain's own answer.
            let Some(entries) = data.pointer("/thread/timelineEntries") else {
                return Ok(false);
            };
            let found = entries
                .get("edges")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|e| e.pointer("/node/entry"))
                .any(|entry| {
                    ["text", "markdown"].iter().any(|k| {
                        entry
                            .get(k)
                            .and_then(Value::as_str)
                            .is_some_and(|t| t.contains(marker))
                    })
                });
            if found {
                return Ok(true);
            }
            let page = entries.get("pageInfo");
            let more = page
                .and_then(|p| p.get("hasPreviousPage"))
                .and_then(Value::as_bool)
                .unwrap_or(false);
            match page
                .and_then(|p| p.get("startCursor"))
                .and_then(Value::as_str)
            {
                Some(cursor) if more => before = Value::String(cursor.to_owned()),
                _ => return Ok(false),
            }
        }
        tracing::warn!(
            thread_id,
            pages = MAX_NOTE_PAGES,
            "thread has too many notes to look through; posting the note"
        );
        Ok(false)
    }

    /// The ids of the thread's labels whose type is one of `types`.
    async fn labels_of_types(
        &self,
        thread_id: &str,
        types: &[String],
    ) -> Result<Vec<String>, TicketingError> {
        let data = self
            .graphql(
                "threadLabels",
                THREAD_LABELS,
                json!({ "threadId": thread_id }),
            )
            .await?;
        let thread = data
            .get("thread")
            .filter(|t| !t.is_null())
            .ok_or_else(|| TicketingError::NotFound(format!("plain thread {thread_id}")))?;
        Ok(thread
            .get("labels")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|l| {
                l.pointer("/labelType/id")
                    .and_then(Value::as_str)
                    .is_some_and(|t| types.iter().any(|x| x == t))
            })
            .filter_map(|l| l.get("id").and_then(Value::as_str).map(str::to_owned))
            .collect())
    }

    /// Tier (with its source) and ARR of a thread from the GraphQL API, read from the places
    /// `[plain] tier_from` names, in its order.
    ///
    /// # Errors
    /// [`TicketingError`] from the GraphQL call, or [`TicketingError::NotFound`] for no thread.
    pub async fn enrich(&self, thread_id: &str) -> Result<Enriched, TicketingError> {
        let data = self
            .graphql(
                "threadForRouting",
                THREAD_FOR_ROUTING,
                json!({ "threadId": thread_id }),
            )
            .await?;
        let thread = data
            .get("thread")
            .filter(|t| !t.is_null())
            .ok_or_else(|| TicketingError::NotFound(format!("plain thread {thread_id}")))?;
        // The `kind` (`stringValue`, `numberValue`) of the tenant field `id`, when one is set.
        let tenant_value = |id: Option<&str>, kind: &str| {
            let id = id?;
            thread
                .pointer("/tenant/tenantFields")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .find(|f| f.get("externalFieldId").and_then(Value::as_str) == Some(id))
                .and_then(|f| f.get("value"))
                .and_then(|v| v.get(kind))
        };
        let tier = self.settings.tier_from.iter().find_map(|from| match from {
            PlainTierFrom::Thread => thread
                .get("tier")
                .and_then(tier_of)
                .map(|t| (t, TierSource::PlainThread)),
            PlainTierFrom::Tenant => {
                tenant_value(self.settings.tier_tenant_field.as_deref(), "stringValue")
                    .and_then(Value::as_str)
                    .and_then(|s| Tier::parse("tier", s).ok())
                    .or_else(|| thread.pointer("/tenant/tier").and_then(tier_of))
                    .map(|t| (t, TierSource::PlainTenant))
            }
            PlainTierFrom::Company => thread
                .pointer("/customer/company/tier")
                .and_then(tier_of)
                .map(|t| (t, TierSource::PlainCompany)),
        });
        let arr = tenant_value(self.settings.arr_tenant_field.as_deref(), "numberValue")
            .and_then(Value::as_f64)
            .filter(|v| v.is_finite() && *v >= 0.0)
            .or_else(|| {
                thread
                    .pointer("/customer/company/contractValue")
                    .and_then(Value::as_f64)
                    .filter(|v| v.is_finite() && *v >= 0.0)
            });
        Ok(Enriched {
            tier,
            arr_usd: arr,
            routing: routing_of(thread),
        })
    }
}

/// A `threadForRouting` thread's routing: its priority (required: an answer without a valid
/// one cannot be compared), its labels' type ids, its assignee (a user or a machine user).
fn routing_of(thread: &Value) -> Option<ToolRouting> {
    let priority = thread
        .get("priority")
        .and_then(Value::as_u64)
        .and_then(|p| u8::try_from(p).ok())
        .filter(|p| *p <= 3)?;
    let labels = thread
        .get("labels")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|l| l.pointer("/labelType/id").and_then(Value::as_str))
        .map(str::to_owned)
        .collect();
    let assignee = thread
        .pointer("/assignedTo/id")
        .and_then(Value::as_str)
        .map(str::to_owned);
    Some(ToolRouting {
        labels,
        priority: Some(priority),
        assignee,
        team: None,
    })
}

/// How the thread's routing `now` differs from what escalator's done routing actions `acted`
/// (oldest first) set (see `ActionPlanner::routing_moved`): the priority and assignee it last
/// set, and its routing labels: the label types it added and did not take off again must be
/// there, and no other route's label type (of any route in `routes`, or one escalator once
/// set) may be. Label types no route uses are not routing and are not compared.
pub fn routing_moved(routes: &RouteTargets, now: &ToolRouting, acted: &[Action]) -> Option<String> {
    use std::collections::BTreeSet;
    let (mut labels, mut ever) = (BTreeSet::new(), BTreeSet::new());
    let (mut priority, mut assignee) = (None, None);
    for a in acted
        .iter()
        .filter(|a| a.status == crate::domain::work::ActionStatus::Done)
    {
        match from_row::<PlainAction>(a) {
            Ok(PlainAction::Label { label_type_ids, .. }) => {
                ever.extend(label_type_ids.iter().cloned());
                labels.extend(label_type_ids);
            }
            Ok(PlainAction::Unlabel { label_type_ids, .. }) => {
                for l in &label_type_ids {
                    labels.remove(l);
                }
                ever.extend(label_type_ids);
            }
            Ok(PlainAction::Priority { priority: p, .. }) => priority = Some(p),
            Ok(PlainAction::Assign { user_id, .. }) => assignee = Some(user_id),
            Ok(PlainAction::Note { .. }) | Err(_) => {}
        }
    }
    if let Some(p) = priority {
        if now.priority != Some(p) {
            return Some(format!(
                "priority is {}, escalator set {p}",
                now.priority.map_or("none".to_owned(), |n| n.to_string())
            ));
        }
    }
    if let Some(u) = assignee {
        if now.assignee.as_deref() != Some(u.as_str()) {
            return Some(format!(
                "assignee is {}, escalator assigned {u}",
                now.assignee.as_deref().unwrap_or("nobody")
            ));
        }
    }
    if let Some(gone) = labels.iter().find(|l| !now.labels.contains(l)) {
        return Some(format!("label type {gone} escalator added is gone"));
    }
    let routing: BTreeSet<&String> = routes
        .plain_targets()
        .flat_map(|t| t.label_type_ids.iter())
        .chain(ever.iter())
        .collect();
    now.labels
        .iter()
        .find(|l| routing.contains(l) && !labels.contains(*l))
        .map(|l| format!("label type {l} is on the thread, escalator did not set it"))
}

/// A Plain tier object as one of ours: its `externalId`, else its `name`, when either spells
/// `free`, `pro` or `enterprise`.
fn tier_of(v: &Value) -> Option<Tier> {
    ["externalId", "name"].iter().find_map(|k| {
        v.get(k)
            .and_then(Value::as_str)
            .and_then(|s| Tier::parse("tier", s).ok())
    })
}

/// The payload version Plain pins each webhook target to
/// (`webhookMetadata.webhookTargetVersion`, a date), when the delivery carries one.
pub fn payload_version(v: &Value) -> Option<String> {
    v.pointer("/webhookMetadata/webhookTargetVersion")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| crate::text::excerpt(s, 64))
}

/// The message events: who wrote the message and where the payload keeps it
/// (reference/plain.md §2: `*_received` is the customer's, `*_sent` the team's). The Slack,
/// Discord and MS Teams objects' names are not in the reference: unverified.
const MESSAGE_EVENTS: &[(&str, Author, &str)] = &[
    ("thread.email_received", Author::Customer, "/payload/email"),
    ("thread.chat_received", Author::Customer, "/payload/chat"),
    (
        "thread.slack_message_received",
        Author::Customer,
        "/payload/slackMessage",
    ),
    (
        "thread.discord_message_received",
        Author::Customer,
        "/payload/discordMessage",
    ),
    (
        "thread.ms_teams_message_received",
        Author::Customer,
        "/payload/msTeamsMessage",
    ),
    ("thread.email_sent", Author::Agent, "/payload/email"),
    ("thread.chat_sent", Author::Agent, "/payload/chat"),
    (
        "thread.slack_message_sent",
        Author::Agent,
        "/payload/slackMessage",
    ),
    (
        "thread.discord_message_sent",
        Author::Agent,
        "/payload/discordMessage",
    ),
    (
        "thread.ms_teams_message_sent",
        Author::Agent,
        "/payload/msTeamsMessage",
    ),
];

/// Who wrote the message of a message event, and its object's pointer.
fn message_event(event_type: &str) -> Option<(Author, &'static str)> {
    MESSAGE_EVENTS
        .iter()
        .find(|(t, _, _)| *t == event_type)
        .map(|(_, a, o)| (*a, *o))
}

/// A time field that is an ISO 8601 string or Plain's `{iso8601, unixTimestamp}` object.
fn time_at(v: &Value, pointer: &str) -> Option<DateTime<Utc>> {
    let t = v.pointer(pointer)?;
    let text = t
        .as_str()
        .or_else(|| t.get("iso8601").and_then(Value::as_str))?;
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|d| d.with_timezone(&Utc))
}

/// A message event as a delivery keyed `message:<message id>` on its thread: a follow-up
/// (the customer's) or part of the conversation (the team's). The first message of a thread
/// (`isStartOfThread`) is `thread.thread_created`'s, so it is ignored here.
fn message_delivery(
    v: &Value,
    event_type: String,
    author: Author,
    object: &str,
    version: Option<String>,
    now: DateTime<Utc>,
) -> Result<Accepted, WebhookError> {
    let at = |key: &str| format!("{object}/{key}");
    if v.pointer(&at("isStartOfThread")).and_then(Value::as_bool) == Some(true) {
        return Ok(Accepted::Ignored { event_type });
    }
    let field = |key: &str| format!("{}.{key}", object.trim_start_matches('/').replace('/', "."));
    let event_id = v.get("id").and_then(Value::as_str).unwrap_or("");
    let thread_id = required_str(v, "/payload/thread/id", "payload.thread.id")?;
    let title = required_str(v, "/payload/thread/title", "payload.thread.title")?;
    let customer_id = required_str(
        v,
        "/payload/thread/customer/id",
        "payload.thread.customer.id",
    )?;
    let message_id = first_text(v, &[&at("id")])
        .or((!event_id.trim().is_empty()).then_some(event_id))
        .ok_or_else(|| WebhookError::MissingField(field("id")))?;
    let text = first_text(
        v,
        &[
            &at("textContent"),
            &at("markdownContent"),
            &at("text"),
            &at("markdown"),
        ],
    )
    .ok_or_else(|| WebhookError::MissingField(field("textContent")))?;
    let sent_at = time_at(v, &at("createdAt"))
        .or_else(|| time_at(v, "/timestamp"))
        .unwrap_or(now);
    let received = PlainDelivery {
        event_id: event_id.to_owned(),
        thread_id: thread_id.to_owned(),
        title: crate::text::truncate_chars(title, MAX_SUBJECT_CHARS).to_owned(),
        text: crate::text::truncate_chars(text, MAX_BODY_CHARS).to_owned(),
        customer_id: customer_id.to_owned(),
    };
    let version_key = format!("{MESSAGE_VERSION_PREFIX}{message_id}");
    let ticket = received.ticket(&version_key, None, None, "payload.")?;
    let stored = PlainDelivery {
        thread_id: ticket.key().ticket_id.clone(),
        title: ticket.subject().to_owned(),
        text: ticket.body().to_owned(),
        ..received
    };
    let message = Message {
        id: message_id.to_owned(),
        author,
        sent_at,
        text: stored.text.clone(),
    };
    let mut payload = to_payload(&stored);
    if let Some(o) = payload.as_object_mut() {
        o.insert(
            "message".into(),
            serde_json::to_value(&message).unwrap_or_default(),
        );
        o.insert("received_at".into(), Value::String(now.to_rfc3339()));
    }
    Ok(Accepted::Ticket(NewDelivery {
        key: ticket.key().clone(),
        event_type,
        payload,
        missing_fields: if version.is_none() {
            vec!["webhookMetadata.webhookTargetVersion".to_owned()]
        } else {
            Vec::new()
        },
        webhook_version: version,
        trace_context: None,
    }))
}

/// The first non-blank string among `pointers`.
fn first_text<'a>(v: &'a Value, pointers: &[&str]) -> Option<&'a str> {
    pointers.iter().find_map(|p| {
        v.pointer(p)
            .and_then(Value::as_str)
            .filter(|s| !s.trim().is_empty())
    })
}

#[async_trait]
impl Ticketing for Plain {
    fn source(&self) -> Source {
        Source::Plain
    }

    fn accept(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        now: DateTime<Utc>,
    ) -> Result<Accepted, WebhookError> {
        let previous = self.settings.webhook_secret_previous.as_ref();
        let secret = WEBHOOK.secret(self.settings.webhook_secret.as_ref())?;
        let v = WEBHOOK.verified_json(headers, body, secret, previous)?;
        let event_type = required_str(&v, "/type", "type")?.to_owned();
        let ts_text = required_str(
            &v,
            "/webhookMetadata/webhookDeliveryAttemptTimestamp",
            "webhookMetadata.webhookDeliveryAttemptTimestamp",
        )?;
        let ts = DateTime::parse_from_rfc3339(ts_text)
            .map_err(|_| {
                WebhookError::MissingField("webhookMetadata.webhookDeliveryAttemptTimestamp".into())
            })?
            .with_timezone(&Utc);
        let skew = (now - ts).abs().to_std().unwrap_or(Duration::MAX);
        if skew > self.settings.replay_window {
            return Err(WebhookError::Stale(ts_text.to_owned()));
        }
        let version = payload_version(&v);
        tracing::info!(
            event_type,
            webhook_version = version.as_deref().unwrap_or("unversioned"),
            "plain webhook verified"
        );
        if let Some(change) = overrides::plain_change(&event_type, &v) {
            return Ok(Accepted::Override(overrides::Observed::Plain(change)));
        }
        if let Some((author, object)) = message_event(&event_type) {
            return message_delivery(&v, event_type, author, object, version, now);
        }
        if !self.settings.event_types.contains(&event_type) {
            return Ok(Accepted::Ignored { event_type });
        }
        let event_id = v.get("id").and_then(Value::as_str).unwrap_or("");
        let thread_id = required_str(&v, "/payload/thread/id", "payload.thread.id")?;
        let title = required_str(&v, "/payload/thread/title", "payload.thread.title")?;
        let customer_id = required_str(
            &v,
            "/payload/thread/customer/id",
            "payload.thread.customer.id",
        )?;
        let updated_at = first_text(&v, &["/payload/thread/updatedAt"]);
        let ticket_version = updated_at
            .or((!event_id.trim().is_empty()).then_some(event_id))
            .ok_or_else(|| WebhookError::MissingField("payload.thread.updatedAt".into()))?;
        let message = first_text(
            &v,
            &[
                "/payload/email/textContent",
                "/payload/email/markdownContent",
                "/payload/chat/text",
            ],
        );
        let preview = first_text(&v, &["/payload/thread/previewText"]);
        let text = message.or(preview).unwrap_or(title);
        // What the lenient parse did without, for the weekly audit (a new payload version
        // that drops a field shows up here before it shows up as misroutes).
        let mut missing = Vec::new();
        if version.is_none() {
            missing.push("webhookMetadata.webhookTargetVersion".to_owned());
        }
        if updated_at.is_none() {
            missing.push("payload.thread.updatedAt".to_owned());
        }
        if message.is_none() && preview.is_none() {
            missing.push("payload.thread.previewText".to_owned());
        }
        // Validate now, so a ticket the domain rejects is a 400 naming the field, not a
        // delivery that fails later. Long text is cut rather than refused: a long first email is
        // still a ticket, and a refusal would only make Plain retry it for days.
        let received = PlainDelivery {
            event_id: event_id.to_owned(),
            thread_id: thread_id.to_owned(),
            title: crate::text::truncate_chars(title, MAX_SUBJECT_CHARS).to_owned(),
            text: crate::text::truncate_chars(text, MAX_BODY_CHARS).to_owned(),
            customer_id: customer_id.to_owned(),
        };
        let ticket = received.ticket(ticket_version, None, None, "payload.thread.")?;
        // What is stored is the ticket as parsed (trimmed, without NUL).
        let stored = PlainDelivery {
            thread_id: ticket.key().ticket_id.clone(),
            title: ticket.subject().to_owned(),
            text: ticket.body().to_owned(),
            ..received
        };
        Ok(Accepted::Ticket(NewDelivery {
            key: ticket.key().clone(),
            event_type,
            payload: to_payload(&stored),
            webhook_version: version,
            missing_fields: missing,
            trace_context: None,
        }))
    }

    fn webhook_version(&self, body: &[u8]) -> Option<String> {
        payload_version(&serde_json::from_slice(body).ok()?)
    }

    async fn ticket(&self, d: &PendingDelivery) -> Result<Ticket, TicketingError> {
        let p: PlainDelivery = from_delivery(d)?;
        let (mut tier, mut arr, mut failed) = (None, None, false);
        let mut routing = RoutingRead::NotRead;
        if self.settings.api_key.is_some() {
            match self.enrich(&p.thread_id).await {
                Ok(e) => {
                    (tier, arr) = (e.tier, e.arr_usd);
                    routing = e.routing.map_or_else(
                        || {
                            RoutingRead::Failed(
                                "plain threadForRouting answered without the thread's priority"
                                    .to_owned(),
                            )
                        },
                        RoutingRead::Read,
                    );
                }
                Err(e) => {
                    let why = crate::causes::chain(&e);
                    enrichment_failed(Source::Plain, d, e, self.settings.enrichment_attempts)?;
                    failed = true;
                    routing = RoutingRead::Failed(why);
                }
            }
        }
        let source = tier.map_or(TierSource::Default, |(_, s)| s);
        let tier = tier.map_or(self.settings.default_tier, |(t, _)| t);
        p.ticket(
            &d.key.version,
            Some(tier),
            arr.or(self.settings.default_arr_usd),
            "",
        )
        .map(|t| t.with_tier_source(source, failed).with_routing(routing))
        .map_err(TicketingError::InvalidTicket)
    }

    async fn route_change(
        &self,
        observed: &overrides::Observed,
        targets: &RouteTargets,
        _decided: Route,
    ) -> Result<Option<overrides::RouteChange>, TicketingError> {
        Ok(match observed {
            overrides::Observed::Plain(c) => overrides::plain_route_change(c, targets),
            overrides::Observed::Pylon { .. } => None,
        })
    }

    async fn execute(&self, a: &Action) -> Result<(), TicketingError> {
        // Every action is one mutation: the arms say which, with what input, and which error
        // codes mean it is already done.
        let (op, query, input, done_codes): (&str, &str, Value, &[&str]) =
            match from_row::<PlainAction>(a)? {
                PlainAction::Label {
                    thread_id,
                    label_type_ids,
                } => (
                    "addLabels",
                    ADD_LABELS,
                    json!({ "threadId": thread_id, "labelTypeIds": label_type_ids }),
                    &["label_with_given_type_already_added_to_thread"],
                ),
                PlainAction::Unlabel {
                    thread_id,
                    label_type_ids,
                } => {
                    let label_ids = self.labels_of_types(&thread_id, &label_type_ids).await?;
                    if label_ids.is_empty() {
                        return Ok(());
                    }
                    let input = json!({ "labelIds": label_ids });
                    ("removeLabels", REMOVE_LABELS, input, &[])
                }
                PlainAction::Priority {
                    thread_id,
                    priority,
                } => {
                    if priority > 3 {
                        return Err(TicketingError::InvalidPayload(format!(
                            "priority {priority} is not within 0..=3"
                        )));
                    }
                    let input = json!({ "threadId": thread_id, "priority": priority });
                    ("changeThreadPriority", CHANGE_PRIORITY, input, &[])
                }
                PlainAction::Assign { thread_id, user_id } => {
                    let input = json!({ "threadId": thread_id, "userId": user_id });
                    ("assignThread", ASSIGN_THREAD, input, &[])
                }
                PlainAction::Note {
                    thread_id,
                    customer_id,
                    decision_id,
                    text,
                    markdown,
                } => {
                    // A retry may follow a createNote that went through but was never recorded
                    // done (a crash, a database blip): look for the note before posting it
                    // again. The first attempt never pays for the lookup.
                    if a.attempts > 1
                        && self
                            .note_posted(&thread_id, &note_marker(&decision_id))
                            .await?
                    {
                        tracing::info!(
                            thread_id,
                            "plain note was posted by an earlier attempt; not posting it again"
                        );
                        return Ok(());
                    }
                    let input = json!({
                        "customerId": customer_id,
                        "threadId": thread_id,
                        "text": text,
                        "markdown": markdown,
                    });
                    ("createNote", CREATE_NOTE, input, &[])
                }
            };
        self.mutate(op, query, input, done_codes).await
    }
}

#[cfg(test)]
mod tests {
    use hmac::{Hmac, Mac as _};
    use reqwest::header::HeaderValue;
    use secrecy::SecretString;
    use sha2::Sha256;

    use super::*;

    const BODY: &[u8] = include_bytes!("testdata/plain-thread-created.json");

    fn plain(secret: Option<&str>) -> Plain {
        Plain::new(PlainSettings {
            api_url: "http://127.0.0.1:9/graphql".into(),
            api_key: None,
            webhook_secret: secret.map(SecretString::from),
            webhook_secret_previous: None,
            event_types: vec!["thread.thread_created".into()],
            replay_window: Duration::from_secs(300),
            default_tier: Tier::Pro,
            default_arr_usd: Some(1_000.0),
            enrichment_attempts: 3,
            timeout: Duration::from_secs(1),
            tier_from: vec![
                PlainTierFrom::Thread,
                PlainTierFrom::Tenant,
                PlainTierFrom::Company,
            ],
            tier_tenant_field: None,
            arr_tenant_field: None,
        })
        .unwrap()
    }

    fn headers(sig: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(SIGNATURE_HEADER, HeaderValue::from_str(sig).unwrap());
        h
    }

    fn sign(body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(b"secret").unwrap();
        mac.update(body);
        hex::encode(mac.finalize().into_bytes())
    }

    /// The SDK tests' frozen clock: 299.927 s after the attempt timestamp.
    fn now() -> DateTime<Utc> {
        "2023-10-19T14:17:26.000Z".parse().unwrap()
    }

    #[test]
    fn the_reference_vectors_verify() {
        let p = plain(Some("secret"));
        let sig = "ae0d54c966dea1056b6ced04d1bafc3358af592469b5fd55553dcb036b58a1ef";
        let Accepted::Ticket(d) = p.accept(&headers(sig), BODY, now()).unwrap() else {
            panic!("not a ticket")
        };
        assert_eq!(d.key.source, Source::Plain);
        assert_eq!(d.key.ticket_id, "th_01HD44FHMCDSSWE38N14FSYV6K");
        assert_eq!(d.key.version, "2023-10-19T14:12:25.266Z");
        assert_eq!(d.event_type, "thread.thread_created");
        assert_eq!(d.payload["title"], "Unable to tail logs");
        assert_eq!(
            d.payload["text"],
            "Hey, I am currently unable to tail the logs of the service svc-8af1e3"
        );
        assert_eq!(d.payload["customer_id"], "c_01HD44FHDPG82VQ4QNHDR4N2T0");

        // A newer webhook version is accepted, not rejected.
        let newer = String::from_utf8(BODY.to_vec())
            .unwrap()
            .replace("\"2026-02-27\"", "\"2026-04-21\"");
        let sig = "52fc5815f1cb0558a19f6a249b3177d50a75952d55a23ec2c2d505207f5095bd";
        assert!(matches!(
            p.accept(&headers(sig), newer.as_bytes(), now()).unwrap(),
            Accepted::Ticket(_)
        ));

        // Valid signature, missing title: 400 naming the field.
        let no_title = String::from_utf8(BODY.to_vec())
            .unwrap()
            .replace("\"title\":\"Unable to tail logs\",", "");
        let sig = "5656d05d265cea83d60afe94b440eff2ef403a8d77f6bf5483e5e83f3e5b1499";
        let e = p
            .accept(&headers(sig), no_title.as_bytes(), now())
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "missing or invalid field `payload.thread.title`"
        );

        // Valid signature, not JSON.
        let sig = "1bff4699de4fb5202a4b1e6cefd7b5fdfb02d19a67a1eb371dd417a45b0a47df";
        let e = p.accept(&headers(sig), b"hello-world", now()).unwrap_err();
        assert!(matches!(e, WebhookError::Malformed(_)), "{e:?}");
    }

    #[test]
    fn signatures_and_the_replay_window_are_enforced() {
        let p = plain(Some("secret"));
        let good = sign(BODY);
        let e = p.accept(&HeaderMap::new(), BODY, now()).unwrap_err();
        assert!(matches!(e, WebhookError::MissingSignature(_)));
        let e = plain(Some("other"))
            .accept(&headers(&good), BODY, now())
            .unwrap_err();
        assert!(matches!(e, WebhookError::BadSignature));
        let late = now() + chrono::Duration::seconds(2);
        let e = p.accept(&headers(&good), BODY, late).unwrap_err();
        assert_eq!(
            e.to_string(),
            "delivery timestamp 2023-10-19T14:12:26.073Z is outside the replay window"
        );
        let early = now() - chrono::Duration::minutes(10);
        assert!(matches!(
            p.accept(&headers(&good), BODY, early).unwrap_err(),
            WebhookError::Stale(_)
        ));
        let e = plain(None)
            .accept(&headers(&good), BODY, now())
            .unwrap_err();
        assert!(matches!(e, WebhookError::NotConfigured { .. }));
    }

    #[test]
    fn other_events_are_acknowledged_and_ignored() {
        let p = plain(Some("secret"));
        let body = String::from_utf8(BODY.to_vec()).unwrap().replace(
            "\"type\":\"thread.thread_created\"",
            "\"type\":\"thread.some_future_event\"",
        );
        let r = p
            .accept(&headers(&sign(body.as_bytes())), body.as_bytes(), now())
            .unwrap();
        assert_eq!(
            r,
            Accepted::Ignored {
                event_type: "thread.some_future_event".into()
            }
        );
    }

    #[test]
    fn long_text_is_cut_not_refused() {
        let p = plain(Some("secret"));
        let long = "x".repeat(MAX_BODY_CHARS + 10);
        let body = String::from_utf8(BODY.to_vec()).unwrap().replace(
            "Hey, I am currently unable to tail the logs of the service svc-8af1e3",
            &long,
        );
        let Accepted::Ticket(d) = p
            .accept(&headers(&sign(body.as_bytes())), body.as_bytes(), now())
            .unwrap()
        else {
            panic!("not a ticket")
        };
        assert_eq!(
            d.payload["text"].as_str().unwrap().chars().count(),
            MAX_BODY_CHARS
        );
    }

    #[test]
    fn missing_metadata_names_the_field() {
        let p = plain(Some("secret"));
        let body = br#"{"type":"thread.thread_created","payload":{}}"#;
        let e = p.accept(&headers(&sign(body)), body, now()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "missing or invalid field `webhookMetadata.webhookDeliveryAttemptTimestamp`"
        );
    }

    /// A `thread.email_received` (or `_sent`) body as reference/plain.md §2 shapes it.
    fn email_event(kind: &str, start: bool, text: Option<&str>) -> Vec<u8> {
        let mut email = json!({"id": "em_1", "subject": "Re: logs", "isStartOfThread": start,
            "createdAt": {"iso8601": "2023-10-19T14:12:00.000Z"}});
        if let Some(t) = text {
            email["textContent"] = json!(t);
        }
        json!({
            "id": "pEv_m1", "type": kind, "timestamp": "2023-10-19T14:12:25.266Z",
            "payload": {"eventType": kind, "email": email, "thread": {
                "id": "th_01HD44FHMCDSSWE38N14FSYV6K", "title": "Unable to tail logs",
                "customer": {"id": "c_01HD44FHDPG82VQ4QNHDR4N2T0"}}},
            "webhookMetadata": {"webhookTargetVersion": "2026-02-27",
                "webhookDeliveryAttemptTimestamp": "2023-10-19T14:12:26.073Z"}
        })
        .to_string()
        .into_bytes()
    }

    #[test]
    fn message_events_are_keyed_by_message_with_their_author() {
        let p = plain(Some("secret"));
        let accept = |body: Vec<u8>| p.accept(&headers(&sign(&body)), &body, now());
        let Accepted::Ticket(d) = accept(email_event(
            "thread.email_received",
            false,
            Some("Still down, we lost data 😱"),
        ))
        .unwrap() else {
            panic!("not a delivery")
        };
        assert_eq!(d.key.version, "message:em_1");
        assert_eq!(d.payload["message"]["author"], "customer");
        assert_eq!(d.payload["message"]["text"], "Still down, we lost data 😱");
        assert_eq!(d.payload["message"]["sent_at"], "2023-10-19T14:12:00Z");
        let Accepted::Ticket(d) =
            accept(email_event("thread.email_sent", false, Some("On it."))).unwrap()
        else {
            panic!("not a delivery")
        };
        assert_eq!(d.payload["message"]["author"], "agent");
        // The first message is thread_created's.
        assert!(matches!(
            accept(email_event("thread.email_received", true, Some("hi"))).unwrap(),
            Accepted::Ignored { .. }
        ));
        // No text: 400 naming the field.
        let e = accept(email_event("thread.email_received", false, None)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "missing or invalid field `payload.email.textContent`"
        );
    }

    #[test]
    fn tiers_are_read_from_external_id_or_name() {
        assert_eq!(
            tier_of(&json!({"externalId": "enterprise"})),
            Some(Tier::Enterprise)
        );
        assert_eq!(
            tier_of(&json!({"externalId": "x", "name": "Pro"})),
            Some(Tier::Pro)
        );
        assert_eq!(tier_of(&json!({"name": "Gold"})), None);
    }
}
