//! Pylon: trigger webhooks in (signed with `X-Pylon-Signature`, a hex HMAC-SHA256 of the raw
//! body), REST out. Pylon has no fixed webhook payload: the trigger's body is written by the
//! customer, so escalator asks for a minimal "doorbell" and reads the issue over the API:
//!
//! ```json
//! {"issue_id": "{{ issue.id }}", "event": "issue.created"}
//! ```
//!
//! `event` is a constant typed into each trigger and is the ticket's version: the same issue
//! sent again for the same event is a duplicate. An optional `version` field overrides it (for
//! a trigger that should re-route on every update, template an update marker into it).
//!
//! Pylon's per-endpoint rate limits are low (10 notes a minute), so every call waits for a
//! token of its endpoint's bucket; a wait longer than [`MAX_TOKEN_WAIT`] hands the action back
//! to the worker to retry later instead of failing it.
//!
//! Over 450 lines on purpose: everything Pylon-specific sits here, the webhook parse, the typed
//! actions a decision is planned into ([`PylonAction`], [`plan`]), the note renderer and the
//! REST calls (behind the rate-limit buckets) that execute them.

use std::{sync::Mutex, time::Duration};

use tokio::time::Instant;

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
    settings::{PylonSettings, PylonTarget, RouteTargets},
    webhook::Webhook,
};
use crate::{
    domain::{
        Decision, DomainError, IdempotencyKey, MAX_ID_BYTES, RawTicket, Route, RoutingRead, Source,
        Ticket, Tier, TierSource, ToolRouting,
        conversation::{Author, MESSAGE_VERSION_PREFIX, Message},
        work::{Action, ActionKind, NewDelivery, PendingDelivery},
    },
    text::escape_html,
};

/// The signature header.
pub const SIGNATURE_HEADER: &str = "X-Pylon-Signature";
/// How Pylon webhooks are signed and configured.
const WEBHOOK: Webhook = Webhook::new(Source::Pylon, SIGNATURE_HEADER, "PYLON_WEBHOOK_SECRET");
/// Longest a call waits for a rate-limit token before the work is rescheduled.
pub const MAX_TOKEN_WAIT: Duration = Duration::from_secs(20);

/// What escalator asks Pylon to do, one variant per action kind. Adjacently tagged, so the tag
/// and its content are the outbox's `kind` (`pylon.update`, `pylon.note`) and `payload`
/// columns exactly as rows have always been stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "payload")]
pub enum PylonAction {
    /// `PATCH /issues/{id}`: tags added to the current ones, team and assignee set.
    #[serde(rename = "pylon.update")]
    Update {
        /// The issue.
        issue_id: String,
        /// Tags to add (merged with the issue's current tags, since PATCH replaces the set).
        #[serde(default)]
        tags: Vec<String>,
        /// Team to set, if any.
        team_id: Option<String>,
        /// Assignee to set, if any.
        assignee_id: Option<String>,
    },
    /// `POST /issues/{id}/note`: the internal note with the decision.
    #[serde(rename = "pylon.note")]
    Note {
        /// The issue.
        issue_id: String,
        /// The decision the note shows; a retry looks for it among the issue's messages.
        decision_id: String,
        /// [`note_html`].
        body_html: String,
    },
}

impl ToolAction for PylonAction {
    fn kind(&self) -> ActionKind {
        match self {
            PylonAction::Update { .. } => ActionKind::PylonUpdate,
            PylonAction::Note { .. } => ActionKind::PylonNote,
        }
    }
}

/// What a Pylon delivery stores: the "doorbell" (the issue itself is read over the API when
/// the worker builds the ticket); its fields are the `payload` keys of stored deliveries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PylonDelivery {
    /// The issue to route.
    pub issue_id: String,
    /// The trigger's event constant.
    pub event: String,
}

