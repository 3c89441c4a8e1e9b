//! The ticketing tools (Plain, Pylon) behind one trait: webhook verification and parsing,
//! building the ticket (enrichment), and executing the actions a decision implies.
//!
//! The webhook flow is: verify the signature over the raw bytes → parse leniently → store the
//! delivery under its idempotency key ([`Bridge::receive`]) → answer 2xx. A worker
//! (`crate::actions`) then builds the ticket through the adapter, decides it (which logs the
//! decision with its actions in one transaction) and executes the actions from the log.

pub mod plain;
pub mod pylon;
pub mod settings;

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac as _};
use reqwest::header::HeaderMap;
use secrecy::{ExposeSecret as _, SecretString};
use sha2::Sha256;
use tokio::sync::Notify;

use crate::{
    domain::{Decision, DomainError, Severity, Source, Ticket},
    store::{Action, NewAction, NewDelivery, PendingDelivery, Store, StoreError},
    triage::ActionPlanner,
};

pub use plain::Plain;
pub use pylon::Pylon;
pub use settings::{PlainTarget, PylonTarget, RouteTargets, TicketingSettings};

/// Key in a stored delivery's payload holding the W3C `traceparent` of the webhook request.
pub const TRACEPARENT_KEY: &str = "_traceparent";

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
    /// The routing log cannot be written; the sender must retry.
    #[error("the routing log is unavailable; retry later")]
    StoreUnavailable(#[source] StoreError),
    /// Anything else; details are logged, never returned.
    #[error("internal error")]
    Unexpected(#[source] StoreError),
}

impl From<StoreError> for WebhookError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(_) => WebhookError::StoreUnavailable(e),
            other => WebhookError::Unexpected(other),
        }
    }
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
            | TicketingError::InvalidPayload(_) => false,
        }
    }

    /// The delay the tool asked for, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            TicketingError::RateLimited { retry_after } => Some(*retry_after),
            _ => None,
        }
    }

    /// The error with its cause chain, for logs and `last_error` (no secrets: requests carry the
    /// key in a header, which reqwest errors do not print).
    pub fn chain(&self) -> String {
        let mut s = self.to_string();
        let mut cur = std::error::Error::source(self);
        while let Some(c) = cur {
            s.push_str(": ");
            s.push_str(&c.to_string());
            cur = c.source();
        }
        s
    }
}

/// What a verified, parsed webhook asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Accepted {
    /// A new ticket (or a new version of one) to store and decide.
    Ticket(NewDelivery),
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

    /// Builds the ticket for a stored delivery: fetches what the webhook did not carry and adds
    /// tier and ARR.
    ///
    /// # Errors
    /// [`TicketingError`]; retryable ones are tried again later.
    async fn ticket(&self, delivery: &PendingDelivery) -> Result<Ticket, TicketingError>;

    /// Executes one logged action. Must be safe to repeat after a crash between the tool's
    /// answer and the log's update.
    ///
    /// # Errors
    /// [`TicketingError`]; retryable ones are tried again later with backoff.
    async fn execute(&self, action: &Action) -> Result<(), TicketingError>;
}

/// The configured adapters, by source.
#[derive(Clone)]
pub struct Adapters {
    plain: Arc<dyn Ticketing>,
    pylon: Arc<dyn Ticketing>,
}

impl Adapters {
    /// The adapters for `settings`.
    ///
    /// # Errors
    /// When an HTTP client cannot be built (TLS roots unavailable).
    pub fn new(settings: &TicketingSettings) -> Result<Self, reqwest::Error> {
        Ok(Self {
            plain: Arc::new(Plain::new(settings.plain.clone())?),
            pylon: Arc::new(Pylon::new(settings.pylon.clone())?),
        })
    }

    /// The adapter for `source`; `None` for `api` (no tool behind it).
    pub fn get(&self, source: Source) -> Option<&Arc<dyn Ticketing>> {
        match source {
            Source::Plain => Some(&self.plain),
            Source::Pylon => Some(&self.pylon),
            Source::Api => None,
        }
    }
}

