//! The five symptoms a support lead worries about, each with its number, its week-over-week
//! trend, whether it fires in the last full week, and the fix that usually works.
//!
//! Each rule fires only on a signal larger than the week-to-week noise of a few dozen
//! verdicts: a minimum count of corrections or calls, and a margin over the earlier weeks.

use serde::Serialize;

use super::figures::WeekFigures;
use crate::stats;

/// Corrections from urgent down (sampled reviews) before "too many urgent" can fire.
pub const MIN_URGENT_DOWN: u64 = 3;
/// How far (points of share) the decided urgent share must exceed the reviewed truth.
pub const URGENT_EXCESS: f64 = 0.10;
/// Enterprise tickets corrected upward before "enterprise missed" can fire.
pub const MIN_ENTERPRISE_UP: u64 = 2;
/// Deliveries (or verdicts) needed on each side of a version change to compare them.
pub const MIN_PER_VERSION: u64 = 10;
/// Accuracy drop (points of share) after a version change that fires.
pub const VERSION_ACCURACY_DROP: f64 = 0.10;
/// Rise in the share of refused or incomplete deliveries after a version change that fires.
pub const VERSION_PROBLEM_RISE: f64 = 0.05;
/// Model calls in the last week before the latency rule can fire.
pub const MIN_CALLS: u64 = 10;
/// p95 latency (or retries per decision) over the earlier weeks' median that fires.
pub const LATENCY_FACTOR: f64 = 1.5;
/// Cost per decision over the earlier weeks' median that fires.
pub const COST_FACTOR: f64 = 1.25;

/// One symptom's diagnosis.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Symptom {
    /// 1 to 5.
    pub number: u8,
    /// Stable id (`too_many_urgent`, `enterprise_missed`, `tool_update`, `latency`, `cost`).
    pub id: &'static str,
    /// What it is, in words.
    pub title: &'static str,
    /// Whether the last full week shows it.
    pub firing: bool,
    /// The number, with what it is compared to.
    pub summary: String,
    /// The headline number per week, oldest first (`None` where there is no data).
    pub trend: Vec<Point>,
    /// How the headline number is written (`share`, `ms`, `usd`).
    pub unit: &'static str,
    /// The other numbers behind it.
    pub details: Vec<String>,
    /// The fix that usually works.
    pub fix: &'static str,
}

/// One week of a symptom's trend.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Point {
    /// The week.
    pub week: String,
    /// The value.
    pub value: Option<f64>,
}

fn pct(x: f64) -> String {
    format!("{:.1}%", x * 100.0)
}

fn trend(weeks: &[WeekFigures], f: impl Fn(&WeekFigures) -> Option<f64>) -> Vec<Point> {
    weeks
        .iter()
        .map(|w| Point {
            week: w.week.to_string(),
            value: f(w),
        })
        .collect()
}

/// The median of the weeks before the last (the baseline the last week is held against).
fn baseline(weeks: &[WeekFigures], f: impl Fn(&WeekFigures) -> Option<f64>) -> Option<f64> {
    let earlier = weeks.len().saturating_sub(1);
    let values: Vec<f64> = weeks[..earlier].iter().filter_map(f).collect();
    stats::median(&values)
}

/// The five symptoms over `weeks` (oldest first; the last is the week judged), with the urgent
/// share of the labels the prompt is built from.
pub fn diagnose(
    weeks: &[WeekFigures],
    labels_urgent_share: Option<f64>,
    min_accuracy: f64,
) -> Vec<Symptom> {
    let Some(last) = weeks.last() else {
        return Vec::new();
    };
    vec![
        too_many_urgent(weeks, last, labels_urgent_share),
        enterprise_missed(weeks, last, min_accuracy),
        tool_update(weeks),
        latency(weeks, last),
        cost(weeks, last),
    ]
}

fn too_many_urgent(weeks: &[WeekFigures], last: &WeekFigures, labels: Option<f64>) -> Symptom {
    let excess = last.urgent_share.share - last.truth_urgent_share.share;
    let firing = last.urgent_corrected_down >= MIN_URGENT_DOWN
        && last.truth_urgent_share.n > 0
        && excess >= URGENT_EXCESS;
    Symptom {
        number: 1,
        id: "too_many_urgent",
        title: "too many urgent",
        firing,
        summary: format!(
            "{} of decisions urgent; labels {}, reviewed truth {}; {} corrected from urgent down",
            pct(last.urgent_share.share),
            labels.map_or_else(|| "-".to_owned(), pct),
            if last.truth_urgent_share.n == 0 {
                "-".to_owned()
            } else {
                pct(last.truth_urgent_share.share)
            },
            last.urgent_corrected_down
        ),
        trend: trend(weeks, |w| (w.decisions > 0).then_some(w.urgent_share.share)),
        unit: "share",
        details: vec![
            format!(
                "fallback share {} (a fallback raises routine to urgent)",
                pct(last.cost.fallback_share.share)
            ),
            format!(
                "agents lowered {} decisions (overrides, not in the figures above)",
                last.overrides.lowered
            ),
        ],
        fix: "Tighten the urgent definition in prompts/classifier.md (what is NOT urgent: \
              how-to from a paying customer, feature requests, polite follow-ups) and add the \
              routine tickets corrected down as labelled examples (the labels pull request does); \
              if the fallback share is high, fix the model calls first: every fallback is urgent.",
    }
}