/// The actions `d` implies in Pylon for a route landing on `target`: the update (if the route
/// sets tags, a team or an assignee) and the internal note.
pub fn plan(target: &PylonTarget, d: &Decision) -> Vec<PylonAction> {
    let issue_id = &d.ticket_id;
    let mut out = Vec::new();
    if !target.tags.is_empty() || target.team_id.is_some() || target.assignee_id.is_some() {
        out.push(PylonAction::Update {
            issue_id: issue_id.clone(),
            tags: target.tags.clone(),
            team_id: target.team_id.clone(),
            assignee_id: target.assignee_id.clone(),
        });
    }
    out.push(PylonAction::Note {
        issue_id: issue_id.clone(),
        decision_id: d.id.clone(),
        body_html: note_html(d),
    });
    out
}

/// The actions of a follow-up's re-decision that raised the severity (see
/// `ActionPlanner::plan_follow_up`): for a raise, the route's update as for a new ticket (tags
/// are added; Pylon has no priority) and the note headed by what changed; for a note-only
/// raise, the note alone.
pub fn plan_follow_up(
    target: &PylonTarget,
    d: &Decision,
    change: crate::domain::FollowUpChange,
) -> Vec<PylonAction> {
    let head = super::port::follow_up_head(d, change);
    let mut out = plan(target, d);
    if matches!(change, crate::domain::FollowUpChange::WouldRaise { .. }) {
        out.retain(|a| matches!(a, PylonAction::Note { .. }));
    }
    for a in &mut out {
        if let PylonAction::Note { body_html, .. } = a {
            *body_html = format!("<p>{}</p>{body_html}", escape_html(&head));
        }
    }
    out
}

/// An issue's routing as `GET /issues/{id}` reports it: its tags, team and assignee (Pylon's
/// issue has no priority; its `state` is not routing, escalator never sets it).
fn routing_of(issue: &Value) -> ToolRouting {
    let id = |p: &str| issue.pointer(p).and_then(Value::as_str).map(str::to_owned);
    ToolRouting {
        labels: issue
            .get("tags")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        priority: None,
        assignee: id("/assignee/id"),
        team: id("/team/id"),
    }
}

/// How the issue's routing `now` differs from what escalator's done updates `acted` (oldest
/// first) set (see `ActionPlanner::routing_moved`): the team and assignee it last set, and its
/// routing tags: every tag it added must be there, and no other route's tag (of any route in
/// `routes`) may be. Tags no route uses are not routing and are not compared.
pub fn routing_moved(routes: &RouteTargets, now: &ToolRouting, acted: &[Action]) -> Option<String> {
    use std::collections::BTreeSet;
    let mut tags = BTreeSet::new();
    let (mut team, mut assignee) = (None, None);
    for a in acted
        .iter()
        .filter(|a| a.status == crate::domain::work::ActionStatus::Done)
    {
        if let Ok(PylonAction::Update {
            tags: added,
            team_id,
            assignee_id,
            ..
        }) = from_row::<PylonAction>(a)
        {
            tags.extend(added);
            team = team_id.or(team);
            assignee = assignee_id.or(assignee);
        }
    }
    for (what, set, has) in [
        ("team", team, now.team.as_deref()),
        ("assignee", assignee, now.assignee.as_deref()),
    ] {
        if let Some(set) = set {
            if has != Some(set.as_str()) {
                return Some(format!(
                    "{what} is {}, escalator set {set}",
                    has.unwrap_or("none")
                ));
            }
        }
    }
    if let Some(gone) = tags.iter().find(|t| !now.labels.contains(t)) {
        return Some(format!("tag {gone} escalator added is gone"));
    }
    let routing: BTreeSet<&String> = routes.pylon_targets().flat_map(|t| t.tags.iter()).collect();
    now.labels
        .iter()
        .find(|t| routing.contains(t) && !tags.contains(*t))
        .map(|t| format!("tag {t} is on the issue, escalator did not set it"))
}

/// The `event` of the Pylon trigger that rings for a new message on an issue (a follow-up).
pub const PYLON_MESSAGE_EVENT: &str = "issue.message_received";

