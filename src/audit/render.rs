//! The audit as text for a terminal: the weekly headline table with intervals, the last week's
//! splits and sample (strata, unsampled verdicts, the two reviewers' agreement), the overrides
//! beside, calibration, the symptoms and the bar.

use std::fmt::{self, Write as _};

use super::{Outcome, Report, symptoms::Symptom};
use crate::stats::Rate;

fn pct(x: f64) -> String {
    format!("{:.1}%", x * 100.0)
}

fn split<K: fmt::Display>(out: &mut String, name: &str, m: &std::collections::BTreeMap<K, Rate>) {
    if m.is_empty() {
        return;
    }
    let _ = writeln!(out, "  {name}:");
    for (k, r) in m {
        let _ = writeln!(out, "    {:<28} {r}", k.to_string());
    }
}

/// One line per item by `line`, or the line `none` when there are no items: every list of the
/// report (calibration, shadow categories) reads the same.
pub(super) fn lines<T>(out: &mut String, items: &[T], none: &str, line: impl Fn(&T) -> String) {
    if items.is_empty() {
        let _ = writeln!(out, "{none}");
    }
    for item in items {
        let _ = writeln!(out, "{}", line(item));
    }
}

fn value(s: &Symptom, v: Option<f64>) -> String {
    match (v, s.unit) {
        (None, _) => "-".to_owned(),
        (Some(v), "ms") => format!("{v:.0} ms"),
        (Some(v), "usd") => format!("${v:.5}"),
        (Some(v), _) => pct(v),
    }
}

