//! Pure types of the routing problem: tickets, the three buckets, decisions.
//!
//! Raw input (protobuf, webhook JSON, database rows, model output) is parsed into these types
//! once, at the edge; everything inside the service works with values that are already valid.
//!
//! Over 700 lines: the vocabulary every layer imports (ticket, severity, route, tier, decision,
//! the classifier's answer) in one file so it is read in one place; about a quarter of it is
//! its tests. The types only some layers need have their own files: [`review`] (the
//! reviewer's verdicts), [`sample`] (the daily sample's design), [`audit`] (the rows the audit
//! reads), [`clause`] (the definition clauses by name).

use std::{collections::BTreeMap, fmt};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::text;

pub mod audit;
pub mod clause;
pub mod conversation;
pub mod review;

/// Longest accepted ticket id, customer id or version, in bytes.
pub const MAX_ID_BYTES: usize = 256;
/// Longest accepted subject, in characters.
pub const MAX_SUBJECT_CHARS: usize = 1_000;
/// Longest accepted first message, in characters (32 KiB of text is far beyond a real first
/// message, and keeps one ticket from costing more than a few cents of model input).
pub const MAX_BODY_CHARS: usize = 32_768;
/// Longest reasoning kept, in words; longer answers are trimmed and flagged.
pub const MAX_REASONING_WORDS: usize = 20;
/// Longest reasoning kept, in characters: 20 words can still be 20 very long "words" (a URL, a
/// run of emoji), and the reasoning goes into notes that the tools cap (Plain: 10,000 chars).
pub const MAX_REASONING_CHARS: usize = 300;
/// Longest fallback reason or validation note kept in the log, in characters (they can quote
/// the model's output, which is untrusted and unbounded).
pub const MAX_NOTE_CHARS: usize = 200;
/// What a decision says when its classifier gave no reasoning at all.
pub const NO_REASONING: &str = "No reasoning given.";

/// An input that cannot become a domain value. The message names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    /// A field is missing, too long or has a value outside its set.
    #[error("invalid {field}: {reason}")]
    InvalidField {
        /// The field's name as the caller spelled it (e.g. `ticket.body`).
        field: String,
        /// What is wrong with it.
        reason: String,
    },
}