/// What [`Bridge::receive`] did with a delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    /// Stored for the first time; it will be decided and routed.
    Accepted,
    /// Its key was stored before; nothing else happened.
    Duplicate,
    /// An event type the bridge does not act on.
    Ignored,
}

impl Received {
    /// The word used in the response body and logs.
    pub fn as_str(&self) -> &'static str {
        match self {
            Received::Accepted => "accepted",
            Received::Duplicate => "duplicate",
            Received::Ignored => "ignored",
        }
    }
}

/// The webhook use case: verify, parse, make durable, wake the worker.
#[derive(Clone)]
pub struct Bridge {
    store: Arc<dyn Store>,
    adapters: Adapters,
    wake: Arc<Notify>,
}

impl Bridge {
    /// A bridge storing into `store`; `wake` is notified after each new delivery.
    pub fn new(store: Arc<dyn Store>, adapters: Adapters, wake: Arc<Notify>) -> Self {
        Self {
            store,
            adapters,
            wake,
        }
    }

    /// Handles one delivery for `source`. `Ok` means the delivery is durable (or deliberately
    /// ignored), so the sender may be told 2xx.
    ///
    /// # Errors
    /// [`WebhookError`] from verification and parsing, or when the store cannot be written.
    pub async fn receive(
        &self,
        source: Source,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<Received, WebhookError> {
        let Some(adapter) = self.adapters.get(source) else {
            return Err(WebhookError::MissingField("source".into()));
        };
        match adapter.accept(headers, body, Utc::now())? {
            Accepted::Ignored { event_type } => {
                tracing::info!(%source, event_type, "webhook event ignored");
                Ok(Received::Ignored)
            }
            Accepted::Ticket(mut delivery) => {
                // The worker that decides the delivery continues this request's trace.
                if let (Some(tp), Some(obj)) = (
                    crate::telemetry::traceparent_of(&tracing::Span::current()),
                    delivery.payload.as_object_mut(),
                ) {
                    obj.insert(TRACEPARENT_KEY.to_owned(), tp.into());
                }
                if self.store.accept_delivery(&delivery).await? {
                    tracing::info!(key = %delivery.key, event_type = delivery.event_type, "webhook delivery stored");
                    self.wake.notify_one();
                    Ok(Received::Accepted)
                } else {
                    tracing::info!(key = %delivery.key, "duplicate webhook delivery acknowledged");
                    Ok(Received::Duplicate)
                }
            }
        }
    }
}

/// Checks a hex HMAC-SHA256 of `body` under `secret`, in constant time. Upper- or lower-case hex
/// is accepted; anything that is not hex of the right length fails.
pub fn signature_matches(secret: &SecretString, body: &[u8], signature_hex: &str) -> bool {
    let Ok(given) = hex::decode(signature_hex.trim()) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.expose_secret().as_bytes()) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&given).is_ok()
}

/// The signature header's value, or the error naming it.
pub(crate) fn verify_signature(
    headers: &HeaderMap,
    header: &'static str,
    secret: &SecretString,
    body: &[u8],
) -> Result<(), WebhookError> {
    let sig = headers
        .get(header)
        .and_then(|v| v.to_str().ok())
        .ok_or(WebhookError::MissingSignature(header))?;
    if signature_matches(secret, body, sig) {
        Ok(())
    } else {
        Err(WebhookError::BadSignature)
    }
}

/// Maps a decision to the actions it implies in the ticket's tool, from the per-route targets
/// of the configuration. Kinds: `plain.label`, `plain.priority`, `plain.assign`, `plain.note`,
/// `pylon.update`, `pylon.note`.
#[derive(Debug, Clone)]
pub struct RoutingPlanner {
    routes: RouteTargets,
    /// Acting on Plain needs `PLAIN_API_KEY`; without it decisions are only logged.
    plain_enabled: bool,
    /// Acting on Pylon needs `PYLON_API_TOKEN`.
    pylon_enabled: bool,
    /// The tool `api` tickets are routed back through (their ids are that tool's ids), if any.
    api_tool: Option<Source>,
}