fn enterprise_missed(weeks: &[WeekFigures], last: &WeekFigures, min_accuracy: f64) -> Symptom {
    let e = &last.enterprise;
    let firing = e.corrected_up >= MIN_ENTERPRISE_UP && e.recall.share < min_accuracy;
    Symptom {
        number: 2,
        id: "enterprise_missed",
        title: "false negatives on enterprise",
        firing,
        summary: format!(
            "enterprise recall {}; {} of {} reviewed enterprise decisions corrected upward",
            if e.recall.n == 0 {
                "-".to_owned()
            } else {
                e.recall.to_string()
            },
            e.corrected_up,
            e.reviewed
        ),
        trend: trend(weeks, |w| {
            (w.enterprise.recall.n > 0).then_some(w.enterprise.recall.share)
        }),
        unit: "share",
        details: vec![format!(
            "agents raised {} enterprise decisions (overrides)",
            e.overridden_up
        )],
        fix: "Check that the tier reaches the classifier (Plain tier / Pylon account \
              enrichment: a ticket enriched as free loses its floor), keep the prompt's rule \
              that enterprise is never routine, and add the missed enterprise tickets to the \
              labels (the labels pull request does).",
    }
}

fn tool_update(weeks: &[WeekFigures]) -> Symptom {
    use std::collections::BTreeMap;
    // Per source, the versions in the order first seen, with totals per version.
    #[derive(Default, Clone, Copy)]
    struct Totals {
        deliveries: u64,
        failures: u64,
        missing: u64,
        verdicts: stats::Weighted,
    }
    let mut order: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut totals: BTreeMap<(String, String), Totals> = BTreeMap::new();
    for w in weeks {
        for h in &w.webhooks {
            let seen = order.entry(h.source.clone()).or_default();
            if !seen.contains(&h.version) {
                seen.push(h.version.clone());
            }
            let t = totals
                .entry((h.source.clone(), h.version.clone()))
                .or_default();
            t.deliveries += h.deliveries;
            t.failures += h.parse_failures;
            t.missing += h.missing_fields;
            t.verdicts.merge(&h.verdicts);
        }
    }
    let problem_share = |t: &Totals| {
        #[allow(clippy::cast_precision_loss)]
        let all = (t.deliveries + t.failures) as f64;
        if all == 0.0 {
            0.0
        } else {
            #[allow(clippy::cast_precision_loss)]
            let bad = (t.failures + t.missing) as f64;
            bad / all
        }
    };
    let mut firing = false;
    let mut details = Vec::new();
    let mut summary = "no change of webhook version in the window".to_owned();
    for (source, versions) in &order {
        if versions.len() < 2 {
            continue;
        }
        let newest = &versions[versions.len() - 1];
        let mut before = Totals::default();
        for v in &versions[..versions.len() - 1] {
            let t = totals[&(source.clone(), v.clone())];
            before.deliveries += t.deliveries;
            before.failures += t.failures;
            before.missing += t.missing;
            before.verdicts.merge(&t.verdicts);
        }
        let after = totals[&(source.clone(), newest.clone())];
        let acc = |t: &Totals| t.verdicts.rate();
        let (ab, aa) = (acc(&before), acc(&after));
        let (pb, pa) = (problem_share(&before), problem_share(&after));
        let accuracy_dropped = before.verdicts.n >= MIN_PER_VERSION
            && after.verdicts.n >= MIN_PER_VERSION
            && ab.share - aa.share >= VERSION_ACCURACY_DROP;
        let problems_rose =
            after.deliveries + after.failures >= MIN_PER_VERSION && pa - pb >= VERSION_PROBLEM_RISE;
        let fires = accuracy_dropped || problems_rose;
        firing |= fires;
        summary = format!(
            "{source}: {} → {newest}: accuracy {} → {}, refused or incomplete deliveries {} → {}",
            versions[versions.len() - 2],
            if ab.n == 0 {
                "-".to_owned()
            } else {
                pct(ab.share)
            },
            if aa.n == 0 {
                "-".to_owned()
            } else {
                pct(aa.share)
            },
            pct(pb),
            pct(pa)
        );
        details.push(format!(
            "{source} before {newest}: {} deliveries, {} parse failures, {} with missing fields, accuracy {ab}",
            before.deliveries, before.failures, before.missing
        ));
        details.push(format!(
            "{source} on {newest}: {} deliveries, {} parse failures, {} with missing fields, accuracy {aa}",
            after.deliveries, after.failures, after.missing
        ));
    }
    Symptom {
        number: 3,
        id: "tool_update",
        title: "misroutes after a tool update",
        firing,
        summary,
        trend: trend(weeks, |w| {
            let all: u64 = w
                .webhooks
                .iter()
                .map(|h| h.deliveries + h.parse_failures)
                .sum();
            let bad: u64 = w
                .webhooks
                .iter()
                .map(|h| h.parse_failures + h.missing_fields)
                .sum();
            #[allow(clippy::cast_precision_loss)]
            let share = bad as f64 / all as f64;
            (all > 0).then_some(share)
        }),
        unit: "share",
        details,
        fix: "Read what the new payload version changed (Plain: the webhook target's version in \
              Plain's settings and changelog; Pylon: the trigger's body, which should stay the \
              documented doorbell {\"issue_id\": \"{{ issue.id }}\", \"event\": \"issue.created\"}); \
              pin the target back to the previous version or update the parse in \
              src/ticketing/, then replay the failed deliveries.",
    }
}