impl DomainError {
    /// Shorthand for [`DomainError::InvalidField`].
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::InvalidField {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($(#[$vmeta])* $variant),+ }

        impl $name {
            /// Every value, in order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The lowercase wire and database spelling.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            /// Parses the lowercase spelling, case-insensitively and ignoring surrounding blanks.
            ///
            /// # Errors
            /// [`DomainError::InvalidField`] naming `field` when the text is not one of the values.
            pub fn parse(field: &str, text: &str) -> Result<Self, DomainError> {
                let t = text.trim();
                $(if t.eq_ignore_ascii_case($text) { return Ok($name::$variant); })+
                Err(DomainError::invalid(
                    field,
                    format!("{t:?} is not one of {}", [$($text),+].join(", ")),
                ))
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { f.write_str(self.as_str()) }
        }
    };
}

// After the macro, so the queue rows and the sample design can use it.
pub mod sample;
pub mod work;

string_enum! {
    /// How urgent a ticket is; the route follows from it.
    Severity {
        /// Docs answers, how-to, FAQ, feature requests.
        Routine = "routine",
        /// Enterprise, churn risk, billing disputes, repeats within 24 h, competitor in frustration.
        Urgent = "urgent",
        /// Outage, data loss, security, legal, billing dispute over $1k, "need a human now".
        OnFire = "on_fire",
    }
}

string_enum! {
    /// Who handles a ticket.
    Route {
        /// The support bot (deflection).
        Bot = "bot",
        /// A human agent.
        Human = "human",
        /// The engineering on-call queue.
        Engineering = "engineering",
    }
}

string_enum! {
    /// The customer's plan.
    Tier {
        /// No contract.
        Free = "free",
        /// Self-serve paid plan.
        Pro = "pro",
        /// Contracted account; never routine.
        Enterprise = "enterprise",
    }
}

impl Tier {
    /// A tier as a caller writes it: blank means none was given (the ticket is `free`, tier
    /// source `default`).
    ///
    /// # Errors
    /// [`DomainError::InvalidField`] naming `field` for text that is not a tier.
    pub fn parse_given(field: &str, text: &str) -> Result<Option<Self>, DomainError> {
        if text.trim().is_empty() {
            Ok(None)
        } else {
            Tier::parse(field, text).map(Some)
        }
    }
}

string_enum! {
    /// Where a ticket's tier came from (stored with the decision, so an audit can tell a tier a
    /// tool said from one the ARR threshold set or the default).
    TierSource {
        /// Plain's `thread.tier`.
        #[serde(rename = "plain.thread")]
        PlainThread = "plain.thread",
        /// Plain's `thread.tenant` (its tier, or the configured tenant field).
        #[serde(rename = "plain.tenant")]
        PlainTenant = "plain.tenant",
        /// Plain's `customer.company.tier`.
        #[serde(rename = "plain.company")]
        PlainCompany = "plain.company",
        /// The Pylon issue's account (`GET /accounts/{id}` custom fields).
        #[serde(rename = "pylon.account")]
        PylonAccount = "pylon.account",
        /// The gRPC request's `tier`.
        Request = "request",
        /// The ARR met a tier's `arr_usd_min` and raised the tier above what its source said.
        ArrUsd = "arr_usd",
        /// Nothing said: the configured default tier.
        Default = "default",
    }
}

string_enum! {
    /// Where a ticket came from; part of its idempotency key.
    Source {
        /// An internal service over gRPC.
        Api = "api",
        /// A Plain webhook.
        Plain = "plain",
        /// A Pylon webhook.
        Pylon = "pylon",
    }
}

string_enum! {
    /// The customer's tone in their own words: a label beside the severity, never a routing input.
    Sentiment {
        /// Annoyed, angry, disappointed, threatening to leave.
        Negative = "negative",
        /// Matter-of-fact, or no tone to tell.
        Neutral = "neutral",
        /// Pleased, grateful, enthusiastic.
        Positive = "positive",
    }
}

impl Sentiment {
    /// The sentiment of a labels file's `sentiment` cell: the file's `angry` is a `negative`
    /// tone on this three-value scale.
    pub fn from_label(cell: &str) -> Option<Self> {
        if cell.trim().eq_ignore_ascii_case("angry") {
            return Some(Sentiment::Negative);
        }
        Sentiment::parse("sentiment", cell).ok()
    }
}

/// The topic of a ticket no other topic fits, and of a model answer naming an unknown topic:
/// every topic list has it.
pub const OTHER_TOPIC: &str = "other";

/// The labels a classifier gives a ticket besides its severity (see `crate::taxonomy`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Labels {
    /// One of the configured topics.
    pub topic: String,
    /// The customer's tone.
    pub sentiment: Sentiment,
    /// Per shadow category asked: whether the classifier said it applies. Empty when none was
    /// asked (the offline classifier does not judge shadow categories).
    pub shadow: BTreeMap<String, bool>,
}

impl Default for Labels {
    /// What a classifier that cannot tell says: `other`, `neutral`, no shadow category asked.
    fn default() -> Self {
        Self {
            topic: OTHER_TOPIC.to_owned(),
            sentiment: Sentiment::Neutral,
            shadow: BTreeMap::new(),
        }
    }
}

impl Severity {
    /// The route is a pure function of severity.
    pub fn route(self) -> Route {
        match self {
            Severity::Routine => Route::Bot,
            Severity::Urgent => Route::Human,
            Severity::OnFire => Route::Engineering,
        }
    }
}

impl Route {
    /// The severity a route stands for: the inverse of [`Severity::route`].
    pub fn severity(self) -> Severity {
        match self {
            Route::Bot => Severity::Routine,
            Route::Human => Severity::Urgent,
            Route::Engineering => Severity::OnFire,
        }
    }
}

/// A confidence in `0..=1`. Logged and audited for calibration; never used to gate routing.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Serialize)]
pub struct Confidence(f32);

impl Confidence {
    /// No confidence at all (a safe decision no classifier made).
    pub const ZERO: Confidence = Confidence(0.0);

    /// # Errors
    /// When the value is not a finite number within `0..=1`.
    pub fn parse(value: f64) -> Result<Self, DomainError> {
        if value.is_finite() && (0.0..=1.0).contains(&value) {
            #[allow(clippy::cast_possible_truncation)]
            Ok(Self(value as f32))
        } else {
            Err(DomainError::invalid(
                "confidence",
                format!("{value} is not within 0..1"),
            ))
        }
    }

    /// The value.
    pub fn get(self) -> f32 {
        self.0
    }
}

/// Webhooks arrive at least once and Plain retries for days, so source + ticket id + version
/// names one delivery: a repeat must cost no model call and no action.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey {
    /// Where the ticket came from.
    pub source: Source,
    /// The ticket's id in its source.
    pub ticket_id: String,
    /// The revision of the ticket.
    pub version: String,
}

impl IdempotencyKey {
    /// The key of `ticket_id` at `version` in `source`: the one way a key is built.
    pub fn new(source: Source, ticket_id: impl Into<String>, version: impl Into<String>) -> Self {
        Self {
            source,
            ticket_id: ticket_id.into(),
            version: version.into(),
        }
    }
}

impl fmt::Display for IdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}@{}", self.source, self.ticket_id, self.version)
    }
}