/// One of `GET /issues/{id}/messages` as a conversation message: internal notes
/// (`is_private`) are left out; an author with a `contact` is the customer, any other (a
/// `user`) the team (reference/pylon.md §5 lists `author` without its shape: unverified).
fn message_of(m: &Value) -> Option<Message> {
    if m.get("is_private").and_then(Value::as_bool) == Some(true) {
        return None;
    }
    let text = html_to_text(m.get("message_html").and_then(Value::as_str)?);
    if text.trim().is_empty() {
        return None;
    }
    let sent_at = m
        .get("timestamp")
        .and_then(Value::as_str)
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())?
        .with_timezone(&Utc);
    let author = if m.pointer("/author/contact").is_some_and(|c| !c.is_null()) {
        Author::Customer
    } else {
        Author::Agent
    };
    Some(Message {
        id: m.get("id").and_then(Value::as_str)?.to_owned(),
        author,
        sent_at,
        text: crate::text::truncate_chars(&text, crate::domain::MAX_BODY_CHARS).to_owned(),
    })
}

/// The note as HTML for Pylon, with every value escaped.
pub fn note_html(d: &Decision) -> String {
    let mut s = format!(
        "<p><b>escalator</b>: {} → {} (confidence {:.2})</p><p>{}</p>",
        escape_html(d.severity.as_str()),
        escape_html(d.route.as_str()),
        d.confidence,
        escape_html(&note_reasoning(d))
    );
    if let Some(l) = note_labels(d) {
        s.push_str(&format!("<p>{}</p>", escape_html(&l)));
    }
    if d.fallback {
        s.push_str("<p><i>fallback: the offline classifier decided</i></p>");
    }
    s.push_str(&format!("<p>decision {}</p>", escape_html(&d.id)));
    s
}

/// A token bucket for one endpoint: `capacity` calls at once, refilled at the endpoint's
/// per-minute limit (times this replica's share).
#[derive(Debug)]
struct Bucket {
    capacity: f64,
    per_sec: f64,
    state: Mutex<(f64, Instant)>,
}

impl Bucket {
    fn new(per_minute: u32, share: f64) -> Self {
        let per_min = (f64::from(per_minute) * share).max(1.0);
        Self {
            capacity: per_min.floor().max(1.0),
            per_sec: per_min / 60.0,
            state: Mutex::new((per_min.floor().max(1.0), Instant::now())),
        }
    }

    /// Takes a token, waiting up to [`MAX_TOKEN_WAIT`] for one (the call queues behind earlier
    /// ones); a longer wait is returned as [`TicketingError::RateLimited`].
    async fn acquire(&self) -> Result<(), TicketingError> {
        let wait = {
            let mut s = self
                .state
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let now = Instant::now();
            let refilled = s.0 + now.duration_since(s.1).as_secs_f64() * self.per_sec;
            s.0 = refilled.min(self.capacity);
            s.1 = now;
            let wait = if s.0 >= 1.0 {
                Duration::ZERO
            } else {
                Duration::from_secs_f64((1.0 - s.0) / self.per_sec)
            };
            if wait > MAX_TOKEN_WAIT {
                return Err(TicketingError::RateLimited { retry_after: wait });
            }
            // Reserve the token now; the balance may go negative, which queues later callers.
            s.0 -= 1.0;
            wait
        };
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        Ok(())
    }
}

/// The rate limits of the endpoints the adapter calls (requests per minute, from Pylon's
/// OpenAPI descriptions).
#[derive(Debug)]
struct Limits {
    get_issue: Bucket,
    patch_issue: Bucket,
    note: Bucket,
    messages: Bucket,
    get_account: Bucket,
}

/// The Pylon adapter.
#[derive(Debug)]
pub struct Pylon {
    settings: PylonSettings,
    http: reqwest::Client,
    limits: Limits,
}

