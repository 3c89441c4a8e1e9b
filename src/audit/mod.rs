//! The weekly audit: after two weeks of daily review a team audits once a week. Accuracy per
//! ISO week from the sampled reviews only (each verdict weighted by the inverse of its
//! inclusion probability, a double review once) with honest 95% intervals, its splits and its
//! strata; the verdicts on unsampled decisions and the agents' overrides beside it (never mixed
//! in: a reviewer chose the first, the second only see misses); the two reviewers' agreement;
//! confidence calibration per model, the five symptoms with their trends and usual fixes, and,
//! when a week falls under the bar, a pull request against the labels.
//!
//! - [`weeks`]: ISO weeks in the review time zone; `crate::stats`: Wilson intervals and
//!   percentiles.
//! - `crate::domain::audit`: what is read from the log; [`figures`]: one week's figures and
//!   calibration; [`sample`]: the sample's own figures (per stratum, unsampled verdicts apart,
//!   the double review's agreement); [`labels`]: the topic, sentiment and shadow figures;
//!   [`symptoms`]: the five diagnoses; [`render`]: the terminal report.
//! - [`github`]: the GitHub REST client; [`pr`]: the labels pull request; [`schedule`]: the
//!   optional weekly run inside `serve`; [`cli`]: `escalator audit`; [`settings`]: `[audit]`.
//!
//! It reads the log and the verdicts and writes nothing but the pull request.

pub mod cli;
pub mod figures;
pub mod github;
pub mod labels;
pub mod pr;
pub mod render;
pub mod run;
pub mod sample;
pub mod schedule;
pub mod settings;
pub mod symptoms;
pub mod weeks;

use std::collections::HashSet;

use serde::Serialize;

pub use crate::domain::audit::{AuditRow, DeliveryRow, RejectionRow};
pub use settings::AuditSettings;

use crate::stats::Rate;
use crate::{
    domain::{Severity, Source, Tier},
    review::{Origin, Pass, ReviewVerdict},
    store::{AuditLog, Reviews, StoreError},
};
use figures::{Calibration, WeekFigures};
use symptoms::Symptom;
use weeks::IsoWeek;

/// Default accuracy bar of the last full week.
pub const DEFAULT_MIN_ACCURACY: f64 = 0.90;
/// Default verdicts the last full week needs before the bar applies.
pub const DEFAULT_MIN_VERDICTS: u64 = 30;
/// Longest excerpt of a missed ticket shown in the report, the dashboard and the PR.
pub const EXCERPT_CHARS: usize = 200;

/// What to audit.
#[derive(Debug, Clone)]
pub struct AuditRequest {
    /// The last week reported (the one judged against the bar).
    pub last_week: IsoWeek,
    /// How many weeks, ending with `last_week`.
    pub weeks: usize,
    /// The bar.
    pub min_accuracy: f64,
    /// Verdicts needed before the bar applies.
    pub min_verdicts: u64,
    /// The review time zone (weeks and days are local to it).
    pub time_zone: chrono_tz::Tz,
    /// The urgent share of the labels the prompt is built from.
    pub labels_urgent_share: Option<f64>,
}

/// The audit's verdict on the last full week.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// At or above the bar.
    Pass,
    /// Below the bar with enough verdicts: `escalator audit` exits 1.
    Below,
    /// Fewer verdicts than `min_verdicts`: no judgement, exit 0.
    NotEnoughVerdicts,
}

/// The bar applied to the last full week.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Gate {
    /// The week judged.
    pub week: IsoWeek,
    /// Its sampled-review accuracy.
    pub accuracy: Rate,
    /// The bar.
    pub min_accuracy: f64,
    /// Verdicts needed.
    pub min_verdicts: u64,
    /// The outcome.
    pub outcome: Outcome,
}

impl Gate {
    fn judge(week: IsoWeek, accuracy: Rate, min_accuracy: f64, min_verdicts: u64) -> Self {
        let outcome = if accuracy.n < min_verdicts {
            Outcome::NotEnoughVerdicts
        } else if accuracy.share < min_accuracy {
            Outcome::Below
        } else {
            Outcome::Pass
        };
        Self {
            week,
            accuracy,
            min_accuracy,
            min_verdicts,
            outcome,
        }
    }

