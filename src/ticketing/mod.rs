//! The ticketing tools (Plain, Pylon) as adapters behind two ports: [`Ticketing`] (webhook
//! verification and parsing, building the ticket with enrichment, executing actions) and
//! [`ActionPlanner`] (the actions a decision implies). Each tool's module holds all of it for
//! that tool: its webhook parse, its typed actions ([`PlainAction`], [`PylonAction`]), how a
//! decision is planned into them and rendered as a note, and how they are executed.
//!
//! The webhook use case that drives the adapters is `crate::triage::accept`; the worker
//! (`crate::worker`) builds the ticket through the adapter, decides it (which logs the decision
//! with its actions in one transaction) and executes the actions from the log.

pub mod plain;
pub mod pylon;
pub mod settings;

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac as _};
use reqwest::header::HeaderMap;
use secrecy::{ExposeSecret as _, SecretString};
use serde::{Serialize, de::DeserializeOwned};
use sha2::Sha256;

use crate::{
    domain::{Decision, DomainError, Source, Ticket},
    store::{Action, NewAction, NewDelivery, PendingDelivery, StoreError},
};

pub use plain::{
    PLAIN_NOTE_MAX_CHARS, Plain, PlainAction, PlainDelivery, note_markdown, note_marker, note_text,
};
pub use pylon::{Pylon, PylonAction, PylonDelivery, escape_html, note_html};
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

/// Builds the actions a decision implies (empty when the ticket's source has nothing to act on).
pub trait ActionPlanner: Send + Sync {
    /// The actions for `decision` on `ticket`, written in the same transaction as the decision.
    fn plan(&self, ticket: &Ticket, decision: &Decision) -> Vec<NewAction>;
}

/// A planner that plans nothing (decisions are logged, nobody is told).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoActions;

impl ActionPlanner for NoActions {
    fn plan(&self, _ticket: &Ticket, _decision: &Decision) -> Vec<NewAction> {
        Vec::new()
    }
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

    /// The adapter that executes actions of `kind`: the tool named before its dot (the tag of
    /// [`PlainAction`] and [`PylonAction`], e.g. `plain.note`), `None` for any other kind.
    pub fn for_kind(&self, kind: &str) -> Option<&Arc<dyn Ticketing>> {
        let (tool, _) = kind.split_once('.')?;
        self.get(Source::parse("kind", tool).ok()?)
    }
}

/// Maps a decision to the actions it implies in the ticket's tool, from the per-route targets
/// of the configuration: [`PlainAction`]s or [`PylonAction`]s, planned by their adapter's
/// module.
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

impl ActionPlanner for RoutingPlanner {
    fn plan(&self, ticket: &Ticket, d: &Decision) -> Vec<NewAction> {
        let tool = match d.source {
            Source::Api => self.api_tool,
            other => Some(other),
        };
        let route = d.route;
        match tool {
            Some(Source::Plain) if self.plain_enabled => {
                plain::plan(self.routes.plain(route), ticket, d)
                    .iter()
                    .map(to_row)
                    .collect()
            }
            Some(Source::Pylon) if self.pylon_enabled => pylon::plan(self.routes.pylon(route), d)
                .iter()
                .map(to_row)
                .collect(),
            Some(Source::Plain | Source::Pylon | Source::Api) | None => Vec::new(),
        }
    }
}

/// A typed action as the outbox row it is stored as. The action enums are adjacently tagged
/// (`kind`, `payload`), exactly the two columns, so the row format is the enum's serde form.
fn to_row<T: Serialize>(action: &T) -> NewAction {
    // Serialising a derived enum of strings and numbers cannot fail.
    let mut v = serde_json::to_value(action).unwrap_or_default();
    NewAction {
        kind: v
            .get("kind")
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        payload: v
            .get_mut("payload")
            .map(serde_json::Value::take)
            .unwrap_or_default(),
    }
}

/// An outbox row as the adapter's typed action; a row that does not decode (a bug or a manual
/// edit) is [`TicketingError::InvalidPayload`], never retried.
fn from_row<T: DeserializeOwned>(a: &Action) -> Result<T, TicketingError> {
    serde_json::from_value(serde_json::json!({ "kind": a.kind, "payload": a.payload }))
        .map_err(|e| TicketingError::InvalidPayload(format!("{}: {e}", a.kind)))
}

/// A stored delivery's payload as the adapter's typed shape (the one it stored at accept;
/// unknown keys such as [`TRACEPARENT_KEY`] are skipped).
fn from_delivery<T: DeserializeOwned>(d: &PendingDelivery) -> Result<T, TicketingError> {
    T::deserialize(&d.payload).map_err(|e| TicketingError::InvalidPayload(e.to_string()))
}

/// The adapter's typed delivery shape as the payload stored with it.
fn to_payload<T: Serialize>(delivery: &T) -> serde_json::Value {
    // Serialising a derived struct of strings cannot fail.
    serde_json::to_value(delivery).unwrap_or_default()
}