impl Pylon {
    /// An adapter for `settings`.
    ///
    /// # Errors
    /// When the HTTP client cannot be built.
    pub fn new(settings: PylonSettings) -> Result<Self, reqwest::Error> {
        let http = http::client(settings.timeout)?;
        let share = settings.rate_share;
        Ok(Self {
            settings,
            http,
            limits: Limits {
                get_issue: Bucket::new(60, share),
                patch_issue: Bucket::new(20, share),
                note: Bucket::new(10, share),
                messages: Bucket::new(20, share),
                get_account: Bucket::new(60, share),
            },
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.settings.api_url)
    }

    /// Sends one request after taking a token from `bucket`; returns the `data` of the answer.
    async fn call(
        &self,
        bucket: &Bucket,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, TicketingError> {
        let Some(token) = &self.settings.api_token else {
            return Err(TicketingError::NotConfigured("PYLON_API_TOKEN"));
        };
        bucket.acquire().await?;
        let mut req = self
            .http
            .request(method.clone(), self.url(path))
            .bearer_auth(token.expose_secret());
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.map_err(TicketingError::Transport)?;
        let status = resp.status();
        let text = http::answer_text(resp, Duration::from_secs(30)).await?;
        let v: Option<Value> = serde_json::from_str(&text).ok();
        let request_id = v
            .as_ref()
            .and_then(|v| v.get("request_id"))
            .and_then(Value::as_str)
            .unwrap_or("");
        tracing::debug!(%method, path, status = status.as_u16(), request_id, "pylon answered");
        // The call and its status first, so a failure names what was asked (`pylon GET
        // /issues/iss_1 answered 401`), then what Pylon said, with our token kept out.
        let called = format!("pylon {method} {path} answered {}", status.as_u16());
        let message = || {
            v.as_ref()
                .and_then(|v| v.pointer("/errors/0"))
                .and_then(Value::as_str)
                .map_or_else(
                    || called.clone(),
                    |said| http::without_secret(&format!("{called}: {said}"), token),
                )
        };
        if status.as_u16() == 404 {
            return Err(TicketingError::NotFound(called));
        }
        http::check_status(status, message)?;
        http::take_data(v, status)
    }

    /// A `GET` of `path` behind `bucket` (the reads have no body).
    async fn get(&self, bucket: &Bucket, path: &str) -> Result<Value, TicketingError> {
        self.call(bucket, reqwest::Method::GET, path, None).await
    }

    /// A write of `body` to `path` behind `bucket`; only its success matters, not the answer.
    async fn send(
        &self,
        bucket: &Bucket,
        method: reqwest::Method,
        path: &str,
        body: Value,
    ) -> Result<(), TicketingError> {
        self.call(bucket, method, path, Some(body)).await.map(drop)
    }

    async fn issue(&self, issue_id: &str) -> Result<Value, TicketingError> {
        self.get(&self.limits.get_issue, &format!("/issues/{issue_id}"))
            .await
    }

    /// Tier and ARR of an account from its custom fields (`GET /accounts/{id}`): the slugs
    /// `[pylon] account_tier_field` and `account_arr_field` name, the tier's value mapped by
    /// `tier_values` (else read as a tier name).
    ///
    /// # Errors
    /// [`TicketingError`] from the call.
    pub async fn account(
        &self,
        account_id: &str,
    ) -> Result<(Option<Tier>, Option<f64>), TicketingError> {
        let path = format!("/accounts/{account_id}");
        let account = self.get(&self.limits.get_account, &path).await?;
        let field = |slug: &str| custom_field(&account, slug);
        let tier = self
            .settings
            .account_tier_field
            .as_deref()
            .and_then(field)
            .and_then(Value::as_str)
            .and_then(|v| {
                let v = v.trim();
                self.settings
                    .tier_values
                    .get(&v.to_lowercase())
                    .copied()
                    .or_else(|| Tier::parse("tier", v).ok())
            });
        let arr = self
            .settings
            .account_arr_field
            .as_deref()
            .and_then(field)
            .and_then(|v| match v {
                Value::Number(n) => n.as_f64(),
                Value::String(s) => s.trim().replace([',', '_'], "").parse::<f64>().ok(),
                _ => None,
            })
            .filter(|a| a.is_finite() && *a >= 0.0);
        Ok((tier, arr))
    }

    /// The issue's current tags and team, for an agent's override.
    ///
    /// # Errors
    /// [`TicketingError`] from `GET /issues/{id}`.
    async fn routing_of(
        &self,
        issue_id: &str,
    ) -> Result<(Vec<String>, Option<String>), TicketingError> {
        let issue = self.issue(issue_id).await?;
        let tags = issue
            .get("tags")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect();
        let team = issue
            .pointer("/team/id")
            .and_then(Value::as_str)
            .map(str::to_owned);
        Ok((tags, team))
    }

    /// Adds the route's tags (merged with the current ones, since PATCH replaces the set) and
    /// sets team and assignee; skips the PATCH when the issue already looks like that.
    async fn update(
        &self,
        issue_id: &str,
        add_tags: &[String],
        team_id: Option<&str>,
        assignee_id: Option<&str>,
    ) -> Result<(), TicketingError> {
        let issue = self.issue(issue_id).await?;
        let mut tags: Vec<String> = issue
            .get("tags")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        let mut changed = false;
        for t in add_tags {
            if !tags.iter().any(|have| have == t) {
                tags.push(t.clone());
                changed = true;
            }
        }
        let mut body = serde_json::Map::new();
        body.insert("tags".into(), json!(tags));
        for (field, current, want) in [
            ("team_id", "/team/id", team_id),
            ("assignee_id", "/assignee/id", assignee_id),
        ] {
            if let Some(want) = want {
                if issue.pointer(current).and_then(Value::as_str) != Some(want) {
                    changed = true;
                }
                body.insert(field.into(), json!(want));
            }
        }
        if !changed {
            tracing::info!(issue_id, "pylon issue already routed; nothing to patch");
            return Ok(());
        }
        let path = format!("/issues/{issue_id}");
        let body = Value::Object(body);
        self.send(
            &self.limits.patch_issue,
            reqwest::Method::PATCH,
            &path,
            body,
        )
        .await
    }

    /// Posts the internal note. A retry first looks for the note among the issue's messages (a
    /// crash after Pylon stored it but before the log was updated must not post it twice).
    async fn note(
        &self,
        issue_id: &str,
        decision_id: &str,
        body_html: &str,
        attempts: u32,
    ) -> Result<(), TicketingError> {
        if attempts > 1 {
            let path = format!("/issues/{issue_id}/messages");
            let messages = self.get(&self.limits.messages, &path).await?;
            let posted = messages.as_array().into_iter().flatten().any(|m| {
                m.get("message_html")
                    .and_then(Value::as_str)
                    .is_some_and(|h| h.contains(decision_id))
            });
            if posted {
                tracing::info!(issue_id, "pylon note was posted by an earlier attempt");
                return Ok(());
            }
        }
        let path = format!("/issues/{issue_id}/note");
        let body = json!({ "body_html": body_html });
        self.send(&self.limits.note, reqwest::Method::POST, &path, body)
            .await
    }
}

/// The value of an account's custom field `slug` (`{slug, value, values}`): its `value`, else
/// the first of its `values`.
fn custom_field<'a>(account: &'a Value, slug: &str) -> Option<&'a Value> {
    let f = account.pointer("/custom_fields")?.get(slug)?;
    f.get("value")
        .filter(|v| !v.is_null())
        .or_else(|| f.pointer("/values/0"))
}

