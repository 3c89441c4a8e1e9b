//! The evaluation's report: accuracy with its 95% Wilson interval, the confusion matrix with
//! `fallback` and `failed` margins, the misses, the weighting rules' part, label accuracy,
//! latency, and with the model its tokens and cost; serialised for `eval --json` and displayed
//! for the terminal.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::{
    classifier::offline::{self, contamination::Contamination},
    domain::{Severity, Usage},
    stats::{Rate, percentile},
};

/// The result of an evaluation run.
#[derive(Debug, Serialize)]
pub struct EvalReport {
    /// The file evaluated.
    pub file: String,
    /// The model that classified.
    pub model: String,
    /// The prompt version.
    pub prompt_version: String,
    /// Rows in the file, every one counted (a row that failed to classify is a miss).
    pub total: usize,
    /// Rows whose final severity (after the weighting rules) matched the label, decided by the
    /// classifier under test: a fallback row is never correct.
    pub correct: usize,
    /// `correct / total`.
    pub accuracy: f64,
    /// The 95% Wilson interval of `accuracy`, `[low, high]`: how far a 9/10 and a 36/40 are
    /// apart honestly.
    pub accuracy_ci95: [f64; 2],
    /// `confusion[expected][predicted]`, both keyed by severity (rows the classifier under test
    /// decided; the fallbacks and the failed rows are the margins,
    /// [`EvalReport::fallbacks_by_expected`] and [`EvalReport::failed_by_expected`]).
    pub confusion: BTreeMap<Severity, BTreeMap<Severity, usize>>,
    /// Rows that got no classification at all (invalid as a ticket, or the classifier
    /// panicked); each is also in `misses` with its error, and makes `eval` exit 1.
    pub failed: usize,
    /// The confusion matrix's margin: failed rows per expected severity.
    pub failed_by_expected: BTreeMap<Severity, usize>,
    /// The rows that were wrong or failed.
    pub misses: Vec<Miss>,
    /// Rows the offline classifier decided because the model could not: misses of the model.
    pub fallbacks: usize,
    /// Fallback rows per reason kind (`timeout`, `upstream_529`, `invalid_answer`).
    pub fallback_reasons: BTreeMap<String, usize>,
    /// The confusion matrix's margin: fallback rows per expected severity.
    pub fallbacks_by_expected: BTreeMap<Severity, usize>,
    /// Rows whose severity a weighting rule raised above the classifier's, per rule
    /// (`tiers.enterprise`, `tiers.repeat`).
    pub weighting_raised: BTreeMap<String, usize>,
    /// With the offline classifier: the rule phrases only this file carries and the accuracy
    /// without the rows they alone decide.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contamination: Option<Contamination>,
    /// Time per decision (fallbacks included), in milliseconds.
    pub latency_ms: Latency,
    /// Model usage and cost; absent for the offline classifier.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<EvalUsage>,
    /// With `--explain`: per row, how the offline rules decided it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub explain: Vec<Explained>,
    /// Accuracy of the topic label on the rows whose `topic` is one of the configured topics.
    pub topic: LabelAccuracy,
    /// Accuracy of the sentiment label on the rows with a `sentiment` (`angry` as `negative`).
    pub sentiment: LabelAccuracy,
}

/// One label's accuracy over the rows that carry it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct LabelAccuracy {
    /// Classified rows with the label (and, for the topic, one the classifier may answer).
    pub labelled: usize,
    /// Of them, the rows the classifier labelled the same.
    pub correct: usize,
    /// `correct / labelled` (0 when none).
    pub accuracy: f64,
    /// The 95% Wilson interval of `accuracy`.
    pub accuracy_ci95: [f64; 2],
    /// Rows whose topic is not a configured topic (the classifier cannot answer it): left out.
    pub not_configured: usize,
}

impl LabelAccuracy {
    /// `correct` of `labelled` as a [`Rate`].
    pub fn rate(&self) -> Rate {
        Rate::of_rows(self.correct, self.labelled)
    }

    /// Fills in the share and its interval from the counts.
    pub(super) fn finish(mut self) -> Self {
        let r = self.rate();
        self.accuracy = r.share;
        self.accuracy_ci95 = [r.lo, r.hi];
        self
    }
}