    /// One line saying what was decided and why.
    pub fn message(&self) -> String {
        let a = &self.accuracy;
        match self.outcome {
            Outcome::NotEnoughVerdicts => format!(
                "{}: not enough verdicts ({} of the {} needed) to judge accuracy against {:.2}",
                self.week, a.n, self.min_verdicts, self.min_accuracy
            ),
            Outcome::Below => format!(
                "{}: accuracy {a} is below {:.2} with {} verdicts",
                self.week, self.min_accuracy, a.n
            ),
            Outcome::Pass => format!(
                "{}: accuracy {a} meets {:.2} with {} verdicts",
                self.week, self.min_accuracy, a.n
            ),
        }
    }
}

/// A missed ticket of the last week: a sampled review, an agent's override or an unsampled
/// review that corrected the decision.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Miss {
    /// The decision.
    pub decision_id: String,
    /// Where the ticket came from.
    pub source: Source,
    /// The ticket's id.
    pub ticket_id: String,
    /// At most [`EXCERPT_CHARS`] characters of subject and message (one line, cut on a
    /// character boundary).
    pub excerpt: String,
    /// What escalator decided.
    pub model_said: Severity,
    /// What the reviewer (or agent) says is right.
    pub reviewer_said: Severity,
    /// Why, as the reviewer wrote it.
    pub why: Option<String>,
    /// The decision's own reasoning.
    pub reasoning: String,
    /// Who corrected it: a sampled review, an agent's override, or a review of a decision the
    /// draw never offered (`unsampled review`: a miss to learn from, not in the accuracy).
    pub origin: String,
    /// The tier decided with.
    pub tier: Tier,
    /// The model that decided.
    pub model: String,
    /// The full subject, for a labels row (not serialised: ticket text stays out of JSON).
    #[serde(skip)]
    pub subject: Option<String>,
    /// The full first message, for a labels row.
    #[serde(skip)]
    pub body: Option<String>,
}

/// The whole audit.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// The review time zone.
    pub time_zone: String,
    /// Every week, oldest first; the last is the one judged.
    pub weeks: Vec<WeekFigures>,
    /// Calibration per model over the whole window.
    pub calibration: Vec<Calibration>,
    /// The five symptoms.
    pub symptoms: Vec<Symptom>,
    /// The bar on the last week.
    pub gate: Gate,
    /// The labels' urgent share (what the prompt teaches).
    pub labels_urgent_share: Option<f64>,
    /// The last week's misses.
    pub misses: Vec<Miss>,
    /// Topic and sentiment accuracy and the shadow categories' figures, whole window.
    pub labels: labels::LabelFigures,
}

impl Report {
    /// The last week's figures.
    pub fn last(&self) -> Option<&WeekFigures> {
        self.weeks.last()
    }
}

/// Reads the window from `store` and computes the report.
///
/// # Errors
/// When the store cannot be read.
pub async fn build<S: AuditLog + Reviews + ?Sized>(
    store: &S,
    req: &AuditRequest,
) -> Result<Report, StoreError> {
    let tz = req.time_zone;
    let weeks = req.last_week.ending_with(req.weeks.max(1));
    let (from, _) = weeks[0].bounds(tz);
    let (_, to) = req.last_week.bounds(tz);
    let rows = crate::review::judged(store, from, to, tz).await?;
    let deliveries = store.audit_deliveries(from, to).await?;
    let rejections = store.audit_rejections(from, to).await?;
    let mut seen = HashSet::new();
    let mut figures = Vec::with_capacity(weeks.len());
    for w in &weeks {
        let (a, b) = w.bounds(tz);
        let inside = |t: chrono::DateTime<chrono::Utc>| t >= a && t < b;
        let r: Vec<&AuditRow> = rows.iter().filter(|r| inside(r.created_at)).collect();
        let d: Vec<&DeliveryRow> = deliveries
            .iter()
            .filter(|d| inside(d.received_at))
            .collect();
        let j: Vec<&RejectionRow> = rejections
            .iter()
            .filter(|j| inside(j.received_at))
            .collect();
        figures.push(figures::week(*w, tz, &r, &d, &j, &mut seen));
    }
    let calibration = figures::calibration(&rows);
    let all: Vec<&AuditRow> = rows.iter().collect();
    let label_figures = labels::figures(&all);
    let symptoms = symptoms::diagnose(&figures, req.labels_urgent_share, req.min_accuracy);
    let last = figures
        .last()
        .map_or_else(|| Rate::of(0, 0), |w| w.accuracy);
    let gate = Gate::judge(req.last_week, last, req.min_accuracy, req.min_verdicts);
    let (a, b) = req.last_week.bounds(tz);
    let week_rows: Vec<&AuditRow> = rows
        .iter()
        .filter(|r| r.created_at >= a && r.created_at < b)
        .collect();
    let misses = misses(store, &week_rows).await?;
    Ok(Report {
        time_zone: tz.to_string(),
        weeks: figures,
        calibration,
        symptoms,
        gate,
        labels_urgent_share: req.labels_urgent_share,
        misses,
        labels: label_figures,
    })
}