/// The shape of a trigger's body, its "version": Pylon payloads are written by hand in each
/// trigger, so an edit of the template (a field renamed, added or dropped) is the Pylon form
/// of a tool update. The sorted top-level keys, e.g. `keys:event,issue_id` (`not-an-object`
/// for anything else), at most 200 characters.
pub fn trigger_shape(v: &Value) -> String {
    match v.as_object() {
        Some(o) => {
            let mut keys: Vec<&str> = o.keys().map(String::as_str).collect();
            keys.sort_unstable();
            crate::text::excerpt(&format!("keys:{}", keys.join(",")), 200)
        }
        None => "not-an-object".to_owned(),
    }
}

/// Plain text of an HTML fragment: tags dropped (block ends become line breaks), the common
/// entities decoded, blank runs collapsed.
pub fn html_to_text(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut rest = html;
    while let Some(i) = rest.find('<') {
        out.push_str(&rest[..i]);
        let Some(j) = rest[i..].find('>') else {
            rest = "";
            break;
        };
        let tag = rest[i + 1..i + j]
            .trim_start_matches('/')
            .to_ascii_lowercase();
        if ["p", "br", "div", "li", "tr", "h1", "h2", "h3"]
            .iter()
            .any(|t| {
                tag == *t || tag.starts_with(&format!("{t} ")) || tag.starts_with(&format!("{t}/"))
            })
        {
            out.push('\n');
        }
        rest = &rest[i + j + 1..];
    }
    out.push_str(rest);
    let decoded = out
        .replace("&nbsp;", " ")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&");
    decoded
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("\n")
}