impl std::fmt::Display for LabelAccuracy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.labelled == 0 {
            write!(f, "no labelled rows")?;
        } else {
            write!(f, "{}", self.rate().sentence())?;
        }
        if self.not_configured > 0 {
            write!(
                f,
                "; {} rows have a topic that is not configured (left out)",
                self.not_configured
            )?;
        }
        Ok(())
    }
}

/// How the offline rules decided one row (`eval --explain`).
#[derive(Debug, Serialize)]
pub struct Explained {
    /// The labelled ticket.
    pub ticket_id: String,
    /// The label.
    pub expected: Severity,
    /// What the offline rules decided (the content only).
    pub offline: Severity,
    /// The final severity, after the weighting rules.
    pub severity: Severity,
    /// The weighting rule that raised it, if one did.
    pub weighting_rule: Option<String>,
    /// Their reasoning.
    pub reasoning: String,
    /// The rules that fired.
    pub fired: Vec<offline::RuleHit>,
    /// The phrases a guard or the nearest-example vote switched off.
    pub switched_off: Vec<offline::Suppressed>,
    /// The nearest labelled examples.
    pub nearest: Vec<offline::Neighbour>,
}

/// Nearest-rank percentiles of the time per decision.
#[derive(Debug, Default, Serialize)]
pub struct Latency {
    /// Median.
    pub p50: u64,
    /// 95th percentile.
    pub p95: u64,
}

impl Latency {
    pub(super) fn of(mut ms: Vec<u64>) -> Self {
        Self {
            p50: percentile(&mut ms, 0.50).unwrap_or(0),
            p95: percentile(&mut ms, 0.95).unwrap_or(0),
        }
    }
}

/// Tokens and cost of an evaluation run against the API, from each decision's `usage`.
#[derive(Debug, Default, Serialize)]
pub struct EvalUsage {
    /// Rows the model decided (not fallbacks).
    pub answered: usize,
    /// Uncached input tokens.
    pub input_tokens: i64,
    /// Output tokens.
    pub output_tokens: i64,
    /// Tokens read from the prompt cache.
    pub cache_read_tokens: i64,
    /// Tokens written to the prompt cache (warm-up included).
    pub cache_write_tokens: i64,
    /// Share of answered rows that read the system block from the cache.
    pub cache_hit_rate: f64,
    /// USD for the whole run, warm-up included. Calls whose answer was invalid (a refusal,
    /// `max_tokens`, broken JSON) were billed too: their fallback decision carries the call's
    /// usage, so they are counted here.
    pub cost_usd: f64,
    /// `cost_usd / total`.
    pub cost_per_ticket_usd: f64,
    /// USD of the warm-up call.
    pub warmup_cost_usd: f64,
}

impl EvalUsage {
    pub(super) fn add(&mut self, u: &Usage) {
        self.input_tokens += u.input_tokens;
        self.output_tokens += u.output_tokens;
        self.cache_read_tokens += u.cache_read_tokens;
        self.cache_write_tokens += u.cache_write_tokens;
        self.cost_usd += u.cost_usd;
    }
}

/// One wrong answer, or a row that failed to classify.
#[derive(Debug, Serialize)]
pub struct Miss {
    /// The labelled ticket.
    pub ticket_id: String,
    /// The label.
    pub expected: Severity,
    /// What the classifier said; `None` when it failed.
    pub predicted: Option<Severity>,
    /// Its reasoning (empty when it failed).
    pub reasoning: String,
    /// Why the row got no classification, when it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Why the model did not decide it, when the offline classifier stood in (`predicted` is
    /// the fallback's answer; the row is a miss of the model whatever it was).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fallback_reason: Option<String>,
}

impl EvalReport {
    /// `correct` of `total` as a [`Rate`].
    pub fn rate(&self) -> Rate {
        Rate::of_rows(self.correct, self.total)
    }
}