impl RoutingPlanner {
    /// A planner for `settings`.
    pub fn new(settings: &TicketingSettings) -> Self {
        Self {
            routes: settings.routes.clone(),
            plain_enabled: settings.plain.api_key.is_some(),
            pylon_enabled: settings.pylon.api_token.is_some(),
            api_tool: settings.api_tool,
        }
    }
}

/// Longest internal note Plain accepts, in characters (reference/plain.md, "Internal note").
/// The renderers stay far below it: the reasoning in a note is cut to
/// [`crate::domain::MAX_REASONING_CHARS`].
pub const PLAIN_NOTE_MAX_CHARS: usize = 10_000;

/// The reasoning as a note shows it: one sentence, cut by characters (before any escaping, so a
/// cut never splits an entity).
fn note_reasoning(d: &Decision) -> std::borrow::Cow<'_, str> {
    crate::text::ellipsize(&d.reasoning, crate::domain::MAX_REASONING_CHARS)
}

/// The internal note shown to agents: severity, route, confidence and the model's reasoning.
pub fn note_text(d: &Decision) -> String {
    let mut s = format!(
        "escalator: {} -> {} (confidence {:.2}). {}",
        d.severity,
        d.route,
        d.confidence,
        note_reasoning(d)
    );
    if d.fallback {
        s.push_str(" [fallback: the offline classifier decided]");
    }
    s.push('\n');
    s.push_str(&note_marker(&d.id));
    s
}

/// The last line of every Plain note: Plain notes have no idempotency key, so a retried
/// `plain.note` looks for this line among the thread's notes before posting again.
pub fn note_marker(decision_id: &str) -> String {
    format!("escalator decision {decision_id}")
}

impl ActionPlanner for RoutingPlanner {
    fn plan(&self, ticket: &Ticket, d: &Decision) -> Vec<NewAction> {
        let tool = match d.source {
            Source::Api => self.api_tool,
            other => Some(other),
        };
        let route = d.route;
        match tool {
            Some(Source::Plain) if self.plain_enabled => {
                plan_plain(self.routes.plain(route), ticket, d)
            }
            Some(Source::Pylon) if self.pylon_enabled => plan_pylon(self.routes.pylon(route), d),
            Some(Source::Plain | Source::Pylon | Source::Api) | None => Vec::new(),
        }
    }
}

fn plan_plain(target: &PlainTarget, ticket: &Ticket, d: &Decision) -> Vec<NewAction> {
    let thread_id = &d.ticket_id;
    let mut out = Vec::new();
    if !target.label_type_ids.is_empty() {
        out.push(NewAction {
            kind: "plain.label".into(),
            payload: serde_json::json!({
                "thread_id": thread_id,
                "label_type_ids": target.label_type_ids,
            }),
        });
    }
    out.push(NewAction {
        kind: "plain.priority".into(),
        payload: serde_json::json!({ "thread_id": thread_id, "priority": target.priority }),
    });
    if let Some(user_id) = &target.assignee_user_id {
        out.push(NewAction {
            kind: "plain.assign".into(),
            payload: serde_json::json!({ "thread_id": thread_id, "user_id": user_id }),
        });
    }
    // createNote needs the customer; a ticket without one gets no note.
    if let Some(customer_id) = ticket.customer_id() {
        let text = note_text(d);
        out.push(NewAction {
            kind: "plain.note".into(),
            payload: serde_json::json!({
                "thread_id": thread_id,
                "customer_id": customer_id,
                "decision_id": d.id,
                "text": text,
                "markdown": note_markdown(d),
            }),
        });
    }
    out
}

/// The internal note as Markdown for Plain.
pub fn note_markdown(d: &Decision) -> String {
    let mut s = format!(
        "**escalator**: `{}` → `{}` (confidence {:.2})\n\n{}",
        d.severity,
        d.route,
        d.confidence,
        note_reasoning(d)
    );
    if d.fallback {
        s.push_str("\n\n_fallback: the offline classifier decided_");
    }
    s.push_str("\n\n");
    s.push_str(&note_marker(&d.id));
    s
}

