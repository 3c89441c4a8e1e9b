//! What the audit reads from the routing log: one row per decision with its verdicts and its
//! delivery, the deliveries themselves and the webhooks the parse refused. No ticket text: the
//! figures need none (the misses are read one by one with `Reviews::review_item`).

use chrono::{DateTime, Utc};

use super::{
    Severity, Source, Tier,
    review::{LabelVerdict, ReviewVerdict},
};

/// One logged decision as the audit sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditRow {
    /// The decision.
    pub decision_id: String,
    /// Where the ticket came from.
    pub source: Source,
    /// The ticket's id in its source.
    pub ticket_id: String,
    /// When it was decided: the week it counts in.
    pub created_at: DateTime<Utc>,
    /// What was decided.
    pub severity: Severity,
    /// The classifier's confidence (audited for calibration, never used in routing).
    pub confidence: f32,
    /// The prompt version it was decided with.
    pub prompt_version: String,
    /// The model, `offline` or `none`.
    pub model: String,
    /// The offline classifier stood in.
    pub fallback: bool,
    /// Why it stood in.
    pub fallback_reason: Option<String>,
    /// The tier it was decided with.
    pub tier: Tier,
    /// Tokens, cost, time and retries of the model call.
    pub usage: super::Usage,
    /// The last verdict of a sampled review (terminal, web, import): the accuracy headline.
    pub review: Option<ReviewVerdict>,
    /// The last agent's override in the tool: reported beside, never mixed in.
    pub overridden: Option<ReviewVerdict>,
    /// The payload version of the webhook delivery it came from (none for gRPC tickets).
    pub webhook_version: Option<String>,
    /// Fields that delivery lacked.
    pub missing_fields: Vec<String>,
    /// The classifier's own severity, before the weighting rules.
    pub model_severity: Severity,
    /// The weighting rule that raised the severity, if one did.
    pub weighting_rule: Option<String>,
    /// An enrichment call failed and the default tier was used.
    pub enrichment_failed: bool,
    /// The decision's topic label, when labelled.
    pub topic: Option<String>,
    /// The decision's sentiment label, when labelled.
    pub sentiment: Option<super::Sentiment>,
    /// The shadow categories the classifier was asked about, and whether it said each applies.
    pub shadow: std::collections::BTreeMap<String, bool>,
    /// The last sampled review's word on the labels (empty when not reviewed or not judged).
    pub review_labels: LabelVerdict,
    /// The authenticated gRPC caller that asked for it (none for webhooks and unauthenticated
    /// gRPC).
    pub caller: Option<String>,
}

impl AuditRow {
    /// The severity the sampled review says is right, when reviewed.
    pub fn truth(&self) -> Option<Severity> {
        self.review
            .map(|v| v.corrected_severity().unwrap_or(self.severity))
    }

    /// Whether the sampled review says the decision was right, when reviewed.
    pub fn correct(&self) -> Option<bool> {
        self.review.map(|v| v == ReviewVerdict::Correct)
    }
}

/// One webhook delivery as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryRow {
    /// The tool.
    pub source: Source,
    /// When it was first received.
    pub received_at: DateTime<Utc>,
    /// Its payload version.
    pub webhook_version: Option<String>,
    /// Fields it lacked.
    pub missing_fields: Vec<String>,
    /// Repeats of its key received after it (they cost nothing, but say the sender retries).
    pub duplicates: i64,
}

/// A signed webhook the parse refused.
#[derive(Debug, Clone, PartialEq)]
pub struct RejectionRow {
    /// The tool.
    pub source: Source,
    /// When.
    pub received_at: DateTime<Utc>,
    /// Its payload version, when it could be read.
    pub webhook_version: Option<String>,
    /// Why (the webhook error, e.g. "missing or invalid field `payload.thread.title`").
    pub reason: String,
}

/// Splits a stored comma-separated field list.
pub fn split_fields(s: Option<&str>) -> Vec<String> {
    s.unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|f| !f.is_empty())
        .map(str::to_owned)
        .collect()
}