/// A support ticket, validated. Built only through [`Ticket::parse`].
#[derive(Debug, Clone, PartialEq)]
pub struct Ticket {
    key: IdempotencyKey,
    subject: String,
    body: String,
    tier: Tier,
    arr_usd: Option<f64>,
    customer_id: Option<String>,
    tier_source: TierSource,
    enrichment_failed: bool,
    caller: Option<String>,
    conversation: Option<conversation::Conversation>,
    routing: RoutingRead,
}

/// The raw fields of a ticket as an edge received them, before validation.
#[derive(Debug, Clone, Default)]
pub struct RawTicket {
    /// Required.
    pub id: String,
    /// Empty means `"1"`.
    pub version: String,
    /// Optional.
    pub subject: String,
    /// Required.
    pub body: String,
    /// `None` means `free` (tier source `default`); a tier is parsed where its text arrives
    /// (the gRPC request, a labels row, the tool's answer), so it never goes back to text.
    pub tier: Option<Tier>,
    /// Optional, finite and >= 0.
    pub arr_usd: Option<f64>,
    /// Optional.
    pub customer_id: String,
}

impl Ticket {
    /// Validates raw fields. Field names in errors are prefixed with `prefix` (e.g. `ticket.`).
    ///
    /// # Errors
    /// [`DomainError::InvalidField`] for an empty id or body, text over the documented limits
    /// ([`MAX_ID_BYTES`], [`MAX_SUBJECT_CHARS`], [`MAX_BODY_CHARS`]), an id or version with a
    /// control character, or a negative or non-finite ARR. NUL characters in
    /// the subject and body are dropped (the log cannot store them); any other text is kept.
    pub fn parse(source: Source, raw: RawTicket, prefix: &str) -> Result<Self, DomainError> {
        let field = |name: &str| format!("{prefix}{name}");
        let id = raw.id.trim().to_owned();
        if id.is_empty() {
            return Err(DomainError::invalid(field("id"), "must not be empty"));
        }
        check_id(&field("id"), &id)?;
        let version = match raw.version.trim() {
            "" => "1".to_owned(),
            v => v.to_owned(),
        };
        check_id(&field("version"), &version)?;
        // NUL cannot be stored (PostgreSQL TEXT) and means nothing in a message: dropped.
        let body = text::without_nul(&raw.body);
        let subject = text::without_nul(&raw.subject);
        if body.trim().is_empty() {
            return Err(DomainError::invalid(field("body"), "must not be empty"));
        }
        check_chars(&field("body"), &body, MAX_BODY_CHARS)?;
        check_chars(&field("subject"), &subject, MAX_SUBJECT_CHARS)?;
        if let Some(arr) = raw.arr_usd {
            if !arr.is_finite() || arr < 0.0 {
                return Err(DomainError::invalid(
                    field("arr_usd"),
                    format!("{arr} is not a finite amount >= 0"),
                ));
            }
        }
        let customer_id = raw.customer_id.trim().to_owned();
        check_id(&field("customer_id"), &customer_id)?;
        Ok(Self {
            key: IdempotencyKey::new(source, id, version),
            subject: subject.trim().to_owned(),
            body: body.trim().to_owned(),
            tier: raw.tier.unwrap_or(Tier::Free),
            arr_usd: raw.arr_usd,
            customer_id: (!customer_id.is_empty()).then_some(customer_id),
            tier_source: if raw.tier.is_some() {
                TierSource::Request
            } else {
                TierSource::Default
            },
            enrichment_failed: false,
            caller: None,
            conversation: None,
            routing: RoutingRead::NotRead,
        })
    }