/// The corrected decisions among `rows`, each with its ticket text and the why of the verdict
/// that corrected it: sampled reviews first, then overrides of decisions no sampled review
/// judged, then verdicts on decisions the draw never offered (not in the accuracy, but still a
/// miss to learn from).
///
/// # Errors
/// When the store cannot be read.
pub async fn misses<S: Reviews + ?Sized>(
    store: &S,
    rows: &[&AuditRow],
) -> Result<Vec<Miss>, StoreError> {
    let mut out = Vec::new();
    for kind in [MissKind::Sampled, MissKind::Override, MissKind::Unsampled] {
        for r in rows {
            let verdict = match (kind, r.review, r.overridden, r.unsampled) {
                (MissKind::Sampled, Some(v @ ReviewVerdict::Corrected(_)), _, _) => v,
                // A sampled review that said correct wins over an agent's change.
                (MissKind::Override, None, Some(v @ ReviewVerdict::Corrected(_)), _) => v,
                (MissKind::Unsampled, None, None, Some(v @ ReviewVerdict::Corrected(_))) => v,
                _ => continue,
            };
            let Some(right) = verdict.corrected_severity() else {
                continue;
            };
            let item = store.review_item(&r.decision_id).await?;
            let pass = if kind == MissKind::Sampled {
                r.passes.counted_pass()
            } else {
                Some(Pass::First)
            };
            let why = store
                .reviews(&r.decision_id)
                .await?
                .into_iter()
                .rfind(|v| {
                    (v.origin == Origin::Override) == (kind == MissKind::Override)
                        && (kind == MissKind::Override || Some(v.pass) == pass)
                })
                .and_then(|v| v.why);
            let (subject, body) = match item.as_ref().and_then(|i| i.ticket.as_ref()) {
                Some(t) => (Some(t.subject.clone()), Some(t.body.clone())),
                None => (None, None),
            };
            let text = match (&subject, &body) {
                (Some(s), Some(b)) if !s.trim().is_empty() => format!("{s}: {b}"),
                (_, Some(b)) => b.clone(),
                _ => "(ticket text not in the routing log)".to_owned(),
            };
            out.push(Miss {
                decision_id: r.decision_id.clone(),
                source: r.source,
                ticket_id: r.ticket_id.clone(),
                excerpt: crate::text::excerpt(&text, EXCERPT_CHARS),
                model_said: r.severity,
                reviewer_said: right,
                why,
                reasoning: item.map(|i| i.decision.reasoning).unwrap_or_default(),
                origin: kind.as_str().to_owned(),
                tier: r.tier,
                model: r.model.clone(),
                subject,
                body,
            });
        }
    }
    Ok(out)
}

/// Where a miss was seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MissKind {
    Sampled,
    Override,
    Unsampled,
}

impl MissKind {
    fn as_str(self) -> &'static str {
        match self {
            MissKind::Sampled => "sampled review",
            MissKind::Override => "agent override",
            MissKind::Unsampled => "unsampled review",
        }
    }
}
