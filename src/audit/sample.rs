//! The review sample's own figures for one week: the accuracy per stratum beside the weighted
//! headline (with the share of all decisions each stratum stands for), the verdicts on
//! decisions the draw never offered (apart, unweighted: a reviewer chose them), and the double
//! review's agreement (Cohen's kappa with its interval, and every disagreement with its
//! adjudication, if any).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::{
    domain::{
        Severity, Source,
        audit::AuditRow,
        review::{Judged, ReviewVerdict},
    },
    stats::{Kappa, Rate, Weighted},
};

/// What a stratum is called in the figures: its name, or `uniform` for a sample drawn before
/// strata existed.
pub const UNIFORM: &str = "uniform";

/// The sample of one week.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SampleFigures {
    /// Decisions of the week offered for review (judged or not).
    pub offered: u64,
    /// Per stratum (by name), in the design's order.
    pub strata: Vec<StratumFigures>,
    /// Verdicts on decisions the draw never offered: their unweighted accuracy, never in the
    /// headline (the reviewer chose them, so they estimate nothing).
    pub unsampled: Rate,
    /// Unsampled verdicts that corrected the decision (they still become labels).
    pub unsampled_corrected: u64,
    /// The double review.
    pub agreement: Agreement,
}

/// One stratum of a week's sample.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StratumFigures {
    /// `overridden`, `fallback`, `on_fire`, `low_confidence`, `enterprise`, `rest`, or
    /// `uniform` (drawn before strata existed).
    pub stratum: String,
    /// Its decisions offered for review.
    pub offered: u64,
    /// Their accuracy (weighted within the stratum: its inclusion probability can differ from
    /// day to day).
    pub accuracy: Rate,
    /// The share of the headline's weight its verdicts carry: the share of all the week's
    /// decisions the stratum's verdicts stand for.
    pub weight_share: f64,
    /// The mean inclusion probability of its judged decisions.
    pub mean_inclusion_probability: f64,
}

/// Two reviewers on the same decisions.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Agreement {
    /// Decisions offered for a double review.
    pub offered: u64,
    /// Cohen's kappa over the severity each reviewer says is right (routine, urgent, on_fire),
    /// on the decisions both judged.
    pub kappa: Kappa,
    /// Every decision the two judged differently.
    pub disagreements: Vec<Disagreement>,
    /// Of those, not yet adjudicated (they count with the first verdict meanwhile).
    pub awaiting_adjudication: u64,
}

/// A decision the two reviewers judged differently.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Disagreement {
    /// The decision.
    pub decision_id: String,
    /// Its source.
    pub source: Source,
    /// Its ticket.
    pub ticket_id: String,
    /// What escalator decided.
    pub decided: Severity,
    /// What the first reviewer says is right, and who.
    pub first: (Severity, String),
    /// What the second says, and who.
    pub second: (Severity, String),
    /// The adjudication, when given: what is right, and who settled it.
    pub adjudicated: Option<(Severity, String)>,
}

fn right(r: &AuditRow, j: &Judged) -> (Severity, String) {
    (j.verdict.right_severity_of(r.severity), j.reviewer.clone())
}

fn index(s: Severity) -> usize {
    Severity::ALL.iter().position(|x| *x == s).unwrap_or(0)
}

/// The sample figures of one week's `rows`.
pub fn figures(rows: &[&AuditRow]) -> SampleFigures {
    let mut strata: BTreeMap<String, Weighted> = BTreeMap::new();
    let mut offered: BTreeMap<String, u64> = BTreeMap::new();
    let mut probability: BTreeMap<String, f64> = BTreeMap::new();
    let mut unsampled = Weighted::default();
    let mut unsampled_corrected = 0;
    let mut table = vec![vec![0u64; Severity::ALL.len()]; Severity::ALL.len()];
    let mut disagreements = Vec::new();
    let mut double = 0;
    for r in rows {
        if let Some(v) = r.unsampled {
            unsampled.add(1.0, v == ReviewVerdict::Correct);
            unsampled_corrected += u64::from(v != ReviewVerdict::Correct);
        }
        let Some(s) = &r.sample else { continue };
        let name = s
            .stratum
            .map_or_else(|| UNIFORM.to_owned(), |s| s.as_str().to_owned());
        *offered.entry(name.clone()).or_default() += 1;
        if let Some(c) = r.correct() {
            strata.entry(name.clone()).or_default().add(r.weight(), c);
            *probability.entry(name).or_default() += 1.0 / r.weight();
        }
        if !s.double_review {
            continue;
        }
        double += 1;
        let p = &r.passes;
        if let (Some(a), Some(b)) = (&p.first, &p.second) {
            let (a, b) = (right(r, a), right(r, b));
            table[index(a.0)][index(b.0)] += 1;
            if a.0 != b.0 {
                disagreements.push(Disagreement {
                    decision_id: r.decision_id.clone(),
                    source: r.source,
                    ticket_id: r.ticket_id.clone(),
                    decided: r.severity,
                    first: a,
                    second: b,
                    adjudicated: p.adjudication.as_ref().map(|j| right(r, j)),
                });
            }
        }
    }
    let total: f64 = strata.values().map(|w| w.weight).sum();
    let order = |name: &str| {
        crate::domain::sample::Stratum::ALL
            .iter()
            .position(|s| s.as_str() == name)
            .unwrap_or(usize::MAX)
    };
    let mut names: Vec<String> = offered.keys().cloned().collect();
    names.sort_by_key(|n| (order(n), n.clone()));
    let strata_figures = names
        .into_iter()
        .map(|name| {
            let w = strata.get(&name).copied().unwrap_or_default();
            #[allow(clippy::cast_precision_loss)]
            let mean = if w.n == 0 {
                0.0
            } else {
                probability.get(&name).copied().unwrap_or(0.0) / w.n as f64
            };
            StratumFigures {
                offered: offered.get(&name).copied().unwrap_or(0),
                accuracy: w.rate(),
                weight_share: if total > 0.0 { w.weight / total } else { 0.0 },
                mean_inclusion_probability: mean,
                stratum: name,
            }
        })
        .collect();
    let awaiting = disagreements
        .iter()
        .filter(|d| d.adjudicated.is_none())
        .count() as u64;
    SampleFigures {
        offered: offered.values().sum(),
        strata: strata_figures,
        unsampled: unsampled.rate(),
        unsampled_corrected,
        agreement: Agreement {
            offered: double,
            kappa: Kappa::of(&table),
            disagreements,
            awaiting_adjudication: awaiting,
        },
    }
}