    /// The idempotency key.
    pub fn key(&self) -> &IdempotencyKey {
        &self.key
    }
    /// The subject line (may be empty).
    pub fn subject(&self) -> &str {
        &self.subject
    }
    /// The first message.
    pub fn body(&self) -> &str {
        &self.body
    }
    /// The customer's plan.
    pub fn tier(&self) -> Tier {
        self.tier
    }
    /// Annual recurring revenue in USD, when known.
    pub fn arr_usd(&self) -> Option<f64> {
        self.arr_usd
    }
    /// The customer's id in the source, when known.
    pub fn customer_id(&self) -> Option<&str> {
        self.customer_id.as_deref()
    }

    /// A copy with tier and ARR replaced by what enrichment found.
    #[must_use]
    pub fn with_account(mut self, tier: Tier, arr_usd: Option<f64>) -> Self {
        self.tier = tier;
        self.arr_usd = arr_usd;
        self
    }

    /// Where the tier came from: `request` when the edge's input named one, else `default`,
    /// until [`Ticket::with_tier_source`] says otherwise.
    pub fn tier_source(&self) -> TierSource {
        self.tier_source
    }

    /// Whether an enrichment call failed (after its retries) and the defaults were used.
    pub fn enrichment_failed(&self) -> bool {
        self.enrichment_failed
    }

    /// The authenticated gRPC caller that sent the ticket (a name from
    /// `ESCALATOR_GRPC_CALLERS_FILE`); `None` for webhooks and unauthenticated gRPC.
    pub fn caller(&self) -> Option<&str> {
        self.caller.as_deref()
    }

    /// A copy sent by `caller` (see [`Ticket::caller`]).
    #[must_use]
    pub fn with_caller(mut self, caller: Option<String>) -> Self {
        self.caller = caller;
        self
    }

    /// The conversation a follow-up is decided on (its rendering is the body); `None` for a
    /// ticket's first message.
    pub fn conversation(&self) -> Option<&conversation::Conversation> {
        self.conversation.as_ref()
    }

    /// A copy carrying `conversation`, with the body set to its rendering (at most
    /// [`MAX_BODY_CHARS`], the newest kept): the same prompt reads the conversation so far.
    #[must_use]
    pub fn with_conversation(mut self, conversation: conversation::Conversation) -> Self {
        let rendered = conversation.render(MAX_BODY_CHARS);
        if !rendered.trim().is_empty() {
            self.body = text::without_nul(&rendered).into_owned();
        }
        self.conversation = Some(conversation);
        self
    }

    /// The ticket's routing as its tool reported it when the ticket was built (a follow-up
    /// compares it with what escalator last set); [`RoutingRead::NotRead`] until an adapter
    /// says otherwise.
    pub fn routing(&self) -> &RoutingRead {
        &self.routing
    }

    /// A copy carrying the routing its tool reported (see [`Ticket::routing`]).
    #[must_use]
    pub fn with_routing(mut self, routing: RoutingRead) -> Self {
        self.routing = routing;
        self
    }

    /// A copy saying where the tier came from and whether enrichment failed.
    #[must_use]
    pub fn with_tier_source(mut self, source: TierSource, enrichment_failed: bool) -> Self {
        self.tier_source = source;
        self.enrichment_failed = enrichment_failed;
        self
    }
}

/// Ids and versions: at most [`MAX_ID_BYTES`], no control characters (an id is a key in the
/// log and a path segment in the tools' APIs, never text).
fn check_id(field: &str, value: &str) -> Result<(), DomainError> {
    if value.len() > MAX_ID_BYTES {
        return Err(DomainError::invalid(
            field,
            format!("is {} bytes, the limit is {MAX_ID_BYTES}", value.len()),
        ));
    }
    if text::has_control(value) {
        return Err(DomainError::invalid(
            field,
            "must not contain control characters",
        ));
    }
    Ok(())
}

fn check_chars(field: &str, value: &str, max: usize) -> Result<(), DomainError> {
    let n = value.chars().count();
    if n > max {
        return Err(DomainError::invalid(
            field,
            format!("is {n} characters, the limit is {max}"),
        ));
    }
    Ok(())
}

/// How many of a customer's latest ticket rows (one per version) in the window are read to
/// count its other tickets: the count stops there. The prompt and the repeat floor only ask
/// whether there are any (`tiers.repeat.min_count`, which may not be more), and a customer or an
/// integration that opens thousands of tickets a day would otherwise cost every new ticket a
/// read of all of them.
pub const MAX_REPEAT_ROWS: u32 = 20;