impl std::fmt::Display for EvalReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "{} with {} ({})",
            self.file, self.model, self.prompt_version
        )?;
        writeln!(f, "accuracy: {}", self.rate().sentence())?;
        if self.fallbacks > 0 {
            let reasons: Vec<String> = self
                .fallback_reasons
                .iter()
                .map(|(r, n)| format!("{r} {n}"))
                .collect();
            writeln!(
                f,
                "fallbacks: {} of {} rows fell back to the offline classifier ({}), counted as misses of the model",
                self.fallbacks,
                self.total,
                reasons.join(", ")
            )?;
        }
        if let Some(c) = &self.contamination {
            write!(f, "{c}")?;
        }
        if !self.weighting_raised.is_empty() {
            let raised: Vec<String> = self
                .weighting_raised
                .iter()
                .map(|(r, n)| format!("{r} {n}"))
                .collect();
            writeln!(
                f,
                "raised by a weighting rule: {} (severities are final, after the rules)",
                raised.join(", ")
            )?;
        }
        if self.failed > 0 {
            writeln!(
                f,
                "failed: {} of {} rows got no classification (counted as misses)",
                self.failed, self.total
            )?;
        }
        writeln!(f, "topic accuracy: {}", self.topic)?;
        writeln!(f, "sentiment accuracy: {}", self.sentiment)?;
        writeln!(
            f,
            "\nexpected \\ predicted  routine   urgent  on_fire fallback   failed"
        )?;
        for (expected, row) in &self.confusion {
            write!(f, "{:<20}", expected.as_str())?;
            for s in Severity::ALL {
                write!(f, " {:>8}", row.get(s).copied().unwrap_or(0))?;
            }
            let fell_back = self.fallbacks_by_expected.get(expected).copied();
            let failed = self.failed_by_expected.get(expected).copied();
            writeln!(
                f,
                " {:>8} {:>8}",
                fell_back.unwrap_or(0),
                failed.unwrap_or(0)
            )?;
        }
        if self.misses.is_empty() {
            writeln!(f, "\nno misses")?;
        } else {
            writeln!(f, "\nmisses:")?;
            for m in &self.misses {
                match (&m.predicted, &m.error) {
                    (Some(p), _) if m.fallback_reason.is_some() => writeln!(
                        f,
                        "  {}: expected {}, FELL BACK ({}); the fallback decided {p}",
                        m.ticket_id,
                        m.expected,
                        m.fallback_reason.as_deref().unwrap_or_default()
                    )?,
                    (Some(p), _) => writeln!(
                        f,
                        "  {}: expected {}, got {p}: {}",
                        m.ticket_id, m.expected, m.reasoning
                    )?,
                    (None, error) => writeln!(
                        f,
                        "  {}: expected {}, FAILED: {}",
                        m.ticket_id,
                        m.expected,
                        error.as_deref().unwrap_or("no classification")
                    )?,
                }
            }
        }
        writeln!(
            f,
            "\nlatency: p50 {} ms, p95 {} ms",
            self.latency_ms.p50, self.latency_ms.p95
        )?;
        if let Some(u) = &self.usage {
            writeln!(
                f,
                "tokens: input {}, output {}, cache read {}, cache write {}",
                u.input_tokens, u.output_tokens, u.cache_read_tokens, u.cache_write_tokens
            )?;
            writeln!(
                f,
                "cache hit rate: {:.1}% of {} answers",
                u.cache_hit_rate * 100.0,
                u.answered
            )?;
            writeln!(
                f,
                "cost: ${:.4} total, ${:.5} per ticket (warm-up ${:.4} included)",
                u.cost_usd, u.cost_per_ticket_usd, u.warmup_cost_usd
            )?;
        }
        if !self.explain.is_empty() {
            writeln!(f, "\nexplain (the offline rules, per ticket):")?;
            for x in &self.explain {
                let mark = if x.severity == x.expected {
                    ""
                } else {
                    "  MISS"
                };
                let raised = x
                    .weighting_rule
                    .as_ref()
                    .map(|r| format!(", raised to {} by {r}", x.severity))
                    .unwrap_or_default();
                writeln!(
                    f,
                    "  {}: expected {}, offline {}{raised}{mark}: {}",
                    x.ticket_id, x.expected, x.offline, x.reasoning
                )?;
                let trace = offline::Trace {
                    fired: &x.fired,
                    suppressed: &x.switched_off,
                    nearest: &x.nearest,
                };
                write!(f, "{trace}")?;
            }
        }
        Ok(())
    }
}
