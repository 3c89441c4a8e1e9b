//! What the audit reads from the routing log: one row per decision with its verdicts, its
//! place in the review sample and its delivery, the deliveries themselves and the webhooks the
//! parse refused. No ticket text: the figures need none (the misses are read one by one with
//! `Reviews::review_item`).

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};

use super::{
    Severity, Source, Tier,
    review::{LabelVerdict, Passes, ReviewVerdict, SampleMark},
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
    /// The verdict a sampled decision counts with (terminal, web, import; a double review
    /// once: see [`Passes::counted`]): the accuracy headline. `None` when not sampled.
    pub review: Option<ReviewVerdict>,
    /// The last verdict on a decision the draw never offered: reported apart, never in the
    /// accuracy (the reviewer chose it, the draw did not).
    pub unsampled: Option<ReviewVerdict>,
    /// The last verdict of each pass, with who gave it.
    pub passes: Passes,
    /// Its place in the review sample; `None` when never offered.
    pub sample: Option<SampleMark>,
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
    /// The word on the labels of the review the decision counts with, sampled or not (empty
    /// when not reviewed or not judged); the figures read it of sampled decisions only.
    pub review_labels: LabelVerdict,
    /// The authenticated gRPC caller that asked for it (none for webhooks and unauthenticated
    /// gRPC).
    pub caller: Option<String>,
    /// What a follow-up's re-decision did in the tool (`None`: not a re-decision).
    pub follow_up: Option<FollowUpMark>,
}

/// What a follow-up's re-decision did, read from the actions it logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FollowUpMark {
    /// It changed the routing (labels, priority, assignee): a raise.
    Raised,
    /// It only posted a note ("escalator would raise this"): a person had changed the routing.
    NoteOnly,
    /// Equal or lower, or logged without actions: nothing changed.
    Unchanged,
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

    /// The weight of its verdict: the inverse of its inclusion probability (1 when not
    /// sampled or not known).
    pub fn weight(&self) -> f64 {
        match self.sample.as_ref().and_then(|s| s.inclusion_probability) {
            Some(p) if p > 0.0 && p <= 1.0 => 1.0 / p,
            _ => 1.0,
        }
    }
}

/// Gives the rows sampled before strata existed (no inclusion probability recorded) the
/// probability of that uniform draw: the decisions sampled that day for that source filter,
/// over the decisions of that day (by `local_day`) the filter covered, among `rows`. Call it
/// with whole days in `rows`; a day it cannot count is taken as drawn whole (probability 1).
pub fn fill_uniform_probabilities(
    rows: &mut [AuditRow],
    local_day: impl Fn(DateTime<Utc>) -> NaiveDate,
) {
    let mut sampled: BTreeMap<(String, String), u64> = BTreeMap::new();
    for r in rows.iter() {
        if let Some(s) = r
            .sample
            .as_ref()
            .filter(|s| s.inclusion_probability.is_none())
        {
            *sampled
                .entry((s.day.clone(), s.source.clone()))
                .or_default() += 1;
        }
    }
    if sampled.is_empty() {
        return;
    }
    let mut frame: BTreeMap<(String, String), u64> = BTreeMap::new();
    for r in rows.iter() {
        let day = local_day(r.created_at).format("%Y-%m-%d").to_string();
        for key in ["all", r.source.as_str()] {
            if sampled.contains_key(&(day.clone(), key.to_owned())) {
                *frame.entry((day.clone(), key.to_owned())).or_default() += 1;
            }
        }
    }
    for r in rows.iter_mut() {
        if let Some(s) = r
            .sample
            .as_mut()
            .filter(|s| s.inclusion_probability.is_none())
        {
            let key = (s.day.clone(), s.source.clone());
            let n = sampled.get(&key).copied().unwrap_or(1);
            let all = frame.get(&key).copied().unwrap_or(0).max(n);
            #[allow(clippy::cast_precision_loss)]
            let p = n as f64 / all as f64;
            s.inclusion_probability = Some(p);
        }
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