/// A ticket plus what enrichment added: what the classifier sees.
#[derive(Debug, Clone, PartialEq)]
pub struct TicketContext {
    /// The ticket.
    pub ticket: Ticket,
    /// Other tickets from the same customer in the last 24 hours (from our own log), counted
    /// over its latest [`MAX_REPEAT_ROWS`] ticket rows.
    pub repeat_count_24h: u32,
}

/// A classifier's answer, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// How urgent.
    pub severity: Severity,
    /// Who handles it; equal to `severity.route()`.
    pub route: Route,
    /// How sure the classifier is.
    pub confidence: Confidence,
    /// One sentence of at most [`MAX_REASONING_WORDS`] words and [`MAX_REASONING_CHARS`]
    /// characters, never empty.
    pub reasoning: String,
    /// Notes on what local validation corrected (route/severity disagreement, trimmed reasoning).
    pub notes: Vec<String>,
    /// Topic, sentiment and shadow categories: recorded and audited, never a routing input.
    pub labels: Labels,
}

impl Verdict {
    /// Builds a verdict from the parts a classifier produced: the route is derived from the
    /// severity (a disagreement is recorded in `notes`), and reasoning is cut to one sentence of
    /// at most [`MAX_REASONING_WORDS`] words (a cut is recorded too); a blank one becomes
    /// [`NO_REASONING`] (recorded).
    pub fn new(
        severity: Severity,
        claimed_route: Option<Route>,
        confidence: Confidence,
        reasoning: &str,
    ) -> Self {
        let mut notes = Vec::new();
        let route = severity.route();
        if let Some(claimed) = claimed_route {
            if claimed != route {
                notes.push(format!(
                    "route_disagreement: model said {claimed}, severity {severity} implies {route}"
                ));
            }
        }
        let (mut reasoning, trimmed) = one_sentence(reasoning, MAX_REASONING_WORDS);
        if trimmed {
            notes.push("reasoning_trimmed".to_owned());
        }
        if reasoning.is_empty() {
            NO_REASONING.clone_into(&mut reasoning);
            notes.push("reasoning_missing".to_owned());
        }
        Self {
            severity,
            route,
            confidence,
            reasoning,
            notes,
            labels: Labels::default(),
        }
    }

    /// The same verdict with `labels`.
    #[must_use]
    pub fn with_labels(mut self, labels: Labels) -> Self {
        self.labels = labels;
        self
    }
}

/// Cuts text to its first sentence and at most `max_words` words and [`MAX_REASONING_CHARS`]
/// characters (a cut there ends in `…`). Whitespace runs and control characters (NUL included)
/// become one space. Returns whether it cut.
pub fn one_sentence(reasoning: &str, max_words: usize) -> (String, bool) {
    let text = reasoning
        .split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    let mut first = text.as_str();
    // A sentence ends at ". ", "! " or "? " (not at the dot in "$1.5k" or "v2.1"). The match
    // is an ASCII byte, so `i + 1` is a char boundary.
    for (i, _) in text.match_indices(['.', '!', '?']) {
        if text[i + 1..].starts_with(' ') {
            first = &text[..=i];
            break;
        }
    }
    let mut cut = first.len() != text.len();
    let words: Vec<&str> = first.split(' ').filter(|w| !w.is_empty()).collect();
    let out = if words.len() > max_words {
        cut = true;
        let mut s = words[..max_words].join(" ");
        s = s.trim_end_matches([',', ';', ':']).to_owned();
        if !s.ends_with(['.', '!', '?']) {
            s.push('.');
        }
        s
    } else {
        first.to_owned()
    };
    match crate::text::ellipsize(&out, MAX_REASONING_CHARS) {
        std::borrow::Cow::Borrowed(_) => (out, cut),
        std::borrow::Cow::Owned(short) => (short, true),
    }
}

/// Token usage, cost and time of one model call, as logged.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Usage {
    /// The API's `request-id` header.
    pub request_id: Option<String>,
    /// Uncached input tokens.
    pub input_tokens: i64,
    /// Generated tokens.
    pub output_tokens: i64,
    /// Tokens read from the prompt cache.
    pub cache_read_tokens: i64,
    /// Tokens written to the prompt cache.
    pub cache_write_tokens: i64,
    /// Cost in USD from the price table.
    pub cost_usd: f64,
    /// How long the model call took, retries and waits for a slot included (`None` when no
    /// model was called): the weekly audit's p50/p95 model latency.
    pub model_latency_ms: Option<i64>,
    /// Retries the call took (0 when the first attempt answered).
    pub model_retries: i32,
}