fn latency(weeks: &[WeekFigures], last: &WeekFigures) -> Symptom {
    #[allow(clippy::cast_precision_loss)]
    let p95 = |w: &WeekFigures| w.latency.p95_ms.map(|v| v as f64);
    let base_p95 = baseline(weeks, p95);
    let base_retries = baseline(weeks, |w| {
        (w.latency.calls > 0).then_some(w.latency.retries_per_decision)
    });
    let enough = last.latency.calls >= MIN_CALLS;
    let slow = matches!((p95(last), base_p95), (Some(now), Some(b)) if b > 0.0 && now >= LATENCY_FACTOR * b);
    let retrying = matches!(base_retries, Some(b)
        if last.latency.retries_per_decision >= 0.1
            && last.latency.retries_per_decision >= LATENCY_FACTOR * b.max(0.05));
    Symptom {
        number: 4,
        id: "latency",
        title: "latency climbed",
        firing: enough && (slow || retrying),
        summary: format!(
            "p95 model latency {} (earlier weeks' median {}), p50 {}; {:.2} retries per decision",
            last.latency
                .p95_ms
                .map_or_else(|| "-".to_owned(), |v| format!("{v} ms")),
            base_p95.map_or_else(|| "-".to_owned(), |v| format!("{v:.0} ms")),
            last.latency
                .p50_ms
                .map_or_else(|| "-".to_owned(), |v| format!("{v} ms")),
            last.latency.retries_per_decision
        ),
        trend: trend(weeks, p95),
        unit: "ms",
        details: vec![format!(
            "{} decisions with a model call; earlier weeks' median retries per decision {}",
            last.latency.calls,
            base_retries.map_or_else(|| "-".to_owned(), |v| format!("{v:.2}"))
        )],
        fix: "Retries mean 429/529 from the API: lower claude.max_concurrency or spread load; \
              without retries, a slower model or thinking: set claude.effort = \"low\" on models \
              that take it, keep max_tokens small, and check the prompt cache still hits \
              (a miss re-reads the whole system block).",
    }
}

fn cost(weeks: &[WeekFigures], last: &WeekFigures) -> Symptom {
    let per = |w: &WeekFigures| (w.decisions > 0).then_some(w.cost.per_decision_usd);
    let base = baseline(weeks, per);
    let base_hits = baseline(weeks, |w| {
        (w.decisions > 0).then_some(w.cost.cache_hit_share)
    });
    let firing =
        matches!((per(last), base), (Some(now), Some(b)) if b > 0.0 && now >= COST_FACTOR * b);
    Symptom {
        number: 5,
        id: "cost",
        title: "cost climbing",
        firing,
        summary: format!(
            "${:.5} per decision (earlier weeks' median {}); cache hits {} of input tokens",
            last.cost.per_decision_usd,
            base.map_or_else(|| "-".to_owned(), |b| format!("${b:.5}")),
            pct(last.cost.cache_hit_share)
        ),
        trend: trend(weeks, per),
        unit: "usd",
        details: vec![
            format!(
                "cache-hit share {} (earlier weeks' median {})",
                pct(last.cost.cache_hit_share),
                base_hits.map_or_else(|| "-".to_owned(), pct)
            ),
            format!(
                "cache writes {:.1} per day; fallback share {}",
                last.cost.cache_writes_per_day, last.cost.fallback_share
            ),
            format!(
                "duplicate deliveries {} (free); tickets decided again {} (each a model call)",
                last.cost.duplicate_deliveries, last.cost.repeat_decisions
            ),
        ],
        fix: "A falling cache-hit share with many cache writes means the cached prefix changes \
              or expires: keep ticket data out of the system block, use the 1h TTL \
              (claude.cache_ttl), and check the block is above the model's minimum cacheable \
              length; fallbacks that were billed (invalid answers) cost without deciding; \
              tickets decided again come from a tool sending new versions (Pylon `version`, \
              Plain updatedAt): decide only the events that need it.",
    }
}