#[async_trait]
impl Ticketing for Pylon {
    fn source(&self) -> Source {
        Source::Pylon
    }

    fn accept(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        _now: DateTime<Utc>,
    ) -> Result<Accepted, WebhookError> {
        let secret = WEBHOOK.secret(self.settings.webhook_secret.as_ref())?;
        // The issue is read over the API, so without a token nothing could be decided.
        if self.settings.api_token.is_none() {
            return Err(WEBHOOK.not_configured("PYLON_API_TOKEN"));
        }
        let previous = self.settings.webhook_secret_previous.as_ref();
        let v = WEBHOOK.verified_json(headers, body, secret, previous)?;
        let issue_id = required_str(&v, "/issue_id", "issue_id")?.trim();
        let event = required_str(&v, "/event", "event")?.trim();
        let given_version = v
            .get("version")
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty());
        // Without `version` every event of an issue shares one key, so a later update of the
        // issue is taken for a redelivery: recorded for the weekly audit's tool-update symptom.
        let missing = if given_version.is_none() {
            vec!["version".to_owned()]
        } else {
            Vec::new()
        };
        // A message trigger's doorbell is a follow-up, one per message: its `version` (the
        // message marker the trigger templates) keys it.
        let version = if event == PYLON_MESSAGE_EVENT {
            format!("{MESSAGE_VERSION_PREFIX}{}", given_version.unwrap_or(event))
        } else {
            given_version.unwrap_or(event).to_owned()
        };
        let version = version.as_str();
        // All three are stored as keys: bounded, and without control characters (PostgreSQL
        // TEXT cannot hold NUL).
        for (field, value) in [
            ("issue_id", issue_id),
            ("version", version),
            ("event", event),
        ] {
            if value.len() > MAX_ID_BYTES {
                return Err(DomainError::invalid(
                    field,
                    format!("is {} bytes, the limit is {MAX_ID_BYTES}", value.len()),
                )
                .into());
            }
            if crate::text::has_control(value) {
                return Err(
                    DomainError::invalid(field, "must not contain control characters").into(),
                );
            }
        }
        if issue_id.contains(['/', '?', '#']) {
            return Err(DomainError::invalid("issue_id", "must not contain / ? or #").into());
        }
        if let Some(o) = overrides::pylon_doorbell(event, issue_id) {
            return Ok(Accepted::Override(o));
        }
        Ok(Accepted::Ticket(NewDelivery {
            key: IdempotencyKey::new(Source::Pylon, issue_id, version),
            event_type: event.to_owned(),
            payload: to_payload(&PylonDelivery {
                issue_id: issue_id.to_owned(),
                event: event.to_owned(),
            }),
            webhook_version: Some(trigger_shape(&v)),
            missing_fields: missing,
            trace_context: None,
        }))
    }

    fn webhook_version(&self, body: &[u8]) -> Option<String> {
        Some(trigger_shape(&serde_json::from_slice(body).ok()?))
    }

    async fn ticket(&self, d: &PendingDelivery) -> Result<Ticket, TicketingError> {
        let PylonDelivery { issue_id, .. } = from_delivery(d)?;
        let issue = self.issue(&issue_id).await?;
        let title = issue.get("title").and_then(Value::as_str).unwrap_or("");
        let text = html_to_text(issue.get("body_html").and_then(Value::as_str).unwrap_or(""));
        let body = if text.trim().is_empty() { title } else { &text };
        let customer = ["/requester/id", "/account/id"]
            .iter()
            .find_map(|p| issue.pointer(p).and_then(Value::as_str))
            .unwrap_or("");
        let (mut tier, mut arr, mut failed) = (None, None, false);
        let wanted =
            self.settings.account_tier_field.is_some() || self.settings.account_arr_field.is_some();
        let account_id = issue
            .pointer("/account/id")
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|a| !a.is_empty() && !a.contains(['/', '?', '#']));
        if let (true, Some(account_id)) = (wanted, account_id) {
            match self.account(account_id).await {
                Ok((t, a)) => (tier, arr) = (t, a),
                Err(e) => {
                    enrichment_failed(Source::Pylon, d, e, self.settings.enrichment_attempts)?;
                    failed = true;
                }
            }
        }
        let source = if tier.is_some() {
            TierSource::PylonAccount
        } else {
            TierSource::Default
        };
        Ticket::parse(
            Source::Pylon,
            RawTicket {
                id: issue_id,
                version: d.key.version.clone(),
                subject: crate::text::truncate_chars(title, crate::domain::MAX_SUBJECT_CHARS)
                    .to_owned(),
                body: crate::text::truncate_chars(body, crate::domain::MAX_BODY_CHARS).to_owned(),
                tier: Some(tier.unwrap_or(self.settings.default_tier)),
                arr_usd: arr.or(self.settings.default_arr_usd),
                customer_id: customer.to_owned(),
            },
            "issue.",
        )
        .map(|t| {
            t.with_tier_source(source, failed)
                .with_routing(RoutingRead::Read(routing_of(&issue)))
        })
        .map_err(TicketingError::InvalidTicket)
    }

    async fn thread_messages(
        &self,
        d: &PendingDelivery,
    ) -> Result<Option<Vec<Message>>, TicketingError> {
        if !d.key.version.starts_with(MESSAGE_VERSION_PREFIX) {
            return Ok(None);
        }
        let PylonDelivery { issue_id, .. } = from_delivery(d)?;
        let path = format!("/issues/{issue_id}/messages");
        let messages = self.get(&self.limits.messages, &path).await?;
        Ok(Some(
            messages
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(message_of)
                .collect(),
        ))
    }

    async fn route_change(
        &self,
        observed: &overrides::Observed,
        targets: &RouteTargets,
        decided: Route,
    ) -> Result<Option<overrides::RouteChange>, TicketingError> {
        let overrides::Observed::Pylon { issue_id } = observed else {
            return Ok(None);
        };
        let (tags, team) = self.routing_of(issue_id).await?;
        Ok(overrides::pylon_route_change(&tags, team, targets, decided))
    }

    async fn execute(&self, a: &Action) -> Result<(), TicketingError> {
        match from_row::<PylonAction>(a)? {
            PylonAction::Update {
                issue_id,
                tags,
                team_id,
                assignee_id,
            } => {
                self.update(&issue_id, &tags, team_id.as_deref(), assignee_id.as_deref())
                    .await
            }
            PylonAction::Note {
                issue_id,
                decision_id,
                body_html,
            } => {
                self.note(&issue_id, &decision_id, &body_html, a.attempts)
                    .await
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_becomes_text() {
        for (html, text) in [
            (
                "<p>Prod is <b>down</b> &amp; we&#39;re losing data</p><p>help!</p>",
                "Prod is down & we're losing data\nhelp!",
            ),
            ("a<br/>b", "a\nb"),
            ("plain", "plain"),
        ] {
            assert_eq!(html_to_text(html), text, "{html}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_bucket_queues_then_hands_back() {
        // 10 a minute: ten at once, the eleventh waits six seconds for a token.
        let b = Bucket::new(10, 1.0);
        for _ in 0..10 {
            b.acquire().await.unwrap();
        }
        let start = Instant::now();
        b.acquire().await.unwrap();
        assert!(start.elapsed() >= Duration::from_secs(6));
        // Five at once: the first three queue (6, 12, 18 s), the rest would wait past the
        // limit and are handed back to be retried later.
        let (a, b2, c, d, e) = tokio::join!(
            b.acquire(),
            b.acquire(),
            b.acquire(),
            b.acquire(),
            b.acquire()
        );
        let results = [a, b2, c, d, e];
        assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 3);
        for r in results.iter().filter_map(|r| r.as_ref().err()) {
            let wait = r.retry_after().unwrap();
            assert!(wait > MAX_TOKEN_WAIT, "{wait:?}");
        }
    }
}