/// What a classifier returned for one ticket: the verdict and how it was reached.
#[derive(Debug, Clone, PartialEq)]
pub struct Classification {
    /// The validated answer.
    pub verdict: Verdict,
    /// The model that decided, or `offline`.
    pub model: String,
    /// The prompt version the answer was made against.
    pub prompt_version: String,
    /// `Some(reason)` when the primary classifier failed and the offline one decided.
    pub fallback_reason: Option<String>,
    /// Usage of the model call, when there was one.
    pub usage: Usage,
    /// The span id of the model call's generation span, when traced.
    pub observation_id: Option<String>,
}

/// One row of the routing log: written before anything acts on the ticket.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision {
    /// UUIDv7 of the decision.
    pub id: String,
    /// Where the ticket came from.
    pub source: Source,
    /// The ticket's id in its source.
    pub ticket_id: String,
    /// The ticket's version.
    pub ticket_version: String,
    /// How urgent.
    pub severity: Severity,
    /// Who handles it.
    pub route: Route,
    /// How sure the classifier was.
    pub confidence: f32,
    /// One sentence, shown to the agent.
    pub reasoning: String,
    /// The prompt version the decision was made against.
    pub prompt_version: String,
    /// The model, or `offline`.
    pub model: String,
    /// True when the offline classifier stood in for the model.
    pub fallback: bool,
    /// Why it stood in.
    pub fallback_reason: Option<String>,
    /// What validation corrected, `;`-separated (route disagreement, trimmed reasoning).
    pub notes: Option<String>,
    /// The tier the decision was made with.
    pub tier: Tier,
    /// Usage of the model call.
    pub usage: Usage,
    /// The W3C trace id of the request that made the decision, when traced.
    pub trace_id: Option<String>,
    /// The span id of the generation span of the model call, when traced.
    pub observation_id: Option<String>,
    /// When the decision was logged.
    pub created_at: DateTime<Utc>,
    /// The classifier's own severity, before the weighting rules (`crate::weighting`); equal
    /// to `severity` unless `weighting_rule` is set.
    pub model_severity: Severity,
    /// The weighting rule that raised the severity (`tiers.enterprise`, `tiers.repeat`), or
    /// `None` when the classifier's severity stood.
    pub weighting_rule: Option<String>,
    /// The ARR in USD the decision was made with, when known.
    pub arr_usd: Option<f64>,
    /// Where the tier came from (`None` for decisions logged before it was recorded).
    pub tier_source: Option<TierSource>,
    /// An enrichment call failed after its retries and the default tier was used.
    pub enrichment_failed: bool,
    /// The topic label (`None` on decisions logged before labels existed).
    pub topic: Option<String>,
    /// The sentiment label (`None` on decisions logged before labels existed).
    pub sentiment: Option<Sentiment>,
    /// Per shadow category the classifier was asked about: whether it said the category
    /// applies. Routing ignores it; reviews judge it; the audit and `promote` count it.
    pub shadow: BTreeMap<String, bool>,
    /// The authenticated gRPC caller whose request made the decision (a name from
    /// `ESCALATOR_GRPC_CALLERS_FILE`); `None` for webhooks, unauthenticated gRPC and decisions
    /// logged before callers existed. Left out of JSON when unset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub caller: Option<String>,
    /// The decision this one supersedes: set on a follow-up's re-decision (the thread's
    /// decision before it), `None` for a ticket's first decision. Left out of JSON when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supersedes: Option<String>,
}

impl Decision {
    /// The decision for `ctx` from `classification`, with a fresh id and timestamp. The
    /// fallback reason and each note become one-line excerpts of at most [`MAX_NOTE_CHARS`]
    /// (no control characters, so the log can store them).
    pub fn new(ctx: &TicketContext, c: Classification, trace_id: Option<String>) -> Self {
        let key = ctx.ticket.key();
        let fallback = c.fallback_reason.is_some();
        let excerpt = |s: &str| text::excerpt(s, MAX_NOTE_CHARS);
        Self {
            id: uuid::Uuid::now_v7().to_string(),
            source: key.source,
            ticket_id: key.ticket_id.clone(),
            ticket_version: key.version.clone(),
            severity: c.verdict.severity,
            route: c.verdict.route,
            confidence: c.verdict.confidence.get(),
            reasoning: c.verdict.reasoning,
            prompt_version: c.prompt_version,
            model: c.model,
            fallback,
            fallback_reason: c.fallback_reason.as_deref().map(excerpt),
            notes: (!c.verdict.notes.is_empty()).then(|| {
                c.verdict
                    .notes
                    .iter()
                    .map(|n| excerpt(n))
                    .collect::<Vec<_>>()
                    .join("; ")
            }),
            tier: ctx.ticket.tier(),
            usage: c.usage,
            trace_id,
            observation_id: c.observation_id,
            created_at: Utc::now(),
            model_severity: c.verdict.severity,
            weighting_rule: None,
            arr_usd: ctx.ticket.arr_usd(),
            tier_source: Some(ctx.ticket.tier_source()),
            enrichment_failed: ctx.ticket.enrichment_failed(),
            topic: Some(c.verdict.labels.topic),
            sentiment: Some(c.verdict.labels.sentiment),
            shadow: c.verdict.labels.shadow,
            caller: ctx.ticket.caller().map(str::to_owned),
            supersedes: None,
        }
    }