fn plan_pylon(target: &PylonTarget, d: &Decision) -> Vec<NewAction> {
    let issue_id = &d.ticket_id;
    let mut out = Vec::new();
    if !target.tags.is_empty() || target.team_id.is_some() || target.assignee_id.is_some() {
        out.push(NewAction {
            kind: "pylon.update".into(),
            payload: serde_json::json!({
                "issue_id": issue_id,
                "tags": target.tags,
                "team_id": target.team_id,
                "assignee_id": target.assignee_id,
            }),
        });
    }
    out.push(NewAction {
        kind: "pylon.note".into(),
        payload: serde_json::json!({
            "issue_id": issue_id,
            "decision_id": d.id,
            "body_html": note_html(d),
        }),
    });
    out
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
    if d.fallback {
        s.push_str("<p><i>fallback: the offline classifier decided</i></p>");
    }
    s.push_str(&format!("<p>decision {}</p>", escape_html(&d.id)));
    s
}

/// Escapes text for an HTML body.
pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The default Plain priority of a severity (0 urgent … 3 low).
pub fn default_priority(severity: Severity) -> u8 {
    match severity {
        Severity::OnFire => 0,
        Severity::Urgent => 1,
        Severity::Routine => 2,
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

/// A JSON string at `pointer` in a stored payload.
pub(crate) fn payload_str<'a>(
    v: &'a serde_json::Value,
    field: &str,
) -> Result<&'a str, TicketingError> {
    v.get(field)
        .and_then(serde_json::Value::as_str)
        .ok_or_else(|| TicketingError::InvalidPayload(format!("missing {field}")))
}

#[cfg(test)]
mod tests {
    use std::{collections::BTreeMap, io::Write as _};

    use super::*;
    use crate::{
        config::Settings,
        domain::{RawTicket, Route, Tier, Usage},
    };

    fn settings(toml: &str, env: &[(&str, &str)]) -> TicketingSettings {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(toml.as_bytes()).unwrap();
        let path = f.path().to_str().unwrap().to_owned();
        let mut map = BTreeMap::from([("ESCALATOR_CONFIG", path.as_str())]);
        map.extend(env.iter().copied());
        Settings::load(&map).unwrap().ticketing
    }

    fn ticket(source: Source, customer: &str) -> Ticket {
        Ticket::parse(
            source,
            RawTicket {
                id: "th_1".into(),
                body: "Production is down".into(),
                customer_id: customer.into(),
                ..RawTicket::default()
            },
            "",
        )
        .unwrap()
    }

    fn decision(source: Source, fallback: bool) -> Decision {
        Decision {
            id: "dec-1".into(),
            source,
            ticket_id: "th_1".into(),
            ticket_version: "1".into(),
            severity: Severity::OnFire,
            route: Route::Engineering,
            confidence: 0.9,
            reasoning: "Production <down> & losing data.".into(),
            prompt_version: "p@1".into(),
            model: "offline".into(),
            fallback,
            fallback_reason: fallback.then(|| "timeout".to_owned()),
            notes: None,
            tier: Tier::Free,
            usage: Usage::default(),
            trace_id: None,
            observation_id: None,
            created_at: Utc::now(),
        }
    }

    const ROUTES: &str = "[routes.engineering.plain]\nlabel_type_ids = [\"lt_eng\"]\nassignee_user_id = \"u_1\"\n[routes.engineering.pylon]\ntags = [\"on-fire\"]\n";
    const KEYS: &[(&str, &str)] = &[("PLAIN_API_KEY", "k"), ("PYLON_API_TOKEN", "t")];

    fn kinds(actions: &[NewAction]) -> Vec<&str> {
        actions.iter().map(|a| a.kind.as_str()).collect()
    }