/// The reasoning as a note shows it: one sentence, cut by characters (before any escaping, so a
/// cut never splits an entity).
fn note_reasoning(d: &Decision) -> std::borrow::Cow<'_, str> {
    crate::text::ellipsize(&d.reasoning, crate::domain::MAX_REASONING_CHARS)
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

#[cfg(test)]
mod tests {
    use std::{collections::BTreeMap, io::Write as _};

    use super::*;
    use crate::{
        config::Settings,
        domain::{RawTicket, Route, Severity, Tier, Usage},
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

    fn row(kind: &str, payload: serde_json::Value, attempts: u32) -> Action {
        Action {
            id: 1,
            decision_id: "dec-1".into(),
            source: Source::Plain,
            ticket_id: "th_1".into(),
            kind: kind.into(),
            payload,
            status: "pending".into(),
            attempts,
            last_error: None,
            internal_errors: 0,
        }
    }

    /// Rows written before the actions were typed (kind strings, JSON payloads) decode into
    /// the enums, and a planned action is stored in exactly that shape.
    #[test]
    fn rows_stored_before_the_typed_actions_still_decode() {
        let old = row(
            "plain.note",
            serde_json::json!({"thread_id": "th_1", "customer_id": "c_1", "decision_id": "dec-1",
                "text": "t", "markdown": "m"}),
            1,
        );
        let note = PlainAction::Note {
            thread_id: "th_1".into(),
            customer_id: "c_1".into(),
            decision_id: "dec-1".into(),
            text: "t".into(),
            markdown: "m".into(),
        };
        assert_eq!(from_row::<PlainAction>(&old).unwrap(), note);
        assert_eq!(
            to_row(&note),
            NewAction {
                kind: old.kind.clone(),
                payload: old.payload.clone()
            }
        );
        for (kind, payload) in [
            (
                "plain.label",
                serde_json::json!({"thread_id": "th_1", "label_type_ids": ["lt_1"]}),
            ),
            (
                "plain.priority",
                serde_json::json!({"thread_id": "th_1", "priority": 0}),
            ),
            (
                "plain.assign",
                serde_json::json!({"thread_id": "th_1", "user_id": "u_1"}),
            ),
        ] {
            let a: PlainAction = from_row(&row(kind, payload.clone(), 1)).unwrap();
            assert_eq!(
                to_row(&a),
                NewAction {
                    kind: kind.into(),
                    payload
                },
                "{kind}"
            );
        }
        for (kind, payload) in [
            (
                "pylon.update",
                serde_json::json!({"issue_id": "i_1", "tags": ["on-fire"],
                "team_id": null, "assignee_id": "u_2"}),
            ),
            (
                "pylon.note",
                serde_json::json!({"issue_id": "i_1", "decision_id": "dec-1",
                "body_html": "<p>x</p>"}),
            ),
        ] {
            let a: PylonAction = from_row(&row(kind, payload.clone(), 1)).unwrap();
            assert_eq!(
                to_row(&a),
                NewAction {
                    kind: kind.into(),
                    payload
                },
                "{kind}"
            );
        }
        let e =
            from_row::<PlainAction>(&row("plain.unknown", serde_json::json!({}), 1)).unwrap_err();
        assert!(matches!(e, TicketingError::InvalidPayload(_)), "{e:?}");
        assert!(!e.is_retryable());
        let e = from_row::<PylonAction>(&row("pylon.note", serde_json::json!({"issue_id": 1}), 1))
            .unwrap_err();
        assert!(
            e.to_string().starts_with("invalid payload: pylon.note: "),
            "{e}"
        );
    }

    /// A stored delivery's payload (with the traceparent the bridge adds) reads back typed.
    #[test]
    fn stored_deliveries_read_back_typed() {
        let d = PendingDelivery {
            key: crate::domain::IdempotencyKey::new(Source::Plain, "th_1", "v1"),
            event_type: "thread.thread_created".into(),
            payload: serde_json::json!({"event_id": "e_1", "thread_id": "th_1", "title": "T",
                "text": "B", "customer_id": "c_1", TRACEPARENT_KEY: "00-abc-def-01"}),
            attempts: 1,
            internal_errors: 0,
        };
        let p: PlainDelivery = from_delivery(&d).unwrap();
        assert_eq!(
            (p.thread_id.as_str(), p.title.as_str(), p.text.as_str()),
            ("th_1", "T", "B")
        );
        assert!(from_delivery::<PylonDelivery>(&d).is_err());
    }

    #[test]
    fn actions_run_on_the_tool_their_kind_names() {
        let adapters = Adapters::new(&settings("", &[])).unwrap();
        assert_eq!(
            adapters.for_kind("plain.note").map(|a| a.source()),
            Some(Source::Plain)
        );
        assert_eq!(
            adapters.for_kind("pylon.update").map(|a| a.source()),
            Some(Source::Pylon)
        );
        assert!(adapters.for_kind("api.note").is_none());
        assert!(adapters.for_kind("slack").is_none());
    }
}