    /// The decision with its final severity set by the weighting rule `rule` (the classifier's
    /// own stays in `model_severity`); the route follows the final severity.
    #[must_use]
    pub fn weighed(mut self, severity: Severity, rule: Option<String>) -> Self {
        self.severity = severity;
        self.route = severity.route();
        self.weighting_rule = rule;
        self
    }

    /// The key this decision is for.
    pub fn key(&self) -> IdempotencyKey {
        IdempotencyKey::new(self.source, &self.ticket_id, &self.ticket_version)
    }
}

/// A ticket's routing as its tool reports it now: what a person may have changed since
/// escalator last acted. Ids only, never ticket text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ToolRouting {
    /// Plain: the thread's labels' type ids; Pylon: the tags.
    pub labels: Vec<String>,
    /// Plain: the thread's priority (0 urgent … 3 low); Pylon has none.
    pub priority: Option<u8>,
    /// The assigned user's id; `None` when unassigned.
    pub assignee: Option<String>,
    /// Pylon: the team id; Plain has none.
    pub team: Option<String>,
}

/// Whether the tool's current routing was read with the ticket.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum RoutingRead {
    /// Not asked (no API credential, or a source with no tool).
    #[default]
    NotRead,
    /// What the tool answered.
    Read(ToolRouting),
    /// The read failed; why (the call and its answer, no ticket text, no secret).
    Failed(String),
}

/// Why a raise is only a note.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoteOnly {
    /// An agent's routing change reached escalator as an override event after it last acted.
    Override,
    /// The tool's current routing is not what escalator last set: a person changed it
    /// without an override event reaching escalator.
    Moved,
    /// The tool's current routing could not be read, so a person's change cannot be ruled
    /// out.
    Unread,
}