    #[test]
    fn a_plain_decision_plans_label_priority_assignment_and_note() {
        let p = RoutingPlanner::new(&settings(ROUTES, KEYS));
        let d = decision(Source::Plain, false);
        let a = p.plan(&ticket(Source::Plain, "c_1"), &d);
        assert_eq!(
            kinds(&a),
            [
                "plain.label",
                "plain.priority",
                "plain.assign",
                "plain.note"
            ]
        );
        assert_eq!(
            a[0].payload,
            serde_json::json!({"thread_id": "th_1", "label_type_ids": ["lt_eng"]})
        );
        assert_eq!(
            a[1].payload,
            serde_json::json!({"thread_id": "th_1", "priority": 0})
        );
        assert_eq!(a[3].payload["customer_id"], "c_1");
        assert_eq!(
            a[3].payload["text"],
            "escalator: on_fire -> engineering (confidence 0.90). Production <down> & losing data.\nescalator decision dec-1"
        );
        // Without a customer there is no note (createNote needs one).
        let a = p.plan(&ticket(Source::Plain, ""), &d);
        assert_eq!(kinds(&a), ["plain.label", "plain.priority", "plain.assign"]);
    }

    #[test]
    fn a_pylon_decision_plans_update_and_an_escaped_note() {
        let p = RoutingPlanner::new(&settings(ROUTES, KEYS));
        let d = decision(Source::Pylon, true);
        let a = p.plan(&ticket(Source::Pylon, ""), &d);
        assert_eq!(kinds(&a), ["pylon.update", "pylon.note"]);
        assert_eq!(
            a[0].payload,
            serde_json::json!({"issue_id": "th_1", "tags": ["on-fire"], "team_id": null, "assignee_id": null})
        );
        let html = a[1].payload["body_html"].as_str().unwrap();
        assert!(
            html.contains("Production &lt;down&gt; &amp; losing data."),
            "{html}"
        );
        assert!(html.contains("fallback"), "{html}");
    }

    #[test]
    fn nothing_is_planned_without_credentials_or_for_api_by_default() {
        let p = RoutingPlanner::new(&settings(ROUTES, &[]));
        assert!(
            p.plan(
                &ticket(Source::Plain, "c_1"),
                &decision(Source::Plain, false)
            )
            .is_empty()
        );
        assert!(
            p.plan(&ticket(Source::Pylon, ""), &decision(Source::Pylon, false))
                .is_empty()
        );
        let p = RoutingPlanner::new(&settings(ROUTES, KEYS));
        assert!(
            p.plan(&ticket(Source::Api, "c_1"), &decision(Source::Api, false))
                .is_empty()
        );
        let with_api = format!("[actions]\napi_tool = \"plain\"\n{ROUTES}");
        let p = RoutingPlanner::new(&settings(&with_api, KEYS));
        assert_eq!(
            kinds(&p.plan(&ticket(Source::Api, "c_1"), &decision(Source::Api, false))),
            [
                "plain.label",
                "plain.priority",
                "plain.assign",
                "plain.note"
            ]
        );
    }

    #[test]
    fn signatures_are_checked_in_hex_of_either_case() {
        let secret = SecretString::from("secret");
        let sig = "1bff4699de4fb5202a4b1e6cefd7b5fdfb02d19a67a1eb371dd417a45b0a47df";
        assert!(signature_matches(&secret, b"hello-world", sig));
        assert!(signature_matches(
            &secret,
            b"hello-world",
            &sig.to_uppercase()
        ));
        assert!(!signature_matches(&secret, b"hello-world!", sig));
        assert!(!signature_matches(&secret, b"hello-world", &sig[..62]));
        assert!(!signature_matches(&secret, b"hello-world", "zz"));
        assert!(!signature_matches(
            &SecretString::from("other"),
            b"hello-world",
            sig
        ));
    }

    #[test]
    fn html_is_escaped() {
        assert_eq!(
            escape_html("<b>\"a\" & 'b'</b>"),
            "&lt;b&gt;&quot;a&quot; &amp; &#39;b&#39;&lt;/b&gt;"
        );
    }

    #[test]
    fn retryable_errors_are_the_transient_ones() {
        assert!(
            TicketingError::Upstream {
                status: 500,
                message: String::new()
            }
            .is_retryable()
        );
        assert!(
            TicketingError::RateLimited {
                retry_after: Duration::from_secs(1)
            }
            .is_retryable()
        );
        assert!(
            !TicketingError::Rejected {
                status: 400,
                message: String::new()
            }
            .is_retryable()
        );
        assert!(!TicketingError::NotFound("x".into()).is_retryable());
    }
}