/// How often each weighting rule changed an outcome, per week: contract policy apart from the
/// classifier's judgement.
fn weighting(out: &mut String, r: &Report) {
    let mut rules: Vec<&str> = r
        .weeks
        .iter()
        .flat_map(|w| w.weighting.changed_by_rule.keys().map(String::as_str))
        .collect();
    rules.sort_unstable();
    rules.dedup();
    let _ = writeln!(
        out,
        "\nweighting rules: decisions whose severity a rule raised above the classifier's"
    );
    let _ = write!(out, "  {:<9} {:>9}", "week", "changed");
    for rule in &rules {
        let _ = write!(out, " {rule:>18}");
    }
    let _ = writeln!(out, " {:>18}", "enrichment failed");
    for w in &r.weeks {
        let g = &w.weighting;
        let _ = write!(
            out,
            "  {:<9} {:>9}",
            w.week.to_string(),
            format!("{} ({})", g.changed.k, pct(g.changed.share))
        );
        for rule in &rules {
            let n = g.changed_by_rule.get(*rule).copied().unwrap_or(0);
            let _ = write!(out, " {n:>18}");
        }
        let _ = writeln!(out, " {:>18}", g.enrichment_failed);
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = String::new();
        let first = self.weeks.first().map(|w| w.week.to_string());
        let _ = writeln!(
            out,
            "escalator audit: {} to {} ({} ISO weeks, time zone {})\n",
            first.unwrap_or_default(),
            self.gate.week,
            self.weeks.len(),
            self.time_zone
        );
        let _ = writeln!(
            out,
            "accuracy from sampled reviews only: each verdict weighted by 1/(its inclusion probability), \
             a double review once; 95% Wilson intervals on the effective sample size (n_eff); \
             unsampled verdicts and agents' overrides beside, never in it"
        );
        let _ = writeln!(
            out,
            "  {:<9} {:>9} {:>8} {:>9} {:>15} {:>10} {:>7} {:>9} {:>10}",
            "week",
            "decisions",
            "verdicts",
            "accuracy",
            "95% interval",
            "± points",
            "n_eff",
            "unsampled",
            "overrides"
        );
        for w in &self.weeks {
            let a = &w.accuracy;
            let (acc, ci, pm, ne) = if a.n == 0 {
                (
                    "-".to_owned(),
                    "-".to_owned(),
                    "-".to_owned(),
                    "-".to_owned(),
                )
            } else {
                #[allow(clippy::cast_precision_loss)]
                let ne = a.effective_n.unwrap_or(a.n as f64);
                (
                    pct(a.share),
                    format!("{:.1}–{:.1}%", a.lo * 100.0, a.hi * 100.0),
                    format!("±{:.1}", a.plus_minus_points()),
                    format!("{ne:.1}"),
                )
            };
            let _ = writeln!(
                out,
                "  {:<9} {:>9} {:>8} {:>9} {:>15} {:>10} {:>7} {:>9} {:>10}",
                w.week.to_string(),
                w.decisions,
                a.n,
                acc,
                ci,
                pm,
                ne,
                w.sample.unsampled.n,
                w.overrides.count
            );
        }
        if let Some(w) = self.last() {
            let a = &w.accuracy;
            if a.n > 0 {
                let _ = writeln!(out, "\n{}: {}", w.week, a.headline());
            }
            sample(&mut out, w);
            let _ = writeln!(out, "\n{} by", w.week);
            split(&mut out, "true severity (recall)", &w.by_true_severity);
            split(
                &mut out,
                "decided severity (precision)",
                &w.by_decided_severity,
            );
            split(&mut out, "tier", &w.by_tier);
            split(&mut out, "source", &w.by_source);
            split(&mut out, "prompt version", &w.by_prompt_version);
            split(&mut out, "model", &w.by_model);
            split(&mut out, "gRPC caller", &w.by_caller);
            if !w.callers.is_empty() {
                let _ = writeln!(out, "\ngRPC callers in {}", w.week);
                for (name, c) in &w.callers {
                    let _ = writeln!(
                        out,
                        "  {name:<28} {} decisions, ${:.4}",
                        c.decisions, c.cost_usd
                    );
                }
            }
            let o = &w.overrides;
            let _ = writeln!(
                out,
                "\nagents' overrides in {} (they only see misses, so not in the accuracy): {} \
                 ({} of decisions; {} raised, {} lowered)",
                w.week,
                o.count,
                pct(o.share_of_decisions),
                o.raised,
                o.lowered
            );
            let f = &w.follow_ups;
            if f.redecisions > 0 {
                let _ = writeln!(
                    out,
                    "follow-ups in {}: {} re-decided, {} raised ({} kept, {} undone by an agent), \
                     {} note only; raised decisions right: {} of {} judged",
                    w.week,
                    f.redecisions,
                    f.raised,
                    f.kept,
                    f.undone,
                    f.note_only,
                    f.raised_accuracy.k,
                    f.raised_accuracy.n
                );
            }
        }
        weighting(&mut out, self);
        let _ = writeln!(
            out,
            "\nconfidence calibration (sampled reviews, whole window)"
        );
        lines(&mut out, &self.calibration, "  no verdicts", |c| {
            let mut text = format!(
                "  {}: expected calibration error {:.3} over {} verdicts",
                c.model, c.ece, c.verdicts
            );
            for b in &c.bands {
                let _ = write!(
                    text,
                    "\n    confidence {:.1}–{:.1}: mean {:.2}, accuracy {}",
                    b.from, b.to, b.mean_confidence, b.accuracy
                );
            }
            text
        });
        labels(&self.labels, &mut out);
        let _ = writeln!(out, "\nsymptoms ({})", self.gate.week);
        for s in &self.symptoms {
            let _ = writeln!(
                out,
                "  {} {}. {}: {}",
                if s.firing { "[FIRING]" } else { "[ok]    " },
                s.number,
                s.title,
                s.summary
            );
            let points: Vec<String> = s
                .trend
                .iter()
                .map(|p| format!("{} {}", p.week, value(s, p.value)))
                .collect();
            let _ = writeln!(out, "      trend: {}", points.join(" → "));
            for d in &s.details {
                let _ = writeln!(out, "      {d}");
            }
            if s.firing {
                let _ = writeln!(out, "      fix: {}", s.fix);
            }
        }
        if !self.misses.is_empty() {
            let _ = writeln!(out, "\nmisses in {}", self.gate.week);
            for m in &self.misses {
                let _ = writeln!(
                    out,
                    "  {} {} ({}): model said {}, {} said {}{}\n      {}",
                    m.source,
                    m.ticket_id,
                    m.tier,
                    m.model_said,
                    m.origin,
                    m.reviewer_said,
                    m.why
                        .as_deref()
                        .map(|w| format!(": {w}"))
                        .unwrap_or_default(),
                    m.excerpt
                );
            }
        }
        let _ = writeln!(
            out,
            "\n{}{}",
            self.gate.message(),
            match self.gate.outcome {
                Outcome::Below => " (exit 1)",
                Outcome::Pass | Outcome::NotEnoughVerdicts => "",
            }
        );
        f.write_str(&out)
    }
}