/// What a re-decision does in the tool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FollowUpChange {
    /// The severity rose and nobody else touched the routing: labels, priority and assignee
    /// change as for a new ticket, and a note says what changed and why.
    Raise {
        /// The severity of the decision it supersedes.
        from: Severity,
    },
    /// The severity rose, but a person changed the routing since escalator last acted (or
    /// that cannot be ruled out): a note says what escalator would do, nothing else changes.
    WouldRaise {
        /// The severity of the decision it supersedes.
        from: Severity,
        /// Why it is a note only.
        why: NoteOnly,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(body: &str) -> RawTicket {
        RawTicket {
            id: "T-1".into(),
            body: body.into(),
            ..RawTicket::default()
        }
    }

    #[test]
    fn enums_parse_case_insensitively_and_name_the_field() {
        assert_eq!(
            Severity::parse("severity", " ON_FIRE ").unwrap(),
            Severity::OnFire
        );
        let err = Tier::parse("ticket.tier", "gold").unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid ticket.tier: \"gold\" is not one of free, pro, enterprise"
        );
    }

    #[test]
    fn tier_sources_are_spelt_alike_in_the_log_and_in_json() {
        for s in TierSource::ALL {
            let json = serde_json::to_string(s).unwrap();
            assert_eq!(json, format!("\"{}\"", s.as_str()));
            assert_eq!(TierSource::parse("tier_source", s.as_str()).unwrap(), *s);
        }
        assert_eq!(TierSource::PlainCompany.as_str(), "plain.company");
        let t = Ticket::parse(Source::Api, raw("hi"), "").unwrap();
        assert_eq!(t.tier_source(), TierSource::Default);
        let mut r = raw("hi");
        r.tier = Some(Tier::Pro);
        let t = Ticket::parse(Source::Api, r, "").unwrap();
        assert_eq!(
            (t.tier_source(), t.enrichment_failed()),
            (TierSource::Request, false)
        );
        let t = t.with_tier_source(TierSource::PylonAccount, true);
        assert_eq!(
            (t.tier_source(), t.enrichment_failed()),
            (TierSource::PylonAccount, true)
        );
    }

    #[test]
    fn route_is_a_function_of_severity() {
        assert_eq!(Severity::Routine.route(), Route::Bot);
        assert_eq!(Severity::Urgent.route(), Route::Human);
        assert_eq!(Severity::OnFire.route(), Route::Engineering);
        for s in Severity::ALL {
            assert_eq!(s.route().severity(), *s);
        }
    }

    #[test]
    fn ticket_defaults_and_limits() {
        let t = Ticket::parse(Source::Api, raw("hello"), "ticket.").unwrap();
        assert_eq!(t.key().version, "1");
        assert_eq!(t.tier(), Tier::Free);
        let e = Ticket::parse(Source::Api, raw("  "), "ticket.").unwrap_err();
        assert_eq!(e.to_string(), "invalid ticket.body: must not be empty");
        let long = "x".repeat(MAX_BODY_CHARS + 1);
        let e = Ticket::parse(Source::Api, raw(&long), "ticket.").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("invalid ticket.body: is 32769 characters")
        );
        let mut r = raw("hi");
        r.arr_usd = Some(-1.0);
        let e = Ticket::parse(Source::Api, r, "ticket.").unwrap_err();
        assert!(e.to_string().starts_with("invalid ticket.arr_usd"));
    }

    #[test]
    fn nul_in_text_is_dropped_and_control_characters_in_ids_are_refused() {
        let t = Ticket::parse(Source::Api, raw("Prod\0 is down\0"), "ticket.").unwrap();
        assert_eq!(t.body(), "Prod is down");
        let e = Ticket::parse(Source::Api, raw("\0\0"), "ticket.").unwrap_err();
        assert_eq!(e.to_string(), "invalid ticket.body: must not be empty");
        let mut r = raw("hi");
        r.id = "T\0-1".into();
        let e = Ticket::parse(Source::Api, r, "ticket.").unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid ticket.id: must not contain control characters"
        );
        let mut r = raw("hi");
        r.customer_id = "c\n1".into();
        let e = Ticket::parse(Source::Api, r, "ticket.").unwrap_err();
        assert!(
            e.to_string().starts_with("invalid ticket.customer_id"),
            "{e}"
        );
    }

    #[test]
    fn reasoning_is_bounded_in_characters_and_never_blank() {
        let c = Confidence::parse(0.5).unwrap();
        let long_word = "ó".repeat(5_000);
        let v = Verdict::new(Severity::Urgent, None, c, &long_word);
        assert_eq!(v.reasoning.chars().count(), MAX_REASONING_CHARS);
        assert!(v.reasoning.ends_with('…'));
        assert_eq!(v.notes, ["reasoning_trimmed"]);
        let v = Verdict::new(Severity::Urgent, None, c, " \0 \u{7} ");
        assert_eq!(v.reasoning, NO_REASONING);
        assert!(v.notes.contains(&"reasoning_missing".to_owned()));
        let (s, _) = one_sentence("Prod\0down\r\nnow. More.", 20);
        assert_eq!(s, "Prod down now.");
    }

    #[test]
    fn confidence_must_be_within_unit_interval() {
        assert!(Confidence::parse(0.5).is_ok());
        assert!(Confidence::parse(1.5).is_err());
        assert!(Confidence::parse(f64::NAN).is_err());
    }

    #[test]
    fn verdict_derives_route_and_trims_reasoning() {
        let v = Verdict::new(
            Severity::OnFire,
            Some(Route::Human),
            Confidence::parse(0.9).unwrap(),
            "Production is down for all users. Also more words here.",
        );
        assert_eq!(v.route, Route::Engineering);
        assert_eq!(v.reasoning, "Production is down for all users.");
        assert_eq!(v.notes.len(), 2);
        let long = (0..30)
            .map(|i| format!("w{i}"))
            .collect::<Vec<_>>()
            .join(" ");
        let (s, cut) = one_sentence(&long, 20);
        assert!(cut);
        assert_eq!(s.split(' ').count(), 20);
        assert!(s.ends_with('.'));
        let (s, cut) = one_sentence("A dispute over $1.5k on v2.1 billing.", 20);
        assert!(!cut);
        assert_eq!(s, "A dispute over $1.5k on v2.1 billing.");
    }
}