/// The last week's sample: per stratum beside the headline, the unsampled verdicts apart, the
/// two reviewers' agreement with every disagreement.
fn sample(out: &mut String, w: &super::figures::WeekFigures) {
    let s = &w.sample;
    let _ = writeln!(
        out,
        "\nsample in {}: {} decisions offered; per stratum (accuracy weighted within it; weight = the share of the week's decisions its verdicts stand for; mean π = mean inclusion probability)",
        w.week, s.offered
    );
    lines(out, &s.strata, "  no decisions offered", |f| {
        format!(
            "  {:<16} {:>4} offered  {:<36} weight {:>6}  mean π {:.3}",
            f.stratum,
            f.offered,
            f.accuracy.to_string(),
            pct(f.weight_share),
            f.mean_inclusion_probability
        )
    });
    let u = &s.unsampled;
    if u.n == 0 {
        let _ = writeln!(
            out,
            "unsampled verdicts in {}: none (verdicts on decisions the draw never offered are shown here, never in the accuracy)",
            w.week
        );
    } else {
        let _ = writeln!(
            out,
            "unsampled verdicts in {}: {}, accuracy {u} ({} corrected; a reviewer chose these decisions, so they are not in the accuracy; the corrections still become labels)",
            w.week, u.n, s.unsampled_corrected
        );
    }
    let a = &s.agreement;
    if a.offered == 0 {
        let _ = writeln!(
            out,
            "double review in {}: none offered ([review] second_reviewer_share)",
            w.week
        );
        return;
    }
    let _ = writeln!(
        out,
        "double review in {}: {} offered to a second reviewer; agreement on the severity: {} (Cohen's kappa, 95% interval); {} disagreement(s), {} awaiting adjudication (counted with the first verdict until then)",
        w.week,
        a.offered,
        a.kappa,
        a.disagreements.len(),
        a.awaiting_adjudication
    );
    for d in &a.disagreements {
        let _ = writeln!(
            out,
            "  {} {} (decided {}): first {} ({}), second {} ({}); {}",
            d.source,
            d.ticket_id,
            d.decided,
            d.first.0,
            d.first.1,
            d.second.0,
            d.second.1,
            d.adjudicated.as_ref().map_or_else(
                || "awaiting adjudication".to_owned(),
                |(s, who)| format!("adjudicated {s} by {who}")
            )
        );
    }
}

/// The labels section of the text report (topic, sentiment and shadow-category figures).
pub fn labels(l: &super::labels::LabelFigures, out: &mut String) {
    let _ = writeln!(
        out,
        "\nlabels (sampled reviews, weighted, whole window; route never depends on them)"
    );
    let _ = writeln!(out, "  topic accuracy:     {}", l.topic);
    let _ = writeln!(out, "  sentiment accuracy: {}", l.sentiment);
    let none = "  shadow categories: no reviewed verdicts";
    lines(out, &l.shadow, none, |s| {
        format!(
            "  shadow {}: accuracy {}, precision {}, recall {} (tp {}, fp {}, fn {}, tn {})",
            s.category,
            s.accuracy,
            s.precision,
            s.recall,
            s.true_positive,
            s.false_positive,
            s.false_negative,
            s.true_negative
        )
    });
}
